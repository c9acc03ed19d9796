//! Lock rows: named rows of `sequences` that a write transaction updates
//! first, to hold them until it ends.
//!
//! SQLite runs one write transaction at a time anyway (`BEGIN IMMEDIATE`);
//! on PostgreSQL two transactions that each check a rule across rows ("one
//! enabled administrator remains", "no key is pending") could both pass it
//! under READ COMMITTED. Taking the same lock row first makes them queue.

use crate::StoreError;
use crate::entity::sequence;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

/// Serializes changes to users.
pub(crate) const USERS: &str = "users";
/// Serializes signing key rotations.
pub(crate) const KEYS: &str = "keys";

/// Takes the lock row `name` for the rest of the transaction.
pub(crate) async fn take(conn: &impl ConnectionTrait, name: &str) -> Result<(), StoreError> {
    let updated = sequence::Entity::update_many()
        .col_expr(
            sequence::Column::Value,
            Expr::col(sequence::Column::Value).add(1),
        )
        .filter(sequence::Column::Name.eq(name))
        .exec(conn)
        .await?;
    if updated.rows_affected != 1 {
        return Err(StoreError::Corrupt(format!(
            "the lock row {name:?} is missing: are the migrations applied?"
        )));
    }
    Ok(())
}
