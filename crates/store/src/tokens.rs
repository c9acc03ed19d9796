//! Token metadata: create, find, list, delete.

use crate::audit::{self, NewAudit};
use crate::entity::token;
use crate::error::corrupt;
use crate::revocation::{self, NewRevocation};
use crate::{Store, StoreError};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use tessera_core::{Grant, TokenType};

/// A token about to be recorded.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub description: String,
    pub token_type: TokenType,
    pub session_kind: Option<String>,
    pub enabled: bool,
    pub all_permissions: bool,
    pub grants: Vec<Grant>,
    pub key_id: String,
    pub create_time: i64,
    pub expire_time: i64,
}

/// The grants stored on a token row.
pub fn grants_of(token: &token::Model) -> Result<Vec<Grant>, StoreError> {
    serde_json::from_str(&token.grants).map_err(|e| corrupt("token grants", e))
}

/// The state of a token at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Enabled and not expired.
    Active,
    /// Disabled (whether or not it has expired).
    Disabled,
    /// Enabled but past its expiry.
    Expired,
}

/// A token's status at `now`.
pub fn status_of(token: &token::Model, now: i64) -> Status {
    if !token.enabled {
        Status::Disabled
    } else if token.expire_time <= now {
        Status::Expired
    } else {
        Status::Active
    }
}

/// Which tokens to list.
#[derive(Debug, Clone, Default)]
pub struct TokenFilter {
    /// Only this owner's; `None` lists everyone's.
    pub owner_id: Option<String>,
    /// Only this type.
    pub token_type: Option<TokenType>,
    /// Only expired (`Some(true)`) or unexpired (`Some(false)`) ones, at `now`.
    pub expired: Option<bool>,
    /// Only tokens in this status at `now`.
    pub status: Option<Status>,
    /// The time `expired` and `status` are judged at.
    pub now: i64,
    /// Only ids after this one (keyset paging; ids are time-ordered UUIDv7s).
    pub after_id: Option<String>,
    /// At most this many.
    pub limit: u64,
}

impl Store {
    /// Records a new token and its audit event; `AlreadyExists` if the owner
    /// has a token of that name, even when two creates race.
    pub async fn create_token(
        &self,
        new: NewToken,
        audit: NewAudit,
    ) -> Result<token::Model, StoreError> {
        let grants = serde_json::to_string(&new.grants).map_err(|e| corrupt("token grants", e))?;
        let txn = self.begin_write().await?;
        let model = token::ActiveModel {
            id: Set(new.id),
            owner_id: Set(new.owner_id),
            name: Set(new.name),
            description: Set(new.description),
            token_type: Set(new.token_type.as_str().into()),
            session_kind: Set(new.session_kind),
            enabled: Set(new.enabled),
            all_permissions: Set(new.all_permissions),
            grants: Set(grants),
            key_id: Set(new.key_id),
            create_time: Set(new.create_time),
            update_time: Set(new.create_time),
            expire_time: Set(new.expire_time),
        }
        .insert(&txn)
        .await?;
        audit::insert(&txn, new.create_time, audit).await?;
        txn.commit().await?;
        Ok(model)
    }

    /// The token with this id.
    pub async fn token_by_id(&self, id: &str) -> Result<Option<token::Model>, StoreError> {
        Ok(token::Entity::find_by_id(id).one(&self.db).await?)
    }

    /// The owner's token with this name.
    pub async fn token_by_name(
        &self,
        owner_id: &str,
        name: &str,
    ) -> Result<Option<token::Model>, StoreError> {
        Ok(token::Entity::find()
            .filter(token::Column::OwnerId.eq(owner_id))
            .filter(token::Column::Name.eq(name))
            .one(&self.db)
            .await?)
    }

    /// Tokens matching `filter`, in id (creation) order.
    pub async fn list_tokens(&self, filter: TokenFilter) -> Result<Vec<token::Model>, StoreError> {
        use token::Column;
        let mut query = token::Entity::find();
        if let Some(owner) = filter.owner_id {
            query = query.filter(Column::OwnerId.eq(owner));
        }
        if let Some(kind) = filter.token_type {
            query = query.filter(Column::TokenType.eq(kind.as_str()));
        }
        match filter.expired {
            Some(true) => query = query.filter(Column::ExpireTime.lte(filter.now)),
            Some(false) => query = query.filter(Column::ExpireTime.gt(filter.now)),
            None => {}
        }
        match filter.status {
            Some(Status::Active) => {
                query = query
                    .filter(Column::Enabled.eq(true))
                    .filter(Column::ExpireTime.gt(filter.now));
            }
            Some(Status::Disabled) => query = query.filter(Column::Enabled.eq(false)),
            Some(Status::Expired) => {
                query = query
                    .filter(Column::Enabled.eq(true))
                    .filter(Column::ExpireTime.lte(filter.now));
            }
            None => {}
        }
        if let Some(after) = filter.after_id {
            query = query.filter(Column::Id.gt(after));
        }
        Ok(query
            .order_by_asc(Column::Id)
            .limit(filter.limit)
            .all(&self.db)
            .await?)
    }

    /// Deletes a token, appending its revocation event and audit event in the
    /// same transaction; `NotFound` if it is already gone.
    pub async fn delete_token(
        &self,
        id: &str,
        now: i64,
        revocation: NewRevocation,
        audit: NewAudit,
    ) -> Result<(), StoreError> {
        let txn = self.begin_write().await?;
        let deleted = token::Entity::delete_by_id(id).exec(&txn).await?;
        if deleted.rows_affected == 0 {
            return Err(StoreError::NotFound);
        }
        revocation::append(&txn, now, revocation).await?;
        audit::insert(&txn, now, audit).await?;
        txn.commit().await?;
        Ok(())
    }
}
