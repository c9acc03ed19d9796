//! SessionService.Login: HTTP Basic credentials for a session token.

use crate::on_both_backends;
use crate::support::{self, Backend, Harness, basic, expect_code, with_authorization};
use tessera_core::Clock;
use tessera_proto::v1;
use tessera_store::audit::AuditFilter;
use tonic::Code;

async fn login_returns_a_session_of_the_asked_kind(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let now = issuer.clock.now().timestamp();
    let cases = [
        (
            v1::SessionKind::Unspecified,
            None,
            3_600,
            v1::SessionKind::Api,
        ),
        (v1::SessionKind::Api, None, 3_600, v1::SessionKind::Api),
        (v1::SessionKind::Web, None, 1_800, v1::SessionKind::Web),
        (
            v1::SessionKind::TokenService,
            None,
            300,
            v1::SessionKind::TokenService,
        ),
        (
            v1::SessionKind::TokenService,
            Some(120),
            120,
            v1::SessionKind::TokenService,
        ),
    ];
    for (kind, expires_in, life, shown_kind) in cases {
        let request = v1::LoginRequest {
            kind: kind as i32,
            expires_in: expires_in.map(|s| prost_types::Duration {
                seconds: s,
                nanos: 0,
            }),
        };
        let reply = issuer
            .sessions()
            .login(support::admin(request))
            .await
            .expect("login")
            .into_inner();
        let token = reply.token.expect("metadata");
        assert_eq!(token.r#type, v1::TokenType::Session as i32);
        assert_eq!(token.session_kind, shown_kind as i32, "{kind:?}");
        assert_eq!(token.owner_name, "admin");
        assert!(token.all_permissions);
        assert_eq!(
            token.expire_time.expect("expiry").seconds,
            now + life,
            "{kind:?}"
        );
        assert_eq!(
            reply.secret.split('.').count(),
            3,
            "the secret is a compact JWS"
        );
    }
    issuer.stop().await;
}

async fn login_refuses_bad_credentials_alike(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let mut sessions = issuer.sessions();

    let missing = sessions.login(v1::LoginRequest::default()).await;
    expect_code(missing, Code::Unauthenticated);
    for garbled in ["Basic !!!not-base64", "Basic", "Digest abc", "Basic OnB3"] {
        let result = sessions
            .login(with_authorization(v1::LoginRequest::default(), garbled))
            .await;
        expect_code(result, Code::Unauthenticated);
    }
    let with_token = sessions
        .login(support::bearer(v1::LoginRequest::default(), "a.b.c"))
        .await;
    let status = expect_code(with_token, Code::Unauthenticated);
    assert!(status.message().contains("Basic"), "{status:?}");

    let wrong_password = expect_code(
        sessions
            .login(basic(
                v1::LoginRequest::default(),
                "admin",
                "not the password",
            ))
            .await,
        Code::Unauthenticated,
    );
    let unknown_user = expect_code(
        sessions
            .login(basic(
                v1::LoginRequest::default(),
                "nobody",
                "not the password",
            ))
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(
        wrong_password.message(),
        unknown_user.message(),
        "no hint which users exist"
    );
    assert!(!wrong_password.message().contains("not the password"));

    let store = issuer.db().store().await;
    let failures = store
        .list_audit(AuditFilter {
            action: Some("session.login".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("audit");
    let denied: Vec<_> = failures.iter().filter(|e| e.outcome == "denied").collect();
    assert_eq!(
        denied.len(),
        2,
        "both failed logins are audited: {failures:?}"
    );
    assert!(
        denied
            .iter()
            .all(|e| !e.detail.contains("not the password"))
    );
    issuer.stop().await;
}

async fn login_refuses_bad_lifetimes(backend: Backend) {
    let issuer = Harness::start(backend).await;
    for seconds in [-5, 0, 2 * 86_400] {
        let request = v1::LoginRequest {
            kind: v1::SessionKind::TokenService as i32,
            expires_in: Some(prost_types::Duration { seconds, nanos: 0 }),
        };
        let status = expect_code(
            issuer.sessions().login(support::admin(request)).await,
            Code::InvalidArgument,
        );
        assert_eq!(
            support::violated_fields(&status),
            ["expires_in"],
            "{seconds}"
        );
    }
    issuer.stop().await;
}

on_both_backends!(
    login_returns_a_session_of_the_asked_kind,
    login_refuses_bad_credentials_alike,
    login_refuses_bad_lifetimes,
);
