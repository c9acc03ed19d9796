//! Opening the database and applying migrations.

use crate::StoreError;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use std::time::Duration;
use tessera_migration::{Migrator, MigratorTrait};

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file (the default).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The backend a database URL names, if Tessera supports it.
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// A handle on Tessera's database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) db: DatabaseConnection,
    backend: Backend,
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    /// The database URL: `sqlite://path?mode=rwc` or `postgres://…`.
    pub url: String,
    /// Upper bound on pooled connections.
    pub max_connections: u32,
    /// PostgreSQL only: the schema to use instead of `public` (tests use one each).
    pub schema: Option<String>,
    /// How long to wait for a connection before answering "unavailable".
    pub acquire_timeout: Duration,
}

impl ConnectConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            schema: None,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl Store {
    /// Opens the database at `url` with default settings.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(ConnectConfig::new(url)).await
    }

    /// Opens the database as `config` says. A SQLite file is created if
    /// missing and opened in WAL mode with a busy timeout, so an issuer and
    /// verifiers can share it.
    pub async fn connect_with(config: ConnectConfig) -> Result<Self, StoreError> {
        let backend = Backend::of_url(&config.url).ok_or_else(|| {
            StoreError::Unavailable(
                "database URL must start with sqlite: or postgres://".to_owned(),
            )
        })?;
        let mut options = ConnectOptions::new(config.url.clone());
        options
            .sqlx_logging(false)
            .acquire_timeout(config.acquire_timeout)
            .connect_timeout(config.acquire_timeout);
        match backend {
            Backend::Sqlite => {
                // An in-memory database exists once per connection: keep one.
                let max = if config.url.contains(":memory:") {
                    1
                } else {
                    config.max_connections
                };
                options
                    .max_connections(max)
                    .min_connections(1)
                    .map_sqlx_sqlite_opts(|o| {
                        o.create_if_missing(true)
                            .journal_mode(SqliteJournalMode::Wal)
                            .synchronous(SqliteSynchronous::Normal)
                            .busy_timeout(Duration::from_secs(5))
                            .foreign_keys(true)
                    });
            }
            Backend::Postgres => {
                options.max_connections(config.max_connections);
                if let Some(schema) = &config.schema {
                    options.set_schema_search_path(schema.clone());
                }
            }
        }
        let db = Database::connect(options).await?;
        Ok(Self { db, backend })
    }

    /// Applies every pending migration; a no-op when the schema is current.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Migrator::up(&self.db, None).await?;
        Ok(())
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await?;
        Ok(())
    }

    /// Connections in the pool now: (open, idle).
    pub fn pool_use(&self) -> (u32, usize) {
        match self.backend {
            Backend::Sqlite => {
                let pool = self.db.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
            Backend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
        }
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying connection, for tests and tools that need raw access.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so two writers queue on the busy timeout instead
    /// of failing when both try to upgrade a read lock.
    pub(crate) async fn begin_write(&self) -> Result<DatabaseTransaction, StoreError> {
        Ok(self
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?)
    }

    /// Closes the pool.
    pub async fn close(self) -> Result<(), StoreError> {
        self.db.close().await?;
        Ok(())
    }

    /// Runs a raw SQL statement; for operators' tools and tests.
    pub async fn execute_unprepared(&self, sql: &str) -> Result<(), StoreError> {
        self.db.execute_unprepared(sql).await?;
        Ok(())
    }
}
