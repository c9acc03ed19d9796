//! Signing keys: publishing, choosing the one that signs, rotating, and
//! removing retired keys once nothing they signed can be valid.

use crate::audit::{self, NewAudit};
use crate::entity::signing_key;
use crate::{Store, StoreError, lock};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
};
use tessera_core::keys::NewKeyPair;

/// A key rotation: the next key and when it starts signing.
#[derive(Debug)]
pub struct KeyRotation {
    /// The new key pair (private half sealed).
    pub pair: NewKeyPair,
    /// When the new key starts signing; the keys signing until then retire
    /// at that moment.
    pub activate_time: i64,
    /// How long a retired key stays published after it retires: the longest
    /// lifetime of a token it may have signed.
    pub publish_after_retire: i64,
    /// For scheduled rotations: rotate only if the newest key was created
    /// at or before this time, so replicas running the schedule rotate once.
    pub only_if_newest_created_by: Option<i64>,
    /// The issuer name that will sign with the key.
    pub issuer: String,
}

impl Store {
    /// Stores a new key pair that `issuer` signs with from `activate_time`.
    pub async fn insert_key(
        &self,
        now: i64,
        pair: NewKeyPair,
        activate_time: i64,
        issuer: &str,
    ) -> Result<signing_key::Model, StoreError> {
        Ok(new_key(now, pair, activate_time, issuer)
            .insert(&self.db)
            .await?)
    }

    /// Records `issuer` on the keys that name none (keys made before key
    /// rows named their issuer); returns how many.
    pub async fn name_key_issuer(&self, issuer: &str) -> Result<u64, StoreError> {
        Ok(signing_key::Entity::update_many()
            .col_expr(signing_key::Column::Issuer, Expr::value(issuer))
            .filter(signing_key::Column::Issuer.is_null())
            .exec(&self.db)
            .await?
            .rows_affected)
    }

    /// Keys that are published at `now`: pending, active and retired keys
    /// whose tokens may still be live. Oldest first.
    pub async fn published_keys(&self, now: i64) -> Result<Vec<signing_key::Model>, StoreError> {
        Ok(signing_key::Entity::find()
            .filter(
                Condition::any()
                    .add(signing_key::Column::RemoveTime.is_null())
                    .add(signing_key::Column::RemoveTime.gt(now)),
            )
            .order_by_asc(signing_key::Column::ActivateTime)
            .all(&self.db)
            .await?)
    }

    /// The key that signs at `now`: the most recently activated one that is
    /// active and not retired (a key's retirement may be set in advance, to
    /// the moment its successor activates).
    pub async fn signing_key(&self, now: i64) -> Result<Option<signing_key::Model>, StoreError> {
        Ok(signing_key::Entity::find()
            .filter(signing_key::Column::ActivateTime.lte(now))
            .filter(
                Condition::any()
                    .add(signing_key::Column::RetireTime.is_null())
                    .add(signing_key::Column::RetireTime.gt(now)),
            )
            .order_by_desc(signing_key::Column::ActivateTime)
            .one(&self.db)
            .await?)
    }

    /// Publishes the next signing key and schedules the retirement of the
    /// keys signing until it activates, in one transaction (rotations run one
    /// at a time, under the keys lock). Returns `None` when a scheduled
    /// rotation is not due.
    pub async fn rotate_key(
        &self,
        now: i64,
        rotation: KeyRotation,
        audit: Option<NewAudit>,
    ) -> Result<Option<signing_key::Model>, StoreError> {
        let txn = self.begin_write().await?;
        lock::take(&txn, lock::KEYS).await?;
        if let Some(by) = rotation.only_if_newest_created_by {
            let newest = signing_key::Entity::find()
                .order_by_desc(signing_key::Column::CreateTime)
                .limit(1)
                .one(&txn)
                .await?;
            if newest.is_some_and(|k| k.create_time > by) {
                return Ok(None);
            }
        }
        let retire = rotation.activate_time;
        signing_key::Entity::update_many()
            .col_expr(signing_key::Column::RetireTime, Expr::value(retire))
            .col_expr(
                signing_key::Column::RemoveTime,
                Expr::value(retire.saturating_add(rotation.publish_after_retire)),
            )
            .filter(
                Condition::any()
                    .add(signing_key::Column::RetireTime.is_null())
                    .add(signing_key::Column::RetireTime.gt(retire)),
            )
            .exec(&txn)
            .await?;
        let key = new_key(now, rotation.pair, rotation.activate_time, &rotation.issuer)
            .insert(&txn)
            .await?;
        if let Some(event) = audit {
            audit::insert(&txn, now, event).await?;
        }
        txn.commit().await?;
        Ok(Some(key))
    }

    /// Deletes retired keys whose publication ended before `now`; returns
    /// how many.
    pub async fn remove_unpublished_keys(&self, now: i64) -> Result<u64, StoreError> {
        Ok(signing_key::Entity::delete_many()
            .filter(signing_key::Column::RemoveTime.lte(now))
            .exec(&self.db)
            .await?
            .rows_affected)
    }
}

fn new_key(
    now: i64,
    pair: NewKeyPair,
    activate_time: i64,
    issuer: &str,
) -> signing_key::ActiveModel {
    signing_key::ActiveModel {
        kid: Set(pair.kid),
        public_key: Set(pair.public_key),
        sealed_private_key: Set(pair.sealed_private_key),
        create_time: Set(now),
        activate_time: Set(activate_time),
        retire_time: Set(None),
        remove_time: Set(None),
        issuer: Set(Some(issuer.into())),
    }
}
