//! Hostile clients and bad input: a login flood measured from outside the
//! server, password guessing against growing delays, unusable text in every
//! RPC's string fields, tokens at the size limit, and store outages.

use crate::health::{postgres_addr, rewrite_host};
use crate::on_both_backends;
use crate::support::lifecycle::{admin_session, audit, mask, new_user, users};
use crate::support::verifier::{VerifierHarness, verifier_config};
use crate::support::{
    self, Backend, Harness, TestDb, basic, bearer, by_id, expect_code, grant, violated_fields,
};
use std::time::Duration;
use tessera_proto::v1::{self, VerifyReason};
use tonic::{Code, Request, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt;

/// `request` as if forwarded by a proxy for `client`.
fn forwarded<T>(mut request: Request<T>, client: &str) -> Request<T> {
    request
        .metadata_mut()
        .insert("x-forwarded-for", client.parse().expect("header"));
    request
}

fn retry_after(status: &Status) -> Option<Duration> {
    status.get_details_retry_info().and_then(|r| r.retry_delay)
}

/// A guesser from one address meets doubling delays, told in RetryInfo;
/// the real user signing in from another address is not held up. The
/// source is the forwarded address only because the proxy is trusted.
async fn guessing_meets_growing_delays_and_spares_the_real_user(backend: Backend) {
    let db = TestDb::new(backend).await;
    let mut config = support::issuer_config(&db);
    config.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    let issuer = Harness::start_with(db, config).await;
    let session = admin_session(&issuer).await;
    new_user(&issuer, &session, "carol", vec![]).await;
    let attempt = |password: &'static str, client: &'static str| {
        let mut sessions = issuer.sessions();
        async move {
            sessions
                .login(forwarded(
                    basic(v1::LoginRequest::default(), "carol", password),
                    client,
                ))
                .await
        }
    };
    let mut table = Vec::new();
    for n in 1..=8 {
        // Each guess waits exactly as long as it was told to.
        let result = attempt("a-wrong-guess-123", "203.0.113.9").await;
        let status = result.expect_err("a wrong password");
        match status.code() {
            Code::Unauthenticated => table.push((n, 0)),
            Code::ResourceExhausted => {
                let wait = retry_after(&status).expect("a retry hint");
                table.push((n, wait.as_secs()));
                issuer
                    .clock
                    .advance(chrono::Duration::from_std(wait).expect("wait"));
                let again = attempt("a-wrong-guess-123", "203.0.113.9")
                    .await
                    .expect_err("still wrong");
                assert_eq!(again.code(), Code::Unauthenticated, "after the wait");
            }
            other => panic!("unexpected {other:?}: {status:?}"),
        }
    }
    // Attempt n is the guess made after n - 1 failures (plus the retries
    // after each wait): free at first, then 1 s, 2 s, 4 s…
    assert_eq!(
        table,
        [
            (1, 0),
            (2, 0),
            (3, 0),
            (4, 0),
            (5, 1),
            (6, 2),
            (7, 4),
            (8, 8)
        ]
    );
    // The real user, elsewhere, gets in at once.
    attempt(crate::support::lifecycle::USER_PASSWORD, "198.51.100.7")
        .await
        .expect("the real user from another address");
    // Nobody learns from a delay whether a name exists.
    for _ in 0..5 {
        let _ = attempt("whatever-guess-123", "203.0.113.10").await;
    }
    let unknown = issuer
        .sessions()
        .login(forwarded(
            basic(
                v1::LoginRequest::default(),
                "nobody-by-this-name",
                "x-guess-1234",
            ),
            "203.0.113.10",
        ))
        .await
        .expect_err("unknown");
    let known = attempt("whatever-guess-123", "203.0.113.10")
        .await
        .expect_err("throttled");
    assert_eq!(known.code(), Code::ResourceExhausted);
    assert_eq!(
        unknown.code(),
        Code::Unauthenticated,
        "a fresh name from the same address is not yet throttled"
    );
    // Failed sign-ins are audited (in the background), throttled ones
    // marked so.
    let audited = |outcome: &'static str| {
        let mut audit = audit(&issuer);
        let session = session.clone();
        async move {
            audit
                .list_audit_events(bearer(
                    v1::ListAuditEventsRequest {
                        action: "session.login".into(),
                        page_size: 1_000,
                        ..Default::default()
                    },
                    &session,
                ))
                .await
                .expect("audit")
                .into_inner()
                .events
                .iter()
                .any(|e| e.outcome == outcome)
        }
    };
    until(async || audited("denied").await).await;
    until(async || audited("throttled").await).await;
    issuer.stop().await;
}

