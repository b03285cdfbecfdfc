//! Several deliveries in flight per sink: the worker keeps up to `concurrency` requests open
//! against a slow receiver, never more; events about one finding never overlap (a `resolved`
//! is sent only once its `new` was answered); a `Retry-After` stops new requests, not those
//! in flight; an enqueue starts at once while a slow request is open; a stop lands every
//! request in flight, acked, and starts none.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::routing::post;
use sasrelay::config::DeliverySettings;
use sasrelay::daemon::tasks;
use sasrelay::event::{Event, EventKind, OutboxEntry};
use sasrelay::finding::Severity;
use sasrelay::pipeline::delivery::Worker;
use sasrelay::store::Store;
use serde_json::Value;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::sinkkit::{finding, lock, sink};

/// How long the receiver holds a `new` before answering: long enough that every request the
/// worker starts together is open at once, even on a loaded machine.
const HOLD_NEW: Duration = Duration::from_millis(300);
const CONCURRENCY: usize = 8;

/// One request as the receiver saw it: a global sequence number when it arrived and when it
/// was answered.
#[derive(Clone, Debug)]
struct Seen {
    id: String,
    kind: String,
    fingerprint: String,
    arrived: u64,
    answered: u64,
    arrived_at: Instant,
    answered_at: Instant,
    status: u16,
    /// The client's address: one per TCP connection.
    peer: SocketAddr,
}

#[derive(Default)]
struct Receiver {
    /// Answer the first request `429` with `Retry-After` (`retry_after`, default 1 s), at once.
    throttle_first: bool,
    /// The `Retry-After` of that answer, in seconds (`None`: 1).
    retry_after: Option<&'static str>,
    /// Hold the first request this long instead of [`HOLD_NEW`].
    hold_first: Option<Duration>,
    clock: Mutex<u64>,
    open: Mutex<usize>,
    most_open: Mutex<usize>,
    seen: Mutex<Vec<Seen>>,
    bump: Option<watch::Sender<usize>>,
    /// Requests arrived so far, for a test waiting on an open request.
    arrivals: watch::Sender<u64>,
}

impl Receiver {
    fn tick(&self) -> u64 {
        let mut c = lock(&self.clock);
        *c += 1;
        *c
    }
}

