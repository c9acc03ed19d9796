//! The revocation set, and the one rule that turns a token's claims plus the
//! events that touch it into its state, grants and expiry.
//!
//! The verifier keeps a set built from the whole log; the issuer builds one
//! from the events of the tokens and users it is answering about. Both then
//! ask [`RevocationSet::check`], so they cannot disagree.
//!
//! User-wide changes are ordered against issuance by the owner's
//! *generation*, never by time: each one raises the user's generation and
//! binds exactly the secrets whose `gen` claim is below it. Tokens issued
//! before generations existed carry no `gen` (0), so every later user-wide
//! change binds them; the older, time-based events still bind them by `iat`.
//!
//! One event widens: [`Change::ExtendToken`], an API token's expiry moved
//! later in place (FME users rely on it). It sets the expiry of one secret
//! version outright and restates that secret's grants and disabled state,
//! so it never leans on older events that pruning may have dropped; a
//! checker that has not seen it refuses the secret at its signed (or
//! narrowed) expiry, so a missed extension fails closed.
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
    /// The secret of version `version` now expires at `expire_time` (later
    /// than before: the one widening event), holds at most `grants`, and is
    /// disabled if `disabled` says so. Restating grants and state makes the
    /// event whole by itself: the events it extends past may be pruned.
    ExtendToken {
        version: u32,
        expire_time: i64,
        grants: Vec<Grant>,
        disabled: bool,
    },
    /// Every secret of the user whose generation is below `generation` is
    /// refused (the user was disabled, deleted or given a new password).
    RevokeUser { generation: u64 },
    /// Every secret of the user whose generation is below `generation` is
    /// held to `grants` for good: a later, wider ceiling never lifts it.
    UserCeiling { grants: Vec<Grant>, generation: u64 },
    /// The time-based form written before generations: tokens without a
    /// generation issued before `issued_before` are refused.
    RevokeUserBefore { issued_before: i64 },
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

/// Why a token is refused, once its signature has checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its `iss` names an issuer the checker does not trust.
    UntrustedIssuer,
    /// Past its expiry (the signed one, or an earlier one set since).
    Expired,
    /// Before its `nbf`.
    NotYetValid,
    /// Deleted, logged out, or rotated away.
    Revoked,
    /// Its owner was disabled, deleted or given a new password after it was
    /// issued.
    OwnerChanged,
    /// Disabled.
    Disabled,
    /// The token id is not an id.
    Malformed,
}

/// What a token may do, after the set has had its say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective<'a> {
    /// The expiry in force (narrowed, or the claim's).
    pub expire_time: i64,
    /// The grants in force (narrowed and held to the owner's ceilings).
    pub grants: Cow<'a, [Grant]>,
}

/// When and by whom a token is judged.
#[derive(Debug, Clone, Copy)]
pub struct Judge<'a> {
    /// Unix seconds.
    pub now: i64,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway_secs: i64,
    /// The `iss` values accepted.
    pub issuers: &'a [String],
}

/// What a run of expiry changes does to an expiry: `x` becomes
/// `x.clamp(floor, ceil)`. Narrowing lowers the ceiling, an extension sets
/// both to its time; any sequence of them is again one clamp, so a bucket
/// of events folds into two numbers, and applying it twice changes nothing
/// (the issuer judges a row whose expiry is already the result).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shift {
    floor: i64,
    ceil: i64,
}

impl Shift {
    const NONE: Shift = Shift {
        floor: i64::MIN,
        ceil: i64::MAX,
    };

    fn apply(self, expiry: i64) -> i64 {
        // `floor <= ceil` always holds, so this is `clamp` without its panic.
        expiry.max(self.floor).min(self.ceil)
    }

    /// This shift, then `next`.
    fn then(self, next: Shift) -> Shift {
        Shift {
            floor: next.apply(self.floor),
            ceil: next.apply(self.ceil),
        }
    }

    fn lower_to(expiry: i64) -> Shift {
        Shift {
            floor: i64::MIN,
            ceil: expiry,
        }
    }

    fn set_to(expiry: i64) -> Shift {
        Shift {
            floor: expiry,
            ceil: expiry,
        }
    }
}