/// Without a trusted proxy, `x-forwarded-for` is the client's own word and
/// changes nothing: a guesser cannot escape the delays by inventing it.
async fn forwarded_addresses_count_only_from_trusted_proxies(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let session = admin_session(&issuer).await;
    new_user(&issuer, &session, "dave", vec![]).await;
    let mut last = None;
    for n in 0..6 {
        let status = issuer
            .sessions()
            .login(forwarded(
                basic(v1::LoginRequest::default(), "dave", "a-wrong-guess-123"),
                &format!("203.0.113.{n}"),
            ))
            .await
            .expect_err("wrong");
        last = Some(status.code());
    }
    assert_eq!(last, Some(Code::ResourceExhausted));
    issuer.stop().await;
}

/// A guesser behind one address (here every caller is 127.0.0.1 and no
/// proxy is trusted: a REST gateway started without --trusted-proxy)
/// sprays names, retrying the moment each wait is over. Someone else behind
/// that address, with the right password, waits at most a minute: the
/// per-source wait is capped like the per-name one.
async fn a_busy_address_holds_its_other_users_for_at_most_a_minute(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let session = admin_session(&issuer).await;
    new_user(&issuer, &session, "erin", vec![]).await;
    let attempt = |user: String, password: &'static str| {
        let mut sessions = issuer.sessions();
        async move {
            sessions
                .login(basic(v1::LoginRequest::default(), &user, password))
                .await
        }
    };
    let mut waits = Vec::new();
    let mut failures = 0;
    let mut n = 0;
    // Past the 30 free failures and through the doubling waits to the cap.
    while failures < 40 {
        n += 1;
        let status = attempt(format!("guess{n}"), "a-wrong-guess-123")
            .await
            .expect_err("a wrong password");
        match status.code() {
            Code::Unauthenticated => failures += 1,
            Code::ResourceExhausted => {
                let wait = retry_after(&status).expect("a retry hint");
                waits.push(wait.as_secs());
                issuer
                    .clock
                    .advance(chrono::Duration::from_std(wait).expect("wait"));
            }
            other => panic!("unexpected {other:?}: {status:?}"),
        }
    }
    assert_eq!(waits[..7], [1, 2, 4, 8, 16, 32, 60], "{waits:?}");
    assert!(waits[7..].iter().all(|&w| w == 60), "{waits:?}");

    // The source is still held (the last failure was just now), so erin
    // waits, but no longer than a minute, and then gets in.
    let held = attempt("erin".into(), crate::support::lifecycle::USER_PASSWORD)
        .await
        .expect_err("the address is held");
    assert_eq!(held.code(), Code::ResourceExhausted, "{held:?}");
    let wait = retry_after(&held).expect("a retry hint");
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    issuer
        .clock
        .advance(chrono::Duration::from_std(wait).expect("wait"));
    attempt("erin".into(), crate::support::lifecycle::USER_PASSWORD)
        .await
        .expect("erin signs in after at most a minute");
    issuer.stop().await;
}

