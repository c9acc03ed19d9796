//! Following the upstreams' revocation feed (`WatchRevocations`): the
//! verifier's source of truth, with or without a store beside it.
//!
//! Each message says the position it continues from; one that does not
//! match what the view holds means events were missed, so the stream is
//! dropped and opened again from the view's own last event, which the
//! issuer fills from the store. A message or heartbeat marks the view
//! current, exactly as a successful poll does, so staleness, health and
//! failing closed do not depend on the source. While no upstream can be
//! followed, the caller polls the store and tries them again later, each
//! in turn.
//!
//! Every message names the log it comes from. A message from a log other
//! than the store's is never applied: the follower records the mismatch
//! and the caller stops serving.

use crate::upstream::{Upstream, authorize, describe};
use crate::view::View;
use std::sync::Arc;
use std::time::Duration;
use tessera_core::revocation::RevocationSet;
use tessera_feed::{Feed, from_wire};
use tessera_proto::v1::{self, revocation_feed_service_client::RevocationFeedServiceClient};
use tokio::time::Instant;
use tonic::Streaming;
use tonic::transport::Channel;

/// How long to wait before trying an unreachable feed again, at first.
const FIRST_RETRY: Duration = Duration::from_millis(250);

/// How long to wait before trying an unreachable feed again, at most.
const MAX_RETRY: Duration = Duration::from_secs(10);

/// A stream silent this long (no event, no heartbeat; the issuer sends a
/// heartbeat every second by default) is taken for broken: the store is
/// polled instead of waiting for staleness to fail every check.
const SILENCE: Duration = Duration::from_secs(5);

/// Largest feed message read (a catch-up page of events).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// What one step of following gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A message (events or a heartbeat) was applied.
    Applied(usize),
    /// Nothing arrived in the time given; the stream is still open.
    Quiet,
    /// No stream: poll the store this time.
    Poll,
    /// The feed skipped events: poll the store now and reopen the stream
    /// at once, from the view's last event.
    Resync,
    /// The feed serves another log than the store's: see
    /// [`Follower::mismatch`]. Nothing of it was applied.
    WrongLog,
}

/// A feed found serving another log than the one expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub url: String,
    /// The identity the feed sent (empty: it sent none).
    pub feed_log: String,
    pub expected_log: String,
}

/// What following counts.
#[derive(Debug, Clone, Default)]
pub struct FollowerMetrics {
    /// Gaps that made the follower start over.
    pub resyncs: prometheus_client::metrics::counter::Counter,
    /// Attempts to open a stream that failed.
    pub failures: prometheus_client::metrics::counter::Counter,
}

