//! Binding, serving, health and shutdown.

use crate::error::IssuerError;
use crate::screen::ScreenLayer;
use crate::service::{audit::Audit, keys::Keys, session::Sessions, tokens::Tokens, users::Users};
use crate::state::Shared;
use crate::{IssuerConfig, bootstrap, maintenance};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tessera_core::Clock;
use tessera_feed::{Feed, FeedService, Settings};
use tessera_proto::v1::revocation_feed_service_server::RevocationFeedServiceServer;
use tessera_proto::v1::{
    audit_service_server::AuditServiceServer, key_service_server::KeyServiceServer,
    session_service_server::SessionServiceServer, token_service_server::TokenServiceServer,
    user_service_server::UserServiceServer,
};
use tessera_serve::metrics::prometheus_client::registry::Registry;
use tessera_serve::metrics::{GrpcMetrics, PoolMetrics};
use tessera_serve::shed::ShedLayer;
use tessera_serve::shutdown::{Background, Drain};
use tessera_serve::tls::TlsFiles;
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::transport::ServerTlsConfig;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// The names health is reported under: the whole server (`""`) and each service.
const SERVICES: &[&str] = &[
    "",
    <SessionServiceServer<Sessions> as NamedService>::NAME,
    <TokenServiceServer<Tokens> as NamedService>::NAME,
    <UserServiceServer<Users> as NamedService>::NAME,
    <KeyServiceServer<Keys> as NamedService>::NAME,
    <AuditServiceServer<Audit> as NamedService>::NAME,
    <RevocationFeedServiceServer<FeedService> as NamedService>::NAME,
];

/// A bound, not yet serving, issuer.
#[derive(Debug)]
pub struct Issuer {
    listener: TcpListener,
    /// FME's HTTP endpoints (`--http-listen`), when asked for.
    http: Option<TcpListener>,
    shared: Arc<Shared>,
    tls: Option<ServerTlsConfig>,
}

