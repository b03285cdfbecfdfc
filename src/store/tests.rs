//! Unit and model tests of the store against real sled directories.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;

use super::*;
use crate::event::{Digest, EVENT_SCHEMA, Event, EventKind, Payload, Summary};
use crate::finding::Resolution;

fn entry(id: &str, now_ms: i64) -> OutboxEntry {
    OutboxEntry::new(
        Payload::from(Event {
            schema: EVENT_SCHEMA,
            id: id.to_string(),
            kind: EventKind::Summary,
            source: "prod".to_string(),
            domain: Domain::Alerts,
            observed_at: OffsetDateTime::UNIX_EPOCH,
            resolution: None,
            finding: None,
            summary: Some(Summary {
                tracked: 1,
                message: "m".to_string(),
            }),
            possible_repeat: false,
            handled_by: None,
        }),
        now_ms,
    )
}

fn letter(e: OutboxEntry) -> DeadLetter {
    DeadLetter {
        entry: e,
        dead_at_ms: 9,
        reason: "410 gone".to_string(),
        last_response: None,
        unreadable: None,
    }
}

fn record(status: RecordStatus, resolved_at_ms: Option<i64>) -> Record {
    Record {
        v: crate::record::RECORD_SCHEMA,
        id: "alert:1".to_string(),
        status,
        generation: 0,
        first_seen_ms: 1,
        last_seen_ms: 2,
        occurrence: String::new(),
        resolved_at_ms,
        resolution: resolved_at_ms.map(|_| Resolution::Handled),
        last: crate::record::Remembered::unknown(crate::finding::Domain::Alerts, "src"),
        absent_sweeps: 0,
    }
}

fn ids(due: &[(u64, OutboxEntry)]) -> Vec<&str> {
    due.iter().map(|(_, e)| e.payload.id()).collect()
}

#[test]
fn store_is_send_sync_and_flush_is_send() {
    fn send_sync<T: Send + Sync + Clone>() {}
    fn send<T: Send>(_: T) {}
    send_sync::<Store>();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    send(store.flush());
}

#[test]
fn a_panic_inside_sled_becomes_a_corrupt_error() {
    let err = catch_panic(Path::new("/d"), || -> u8 {
        panic!("tried to serialize {}", "x")
    })
    .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(
            "state directory /d is corrupt (sled panicked reading it: tried to serialize x)"
        ),
        "{err}"
    );
    assert_eq!(catch_panic(Path::new("/d"), || 7).unwrap(), 7);
}

#[test]
fn enqueueing_the_same_payload_twice_keeps_one_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let first = store.enqueue("hook", &entry("p1", 10)).unwrap();
    let Enqueued::Inserted(seq) = first else {
        panic!("first enqueue was {first:?}")
    };
    assert_eq!(
        store.enqueue("hook", &entry("p1", 20)).unwrap(),
        Enqueued::Duplicate(seq)
    );
    assert_eq!(store.depth("hook"), 1);
    assert_eq!(store.due("hook", i64::MAX, 10).unwrap().len(), 1);
    assert_eq!(store.enqueued_seq("hook", "p1").unwrap(), Some(seq));
    // Another sink has its own outbox and guards.
    assert!(matches!(
        store.enqueue("chat", &entry("p1", 10)).unwrap(),
        Enqueued::Inserted(s) if s != seq
    ));
    assert_eq!(store.depth("chat"), 1);
    assert_eq!(store.sinks_with_entries(), vec!["chat", "hook"]);
}

#[test]
fn due_returns_due_entries_oldest_first_up_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for (id, at) in [("a", 100), ("b", 50), ("c", 300), ("d", 50)] {
        let mut e = entry(id, 0);
        e.next_attempt_at_ms = at;
        store.enqueue("s", &e).unwrap();
    }
    assert_eq!(store.next_due_at("s"), Some(50));
    assert!(store.due("s", 49, 10).unwrap().is_empty());
    assert_eq!(ids(&store.due("s", 50, 10).unwrap()), ["b", "d"]);
    assert_eq!(ids(&store.due("s", 100, 10).unwrap()), ["a", "b", "d"]);
    assert_eq!(ids(&store.due("s", 100, 2).unwrap()), ["a", "b"]);
    assert_eq!(
        ids(&store.due("s", 1000, 10).unwrap()),
        ["a", "b", "c", "d"]
    );
    assert!(store.due("s", 1000, 0).unwrap().is_empty());
    assert!(store.due("nobody", 1000, 10).unwrap().is_empty());
    assert_eq!(store.next_due_at("nobody"), None);
    assert_eq!(store.oldest_enqueued_at("s"), Some(0));
    let seqs: Vec<u64> = store
        .due("s", 1000, 10)
        .unwrap()
        .iter()
        .map(|d| d.0)
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[test]
fn ack_removes_the_entry_but_keeps_the_guard() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let seq = store.enqueue("s", &entry("p", 0)).unwrap().seq();
    assert!(store.ack("s", seq).unwrap());
    assert!(!store.ack("s", seq).unwrap(), "second ack finds nothing");
    assert!(!store.ack("other", seq).unwrap());
    assert_eq!(store.depth("s"), 0);
    assert_eq!(store.next_due_at("s"), None);
    assert!(store.sinks_with_entries().is_empty());
    assert_eq!(
        store.enqueue("s", &entry("p", 5)).unwrap(),
        Enqueued::Duplicate(seq),
        "a re-poll after delivery must not enqueue again"
    );
    assert_eq!(store.depth("s"), 0);
}

#[test]
fn reschedule_updates_in_place_and_refuses_what_it_should() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let seq = store.enqueue("s", &entry("p", 0)).unwrap().seq();
    let mut e = entry("p", 0);
    e.attempts = 1;
    e.next_attempt_at_ms = 500;
    e.last_error = Some("503".to_string());
    assert!(store.reschedule("s", seq, &e).unwrap());
    assert!(store.due("s", 499, 10).unwrap().is_empty());
    assert_eq!(store.next_due_at("s"), Some(500));
    assert_eq!(store.due("s", 500, 10).unwrap(), vec![(seq, e.clone())]);
    assert_eq!(store.depth("s"), 1);

    let err = store.reschedule("s", seq, &entry("q", 0)).unwrap_err();
    assert!(matches!(err, StoreError::WrongEntry { .. }), "{err}");

    store.ack("s", seq).unwrap();
    assert!(
        !store.reschedule("s", seq, &e).unwrap(),
        "acked entries stay gone"
    );
    assert!(store.due("s", i64::MAX, 10).unwrap().is_empty());
}

#[test]
fn old_dead_letters_are_pruned_and_recent_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for (id, dead_at_ms) in [("old", 100), ("new", 900)] {
        let seq = store.enqueue("s", &entry(id, 0)).unwrap().seq();
        let mut l = letter(entry(id, 0));
        l.dead_at_ms = dead_at_ms;
        assert!(store.dead_letter("s", seq, &l).unwrap());
    }
    assert_eq!(store.prune_dead_letters(500).unwrap(), 1);
    let left = store.dead_letters("s").unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].1.entry.payload.id(), "new");
    assert_eq!(store.stats().unwrap().sinks["s"].dead_letters, 1);
    assert_eq!(store.prune_dead_letters(500).unwrap(), 0);
}

#[test]
fn dead_letter_moves_the_entry_aside() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let seq = store.enqueue("s", &entry("p", 0)).unwrap().seq();
    let other = store.enqueue("s", &entry("q", 0)).unwrap().seq();
    assert!(store.dead_letter("s", seq, &letter(entry("p", 0))).unwrap());
    assert!(!store.dead_letter("s", seq, &letter(entry("p", 0))).unwrap());
    assert_eq!(store.depth("s"), 1);
    assert_eq!(ids(&store.due("s", i64::MAX, 10).unwrap()), ["q"]);
    assert_eq!(
        store.dead_letters("s").unwrap(),
        vec![(seq, letter(entry("p", 0)))]
    );
    let stats = store.stats().unwrap();
    assert_eq!(stats.sinks["s"].dead_letters, 1);
    assert_eq!(stats.sinks["s"].depth, 1);
    assert!(stats.size_on_disk > 0);
    assert_eq!(
        store.enqueue("s", &entry("p", 0)).unwrap(),
        Enqueued::Duplicate(seq)
    );
    assert_eq!(
        store.remove_dead_letter("s", seq).unwrap(),
        Some(letter(entry("p", 0)))
    );
    assert_eq!(store.remove_dead_letter("s", seq).unwrap(), None);
    assert_eq!(store.stats().unwrap().sinks["s"].dead_letters, 0);
    assert!(store.ack("s", other).unwrap());
}