/// Text no field should hold is refused with INVALID_ARGUMENT naming the
/// field, in every RPC, on both databases; never INTERNAL.
async fn unusable_text_is_refused_in_every_field(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let session = admin_session(&issuer).await;
    let (token, _) =
        crate::support::lifecycle::api_token(&issuer, &session, "target", 3_600, vec![]).await;
    let bad = [
        ("NUL", "a\u{0}b"),
        ("bell", "a\u{7}b"),
        ("escape", "a\u{1b}[31mb"),
        ("right-to-left override", "cod\u{202E}gpj.exe"),
        ("zero-width space", "ad\u{200B}min"),
    ];
    for (what, text) in bad {
        let name_only = what.contains("override") || what.contains("zero-width");
        let s = text.to_owned();
        let mut cases: Vec<(&str, Result<(), Status>)> = Vec::new();
        let tokens = || issuer.tokens();
        cases.push((
            "name",
            tokens()
                .create_token(bearer(
                    v1::CreateTokenRequest {
                        name: s.clone(),
                        ..Default::default()
                    },
                    &session,
                ))
                .await
                .map(|_| ()),
        ));
        cases.push((
            "token.owner",
            tokens()
                .get_token(bearer(
                    v1::GetTokenRequest {
                        token: Some(v1::TokenSelector {
                            owner: s.clone(),
                            name: "x".into(),
                            ..Default::default()
                        }),
                    },
                    &session,
                ))
                .await
                .map(|_| ()),
        ));
        cases.push((
            "token.name",
            tokens()
                .get_token(bearer(
                    v1::GetTokenRequest {
                        token: Some(v1::TokenSelector {
                            name: s.clone(),
                            ..Default::default()
                        }),
                    },
                    &session,
                ))
                .await
                .map(|_| ()),
        ));
        cases.push((
            "owner",
            tokens()
                .list_tokens(bearer(
                    v1::ListTokensRequest {
                        owner: s.clone(),
                        ..Default::default()
                    },
                    &session,
                ))
                .await
                .map(|_| ()),
        ));
        cases.push((
            "token.name",
            tokens()
                .update_token(bearer(
                    v1::UpdateTokenRequest {
                        target: by_id(&token.id),
                        token: Some(v1::Token {
                            name: s.clone(),
                            ..Default::default()
                        }),
                        update_mask: mask(&["name"]),
                    },
                    &session,
                ))
                .await
                .map(|_| ()),
        ));
        cases.push((
            "name",
            tokens()
                .duplicate_token(bearer(
                    v1::DuplicateTokenRequest {
                        source: by_id(&token.id),
                        name: s.clone(),
                        description: String::new(),
                    },
                    &session,
                ))
                .await
                .map(|_| ()),
        ));
        cases.push((
            "user.username",
            users(&issuer)
                .create_user(bearer(
                    v1::CreateUserRequest {
                        user: Some(v1::User {
                            username: s.clone(),
                            ..Default::default()
                        }),
                        password: "a-long-enough-password".into(),
                    },
                    &session,
                ))
                .await
                .map(|_| ()),
        ));
        cases.push((
            "user",
            users(&issuer)
                .get_user(bearer(v1::GetUserRequest { user: s.clone() }, &session))
                .await
                .map(|_| ()),
        ));
        cases.push((
            "user",
            users(&issuer)
                .delete_user(bearer(v1::DeleteUserRequest { user: s.clone() }, &session))
                .await
                .map(|_| ()),
        ));
        cases.push((
            "user",
            users(&issuer)
                .set_password(bearer(
                    v1::SetPasswordRequest {
                        user: s.clone(),
                        current_password: String::new(),
                        new_password: "a-long-enough-password".into(),
                    },
                    &session,
                ))
                .await
                .map(|_| ()),
        ));
        cases.push((
            "actor",
            audit(&issuer)
                .list_audit_events(bearer(
                    v1::ListAuditEventsRequest {
                        actor: s.clone(),
                        ..Default::default()
                    },
                    &session,
                ))
                .await
                .map(|_| ()),
        ));
        if !name_only {
            cases.push((
                "description",
                tokens()
                    .create_token(bearer(
                        v1::CreateTokenRequest {
                            name: format!("described {what}"),
                            description: s.clone(),
                            ..Default::default()
                        },
                        &session,
                    ))
                    .await
                    .map(|_| ()),
            ));
            cases.push((
                "action",
                audit(&issuer)
                    .list_audit_events(bearer(
                        v1::ListAuditEventsRequest {
                            action: s.clone(),
                            ..Default::default()
                        },
                        &session,
                    ))
                    .await
                    .map(|_| ()),
            ));
            cases.push((
                "new_password",
                users(&issuer)
                    .set_password(bearer(
                        v1::SetPasswordRequest {
                            user: "admin".into(),
                            current_password: String::new(),
                            new_password: format!("long enough {s}"),
                        },
                        &session,
                    ))
                    .await
                    .map(|_| ()),
            ));
        }
        for (field, result) in cases {
            let status = expect_code(result, Code::InvalidArgument);
            assert!(
                violated_fields(&status).iter().any(|f| f == field),
                "{what} in {field}: {status:?}"
            );
        }
    }
    // A multi-line description is fine; a tab too.
    issuer
        .tokens()
        .create_token(bearer(
            v1::CreateTokenRequest {
                name: "multi-line".into(),
                description: "first line\n\tsecond line".into(),
                ..Default::default()
            },
            &session,
        ))
        .await
        .expect("line breaks in a description");
    // A NUL in the Basic user name is a failed sign-in, not a fault.
    let nul = issuer
        .sessions()
        .login(basic(
            v1::LoginRequest::default(),
            "ad\u{0}min",
            "x-password-1234",
        ))
        .await;
    expect_code(nul, Code::Unauthenticated);
    issuer.stop().await;
}

