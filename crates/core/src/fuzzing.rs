//! What each fuzz target in `fuzz/` does with one input, written once: the
//! targets call these, and a test replays the seed corpus through them on
//! stable. None may panic on any input; where one does, it has found a bug.
//! Built for tests and with the `fuzzing` feature only.

use crate::grants::{self, Grant};
use crate::keys::{self, Kek, Signer, VerifyingKey};
use crate::revocation::{Judge, RevocationSet};
use crate::{Catalog, Claims, authorization, duration, jwt};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::sync::OnceLock;

const DEFAULT_CATALOG: &str = include_str!("../../issuer/catalog/default.toml");

/// What a fuzz target does with one input.
pub type Body = fn(&[u8]);

/// Every fuzz target by name.
pub const TARGETS: [(&str, Body); 6] = [
    ("token", token),
    ("authorization", authorization),
    ("grant", grant),
    ("duration", duration),
    ("catalog", catalog),
    ("jose", jose),
];

/// The body of the target named `name`.
pub fn body(name: &str) -> Option<Body> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

struct Keys {
    signer: Signer,
    verifying: VerifyingKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let kek = Kek::generate().expect("kek");
        let pair = keys::generate(&kek).expect("key pair");
        Keys {
            signer: Signer::unseal(&kek, &pair.kid, &pair.sealed_private_key).expect("unseal"),
            verifying: VerifyingKey::from_public(&pair.kid, &pair.public_key).expect("public"),
        }
    })
}

fn judge(claims: &Claims) {
    let issuers = ["tessera".to_string()];
    let _ = RevocationSet::new().check(
        claims,
        Judge {
            now: 0,
            leeway_secs: 60,
            issuers: &issuers,
        },
    );
}

/// A token string: `jwt::key_id` and `jwt::check` against a fixed key, then
/// the revocation rule on whatever checks. Input that reads as claims JSON
/// is also signed with that key and checked back, so the paths behind the
/// signature check are reached too (random bytes never carry a valid
/// signature).
pub fn token(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let keys = keys();
    let _ = jwt::key_id(s);
    if let Ok(claims) = jwt::check(s, |_| Some(&keys.verifying)) {
        judge(&claims);
    }
    if let Ok(claims) = serde_json::from_str::<Claims>(s) {
        let token = jwt::sign(&claims, &keys.signer).expect("claims that parse can be signed");
        if token.len() <= jwt::MAX_TOKEN_BYTES {
            let known = |kid: &str| (kid == keys.verifying.kid).then_some(&keys.verifying);
            let back = jwt::check(&token, known).expect("a freshly signed token checks");
            assert_eq!(back, claims, "claims changed in a sign/check round trip");
        }
        judge(&claims);
    }
}

/// An `authorization` header value, in both parsers.
pub fn authorization(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = authorization::parse(s);
    let _ = authorization::token(s);
}

/// A `--grant` text: `Grant::parse`, then the default catalog's checks and
/// the grant-set operations on whatever parses.
pub fn grant(data: &[u8]) {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(grant) = Grant::parse(s) else {
        return;
    };
    let catalog = CATALOG
        .get_or_init(|| Catalog::parse(DEFAULT_CATALOG).expect("the default catalog parses"));
    let _ = catalog.check(&grant);
    let set = [grant];
    let _ = catalog.missing_dependencies(&set);
    let [grant] = &set;
    for action in grant
        .actions
        .iter()
        .map(String::as_str)
        .chain(["read", "*"])
    {
        let _ = grants::allows(&set, &grant.resource, action);
    }
    let _ = grants::intersect(&set, &set);
    let _ = grants::intersect(&set, &[Grant::everything()]);
    let _ = grants::intersect(&[Grant::everything()], &set);
}

/// A duration text; whatever parses must format and parse back the same.
pub fn duration(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = duration::parse(s) {
        let text = duration::format(d);
        assert_eq!(duration::parse(&text), Ok(d), "{text:?} does not read back");
    }
}

/// A permission catalog file.
pub fn catalog(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Catalog::parse(s);
}

/// The key of the `jose` target: fixed, so a saved input replays the same.
const JOSE_SEED: [u8; 32] = [0x4a; 32];
const JOSE_ISSUER: &str = "tessera";
const JOSE_LEEWAY_SECS: i64 = 60;

struct JoseKeys {
    signing: ed25519_dalek::SigningKey,
    verifying: VerifyingKey,
    decoding: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    issuers: [String; 1],
}

