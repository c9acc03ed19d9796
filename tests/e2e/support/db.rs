//! A fresh database per test: a SQLite file in a temporary directory, or a
//! PostgreSQL schema of its own (dropped when the test ends).

use sea_orm::{ConnectionTrait, Database};
use std::io::Write;
use std::path::PathBuf;
use tessera_core::keys::Kek;
use tessera_store::{ConnectConfig, Store};

/// The variable naming the PostgreSQL server store tests also run on.
pub const POSTGRES_URL_VAR: &str = "TESSERA_TEST_POSTGRES_URL";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL URL tests may use, if one is configured.
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|u| !u.is_empty())
}

/// Tells the person running the tests that a PostgreSQL test did not run.
/// Written straight to stderr so the test harness's capture does not hide it.
pub fn say_skipped(test: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: set {POSTGRES_URL_VAR}=postgres://postgres@127.0.0.1:5432/test to run it on PostgreSQL"
    );
}

/// A database for one test.
pub struct TestDb {
    /// The URL the issuer is given.
    pub url: String,
    /// PostgreSQL: the schema this test owns.
    pub schema: Option<String>,
    /// SQLite: the directory holding the file.
    pub dir: Option<PathBuf>,
    /// The KEK the test issuer uses.
    pub kek: Kek,
}

impl TestDb {
    /// A new, empty database.
    pub async fn new(backend: Backend) -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let kek = Kek::generate().expect("kek");
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("tessera-test-{id}"));
                std::fs::create_dir_all(&dir).expect("temp dir");
                Self {
                    url: format!("sqlite://{}/tessera.db?mode=rwc", dir.display()),
                    schema: None,
                    dir: Some(dir),
                    kek,
                }
            }
            Backend::Postgres => {
                let url = postgres_url().expect("TESSERA_TEST_POSTGRES_URL should be set");
                let schema = format!("tessera_test_{id}");
                let db = Database::connect(&url)
                    .await
                    .expect("connect to PostgreSQL");
                db.execute_unprepared(&format!("CREATE SCHEMA \"{schema}\""))
                    .await
                    .expect("create schema");
                db.close().await.expect("close");
                Self {
                    url,
                    schema: Some(schema),
                    dir: None,
                    kek,
                }
            }
        }
    }

    /// A direct handle on the same database, for arranging and inspecting.
    pub async fn store(&self) -> Store {
        self.store_with(2).await
    }

    /// A handle holding one connection: for migrating down and up again,
    /// where SQLite DDL on one pooled connection was once (in CI) not yet
    /// seen by the next statement on another ("duplicate column name").
    pub async fn store_on_one_connection(&self) -> Store {
        self.store_with(1).await
    }

    async fn store_with(&self, connections: u32) -> Store {
        let mut config = ConnectConfig::new(self.url.clone());
        config.schema = self.schema.clone();
        config.max_connections = connections;
        Store::connect_with(config)
            .await
            .expect("store should connect")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(schema) = self.schema.take() {
            let url = self.url.clone();
            // Drop runs outside any async context we may block: use a thread
            // with its own small runtime.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    if let Ok(db) = Database::connect(&url).await {
                        let _ = db
                            .execute_unprepared(&format!(
                                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                            ))
                            .await;
                        let _ = db.close().await;
                    }
                });
            })
            .join();
        }
    }
}
