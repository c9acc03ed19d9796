//! The load generator: concurrent unary Verify calls for a fixed time,
//! counting outcomes from the responses themselves (not just transport
//! success), the same for every server it drives.

use anyhow::Result;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tessera_proto::v1::VerifyRequest;
use tessera_proto::v1::verifier_service_client::VerifierServiceClient;
use tonic::transport::Endpoint;

/// How hard and how long to drive.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub connections: usize,
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// What came back.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    pub valid: u64,
    pub invalid: u64,
    pub errors: u64,
    pub seconds: f64,
}

impl Outcome {
    /// Answers per second (valid or not; errors excluded).
    pub fn rps(&self) -> f64 {
        (self.valid + self.invalid) as f64 / self.seconds
    }
}

/// Drives `addr` with Verify calls cycling through `tokens`.
pub async fn drive(addr: SocketAddr, tokens: Arc<Vec<String>>, load: Load) -> Result<Outcome> {
    let mut clients = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .connect()
            .await?;
        clients.push(VerifierServiceClient::new(channel));
    }
    let next = Arc::new(AtomicUsize::new(0));
    let counting = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (valid, invalid, errors) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let start = Instant::now();
    let stop_at = start + load.warmup + load.duration;
    let tasks: Vec<_> = (0..load.concurrency)
        .map(|i| {
            let mut client = clients[i % clients.len()].clone();
            let (tokens, next, counting) = (tokens.clone(), next.clone(), counting.clone());
            let (valid, invalid, errors) = (valid.clone(), invalid.clone(), errors.clone());
            tokio::spawn(async move {
                while Instant::now() < stop_at {
                    let token = tokens[next.fetch_add(1, Ordering::Relaxed) % tokens.len()].clone();
                    let result = client
                        .verify(VerifyRequest {
                            token,
                            ..Default::default()
                        })
                        .await;
                    if !counting.load(Ordering::Relaxed) {
                        continue;
                    }
                    match result {
                        Ok(r) if r.get_ref().valid => valid.fetch_add(1, Ordering::Relaxed),
                        Ok(_) => invalid.fetch_add(1, Ordering::Relaxed),
                        Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(load.warmup).await;
    counting.store(true, Ordering::Relaxed);
    let measured_from = Instant::now();
    for task in tasks {
        task.await?;
    }
    Ok(Outcome {
        valid: valid.load(Ordering::Relaxed),
        invalid: invalid.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        seconds: measured_from.elapsed().as_secs_f64(),
    })
}
