//! UserService: creating, reading, listing, updating and deleting users,
//! passwords, the last administrator, and what user changes do to the
//! user's tokens (revocation events for the verifiers, refusals here).

use crate::on_both_backends;
use crate::support::lifecycle::{
    USER_PASSWORD, admin_session, api_token, audit, audited, authenticates, mask, new_user, now,
    token_row, user_events, user_session, users,
};
use crate::support::{Backend, Harness, basic, bearer, expect_code, grant, violated_fields};
use chrono::Duration;
use tessera_proto::v1;
use tonic::Code;

fn update(user: v1::User, paths: &[&str]) -> v1::UpdateUserRequest {
    v1::UpdateUserRequest {
        user: Some(user),
        update_mask: mask(paths),
    }
}

async fn users_are_created_read_listed_and_checked(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let session = admin_session(&issuer).await;
    let carol = new_user(
        &issuer,
        &session,
        "carol",
        vec![grant("repositories", &["run", "read"])],
    )
    .await;
    assert_eq!(carol.username, "carol");
    assert!(carol.enabled, "new users start enabled");
    assert!(!carol.admin);
    assert_eq!(carol.grants, vec![grant("repositories", &["read", "run"])]);
    assert!(uuid::Uuid::parse_str(&carol.id).is_ok());
    new_user(&issuer, &session, "dave", vec![]).await;

    let by_name = users(&issuer)
        .get_user(bearer(
            v1::GetUserRequest {
                user: "carol".into(),
            },
            &session,
        ))
        .await
        .expect("get by name")
        .into_inner();
    assert_eq!(by_name, carol);
    let by_id = users(&issuer)
        .get_user(bearer(
            v1::GetUserRequest {
                user: carol.id.clone(),
            },
            &session,
        ))
        .await
        .expect("get by id")
        .into_inner();
    assert_eq!(by_id, carol);

    // Carol may read herself, and no one else; she manages no one.
    let carol_session = user_session(&issuer, "carol").await;
    let me = users(&issuer)
        .get_user(bearer(v1::GetUserRequest::default(), &carol_session))
        .await
        .expect("self")
        .into_inner();
    assert_eq!(me.id, carol.id);
    for result in [
        users(&issuer)
            .get_user(bearer(
                v1::GetUserRequest {
                    user: "admin".into(),
                },
                &carol_session,
            ))
            .await
            .map(|_| ()),
        users(&issuer)
            .list_users(bearer(v1::ListUsersRequest::default(), &carol_session))
            .await
            .map(|_| ()),
        users(&issuer)
            .delete_user(bearer(
                v1::DeleteUserRequest {
                    user: "dave".into(),
                },
                &carol_session,
            ))
            .await
            .map(|_| ()),
    ] {
        expect_code(result, Code::PermissionDenied);
    }

    // Pages, ordered by username.
    let mut names = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = users(&issuer)
            .list_users(bearer(
                v1::ListUsersRequest {
                    page_size: 2,
                    page_token: page_token.clone(),
                },
                &session,
            ))
            .await
            .expect("list")
            .into_inner();
        names.extend(page.users.into_iter().map(|u| u.username));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(names, ["admin", "carol", "dave"]);

    // Bad input, each naming its field; a taken name.
    let cases = [
        ("", USER_PASSWORD, "user.username"),
        ("with space", USER_PASSWORD, "user.username"),
        ("-", USER_PASSWORD, "user.username"),
        (
            "01900000-0000-7000-8000-000000000000",
            USER_PASSWORD,
            "user.username",
        ),
        ("erin", "short", "password"),
    ];
    for (username, password, field) in cases {
        let status = expect_code(
            users(&issuer)
                .create_user(bearer(
                    v1::CreateUserRequest {
                        user: Some(v1::User {
                            username: username.into(),
                            ..Default::default()
                        }),
                        password: password.into(),
                    },
                    &session,
                ))
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), [field], "{username:?}");
    }
    let status = expect_code(
        users(&issuer)
            .create_user(bearer(
                v1::CreateUserRequest {
                    user: Some(v1::User {
                        username: "carol".into(),
                        ..Default::default()
                    }),
                    password: USER_PASSWORD.into(),
                },
                &session,
            ))
            .await,
        Code::AlreadyExists,
    );
    assert!(status.message().contains("carol"), "{status:?}");
    expect_code(
        users(&issuer)
            .get_user(bearer(
                v1::GetUserRequest {
                    user: "nobody".into(),
                },
                &session,
            ))
            .await,
        Code::NotFound,
    );
    // An administrator's narrow API token cannot manage users.
    let (_, narrow) = api_token(
        &issuer,
        &session,
        "narrow",
        3_600,
        vec![grant("repositories", &["read"])],
    )
    .await;
    let status = expect_code(
        users(&issuer)
            .list_users(bearer(v1::ListUsersRequest::default(), &narrow))
            .await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("users: manage"), "{status:?}");
    let outcomes: Vec<_> = audited(&store, "user.create")
        .await
        .into_iter()
        .map(|(o, _, _)| o)
        .collect();
    // carol, dave, and the administrator made at first start.
    assert_eq!(outcomes.iter().filter(|o| *o == "ok").count(), 3);
    assert_eq!(
        outcomes.iter().filter(|o| *o == "INVALID_ARGUMENT").count(),
        5
    );
    assert!(
        audited(&store, "user.create")
            .await
            .iter()
            .all(|(_, _, detail)| !detail.contains(USER_PASSWORD)),
        "no password in the audit log"
    );
    issuer.stop().await;
}

