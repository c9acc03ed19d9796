//! `tessera-bench`: measures Tessera and prints the figures. Run it in
//! release mode (`cargo run --release -p tessera-bench -- all`); each
//! figure says what it measured and how.

mod alloc;
mod external;
mod figures;
mod fixture;
mod gateways;
mod load;
mod servers;
mod usage;

use clap::{Parser, Subcommand};
use std::time::Duration;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// Tessera's benchmark harness.
#[derive(Debug, Parser)]
#[command(name = "tessera-bench")]
struct Cli {
    #[command(subcommand)]
    figure: Figure,
}

#[derive(Debug, Subcommand)]
enum Figure {
    /// Verify throughput over gRPC against a bare echo server (figures 1 and 2).
    Grpc(GrpcArgs),
    /// In-process Verify latency with and without a large revocation set,
    /// and memory per revocation entry (figure 3).
    Inprocess {
        #[arg(long, default_value_t = 1_000_000)]
        entries: u64,
    },
    /// Time from DisableToken's OK to a running verifier refusing the token (figure 4).
    Propagation {
        #[arg(long, default_value_t = 100)]
        trials: usize,
    },
    /// Revocation propagation through the issuer's feed against polling
    /// (issue 16's figure 1).
    Feed {
        #[arg(long, default_value_t = 100)]
        trials: usize,
        /// PostgreSQL URL; SQLite without one.
        #[arg(long, env = "TESSERA_TEST_POSTGRES_URL")]
        postgres: Option<String>,
    },
    /// Store reads of the revocation log per second: feed followers against
    /// pollers (issue 16's figure 2; PostgreSQL).
    FeedLoad {
        #[arg(long, default_value_t = 200)]
        followers: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, env = "TESSERA_TEST_POSTGRES_URL")]
        postgres: String,
    },
    /// A new verifier's start-up from the store against over the feed
    /// (issue 16's figure 3; PostgreSQL).
    FeedStartup {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long, env = "TESSERA_TEST_POSTGRES_URL")]
        postgres: String,
    },
    /// Start-up to SERVING with many revocation events (figure 5).
    Startup {
        /// PostgreSQL URL; SQLite is measured too.
        #[arg(long, env = "TESSERA_TEST_POSTGRES_URL")]
        postgres: Option<String>,
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
    },
    /// Every figure, one after the other.
    All(GrpcArgs),
    /// Verify throughput and latency driven by h2load in its own process,
    /// against the shipped verifier binary, a bare echo and a stateful
    /// comparator (issue 13's table). Build the verifier in release first.
    External {
        /// Seconds per run (after one second of warm-up).
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Interleaved rounds; the table shows medians.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// h2load clients (connections).
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Streams in flight per client.
        #[arg(long, default_value_t = 32)]
        streams: usize,
        /// PostgreSQL URL for the stateful comparator.
        #[arg(long, env = "TESSERA_TEST_POSTGRES_URL")]
        postgres: Option<String>,
        /// Another verifier binary to drive (an older build, to compare).
        #[arg(long)]
        verifier: Option<std::path::PathBuf>,
        /// Another verifier binary whose cold row (signature cache off) is
        /// driven in the same rounds, beside this build's.
        #[arg(long)]
        compare: Option<std::path::PathBuf>,
    },
    /// ext_authz Check against Verify, and forward auth against a bare HTTP
    /// server, driven by h2load in its own process (issue 12's figures).
    /// Build the verifier in release first.
    Gateways {
        /// Seconds per run (after one second of warm-up).
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Interleaved rounds; the table shows medians.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// h2load clients (connections) for the gRPC runs.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Streams in flight per gRPC client.
        #[arg(long, default_value_t = 32)]
        streams: usize,
        /// HTTP/1.1 keep-alive connections for the forward-auth runs.
        #[arg(long, default_value_t = 64)]
        h1_clients: usize,
    },
    /// Serves one of the external figure's helper servers (used by it).
    /// Last-used tracking: Verify rps with it on / off over the wire, and
    /// one flush of many distinct tokens on SQLite and PostgreSQL.
    Usage {
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long, default_value_t = 32)]
        streams: usize,
        /// Distinct tokens counted in the flushed interval.
        #[arg(long, default_value_t = 1_000_000)]
        tokens: u64,
        /// Only the flush figures, not the over-the-wire table.
        #[arg(long)]
        flush_only: bool,
        #[arg(long, env = "TESSERA_TEST_POSTGRES_URL")]
        postgres: Option<String>,
    },
    #[command(hide = true)]
    Serve {
        #[command(subcommand)]
        server: servers::Helper,
    },
}

#[derive(Debug, Clone, clap::Args)]
struct GrpcArgs {
    /// Seconds each server is driven (after one second of warm-up).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections they share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
}

impl GrpcArgs {
    fn load(&self) -> load::Load {
        load::Load {
            connections: self.connections,
            concurrency: self.concurrency,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(self.seconds),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; figures are only meaningful with --release");
    }
    if matches!(cli.figure, Figure::Inprocess { .. } | Figure::All(_)) {
        alloc::count();
    }
    match cli.figure {
        Figure::Grpc(args) => figures::grpc(args.load()).await,
        Figure::Inprocess { entries } => figures::inprocess(entries).await,
        Figure::Propagation { trials } => figures::propagation(trials).await,
        Figure::FeedLoad {
            followers,
            seconds,
            postgres,
        } => figures::feed_load(&postgres, followers, seconds).await,
        Figure::FeedStartup {
            events,
            rounds,
            postgres,
        } => figures::feed_startup(&postgres, events, rounds).await,
        Figure::Feed { trials, postgres } => {
            figures::feed_propagation(postgres.as_deref(), trials).await
        }
        Figure::Startup { postgres, events } => figures::startup(postgres.as_deref(), events).await,
        Figure::External {
            seconds,
            rounds,
            clients,
            streams,
            postgres,
            verifier,
            compare,
        } => {
            let verifier: Option<&'static std::path::Path> =
                verifier.map(|p| &*Box::leak(p.into_boxed_path()));
            let shape = external::Shape {
                verifier,
                seconds,
                rounds,
                clients,
                streams,
            };
            external::run(shape, postgres.as_deref(), compare.as_deref()).await
        }
        Figure::Gateways {
            seconds,
            rounds,
            clients,
            streams,
            h1_clients,
        } => {
            let shape = external::Shape {
                verifier: None,
                seconds,
                rounds,
                clients,
                streams,
            };
            gateways::run(shape, h1_clients).await
        }
        Figure::Usage {
            seconds,
            rounds,
            clients,
            streams,
            tokens,
            postgres,
            flush_only,
        } => {
            let shape = external::Shape {
                verifier: None,
                seconds,
                rounds,
                clients,
                streams,
            };
            usage::run(shape, postgres.as_deref(), tokens, !flush_only).await
        }
        Figure::Serve { server } => servers::serve(server).await,
        Figure::All(args) => {
            figures::grpc(args.load()).await?;
            figures::inprocess(1_000_000).await?;
            figures::propagation(100).await?;
            let postgres = std::env::var("TESSERA_TEST_POSTGRES_URL").ok();
            figures::startup(postgres.as_deref(), 1_000_000).await
        }
    }
}
