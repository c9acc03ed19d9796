//! The revocation log: every change that narrows what an issued token string
//! allows, in one strictly ordered sequence that verifiers follow, and the
//! one widening verifiers honour: an API token's expiry extended in place.

use crate::entity::{log_identity, revocation_event, sequence};
use crate::error::corrupt;
use crate::{Store, StoreError};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::Deserialize;
use tessera_core::Grant;
use tessera_core::revocation::{Change, Event, Id};

const SEQUENCE: &str = "revocation";

/// What a revocation event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The token is gone for good (deleted, logged out).
    RevokeToken,
    /// The token is disabled until enabled again.
    DisableToken,
    /// A disabled token is enabled again.
    EnableToken,
    /// Every secret of a user below the generation in `detail`
    /// (`{"generation": 4}`) is refused.
    RevokeUser,
    /// Written before generations: every token of a user issued before
    /// `issued_before` is refused. Still read, never written.
    RevokeUserBefore,
    /// The token's grants or expiry were narrowed; `detail` has the new ones:
    /// `{"expire_time": 1700000000, "grants": [...]}` (either may be absent).
    NarrowToken,
    /// The token was rotated: `detail` is `{"min_version": 2, "effective_at": T}`;
    /// secrets of older versions are refused from `effective_at` on.
    RotateToken,
    /// An API token's expiry was moved later in place: `detail` is
    /// `{"version": 0, "expire_time": T, "grants": [...], "disabled": false}`,
    /// the secret version extended, its new expiry, and its grants and
    /// state restated (so the event stands alone once older ones are
    /// pruned). A verifier that has not applied it refuses the secret at
    /// its signed expiry.
    ExtendToken,
    /// The user's secrets below `detail`'s generation are held to its
    /// grants: `{"grants": [...], "generation": 4}` (no generation: written
    /// before generations, binding only the tokens that carry none).
    UserCeiling,
}

impl EventKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RevokeToken => "revoke_token",
            EventKind::DisableToken => "disable_token",
            EventKind::EnableToken => "enable_token",
            EventKind::RevokeUser => "revoke_user",
            EventKind::RevokeUserBefore => "revoke_user_before",
            EventKind::NarrowToken => "narrow_token",
            EventKind::RotateToken => "rotate_token",
            EventKind::ExtendToken => "extend_token",
            EventKind::UserCeiling => "user_ceiling",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "revoke_token" => EventKind::RevokeToken,
            "disable_token" => EventKind::DisableToken,
            "enable_token" => EventKind::EnableToken,
            "revoke_user" => EventKind::RevokeUser,
            "revoke_user_before" => EventKind::RevokeUserBefore,
            "narrow_token" => EventKind::NarrowToken,
            "rotate_token" => EventKind::RotateToken,
            "extend_token" => EventKind::ExtendToken,
            "user_ceiling" => EventKind::UserCeiling,
            _ => return None,
        })
    }
}

/// A revocation event about to be appended.
#[derive(Debug, Clone)]
pub struct NewRevocation {
    pub kind: EventKind,
    pub token_id: Option<String>,
    pub user_id: Option<String>,
    pub issued_before: Option<i64>,
    pub detail: serde_json::Value,
    /// After this time no token the event affects can still be valid, so it
    /// may be pruned.
    pub prune_after: i64,
}

impl NewRevocation {
    /// An event about one token, prunable once that token has expired.
    pub fn token(kind: EventKind, token_id: &str, user_id: &str, token_expire_time: i64) -> Self {
        Self {
            kind,
            token_id: Some(token_id.into()),
            user_id: Some(user_id.into()),
            issued_before: None,
            detail: serde_json::Value::Null,
            prune_after: token_expire_time,
        }
    }

    /// The token now expires at `expire_time` and/or holds only `grants`.
    pub fn narrow_token(
        token_id: &str,
        user_id: &str,
        expire_time: Option<i64>,
        grants: Option<&[Grant]>,
        token_expire_time: i64,
    ) -> Self {
        let mut detail = serde_json::Map::new();
        if let Some(e) = expire_time {
            detail.insert("expire_time".into(), e.into());
        }
        if let Some(g) = grants {
            detail.insert("grants".into(), serde_json::to_value(g).unwrap_or_default());
        }
        Self {
            detail: detail.into(),
            ..Self::token(EventKind::NarrowToken, token_id, user_id, token_expire_time)
        }
    }

