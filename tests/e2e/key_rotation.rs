//! KeyService.RotateKey: the next key is published before it signs, the
//! retired key stays published until its tokens have expired, and an
//! optional schedule rotates by itself.

use crate::on_both_backends;
use crate::support::lifecycle::{admin_session, audited, authenticates, now, secs};
use crate::support::{self, Backend, Harness, bearer, expect_code, violated_fields};
use chrono::Duration;
use tessera_issuer::maintenance;
use tessera_proto::v1;
use tonic::Code;

async fn keys(issuer: &Harness) -> Vec<v1::PublicKey> {
    issuer
        .keys()
        .list_keys(v1::ListKeysRequest {})
        .await
        .expect("list keys")
        .into_inner()
        .keys
}

async fn kid_of_new_session(issuer: &Harness) -> (String, String) {
    let reply = issuer
        .sessions()
        .login(support::admin(v1::LoginRequest::default()))
        .await
        .expect("login")
        .into_inner();
    (reply.token.expect("metadata").key_id, reply.secret)
}

async fn the_next_key_is_published_before_it_signs(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let session = admin_session(&issuer).await;
    let first = keys(&issuer).await.remove(0);
    let t0 = now(&issuer);
    let rotated = issuer
        .keys()
        .rotate_key(bearer(
            v1::RotateKeyRequest {
                immediate: false,
                activation_delay: secs(600),
            },
            &session,
        ))
        .await
        .expect("rotate")
        .into_inner()
        .key
        .expect("key");
    assert_eq!(rotated.state, v1::KeyState::Pending as i32);
    assert_eq!(rotated.activate_time.expect("activation").seconds, t0 + 600);

    let published = keys(&issuer).await;
    assert_eq!(published.len(), 2);
    let jwks = issuer
        .keys()
        .list_keys(v1::ListKeysRequest {})
        .await
        .expect("list")
        .into_inner()
        .jwks_json;
    assert!(jwks.contains(&rotated.kid), "pending keys are in the JWKS");
    let (kid, _) = kid_of_new_session(&issuer).await;
    assert_eq!(
        kid, first.kid,
        "the current key signs until the new one activates"
    );

    issuer.clock.advance(Duration::seconds(600));
    let (kid, fresh) = kid_of_new_session(&issuer).await;
    assert_eq!(kid, rotated.kid, "the new key signs once active");
    assert!(authenticates(&issuer, &fresh).await);
    assert!(
        authenticates(&issuer, &session).await,
        "older tokens still check"
    );
    let published = keys(&issuer).await;
    let old = published
        .iter()
        .find(|k| k.kid == first.kid)
        .expect("old key");
    assert_eq!(old.state, v1::KeyState::Retired as i32);
    assert_eq!(old.retire_time.expect("retired").seconds, t0 + 600);
    assert_eq!(
        old.remove_time.expect("removal").seconds,
        t0 + 600 + 365 * 86_400,
        "published until the longest-lived token it signed has expired"
    );
    // The clean-up removes it only then.
    let config = support::issuer_config(issuer.db());
    let report = maintenance::clean_up(&store, &config, t0 + 601)
        .await
        .expect("clean-up");
    assert_eq!(report.keys, 0);
    let report = maintenance::clean_up(&store, &config, t0 + 600 + 365 * 86_400 + 1)
        .await
        .expect("clean-up");
    assert_eq!(report.keys, 1);
    issuer.clock.advance(Duration::days(366));
    assert_eq!(keys(&issuer).await.len(), 1);
    assert_eq!(audited(&store, "key.rotate").await[0].0, "ok");
    issuer.stop().await;
}

async fn an_immediate_rotation_signs_at_once_and_is_guarded(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let session = admin_session(&issuer).await;
    let rotated = issuer
        .keys()
        .rotate_key(bearer(
            v1::RotateKeyRequest {
                immediate: true,
                activation_delay: None,
            },
            &session,
        ))
        .await
        .expect("rotate")
        .into_inner()
        .key
        .expect("key");
    assert_eq!(rotated.state, v1::KeyState::Active as i32);
    let (kid, _) = kid_of_new_session(&issuer).await;
    assert_eq!(kid, rotated.kid);

    let status = expect_code(
        issuer
            .keys()
            .rotate_key(bearer(
                v1::RotateKeyRequest {
                    immediate: false,
                    activation_delay: secs(-1),
                },
                &session,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["activation_delay"]);
    support::create_user(&issuer, "bob", "bob-password-long", &[]).await;
    expect_code(
        issuer
            .keys()
            .rotate_key(support::basic(
                v1::RotateKeyRequest::default(),
                "bob",
                "bob-password-long",
            ))
            .await,
        Code::PermissionDenied,
    );
    issuer.stop().await;
}

async fn a_schedule_rotates_by_itself_once_per_interval(backend: Backend) {
    let db = support::TestDb::new(backend).await;
    let mut config = support::issuer_config(&db);
    config.cleanup_interval = std::time::Duration::from_millis(50);
    config.key_rotation_interval = Some(std::time::Duration::from_secs(86_400));
    let issuer = Harness::start_with(db, config).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        keys(&issuer).await.len(),
        1,
        "the first key is new: no rotation due"
    );
    issuer.clock.advance(Duration::days(1));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while keys(&issuer).await.len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no scheduled rotation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let published = keys(&issuer).await;
    assert_eq!(published.len(), 2, "one rotation per interval");
    assert_eq!(published[1].state, v1::KeyState::Pending as i32);
    issuer.stop().await;
}

on_both_backends!(
    the_next_key_is_published_before_it_signs,
    an_immediate_rotation_signs_at_once_and_is_guarded,
    a_schedule_rotates_by_itself_once_per_interval,
);
