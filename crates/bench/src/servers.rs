//! The servers a figure drives: a real verifier, and a bare echo server
//! speaking the same RPC with the same payload, as the baseline.

use crate::fixture::Fixture;
use anyhow::{Result, bail};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_core::SystemClock;
use tessera_proto::v1::verifier_service_server::{VerifierService, VerifierServiceServer};
use tessera_proto::v1::{VerifyRequest, VerifyResponse};
use tessera_verifier::{VerifierConfig, VerifierServer};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The feed secret the bench's issuers and verifiers share.
pub const FEED_SECRET: &str = "feed-secret-for-the-bench";

/// Starts a verifier on `fixture`'s database; returns its address once
/// it is SERVING, and how long that took from bind.
pub async fn verifier(fixture: &Fixture, cache_size: usize) -> Result<(SocketAddr, Duration)> {
    verifier_following(fixture, cache_size, None).await
}

/// Like [`verifier`], following the revocation feed of the issuer at
/// `feed` when given (and polling the store otherwise).
pub async fn verifier_following(
    fixture: &Fixture,
    cache_size: usize,
    feed: Option<SocketAddr>,
) -> Result<(SocketAddr, Duration)> {
    let mut config = VerifierConfig::new("127.0.0.1:0".parse()?, fixture.url.clone());
    config.shutdown_delay = std::time::Duration::ZERO;
    config.db_schema = fixture.schema.clone();
    config.signature_cache_size = cache_size;
    if let Some(issuer) = feed {
        config.revocation_feed = format!("http://{issuer}");
        config.feed_secret = Some(FEED_SECRET.into());
    }
    let started = Instant::now();
    let server = VerifierServer::bind(config, Arc::new(SystemClock)).await?;
    let addr = server.local_addr()?;
    tokio::spawn(server.run_until(std::future::pending()));
    wait_serving(addr, started, Duration::from_secs(120)).await?;
    Ok((addr, started.elapsed()))
}

/// Waits until `addr` reports SERVING, at most `limit` after `started`.
async fn wait_serving(addr: SocketAddr, started: Instant, limit: Duration) -> Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.connect_lazy();
    wait_serving_on(channel, started, limit).await
}

async fn wait_serving_on(
    channel: tonic::transport::Channel,
    started: Instant,
    limit: Duration,
) -> Result<()> {
    let mut health = HealthClient::new(channel);
    while started.elapsed() < limit {
        let status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status);
        if matches!(status, Ok(s) if s == ServingStatus::Serving as i32) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!("the server did not become SERVING within {limit:?}")
}

/// Answers every Verify with the same canned response.
struct Echo(VerifyResponse);

#[tonic::async_trait]
impl VerifierService for Echo {
    async fn verify(
        &self,
        _request: Request<VerifyRequest>,
    ) -> Result<Response<VerifyResponse>, Status> {
        Ok(Response::new(self.0.clone()))
    }
}

/// Starts the echo baseline answering `reply`.
pub async fn echo(reply: VerifyResponse) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        Server::builder()
            .add_service(VerifierServiceServer::new(Echo(reply)))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    Ok(addr)
}

/// The admin password of the benchmark issuer.
const ADMIN_PASSWORD: &str = "benchmark-admin-password";

/// A throw-away CA and a certificate for 127.0.0.1, as PEM files, for the
/// figures measured over TLS.
pub struct Pki {
    pub dir: std::path::PathBuf,
}

impl Pki {
    pub fn new() -> Result<Self> {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let dir = std::env::temp_dir().join(format!(
            "tessera-bench-pki-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        std::fs::write(dir.join("ca.pem"), ca.pem())?;
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])?.signed_by(&key, &ca)?;
        std::fs::write(dir.join("server.pem"), cert.pem())?;
        std::fs::write(dir.join("server.key"), key.serialize_pem())?;
        Ok(Self { dir })
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(name)
    }

