//! What every RPC handler shares: configuration, the clock, the permission
//! catalog, the store once it is ready, and the key caches.

use crate::IssuerConfig;
use crate::error::IssuerError;
use crate::hashing::HashBudget;
use crate::throttle::{Policy, Throttle};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use tessera_core::keys::{Kek, Signer, VerifyingKey};
use tessera_core::{Catalog, Clock, password};
use tessera_serve::metrics::prometheus_client::metrics::counter::Counter;
use tessera_serve::metrics::prometheus_client::metrics::gauge::Gauge;
use tessera_serve::metrics::prometheus_client::registry::Registry;
use tessera_store::Store;

/// The issuer's shared state.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: IssuerConfig,
    pub clock: Arc<dyn Clock>,
    pub kek: Kek,
    /// The permission catalog grants are checked against.
    pub catalog: Catalog,
    store: OnceLock<Store>,
    /// Why start-up last failed, when an operator must fix it by hand.
    start_failure: Mutex<Option<String>>,
    signers: Mutex<HashMap<String, Signer>>,
    verifying: RwLock<HashMap<String, VerifyingKey>>,
    /// A hash checked when the user does not exist, so both cases take as long.
    pub decoy_hash: String,
    /// Bounds the memory concurrent password hashes hold.
    pub hashing: HashBudget,
    /// Failed sign-ins, for growing delays.
    pub throttle: Throttle,
    /// Sign-in counters, registered with the metrics.
    pub logins: LoginMetrics,
    /// Token hygiene totals, set by each upkeep pass.
    pub hygiene: HygieneMetrics,
}

/// Totals an operator alerts on, with no per-token labels: API tokens about
/// to expire (jobs about to lose their credentials) and API tokens nobody
/// uses (candidates for clean-up). Counted at each upkeep pass.
#[derive(Debug, Clone, Default)]
pub(crate) struct HygieneMetrics {
    /// Enabled, unexpired API tokens expiring within
    /// [`Self::EXPIRING_WITHIN`], but for those issued in the last day (see
    /// [`tessera_store::tokens::EXPIRING_GRACE_SECS`]).
    pub expiring: Gauge,
    /// Unexpired API tokens not used for [`Self::UNUSED_FOR`].
    pub unused: Gauge,
}

impl HygieneMetrics {
    pub const EXPIRING_WITHIN: i64 = 7 * 86_400;
    pub const UNUSED_FOR: i64 = 30 * 86_400;

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "api_tokens_expiring_within_7d",
            "Enabled API tokens that expire within 7 days, but for those made or rotated in the last day (counted at each upkeep pass)",
            self.expiring.clone(),
        );
        registry.register(
            "api_tokens_unused_30d",
            "Unexpired API tokens no verifier has reported a use of for 30 days (counted at each upkeep pass)",
            self.unused.clone(),
        );
    }
}

/// Counters of password sign-ins (Basic credentials, wherever presented).
#[derive(Debug, Clone, Default)]
pub(crate) struct LoginMetrics {
    /// Wrong user name or password.
    pub failed: Counter,
    /// Refused before any check: the source or name must still wait.
    pub throttled: Counter,
    /// Refused because too many password checks were running.
    pub busy: Counter,
}

impl LoginMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "login_failures",
            "Password sign-ins refused for a wrong user name or password",
            self.failed.clone(),
        );
        registry.register(
            "login_throttled",
            "Password sign-ins refused unchecked because earlier failures impose a wait",
            self.throttled.clone(),
        );
        registry.register(
            "login_busy",
            "Password sign-ins refused because the password hashing budget was full",
            self.busy.clone(),
        );
    }
}

impl Shared {
    pub fn new(config: IssuerConfig, clock: Arc<dyn Clock>, kek: Kek) -> Result<Self, IssuerError> {
        let catalog = crate::catalog::load(config.catalog.as_deref())?;
        Ok(Self {
            clock,
            kek,
            catalog,
            store: OnceLock::new(),
            start_failure: Mutex::new(None),
            signers: Mutex::new(HashMap::new()),
            verifying: RwLock::new(HashMap::new()),
            decoy_hash: password::decoy_hash()?,
            hashing: HashBudget::new(config.password_hash_memory_mib),
            throttle: Throttle::new(Policy::new(
                config.login_free_failures,
                config.login_max_delay,
            )),
            logins: LoginMetrics::default(),
            hygiene: HygieneMetrics::default(),
            config,
        })
    }

    /// The store, once start-up has connected and migrated it.
    pub fn store(&self) -> Result<&Store, IssuerError> {
        self.store.get().ok_or_else(|| {
            let failure = self.start_failure.lock().ok().and_then(|f| f.clone());
            IssuerError::Unavailable(match failure {
                Some(why) => format!("the issuer cannot start: {why} (it keeps retrying)"),
                None => "the issuer is starting: its store is not ready yet".into(),
            })
        })
    }

    /// Records why start-up last failed, for callers to read in UNAVAILABLE
    /// answers. Only configuration mistakes (a wrong KEK, a missing file) are
    /// kept: they say nothing about the database a stranger could use, and
    /// they are what an operator must fix by hand.
    pub fn start_failed(&self, error: &IssuerError) {
        if let (IssuerError::FailedPrecondition(why), Ok(mut slot)) =
            (error, self.start_failure.lock())
        {
            *slot = Some(why.clone());
        }
    }

    pub fn set_store(&self, store: Store) {
        // A second start-up attempt cannot race the first: there is one.
        let _ = self.store.set(store);
    }

    /// Now, in Unix seconds.
    pub fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    /// The key that signs at `now`, unsealed (and cached: unsealing is not free).
    pub async fn signer(&self, store: &Store, now: i64) -> Result<Signer, IssuerError> {
        let row = store.signing_key(now).await?.ok_or_else(|| {
            IssuerError::Unavailable(
                "no signing key is active; the issuer is still starting".into(),
            )
        })?;
        let mut signers = self.signers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(signer) = signers.get(&row.kid) {
            return Ok(signer.clone());
        }
        let signer = Signer::unseal(&self.kek, &row.kid, &row.sealed_private_key)?;
        signers.insert(row.kid.clone(), signer.clone());
        Ok(signer)
    }

    /// The public key named `kid`, reloading the published keys once when it
    /// is not known yet (a key rotated in by another replica).
    pub async fn verifying_key(
        &self,
        store: &Store,
        kid: &str,
    ) -> Result<Option<VerifyingKey>, IssuerError> {
        if let Some(key) = self
            .verifying
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kid)
        {
            return Ok(Some(key.clone()));
        }
        let rows = store.published_keys(self.now()).await?;
        let mut fresh = HashMap::with_capacity(rows.len());
        for row in rows {
            let key = VerifyingKey::from_public(&row.kid, &row.public_key)?;
            fresh.insert(row.kid, key);
        }
        let found = fresh.get(kid).cloned();
        *self.verifying.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(found)
    }
}
