//! The sequences that once made the verifier disagree with the issuer, as
//! plain regression tests: same-second user changes, ceilings given back,
//! statuses after owner changes, refused answers without identity, and
//! tokens from another issuer. The differential test covers the general
//! case; these pin the named defects.

use crate::on_both_backends;
use crate::support::lifecycle::{
    USER_PASSWORD, admin_session, api_token, audit, authenticates, mask, new_user, user_session,
    users,
};
use crate::support::verifier::{VerifierHarness, verifier_config};
use crate::support::{Backend, Harness, basic, bearer, by_id, expect_code, grant};
use tessera_core::keys::Signer;
use tessera_core::{Claims, Clock, Grant, TokenType, jwt};
use tessera_proto::v1::{self, VerifyReason};
use tonic::Code;

fn set_enabled(id: &str, enabled: bool) -> v1::UpdateUserRequest {
    v1::UpdateUserRequest {
        user: Some(v1::User {
            id: id.into(),
            enabled,
            ..Default::default()
        }),
        update_mask: mask(&["enabled"]),
    }
}

fn set_grants(id: &str, grants: Vec<v1::Grant>) -> v1::UpdateUserRequest {
    v1::UpdateUserRequest {
        user: Some(v1::User {
            id: id.into(),
            grants,
            ..Default::default()
        }),
        update_mask: mask(&["grants"]),
    }
}

async fn status_of(issuer: &Harness, session: &str, id: &str) -> v1::TokenStatus {
    let token = issuer
        .tokens()
        .get_token(bearer(v1::GetTokenRequest { token: by_id(id) }, session))
        .await
        .expect("get token")
        .into_inner();
    v1::TokenStatus::try_from(token.status).expect("a status")
}

/// Disable, enable, log in, disable again, all in one second: the last
/// session is refused by both services.
async fn a_same_second_disable_revokes_the_session_issued_in_between(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let store = issuer.db().store().await;
    let admin = admin_session(&issuer).await;
    let carol = new_user(&issuer, &admin, "carol", vec![]).await;
    let mut users = users(&issuer);
    for enabled in [false, true] {
        users
            .update_user(bearer(set_enabled(&carol.id, enabled), &admin))
            .await
            .expect("toggle");
    }
    let session = user_session(&issuer, "carol").await;
    users
        .update_user(bearer(set_enabled(&carol.id, false), &admin))
        .await
        .expect("disable again");
    verifier.wait_for_sync(&store, issuer.clock.as_ref()).await;
    let answer = verifier.verify(&session, "", "").await;
    assert_eq!(answer.reason, VerifyReason::Revoked as i32, "{answer:?}");
    assert!(!authenticates(&issuer, &session).await);
    issuer.stop().await;
}

/// Two password changes in one second with a login between them: the
/// session from between is revoked by the second change.
async fn a_same_second_password_change_revokes_the_session_before_it(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let store = issuer.db().store().await;
    let admin = admin_session(&issuer).await;
    let carol = new_user(&issuer, &admin, "carol", vec![]).await;
    let set = |password: &str| v1::SetPasswordRequest {
        user: carol.id.clone(),
        current_password: String::new(),
        new_password: password.into(),
    };
    users(&issuer)
        .set_password(bearer(set(USER_PASSWORD), &admin))
        .await
        .expect("first change");
    let session = user_session(&issuer, "carol").await;
    users(&issuer)
        .set_password(bearer(set("another-password-entirely"), &admin))
        .await
        .expect("second change");
    verifier.wait_for_sync(&store, issuer.clock.as_ref()).await;
    assert_eq!(verifier.reason(&session).await, VerifyReason::Revoked);
    assert!(!authenticates(&issuer, &session).await);
    issuer.stop().await;
}

