//! Who is calling: HTTP Basic credentials or a token in the `authorization`
//! metadata, as FME's REST API accepts them.
//!
//! Every failure answers with the same few messages, so a caller cannot learn
//! which users exist or why exactly a password was refused.

use crate::error::IssuerError;
use crate::judge;
use crate::state::Shared;
use std::net::IpAddr;
use tessera_core::revocation::Refusal;
use tessera_core::{Claims, Grant, TokenType, authorization, grants, jwt, password};
use tessera_store::Store;
use tessera_store::entity::{token, user};
use tessera_store::{tokens, users};
use tonic::Request;
use tonic::metadata::MetadataMap;

const BAD_CREDENTIALS: &str = "invalid username or password";

pub(crate) use tessera_core::authorization::Credentials;

/// Reads the `authorization` header value: `Basic b64(user:password)`,
/// `Bearer <token>` or `fmetoken token=<token>`.
pub(crate) fn parse_authorization(value: &str) -> Result<Credentials, IssuerError> {
    authorization::parse(value).map_err(|g| IssuerError::Unauthenticated(g.message().into()))
}

/// The credentials in `metadata`, if well-formed.
pub(crate) fn credentials(metadata: &MetadataMap) -> Result<Credentials, IssuerError> {
    let value = metadata.get("authorization").ok_or_else(|| {
        IssuerError::Unauthenticated(
            "credentials required: send `authorization: Basic …` or `authorization: Bearer <token>`"
                .into(),
        )
    })?;
    let value = value.to_str().map_err(|_| {
        IssuerError::Unauthenticated("the authorization header is not readable text".into())
    })?;
    parse_authorization(value)
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub user: user::Model,
    /// The token the call was made with, when it was not a password.
    pub token: Option<token::Model>,
    /// What that token's secret may do: its signed grants, held to the
    /// token's current (possibly narrowed) grants. Empty for a password.
    pub token_grants: Vec<Grant>,
}

impl Caller {
    /// A caller who presented a password.
    pub fn with_password(user: user::Model) -> Self {
        Self {
            user,
            token: None,
            token_grants: Vec::new(),
        }
    }

    /// Whether the caller may do `action` on `resource`: its ceiling (the
    /// user's grants, or the calling token's) allows it. Administrators hold
    /// `*`, so they pass unless they called with a narrower token.
    pub fn may(&self, resource: &str, action: &str) -> Result<bool, IssuerError> {
        Ok(grants::allows(&self.ceiling()?, resource, action))
    }

    /// Refuses the call unless the caller may do `action` on `resource`;
    /// `doing` says what it was for ("manage users").
    pub fn require(&self, resource: &str, action: &str, doing: &str) -> Result<(), IssuerError> {
        if self.may(resource, action)? {
            return Ok(());
        }
        let how = if self.token.is_some() {
            "call with a password or a token that holds it"
        } else {
            "ask an administrator to grant it to you"
        };
        Err(IssuerError::PermissionDenied(format!(
            "to {doing} you need the grant `{resource}: {action}`: {how}"
        )))
    }

    /// Whether the caller holds every grant (`*` on `*`): what making or
    /// changing an administrator takes, so that a user manager cannot make
    /// itself more than it is.
    pub fn holds_everything(&self) -> Result<bool, IssuerError> {
        self.may(grants::WILDCARD, grants::WILDCARD)
    }

    /// The most the caller may hand on to a token it makes: its owner's
    /// grants, or, when it called with a token, that token's.
    pub fn ceiling(&self) -> Result<Vec<Grant>, IssuerError> {
        match &self.token {
            Some(_) => Ok(self.token_grants.clone()),
            None => user_grants(&self.user),
        }
    }

    /// The session token the call was made with, if it was one.
    pub fn session(&self) -> Option<&token::Model> {
        self.token
            .as_ref()
            .filter(|t| TokenType::parse(&t.token_type) == Some(TokenType::Session))
    }

    /// The name recorded in audit events.
    pub fn actor(&self) -> &str {
        &self.user.username
    }
}

/// All of a user's grants: everything for an administrator.
pub(crate) fn user_grants(user: &user::Model) -> Result<Vec<Grant>, IssuerError> {
    if user.admin {
        Ok(vec![Grant::everything()])
    } else {
        Ok(users::grants_of(user)?)
    }
}

/// Where a call comes from, for sign-in throttling: the connection's peer,
/// or, when that peer is a trusted proxy, the nearest untrusted address in
/// its `x-forwarded-for`.
pub(crate) fn source<T>(shared: &Shared, request: &Request<T>) -> Option<IpAddr> {
    tessera_serve::source::of_request(request, &shared.config.trusted_proxies)
}