#[test]
fn prune_drops_old_resolved_records_and_expired_guards_of_finished_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let d = Domain::Alerts;
    store
        .put_record("src", d, "old", &record(RecordStatus::Resolved, Some(100)))
        .unwrap();
    store
        .put_record(
            "src",
            d,
            "recent",
            &record(RecordStatus::Resolved, Some(950)),
        )
        .unwrap();
    store
        .put_record("src", d, "active", &record(RecordStatus::Active, None))
        .unwrap();

    let acked = store.enqueue("s", &entry("acked", 100)).unwrap().seq();
    store.ack("s", acked).unwrap();
    let pending = store.enqueue("s", &entry("pending", 100)).unwrap().seq();
    let dead = store.enqueue("s", &entry("dead", 100)).unwrap().seq();
    store
        .dead_letter("s", dead, &letter(entry("dead", 100)))
        .unwrap();
    let fresh = store.enqueue("s", &entry("fresh", 950)).unwrap().seq();
    store.ack("s", fresh).unwrap();

    let report = store.prune(1000, 100, 100).unwrap();
    assert_eq!(
        report,
        PruneReport {
            records_removed: 1,
            guards_removed: 2,
            guards_kept_pending: 1
        }
    );
    assert_eq!(store.get_record("src", d, "old").unwrap(), None);
    assert!(store.get_record("src", d, "recent").unwrap().is_some());
    assert!(store.get_record("src", d, "active").unwrap().is_some());
    assert_eq!(store.enqueued_seq("s", "acked").unwrap(), None);
    assert_eq!(store.enqueued_seq("s", "dead").unwrap(), None);
    assert_eq!(store.enqueued_seq("s", "pending").unwrap(), Some(pending));
    assert_eq!(store.enqueued_seq("s", "fresh").unwrap(), Some(fresh));
    assert_eq!(store.guard_count(), 2);
    // After its guard expired, a payload is new again.
    assert!(matches!(
        store.enqueue("s", &entry("acked", 1000)).unwrap(),
        Enqueued::Inserted(s) if s != acked
    ));
    assert_eq!(
        store.prune(1000, 100, 100).unwrap(),
        PruneReport {
            records_removed: 0,
            guards_removed: 0,
            guards_kept_pending: 1
        }
    );
}

#[test]
fn record_scans_do_not_leak_across_sources_and_domains() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let scopes = [
        ("a", Domain::Alerts),
        ("a\0x", Domain::Alerts),
        ("a\0", Domain::Alerts),
        ("a", Domain::Baseline),
        ("ab", Domain::Alerts),
        ("", Domain::Alerts),
    ];
    for (i, (source, domain)) in scopes.iter().enumerate() {
        for fp in ["f1", "f2"] {
            let mut r = record(RecordStatus::Active, None);
            r.id = format!("{i}/{fp}");
            store.put_record(source, *domain, fp, &r).unwrap();
        }
        // A fingerprint that spells out another scope's key.
        let mut r = record(RecordStatus::Active, None);
        r.id = format!("{i}/tricky");
        store.put_record(source, *domain, "\0x\0f1", &r).unwrap();
    }
    for (i, (source, domain)) in scopes.iter().enumerate() {
        let got = store.records(source, *domain).unwrap();
        let fps: Vec<&str> = got.iter().map(|(fp, _)| fp.as_str()).collect();
        assert_eq!(fps, ["\0x\0f1", "f1", "f2"], "scope {source:?}/{domain:?}");
        assert!(got.iter().all(|(_, r)| r.id.starts_with(&format!("{i}/"))));
    }
    assert!(store.remove_record("a", Domain::Alerts, "f1").unwrap());
    assert!(!store.remove_record("a", Domain::Alerts, "f1").unwrap());
    assert_eq!(store.records("a", Domain::Alerts).unwrap().len(), 2);
    assert_eq!(store.records("a\0x", Domain::Alerts).unwrap().len(), 3);
    assert!(store.records("a", Domain::Firewall).unwrap().is_empty());
}

#[test]
fn cursors_round_trip_per_scope() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.cursor("a", Domain::Alerts).unwrap(), None);
    let c = Cursor {
        v: CURSOR_SCHEMA,
        watermark_ms: Some(42),
        initialised: true,
        last_success_ms: 43,
        probe: Some("c1:1/2/3".into()),
        last_sweep_ms: Some(40),
        backfill: Some(Backfill {
            remainders: vec![Remainder {
                cluster: Some("c1".into()),
                listing: "pending_alerts".into(),
                since_ms: None,
                until_ms: Some(44),
                page: 200,
                cut_ms: 41,
                first_start: true,
            }],
            tracked: 7,
        }),
    };
    store.set_cursor("a", Domain::Alerts, &c).unwrap();
    assert_eq!(store.cursor("a", Domain::Alerts).unwrap(), Some(c));
    // A cursor written before backfills existed still reads.
    let old = br#"{"v":1,"watermark_ms":5,"initialised":true,"last_success_ms":6}"#;
    let old: Cursor = serde_json::from_slice(old).unwrap();
    assert_eq!(old.backfill, None);
    assert_eq!(store.cursor("a", Domain::Firewall).unwrap(), None);
    assert_eq!(store.cursor("a\0", Domain::Alerts).unwrap(), None);
}

#[test]
fn a_newer_schema_is_refused_and_the_epoch_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let epoch = store.epoch().to_string();
    assert_eq!(epoch.len(), 32);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.epoch(), epoch, "the epoch survives a restart");
    let other = tempfile::tempdir().unwrap();
    assert_ne!(Store::open(other.path()).unwrap().epoch(), epoch);

    let meta = store.current().unwrap().db.open_tree("meta").unwrap();
    meta.insert(META_SCHEMA, (STORE_SCHEMA + 1).to_string().as_bytes())
        .unwrap();
    drop(meta);
    drop(store);
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NewerSchema {
                found,
                supported: STORE_SCHEMA,
                ..
            } if found == STORE_SCHEMA + 1
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    assert!(text.contains("schema 4"), "{text}");
}

#[test]
fn reopening_adopts_an_entry_whose_guard_was_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let seq = store.insert_unguarded("s", &entry("orphan", 7));
    assert_eq!(store.enqueued_seq("s", "orphan").unwrap(), None);
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.enqueued_seq("s", "orphan").unwrap(), Some(seq));
    assert_eq!(store.depth("s"), 1);
    assert_eq!(store.oldest_enqueued_at("s"), Some(7));
    assert_eq!(ids(&store.due("s", 7, 10).unwrap()), ["orphan"]);
    assert_eq!(
        store.enqueue("s", &entry("orphan", 8)).unwrap(),
        Enqueued::Duplicate(seq)
    );
}

#[test]
fn reopening_removes_an_unguarded_duplicate_and_finishes_dead_letter_moves() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let owner = store.enqueue("s", &entry("p", 0)).unwrap().seq();
    // A crash between the insert and the lost CAS's undo.
    store.insert_unguarded("s", &entry("p", 0));
    // A crash inside dead_letter.
    let moving = store.enqueue("s", &entry("m", 0)).unwrap().seq();
    store.insert_dead_only("s", moving, &letter(entry("m", 0)));
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.depth("s"), 1);
    assert_eq!(
        store.due("s", i64::MAX, 10).unwrap(),
        vec![(owner, entry("p", 0))]
    );
    assert_eq!(store.dead_letters("s").unwrap().len(), 1);
    assert_eq!(store.stats().unwrap().sinks["s"].dead_letters, 1);
    drop(store);
    // Nothing left to repair: a second reopen sees the same state.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.depth("s"), 1);
    assert_eq!(store.guard_count(), 2);
}

