//! Password hashing under a memory budget. Every argon2 hash or check holds
//! its own memory (19 MiB with Tessera's parameters) for tens of
//! milliseconds, so unbounded concurrent logins — no credentials needed —
//! could exhaust the issuer's memory. The budget buys a fixed number of
//! hashing threads; a login that finds none free within a short wait is
//! answered RESOURCE_EXHAUSTED with a retry hint, never queued without
//! bound. Unknown users' decoy checks take the same path, so they cost what
//! known users cost.
//!
//! Each hashing thread owns its argon2 working memory for good and reuses
//! it: freed and reallocated per hash, the allocator keeps the 19 MiB
//! blocks resident in its arenas anyway (measured: +460 MiB after a flood
//! with six hashes at a time), so the budget would not bound resident
//! memory. With owned memory it does: one block per thread, allocated once.

use crate::error::IssuerError;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;
use tessera_core::password::Memory;
use tokio::sync::Semaphore;

/// Memory one argon2id hash holds, in MiB (argon2's default `m_cost` of
/// 19,456 KiB, which `tessera_core::password` uses), rounded up.
pub const MIB_PER_HASH: u64 = 19;

/// The most hashing threads a budget buys, however large (about 5 GiB).
const MAX_THREADS: u64 = 256;

/// How long a hash may wait for room before it is refused.
const MAX_WAIT: Duration = Duration::from_millis(200);

type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// The budget: as many hashing threads as the memory holds hashes.
#[derive(Debug, Clone)]
pub(crate) struct HashBudget {
    permits: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
    size: usize,
}

impl HashBudget {
    /// Room for as many hashes as `memory_mib` holds, at least one. The
    /// threads end when the last clone of the budget is dropped.
    pub fn new(memory_mib: u64) -> Self {
        let size = usize::try_from((memory_mib / MIB_PER_HASH).clamp(1, MAX_THREADS)).unwrap_or(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..size {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("tessera-hash-{n}"))
                .spawn(move || {
                    // Allocated at the thread's first hash, kept after.
                    let mut memory: Option<Memory> = None;
                    loop {
                        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(job) => job(memory.get_or_insert_with(Memory::new)),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        Self {
            permits: Arc::new(Semaphore::new(size)),
            jobs,
            size,
        }
    }

    /// How many hashes may run at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `work` (a hash or a check, given the thread's working memory)
    /// off the async workers, within the budget.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> Result<T, IssuerError> {
        let permit =
            match tokio::time::timeout(MAX_WAIT, self.permits.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => {
                    return Err(IssuerError::ResourceExhausted {
                        message: "too many password checks are running at once: retry in a second"
                            .into(),
                        retry_after: Duration::from_secs(1),
                    });
                }
            };
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move |memory: &mut Memory| {
                let _ = done.send(work(memory));
            }))
            .map_err(|_| IssuerError::Internal("the password hashing threads are gone".into()))?;
        let out = result
            .await
            .map_err(|_| IssuerError::Internal("a password hashing job was lost".into()));
        drop(permit);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_counted_in_whole_hashes() {
        assert_eq!(HashBudget::new(128).size(), 6);
        assert_eq!(HashBudget::new(1).size(), 1, "never none");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_beyond_the_budget_is_refused_quickly() {
        let budget = HashBudget::new(MIB_PER_HASH);
        let (started, wait) = std::sync::mpsc::channel::<()>();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let busy = budget.clone();
        let first = tokio::spawn(async move {
            busy.run(move |_| {
                let _ = started.send(());
                let _ = hold.recv();
            })
            .await
        });
        wait.recv().expect("the first hash started");
        let at = tokio::time::Instant::now();
        let second = budget.run(|_| ()).await;
        assert!(
            matches!(second, Err(IssuerError::ResourceExhausted { .. })),
            "{second:?}"
        );
        assert!(at.elapsed() < Duration::from_secs(2));
        release.send(()).expect("release");
        first.await.expect("join").expect("the first one ran");
        budget.run(|_| ()).await.expect("room again");
    }
}
