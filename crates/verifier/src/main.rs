//! `tessera-verifier`: runs the verifier until SIGTERM or Ctrl-C.

use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use tessera_core::SystemClock;
use tessera_serve::shutdown;
use tessera_serve::telemetry::{self, TelemetryConfig};
use tessera_verifier::{VerifierConfig, VerifierServer};

/// Tessera's verifier: checks tokens against published keys and revocations.
#[derive(Debug, Parser)]
#[command(name = "tessera-verifier", version)]
struct Cli {
    #[command(flatten)]
    config: VerifierConfig,
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = Cli::parse().config;
    let guard = match TelemetryConfig::from_env("tessera-verifier", |k| std::env::var(k).ok())
        .and_then(|c| telemetry::init(&c).map_err(|e| e.to_string()))
    {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
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
    let code = match server.run_until(shutdown::signal()).await {
        Ok(()) => {
            tracing::info!("verifier stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    };
    // Flush traces before exiting.
    guard.shutdown().await;
    code
}
