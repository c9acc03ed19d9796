//! `TokenService`: named API tokens — create, read, list, delete — and the
//! dispatch of the lifecycle RPCs to [`super::token_state`] (changes in
//! place) and [`super::token_secrets`] (changes that issue a new secret).

use super::token_grants;
use super::token_secrets;
use super::token_select::{self, Use, resolve};
use super::token_state;
use crate::audited;
use crate::auth::{self, Caller};
use crate::convert;
use crate::error::IssuerError;
use crate::issue::{Mint, mint};
use crate::state::Shared;
use crate::validate::{self, Lifetime, Violations};
use std::collections::HashMap;
use std::sync::Arc;
use tessera_core::TokenType;
use tessera_proto::v1::{self, token_service_server::TokenService};
use tessera_store::audit::NewAudit;
use tessera_store::revocation::{EventKind, NewRevocation};
use tessera_store::tokens::{self, Status as TokenStatus, TokenFilter};
use tonic::{Request, Response, Status};

pub(crate) struct Tokens(pub Arc<Shared>);

impl Tokens {
    async fn create(
        &self,
        caller: &Caller,
        body: v1::CreateTokenRequest,
    ) -> Result<v1::CreateTokenResponse, IssuerError> {
        let shared = &self.0;
        let now = shared.now();
        let config = &shared.config;

        let mut v = Violations::default();
        validate::name(&mut v, "name", &body.name);
        validate::description(&mut v, "description", &body.description);
        let requested = validate::grants(&mut v, &shared.catalog, "permissions", &body.permissions);
        let lifetime = match &body.expiration {
            None => Lifetime::Default(validate::secs(config.default_token_lifetime)),
            Some(v1::create_token_request::Expiration::ExpiresIn(d)) => Lifetime::ExpiresIn(d),
            Some(v1::create_token_request::Expiration::ExpireTime(t)) => Lifetime::ExpireTime(t),
        };
        let expire_time = validate::expiry(&mut v, now, lifetime, config.max_token_lifetime);
        v.finish()?;
        let expire_time = expire_time.unwrap_or(now);

        token_select::require_use(caller, Use::Create, None)?;
        let ceiling = caller.ceiling()?;
        // "All permissions" is a snapshot of what the creator holds, taken
        // as it is: dependencies are checked on the grants a request names.
        let (grants, added) = if body.all_permissions {
            (ceiling, Vec::new())
        } else {
            token_grants::within(&ceiling, &requested, "its creator")?;
            let (grants, added) = token_grants::with_dependencies(
                &shared.catalog,
                requested,
                body.grant_dependencies,
            )?;
            token_grants::within(&ceiling, &added, "its creator (the added dependencies)")?;
            (grants, added)
        };

        let store = shared.store()?;
        let audit = NewAudit::ok(
            caller.actor(),
            "token.create",
            format!("users/{}/tokens/{}", caller.actor(), body.name),
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
            token: Some(crate::judge::token(shared, store, row, &caller.user.username, now).await?),
            secret,
            added_dependencies: added.into_iter().map(convert::grant).collect(),
        })
    }

    async fn get(
        &self,
        caller: &Caller,
        body: v1::GetTokenRequest,
    ) -> Result<v1::Token, IssuerError> {
        let shared = &self.0;
        let store = shared.store()?;
        let (row, owner) = resolve(store, caller, body.token.as_ref(), "token", Use::Read).await?;
        let now = shared.now();
        // A job reading its own record is audited, like its rotations: an
        // unattended credential's every move on itself is on record.
        if token_select::is_self(caller, &row) {
            let event = NewAudit::ok(caller.actor(), "token.get", format!("tokens/{}", row.id))
                .with_outcome("ok", "read by the token itself");
            store.record_audit(now, event).await?;
        }
        crate::judge::token(shared, store, row, &owner.username, now).await
    }

    async fn list(
        &self,
        caller: &Caller,
        body: v1::ListTokensRequest,
    ) -> Result<v1::ListTokensResponse, IssuerError> {
        let shared = &self.0;
        token_select::require_use(caller, Use::Read, None)?;
        let store = shared.store()?;
        let mut v = Violations::default();
        let limit = validate::page_size(&mut v, body.page_size);
        // A page token carries the filters it was issued for, so a token
        // reused with other filters is refused instead of skipping rows.
        let unused_since =
            validate::filter_time(&mut v, "unused_since", body.unused_since.as_ref());
        let expire_before =
            validate::filter_time(&mut v, "expire_before", body.expire_before.as_ref());
        let filters = format!(
            "{}|{}|{}|{:?}|{unused_since:?}|{expire_before:?}",
            body.owner, body.r#type, body.status, body.expired
        );
        let after_id = match validate::page_cursor(&mut v, &body.page_token) {
            Some(cursor) => match cursor.split_once('\n') {
                Some((issued_for, last)) if issued_for == filters => Some(last.to_owned()),
                _ => {
                    v.add(
                        "page_token",
                        "was issued for other filters: repeat the same filters, or start again without a page token",
                    );
                    None
                }
            },
            None => None,
        };
        let token_type = match v1::TokenType::try_from(body.r#type) {
            Ok(v1::TokenType::Unspecified) => None,
            Ok(v1::TokenType::Api) => Some(TokenType::Api),
            Ok(v1::TokenType::Session) => Some(TokenType::Session),
            Err(_) => {
                v.add("type", "is not a token type");
                None
            }
        };
        // The database narrows by what rows can be in the status; the
        // revocation rule decides which are.
        let wanted_status = match v1::TokenStatus::try_from(body.status) {
            Ok(v1::TokenStatus::Unspecified) => None,
            Ok(status) => Some(status),
            Err(_) => {
                v.add("status", "is not a token status");
                None
            }
        };
        let status = wanted_status.map(|s| match s {
            v1::TokenStatus::Active => TokenStatus::Active,
            v1::TokenStatus::Disabled => TokenStatus::Disabled,
            v1::TokenStatus::Expired => TokenStatus::Expired,
            _ => TokenStatus::Unexpired,
        });
        v.finish()?;

        let owner_id = match body.owner.as_str() {
            "" => Some(caller.user.id.clone()),
            name if name == caller.user.username => Some(caller.user.id.clone()),
            _ if !token_select::manages_tokens(caller)? => {
                caller.require("tokens", "manage", "list other users' tokens")?;
                None
            }
            "-" => None,
            name => match store.user_by_username(name).await? {
                Some(user) => Some(user.id),
                None => return Err(IssuerError::NotFound(format!("no user named {name:?}"))),
            },
        };
        let now = shared.now();
        let want = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut names: HashMap<String, String> = HashMap::new();
        names.insert(caller.user.id.clone(), caller.user.username.clone());
        let mut tokens = Vec::with_capacity(want);
        let mut cursor = after_id;
        let mut more = false;
        // Rows the rule puts in another status are skipped, so a page may
        // take several reads; each read is one page of candidates.
        loop {
            let rows = store
                .list_tokens(TokenFilter {
                    owner_id: owner_id.clone(),
                    token_type,
                    expired: body.expired,
                    status,
                    now,
                    unused_since,
                    expire_before,
                    after_id: cursor.clone(),
                    limit: limit + 1,
                })
                .await?;
            let exhausted = rows.len() as u64 <= limit;
            for row in &rows {
                if !names.contains_key(&row.owner_id) {
                    let name = store
                        .user_by_id(&row.owner_id)
                        .await?
                        .map(|u| u.username)
                        .unwrap_or_default();
                    names.insert(row.owner_id.clone(), name);
                }
            }
            for (token, judged) in crate::judge::tokens(shared, store, rows, &names, now).await? {
                if tokens.len() == want {
                    more = true;
                    break;
                }
                cursor = Some(token.id.clone());
                if wanted_status.is_none_or(|s| s == judged.status) {
                    tokens.push(token);
                }
            }
            if more || exhausted {
                break;
            }
        }
        let next_page_token = match (&cursor, more) {
            (Some(last), true) => validate::page_token(&format!("{filters}\n{last}")),
            _ => String::new(),
        };
        Ok(v1::ListTokensResponse {
            tokens,
            next_page_token,
        })
    }

    async fn delete(
        &self,
        caller: &Caller,
        body: v1::DeleteTokenRequest,
    ) -> Result<v1::DeleteTokenResponse, IssuerError> {
        let shared = &self.0;
        let store = shared.store()?;
        let (row, owner) =
            resolve(store, caller, body.token.as_ref(), "token", Use::Change).await?;
        let now = shared.now();
        let revocation = NewRevocation::token(
            EventKind::RevokeToken,
            &row.id,
            &owner.id,
            tokens::last_valid_time(&row),
        );
        let audit = NewAudit::ok(caller.actor(), "token.delete", format!("tokens/{}", row.id));
        store
            .delete_token(&row.id, now, revocation, audit)
            .await
            .map_err(|e| token_select::gone_is_not_found(e.into()))?;
        tracing::info!(user = %caller.actor(), token_id = %row.id, "token deleted");
        Ok(v1::DeleteTokenResponse {})
    }
}

