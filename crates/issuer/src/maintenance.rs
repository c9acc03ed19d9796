//! The issuer's background upkeep: the clean-up pass (expired session
//! tokens, revocation events no token needs any more, retired keys past
//! their publication) and, when configured, scheduled key rotation.
//!
//! Every step is safe to run in several replicas at once: clean-up is made
//! of idempotent deletes, and a scheduled rotation happens only if no replica
//! has rotated within the interval (checked under the keys lock).

use crate::IssuerConfig;
use crate::error::IssuerError;
use crate::service::keys;
use crate::state::Shared;
use crate::validate;
use std::sync::Arc;
use std::time::Duration;
use tessera_store::{CleanupReport, Store};

/// One clean-up pass at `now` (Unix seconds): deletes session tokens that
/// expired longer than `session_retention` ago, prunes revocation events
/// whose `prune_after` has passed, and removes retired keys past their
/// publication. Tests call it directly with a clock moved forward; the
/// issuer runs it every `cleanup_interval`.
pub async fn clean_up(
    store: &Store,
    config: &IssuerConfig,
    now: i64,
) -> Result<CleanupReport, IssuerError> {
    Ok(store
        .clean_up(now, validate::secs(config.session_retention))
        .await?)
}

/// Sets the hygiene totals (see [`crate::state::HygieneMetrics`]) at `now`.
async fn count_hygiene(shared: &Shared, store: &Store, now: i64) -> Result<(), IssuerError> {
    use crate::state::HygieneMetrics as H;
    let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let expiring = store
        .count_api_tokens_expiring(now, now.saturating_add(H::EXPIRING_WITHIN))
        .await?;
    let unused = store
        .count_api_tokens_unused(now, now.saturating_sub(H::UNUSED_FOR))
        .await?;
    shared.hygiene.expiring.set(gauge(expiring));
    shared.hygiene.unused.set(gauge(unused));
    Ok(())
}

/// Runs the upkeep every `cleanup_interval` until aborted, starting once
/// the store is ready.
pub(crate) async fn run(shared: Arc<Shared>) {
    let store = loop {
        if let Ok(store) = shared.store() {
            break store.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut ticks = tokio::time::interval(
        shared
            .config
            .cleanup_interval
            .max(Duration::from_millis(10)),
    );
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = shared.now();
        match clean_up(&store, &shared.config, now).await {
            Ok(report) if report != CleanupReport::default() => tracing::info!(
                sessions = report.sessions,
                revocations = report.revocations,
                keys = report.keys,
                "clean-up removed expired records"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "clean-up failed; retrying at the next interval"),
        }
        if let Err(e) = count_hygiene(&shared, &store, now).await {
            tracing::warn!(error = %e, "could not count expiring and unused tokens; retrying at the next interval");
        }
        if let Some(every) = shared.config.key_rotation_interval.filter(|d| !d.is_zero()) {
            let delay = validate::secs(shared.config.key_activation_delay);
            let due = Some(validate::secs(every));
            if let Err(e) = keys::rotate(&shared, &store, now, delay, due, "-").await {
                tracing::warn!(error = %e, "scheduled key rotation failed; retrying at the next interval");
            }
        }
    }
}
