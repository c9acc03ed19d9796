//! Prometheus metrics: a registry each service fills with its own metrics,
//! a tower layer counting every RPC by status and timing it, and an HTTP
//! endpoint (`GET /metrics`) on a port of its own.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};

pub use prometheus_client;

/// Labels of a finished RPC.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub rpc: String,
    pub code: String,
}

/// Label of an RPC.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabel {
    pub rpc: String,
}

type LatencyFamily = Family<RpcLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs to ~1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// Per-RPC request counts and latencies.
#[derive(Debug, Clone)]
pub struct GrpcMetrics {
    requests: Family<RpcLabels, Counter>,
    latency: LatencyFamily,
    /// Each RPC's series, resolved on its first call: a request then costs
    /// a map look-up by its path and two atomic updates, no label strings.
    resolved: Arc<std::sync::RwLock<HashMap<String, Arc<RpcSeries>>>>,
}

/// One RPC's latency histogram and its counters by status code, each
/// created on its code's first use (so only codes seen are exported).
#[derive(Debug)]
struct RpcSeries {
    rpc: String,
    latency: Histogram,
    requests: Family<RpcLabels, Counter>,
    by_code: Vec<std::sync::OnceLock<Counter>>,
}

impl RpcSeries {
    fn count(&self, code: usize) {
        self.by_code[code]
            .get_or_init(|| {
                let code = i32::try_from(code).unwrap_or(2);
                self.requests
                    .get_or_create(&RpcLabels {
                        rpc: self.rpc.clone(),
                        code: format!("{:?}", tonic::Code::from_i32(code)),
                    })
                    .clone()
            })
            .inc();
    }
}

/// The gRPC status codes, 0 (OK) to 16 (UNAUTHENTICATED).
const CODES: i32 = 17;

/// The most RPC paths given series of their own; requests to further paths
/// (a scanner's made-up ones) share the series of `RPC_OTHER`.
const MAX_RPCS: usize = 256;
const RPC_OTHER: &str = "other";

impl GrpcMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RpcLabels, Counter>::default();
        let latency: LatencyFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "grpc_requests",
            "gRPC requests by RPC and status code",
            requests.clone(),
        );
        registry.register(
            "grpc_request_duration_seconds",
            "gRPC request latency by RPC",
            latency.clone(),
        );
        Self {
            requests,
            latency,
            resolved: Arc::default(),
        }
    }

    /// The series of `rpc`, resolving them on its first call.
    fn series(&self, rpc: &str) -> Arc<RpcSeries> {
        if let Some(found) = self
            .resolved
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(rpc)
        {
            return found.clone();
        }
        let mut resolved = self.resolved.write().unwrap_or_else(|e| e.into_inner());
        let rpc = if resolved.len() >= MAX_RPCS {
            RPC_OTHER
        } else {
            rpc
        };
        resolved
            .entry(rpc.to_owned())
            .or_insert_with(|| {
                Arc::new(RpcSeries {
                    rpc: rpc.to_owned(),
                    latency: self
                        .latency
                        .get_or_create(&RpcLabel {
                            rpc: rpc.to_owned(),
                        })
                        .clone(),
                    requests: self.requests.clone(),
                    by_code: (0..CODES).map(|_| std::sync::OnceLock::new()).collect(),
                })
            })
            .clone()
    }

    /// The layer that records every request through a server.
    pub fn layer(&self) -> MetricsLayer {
        MetricsLayer(self.clone())
    }
}

/// Records each request's RPC, status and latency.
#[derive(Debug, Clone)]
pub struct MetricsLayer(GrpcMetrics);

impl<S> Layer<S> for MetricsLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metered {
            inner,
            metrics: self.0.clone(),
        }
    }
}

/// The service the layer wraps.
#[derive(Debug, Clone)]
pub struct Metered<S> {
    inner: S,
    metrics: GrpcMetrics,
}

/// The status of a unary response: tonic sends an error as a trailers-only
/// response (`grpc-status` in the headers); success puts it in trailers.
fn code_of(response: &http::Response<Body>) -> usize {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0);
    usize::try_from(code.clamp(0, CODES - 1)).unwrap_or(0)
}

impl<S, B> Service<http::Request<B>> for Metered<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let series = self.metrics.series(request.uri().path());
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            let code = match &result {
                Ok(response) => code_of(response),
                Err(_) => tonic::Code::Unknown as usize,
            };
            series.count(code);
            series.latency.observe(started.elapsed().as_secs_f64());
            result
        })
    }
}

/// Serves `registry` as Prometheus text on `GET /metrics` at `addr` until
/// `shutdown`; returns the bound address at once.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<SocketAddr, crate::ServeError> {
    let failed = |e: std::io::Error| crate::ServeError::MetricsListen {
        addr,
        detail: e.to_string(),
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(failed)?;
    let bound = listener.local_addr().map_err(failed)?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                let mut text = String::new();
                let content_type =
                    match prometheus_client::encoding::text::encode(&mut text, &registry) {
                        Ok(()) => "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        Err(_) => {
                            text = "metrics could not be encoded\n".into();
                            "text/plain; charset=utf-8"
                        }
                    };
                ([(http::header::CONTENT_TYPE, content_type)], text)
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(bound)
}

/// Gauges of a service's database connection pool.
#[derive(Debug, Clone, Default)]
pub struct PoolMetrics {
    open: prometheus_client::metrics::gauge::Gauge,
    idle: prometheus_client::metrics::gauge::Gauge,
}

impl PoolMetrics {
    /// Registers the gauges in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "store_connections_open",
            "Open connections in the store pool",
            metrics.open.clone(),
        );
        registry.register(
            "store_connections_idle",
            "Idle connections in the store pool",
            metrics.idle.clone(),
        );
        metrics
    }

    /// Records the pool's state.
    pub fn set(&self, (open, idle): (u32, usize)) {
        self.open.set(i64::from(open));
        self.idle.set(i64::try_from(idle).unwrap_or(i64::MAX));
    }
}
