//! The verifier beside a real issuer: verification, revocation sync,
//! bad input, key rotation, health and fail-closed staleness.

use crate::on_both_backends;
use crate::support::verifier::{VerifierHarness, verifier_config};
use crate::support::{self, Backend, Harness, TestDb, admin, by_id, grant, proxy::Proxy};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tessera_core::keys::Signer;
use tessera_core::{Claims, Clock, Grant, TokenType, jwt};
use tessera_proto::v1::{self, VerifyReason};
use tessera_store::revocation::{EventKind, NewRevocation};
use tonic_health::pb::health_check_response::ServingStatus;

async fn create(issuer: &Harness, name: &str, grants: Vec<v1::Grant>) -> (v1::Token, String) {
    let reply = issuer
        .create_token(v1::CreateTokenRequest {
            name: name.into(),
            permissions: grants,
            ..Default::default()
        })
        .await
        .expect("create");
    (reply.token.expect("metadata"), reply.secret)
}

/// Appends a revocation event the way the issuer does.
async fn append(issuer: &Harness, event: NewRevocation) {
    let store = issuer.db().store().await;
    store
        .append_revocation(issuer.clock.now().timestamp(), event)
        .await
        .expect("append");
}

async fn a_token_verifies_and_revocations_reach_the_verifier(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let (token, secret) = create(
        &issuer,
        "checked",
        vec![grant("repositories/Samples", &["read", "run"])],
    )
    .await;

    let answer = verifier.verify(&secret, "", "").await;
    assert!(answer.valid, "{answer:?}");
    assert_eq!(answer.reason, VerifyReason::Ok as i32);
    assert_eq!(answer.token_id, token.id);
    assert_eq!(answer.owner_id, token.owner_id);
    assert_eq!(answer.r#type, v1::TokenType::Api as i32);
    assert_eq!(answer.grants, token.permissions);
    assert_eq!(answer.expire_time, token.expire_time);

    for header in [
        format!("Bearer {secret}"),
        format!("fmetoken token={secret}"),
    ] {
        let answer = verifier
            .client()
            .verify(v1::VerifyRequest {
                authorization: header,
                ..Default::default()
            })
            .await
            .expect("verify")
            .into_inner();
        assert!(answer.valid, "{answer:?}");
    }

    // Grants: an item grant covers that item's actions only.
    assert!(
        verifier
            .verify(&secret, "repositories/Samples", "run")
            .await
            .valid
    );
    let denied = verifier
        .verify(&secret, "repositories/Samples", "write")
        .await;
    assert_eq!(denied.reason, VerifyReason::PermissionDenied as i32);
    assert!(
        denied.message.contains("repositories/Samples:write"),
        "{denied:?}"
    );
    let type_level = verifier.verify(&secret, "repositories", "read").await;
    assert_eq!(type_level.reason, VerifyReason::PermissionDenied as i32);

    // Disable, enable, delete: each reaches the verifier by itself.
    let event = |kind| {
        NewRevocation::token(
            kind,
            &token.id,
            &token.owner_id,
            token.expire_time.as_ref().map_or(0, |t| t.seconds),
        )
    };
    append(&issuer, event(EventKind::DisableToken)).await;
    verifier
        .wait_for_reason(&secret, VerifyReason::Disabled)
        .await;
    append(&issuer, event(EventKind::EnableToken)).await;
    verifier.wait_for_reason(&secret, VerifyReason::Ok).await;
    issuer
        .tokens()
        .delete_token(admin(v1::DeleteTokenRequest {
            token: by_id(&token.id),
        }))
        .await
        .expect("delete");
    verifier
        .wait_for_reason(&secret, VerifyReason::Revoked)
        .await;

    // Narrowing takes grants away without a new secret.
    let (narrow, narrow_secret) = create(
        &issuer,
        "narrowed",
        vec![grant("jobs", &["read", "manage"])],
    )
    .await;
    let read_only = [Grant {
        resource: "jobs".into(),
        actions: vec!["read".into()],
    }];
    let exp = narrow.expire_time.as_ref().map_or(0, |t| t.seconds);
    append(
        &issuer,
        NewRevocation::narrow_token(&narrow.id, &narrow.owner_id, None, Some(&read_only), exp),
    )
    .await;
    let started = tokio::time::Instant::now();
    while verifier
        .verify(&narrow_secret, "jobs", "manage")
        .await
        .valid
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "narrowing did not arrive"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(verifier.verify(&narrow_secret, "jobs", "read").await.valid);
    issuer.stop().await;
}

/// A time cut-off written by a version before generations binds the tokens
/// of that time (which carry no generation), and no token issued since.
async fn a_legacy_time_cut_off_binds_only_tokens_without_a_generation(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let (current, current_secret) = create(&issuer, "current", vec![]).await;
    let now = issuer.clock.now().timestamp();
    let legacy = Claims {
        iss: "tessera".into(),
        sub: current.owner_id.clone(),
        jti: uuid::Uuid::now_v7().to_string(),
        iat: now - 2,
        nbf: now - 2,
        exp: now + 3_600,
        typ: TokenType::Api,
        grants: vec![Grant::everything()],
        ver: 0,
        generation: 0,
    };
    let legacy_secret = tessera_core::jwt::sign(&legacy, &signer(&issuer).await).expect("sign");
    assert_eq!(verifier.reason(&legacy_secret).await, VerifyReason::Ok);
    append(
        &issuer,
        NewRevocation::revoke_user_before(&current.owner_id, now, now + 86_400),
    )
    .await;
    verifier
        .wait_for_reason(&legacy_secret, VerifyReason::Revoked)
        .await;
    assert_eq!(
        verifier.reason(&current_secret).await,
        VerifyReason::Ok,
        "a token carrying a generation is ordered by it, not by time"
    );
    issuer.stop().await;
}

async fn a_new_signing_key_is_accepted_at_once(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let (old, old_secret) = create(&issuer, "before", vec![]).await;
    assert_eq!(verifier.reason(&old_secret).await, VerifyReason::Ok);

    // A key activated a second later than the first (ties are not rotations).
    issuer.clock.advance(Duration::seconds(1));
    let store = issuer.db().store().await;
    let now = issuer.clock.now().timestamp();
    let pair = tessera_core::keys::generate(&issuer.db().kek).expect("key");
    let new_kid = pair.kid.clone();
    store
        .insert_key(now, pair, now, "tessera")
        .await
        .expect("insert key");
    let (new, new_secret) = create(&issuer, "after", vec![]).await;
    assert_eq!(new.key_id, new_kid, "the issuer signs with the newest key");
    assert_ne!(new.key_id, old.key_id);
    assert_eq!(
        verifier.reason(&new_secret).await,
        VerifyReason::Ok,
        "no wait for the next key refresh"
    );
    assert_eq!(
        verifier.reason(&old_secret).await,
        VerifyReason::Ok,
        "old tokens stay valid"
    );
    issuer.stop().await;
}

/// The issuer's current signing key, unsealed with the test's KEK.
async fn signer(issuer: &Harness) -> Signer {
    let store = issuer.db().store().await;
    let row = store
        .signing_key(issuer.clock.now().timestamp())
        .await
        .expect("read")
        .expect("a signing key");
    Signer::unseal(&issuer.db().kek, &row.kid, &row.sealed_private_key).expect("unseal")
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

async fn bad_input_gets_its_own_reason(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let (token, secret) = create(&issuer, "genuine", vec![]).await;
    let signer = signer(&issuer).await;
    let kid = token.key_id.clone();
    let now = issuer.clock.now().timestamp();
    let claims = |iat: i64, nbf: i64, exp: i64| Claims {
        iss: "tessera".into(),
        sub: token.owner_id.clone(),
        jti: uuid::Uuid::now_v7().to_string(),
        iat,
        nbf,
        exp,
        typ: TokenType::Api,
        grants: vec![Grant::everything()],
        ver: 0,
        generation: 1,
    };
    let parts: Vec<&str> = secret.split('.').collect();
    let forged_payload = b64(serde_json::to_string(&claims(now, now, now + 99_999))
        .expect("json")
        .as_bytes());
    let mut signature: Vec<char> = parts[2].chars().collect();
    signature[10] = if signature[10] == 'A' { 'B' } else { 'A' };
    let signature: String = signature.into_iter().collect();
    let public_key = issuer
        .keys()
        .list_keys(v1::ListKeysRequest {})
        .await
        .expect("keys")
        .into_inner()
        .keys[0]
        .public_key
        .clone();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some(kid.clone());
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &claims(now, now, now + 600),
        &EncodingKey::from_secret(public_key.as_bytes()).expect("hmac key"),
    )
    .expect("hs256");

    let cases: Vec<(&str, String, VerifyReason)> = vec![
        ("empty", String::new(), VerifyReason::Malformed),
        ("not a JWT", "hello world".into(), VerifyReason::Malformed),
        ("1 MiB", "a".repeat(1024 * 1024), VerifyReason::Malformed),
        (
            "bad base64 header",
            format!("!!.{}.{}", parts[1], parts[2]),
            VerifyReason::Malformed,
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(format!(r#"{{"alg":"none","kid":"{kid}"}}"#).as_bytes()),
                parts[1]
            ),
            VerifyReason::BadSignature,
        ),
        (
            "HS256 with the public key as secret",
            hs256,
            VerifyReason::BadSignature,
        ),
        (
            "RS256",
            format!(
                "{}.{}.{}",
                b64(format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#).as_bytes()),
                parts[1],
                parts[2]
            ),
            VerifyReason::BadSignature,
        ),
        (
            "tampered payload",
            format!("{}.{forged_payload}.{}", parts[0], parts[2]),
            VerifyReason::BadSignature,
        ),
        (
            "tampered signature",
            format!("{}.{}.{signature}", parts[0], parts[1]),
            VerifyReason::BadSignature,
        ),
        (
            "kid that is no key",
            format!(
                "{}.{}.{}",
                b64(br#"{"alg":"EdDSA","kid":"no-such-key"}"#),
                parts[1],
                parts[2]
            ),
            VerifyReason::UnknownKey,
        ),
        (
            "future nbf",
            jwt::sign(&claims(now, now + 3_600, now + 7_200), &signer).expect("sign"),
            VerifyReason::NotYetValid,
        ),
        (
            "expired",
            jwt::sign(&claims(now - 7_200, now - 7_200, now - 3_600), &signer).expect("sign"),
            VerifyReason::Expired,
        ),
    ];
    for (case, bad, want) in cases {
        let answer = verifier.verify(&bad, "", "").await;
        assert!(!answer.valid, "{case}");
        assert_eq!(
            VerifyReason::try_from(answer.reason),
            Ok(want),
            "{case}: {}",
            answer.message
        );
        // Once the signature has checked, the answer names the token.
        let signed = matches!(want, VerifyReason::Expired | VerifyReason::NotYetValid);
        assert_eq!(
            !answer.token_id.is_empty(),
            signed,
            "{case}: the identity is given exactly when the signature checked"
        );
        if signed {
            assert_eq!(answer.owner_id, token.owner_id, "{case}");
            assert_eq!(answer.r#type, v1::TokenType::Api as i32, "{case}");
            assert!(answer.expire_time.is_some(), "{case}");
        }
    }
    let unknown_scheme = verifier
        .client()
        .verify(v1::VerifyRequest {
            authorization: format!("Digest {secret}"),
            ..Default::default()
        })
        .await
        .expect("an answer, not an error")
        .into_inner();
    assert_eq!(unknown_scheme.reason, VerifyReason::Malformed as i32);
    let half_a_question = verifier
        .client()
        .verify(v1::VerifyRequest {
            token: secret.clone(),
            resource: "jobs".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(
        half_a_question.expect_err("resource without action").code(),
        tonic::Code::InvalidArgument
    );

    // Over the transport's message limit: refused before the handler.
    let huge = verifier
        .client()
        .verify(v1::VerifyRequest {
            token: "a".repeat(3 * 1024 * 1024),
            ..Default::default()
        })
        .await;
    assert!(huge.is_err(), "a 3 MiB request is refused by the transport");

    // A token seen before (cached signature) still expires on time.
    assert_eq!(verifier.reason(&secret).await, VerifyReason::Ok);
    issuer.clock.advance(Duration::days(8));
    verifier
        .wait_for_reason(&secret, VerifyReason::Expired)
        .await;
    issuer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_waits_for_the_first_load_and_fails_closed_when_stale() {
    // The verifier starts first, on a database the issuer has not set up.
    let db = TestDb::new(Backend::Sqlite).await;
    let clock = std::sync::Arc::new(tessera_core::ManualClock::new(support::now()));
    let verifier = VerifierHarness::spawn(verifier_config(&db), clock.clone()).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(verifier.health().await, ServingStatus::NotServing);
    assert_eq!(verifier.reason("a.b.c").await, VerifyReason::Stale);

    let config = support::issuer_config(&db);
    let issuer = Harness::start_with(db, config).await;
    clock.set(issuer.clock.now());
    verifier.wait_for_health(ServingStatus::Serving).await;
    let (_, secret) = create(&issuer, "fresh", vec![]).await;
    assert_eq!(verifier.reason(&secret).await, VerifyReason::Ok);

    // The revocation log becomes unreadable; past the staleness limit the
    // verifier refuses everything, and says why.
    let store = issuer.db().store().await;
    store
        .execute_unprepared("ALTER TABLE revocation_events RENAME TO revocation_events_away")
        .await
        .expect("rename");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    clock.advance(Duration::seconds(31));
    verifier.wait_for_health(ServingStatus::NotServing).await;
    let stale = verifier.verify(&secret, "", "").await;
    assert_eq!(stale.reason, VerifyReason::Stale as i32);
    assert!(stale.message.contains("old"), "{stale:?}");

    store
        .execute_unprepared("ALTER TABLE revocation_events_away RENAME TO revocation_events")
        .await
        .expect("rename back");
    verifier.wait_for_health(ServingStatus::Serving).await;
    assert_eq!(verifier.reason(&secret).await, VerifyReason::Ok);
    issuer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_postgres_turns_the_verifier_stale_until_it_returns() {
    let Some(url) = support::db::postgres_url() else {
        support::db::say_skipped(
            "verifier::an_unreachable_postgres_turns_the_verifier_stale_until_it_returns",
        );
        return;
    };
    let issuer = Harness::start(Backend::Postgres).await;
    let proxy = Proxy::start(crate::health::postgres_addr(&url).await).await;
    let mut config = verifier_config(issuer.db());
    config.database_url = crate::health::rewrite_host(&url, proxy.addr);
    let verifier = VerifierHarness::spawn(config, issuer.clock.clone()).await;
    verifier.wait_for_health(ServingStatus::Serving).await;
    let (_, secret) = create(&issuer, "through the proxy", vec![]).await;
    assert_eq!(verifier.reason(&secret).await, VerifyReason::Ok);

    proxy.cut().await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    issuer.clock.advance(Duration::seconds(31));
    verifier.wait_for_health(ServingStatus::NotServing).await;
    assert_eq!(verifier.reason(&secret).await, VerifyReason::Stale);

    proxy.restore();
    verifier.wait_for_health(ServingStatus::Serving).await;
    assert_eq!(verifier.reason(&secret).await, VerifyReason::Ok);
    issuer.stop().await;
}

async fn a_starting_verifier_loads_the_log_in_order(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let (disabled, disabled_secret) = create(&issuer, "disabled", vec![]).await;
    let (flipped, flipped_secret) = create(&issuer, "flipped", vec![]).await;
    let (revoked, revoked_secret) = create(&issuer, "revoked", vec![]).await;
    let (_, untouched_secret) = create(&issuer, "untouched", vec![]).await;
    let exp = |t: &v1::Token| t.expire_time.as_ref().map_or(0, |e| e.seconds);
    let event = |kind, t: &v1::Token| NewRevocation::token(kind, &t.id, &t.owner_id, exp(t));
    // Enough other events that the loader's sequence ranges split the
    // disable and the enable of `flipped` apart.
    for i in 0..6 {
        let id = format!("01900000-0000-7000-8000-{i:012x}");
        append(
            &issuer,
            NewRevocation::token(
                EventKind::RevokeToken,
                &id,
                &disabled.owner_id,
                exp(&disabled),
            ),
        )
        .await;
    }
    append(&issuer, event(EventKind::DisableToken, &flipped)).await;
    for i in 6..12 {
        let id = format!("01900000-0000-7000-8000-{i:012x}");
        append(
            &issuer,
            NewRevocation::token(
                EventKind::RevokeToken,
                &id,
                &disabled.owner_id,
                exp(&disabled),
            ),
        )
        .await;
    }
    append(&issuer, event(EventKind::EnableToken, &flipped)).await;
    append(&issuer, event(EventKind::DisableToken, &disabled)).await;
    append(&issuer, event(EventKind::RevokeToken, &revoked)).await;
    // An event whose tokens are all long expired is not loaded at all.
    append(
        &issuer,
        NewRevocation::token(EventKind::DisableToken, &revoked.id, &revoked.owner_id, 1),
    )
    .await;

    let verifier = VerifierHarness::beside(&issuer).await;
    assert_eq!(
        verifier.reason(&disabled_secret).await,
        VerifyReason::Disabled
    );
    assert_eq!(
        verifier.reason(&flipped_secret).await,
        VerifyReason::Ok,
        "enable came after disable"
    );
    assert_eq!(
        verifier.reason(&revoked_secret).await,
        VerifyReason::Revoked
    );
    assert_eq!(verifier.reason(&untouched_secret).await, VerifyReason::Ok);
    let _ = flipped;
    issuer.stop().await;
}

on_both_backends!(
    a_starting_verifier_loads_the_log_in_order,
    a_token_verifies_and_revocations_reach_the_verifier,
    a_legacy_time_cut_off_binds_only_tokens_without_a_generation,
    a_new_signing_key_is_accepted_at_once,
    bad_input_gets_its_own_reason,
);

/// A verifier whose task is aborted unfinished (as tests and `tessera dev`
/// do) stops its sync loop too: nothing keeps its state, and so its store
/// pool, alive. Found when a long differential run on PostgreSQL ran out
/// of connections to leaked verifiers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_verifier_leaves_no_sync_loop_behind() {
    let issuer = Harness::start(Backend::Sqlite).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let state = std::sync::Arc::downgrade(&verifier.shared);
    drop(verifier);
    let started = std::time::Instant::now();
    while state.upgrade().is_some() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the verifier's background tasks still hold its state"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    issuer.stop().await;
}
