//! Envoy's ext_authz v3 (`envoy.service.auth.v3.Authorization/Check`), the
//! API Envoy, Istio and Envoy Gateway ask on every request, served on the
//! verifier's gRPC port.
//!
//! Envoy sends the request's attributes: lower-cased headers (as a map, or
//! as `header_map` when told to send raw headers), the method, the path with
//! its query, and the route's `context_extensions`, where `resource` and
//! `action` name what to check. The answer:
//!
//! - allowed: `OK`, with `x-tessera-token-id`, `-owner-id`, `-token-type`
//!   and `-expire-time` set on the upstream request (overwriting anything
//!   the client sent; removed on public routes), `authorization` removed
//!   when `--strip-credential` is on, the `fmetoken` parameter removed
//!   whenever it is there and reading it is on (`--fmetoken-query`),
//!   public routes included;
//! - refused: a denied response with the HTTP status, `WWW-Authenticate`
//!   on 401 and on a 403 for a missing grant, `Retry-After` on 503,
//!   `Cache-Control: no-store`, `x-tessera-reason` and a small JSON body;
//!   `status` is UNAUTHENTICATED, PERMISSION_DENIED, UNAVAILABLE or
//!   INVALID_ARGUMENT (400: a bad question, or a path outside the normal
//!   form) accordingly.
//!
//! Refusals, and allowed answers a proxy may keep, carry `dynamic_metadata`
//! with `reason` and `cache_max_age_seconds` for Envoy's access logs and
//! later filters.

use super::{Answer, Ask, Front, Gateway, QUERY_TOKEN};
use crate::service::Shared;
use prost_types::value::Kind;
use prost_types::{Struct, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use tessera_proto::envoy::config::core::v3::address;
use tessera_proto::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use tessera_proto::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use tessera_proto::envoy::service::auth::v3::attribute_context::HttpRequest;
use tessera_proto::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use tessera_proto::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
    check_response::HttpResponse,
};
use tessera_proto::envoy::r#type::v3::HttpStatus;
use tessera_proto::google::rpc;
use tonic::{Code, Request, Response, Status};

/// Identity headers set on allowed requests: never taken from the client.
pub const IDENTITY_HEADERS: [&str; 4] = [
    "x-tessera-token-id",
    "x-tessera-owner-id",
    "x-tessera-token-type",
    "x-tessera-expire-time",
];

/// The served `Authorization` service.
pub type AuthzServer = AuthorizationServer<ExtAuthz>;

/// The `Authorization` service over `gateway`.
pub fn service(gateway: Arc<Gateway>, max_bytes: usize) -> AuthzServer {
    AuthorizationServer::new(ExtAuthz(gateway)).max_decoding_message_size(max_bytes)
}

/// Who is behind a Check: the downstream address Envoy reports, when
/// Envoy is a trusted proxy; otherwise the caller of Check itself.
fn caller(shared: &Shared, peer: Option<IpAddr>, attributes: &AttributeContext) -> Option<IpAddr> {
    let peer = peer?;
    if !shared.config.trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    let source = attributes
        .source
        .as_ref()
        .and_then(|s| s.address.as_ref())
        .and_then(|a| match &a.address {
            Some(address::Address::SocketAddress(s)) => s.address.parse::<IpAddr>().ok(),
            None => None,
        });
    Some(source.unwrap_or(peer))
}

/// The gRPC handler.
#[derive(Debug)]
pub struct ExtAuthz(Arc<Gateway>);

#[tonic::async_trait]
impl Authorization for ExtAuthz {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let peer = request.remote_addr().map(|a| a.ip());
        let attributes = request.into_inner().attributes.unwrap_or_default();
        let http = attributes
            .request
            .as_ref()
            .and_then(|r| r.http.as_ref())
            .ok_or_else(|| Status::invalid_argument("attributes.request.http is not set"))?;
        let authorization = header(http, "authorization");
        let extension = |key: &str| {
            attributes
                .context_extensions
                .get(key)
                .map_or("", String::as_str)
        };
        let ask = Ask {
            method: &http.method,
            path: &http.path,
            authorization: &authorization,
            resource: extension("resource"),
            action: extension("action"),
            caller: caller(self.0.shared(), peer, &attributes),
        };
        let answer = self.0.answer(Front::ExtAuthz, &ask).await;
        let strip = self.0.shared().config.strip_credential;
        Ok(Response::new(respond(&answer, strip)))
    }
}

/// A request header, from the map or from `header_map` (raw headers).
fn header(http: &HttpRequest, name: &str) -> String {
    if let Some(value) = http.headers.get(name) {
        return value.clone();
    }
    http.header_map
        .iter()
        .flat_map(|m| &m.headers)
        .find(|h| h.key.eq_ignore_ascii_case(name))
        .map(|h| {
            if h.raw_value.is_empty() {
                h.value.clone()
            } else {
                String::from_utf8_lossy(&h.raw_value).into_owned()
            }
        })
        .unwrap_or_default()
}

fn set(key: &str, value: impl Into<String>) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: value.into(),
            raw_value: Vec::new(),
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        keep_empty_value: false,
    }
}

fn metadata(answer: &Answer) -> Struct {
    let value = |kind| Value { kind: Some(kind) };
    Struct {
        fields: BTreeMap::from([
            (
                "reason".to_owned(),
                value(Kind::StringValue(answer.reason.to_owned())),
            ),
            (
                "cache_max_age_seconds".to_owned(),
                value(Kind::NumberValue(answer.keep_secs() as f64)),
            ),
        ]),
    }
}

