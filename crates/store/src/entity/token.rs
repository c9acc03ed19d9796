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
    /// When the token expires: its current secret's `exp`, or earlier if
    /// it was narrowed since.
    pub expire_time: i64,
    /// The current secret's version (the `ver` claim): 0 at creation, one
    /// more at each rotation.
    pub version: i32,
    /// When the current secret was issued (its `iat`).
    pub issue_time: i64,
    /// After a rotation: when secrets of older versions stop being accepted
    /// (the end of the overlap window; the rotation time when there is none).
    pub previous_secret_expire_time: Option<i64>,
    /// The owner's generation when the current secret was issued (its `gen`
    /// claim); 0 for secrets issued before generations existed.
    pub generation: i64,
    /// When a verifier last answered OK for the token (merged from every
    /// verifier's batches; see [`crate::usage`]); `None` if never.
    pub last_used_time: Option<i64>,
    /// How many OK answers the verifiers have reported.
    pub use_count: i64,
    /// The address of the caller behind the last reported use.
    pub last_caller: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
