//! When a batch is polled: soon after it is sent, then more sparsely as it ages; later after
//! failures; soon again when its results could not all be read.

use chrono::{DateTime, Duration, Utc};

use crate::context::Ctx;
use crate::store::BatchRecord;

/// Longest wait between polls of a batch that is still running.
const MAX_POLL_GAP: Duration = Duration::minutes(5);

pub(super) fn first_poll_delay(ctx: &Ctx) -> Duration {
    Duration::seconds(ctx.config.batch.poll_interval_secs as i64)
}

/// Polls grow sparser as a batch ages (a quarter of its age), between the interval and 5 min.
pub(super) fn next_poll(ctx: &Ctx, batch: &BatchRecord, now: DateTime<Utc>) -> DateTime<Utc> {
    let age = now - batch.submitted_at.unwrap_or(batch.created_at);
    now + (age / 4).clamp(
        first_poll_delay(ctx),
        MAX_POLL_GAP.max(first_poll_delay(ctx)),
    )
}

/// After a failed poll: the interval doubled per consecutive failure, at most 30 min.
pub(super) fn retry_poll(ctx: &Ctx, failures: i64, now: DateTime<Utc>) -> DateTime<Utc> {
    let factor = 2i32.saturating_pow(failures.clamp(0, 16) as u32);
    now + (first_poll_delay(ctx) * factor).min(Duration::minutes(30))
}

/// When a batch whose results could not all be read is read again.
pub(super) fn read_again_at(ctx: &Ctx, now: DateTime<Utc>) -> DateTime<Utc> {
    now + first_poll_delay(ctx)
}
