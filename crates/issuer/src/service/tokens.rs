//! `TokenService`: named API tokens and their lifecycle.

use crate::auth::{self, Caller};
use crate::convert;
use crate::error::IssuerError;
use crate::issue::{Mint, mint};
use crate::state::Shared;
use crate::validate::{self, Violations};
use std::collections::HashMap;
use std::sync::Arc;
use tessera_core::{Grant, TokenType, grants};
use tessera_proto::v1::{self, token_service_server::TokenService};
use tessera_store::audit::NewAudit;
use tessera_store::entity::{token, user};
use tessera_store::revocation::{EventKind, NewRevocation};
use tessera_store::tokens::{Status as TokenStatus, TokenFilter};
use tessera_store::{Store, StoreError};
use tonic::{Request, Response, Status};

pub(crate) struct Tokens(pub Arc<Shared>);

/// The grants in `wanted` that `ceiling` does not cover, one action at a time.
fn excess(ceiling: &[Grant], wanted: &[Grant]) -> Vec<String> {
    wanted
        .iter()
        .flat_map(|g| {
            g.actions
                .iter()
                .map(move |a| (g.resource.as_str(), a.as_str()))
        })
        .filter(|(resource, action)| !grants::allows(ceiling, resource, action))
        .map(|(resource, action)| format!("{resource}:{action}"))
        .collect()
}

/// Finds the token a selector names, as the caller may see it. Someone
/// else's token is "not found" to a caller who may not manage it, so its
/// existence is not revealed.
async fn resolve(
    store: &Store,
    caller: &Caller,
    selector: Option<&v1::TokenSelector>,
    field: &str,
) -> Result<(token::Model, user::Model), IssuerError> {
    let Some(sel) = selector.filter(|s| !s.id.is_empty() || !s.name.is_empty()) else {
        return Err(IssuerError::invalid(
            field,
            "name a token by id, or by name (and owner)",
        ));
    };
    let not_found = || IssuerError::NotFound("no such token is visible to you".into());
    let row = if !sel.id.is_empty() {
        store.token_by_id(&sel.id).await?
    } else {
        let owner = if sel.owner.is_empty() || sel.owner == caller.user.username {
            Some(caller.user.clone())
        } else if caller.is_admin() {
            store.user_by_username(&sel.owner).await?
        } else {
            None
        };
        match owner {
            Some(owner) => store.token_by_name(&owner.id, &sel.name).await?,
            None => None,
        }
    };
    let row = row.ok_or_else(not_found)?;
    if row.owner_id == caller.user.id {
        return Ok((row, caller.user.clone()));
    }
    if !caller.is_admin() {
        return Err(not_found());
    }
    let owner = store
        .user_by_id(&row.owner_id)
        .await?
        .ok_or_else(not_found)?;
    Ok((row, owner))
}

