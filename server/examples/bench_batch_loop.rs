//! Benchmark of the batch loop against a standalone emulator: `--flushes` flushes of
//! `--jobs-per-flush` jobs each (time, memory), then the ingest of all their results
//! (lines per second, memory growth), then a check that the totals still equal a recount.
//! Run by scripts/bench.sh, which reads its `summary:` lines.

use std::time::Instant;

// The server's allocator (src/main.rs), so time and memory are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use ai_batch::config::Config;
use ai_batch::provider::ProcessingStatus;
use ai_batch::{access, batches, jobs, serve};
use app::api::{EnqueueRequest, FlushRequest, JobType, ProviderName, Role};
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: Config,
    #[arg(long, default_value_t = 10)]
    flushes: usize,
    #[arg(long, default_value_t = 10_000)]
    jobs_per_flush: i64,
    /// Every job at this priority (the API's default is 0); without it, 0 to 100 in turn.
    #[arg(long)]
    priority: Option<i64>,
}

/// Resident and peak memory of this process, in MiB, from /proc.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak (VmHWM) to the current resident size, so each phase measures its own peak.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ctx = serve::connect(&args.config).await?;
    let admin = access::issue_token(ctx.store(), "bench-admin", Role::Admin).await?;
    let admin = access::authenticate_token(ctx.store(), &admin.plain).await?;
    let mut owners = Vec::new();
    for i in 0..10 {
        let issued =
            access::issue_token(ctx.store(), &format!("bench-trader-{i}"), Role::Trader).await?;
        owners.push(access::authenticate_token(ctx.store(), &issued.plain).await?);
    }

    println!("| flush | started (UTC) | jobs | time (s) | RSS before (MiB) | peak during (MiB) |");
    println!("|---|---|---|---|---|---|");
    let mut batch_ids = Vec::new();
    let (mut flush_seconds, mut slowest, mut highest) = (0.0f64, 0.0f64, 0.0f64);
    for round in 0..args.flushes {
        // The jobs to flush, ten at a time per owner through bulk enqueue: the flush is measured.
        for (o, owner) in owners.iter().enumerate() {
            let requests: Vec<EnqueueRequest> = (0..args.jobs_per_flush)
                .filter(|n| *n as usize % owners.len() == o)
                .map(|n| {
                    let job_type = JobType::ALL[n as usize % JobType::ALL.len()];
                    EnqueueRequest::new(
                        job_type,
                        app::api::examples::example_payload(job_type),
                        args.priority.unwrap_or(n % 101),
                    )
                })
                .collect();
            let prepared = jobs::prepare_many(&ctx, owner, requests.into_iter().map(Ok)).await?;
            jobs::enqueue_many(&ctx, owner, prepared).await?;
        }
        let (before, _) = memory();
        reset_peak();
        let started_at = chrono::Utc::now().format("%H:%M:%S%.3f");
        let started = Instant::now();
        let answer = batches::flush(
            &ctx,
            &admin,
            FlushRequest::options(args.jobs_per_flush, None, 0),
        )
        .await?;
        let seconds = started.elapsed().as_secs_f64();
        let (_, peak) = memory();
        println!(
            "| {} | {started_at} | {} | {seconds:.2} | {before:.0} | {peak:.0} |",
            round + 1,
            answer.jobs_count
        );
        flush_seconds += seconds;
        slowest = slowest.max(seconds);
        highest = highest.max(peak);
        batch_ids.push(answer.batch_id.unwrap_or_default());
    }
    let flushed = args.flushes as i64 * args.jobs_per_flush;
    println!(
        "summary: flush_total_jobs={flushed} flush_total_s={flush_seconds:.2} flush_slowest_s={slowest:.2} flush_peak_rss_mib={highest:.0}"
    );

    // A real provider has a batch's results ready when it says the batch ended; the emulator
    // computes them the first time it is asked after that (about a quarter of a second for
    // 10,000). Asked here first, so that work is not timed as the product's ingest.
    let ready = Instant::now();
    let provider = ctx.provider(ProviderName::Anthropic)?;
    for id in &batch_ids {
        while provider.retrieve_batch(id).await?.processing_status != ProcessingStatus::Ended {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    println!(
        "provider: every batch ended, its results ready, {:.1} s after the last flush",
        ready.elapsed().as_secs_f64()
    );

    let (before, _) = memory();
    reset_peak();
    let started = Instant::now();
    let mut lines = 0;
    for id in &batch_ids {
        loop {
            let answer = batches::poll(&ctx, &admin, id).await?;
            if answer.status == "ended" {
                lines += answer.jobs_processed;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let (_, peak) = memory();
    let stats = jobs::stats(&ctx, &admin).await?;
    println!();
    println!(
        "ingest: {lines} result lines in {seconds:.1} s = {:.0} lines/s; RSS before {before:.0} MiB, peak {peak:.0} MiB (growth {:.0} MiB); completed jobs {}",
        lines as f64 / seconds,
        peak - before,
        stats.completed_jobs
    );
    let exact = ctx
        .store()
        .totals(&ai_batch::store::Visibility::All)
        .await?
        == ctx.store().recount_totals().await?;
    println!(
        "summary: ingest_lines_per_s={:.0} ingest_rss_growth_mib={:.0} totals_equal_recount={exact}",
        lines as f64 / seconds,
        peak - before
    );
    Ok(())
}
