//! sea-orm entities: one module per table. Times are Unix seconds.

pub mod audit_event;
pub mod log_identity;
pub mod revocation_event;
pub mod sequence;
pub mod signing_key;
pub mod token;
pub mod user;
