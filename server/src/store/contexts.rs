//! Shared contexts as the store keeps them: large inputs many jobs share, immutable and
//! content-addressed per owner, private unless an admin shares them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{AuditEntry, StoreResult, Visibility};

#[derive(Clone, Debug)]
pub struct NewContext {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub text: String,
    pub sha256: String,
    pub bytes: i64,
    pub tokens_estimate: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ContextRecord {
    pub id: String,
    pub owner_id: String,
    pub owner_name: String,
    pub name: String,
    pub sha256: String,
    pub bytes: i64,
    pub tokens_estimate: i64,
    pub shared: bool,
    pub created_at: DateTime<Utc>,
    /// Jobs that name it and have not ended (pending or processing).
    pub jobs_waiting: i64,
    /// Every job that names it.
    pub jobs_total: i64,
    /// Loaded only when asked for.
    pub text: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ContextDeletion {
    Deleted,
    NotFound,
    /// Jobs that have not ended use it: their requests still need its text.
    InUse {
        jobs: i64,
    },
}

#[async_trait]
pub trait ContextStore: Send + Sync + 'static {
    /// Stores the context unless its owner already has one with the same text, and answers
    /// the stored one either way (`true` when it is new).
    async fn insert_context(&self, context: NewContext) -> StoreResult<(ContextRecord, bool)>;
    /// A context the viewer may use: their own or a shared one (any, for `All`).
    async fn get_context(
        &self,
        id: &str,
        visibility: &Visibility,
        with_text: bool,
    ) -> StoreResult<Option<ContextRecord>>;
    /// The contexts a viewer may use, newest first, without their texts.
    async fn list_contexts(&self, visibility: &Visibility) -> StoreResult<Vec<ContextRecord>>;
    /// Deletes a context of the viewer's (any, for `All`) unless jobs that have not ended
    /// use it; its row stays, without its text, for the jobs that name it.
    async fn delete_context(
        &self,
        id: &str,
        visibility: &Visibility,
        now: DateTime<Utc>,
    ) -> StoreResult<ContextDeletion>;
    /// Shares a context with everyone, or stops sharing it, with its audit entry; `false` if
    /// there is no such context.
    async fn share_context(&self, id: &str, shared: bool, audit: &AuditEntry) -> StoreResult<bool>;
    /// The name and text of each of these contexts that is not deleted (for a flush).
    async fn context_texts(&self, ids: &[String]) -> StoreResult<Vec<(String, String, String)>>;
}
