//! `KeyService`: the public signing keys, as a list and as JWKS, and key
//! rotation.

use crate::audited;
use crate::auth::{self, Caller};
use crate::convert;
use crate::error::IssuerError;
use crate::state::Shared;
use crate::validate::{self, Violations};
use std::sync::Arc;
use tessera_core::keys;
use tessera_proto::v1::{self, key_service_server::KeyService};
use tessera_store::Store;
use tessera_store::audit::NewAudit;
use tessera_store::entity::signing_key;
use tessera_store::keys::KeyRotation;
use tonic::{Request, Response, Status};

pub(crate) struct Keys(pub Arc<Shared>);

/// Publishes a new key that starts signing `delay` seconds from `now`; the
/// keys signing until then retire at that moment and stay published for the
/// longest token lifetime after. With `only_if_due`, rotates only when the
/// newest key is at least that many seconds old (scheduled rotation). The
/// rotation is audited as done by `actor`.
pub(crate) async fn rotate(
    shared: &Shared,
    store: &Store,
    now: i64,
    delay: i64,
    only_if_due: Option<i64>,
    actor: &str,
) -> Result<Option<signing_key::Model>, IssuerError> {
    let pair = keys::generate(&shared.kek)?;
    let kid = pair.kid.clone();
    let audit = NewAudit::ok(actor, "key.rotate", format!("keys/{kid}")).with_outcome(
        "ok",
        format!(
            "signs from {}",
            tessera_core::duration::instant(now.saturating_add(delay))
        ),
    );
    let rotated = store
        .rotate_key(
            now,
            KeyRotation {
                pair,
                activate_time: now.saturating_add(delay),
                publish_after_retire: validate::secs(shared.config.longest_token_lifetime()),
                only_if_newest_created_by: only_if_due.map(|age| now.saturating_sub(age)),
                issuer: shared.config.issuer_name.clone(),
            },
            Some(audit),
        )
        .await?;
    if rotated.is_some() {
        tracing::info!(%kid, activates_in_secs = delay, "signing key rotated");
    }
    Ok(rotated)
}

impl Keys {
    async fn list(&self) -> Result<v1::ListKeysResponse, IssuerError> {
        let shared = &self.0;
        let store = shared.store()?;
        let now = shared.now();
        let rows = store.published_keys(now).await?;
        let jwks_json =
            keys::jwks_json(rows.iter().map(|r| (r.kid.as_str(), r.public_key.as_str())));
        Ok(v1::ListKeysResponse {
            keys: rows
                .into_iter()
                .map(|r| convert::public_key(r, now))
                .collect(),
            jwks_json,
        })
    }

    async fn rotate(
        &self,
        caller: &Caller,
        body: v1::RotateKeyRequest,
    ) -> Result<v1::RotateKeyResponse, IssuerError> {
        caller.require("keys", "manage", "rotate the signing key")?;
        let shared = &self.0;
        let mut v = Violations::default();
        let delay = if body.immediate {
            0
        } else {
            match &body.activation_delay {
                None => validate::secs(shared.config.key_activation_delay),
                Some(d) if d.seconds < 0 || d.nanos < 0 => {
                    v.add("activation_delay", "must not be negative");
                    0
                }
                Some(d) => d.seconds,
            }
        };
        v.finish()?;
        let store = shared.store()?;
        let now = shared.now();
        let key = rotate(shared, store, now, delay, None, caller.actor())
            .await?
            .ok_or_else(|| IssuerError::Internal("an unconditional rotation did nothing".into()))?;
        Ok(v1::RotateKeyResponse {
            key: Some(convert::public_key(key, now)),
        })
    }
}

#[tonic::async_trait]
impl KeyService for Keys {
    /// Public keys are public: no credentials are needed to list them.
    async fn list_keys(
        &self,
        _request: Request<v1::ListKeysRequest>,
    ) -> Result<Response<v1::ListKeysResponse>, Status> {
        Ok(Response::new(self.list().await?))
    }

    async fn rotate_key(
        &self,
        request: Request<v1::RotateKeyRequest>,
    ) -> Result<Response<v1::RotateKeyResponse>, Status> {
        let shared = &self.0;
        let caller = auth::authenticate(shared, &request).await?;
        let result = Keys::rotate(self, &caller, request.into_inner()).await;
        Ok(Response::new(
            audited::outcome(shared, &caller, "key.rotate", "keys", result).await?,
        ))
    }
}
