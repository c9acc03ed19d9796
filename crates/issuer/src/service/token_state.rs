//! Token changes that keep the secret: enable, disable, and updates that
//! narrow what the secret allows. Each narrowing appends a revocation event
//! in the same transaction, which is how the verifiers learn of it; a change
//! that would widen the secret is refused in favour of `RotateToken`, but
//! for one: a later expiry of a live API token, which FME users rely on. It
//! is an `extend_token` event the verifiers honour (a verifier that missed
//! it refuses the secret at its signed expiry, failing closed).

use super::token_select::{self, Use, excess, is_session, resolve};
use crate::auth::Caller;
use crate::error::IssuerError;
use crate::judge;
use crate::state::Shared;
use crate::validate::{self, Violations};
use std::time::Duration;
use tessera_core::{Catalog, Grant};
use tessera_proto::v1;
use tessera_store::audit::NewAudit;
use tessera_store::entity::token;
use tessera_store::revocation::{EventKind, NewRevocation};
use tessera_store::tokens::{self, TokenChange, TokenUpdate};

/// The fields `UpdateToken` may change.
const UPDATABLE: &[&str] = &[
    "name",
    "description",
    "enabled",
    "expire_time",
    "permissions",
];

/// Token fields an update may not name: output only, or set at creation.
const READ_ONLY: &[&str] = &[
    "id",
    "owner_id",
    "owner_name",
    "type",
    "session_kind",
    "all_permissions",
    "create_time",
    "key_id",
    "status",
    "update_time",
];

/// Refuses to enable a token past its expiry.
fn refuse_if_expired(row: &token::Model, now: i64) -> Result<(), IssuerError> {
    if row.expire_time > now {
        return Ok(());
    }
    Err(IssuerError::FailedPrecondition(if is_session(row) {
        "the session token has expired and cannot be re-activated: log in again".into()
    } else {
        "the token has expired: re-activate it with RotateToken, which issues a new secret \
         with a new expiry"
            .into()
    }))
}

/// The revocation event of enabling or disabling `row`, kept until no secret
/// of the token can be valid.
fn enabled_event(row: &token::Model, enabled: bool) -> NewRevocation {
    let kind = if enabled {
        EventKind::EnableToken
    } else {
        EventKind::DisableToken
    };
    NewRevocation::token(kind, &row.id, &row.owner_id, tokens::last_valid_time(row))
}

/// EnableToken and DisableToken: reversible; a no-op when the token is
/// already in that state (nothing is appended then).
pub(crate) async fn set_enabled(
    shared: &Shared,
    caller: &Caller,
    selector: Option<&v1::TokenSelector>,
    enabled: bool,
) -> Result<v1::Token, IssuerError> {
    let store = shared.store()?;
    let (row, owner) = resolve(store, caller, selector, "token", Use::Change).await?;
    let now = shared.now();
    let action = if enabled {
        "token.enable"
    } else {
        "token.disable"
    };
    let (row, ()) = store
        .change_token(&row.id, now, |row| {
            if enabled {
                refuse_if_expired(row, now)?;
            }
            let audit = NewAudit::ok(caller.actor(), action, format!("tokens/{}", row.id));
            let change = if row.enabled == enabled {
                TokenChange {
                    update: TokenUpdate::default(),
                    revocations: Vec::new(),
                    audit: audit.with_outcome("ok", "no change: it was already so"),
                }
            } else {
                TokenChange {
                    update: TokenUpdate {
                        enabled: Some(enabled),
                        ..TokenUpdate::default()
                    },
                    revocations: vec![enabled_event(row, enabled)],
                    audit,
                }
            };
            Ok((change, ()))
        })
        .await
        .map_err(token_select::gone_is_not_found)?;
    tracing::info!(user = %caller.actor(), token_id = %row.id, enabled, "token state set");
    crate::judge::token(shared, store, row, &owner.username, now).await
}

/// The update a request asks for, checked for form before the row is read.
struct Wanted {
    paths: Vec<String>,
    name: String,
    description: String,
    enabled: bool,
    expire_time: Option<i64>,
    grants: Vec<Grant>,
}

impl Wanted {
    fn names(&self, path: &str) -> bool {
        self.paths.iter().any(|p| p == path)
    }
}

