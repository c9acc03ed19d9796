//! SessionService.ExtendSession and Logout, and the clean-up task that
//! deletes old sessions and prunes the revocation log.

use crate::on_both_backends;
use crate::support::lifecycle::{
    admin_session, api_token, audited, authenticates, claims, events, now, secs, token_row,
};
use crate::support::{self, Backend, Harness, admin, bearer, expect_code, violated_fields};
use chrono::Duration;
use tessera_issuer::maintenance;
use tessera_proto::v1;
use tonic::Code;

async fn web_login(issuer: &Harness) -> v1::LoginResponse {
    issuer
        .sessions()
        .login(admin(v1::LoginRequest {
            kind: v1::SessionKind::Web as i32,
            expires_in: None,
        }))
        .await
        .expect("web login")
        .into_inner()
}

async fn extend(
    issuer: &Harness,
    secret: &str,
    expires_in: Option<prost_types::Duration>,
) -> Result<v1::ExtendSessionResponse, tonic::Status> {
    issuer
        .sessions()
        .extend_session(bearer(v1::ExtendSessionRequest { expires_in }, secret))
        .await
        .map(|r| r.into_inner())
}

async fn a_live_session_slides_and_an_expired_one_does_not(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let web = web_login(&issuer).await;
    let id = web.token.expect("metadata").id;
    issuer.clock.advance(Duration::minutes(20));
    let t1 = now(&issuer);
    let extended = extend(&issuer, &web.secret, None).await.expect("extend");
    let meta = extended.token.expect("metadata");
    assert_eq!(meta.id, id, "the same session");
    assert_eq!(
        meta.expire_time.expect("expiry").seconds,
        t1 + 1_800,
        "30 min from now"
    );
    assert_ne!(extended.secret, web.secret);
    assert_eq!(claims(&extended.secret)["exp"], t1 + 1_800);
    assert_eq!(claims(&extended.secret)["jti"], id.as_str());
    // The previous secret keeps its own expiry; the new one outlives it.
    assert!(authenticates(&issuer, &web.secret).await);
    issuer.clock.advance(Duration::minutes(20));
    assert!(authenticates(&issuer, &extended.secret).await);
    assert!(
        !authenticates(&issuer, &web.secret).await,
        "the old secret expired"
    );

    // Asked-for lifetimes are bounded like Login's.
    let status = expect_code(
        extend(&issuer, &extended.secret, secs(2 * 86_400)).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["expires_in"]);
    let shorter = extend(&issuer, &extended.secret, secs(60))
        .await
        .expect("extend");
    assert_eq!(
        shorter.token.expect("metadata").expire_time,
        meta.expire_time,
        "extending never shortens"
    );

    // Expired (even inside the clock leeway): log in again.
    issuer
        .clock
        .advance(Duration::minutes(10) + Duration::seconds(30));
    let status = expect_code(
        extend(&issuer, &extended.secret, None).await,
        Code::Unauthenticated,
    );
    assert!(status.message().contains("log in again"), "{status:?}");
    issuer.clock.advance(Duration::minutes(5));
    expect_code(
        extend(&issuer, &extended.secret, None).await,
        Code::Unauthenticated,
    );

    // Only a session can be extended.
    let session = admin_session(&issuer).await;
    let (_, api) = api_token(&issuer, &session, "not a session", 3_600, vec![]).await;
    let status = expect_code(extend(&issuer, &api, None).await, Code::FailedPrecondition);
    assert!(status.message().contains("session token"), "{status:?}");
    let status = expect_code(
        issuer
            .sessions()
            .extend_session(admin(v1::ExtendSessionRequest::default()))
            .await,
        Code::FailedPrecondition,
    );
    assert!(status.message().contains("not a password"), "{status:?}");
    let outcomes: Vec<_> = audited(&store, "session.extend")
        .await
        .into_iter()
        .map(|(o, _, _)| o)
        .collect();
    assert_eq!(
        outcomes,
        [
            "FAILED_PRECONDITION",
            "FAILED_PRECONDITION",
            "UNAUTHENTICATED",
            "ok",
            "INVALID_ARGUMENT",
            "ok"
        ]
    );
    issuer.stop().await;
}

