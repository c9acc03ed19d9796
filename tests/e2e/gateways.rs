//! Gateways: Envoy's ext_authz `Check` and HTTP forward auth, asked the way
//! proxies ask, over the real wire. Both give the decision `Verify` makes,
//! in HTTP terms: 200 with the token's identity, 401 with a challenge, 403,
//! 503 when the view is stale, 400 for a question that cannot be asked.

use crate::on_both_backends;
use crate::operations::{free_addr, scrape};
use crate::support::http::{self, Reply};
use crate::support::lifecycle::{admin_session, api_token};
use crate::support::verifier::{VerifierHarness, verifier_config};
use crate::support::{Backend, Harness, TestDb, bearer, by_id, grant};
use std::collections::HashMap;
use tessera_proto::envoy::config::core::v3 as core;
use tessera_proto::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use tessera_proto::envoy::service::auth::v3 as authz;
use tessera_proto::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tessera_proto::envoy::service::auth::v3::check_response::HttpResponse;
use tessera_proto::v1::{self, VerifyReason};
use tessera_verifier::{VerifierConfig, VerifierServer};
use tonic_health::pb::health_check_response::ServingStatus;

/// The rules the rules tests (and the real proxies) run with.
pub const RULES: &str = r#"
[[route]]
path = "/healthz"
public = true

[[route]]
methods = ["GET", "HEAD"]
path = "/repositories/{name}/**"
resource = "repositories/{name}"
action = "read"

[[route]]
methods = ["POST"]
path = "/repositories/{name}/items/*"
resource = "repositories/{name}"
action = "write"

[[route]]
path = "/jobs/*/status"
resource = "jobs"
action = "read"

[[route]]
path = "/whoami"
"#;

/// Writes [`RULES`] to a file of its own and returns its path.
pub fn rules_file() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("tessera-routes-{}.toml", uuid::Uuid::now_v7()));
    std::fs::write(&path, RULES).expect("write rules");
    path
}

/// A SERVING verifier beside `issuer`, forward auth on, after `tweak`.
pub async fn gateway_beside(
    issuer: &Harness,
    tweak: impl FnOnce(&mut VerifierConfig),
) -> VerifierHarness {
    let mut config = verifier_config(issuer.db());
    config.forward_auth_listen = Some("127.0.0.1:0".parse().expect("address"));
    tweak(&mut config);
    let verifier = VerifierHarness::spawn(config, issuer.clock.clone()).await;
    verifier.wait_for_health(ServingStatus::Serving).await;
    verifier
}

/// A `CheckRequest` shaped as Envoy sends one: lower-cased header map with
/// the pseudo-headers, the path with its query, peer addresses, and the
/// route's context extensions.
fn envoy_check(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    extensions: &[(&str, &str)],
) -> authz::CheckRequest {
    let peer = |ip: &str, port| authz::attribute_context::Peer {
        address: Some(core::Address {
            address: Some(core::address::Address::SocketAddress(core::SocketAddress {
                address: ip.into(),
                port_specifier: Some(core::socket_address::PortSpecifier::PortValue(port)),
                ..Default::default()
            })),
        }),
        ..Default::default()
    };
    let mut map: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
        .collect();
    for (k, v) in [
        (":authority", "api.example.com"),
        (":method", method),
        (":path", path),
        (":scheme", "https"),
        ("x-forwarded-proto", "https"),
        ("x-request-id", "0b7e7a44-1d3c-4c2e-9d5e-5a3f0c3e2b1a"),
    ] {
        map.insert(k.into(), v.into());
    }
    authz::CheckRequest {
        attributes: Some(authz::AttributeContext {
            source: Some(peer("10.0.0.7", 51_234)),
            destination: Some(peer("10.0.0.2", 8_080)),
            request: Some(authz::attribute_context::Request {
                time: Some(prost_types::Timestamp {
                    seconds: 1_790_000_000,
                    nanos: 0,
                }),
                http: Some(authz::attribute_context::HttpRequest {
                    id: "4224573734212797185".into(),
                    method: method.into(),
                    headers: map,
                    path: path.into(),
                    host: "api.example.com".into(),
                    scheme: "https".into(),
                    protocol: "HTTP/1.1".into(),
                    ..Default::default()
                }),
            }),
            context_extensions: extensions
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }),
    }
}

/// One `Check` answer, flattened.
#[derive(Debug)]
struct Checked {
    /// `google.rpc.Code`.
    code: i32,
    /// The HTTP status (200 for OK).
    status: u16,
    /// Headers set (upstream on OK, for the client when denied).
    headers: HashMap<String, String>,
    removed: Vec<String>,
    query_removed: Vec<String>,
    body: String,
    reason: String,
    max_age: f64,
}

impl Checked {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("JSON body: {e}: {self:?}"))
    }
}

