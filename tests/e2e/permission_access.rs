//! Every management RPC, called by an unauthenticated caller, an ordinary
//! user, a user holding the manage grants and an administrator: who may
//! manage whose tokens, users and keys, and who reads whose audit events.

use crate::on_both_backends;
use crate::support::lifecycle::{
    USER_PASSWORD, admin_session, audit, mask, new_user, user_session, users,
};
use crate::support::permissions::{create, create_request};
use crate::support::{Backend, Harness, bearer, by_id, grant};
use tessera_proto::v1;
use tessera_proto::v1::key_service_client::KeyServiceClient;
use tonic::{Code, Request, Status};

on_both_backends!(every_management_rpc_is_authorized_by_grants);

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Nobody,
    User,
    Manager,
    Admin,
}

/// What each caller gets: `Ok` or the code.
type Expect = [(Who, Option<Code>); 4];

fn expect(user: Option<Code>, manager: Option<Code>, admin: Option<Code>) -> Expect {
    [
        (Who::Nobody, Some(Code::Unauthenticated)),
        (Who::User, user),
        (Who::Manager, manager),
        (Who::Admin, admin),
    ]
}

fn request<T>(message: T, credential: Option<&str>) -> Request<T> {
    match credential {
        Some(token) => bearer(message, token),
        None => Request::new(message),
    }
}

#[track_caller]
fn check<T: std::fmt::Debug>(rpc: &str, who: Who, want: Option<Code>, got: Result<T, Status>) {
    match (want, got) {
        (None, Ok(_)) => {}
        (None, Err(status)) => panic!("{rpc} by {who:?} should succeed: {status:?}"),
        (Some(code), Ok(v)) => panic!("{rpc} by {who:?} should fail with {code:?}: {v:?}"),
        (Some(code), Err(status)) => {
            assert_eq!(status.code(), code, "{rpc} by {who:?}: {status:?}");
        }
    }
}

