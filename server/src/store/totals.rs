//! Totals per owner, status and job type (jobs, their bill, time to complete),
//! kept in the same transaction as every job change, so stats and list counts are read from a
//! few rows instead of every job.
//!
//! A store's write gathers its changes here as deltas while it runs and applies them in one
//! statement at the end of its transaction, in key order: concurrent transactions then take
//! the totals' row locks in the same order, after every job row they touch, so they cannot
//! deadlock on them.

use std::collections::BTreeMap;

use app::api::{JobStatus, JobType};
use chrono::{DateTime, Utc};

/// Tokens and money, as the books keep them for a job, a charge and a cell of the totals:
/// one set of figures, stored in columns of the same names (`Bill::COLUMNS`) everywhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bill {
    /// Every token of the prompts, however billed (read from the cache, written to it, or not).
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Of the input tokens, those read from the provider's cache and those written to it.
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    /// What the provider billed.
    pub cost_nanos: i64,
    /// The same requests in a batch without caching.
    pub uncached_cost_nanos: i64,
    /// The same requests on the standard Messages API without caching.
    pub standard_cost_nanos: i64,
}

impl Bill {
    /// The columns a bill is stored in, in every table that keeps one.
    pub const COLUMNS: [&'static str; 7] = [
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_nanos",
        "uncached_cost_nanos",
        "standard_cost_nanos",
    ];

    /// Its figures in the order of `COLUMNS`.
    pub fn values(&self) -> [i64; 7] {
        [
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.cost_nanos,
            self.uncached_cost_nanos,
            self.standard_cost_nanos,
        ]
    }

    pub fn add(&mut self, other: &Bill, sign: i64) {
        self.input_tokens += sign * other.input_tokens;
        self.output_tokens += sign * other.output_tokens;
        self.cache_read_tokens += sign * other.cache_read_tokens;
        self.cache_write_tokens += sign * other.cache_write_tokens;
        self.cost_nanos += sign * other.cost_nanos;
        self.uncached_cost_nanos += sign * other.uncached_cost_nanos;
        self.standard_cost_nanos += sign * other.standard_cost_nanos;
    }

    pub fn tokens(&self) -> i64 {
        self.input_tokens + self.output_tokens
    }

    /// What the batch discount saved.
    pub fn saved_by_batching_nanos(&self) -> i64 {
        self.standard_cost_nanos - self.uncached_cost_nanos
    }

    /// What caching saved on top of it (negative when writes cost more than reads saved).
    pub fn saved_by_caching_nanos(&self) -> i64 {
        self.uncached_cost_nanos - self.cost_nanos
    }

    pub fn savings_nanos(&self) -> i64 {
        self.standard_cost_nanos - self.cost_nanos
    }
}

/// One cell's figures, or a change to them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Amounts {
    pub jobs: i64,
    pub bill: Bill,
    /// Sum of `completed_at − created_at` over the cell's completed jobs, in microseconds.
    pub completion_micros: i64,
}

impl Amounts {
    fn add(&mut self, other: &Amounts, sign: i64) {
        self.jobs += sign * other.jobs;
        self.bill.add(&other.bill, sign);
        self.completion_micros += sign * other.completion_micros;
    }

    fn is_zero(&self) -> bool {
        *self == Amounts::default()
    }
}

/// A cell of the totals: whose jobs, in which status, of which type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cell {
    pub owner_id: String,
    pub status: JobStatus,
    pub job_type: JobType,
}

/// A job as the totals see it: where it counts and what it carries.
#[derive(Clone, Debug)]
pub struct Counted {
    pub owner_id: String,
    pub job_type: JobType,
    pub bill: Bill,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl Counted {
    /// What the job adds to a cell of `status`.
    fn amounts(&self, status: JobStatus) -> Amounts {
        let completion = match (status, self.completed_at) {
            (JobStatus::Completed, Some(done)) => (done - self.created_at)
                .num_microseconds()
                .unwrap_or(i64::MAX),
            _ => 0,
        };
        Amounts {
            jobs: 1,
            bill: self.bill,
            completion_micros: completion,
        }
    }

    fn cell(&self, status: JobStatus) -> Cell {
        Cell {
            owner_id: self.owner_id.clone(),
            status,
            job_type: self.job_type,
        }
    }
}

/// Changes to the totals gathered by one transaction, in key order.
#[derive(Debug, Default)]
pub struct Deltas {
    cells: BTreeMap<Cell, Amounts>,
}

impl Deltas {
    /// A new job, counted in `status`.
    pub fn added(&mut self, job: &Counted, status: JobStatus) {
        self.change(job.cell(status), &job.amounts(status), 1);
    }

    /// A job moved from one status to another, as it was when it moved. `before` is the job
    /// before the move (its completion counts only in `completed`), `after` after it.
    pub fn moved(&mut self, before: &Counted, from: JobStatus, after: &Counted, to: JobStatus) {
        self.change(before.cell(from), &before.amounts(from), -1);
        self.change(after.cell(to), &after.amounts(to), 1);
    }

    /// Tokens and money added to a job that stays where it is (a charge).
    pub fn charged(&mut self, job: &Counted, status: JobStatus, spend: &Amounts) {
        self.change(job.cell(status), spend, 1);
    }

    fn change(&mut self, cell: Cell, amounts: &Amounts, sign: i64) {
        self.cells.entry(cell).or_default().add(amounts, sign);
    }

    /// The changes, in key order, leaving out those that cancel out.
    pub fn rows(&self) -> impl Iterator<Item = (&Cell, &Amounts)> {
        self.cells.iter().filter(|(_, a)| !a.is_zero())
    }

    pub fn is_empty(&self) -> bool {
        self.rows().next().is_none()
    }
}

/// The figures of one cell, as stored or as recounted from the jobs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TotalsRow {
    pub owner_id: String,
    pub status: JobStatus,
    pub job_type: JobType,
    pub jobs: i64,
    pub bill: Bill,
    pub completion_micros: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(tokens: i64) -> Counted {
        Counted {
            owner_id: "o".into(),
            job_type: JobType::RiskReport,
            bill: Bill {
                input_tokens: tokens,
                cost_nanos: tokens,
                uncached_cost_nanos: tokens,
                standard_cost_nanos: 2 * tokens,
                ..Bill::default()
            },
            created_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            completed_at: None,
        }
    }

    #[test]
    fn moves_cancel_out_and_completion_counts_only_once_completed() {
        let mut d = Deltas::default();
        let pending = job(0);
        d.added(&pending, JobStatus::Pending);
        d.moved(
            &pending,
            JobStatus::Pending,
            &pending,
            JobStatus::Processing,
        );
        let done = Counted {
            completed_at: Some("2026-01-01T00:00:02Z".parse().unwrap()),
            ..job(0)
        };
        d.moved(&pending, JobStatus::Processing, &done, JobStatus::Completed);
        d.charged(
            &done,
            JobStatus::Completed,
            &Amounts {
                bill: Bill {
                    input_tokens: 100,
                    cost_nanos: 5,
                    ..Bill::default()
                },
                ..Amounts::default()
            },
        );
        let rows: Vec<_> = d.rows().collect();
        assert_eq!(rows.len(), 1, "pending and processing cancel out: {rows:?}");
        assert_eq!(rows[0].0.status, JobStatus::Completed);
        assert_eq!(
            *rows[0].1,
            Amounts {
                jobs: 1,
                bill: Bill {
                    input_tokens: 100,
                    cost_nanos: 5,
                    ..Bill::default()
                },
                completion_micros: 2_000_000,
            }
        );
    }
}
