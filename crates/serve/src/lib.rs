//! What Tessera's two gRPC services share to run in production.
//!
//! This crate owns the operational plumbing, so the issuer and the verifier
//! get it the same way: [`telemetry`] (logs, and OpenTelemetry traces joined
//! to the caller's W3C trace context), [`metrics`] (Prometheus, served on a
//! port of its own, and a tower layer counting every RPC), [`shed`] (a
//! global concurrency limit that answers RESOURCE_EXHAUSTED instead of
//! queueing), [`tls`] (rustls, optionally mTLS), [`shutdown`] (SIGTERM
//! and SIGINT) and [`source`] (a caller's address behind trusted proxies).

pub mod metrics;
pub mod reflection;
pub mod shed;
pub mod shutdown;
pub mod source;
pub mod telemetry;
pub mod tls;

/// What can go wrong setting the plumbing up.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The OTLP exporter could not be built.
    #[error("OpenTelemetry exporter: {0}")]
    Exporter(String),
    /// Logging was already set up in this process.
    #[error("logging is already initialised: {0}")]
    Logging(String),
    /// The TLS material is missing or unreadable.
    #[error("TLS: {0}")]
    Tls(String),
    /// The metrics address could not be bound.
    #[error("metrics listener on {addr}: {detail}")]
    MetricsListen {
        addr: std::net::SocketAddr,
        detail: String,
    },
}
