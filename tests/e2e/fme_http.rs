//! FME's own token endpoints over real HTTP (`--http-listen`), as FME's
//! scripts and clients call them: the token service, `fmeflow login`'s v4
//! and v3 sequences, the renewal pipeline (list, extend in place, read
//! back) followed to verifiers, every refusal's status, and each form of
//! credentials.

use crate::on_both_backends;
use crate::support::fme::{self, admin_basic, basic, date, enc};
use crate::support::lifecycle::{USER_PASSWORD, audited, claims, new_user, token_events};
use crate::support::verifier::{VerifierHarness, verifier_config};
use crate::support::{ADMIN_PASSWORD, Backend, Harness, admin};
use chrono::Duration;
use serde_json::json;
use std::time::Duration as StdDuration;
use tessera_core::Clock;
use tessera_proto::v1::{self, VerifyReason};
use tonic_health::pb::health_check_response::ServingStatus;

const DAY: i64 = 86_400;

/// The administrator's session, for gRPC set-up calls.
async fn admin_session(issuer: &Harness) -> String {
    crate::support::lifecycle::admin_session(issuer).await
}

/// Makes an API token of the administrator over v4; returns its secret.
async fn v4_token(issuer: &Harness, name: &str, secs: i64) -> String {
    let made = fme::json(
        issuer,
        "POST",
        "/fmeapiv4/tokens",
        Some(&admin_basic()),
        &json!({"name": name, "description": "", "enabled": true,
                "customPermissions": false, "secondsToExpiry": secs}),
    )
    .await;
    assert_eq!(made.status, 201, "{made:?}");
    made.json()["token"].as_str().expect("a secret").to_owned()
}

fn seconds_of(claims: &serde_json::Value, name: &str) -> i64 {
    claims[name]
        .as_i64()
        .unwrap_or_else(|| panic!("claim {name}"))
}