async fn check(verifier: &VerifierHarness, request: authz::CheckRequest) -> Checked {
    let answer = AuthorizationClient::new(verifier.channel.clone())
        .check(request)
        .await
        .expect("Check answers")
        .into_inner();
    // Allowed answers carry metadata only when a proxy may keep them.
    let meta = answer
        .dynamic_metadata
        .map(|m| m.fields)
        .unwrap_or_default();
    let text = |key: &str| match meta.get(key).and_then(|v| v.kind.clone()) {
        Some(prost_types::value::Kind::StringValue(s)) => Some(s),
        None => None,
        other => panic!("{key}: {other:?}"),
    };
    let number = |key: &str| match meta.get(key).and_then(|v| v.kind.clone()) {
        Some(prost_types::value::Kind::NumberValue(n)) => n,
        None => 0.0,
        other => panic!("{key}: {other:?}"),
    };
    let flatten = |options: Vec<core::HeaderValueOption>| -> HashMap<String, String> {
        options
            .into_iter()
            .map(|o| {
                assert_eq!(
                    o.append_action,
                    HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
                    "every header overwrites what the client sent: {o:?}"
                );
                let h = o.header.expect("header");
                (h.key, h.value)
            })
            .collect()
    };
    let mut checked = Checked {
        code: answer.status.expect("status").code,
        status: 0,
        headers: HashMap::new(),
        removed: Vec::new(),
        query_removed: Vec::new(),
        body: String::new(),
        reason: text("reason").unwrap_or_default(),
        max_age: number("cache_max_age_seconds"),
    };
    match answer.http_response.expect("an HTTP response") {
        HttpResponse::OkResponse(ok) => {
            checked.status = 200;
            checked.headers = flatten(ok.headers);
            if checked.reason.is_empty() {
                // A public route's answer names no token.
                checked.reason = if checked.headers.contains_key("x-tessera-token-id") {
                    "OK".into()
                } else {
                    "PUBLIC".into()
                };
            }
            checked.removed = ok.headers_to_remove;
            checked.query_removed = ok.query_parameters_to_remove;
        }
        HttpResponse::DeniedResponse(denied) => {
            checked.status = u16::try_from(denied.status.expect("HTTP status").code).expect("code");
            checked.headers = flatten(denied.headers);
            checked.body = denied.body;
        }
    }
    checked
}

