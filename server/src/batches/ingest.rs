//! Collecting an ended batch's results: streamed, written in chunked transactions (a cut
//! download leaves every job either fully written or untouched, and the next poll resumes),
//! one bad line failing only its job. A file that ends short of the batch, or is not found, is
//! read again; what is still missing after that is settled by the outcome rules without
//! sending a job twice. A duplicate batch's results only add what they were billed.

use std::collections::HashMap;

use app::api::{POLL_RESULTS_CAP, PollResult};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::value::RawValue;
use tokio_util::task::AbortOnDropHandle;

use super::cadence::read_again_at;
use super::joined;
use super::outcome::{
    Rules, decide, decide_unreadable, discarded, duplicate_charge, settle_missing,
};
use crate::context::Ctx;
use crate::error::Result;
use crate::provider::{BatchResult, MessageBatch, ResultItem, ResultStream};
use crate::store::{
    BatchRecord, BatchStatus, DuplicateCharge, JobUpdate, StoreError, StoreResult, Transition,
    Updated,
};

/// Results written per transaction: big enough to be fast, small enough to keep locks short
/// (about 60 ms of SQLite's one writer).
const CHUNK: usize = 1000;
/// Reads of a results file that did not deliver every result, before what is missing is settled.
const INCOMPLETE_READ_LIMIT: i64 = 5;
/// Writes of one chunk the database stopped as busy (a deadlock between two chunks' writes),
/// before the poll gives up on the batch until the next one.
const WRITE_ATTEMPTS: u32 = 5;
/// Chunks decided and waiting for the writer: enough that the writer never waits on a JSON
/// parse, few enough to keep memory flat (a chunk of answers is about half a megabyte).
const DECIDED_AHEAD: usize = 2;

pub(super) enum Collected {
    Done {
        results: Vec<PollResult>,
        processed: i64,
    },
    /// Not every result could be read; the file is read again at the next poll.
    ReadAgain {
        results: Vec<PollResult>,
        processed: i64,
        note: String,
    },
    /// Another worker collected the results while this one read them (its lease lapsed while
    /// it was frozen): this read changed nothing.
    ByAnother,
}

/// What one read of the file delivered.
#[derive(Default)]
struct Read {
    lines: i64,
    processed: i64,
    reports: Vec<PollResult>,
}

pub(super) async fn collect(
    ctx: &Ctx,
    batch: &BatchRecord,
    remote: &MessageBatch,
) -> Result<Collected> {
    let mut read = Read::default();
    // Test failpoint: a frozen poller, between its retrieve and its read of the results.
    if ctx.config.at_failpoint("slow-results-read") {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    }
    let stream = match async { ctx.provider(batch.provider)?.batch_results(remote).await }.await {
        Ok(stream) => stream,
        Err(e) if e.is_not_found() => {
            let note = format!(
                "{} no longer has this batch's results file (404)",
                batch.provider.label()
            );
            return incomplete(ctx, batch, remote, read, &note, BatchStatus::Lost).await;
        }
        Err(e) => return Err(e.into()),
    };
    // Two stages at once: while one chunk is written, the next ones are read and decided on a
    // task of their own, so the reading, JSON and deciding run on another core than the one
    // feeding the writer its statements (on SQLite the writer is a thread of its own, on
    // PostgreSQL another process). A chunk decided before the one ahead of it was written is
    // still safe: its updates are guarded by the states they were decided on, so a line
    // repeated across chunks changes nothing the second time. Where the store writes two
    // chunks at once (PostgreSQL), the later one's guard is checked again on the row the
    // earlier one committed, whose lock it waits for; they are counted in the file's order.
    let (decided_tx, mut decided_rx) = tokio::sync::mpsc::channel::<Decided>(DECIDED_AHEAD);
    let deciding = AbortOnDropHandle::new(tokio::spawn(decide_all(
        ctx.clone(),
        batch.clone(),
        remote.clone(),
        stream,
        decided_tx,
    )));
    let mut writing = futures::stream::poll_fn(|cx| decided_rx.poll_recv(cx))
        .map(|decided| write_chunk(ctx, remote, decided))
        .buffered(ctx.store().result_writers());
    while let Some(written) = writing.next().await {
        // Returning early drops the deciding task's handle, which stops it, and rolls back
        // a chunk still being written.
        read.count(&remote.id, written?);
    }
    joined(deciding.await)??;
    if read.lines < remote.request_counts.total() {
        let note = format!(
            "the results file ended after {} of {} results",
            read.lines,
            remote.request_counts.total()
        );
        return incomplete(ctx, batch, remote, read, &note, BatchStatus::Ended).await;
    }
    finish(ctx, batch, remote, read, BatchStatus::Ended, None).await
}

