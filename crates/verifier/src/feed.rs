//! Following the issuer's revocation feed (`WatchRevocations`) instead of
//! polling the store.
//!
//! Each message says the position it continues from; one that does not
//! match what the view holds means events were missed, so the stream is
//! dropped and opened again from the view's own last event, which the
//! issuer fills from the store. A message or heartbeat marks the view
//! current, exactly as a successful poll does, so staleness, health and
//! failing closed do not depend on the source. While the feed cannot be
//! reached, the caller polls the store and tries the feed again later.

use crate::view::View;
use std::time::Duration;
use tessera_core::revocation::RevocationSet;
use tessera_feed::from_wire;
use tessera_proto::v1::{self, revocation_feed_service_client::RevocationFeedServiceClient};
use tokio::time::Instant;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint};

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
}

/// The state of following one feed.
pub struct Follower {
    endpoint: Option<Endpoint>,
    secret: Option<String>,
    stream: Option<Streaming<v1::WatchRevocationsResponse>>,
    /// The position the stream has taken the view to.
    position: i64,
    retry_at: Instant,
    retry: Duration,
    /// When the stream last sent anything.
    heard: Instant,
    /// Counts gaps that made the follower start over.
    resyncs: prometheus_client::metrics::counter::Counter,
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
    /// Follows `url`; a URL that cannot be an endpoint is logged and the
    /// store is polled instead.
    pub fn new(
        url: &str,
        secret: Option<String>,
        resyncs: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        let endpoint = match Endpoint::from_shared(url.to_owned()) {
            Ok(e) => Some(
                e.connect_timeout(Duration::from_secs(2))
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(10))
                    .keep_alive_timeout(Duration::from_secs(5)),
            ),
            Err(e) => {
                tracing::error!(%url, error = %e, "the revocation feed URL is unusable; polling the store");
                None
            }
        };
        Self {
            endpoint,
            secret,
            stream: None,
            position: 0,
            retry_at: Instant::now(),
            retry: FIRST_RETRY,
            heard: Instant::now(),
            resyncs,
        }
    }

    /// Whether a stream is open now.
    pub fn is_following(&self) -> bool {
        self.stream.is_some()
    }

    async fn open(&mut self, after: i64) -> Result<(), String> {
        let endpoint = self.endpoint.clone().ok_or("no usable feed URL")?;
        let channel: Channel = endpoint.connect().await.map_err(|e| e.to_string())?;
        let mut client =
            RevocationFeedServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
        let mut request = tonic::Request::new(v1::WatchRevocationsRequest { after_seq: after });
        if let Some(secret) = &self.secret {
            let value = format!("Bearer {secret}")
                .parse()
                .map_err(|_| "the feed secret is not a valid header value")?;
            request.metadata_mut().insert("authorization", value);
        }
        let stream = client
            .watch_revocations(request)
            .await
            .map_err(|s| format!("{}: {}", s.code(), s.message()))?
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
            if message.after_seq != self.position {
                self.resyncs.inc();
                Err("the feed skipped events while loading")?;
            }
            set.reserve(message.events.len());
            for event in &message.events {
                set.apply(&from_wire(event).decode().map_err(|e| e.to_string())?);
            }
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
                    tracing::info!(after, "following the revocation feed");
                    self.retry = FIRST_RETRY;
                }
                Err(e) => {
                    // Said once per outage; each retry after that is a debug line.
                    if self.retry == FIRST_RETRY {
                        tracing::warn!(error = %e, "cannot follow the revocation feed; polling the store until it answers");
                    } else {
                        tracing::debug!(error = %e, retry_in = ?self.retry, "the revocation feed still does not answer");
                    }
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
                tracing::warn!(silent_for = ?self.heard.elapsed(), "the revocation feed went silent; polling the store until it is back");
                self.drop_stream(FIRST_RETRY);
                return Step::Poll;
            }
            Ok(Ok(Some(message))) => message,
            Ok(Ok(None)) => {
                tracing::warn!("the revocation feed ended; polling the store until it is back");
                self.drop_stream(FIRST_RETRY);
                return Step::Poll;
            }
            Ok(Err(status)) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "the revocation feed failed; polling the store until it is back");
                self.drop_stream(FIRST_RETRY);
                return Step::Poll;
            }
        };
        self.heard = Instant::now();
        if message.after_seq != self.position {
            tracing::warn!(
                expected = self.position,
                got = message.after_seq,
                "the revocation feed skipped events; starting over from the view's last event"
            );
            self.resyncs.inc();
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
                self.position = message.last_seq;
                Step::Applied(events.len())
            }
            Err(e) => {
                tracing::error!(error = %e, "the revocation feed sent an unreadable event; polling the store");
                self.drop_stream(MAX_RETRY);
                Step::Poll
            }
        }
    }
}
