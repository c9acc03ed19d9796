//! The rules every `UserService` call shares: who may manage which users,
//! which grants may be given, finding a user by name or id, hashing a new
//! password. Both [`super::users`] (create, read, list) and
//! [`super::user_changes`] (changes that revoke or narrow) use them.

use super::token_select::excess;
use crate::auth::Caller;
use crate::error::IssuerError;
use crate::state::Shared;
use tessera_core::{Catalog, Grant, password};
use tessera_store::Store;
use tessera_store::entity::user;

/// Refuses callers who may not manage users.
pub(crate) fn require_user_manager(caller: &Caller) -> Result<(), IssuerError> {
    caller.require("users", "manage", "manage users")
}

/// Refuses a user manager handing on more than it holds: giving the admin
/// flag (which is `*`), or grants beyond its own.
pub(crate) fn require_grantable(
    caller: &Caller,
    admin: bool,
    grants: &[Grant],
) -> Result<(), IssuerError> {
    if admin && !caller.holds_everything()? {
        return Err(IssuerError::PermissionDenied(
            "only a caller holding every grant (`*`), such as an administrator's password or \
             session, may make a user an administrator"
                .into(),
        ));
    }
    let over = excess(&caller.ceiling()?, grants);
    if !over.is_empty() {
        return Err(IssuerError::PermissionDenied(format!(
            "you cannot give a user grants you do not hold yourself: {}",
            over.join(", ")
        )));
    }
    Ok(())
}

/// Refuses user grants that miss what they depend on in the catalog: a
/// user's tokens could never carry them usefully.
pub(crate) fn require_complete(catalog: &Catalog, grants: &[Grant]) -> Result<(), IssuerError> {
    let missing = catalog.missing_dependencies(grants);
    if missing.is_empty() {
        return Ok(());
    }
    Err(super::token_grants::missing_dependencies(
        missing,
        "give the user these grants too",
    ))
}

/// Refuses a change to an administrator by a caller who does not hold
/// every grant: taking over an administrator's account would be taking `*`.
pub(crate) fn require_may_change(caller: &Caller, target: &user::Model) -> Result<(), IssuerError> {
    if target.admin && target.id != caller.user.id && !caller.holds_everything()? {
        return Err(IssuerError::PermissionDenied(format!(
            "{:?} is an administrator: only a caller holding every grant (`*`) may change it",
            target.username
        )));
    }
    Ok(())
}

/// The user `text` names: an id (a UUID) or a username.
pub(crate) async fn find(store: &Store, text: &str) -> Result<user::Model, IssuerError> {
    let found = if uuid::Uuid::parse_str(text).is_ok() {
        store.user_by_id(text).await?
    } else {
        store.user_by_username(text).await?
    };
    found.ok_or_else(|| IssuerError::NotFound(format!("no user {text:?}")))
}

/// Whether `text` names the caller (by id or username), or is empty.
pub(crate) fn is_self(caller: &Caller, text: &str) -> bool {
    text.is_empty() || text == caller.user.id || text == caller.user.username
}

/// The refusal of a username another user has.
pub(crate) fn username_taken(username: &str) -> IssuerError {
    IssuerError::AlreadyExists(format!(
        "the username {username:?} is taken; choose another"
    ))
}

/// Hashes a password off the async workers (argon2 is slow on purpose).
pub(crate) async fn hash_password(shared: &Shared, text: &str) -> Result<String, IssuerError> {
    let text = text.to_owned();
    Ok(shared
        .hashing
        .run(move |memory| password::hash_with(&text, memory))
        .await??)
}
