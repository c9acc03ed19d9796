//! The revocation feed: `WatchRevocations` on the issuer, and verifiers
//! following it instead of polling the store.

use crate::on_both_backends;
use crate::support::feed::{admin_token, disable, enable, wait_until};
use crate::support::verifier::{VerifierHarness, verifier_config};
use crate::support::{Backend, FEED_SECRET, Harness, bearer, expect_code, issuer_config};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tessera_core::Clock;
use tessera_proto::v1::revocation_feed_service_client::RevocationFeedServiceClient;
use tessera_proto::v1::revocation_feed_service_server::{
    RevocationFeedService, RevocationFeedServiceServer,
};
use tessera_proto::v1::{self, VerifyReason};
use tessera_store::Store;
use tokio_stream::StreamExt as _;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_health::pb::health_check_response::ServingStatus;

/// A verifier beside `issuer` that follows its feed, and polls so rarely
/// that only the feed can explain a change seen within seconds.
fn following(issuer: &Harness, poll: Duration) -> tessera_verifier::VerifierConfig {
    let mut config = verifier_config(issuer.db());
    config.revocation_feed = format!("http://{}", issuer.addr);
    config.sync_interval = poll;
    config
}

async fn watch(
    issuer: &Harness,
    after: i64,
) -> Result<Streaming<v1::WatchRevocationsResponse>, Status> {
    Ok(RevocationFeedServiceClient::new(issuer.channel.clone())
        .watch_revocations(bearer(
            v1::WatchRevocationsRequest { after_seq: after },
            FEED_SECRET,
        ))
        .await?
        .into_inner())
}

/// Reads messages until the position reaches `target`, checking that each
/// continues from the one before; returns the events' sequence numbers.
async fn read_to(
    stream: &mut Streaming<v1::WatchRevocationsResponse>,
    mut position: i64,
    target: i64,
) -> Vec<i64> {
    let mut seqs = Vec::new();
    while position < target {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("a message within 10 s")
            .expect("the stream stays open")
            .expect("not ended");
        assert_eq!(
            message.after_seq, position,
            "each message continues from the last"
        );
        for event in &message.events {
            assert!(
                event.seq > position && event.seq <= message.last_seq,
                "{event:?} in order"
            );
            position = event.seq;
            seqs.push(event.seq);
        }
        position = message.last_seq;
    }
    assert_eq!(position, target, "no message goes past the log's end");
    seqs
}

/// Every live event's sequence number after `after`, as the store has them.
async fn stored(store: &Store, after: i64) -> Vec<i64> {
    store
        .events_after(after, None, 1_000_000)
        .await
        .expect("events")
        .iter()
        .map(|e| e.seq)
        .collect()
}

/// The feed sends every event in order with no gap: from the start, from
/// an old position, across an issuer restart, and as new events commit.
async fn the_feed_sends_every_event_in_order(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let mut ids = Vec::new();
    for n in 0..6 {
        let (token, _) = admin_token(&issuer, &format!("feed {n}")).await;
        disable(&issuer, &token.id).await;
        ids.push(token.id);
    }
    let store = issuer.db().store().await;
    let head = store.last_revocation_seq().await.expect("head");
    assert!(head >= 6, "six disables at least");

    let mut from_start = watch(&issuer, 0).await.expect("watch");
    assert_eq!(
        read_to(&mut from_start, 0, head).await,
        stored(&store, 0).await
    );

    // New events arrive on the open stream as they commit.
    enable(&issuer, &ids[0]).await;
    let head_now = store.last_revocation_seq().await.expect("head");
    let started = tokio::time::Instant::now();
    assert_eq!(
        read_to(&mut from_start, head, head_now).await,
        stored(&store, head).await
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "pushed, not polled: {:?}",
        started.elapsed()
    );

    // A follower coming back with an old position gets exactly what it missed.
    let old = stored(&store, 0).await[2];
    let mut again = watch(&issuer, old).await.expect("watch");
    assert_eq!(
        read_to(&mut again, old, head_now).await,
        stored(&store, old).await
    );

    // After a restart the new issuer serves the same log, and what commits
    // after it.
    let config = issuer_config(issuer.db());
    drop(from_start);
    drop(again);
    let db = issuer.stop().await;
    let issuer = Harness::start_with(db, config).await;
    let mut after_restart = watch(&issuer, old).await.expect("watch");
    assert_eq!(
        read_to(&mut after_restart, old, head_now).await,
        stored(&store, old).await
    );
    disable(&issuer, &ids[0]).await;
    let last = store.last_revocation_seq().await.expect("head");
    assert_eq!(
        read_to(&mut after_restart, head_now, last).await,
        stored(&store, head_now).await
    );

    // Nothing new: a heartbeat carries the position, with no events.
    let heartbeat = tokio::time::timeout(Duration::from_secs(5), after_restart.message())
        .await
        .expect("a heartbeat within 5 s")
        .expect("open")
        .expect("not ended");
    assert_eq!((heartbeat.after_seq, heartbeat.last_seq), (last, last));
    assert!(heartbeat.events.is_empty());

    expect_code(watch(&issuer, -1).await, Code::InvalidArgument);
    issuer.stop().await;
}

