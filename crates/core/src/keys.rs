//! Ed25519 signing keys, their encryption at rest, and their public form.
//!
//! A private key never leaves the issuer unencrypted: it is sealed with the
//! key-encryption key (KEK) before it reaches the store, with the key id as
//! associated data so a sealed key cannot be moved to another row.

use crate::{CoreError, random};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::EncodingKey;
use std::fmt;

/// The JWS algorithm name of every Tessera token.
pub const ALGORITHM: &str = "EdDSA";

const NONCE_LEN: usize = 24;

/// The key-encryption key that seals private signing keys at rest.
#[derive(Clone)]
pub struct Kek([u8; 32]);

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek(<redacted>)")
    }
}

impl Kek {
    /// A fresh random KEK.
    pub fn generate() -> Result<Self, CoreError> {
        Ok(Self(random::bytes::<32>()?))
    }

    /// Reads a KEK written as standard or URL-safe base64 of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, CoreError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text))
            .map_err(|_| CoreError::InvalidKek("not base64".into()))?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            CoreError::InvalidKek(format!("{} bytes, expected 32", b.len()))
        })?;
        Ok(Self(key))
    }

    /// The KEK as standard base64, for writing it to a file.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Encrypts `plaintext`, bound to `kid`. The output is nonce ‖ ciphertext.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<Vec<u8>, CoreError> {
        let nonce = random::bytes::<NONCE_LEN>()?;
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&self.0));
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| CoreError::Signing("sealing a private key failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypts what [`Kek::seal`] produced for the same `kid`.
    pub fn open(&self, kid: &str, sealed: &[u8]) -> Result<Vec<u8>, CoreError> {
        let failed = || CoreError::KeyDecryption { kid: kid.into() };
        if sealed.len() < NONCE_LEN {
            return Err(failed());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        XChaCha20Poly1305::new(Key::from_slice(&self.0))
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| failed())
    }
}

/// A newly generated key pair, as it is stored: public half in the clear,
/// private half sealed.
#[derive(Debug, Clone)]
pub struct NewKeyPair {
    /// The key id, `kid` in token headers.
    pub kid: String,
    /// The raw 32-byte public key, base64url without padding (the JWK `x`).
    pub public_key: String,
    /// The 32-byte private seed sealed with the KEK.
    pub sealed_private_key: Vec<u8>,
}

/// Generates an Ed25519 key pair and seals its private half with `kek`.
pub fn generate(kek: &Kek) -> Result<NewKeyPair, CoreError> {
    let seed = random::bytes::<32>()?;
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    let kid = format!("k-{}", &random::url_safe_string::<9>()?);
    Ok(NewKeyPair {
        public_key: URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes()),
        sealed_private_key: kek.seal(&kid, &seed)?,
        kid,
    })
}

/// A private key ready to sign tokens.
#[derive(Clone)]
pub struct Signer {
    /// The key id written into each token's header.
    pub kid: String,
    pub(crate) key: EncodingKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Unseals a stored private key.
    pub fn unseal(kek: &Kek, kid: &str, sealed: &[u8]) -> Result<Self, CoreError> {
        let seed: [u8; 32] = kek
            .open(kid, sealed)?
            .try_into()
            .map_err(|_| CoreError::InvalidKey { kid: kid.into() })?;
        let der = ed25519_dalek::SigningKey::from_bytes(&seed)
            .to_pkcs8_der()
            .map_err(|_| CoreError::InvalidKey { kid: kid.into() })?;
        Ok(Self {
            kid: kid.into(),
            key: EncodingKey::from_ed_der(der.as_bytes()),
        })
    }
}

/// A public key ready to check signatures.
#[derive(Clone)]
pub struct VerifyingKey {
    /// The key id.
    pub kid: String,
    /// The point, decompressed once when the key is read: decompressing it
    /// on every check was a tenth of a cold check's time.
    pub(crate) key: ed25519_dalek::VerifyingKey,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// Reads a public key in its stored form (base64url of the raw 32 bytes).
    pub fn from_public(kid: &str, public_key: &str) -> Result<Self, CoreError> {
        let raw = URL_SAFE_NO_PAD
            .decode(public_key)
            .map_err(|_| CoreError::InvalidKey { kid: kid.into() })?;
        let raw: [u8; 32] = raw
            .try_into()
            .map_err(|_| CoreError::InvalidKey { kid: kid.into() })?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&raw)
            .map_err(|_| CoreError::InvalidKey { kid: kid.into() })?;
        Ok(Self {
            kid: kid.into(),
            key,
        })
    }
}

/// A JWKS document (RFC 7517) publishing the given `(kid, public_key)` pairs.
pub fn jwks_json<'a>(keys: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let keys: Vec<serde_json::Value> = keys
        .into_iter()
        .map(|(kid, x)| {
            serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "alg": ALGORITHM,
                "use": "sig",
                "kid": kid,
                "x": x,
            })
        })
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_with_its_kek_and_kid() {
        let kek = Kek::generate().expect("kek");
        let pair = generate(&kek).expect("generate");
        assert!(Signer::unseal(&kek, &pair.kid, &pair.sealed_private_key).is_ok());
        let other = Kek::generate().expect("kek");
        assert!(Signer::unseal(&other, &pair.kid, &pair.sealed_private_key).is_err());
        assert!(Signer::unseal(&kek, "k-other", &pair.sealed_private_key).is_err());
    }

    #[test]
    fn a_kek_round_trips_through_base64_and_rejects_wrong_lengths() {
        let kek = Kek::generate().expect("kek");
        let again = Kek::from_base64(&kek.to_base64()).expect("parse");
        assert_eq!(kek.0, again.0);
        assert!(Kek::from_base64("c2hvcnQ=").is_err());
        assert!(Kek::from_base64("not base64 at all!").is_err());
        assert_eq!(format!("{kek:?}"), "Kek(<redacted>)");
    }
}