    /// A client of the issuer over TLS, trusting this CA.
    pub fn channel(&self, addr: SocketAddr) -> Result<tonic::transport::Channel> {
        let ca = tonic::transport::Certificate::from_pem(std::fs::read(self.path("ca.pem"))?);
        Ok(
            tonic::transport::Endpoint::from_shared(format!("https://{addr}"))?
                .tls_config(tonic::transport::ClientTlsConfig::new().ca_certificate(ca))?
                .connect_lazy(),
        )
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A verifier with no store, following `upstream` (an issuer or a relay;
/// over TLS with `pki`), relaying onward when `relay`; its address once
/// SERVING.
pub async fn fed_verifier(
    upstream: SocketAddr,
    pki: Option<&Pki>,
    relay: bool,
) -> Result<SocketAddr> {
    Ok(fed_verifier_timed(upstream, pki, relay).await?.0)
}

/// Like [`fed_verifier`], with how long bind to SERVING took.
pub async fn fed_verifier_timed(
    upstream: SocketAddr,
    pki: Option<&Pki>,
    relay: bool,
) -> Result<(SocketAddr, Duration)> {
    let mut config = VerifierConfig::new("127.0.0.1:0".parse()?, String::new());
    config.shutdown_delay = std::time::Duration::ZERO;
    config.feed_secret = Some(FEED_SECRET.into());
    config.serve_feed = relay;
    config.sync_interval = Duration::from_secs(30);
    config.revocation_feed = match pki {
        Some(pki) => {
            config.feed_ca = Some(pki.path("ca.pem"));
            format!("https://{upstream}")
        }
        None => format!("http://{upstream}"),
    };
    let started = Instant::now();
    let server = VerifierServer::bind(config, Arc::new(SystemClock)).await?;
    let addr = server.local_addr()?;
    tokio::spawn(server.run_until(std::future::pending()));
    wait_serving(addr, started, Duration::from_secs(120)).await?;
    Ok((addr, started.elapsed()))
}

/// Starts an issuer on `fixture`'s database; returns its address once SERVING.
pub async fn issuer(fixture: &Fixture) -> Result<SocketAddr> {
    issuer_with(fixture, None).await
}

/// Like [`issuer`], serving TLS with `pki`'s certificate when given (its
/// readiness is then asked over TLS).
pub async fn issuer_with(fixture: &Fixture, pki: Option<&Pki>) -> Result<SocketAddr> {
    let mut config = tessera_issuer::IssuerConfig::new("127.0.0.1:0".parse()?, fixture.url.clone());
    if let Some(pki) = pki {
        config.tls_cert = Some(pki.path("server.pem"));
        config.tls_key = Some(pki.path("server.key"));
    }
    config.shutdown_delay = std::time::Duration::ZERO;
    config.db_schema = fixture.schema.clone();
    config.kek = Some(fixture.kek.to_base64());
    config.feed_secret = Some(FEED_SECRET.into());
    config.admin_password = Some(ADMIN_PASSWORD.into());
    config.health_interval = Duration::from_millis(100);
    let issuer = tessera_issuer::Issuer::bind(config, Arc::new(SystemClock)).await?;
    let addr = issuer.local_addr()?;
    tokio::spawn(issuer.run_until(std::future::pending()));
    match pki {
        Some(pki) => {
            wait_serving_on(pki.channel(addr)?, Instant::now(), Duration::from_secs(60)).await?
        }
        None => wait_serving(addr, Instant::now(), Duration::from_secs(60)).await?,
    }
    Ok(addr)
}

fn admin<T>(message: T) -> Result<Request<T>> {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"));
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Basic {basic}").parse()?);
    Ok(request)
}

/// Disables and re-enables one token `trials` times; each sample is the time
/// from DisableToken's OK to the verifier answering DISABLED.
pub async fn propagation_trials(
    issuer: SocketAddr,
    verifier: SocketAddr,
    trials: usize,
) -> Result<Vec<Duration>> {
    let issuer_channel = tonic::transport::Endpoint::from_shared(format!("http://{issuer}"))?
        .connect()
        .await?;
    propagation_trials_on(issuer_channel, verifier, trials).await
}

/// Like [`propagation_trials`], calling the issuer on `issuer_channel`.
pub async fn propagation_trials_on(
    issuer_channel: tonic::transport::Channel,
    verifier: SocketAddr,
    trials: usize,
) -> Result<Vec<Duration>> {
    use tessera_proto::v1::{
        self, token_service_client::TokenServiceClient,
        verifier_service_client::VerifierServiceClient,
    };
    let verifier_channel = tonic::transport::Endpoint::from_shared(format!("http://{verifier}"))?
        .connect()
        .await?;
    let mut tokens = TokenServiceClient::new(issuer_channel);
    let mut check = VerifierServiceClient::new(verifier_channel);
    let created = tokens
        .create_token(admin(v1::CreateTokenRequest {
            // Unique, so several verifiers can be measured on one issuer.
            name: format!("propagation {}", uuid::Uuid::now_v7().simple()),
            ..Default::default()
        })?)
        .await?
        .into_inner();
    let id = created.token.map(|t| t.id).unwrap_or_default();
    let selector = || {
        Some(v1::TokenSelector {
            id: id.clone(),
            ..Default::default()
        })
    };
    let mut reason = async |want: v1::VerifyReason| -> Result<Instant> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let answer = check
                .verify(VerifyRequest {
                    token: created.secret.clone(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            if answer.reason == want as i32 {
                return Ok(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        bail!("the verifier never answered {want:?}")
    };
    let mut samples = Vec::with_capacity(trials);
    for _ in 0..trials {
        reason(v1::VerifyReason::Ok).await?;
        // A random pause, so the disable does not always land at the same
        // point of the verifier's sync interval (the loop would phase-lock).
        let jitter = u64::from(uuid::Uuid::now_v7().as_u128() as u16 % 300);
        tokio::time::sleep(Duration::from_millis(jitter)).await;
        tokens
            .disable_token(admin(v1::DisableTokenRequest { token: selector() })?)
            .await?;
        let ok_at = Instant::now();
        let refused_at = reason(v1::VerifyReason::Disabled).await?;
        samples.push(refused_at - ok_at);
        tokens
            .enable_token(admin(v1::EnableTokenRequest { token: selector() })?)
            .await?;
    }
    Ok(samples)
}

/// A helper server the external figure starts as a process of its own.
#[derive(Debug, clap::Subcommand)]
pub enum Helper {
    /// Answers every Verify with one canned reply.
    Echo {
        #[arg(long)]
        listen: SocketAddr,
        /// The reply: base64 of the encoded `VerifyResponse`.
        #[arg(long)]
        reply: String,
    },
    /// Answers every HTTP request with an empty 200 (axum over HTTP/1.1,
    /// the forward-auth port's stack).
    HttpOk {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Answers every Verify after one primary-key lookup of a token row.
    Lookup {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        database_url: String,
        #[arg(long)]
        db_schema: Option<String>,
        #[arg(long)]
        token_id: String,
    },
}

/// The stateful design: every check reads the token's row.
struct Lookup {
    store: tessera_store::Store,
    id: String,
}

#[tonic::async_trait]
impl VerifierService for Lookup {
    async fn verify(
        &self,
        _request: Request<VerifyRequest>,
    ) -> Result<Response<VerifyResponse>, Status> {
        let row = self
            .store
            .token_by_id(&self.id)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?
            .ok_or_else(|| Status::not_found("no such token"))?;
        Ok(Response::new(VerifyResponse {
            valid: row.enabled,
            reason: tessera_proto::v1::VerifyReason::Ok as i32,
            token_id: row.id,
            owner_id: row.owner_id,
            ..Default::default()
        }))
    }
}

async fn serve_on<S: VerifierService>(listen: SocketAddr, service: S) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    Server::builder()
        .add_service(VerifierServiceServer::new(service))
        .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
        .await?;
    Ok(())
}

/// Runs a helper until killed.
pub async fn serve(helper: Helper) -> Result<()> {
    match helper {
        Helper::Echo { listen, reply } => {
            use base64::Engine;
            use prost::Message;
            let bytes = base64::engine::general_purpose::STANDARD.decode(reply)?;
            serve_on(listen, Echo(VerifyResponse::decode(&bytes[..])?)).await
        }
        Helper::HttpOk { listen } => {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            let app = axum::Router::new().fallback(|| async { axum::http::StatusCode::OK });
            axum::serve(listener, app).await?;
            Ok(())
        }
        Helper::Lookup {
            listen,
            database_url,
            db_schema,
            token_id,
        } => {
            let mut config = tessera_store::ConnectConfig::new(database_url);
            config.max_connections = 8;
            config.schema = db_schema;
            let store = tessera_store::Store::connect_with(config).await?;
            serve_on(
                listen,
                Lookup {
                    store,
                    id: token_id,
                },
            )
            .await
        }
    }
}
