//! What each fuzz target in `fuzz/` does with one input, written once: the
//! targets call these, and a test replays the seed corpus through them on
//! stable. None may panic on any input; where one does, it has found a bug.
//! Built for tests and with the `fuzzing` feature only.

use crate::grants::{self, Grant};
use crate::keys::{self, Kek, Signer, VerifyingKey};
use crate::revocation::{Judge, RevocationSet};
use crate::{Catalog, Claims, authorization, duration, jwt};
use std::sync::OnceLock;

const DEFAULT_CATALOG: &str = include_str!("../../issuer/catalog/default.toml");

/// What a fuzz target does with one input.
pub type Body = fn(&[u8]);

/// Every fuzz target by name.
pub const TARGETS: [(&str, Body); 5] = [
    ("token", token),
    ("authorization", authorization),
    ("grant", grant),
    ("duration", duration),
    ("catalog", catalog),
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
