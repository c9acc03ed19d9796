//! What a REST gateway needs: Verify reads the forwarded `Authorization`
//! header when the body carries no token, and token names stay reachable by
//! their REST address.

use crate::on_both_backends;
use crate::support::verifier::VerifierHarness;
use crate::support::{Backend, Harness, expect_code, violated_fields};
use tessera_proto::v1::{self, VerifyReason};
use tonic::Code;

async fn verify_reads_the_forwarded_authorization_header(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let created = issuer
        .create_token(v1::CreateTokenRequest {
            name: "gateway".into(),
            ..Default::default()
        })
        .await
        .expect("create");
    let with_header = |value: String| {
        let mut request = tonic::Request::new(v1::VerifyRequest::default());
        request
            .metadata_mut()
            .insert("authorization", value.parse().expect("header"));
        request
    };
    for value in [
        format!("Bearer {}", created.secret),
        format!("fmetoken token={}", created.secret),
    ] {
        let answer = verifier
            .client()
            .verify(with_header(value))
            .await
            .expect("answers")
            .into_inner();
        assert_eq!(answer.reason, VerifyReason::Ok as i32, "{answer:?}");
    }
    // The body wins when it has a token; with neither, it is MALFORMED.
    let mut both = with_header("Bearer not-a-token".into());
    both.get_mut().token = created.secret.clone();
    let answer = verifier
        .client()
        .verify(both)
        .await
        .expect("answers")
        .into_inner();
    assert_eq!(answer.reason, VerifyReason::Ok as i32);
    let none = verifier
        .client()
        .verify(v1::VerifyRequest::default())
        .await
        .expect("answers")
        .into_inner();
    assert_eq!(none.reason, VerifyReason::Malformed as i32);
    issuer.stop().await;
}

async fn new_token_names_may_not_hold_slashes_or_colons(backend: Backend) {
    let issuer = Harness::start(backend).await;
    for name in ["ci/nightly", "build:1"] {
        let status = expect_code(
            issuer
                .create_token(v1::CreateTokenRequest {
                    name: name.into(),
                    ..Default::default()
                })
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["name"], "{status:?}");
    }
    issuer.stop().await;
}

on_both_backends!(
    verify_reads_the_forwarded_authorization_header,
    new_token_names_may_not_hold_slashes_or_colons,
);
