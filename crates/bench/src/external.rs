//! Verify speed measured from outside: `h2load` in its own process drives
//! each server, each server runs in a process of its own, and the two are
//! pinned to different cores (where `taskset` and two cores allow). The
//! servers are the shipped `tessera-verifier` binary (signature cache on,
//! and off for cold checks), a bare tonic echo of the same RPC (the load
//! generator's and stack's ceiling), and the stateful comparator: the same
//! tonic stack doing one PostgreSQL primary-key lookup per request through
//! a pool of 8. Targets are driven in interleaved rounds; the table shows
//! medians.

use crate::fixture::Fixture;
use anyhow::{Context, Result, bail, ensure};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tessera_core::jwt;
use tessera_core::keys::VerifyingKey;
use tessera_proto::v1::{self, VerifyRequest};
use tokio::process::{Child, Command};

/// How the load is shaped.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// The verifier binary; `tessera-verifier` beside this one when unset.
    pub verifier: Option<&'static Path>,
    pub seconds: u64,
    pub rounds: usize,
    pub clients: usize,
    pub streams: usize,
}

const PATH: &str = "/tessera.v1.VerifierService/Verify";

pub(crate) fn free_addr() -> Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

pub(crate) fn two_cores() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
        && std::process::Command::new("taskset")
            .arg("-V")
            .output()
            .is_ok()
}

/// How the processes are placed, for a table's heading.
pub(crate) fn pinning() -> &'static str {
    if two_cores() {
        "servers pinned to core 0, h2load to core 1"
    } else {
        "no pinning: fewer than two cores or no taskset"
    }
}

