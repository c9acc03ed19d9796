//! TokenService: create, get, list, delete, and tokens as credentials.

use crate::on_both_backends;
use crate::support::{
    self, Backend, Harness, admin, basic, bearer, by_id, create_user, expect_code, grant,
    violated_fields, with_authorization,
};
use chrono::Duration;
use prost_types::Timestamp;
use tessera_core::Clock;
use tessera_proto::v1::{self, create_token_request::Expiration};
use tonic::Code;

fn named(name: &str) -> v1::CreateTokenRequest {
    v1::CreateTokenRequest {
        name: name.into(),
        ..Default::default()
    }
}

async fn create_returns_the_secret_once_and_get_finds_the_token(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let now = issuer.clock.now().timestamp();
    let created = issuer
        .create_token(v1::CreateTokenRequest {
            name: "deploy".into(),
            description: "CI deploys".into(),
            permissions: vec![grant("repositories/Samples", &["run", "read"])],
            ..Default::default()
        })
        .await
        .expect("create");
    let token = created.token.expect("metadata");
    assert!(!created.secret.is_empty());
    assert_eq!(token.name, "deploy");
    assert_eq!(token.description, "CI deploys");
    assert_eq!(token.owner_name, "admin");
    assert_eq!(token.r#type, v1::TokenType::Api as i32);
    assert_eq!(token.status, v1::TokenStatus::Active as i32);
    assert!(token.enabled);
    assert_eq!(
        token.expire_time.expect("expiry").seconds,
        now + 7 * 86_400,
        "one week by default"
    );
    assert_eq!(
        token.permissions,
        vec![grant("repositories/Samples", &["read", "run"])]
    );

    let by_id_reply = issuer
        .tokens()
        .get_token(admin(v1::GetTokenRequest {
            token: by_id(&token.id),
        }))
        .await
        .expect("get by id")
        .into_inner();
    assert_eq!(by_id_reply, token);
    let by_name = issuer
        .tokens()
        .get_token(admin(v1::GetTokenRequest {
            token: Some(v1::TokenSelector {
                name: "deploy".into(),
                ..Default::default()
            }),
        }))
        .await
        .expect("get by name")
        .into_inner();
    assert_eq!(by_name.id, token.id);

    // Disabled at creation, and an explicit expiry time.
    let later = now + 3_600;
    let disabled = issuer
        .create_token(v1::CreateTokenRequest {
            name: "parked".into(),
            enabled: Some(false),
            expiration: Some(Expiration::ExpireTime(Timestamp {
                seconds: later,
                nanos: 0,
            })),
            ..Default::default()
        })
        .await
        .expect("create disabled")
        .token
        .expect("metadata");
    assert!(!disabled.enabled);
    assert_eq!(disabled.status, v1::TokenStatus::Disabled as i32);
    assert_eq!(disabled.expire_time.expect("expiry").seconds, later);
    issuer.stop().await;
}

async fn create_refuses_bad_input_naming_the_field(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let now = issuer.clock.now().timestamp();
    let past = Expiration::ExpireTime(Timestamp {
        seconds: now - 10,
        nanos: 0,
    });
    let too_far = Expiration::ExpiresIn(prost_types::Duration {
        seconds: 366 * 86_400,
        nanos: 0,
    });
    let negative = Expiration::ExpiresIn(prost_types::Duration {
        seconds: -1,
        nanos: 0,
    });
    let cases: Vec<(&str, v1::CreateTokenRequest, &str)> = vec![
        ("empty name", named(""), "name"),
        ("blank name", named("   "), "name"),
        ("long name", named(&"n".repeat(129)), "name"),
        ("control character", named("bad\u{7}name"), "name"),
        (
            "long description",
            v1::CreateTokenRequest {
                description: "d".repeat(1025),
                ..named("ok")
            },
            "description",
        ),
        (
            "past expiry",
            v1::CreateTokenRequest {
                expiration: Some(past),
                ..named("ok")
            },
            "expire_time",
        ),
        (
            "expiry past the maximum",
            v1::CreateTokenRequest {
                expiration: Some(too_far),
                ..named("ok")
            },
            "expires_in",
        ),
        (
            "negative lifetime",
            v1::CreateTokenRequest {
                expiration: Some(negative),
                ..named("ok")
            },
            "expires_in",
        ),
        (
            "grant without actions",
            v1::CreateTokenRequest {
                permissions: vec![grant("repositories", &[])],
                ..named("ok")
            },
            "permissions[0].actions",
        ),
    ];
    for (case, request, field) in cases {
        let status = expect_code(issuer.create_token(request).await, Code::InvalidArgument);
        assert_eq!(violated_fields(&status), [field], "{case}: {status:?}");
        assert!(
            status.message().contains(field),
            "{case}: the message names the field: {status:?}"
        );
    }
    // 128 characters (not bytes) is allowed.
    issuer
        .create_token(named(&"é".repeat(128)))
        .await
        .expect("128 characters");
    issuer.stop().await;
}

async fn a_name_is_unique_per_owner_even_under_a_race(backend: Backend) {
    let issuer = Harness::start(backend).await;
    issuer.create_token(named("taken")).await.expect("first");
    let again = expect_code(
        issuer.create_token(named("taken")).await,
        Code::AlreadyExists,
    );
    assert!(again.message().contains("taken"), "{again:?}");

    // One session for all racers: eight password checks at once would meet
    // the hashing budget (six) on a busy machine and race nothing.
    let session = issuer
        .login(
            tessera_issuer::ADMIN_USERNAME,
            crate::support::ADMIN_PASSWORD,
        )
        .await;
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let mut client = issuer.tokens();
            let request = bearer(named("contested"), &session);
            tokio::spawn(async move { client.create_token(request).await })
        })
        .collect();
    let mut created = 0;
    for racer in racers {
        match racer.await.expect("task") {
            Ok(_) => created += 1,
            Err(status) => assert_eq!(status.code(), Code::AlreadyExists, "{status:?}"),
        }
    }
    assert_eq!(created, 1, "exactly one racer wins");

    // Another owner may use the same name.
    create_user(&issuer, "bob", "bob-password-long", &[]).await;
    issuer
        .tokens()
        .create_token(basic(named("taken"), "bob", "bob-password-long"))
        .await
        .expect("bob's own token named taken");
    issuer.stop().await;
}