/// The `CheckResponse` for `answer`.
pub fn respond(answer: &Answer, strip_credential: bool) -> CheckResponse {
    let code = match answer.status {
        200 => Code::Ok,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        503 => Code::Unavailable,
        _ => Code::InvalidArgument,
    };
    let status = Some(rpc::Status {
        code: code as i32,
        message: if answer.allowed() {
            String::new()
        } else {
            answer.message.clone()
        },
        details: Vec::new(),
    });
    let http_response = if answer.allowed() {
        let mut ok = OkHttpResponse::default();
        match &answer.identity {
            Some(id) => {
                ok.headers = vec![
                    set(IDENTITY_HEADERS[0], &id.token_id),
                    set(IDENTITY_HEADERS[1], &id.owner_id),
                    set(IDENTITY_HEADERS[2], id.token_type),
                    set(IDENTITY_HEADERS[3], &id.expire_time),
                ];
            }
            // A public route: no identity, and none a client made up.
            None => ok.headers_to_remove = IDENTITY_HEADERS.map(str::to_owned).to_vec(),
        }
        if strip_credential {
            ok.headers_to_remove.push("authorization".to_owned());
        }
        if answer.query_token {
            ok.query_parameters_to_remove.push(QUERY_TOKEN.to_owned());
        }
        HttpResponse::OkResponse(ok)
    } else {
        let mut headers = vec![
            set("content-type", "application/json"),
            set("cache-control", answer.cache_control()),
            set("x-tessera-reason", answer.reason),
        ];
        if let Some(challenge) = answer.challenge() {
            headers.push(set("www-authenticate", challenge));
        }
        if answer.status == 503 {
            headers.push(set("retry-after", "1"));
        }
        HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(answer.status),
            }),
            headers,
            body: answer.body(),
        })
    };
    // An allowed answer says nothing when there is nothing to keep (the
    // default: a sub-second sync interval), which keeps it under h2's
    // 256-byte chaining threshold: a larger DATA frame is written on its
    // own, one system call per answer, and halves Check's throughput.
    let dynamic_metadata = (!answer.allowed() || answer.keep_secs() > 0).then(|| metadata(answer));
    CheckResponse {
        status,
        http_response: Some(http_response),
        dynamic_metadata,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::Identity;
    use prost::Message;

    /// h2 copies DATA frames of up to 256 bytes into its write buffer and
    /// writes larger ones on their own; an allowed answer, prefix included,
    /// stays within that, whatever token type and with the credential
    /// stripped.
    #[test]
    fn an_allowed_answer_fits_one_buffered_data_frame() {
        let answer = Answer {
            status: 200,
            reason: "OK",
            message: "OK".into(),
            identity: Some(Identity {
                token_id: "019ad7f2-3c4e-7a6b-9c1d-2e3f4a5b6c7d".into(),
                owner_id: "019ad7f2-3c4e-7a6b-9c1d-2e3f4a5b6c7e".into(),
                token_type: "session",
                expire_time: "2026-12-02T06:00:00Z".into(),
            }),
            max_age_secs: 0,
            query_token: true,
            credential_given: true,
        };
        let response = respond(&answer, true);
        assert!(response.dynamic_metadata.is_none());
        assert!(
            5 + response.encoded_len() <= 256,
            "{} bytes",
            5 + response.encoded_len()
        );
        let kept = respond(
            &Answer {
                max_age_secs: 5,
                ..answer
            },
            false,
        );
        assert!(
            kept.dynamic_metadata.is_some(),
            "a bound worth saying is said"
        );
    }

    /// What a CheckResponse says is the Answer's: a refusal is never kept,
    /// whatever bound it carries, and a public answer drops the query
    /// credential as any allowed one does.
    #[test]
    fn refusals_are_no_store_and_public_answers_drop_the_query_credential() {
        let refused = respond(
            &Answer {
                max_age_secs: 5,
                ..Answer::plain(401, "DISABLED", "token is disabled")
            },
            false,
        );
        let Some(HttpResponse::DeniedResponse(denied)) = &refused.http_response else {
            panic!("a denied response: {refused:?}");
        };
        let header = |key: &str| {
            denied
                .headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .find(|h| h.key == key)
                .map(|h| h.value.as_str())
        };
        assert_eq!(header("cache-control"), Some("no-store"));
        assert_eq!(header("x-tessera-reason"), Some("DISABLED"));
        let kept = refused
            .dynamic_metadata
            .as_ref()
            .and_then(|m| m.fields.get("cache_max_age_seconds"))
            .and_then(|v| v.kind.clone());
        assert_eq!(kept, Some(Kind::NumberValue(0.0)));

        let public = respond(
            &Answer {
                query_token: true,
                ..Answer::plain(200, "PUBLIC", "a public route")
            },
            false,
        );
        let Some(HttpResponse::OkResponse(ok)) = &public.http_response else {
            panic!("an OK response: {public:?}");
        };
        assert_eq!(ok.query_parameters_to_remove, [QUERY_TOKEN]);
        assert!(ok.headers.is_empty());
        assert_eq!(ok.headers_to_remove, IDENTITY_HEADERS);
    }
}
