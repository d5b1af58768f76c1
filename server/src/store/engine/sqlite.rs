//! The embedded default: SQLite in WAL mode. Readers share a pool; writes go through one
//! writer connection in `BEGIN IMMEDIATE` transactions, queued in order instead of colliding
//! in SQLite's busy handler; checkpoints run beside the writer, never in a commit, and the
//! WAL is started over from the writer, between two of its transactions, once it is large.

use std::path::{Path, PathBuf};
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
/// How often the WAL is copied back into the database file. Often, so each copy is small:
/// enqueues committed during a copy are slowed by it (p99 under 16 connections: every 2 s
/// 83-85 ms, every 250 ms 16-19 ms, every 50 ms 10-12 ms, every 10 ms 9-10 ms; BENCHMARKS.md).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(10);
/// Past this size the WAL is started over (and the file cut back to it): under a steady load
/// some reader always holds a snapshot, so passive checkpoints alone never let it restart.
const WAL_LIMIT: u64 = 64 << 20;
/// How long a restart waits for readers still on old WAL frames; enqueues wait behind it, so
/// it gives up quickly and tries again later.
const RESTART_WAIT: Duration = Duration::from_millis(10);
/// How often a restart is tried while a long read pins the WAL: each try holds writes back up
/// to [`RESTART_WAIT`], so not on every checkpoint's tick.
const RESTART_EVERY: Duration = Duration::from_millis(250);
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

/// PASSIVE checkpoints never wait for the writer or block it; a failed or partial one is
/// retried on the next tick, and the WAL only grows meanwhile. Past [`WAL_LIMIT`] the WAL is
/// restarted. A WAL unchanged since it was last copied back whole is left alone, so an idle
/// service does no work on each tick.
async fn checkpoint_forever(pool: SqlitePool, writer: SqlitePool, wal: PathBuf) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut copied = None;
    let mut restart_tried = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let now = wal_state(&wal);
        if now != copied {
            match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&pool)
                .await
            {
                // (busy, frames in the WAL, frames copied back)
                Ok((_, frames, done)) if done >= frames => copied = now,
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "WAL checkpoint failed; the next tick retries")
                }
            }
        }
        let oversized = now.is_some_and(|(size, _)| size > WAL_LIMIT);
        if oversized && restart_tried.elapsed() >= RESTART_EVERY {
            restart_tried = tokio::time::Instant::now();
            if let Err(error) = restart_wal(&writer).await {
                tracing::warn!(%error, "the WAL could not be started over; it is tried again");
            }
        }
    }
}