/// ext_authz, asked as Envoy asks with per-route context extensions: every
/// kind of answer, each the decision Verify makes.
async fn ext_authz_answers_checks_shaped_as_envoy_sends_them(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let metrics = free_addr();
    let verifier = gateway_beside(&issuer, |c| c.metrics_listen = Some(metrics)).await;
    let session = admin_session(&issuer).await;
    let (token, secret) = api_token(
        &issuer,
        &session,
        "envoy-reader",
        3_600,
        vec![grant("repositories/Samples", &["read"])],
    )
    .await;
    let (short, short_secret) = api_token(
        &issuer,
        &session,
        "envoy-short",
        120,
        vec![grant("repositories", &["read"])],
    )
    .await;
    let good = format!("Bearer {secret}");
    let read = [("resource", "repositories/Samples"), ("action", "read")];
    let path = "/repositories/Samples/items?page=2";

    let ok = check(
        &verifier,
        envoy_check(
            "GET",
            path,
            &[("authorization", &good), ("x-tessera-owner-id", "spoofed")],
            &read,
        ),
    )
    .await;
    assert_eq!(
        (ok.code, ok.status, ok.reason.as_str()),
        (0, 200, "OK"),
        "{ok:?}"
    );
    assert_eq!(ok.headers["x-tessera-token-id"], token.id);
    assert_eq!(ok.headers["x-tessera-owner-id"], token.owner_id);
    assert_eq!(ok.headers["x-tessera-token-type"], "api");
    let expires = token.expire_time.as_ref().expect("expiry").seconds;
    assert_eq!(
        ok.headers["x-tessera-expire-time"],
        tessera_core::duration::instant(expires)
    );
    assert!(
        ok.removed.is_empty(),
        "the credential stays unless told: {ok:?}"
    );
    assert_eq!(ok.max_age, 0.0, "a 50 ms sync interval allows no caching");

    // FME's header form, and Envoy's raw-header form of the same request.
    let fme = format!("fmetoken token={secret}");
    let ok = check(
        &verifier,
        envoy_check("GET", path, &[("authorization", &fme)], &read),
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let mut raw = envoy_check("GET", path, &[], &read);
    let http_attrs = raw
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
        .expect("http");
    let header_map = std::mem::take(&mut http_attrs.headers)
        .into_iter()
        .map(|(key, value)| core::HeaderValue {
            key,
            value: String::new(),
            raw_value: value.into_bytes(),
        })
        .chain([core::HeaderValue {
            key: "authorization".into(),
            value: String::new(),
            raw_value: good.clone().into_bytes(),
        }])
        .collect();
    http_attrs.header_map = Some(core::HeaderMap {
        headers: header_map,
    });
    let ok = check(&verifier, raw).await;
    assert_eq!(ok.status, 200, "raw headers: {ok:?}");

    let denied = check(
        &verifier,
        envoy_check(
            "POST",
            path,
            &[("authorization", &good)],
            &[("resource", "repositories/Samples"), ("action", "write")],
        ),
    )
    .await;
    assert_eq!((denied.code, denied.status), (7, 403), "{denied:?}");
    assert_eq!(denied.json()["reason"], "PERMISSION_DENIED");
    assert_eq!(
        denied.headers["www-authenticate"],
        "Bearer realm=\"tessera\", error=\"insufficient_scope\""
    );
    assert_eq!(denied.headers["content-type"], "application/json");
    assert!(!denied.headers.contains_key("x-tessera-token-id"));

    let missing = check(&verifier, envoy_check("GET", path, &[], &read)).await;
    assert_eq!((missing.code, missing.status), (16, 401), "{missing:?}");
    assert_eq!(
        missing.headers["www-authenticate"],
        "Bearer realm=\"tessera\""
    );
    assert_eq!(missing.headers["cache-control"], "no-store");

    let garbled = check(
        &verifier,
        envoy_check("GET", path, &[("authorization", "Bearer a.b.c")], &read),
    )
    .await;
    assert_eq!(
        (garbled.status, garbled.reason.as_str()),
        (401, "MALFORMED")
    );
    assert_eq!(
        garbled.headers["www-authenticate"],
        "Bearer realm=\"tessera\", error=\"invalid_token\""
    );
    assert!(
        !garbled.body.contains("a.b.c"),
        "the body never repeats the token: {}",
        garbled.body
    );

    let half = check(
        &verifier,
        envoy_check(
            "GET",
            path,
            &[("authorization", &good)],
            &[("resource", "jobs")],
        ),
    )
    .await;
    assert_eq!((half.code, half.status), (3, 400), "{half:?}");

    let no_http = AuthorizationClient::new(verifier.channel.clone())
        .check(authz::CheckRequest::default())
        .await
        .expect_err("no HTTP attributes");
    assert_eq!(no_http.code(), tonic::Code::InvalidArgument);

    // Disabled, deleted and expired tokens: 401, as soon as Verify says so.
    issuer
        .tokens()
        .disable_token(bearer(
            v1::DisableTokenRequest {
                token: by_id(&token.id),
            },
            &session,
        ))
        .await
        .expect("disable");
    verifier
        .wait_for_reason(&secret, VerifyReason::Disabled)
        .await;
    let disabled = check(
        &verifier,
        envoy_check("GET", path, &[("authorization", &good)], &read),
    )
    .await;
    assert_eq!(
        (disabled.status, disabled.reason.as_str()),
        (401, "DISABLED")
    );
    issuer
        .tokens()
        .delete_token(bearer(
            v1::DeleteTokenRequest {
                token: by_id(&token.id),
            },
            &session,
        ))
        .await
        .expect("delete");
    verifier
        .wait_for_reason(&secret, VerifyReason::Revoked)
        .await;
    let revoked = check(
        &verifier,
        envoy_check("GET", path, &[("authorization", &good)], &read),
    )
    .await;
    assert_eq!((revoked.status, revoked.reason.as_str()), (401, "REVOKED"));

    let short_bearer = format!("Bearer {short_secret}");
    let fresh = check(
        &verifier,
        envoy_check("GET", path, &[("authorization", &short_bearer)], &read),
    )
    .await;
    assert_eq!(fresh.headers["x-tessera-token-id"], short.id);
    issuer.clock.advance(chrono::Duration::seconds(240));
    verifier
        .wait_for_reason(&short_secret, VerifyReason::Expired)
        .await;
    let expired = check(
        &verifier,
        envoy_check("GET", path, &[("authorization", &short_bearer)], &read),
    )
    .await;
    assert_eq!((expired.status, expired.reason.as_str()), (401, "EXPIRED"));

    let text = scrape(metrics).await;
    for (reason, at_least) in [
        ("OK", 4),
        ("PERMISSION_DENIED", 1),
        ("DISABLED", 1),
        ("EXPIRED", 1),
    ] {
        let line = format!(
            "tessera_verifier_gateway_answers_total{{front=\"ext_authz\",reason=\"{reason}\"}} "
        );
        let count: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {line} in\n{text}"));
        assert!(count >= at_least, "{line}{count}");
    }
    issuer.stop().await;
}

/// nginx `auth_request`, Traefik ForwardAuth and Caddy `forward_auth` ask
/// over HTTP: each status code is the decision Verify makes.
async fn forward_auth_answers_proxies_over_http(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let verifier = gateway_beside(&issuer, |_| {}).await;
    let at = verifier.forward_auth.expect("forward auth is served");
    let session = admin_session(&issuer).await;
    let (token, secret) = api_token(
        &issuer,
        &session,
        "proxied",
        3_600,
        vec![grant("repositories/Samples", &["read"])],
    )
    .await;
    let bearer_value = format!("Bearer {secret}");
    let read = [
        ("Authorization", bearer_value.as_str()),
        ("X-Tessera-Resource", "repositories/Samples"),
        ("X-Tessera-Action", "read"),
    ];
    let ask = |headers: &[(&str, &str)]| {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        async move {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            http::get(at, "/auth", &headers).await
        }
    };

    let ok = ask(&read).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.header("x-tessera-token-id"), token.id);
    assert_eq!(ok.header("x-tessera-owner-id"), token.owner_id);
    assert_eq!(ok.header("x-tessera-token-type"), "api");
    assert_eq!(
        ok.header("x-tessera-expire-time"),
        tessera_core::duration::instant(token.expire_time.as_ref().expect("expiry").seconds)
    );
    assert_eq!(ok.header("x-tessera-reason"), "OK");
    assert_eq!(ok.header("cache-control"), "no-store");

    let fme_value = format!("fmetoken token={secret}");
    let fme = ask(&[("Authorization", fme_value.as_str())]).await;
    assert_eq!(fme.status, 200, "FME's header form, validity only");

    let denied = ask(&[
        ("Authorization", bearer_value.as_str()),
        ("X-Tessera-Resource", "repositories/Samples"),
        ("X-Tessera-Action", "run"),
    ])
    .await;
    assert_eq!(denied.status, 403, "a valid token without the action");
    assert_eq!(denied.header("x-tessera-reason"), "PERMISSION_DENIED");
    assert_eq!(denied.json()["reason"], "PERMISSION_DENIED");
    assert_eq!(
        denied.json()["message"],
        "token lacks repositories/Samples:run"
    );
    assert!(
        !denied.headers.contains_key("x-tessera-token-id"),
        "only OK names the token upstream"
    );

    let none = ask(&[]).await;
    assert_eq!(none.status, 401, "no credential");
    assert_eq!(none.header("www-authenticate"), "Bearer realm=\"tessera\"");
    assert_eq!(none.header("x-tessera-reason"), "MALFORMED");

    let half = ask(&[
        ("Authorization", bearer_value.as_str()),
        ("X-Tessera-Resource", "repositories/Samples"),
    ])
    .await;
    assert_eq!(
        half.status, 400,
        "a resource without an action is a bad question"
    );

    issuer
        .tokens()
        .disable_token(bearer(
            v1::DisableTokenRequest {
                token: by_id(&token.id),
            },
            &session,
        ))
        .await
        .expect("disable");
    verifier
        .wait_for_reason(&secret, VerifyReason::Disabled)
        .await;
    let disabled = ask(&read).await;
    assert_eq!(disabled.status, 401, "a disabled token");
    assert_eq!(disabled.header("x-tessera-reason"), "DISABLED");
    assert_eq!(
        disabled.header("www-authenticate"),
        "Bearer realm=\"tessera\", error=\"invalid_token\""
    );
    issuer.stop().await;
}

