//! `RevocationFeedService`: the revocation log pushed to verifiers, served
//! by issuers and by verifiers relaying it to others (`--serve-feed`).
//!
//! One reader per process follows the log for every follower: this
//! process's own commits wake it at once, and it polls every
//! `--feed-poll-interval` for what other processes committed. It keeps the
//! newest events in a window in memory; each follower's stream is served
//! from that window, or from the store while the follower asks for events
//! older than the window (a new follower, or one that was away). So the
//! store's load from revocation sync does not grow with the followers.
//!
//! A follower's stream is a bounded channel: one that does not take a
//! message within `slow_follower` (10 s by default) is cut off, and reconnects from its
//! position, so a slow follower costs the server one channel's worth of
//! messages, never a growing queue.
//!
//! A relay has no reader of its own: the verifier hands it every message
//! its own upstream sends ([`Feed::accept`]), and what is older than the
//! window comes from that upstream ([`source::Source`]). Every message
//! names the log and, when they change, carries the published keys, so a
//! follower needs nothing but the feed.

mod catchup;
pub mod source;
mod wire;

pub use source::{Source, StoreSource};
pub use wire::{from_wire, key_to_wire, to_wire, use_from_wire, use_to_wire};

use std::collections::HashMap;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;
use tessera_core::Clock;
use tessera_proto::v1::revocation_feed_service_server::{
    RevocationFeedService, RevocationFeedServiceServer,
};
use tessera_proto::v1::{self};
use tessera_store::Store;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Events kept in memory for followers that are nearly current, unless
/// [`Settings::window`] says otherwise.
pub const WINDOW: usize = 100_000;

/// Events per message (and per store read) while a follower catches up.
const PAGE: u64 = 5_000;

/// Messages queued for one follower before it is waited on.
const QUEUE: usize = 4;

/// Most token uses one ReportUsage call carries (the store's merge chunk).
pub const MAX_REPORTED: usize = tessera_store::usage::CHUNK;

/// How a feed reads and serves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often the log is read for what other processes committed.
    pub poll: Duration,
    /// How often a follower with nothing new hears the latest position.
    pub heartbeat: Duration,
    /// A follower that takes no message for this long is cut off.
    pub slow_follower: Duration,
    /// What followers must present; `None`: the feed admits no one.
    pub secret: Option<String>,
    /// Most events kept in memory ([`WINDOW`]); older ones are read from
    /// the source.
    pub window: usize,
}

/// What the reader last saw.
#[derive(Debug, Clone, Copy)]
struct Head {
    /// The sequence number every event up to which is in the window or
    /// was read before it.
    seq: i64,
}

#[derive(Debug, Default)]
struct Window {
    /// Events with sequence numbers in `(base, head]`, oldest first.
    events: VecDeque<v1::RevocationEvent>,
    base: i64,
}

impl Window {
    /// Up to `PAGE` events after `after`, and the position they take a
    /// follower to; `None` when `after` is older than the window.
    fn after(&self, after: i64, head: i64) -> Option<(Vec<v1::RevocationEvent>, i64)> {
        if after < self.base {
            return None;
        }
        let from = self.events.partition_point(|e| e.seq <= after);
        let events: Vec<_> = self
            .events
            .range(from..)
            .take(PAGE as usize)
            .cloned()
            .collect();
        // The window may already hold events the head does not name yet.
        let last = match events.last() {
            Some(e) if from + events.len() < self.events.len() => e.seq,
            Some(e) => e.seq.max(head),
            None => head,
        };
        Some((events, last))
    }
}

/// The feed shared by the reader and every follower's stream.
pub struct Feed {
    window: RwLock<Window>,
    head: watch::Sender<Option<Head>>,
    heartbeat: Duration,
    poll: Duration,
    slow_follower: Duration,
    window_size: usize,
    /// What followers must present; `None`: the feed admits no one.
    secret: Option<String>,
    clock: Arc<dyn Clock>,
    /// What lies beyond the window, once [`Feed::read`] or
    /// [`Feed::relay_from`] has it.
    source: OnceLock<Arc<dyn Source>>,
    /// The identity of the log read, sent with every message.
    log_id: OnceLock<String>,
    /// The published keys, and a number that changes with them.
    keys: RwLock<(u64, Arc<Vec<v1::FeedKey>>)>,
    /// False while a relay's upstream is catching up itself: a relay's
    /// follower is caught up only when the relay is.
    upstream_current: AtomicBool,
    /// Catch-up pages shared by followers starting together.
    pages: catchup::Pages,
    /// The open streams: each follower's name and position.
    followers: Mutex<HashMap<u64, Following>>,
    next_stream: AtomicU64,
    /// When a read of the log last succeeded.
    read_ok: Mutex<Instant>,
    /// Set when the server stops: every stream ends, so the drain does not
    /// wait for followers that never hang up.
    closing: watch::Sender<bool>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("poll", &self.poll)
            .field("heartbeat", &self.heartbeat)
            .finish_non_exhaustive()
    }
}

