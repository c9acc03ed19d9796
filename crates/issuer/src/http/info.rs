//! Discovery and health, as FME clients ask for them: `/fmeinfo/version`
//! (whose `buildNumber` makes `fmeflow` choose REST v4), REST v3's
//! `/fmerest/v3/healthcheck` (`ready` honoured) and v4's
//! `/fmeapiv4/healthcheck/liveness` and `/readiness`.
//!
//! None needs credentials (any sent are not checked, so a health probe
//! costs no password hash). Ready means what the gRPC health check's
//! SERVING means: the store answers, a signing key is active, and the
//! issuer is not shutting down.

use super::Face;
use super::answer::{self, Problem};
use super::input::Params;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The FME build number announced: FME Flow 2025.1's, from which FME's
/// own client (`fmeflow login`, threshold 25208) uses REST v4.
pub(crate) const BUILD_NUMBER: u32 = 25_300;

pub(super) fn routes() -> Router<Arc<Face>> {
    Router::new()
        .route("/fmeinfo/version", get(version))
        .route("/fmerest/v3/healthcheck", get(healthcheck_v3))
        .route("/fmeapiv4/healthcheck/liveness", get(liveness_v4))
        .route("/fmeapiv4/healthcheck/readiness", get(readiness_v4))
}

async fn version(request: Request) -> Response {
    let query = Params::parse(request.uri().query().unwrap_or_default());
    if let Err(problem) = query.only(&["fmetoken"]) {
        return problem.answer(super::answer::Dialect::V4);
    }
    answer::json(
        StatusCode::OK,
        &json!({
            "buildNumber": BUILD_NUMBER,
            "buildString": format!(
                "Tessera {} (FME token endpoints) - Build {BUILD_NUMBER} - tessera",
                env!("CARGO_PKG_VERSION")
            ),
            "releaseYear": 2025,
            "majorVersion": 1,
            "minorVersion": 0,
            "hotfixVersion": 0,
        }),
    )
}

/// Why the issuer is not ready, if it is not.
async fn unready(face: &Face) -> Option<String> {
    if face.is_stopping() {
        return Some("the issuer is shutting down".into());
    }
    let store = match face.shared.store() {
        Ok(store) => store,
        Err(e) => return Some(e.to_string()),
    };
    let within = face
        .shared
        .config
        .health_interval
        .clamp(Duration::from_millis(100), Duration::from_secs(5));
    if !matches!(tokio::time::timeout(within, store.ping()).await, Ok(Ok(()))) {
        return Some("the store does not answer".into());
    }
    match face.shared.signer(store, face.shared.now()).await {
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    }
}

async fn healthcheck_v3(State(face): State<Arc<Face>>, request: Request) -> Response {
    let query = Params::parse(request.uri().query().unwrap_or_default());
    let asked = query
        .only(&["ready", "fmetoken", "detail", "accept"])
        .and_then(|()| query.one("ready").map(|r| r.map(str::to_ascii_lowercase)));
    let ready = match asked {
        Err(problem) => return problem.answer(super::answer::Dialect::V3),
        Ok(None) => false,
        Ok(Some(r)) if r == "false" => false,
        Ok(Some(r)) if r == "true" => true,
        Ok(Some(_)) => {
            return Problem::bad_request("`ready` must be true or false")
                .answer(super::answer::Dialect::V3);
        }
    };
    if ready && let Some(why) = unready(&face).await {
        return answer::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "unavailable", "message": why}),
        );
    }
    answer::json(StatusCode::OK, &json!({"status": "ok"}))
}

async fn liveness_v4() -> Response {
    answer::json(
        StatusCode::OK,
        &json!({"status": "ok", "message": "the issuer is running"}),
    )
}

async fn readiness_v4(State(face): State<Arc<Face>>) -> Response {
    match unready(&face).await {
        Some(why) => answer::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "unavailable", "message": why}),
        ),
        None => answer::json(
            StatusCode::OK,
            &json!({"status": "ok", "message": "the issuer is ready"}),
        ),
    }
}