fn jose_keys() -> &'static JoseKeys {
    static KEYS: OnceLock<JoseKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let signing = ed25519_dalek::SigningKey::from_bytes(&JOSE_SEED);
        let public = URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes());
        // Tessera's rules in jsonwebtoken's terms: EdDSA only, the time
        // window with the same leeway, the trusted issuer, and every claim
        // jsonwebtoken knows how to require that Tessera requires.
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
        validation.leeway = JOSE_LEEWAY_SECS.unsigned_abs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[JOSE_ISSUER]);
        JoseKeys {
            verifying: VerifyingKey::from_public("k-jose", &public).expect("public"),
            decoding: jsonwebtoken::DecodingKey::from_ed_components(&public).expect("public"),
            signing,
            validation,
            issuers: [JOSE_ISSUER.to_string()],
        }
    })
}

impl JoseKeys {
    /// `header` and `payload` exactly as given, signed.
    fn sign(&self, header: &[u8], payload: &[u8]) -> String {
        use ed25519_dalek::Signer as _;
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = self.signing.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

/// Differential: Tessera against a strict reference, jsonwebtoken's
/// `decode`, on the same validly signed tokens. The input is a header JSON,
/// a newline and a claims JSON (without a newline, all of it is the claims,
/// under a plain EdDSA header); both are signed as they are with a fixed
/// key, so the two readers see arbitrary JSON behind a good signature,
/// which is where they could differ. The input is also compared as a token
/// string as it is. A token one accepts and the other refuses panics,
/// beyond these documented differences (fuzz/README.md lists them too):
///
/// Tessera's own rules, applied to jsonwebtoken's answer as well: at most
/// `jwt::MAX_TOKEN_BYTES`, a `kid` in the header, a `jti` that is a UUID,
/// and the claims as `Claims` types them (jsonwebtoken decodes the same
/// struct: integer times, `typ` `api` or `session`, grants, `ver`, `gen`).
///
/// Tessera refuses, jsonwebtoken accepts (RFC 7515 §4 and RFC 7519 §4 let
/// a reader refuse duplicate names or keep the last; Tessera refuses):
/// - a member name twice in the header, the claims or a grant, when it is
///   not one of the fields jsonwebtoken's own structs read (those it refuses
///   too);
/// - a grant written as an array (serde's sequence form of `Grant`);
/// - `aud` with the value `null` (jsonwebtoken reads it as absent; any
///   other audience it refuses, as Tessera does, RFC 7519 §4.1.3);
/// - `crit: ["b64"]` with `b64: true` (jsonwebtoken implements RFC 7797's
///   `b64`; Tessera refuses every `crit`).
///
/// jsonwebtoken refuses, Tessera accepts:
/// - a header parameter Tessera does not read (`typ`, `cty`, `jwk`, `x5c`,
///   `b64`, any other name) with a value jsonwebtoken cannot read or does
///   not allow: Tessera ignores it, as RFC 7515 §4 asks of parameters a
///   reader does not understand; the token must then agree with one whose
///   header keeps only `alg` and `kid`;
/// - an `nbf` written with a minus sign: jsonwebtoken reads NumericDates as
///   unsigned, and RFC 7519 §2 allows dates before 1970.
pub fn jose(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let keys = jose_keys();
    let token = match s.split_once('\n') {
        Some((header, payload)) => keys.sign(header.as_bytes(), payload.as_bytes()),
        None => keys.sign(br#"{"alg":"EdDSA","typ":"JWT","kid":"k-jose"}"#, data),
    };
    jose_compare(&token, keys);
    jose_compare(s, keys);
}

fn jose_compare(token: &str, keys: &JoseKeys) {
    let part = |i: usize| {
        token
            .split('.')
            .nth(i)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
    };
    let payload = part(1);
    let header = part(0).and_then(|json| Reading::of(&json, false));
    let claims = payload.as_deref().and_then(|json| Reading::of(json, true));
    let checked = jwt::check(token, |_| Some(&keys.verifying));

    // What only the strict reading refuses: Tessera must refuse it too.
    let strict = match (&header, &claims) {
        (Some(header), Some(claims)) => {
            if header.duplicate || claims.duplicate {
                Some("header or claims name a member twice")
            } else if header.has("crit") {
                Some("header has crit")
            } else if claims.has("aud") {
                Some("claims have aud")
            } else if claims.grant_array {
                Some("claims hold a grant written as an array")
            } else {
                None
            }
        }
        _ => Some("header or claims are not JSON objects"),
    };
    if let Some(why) = strict {
        if let Ok(claims) = checked {
            panic!("tessera accepts a token whose {why}: {token} ({claims:?})");
        }
        return;
    }

    let before = jsonwebtoken::get_current_timestamp();
    let ours = jose_judge(&checked, keys, before);
    let theirs = jose_reference(token, keys);
    let stripped = match (&ours, &theirs, &header, &payload) {
        (Ok(()), Err(_), Some(header), Some(payload)) => Some(jose_reference(
            &keys.sign(&header.stripped(), payload),
            keys,
        )),
        _ => None,
    };
    let after = jsonwebtoken::get_current_timestamp();
    if ours.is_ok() != jose_judge(&checked, keys, after).is_ok() {
        // The clock crossed `exp` or `nbf` while jsonwebtoken was reading it.
        return;
    }
    match (ours, theirs) {
        (Ok(()), Ok(())) | (Err(_), Err(_)) => {}
        (Err(ours), Ok(())) => {
            panic!("tessera refuses ({ours}) a token jsonwebtoken accepts: {token}")
        }
        (Ok(()), Err(theirs)) => {
            let negative_nbf = claims.as_ref().is_some_and(|c| c.negative_nbf);
            let explained = match stripped {
                Some(Ok(())) => true,
                Some(Err(stripped)) => stripped.nbf && negative_nbf,
                None => false,
            };
            assert!(
                explained,
                "jsonwebtoken refuses ({}) a token tessera accepts: {token}",
                theirs.why
            );
        }
    }
}

/// Tessera's answer at `now`: the token check, then the revocation rule
/// with nothing revoked.
fn jose_judge(
    checked: &Result<Claims, jwt::Rejected>,
    keys: &JoseKeys,
    now: u64,
) -> Result<(), String> {
    let claims = checked.as_ref().map_err(|r| r.message.clone())?;
    let judge = Judge {
        now: i64::try_from(now).unwrap_or(i64::MAX),
        leeway_secs: JOSE_LEEWAY_SECS,
        issuers: &keys.issuers,
    };
    RevocationSet::new()
        .check(claims, judge)
        .map(|_| ())
        .map_err(|r| format!("{r:?}"))
}

struct JoseRefusal {
    why: String,
    /// Refused for its `nbf` alone.
    nbf: bool,
}

/// jsonwebtoken's answer, with Tessera's own rules on top.
fn jose_reference(token: &str, keys: &JoseKeys) -> Result<(), JoseRefusal> {
    use jsonwebtoken::errors::ErrorKind;
    let rule = |why: &str| JoseRefusal {
        why: why.into(),
        nbf: false,
    };
    if token.len() > jwt::MAX_TOKEN_BYTES {
        return Err(rule("larger than tessera's limit"));
    }
    let data = jsonwebtoken::decode::<Claims>(token, &keys.decoding, &keys.validation).map_err(
        |e| JoseRefusal {
            nbf: matches!(e.kind(),
                ErrorKind::MissingRequiredClaim(c) | ErrorKind::InvalidClaimFormat(c) if c == "nbf"),
            why: e.to_string(),
        },
    )?;
    if data.header.kid.is_none() {
        return Err(rule("no kid"));
    }
    if uuid::Uuid::parse_str(&data.claims.jti).is_err() {
        return Err(rule("jti is not a uuid"));
    }
    Ok(())
}

/// What a strict reading of a header or a claims set finds, written apart
/// from `jwt`'s reader so the two can disagree. It looks at the objects
/// Tessera reads (the header, the claims, each grant) and skips the rest.
#[derive(Default)]
struct Reading {
    names: Vec<String>,
    duplicate: bool,
    grant_array: bool,
    negative_nbf: bool,
    alg: Option<serde_json::Value>,
    kid: Option<serde_json::Value>,
}

impl Reading {
    /// `None` when `json` is not one JSON object Tessera could read.
    fn of(json: &[u8], claims: bool) -> Option<Self> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let reading = ReadingSeed { claims }.deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(reading)
    }

    fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// The header with only the parameters Tessera reads.
    fn stripped(&self) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        for (name, value) in [("alg", &self.alg), ("kid", &self.kid)] {
            if let Some(value) = value {
                header.insert(name.into(), value.clone());
            }
        }
        serde_json::to_vec(&header).expect("a JSON map serializes")
    }
}

struct ReadingSeed {
    claims: bool,
}

impl<'de> DeserializeSeed<'de> for ReadingSeed {
    type Value = Reading;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Reading, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ReadingSeed {
    type Value = Reading;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Reading, A::Error> {
        let mut reading = Reading::default();
        while let Some(name) = map.next_key::<String>()? {
            match (self.claims, name.as_str()) {
                (true, "grants") => {
                    let shapes: GrantShapes = map.next_value()?;
                    reading.duplicate |= shapes.duplicate;
                    reading.grant_array |= shapes.array;
                }
                (true, "nbf") => reading.negative_nbf = map.next_value::<Signed>()?.0,
                (false, "alg") => reading.alg = Some(map.next_value()?),
                (false, "kid") => reading.kid = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            reading.duplicate |= reading.has(&name);
            reading.names.push(name);
        }
        Ok(reading)
    }
}

/// Whether some grant names a member twice or is written as an array.
#[derive(Default)]
struct GrantShapes {
    duplicate: bool,
    array: bool,
}

impl<'de> Deserialize<'de> for GrantShapes {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Grants;
        impl<'de> Visitor<'de> for Grants {
            type Value = GrantShapes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of grants")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GrantShapes, A::Error> {
                let mut shapes = GrantShapes::default();
                while let Some(grant) = seq.next_element::<GrantShape>()? {
                    shapes.duplicate |= grant.duplicate;
                    shapes.array |= grant.array;
                }
                Ok(shapes)
            }
        }
        de.deserialize_seq(Grants)
    }
}

#[derive(Default)]
struct GrantShape {
    duplicate: bool,
    array: bool,
}

impl<'de> Deserialize<'de> for GrantShape {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Grant;
        impl<'de> Visitor<'de> for Grant {
            type Value = GrantShape;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a grant")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GrantShape, A::Error> {
                let mut names: Vec<String> = Vec::new();
                let mut shape = GrantShape::default();
                while let Some(name) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    shape.duplicate |= names.contains(&name);
                    names.push(name);
                }
                Ok(shape)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GrantShape, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(GrantShape {
                    duplicate: false,
                    array: true,
                })
            }
        }
        de.deserialize_any(Grant)
    }
}

