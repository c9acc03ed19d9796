//! Tessera's issuer: users, password logins, API tokens and signing keys,
//! served over gRPC.
//!
//! The binary `tessera-issuer` is a thin wrapper: everything lives here so
//! tests start the real server in-process ([`Issuer::bind`] on port 0, then
//! [`Issuer::run_until`]).
//!
//! Modules: [`config`] (flags and variables), `auth` (who is calling),
//! `service` (one module per gRPC service), `issue` (minting a token),
//! `audited` (refused calls in the audit log), [`maintenance`] (the
//! clean-up task and scheduled key rotation), `bootstrap` (KEK, first admin,
//! first key), `server` (serving and health), `http` (FME's own token
//! endpoints over HTTP, translated onto the same services; bound address:
//! [`Issuer::http_addr`]), [`error`] (the one mapping to `tonic::Status`).

mod audited;
mod auth;
mod bootstrap;
mod catalog;
pub mod config;
mod convert;
pub mod error;
mod followers;
mod hashing;
mod http;
mod issue;
mod judge;
pub mod maintenance;
mod screen;
mod server;
mod service;
mod state;
mod throttle;
mod validate;

pub use bootstrap::ADMIN_USERNAME;
pub use config::IssuerConfig;
pub use error::IssuerError;
pub use server::Issuer;