async fn the_token_service_honours_every_time_unit(backend: Backend) {
    // A long maximum, so every unit shows as itself.
    let issuer = fme::start_with(backend, |c| {
        c.max_session_lifetime = StdDuration::from_secs(400 * DAY as u64);
    })
    .await;
    let user = ("user", tessera_issuer::ADMIN_USERNAME);
    let password = ("password", ADMIN_PASSWORD);
    let units = [
        ("30", "second", 30),
        ("2", "minute", 120),
        ("3", "hour", 10_800),
        ("3", "day", 3 * DAY),
        ("1", "week", 7 * DAY),
        ("1", "month", 30 * DAY),
        ("1", "year", 365 * DAY),
    ];
    for (expiration, unit, secs) in units {
        let reply = fme::generate(
            &issuer,
            false,
            &[
                user,
                password,
                ("expiration", expiration),
                ("timeunit", unit),
            ],
        )
        .await;
        assert_eq!(reply.status, 200, "{unit}: {reply:?}");
        assert!(reply.header("content-type").starts_with("text/plain"));
        assert_eq!(reply.header("cache-control"), "no-store");
        let c = claims(&reply.body);
        assert_eq!(c["typ"], "session");
        assert_eq!(
            seconds_of(&c, "exp") - seconds_of(&c, "iat"),
            secs,
            "{unit}"
        );
    }
    // The defaults: 5 minutes without `expiration`; hours without a unit.
    let plain = fme::generate(&issuer, false, &[user, password]).await;
    let c = claims(&plain.body);
    assert_eq!(seconds_of(&c, "exp") - seconds_of(&c, "iat"), 300);
    let hours = fme::generate(&issuer, false, &[user, password, ("expiration", "2")]).await;
    let c = claims(&hours.body);
    assert_eq!(seconds_of(&c, "exp") - seconds_of(&c, "iat"), 7_200);

    // The JSON envelope, and POST with a form body or a query string.
    let enveloped = fme::generate(
        &issuer,
        true,
        &[user, password, ("expiration", "3"), ("timeunit", "day")],
    )
    .await;
    assert_eq!(enveloped.status, 200, "{enveloped:?}");
    let response = &enveloped.json()["serviceResponse"];
    let secret = response["token"].as_str().expect("token");
    assert_eq!(response["statusInfo"]["status"], "success");
    assert_eq!(
        date(&response["expirationDate"]),
        seconds_of(&claims(secret), "exp")
    );
    let form = format!(
        "user=admin&password={}&expiration=10&timeunit=minute",
        enc(ADMIN_PASSWORD)
    );
    let posted = fme::raw(
        &issuer,
        "POST",
        "/fmetoken/generate",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
    .await;
    assert_eq!(posted.status, 200, "{posted:?}");
    let c = claims(&posted.body);
    assert_eq!(seconds_of(&c, "exp") - seconds_of(&c, "iat"), 600);
    let in_query = fme::call(
        &issuer,
        "POST",
        &format!("/fmetoken/generate.json?{form}"),
        None,
    )
    .await;
    assert_eq!(in_query.status, 200, "{in_query:?}");

    // A token-service session of the user, as the gRPC API lists it.
    let sessions = issuer
        .tokens()
        .list_tokens(admin(v1::ListTokensRequest {
            r#type: v1::TokenType::Session as i32,
            ..Default::default()
        }))
        .await
        .expect("list")
        .into_inner()
        .tokens;
    let made = sessions
        .iter()
        .find(|t| t.id == c["jti"])
        .expect("the session is listed");
    assert_eq!(made.session_kind, v1::SessionKind::TokenService as i32);
    issuer.stop().await;
}

async fn the_token_service_cuts_to_the_maximum_and_refuses_alike(backend: Backend) {
    let issuer = fme::start(backend).await; // maximum session: 1 day
    let session = admin_session(&issuer).await;
    new_user(&issuer, &session, "carol", vec![]).await;
    let long = fme::generate(
        &issuer,
        false,
        &[
            ("user", "admin"),
            ("password", ADMIN_PASSWORD),
            ("expiration", "3"),
            ("timeunit", "week"),
        ],
    )
    .await;
    let c = claims(&long.body);
    assert_eq!(
        seconds_of(&c, "exp") - seconds_of(&c, "iat"),
        DAY,
        "cut to the maximum"
    );

    // A wrong password and an unknown user read the same: 401.
    let wrong = fme::generate(
        &issuer,
        false,
        &[("user", "carol"), ("password", "not-it-at-all")],
    )
    .await;
    let nobody = fme::generate(
        &issuer,
        false,
        &[("user", "nobody"), ("password", "not-it-at-all")],
    )
    .await;
    assert_eq!((wrong.status, nobody.status), (401, 401));
    assert_eq!(wrong.body, nobody.body);
    assert!(!wrong.body.contains("not-it-at-all"), "never echoed");
    let json_wrong = fme::generate(
        &issuer,
        true,
        &[("user", "carol"), ("password", "not-it-at-all")],
    )
    .await;
    assert_eq!(json_wrong.status, 401);
    assert_eq!(
        json_wrong.json()["serviceResponse"]["statusInfo"]["status"],
        "failure"
    );
    // Carol has failed twice from here; after two more (the free ones and
    // one more) the next attempt must wait, even with the right password.
    for _ in 0..2 {
        let again = fme::generate(
            &issuer,
            false,
            &[("user", "carol"), ("password", "not-it-at-all")],
        )
        .await;
        assert_eq!(again.status, 401);
    }
    let throttled = fme::generate(
        &issuer,
        false,
        &[("user", "carol"), ("password", USER_PASSWORD)],
    )
    .await;
    assert_eq!(throttled.status, 429, "{throttled:?}");
    assert!(
        throttled
            .header("retry-after")
            .parse::<u64>()
            .is_ok_and(|s| s >= 1)
    );
    issuer.clock.advance(Duration::minutes(1));
    let through = fme::generate(
        &issuer,
        false,
        &[("user", "carol"), ("password", USER_PASSWORD)],
    )
    .await;
    assert_eq!(through.status, 200, "{through:?}");

    // Bad parameters: 400, 401 without credentials, 415 for a wrong body.
    let cases: [(&[(&str, &str)], u16); 6] = [
        (&[("user", "admin")], 401),
        (
            &[
                ("user", "admin"),
                ("password", ADMIN_PASSWORD),
                ("expiration", "0"),
            ],
            400,
        ),
        (
            &[
                ("user", "admin"),
                ("password", ADMIN_PASSWORD),
                ("expiration", "1"),
                ("timeunit", "fortnight"),
            ],
            400,
        ),
        (
            &[
                ("user", "admin"),
                ("password", ADMIN_PASSWORD),
                ("timeunit", "day"),
            ],
            400,
        ),
        (
            &[
                ("user", "admin"),
                ("password", ADMIN_PASSWORD),
                ("colour", "red"),
            ],
            400,
        ),
        (
            &[
                ("user", "admin"),
                ("user", "carol"),
                ("password", ADMIN_PASSWORD),
            ],
            400,
        ),
    ];
    for (query, status) in cases {
        let reply = fme::generate(&issuer, false, query).await;
        assert_eq!(reply.status, status, "{query:?}: {reply:?}");
        assert!(
            !reply.body.contains(ADMIN_PASSWORD),
            "never echoed: {reply:?}"
        );
    }
    let json_body = fme::json(
        &issuer,
        "POST",
        "/fmetoken/generate",
        None,
        &json!({"user": "admin"}),
    )
    .await;
    assert_eq!(json_body.status, 415, "{json_body:?}");

    // Failed sign-ins are audited as gRPC logins are, never with the password.
    let logins = audited(&issuer.db().store().await, "session.login").await;
    assert!(logins.iter().any(|(outcome, _, _)| outcome == "denied"));
    assert!(logins.iter().any(|(outcome, _, _)| outcome == "throttled"));
    assert!(
        logins
            .iter()
            .all(|(_, t, d)| !t.contains("not-it-at-all") && !d.contains("not-it-at-all"))
    );
    issuer.stop().await;
}

async fn fmeflow_login_v4_version_then_create(backend: Backend) {
    let issuer = fme::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    // `fmeflow login URL --user admin --password-file F`:
    let version = fme::call(&issuer, "GET", "/fmeinfo/version", Some(&admin_basic())).await;
    assert_eq!(version.status, 200, "{version:?}");
    let info = version.json();
    assert!(
        info["buildNumber"].as_i64().is_some_and(|b| b >= 25_208),
        "v4: {info}"
    );
    assert!(
        info["buildString"]
            .as_str()
            .is_some_and(|s| s.contains("Tessera"))
    );
    let made = fme::json(
        &issuer,
        "POST",
        "/fmeapiv4/tokens",
        Some(&admin_basic()),
        &json!({"name": "fmeflow-cli-20261208120000",
                "description": "Token generated for use with the fmeflow-cli.",
                "enabled": true, "customPermissions": false, "secondsToExpiry": 2_592_000}),
    )
    .await;
    assert_eq!(made.status, 201, "{made:?}");
    assert_eq!(
        made.header("location"),
        "/fmeapiv4/tokens/admin/fmeflow-cli-20261208120000"
    );
    let body = made.json();
    for field in [
        "name",
        "description",
        "owner",
        "type",
        "customPermissions",
        "enabled",
        "created",
        "updated",
        "secondsToExpiry",
        "expiration",
        "token",
    ] {
        assert!(body.get(field).is_some(), "{field} missing: {body}");
    }
    assert_eq!(body["owner"], "admin");
    assert_eq!(body["type"], "USER");
    assert_eq!(body["customPermissions"], false);
    assert_eq!(body["secondsToExpiry"], 2_592_000);
    let now = issuer.clock.now().timestamp();
    assert_eq!(date(&body["expiration"]), now + 2_592_000);
    assert_eq!(date(&body["created"]), now);
    let secret = body["token"].as_str().expect("token").to_owned();
    // Every later call: `Authorization: fmetoken token=<t>`.
    let read = fme::call(
        &issuer,
        "GET",
        "/fmeapiv4/tokens/admin/fmeflow-cli-20261208120000",
        Some(&format!("fmetoken token={secret}")),
    )
    .await;
    assert_eq!(read.status, 200, "{read:?}");
    assert!(read.json().get("token").is_none(), "a secret is shown once");
    assert_eq!(verifier.reason(&secret).await, VerifyReason::Ok);
    // The same audit as a gRPC CreateToken.
    let created = audited(&issuer.db().store().await, "token.create").await;
    let id = claims(&secret)["jti"].as_str().expect("jti").to_owned();
    assert!(
        created
            .iter()
            .any(|(o, t, _)| o == "ok" && *t == format!("tokens/{id}")),
        "{created:?}"
    );
    issuer.stop().await;
}

async fn fmeflow_login_v3_healthcheck_then_create(backend: Backend) {
    let issuer = fme::start(backend).await;
    let health = fme::call(&issuer, "GET", "/fmerest/v3/healthcheck?ready=false", None).await;
    assert_eq!(
        (health.status, health.json()),
        (200, json!({"status": "ok"}))
    );
    let made = fme::json(
        &issuer,
        "POST",
        "/fmerest/v3/tokens",
        Some(&admin_basic()),
        &json!({"restricted": false, "name": "fmeserver-cli-20221117135041",
                "description": "Token generated for use with the fmeserver-cli.",
                "expirationTimeout": 2_592_000, "user": "admin", "enabled": true}),
    )
    .await;
    assert_eq!(made.status, 201, "{made:?}");
    let body = made.json();
    for field in [
        "lastSaveDate",
        "createdDate",
        "restricted",
        "name",
        "description",
        "type",
        "user",
        "enabled",
        "expirationDate",
        "token",
    ] {
        assert!(body.get(field).is_some(), "{field} missing: {body}");
    }
    let now = issuer.clock.now().timestamp();
    assert_eq!(date(&body["expirationDate"]), now + 2_592_000);
    assert_eq!(date(&body["createdDate"]), now);
    assert_eq!(body["restricted"], false);
    assert_eq!(body["user"], "admin");
    let secret = body["token"].as_str().expect("token");
    let listed = fme::call(
        &issuer,
        "GET",
        "/fmerest/v3/tokens?limit=-1&offset=-1",
        Some(&format!("fmetoken token={secret}")),
    )
    .await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let list = listed.json();
    assert_eq!(list["totalCount"], 1);
    assert_eq!(list["items"][0]["name"], "fmeserver-cli-20221117135041");
    assert!(list["items"][0].get("token").is_none());
    issuer.stop().await;
}

async fn the_renewal_pipeline_extends_in_place_and_the_secret_keeps_working(backend: Backend) {
    let issuer = fme::start(backend).await;
    let store = issuer.db().store().await;
    let current = VerifierHarness::beside(&issuer).await;
    // A verifier that will miss the extension: it loads once, then would
    // poll only after an hour, and trusts a view a month old.
    let mut config = verifier_config(issuer.db());
    config.sync_interval = StdDuration::from_secs(3_600);
    config.max_staleness = StdDuration::from_secs(30 * DAY as u64);
    let behind = VerifierHarness::spawn(config, issuer.clock.clone()).await;
    behind.wait_for_health(ServingStatus::Serving).await;

    // The pipeline's own credential, and the token it renews (3 days left).
    let ops = v4_token(&issuer, "ops", 30 * DAY).await;
    let ops_auth = format!("fmetoken token={ops}");
    let made = fme::json(
        &issuer,
        "POST",
        "/fmerest/v3/tokens",
        Some(&admin_basic()),
        &json!({"name": "nightly export", "expirationTimeout": 3 * DAY}),
    )
    .await;
    assert_eq!(made.status, 201, "{made:?}");
    let secret = made.json()["token"].as_str().expect("token").to_owned();
    let signed_exp = seconds_of(&claims(&secret), "exp");
    assert_eq!(
        behind.reason(&secret).await,
        VerifyReason::Ok,
        "the slow verifier knows it"
    );

    // 1. List everything; 2. renew each token expiring within a week.
    let listed = fme::call(
        &issuer,
        "GET",
        "/fmerest/v3/tokens?limit=-1&offset=-1",
        Some(&ops_auth),
    )
    .await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let now = issuer.clock.now().timestamp();
    let due: Vec<serde_json::Value> = listed.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|t| t["type"] == "USER" && date(&t["expirationDate"]) < now + 7 * DAY)
        .cloned()
        .collect();
    assert_eq!(due.len(), 1, "{due:?}");
    let path = format!(
        "/fmerest/v3/tokens/{}/{}",
        due[0]["user"].as_str().expect("user"),
        enc(due[0]["name"].as_str().expect("name"))
    );
    let renewed = fme::json(
        &issuer,
        "PUT",
        &path,
        Some(&ops_auth),
        &json!({"expirationTimeout": 31_536_000}),
    )
    .await;
    assert_eq!(renewed.status, 204, "{renewed:?}");
    assert!(renewed.body.is_empty());
    // 3. Read it back.
    let read = fme::call(&issuer, "GET", &path, Some(&ops_auth)).await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(date(&read.json()["expirationDate"]), now + 31_536_000);
    assert_eq!(read.json()["status"], "active");

    // The extension is an event in the log; the signed expiry is unchanged
    // (that is what a plain JWT library sees).
    let id = claims(&secret)["jti"].as_str().expect("jti").to_owned();
    let kinds: Vec<String> = token_events(&store, &id)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kinds, ["extend_token"]);

    // Past the signed expiry: the distributed secret still verifies where
    // the extension was seen, and fails closed where it was not.
    issuer
        .clock
        .advance(Duration::seconds(signed_exp - now + 10 * DAY));
    current.wait_for_sync(&store, issuer.clock.as_ref()).await;
    let answer = current.verify(&secret, "", "").await;
    assert_eq!(answer.reason, VerifyReason::Ok as i32, "{answer:?}");
    assert_eq!(
        answer.expire_time.expect("expiry").seconds,
        now + 31_536_000
    );
    assert_eq!(behind.reason(&secret).await, VerifyReason::Expired);
    // The issuer itself agrees: the secret authenticates a call.
    let again = fme::call(
        &issuer,
        "GET",
        &path,
        Some(&format!("fmetoken token={secret}")),
    )
    .await;
    assert_eq!(again.status, 200, "{again:?}");
    issuer.stop().await;
}

