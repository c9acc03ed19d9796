//! Verifiers with no store: everything they need — events, keys, the
//! log's identity — comes over the feed, their token uses go back up it,
//! and relays with no store forward it to further tiers.

use crate::on_both_backends;
use crate::support::feed::{admin_token, disable};
use crate::support::verifier::{VerifierHarness, verifier_config};
use crate::support::{Backend, FEED_SECRET, Harness, admin, bearer, by_id, expect_code};
use std::time::Duration;
use tessera_proto::v1::revocation_feed_service_client::RevocationFeedServiceClient;
use tessera_proto::v1::{self, VerifyReason};
use tessera_verifier::VerifierConfig;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

on_both_backends!(
    a_verifier_with_no_store_serves_follows_keys_and_reports_uses,
    a_follower_of_a_relay_of_a_relay_sees_a_disable
);

/// A verifier following `upstream` with no store, polling nothing: only
/// the feed can explain what it knows.
fn fed_by(issuer: &Harness, upstream: std::net::SocketAddr) -> VerifierConfig {
    let mut config = verifier_config(issuer.db());
    config.database_url = String::new();
    config.revocation_feed = format!("http://{upstream}");
    config.sync_interval = Duration::from_secs(30);
    config
}

async fn a_verifier_with_no_store_serves_follows_keys_and_reports_uses(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let (token, secret) = admin_token(&issuer, "fed").await;
    let mut config = fed_by(&issuer, issuer.addr);
    config.usage_flush_interval = Duration::from_millis(100);
    let verifier = VerifierHarness::spawn(config, issuer.clock.clone()).await;
    verifier.wait_for_health(ServingStatus::Serving).await;
    assert!(verifier.shared.store.get().is_none(), "no store was opened");

    // The key came over the feed: the token checks.
    for _ in 0..3 {
        assert_eq!(verifier.reason(&secret).await, VerifyReason::Ok);
    }
    // Its uses went up the feed into the issuer's store.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = issuer
            .tokens()
            .get_token(admin(v1::GetTokenRequest {
                token: by_id(&token.id),
            }))
            .await
            .expect("get")
            .into_inner();
        if got.use_count == 3 {
            assert!(got.last_used_time.is_some());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "three uses reported upstream within 10 s: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A revocation is pushed.
    disable(&issuer, &token.id).await;
    let took = verifier
        .wait_for_reason(&secret, VerifyReason::Disabled)
        .await;
    assert!(took < Duration::from_secs(5), "pushed: {took:?}");

    // A new signing key, signing at once, reaches it over the feed.
    let before = crate::support::lifecycle::claims(&secret);
    issuer
        .keys()
        .rotate_key(admin(v1::RotateKeyRequest {
            immediate: true,
            ..Default::default()
        }))
        .await
        .expect("rotate key");
    let (_, after_rotation) = admin_token(&issuer, "signed by the new key").await;
    assert_ne!(
        jsonwebtoken::decode_header(&after_rotation)
            .expect("header")
            .kid,
        jsonwebtoken::decode_header(&secret).expect("header").kid,
        "a new key signed it ({before})"
    );
    let took = verifier
        .wait_for_reason(&after_rotation, VerifyReason::Ok)
        .await;
    assert!(took < Duration::from_secs(5), "keys pushed: {took:?}");

    // Reporting uses is authenticated like following.
    expect_code(
        RevocationFeedServiceClient::new(issuer.channel.clone())
            .report_usage(v1::ReportUsageRequest::default())
            .await,
        Code::Unauthenticated,
    );
    let too_many = v1::ReportUsageRequest {
        uses: vec![v1::TokenUse::default(); 1_001],
    };
    expect_code(
        RevocationFeedServiceClient::new(issuer.channel.clone())
            .report_usage(bearer(too_many, FEED_SECRET))
            .await,
        Code::InvalidArgument,
    );
    issuer.stop().await;
}

/// Two relay tiers with no store, each keeping a window of two events so
/// that a new follower's catch-up comes from upstream, and a leaf under
/// them: a disable at the issuer reaches the leaf, pushed.
async fn a_follower_of_a_relay_of_a_relay_sees_a_disable(backend: Backend) {
    let db = crate::support::TestDb::new(backend).await;
    let mut config = crate::support::issuer_config(&db);
    let metrics = crate::operations::free_addr();
    config.metrics_listen = Some(metrics);
    let issuer = Harness::start_with(db, config).await;
    // History before the relays start: more than their windows hold.
    let mut earlier = Vec::new();
    for n in 0..4 {
        let (token, secret) = admin_token(&issuer, &format!("earlier {n}")).await;
        disable(&issuer, &token.id).await;
        earlier.push(secret);
    }
    let relay = |upstream| {
        let mut config = fed_by(&issuer, upstream);
        config.serve_feed = true;
        config.relay_window = 2;
        config
    };
    let mut first_config = relay(issuer.addr);
    first_config.name = Some("relay-eu".into());
    let first = VerifierHarness::spawn(first_config, issuer.clock.clone()).await;
    first.wait_for_health(ServingStatus::Serving).await;
    let second = VerifierHarness::spawn(relay(first.addr), issuer.clock.clone()).await;
    second.wait_for_health(ServingStatus::Serving).await;
    let leaf = VerifierHarness::spawn(fed_by(&issuer, second.addr), issuer.clock.clone()).await;
    leaf.wait_for_health(ServingStatus::Serving).await;
    for secret in &earlier {
        assert_eq!(
            leaf.reason(secret).await,
            VerifyReason::Disabled,
            "history older than the relays' windows reached the leaf"
        );
    }

    let (token, secret) = admin_token(&issuer, "relayed twice").await;
    leaf.wait_for_reason(&secret, VerifyReason::Ok).await;
    disable(&issuer, &token.id).await;
    let took = leaf.wait_for_reason(&secret, VerifyReason::Disabled).await;
    assert!(
        took < Duration::from_secs(5),
        "through two relay tiers, pushed with a 30 s poll: {took:?}"
    );
    for v in [&first, &second, &leaf] {
        assert!(v.shared.store.get().is_none(), "no tier opened a store");
        assert_eq!(v.shared.metrics.feed_following.get(), 1);
    }
    // The issuer counts its follower by the name it gave (the second tier
    // backfilled from it too, under its own default name, and left).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = crate::operations::scrape(metrics).await;
        if text.contains("tessera_issuer_feed_followers{follower=\"relay-eu\"} 1") {
            assert!(
                text.contains("tessera_issuer_feed_follower_lag_events{follower=\"relay-eu\"} 0"),
                "{text}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the issuer shows its follower: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    issuer.stop().await;
}
