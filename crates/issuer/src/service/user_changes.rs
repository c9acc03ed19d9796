//! User changes that reach the user's tokens: disabling, deleting and new
//! passwords revoke every token issued before the change; taking grants
//! away narrows every token issued before it to what is left, for good.
//! Each raises the user's generation, which orders it exactly against every
//! issue (secrets carry the generation they were issued at), and appends
//! its revocation event in the same transaction, for the verifiers. Giving
//! grants back changes no existing token: only tokens issued from then on
//! hold them.
//!
//! Enabling a user again does not revive the tokens revoked when the user
//! was disabled: the user logs in again, or rotates the API tokens.

use super::token_select::excess;
use super::user_rules::{
    find, hash_password, is_self, require_complete, require_grantable, require_may_change,
    require_user_manager, username_taken,
};
use crate::auth::{self, Caller};
use crate::convert;
use crate::error::IssuerError;
use crate::state::Shared;
use crate::validate::{self, Violations};
use tessera_core::{Catalog, Grant};
use tessera_proto::v1;
use tessera_store::audit::NewAudit;
use tessera_store::entity::user;
use tessera_store::revocation::NewRevocation;
use tessera_store::users::{UserChange, UserContext, UserDeletion, UserUpdate};

/// The fields `UpdateUser` may change.
const UPDATABLE: &[&str] = &["username", "admin", "enabled", "grants"];
/// User fields an update may not name.
const READ_ONLY: &[&str] = &["id", "create_time", "update_time"];

/// How long an event about every token of a user must be kept: until every
/// token issued before it has expired.
fn user_event_lifetime(shared: &Shared) -> i64 {
    validate::secs(shared.config.longest_token_lifetime())
}

/// The generation a user-wide change of `row` raises the user to: it binds
/// every secret issued before the change, and none issued after.
fn next_generation(row: &user::Model) -> u64 {
    tessera_store::users::generation_of(row).saturating_add(1)
}

/// The "every secret of this user issued before now" event.
fn revoke_all(shared: &Shared, row: &user::Model, generation: u64, now: i64) -> NewRevocation {
    NewRevocation::revoke_user(
        &row.id,
        generation,
        now.saturating_add(user_event_lifetime(shared)),
    )
}

/// Refuses a change that leaves no enabled administrator.
fn keep_an_admin(
    row: &user::Model,
    context: &UserContext,
    stays_enabled_admin: bool,
) -> Result<(), IssuerError> {
    if row.admin && row.enabled && !stays_enabled_admin && context.enabled_admins <= 1 {
        return Err(IssuerError::FailedPrecondition(format!(
            "{:?} is the last enabled administrator: make another user an administrator first",
            row.username
        )));
    }
    Ok(())
}

/// An update, checked for form before the row is read.
struct Wanted {
    paths: Vec<String>,
    user: v1::User,
    grants: Vec<Grant>,
}

impl Wanted {
    fn names(&self, path: &str) -> bool {
        self.paths.iter().any(|p| p == path)
    }
}

fn wanted(catalog: &Catalog, body: v1::UpdateUserRequest) -> Result<Wanted, IssuerError> {
    let user = body.user.unwrap_or_default();
    let mut v = Violations::default();
    if user.id.is_empty() && user.username.is_empty() {
        v.add("user", "select the user by id, or by username");
    }
    let mut implied = Vec::new();
    if !user.id.is_empty() && !user.username.is_empty() {
        implied.push("username");
    }
    if user.admin {
        implied.push("admin");
    }
    if user.enabled {
        implied.push("enabled");
    }
    if !user.grants.is_empty() {
        implied.push("grants");
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
            "names nothing to update: list the fields to change (to disable a user or take \
             away the admin flag, name `enabled` or `admin` and leave it false)",
        );
    }
    if paths.iter().any(|p| p == "username") {
        if user.id.is_empty() {
            v.add(
                "update_mask",
                "`username` selects the user when `id` is empty: select the user by id to \
                 rename it",
            );
        } else {
            validate::username(&mut v, "user.username", &user.username);
        }
    }
    let mut grants = if paths.iter().any(|p| p == "grants") {
        validate::grants(&mut v, catalog, "user.grants", &user.grants)
    } else {
        Vec::new()
    };
    grants.sort();
    grants.dedup();
    v.finish()?;
    Ok(Wanted {
        paths,
        user,
        grants,
    })
}

/// Decides what an update writes, on the row as it is now.
fn decide(
    shared: &Shared,
    caller: &Caller,
    wanted: &Wanted,
    row: &user::Model,
    context: &UserContext,
    now: i64,
) -> Result<UserChange, IssuerError> {
    let mut update = UserUpdate::default();
    let mut changed = Vec::new();
    let mut revocations = Vec::new();
    let generation = next_generation(row);
    if wanted.names("username") && wanted.user.username != row.username {
        update.username = Some(wanted.user.username.clone());
        changed.push("username");
    }
    let admin = if wanted.names("admin") {
        wanted.user.admin
    } else {
        row.admin
    };
    let enabled = if wanted.names("enabled") {
        wanted.user.enabled
    } else {
        row.enabled
    };
    keep_an_admin(row, context, admin && enabled)?;
    if admin != row.admin {
        update.admin = Some(admin);
        changed.push("admin");
    }
    if enabled != row.enabled {
        update.enabled = Some(enabled);
        changed.push("enabled");
        if !enabled {
            update.generation = Some(generation);
            revocations.push(revoke_all(shared, row, generation, now));
        }
    }
    let mut stored = tessera_store::users::grants_of(row)?;
    stored.sort();
    let grants = if wanted.names("grants") {
        wanted.grants.clone()
    } else {
        stored.clone()
    };
    if grants != stored {
        update.grants = Some(grants.clone());
        changed.push("grants");
    }
    // What the user's tokens may hold, before and after.
    let before = auth::user_grants(row)?;
    let after = if admin {
        vec![Grant::everything()]
    } else {
        grants
    };
    let mut token_ceiling = None;
    if !excess(&after, &before).is_empty() {
        // Fewer grants: narrow the rows here, and every secret issued so
        // far at the verifiers. More grants need no event: existing tokens
        // keep what they hold, and new ones are made from the new grants.
        update.generation = Some(generation);
        revocations.push(NewRevocation::user_ceiling(
            &row.id,
            &after,
            generation,
            now.saturating_add(user_event_lifetime(shared)),
        ));
        token_ceiling = Some(after);
    }
    let detail = if changed.is_empty() {
        "no change".to_owned()
    } else {
        format!("changed {}", changed.join(", "))
    };
    Ok(UserChange {
        update,
        token_ceiling,
        revocations,
        audit: NewAudit::ok(caller.actor(), "user.update", format!("users/{}", row.id))
            .with_outcome("ok", detail),
    })
}

