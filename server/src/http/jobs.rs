//! The contract's job endpoints: parse, authenticate, call one use case, answer.

use app::api::validation::{
    parse_bulk_cancel, parse_bulk_enqueue, parse_days, parse_enqueue, parse_list_query,
};
use app::api::{
    BulkCancelResponse, BulkEnqueueResponse, CancelResponse, DailyCost, EnqueueResponse, Job,
    JobEventView, JobList, Stats,
};
use axum::Json;
use axum::extract::State;
use serde_json::Value;

use super::extract::{AuthUser, JobId, JsonBody, QueryPairs};
use crate::context::Ctx;
use crate::error::Result;
use crate::jobs;

pub async fn enqueue(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    JsonBody(body): JsonBody,
) -> Result<Json<EnqueueResponse>> {
    let request = parse_enqueue(&body)?;
    jobs::enqueue(&ctx, &caller, request).await.map(Json)
}

pub async fn enqueue_many(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    JsonBody(body): JsonBody,
) -> Result<Json<BulkEnqueueResponse>> {
    let requests = parse_bulk_enqueue(&body)?;
    jobs::enqueue_many(&ctx, &caller, requests).await.map(Json)
}

pub async fn list(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    query: QueryPairs,
) -> Result<Json<JobList>> {
    let query = parse_list_query(query.iter())?;
    jobs::list(&ctx, &caller, query).await.map(Json)
}

pub async fn get(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    JobId(job_id): JobId,
) -> Result<Json<Job>> {
    jobs::get(&ctx, &caller, &job_id).await.map(Json)
}

pub async fn cancel(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    JobId(job_id): JobId,
) -> Result<Json<CancelResponse>> {
    jobs::cancel(&ctx, &caller, &job_id).await.map(Json)
}

pub async fn result(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    JobId(job_id): JobId,
) -> Result<Json<Value>> {
    jobs::result(&ctx, &caller, &job_id).await.map(Json)
}

pub async fn events(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    JobId(job_id): JobId,
) -> Result<Json<Vec<JobEventView>>> {
    jobs::events(&ctx, &caller, &job_id).await.map(Json)
}

pub async fn stats(State(ctx): State<Ctx>, AuthUser(caller): AuthUser) -> Result<Json<Stats>> {
    jobs::stats(&ctx, &caller).await.map(Json)
}

pub async fn cancel_many(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    JsonBody(body): JsonBody,
) -> Result<Json<BulkCancelResponse>> {
    let request = parse_bulk_cancel(&body)?;
    jobs::cancel_many(&ctx, &caller, &request.job_ids)
        .await
        .map(Json)
}

pub async fn daily_costs(
    State(ctx): State<Ctx>,
    AuthUser(caller): AuthUser,
    query: QueryPairs,
) -> Result<Json<Vec<DailyCost>>> {
    let days = parse_days(query.iter())?;
    jobs::daily_costs(&ctx, &caller, days).await.map(Json)
}
