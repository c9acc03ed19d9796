//! Last-used tracking's cost, in the external harness and on the store.
//!
//! 1. Verify rps with tracking on (flushing every second, so flushes fall
//!    inside the runs) ÷ off, one repeated token, h2load in its own
//!    process, interleaved rounds, with the echo server's ceiling in the
//!    same table: goal ≥ 0.97.
//! 2. One flush of 1,000,000 distinct tokens counted in an interval: the
//!    statements it runs (one per chunk of `CHUNK` tokens) and how long it
//!    takes, on SQLite and, with `TESSERA_TEST_POSTGRES_URL`, PostgreSQL;
//!    and what counting them cost per use.

use crate::external::{
    Shape, echo, grpc_body, h2load_grpc, median, pinning, rate, verifier_with, wait_answering,
};
use crate::fixture::Fixture;
use anyhow::{Result, ensure};
use std::time::Instant;
use tessera_proto::v1::VerifyRequest;
use tessera_store::usage::CHUNK;
use tessera_verifier::usage::Usage;

const PATH: &str = "/tessera.v1.VerifierService/Verify";

pub async fn run(shape: Shape, postgres: Option<&str>, tokens: u64, wire: bool) -> Result<()> {
    if wire {
        over_the_wire(shape).await?;
    }
    let sqlite = Fixture::sqlite().await?;
    flush(&sqlite, "SQLite", tokens).await?;
    sqlite.remove().await?;
    match postgres {
        Some(url) => {
            let pg = Fixture::postgres(url).await?;
            flush(&pg, "PostgreSQL", tokens).await?;
            pg.remove().await?;
        }
        None => println!("(no TESSERA_TEST_POSTGRES_URL: the PostgreSQL flush is left out)"),
    }
    Ok(())
}

async fn over_the_wire(shape: Shape) -> Result<()> {
    let fixture = Fixture::sqlite().await?;
    let token = fixture.mint()?;
    let request = VerifyRequest {
        token,
        ..Default::default()
    };
    let dir = std::env::temp_dir().join(format!("tessera-usage-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    let body = grpc_body(&request, &dir.join("verify.bin"))?;
    let off = verifier_with(
        &fixture,
        shape.verifier,
        100_000,
        "tessera-verifier, last-used tracking off",
        &[("TESSERA_USAGE_FLUSH_INTERVAL", "off".into())],
    )
    .await?;
    let on = verifier_with(
        &fixture,
        shape.verifier,
        100_000,
        "tessera-verifier, last-used tracking on (flush every 1 s)",
        &[("TESSERA_USAGE_FLUSH_INTERVAL", "1s".into())],
    )
    .await?;
    let reply = wait_answering(on.addr, &request).await?;
    ensure!(
        reply.valid,
        "the benchmark token should verify: {}",
        reply.message
    );
    wait_answering(off.addr, &request).await?;
    let echo = echo(&request, &reply).await?;
    let servers = [echo, off, on];
    println!(
        "\n## Last-used tracking over gRPC, h2load in its own process ({} clients x {} streams; {} s per run, {} interleaved rounds; {})",
        shape.clients,
        shape.streams,
        shape.seconds,
        shape.rounds,
        pinning()
    );
    // Each round starts at the next server, so no server always runs
    // first (or right after another's load).
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    for round in 0..shape.rounds {
        for k in 0..servers.len() {
            let i = (round + k) % servers.len();
            let command = h2load_grpc(servers[i].addr, PATH, &body, shape);
            samples[i].push(rate(command, shape.seconds)?);
        }
    }
    let rps: Vec<f64> = samples.into_iter().map(median).collect();
    println!("| server | rps (median) |\n|---|---|");
    for (server, r) in servers.iter().zip(&rps) {
        println!("| {} | {r:.0} |", server.name);
    }
    println!(
        "\n1. Verify with tracking on / off: {:.0} / {:.0} = {:.3} (goal >= 0.97)",
        rps[2],
        rps[1],
        rps[2] / rps[1]
    );
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
    fixture.remove().await
}

async fn flush(fixture: &Fixture, name: &str, tokens: u64) -> Result<()> {
    let ids = fixture.bulk_tokens(tokens).await?;
    let usage = Usage::new(true, usize::try_from(tokens)?);
    let now = chrono::Utc::now().timestamp();
    let started = Instant::now();
    for id in &ids {
        usage.record(id, now, Some(std::net::Ipv4Addr::new(10, 0, 0, 7).into()));
    }
    let counting = started.elapsed();
    let started = Instant::now();
    let flushed = usage
        .flush(&fixture.store)
        .await
        .map_err(anyhow::Error::msg)?;
    let took = started.elapsed();
    let merged = fixture.used_tokens().await?;
    ensure!(
        merged == tokens && flushed.merged as u64 == tokens,
        "{name}: {tokens} tokens counted, {} flushed, {merged} rows show a use",
        flushed.merged
    );
    println!(
        "\n2. {name}: one flush of {tokens} distinct tokens: {} statements of at most {CHUNK} tokens, {:.2} s ({:.1} us a token); counting them took {:.0} ns a use",
        flushed.statements,
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / tokens as f64,
        counting.as_secs_f64() * 1e9 / tokens as f64
    );
    Ok(())
}
