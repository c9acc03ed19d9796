//! Binding, serving, health and the sync loop.

use crate::config::VerifierConfig;
use crate::error::VerifierError;
use crate::feed::{Follower, FollowerMetrics, Mismatch, Step};
use crate::gateway::rules::Rules;
use crate::gateway::{Gateway, ext_authz, forward_auth};
use crate::service::{Shared, Verifier};
use crate::upstream::{self, Upstream, UpstreamClient};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tessera_core::Clock;
use tessera_feed::{Feed, Settings};
use tessera_proto::v1::verifier_service_server::VerifierServiceServer;
use tessera_serve::shed::ShedLayer;
use tessera_serve::shutdown::{Background, Drain};
use tessera_serve::tls::TlsFiles;
use tessera_store::{ConnectConfig, Store};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::transport::ServerTlsConfig;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

const SERVICES: &[&str] = &[
    "",
    <VerifierServiceServer<Verifier> as NamedService>::NAME,
    <ext_authz::AuthzServer as NamedService>::NAME,
];

/// How often revocation entries of expired tokens are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// A bound, not yet serving, verifier.
#[derive(Debug)]
pub struct VerifierServer {
    listener: TcpListener,
    /// HTTP forward authentication, when configured.
    forward_auth: Option<TcpListener>,
    shared: Arc<Shared>,
    /// The route rules file, read at bind so a mistake stops the start.
    rules: Option<Rules>,
    tls: Option<ServerTlsConfig>,
    /// The feeds to follow, checked at bind for the same reason.
    upstreams: Vec<Upstream>,
}

