//! `VerifierService`: answers "is this token good, and may it do this?".

use crate::batch::Batcher;
use crate::cache::SignatureCache;
use crate::config::VerifierConfig;
use crate::error::VerifierError;
use crate::metrics::VerifierMetrics;
use crate::usage::Usage;
use crate::verify::{self, Policy, Signature};
use crate::view::View;
use prometheus_client::registry::Registry;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tessera_core::Clock;
use tessera_proto::v1::{self, VerifyReason, verifier_service_server::VerifierService};
use tessera_store::Store;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tonic::{Request, Response, Status};

/// What the handlers and the sync task share.
#[derive(Debug)]
pub struct Shared {
    pub config: VerifierConfig,
    pub clock: Arc<dyn Clock>,
    pub view: View,
    pub cache: SignatureCache,
    /// Cold signature checks waiting to be checked together.
    pub batcher: Batcher,
    /// The uses of tokens answered OK, waiting to be merged into the store.
    pub usage: Usage,
    pub store: OnceLock<Store>,
    pub metrics: VerifierMetrics,
    /// What `GET /metrics` serves.
    pub registry: Arc<Registry>,
    last_key_refresh: Mutex<Option<Instant>>,
}

impl Shared {
    /// Fresh state for `config`.
    pub fn new(config: VerifierConfig, clock: Arc<dyn Clock>) -> Self {
        let cache = SignatureCache::new(config.signature_cache_size);
        let usage = Usage::new(
            !config.usage_flush_interval.is_zero(),
            config.usage_max_tokens,
        );
        let view = View::trusting(config.trusted_issuers.clone());
        let mut registry = Registry::with_prefix("tessera_verifier");
        let metrics =
            VerifierMetrics::register(&mut registry, cache.hits.clone(), cache.misses.clone());
        crate::metrics::register_usage(&mut registry, &usage.metrics);
        Self {
            cache,
            batcher: Batcher::default(),
            usage,
            config,
            clock,
            view,
            store: OnceLock::new(),
            metrics,
            registry: Arc::new(registry),
            last_key_refresh: Mutex::new(None),
        }
    }

    /// The settings each verification uses.
    pub fn policy(&self) -> Policy {
        Policy {
            leeway_secs: secs(self.config.clock_leeway),
            max_staleness_ms: i64::try_from(self.config.max_staleness.as_millis())
                .unwrap_or(i64::MAX),
        }
    }

    /// Reloads keys because a token named an unknown one, at most once per
    /// `key_refresh_min_interval`, so a flood of made-up key ids cannot
    /// hammer the store.
    async fn refresh_keys_for_unknown_kid(&self) {
        let Some(store) = self.store.get() else {
            return;
        };
        let mut last = self.last_key_refresh.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.config.key_refresh_min_interval) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(e) = self
            .view
            .refresh_keys(store, self.clock.now().timestamp())
            .await
        {
            tracing::warn!(error = %e, "could not reload keys for an unknown kid");
        }
    }

    /// One verification, counted by its answer.
    pub async fn verify(
        &self,
        request: &v1::VerifyRequest,
    ) -> Result<v1::VerifyResponse, VerifierError> {
        let answer = self.judge(request).await?;
        self.metrics.answered(answer.reason);
        Ok(answer)
    }

    /// Records an OK answer's token as used, for its last-used time;
    /// anything but OK is not a use. `caller` is asked only for a use that
    /// is recorded, so an answer with tracking off costs nothing more.
    pub fn record_use(&self, answer: &v1::VerifyResponse, caller: impl FnOnce() -> Option<IpAddr>) {
        if answer.valid && self.usage.is_on() {
            self.usage
                .record(&answer.token_id, self.clock.now().timestamp(), caller());
        }
    }

    /// The caller behind a gRPC request: its peer, or what a trusted
    /// proxy's `x-forwarded-for` names.
    pub fn caller_of<T>(&self, request: &Request<T>) -> Option<IpAddr> {
        tessera_serve::source::of_request(request, &self.config.trusted_proxies)
    }

    /// The decision behind [`Shared::verify`], uncounted: the gateway
    /// fronts count their own answers.
    pub async fn judge(
        &self,
        request: &v1::VerifyRequest,
    ) -> Result<v1::VerifyResponse, VerifierError> {
        if request.resource.trim().is_empty() != request.action.trim().is_empty() {
            return Err(VerifierError::InvalidArgument(
                "give both `resource` and `action`, or neither".into(),
            ));
        }
        let now_ms = self.clock.now().timestamp_millis();
        let now = now_ms.div_euclid(1000);
        let policy = self.policy();
        if let Some(stale) = verify::staleness(&self.view, now_ms, policy) {
            return Ok(stale);
        }
        let token = match verify::token_of(request) {
            Ok(token) => token,
            Err((reason, message)) => {
                return Ok(v1::VerifyResponse {
                    valid: false,
                    reason: reason as i32,
                    message,
                    ..Default::default()
                });
            }
        };
        let check = || verify::check_signature(&self.view, &self.cache, &self.batcher, token);
        let mut signature = check().await;
        if matches!(signature, Signature::UnknownKey) {
            self.refresh_keys_for_unknown_kid().await;
            signature = check().await;
        }
        Ok(match signature {
            Signature::Good(claims) => verify::decide(&self.view, &claims, request, now, policy),
            Signature::Refused(answer) => answer,
            Signature::UnknownKey => v1::VerifyResponse {
                valid: false,
                reason: VerifyReason::UnknownKey as i32,
                message: "token is signed by an unknown key".into(),
                ..Default::default()
            },
        })
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The gRPC face of [`Shared::verify`].
pub(crate) struct Verifier(pub Arc<Shared>);

#[tonic::async_trait]
impl VerifierService for Verifier {
    async fn verify(
        &self,
        request: Request<v1::VerifyRequest>,
    ) -> Result<Response<v1::VerifyResponse>, Status> {
        let body = request.get_ref();
        // A REST gateway forwards the HTTP `Authorization` header as
        // metadata: with no token in the body, that is the credential.
        let answer = if body.token.is_empty()
            && body.authorization.is_empty()
            && let Some(header) = request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
        {
            let from_header = v1::VerifyRequest {
                authorization: header.to_owned(),
                ..body.clone()
            };
            self.0.verify(&from_header).await?
        } else {
            self.0.verify(body).await?
        };
        self.0.record_use(&answer, || self.0.caller_of(&request));
        Ok(Response::new(answer))
    }
}
