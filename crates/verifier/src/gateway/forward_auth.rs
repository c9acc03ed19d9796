//! HTTP forward authentication, for proxies that ask an HTTP service about
//! each request: nginx `auth_request`, Traefik `ForwardAuth`, Caddy
//! `forward_auth`. Each request to `/auth` (any method) is one
//! [`Gateway::answer`], read from the headers the proxy sends:
//!
//! - `Authorization`: the credential (`Bearer <t>` or `fmetoken token=<t>`);
//! - `X-Forwarded-Method` (Traefik, Caddy) or `X-Original-Method` (nginx,
//!   set in its configuration): the original method;
//! - `X-Forwarded-Uri` (Traefik, Caddy) or `X-Original-URI` (nginx): the
//!   original path and query, matched against the route rules and read for
//!   the `fmetoken` parameter when that is on;
//! - `X-Tessera-Resource` and `X-Tessera-Action`: the proxy's own
//!   per-route question, read only when no rules file is configured (with
//!   one, the rules decide, whatever a client slipped into these).
//!
//! Where both forms of the method or URI header are there and disagree, the
//! request is refused (400): one of them came from the client.
//!
//! The answer is the status (200, 400, 401, 403, 503; never 202, which
//! Envoy's HTTP mode would take as a refusal), `X-Tessera-Reason`,
//! `Cache-Control`, the identity headers on 200, `WWW-Authenticate` on 401
//! and on a 403 for a missing grant,
//! `Retry-After` on 503, and a small JSON body.

use super::{Answer, Ask, Front, Gateway};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// The path proxies are pointed at.
pub const PATH: &str = "/auth";

/// The forward-auth routes over `gateway`. Serve them with
/// `into_make_service_with_connect_info::<SocketAddr>()`: the peer is
/// what a use is recorded against, unless it is a trusted proxy.
pub fn router(gateway: Arc<Gateway>) -> axum::Router {
    axum::Router::new().route(
        PATH,
        axum::routing::any(move |request: axum::extract::Request| {
            let gateway = gateway.clone();
            async move {
                let peer = request
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0);
                answer(&gateway, peer, request.headers()).await
            }
        }),
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim()
}

/// The value of whichever of two headers naming the same thing is there.
/// Each proxy sets one and may pass a client's copy of the other through,
/// so two that disagree are refused rather than guessed between.
fn either<'a>(headers: &'a HeaderMap, first: &str, second: &str) -> Result<&'a str, String> {
    match (header(headers, first), header(headers, second)) {
        (a, b) if a.is_empty() || b.is_empty() || a == b => Ok(if a.is_empty() { b } else { a }),
        _ => Err(format!(
            "{first} and {second} disagree: the proxy must set one and remove the other"
        )),
    }
}

async fn answer(gateway: &Gateway, peer: Option<SocketAddr>, headers: &HeaderMap) -> Response {
    let original = either(headers, "x-forwarded-method", "x-original-method")
        .and_then(|m| either(headers, "x-forwarded-uri", "x-original-uri").map(|p| (m, p)));
    let (method, path) = match original {
        Ok(pair) => pair,
        Err(why) => {
            let refused = Answer::plain(400, "BAD_REQUEST", why);
            return respond(&gateway.counted(Front::ForwardAuth, refused));
        }
    };
    // With route rules the rules decide: these headers could come from the
    // client through a proxy that forwards every header to /auth.
    let (resource, action) = if gateway.has_rules() {
        ("", "")
    } else {
        (
            header(headers, "x-tessera-resource"),
            header(headers, "x-tessera-action"),
        )
    };
    let ask = Ask {
        method,
        path,
        authorization: header(headers, "authorization"),
        resource,
        action,
        caller: peer.map(|p| {
            let forwarded = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok());
            tessera_serve::source::client(
                p.ip(),
                forwarded,
                &gateway.shared().config.trusted_proxies,
            )
        }),
    };
    respond(&gateway.answer(Front::ForwardAuth, &ask).await)
}

fn respond(answer: &Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::FORBIDDEN);
    let body = if answer.allowed() {
        String::new()
    } else {
        answer.body()
    };
    let mut response = (status, body).into_response();
    let out = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            out.insert(HeaderName::from_static(name), value);
        }
    };
    set("x-tessera-reason", answer.reason);
    set("cache-control", &answer.cache_control());
    if !answer.allowed() {
        set("content-type", "application/json");
    }
    // On 200 all four are there, empty on a public route: a proxy copying
    // them upstream then overwrites a client's copies with nothing (Caddy
    // would copy its own placeholder text for a header that is absent).
    if answer.allowed() {
        let id = answer.identity.as_ref();
        set("x-tessera-token-id", id.map_or("", |i| &i.token_id));
        set("x-tessera-owner-id", id.map_or("", |i| &i.owner_id));
        set("x-tessera-token-type", id.map_or("", |i| i.token_type));
        set("x-tessera-expire-time", id.map_or("", |i| &i.expire_time));
    }
    if let Some(challenge) = answer.challenge() {
        set("www-authenticate", challenge);
    }
    if answer.status == 503 {
        set("retry-after", "1");
    }
    response
}
