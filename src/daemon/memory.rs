//! Handing start-up memory back once the daemon has settled.
//!
//! Measured on an idle daemon (one source polled every second, one webhook sink; README,
//! "Racing Alertmanager"): of about 18 MB resident after the first polls, 10 MB were the
//! binary's code and 1.7 MB its read-only data, paged in by the start (argument and config
//! parsing, TLS setup, store recovery, the first polls). Idle polling maps back about 6 MB of
//! that code (the kernel maps 64 KiB around each page touched, and large page-cache folios
//! whole); the rest stays resident only because nothing asks for it back until the machine
//! is short of memory.
//!
//! The binary (`src/main.rs`, `src/image.rs`: the library forbids `unsafe`) [`install`]s the
//! release: it drops the page-table entries of the executable's code and read-only data
//! (`madvise(MADV_DONTNEED)`; the pages stay in the page cache, and whatever the running daemon
//! uses next is mapped again by a minor fault), never a page that can hold something written,
//! and has mimalloc return the free memory it caches. [`Settle`] runs it once, after every
//! source × domain has had its first poll (a source that cannot connect counts once it has
//! failed).

use std::sync::OnceLock;
use std::time::Duration;

use crate::health::undecided;
use crate::task::{Label, Next, Task, TaskError};

use super::health::Health;

/// How often [`Settle`] looks whether the first polls are done.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What [`release_startup`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Bytes of code and read-only data whose mappings were dropped (0 without a release
    /// [`install`]ed).
    pub mapped_bytes: usize,
    /// Resident set before and after, in KiB (`VmRSS`), when `/proc` tells.
    pub rss_kib: Option<(u64, u64)>,
}

/// The binary's release: drops what it can, returns the bytes of mappings dropped.
static RELEASE: OnceLock<fn() -> usize> = OnceLock::new();

/// Installs the release [`release_startup`] runs (the first install wins).
pub fn install(release: fn() -> usize) {
    let _ = RELEASE.set(release);
}

/// Runs the [`install`]ed release, measuring the resident set around it.
pub fn release_startup() -> Released {
    let before = rss_kib();
    let mapped_bytes = RELEASE.get().map_or(0, |release| release());
    Released {
        mapped_bytes,
        rss_kib: before.zip(rss_kib()),
    }
}

/// `VmRSS` of this process in KiB.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The task that waits for every source × domain's first poll, then [`release_startup`]s.
pub struct Settle {
    health: Health,
}

impl Settle {
    /// A settle task looking at `health`.
    pub fn new(health: Health) -> Settle {
        Settle { health }
    }
}

impl Task for Settle {
    fn label(&self) -> Label {
        Label::new("settle")
    }

    async fn step(&mut self) -> Result<Next, TaskError> {
        let now_ms = crate::clock::unix_ms(time::OffsetDateTime::now_utc());
        let snapshot = self.health.snapshot(now_ms);
        if !undecided(&snapshot.sources).is_empty() {
            return Ok(Next::After(LOOK_EVERY));
        }
        let released = tokio::task::spawn_blocking(release_startup)
            .await
            .unwrap_or_default();
        let (before, after) = released.rss_kib.unwrap_or_default();
        tracing::debug!(
            mapped_kib = released.mapped_bytes / 1024,
            rss_before_kib = before,
            rss_after_kib = after,
            "First polls done: start-up code and heap handed back."
        );
        Ok(Next::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resident_set_is_read() {
        let kib = rss_kib().expect("VmRSS in /proc/self/status");
        assert!(kib > 100, "{kib} KiB");
    }

    #[test]
    fn a_release_without_an_install_drops_nothing() {
        // The library's tests never install one (only the binary does).
        assert_eq!(release_startup().mapped_bytes, 0);
    }
}
