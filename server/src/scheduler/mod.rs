//! Background duties of `serve`: small named services, each with one job, started and
//! stopped together, each able to be switched off (BatchConfig). With several instances on
//! one database, they run only on the leader (`leader`); an admin's flush or poll may come
//! through any instance, and the store's guards and batch leases keep them apart.

mod leader;

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::batches;
use crate::context::Ctx;

pub struct Scheduler {
    stop: CancellationToken,
    services: JoinSet<()>,
}

impl Scheduler {
    /// Starts the enabled services; `None` when the scheduler is switched off.
    pub fn start(ctx: &Ctx) -> Option<Self> {
        let config = &ctx.config.batch;
        if !config.scheduler {
            tracing::info!("scheduler switched off");
            return None;
        }
        let stop = CancellationToken::new();
        let mut services = JoinSet::new();
        services.spawn(leader::lead(ctx.clone(), stop.clone()));
        let tick = Duration::from_millis(config.tick_ms.max(10));
        if config.rescuer {
            // The rescuer looks less often: lost creates are rare, and its lease waits anyway.
            services.spawn(every(
                "rescuer",
                tick.max(Duration::from_secs(1))
                    .min(Duration::from_secs(10)),
                stop.clone(),
                ctx.clone(),
                rescue,
            ));
        }
        if config.rescuer && config.stray_search_secs > 0 {
            let every_search = Duration::from_secs(config.stray_search_secs);
            let (stop, ctx) = (stop.clone(), ctx.clone());
            // The first search waits a round too: nothing can have strayed at start-up that
            // the next search would not find.
            services.spawn(async move {
                let stopped = tokio::select! {
                    _ = stop.cancelled() => true,
                    _ = tokio::time::sleep(every_search) => false,
                };
                if !stopped {
                    every("stray-search", every_search, stop, ctx, search_strays).await;
                }
            });
        }
        if config.auto_flush {
            services.spawn(every(
                "auto-flush",
                tick,
                stop.clone(),
                ctx.clone(),
                auto_flush,
            ));
        }
        if config.auto_poll {
            services.spawn(every(
                "auto-poll",
                tick,
                stop.clone(),
                ctx.clone(),
                auto_poll,
            ));
        }
        if ctx.config.webhooks.enabled {
            services.spawn(every(
                "webhooks",
                tick,
                stop.clone(),
                ctx.clone(),
                deliver_webhooks,
            ));
        }
        Some(Self { stop, services })
    }

    /// Asks every service to stop and waits for them.
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.services.join_next().await.is_some() {}
    }
}

/// Longest pause before a service that keeps failing runs again.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Runs `duty` now and then every `tick` until stopped. A failure is logged, never fatal: a
/// round that fails or panics is followed by a pause that doubles with each failure in a row
/// (at most a minute), then the service goes on.
async fn every<C, F, Fut>(
    name: &'static str,
    tick: Duration,
    stop: CancellationToken,
    ctx: C,
    duty: F,
) where
    C: Clone,
    F: Fn(C) -> Fut,
    Fut: Future<Output = crate::error::Result<()>> + Send + 'static,
{
    tracing::info!(
        service = name,
        every_ms = tick.as_millis() as u64,
        "scheduler service started"
    );
    let mut failures = 0u32;
    loop {
        // Each round is a task of its own, so a panic ends the round, not the service.
        let round = tokio::spawn(duty(ctx.clone()));
        let failed = match round.await {
            Ok(Ok(())) => false,
            Ok(Err(e)) => {
                tracing::warn!(service = name, error = %e, "scheduler service failed this round");
                true
            }
            Err(e) => {
                tracing::error!(service = name, error = %e, "scheduler service panicked; restarting it");
                true
            }
        };
        failures = if failed {
            failures.saturating_add(1)
        } else {
            0
        };
        let pause = if failures == 0 {
            tick
        } else {
            tick.saturating_mul(2u32.saturating_pow(failures.min(16)))
                .min(MAX_BACKOFF.max(tick))
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    tracing::info!(service = name, "scheduler service stopped");
}

/// Flushes when the flush rule says it is time (`batches::auto_flush`).
async fn auto_flush(ctx: Ctx) -> crate::error::Result<()> {
    if !ctx.is_leader() {
        return Ok(());
    }
    if let Some(answer) = batches::auto_flush(&ctx).await? {
        tracing::info!(jobs = answer.jobs_count, batch = ?answer.batch_id, "auto-flush: {}", answer.message);
    }
    Ok(())
}

async fn auto_poll(ctx: Ctx) -> crate::error::Result<()> {
    if !ctx.is_leader() {
        return Ok(());
    }
    batches::poll_due(&ctx).await.map(|_| ())
}

/// Reconciles batches whose create answer was lost, sweeps settled create windows for
/// duplicates, and releases the provider's copies a fault left. Leases keep it off batches
/// whose create is still in flight.
async fn rescue(ctx: Ctx) -> crate::error::Result<()> {
    if !ctx.is_leader() {
        return Ok(());
    }
    let report = batches::reconcile(&ctx).await?;
    if !report.is_empty() {
        tracing::warn!(?report, "rescuer reconciled batches");
    }
    let released = batches::release_pending(&ctx).await?;
    if released > 0 {
        tracing::info!(
            released,
            "rescuer released the provider's copies of ingested batches"
        );
    }
    Ok(())
}

/// Looks for provider batches of ours that no create window holds (`batches::find_strays`),
/// and for uploads of ours no batch needs any more.
async fn search_strays(ctx: Ctx) -> crate::error::Result<()> {
    if !ctx.is_leader() {
        return Ok(());
    }
    let recorded = batches::find_strays(&ctx).await?;
    if recorded > 0 {
        tracing::warn!(
            recorded,
            "stray search recorded provider batches missing from the books"
        );
    }
    let deleted = batches::delete_leftover_uploads(&ctx).await?;
    if deleted > 0 {
        tracing::info!(
            deleted,
            "deleted uploads at the provider that no batch needs"
        );
    }
    Ok(())
}

/// Sends the webhooks of jobs that ended; a slow receiver holds up only this service.
async fn deliver_webhooks(ctx: Ctx) -> crate::error::Result<()> {
    if !ctx.is_leader() {
        return Ok(());
    }
    crate::webhooks::deliver_due(&ctx).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_service_whose_rounds_fail_or_panic_backs_off_and_goes_on() {
        let rounds = Arc::new(AtomicU32::new(0));
        let stop = CancellationToken::new();
        let service = tokio::spawn(every("test", Duration::from_secs(1), stop.clone(), (), {
            let rounds = rounds.clone();
            move |_| {
                let round = rounds.fetch_add(1, Ordering::SeqCst);
                async move {
                    match round {
                        0 => panic!("a bug in the first round"),
                        1 => Err(crate::error::Error::BadInput("a failed round".into())),
                        _ => Ok(()),
                    }
                }
            }
        }));
        // Round 0 panics (pause 2 s), round 1 fails (pause 4 s), then every second.
        tokio::time::sleep(Duration::from_millis(5_500)).await;
        assert_eq!(
            rounds.load(Ordering::SeqCst),
            2,
            "backed off after failures"
        );
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        assert_eq!(
            rounds.load(Ordering::SeqCst),
            5,
            "back to its tick, still running"
        );
        stop.cancel();
        service.await.unwrap();
    }
}
