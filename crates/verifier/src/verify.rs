//! One verification: the decision behind `VerifierService.Verify`.
//!
//! Order matters: fail closed when the view is stale, then the token's form
//! and signature (skipped for a remembered token), then the one rule in
//! `tessera-core` (issuer, time window, revocations), then the grant asked
//! about. Once the signature has checked, every answer names the token.

use crate::batch::Batcher;
use crate::cache::SignatureCache;
use crate::view::View;
use std::sync::Arc;
use tessera_core::authorization::{self, Garbled};
use tessera_core::jwt::{Rejection, Unchecked};
use tessera_core::revocation::{Judge, Refusal};
use tessera_core::{Claims, Grant, TokenType, grants};
use tessera_proto::v1::{self, VerifyReason};

/// The settings a verification needs.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub leeway_secs: i64,
    pub max_staleness_ms: i64,
}

/// Where the token comes from in a request.
pub fn token_of(request: &v1::VerifyRequest) -> Result<&str, (VerifyReason, String)> {
    let malformed = |m: &str| (VerifyReason::Malformed, m.to_owned());
    match (request.token.trim(), request.authorization.trim()) {
        ("", "") => Err(malformed("no token given: set `token` or `authorization`")),
        (token, "") => Ok(token),
        ("", header) => authorization::token(header).map_err(|g| match g {
            Garbled::Empty => malformed("the authorization header carries no token"),
            _ => malformed("authorization is not `Bearer <token>` or `fmetoken token=<token>`"),
        }),
        (_, _) => Err(malformed("set `token` or `authorization`, not both")),
    }
}

fn refusal(reason: VerifyReason, message: impl Into<String>) -> v1::VerifyResponse {
    v1::VerifyResponse {
        valid: false,
        reason: reason as i32,
        message: message.into(),
        ..Default::default()
    }
}

fn reason_of(rejection: Rejection) -> VerifyReason {
    match rejection {
        Rejection::Malformed => VerifyReason::Malformed,
        Rejection::BadSignature => VerifyReason::BadSignature,
        Rejection::UnknownKey => VerifyReason::UnknownKey,
    }
}

/// The outcome of the signature step.
pub enum Signature {
    /// Checked, now or before.
    Good(Arc<Claims>),
    /// Signed by a key this verifier does not know (yet).
    UnknownKey,
    /// Refused for another reason.
    Refused(v1::VerifyResponse),
}

/// Checks form and signature, using and filling the cache; a signature
/// not remembered waits to be checked with those of concurrent requests.
pub async fn check_signature(
    view: &View,
    cache: &SignatureCache,
    batcher: &Batcher,
    token: &str,
) -> Signature {
    // No cache, no key to compute: a cold check pays for the signature only.
    let cache_key = cache.is_on().then(|| SignatureCache::key(token));
    if let Some(claims) = cache_key.as_ref().and_then(|k| cache.get(k)) {
        return Signature::Good(claims);
    }
    let keys = view.keys();
    let checked = match Unchecked::read(token, |kid| keys.get(kid)) {
        Ok(unchecked) => batcher.check(unchecked).await,
        Err(r) => Err(r),
    };
    match checked {
        Ok(claims) => {
            let claims = Arc::new(claims);
            if let Some(key) = cache_key {
                cache.insert(key, claims.clone());
            }
            Signature::Good(claims)
        }
        Err(r) if r.reason == Rejection::UnknownKey => Signature::UnknownKey,
        Err(r) => Signature::Refused(refusal(reason_of(r.reason), r.message)),
    }
}

/// The answer and message for a refusal by the revocation set.
pub fn refusal_of(refusal: Refusal, claims: &Claims, issuers: &[String]) -> (VerifyReason, String) {
    match refusal {
        Refusal::UntrustedIssuer => (
            VerifyReason::UntrustedIssuer,
            format!(
                "token was issued by {:?}, which this verifier does not trust (it trusts {}); \
                 if that issuer is yours, add it with --trusted-issuer",
                claims.iss,
                issuers
                    .iter()
                    .map(|i| format!("{i:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Refusal::Expired => (VerifyReason::Expired, "token has expired".into()),
        Refusal::NotYetValid => (VerifyReason::NotYetValid, "token is not valid yet".into()),
        Refusal::Revoked => (VerifyReason::Revoked, "token has been revoked".into()),
        Refusal::OwnerChanged => (
            VerifyReason::Revoked,
            "token was revoked when its owner was disabled, deleted or given a new password".into(),
        ),
        Refusal::Disabled => (VerifyReason::Disabled, "token is disabled".into()),
        Refusal::Malformed => (VerifyReason::Malformed, "token id is not a token id".into()),
    }
}

/// The answer for a token whose signature is good.
pub fn decide(
    view: &View,
    claims: &Claims,
    request: &v1::VerifyRequest,
    now: i64,
    policy: Policy,
) -> v1::VerifyResponse {
    let issuers = view.issuers();
    let judge = Judge {
        now,
        leeway_secs: policy.leeway_secs,
        issuers: &issuers,
    };
    // The identity is the signed one: set whenever the signature checked.
    let mut answer = v1::VerifyResponse {
        valid: false,
        reason: VerifyReason::Ok as i32,
        message: String::new(),
        token_id: claims.jti.clone(),
        owner_id: claims.sub.clone(),
        r#type: match claims.typ {
            TokenType::Api => v1::TokenType::Api,
            TokenType::Session => v1::TokenType::Session,
        } as i32,
        grants: Vec::new(),
        expire_time: Some(prost_types::Timestamp {
            seconds: claims.exp,
            nanos: 0,
        }),
    };
    view.with_revocations(|set| match set.check(claims, judge) {
        Err(refused) => {
            let (reason, message) = refusal_of(refused, claims, &issuers);
            answer.reason = reason as i32;
            answer.message = message;
        }
        Ok(effective) => {
            let resource = request.resource.trim();
            let action = request.action.trim();
            answer.valid = true;
            answer.grants = effective.grants.iter().cloned().map(grant).collect();
            answer.expire_time = Some(prost_types::Timestamp {
                seconds: effective.expire_time,
                nanos: 0,
            });
            if !resource.is_empty() && !grants::allows(&effective.grants, resource, action) {
                answer.valid = false;
                answer.reason = VerifyReason::PermissionDenied as i32;
                answer.message = format!("token lacks {resource}:{action}");
            }
        }
    });
    answer
}

fn grant(g: Grant) -> v1::Grant {
    v1::Grant {
        resource: g.resource,
        actions: g.actions,
    }
}

/// The STALE answer, if the view is too old to trust at `now_ms`.
pub fn staleness(view: &View, now_ms: i64, policy: Policy) -> Option<v1::VerifyResponse> {
    if let Some(why) = view.refusal() {
        return Some(refusal(VerifyReason::Stale, why));
    }
    match view.age_ms(now_ms) {
        None => Some(refusal(
            VerifyReason::Stale,
            "the verifier has not loaded its revocation view yet",
        )),
        Some(age) if age > policy.max_staleness_ms => Some(refusal(
            VerifyReason::Stale,
            format!(
                "the verifier's revocation view is {} s old, past the limit; it refuses every token until it catches up",
                age / 1000
            ),
        )),
        Some(_) => None,
    }
}
