//! Operator commands that act on a running service through its REST API, with an admin token.

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

#[derive(clap::Args)]
pub struct Remote {
    /// The running service.
    #[arg(long, env = "AI_BATCH_URL", default_value = "http://127.0.0.1:3000")]
    url: String,
    /// An admin's bearer token.
    #[arg(long, env = "AI_BATCH_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(clap::Args)]
pub struct FlushArgs {
    #[command(flatten)]
    remote: Remote,
    /// Most jobs to send (1–10000).
    #[arg(long, default_value_t = 100)]
    max_jobs: i64,
    /// Only these job types (comma-separated).
    #[arg(long, value_delimiter = ',')]
    job_types: Vec<String>,
    /// Only jobs of at least this priority.
    #[arg(long, default_value_t = 0)]
    min_priority: i64,
}

#[derive(clap::Args)]
pub struct PollArgs {
    #[command(flatten)]
    remote: Remote,
    /// The batch to poll (`msgbatch_…`); every open batch when left out.
    #[arg(long)]
    batch_id: Option<String>,
}

impl Remote {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let mut request = reqwest::Client::new()
            .request(method, &url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{status}: {}", answer.get("detail").unwrap_or(&answer));
        }
        Ok(answer)
    }
}

pub async fn flush(args: FlushArgs) -> anyhow::Result<()> {
    let job_types = (!args.job_types.is_empty()).then_some(args.job_types);
    let body = json!({"max_jobs": args.max_jobs, "job_types": job_types, "min_priority": args.min_priority});
    let answer = args
        .remote
        .call(
            reqwest::Method::POST,
            "/api/v1/batch/internal/flush",
            Some(body),
        )
        .await?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

pub async fn poll(args: PollArgs) -> anyhow::Result<()> {
    let ids = match args.batch_id {
        Some(id) => vec![id],
        None => {
            let list = args
                .remote
                .call(
                    reqwest::Method::GET,
                    "/api/v1/batch/internal/batches?limit=1000",
                    None,
                )
                .await?;
            let open = list["batches"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|b| b["results_collected"] == false);
            open.filter_map(|b| b["batch_id"].as_str().map(String::from))
                .collect()
        }
    };
    if ids.is_empty() {
        println!("No open batches to poll.");
    }
    for id in ids {
        let answer = args
            .remote
            .call(
                reqwest::Method::POST,
                "/api/v1/batch/internal/poll",
                Some(json!({"batch_id": id})),
            )
            .await?;
        println!("{}", serde_json::to_string_pretty(&answer)?);
    }
    Ok(())
}