/// The longest names the limits allow compose into audit records and rows
/// that fit their columns.
async fn the_longest_legal_names_fit_every_column(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let session = admin_session(&issuer).await;
    let long_user = "u".repeat(128);
    new_user(
        &issuer,
        &session,
        &long_user,
        vec![grant("repositories", &["read"])],
    )
    .await;
    let created = issuer
        .tokens()
        .create_token(basic(
            v1::CreateTokenRequest {
                name: "n".repeat(128),
                ..Default::default()
            },
            &long_user,
            crate::support::lifecycle::USER_PASSWORD,
        ))
        .await
        .expect("a 128-character name for a 128-character user");
    issuer
        .tokens()
        .delete_token(bearer(
            v1::DeleteTokenRequest {
                token: Some(v1::TokenSelector {
                    owner: long_user.clone(),
                    name: "n".repeat(128),
                    ..Default::default()
                }),
            },
            &session,
        ))
        .await
        .expect("deleted by name");
    assert!(created.into_inner().token.is_some());
    issuer.stop().await;
}

/// Every token the limits allow is one the verifier accepts; larger
/// requests are refused, saying the limit, before anything is minted.
async fn the_largest_token_the_limits_allow_verifies(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let session = admin_session(&issuer).await;
    let item = |n: usize| {
        grant(
            &format!("repositories/{n:0>100}"),
            &["read", "write", "download"],
        )
    };
    let create = |permissions: Vec<v1::Grant>, name: &'static str| {
        let mut tokens = issuer.tokens();
        let session = session.clone();
        async move {
            tokens
                .create_token(bearer(
                    v1::CreateTokenRequest {
                        name: name.into(),
                        permissions,
                        ..Default::default()
                    },
                    &session,
                ))
                .await
        }
    };
    // As many grants as fit in the grants budget.
    let mut fitting = Vec::new();
    while tessera_core::grants::json_size(
        &fitting
            .iter()
            .chain([&item(fitting.len())])
            .map(|g: &v1::Grant| tessera_core::Grant {
                resource: g.resource.clone(),
                actions: g.actions.clone(),
            })
            .collect::<Vec<_>>(),
    ) <= tessera_core::grants::MAX_GRANTS_JSON_BYTES
    {
        fitting.push(item(fitting.len()));
    }
    let largest = create(fitting.clone(), "largest")
        .await
        .expect("fits")
        .into_inner();
    assert!(largest.secret.len() <= tessera_core::jwt::MAX_TOKEN_BYTES);
    let answer = verifier
        .verify(
            &largest.secret,
            &format!("repositories/{:0>100}", 1),
            "write",
        )
        .await;
    assert_eq!(answer.reason, VerifyReason::Ok as i32, "{answer:?}");

    let mut one_more = fitting;
    one_more.push(item(one_more.len()));
    let status = expect_code(create(one_more, "too large").await, Code::InvalidArgument);
    assert!(status.message().contains("bytes"), "{status:?}");

    let many: Vec<v1::Grant> = (0..100_000)
        .map(|n| grant(&format!("jobs/{n}"), &["read"]))
        .collect();
    let started = std::time::Instant::now();
    let status = expect_code(create(many, "enormous").await, Code::InvalidArgument);
    assert!(status.message().contains("at most 64"), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "refused early");
    issuer.stop().await;
}