async fn every_refusal_has_fmes_status(backend: Backend) {
    let issuer = fme::start(backend).await;
    let session = admin_session(&issuer).await;
    new_user(
        &issuer,
        &session,
        "carol",
        vec![crate::support::grant("repositories", &["read"])],
    )
    .await;
    let carol = basic("carol", USER_PASSWORD);
    let adm = admin_basic();
    let v3_new = json!({"name": "dup", "expirationTimeout": 3_600});
    let v4_new = json!({"name": "dup4", "secondsToExpiry": 3_600});
    assert_eq!(
        fme::json(&issuer, "POST", "/fmerest/v3/tokens", Some(&adm), &v3_new)
            .await
            .status,
        201
    );
    assert_eq!(
        fme::json(&issuer, "POST", "/fmeapiv4/tokens", Some(&adm), &v4_new)
            .await
            .status,
        201
    );

    // 401: none, wrong, garbled; REST answers carry a challenge.
    let none = fme::call(&issuer, "GET", "/fmerest/v3/tokens", None).await;
    assert_eq!(none.status, 401, "{none:?}");
    assert!(none.header("www-authenticate").starts_with("Basic"));
    assert!(none.json()["message"].is_string());
    let wrong = fme::call(
        &issuer,
        "GET",
        "/fmeapiv4/tokens",
        Some(&basic("admin", "wrong-password-here")),
    )
    .await;
    assert_eq!(wrong.status, 401);
    let garbled = fme::call(
        &issuer,
        "GET",
        "/fmeapiv4/tokens",
        Some("fmetoken token=not.a.token"),
    )
    .await;
    assert_eq!(garbled.status, 401);

    // 403: another user's tokens, or a token made on someone's behalf.
    let others = fme::call(&issuer, "GET", "/fmerest/v3/tokens/admin", Some(&carol)).await;
    assert_eq!(others.status, 403, "{others:?}");
    let behalf = fme::json(
        &issuer,
        "POST",
        "/fmerest/v3/tokens",
        Some(&carol),
        &json!({"name": "x", "user": "admin"}),
    )
    .await;
    assert_eq!(behalf.status, 403, "{behalf:?}");

    // 404: no such token (or one the caller may not see), no such endpoint.
    for (path, auth) in [
        ("/fmerest/v3/tokens/admin/nothing", &adm),
        ("/fmerest/v3/tokens/admin/dup", &carol),
        ("/fmeapiv4/tokens/admin/nothing", &adm),
    ] {
        let reply = fme::call(&issuer, "GET", path, Some(auth)).await;
        assert_eq!(reply.status, 404, "{path}: {reply:?}");
    }
    let deleted = fme::call(
        &issuer,
        "DELETE",
        "/fmerest/v3/tokens/admin/nothing",
        Some(&adm),
    )
    .await;
    assert_eq!(deleted.status, 404);
    let endpoint = fme::call(&issuer, "GET", "/fmerest/v3/repositories", Some(&adm)).await;
    assert_eq!(endpoint.status, 404);
    assert!(
        endpoint.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("docs/fme.md"))
    );

    // 405: a method an endpoint does not take.
    let patch = fme::json(
        &issuer,
        "PATCH",
        "/fmerest/v3/tokens/admin/dup",
        Some(&adm),
        &json!({}),
    )
    .await;
    assert_eq!(patch.status, 405, "{patch:?}");

    // 409: a name taken; a change the token's state refuses.
    assert_eq!(
        fme::json(&issuer, "POST", "/fmerest/v3/tokens", Some(&adm), &v3_new)
            .await
            .status,
        409
    );
    assert_eq!(
        fme::json(&issuer, "POST", "/fmeapiv4/tokens", Some(&adm), &v4_new)
            .await
            .status,
        409
    );
    let restricted = fme::json(
        &issuer,
        "POST",
        "/fmerest/v3/tokens",
        Some(&adm),
        &json!({"name": "narrow", "restricted": true,
                "permissions": [{"name": "Repositories", "actions": ["Read"]}]}),
    )
    .await;
    assert_eq!(restricted.status, 201, "{restricted:?}");
    assert_eq!(
        restricted.json()["permissions"],
        json!([{"name": "repositories", "actions": ["read"]}])
    );
    let widen = fme::json(
        &issuer,
        "PUT",
        "/fmerest/v3/tokens/admin/narrow",
        Some(&adm),
        &json!({"restricted": false}),
    )
    .await;
    assert_eq!(widen.status, 409, "{widen:?}");
    let more = fme::json(
        &issuer,
        "PUT",
        "/fmerest/v3/tokens/admin/narrow",
        Some(&adm),
        &json!({"permissions": [{"name": "repositories", "actions": ["read", "write"]}]}),
    )
    .await;
    assert_eq!(more.status, 409, "{more:?}");
    assert!(
        more.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("RotateToken"))
    );

    // 422 (v3) and 400 (v4): bad input, named in FME's terms.
    let v3_bad = [
        json!({"name": "neg", "expirationTimeout": -5}),
        json!({"name": "long", "expirationTimeout": 400 * DAY}),
        json!({"name": "", "expirationTimeout": 60}),
        json!({"expirationTimeout": 60}),
        json!({"name": "extra", "colour": "red"}),
        json!({"name": "typed", "expirationTimeout": "soon"}),
        // The gRPC input screen applies: a name that displays as another.
        json!({"name": "ci\u{202E}gpj.exe", "expirationTimeout": 60}),
        json!({"name": "loose", "permissions": [{"name": "repositories", "actions": ["read"]}]}),
        json!({"name": "deps", "restricted": true,
               "permissions": [{"name": "Run Workspace", "actions": ["Run"]}]}),
    ];
    for body in &v3_bad {
        let reply = fme::json(&issuer, "POST", "/fmerest/v3/tokens", Some(&adm), body).await;
        assert_eq!(reply.status, 422, "{body}: {reply:?}");
        assert!(reply.json()["message"].is_string());
    }
    let neg = fme::json(
        &issuer,
        "POST",
        "/fmerest/v3/tokens",
        Some(&adm),
        &v3_bad[0],
    )
    .await;
    assert!(
        neg.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("expirationTimeout")),
        "{neg:?}"
    );
    let v4_bad = [
        json!({"name": "neg", "secondsToExpiry": -5}),
        json!({"name": "both", "secondsToExpiry": 60, "expiration": "2030-01-01T00:00:00Z"}),
        json!({"name": "date", "expiration": "next tuesday"}),
        json!({"name": "extra", "colour": "red"}),
        json!({"name": "deps", "customPermissions": true,
               "permissions": [{"name": "Run Workspace", "actions": ["Run"]}]}),
    ];
    for body in &v4_bad {
        let reply = fme::json(&issuer, "POST", "/fmeapiv4/tokens", Some(&adm), body).await;
        assert_eq!(reply.status, 400, "{body}: {reply:?}");
    }
    // With FME's "grant additional permissions", the dependency is added.
    let deps = fme::json(
        &issuer,
        "POST",
        "/fmeapiv4/tokens",
        Some(&adm),
        &json!({"name": "deps", "customPermissions": true, "grantDependencies": true,
                "permissions": [{"name": "Run Workspace", "actions": ["Run"]}]}),
    )
    .await;
    assert_eq!(deps.status, 201, "{deps:?}");
    assert_eq!(
        deps.json()["addedDependencies"],
        json!([{"name": "repositories", "actions": ["read"]}])
    );

    // Malformed, mistyped, oversized or too deep bodies.
    let json_type = [
        ("Content-Type", "application/json"),
        ("Authorization", adm.as_str()),
    ];
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [u8], u16);
    let cases: [Case; 4] = [
        (&json_type, br#"{"name": "#, 400),
        (&json_type, b"", 400),
        (
            &[
                ("Content-Type", "text/plain"),
                ("Authorization", adm.as_str()),
            ],
            br#"{"name": "t"}"#,
            415,
        ),
        (
            &json_type,
            br#"{"name": "deep", "permissions": [[[[[[[[[["x"]]]]]]]]]]}"#,
            400,
        ),
    ];
    for (headers, body, status) in cases {
        for path in ["/fmerest/v3/tokens", "/fmeapiv4/tokens"] {
            let reply = fme::raw(&issuer, "POST", path, headers, body).await;
            assert_eq!(
                reply.status,
                status,
                "{path} {:?}: {reply:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
    let oversized = crate::support::http::send(
        fme::addr(&issuer),
        "POST",
        "/fmerest/v3/tokens",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &adm),
            ("Content-Length", "70000"),
        ],
    )
    .await;
    assert_eq!(oversized.status, 413, "{oversized:?}");

    // An expired token cannot be extended in place (rotate it): 409.
    let short = fme::json(
        &issuer,
        "POST",
        "/fmerest/v3/tokens",
        Some(&adm),
        &json!({"name": "short", "expirationTimeout": 60}),
    )
    .await;
    assert_eq!(short.status, 201);
    issuer.clock.advance(Duration::minutes(5));
    let revive = fme::json(
        &issuer,
        "PUT",
        "/fmerest/v3/tokens/admin/short",
        Some(&adm),
        &json!({"expirationTimeout": 3_600}),
    )
    .await;
    assert_eq!(revive.status, 409, "{revive:?}");
    assert!(
        revive.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("RotateToken"))
    );
    let v4_revive = fme::json(
        &issuer,
        "PUT",
        "/fmeapiv4/tokens/admin/short",
        Some(&adm),
        &json!({"secondsToExpiry": 3_600}),
    )
    .await;
    assert_eq!(v4_revive.status, 409, "{v4_revive:?}");
    issuer.stop().await;
}

