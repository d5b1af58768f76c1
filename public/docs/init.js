// The API page: Swagger UI over our own /openapi.json, with every asset from this origin.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    // No validator badge: it would call validator.swagger.io.
    validatorUrl: null,
  });
});
