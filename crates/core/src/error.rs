//! The error type of `tessera-core`.
//!
//! Messages never contain key material, passwords or token strings: callers
//! may log them and return them to clients as they are.

/// What can go wrong in Tessera's pure logic.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The key-encryption key is not 32 bytes of base64.
    #[error("key encryption key is invalid: {0}")]
    InvalidKek(String),
    /// An encrypted private key could not be decrypted: wrong KEK or corrupt data.
    #[error("private key {kid} could not be decrypted with the configured key encryption key")]
    KeyDecryption { kid: String },
    /// Stored key material is not a valid Ed25519 key.
    #[error("key {kid} is not a valid Ed25519 key")]
    InvalidKey { kid: String },
    /// Signing a token failed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// A password could not be hashed, or a stored hash is unreadable.
    #[error("password hashing failed: {0}")]
    PasswordHash(String),
    /// The operating system's random source failed.
    #[error("random number generator failed")]
    Random,
}