#[test]
fn reopen_swaps_the_instance_under_every_clone_while_they_work() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let epoch = store.epoch().to_string();
    let writer = store.clone();
    let handle = std::thread::spawn(move || {
        for i in 0..2_000 {
            let seq = writer
                .enqueue("s", &entry(&format!("p{i}"), i))
                .unwrap()
                .seq();
            if i % 2 == 0 {
                assert!(writer.ack("s", seq).unwrap(), "p{i}");
            }
        }
    });
    for _ in 0..5 {
        store.reopen().unwrap();
        assert_eq!(store.epoch(), epoch);
    }
    handle.join().unwrap();
    assert_eq!(store.depth("s"), 1_000);
    store.reopen().unwrap();
    assert_eq!(store.depth("s"), 1_000);
    assert_eq!(store.guard_count(), 2_000);
    assert!(store.stats().unwrap().open_ms < 60_000);
}

/// Random operations against a `BTreeMap` model, with clean reopens in between.
#[test]
fn model_random_operations_with_reopens() {
    #[derive(Default)]
    struct Model {
        /// sink -> seq -> (payload id, next attempt)
        outbox: BTreeMap<String, BTreeMap<u64, (String, i64)>>,
        /// (sink, payload id) -> (seq, enqueued_at)
        guards: BTreeMap<(String, String), (u64, i64)>,
        dead: BTreeMap<String, usize>,
    }

    for seed in 0..4u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let mut model = Model::default();
        let mut rng = StdRng::seed_from_u64(seed);
        let sinks = ["a", "b", "c"];
        for step in 0..1500i64 {
            let sink = sinks[rng.random_range(0..sinks.len())].to_string();
            let now = step;
            match rng.random_range(0..100) {
                0..40 => {
                    let id = format!("p{}", rng.random_range(0..60));
                    let got = store.enqueue(&sink, &entry(&id, now)).unwrap();
                    match model.guards.get(&(sink.clone(), id.clone())) {
                        Some(&(seq, _)) => assert_eq!(got, Enqueued::Duplicate(seq)),
                        None => {
                            let Enqueued::Inserted(seq) = got else {
                                panic!("seed {seed} step {step}: expected an insert, got {got:?}")
                            };
                            model.guards.insert((sink.clone(), id.clone()), (seq, now));
                            model.outbox.entry(sink).or_default().insert(seq, (id, now));
                        }
                    }
                }
                40..60 => {
                    let pending = model.outbox.entry(sink.clone()).or_default();
                    if let Some((&seq, _)) = pending.iter().next() {
                        pending.remove(&seq);
                        assert!(store.ack(&sink, seq).unwrap());
                    }
                }
                60..72 => {
                    let pending = model.outbox.entry(sink.clone()).or_default();
                    if let Some((&seq, (id, _))) = pending.iter().next_back() {
                        let mut e = entry(id, 0);
                        e.attempts = 1;
                        e.next_attempt_at_ms = now + rng.random_range(0..50);
                        assert!(store.reschedule(&sink, seq, &e).unwrap());
                        pending.insert(seq, (id.clone(), e.next_attempt_at_ms));
                    }
                }
                72..78 => {
                    let pending = model.outbox.entry(sink.clone()).or_default();
                    if let Some((&seq, (id, _))) = pending.iter().next() {
                        let id = id.clone();
                        pending.remove(&seq);
                        *model.dead.entry(sink.clone()).or_default() += 1;
                        assert!(
                            store
                                .dead_letter(&sink, seq, &letter(entry(&id, 0)))
                                .unwrap()
                        );
                    }
                }
                78..83 => {
                    let ttl = 200;
                    store.prune(now, 0, ttl).unwrap();
                    model.guards.retain(|(s, _), &mut (seq, at)| {
                        at >= now - ttl || model.outbox.get(s).is_some_and(|o| o.contains_key(&seq))
                    });
                }
                83..86 => {
                    drop(store);
                    store = Store::open(dir.path()).unwrap();
                }
                _ => {
                    let limit = rng.random_range(1..8);
                    let got = store.due(&sink, now, limit).unwrap();
                    let want: Vec<(u64, &str)> = model
                        .outbox
                        .get(&sink)
                        .into_iter()
                        .flatten()
                        .filter(|(_, (_, at))| *at <= now)
                        .take(limit)
                        .map(|(&seq, (id, _))| (seq, id.as_str()))
                        .collect();
                    let got: Vec<(u64, &str)> =
                        got.iter().map(|(seq, e)| (*seq, e.payload.id())).collect();
                    assert_eq!(got, want, "seed {seed} step {step}");
                }
            }
            for s in sinks {
                let pending = model.outbox.get(s);
                assert_eq!(
                    store.depth(s),
                    pending.map_or(0, |p| p.len() as u64),
                    "seed {seed} step {step} sink {s}"
                );
                assert_eq!(
                    store.next_due_at(s),
                    pending.and_then(|p| p.values().map(|(_, at)| *at).min())
                );
            }
        }
        assert_eq!(store.guard_count(), model.guards.len());
        for s in sinks {
            assert_eq!(
                store.dead_letters(s).unwrap().len(),
                model.dead.get(s).copied().unwrap_or(0)
            );
        }
    }
}

#[test]
fn large_values_are_stored_compressed_and_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut big = entry("big", 5);
    let Payload::Event(e) = &mut big.payload else {
        unreachable!()
    };
    e.summary.as_mut().unwrap().message = "a long, repetitive message ".repeat(200);
    let seq = store.enqueue("hook", &big).unwrap().seq();
    // In sled, a header of a few dozen bytes; in the payload log, the LZ4 marker and far
    // fewer bytes than the JSON.
    let json = serde_json::to_vec(&big.payload).unwrap();
    let inner = store.current().unwrap();
    let raw = inner
        .sink("hook")
        .unwrap()
        .outbox
        .get(keys::seq(seq))
        .unwrap()
        .unwrap();
    assert_eq!(raw[0], payloads::HEADER_MARK);
    assert!(raw.len() < 80, "{}", raw.len());
    let header = payloads::Header::decode(&raw).unwrap();
    let body = inner.payloads.read(header.loc).unwrap();
    assert_eq!(body[0], ZSTD_DICT2_JSON);
    assert!(
        body.len() * 3 < json.len(),
        "{} vs {}",
        body.len(),
        json.len()
    );
    // Read back exactly, and reschedule's compare-and-swap still matches the stored bytes.
    let due = store.due("hook", 10, 10).unwrap();
    assert_eq!(due, vec![(seq, big.clone())]);
    let mut next = big.clone();
    next.attempts = 1;
    next.next_attempt_at_ms = 99;
    assert!(store.reschedule("hook", seq, &next).unwrap());
    assert_eq!(store.due("hook", 100, 10).unwrap(), vec![(seq, next)]);
    // Small values stay plain JSON; values written before compression existed still read.
    assert_eq!(pack(b"{\"a\":1}".to_vec(), None), b"{\"a\":1}".to_vec());
    let small = entry("small", 5);
    let seq2 = store.enqueue("hook", &small).unwrap().seq();
    assert!(
        store
            .due("hook", 100, 10)
            .unwrap()
            .iter()
            .any(|(s, e)| *s == seq2 && *e == small)
    );
}

/// Set in the child process [`under_address_cap`] starts.
const UNDER_CAP: &str = "SASRELAY_TEST_UNDER_ADDRESS_CAP";

