//! What sled 0.34.7 costs per key, on disk and in memory, for the key layouts the store has
//! or could have (issue 13's disk and memory targets): N findings written the way the store
//! writes them — a lifecycle record (random key: source and domain, then a 64-character
//! fingerprint), an outbox entry's header (sequential key from `generate_id`) and an enqueue
//! guard (random key: the sink, then a 64-character payload id) — with a flush every 1,000, as
//! a poll does, sled opened as the store opens it (1 MiB cache).
//!
//! `cargo bench --bench sled_cost [-- N]` (default 50,000) runs each layout in a fresh process
//! (memory is read from `/proc/self/status`, so one layout must not inherit another's heap) and
//! prints one table: the state directory's size per finding and the anonymous memory that
//! grew while writing, per finding. Not a test: nothing is asserted (the README has the
//! figures). Values are incompressible bytes of the store's sizes (a packed record 97, a
//! header 90, a guard 16), so sled's own costs show, not the data's.

use std::path::Path;
use std::process::Command;

// The library sets the global allocator (mimalloc): link it, so this measures what the
// daemon's allocator holds.
use sasrelay as _;

/// The layouts measured: a name, what each finding writes.
const LAYOUTS: &[(&str, &[Write])] = &[
    ("records alone (random keys)", &[Write::Record]),
    ("outbox headers alone (sequential keys)", &[Write::Header]),
    ("enqueue guards alone (random keys)", &[Write::Guard]),
    (
        "the store today: record + header + guard",
        &[Write::Record, Write::Header, Write::Guard],
    ),
    (
        "one key per entry: record + header under the guard's key",
        &[Write::Record, Write::GuardWithHeader],
    ),
];

#[derive(Clone, Copy, Debug)]
enum Write {
    Record,
    Header,
    Guard,
    GuardWithHeader,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; a child gets `--layout I N DIR`.
    if let Some(i) = args.iter().position(|a| a == "--layout") {
        let layout: usize = args[i + 1].parse().expect("layout");
        let n: u64 = args[i + 2].parse().expect("n");
        run_layout(LAYOUTS[layout].1, n, Path::new(&args[i + 3]));
        return;
    }
    let n: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(50_000);
    let exe = std::env::current_exe().expect("own path");
    println!("sled_cost: {n} findings per layout, a flush every 1,000, 1 MiB cache\n");
    println!("| layout | keys per finding | disk B per finding | anonymous memory B per finding |");
    println!("|---|---:|---:|---:|");
    for (i, (name, writes)) in LAYOUTS.iter().enumerate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new(&exe)
            .args(["--layout", &i.to_string(), &n.to_string()])
            .arg(dir.path().join("db"))
            .output()
            .expect("run a layout");
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(anon_growth_kib) = text
            .lines()
            .find_map(|l| l.strip_prefix("anon_growth_kib "))
            .and_then(|v| v.trim().parse::<u64>().ok())
        else {
            println!(
                "| {name} | FAILED: {} | | |",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            continue;
        };
        let disk = dir_bytes(&dir.path().join("db"));
        println!(
            "| {name} | {} | {:.0} | {:.0} |",
            writes.len(),
            disk as f64 / n as f64,
            anon_growth_kib as f64 * 1024.0 / n as f64
        );
    }
}

/// One layout, in this (fresh) process; prints the growth of `RssAnon`.
fn run_layout(writes: &[Write], n: u64, dir: &Path) {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(1 << 20)
        .open()
        .expect("sled");
    let records = db.open_tree("records").expect("tree");
    let outbox = db.open_tree("outbox/hook").expect("tree");
    let guards = db.open_tree("enq").expect("tree");
    let before = anon_kib();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut bytes = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                // xorshift: incompressible, reproducible.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    };
    for i in 0..n {
        let id = hex::encode(bytes(32));
        for w in writes {
            match w {
                Write::Record => {
                    let mut key = prefixed(&["sim", "alerts"]);
                    key.extend_from_slice(id.as_bytes());
                    records.insert(key, bytes(97)).expect("insert");
                }
                Write::Header => {
                    let seq = db.generate_id().expect("id");
                    outbox.insert(seq.to_be_bytes(), bytes(90)).expect("insert");
                }
                Write::Guard => {
                    let mut key = prefixed(&["hook"]);
                    key.extend_from_slice(id.as_bytes());
                    guards.insert(key, bytes(16)).expect("insert");
                }
                Write::GuardWithHeader => {
                    let mut key = prefixed(&["hook"]);
                    key.extend_from_slice(id.as_bytes());
                    guards.insert(key, bytes(98)).expect("insert");
                }
            }
        }
        if i % 1_000 == 999 {
            db.flush().expect("flush");
        }
    }
    db.flush().expect("flush");
    println!("anon_growth_kib {}", anon_kib().saturating_sub(before));
}

/// Length-prefixed parts, as the store's keys are.
fn prefixed(parts: &[&str]) -> Vec<u8> {
    let mut key = Vec::new();
    for p in parts {
        key.extend_from_slice(&(p.len() as u32).to_be_bytes());
        key.extend_from_slice(p.as_bytes());
    }
    key
}

fn anon_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("RssAnon:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Sum of the sizes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        match entry.metadata() {
            Ok(m) if m.is_dir() => total += dir_bytes(&path),
            Ok(m) => total += m.len(),
            Err(_) => {}
        }
    }
    total
}
