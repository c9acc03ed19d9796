//! `tessera-issuer`: runs the issuer until SIGTERM or Ctrl-C.

use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use tessera_core::SystemClock;
use tessera_issuer::{Issuer, IssuerConfig, config::DEFAULT_DATABASE_URL};
use tessera_serve::shutdown;
use tessera_serve::telemetry::{self, TelemetryConfig};

/// Tessera's issuer: users, sessions, API tokens and signing keys over gRPC.
#[derive(Debug, Parser)]
#[command(name = "tessera-issuer", version)]
struct Cli {
    #[command(flatten)]
    config: IssuerConfig,
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = Cli::parse().config;
    let guard = match TelemetryConfig::from_env("tessera-issuer", |k| std::env::var(k).ok())
        .and_then(|c| telemetry::init(&c).map_err(|e| e.to_string()))
    {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The default database lives in ./tessera-data, made on first start.
    if config.database_url == DEFAULT_DATABASE_URL
        && let Some(dir) = config.sqlite_path().as_deref().and_then(|p| p.parent())
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        eprintln!(
            "error: cannot create the data directory {}: {e}",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    let issuer = match Issuer::bind(config, Arc::new(SystemClock)).await {
        Ok(issuer) => issuer,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match issuer.local_addr() {
        Ok(addr) => tracing::info!(%addr, "issuer listening"),
        Err(e) => tracing::warn!(error = %e, "issuer listening on an unknown address"),
    }
    let code = match issuer.run_until(shutdown::signal()).await {
        Ok(()) => {
            tracing::info!("issuer stopped");
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
