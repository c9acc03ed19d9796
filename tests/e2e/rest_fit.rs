//! What a REST gateway needs: Verify reads the forwarded `Authorization`
//! header when the body carries no token, and token names stay reachable by
//! their REST address.

use crate::on_both_backends;
use crate::support::verifier::VerifierHarness;
use crate::support::{Backend, Harness, expect_code, violated_fields};
use tessera_proto::v1::{self, VerifyReason};
use tonic::Code;

async fn verify_reads_the_forwarded_authorization_header(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let created = issuer
        .create_token(v1::CreateTokenRequest {
            name: "gateway".into(),
            ..Default::default()
        })
        .await
        .expect("create");
    let with_header = |value: String| {
        let mut request = tonic::Request::new(v1::VerifyRequest::default());
        request
            .metadata_mut()
            .insert("authorization", value.parse().expect("header"));
        request
    };
    for value in [
        format!("Bearer {}", created.secret),
        format!("fmetoken token={}", created.secret),
    ] {
        let answer = verifier
            .client()
            .verify(with_header(value))
            .await
            .expect("answers")
            .into_inner();
        assert_eq!(answer.reason, VerifyReason::Ok as i32, "{answer:?}");
    }
    // The body wins when it has a token; with neither, it is MALFORMED.
    let mut both = with_header("Bearer not-a-token".into());
    both.get_mut().token = created.secret.clone();
    let answer = verifier
        .client()
        .verify(both)
        .await
        .expect("answers")
        .into_inner();
    assert_eq!(answer.reason, VerifyReason::Ok as i32);
    let none = verifier
        .client()
        .verify(v1::VerifyRequest::default())
        .await
        .expect("answers")
        .into_inner();
    assert_eq!(none.reason, VerifyReason::Malformed as i32);
    issuer.stop().await;
}

async fn new_token_names_may_not_hold_slashes_or_colons(backend: Backend) {
    let issuer = Harness::start(backend).await;
    for name in ["ci/nightly", "build:1"] {
        let status = expect_code(
            issuer
                .create_token(v1::CreateTokenRequest {
                    name: name.into(),
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["name"], "{status:?}");
    }
    issuer.stop().await;
}

on_both_backends!(
    verify_reads_the_forwarded_authorization_header,
    new_token_names_may_not_hold_slashes_or_colons,
    forward_auth_answers_proxies_over_http,
);

/// One HTTP/1.1 request to the forward-auth port, as a proxy sends it:
/// the status code and the response headers (lower-cased names).
async fn ask(
    addr: std::net::SocketAddr,
    headers: &[(&str, &str)],
) -> (u16, std::collections::HashMap<String, String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request = String::from("GET /auth HTTP/1.1\r\nHost: tessera\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.expect("read");
    let (head, _) = reply.split_once("\r\n\r\n").expect("a whole response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

/// nginx `auth_request`, Traefik ForwardAuth and Caddy `forward_auth` ask
/// over HTTP: each status code is the decision Verify makes.
async fn forward_auth_answers_proxies_over_http(backend: Backend) {
    use crate::support::lifecycle::{admin_session, api_token};
    use crate::support::{bearer, by_id, grant};
    let issuer = Harness::start(backend).await;
    let mut config = crate::support::verifier::verifier_config(issuer.db());
    config.forward_auth_listen = Some("127.0.0.1:0".parse().expect("address"));
    let verifier = VerifierHarness::spawn(config, issuer.clock.clone()).await;
    verifier
        .wait_for_health(tonic_health::pb::health_check_response::ServingStatus::Serving)
        .await;
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

    let (status, headers) = ask(at, &read).await;
    assert_eq!(status, 200, "{headers:?}");
    assert_eq!(headers["x-tessera-token-id"], token.id);
    assert_eq!(headers["x-tessera-owner-id"], token.owner_id);
    assert_eq!(headers["x-tessera-token-type"], "api");
    assert_eq!(headers["x-tessera-reason"], "OK");

    let fme_value = format!("fmetoken token={secret}");
    let (status, _) = ask(at, &[("Authorization", fme_value.as_str())]).await;
    assert_eq!(status, 200, "FME's header form, validity only");

    let (status, headers) = ask(
        at,
        &[
            ("Authorization", bearer_value.as_str()),
            ("X-Tessera-Resource", "repositories/Samples"),
            ("X-Tessera-Action", "run"),
        ],
    )
    .await;
    assert_eq!(status, 403, "a valid token without the action");
    assert_eq!(headers["x-tessera-reason"], "PERMISSION_DENIED");
    assert!(
        !headers.contains_key("x-tessera-token-id"),
        "only OK names the token upstream"
    );

    let (status, headers) = ask(at, &[]).await;
    assert_eq!(status, 401, "no credential");
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"tessera\"");
    assert_eq!(headers["x-tessera-reason"], "MALFORMED");

    let (status, _) = ask(
        at,
        &[
            ("Authorization", bearer_value.as_str()),
            ("X-Tessera-Resource", "repositories/Samples"),
        ],
    )
    .await;
    assert_eq!(
        status, 400,
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
    let (status, headers) = ask(at, &read).await;
    assert_eq!(status, 401, "a disabled token");
    assert_eq!(headers["x-tessera-reason"], "DISABLED");
    issuer.stop().await;
}