async fn credentials_come_as_fme_sends_them(backend: Backend) {
    let issuer = fme::start(backend).await;
    let secret = v4_token(&issuer, "creds", DAY).await;
    let path = "/fmeapiv4/tokens/admin/creds";
    for authorization in [
        admin_basic(),
        format!("fmetoken token={secret}"),
        format!("Bearer {secret}"),
    ] {
        let reply = fme::call(&issuer, "GET", path, Some(&authorization)).await;
        assert_eq!(
            reply.status,
            200,
            "{}: {reply:?}",
            authorization.split(' ').next().unwrap_or("")
        );
    }
    let query = fme::call(&issuer, "GET", &format!("{path}?fmetoken={secret}"), None).await;
    assert_eq!(query.status, 200, "{query:?}");
    let v3_query = fme::call(
        &issuer,
        "GET",
        &format!("/fmerest/v3/tokens?fmetoken={secret}"),
        None,
    )
    .await;
    assert_eq!(v3_query.status, 200, "{v3_query:?}");
    let twice = fme::call(
        &issuer,
        "GET",
        &format!("{path}?fmetoken={secret}"),
        Some(&admin_basic()),
    )
    .await;
    assert_eq!(twice.status, 400, "{twice:?}");
    assert!(!twice.body.contains(&secret), "never echoed");
    let stopped = issuer.stop().await;

    // With the query parameter turned off it is refused, saying why.
    let mut config = crate::support::issuer_config(&stopped);
    config.http_listen = Some("127.0.0.1:0".parse().expect("address"));
    config.fmetoken_query = false;
    let issuer = Harness::start_with(stopped, config).await;
    let off = fme::call(&issuer, "GET", &format!("{path}?fmetoken={secret}"), None).await;
    assert_eq!(off.status, 401, "{off:?}");
    assert!(
        off.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("Authorization: fmetoken"))
    );
    let header = fme::call(
        &issuer,
        "GET",
        path,
        Some(&format!("fmetoken token={secret}")),
    )
    .await;
    assert_eq!(header.status, 200, "{header:?}");
    issuer.stop().await;
}