    /// Secrets of the token older than `min_version` are refused from
    /// `effective_at` on; prunable once the newest old secret has expired.
    pub fn rotate_token(
        token_id: &str,
        user_id: &str,
        min_version: u32,
        effective_at: i64,
        prune_after: i64,
    ) -> Self {
        Self {
            detail: serde_json::json!({ "min_version": min_version, "effective_at": effective_at }),
            ..Self::token(EventKind::RotateToken, token_id, user_id, prune_after)
        }
    }

    /// Secret `version` of the token now expires at `expire_time`, holds at
    /// most `grants` and is disabled or not; prunable once no secret of the
    /// token can be valid (`prune_after`, at least the new expiry).
    pub fn extend_token(
        token_id: &str,
        user_id: &str,
        version: u32,
        expire_time: i64,
        grants: &[Grant],
        disabled: bool,
        prune_after: i64,
    ) -> Self {
        Self {
            detail: serde_json::json!({
                "version": version,
                "expire_time": expire_time,
                "grants": grants,
                "disabled": disabled,
            }),
            ..Self::token(EventKind::ExtendToken, token_id, user_id, prune_after)
        }
    }

    /// Every secret of the user below `generation` is refused; prunable
    /// once the longest-lived such secret has expired.
    pub fn revoke_user(user_id: &str, generation: u64, prune_after: i64) -> Self {
        Self {
            kind: EventKind::RevokeUser,
            token_id: None,
            user_id: Some(user_id.into()),
            issued_before: None,
            detail: serde_json::json!({ "generation": generation }),
            prune_after,
        }
    }

    /// The time-based form written before generations, for tests of
    /// databases made by older versions.
    pub fn revoke_user_before(user_id: &str, issued_before: i64, prune_after: i64) -> Self {
        Self {
            kind: EventKind::RevokeUserBefore,
            token_id: None,
            user_id: Some(user_id.into()),
            issued_before: Some(issued_before),
            detail: serde_json::Value::Null,
            prune_after,
        }
    }

