//! The store on its own: migrations, constraints, the revocation sequence.

use crate::on_both_backends;
use crate::support::{Backend, TestDb};
use tessera_core::{Grant, TokenType};
use tessera_store::StoreError;
use tessera_store::audit::NewAudit;
use tessera_store::revocation::{EventKind, NewRevocation};
use tessera_store::tokens::NewToken;
use tessera_store::users::NewUser;

async fn migrations_are_idempotent_and_names_unique_in_the_database(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store.migrate().await.expect("first migration");
    store.migrate().await.expect("second migration is a no-op");
    let user = store
        .create_user(
            1_000,
            NewUser {
                id: "u1".into(),
                username: "carol".into(),
                password_hash: "x".into(),
                admin: false,
                enabled: true,
                grants: vec![],
            },
            None,
        )
        .await
        .expect("user");
    let token = |id: &str| NewToken {
        id: id.into(),
        owner_id: user.id.clone(),
        name: "same".into(),
        description: String::new(),
        token_type: TokenType::Api,
        session_kind: None,
        enabled: true,
        all_permissions: false,
        grants: vec![Grant::everything()],
        key_id: "k".into(),
        create_time: 1_000,
        expire_time: 2_000,
        generation: 1,
    };
    let audit = || NewAudit::ok("carol", "token.create", "t");
    store
        .create_token(token("t1"), audit())
        .await
        .expect("first");
    let second = store.create_token(token("t2"), audit()).await;
    assert!(
        matches!(second, Err(StoreError::AlreadyExists)),
        "{second:?}"
    );
    assert!(
        store.token_by_id("t2").await.expect("read").is_none(),
        "nothing half-written"
    );
    let audited = store
        .list_audit(tessera_store::audit::AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("audit");
    assert_eq!(
        audited.len(),
        1,
        "the failed create's audit event rolled back with it"
    );
}

async fn revocation_sequence_numbers_are_dense_under_concurrent_appends(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store.migrate().await.expect("migrate");
    let appends: Vec<_> = (0..12)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let event =
                    NewRevocation::token(EventKind::RevokeToken, &format!("t{i}"), "u", 5_000);
                store.append_revocation(1_000, event).await
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for append in appends {
        seqs.push(append.await.expect("task").expect("append"));
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=12).collect::<Vec<i64>>());
    let events = store.revocations_after(5, 100).await.expect("read");
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (6..=12).collect::<Vec<i64>>()
    );
}

on_both_backends!(
    migrations_are_idempotent_and_names_unique_in_the_database,
    revocation_sequence_numbers_are_dense_under_concurrent_appends,
);