/// A read that did not deliver every result: read again, up to the limit, then settle.
async fn incomplete(
    ctx: &Ctx,
    batch: &BatchRecord,
    remote: &MessageBatch,
    read: Read,
    note: &str,
    settled_status: BatchStatus,
) -> Result<Collected> {
    let now = Utc::now();
    if batch.short_reads + 1 < INCOMPLETE_READ_LIMIT {
        let note = format!("{note}; it will be read again");
        let recorded = ctx
            .store()
            .record_short_read(&batch.id, read_again_at(ctx, now), &note)
            .await?;
        if recorded.is_none() {
            return Ok(by_another(read));
        }
        tracing::warn!(batch = %remote.id, "{note}");
        return Ok(Collected::ReadAgain {
            results: read.reports,
            processed: read.processed,
            note,
        });
    }
    let note = format!("{note}, {INCOMPLETE_READ_LIMIT} times");
    finish(ctx, batch, remote, read, settled_status, Some(note)).await
}

/// Settles the jobs the file left out, then marks the batch collected.
async fn finish(
    ctx: &Ctx,
    batch: &BatchRecord,
    remote: &MessageBatch,
    mut read: Read,
    status: BatchStatus,
    note: Option<String>,
) -> Result<Collected> {
    let now = Utc::now();
    let billed_unseen =
        remote.request_counts.succeeded - ctx.store().charged_results(&remote.id).await?;
    // Most files deliver every result: one count spares reading every member's state.
    if batch.duplicate_of.is_none() && ctx.store().batch_remaining(&remote.id).await? > 0 {
        let members = ctx.store().batch_members(&batch.id).await?;
        let missing: Vec<_> = ctx
            .store()
            .job_states(&remote.id, &members)
            .await?
            .into_iter()
            .filter(|s| s.status == app::api::JobStatus::Processing)
            .collect();
        if !missing.is_empty() {
            let why = note.as_deref().map_or_else(
                || {
                    format!(
                        "{}'s results file did not include this job",
                        batch.provider.label()
                    )
                },
                |n| {
                    format!(
                        "{}'s results for this job could not be read ({n})",
                        batch.provider.label()
                    )
                },
            );
            let rules = rules(ctx, batch, &remote.id, now);
            let decisions: Vec<_> = missing
                .iter()
                .filter_map(|s| settle_missing(s, billed_unseen, &why, &rules).map(|d| (s, d)))
                .collect();
            let updates: Vec<JobUpdate> = decisions
                .iter()
                .map(|(s, d)| JobUpdate {
                    job_id: s.id.clone(),
                    expected_attempts: s.attempts,
                    transition: d.transition.clone(),
                    event: d.event.clone(),
                })
                .collect();
            let updated = ctx.store().apply_updates(&remote.id, &updates, now).await?;
            let mut reports: HashMap<_, _> = decisions
                .into_iter()
                .map(|(s, d)| (s.id.clone(), d.report))
                .collect();
            report(&mut read, &remote.id, &updated, &mut reports, &updates);
        }
    }
    let counts = serde_json::to_value(remote.request_counts).unwrap_or_default();
    let finished = ctx
        .store()
        .finish_batch(
            &batch.id,
            status,
            &counts,
            remote.ended_at.unwrap_or(now),
            billed_unseen.max(0),
            note.as_deref(),
        )
        .await?;
    if !finished {
        return Ok(by_another(read));
    }
    if billed_unseen > 0 {
        tracing::error!(batch = %remote.id, billed_unseen, "the provider billed results of this batch that could not be read");
    }
    // A batch has ended: the typical duration behind estimates may have moved.
    ctx.caches.batch_duration.invalidate(&());
    if status == BatchStatus::Ended {
        super::release::release(ctx, batch.provider, &remote.id).await;
    }
    Ok(Collected::Done {
        results: read.reports,
        processed: read.processed,
    })
}

/// A read that found the batch collected by another worker when it came to record its end.
/// What it wrote before (its updates, guarded by the states they were decided on) still counts.
fn by_another(read: Read) -> Collected {
    if read.processed == 0 {
        Collected::ByAnother
    } else {
        Collected::Done {
            results: read.reports,
            processed: read.processed,
        }
    }
}

fn rules<'a>(
    ctx: &'a Ctx,
    batch: &BatchRecord,
    provider_batch_id: &'a str,
    now: DateTime<Utc>,
) -> Rules<'a> {
    Rules {
        prices: &ctx.prices,
        provider: batch.provider.label(),
        max_attempts: ctx.config.batch.max_attempts,
        batch: provider_batch_id,
        processing_time_ms: (now - batch.submitted_at.unwrap_or(batch.created_at))
            .num_milliseconds(),
    }
}

