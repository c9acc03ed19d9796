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

use super::user_changes;
use super::user_rules::{
    find, hash_password, is_self, require_complete, require_grantable, require_user_manager,
    username_taken,
};
use crate::audited;
use crate::auth::{self, Caller};
use crate::convert;
use crate::error::IssuerError;
use crate::state::Shared;
use crate::validate::{self, Violations};
use std::sync::Arc;
use tessera_proto::v1::{self, user_service_server::UserService};
use tessera_store::StoreError;
use tessera_store::audit::NewAudit;
use tessera_store::users::NewUser;
use tonic::{Request, Response, Status};

pub(crate) struct Users(pub Arc<Shared>);

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
