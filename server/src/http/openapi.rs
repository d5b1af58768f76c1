//! The OpenAPI 3.1 document of the REST API, generated from the handlers' attributes and the
//! shared types in `app::api`, served at `/openapi.json` and browsed at `/docs`.

use app::api::JobType;
use app::api::examples::example_payload;
use app::api::validation::FieldError;
use serde::Serialize;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, Required, Type};
use utoipa::{Modify, OpenApi, ToSchema};

/// FastAPI's error body: `{"detail": "..."}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub detail: String,
}

/// FastAPI's 422 body: one entry per invalid field.
#[derive(Serialize, ToSchema)]
pub struct ValidationErrorBody {
    pub detail: Vec<FieldError>,
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `database unavailable` (with a 503).
    pub status: String,
    pub instance: String,
    /// Whether this instance runs the background work.
    pub leader: bool,
    /// `sqlite` or `postgres`.
    pub database: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bitcain AI Batch",
        description = "Queue AI jobs; they run through Anthropic's Message Batches at half price. \
            Every endpoint but /healthz takes `Authorization: Bearer <token>`.",
        version = env!("CARGO_PKG_VERSION"),
    ),
    components(schemas(ErrorBody, ValidationErrorBody, FieldError)),
    tags(
        (name = "jobs", description = "Queue jobs and read them back (traders see their own)"),
        (name = "contexts", description = "Large inputs many jobs share, cached at the provider"),
        (name = "batches", description = "Flush and poll (admins)"),
        (name = "access", description = "Users, tokens, prices and the audit log (admins)"),
        (name = "budgets", description = "Monthly spend caps: your own, and every user's (admins)"),
        (name = "service", description = "For load balancers"),
    )
)]
pub struct ApiDoc;

/// The document, built once: what `ApiDoc` says of the API as a whole, the operations of the
/// route table (`super::api`), then what every operation shares.
pub fn document() -> &'static str {
    static JSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    JSON.get_or_init(|| {
        let (_, mut openapi) = super::api().split_for_parts();
        openapi = ApiDoc::openapi().merge_from(openapi);
        let modifiers: [&dyn Modify; 5] = [
            &Security,
            &CommonAnswers,
            &OptionalBodies,
            &Links,
            &Examples,
        ];
        for modifier in modifiers {
            modifier.modify(&mut openapi);
        }
        let mut document = serde_json::to_value(openapi).expect("the document serializes");
        fix_link_field_names(&mut document);
        document.to_string()
    })
}

/// utoipa 5.5 writes a link's `operationId` as `operation_id`, which no client reads.
fn fix_link_field_names(document: &mut serde_json::Value) {
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    let responses = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses")?.as_object_mut())
        .flat_map(|responses| responses.values_mut());
    for response in responses {
        let Some(links) = response.get_mut("links").and_then(|l| l.as_object_mut()) else {
            continue;
        };
        for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
            if let Some(id) = link.remove("operation_id") {
                link.insert("operationId".into(), id);
            }
        }
    }
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// The answers every operation can give, added once instead of on every handler.
struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let public = path == "/healthz";
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                if public {
                    operation.security = Some(vec![SecurityRequirement::default()]);
                    answer(
                        operation,
                        "503",
                        "The database does not answer",
                        "Health",
                        true,
                    );
                    continue;
                }
                answer(
                    operation,
                    "401",
                    "Missing or invalid token",
                    "ErrorBody",
                    false,
                );
                if path.contains("{job_id}") {
                    answer(
                        operation,
                        "404",
                        "No such job, or another user's",
                        "ErrorBody",
                        false,
                    );
                }
                let admin_only = path.starts_with("/api/v1/admin/")
                    || operation
                        .tags
                        .as_ref()
                        .is_some_and(|tags| tags.iter().any(|t| t == "batches" || t == "access"));
                if admin_only {
                    answer(
                        operation,
                        "403",
                        "A trader on an admin endpoint",
                        "ErrorBody",
                        false,
                    );
                }
                let takes_input =
                    operation.request_body.is_some() || operation.parameters.is_some();
                if takes_input {
                    answer(
                        operation,
                        "422",
                        "Invalid fields, all listed at once",
                        "ValidationErrorBody",
                        false,
                    );
                }
                if operation.request_body.is_some() {
                    answer(
                        operation,
                        "413",
                        "Body over 1 MB (4 MB for a context, 32 MB for bulk enqueue)",
                        "ErrorBody",
                        false,
                    );
                }
                answer(
                    operation,
                    "429",
                    "Past this token's rate limit",
                    "ErrorBody",
                    true,
                );
                answer(
                    operation,
                    "503",
                    "The database or Anthropic is busy, or the request timed out",
                    "ErrorBody",
                    true,
                );
            }
        }
    }
}