impl Feed {
    /// A feed that has not read the log yet.
    pub fn new(settings: Settings, clock: Arc<dyn Clock>) -> Self {
        Self {
            window: RwLock::default(),
            head: watch::Sender::new(None),
            heartbeat: settings.heartbeat,
            poll: settings.poll,
            slow_follower: settings.slow_follower,
            window_size: settings.window.max(1),
            secret: settings.secret,
            clock,
            source: OnceLock::new(),
            log_id: OnceLock::new(),
            keys: RwLock::new((0, Arc::new(Vec::new()))),
            upstream_current: AtomicBool::new(true),
            pages: catchup::Pages::default(),
            followers: Mutex::new(HashMap::new()),
            next_stream: AtomicU64::new(0),
            read_ok: Mutex::new(Instant::now()),
            closing: watch::Sender::new(false),
        }
    }

    /// The gRPC service serving this feed.
    pub fn service(self: &Arc<Self>) -> RevocationFeedServiceServer<FeedService> {
        RevocationFeedServiceServer::new(FeedService(self.clone()))
    }

    /// Ends every follower's stream (they reconnect elsewhere).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Follows the log once `open` gives the store (asked every 100 ms
    /// until it does: the store opens in the background); never returns.
    pub async fn read(self: Arc<Self>, open: impl Fn() -> Option<Store>) {
        let store = loop {
            if let Some(store) = open() {
                break store;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // Nothing is served before the log's identity is known: every
        // message carries it.
        let mut failing = false;
        loop {
            match store.log_id().await {
                Ok(id) => {
                    let _ = self.log_id.set(id);
                    break;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "revocation feed cannot read the log's identity; serving no one until it can");
                    }
                    failing = true;
                    tokio::time::sleep(self.poll).await;
                }
            }
        }
        let _ = self.source.set(Arc::new(StoreSource(store.clone())));
        let mut appended = store.appended();
        let mut failing = false;
        let mut head: Option<i64> = None;
        let mut keys_read: Option<Instant> = None;
        loop {
            // Keys change rarely and are published before they sign: one
            // read a heartbeat is soon enough, and costs the store little.
            if keys_read.is_none_or(|at| at.elapsed() >= self.heartbeat) {
                match store.published_keys(self.clock.now().timestamp()).await {
                    Ok(rows) => {
                        keys_read = Some(Instant::now());
                        self.set_keys(rows.iter().map(key_to_wire).collect());
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "revocation feed could not read the keys");
                    }
                }
            }
            match self.read_once(&store, head).await {
                Ok(seq) => {
                    if failing {
                        tracing::info!("revocation feed reads the log again");
                    }
                    failing = false;
                    head = Some(seq);
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "revocation feed cannot read the log; followers will go stale");
                    }
                    failing = true;
                }
            }
            tokio::select! {
                _ = appended.changed() => {}
                () = tokio::time::sleep(self.poll) => {}
            }
        }
    }

    /// Reads what was committed after `head` (from the log's end at first)
    /// into the window; returns the new head.
    async fn read_once(
        &self,
        store: &Store,
        head: Option<i64>,
    ) -> Result<i64, tessera_store::StoreError> {
        let Some(mut seq) = head else {
            let seq = store.last_revocation_seq().await?;
            self.read_succeeded();
            self.window.write().unwrap_or_else(|e| e.into_inner()).base = seq;
            self.publish(seq);
            return Ok(seq);
        };
        loop {
            let rows = store.event_rows_between(seq, i64::MAX, None, PAGE).await?;
            self.read_succeeded();
            let full = rows.len() as u64 == PAGE;
            if let Some(last) = rows.last() {
                seq = last.seq;
                let mut window = self.window.write().unwrap_or_else(|e| e.into_inner());
                window.events.extend(rows.into_iter().map(to_wire));
                while window.events.len() > self.window_size {
                    if let Some(gone) = window.events.pop_front() {
                        window.base = gone.seq;
                    }
                }
            }
            if !full {
                break;
            }
        }
        self.publish(seq);
        Ok(seq)
    }

    fn publish(&self, seq: i64) {
        self.head.send_replace(Some(Head { seq }));
    }

    /// Records the published keys; followers get them with their next
    /// message when they changed.
    fn set_keys(&self, mut keys: Vec<v1::FeedKey>) {
        if keys.is_empty() {
            return;
        }
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        let changed = {
            let mut held = self.keys.write().unwrap_or_else(|e| e.into_inner());
            let changed = *held.1 != keys;
            if changed {
                *held = (held.0.wrapping_add(1), Arc::new(keys));
            }
            changed
        };
        if changed {
            // Wakes every stream to send them.
            self.head.send_modify(|_| {});
        }
    }

    fn keys_now(&self) -> (u64, Arc<Vec<v1::FeedKey>>) {
        let held = self.keys.read().unwrap_or_else(|e| e.into_inner());
        (held.0, held.1.clone())
    }

    /// A relay's way back to its upstream, for followers older than the
    /// window and for token uses reported to it.
    pub fn relay_from(&self, source: Arc<dyn Source>) {
        let _ = self.source.set(source);
    }

    /// Takes in a message a relay's own upstream sent (already checked to
    /// continue the relay's position and to be of its log): its events go
    /// into the window, its position becomes the head, its keys the keys.
    pub fn accept(&self, message: &v1::WatchRevocationsResponse) {
        if !message.log_id.is_empty() {
            let _ = self.log_id.set(message.log_id.clone());
        }
        {
            let mut window = self.window.write().unwrap_or_else(|e| e.into_inner());
            let head = (*self.head.borrow()).map(|h| h.seq);
            // A message that does not continue the window (the relay
            // started over, or polled its store meanwhile) starts it anew:
            // what came before is backfilled from upstream.
            if head != Some(message.after_seq) {
                window.events.clear();
                window.base = message.after_seq;
            }
            window.events.extend(message.events.iter().cloned());
            while window.events.len() > self.window_size {
                if let Some(gone) = window.events.pop_front() {
                    window.base = gone.seq;
                }
            }
        }
        self.set_keys(message.keys.clone());
        self.upstream_current
            .store(message.caught_up, Ordering::Release);
        self.read_succeeded();
        self.publish(message.last_seq);
    }

    /// How long a read of the log may be behind (or take) before this feed
    /// stops vouching for it.
    fn trust_for(&self) -> Duration {
        self.poll * 4 + self.heartbeat
    }

    /// Records that a read of the log succeeded (a page of a long catch-up
    /// counts: the reader is reading, only behind).
    fn read_succeeded(&self) {
        *self.read_ok.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Whether the reader has read the log recently enough to vouch for it;
    /// heartbeats stop when it has not, so followers fail closed when the
    /// issuer cannot read.
    fn fresh(&self, _head: &Head) -> bool {
        self.read_ok
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
            <= self.trust_for()
    }

    fn moved(&self, stream: u64, position: i64) {
        let mut followers = self.followers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = followers.get_mut(&stream) {
            f.position = position;
        }
    }

    /// The open streams by follower name: how many, and the most events
    /// any of them is behind the head. For the server's metrics.
    pub fn followers(&self) -> Vec<FollowerCount> {
        let head = (*self.head.borrow()).map_or(0, |h| h.seq);
        let followers = self.followers.lock().unwrap_or_else(|e| e.into_inner());
        let mut by_name: HashMap<&str, FollowerCount> = HashMap::new();
        for f in followers.values() {
            let entry = by_name.entry(&f.name).or_insert_with(|| FollowerCount {
                name: f.name.clone(),
                streams: 0,
                lag: 0,
            });
            entry.streams += 1;
            entry.lag = entry.lag.max(head.saturating_sub(f.position).max(0));
        }
        by_name.into_values().collect()
    }

    /// Refuses a caller without the feed secret, and everyone when there is
    /// none.
    fn authenticate<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(secret) = self.secret.as_deref() else {
            return Err(Status::unauthenticated(
                "this server's revocation feed is off: it has no --feed-secret \
                 (TESSERA_FEED_SECRET); give it one, and its followers the same",
            ));
        };
        if !admitted(request, secret) {
            return Err(Status::unauthenticated(
                "following the revocation feed needs the feed secret \
                 (authorization: Bearer <secret>; --feed-secret on both sides)",
            ));
        }
        Ok(())
    }

    /// Whether this feed can vouch for the log now (read, and recently),
    /// waiting at most [`Feed::trust_for`] for a first read.
    async fn wait_current(&self) -> bool {
        let mut heads = self.head.subscribe();
        let read = tokio::time::timeout(self.trust_for(), heads.wait_for(Option::is_some)).await;
        matches!(read, Ok(Ok(head)) if head.is_some_and(|head| self.fresh(&head)))
    }

    /// Sends `follower` every event after `after`, then new ones, with
    /// heartbeats, until it goes away or falls too far behind.
    async fn serve(
        self: Arc<Self>,
        name: String,
        mut after: i64,
        follower: mpsc::Sender<Result<v1::WatchRevocationsResponse, Status>>,
    ) {
        let stream = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let _listed = Listed::new(&self, stream, name, after);
        let mut heads = self.head.subscribe();
        let mut closing = self.closing.subscribe();
        let mut last_sent = Instant::now();
        // The key set this follower holds: none yet.
        let mut keys_sent: Option<u64> = None;
        loop {
            if *closing.borrow_and_update() {
                let _ = follower.try_send(Err(Status::unavailable(
                    "this feed is stopping; follow another upstream",
                )));
                return;
            }
            let Some(head) = *heads.borrow_and_update() else {
                if heads.changed().await.is_err() {
                    return;
                }
                continue;
            };
            // A reader that cannot read the log vouches for nothing: the
            // follower is told so and fails over, rather than hearing
            // silence until it gives up.
            if !self.fresh(&head) {
                let _ = follower.try_send(Err(unreadable()));
                return;
            }
            let found = self
                .window
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .after(after, head.seq);
            let (keys_version, keys) = self.keys_now();
            let keys_due = keys_sent != Some(keys_version) && !keys.is_empty();
            let message = match found {
                // Older than the window: from the source (the store, or a
                // relay's upstream), a page at a time.
                None => {
                    let base = self.window.read().unwrap_or_else(|e| e.into_inner()).base;
                    let now = self.clock.now().timestamp();
                    // Set before the first head is published.
                    let Some(source) = self.source.get() else {
                        return;
                    };
                    let read = tokio::time::timeout(
                        self.trust_for(),
                        self.pages.get(source.as_ref(), after, base, now, PAGE),
                    )
                    .await
                    .unwrap_or_else(|_| Err("the log did not answer in time".into()));
                    match read {
                        Ok(page) => Some(message(after, page.0.clone(), page.1.max(after))),
                        Err(e) => {
                            tracing::warn!(error = %e, "revocation feed could not read the log for a follower");
                            let _ = follower.send(Err(unreadable())).await;
                            return;
                        }
                    }
                }
                Some((events, last)) if !events.is_empty() => Some(message(after, events, last)),
                // New keys go out at once, with no events.
                Some((_, last)) if keys_due => Some(message(after, Vec::new(), last.max(after))),
                // Nothing new. A follower ahead of this reader (fed by a
                // fresher replica) waits for it to catch up.
                Some(_) if after > head.seq => None,
                Some(_) if last_sent.elapsed() >= self.heartbeat && self.fresh(&head) => {
                    Some(message(after, Vec::new(), head.seq))
                }
                Some(_) => None,
            };
            match message {
                Some(mut message) => {
                    message.caught_up = message.last_seq >= head.seq
                        && self.upstream_current.load(Ordering::Acquire);
                    message
                        .log_id
                        .clone_from(self.log_id.get().unwrap_or(&String::new()));
                    if keys_due {
                        message.keys = keys.to_vec();
                        keys_sent = Some(keys_version);
                    }
                    after = message.last_seq;
                    match follower.send_timeout(Ok(message), self.slow_follower).await {
                        Ok(()) => {
                            last_sent = Instant::now();
                            self.moved(stream, after);
                        }
                        Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                            tracing::info!("a revocation follower fell behind and was cut off");
                            return;
                        }
                        Err(mpsc::error::SendTimeoutError::Closed(_)) => return,
                    }
                }
                None => {
                    let due = last_sent + self.heartbeat;
                    tokio::select! {
                        changed = heads.changed() => if changed.is_err() { return },
                        () = tokio::time::sleep_until(due) => {}
                        () = follower.closed() => return,
                        _ = closing.changed() => {}
                    }
                }
            }
        }
    }
}