async fn disabling_a_user_revokes_every_token_for_good(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let session = admin_session(&issuer).await;
    let carol = new_user(&issuer, &session, "carol", vec![grant("jobs", &["read"])]).await;
    let carol_session = user_session(&issuer, "carol").await;
    let (token, api) = api_token(&issuer, &carol_session, "carol's", 3_600, vec![]).await;
    assert!(authenticates(&issuer, &api).await);
    let t0 = now(&issuer);

    let disabled = users(&issuer)
        .update_user(bearer(
            update(
                v1::User {
                    id: carol.id.clone(),
                    ..Default::default()
                },
                &["enabled"],
            ),
            &session,
        ))
        .await
        .expect("disable")
        .into_inner();
    assert!(!disabled.enabled);
    assert!(!authenticates(&issuer, &api).await);
    expect_code(
        issuer
            .sessions()
            .login(basic(v1::LoginRequest::default(), "carol", USER_PASSWORD))
            .await,
        Code::Unauthenticated,
    );
    let events = user_events(&store, &carol.id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "revoke_user");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&events[0].detail).expect("json"),
        serde_json::json!({"generation": 2}),
        "every secret issued before the change (at generation 1)"
    );
    assert_eq!(events[0].prune_after, t0 + 365 * 86_400);
    // No new secret for a disabled owner: the verifiers would not know to
    // refuse it.
    let rotate = issuer
        .tokens()
        .rotate_token(bearer(
            v1::RotateTokenRequest {
                token: crate::support::by_id(&token.id),
                ..Default::default()
            },
            &session,
        ))
        .await;
    let status = expect_code(rotate, Code::FailedPrecondition);
    assert!(status.message().contains("disabled"), "{status:?}");

    // Enabled again (by username): the old tokens stay revoked; new ones
    // work, even within the same second.
    users(&issuer)
        .update_user(bearer(
            update(
                v1::User {
                    username: "carol".into(),
                    enabled: true,
                    ..Default::default()
                },
                &[],
            ),
            &session,
        ))
        .await
        .expect("enable");
    assert!(
        !authenticates(&issuer, &api).await,
        "enabling does not revive"
    );
    assert!(!authenticates(&issuer, &carol_session).await);
    let fresh = user_session(&issuer, "carol").await;
    assert!(authenticates(&issuer, &fresh).await);
    assert_eq!(
        user_events(&store, &carol.id).await.len(),
        1,
        "enabling appends nothing"
    );
    issuer.stop().await;
}

