//! RotateToken: a new secret for the same token, the old one retired at
//! once or after an overlap; the version claim, the rotation event, and
//! concurrent rotations.

use crate::on_both_backends;
use crate::support::lifecycle::{
    admin_session, api_token, audited, authenticates, claims, now, secs, token_events, token_row,
};
use crate::support::{Backend, Harness, bearer, by_id, expect_code, grant, violated_fields};
use chrono::Duration;
use tessera_proto::v1::{self, rotate_token_request::Expiration};
use tonic::Code;

fn rotation(id: &str) -> v1::RotateTokenRequest {
    v1::RotateTokenRequest {
        token: by_id(id),
        ..Default::default()
    }
}

async fn rotate(
    issuer: &Harness,
    credential: &str,
    request: v1::RotateTokenRequest,
) -> Result<v1::RotateTokenResponse, tonic::Status> {
    issuer
        .tokens()
        .rotate_token(bearer(request, credential))
        .await
        .map(|r| r.into_inner())
}

async fn a_rotation_replaces_the_secret_at_once(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let session = admin_session(&issuer).await;
    let (token, old) = api_token(
        &issuer,
        &session,
        "ci",
        3_600,
        vec![grant("repositories", &["read"])],
    )
    .await;
    issuer.clock.advance(Duration::minutes(30));
    let t1 = now(&issuer);
    let rotated = rotate(&issuer, &session, rotation(&token.id))
        .await
        .expect("rotate");
    let meta = rotated.token.expect("metadata");
    assert_eq!(meta.id, token.id, "the token keeps its id");
    assert_eq!(meta.name, "ci");
    assert_eq!(
        meta.expire_time.expect("expiry").seconds,
        t1 + 3_600,
        "the same lifetime, from now"
    );
    assert_eq!(
        rotated.previous_secret_expire_time.expect("end").seconds,
        t1
    );
    assert_eq!(claims(&rotated.secret)["ver"], 1);
    assert_eq!(claims(&rotated.secret)["jti"], token.id.as_str());
    assert!(
        claims(&old).get("ver").is_none(),
        "version 0 is not written"
    );

    assert!(
        !authenticates(&issuer, &old).await,
        "the old secret is refused at once"
    );
    assert!(authenticates(&issuer, &rotated.secret).await);
    let events = token_events(&store, &token.id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "rotate_token");
    assert_eq!(
        events[0].1,
        serde_json::json!({"min_version": 1, "effective_at": t1})
    );
    let log = crate::support::lifecycle::events(&store).await;
    assert_eq!(
        log[0].prune_after,
        token.expire_time.expect("expiry").seconds,
        "kept until the old secret expires"
    );
    let row = token_row(&store, &token.id).await.expect("row");
    assert_eq!(row.version, 1);
    assert_eq!(audited(&store, "token.rotate").await[0].0, "ok");

    // A second rotation: version 2; version 1 is refused.
    let again = rotate(&issuer, &session, rotation(&token.id))
        .await
        .expect("again");
    assert_eq!(claims(&again.secret)["ver"], 2);
    assert!(!authenticates(&issuer, &rotated.secret).await);
    assert!(authenticates(&issuer, &again.secret).await);
    issuer.stop().await;
}

