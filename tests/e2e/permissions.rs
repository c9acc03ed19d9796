//! Permissions over the real gRPC surface: grants on types and items
//! checked against the catalog, owner caps at every entry point, no
//! escalation through a narrow token, and dependencies refused then granted.
//! The verifier decides with the same matching logic.

use crate::on_both_backends;
use crate::support::lifecycle::{
    USER_PASSWORD, admin_session, mask, new_user, user_session, users,
};
use crate::support::permissions::{create, create_request, missing_grants, spelled};
use crate::support::verifier::VerifierHarness;
use crate::support::{
    Backend, Harness, bearer, by_id, create_user, expect_code, grant, violated_fields,
};
use tessera_proto::v1::{self, VerifyReason};
use tonic::Code;

on_both_backends!(
    grants_on_types_and_items_follow_the_catalog,
    owner_caps_hold_at_every_entry_point,
    a_narrow_token_cannot_escalate,
    dependencies_are_refused_then_granted,
);

async fn grants_on_types_and_items_follow_the_catalog(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let session = admin_session(&issuer).await;

    // Which grants a request may name: (grant, refused field or None).
    let table: &[(v1::Grant, Option<&str>)] = &[
        (grant("repositories", &["access", "create", "manage"]), None),
        (grant("repositories", &["read", "write", "run"]), None),
        (grant("repositories/Samples", &["read", "run"]), None),
        (grant("repositories/Samples", &["*"]), None),
        (grant("jobs", &["*"]), None),
        (grant("*", &["*"]), None),
        // General actions are about the type as a whole, never one item.
        (
            grant("repositories/Samples", &["manage"]),
            Some("permissions[0].actions"),
        ),
        (
            grant("repositories/Samples", &["create"]),
            Some("permissions[0].actions"),
        ),
        (
            grant("repositories", &["fly"]),
            Some("permissions[0].actions"),
        ),
        (grant("planets", &["read"]), Some("permissions[0].resource")),
        (
            grant("planets/Mars", &["read"]),
            Some("permissions[0].resource"),
        ),
        (
            grant("repositories/", &["read"]),
            Some("permissions[0].resource"),
        ),
    ];
    for (i, (g, refused)) in table.iter().enumerate() {
        let result = create(
            &issuer,
            &session,
            create_request(&format!("catalog-{i}"), vec![g.clone()]),
        )
        .await;
        match refused {
            None => {
                result.unwrap_or_else(|e| panic!("{g:?} should be accepted: {e:?}"));
            }
            Some(field) => {
                let status = expect_code(result, Code::InvalidArgument);
                assert_eq!(violated_fields(&status), [*field], "{g:?}: {status:?}");
                let named = g.resource.split('/').next().unwrap_or_default();
                assert!(
                    status.message().contains(named) || status.message().contains(&g.actions[0]),
                    "the refusal should name what is unknown: {status:?}"
                );
            }
        }
    }

    // The verifier: a grant on a type covers its items, an item grant only
    // that item; general actions are granted on the type.
    let reply = create(
        &issuer,
        &session,
        create_request(
            "mixed",
            vec![
                grant("repositories/Samples", &["read", "download"]),
                grant("repositories", &["access", "run"]),
                grant("jobs", &["read"]),
            ],
        ),
    )
    .await
    .expect("mixed token");
    let secret = reply.secret;
    let checks: &[(&str, &str, bool)] = &[
        ("repositories", "access", true),
        ("repositories", "run", true),
        ("repositories/Samples", "run", true),
        ("repositories/Other", "run", true),
        ("repositories/Samples", "read", true),
        ("repositories/Samples", "download", true),
        ("repositories/Other", "read", false),
        ("repositories", "read", false),
        ("repositories", "manage", false),
        ("repositories", "create", false),
        ("repositories/Samples", "upload", false),
        ("jobs", "read", true),
        ("jobs/42", "read", true),
        ("jobs/42", "cancel", false),
        ("automations", "run", false),
    ];
    for (resource, action, allowed) in checks {
        let answer = verifier.verify(&secret, resource, action).await;
        if *allowed {
            assert!(
                answer.valid,
                "{resource}:{action} should be allowed: {answer:?}"
            );
        } else {
            assert_eq!(
                answer.reason,
                VerifyReason::PermissionDenied as i32,
                "{resource}:{action}: {answer:?}"
            );
            assert!(
                answer.message.contains(&format!("{resource}:{action}")),
                "the verifier should name the missing grant: {answer:?}"
            );
        }
    }

    // Narrowing: once the revocation event arrives, the removed grants are
    // refused and the kept ones still pass.
    let token = reply.token.expect("metadata");
    issuer
        .tokens()
        .update_token(bearer(
            v1::UpdateTokenRequest {
                target: by_id(&token.id),
                token: Some(v1::Token {
                    permissions: vec![grant("jobs", &["read"])],
                    ..Default::default()
                }),
                update_mask: mask(&["permissions"]),
            },
            &session,
        ))
        .await
        .expect("narrow");
    let mut refused = false;
    for _ in 0..100 {
        let answer = verifier.verify(&secret, "repositories", "run").await;
        if answer.reason == VerifyReason::PermissionDenied as i32 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        refused,
        "the narrowed grant should be refused by the verifier"
    );
    assert!(verifier.verify(&secret, "jobs/7", "read").await.valid);
}

