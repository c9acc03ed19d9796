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
//! request is refused (400): one of them came from the client. The URI is
//! held to the same normal form as ext_authz's path (400 `BAD_PATH`).
//!
//! The answer is the status (200, 400, 401, 403, 503; never 202, which
//! Envoy's HTTP mode would take as a refusal), `X-Tessera-Reason`,
//! `Cache-Control` (`no-store` on every refusal), the identity headers on
//! 200, `WWW-Authenticate` on 401 and on a 403 for a missing grant,
//! `Retry-After` on 503, and a small JSON body. Unlike ext_authz it cannot
//! take a `fmetoken` parameter out of the request the application gets:
//! the proxy sends the URL on unchanged.

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

/// A URI header as UTF-8, read from its bytes: nginx passes a client's raw
/// non-ASCII path on, and it must reach the normal form as Envoy's `:path`
/// does rather than read as no path at all.
fn uri_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, Refused> {
    match headers.get(name) {
        None => Ok(""),
        Some(value) => std::str::from_utf8(value.as_bytes())
            .map(str::trim)
            .map_err(|_| ("BAD_PATH", format!("{name} is not UTF-8"))),
    }
}

/// A 400's reason and message.
type Refused = (&'static str, String);

/// Whichever of two values naming the same thing is there. Each proxy sets
/// one header and may pass a client's copy of the other through, so two
/// that disagree are refused rather than guessed between.
fn either<'a>(first: (&str, &'a str), second: (&str, &'a str)) -> Result<&'a str, Refused> {
    match (first.1, second.1) {
        (a, b) if a.is_empty() || b.is_empty() || a == b => Ok(if a.is_empty() { b } else { a }),
        _ => Err((
            "BAD_REQUEST",
            format!(
                "{} and {} disagree: the proxy must set one and remove the other",
                first.0, second.0
            ),
        )),
    }
}

/// The original method and path, from whichever headers the proxy set.
fn original(headers: &HeaderMap) -> Result<(&str, &str), Refused> {
    let method = either(
        ("x-forwarded-method", header(headers, "x-forwarded-method")),
        ("x-original-method", header(headers, "x-original-method")),
    )?;
    let path = either(
        ("x-forwarded-uri", uri_header(headers, "x-forwarded-uri")?),
        ("x-original-uri", uri_header(headers, "x-original-uri")?),
    )?;
    Ok((method, path))
}

async fn answer(gateway: &Gateway, peer: Option<SocketAddr>, headers: &HeaderMap) -> Response {
    let (method, path) = match original(headers) {
        Ok(pair) => pair,
        Err((reason, why)) => {
            let refused = Answer::plain(400, reason, why);
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
