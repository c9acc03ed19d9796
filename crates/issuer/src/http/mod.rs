//! The issuer's HTTP face: FME's own token endpoints, for the scripts and
//! clients written against FME Server (FME Flow), served on
//! `--http-listen`.
//!
//! Every endpoint is a translation: it reads FME's request, calls the
//! issuer's own gRPC services in-process ([`grpc`]) with the caller's
//! credentials, and writes FME's answer. The services' rules, input screen,
//! sign-in throttle and audit apply unchanged; nothing here decides who may
//! do what. Modules: [`token_service`] (`/fmetoken/generate`), [`rest_v3`]
//! (`/fmerest/v3/tokens`), [`rest_v4`] (`/fmeapiv4/tokens`), [`rest`] (what
//! the two share), [`info`]
//! (version and health), [`shape`] (FME's token fields and the permission
//! mapping), [`input`] (bodies, query strings and credentials, with their
//! limits), [`answer`] (statuses and error bodies).
//!
//! What is logged of a request is its method, path and status: never the
//! query string (FME clients put passwords and tokens there), a header or
//! a body.

mod answer;
mod grpc;
mod info;
mod input;
mod rest;
mod rest_v3;
mod rest_v4;
mod shape;
mod token_service;

use crate::state::Shared;
use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tokio::net::TcpListener;

/// What every handler shares.
pub(crate) struct Face {
    pub shared: Arc<Shared>,
    /// The issuer's gRPC services, called in-process.
    pub grpc: grpc::InProcess,
    /// Whether a token may come in the `fmetoken` query parameter.
    pub fmetoken_query: bool,
    /// Set once the issuer is shutting down: readiness says no from then.
    stopping: AtomicBool,
}

impl Face {
    pub fn new(shared: Arc<Shared>) -> Result<Arc<Self>, crate::IssuerError> {
        Ok(Arc::new(Self {
            grpc: grpc::InProcess::new(shared.clone())?,
            fmetoken_query: shared.config.fmetoken_query,
            shared,
            stopping: AtomicBool::new(false),
        }))
    }

    /// Marks the issuer as stopping (health checks answer 503 from now on).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

/// Every route of the face.
fn router(face: Arc<Face>) -> Router {
    Router::new()
        .merge(token_service::routes())
        .merge(rest_v3::routes())
        .merge(rest_v4::routes())
        .merge(info::routes())
        .fallback(answer::no_such_endpoint)
        .method_not_allowed_fallback(answer::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(face.clone(), logged))
        .with_state(face)
}

/// Times each request out as gRPC calls are (`--request-timeout`) and logs
/// its method, path and status: the access log, without the query string.
async fn logged(
    axum::extract::State(face): axum::extract::State<Arc<Face>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let limit = face.shared.config.request_timeout;
    let span = tracing::info_span!("http", %method, %path);
    let response = match tokio::time::timeout(
        limit,
        tracing::Instrument::instrument(next.run(request), span),
    )
    .await
    {
        Ok(response) => response,
        Err(_) => answer::timed_out(limit),
    };
    tracing::info!(
        %method,
        %path,
        status = response.status().as_u16(),
        took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "http request"
    );
    response
}

/// Serves the face on `listener` until `shutdown` completes, then lets
/// requests in flight finish (the caller bounds how long).
pub(crate) async fn serve(
    listener: TcpListener,
    face: Arc<Face>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "FME endpoints served over HTTP");
    }
    let app = router(face).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IssuerConfig;
    use axum::body::Body;
    use std::sync::Mutex;
    use tessera_core::SystemClock;
    use tessera_core::keys::Kek;
    use tower::ServiceExt;

    /// Log lines written by the code under test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn requests_are_logged_without_their_query_strings_or_credentials() {
        const PASSWORD: &str = "s3cret-pass-word";
        const TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.c2VjcmV0LXRva2Vu.c2ln";
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let config =
                    IssuerConfig::new("127.0.0.1:0".parse().expect("address"), "sqlite::memory:");
                let kek = Kek::generate().expect("a kek");
                let shared =
                    Arc::new(Shared::new(config, Arc::new(SystemClock), kek).expect("state"));
                let app = router(Face::new(shared).expect("face"));
                let requests = [
                    format!("/fmetoken/generate?user=ann&password={PASSWORD}"),
                    format!("/fmerest/v3/tokens?fmetoken={TOKEN}"),
                ];
                for uri in requests {
                    let request = Request::get(uri)
                        .header("authorization", format!("Basic {PASSWORD}"))
                        .body(Body::empty())
                        .expect("a request");
                    let response = app.clone().oneshot(request).await.expect("an answer");
                    // The store is not there: the services answer 503.
                    assert!(
                        response.status().is_client_error() || response.status().is_server_error()
                    );
                }
            });
        });
        let logged = String::from_utf8_lossy(&captured.0.lock().unwrap_or_else(|e| e.into_inner()))
            .into_owned();
        assert!(logged.contains("/fmetoken/generate"), "{logged}");
        assert!(logged.contains("/fmerest/v3/tokens"), "{logged}");
        assert!(!logged.contains(PASSWORD), "{logged}");
        assert!(!logged.contains("c2VjcmV0"), "{logged}");
        assert!(!logged.contains('?'), "no query string: {logged}");
    }
}
