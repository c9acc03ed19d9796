//! The gRPC services the issuer serves, one module each.

pub(crate) mod audit;
pub(crate) mod keys;
pub(crate) mod session;
pub(crate) mod tokens;
pub(crate) mod users;
