//! TokenService changes that keep the secret — enable, disable, update
//! (narrowing only) — and DuplicateToken; with the revocation events each
//! appends and the audit events each records.

use crate::on_both_backends;
use crate::support::lifecycle::{
    admin_session, api_token, at, audited, authenticates, mask, now, token_events, token_row,
};
use crate::support::{Backend, Harness, bearer, by_id, expect_code, grant, violated_fields};
use chrono::Duration;
use tessera_proto::v1;
use tonic::Code;

async fn disable(issuer: &Harness, session: &str, id: &str) -> Result<v1::Token, tonic::Status> {
    issuer
        .tokens()
        .disable_token(bearer(
            v1::DisableTokenRequest { token: by_id(id) },
            session,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn enable(issuer: &Harness, session: &str, id: &str) -> Result<v1::Token, tonic::Status> {
    issuer
        .tokens()
        .enable_token(bearer(v1::EnableTokenRequest { token: by_id(id) }, session))
        .await
        .map(|r| r.into_inner())
}

async fn update(
    issuer: &Harness,
    session: &str,
    id: &str,
    token: v1::Token,
    paths: &[&str],
) -> Result<v1::Token, tonic::Status> {
    issuer
        .tokens()
        .update_token(bearer(
            v1::UpdateTokenRequest {
                target: by_id(id),
                token: Some(token),
                update_mask: if paths.is_empty() { None } else { mask(paths) },
            },
            session,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn disabling_and_enabling_are_reversible_and_logged(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let session = admin_session(&issuer).await;
    let (token, secret) = api_token(&issuer, &session, "ci", 3_600, vec![]).await;

    let disabled = disable(&issuer, &session, &token.id)
        .await
        .expect("disable");
    assert!(!disabled.enabled);
    assert_eq!(disabled.status, v1::TokenStatus::Disabled as i32);
    assert!(
        !authenticates(&issuer, &secret).await,
        "a disabled token is refused"
    );
    // Disabling again is a no-op: nothing more in the log.
    disable(&issuer, &session, &token.id).await.expect("again");
    let enabled = enable(&issuer, &session, &token.id).await.expect("enable");
    assert!(enabled.enabled);
    assert_eq!(enabled.status, v1::TokenStatus::Active as i32);
    assert!(
        authenticates(&issuer, &secret).await,
        "the same secret works again"
    );
    enable(&issuer, &session, &token.id).await.expect("again");

    let kinds: Vec<_> = token_events(&store, &token.id)
        .await
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
    assert_eq!(kinds, ["disable_token", "enable_token"]);
    let events = crate::support::lifecycle::events(&store).await;
    let expiry = token.expire_time.expect("expiry").seconds;
    assert!(events.iter().all(|e| e.prune_after == expiry), "{events:?}");

    let outcomes: Vec<_> = audited(&store, "token.disable").await;
    assert_eq!(outcomes.len(), 2);
    assert!(
        outcomes
            .iter()
            .all(|(o, t, _)| o == "ok" && t == &format!("tokens/{}", token.id))
    );

    // Created disabled: the log says so from the start.
    let parked = issuer
        .tokens()
        .create_token(bearer(
            v1::CreateTokenRequest {
                name: "parked".into(),
                enabled: Some(false),
                ..Default::default()
            },
            &session,
        ))
        .await
        .expect("create disabled")
        .into_inner();
    let parked_id = parked.token.expect("metadata").id;
    let kinds: Vec<_> = token_events(&store, &parked_id)
        .await
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
    assert_eq!(kinds, ["disable_token"]);
    assert!(!authenticates(&issuer, &parked.secret).await);

    // Unknown and other users' tokens are not found.
    expect_code(
        disable(&issuer, &session, "01900000-0000-7000-8000-000000000000").await,
        Code::NotFound,
    );
    issuer.stop().await;
}

async fn an_expired_token_cannot_be_enabled(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let session = admin_session(&issuer).await;
    let (api, _) = api_token(&issuer, &session, "short", 60, vec![]).await;
    let web = issuer
        .sessions()
        .login(crate::support::admin(v1::LoginRequest {
            kind: v1::SessionKind::Web as i32,
            expires_in: None,
        }))
        .await
        .expect("web login")
        .into_inner()
        .token
        .expect("metadata");
    disable(&issuer, &session, &api.id)
        .await
        .expect("disable api");
    disable(&issuer, &session, &web.id)
        .await
        .expect("disable web");
    issuer.clock.advance(Duration::hours(1));

    let api_refused = expect_code(
        enable(&issuer, &session, &api.id).await,
        Code::FailedPrecondition,
    );
    assert!(
        api_refused.message().contains("RotateToken"),
        "{api_refused:?}"
    );
    let web_refused = expect_code(
        enable(&issuer, &session, &web.id).await,
        Code::FailedPrecondition,
    );
    assert!(
        web_refused.message().contains("log in again"),
        "{web_refused:?}"
    );
    assert!(!token_row(&store, &web.id).await.expect("row").enabled);
    // An expired token lists as expired, whether or not it is enabled.
    let listed = issuer
        .tokens()
        .get_token(bearer(
            v1::GetTokenRequest {
                token: by_id(&api.id),
            },
            &session,
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(listed.status, v1::TokenStatus::Expired as i32);
    let refusals = audited(&store, "token.enable").await;
    assert_eq!(refusals.len(), 2);
    assert!(
        refusals.iter().all(|(o, _, _)| o == "FAILED_PRECONDITION"),
        "{refusals:?}"
    );
    issuer.stop().await;
}

async fn narrowing_updates_apply_in_place_and_are_logged(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let session = admin_session(&issuer).await;
    let (token, secret) = api_token(
        &issuer,
        &session,
        "deploy",
        7_200,
        vec![
            grant("repositories", &["read", "write"]),
            grant("jobs", &["run"]),
        ],
    )
    .await;
    let expiry = token.expire_time.expect("expiry").seconds;
    let t0 = now(&issuer);

    // Description only: no event.
    let described = update(
        &issuer,
        &session,
        &token.id,
        v1::Token {
            description: "deploys the samples".into(),
            ..Default::default()
        },
        &[],
    )
    .await
    .expect("description");
    assert_eq!(described.description, "deploys the samples");
    assert!(token_events(&store, &token.id).await.is_empty());

    // Earlier expiry and fewer grants, together: one narrowing event.
    let narrowed = update(
        &issuer,
        &session,
        &token.id,
        v1::Token {
            expire_time: at(t0 + 1_800),
            permissions: vec![grant("repositories", &["read"])],
            ..Default::default()
        },
        &["expire_time", "permissions"],
    )
    .await
    .expect("narrow");
    assert_eq!(narrowed.expire_time.expect("expiry").seconds, t0 + 1_800);
    assert_eq!(narrowed.permissions, vec![grant("repositories", &["read"])]);
    assert!(!narrowed.all_permissions);
    let events = token_events(&store, &token.id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "narrow_token");
    assert_eq!(events[0].1["expire_time"], t0 + 1_800);
    assert_eq!(
        events[0].1["grants"],
        serde_json::json!([{"resource": "repositories", "actions": ["read"]}])
    );
    let row = crate::support::lifecycle::events(&store).await;
    assert_eq!(row[0].prune_after, expiry, "kept until the old expiry");

    // The issuer holds the secret to the narrowed grants: it cannot mint
    // a token with what was taken away…
    let escalate = issuer
        .tokens()
        .create_token(bearer(
            v1::CreateTokenRequest {
                name: "escalate".into(),
                permissions: vec![grant("jobs", &["run"])],
                ..Default::default()
            },
            &secret,
        ))
        .await;
    expect_code(escalate, Code::PermissionDenied);
    // …and refuses it after the narrowed expiry (plus the leeway).
    issuer.clock.advance(Duration::seconds(1_800 + 61));
    assert!(!authenticates(&issuer, &secret).await);
    issuer.clock.advance(Duration::seconds(-(1_800 + 61)));

    // Only an expiry: an event with no grants.
    update(
        &issuer,
        &session,
        &token.id,
        v1::Token {
            expire_time: at(t0 + 900),
            ..Default::default()
        },
        &["expire_time"],
    )
    .await
    .expect("shorter");
    let events = token_events(&store, &token.id).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].1, serde_json::json!({"expire_time": t0 + 900}));

    // Disabling through UpdateToken appends the same event as DisableToken.
    let off = update(
        &issuer,
        &session,
        &token.id,
        v1::Token::default(),
        &["enabled"],
    )
    .await
    .expect("disable by update");
    assert!(!off.enabled);
    let kinds: Vec<_> = token_events(&store, &token.id)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kinds, ["narrow_token", "narrow_token", "disable_token"]);
    let details: Vec<_> = audited(&store, "token.update")
        .await
        .into_iter()
        .map(|(_, _, d)| d)
        .collect();
    assert_eq!(
        details,
        [
            "changed enabled",
            "changed expire_time",
            "changed expire_time, permissions",
            "changed description"
        ]
    );
    issuer.stop().await;
}

async fn widening_updates_are_refused_with_a_pointer_to_rotate(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let session = admin_session(&issuer).await;
    let (token, _) = api_token(
        &issuer,
        &session,
        "narrow",
        3_600,
        vec![grant("repositories/Samples", &["read"])],
    )
    .await;
    let t0 = now(&issuer);
    let later = update(
        &issuer,
        &session,
        &token.id,
        v1::Token {
            expire_time: at(t0 + 7_200),
            ..Default::default()
        },
        &["expire_time"],
    )
    .await;
    // A later expiry of a live API token is the one widening made in place
    // (FME parity; tests/e2e/fme_http.rs follows it to a verifier).
    let later = later.expect("a live API token's expiry is extended in place");
    assert_eq!(later.expire_time.expect("expiry").seconds, t0 + 7_200);
    let more = update(
        &issuer,
        &session,
        &token.id,
        v1::Token {
            permissions: vec![grant("repositories", &["read"])],
            ..Default::default()
        },
        &["permissions"],
    )
    .await;
    let status = expect_code(more, Code::FailedPrecondition);
    assert!(status.message().contains("repositories:read"), "{status:?}");
    assert!(status.message().contains("RotateToken"), "{status:?}");
    // Reviving an expired API token by enabling it is refused too.
    disable(&issuer, &session, &token.id)
        .await
        .expect("disable");
    let kinds: Vec<_> = token_events(&store, &token.id)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        kinds,
        ["extend_token", "disable_token"],
        "refusals append nothing"
    );
    let last_event = store.last_revocation_seq().await.expect("last seq");
    // Past the expiry the clean-up task may prune the token's events at any
    // moment, so from here on the log is checked by its sequence number.
    issuer.clock.advance(Duration::hours(3));
    let revive = update(
        &issuer,
        &session,
        &token.id,
        v1::Token {
            enabled: true,
            ..Default::default()
        },
        &[],
    )
    .await;
    let status = expect_code(revive, Code::FailedPrecondition);
    assert!(status.message().contains("RotateToken"), "{status:?}");
    // Nor may an expired token's expiry be moved later in place.
    let t1 = now(&issuer);
    let extend_dead = update(
        &issuer,
        &session,
        &token.id,
        v1::Token {
            expire_time: at(t1 + 3_600),
            ..Default::default()
        },
        &["expire_time"],
    )
    .await;
    let status = expect_code(extend_dead, Code::FailedPrecondition);
    assert!(status.message().contains("RotateToken"), "{status:?}");
    assert_eq!(
        store.last_revocation_seq().await.expect("last seq"),
        last_event,
        "refusals append nothing"
    );
    let outcomes: Vec<_> = audited(&store, "token.update")
        .await
        .into_iter()
        .map(|(o, _, _)| o)
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| *o == "FAILED_PRECONDITION")
            .count(),
        3,
        "{outcomes:?}"
    );
    issuer.stop().await;
}

async fn updates_refuse_bad_masks_and_session_fields(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let session = admin_session(&issuer).await;
    let (token, _) = api_token(&issuer, &session, "one", 3_600, vec![]).await;
    api_token(&issuer, &session, "two", 3_600, vec![]).await;
    let t0 = now(&issuer);
    let cases: Vec<(v1::Token, Vec<&str>, Vec<&str>)> = vec![
        (v1::Token::default(), vec![], vec!["update_mask"]),
        (
            v1::Token::default(),
            vec!["id"],
            vec!["update_mask.paths[0]"],
        ),
        (
            v1::Token::default(),
            vec!["description", "nonsense"],
            vec!["update_mask.paths[1]"],
        ),
        (v1::Token::default(), vec!["name"], vec!["token.name"]),
        (
            v1::Token::default(),
            vec!["expire_time"],
            vec!["token.expire_time"],
        ),
        (
            v1::Token {
                expire_time: at(t0 - 10),
                ..Default::default()
            },
            vec!["expire_time"],
            vec!["token.expire_time"],
        ),
        (
            v1::Token {
                permissions: vec![grant("repositories", &[])],
                ..Default::default()
            },
            vec!["permissions"],
            vec!["token.permissions[0].actions"],
        ),
    ];
    for (token_value, paths, fields) in cases {
        let status = expect_code(
            update(&issuer, &session, &token.id, token_value, &paths).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), fields, "{paths:?}: {status:?}");
    }
    // Renaming onto a taken name.
    let taken = update(
        &issuer,
        &session,
        &token.id,
        v1::Token {
            name: "two".into(),
            ..Default::default()
        },
        &["name"],
    )
    .await;
    let status = expect_code(taken, Code::AlreadyExists);
    assert!(status.message().contains("two"), "{status:?}");
    let renamed = update(
        &issuer,
        &session,
        &token.id,
        v1::Token {
            name: "uno".into(),
            ..Default::default()
        },
        &["name"],
    )
    .await
    .expect("rename");
    assert_eq!(renamed.name, "uno");

    // A session token's description may change; its expiry may not.
    let web = issuer
        .sessions()
        .login(crate::support::admin(v1::LoginRequest {
            kind: v1::SessionKind::Web as i32,
            expires_in: None,
        }))
        .await
        .expect("login")
        .into_inner()
        .token
        .expect("metadata");
    update(
        &issuer,
        &session,
        &web.id,
        v1::Token {
            description: "my laptop".into(),
            ..Default::default()
        },
        &["description"],
    )
    .await
    .expect("describe a session");
    let status = expect_code(
        update(
            &issuer,
            &session,
            &web.id,
            v1::Token {
                expire_time: at(t0 + 60),
                ..Default::default()
            },
            &["expire_time"],
        )
        .await,
        Code::FailedPrecondition,
    );
    assert!(status.message().contains("session"), "{status:?}");
    issuer.stop().await;
}

async fn duplicate_copies_an_api_token_under_a_new_name(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let store = issuer.db().store().await;
    let session = admin_session(&issuer).await;
    let (source, source_secret) = api_token(
        &issuer,
        &session,
        "original",
        7_200,
        vec![grant("repositories/Samples", &["read", "run"])],
    )
    .await;
    issuer
        .tokens()
        .update_token(bearer(
            v1::UpdateTokenRequest {
                target: by_id(&source.id),
                token: Some(v1::Token {
                    description: "the first".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["description", "enabled"]),
            },
            &session,
        ))
        .await
        .expect("describe and disable");
    issuer.clock.advance(Duration::minutes(10));
    let t1 = now(&issuer);
    let copy = issuer
        .tokens()
        .duplicate_token(bearer(
            v1::DuplicateTokenRequest {
                source: by_id(&source.id),
                name: "copy".into(),
                description: String::new(),
            },
            &session,
        ))
        .await
        .expect("duplicate")
        .into_inner();
    let token = copy.token.expect("metadata");
    assert_ne!(token.id, source.id);
    assert_ne!(copy.secret, source_secret);
    assert_eq!(token.name, "copy");
    assert_eq!(token.description, "the first");
    assert!(!token.enabled, "the enabled state is copied");
    assert_eq!(token.permissions, source.permissions);
    assert_eq!(token.r#type, v1::TokenType::Api as i32);
    assert_eq!(
        token.expire_time.expect("expiry").seconds,
        t1 + 7_200,
        "the same lifetime, counted from now"
    );
    // Copied disabled: the log says so.
    let kinds: Vec<_> = token_events(&store, &token.id)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kinds, ["disable_token"]);
    assert_eq!(audited(&store, "token.duplicate").await[0].0, "ok");

    // Same name again: taken. No name: invalid. A session: refused.
    let again = issuer
        .tokens()
        .duplicate_token(bearer(
            v1::DuplicateTokenRequest {
                source: by_id(&source.id),
                name: "copy".into(),
                description: "other".into(),
            },
            &session,
        ))
        .await;
    expect_code(again, Code::AlreadyExists);
    let unnamed = issuer
        .tokens()
        .duplicate_token(bearer(
            v1::DuplicateTokenRequest {
                source: by_id(&source.id),
                ..Default::default()
            },
            &session,
        ))
        .await;
    assert_eq!(
        violated_fields(&expect_code(unnamed, Code::InvalidArgument)),
        ["name"]
    );
    let web_id = crate::support::lifecycle::claims(&session)["jti"]
        .as_str()
        .expect("jti")
        .to_owned();
    let status = expect_code(
        issuer
            .tokens()
            .duplicate_token(bearer(
                v1::DuplicateTokenRequest {
                    source: by_id(&web_id),
                    name: "session copy".into(),
                    description: String::new(),
                },
                &session,
            ))
            .await,
        Code::FailedPrecondition,
    );
    assert!(
        status
            .message()
            .contains("session tokens cannot be duplicated"),
        "{status:?}"
    );
    issuer.stop().await;
}

async fn an_administrator_lists_everyones_tokens_by_state(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let session = admin_session(&issuer).await;
    crate::support::create_user(&issuer, "bob", "bob-password-long", &[]).await;
    let bob = issuer
        .sessions()
        .login(crate::support::basic(
            v1::LoginRequest::default(),
            "bob",
            "bob-password-long",
        ))
        .await
        .expect("bob logs in")
        .into_inner()
        .secret;
    let (short, _) = api_token(&issuer, &bob, "short", 60, vec![]).await;
    let (parked, _) = api_token(&issuer, &bob, "parked", 3_600, vec![]).await;
    api_token(&issuer, &bob, "live", 3_600, vec![]).await;
    api_token(&issuer, &session, "admin's", 3_600, vec![]).await;
    disable(&issuer, &session, &parked.id)
        .await
        .expect("disable");
    disable(&issuer, &session, &short.id)
        .await
        .expect("disable");
    issuer.clock.advance(Duration::minutes(2));

    let list = |request: v1::ListTokensRequest| {
        let mut client = issuer.tokens();
        let session = session.clone();
        async move {
            client
                .list_tokens(bearer(request, &session))
                .await
                .map(|r| r.into_inner())
        }
    };
    let names = |reply: v1::ListTokensResponse| -> Vec<String> {
        reply.tokens.into_iter().map(|t| t.name).collect()
    };
    let of_bob = |status: v1::TokenStatus| v1::ListTokensRequest {
        owner: "bob".into(),
        r#type: v1::TokenType::Api as i32,
        status: status as i32,
        ..Default::default()
    };
    assert_eq!(
        names(list(of_bob(v1::TokenStatus::Active)).await.expect("active")),
        ["live"]
    );
    assert_eq!(
        names(
            list(of_bob(v1::TokenStatus::Disabled))
                .await
                .expect("disabled")
        ),
        ["parked"],
        "an expired disabled token counts as expired"
    );
    assert_eq!(
        names(
            list(of_bob(v1::TokenStatus::Expired))
                .await
                .expect("expired")
        ),
        ["short"]
    );
    let sessions = list(v1::ListTokensRequest {
        owner: "-".into(),
        r#type: v1::TokenType::Session as i32,
        ..Default::default()
    })
    .await
    .expect("every session");
    let owners: std::collections::BTreeSet<_> = sessions
        .tokens
        .iter()
        .map(|t| t.owner_name.clone())
        .collect();
    assert_eq!(owners.into_iter().collect::<Vec<_>>(), ["admin", "bob"]);

    // A page token only continues the listing it came from.
    let first = list(v1::ListTokensRequest {
        owner: "-".into(),
        page_size: 1,
        ..Default::default()
    })
    .await
    .expect("first page");
    let status = expect_code(
        list(v1::ListTokensRequest {
            owner: "bob".into(),
            page_size: 1,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["page_token"]);
    list(v1::ListTokensRequest {
        owner: "-".into(),
        page_size: 1,
        page_token: first.next_page_token,
        ..Default::default()
    })
    .await
    .expect("second page");
    // Bob sees only his own.
    let mine = issuer
        .tokens()
        .list_tokens(bearer(v1::ListTokensRequest::default(), &bob))
        .await
        .expect("bob's")
        .into_inner();
    assert!(mine.tokens.iter().all(|t| t.owner_name == "bob"));
    expect_code(
        issuer
            .tokens()
            .list_tokens(bearer(
                v1::ListTokensRequest {
                    owner: "-".into(),
                    ..Default::default()
                },
                &bob,
            ))
            .await,
        Code::PermissionDenied,
    );
    issuer.stop().await;
}

on_both_backends!(
    an_administrator_lists_everyones_tokens_by_state,
    disabling_and_enabling_are_reversible_and_logged,
    an_expired_token_cannot_be_enabled,
    narrowing_updates_apply_in_place_and_are_logged,
    widening_updates_are_refused_with_a_pointer_to_rotate,
    updates_refuse_bad_masks_and_session_fields,
    duplicate_copies_an_api_token_under_a_new_name,
);