async fn hook(
    State(rx): State<Arc<Receiver>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> (axum::http::StatusCode, [(&'static str, &'static str); 1]) {
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let arrived_at = Instant::now();
    let arrived = rx.tick();
    rx.arrivals.send_modify(|n| *n += 1);
    {
        let mut open = lock(&rx.open);
        *open += 1;
        let mut most = lock(&rx.most_open);
        *most = (*most).max(*open);
    }
    let kind = v["kind"].as_str().unwrap_or_default().to_string();
    let status = if rx.throttle_first && arrived == 1 {
        axum::http::StatusCode::TOO_MANY_REQUESTS
    } else {
        match rx.hold_first {
            Some(hold) if arrived == 1 => tokio::time::sleep(hold).await,
            _ if kind == "new" => tokio::time::sleep(HOLD_NEW).await,
            _ => {}
        }
        axum::http::StatusCode::NO_CONTENT
    };
    *lock(&rx.open) -= 1;
    let answered = rx.tick();
    let seen = Seen {
        id: v["id"].as_str().unwrap_or_default().to_string(),
        kind,
        fingerprint: v["finding"]["fingerprint"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        arrived,
        answered,
        arrived_at,
        answered_at: Instant::now(),
        status: status.as_u16(),
        peer,
    };
    let n = {
        let mut all = lock(&rx.seen);
        all.push(seen);
        all.len()
    };
    if let Some(b) = &rx.bump {
        b.send_replace(n);
    }
    (status, [("retry-after", rx.retry_after.unwrap_or("1"))])
}

async fn receiver() -> (SocketAddr, Arc<Receiver>, watch::Receiver<usize>) {
    receiver_with(Receiver::default()).await
}

async fn receiver_with(state: Receiver) -> (SocketAddr, Arc<Receiver>, watch::Receiver<usize>) {
    let (tx, rx) = watch::channel(0);
    let state = Arc::new(Receiver {
        bump: Some(tx),
        ..state
    });
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, state, rx)
}

fn about(kind: EventKind, n: usize) -> Event {
    Event::about(
        kind,
        finding(n, &format!("finding {n}"), Severity::High),
        0,
        "",
        None,
        time::OffsetDateTime::now_utc(),
    )
}

fn webhook(addr: SocketAddr) -> sasrelay::sinks::Sink {
    sink(
        &format!(
            "name = \"hook\"\ntype = \"webhook\"\nurl = \"http://{addr}/hook\"\nconcurrency = {CONCURRENCY}\n"
        ),
        &[],
    )
}

/// A store holding a `new` about each of `findings` findings, due now.
fn store_of_news(dir: &std::path::Path, findings: usize) -> Store {
    let store = Store::open(&dir.join("state")).unwrap();
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    for n in 0..findings {
        let entry = OutboxEntry::new(about(EventKind::New, n).into(), now_ms);
        store.enqueue("hook", &entry).unwrap();
    }
    store
}

/// Runs a worker until the receiver has answered `n` requests, then stops it (its stop lands
/// what is in flight).
async fn deliver_until(
    sink: Arc<sasrelay::sinks::Sink>,
    store: &Store,
    policy: DeliverySettings,
    bumps: &mut watch::Receiver<usize>,
    n: usize,
) {
    let token = CancellationToken::new();
    let worker = Worker::new(sink, store.clone(), policy, Arc::new(Notify::new()));
    let task = tokio::spawn(tasks::run(worker, token.clone()));
    wait_for(bumps, n).await;
    token.cancel();
    task.await.unwrap();
}

async fn wait_for(rx: &mut watch::Receiver<usize>, n: usize) {
    tokio::time::timeout(Duration::from_secs(60), rx.wait_for(|seen| *seen >= n))
        .await
        .unwrap_or_else(|_| panic!("the receiver did not see {n} answered requests"))
        .unwrap();
}

/// 24 findings, each a `new` directly followed in the outbox by its `resolved`: the worker
/// keeps exactly `concurrency` requests open, over as many kept-alive connections at most, and
/// no `resolved` arrives before its `new` was answered, although the receiver answers every
/// `resolved` at once and holds every `new`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_overlap_up_to_the_limit_and_one_findings_events_never_do() {
    const FINDINGS: usize = 24;
    let (addr, rx, mut bumps) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state")).unwrap();
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    for n in 0..FINDINGS {
        for kind in [EventKind::New, EventKind::Resolved] {
            let entry = OutboxEntry::new(about(kind, n).into(), now_ms);
            store.enqueue("hook", &entry).unwrap();
        }
    }
    let sink = Arc::new(webhook(addr));
    deliver_until(sink, &store, Default::default(), &mut bumps, 2 * FINDINGS).await;

    assert_eq!(store.depth("hook"), 0, "every entry acked");
    let seen = lock(&rx.seen).clone();
    assert_eq!(seen.len(), 2 * FINDINGS, "each event once: {seen:#?}");
    let most = *lock(&rx.most_open);
    assert_eq!(
        most, CONCURRENCY,
        "requests open at once: the limit, reached"
    );
    let connections: std::collections::HashSet<SocketAddr> = seen.iter().map(|s| s.peer).collect();
    assert!(
        connections.len() <= CONCURRENCY,
        "{} connections for {} requests: not kept alive",
        connections.len(),
        seen.len()
    );
    let mut by_finding: HashMap<&str, HashMap<&str, &Seen>> = HashMap::new();
    for s in &seen {
        by_finding
            .entry(&s.fingerprint)
            .or_default()
            .insert(&s.kind, s);
    }
    assert_eq!(by_finding.len(), FINDINGS);
    for (fp, kinds) in &by_finding {
        let (new, resolved) = (kinds["new"], kinds["resolved"]);
        assert!(
            resolved.arrived > new.answered,
            "finding {fp}: its resolved ({}) arrived before its new ({}) was answered",
            resolved.id,
            new.id
        );
    }
}

/// A stop while requests are open lands them all — each answered request acked, none sent
/// twice — and starts no new one; a new worker then sends exactly the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_lands_the_requests_in_flight_and_starts_none() {
    const FINDINGS: usize = 40;
    let (addr, rx, mut bumps) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let store = store_of_news(dir.path(), FINDINGS);
    let sink = Arc::new(webhook(addr));
    // The first wave answered: the second is open now (the worker refills at once).
    let policy = DeliverySettings::default();
    deliver_until(sink.clone(), &store, policy, &mut bumps, CONCURRENCY).await;
    let sent = lock(&rx.seen).len();
    assert!(
        (CONCURRENCY..FINDINGS).contains(&sent),
        "the stop let {sent} of {FINDINGS} through"
    );
    assert_eq!(
        store.depth("hook"),
        (FINDINGS - sent) as u64,
        "every answered request acked, nothing else"
    );
    assert_eq!(*lock(&rx.open), 0, "no request left open");

    deliver_until(sink, &store, policy, &mut bumps, FINDINGS).await;
    let seen = lock(&rx.seen).clone();
    let mut ids: Vec<&str> = seen.iter().map(|s| s.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), FINDINGS, "each event exactly once");
    assert_eq!(seen.len(), FINDINGS, "each event exactly once");
    assert_eq!(store.depth("hook"), 0);
}