async fn list_pages_and_filters(backend: Backend) {
    let issuer = Harness::start(backend).await;
    for i in 0..5 {
        let request = v1::CreateTokenRequest {
            expiration: Some(Expiration::ExpiresIn(prost_types::Duration {
                seconds: if i < 2 { 60 } else { 86_400 },
                nanos: 0,
            })),
            ..named(&format!("t{i}"))
        };
        issuer.create_token(request).await.expect("create");
    }
    issuer.login("admin", support::ADMIN_PASSWORD).await;

    let mut names = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let reply = issuer
            .tokens()
            .list_tokens(admin(v1::ListTokensRequest {
                page_size: 2,
                page_token: page_token.clone(),
                r#type: v1::TokenType::Api as i32,
                ..Default::default()
            }))
            .await
            .expect("list")
            .into_inner();
        assert!(reply.tokens.len() <= 2);
        names.extend(reply.tokens.into_iter().map(|t| t.name));
        pages += 1;
        if reply.next_page_token.is_empty() {
            break;
        }
        page_token = reply.next_page_token;
    }
    assert_eq!(names, ["t0", "t1", "t2", "t3", "t4"]);
    assert_eq!(pages, 3);

    let list = |request: v1::ListTokensRequest| {
        let mut client = issuer.tokens();
        async move {
            client
                .list_tokens(admin(request))
                .await
                .expect("list")
                .into_inner()
                .tokens
        }
    };
    let sessions = list(v1::ListTokensRequest {
        r#type: v1::TokenType::Session as i32,
        ..Default::default()
    })
    .await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].r#type, v1::TokenType::Session as i32);

    issuer.clock.advance(Duration::seconds(120));
    let expired = list(v1::ListTokensRequest {
        expired: Some(true),
        ..Default::default()
    })
    .await;
    let expired: Vec<_> = expired.into_iter().map(|t| t.name).collect();
    assert_eq!(expired, ["t0", "t1"]);
    let live = list(v1::ListTokensRequest {
        expired: Some(false),
        r#type: v1::TokenType::Api as i32,
        ..Default::default()
    })
    .await;
    assert_eq!(live.len(), 3);
    let status_expired = list(v1::ListTokensRequest {
        status: v1::TokenStatus::Expired as i32,
        ..Default::default()
    })
    .await;
    assert!(
        status_expired
            .iter()
            .all(|t| t.status == v1::TokenStatus::Expired as i32)
    );
    assert_eq!(status_expired.len(), 2);

    for (request, field) in [
        (
            v1::ListTokensRequest {
                page_size: -1,
                ..Default::default()
            },
            "page_size",
        ),
        (
            v1::ListTokensRequest {
                page_token: "%%%".into(),
                ..Default::default()
            },
            "page_token",
        ),
    ] {
        let status = expect_code(
            issuer.tokens().list_tokens(admin(request)).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), [field]);
    }
    issuer.stop().await;
}