impl VerifierServer {
    /// Binds the listen address. The store is read later, in the background,
    /// while health says NOT_SERVING.
    pub async fn bind(
        config: VerifierConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, VerifierError> {
        let tls = tls_config(&config)?;
        let upstreams = upstream::upstreams(&config)?;
        if upstreams.is_empty() && config.store_url().is_none() {
            return Err(VerifierError::Startup(
                "the verifier has nothing to follow: give it an upstream feed \
                 (--revocation-feed, TESSERA_REVOCATION_FEED) or a store (DATABASE_URL)"
                    .into(),
            ));
        }
        let rules = match &config.route_rules {
            Some(path) => Some(Rules::load(path).map_err(VerifierError::Startup)?),
            None => None,
        };
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            VerifierError::Startup(format!("cannot listen on {}: {e}", config.listen))
        })?;
        let forward_auth = match config.forward_auth_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                VerifierError::Startup(format!("cannot listen on {addr} for forward auth: {e}"))
            })?),
            None => None,
        };
        Ok(Self {
            listener,
            forward_auth,
            shared: Arc::new(Shared::new(config, clock)),
            rules,
            tls,
            upstreams,
        })
    }

    /// Where HTTP forward authentication is served, when it is.
    pub fn forward_auth_addr(&self) -> Option<SocketAddr> {
        self.forward_auth.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Result<SocketAddr, VerifierError> {
        self.listener
            .local_addr()
            .map_err(|e| VerifierError::Startup(format!("no local address: {e}")))
    }

    /// The shared state, for in-process benchmarks.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until `shutdown` completes; then reports NOT_SERVING, stops
    /// taking calls, and gives calls in flight `shutdown_grace` to finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), VerifierError> {
        let shared = self.shared;
        let config = shared.config.clone();
        let (reporter, health_service) = tonic_health::server::health_reporter();
        set_health(&reporter, ServingStatus::NotServing).await;
        let upstream = (!self.upstreams.is_empty()).then(|| {
            Arc::new(UpstreamClient::new(
                &self.upstreams,
                config.feed_secret.clone(),
                config.name(),
            ))
        });
        let feed = config.serve_feed.then(|| {
            Arc::new(Feed::new(
                Settings {
                    poll: RELAY_POLL,
                    heartbeat: RELAY_HEARTBEAT,
                    slow_follower: RELAY_SLOW_FOLLOWER,
                    secret: config.feed_secret.clone(),
                    window: config.relay_window,
                },
                shared.clock.clone(),
            ))
        });
        let sync = tokio::spawn(keep_in_sync(shared.clone(), self.upstreams, feed.clone()));
        let health = tokio::spawn(report_health(shared.clone(), reporter.clone()));
        // Stopped when this returns, and also when it is dropped unfinished:
        // an embedder that aborts its task (a test, `tessera dev`) must not
        // leave the sync loop polling the store with its pool open.
        let mut tasks = Background::default();
        tasks.add(&sync);
        tasks.add(&health);
        if shared.usage.is_on() {
            tasks.add(&tokio::spawn(flush_usage(shared.clone(), upstream.clone())));
        }
        if let Some(feed) = &feed {
            match &upstream {
                // A relay forwards its upstream as each message arrives
                // (the sync loop hands them over), and asks it for what is
                // older than its window.
                Some(upstream) => feed.relay_from(upstream.clone()),
                // A single host with no upstream serves its store's log.
                None => {
                    let (feed, shared) = (feed.clone(), shared.clone());
                    tasks.add(&tokio::spawn(async move {
                        feed.read(|| shared.store.get().cloned()).await
                    }));
                }
            }
        }

        // On the signal: stop the health task (it would report SERVING
        // again), report NOT_SERVING while still serving for the shutdown
        // delay (so probes on new connections see it), then drain.
        let drain = Drain::default();
        let health_abort = health.abort_handle();
        let draining = drain.clone();
        let delay = config.shutdown_delay;
        let closing = feed.clone();
        let stop_serving = async move {
            shutdown.await;
            if let Some(feed) = closing {
                feed.close();
            }
            health_abort.abort();
            set_health(&reporter, ServingStatus::NotServing).await;
            if !delay.is_zero() {
                tracing::info!(?delay, "shutting down: not serving, still answering");
                tokio::time::sleep(delay).await;
            }
            draining.start();
        };
        if let Some(addr) = config.metrics_listen {
            let bound =
                tessera_serve::metrics::serve(addr, shared.registry.clone(), drain.started())
                    .await
                    .map_err(|e| VerifierError::Startup(e.to_string()))?;
            tracing::info!(addr = %bound, "metrics served on /metrics");
        }

        let gateway = Arc::new(Gateway::new(shared.clone(), self.rules));
        if let Some(listener) = self.forward_auth {
            let app = forward_auth::router(gateway.clone());
            let stopped = drain.started();
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, path = forward_auth::PATH, "forward auth served");
            }
            let served = tokio::spawn(async move {
                let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
                {
                    tracing::error!(error = %e, "forward auth server failed");
                }
            });
            tasks.add(&served);
        }

        let (reflection, reflection_alpha) = tessera_serve::reflection::services(
            &[
                tessera_proto::FILE_DESCRIPTOR_SET,
                tonic_health::pb::FILE_DESCRIPTOR_SET,
            ],
            // Envoy's API is served from a partial schema: not listed.
            &SERVICES[1..2],
        )
        .map_err(|e| VerifierError::Startup(format!("reflection: {e}")))?;
        let verifier = VerifierServiceServer::new(Verifier(shared.clone()))
            .max_decoding_message_size(config.max_message_bytes);
        let mut builder = Server::builder();
        if let Some(tls) = self.tls {
            builder = builder
                .tls_config(tls)
                .map_err(|e| VerifierError::Startup(format!("TLS: {e}")))?;
        }
        let serve = builder
            .timeout(config.request_timeout)
            .trace_fn(tessera_serve::telemetry::quiet_grpc_span)
            .layer(shared.metrics.grpc.layer())
            .layer(ShedLayer::new(config.max_concurrent_requests))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(verifier)
            .add_service(ext_authz::service(gateway, config.max_message_bytes))
            .add_optional_service(feed.as_ref().map(Feed::service))
            .serve_with_incoming_shutdown(
                TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                stop_serving,
            );
        let result = drain
            .bounded(serve, config.shutdown_grace)
            .await
            .map_err(|e| VerifierError::Startup(format!("server: {e}")));
        drop(tasks);
        // A graceful stop keeps the last interval's uses, if the store or
        // the upstream answers soon; a crash loses them (see `usage`).
        if shared.usage.is_on() {
            let flushed = match (shared.store.get(), &upstream) {
                (Some(store), _) => {
                    Some(tokio::time::timeout(FINAL_FLUSH, shared.usage.flush(store)).await)
                }
                (None, Some(up)) => {
                    Some(tokio::time::timeout(FINAL_FLUSH, shared.usage.flush(up.as_ref())).await)
                }
                (None, None) => None,
            };
            match flushed {
                Some(Ok(Ok(flushed))) => {
                    tracing::info!(tokens = flushed.merged, "token uses flushed")
                }
                Some(Ok(Err(e))) => tracing::warn!(error = %e, "token uses could not be flushed"),
                Some(Err(_)) => tracing::warn!("token uses could not be flushed in time"),
                None => {}
            }
        }
        result
    }
}

