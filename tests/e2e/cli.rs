//! The `tessera` command line against a real issuer: the README's tour.

use crate::support::{ADMIN_PASSWORD, Backend, Harness};

/// Runs the CLI with `args` against `issuer`; returns (exit code, stdout, stderr).
async fn tessera(issuer: &Harness, args: &[&str]) -> (u8, String, String) {
    let endpoint = format!("http://{}", issuer.addr);
    let mut argv = vec!["tessera", "--issuer", endpoint.as_str()];
    argv.extend_from_slice(args);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = tessera_cli::run(argv, &mut out, &mut err).await;
    (
        code,
        String::from_utf8(out).expect("utf-8 stdout"),
        String::from_utf8(err).expect("utf-8 stderr"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tour_logs_in_and_creates_a_token() {
    let issuer = Harness::start(Backend::Sqlite).await;
    let (code, session, err) = tessera(
        &issuer,
        &["--user", "admin", "--password", ADMIN_PASSWORD, "login"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let session = session.trim().to_owned();
    assert_eq!(
        session.split('.').count(),
        3,
        "login prints the token: {session}"
    );

    let (code, out, err) = tessera(
        &issuer,
        &[
            "--token",
            &session,
            "token",
            "create",
            "--name",
            "ci",
            "--expires-in",
            "7d",
            "--grant",
            "repositories/Samples:read,run",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("name:        ci"), "{out}");
    assert!(
        out.contains("permissions: repositories/Samples:read,run"),
        "{out}"
    );
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .expect("the secret is printed");
    assert_eq!(secret.split('.').count(), 3);

    let (code, out, _) = tessera(&issuer, &["--token", secret, "token", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.contains(" ci ") && l.contains("active")),
        "{out}"
    );

    let (code, out, _) = tessera(&issuer, &["key", "list", "--jwks"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("\"crv\":\"Ed25519\""), "{out}");

    let (code, out, _) = tessera(
        &issuer,
        &["--token", &session, "token", "delete", "--name", "ci"],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "deleted");
    issuer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_one_line_with_the_right_exit_code() {
    let issuer = Harness::start(Backend::Sqlite).await;
    let (code, out, err) = tessera(
        &issuer,
        &["--user", "admin", "--password", "wrong", "login"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: invalid username or password"),
        "{err}"
    );
    assert!(!err.contains("wrong"), "the password is not echoed: {err}");

    let (code, _, err) = tessera(&issuer, &["token", "list"]).await;
    assert_eq!(code, 2, "no credentials is a usage error: {err}");

    let (code, _, _) = tessera(
        &issuer,
        &["token", "create", "--name", "x", "--expires-in", "soon"],
    )
    .await;
    assert_eq!(code, 2, "a malformed duration is a usage error");
    let (code, _, _) = tessera(&issuer, &["token", "frobnicate"]).await;
    assert_eq!(code, 2);

    let (code, _, err) = tessera(&issuer, &["--token", "nonsense", "token", "list"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("tessera login"),
        "the hint says what to do: {err}"
    );
    issuer.stop().await;

    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = tessera_cli::run(
        ["tessera", "--issuer", "http://127.0.0.1:1", "key", "list"],
        &mut out,
        &mut err,
    )
    .await;
    assert_eq!(code, 1);
    let err = String::from_utf8(err).expect("utf-8");
    assert!(
        err.starts_with("error: cannot reach http://127.0.0.1:1"),
        "{err}"
    );
}
