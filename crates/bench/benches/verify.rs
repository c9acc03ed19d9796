//! Criterion benches of the verifier's in-process path: a cold signature
//! check, and a revocation-set lookup in an empty and a large set.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tessera_core::keys::{self, Kek, Signer, VerifyingKey};
use tessera_core::revocation::{Change, Event, Id, Judge, RevocationSet};
use tessera_core::{Claims, Grant, TokenType, jwt};

fn claims() -> Claims {
    Claims {
        iss: "tessera".into(),
        sub: "01900000-0000-7000-8000-0000000000aa".into(),
        jti: "01900000-0000-7000-8000-ffffffffffff".into(),
        iat: 1_000,
        nbf: 1_000,
        exp: 4_000_000_000,
        typ: TokenType::Api,
        grants: vec![Grant {
            resource: "repositories/Samples".into(),
            actions: vec!["read".into(), "run".into()],
        }],
        ver: 0,
        generation: 1,
    }
}

fn set_of(n: u64) -> RevocationSet {
    let mut set = RevocationSet::new();
    for i in 1..=n {
        set.apply(&Event {
            seq: i64::try_from(i).unwrap_or(i64::MAX),
            token: Id::parse(&format!("01900000-0000-7000-8000-{i:012x}")),
            user: None,
            change: Change::RevokeToken,
            prune_after: i64::MAX,
        });
    }
    set
}

fn benches(c: &mut Criterion) {
    let kek = Kek::generate().expect("kek");
    let pair = keys::generate(&kek).expect("key pair");
    let signer = Signer::unseal(&kek, &pair.kid, &pair.sealed_private_key).expect("signer");
    let key = VerifyingKey::from_public(&pair.kid, &pair.public_key).expect("public key");
    let token = jwt::sign(&claims(), &signer).expect("sign");
    c.bench_function("jwt::check (cold EdDSA signature check)", |b| {
        b.iter(|| jwt::check(black_box(&token), |_| Some(&key)).expect("valid"))
    });

    let c0 = claims();
    let issuers = vec![c0.iss.clone()];
    let judge = Judge {
        now: 2_000,
        leeway_secs: 60,
        issuers: &issuers,
    };
    for n in [0u64, 1_000_000] {
        let set = set_of(n);
        c.bench_function(&format!("RevocationSet::check with {n} entries"), |b| {
            b.iter(|| set.check(black_box(&c0), judge).expect("not revoked"))
        });
    }
}

criterion_group!(verify, benches);
criterion_main!(verify);