async fn taking_grants_away_narrows_the_users_tokens(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let session = admin_session(&issuer).await;
    let carol = new_user(
        &issuer,
        &session,
        "carol",
        vec![
            grant("repositories", &["read", "write"]),
            grant("jobs", &["read"]),
        ],
    )
    .await;
    let carol_session = user_session(&issuer, "carol").await;
    let (token, api) = api_token(&issuer, &carol_session, "all of it", 3_600, vec![]).await;
    let t0 = now(&issuer);
    let updated = users(&issuer)
        .update_user(bearer(
            update(
                v1::User {
                    id: carol.id.clone(),
                    grants: vec![grant("repositories", &["read"])],
                    ..Default::default()
                },
                &["grants"],
            ),
            &session,
        ))
        .await
        .expect("take grants away")
        .into_inner();
    assert_eq!(updated.grants, vec![grant("repositories", &["read"])]);
    let row = token_row(&store, &token.id).await.expect("row");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&row.grants).expect("json"),
        serde_json::json!([{"resource": "repositories", "actions": ["read"]}])
    );
    let events = user_events(&store, &carol.id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "user_ceiling");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&events[0].detail).expect("json"),
        serde_json::json!({
            "grants": [{"resource": "repositories", "actions": ["read"]}],
            "generation": 2
        })
    );
    assert_eq!(events[0].prune_after, t0 + 365 * 86_400);
    // The token still authenticates, but with what is left only.
    let wider = issuer
        .tokens()
        .create_token(bearer(
            v1::CreateTokenRequest {
                name: "jobs".into(),
                permissions: vec![grant("jobs", &["read"])],
                ..Default::default()
            },
            &api,
        ))
        .await;
    expect_code(wider, Code::PermissionDenied);

    // Giving grants back appends nothing: existing tokens keep their
    // narrowed grants, and new ones are made from the new grants.
    users(&issuer)
        .update_user(bearer(
            update(
                v1::User {
                    id: carol.id.clone(),
                    grants: vec![grant("repositories", &["read", "write"])],
                    ..Default::default()
                },
                &["grants"],
            ),
            &session,
        ))
        .await
        .expect("give back");
    assert_eq!(user_events(&store, &carol.id).await.len(), 1);
    assert_eq!(
        token_row(&store, &token.id).await.expect("row").grants,
        row.grants
    );

    // Promoting and demoting: demotion narrows to the stored grants.
    for admin in [true, false] {
        users(&issuer)
            .update_user(bearer(
                update(
                    v1::User {
                        id: carol.id.clone(),
                        admin,
                        ..Default::default()
                    },
                    &["admin"],
                ),
                &session,
            ))
            .await
            .expect("admin flag");
    }
    let kinds: Vec<_> = user_events(&store, &carol.id)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds, ["user_ceiling"; 2],
        "the first narrowing, then the demotion; promotion and giving back widen nothing"
    );

    // Bad masks name their field; renaming by username is refused.
    for (request, field) in [
        (
            update(
                v1::User {
                    id: carol.id.clone(),
                    ..Default::default()
                },
                &["id"],
            ),
            "update_mask.paths[0]",
        ),
        (
            update(
                v1::User {
                    id: carol.id.clone(),
                    ..Default::default()
                },
                &[],
            ),
            "update_mask",
        ),
        (
            update(
                v1::User {
                    username: "carol".into(),
                    ..Default::default()
                },
                &["username"],
            ),
            "update_mask",
        ),
        (
            update(
                v1::User {
                    id: carol.id.clone(),
                    username: "bad name".into(),
                    ..Default::default()
                },
                &["username"],
            ),
            "user.username",
        ),
    ] {
        let status = expect_code(
            users(&issuer).update_user(bearer(request, &session)).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), [field]);
    }
    let renamed = users(&issuer)
        .update_user(bearer(
            update(
                v1::User {
                    id: carol.id.clone(),
                    username: "caroline".into(),
                    ..Default::default()
                },
                &["username"],
            ),
            &session,
        ))
        .await
        .expect("rename")
        .into_inner();
    assert_eq!(renamed.username, "caroline");
    let taken = users(&issuer)
        .update_user(bearer(
            update(
                v1::User {
                    id: carol.id.clone(),
                    username: "admin".into(),
                    ..Default::default()
                },
                &["username"],
            ),
            &session,
        ))
        .await;
    expect_code(taken, Code::AlreadyExists);
    issuer.stop().await;
}