on_both_backends!(
    ext_authz_answers_checks_shaped_as_envoy_sends_them,
    forward_auth_answers_proxies_over_http,
);

/// A rules case: method, path, credential header, context extensions, and
/// the status and reason both fronts must give.
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    u16,
    &'a str,
);

/// With a rules file, both fronts ask what the route needs; requests no
/// route matches are refused; the `fmetoken` parameter is read when on, and
/// the credential kept from the upstream when asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_rules_decide_for_both_fronts() {
    let issuer = Harness::start(Backend::Sqlite).await;
    let rules = rules_file();
    let verifier = gateway_beside(&issuer, |c| {
        c.route_rules = Some(rules.clone());
        c.fmetoken_query = true;
        c.strip_credential = true;
        c.sync_interval = std::time::Duration::from_secs(5);
    })
    .await;
    let at = verifier.forward_auth.expect("forward auth");
    let session = admin_session(&issuer).await;
    let (token, secret) = api_token(
        &issuer,
        &session,
        "ruled",
        3_600,
        vec![grant("repositories/Samples", &["read"])],
    )
    .await;
    let good = format!("Bearer {secret}");

    let query_path = format!("/repositories/Samples/files/a.txt?fmetoken={secret}&x=1");
    let cases: Vec<Case> = vec![
        ("GET", "/healthz", "", &[], 200, "PUBLIC"),
        (
            "GET",
            "/repositories/Samples/files/a.txt",
            &good,
            &[],
            200,
            "OK",
        ),
        ("HEAD", "/repositories/Samples", &good, &[], 200, "OK"),
        (
            "GET",
            "/repositories/Other/files",
            &good,
            &[],
            403,
            "PERMISSION_DENIED",
        ),
        (
            "POST",
            "/repositories/Samples/items/a",
            &good,
            &[],
            403,
            "PERMISSION_DENIED",
        ),
        ("GET", "/whoami", &good, &[], 200, "OK"),
        ("GET", "/whoami", "", &[], 401, "MALFORMED"),
        ("GET", "/jobs/J1", &good, &[], 403, "NO_ROUTE"),
        (
            "DELETE",
            "/repositories/Samples",
            &good,
            &[],
            403,
            "NO_ROUTE",
        ),
        (
            "GET",
            "/repositories/a%2F..%2FSamples/x",
            &good,
            &[],
            400,
            "BAD_PATH",
        ),
        ("GET", "/repositories/../jobs", &good, &[], 400, "BAD_PATH"),
        ("GET", &query_path, "", &[], 200, "OK"),
    ];
    for (method, path, credential, extensions, status, reason) in cases {
        let extensions: &[(&str, &str)] = extensions;
        let mut headers = vec![];
        if !credential.is_empty() {
            headers.push(("authorization", credential));
        }
        let envoy = check(&verifier, envoy_check(method, path, &headers, extensions)).await;
        assert_eq!(
            (envoy.status, envoy.reason.as_str()),
            (status, reason),
            "ext_authz {method} {path}: {envoy:?}"
        );

        let mut forwarded = vec![("X-Forwarded-Method", method), ("X-Forwarded-Uri", path)];
        if !credential.is_empty() {
            forwarded.push(("Authorization", credential));
        }
        let proxied = http::get(at, "/auth", &forwarded).await;
        assert_eq!(
            (proxied.status, proxied.header("x-tessera-reason")),
            (status, reason),
            "forward auth {method} {path}: {proxied:?}"
        );
        if status != 200 {
            assert_eq!(proxied.json()["reason"], reason);
            assert!(!proxied.body.contains(&secret), "{proxied:?}");
            assert!(!envoy.body.contains(&secret), "{envoy:?}");
        }
    }

    // Envoy's per-route question wins over the rules; forward auth's
    // headers do not, since a client may have sent them.
    let extensions = [("resource", "repositories/Samples"), ("action", "read")];
    let envoy = check(
        &verifier,
        envoy_check("GET", "/jobs/J1", &[("authorization", &good)], &extensions),
    )
    .await;
    assert_eq!(envoy.status, 200, "{envoy:?}");
    let slipped = http::get(
        at,
        "/auth",
        &[
            ("X-Forwarded-Uri", "/jobs/J1"),
            ("Authorization", &good),
            ("X-Tessera-Resource", "repositories/Samples"),
            ("X-Tessera-Action", "read"),
        ],
    )
    .await;
    assert_eq!(
        slipped.header("x-tessera-reason"),
        "NO_ROUTE",
        "{slipped:?}"
    );
    let two_uris = http::get(
        at,
        "/auth",
        &[
            ("X-Forwarded-Uri", "/healthz"),
            ("X-Original-URI", "/jobs/J1"),
            ("Authorization", &good),
        ],
    )
    .await;
    assert_eq!(two_uris.status, 400, "two URIs that disagree: {two_uris:?}");

    // nginx sends the original request as X-Original-Method / -URI.
    let nginx_style = http::get(
        at,
        "/auth",
        &[
            ("X-Original-Method", "POST"),
            ("X-Original-URI", "/repositories/Samples/items/a"),
            ("Authorization", &good),
        ],
    )
    .await;
    assert_eq!(nginx_style.status, 403, "{nginx_style:?}");

    // What ext_authz changes upstream: the credential goes (as asked), the
    // query credential goes, a public route carries no identity at all.
    let ok = check(
        &verifier,
        envoy_check(
            "GET",
            "/repositories/Samples/x",
            &[("authorization", &good)],
            &[],
        ),
    )
    .await;
    assert_eq!(ok.removed, ["authorization"]);
    assert_eq!(ok.headers["x-tessera-token-id"], token.id);
    assert_eq!(ok.max_age, 5.0, "one sync interval, well before expiry");
    let by_query = check(&verifier, envoy_check("GET", &query_path, &[], &[])).await;
    assert_eq!(by_query.query_removed, ["fmetoken"]);
    assert_eq!(by_query.headers["x-tessera-owner-id"], token.owner_id);
    // An app's own Basic header does not hide the query credential; with
    // a Bearer header, the header is used and the parameter still goes.
    let basic = check(
        &verifier,
        envoy_check(
            "GET",
            &query_path,
            &[("authorization", "Basic YWxpY2U6cHc=")],
            &[],
        ),
    )
    .await;
    assert_eq!(
        (basic.status, basic.query_removed.as_slice()),
        (200, ["fmetoken".to_owned()].as_slice())
    );
    let both = check(
        &verifier,
        envoy_check(
            "GET",
            "/repositories/Samples/x?fmetoken=not-a-token",
            &[("authorization", &good)],
            &[],
        ),
    )
    .await;
    assert_eq!(both.status, 200, "{both:?}");
    assert_eq!(both.query_removed, ["fmetoken"]);
    let public = check(
        &verifier,
        envoy_check("GET", "/healthz", &[("x-tessera-owner-id", "spoofed")], &[]),
    )
    .await;
    assert!(public.headers.is_empty(), "{public:?}");
    for name in [
        "x-tessera-token-id",
        "x-tessera-owner-id",
        "x-tessera-token-type",
        "x-tessera-expire-time",
    ] {
        assert!(
            public.removed.iter().any(|r| r == name),
            "{name}: {public:?}"
        );
    }
    let proxied = http::get(
        at,
        "/auth",
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/repositories/Samples/x"),
            ("Authorization", &good),
        ],
    )
    .await;
    assert_eq!(
        proxied.header("cache-control"),
        "private, max-age=5",
        "{proxied:?}"
    );
    let _ = std::fs::remove_file(rules);
    issuer.stop().await;
}