/// Taking `jobs: read` away narrows a token for good: giving it back does
/// not widen it at the verifier, and `GetToken` says the same.
async fn giving_grants_back_never_widens_an_existing_token(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let store = issuer.db().store().await;
    let admin = admin_session(&issuer).await;
    let full = vec![grant("jobs", &["read"]), grant("repositories", &["read"])];
    let carol = new_user(&issuer, &admin, "carol", full.clone()).await;
    let session = user_session(&issuer, "carol").await;
    let (token, secret) = api_token(&issuer, &session, "ci", 3_600, vec![]).await;
    assert!(verifier.verify(&secret, "jobs/J1", "read").await.valid);
    users(&issuer)
        .update_user(bearer(
            set_grants(&carol.id, vec![grant("repositories", &["read"])]),
            &admin,
        ))
        .await
        .expect("take away");
    users(&issuer)
        .update_user(bearer(set_grants(&carol.id, full), &admin))
        .await
        .expect("give back");
    verifier.wait_for_sync(&store, issuer.clock.as_ref()).await;
    let answer = verifier.verify(&secret, "jobs/J1", "read").await;
    assert_eq!(
        answer.reason,
        VerifyReason::PermissionDenied as i32,
        "{answer:?}"
    );
    assert_eq!(answer.grants, vec![grant("repositories", &["read"])]);
    let record = issuer
        .tokens()
        .get_token(bearer(
            v1::GetTokenRequest {
                token: by_id(&token.id),
            },
            &admin,
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(record.permissions, answer.grants);
    // A token made after the grants came back holds them.
    let session = user_session(&issuer, "carol").await;
    let (_, fresh) = api_token(&issuer, &session, "fresh", 3_600, vec![]).await;
    assert!(verifier.verify(&fresh, "jobs/J1", "read").await.valid);
    issuer.stop().await;
}

/// After a password change or disabling the owner, the issuer shows the
/// owner's tokens as revoked, and its status filters agree.
async fn owner_changes_show_as_revoked_at_the_issuer(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let store = issuer.db().store().await;
    let admin = admin_session(&issuer).await;
    let carol = new_user(&issuer, &admin, "carol", vec![]).await;
    new_user(&issuer, &admin, "dave", vec![]).await;
    let carol_session = user_session(&issuer, "carol").await;
    let dave_session = user_session(&issuer, "dave").await;
    let (carols, carols_secret) = api_token(&issuer, &carol_session, "c", 3_600, vec![]).await;
    let (daves, daves_secret) = api_token(&issuer, &dave_session, "d", 3_600, vec![]).await;
    users(&issuer)
        .set_password(bearer(
            v1::SetPasswordRequest {
                user: "dave".into(),
                current_password: String::new(),
                new_password: "dave-has-a-new-password".into(),
            },
            &admin,
        ))
        .await
        .expect("new password");
    users(&issuer)
        .update_user(bearer(set_enabled(&carol.id, false), &admin))
        .await
        .expect("disable");
    verifier.wait_for_sync(&store, issuer.clock.as_ref()).await;
    for (id, secret) in [(&carols.id, &carols_secret), (&daves.id, &daves_secret)] {
        assert_eq!(
            status_of(&issuer, &admin, id).await,
            v1::TokenStatus::Revoked
        );
        assert_eq!(verifier.reason(secret).await, VerifyReason::Revoked);
    }
    let listed = |status: v1::TokenStatus| {
        let mut tokens = issuer.tokens();
        let admin = admin.clone();
        async move {
            let mut ids: Vec<String> = tokens
                .list_tokens(bearer(
                    v1::ListTokensRequest {
                        owner: "-".into(),
                        status: status as i32,
                        r#type: v1::TokenType::Api as i32,
                        ..Default::default()
                    },
                    &admin,
                ))
                .await
                .expect("list")
                .into_inner()
                .tokens
                .into_iter()
                .map(|t| t.id)
                .collect();
            ids.sort();
            ids
        }
    };
    let mut both = vec![carols.id.clone(), daves.id.clone()];
    both.sort();
    assert_eq!(listed(v1::TokenStatus::Revoked).await, both);
    assert!(listed(v1::TokenStatus::Active).await.is_empty());
    // Enabling the owner again revives nothing.
    users(&issuer)
        .update_user(bearer(set_enabled(&carol.id, true), &admin))
        .await
        .expect("enable");
    assert_eq!(
        status_of(&issuer, &admin, &carols.id).await,
        v1::TokenStatus::Revoked
    );
    issuer.stop().await;
}

/// DISABLED, REVOKED and EXPIRED answers name the token, its owner, type
/// and expiry: the signature checked.
async fn refused_answers_keep_their_identity(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let store = issuer.db().store().await;
    let admin = admin_session(&issuer).await;
    let (disabled, disabled_secret) = api_token(&issuer, &admin, "off", 3_600, vec![]).await;
    let (deleted, deleted_secret) = api_token(&issuer, &admin, "gone", 3_600, vec![]).await;
    let (expired, expired_secret) = api_token(&issuer, &admin, "short", 60, vec![]).await;
    issuer
        .tokens()
        .disable_token(bearer(
            v1::DisableTokenRequest {
                token: by_id(&disabled.id),
            },
            &admin,
        ))
        .await
        .expect("disable");
    issuer
        .tokens()
        .delete_token(bearer(
            v1::DeleteTokenRequest {
                token: by_id(&deleted.id),
            },
            &admin,
        ))
        .await
        .expect("delete");
    issuer.clock.advance(chrono::Duration::seconds(200));
    verifier.wait_for_sync(&store, issuer.clock.as_ref()).await;
    for (token, secret, want) in [
        (&disabled, &disabled_secret, VerifyReason::Disabled),
        (&deleted, &deleted_secret, VerifyReason::Revoked),
        (&expired, &expired_secret, VerifyReason::Expired),
    ] {
        let answer = verifier.verify(secret, "", "").await;
        assert_eq!(answer.reason, want as i32, "{answer:?}");
        assert!(!answer.valid);
        assert_eq!(answer.token_id, token.id, "{want:?}");
        assert_eq!(answer.owner_id, token.owner_id, "{want:?}");
        assert_eq!(answer.r#type, v1::TokenType::Api as i32, "{want:?}");
        assert_eq!(answer.expire_time, token.expire_time, "{want:?}");
        assert!(answer.grants.is_empty(), "a refused token holds nothing");
    }
    issuer.stop().await;
}

/// A token signed by a real key whose `iss` names another issuer is
/// refused by the verifier (with a reason naming it) and by the issuer;
/// a verifier told to trust that name accepts it.
async fn tokens_of_another_issuer_are_refused(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let store = issuer.db().store().await;
    let admin = admin_session(&issuer).await;
    let (token, _) = api_token(&issuer, &admin, "mine", 3_600, vec![]).await;
    let row = store
        .signing_key(issuer.clock.now().timestamp())
        .await
        .expect("read")
        .expect("key");
    let signer = Signer::unseal(&issuer.db().kek, &row.kid, &row.sealed_private_key).expect("key");
    let now = issuer.clock.now().timestamp();
    let foreign = jwt::sign(
        &Claims {
            iss: "staging".into(),
            sub: token.owner_id.clone(),
            jti: token.id.clone(),
            iat: now,
            nbf: now,
            exp: now + 600,
            typ: TokenType::Api,
            grants: vec![Grant::everything()],
            ver: 0,
            generation: 1,
        },
        &signer,
    )
    .expect("sign");
    let answer = verifier.verify(&foreign, "", "").await;
    assert_eq!(
        answer.reason,
        VerifyReason::UntrustedIssuer as i32,
        "{answer:?}"
    );
    assert!(answer.message.contains("\"staging\""), "{}", answer.message);
    assert!(
        answer.message.contains("--trusted-issuer"),
        "{}",
        answer.message
    );
    assert_eq!(answer.token_id, token.id, "the signature checked");
    let refused = expect_code(
        issuer
            .tokens()
            .list_tokens(bearer(v1::ListTokensRequest::default(), &foreign))
            .await,
        Code::Unauthenticated,
    );
    assert!(refused.message().contains("staging"), "{refused:?}");

    let mut config = verifier_config(issuer.db());
    config.trusted_issuers = vec!["tessera".into(), "staging".into()];
    let trusting = VerifierHarness::spawn(config, issuer.clock.clone()).await;
    trusting
        .wait_for_health(tonic_health::pb::health_check_response::ServingStatus::Serving)
        .await;
    assert_eq!(trusting.reason(&foreign).await, VerifyReason::Ok);
    issuer.stop().await;
}

/// Audit targets are resource names by id, and an audit page token reused
/// with other filters is refused.
async fn audit_targets_name_ids_and_page_tokens_keep_their_filters(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let admin = admin_session(&issuer).await;
    let carol = new_user(&issuer, &admin, "carol", vec![]).await;
    let (token, _) = api_token(&issuer, &admin, "named", 3_600, vec![]).await;
    users(&issuer)
        .update_user(bearer(set_enabled(&carol.id, false), &admin))
        .await
        .expect("disable");
    let events = audit(&issuer)
        .list_audit_events(bearer(
            v1::ListAuditEventsRequest {
                page_size: 1_000,
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect("audit")
        .into_inner()
        .events;
    let target = |action: &str| {
        events
            .iter()
            .find(|e| e.action == action)
            .map(|e| e.target.clone())
            .unwrap_or_default()
    };
    assert_eq!(target("token.create"), format!("tokens/{}", token.id));
    assert_eq!(target("user.create"), format!("users/{}", carol.id));
    assert_eq!(target("user.update"), format!("users/{}", carol.id));

    let first = audit(&issuer)
        .list_audit_events(bearer(
            v1::ListAuditEventsRequest {
                page_size: 1,
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect("page")
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    let status = expect_code(
        audit(&issuer)
            .list_audit_events(bearer(
                v1::ListAuditEventsRequest {
                    page_size: 1,
                    page_token: first.next_page_token.clone(),
                    action: "token.create".into(),
                    ..Default::default()
                },
                &admin,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert!(status.message().contains("page_token"), "{status:?}");
    audit(&issuer)
        .list_audit_events(bearer(
            v1::ListAuditEventsRequest {
                page_size: 1,
                page_token: first.next_page_token,
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect("the same filters page on");
    // Basic credentials still authenticate after all of this.
    users(&issuer)
        .list_users(basic(
            v1::ListUsersRequest::default(),
            tessera_issuer::ADMIN_USERNAME,
            crate::support::ADMIN_PASSWORD,
        ))
        .await
        .expect("basic");
    issuer.stop().await;
}

on_both_backends!(
    a_same_second_disable_revokes_the_session_issued_in_between,
    a_same_second_password_change_revokes_the_session_before_it,
    giving_grants_back_never_widens_an_existing_token,
    owner_changes_show_as_revoked_at_the_issuer,
    refused_answers_keep_their_identity,
    tokens_of_another_issuer_are_refused,
    audit_targets_name_ids_and_page_tokens_keep_their_filters,
);
