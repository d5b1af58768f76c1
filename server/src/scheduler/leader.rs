//! The scheduler's side of leadership (`crate::leadership`): the lease is renewed every fifth
//! of its span, and handed over when the scheduler stops.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::context::Ctx;

pub(super) async fn lead(ctx: Ctx, stop: CancellationToken) {
    let span = chrono::Duration::seconds(ctx.config.batch.leader_lease_secs.max(1) as i64);
    let every = (span / 5).to_std().unwrap_or(Duration::from_secs(1));
    loop {
        crate::leadership::hold(&ctx, span).await;
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
    crate::leadership::resign(&ctx).await;
}