/// Builds the first view over the feed; false (and logged) when the feed
/// cannot give it, so the store is read instead.
async fn load_from_feed(shared: &Shared, store: &Store, feed: &mut Follower, now_ms: i64) -> bool {
    let started = Instant::now();
    if shared
        .view
        .refresh_keys(store, now_ms.div_euclid(1000))
        .await
        .is_err()
    {
        return false;
    }
    let now = || shared.clock.now().timestamp_millis();
    match feed.load(&shared.view, now).await {
        Ok(events) => {
            shared.metrics.feed_loads.inc();
            tracing::info!(events, took = ?started.elapsed(), "revocation view loaded from the feed");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot load the revocation view from the feed; loading it from the store");
            false
        }
    }
}

/// How often a relaying verifier reads the log for its followers.
const RELAY_POLL: Duration = Duration::from_millis(100);

/// How often a relaying verifier's followers hear from it when nothing changes.
const RELAY_HEARTBEAT: Duration = Duration::from_secs(1);

/// A relaying verifier's follower that takes nothing this long is cut off.
const RELAY_SLOW_FOLLOWER: Duration = Duration::from_secs(10);

/// How long a stopping verifier waits to write its last token uses.
const FINAL_FLUSH: Duration = Duration::from_secs(5);

/// Merges the token uses counted every flush interval: into the store,
/// once it is open, or without one through the upstream feed. A failed
/// flush keeps what it could not write and is logged once until one
/// succeeds.
async fn flush_usage(shared: Arc<Shared>, upstream: Option<Arc<UpstreamClient>>) {
    let every = shared.config.usage_flush_interval;
    let mut failing = false;
    let has_store = shared.config.store_url().is_some();
    loop {
        tokio::time::sleep(every).await;
        let started = Instant::now();
        let flushed = match (shared.store.get(), &upstream) {
            (Some(store), _) => shared.usage.flush(store).await,
            (None, Some(upstream)) if !has_store => shared.usage.flush(upstream.as_ref()).await,
            // The store is still opening.
            _ => continue,
        };
        match flushed {
            Ok(flushed) => {
                if failing {
                    tracing::info!("token uses are merged again");
                }
                failing = false;
                tracing::debug!(
                    tokens = flushed.merged,
                    statements = flushed.statements,
                    took = ?started.elapsed(),
                    "token uses flushed"
                );
            }
            Err(e) => {
                if !failing {
                    let hint = if has_store {
                        "into the store (on PostgreSQL the verifier's role needs UPDATE of \
                         tokens' last-used columns: docs/verifier.md, \"Last used\")"
                    } else {
                        "by the upstream feed"
                    };
                    tracing::warn!(
                        error = %e,
                        "token uses could not be merged {hint}; kept for the next flush \
                         (--usage-flush-interval off stops tracking)"
                    );
                }
                failing = true;
            }
        }
    }
}

/// How often health is brought in line with the view's freshness.
const HEALTH_EVERY: Duration = Duration::from_millis(25);

/// Reports SERVING exactly while the view is fresh, judged on a timer of
/// its own: a sync stuck waiting on an unreachable store must not hold
/// health at SERVING while Verify already answers STALE.
async fn report_health(shared: Arc<Shared>, reporter: HealthReporter) {
    let policy = shared.policy();
    let mut serving = false;
    loop {
        let now_ms = shared.clock.now().timestamp_millis();
        let age_ms = shared.view.age_ms(now_ms);
        let fresh = age_ms.is_some_and(|age| age <= policy.max_staleness_ms);
        let metrics = &shared.metrics;
        metrics
            .staleness_seconds
            .set(age_ms.map_or(f64::INFINITY, |ms| ms as f64 / 1000.0));
        metrics.stale.set(i64::from(!fresh));
        if fresh != serving {
            if fresh {
                tracing::info!("revocation view is fresh: serving");
            } else {
                tracing::warn!("revocation view is stale: not serving, refusing every token");
            }
            set_health(
                &reporter,
                if fresh {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                },
            )
            .await;
            serving = fresh;
        }
        tokio::time::sleep(HEALTH_EVERY).await;
    }
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    for name in SERVICES {
        reporter.set_service_status(*name, status).await;
    }
}

