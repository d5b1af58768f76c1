//! The embedded default: SQLite in WAL mode. Readers share a pool; writes go through one
//! writer connection in `BEGIN IMMEDIATE` transactions, queued in order instead of colliding
//! in SQLite's busy handler; checkpoints run beside the writer, never in a commit.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use sqlx::Arguments;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use super::{Arg, Binder, Dialect, Engine, Query, Row, Rows, render};
use crate::store::{StoreError, StoreResult};

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// Binds per statement: far under SQLite's 32,766.
const BINDS_PER_STATEMENT: usize = 6_000;

#[derive(Clone)]
pub struct Sqlite {
    /// Readers: WAL lets them run beside the writer.
    pool: SqlitePool,
    /// The one writer. SQLite allows one write at a time; queueing writers here, in order,
    /// beats letting them collide in SQLite's busy handler, which sleeps and retries.
    writer: SqlitePool,
    /// Stops the background checkpoints when the last clone of the store is dropped.
    _checkpointer: Arc<Checkpointer>,
}

struct Checkpointer(tokio::task::JoinHandle<()>);

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// PASSIVE checkpoints never wait for the writer or block it; a failed one is retried on the
/// next tick, and the WAL only grows meanwhile.
async fn checkpoint_forever(pool: SqlitePool) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::debug!(%error, "WAL checkpoint failed; the next tick retries");
        }
    }
}

impl Sqlite {
    /// Opens (creating if missing) the database at `url` and runs the migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::from)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Statement journals in memory and room for a big RETURNING: ingest and flush
            // write thousands of rows per transaction (issue 10's measurements).
            .pragma("temp_store", "memory")
            .row_buffer_size(1024);
        // The writer never checkpoints on commit: an automatic checkpoint would stall the
        // commit that crossed the threshold, and every enqueue waiting behind it (p99 53 ms
        // measured). The checkpointer does that work beside the writer instead.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                options
                    .clone()
                    .pragma("cache_size", "-65536")
                    .pragma("wal_autocheckpoint", "0"),
            )
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.pragma("cache_size", "-16384"))
            .await?;
        let checkpointer = Arc::new(Checkpointer(tokio::spawn(checkpoint_forever(pool.clone()))));
        Ok(Self {
            pool,
            writer,
            _checkpointer: checkpointer,
        })
    }
}

/// SQLite's binds: `?` in order; a set of rows as `VALUES (?, …), …`.
#[derive(Default)]
struct SqliteBinds<'a>(SqliteArguments<'a>);

impl<'a> SqliteBinds<'a> {
    fn add(&mut self, arg: Arg<'a>) -> StoreResult<()> {
        let added = match arg {
            Arg::Text(v) | Arg::Json(v) => self.0.add(v),
            Arg::Int(v) => self.0.add(v),
            Arg::Bool(v) => self.0.add(v),
            Arg::Time(v) => self.0.add(v.map(|t| t.timestamp_micros())),
        };
        added.map_err(|e| StoreError::Corrupt(format!("a value could not be bound: {e}")))
    }
}

impl<'a> Binder<'a> for SqliteBinds<'a> {
    fn bind(&mut self, sql: &mut String, arg: Arg<'a>) -> StoreResult<()> {
        sql.push('?');
        self.add(arg)
    }

    fn rows(&mut self, sql: &mut String, rows: Rows<'a>) -> StoreResult<()> {
        sql.push_str("VALUES ");
        let width = rows.columns.len();
        for (i, row) in rows.values.into_iter().enumerate() {
            sql.push_str(if i == 0 { "(" } else { ", (" });
            for (j, value) in row.into_iter().enumerate() {
                sql.push_str(if j + 1 < width { "?, " } else { "?" });
                self.add(value)?;
            }
            sql.push(')');
        }
        Ok(())
    }
}

/// The statements `query` is run as (sets of rows cut to SQLite's limit on binds), each
/// written and bound.
fn statements(query: Query<'_>) -> StoreResult<Vec<(String, SqliteArguments<'_>)>> {
    let width = query.rows.as_ref().map_or(1, |r| r.columns.len().max(1));
    query
        .chunks(BINDS_PER_STATEMENT / width)
        .into_iter()
        .map(|q| {
            let mut binds = SqliteBinds::default();
            let sql = render(q, &mut binds)?;
            Ok((sql, binds.0))
        })
        .collect()
}

#[async_trait]
impl Engine for Sqlite {
    type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

    const DIALECT: Dialect = Dialect::Sqlite;

    async fn read<R: Row>(&self, query: Query<'_>) -> StoreResult<Vec<R>> {
        let mut rows = Vec::new();
        for (sql, args) in statements(query)? {
            rows.extend(
                sqlx::query_as_with(&sql, args)
                    .fetch_all(&self.pool)
                    .await?,
            );
        }
        Ok(rows)
    }

    async fn write<R: Row>(&self, query: Query<'_>) -> StoreResult<Vec<R>> {
        let mut rows = Vec::new();
        for (sql, args) in statements(query)? {
            rows.extend(
                sqlx::query_as_with(&sql, args)
                    .fetch_all(&self.writer)
                    .await?,
            );
        }
        Ok(rows)
    }

    async fn execute(&self, query: Query<'_>) -> StoreResult<u64> {
        let mut changed = 0;
        for (sql, args) in statements(query)? {
            changed += sqlx::query_with(&sql, args)
                .execute(&self.writer)
                .await?
                .rows_affected();
        }
        Ok(changed)
    }

    async fn begin(&self) -> StoreResult<Self::Tx> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn commit(tx: Self::Tx) -> StoreResult<()> {
        Ok(tx.commit().await?)
    }

    async fn tx_read<R: Row>(tx: &mut Self::Tx, query: Query<'_>) -> StoreResult<Vec<R>> {
        let mut rows = Vec::new();
        for (sql, args) in statements(query)? {
            rows.extend(sqlx::query_as_with(&sql, args).fetch_all(&mut **tx).await?);
        }
        Ok(rows)
    }

    async fn tx_execute(tx: &mut Self::Tx, query: Query<'_>) -> StoreResult<u64> {
        let mut changed = 0;
        for (sql, args) in statements(query)? {
            changed += sqlx::query_with(&sql, args)
                .execute(&mut **tx)
                .await?
                .rows_affected();
        }
        Ok(changed)
    }

    async fn announce(&self, _message: &str) -> StoreResult<()> {
        Ok(())
    }

    async fn announcements(&self) -> StoreResult<Option<BoxStream<'static, String>>> {
        Ok(None)
    }
}
