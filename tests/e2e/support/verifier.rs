//! A verifier beside a test issuer: same database, same manual clock.

use super::{Harness, TestDb};
use std::sync::Arc;
use std::time::Duration;
use tessera_core::{Clock, ManualClock};
use tessera_proto::v1;
use tessera_proto::v1::verifier_service_client::VerifierServiceClient;
use tessera_verifier::service::Shared;
use tessera_verifier::{VerifierConfig, VerifierServer};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A running verifier.
pub struct VerifierHarness {
    pub addr: std::net::SocketAddr,
    /// Where HTTP forward auth is served, when the config asked for it.
    pub forward_auth: Option<std::net::SocketAddr>,
    pub channel: Channel,
    /// The running verifier's state, to see how far it has synced.
    pub shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

/// The verifier configuration tests start from: fast sync.
pub fn verifier_config(db: &TestDb) -> VerifierConfig {
    let mut config = VerifierConfig::new("127.0.0.1:0".parse().expect("address"), db.url.clone());
    config.db_schema = db.schema.clone();
    config.feed_secret = Some(super::FEED_SECRET.into());
    config.sync_interval = Duration::from_millis(50);
    config.shutdown_delay = Duration::ZERO;
    config
}

impl VerifierHarness {
    /// A verifier on `issuer`'s database and clock, once it is SERVING.
    pub async fn beside(issuer: &Harness) -> Self {
        let verifier = Self::spawn(verifier_config(issuer.db()), issuer.clock.clone()).await;
        verifier.wait_for_health(ServingStatus::Serving).await;
        verifier
    }

    /// A verifier with `config`, not waiting for it to be ready.
    pub async fn spawn(config: VerifierConfig, clock: Arc<ManualClock>) -> Self {
        let server = VerifierServer::bind(config, clock as Arc<dyn Clock>)
            .await
            .expect("verifier should bind");
        let addr = server.local_addr().expect("address");
        let forward_auth = server.forward_auth_addr();
        let shared = server.shared();
        let server = tokio::spawn(async move {
            server
                .run_until(std::future::pending())
                .await
                .expect("verifier should run");
        });
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect_lazy();
        Self {
            addr,
            forward_auth,
            channel,
            shared,
            server,
        }
    }

    pub fn client(&self) -> VerifierServiceClient<Channel> {
        VerifierServiceClient::new(self.channel.clone()).max_encoding_message_size(16 * 1024 * 1024)
    }

    /// Verifies a token (optionally for a resource and action).
    pub async fn verify(&self, token: &str, resource: &str, action: &str) -> v1::VerifyResponse {
        self.client()
            .verify(v1::VerifyRequest {
                token: token.into(),
                resource: resource.into(),
                action: action.into(),
                ..Default::default()
            })
            .await
            .expect("verify answers")
            .into_inner()
    }

    /// The reason the verifier gives for `token`.
    pub async fn reason(&self, token: &str) -> v1::VerifyReason {
        let answer = self.verify(token, "", "").await;
        v1::VerifyReason::try_from(answer.reason).expect("a known reason")
    }

    /// Polls (bounded: 10 s) until `token` gets `want`; returns how long it took.
    pub async fn wait_for_reason(&self, token: &str, want: v1::VerifyReason) -> Duration {
        let started = tokio::time::Instant::now();
        let mut last = None;
        while started.elapsed() < Duration::from_secs(10) {
            let reason = self.reason(token).await;
            if reason == want {
                return started.elapsed();
            }
            last = Some(reason);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the verifier did not answer {want:?} within 10 s; last {last:?}");
    }

    /// Waits (bounded: 10 s) until the verifier has applied every event
    /// committed so far, and has synced since `clock` last moved.
    pub async fn wait_for_sync(&self, store: &tessera_store::Store, clock: &dyn Clock) {
        let target = store.last_revocation_seq().await.expect("last seq");
        let started = tokio::time::Instant::now();
        let fresh = || {
            self.shared
                .view
                .age_ms(clock.now().timestamp_millis())
                .is_some_and(|age| age < 1_000)
        };
        while self.shared.view.last_seq() < target || !fresh() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the verifier did not reach event {target} within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub async fn health(&self) -> ServingStatus {
        HealthClient::new(self.channel.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| {
                ServingStatus::try_from(r.into_inner().status).unwrap_or(ServingStatus::Unknown)
            })
            .unwrap_or(ServingStatus::Unknown)
    }

    pub async fn wait_for_health(&self, want: ServingStatus) {
        let started = tokio::time::Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if self.health().await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("verifier health did not become {want:?} within 30 s");
    }
}

impl Drop for VerifierHarness {
    fn drop(&mut self) {
        self.server.abort();
    }
}
