//! `SessionService`: trade a password for a short-lived session token.

use crate::auth::{self, Credentials};
use crate::convert;
use crate::error::IssuerError;
use crate::issue::{Mint, mint};
use crate::state::Shared;
use crate::validate::{self, Violations};
use std::sync::Arc;
use tessera_core::TokenType;
use tessera_proto::v1::{self, session_service_server::SessionService};
use tessera_store::audit::NewAudit;
use tonic::{Request, Response, Status};

pub(crate) struct Sessions(pub Arc<Shared>);

impl Sessions {
    async fn login(
        &self,
        request: Request<v1::LoginRequest>,
    ) -> Result<v1::LoginResponse, IssuerError> {
        let shared = &self.0;
        let Credentials::Basic { username, password } = auth::credentials(request.metadata())?
        else {
            return Err(IssuerError::Unauthenticated(
                "Login takes HTTP Basic credentials: `authorization: Basic base64(user:password)`"
                    .into(),
            ));
        };
        let body = request.into_inner();
        let kind = v1::SessionKind::try_from(body.kind)
            .map_err(|_| IssuerError::invalid("kind", "is not a session kind"))?;
        let config = &shared.config;
        let default_life = match kind {
            v1::SessionKind::Web => config.web_session_lifetime,
            v1::SessionKind::TokenService => config.token_service_session_lifetime,
            v1::SessionKind::Api | v1::SessionKind::Unspecified => config.api_session_lifetime,
        };
        let mut v = Violations::default();
        let max = validate::secs(config.max_session_lifetime);
        let life = match &body.expires_in {
            Some(d) => validate::duration_secs(&mut v, "expires_in", d).inspect(|&s| {
                if s > max {
                    v.add(
                        "expires_in",
                        format!(
                            "must be at most {}",
                            tessera_core::duration::format(config.max_session_lifetime)
                        ),
                    );
                }
            }),
            None => Some(validate::secs(default_life)),
        };
        v.finish()?;
        let life = life.unwrap_or(0);

        let store = shared.store()?;
        let now = shared.now();
        let user = match auth::check_password(shared, store, &username, &password).await {
            Ok(user) => user,
            Err(e) => {
                let actor: String = username.chars().take(128).collect();
                let event = NewAudit::ok(&actor, "session.login", format!("user:{actor}"))
                    .with_outcome("denied", "invalid credentials");
                if let Err(audit_err) = store.record_audit(now, event).await {
                    tracing::warn!(error = %audit_err, "could not record a failed login");
                }
                return Err(e);
            }
        };
        let kind_name = convert::session_kind_name(kind);
        let id_hint = uuid::Uuid::now_v7().simple().to_string().split_off(20);
        let audit = NewAudit::ok(
            &user.username,
            "session.login",
            format!("user:{}", user.username),
        )
        .with_outcome("ok", format!("{kind_name} session"));
        let (row, secret) = mint(
            shared,
            store,
            Mint {
                owner: &user,
                name: format!("{kind_name} session {id_hint}"),
                description: String::new(),
                token_type: TokenType::Session,
                session_kind: Some(kind_name),
                enabled: true,
                all_permissions: true,
                grants: auth::user_grants(&user)?,
                now,
                expire_time: now.saturating_add(life),
            },
            audit,
        )
        .await?;
        tracing::info!(user = %user.username, kind = kind_name, token_id = %row.id, "session started");
        Ok(v1::LoginResponse {
            secret,
            token: Some(convert::token(row, &user.username, now)?),
        })
    }
}

#[tonic::async_trait]
impl SessionService for Sessions {
    async fn login(
        &self,
        request: Request<v1::LoginRequest>,
    ) -> Result<Response<v1::LoginResponse>, Status> {
        Ok(Response::new(Sessions::login(self, request).await?))
    }

    async fn extend_session(
        &self,
        _request: Request<v1::ExtendSessionRequest>,
    ) -> Result<Response<v1::ExtendSessionResponse>, Status> {
        Err(IssuerError::Unimplemented("ExtendSession").into())
    }

    async fn logout(
        &self,
        _request: Request<v1::LogoutRequest>,
    ) -> Result<Response<v1::LogoutResponse>, Status> {
        Err(IssuerError::Unimplemented("Logout").into())
    }
}
