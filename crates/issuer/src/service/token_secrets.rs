//! Token changes that issue a new secret: DuplicateToken (a new token with
//! the settings of another) and RotateToken (a new secret for the same
//! token, the way to widen it or re-activate it once expired).

use super::token_grants;
use super::token_select::{self, Use, ceiling_for, is_session, require_enabled_owner, resolve};
use crate::auth::Caller;
use crate::convert;
use crate::error::IssuerError;
use crate::issue::{self, Mint, Secret, mint};
use crate::state::Shared;
use crate::validate::{self, Lifetime, Violations};
use tessera_core::{Grant, TokenType};
use tessera_proto::v1;
use tessera_store::audit::NewAudit;
use tessera_store::entity::token;
use tessera_store::revocation::{EventKind, NewRevocation};
use tessera_store::tokens::{self, NewSecret, TokenChange, TokenUpdate};

/// The length of the current secret's life: what a duplicate or a rotation
/// without an expiry gets, from now. Falls back to the default lifetime for
/// a token narrowed to nothing, and never exceeds the maximum.
fn current_lifetime(shared: &Shared, row: &token::Model) -> i64 {
    let config = &shared.config;
    let life = row.expire_time.saturating_sub(row.issue_time);
    let life = if life > 0 {
        life
    } else {
        validate::secs(config.default_token_lifetime)
    };
    life.min(validate::secs(config.max_token_lifetime))
}

/// DuplicateToken: a new API token of the same owner with the source's
/// description, enabled flag, permissions and lifetime length.
pub(crate) async fn duplicate(
    shared: &Shared,
    caller: &Caller,
    body: v1::DuplicateTokenRequest,
) -> Result<v1::DuplicateTokenResponse, IssuerError> {
    let mut v = Violations::default();
    validate::name(&mut v, "name", &body.name);
    validate::description(&mut v, "description", &body.description);
    v.finish()?;
    let store = shared.store()?;
    let (source, owner) = resolve(store, caller, body.source.as_ref(), "source", Use::Read).await?;
    token_select::require_use(caller, Use::Create, None)?;
    if is_session(&source) {
        return Err(IssuerError::FailedPrecondition(
            "session tokens cannot be duplicated: duplicate an API token, or create one with \
             CreateToken"
                .into(),
        ));
    }
    require_enabled_owner(&owner)?;
    let ceiling = ceiling_for(caller, &owner)?;
    let grants = if source.all_permissions {
        ceiling
    } else {
        let held = tokens::grants_of(&source)?;
        token_grants::within(&ceiling, &held, "its owner or you hold")?;
        // The source's grants were complete when made; a catalog changed
        // since may ask for more, which a copy does not add silently.
        token_grants::with_dependencies(&shared.catalog, held, false)?.0
    };
    let now = shared.now();
    let description = if body.description.is_empty() {
        source.description.clone()
    } else {
        body.description
    };
    let audit = NewAudit::ok(
        caller.actor(),
        "token.duplicate",
        format!("users/{}/tokens/{}", owner.username, body.name),
    )
    .with_outcome("ok", format!("copy of tokens/{}", source.id));
    let (row, secret) = mint(
        shared,
        store,
        Mint {
            owner: &owner,
            name: body.name,
            description,
            token_type: TokenType::Api,
            session_kind: None,
            enabled: source.enabled,
            all_permissions: source.all_permissions,
            grants,
            now,
            expire_time: now.saturating_add(current_lifetime(shared, &source)),
        },
        audit,
    )
    .await?;
    tracing::info!(user = %caller.actor(), token_id = %row.id, source = %source.id, "token duplicated");
    Ok(v1::DuplicateTokenResponse {
        token: Some(crate::judge::token(shared, store, row, &owner.username, now).await?),
        secret,
    })
}

/// A rotation request, checked for form before the row is read.
struct Wanted {
    expire_time: Option<i64>,
    grants: Vec<Grant>,
    replace: bool,
    add_dependencies: bool,
    overlap: i64,
}