async fn a_token_authenticates_until_it_expires_or_is_deleted(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let created = issuer
        .create_token(v1::CreateTokenRequest {
            expiration: Some(Expiration::ExpiresIn(prost_types::Duration {
                seconds: 600,
                nanos: 0,
            })),
            ..named("short")
        })
        .await
        .expect("create");
    // A token with no `tokens` grant may still read itself: what proves it
    // authenticates.
    let own = || v1::GetTokenRequest {
        token: by_id("self"),
    };

    issuer
        .tokens()
        .get_token(bearer(own(), &created.secret))
        .await
        .expect("Bearer");
    let fme = format!("fmetoken token={}", created.secret);
    issuer
        .tokens()
        .get_token(with_authorization(own(), &fme))
        .await
        .expect("fmetoken");
    let tampered = format!("{}x", created.secret);
    expect_code(
        issuer.tokens().get_token(bearer(own(), &tampered)).await,
        Code::Unauthenticated,
    );
    expect_code(
        issuer.tokens().get_token(bearer(own(), "not-a-jwt")).await,
        Code::Unauthenticated,
    );

    // Past its expiry (and the 60 s leeway) it no longer authenticates.
    issuer.clock.advance(Duration::seconds(600 + 61));
    let status = expect_code(
        issuer
            .tokens()
            .get_token(bearer(own(), &created.secret))
            .await,
        Code::Unauthenticated,
    );
    assert!(status.message().contains("expired"), "{status:?}");

    // Deleted: refused, and the deletion is in the revocation log. (A new
    // token: time never runs backwards, and the issuer's clean-up may prune
    // the log at any moment by the clock it reads.)
    let created = issuer.create_token(named("long")).await.expect("create");
    let id = created.token.expect("metadata").id;
    issuer
        .tokens()
        .delete_token(admin(v1::DeleteTokenRequest { token: by_id(&id) }))
        .await
        .expect("delete");
    let status = expect_code(
        issuer
            .tokens()
            .get_token(bearer(own(), &created.secret))
            .await,
        Code::Unauthenticated,
    );
    assert!(
        !status.message().contains(&created.secret),
        "no secret in errors"
    );
    let again = issuer
        .tokens()
        .delete_token(admin(v1::DeleteTokenRequest { token: by_id(&id) }))
        .await;
    expect_code(again, Code::NotFound);
    let gone = issuer
        .tokens()
        .get_token(admin(v1::GetTokenRequest { token: by_id(&id) }))
        .await;
    expect_code(gone, Code::NotFound);

    let store = issuer.db().store().await;
    let events = store.revocations_after(0, 100).await.expect("revocations");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, "revoke_token");
    assert_eq!(events[0].token_id.as_deref(), Some(id.as_str()));
    issuer.stop().await;
}

