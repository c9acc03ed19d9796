//! Last-used tracking: every OK answer is counted in memory, off the
//! store, and merged in batches every flush interval
//! (`--usage-flush-interval`), never on the Verify path: into the store
//! when the verifier reads one, else reported to its upstream feed
//! (`ReportUsage`), which merges them by the same rules.
//!
//! Counting is one lock of one of [`SHARDS`] small maps. A flush takes the
//! maps, merges them into the pending batch, and writes the batch in
//! chunks of [`CHUNK`] tokens, one statement each; a chunk that fails
//! stays pending and is tried again at the next flush, so a store outage
//! loses nothing, and the verifier keeps answering meanwhile. Memory is
//! bounded by `--usage-max-tokens`: a token first seen in an interval
//! when its map is full is not counted, and a pending batch grown past the
//! bound (the store has been failing for a while) drops its oldest tokens.
//! Both are counted (`usage_dropped_total`). What was counted since the
//! last flush is lost if the process dies; a graceful stop flushes once.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use tessera_store::Store;
use tessera_store::usage::{CHUNK, TokenUse};

/// Where counted uses are merged: the store, or the upstream feed.
pub trait Sink: Sync {
    /// Merges one chunk (at most [`CHUNK`] uses, in token id order).
    fn merge(&self, uses: &[TokenUse]) -> impl Future<Output = Result<(), String>> + Send;
}

impl Sink for Store {
    async fn merge(&self, uses: &[TokenUse]) -> Result<(), String> {
        self.merge_usage(uses)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// How many maps the counting is spread over, so concurrent answers
/// rarely wait on one another's lock.
pub const SHARDS: usize = 16;

/// One token's use since the last flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    last: i64,
    count: u64,
    caller: Option<IpAddr>,
}

impl Seen {
    /// The later time wins, with its caller; counts add.
    fn merge(&mut self, other: Seen) {
        if other.last >= self.last {
            self.last = other.last;
            self.caller = other.caller.or(self.caller);
        }
        self.count = self.count.saturating_add(other.count);
    }
}

/// What the tracking counts about itself.
#[derive(Debug, Clone, Default)]
pub struct UsageMetrics {
    /// Uses not recorded: a full map, or the oldest of an overfull batch.
    pub dropped: Counter,
    /// Flushes that could not write everything.
    pub failures: Counter,
    /// Tokens merged into the store.
    pub merged: Counter,
    /// Tokens waiting for the next flush.
    pub pending: Gauge,
}

/// The uses counted since the last flush, and those a failed flush kept.
#[derive(Debug)]
pub struct Usage {
    on: bool,
    max_tokens: usize,
    shard_cap: usize,
    shards: Box<[Mutex<HashMap<u128, Seen>>]>,
    /// Only the flusher takes it; a mutex so a flush runs one at a time.
    pending: tokio::sync::Mutex<HashMap<u128, Seen>>,
    pub metrics: UsageMetrics,
}

/// What one flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Tokens written.
    pub merged: usize,
    /// Statements run.
    pub statements: usize,
    /// Tokens still pending (after a failure).
    pub pending: usize,
}

impl Usage {
    /// Tracking of at most `max_tokens` tokens; off when `on` is false.
    pub fn new(on: bool, max_tokens: usize) -> Self {
        let max_tokens = max_tokens.max(1);
        Self {
            on,
            max_tokens,
            shard_cap: max_tokens.div_ceil(SHARDS),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            pending: tokio::sync::Mutex::default(),
            metrics: UsageMetrics::default(),
        }
    }

    /// Whether uses are counted.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Counts one OK answer for the token `id` at `now` (Unix seconds).
    pub fn record(&self, id: &str, now: i64, caller: Option<IpAddr>) {
        if !self.on {
            return;
        }
        // Ids are the issuer's UUIDs; anything else has no row to merge into.
        let Some(key) = key_of(id) else {
            return;
        };
        let seen = Seen {
            last: now,
            count: 1,
            caller,
        };
        // The low bits of a UUIDv7 are random: they spread the shards.
        let shard = &self.shards[(key as usize) % SHARDS];
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = map.get_mut(&key) {
            entry.merge(seen);
        } else if map.len() < self.shard_cap {
            map.insert(key, seen);
        } else {
            drop(map);
            self.metrics.dropped.inc();
        }
    }

