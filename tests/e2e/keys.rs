//! KeyService.ListKeys, and tokens as standard JWTs any library can check.

use crate::on_both_backends;
use crate::support::{Backend, Harness};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tessera_proto::v1;

#[derive(Debug, serde::Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    jti: String,
    typ: String,
    exp: i64,
    grants: Vec<serde_json::Value>,
}

async fn a_token_is_a_standard_eddsa_jwt_checked_by_the_published_keys(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let created = issuer
        .create_token(v1::CreateTokenRequest {
            name: "checked elsewhere".into(),
            all_permissions: true,
            ..Default::default()
        })
        .await
        .expect("create");
    let token = created.token.expect("metadata");

    let keys = issuer
        .keys()
        .list_keys(v1::ListKeysRequest {})
        .await
        .expect("list keys")
        .into_inner();
    assert_eq!(keys.keys.len(), 1);
    let key = &keys.keys[0];
    assert_eq!(key.algorithm, "EdDSA");
    assert_eq!(key.state, v1::KeyState::Active as i32);

    let header = jsonwebtoken::decode_header(&created.secret).expect("header");
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
    assert_eq!(token.key_id, key.kid);

    // Through the raw public key…
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["tessera"]);
    let decoding = DecodingKey::from_ed_components(&key.public_key).expect("public key");
    let claims = jsonwebtoken::decode::<Claims>(&created.secret, &decoding, &validation)
        .expect("the token verifies with the published key")
        .claims;
    assert_eq!(claims.jti, token.id);
    assert_eq!(claims.sub, token.owner_id);
    assert_eq!(claims.typ, "api");
    assert_eq!(claims.iss, "tessera");
    assert_eq!(claims.exp, token.expire_time.expect("expiry").seconds);
    assert_eq!(claims.grants.len(), 1);

    // …and through the JWKS document.
    let jwks: JwkSet = serde_json::from_str(&keys.jwks_json).expect("JWKS parses");
    let jwk = jwks.find(&key.kid).expect("the key is in the JWKS");
    let from_jwk = DecodingKey::from_jwk(jwk).expect("JWK is usable");
    assert!(jsonwebtoken::decode::<Claims>(&created.secret, &from_jwk, &validation).is_ok());

    // A token whose payload was changed does not verify.
    let mut parts: Vec<&str> = created.secret.split('.').collect();
    let forged_payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"iss":"tessera","sub":"x","jti":"y","typ":"api","exp":9999999999,"grants":[]}"#,
    );
    parts[1] = &forged_payload;
    let forged = parts.join(".");
    assert!(jsonwebtoken::decode::<Claims>(&forged, &decoding, &validation).is_err());
    issuer.stop().await;
}

on_both_backends!(a_token_is_a_standard_eddsa_jwt_checked_by_the_published_keys);