/// An extension of one secret version, with the narrowings after it.
#[derive(Debug, Clone)]
struct Extension {
    version: u32,
    /// The bucket's expiry changes as that version sees them.
    expiry: Shift,
    /// The grants the extension restated.
    grants: Vec<Grant>,
}

/// The expiry and grant changes of one stretch of a token's life (between
/// two rotations), in log order.
#[derive(Debug, Clone)]
struct Narrowing {
    /// The narrowings: they bind every secret the stretch binds.
    expiry: Shift,
    grants: Option<Vec<Grant>>,
    /// An extension, which binds only the secret version it names.
    extension: Option<Extension>,
}

impl Default for Narrowing {
    fn default() -> Self {
        Self {
            expiry: Shift::NONE,
            grants: None,
            extension: None,
        }
    }
}

impl Narrowing {
    /// Adds a further narrowing: the earlier expiry, the common grants.
    fn narrow(&mut self, expire_time: Option<i64>, grants: Option<&[Grant]>) {
        if let Some(e) = expire_time {
            self.expiry = self.expiry.then(Shift::lower_to(e));
            if let Some(extension) = &mut self.extension {
                extension.expiry = extension.expiry.then(Shift::lower_to(e));
            }
        }
        if let Some(g) = grants {
            self.grants = Some(match &self.grants {
                Some(old) => grants::intersect(old, g),
                None => g.to_vec(),
            });
        }
    }

    /// Sets the expiry of secret `version` to `expire_time` and holds it to
    /// `grants`. Between two rotations only one version is current, so an
    /// extension naming another than an earlier one did changes nothing:
    /// that secret keeps its expiry (failing closed).
    fn extend(&mut self, version: u32, expire_time: i64, held: &[Grant]) {
        match &mut self.extension {
            None => {
                self.extension = Some(Extension {
                    version,
                    expiry: self.expiry.then(Shift::set_to(expire_time)),
                    grants: held.to_vec(),
                });
            }
            Some(extension) if extension.version == version => {
                extension.expiry = extension.expiry.then(Shift::set_to(expire_time));
                extension.grants = grants::intersect(&extension.grants, held);
            }
            Some(_) => {}
        }
    }

    /// The expiry changes a secret of version `ver` is bound by.
    fn expiry_for(&self, ver: u32) -> Shift {
        match &self.extension {
            Some(extension) if extension.version == ver => extension.expiry,
            _ => self.expiry,
        }
    }

    /// The grant limits a secret of version `ver` is held to.
    fn grants_for(&self, ver: u32) -> impl Iterator<Item = &[Grant]> {
        let extended = self
            .extension
            .as_ref()
            .filter(|e| e.version == ver)
            .map(|e| e.grants.as_slice());
        self.grants.as_deref().into_iter().chain(extended)
    }

    fn is_empty(&self) -> bool {
        self.expiry == Shift::NONE && self.grants.is_none() && self.extension.is_none()
    }
}

/// One rotation of a token: secrets below `min_version` are refused from
/// `effective_at` on, and the narrowing made before it binds only them
/// (a rotation is how a narrowed token is widened again).
#[derive(Debug, Clone)]
struct Rotation {
    min_version: u32,
    effective_at: i64,
    narrowed_before: Narrowing,
}

#[derive(Debug, Clone, Default)]
struct TokenDetail {
    /// Narrowing since the last rotation: it binds every secret.
    narrowed: Narrowing,
    /// Every rotation, in rising `min_version`. Each keeps its own overlap:
    /// a later rotation's overlap never revives a secret an earlier one
    /// already retired.
    rotations: Vec<Rotation>,
    prune_after: i64,
}

impl TokenDetail {
    /// The rotations that bind a secret of version `ver`.
    fn rotations_over(&self, ver: u32) -> impl Iterator<Item = &Rotation> + Clone {
        self.rotations.iter().filter(move |r| ver < r.min_version)
    }
}

#[derive(Debug, Clone, Default)]
struct UserDetail {
    /// Legacy cut-off: tokens without a generation issued before it.
    issued_before: i64,
    /// Secrets with a generation below this are refused.
    revoked_below: u64,
    /// `(generation, grants)` in rising generation; each entry's grants are
    /// already intersected with every later entry's, so a secret of
    /// generation `g` is held to the first entry above `g` alone.
    ceilings: Vec<(u64, Vec<Grant>)>,
    prune_after: i64,
}

