//! FME's HTTP endpoints beside a test issuer: an issuer that serves them,
//! and requests as FME's clients send them.

use super::http::{self, Reply};
use super::{ADMIN_PASSWORD, Backend, Harness, TestDb, issuer_config};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::net::SocketAddr;
use tessera_issuer::IssuerConfig;

/// An issuer serving FME's endpoints on a random port too.
pub async fn start(backend: Backend) -> Harness {
    start_with(backend, |_| {}).await
}

/// The same, with the test's changes to the configuration.
pub async fn start_with(backend: Backend, change: impl FnOnce(&mut IssuerConfig)) -> Harness {
    let db = TestDb::new(backend).await;
    let mut config = issuer_config(&db);
    config.http_listen = Some("127.0.0.1:0".parse().expect("address"));
    change(&mut config);
    Harness::start_with(db, config).await
}

/// Where the issuer serves FME's endpoints.
pub fn addr(issuer: &Harness) -> SocketAddr {
    issuer
        .http_addr
        .expect("the issuer was started with --http-listen")
}

/// An `Authorization: Basic …` value.
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// The administrator's Basic credentials.
pub fn admin_basic() -> String {
    basic(tessera_issuer::ADMIN_USERNAME, ADMIN_PASSWORD)
}

/// `text` percent-encoded for a query string or a path segment.
pub fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A request with an optional `Authorization` value.
pub async fn call(
    issuer: &Harness,
    method: &str,
    path: &str,
    authorization: Option<&str>,
) -> Reply {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| ("Authorization", a))
        .into_iter()
        .collect();
    http::send(addr(issuer), method, path, &headers).await
}

/// A request with a JSON body (`Content-Type: application/json`).
pub async fn json(
    issuer: &Harness,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: &serde_json::Value,
) -> Reply {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = authorization {
        headers.push(("Authorization", a));
    }
    let body = body.to_string();
    http::send_body(addr(issuer), method, path, &headers, Some(body.as_bytes())).await
}

/// A request with a raw body and the headers given.
pub async fn raw(
    issuer: &Harness,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    http::send_body(addr(issuer), method, path, headers, Some(body)).await
}

/// `/fmetoken/generate` asked by `GET` with these query parameters.
pub async fn generate(issuer: &Harness, json: bool, query: &[(&str, &str)]) -> Reply {
    let path = if json {
        "/fmetoken/generate.json"
    } else {
        "/fmetoken/generate"
    };
    let query: Vec<String> = query
        .iter()
        .map(|(n, v)| format!("{}={}", enc(n), enc(v)))
        .collect();
    call(issuer, "GET", &format!("{path}?{}", query.join("&")), None).await
}

/// An RFC 3339 date as Unix seconds, as Go's `time.Time` reads it.
#[track_caller]
pub fn date(value: &serde_json::Value) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("a date: {value}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
        .timestamp()
}
