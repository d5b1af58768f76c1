//! Benchmark helper: tops a database up to `--total` jobs through the real enqueue use case,
//! spread over `--owners` traders, with a mix of job types and priorities, `--concurrency`
//! at a time. A quarter of the jobs name NVDA, one in 5,000 says "restatement"
//! (`bench-search.sh` searches both).
//!
//! cargo run --release -p server --example seed_jobs -- --database-url sqlite://… --total 100000

use ai_batch::config::Config;
use ai_batch::{access, jobs, serve};
use app::api::{EnqueueRequest, JobType, ListQuery, Role};
use clap::Parser;
use serde_json::json;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: Config,
    #[arg(long, default_value_t = 100_000)]
    total: i64,
    #[arg(long, default_value_t = 10)]
    owners: usize,
    #[arg(long, default_value_t = 1)]
    concurrency: i64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ctx = serve::connect(&args.config).await?;
    let admin = access::issue_token(ctx.store(), "seed-admin", Role::Admin).await?;
    let admin = access::authenticate_token(ctx.store(), &admin.plain).await?;
    let existing = jobs::list(
        &ctx,
        &admin,
        ListQuery {
            limit: 1,
            ..ListQuery::default()
        },
    )
    .await?
    .total_count;
    let mut owners = Vec::new();
    for i in 0..args.owners {
        let issued = access::issue_token(ctx.store(), &format!("trader-{i}"), Role::Trader).await?;
        owners.push(access::authenticate_token(ctx.store(), &issued.plain).await?);
    }
    let started = std::time::Instant::now();
    let missing = (args.total - existing).max(0);
    let owners = std::sync::Arc::new(owners);
    let workers: Vec<_> = (0..args.concurrency)
        .map(|worker| {
            let (ctx, owners, step) = (ctx.clone(), owners.clone(), args.concurrency);
            tokio::spawn(async move {
                let mut n = worker;
                while n < missing {
                    let job_type = JobType::ALL[n as usize % JobType::ALL.len()];
                    let ticker = ["AAPL", "MSFT", "NVDA", "TSLA"][n as usize % 4];
                    let mut payload = json!({"ticker": ticker, "n": n});
                    // A word one job in 5,000 carries (200 at a million): the rare search.
                    if n % 5_000 == 0 {
                        payload["note"] = json!("restatement");
                    }
                    let request = EnqueueRequest::new(job_type, payload, n % 101);
                    jobs::enqueue(&ctx, &owners[n as usize % owners.len()], request).await?;
                    n += step;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    eprintln!(
        "seeded {missing} jobs (now {}) in {:.1} s",
        existing + missing,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