async fn passwords_change_and_revoke_older_tokens(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let session = admin_session(&issuer).await;
    let carol = new_user(&issuer, &session, "carol", vec![]).await;
    let carol_session = user_session(&issuer, "carol").await;
    let set = |user: &str, current: &str, new: &str| v1::SetPasswordRequest {
        user: user.into(),
        current_password: current.into(),
        new_password: new.into(),
    };
    // Her own: the current password is required and checked.
    for request in [
        set("", "", "a-new-password-1"),
        set("", "not-her-password", "a-new-password-1"),
    ] {
        expect_code(
            users(&issuer)
                .set_password(bearer(request, &carol_session))
                .await,
            Code::PermissionDenied,
        );
    }
    let status = expect_code(
        users(&issuer)
            .set_password(bearer(set("", USER_PASSWORD, "short"), &carol_session))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["new_password"]);
    expect_code(
        users(&issuer)
            .set_password(bearer(set("admin", "", "a-new-password-1"), &carol_session))
            .await,
        Code::PermissionDenied,
    );
    users(&issuer)
        .set_password(bearer(
            set("carol", USER_PASSWORD, "a-new-password-1"),
            &carol_session,
        ))
        .await
        .expect("own password");
    assert!(
        !authenticates(&issuer, &carol_session).await,
        "older tokens are revoked"
    );
    expect_code(
        issuer
            .sessions()
            .login(basic(v1::LoginRequest::default(), "carol", USER_PASSWORD))
            .await,
        Code::Unauthenticated,
    );
    issuer
        .sessions()
        .login(basic(
            v1::LoginRequest::default(),
            "carol",
            "a-new-password-1",
        ))
        .await
        .expect("the new password works");

    // An administrator sets anyone's, without the current one.
    issuer.clock.advance(Duration::seconds(5));
    users(&issuer)
        .set_password(bearer(set(&carol.id, "", "a-new-password-2"), &session))
        .await
        .expect("admin sets it");
    issuer
        .sessions()
        .login(basic(
            v1::LoginRequest::default(),
            "carol",
            "a-new-password-2",
        ))
        .await
        .expect("the newest password works");
    let kinds: Vec<_> = user_events(&store, &carol.id)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["revoke_user"; 2]);
    // The audit log, over the API: two changes, four refusals, no secret.
    let events = audit(&issuer)
        .list_audit_events(bearer(
            v1::ListAuditEventsRequest {
                action: "user.set_password".into(),
                ..Default::default()
            },
            &session,
        ))
        .await
        .expect("audit")
        .into_inner()
        .events;
    let outcomes: Vec<_> = events.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        [
            "ok",
            "ok",
            "PERMISSION_DENIED",
            "INVALID_ARGUMENT",
            "PERMISSION_DENIED",
            "PERMISSION_DENIED"
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| !e.detail.contains("password-1") && !e.detail.contains("password-2"))
    );
    issuer.stop().await;
}

