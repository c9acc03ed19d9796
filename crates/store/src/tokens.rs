//! Token metadata: create, find, list, change, delete.

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
    /// The owner's generation the secret was issued at (its `gen` claim).
    pub generation: u64,
}

/// The grants stored on a token row.
pub fn grants_of(token: &token::Model) -> Result<Vec<Grant>, StoreError> {
    serde_json::from_str(&token.grants).map_err(|e| corrupt("token grants", e))
}

/// Which rows can be in a status: a coarse filter the database applies
/// before the issuer judges each row by the revocation rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Enabled and not expired.
    Active,
    /// Disabled and not expired.
    Disabled,
    /// Past its expiry, whether or not it is enabled.
    Expired,
    /// Not expired (whether revoked is known only from the log).
    Unexpired,
}

/// The owner's generation as a claim carries it.
pub fn generation_of(token: &token::Model) -> u64 {
    u64::try_from(token.generation).unwrap_or(0)
}

/// The token's current secret version, as the `ver` claim carries it.
pub fn version_of(token: &token::Model) -> u32 {
    u32::try_from(token.version).unwrap_or(0)
}

/// The last time any secret of the token can be accepted: its expiry, or the
/// end of a rotation's overlap window if that is later. Events about the
/// whole token are kept (not pruned) until then.
pub fn last_valid_time(token: &token::Model) -> i64 {
    token
        .previous_secret_expire_time
        .map_or(token.expire_time, |t| t.max(token.expire_time))
}

/// A new secret recorded on a token row (a rotation or a session extension).
#[derive(Debug, Clone)]
pub struct NewSecret {
    /// Its `ver` claim.
    pub version: u32,
    /// The key that signed it.
    pub key_id: String,
    /// Its `iat` claim.
    pub issue_time: i64,
    /// When secrets of older versions stop being accepted (rotations only).
    pub previous_secret_expire_time: Option<i64>,
    /// Its `gen` claim.
    pub generation: u64,
}

/// Fields of a token row to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TokenUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub all_permissions: Option<bool>,
    pub grants: Option<Vec<Grant>>,
    pub expire_time: Option<i64>,
    pub secret: Option<NewSecret>,
}

impl TokenUpdate {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.description.is_none()
            && self.enabled.is_none()
            && self.all_permissions.is_none()
            && self.grants.is_none()
            && self.expire_time.is_none()
            && self.secret.is_none()
    }
}

/// What one change to a token writes: the row's new fields, the revocation
/// events it causes (appended in order) and its audit event, all in one
/// transaction.
#[derive(Debug, Clone)]
pub struct TokenChange {
    pub update: TokenUpdate,
    pub revocations: Vec<NewRevocation>,
    pub audit: NewAudit,
}

/// How long after its current secret was issued (created, duplicated or
/// rotated) an unexpired API token stays out of the "expiring" filter and
/// count. Its expiry was chosen just then, by someone who knows it: without
/// it a token made with the default lifetime of 7 days would be "expiring
/// within 7 days" the moment it is made.
pub const EXPIRING_GRACE_SECS: i64 = 86_400;

/// "Expires before `before`", as the filter for tokens about to expire
/// means it at `now`: leaves out unexpired API tokens issued within
/// [`EXPIRING_GRACE_SECS`]. Sessions stay in (short by design, nobody
/// renews them by hand), and so do expired, disabled and revoked tokens:
/// the status filter, judged by the revocation rule, says which a caller
/// wants.
pub(crate) fn expiring_before(now: i64, before: i64) -> sea_orm::Condition {
    use sea_orm::Condition;
    use token::Column;
    Condition::all().add(Column::ExpireTime.lt(before)).add(
        Condition::any()
            .add(Column::ExpireTime.lte(now))
            .add(Column::TokenType.ne(TokenType::Api.as_str()))
            .add(Column::IssueTime.lte(now.saturating_sub(EXPIRING_GRACE_SECS))),
    )
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
    /// Only tokens not used since this time (see [`crate::usage`]): last
    /// used before it, or never used and created before it.
    pub unused_since: Option<i64>,
    /// Only tokens that expire before this time, leaving out unexpired API
    /// tokens issued within [`EXPIRING_GRACE_SECS`] of `now`.
    pub expire_before: Option<i64>,
    /// Only ids after this one (keyset paging; ids are time-ordered UUIDv7s).
    pub after_id: Option<String>,
    /// At most this many.
    pub limit: u64,
}

