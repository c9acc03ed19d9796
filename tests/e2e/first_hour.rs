//! What a new operator trips over at start: KEK mistakes named plainly, a
//! verifier started before the issuer, a PostgreSQL schema not made yet.

use crate::support::verifier::{VerifierHarness, verifier_config};
use crate::support::{self, Backend, Harness, TestDb, admin};
use std::time::Duration;
use tessera_core::keys::Kek;
use tessera_issuer::Issuer;
use tessera_proto::v1;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

/// A wrong KEK is not "starting" forever: every refusal says which KEK
/// failed to unseal the signing key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_kek_is_named_in_every_refusal() {
    let issuer = Harness::start(Backend::Sqlite).await;
    let db = issuer.stop().await;
    let mut config = support::issuer_config(&db);
    config.kek = Some(Kek::generate().expect("kek").to_base64());
    let issuer = Harness::spawn(db, config).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let message = loop {
        let status = issuer
            .sessions()
            .login(admin(v1::LoginRequest::default()))
            .await
            .expect_err("no login without a readable signing key");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        if status.message().contains("cannot start") || tokio::time::Instant::now() > deadline {
            break status.message().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(message.contains("cannot start"), "{message}");
    assert!(
        message.contains("TESSERA_KEK"),
        "names the KEK's source: {message}"
    );
    issuer.stop().await;
}

/// A KEK file deleted beside an existing database is refused at start,
/// naming both files, instead of a new KEK being made that cannot read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_kek_file_is_refused_at_start_naming_it() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = support::issuer_config(&db);
    config.kek = None;
    let issuer = Harness::start_with(db, config.clone()).await;
    let db = issuer.stop().await;
    let dir = db.dir.clone().expect("a SQLite directory");
    let kek_file = dir.join("tessera.db.kek");
    assert!(kek_file.exists(), "the first start wrote a KEK file");
    std::fs::remove_file(&kek_file).expect("delete the KEK file");
    let clock = std::sync::Arc::new(tessera_core::ManualClock::new(chrono::Utc::now()));
    let text = match Issuer::bind(config, clock).await {
        Ok(_) => panic!("an issuer started without its KEK"),
        Err(refused) => refused.to_string(),
    };
    assert!(text.contains("tessera.db.kek"), "{text}");
    assert!(text.contains("is missing"), "{text}");
    assert!(!kek_file.exists(), "no new KEK was made");
    drop(db);
}

/// A verifier started before the issuer makes no empty database: it waits,
/// not serving, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_started_first_makes_no_database() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = db.dir.clone().expect("a SQLite directory");
    let clock = std::sync::Arc::new(tessera_core::ManualClock::new(chrono::Utc::now()));
    let verifier = VerifierHarness::spawn(verifier_config(&db), clock).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(verifier.health().await, ServingStatus::NotServing);
    assert!(
        !dir.join("tessera.db").exists(),
        "the verifier created no database file"
    );
    // The issuer then creates it, and the verifier follows.
    let config = support::issuer_config(&db);
    let issuer = Harness::start_with(db, config).await;
    verifier.wait_for_health(ServingStatus::Serving).await;
    issuer.stop().await;
}

/// An issuer given a PostgreSQL schema that does not exist yet creates it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_postgres_schema_is_created() {
    let Some(url) = crate::support::db::postgres_url() else {
        crate::support::db::say_skipped("first_hour::a_missing_postgres_schema_is_created");
        return;
    };
    let db = TestDb::new(Backend::Postgres).await;
    let mut config = support::issuer_config(&db);
    let fresh = format!("{}_new", db.schema.clone().expect("a schema"));
    config.db_schema = Some(fresh.clone());
    let issuer = Harness::start_with(db, config).await;
    let login = issuer
        .sessions()
        .login(admin(v1::LoginRequest::default()))
        .await;
    assert!(login.is_ok(), "{login:?}");
    issuer.stop().await;
    use sea_orm::ConnectionTrait;
    let conn = sea_orm::Database::connect(&url).await.expect("connect");
    conn.execute_unprepared(&format!("DROP SCHEMA \"{fresh}\" CASCADE"))
        .await
        .expect("the schema was created, and is dropped");
    let _ = conn.close().await;
}