/// Runs `body` in a child process (this test binary again, running only the test named
/// `test`) whose address space is capped at 2 GiB, and fails unless it passes there. A value
/// whose damaged header claims gigabytes must be refused before a buffer is asked for: under
/// the cap such an allocation fails and aborts the child, where overcommit would otherwise
/// hand out untouched pages and hide it. (`ulimit -v` in a shell: the library forbids
/// `unsafe`, so no `setrlimit` here.)
pub(super) fn under_address_cap(test: &str, body: impl FnOnce()) {
    if std::env::var_os(UNDER_CAP).is_some() {
        body();
        return;
    }
    let out = std::process::Command::new("bash")
        .args(["-c", "ulimit -v $((2 << 20)) && exec \"$@\"", "child"])
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(UNDER_CAP, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} under a 2 GiB address-space cap failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_corrupt_compressed_value_is_an_error_not_a_panic() {
    under_address_cap(
        "store::tests::a_corrupt_compressed_value_is_an_error_not_a_panic",
        || {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            let seq = store.enqueue("hook", &entry("x", 5)).unwrap().seq();
            let inner = store.current().unwrap();
            let tree = &inner.sink("hook").unwrap().outbox;
            // Whole entries of schema 1 (LZ4 with its length first) and record values (LZ4
            // with the record dictionary), each claiming about 4 GiB from a few bytes.
            tree.insert(
                keys::seq(seq),
                vec![LZ4_JSON, 0xff, 0xff, 0xff, 0xff, 1, 2, 3],
            )
            .unwrap();
            // Moved to the dead letters, named, never unpacked into a huge buffer.
            assert!(store.due("hook", 10, 10).unwrap().is_empty());
            let letters = store.dead_letters("hook").unwrap();
            assert!(
                letters[0].1.reason.contains("corrupt compressed value"),
                "{}",
                letters[0].1.reason
            );
            let err = codec::unpack_record(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).unwrap_err();
            assert!(err.contains("claimed"), "{err}");
        },
    );
}

// ----- routing groups -----

fn header(max_size: u32, flush_at_ms: i64) -> GroupHeader {
    GroupHeader {
        v: GROUP_SCHEMA,
        route: "routes[0]".to_string(),
        sink: "chat".to_string(),
        labels: [("cluster".to_string(), "c-prod".to_string())].into(),
        opened_at_ms: 0,
        flush_at_ms,
        group_interval_ms: 1_000,
        max_size,
        flushes: 0,
        closing: None,
    }
}

fn event(id: &str) -> Event {
    let Payload::Event(e) = entry(id, 0).payload else {
        unreachable!()
    };
    *e
}

fn digest_ids(store: &Store, sink: &str) -> Vec<Vec<String>> {
    store
        .due(sink, i64::MAX, 100)
        .unwrap()
        .into_iter()
        .map(|(_, e)| match e.payload {
            Payload::Digest(d) => d.events.into_iter().map(|e| e.id).collect(),
            other => panic!("expected a digest, got {}", other.id()),
        })
        .collect()
}

#[test]
fn a_group_closes_into_one_digest_when_due_then_expires_when_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let h = header(100, 500);
    for id in ["a", "b", "c"] {
        assert_eq!(
            store.group_add("g1", &h, &event(id), 0).unwrap(),
            GroupAdded::Added
        );
    }
    assert_eq!(
        store.group_add("g1", &h, &event("b"), 1).unwrap(),
        GroupAdded::Duplicate
    );
    assert_eq!(store.next_group_due(), Some(500));
    assert!(store.due_groups(499).is_empty());
    assert_eq!(
        store
            .close_group("g1", 499, OffsetDateTime::UNIX_EPOCH)
            .unwrap(),
        GroupClosed::NotDue
    );
    let GroupClosed::Digest { members, sink, .. } = store
        .close_group("g1", 500, OffsetDateTime::UNIX_EPOCH)
        .unwrap()
    else {
        panic!("expected a digest")
    };
    assert_eq!((members, sink.as_str()), (3, "chat"));
    assert_eq!(digest_ids(&store, "chat"), [["a", "b", "c"]]);
    // Still open for group_interval: a late member waits for the next flush.
    let (_, open, count) = store.groups().pop().unwrap();
    assert_eq!((open.flush_at_ms, open.flushes, count), (1_500, 1, 0));
    store.group_add("g1", &h, &event("d"), 600).unwrap();
    assert!(matches!(
        store
            .close_group("g1", 1_500, OffsetDateTime::UNIX_EPOCH)
            .unwrap(),
        GroupClosed::Digest { members: 1, .. }
    ));
    assert_eq!(
        store
            .close_group("g1", 2_500, OffsetDateTime::UNIX_EPOCH)
            .unwrap(),
        GroupClosed::Expired
    );
    assert!(store.groups().is_empty());
    assert_eq!(store.member_count(), 0);
    // A re-poll of a member already sent stays out, even in a new group.
    assert_eq!(
        store.group_add("g1", &h, &event("a"), 3_000).unwrap(),
        GroupAdded::Duplicate
    );
}

#[test]
fn a_full_group_is_due_at_once_and_splits_by_max_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let h = header(2, i64::MAX);
    for id in ["1", "2", "3", "4", "5"] {
        store.group_add("g", &h, &event(id), 0).unwrap();
    }
    assert_eq!(store.next_group_due(), Some(i64::MIN));
    for _ in 0..2 {
        assert!(matches!(
            store
                .close_group("g", 0, OffsetDateTime::UNIX_EPOCH)
                .unwrap(),
            GroupClosed::Digest { members: 2, .. }
        ));
    }
    // One left, below max_size: waits for group_interval.
    assert_eq!(
        store
            .close_group("g", 0, OffsetDateTime::UNIX_EPOCH)
            .unwrap(),
        GroupClosed::NotDue
    );
    assert_eq!(digest_ids(&store, "chat"), [["1", "2"], ["3", "4"]]);
}

#[test]
fn a_close_cut_by_a_crash_resumes_without_losing_or_repeating_members() {
    for digest_was_enqueued in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let h = header(100, 0);
        for id in ["a", "b"] {
            store.group_add("g", &h, &event(id), 0).unwrap();
        }
        // The crash: step 1 written (and step 2 too, in the second round), members still
        // there; then a member that arrived after the close began.
        let digest = Digest::new(
            &h.route,
            h.labels.clone(),
            vec![event("a"), event("b")],
            OffsetDateTime::UNIX_EPOCH,
        );
        let (_, _, _) = store.groups().pop().unwrap();
        let last_seq = {
            let inner = store.current().unwrap();
            inner.group_members("g", None, 10).unwrap()[1].0
        };
        let mut marked = h.clone();
        marked.closing = Some(Closing {
            digest_id: digest.id.clone(),
            last_seq,
        });
        store.write_group_header("g", &marked);
        if digest_was_enqueued {
            store
                .enqueue("chat", &OutboxEntry::new(Payload::from(digest.clone()), 0))
                .unwrap();
        }
        store.group_add("g", &h, &event("late"), 0).unwrap();
        drop(store);

        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.due_groups(-1), ["g"], "a close in progress is due");
        let GroupClosed::Digest { digest_id, .. } = store
            .close_group("g", 0, OffsetDateTime::UNIX_EPOCH)
            .unwrap()
        else {
            panic!("expected the resumed digest")
        };
        assert_eq!(digest_id, digest.id);
        assert_eq!(
            digest_ids(&store, "chat"),
            [["a", "b"]],
            "{digest_was_enqueued}"
        );
        assert_eq!(store.member_count(), 1, "only the late member is left");
        let (_, after, count) = store.groups().pop().unwrap();
        assert_eq!((after.closing, count), (None, 1));
    }
}

#[test]
fn reopening_adopts_a_member_whose_guard_was_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let h = header(100, 0);
    store.group_add("g", &h, &event("a"), 0).unwrap();
    // Simulate the cut: the guard is removed, the member stays.
    let inner = store.current().unwrap();
    inner
        .guards
        .remove(keys::guard("#group:g", "a"))
        .unwrap()
        .unwrap();
    drop(inner);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.groups()[0].2, 1);
    assert_eq!(
        store.group_add("g", &h, &event("a"), 0).unwrap(),
        GroupAdded::Duplicate
    );
}

/// Event `id` kept from sink `chat` by silence `s1` at `at_ms`.
fn suppression(at_ms: i64, id: &str) -> Suppressed {
    Suppressed {
        at_ms,
        event_id: id.to_string(),
        kind: "new".to_string(),
        fingerprint: None,
        title: "t".to_string(),
        sink: "chat".to_string(),
        route: "routes[0]".to_string(),
        by: "silence".to_string(),
        reason: "s1".to_string(),
    }
}

#[test]
fn silences_and_suppressions_round_trip_and_prune() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .put_silence("s1", &serde_json::json!({"id": "s1", "comment": "upgrade"}))
        .unwrap();
    let all: Vec<serde_json::Value> = store.silences().unwrap();
    assert_eq!(all[0]["comment"], "upgrade");
    let s = suppression;
    store.record_suppressed(&s(20, "e2")).unwrap();
    store.record_suppressed(&s(10, "e1")).unwrap();
    store.record_suppressed(&s(10, "e1")).unwrap();
    let ids: Vec<String> = store
        .suppressed()
        .unwrap()
        .into_iter()
        .map(|s| s.event_id)
        .collect();
    assert_eq!(ids, ["e1", "e2"]);
    assert_eq!(store.prune_suppressed(15).unwrap(), 1);
    assert_eq!(store.suppressed().unwrap().len(), 1);
    assert!(store.remove_silence("s1").unwrap());
    assert!(!store.remove_silence("s1").unwrap());
}

