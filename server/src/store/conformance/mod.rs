//! The store conformance suite: every `Store` implementation must pass it unchanged, and it
//! covers every method of every store trait, guards included. An implementation's tests call
//! `store_conformance!(factory)`, where `factory()` returns the store and a guard that keeps
//! its database alive.

use std::sync::Arc;

use app::api::{AuditAction, JobStatus, JobType, Role};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::*;

mod access;
mod batches;
mod enums;
mod jobs;
mod leadership;
mod oversight;
mod results;
mod webhooks;

pub use access::*;
pub use batches::*;
pub use enums::*;
pub use jobs::*;
pub use leadership::*;
pub use oversight::*;
pub use results::*;
pub use webhooks::*;

macro_rules! store_conformance {
    ($factory:path) => {
        $crate::store::conformance::store_conformance!(@cases $factory;
            users_are_created_once,
            credentials_are_found_by_kind_and_id,
            tokens_are_listed_and_revoked_once,
            idempotency_keys_are_unique_per_owner,
            a_group_of_jobs_is_inserted_at_once_with_repeated_keys_answered_once,
            a_group_with_a_bad_job_inserts_nothing,
            concurrent_inserts_with_one_key_create_one_job,
            jobs_are_visible_to_owner_and_all,
            lists_are_newest_first_filtered_and_counted,
            cancel_moves_pending_to_cancelled_once,
            stats_sum_the_visible_jobs,
            lists_search_filter_by_type_and_page,
            a_search_count_stops_at_the_cap,
            events_are_kept_in_order_with_their_details,
            flush_candidates_come_in_flush_order_and_page_by_cursor,
            claims_take_pending_jobs_write_members_and_hold_a_lease,
            concurrent_claims_never_share_a_job,
            leases_are_taken_renewed_and_released_by_their_owner,
            a_submission_is_recorded_once_under_its_lease,
            a_refused_batch_puts_its_jobs_back,
            an_uncertain_batch_waits_for_its_lease_before_reconciliation,
            accepted_batches_are_swept_once_and_duplicates_recorded_once,
            results_apply_once_in_the_state_they_were_decided_on,
            a_cancel_racing_an_ingest_keeps_the_cancel_and_the_bill,
            duplicate_charges_are_counted_once_and_shown_apart,
            polls_short_reads_finishes_and_losses_are_recorded,
            daily_costs_come_from_the_charges,
            leadership_is_held_by_one_owner_until_it_lapses,
            announcements_reach_every_listener,
            webhooks_become_due_when_their_job_ends_and_are_claimed_once,
            due_webhooks_are_fair_to_every_owner,
            an_admin_retry_sends_failed_jobs_back_once,
            failed_jobs_are_found_by_their_error,
            webhook_secrets_are_kept_per_user,
            budgets_are_set_replaced_and_removed_with_their_audit_entry,
            budget_usage_counts_the_month_s_charges_and_unbilled_bounds,
            a_job_cancelled_in_flight_counts_until_its_batch_settles,
            claims_admit_capped_owners_jobs_within_their_cap_even_when_concurrent,
            a_flush_claim_is_audited_with_it_and_the_log_pages_and_filters,
            every_job_type_status_role_and_audit_action_round_trips,
        );
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

/// Every `pub async fn` of the case files is in `store_conformance!`'s list (a case left out
/// would never run) and every listed name is a case.
#[test]
fn every_case_is_listed() {
    let files = [
        include_str!("access.rs"),
        include_str!("batches.rs"),
        include_str!("enums.rs"),
        include_str!("jobs.rs"),
        include_str!("leadership.rs"),
        include_str!("oversight.rs"),
        include_str!("results.rs"),
        include_str!("webhooks.rs"),
    ];
    let mut written: Vec<&str> = files
        .iter()
        .flat_map(|file| file.lines())
        .filter_map(|line| line.strip_prefix("pub async fn "))
        .map(|rest| rest.split('(').next().unwrap_or(rest))
        .collect();
    let this = include_str!("mod.rs");
    let start = this.find("@cases $factory;\n").expect("the list") + "@cases $factory;\n".len();
    let end = start + this[start..].find(");").expect("the list's end");
    let mut listed: Vec<&str> = this[start..end]
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    written.sort_unstable();
    listed.sort_unstable();
    assert_eq!(written, listed, "store_conformance! lists every case, once");
    assert_eq!(
        std::fs::read_dir(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/store/conformance"
        ))
        .unwrap()
        .count(),
        files.len() + 1,
        "every case file is read above"
    );
}

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
        input_tokens: tokens,
        output_tokens: tokens / 10,
        cost_nanos: tokens * 1000,
        standard_cost_nanos: tokens * 2000,
        price_version: "v1".into(),
    }
}
