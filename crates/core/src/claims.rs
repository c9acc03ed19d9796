//! The claims inside a Tessera token.
//!
//! A token is a standard JWT; these are its payload fields. Nothing here is
//! secret: any holder of the token can read them.

use crate::Grant;
use serde::{Deserialize, Serialize};

/// What kind of token a JWT is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// A named, long-lived API token.
    Api,
    /// A short-lived session token from a password login.
    Session,
}

impl TokenType {
    /// The name used in claims and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Api => "api",
            TokenType::Session => "session",
        }
    }

    /// Parses the name used in claims and in the store.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "api" => Some(TokenType::Api),
            "session" => Some(TokenType::Session),
            _ => None,
        }
    }
}

/// The payload of a Tessera token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer's name.
    pub iss: String,
    /// The owner's user id.
    pub sub: String,
    /// The token id (a UUIDv7), the key of its metadata and revocations.
    pub jti: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Not valid before, seconds since the Unix epoch.
    pub nbf: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
    /// `api` or `session`.
    pub typ: TokenType,
    /// What the token may do.
    #[serde(default)]
    pub grants: Vec<Grant>,
    /// The token's secret version: 0 when created, one more at each
    /// rotation, so a rotation can retire older secrets of the same token id.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ver: u32,
    /// The owner's generation when the secret was issued. Every user-wide
    /// change (disable, delete, new password, grants taken away) raises the
    /// generation and binds exactly the secrets issued below it, however
    /// many changes and issues share one second. Absent (0) in tokens issued
    /// before generations existed.
    #[serde(rename = "gen", default, skip_serializing_if = "is_zero")]
    pub generation: u64,
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
