//! Real proxies in front of the verifier's forward-auth port: nginx
//! (`auth_request`) and Caddy (`forward_auth`), from Debian's packages,
//! started on random ports with a tiny upstream behind them. Each test says
//! SKIPPED when its proxy is not installed; `.ci/run` installs both.
//!
//! Through either proxy, with the verifier's route rules deciding: no token
//! is 401 with a challenge, a missing permission 403, a valid token reaches
//! the upstream with its identity and without its credential (and a
//! client's made-up identity never does), a path outside the verifier's
//! normal form (an encoded `/`, an empty segment), which both proxies pass
//! on raw, never reaches it, refusals reach the client as `no-store`, and a
//! token disabled through the issuer is refused within a second.

use crate::gateways::{gateway_beside, rules_file};
use crate::support::http;
use crate::support::lifecycle::{admin_session, api_token};
use crate::support::{Backend, Harness, bearer, by_id, grant};
use std::net::SocketAddr;
use std::time::Duration;
use tessera_proto::v1;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// What the upstream was told about one request.
#[derive(Debug)]
struct Seen {
    owner: String,
    token_id: String,
    authorization: bool,
}

/// A tiny upstream: answers 200 to anything and reports what it saw.
async fn upstream() -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = vec![0; 16_384];
            let n = stream.read(&mut buf).await.unwrap_or(0);
            let text = String::from_utf8_lossy(&buf[..n]).to_lowercase();
            let value = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}:")))
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            };
            let _ = tx.send(Seen {
                owner: value("x-tessera-owner-id"),
                token_id: value("x-tessera-token-id"),
                authorization: text.lines().any(|l| l.starts_with("authorization:")),
            });
            let _ = stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nupstream",
                )
                .await;
        }
    });
    (addr, rx)
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// The proxy's program, on PATH or in /usr/sbin (where Debian puts
/// nginx, off a non-root PATH), when it runs.
fn installed(program: &str, arg: &str) -> Option<String> {
    [program.to_owned(), format!("/usr/sbin/{program}")]
        .into_iter()
        .find(|p| {
            std::process::Command::new(p)
                .arg(arg)
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

async fn wait_listening(addr: SocketAddr, what: &str, log: &std::path::Path) {
    let started = tokio::time::Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{what} listens: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How a proxy hands the verifier's refusals to the client.
struct Relays {
    name: &'static str,
    /// The status a verifier's 400 reaches the client as: nginx's
    /// `auth_request` turns everything but 401 and 403 into 500.
    bad_request: u16,
}

/// The same requests through whichever proxy listens on `proxy`.
async fn through(
    proxy: SocketAddr,
    issuer: &Harness,
    mut seen: mpsc::UnboundedReceiver<Seen>,
    relays: Relays,
) {
    let name = relays.name;
    let session = admin_session(issuer).await;
    let (reader, reader_secret) = api_token(
        issuer,
        &session,
        "reader",
        3_600,
        vec![grant("repositories/Samples", &["read"])],
    )
    .await;
    let (_, other_secret) = api_token(
        issuer,
        &session,
        "other",
        3_600,
        vec![grant("jobs", &["read"])],
    )
    .await;
    let path = "/repositories/Samples/files/a.txt";

    let none = http::get(proxy, path, &[]).await;
    assert_eq!(none.status, 401, "{name}: no token: {none:?}");
    assert!(
        none.header("www-authenticate")
            .starts_with("Bearer realm=\"tessera\""),
        "{name}: the challenge reaches the client: {none:?}"
    );
    let other = format!("Bearer {other_secret}");
    let denied = http::get(proxy, path, &[("Authorization", &other)]).await;
    assert_eq!(
        denied.status, 403,
        "{name}: without repositories/Samples:read"
    );
    for refused in [&none, &denied] {
        assert_eq!(
            refused.header("cache-control"),
            "no-store",
            "{name}: a refusal is not kept: {refused:?}"
        );
    }

    let good = format!("Bearer {reader_secret}");
    let ok = http::get(
        proxy,
        path,
        &[("Authorization", &good), ("X-Tessera-Owner-Id", "spoofed")],
    )
    .await;
    assert_eq!(ok.status, 200, "{name}: {ok:?}");
    let upstream = seen.recv().await.expect("the upstream was reached");
    assert_eq!(upstream.owner, reader.owner_id, "{name}: {upstream:?}");
    assert_eq!(upstream.token_id, reader.id, "{name}: {upstream:?}");
    assert!(
        !upstream.authorization,
        "{name}: the credential stays at the proxy"
    );

    let public = http::get(proxy, "/healthz", &[("X-Tessera-Owner-Id", "spoofed")]).await;
    assert_eq!(public.status, 200, "{name}: a public route: {public:?}");
    let upstream = seen.recv().await.expect("the upstream was reached");
    assert_eq!(
        upstream.owner, "",
        "{name}: no made-up identity: {upstream:?}"
    );

    // Both proxies pass these on raw, so the application would get them;
    // the token holds all that the routes they would match ask.
    let (_, wide_secret) = api_token(
        issuer,
        &session,
        "wide",
        3_600,
        vec![
            grant("repositories/Samples", &["read"]),
            grant("jobs", &["read"]),
        ],
    )
    .await;
    let wide = format!("Bearer {wide_secret}");
    let fits = http::get(proxy, "/jobs/a/status", &[("Authorization", &wide)]).await;
    assert_eq!(fits.status, 200, "{name}: a plain * segment: {fits:?}");
    let _ = seen.recv().await.expect("the upstream was reached");
    for path in [
        "/repositories/Samples/a%2F..%2F..%2Fadmin",
        "/jobs/a%2Fb/status",
        "/repositories/Samples//x",
        "/repositories//x",
    ] {
        let bad = http::get(proxy, path, &[("Authorization", &wide)]).await;
        assert_eq!(
            (bad.status, bad.header("x-tessera-reason")),
            (relays.bad_request, "BAD_PATH"),
            "{name}: {path}: {bad:?}"
        );
        assert_eq!(bad.header("cache-control"), "no-store", "{name}: {path}");
        assert!(
            seen.try_recv().is_err(),
            "{name}: {path} never reached the upstream"
        );
    }

    issuer
        .tokens()
        .disable_token(bearer(
            v1::DisableTokenRequest {
                token: by_id(&reader.id),
            },
            &session,
        ))
        .await
        .expect("disable");
    let disabled = tokio::time::Instant::now();
    loop {
        let answer = http::get(proxy, path, &[("Authorization", &good)]).await;
        if answer.status == 401 {
            assert_eq!(answer.header("cache-control"), "no-store", "{name}");
            break;
        }
        assert_eq!(answer.status, 200, "{name}: {answer:?}");
        let _ = seen.recv().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = disabled.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "{name}: a disabled token is refused within a second, took {took:?}"
    );
    assert!(
        seen.try_recv().is_err(),
        "{name}: refused requests never reached the upstream"
    );
}

/// nginx `auth_request`, asking the verifier's route rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_lets_through_only_what_verify_allows() {
    let Some(program) = installed("nginx", "-v") else {
        eprintln!(
            "SKIPPED proxies::nginx_auth_request_lets_through_only_what_verify_allows: \
             nginx is not installed (apt-get install nginx-light)"
        );
        return;
    };
    let issuer = Harness::start(Backend::Sqlite).await;
    let rules = rules_file();
    let verifier = gateway_beside(&issuer, |c| c.route_rules = Some(rules.clone())).await;
    let auth = verifier.forward_auth.expect("forward auth");
    let (upstream_addr, seen) = upstream().await;
    let dir = std::env::temp_dir().join(format!("tessera-nginx-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(dir.join("tmp")).expect("nginx dir");
    let port = free_port();
    let d = dir.display();
    // One process (master_process off), so killing it, even on a failed
    // assertion, leaves no worker behind holding the test's output open.
    let conf = format!(
        "master_process off;\ndaemon off;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n access_log off;\n client_body_temp_path {d}/tmp;\n proxy_temp_path {d}/tmp;\n\
         fastcgi_temp_path {d}/tmp;\n uwsgi_temp_path {d}/tmp;\n scgi_temp_path {d}/tmp;\n\
         server {{\n  listen {port};\n  auth_request /_tessera;\n\
           auth_request_set $owner $upstream_http_x_tessera_owner_id;\n\
           auth_request_set $token $upstream_http_x_tessera_token_id;\n\
           proxy_set_header X-Tessera-Owner-Id $owner;\n\
           proxy_set_header X-Tessera-Token-Id $token;\n\
           proxy_set_header Authorization \"\";\n\
           auth_request_set $reason $upstream_http_x_tessera_reason;\n\
           auth_request_set $cache $upstream_http_cache_control;\n\
           add_header X-Tessera-Reason $reason always;\n\
           add_header Cache-Control $cache always;\n\
           location / {{ proxy_pass http://{upstream_addr}; }}\n\
           location = /_tessera {{\n   internal;\n   proxy_pass http://{auth}/auth;\n\
             proxy_pass_request_body off;\n   proxy_set_header Content-Length \"\";\n\
             proxy_set_header X-Original-URI $request_uri;\n\
             proxy_set_header X-Original-Method $request_method;\n\
             proxy_set_header X-Forwarded-Uri \"\";\n\
             proxy_set_header X-Forwarded-Method \"\";\n  }}\n }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
    let mut nginx = tokio::process::Command::new(&program)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx starts");
    wait_listening(port, "nginx", &dir.join("error.log")).await;

    through(
        port,
        &issuer,
        seen,
        Relays {
            name: "nginx",
            bad_request: 500,
        },
    )
    .await;

    let _ = nginx.start_kill();
    let _ = nginx.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(rules);
    issuer.stop().await;
}

/// Caddy `forward_auth`, asking the verifier's route rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_forward_auth_lets_through_only_what_verify_allows() {
    let Some(program) = installed("caddy", "version") else {
        eprintln!(
            "SKIPPED proxies::caddy_forward_auth_lets_through_only_what_verify_allows: \
             caddy is not installed (apt-get install caddy)"
        );
        return;
    };
    let issuer = Harness::start(Backend::Sqlite).await;
    let rules = rules_file();
    let verifier = gateway_beside(&issuer, |c| c.route_rules = Some(rules.clone())).await;
    let auth = verifier.forward_auth.expect("forward auth");
    let (upstream_addr, seen) = upstream().await;
    let dir = std::env::temp_dir().join(format!("tessera-caddy-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("caddy dir");
    let port = free_port();
    // `route` keeps the order written: strip the client's X-Tessera-* and
    // X-Original-* first, then ask, then proxy without the credential.
    let conf = format!(
        "{{\n\tadmin off\n\tauto_https off\n}}\n\
         http://:{} {{\n\tbind 127.0.0.1\n\troute {{\n\
         \t\trequest_header -X-Tessera-*\n\
         \t\trequest_header -X-Original-URI\n\
         \t\trequest_header -X-Original-Method\n\
         \t\tforward_auth {auth} {{\n\
         \t\t\turi /auth?\n\
         \t\t\tcopy_headers X-Tessera-Token-Id X-Tessera-Owner-Id X-Tessera-Token-Type X-Tessera-Expire-Time\n\
         \t\t}}\n\
         \t\treverse_proxy {upstream_addr} {{\n\t\t\theader_up -Authorization\n\t\t}}\n\
         \t}}\n}}\n",
        port.port()
    );
    std::fs::write(dir.join("Caddyfile"), conf).expect("write Caddyfile");
    let log = dir.join("caddy.log");
    let mut caddy = tokio::process::Command::new(&program)
        .arg("run")
        .arg("--config")
        .arg(dir.join("Caddyfile"))
        .arg("--adapter")
        .arg("caddyfile")
        .env("HOME", &dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("caddy starts");
    wait_listening(port, "caddy", &log).await;

    through(
        port,
        &issuer,
        seen,
        Relays {
            name: "caddy",
            bad_request: 400,
        },
    )
    .await;

    let _ = caddy.start_kill();
    let _ = caddy.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(rules);
    issuer.stop().await;
}
