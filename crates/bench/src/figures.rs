//! The figures the verifier issue asks for, each printed with how it was
//! measured.

use crate::alloc;
use crate::fixture::Fixture;
use crate::load::{self, Load, Outcome};
use crate::servers;
use anyhow::{Context, Result, ensure};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_core::keys::VerifyingKey;
use tessera_core::revocation::{Change, Event, Id, RevocationSet};
use tessera_core::{SystemClock, jwt};
use tessera_proto::v1::{self, VerifyRequest};
use tessera_verifier::VerifierConfig;
use tessera_verifier::service::Shared;

fn report(name: &str, value: String) {
    println!("{name:<58} {value}");
}

/// Drives each target for one slice per round, interleaved, so a change in
/// background load hits every target alike; returns the summed outcomes.
async fn interleaved(
    targets: &[(SocketAddr, Arc<Vec<String>>)],
    load: Load,
    rounds: u32,
) -> Result<Vec<Outcome>> {
    let slice = Load {
        duration: load.duration / rounds,
        warmup: Duration::from_millis(200),
        ..load
    };
    let mut totals = vec![Outcome::default(); targets.len()];
    for _ in 0..rounds {
        for ((addr, tokens), total) in targets.iter().zip(&mut totals) {
            let out = load::drive(*addr, tokens.clone(), slice).await?;
            total.valid += out.valid;
            total.invalid += out.invalid;
            total.errors += out.errors;
            total.seconds += out.seconds;
        }
    }
    Ok(totals)
}