fn wanted(
    catalog: &Catalog,
    body: &v1::UpdateTokenRequest,
    now: i64,
    max_lifetime: Duration,
) -> Result<Wanted, IssuerError> {
    let new = body.token.clone().unwrap_or_default();
    let mut v = Violations::default();
    let mut implied = Vec::new();
    if !new.name.is_empty() {
        implied.push("name");
    }
    if !new.description.is_empty() {
        implied.push("description");
    }
    if new.enabled {
        implied.push("enabled");
    }
    if new.expire_time.is_some() {
        implied.push("expire_time");
    }
    if !new.permissions.is_empty() {
        implied.push("permissions");
    }
    let paths = validate::mask_paths(
        &mut v,
        body.update_mask.as_ref(),
        UPDATABLE,
        READ_ONLY,
        implied,
    );
    if paths.is_empty() && body.update_mask.as_ref().is_none_or(|m| m.paths.is_empty()) {
        v.add(
            "update_mask",
            "names nothing to update: list the fields to change (to disable a token, name \
             `enabled` and leave it false)",
        );
    }
    let names = |path: &str| paths.iter().any(|p| p == path);
    if names("name") {
        validate::name(&mut v, "token.name", &new.name);
    }
    if names("description") {
        validate::description(&mut v, "token.description", &new.description);
    }
    let mut expire_time = None;
    if names("expire_time") {
        match &new.expire_time {
            None => v.add(
                "token.expire_time",
                "must be set when the update mask names it",
            ),
            Some(t) if t.seconds < now => v.add(
                "token.expire_time",
                "is in the past; to stop the token now, set it to the current time, or \
                 disable or delete the token",
            ),
            Some(t) if t.seconds > now.saturating_add(validate::secs(max_lifetime)) => v.add(
                "token.expire_time",
                format!(
                    "is past the maximum token lifetime of {} from now",
                    tessera_core::duration::format(max_lifetime)
                ),
            ),
            Some(t) => expire_time = Some(t.seconds),
        }
    }
    let grants = if names("permissions") {
        let mut grants = validate::grants(&mut v, catalog, "token.permissions", &new.permissions);
        grants.sort();
        grants.dedup();
        grants
    } else {
        Vec::new()
    };
    v.finish()?;
    Ok(Wanted {
        paths,
        name: new.name,
        description: new.description,
        enabled: new.enabled,
        expire_time,
        grants,
    })
}

/// What an extension of a token's expiry restates, judged before the
/// change: the grants its current secret holds now (signed, narrowed, held
/// to its owner's ceilings) and which secret that is.
struct Extending {
    version: u32,
    grants: Vec<Grant>,
}

/// Checks that `row`'s current secret may be given the later expiry `end`
/// in place: it is an API token's, valid now (or only disabled), and the
/// key that signed it stays published until then. Anything else widens a
/// dead secret, which only a rotation (a new secret) may do.
async fn extending(
    shared: &Shared,
    store: &tessera_store::Store,
    row: &token::Model,
    end: i64,
    now: i64,
) -> Result<Extending, IssuerError> {
    let set = judge::set_for(store, &[&row.id], &[&row.owner_id]).await?;
    let judged = judge::judge_row(shared, &set, row, now)?;
    match judged.status {
        v1::TokenStatus::Active | v1::TokenStatus::Disabled => {}
        v1::TokenStatus::Expired => {
            return Err(IssuerError::FailedPrecondition(
                "the token has expired: a later expiry would revive its secret; rotate the \
                 token (RotateToken) with the new expiry instead"
                    .into(),
            ));
        }
        _ => {
            return Err(IssuerError::FailedPrecondition(
                "the token's secret was revoked when its owner was disabled or given a new \
                 password: rotate the token (RotateToken) for a new secret instead"
                    .into(),
            ));
        }
    }
    // A retired key is published only until `remove_time`; past it no
    // verifier could check the secret, so the extension would be a lie.
    let key = store
        .published_keys(now)
        .await?
        .into_iter()
        .find(|k| k.kid == row.key_id);
    match key.map(|k| k.remove_time) {
        Some(None) => {}
        Some(Some(removed)) if removed >= end => {}
        Some(Some(removed)) => {
            return Err(IssuerError::FailedPrecondition(format!(
                "the key that signed this secret is retired and stays published only until {}: \
                 extend the token to then at most, or rotate it (RotateToken) for a secret \
                 signed by the current key",
                tessera_core::duration::instant(removed)
            )));
        }
        None => {
            return Err(IssuerError::FailedPrecondition(
                "the key that signed this secret is no longer published: rotate the token \
                 (RotateToken) for a new secret"
                    .into(),
            ));
        }
    }
    Ok(Extending {
        version: tokens::version_of(row),
        grants: judged.grants,
    })
}

