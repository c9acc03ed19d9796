//! Signing and checking Tessera tokens (compact JWS, EdDSA only).
//!
//! Checking is split so both services share one rule set: [`check`] decides
//! whether a token string is well-formed and signed by a known key, and
//! returns its claims. Everything that depends on time or on what happened
//! since (expiry, issuer, disabled, revoked, grants) is decided by
//! [`crate::revocation::RevocationSet::check`], so a refused token still has
//! an identity to report.
//!
//! Tokens are signed with jsonwebtoken; the signature is checked with
//! ed25519-dalek directly — the very check jsonwebtoken's EdDSA verifier
//! makes — against a key decompressed once when it is loaded, since
//! jsonwebtoken would decompress it again on every call. A busy verifier
//! checks the signatures of concurrent requests together
//! ([`verify_together`]).
//!
//! The header and the claims are read strictly (RFC 7515 §4, RFC 7519 §4):
//! each must be one JSON object naming each member once, the claims carry
//! no audience and the header no critical extensions (see [`strict`] and
//! docs/verifier.md). Anything else is [`Rejection::Malformed`], so a token
//! means one thing to Tessera and to any other careful JWT reader.

use crate::keys::{ALGORITHM, Signer, VerifyingKey};
use crate::{Claims, CoreError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Verifier as _;
use jsonwebtoken::{Algorithm, Header};
use serde::Deserialize;
use strict::Fault;

mod strict;

/// The longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Signs `claims` with `signer`, naming its key in the header.
pub fn sign(claims: &Claims, signer: &Signer) -> Result<String, CoreError> {
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("JWT".into());
    header.kid = Some(signer.kid.clone());
    jsonwebtoken::encode(&header, claims, &signer.key)
        .map_err(|e| CoreError::Signing(e.to_string()))
}

/// Why a token string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not a JWT, too large, or its header or claims are unreadable or
    /// not held to the JOSE rules (one object, unique names, no `aud`, no
    /// `crit`).
    Malformed,
    /// The signature does not match, or the algorithm is not EdDSA.
    BadSignature,
    /// The `kid` names no key this checker knows.
    UnknownKey,
}

/// A refusal with a message a person can act on (never containing the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The reason code.
    pub reason: Rejection,
    /// What was wrong.
    pub message: String,
}

fn reject(reason: Rejection, message: impl Into<String>) -> Rejected {
    Rejected {
        reason,
        message: message.into(),
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
}

/// Header parameters whose presence alone refuses a token: Tessera
/// implements no JWS extension, and RFC 7515 §4.1.11 makes a token listing
/// one its reader does not understand invalid.
const REFUSED_HEADER: &[&str] = &["crit"];

/// Claims whose presence alone refuses a token: RFC 7519 §4.1.3 has a
/// token with an audience refused by every reader not named in it, and no
/// Tessera service is an audience (its tokens never carry one).
const REFUSED_CLAIMS: &[&str] = &["aud"];

fn bad_header(fault: Fault) -> Rejected {
    let message = match fault {
        Fault::NotAnObject => "token header is not a JSON object",
        Fault::Duplicate => "token header names a parameter twice",
        Fault::Refused(_) => {
            "token header lists critical extensions (crit), which Tessera does not support"
        }
        Fault::Array | Fault::Unreadable => "token header is not a JWS header",
    };
    reject(Rejection::Malformed, message)
}

fn bad_claims(fault: Fault) -> Rejected {
    let message = match fault {
        Fault::NotAnObject => "token claims are not a JSON object",
        Fault::Duplicate => "token claims name a member twice",
        Fault::Array => "token claims hold an array where an object belongs",
        Fault::Refused(_) => "token claims name an audience (aud), and no Tessera service is one",
        Fault::Unreadable => "token claims are unreadable",
    };
    reject(Rejection::Malformed, message)
}

/// Reads the `kid` of a token without checking anything else, refusing
/// tokens that are oversized, malformed or not EdDSA.
pub fn key_id(token: &str) -> Result<String, Rejected> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(reject(Rejection::Malformed, "token is larger than 8 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(reject(
            Rejection::Malformed,
            "token is not a compact JWS (three dot-separated parts)",
        ));
    };
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| reject(Rejection::Malformed, "token header is not base64url"))?;
    let header: RawHeader = strict::from_slice(&header, REFUSED_HEADER).map_err(bad_header)?;
    if header.alg != ALGORITHM {
        return Err(reject(
            Rejection::BadSignature,
            format!(
                "algorithm {:?} is not accepted: tokens are signed with EdDSA",
                header.alg
            ),
        ));
    }
    header
        .kid
        .ok_or_else(|| reject(Rejection::Malformed, "token header names no key (kid)"))
}