/// Figures 1 and 2: gRPC throughput against the echo baseline.
pub async fn grpc(load: Load) -> Result<()> {
    const ROUNDS: u32 = 5;
    println!(
        "\n## gRPC on loopback ({} calls in flight over {} connections; {} s per server in {ROUNDS} interleaved slices)",
        load.concurrency,
        load.connections,
        load.duration.as_secs(),
    );
    let fixture = Fixture::sqlite().await?;
    let token = fixture.mint()?;
    let (verifier, _) = servers::verifier(&fixture, 100_000).await?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{verifier}"))?
        .connect()
        .await?;
    let reply = v1::verifier_service_client::VerifierServiceClient::new(channel)
        .verify(VerifyRequest {
            token: token.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    ensure!(
        reply.valid,
        "the benchmark token should verify: {}",
        reply.message
    );
    let echo = servers::echo(reply).await?;
    let (cold, _) = servers::verifier(&fixture, 0).await?;
    let one = Arc::new(vec![token]);
    let distinct: Arc<Vec<String>> =
        Arc::new((0..20_000).map(|_| fixture.mint()).collect::<Result<_>>()?);

    let keys = fixture
        .store
        .published_keys(chrono::Utc::now().timestamp())
        .await?;
    let key = VerifyingKey::from_public(&keys[0].kid, &keys[0].public_key)?;
    let t_verify = || -> Result<f64> {
        let sample = 2_000;
        let started = Instant::now();
        for token in distinct.iter().take(sample) {
            jwt::check(token, |_| Some(&key)).map_err(|r| anyhow::anyhow!(r.message))?;
        }
        Ok(started.elapsed().as_secs_f64() / sample as f64)
    };
    let t_before = t_verify()?;
    let outcomes = interleaved(
        &[
            (echo, one.clone()),
            (verifier, one),
            (cold, distinct.clone()),
        ],
        load,
        ROUNDS,
    )
    .await?;
    let t_verify = (t_before + t_verify()?) / 2.0;
    let (echo_out, repeated, distinct_out) = (outcomes[0], outcomes[1], outcomes[2]);
    ensure!(
        repeated.invalid == 0 && repeated.errors == 0,
        "every repeated call should be valid: {repeated:?}"
    );
    ensure!(
        distinct_out.invalid == 0 && distinct_out.errors == 0,
        "every distinct call should be valid: {distinct_out:?}"
    );
    report(
        "echo baseline (same request and response)",
        format!("{:.0} rps", echo_out.rps()),
    );
    report(
        "Verify, one repeated token (cached signature)",
        format!("{:.0} rps", repeated.rps()),
    );
    report(
        "figure 1: repeated-token Verify / echo (goal >= 0.8)",
        format!("{:.2}", repeated.rps() / echo_out.rps()),
    );
    let prediction = 1.0 / (1.0 / echo_out.rps() + t_verify);
    report(
        "t_verify (one cold signature check, in-process)",
        format!("{:.1} µs", t_verify * 1e6),
    );
    report(
        "Verify, distinct tokens (no signature cache)",
        format!("{:.0} rps", distinct_out.rps()),
    );
    report(
        "prediction 1 / (1/echo_rps + t_verify)",
        format!("{prediction:.0} rps"),
    );
    report(
        "figure 2: distinct-token Verify / prediction (goal >= 0.9)",
        format!("{:.2}", distinct_out.rps() / prediction),
    );
    fixture.remove().await
}

/// A verifier's shared state with its view loaded from `fixture`.
async fn loaded(fixture: &Fixture) -> Result<Arc<Shared>> {
    let mut config = VerifierConfig::new("127.0.0.1:0".parse()?, fixture.url.clone());
    config.shutdown_delay = std::time::Duration::ZERO;
    config.db_schema = fixture.schema.clone();
    let shared = Arc::new(Shared::new(config, Arc::new(SystemClock)));
    let store = shared.store.get_or_init(|| fixture.store.clone());
    shared
        .view
        .load(store, chrono::Utc::now().timestamp_millis())
        .await?;
    Ok(shared)
}

/// Mean in-process Verify latency over `n` calls with one (cached) token.
async fn latency(shared: &Shared, request: &VerifyRequest, n: u32) -> Result<Duration> {
    let started = Instant::now();
    for _ in 0..n {
        let answer = shared.verify(request).await?;
        ensure!(answer.valid, "{}", answer.message);
    }
    Ok(started.elapsed() / n)
}

/// Figure 3: latency with a large revocation set over none, and memory per entry.
pub async fn inprocess(entries: u64) -> Result<()> {
    println!(
        "\n## In-process Verify (one cached token, SQLite-backed view; median of 7 rounds of 200,000 calls)"
    );
    let empty = Fixture::sqlite().await?;
    let full = Fixture::sqlite().await?;
    full.bulk_revocations(entries).await?;

    let empty_view = loaded(&empty).await?;
    let before = alloc::allocated();
    let full_view = loaded(&full).await?;
    let view_bytes = alloc::allocated().saturating_sub(before);
    let live = full_view.view.revocation_entries();
    ensure!(
        live as u64 == entries,
        "the view should hold {entries} entries, holds {live}"
    );

    // Each view gets a token signed by its own database's key.
    let request = |token: String| VerifyRequest {
        token,
        ..Default::default()
    };
    let (empty_req, full_req) = (request(empty.mint()?), request(full.mint()?));
    latency(&empty_view, &empty_req, 20_000).await?;
    latency(&full_view, &full_req, 20_000).await?;
    let (mut none, mut many) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        none.push(latency(&empty_view, &empty_req, 200_000).await?);
        many.push(latency(&full_view, &full_req, 200_000).await?);
    }
    none.sort();
    many.sort();
    let (none, many) = (none[3], many[3]);
    report(
        "Verify latency, empty revocation set",
        format!("{:.0} ns", none.as_nanos()),
    );
    report(
        &format!("Verify latency, {entries} revocation entries"),
        format!("{:.0} ns", many.as_nanos()),
    );
    report(
        "figure 3a: latency with entries / without (goal <= 1.1)",
        format!("{:.3}", many.as_secs_f64() / none.as_secs_f64()),
    );
    report(
        "figure 3b: memory per entry, whole loaded view (goal <= 100 B)",
        format!("{:.1} B", view_bytes as f64 / entries as f64),
    );

    // The set alone, built from events in memory.
    let before = alloc::allocated();
    let mut set = RevocationSet::new();
    for i in 1..=entries {
        set.apply(&Event {
            seq: i64::try_from(i)?,
            token: Id::parse(&format!("01900000-0000-7000-8000-{i:012x}")),
            user: None,
            change: Change::RevokeToken,
            prune_after: i64::MAX,
        });
    }
    let set_bytes = alloc::allocated().saturating_sub(before);
    report(
        "memory per entry, revocation set alone",
        format!("{:.1} B", set_bytes as f64 / entries as f64),
    );
    drop(set);
    empty.remove().await?;
    full.remove().await
}

/// Figure 4: DisableToken's OK to the verifier's refusal.
pub async fn propagation(trials: usize) -> Result<()> {
    println!(
        "\n## Propagation: DisableToken OK at the issuer -> a running verifier answers DISABLED (default sync settings, {trials} trials)"
    );
    let fixture = Fixture::sqlite().await?;
    let issuer = crate::servers::issuer(&fixture).await?;
    let (verifier, _) = servers::verifier(&fixture, 100_000).await?;
    let samples = crate::servers::propagation_trials(issuer, verifier, trials).await?;
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    report("figure 4: propagation p50", format!("{:.0} ms", pct(0.50)));
    report(
        "figure 4: propagation p99 (goal <= 1000 ms)",
        format!("{:.0} ms", pct(0.99)),
    );
    report("propagation max", format!("{:.0} ms", pct(1.0)));
    fixture.remove().await
}

/// Issue 16's figure 1: DisableToken's OK to a verifier answering
/// DISABLED, for a verifier polling the store (250 ms) and one following
/// the issuer's revocation feed, each after random pauses.
pub async fn feed_propagation(postgres: Option<&str>, trials: usize) -> Result<()> {
    let fixture = match postgres {
        Some(url) => Fixture::postgres(url).await?,
        None => Fixture::sqlite().await?,
    };
    println!(
        "\n## Propagation on {}: DisableToken OK at the issuer -> the verifier answers DISABLED ({trials} trials each)",
        if postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    let issuer = crate::servers::issuer(&fixture).await?;
    let (polling, _) = servers::verifier_following(&fixture, 100_000, None).await?;
    let (following, _) = servers::verifier_following(&fixture, 100_000, Some(issuer)).await?;
    let fed = servers::fed_verifier(issuer, None, false).await?;
    let relay = servers::fed_verifier(issuer, None, true).await?;
    let relay2 = servers::fed_verifier(relay, None, true).await?;
    let two_tiers = servers::fed_verifier(relay2, None, false).await?;
    // The same over TLS: an issuer of its own serving TLS on the same store.
    let pki = servers::Pki::new()?;
    let tls_issuer = servers::issuer_with(&fixture, Some(&pki)).await?;
    let tls_fed = servers::fed_verifier(tls_issuer, Some(&pki), false).await?;
    let tls_relay = servers::fed_verifier(tls_issuer, Some(&pki), true).await?;
    let tls_relay2 = servers::fed_verifier(tls_relay, None, true).await?;
    let tls_two_tiers = servers::fed_verifier(tls_relay2, None, false).await?;
    println!("| verifier | p50 | p99 | max |\n|---|---|---|---|");
    let plain = || {
        tonic::transport::Endpoint::from_shared(format!("http://{issuer}"))
            .map(|e| e.connect_lazy())
    };
    for (name, verifier, channel) in [
        ("polling the store every 250 ms", polling, plain()?),
        ("following the feed, with a store", following, plain()?),
        ("following the feed, no store", fed, plain()?),
        ("through two relay tiers, no stores", two_tiers, plain()?),
        (
            "TLS: following the feed, no store",
            tls_fed,
            pki.channel(tls_issuer)?,
        ),
        (
            "TLS to the first relay: through two relay tiers",
            tls_two_tiers,
            pki.channel(tls_issuer)?,
        ),
    ] {
        let samples = crate::servers::propagation_trials_on(channel, verifier, trials).await?;
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let pct = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.1} ms |",
            pct(0.5),
            pct(0.99),
            pct(1.0)
        );
    }
    fixture.remove().await
}