/// Whether a number is written with a minus sign (serde_json hands those,
/// and only those, to `visit_i64`).
struct Signed(bool);

impl<'de> Deserialize<'de> for Signed {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Number;
        impl Visitor<'_> for Number {
            type Value = Signed;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Signed, E> {
                Ok(Signed(true))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Signed, E> {
                Ok(Signed(false))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Signed, E> {
                Ok(Signed(v.is_sign_negative()))
            }
        }
        de.deserialize_any(Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOSE_CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/jose");

    /// Whether Tessera and jsonwebtoken (with Tessera's own rules) accept
    /// the token the `jose` target makes of a seed.
    fn verdicts(seed: &str) -> (bool, bool) {
        let path = format!("{JOSE_CORPUS}/{seed}");
        let data = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let keys = jose_keys();
        let (header, payload) = data.split_once('\n').expect("header and claims");
        let token = keys.sign(header.as_bytes(), payload.as_bytes());
        let checked = jwt::check(&token, |_| Some(&keys.verifying));
        let now = jsonwebtoken::get_current_timestamp();
        (
            jose_judge(&checked, keys, now).is_ok(),
            jose_reference(&token, keys).is_ok(),
        )
    }

    #[test]
    fn the_jose_seeds_show_each_documented_difference() {
        let both = (true, true);
        let neither = (false, false);
        let only_jsonwebtoken = (false, true);
        let only_tessera = (true, false);
        for (seed, expected) in [
            ("valid", both),
            ("claims-array", neither),
            ("claims-exp-twice", neither),
            ("claims-expired", neither),
            ("grant-name-twice", neither),
            ("header-alg-twice", neither),
            ("header-array", neither),
            ("header-no-kid", neither),
            ("claims-unknown-twice", only_jsonwebtoken),
            ("grant-array", only_jsonwebtoken),
            ("claims-aud-null", only_jsonwebtoken),
            ("header-crit-b64", only_jsonwebtoken),
            ("header-typ-number", only_tessera),
            ("claims-nbf-negative", only_tessera),
        ] {
            assert_eq!(verdicts(seed), expected, "{seed}: (tessera, jsonwebtoken)");
        }
    }
}
