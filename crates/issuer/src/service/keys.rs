//! `KeyService`: the public signing keys, as a list and as JWKS.

use crate::convert;
use crate::error::IssuerError;
use crate::state::Shared;
use std::sync::Arc;
use tessera_core::keys;
use tessera_proto::v1::{self, key_service_server::KeyService};
use tonic::{Request, Response, Status};

pub(crate) struct Keys(pub Arc<Shared>);

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
        _request: Request<v1::RotateKeyRequest>,
    ) -> Result<Response<v1::RotateKeyResponse>, Status> {
        Err(IssuerError::Unimplemented("RotateKey").into())
    }
}
