//! PostgreSQL, for several instances on one database: writes run concurrently, each guarded by
//! the state it expects; claims skip rows another transaction holds (`FOR UPDATE SKIP
//! LOCKED`); a set of rows is bound as one array per column (`unnest`), in one statement.
//! Times are `timestamptz`, money `bigint`, payloads and results `jsonb`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{Arguments, Encode, Type};

use super::{Arg, Binder, Dialect, Engine, Kind, Query, Row, Rows, render};
use crate::store::{StoreError, StoreResult};

/// How long a request waits for a connection before it is told to come back (503).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// The channel instances announce their changes on.
const ANNOUNCEMENTS: &str = "ai_batch_changes";

#[derive(Clone)]
pub struct Postgres {
    pool: PgPool,
}

impl Postgres {
    /// Connects with a pool of at most `max_connections` and runs the migrations. Several
    /// instances starting at once run them once: sqlx holds an advisory lock while migrating.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        // No JIT: it compiles a statement whose estimate looks large (the budget check's
        // subqueries) for ~0.4 s, where the statement itself takes a millisecond.
        let options = PgConnectOptions::from_str(url)?.options([("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        let mut migrations = sqlx::migrate!("../migrations/postgres");
        // In a rolling upgrade an older instance may restart after a newer one migrated:
        // migrations only add, so it runs beside what it does not know (README, Upgrades).
        migrations.set_ignore_missing(true);
        migrations.run(&pool).await?;
        Ok(Self { pool })
    }
}

/// PostgreSQL's binds: `$1`, `$2`, … in order; a set of rows as `unnest` of one array a column.
#[derive(Default)]
struct PgBinds {
    args: PgArguments,
    count: usize,
    /// Whether a set of rows is bound (see `Statement::kept`).
    has_rows: bool,
}

impl PgBinds {
    /// Binds `value` (written into the statement's buffer at once, so it may be borrowed).
    fn add<'q, T: Encode<'q, sqlx::Postgres> + Type<sqlx::Postgres> + 'q>(
        &mut self,
        sql: &mut String,
        value: T,
        cast: &str,
    ) -> StoreResult<()> {
        self.count += 1;
        sql.push_str(&format!("${}{cast}", self.count));
        self.args
            .add(value)
            .map_err(|e| StoreError::Corrupt(format!("a value could not be bound: {e}")))
    }

    /// One column of a set of rows, as an array of its kind.
    fn column(&mut self, sql: &mut String, kind: Kind, values: Vec<Arg<'_>>) -> StoreResult<()> {
        let texts = |values: &[Arg<'_>]| -> Vec<Option<String>> {
            values
                .iter()
                .map(|v| match v {
                    Arg::Text(t) | Arg::Json(t) => t.as_deref().map(str::to_string),
                    _ => None,
                })
                .collect()
        };
        match kind {
            Kind::Text => self.add(sql, texts(&values), "::text[]"),
            Kind::Json => self.add(sql, texts(&values), "::text[]::jsonb[]"),
            Kind::Int => {
                let ints: Vec<Option<i64>> = values
                    .into_iter()
                    .map(|v| if let Arg::Int(i) = v { i } else { None })
                    .collect();
                self.add(sql, ints, "::bigint[]")
            }
            Kind::Bool => {
                let bools: Vec<Option<bool>> = values
                    .into_iter()
                    .map(|v| if let Arg::Bool(b) = v { Some(b) } else { None })
                    .collect();
                self.add(sql, bools, "::boolean[]")
            }
            Kind::Time => {
                let times: Vec<Option<DateTime<Utc>>> = values
                    .into_iter()
                    .map(|v| if let Arg::Time(t) = v { t } else { None })
                    .collect();
                self.add(sql, times, "::timestamptz[]")
            }
        }
    }
}

impl<'a> Binder<'a> for PgBinds {
    fn bind(&mut self, sql: &mut String, arg: Arg<'a>) -> StoreResult<()> {
        match arg {
            Arg::Text(v) => self.add(sql, v.as_deref(), ""),
            Arg::Int(v) => self.add(sql, v, ""),
            Arg::Bool(v) => self.add(sql, v, ""),
            Arg::Time(v) => self.add(sql, v, ""),
            Arg::Json(v) => {
                let raw = v
                    .map(|text| serde_json::value::RawValue::from_string(text.into_owned()))
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(format!("JSON to bind: {e}")))?;
                self.add(sql, raw.map(Json), "")
            }
        }
    }