async fn every_management_rpc_is_authorized_by_grants(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let admin = admin_session(&issuer).await;
    new_user(&issuer, &admin, "owner", vec![grant("jobs", &["read"])]).await;
    new_user(&issuer, &admin, "user", vec![grant("jobs", &["read"])]).await;
    new_user(
        &issuer,
        &admin,
        "manager",
        vec![
            grant("tokens", &["manage"]),
            grant("users", &["manage"]),
            grant("keys", &["manage"]),
            grant("jobs", &["read"]),
        ],
    )
    .await;
    let owner = user_session(&issuer, "owner").await;
    let credential = |who: Who, user: &str, manager: &str| match who {
        Who::Nobody => None,
        Who::User => Some(user.to_owned()),
        Who::Manager => Some(manager.to_owned()),
        Who::Admin => Some(admin.clone()),
    };
    let user = user_session(&issuer, "user").await;
    let manager = user_session(&issuer, "manager").await;
    let token_of_owner = |name: &str| {
        let issuer = &issuer;
        let owner = owner.clone();
        let name = name.to_owned();
        async move {
            create(
                issuer,
                &owner,
                create_request(&name, vec![grant("jobs", &["read"])]),
            )
            .await
            .expect("owner's token")
            .token
            .expect("metadata")
        }
    };

    // Everyone manages their own tokens.
    for (who, want) in expect(None, None, None) {
        let cred = credential(who, &user, &manager);
        let result = issuer
            .tokens()
            .create_token(request(
                create_request(&format!("own-{who:?}"), vec![grant("jobs", &["read"])]),
                cred.as_deref(),
            ))
            .await;
        check("CreateToken (own)", who, want, result);
    }

    // Another user's token: NOT_FOUND without `tokens: manage`.
    let hidden = expect(Some(Code::NotFound), None, None);
    for (who, want) in hidden {
        let cred = credential(who, &user, &manager);
        let cred = cred.as_deref();
        let t = token_of_owner(&format!("t-{who:?}")).await;
        check(
            "GetToken",
            who,
            want,
            issuer
                .tokens()
                .get_token(request(
                    v1::GetTokenRequest {
                        token: by_id(&t.id),
                    },
                    cred,
                ))
                .await,
        );
        // By name and owner too: the owner's existence is not revealed.
        check(
            "GetToken by name",
            who,
            want,
            issuer
                .tokens()
                .get_token(request(
                    v1::GetTokenRequest {
                        token: Some(v1::TokenSelector {
                            owner: "owner".into(),
                            name: t.name.clone(),
                            ..Default::default()
                        }),
                    },
                    cred,
                ))
                .await,
        );
        check(
            "DisableToken",
            who,
            want,
            issuer
                .tokens()
                .disable_token(request(
                    v1::DisableTokenRequest {
                        token: by_id(&t.id),
                    },
                    cred,
                ))
                .await,
        );
        check(
            "EnableToken",
            who,
            want,
            issuer
                .tokens()
                .enable_token(request(
                    v1::EnableTokenRequest {
                        token: by_id(&t.id),
                    },
                    cred,
                ))
                .await,
        );
        check(
            "UpdateToken",
            who,
            want,
            issuer
                .tokens()
                .update_token(request(
                    v1::UpdateTokenRequest {
                        target: by_id(&t.id),
                        token: Some(v1::Token {
                            description: "changed".into(),
                            ..Default::default()
                        }),
                        update_mask: mask(&["description"]),
                    },
                    cred,
                ))
                .await,
        );
        check(
            "DuplicateToken",
            who,
            want,
            issuer
                .tokens()
                .duplicate_token(request(
                    v1::DuplicateTokenRequest {
                        source: by_id(&t.id),
                        name: format!("copy-{who:?}"),
                        ..Default::default()
                    },
                    cred,
                ))
                .await,
        );
        check(
            "RotateToken",
            who,
            want,
            issuer
                .tokens()
                .rotate_token(request(
                    v1::RotateTokenRequest {
                        token: by_id(&t.id),
                        ..Default::default()
                    },
                    cred,
                ))
                .await,
        );
        check(
            "DeleteToken",
            who,
            want,
            issuer
                .tokens()
                .delete_token(request(
                    v1::DeleteTokenRequest {
                        token: by_id(&t.id),
                    },
                    cred,
                ))
                .await,
        );
    }

    // Listing other owners' tokens needs `tokens: manage`.
    let listing = expect(Some(Code::PermissionDenied), None, None);
    for owner_filter in ["owner", "-"] {
        for (who, want) in listing {
            let cred = credential(who, &user, &manager);
            check(
                "ListTokens",
                who,
                want,
                issuer
                    .tokens()
                    .list_tokens(request(
                        v1::ListTokensRequest {
                            owner: owner_filter.into(),
                            ..Default::default()
                        },
                        cred.as_deref(),
                    ))
                    .await,
            );
        }
    }

    // UserService needs `users: manage`.
    let managing = expect(Some(Code::PermissionDenied), None, None);
    for (who, want) in managing {
        let cred = credential(who, &user, &manager);
        let cred = cred.as_deref();
        let name = format!("made-by-{who:?}").to_lowercase();
        check(
            "CreateUser",
            who,
            want,
            users(&issuer)
                .create_user(request(
                    v1::CreateUserRequest {
                        user: Some(v1::User {
                            username: name.clone(),
                            grants: vec![grant("jobs", &["read"])],
                            ..Default::default()
                        }),
                        password: USER_PASSWORD.into(),
                    },
                    cred,
                ))
                .await,
        );
        check(
            "GetUser (other)",
            who,
            want,
            users(&issuer)
                .get_user(request(
                    v1::GetUserRequest {
                        user: "owner".into(),
                    },
                    cred,
                ))
                .await,
        );
        check(
            "ListUsers",
            who,
            want,
            users(&issuer)
                .list_users(request(v1::ListUsersRequest::default(), cred))
                .await,
        );
        // The target: the user just made, or a fresh one for callers that
        // could not make it.
        let target = if want.is_none() {
            name
        } else {
            new_user(&issuer, &admin, &name, Vec::new()).await.username
        };
        check(
            "UpdateUser",
            who,
            want,
            users(&issuer)
                .update_user(request(
                    v1::UpdateUserRequest {
                        user: Some(v1::User {
                            username: target.clone(),
                            grants: Vec::new(),
                            ..Default::default()
                        }),
                        update_mask: mask(&["grants"]),
                    },
                    cred,
                ))
                .await,
        );
        check(
            "SetPassword (other)",
            who,
            want,
            users(&issuer)
                .set_password(request(
                    v1::SetPasswordRequest {
                        user: target.clone(),
                        new_password: "another-password-for-tests".into(),
                        ..Default::default()
                    },
                    cred,
                ))
                .await,
        );
        check(
            "DeleteUser",
            who,
            want,
            users(&issuer)
                .delete_user(request(v1::DeleteUserRequest { user: target }, cred))
                .await,
        );
        check(
            "ListAuditEvents (others)",
            who,
            want,
            audit(&issuer)
                .list_audit_events(request(
                    v1::ListAuditEventsRequest {
                        actor: "owner".into(),
                        ..Default::default()
                    },
                    cred,
                ))
                .await,
        );
        // Everyone reads their own user and events.
        if who != Who::Nobody {
            check(
                "GetUser (self)",
                who,
                None,
                users(&issuer)
                    .get_user(request(v1::GetUserRequest::default(), cred))
                    .await,
            );
            check(
                "ListAuditEvents (own)",
                who,
                None,
                audit(&issuer)
                    .list_audit_events(request(v1::ListAuditEventsRequest::default(), cred))
                    .await,
            );
        }
    }

    // A user manager who is not an administrator cannot make itself more.
    let status = users(&issuer)
        .update_user(bearer(
            v1::UpdateUserRequest {
                user: Some(v1::User {
                    username: "manager".into(),
                    admin: true,
                    ..Default::default()
                }),
                update_mask: mask(&["admin"]),
            },
            &manager,
        ))
        .await
        .expect_err("a manager cannot make itself an administrator");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = users(&issuer)
        .update_user(bearer(
            v1::UpdateUserRequest {
                user: Some(v1::User {
                    username: "manager".into(),
                    grants: vec![grant("repositories", &["manage"])],
                    ..Default::default()
                }),
                update_mask: mask(&["grants"]),
            },
            &manager,
        ))
        .await
        .expect_err("a manager cannot give itself grants it lacks");
    assert!(
        status.message().contains("repositories:manage"),
        "{status:?}"
    );
    let status = users(&issuer)
        .set_password(bearer(
            v1::SetPasswordRequest {
                user: "admin".into(),
                new_password: "taken-over-password".into(),
                ..Default::default()
            },
            &manager,
        ))
        .await
        .expect_err("a manager cannot take over an administrator");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // KeyService.RotateKey needs `keys: manage`; the public keys are public.
    let keys = KeyServiceClient::new(issuer.channel.clone());
    for (who, want) in expect(Some(Code::PermissionDenied), None, None) {
        let cred = credential(who, &user, &manager);
        check(
            "RotateKey",
            who,
            want,
            keys.clone()
                .rotate_key(request(v1::RotateKeyRequest::default(), cred.as_deref()))
                .await,
        );
    }
    keys.clone()
        .list_keys(Request::new(v1::ListKeysRequest::default()))
        .await
        .expect("the public keys need no credentials");
}
