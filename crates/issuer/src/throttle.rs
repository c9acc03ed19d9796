//! Online guessing protection: failed sign-ins make the next attempt wait,
//! with delays that double, in the manner of a soft lock that expires.
//!
//! Failures are counted under three keys:
//!
//! - the user name *and* the source address: strict (a few free failures),
//!   so one source guessing one account slows down fast, while the real
//!   user signing in from elsewhere is untouched;
//! - the source alone: looser, with a short cap, so one source spraying
//!   many accounts slows down too, without locking out for more than a
//!   minute everyone else who shares its address (a NAT, or a REST gateway
//!   not listed as a trusted proxy);
//! - the user name alone: loosest, with the same short cap, so guessing one
//!   account from many sources is slowed without any one source locking the
//!   real user out for more than a minute.
//!
//! Only the name-and-source key waits long (up to the configured maximum):
//! it is the one key a guesser cannot share with the people it would
//! otherwise lock out.
//!
//! Keys are the name as typed, whether or not such a user exists, so a
//! throttled answer says nothing about which accounts exist. An attempt
//! that must still wait is refused before any password is hashed. A
//! success clears the name-and-source key. State is per issuer replica and
//! in memory (bounded); time comes from the issuer's clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// How many keys are remembered at most; beyond it the stalest are dropped.
const MAX_KEYS: usize = 100_000;

/// The policy for one kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Failures allowed before attempts must wait.
    pub free: u32,
    /// The wait after the first failure beyond `free`; each further one
    /// doubles it.
    pub first_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
}

impl Rule {
    /// How long after the `failures`-th failure the next attempt must wait.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures <= self.free {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free - 1).min(30);
        self.first_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }
}

/// The three rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub name_and_source: Rule,
    pub source: Rule,
    pub name: Rule,
}

/// The longest wait a key that other people share with a guesser may
/// impose: the source alone (everyone behind one address) and the name
/// alone (the real user, from anywhere).
pub const SHARED_MAX_DELAY: Duration = Duration::from_secs(60);