/// Follows the feed with no store: the view, its keys and its log's
/// identity all come from the upstreams. While none answers there is
/// nothing to poll: the view ages, and past the staleness limit every
/// check fails closed.
async fn follow_only(shared: &Shared, mut feed: Follower) {
    let config = &shared.config;
    let view = &shared.view;
    let now = || shared.clock.now().timestamp_millis();
    let mut pruned = Instant::now();
    let mut retry = FIRST_LOAD_RETRY;
    loop {
        if view.is_loaded() {
            match feed.step(view, config.sync_interval, now).await {
                Step::Applied(_) | Step::Quiet | Step::Resync => {}
                Step::Poll => {
                    let wait = feed.retry_in().unwrap_or(config.sync_interval);
                    tokio::time::sleep(wait.min(config.sync_interval)).await;
                }
                Step::WrongLog => {}
            }
        } else {
            let started = Instant::now();
            match feed.load(view, now).await {
                Ok(events) => {
                    shared.metrics.feed_loads.inc();
                    retry = FIRST_LOAD_RETRY;
                    tracing::info!(events, took = ?started.elapsed(), upstream = feed.url(), "revocation view loaded from the feed");
                }
                Err(e) if feed.mismatch().is_none() => {
                    tracing::warn!(error = %e, retry_in = ?retry, "cannot load the revocation view from the feed; no store to read instead");
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(MAX_LOAD_RETRY);
                }
                Err(_) => {}
            }
        }
        if let Some(mismatch) = feed.mismatch() {
            refuse_wrong_log(shared, mismatch).await;
        }
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = Instant::now();
            view.prune(now().div_euclid(1000));
        }
        let metrics = &shared.metrics;
        metrics
            .revocation_entries
            .set(i64::try_from(view.revocation_entries()).unwrap_or(i64::MAX));
        metrics.last_seq.set(view.last_seq());
        metrics.feed_following.set(i64::from(feed.is_following()));
    }
}

/// How long a verifier with no store waits to try loading its view again,
/// at first and at most.
const FIRST_LOAD_RETRY: Duration = Duration::from_millis(250);
const MAX_LOAD_RETRY: Duration = Duration::from_secs(5);