async fn deleting_a_user_deletes_and_revokes_the_tokens(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let session = admin_session(&issuer).await;
    let carol = new_user(&issuer, &session, "carol", vec![]).await;
    let carol_session = user_session(&issuer, "carol").await;
    let (token, api) = api_token(&issuer, &carol_session, "carol's", 3_600, vec![]).await;
    users(&issuer)
        .delete_user(bearer(
            v1::DeleteUserRequest {
                user: "carol".into(),
            },
            &session,
        ))
        .await
        .expect("delete");
    assert!(token_row(&store, &token.id).await.is_none());
    assert!(!authenticates(&issuer, &api).await);
    let kinds: Vec<_> = user_events(&store, &carol.id)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["revoke_user"]);
    expect_code(
        users(&issuer)
            .delete_user(bearer(
                v1::DeleteUserRequest {
                    user: "carol".into(),
                },
                &session,
            ))
            .await,
        Code::NotFound,
    );
    assert_eq!(audited(&store, "user.delete").await[1].0, "ok");
    issuer.stop().await;
}

async fn the_last_enabled_administrator_stays(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let session = admin_session(&issuer).await;
    let me = users(&issuer)
        .get_user(bearer(v1::GetUserRequest::default(), &session))
        .await
        .expect("self")
        .into_inner();
    let refusals = [
        update(
            v1::User {
                id: me.id.clone(),
                ..Default::default()
            },
            &["enabled"],
        ),
        update(
            v1::User {
                id: me.id.clone(),
                enabled: true,
                ..Default::default()
            },
            &["admin"],
        ),
    ];
    for request in refusals {
        let status = expect_code(
            users(&issuer).update_user(bearer(request, &session)).await,
            Code::FailedPrecondition,
        );
        assert!(
            status.message().contains("last enabled administrator"),
            "{status:?}"
        );
    }
    expect_code(
        users(&issuer)
            .delete_user(bearer(
                v1::DeleteUserRequest {
                    user: "admin".into(),
                },
                &session,
            ))
            .await,
        Code::FailedPrecondition,
    );

    // Two administrators demoting each other at once: one stays.
    let second = new_user(&issuer, &session, "root2", vec![]).await;
    users(&issuer)
        .update_user(bearer(
            update(
                v1::User {
                    id: second.id.clone(),
                    admin: true,
                    ..Default::default()
                },
                &["admin"],
            ),
            &session,
        ))
        .await
        .expect("promote");
    let second_session = user_session(&issuer, "root2").await;
    let demote = |id: &str, credential: &str| {
        let mut client = users(&issuer);
        let request = bearer(
            update(
                v1::User {
                    id: id.into(),
                    ..Default::default()
                },
                &["admin"],
            ),
            credential,
        );
        tokio::spawn(async move { client.update_user(request).await })
    };
    let first = demote(&second.id, &session);
    let other = demote(&me.id, &second_session);
    let results = [first.await.expect("task"), other.await.expect("task")];
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    for result in results {
        if let Err(status) = result {
            assert!(
                matches!(
                    status.code(),
                    Code::FailedPrecondition | Code::PermissionDenied
                ),
                "{status:?}"
            );
        }
    }
    let listed = users(&issuer)
        .list_users(basic(
            v1::ListUsersRequest::default(),
            "admin",
            crate::support::ADMIN_PASSWORD,
        ))
        .await
        .or(users(&issuer)
            .list_users(basic(
                v1::ListUsersRequest::default(),
                "root2",
                USER_PASSWORD,
            ))
            .await)
        .expect("an administrator remains")
        .into_inner();
    assert_eq!(
        listed.users.iter().filter(|u| u.admin && u.enabled).count(),
        1
    );
    issuer.stop().await;
}

on_both_backends!(
    users_are_created_read_listed_and_checked,
    disabling_a_user_revokes_every_token_for_good,
    taking_grants_away_narrows_the_users_tokens,
    passwords_change_and_revoke_older_tokens,
    deleting_a_user_deletes_and_revokes_the_tokens,
    the_last_enabled_administrator_stays,
);
