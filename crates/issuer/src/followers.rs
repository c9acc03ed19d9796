//! The issuer's view of who follows its revocation feed: streams and lag
//! by follower name, as Prometheus gauges, brought up to date every
//! second from the feed's own list.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use std::time::Duration;
use tessera_feed::Feed;
use tessera_serve::metrics::prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Follower {
    follower: String,
}

/// The gauges, registered once.
#[derive(Clone, Default)]
pub(crate) struct FollowerMetrics {
    streams: Family<Follower, Gauge>,
    lag: Family<Follower, Gauge>,
}

impl FollowerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "feed_followers",
            "Open revocation feed streams, by the name each follower gives",
            metrics.streams.clone(),
        );
        registry.register(
            "feed_follower_lag_events",
            "Events the furthest-behind stream of each follower name has yet to be sent",
            metrics.lag.clone(),
        );
        metrics
    }

    /// Keeps the gauges in line with `feed`; never returns. Names that
    /// stopped following disappear at the next update.
    pub async fn follow(self, feed: Arc<Feed>) {
        loop {
            let now = feed.followers();
            self.streams.clear();
            self.lag.clear();
            for f in now {
                let label = Follower { follower: f.name };
                self.streams
                    .get_or_create(&label)
                    .set(i64::try_from(f.streams).unwrap_or(i64::MAX));
                self.lag.get_or_create(&label).set(f.lag);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
