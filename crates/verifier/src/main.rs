//! `tessera-verifier`: runs the verifier until SIGTERM or Ctrl-C.

use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use tessera_core::SystemClock;
use tessera_verifier::{VerifierConfig, VerifierServer};
use tracing_subscriber::EnvFilter;

/// Tessera's verifier: checks tokens against published keys and revocations.
#[derive(Debug, Parser)]
#[command(name = "tessera-verifier", version)]
struct Cli {
    #[command(flatten)]
    config: VerifierConfig,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Cli::parse().config;
    let server = match VerifierServer::bind(config, Arc::new(SystemClock)).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match server.local_addr() {
        Ok(addr) => tracing::info!(%addr, "verifier listening"),
        Err(e) => tracing::warn!(error = %e, "verifier listening on an unknown address"),
    }
    match server.run_until(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
