//! `SessionService`: trade a password for a short-lived session token,
//! extend the calling session, log out.

use crate::audited;
use crate::auth::{self, Caller, Credentials};
use crate::convert;
use crate::error::IssuerError;
use crate::issue::{self, Mint, Secret, mint};
use crate::state::Shared;
use crate::validate::{self, Violations};
use std::sync::Arc;
use std::time::Duration;
use tessera_core::TokenType;
use tessera_proto::v1::{self, session_service_server::SessionService};
use tessera_store::audit::NewAudit;
use tessera_store::entity::token;
use tessera_store::revocation::{EventKind, NewRevocation};
use tessera_store::tokens::{self, NewSecret, TokenChange, TokenUpdate};
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
        let source = auth::source(shared, &request);
        let body = request.into_inner();
        let kind = v1::SessionKind::try_from(body.kind)
            .map_err(|_| IssuerError::invalid("kind", "is not a session kind"))?;
        let life = session_life(shared, kind, body.expires_in.as_ref())?;

        let store = shared.store()?;
        let now = shared.now();
        let user = match auth::check_password(shared, store, &username, &password, source).await {
            Ok(user) => user,
            Err(e) => {
                // Only a refusal is a failed login (a store outage is not),
                // and it is recorded in the background: a caller waits for
                // at most one store timeout.
                let outcome = match &e {
                    IssuerError::Unauthenticated(_) => Some(("denied", "invalid credentials")),
                    IssuerError::ResourceExhausted { .. } => Some((
                        "throttled",
                        "refused unchecked: earlier failures impose a wait",
                    )),
                    _ => None,
                };
                if let Some((outcome, detail)) = outcome {
                    let actor: String = username.chars().take(128).collect();
                    let event = NewAudit::ok(&actor, "session.login", String::new())
                        .with_outcome(outcome, detail);
                    let store = store.clone();
                    tokio::spawn(async move {
                        if let Err(audit_err) = store.record_audit(now, event).await {
                            tracing::warn!(error = %audit_err, "could not record a failed login");
                        }
                    });
                }
                return Err(e);
            }
        };
        let kind_name = convert::session_kind_name(kind);
        let id_hint = uuid::Uuid::now_v7().simple().to_string().split_off(20);
        let audit = NewAudit::ok(
            &user.username,
            "session.login",
            format!("users/{}", user.id),
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
            token: Some(crate::judge::token(shared, store, row, &user.username, now).await?),
        })
    }

    /// ExtendSession: a new secret for the calling session, expiring
    /// `expires_in` (or the kind's lifetime) from now; never earlier than the
    /// session's current expiry. The previous secret keeps its own expiry.
    async fn extend(
        &self,
        caller: &Caller,
        body: v1::ExtendSessionRequest,
    ) -> Result<v1::ExtendSessionResponse, IssuerError> {
        let shared = &self.0;
        let session = calling_session(caller, "ExtendSession extends")?;
        let now = shared.now();
        if session.expire_time <= now {
            return Err(expired());
        }
        let kind = convert::session_kind(session.session_kind.as_deref());
        let life = session_life(shared, kind, body.expires_in.as_ref())?;
        let store = shared.store()?;
        let signer = shared.signer(store, now).await?;
        let owner = &caller.user;
        let (row, secret) = store
            .change_token(&session.id, now, |row| {
                if row.expire_time <= now || !row.enabled {
                    return Err(expired());
                }
                let version = tokens::version_of(row);
                let expire_time = row.expire_time.max(now.saturating_add(life));
                let grants = tokens::grants_of(row)?;
                let secret = issue::sign(
                    shared,
                    &signer,
                    Secret {
                        owner,
                        token_id: &row.id,
                        version,
                        token_type: TokenType::Session,
                        grants: &grants,
                        now,
                        expire_time,
                    },
                )?;
                let change = TokenChange {
                    update: TokenUpdate {
                        expire_time: Some(expire_time),
                        secret: Some(NewSecret {
                            version,
                            key_id: signer.kid.clone(),
                            issue_time: now,
                            generation: issue::generation(owner),
                            previous_secret_expire_time: row.previous_secret_expire_time,
                        }),
                        ..TokenUpdate::default()
                    },
                    revocations: Vec::new(),
                    audit: NewAudit::ok(
                        caller.actor(),
                        "session.extend",
                        format!("tokens/{}", row.id),
                    )
                    .with_outcome(
                        "ok",
                        format!(
                            "expires at {}",
                            tessera_core::duration::instant(expire_time)
                        ),
                    ),
                };
                Ok((change, secret))
            })
            .await
            .map_err(|e| match e {
                IssuerError::NotFound(_) => expired(),
                other => other,
            })?;
        Ok(v1::ExtendSessionResponse {
            token: Some(crate::judge::token(shared, store, row, &owner.username, now).await?),
            secret,
        })
    }

    /// Logout: revokes and removes the calling session.
    async fn logout(&self, caller: &Caller) -> Result<v1::LogoutResponse, IssuerError> {
        let shared = &self.0;
        let session = calling_session(caller, "Logout ends")?;
        let store = shared.store()?;
        let now = shared.now();
        let revocation = NewRevocation::token(
            EventKind::RevokeToken,
            &session.id,
            &session.owner_id,
            tokens::last_valid_time(session),
        );
        let audit = NewAudit::ok(
            caller.actor(),
            "session.logout",
            format!("tokens/{}", session.id),
        );
        store
            .delete_token(&session.id, now, revocation, audit)
            .await
            .map_err(|e| match IssuerError::from(e) {
                // Logged out concurrently: the session is gone either way.
                IssuerError::NotFound(_) => IssuerError::Unauthenticated(
                    "the session has already ended: log in again".into(),
                ),
                other => other,
            })?;
        tracing::info!(user = %caller.actor(), token_id = %session.id, "session ended");
        Ok(v1::LogoutResponse {})
    }
}

