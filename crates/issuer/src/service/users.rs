//! `UserService`: who may log in, and the grants that cap their tokens.
//! Creating, reading and listing live here; changes that revoke or narrow
//! tokens live in [`super::user_changes`].
//!
//! Managing users needs the grant `users: manage` (administrators hold `*`,
//! so they have it). A caller using a token needs it in that token, so a
//! narrow API token of an administrator cannot manage users. A user manager
//! who is not an administrator cannot make itself more: making or changing an
//! administrator needs every grant (`*`), and the grants it gives a user must
//! lie within its own.

use super::token_select::excess;
use super::user_changes;
use crate::audited;
use crate::auth::{self, Caller};
use crate::convert;
use crate::error::IssuerError;
use crate::state::Shared;
use crate::validate::{self, Violations};
use std::sync::Arc;
use tessera_core::{Catalog, Grant, password};
use tessera_proto::v1::{self, user_service_server::UserService};
use tessera_store::audit::NewAudit;
use tessera_store::entity::user;
use tessera_store::users::NewUser;
use tessera_store::{Store, StoreError};
use tonic::{Request, Response, Status};

pub(crate) struct Users(pub Arc<Shared>);

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

impl Users {
    async fn create(
        &self,
        caller: &Caller,
        body: v1::CreateUserRequest,
    ) -> Result<v1::User, IssuerError> {
        require_user_manager(caller)?;
        let shared = &self.0;
        let new = body.user.unwrap_or_default();
        let mut v = Violations::default();
        validate::username(&mut v, "user.username", &new.username);
        validate::new_password(&mut v, "password", &body.password);
        let mut grants = validate::grants(&mut v, &shared.catalog, "user.grants", &new.grants);
        grants.sort();
        grants.dedup();
        v.finish()?;
        require_grantable(caller, new.admin, &grants)?;
        require_complete(&shared.catalog, &grants)?;
        let hash = hash_password(shared, &body.password).await?;
        let store = shared.store()?;
        let id = uuid::Uuid::now_v7().to_string();
        let audit = NewAudit::ok(caller.actor(), "user.create", format!("users/{id}"));
        let row = store
            .create_user(
                shared.now(),
                NewUser {
                    id,
                    username: new.username.clone(),
                    password_hash: hash,
                    admin: new.admin,
                    // A proto3 bool cannot say "unset": new users start
                    // enabled; disable one with UpdateUser.
                    enabled: true,
                    grants,
                },
                Some(audit),
            )
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists => username_taken(&new.username),
                other => other.into(),
            })?;
        tracing::info!(user = %caller.actor(), created = %row.username, "user created");
        convert::user(row)
    }

    async fn get(
        &self,
        caller: &Caller,
        body: v1::GetUserRequest,
    ) -> Result<v1::User, IssuerError> {
        let store = self.0.store()?;
        if is_self(caller, &body.user) {
            // Read again: the caller's row may have changed since it was checked.
            return convert::user(find(store, &caller.user.id).await?);
        }
        caller.require("users", "manage", "read other users")?;
        convert::user(find(store, &body.user).await?)
    }

    async fn list(
        &self,
        caller: &Caller,
        body: v1::ListUsersRequest,
    ) -> Result<v1::ListUsersResponse, IssuerError> {
        require_user_manager(caller)?;
        let store = self.0.store()?;
        let mut v = Violations::default();
        let limit = validate::page_size(&mut v, body.page_size);
        let after = validate::page_cursor(&mut v, &body.page_token);
        v.finish()?;
        let mut rows = store.list_users(after.as_deref(), limit + 1).await?;
        let next_page_token = if rows.len() as u64 > limit {
            rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            rows.last()
                .map(|r| validate::page_token(&r.username))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(v1::ListUsersResponse {
            users: rows
                .into_iter()
                .map(convert::user)
                .collect::<Result<_, _>>()?,
            next_page_token,
        })
    }
}

/// The audit target a user selector names.
fn target(text: &str) -> String {
    format!("users/{text}")
}

#[tonic::async_trait]
impl UserService for Users {
    async fn create_user(
        &self,
        request: Request<v1::CreateUserRequest>,
    ) -> Result<Response<v1::User>, Status> {
        let shared = &self.0;
        let caller = auth::authenticate(shared, &request).await?;
        let body = request.into_inner();
        let target = target(body.user.as_ref().map_or("", |u| u.username.as_str()));
        let result = self.create(&caller, body).await;
        Ok(Response::new(
            audited::outcome(shared, &caller, "user.create", &target, result).await?,
        ))
    }

    async fn get_user(
        &self,
        request: Request<v1::GetUserRequest>,
    ) -> Result<Response<v1::User>, Status> {
        let caller = auth::authenticate(&self.0, &request).await?;
        Ok(Response::new(
            self.get(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_users(
        &self,
        request: Request<v1::ListUsersRequest>,
    ) -> Result<Response<v1::ListUsersResponse>, Status> {
        let caller = auth::authenticate(&self.0, &request).await?;
        Ok(Response::new(
            self.list(&caller, request.into_inner()).await?,
        ))
    }

    async fn update_user(
        &self,
        request: Request<v1::UpdateUserRequest>,
    ) -> Result<Response<v1::User>, Status> {
        let shared = &self.0;
        let caller = auth::authenticate(shared, &request).await?;
        let body = request.into_inner();
        let target = target(body.user.as_ref().map_or("", |u| {
            if u.id.is_empty() {
                u.username.as_str()
            } else {
                u.id.as_str()
            }
        }));
        let result = user_changes::update(shared, &caller, body).await;
        Ok(Response::new(
            audited::outcome(shared, &caller, "user.update", &target, result).await?,
        ))
    }

    async fn delete_user(
        &self,
        request: Request<v1::DeleteUserRequest>,
    ) -> Result<Response<v1::DeleteUserResponse>, Status> {
        let shared = &self.0;
        let caller = auth::authenticate(shared, &request).await?;
        let body = request.into_inner();
        let target = target(&body.user);
        let result = user_changes::delete(shared, &caller, body).await;
        Ok(Response::new(
            audited::outcome(shared, &caller, "user.delete", &target, result).await?,
        ))
    }

    async fn set_password(
        &self,
        request: Request<v1::SetPasswordRequest>,
    ) -> Result<Response<v1::SetPasswordResponse>, Status> {
        let shared = &self.0;
        let caller = auth::authenticate(shared, &request).await?;
        let source = auth::source(shared, &request);
        let body = request.into_inner();
        let target = if body.user.is_empty() {
            target(caller.actor())
        } else {
            target(&body.user)
        };
        let result = user_changes::set_password(shared, &caller, body, source).await;
        Ok(Response::new(
            audited::outcome(shared, &caller, "user.set_password", &target, result).await?,
        ))
    }
}
