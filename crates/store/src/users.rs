//! Users: who can log in, and what they may grant.

use crate::audit::{self, NewAudit};
use crate::entity::user;
use crate::error::corrupt;
use crate::{Store, StoreError};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use tessera_core::Grant;

/// A user about to be created.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub admin: bool,
    pub enabled: bool,
    pub grants: Vec<Grant>,
}

/// The grants stored on a user row.
pub fn grants_of(user: &user::Model) -> Result<Vec<Grant>, StoreError> {
    serde_json::from_str(&user.grants).map_err(|e| corrupt("user grants", e))
}

impl Store {
    /// Creates a user; `AlreadyExists` if the username is taken.
    pub async fn create_user(
        &self,
        now: i64,
        new: NewUser,
        audit: Option<NewAudit>,
    ) -> Result<user::Model, StoreError> {
        let grants = serde_json::to_string(&new.grants).map_err(|e| corrupt("user grants", e))?;
        let txn = self.begin_write().await?;
        let model = user::ActiveModel {
            id: Set(new.id),
            username: Set(new.username),
            password_hash: Set(new.password_hash),
            admin: Set(new.admin),
            enabled: Set(new.enabled),
            grants: Set(grants),
            create_time: Set(now),
            update_time: Set(now),
        }
        .insert(&txn)
        .await?;
        if let Some(event) = audit {
            audit::insert(&txn, now, event).await?;
        }
        txn.commit().await?;
        Ok(model)
    }

    /// The user with this username.
    pub async fn user_by_username(
        &self,
        username: &str,
    ) -> Result<Option<user::Model>, StoreError> {
        Ok(user::Entity::find()
            .filter(user::Column::Username.eq(username))
            .one(&self.db)
            .await?)
    }

    /// The user with this id.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<user::Model>, StoreError> {
        Ok(user::Entity::find_by_id(id).one(&self.db).await?)
    }

    /// How many users exist.
    pub async fn count_users(&self) -> Result<u64, StoreError> {
        Ok(user::Entity::find().count(&self.db).await?)
    }
}
