//! The verifier's own metrics, beside the per-RPC ones every service has.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use tessera_proto::v1::VerifyReason;
use tessera_serve::metrics::{GrpcMetrics, PoolMetrics};

/// Label of a Verify answer.
/// Which gateway front asked: the label of `gateway_answers`. Kept here,
/// with the other labels, so the gateway imports the metrics and never the
/// other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    ExtAuthz,
    ForwardAuth,
}

impl Front {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Self::ExtAuthz => "ext_authz",
            Self::ForwardAuth => "forward_auth",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// Label of a gateway answer: which front, and why.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GatewayLabel {
    pub front: &'static str,
    pub reason: &'static str,
}

/// Everything the verifier counts.
#[derive(Debug, Clone)]
pub struct VerifierMetrics {
    pub grpc: GrpcMetrics,
    /// The store's connection pool.
    pub pool: PoolMetrics,
    /// Verify answers by reason.
    pub answers: Family<ReasonLabel, Counter>,
    /// The counter of each reason, by its number, resolved once so the hot
    /// path is one atomic add.
    by_reason: Vec<Counter>,
    /// ext_authz and forward-auth answers by front and reason.
    pub gateway_answers: Family<GatewayLabel, Counter>,
    /// Entries in the revocation set.
    pub revocation_entries: Gauge,
    /// The last revocation sequence number applied.
    pub last_seq: Gauge,
    /// Seconds since the last successful sync (the view's staleness).
    pub staleness_seconds: Gauge<f64, AtomicU64>,
    /// 1 while the view is older than the staleness limit.
    pub stale: Gauge,
    /// 1 while the revocation feed feeds the view, 0 while the store is polled.
    pub feed_following: Gauge,
    /// Times a gap in the feed made the view start over from its last event.
    pub feed_resyncs: Counter,
    /// Full loads of the view taken from the feed rather than the store.
    pub feed_loads: Counter,
    /// Attempts to follow an upstream's feed that failed.
    pub feed_failures: Counter,
    /// 1 once the feed turned out to serve another log than the store's:
    /// every token is refused until the verifier is restarted.
    pub wrong_log: Gauge,
}

impl VerifierMetrics {
    /// Registers the metrics, and the signature cache's counters, in `registry`.
    pub fn register(registry: &mut Registry, cache_hits: Counter, cache_misses: Counter) -> Self {
        let mut metrics = Self {
            grpc: GrpcMetrics::register(registry),
            pool: PoolMetrics::register(registry),
            answers: Family::default(),
            by_reason: Vec::new(),
            gateway_answers: Family::default(),
            revocation_entries: Gauge::default(),
            last_seq: Gauge::default(),
            staleness_seconds: Gauge::default(),
            stale: Gauge::default(),
            feed_following: Gauge::default(),
            feed_resyncs: Counter::default(),
            feed_loads: Counter::default(),
            feed_failures: Counter::default(),
            wrong_log: Gauge::default(),
        };
        registry.register(
            "verify_answers",
            "Verify answers by reason",
            metrics.answers.clone(),
        );
        metrics.by_reason = (0..=VerifyReason::UntrustedIssuer as i32)
            .map(|n| {
                let name = VerifyReason::try_from(n)
                    .unwrap_or(VerifyReason::Unspecified)
                    .as_str_name()
                    .trim_start_matches("VERIFY_REASON_")
                    .to_owned();
                metrics
                    .answers
                    .get_or_create(&ReasonLabel { reason: name })
                    .clone()
            })
            .collect();
        registry.register(
            "gateway_answers",
            "ext_authz Check and forward-auth answers by front and reason",
            metrics.gateway_answers.clone(),
        );
        registry.register(
            "revocation_entries",
            "Entries in the in-memory revocation set",
            metrics.revocation_entries.clone(),
        );
        registry.register(
            "revocation_last_seq",
            "Last revocation event applied",
            metrics.last_seq.clone(),
        );
        registry.register(
            "revocation_view_age_seconds",
            "Seconds since the last successful sync of the revocation view",
            metrics.staleness_seconds.clone(),
        );
        registry.register(
            "revocation_view_stale",
            "1 while the view is past the staleness limit and every token is refused",
            metrics.stale.clone(),
        );
        registry.register(
            "revocation_feed_following",
            "1 while the issuer's revocation feed feeds the view, 0 while the store is polled",
            metrics.feed_following.clone(),
        );
        registry.register(
            "revocation_feed_resyncs",
            "Times a gap in the revocation feed made the view start over from its last event",
            metrics.feed_resyncs.clone(),
        );
        registry.register(
            "revocation_feed_loads",
            "Full loads of the revocation view taken from the feed rather than the store",
            metrics.feed_loads.clone(),
        );
        registry.register(
            "revocation_feed_failures",
            "Attempts to follow an upstream's revocation feed that failed (unreachable, refused, bad certificate)",
            metrics.feed_failures.clone(),
        );
        registry.register(
            "revocation_feed_wrong_log",
            "1 once the revocation feed serves another log than the store's: every token is refused",
            metrics.wrong_log.clone(),
        );
        registry.register(
            "signature_cache_hits",
            "Tokens whose signature check was skipped",
            cache_hits,
        );
        registry.register(
            "signature_cache_misses",
            "Tokens whose signature was checked",
            cache_misses,
        );
        metrics
    }
}

impl VerifierMetrics {
    /// Counts one gateway answer.
    pub fn gateway_answered(&self, front: Front, reason: &'static str) {
        self.gateway_answers
            .get_or_create(&GatewayLabel {
                front: front.label(),
                reason,
            })
            .inc();
    }

    /// Counts one Verify answer.
    pub fn answered(&self, reason: i32) {
        let index = usize::try_from(reason).unwrap_or(0);
        if let Some(counter) = self.by_reason.get(index).or_else(|| self.by_reason.first()) {
            counter.inc();
        }
    }
}

/// Registers the last-used tracking's own counters.
pub fn register_usage(registry: &mut Registry, usage: &crate::usage::UsageMetrics) {
    registry.register(
        "usage_dropped",
        "Token uses not recorded: the tracking's memory bound was reached",
        usage.dropped.clone(),
    );
    registry.register(
        "usage_flush_failures",
        "Flushes of token uses that could not write everything (retried at the next flush)",
        usage.failures.clone(),
    );
    registry.register(
        "usage_merged",
        "Tokens whose uses were merged into the store",
        usage.merged.clone(),
    );
    registry.register(
        "usage_pending_tokens",
        "Tokens whose uses wait for the next flush after a failed one",
        usage.pending.clone(),
    );
}
