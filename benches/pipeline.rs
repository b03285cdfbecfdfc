//! Throughput of the daemon's hot path: normalise → lifecycle diff → dispatch (routing
//! decision + enqueue, through the daemon's `Dispatcher` with the default every-sink router and
//! one webhook sink) → record → flush,
//! into a real sled store on disk, in batches the size of one poll (one flush per batch, as
//! the poller does).
//!
//! `cargo bench --bench pipeline` prints findings per second for one poller alone and for two
//! pollers at once on the same store (the daemon runs one poller per source and domain on a
//! multi-threaded runtime). Not a test: nothing asserts a time (the README has the figures).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use std::sync::Arc;

use sasrelay::event::EventSwitches;
use sasrelay::finding::{self, Domain};
use sasrelay::pipeline::dispatch::{Dispatched, Dispatcher, Silences, SinkHandle};
use sasrelay::pipeline::lifecycle::{self, Coverage};
use sasrelay::routing::Router;
use sasrelay::sas::models::{Item, SuspEvent};
use sasrelay::sas::normalise::NormaliseContext;
use sasrelay::sinks::{Sink, SinkConfig};
use sasrelay::store::Store;
use serde_json::Value;
use tokio::sync::Notify;

const TOTAL: usize = 20_000;
const BATCH: usize = 1_000;

/// Time spent per stage by one poller.
#[derive(Default)]
struct Stages {
    compute: Duration,
    enqueue: Duration,
    record: Duration,
    flush: Duration,
}

fn main() {
    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/samples/DescribeSuspEvents.json"
        ))
        .expect("sample"),
    )
    .expect("json");
    let template = sample["SuspEvents"][0].clone();
    for pollers in [1usize, 2] {
        let dir =
            std::env::temp_dir().join(format!("sasrelay-bench-{}-{pollers}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).expect("store");
        // Decoding HTTP bodies into items belongs to the Security Center client, not to this
        // path: every poller's pages are built before the clock starts.
        let pages: Vec<Vec<Vec<Item<SuspEvent>>>> = (0..pollers)
            .map(|p| decoded_pages(&template, p * TOTAL, TOTAL / pollers))
            .collect();
        let started = Instant::now();
        let stages: Vec<Stages> = std::thread::scope(|scope| {
            let handles: Vec<_> = pages
                .into_iter()
                .enumerate()
                .map(|(p, pages)| {
                    let store = store.clone();
                    scope.spawn(move || run(&store, pages, &format!("bench{p}")))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("poller"))
                .collect()
        });
        let secs = started.elapsed().as_secs_f64();
        let s = &stages[0];
        println!(
            "pipeline, {pollers} poller(s): {TOTAL} findings (normalise → diff → enqueue → record, flush per {BATCH}) in {secs:.2} s = {:.0} findings/s; store {} MB on disk; poller 0 spent normalise + diff {:.2} s, enqueue {:.2} s, records {:.2} s, flush {:.2} s",
            TOTAL as f64 / secs,
            store
                .stats()
                .map(|s| s.size_on_disk / (1 << 20))
                .unwrap_or(0),
            s.compute.as_secs_f64(),
            s.enqueue.as_secs_f64(),
            s.record.as_secs_f64(),
            s.flush.as_secs_f64()
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `total` distinct alerts from `first` on, as pages of [`BATCH`] decoded items.
fn decoded_pages(template: &Value, first: usize, total: usize) -> Vec<Vec<Item<SuspEvent>>> {
    (0..total / BATCH)
        .map(|batch| {
            (0..BATCH)
                .map(|i| {
                    let mut raw = template.clone();
                    raw["Id"] = Value::from((first + batch * BATCH + i) as i64 + 1_000_000);
                    Item::from_value(raw).expect("item")
                })
                .collect()
        })
        .collect()
}

/// The daemon's dispatcher with no routing configured (every event to every sink) and one
/// webhook sink.
fn dispatcher(store: &Store) -> Dispatcher {
    let config: SinkConfig = toml::from_str(
        "name = \"webhook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\n",
    )
    .expect("sink config");
    let sink = Arc::new(Sink::build(&config).expect("sink"));
    let sinks = [(
        "webhook".to_string(),
        SinkHandle {
            sink,
            wake: Arc::new(Notify::new()),
        },
    )]
    .into();
    Dispatcher::new(
        Router::broadcast(&["webhook"]),
        sinks,
        Arc::new(Silences::load(store.clone()).expect("silences")),
        store.clone(),
        Arc::new(Notify::new()),
    )
}

/// One poller: its pages of new alerts of `source`, one flush per page.
fn run(store: &Store, pages: Vec<Vec<Item<SuspEvent>>>, source: &str) -> Stages {
    let ctx = NormaliseContext::new(source, "cn-hangzhou");
    let dispatcher = dispatcher(store);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let now = time::OffsetDateTime::now_utc();
    let mut t = Stages::default();
    let mut out = Dispatched::default();
    for items in pages {
        let t0 = Instant::now();
        let findings: Vec<finding::Finding> = items
            .into_iter()
            .map(|item| sasrelay::sas::normalise::normalise_alert(&ctx, item))
            .collect();
        let known: BTreeMap<String, sasrelay::record::Record> = BTreeMap::new();
        let mut diff = lifecycle::diff(
            findings,
            &known,
            Coverage::Window,
            EventSwitches::default(),
            false,
            now,
        );
        t.compute += t0.elapsed();
        for change in &mut diff.changes {
            if let Some(event) = change.event.take() {
                let t1 = Instant::now();
                dispatcher
                    .dispatch(event, Some(change.record.generation), now, &mut out)
                    .expect("dispatch");
                t.enqueue += t1.elapsed();
            }
            let t1 = Instant::now();
            store
                .put_record(source, Domain::Alerts, &change.fingerprint, &change.record)
                .expect("record");
            t.record += t1.elapsed();
        }
        let t1 = Instant::now();
        runtime.block_on(store.flush()).expect("flush");
        t.flush += t1.elapsed();
    }
    t
}