#[test]
fn replay_puts_a_dead_letter_back_with_its_id_and_fresh_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let seq = store.enqueue("s", &entry("p", 0)).unwrap().seq();
    let mut tired = entry("p", 0);
    tired.attempts = 7;
    tired.last_error = Some("400".into());
    assert!(store.dead_letter("s", seq, &letter(tired)).unwrap());
    assert_eq!(store.depth("s"), 0);

    let Replayed::Requeued(new_seq) = store.replay_dead_letter("s", seq, 5_000).unwrap() else {
        panic!("not requeued");
    };
    assert!(new_seq > seq);
    let due = store.due("s", i64::MAX, 10).unwrap();
    assert_eq!(ids(&due), ["p"]);
    let (got_seq, e) = &due[0];
    assert_eq!(*got_seq, new_seq);
    assert_eq!(
        (
            e.attempts,
            e.enqueued_at_ms,
            e.next_attempt_at_ms,
            &e.last_error
        ),
        (0, 5_000, 5_000, &None)
    );
    assert!(store.dead_letters("s").unwrap().is_empty());
    assert_eq!(store.stats().unwrap().sinks["s"].dead_letters, 0);
    // The guard follows the payload: enqueueing it again is a duplicate of the replay.
    assert_eq!(
        store.enqueue("s", &entry("p", 0)).unwrap(),
        Enqueued::Duplicate(new_seq)
    );
    assert_eq!(
        store.replay_dead_letter("s", seq, 6_000).unwrap(),
        Replayed::NotFound
    );
    assert_eq!(
        store.replay_dead_letter("nope", seq, 6_000).unwrap(),
        Replayed::NotFound
    );
    // Replayed entries survive a restart like any other.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(ids(&store.due("s", i64::MAX, 10).unwrap()), ["p"]);
}

#[test]
fn a_replay_cut_short_by_a_crash_never_leaves_the_payload_pending_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let seq = store.enqueue("s", &entry("p", 0)).unwrap().seq();
    assert!(store.dead_letter("s", seq, &letter(entry("p", 0))).unwrap());

    // Crash after the first write: an entry whose guard still names the dead letter.
    store.insert_unguarded("s", &entry("p", 0));
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.depth("s"), 0, "the half-replayed entry is removed");
    assert_eq!(store.dead_letters("s").unwrap().len(), 1);

    // Crash after the second write: the entry is guarded, the dead letter still there.
    let Replayed::Requeued(new_seq) = store.replay_dead_letter("s", seq, 1).unwrap() else {
        panic!("not requeued");
    };
    store.insert_dead_only("s", seq, &letter(entry("p", 0)));
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.depth("s"), 1);
    assert_eq!(store.dead_letters("s").unwrap().len(), 1);
    // Replaying it again only finishes the first replay.
    assert_eq!(
        store.replay_dead_letter("s", seq, 2).unwrap(),
        Replayed::Superseded(new_seq)
    );
    assert_eq!(store.depth("s"), 1);
    assert!(store.dead_letters("s").unwrap().is_empty());
    assert_eq!(store.stats().unwrap().sinks["s"].dead_letters, 0);
}

// ----- the payload log -----

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(payloads::DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn an_event_for_two_sinks_is_stored_once_and_its_segment_goes_after_both_acks() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let e = entry("shared", 5);
    let a = store.enqueue("a", &e).unwrap().seq();
    let b = store.enqueue("b", &e).unwrap().seq();
    let inner = store.current().unwrap();
    let loc = |sink: &str, seq: u64| {
        let raw = inner
            .sink(sink)
            .unwrap()
            .outbox
            .get(keys::seq(seq))
            .unwrap();
        payloads::Header::decode(&raw.unwrap()).unwrap().loc
    };
    assert_eq!(loc("a", a), loc("b", b), "one copy, two references");
    let one = inner.payloads.usage().1;
    assert_eq!(one, 8 + u64::from(loc("a", a).len));
    drop(inner);
    store.flush().await.unwrap();
    drop(store);

    // Reopened, the references are counted again and writing goes to a new segment; the old
    // one goes once neither entry needs it, at the flush after the last ack.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert_eq!(store.due("b", 5, 10).unwrap(), vec![(b, e.clone())]);
    assert!(store.ack("a", a).unwrap());
    store.flush().await.unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1, "b still points into it");
    store.enqueue("a", &entry("later", 6)).unwrap();
    assert!(store.ack("b", b).unwrap());
    assert_eq!(segment_files(dir.path()).len(), 2);
    store.flush().await.unwrap();
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(ids(&store.due("a", 10, 10).unwrap()), ["later"]);
    drop(store);
    // Nothing left to remove or repair at the next open.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(segment_files(dir.path()), files);
    assert_eq!(ids(&store.due("a", 10, 10).unwrap()), ["later"]);
}

#[test]
fn a_schema_1_store_upgrades_and_delivers_its_whole_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // As schema 1 wrote them: the whole entry in sled, with its guard.
    let old = store.insert_unguarded("s", &entry("old", 3));
    let meta = store.current().unwrap().db.open_tree("meta").unwrap();
    meta.insert(META_SCHEMA, b"1").unwrap();
    drop(meta);
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    let meta = store.current().unwrap().db.open_tree("meta").unwrap();
    assert_eq!(
        meta.get(META_SCHEMA).unwrap().unwrap(),
        STORE_SCHEMA.to_string().as_bytes()
    );
    let new = store.enqueue("s", &entry("new", 4)).unwrap().seq();
    assert_eq!(
        store.due("s", 10, 10).unwrap(),
        vec![(old, entry("old", 3)), (new, entry("new", 4))]
    );
    let mut again = entry("old", 3);
    again.attempts = 1;
    again.next_attempt_at_ms = 50;
    again.last_error = Some("HTTP 503".to_string());
    assert!(store.reschedule("s", old, &again).unwrap());
    assert_eq!(
        store.due("s", 50, 10).unwrap(),
        vec![(old, again), (new, entry("new", 4))]
    );
    assert!(store.ack("s", old).unwrap());
    assert_eq!(ids(&store.due("s", 50, 10).unwrap()), ["new"]);
}

#[test]
fn an_entry_whose_payload_never_reached_the_disk_is_a_dead_letter_at_open_and_its_guard_goes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let kept = store.enqueue("s", &entry("kept", 1)).unwrap().seq();
    store.enqueue("s", &entry("lost", 2)).unwrap();
    drop(store);
    // A power loss kept sled's write of the second entry but not the end of the segment.
    let [segment] = &segment_files(dir.path())[..] else {
        panic!("one segment")
    };
    let len = std::fs::metadata(segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(segment)
        .unwrap()
        .set_len(len - 3)
        .unwrap();

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.depth("s"), 1);
    assert_eq!(
        store.due("s", 10, 10).unwrap(),
        vec![(kept, entry("kept", 1))]
    );
    assert_eq!(
        store.enqueued_seq("s", "lost").unwrap(),
        None,
        "its guard went"
    );
    // Shown to the operator, never replayed.
    assert_eq!(store.sink_stats().unwrap()["s"].dead_letters, 1);
    let letters = store.dead_letters("s").unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let (lost_seq, letter) = &letters[0];
    assert_eq!(letter.entry.payload.id(), "lost");
    assert!(letter.unreadable.is_some(), "{letter:?}");
    assert!(letter.reason.contains("cannot be read back"), "{letter:?}");
    assert!(matches!(
        store.replay_dead_letter("s", *lost_seq, 20).unwrap(),
        Replayed::Unreadable
    ));
    // A poll that finds the finding again enqueues it anew, and the kept entry's segment
    // still reads (no reference of it was released for the lost one).
    let again = store.enqueue("s", &entry("lost", 5)).unwrap();
    assert!(matches!(again, Enqueued::Inserted(_)), "{again:?}");
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(ids(&store.due("s", 10, 10).unwrap()), ["kept", "lost"]);
    assert_eq!(store.sink_stats().unwrap()["s"].dead_letters, 1);
}

