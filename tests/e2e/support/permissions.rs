//! Helpers for the permission tests: creating and rotating tokens with
//! given grants and reading a refusal's details back.

use super::lifecycle::secs;
use super::{Harness, bearer};
use tessera_proto::v1;
use tessera_proto::v1::create_token_request::Expiration;
use tonic::Status;

/// A CreateToken request for `name` with `permissions`, living an hour.
pub fn create_request(name: &str, permissions: Vec<v1::Grant>) -> v1::CreateTokenRequest {
    v1::CreateTokenRequest {
        name: name.into(),
        expiration: secs(3_600).map(Expiration::ExpiresIn),
        permissions,
        ..Default::default()
    }
}

/// CreateToken with `credential` (a token).
pub async fn create(
    issuer: &Harness,
    credential: &str,
    request: v1::CreateTokenRequest,
) -> Result<v1::CreateTokenResponse, Status> {
    issuer
        .tokens()
        .create_token(bearer(request, credential))
        .await
        .map(tonic::Response::into_inner)
}

/// The `subject`s of a FAILED_PRECONDITION status's precondition
/// violations: the missing grants, `resource:action`.
pub fn missing_grants(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_precondition_failure()
        .map(|pf| {
            pf.violations
                .into_iter()
                .map(|v| {
                    assert_eq!(v.r#type, "MISSING_DEPENDENCY", "{v:?}");
                    v.subject
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Grants as `resource:a,b` strings, sorted: easy to compare.
pub fn spelled(grants: &[v1::Grant]) -> Vec<String> {
    let mut out: Vec<String> = grants
        .iter()
        .map(|g| {
            let mut actions = g.actions.clone();
            actions.sort();
            format!("{}:{}", g.resource, actions.join(","))
        })
        .collect();
    out.sort();
    out
}