/// One open stream, as the metrics see it.
#[derive(Debug, Clone)]
struct Following {
    name: String,
    position: i64,
}

/// The followers of one name: how many streams, and how far behind the
/// furthest is (in events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerCount {
    pub name: String,
    pub streams: usize,
    pub lag: i64,
}

/// A stream's entry in the list of followers, removed when it ends.
struct Listed<'a> {
    feed: &'a Feed,
    stream: u64,
}

impl<'a> Listed<'a> {
    fn new(feed: &'a Feed, stream: u64, name: String, position: i64) -> Self {
        feed.followers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(stream, Following { name, position });
        Self { feed, stream }
    }
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        self.feed
            .followers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.stream);
    }
}

/// What a follower is told when this feed cannot read the log.
fn unreadable() -> Status {
    Status::unavailable("this feed cannot read the revocation log now; follow another upstream")
}

fn message(
    after: i64,
    events: Vec<v1::RevocationEvent>,
    last: i64,
) -> v1::WatchRevocationsResponse {
    v1::WatchRevocationsResponse {
        after_seq: after,
        events,
        last_seq: last,
        caught_up: false,
        log_id: String::new(),
        keys: Vec::new(),
    }
}

/// Whether a caller may follow: it holds the secret. Where it calls from
/// proves nothing: a REST gateway or a sidecar on this host calls from
/// loopback on behalf of anyone.
fn admitted<T>(request: &Request<T>, secret: &str) -> bool {
    request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| same(given.trim().as_bytes(), secret.as_bytes()))
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The gRPC face of [`Feed`].
pub struct FeedService(Arc<Feed>);