    /// `SELECT c1, … FROM unnest($1::text[], …) WITH ORDINALITY … ORDER BY n`: the rows in the
    /// order given, so concurrent writers lock the same rows in the same order.
    fn rows(&mut self, sql: &mut String, rows: Rows<'a>) -> StoreResult<()> {
        self.has_rows = true;
        let names: Vec<&str> = rows.columns.iter().map(|(n, _)| *n).collect();
        let mut columns: Vec<Vec<Arg>> = vec![Vec::with_capacity(rows.values.len()); names.len()];
        for row in rows.values {
            for (i, value) in row.into_iter().enumerate() {
                columns[i].push(value);
            }
        }
        sql.push_str(&format!("SELECT {} FROM unnest(", names.join(", ")));
        for (i, ((_, kind), values)) in rows.columns.iter().zip(columns).enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            self.column(sql, *kind, values)?;
        }
        sql.push_str(&format!(
            ") WITH ORDINALITY AS unnested ({}, row_order) ORDER BY row_order",
            names.join(", ")
        ));
        Ok(())
    }
}

/// The one statement `query` is: written and bound.
struct Statement {
    sql: String,
    args: PgArguments,
    /// Prepared once and kept on the connection. Not for a set of rows: after five runs
    /// PostgreSQL may switch a kept statement to a generic plan, which guesses an `unnest` holds
    /// 10 rows and joins 10,000 claimed jobs to it by a nested loop (100 million comparisons,
    /// 26 s per flush, measured). Unkept, each run is planned with its own arrays.
    kept: bool,
}

fn statement(query: Query<'_>) -> StoreResult<Statement> {
    let mut binds = PgBinds::default();
    let sql = render(query, &mut binds)?;
    Ok(Statement {
        sql,
        kept: !binds.has_rows,
        args: binds.args,
    })
}

#[async_trait]
impl Engine for Postgres {
    type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

    const DIALECT: Dialect = Dialect::Postgres;

