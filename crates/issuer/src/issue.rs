//! Minting a token: sign the claims, then record the metadata. The string
//! is returned to the caller once and never stored.

use crate::error::IssuerError;
use crate::state::Shared;
use tessera_core::keys::Signer;
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

/// One secret of a token: the claims to sign.
#[derive(Debug)]
pub(crate) struct Secret<'a> {
    pub owner: &'a user::Model,
    pub token_id: &'a str,
    pub version: u32,
    pub token_type: TokenType,
    pub grants: &'a [Grant],
    pub now: i64,
    pub expire_time: i64,
}

/// The generation a secret issued for `owner` now carries: user-wide
/// changes are ordered against issues by it, not by time.
pub(crate) fn generation(owner: &user::Model) -> u64 {
    tessera_store::users::generation_of(owner)
}

/// Signs a secret for a token with `signer`.
pub(crate) fn sign(
    shared: &Shared,
    signer: &Signer,
    secret: Secret<'_>,
) -> Result<String, IssuerError> {
    let claims = Claims {
        iss: shared.config.issuer_name.clone(),
        sub: secret.owner.id.clone(),
        jti: secret.token_id.to_owned(),
        iat: secret.now,
        nbf: secret.now,
        exp: secret.expire_time,
        typ: secret.token_type,
        grants: secret.grants.to_vec(),
        ver: secret.version,
        generation: generation(secret.owner),
    };
    let token = jwt::sign(&claims, signer)?;
    // Grants are bounded on the way in; this catches anything older (a
    // user's grants stored before the bounds) before a token is handed out
    // that no verifier would accept.
    if token.len() > jwt::MAX_TOKEN_BYTES {
        return Err(IssuerError::invalid(
            "permissions",
            format!(
                "the token would be {} bytes, over the {} its verifiers accept: give it fewer \
                 grants",
                token.len(),
                jwt::MAX_TOKEN_BYTES
            ),
        ));
    }
    Ok(token)
}

/// Signs and records a token; returns its row and its secret string.
pub(crate) async fn mint(
    shared: &Shared,
    store: &Store,
    mint: Mint<'_>,
    mut audit: NewAudit,
) -> Result<(token::Model, String), IssuerError> {
    let signer = shared.signer(store, mint.now).await?;
    let id = uuid::Uuid::now_v7().to_string();
    // The new token's own name, now that it has one.
    audit.target = format!("tokens/{id}");
    let secret = sign(
        shared,
        &signer,
        Secret {
            owner: mint.owner,
            token_id: &id,
            version: 0,
            token_type: mint.token_type,
            grants: &mint.grants,
            now: mint.now,
            expire_time: mint.expire_time,
        },
    )?;
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
                generation: generation(mint.owner),
            },
            audit,
        )
        .await
        .map_err(|e| match e {
            StoreError::AlreadyExists => name_taken(&name),
            other => other.into(),
        })?;
    Ok((row, secret))
}

/// The refusal of a token name its owner already uses.
pub(crate) fn name_taken(name: &str) -> IssuerError {
    IssuerError::AlreadyExists(format!(
        "a token named {name:?} already exists for this user; choose another name"
    ))
}