/// The session token the caller authenticated with.
fn calling_session<'c>(caller: &'c Caller, what: &str) -> Result<&'c token::Model, IssuerError> {
    caller.session().ok_or_else(|| {
        IssuerError::FailedPrecondition(format!(
            "{what} the session you call with: authenticate with the session token from Login \
             (`authorization: Bearer <token>`), not a password or an API token"
        ))
    })
}

fn expired() -> IssuerError {
    IssuerError::Unauthenticated(
        "the session has expired and cannot be extended or re-activated: log in again".into(),
    )
}

/// A session's lifetime in seconds: `expires_in` if given (positive, at most
/// the maximum session lifetime), else the kind's default.
fn session_life(
    shared: &Shared,
    kind: v1::SessionKind,
    expires_in: Option<&prost_types::Duration>,
) -> Result<i64, IssuerError> {
    let config = &shared.config;
    let default_life: Duration = match kind {
        v1::SessionKind::Web => config.web_session_lifetime,
        v1::SessionKind::TokenService => config.token_service_session_lifetime,
        v1::SessionKind::Api | v1::SessionKind::Unspecified => config.api_session_lifetime,
    };
    let mut v = Violations::default();
    let max = validate::secs(config.max_session_lifetime);
    let life = match expires_in {
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
    Ok(life.unwrap_or(0))
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
        request: Request<v1::ExtendSessionRequest>,
    ) -> Result<Response<v1::ExtendSessionResponse>, Status> {
        let shared = &self.0;
        let caller = auth::authenticate(shared, &request).await?;
        let target = caller
            .token
            .as_ref()
            .map(|t| format!("tokens/{}", t.id))
            .unwrap_or_default();
        let result = self.extend(&caller, request.into_inner()).await;
        let reply = audited::outcome(shared, &caller, "session.extend", &target, result).await?;
        Ok(Response::new(reply))
    }

    async fn logout(
        &self,
        request: Request<v1::LogoutRequest>,
    ) -> Result<Response<v1::LogoutResponse>, Status> {
        let shared = &self.0;
        let caller = auth::authenticate(shared, &request).await?;
        let target = caller
            .token
            .as_ref()
            .map(|t| format!("tokens/{}", t.id))
            .unwrap_or_default();
        let result = Sessions::logout(self, &caller).await;
        let reply = audited::outcome(shared, &caller, "session.logout", &target, result).await?;
        Ok(Response::new(reply))
    }
}