    /// Merges what was counted into the store. On an error, what was not
    /// written stays pending for the next flush.
    pub async fn flush(&self, sink: &impl Sink) -> Result<Flushed, String> {
        let mut pending = self.pending.lock().await;
        for shard in self.shards.iter() {
            let taken = std::mem::take(&mut *shard.lock().unwrap_or_else(PoisonError::into_inner));
            for (key, seen) in taken {
                pending
                    .entry(key)
                    .and_modify(|p| p.merge(seen))
                    .or_insert(seen);
            }
        }
        let dropped = drop_oldest(&mut pending, self.max_tokens);
        self.metrics.dropped.inc_by(dropped as u64);
        // In id order, so verifiers merging at once lock rows in one order.
        let mut batch: Vec<(u128, Seen)> = pending.iter().map(|(k, s)| (*k, *s)).collect();
        batch.sort_unstable_by_key(|(k, _)| *k);
        let mut flushed = Flushed::default();
        let mut result = Ok(());
        for chunk in batch.chunks(CHUNK) {
            let uses: Vec<TokenUse> = chunk
                .iter()
                .map(|(key, seen)| TokenUse {
                    token_id: id_of(*key),
                    last_used_time: seen.last,
                    count: seen.count,
                    caller: seen.caller.map(|ip| ip.to_string()),
                })
                .collect();
            flushed.statements += 1;
            if let Err(e) = sink.merge(&uses).await {
                result = Err(e);
                break;
            }
            for (key, _) in chunk {
                pending.remove(key);
            }
            flushed.merged += chunk.len();
        }
        flushed.pending = pending.len();
        self.metrics.merged.inc_by(flushed.merged as u64);
        self.metrics
            .pending
            .set(i64::try_from(flushed.pending).unwrap_or(i64::MAX));
        if result.is_err() {
            self.metrics.failures.inc();
        }
        result.map(|()| flushed)
    }
}

/// Keeps the `max` most recently used tokens; returns how many it dropped.
fn drop_oldest(pending: &mut HashMap<u128, Seen>, max: usize) -> usize {
    let excess = pending.len().saturating_sub(max);
    if excess == 0 {
        return 0;
    }
    let mut by_age: Vec<(i64, u128)> = pending.iter().map(|(k, s)| (s.last, *k)).collect();
    by_age.select_nth_unstable(excess - 1);
    for (_, key) in &by_age[..excess] {
        pending.remove(key);
    }
    excess
}

/// A canonical (lower-case, hyphenated) UUID as a number; `None` for
/// anything else, which [`id_of`] could not give back unchanged.
fn key_of(id: &str) -> Option<u128> {
    let bytes = id.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    let mut key: u128 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let digit = match (i, b) {
            (8 | 13 | 18 | 23, b'-') => continue,
            (8 | 13 | 18 | 23, _) => return None,
            (_, b'0'..=b'9') => b - b'0',
            (_, b'a'..=b'f') => b - b'a' + 10,
            _ => return None,
        };
        key = (key << 4) | u128::from(digit);
    }
    Some(key)
}

/// The id [`key_of`] read.
fn id_of(key: u128) -> String {
    let hex = format!("{key:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "019ad2a4-7b3c-7e55-9a1b-0c2d3e4f5a6b";

    #[test]
    fn ids_round_trip_and_others_are_ignored() {
        assert_eq!(key_of(ID).map(id_of).as_deref(), Some(ID));
        assert_eq!(key_of(&ID.to_uppercase()), None);
        assert_eq!(key_of(&ID.replace('-', "x")), None);
        assert_eq!(key_of("t-1"), None);
    }

    #[test]
    fn the_later_use_wins_and_counts_add() {
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let mut seen = Seen {
            last: 20,
            count: 2,
            caller: Some(b),
        };
        seen.merge(Seen {
            last: 10,
            count: 3,
            caller: Some(a),
        });
        assert_eq!((seen.last, seen.count, seen.caller), (20, 5, Some(b)));
        seen.merge(Seen {
            last: 30,
            count: 1,
            caller: Some(a),
        });
        assert_eq!((seen.last, seen.count, seen.caller), (30, 6, Some(a)));
    }

    #[test]
    fn a_full_map_counts_what_it_drops_and_an_overfull_batch_keeps_the_newest() {
        let usage = Usage::new(true, SHARDS);
        // One token per shard fits; a second new one in the same shard does not.
        let ids: Vec<u128> = (0..(2 * SHARDS) as u128).collect();
        for (t, key) in ids.iter().enumerate() {
            usage.record(&id_of(*key), t as i64, None);
        }
        assert_eq!(usage.metrics.dropped.get(), SHARDS as u64);
        let mut pending: HashMap<u128, Seen> = (0..10u128)
            .map(|k| {
                (
                    k,
                    Seen {
                        last: k as i64,
                        count: 1,
                        caller: None,
                    },
                )
            })
            .collect();
        assert_eq!(drop_oldest(&mut pending, 4), 6);
        let mut kept: Vec<u128> = pending.keys().copied().collect();
        kept.sort_unstable();
        assert_eq!(kept, vec![6, 7, 8, 9]);
    }

    #[test]
    fn off_counts_nothing() {
        let usage = Usage::new(false, 10);
        usage.record(ID, 1, None);
        assert!(
            usage
                .shards
                .iter()
                .all(|s| s.lock().expect("lock").is_empty())
        );
    }
}