/// The first request is answered `429` with `Retry-After: 1` while seven others are open: those
/// land (acked), no new request starts for a second, then the throttled event goes again and
/// the rest follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_holds_new_requests_back_and_lets_those_in_flight_land() {
    retry_after_holds_the_sink("1", Duration::from_millis(950)).await;
}

/// A `Retry-After` of several seconds holds the whole sink for all of it (longer than the
/// worker's 5 s store pause and its other short waits): the receiver asked for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_retry_after_holds_the_whole_sink() {
    retry_after_holds_the_sink("7", Duration::from_millis(6_950)).await;
}

async fn retry_after_holds_the_sink(retry_after: &'static str, at_least: Duration) {
    const FINDINGS: usize = 20;
    let (addr, rx, mut bumps) = receiver_with(Receiver {
        throttle_first: true,
        retry_after: Some(retry_after),
        ..Receiver::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = store_of_news(dir.path(), FINDINGS);
    // A short backoff of its own, so the receiver's Retry-After is what the worker waits by.
    let policy = DeliverySettings {
        retry_initial_delay: Duration::from_millis(100),
        ..DeliverySettings::default()
    };
    let sink = Arc::new(webhook(addr));
    deliver_until(sink, &store, policy, &mut bumps, FINDINGS + 1).await;

    let mut seen = lock(&rx.seen).clone();
    seen.sort_by_key(|s| s.arrived);
    assert_eq!(seen.len(), FINDINGS + 1, "{seen:#?}");
    let throttled = &seen[0];
    assert_eq!(throttled.status, 429);
    // The first `CONCURRENCY` arrivals were started together; every later one only after the
    // worker had the 429.
    let in_flight = seen[1..CONCURRENCY]
        .iter()
        .filter(|s| s.status == 204)
        .count();
    assert_eq!(in_flight, CONCURRENCY - 1, "those in flight landed");
    for (rank, s) in seen.iter().enumerate().skip(CONCURRENCY) {
        let after = s
            .arrived_at
            .saturating_duration_since(throttled.answered_at);
        assert!(
            after >= at_least,
            "request {rank} ({}) started {after:?} after a Retry-After of {retry_after} s",
            s.id
        );
    }
    let again = seen[1..].iter().filter(|s| s.id == throttled.id).count();
    assert_eq!(again, 1, "the throttled event was sent again, once");
    assert_eq!(store.depth("hook"), 0);
}

/// One request is open for 3 s when a new entry is enqueued: the wake-up starts it at once
/// (there is room), so it is answered long before the slow one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_starts_at_once_while_a_slow_request_is_open() {
    let (addr, rx, mut bumps) = receiver_with(Receiver {
        hold_first: Some(Duration::from_secs(3)),
        ..Receiver::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = store_of_news(dir.path(), 1);
    let wake = Arc::new(Notify::new());
    let token = CancellationToken::new();
    let worker = Worker::new(
        Arc::new(webhook(addr)),
        store.clone(),
        DeliverySettings::default(),
        wake.clone(),
    );
    let task = tokio::spawn(tasks::run(worker, token.clone()));
    // The slow request is open once it has arrived (it is held 3 s).
    let mut arrivals = rx.arrivals.subscribe();
    tokio::time::timeout(Duration::from_secs(30), arrivals.wait_for(|n| *n >= 1))
        .await
        .expect("the first request reached the receiver")
        .unwrap();
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let entry = OutboxEntry::new(about(EventKind::New, 1).into(), now_ms);
    store.enqueue("hook", &entry).unwrap();
    wake.notify_one();
    wait_for(&mut bumps, 2).await;
    token.cancel();
    task.await.unwrap();
    let seen = lock(&rx.seen).clone();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    let (slow, quick) = (&seen[1], &seen[0]);
    assert!(slow.arrived < quick.arrived, "{seen:#?}");
    assert!(
        quick.answered < slow.answered,
        "the enqueued entry waited for the slow request: {seen:#?}"
    );
}