impl Tokens {
    async fn create(
        &self,
        request: Request<v1::CreateTokenRequest>,
    ) -> Result<v1::CreateTokenResponse, IssuerError> {
        let shared = &self.0;
        let caller = auth::authenticate(shared, request.metadata()).await?;
        let body = request.into_inner();
        let now = shared.now();
        let config = &shared.config;

        let mut v = Violations::default();
        validate::name(&mut v, "name", &body.name);
        validate::description(&mut v, "description", &body.description);
        let requested = validate::grants(&mut v, "permissions", &body.permissions);
        let max_end = now.saturating_add(validate::secs(config.max_token_lifetime));
        let max_text = tessera_core::duration::format(config.max_token_lifetime);
        let expire_time = match &body.expiration {
            None => Some(now.saturating_add(validate::secs(config.default_token_lifetime))),
            Some(v1::create_token_request::Expiration::ExpiresIn(d)) => {
                validate::duration_secs(&mut v, "expires_in", d).map(|s| now.saturating_add(s))
            }
            Some(v1::create_token_request::Expiration::ExpireTime(t)) => {
                if t.seconds <= now {
                    v.add("expire_time", "is in the past");
                    None
                } else {
                    Some(t.seconds)
                }
            }
        };
        if let Some(end) = expire_time.filter(|&end| end > max_end) {
            let field = match body.expiration {
                Some(v1::create_token_request::Expiration::ExpireTime(_)) => "expire_time",
                _ => "expires_in",
            };
            v.add(
                field,
                format!("is past the maximum token lifetime of {max_text} (ends {end})"),
            );
        }
        v.finish()?;
        let expire_time = expire_time.unwrap_or(now);

        let ceiling = caller.ceiling()?;
        let grants = if body.all_permissions {
            ceiling
        } else {
            let over = excess(&ceiling, &requested);
            if !over.is_empty() {
                return Err(IssuerError::PermissionDenied(format!(
                    "a token cannot hold more than its creator: not yours to grant: {}",
                    over.join(", ")
                )));
            }
            requested
        };

        let store = shared.store()?;
        let audit = NewAudit::ok(
            caller.actor(),
            "token.create",
            format!("token:{}/{}", caller.actor(), body.name),
        );
        let (row, secret) = mint(
            shared,
            store,
            Mint {
                owner: &caller.user,
                name: body.name,
                description: body.description,
                token_type: TokenType::Api,
                session_kind: None,
                enabled: body.enabled.unwrap_or(true),
                all_permissions: body.all_permissions,
                grants,
                now,
                expire_time,
            },
            audit,
        )
        .await?;
        tracing::info!(user = %caller.actor(), token_id = %row.id, "api token created");
        Ok(v1::CreateTokenResponse {
            token: Some(convert::token(row, &caller.user.username, now)?),
            secret,
            added_dependencies: Vec::new(),
        })
    }

    async fn get(&self, request: Request<v1::GetTokenRequest>) -> Result<v1::Token, IssuerError> {
        let shared = &self.0;
        let caller = auth::authenticate(shared, request.metadata()).await?;
        let store = shared.store()?;
        let body = request.into_inner();
        let (row, owner) = resolve(store, &caller, body.token.as_ref(), "token").await?;
        convert::token(row, &owner.username, shared.now())
    }

