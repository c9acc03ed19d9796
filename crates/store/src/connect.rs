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
    /// Raised after every commit of this process that appended revocation
    /// events, so a feed wakes at once instead of at its next poll.
    appended: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

/// How to open a store. Its `Debug` form redacts the URL's password.
#[derive(Clone)]
pub struct ConnectConfig {
    /// The database URL: `sqlite://path?mode=rwc` or `postgres://…`.
    pub url: String,
    /// Upper bound on pooled connections.
    pub max_connections: u32,
    /// PostgreSQL only: the schema to use instead of `public` (tests use one each).
    pub schema: Option<String>,
    /// How long to wait for a connection before answering "unavailable".
    pub acquire_timeout: Duration,
    /// Whether to create what is missing: the SQLite file, the PostgreSQL
    /// schema. The issuer does; a verifier, which only reads, does not, so
    /// one started first waits for the issuer instead of making an empty
    /// database.
    pub create: bool,
}

impl std::fmt::Debug for ConnectConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectConfig")
            .field("url", &redact(&self.url))
            .field("max_connections", &self.max_connections)
            .field("schema", &self.schema)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("create", &self.create)
            .finish()
    }
}

impl ConnectConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            schema: None,
            acquire_timeout: Duration::from_secs(5),
            create: true,
        }
    }
}

impl Store {
    /// Changes each time this process commits revocation events (through
    /// any clone of this store); other processes' commits are not seen.
    pub fn appended(&self) -> tokio::sync::watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Marks a commit that appended revocation events.
    pub(crate) fn mark_appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

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
        // The password never travels inside the URL: sea-orm records its
        // connect options (URL included) on a trace span, so it is handed
        // to the driver separately.
        tracing::debug!(url = %redact(&config.url), "opening the store");
        let (url, password) = split_password(&config.url);
        let mut options = ConnectOptions::new(url);
        if let Some(password) = password {
            options.map_sqlx_postgres_opts(move |o| o.password(&password));
        }
        options
            .sqlx_logging(false)
            .acquire_timeout(config.acquire_timeout)
            .connect_timeout(config.acquire_timeout);
        let create = config.create;
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
                    .map_sqlx_sqlite_opts(move |o| {
                        o.create_if_missing(create)
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
        if backend == Backend::Postgres
            && create
            && let Some(schema) = &config.schema
        {
            create_schema(&config.url, schema).await?;
        }
        let db = match Database::connect(options).await {
            Ok(db) => db,
            Err(e) => match sqlite_path(&config.url) {
                Some(path) => return Err(StoreError::Unavailable(cannot_open(path, create, &e))),
                None => return Err(e.into()),
            },
        };
        if backend == Backend::Sqlite {
            owner_only(&config.url);
        }
        Ok(Self {
            db,
            backend,
            appended: std::sync::Arc::new(tokio::sync::watch::Sender::new(0)),
        })
    }

    /// On SQLite, moves everything in the write-ahead log into the database
    /// file and empties the log, so that after a clean stop the `.db` file
    /// alone is the whole database (a copy of it is a backup). A no-op on
    /// PostgreSQL.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if self.backend == Backend::Sqlite {
            self.db
                .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
                .await?;
        }
        Ok(())
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

/// Makes the SQLite file `url` names, and its journal files, readable by
/// their owner only: they hold password hashes and sealed signing keys.
/// The file a SQLite URL names, if it names one (not `:memory:`).
pub fn sqlite_path(url: &str) -> Option<&str> {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or(rest))
        .filter(|p| !p.is_empty() && !p.contains(":memory:"))
}

/// Why a SQLite file would not open, naming it: the driver's own message
/// ("unable to open database file") names nothing.
fn cannot_open(path: &str, create: bool, error: &sea_orm::DbErr) -> String {
    let file = std::path::Path::new(path);
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let why = if !dir.is_dir() {
        format!("its directory {} does not exist", dir.display())
    } else if !create && !file.exists() {
        "it does not exist yet: start the issuer first, which creates it".to_owned()
    } else {
        error.to_string()
    };
    format!("cannot open the SQLite database {path}: {why}")
}

/// Creates a PostgreSQL schema if it is missing, over a connection of its
/// own (the pool's search path names a schema that may not exist yet).
async fn create_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    if !tessera_migration::plain_schema_name(schema) {
        return Err(StoreError::Unavailable(format!(
            "the schema name {schema:?} must be letters, digits and underscores"
        )));
    }
    let (url, password) = split_password(url);
    let mut options = ConnectOptions::new(url);
    if let Some(password) = password {
        options.map_sqlx_postgres_opts(move |o| o.password(&password));
    }
    options
        .sqlx_logging(false)
        .max_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5));
    let db = Database::connect(options).await?;
    let created = db
        .execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .await;
    let _ = db.close().await;
    created?;
    Ok(())
}

fn owner_only(url: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Some(path) = sqlite_path(url) else {
            return;
        };
        for suffix in ["", "-wal", "-shm"] {
            let file = format!("{path}{suffix}");
            if std::path::Path::new(&file).exists()
                && let Err(e) =
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            {
                tracing::warn!(file = %file, error = %e, "could not make the database file owner-only");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = url;
}

/// `url` with the password of its user part replaced by `***`, for any
/// message or log line that names a database.
pub fn redact(url: &str) -> String {
    match split_password(url) {
        (bare, Some(_)) => match bare.split_once('@') {
            Some((user, rest)) => format!("{user}:***@{rest}"),
            None => bare,
        },
        (bare, None) => bare,
    }
}

/// Splits the password (percent-decoded) out of a `scheme://user:pw@host…`
/// URL; the URL comes back as `scheme://user@host…`.
fn split_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return (url.to_owned(), None);
    };
    let Some((user, password)) = userinfo.split_once(':') else {
        return (url.to_owned(), None);
    };
    (
        format!("{scheme}://{user}@{host}{tail}"),
        Some(percent_decode(password)),
    )
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_unopenable_sqlite_file_is_named_with_why() {
        let error = sea_orm::DbErr::Custom("unable to open database file".into());
        let missing = cannot_open("/no/such/dir/tessera.db", true, &error);
        assert!(missing.contains("/no/such/dir/tessera.db"), "{missing}");
        assert!(
            missing.contains("its directory /no/such/dir does not exist"),
            "{missing}"
        );
        let dir = std::env::temp_dir();
        let absent = dir.join(format!("tessera-absent-{}.db", std::process::id()));
        let first = cannot_open(absent.to_str().expect("path"), false, &error);
        assert!(first.contains("start the issuer first"), "{first}");
    }
    use super::*;

    #[test]
    fn passwords_come_out_of_urls() {
        assert_eq!(
            split_password("postgres://app:s%40cret:x@db:5432/tessera?sslmode=require"),
            (
                "postgres://app@db:5432/tessera?sslmode=require".to_owned(),
                Some("s@cret:x".to_owned())
            )
        );
        assert_eq!(
            split_password("postgres://app@db/tessera"),
            ("postgres://app@db/tessera".to_owned(), None)
        );
        assert_eq!(
            split_password("sqlite://tessera-data/tessera.db?mode=rwc").1,
            None
        );
        assert_eq!(
            redact("postgres://app:hunter2@db/t"),
            "postgres://app:***@db/t"
        );
        assert_eq!(redact("postgres://db/t"), "postgres://db/t");
    }
}
