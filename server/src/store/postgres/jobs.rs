//! Jobs on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};

use super::{JOB_FROM, JOB_SUMMARY_COLUMNS, JobRow, PostgresStore, push_visibility};
use crate::events::Happened;
use crate::store::*;
use app::api::ListQuery;

#[async_trait]
impl JobStore for PostgresStore {
    async fn insert_job(&self, job: NewJob) -> StoreResult<InsertOutcome> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, owner_id, job_type, status, priority, payload, run_after, idempotency_key, \
             request_hash, created_at, updated_at) VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $9) \
             ON CONFLICT (owner_id, idempotency_key) DO NOTHING",
        )
        .bind(&job.id)
        .bind(&job.owner_id)
        .bind(job.job_type.as_str())
        .bind(job.priority)
        .bind(Json(&job.payload))
        .bind(job.run_after)
        .bind(&job.idempotency_key)
        .bind(&job.request_hash)
        .bind(job.created_at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            let happened = Happened::Created;
            sqlx::query(
                "INSERT INTO job_events (job_id, kind, detail, at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&job.id)
            .bind(happened.kind())
            .bind(happened.detail())
            .bind(job.created_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;

        let lookup = if inserted {
            self.job_where(|q| {
                q.push("j.id = ").push_bind(job.id.clone());
            })
            .await?
        } else {
            let key = job.idempotency_key.clone().unwrap_or_default();
            self.job_where(|q| {
                q.push("j.owner_id = ")
                    .push_bind(job.owner_id.clone())
                    .push(" AND j.idempotency_key = ")
                    .push_bind(key);
            })
            .await?
        };
        let record = lookup
            .ok_or_else(|| StoreError::Corrupt(format!("job {} vanished after insert", job.id)))?;
        Ok(if inserted {
            InsertOutcome::Created(record)
        } else {
            InsertOutcome::Existing(record)
        })
    }

    async fn get_job(&self, id: &str, visibility: &Visibility) -> StoreResult<Option<JobRecord>> {
        self.job_where(|q| {
            q.push("j.id = ").push_bind(id.to_string());
            push_visibility(q, visibility);
        })
        .await
    }

    async fn list_jobs(&self, visibility: &Visibility, filter: &ListQuery) -> StoreResult<JobPage> {
        let mut query =
            QueryBuilder::new(format!("SELECT {JOB_SUMMARY_COLUMNS}{JOB_FROM} WHERE TRUE"));
        push_visibility(&mut query, visibility);
        push_filter(&mut query, filter);
        query
            .push(" ORDER BY j.created_at DESC, j.id DESC LIMIT ")
            .push_bind(filter.limit)
            .push(" OFFSET ")
            .push_bind(filter.offset);
        let rows: Vec<JobRow> = query.build_query_as().fetch_all(&self.pool).await?;
        let jobs = rows
            .into_iter()
            .map(JobRecord::try_from)
            .collect::<StoreResult<Vec<_>>>()?;

        let mut counts = QueryBuilder::new("SELECT j.status, COUNT(*) FROM jobs j WHERE TRUE");
        push_visibility(&mut counts, visibility);
        counts.push(" GROUP BY j.status");
        let by_status: Vec<(String, i64)> = counts.build_query_as().fetch_all(&self.pool).await?;
        let count = |wanted: &str| {
            by_status
                .iter()
                .filter(|(s, _)| s == wanted)
                .map(|(_, n)| n)
                .sum::<i64>()
        };
        let visible: i64 = by_status.iter().map(|(_, n)| n).sum();
        let total_count = if filter.job_type.is_some() || filter.search.is_some() {
            let mut matching = QueryBuilder::new("SELECT COUNT(*) FROM jobs j WHERE TRUE");
            push_visibility(&mut matching, visibility);
            push_filter(&mut matching, filter);
            matching.build_query_scalar().fetch_one(&self.pool).await?
        } else {
            filter.status_filter.map_or(visible, |s| count(s.as_str()))
        };
        Ok(JobPage {
            jobs,
            total_count,
            pending_count: count("pending"),
            processing_count: count("processing"),
        })
    }

    async fn cancel_job(
        &self,
        id: &str,
        visibility: &Visibility,
        now: DateTime<Utc>,
    ) -> StoreResult<CancelOutcome> {
        let mut tx = self.pool.begin().await?;
        let mut find = QueryBuilder::new("SELECT j.status, j.batch_id FROM jobs j WHERE j.id = ");
        find.push_bind(id.to_string());
        push_visibility(&mut find, visibility);
        // Locks the row: a concurrent ingest waits, then finds it cancelled.
        find.push(" FOR UPDATE");
        let found: Option<(String, Option<String>)> =
            find.build_query_as().fetch_optional(&mut *tx).await?;
        let Some((status, batch_id)) = found else {
            return Ok(CancelOutcome::NotFound);
        };
        let was = parse_status(&status)?;
        if was.is_terminal() {
            return Ok(CancelOutcome::Terminal(was));
        }
        sqlx::query(
            "UPDATE jobs SET status = 'cancelled', cancel_requested = (status = 'processing'), updated_at = $1 \
             WHERE id = $2 AND status IN ('pending', 'processing')",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let happened = Happened::Cancelled {
            was,
            batch: batch_id,
        };
        sqlx::query("INSERT INTO job_events (job_id, kind, detail, at) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(happened.kind())
            .bind(happened.detail())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let job = self
            .get_job(id, &Visibility::All)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("job {id} vanished")))?;
        Ok(CancelOutcome::Cancelled {
            job: Box::new(job),
            was,
        })
    }

    async fn stats(&self, visibility: &Visibility) -> StoreResult<StatsRecord> {
        let mut query = QueryBuilder::new(
            "SELECT COUNT(*), \
             COUNT(*) FILTER (WHERE j.status = 'pending'), \
             COUNT(*) FILTER (WHERE j.status = 'processing'), \
             COUNT(*) FILTER (WHERE j.status = 'completed'), \
             COUNT(*) FILTER (WHERE j.status = 'failed'), \
             COALESCE(SUM(j.input_tokens + j.output_tokens), 0)::BIGINT, \
             COALESCE(SUM(j.cost_nanos), 0)::BIGINT, \
             COALESCE(SUM(j.standard_cost_nanos), 0)::BIGINT, \
             (AVG(EXTRACT(EPOCH FROM (j.completed_at - j.created_at))) FILTER \
                 (WHERE j.status = 'completed' AND j.completed_at IS NOT NULL) * 1000000)::FLOAT8 \
             FROM jobs j WHERE TRUE",
        );
        push_visibility(&mut query, visibility);
        let row: (i64, i64, i64, i64, i64, i64, i64, i64, Option<f64>) =
            query.build_query_as().fetch_one(&self.pool).await?;
        Ok(StatsRecord {
            total: row.0,
            pending: row.1,
            processing: row.2,
            completed: row.3,
            failed: row.4,
            tokens: row.5,
            cost_nanos: row.6,
            standard_cost_nanos: row.7,
            avg_completion_micros: row.8,
        })
    }

    async fn job_events(&self, job_id: &str) -> StoreResult<Vec<JobEvent>> {
        let rows: Vec<(String, Option<String>, DateTime<Utc>)> =
            sqlx::query_as("SELECT kind, detail, at FROM job_events WHERE job_id = $1 ORDER BY id")
                .bind(job_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(kind, detail, at)| JobEvent { kind, detail, at })
            .collect())
    }

    async fn daily_costs(
        &self,
        visibility: &Visibility,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<DailyCostRecord>> {
        let mut query = QueryBuilder::new(
            "SELECT FLOOR(EXTRACT(EPOCH FROM c.at) / 86400)::BIGINT AS day, j.job_type, u.name, COUNT(*), \
             SUM(c.cost_nanos)::BIGINT, SUM(c.standard_cost_nanos)::BIGINT FROM charges c \
             JOIN jobs j ON j.id = c.job_id JOIN users u ON u.id = j.owner_id WHERE c.at >= ",
        );
        query.push_bind(since);
        push_visibility(&mut query, visibility);
        query.push(" GROUP BY day, j.job_type, u.name ORDER BY day, j.job_type, u.name");
        let rows: Vec<(i64, String, String, i64, i64, i64)> =
            query.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(
                |(day, job_type, owner_name, jobs, cost_nanos, standard_cost_nanos)| {
                    Ok(DailyCostRecord {
                        day,
                        job_type: parse_job_type(&job_type)?,
                        owner_name,
                        jobs,
                        cost_nanos,
                        standard_cost_nanos,
                    })
                },
            )
            .collect()
    }
}

/// The list's filters: status, type, and a search by id, idempotency key or payload text.
fn push_filter(query: &mut QueryBuilder<'_, Postgres>, filter: &ListQuery) {
    if let Some(status) = filter.status_filter {
        query.push(" AND j.status = ").push_bind(status.as_str());
    }
    if let Some(job_type) = filter.job_type {
        query
            .push(" AND j.job_type = ")
            .push_bind(job_type.as_str());
    }
    if let Some(text) = &filter.search {
        let escaped = text
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        query
            .push(" AND (j.id = ")
            .push_bind(text.clone())
            .push(" OR j.idempotency_key = ")
            .push_bind(text.clone())
            .push(" OR j.payload::text LIKE ")
            .push_bind(format!("%{escaped}%"))
            .push(" ESCAPE '\\')");
    }
}