/// A verifier whose view is not loaded answers 503 on both fronts (fail
/// closed), with a retry hint and nothing a proxy may keep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_view_is_503_on_both_fronts() {
    let db = TestDb::new(Backend::Sqlite).await;
    let clock = std::sync::Arc::new(tessera_core::ManualClock::new(crate::support::now()));
    let mut config = verifier_config(&db);
    config.forward_auth_listen = Some("127.0.0.1:0".parse().expect("address"));
    let verifier = VerifierHarness::spawn(config, clock).await;
    let at = verifier.forward_auth.expect("forward auth");
    let token = [("authorization", "Bearer a.b.c")];
    let envoy = check(&verifier, envoy_check("GET", "/x", &token, &[])).await;
    assert_eq!(
        (envoy.code, envoy.status, envoy.reason.as_str()),
        (14, 503, "STALE")
    );
    assert_eq!(envoy.headers["retry-after"], "1");
    assert_eq!(envoy.headers["cache-control"], "no-store");
    let proxied: Reply = http::get(at, "/auth", &token).await;
    assert_eq!(proxied.status, 503);
    assert_eq!(proxied.header("retry-after"), "1");
    assert_eq!(proxied.header("cache-control"), "no-store");
}

/// Paths an application could read as another path than the one the
/// rules matched, one for each way (an encoded `/` under `**`, `{x}` and
/// `*`; empty segments wherever they are; a `\`, an encoded dot segment, an
/// encoded NUL): the token holds everything those rules would ask, yet
/// both fronts refuse each with 400 `BAD_PATH`, the same answer, with or
/// without rules, before any token is looked at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_outside_the_normal_form_are_400_on_both_fronts() {
    let issuer = Harness::start(Backend::Sqlite).await;
    let rules = rules_file();
    let ruled = gateway_beside(&issuer, |c| c.route_rules = Some(rules.clone())).await;
    let unruled = gateway_beside(&issuer, |_| {}).await;
    let session = admin_session(&issuer).await;
    let (_, secret) = api_token(
        &issuer,
        &session,
        "narrow",
        3_600,
        vec![
            grant("repositories/Samples", &["read"]),
            grant("jobs", &["read"]),
        ],
    )
    .await;
    let good = format!("Bearer {secret}");
    // Each would be allowed if its route matched it: the refusal is the
    // path's doing, not the token's.
    for fits in [
        "/repositories/Samples/a",
        "/repositories/Samples/x",
        "/jobs/a/status",
    ] {
        let envoy = check(
            &ruled,
            envoy_check("GET", fits, &[("authorization", &good)], &[]),
        )
        .await;
        assert_eq!(envoy.status, 200, "{fits}: {envoy:?}");
    }
    let read = [("resource", "repositories/Samples"), ("action", "read")];
    for path in [
        "/repositories/Samples/a%2F..%2F..%2Fadmin",
        "/repositories/Samples/a%2f..%2f..%2fadmin",
        "/repositories/a%2F..%2FSamples/x",
        "/jobs/a%2Fb/status",
        "/repositories//x",
        "/repositories/Samples//x",
        "/repositories/Samples/",
        "/repositories/Samples/a%5C..%5Cadmin",
        "/repositories/Samples/%2E%2E/x",
        "/repositories/Samples/a%00b",
    ] {
        for (front, verifier, extensions) in [
            ("rules", &ruled, &[][..]),
            ("Envoy's own question", &unruled, &read[..]),
        ] {
            let envoy = check(
                verifier,
                envoy_check("GET", path, &[("authorization", &good)], extensions),
            )
            .await;
            assert_eq!(
                (envoy.code, envoy.status, envoy.reason.as_str()),
                (3, 400, "BAD_PATH"),
                "ext_authz, {front}, {path}: {envoy:?}"
            );
            assert_eq!(envoy.headers["x-tessera-reason"], "BAD_PATH");
            assert_eq!(envoy.headers["cache-control"], "no-store");
            assert_eq!(envoy.headers["content-type"], "application/json");
            assert_eq!(envoy.json()["reason"], "BAD_PATH");
            assert!(!envoy.headers.contains_key("www-authenticate"));
        }
        let at = ruled.forward_auth.expect("forward auth");
        for uri in ["X-Forwarded-Uri", "X-Original-URI"] {
            let proxied = http::get(
                at,
                "/auth",
                &[
                    ("X-Forwarded-Method", "GET"),
                    (uri, path),
                    ("Authorization", &good),
                ],
            )
            .await;
            assert_eq!(
                (proxied.status, proxied.header("x-tessera-reason")),
                (400, "BAD_PATH"),
                "forward auth, {uri}: {path}: {proxied:?}"
            );
            assert_eq!(proxied.header("cache-control"), "no-store");
            assert_eq!(proxied.json()["reason"], "BAD_PATH");
            assert!(proxied.header("x-tessera-token-id").is_empty());
        }
    }
    let _ = std::fs::remove_file(rules);
    issuer.stop().await;
}

