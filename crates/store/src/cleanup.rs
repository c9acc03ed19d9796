//! Housekeeping: what the issuer's clean-up task deletes. Every statement
//! is an idempotent bulk delete, so several issuer replicas may run it at
//! once.

use crate::entity::{revocation_event, token};
use crate::{Store, StoreError};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tessera_core::TokenType;

/// What one clean-up pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Session tokens deleted (expired longer ago than the retention).
    pub sessions: u64,
    /// Revocation events pruned (every token they can affect has expired).
    pub revocations: u64,
    /// Retired signing keys removed (past their publication).
    pub keys: u64,
}

impl Store {
    /// Deletes session tokens that expired before `expired_before`; returns
    /// how many. Their secrets are long expired: no revocation is needed.
    pub async fn delete_expired_sessions(&self, expired_before: i64) -> Result<u64, StoreError> {
        Ok(token::Entity::delete_many()
            .filter(token::Column::TokenType.eq(TokenType::Session.as_str()))
            .filter(token::Column::ExpireTime.lt(expired_before))
            .exec(&self.db)
            .await?
            .rows_affected)
    }

    /// Deletes revocation events whose `prune_after` is before `now`;
    /// returns how many. The sequence counter is untouched, so numbering
    /// never restarts.
    pub async fn prune_revocations(&self, now: i64) -> Result<u64, StoreError> {
        Ok(revocation_event::Entity::delete_many()
            .filter(revocation_event::Column::PruneAfter.lt(now))
            .exec(&self.db)
            .await?
            .rows_affected)
    }

    /// One clean-up pass at `now`: expired session tokens older than
    /// `session_retention` seconds, prunable revocation events, and retired
    /// keys past their publication.
    pub async fn clean_up(
        &self,
        now: i64,
        session_retention: i64,
    ) -> Result<CleanupReport, StoreError> {
        Ok(CleanupReport {
            sessions: self
                .delete_expired_sessions(now.saturating_sub(session_retention))
                .await?,
            revocations: self.prune_revocations(now).await?,
            keys: self.remove_unpublished_keys(now).await?,
        })
    }
}