#[test]
fn the_payload_dictionary_is_frozen() {
    // Payloads written with it cannot be read without these exact bytes: never edit it; a
    // new dictionary takes a new marker and file.
    assert_eq!(crc32fast::hash(PAYLOAD_DICT), 0x47b1_c087);
    assert_eq!(PAYLOAD_DICT.len(), 13_212);
    assert_eq!(crc32fast::hash(codec::PAYLOAD_DICT_V2), 0x7877_1932);
    assert_eq!(codec::PAYLOAD_DICT_V2.len(), 13_353);
    // The second is the first's content behind zstd's dictionary header (magic number, id
    // 32770) and the entropy tables.
    assert!(codec::PAYLOAD_DICT_V2.ends_with(PAYLOAD_DICT));
    assert_eq!(
        codec::PAYLOAD_DICT_V2[..8],
        [0x37, 0xa4, 0x30, 0xec, 0x02, 0x80, 0x00, 0x00]
    );
}

#[test]
fn payloads_written_with_the_first_zstd_dictionary_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let inner = store.current().unwrap();
    let payload = Payload::from(crate::render::sample_event(Domain::Alerts));
    let json = serde_json::to_vec(&payload).unwrap();
    let old = codec::zstd_with(&json, codec::Dict::V1).unwrap();
    assert_eq!(old[0], ZSTD_DICT_JSON);
    let new = inner.encode_payload(&payload, || "p".into()).unwrap();
    assert_eq!(new[0], ZSTD_DICT2_JSON);
    assert_ne!(old[1..], new[1..]);
    for packed in [&old, &new] {
        let back: Payload = inner.decode(packed, || "p".into()).unwrap();
        assert_eq!(back, payload);
    }
    // A frame read with the other dictionary is damage, not a wrong payload.
    let mut swapped = new.clone();
    swapped[0] = ZSTD_DICT_JSON;
    let err = inner
        .decode::<Payload>(&swapped, || "p".into())
        .unwrap_err();
    assert!(
        err.to_string().contains("corrupt compressed value"),
        "{err}"
    );
}

#[test]
fn the_record_dictionary_is_frozen() {
    assert_eq!(crc32fast::hash(codec::RECORD_DICT), 0x85f2_9bf5);
    assert_eq!(codec::RECORD_DICT.len(), 3_593);
}

/// A record as the lifecycle writes it for a sample finding of `domain`.
fn sample_record(domain: Domain) -> Record {
    let f = crate::render::sample_event(domain).finding.unwrap();
    Record {
        v: crate::record::RECORD_SCHEMA,
        id: f.id.clone(),
        status: RecordStatus::Active,
        generation: 1,
        first_seen_ms: 1_800_000_000_123,
        last_seen_ms: 1_800_000_004_567,
        occurrence: "1799999999000".into(),
        resolved_at_ms: None,
        resolution: None,
        last: crate::record::Remembered::of(&f),
        absent_sweeps: 0,
    }
}

#[test]
fn records_pack_with_their_dictionary_and_old_plain_ones_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut record = sample_record(Domain::Alerts);
    record.last.title = "反弹Shell <@U123> `rm -rf /`".into();
    record.id = "alert:987654321".into();
    store
        .put_record("prod", Domain::Alerts, "fp-new", &record)
        .unwrap();
    let inner = store.current().unwrap();
    let stored = inner
        .records
        .get(keys::record("prod", Domain::Alerts, "fp-new"))
        .unwrap()
        .unwrap();
    let json = serde_json::to_vec(&record).unwrap();
    assert_eq!(stored[0], LZ4_RECORD_JSON);
    assert!(
        stored.len() * 2 < json.len(),
        "{} vs {}",
        stored.len(),
        json.len()
    );
    assert_eq!(
        store.get_record("prod", Domain::Alerts, "fp-new").unwrap(),
        Some(record.clone())
    );
    // A record written plain by an older build reads as before, and is packed when next
    // written.
    inner
        .records
        .insert(keys::record("prod", Domain::Alerts, "fp-old"), json.clone())
        .unwrap();
    let all = store.records("prod", Domain::Alerts).unwrap();
    assert_eq!(
        all,
        vec![
            ("fp-new".to_string(), record.clone()),
            ("fp-old".to_string(), record.clone())
        ]
    );
    // Damage is a codec error naming the record, never a panic or a huge allocation.
    let mut huge = stored.to_vec();
    huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
    for bad in [
        huge,
        stored[..stored.len() / 2].to_vec(),
        vec![LZ4_RECORD_JSON, 1],
    ] {
        inner
            .records
            .insert(keys::record("prod", Domain::Alerts, "fp-bad"), bad)
            .unwrap();
        let err = store
            .get_record("prod", Domain::Alerts, "fp-bad")
            .unwrap_err();
        assert!(matches!(err, StoreError::Codec { .. }), "{err:?}");
        assert!(err.to_string().contains("record fp-bad"), "{err}");
    }
}

#[test]
fn payloads_written_with_lz4_by_an_older_build_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let inner = store.current().unwrap();
    let payload = Payload::from(crate::render::sample_event(Domain::Vulnerabilities));
    let old = pack(serde_json::to_vec(&payload).unwrap(), Some(PAYLOAD_DICT));
    assert_eq!(old[0], LZ4_DICT_JSON);
    let back: Payload = inner.decode(&old, || "p".into()).unwrap();
    assert_eq!(back, payload);
}

#[test]
fn payloads_pack_smaller_with_the_dictionary_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let inner = store.current().unwrap();
    for domain in [
        Domain::Alerts,
        Domain::Vulnerabilities,
        Domain::Baseline,
        Domain::Firewall,
    ] {
        // The sample finding has no raw item, and the sample answers' items are in the
        // dictionary: an alert's item with its values made up, as a real item's would be.
        let mut value =
            serde_json::to_value(Payload::from(crate::render::sample_event(domain))).unwrap();
        let answer: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/samples/DescribeSuspEvents.json"
        ))
        .unwrap();
        let mut raw = answer["SuspEvents"][0].clone();
        made_up(&mut raw, &mut StdRng::seed_from_u64(7));
        *value.pointer_mut("/finding/raw").expect("a raw item") = raw;
        let payload: Payload = serde_json::from_value(value).unwrap();
        let json = serde_json::to_vec(&payload).unwrap();
        let plain = pack(json.clone(), None);
        let with = inner.encode_payload(&payload, || "p".into()).unwrap();
        assert_eq!(with[0], ZSTD_DICT2_JSON);
        // About as small as with the first dictionary alone: the tables were derived from
        // simulator alerts, and these values are random letters and digits, the case they fit
        // worst (real items pack 6–12 % smaller with them; see `codec`).
        let v1 = codec::zstd_with(&json, codec::Dict::V1).unwrap();
        assert!(
            with.len() * 100 <= v1.len() * 105,
            "{domain:?}: v2 {} vs v1 {}",
            with.len(),
            v1.len()
        );
        // A third smaller than LZ4 with the same dictionary, or near it.
        let lz4 = pack(json.clone(), Some(PAYLOAD_DICT));
        assert!(
            with.len() * 10 < lz4.len() * 8,
            "{domain:?}: zstd {} vs lz4 {}",
            with.len(),
            lz4.len()
        );
        assert!(
            with.len() * 2 < plain.len(),
            "{domain:?}: {} vs {}",
            with.len(),
            plain.len()
        );
        let back: Payload = inner.decode(&with, || "p".into()).unwrap();
        assert_eq!(back, payload);
    }
}

/// Every string and number in `value` replaced by a made-up one of the same kind and length.
fn made_up(value: &mut serde_json::Value, rng: &mut StdRng) {
    match value {
        serde_json::Value::String(s) => {
            *s = (0..s.len())
                .map(|_| {
                    char::from(b"abcdefghijklmnopqrstuvwxyz0123456789-"[rng.random_range(0..37)])
                })
                .collect();
        }
        serde_json::Value::Number(n) => *n = rng.random_range(0..1_000_000_000u64).into(),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| made_up(v, rng)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| made_up(v, rng)),
        serde_json::Value::Null | serde_json::Value::Bool(_) => {}
    }
}

