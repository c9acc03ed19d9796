//! Tessera's storage, shared by the issuer and the verifier.
//!
//! This crate owns the database: connecting (SQLite by default, PostgreSQL in
//! production), applying migrations, the sea-orm entities ([`entity`]) and
//! every query the services run. A change and the revocation and audit events
//! it causes are written in one transaction, so a failure never leaves half a
//! change behind. Token *strings* never reach the store: only their ids and
//! metadata do.

pub mod audit;
pub mod cleanup;
mod connect;
pub mod entity;
mod error;
pub mod keys;
mod lock;
pub mod revocation;
pub mod tokens;
pub mod usage;
pub mod users;

pub use cleanup::CleanupReport;
pub use connect::{Backend, ConnectConfig, Store, redact, sqlite_path};
pub use error::StoreError;
pub use sea_orm::DatabaseConnection;
