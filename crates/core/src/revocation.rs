//! The revocation set: what a verifier knows about tokens beyond their
//! signatures, built by applying the issuer's revocation events in order.
//!
//! Every lookup is a hash-map probe keyed by the 128-bit token or user id, so
//! a check costs the same whatever the set's size. The common entries
//! (revoked, disabled) are 24-byte map slots; rarer ones (narrowed, rotated,
//! user-wide) live in maps of their own.

use crate::Claims;
use crate::grants::{self, Grant};
use std::borrow::Cow;
use std::collections::HashMap;

/// A 128-bit id (a UUID) as two words, so map slots align to 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Id(u64, u64);

impl Id {
    /// Parses a UUID string.
    pub fn parse(text: &str) -> Option<Self> {
        let v = uuid::Uuid::parse_str(text).ok()?.as_u128();
        Some(Self((v >> 64) as u64, v as u64))
    }
}

/// What an event changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The token is refused for good.
    RevokeToken,
    /// The token is refused until enabled again.
    DisableToken,
    /// A disabled token is accepted again.
    EnableToken,
    /// The token now expires earlier and/or carries fewer grants.
    NarrowToken {
        expire_time: Option<i64>,
        grants: Option<Vec<Grant>>,
    },
    /// Secrets of the token older than `min_version` are refused from
    /// `effective_at` on (a rotation, with an optional overlap).
    RotateToken { min_version: u32, effective_at: i64 },
    /// Every token of the user issued before `issued_before` is refused.
    RevokeUserBefore { issued_before: i64 },
    /// The user's tokens are held to these grants.
    UserCeiling { grants: Vec<Grant> },
}

/// One event of the revocation log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub seq: i64,
    pub token: Option<Id>,
    pub user: Option<Id>,
    pub change: Change,
    /// After this time no token the event affects can be valid.
    pub prune_after: i64,
}

/// Why the set refuses a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Deleted, logged out, rotated away, or its owner's tokens were revoked.
    Revoked,
    /// Disabled.
    Disabled,
    /// Past an expiry that was narrowed after issue.
    Expired,
    /// The token id is not an id.
    Malformed,
}

/// What a token may do, after the set has had its say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective<'a> {
    /// The expiry in force (narrowed, or the claim's).
    pub expire_time: i64,
    /// The grants in force (narrowed and held to the owner's ceiling).
    pub grants: Cow<'a, [Grant]>,
}

/// An earlier expiry and/or fewer grants.
#[derive(Debug, Clone, Default)]
struct Narrowing {
    expire_time: Option<i64>,
    grants: Option<Vec<Grant>>,
}

impl Narrowing {
    /// Adds a further narrowing: the earlier expiry, the common grants.
    fn narrow(&mut self, expire_time: Option<i64>, grants: Option<&[Grant]>) {
        if let Some(e) = expire_time {
            self.expire_time = Some(self.expire_time.map_or(e, |old| old.min(e)));
        }
        if let Some(g) = grants {
            self.grants = Some(match &self.grants {
                Some(old) => grants::intersect(old, g),
                None => g.to_vec(),
            });
        }
    }

    fn is_empty(&self) -> bool {
        self.expire_time.is_none() && self.grants.is_none()
    }
}

#[derive(Debug, Clone, Default)]
struct TokenDetail {
    /// Narrowing of every secret of the token.
    narrowed: Narrowing,
    /// Narrowing made before the last rotation: it binds only the secrets
    /// older than `min_version`, never the rotated one (a rotation is how a
    /// narrowed token is widened again).
    narrowed_before_rotation: Narrowing,
    min_version: u32,
    version_effective_at: i64,
    prune_after: i64,
}

#[derive(Debug, Clone, Default)]
struct UserDetail {
    issued_before: i64,
    ceiling: Option<Vec<Grant>>,
    prune_after: i64,
}