impl Issuer {
    /// Checks the configuration, finds the KEK and binds the listen address.
    /// The store is connected later, in the background, while health says
    /// NOT_SERVING.
    pub async fn bind(config: IssuerConfig, clock: Arc<dyn Clock>) -> Result<Self, IssuerError> {
        bootstrap::check_admin_password(&config)?;
        bootstrap::check_issuer_name(&config)?;
        let kek = bootstrap::resolve_kek(&config)?;
        let tls = tls_config(&config)?;
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            IssuerError::FailedPrecondition(format!("cannot listen on {}: {e}", config.listen))
        })?;
        let http = match config.http_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                IssuerError::FailedPrecondition(format!("cannot listen on {addr} for HTTP: {e}"))
            })?),
            None => None,
        };
        Ok(Self {
            listener,
            http,
            shared: Arc::new(Shared::new(config, clock, kek)?),
            tls,
        })
    }

    /// The address FME's HTTP endpoints are bound to, when they are served.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, IssuerError> {
        self.listener
            .local_addr()
            .map_err(|e| IssuerError::Internal(format!("no local address: {e}")))
    }

    /// Serves until `shutdown` completes; then reports NOT_SERVING, stops
    /// taking calls, and gives calls in flight `shutdown_grace` to finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), IssuerError> {
        let shared = self.shared;
        let config = shared.config.clone();
        let (reporter, health_service) = tonic_health::server::health_reporter();
        set_health(&reporter, ServingStatus::NotServing).await;
        let mut registry = Registry::with_prefix("tessera_issuer");
        let pool_metrics = PoolMetrics::register(&mut registry);
        let follower_metrics = crate::followers::FollowerMetrics::register(&mut registry);
        shared.logins.register(&mut registry);
        shared.hygiene.register(&mut registry);
        tracing::info!(
            at_once = shared.hashing.size(),
            memory_mib = config.password_hash_memory_mib,
            "password hashing budget"
        );
        let background = tokio::spawn(keep_healthy(shared.clone(), reporter.clone(), pool_metrics));
        let upkeep = tokio::spawn(maintenance::run(shared.clone()));
        // Also stopped if this future is dropped unfinished.
        let mut tasks = Background::default();
        tasks.add(&background);
        tasks.add(&upkeep);
        let feed = Arc::new(Feed::new(
            Settings {
                poll: config.feed_poll_interval,
                heartbeat: config.feed_heartbeat,
                slow_follower: config.feed_slow_follower,
                secret: config.feed_secret.clone(),
                window: tessera_feed::WINDOW,
            },
            shared.clock.clone(),
        ));
        let reader = {
            let (feed, shared) = (feed.clone(), shared.clone());
            tokio::spawn(async move { feed.read(|| shared.store().ok().cloned()).await })
        };
        tasks.add(&reader);
        tasks.add(&tokio::spawn(follower_metrics.follow(feed.clone())));

        // On the signal: stop the health loop (it would report SERVING
        // again), report NOT_SERVING, then let the server drain.
        let drain = Drain::default();
        let health_abort = background.abort_handle();
        let draining = drain.clone();
        let delay = config.shutdown_delay;
        let closing = feed.clone();
        let face = match &self.http {
            Some(_) => Some(crate::http::Face::new(shared.clone())?),
            None => None,
        };
        let face_closing = face.clone();
        let stop_serving = async move {
            shutdown.await;
            closing.close();
            if let Some(face) = &face_closing {
                face.stop();
            }
            health_abort.abort();
            set_health(&reporter, ServingStatus::NotServing).await;
            // Still serving, so probes on new connections see NOT_SERVING
            // before the listener closes.
            if !delay.is_zero() {
                tracing::info!(?delay, "shutting down: not serving, still answering");
                tokio::time::sleep(delay).await;
            }
            draining.start();
        };
        let grpc_metrics = GrpcMetrics::register(&mut registry);
        if let Some(addr) = config.metrics_listen {
            let bound = tessera_serve::metrics::serve(addr, Arc::new(registry), drain.started())
                .await
                .map_err(|e| IssuerError::FailedPrecondition(e.to_string()))?;
            tracing::info!(addr = %bound, "metrics served on /metrics");
        }

        // FME's endpoints stop taking connections with the gRPC listener and
        // get the same grace for requests in flight.
        let http = match (self.http, face) {
            (Some(listener), Some(face)) => {
                let (drain, grace) = (drain.clone(), config.shutdown_grace);
                let served = crate::http::serve(listener, face, drain.started());
                let task = tokio::spawn(async move {
                    if let Err(e) = drain.bounded(served, grace).await {
                        tracing::error!(error = %e, "the HTTP server failed");
                    }
                });
                tasks.add(&task);
                Some(task)
            }
            _ => None,
        };

        let (reflection, reflection_alpha) = tessera_serve::reflection::services(
            &[
                tessera_proto::FILE_DESCRIPTOR_SET,
                tonic_health::pb::FILE_DESCRIPTOR_SET,
            ],
            &SERVICES[1..],
        )
        .map_err(|e| IssuerError::Internal(format!("reflection: {e}")))?;

        let screen = ScreenLayer::new(tessera_proto::FILE_DESCRIPTOR_SET)
            .map_err(|e| IssuerError::Internal(format!("request screen: {e}")))?;
        let mut builder = Server::builder();
        if let Some(tls) = self.tls {
            builder = builder
                .tls_config(tls)
                .map_err(|e| IssuerError::FailedPrecondition(format!("TLS: {e}")))?;
        }
        let serve = builder
            .timeout(config.request_timeout)
            .trace_fn(tessera_serve::telemetry::grpc_span)
            .layer(grpc_metrics.layer())
            .layer(ShedLayer::new(config.max_concurrent_requests))
            .layer(screen)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(SessionServiceServer::new(Sessions(shared.clone())))
            .add_service(TokenServiceServer::new(Tokens(shared.clone())))
            .add_service(UserServiceServer::new(Users(shared.clone())))
            .add_service(KeyServiceServer::new(Keys(shared.clone())))
            .add_service(AuditServiceServer::new(Audit(shared.clone())))
            .add_service(feed.service())
            .serve_with_incoming_shutdown(
                // Without TCP_NODELAY a reply's small HTTP/2 frames wait on
                // the client's delayed ACK: ~40 ms on every call.
                TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                stop_serving,
            );
        let result = drain
            .bounded(serve, config.shutdown_grace)
            .await
            .map_err(|e| IssuerError::Internal(format!("server: {e}")));
        if let Some(http) = http {
            let _ = http.await;
        }
        drop(tasks);
        // After a clean stop the SQLite file alone holds everything.
        if let Ok(store) = shared.store()
            && let Err(e) = store.checkpoint().await
        {
            tracing::warn!(error = %e, "could not checkpoint the database at shutdown");
        }
        result
    }
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    for name in SERVICES {
        reporter.set_service_status(*name, status).await;
    }
}

/// Starts the store (retrying with back-off until it answers), then reports
/// SERVING while the store answers and NOT_SERVING while it does not.
async fn keep_healthy(shared: Arc<Shared>, reporter: HealthReporter, pool: PoolMetrics) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match bootstrap::start(&shared).await {
            Ok(store) => {
                shared.set_store(store);
                break;
            }
            Err(e) => {
                tracing::error!(error = %e, retry_in = ?backoff, "issuer start-up failed");
                shared.start_failed(&e);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    tracing::info!("issuer ready");
    let mut serving = None;
    loop {
        let ok = match shared.store() {
            Ok(store) => {
                pool.set(store.pool_use());
                // A ping that waits on the pool's connect timeout (seconds)
                // would hold health at SERVING long after the store went:
                // no answer within the interval is no answer.
                let within = shared
                    .config
                    .health_interval
                    .max(Duration::from_millis(100));
                matches!(tokio::time::timeout(within, store.ping()).await, Ok(Ok(())))
            }
            Err(_) => false,
        };
        if serving != Some(ok) {
            if ok {
                tracing::info!("store answers: serving");
            } else {
                tracing::warn!("store does not answer: not serving");
            }
            let status = if ok {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            set_health(&reporter, status).await;
            serving = Some(ok);
        }
        tokio::time::sleep(shared.config.health_interval).await;
    }
}

/// The listener's TLS configuration, read (and checked) before binding.
fn tls_config(config: &IssuerConfig) -> Result<Option<ServerTlsConfig>, IssuerError> {
    TlsFiles {
        cert: config.tls_cert.clone(),
        key: config.tls_key.clone(),
        client_ca: config.tls_client_ca.clone(),
    }
    .server_config()
    .map_err(|e| IssuerError::FailedPrecondition(e.to_string()))
}
