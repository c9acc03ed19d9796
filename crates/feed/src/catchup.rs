//! Catch-up pages shared between followers: verifiers starting together
//! ask for the same pages from the same positions (0, then each page's
//! end), so each page is read from the source once and handed to all of
//! them. Pages are kept a short while and few at a time: the saving is
//! for followers that start within seconds of each other, and the memory
//! stays bounded.

use crate::source::Source;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tessera_proto::v1;
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// One page of events and the position it takes a follower to.
pub type Page = Arc<(Vec<v1::RevocationEvent>, i64)>;

/// Most pages kept (about 2 MB each at 5,000 events).
const KEPT: usize = 16;

/// How long a page is kept for followers that come later.
const KEPT_FOR: Duration = Duration::from_secs(10);

/// A page being read or read: when it was first asked for, and the cell
/// every follower asking for it waits on.
type Slot = (Instant, Arc<OnceCell<Page>>);

#[derive(Default)]
pub(crate) struct Pages {
    /// By the position a page starts after and the window base it stops at.
    pages: Mutex<HashMap<(i64, i64), Slot>>,
}

impl Pages {
    /// The page after `after` up to `up_to`, read from `source` by the
    /// first follower to ask and shared with the others.
    pub(crate) async fn get(
        &self,
        source: &dyn Source,
        after: i64,
        up_to: i64,
        now: i64,
        limit: u64,
    ) -> Result<Page, String> {
        let cell = {
            let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
            pages.retain(|_, (made, _)| made.elapsed() < KEPT_FOR);
            let oldest = pages
                .iter()
                .min_by_key(|(_, (made, _))| *made)
                .map(|(k, _)| *k);
            if pages.len() >= KEPT
                && !pages.contains_key(&(after, up_to))
                && let Some(oldest) = oldest
            {
                pages.remove(&oldest);
            }
            pages
                .entry((after, up_to))
                .or_insert_with(|| (Instant::now(), Arc::new(OnceCell::new())))
                .1
                .clone()
        };
        let page = cell
            .get_or_try_init(|| async {
                source
                    .backfill(after, up_to, now, limit)
                    .await
                    .map(Arc::new)
            })
            .await;
        if page.is_err() {
            // A failed read is not kept: the next follower tries again.
            let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
            pages.remove(&(after, up_to));
        }
        page.cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counting(AtomicUsize);

    #[tonic::async_trait]
    impl Source for Counting {
        async fn backfill(
            &self,
            after: i64,
            up_to: i64,
            _now: i64,
            _limit: u64,
        ) -> Result<(Vec<v1::RevocationEvent>, i64), String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            let event = v1::RevocationEvent {
                seq: after + 1,
                ..Default::default()
            };
            Ok((vec![event], up_to))
        }

        async fn report(&self, _uses: Vec<v1::TokenUse>) -> Result<u64, tonic::Status> {
            Ok(0)
        }
    }

    #[tokio::test]
    async fn followers_asking_for_the_same_page_read_it_once() {
        let source = Arc::new(Counting::default());
        let pages = Arc::new(Pages::default());
        let mut asks = Vec::new();
        for _ in 0..50 {
            let (source, pages) = (source.clone(), pages.clone());
            asks.push(tokio::spawn(async move {
                pages.get(source.as_ref(), 0, 10, 0, 5).await
            }));
        }
        for ask in asks {
            let page = ask.await.expect("task").expect("page");
            assert_eq!(page.1, 10);
            assert_eq!(page.0[0].seq, 1);
        }
        assert_eq!(source.0.load(Ordering::SeqCst), 1, "read once for 50");
        pages
            .get(source.as_ref(), 3, 10, 0, 5)
            .await
            .expect("another page");
        assert_eq!(source.0.load(Ordering::SeqCst), 2);
    }
}