type Messages = Pin<Box<dyn Stream<Item = Result<v1::WatchRevocationsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RevocationFeedService for FeedService {
    type WatchRevocationsStream = Messages;

    async fn watch_revocations(
        &self,
        request: Request<v1::WatchRevocationsRequest>,
    ) -> Result<Response<Messages>, Status> {
        let feed = &self.0;
        feed.authenticate(&request)?;
        let after = request.get_ref().after_seq;
        if after < 0 {
            return Err(Status::invalid_argument("after_seq must not be negative"));
        }
        // Only a reader that has read the log lately answers: otherwise its
        // "caught up" would be a guess. One just started gets a moment to
        // make its first read.
        if !feed.wait_current().await {
            return Err(unreadable());
        }
        let name = follower_name(&request);
        tracing::info!(follower = %name, after, "a follower opened the revocation feed");
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(feed.clone().serve(name, after, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn report_usage(
        &self,
        request: Request<v1::ReportUsageRequest>,
    ) -> Result<Response<v1::ReportUsageResponse>, Status> {
        let feed = &self.0;
        feed.authenticate(&request)?;
        let uses = request.into_inner().uses;
        if uses.len() > MAX_REPORTED {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_REPORTED} token uses a call, not {}: send them in several calls",
                uses.len()
            )));
        }
        if let Some(bad) = uses
            .iter()
            .find(|u| u.token_id.len() > 64 || u.count < 0 || u.last_used_time < 0)
        {
            return Err(Status::invalid_argument(format!(
                "a token use for {:?} is malformed: ids are at most 64 characters, counts and \
                 times not negative",
                bad.token_id.chars().take(64).collect::<String>()
            )));
        }
        let Some(source) = feed.source.get() else {
            return Err(unreadable());
        };
        let merged = source.report(uses).await?;
        Ok(Response::new(v1::ReportUsageResponse {
            merged: i64::try_from(merged).unwrap_or(i64::MAX),
        }))
    }
}

