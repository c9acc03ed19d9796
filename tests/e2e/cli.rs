//! The `tessera` command line as a real process against in-process servers:
//! output, JSON shape, exit codes, and the files it writes.

use crate::support::verifier::VerifierHarness;
use crate::support::{ADMIN_PASSWORD, Backend, Harness};
use std::path::{Path, PathBuf};
use std::process::Output;

/// A scratch directory standing in for the user's config directory.
struct Home(PathBuf);

impl Home {
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("tessera-cli-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the CLI binary with `args` against `issuer` (and `verifier`), with
/// `home` as its config directory and no credentials from the environment.
async fn tessera(
    issuer: &Harness,
    verifier: Option<&VerifierHarness>,
    home: &Home,
    args: &[&str],
) -> Output {
    tessera_with_env(issuer, verifier, home, args, &[]).await
}

/// [`tessera`] with these variables in its environment as well.
async fn tessera_with_env(
    issuer: &Harness,
    verifier: Option<&VerifierHarness>,
    home: &Home,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera-e2e-cli"));
    command
        .args(args)
        .env_clear()
        .env("TESSERA_ISSUER", format!("http://{}", issuer.addr))
        .env("TESSERA_CONFIG_DIR", &home.0)
        .envs(env.iter().copied());
    if let Some(verifier) = verifier {
        command.env("TESSERA_VERIFIER", format!("http://{}", verifier.addr));
    }
    command.output().await.expect("the CLI runs")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("an exit code")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("utf-8 stderr")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is JSON ({e}): {}", stdout(out)))
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("file exists")
        .permissions()
        .mode()
        & 0o777
}

const ADMIN: [&str; 4] = ["--user", "admin", "--password", ADMIN_PASSWORD];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_saves_a_private_session_that_later_commands_use() {
    let issuer = Harness::start(Backend::Sqlite).await;
    let verifier = VerifierHarness::beside(&issuer).await;
    let home = Home::new();
    let session_file = home.0.join("session.json");

    let out = tessera(&issuer, None, &home, &[&ADMIN[..], &["login"]].concat()).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("logged in as admin"),
        "{}",
        stdout(&out)
    );
    #[cfg(unix)]
    assert_eq!(mode(&session_file), 0o600, "the session file is owner-only");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&session_file).expect("read")).expect("json");
    let session = saved["token"].as_str().expect("token").to_owned();

    // No credentials given: the saved session is used.
    let secret_file = home.0.join("ci.token");
    let out = tessera(
        &issuer,
        None,
        &home,
        &[
            "token",
            "create",
            "ci",
            "--expires-in",
            "7d",
            "--grant",
            "repositories/Samples:read,run",
            "--save-to",
            secret_file.to_str().expect("path"),
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let created = json(&out);
    assert_eq!(created["token"]["name"], "ci");
    assert_eq!(created["token"]["owner"], "admin");
    assert_eq!(created["token"]["type"], "api");
    assert_eq!(created["token"]["status"], "active");
    assert_eq!(
        created["token"]["permissions"],
        serde_json::json!([{"resource": "repositories/Samples", "actions": ["read", "run"]}])
    );
    assert!(
        created["secret"].is_null(),
        "a saved secret is not also printed"
    );
    assert_eq!(created["saved_to"], secret_file.to_str().expect("path"));
    #[cfg(unix)]
    assert_eq!(mode(&secret_file), 0o600, "the secret file is owner-only");
    let secret = std::fs::read_to_string(&secret_file)
        .expect("read")
        .trim()
        .to_owned();
    assert!(!stdout(&out).contains(&secret));

    let out = tessera(&issuer, None, &home, &["token", "list", "-o", "json"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let names: Vec<String> = json(&out)["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_owned())
        .collect();
    assert!(names.contains(&"ci".to_owned()), "{names:?}");

    let out = tessera(&issuer, None, &home, &["token", "list"]).await;
    let table = stdout(&out);
    assert!(
        table.lines().next().expect("header").starts_with("ID"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.contains(" ci ") && l.contains("in 7 days")),
        "{table}"
    );

    // The verifier agrees, in text and JSON.
    let out = tessera(
        &issuer,
        Some(&verifier),
        &home,
        &[
            "verify",
            &secret,
            "--resource",
            "repositories/Samples",
            "--action",
            "run",
        ],
    )
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).starts_with("valid (OK)"), "{}", stdout(&out));
    let out = tessera(
        &issuer,
        Some(&verifier),
        &home,
        &[
            "verify",
            &secret,
            "--resource",
            "jobs",
            "--action",
            "run",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(code(&out), 1, "an invalid answer is a failed operation");
    assert_eq!(json(&out)["reason"], "PERMISSION_DENIED");
    assert_eq!(json(&out)["valid"], false);

    let out = tessera(&issuer, None, &home, &["key", "list", "--jwks"]).await;
    assert!(
        stdout(&out).contains("\"crv\":\"Ed25519\""),
        "{}",
        stdout(&out)
    );

    let out = tessera(&issuer, None, &home, &["token", "delete", "ci"]).await;
    assert_eq!((code(&out), stdout(&out).trim()), (0, "deleted"));
    assert!(!session.is_empty());
    issuer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_one_line_with_the_right_exit_code() {
    let issuer = Harness::start(Backend::Sqlite).await;
    let home = Home::new();
    let session_file = home.0.join("session.json");

    let out = tessera(
        &issuer,
        None,
        &home,
        &["--user", "admin", "--password", "wrong", "login"],
    )
    .await;
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).is_empty());
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("error: invalid username or password"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("wrong"),
        "the password is not echoed"
    );
    assert!(
        !session_file.exists(),
        "nothing is written on a failed login"
    );

    let out = tessera(&issuer, None, &home, &["token", "list"]).await;
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("not logged in: run `tessera login`"),
        "{}",
        stderr(&out)
    );

    for (args, why) in [
        (
            &["token", "create", "x", "--expires-in", "soon"][..],
            "a malformed duration",
        ),
        (
            &["token", "create", "x", "--grant", "repositories"][..],
            "a malformed grant",
        ),
        (&["token", "frobnicate"][..], "an unknown subcommand"),
        (&["token", "list", "--colour"][..], "an unknown flag"),
        (
            &["login", "--user", "admin"][..],
            "login without a password",
        ),
    ] {
        let out = tessera(&issuer, None, &home, args).await;
        assert_eq!(code(&out), 2, "{why}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty(), "{why}");
    }

    let out = tessera(
        &issuer,
        None,
        &home,
        &["--token", "nonsense", "token", "list"],
    )
    .await;
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("tessera login"),
        "the hint says what to do: {}",
        stderr(&out)
    );

    // An expired saved session is refused locally, with what to do.
    let out = tessera(
        &issuer,
        None,
        &home,
        &[
            &ADMIN[..],
            &["login", "--kind", "token-service", "--expires-in", "1s"],
        ]
        .concat(),
    )
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let out = tessera(&issuer, None, &home, &["token", "list"]).await;
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("session has expired"),
        "{}",
        stderr(&out)
    );

    let addr = issuer.addr;
    issuer.stop().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera-e2e-cli"))
        .args(["--issuer", &format!("http://{addr}"), "key", "list"])
        .env_clear()
        .output()
        .await
        .expect("runs");
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).starts_with(&format!(
            "error: cannot reach http://{addr}: nothing is listening there"
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera-e2e-cli"))
            .args(["completions", shell])
            .output()
            .await
            .expect("runs");
        assert_eq!(code(&out), 0, "{shell}");
        assert!(stdout(&out).contains("tessera"), "{shell}");
        assert!(
            stdout(&out).contains("rotate"),
            "{shell} completes subcommands"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_user_key_and_audit_command_works_end_to_end() {
    let issuer = Harness::start(Backend::Sqlite).await;
    let home = Home::new();
    let run = |args: Vec<&'static str>| {
        let (issuer, home) = (&issuer, &home);
        async move {
            let out = tessera(issuer, None, home, &args).await;
            assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
            json(&out)
        }
    };
    let login = tessera(&issuer, None, &home, &[&ADMIN[..], &["login"]].concat()).await;
    assert_eq!(code(&login), 0, "{}", stderr(&login));

    let created = run(vec![
        "-o",
        "json",
        "token",
        "create",
        "ci",
        "--grant",
        "repositories:read,run",
    ])
    .await;
    let id = created["token"]["id"].as_str().expect("id").to_owned();
    let got = run(vec!["-o", "json", "token", "get", "ci"]).await;
    assert_eq!(got["id"], id.as_str());

    let narrowed = run(vec![
        "-o",
        "json",
        "token",
        "update",
        "ci",
        "--description",
        "narrowed",
        "--grant",
        "repositories:read",
    ])
    .await;
    assert_eq!(narrowed["description"], "narrowed");
    assert_eq!(
        narrowed["permissions"],
        serde_json::json!([{"resource": "repositories", "actions": ["read"]}])
    );

    let disabled = run(vec!["-o", "json", "token", "disable", "ci"]).await;
    assert_eq!(disabled["status"], "disabled");
    let enabled = run(vec!["-o", "json", "token", "enable", "ci"]).await;
    assert_eq!(enabled["status"], "active");

    let copy = run(vec![
        "-o",
        "json",
        "token",
        "duplicate",
        "ci",
        "--as",
        "ci-copy",
    ])
    .await;
    assert_eq!(copy["token"]["name"], "ci-copy");
    assert!(
        copy["secret"]
            .as_str()
            .is_some_and(|s| s.split('.').count() == 3)
    );

    let rotated = run(vec![
        "-o",
        "json",
        "token",
        "rotate",
        "ci",
        "--grant",
        "jobs:read",
        "--overlap",
        "5m",
    ])
    .await;
    assert_eq!(
        rotated["token"]["id"],
        id.as_str(),
        "a rotation keeps the token id"
    );
    assert_ne!(rotated["secret"], created["secret"]);
    assert_eq!(
        rotated["token"]["permissions"],
        serde_json::json!([
            {"resource": "jobs", "actions": ["read"]},
            {"resource": "repositories", "actions": ["read"]}
        ]),
        "--grant adds to the token's grants"
    );
    let replaced = run(vec![
        "-o",
        "json",
        "token",
        "rotate",
        "ci",
        "--replace-grants",
        "--grant",
        "repositories:read,run",
    ])
    .await;
    assert_eq!(
        replaced["token"]["permissions"],
        serde_json::json!([{"resource": "repositories", "actions": ["read", "run"]}]),
        "--replace-grants makes --grant the whole set"
    );

    let user = run(vec![
        "-o",
        "json",
        "user",
        "create",
        "carol",
        "--new-password",
        "carol-password-long",
        "--grant",
        "jobs:read",
    ])
    .await;
    assert_eq!(user["username"], "carol");
    // The new user's password went to the new user, and the admin's
    // credentials (the global --password) still work.
    issuer.login("carol", "carol-password-long").await;
    let users = run(vec!["-o", "json", "user", "list"]).await;
    assert_eq!(users["users"].as_array().map(Vec::len), Some(2));
    let updated = run(vec!["-o", "json", "user", "update", "carol", "--disable"]).await;
    assert_eq!(updated["enabled"], false);
    run(vec![
        "-o",
        "json",
        "user",
        "set-password",
        "carol",
        "--new",
        "another-long-password",
    ])
    .await;
    run(vec!["-o", "json", "user", "delete", "carol"]).await;

    let rotated_key = run(vec!["-o", "json", "key", "rotate", "--immediate"]).await;
    assert_eq!(rotated_key["keys"][0]["state"], "active");
    let keys = run(vec!["-o", "json", "key", "list"]).await;
    assert_eq!(
        keys["keys"].as_array().map(Vec::len),
        Some(2),
        "the old key stays published"
    );

    let audit = run(vec!["-o", "json", "audit", "--limit", "100"]).await;
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "token.create",
        "token.update",
        "token.disable",
        "token.enable",
        "token.duplicate",
        "token.rotate",
        "user.create",
        "user.delete",
    ] {
        assert!(
            actions.contains(&action),
            "{action} is audited: {actions:?}"
        );
    }

    let deleted = run(vec!["-o", "json", "token", "delete", "ci-copy"]).await;
    assert_eq!(deleted["ok"], true);
    let out = tessera(&issuer, None, &home, &["logout"]).await;
    assert_eq!((code(&out), stdout(&out).trim()), (0, "logged out"));
    assert!(
        !home.0.join("session.json").exists(),
        "logout forgets the session"
    );
    let out = tessera(&issuer, None, &home, &["token", "list"]).await;
    assert_eq!(code(&out), 1, "after logout: not logged in");
    issuer.stop().await;
}

/// `--save-to` naming a directory or an existing file is refused before the
/// token is created, so no secret is minted into nowhere or over a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_to_is_checked_before_the_token_is_made() {
    let issuer = Harness::start(Backend::Sqlite).await;
    let home = Home::new();
    let existing = home.0.join("kept.txt");
    std::fs::write(&existing, "keep me").expect("write");
    let dir = home.0.to_string_lossy().into_owned();
    let file = existing.to_string_lossy().into_owned();
    for (target, says) in [
        (dir.as_str(), "is a directory"),
        (file.as_str(), "already exists"),
    ] {
        let out = tessera(
            &issuer,
            None,
            &home,
            &[
                &ADMIN[..],
                &["token", "create", "lost", "--save-to", target],
            ]
            .concat(),
        )
        .await;
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
    assert_eq!(std::fs::read_to_string(&existing).expect("read"), "keep me");
    let listed = tessera(
        &issuer,
        None,
        &home,
        &[&ADMIN[..], &["-o", "json", "token", "list"]].concat(),
    )
    .await;
    assert!(
        !stdout(&listed).contains("\"lost\""),
        "no token was made: {}",
        stdout(&listed)
    );
}

/// `tessera dev` on a port that is taken fails at once, says which flag
/// picks another, and writes nothing (no data directory, no KEK).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_on_a_busy_port_fails_before_writing_anything() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = taken.local_addr().expect("addr").to_string();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string();
    let home = Home::new();
    let data = home.0.join("never-made");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera-e2e-cli"))
            .args(["dev", "--issuer-listen", &busy, "--verifier-listen", &free])
            .arg("--data-dir")
            .arg(&data)
            .env_clear()
            .output(),
    )
    .await
    .expect("fails at once")
    .expect("runs");
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("--issuer-listen"), "{}", stderr(&out));
    assert!(!data.exists(), "nothing was written");
}

