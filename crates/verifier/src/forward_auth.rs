//! HTTP forward authentication, for proxies that ask an HTTP service about
//! each request: nginx `auth_request`, Traefik `ForwardAuth`, Caddy
//! `forward_auth`. Each request to `/auth` is one [`Shared::verify`] — the
//! same view, cache and decision as the gRPC `Verify` — answered with a
//! status code a proxy acts on:
//!
//! - 200: the token is valid (and holds the action, when one was asked),
//!   with `X-Tessera-Token-Id`, `X-Tessera-Owner-Id` and
//!   `X-Tessera-Token-Type` for the proxy to pass upstream;
//! - 401 with `WWW-Authenticate`: no token, or one that is not valid;
//! - 403: a valid token without the action on the resource;
//! - 503 with `Retry-After`: the verifier's view is stale (fail closed);
//! - 400: a resource without an action, or the reverse.
//!
//! The credential is the request's `Authorization` header (`Bearer <t>` or
//! `fmetoken token=<t>`). What to check comes from the proxy's per-route
//! configuration, as `X-Tessera-Resource` and `X-Tessera-Action` headers;
//! without them only validity is checked. Every answer carries
//! `X-Tessera-Reason` (`OK`, `EXPIRED`…) and a one-line text body.

use crate::service::Shared;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tessera_proto::v1::{self, VerifyReason};

/// The path proxies are pointed at.
pub const PATH: &str = "/auth";

const RESOURCE: &str = "x-tessera-resource";
const ACTION: &str = "x-tessera-action";

/// The forward-auth routes over `shared`.
pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().route(
        PATH,
        axum::routing::any(move |headers: HeaderMap| {
            let shared = shared.clone();
            async move { answer(&shared, &headers).await }
        }),
    )
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

async fn answer(shared: &Shared, headers: &HeaderMap) -> Response {
    let request = v1::VerifyRequest {
        authorization: header(headers, "authorization"),
        resource: header(headers, RESOURCE),
        action: header(headers, ACTION),
        ..Default::default()
    };
    match shared.verify(&request).await {
        Ok(verdict) => respond(&verdict),
        // Only a malformed question (resource without action) errs here.
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

fn status_of(reason: VerifyReason) -> StatusCode {
    match reason {
        VerifyReason::Ok => StatusCode::OK,
        VerifyReason::PermissionDenied => StatusCode::FORBIDDEN,
        VerifyReason::Stale => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNAUTHORIZED,
    }
}

fn respond(verdict: &v1::VerifyResponse) -> Response {
    let reason = VerifyReason::try_from(verdict.reason).unwrap_or(VerifyReason::Unspecified);
    let status = status_of(reason);
    let name = reason
        .as_str_name()
        .trim_start_matches("VERIFY_REASON_")
        .to_owned();
    let body = if verdict.valid {
        "OK\n".to_owned()
    } else {
        // One line: the message never holds the token.
        format!("{name}: {}\n", verdict.message.replace(['\r', '\n'], " "))
    };
    let mut response = (status, body).into_response();
    let out = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            out.insert(HeaderName::from_static(name), value);
        }
    };
    set("x-tessera-reason", &name);
    if verdict.valid {
        set("x-tessera-token-id", &verdict.token_id);
        set("x-tessera-owner-id", &verdict.owner_id);
        let kind = match v1::TokenType::try_from(verdict.r#type) {
            Ok(v1::TokenType::Session) => "session",
            Ok(v1::TokenType::Api) => "api",
            _ => "unknown",
        };
        set("x-tessera-token-type", kind);
    }
    match status {
        StatusCode::UNAUTHORIZED => set("www-authenticate", "Bearer realm=\"tessera\""),
        StatusCode::SERVICE_UNAVAILABLE => set("retry-after", "1"),
        _ => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_the_status_a_proxy_acts_on() {
        assert_eq!(status_of(VerifyReason::Ok), StatusCode::OK);
        assert_eq!(
            status_of(VerifyReason::PermissionDenied),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status_of(VerifyReason::Stale),
            StatusCode::SERVICE_UNAVAILABLE
        );
        for refused in [
            VerifyReason::Malformed,
            VerifyReason::BadSignature,
            VerifyReason::UnknownKey,
            VerifyReason::Expired,
            VerifyReason::NotYetValid,
            VerifyReason::Disabled,
            VerifyReason::Revoked,
            VerifyReason::UntrustedIssuer,
        ] {
            assert_eq!(status_of(refused), StatusCode::UNAUTHORIZED, "{refused:?}");
        }
    }
}
