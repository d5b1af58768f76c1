//! The store, written once: every method of every store trait, its rules and its SQL, over an
//! [`Engine`] (SQLite or PostgreSQL) that binds, connects and supplies the few fragments where
//! the two dialects differ. The conformance suite runs this one implementation on both.

mod access;
mod audit;
mod batches;
mod budgets;
mod contexts;
mod instances;
mod jobs;
mod results;
// The engine's search names a job by its batch too (`rows::local_batch_named`).
pub(super) mod rows;
mod search;
mod webhooks;

use chrono::{DateTime, Utc};

use super::engine::{Arg, Engine, Kind, Query, Row, Rows};
use super::*;
use rows::{COUNTED, CountedRow};

/// The store on one database.
#[derive(Clone)]
pub struct SqlStore<E> {
    engine: E,
}

impl SqlStore<super::engine::Sqlite> {
    /// Opens (creating if missing) the SQLite database at `url` and runs its migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Ok(Self {
            engine: super::engine::Sqlite::connect(url).await?,
        })
    }
}

impl SqlStore<super::engine::Postgres> {
    /// Connects with a pool of at most `max_connections` and runs the migrations.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        Ok(Self {
            engine: super::engine::Postgres::connect(url, max_connections).await?,
        })
    }
}

impl<E: Engine> SqlStore<E> {
    async fn read<R: Row>(
        &self,
        sql: &str,
        args: impl IntoIterator<Item = Arg<'_>>,
    ) -> StoreResult<Vec<R>> {
        self.engine.read(Query::new(sql, args)).await
    }

    /// The one row a read finds, if any.
    async fn read_one<R: Row>(
        &self,
        sql: &str,
        args: impl IntoIterator<Item = Arg<'_>>,
    ) -> StoreResult<Option<R>> {
        Ok(self.read(sql, args).await?.into_iter().next())
    }

    /// A single-statement write; whether it changed exactly one row.
    async fn write_one(
        &self,
        sql: &str,
        args: impl IntoIterator<Item = Arg<'_>>,
    ) -> StoreResult<bool> {
        Ok(self.engine.execute(Query::new(sql, args)).await? == 1)
    }

    async fn begin(&self) -> StoreResult<E::Tx> {
        self.engine.begin().await
    }
}

/// A statement in a transaction; the rows it returns.
async fn tx_read<E: Engine, R: Row>(
    tx: &mut E::Tx,
    sql: &str,
    args: impl IntoIterator<Item = Arg<'_>>,
) -> StoreResult<Vec<R>> {
    E::tx_read(tx, Query::new(sql, args)).await
}

/// A statement in a transaction; the rows it changed.
async fn tx_execute<E: Engine>(
    tx: &mut E::Tx,
    sql: &str,
    args: impl IntoIterator<Item = Arg<'_>>,
) -> StoreResult<u64> {
    E::tx_execute(tx, Query::new(sql, args)).await
}

/// Applies a transaction's changes to the totals, in key order, at its end: concurrent
/// transactions lock the same rows in the same order, after all their job rows.
async fn apply_totals<E: Engine>(tx: &mut E::Tx, deltas: &Deltas) -> StoreResult<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    let mut columns = vec![
        ("owner_id", Kind::Text),
        ("status", Kind::Text),
        ("job_type", Kind::Text),
        ("jobs", Kind::Int),
    ];
    columns.extend(Bill::COLUMNS.map(|c| (c, Kind::Int)));
    columns.push(("completion_micros", Kind::Int));
    let mut rows = Rows::new(&columns);
    for (cell, a) in deltas.rows() {
        let mut row: Vec<Arg> = vec![
            cell.owner_id.as_str().into(),
            cell.status.as_str().into(),
            cell.job_type.as_str().into(),
            a.jobs.into(),
        ];
        row.extend(a.bill.values().map(Arg::from));
        row.push(a.completion_micros.into());
        rows.push(row);
    }
    let names = rows.names();
    let added: Vec<String> = ["jobs"]
        .into_iter()
        .chain(Bill::COLUMNS)
        .chain(["completion_micros"])
        .map(|c| format!("{c} = job_totals.{c} + excluded.{c}"))
        .collect();
    let mut query = Query::default();
    query.push(&format!("WITH v {names} AS (")).rows(rows).push(&format!(
        ") INSERT INTO job_totals {names} SELECT * FROM v WHERE TRUE ORDER BY owner_id, status, job_type \
         ON CONFLICT (owner_id, status, job_type) DO UPDATE SET {}",
        added.join(", ")
    ));
    E::tx_execute(tx, query).await?;
    Ok(())
}

/// Writes the events of a transaction (job, what happened, when).
async fn insert_events<E: Engine>(
    tx: &mut E::Tx,
    events: &[(&str, &crate::events::Happened, DateTime<Utc>)],
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut rows = Rows::new(&[
        ("job_id", Kind::Text),
        ("kind", Kind::Text),
        ("detail", Kind::Text),
        ("at", Kind::Time),
    ]);
    for (job_id, happened, at) in events {
        rows.push(vec![
            (*job_id).into(),
            happened.kind().into(),
            happened.detail().into(),
            (*at).into(),
        ]);
    }
    let mut query = Query::default();
    query
        .push(&format!("WITH v {} AS (", rows.names()))
        .rows(rows)
        .push(") INSERT INTO job_events (job_id, kind, detail, at) SELECT * FROM v");
    E::tx_execute(tx, query).await?;
    Ok(())
}

/// ` AND j.owner_id = ?` for a trader; nothing for an admin.
fn push_visibility<'a>(query: &mut Query<'a>, visibility: &'a Visibility) {
    push_visibility_of(query, visibility, " AND j.");
}

/// `push_visibility` with the column written after `column_prefix` (` AND +j.` where a set of
/// matches must drive the plan: `Dialect::not_by_index`).
fn push_visibility_of<'a>(query: &mut Query<'a>, visibility: &'a Visibility, column_prefix: &str) {
    if let Visibility::Owner(owner_id) = visibility {
        query
            .push(&format!("{column_prefix}owner_id = "))
            .bind(owner_id.as_str());
    }
}

/// The rows of `COUNTED` a statement returned, as the totals see them.
fn counted_moves(
    rows: &[CountedRow],
    from: JobStatus,
    to: JobStatus,
    deltas: &mut Deltas,
) -> StoreResult<()> {
    for row in rows {
        let job = row.counted()?;
        deltas.moved(&job, from, &job, to);
    }
    Ok(())
}

#[cfg(test)]
mod sqlite_conformance {
    use super::super::SqliteStore;

    async fn temp_store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        (SqliteStore::connect(&url).await.unwrap(), dir)
    }

    crate::store::conformance::store_conformance!(temp_store);
}

#[cfg(test)]
mod postgres_conformance {
    use super::super::PostgresStore;
    use crate::testing::TempPostgres;

    async fn temp_store() -> (PostgresStore, TempPostgres) {
        let db = TempPostgres::create().await;
        (PostgresStore::connect(&db.url, 8).await.expect("store"), db)
    }

    crate::store::conformance::store_conformance!(temp_store);
}