/// Only callers presenting the feed secret may follow, loopback or not.
async fn followers_present_the_feed_secret(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let status = expect_code(
        RevocationFeedServiceClient::new(issuer.channel.clone())
            .watch_revocations(v1::WatchRevocationsRequest { after_seq: 0 })
            .await,
        Code::Unauthenticated,
    );
    assert!(status.message().contains("feed secret"), "{status:?}");
    let mut wrong = Request::new(v1::WatchRevocationsRequest { after_seq: 0 });
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer not-it".parse().expect("header"));
    expect_code(
        RevocationFeedServiceClient::new(issuer.channel.clone())
            .watch_revocations(wrong)
            .await,
        Code::Unauthenticated,
    );

    // A verifier with the secret follows; one without it polls.
    let (token, secret) = admin_token(&issuer, "secret feed").await;
    let with = following(&issuer, Duration::from_secs(30));
    let with = VerifierHarness::spawn(with, issuer.clock.clone()).await;
    with.wait_for_health(ServingStatus::Serving).await;
    let mut without = following(&issuer, Duration::from_millis(50));
    without.feed_secret = None;
    let without = VerifierHarness::spawn(without, issuer.clock.clone()).await;
    without.wait_for_health(ServingStatus::Serving).await;
    wait_until("the verifier with the secret follows", || {
        with.shared.metrics.feed_following.get() == 1
    })
    .await;
    disable(&issuer, &token.id).await;
    let took = with.wait_for_reason(&secret, VerifyReason::Disabled).await;
    assert!(
        took < Duration::from_secs(5),
        "pushed: {took:?} with a 30 s poll"
    );
    without
        .wait_for_reason(&secret, VerifyReason::Disabled)
        .await;
    assert_eq!(
        without.shared.metrics.feed_following.get(),
        0,
        "refused, so it polls"
    );
    assert_eq!(
        with.shared.metrics.feed_loads.get(),
        1,
        "its view came from the feed"
    );
    assert_eq!(
        without.shared.metrics.feed_loads.get(),
        0,
        "its view came from the store"
    );
    issuer.stop().await;
}

/// A verifier follows the feed; when the issuer goes, it polls the store,
/// and when the issuer is back it follows again. With both the feed and
/// the store gone it goes stale and fails closed, as with polling alone.
async fn a_cut_feed_falls_back_to_polling_and_back(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let addr = issuer.addr;
    let clock = issuer.clock.clone();
    let (token, secret) = admin_token(&issuer, "cut feed").await;
    let verifier = VerifierHarness::spawn(
        following(&issuer, Duration::from_millis(100)),
        clock.clone(),
    )
    .await;
    verifier.wait_for_health(ServingStatus::Serving).await;
    wait_until("following", || {
        verifier.shared.metrics.feed_following.get() == 1
    })
    .await;
    assert_eq!(verifier.reason(&secret).await, VerifyReason::Ok);

    // The issuer stops: the verifier polls and still sees changes, written
    // straight to the store.
    let mut config = issuer_config(issuer.db());
    let db = issuer.stop().await;
    wait_until("polling after the cut", || {
        verifier.shared.metrics.feed_following.get() == 0
    })
    .await;
    let store = db.store().await;
    let owner = token.owner_id.clone();
    store
        .append_revocation(
            clock.now().timestamp(),
            tessera_store::revocation::NewRevocation::token(
                tessera_store::revocation::EventKind::DisableToken,
                &token.id,
                &owner,
                clock.now().timestamp() + 86_400,
            ),
        )
        .await
        .expect("append");
    verifier
        .wait_for_reason(&secret, VerifyReason::Disabled)
        .await;
    assert_eq!(verifier.health().await, ServingStatus::Serving);

    // The issuer is back on the same address: the verifier follows again,
    // and the feed carries the next change.
    config.listen = addr;
    let issuer = Harness::start_with(db, config).await;
    wait_until("following again", || {
        verifier.shared.metrics.feed_following.get() == 1
    })
    .await;
    // The row never saw the disable written straight to the log, so the
    // issuer disables and enables it again: two events, through the feed.
    disable(&issuer, &token.id).await;
    enable(&issuer, &token.id).await;
    verifier.wait_for_reason(&secret, VerifyReason::Ok).await;

    // Both gone: the log is unreadable to the issuer and the verifier.
    let store = issuer.db().store().await;
    store
        .execute_unprepared("ALTER TABLE revocation_events RENAME TO revocation_events_away")
        .await
        .expect("rename");
    tokio::time::sleep(Duration::from_secs(2)).await;
    clock.advance(chrono::Duration::seconds(31));
    verifier.wait_for_health(ServingStatus::NotServing).await;
    assert_eq!(verifier.reason(&secret).await, VerifyReason::Stale);
    store
        .execute_unprepared("ALTER TABLE revocation_events_away RENAME TO revocation_events")
        .await
        .expect("rename back");
    verifier.wait_for_health(ServingStatus::Serving).await;
    assert_eq!(verifier.reason(&secret).await, VerifyReason::Ok);
    issuer.stop().await;
}

