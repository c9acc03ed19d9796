//! Tessera's pure logic, shared by the issuer and the verifier.
//!
//! This crate owns what a token *is*: its claims ([`claims`]), the grants it
//! carries ([`grants`]) and the catalog they are checked against ([`catalog`]), how it is signed and checked ([`jwt`], [`keys`]), how
//! passwords are hashed ([`password`]) and where "now" comes from ([`clock`]).
//! It does no I/O and knows nothing of databases or gRPC, so every rule here
//! is testable with plain values, and time is always a parameter.

pub mod authorization;
pub mod catalog;
pub mod claims;
pub mod clock;
#[cfg(test)]
mod corpus;
pub mod duration;
pub mod error;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod grants;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod random;
pub mod revocation;

pub use catalog::Catalog;
pub use claims::{Claims, TokenType};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::CoreError;
pub use grants::Grant;
