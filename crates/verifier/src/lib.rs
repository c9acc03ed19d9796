//! Tessera's verifier: stateless verification of Tessera tokens.
//!
//! It checks a token's signature against the issuer's published keys, its
//! time window, the revocation events it follows from the store, and — when
//! asked — whether its grants cover an action on a resource. It holds no
//! state it cannot rebuild from the store, so it scales out by adding
//! processes. The binary `tessera-verifier` is a thin wrapper.
//!
//! Modules: [`config`], `view` (keys and revocation set, and how they are
//! synced), `cache` (the signature cache), `verify` (the decision),
//! `service` (the gRPC handler), [`gateway`] (the same decision for
//! proxies: Envoy's ext_authz, HTTP forward auth, route rules), `server` (serving, health, the sync loop,
//! shutdown), `metrics` (what it counts), [`usage`] (last-used tracking, merged into
//! the store in batches), [`error`].

mod batch;
mod cache;
pub mod config;
pub mod error;
mod feed;
pub mod gateway;
mod metrics;
mod server;
pub mod service;
mod upstream;
pub mod usage;
mod verify;
pub mod view;

pub use cache::SignatureCache;
pub use config::VerifierConfig;
pub use error::VerifierError;
pub use server::VerifierServer;