/// Decides what an update writes, on the row as it is now.
fn decide(
    catalog: &Catalog,
    caller: &Caller,
    wanted: &Wanted,
    extension: Option<&Extending>,
    row: &token::Model,
    now: i64,
) -> Result<TokenChange, IssuerError> {
    if is_session(row)
        && let Some(path) = ["name", "expire_time", "permissions"]
            .into_iter()
            .find(|p| wanted.names(p))
    {
        return Err(IssuerError::FailedPrecondition(format!(
            "a session token's {path} cannot be changed: disable it, or log out"
        )));
    }
    let mut update = TokenUpdate::default();
    let mut changed = Vec::new();
    let mut revocations = Vec::new();
    if wanted.names("name") && wanted.name != row.name {
        update.name = Some(wanted.name.clone());
        changed.push("name");
    }
    if wanted.names("description") && wanted.description != row.description {
        update.description = Some(wanted.description.clone());
        changed.push("description");
    }
    let mut narrowed_expiry = None;
    // Every event this update appends lives as long as the token's last
    // secret, which an extension moves later.
    let mut lives_until = tokens::last_valid_time(row);
    if let Some(end) = wanted.expire_time {
        if end > row.expire_time {
            // Judged before the change; a rotation since makes it stale.
            let basis = extension
                .filter(|e| e.version == tokens::version_of(row))
                .ok_or_else(|| {
                    IssuerError::Aborted(
                        "the token was rotated while its expiry was being extended: read it \
                         and try again"
                            .into(),
                    )
                })?;
            if row.expire_time <= now {
                return Err(IssuerError::FailedPrecondition(
                    "the token has expired: rotate it (RotateToken) with the new expiry".into(),
                ));
            }
            update.expire_time = Some(end);
            changed.push("expire_time (extended)");
            lives_until = lives_until.max(end);
            revocations.push(NewRevocation::extend_token(
                &row.id,
                &row.owner_id,
                basis.version,
                end,
                &basis.grants,
                !row.enabled,
                lives_until,
            ));
        }
        if end < row.expire_time {
            update.expire_time = Some(end);
            narrowed_expiry = Some(end);
            changed.push("expire_time");
        }
    }
    let mut narrowed_grants = None;
    if wanted.names("permissions") {
        let mut held = tokens::grants_of(row)?;
        held.sort();
        let over = excess(&held, &wanted.grants);
        if !over.is_empty() {
            return Err(IssuerError::FailedPrecondition(format!(
                "more permissions would widen what the token's secret allows ({}): rotate the \
                 token (RotateToken) with them to get a secret carrying them",
                over.join(", ")
            )));
        }
        // Narrowing may not leave a grant without what it depends on; an
        // update cannot add grants (that would widen the secret).
        let missing = catalog.missing_dependencies(&wanted.grants);
        if !missing.is_empty() {
            return Err(super::token_grants::missing_dependencies(
                missing,
                "keep them too, or remove the grants that need them",
            ));
        }
        if wanted.grants != held {
            update.grants = Some(wanted.grants.clone());
            // No longer a snapshot of everything the owner holds.
            update.all_permissions = Some(false);
            narrowed_grants = Some(wanted.grants.clone());
            changed.push("permissions");
        }
    }
    if narrowed_expiry.is_some() || narrowed_grants.is_some() {
        revocations.push(NewRevocation::narrow_token(
            &row.id,
            &row.owner_id,
            narrowed_expiry,
            narrowed_grants.as_deref(),
            lives_until,
        ));
    }
    if wanted.names("enabled") && wanted.enabled != row.enabled {
        if wanted.enabled {
            refuse_if_expired(row, now)?;
        }
        update.enabled = Some(wanted.enabled);
        let mut event = enabled_event(row, wanted.enabled);
        event.prune_after = lives_until;
        revocations.push(event);
        changed.push("enabled");
    }
    let detail = if changed.is_empty() {
        "no change".to_owned()
    } else {
        format!("changed {}", changed.join(", "))
    };
    Ok(TokenChange {
        update,
        revocations,
        audit: NewAudit::ok(caller.actor(), "token.update", format!("tokens/{}", row.id))
            .with_outcome("ok", detail),
    })
}

/// UpdateToken: the fields named in the mask; narrowing applies in place,
/// and so does a later expiry of a live API token.
pub(crate) async fn update(
    shared: &Shared,
    caller: &Caller,
    body: v1::UpdateTokenRequest,
) -> Result<v1::Token, IssuerError> {
    let now = shared.now();
    let wanted = wanted(
        &shared.catalog,
        &body,
        now,
        shared.config.max_token_lifetime,
    )?;
    let store = shared.store()?;
    let (row, owner) = resolve(store, caller, body.target.as_ref(), "target", Use::Change).await?;
    let extension = match wanted.expire_time {
        Some(end) if end > row.expire_time && !is_session(&row) => {
            Some(extending(shared, store, &row, end, now).await?)
        }
        _ => None,
    };
    let (row, ()) = store
        .change_token(&row.id, now, |row| {
            Ok((
                decide(
                    &shared.catalog,
                    caller,
                    &wanted,
                    extension.as_ref(),
                    row,
                    now,
                )?,
                (),
            ))
        })
        .await
        .map_err(|e| match e {
            IssuerError::AlreadyExists(_) => crate::issue::name_taken(&wanted.name),
            other => token_select::gone_is_not_found(other),
        })?;
    tracing::info!(user = %caller.actor(), token_id = %row.id, "token updated");
    crate::judge::token(shared, store, row, &owner.username, now).await
}