on_both_backends!(
    guessing_meets_growing_delays_and_spares_the_real_user,
    forwarded_addresses_count_only_from_trusted_proxies,
    a_busy_address_holds_its_other_users_for_at_most_a_minute,
    unusable_text_is_refused_in_every_field,
    the_longest_legal_names_fit_every_column,
    the_largest_token_the_limits_allow_verifies,
);

/// How long until `probe` first returns true, polling every 2 ms (bounded).
async fn until(mut probe: impl AsyncFnMut() -> bool) -> Duration {
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if probe().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("not within 20 s");
}

/// With the store cut, health follows Verify's STALE within 100 ms and
/// back; a login costs one store timeout, not two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_staleness_and_outages_cost_one_timeout() {
    let Some(url) = support::db::postgres_url() else {
        support::db::say_skipped("abuse::health_follows_staleness_and_outages_cost_one_timeout");
        return;
    };
    let proxy = support::proxy::Proxy::start(postgres_addr(&url).await).await;
    let db = TestDb::new(Backend::Postgres).await;
    let mut config = support::issuer_config(&db);
    config.database_url = rewrite_host(&url, proxy.addr);
    let issuer = Harness::start_with(db, config).await;
    let mut vconfig = verifier_config(issuer.db());
    vconfig.database_url = rewrite_host(&url, proxy.addr);
    vconfig.max_staleness = Duration::from_secs(2);
    let verifier = VerifierHarness::spawn(vconfig, issuer.clock.clone()).await;
    verifier.wait_for_health(ServingStatus::Serving).await;
    let session = admin_session(&issuer).await;
    let (_, secret) =
        crate::support::lifecycle::api_token(&issuer, &session, "probe", 3_600, vec![]).await;

    let mut lags = Vec::new();
    for _ in 0..3 {
        proxy.cut().await;
        // The view ages by the (manual) clock: past the staleness limit
        // with the store out of reach.
        issuer.clock.advance(chrono::Duration::seconds(3));
        let stale = until(async || verifier.reason(&secret).await == VerifyReason::Stale).await;
        let down = until(async || verifier.health().await == ServingStatus::NotServing).await;
        proxy.restore();
        let fresh = until(async || verifier.reason(&secret).await == VerifyReason::Ok).await;
        let up = until(async || verifier.health().await == ServingStatus::Serving).await;
        lags.push((down, up));
        assert!(stale > Duration::ZERO && fresh > Duration::ZERO);
    }
    lags.sort();
    let (down, up) = lags[1];
    assert!(
        down < Duration::from_millis(100) && up < Duration::from_millis(100),
        "median lag of health behind Verify: {down:?} down, {up:?} up ({lags:?})"
    );

    proxy.cut().await;
    let started = std::time::Instant::now();
    let refused = issuer
        .sessions()
        .login(basic(
            v1::LoginRequest::default(),
            "admin",
            "a-wrong-guess-123",
        ))
        .await;
    let took = started.elapsed();
    expect_code(refused, Code::Unavailable);
    assert!(
        took < Duration::from_secs(8),
        "a login during an outage waits one store timeout (5 s), not two: {took:?}"
    );
    proxy.restore();
    issuer.stop().await;
}