impl Store {
    /// Records a new token and its audit event; `AlreadyExists` if the owner
    /// has a token of that name, even when two creates race. A token created
    /// disabled gets its "disabled" revocation event in the same transaction,
    /// since its secret is valid by signature alone.
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
            version: Set(0),
            issue_time: Set(new.create_time),
            previous_secret_expire_time: Set(None),
            generation: Set(i64::try_from(new.generation).unwrap_or(i64::MAX)),
            last_used_time: Set(None),
            use_count: Set(0),
            last_caller: Set(None),
        }
        .insert(&txn)
        .await?;
        if !model.enabled {
            let disabled = NewRevocation::token(
                revocation::EventKind::DisableToken,
                &model.id,
                &model.owner_id,
                model.expire_time,
            );
            revocation::append(&txn, new.create_time, disabled).await?;
        }
        audit::insert(&txn, new.create_time, audit).await?;
        txn.commit().await?;
        self.mark_appended();
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
            Some(Status::Disabled) => {
                query = query
                    .filter(Column::Enabled.eq(false))
                    .filter(Column::ExpireTime.gt(filter.now));
            }
            Some(Status::Expired) => query = query.filter(Column::ExpireTime.lte(filter.now)),
            Some(Status::Unexpired) => query = query.filter(Column::ExpireTime.gt(filter.now)),
            None => {}
        }
        if let Some(since) = filter.unused_since {
            query = query.filter(crate::usage::unused_before(since));
        }
        if let Some(before) = filter.expire_before {
            query = query.filter(expiring_before(filter.now, before));
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

    /// Changes one token: reads its row locked for the rest of the
    /// transaction (so concurrent changes of one token queue, and each
    /// decides on the row as the previous one left it), lets `decide` say
    /// what to write, then writes the row, the revocation events and the
    /// audit event together. When `decide` refuses, nothing is written.
    /// `NotFound` if the token does not exist.
    pub async fn change_token<T, E: From<StoreError>>(
        &self,
        id: &str,
        now: i64,
        decide: impl FnOnce(&token::Model) -> Result<(TokenChange, T), E>,
    ) -> Result<(token::Model, T), E> {
        let txn = self.begin_write().await?;
        let row = token::Entity::find_by_id(id)
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(StoreError::from)?
            .ok_or(StoreError::NotFound)?;
        let (change, out) = decide(&row)?;
        let row = apply(&txn, row, change.update, now).await?;
        for event in change.revocations {
            revocation::append(&txn, now, event).await?;
        }
        audit::insert(&txn, now, change.audit).await?;
        txn.commit().await.map_err(StoreError::from)?;
        self.mark_appended();
        Ok((row, out))
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
        self.mark_appended();
        Ok(())
    }
}

/// Writes `update` to `row` (and its update time), unless it changes nothing.
async fn apply(
    conn: &impl sea_orm::ConnectionTrait,
    row: token::Model,
    update: TokenUpdate,
    now: i64,
) -> Result<token::Model, StoreError> {
    if update.is_empty() {
        return Ok(row);
    }
    let mut model: token::ActiveModel = row.into();
    if let Some(name) = update.name {
        model.name = Set(name);
    }
    if let Some(description) = update.description {
        model.description = Set(description);
    }
    if let Some(enabled) = update.enabled {
        model.enabled = Set(enabled);
    }
    if let Some(all) = update.all_permissions {
        model.all_permissions = Set(all);
    }
    if let Some(grants) = update.grants {
        model.grants = Set(serde_json::to_string(&grants).map_err(|e| corrupt("token grants", e))?);
    }
    if let Some(expire_time) = update.expire_time {
        model.expire_time = Set(expire_time);
    }
    if let Some(secret) = update.secret {
        model.version = Set(i32::try_from(secret.version)
            .map_err(|_| StoreError::Corrupt("token version overflow".into()))?);
        model.key_id = Set(secret.key_id);
        model.issue_time = Set(secret.issue_time);
        model.previous_secret_expire_time = Set(secret.previous_secret_expire_time);
        model.generation = Set(i64::try_from(secret.generation).unwrap_or(i64::MAX));
    }
    model.update_time = Set(now);
    Ok(model.update(conn).await?)
}