async fn owner_caps_hold_at_every_entry_point(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let admin = admin_session(&issuer).await;
    new_user(
        &issuer,
        &admin,
        "alice",
        vec![
            grant("repositories/Samples", &["read", "run"]),
            grant("jobs", &["read"]),
        ],
    )
    .await;
    // bob manages other users' tokens but holds no repository grants.
    new_user(
        &issuer,
        &admin,
        "bob",
        vec![grant("tokens", &["manage"]), grant("jobs", &["read"])],
    )
    .await;
    let alice = user_session(&issuer, "alice").await;
    let bob = user_session(&issuer, "bob").await;

    // create: beyond the owner's grants, listing each excess grant.
    let status = expect_code(
        create(
            &issuer,
            &alice,
            create_request(
                "too-wide",
                vec![
                    grant("repositories", &["read"]),
                    grant("jobs", &["read", "manage"]),
                ],
            ),
        )
        .await,
        Code::PermissionDenied,
    );
    for excess in ["repositories:read", "jobs:manage"] {
        assert!(status.message().contains(excess), "{excess}: {status:?}");
    }
    // "All permissions" is a snapshot of the owner's grants.
    let all = create(
        &issuer,
        &alice,
        v1::CreateTokenRequest {
            all_permissions: true,
            ..create_request("all", Vec::new())
        },
    )
    .await
    .expect("all permissions")
    .token
    .expect("metadata");
    assert_eq!(
        spelled(&all.permissions),
        ["jobs:read", "repositories/Samples:read,run"]
    );
    let own = create(
        &issuer,
        &alice,
        create_request("own", vec![grant("repositories/Samples", &["read"])]),
    )
    .await
    .expect("within the owner's grants")
    .token
    .expect("metadata");

    // rotate: adding grants beyond the owner's.
    let status = expect_code(
        issuer
            .tokens()
            .rotate_token(bearer(
                v1::RotateTokenRequest {
                    token: by_id(&own.id),
                    permissions: vec![grant("repositories/Other", &["read"])],
                    ..Default::default()
                },
                &alice,
            ))
            .await,
        Code::PermissionDenied,
    );
    assert!(
        status.message().contains("repositories/Other:read"),
        "{status:?}"
    );

    // update: only narrows; a wider set is refused with a pointer to rotate.
    let status = expect_code(
        issuer
            .tokens()
            .update_token(bearer(
                v1::UpdateTokenRequest {
                    target: by_id(&own.id),
                    token: Some(v1::Token {
                        permissions: vec![grant("jobs", &["read", "manage"])],
                        ..Default::default()
                    }),
                    update_mask: mask(&["permissions"]),
                },
                &alice,
            ))
            .await,
        Code::FailedPrecondition,
    );
    assert!(status.message().contains("RotateToken"), "{status:?}");

    // duplicate and rotate by a token manager: the copy is held to the
    // owner's grants and to the manager's own, so bob cannot mint himself
    // alice's repository access.
    let status = expect_code(
        issuer
            .tokens()
            .duplicate_token(bearer(
                v1::DuplicateTokenRequest {
                    source: by_id(&own.id),
                    name: "copied-by-bob".into(),
                    ..Default::default()
                },
                &bob,
            ))
            .await,
        Code::PermissionDenied,
    );
    assert!(
        status.message().contains("repositories/Samples:read"),
        "{status:?}"
    );
    expect_code(
        issuer
            .tokens()
            .rotate_token(bearer(
                v1::RotateTokenRequest {
                    token: by_id(&own.id),
                    ..Default::default()
                },
                &bob,
            ))
            .await,
        Code::PermissionDenied,
    );
    // The snapshot token duplicated by bob: only what both hold.
    let copy = issuer
        .tokens()
        .duplicate_token(bearer(
            v1::DuplicateTokenRequest {
                source: by_id(&all.id),
                name: "snapshot-by-bob".into(),
                ..Default::default()
            },
            &bob,
        ))
        .await
        .expect("a snapshot copy is cut to what both hold")
        .into_inner()
        .token
        .expect("metadata");
    assert_eq!(spelled(&copy.permissions), ["jobs:read"]);
    // The administrator may duplicate it whole: it is within alice's grants.
    issuer
        .tokens()
        .duplicate_token(bearer(
            v1::DuplicateTokenRequest {
                source: by_id(&own.id),
                name: "copied-by-admin".into(),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .expect("the administrator duplicates within the owner's grants");
}

async fn a_narrow_token_cannot_escalate(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let admin = admin_session(&issuer).await;
    new_user(
        &issuer,
        &admin,
        "alice",
        vec![
            grant("repositories", &["read", "run"]),
            grant("jobs", &["read"]),
            grant("tokens", &["read", "create", "write"]),
        ],
    )
    .await;
    let alice = user_session(&issuer, "alice").await;
    let wide = create(
        &issuer,
        &alice,
        create_request("wide", vec![grant("repositories", &["read", "run"])]),
    )
    .await
    .expect("wide")
    .token
    .expect("metadata");
    let narrow = create(
        &issuer,
        &alice,
        // It may manage its owner's tokens, within its own grants.
        create_request(
            "narrow",
            vec![
                grant("repositories/Samples", &["read"]),
                grant("tokens", &["read", "create", "write"]),
            ],
        ),
    )
    .await
    .expect("narrow")
    .secret;

    // create: within the calling token, not the owner.
    let status = expect_code(
        create(
            &issuer,
            &narrow,
            create_request("via-narrow", vec![grant("jobs", &["read"])]),
        )
        .await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("jobs:read"), "{status:?}");
    let snapshot = create(
        &issuer,
        &narrow,
        v1::CreateTokenRequest {
            all_permissions: true,
            ..create_request("snapshot-via-narrow", Vec::new())
        },
    )
    .await
    .expect("a snapshot of the calling token")
    .token
    .expect("metadata");
    assert_eq!(
        spelled(&snapshot.permissions),
        ["repositories/Samples:read", "tokens:create,read,write"]
    );

    // duplicate and rotate a wider token of the same owner.
    expect_code(
        issuer
            .tokens()
            .duplicate_token(bearer(
                v1::DuplicateTokenRequest {
                    source: by_id(&wide.id),
                    name: "wide-copy".into(),
                    ..Default::default()
                },
                &narrow,
            ))
            .await,
        Code::PermissionDenied,
    );
    expect_code(
        issuer
            .tokens()
            .rotate_token(bearer(
                v1::RotateTokenRequest {
                    token: by_id(&wide.id),
                    ..Default::default()
                },
                &narrow,
            ))
            .await,
        Code::PermissionDenied,
    );
    // Widening a token the narrow one may see.
    expect_code(
        issuer
            .tokens()
            .rotate_token(bearer(
                v1::RotateTokenRequest {
                    token: by_id(&snapshot.id),
                    permissions: vec![grant("repositories", &["run"])],
                    ..Default::default()
                },
                &narrow,
            ))
            .await,
        Code::PermissionDenied,
    );

    // An administrator's narrow token is not an administrator.
    let admin_narrow = create(
        &issuer,
        &admin,
        create_request("admin-narrow", vec![grant("repositories", &["read"])]),
    )
    .await
    .expect("admin narrow")
    .secret;
    expect_code(
        issuer
            .tokens()
            .get_token(bearer(
                v1::GetTokenRequest {
                    token: by_id(&wide.id),
                },
                &admin_narrow,
            ))
            .await,
        // Without a `tokens` grant it may not read tokens at all.
        Code::PermissionDenied,
    );
    expect_code(
        create(
            &issuer,
            &admin_narrow,
            create_request("admin-wider", vec![grant("users", &["manage"])]),
        )
        .await,
        Code::PermissionDenied,
    );
}

async fn dependencies_are_refused_then_granted(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let admin = admin_session(&issuer).await;
    new_user(
        &issuer,
        &admin,
        "alice",
        vec![
            grant("automations", &["run"]),
            grant("workspaces", &["run"]),
            grant("repositories", &["read", "download"]),
        ],
    )
    .await;
    // A user's grants must be complete too.
    let status = expect_code(
        users(&issuer)
            .create_user(bearer(
                v1::CreateUserRequest {
                    user: Some(v1::User {
                        username: "carol".into(),
                        grants: vec![grant("automations", &["run"])],
                        ..Default::default()
                    }),
                    password: USER_PASSWORD.into(),
                },
                &admin,
            ))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        missing_grants(&status),
        ["repositories:read", "workspaces:run"]
    );
    // carol's grants were stored before the catalog asked for more (written
    // straight to the store here).
    create_user(
        &issuer,
        "carol",
        USER_PASSWORD,
        &[("automations", &["run"])],
    )
    .await;
    let alice = user_session(&issuer, "alice").await;
    let carol = user_session(&issuer, "carol").await;

    // Refused, listing each missing grant (transitively) in the details.
    let status = expect_code(
        create(
            &issuer,
            &alice,
            create_request("automation", vec![grant("automations", &["run"])]),
        )
        .await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        missing_grants(&status),
        ["repositories:read", "workspaces:run"]
    );
    assert!(
        status.message().contains("grant_dependencies"),
        "{status:?}"
    );
    // An item dependency stays on the item.
    let status = expect_code(
        create(
            &issuer,
            &alice,
            create_request(
                "download",
                vec![grant("repositories/Samples", &["download"])],
            ),
        )
        .await,
        Code::FailedPrecondition,
    );
    assert_eq!(missing_grants(&status), ["repositories/Samples:read"]);

    // Granted on request, and shown.
    let reply = create(
        &issuer,
        &alice,
        v1::CreateTokenRequest {
            grant_dependencies: true,
            ..create_request("automation", vec![grant("automations", &["run"])])
        },
    )
    .await
    .expect("dependencies added");
    assert_eq!(
        spelled(&reply.added_dependencies),
        ["repositories:read", "workspaces:run"]
    );
    let token = reply.token.expect("metadata");
    assert_eq!(
        spelled(&token.permissions),
        ["automations:run", "repositories:read", "workspaces:run"]
    );

    // Narrowing may not drop a dependency.
    let status = expect_code(
        issuer
            .tokens()
            .update_token(bearer(
                v1::UpdateTokenRequest {
                    target: by_id(&token.id),
                    token: Some(v1::Token {
                        permissions: vec![
                            grant("automations", &["run"]),
                            grant("repositories", &["read"]),
                        ],
                        ..Default::default()
                    }),
                    update_mask: mask(&["permissions"]),
                },
                &alice,
            ))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(missing_grants(&status), ["workspaces:run"]);

    // Rotation: refused, then granted.
    let plain = create(
        &issuer,
        &alice,
        create_request("plain", vec![grant("repositories", &["read"])]),
    )
    .await
    .expect("plain")
    .token
    .expect("metadata");
    let rotate = |grant_dependencies: bool| v1::RotateTokenRequest {
        token: by_id(&plain.id),
        permissions: vec![grant("automations", &["run"])],
        grant_dependencies,
        ..Default::default()
    };
    let status = expect_code(
        issuer
            .tokens()
            .rotate_token(bearer(rotate(false), &alice))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(missing_grants(&status), ["workspaces:run"]);
    let reply = issuer
        .tokens()
        .rotate_token(bearer(rotate(true), &alice))
        .await
        .expect("rotated with dependencies")
        .into_inner();
    assert_eq!(spelled(&reply.added_dependencies), ["workspaces:run"]);
    assert_eq!(
        spelled(&reply.token.expect("metadata").permissions),
        ["automations:run", "repositories:read", "workspaces:run"]
    );

    // Added dependencies must be within the caller's ceiling too.
    let status = expect_code(
        create(
            &issuer,
            &carol,
            v1::CreateTokenRequest {
                grant_dependencies: true,
                ..create_request("automation", vec![grant("automations", &["run"])])
            },
        )
        .await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("repositories:read"), "{status:?}");
}
