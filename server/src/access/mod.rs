//! Use cases of access: users, bearer tokens, dashboard sessions.

mod secret;

use app::api::{AuditAction, Caller, IssuedToken, PriceView, Role, TokenView, UserView};
use chrono::{Duration, Utc};

use sha2::{Digest, Sha256};

use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::store::{CredentialKind, NewCredential, Store, UserRecord};

/// A new credential, shown to its owner once.
pub struct Issued {
    pub user: UserRecord,
    pub plain: String,
}

/// Creates the user if needed (an existing user keeps its role) and issues a bearer token
/// (the command line and first start; an admin's go through [`create_token`]).
pub async fn issue_token(store: &dyn Store, name: &str, role: Role) -> Result<Issued> {
    issue_token_by(store, name, role, None).await
}

/// The same, recorded in the audit log as `by`'s action when there is one.
async fn issue_token_by(
    store: &dyn Store,
    name: &str,
    role: Role,
    by: Option<&Caller>,
) -> Result<Issued> {
    let name = name.trim();
    // Characters, not bytes: the REST validator and the dashboard count the same way.
    if name.is_empty() || name.chars().count() > 64 {
        return Err(Error::BadInput("a user name has 1 to 64 characters".into()));
    }
    let user = store
        .ensure_user(&uuid::Uuid::now_v7().to_string(), name, role, Utc::now())
        .await?;
    if user.role != role {
        return Err(Error::Conflict(format!(
            "user {name} exists with role {}, not {role}",
            user.role
        )));
    }
    let plain = issue(store, CredentialKind::Token, &user, None, None, by).await?;
    Ok(Issued { user, plain })
}

/// On first start with an empty database: an admin and its token, or nothing.
pub async fn bootstrap_admin(store: &dyn Store) -> Result<Option<Issued>> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    issue_token(store, "admin", Role::Admin).await.map(Some)
}

pub async fn authenticate_token(store: &dyn Store, presented: &str) -> Result<Caller> {
    verify(store, CredentialKind::Token, presented)
        .await?
        .ok_or(Error::Unauthenticated)
}

/// The public id of a token that authenticated (the part a limit is keyed on).
pub fn token_id(presented: &str) -> String {
    secret::parse(presented).map_or_else(String::new, |(id, _)| id.to_string())
}

/// A request's bearer token, checked against the store at most once a second per token.
pub async fn authenticate(ctx: &Ctx, presented: &str) -> Result<Caller> {
    let key: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    if let Some(caller) = ctx.caches.tokens.get(&key) {
        return Ok(caller);
    }
    let caller = authenticate_token(ctx.store(), presented).await?;
    ctx.caches.tokens.insert(key, caller.clone());
    Ok(caller)
}

/// Trades a valid bearer token for a session credential (the cookie's value). The session
/// remembers the token: revoking the token ends it.
pub async fn open_session(ctx: &Ctx, token: &str, lifetime: Duration) -> Result<String> {
    let store = ctx.store();
    let caller = authenticate_token(store, token).await?;
    let user = UserRecord {
        id: caller.user_id,
        name: caller.name,
        role: caller.role,
        created_at: Utc::now(),
    };
    let token_id = secret::parse(token).map(|(id, _)| id.to_string());
    issue(
        store,
        CredentialKind::Session,
        &user,
        Some(lifetime),
        token_id,
        None,
    )
    .await
}

pub async fn session_caller(ctx: &Ctx, cookie: &str) -> Result<Option<Caller>> {
    verify(ctx.store(), CredentialKind::Session, cookie).await
}

pub async fn close_session(ctx: &Ctx, cookie: &str) -> Result<()> {
    if let Some((id, _)) = secret::parse(cookie) {
        ctx.store()
            .delete_credential(CredentialKind::Session, id)
            .await?;
    }
    Ok(())
}

async fn issue(
    store: &dyn Store,
    kind: CredentialKind,
    user: &UserRecord,
    lifetime: Option<Duration>,
    opened_with: Option<String>,
    by: Option<&Caller>,
) -> Result<String> {
    let secret = secret::generate();
    let now = Utc::now();
    let audit = by.map(|admin| {
        crate::store::AuditEntry::by(
            admin,
            AuditAction::TokenCreate,
            Some(secret.id.clone()),
            Some(format!("for {} ({})", user.name, user.role)),
        )
    });
    store
        .insert_credential(NewCredential {
            id: secret.id,
            kind,
            user_id: user.id.clone(),
            secret_hash: secret.hash,
            created_at: now,
            expires_at: lifetime.map(|l| now + l),
            opened_with,
            audit,
        })
        .await?;
    Ok(secret.plain)
}

async fn verify(
    store: &dyn Store,
    kind: CredentialKind,
    presented: &str,
) -> Result<Option<Caller>> {
    let Some((id, secret)) = secret::parse(presented) else {
        return Ok(None);
    };
    let Some(found) = store.find_credential(kind, id).await? else {
        return Ok(None);
    };
    let now = Utc::now();
    let live = found.revoked_at.is_none() && found.expires_at.is_none_or(|at| at > now);
    if !(live && secret::matches(secret, &found.secret_hash)) {
        return Ok(None);
    }
    Ok(Some(Caller {
        user_id: found.user.id,
        name: found.user.name,
        role: found.user.role,
    }))
}

/// Every user with their bearer tokens (admins only).
pub async fn list_users(ctx: &Ctx, caller: &Caller) -> Result<Vec<UserView>> {
    require_admin(caller)?;
    let store = ctx.store();
    let tokens = store.list_tokens().await?;
    let users = store.list_users().await?;
    Ok(users
        .into_iter()
        .map(|u| UserView {
            tokens: tokens
                .iter()
                .filter(|t| t.user_id == u.id)
                .map(|t| TokenView {
                    id: t.id.clone(),
                    created_at: t.created_at,
                    revoked_at: t.revoked_at,
                })
                .collect(),
            id: u.id,
            name: u.name,
            role: u.role,
            created_at: u.created_at,
        })
        .collect())
}

/// An admin issues a token (creating the user if needed); it is shown this once.
pub async fn create_token(
    ctx: &Ctx,
    caller: &Caller,
    user: &str,
    role: Role,
) -> Result<IssuedToken> {
    require_admin(caller)?;
    let issued = issue_token_by(ctx.store(), user, role, Some(caller)).await?;
    let token_id = secret::parse(&issued.plain)
        .map(|(id, _)| id.to_string())
        .unwrap_or_default();
    Ok(IssuedToken {
        user: issued.user.name,
        role: issued.user.role,
        token_id,
        token: issued.plain,
    })
}

pub async fn revoke_token(ctx: &Ctx, caller: &Caller, token_id: &str) -> Result<()> {
    require_admin(caller)?;
    if ctx
        .store()
        .revoke_credential(
            CredentialKind::Token,
            token_id,
            Utc::now(),
            Some(&crate::store::AuditEntry::by(
                caller,
                AuditAction::TokenRevoke,
                Some(token_id.to_string()),
                None,
            )),
        )
        .await?
    {
        // Revocation is rare: forget every cached token on this instance at once.
        ctx.caches.tokens.invalidate_all();
        Ok(())
    } else {
        Err(Error::NotFound("No live token has this id".into()))
    }
}

/// A fresh random secret (for webhook signing keys).
pub fn random_secret() -> String {
    secret::random()
}

/// The price table in force (admins).
pub fn price_table(ctx: &Ctx, caller: &Caller) -> Result<PriceView> {
    require_admin(caller)?;
    Ok(ctx.prices.view())
}

pub fn require_admin(caller: &Caller) -> Result<()> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(Error::Forbidden)
    }
}
