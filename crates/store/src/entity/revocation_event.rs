//! `revocation_events`: the ordered log of narrowing changes verifiers follow.

use sea_orm::entity::prelude::*;

/// A revocation event row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "revocation_events")]
pub struct Model {
    /// Strictly increasing, gap-free within committed events.
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    /// What happened: see `revocation::EventKind`.
    pub kind: String,
    pub token_id: Option<String>,
    pub user_id: Option<String>,
    /// For user-wide events: tokens issued before this time are refused.
    pub issued_before: Option<i64>,
    /// JSON with kind-specific data (new grants, new expiry).
    pub detail: String,
    pub create_time: i64,
    /// After this time no token the event affects can still be valid.
    pub prune_after: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
