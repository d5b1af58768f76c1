//! Shared contexts as the REST API and the dashboard show them: large inputs (the day's
//! market brief, a research report, the firm's risk methodology) that many jobs carry before
//! their own payload, cached at the provider so each job pays little for them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `POST /api/v1/batch/contexts`: a name for people, and the text itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ContextRequest {
    #[cfg_attr(feature = "ssr", schema(min_length = 1, max_length = 200))]
    pub name: String,
    /// At most 1 MiB of UTF-8; no NUL (`\u0000`).
    #[cfg_attr(feature = "ssr", schema(min_length = 1))]
    pub text: String,
}

/// A context: immutable, identified by its text per owner (sending the same text again
/// answers the same context).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ContextView {
    pub context_id: String,
    pub name: String,
    pub owner: String,
    /// Hex SHA-256 of the text.
    pub sha256: String,
    pub bytes: i64,
    /// About how many tokens the text is (four ASCII characters a token, each other byte one).
    pub tokens_estimate: i64,
    /// Usable by every user (an admin's choice); otherwise only by its owner.
    pub shared: bool,
    pub created_at: DateTime<Utc>,
    /// Jobs that carry it and have not ended: while there are any, it cannot be deleted.
    pub jobs_waiting: i64,
    pub jobs_total: i64,
    /// The text, when asked for (`?include_text=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ContextCreated {
    pub success: bool,
    /// `false` when the owner already had a context with this text (it is answered instead).
    pub created: bool,
    pub context: ContextView,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ContextList {
    pub contexts: Vec<ContextView>,
}

/// `PUT /api/v1/batch/contexts/{context_id}/shared` (admins).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ShareContextRequest {
    pub shared: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ContextDeleted {
    pub success: bool,
    pub message: String,
}
