//! kill -9 crash loop for the store (docs/dependencies.md §5 R1, at the store level).
//!
//! The test binary runs itself as a child in writer mode (selected by an environment
//! variable). The child enqueues numbered entries, acks every 5th and reschedules every 7th
//! right after enqueueing it, prints `wrote <n>`, and after every batch flushes and prints
//! `flushed <n>`. The parent reads a seeded-random number of flushes and then of writes,
//! SIGKILLs the child
//! (`Child::kill`), reopens the store and checks:
//!
//! - every entry up to the last number it read is there (acked ones as guards only);
//! - the survivors form a prefix of the operation history: no holes, every ack and
//!   reschedule issued before the last surviving enqueue survived too;
//! - every waiting entry has its guard, and no payload is in the outbox twice;
//! - enqueueing everything again changes nothing;
//! - and, before each kill, that opening the directory while the child holds it fails with
//!   the child's pid.
//!
//! Every third round, another child is killed first as soon as it says it is opening the
//! store (sled writes a snapshot while it opens).
//!
//! Reading the child's stdout is the only synchronisation; nothing sleeps.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sasrelay::event::OutboxEntry;
use sasrelay::store::{Enqueued, Store, StoreError};

const WRITER_DIR: &str = "SASRELAY_STORE_CRASH_WRITER_DIR";
const WRITER_START: &str = "SASRELAY_STORE_CRASH_WRITER_START";
const WRITER_BATCH: &str = "SASRELAY_STORE_CRASH_WRITER_BATCH";
/// This test's function name: the writer child runs this binary again with only this test.
const TEST_NAME: &str = "kill_9_keeps_every_flushed_entry_and_a_prefix_of_the_rest";
const SINK: &str = "hook";
const KILLS: usize = 16;
const SEED: u64 = 0x5a5_2e1a7;
/// How many already-written numbers a restarted writer enqueues again (a re-poll).
const REPLAY: u64 = 50;

/// Entry number `i`: 256 B to 4 KiB, so that sled's 512 KiB IO buffers sometimes fill (and
/// reach the file without a flush) in the middle of a batch.
fn entry(i: u64) -> OutboxEntry {
    super::entry(&format!("e{i}"), i as i64, 256 + (i as usize * 997) % 3840)
}

fn rescheduled(i: u64) -> OutboxEntry {
    let mut e = entry(i);
    e.attempts = 1;
    e.next_attempt_at_ms = i as i64 + 1_000;
    e.last_error = Some("HTTP 503".to_string());
    e
}

