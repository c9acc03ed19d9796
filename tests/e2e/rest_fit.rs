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

/// A SERVING verifier beside `issuer`, with forward auth on a port of its own.
async fn forward_auth_beside(issuer: &Harness) -> (VerifierHarness, std::net::SocketAddr) {
    let mut config = crate::support::verifier::verifier_config(issuer.db());
    config.forward_auth_listen = Some("127.0.0.1:0".parse().expect("address"));
    let verifier = VerifierHarness::spawn(config, issuer.clock.clone()).await;
    verifier
        .wait_for_health(tonic_health::pb::health_check_response::ServingStatus::Serving)
        .await;
    let at = verifier.forward_auth.expect("forward auth is served");
    (verifier, at)
}

/// One HTTP/1.1 request to the forward-auth port, as a proxy sends it:
/// the status code and the response headers (lower-cased names).
async fn ask(
    addr: std::net::SocketAddr,
    headers: &[(&str, &str)],
) -> (u16, std::collections::HashMap<String, String>) {
    get(addr, "/auth", headers).await
}

/// One HTTP/1.1 GET of `path`: the status code and the response headers.
async fn get(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, std::collections::HashMap<String, String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: tessera\r\nConnection: close\r\n");
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
    let (verifier, at) = forward_auth_beside(&issuer).await;
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

/// The forward-auth port behind a real nginx (`auth_request`), when nginx
/// is installed: the decision reaches the client, and the owner reaches
/// the upstream service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_lets_through_only_what_verify_allows() {
    use crate::support::grant;
    use crate::support::lifecycle::{admin_session, api_token};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let installed = std::process::Command::new("nginx")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!(
            "SKIPPED rest_fit::nginx_auth_request_lets_through_only_what_verify_allows: \
             nginx is not installed (apt-get install nginx-light)"
        );
        return;
    }
    let issuer = Harness::start(Backend::Sqlite).await;
    let (_verifier, auth) = forward_auth_beside(&issuer).await;

    // The upstream service: answers 200 and records the owner it was told.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let upstream_addr = upstream.local_addr().expect("address");
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = upstream.accept().await {
            let mut buf = vec![0; 8192];
            let n = stream.read(&mut buf).await.unwrap_or(0);
            let text = String::from_utf8_lossy(&buf[..n]).to_lowercase();
            let owner = text
                .lines()
                .find_map(|l| l.strip_prefix("x-tessera-owner-id:"))
                .unwrap_or("")
                .trim()
                .to_owned();
            let _ = seen_tx.send(owner);
            let _ = stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nupstream",
                )
                .await;
        }
    });

    let dir = std::env::temp_dir().join(format!("tessera-nginx-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(dir.join("tmp")).expect("nginx dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let d = dir.display();
    let conf = format!(
        // One process, so killing it (even on a failed assertion) leaves
        // no worker behind holding the test's output open.
        "master_process off;\ndaemon off;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n access_log off;\n client_body_temp_path {d}/tmp;\n proxy_temp_path {d}/tmp;\n\
         fastcgi_temp_path {d}/tmp;\n uwsgi_temp_path {d}/tmp;\n scgi_temp_path {d}/tmp;\n\
         server {{\n  listen {port};\n\
           location /repositories/ {{\n   auth_request /_tessera;\n\
             auth_request_set $owner $upstream_http_x_tessera_owner_id;\n\
             proxy_set_header X-Tessera-Owner-Id $owner;\n   proxy_pass http://{upstream_addr}/;\n  }}\n\
           location = /_tessera {{\n   internal;\n   proxy_pass http://{auth}/auth;\n\
             proxy_pass_request_body off;\n   proxy_set_header Content-Length \"\";\n\
             proxy_set_header X-Tessera-Resource \"repositories\";\n\
             proxy_set_header X-Tessera-Action \"read\";\n  }}\n }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
    let mut nginx = tokio::process::Command::new("nginx")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx starts");
    let started = tokio::time::Instant::now();
    while tokio::net::TcpStream::connect(port).await.is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "nginx listens: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let session = admin_session(&issuer).await;
    let (reader, reader_secret) = api_token(
        &issuer,
        &session,
        "reader",
        3_600,
        vec![grant("repositories", &["read"])],
    )
    .await;
    let (_, other_secret) = api_token(
        &issuer,
        &session,
        "other",
        3_600,
        vec![grant("jobs", &["read"])],
    )
    .await;

    let (status, _) = get(port, "/repositories/Samples", &[]).await;
    assert_eq!(status, 401, "no token: nginx passes on the 401");
    let other = format!("Bearer {other_secret}");
    let (status, _) = get(port, "/repositories/Samples", &[("Authorization", &other)]).await;
    assert_eq!(status, 403, "a token without repositories:read");
    let good = format!("Bearer {reader_secret}");
    let (status, _) = get(port, "/repositories/Samples", &[("Authorization", &good)]).await;
    assert_eq!(status, 200, "a token with the grant reaches the upstream");
    assert_eq!(seen.recv().await.as_deref(), Some(reader.owner_id.as_str()));
    assert!(
        seen.try_recv().is_err(),
        "refused requests never reached the upstream"
    );

    let _ = nginx.start_kill();
    let _ = nginx.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
    issuer.stop().await;
}