/// `--issuer host:port`, the form `--listen` takes, reaches a plaintext
/// issuer as `http://host:port` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_without_a_scheme_is_plaintext_http() {
    let issuer = Harness::start(Backend::Sqlite).await;
    let home = Home::new();
    let bare = issuer.addr.to_string();
    let out = tessera(
        &issuer,
        None,
        &home,
        &[&["--issuer", bare.as_str()], &ADMIN[..], &["token", "list"]].concat(),
    )
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    // The wrong scheme, or no server, is said plainly.
    let https = format!("https://{bare}");
    let out = tessera(
        &issuer,
        None,
        &home,
        &[
            &["--issuer", https.as_str()],
            &ADMIN[..],
            &["token", "list"],
        ]
        .concat(),
    )
    .await;
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("does not speak TLS there: use http://"),
        "{}",
        stderr(&out)
    );
    issuer.stop().await;
}

/// Refusals speak in commands and flags, not RPCs and request fields, and
/// times read as dates, not Unix seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_name_commands_and_flags() {
    let issuer = Harness::start(Backend::Sqlite).await;
    let home = Home::new();
    let run = |args: Vec<&'static str>| {
        let (issuer, home) = (&issuer, &home);
        async move { tessera(issuer, None, home, &[&ADMIN[..], &args].concat()).await }
    };
    let refused = |out: &Output, wanted: &str, api: &str| {
        assert_eq!(code(out), 1, "{}", stderr(out));
        let text = stderr(out);
        assert!(text.contains(wanted), "names {wanted}: {text}");
        assert!(!text.contains(api), "does not name {api}: {text}");
        assert_eq!(text.lines().count(), 1, "{text}");
    };

    let out = run(vec![
        "token",
        "create",
        "dl",
        "--grant",
        "repositories:download",
    ])
    .await;
    refused(&out, "--grant-dependencies", "grant_dependencies");
    let out = run(vec![
        "-o",
        "json",
        "token",
        "create",
        "dl",
        "--grant",
        "repositories:download",
        "--grant-dependencies",
    ])
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        json(&out)["added_dependencies"],
        serde_json::json!([{"resource": "repositories", "actions": ["read"]}]),
        "what --grant-dependencies added is reported"
    );
    // A failure in JSON mode is a JSON document on stdout too.
    let out = run(vec!["-o", "json", "token", "get", "no-such-token"]).await;
    assert_eq!(code(&out), 1);
    assert_eq!(json(&out)["ok"], false);
    assert!(
        json(&out)["error"]
            .as_str()
            .is_some_and(|e| stderr(&out).contains(e)),
        "{}",
        stdout(&out)
    );

    let out = run(vec![
        "user",
        "set-password",
        "admin",
        "--new",
        "a-new-password-1",
    ])
    .await;
    refused(&out, "--current", "current_password");
    assert!(
        !stderr(&out).contains("ask an administrator"),
        "a missing current password is not a missing grant: {}",
        stderr(&out)
    );

    let out = run(vec!["token", "create", "short", "--expires-in", "1d"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // A later expiry of a live token is an extension in place, as in FME…
    let out = run(vec!["token", "update", "short", "--expires-in", "30d"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // …but an expired one takes a new secret, and the hint names the command.
    let out = run(vec!["token", "create", "brief", "--expires-in", "1h"]).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    issuer.clock.advance(chrono::Duration::hours(3));
    let out = run(vec!["token", "update", "brief", "--expires-in", "30d"]).await;
    refused(&out, "`tessera token rotate`", "RotateToken");

    let out = run(vec!["token", "create", "long", "--expires-in", "100000d"]).await;
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let text = stderr(&out);
    let date = regex_lite_date(&text);
    assert!(date, "the latest end reads as a date: {text}");
    assert!(
        !text
            .split(|c: char| !c.is_ascii_digit())
            .any(|n| n.len() >= 10),
        "no raw Unix seconds: {text}"
    );

    // A refused login does not send the user back to `tessera login`.
    let out = tessera(
        &issuer,
        None,
        &home,
        &["--user", "admin", "--password", "not-the-password", "login"],
    )
    .await;
    assert_eq!(code(&out), 1);
    assert!(!stderr(&out).contains("tessera login"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--password"), "{}", stderr(&out));
    issuer.stop().await;
}

/// Whether `text` holds an RFC 3339 UTC time such as `2027-01-05T10:00:00Z`.
fn regex_lite_date(text: &str) -> bool {
    text.as_bytes().windows(20).any(|w| {
        let digits = |r: std::ops::Range<usize>| w[r].iter().all(u8::is_ascii_digit);
        digits(0..4)
            && w[4] == b'-'
            && digits(5..7)
            && w[7] == b'-'
            && digits(8..10)
            && w[10] == b'T'
            && digits(11..13)
            && w[13] == b':'
            && w[19] == b'Z'
    })
}

/// `tessera dev` takes the issuer's settings from the environment, as the
/// production binaries do: the administrator password it is given works,
/// and no random one is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_reads_the_admin_password_from_the_environment() {
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .to_string()
    };
    let (issuer_addr, verifier_addr) = (free(), free());
    let home = Home::new();
    let password = "dev-password-from-env-1";
    let mut dev = tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera-e2e-cli"))
        .args(["dev", "--issuer-listen", &issuer_addr])
        .args(["--verifier-listen", &verifier_addr])
        .arg("--data-dir")
        .arg(home.0.join("data"))
        .env_clear()
        .env("TESSERA_ADMIN_PASSWORD", password)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("dev starts");
    let login = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tessera-e2e-cli"))
            .args(["--issuer", &issuer_addr, "--user", "admin"])
            .args(["--password", password, "login", "--print"])
            .env_clear()
            .env("TESSERA_CONFIG_DIR", &home.0)
            .output()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let out = loop {
        let out = login().await.expect("the CLI runs");
        if code(&out) == 0 || std::time::Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(code(&out), 0, "the given password works: {}", stderr(&out));
    dev.start_kill().expect("stop dev");
    let mut banner = String::new();
    if let Some(mut err) = dev.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            err.read_to_string(&mut banner),
        )
        .await;
    }
    let _ = dev.wait().await;
    assert!(
        !banner.contains("with password:"),
        "no generated password is printed: {banner}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_reads_and_renews_itself_and_owners_find_stale_tokens() {
    use crate::support::{grant, verifier::verifier_config};
    use tonic_health::pb::health_check_response::ServingStatus;
    let issuer = Harness::start(Backend::Sqlite).await;
    let mut config = verifier_config(issuer.db());
    config.usage_flush_interval = std::time::Duration::from_millis(100);
    let verifier = VerifierHarness::spawn(config, issuer.clock.clone()).await;
    verifier.wait_for_health(ServingStatus::Serving).await;
    let home = Home::new();
    let made = issuer
        .create_token(tessera_proto::v1::CreateTokenRequest {
            name: "job".into(),
            permissions: vec![grant("jobs", &["read"])],
            ..Default::default()
        })
        .await
        .expect("create");
    let id = made.token.expect("metadata").id;
    assert!(verifier.verify(&made.secret, "", "").await.valid);

    let started = tokio::time::Instant::now();
    let got = loop {
        let out = tessera(
            &issuer,
            None,
            &home,
            &[
                "--token",
                &made.secret,
                "-o",
                "json",
                "token",
                "get",
                "--self",
            ],
        )
        .await;
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let got = json(&out);
        if got["use_count"] == 1 || started.elapsed() > std::time::Duration::from_secs(10) {
            break got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(got["id"], id.as_str());
    assert_eq!(got["use_count"], 1, "{got}");
    assert_eq!(got["last_caller_address"], "127.0.0.1");
    assert!(got["last_used_time"].is_string(), "{got}");
    let text = tessera(
        &issuer,
        None,
        &home,
        &["--token", &made.secret, "token", "get", "--self"],
    )
    .await;
    assert!(
        stdout(&text).contains("from 127.0.0.1, 1 use"),
        "{}",
        stdout(&text)
    );

    let rotated = tessera(
        &issuer,
        None,
        &home,
        &[
            "--token",
            &made.secret,
            "-o",
            "json",
            "token",
            "rotate",
            "--self",
            "--overlap",
            "1m",
        ],
    )
    .await;
    assert_eq!(code(&rotated), 0, "{}", stderr(&rotated));
    let rotated = json(&rotated);
    assert_eq!(rotated["token"]["id"], id.as_str());
    assert_ne!(rotated["secret"], made.secret.as_str());

    let list = |filter: &'static [&'static str]| {
        let (issuer, home) = (&issuer, &home);
        async move {
            let args = [&ADMIN[..], &["-o", "json", "token", "list"], filter].concat();
            let out = tessera(issuer, None, home, &args).await;
            assert_eq!(code(&out), 0, "{}", stderr(&out));
            json(&out)["tokens"]
                .as_array()
                .expect("tokens")
                .iter()
                .filter(|t| t["type"] == "api")
                .map(|t| t["name"].as_str().expect("name").to_owned())
                .collect::<Vec<_>>()
        }
    };
    // A week-long token made and renewed just now is not "expiring", even
    // within 30 days: its expiry was chosen a moment ago (see
    // `expiring_lists_active_api_tokens_nobody_just_renewed` for one that
    // is). It was used just now, so it is not unused for a day.
    assert!(list(&["--expiring-within", "30d"]).await.is_empty());
    assert!(list(&["--expiring-within", "1d"]).await.is_empty());
    assert!(list(&["--unused-for", "1d"]).await.is_empty());

    // `--self` with a password names nothing.
    let refused = tessera(
        &issuer,
        None,
        &home,
        &[&ADMIN[..], &["token", "get", "--self"]].concat(),
    )
    .await;
    assert_ne!(code(&refused), 0);
    assert!(stderr(&refused).contains("self"), "{}", stderr(&refused));
}

/// `user create --new-password` once shared clap's id with the global
/// `--password`, so the new user's password replaced the caller's: the
/// administrator was refused ("invalid username or password") and charged
/// a failed sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_a_user_signs_in_with_the_callers_password_not_the_new_one() {
    let db = crate::support::TestDb::new(Backend::Sqlite).await;
    let mut config = crate::support::issuer_config(&db);
    let metrics = crate::operations::free_addr();
    config.metrics_listen = Some(metrics);
    let issuer = Harness::start_with(db, config).await;
    let home = Home::new();

    let out = tessera(
        &issuer,
        None,
        &home,
        &[
            "--user",
            "admin",
            "--password",
            ADMIN_PASSWORD,
            "-o",
            "json",
            "user",
            "create",
            "bob",
            "--new-password",
            "bobs-password-1",
        ],
    )
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json(&out)["username"], "bob");
    // The same from the environment: TESSERA_PASSWORD is the caller's,
    // TESSERA_NEW_PASSWORD the new user's.
    let out = tessera_with_env(
        &issuer,
        None,
        &home,
        &["--user", "admin", "-o", "json", "user", "create", "carol"],
        &[
            ("TESSERA_PASSWORD", ADMIN_PASSWORD),
            ("TESSERA_NEW_PASSWORD", "carols-password-1"),
        ],
    )
    .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(json(&out)["username"], "carol");

    // Each new user signs in with the password given for them.
    for (user, password) in [("bob", "bobs-password-1"), ("carol", "carols-password-1")] {
        let out = tessera(
            &issuer,
            None,
            &home,
            &["--user", user, "--password", password, "token", "list"],
        )
        .await;
        assert_eq!(code(&out), 0, "{user}: {}", stderr(&out));
    }
    let text = crate::operations::scrape(metrics).await;
    let failures = text
        .lines()
        .find_map(|line| line.strip_prefix("tessera_issuer_login_failures_total "));
    assert_eq!(failures, Some("0"), "no sign-in failed: {text}");
}

/// `token list --expiring-within` lists active API tokens whose expiry
/// falls in the window, leaving out the caller's own session, disabled
/// tokens, and tokens made in the last day (a token made with the default
/// 7 days is not "expiring within 7 days" the moment it is made).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_lists_active_api_tokens_nobody_just_renewed() {
    use crate::support::grant;
    use tessera_proto::v1;
    let issuer = Harness::start(Backend::Sqlite).await;
    let home = Home::new();
    let make = |name: &'static str, enabled: bool| {
        let issuer = &issuer;
        async move {
            issuer
                .create_token(v1::CreateTokenRequest {
                    name: name.into(),
                    permissions: vec![grant("jobs", &["read"])],
                    enabled: Some(enabled),
                    ..Default::default()
                })
                .await
                .expect("create");
        }
    };
    make("old", true).await;
    make("old-off", false).await;
    // The issuer lives a day ahead of the CLI's clock from here on; the
    // window below is wide enough to hold every token's expiry whichever
    // clock it is read by.
    issuer.clock.advance(chrono::Duration::hours(25));
    make("fresh", true).await;
    // The caller's own one-hour session, saved and used by the listings.
    let login = tessera(&issuer, None, &home, &[&ADMIN[..], &["login"]].concat()).await;
    assert_eq!(code(&login), 0, "{}", stderr(&login));

    let list = |filter: &'static [&'static str]| {
        let (issuer, home) = (&issuer, &home);
        async move {
            let args = [&["-o", "json", "token", "list"], filter].concat();
            let out = tessera(issuer, None, home, &args).await;
            assert_eq!(code(&out), 0, "{}", stderr(&out));
            let mut names = json(&out)["tokens"]
                .as_array()
                .expect("tokens")
                .iter()
                .map(|t| match t["type"].as_str() {
                    Some("api") => t["name"].as_str().expect("name").to_owned(),
                    other => format!("({})", other.unwrap_or("?")),
                })
                .collect::<Vec<_>>();
            names.sort();
            names
        }
    };
    assert_eq!(list(&["--expiring-within", "9d"]).await, ["old"]);
    // --type and --status say otherwise when asked.
    assert_eq!(
        list(&["--expiring-within", "9d", "--status", "disabled"]).await,
        ["old-off"]
    );
    assert_eq!(
        list(&["--expiring-within", "9d", "--type", "session"]).await,
        ["(session)"]
    );
    // Without a filter the session and "fresh" are there.
    assert_eq!(list(&[]).await, ["(session)", "fresh", "old", "old-off"]);

    let contradiction = tessera(
        &issuer,
        None,
        &home,
        &[
            "token",
            "list",
            "--expiring-within",
            "7d",
            "--status",
            "expired",
        ],
    )
    .await;
    assert_eq!(code(&contradiction), 2, "{}", stderr(&contradiction));
    assert!(
        stderr(&contradiction).contains("--status expired"),
        "{}",
        stderr(&contradiction)
    );
}