fn wanted(shared: &Shared, body: &v1::RotateTokenRequest, now: i64) -> Result<Wanted, IssuerError> {
    let config = &shared.config;
    let mut v = Violations::default();
    let grants = validate::grants(&mut v, &shared.catalog, "permissions", &body.permissions);
    let lifetime = match &body.expiration {
        None => None,
        Some(v1::rotate_token_request::Expiration::ExpiresIn(d)) => Some(Lifetime::ExpiresIn(d)),
        Some(v1::rotate_token_request::Expiration::ExpireTime(t)) => Some(Lifetime::ExpireTime(t)),
    };
    let expire_time =
        lifetime.and_then(|l| validate::expiry(&mut v, now, l, config.max_token_lifetime));
    let max_overlap = validate::secs(config.max_rotation_overlap);
    let overlap = match &body.overlap {
        None => 0,
        Some(d) if d.seconds < 0 || d.nanos < 0 => {
            v.add("overlap", "must not be negative");
            0
        }
        Some(d) if d.seconds > max_overlap => {
            v.add(
                "overlap",
                format!(
                    "must be at most {} (the server's maximum overlap)",
                    tessera_core::duration::format(config.max_rotation_overlap)
                ),
            );
            0
        }
        Some(d) => d.seconds,
    };
    v.finish()?;
    Ok(Wanted {
        expire_time,
        grants,
        replace: body.replace_permissions,
        add_dependencies: body.grant_dependencies,
        overlap,
    })
}

/// When secrets older than the new one stop being accepted. The verifiers
/// track one cut-off per token, so a cut-off still ahead from an earlier
/// rotation is never moved later (that would revive an older secret).
fn previous_secret_end(row: &token::Model, overlap: i64, now: i64) -> i64 {
    if overlap == 0 {
        return now;
    }
    let mut end = now.saturating_add(overlap).min(row.expire_time);
    if let Some(pending) = row.previous_secret_expire_time.filter(|&t| t > now) {
        end = end.min(pending);
    }
    end.max(now)
}

