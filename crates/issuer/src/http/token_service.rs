//! FME's token service: `/fmetoken/generate` (the token as plain text) and
//! `/fmetoken/generate.json` (FME's `serviceResponse` envelope), by `GET`
//! or `POST`, with `user`, `password`, `expiration` and `timeunit` in the
//! query string or a form body.
//!
//! It is `SessionService.Login` with a token-service session: the same
//! password check, sign-in throttle and audit. Without `expiration` the
//! session lasts the token-service default (`--token-service-session-lifetime`,
//! 5 minutes); a longer one than `--max-session-lifetime` is cut to it, as
//! FME cuts a token to its maximum expiration.

use super::Face;
use super::answer::{self, Dialect, Problem};
use super::input::{self, Params};
use super::shape;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::sync::Arc;
use std::time::Duration;
use tessera_proto::v1;
use tonic::metadata::MetadataValue;

/// The parameters the token service takes. FME's `update` is accepted and
/// has no effect: each call makes a new session.
const PARAMETERS: &[&str] = &["user", "password", "expiration", "timeunit", "update"];

/// The token service's default unit when `expiration` comes without one.
const DEFAULT_UNIT: &str = "hour";

pub(super) fn routes() -> Router<Arc<Face>> {
    Router::new()
        .route("/fmetoken/generate", get(text).post(text))
        .route("/fmetoken/generate.json", get(json).post(json))
}

async fn text(State(face): State<Arc<Face>>, request: Request) -> Response {
    generate(&face, request, Dialect::TokenText)
        .await
        .unwrap_or_else(|p| p.answer(Dialect::TokenText))
}

async fn json(State(face): State<Arc<Face>>, request: Request) -> Response {
    generate(&face, request, Dialect::TokenJson)
        .await
        .unwrap_or_else(|p| p.answer(Dialect::TokenJson))
}

/// Seconds in one `unit` (FME's words, singular or plural, any case).
fn unit_secs(unit: &str) -> Option<u64> {
    let unit = unit.trim().to_ascii_lowercase();
    Some(match unit.strip_suffix('s').unwrap_or(&unit) {
        "second" => 1,
        "minute" => 60,
        "hour" => 3_600,
        "day" => 86_400,
        "week" => 7 * 86_400,
        "month" => 30 * 86_400,
        "year" => 365 * 86_400,
        _ => return None,
    })
}

/// The session lifetime asked for, cut to `max`; `None` for the default.
fn lifetime(
    expiration: Option<&str>,
    timeunit: Option<&str>,
    max: Duration,
) -> Result<Option<Duration>, Problem> {
    let Some(expiration) = expiration.map(str::trim).filter(|e| !e.is_empty()) else {
        if timeunit.is_some_and(|u| !u.trim().is_empty()) {
            return Err(Problem::bad_request(
                "`timeunit` needs `expiration`: give both, or neither for the default of 5 minutes",
            ));
        }
        return Ok(None);
    };
    let count: u64 = expiration
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Problem::bad_request("`expiration` must be a positive whole number"))?;
    let unit = timeunit
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .unwrap_or(DEFAULT_UNIT);
    let per = unit_secs(unit).ok_or_else(|| {
        Problem::bad_request(
            "`timeunit` must be one of second, minute, hour, day, week, month, year",
        )
    })?;
    Ok(Some(
        Duration::from_secs(count.saturating_mul(per)).min(max),
    ))
}

async fn generate(face: &Face, request: Request, dialect: Dialect) -> Result<Response, Problem> {
    let (parts, body) = request.into_parts();
    let mut params = Params::of_query(&parts);
    if parts.method == Method::POST {
        params.extend(input::form(&parts.headers, body).await?);
    }
    params.only(PARAMETERS)?;
    let user = params.one("user")?.unwrap_or_default();
    let password = params.one("password")?.unwrap_or_default();
    if user.is_empty() || password.is_empty() {
        return Err(Problem::unauthorized(
            "the token service needs `user` and `password`",
        ));
    }
    let expires_in = lifetime(
        params.one("expiration")?,
        params.one("timeunit")?,
        face.shared.config.max_session_lifetime,
    )?;
    let credentials = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
    let mut origin = input::peer(&parts);
    origin.authorization = Some(
        MetadataValue::try_from(credentials)
            .map_err(|_| Problem::unauthorized("the credentials are not readable"))?,
    );
    let login = v1::LoginRequest {
        kind: v1::SessionKind::TokenService as i32,
        expires_in: expires_in.map(|d| prost_types::Duration {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: 0,
        }),
    };
    let reply = face
        .grpc
        .sessions()
        .login(origin.request(login))
        .await
        .map_err(|s| Problem::from_status(dialect, &s))?
        .into_inner();
    let expires = reply
        .token
        .as_ref()
        .and_then(|t| t.expire_time.as_ref())
        .map_or(0, |t| t.seconds);
    Ok(match dialect {
        Dialect::TokenJson => answer::json(
            StatusCode::OK,
            &serde_json::json!({
                "serviceResponse": {
                    "token": reply.secret,
                    "user": user,
                    "expirationDate": shape::v3_date(expires),
                    "statusInfo": {"status": "success"},
                }
            }),
        ),
        _ => {
            let mut response = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                reply.secret,
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn every_unit_counts_and_the_maximum_cuts() {
        let secs = |e: &str, u: Option<&str>| {
            lifetime(Some(e), u, Duration::from_secs(10 * 365 * 86_400))
                .ok()
                .flatten()
                .map(|d| d.as_secs())
        };
        assert_eq!(secs("30", Some("second")), Some(30));
        assert_eq!(secs("2", Some("minutes")), Some(120));
        assert_eq!(secs("3", Some("HOUR")), Some(10_800));
        assert_eq!(secs("3", Some("day")), Some(259_200));
        assert_eq!(secs("1", Some("week")), Some(604_800));
        assert_eq!(secs("1", Some("month")), Some(2_592_000));
        assert_eq!(secs("1", Some("year")), Some(31_536_000));
        assert_eq!(secs("2", None), Some(7_200), "hours by default");
        assert_eq!(
            lifetime(Some("3"), Some("day"), DAY).ok().flatten(),
            Some(DAY),
            "cut to the maximum"
        );
        assert_eq!(lifetime(None, None, DAY).ok().flatten(), None);
        for (e, u) in [
            ("0", None),
            ("-1", None),
            ("x", None),
            ("1", Some("fortnight")),
        ] {
            assert!(lifetime(Some(e), u, DAY).is_err(), "{e} {u:?}");
        }
        assert!(lifetime(None, Some("day"), DAY).is_err());
    }
}
