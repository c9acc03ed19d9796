//! Password hashing with argon2id.

use crate::CoreError;
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// The shortest password Tessera accepts.
pub const MIN_LENGTH: usize = 12;

/// The longest password Tessera accepts: argon2 cost does not depend on it,
/// but a bound keeps requests small.
pub const MAX_LENGTH: usize = 1024;

/// Hashes `password` with argon2id and a fresh random salt, as a PHC string.
pub fn hash(password: &str) -> Result<String, CoreError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| CoreError::PasswordHash(e.to_string()))
}

/// Whether `password` matches the PHC string `stored`.
pub fn verify(password: &str, stored: &str) -> Result<bool, CoreError> {
    let parsed = PasswordHash::new(stored).map_err(|e| CoreError::PasswordHash(e.to_string()))?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// A hash of a random password, to spend the same time checking an unknown
/// user's password as a known one's, so timing does not reveal which users exist.
pub fn decoy_hash() -> Result<String, CoreError> {
    hash(&crate::random::url_safe_string::<16>()?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_hash_verifies_only_its_password() {
        let h = super::hash("correct horse battery").expect("hashing should work");
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify("correct horse battery", &h).expect("verify should work"));
        assert!(!super::verify("wrong horse battery", &h).expect("verify should work"));
    }
}
