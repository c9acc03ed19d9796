//! `audit_events`: who did what, when, and how it ended. Never a secret.

use sea_orm::entity::prelude::*;

/// An audit event row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub time: i64,
    /// Username of the caller, or `-` when unauthenticated.
    pub actor: String,
    /// `token.create`, `session.login`, …
    pub action: String,
    /// What was acted on: `token:<id>`, `user:<name>`, …
    pub target: String,
    /// `ok`, `denied`, `failed`.
    pub outcome: String,
    pub detail: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