/// Figure 5: start-up to SERVING with many live revocation events.
pub async fn startup(postgres: Option<&str>, events: u64) -> Result<()> {
    println!("\n## Start-up to SERVING with {events} live revocation events");
    let sqlite = Fixture::sqlite().await?;
    sqlite.bulk_revocations(events).await?;
    let (_, took) = servers::verifier(&sqlite, 100_000).await?;
    report(
        "SQLite: bind to SERVING",
        format!("{:.2} s", took.as_secs_f64()),
    );
    sqlite.remove().await?;
    match postgres {
        Some(url) => {
            let pg = Fixture::postgres(url).await.context("PostgreSQL fixture")?;
            pg.bulk_revocations(events).await?;
            let (_, took) = servers::verifier(&pg, 100_000).await?;
            report(
                "figure 5: PostgreSQL bind to SERVING (goal <= 5 s)",
                format!("{:.2} s", took.as_secs_f64()),
            );
            let started = Instant::now();
            let now = chrono::Utc::now().timestamp();
            let (mut after, mut rows) = (0, 0usize);
            loop {
                let page = pg.store.events_after(after, Some(now), 50_000).await?;
                rows += page.len();
                match page.last() {
                    Some(last) if page.len() == 50_000 => after = last.seq,
                    _ => break,
                }
            }
            report(
                &format!("for comparison: one sequential reader of {rows} events"),
                format!("{:.2} s", started.elapsed().as_secs_f64()),
            );
            pg.remove().await?;
        }
        None => println!("PostgreSQL skipped: pass --postgres or set TESSERA_TEST_POSTGRES_URL"),
    }
    Ok(())
}

