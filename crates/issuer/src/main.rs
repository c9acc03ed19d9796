//! `tessera-issuer`: runs the issuer until SIGTERM or Ctrl-C.

use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use tessera_core::SystemClock;
use tessera_issuer::{Issuer, IssuerConfig, config::DEFAULT_DATABASE_URL};
use tracing_subscriber::EnvFilter;

/// Tessera's issuer: users, sessions, API tokens and signing keys over gRPC.
#[derive(Debug, Parser)]
#[command(name = "tessera-issuer", version)]
struct Cli {
    #[command(flatten)]
    config: IssuerConfig,
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
    match issuer.run_until(shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("issuer stopped");
            ExitCode::SUCCESS
        }
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