/// UpdateUser: the fields named in the mask.
pub(crate) async fn update(
    shared: &Shared,
    caller: &Caller,
    body: v1::UpdateUserRequest,
) -> Result<v1::User, IssuerError> {
    require_user_manager(caller)?;
    let wanted = wanted(&shared.catalog, body)?;
    require_grantable(
        caller,
        wanted.names("admin") && wanted.user.admin,
        &wanted.grants,
    )?;
    require_complete(&shared.catalog, &wanted.grants)?;
    let store = shared.store()?;
    let selector = if wanted.user.id.is_empty() {
        &wanted.user.username
    } else {
        &wanted.user.id
    };
    let target = find(store, selector).await?;
    require_may_change(caller, &target)?;
    let now = shared.now();
    let (row, ()) = store
        .change_user(&target.id, now, |row, context| {
            Ok((decide(shared, caller, &wanted, row, context, now)?, ()))
        })
        .await
        .map_err(|e| match e {
            IssuerError::AlreadyExists(_) => username_taken(&wanted.user.username),
            IssuerError::NotFound(_) => IssuerError::NotFound(format!("no user {selector:?}")),
            other => other,
        })?;
    tracing::info!(user = %caller.actor(), updated = %row.username, "user updated");
    convert::user(row)
}

/// DeleteUser: the user and all of the user's tokens, which are revoked.
pub(crate) async fn delete(
    shared: &Shared,
    caller: &Caller,
    body: v1::DeleteUserRequest,
) -> Result<v1::DeleteUserResponse, IssuerError> {
    require_user_manager(caller)?;
    if body.user.is_empty() {
        return Err(IssuerError::invalid(
            "user",
            "name the user by id or username",
        ));
    }
    let store = shared.store()?;
    let target = find(store, &body.user).await?;
    require_may_change(caller, &target)?;
    let now = shared.now();
    let row = store
        .delete_user(&target.id, now, |row, context| {
            keep_an_admin(row, context, false)?;
            Ok(UserDeletion {
                revocations: vec![revoke_all(shared, row, next_generation(row), now)],
                audit: NewAudit::ok(caller.actor(), "user.delete", format!("users/{}", row.id)),
            })
        })
        .await
        .map_err(|e| match e {
            IssuerError::NotFound(_) => IssuerError::NotFound(format!("no user {:?}", body.user)),
            other => other,
        })?;
    tracing::info!(user = %caller.actor(), deleted = %row.username, "user deleted");
    Ok(v1::DeleteUserResponse {})
}

/// SetPassword: callers holding `users: manage` for anyone (an
/// administrator only by a caller holding `*`); a user for themself, with
/// the current password. Every token of the user issued before is revoked.
pub(crate) async fn set_password(
    shared: &Shared,
    caller: &Caller,
    body: v1::SetPasswordRequest,
    source: Option<std::net::IpAddr>,
) -> Result<v1::SetPasswordResponse, IssuerError> {
    let own = is_self(caller, &body.user);
    if !own {
        require_user_manager(caller)?;
    }
    let mut v = Violations::default();
    validate::new_password(&mut v, "new_password", &body.new_password);
    v.finish()?;
    let store = shared.store()?;
    if own {
        if body.current_password.is_empty() {
            return Err(IssuerError::PermissionDenied(
                "to change your own password, give the current one in current_password".into(),
            ));
        }
        auth::check_password(
            shared,
            store,
            &caller.user.username,
            &body.current_password,
            source,
        )
        .await
        .map_err(|e| match e {
            IssuerError::Unauthenticated(_) => {
                IssuerError::PermissionDenied("the current password is wrong".into())
            }
            other => other,
        })?;
    }
    let target = if own {
        caller.user.clone()
    } else {
        let target = find(store, &body.user).await?;
        require_may_change(caller, &target)?;
        target
    };
    let hash = hash_password(shared, &body.new_password).await?;
    let now = shared.now();
    let (row, ()) = store
        .change_user(&target.id, now, |row, _| {
            let generation = next_generation(row);
            Ok::<_, IssuerError>((
                UserChange {
                    update: UserUpdate {
                        password_hash: Some(hash),
                        generation: Some(generation),
                        ..UserUpdate::default()
                    },
                    token_ceiling: None,
                    revocations: vec![revoke_all(shared, row, generation, now)],
                    audit: NewAudit::ok(
                        caller.actor(),
                        "user.set_password",
                        format!("users/{}", row.id),
                    ),
                },
                (),
            ))
        })
        .await?;
    tracing::info!(user = %caller.actor(), target = %row.username, "password set");
    Ok(v1::SetPasswordResponse {})
}
