//! The store conformance suite: every `Store` implementation must pass it unchanged, and it
//! covers every method of every store trait, guards included. An implementation's tests call
//! `store_conformance!(factory)`, where `factory()` returns the store and a guard that keeps
//! its database alive. A case is any `pub async fn` of the files here: `build.rs` lists them.

use std::sync::Arc;

use app::api::{AuditAction, JobStatus, JobType, Role};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::*;

mod access;
mod audit;
mod batches;
mod budgets;
mod enums;
mod jobs;
mod leadership;
mod results;
mod webhooks;

pub use access::*;
pub use audit::*;
pub use batches::*;
pub use budgets::*;
pub use enums::*;
pub use jobs::*;
pub use leadership::*;
pub use results::*;
pub use webhooks::*;

include!(concat!(env!("OUT_DIR"), "/conformance_cases.rs"));
pub(crate) use every_case;

macro_rules! store_conformance {
    ($factory:path) => {
        $crate::store::conformance::every_case!($factory);
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (store, _guard) = $factory().await;
                $crate::store::conformance::$case(std::sync::Arc::new(store)).await;
            }
        )*
    };
}
pub(crate) use store_conformance;

fn list(status_filter: Option<JobStatus>, limit: i64) -> app::api::ListQuery {
    app::api::ListQuery {
        status_filter,
        limit,
        ..app::api::ListQuery::default()
    }
}

fn t0() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn at(minutes: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(minutes)
}

async fn user(store: &dyn Store, name: &str, role: Role) -> UserRecord {
    store
        .ensure_user(&format!("id-{name}"), name, role, t0())
        .await
        .unwrap()
}

fn new_job(id: &str, owner: &UserRecord, minutes: i64, key: Option<&str>) -> NewJob {
    NewJob {
        id: id.into(),
        owner_id: owner.id.clone(),
        owner_name: owner.name.clone(),
        job_type: JobType::RiskReport,
        priority: 50,
        payload: json!({"ticker": "AAPL", "n": minutes}).to_string(),
        run_after: None,
        idempotency_key: key.map(Into::into),
        request_hash: format!("hash-{id}"),
        callback_url: None,
        cost_bound_nanos: JOB_BOUND,
        context_id: None,
        created_at: at(minutes),
    }
}

/// What each test job may cost at most.
const JOB_BOUND: i64 = 7_000;

/// An audit entry by `admin` at minute `minutes`.
fn audited(admin: &UserRecord, action: AuditAction, target: &str, minutes: i64) -> AuditEntry {
    AuditEntry {
        at: at(minutes),
        actor_id: admin.id.clone(),
        actor_name: admin.name.clone(),
        action,
        target: Some(target.into()),
        detail: Some(format!("{action} {target}")),
    }
}

/// The newest `limit` entries of the audit log, unfiltered.
fn audit_filter(limit: i64) -> AuditFilter {
    AuditFilter {
        limit,
        ..AuditFilter::default()
    }
}

async fn created(store: &dyn Store, job: NewJob) -> JobRecord {
    match store.insert_job(job).await.unwrap() {
        InsertOutcome::Created(record) => record,
        other => panic!("expected a new job, got {other:?}"),
    }
}

async fn job(store: &dyn Store, id: &str) -> JobRecord {
    store
        .get_job(id, &Visibility::All)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("job {id}"))
}

/// The totals the store keeps must equal a recount of every job, at any moment.
async fn assert_totals_match_a_recount(store: &dyn Store) {
    let kept = store.totals(&Visibility::All).await.unwrap();
    let counted = store.recount_totals().await.unwrap();
    assert_eq!(kept, counted, "totals drifted from the jobs");
}

fn kinds(events: &[JobEvent]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

fn lease(owner: &str, minutes: i64) -> Lease {
    Lease {
        owner: owner.into(),
        until: at(minutes),
    }
}

/// Claims of jobs whose owner has no budget (uncapped owners are always admitted).
fn claims(ids: &[&str]) -> Vec<Claim> {
    claims_of("nobody-capped", ids, JOB_BOUND)
}

/// Claims of `owner_id`'s jobs, each with this bound.
fn claims_of(owner_id: &str, ids: &[&str], bound_nanos: i64) -> Vec<Claim> {
    ids.iter()
        .map(|id| Claim {
            job_id: id.to_string(),
            model: "claude-sonnet-4-5".into(),
            provider: app::api::ProviderName::Anthropic,
            owner_id: owner_id.into(),
            bound_nanos,
        })
        .collect()
}

/// Pending jobs `ids` of one trader, then a batch `batch` claiming them under `owner`'s lease.
async fn claimed_batch(store: &dyn Store, batch: &str, owner: &str, ids: &[&str]) -> Vec<String> {
    let trader = user(store, "trader", Role::Trader).await;
    for (i, id) in ids.iter().enumerate() {
        if store.get_job(id, &Visibility::All).await.unwrap().is_none() {
            created(store, new_job(id, &trader, i as i64, None)).await;
        }
    }
    store
        .claim_jobs(new_batch(batch, owner, 10), &claims(ids))
        .await
        .unwrap()
}

fn new_batch(id: &str, owner: &str, minutes: i64) -> NewBatch {
    NewBatch {
        id: id.into(),
        provider: app::api::ProviderName::Anthropic,
        estimated_tokens: 1000,
        request_bytes: 5000,
        created_at: at(minutes),
        lease: lease(owner, minutes + 1),
        audit: None,
        month_start: t0(),
    }
}

fn submission(provider_batch_id: &str, minutes: i64) -> Submission {
    Submission {
        provider_batch_id: provider_batch_id.into(),
        provider_created_at: at(minutes),
        clock_sample: true,
        submitted_at: at(minutes),
        expires_at: at(minutes + 24 * 60),
        next_poll_at: at(minutes + 1),
        swept: false,
    }
}

/// A batch claimed and accepted by the provider as `provider_batch_id`.
async fn submitted_batch(store: &dyn Store, batch: &str, provider: &str, ids: &[&str]) {
    claimed_batch(store, batch, "flush", ids).await;
    let event = crate::events::Happened::Submitted {
        batch: provider.into(),
    };
    assert!(
        store
            .record_submission(batch, "flush", &submission(provider, 11), &event)
            .await
            .unwrap()
    );
}

fn spend(tokens: i64) -> Spend {
    Spend {
        bill: Bill {
            input_tokens: tokens,
            output_tokens: tokens / 10,
            cost_nanos: tokens * 1000,
            uncached_cost_nanos: tokens * 1000,
            standard_cost_nanos: tokens * 2000,
            ..Bill::default()
        },
        cache_write_1h_tokens: 0,
        price_version: "v1".into(),
    }
}
