//! Throughput of the daemon's hot path: normalise → lifecycle diff → enqueue → record → flush,
//! into a real sled store on disk, in batches the size of one poll.
//!
//! `cargo bench --bench pipeline` prints findings per second. Not a test: nothing asserts a
//! time (see the README for the figures measured on the project machine).

use std::collections::BTreeMap;
use std::time::Instant;

use sasrelay::event::{OutboxEntry, Payload};
use sasrelay::finding::{self, NormaliseContext};
use sasrelay::lifecycle::{self, Coverage, EventSwitches};
use sasrelay::sas::models::{Item, SuspEvent};
use sasrelay::store::Store;
use serde_json::Value;

const TOTAL: usize = 20_000;
const BATCH: usize = 1_000;

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
    let dir = std::env::temp_dir().join(format!("sasrelay-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir).expect("store");
    let ctx = NormaliseContext::new("bench", "cn-hangzhou");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let now = time::OffsetDateTime::now_utc();
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;

    let started = Instant::now();
    let mut enqueued = 0usize;
    let (mut t_compute, mut t_enqueue, mut t_record, mut t_flush) = (
        std::time::Duration::ZERO,
        std::time::Duration::ZERO,
        std::time::Duration::ZERO,
        std::time::Duration::ZERO,
    );
    for batch in 0..TOTAL / BATCH {
        let t0 = Instant::now();
        let findings: Vec<finding::Finding> = (0..BATCH)
            .map(|i| {
                let mut raw = template.clone();
                raw["Id"] = Value::from((batch * BATCH + i) as i64 + 1_000_000);
                let item: Item<SuspEvent> = Item::from_value(raw).expect("item");
                finding::normalise_alert(&ctx, &item)
            })
            .collect();
        let known: BTreeMap<String, lifecycle::Record> = BTreeMap::new();
        let mut diff = lifecycle::diff(
            findings,
            &known,
            Coverage::Window,
            EventSwitches::default(),
            false,
            now,
        );
        t_compute += t0.elapsed();
        for change in &mut diff.changes {
            if let Some(event) = change.event.take() {
                let t = Instant::now();
                let entry = OutboxEntry::new(Payload::Event(event), now_ms);
                store.enqueue("webhook", &entry).expect("enqueue");
                enqueued += 1;
                t_enqueue += t.elapsed();
            }
            let t = Instant::now();
            store
                .put_record("bench", event_domain(), &change.fingerprint, &change.record)
                .expect("record");
            t_record += t.elapsed();
        }
        let t = Instant::now();
        runtime.block_on(store.flush()).expect("flush");
        t_flush += t.elapsed();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "pipeline: {TOTAL} findings (normalise → diff → enqueue → record, flush per {BATCH}) in {secs:.2} s = {:.0} findings/s; {enqueued} outbox entries; store {} MB on disk",
        TOTAL as f64 / secs,
        store
            .stats()
            .map(|s| s.size_on_disk / (1 << 20))
            .unwrap_or(0)
    );
    println!(
        "  of which: normalise + diff {:.2} s, enqueue {:.2} s, records {:.2} s, flush {:.2} s",
        t_compute.as_secs_f64(),
        t_enqueue.as_secs_f64(),
        t_record.as_secs_f64(),
        t_flush.as_secs_f64()
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

fn event_domain() -> sasrelay::finding::Domain {
    sasrelay::finding::Domain::Alerts
}