/// Adds an answer with a JSON body of the named schema, and `Retry-After` where it helps.
fn answer(operation: &mut Operation, status: &str, why: &str, schema: &str, retry_after: bool) {
    if operation.responses.responses.contains_key(status) {
        return;
    }
    let mut response = ResponseBuilder::new().description(why).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(schema)))
            .build(),
    );
    if retry_after {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds to wait before trying again"))
                .build(),
        );
    }
    operation
        .responses
        .responses
        .insert(status.to_string(), RefOr::T(response.build()));
}

/// How a queued job leads to its reads and cancel (clients and fuzzers follow these links
/// instead of guessing ids).
struct Links;

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(RefOr::T(queued)) = openapi
            .paths
            .paths
            .get_mut("/api/v1/batch/enqueue")
            .and_then(|item| item.post.as_mut())
            .and_then(|operation| operation.responses.responses.get_mut("200"))
        else {
            return;
        };
        for (name, operation_id) in [
            ("job", "get"),
            ("cancel", "cancel"),
            ("result", "result"),
            ("events", "events"),
        ] {
            let link = LinkBuilder::new()
                .operation_id(operation_id)
                .parameter("job_id", "$response.body#/job/id")
                .build();
            queued.links.insert(name.to_string(), RefOr::T(link));
        }
    }
}

/// Flush and its preview take an empty body as all defaults.
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for path in [
            "/api/v1/batch/internal/flush",
            "/api/v1/batch/internal/flush/preview",
        ] {
            if let Some(body) = openapi
                .paths
                .paths
                .get_mut(path)
                .and_then(|item| item.post.as_mut())
                .and_then(|operation| operation.request_body.as_mut())
            {
                body.required = Some(Required::False);
            }
        }
    }
}

/// A realistic enqueue body per job type, on the enqueue endpoint.
struct Examples;

impl Modify for Examples {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(enqueue) = openapi
            .paths
            .paths
            .get_mut("/api/v1/batch/enqueue")
            .and_then(|item| item.post.as_mut())
        else {
            return;
        };
        let Some(body) = enqueue.request_body.as_mut() else {
            return;
        };
        for content in body.content.values_mut() {
            for &job_type in JobType::ALL {
                let example = serde_json::json!({
                    "job_type": job_type.as_str(),
                    "payload": example_payload(job_type),
                    "priority": 50,
                });
                content.examples.insert(
                    job_type.as_str().to_string(),
                    RefOr::T(ExampleBuilder::new().value(Some(example)).build()),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document clients generate code from: a change of shape shows up in review as a
    /// changed snapshot (`cargo insta review`).
    #[test]
    fn the_document_keeps_its_shape() {
        let document: serde_json::Value = serde_json::from_str(document()).unwrap();
        insta::assert_snapshot!(serde_json::to_string_pretty(&document).unwrap());
    }

    /// OpenAPI requires it, and code generators name methods after them.
    #[test]
    fn every_operation_has_its_own_id() {
        let document: serde_json::Value = serde_json::from_str(document()).unwrap();
        let mut seen = std::collections::BTreeMap::new();
        for (path, operations) in document["paths"].as_object().unwrap() {
            for (method, operation) in operations.as_object().unwrap() {
                let id = operation["operationId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                assert!(!id.is_empty(), "{method} {path} has no operationId");
                if let Some(other) = seen.insert(id.clone(), format!("{method} {path}")) {
                    panic!("operationId {id:?} names both {other} and {method} {path}");
                }
            }
        }
    }

    #[test]
    fn links_name_their_operation_as_openapi_spells_it() {
        let document: serde_json::Value = serde_json::from_str(document()).unwrap();
        let link =
            &document["paths"]["/api/v1/batch/enqueue"]["post"]["responses"]["200"]["links"]["job"];
        assert_eq!(link["operationId"], "get", "{link}");
        assert!(link.get("operation_id").is_none(), "{link}");
    }
}
