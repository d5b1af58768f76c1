//! Shared contexts: a trader stores a large input once (the day's market brief, a research
//! report) and names it in many jobs; each job's request carries it before its payload, marked
//! for the provider's cache (`templates`), so the jobs after the first read it at a tenth of
//! the input price. Contexts are immutable and private to their owner unless an admin shares
//! them; one that jobs still waiting need cannot be deleted.

use std::collections::HashMap;
use std::sync::Arc;

use app::api::{
    AuditAction, Caller, ContextCreated, ContextDeleted, ContextList, ContextRequest, ContextView,
    count_of_jobs,
};
use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::store::{AuditEntry, ContextDeletion, ContextRecord, NewContext, Visibility};
use crate::templates::{SharedContext, estimate_tokens};

/// Whose contexts a caller may use: their own and shared ones; every one for an admin.
fn visibility(caller: &Caller) -> Visibility {
    if caller.is_admin() {
        Visibility::All
    } else {
        Visibility::Owner(caller.user_id.clone())
    }
}

fn view(record: ContextRecord) -> ContextView {
    ContextView {
        context_id: record.id,
        name: record.name,
        owner: record.owner_name,
        sha256: record.sha256,
        bytes: record.bytes,
        tokens_estimate: record.tokens_estimate,
        shared: record.shared,
        created_at: record.created_at,
        jobs_waiting: record.jobs_waiting,
        jobs_total: record.jobs_total,
        text: record.text,
    }
}

fn not_found() -> Error {
    Error::NotFound("Context not found".into())
}

/// Stores a context; the same text again (by the same owner) is the context already stored.
pub async fn create(ctx: &Ctx, caller: &Caller, request: ContextRequest) -> Result<ContextCreated> {
    let sha256 = hex::encode(Sha256::digest(request.text.as_bytes()));
    let context = NewContext {
        id: format!("ctx_{}", uuid::Uuid::now_v7().simple()),
        owner_id: caller.user_id.clone(),
        bytes: request.text.len() as i64,
        tokens_estimate: estimate_tokens(&request.text),
        name: request.name,
        text: request.text,
        sha256,
        created_at: Utc::now(),
    };
    let (stored, created) = ctx.store().insert_context(context).await?;
    let message = if created {
        format!(
            "Context stored: about {} tokens. Name it in jobs with \"context_id\": \"{}\".",
            app::api::thousands(stored.tokens_estimate),
            stored.id
        )
    } else {
        "You already stored this text; this is that context.".to_string()
    };
    Ok(ContextCreated {
        success: true,
        created,
        context: view(stored),
        message,
    })
}

pub async fn list(ctx: &Ctx, caller: &Caller) -> Result<ContextList> {
    let contexts = ctx.store().list_contexts(&visibility(caller)).await?;
    Ok(ContextList {
        contexts: contexts.into_iter().map(view).collect(),
    })
}

pub async fn get(ctx: &Ctx, caller: &Caller, id: &str, with_text: bool) -> Result<ContextView> {
    ctx.store()
        .get_context(id, &visibility(caller), with_text)
        .await?
        .map(view)
        .ok_or_else(not_found)
}

/// Deletes one of the caller's contexts (any, for an admin), unless jobs waiting need it.
pub async fn delete(ctx: &Ctx, caller: &Caller, id: &str) -> Result<ContextDeleted> {
    match ctx
        .store()
        .delete_context(id, &visibility(caller), Utc::now())
        .await?
    {
        ContextDeletion::Deleted => Ok(ContextDeleted {
            success: true,
            message: "Context deleted. Jobs that used it keep their results.".into(),
        }),
        ContextDeletion::NotFound => Err(not_found()),
        ContextDeletion::InUse { jobs } => Err(Error::Conflict(match jobs {
            1 => "1 job that has not ended carries this context; cancel it or wait for it, then \
                  delete the context."
                .into(),
            _ => format!(
                "{} that have not ended carry this context; cancel them or wait for them, \
                 then delete it.",
                count_of_jobs(jobs)
            ),
        })),
    }
}

/// Shares a context with every user, or stops sharing it (admins).
pub async fn share(ctx: &Ctx, caller: &Caller, id: &str, shared: bool) -> Result<ContextView> {
    crate::access::require_admin(caller)?;
    let detail = if shared { "shared" } else { "private" };
    let audit = AuditEntry::by(
        caller,
        AuditAction::ContextShare,
        Some(id.to_string()),
        Some(detail.to_string()),
    );
    if !ctx.store().share_context(id, shared, &audit).await? {
        return Err(not_found());
    }
    get(ctx, caller, id, false).await
}

/// The contexts a caller's jobs name, as their requests carry them, each looked up once: a
/// name the caller may not use is `None` (the request then fails validation there).
#[derive(Default)]
pub struct ForJobs {
    found: HashMap<String, Option<SharedContext>>,
}

impl ForJobs {
    pub async fn get(
        &mut self,
        ctx: &Ctx,
        caller: &Caller,
        id: &str,
    ) -> Result<Option<&SharedContext>> {
        if !self.found.contains_key(id) {
            let found = ctx
                .store()
                .get_context(id, &visibility(caller), true)
                .await?
                .and_then(|c| {
                    Some(SharedContext {
                        id: c.id,
                        name: c.name,
                        text: Arc::from(c.text?),
                    })
                });
            self.found.insert(id.to_string(), found);
        }
        Ok(self.found.get(id).and_then(Option::as_ref))
    }
}
