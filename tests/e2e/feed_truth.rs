//! One source of truth: a verifier never answers from one log while
//! following another; the feed admits only holders of its secret, loopback
//! or not; a feed that cannot read its log says so; and `https://`
//! upstreams are followed over TLS and mTLS, or refused loudly.

use crate::on_both_backends;
use crate::support::feed::{admin_token, wait_until};
use crate::support::pki::Pki;
use crate::support::verifier::{VerifierHarness, verifier_config};
use crate::support::{
    Backend, FEED_SECRET, Harness, TestDb, admin, bearer, by_id, expect_code, issuer_config,
};
use std::sync::Arc;
use std::time::Duration;
use tessera_core::Clock;
use tessera_proto::v1::revocation_feed_service_client::RevocationFeedServiceClient;
use tessera_proto::v1::token_service_client::TokenServiceClient;
use tessera_proto::v1::{self, VerifyReason};
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::health_check_response::ServingStatus;

on_both_backends!(
    a_verifier_whose_feed_is_another_log_refuses_to_serve,
    a_feed_that_cannot_read_its_log_answers_unavailable
);

/// The issue's own sequence: a verifier whose store is one database,
/// following an issuer on another, with a disabled token in its store.
/// It must not answer OK; it says why and reports NOT_SERVING.
async fn a_verifier_whose_feed_is_another_log_refuses_to_serve(backend: Backend) {
    let ours = Harness::start(backend).await;
    let theirs = Harness::start(backend).await;
    let (token, secret) = admin_token(&ours, "disabled here").await;
    ours.tokens()
        .disable_token(admin(v1::DisableTokenRequest {
            token: by_id(&token.id),
        }))
        .await
        .expect("disable");
    let our_log = ours.db().store().await.log_id().await.expect("log id");
    let their_log = theirs.db().store().await.log_id().await.expect("log id");
    assert_ne!(our_log, their_log, "each database is its own log");

    let mut config = verifier_config(ours.db());
    config.revocation_feed = format!("http://{}", theirs.addr);
    let verifier = VerifierHarness::spawn(config, ours.clock.clone()).await;
    wait_until("the mismatch is seen", || {
        verifier.shared.metrics.wrong_log.get() == 1
    })
    .await;
    assert_eq!(verifier.health().await, ServingStatus::NotServing);
    let answer = verifier.verify(&secret, "", "").await;
    assert!(!answer.valid, "{answer:?}");
    assert_eq!(answer.reason, VerifyReason::Stale as i32);
    assert!(
        answer.message.contains(&our_log) && answer.message.contains(&their_log),
        "names both logs: {}",
        answer.message
    );
    // It stays refused: nothing it does later makes it trust either log.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(verifier.health().await, ServingStatus::NotServing);
    assert_eq!(verifier.reason(&secret).await, VerifyReason::Stale);

    // The same verifier pointed at its own issuer serves, and is right.
    let mut config = verifier_config(ours.db());
    config.revocation_feed = format!("http://{}", ours.addr);
    let right = VerifierHarness::spawn(config, ours.clock.clone()).await;
    right.wait_for_health(ServingStatus::Serving).await;
    assert_eq!(right.reason(&secret).await, VerifyReason::Disabled);
    assert_eq!(right.shared.metrics.wrong_log.get(), 0);
    theirs.stop().await;
    ours.stop().await;
}

/// An issuer whose log is unreadable ends its streams and answers new ones
/// UNAVAILABLE instead of "caught up"; it serves again once it reads.
async fn a_feed_that_cannot_read_its_log_answers_unavailable(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let watch = || async {
        RevocationFeedServiceClient::new(issuer.channel.clone())
            .watch_revocations(bearer(
                v1::WatchRevocationsRequest { after_seq: 0 },
                FEED_SECRET,
            ))
            .await
    };
    let mut open = watch()
        .await
        .expect("a readable log is served")
        .into_inner();
    let first = open.message().await.expect("a message").expect("open");
    assert!(first.caught_up, "{first:?}");
    assert!(!first.log_id.is_empty(), "every message names its log");

    let store = issuer.db().store().await;
    store
        .execute_unprepared("ALTER TABLE revocation_events RENAME TO revocation_events_away")
        .await
        .expect("rename");
    // The open stream is told, within a few polls and a heartbeat.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match open.message().await {
                Ok(Some(_)) => {}
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends within 10 s");
    let status = ended.expect_err("ended with a status");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let status = expect_code(watch().await, Code::Unavailable);
    assert!(status.message().contains("cannot read"), "{status:?}");

    store
        .execute_unprepared("ALTER TABLE revocation_events_away RENAME TO revocation_events")
        .await
        .expect("rename back");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while watch().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "serves again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    issuer.stop().await;
}

/// No loopback exemption: an issuer with no feed secret serves no one,
/// and a caller on this very host without the secret is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_admits_no_one_without_its_secret() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = issuer_config(&db);
    config.feed_secret = None;
    let issuer = Harness::start_with(db, config).await;
    let status = expect_code(
        RevocationFeedServiceClient::new(issuer.channel.clone())
            .watch_revocations(v1::WatchRevocationsRequest { after_seq: 0 })
            .await,
        Code::Unauthenticated,
    );
    assert!(status.message().contains("--feed-secret"), "{status:?}");
    // A verifier beside it polls the store, and says it cannot follow.
    let mut config = verifier_config(issuer.db());
    config.revocation_feed = format!("http://{}", issuer.addr);
    let verifier = VerifierHarness::spawn(config, issuer.clock.clone()).await;
    verifier.wait_for_health(ServingStatus::Serving).await;
    wait_until("the refusal is counted", || {
        verifier.shared.metrics.feed_failures.get() >= 1
    })
    .await;
    assert_eq!(verifier.shared.metrics.feed_following.get(), 0);
    issuer.stop().await;
}

