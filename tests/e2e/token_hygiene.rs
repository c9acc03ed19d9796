//! Token hygiene: last-used times reported by stateless verifiers and
//! merged in the store, the filters for unused and expiring tokens, the
//! issuer's totals of them, and a token that reads and renews itself.

use crate::on_both_backends;
use crate::support::http;
use crate::support::verifier::{VerifierHarness, verifier_config};
use crate::support::{Backend, Harness, admin, basic, bearer, by_id, expect_code, grant};
use chrono::Duration as Days;
use std::time::Duration;
use tessera_core::Clock;
use tessera_proto::v1::{self, VerifyReason};
use tessera_store::Backend as StoreBackend;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

const FLUSH: Duration = Duration::from_millis(100);

async fn create(issuer: &Harness, name: &str, days: i64) -> (v1::Token, String) {
    let reply = issuer
        .create_token(v1::CreateTokenRequest {
            name: name.into(),
            permissions: vec![grant("jobs", &["read"])],
            expiration: Some(v1::create_token_request::Expiration::ExpiresIn(
                prost_types::Duration {
                    seconds: days * 86_400,
                    nanos: 0,
                },
            )),
            ..Default::default()
        })
        .await
        .expect("create");
    (reply.token.expect("metadata"), reply.secret)
}

async fn get(issuer: &Harness, id: &str) -> v1::Token {
    issuer
        .tokens()
        .get_token(admin(v1::GetTokenRequest { token: by_id(id) }))
        .await
        .expect("get")
        .into_inner()
}

