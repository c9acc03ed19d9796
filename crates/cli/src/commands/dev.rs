//! `tessera dev`: an issuer and a verifier in this process, on an embedded
//! SQLite database, until Ctrl-C. The issuer also serves FME's own token
//! endpoints over HTTP (docs/fme.md) on [`HTTP_LISTEN`] unless
//! `TESSERA_HTTP_LISTEN` says otherwise.

use crate::args::DevArgs;
use crate::error::CliError;
use crate::output::Printer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_core::SystemClock;
use tessera_issuer::{Issuer, IssuerConfig};
use tessera_verifier::{VerifierConfig, VerifierServer};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Where `tessera dev` serves FME's HTTP endpoints: the port after the
/// issuer's and the verifier's defaults.
pub(crate) const HTTP_LISTEN: &str = "127.0.0.1:50053";

/// The issuer's and verifier's settings from their `TESSERA_*` variables,
/// as the production binaries read them (`TESSERA_ADMIN_PASSWORD`,
/// `TESSERA_KEK`, lifetimes…); `dev`'s own flags then set the addresses
/// and the database.
#[derive(clap::Parser)]
struct FromEnvironment {
    #[command(flatten)]
    issuer: IssuerConfig,
}

#[derive(clap::Parser)]
struct VerifierFromEnvironment {
    #[command(flatten)]
    verifier: VerifierConfig,
}

fn from_environment<P: clap::Parser>(what: &str) -> Result<P, CliError> {
    P::try_parse_from(["tessera dev"]).map_err(|e| {
        CliError::Usage(format!(
            "a TESSERA_* variable for the {what} is not valid: {}",
            e.to_string().trim()
        ))
    })
}

async fn wait_serving(what: &str, addr: SocketAddr) -> Result<(), CliError> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| CliError::Local(e.to_string()))?
        .connect_lazy();
    let mut health = HealthClient::new(channel);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status);
        if matches!(status, Ok(s) if s == ServingStatus::Serving as i32) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(CliError::Local(format!(
        "the {what} did not become ready within 60 s; see the log above"
    )))
}

pub(crate) async fn run(args: DevArgs, printer: &mut Printer<'_>) -> Result<(), CliError> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let url = format!("sqlite://{}/tessera.db?mode=rwc", args.data_dir.display());
    let clock = Arc::new(SystemClock);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut issuer_config = from_environment::<FromEnvironment>("issuer")?.issuer;
    issuer_config.listen = args.issuer_listen;
    issuer_config.database_url = url.clone();
    // Ctrl-C stops a development server at once: nothing balances load to it.
    issuer_config.shutdown_delay = std::time::Duration::ZERO;
    let http_listen = match issuer_config.http_listen {
        Some(addr) => addr,
        None => HTTP_LISTEN
            .parse()
            .map_err(|e| CliError::Local(format!("{HTTP_LISTEN}: {e}")))?,
    };
    issuer_config.http_listen = Some(http_listen);
    let mut verifier_config = from_environment::<VerifierFromEnvironment>("verifier")?.verifier;
    verifier_config.listen = args.verifier_listen;
    verifier_config.database_url = url;
    verifier_config.shutdown_delay = std::time::Duration::ZERO;
    // The verifier follows this issuer's feed (below, once its address is
    // known), with a secret both share: the feed admits no one without one.
    let feed_secret = match issuer_config
        .feed_secret
        .clone()
        .or_else(|| verifier_config.feed_secret.clone())
    {
        Some(secret) => secret,
        None => tessera_core::random::url_safe_string::<32>()
            .map_err(|e| CliError::Local(format!("cannot make a feed secret: {e}")))?,
    };
    issuer_config.feed_secret = Some(feed_secret.clone());
    verifier_config.feed_secret = Some(feed_secret);
    // Both addresses first: a busy port fails before anything is written.
    for (what, addr, flag) in [
        ("issuer", args.issuer_listen, "--issuer-listen"),
        ("verifier", args.verifier_listen, "--verifier-listen"),
    ] {
        std::net::TcpListener::bind(addr).map_err(|e| {
            CliError::Local(format!(
                "{what}: cannot listen on {addr}: {e} (is another tessera dev running? choose \
                 another address with {flag})"
            ))
        })?;
    }
    std::net::TcpListener::bind(http_listen).map_err(|e| {
        CliError::Local(format!(
            "FME HTTP endpoints: cannot listen on {http_listen}: {e} (is another tessera dev \
             running? choose another address with TESSERA_HTTP_LISTEN)"
        ))
    })?;
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| CliError::Local(format!("cannot create {}: {e}", args.data_dir.display())))?;
    let issuer = Issuer::bind(issuer_config, clock.clone())
        .await
        .map_err(|e| CliError::Local(format!("issuer: {e}")))?;
    let issuer_addr = issuer
        .local_addr()
        .map_err(|e| CliError::Local(e.to_string()))?;
    let http_addr = issuer.http_addr().unwrap_or(http_listen);
    verifier_config.revocation_feed = format!("http://{issuer_addr}");
    let verifier = VerifierServer::bind(verifier_config, clock)
        .await
        .map_err(|e| CliError::Local(format!("verifier: {e}")))?;
    let issuer_task = tokio::spawn(issuer.run_until(until_stopped(stopped.clone())));
    // The verifier reads the tables the issuer creates: start it second.
    wait_serving("issuer", issuer_addr).await?;
    let verifier_addr = verifier
        .local_addr()
        .map_err(|e| CliError::Local(e.to_string()))?;
    let verifier_task = tokio::spawn(verifier.run_until(until_stopped(stopped)));
    wait_serving("verifier", verifier_addr).await?;
    printer.done(
        &format!(
            "Tessera is running (data in {}):\n  issuer    http://{issuer_addr}\n  verifier  http://{verifier_addr}\n  \
             FME HTTP  http://{http_addr} (/fmetoken/generate, /fmerest/v3/tokens, /fmeapiv4/tokens)\n\
             In another terminal: tessera login --user admin --password <password>. Ctrl-C stops both.",
            args.data_dir.display()
        ),
        serde_json::json!({
            "issuer": format!("http://{issuer_addr}"),
            "verifier": format!("http://{verifier_addr}"),
            "fme_http": format!("http://{http_addr}"),
            "data_dir": args.data_dir.display().to_string(),
        }),
    )?;
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("stopping…");
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = issuer_task.await;
        let _ = verifier_task.await;
    })
    .await;
    Ok(())
}