async fn v4_changes_apply_through_the_same_rules(backend: Backend) {
    let issuer = fme::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let store = issuer.db().store().await;
    let adm = admin_basic();
    let made = fme::json(
        &issuer,
        "POST",
        "/fmeapiv4/tokens",
        Some(&adm),
        &json!({"name": "job", "customPermissions": true, "secondsToExpiry": DAY,
                "permissions": [{"name": "Repositories/Samples", "actions": ["Read", "Run"]}]}),
    )
    .await;
    assert_eq!(made.status, 201, "{made:?}");
    let secret = made.json()["token"].as_str().expect("token").to_owned();
    let path = "/fmeapiv4/tokens/admin/job";
    // A GET's fields sent back unchanged change nothing.
    let read = fme::call(&issuer, "GET", path, Some(&adm)).await.json();
    assert_eq!(
        read["permissions"],
        json!([{"name": "repositories/Samples", "actions": ["read", "run"]}])
    );
    let same = fme::json(&issuer, "PUT", path, Some(&adm), &read).await;
    assert_eq!(same.status, 204, "{same:?}");
    let id = claims(&secret)["jti"].as_str().expect("jti").to_owned();
    assert!(
        token_events(&store, &id).await.is_empty(),
        "nothing changed"
    );

    // A later date extends in place; fewer grants narrow; disabling is pushed.
    let now = issuer.clock.now().timestamp();
    let later = now + 20 * DAY;
    let until = chrono::DateTime::from_timestamp(later, 0)
        .expect("date")
        .to_rfc3339();
    let extended = fme::json(
        &issuer,
        "PUT",
        path,
        Some(&adm),
        &json!({"expiration": until}),
    )
    .await;
    assert_eq!(extended.status, 204, "{extended:?}");
    let narrowed = fme::json(
        &issuer,
        "PUT",
        path,
        Some(&adm),
        &json!({"permissions": [{"name": "repositories/Samples", "actions": ["read"]}]}),
    )
    .await;
    assert_eq!(narrowed.status, 204, "{narrowed:?}");
    verifier.wait_for_sync(&store, issuer.clock.as_ref()).await;
    let run = verifier
        .verify(&secret, "repositories/Samples", "run")
        .await;
    assert_eq!(run.reason, VerifyReason::PermissionDenied as i32, "{run:?}");
    assert_eq!(run.expire_time.expect("expiry").seconds, later);
    let off = fme::json(&issuer, "PUT", path, Some(&adm), &json!({"enabled": false})).await;
    assert_eq!(off.status, 204);
    verifier
        .wait_for_reason(&secret, VerifyReason::Disabled)
        .await;
    let shown = fme::call(&issuer, "GET", path, Some(&adm)).await.json();
    assert_eq!(
        (shown["enabled"].clone(), shown["status"].clone()),
        (json!(false), json!("disabled"))
    );
    assert_eq!(date(&shown["expiration"]), later);
    let kinds: Vec<String> = token_events(&store, &id)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kinds, ["extend_token", "narrow_token", "disable_token"]);

    // Deleted: 204, then 404, and the verifier refuses it.
    let gone = fme::call(&issuer, "DELETE", path, Some(&adm)).await;
    assert_eq!(gone.status, 204, "{gone:?}");
    assert_eq!(
        fme::call(&issuer, "GET", path, Some(&adm)).await.status,
        404
    );
    verifier
        .wait_for_reason(&secret, VerifyReason::Revoked)
        .await;

    // Listing: paging, owner and type filters.
    for name in ["a", "b", "c"] {
        v4_token(&issuer, name, DAY).await;
    }
    let page = fme::call(
        &issuer,
        "GET",
        "/fmeapiv4/tokens?owner=admin&type=USER&offset=1&limit=1",
        Some(&adm),
    )
    .await;
    assert_eq!(page.status, 200, "{page:?}");
    let page = page.json();
    assert_eq!(
        (
            page["totalCount"].clone(),
            page["items"].as_array().map(Vec::len)
        ),
        (json!(3), Some(1))
    );
    let bad_type = fme::call(&issuer, "GET", "/fmeapiv4/tokens?type=robot", Some(&adm)).await;
    assert_eq!(bad_type.status, 400);
    issuer.stop().await;
}