impl UserDetail {
    fn add_ceiling(&mut self, generation: u64, grants: &[Grant]) {
        let at = self.ceilings.partition_point(|(g, _)| *g <= generation);
        // Entries at or below the new one bind secrets it binds too.
        for (_, held) in &mut self.ceilings[..at] {
            *held = grants::intersect(held, grants);
        }
        let own = match self.ceilings.get(at) {
            Some((_, later)) => grants::intersect(grants, later),
            None => grants.to_vec(),
        };
        if at > 0 && self.ceilings[at - 1].0 == generation {
            self.ceilings[at - 1].1 = own;
        } else {
            self.ceilings.insert(at, (generation, own));
        }
    }

    /// The ceiling binding a secret of generation `generation`, if any.
    fn ceiling_for(&self, generation: u64) -> Option<&[Grant]> {
        let at = self.ceilings.partition_point(|(g, _)| *g <= generation);
        self.ceilings.get(at).map(|(_, grants)| grants.as_slice())
    }
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

    /// A set built from `events`, in order.
    pub fn from_events<'e>(events: impl IntoIterator<Item = &'e Event>) -> Self {
        let mut set = Self::new();
        for event in events {
            set.apply(event);
        }
        set
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
                if d.rotations
                    .last()
                    .is_none_or(|r| *min_version > r.min_version)
                {
                    d.rotations.push(Rotation {
                        min_version: *min_version,
                        effective_at: *effective_at,
                        narrowed_before: std::mem::take(&mut d.narrowed),
                    });
                }
                d.prune_after = d.prune_after.max(prune);
            }
            (
                Change::ExtendToken {
                    version,
                    expire_time,
                    grants,
                    disabled,
                },
                Some(t),
                _,
            ) => {
                let d = self.tokens.entry(t).or_default();
                d.narrowed.extend(*version, *expire_time, grants);
                d.prune_after = d.prune_after.max(prune);
                // The token now lives past the prune time of the event that
                // disabled it: the extension restates it and keeps it.
                if *disabled {
                    let kept = self.disabled.entry(t).or_insert(prune);
                    *kept = (*kept).max(prune);
                }
            }
            (Change::RevokeUser { generation }, _, Some(u)) => {
                let d = self.users.entry(u).or_default();
                d.revoked_below = d.revoked_below.max(*generation);
                d.prune_after = d.prune_after.max(prune);
            }
            (Change::UserCeiling { grants, generation }, _, Some(u)) => {
                let d = self.users.entry(u).or_default();
                d.add_ceiling(*generation, grants);
                d.prune_after = d.prune_after.max(prune);
            }
            (Change::RevokeUserBefore { issued_before }, _, Some(u)) => {
                let d = self.users.entry(u).or_default();
                d.issued_before = d.issued_before.max(*issued_before);
                d.prune_after = d.prune_after.max(prune);
            }
            // An event missing the id it needs changes nothing.
            _ => {}
        }
    }

    /// Judges a token whose signature checked: may it be used, and with
    /// what? This is the whole rule, for the verifier and the issuer alike.
    pub fn check<'c>(&self, claims: &'c Claims, at: Judge<'_>) -> Result<Effective<'c>, Refusal> {
        if !at.issuers.contains(&claims.iss) {
            return Err(Refusal::UntrustedIssuer);
        }
        let token = Id::parse(&claims.jti).ok_or(Refusal::Malformed)?;
        let detail = self.tokens.get(&token);
        // The stretches of the token's life since this secret was issued,
        // oldest first: the rotations after it, then the current one.
        let stretches = detail.into_iter().flat_map(|d| {
            d.rotations_over(claims.ver)
                .map(|r| &r.narrowed_before)
                .filter(|n| !n.is_empty())
                .chain(std::iter::once(&d.narrowed))
        });
        // The expiry in force first: a token past it is expired whatever
        // else happened to it, here and in the issuer's own record. Order
        // matters (an extension sets it, a narrowing after it lowers it).
        let expire_time = stretches.clone().fold(claims.exp, |expiry, n| {
            n.expiry_for(claims.ver).apply(expiry)
        });
        if at.now > expire_time.saturating_add(at.leeway_secs) {
            return Err(Refusal::Expired);
        }
        if at.now.saturating_add(at.leeway_secs) < claims.nbf {
            return Err(Refusal::NotYetValid);
        }
        // Refusals for good come before the reversible one (disabled), so a
        // disabled token whose owner is gone reads as revoked everywhere.
        if self.revoked.contains_key(&token) {
            return Err(Refusal::Revoked);
        }
        if detail.is_some_and(|d| {
            d.rotations_over(claims.ver)
                .any(|r| at.now >= r.effective_at)
        }) {
            return Err(Refusal::Revoked);
        }
        let user = Id::parse(&claims.sub).and_then(|u| self.users.get(&u));
        if let Some(user) = user {
            let legacy_cut = claims.generation == 0 && claims.iat < user.issued_before;
            if claims.generation < user.revoked_below || legacy_cut {
                return Err(Refusal::OwnerChanged);
            }
        }
        if self.disabled.contains_key(&token) {
            return Err(Refusal::Disabled);
        }
        let mut grants: Cow<'c, [Grant]> = Cow::Borrowed(&claims.grants);
        for held in stretches.flat_map(|n| n.grants_for(claims.ver)) {
            grants = Cow::Owned(grants::intersect(&grants, held));
        }
        if let Some(ceiling) = user.and_then(|u| u.ceiling_for(claims.generation)) {
            grants = Cow::Owned(grants::intersect(&grants, ceiling));
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
            generation: 1,
        }
    }

    fn issuers() -> Vec<String> {
        vec!["tessera".into()]
    }

    /// `set.check` at `now` with `leeway` and the test issuer trusted.
    fn at(set: &RevocationSet, c: &Claims, now: i64, leeway: i64) -> Result<Vec<Grant>, Refusal> {
        let issuers = issuers();
        set.check(
            c,
            Judge {
                now,
                leeway_secs: leeway,
                issuers: &issuers,
            },
        )
        .map(|e| e.grants.into_owned())
    }

    fn expiry(set: &RevocationSet, c: &Claims, now: i64) -> i64 {
        let issuers = issuers();
        set.check(
            c,
            Judge {
                now,
                leeway_secs: 0,
                issuers: &issuers,
            },
        )
        .expect("valid")
        .expire_time
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
        assert!(at(&set, &c, 200, 0).is_ok());
        set.apply(&event(1, Some(TOKEN), Change::DisableToken));
        assert_eq!(at(&set, &c, 200, 0), Err(Refusal::Disabled));
        set.apply(&event(2, Some(TOKEN), Change::EnableToken));
        assert!(at(&set, &c, 200, 0).is_ok());
        set.apply(&event(3, Some(TOKEN), Change::RevokeToken));
        assert_eq!(at(&set, &c, 200, 0), Err(Refusal::Revoked));
        assert!(
            at(&set, &claims(OTHER, 100), 200, 0).is_ok(),
            "other tokens are untouched"
        );
        // A replayed older event changes nothing.
        set.apply(&event(2, Some(TOKEN), Change::EnableToken));
        assert_eq!(at(&set, &c, 200, 0), Err(Refusal::Revoked));
        assert_eq!(set.last_seq(), 3);
    }

    fn with_gen(jti: &str, iat: i64, generation: u64) -> Claims {
        Claims {
            generation,
            ..claims(jti, iat)
        }
    }

    #[test]
    fn a_user_revocation_binds_lower_generations_even_in_the_same_second() {
        let mut set = RevocationSet::new();
        set.apply(&event(1, None, Change::RevokeUser { generation: 2 }));
        // Issued in the very second of the change, but before it.
        assert_eq!(
            at(&set, &with_gen(TOKEN, 100, 1), 100, 0),
            Err(Refusal::OwnerChanged)
        );
        // Issued in the same second, after it.
        assert!(at(&set, &with_gen(OTHER, 100, 2), 100, 0).is_ok());
        set.apply(&event(2, None, Change::RevokeUser { generation: 3 }));
        assert_eq!(
            at(&set, &with_gen(OTHER, 100, 2), 100, 0),
            Err(Refusal::OwnerChanged)
        );
    }

    #[test]
    fn legacy_tokens_follow_time_cut_offs_and_every_new_revocation() {
        let mut set = RevocationSet::new();
        set.apply(&event(
            1,
            None,
            Change::RevokeUserBefore { issued_before: 150 },
        ));
        assert_eq!(
            at(&set, &with_gen(TOKEN, 100, 0), 200, 0),
            Err(Refusal::OwnerChanged)
        );
        assert!(at(&set, &with_gen(OTHER, 150, 0), 200, 0).is_ok());
        assert!(
            at(&set, &with_gen(TOKEN, 100, 1), 200, 0).is_ok(),
            "time cut-offs do not touch tokens that carry a generation"
        );
        set.apply(&event(2, None, Change::RevokeUser { generation: 1 }));
        assert_eq!(
            at(&set, &with_gen(OTHER, 150, 0), 200, 0),
            Err(Refusal::OwnerChanged)
        );
    }

    fn grant(resource: &str, actions: &[&str]) -> Grant {
        Grant {
            resource: resource.into(),
            actions: actions.iter().map(|a| (*a).into()).collect(),
        }
    }

    #[test]
    fn a_user_ceiling_holds_earlier_tokens_for_good() {
        let mut set = RevocationSet::new();
        let read = vec![grant("repositories", &["read"])];
        let both = vec![grant("repositories", &["read", "write"])];
        set.apply(&event(
            1,
            None,
            Change::UserCeiling {
                grants: read.clone(),
                generation: 2,
            },
        ));
        let before = with_gen(TOKEN, 100, 1);
        assert_eq!(at(&set, &before, 200, 0), Ok(read.clone()));
        // Grants given back: a wider ceiling never widens the old token.
        set.apply(&event(
            2,
            None,
            Change::UserCeiling {
                grants: both.clone(),
                generation: 3,
            },
        ));
        assert_eq!(at(&set, &before, 200, 0), Ok(read.clone()));
        // A token issued between the two follows only the later one.
        let between = with_gen(OTHER, 100, 2);
        assert_eq!(at(&set, &between, 200, 0), Ok(both.clone()));
        // A token issued after both is held to neither.
        assert_eq!(at(&set, &with_gen(OTHER, 100, 3), 200, 0), Ok(both));
        // A later, narrower ceiling binds every earlier token.
        set.apply(&event(
            3,
            None,
            Change::UserCeiling {
                grants: vec![],
                generation: 4,
            },
        ));
        assert_eq!(at(&set, &before, 200, 0), Ok(vec![]));
        assert_eq!(at(&set, &between, 200, 0), Ok(vec![]));
    }

    #[test]
    fn ceilings_out_of_order_give_the_same_answers() {
        let read = vec![grant("repositories", &["read"])];
        let write = vec![grant("repositories", &["write"])];
        let mut a = UserDetail::default();
        a.add_ceiling(2, &read);
        a.add_ceiling(5, &write);
        let mut b = UserDetail::default();
        b.add_ceiling(5, &write);
        b.add_ceiling(2, &read);
        for g in 0..7 {
            assert_eq!(a.ceiling_for(g), b.ceiling_for(g), "generation {g}");
        }
        assert_eq!(a.ceiling_for(1), Some(&[][..]));
        assert_eq!(a.ceiling_for(3), Some(write.as_slice()));
        assert_eq!(a.ceiling_for(5), None);
    }

    #[test]
    fn the_time_window_and_issuer_are_judged_here() {
        let set = RevocationSet::new();
        let c = claims(TOKEN, 100);
        assert_eq!(at(&set, &c, 1_101, 0), Err(Refusal::Expired));
        assert!(at(&set, &c, 1_101, 5).is_ok(), "leeway applies");
        assert_eq!(at(&set, &c, 99, 0), Err(Refusal::NotYetValid));
        let foreign = Claims {
            iss: "staging".into(),
            ..c
        };
        assert_eq!(at(&set, &foreign, 200, 0), Err(Refusal::UntrustedIssuer));
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
        assert_eq!(expiry(&set, &c, 200), 300);
        assert_eq!(at(&set, &c, 200, 0), Ok(read_only.clone()));
        assert_eq!(at(&set, &c, 301, 0), Err(Refusal::Expired));
        assert!(at(&set, &c, 301, 5).is_ok(), "leeway applies");
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
        assert!(at(&set, &old, 249, 0).is_ok(), "inside the overlap");
        assert_eq!(at(&set, &old, 250, 0), Err(Refusal::Revoked));
        assert!(at(&set, &new, 250, 0).is_ok());
    }

    #[test]
    fn a_later_overlap_never_revives_a_secret_an_earlier_rotation_retired() {
        let mut set = RevocationSet::new();
        let rotate = |seq, min_version, effective_at| {
            event(
                seq,
                Some(TOKEN),
                Change::RotateToken {
                    min_version,
                    effective_at,
                },
            )
        };
        set.apply(&rotate(1, 1, 200));
        set.apply(&rotate(2, 2, 260));
        let first = claims(TOKEN, 100);
        let second = Claims {
            ver: 1,
            ..claims(TOKEN, 200)
        };
        assert_eq!(at(&set, &first, 200, 0), Err(Refusal::Revoked));
        assert!(at(&set, &second, 259, 0).is_ok(), "inside its own overlap");
        assert_eq!(at(&set, &second, 260, 0), Err(Refusal::Revoked));
    }

    #[test]
    fn a_narrowing_binds_only_the_secrets_of_its_time() {
        let mut set = RevocationSet::new();
        let read = vec![grant("repositories", &["read"])];
        set.apply(&event(
            1,
            Some(TOKEN),
            Change::NarrowToken {
                expire_time: None,
                grants: Some(read.clone()),
            },
        ));
        set.apply(&event(
            2,
            Some(TOKEN),
            Change::RotateToken {
                min_version: 1,
                effective_at: 500,
            },
        ));
        set.apply(&event(
            3,
            Some(TOKEN),
            Change::RotateToken {
                min_version: 2,
                effective_at: 500,
            },
        ));
        let first = claims(TOKEN, 100);
        let second = Claims {
            ver: 1,
            ..claims(TOKEN, 200)
        };
        assert_eq!(at(&set, &first, 300, 0), Ok(read));
        assert_eq!(
            at(&set, &second, 300, 0),
            Ok(second.grants.clone()),
            "made after the narrowing, with grants of its own"
        );
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
        assert_eq!(
            at(&set, &old, 250, 0),
            Ok(read_only.clone()),
            "the old secret inside the overlap is still narrowed"
        );
        assert_eq!(
            at(&set, &new, 400, 0),
            Ok(new.grants.clone()),
            "the new secret outlives the old narrowing"
        );
        assert_eq!(expiry(&set, &new, 400), new.exp);

        // A narrowing after the rotation binds the new secret too.
        set.apply(&event(
            3,
            Some(TOKEN),
            Change::NarrowToken {
                expire_time: Some(500),
                grants: None,
            },
        ));
        assert_eq!(at(&set, &new, 501, 0), Err(Refusal::Expired));
    }

    fn extend(seq: i64, version: u32, expire_time: i64, held: &[Grant], disabled: bool) -> Event {
        event(
            seq,
            Some(TOKEN),
            Change::ExtendToken {
                version,
                expire_time,
                grants: held.to_vec(),
                disabled,
            },
        )
    }

    #[test]
    fn shifts_compose_as_their_steps_applied_in_turn() {
        // Every clamp of small numbers, against applying the steps in turn.
        let steps: Vec<Shift> = (-3..=3)
            .flat_map(|e| [Shift::lower_to(e), Shift::set_to(e)])
            .chain([Shift::NONE])
            .collect();
        for a in &steps {
            for b in &steps {
                for c in &steps {
                    let composed = a.then(*b).then(*c);
                    for x in -5..=5 {
                        assert_eq!(composed.apply(x), c.apply(b.apply(a.apply(x))));
                        assert_eq!(
                            composed.apply(composed.apply(x)),
                            composed.apply(x),
                            "idempotent"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn an_extension_keeps_its_secret_valid_past_the_signed_expiry() {
        let c = claims(TOKEN, 100); // signed exp 1_100
        let mut set = RevocationSet::new();
        assert_eq!(
            at(&set, &c, 1_500, 0),
            Err(Refusal::Expired),
            "not seen: fails closed"
        );
        set.apply(&extend(1, 0, 2_000, &c.grants, false));
        assert_eq!(expiry(&set, &c, 1_500), 2_000);
        assert_eq!(at(&set, &c, 1_500, 0), Ok(c.grants.clone()));
        assert_eq!(at(&set, &c, 2_001, 0), Err(Refusal::Expired));
        // Another version of the same token is not extended.
        let other = Claims {
            ver: 1,
            ..claims(TOKEN, 100)
        };
        assert_eq!(at(&set, &other, 1_500, 0), Err(Refusal::Expired));
    }

    #[test]
    fn expiry_changes_apply_in_log_order() {
        let c = claims(TOKEN, 100); // signed exp 1_100
        let mut set = RevocationSet::new();
        let narrow = |seq, e| {
            event(
                seq,
                Some(TOKEN),
                Change::NarrowToken {
                    expire_time: Some(e),
                    grants: None,
                },
            )
        };
        set.apply(&narrow(1, 500));
        assert_eq!(expiry(&set, &c, 200), 500);
        set.apply(&extend(2, 0, 800, &c.grants, false));
        assert_eq!(expiry(&set, &c, 200), 800, "an extension sets the expiry");
        set.apply(&narrow(3, 600));
        assert_eq!(expiry(&set, &c, 200), 600, "a later narrowing lowers it");
        set.apply(&extend(4, 0, 3_000, &c.grants, false));
        assert_eq!(expiry(&set, &c, 200), 3_000);
        // Judging a claim whose expiry is already the result changes nothing,
        // as the issuer does with its row.
        let row = Claims {
            exp: 3_000,
            ..claims(TOKEN, 100)
        };
        assert_eq!(expiry(&set, &row, 200), 3_000);
    }

    #[test]
    fn an_extension_stands_alone_when_older_events_are_pruned() {
        let c = claims(TOKEN, 100);
        let read = vec![grant("repositories", &["read"])];
        // Only the extension is left: it still disables and narrows.
        let mut set = RevocationSet::new();
        set.apply(&extend(9, 0, 2_000, &read, true));
        assert_eq!(at(&set, &c, 1_500, 0), Err(Refusal::Disabled));
        set.apply(&event(10, Some(TOKEN), Change::EnableToken));
        assert_eq!(at(&set, &c, 1_500, 0), Ok(read));
    }

    #[test]
    fn an_extension_keeps_the_disabled_entry_as_long_as_the_token_lives() {
        let c = claims(TOKEN, 100);
        let mut set = RevocationSet::new();
        let mut disabled = event(1, Some(TOKEN), Change::DisableToken);
        disabled.prune_after = 1_100;
        set.apply(&disabled);
        let mut extended = extend(2, 0, 2_000, &c.grants, true);
        extended.prune_after = 2_000;
        set.apply(&extended);
        set.prune(1_500);
        assert_eq!(at(&set, &c, 1_500, 0), Err(Refusal::Disabled));
    }

    #[test]
    fn an_extension_binds_the_version_it_names_across_a_rotation() {
        let mut set = RevocationSet::new();
        let first = claims(TOKEN, 100); // exp 1_100
        set.apply(&extend(1, 0, 1_400, &first.grants, false));
        set.apply(&event(
            2,
            Some(TOKEN),
            Change::RotateToken {
                min_version: 1,
                effective_at: 1_300,
            },
        ));
        let second = Claims {
            ver: 1,
            ..claims(TOKEN, 200) // exp 1_200
        };
        assert!(
            at(&set, &first, 1_250, 0).is_ok(),
            "extended, inside the overlap"
        );
        assert_eq!(at(&set, &first, 1_300, 0), Err(Refusal::Revoked));
        assert_eq!(
            expiry(&set, &second, 1_000),
            1_200,
            "the new secret keeps its own"
        );
        set.apply(&extend(3, 1, 5_000, &second.grants, false));
        assert_eq!(expiry(&set, &second, 1_000), 5_000);
        // Extending the retired secret cannot revive it: the rotation
        // retires it whatever its expiry.
        set.apply(&extend(4, 0, 9_000, &first.grants, false));
        assert_eq!(at(&set, &first, 1_300, 0), Err(Refusal::Revoked));
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
        assert!(at(&set, &claims(OTHER, 100), 200, 0).is_err());
    }

    #[test]
    fn a_non_uuid_token_id_is_malformed() {
        let set = RevocationSet::new();
        assert_eq!(
            at(&set, &claims("not-a-uuid", 100), 200, 0),
            Err(Refusal::Malformed)
        );
    }
}
