//! Helpers for the revocation feed tests: tokens made and switched by the
//! administrator, and waiting on what a follower's metrics say.

use super::{Harness, admin, by_id};
use std::time::Duration;
use tessera_proto::v1;

/// An API token made by the administrator: its record and its secret.
pub async fn admin_token(issuer: &Harness, name: &str) -> (v1::Token, String) {
    let reply = issuer
        .create_token(v1::CreateTokenRequest {
            name: name.into(),
            ..Default::default()
        })
        .await
        .expect("create");
    (reply.token.expect("metadata"), reply.secret)
}

pub async fn disable(issuer: &Harness, id: &str) {
    issuer
        .tokens()
        .disable_token(admin(v1::DisableTokenRequest { token: by_id(id) }))
        .await
        .expect("disable");
}

pub async fn enable(issuer: &Harness, id: &str) {
    issuer
        .tokens()
        .enable_token(admin(v1::EnableTokenRequest { token: by_id(id) }))
        .await
        .expect("enable");
}

/// Waits (bounded: 30 s) until `done`, polling every 20 ms.
pub async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