    async fn read<R: Row>(&self, query: Query<'_>) -> StoreResult<Vec<R>> {
        if query.has_no_rows() {
            return Ok(Vec::new());
        }
        let s = statement(query)?;
        Ok(sqlx::query_as_with(&s.sql, s.args)
            .persistent(s.kept)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn write<R: Row>(&self, query: Query<'_>) -> StoreResult<Vec<R>> {
        self.read(query).await
    }

    async fn execute(&self, query: Query<'_>) -> StoreResult<u64> {
        if query.has_no_rows() {
            return Ok(0);
        }
        let s = statement(query)?;
        let done = sqlx::query_with(&s.sql, s.args)
            .persistent(s.kept)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn begin(&self) -> StoreResult<Self::Tx> {
        Ok(self.pool.begin().await?)
    }

    async fn commit(tx: Self::Tx) -> StoreResult<()> {
        Ok(tx.commit().await?)
    }

    async fn tx_read<R: Row>(tx: &mut Self::Tx, query: Query<'_>) -> StoreResult<Vec<R>> {
        if query.has_no_rows() {
            return Ok(Vec::new());
        }
        let s = statement(query)?;
        Ok(sqlx::query_as_with(&s.sql, s.args)
            .persistent(s.kept)
            .fetch_all(&mut **tx)
            .await?)
    }

    async fn tx_execute(tx: &mut Self::Tx, query: Query<'_>) -> StoreResult<u64> {
        if query.has_no_rows() {
            return Ok(0);
        }
        let s = statement(query)?;
        let done = sqlx::query_with(&s.sql, s.args)
            .persistent(s.kept)
            .execute(&mut **tx)
            .await?;
        Ok(done.rows_affected())
    }

    async fn announce(&self, message: &str) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(ANNOUNCEMENTS)
            .bind(message)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn announcements(&self) -> StoreResult<Option<BoxStream<'static, String>>> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(ANNOUNCEMENTS).await?;
        let heard = futures::stream::unfold(listener, |mut listener| async move {
            loop {
                match listener.recv().await {
                    Ok(notification) => {
                        return Some((notification.payload().to_string(), listener));
                    }
                    // The next call connects again; wait a little so a database that is down
                    // is not asked in a loop.
                    Err(error) => {
                        tracing::debug!(%error, "listening for announcements failed; trying again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(Some(Box::pin(heard)))
    }
}

#[cfg(test)]
mod tests {
    use super::Postgres;
    use crate::testing::TempPostgres;

    /// In a rolling upgrade an instance of the version before may restart after a newer one
    /// has migrated the database: it starts, and leaves the newer migrations to their version.
    #[tokio::test]
    async fn an_older_instance_starts_on_a_database_a_newer_one_migrated() {
        let db = TempPostgres::create().await;
        let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99991231000001, 'from a newer version', true, '\\x00', 1)",
        )
        .execute(&pool)
        .await
        .expect("a newer version's migration");
        pool.close().await;
        Postgres::connect(&db.url, 2)
            .await
            .expect("an older instance starts");
    }

    /// Members, events and charges (migration 19) and the batch a claim gives its jobs
    /// (migration 20) are checked a statement at a time, not by foreign keys: a statement with
    /// one row naming no job (or no batch) is refused whole, and jobs and batches, which those
    /// rows name, cannot be deleted.
    #[tokio::test]
    async fn rows_naming_no_job_are_refused_and_jobs_are_never_deleted() {
        let db = TempPostgres::create().await;
        let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
        for setup in [
            "INSERT INTO users (id, name, role, created_at) VALUES ('u1', 'trader', 'trader', now())",
            "INSERT INTO jobs (id, owner_id, job_type, status, priority, payload, request_hash, \
             created_at, updated_at) VALUES ('j1', 'u1', 'risk_report', 'pending', 0, '{}', 'h', now(), now())",
            "INSERT INTO batches (id, provider, status, job_count, estimated_tokens, request_bytes, \
             created_at) VALUES ('b1', 'anthropic', 'submitting', 1, 0, 0, now())",
        ] {
            sqlx::query(setup).execute(&pool).await.expect(setup);
        }
        let charge = |job: &str| {
            format!(
                "INSERT INTO charges (job_id, provider_batch_id, kind, input_tokens, output_tokens, \
                 cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cost_nanos, \
                 uncached_cost_nanos, standard_cost_nanos, price_version, at) \
                 VALUES ('{job}', 'msgbatch_1', 'result', 1, 1, 0, 0, 0, 1, 1, 2, 'v1', now())"
            )
        };
        let refused = [
            (
                "INSERT INTO batch_jobs (batch_id, job_id) VALUES ('b1', 'j1'), ('b1', 'j2')"
                    .to_string(),
                "23503",
            ),
            (
                "INSERT INTO batch_jobs (batch_id, job_id) VALUES ('b2', 'j1')".into(),
                "23503",
            ),
            (
                "INSERT INTO job_events (job_id, kind, at) VALUES ('j1', 'created', now()), \
                 ('j2', 'created', now())"
                    .into(),
                "23503",
            ),
            (charge("j2"), "23503"),
            (
                "UPDATE jobs SET local_batch_id = 'b2' WHERE id = 'j1'".into(),
                "23503",
            ),
            (
                "INSERT INTO jobs (id, owner_id, job_type, status, priority, payload, request_hash, \
                 created_at, updated_at, local_batch_id) VALUES ('j3', 'u1', 'risk_report', \
                 'processing', 0, '{}', 'h3', now(), now(), 'b2')"
                    .into(),
                "23503",
            ),
            ("DELETE FROM jobs WHERE id = 'j1'".into(), "23001"),
            ("DELETE FROM batches".into(), "23001"),
            ("TRUNCATE jobs, batches CASCADE".into(), "23001"),
        ];
        for (sql, code) in refused {
            let error = sqlx::query(&sql)
                .execute(&pool)
                .await
                .expect_err(&sql)
                .into_database_error()
                .expect("a database error");
            assert_eq!(error.code().as_deref(), Some(code), "{sql}: {error}");
        }
        for accepted in [
            "INSERT INTO batch_jobs (batch_id, job_id) VALUES ('b1', 'j1')".to_string(),
            "INSERT INTO job_events (job_id, kind, at) VALUES ('j1', 'created', now())".into(),
            charge("j1"),
            "UPDATE jobs SET local_batch_id = 'b1' WHERE id = 'j1'".into(),
        ] {
            sqlx::query(&accepted)
                .execute(&pool)
                .await
                .expect(&accepted);
        }
        let kept: (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM batch_jobs), (SELECT count(*) FROM job_events), \
             (SELECT count(*) FROM charges)",
        )
        .fetch_one(&pool)
        .await
        .expect("counts");
        assert_eq!(kept, (1, 1, 1), "only the accepted rows are stored");
        let jobs: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT id, local_batch_id FROM jobs ORDER BY id")
                .fetch_all(&pool)
                .await
                .expect("jobs");
        assert_eq!(
            jobs,
            [("j1".to_string(), Some("b1".to_string()))],
            "j1 is in the batch that exists, and the refused insert left no job"
        );
    }

    /// Migration 21 reads the word index, the vocabulary and the counts again from the
    /// payloads' values: a field name's words and counts left from before are gone, and each
    /// value's count is what the jobs carry.
    #[tokio::test]
    async fn migration_21_keeps_the_words_of_values_only() {
        let db = TempPostgres::create().await;
        let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
        for setup in [
            "INSERT INTO users (id, name, role, created_at) VALUES ('u1', 'trader', 'trader', now())",
            "INSERT INTO jobs (id, owner_id, job_type, status, priority, payload, request_hash, \
             created_at, updated_at) SELECT 'j' || g, 'u1', 'risk_report', 'pending', 0, \
             jsonb_build_object('ticker', 'NVDA', 'legs', jsonb_build_array(jsonb_build_object('side', 'sell'))), \
             'h' || g, now(), now() FROM generate_series(1, 3) g",
            // What the vocabulary and the counts held before: the field names' words too.
            "INSERT INTO search_words (word) VALUES ('ticker'), ('legs')",
            "INSERT INTO search_word_jobs (word, owner_id, jobs) VALUES ('ticker', 'u1', 10001)",
        ] {
            sqlx::query(setup).execute(&pool).await.expect(setup);
        }
        sqlx::raw_sql(include_str!(
            "../../../../migrations/postgres/20261215000021_search_values_only.sql"
        ))
        .execute(&pool)
        .await
        .expect("migration 21 again");
        let words: Vec<String> = sqlx::query_scalar("SELECT word FROM search_words ORDER BY 1")
            .fetch_all(&pool)
            .await
            .expect("vocabulary");
        assert_eq!(words, ["nvda", "sell"]);
        let counts: Vec<(String, i64)> =
            sqlx::query_as("SELECT word, jobs FROM search_word_jobs ORDER BY 1")
                .fetch_all(&pool)
                .await
                .expect("counts");
        assert_eq!(counts, [("nvda".to_string(), 3), ("sell".to_string(), 3)]);
        let found: (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE payload_words @@ 'sell'::tsquery), \
             count(*) FILTER (WHERE payload_words @@ 'ticker | legs | side'::tsquery) FROM jobs",
        )
        .fetch_one(&pool)
        .await
        .expect("words");
        assert_eq!(found, (3, 0), "a nested value is a word, no field name is");
    }
}
