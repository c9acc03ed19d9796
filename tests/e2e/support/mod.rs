//! The harness: a fresh database per test, an issuer on a random port, a
//! manual clock, and helpers for credentials and status checks.

pub mod db;
pub mod feed;
pub mod fme;
pub mod http;
pub mod lifecycle;
pub mod permissions;
pub mod pki;
pub mod proxy;
pub mod verifier;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SubsecRound, Utc};
pub use db::{Backend, TestDb};
use std::sync::Arc;
use std::time::Duration;
use tessera_core::{Clock, ManualClock};
use tessera_issuer::{Issuer, IssuerConfig};
use tessera_proto::v1;
use tessera_proto::v1::key_service_client::KeyServiceClient;
use tessera_proto::v1::session_service_client::SessionServiceClient;
use tessera_proto::v1::token_service_client::TokenServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Shows the servers' logs in test output when `TESSERA_TEST_LOG` is set
/// (to a filter such as `debug` or `tessera_issuer=trace`).
pub fn init_logging() {
    if let Ok(filter) = std::env::var("TESSERA_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// The admin password every test issuer is started with.
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// The revocation feed's secret every test issuer and verifier shares: the
/// feed admits no one without one.
pub const FEED_SECRET: &str = "feed-secret-for-tests";

/// Generates a `#[tokio::test]` per backend from an `async fn(Backend)`.
/// The PostgreSQL one says plainly that it was skipped when no server is
/// configured.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if $crate::support::db::postgres_url().is_none() {
                        $crate::support::db::say_skipped(concat!(module_path!(), "::postgres"));
                        return;
                    }
                    super::$name($crate::support::Backend::Postgres).await;
                }
            }
        )*
    };
}

/// A running issuer and what a test needs to talk to it.
pub struct Harness {
    pub addr: std::net::SocketAddr,
    /// Where FME's HTTP endpoints are served, when the config asked for them.
    pub http_addr: Option<std::net::SocketAddr>,
    pub channel: Channel,
    pub clock: Arc<ManualClock>,
    db: Option<TestDb>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// Now, to the second, for a manual clock that starts at the real time (so
/// tokens checked by outside JWT libraries are inside their window).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// The issuer configuration tests start from.
pub fn issuer_config(db: &TestDb) -> IssuerConfig {
    let mut config = IssuerConfig::new("127.0.0.1:0".parse().expect("address"), db.url.clone());
    config.db_schema = db.schema.clone();
    config.kek = Some(db.kek.to_base64());
    config.admin_password = Some(ADMIN_PASSWORD.into());
    config.feed_secret = Some(FEED_SECRET.into());
    config.health_interval = Duration::from_millis(100);
    config.shutdown_delay = Duration::ZERO;
    config
}

impl Harness {
    /// A fresh database and an issuer serving on it.
    pub async fn start(backend: Backend) -> Self {
        let db = TestDb::new(backend).await;
        let config = issuer_config(&db);
        Self::start_with(db, config).await
    }

    /// An issuer with `config` on `db`, once its health says SERVING.
    pub async fn start_with(db: TestDb, config: IssuerConfig) -> Self {
        let harness = Self::spawn(db, config).await;
        harness.wait_for_health(ServingStatus::Serving).await;
        harness
    }

