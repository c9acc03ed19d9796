//! Gateway speed, in the same harness as the Verify table: h2load in its
//! own process drives the shipped verifier binary over each front.
//!
//! 1. Envoy's ext_authz `Check` (a request shaped as Envoy sends it, with
//!    per-route context extensions) against `Verify` asking the same
//!    question of the same token, both over gRPC: goal ≥ 0.9. A Verify
//!    padded to the CheckRequest's length shows how much of a gap is the
//!    bytes on the wire rather than the work.
//! 2. Forward auth over HTTP/1.1 keep-alive against a bare axum server
//!    (the same HTTP stack) answering 200: goal ≥ 0.8.
//!
//! Targets are driven in interleaved rounds; the table shows medians.

use crate::external::{
    Server, Shape, free_addr, grpc_body, h2load_command, h2load_grpc, helper, median, pinning,
    rate, verifier_with, wait_answering,
};
use crate::fixture::Fixture;
use anyhow::{Result, ensure};
use std::collections::HashMap;
use std::net::SocketAddr;
use tessera_proto::envoy::service::auth::v3 as authz;
use tessera_proto::v1::VerifyRequest;

const RESOURCE: &str = "repositories/Samples";
const ACTION: &str = "read";

/// A `CheckRequest` like Envoy's for a browser-ish GET.
fn envoy_check(token: &str) -> authz::CheckRequest {
    let headers: HashMap<String, String> = [
        (":authority", "api.example.com"),
        (":method", "GET"),
        (":path", "/repositories/Samples/items?page=2"),
        (":scheme", "https"),
        ("accept", "application/json"),
        ("user-agent", "curl/8.5.0"),
        ("x-forwarded-proto", "https"),
        ("x-request-id", "0b7e7a44-1d3c-4c2e-9d5e-5a3f0c3e2b1a"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([("authorization".to_owned(), format!("Bearer {token}"))])
    .collect();
    authz::CheckRequest {
        attributes: Some(authz::AttributeContext {
            request: Some(authz::attribute_context::Request {
                time: None,
                http: Some(authz::attribute_context::HttpRequest {
                    id: "4224573734212797185".into(),
                    method: "GET".into(),
                    path: "/repositories/Samples/items?page=2".into(),
                    host: "api.example.com".into(),
                    scheme: "https".into(),
                    protocol: "HTTP/1.1".into(),
                    headers,
                    ..Default::default()
                }),
            }),
            context_extensions: [("resource", RESOURCE), ("action", ACTION)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..Default::default()
        }),
    }
}

async fn check_answers(addr: SocketAddr, request: &authz::CheckRequest) -> Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let answer = authz::authorization_client::AuthorizationClient::new(channel)
        .check(request.clone())
        .await?;
    let code = answer.into_inner().status.map_or(-1, |s| s.code);
    ensure!(
        code == 0,
        "the benchmark Check should be allowed, got code {code}"
    );
    Ok(())
}

/// A Verify body as long as `check`'s: `verify` plus an unknown field
/// (number 100) that prost skips without allocating.
fn padded(
    verify: &VerifyRequest,
    check: &authz::CheckRequest,
    path: &std::path::Path,
) -> Result<std::path::PathBuf> {
    use prost::Message;
    let mut bytes = verify.encode_to_vec();
    let want = check.encoded_len().saturating_sub(bytes.len() + 4);
    // Tag (100 << 3) | 2 as a varint, then the length as a varint.
    bytes.extend_from_slice(&[0xa2, 0x06]);
    prost::encoding::encode_varint(want as u64, &mut bytes);
    bytes.resize(bytes.len() + want, b'x');
    let mut body = vec![0u8];
    body.extend_from_slice(&u32::try_from(bytes.len())?.to_be_bytes());
    body.extend_from_slice(&bytes);
    std::fs::write(path, body)?;
    Ok(path.to_owned())
}

/// h2load over HTTP/1.1: `clients` keep-alive connections, one request in
/// flight on each.
fn h1(addr: SocketAddr, headers: &[String], clients: usize) -> std::process::Command {
    let mut command = h2load_command();
    command.arg("--h1").arg(format!("-c{clients}")).arg("-m1");
    for header in headers {
        command.arg("-H").arg(header);
    }
    command.arg(format!("http://{addr}/auth"));
    command
}

fn answered_200(addr: SocketAddr, headers: &[String]) -> Result<()> {
    let out = h1(addr, headers, 1).arg("-n1").output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        text.contains("status codes: 1 2xx"),
        "{addr} should answer 200:\n{text}"
    );
    Ok(())
}

/// Builds one run's h2load command.
type Run<'a> = Box<dyn Fn() -> std::process::Command + 'a>;

/// The gateway table.
pub async fn run(shape: Shape, h1_clients: usize) -> Result<()> {
    let fixture = Fixture::sqlite().await?;
    let token = fixture.mint()?;
    let dir = std::env::temp_dir().join(format!("tessera-gateways-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let verify = VerifyRequest {
        token: token.clone(),
        resource: RESOURCE.into(),
        action: ACTION.into(),
        ..Default::default()
    };
    let check = envoy_check(&token);
    let verify_body = grpc_body(&verify, &dir.join("verify.bin"))?;
    let check_body = grpc_body(&check, &dir.join("check.bin"))?;
    let padded_body = padded(&verify, &check, &dir.join("verify-padded.bin"))?;

    let forward = free_addr()?;
    let verifier: Server = verifier_with(
        &fixture,
        shape.verifier,
        100_000,
        "tessera-verifier",
        &[("TESSERA_FORWARD_AUTH_LISTEN", forward.to_string())],
    )
    .await?;
    let reply = wait_answering(verifier.addr, &verify).await?;
    ensure!(
        reply.valid,
        "the benchmark token should verify: {}",
        reply.message
    );
    check_answers(verifier.addr, &check).await?;
    let bare = helper(&["http-ok"], "bare axum HTTP/1.1 server answering 200").await?;
    let headers = vec![
        format!("authorization: Bearer {token}"),
        "x-forwarded-method: GET".to_owned(),
        "x-forwarded-uri: /repositories/Samples/items?page=2".to_owned(),
        format!("x-tessera-resource: {RESOURCE}"),
        format!("x-tessera-action: {ACTION}"),
    ];
    let started = std::time::Instant::now();
    while answered_200(bare.addr, &headers).is_err() || answered_200(forward, &headers).is_err() {
        ensure!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the HTTP servers did not answer 200"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    println!(
        "\n## Gateways, driven by h2load in its own process ({}; {} s per run, {} interleaved rounds)",
        pinning(),
        shape.seconds,
        shape.rounds
    );
    let runs: [(&str, Run); 5] = [
        (
            "Verify (gRPC, same question)",
            Box::new(|| {
                h2load_grpc(
                    verifier.addr,
                    "/tessera.v1.VerifierService/Verify",
                    &verify_body,
                    shape,
                )
            }),
        ),
        (
            "Verify padded to the CheckRequest's size (unknown field)",
            Box::new(|| {
                h2load_grpc(
                    verifier.addr,
                    "/tessera.v1.VerifierService/Verify",
                    &padded_body,
                    shape,
                )
            }),
        ),
        (
            "ext_authz Check (gRPC, Envoy-shaped)",
            Box::new(|| {
                h2load_grpc(
                    verifier.addr,
                    "/envoy.service.auth.v3.Authorization/Check",
                    &check_body,
                    shape,
                )
            }),
        ),
        (
            "forward auth /auth (HTTP/1.1 keep-alive)",
            Box::new(|| h1(forward, &headers, h1_clients)),
        ),
        (
            "bare axum 200 (HTTP/1.1 keep-alive)",
            Box::new(|| h1(bare.addr, &headers, h1_clients)),
        ),
    ];
    let mut samples = vec![Vec::new(); runs.len()];
    for _ in 0..shape.rounds {
        for ((_, command), out) in runs.iter().zip(&mut samples) {
            out.push(rate(command(), shape.seconds)?);
        }
    }
    let rps: Vec<f64> = samples.into_iter().map(median).collect();
    println!("| target | rps (median) |\n|---|---|");
    for ((name, _), r) in runs.iter().zip(&rps) {
        println!("| {name} | {r:.0} |");
    }
    println!(
        "\n1. ext_authz Check / Verify: {:.0} / {:.0} = {:.2} (goal >= 0.9)",
        rps[2],
        rps[0],
        rps[2] / rps[0]
    );
    println!(
        "   Verify with the CheckRequest's size / Verify: {:.2} (how much of the gap is the bytes)",
        rps[1] / rps[0]
    );
    println!(
        "2. forward auth / bare HTTP server: {:.0} / {:.0} = {:.2} (goal >= 0.8)",
        rps[3],
        rps[4],
        rps[3] / rps[4]
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
