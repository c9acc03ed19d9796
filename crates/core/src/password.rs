//! Password hashing with argon2id.

use crate::CoreError;
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// The shortest password Tessera accepts.
pub const MIN_LENGTH: usize = 12;

/// The longest password Tessera accepts: argon2 cost does not depend on it,
/// but a bound keeps requests small.
pub const MAX_LENGTH: usize = 1024;

/// Argon2's working memory, kept and reused: hashing with it allocates
/// nothing, so a process that hashes on a few threads holds a few blocks of
/// it for good instead of leaving freed ones behind in allocator arenas.
pub struct Memory(Vec<Block>);

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Memory({} blocks)", self.0.len())
    }
}

impl Default for Memory {
    fn default() -> Self {
        Self::new()
    }
}

impl Memory {
    /// Enough for Tessera's own parameters (argon2's defaults).
    pub fn new() -> Self {
        Self(vec![Block::new(); Params::default().block_count()])
    }

    fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.0.len() < count {
            self.0.resize(count, Block::new());
        }
        &mut self.0[..count]
    }
}

fn failed(e: impl std::fmt::Display) -> CoreError {
    CoreError::PasswordHash(e.to_string())
}

/// Hashes `password` with argon2id and a fresh random salt, as a PHC
/// string, working in `memory`.
pub fn hash_with(password: &str, memory: &mut Memory) -> Result<String, CoreError> {
    let argon = Argon2::default();
    let salt = Salt::new(&crate::random::bytes::<16>()?).map_err(failed)?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let blocks = memory.blocks(argon.params().block_count());
    argon
        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, blocks)
        .map_err(failed)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon.params()).map_err(failed)?,
        salt: Some(salt),
        hash: Some(Output::new(&out).map_err(failed)?),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored`, working in `memory`.
pub fn verify_with(password: &str, stored: &str, memory: &mut Memory) -> Result<bool, CoreError> {
    let parsed = PasswordHash::new(stored).map_err(failed)?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(failed)?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(failed)?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(failed)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(CoreError::PasswordHash(
            "the stored hash has no salt or output".into(),
        ));
    };
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    let blocks = memory.blocks(argon.params().block_count());
    argon
        .hash_password_into_with_memory(password.as_bytes(), salt.as_ref(), &mut out, blocks)
        .map_err(failed)?;
    // Output's equality is constant-time.
    Ok(Output::new(&out).map_err(failed)? == expected)
}

/// Hashes `password` with argon2id and a fresh random salt, as a PHC string.
pub fn hash(password: &str) -> Result<String, CoreError> {
    hash_with(password, &mut Memory::new())
}

/// Whether `password` matches the PHC string `stored`.
pub fn verify(password: &str, stored: &str) -> Result<bool, CoreError> {
    verify_with(password, stored, &mut Memory::new())
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

    #[test]
    fn hashes_made_by_argon2_itself_verify_with_reused_memory() {
        use argon2::password_hash::PasswordHasher;
        let theirs = argon2::Argon2::default()
            .hash_password(b"correct horse battery")
            .expect("hash")
            .to_string();
        let mut memory = super::Memory::new();
        for _ in 0..2 {
            assert!(super::verify_with("correct horse battery", &theirs, &mut memory).expect("v"));
            assert!(!super::verify_with("wrong", &theirs, &mut memory).expect("v"));
        }
        let ours = super::hash_with("another one entirely", &mut memory).expect("hash");
        use argon2::password_hash::PasswordVerifier;
        argon2::Argon2::default()
            .verify_password(b"another one entirely", ours.as_str())
            .expect("argon2 accepts our hashes");
    }
}