async fn health_and_version_answer_without_credentials(backend: Backend) {
    let issuer = fme::start(backend).await;
    let ready = fme::call(&issuer, "GET", "/fmerest/v3/healthcheck?ready=true", None).await;
    assert_eq!((ready.status, ready.json()), (200, json!({"status": "ok"})));
    let readiness = fme::call(&issuer, "GET", "/fmeapiv4/healthcheck/readiness", None).await;
    assert_eq!(readiness.status, 200, "{readiness:?}");
    assert_eq!(readiness.json()["status"], "ok");
    let liveness = fme::call(&issuer, "GET", "/fmeapiv4/healthcheck/liveness", None).await;
    assert_eq!(liveness.status, 200);
    let bad = fme::call(&issuer, "GET", "/fmerest/v3/healthcheck?ready=maybe", None).await;
    assert_eq!(bad.status, 400);
    let version = fme::call(&issuer, "GET", "/fmeinfo/version", None).await;
    assert_eq!(version.status, 200);
    issuer.stop().await;
}

/// Safe Software's own client, when one is at hand: set
/// `TESSERA_TEST_FMEFLOW_CLI` to an `fmeflow` binary (see docs/fme.md for
/// why the tests cannot build it here).
async fn the_real_fmeflow_cli_logs_in(backend: Backend) {
    let Some(cli) = std::env::var_os("TESSERA_TEST_FMEFLOW_CLI").filter(|v| !v.is_empty()) else {
        eprintln!(
            "SKIPPED fme_http::the_real_fmeflow_cli_logs_in: set TESSERA_TEST_FMEFLOW_CLI to an fmeflow binary to run it"
        );
        return;
    };
    let issuer = fme::start(backend).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let dir = std::env::temp_dir().join(format!("tessera-fmeflow-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let password_file = dir.join("password");
    std::fs::write(&password_file, ADMIN_PASSWORD).expect("password file");
    let config = dir.join("fmeflow-cli.yaml");
    let url = format!("http://{}", fme::addr(&issuer));
    let out = tokio::process::Command::new(cli)
        .arg("login")
        .arg(&url)
        .args(["--user", "admin", "--password-file"])
        .arg(&password_file)
        .arg("--config")
        .arg(&config)
        .output()
        .await
        .expect("fmeflow runs");
    assert!(
        out.status.success(),
        "fmeflow login: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = std::fs::read_to_string(&config).expect("config written");
    let token = saved
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .expect("a token in the config")
        .trim()
        .to_owned();
    assert!(saved.contains("build: 25300"), "{saved}");
    assert_eq!(verifier.reason(&token).await, VerifyReason::Ok);
    let _ = std::fs::remove_dir_all(&dir);
    issuer.stop().await;
}

on_both_backends!(
    the_token_service_honours_every_time_unit,
    the_token_service_cuts_to_the_maximum_and_refuses_alike,
    fmeflow_login_v4_version_then_create,
    fmeflow_login_v3_healthcheck_then_create,
    the_renewal_pipeline_extends_in_place_and_the_secret_keeps_working,
    every_refusal_has_fmes_status,
    credentials_come_as_fme_sends_them,
    v4_changes_apply_through_the_same_rules,
    health_and_version_answer_without_credentials,
    the_real_fmeflow_cli_logs_in,
);
