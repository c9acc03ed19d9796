//! Races and failures: concurrent enable/disable leave the log in step with
//! the token, and a change whose transaction fails leaves nothing behind.

use crate::on_both_backends;
use crate::support::lifecycle::{
    admin_session, api_token, authenticates, events, mask, new_user, token_events, token_row, users,
};
use crate::support::{Backend, Harness, bearer, by_id, expect_code};
use tessera_proto::v1;
use tonic::Code;

async fn concurrent_enable_and_disable_keep_the_log_in_step(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let session = admin_session(&issuer).await;
    let (token, secret) = api_token(&issuer, &session, "flapping", 3_600, vec![]).await;
    let racers: Vec<_> = (0..10)
        .map(|i| {
            let mut client = issuer.tokens();
            let session = session.clone();
            let id = token.id.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    client
                        .disable_token(bearer(
                            v1::DisableTokenRequest { token: by_id(&id) },
                            &session,
                        ))
                        .await
                        .map(|_| ())
                } else {
                    client
                        .enable_token(bearer(
                            v1::EnableTokenRequest { token: by_id(&id) },
                            &session,
                        ))
                        .await
                        .map(|_| ())
                }
            })
        })
        .collect();
    for racer in racers {
        racer.await.expect("task").expect("every call succeeds");
    }
    let row = token_row(&store, &token.id).await.expect("row");
    let kinds: Vec<_> = token_events(&store, &token.id)
        .await
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
    assert!(!kinds.is_empty());
    // Only real changes are logged, so the kinds alternate, starting with a
    // disable (the token started enabled) and ending with the final state.
    for (i, kind) in kinds.iter().enumerate() {
        let want = if i % 2 == 0 {
            "disable_token"
        } else {
            "enable_token"
        };
        assert_eq!(kind, want, "{kinds:?}");
    }
    let last = kinds.last().expect("an event");
    assert_eq!(
        last == "enable_token",
        row.enabled,
        "{kinds:?} vs enabled={}",
        row.enabled
    );
    assert_eq!(authenticates(&issuer, &secret).await, row.enabled);
    issuer.stop().await;
}

async fn a_failed_transaction_leaves_no_half_done_change(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let session = admin_session(&issuer).await;
    let (token, secret) = api_token(&issuer, &session, "kept", 3_600, vec![]).await;
    let carol = new_user(&issuer, &session, "carol", vec![]).await;
    let before = events(&store).await.len();
    // The audit insert is the last write of every change: make it fail.
    store
        .execute_unprepared("ALTER TABLE audit_events RENAME TO audit_events_away")
        .await
        .expect("hide the audit table");

    let disable = issuer
        .tokens()
        .disable_token(bearer(
            v1::DisableTokenRequest {
                token: by_id(&token.id),
            },
            &session,
        ))
        .await;
    let status = expect_code(disable, Code::Internal);
    assert!(
        !status.message().contains("audit_events"),
        "details stay in the log: {status:?}"
    );
    let rotate = issuer
        .tokens()
        .rotate_token(bearer(
            v1::RotateTokenRequest {
                token: by_id(&token.id),
                ..Default::default()
            },
            &session,
        ))
        .await;
    expect_code(rotate, Code::Internal);
    let disable_user = users(&issuer)
        .update_user(bearer(
            v1::UpdateUserRequest {
                user: Some(v1::User {
                    id: carol.id.clone(),
                    ..Default::default()
                }),
                update_mask: mask(&["enabled"]),
            },
            &session,
        ))
        .await;
    expect_code(disable_user, Code::Internal);

    store
        .execute_unprepared("ALTER TABLE audit_events_away RENAME TO audit_events")
        .await
        .expect("restore the audit table");
    let row = token_row(&store, &token.id).await.expect("row");
    assert!(row.enabled, "not disabled");
    assert_eq!(row.version, 0, "not rotated");
    assert!(authenticates(&issuer, &secret).await);
    let carol_row = store
        .user_by_id(&carol.id)
        .await
        .expect("read")
        .expect("carol");
    assert!(carol_row.enabled);
    assert_eq!(carol_row.tokens_valid_after, 0);
    assert_eq!(
        events(&store).await.len(),
        before,
        "no event without its change"
    );

    // With the store whole again, the same calls succeed.
    issuer
        .tokens()
        .disable_token(bearer(
            v1::DisableTokenRequest {
                token: by_id(&token.id),
            },
            &session,
        ))
        .await
        .expect("disable");
    assert_eq!(events(&store).await.len(), before + 1);
    issuer.stop().await;
}

on_both_backends!(
    concurrent_enable_and_disable_keep_the_log_in_step,
    a_failed_transaction_leaves_no_half_done_change,
);