/// Checks a username and password; the same error whatever is wrong. Failed
/// attempts make later ones from the same source (and for the same name)
/// wait; an attempt that must still wait is refused before any hashing.
pub(crate) async fn check_password(
    shared: &Shared,
    store: &Store,
    username: &str,
    password: &str,
    source: Option<IpAddr>,
) -> Result<user::Model, IssuerError> {
    let now_ms = shared.clock.now().timestamp_millis();
    if let Err(wait) = shared.throttle.check(username, source, now_ms) {
        shared.logins.throttled.inc();
        return Err(IssuerError::ResourceExhausted {
            message: format!(
                "too many failed sign-ins: retry in {} s",
                wait.as_secs().max(1)
            ),
            retry_after: wait,
        });
    }
    // A name no user can have (control characters, too long) is not looked
    // up, but costs the same hash: refusing it early would tell a timing
    // observer it was refused for its form.
    let plausible = username.chars().count() <= crate::validate::MAX_NAME_CHARS
        && !username.chars().any(char::is_control);
    let user = if plausible {
        store.user_by_username(username).await?
    } else {
        None
    };
    let stored = user
        .as_ref()
        .map_or_else(|| shared.decoy_hash.clone(), |u| u.password_hash.clone());
    let password = password.to_owned();
    let matches = shared
        .hashing
        .run(move |memory| password::verify_with(&password, &stored, memory))
        .await
        .inspect_err(|_| {
            shared.logins.busy.inc();
        })??;
    match user {
        Some(user) if matches && user.enabled => {
            shared.throttle.succeeded(username, source);
            Ok(user)
        }
        _ => {
            shared.logins.failed.inc();
            shared.throttle.failed(username, source, now_ms);
            Err(IssuerError::Unauthenticated(BAD_CREDENTIALS.into()))
        }
    }
}

/// What a refused caller's token is told.
fn refusal_message(refusal: Refusal, claims: &Claims) -> String {
    match refusal {
        Refusal::UntrustedIssuer => format!(
            "it was issued by {:?}, not by this issuer; use a token this issuer made",
            claims.iss
        ),
        Refusal::Expired => "token has expired".into(),
        Refusal::NotYetValid => "token is not valid yet".into(),
        Refusal::Revoked if claims.typ == TokenType::Api => {
            "token has been revoked (deleted, or this secret was replaced when the token was \
             rotated: use the new secret)"
                .into()
        }
        Refusal::Revoked => "token has been revoked".into(),
        Refusal::OwnerChanged => "token was revoked when its owner's password changed or the \
                                  owner was disabled; log in again"
            .into(),
        Refusal::Disabled => "token is disabled".into(),
        Refusal::Malformed => "token id is not a token id".into(),
    }
}

/// Checks a token string against the issuer's keys, then judges it by the
/// verifiers' rule over the events that touch it and its owner.
pub(crate) async fn check_token(
    shared: &Shared,
    store: &Store,
    token: &str,
) -> Result<Caller, IssuerError> {
    let refused = |why: &str| IssuerError::Unauthenticated(format!("token refused: {why}"));
    let kid = jwt::key_id(token).map_err(|r| refused(&r.message))?;
    let key = shared.verifying_key(store, &kid).await?;
    let now = shared.now();
    let claims = jwt::check(token, |_| key.as_ref()).map_err(|r| refused(&r.message))?;
    let set = judge::set_for(store, &[&claims.jti], &[&claims.sub]).await?;
    let effective = set
        .check(&claims, judge::judge_at(shared, now, judge::leeway(shared)))
        .map_err(|r| refused(&refusal_message(r, &claims)))?;
    let token_grants = effective.grants.into_owned();
    // A deleted token (or user) has a revocation event too; the rows are
    // read for who is calling.
    let row = store
        .token_by_id(&claims.jti)
        .await?
        .filter(|row| row.owner_id == claims.sub && claims.ver <= tokens::version_of(row))
        .ok_or_else(|| refused("token has been revoked"))?;
    let user = store
        .user_by_id(&row.owner_id)
        .await?
        .filter(|u| u.enabled)
        .ok_or_else(|| refused("the token's owner is disabled or gone"))?;
    Ok(Caller {
        user,
        token: Some(row),
        token_grants,
    })
}

/// Authenticates a management call made with a password or a token.
pub(crate) async fn authenticate<T>(
    shared: &Shared,
    request: &Request<T>,
) -> Result<Caller, IssuerError> {
    let credentials = credentials(request.metadata())?;
    let store = shared.store()?;
    match credentials {
        Credentials::Basic { username, password } => {
            let source = source(shared, request);
            let user = check_password(shared, store, &username, &password, source).await?;
            Ok(Caller::with_password(user))
        }
        Credentials::Token(token) => check_token(shared, store, &token).await,
    }
}
