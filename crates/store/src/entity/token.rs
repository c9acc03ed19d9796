//! `tokens`: metadata of issued tokens. The token string is never stored.

use sea_orm::entity::prelude::*;

/// A token row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tokens")]
pub struct Model {
    /// The `jti` claim: a UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub owner_id: String,
    /// Unique per owner.
    pub name: String,
    pub description: String,
    /// `api` or `session`.
    pub token_type: String,
    /// For sessions: `web`, `token_service` or `api`.
    pub session_kind: Option<String>,
    pub enabled: bool,
    pub all_permissions: bool,
    /// JSON array of grants, as signed into the token.
    pub grants: String,
    /// The signing key's id.
    pub key_id: String,
    pub create_time: i64,
    pub update_time: i64,
    pub expire_time: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
