//! The revocation contract end to end: each issuer RPC that narrows a token
//! reaches a verifier on the same database through the revocation log.

use crate::on_both_backends;
use crate::support::lifecycle::{
    admin_session, api_token, mask, new_user, secs, user_session, users,
};
use crate::support::verifier::VerifierHarness;
use crate::support::{Backend, Harness, bearer, by_id, grant};
use chrono::Duration;
use tessera_proto::v1::{self, VerifyReason};

async fn issuer_changes_reach_the_verifier(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let session = admin_session(&issuer).await;
    let (token, secret) = api_token(
        &issuer,
        &session,
        "watched",
        3_600,
        vec![grant("jobs", &["read", "manage"])],
    )
    .await;
    let tokens = || issuer.tokens();

    tokens()
        .disable_token(bearer(
            v1::DisableTokenRequest {
                token: by_id(&token.id),
            },
            &session,
        ))
        .await
        .expect("disable");
    verifier
        .wait_for_reason(&secret, VerifyReason::Disabled)
        .await;
    tokens()
        .enable_token(bearer(
            v1::EnableTokenRequest {
                token: by_id(&token.id),
            },
            &session,
        ))
        .await
        .expect("enable");
    verifier.wait_for_reason(&secret, VerifyReason::Ok).await;

    tokens()
        .update_token(bearer(
            v1::UpdateTokenRequest {
                target: by_id(&token.id),
                token: Some(v1::Token {
                    permissions: vec![grant("jobs", &["read"])],
                    ..Default::default()
                }),
                update_mask: mask(&["permissions"]),
            },
            &session,
        ))
        .await
        .expect("narrow");
    let started = tokio::time::Instant::now();
    while verifier.verify(&secret, "jobs", "manage").await.valid {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "narrowing did not arrive"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(verifier.verify(&secret, "jobs", "read").await.valid);

    // Rotation with an overlap: the old secret until the overlap ends.
    let rotated = tokens()
        .rotate_token(bearer(
            v1::RotateTokenRequest {
                token: by_id(&token.id),
                overlap: secs(300),
                ..Default::default()
            },
            &session,
        ))
        .await
        .expect("rotate")
        .into_inner();
    verifier
        .wait_for_reason(&rotated.secret, VerifyReason::Ok)
        .await;
    assert_eq!(verifier.reason(&secret).await, VerifyReason::Ok);
    issuer.clock.advance(Duration::seconds(300));
    verifier
        .wait_for_reason(&secret, VerifyReason::Revoked)
        .await;
    assert_eq!(verifier.reason(&rotated.secret).await, VerifyReason::Ok);

    // Deleting it.
    tokens()
        .delete_token(bearer(
            v1::DeleteTokenRequest {
                token: by_id(&token.id),
            },
            &session,
        ))
        .await
        .expect("delete");
    verifier
        .wait_for_reason(&rotated.secret, VerifyReason::Revoked)
        .await;
    issuer.stop().await;
}

async fn user_changes_reach_the_verifier(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let session = admin_session(&issuer).await;
    let carol = new_user(
        &issuer,
        &session,
        "carol",
        vec![grant("jobs", &["read", "manage"])],
    )
    .await;
    let carol_session = user_session(&issuer, "carol").await;
    let (_, api) = api_token(&issuer, &carol_session, "carol's", 3_600, vec![]).await;
    verifier.wait_for_reason(&api, VerifyReason::Ok).await;

    // Fewer grants for the user: every token of hers is held to them.
    users(&issuer)
        .update_user(bearer(
            v1::UpdateUserRequest {
                user: Some(v1::User {
                    id: carol.id.clone(),
                    grants: vec![grant("jobs", &["read"])],
                    ..Default::default()
                }),
                update_mask: mask(&["grants"]),
            },
            &session,
        ))
        .await
        .expect("take grants away");
    let started = tokio::time::Instant::now();
    while verifier.verify(&api, "jobs", "manage").await.valid {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "ceiling did not arrive"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(verifier.verify(&api, "jobs", "read").await.valid);

    // Logout revokes the session.
    issuer
        .sessions()
        .logout(bearer(v1::LogoutRequest {}, &carol_session))
        .await
        .expect("logout");
    verifier
        .wait_for_reason(&carol_session, VerifyReason::Revoked)
        .await;

    // Disabling her revokes everything issued up to now, within this very
    // second too; once enabled, a new login (same second) is good.
    users(&issuer)
        .update_user(bearer(
            v1::UpdateUserRequest {
                user: Some(v1::User {
                    id: carol.id.clone(),
                    ..Default::default()
                }),
                update_mask: mask(&["enabled"]),
            },
            &session,
        ))
        .await
        .expect("disable");
    verifier.wait_for_reason(&api, VerifyReason::Revoked).await;
    users(&issuer)
        .update_user(bearer(
            v1::UpdateUserRequest {
                user: Some(v1::User {
                    id: carol.id.clone(),
                    enabled: true,
                    ..Default::default()
                }),
                update_mask: mask(&["enabled"]),
            },
            &session,
        ))
        .await
        .expect("enable");
    let fresh = user_session(&issuer, "carol").await;
    assert_eq!(verifier.reason(&fresh).await, VerifyReason::Ok);
    assert_eq!(verifier.reason(&api).await, VerifyReason::Revoked);
    issuer.stop().await;
}

on_both_backends!(
    issuer_changes_reach_the_verifier,
    user_changes_reach_the_verifier
);

/// Narrow a token, then rotate it wider: the new secret holds the wider
/// grants at the verifier, the old one stays narrowed until its overlap ends.
async fn a_rotation_widens_a_narrowed_token_at_the_verifier(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let session = admin_session(&issuer).await;
    let wide = vec![grant("jobs", &["read", "manage"])];
    let (token, old_secret) = api_token(&issuer, &session, "widened", 3_600, wide.clone()).await;
    issuer
        .tokens()
        .update_token(bearer(
            v1::UpdateTokenRequest {
                target: by_id(&token.id),
                token: Some(v1::Token {
                    permissions: vec![grant("jobs", &["read"])],
                    ..Default::default()
                }),
                update_mask: mask(&["permissions"]),
            },
            &session,
        ))
        .await
        .expect("narrow");
    let started = tokio::time::Instant::now();
    while verifier.verify(&old_secret, "jobs", "manage").await.valid {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "narrowing did not arrive"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let rotated = issuer
        .tokens()
        .rotate_token(bearer(
            v1::RotateTokenRequest {
                token: by_id(&token.id),
                permissions: wide,
                replace_permissions: true,
                overlap: secs(600),
                ..Default::default()
            },
            &session,
        ))
        .await
        .expect("rotate wider")
        .into_inner();
    let started = tokio::time::Instant::now();
    while !verifier
        .verify(&rotated.secret, "jobs", "manage")
        .await
        .valid
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the rotation did not arrive"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let old = verifier.verify(&old_secret, "jobs", "manage").await;
    assert_eq!(
        old.reason,
        VerifyReason::PermissionDenied as i32,
        "the old secret stays narrowed"
    );
    assert!(
        verifier.verify(&old_secret, "jobs", "read").await.valid,
        "inside its overlap"
    );
    issuer.clock.advance(Duration::seconds(601));
    verifier
        .wait_for_reason(&old_secret, VerifyReason::Revoked)
        .await;
    issuer.stop().await;
}

on_both_backends!(a_rotation_widens_a_narrowed_token_at_the_verifier);
