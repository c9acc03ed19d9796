//! Cold signature checks of concurrent requests, checked together.
//!
//! A batch equation over many Ed25519 signatures costs about half as much
//! per signature as checking each alone, so under load the cold path gets
//! cheaper than one check per request. There is no timer and no task of
//! its own: the first request to find the queue empty leads. It yields
//! once, so the requests already runnable on this worker join the queue,
//! then checks everything queued and hands each request its answer. A
//! request alone in the queue is checked alone, so an idle verifier pays
//! one yield, not a wait.
//!
//! A batch that fails says only that one of its signatures is bad: its
//! tokens are then checked one by one, and so are the next few batches,
//! so a client sending bad signatures cannot make everyone's checks cost
//! twice.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use tessera_core::Claims;
use tessera_core::jwt::{self, Rejected, Rejection, Unchecked};
use tokio::sync::oneshot;

/// Most signatures in one batch equation: a leader that holds more
/// checks them in batches of this size.
const MAX_BATCH: usize = 64;

/// Batches checked one by one after a batch fails.
const DISTRUST: u32 = 16;

type Answer = Result<Claims, Rejected>;

struct Job {
    token: Unchecked,
    reply: oneshot::Sender<Answer>,
}

/// The queue of signatures waiting to be checked.
#[derive(Default)]
pub struct Batcher {
    queue: Mutex<Vec<Job>>,
    /// Batches still to be checked one by one after a failed one.
    distrust: AtomicU32,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl Batcher {
    /// Checks `token`'s signature, with whatever other checks are waiting,
    /// and reads its claims.
    pub async fn check(&self, token: Unchecked) -> Answer {
        let (reply, answer) = oneshot::channel();
        let leads = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.push(Job { token, reply });
            queue.len() == 1
        };
        if leads {
            // Checks the queue even if this request is dropped while it
            // yields, so no follower waits for a leader that is gone.
            let lead = Lead(self);
            tokio::task::yield_now().await;
            drop(lead);
        }
        // Every queued job is answered by its leader; a lost answer would
        // be a bug, and is a refusal rather than a pass.
        answer.await.unwrap_or_else(|_| {
            Err(Rejected {
                reason: Rejection::BadSignature,
                message: "the signature check was interrupted".into(),
            })
        })
    }

    /// Checks everything queued now.
    fn run(&self) {
        let jobs = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
        let mut jobs = jobs.into_iter().peekable();
        while jobs.peek().is_some() {
            let batch: Vec<Job> = jobs.by_ref().take(MAX_BATCH).collect();
            self.answer(batch);
        }
    }

    fn answer(&self, batch: Vec<Job>) {
        let together = batch.len() > 1 && {
            let distrusted = self
                .distrust
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok();
            !distrusted && {
                let tokens: Vec<&Unchecked> = batch.iter().map(|j| &j.token).collect();
                let good = jwt::verify_together(&tokens);
                if !good {
                    self.distrust.store(DISTRUST, Ordering::Relaxed);
                }
                good
            }
        };
        for job in batch {
            let answer = if together {
                job.token.claims()
            } else {
                job.token.verify().and_then(|()| job.token.claims())
            };
            // The request may have gone away; its answer is not needed.
            let _ = job.reply.send(answer);
        }
    }
}

/// The leader's duty: run the queue when it is dropped.
struct Lead<'a>(&'a Batcher);

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        self.0.run();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::keys::{self, Kek, Signer, VerifyingKey};
    use tessera_core::{Grant, TokenType};

    fn claims(n: u32) -> Claims {
        Claims {
            iss: "tessera".into(),
            sub: "u1".into(),
            jti: format!("t{n}"),
            iat: 1_000,
            nbf: 1_000,
            exp: 2_000,
            typ: TokenType::Api,
            grants: vec![Grant::everything()],
            ver: n,
            generation: 1,
        }
    }

    fn keys() -> (Signer, VerifyingKey) {
        let kek = Kek::generate().expect("kek");
        let pair = keys::generate(&kek).expect("generate");
        let signer = Signer::unseal(&kek, &pair.kid, &pair.sealed_private_key).expect("unseal");
        let verifying = VerifyingKey::from_public(&pair.kid, &pair.public_key).expect("public");
        (signer, verifying)
    }

    /// Concurrent checks share batches, and a bad signature among good
    /// ones is refused alone: every answer is what a check alone gives.
    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_checks_get_the_answers_checks_alone_give() {
        let (signer, key) = keys();
        let (other, _) = keys();
        let batcher = std::sync::Arc::new(Batcher::default());
        let mut tokens = Vec::new();
        for n in 0..150 {
            // Every seventh token is signed by a key the verifier does not
            // hold under that kid: a bad signature.
            let signed_by = if n % 7 == 3 { &other } else { &signer };
            let mut token = jwt::sign(&claims(n), signed_by).expect("sign");
            if n % 7 == 3 {
                // Keep the good kid so the key is found, with a foreign signature.
                let good = jwt::sign(&claims(n), &signer).expect("sign");
                let (head, _) = good.split_once('.').expect("jws");
                let (_, rest) = token.split_once('.').expect("jws");
                token = format!("{head}.{rest}");
            }
            tokens.push(token);
        }
        let tasks: Vec<_> = tokens
            .iter()
            .map(|token| {
                let batcher = batcher.clone();
                let unchecked = Unchecked::read(token, |_| Some(&key)).expect("read");
                tokio::spawn(async move { batcher.check(unchecked).await })
            })
            .collect();
        for (n, (task, token)) in tasks.into_iter().zip(&tokens).enumerate() {
            let answer = task.await.expect("task");
            let alone = jwt::check(token, |_| Some(&key));
            assert_eq!(answer, alone, "token {n}");
            assert_eq!(answer.is_ok(), n % 7 != 3, "token {n}");
        }
        assert!(batcher.queue.lock().expect("lock").is_empty());
    }

    /// A leader dropped while it yields still answers those it leads.
    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_leader_still_answers_its_followers() {
        let (signer, key) = keys();
        let batcher = std::sync::Arc::new(Batcher::default());
        let token = jwt::sign(&claims(1), &signer).expect("sign");
        let unchecked = || Unchecked::read(&token, |_| Some(&key)).expect("read");
        let mut leader = Box::pin(batcher.check(unchecked()));
        // One poll: the leader queues its job and yields.
        assert!(futures_poll_once(leader.as_mut()).is_none());
        let follower = {
            let batcher = batcher.clone();
            let token = unchecked();
            tokio::spawn(async move { batcher.check(token).await })
        };
        tokio::task::yield_now().await;
        drop(leader);
        assert_eq!(follower.await.expect("task"), Ok(claims(1)));
    }

    fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match std::pin::Pin::new(&mut f).poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}