/// The name a follower gives itself (`x-tessera-follower`, kept short and
/// printable), or its address: for the issuer's logs.
fn follower_name<T>(request: &Request<T>) -> String {
    let given = request
        .metadata()
        .get("x-tessera-follower")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect::<String>()
        })
        .filter(|v| !v.is_empty());
    given.unwrap_or_else(|| {
        request
            .remote_addr()
            .map_or_else(|| "unknown".into(), |a| a.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64) -> v1::RevocationEvent {
        v1::RevocationEvent {
            seq,
            ..Default::default()
        }
    }

    #[test]
    fn the_window_answers_from_its_base_on() {
        let window = Window {
            events: [3, 5, 9].into_iter().map(event).collect(),
            base: 2,
        };
        assert!(window.after(1, 9).is_none(), "older than the window");
        let seqs = |(events, last): (Vec<v1::RevocationEvent>, i64)| {
            (events.iter().map(|e| e.seq).collect::<Vec<_>>(), last)
        };
        assert_eq!(window.after(2, 9).map(seqs), Some((vec![3, 5, 9], 9)));
        assert_eq!(window.after(4, 9).map(seqs), Some((vec![5, 9], 9)));
        assert_eq!(window.after(9, 9).map(seqs), Some((vec![], 9)));
        // Events pruned before they were read leave the head past the last one.
        assert_eq!(window.after(9, 12).map(seqs), Some((vec![], 12)));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
