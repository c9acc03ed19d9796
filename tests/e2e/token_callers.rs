//! What a call made with an API token may do to tokens: read and rotate
//! itself, and nothing else of the token service without a `tokens` grant
//! that covers it. A rotation keeps the rotated token's grants, and one the
//! caller cannot cover is refused rather than narrowed.

use crate::on_both_backends;
use crate::support::lifecycle::{
    admin_session, api_token, mask, new_user, token_row, user_session,
};
use crate::support::permissions::create_request;
use crate::support::{Backend, Harness, bearer, by_id, expect_code, grant};
use tessera_proto::v1;
use tonic::Code;

on_both_backends!(
    a_narrow_token_manages_nothing_but_itself,
    tokens_grants_open_each_use_and_rotation_never_narrows
);

/// The owner's grants: enough to hand out every `tokens` right.
fn owner_grants() -> Vec<v1::Grant> {
    vec![
        grant("jobs", &["read"]),
        grant("repositories", &["read"]),
        grant("tokens", &["read", "create", "write"]),
    ]
}

fn rotation(id: &str) -> v1::RotateTokenRequest {
    v1::RotateTokenRequest {
        token: by_id(id),
        ..Default::default()
    }
}

/// The version of a token's secret: one up at each rotation.
async fn version(issuer: &Harness, id: &str) -> i32 {
    let store = issuer.db().store().await;
    token_row(&store, id).await.expect("token row").version
}

async fn get(issuer: &Harness, credential: &str, id: &str) -> v1::Token {
    issuer
        .tokens()
        .get_token(bearer(v1::GetTokenRequest { token: by_id(id) }, credential))
        .await
        .expect("get token")
        .into_inner()
}

/// Every TokenService call a `jobs: read` token can make on a sibling, on
/// a token that does not exist, and on itself.
async fn a_narrow_token_manages_nothing_but_itself(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let admin = admin_session(&issuer).await;
    new_user(&issuer, &admin, "owner", owner_grants()).await;
    let owner = user_session(&issuer, "owner").await;
    let (sibling, _) = api_token(&issuer, &owner, "everything", 86_400, vec![]).await;
    let (narrow, secret) = api_token(
        &issuer,
        &owner,
        "narrow",
        86_400,
        vec![grant("jobs", &["read"])],
    )
    .await;
    let absent = uuid::Uuid::now_v7().to_string();
    let mut tokens = issuer.tokens();

    for id in [sibling.id.as_str(), absent.as_str()] {
        let status = expect_code(
            tokens
                .get_token(bearer(v1::GetTokenRequest { token: by_id(id) }, &secret))
                .await,
            Code::PermissionDenied,
        );
        assert!(status.message().contains("tokens: read"), "{status:?}");
        expect_code(
            tokens
                .disable_token(bearer(
                    v1::DisableTokenRequest { token: by_id(id) },
                    &secret,
                ))
                .await,
            Code::PermissionDenied,
        );
        expect_code(
            tokens
                .enable_token(bearer(v1::EnableTokenRequest { token: by_id(id) }, &secret))
                .await,
            Code::PermissionDenied,
        );
        expect_code(
            tokens
                .delete_token(bearer(v1::DeleteTokenRequest { token: by_id(id) }, &secret))
                .await,
            Code::PermissionDenied,
        );
        let status = expect_code(
            tokens.rotate_token(bearer(rotation(id), &secret)).await,
            Code::PermissionDenied,
        );
        assert!(status.message().contains("tokens: write"), "{status:?}");
        expect_code(
            tokens
                .update_token(bearer(
                    v1::UpdateTokenRequest {
                        target: by_id(id),
                        token: Some(v1::Token {
                            description: "taken over".into(),
                            ..Default::default()
                        }),
                        update_mask: mask(&["description"]),
                    },
                    &secret,
                ))
                .await,
            Code::PermissionDenied,
        );
        expect_code(
            tokens
                .duplicate_token(bearer(
                    v1::DuplicateTokenRequest {
                        source: by_id(id),
                        name: format!("copy-of-{id}"),
                        ..Default::default()
                    },
                    &secret,
                ))
                .await,
            Code::PermissionDenied,
        );
    }
    expect_code(
        tokens
            .list_tokens(bearer(v1::ListTokensRequest::default(), &secret))
            .await,
        Code::PermissionDenied,
    );
    expect_code(
        tokens
            .create_token(bearer(
                create_request("minted", vec![grant("jobs", &["read"])]),
                &secret,
            ))
            .await,
        Code::PermissionDenied,
    );
    // Itself: it reads and renews itself, and changes nothing else.
    for selector in [by_id(&narrow.id), by_id("self")] {
        let own = tokens
            .get_token(bearer(v1::GetTokenRequest { token: selector }, &secret))
            .await
            .expect("a token reads itself")
            .into_inner();
        assert_eq!(own.id, narrow.id);
    }
    expect_code(
        tokens
            .disable_token(bearer(
                v1::DisableTokenRequest {
                    token: by_id("self"),
                },
                &secret,
            ))
            .await,
        Code::PermissionDenied,
    );
    expect_code(
        tokens
            .duplicate_token(bearer(
                v1::DuplicateTokenRequest {
                    source: by_id("self"),
                    name: "twin".into(),
                    ..Default::default()
                },
                &secret,
            ))
            .await,
        Code::PermissionDenied,
    );
    // `self` with a session says what the call was made with.
    let status = expect_code(
        tokens
            .get_token(bearer(
                v1::GetTokenRequest {
                    token: by_id("self"),
                },
                &owner,
            ))
            .await,
        Code::InvalidArgument,
    );
    assert!(
        status.message().contains("made with a session token"),
        "{status:?}"
    );
    let renewed = tokens
        .rotate_token(bearer(rotation("self"), &secret))
        .await
        .expect("a token rotates itself")
        .into_inner();
    let renewed_token = renewed.token.expect("metadata");
    assert_eq!(renewed_token.permissions, narrow.permissions);

    // The sibling is as it was made: enabled, every grant, never rotated.
    let after = get(&issuer, &owner, &sibling.id).await;
    assert_eq!(after.status, v1::TokenStatus::Active as i32);
    assert_eq!(after.permissions, sibling.permissions);
    assert_eq!(after.description, sibling.description);
    assert_eq!(version(&issuer, &sibling.id).await, 0);
    let names: Vec<String> = tokens
        .list_tokens(bearer(v1::ListTokensRequest::default(), &owner))
        .await
        .expect("the owner lists")
        .into_inner()
        .tokens
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(
        !names.iter().any(|n| n == "minted" || n == "twin"),
        "{names:?}"
    );
}

