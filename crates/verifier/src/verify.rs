//! One verification: the decision behind `VerifierService.Verify`.
//!
//! Order matters: fail closed when the view is stale, then the token's form,
//! signature (skipped for a remembered token) and time window, then the
//! revocation set, then the grant asked about.

use crate::cache::SignatureCache;
use crate::view::View;
use std::sync::Arc;
use tessera_core::jwt::{self, Rejection};
use tessera_core::revocation::Refusal;
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
        ("", header) => {
            let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
            let rest = rest.trim();
            let token = if scheme.eq_ignore_ascii_case("bearer") {
                rest
            } else if scheme.eq_ignore_ascii_case("fmetoken") {
                rest.strip_prefix("token=").map(str::trim).unwrap_or("")
            } else {
                return Err(malformed(
                    "authorization is not `Bearer <token>` or `fmetoken token=<token>`",
                ));
            };
            if token.is_empty() {
                return Err(malformed("the authorization header carries no token"));
            }
            Ok(token)
        }
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
        Rejection::Expired => VerifyReason::Expired,
        Rejection::NotYetValid => VerifyReason::NotYetValid,
    }
}

/// The outcome of the signature step.
pub enum Signature {
    /// Checked (now or before) and inside its time window.
    Good(Arc<Claims>),
    /// Signed by a key this verifier does not know (yet).
    UnknownKey,
    /// Refused for another reason.
    Refused(v1::VerifyResponse),
}

/// Checks form, signature and time window, using and filling the cache.
pub fn check_signature(
    view: &View,
    cache: &SignatureCache,
    token: &str,
    now: i64,
    policy: Policy,
) -> Signature {
    let cache_key = SignatureCache::key(token);
    if let Some(claims) = cache.get(&cache_key) {
        // The signature was good; the time window still has to be.
        if now > claims.exp.saturating_add(policy.leeway_secs) {
            return Signature::Refused(refusal(VerifyReason::Expired, "token has expired"));
        }
        if now.saturating_add(policy.leeway_secs) < claims.nbf {
            return Signature::Refused(refusal(
                VerifyReason::NotYetValid,
                "token is not valid yet",
            ));
        }
        return Signature::Good(claims);
    }
    let kid = match jwt::key_id(token) {
        Ok(kid) => kid,
        Err(r) => return Signature::Refused(refusal(reason_of(r.reason), r.message)),
    };
    let Some(key) = view.key(&kid) else {
        return Signature::UnknownKey;
    };
    match jwt::check(token, |_| Some(&key), now, policy.leeway_secs) {
        Ok(claims) => {
            let claims = Arc::new(claims);
            cache.insert(cache_key, claims.clone());
            Signature::Good(claims)
        }
        Err(r) => Signature::Refused(refusal(reason_of(r.reason), r.message)),
    }
}

/// The answer for a token whose signature and window are good.
pub fn decide(
    view: &View,
    claims: &Claims,
    request: &v1::VerifyRequest,
    now: i64,
    policy: Policy,
) -> v1::VerifyResponse {
    view.with_revocations(|set| match set.check(claims, now, policy.leeway_secs) {
        Err(Refusal::Revoked) => refusal(VerifyReason::Revoked, "token has been revoked"),
        Err(Refusal::Disabled) => refusal(VerifyReason::Disabled, "token is disabled"),
        Err(Refusal::Expired) => refusal(VerifyReason::Expired, "token has expired"),
        Err(Refusal::Malformed) => refusal(VerifyReason::Malformed, "token id is not a token id"),
        Ok(effective) => {
            let resource = request.resource.trim();
            let action = request.action.trim();
            let mut answer = v1::VerifyResponse {
                valid: true,
                reason: VerifyReason::Ok as i32,
                message: String::new(),
                token_id: claims.jti.clone(),
                owner_id: claims.sub.clone(),
                r#type: match claims.typ {
                    TokenType::Api => v1::TokenType::Api,
                    TokenType::Session => v1::TokenType::Session,
                } as i32,
                grants: effective.grants.iter().cloned().map(grant).collect(),
                expire_time: Some(prost_types::Timestamp {
                    seconds: effective.expire_time,
                    nanos: 0,
                }),
            };
            if !resource.is_empty() && !grants::allows(&effective.grants, resource, action) {
                answer.valid = false;
                answer.reason = VerifyReason::PermissionDenied as i32;
                answer.message = format!("token lacks {resource}:{action}");
            }
            answer
        }
    })
}

fn grant(g: Grant) -> v1::Grant {
    v1::Grant {
        resource: g.resource,
        actions: g.actions,
    }
}

/// The STALE answer, if the view is too old to trust at `now_ms`.
pub fn staleness(view: &View, now_ms: i64, policy: Policy) -> Option<v1::VerifyResponse> {
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