    /// The user's secrets below `generation` are held to `grants` for good.
    pub fn user_ceiling(
        user_id: &str,
        grants: &[Grant],
        generation: u64,
        prune_after: i64,
    ) -> Self {
        Self {
            kind: EventKind::UserCeiling,
            token_id: None,
            user_id: Some(user_id.into()),
            issued_before: None,
            detail: serde_json::json!({ "grants": grants, "generation": generation }),
            prune_after,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Detail {
    expire_time: Option<i64>,
    grants: Option<Vec<Grant>>,
    min_version: u32,
    effective_at: i64,
    generation: Option<u64>,
    version: Option<u32>,
    disabled: Option<bool>,
}

/// The generation a ceiling written before generations binds below: 1, the
/// generation every user started at, so it binds only tokens carrying none.
const LEGACY_CEILING_GENERATION: u64 = 1;

/// The columns a follower reads, in this order: seq, kind, token_id,
/// user_id, issued_before, detail, prune_after.
type Row = (
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    String,
    i64,
);

/// One event in its stored form, as a feed passes it on: decoded by the
/// follower with [`EventRow::decode`], the same rule the store's own
/// readers use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub seq: i64,
    pub kind: String,
    pub token_id: Option<String>,
    pub user_id: Option<String>,
    pub issued_before: Option<i64>,
    pub detail: String,
    pub prune_after: i64,
}

impl From<Row> for EventRow {
    fn from(row: Row) -> Self {
        let (seq, kind, token_id, user_id, issued_before, detail, prune_after) = row;
        Self {
            seq,
            kind,
            token_id,
            user_id,
            issued_before,
            detail,
            prune_after,
        }
    }
}

/// A query for the columns of [`Row`], in its order.
fn follower_rows() -> sea_orm::Select<revocation_event::Entity> {
    use revocation_event::Column as C;
    revocation_event::Entity::find().select_only().columns([
        C::Seq,
        C::Kind,
        C::TokenId,
        C::UserId,
        C::IssuedBefore,
        C::Detail,
        C::PruneAfter,
    ])
}

impl EventRow {
    /// The event the revocation set applies.
    pub fn decode(&self) -> Result<Event, StoreError> {
        decode(self)
    }
}

/// Turns a stored row into the form the revocation set applies (the one
/// rule every reader of the log uses: the store's and the feed's).
fn decode(row: &EventRow) -> Result<Event, StoreError> {
    let EventRow {
        seq,
        kind,
        token_id,
        user_id,
        issued_before,
        detail,
        prune_after,
    } = row;
    let bad = |why: &str| corrupt(&format!("revocation event {seq}"), why);
    let kind = EventKind::parse(kind).ok_or_else(|| bad("unknown kind"))?;
    let detail: Detail = if detail.is_empty() || detail == "null" {
        Detail::default()
    } else {
        serde_json::from_str(detail).map_err(|e| bad(&e.to_string()))?
    };
    let change = match kind {
        EventKind::RevokeToken => Change::RevokeToken,
        EventKind::DisableToken => Change::DisableToken,
        EventKind::EnableToken => Change::EnableToken,
        EventKind::NarrowToken => Change::NarrowToken {
            expire_time: detail.expire_time,
            grants: detail.grants,
        },
        EventKind::RotateToken => Change::RotateToken {
            min_version: detail.min_version,
            effective_at: detail.effective_at,
        },
        EventKind::ExtendToken => Change::ExtendToken {
            version: detail.version.ok_or_else(|| bad("no version"))?,
            expire_time: detail.expire_time.ok_or_else(|| bad("no expire_time"))?,
            grants: detail.grants.ok_or_else(|| bad("no grants"))?,
            disabled: detail.disabled.ok_or_else(|| bad("no disabled"))?,
        },
        EventKind::RevokeUser => Change::RevokeUser {
            generation: detail.generation.ok_or_else(|| bad("no generation"))?,
        },
        EventKind::RevokeUserBefore => Change::RevokeUserBefore {
            issued_before: issued_before.ok_or_else(|| bad("no issued_before"))?,
        },
        EventKind::UserCeiling => Change::UserCeiling {
            grants: detail.grants.ok_or_else(|| bad("no grants"))?,
            generation: detail.generation.unwrap_or(LEGACY_CEILING_GENERATION),
        },
    };
    let id = |text: &Option<String>| text.as_deref().and_then(Id::parse);
    Ok(Event {
        seq: *seq,
        token: id(token_id),
        user: id(user_id),
        change,
        prune_after: *prune_after,
    })
}

/// Appends `event` inside the caller's transaction and returns its sequence
/// number. The counter row's lock is held until the transaction ends, so
/// events commit in sequence order.
pub(crate) async fn append(
    conn: &impl ConnectionTrait,
    now: i64,
    event: NewRevocation,
) -> Result<i64, StoreError> {
    let updated = sequence::Entity::update_many()
        .col_expr(
            sequence::Column::Value,
            Expr::col(sequence::Column::Value).add(1),
        )
        .filter(sequence::Column::Name.eq(SEQUENCE))
        .exec(conn)
        .await?;
    if updated.rows_affected != 1 {
        return Err(StoreError::Corrupt(
            "the revocation sequence row is missing".into(),
        ));
    }
    let seq = sequence::Entity::find_by_id(SEQUENCE)
        .one(conn)
        .await?
        .ok_or_else(|| StoreError::Corrupt("the revocation sequence row is missing".into()))?
        .value;
    revocation_event::ActiveModel {
        seq: Set(seq),
        kind: Set(event.kind.as_str().into()),
        token_id: Set(event.token_id),
        user_id: Set(event.user_id),
        issued_before: Set(event.issued_before),
        detail: Set(event.detail.to_string()),
        create_time: Set(now),
        prune_after: Set(event.prune_after),
    }
    .insert(conn)
    .await?;
    Ok(seq)
}

impl Store {
    /// Events with a sequence number above `after`, oldest first, at most `limit`.
    pub async fn revocations_after(
        &self,
        after: i64,
        limit: u64,
    ) -> Result<Vec<revocation_event::Model>, StoreError> {
        Ok(revocation_event::Entity::find()
            .filter(revocation_event::Column::Seq.gt(after))
            .order_by_asc(revocation_event::Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// Decoded events with a sequence number above `after`, oldest first, at
    /// most `limit`; with `live_at`, only those not yet prunable then. Reads
    /// just the columns a follower needs, by position: the verifier's hot
    /// path at start-up.
    pub async fn events_after(
        &self,
        after: i64,
        live_at: Option<i64>,
        limit: u64,
    ) -> Result<Vec<Event>, StoreError> {
        self.events_between(after, i64::MAX, live_at, limit).await
    }

    /// Like [`Store::events_after`], but only up to sequence number `up_to`
    /// (inclusive), so a loader can read ranges side by side.
    pub async fn events_between(
        &self,
        after: i64,
        up_to: i64,
        live_at: Option<i64>,
        limit: u64,
    ) -> Result<Vec<Event>, StoreError> {
        let rows = self.rows_between(after, up_to, live_at, limit).await?;
        rows.iter().map(decode).collect()
    }

    /// Like [`Store::events_between`], in the stored form a feed sends.
    pub async fn event_rows_between(
        &self,
        after: i64,
        up_to: i64,
        live_at: Option<i64>,
        limit: u64,
    ) -> Result<Vec<EventRow>, StoreError> {
        self.rows_between(after, up_to, live_at, limit).await
    }

    async fn rows_between(
        &self,
        after: i64,
        up_to: i64,
        live_at: Option<i64>,
        limit: u64,
    ) -> Result<Vec<EventRow>, StoreError> {
        use revocation_event::Column as C;
        let mut query = follower_rows()
            .filter(C::Seq.gt(after))
            .filter(C::Seq.lte(up_to));
        if let Some(now) = live_at {
            query = query.filter(C::PruneAfter.gt(now));
        }
        let rows: Vec<Row> = query
            .order_by_asc(C::Seq)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(EventRow::from).collect())
    }

    /// Every event that can touch the tokens `token_ids` of the owners
    /// `user_ids`: the tokens' own and the owners' user-wide ones, oldest
    /// first. Built into a revocation set, it judges those tokens exactly as
    /// a verifier following the whole log does.
    pub async fn events_touching(
        &self,
        token_ids: &[&str],
        user_ids: &[&str],
    ) -> Result<Vec<Event>, StoreError> {
        use revocation_event::Column as C;
        if token_ids.is_empty() && user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<Row> = follower_rows()
            .filter(
                Condition::any()
                    .add(C::TokenId.is_in(token_ids.iter().copied()))
                    .add(
                        Condition::all()
                            .add(C::TokenId.is_null())
                            .add(C::UserId.is_in(user_ids.iter().copied())),
                    ),
            )
            .order_by_asc(C::Seq)
            .into_tuple()
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|r| decode(&EventRow::from(r)))
            .collect()
    }

    /// The identity of this database's revocation log, made once with the
    /// schema: what a feed says it serves, so a verifier reading this store
    /// can tell whether a feed is the same log.
    pub async fn log_id(&self) -> Result<String, StoreError> {
        log_identity::Entity::find()
            .one(&self.db)
            .await?
            .map(|row| row.id)
            .ok_or_else(|| {
                StoreError::Corrupt(
                    "the store has no log identity: start the issuer (or run tessera-migration) \
                     to migrate it"
                        .into(),
                )
            })
    }

    /// The highest sequence number handed out so far (0 before any event).
    pub async fn last_revocation_seq(&self) -> Result<i64, StoreError> {
        Ok(sequence::Entity::find_by_id(SEQUENCE)
            .one(&self.db)
            .await?
            .map_or(0, |row| row.value))
    }

    /// Appends one event on its own transaction; for tests and tools.
    pub async fn append_revocation(
        &self,
        now: i64,
        event: NewRevocation,
    ) -> Result<i64, StoreError> {
        let txn = self.begin_write().await?;
        let seq = append(&txn, now, event).await?;
        txn.commit().await?;
        self.mark_appended();
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "01900000-0000-7000-8000-000000000001";
    const USER: &str = "01900000-0000-7000-8000-0000000000aa";

    fn stored(event: NewRevocation) -> EventRow {
        EventRow {
            seq: 7,
            kind: event.kind.as_str().into(),
            token_id: event.token_id,
            user_id: event.user_id,
            issued_before: event.issued_before,
            detail: event.detail.to_string(),
            prune_after: event.prune_after,
        }
    }

    #[test]
    fn an_extension_reads_back_as_it_was_written() {
        let grants = vec![Grant {
            resource: "repositories".into(),
            actions: vec!["read".into()],
        }];
        let row = stored(NewRevocation::extend_token(
            TOKEN, USER, 2, 5_000, &grants, true, 5_000,
        ));
        assert_eq!(row.kind, "extend_token");
        let event = row.decode().expect("decodes");
        assert_eq!(
            event.change,
            Change::ExtendToken {
                version: 2,
                expire_time: 5_000,
                grants,
                disabled: true,
            }
        );
        assert_eq!(event.token, Id::parse(TOKEN));
        assert_eq!(event.prune_after, 5_000);
    }

    #[test]
    fn an_extension_missing_a_field_is_corrupt() {
        let mut row = stored(NewRevocation::extend_token(
            TOKEN,
            USER,
            0,
            5_000,
            &[],
            false,
            5_000,
        ));
        row.detail = r#"{"version": 0, "expire_time": 5000}"#.into();
        assert!(row.decode().is_err(), "grants and state are required");
    }
}