/// The WAL's size and when it was last written. A commit within the file clock's granule of
/// the one before may leave both as they were; its frames are then copied back after the next
/// commit (until then they are read from the WAL, as any uncopied frame is).
fn wal_state(wal: &Path) -> Option<(u64, std::time::SystemTime)> {
    let meta = std::fs::metadata(wal).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// A RESTART checkpoint on the writer connection itself, so writers queue behind it in order
/// (as behind any transaction) instead of sleeping in SQLite's busy handler, which is what
/// made a checkpoint beside the writer cost enqueues 52–337 ms at p99 (BENCHMARKS.md). Once
/// it succeeds, the next write starts the WAL over and `journal_size_limit` cuts the file.
async fn restart_wal(writer: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut conn = writer.acquire().await?;
    let wait = |d: Duration| format!("PRAGMA busy_timeout = {}", d.as_millis());
    sqlx::query(&wait(RESTART_WAIT)).execute(&mut *conn).await?;
    let restarted = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
        .execute(&mut *conn)
        .await;
    if sqlx::query(&wait(BUSY_TIMEOUT))
        .execute(&mut *conn)
        .await
        .is_err()
    {
        // A writer that gave up after 10 ms would fail enqueues: open a new one instead.
        conn.close_on_drop();
    }
    restarted.map(drop)
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
            .pragma("journal_size_limit", WAL_LIMIT.to_string())
            .row_buffer_size(1024);
        let wal = PathBuf::from(format!("{}-wal", options.get_filename().display()));
        // The writer never checkpoints on commit: an automatic checkpoint would stall the
        // commit that crossed the threshold, and every enqueue waiting behind it (p99 53 ms
        // measured). The checkpointer does that work beside the writer instead.
        // Its page cache is small on purpose: a B-tree split parks a page at the pending-byte
        // page number (1 GiB), so each commit's truncation walks the cache's whole hash table,
        // which grows with the cache (8 MiB against 64 MiB: 3-7% less CPU an enqueue, the same
        // flush, no slower ingest; BENCHMARKS.md). SQLite 3.46.0 comes with sqlx 0.8.6: check
        // whether a newer one still walks the table before giving the writer more cache.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                options
                    .clone()
                    .pragma("cache_size", "-8192")
                    .pragma("wal_autocheckpoint", "0"),
            )
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.pragma("cache_size", "-16384"))
            .await?;
        let checkpointer = Arc::new(Checkpointer(tokio::spawn(checkpoint_forever(
            pool.clone(),
            writer.clone(),
            wal,
        ))));
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    use super::*;

    async fn scratch(dir: &tempfile::TempDir) -> (Sqlite, PathBuf) {
        let path = dir.path().join("wal.db");
        let db = Sqlite::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query("CREATE TABLE wal_fill (b BLOB)")
            .execute(&db.writer)
            .await
            .unwrap();
        (db, PathBuf::from(format!("{}-wal", path.display())))
    }

    /// One write of `bytes` random bytes, and how long the writer took to take it.
    async fn write(db: &Sqlite, bytes: usize) -> Duration {
        let started = Instant::now();
        sqlx::query("INSERT INTO wal_fill (b) VALUES (randomblob(?))")
            .bind(bytes as i64)
            .execute(&db.writer)
            .await
            .unwrap();
        started.elapsed()
    }

    /// A steady load (readers always holding some snapshot, a writer always writing, as
    /// under enqueues and a dashboard) until the WAL file is back under the limit; false if it
    /// never is. Passive checkpoints alone never get there: the WAL can only start over at a
    /// moment no reader uses it and every frame is copied back.
    async fn wal_cut_back_under_load(db: &Sqlite, wal: &Path) -> bool {
        let busy = Arc::new(AtomicBool::new(true));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (pool, busy) = (db.pool.clone(), busy.clone());
                tokio::spawn(async move {
                    while busy.load(Ordering::Relaxed) {
                        sqlx::query("SELECT count(*) FROM wal_fill")
                            .execute(&pool)
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut cut_back = false;
        while !cut_back && Instant::now() < deadline {
            write(db, 4 << 10).await;
            cut_back = wal_size(wal) <= WAL_LIMIT;
        }
        busy.store(false, Ordering::Relaxed);
        for reader in readers {
            reader.await.unwrap();
        }
        cut_back
    }

    fn wal_size(wal: &Path) -> u64 {
        super::wal_state(wal).map_or(0, |(size, _)| size)
    }

    /// A long read (an export, say) pins the WAL while it lasts: the restarts tried meanwhile
    /// must give up quickly instead of holding writes back for the writer's busy wait; once
    /// the read ends, the WAL starts over and its file is cut back to the limit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_read_pins_the_wal_without_holding_writes_back() {
        let dir = tempfile::tempdir().unwrap();
        let (db, wal) = scratch(&dir).await;
        let mut long_read = db.pool.begin().await.unwrap();
        sqlx::query("SELECT count(*) FROM wal_fill")
            .execute(&mut *long_read)
            .await
            .unwrap();
        for _ in 0..20 {
            write(&db, 4 << 20).await;
        }
        // Writes over about ten checkpoint ticks, each a restart that has to give up.
        let mut slowest = Duration::ZERO;
        for _ in 0..25 {
            slowest = slowest.max(write(&db, 4 << 10).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            slowest < Duration::from_secs(5),
            "a write waited {slowest:?}"
        );
        assert!(
            wal_size(&wal) > WAL_LIMIT,
            "the WAL grew to {}",
            wal_size(&wal)
        );
        long_read.rollback().await.unwrap();
        assert!(
            wal_cut_back_under_load(&db, &wal).await,
            "still {} bytes",
            wal_size(&wal)
        );
    }

    /// Migration 21 builds the word index again from the stored payloads' values, at any
    /// depth, with `true` and `null` as the JSON spells them; no field name is a word.
    #[tokio::test]
    async fn migration_21_indexes_the_words_of_values_only() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("words.db").display());
        let db = Sqlite::connect(&url).await.unwrap();
        for setup in [
            "INSERT INTO users (id, name, role, created_at) VALUES ('u1', 'trader', 'trader', 0)",
            r#"INSERT INTO jobs (id, owner_id, job_type, status, priority, payload, request_hash,
               created_at, updated_at) VALUES ('j1', 'u1', 'risk_report', 'pending', 0,
               '{"ticker": "NVDA", "legs": [{"side": "sell", "hedged": true, "limit": null}]}', 'h', 0, 0)"#,
        ] {
            sqlx::query(setup).execute(&db.writer).await.expect(setup);
        }
        sqlx::raw_sql(include_str!(
            "../../../../migrations/sqlite/20261215000021_search_values_only.sql"
        ))
        .execute(&db.writer)
        .await
        .expect("migration 21 again");
        for (word, jobs) in [
            ("nvda", 1),
            ("sell", 1),
            ("true", 1),
            ("null", 1),
            ("ticker", 0),
            ("legs", 0),
            ("side", 0),
            ("hedged", 0),
        ] {
            let found: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM jobs_search WHERE jobs_search MATCH 'payload : ' || ?",
            )
            .bind(word)
            .fetch_one(&db.writer)
            .await
            .unwrap();
            assert_eq!(found, jobs, "{word}");
        }
    }
}
