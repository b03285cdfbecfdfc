//! The store's own persisted records and the values its calls return.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of [`Cursor`]'s stored form.
pub const CURSOR_SCHEMA: u32 = 1;

/// Where polling of one source and domain stands. Stored as JSON in the `cursors` tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Schema version ([`CURSOR_SCHEMA`]).
    pub v: u32,
    /// Newest event time durably processed (unix ms), for domains that poll by time.
    #[serde(default)]
    pub watermark_ms: Option<i64>,
    /// The first full sync is done (`initial_sync` is not repeated).
    pub initialised: bool,
    /// When the last poll succeeded (unix ms).
    pub last_success_ms: i64,
    /// Snapshot domains: the statistics probe seen at the last full sweep (per-cluster counts);
    /// an unchanged probe lets a poll skip the sweep.
    #[serde(default)]
    pub probe: Option<String>,
    /// Snapshot domains: when the last full sweep ran (unix ms), for the periodic reconcile
    /// that catches changes the counts cannot show (one finding fixed, another opened).
    #[serde(default)]
    pub last_sweep_ms: Option<i64>,
    /// Windowed domains: the older part of windows that polls could not read within the page
    /// cap, resumed by the next polls (`None`: nothing left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<Backfill>,
}

/// What windowed polls still have to read ([`Cursor::backfill`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backfill {
    /// The listings to resume.
    pub remainders: Vec<Remainder>,
    /// Findings a first start has tracked silently so far (`initial_sync = "baseline"`); its
    /// summary is sent when no remainder of it is left.
    #[serde(default)]
    pub tracked: u64,
}

/// One listing to resume: the same query (cluster, listing, window), from the last page read,
/// whose records reach back to `cut_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remainder {
    /// Cluster filter (`None`: account-wide).
    #[serde(default)]
    pub cluster: Option<String>,
    /// Which listing (`pending_alerts`, `handled_alerts`, `firewall`).
    pub listing: String,
    /// Window start, unix ms (`None`: no lower bound).
    #[serde(default)]
    pub since_ms: Option<i64>,
    /// Window end, unix ms, where the query has one.
    #[serde(default)]
    pub until_ms: Option<i64>,
    /// The last page read.
    pub page: u32,
    /// The oldest time key read, unix ms.
    pub cut_ms: i64,
    /// Part of a first start's window.
    #[serde(default)]
    pub first_start: bool,
}

/// What [`Store::enqueue`](super::Store::enqueue) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// A new outbox entry with this sequence number.
    Inserted(u64),
    /// The payload was enqueued before (its guard holds this sequence number; the entry may
    /// since have been delivered or dead-lettered); nothing was written.
    Duplicate(u64),
}

impl Enqueued {
    /// The sequence number, new or existing.
    pub fn seq(self) -> u64 {
        match self {
            Enqueued::Inserted(seq) | Enqueued::Duplicate(seq) => seq,
        }
    }
}

/// What [`Store::replay_dead_letter`](super::Store::replay_dead_letter) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replayed {
    /// The payload is back in the outbox under this new sequence number, due at once, its
    /// attempts and age reset; the dead letter is gone.
    Requeued(u64),
    /// The payload's enqueue guard already names another entry (this dead letter was replayed
    /// before and a crash kept it, or the payload was enqueued again since): nothing was
    /// enqueued and the dead letter was removed, so a payload is never pending twice.
    Superseded(u64),
    /// No such dead letter.
    NotFound,
    /// The store could not read the dead letter's entry back
    /// ([`DeadLetter::unreadable`](crate::event::DeadLetter::unreadable)): there is nothing to
    /// send, so nothing was enqueued and the letter is kept; discard it.
    Unreadable,
}

/// What [`Store::prune`](super::Store::prune) removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Resolved lifecycle records older than the retention, deleted.
    pub records_removed: u64,
    /// Expired enqueue guards whose entry had left the outbox, deleted.
    pub guards_removed: u64,
    /// Expired guards kept because their entry is still waiting in an outbox.
    pub guards_kept_pending: u64,
}

/// One sink's queue figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Entries waiting in the outbox.
    pub depth: u64,
    /// Dead letters kept.
    pub dead_letters: u64,
    /// `enqueued_at_ms` of the oldest waiting entry.
    pub oldest_enqueued_at_ms: Option<i64>,
    /// Earliest `next_attempt_at_ms` among waiting entries.
    pub next_due_at_ms: Option<i64>,
}

/// Figures for metrics and `/readyz`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Bytes on disk: sled's `size_on_disk` plus the payload log's segments.
    pub size_on_disk: u64,
    /// Per sink that has or had entries since the store was opened.
    pub sinks: BTreeMap<String, SinkStats>,
    /// How long `Store::open` took (sled's recovery plus the reconcile pass), in ms.
    pub open_ms: u64,
}
