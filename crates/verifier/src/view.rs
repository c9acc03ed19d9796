//! The verifier's view of the world: public keys and the revocation set,
//! rebuilt from the store at start and kept in sync after.

use crate::error::VerifierError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use tessera_core::keys::VerifyingKey;
use tessera_core::revocation::{Event, RevocationSet};
use tessera_proto::v1;
use tessera_store::Store;

/// Events fetched per query.
const PAGE: u64 = 50_000;

/// Sequence ranges read side by side at start-up.
const LOAD_RANGES: i64 = 4;

/// The live events with sequence numbers in `(after, up_to]`.
async fn read_range(
    store: &Store,
    mut after: i64,
    up_to: i64,
    now: i64,
) -> Result<Vec<Event>, VerifierError> {
    let mut events = Vec::new();
    loop {
        let page = store.events_between(after, up_to, Some(now), PAGE).await?;
        let full = page.len() as u64 == PAGE;
        match page.last() {
            Some(last) if full => after = last.seq,
            _ => {
                events.extend(page);
                return Ok(events);
            }
        }
        events.extend(page);
    }
}

/// The issuer name trusted when neither the configuration nor any key row
/// names one: the issuer's own default.
pub const DEFAULT_ISSUER: &str = "tessera";

/// Keys and revocations, shared by the request handlers and the sync task.
#[derive(Debug, Default)]
pub struct View {
    keys: RwLock<Arc<HashMap<String, VerifyingKey>>>,
    /// Issuer names set by the operator; empty means "those on the keys".
    configured_issuers: Vec<String>,
    /// The `iss` values accepted now.
    issuers: RwLock<Arc<[String]>>,
    revocations: RwLock<RevocationSet>,
    /// Clock time (Unix milliseconds) of the last successful sync.
    last_sync_ms: AtomicI64,
    loaded: AtomicBool,
    /// Why the view is not to be trusted at all, once it is not: every
    /// check is refused with it, whatever the view's age.
    refused: OnceLock<String>,
}

impl View {
    /// An empty view that accepts tokens from `issuers`, or, when that is
    /// empty, from the issuers named on the store's keys.
    pub fn trusting(issuers: Vec<String>) -> Self {
        let view = Self {
            configured_issuers: issuers,
            ..Self::default()
        };
        view.set_issuers(&[]);
        view
    }

    fn set_issuers(&self, on_keys: &[String]) {
        let mut names: Vec<String> = if !self.configured_issuers.is_empty() {
            self.configured_issuers.clone()
        } else if !on_keys.is_empty() {
            on_keys.to_vec()
        } else {
            vec![DEFAULT_ISSUER.into()]
        };
        names.sort();
        names.dedup();
        *self.issuers.write().unwrap_or_else(|e| e.into_inner()) = names.into();
    }

