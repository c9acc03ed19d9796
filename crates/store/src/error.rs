//! The error type of `tessera-store`.

use sea_orm::{DbErr, RuntimeErr, SqlErr};

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, or is too busy to answer now.
    #[error("store is unavailable: {0}")]
    Unavailable(String),
    /// A row with the same unique key exists.
    #[error("already exists")]
    AlreadyExists,
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// A stored value could not be read back (corrupt or from a newer version).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// Any other database error.
    #[error("store error: {0}")]
    Database(String),
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        if let Some(SqlErr::UniqueConstraintViolation(_)) = err.sql_err() {
            return StoreError::AlreadyExists;
        }
        match &err {
            DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => {
                StoreError::Unavailable(err.to_string())
            }
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))
                if is_transient(e) =>
            {
                StoreError::Unavailable(err.to_string())
            }
            DbErr::RecordNotFound(_) => StoreError::NotFound,
            _ => StoreError::Database(err.to_string()),
        }
    }
}

/// Whether a driver error means "try again later" rather than "this request is wrong".
fn is_transient(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match err {
        Error::Io(_)
        | Error::PoolTimedOut
        | Error::PoolClosed
        | Error::WorkerCrashed
        | Error::Tls(_) => true,
        Error::Database(db) => {
            // SQLite: BUSY (5) and LOCKED (6); PostgreSQL: class 08
            // (connection exception), 57P01..03 (shutdown), 53xxx (resources).
            let code = db.code().unwrap_or_default();
            matches!(code.as_ref(), "5" | "6" | "517" | "262")
                || code.starts_with("08")
                || code.starts_with("57P")
                || code.starts_with("53")
        }
        _ => false,
    }
}

pub(crate) fn corrupt(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {err}"))
}