#[test]
fn kill_9_keeps_every_flushed_entry_and_a_prefix_of_the_rest() {
    if let Ok(dir) = std::env::var(WRITER_DIR) {
        writer(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(SEED);
    // Highest number enqueued so far (all of 1..=m are guarded).
    let mut m = 0u64;
    let mut unflushed_survivors = 0;
    for kill in 0..KILLS {
        if kill % 3 == 1 {
            // Kill one writer while it opens the store (recovery writes a snapshot then).
            let mut child = spawn_writer(dir.path(), m + 1, 1);
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            for line in lines.by_ref() {
                if line.unwrap() == "opening" {
                    break;
                }
            }
            child.kill().unwrap();
            child.wait().unwrap();
            drop(lines);
            // The kill may also land after the open, once writing has begun.
            let before = m;
            m = check(&Store::open(dir.path()).unwrap(), m, kill);
            println!(
                "kill {kill}: killed a writer as it opened; survived up to {m} (was {before})"
            );
        }
        let batch: u64 = rng.random_range(1..=300);
        let flushes_before_kill: usize = rng.random_range(1..=12);
        let writes_after_flush: u64 = rng.random_range(0..batch);
        let start = m + 1;
        let mut child = spawn_writer(dir.path(), start, batch);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill after `flushes_before_kill` flushes and then `writes_after_flush` more
        // enqueues: somewhere inside a batch, or inside a flush.
        let mut reported = 0u64;
        let mut flushes = 0;
        let mut writes = 0;
        while flushes < flushes_before_kill || writes < writes_after_flush {
            let Some(line) = lines.next() else {
                let status = child.wait().unwrap();
                panic!("kill {kill}: the writer stopped after {flushes} flushes: {status}");
            };
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("flushed ") {
                reported = n.parse().unwrap();
                flushes += 1;
                writes = 0;
            } else if line.starts_with("wrote ") && flushes == flushes_before_kill {
                writes += 1;
            }
        }
        // While the writer runs, the directory is its alone.
        let err = Store::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, StoreError::Locked { pid: Some(pid), .. } if pid == child.id()),
            "kill {kill}: {err:?}"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        drop(lines);

        let store = Store::open(dir.path()).unwrap();
        let new_m = check(&store, reported, kill);
        assert!(new_m >= reported && reported >= start);
        unflushed_survivors += new_m - reported;
        println!(
            "kill {kill}: batch {batch}, killed {writes_after_flush} writes after flush {flushes_before_kill} ({reported}), survived up to {new_m}, depth {}",
            store.depth(SINK)
        );
        m = new_m;
    }
    println!(
        "{KILLS} kills, {m} entries written, {unflushed_survivors} unreported writes survived"
    );
}

fn spawn_writer(dir: &Path, start: u64, batch: u64) -> Child {
    crate::rerun::command(module_path!(), TEST_NAME)
        .env(WRITER_DIR, dir)
        .env(WRITER_START, start.to_string())
        .env(WRITER_BATCH, batch.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Checks the invariants after a kill; returns the highest number whose enqueue survived.
fn check(store: &Store, reported: u64, kill: usize) -> u64 {
    // Guards form a prefix 1..=m.
    let mut seqs = vec![0u64];
    let mut i = 1;
    while let Some(seq) = store.enqueued_seq(SINK, &format!("e{i}")).unwrap() {
        seqs.push(seq);
        i += 1;
    }
    let m = i - 1;
    assert!(
        m >= reported,
        "kill {kill}: lost flushed writes: {m} < {reported}"
    );
    for hole in m + 1..m + 2_000 {
        assert_eq!(
            store.enqueued_seq(SINK, &format!("e{hole}")).unwrap(),
            None,
            "kill {kill}: e{hole} survived but e{} did not",
            m + 1
        );
    }
    let waiting = store.due(SINK, i64::MAX, usize::MAX).unwrap();
    assert_eq!(waiting.len() as u64, store.depth(SINK));
    let mut seen = std::collections::BTreeSet::new();
    for (seq, e) in &waiting {
        let n: u64 = e.payload.id()[1..].parse().unwrap();
        assert!(seen.insert(n), "kill {kill}: e{n} is in the outbox twice");
        assert!(n <= m, "kill {kill}: e{n} waits without a guard");
        assert_eq!(
            seqs[n as usize], *seq,
            "kill {kill}: e{n}'s guard names another entry"
        );
    }
    for n in 1..=m {
        let present = seen.contains(&n);
        if !n.is_multiple_of(5) {
            assert!(present, "kill {kill}: e{n} was neither acked nor kept");
        } else if n < m {
            assert!(
                !present,
                "kill {kill}: e{n}'s ack was lost but a later write survived"
            );
        }
    }
    for (_, e) in &waiting {
        let n: u64 = e.payload.id()[1..].parse().unwrap();
        if n.is_multiple_of(7) && n < m {
            assert_eq!(
                e,
                &rescheduled(n),
                "kill {kill}: e{n}'s reschedule was lost"
            );
        }
    }
    // Enqueueing everything again is a no-op.
    let depth = store.depth(SINK);
    for n in 1..=m {
        assert_eq!(
            store.enqueue(SINK, &entry(n)).unwrap(),
            Enqueued::Duplicate(seqs[n as usize]),
            "kill {kill}: e{n}"
        );
    }
    assert_eq!(store.depth(SINK), depth);
    m
}

/// Writer mode: runs until killed (or until stdout breaks because the parent is gone).
fn writer(dir: &Path) {
    let start: u64 = std::env::var(WRITER_START).unwrap().parse().unwrap();
    let batch: u64 = std::env::var(WRITER_BATCH).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // libtest has printed "test <name> ... " without a newline: end that line first.
    println!("\nopening");
    let store = Store::open(dir).unwrap();
    for i in start.saturating_sub(REPLAY).max(1)..start + 1_000_000 {
        let seq = store.enqueue(SINK, &entry(i)).unwrap().seq();
        if i.is_multiple_of(5) {
            store.ack(SINK, seq).unwrap();
        } else if i.is_multiple_of(7) {
            store.reschedule(SINK, seq, &rescheduled(i)).unwrap();
        }
        if i >= start {
            println!("wrote {i}");
            if i.is_multiple_of(batch) {
                runtime.block_on(store.flush()).unwrap();
                println!("flushed {i}");
            }
        }
    }
}