/// Issue 16's figure 2: the store's reads of the revocation log per second
/// while `followers` follow one issuer's feed, against as many pollers of
/// the store (each a verifier's poll: the log after its last event every
/// 250 ms). Counted by PostgreSQL itself (`pg_stat_user_tables` scans of
/// `revocation_events`), with one event committed a second throughout.
pub async fn feed_load(postgres: &str, followers: usize, seconds: u64) -> Result<()> {
    use sea_orm::{ConnectionTrait, Statement};
    use tessera_proto::v1::revocation_feed_service_client::RevocationFeedServiceClient;
    use tessera_store::revocation::{EventKind, NewRevocation};
    let fixture = Fixture::postgres(postgres).await?;
    let schema = fixture.schema.clone().unwrap_or_default();
    let issuer = crate::servers::issuer(&fixture).await?;
    let store = fixture.store.clone();
    let scans = async || -> Result<i64> {
        let sql = format!(
            "SELECT (COALESCE(seq_scan, 0) + COALESCE(idx_scan, 0))::bigint FROM pg_stat_user_tables \
             WHERE schemaname = '{schema}' AND relname = 'revocation_events'"
        );
        // Statistics reach the view when a backend reports them.
        let row = store
            .connection()
            .query_one_raw(Statement::from_string(
                store.connection().get_database_backend(),
                sql,
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no statistics for revocation_events"))?;
        Ok(row.try_get_by_index::<i64>(0)?)
    };
    // One event a second, written as the issuer writes them.
    let writer = {
        let store = fixture.store.clone();
        tokio::spawn(async move {
            loop {
                let now = chrono::Utc::now().timestamp();
                let id = uuid::Uuid::now_v7().to_string();
                let _ = store
                    .append_revocation(
                        now,
                        NewRevocation::token(EventKind::DisableToken, &id, &id, now + 3600),
                    )
                    .await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let measure = async |what: &str| -> Result<f64> {
        tokio::time::sleep(Duration::from_secs(2)).await;
        store
            .execute_unprepared("SELECT pg_stat_clear_snapshot()")
            .await?;
        let before = scans().await?;
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        store
            .execute_unprepared("SELECT pg_stat_clear_snapshot()")
            .await?;
        let after = scans().await?;
        let rate = (after - before) as f64 / seconds as f64;
        println!("| {what} | {rate:.1} |");
        Ok(rate)
    };
    println!(
        "\n## Store reads of the revocation log per second, PostgreSQL, one event committed a second ({seconds} s each)\n| sync | reads/s |\n|---|---|"
    );
    let idle = measure("nothing following (the issuer's own feed reader)").await?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{issuer}"))?
        .connect()
        .await?;
    let mut streams = Vec::new();
    let rss_before = rss_kib();
    for count in [1, followers] {
        while streams.len() < count {
            let mut stream = RevocationFeedServiceClient::new(channel.clone())
                .watch_revocations({
                    let mut request =
                        tonic::Request::new(tessera_proto::v1::WatchRevocationsRequest {
                            after_seq: 0,
                        });
                    request.metadata_mut().insert(
                        "authorization",
                        format!("Bearer {}", crate::servers::FEED_SECRET).parse()?,
                    );
                    request
                })
                .await?
                .into_inner();
            streams.push(tokio::spawn(async move {
                while let Ok(Some(_)) = stream.message().await {}
            }));
        }
        measure(&format!("{count} following the feed")).await?;
    }
    let grown = rss_kib().saturating_sub(rss_before);
    // Propagation to one more verifier (no store) while they all follow.
    let fed = servers::fed_verifier(issuer, None, false).await?;
    let mut ms: Vec<f64> = servers::propagation_trials(issuer, fed, 50)
        .await?
        .iter()
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "(propagation with {followers} streams open, 50 trials: p50 {:.1} ms, p99 {:.1} ms)",
        ms[ms.len() / 2],
        ms[((ms.len() as f64 - 1.0) * 0.99).round() as usize]
    );
    println!(
        "(memory with {followers} streams open: {} KiB more resident, {:.1} KiB a follower, \
         client and server sides in this one process: an upper bound for the issuer's)",
        grown,
        grown as f64 / followers.max(1) as f64
    );
    for stream in &streams {
        stream.abort();
    }
    let pollers: Vec<_> = (0..followers)
        .map(|_| {
            let store = fixture.store.clone();
            tokio::spawn(async move {
                let mut last = 0;
                loop {
                    if let Ok(events) = store.events_after(last, None, 50_000).await
                        && let Some(e) = events.last()
                    {
                        last = e.seq;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        })
        .collect();
    let polled = measure(&format!("{followers} polling the store every 250 ms")).await?;
    for poller in pollers {
        poller.abort();
    }
    writer.abort();
    println!("(the feed reader alone: {idle:.1} reads/s; {followers} pollers: {polled:.1})");
    fixture.remove().await
}

/// Issue 16's figure 3: a new verifier's bind to SERVING with `events`
/// live revocation events, its view loaded from the store against loaded
/// over the issuer's feed (served from the store through the issuer, a
/// page of 5,000 events per message).
pub async fn feed_startup(postgres: &str, events: u64, rounds: usize) -> Result<()> {
    use sea_orm::{ConnectionTrait, Statement};
    let fixture = Fixture::postgres(postgres).await?;
    fixture.bulk_revocations(events).await?;
    let issuer = crate::servers::issuer(&fixture).await?;
    println!(
        "\n## A new verifier's bind to SERVING with {events} live revocation events, PostgreSQL ({rounds} rounds, alternating)\n| view loaded | median | runs |\n|---|---|---|"
    );
    let (mut store, mut feed, mut fed) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        store.push(
            servers::verifier_following(&fixture, 100_000, None)
                .await?
                .1,
        );
        feed.push(
            servers::verifier_following(&fixture, 100_000, Some(issuer))
                .await?
                .1,
        );
        fed.push(servers::fed_verifier_timed(issuer, None, false).await?.1);
    }
    for (name, mut runs) in [
        ("from the store", store),
        ("over the feed (with a store beside)", feed),
        ("over the feed, no store", fed),
    ] {
        runs.sort();
        let shown: Vec<String> = runs
            .iter()
            .map(|d| format!("{:.2} s", d.as_secs_f64()))
            .collect();
        println!(
            "| {name} | {:.2} s | {} |",
            runs[runs.len() / 2].as_secs_f64(),
            shown.join(", ")
        );
    }
    // Verifiers starting together share the issuer's catch-up pages: the
    // rows PostgreSQL reads for 50 at once against for one.
    let schema = fixture.schema.clone().unwrap_or_else(|| "public".into());
    let store = fixture.store.clone();
    let rows_read = async || -> Result<i64> {
        // Statistics reach the view when a backend reports them.
        tokio::time::sleep(Duration::from_secs(2)).await;
        store
            .execute_unprepared("SELECT pg_stat_clear_snapshot()")
            .await?;
        let sql = format!(
            "SELECT (COALESCE(seq_tup_read, 0) + COALESCE(idx_tup_fetch, 0))::bigint \
             FROM pg_stat_user_tables WHERE schemaname = '{schema}' AND relname = 'revocation_events'"
        );
        let row = store
            .connection()
            .query_one_raw(Statement::from_string(
                store.connection().get_database_backend(),
                sql,
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no statistics for revocation_events"))?;
        Ok(row.try_get_by_index::<i64>(0)?)
    };
    let before = rows_read().await?;
    servers::fed_verifier_timed(issuer, None, false).await?;
    let one = rows_read().await? - before;
    let started = Instant::now();
    let together: Vec<_> = (0..50)
        .map(|_| tokio::spawn(servers::fed_verifier_timed(issuer, None, false)))
        .collect();
    let mut slowest = Duration::ZERO;
    for verifier in together {
        slowest = slowest.max(verifier.await??.1);
    }
    let wall = started.elapsed();
    let fifty = rows_read().await? - before - one;
    println!(
        "\n| store rows read by the issuer | rows |\n|---|---|\n| one verifier starting alone | {one} |\n| 50 verifiers starting together | {fifty} ({:.2}x one; all SERVING within {:.2} s, slowest bind to SERVING {:.2} s) |",
        fifty as f64 / one.max(1) as f64,
        wall.as_secs_f64(),
        slowest.as_secs_f64()
    );
    fixture.remove().await
}

/// This process's resident memory, KiB (0 where /proc is not there).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
