//! The revocation log: every change that narrows what an issued token string
//! allows, in one strictly ordered sequence that verifiers follow.

use crate::entity::{revocation_event, sequence};
use crate::{Store, StoreError};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

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
    /// Every token of a user issued before `issued_before` is refused.
    RevokeUserBefore,
    /// The token's grants or expiry were narrowed; `detail` has the new ones.
    NarrowToken,
}

impl EventKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RevokeToken => "revoke_token",
            EventKind::DisableToken => "disable_token",
            EventKind::EnableToken => "enable_token",
            EventKind::RevokeUserBefore => "revoke_user_before",
            EventKind::NarrowToken => "narrow_token",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "revoke_token" => EventKind::RevokeToken,
            "disable_token" => EventKind::DisableToken,
            "enable_token" => EventKind::EnableToken,
            "revoke_user_before" => EventKind::RevokeUserBefore,
            "narrow_token" => EventKind::NarrowToken,
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

    /// How many events the log holds.
    pub async fn count_revocations(&self) -> Result<u64, StoreError> {
        Ok(revocation_event::Entity::find().count(&self.db).await?)
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
        Ok(seq)
    }
}
