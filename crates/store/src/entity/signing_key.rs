//! `signing_keys`: Ed25519 key pairs, private halves sealed with the KEK.

use sea_orm::entity::prelude::*;

/// A signing key row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    /// base64url of the raw 32-byte public key.
    pub public_key: String,
    /// nonce ‖ XChaCha20-Poly1305 ciphertext of the private seed.
    pub sealed_private_key: Vec<u8>,
    pub create_time: i64,
    /// When it starts signing; published before then.
    pub activate_time: i64,
    /// When it stopped signing, if it has.
    pub retire_time: Option<i64>,
    /// When it stops being published (its last token has expired).
    pub remove_time: Option<i64>,
    /// The issuer name (`iss`) that signs with this key; verifiers trust the
    /// names on their store's keys unless told otherwise.
    pub issuer: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