/// After the shutdown signal a plain health check on a new connection is
/// answered NOT_SERVING for the shutdown delay, before the listener closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_says_not_serving_before_it_stops_listening() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = support::issuer_config(&db);
    config.shutdown_delay = Duration::from_millis(1_500);
    let clock = std::sync::Arc::new(tessera_core::ManualClock::new(support::now()));
    let issuer = tessera_issuer::Issuer::bind(config, clock)
        .await
        .expect("bind");
    let addr = issuer.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(issuer.run_until(async {
        let _ = stopped.await;
    }));
    let check = || async move {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status)
            .map_err(|e| e.to_string())
    };
    until(async || check().await == Ok(ServingStatus::Serving as i32)).await;
    let _ = stop.send(());
    let started = tokio::time::Instant::now();
    let seen = until(async || check().await == Ok(ServingStatus::NotServing as i32)).await;
    assert!(
        seen < Duration::from_millis(500),
        "NOT_SERVING seen after {seen:?}"
    );
    assert_eq!(
        check().await,
        Ok(ServingStatus::NotServing as i32),
        "still answering during the delay"
    );
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("stops after the delay")
        .expect("task")
        .expect("clean stop");
    assert!(started.elapsed() >= Duration::from_millis(1_400));
    assert!(check().await.is_err(), "the listener is closed");
}

/// Two hundred concurrent sign-ins by unknown users against a real issuer
/// process (`tessera dev`) hold its memory to the hashing budget; the
/// excess is answered RESOURCE_EXHAUSTED with a retry hint, quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_holds_memory_to_the_budget() {
    let dir = std::env::temp_dir().join(format!("tessera-flood-{}", uuid::Uuid::now_v7()));
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
    };
    let (issuer_addr, verifier_addr) = (free(), free());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera-e2e-cli"))
        .args(["dev", "--data-dir"])
        .arg(&dir)
        .args(["--issuer-listen", &issuer_addr.to_string()])
        .args(["--verifier-listen", &verifier_addr.to_string()])
        .env("TESSERA_ADMIN_PASSWORD", support::ADMIN_PASSWORD)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start tessera dev");
    let pid = child.id().expect("pid");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{issuer_addr}"))
        .expect("endpoint")
        .connect_lazy();
    until(async || {
        tonic_health::pb::health_client::HealthClient::new(channel.clone())
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32)
    })
    .await;
    // `dev` reads the issuer's variables: the admin password is the one set.
    v1::session_service_client::SessionServiceClient::new(channel.clone())
        .login(basic(
            v1::LoginRequest::default(),
            "admin",
            support::ADMIN_PASSWORD,
        ))
        .await
        .expect("TESSERA_ADMIN_PASSWORD is honoured by tessera dev");
    let status_kib = |field: &str| -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        text.lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a memory figure")
    };
    let before = status_kib("VmRSS:");
    let mut calls = Vec::new();
    for n in 0..200 {
        let mut client = v1::session_service_client::SessionServiceClient::new(channel.clone());
        calls.push(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let result = client
                .login(basic(
                    v1::LoginRequest::default(),
                    &format!("nobody-{n}"),
                    "a-wrong-guess-123",
                ))
                .await;
            (result.map(|_| ()), started.elapsed())
        }));
    }
    let mut refused_busy = 0;
    let mut slowest_busy = Duration::ZERO;
    for call in calls {
        let (result, took) = call.await.expect("join");
        let status = result.expect_err("nobody logs in");
        match status.code() {
            Code::Unauthenticated => {}
            Code::ResourceExhausted => {
                assert!(retry_after(&status).is_some(), "{status:?}");
                refused_busy += 1;
                slowest_busy = slowest_busy.max(took);
            }
            other => panic!("unexpected {other:?}: {status:?}"),
        }
    }
    let peak = status_kib("VmHWM:");
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    let grown_mib = peak.saturating_sub(before) / 1024;
    println!(
        "login flood: 200 concurrent unknown-user logins; RSS before {} MiB, peak {} MiB \
         (+{grown_mib} MiB); {refused_busy} refused as busy, slowest of those {slowest_busy:?}",
        before / 1024,
        peak / 1024
    );
    assert!(
        grown_mib < 300,
        "the issuer grew by {grown_mib} MiB under the flood (budget 128 MiB)"
    );
    assert!(refused_busy > 0, "some were beyond the budget");
}