/// With `--fmetoken-query`, a public route's allowed answer takes the
/// parameter out of the upstream request, as every other allowed answer
/// does: it is a credential in a URL, whether or not it was read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_route_drops_the_query_credential_upstream() {
    let issuer = Harness::start(Backend::Sqlite).await;
    let rules = rules_file();
    let verifier = gateway_beside(&issuer, |c| {
        c.route_rules = Some(rules.clone());
        c.fmetoken_query = true;
    })
    .await;
    let session = admin_session(&issuer).await;
    let (_, secret) = api_token(&issuer, &session, "in-a-url", 3_600, vec![]).await;

    let public = check(
        &verifier,
        envoy_check("GET", &format!("/healthz?fmetoken={secret}"), &[], &[]),
    )
    .await;
    assert_eq!(
        (public.code, public.status, public.reason.as_str()),
        (0, 200, "PUBLIC"),
        "{public:?}"
    );
    assert_eq!(public.query_removed, ["fmetoken"], "{public:?}");
    assert!(public.headers.is_empty(), "{public:?}");
    // Not even a token: still a credential-shaped thing in a URL.
    let junk = check(
        &verifier,
        envoy_check("GET", "/healthz?a=1&fmetoken=%zz", &[], &[]),
    )
    .await;
    assert_eq!(junk.query_removed, ["fmetoken"], "{junk:?}");
    let whoami = check(
        &verifier,
        envoy_check("GET", &format!("/whoami?fmetoken={secret}"), &[], &[]),
    )
    .await;
    assert_eq!(
        (whoami.status, whoami.query_removed.as_slice()),
        (200, ["fmetoken".to_owned()].as_slice()),
        "{whoami:?}"
    );
    // Nothing to take out: the upstream path is left alone.
    let plain = check(&verifier, envoy_check("GET", "/healthz?a=1", &[], &[])).await;
    assert!(plain.query_removed.is_empty(), "{plain:?}");
    let _ = std::fs::remove_file(rules);
    issuer.stop().await;
}