async fn connect(config: &VerifierConfig) -> Store {
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut connect = ConnectConfig::new(config.database_url.clone());
        connect.max_connections = config.db_max_connections;
        connect.schema = config.db_schema.clone();
        // The issuer creates and migrates the database; a verifier only reads.
        connect.create = false;
        match Store::connect_with(connect).await {
            Ok(store) => return store,
            Err(e) => {
                tracing::error!(error = %e, retry_in = ?backoff, "cannot open the store");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The identity of the store's revocation log, read until it is.
async fn store_log_id(store: &Store) -> String {
    let mut backoff = Duration::from_millis(100);
    loop {
        match store.log_id().await {
            Ok(id) => return id,
            Err(e) => {
                tracing::error!(error = %e, retry_in = ?backoff, "cannot read the store's log identity");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Refuses to serve for good: the feed is another log than the store.
/// Every check answers STALE with the reason, health says NOT_SERVING, and
/// the error is said again every minute for whoever reads the log later.
async fn refuse_wrong_log(shared: &Shared, mismatch: &Mismatch) -> ! {
    let store = tessera_store::redact(&shared.config.database_url);
    let why = if shared.config.store_url().is_some() {
        format!(
            "the verifier refuses every token: its store ({store}) is revocation log {:?} but \
             its feed ({}) serves log {:?}; point --revocation-feed at the issuers of this \
             store, or the store at theirs, and restart",
            mismatch.expected_log, mismatch.url, mismatch.feed_log
        )
    } else {
        format!(
            "the verifier refuses every token: it followed revocation log {:?}, and its \
             upstream {} serves log {:?}; list only upstreams of one log in \
             --revocation-feed, and restart",
            mismatch.expected_log, mismatch.url, mismatch.feed_log
        )
    };
    shared.view.refuse(why);
    shared.metrics.wrong_log.set(1);
    loop {
        tracing::error!(
            store = %store,
            store_log = %mismatch.expected_log,
            feed = %mismatch.url,
            feed_log = %mismatch.feed_log,
            "the revocation feed and the store are different logs: refusing every token"
        );
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

/// Loads the view, then follows the revocation log: over the feed, and
/// through the store when there is one (at start, and while the feed is
/// away); every message is handed on to `relay` when this verifier relays.
async fn keep_in_sync(shared: Arc<Shared>, upstreams: Vec<Upstream>, relay: Option<Arc<Feed>>) {
    let config = shared.config.clone();
    let mut feed = (!upstreams.is_empty()).then(|| {
        let metrics = FollowerMetrics {
            resyncs: shared.metrics.feed_resyncs.clone(),
            failures: shared.metrics.feed_failures.clone(),
        };
        let mut follower = Follower::new(
            upstreams,
            config.feed_secret.clone(),
            config.name(),
            metrics,
        );
        if let Some(relay) = relay {
            follower.relay_to(relay);
        }
        follower
    });
    if config.store_url().is_none() {
        // Checked at bind: without a store there is an upstream.
        if let Some(feed) = feed {
            follow_only(&shared, feed).await;
        }
        return;
    }
    let store = connect(&config).await;
    let store = shared.store.get_or_init(|| store);
    let view = &shared.view;
    let mut failing = false;
    let mut keys_refreshed = Instant::now();
    let mut pruned = Instant::now();
    if let Some(feed) = feed.as_mut() {
        // A feed is followed only as this store's log: there is no way to
        // answer from one log while following another.
        feed.expect_log(store_log_id(store).await);
    }
    loop {
        let now_ms = shared.clock.now().timestamp_millis();
        // Polling waits a sync interval after each poll; a stream waits for
        // its next message instead (at most a sync interval, so the upkeep
        // below still runs).
        let polled;
        let result = if view.is_loaded() {
            let step = match feed.as_mut() {
                Some(feed) => {
                    let now = || shared.clock.now().timestamp_millis();
                    feed.step(view, config.sync_interval, now).await
                }
                None => Step::Poll,
            };
            // A resync polls at once and reopens the feed without waiting.
            polled = step == Step::Poll;
            match step {
                Step::Poll | Step::Resync => view.follow(store, now_ms).await.map(|_| ()),
                Step::Applied(_) | Step::Quiet => Ok(()),
                Step::WrongLog => match feed.as_ref().and_then(Follower::mismatch) {
                    Some(mismatch) => refuse_wrong_log(&shared, mismatch).await,
                    None => Ok(()),
                },
            }
        } else {
            let started = Instant::now();
            // From the feed when there is one, so verifiers starting
            // together do not all read the whole log from the store; from
            // the store when the feed cannot give it.
            let from_feed = match feed.as_mut() {
                Some(feed) => load_from_feed(&shared, store, feed, now_ms).await,
                None => false,
            };
            if let Some(mismatch) = feed.as_ref().and_then(Follower::mismatch) {
                refuse_wrong_log(&shared, mismatch).await;
            }
            let loaded = if from_feed {
                Ok(())
            } else {
                view.load(store, now_ms).await
            };
            let loaded = loaded.inspect(|()| {
                tracing::info!(
                    entries = view.revocation_entries(),
                    last_seq = view.last_seq(),
                    took = ?started.elapsed(),
                    "revocation view loaded"
                );
            });
            // Loaded: open the feed now rather than after a sync interval.
            polled = !(loaded.is_ok() && feed.is_some());
            loaded
        };
        match (&result, failing) {
            (Err(e), false) => tracing::warn!(error = %e, "revocation sync failed; retrying"),
            (Ok(()), true) => tracing::info!("revocation sync recovered"),
            _ => {}
        }
        failing = result.is_err();
        if view.is_loaded() && keys_refreshed.elapsed() >= config.key_refresh_interval {
            keys_refreshed = Instant::now();
            if let Err(e) = view.refresh_keys(store, now_ms.div_euclid(1000)).await {
                tracing::warn!(error = %e, "could not reload keys");
            }
        }
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = Instant::now();
            view.prune(now_ms.div_euclid(1000));
        }
        let metrics = &shared.metrics;
        metrics
            .revocation_entries
            .set(i64::try_from(view.revocation_entries()).unwrap_or(i64::MAX));
        metrics.last_seq.set(view.last_seq());
        metrics.pool.set(store.pool_use());
        metrics
            .feed_following
            .set(i64::from(feed.as_ref().is_some_and(Follower::is_following)));
        if polled {
            let retry = feed.as_ref().and_then(Follower::retry_in);
            let wait = retry.map_or(config.sync_interval, |r| r.min(config.sync_interval));
            tokio::time::sleep(wait).await;
        }
    }
}

/// The listener's TLS configuration, read (and checked) before binding.
fn tls_config(config: &VerifierConfig) -> Result<Option<ServerTlsConfig>, VerifierError> {
    TlsFiles {
        cert: config.tls_cert.clone(),
        key: config.tls_key.clone(),
        client_ca: config.tls_client_ca.clone(),
    }
    .server_config()
    .map_err(|e| VerifierError::Startup(e.to_string()))
}
