//! Random bytes and identifiers from the operating system's CSPRNG.

use crate::CoreError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `N` random bytes.
pub fn bytes<const N: usize>() -> Result<[u8; N], CoreError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|_| CoreError::Random)?;
    Ok(buf)
}

/// A random URL-safe string carrying `N` bytes of entropy.
pub fn url_safe_string<const N: usize>() -> Result<String, CoreError> {
    Ok(URL_SAFE_NO_PAD.encode(bytes::<N>()?))
}
