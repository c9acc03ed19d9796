//! The gRPC services the issuer serves, one module each.

pub(crate) mod audit;
pub(crate) mod keys;
pub(crate) mod session;
pub(crate) mod token_grants;
pub(crate) mod token_secrets;
pub(crate) mod token_select;
pub(crate) mod token_state;
pub(crate) mod tokens;
pub(crate) mod user_changes;
pub(crate) mod user_rules;
pub(crate) mod users;
