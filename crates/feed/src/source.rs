//! Where a feed finds what its window does not hold, and where token uses
//! reported to it go: the store it reads ([`StoreSource`], an issuer's), or,
//! for a relay, the upstream feed it follows (implemented by the verifier).

use crate::wire::{to_wire, use_from_wire};
use tessera_proto::v1;
use tessera_store::Store;
use tonic::Status;

/// A feed's way back to the log.
#[tonic::async_trait]
pub trait Source: Send + Sync + 'static {
    /// Live events (not pruned by `now`) after `after`, at most `limit`,
    /// with the position they take a follower to. A store stops at
    /// `up_to` (where the window starts); an upstream may send past it,
    /// which the window then continues from.
    async fn backfill(
        &self,
        after: i64,
        up_to: i64,
        now: i64,
        limit: u64,
    ) -> Result<(Vec<v1::RevocationEvent>, i64), String>;

    /// Merges token uses a follower reports; returns the rows changed.
    async fn report(&self, uses: Vec<v1::TokenUse>) -> Result<u64, Status>;
}

/// The store itself: an issuer's feed, or a relay reading its own store.
pub struct StoreSource(pub Store);

#[tonic::async_trait]
impl Source for StoreSource {
    async fn backfill(
        &self,
        after: i64,
        up_to: i64,
        now: i64,
        limit: u64,
    ) -> Result<(Vec<v1::RevocationEvent>, i64), String> {
        let rows = self
            .0
            .event_rows_between(after, up_to, Some(now), limit)
            .await
            .map_err(|e| e.to_string())?;
        let last = match rows.last() {
            Some(row) if rows.len() as u64 == limit => row.seq,
            _ => up_to,
        };
        Ok((rows.into_iter().map(to_wire).collect(), last))
    }

    async fn report(&self, uses: Vec<v1::TokenUse>) -> Result<u64, Status> {
        let mut uses: Vec<_> = uses.into_iter().filter_map(use_from_wire).collect();
        // In id order, as the store asks, so concurrent merges lock rows in
        // one order.
        uses.sort_by(|a, b| a.token_id.cmp(&b.token_id));
        self.0.merge_usage(&uses).await.map_err(|e| {
            tracing::warn!(error = %e, "reported token uses could not be merged");
            Status::unavailable("the issuer cannot merge token uses now; keep them and retry")
        })
    }
}