/// Authenticates a call, then runs it, recording a refusal in the audit log
/// under `action` and the target `target` names.
macro_rules! audited_call {
    ($self:ident, $request:ident, $action:literal, |$caller:ident, $body:ident| $target:expr, $call:expr) => {{
        let shared = &$self.0;
        let $caller = auth::authenticate(shared, &$request).await?;
        let $body = $request.into_inner();
        let target: String = $target;
        let result = $call.await;
        Ok(Response::new(
            audited::outcome(shared, &$caller, $action, &target, result).await?,
        ))
    }};
}

#[tonic::async_trait]
impl TokenService for Tokens {
    async fn create_token(
        &self,
        request: Request<v1::CreateTokenRequest>,
    ) -> Result<Response<v1::CreateTokenResponse>, Status> {
        audited_call!(
            self,
            request,
            "token.create",
            |caller, body| format!("users/{}/tokens/{}", caller.actor(), body.name),
            self.create(&caller, body)
        )
    }

    async fn get_token(
        &self,
        request: Request<v1::GetTokenRequest>,
    ) -> Result<Response<v1::Token>, Status> {
        let caller = auth::authenticate(&self.0, &request).await?;
        Ok(Response::new(
            self.get(&caller, request.into_inner()).await?,
        ))
    }

    async fn list_tokens(
        &self,
        request: Request<v1::ListTokensRequest>,
    ) -> Result<Response<v1::ListTokensResponse>, Status> {
        let caller = auth::authenticate(&self.0, &request).await?;
        Ok(Response::new(
            self.list(&caller, request.into_inner()).await?,
        ))
    }