/// Polls (bounded: 10 s) until the issuer reports `count` uses of `id`.
async fn wait_for_uses(issuer: &Harness, id: &str, count: i64) -> v1::Token {
    let started = tokio::time::Instant::now();
    loop {
        let token = get(issuer, id).await;
        if token.use_count == count {
            return token;
        }
        assert!(
            token.use_count < count && started.elapsed() < Duration::from_secs(10),
            "expected {count} uses of {id} within 10 s, the issuer reports {}",
            token.use_count
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A verifier beside `issuer` that flushes uses every [`FLUSH`].
async fn tracking(
    issuer: &Harness,
    tune: impl FnOnce(&mut tessera_verifier::VerifierConfig),
) -> VerifierHarness {
    let mut config = verifier_config(issuer.db());
    config.usage_flush_interval = FLUSH;
    tune(&mut config);
    let verifier = VerifierHarness::spawn(config, issuer.clock.clone()).await;
    verifier.wait_for_health(ServingStatus::Serving).await;
    verifier
}

async fn verify_from(
    verifier: &VerifierHarness,
    secret: &str,
    forwarded: &str,
) -> v1::VerifyResponse {
    let mut request = tonic::Request::new(v1::VerifyRequest {
        token: secret.into(),
        ..Default::default()
    });
    if !forwarded.is_empty() {
        request
            .metadata_mut()
            .insert("x-forwarded-for", forwarded.parse().expect("metadata"));
    }
    verifier
        .client()
        .verify(request)
        .await
        .expect("verify answers")
        .into_inner()
}

async fn two_verifiers_merge_their_uses_into_one_record(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let (used, secret) = create(&issuer, "used", 30).await;
    let (never, _) = create(&issuer, "never", 30).await;
    let first = tracking(&issuer, |c| {
        c.forward_auth_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    // The second stands behind a proxy it trusts: the forwarded client is
    // the caller it records.
    let second = tracking(&issuer, |c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await;
    let early = issuer.clock.now().timestamp();

    for _ in 0..2 {
        assert!(first.verify(&secret, "", "").await.valid);
    }
    // Forward auth is a use too.
    let reply = http::get(
        first.forward_auth.expect("forward auth"),
        "/auth",
        &[("authorization", &format!("Bearer {secret}"))],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // A refusal is not a use.
    let denied = first.verify(&secret, "jobs", "write").await;
    assert_eq!(denied.reason, VerifyReason::PermissionDenied as i32);

    issuer.clock.advance(Days::seconds(10));
    second
        .wait_for_sync(&issuer.db().store().await, &*issuer.clock)
        .await;
    for _ in 0..3 {
        let answer = verify_from(&second, &secret, "6.6.6.6, 203.0.113.7").await;
        assert!(answer.valid, "{answer:?}");
    }

    let token = wait_for_uses(&issuer, &used.id, 6).await;
    assert_eq!(
        token.last_used_time.map(|t| t.seconds),
        Some(early + 10),
        "the later use wins"
    );
    assert_eq!(token.last_caller_address, "203.0.113.7");
    // Flushed batches are not merged again.
    tokio::time::sleep(FLUSH * 4).await;
    assert_eq!(get(&issuer, &used.id).await.use_count, 6);

    let never = get(&issuer, &never.id).await;
    assert_eq!(never.last_used_time, None);
    assert_eq!(never.use_count, 0);
    assert_eq!(never.last_caller_address, "");
}

/// Makes every write of token uses fail until [`end_outage`], while reads
/// and the issuer's own token changes go on: a store refusing the writes.
async fn start_outage(issuer: &Harness) {
    let store = issuer.db().store().await;
    let statements: &[&str] = match store.backend() {
        StoreBackend::Sqlite => &[
            "CREATE TRIGGER usage_outage BEFORE UPDATE OF use_count ON tokens \
             BEGIN SELECT RAISE(ABORT, 'simulated outage'); END",
        ],
        StoreBackend::Postgres => &[
            "CREATE FUNCTION usage_outage() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'simulated outage'; END $$",
            "CREATE TRIGGER usage_outage BEFORE UPDATE OF use_count ON tokens \
             FOR EACH ROW EXECUTE FUNCTION usage_outage()",
        ],
    };
    run(&store, statements).await;
}

async fn end_outage(issuer: &Harness) {
    let store = issuer.db().store().await;
    let statements: &[&str] = match store.backend() {
        StoreBackend::Sqlite => &["DROP TRIGGER usage_outage"],
        StoreBackend::Postgres => &["DROP TRIGGER usage_outage ON tokens"],
    };
    run(&store, statements).await;
}

async fn run(store: &tessera_store::Store, statements: &[&str]) {
    use sea_orm::ConnectionTrait;
    for sql in statements {
        store
            .connection()
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

async fn a_store_outage_during_a_flush_loses_nothing(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let (token, secret) = create(&issuer, "job", 30).await;
    let verifier = tracking(&issuer, |_| {}).await;
    for _ in 0..3 {
        assert!(verifier.verify(&secret, "", "").await.valid);
    }
    wait_for_uses(&issuer, &token.id, 3).await;

    start_outage(&issuer).await;
    let failures = &verifier.shared.usage.metrics.failures;
    let before = failures.get();
    for _ in 0..2 {
        assert!(verifier.verify(&secret, "", "").await.valid);
    }
    let started = tokio::time::Instant::now();
    while failures.get() < before + 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no flush failed within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The verifier keeps answering; what was merged before stays.
    assert!(verifier.verify(&secret, "", "").await.valid);
    assert_eq!(get(&issuer, &token.id).await.use_count, 3);
    assert!(verifier.shared.usage.metrics.pending.get() >= 1);

    end_outage(&issuer).await;
    wait_for_uses(&issuer, &token.id, 6).await;
    tokio::time::sleep(FLUSH * 4).await;
    assert_eq!(get(&issuer, &token.id).await.use_count, 6);
    assert_eq!(verifier.shared.usage.metrics.pending.get(), 0);
}

async fn list(issuer: &Harness, request: v1::ListTokensRequest) -> Vec<String> {
    let mut names: Vec<String> = issuer
        .tokens()
        .list_tokens(admin(v1::ListTokensRequest {
            r#type: v1::TokenType::Api as i32,
            ..request
        }))
        .await
        .expect("list")
        .into_inner()
        .tokens
        .into_iter()
        .map(|t| t.name)
        .collect();
    names.sort();
    names
}

fn at(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

async fn the_filters_find_unused_and_expiring_tokens(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let (early, early_secret) = create(&issuer, "used-early", 365).await;
    create(&issuer, "never-used", 365).await;
    let (soon, soon_secret) = create(&issuer, "soon", 45).await;
    create(&issuer, "gone", 1).await;
    let verifier = tracking(&issuer, |_| {}).await;
    let start = issuer.clock.now().timestamp();
    assert!(verifier.verify(&early_secret, "", "").await.valid);
    wait_for_uses(&issuer, &early.id, 1).await;

    issuer.clock.advance(Days::days(40));
    let now = issuer.clock.now().timestamp();
    verifier
        .wait_for_sync(&issuer.db().store().await, &*issuer.clock)
        .await;
    assert!(verifier.verify(&soon_secret, "", "").await.valid);
    wait_for_uses(&issuer, &soon.id, 1).await;
    // Made after the cut-off: not "unused for 30 days", though never used.
    create(&issuer, "fresh", 365).await;

    let unused_since = at(now - 30 * 86_400);
    assert!(unused_since.as_ref().is_some_and(|t| t.seconds > start));
    assert_eq!(
        list(
            &issuer,
            v1::ListTokensRequest {
                unused_since,
                ..Default::default()
            }
        )
        .await,
        ["gone", "never-used", "used-early"]
    );
    assert_eq!(
        list(
            &issuer,
            v1::ListTokensRequest {
                unused_since,
                expired: Some(false),
                ..Default::default()
            }
        )
        .await,
        ["never-used", "used-early"]
    );
    let expire_before = at(now + 7 * 86_400);
    assert_eq!(
        list(
            &issuer,
            v1::ListTokensRequest {
                expire_before,
                expired: Some(false),
                ..Default::default()
            }
        )
        .await,
        ["soon"]
    );
    assert_eq!(
        list(
            &issuer,
            v1::ListTokensRequest {
                expire_before,
                ..Default::default()
            }
        )
        .await,
        ["gone", "soon"]
    );
    // A page token is bound to the filters it was issued with.
    let first = issuer
        .tokens()
        .list_tokens(admin(v1::ListTokensRequest {
            page_size: 1,
            unused_since,
            ..Default::default()
        }))
        .await
        .expect("page")
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    let other = issuer
        .tokens()
        .list_tokens(admin(v1::ListTokensRequest {
            page_size: 1,
            page_token: first.next_page_token,
            expire_before,
            ..Default::default()
        }))
        .await;
    expect_code(other, Code::InvalidArgument);
    // A time protobuf cannot show is refused, naming the field.
    let bad = issuer
        .tokens()
        .list_tokens(admin(v1::ListTokensRequest {
            unused_since: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: -1,
            }),
            ..Default::default()
        }))
        .await;
    let status = expect_code(bad, Code::InvalidArgument);
    assert!(status.message().contains("unused_since"), "{status:?}");
}

async fn a_token_renews_itself_within_its_own_grants(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let (token, secret) = create(&issuer, "job", 7).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let tokens = || issuer.tokens();
    let own = || {
        Some(v1::TokenSelector {
            id: "self".into(),
            ..Default::default()
        })
    };

    // It reads its own record, holding no `tokens` grant at all.
    let read = tokens()
        .get_token(bearer(v1::GetTokenRequest { token: own() }, &secret))
        .await
        .expect("a token reads itself")
        .into_inner();
    assert_eq!(read.id, token.id);

    // It cannot widen itself.
    let wider = tokens()
        .rotate_token(bearer(
            v1::RotateTokenRequest {
                token: own(),
                permissions: vec![grant("jobs", &["cancel"])],
                ..Default::default()
            },
            &secret,
        ))
        .await;
    expect_code(wider, Code::PermissionDenied);

    // It renews itself, with an overlap for the jobs still holding the old secret.
    let renewed = tokens()
        .rotate_token(bearer(
            v1::RotateTokenRequest {
                token: own(),
                overlap: Some(prost_types::Duration {
                    seconds: 60,
                    nanos: 0,
                }),
                expiration: Some(v1::rotate_token_request::Expiration::ExpiresIn(
                    prost_types::Duration {
                        seconds: 30 * 86_400,
                        nanos: 0,
                    },
                )),
                ..Default::default()
            },
            &secret,
        ))
        .await
        .expect("a token rotates itself")
        .into_inner();
    let renewed_token = renewed.token.expect("metadata");
    assert_eq!(renewed_token.id, token.id);
    assert_eq!(renewed_token.permissions, token.permissions);
    assert!(
        renewed_token.expire_time.map(|t| t.seconds) > token.expire_time.map(|t| t.seconds),
        "the renewal reaches further"
    );
    verifier
        .wait_for_sync(&issuer.db().store().await, &*issuer.clock)
        .await;
    let answer = verifier.verify(&renewed.secret, "jobs", "read").await;
    assert!(answer.valid, "{answer:?}");
    assert!(
        verifier.verify(&secret, "", "").await.valid,
        "within the overlap"
    );
    assert_eq!(
        verifier
            .verify(&renewed.secret, "jobs", "cancel")
            .await
            .reason,
        VerifyReason::PermissionDenied as i32
    );

    // `self` means an API token the call is made with.
    let by_password = tokens()
        .get_token(admin(v1::GetTokenRequest { token: own() }))
        .await;
    let status = expect_code(by_password, Code::InvalidArgument);
    assert!(status.message().contains("self"), "{status:?}");
    let session = issuer
        .login(
            tessera_issuer::ADMIN_USERNAME,
            crate::support::ADMIN_PASSWORD,
        )
        .await;
    let by_session = tokens()
        .rotate_token(bearer(
            v1::RotateTokenRequest {
                token: own(),
                ..Default::default()
            },
            &session,
        ))
        .await;
    expect_code(by_session, Code::InvalidArgument);

    // Both are on record as the token's own doing.
    let events = v1::audit_service_client::AuditServiceClient::new(issuer.channel.clone())
        .list_audit_events(basic(
            v1::ListAuditEventsRequest::default(),
            tessera_issuer::ADMIN_USERNAME,
            crate::support::ADMIN_PASSWORD,
        ))
        .await
        .expect("audit")
        .into_inner()
        .events;
    let target = format!("tokens/{}", token.id);
    let on_itself = |action: &str, detail: &str| {
        events.iter().any(|e| {
            e.action == action
                && e.target == target
                && e.outcome == "ok"
                && e.detail.contains(detail)
        })
    };
    assert!(
        on_itself("token.get", "read by the token itself"),
        "{events:#?}"
    );
    assert!(
        on_itself("token.rotate", "by the token itself"),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.action == "token.rotate" && e.outcome == "PERMISSION_DENIED"),
        "the refused widening is on record: {events:#?}"
    );
}

fn gauge(text: &str, name: &str) -> Option<i64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
}

/// An API token as the administrator: `days` of life (`None`: the issuer's
/// default, 7 days), enabled or not.
async fn made(issuer: &Harness, name: &str, days: Option<i64>, enabled: bool) -> v1::Token {
    issuer
        .create_token(v1::CreateTokenRequest {
            name: name.into(),
            permissions: vec![grant("jobs", &["read"])],
            expiration: days.map(|days| {
                v1::create_token_request::Expiration::ExpiresIn(prost_types::Duration {
                    seconds: days * 86_400,
                    nanos: 0,
                })
            }),
            enabled: Some(enabled),
            ..Default::default()
        })
        .await
        .expect("create")
        .token
        .expect("metadata")
}

/// "Expiring within 7 days", in the gauge: enabled API tokens whose expiry
/// falls in the window, but for those made or rotated in the last day (a
/// token made with the default 7 days is not news the moment it is made),
/// and never disabled ones.
async fn the_issuer_counts_expiring_and_unused_tokens(backend: Backend) {
    let db = crate::support::TestDb::new(backend).await;
    let mut config = crate::support::issuer_config(&db);
    let metrics = crate::operations::free_addr();
    config.metrics_listen = Some(metrics);
    config.cleanup_interval = Duration::from_millis(50);
    let issuer = Harness::start_with(db, config).await;
    let old = made(&issuer, "old", Some(3), true).await;
    made(&issuer, "off", Some(3), false).await;
    made(&issuer, "long", Some(300), true).await;
    let expiring = "tessera_issuer_api_tokens_expiring_within_7d";
    let unused = "tessera_issuer_api_tokens_unused_30d";
    let wait_for = |want: (i64, i64)| async move {
        let started = tokio::time::Instant::now();
        loop {
            let text = crate::operations::scrape(metrics).await;
            let seen = (gauge(&text, expiring), gauge(&text, unused));
            if seen == (Some(want.0), Some(want.1)) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "expected (expiring, unused) = {want:?}, the issuer shows {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // A day on, "old" expires within the week and nobody renewed it; "off"
    // would too, but it is disabled.
    issuer.clock.advance(Days::hours(25));
    wait_for((1, 0)).await;

    // Made now, each expires within the week, but their expiry was chosen
    // just now; and a session is no API token. "old" is disabled meanwhile:
    // the count dropping to nothing shows a pass that saw the new ones.
    made(&issuer, "soon", Some(3), true).await;
    made(&issuer, "default", None, true).await;
    issuer
        .login(
            tessera_issuer::ADMIN_USERNAME,
            crate::support::ADMIN_PASSWORD,
        )
        .await;
    issuer
        .tokens()
        .disable_token(admin(v1::DisableTokenRequest {
            token: by_id(&old.id),
        }))
        .await
        .expect("disable");
    wait_for((0, 0)).await;

    // A day later both are still unrenewed: now they count.
    issuer.clock.advance(Days::hours(25));
    wait_for((2, 0)).await;

    // A month on: the short ones have expired, "long" was never used, and
    // a token made now expires within the week but is too new to be
    // "expiring" or "unused".
    issuer.clock.advance(Days::days(31));
    made(&issuer, "soon-again", Some(2), true).await;
    wait_for((0, 1)).await;
}

/// The filter behind `tessera token list --expiring-within`: `expire_before`
/// leaves out API tokens made in the last day that have not expired;
/// `status: active` leaves out disabled ones; sessions stay unless `type`
/// is `api`. The window is 8 days, so that a token made now with the
/// default 7 days falls in it and only the grace leaves it out.
async fn the_expiring_filter_leaves_out_fresh_tokens(backend: Backend) {
    let issuer = Harness::start(backend).await;
    made(&issuer, "old-default", None, true).await;
    made(&issuer, "old-off", None, false).await;
    made(&issuer, "short", Some(1), true).await;
    issuer.clock.advance(Days::hours(25));
    made(&issuer, "fresh-default", None, true).await;
    made(&issuer, "fresh-off", None, false).await;
    let session = issuer
        .login(
            tessera_issuer::ADMIN_USERNAME,
            crate::support::ADMIN_PASSWORD,
        )
        .await;
    let expiring = |extra: v1::ListTokensRequest| {
        let issuer = &issuer;
        async move {
            let now = issuer.clock.now().timestamp();
            let mut names: Vec<String> = issuer
                .tokens()
                .list_tokens(admin(v1::ListTokensRequest {
                    expire_before: at(now + 8 * 86_400),
                    ..extra
                }))
                .await
                .expect("list")
                .into_inner()
                .tokens
                .into_iter()
                .map(|t| match t.r#type() {
                    v1::TokenType::Session => "(session)".to_owned(),
                    _ => t.name,
                })
                .collect();
            names.sort();
            names
        }
    };
    let api = v1::TokenType::Api as i32;
    let active = v1::TokenStatus::Active as i32;
    // What the CLI asks for.
    assert_eq!(
        expiring(v1::ListTokensRequest {
            r#type: api,
            status: active,
            ..Default::default()
        })
        .await,
        ["old-default"]
    );
    // Without a status the disabled one is there, and the expired one
    // ("short", a day long) too, however recent: only unexpired fresh
    // tokens are left out.
    assert_eq!(
        expiring(v1::ListTokensRequest {
            r#type: api,
            ..Default::default()
        })
        .await,
        ["old-default", "old-off", "short"]
    );
    // Sessions are short by design: listed by expiry alone when asked for.
    assert_eq!(
        expiring(v1::ListTokensRequest::default()).await,
        ["(session)", "old-default", "old-off", "short"]
    );
    assert!(!session.is_empty());

    // A day on, the fresh ones have gone unrenewed for a day: they count.
    issuer.clock.advance(Days::hours(25));
    assert_eq!(
        expiring(v1::ListTokensRequest {
            r#type: api,
            status: active,
            ..Default::default()
        })
        .await,
        ["fresh-default", "old-default"]
    );
}

on_both_backends!(
    two_verifiers_merge_their_uses_into_one_record,
    a_store_outage_during_a_flush_loses_nothing,
    the_filters_find_unused_and_expiring_tokens,
    a_token_renews_itself_within_its_own_grants,
    the_issuer_counts_expiring_and_unused_tokens,
    the_expiring_filter_leaves_out_fresh_tokens,
);

/// A verifier connecting through its own role, granted what
/// `tessera-migration` grants `TESSERA_VERIFIER_ROLE`, merges its uses and
/// can change nothing else.
#[tokio::test]
async fn a_verifier_role_writes_token_uses_and_nothing_else() {
    let Some(url) = crate::support::db::postgres_url() else {
        crate::support::db::say_skipped("a_verifier_role_writes_token_uses_and_nothing_else");
        return;
    };
    let Some(rest) = url.strip_prefix("postgres://postgres@") else {
        println!(
            "SKIPPED: a_verifier_role_writes_token_uses_and_nothing_else needs a URL of the form postgres://postgres@host/db (trust auth), not this one"
        );
        return;
    };
    let issuer = Harness::start(Backend::Postgres).await;
    let schema = issuer.db().schema.clone().expect("a test schema");
    let role = format!("v_{}", uuid::Uuid::now_v7().simple());
    let owner = issuer.db().store().await;
    let mut statements = vec![format!("CREATE ROLE \"{role}\" LOGIN")];
    statements.extend(tessera_migration::verifier_grants(&schema, &role));
    run(
        &owner,
        &statements.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;

    let (token, secret) = create(&issuer, "job", 30).await;
    let verifier = tracking(&issuer, |c| {
        c.database_url = format!("postgres://{role}@{rest}");
    })
    .await;
    assert!(verifier.verify(&secret, "", "").await.valid);
    wait_for_uses(&issuer, &token.id, 1).await;

    let mut config = tessera_store::ConnectConfig::new(format!("postgres://{role}@{rest}"));
    config.schema = Some(schema.clone());
    config.create = false;
    let as_verifier = tessera_store::Store::connect_with(config)
        .await
        .expect("connect as the role");
    for sql in [
        "UPDATE tokens SET enabled = false",
        "DELETE FROM revocation_events",
        "UPDATE users SET admin = true",
    ] {
        let refused = as_verifier.execute_unprepared(sql).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("permission denied")),
            "{sql}: {refused:?}"
        );
    }
    drop(as_verifier);
    drop(verifier);
    run(
        &owner,
        &[
            &format!("DROP OWNED BY \"{role}\""),
            &format!("DROP ROLE \"{role}\""),
        ],
    )
    .await;
}
