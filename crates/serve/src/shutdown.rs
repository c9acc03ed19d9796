//! Waiting for the signal to stop, draining what is in flight, and stopping
//! a service's background tasks with it.

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() {
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
        () = ctrl_c => tracing::info!("SIGINT received: shutting down"),
        () = term => tracing::info!("SIGTERM received: shutting down"),
    }
}

/// The start of a shutdown's drain, shared by everything that stops with it.
#[derive(Debug, Clone)]
pub struct Drain {
    tx: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    rx: tokio::sync::watch::Receiver<bool>,
}

impl Default for Drain {
    fn default() -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        Self {
            tx: std::sync::Arc::new(tx),
            rx,
        }
    }
}

impl Drain {
    /// Begins the drain.
    pub fn start(&self) {
        let _ = self.tx.send(true);
    }

    /// Completes once the drain has begun.
    pub fn started(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.rx.clone();
        async move {
            let _ = rx.wait_for(|draining| *draining).await;
        }
    }

    /// Runs `serve` to its end, but no longer than `grace` after the drain
    /// began: calls still running then are dropped.
    pub async fn bounded<E>(
        &self,
        serve: impl std::future::Future<Output = Result<(), E>>,
        grace: std::time::Duration,
    ) -> Result<(), E> {
        let started = self.started();
        tokio::select! {
            result = serve => result,
            () = async {
                started.await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(?grace, "shutdown grace period over: dropping calls still in flight");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Drain;
    use std::time::Duration;

    #[tokio::test]
    async fn a_drain_bounds_a_server_that_does_not_stop() {
        let drain = Drain::default();
        let never = std::future::pending::<Result<(), ()>>();
        drain.start();
        let bounded = drain.bounded(never, Duration::from_millis(20));
        let result = tokio::time::timeout(Duration::from_secs(5), bounded).await;
        assert_eq!(result, Ok(Ok(())), "returns once the grace period is over");
    }

    #[tokio::test]
    async fn a_server_that_stops_by_itself_is_not_held() {
        let drain = Drain::default();
        let result = drain
            .bounded(async { Err::<(), _>("failed") }, Duration::from_secs(60))
            .await;
        assert_eq!(result, Err("failed"));
    }
}

/// A service's background tasks (sync loops, health reporters), aborted
/// when this is dropped: when `run_until` returns, and also when an embedder
/// drops or aborts it unfinished (a test, `tessera dev`), so no loop is left
/// polling the store with its pool open.
#[derive(Debug, Default)]
pub struct Background(Vec<tokio::task::AbortHandle>);

impl Background {
    /// Adds `task`.
    pub fn add<T>(&mut self, task: &tokio::task::JoinHandle<T>) {
        self.0.push(task.abort_handle());
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
