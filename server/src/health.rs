//! Whether this instance can serve: what load balancers ask at `/healthz`.

use crate::context::Ctx;

/// How long the database may take to answer before the instance counts as unhealthy.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether the database answers a round trip in time.
pub async fn database_answers(ctx: &Ctx) -> bool {
    matches!(
        tokio::time::timeout(PATIENCE, ctx.store().ping()).await,
        Ok(Ok(()))
    )
}