impl Policy {
    /// The defaults, with `free` failures per name and source and waits of
    /// at most `max_delay` for them; the shared keys allow ten times the
    /// failures and wait at most [`SHARED_MAX_DELAY`].
    pub fn new(free: u32, max_delay: Duration) -> Self {
        let second = Duration::from_secs(1);
        let shared = Rule {
            free: free.saturating_mul(10),
            first_delay: second,
            max_delay: max_delay.min(SHARED_MAX_DELAY),
        };
        Self {
            name_and_source: Rule {
                free,
                first_delay: second,
                max_delay,
            },
            source: shared,
            name: shared,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    NameAndSource(String, Option<IpAddr>),
    Source(IpAddr),
    Name(String),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    /// Unix milliseconds before which another attempt is refused.
    wait_until_ms: i64,
    /// Unix milliseconds of the last failure; the count is forgotten once
    /// the longest wait has passed since.
    last_failure_ms: i64,
}

/// Failed sign-ins, by key.
#[derive(Debug)]
pub struct Throttle {
    policy: Policy,
    entries: Mutex<HashMap<Key, Entry>>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Throttle {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn keys(&self, name: &str, source: Option<IpAddr>) -> Vec<(Key, Rule)> {
        let name = name.to_lowercase();
        let mut keys = vec![
            (
                Key::NameAndSource(name.clone(), source),
                self.policy.name_and_source,
            ),
            (Key::Name(name), self.policy.name),
        ];
        if let Some(ip) = source {
            keys.push((Key::Source(ip), self.policy.source));
        }
        keys
    }

    fn forget_after(&self) -> i64 {
        ms(self.policy.name_and_source.max_delay)
            .max(ms(self.policy.source.max_delay))
            .saturating_mul(2)
    }

    /// `Err(wait)` when an attempt for `name` from `source` at `now_ms`
    /// must still wait that long.
    pub fn check(&self, name: &str, source: Option<IpAddr>, now_ms: i64) -> Result<(), Duration> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let wait = self
            .keys(name, source)
            .iter()
            .filter_map(|(key, _)| entries.get(key))
            .map(|e| e.wait_until_ms.saturating_sub(now_ms))
            .max()
            .unwrap_or(0);
        if wait > 0 {
            // Round up, so a client that waits as told is let in.
            let secs = u64::try_from(wait).unwrap_or(0).div_ceil(1000);
            return Err(Duration::from_secs(secs.max(1)));
        }
        Ok(())
    }

    /// Records a failed attempt; returns the wait it imposes on the next
    /// attempt for the same name and source.
    pub fn failed(&self, name: &str, source: Option<IpAddr>, now_ms: i64) -> Duration {
        let forget = self.forget_after();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_KEYS {
            entries.retain(|_, e| now_ms.saturating_sub(e.last_failure_ms) < forget);
            if entries.len() >= MAX_KEYS {
                // Still full: drop the stalest tenth.
                let mut times: Vec<i64> = entries.values().map(|e| e.last_failure_ms).collect();
                times.sort_unstable();
                let cut = times[times.len() / 10];
                entries.retain(|_, e| e.last_failure_ms > cut);
            }
        }
        let mut imposed = Duration::ZERO;
        for (n, (key, rule)) in self.keys(name, source).into_iter().enumerate() {
            let entry = entries.entry(key).or_insert(Entry {
                failures: 0,
                wait_until_ms: 0,
                last_failure_ms: now_ms,
            });
            if now_ms.saturating_sub(entry.last_failure_ms) >= forget {
                entry.failures = 0;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure_ms = now_ms;
            let delay = rule.delay(entry.failures);
            entry.wait_until_ms = now_ms.saturating_add(ms(delay));
            if n == 0 {
                imposed = delay;
            }
        }
        imposed
    }

    /// A successful sign-in clears the name-and-source count (the name and
    /// source counts stay: they guard against other sources and names).
    pub fn succeeded(&self, name: &str, source: Option<IpAddr>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&Key::NameAndSource(name.to_lowercase(), source));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn delays_double_after_the_free_failures_up_to_the_cap() {
        let rule = Policy::new(3, Duration::from_secs(900)).name_and_source;
        let delays: Vec<u64> = (1..=15).map(|n| rule.delay(n).as_secs()).collect();
        assert_eq!(
            delays,
            [0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
        );
    }

    #[test]
    fn a_guesser_waits_while_the_real_user_elsewhere_does_not() {
        let t = Throttle::new(Policy::new(3, Duration::from_secs(900)));
        let mut now = 1_000_000;
        for _ in 0..3 {
            assert_eq!(t.check("carol", ip(1), now), Ok(()));
            t.failed("carol", ip(1), now);
        }
        assert_eq!(t.check("carol", ip(1), now), Ok(()), "three are free");
        assert_eq!(t.failed("carol", ip(1), now), Duration::from_secs(1));
        assert_eq!(t.check("carol", ip(1), now), Err(Duration::from_secs(1)));
        assert_eq!(t.check("Carol", ip(1), now), Err(Duration::from_secs(1)));
        assert_eq!(t.check("carol", ip(2), now), Ok(()), "another source");
        now += 1_000;
        assert_eq!(t.check("carol", ip(1), now), Ok(()), "the wait is over");
        assert_eq!(t.failed("carol", ip(1), now), Duration::from_secs(2));
        t.succeeded("carol", ip(2));
        assert!(
            t.check("carol", ip(1), now).is_err(),
            "only ip 2 was cleared"
        );
    }

    #[test]
    fn counts_are_forgotten_after_a_quiet_while() {
        let t = Throttle::new(Policy::new(1, Duration::from_secs(10)));
        t.failed("dave", ip(1), 0);
        assert_eq!(t.failed("dave", ip(1), 0), Duration::from_secs(1));
        assert_eq!(t.failed("dave", ip(1), 40_000), Duration::ZERO);
    }

    /// A guesser behind one address (a NAT, or a gateway not listed as a
    /// trusted proxy), spraying names and retrying the moment each wait is
    /// over, makes nobody else behind that address wait more than a minute
    /// at a time, while it is slowed to one guess a minute.
    #[test]
    fn a_busy_address_holds_its_other_users_for_at_most_a_minute() {
        let policy = Policy::new(3, Duration::from_secs(900));
        let t = Throttle::new(policy);
        let mut now = 1_000_000;
        let mut waits = Vec::new();
        for n in 0..200 {
            let name = format!("guess{n}");
            if let Err(wait) = t.check(&name, ip(7), now) {
                waits.push(wait.as_secs());
                now += ms(wait);
            }
            assert_eq!(t.check(&name, ip(7), now), Ok(()));
            t.failed(&name, ip(7), now);
            let other = t.check("erin", ip(7), now).err().unwrap_or_default();
            assert!(other <= SHARED_MAX_DELAY, "after {n}: {other:?}");
        }
        // 30 free, then 1 s doubling to the cap, then a minute per guess.
        assert_eq!(waits[..7], [1, 2, 4, 8, 16, 32, 60]);
        assert!(waits[7..].iter().all(|&w| w == 60), "{waits:?}");
        assert_eq!(policy.source.max_delay, Duration::from_secs(60));
        // The cap never exceeds what the operator configured.
        let short = Policy::new(3, Duration::from_secs(20));
        assert_eq!(short.source.max_delay, Duration::from_secs(20));
    }

    /// One name guessed from one source still waits up to the configured
    /// maximum, however short the shared caps are.
    #[test]
    fn one_name_from_one_source_still_waits_up_to_the_maximum() {
        let t = Throttle::new(Policy::new(3, Duration::from_secs(900)));
        let mut now = 0;
        let mut last = Duration::ZERO;
        for _ in 0..20 {
            if let Err(wait) = t.check("carol", ip(1), now) {
                now += ms(wait);
            }
            last = t.failed("carol", ip(1), now);
        }
        assert_eq!(last, Duration::from_secs(900));
        assert_eq!(t.check("carol", ip(1), now), Err(Duration::from_secs(900)));
        assert_eq!(t.check("carol", ip(2), now), Ok(()), "another source");
    }

    #[test]
    fn one_source_spraying_names_slows_down_too() {
        let t = Throttle::new(Policy::new(3, Duration::from_secs(900)));
        for n in 0..30 {
            t.failed(&format!("user{n}"), ip(7), 0);
        }
        assert_eq!(t.check("someone-new", ip(7), 0), Ok(()), "30 are free");
        t.failed("someone-new", ip(7), 0);
        assert!(t.check("another", ip(7), 0).is_err());
        assert_eq!(t.check("another", ip(8), 0), Ok(()));
    }
}