/// Checks a token's form and signature; `key` finds the public key for a
/// `kid`. The time window is not checked here (see the module doc).
pub fn check<'k>(
    token: &str,
    key: impl FnOnce(&str) -> Option<&'k VerifyingKey>,
) -> Result<Claims, Rejected> {
    let unchecked = Unchecked::read(token, key)?;
    unchecked.verify()?;
    unchecked.claims()
}

fn unreadable() -> Rejected {
    reject(Rejection::Malformed, "token claims are unreadable")
}

fn mismatch() -> Rejected {
    reject(Rejection::BadSignature, "token signature does not match")
}

/// A token whose form, algorithm and key are known good and whose signature
/// is still to be checked: alone ([`Unchecked::verify`]) or with others
/// ([`verify_together`]). It owns what the check needs, so it can wait for
/// a batch on another task.
#[derive(Debug, Clone)]
pub struct Unchecked {
    /// `header.payload`, the bytes signed.
    signed: String,
    signature: ed25519_dalek::Signature,
    key: ed25519_dalek::VerifyingKey,
}

impl Unchecked {
    /// Reads `token` and finds its key; `key` finds the public key for a
    /// `kid`.
    pub fn read<'k>(
        token: &str,
        key: impl FnOnce(&str) -> Option<&'k VerifyingKey>,
    ) -> Result<Self, Rejected> {
        let kid = key_id(token)?;
        let Some(key) = key(&kid) else {
            return Err(reject(
                Rejection::UnknownKey,
                "token is signed by an unknown key",
            ));
        };
        // key_id has checked the shape and the algorithm.
        let (signed, signature) = token.rsplit_once('.').ok_or_else(unreadable)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| unreadable())?;
        let signature =
            ed25519_dalek::Signature::from_slice(&signature).map_err(|_| unreadable())?;
        Ok(Self {
            signed: signed.into(),
            signature,
            key: key.key,
        })
    }

    /// The signature over `header.payload`, with the key decompressed at
    /// load: what jsonwebtoken's EdDSA check does, without re-reading the
    /// key on every call.
    pub fn verify(&self) -> Result<(), Rejected> {
        self.key
            .verify(self.signed.as_bytes(), &self.signature)
            .map_err(|_| mismatch())
    }

    /// The claims, to be read once the signature has checked.
    pub fn claims(&self) -> Result<Claims, Rejected> {
        let payload = self
            .signed
            .split_once('.')
            .map(|(_, p)| p)
            .ok_or_else(unreadable)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| unreadable())?;
        strict::from_slice::<Claims>(&payload, REFUSED_CLAIMS).map_err(bad_claims)
    }
}

