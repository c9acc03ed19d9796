//! Statuses and error bodies, as each FME endpoint family writes them.
//!
//! A refusal of the gRPC services becomes FME's status for it: 401 for
//! missing or wrong credentials, 403, 404, 409 for a name taken or a
//! state that forbids the change, 422 (REST v3) or 400 (REST v4) for bad
//! input, 429 with `Retry-After` for the sign-in throttle, 503 while the
//! issuer cannot answer. The message is the service's own: it says what to
//! change and never holds a secret.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// Which FME endpoint family answers, for the shape of its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `/fmetoken/generate`: plain text.
    TokenText,
    /// `/fmetoken/generate.json`: FME's `serviceResponse` envelope.
    TokenJson,
    /// `/fmerest/v3`: `{"message": …}`, 422 for bad input.
    V3,
    /// `/fmeapiv4`: `{"message": …}`, 400 for bad input.
    V4,
}

impl Dialect {
    /// The status FME gives input it cannot use.
    fn invalid(self) -> StatusCode {
        match self {
            Dialect::V3 => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// FME's name for a field of Tessera's API, in messages.
    fn field(self, field: &str) -> String {
        let leaf = field.strip_prefix("token.").unwrap_or(field);
        let renamed = match (self, leaf) {
            (Dialect::V3, "expires_in" | "expire_time") => "expirationTimeout",
            (Dialect::V4, "expires_in") => "secondsToExpiry",
            (Dialect::V4, "expire_time") => "expiration",
            (Dialect::TokenText | Dialect::TokenJson, "expires_in") => "expiration",
            _ => return leaf.to_owned(),
        };
        renamed.to_owned()
    }
}

/// A refusal on its way to the caller.
#[derive(Debug)]
pub(crate) struct Problem {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A request FME would refuse as malformed (400 everywhere).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// Input that is well-formed but unusable: 422 in v3, 400 elsewhere.
    pub fn invalid(dialect: Dialect, message: impl Into<String>) -> Self {
        Self::new(dialect.invalid(), message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// The status a refusal by the gRPC services becomes.
    pub fn from_status(dialect: Dialect, status: &Status) -> Self {
        let code = match status.code() {
            Code::InvalidArgument => dialect.invalid(),
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
            // Grants missing what they depend on are bad input; any other
            // precondition is the token's state refusing the change.
            Code::FailedPrecondition if has_missing_dependencies(status) => dialect.invalid(),
            Code::FailedPrecondition => StatusCode::CONFLICT,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Cancelled | Code::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match status.get_details_bad_request() {
            Some(bad) if !bad.field_violations.is_empty() => format!(
                "invalid request: {}",
                bad.field_violations
                    .iter()
                    .map(|v| format!("{}: {}", dialect.field(&v.field), v.description))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            // The prompt's switch, by the name FME's bodies give it.
            _ if has_missing_dependencies(status) => status
                .message()
                .replace("grant_dependencies", "grantDependencies"),
            _ => status.message().to_owned(),
        };
        let retry_after = status
            .get_details_retry_info()
            .and_then(|r| r.retry_delay)
            .map(|d| (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1));
        Self {
            status: code,
            message,
            retry_after: retry_after.or((code == StatusCode::SERVICE_UNAVAILABLE).then_some(1)),
        }
    }

    /// The response, in `dialect`'s shape.
    pub fn answer(self, dialect: Dialect) -> Response {
        let mut response = match dialect {
            Dialect::TokenText => (
                self.status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                self.message,
            )
                .into_response(),
            Dialect::TokenJson => json(
                self.status,
                &serde_json::json!({
                    "serviceResponse": {
                        "statusInfo": {"status": "failure", "message": self.message}
                    }
                }),
            ),
            Dialect::V3 | Dialect::V4 => {
                json(self.status, &serde_json::json!({"message": self.message}))
            }
        };
        let headers = response.headers_mut();
        // Refusals are about this request: never cached.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(secs) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        // The REST endpoints take Basic credentials, as FME's do; the token
        // service takes them as parameters, so it sends no challenge.
        if self.status == StatusCode::UNAUTHORIZED && matches!(dialect, Dialect::V3 | Dialect::V4) {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tessera\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

fn has_missing_dependencies(status: &Status) -> bool {
    status.get_details_precondition_failure().is_some_and(|p| {
        p.violations
            .iter()
            .any(|v| v.r#type == crate::error::MISSING_DEPENDENCY)
    })
}

/// A JSON body with `status`, never cached (answers about tokens carry
/// their secrets or their state).
pub(crate) fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// 204, as FME answers a change or a deletion.
pub(crate) fn no_content() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The dialect of a path, for answers not tied to one endpoint.
fn dialect_of(path: &str) -> Dialect {
    if path.starts_with("/fmeapiv4") {
        Dialect::V4
    } else if path.starts_with("/fmetoken") {
        Dialect::TokenText
    } else {
        Dialect::V3
    }
}

pub(crate) async fn no_such_endpoint(uri: axum::http::Uri) -> Response {
    Problem::new(
        StatusCode::NOT_FOUND,
        format!(
            "no such endpoint: {}; this issuer serves FME's token endpoints only \
             (/fmetoken/generate, /fmerest/v3/tokens, /fmeapiv4/tokens, /fmeinfo/version, \
             the health checks); see docs/fme.md",
            uri.path()
        ),
    )
    .answer(dialect_of(uri.path()))
}

pub(crate) async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> Response {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method}", uri.path()),
    )
    .answer(dialect_of(uri.path()))
}

/// What a request that ran past `--request-timeout` is told.
pub(crate) fn timed_out(limit: std::time::Duration) -> Response {
    let mut problem = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "the request took longer than the issuer allows ({}); retry",
            tessera_core::duration::format(limit)
        ),
    );
    problem.retry_after = Some(1);
    problem.answer(Dialect::V3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::{ErrorDetails, StatusExt};

    #[test]
    fn field_names_are_fmes() {
        let mut details = ErrorDetails::new();
        details.add_bad_request_violation("expires_in", "must be positive");
        let status = Status::with_error_details(Code::InvalidArgument, "x", details);
        let v3 = Problem::from_status(Dialect::V3, &status);
        assert_eq!(v3.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            v3.message,
            "invalid request: expirationTimeout: must be positive"
        );
        let v4 = Problem::from_status(Dialect::V4, &status);
        assert_eq!(v4.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            v4.message,
            "invalid request: secondsToExpiry: must be positive"
        );
    }

    #[test]
    fn statuses_follow_the_codes() {
        let cases = [
            (Code::Unauthenticated, StatusCode::UNAUTHORIZED),
            (Code::PermissionDenied, StatusCode::FORBIDDEN),
            (Code::NotFound, StatusCode::NOT_FOUND),
            (Code::AlreadyExists, StatusCode::CONFLICT),
            (Code::FailedPrecondition, StatusCode::CONFLICT),
            (Code::ResourceExhausted, StatusCode::TOO_MANY_REQUESTS),
            (Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
            (Code::Internal, StatusCode::INTERNAL_SERVER_ERROR),
        ];
        for (code, want) in cases {
            let got = Problem::from_status(Dialect::V3, &Status::new(code, "m")).status;
            assert_eq!(got, want, "{code:?}");
        }
        let mut details = ErrorDetails::new();
        details.add_precondition_failure_violation(
            crate::error::MISSING_DEPENDENCY,
            "repositories:read",
            "needed",
        );
        let missing = Status::with_error_details(Code::FailedPrecondition, "m", details);
        assert_eq!(
            Problem::from_status(Dialect::V3, &missing).status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let mut details = ErrorDetails::new();
        details.set_retry_info(Some(std::time::Duration::from_millis(1_500)));
        let throttled = Status::with_error_details(Code::ResourceExhausted, "m", details);
        assert_eq!(
            Problem::from_status(Dialect::TokenText, &throttled).retry_after,
            Some(2)
        );
    }
}