    async fn list(
        &self,
        request: Request<v1::ListTokensRequest>,
    ) -> Result<v1::ListTokensResponse, IssuerError> {
        let shared = &self.0;
        let caller = auth::authenticate(shared, request.metadata()).await?;
        let store = shared.store()?;
        let body = request.into_inner();
        let mut v = Violations::default();
        let limit = validate::page_size(&mut v, body.page_size);
        let after_id = validate::page_cursor(&mut v, &body.page_token);
        let token_type = match v1::TokenType::try_from(body.r#type) {
            Ok(v1::TokenType::Unspecified) => None,
            Ok(v1::TokenType::Api) => Some(TokenType::Api),
            Ok(v1::TokenType::Session) => Some(TokenType::Session),
            Err(_) => {
                v.add("type", "is not a token type");
                None
            }
        };
        let status = match v1::TokenStatus::try_from(body.status) {
            Ok(v1::TokenStatus::Unspecified) => None,
            Ok(v1::TokenStatus::Active) => Some(TokenStatus::Active),
            Ok(v1::TokenStatus::Disabled) => Some(TokenStatus::Disabled),
            Ok(v1::TokenStatus::Expired) => Some(TokenStatus::Expired),
            Err(_) => {
                v.add("status", "is not a token status");
                None
            }
        };
        v.finish()?;

        let owner_id = match body.owner.as_str() {
            "" => Some(caller.user.id.clone()),
            name if name == caller.user.username => Some(caller.user.id.clone()),
            _ if !caller.is_admin() => {
                return Err(IssuerError::PermissionDenied(
                    "only administrators may list other users' tokens".into(),
                ));
            }
            "-" => None,
            name => match store.user_by_username(name).await? {
                Some(user) => Some(user.id),
                None => return Err(IssuerError::NotFound(format!("no user named {name:?}"))),
            },
        };
        let now = shared.now();
        let mut rows = store
            .list_tokens(TokenFilter {
                owner_id,
                token_type,
                expired: body.expired,
                status,
                now,
                after_id,
                limit: limit + 1,
            })
            .await?;
        let next_page_token = if rows.len() as u64 > limit {
            rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            rows.last()
                .map(|r| validate::page_token(&r.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let mut names: HashMap<String, String> = HashMap::new();
        names.insert(caller.user.id.clone(), caller.user.username.clone());
        let mut tokens = Vec::with_capacity(rows.len());
        for row in rows {
            if !names.contains_key(&row.owner_id) {
                let name = store
                    .user_by_id(&row.owner_id)
                    .await?
                    .map(|u| u.username)
                    .unwrap_or_default();
                names.insert(row.owner_id.clone(), name);
            }
            let owner = names.get(&row.owner_id).cloned().unwrap_or_default();
            tokens.push(convert::token(row, &owner, now)?);
        }
        Ok(v1::ListTokensResponse {
            tokens,
            next_page_token,
        })
    }

    async fn delete(
        &self,
        request: Request<v1::DeleteTokenRequest>,
    ) -> Result<v1::DeleteTokenResponse, IssuerError> {
        let shared = &self.0;
        let caller = auth::authenticate(shared, request.metadata()).await?;
        let store = shared.store()?;
        let body = request.into_inner();
        let (row, owner) = resolve(store, &caller, body.token.as_ref(), "token").await?;
        let now = shared.now();
        let revocation =
            NewRevocation::token(EventKind::RevokeToken, &row.id, &owner.id, row.expire_time);
        let audit = NewAudit::ok(caller.actor(), "token.delete", format!("token:{}", row.id));
        store
            .delete_token(&row.id, now, revocation, audit)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => {
                    IssuerError::NotFound("no such token is visible to you".into())
                }
                other => other.into(),
            })?;
        tracing::info!(user = %caller.actor(), token_id = %row.id, "token deleted");
        Ok(v1::DeleteTokenResponse {})
    }
}

#[tonic::async_trait]
impl TokenService for Tokens {
    async fn create_token(
        &self,
        request: Request<v1::CreateTokenRequest>,
    ) -> Result<Response<v1::CreateTokenResponse>, Status> {
        Ok(Response::new(self.create(request).await?))
    }

    async fn get_token(
        &self,
        request: Request<v1::GetTokenRequest>,
    ) -> Result<Response<v1::Token>, Status> {
        Ok(Response::new(self.get(request).await?))
    }

    async fn list_tokens(
        &self,
        request: Request<v1::ListTokensRequest>,
    ) -> Result<Response<v1::ListTokensResponse>, Status> {
        Ok(Response::new(self.list(request).await?))
    }

    async fn update_token(
        &self,
        _request: Request<v1::UpdateTokenRequest>,
    ) -> Result<Response<v1::Token>, Status> {
        Err(IssuerError::Unimplemented("UpdateToken").into())
    }

    async fn duplicate_token(
        &self,
        _request: Request<v1::DuplicateTokenRequest>,
    ) -> Result<Response<v1::DuplicateTokenResponse>, Status> {
        Err(IssuerError::Unimplemented("DuplicateToken").into())
    }

    async fn enable_token(
        &self,
        _request: Request<v1::EnableTokenRequest>,
    ) -> Result<Response<v1::Token>, Status> {
        Err(IssuerError::Unimplemented("EnableToken").into())
    }

    async fn disable_token(
        &self,
        _request: Request<v1::DisableTokenRequest>,
    ) -> Result<Response<v1::Token>, Status> {
        Err(IssuerError::Unimplemented("DisableToken").into())
    }

    async fn delete_token(
        &self,
        request: Request<v1::DeleteTokenRequest>,
    ) -> Result<Response<v1::DeleteTokenResponse>, Status> {
        Ok(Response::new(self.delete(request).await?))
    }

    async fn rotate_token(
        &self,
        _request: Request<v1::RotateTokenRequest>,
    ) -> Result<Response<v1::RotateTokenResponse>, Status> {
        Err(IssuerError::Unimplemented("RotateToken").into())
    }
}
