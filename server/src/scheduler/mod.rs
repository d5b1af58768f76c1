//! Background duties of `serve`: small named services, each with one job, started and
//! stopped together, each able to be switched off (BatchConfig).

use std::future::Future;
use std::time::Duration;

use app::api::FlushRequest;
use chrono::Utc;
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
        let tick = Duration::from_millis(config.tick_ms.max(10));
        if config.rescuer {
            let started = Utc::now();
            // The rescuer looks less often: stuck submissions are rare.
            services.spawn(every(
                "rescuer",
                tick.max(Duration::from_secs(10)),
                stop.clone(),
                ctx.clone(),
                move |ctx| rescue(ctx, started),
            ));
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
        Some(Self { stop, services })
    }

    /// Asks every service to stop and waits for them.
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.services.join_next().await.is_some() {}
    }
}

/// Runs `duty` now and then every `tick` until stopped; a failure is logged, never fatal.
async fn every<F, Fut>(
    name: &'static str,
    tick: Duration,
    stop: CancellationToken,
    ctx: Ctx,
    duty: F,
) where
    F: Fn(Ctx) -> Fut,
    Fut: Future<Output = crate::error::Result<()>>,
{
    tracing::info!(
        service = name,
        every_ms = tick.as_millis() as u64,
        "scheduler service started"
    );
    loop {
        if let Err(e) = duty(ctx.clone()).await {
            tracing::warn!(service = name, error = %e, "scheduler service failed this round");
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(tick) => {}
        }
    }
    tracing::info!(service = name, "scheduler service stopped");
}

/// Flushes when enough jobs are eligible, or when one has waited the flush interval.
async fn auto_flush(ctx: Ctx) -> crate::error::Result<()> {
    let now = Utc::now();
    let (eligible, waiting_since) = ctx.store().eligible_summary(now).await?;
    let waited_enough = waiting_since.is_some_and(|since| {
        (now - since).to_std().unwrap_or_default() >= ctx.config.flush_interval()
    });
    if eligible > 0 && (eligible >= ctx.config.batch.auto_flush_min_jobs || waited_enough) {
        let request = FlushRequest {
            max_jobs: ctx.config.batch.auto_flush_max_jobs,
            job_types: None,
            min_priority: 0,
        };
        let answer = batches::flush(&ctx, request).await?;
        tracing::info!(jobs = answer.jobs_count, batch = ?answer.batch_id, "auto-flush: {}", answer.message);
    }
    Ok(())
}

async fn auto_poll(ctx: Ctx) -> crate::error::Result<()> {
    batches::poll_due(&ctx).await.map(|_| ())
}

/// Batches from before this process started cannot have a call in flight: reconcile them at
/// once. Later ones get the configured grace period.
async fn rescue(ctx: Ctx, started: chrono::DateTime<Utc>) -> crate::error::Result<()> {
    let grace = chrono::Duration::seconds(ctx.config.batch.submit_stale_secs as i64);
    let stale_before = started.max(Utc::now() - grace);
    let report = batches::reconcile_stale(&ctx, stale_before).await?;
    if report != Default::default() {
        tracing::warn!(?report, "rescuer reconciled stuck submissions");
    }
    Ok(())
}
