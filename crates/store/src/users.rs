//! Users: who can log in, and what they may grant.

use crate::audit::{self, NewAudit};
use crate::entity::{token, user};
use crate::error::corrupt;
use crate::revocation::{self, NewRevocation};
use crate::{Store, StoreError, lock, tokens};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use tessera_core::{Grant, grants};

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

/// The user's current generation: what a secret issued now carries.
pub fn generation_of(user: &user::Model) -> u64 {
    u64::try_from(user.generation).unwrap_or(1)
}

/// The grants stored on a user row.
pub fn grants_of(user: &user::Model) -> Result<Vec<Grant>, StoreError> {
    serde_json::from_str(&user.grants).map_err(|e| corrupt("user grants", e))
}

/// Fields of a user row to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub username: Option<String>,
    pub admin: Option<bool>,
    pub enabled: Option<bool>,
    pub grants: Option<Vec<Grant>>,
    pub password_hash: Option<String>,
    /// A user-wide change: the new generation, which binds every secret
    /// issued below it.
    pub generation: Option<u64>,
}

impl UserUpdate {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.username.is_none()
            && self.admin.is_none()
            && self.enabled.is_none()
            && self.grants.is_none()
            && self.password_hash.is_none()
            && self.generation.is_none()
    }
}

/// What one change to a user writes, in one transaction.
#[derive(Debug, Clone)]
pub struct UserChange {
    pub update: UserUpdate,
    /// When set, every token of the user is cut down to these grants.
    pub token_ceiling: Option<Vec<Grant>>,
    pub revocations: Vec<NewRevocation>,
    pub audit: NewAudit,
}

/// What deleting a user writes besides removing the user and its tokens.
#[derive(Debug, Clone)]
pub struct UserDeletion {
    pub revocations: Vec<NewRevocation>,
    pub audit: NewAudit,
}

/// What a user change is decided against, read under the users lock.
#[derive(Debug, Clone, Copy)]
pub struct UserContext {
    /// How many users are enabled administrators now (before the change).
    pub enabled_admins: u64,
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
            tokens_valid_after: Set(0),
            generation: Set(1),
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

    /// Users ordered by username, after `after` (keyset paging), at most `limit`.
    pub async fn list_users(
        &self,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<user::Model>, StoreError> {
        let mut query = user::Entity::find();
        if let Some(after) = after {
            query = query.filter(user::Column::Username.gt(after));
        }
        Ok(query
            .order_by_asc(user::Column::Username)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    /// Changes one user. User changes run one at a time (the users lock), so
    /// `decide` sees the row and the count of enabled administrators as no
    /// concurrent change can alter them. It says what to write; the row, the
    /// narrowed grants of the user's tokens, the revocation events and the
    /// audit event are written together, or nothing is when it refuses.
    /// `NotFound` if the user does not exist; `AlreadyExists` when renaming
    /// onto a taken username.
    pub async fn change_user<T, E: From<StoreError>>(
        &self,
        id: &str,
        now: i64,
        decide: impl FnOnce(&user::Model, &UserContext) -> Result<(UserChange, T), E>,
    ) -> Result<(user::Model, T), E> {
        let txn = self.begin_write().await?;
        let (row, context) = locked_user(&txn, id).await?;
        let (change, out) = decide(&row, &context)?;
        let row = apply(&txn, row, change.update, now).await?;
        if let Some(ceiling) = &change.token_ceiling {
            narrow_tokens(&txn, &row.id, ceiling, now).await?;
        }
        for event in change.revocations {
            revocation::append(&txn, now, event).await?;
        }
        audit::insert(&txn, now, change.audit).await?;
        txn.commit().await.map_err(StoreError::from)?;
        self.mark_appended();
        Ok((row, out))
    }

    /// Deletes one user and all of the user's tokens, with the events
    /// `decide` asks for, in one transaction (under the users lock, as
    /// [`Store::change_user`]). `NotFound` if the user does not exist.
    pub async fn delete_user<E: From<StoreError>>(
        &self,
        id: &str,
        now: i64,
        decide: impl FnOnce(&user::Model, &UserContext) -> Result<UserDeletion, E>,
    ) -> Result<user::Model, E> {
        let txn = self.begin_write().await?;
        let (row, context) = locked_user(&txn, id).await?;
        let deletion = decide(&row, &context)?;
        token::Entity::delete_many()
            .filter(token::Column::OwnerId.eq(row.id.as_str()))
            .exec(&txn)
            .await
            .map_err(StoreError::from)?;
        user::Entity::delete_by_id(row.id.as_str())
            .exec(&txn)
            .await
            .map_err(StoreError::from)?;
        for event in deletion.revocations {
            revocation::append(&txn, now, event).await?;
        }
        audit::insert(&txn, now, deletion.audit).await?;
        txn.commit().await.map_err(StoreError::from)?;
        self.mark_appended();
        Ok(row)
    }
}

/// Takes the users lock, then reads the user and the administrator count.
async fn locked_user(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<(user::Model, UserContext), StoreError> {
    lock::take(conn, lock::USERS).await?;
    let row = user::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(StoreError::NotFound)?;
    let enabled_admins = user::Entity::find()
        .filter(user::Column::Admin.eq(true))
        .filter(user::Column::Enabled.eq(true))
        .count(conn)
        .await?;
    Ok((row, UserContext { enabled_admins }))
}

/// Writes `update` to `row` (and its update time), unless it changes nothing.
async fn apply(
    conn: &impl ConnectionTrait,
    row: user::Model,
    update: UserUpdate,
    now: i64,
) -> Result<user::Model, StoreError> {
    if update.is_empty() {
        return Ok(row);
    }
    let mut model: user::ActiveModel = row.into();
    if let Some(username) = update.username {
        model.username = Set(username);
    }
    if let Some(admin) = update.admin {
        model.admin = Set(admin);
    }
    if let Some(enabled) = update.enabled {
        model.enabled = Set(enabled);
    }
    if let Some(grants) = update.grants {
        model.grants = Set(serde_json::to_string(&grants).map_err(|e| corrupt("user grants", e))?);
    }
    if let Some(hash) = update.password_hash {
        model.password_hash = Set(hash);
    }
    if let Some(generation) = update.generation {
        model.generation = Set(i64::try_from(generation).unwrap_or(i64::MAX));
    }
    model.update_time = Set(now);
    Ok(model.update(conn).await?)
}

/// Cuts every token of `owner_id` down to `ceiling`, so stored grants never
/// exceed the owner's (what the verifiers enforce through the ceiling event).
async fn narrow_tokens(
    conn: &impl ConnectionTrait,
    owner_id: &str,
    ceiling: &[Grant],
    now: i64,
) -> Result<(), StoreError> {
    let rows = token::Entity::find()
        .filter(token::Column::OwnerId.eq(owner_id))
        .all(conn)
        .await?;
    for row in rows {
        let held = tokens::grants_of(&row)?;
        let kept = grants::intersect(&held, ceiling);
        if kept == held {
            continue;
        }
        let mut model: token::ActiveModel = row.into();
        model.grants = Set(serde_json::to_string(&kept).map_err(|e| corrupt("token grants", e))?);
        model.update_time = Set(now);
        model.update(conn).await?;
    }
    Ok(())
}