/// The state of following the upstreams' feed.
pub struct Follower {
    upstreams: Vec<Upstream>,
    /// The upstream tried next, or followed now.
    current: usize,
    secret: Option<String>,
    /// The name this verifier gives itself to its upstreams.
    name: String,
    /// The identity of the log the view must come from: the store's, or
    /// without a store the one the first message named.
    expected_log: Option<String>,
    /// The feed this verifier relays, handed every message it applies.
    relay: Option<Arc<Feed>>,
    mismatch: Option<Mismatch>,
    stream: Option<Streaming<v1::WatchRevocationsResponse>>,
    /// The position the stream has taken the view to.
    position: i64,
    retry_at: Instant,
    retry: Duration,
    /// When the stream last sent anything.
    heard: Instant,
    metrics: FollowerMetrics,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("following", &self.stream.is_some())
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl Follower {
    /// Follows `upstreams` (checked at start: [`crate::upstream`]), in turn.
    pub fn new(
        upstreams: Vec<Upstream>,
        secret: Option<String>,
        name: String,
        metrics: FollowerMetrics,
    ) -> Self {
        Self {
            upstreams,
            current: 0,
            secret,
            name,
            expected_log: None,
            relay: None,
            mismatch: None,
            stream: None,
            position: 0,
            retry_at: Instant::now(),
            retry: FIRST_RETRY,
            heard: Instant::now(),
            metrics,
        }
    }

    /// Accepts messages of the log `id` only.
    pub fn expect_log(&mut self, id: String) {
        self.expected_log = Some(id);
    }

    /// Hands every message applied to `feed`, which serves it onward.
    pub fn relay_to(&mut self, feed: Arc<Feed>) {
        self.relay = Some(feed);
    }

    /// Takes what a message carries besides events: the keys, and for a
    /// relay, the message itself.
    fn take_in(&self, view: &View, message: &v1::WatchRevocationsResponse) {
        if !message.keys.is_empty() {
            view.set_feed_keys(&message.keys);
        }
        if let Some(relay) = &self.relay {
            relay.accept(message);
        }
    }

    /// The feed found serving another log, if one was.
    pub fn mismatch(&self) -> Option<&Mismatch> {
        self.mismatch.as_ref()
    }

    /// Whether a stream is open now.
    pub fn is_following(&self) -> bool {
        self.stream.is_some()
    }

    /// How long until an upstream is due to be tried again, while none is
    /// followed: polling must not make a retry wait a whole sync interval.
    pub fn retry_in(&self) -> Option<Duration> {
        self.stream
            .is_none()
            .then(|| self.retry_at.saturating_duration_since(Instant::now()))
    }

    /// The upstream followed now, or tried next.
    pub fn url(&self) -> &str {
        self.upstreams
            .get(self.current)
            .map_or("", |u| u.url.as_str())
    }

    /// Whether `message` is of the expected log; records the mismatch and
    /// drops the stream when it is not.
    fn same_log(&mut self, message: &v1::WatchRevocationsResponse) -> bool {
        let Some(expected) = &self.expected_log else {
            // No store to compare with: the first log is the one, and a
            // failover to an upstream of another log is a mismatch.
            if !message.log_id.is_empty() {
                self.expected_log = Some(message.log_id.clone());
                return true;
            }
            self.mismatch = Some(Mismatch {
                url: self.url().to_owned(),
                feed_log: String::new(),
                expected_log: "a named log".into(),
            });
            self.stream = None;
            return false;
        };
        if &message.log_id == expected {
            return true;
        }
        self.mismatch = Some(Mismatch {
            url: self.url().to_owned(),
            feed_log: message.log_id.clone(),
            expected_log: expected.clone(),
        });
        self.stream = None;
        false
    }

    async fn open(&mut self, after: i64) -> Result<(), String> {
        let result = self.open_current(after).await;
        if result.is_err() {
            self.metrics.failures.inc();
            // The next attempt tries the next upstream.
            self.current = (self.current + 1) % self.upstreams.len().max(1);
        }
        result
    }

    async fn open_current(&mut self, after: i64) -> Result<(), String> {
        let upstream = self
            .upstreams
            .get(self.current)
            .ok_or("no revocation feed is configured")?;
        let url = upstream.url.clone();
        let channel: Channel = upstream
            .endpoint
            .connect()
            .await
            .map_err(|e| format!("{url}: {}", describe(&e)))?;
        let mut client =
            RevocationFeedServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
        let request = authorize(
            v1::WatchRevocationsRequest { after_seq: after },
            self.secret.as_deref(),
            &self.name,
        )?;
        let stream = client
            .watch_revocations(request)
            .await
            .map_err(|s| format!("{url}: {:?}: {}", s.code(), s.message()))?
            .into_inner();
        self.stream = Some(stream);
        self.position = after;
        self.heard = Instant::now();
        Ok(())
    }

    fn drop_stream(&mut self, retry_in: Duration) {
        self.stream = None;
        self.retry_at = Instant::now() + retry_in;
    }

    /// Builds the first view from the feed instead of the store: every
    /// live event from the start, into a set built aside and swapped in once
    /// the feed says it is caught up. The stream stays open to follow.
    pub async fn load(&mut self, view: &View, now_ms: impl Fn() -> i64) -> Result<usize, String> {
        let loaded = self.load_once(view, now_ms).await;
        if loaded.is_err() {
            self.drop_stream(FIRST_RETRY);
        }
        loaded
    }

    async fn load_once(&mut self, view: &View, now_ms: impl Fn() -> i64) -> Result<usize, String> {
        self.open(0).await?;
        let mut set = RevocationSet::new();
        let mut applied = 0;
        loop {
            let stream = self.stream.as_mut().ok_or("the stream closed")?;
            let message = match tokio::time::timeout(SILENCE, stream.message()).await {
                Ok(Ok(Some(message))) => message,
                Ok(Ok(None)) => Err("the feed ended while loading")?,
                Ok(Err(status)) => Err(format!("{}: {}", status.code(), status.message()))?,
                Err(_) => Err("the feed went silent while loading")?,
            };
            if !self.same_log(&message) {
                Err("the feed serves another log than the store's")?;
            }
            if message.after_seq != self.position {
                self.metrics.resyncs.inc();
                Err("the feed skipped events while loading")?;
            }
            set.reserve(message.events.len());
            for event in &message.events {
                set.apply(&from_wire(event).decode().map_err(|e| e.to_string())?);
            }
            self.take_in(view, &message);
            applied += message.events.len();
            self.position = message.last_seq;
            self.heard = Instant::now();
            if message.caught_up {
                view.install(set, now_ms());
                return Ok(applied);
            }
        }
    }

    /// Waits at most `wait` for the next message and applies it; opens the
    /// stream first when it is closed and due to be tried again.
    pub async fn step(&mut self, view: &View, wait: Duration, now_ms: impl Fn() -> i64) -> Step {
        if self.stream.is_none() {
            if Instant::now() < self.retry_at {
                return Step::Poll;
            }
            // The view's last event: every event before it is applied.
            let after = view.last_seq();
            match self.open(after).await {
                Ok(()) => {
                    tracing::info!(
                        after,
                        upstream = self.url(),
                        "following the revocation feed"
                    );
                    self.retry = FIRST_RETRY;
                }
                Err(e) => {
                    // Every failed attempt is said (at most one every
                    // MAX_RETRY once it lasts), with the cause: a wrong
                    // certificate or secret must not pass for a short outage.
                    tracing::warn!(error = %e, retry_in = ?self.retry, "cannot follow the revocation feed; trying the upstreams in turn (a verifier with a store polls it meanwhile)");
                    let retry = self.retry;
                    self.retry = (self.retry * 2).min(MAX_RETRY);
                    self.drop_stream(retry);
                    return Step::Poll;
                }
            }
        }
        let Some(stream) = self.stream.as_mut() else {
            return Step::Poll;
        };
        let message = match tokio::time::timeout(wait, stream.message()).await {
            Err(_) if self.heard.elapsed() < SILENCE => return Step::Quiet,
            Err(_) => {
                tracing::warn!(silent_for = ?self.heard.elapsed(), "the revocation feed went silent; trying the upstreams again (a verifier with a store polls it meanwhile)");
                self.drop_stream(FIRST_RETRY);
                return Step::Poll;
            }
            Ok(Ok(Some(message))) => message,
            Ok(Ok(None)) => {
                tracing::warn!(
                    "the revocation feed ended; trying the upstreams again (a verifier with a store polls it meanwhile)"
                );
                self.drop_stream(FIRST_RETRY);
                return Step::Poll;
            }
            Ok(Err(status)) => {
                tracing::warn!(code = ?status.code(), message = status.message(), upstream = self.url(), "the revocation feed failed; trying the next upstream (a verifier with a store polls it meanwhile)");
                // Fail over: this upstream said it cannot serve.
                self.current = (self.current + 1) % self.upstreams.len().max(1);
                self.drop_stream(Duration::ZERO);
                return Step::Poll;
            }
        };
        self.heard = Instant::now();
        if !self.same_log(&message) {
            return Step::WrongLog;
        }
        if message.after_seq != self.position {
            tracing::warn!(
                expected = self.position,
                got = message.after_seq,
                "the revocation feed skipped events; starting over from the view's last event"
            );
            self.metrics.resyncs.inc();
            self.drop_stream(Duration::ZERO);
            return Step::Resync;
        }
        let events: Result<Vec<_>, _> = message
            .events
            .iter()
            .map(|e| from_wire(e).decode())
            .collect();
        match events {
            Ok(events) => {
                view.apply(&events, now_ms());
                self.take_in(view, &message);
                self.position = message.last_seq;
                Step::Applied(events.len())
            }
            Err(e) => {
                tracing::error!(error = %e, "the revocation feed sent an unreadable event; trying the upstreams again later");
                self.drop_stream(MAX_RETRY);
                Step::Poll
            }
        }
    }
}
