//! A bounded cache of tokens whose signatures were already checked.
//!
//! Keyed by the SHA-256 of the whole token string, so a token that differs
//! in one byte is a miss and gets a full check. Bounded by two generations
//! per shard: when the young generation fills, it becomes the old one and
//! the previous old one is dropped, so memory stays under the configured
//! size and recently used tokens survive.

use prometheus_client::metrics::counter::Counter;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tessera_core::Claims;

const SHARDS: usize = 16;

type Key = [u8; 32];

#[derive(Debug, Default)]
struct Shard {
    young: HashMap<Key, Arc<Claims>>,
    old: HashMap<Key, Arc<Claims>>,
}

/// The signature cache.
#[derive(Debug)]
pub struct SignatureCache {
    shards: Vec<Mutex<Shard>>,
    per_generation: usize,
    /// Lookups that found the token.
    pub hits: Counter,
    /// Lookups that did not.
    pub misses: Counter,
}

impl SignatureCache {
    /// A cache holding at most about `capacity` tokens (0 disables it).
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_generation: capacity / SHARDS / 2,
            hits: Counter::default(),
            misses: Counter::default(),
        }
    }

    /// Whether tokens are remembered at all (a size of 0 turns it off).
    pub fn is_on(&self) -> bool {
        self.per_generation > 0
    }

    /// The cache key of `token`.
    pub fn key(token: &str) -> Key {
        Sha256::digest(token.as_bytes()).into()
    }

    fn shard(&self, key: &Key) -> &Mutex<Shard> {
        &self.shards[usize::from(key[0]) % SHARDS]
    }

    /// The claims of a token checked before, if remembered.
    pub fn get(&self, key: &Key) -> Option<Arc<Claims>> {
        let found = self.lookup(key);
        if found.is_some() {
            self.hits.inc();
        } else {
            self.misses.inc();
        }
        found
    }

    fn lookup(&self, key: &Key) -> Option<Arc<Claims>> {
        if self.per_generation == 0 {
            return None;
        }
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(claims) = shard.young.get(key) {
            return Some(claims.clone());
        }
        let claims = shard.old.remove(key)?;
        Self::put(&mut shard, self.per_generation, *key, claims.clone());
        Some(claims)
    }

    /// Remembers a token whose signature checked out.
    pub fn insert(&self, key: Key, claims: Arc<Claims>) {
        if self.per_generation == 0 {
            return;
        }
        let mut shard = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
        Self::put(&mut shard, self.per_generation, key, claims);
    }

    fn put(shard: &mut Shard, per_generation: usize, key: Key, claims: Arc<Claims>) {
        if shard.young.len() >= per_generation {
            shard.old = std::mem::take(&mut shard.young);
        }
        shard.young.insert(key, claims);
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(|e| e.into_inner());
                s.young.len() + s.old.len()
            })
            .sum()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::TokenType;

    fn claims(jti: &str) -> Arc<Claims> {
        Arc::new(Claims {
            iss: "t".into(),
            sub: "u".into(),
            jti: jti.into(),
            iat: 0,
            nbf: 0,
            exp: 1,
            typ: TokenType::Api,
            grants: vec![],
            ver: 0,
            generation: 0,
        })
    }

    #[test]
    fn remembers_and_stays_bounded() {
        let cache = SignatureCache::new(320);
        let first = SignatureCache::key("token-0");
        cache.insert(first, claims("0"));
        assert_eq!(cache.get(&first).map(|c| c.jti.clone()), Some("0".into()));
        assert!(cache.get(&SignatureCache::key("token-0x")).is_none());
        for i in 1..10_000 {
            cache.insert(SignatureCache::key(&format!("token-{i}")), claims("x"));
        }
        assert!(cache.len() <= 320, "{} entries", cache.len());
    }

    #[test]
    fn zero_capacity_disables_it() {
        let cache = SignatureCache::new(0);
        let key = SignatureCache::key("t");
        cache.insert(key, claims("t"));
        assert!(cache.get(&key).is_none());
    }
}