/// A chunk of `lines` results, decided at `now` on the states its jobs were in when read.
struct Decided {
    lines: usize,
    now: DateTime<Utc>,
    outcomes: Outcomes,
}

enum Outcomes {
    /// A duplicate batch's lines: only what they were billed.
    Duplicate(Vec<DuplicateCharge>),
    Updates {
        updates: Vec<JobUpdate>,
        reports: HashMap<String, PollResult>,
    },
}

/// The deciding stage: the file read in chunks, each decided and handed to the writer. Stops
/// at the end of the file, at a broken download (its error is returned), or when the writer
/// has stopped on an error of its own (which `collect` returns).
async fn decide_all(
    ctx: Ctx,
    batch: BatchRecord,
    remote: MessageBatch,
    mut stream: ResultStream,
    decided: tokio::sync::mpsc::Sender<Decided>,
) -> Result<()> {
    let mut chunk = Vec::with_capacity(CHUNK);
    loop {
        let item = stream.next().await;
        let end = item.is_none();
        if let Some(item) = item {
            chunk.push(item?);
        }
        if chunk.len() == CHUNK || (end && !chunk.is_empty()) {
            let items = std::mem::take(&mut chunk);
            let chunk_decided = decide_chunk(&ctx, &batch, &remote, items).await?;
            if decided.send(chunk_decided).await.is_err() {
                return Ok(());
            }
        }
        if end {
            return Ok(());
        }
    }
}

async fn decide_chunk(
    ctx: &Ctx,
    batch: &BatchRecord,
    remote: &MessageBatch,
    items: Vec<ResultItem>,
) -> Result<Decided> {
    let lines = items.len();
    crate::metrics::results_ingested(lines);
    let now = Utc::now();
    if batch.duplicate_of.is_some() {
        let charges = items
            .iter()
            .filter_map(|item| match item {
                ResultItem::Line(line) => match &line.result {
                    BatchResult::Succeeded { message } => duplicate_charge(
                        &line.custom_id,
                        Some("succeeded"),
                        message["model"].as_str(),
                        Some(&message["usage"]),
                        &ctx.prices,
                    ),
                    _ => None,
                },
                ResultItem::Unreadable(u) => u.custom_id.as_deref().and_then(|id| {
                    duplicate_charge(
                        id,
                        u.result_type.as_deref(),
                        None,
                        u.usage.as_ref(),
                        &ctx.prices,
                    )
                }),
            })
            .collect();
        return Ok(Decided {
            lines,
            now,
            outcomes: Outcomes::Duplicate(charges),
        });
    }

    let ids: Vec<String> = items
        .iter()
        .filter_map(|item| match item {
            ResultItem::Line(line) => Some(line.custom_id.clone()),
            ResultItem::Unreadable(u) => u.custom_id.clone(),
        })
        .collect();
    let states: HashMap<String, _> = ctx
        .store()
        .job_states(&remote.id, &ids)
        .await?
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    let rules = rules(ctx, batch, &remote.id, now);
    let mut updates = Vec::with_capacity(items.len());
    let mut reports = HashMap::with_capacity(items.len());
    for item in &items {
        let decision = match item {
            ResultItem::Line(line) => states
                .get(&line.custom_id)
                .and_then(|state| decide(state, &line.result, &rules).map(|d| (state, d))),
            ResultItem::Unreadable(u) => {
                let state = u.custom_id.as_ref().and_then(|id| states.get(id));
                if state.is_none() {
                    tracing::error!(batch = %remote.id, reason = %u.reason, "a results line names no job of this batch");
                }
                state.and_then(|state| decide_unreadable(state, u, &rules).map(|d| (state, d)))
            }
        };
        if let Some((state, decision)) = decision {
            updates.push(JobUpdate {
                job_id: state.id.clone(),
                expected_attempts: state.attempts,
                transition: decision.transition,
                event: decision.event,
            });
            reports.insert(state.id.clone(), decision.report);
        }
    }
    Ok(Decided {
        lines,
        now,
        outcomes: Outcomes::Updates { updates, reports },
    })
}

/// A chunk as written, for the read to count.
struct Written {
    lines: usize,
    outcome: WrittenOutcome,
}

enum WrittenOutcome {
    /// A duplicate batch's lines: the jobs charged.
    Charged(usize),
    Applied {
        updated: Updated,
        reports: HashMap<String, PollResult>,
        updates: Vec<JobUpdate>,
    },
}