/// A verifier serving the feed relays it: a verifier following the relay
/// (and polling only every 30 s) sees the issuer's changes within seconds.
async fn a_verifier_relays_the_feed_to_others(backend: Backend) {
    let issuer = Harness::start(backend).await;
    let (token, secret) = admin_token(&issuer, "relayed").await;
    let mut relay = following(&issuer, Duration::from_millis(100));
    relay.serve_feed = true;
    let relay = VerifierHarness::spawn(relay, issuer.clock.clone()).await;
    relay.wait_for_health(ServingStatus::Serving).await;
    let mut downstream = verifier_config(issuer.db());
    downstream.revocation_feed = format!("http://{}", relay.addr);
    downstream.sync_interval = Duration::from_secs(30);
    let downstream = VerifierHarness::spawn(downstream, issuer.clock.clone()).await;
    downstream.wait_for_health(ServingStatus::Serving).await;
    wait_until("following the relay", || {
        downstream.shared.metrics.feed_following.get() == 1
    })
    .await;
    assert_eq!(downstream.reason(&secret).await, VerifyReason::Ok);
    disable(&issuer, &token.id).await;
    let took = downstream
        .wait_for_reason(&secret, VerifyReason::Disabled)
        .await;
    assert!(
        took < Duration::from_secs(5),
        "relayed: {took:?} with a 30 s poll"
    );
    issuer.stop().await;
}

/// A follower that stops reading is cut off once its queue has stayed full
/// for `--feed-slow-follower`; coming back from where it was, it gets the
/// rest with nothing skipped.
async fn a_follower_that_falls_behind_is_cut_off_and_resumes(backend: Backend) {
    let db = crate::support::TestDb::new(backend).await;
    let mut config = issuer_config(&db);
    config.feed_slow_follower = Duration::from_millis(300);
    config.feed_heartbeat = Duration::from_millis(20);
    let issuer = Harness::start_with(db, config).await;
    let store = issuer.db().store().await;
    let now = issuer.clock.now().timestamp();
    // Far more than the HTTP/2 stream window (2 MiB) and the queue hold
    // unread: 60,000 events of about 120 bytes, written in one statement.
    let events = 60_000;
    let prune = now + 86_400;
    let columns = "seq, kind, token_id, user_id, issued_before, detail, create_time, prune_after";
    let insert = match store.backend() {
        tessera_store::Backend::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {events}), \
             ids(i, id) AS (SELECT i, printf('01900000-0000-7000-8000-%012x', i) FROM n) \
             INSERT INTO revocation_events ({columns}) \
             SELECT i, 'disable_token', id, id, NULL, 'null', {now}, {prune} FROM ids"
        ),
        tessera_store::Backend::Postgres => format!(
            "INSERT INTO revocation_events ({columns}) \
             SELECT i, 'disable_token', id, id, NULL, 'null', {now}, {prune} FROM \
             (SELECT i, '01900000-0000-7000-8000-' || lpad(to_hex(i), 12, '0') AS id \
              FROM generate_series(1, {events}) AS i) AS ids"
        ),
    };
    store
        .execute_unprepared(&insert)
        .await
        .expect("bulk insert");
    store
        .execute_unprepared(&format!(
            "UPDATE sequences SET value = {events} WHERE name = 'revocation'"
        ))
        .await
        .expect("sequence");
    let head = store.last_revocation_seq().await.expect("head");
    let mut stream = watch(&issuer, 0).await.expect("watch");
    // Not reading: messages wait on flow control, heartbeats fill the
    // queue, and the issuer gives up on this follower.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mut position, mut seqs, mut ended) = (0, Vec::new(), false);
    while !ended && position < head {
        match tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("a message or the end within 10 s")
        {
            Ok(Some(message)) => {
                assert_eq!(message.after_seq, position);
                seqs.extend(message.events.iter().map(|e| e.seq));
                position = message.last_seq;
            }
            Ok(None) | Err(_) => ended = true,
        }
    }
    assert!(
        ended && position < head,
        "cut off at {position} of {head}, not served to the end"
    );
    let mut again = watch(&issuer, position).await.expect("watch again");
    seqs.extend(read_to(&mut again, position, head).await);
    assert_eq!(seqs, stored(&store, 0).await, "every event once, in order");
    issuer.stop().await;
}