/// A command, on `core` when pinning is possible.
fn pinned(core: u32, program: &Path) -> Command {
    if two_cores() {
        let mut command = Command::new("taskset");
        command.arg("-c").arg(core.to_string()).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// A server process; killed when dropped.
pub(crate) struct Server {
    pub name: &'static str,
    pub addr: SocketAddr,
    _child: Child,
}

pub(crate) async fn wait_answering(
    addr: SocketAddr,
    request: &VerifyRequest,
) -> Result<v1::VerifyResponse> {
    let started = Instant::now();
    loop {
        let attempt = async {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
                .connect()
                .await?;
            let reply = v1::verifier_service_client::VerifierServiceClient::new(channel)
                .verify(request.clone())
                .await?
                .into_inner();
            anyhow::Ok(reply)
        };
        match attempt.await {
            Ok(reply) if reply.reason != v1::VerifyReason::Stale as i32 => return Ok(reply),
            _ if started.elapsed() > Duration::from_secs(60) => {
                bail!("{addr} did not answer within 60 s")
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    ensure!(
        path.exists(),
        "{} is missing: build it first (cargo build --release -p tessera-verifier -p tessera-bench)",
        path.display()
    );
    Ok(path)
}

async fn verifier(
    fixture: &Fixture,
    binary: Option<&Path>,
    cache: usize,
    name: &'static str,
) -> Result<Server> {
    verifier_with(fixture, binary, cache, name, &[]).await
}

/// The verifier binary with `env` on top of the benchmark's settings.
pub(crate) async fn verifier_with(
    fixture: &Fixture,
    binary: Option<&Path>,
    cache: usize,
    name: &'static str,
    env: &[(&str, String)],
) -> Result<Server> {
    let addr = free_addr()?;
    let binary = match binary {
        Some(path) => path.to_owned(),
        None => sibling("tessera-verifier")?,
    };
    let child = pinned(0, &binary)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("DATABASE_URL", &fixture.url)
        .env("TESSERA_VERIFIER_LISTEN", addr.to_string())
        .env("TESSERA_SIGNATURE_CACHE_SIZE", cache.to_string())
        .env("TESSERA_SHUTDOWN_DELAY", "0s")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("start tessera-verifier")?;
    Ok(Server {
        name,
        addr,
        _child: child,
    })
}

pub(crate) async fn helper(args: &[&str], name: &'static str) -> Result<Server> {
    let addr = free_addr()?;
    let child = pinned(0, &std::env::current_exe()?)
        .arg("serve")
        .args(args)
        .arg("--listen")
        .arg(addr.to_string())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("start a helper server")?;
    Ok(Server {
        name,
        addr,
        _child: child,
    })
}

/// The bare tonic echo answering `reply` to `request`'s RPC, once it
/// answers: the load generator's and stack's ceiling in every table.
pub(crate) async fn echo(request: &VerifyRequest, reply: &v1::VerifyResponse) -> Result<Server> {
    let reply_b64 = {
        use base64::Engine;
        use prost::Message;
        base64::engine::general_purpose::STANDARD.encode(reply.encode_to_vec())
    };
    let echo = helper(
        &["echo", "--reply", &reply_b64],
        "bare tonic echo (same request, same reply)",
    )
    .await?;
    wait_answering(echo.addr, request).await?;
    Ok(echo)
}

/// One gRPC request as h2load sends it: the 5-byte length prefix, then the
/// message.
fn body_file(request: &VerifyRequest, dir: &Path) -> Result<PathBuf> {
    grpc_body(request, &dir.join("verify-request.bin"))
}

/// Writes `message` as one length-prefixed gRPC request body to `path`.
pub(crate) fn grpc_body(message: &impl prost::Message, path: &Path) -> Result<PathBuf> {
    let message = message.encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&u32::try_from(message.len())?.to_be_bytes());
    body.extend_from_slice(&message);
    std::fs::write(path, body)?;
    Ok(path.to_owned())
}

/// h2load, on core 1 when pinning is possible.
pub(crate) fn h2load_command() -> std::process::Command {
    let program = if two_cores() { "taskset" } else { "h2load" };
    let mut command = std::process::Command::new(program);
    if two_cores() {
        command.args(["-c", "1", "h2load"]);
    }
    command
}

fn h2load(addr: SocketAddr, body: &Path, shape: Shape) -> std::process::Command {
    h2load_grpc(addr, PATH, body, shape)
}

/// h2load sending `body` to the gRPC method at `path`.
pub(crate) fn h2load_grpc(
    addr: SocketAddr,
    path: &str,
    body: &Path,
    shape: Shape,
) -> std::process::Command {
    let mut command = h2load_command();
    command
        .arg(format!("-c{}", shape.clients))
        .arg(format!("-m{}", shape.streams))
        .arg("-H")
        .arg("content-type: application/grpc")
        .arg("-H")
        .arg("te: trailers")
        .arg("-d")
        .arg(body)
        .arg(format!("http://{addr}{path}"));
    command
}

/// Requests per second for `seconds` after a second of warm-up.
fn throughput(addr: SocketAddr, body: &Path, shape: Shape) -> Result<f64> {
    rate(h2load(addr, body, shape), shape.seconds)
}

/// Runs `command` (an h2load) for `seconds` after a second of warm-up and
/// reads its rate; any failed request fails the figure.
pub(crate) fn rate(mut command: std::process::Command, seconds: u64) -> Result<f64> {
    let out = command
        .arg(format!("--duration={seconds}"))
        .arg("--warm-up-time=1")
        .output()
        .context("run h2load (Debian: apt-get install nghttp2-client)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "h2load failed: {text}");
    let failed = text
        .lines()
        .find_map(|l| l.strip_prefix("requests: "))
        .and_then(|l| l.split(", ").find_map(|p| p.strip_suffix(" failed")))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    ensure!(
        failed == 0,
        "h2load counted {failed} failed requests:\n{text}"
    );
    text.lines()
        .find_map(|l| l.strip_prefix("finished in "))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|rps| rps.strip_suffix(" req/s"))
        .and_then(|rps| rps.trim().parse().ok())
        .with_context(|| format!("no rate in h2load's output:\n{text}"))
}

/// p50, p99 and p99.9 in microseconds at `rps` offered (spread over the
/// clients), from h2load's per-request log.
fn latency(addr: SocketAddr, body: &Path, shape: Shape, rps: f64, dir: &Path) -> Result<[u64; 3]> {
    let log = dir.join(format!("latency-{}.tsv", addr.port()));
    let per_client = (rps / shape.clients as f64).max(1.0).round() as u64;
    let out = h2load(addr, body, shape)
        .arg(format!("--rps={per_client}"))
        .arg(format!("--duration={}", shape.seconds))
        .arg("--warm-up-time=1")
        .arg(format!("--log-file={}", log.display()))
        .output()
        .context("run h2load")?;
    ensure!(out.status.success(), "h2load failed");
    let text = std::fs::read_to_string(&log)?;
    let mut micros: Vec<u64> = text
        .lines()
        .filter_map(|l| l.split('\t').nth(2))
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    ensure!(!micros.is_empty(), "h2load logged no requests");
    micros.sort_unstable();
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q).round() as usize];
    Ok([at(0.50), at(0.99), at(0.999)])
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The whole table.
pub async fn run(shape: Shape, postgres: Option<&str>, compare: Option<&Path>) -> Result<()> {
    ensure!(
        std::process::Command::new("h2load")
            .arg("--version")
            .output()
            .is_ok(),
        "h2load is not installed (Debian: apt-get install nghttp2-client)"
    );
    let fixture = Fixture::sqlite().await?;
    let token = fixture.mint()?;
    let request = VerifyRequest {
        token: token.clone(),
        ..Default::default()
    };
    let dir = std::env::temp_dir().join(format!("tessera-h2load-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let body = body_file(&request, &dir)?;

    let cached = verifier(
        &fixture,
        shape.verifier,
        100_000,
        "tessera-verifier, one repeated token",
    )
    .await?;
    let reply = wait_answering(cached.addr, &request).await?;
    ensure!(
        reply.valid,
        "the benchmark token should verify: {}",
        reply.message
    );
    let cold = verifier(
        &fixture,
        shape.verifier,
        0,
        "tessera-verifier, signature cache off (cold EdDSA)",
    )
    .await?;
    wait_answering(cold.addr, &request).await?;
    let echo = echo(&request, &reply).await?;
    let mut servers = vec![echo, cached, cold];
    let pg_fixture = match postgres {
        Some(url) => {
            let pg = Fixture::postgres(url).await?;
            let id = pg.token_row().await?;
            let mut args = vec!["lookup", "--database-url", url, "--token-id", &id];
            if let Some(schema) = pg.schema.as_deref() {
                args.extend(["--db-schema", schema]);
            }
            let server =
                helper(&args, "stateful: tonic + one PostgreSQL lookup (pool of 8)").await?;
            wait_answering(server.addr, &request).await?;
            servers.push(server);
            Some(pg)
        }
        None => {
            println!("(no TESSERA_TEST_POSTGRES_URL: the stateful comparator is left out)");
            None
        }
    };
    let compared = servers.len();
    if let Some(binary) = compare {
        let other = verifier(
            &fixture,
            Some(binary),
            0,
            "the --compare build, signature cache off (cold EdDSA)",
        )
        .await?;
        wait_answering(other.addr, &request).await?;
        servers.push(other);
    }

    println!(
        "\n## Verify over gRPC, driven by h2load in its own process ({} clients x {} streams; {} s per run, {} interleaved rounds; {})",
        shape.clients,
        shape.streams,
        shape.seconds,
        shape.rounds,
        pinning()
    );
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    for _ in 0..shape.rounds {
        for (server, out) in servers.iter().zip(&mut samples) {
            out.push(throughput(server.addr, &body, shape)?);
        }
    }
    let rps: Vec<f64> = samples.into_iter().map(median).collect();
    println!("| server | rps (median) |\n|---|---|");
    for (server, rate) in servers.iter().zip(&rps) {
        println!("| {} | {rate:.0} |", server.name);
    }

    // t_verify: one cold EdDSA check, measured here, in the same run.
    let keys = fixture
        .store
        .published_keys(chrono::Utc::now().timestamp())
        .await?;
    let key = VerifyingKey::from_public(&keys[0].kid, &keys[0].public_key)?;
    let sample = 2_000;
    let started = Instant::now();
    for _ in 0..sample {
        jwt::check(&token, |_| Some(&key)).map_err(|r| anyhow::anyhow!(r.message))?;
    }
    let t_verify = started.elapsed().as_secs_f64() / f64::from(sample);
    // What one signature costs in a full batch, for comparison: the cold
    // server checks concurrent requests' signatures together.
    let unchecked =
        jwt::Unchecked::read(&token, |_| Some(&key)).map_err(|r| anyhow::anyhow!(r.message))?;
    let batch: Vec<&jwt::Unchecked> = std::iter::repeat_n(&unchecked, 64).collect();
    let rounds = 50;
    let started = Instant::now();
    for _ in 0..rounds {
        anyhow::ensure!(
            jwt::verify_together(&batch),
            "a batch of good signatures failed"
        );
    }
    let t_batched = started.elapsed().as_secs_f64() / f64::from(rounds * 64);
    println!(
        "\nt_verify (one cold check alone, in-process): {:.1} us; one signature in a batch of 64: {:.1} us",
        t_verify * 1e6,
        t_batched * 1e6
    );
    let (echo_rps, cached_rps, cold_rps) = (rps[0], rps[1], rps[2]);
    let predicted = 1.0 / (1.0 / echo_rps + t_verify);
    println!(
        "\n1. Verify (one repeated token) / echo: {:.2} (goal >= 0.8)",
        cached_rps / echo_rps
    );
    println!(
        "2. cold Verify / prediction 1/(1/echo + t_verify), t_verify {:.1} us: {:.0} / {:.0} = {:.2} (goal >= 0.9)",
        t_verify * 1e6,
        cold_rps,
        predicted,
        cold_rps / predicted
    );
    if let Some(other) = rps.get(compared).filter(|_| compare.is_some()) {
        println!(
            "   the --compare build, cold: {other:.0} = {:.2} of the prediction; this build / it: {:.2}",
            other / predicted,
            cold_rps / other
        );
    }
    if let Some(stateful) = rps.get(3).filter(|_| compared > 3) {
        println!(
            "4. Verify / stateful comparator: {:.1} (goal >= 3)",
            cached_rps / stateful
        );
    }

    println!(
        "\n| at half of each one's maximum | offered rps | p50 | p99 | p99.9 |\n|---|---|---|---|---|"
    );
    let mut p99 = Vec::new();
    for (server, rate) in servers.iter().zip(&rps).take(2) {
        let [p50, p99_, p999] = latency(server.addr, &body, shape, rate / 2.0, &dir)?;
        println!(
            "| {} | {:.0} | {p50} us | {p99_} us | {p999} us |",
            server.name,
            rate / 2.0
        );
        p99.push(p99_);
    }
    println!(
        "3. p99 at half load, Verify / echo: {:.2} (goal <= 1.5)",
        p99[1] as f64 / p99[0] as f64
    );
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(pg) = pg_fixture {
        pg.remove().await?;
    }
    fixture.remove().await
}