/// The in-memory revocation view of one verifier.
#[derive(Debug, Default)]
pub struct RevocationSet {
    revoked: HashMap<Id, i64>,
    disabled: HashMap<Id, i64>,
    tokens: HashMap<Id, TokenDetail>,
    users: HashMap<Id, UserDetail>,
    last_seq: i64,
}

impl RevocationSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The sequence number of the last event applied.
    pub fn last_seq(&self) -> i64 {
        self.last_seq
    }

    /// How many entries the set holds.
    pub fn len(&self) -> usize {
        self.revoked.len() + self.disabled.len() + self.tokens.len() + self.users.len()
    }

    /// Whether the set holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reserves room for `additional` revoked tokens (a bulk load).
    pub fn reserve(&mut self, additional: usize) {
        self.revoked.reserve(additional);
    }

    /// Applies one event. Events must come in sequence order; one already
    /// applied is ignored.
    pub fn apply(&mut self, event: &Event) {
        if event.seq <= self.last_seq {
            return;
        }
        self.last_seq = event.seq;
        let prune = event.prune_after;
        match (&event.change, event.token, event.user) {
            (Change::RevokeToken, Some(t), _) => {
                self.revoked.insert(t, prune);
                self.disabled.remove(&t);
                self.tokens.remove(&t);
            }
            (Change::DisableToken, Some(t), _) => {
                self.disabled.insert(t, prune);
            }
            (Change::EnableToken, Some(t), _) => {
                self.disabled.remove(&t);
            }
            (
                Change::NarrowToken {
                    expire_time,
                    grants,
                },
                Some(t),
                _,
            ) => {
                let d = self.tokens.entry(t).or_default();
                d.narrowed.narrow(*expire_time, grants.as_deref());
                d.prune_after = d.prune_after.max(prune);
            }
            (
                Change::RotateToken {
                    min_version,
                    effective_at,
                },
                Some(t),
                _,
            ) => {
                let d = self.tokens.entry(t).or_default();
                if *min_version > d.min_version {
                    d.min_version = *min_version;
                    d.version_effective_at = *effective_at;
                    let before = std::mem::take(&mut d.narrowed);
                    d.narrowed_before_rotation
                        .narrow(before.expire_time, before.grants.as_deref());
                }
                d.prune_after = d.prune_after.max(prune);
            }
            (Change::RevokeUserBefore { issued_before }, _, Some(u)) => {
                let d = self.users.entry(u).or_default();
                d.issued_before = d.issued_before.max(*issued_before);
                d.prune_after = d.prune_after.max(prune);
            }
            (Change::UserCeiling { grants }, _, Some(u)) => {
                let d = self.users.entry(u).or_default();
                d.ceiling = Some(grants.clone());
                d.prune_after = d.prune_after.max(prune);
            }
            // An event missing the id it needs changes nothing.
            _ => {}
        }
    }

    /// Checks a token whose signature and claimed time window are good:
    /// may it be used at `now` (with `leeway_secs` of skew), and with what?
    pub fn check<'c>(
        &self,
        claims: &'c Claims,
        now: i64,
        leeway_secs: i64,
    ) -> Result<Effective<'c>, Refusal> {
        let token = Id::parse(&claims.jti).ok_or(Refusal::Malformed)?;
        if self.revoked.contains_key(&token) {
            return Err(Refusal::Revoked);
        }
        if self.disabled.contains_key(&token) {
            return Err(Refusal::Disabled);
        }
        let mut expire_time = claims.exp;
        let mut grants: Cow<'c, [Grant]> = Cow::Borrowed(&claims.grants);
        if let Some(d) = self.tokens.get(&token) {
            let old_secret = claims.ver < d.min_version;
            if old_secret && now >= d.version_effective_at {
                return Err(Refusal::Revoked);
            }
            let mut narrowings = vec![&d.narrowed];
            if old_secret && !d.narrowed_before_rotation.is_empty() {
                narrowings.push(&d.narrowed_before_rotation);
            }
            for n in narrowings {
                if let Some(e) = n.expire_time {
                    expire_time = expire_time.min(e);
                }
                if let Some(g) = &n.grants {
                    grants = Cow::Owned(grants::intersect(&grants, g));
                }
            }
            if expire_time < claims.exp && now > expire_time.saturating_add(leeway_secs) {
                return Err(Refusal::Expired);
            }
        }
        if let Some(user) = Id::parse(&claims.sub).and_then(|u| self.users.get(&u)) {
            if claims.iat < user.issued_before {
                return Err(Refusal::Revoked);
            }
            if let Some(ceiling) = &user.ceiling {
                grants = Cow::Owned(grants::intersect(&grants, ceiling));
            }
        }
        Ok(Effective {
            expire_time,
            grants,
        })
    }

    /// Drops entries no live token can need any more.
    pub fn prune(&mut self, now: i64) {
        self.revoked.retain(|_, p| *p > now);
        self.disabled.retain(|_, p| *p > now);
        self.tokens.retain(|_, d| d.prune_after > now);
        self.users.retain(|_, d| d.prune_after > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenType;

    const TOKEN: &str = "01900000-0000-7000-8000-000000000001";
    const OTHER: &str = "01900000-0000-7000-8000-000000000002";
    const USER: &str = "01900000-0000-7000-8000-0000000000aa";

    fn claims(jti: &str, iat: i64) -> Claims {
        Claims {
            iss: "tessera".into(),
            sub: USER.into(),
            jti: jti.into(),
            iat,
            nbf: iat,
            exp: iat + 1_000,
            typ: TokenType::Api,
            grants: vec![Grant {
                resource: "repositories".into(),
                actions: vec!["read".into(), "write".into()],
            }],
            ver: 0,
        }
    }

    fn event(seq: i64, token: Option<&str>, change: Change) -> Event {
        Event {
            seq,
            token: token.and_then(Id::parse),
            user: Id::parse(USER),
            change,
            prune_after: 5_000,
        }
    }

    #[test]
    fn disable_enable_and_revoke_apply_in_order() {
        let mut set = RevocationSet::new();
        let c = claims(TOKEN, 100);
        assert!(set.check(&c, 200, 0).is_ok());
        set.apply(&event(1, Some(TOKEN), Change::DisableToken));
        assert_eq!(set.check(&c, 200, 0), Err(Refusal::Disabled));
        set.apply(&event(2, Some(TOKEN), Change::EnableToken));
        assert!(set.check(&c, 200, 0).is_ok());
        set.apply(&event(3, Some(TOKEN), Change::RevokeToken));
        assert_eq!(set.check(&c, 200, 0), Err(Refusal::Revoked));
        assert!(
            set.check(&claims(OTHER, 100), 200, 0).is_ok(),
            "other tokens are untouched"
        );
        // A replayed older event changes nothing.
        set.apply(&event(2, Some(TOKEN), Change::EnableToken));
        assert_eq!(set.check(&c, 200, 0), Err(Refusal::Revoked));
        assert_eq!(set.last_seq(), 3);
    }

    #[test]
    fn user_revocation_spares_newer_tokens() {
        let mut set = RevocationSet::new();
        set.apply(&event(
            1,
            None,
            Change::RevokeUserBefore { issued_before: 150 },
        ));
        assert_eq!(
            set.check(&claims(TOKEN, 100), 200, 0),
            Err(Refusal::Revoked)
        );
        assert!(set.check(&claims(OTHER, 150), 200, 0).is_ok());
    }

    #[test]
    fn narrowing_shortens_and_cuts_grants() {
        let mut set = RevocationSet::new();
        let read_only = vec![Grant {
            resource: "repositories".into(),
            actions: vec!["read".into()],
        }];
        set.apply(&event(
            1,
            Some(TOKEN),
            Change::NarrowToken {
                expire_time: Some(300),
                grants: Some(read_only.clone()),
            },
        ));
        let c = claims(TOKEN, 100);
        let effective = set.check(&c, 200, 0).expect("still valid");
        assert_eq!(effective.expire_time, 300);
        assert_eq!(effective.grants.as_ref(), read_only.as_slice());
        assert_eq!(set.check(&c, 301, 0), Err(Refusal::Expired));
        assert!(set.check(&c, 301, 5).is_ok(), "leeway applies");
    }

    #[test]
    fn rotation_retires_old_secrets_after_the_overlap() {
        let mut set = RevocationSet::new();
        set.apply(&event(
            1,
            Some(TOKEN),
            Change::RotateToken {
                min_version: 1,
                effective_at: 250,
            },
        ));
        let old = claims(TOKEN, 100);
        let mut new = claims(TOKEN, 200);
        new.ver = 1;
        assert!(set.check(&old, 249, 0).is_ok(), "inside the overlap");
        assert_eq!(set.check(&old, 250, 0), Err(Refusal::Revoked));
        assert!(set.check(&new, 250, 0).is_ok());
    }

    #[test]
    fn a_rotation_widens_a_narrowed_token_for_the_new_secret_only() {
        let mut set = RevocationSet::new();
        let read_only = vec![Grant {
            resource: "repositories".into(),
            actions: vec!["read".into()],
        }];
        set.apply(&event(
            1,
            Some(TOKEN),
            Change::NarrowToken {
                expire_time: Some(300),
                grants: Some(read_only.clone()),
            },
        ));
        set.apply(&event(
            2,
            Some(TOKEN),
            Change::RotateToken {
                min_version: 1,
                effective_at: 280,
            },
        ));
        let old = claims(TOKEN, 100);
        let mut new = claims(TOKEN, 200);
        new.ver = 1;
        let during_overlap = set
            .check(&old, 250, 0)
            .expect("old secret inside the overlap");
        assert_eq!(
            during_overlap.grants.as_ref(),
            read_only.as_slice(),
            "still narrowed"
        );
        let widened = set
            .check(&new, 400, 0)
            .expect("the new secret outlives the old narrowing");
        assert_eq!(widened.grants.as_ref(), new.grants.as_slice());
        assert_eq!(widened.expire_time, new.exp);

        // A narrowing after the rotation binds the new secret too.
        set.apply(&event(
            3,
            Some(TOKEN),
            Change::NarrowToken {
                expire_time: Some(500),
                grants: None,
            },
        ));
        assert_eq!(set.check(&new, 501, 0), Err(Refusal::Expired));
    }

    #[test]
    fn a_user_ceiling_holds_tokens_to_the_owner() {
        let mut set = RevocationSet::new();
        let samples = vec![Grant {
            resource: "repositories/Samples".into(),
            actions: vec!["read".into()],
        }];
        set.apply(&event(
            1,
            None,
            Change::UserCeiling {
                grants: samples.clone(),
            },
        ));
        let c = claims(TOKEN, 100);
        assert_eq!(
            set.check(&c, 200, 0).expect("valid").grants.as_ref(),
            samples.as_slice()
        );
    }

    #[test]
    fn pruning_drops_only_dead_entries() {
        let mut set = RevocationSet::new();
        set.apply(&event(1, Some(TOKEN), Change::RevokeToken));
        let mut late = event(2, Some(OTHER), Change::RevokeToken);
        late.prune_after = 9_000;
        set.apply(&late);
        set.prune(6_000);
        assert_eq!(set.len(), 1);
        assert!(set.check(&claims(OTHER, 100), 200, 0).is_err());
    }

    #[test]
    fn a_non_uuid_token_id_is_malformed() {
        let set = RevocationSet::new();
        assert_eq!(
            set.check(&claims("not-a-uuid", 100), 200, 0),
            Err(Refusal::Malformed)
        );
    }
}
