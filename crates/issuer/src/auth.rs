//! Who is calling: HTTP Basic credentials or a token in the `authorization`
//! metadata, as FME's REST API accepts them.
//!
//! Every failure answers with the same few messages, so a caller cannot learn
//! which users exist or why exactly a password was refused.

use crate::error::IssuerError;
use crate::judge;
use crate::state::Shared;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tessera_core::revocation::Refusal;
use tessera_core::{Claims, Grant, TokenType, grants, jwt, password};
use tessera_store::Store;
use tessera_store::entity::{token, user};
use tessera_store::{tokens, users};
use tonic::metadata::MetadataMap;

const BAD_CREDENTIALS: &str = "invalid username or password";

/// Credentials as presented.
pub(crate) enum Credentials {
    Basic { username: String, password: String },
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

/// Reads the `authorization` header value: `Basic b64(user:password)`,
/// `Bearer <token>` or `fmetoken token=<token>`.
pub(crate) fn parse_authorization(value: &str) -> Result<Credentials, IssuerError> {
    let garbled = || {
        IssuerError::Unauthenticated(
            "the authorization header is not `Basic …`, `Bearer …` or `fmetoken token=…`".into(),
        )
    };
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').ok_or_else(garbled)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest).map_err(|_| garbled())?;
        let decoded = String::from_utf8(decoded).map_err(|_| garbled())?;
        let (username, password) = decoded.split_once(':').ok_or_else(garbled)?;
        if username.is_empty() {
            return Err(garbled());
        }
        Ok(Credentials::Basic {
            username: username.into(),
            password: password.into(),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Ok(Credentials::Token(rest.into()))
    } else if scheme.eq_ignore_ascii_case("fmetoken") {
        let token = rest.strip_prefix("token=").ok_or_else(garbled)?.trim();
        if token.is_empty() {
            return Err(garbled());
        }
        Ok(Credentials::Token(token.into()))
    } else {
        Err(garbled())
    }
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

/// Checks a username and password; the same error whatever is wrong.
pub(crate) async fn check_password(
    shared: &Shared,
    store: &Store,
    username: &str,
    password: &str,
) -> Result<user::Model, IssuerError> {
    let user = store.user_by_username(username).await?;
    let stored = user
        .as_ref()
        .map_or_else(|| shared.decoy_hash.clone(), |u| u.password_hash.clone());
    let password = password.to_owned();
    // argon2 is deliberately slow: keep it off the async workers.
    let matches = tokio::task::spawn_blocking(move || password::verify(&password, &stored))
        .await
        .map_err(|e| IssuerError::Internal(format!("password check task failed: {e}")))??;
    match user {
        Some(user) if matches && user.enabled => Ok(user),
        _ => Err(IssuerError::Unauthenticated(BAD_CREDENTIALS.into())),
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
pub(crate) async fn authenticate(
    shared: &Shared,
    metadata: &MetadataMap,
) -> Result<Caller, IssuerError> {
    let credentials = credentials(metadata)?;
    let store = shared.store()?;
    match credentials {
        Credentials::Basic { username, password } => {
            let user = check_password(shared, store, &username, &password).await?;
            Ok(Caller::with_password(user))
        }
        Credentials::Token(token) => check_token(shared, store, &token).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_header_form_is_read() {
        let basic = format!("Basic {}", STANDARD.encode("alice:pa:ss"));
        match parse_authorization(&basic) {
            Ok(Credentials::Basic { username, password }) => {
                assert_eq!(username, "alice");
                assert_eq!(password, "pa:ss");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            matches!(parse_authorization("Bearer abc"), Ok(Credentials::Token(t)) if t == "abc")
        );
        assert!(matches!(
            parse_authorization("fmetoken token=abc"),
            Ok(Credentials::Token(t)) if t == "abc"
        ));
        for bad in [
            "",
            "Basic",
            "Basic !!!",
            "Bearer ",
            "fmetoken abc",
            "Digest x",
            "Basic OmZvbw==",
        ] {
            assert!(
                parse_authorization(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }
}