on_both_backends!(
    a_follower_that_falls_behind_is_cut_off_and_resumes,
    a_verifier_relays_the_feed_to_others,
    the_feed_sends_every_event_in_order,
    followers_present_the_feed_secret,
    a_cut_feed_falls_back_to_polling_and_back,
);

/// A feed that skips events: the first stream jumps over a sequence
/// number; every request's position is recorded.
#[derive(Clone, Default)]
struct Gappy {
    asked: Arc<Mutex<Vec<i64>>>,
    events: Vec<v1::RevocationEvent>,
    /// The log it claims to serve: the test store's, so it is followed.
    log_id: String,
}

type Messages =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<v1::WatchRevocationsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RevocationFeedService for Gappy {
    type WatchRevocationsStream = Messages;

    async fn watch_revocations(
        &self,
        request: Request<v1::WatchRevocationsRequest>,
    ) -> Result<Response<Messages>, Status> {
        let after = request.get_ref().after_seq;
        let first = {
            let mut asked = self.asked.lock().expect("lock");
            asked.push(after);
            asked.len() == 1
        };
        let later: Vec<_> = self
            .events
            .iter()
            .filter(|e| e.seq > after)
            .cloned()
            .collect();
        let last = self.events.last().map_or(after, |e| e.seq);
        let messages = if first {
            // Event 1 (the follower is caught up, as far as it knows), then
            // a message claiming to continue from 2.
            vec![
                Ok(v1::WatchRevocationsResponse {
                    after_seq: after,
                    events: later[..1].to_vec(),
                    last_seq: later[0].seq,
                    caught_up: true,
                    log_id: self.log_id.clone(),
                    keys: Vec::new(),
                }),
                Ok(v1::WatchRevocationsResponse {
                    after_seq: later[0].seq + 1,
                    events: later[2..].to_vec(),
                    last_seq: last,
                    caught_up: true,
                    log_id: self.log_id.clone(),
                    keys: Vec::new(),
                }),
            ]
        } else {
            vec![Ok(v1::WatchRevocationsResponse {
                after_seq: after,
                events: later,
                last_seq: last,
                caught_up: true,
                log_id: self.log_id.clone(),
                keys: Vec::new(),
            })]
        };
        let stream = tokio_stream::iter(messages).chain(tokio_stream::pending());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn report_usage(
        &self,
        _request: Request<v1::ReportUsageRequest>,
    ) -> Result<Response<v1::ReportUsageResponse>, Status> {
        Err(Status::unimplemented("this fake feed takes no token uses"))
    }
}

/// A follower that sees a gap in the feed does not skip it: it starts over
/// from the last event it holds and ends up with every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_in_the_feed_makes_the_follower_start_over() {
    let issuer = Harness::start(Backend::Sqlite).await;
    let (token, secret) = admin_token(&issuer, "gap").await;
    let owner = token.owner_id.clone();
    let base = issuer
        .db()
        .store()
        .await
        .last_revocation_seq()
        .await
        .expect("head");
    // Three events the store does not have, so only the fake feed can
    // deliver them: disable, enable, disable.
    let kinds = ["disable_token", "enable_token", "disable_token"];
    let events: Vec<v1::RevocationEvent> = kinds
        .iter()
        .enumerate()
        .map(|(n, kind)| v1::RevocationEvent {
            seq: base + 1 + n as i64,
            kind: (*kind).into(),
            token_id: token.id.clone(),
            user_id: owner.clone(),
            issued_before: None,
            detail: "null".into(),
            prune_after: issuer.clock.now().timestamp() + 86_400,
        })
        .collect();
    let log_id = issuer.db().store().await.log_id().await.expect("log id");
    let gappy = Gappy {
        events,
        log_id,
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let feed_addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RevocationFeedServiceServer::new(gappy.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let mut config = verifier_config(issuer.db());
    config.revocation_feed = format!("http://{feed_addr}");
    config.sync_interval = Duration::from_secs(30);
    let verifier = VerifierHarness::spawn(config, issuer.clock.clone()).await;
    verifier.wait_for_health(ServingStatus::Serving).await;
    verifier
        .wait_for_reason(&secret, VerifyReason::Disabled)
        .await;
    wait_until("all three events applied", || {
        verifier.shared.view.last_seq() == base + 3
    })
    .await;
    assert_eq!(verifier.shared.metrics.feed_resyncs.get(), 1);
    // It came back from event 1, the last one it held, not from the gap.
    assert_eq!(*gappy.asked.lock().expect("lock"), vec![base, base + 1]);
    server.abort();
    issuer.stop().await;
}
