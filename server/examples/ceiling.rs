//! The ceiling of the enqueue benchmark: a bare axum handler at the enqueue path that parses
//! the same body into JSON and answers a small JSON object, with nothing behind it (no
//! authentication, validation or storage). scripts/bench.sh measures it beside our enqueue in
//! the same run, so the ratio between them holds on any machine.
//!
//! cargo run --release -p server --example ceiling -- 127.0.0.1:4000

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4000".into());
    let app = axum::Router::new().route(
        "/api/v1/batch/enqueue",
        post(|Json(body): Json<Value>| async move {
            Json(json!({"success": true, "job_type": body["job_type"]}))
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
