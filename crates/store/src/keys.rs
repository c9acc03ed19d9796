//! Signing keys: publishing, choosing the one that signs.

use crate::entity::signing_key;
use crate::{Store, StoreError};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, Set,
};
use tessera_core::keys::NewKeyPair;

impl Store {
    /// Stores a new key pair that starts signing at `activate_time`.
    pub async fn insert_key(
        &self,
        now: i64,
        pair: NewKeyPair,
        activate_time: i64,
    ) -> Result<signing_key::Model, StoreError> {
        Ok(signing_key::ActiveModel {
            kid: Set(pair.kid),
            public_key: Set(pair.public_key),
            sealed_private_key: Set(pair.sealed_private_key),
            create_time: Set(now),
            activate_time: Set(activate_time),
            retire_time: Set(None),
            remove_time: Set(None),
        }
        .insert(&self.db)
        .await?)
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
    /// active and not retired.
    pub async fn signing_key(&self, now: i64) -> Result<Option<signing_key::Model>, StoreError> {
        Ok(signing_key::Entity::find()
            .filter(signing_key::Column::ActivateTime.lte(now))
            .filter(signing_key::Column::RetireTime.is_null())
            .order_by_desc(signing_key::Column::ActivateTime)
            .one(&self.db)
            .await?)
    }
}