/// Upstreams are tried in turn: one that does not answer is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_fails_over_to_the_next_upstream() {
    let issuer = Harness::start(Backend::Sqlite).await;
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let mut config = verifier_config(issuer.db());
    config.revocation_feed = format!("http://{dead},http://{}", issuer.addr);
    config.sync_interval = Duration::from_secs(30);
    let verifier = VerifierHarness::spawn(config, issuer.clock.clone()).await;
    verifier.wait_for_health(ServingStatus::Serving).await;
    wait_until("following the second upstream", || {
        verifier.shared.metrics.feed_following.get() == 1
    })
    .await;
    let (token, secret) = admin_token(&issuer, "failover").await;
    issuer
        .tokens()
        .disable_token(admin(v1::DisableTokenRequest {
            token: by_id(&token.id),
        }))
        .await
        .expect("disable");
    let took = verifier
        .wait_for_reason(&secret, VerifyReason::Disabled)
        .await;
    assert!(took < Duration::from_secs(5), "pushed: {took:?}");
    issuer.stop().await;
}

/// A client for the TLS issuer's TokenService, with a client certificate.
async fn tls_tokens(
    pki: &Pki,
    addr: std::net::SocketAddr,
) -> TokenServiceClient<tonic::transport::Channel> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pki.read("ca.pem")))
        .identity(Identity::from_pem(
            pki.read("client.pem"),
            pki.read("client.key"),
        ));
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls")
        .connect_lazy();
    TokenServiceClient::new(channel)
}

/// The feed over TLS with client certificates: a verifier with the CA and
/// a certificate follows it and sees a disable pushed; one trusting another
/// CA, or without a certificate, cannot, and says so in its metrics;
/// TLS settings over plain http are a start-up error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_runs_over_tls_and_mtls() {
    let pki = Pki::new();
    let other = Pki::new();
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = issuer_config(&db);
    config.tls_cert = Some(pki.path("server.pem"));
    config.tls_key = Some(pki.path("server.key"));
    config.tls_client_ca = Some(pki.path("ca.pem"));
    let issuer = Harness::spawn(db, config).await;
    let addr = issuer.addr;
    let mut tokens = tls_tokens(&pki, addr).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let created = loop {
        let attempt = tokens
            .create_token(admin(v1::CreateTokenRequest {
                name: "over tls".into(),
                ..Default::default()
            }))
            .await;
        match attempt {
            Ok(reply) => break reply.into_inner(),
            Err(status) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the TLS issuer answers: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let token = created.token.expect("metadata");

    let following = |ca: &Pki, with_cert: bool| {
        let mut config = verifier_config(issuer.db());
        config.revocation_feed = format!("https://{addr}");
        config.sync_interval = Duration::from_secs(30);
        config.feed_ca = Some(ca.path("ca.pem"));
        if with_cert {
            config.feed_client_cert = Some(pki.path("client.pem"));
            config.feed_client_key = Some(pki.path("client.key"));
        }
        config
    };
    let good = VerifierHarness::spawn(following(&pki, true), issuer.clock.clone()).await;
    let wrong_ca = VerifierHarness::spawn(following(&other, true), issuer.clock.clone()).await;
    let no_cert = VerifierHarness::spawn(following(&pki, false), issuer.clock.clone()).await;
    good.wait_for_health(ServingStatus::Serving).await;
    wait_until("following over TLS", || {
        good.shared.metrics.feed_following.get() == 1
    })
    .await;
    tokens
        .disable_token(admin(v1::DisableTokenRequest {
            token: by_id(&token.id),
        }))
        .await
        .expect("disable");
    let took = good
        .wait_for_reason(&created.secret, VerifyReason::Disabled)
        .await;
    assert!(took < Duration::from_secs(5), "pushed over TLS: {took:?}");
    for (name, refused) in [("a wrong CA", &wrong_ca), ("no certificate", &no_cert)] {
        wait_until(name, || refused.shared.metrics.feed_failures.get() >= 1).await;
        assert_eq!(
            refused.shared.metrics.feed_following.get(),
            0,
            "{name}: not following"
        );
    }

    // TLS asked for over plain http, or a CA file that is not there: the
    // verifier does not start, and says what to change.
    let mut plain = following(&pki, false);
    plain.revocation_feed = format!("http://{addr}");
    let clock = || issuer.clock.clone() as Arc<dyn Clock>;
    let Err(err) = tessera_verifier::VerifierServer::bind(plain, clock()).await else {
        panic!("TLS flags over http:// stop the start");
    };
    assert!(err.to_string().contains("use https://"), "{err}");
    let mut missing = following(&pki, false);
    missing.feed_ca = Some(pki.path("absent.pem"));
    let Err(err) = tessera_verifier::VerifierServer::bind(missing, clock()).await else {
        panic!("a missing CA stops the start");
    };
    assert!(err.to_string().contains("--feed-ca"), "{err}");
    issuer.stop().await;
}
