//! Health: NOT_SERVING until the store answers, SERVING after; an outage
//! answers UNAVAILABLE and the issuer recovers by itself.

use crate::on_both_backends;
use crate::support::{self, Backend, Harness, TestDb, admin, expect_code, proxy::Proxy};
use std::time::Duration;
use tessera_proto::v1;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_moves_to_serving_once_the_store_can_be_opened() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = db.dir.clone().expect("sqlite dir");
    // The database's directory does not exist yet: the store cannot open.
    let missing = dir.join("not-yet");
    let mut config = support::issuer_config(&db);
    config.database_url = format!("sqlite://{}/tessera.db?mode=rwc", missing.display());
    let issuer = Harness::spawn(db, config).await;

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        issuer.health("").await.expect("health"),
        ServingStatus::NotServing
    );
    let refused = issuer
        .sessions()
        .login(admin(v1::LoginRequest::default()))
        .await;
    let status = expect_code(refused, Code::Unavailable);
    assert!(status.message().contains("not ready"), "{status:?}");

    std::fs::create_dir_all(&missing).expect("create the directory");
    issuer.wait_for_health(ServingStatus::Serving).await;
    for service in [
        "tessera.v1.TokenService",
        "tessera.v1.SessionService",
        "tessera.v1.KeyService",
    ] {
        assert_eq!(
            issuer.health(service).await.expect("health"),
            ServingStatus::Serving,
            "{service}"
        );
    }
    issuer.login("admin", support::ADMIN_PASSWORD).await;
    issuer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_answers_unavailable_and_recovers() {
    let Some(url) = support::db::postgres_url() else {
        support::db::say_skipped("health::a_postgres_outage_answers_unavailable_and_recovers");
        return;
    };
    let upstream = postgres_addr(&url).await;
    let proxy = Proxy::start(upstream).await;
    let db = TestDb::new(Backend::Postgres).await;
    let mut config = support::issuer_config(&db);
    config.database_url = rewrite_host(&url, proxy.addr);
    let issuer = Harness::start_with(db, config).await;
    issuer.login("admin", support::ADMIN_PASSWORD).await;

    proxy.cut().await;
    // Health follows the store within its interval (100 ms here) and a
    // second, not after the pool's connect timeout (5 s).
    let cut = tokio::time::Instant::now();
    issuer.wait_for_health(ServingStatus::NotServing).await;
    assert!(
        cut.elapsed() < std::time::Duration::from_secs(2),
        "NOT_SERVING {:?} after the store stopped answering",
        cut.elapsed()
    );
    let refused = issuer
        .tokens()
        .list_tokens(admin(v1::ListTokensRequest::default()))
        .await;
    let status = expect_code(refused, Code::Unavailable);
    assert!(status.message().contains("unavailable"), "{status:?}");

    proxy.restore();
    issuer.wait_for_health(ServingStatus::Serving).await;
    let listed = issuer
        .tokens()
        .list_tokens(admin(v1::ListTokensRequest::default()))
        .await;
    assert!(listed.is_ok(), "after recovery: {listed:?}");
    issuer.stop().await;
}

pub async fn postgres_addr(url: &str) -> std::net::SocketAddr {
    let host = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("a postgres://user@host:port/db URL");
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    tokio::net::lookup_host(host)
        .await
        .expect("resolve PostgreSQL host")
        .next()
        .expect("an address")
}

pub fn rewrite_host(url: &str, addr: std::net::SocketAddr) -> String {
    let (user, rest) = url.split_once('@').expect("user@host");
    let db = rest.split_once('/').map(|(_, db)| db).unwrap_or("postgres");
    format!("{user}@{addr}/{db}")
}

async fn restart_keeps_everything(backend: Backend) {
    let first = Harness::start(backend).await;
    let created = first
        .create_token(v1::CreateTokenRequest {
            name: "survives restarts".into(),
            ..Default::default()
        })
        .await
        .expect("create");
    let keys_before = first
        .keys()
        .list_keys(v1::ListKeysRequest {})
        .await
        .expect("keys")
        .into_inner();
    let config = support::issuer_config(first.db());
    let db = first.stop().await;

    // A second issuer on the same database: migrations and bootstrap run again.
    let second = Harness::start_with(db, config).await;
    let store = second.db().store().await;
    assert_eq!(
        store.count_users().await.expect("count"),
        1,
        "still exactly one administrator"
    );
    let keys_after = second
        .keys()
        .list_keys(v1::ListKeysRequest {})
        .await
        .expect("keys")
        .into_inner();
    assert_eq!(
        keys_before.keys, keys_after.keys,
        "the signing key is reused, not regenerated"
    );
    let id = created.token.as_ref().expect("token").id.clone();
    let got = second
        .tokens()
        .get_token(support::bearer(
            v1::GetTokenRequest {
                token: Some(v1::TokenSelector {
                    id,
                    ..Default::default()
                }),
            },
            &created.secret,
        ))
        .await
        .expect("the old token still authenticates");
    assert_eq!(got.into_inner().name, "survives restarts");
    second.stop().await;
}

on_both_backends!(restart_keeps_everything);