/// Writes a decided chunk in one transaction.
async fn write_chunk(ctx: &Ctx, remote: &MessageBatch, decided: Decided) -> Result<Written> {
    // Test failpoint: a slow write, so a cancel can land between a decision and its write.
    if ctx.config.at_failpoint("slow-results-write") {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    }
    let store = ctx.store();
    let (id, now) = (remote.id.as_str(), decided.now);
    let outcome = match decided.outcomes {
        Outcomes::Duplicate(charges) => WrittenOutcome::Charged(
            again_if_busy(|| store.record_duplicate_charges(id, &charges, now))
                .await?
                .len(),
        ),
        Outcomes::Updates { updates, reports } => WrittenOutcome::Applied {
            updated: again_if_busy(|| store.apply_updates(id, &updates, now)).await?,
            reports,
            updates,
        },
    };
    Ok(Written {
        lines: decided.lines,
        outcome,
    })
}

/// A chunk's write, again if the database stopped it as busy: two chunks written at once on
/// PostgreSQL deadlock when lines repeated across them come in opposite orders, and it stops
/// one of the two. Writing a chunk again is safe: its updates are guarded by the states they
/// were decided on, its charges recorded once.
async fn again_if_busy<T, W>(write: impl Fn() -> W) -> StoreResult<T>
where
    W: Future<Output = StoreResult<T>>,
{
    let mut attempt = 1;
    loop {
        match write().await {
            Err(StoreError::Busy) if attempt < WRITE_ATTEMPTS => {
                tracing::info!(
                    attempt,
                    "a chunk of results was stopped as busy; writing it again"
                );
                attempt += 1;
            }
            written => return written,
        }
    }
}

impl Read {
    /// Counts a written chunk's lines and what it changed.
    fn count(&mut self, provider_batch: &str, written: Written) {
        self.lines += written.lines as i64;
        match written.outcome {
            WrittenOutcome::Charged(charged) => self.processed += charged as i64,
            WrittenOutcome::Applied {
                updated,
                mut reports,
                updates,
            } => report(self, provider_batch, &updated, &mut reports, &updates),
        }
    }
}

/// Counts what changed and adds its reports, up to the cap of the poll's answer. A job
/// cancelled after its result was decided is reported as discarded.
fn report(
    read: &mut Read,
    provider_batch: &str,
    updated: &Updated,
    reports: &mut HashMap<String, PollResult>,
    updates: &[JobUpdate],
) {
    if !updated.discarded.is_empty() {
        tracing::info!(batch = %provider_batch, jobs = updated.discarded.len(),
            "jobs cancelled while their results were written: results discarded, bills kept");
    }
    read.processed += (updated.changed.len() + updated.discarded.len()) as i64;
    if read.reports.len() >= POLL_RESULTS_CAP {
        return;
    }
    let answers: HashMap<&str, &RawValue> = updates
        .iter()
        .filter_map(|u| match &u.transition {
            Transition::Complete { result, .. } => Some((u.job_id.as_str(), &**result)),
            _ => None,
        })
        .collect();
    let changed = updated.changed.iter().map(|id| (id, false));
    let discarded_ids = updated.discarded.iter().map(|id| (id, true));
    for (id, was_discarded) in changed.chain(discarded_ids) {
        if read.reports.len() >= POLL_RESULTS_CAP {
            return;
        }
        if let Some(mut report) = reports.remove(id) {
            read.reports.push(if was_discarded {
                discarded(report)
            } else {
                report.result = with_answer(answers.get(id.as_str()).copied());
                report
            });
        }
    }
}

/// A completed job's answer for its report, read back from the text the job stores: only the
/// few reports a poll returns carry one, so the other results are never copied.
fn with_answer(answer: Option<&RawValue>) -> Option<serde_json::Value> {
    answer.and_then(|text| serde_json::from_str(text.get()).ok())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Calls `again_if_busy` on a write that is stopped as busy `busy` times, then succeeds.
    async fn written_after(busy: u32) -> (StoreResult<&'static str>, u32) {
        let calls = AtomicU32::new(0);
        let written = again_if_busy(|| async {
            if calls.fetch_add(1, Ordering::SeqCst) < busy {
                Err(StoreError::Busy)
            } else {
                Ok("written")
            }
        })
        .await;
        (written, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_chunk_stopped_as_busy_is_written_again_up_to_the_limit() {
        let (written, calls) = written_after(2).await;
        assert_eq!((written.unwrap(), calls), ("written", 3));

        let (written, calls) = written_after(WRITE_ATTEMPTS).await;
        assert!(matches!(written, Err(StoreError::Busy)), "{written:?}");
        assert_eq!(calls, WRITE_ATTEMPTS, "gives up after its attempts");
    }

    #[tokio::test]
    async fn other_errors_are_not_written_again() {
        let calls = AtomicU32::new(0);
        let written: StoreResult<()> = again_if_busy(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::Corrupt("bad".into()))
        })
        .await;
        assert!(matches!(written, Err(StoreError::Corrupt(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