/// Whether every signature in `tokens` is good, checked in one batch
/// equation, which costs about half as much per signature as checking
/// them one by one. `false` says only that at least one is bad: check them
/// alone to know which.
///
/// A batch and a single check differ only on signatures no one can make
/// without the private key (ones with a small-order or non-canonical `R`,
/// which the issuer never writes), so a token's answer is the same either
/// way.
pub fn verify_together(tokens: &[&Unchecked]) -> bool {
    let messages: Vec<&[u8]> = tokens.iter().map(|t| t.signed.as_bytes()).collect();
    let signatures: Vec<ed25519_dalek::Signature> = tokens.iter().map(|t| t.signature).collect();
    let keys: Vec<ed25519_dalek::VerifyingKey> = tokens.iter().map(|t| t.key).collect();
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{self, Kek};
    use crate::{Grant, TokenType};

    fn setup() -> (Signer, VerifyingKey) {
        let kek = Kek::generate().expect("kek");
        let pair = keys::generate(&kek).expect("generate");
        let signer = Signer::unseal(&kek, &pair.kid, &pair.sealed_private_key).expect("unseal");
        let verifying = VerifyingKey::from_public(&pair.kid, &pair.public_key).expect("public");
        (signer, verifying)
    }

    fn claims() -> Claims {
        Claims {
            iss: "tessera".into(),
            sub: "u1".into(),
            jti: "t1".into(),
            iat: 1_000,
            nbf: 1_000,
            exp: 2_000,
            typ: TokenType::Api,
            grants: vec![Grant::everything()],
            ver: 0,
            generation: 3,
        }
    }

    #[test]
    fn a_signed_token_gives_back_its_claims() {
        let (signer, key) = setup();
        let token = sign(&claims(), &signer).expect("sign");
        let found = |kid: &str| (kid == key.kid).then_some(&key);
        assert_eq!(check(&token, found), Ok(claims()));
    }

    #[test]
    fn a_tampered_or_foreign_token_is_refused() {
        let (signer, key) = setup();
        let (_, other) = setup();
        let token = sign(&claims(), &signer).expect("sign");
        let wrong_key = |_: &str| Some(&other);
        assert_eq!(
            check(&token, wrong_key).expect_err("").reason,
            Rejection::BadSignature
        );
        assert_eq!(
            check(&token, |_| None).expect_err("").reason,
            Rejection::UnknownKey
        );

        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut forged = claims();
        forged.sub = "someone-else".into();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
        let tampered = parts.join(".");
        let found = |_: &str| Some(&key);
        assert_eq!(
            check(&tampered, found).expect_err("").reason,
            Rejection::BadSignature
        );
    }

    #[test]
    fn other_algorithms_and_garbage_are_refused() {
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k"}"#),
            URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#)
        );
        assert_eq!(key_id(&none).expect_err("").reason, Rejection::BadSignature);
        let hs = format!(
            "{}.e30.sig",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","kid":"k"}"#)
        );
        assert_eq!(key_id(&hs).expect_err("").reason, Rejection::BadSignature);
        assert_eq!(key_id("").expect_err("").reason, Rejection::Malformed);
        assert_eq!(
            key_id("not a token").expect_err("").reason,
            Rejection::Malformed
        );
        assert_eq!(key_id("a.b.c").expect_err("").reason, Rejection::Malformed);
        let big = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(key_id(&big).expect_err("").reason, Rejection::Malformed);
    }

    /// `header` and `payload` as they are, signed with `signer`'s key: what
    /// only the key's holder can make.
    fn signed(header: &str, payload: &str, signer: &Signer) -> String {
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature =
            jsonwebtoken::crypto::sign(signed.as_bytes(), &signer.key, Algorithm::EdDSA)
                .expect("sign");
        format!("{signed}.{signature}")
    }

    fn header_of(signer: &Signer) -> String {
        format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#, signer.kid)
    }

    fn payload() -> String {
        serde_json::to_string(&claims()).expect("json")
    }

    /// The refusal of a token signed with the real key, at the issuer's
    /// `check` and at the verifier's read, verify and claims.
    fn refusal(token: &str, key: &VerifyingKey) -> Rejected {
        let found = |kid: &str| (kid == key.kid).then_some(key);
        let checked = check(token, found).expect_err("refused");
        let read = Unchecked::read(token, found).and_then(|u| {
            u.verify()?;
            u.claims()
        });
        assert_eq!(read, Err(checked.clone()), "the two paths disagree");
        checked
    }

    #[test]
    fn the_strict_form_of_a_signed_token_passes() {
        let (signer, key) = setup();
        let found = |kid: &str| (kid == key.kid).then_some(&key);
        let token = signed(&header_of(&signer), &payload(), &signer);
        assert_eq!(check(&token, found), Ok(claims()));
        // Spacing, member order, escapes and unknown members change nothing.
        let header = format!(
            " {{ \"x\" : [1, {{\"y\":1,\"y\":2}}], \"kid\":\"{}\", \"\\u0061lg\": \"EdDSA\" }} ",
            signer.kid
        );
        let payload = payload().replacen('{', r#"{"note":{"a":1,"a":1},"#, 1);
        let token = signed(&header, &payload, &signer);
        assert_eq!(check(&token, found), Ok(claims()));
    }

    #[test]
    fn an_array_claims_set_signed_with_the_real_key_is_malformed() {
        let (signer, key) = setup();
        // serde's sequence form of the claims struct, which serde_json reads.
        let array = serde_json::to_string(&(
            "tessera",
            "u1",
            "t1",
            1_000,
            1_000,
            2_000,
            "api",
            [Grant::everything()],
            0,
            3,
        ))
        .expect("json");
        assert_eq!(
            serde_json::from_str::<Claims>(&array).expect("serde reads it"),
            claims()
        );
        let refused = refusal(&signed(&header_of(&signer), &array, &signer), &key);
        assert_eq!(refused.reason, Rejection::Malformed);
        assert_eq!(refused.message, "token claims are not a JSON object");

        let grant_array =
            payload().replace(r#"{"resource":"*","actions":["*"]}"#, r#"["*",["*"]]"#);
        let refused = refusal(&signed(&header_of(&signer), &grant_array, &signer), &key);
        assert_eq!(refused.reason, Rejection::Malformed);
        for not_an_object in ["null", "\"claims\"", "7", ""] {
            let token = signed(&header_of(&signer), not_an_object, &signer);
            assert_eq!(refusal(&token, &key).reason, Rejection::Malformed);
        }
    }

    #[test]
    fn an_array_header_is_malformed() {
        let (signer, key) = setup();
        let header = format!(r#"["JWT","EdDSA","{}"]"#, signer.kid);
        let token = signed(&header, &payload(), &signer);
        let refused = refusal(&token, &key);
        assert_eq!(refused.reason, Rejection::Malformed);
        assert_eq!(refused.message, "token header is not a JSON object");
        assert_eq!(key_id(&token), Err(refused));
    }

    #[test]
    fn a_claim_named_twice_is_malformed() {
        let (signer, key) = setup();
        for twice in [
            payload().replacen('{', r#"{"exp":4102444800,"#, 1),
            payload().replacen('{', r#"{"sub":"someone-else","#, 1),
            payload().replacen('{', r#"{"\u0073ub":"u1","#, 1),
            payload().replacen('{', r#"{"x":1,"x":1,"#, 1),
            payload().replace(r#""actions""#, r#""resource":"*","actions""#),
        ] {
            let refused = refusal(&signed(&header_of(&signer), &twice, &signer), &key);
            assert_eq!(refused.reason, Rejection::Malformed, "{twice}");
            assert_eq!(refused.message, "token claims name a member twice");
        }
    }

    #[test]
    fn a_header_parameter_named_twice_is_malformed() {
        let (signer, key) = setup();
        for header in [
            format!(r#"{{"alg":"EdDSA","alg":"EdDSA","kid":"{}"}}"#, signer.kid),
            format!(r#"{{"alg":"HS256","alg":"EdDSA","kid":"{}"}}"#, signer.kid),
            format!(r#"{{"alg":"EdDSA","kid":"{0}","kid":"{0}"}}"#, signer.kid),
            format!(
                r#"{{"alg":"EdDSA","typ":"JWT","typ":"JWT","kid":"{}"}}"#,
                signer.kid
            ),
        ] {
            let token = signed(&header, &payload(), &signer);
            let refused = refusal(&token, &key);
            assert_eq!(refused.reason, Rejection::Malformed, "{header}");
            assert_eq!(refused.message, "token header names a parameter twice");
            assert_eq!(key_id(&token), Err(refused));
        }
    }

    #[test]
    fn an_audience_or_a_critical_extension_is_malformed() {
        let (signer, key) = setup();
        for aud in [r#""tessera""#, r#"["tessera"]"#, "null"] {
            let payload = payload().replacen('{', &format!(r#"{{"aud":{aud},"#), 1);
            let refused = refusal(&signed(&header_of(&signer), &payload, &signer), &key);
            assert_eq!(refused.reason, Rejection::Malformed, "{aud}");
        }
        let crit = format!(
            r#"{{"alg":"EdDSA","kid":"{}","crit":["b64"],"b64":true}}"#,
            signer.kid
        );
        let refused = refusal(&signed(&crit, &payload(), &signer), &key);
        assert_eq!(refused.reason, Rejection::Malformed);
    }
}

#[cfg(test)]
mod size_bound {
    use super::*;
    use crate::grants::{MAX_GRANTS_JSON_BYTES, json_size};
    use crate::keys::{self, Kek};
    use crate::{Grant, TokenType};

    /// The largest grants the limits allow, in the largest claims, still
    /// make a token the verifiers accept.
    #[test]
    fn the_largest_token_the_limits_allow_fits() {
        let kek = Kek::generate().expect("kek");
        let pair = keys::generate(&kek).expect("generate");
        let signer = Signer::unseal(&kek, &pair.kid, &pair.sealed_private_key).expect("unseal");
        let mut grants = Vec::new();
        let mut n = 0;
        loop {
            let mut next = grants.clone();
            next.push(Grant {
                resource: format!("repositories/{}", "x".repeat(100 + n % 7)),
                actions: vec!["read".into(), "write".into(), "download".into()],
            });
            if json_size(&next) > MAX_GRANTS_JSON_BYTES {
                break;
            }
            grants = next;
            n += 1;
        }
        let claims = Claims {
            iss: "i".repeat(128),
            sub: uuid::Uuid::now_v7().to_string(),
            jti: uuid::Uuid::now_v7().to_string(),
            iat: i64::MAX,
            nbf: i64::MAX,
            exp: i64::MAX,
            typ: TokenType::Session,
            grants,
            ver: u32::MAX,
            generation: u64::MAX,
        };
        let token = sign(&claims, &signer).expect("sign");
        assert!(
            token.len() <= MAX_TOKEN_BYTES,
            "{} bytes with {} bytes of grants",
            token.len(),
            json_size(&claims.grants)
        );
        assert!(key_id(&token).is_ok());
    }
}