/// RotateToken: a new secret, version one up, for the same token.
pub(crate) async fn rotate(
    shared: &Shared,
    caller: &Caller,
    body: v1::RotateTokenRequest,
) -> Result<v1::RotateTokenResponse, IssuerError> {
    let now = shared.now();
    let wanted = wanted(shared, &body, now)?;
    let store = shared.store()?;
    let (row, owner) = resolve(store, caller, body.token.as_ref(), "token", Use::Rotate).await?;
    if is_session(&row) {
        return Err(IssuerError::FailedPrecondition(
            "session tokens cannot be rotated: log in again, or extend a web session with \
             ExtendSession"
                .into(),
        ));
    }
    require_enabled_owner(&owner)?;
    let ceiling = ceiling_for(caller, &owner)?;
    let on_self = token_select::is_self(caller, &row);
    // An "all permissions" token renewed takes a fresh snapshot of its
    // owner's grants, except when it renews itself: then it keeps what it
    // holds (its ceiling as a caller), so it can renew but never widen
    // itself. Either way the caller must cover what the token will hold:
    // a rotation never narrows a token as a side effect of who asked.
    let snapshot = if on_self {
        ceiling.clone()
    } else {
        crate::auth::user_grants(&owner)?
    };
    let by_itself = if on_self { "; by the token itself" } else { "" };
    let signer = shared.signer(store, now).await?;
    // The version this request saw: a rotation that committed since wins,
    // and this one is refused (compare-and-swap) rather than stacked on it.
    let seen_version = tokens::version_of(&row);
    let (row, (secret, previous_end, added)) = store
        .change_token(&row.id, now, |row| {
            if tokens::version_of(row) != seen_version {
                return Err(IssuerError::Aborted(
                    "the token was rotated by another request at the same time; get it again \
                     and retry if you still need a new secret"
                        .into(),
                ));
            }
            let held = tokens::grants_of(row)?;
            let (all_permissions, mut grants) = if wanted.replace {
                (false, wanted.grants.clone())
            } else if !wanted.grants.is_empty() {
                (false, [held, wanted.grants.clone()].concat())
            } else if row.all_permissions {
                (true, snapshot.clone())
            } else {
                (false, held)
            };
            grants.sort();
            grants.dedup();
            token_grants::within(
                &ceiling,
                &grants,
                "its owner or you hold (a rotation keeps the token's grants unless the \
                 request names new ones; rotate it as a caller that holds them)",
            )?;
            // A fresh "all permissions" snapshot is taken as the owner's
            // grants are; named grants must bring their dependencies.
            let (grants, added) = if all_permissions {
                (grants, Vec::new())
            } else {
                token_grants::with_dependencies(&shared.catalog, grants, wanted.add_dependencies)?
            };
            token_grants::within(
                &ceiling,
                &added,
                "its owner or you hold (the added dependencies)",
            )?;
            let expire_time = wanted
                .expire_time
                .unwrap_or_else(|| now.saturating_add(current_lifetime(shared, row)));
            let version = seen_version.saturating_add(1);
            let previous_end = previous_secret_end(row, wanted.overlap, now);
            let secret = issue::sign(
                shared,
                &signer,
                Secret {
                    owner: &owner,
                    token_id: &row.id,
                    version,
                    token_type: TokenType::Api,
                    grants: &grants,
                    now,
                    expire_time,
                },
            )?;
            let mut revocations = vec![NewRevocation::rotate_token(
                &row.id,
                &row.owner_id,
                version,
                previous_end,
                tokens::last_valid_time(row),
            )];
            if !row.enabled && expire_time > tokens::last_valid_time(row) {
                // The disabled state must outlive the new secret at the
                // verifiers: the earlier event is pruned at the old expiry.
                revocations.push(NewRevocation::token(
                    EventKind::DisableToken,
                    &row.id,
                    &row.owner_id,
                    expire_time,
                ));
            }
            let change = TokenChange {
                update: TokenUpdate {
                    all_permissions: Some(all_permissions),
                    grants: Some(grants),
                    expire_time: Some(expire_time),
                    secret: Some(NewSecret {
                        version,
                        key_id: signer.kid.clone(),
                        issue_time: now,
                        generation: issue::generation(&owner),
                        previous_secret_expire_time: Some(previous_end),
                    }),
                    ..TokenUpdate::default()
                },
                revocations,
                audit: NewAudit::ok(caller.actor(), "token.rotate", format!("tokens/{}", row.id))
                    .with_outcome(
                        "ok",
                        format!(
                            "secret version {version}; previous accepted until {}{by_itself}",
                            tessera_core::duration::instant(previous_end)
                        ),
                    ),
            };
            Ok((change, (secret, previous_end, added)))
        })
        .await
        .map_err(token_select::gone_is_not_found)?;
    tracing::info!(user = %caller.actor(), token_id = %row.id, version = row.version, "token rotated");
    Ok(v1::RotateTokenResponse {
        token: Some(crate::judge::token(shared, store, row, &owner.username, now).await?),
        secret,
        previous_secret_expire_time: convert::timestamp(previous_end),
        added_dependencies: added.into_iter().map(convert::grant).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(expire_time: i64, previous: Option<i64>) -> token::Model {
        token::Model {
            id: "t".into(),
            owner_id: "u".into(),
            name: "n".into(),
            description: String::new(),
            token_type: "api".into(),
            session_kind: None,
            enabled: true,
            all_permissions: false,
            grants: "[]".into(),
            key_id: "k".into(),
            create_time: 0,
            update_time: 0,
            expire_time,
            version: 1,
            issue_time: 0,
            previous_secret_expire_time: previous,
            generation: 1,
            last_used_time: None,
            use_count: 0,
            last_caller: None,
        }
    }

    #[test]
    fn an_overlap_ends_by_the_old_expiry_and_any_running_overlap() {
        assert_eq!(previous_secret_end(&row(5_000, None), 0, 1_000), 1_000);
        assert_eq!(previous_secret_end(&row(5_000, None), 600, 1_000), 1_600);
        assert_eq!(previous_secret_end(&row(1_200, None), 600, 1_000), 1_200);
        assert_eq!(
            previous_secret_end(&row(5_000, Some(1_300)), 600, 1_000),
            1_300
        );
        // An overlap that has already ended does not hold a new one back.
        assert_eq!(
            previous_secret_end(&row(5_000, Some(900)), 600, 1_000),
            1_600
        );
        // An expired token's old secret is done at once.
        assert_eq!(previous_secret_end(&row(500, None), 600, 1_000), 1_000);
    }
}