/// Only an allowed answer may be kept. With a sync interval of a second an
/// allowed answer says `private, max-age=1`, but every refusal, those a
/// later change lifts (PERMISSION_DENIED, DISABLED) and those made before
/// a token check (no credential, NO_ROUTE, BAD_PATH), says `no-store` on
/// both fronts, so a token enabled again passes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_no_store_so_an_enabled_token_passes_at_once() {
    let issuer = Harness::start(Backend::Sqlite).await;
    let rules = rules_file();
    let verifier = gateway_beside(&issuer, |c| {
        c.route_rules = Some(rules.clone());
        c.sync_interval = std::time::Duration::from_secs(1);
    })
    .await;
    let at = verifier.forward_auth.expect("forward auth");
    let session = admin_session(&issuer).await;
    let (token, secret) = api_token(
        &issuer,
        &session,
        "kept",
        3_600,
        vec![grant("repositories/Samples", &["read"])],
    )
    .await;
    let good = format!("Bearer {secret}");
    let ask = |method: &'static str, path: &'static str, credential: bool| {
        let verifier = &verifier;
        let good = good.clone();
        async move {
            let mut headers = vec![];
            if credential {
                headers.push(("authorization", good.as_str()));
            }
            let envoy = check(verifier, envoy_check(method, path, &headers, &[])).await;
            let mut forwarded = vec![("X-Forwarded-Method", method), ("X-Forwarded-Uri", path)];
            if credential {
                forwarded.push(("Authorization", good.as_str()));
            }
            let proxied = http::get(at, "/auth", &forwarded).await;
            (envoy, proxied)
        }
    };
    let refused = |what: &str, envoy: &Checked, proxied: &Reply, status: u16, reason: &str| {
        assert_eq!(
            (envoy.status, envoy.reason.as_str()),
            (status, reason),
            "ext_authz, {what}: {envoy:?}"
        );
        assert_eq!(
            envoy.headers["cache-control"], "no-store",
            "ext_authz, {what}: {envoy:?}"
        );
        assert_eq!(envoy.max_age, 0.0, "ext_authz, {what}: {envoy:?}");
        assert_eq!(
            (proxied.status, proxied.header("x-tessera-reason")),
            (status, reason),
            "forward auth, {what}: {proxied:?}"
        );
        assert_eq!(
            proxied.header("cache-control"),
            "no-store",
            "forward auth, {what}: {proxied:?}"
        );
    };
    let allowed = |what: &str, envoy: &Checked, proxied: &Reply| {
        assert_eq!(envoy.status, 200, "ext_authz, {what}: {envoy:?}");
        assert_eq!(envoy.max_age, 1.0, "ext_authz, {what}: {envoy:?}");
        assert_eq!(proxied.status, 200, "forward auth, {what}: {proxied:?}");
        assert_eq!(
            proxied.header("cache-control"),
            "private, max-age=1",
            "forward auth, {what}: {proxied:?}"
        );
    };
    let read = "/repositories/Samples/x";

    let (envoy, proxied) = ask("GET", read, true).await;
    allowed("a valid token", &envoy, &proxied);
    let (envoy, proxied) = ask("POST", "/repositories/Samples/items/a", true).await;
    refused(
        "without the action",
        &envoy,
        &proxied,
        403,
        "PERMISSION_DENIED",
    );
    let (envoy, proxied) = ask("GET", read, false).await;
    refused("no credential", &envoy, &proxied, 401, "MALFORMED");
    let (envoy, proxied) = ask("GET", "/jobs/J1", true).await;
    refused("no route", &envoy, &proxied, 403, "NO_ROUTE");
    let (envoy, proxied) = ask("GET", "/repositories/Samples//x", true).await;
    refused("a bad path", &envoy, &proxied, 400, "BAD_PATH");

    issuer
        .tokens()
        .disable_token(bearer(
            v1::DisableTokenRequest {
                token: by_id(&token.id),
            },
            &session,
        ))
        .await
        .expect("disable");
    verifier
        .wait_for_reason(&secret, VerifyReason::Disabled)
        .await;
    let (envoy, proxied) = ask("GET", read, true).await;
    refused("a disabled token", &envoy, &proxied, 401, "DISABLED");

    issuer
        .tokens()
        .enable_token(bearer(
            v1::EnableTokenRequest {
                token: by_id(&token.id),
            },
            &session,
        ))
        .await
        .expect("enable");
    verifier.wait_for_reason(&secret, VerifyReason::Ok).await;
    let (envoy, proxied) = ask("GET", read, true).await;
    allowed("enabled again", &envoy, &proxied);
    let _ = std::fs::remove_file(rules);
    issuer.stop().await;
}

