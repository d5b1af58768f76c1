//! What providers tell us: OpenAI's batch webhooks (`batch.completed`, `batch.failed`,
//! `batch.expired`, `batch.cancelled`), signed by Standard Webhooks with the endpoint's
//! `whsec_…` secret. Not part of the REST API (no token: the signature is the credential),
//! so not in its OpenAPI document. An ended batch is polled at the next scheduler tick.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use crate::context::Ctx;
use crate::error::{Error, Result};

/// The largest event body read: OpenAI's batch events are a few hundred bytes.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    id: String,
}

pub async fn openai(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Result<StatusCode> {
    let Some(secret) = ctx.config.openai.webhook_secret.as_deref() else {
        return Err(Error::NotFound(
            "OpenAI webhooks are not set up here (OPENAI_WEBHOOK_SECRET)".into(),
        ));
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let signed = crate::webhooks::verify(
        secret,
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        &body,
        chrono::Utc::now().timestamp(),
    );
    if !signed {
        return Err(Error::Unauthenticated);
    }
    let event: Event = serde_json::from_slice(&body)
        .map_err(|e| Error::BadInput(format!("not an OpenAI event: {e}")))?;
    if matches!(
        event.kind.as_str(),
        "batch.completed" | "batch.failed" | "batch.expired" | "batch.cancelled"
    ) {
        let due = crate::batches::poll_soon(&ctx, &event.data.id).await?;
        tracing::info!(batch = %event.data.id, event = %event.kind, due, "OpenAI says a batch ended");
    }
    // Any event we do not act on is acknowledged too, so OpenAI does not send it again.
    Ok(StatusCode::OK)
}
