//! Admin endpoints that drive batches. Flush and poll are validated and authorised now; the
//! batch loop that carries them out is not built yet, so they answer 501 rather than pretend.

use app::api::validation::{parse_flush, parse_poll};
use axum::Json;
use serde_json::Value;

use super::extract::{AdminUser, JsonBody, OptionalJsonBody};
use crate::error::{Error, Result};

pub async fn flush(
    AdminUser(admin): AdminUser,
    OptionalJsonBody(body): OptionalJsonBody,
) -> Result<Json<Value>> {
    let request = parse_flush(&body)?;
    tracing::info!(admin = %admin.name, ?request, "flush requested");
    Err(Error::NotImplemented("Flush is not implemented yet: the batch loop that submits jobs to Anthropic is still to be built.".into()))
}

pub async fn poll(AdminUser(admin): AdminUser, JsonBody(body): JsonBody) -> Result<Json<Value>> {
    let request = parse_poll(&body)?;
    tracing::info!(admin = %admin.name, batch_id = %request.batch_id, "poll requested");
    Err(Error::NotImplemented("Poll is not implemented yet: the batch loop that collects results from Anthropic is still to be built.".into()))
}
