//! Operations: metrics over HTTP, load shedding, graceful shutdown under
//! load, traces joining the caller's trace, and no secret in any log line.

use crate::support::pki::Pki;
use crate::support::verifier::{VerifierHarness, verifier_config};
use crate::support::{self, ADMIN_PASSWORD, Backend, Harness, TestDb, admin, basic};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tessera_proto::v1;
use tonic::Code;

/// A free loopback port (bound and released; the race is harmless here).
pub(crate) fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

/// GET http://addr/metrics, as text, with a bare HTTP/1.1 request.
pub(crate) async fn scrape(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_rpcs_and_verifier_answers() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = support::issuer_config(&db);
    let issuer_metrics = free_addr();
    config.metrics_listen = Some(issuer_metrics);
    let issuer = Harness::start_with(db, config).await;
    let mut vconfig = verifier_config(issuer.db());
    let verifier_metrics = free_addr();
    vconfig.metrics_listen = Some(verifier_metrics);
    let verifier = VerifierHarness::spawn(vconfig, issuer.clock.clone()).await;
    verifier
        .wait_for_health(tonic_health::pb::health_check_response::ServingStatus::Serving)
        .await;

    let refused = issuer
        .sessions()
        .login(basic(
            v1::LoginRequest::default(),
            "admin",
            "wrong password",
        ))
        .await;
    assert_eq!(
        refused.expect_err("wrong password").code(),
        Code::Unauthenticated
    );
    let created = issuer
        .create_token(v1::CreateTokenRequest {
            name: "metered".into(),
            ..Default::default()
        })
        .await
        .expect("create");
    for _ in 0..3 {
        assert!(verifier.verify(&created.secret, "", "").await.valid);
    }
    assert!(!verifier.verify("garbage", "", "").await.valid);

    let text = scrape(issuer_metrics).await;
    assert!(
        text.contains(r#"tessera_issuer_grpc_requests_total{rpc="/tessera.v1.SessionService/Login",code="Unauthenticated"} 1"#),
        "login failures are counted:\n{text}"
    );
    assert!(
        text.contains(r#"tessera_issuer_grpc_requests_total{rpc="/tessera.v1.TokenService/CreateToken",code="Ok"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("tessera_issuer_grpc_request_duration_seconds_bucket"),
        "{text}"
    );

    let text = scrape(verifier_metrics).await;
    assert!(
        text.contains(r#"tessera_verifier_verify_answers_total{reason="OK"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tessera_verifier_verify_answers_total{reason="MALFORMED"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("tessera_verifier_signature_cache_hits_total 2"),
        "{text}"
    );
    assert!(
        text.contains("tessera_verifier_revocation_entries"),
        "{text}"
    );
    assert!(
        text.contains("tessera_verifier_revocation_view_stale 0"),
        "{text}"
    );
    issuer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_and_shutdown_lets_calls_in_flight_finish() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = support::issuer_config(&db);
    config.max_concurrent_requests = 2;
    let issuer = Harness::start_with(db, config).await;

    // Logins are slow (argon2): more than two at once are shed.
    let logins: Vec<_> = (0..8)
        .map(|_| {
            let mut sessions = issuer.sessions();
            tokio::spawn(async move { sessions.login(admin(v1::LoginRequest::default())).await })
        })
        .collect();
    let mut codes = Vec::new();
    for login in logins {
        codes.push(
            login
                .await
                .expect("task")
                .map(|_| Code::Ok)
                .unwrap_or_else(|s| s.code()),
        );
    }
    assert!(codes.contains(&Code::Ok), "{codes:?}");
    assert!(
        codes.contains(&Code::ResourceExhausted),
        "excess calls are shed, not queued: {codes:?}"
    );
    assert!(
        codes
            .iter()
            .all(|c| matches!(c, Code::Ok | Code::ResourceExhausted)),
        "{codes:?}"
    );

    // Calls in flight when the stop comes complete; the server then exits.
    let in_flight: Vec<_> = (0..2)
        .map(|_| {
            let mut sessions = issuer.sessions();
            tokio::spawn(async move { sessions.login(admin(v1::LoginRequest::default())).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let channel = issuer.channel.clone();
    let stopped = tokio::time::Instant::now();
    issuer.stop().await;
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "exits within the grace period"
    );
    for call in in_flight {
        call.await
            .expect("task")
            .expect("a call in flight at shutdown completes");
    }
    let after = v1::session_service_client::SessionServiceClient::new(channel)
        .login(admin(v1::LoginRequest::default()))
        .await;
    assert!(after.is_err(), "no new calls after shutdown");
}

/// An exported span: its trace id and a description for failure messages.
type Exported = (Vec<u8>, String);

/// Collects the exported spans.
#[derive(Default, Clone)]
struct Collector(Arc<Mutex<Vec<Exported>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut ids = self.0.lock().expect("lock");
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let rpc = span
                        .attributes
                        .iter()
                        .find(|kv| kv.key == "rpc")
                        .map(|kv| format!("{:?}", kv.value))
                        .unwrap_or(span.name);
                    let rpc = format!(
                        "{rpc} parent={:02x?} status={:?}",
                        span.parent_span_id, span.status
                    );
                    ids.push((span.trace_id, rpc));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Log lines captured by a scoped subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Runs `test` alone in a child process of this test binary: tracing's
/// callsite state is process-wide, and other tests running alongside would
/// change what a scoped subscriber sees.
fn in_own_process(test: &str) -> bool {
    const VAR: &str = "TESSERA_TEST_ISOLATED";
    if std::env::var_os(VAR).is_some() {
        return true;
    }
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([test, "--exact", "--test-threads", "1"])
        .env(VAR, "1")
        // Every span at TRACE is exported, thousands of the database
        // driver's on PostgreSQL: the batch queue (2,048 by default) must
        // hold them all, or it drops the span under test.
        .env("OTEL_BSP_MAX_QUEUE_SIZE", "1000000")
        .status()
        .expect("run the test binary");
    assert!(
        status.success(),
        "{test} failed in its own process (run it alone to see why)"
    );
    false
}

#[test]
fn spans_join_the_callers_trace_and_no_secret_is_ever_logged() {
    if in_own_process("operations::spans_join_the_callers_trace_and_no_secret_is_ever_logged") {
        // A current-thread runtime, so the scoped subscriber sees every task.
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(traced_flow(Backend::Sqlite));
    }
}

/// The same flow on PostgreSQL, with a password in the database URL: it
/// appears in no log line either.
#[test]
fn no_database_password_is_logged_on_postgres() {
    if crate::support::db::postgres_url().is_none() {
        crate::support::db::say_skipped("operations::no_database_password_is_logged_on_postgres");
        return;
    }
    if in_own_process("operations::no_database_password_is_logged_on_postgres") {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(traced_flow(Backend::Postgres));
    }
}

/// A password PostgreSQL's trust authentication ignores, put in the URL.
const URL_PASSWORD: &str = "url-password-never-logged";

fn with_password(url: &str) -> String {
    match url.split_once('@') {
        Some((user, rest)) => format!("{user}:{URL_PASSWORD}@{rest}"),
        None => url.to_owned(),
    }
}

async fn traced_flow(backend: Backend) {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;

    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let collector_addr = listener.local_addr().expect("address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let telemetry = tessera_serve::telemetry::TelemetryConfig {
        default_service_name: "tessera-issuer",
        otlp_endpoint: Some(format!("http://{collector_addr}")),
        ..Default::default()
    };
    let provider = tessera_serve::telemetry::tracer_provider(&telemetry)
        .expect("exporter")
        .expect("export is on");
    let logs = Captured::default();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(logs.clone())
                .with_ansi(false)
                .with_filter(tracing_subscriber::EnvFilter::new("trace")),
        )
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("tessera")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let db = crate::support::TestDb::new(backend).await;
    let mut config = crate::support::issuer_config(&db);
    config.database_url = with_password(&config.database_url);
    let issuer = Harness::start_with(db, config).await;
    let mut vconfig = crate::support::verifier::verifier_config(issuer.db());
    vconfig.database_url = with_password(&vconfig.database_url);
    let verifier = VerifierHarness::spawn(vconfig, issuer.clock.clone()).await;
    verifier
        .wait_for_health(tonic_health::pb::health_check_response::ServingStatus::Serving)
        .await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut login = admin(v1::LoginRequest::default());
    login.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .expect("header"),
    );
    let session = issuer
        .sessions()
        .login(login)
        .await
        .expect("login")
        .into_inner()
        .secret;
    let created = issuer
        .tokens()
        .create_token(support::bearer(
            v1::CreateTokenRequest {
                name: "traced".into(),
                ..Default::default()
            },
            &session,
        ))
        .await
        .expect("create")
        .into_inner();
    assert!(verifier.verify(&created.secret, "", "").await.valid);
    let refused = issuer
        .sessions()
        .login(basic(
            v1::LoginRequest::default(),
            "admin",
            "a-wrong-password-123",
        ))
        .await;
    assert!(refused.is_err());
    let kek = issuer.db().kek.to_base64();
    issuer.stop().await;
    let wanted: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    // A request's span closes when its connection's tasks let go of it,
    // which can be just after the call returned: flush until it is out. On
    // PostgreSQL a TRACE run queues thousands of driver spans, and one flush
    // can outlast the exporter's 5 s timeout: that flush is tried again.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let ids = loop {
        let flushing = provider.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || flushing.force_flush())
            .await
            .expect("flush task")
        {
            eprintln!("flush spans: {e:?}; trying again");
        }
        let ids = collector.0.lock().expect("lock").clone();
        if ids.iter().any(|(id, _)| id == &wanted) || std::time::Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let text = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf-8 logs");
    assert!(
        ids.iter().any(|(id, _)| id == &wanted),
        "the login's span joined the caller's trace ({} spans exported: {:?}; {:?})",
        ids.len(),
        ids.iter()
            .map(|(id, name)| format!(
                "{} {name}",
                id.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ))
            .take(20)
            .collect::<Vec<_>>(),
        text.lines()
            .filter(|line| line.contains("trace context"))
            .collect::<Vec<_>>()
    );

    assert!(
        text.len() > 1_000,
        "TRACE logging captured the flow ({} bytes)",
        text.len()
    );
    for (what, secret) in [
        ("the admin password", ADMIN_PASSWORD),
        ("a wrong password", "a-wrong-password-123"),
        ("the session token", session.as_str()),
        ("the API token", created.secret.as_str()),
        (
            "the API token's signature",
            created.secret.rsplit('.').next().expect("signature"),
        ),
        ("the KEK", kek.as_str()),
        ("the database password", URL_PASSWORD),
    ] {
        assert!(!text.contains(secret), "{what} appears in the logs");
    }
    assert!(
        !text.contains("BEGIN PRIVATE KEY"),
        "no private key in the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_mtls_handshakes() {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let pki = Pki::new();
    let db = TestDb::new(Backend::Sqlite).await;

    // The issuer over TLS, spoken to by the CLI.
    let mut config = support::issuer_config(&db);
    config.tls_cert = Some(pki.path("server.pem"));
    config.tls_key = Some(pki.path("server.key"));
    let issuer = tessera_issuer::Issuer::bind(config, Arc::new(tessera_core::SystemClock))
        .await
        .expect("TLS issuer binds");
    let issuer_addr = issuer.local_addr().expect("address");
    tokio::spawn(issuer.run_until(std::future::pending()));
    let mut out = Vec::new();
    let mut err = Vec::new();
    let endpoint = format!("https://{issuer_addr}");
    let ca = pki.path("ca.pem");
    let mut code = 1;
    for _ in 0..100 {
        (out, err) = (Vec::new(), Vec::new());
        code = tessera_cli::run(
            [
                "tessera",
                "--issuer",
                &endpoint,
                "--ca-cert",
                ca.to_str().expect("path"),
                "key",
                "list",
            ],
            &mut out,
            &mut err,
        )
        .await;
        if code == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        code,
        0,
        "the CLI speaks TLS: {}",
        String::from_utf8_lossy(&err)
    );
    assert!(
        String::from_utf8_lossy(&out).contains("EdDSA")
            || String::from_utf8_lossy(&out).contains("active")
    );
    let mut err = Vec::new();
    let plaintext = tessera_cli::run(
        [
            "tessera",
            "--issuer",
            &format!("http://{issuer_addr}"),
            "key",
            "list",
        ],
        &mut Vec::new(),
        &mut err,
    )
    .await;
    assert_eq!(plaintext, 1, "plaintext is refused by a TLS listener");
    let said = String::from_utf8_lossy(&err);
    assert!(said.contains("https:// address"), "says what to do: {said}");
    // Without --ca-cert the system's roots are used, which do not know
    // this CA: the refusal says which flag trusts it.
    let mut err = Vec::new();
    let untrusted = tessera_cli::run(
        ["tessera", "--issuer", &endpoint, "key", "list"],
        &mut Vec::new(),
        &mut err,
    )
    .await;
    assert_eq!(untrusted, 1);
    let said = String::from_utf8_lossy(&err);
    assert!(
        said.contains("not trusted") && said.contains("--ca-cert"),
        "{said}"
    );

    // The verifier requiring client certificates.
    let mut vconfig = verifier_config(&db);
    vconfig.tls_cert = Some(pki.path("server.pem"));
    vconfig.tls_key = Some(pki.path("server.key"));
    vconfig.tls_client_ca = Some(pki.path("ca.pem"));
    let verifier =
        tessera_verifier::VerifierServer::bind(vconfig, Arc::new(tessera_core::SystemClock))
            .await
            .expect("mTLS verifier binds");
    let verifier_addr = verifier.local_addr().expect("address");
    tokio::spawn(verifier.run_until(std::future::pending()));
    let trust = || ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pki.read("ca.pem")));
    let verify = |tls: ClientTlsConfig| async move {
        let channel = Endpoint::from_shared(format!("https://{verifier_addr}"))
            .expect("endpoint")
            .tls_config(tls)
            .expect("tls")
            .connect()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        v1::verifier_service_client::VerifierServiceClient::new(channel)
            .verify(v1::VerifyRequest {
                token: "a.b.c".into(),
                ..Default::default()
            })
            .await
    };
    let with_cert = verify(trust().identity(Identity::from_pem(
        pki.read("client.pem"),
        pki.read("client.key"),
    )))
    .await;
    assert!(
        with_cert.is_ok(),
        "a client with a certificate is served: {with_cert:?}"
    );
    let without_cert = verify(trust()).await;
    assert!(
        without_cert.is_err(),
        "a client without a certificate is refused"
    );

    // Half a TLS configuration is refused at start, not served in plaintext.
    let mut half = verifier_config(&db);
    half.tls_cert = Some(pki.path("server.pem"));
    assert!(
        tessera_verifier::VerifierServer::bind(half, Arc::new(tessera_core::SystemClock))
            .await
            .is_err()
    );
}