/// Each `tokens` action opens its calls and no other; a rotation the
/// caller cannot cover is refused and leaves the token as it was.
async fn tokens_grants_open_each_use_and_rotation_never_narrows(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let admin = admin_session(&issuer).await;
    new_user(&issuer, &admin, "owner", owner_grants()).await;
    let owner = user_session(&issuer, "owner").await;
    let (everything, _) = api_token(&issuer, &owner, "everything", 86_400, vec![]).await;
    let (plain, _) = api_token(
        &issuer,
        &owner,
        "plain",
        86_400,
        vec![grant("jobs", &["read"])],
    )
    .await;
    let with =
        |actions: &'static [&'static str]| vec![grant("jobs", &["read"]), grant("tokens", actions)];
    let (_, reader) = api_token(&issuer, &owner, "reader", 86_400, with(&["read"])).await;
    let (_, creator) = api_token(&issuer, &owner, "creator", 86_400, with(&["create"])).await;
    let (_, writer) = api_token(&issuer, &owner, "writer", 86_400, with(&["write"])).await;
    let mut tokens = issuer.tokens();

    // read: see the siblings, change none.
    assert_eq!(get(&issuer, &reader, &plain.id).await.id, plain.id);
    let listed = tokens
        .list_tokens(bearer(v1::ListTokensRequest::default(), &reader))
        .await
        .expect("a reader lists")
        .into_inner()
        .tokens;
    assert!(listed.iter().any(|t| t.id == everything.id), "{listed:?}");
    expect_code(
        tokens
            .disable_token(bearer(
                v1::DisableTokenRequest {
                    token: by_id(&plain.id),
                },
                &reader,
            ))
            .await,
        Code::PermissionDenied,
    );

    // create: new tokens within its own grants, and nothing more.
    tokens
        .create_token(bearer(
            create_request("made-by-creator", vec![grant("jobs", &["read"])]),
            &creator,
        ))
        .await
        .expect("a creator creates");
    expect_code(
        tokens
            .create_token(bearer(
                create_request("wider", vec![grant("repositories", &["read"])]),
                &creator,
            ))
            .await,
        Code::PermissionDenied,
    );
    expect_code(
        tokens
            .delete_token(bearer(
                v1::DeleteTokenRequest {
                    token: by_id(&plain.id),
                },
                &creator,
            ))
            .await,
        Code::PermissionDenied,
    );

    // write: change a sibling it covers.
    let disabled = tokens
        .disable_token(bearer(
            v1::DisableTokenRequest {
                token: by_id(&plain.id),
            },
            &writer,
        ))
        .await
        .expect("a writer disables a sibling")
        .into_inner();
    assert_eq!(disabled.status, v1::TokenStatus::Disabled as i32);
    let rotated = tokens
        .rotate_token(bearer(rotation(&plain.id), &writer))
        .await
        .expect("a writer rotates a sibling it covers")
        .into_inner()
        .token
        .expect("metadata");
    assert_eq!(rotated.permissions, plain.permissions);
    assert_eq!(version(&issuer, &plain.id).await, 1);

    // A sibling holding more than the writer: refused, not narrowed.
    let status = expect_code(
        tokens
            .rotate_token(bearer(rotation(&everything.id), &writer))
            .await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("repositories:read"), "{status:?}");
    let after = get(&issuer, &owner, &everything.id).await;
    assert_eq!(version(&issuer, &everything.id).await, 0);
    assert_eq!(after.permissions, everything.permissions);
    assert!(after.all_permissions);

    // The owner, with its session, rotates it and it keeps every grant.
    let renewed = tokens
        .rotate_token(bearer(rotation(&everything.id), &owner))
        .await
        .expect("the owner rotates")
        .into_inner()
        .token
        .expect("metadata");
    assert_eq!(version(&issuer, &everything.id).await, 1);
    assert_eq!(renewed.permissions, everything.permissions);
    assert!(renewed.all_permissions);
}