    /// An issuer with `config` on `db`, without waiting for it to be ready.
    pub async fn spawn(db: TestDb, config: IssuerConfig) -> Self {
        init_logging();
        let clock = Arc::new(ManualClock::new(now()));
        let issuer = Issuer::bind(config, clock.clone())
            .await
            .expect("issuer should bind");
        let addr = issuer.local_addr().expect("bound address");
        let http_addr = issuer.http_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            issuer
                .run_until(async {
                    let _ = stopped.await;
                })
                .await
                .expect("issuer should run");
        });
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        Self {
            addr,
            http_addr,
            channel,
            clock,
            db: Some(db),
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Waits (bounded) for the overall health status to become `want`.
    pub async fn wait_for_health(&self, want: ServingStatus) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut last = None;
        while tokio::time::Instant::now() < deadline {
            last = self.health("").await.ok();
            if last == Some(want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("health did not become {want:?} within 30 s; last seen {last:?}");
    }

    /// The health status of `service` (`""` for the whole server).
    pub async fn health(&self, service: &str) -> Result<ServingStatus, Status> {
        let reply = HealthClient::new(self.channel.clone())
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await?
            .into_inner();
        Ok(ServingStatus::try_from(reply.status).unwrap_or(ServingStatus::Unknown))
    }

    pub fn sessions(&self) -> SessionServiceClient<Channel> {
        SessionServiceClient::new(self.channel.clone())
    }

    pub fn tokens(&self) -> TokenServiceClient<Channel> {
        TokenServiceClient::new(self.channel.clone())
    }

    pub fn keys(&self) -> KeyServiceClient<Channel> {
        KeyServiceClient::new(self.channel.clone())
    }

    /// Logs in as `user` and returns the session's secret.
    pub async fn login(&self, user: &str, password: &str) -> String {
        self.sessions()
            .login(basic(v1::LoginRequest::default(), user, password))
            .await
            .expect("login should succeed")
            .into_inner()
            .secret
    }

    /// Creates an API token as the administrator.
    pub async fn create_token(
        &self,
        request: v1::CreateTokenRequest,
    ) -> Result<v1::CreateTokenResponse, Status> {
        Ok(self
            .tokens()
            .create_token(admin(request))
            .await?
            .into_inner())
    }

    /// The test's database.
    pub fn db(&self) -> &TestDb {
        self.db
            .as_ref()
            .expect("the harness owns its database until stopped")
    }

    /// Stops the issuer, waits for it to exit, and hands back its database.
    pub async fn stop(mut self) -> TestDb {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("issuer should stop within 10 s")
                .expect("issuer task should not panic");
        }
        self.db
            .take()
            .expect("the harness owns its database until stopped")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// `message` with HTTP Basic credentials.
pub fn basic<T>(message: T, user: &str, password: &str) -> Request<T> {
    let value = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
    with_authorization(message, &value)
}

/// `message` with the administrator's Basic credentials.
pub fn admin<T>(message: T) -> Request<T> {
    basic(message, tessera_issuer::ADMIN_USERNAME, ADMIN_PASSWORD)
}

/// `message` with `authorization: Bearer <token>`.
pub fn bearer<T>(message: T, token: &str) -> Request<T> {
    with_authorization(message, &format!("Bearer {token}"))
}

/// `message` with a raw `authorization` value.
pub fn with_authorization<T>(message: T, value: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", value.parse().expect("header value"));
    request
}

/// Asserts `result` failed with `code`, and returns the status.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(v) => panic!("expected {code:?}, got Ok({v:?})"),
        Err(status) => {
            assert_eq!(status.code(), code, "unexpected status: {status:?}");
            status
        }
    }
}

/// The fields named by an INVALID_ARGUMENT status's field violations.
pub fn violated_fields(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|br| br.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// Creates an ordinary user directly in the store (UserService comes later).
pub async fn create_user(
    harness: &Harness,
    username: &str,
    password: &str,
    grants: &[(&str, &[&str])],
) {
    let store = harness.db().store().await;
    let grants = grants
        .iter()
        .map(|(resource, actions)| tessera_core::Grant {
            resource: (*resource).into(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        })
        .collect();
    store
        .create_user(
            harness.clock.now().timestamp(),
            tessera_store::users::NewUser {
                id: uuid::Uuid::now_v7().to_string(),
                username: username.into(),
                password_hash: tessera_core::password::hash(password).expect("hash"),
                admin: false,
                enabled: true,
                grants,
            },
            None,
        )
        .await
        .expect("create user");
}

/// A grant message.
pub fn grant(resource: &str, actions: &[&str]) -> v1::Grant {
    v1::Grant {
        resource: resource.into(),
        actions: actions.iter().map(|a| (*a).to_owned()).collect(),
    }
}

/// Selects a token by id.
pub fn by_id(id: &str) -> Option<v1::TokenSelector> {
    Some(v1::TokenSelector {
        id: id.into(),
        ..Default::default()
    })
}
