//! Logs and traces.
//!
//! Logs go to stderr as text or JSON, filtered by `RUST_LOG`. Traces are
//! exported over OTLP/gRPC only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set
//! (otherwise the OpenTelemetry layer is not installed at all, so it costs
//! nothing); the standard `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`
//! name the service. Each gRPC request gets a span whose parent is the
//! caller's W3C `traceparent`, so Tessera's spans join the caller's trace.

use crate::ServeError;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tonic::codegen::http;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("{other:?} is not a log format: use text or json")),
        }
    }
}

/// Where telemetry goes; read from the environment by the binaries.
#[derive(Debug, Clone, Default)]
pub struct TelemetryConfig {
    /// The service name used when `OTEL_SERVICE_NAME` is not set.
    pub default_service_name: &'static str,
    /// `OTEL_SERVICE_NAME`.
    pub service_name: Option<String>,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: traces are exported only when set.
    pub otlp_endpoint: Option<String>,
    /// `RUST_LOG`.
    pub log_filter: Option<String>,
    pub log_format: LogFormat,
}

impl TelemetryConfig {
    /// Reads the standard variables from `env` (a lookup, so tests need not
    /// touch the process environment).
    pub fn from_env(
        default_service_name: &'static str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let nonempty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        Ok(Self {
            default_service_name,
            service_name: nonempty("OTEL_SERVICE_NAME"),
            otlp_endpoint: nonempty("OTEL_EXPORTER_OTLP_ENDPOINT"),
            log_filter: nonempty("RUST_LOG"),
            log_format: nonempty("TESSERA_LOG_FORMAT")
                .map_or(Ok(LogFormat::Text), |f| f.parse())?,
        })
    }
}

/// Keeps the trace exporter alive; flushes it on drop.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the trace exporter. The flush blocks, and the
    /// exporter needs the runtime to send: so it runs off the async workers.
    pub async fn shutdown(mut self) {
        if let Some(provider) = self.provider.take() {
            match tokio::task::spawn_blocking(move || provider.shutdown()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("warning: flushing traces failed: {e}"),
                Err(e) => eprintln!("warning: flushing traces failed: {e}"),
            }
        }
    }
}

/// The trace pipeline for `config`, if export is switched on. Must be
/// called inside a Tokio runtime (the OTLP exporter is a tonic client).
pub fn tracer_provider(config: &TelemetryConfig) -> Result<Option<SdkTracerProvider>, ServeError> {
    let Some(endpoint) = &config.otlp_endpoint else {
        return Ok(None);
    };
    EXPORTING.store(true, std::sync::atomic::Ordering::Relaxed);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
        .map_err(|e| ServeError::Exporter(e.to_string()))?;
    let name = config
        .service_name
        .clone()
        .unwrap_or_else(|| config.default_service_name.to_owned());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(name)
        .build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    ))
}

/// What is logged when `RUST_LOG` is not set: INFO, without PostgreSQL's
/// NOTICE messages (the migrator's `CREATE TABLE IF NOT EXISTS` draws
/// "relation already exists" notices at every start).
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx::postgres::notice=warn";

/// The subscriber layers for `config` and `provider`, for a caller that
/// installs them itself (tests use a scoped subscriber).
pub fn layers<S>(
    config: &TelemetryConfig,
    provider: Option<&SdkTracerProvider>,
) -> Vec<Box<dyn Layer<S> + Send + Sync>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    let filter = EnvFilter::new(config.log_filter.as_deref().unwrap_or(DEFAULT_LOG_FILTER));
    // Colour only for a person at a terminal: a file or a pipe gets plain
    // text, not escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let mut layers: Vec<Box<dyn Layer<S> + Send + Sync>> = vec![match config.log_format {
        LogFormat::Text => fmt.with_filter(filter).boxed(),
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
    }];
    if let Some(provider) = provider {
        let tracer = provider.tracer("tessera");
        layers.push(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(EnvFilter::new("info"))
                .boxed(),
        );
    }
    layers
}

/// Installs logging (and tracing, if configured) for the whole process.
pub fn init(config: &TelemetryConfig) -> Result<Telemetry, ServeError> {
    let provider = tracer_provider(config)?;
    tracing_subscriber::registry()
        .with(layers(config, provider.as_ref()))
        .try_init()
        .map_err(|e| ServeError::Logging(e.to_string()))?;
    if provider.is_some() {
        tracing::info!("exporting traces over OTLP");
    }
    Ok(Telemetry { provider })
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The span for one gRPC request: named by its RPC path (never carrying a
/// header value), and a child of the caller's trace when it sent one.
pub fn grpc_span<B>(request: &http::Request<B>) -> tracing::Span {
    let span = tracing::info_span!("grpc", rpc = %request.uri().path(), otel.kind = "server");
    if request.headers().contains_key("traceparent") {
        let parent = TraceContextPropagator::new().extract(&Headers(request.headers()));
        if let Err(error) = span.set_parent(parent) {
            tracing::debug!(%error, "the caller's trace context was not applied");
        }
    }
    span
}

/// Whether spans are being exported (a tracer provider was built).
static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether spans are being exported over OTLP in this process.
pub fn exporting() -> bool {
    EXPORTING.load(std::sync::atomic::Ordering::Relaxed)
}

/// A request span for a hot path that logs nothing per request (the
/// verifier): the [`grpc_span`] when spans are exported, otherwise a DEBUG
/// span, which costs nothing unless debug logging is on. An INFO span there
/// would be built, formatted and dropped on every call with no one reading
/// it.
pub fn quiet_grpc_span<B>(request: &http::Request<B>) -> tracing::Span {
    if exporting() {
        grpc_span(request)
    } else {
        tracing::debug_span!("grpc", rpc = %request.uri().path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt as _;

    fn traced_request() -> http::Request<()> {
        http::Request::builder()
            .uri("/tessera.v1.SessionService/Login")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .body(())
            .expect("request")
    }

    #[test]
    fn the_request_span_joins_the_callers_trace_with_production_layers() {
        let provider = SdkTracerProvider::builder().build();
        let config = TelemetryConfig {
            log_filter: Some("trace".into()),
            ..Default::default()
        };
        let subscriber = tracing_subscriber::registry().with(layers(&config, Some(&provider)));
        tracing::subscriber::with_default(subscriber, || {
            let span = grpc_span(&traced_request());
            let trace_id = span.context().span().span_context().trace_id();
            assert_eq!(trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        });
    }
}