async fn logout_revokes_the_calling_session(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let web = web_login(&issuer).await;
    let id = web.token.expect("metadata").id;
    let extended = extend(&issuer, &web.secret, None).await.expect("extend");
    issuer
        .sessions()
        .logout(bearer(v1::LogoutRequest {}, &web.secret))
        .await
        .expect("logout");
    assert!(!authenticates(&issuer, &web.secret).await);
    assert!(
        !authenticates(&issuer, &extended.secret).await,
        "every secret of the session is revoked"
    );
    assert!(token_row(&store, &id).await.is_none());
    let log = events(&store).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].kind, "revoke_token");
    assert_eq!(log[0].token_id.as_deref(), Some(id.as_str()));
    assert_eq!(audited(&store, "session.logout").await[0].0, "ok");
    expect_code(
        issuer
            .sessions()
            .logout(bearer(v1::LogoutRequest {}, &web.secret))
            .await,
        Code::Unauthenticated,
    );
    let status = expect_code(
        issuer.sessions().logout(admin(v1::LogoutRequest {})).await,
        Code::FailedPrecondition,
    );
    assert!(status.message().contains("session"), "{status:?}");
    issuer.stop().await;
}

async fn clean_up_deletes_old_sessions_and_prunes_the_log(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let config = support::issuer_config(issuer.db());
    let session = admin_session(&issuer).await;
    let web = web_login(&issuer).await;
    let web_id = web.token.expect("metadata").id;
    let (api, _) = api_token(&issuer, &session, "short", 600, vec![]).await;
    let (long, _) = api_token(&issuer, &session, "long", 30 * 86_400, vec![]).await;
    for id in [&api.id, &long.id] {
        issuer
            .tokens()
            .disable_token(bearer(
                v1::DisableTokenRequest {
                    token: crate::support::by_id(id),
                },
                &session,
            ))
            .await
            .expect("disable");
    }
    let pass = |at: i64| {
        let store = store.clone();
        let config = config.clone();
        async move {
            maintenance::clean_up(&store, &config, at)
                .await
                .expect("clean-up")
        }
    };
    let t0 = now(&issuer);
    let report = pass(t0).await;
    assert_eq!(
        (report.sessions, report.revocations),
        (0, 0),
        "nothing is old yet"
    );

    // A day on: the sessions have expired, but are kept for a week; the
    // short token's event is prunable, the long one's is not.
    let report = pass(t0 + 86_400 + 1).await;
    assert_eq!((report.sessions, report.revocations), (0, 1));
    assert!(token_row(&store, &web_id).await.is_some());
    let log = events(&store).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].token_id.as_deref(), Some(long.id.as_str()));

    // A week after expiry: both sessions go; API tokens stay, expired or not.
    let report = pass(t0 + 86_400 + 7 * 86_400 + 1).await;
    assert_eq!(report.sessions, 2);
    assert!(token_row(&store, &web_id).await.is_none());
    assert!(token_row(&store, &api.id).await.is_some());
    // Running it again, or in another replica at once, is harmless.
    let (a, b) = tokio::join!(pass(t0 + 8 * 86_400 + 1), pass(t0 + 8 * 86_400 + 1));
    assert_eq!(a.sessions + b.sessions, 0);
    let report = pass(t0 + 31 * 86_400).await;
    assert_eq!(report.revocations, 1);
    assert!(events(&store).await.is_empty());
    assert_eq!(
        store.last_revocation_seq().await.expect("seq"),
        2,
        "numbering never restarts"
    );
    issuer.stop().await;
}

async fn the_issuer_runs_the_clean_up_by_itself(backend: Backend) {
    let db = support::TestDb::new(backend).await;
    let mut config = support::issuer_config(&db);
    config.cleanup_interval = std::time::Duration::from_millis(50);
    config.session_retention = std::time::Duration::from_secs(60);
    let issuer = Harness::start_with(db, config).await;
    let store = issuer.db().store().await;
    let web = web_login(&issuer).await;
    let id = web.token.expect("metadata").id;
    issuer.clock.advance(Duration::minutes(32));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while token_row(&store, &id).await.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the clean-up task did not run"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    issuer.stop().await;
}

on_both_backends!(
    a_live_session_slides_and_an_expired_one_does_not,
    logout_revokes_the_calling_session,
    clean_up_deletes_old_sessions_and_prunes_the_log,
    the_issuer_runs_the_clean_up_by_itself,
);