async fn an_overlap_keeps_the_old_secret_for_a_while(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let session = admin_session(&issuer).await;
    let (token, old) = api_token(&issuer, &session, "overlapping", 86_400, vec![]).await;
    let t0 = now(&issuer);
    let rotated = rotate(
        &issuer,
        &session,
        v1::RotateTokenRequest {
            overlap: secs(600),
            ..rotation(&token.id)
        },
    )
    .await
    .expect("rotate");
    assert_eq!(
        rotated.previous_secret_expire_time.expect("end").seconds,
        t0 + 600
    );
    assert!(authenticates(&issuer, &old).await, "inside the overlap");
    assert!(authenticates(&issuer, &rotated.secret).await);
    assert_eq!(
        token_events(&store, &token.id).await[0].1["effective_at"],
        t0 + 600
    );
    // A second rotation while the first overlap runs cannot push it later:
    // its own overlap ends no later than the first's.
    issuer.clock.advance(Duration::seconds(300));
    let second = rotate(
        &issuer,
        &session,
        v1::RotateTokenRequest {
            overlap: secs(3_600),
            ..rotation(&token.id)
        },
    )
    .await
    .expect("second");
    assert_eq!(
        second.previous_secret_expire_time.expect("end").seconds,
        t0 + 600
    );
    issuer.clock.advance(Duration::seconds(299));
    assert!(authenticates(&issuer, &old).await);
    assert!(authenticates(&issuer, &rotated.secret).await);
    issuer.clock.advance(Duration::seconds(1));
    assert!(!authenticates(&issuer, &old).await, "the overlap has ended");
    assert!(!authenticates(&issuer, &rotated.secret).await);
    assert!(authenticates(&issuer, &second.secret).await);

    // The overlap is bounded, and never negative.
    for (seconds, want) in [(-1, "must not be negative"), (86_401, "at most 1d")] {
        let status = expect_code(
            rotate(
                &issuer,
                &session,
                v1::RotateTokenRequest {
                    overlap: secs(seconds),
                    ..rotation(&token.id)
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["overlap"]);
        assert!(status.message().contains(want), "{status:?}");
    }
    issuer.stop().await;
}

async fn rotation_widens_and_revives_within_the_owners_grants(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let session = admin_session(&issuer).await;
    crate::support::create_user(
        &issuer,
        "bob",
        "bob-password-long",
        &[("repositories", &["read", "run"]), ("jobs", &["read"])],
    )
    .await;
    let bob = issuer
        .sessions()
        .login(crate::support::basic(
            v1::LoginRequest::default(),
            "bob",
            "bob-password-long",
        ))
        .await
        .expect("bob logs in")
        .into_inner()
        .secret;
    let (token, _) = api_token(
        &issuer,
        &bob,
        "bob's",
        60,
        vec![grant("repositories", &["read"])],
    )
    .await;
    issuer.clock.advance(Duration::minutes(5));
    assert_eq!(
        token_row(&store, &token.id).await.expect("row").expire_time,
        token.expire_time.expect("expiry").seconds
    );
    let t1 = now(&issuer);

    // Expired: a rotation with more grants and a later expiry revives it.
    let revived = rotate(
        &issuer,
        &bob,
        v1::RotateTokenRequest {
            expiration: Some(Expiration::ExpiresIn(prost_types::Duration {
                seconds: 7_200,
                nanos: 0,
            })),
            permissions: vec![grant("jobs", &["read"])],
            ..rotation(&token.id)
        },
    )
    .await
    .expect("revive");
    let meta = revived.token.expect("metadata");
    assert_eq!(meta.status, v1::TokenStatus::Active as i32);
    assert_eq!(meta.expire_time.expect("expiry").seconds, t1 + 7_200);
    assert_eq!(
        meta.permissions,
        vec![grant("jobs", &["read"]), grant("repositories", &["read"])]
    );
    assert!(authenticates(&issuer, &revived.secret).await);

    // Replacing the grants.
    let replaced = rotate(
        &issuer,
        &bob,
        v1::RotateTokenRequest {
            permissions: vec![grant("repositories/Samples", &["run"])],
            replace_permissions: true,
            ..rotation(&token.id)
        },
    )
    .await
    .expect("replace");
    assert_eq!(
        replaced.token.expect("metadata").permissions,
        vec![grant("repositories/Samples", &["run"])]
    );

    // Never beyond the owner's grants, even by an administrator.
    let status = expect_code(
        rotate(
            &issuer,
            &session,
            v1::RotateTokenRequest {
                permissions: vec![grant("repositories", &["write"])],
                ..rotation(&token.id)
            },
        )
        .await,
        Code::PermissionDenied,
    );
    assert!(
        status.message().contains("repositories:write"),
        "{status:?}"
    );
    // Nor past the maximum lifetime; nor a session token.
    let status = expect_code(
        rotate(
            &issuer,
            &bob,
            v1::RotateTokenRequest {
                expiration: Some(Expiration::ExpiresIn(prost_types::Duration {
                    seconds: 400 * 86_400,
                    nanos: 0,
                })),
                ..rotation(&token.id)
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["expires_in"]);
    let session_id = claims(&bob)["jti"].as_str().expect("jti").to_owned();
    let status = expect_code(
        rotate(&issuer, &bob, rotation(&session_id)).await,
        Code::FailedPrecondition,
    );
    assert!(
        status
            .message()
            .contains("session tokens cannot be rotated"),
        "{status:?}"
    );
    let outcomes: Vec<_> = audited(&store, "token.rotate")
        .await
        .into_iter()
        .map(|(o, _, _)| o)
        .collect();
    assert_eq!(
        outcomes,
        [
            "FAILED_PRECONDITION",
            "INVALID_ARGUMENT",
            "PERMISSION_DENIED",
            "ok",
            "ok"
        ]
    );
    issuer.stop().await;
}

async fn a_disabled_token_stays_disabled_through_a_rotation(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let session = admin_session(&issuer).await;
    let (token, _) = api_token(&issuer, &session, "parked", 600, vec![]).await;
    issuer
        .tokens()
        .disable_token(bearer(
            v1::DisableTokenRequest {
                token: by_id(&token.id),
            },
            &session,
        ))
        .await
        .expect("disable");
    let rotated = rotate(
        &issuer,
        &session,
        v1::RotateTokenRequest {
            expiration: Some(Expiration::ExpiresIn(prost_types::Duration {
                seconds: 86_400,
                nanos: 0,
            })),
            ..rotation(&token.id)
        },
    )
    .await
    .expect("rotate");
    assert!(!rotated.token.expect("metadata").enabled);
    assert!(!authenticates(&issuer, &rotated.secret).await);
    // The disabled state is logged again, to last as long as the new secret.
    let log = crate::support::lifecycle::events(&store).await;
    let kinds: Vec<_> = log.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["disable_token", "rotate_token", "disable_token"]);
    assert_eq!(log[2].prune_after, now(&issuer) + 86_400);
    issuer.stop().await;
}

async fn concurrent_rotations_never_leave_two_live_secrets(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let session = admin_session(&issuer).await;
    let (token, _) = api_token(&issuer, &session, "contested", 3_600, vec![]).await;
    let racers: Vec<_> = (0..6)
        .map(|_| {
            let mut client = issuer.tokens();
            let request = bearer(rotation(&token.id), &session);
            tokio::spawn(async move { client.rotate_token(request).await })
        })
        .collect();
    let mut secrets = Vec::new();
    for racer in racers {
        match racer.await.expect("task") {
            Ok(reply) => secrets.push(reply.into_inner().secret),
            Err(status) => assert_eq!(status.code(), Code::Aborted, "{status:?}"),
        }
    }
    assert!(!secrets.is_empty(), "at least one rotation wins");
    let row = token_row(&store, &token.id).await.expect("row");
    assert_eq!(
        row.version as usize,
        secrets.len(),
        "every win is one version, none stacked on a stale read"
    );
    let mut live = 0;
    for secret in &secrets {
        if authenticates(&issuer, secret).await {
            live += 1;
            assert_eq!(claims(secret)["ver"], row.version);
        }
    }
    assert_eq!(live, 1, "exactly one secret works");
    let versions: Vec<_> = token_events(&store, &token.id)
        .await
        .into_iter()
        .map(|(_, d)| d["min_version"].as_i64().expect("version"))
        .collect();
    assert_eq!(versions, (1..=row.version as i64).collect::<Vec<_>>());
    issuer.stop().await;
}

on_both_backends!(
    a_rotation_replaces_the_secret_at_once,
    an_overlap_keeps_the_old_secret_for_a_while,
    rotation_widens_and_revives_within_the_owners_grants,
    a_disabled_token_stays_disabled_through_a_rotation,
    concurrent_rotations_never_leave_two_live_secrets,
);