    /// The issuer names accepted now.
    pub fn issuers(&self) -> Arc<[String]> {
        self.issuers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the first full load has finished.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// How old the view is at `now_ms`, if it was ever loaded (and is not
    /// refused: a refused view is never fresh).
    pub fn age_ms(&self, now_ms: i64) -> Option<i64> {
        (self.is_loaded() && self.refused.get().is_none())
            .then(|| now_ms.saturating_sub(self.last_sync_ms.load(Ordering::Acquire)))
    }

    /// Stops trusting the view for good, saying `why` to every check.
    pub(crate) fn refuse(&self, why: String) {
        let _ = self.refused.set(why);
    }

    /// Why the view is refused, if it is.
    pub fn refusal(&self) -> Option<&str> {
        self.refused.get().map(String::as_str)
    }

    /// The published keys as loaded last: one shared snapshot, so a check
    /// borrows its key instead of copying it.
    pub fn keys(&self) -> Arc<HashMap<String, VerifyingKey>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs `f` with the revocation set read-locked.
    pub fn with_revocations<R>(&self, f: impl FnOnce(&RevocationSet) -> R) -> R {
        f(&self.revocations.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// How many entries the revocation set holds.
    pub fn revocation_entries(&self) -> usize {
        self.with_revocations(RevocationSet::len)
    }

    /// The sequence number of the last event applied.
    pub fn last_seq(&self) -> i64 {
        self.with_revocations(RevocationSet::last_seq)
    }

    /// Records that the view was known current at `now_ms`.
    pub(crate) fn mark_synced(&self, now_ms: i64) {
        self.last_sync_ms.store(now_ms, Ordering::Release);
    }

    /// Installs a set built aside (from a feed) as the first full load.
    pub(crate) fn install(&self, set: RevocationSet, now_ms: i64) {
        *self.revocations.write().unwrap_or_else(|e| e.into_inner()) = set;
        self.mark_synced(now_ms);
        self.loaded.store(true, Ordering::Release);
    }

    /// Applies events a feed sent, in order, and records the view current.
    pub(crate) fn apply(&self, events: &[Event], now_ms: i64) {
        if !events.is_empty() {
            let mut set = self.revocations.write().unwrap_or_else(|e| e.into_inner());
            for event in events {
                set.apply(event);
            }
        }
        self.mark_synced(now_ms);
    }

    /// Reloads the published public keys.
    pub async fn refresh_keys(&self, store: &Store, now: i64) -> Result<usize, VerifierError> {
        let rows = store.published_keys(now).await?;
        Ok(self.set_keys(
            rows.iter()
                .map(|r| (r.kid.as_str(), r.public_key.as_str(), r.issuer.as_deref())),
        ))
    }

    /// Takes the keys a feed sent: every key published now.
    pub(crate) fn set_feed_keys(&self, keys: &[v1::FeedKey]) -> usize {
        self.set_keys(keys.iter().map(|k| {
            let issuer = (!k.issuer.is_empty()).then_some(k.issuer.as_str());
            (k.kid.as_str(), k.public_key.as_str(), issuer)
        }))
    }

    /// Replaces the keys with `(kid, public key, issuer)`s, and the issuer
    /// names accepted with theirs (unless configured); returns how many
    /// keys were readable.
    fn set_keys<'a>(
        &self,
        rows: impl Iterator<Item = (&'a str, &'a str, Option<&'a str>)>,
    ) -> usize {
        let mut keys = HashMap::new();
        let mut named = Vec::new();
        for (kid, public_key, issuer) in rows {
            named.extend(issuer.map(str::to_owned));
            match VerifyingKey::from_public(kid, public_key) {
                Ok(key) => {
                    keys.insert(kid.to_owned(), key);
                }
                Err(e) => {
                    tracing::error!(%kid, error = %e, "skipping an unreadable public key")
                }
            }
        }
        self.set_issuers(&named);
        let count = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        count
    }

    /// The first full load: keys and every live revocation event. The new
    /// set is built aside and swapped in whole.
    pub async fn load(&self, store: &Store, now_ms: i64) -> Result<(), VerifierError> {
        let now = now_ms.div_euclid(1000);
        self.refresh_keys(store, now).await?;
        // Read the log in a few sequence ranges side by side (reading and
        // decoding rows is most of the start-up time), then apply them in
        // order. Every event up to `last` has committed: the counter row is
        // updated in the same transaction as the event it numbers.
        let last = store.last_revocation_seq().await?;
        let step = (last / LOAD_RANGES).max(1);
        let mut readers = Vec::new();
        let mut from = 0;
        while from < last {
            let to = if last - from <= step {
                last
            } else {
                from + step
            };
            let store = store.clone();
            readers.push(tokio::spawn(async move {
                read_range(&store, from, to, now).await
            }));
            from = to;
        }
        let mut set = RevocationSet::new();
        for reader in readers {
            let events = reader
                .await
                .map_err(|e| VerifierError::Startup(format!("loading task failed: {e}")))??;
            set.reserve(events.len());
            for event in &events {
                set.apply(event);
            }
        }
        *self.revocations.write().unwrap_or_else(|e| e.into_inner()) = set;
        self.mark_synced(now_ms);
        self.loaded.store(true, Ordering::Release);
        Ok(())
    }

    /// Applies the events appended since the last sync; returns how many.
    pub async fn follow(&self, store: &Store, now_ms: i64) -> Result<usize, VerifierError> {
        let mut applied = 0;
        loop {
            let after = self.last_seq();
            let events = store.events_after(after, None, PAGE).await?;
            {
                let mut set = self.revocations.write().unwrap_or_else(|e| e.into_inner());
                for event in &events {
                    set.apply(event);
                }
            }
            applied += events.len();
            if (events.len() as u64) < PAGE {
                break;
            }
        }
        self.mark_synced(now_ms);
        Ok(applied)
    }

    /// Drops revocation entries no live token can need.
    pub fn prune(&self, now: i64) {
        self.revocations
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .prune(now);
    }
}
