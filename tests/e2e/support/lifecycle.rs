//! Helpers for the token lifecycle, user and key tests: clients, request
//! pieces, and reading the revocation and audit logs back.

use super::{Harness, admin, basic, bearer};
use prost_types::{Duration, FieldMask, Timestamp};
use tessera_core::Clock;
use tessera_proto::v1;
use tessera_proto::v1::audit_service_client::AuditServiceClient;
use tessera_proto::v1::create_token_request::Expiration;
use tessera_proto::v1::user_service_client::UserServiceClient;
use tessera_store::Store;
use tessera_store::audit::AuditFilter;
use tessera_store::entity::{revocation_event, token};
use tonic::transport::Channel;

/// The password of users the tests create.
pub const USER_PASSWORD: &str = "user-password-for-tests";

pub fn users(issuer: &Harness) -> UserServiceClient<Channel> {
    UserServiceClient::new(issuer.channel.clone())
}

pub fn audit(issuer: &Harness) -> AuditServiceClient<Channel> {
    AuditServiceClient::new(issuer.channel.clone())
}

/// A protobuf duration of `secs` seconds.
pub fn secs(secs: i64) -> Option<Duration> {
    Some(Duration {
        seconds: secs,
        nanos: 0,
    })
}

/// A protobuf timestamp at `secs`.
pub fn at(secs: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: secs,
        nanos: 0,
    })
}

/// An update mask of `paths`.
pub fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

/// The issuer's clock, in Unix seconds.
pub fn now(issuer: &Harness) -> i64 {
    issuer.clock.now().timestamp()
}

/// A session token of the administrator: cheaper than Basic credentials,
/// which cost a password hash check per call.
pub async fn admin_session(issuer: &Harness) -> String {
    let reply = issuer
        .sessions()
        .login(admin(v1::LoginRequest {
            kind: v1::SessionKind::Api as i32,
            expires_in: secs(86_400),
        }))
        .await
        .expect("admin login")
        .into_inner();
    reply.secret
}

/// Creates an API token with `credential` (a token) living `life` seconds.
pub async fn api_token(
    issuer: &Harness,
    credential: &str,
    name: &str,
    life: i64,
    permissions: Vec<v1::Grant>,
) -> (v1::Token, String) {
    let reply = issuer
        .tokens()
        .create_token(bearer(
            v1::CreateTokenRequest {
                name: name.into(),
                expiration: Some(Expiration::ExpiresIn(Duration {
                    seconds: life,
                    nanos: 0,
                })),
                all_permissions: permissions.is_empty(),
                permissions,
                ..Default::default()
            },
            credential,
        ))
        .await
        .expect("create token")
        .into_inner();
    (reply.token.expect("metadata"), reply.secret)
}

/// Creates a user through UserService as the administrator.
pub async fn new_user(
    issuer: &Harness,
    session: &str,
    username: &str,
    grants: Vec<v1::Grant>,
) -> v1::User {
    users(issuer)
        .create_user(bearer(
            v1::CreateUserRequest {
                user: Some(v1::User {
                    username: username.into(),
                    grants,
                    ..Default::default()
                }),
                password: USER_PASSWORD.into(),
            },
            session,
        ))
        .await
        .expect("create user")
        .into_inner()
}

/// Logs `username` in with [`USER_PASSWORD`]; returns the session secret.
pub async fn user_session(issuer: &Harness, username: &str) -> String {
    issuer
        .sessions()
        .login(basic(v1::LoginRequest::default(), username, USER_PASSWORD))
        .await
        .expect("user login")
        .into_inner()
        .secret
}

/// Whether `secret` authenticates at the issuer now.
pub async fn authenticates(issuer: &Harness, secret: &str) -> bool {
    issuer
        .tokens()
        .list_tokens(bearer(v1::ListTokensRequest::default(), secret))
        .await
        // An API token without `tokens: read` is known, and refused the list.
        .map_or_else(|s| s.code() == tonic::Code::PermissionDenied, |_| true)
}

// The readers below take a store the test opened once: opening one per
// check costs a connection set-up each (~100 ms on PostgreSQL).

/// Every revocation event in the log, oldest first.
pub async fn events(store: &Store) -> Vec<revocation_event::Model> {
    store
        .revocations_after(0, 1_000)
        .await
        .expect("revocations")
}

/// The revocation events about one token: (kind, detail as JSON).
pub async fn token_events(store: &Store, token_id: &str) -> Vec<(String, serde_json::Value)> {
    events(store)
        .await
        .into_iter()
        .filter(|e| e.token_id.as_deref() == Some(token_id))
        .map(|e| {
            let detail = serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null);
            (e.kind, detail)
        })
        .collect()
}

/// The revocation events about a user as a whole (no token id).
pub async fn user_events(store: &Store, user_id: &str) -> Vec<revocation_event::Model> {
    events(store)
        .await
        .into_iter()
        .filter(|e| e.token_id.is_none() && e.user_id.as_deref() == Some(user_id))
        .collect()
}

/// The stored row of a token.
pub async fn token_row(store: &Store, id: &str) -> Option<token::Model> {
    store.token_by_id(id).await.expect("read token")
}

/// Audit events with `action`, newest first: (outcome, target, detail).
pub async fn audited(store: &Store, action: &str) -> Vec<(String, String, String)> {
    store
        .list_audit(AuditFilter {
            action: Some(action.into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_iter()
        .map(|e| (e.outcome, e.target, e.detail))
        .collect()
}

/// The claims of a token string, read without checking the signature.
pub fn claims(secret: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = secret.split('.').nth(1).expect("a compact JWS");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}