#[test]
fn a_damaged_dictionary_payload_is_a_codec_error_without_a_huge_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let inner = store.current().unwrap();
    let good = inner
        .encode_payload(
            &Payload::from(crate::render::sample_event(Domain::Alerts)),
            || "p".into(),
        )
        .unwrap();
    assert_eq!(good[0], ZSTD_DICT2_JSON);
    // A zstd frame cut short; one whose content size (after the magic number and the frame
    // header descriptor) claims more than any payload; not a frame at all.
    let cut = good[..good.len() / 2].to_vec();
    // Magic number, a descriptor saying "single segment, 8-byte content size", 1 TiB.
    let mut huge = vec![ZSTD_DICT2_JSON, 0x28, 0xb5, 0x2f, 0xfd, 0xe0];
    huge.extend((1u64 << 40).to_le_bytes());
    huge.extend(&good[good.len() - 8..]);
    let mut garbage = good.clone();
    garbage[1..5].copy_from_slice(b"junk");
    // An old LZ4 payload claiming 4 GiB from a block of a kilobyte or so.
    let mut lz4 = pack(
        serde_json::to_vec(&Payload::from(crate::render::sample_event(Domain::Alerts))).unwrap(),
        Some(PAYLOAD_DICT),
    );
    lz4[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
    for bad in [
        cut,
        huge,
        garbage,
        lz4,
        vec![LZ4_DICT_JSON, 1, 0],
        vec![ZSTD_DICT_JSON],
        vec![ZSTD_DICT2_JSON],
    ] {
        let err = inner.decode::<Payload>(&bad, || "p".into()).unwrap_err();
        assert!(matches!(err, StoreError::Codec { .. }), "{err:?}");
        assert!(
            err.to_string().contains("corrupt compressed value"),
            "{err}"
        );
    }
    // And the buffer is fine for the next one.
    let back: Payload = inner.decode(&good, || "p".into()).unwrap();
    assert_eq!(back.id(), crate::render::sample_event(Domain::Alerts).id);
}

fn about(domain: Domain, id: &str, at: i64) -> OutboxEntry {
    let mut e = crate::render::sample_event(domain);
    e.id = id.to_string();
    OutboxEntry::new(Payload::from(e), at)
}

#[test]
fn an_entry_waits_for_an_earlier_one_about_the_same_finding_even_in_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let new = store
        .enqueue("s", &about(Domain::Alerts, "new", 1))
        .unwrap()
        .seq();
    let resolved = store
        .enqueue("s", &about(Domain::Alerts, "resolved", 2))
        .unwrap()
        .seq();
    let other = store
        .enqueue("s", &about(Domain::Vulnerabilities, "other", 3))
        .unwrap()
        .seq();
    let none = std::collections::HashSet::new();
    let startable = |store: &Store, now| {
        ids(&store.due_skipping("s", now, 10, &none).unwrap())
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    // All due: all may start (the worker itself holds `resolved` while `new` is in flight).
    assert_eq!(startable(&store, 10), ["new", "resolved", "other"]);
    // The first failed and waits out its backoff: the second waits for it; `due` shows all.
    let mut later = about(Domain::Alerts, "new", 1);
    later.attempts = 1;
    later.next_attempt_at_ms = 1_000;
    assert!(store.reschedule("s", new, &later).unwrap());
    assert_eq!(startable(&store, 10), ["other"]);
    assert_eq!(ids(&store.due("s", 10, 10).unwrap()), ["resolved", "other"]);
    assert!(store.ack("s", other).unwrap());
    drop(store);
    // The order is kept on disk: the same after a restart.
    let store = Store::open(dir.path()).unwrap();
    assert!(startable(&store, 10).is_empty());
    assert_eq!(startable(&store, 1_000), ["new", "resolved"]);
    assert!(store.ack("s", new).unwrap());
    assert_eq!(
        store.due_skipping("s", 1_000, 10, &none).unwrap(),
        vec![(resolved, about(Domain::Alerts, "resolved", 2))]
    );
}

#[test]
fn entries_written_whole_by_schema_1_keep_their_order_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut first = about(Domain::Baseline, "first", 1);
    first.next_attempt_at_ms = 500;
    store.insert_unguarded("s", &first);
    store
        .enqueue("s", &about(Domain::Baseline, "second", 2))
        .unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let none = std::collections::HashSet::new();
    assert!(store.due_skipping("s", 10, 10, &none).unwrap().is_empty());
    assert_eq!(
        ids(&store.due_skipping("s", 500, 10, &none).unwrap()),
        ["first", "second"]
    );
}

// ----- values that cannot be read back -----

/// Log output written on this thread while the guard returned by [`Logs::capture`] lives.
#[derive(Clone, Default)]
pub(super) struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    pub(super) fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        // With only one subscriber ever registered, tracing caches a callsite's interest from
        // whichever thread reaches it first (a test thread with none caches "never"). A
        // second subscriber, registered once and kept, makes it ask every one.
        static OTHER: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
        drop(tracing::dispatcher::set_default(OTHER.get_or_init(|| {
            tracing::Dispatch::new(tracing_subscriber::registry())
        })));
        let logs = Logs::default();
        let w = logs.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        (logs, tracing::subscriber::set_default(sub))
    }

    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Flips a byte in the body of the payload `seq` of `sink` points to, on disk.
fn damage_payload(store: &Store, sink: &str, seq: u64) {
    let inner = store.current().unwrap();
    let raw = inner
        .sink(sink)
        .unwrap()
        .outbox
        .get(keys::seq(seq))
        .unwrap()
        .unwrap();
    let loc = payloads::Header::decode(&raw).unwrap().loc;
    let path = store
        .dir()
        .join(payloads::DIR)
        .join(format!("{:016x}.seg", loc.seg));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[loc.offset as usize + 8 + 1] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn an_entry_whose_payload_is_damaged_becomes_a_dead_letter_and_the_rest_flow() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = store.enqueue("s", &entry("a", 1)).unwrap().seq();
    let b = store.enqueue("s", &entry("b", 2)).unwrap().seq();
    damage_payload(&store, "s", a);

    let none = std::collections::HashSet::new();
    assert_eq!(
        store.due_skipping("s", 10, 10, &none).unwrap(),
        vec![(b, entry("b", 2))]
    );
    let letters = store.dead_letters("s").unwrap();
    assert_eq!(letters.len(), 1);
    let (seq, letter) = &letters[0];
    assert_eq!(*seq, a);
    for part in ["sink s", &format!("seq {a}"), "CRC mismatch"] {
        assert!(letter.reason.contains(part), "{part}: {}", letter.reason);
    }
    assert!(
        letter
            .unreadable
            .as_deref()
            .is_some_and(|why| why.contains("CRC mismatch"))
    );
    // What the header knew is kept; an empty stand-in under the payload's id.
    assert_eq!(letter.entry.payload.id(), "a");
    assert!(letter.entry.payload.events().is_empty());
    assert_eq!(letter.entry.enqueued_at_ms, 1);
    let stats = store.sink_stats().unwrap()["s"];
    assert_eq!((stats.depth, stats.dead_letters), (1, 1));
    assert_eq!(store.oldest_enqueued_at("s"), Some(2));
    // Asked again, the sink has only b.
    assert_eq!(ids(&store.due("s", 10, 10).unwrap()), ["b"]);
    // Nothing to send: a replay is refused and the letter kept.
    assert_eq!(
        store.replay_dead_letter("s", a, 20).unwrap(),
        Replayed::Unreadable
    );
    assert_eq!(store.depth("s"), 1);
    assert_eq!(store.dead_letters("s").unwrap(), letters);

    drop(letters);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.due_skipping("s", 10, 10, &none).unwrap(),
        vec![(b, entry("b", 2))]
    );
    let stats = store.sink_stats().unwrap()["s"];
    assert_eq!((stats.depth, stats.dead_letters), (1, 1));
    assert_eq!(store.dead_letters("s").unwrap()[0].0, a);
}