/// A rules file with a mistake stops the verifier at start, naming the
/// file, the route and the mistake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rules_file_stops_the_start() {
    let db = TestDb::new(Backend::Sqlite).await;
    let path =
        std::env::temp_dir().join(format!("tessera-bad-routes-{}.toml", uuid::Uuid::now_v7()));
    std::fs::write(
        &path,
        "[[route]]\npath = \"/a\"\n\n[[route]]\npath = \"/jobs/{id}\"\nresource = \"jobs/{job}\"\naction = \"run\"\n",
    )
    .expect("write");
    let mut config = verifier_config(&db);
    config.route_rules = Some(path.clone());
    let clock = std::sync::Arc::new(tessera_core::ManualClock::new(crate::support::now()));
    let error = VerifierServer::bind(config, clock)
        .await
        .expect_err("a bad rules file is refused");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("route 2"), "{message}");
    assert!(message.contains("{job}"), "{message}");
    let _ = std::fs::remove_file(&path);

    let mut config = verifier_config(&db);
    config.route_rules = Some(path.clone());
    let clock = std::sync::Arc::new(tessera_core::ManualClock::new(crate::support::now()));
    let missing = VerifierServer::bind(config, clock)
        .await
        .expect_err("a missing rules file is refused")
        .to_string();
    assert!(missing.contains("cannot read route rules"), "{missing}");
}
