//! Minting a token: sign the claims, then record the metadata. The string
//! is returned to the caller once and never stored.

use crate::error::IssuerError;
use crate::state::Shared;
use tessera_core::{Claims, Grant, TokenType, jwt};
use tessera_store::audit::NewAudit;
use tessera_store::entity::{token, user};
use tessera_store::tokens::NewToken;
use tessera_store::{Store, StoreError};

/// What to mint.
#[derive(Debug)]
pub(crate) struct Mint<'a> {
    pub owner: &'a user::Model,
    pub name: String,
    pub description: String,
    pub token_type: TokenType,
    pub session_kind: Option<&'static str>,
    pub enabled: bool,
    pub all_permissions: bool,
    pub grants: Vec<Grant>,
    pub now: i64,
    pub expire_time: i64,
}

/// Signs and records a token; returns its row and its secret string.
pub(crate) async fn mint(
    shared: &Shared,
    store: &Store,
    mint: Mint<'_>,
    audit: NewAudit,
) -> Result<(token::Model, String), IssuerError> {
    let signer = shared.signer(store, mint.now).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let claims = Claims {
        iss: shared.config.issuer_name.clone(),
        sub: mint.owner.id.clone(),
        jti: id.clone(),
        iat: mint.now,
        nbf: mint.now,
        exp: mint.expire_time,
        typ: mint.token_type,
        grants: mint.grants.clone(),
        ver: 0,
    };
    let secret = jwt::sign(&claims, &signer)?;
    let name = mint.name.clone();
    let row = store
        .create_token(
            NewToken {
                id,
                owner_id: mint.owner.id.clone(),
                name: mint.name,
                description: mint.description,
                token_type: mint.token_type,
                session_kind: mint.session_kind.map(String::from),
                enabled: mint.enabled,
                all_permissions: mint.all_permissions,
                grants: mint.grants,
                key_id: signer.kid,
                create_time: mint.now,
                expire_time: mint.expire_time,
            },
            audit,
        )
        .await
        .map_err(|e| match e {
            StoreError::AlreadyExists => IssuerError::AlreadyExists(format!(
                "a token named {name:?} already exists for this user; choose another name"
            )),
            other => other.into(),
        })?;
    Ok((row, secret))
}