/// An entry whose stored value is neither a header nor a whole entry that decodes does not
/// keep the store from opening: it is moved to the dead letters there.
#[test]
fn an_entry_that_does_not_decode_is_moved_aside_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let bad = store.enqueue("s", &entry("a", 1)).unwrap().seq();
    let good = store.enqueue("s", &entry("b", 2)).unwrap().seq();
    let outbox = store.current().unwrap().sink("s").unwrap().outbox.clone();
    outbox.insert(keys::seq(bad), &b"{not json"[..]).unwrap();
    drop(outbox);
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(ids(&store.due("s", 10, 10).unwrap()), ["b"]);
    let letters = store.dead_letters("s").unwrap();
    assert_eq!(letters.len(), 1);
    let (seq, letter) = &letters[0];
    assert_eq!(*seq, bad);
    assert_eq!(letter.entry.payload.id(), format!("unreadable/s/{bad}"));
    assert!(
        letter.reason.contains(&format!("outbox/s entry {bad}")),
        "{}",
        letter.reason
    );
    let stats = store.sink_stats().unwrap()["s"];
    assert_eq!((stats.depth, stats.dead_letters), (1, 1));
    assert!(store.ack("s", good).unwrap());
}

#[test]
fn prune_passes_over_a_record_it_cannot_read_and_names_its_key() {
    let (logs, _guard) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // An expired guard whose entry was delivered, and a resolved record due to go.
    let seq = store.enqueue("s", &entry("p", 0)).unwrap().seq();
    assert!(store.ack("s", seq).unwrap());
    store
        .put_record(
            "prod",
            Domain::Alerts,
            "fp-old",
            &record(RecordStatus::Resolved, Some(5)),
        )
        .unwrap();
    let bad = keys::record("prod", Domain::Alerts, "fp-bad");
    let inner = store.current().unwrap();
    inner.records.insert(&bad, &b"{not json"[..]).unwrap();

    let report = store.prune(10_000, 100, 100).unwrap();
    assert_eq!((report.records_removed, report.guards_removed), (1, 1));
    assert!(inner.records.contains_key(&bad).unwrap(), "kept");
    let text = logs.text();
    assert!(text.contains("records prod/alerts/fp-bad"), "{text}");
    assert_eq!(
        store.prune(10_000, 100, 100).unwrap(),
        PruneReport::default()
    );
}

/// A value that does not decode stops no pruner: each logs the value's tree and key and goes
/// on. What cannot be read is kept, except in the caches (`details`, `pairs`), where deleting
/// it only means fetching it again; listings leave it out, logging it by its key.
#[test]
fn pruners_pass_over_values_they_cannot_read() {
    let (logs, _guard) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let inner = store.current().unwrap();
    let junk = &b"{not json"[..];
    let seq = store.enqueue("s", &entry("p", 0)).unwrap().seq();
    assert!(store.dead_letter("s", seq, &letter(entry("p", 0))).unwrap());
    let dead = keys::seq(seq);
    inner.sink("s").unwrap().dead.insert(dead, junk).unwrap();
    let suppressed = keys::guard("chat", "ev-bad");
    inner.suppressed.insert(&suppressed, junk).unwrap();
    let mut quarantined = keys::scope("prod", Domain::Alerts);
    quarantined.extend_from_slice(b"digest-bad");
    inner.quarantine.insert(&quarantined, junk).unwrap();
    let mut audit = 5i64.to_be_bytes().to_vec();
    audit.extend_from_slice(&6u64.to_be_bytes());
    inner.audit.insert(&audit, junk).unwrap();
    let mut detail = keys::prefixed("en");
    detail.extend_from_slice(&7i64.to_be_bytes());
    inner.details.insert(&detail, junk).unwrap();
    let mut pair = keys::prefixed("prod");
    for part in ["c1", "120", "u1"] {
        pair.extend_from_slice(&keys::prefixed(part));
    }
    pair.extend_from_slice(b"redis-0");
    inner.pairs.insert(&pair, junk).unwrap();
    let mut held = keys::prefixed("silence-1");
    held.extend_from_slice(&keys::guard("chat", "ev-bad"));
    inner.held.insert(&held, junk).unwrap();
    let ok = Held {
        v: HELD_SCHEMA,
        at_ms: 1,
        silence: "silence-1".into(),
        route: "routes[0]".into(),
        sink: "chat".into(),
        generation: None,
        event: event("ev-ok"),
        opening_held: false,
    };
    store.hold(&ok).unwrap();

    assert_eq!(store.prune_dead_letters(i64::MAX).unwrap(), 0);
    assert_eq!(store.prune_suppressed(i64::MAX).unwrap(), 0);
    assert_eq!(store.prune_quarantined(i64::MAX).unwrap(), 0);
    assert_eq!(store.prune_audit(0).unwrap(), 0);
    assert!(store.details("en", 0).unwrap().is_empty());
    assert_eq!(store.prune_details(0).unwrap(), 1);
    assert_eq!(store.prune_pairs(0).unwrap(), 1);
    assert_eq!(
        store.held_by("silence-1", 1).unwrap(),
        vec![ok.clone()],
        "the one that cannot be read does not count"
    );
    let mut each = Vec::new();
    store.each_held("silence-1", |h| each.push(h)).unwrap();
    assert_eq!(each, vec![ok]);
    assert!(inner.sink("s").unwrap().dead.contains_key(dead).unwrap());
    for (tree, key) in [
        (&inner.suppressed, &suppressed),
        (&inner.quarantine, &quarantined),
        (&inner.audit, &audit),
        (&inner.held, &held),
    ] {
        assert!(tree.contains_key(key).unwrap(), "kept");
    }
    assert!(!inner.details.contains_key(&detail).unwrap(), "cache");
    assert!(!inner.pairs.contains_key(&pair).unwrap(), "cache");
    let text = logs.text();
    for named in [
        format!("dead/s letter {seq}"),
        "suppressed chat/ev-bad".into(),
        "quarantine prod/alerts/digest-bad".into(),
        "audit 5/6".into(),
        "details en/7".into(),
        "pairs prod/c1/120/u1/redis-0".into(),
        "held silence-1/chat/ev-bad".into(),
    ] {
        assert!(text.contains(&named), "{named}: {text}");
    }
    // Listings leave a value they cannot read out (logged, naming it) and show the rest.
    let good = suppression(1, "ev-ok");
    store.record_suppressed(&good).unwrap();
    assert_eq!(store.suppressed().unwrap(), vec![good]);
    assert!(store.quarantined().unwrap().is_empty());
    assert!(store.audit_log(10).unwrap().is_empty());
    let text = logs.text();
    assert_eq!(
        text.matches("the listing leaves it out").count(),
        3,
        "{text}"
    );
}

#[test]
fn a_reminder_that_does_not_decode_does_not_stop_the_store_from_opening() {
    let (logs, _guard) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let bad = reminders::reminder_key("chat", "routes[0]", "fp-bad");
    store
        .current()
        .unwrap()
        .reminders
        .insert(&bad, &b"{not json"[..])
        .unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.next_reminder_due(), None);
    assert!(store.due_reminders(i64::MAX, 10).unwrap().is_empty());
    let text = logs.text();
    assert!(text.contains("reminders chat/routes[0]/fp-bad"), "{text}");
}

#[test]
fn a_dead_letter_that_does_not_decode_is_listed_and_can_be_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let seq = store.enqueue("s", &entry("p", 0)).unwrap().seq();
    assert!(store.dead_letter("s", seq, &letter(entry("p", 0))).unwrap());
    let s = store.current().unwrap().sink("s").unwrap();
    s.dead.insert(keys::seq(seq), &b"{not json"[..]).unwrap();
    drop(s);
    assert_eq!(store.prune_dead_letters(i64::MAX).unwrap(), 0, "kept");

    let listed = store.dead_letters("s").unwrap();
    assert_eq!(listed.len(), 1);
    let (listed_seq, shown) = &listed[0];
    assert_eq!(*listed_seq, seq);
    assert!(
        shown
            .unreadable
            .as_deref()
            .is_some_and(|why| why.contains(&format!("dead/s letter {seq}"))),
        "{shown:?}"
    );
    assert_eq!(
        store.replay_dead_letter("s", seq, 5).unwrap(),
        Replayed::Unreadable
    );
    assert_eq!(store.depth("s"), 0, "nothing enqueued");

    let removed = store.remove_dead_letter("s", seq).unwrap();
    assert_eq!(
        removed.as_ref(),
        Some(shown),
        "removed, reported unreadable"
    );
    assert_eq!(store.remove_dead_letter("s", seq).unwrap(), None, "gone");
    assert!(store.dead_letters("s").unwrap().is_empty());
    assert_eq!(store.sink_stats().unwrap()["s"].dead_letters, 0);
}
