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

/// Usage merges in any order: the later time wins with its caller (an
/// unknown caller keeps the known one), counts add, a deleted token is
/// skipped, and an oversized batch is refused whole.
async fn usage_merges_in_any_order(backend: Backend) {
    use tessera_store::usage::{CHUNK, TokenUse};
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    store.migrate().await.expect("migrate");
    store
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
    let id = "01900000-0000-7000-8000-000000000001";
    store
        .create_token(
            NewToken {
                id: id.into(),
                owner_id: "u1".into(),
                name: "t".into(),
                description: String::new(),
                token_type: TokenType::Api,
                session_kind: None,
                enabled: true,
                all_permissions: false,
                grants: vec![],
                key_id: "k".into(),
                create_time: 1_000,
                expire_time: 9_000,
                generation: 1,
            },
            NewAudit::ok("carol", "token.create", "t"),
        )
        .await
        .expect("token");
    let used = |t: i64, count: u64, caller: Option<&str>| TokenUse {
        token_id: id.into(),
        last_used_time: t,
        count,
        caller: caller.map(str::to_owned),
    };
    let row = || async {
        let row = store.token_by_id(id).await.expect("read").expect("row");
        (row.last_used_time, row.use_count, row.last_caller)
    };
    assert_eq!(row().await, (None, 0, None));
    let gone = TokenUse {
        token_id: "01900000-0000-7000-8000-0000000000ff".into(),
        ..used(1, 1, None)
    };
    let changed = store
        .merge_usage(&[used(2_000, 2, Some("192.0.2.2")), gone])
        .await
        .expect("merge");
    assert_eq!(changed, 1, "the unknown token is skipped");
    store
        .merge_usage(&[used(1_500, 3, Some("192.0.2.1"))])
        .await
        .expect("an older batch");
    assert_eq!(row().await, (Some(2_000), 5, Some("192.0.2.2".into())));
    store
        .merge_usage(&[used(2_500, 1, None)])
        .await
        .expect("a later batch with no caller");
    assert_eq!(row().await, (Some(2_500), 6, Some("192.0.2.2".into())));
    let too_many = vec![used(3_000, 1, None); CHUNK + 1];
    assert!(store.merge_usage(&too_many).await.is_err());
    assert_eq!(row().await.1, 6);
}

on_both_backends!(
    migrations_are_idempotent_and_names_unique_in_the_database,
    revocation_sequence_numbers_are_dense_under_concurrent_appends,
    usage_merges_in_any_order,
);

/// The SQLite files are owner-only, and after a clean stop the `.db` file
/// alone holds the data (the write-ahead log is emptied into it).
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_are_private_and_whole_after_a_clean_stop() {
    use std::os::unix::fs::PermissionsExt;
    let issuer = crate::support::Harness::start(Backend::Sqlite).await;
    issuer
        .create_token(tessera_proto::v1::CreateTokenRequest {
            name: "kept".into(),
            ..Default::default()
        })
        .await
        .expect("create");
    let url = issuer.db().url.clone();
    let path = url
        .strip_prefix("sqlite://")
        .and_then(|rest| rest.split('?').next())
        .expect("a sqlite file URL")
        .to_owned();
    let mode = |p: &str| std::fs::metadata(p).expect("file").permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600, "the database file is owner-only");
    // Keep the database (its directory goes with it) while looking.
    let db = issuer.stop().await;
    assert!(std::path::Path::new(&path).exists());
    let wal = format!("{path}-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_len, 0, "the write-ahead log was emptied into the file");
    drop(db);
}