    async fn update_token(
        &self,
        request: Request<v1::UpdateTokenRequest>,
    ) -> Result<Response<v1::Token>, Status> {
        audited_call!(
            self,
            request,
            "token.update",
            |caller, body| token_select::target(&caller, body.target.as_ref()),
            token_state::update(&self.0, &caller, body)
        )
    }

    async fn duplicate_token(
        &self,
        request: Request<v1::DuplicateTokenRequest>,
    ) -> Result<Response<v1::DuplicateTokenResponse>, Status> {
        audited_call!(
            self,
            request,
            "token.duplicate",
            |caller, body| token_select::target(&caller, body.source.as_ref()),
            token_secrets::duplicate(&self.0, &caller, body)
        )
    }

    async fn enable_token(
        &self,
        request: Request<v1::EnableTokenRequest>,
    ) -> Result<Response<v1::Token>, Status> {
        audited_call!(
            self,
            request,
            "token.enable",
            |caller, body| token_select::target(&caller, body.token.as_ref()),
            token_state::set_enabled(&self.0, &caller, body.token.as_ref(), true)
        )
    }

    async fn disable_token(
        &self,
        request: Request<v1::DisableTokenRequest>,
    ) -> Result<Response<v1::Token>, Status> {
        audited_call!(
            self,
            request,
            "token.disable",
            |caller, body| token_select::target(&caller, body.token.as_ref()),
            token_state::set_enabled(&self.0, &caller, body.token.as_ref(), false)
        )
    }

    async fn delete_token(
        &self,
        request: Request<v1::DeleteTokenRequest>,
    ) -> Result<Response<v1::DeleteTokenResponse>, Status> {
        audited_call!(
            self,
            request,
            "token.delete",
            |caller, body| token_select::target(&caller, body.token.as_ref()),
            self.delete(&caller, body)
        )
    }

    async fn rotate_token(
        &self,
        request: Request<v1::RotateTokenRequest>,
    ) -> Result<Response<v1::RotateTokenResponse>, Status> {
        audited_call!(
            self,
            request,
            "token.rotate",
            |caller, body| token_select::target(&caller, body.token.as_ref()),
            token_secrets::rotate(&self.0, &caller, body)
        )
    }
}
