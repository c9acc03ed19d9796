//! `users`: people and services that log in and own tokens.

use sea_orm::entity::prelude::*;

/// A user row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    /// A UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Unique login name.
    #[sea_orm(unique)]
    pub username: String,
    /// argon2id PHC string; never the password.
    pub password_hash: String,
    /// Administrators hold every grant.
    pub admin: bool,
    /// A disabled user cannot log in and their tokens are refused.
    pub enabled: bool,
    /// JSON array of grants.
    pub grants: String,
    pub create_time: i64,
    pub update_time: i64,
    /// Written before generations: tokens of this user issued (`iat`)
    /// before this time were refused. No longer written or read; kept so
    /// older databases need no rewrite.
    pub tokens_valid_after: i64,
    /// Raised by every user-wide change (disable, delete, new password,
    /// grants taken away); secrets carry the generation they were issued at
    /// (`gen`), and a change binds exactly those below it.
    pub generation: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
