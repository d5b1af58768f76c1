//! Exports as CSV (the list's filters apply; a trader's own jobs, every job for an admin),
//! streamed a page at a time by keyset, so a million rows never sit in memory.

use app::api::{Caller, DailyCost, Job, JobList, ListCursor, ListQuery};
use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::{daily_costs, list};
use crate::context::Ctx;
use crate::error::Result;

/// Rows per page read from the store (and per chunk sent).
const PAGE: i64 = 1000;

const JOB_HEADER: [&str; 23] = [
    "id",
    "job_type",
    "status",
    "priority",
    "owner",
    "created_at",
    "run_after",
    "completed_at",
    "batch_id",
    "attempts",
    "model",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "standard_cost_usd",
    "savings_usd",
    "idempotency_key",
    "error_message",
    "saved_by_batching_usd",
    "saved_by_caching_usd",
    "cache_read_tokens",
    "cache_write_tokens",
    "context_id",
];

/// A text cell a spreadsheet cannot take for a formula: one that starts with `=`, `+`, `-`,
/// `@`, a tab or a carriage return gets a leading `'` (OWASP's rule for CSV injection), which
/// spreadsheets show as text and do not display. Numbers and times we write are left alone.
fn text(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_string()
    }
}

/// Money in exports is exact: nano-dollars written as dollars with nine decimals.
fn usd(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    format!("{sign}{}.{:09}", n / 1_000_000_000, n % 1_000_000_000)
}

fn job_row(job: &Job) -> [String; 23] {
    let nanos = |usd: f64| (usd * 1e9).round() as i64;
    let time =
        |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    [
        job.id.clone(),
        job.job_type.to_string(),
        job.status.to_string(),
        job.priority.to_string(),
        text(&job.owner),
        job.created_at.to_rfc3339(),
        time(job.run_after),
        time(job.completed_at),
        text(job.batch_id.as_deref().unwrap_or_default()),
        job.tries().to_string(),
        text(job.model.as_deref().unwrap_or_default()),
        job.input_tokens.to_string(),
        job.output_tokens.to_string(),
        usd(nanos(job.cost_usd)),
        usd(nanos(job.standard_cost_usd)),
        usd(nanos(job.savings_usd)),
        text(job.idempotency_key.as_deref().unwrap_or_default()),
        text(job.error_message.as_deref().unwrap_or_default()),
        usd(nanos(job.saved_by_batching_usd)),
        usd(nanos(job.saved_by_caching_usd)),
        job.cache_read_tokens.to_string(),
        job.cache_write_tokens.to_string(),
        text(job.context_id.as_deref().unwrap_or_default()),
    ]
}

/// Rows as CSV (the csv crate quotes what needs quoting).
fn csv_chunk<R: IntoIterator<Item = S>, S: AsRef<[u8]>>(
    rows: impl IntoIterator<Item = R>,
) -> Bytes {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer
            .write_record(row)
            .expect("writing CSV to memory cannot fail");
    }
    Bytes::from(
        writer
            .into_inner()
            .expect("writing CSV to memory cannot fail"),
    )
}

/// The jobs matching `query` (its limit, offset and cursor are ignored), newest first: the
/// header, then one chunk per page. The first page is read before anything is sent, so a
/// query that fails is an error answer, not a download cut short.
pub async fn jobs_csv(
    ctx: Ctx,
    caller: Caller,
    query: ListQuery,
) -> Result<impl Stream<Item = Result<Bytes>>> {
    let first = ListQuery {
        limit: PAGE,
        offset: 0,
        cursor: None,
        ..query
    };
    let page = list(&ctx, &caller, first.clone()).await?;
    let mut chunk = csv_chunk([JOB_HEADER]).to_vec();
    chunk.extend_from_slice(&csv_chunk(page.jobs.iter().map(job_row)));
    let head = futures::stream::once(futures::future::ready(Ok(Bytes::from(chunk))));
    let rest = futures::stream::try_unfold(after(first, &page), move |next| {
        let (ctx, caller) = (ctx.clone(), caller.clone());
        async move {
            let Some(query) = next else {
                return Ok(None);
            };
            let page = list(&ctx, &caller, query.clone()).await?;
            let chunk = csv_chunk(page.jobs.iter().map(job_row));
            Ok(Some((chunk, after(query, &page))))
        }
    });
    Ok(head.chain(rest))
}

/// The query of the page after `page`, if there is one.
fn after(query: ListQuery, page: &JobList) -> Option<ListQuery> {
    let cursor = page.next_cursor.as_deref().and_then(ListCursor::decode)?;
    Some(ListQuery {
        cursor: Some(cursor),
        ..query
    })
}

/// What the visible jobs cost per day, type and owner, as on the Savings page.
pub async fn daily_costs_csv(ctx: &Ctx, caller: &Caller, days: i64) -> Result<Bytes> {
    let rows = daily_costs(ctx, caller, days).await?;
    let header = [
        "day",
        "job_type",
        "owner",
        "jobs",
        "cost_usd",
        "standard_cost_usd",
        "savings_usd",
        "saved_by_batching_usd",
        "saved_by_caching_usd",
    ]
    .map(String::from);
    let row = |d: &DailyCost| {
        [
            d.day.clone(),
            d.job_type.to_string(),
            text(&d.owner),
            d.jobs.to_string(),
            usd(d.cost_nanos),
            usd(d.standard_cost_nanos),
            usd(d.standard_cost_nanos - d.cost_nanos),
            usd(d.standard_cost_nanos - d.uncached_cost_nanos),
            usd(d.uncached_cost_nanos - d.cost_nanos),
        ]
    };
    Ok(csv_chunk(
        std::iter::once(header).chain(rows.iter().map(row)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_start_a_formula_are_written_as_text() {
        for cell in [
            "=cmd|' /C calc'!A0",
            "+1+2",
            "-1+2",
            "@SUM(1,1)",
            "\tx",
            "\rx",
        ] {
            assert_eq!(text(cell), format!("'{cell}"));
        }
        for cell in ["alice", "", "1+2", "a=b"] {
            assert_eq!(text(cell), cell);
        }
    }

    #[test]
    fn dollars_are_written_exactly() {
        assert_eq!(usd(0), "0.000000000");
        assert_eq!(usd(1_234_567_891), "1.234567891");
        assert_eq!(usd(-5), "-0.000000005");
    }
}