async fn other_users_tokens_are_not_found_and_grants_are_capped(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let admins = issuer.create_token(named("admin's")).await.expect("create");
    let admins_id = admins.token.expect("metadata").id;
    create_user(
        &issuer,
        "bob",
        "bob-password-long",
        &[("repositories", &["read", "run"]), ("tokens", &["create"])],
    )
    .await;

    let get = issuer
        .tokens()
        .get_token(as_bob(v1::GetTokenRequest {
            token: by_id(&admins_id),
        }))
        .await;
    let not_found = expect_code(get, Code::NotFound);
    let missing = issuer
        .tokens()
        .get_token(as_bob(v1::GetTokenRequest {
            token: by_id("0190-no-such-token"),
        }))
        .await;
    assert_eq!(
        expect_code(missing, Code::NotFound).message(),
        not_found.message(),
        "existence is not revealed"
    );
    let delete = issuer
        .tokens()
        .delete_token(as_bob(v1::DeleteTokenRequest {
            token: by_id(&admins_id),
        }))
        .await;
    expect_code(delete, Code::NotFound);
    let by_name = issuer
        .tokens()
        .get_token(as_bob(v1::GetTokenRequest {
            token: Some(v1::TokenSelector {
                owner: "admin".into(),
                name: "admin's".into(),
                ..Default::default()
            }),
        }))
        .await;
    expect_code(by_name, Code::NotFound);
    let list_others = issuer
        .tokens()
        .list_tokens(as_bob(v1::ListTokensRequest {
            owner: "admin".into(),
            ..Default::default()
        }))
        .await;
    expect_code(list_others, Code::PermissionDenied);

    // Bob cannot grant what he does not hold…
    let wider = v1::CreateTokenRequest {
        permissions: vec![grant("repositories", &["read", "write"])],
        ..named("wider")
    };
    let status = expect_code(
        issuer.tokens().create_token(as_bob(wider)).await,
        Code::PermissionDenied,
    );
    assert!(
        status.message().contains("repositories:write"),
        "{status:?}"
    );
    // …and a narrow token of his, even one that may create tokens, cannot
    // mint a wider one.
    let narrow = issuer
        .tokens()
        .create_token(as_bob(v1::CreateTokenRequest {
            permissions: vec![
                grant("repositories/Samples", &["read"]),
                grant("tokens", &["create"]),
            ],
            ..named("narrow")
        }))
        .await
        .expect("narrow")
        .into_inner();
    let escalate = v1::CreateTokenRequest {
        permissions: vec![grant("repositories/Samples", &["run"])],
        ..named("escalate")
    };
    expect_code(
        issuer
            .tokens()
            .create_token(bearer(escalate, &narrow.secret))
            .await,
        Code::PermissionDenied,
    );
    let snapshot = issuer
        .tokens()
        .create_token(bearer(
            v1::CreateTokenRequest {
                all_permissions: true,
                ..named("snapshot")
            },
            &narrow.secret,
        ))
        .await
        .expect("all permissions of a narrow token")
        .into_inner();
    assert_eq!(
        snapshot.token.expect("metadata").permissions,
        vec![
            grant("repositories/Samples", &["read"]),
            grant("tokens", &["create"])
        ]
    );

    // The administrator sees everyone's tokens.
    let all = issuer
        .tokens()
        .list_tokens(admin(v1::ListTokensRequest {
            owner: "-".into(),
            ..Default::default()
        }))
        .await
        .expect("list all")
        .into_inner();
    let owners: std::collections::BTreeSet<_> =
        all.tokens.iter().map(|t| t.owner_name.as_str()).collect();
    assert_eq!(owners.into_iter().collect::<Vec<_>>(), ["admin", "bob"]);
    issuer.stop().await;
}

on_both_backends!(
    create_returns_the_secret_once_and_get_finds_the_token,
    create_refuses_bad_input_naming_the_field,
    a_name_is_unique_per_owner_even_under_a_race,
    list_pages_and_filters,
    a_token_authenticates_until_it_expires_or_is_deleted,
    other_users_tokens_are_not_found_and_grants_are_capped,
);

fn as_bob<T>(message: T) -> tonic::Request<T> {
    basic(message, "bob", "bob-password-long")
}
