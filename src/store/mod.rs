//! The store: lifecycle records, poll cursors, the durable per-sink outbox with its enqueue
//! guards, dead letters, routing groups, reminders, silences and the suppression log, the
//! schema version and pruning. This is the only module that imports sled.
//!
//! ## Layout (one sled `Db` per state directory)
//!
//! | tree | key | value | owner |
//! |---|---|---|---|
//! | `meta` | `schema`, `epoch` | decimal schema version; the store's random id | here |
//! | `records` | `source`, `domain` (length-prefixed) ‖ fingerprint | [`Record`] JSON, packed with the record dictionary (`codec`; plain JSON before schema 3) | here |
//! | `cursors` | `source`, `domain` (length-prefixed) | [`Cursor`] JSON | here |
//! | `outbox/<sink>` | seq (u64 BE, from `generate_id`) | the entry's header: where its payload is in the payload log, attempts, due time, order hashes (binary, see `payloads::Header`); entries written by schema 1 hold the whole [`OutboxEntry`] JSON | here |
//! | `dead/<sink>` | the entry's seq | [`DeadLetter`] JSON | here |
//! | `enq` | `sink` (length-prefixed) ‖ payload id; `#group:<id>` (length-prefixed) ‖ event id | seq ‖ enqueued_at_ms (BE) | here, `groups` |
//! | `groups` | group id | [`GroupHeader`] JSON | `groups` |
//! | `members` | group id (length-prefixed) ‖ seq | the member event JSON | `groups` |
//! | `silences` | silence id | the silence JSON (its type belongs to routing) | `groups` |
//! | `suppressed` | sink (length-prefixed) ‖ event id | [`Suppressed`] JSON | `groups` |
//! | `reminders` | sink, route (length-prefixed) ‖ fingerprint | [`Reminder`] JSON | `reminders` |
//! | `quarantine` | `source`, `domain` (length-prefixed) ‖ digest | [`QuarantineEntry`] JSON | `quarantine` |
//! | `held` | silence id, sink (length-prefixed) ‖ event id | [`Held`] JSON: an event a silence holds back | `held` |
//! | `details` | language (length-prefixed) ‖ check id | baseline check detail JSON | `details` |
//! | `pairs` | source, scope, risk id, uuid (length-prefixed) ‖ container | [`StoredPair`] JSON: a baseline pair's last listing | `pairs` |
//! | `health` | a health condition's key; `probe` | [`HealthEpisode`](crate::event::HealthEpisode) JSON; the last write probe's time | `health` |
//! | `audit` | at_ms ‖ sled id (BE) | [`AuditEntry`] JSON: an action taken on a finding | `audit` |
//! | `audit_by_finding` | source (length-prefixed) ‖ finding id | the `audit` key of its latest successful action | `audit` |
//! | `spent_links` | an action link's nonce | [`SpentLink`] JSON: when it expires, when and by whom it was used | `links` |
//!
//! Values are JSON, LZ4-compressed above 512 bytes; records always, with a dictionary of their
//! own (`codec`). The `groups` and `reminders` submodules document their own write orders.
//!
//! Outbox payloads live outside sled, in the payload log (`payloads/` in the state directory,
//! the `payloads` submodule): appended once per event, however many sinks it goes to, zstd
//! with a frozen dictionary (`codec::PAYLOAD_DICT_V2`; `PAYLOAD_DICT` alone in schema 3, LZ4
//! with it before), referred to by the
//! entries' headers, and deleted a segment at a time once no entry points into it.
//!
//! Length prefixes (see `keys`) keep keys unambiguous whatever bytes names hold.
//!
//! ## Write order and crash safety
//!
//! sled 0.34.7 batches and transactions blow up and livelock under queue churn (see
//! `docs/dependencies.md` §0), so every write here is one key or one compare-and-swap. Recovery
//! after `kill -9` yields a prefix of the operation history, so each sequence below is safe to
//! cut after any step:
//!
//! - **enqueue**: append the payload to the payload log (or count one more reference to the
//!   same event's payload just appended for another sink), insert the entry's header at a
//!   fresh seq, then CAS the guard from absent to that seq. Cut after the append: a record no
//!   entry points to, deleted with its segment. Cut after the insert: an entry without a
//!   guard, which the startup reconcile pass adopts (creates its guard) or, if another entry
//!   already owns the guard, removes. Lost CAS: the new entry is removed (its payload
//!   reference released) and the caller gets [`Enqueued::Duplicate`].
//! - **ack**: remove the entry. The guard stays, so a re-poll cannot enqueue it again, until
//!   `prune` drops guards older than their TTL whose entry is gone.
//! - **dead letter**: insert into `dead/<sink>`, then remove from the outbox (releasing its
//!   payload reference). Cut in between: reconcile finds the seq in both and finishes the
//!   move. An entry that cannot be read back is moved the same way by the read that finds it
//!   (see "Values that cannot be read").
//! - **reschedule**: CAS the stored entry (its header) to its new attempt count and due time.
//!
//! Nothing is durable before [`Store::flush`]; the daemon flushes once per poll batch before
//! it advances a cursor, so a cursor never gets ahead of the outbox. A flush syncs the
//! payload log first, then sled, then deletes the segments nothing pointed into before it
//! began.
//!
//! ## Opening
//!
//! `open` takes sasrelay's own lock on the directory (`sasrelay.lock`, see `DirLock`),
//! deletes snapshots an interrupted start left unfinished (sled would refuse to open
//! otherwise), reads every key of every tree once (sled panics on some corrupt pages only
//! when it meets them; better at startup, as a clear error, than in the middle of a poll) and
//! repairs what a crash cut short. A marker file, written once a new store's schema is
//! durable, tells a store whose files sled could not read (it then opens them as empty) from
//! a new one. What no check here can see is sled dropping a damaged *tail* of its log; like a
//! `kill -9`, that loses recent writes and costs re-sent notifications, never lost ones,
//! because cursors are written after the outbox.
//!
//! ## Disk full
//!
//! A write or flush that finds the disk full fails with [`StoreError::DiskFull`], and so does
//! every later write of that sled instance, even once space is free: sled keeps its first IO
//! error. [`Store::reopen`] (retried until it succeeds) recovers; what was not flushed is lost,
//! as in a crash, so the caller must not have advanced a cursor past it.
//!
//! ## Memory
//!
//! Per sink, the seq, due time, enqueue time and order hashes (the findings it is about) of
//! every waiting entry are kept in memory (rebuilt at open), so `depth`, `next_due_at` and
//! `due` never scan sled (`Tree::len` is a full scan). `due_skipping` passes over an entry
//! while an earlier entry about one of its findings waits out a backoff. The dead-letter
//! count is kept the same way.
//!
//! ## Values that cannot be read
//!
//! A stored value that does not decode is named by its tree and key (`keys::show`) in the
//! error or the log line. Scans that clean up (`prune` and the other pruners) log it at
//! ERROR and pass over it, keeping it: nothing is deleted merely because it cannot be read,
//! except in the caches `details` and `pairs`, where deleting only means fetching again. A
//! reminder that does not decode is left out at open (it never sends) instead of failing the
//! open. The listings for operators (suppressions, quarantine, audit log) leave such a value
//! out, logged the same way, so one damaged value never hides the rest.
//!
//! An outbox entry that cannot be read back (its payload's record in the payload log gone or
//! failing its length or CRC check, its payload or its schema-1 value undecodable) would be
//! read first by its sink forever and stall everything behind it. The read that meets it
//! (`due`, `due_skipping`, `waiting`; at open, reconcile for a value that decodes as neither
//! header nor entry) moves it to the sink's dead letters instead, logged at ERROR, and goes
//! on: a [`DeadLetter`] whose `unreadable` says what failed, whose reason names the sink, seq
//! and error, and whose entry keeps what its header said with an empty digest standing in
//! for the payload. It is listed and can be discarded; a replay is refused
//! ([`Replayed::Unreadable`]). A dead letter whose own stored value does not decode is
//! listed, refused and discarded the same way. An IO error reading a payload is not taken for
//! damage: it fails the read, and the caller's `heal` reopens the store. At open, reconcile
//! makes an entry whose payload does not read back (a power loss leaves it, see `payloads`;
//! or damage while stopped) such a dead letter too, and also removes its guard, so that a
//! poll that finds its finding unrecorded enqueues the event anew.
//!
//! ## Calling from async code
//!
//! All methods but [`Store::flush`] are synchronous single-key operations that take
//! microseconds; calling them from a tokio task is fine. `prune`, `records` and
//! `dead_letters` scan a tree; call them from `spawn_blocking` when the trees are large.
//! [`Store::open`] and [`Store::reopen`] block (recovery, the full read, up to 5 s waiting
//! for sled threads of an instance just closed in this process): call `open` before starting
//! the runtime, and `reopen` from `spawn_blocking`.

mod audit;
mod codec;
mod details;
mod error;
mod groups;
mod health;
mod held;
mod keys;
mod links;
mod pairs;
mod payloads;
mod quarantine;
mod reminders;
mod types;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::event::{DeadLetter, OutboxEntry, Payload};
use crate::finding::Domain;
use crate::record::{Record, RecordStatus};

pub use audit::{AUDIT_KEPT, AUDIT_SCHEMA, AuditEntry, Handling};
pub use details::{DETAIL_SCHEMA, StoredDetail};
pub use error::StoreError;
pub use groups::{Closing, GROUP_SCHEMA, GroupAdded, GroupClosed, GroupHeader, Suppressed};
pub use held::{HELD_SCHEMA, Held, mute_holder, muted_by};
pub use links::SpentLink;
pub use pairs::{PAIR_SCHEMA, PairName, StoredPair};
pub use quarantine::{QUARANTINE_PER_SCOPE, QUARANTINE_SCHEMA, QuarantineEntry};
pub use reminders::{REMINDER_SCHEMA, Reminder};
pub use types::{
    Backfill, CURSOR_SCHEMA, Cursor, Enqueued, PruneReport, Remainder, Replayed, SinkStats,
    StoreStats,
};

/// Newest store schema this build reads and writes (the `schema` key in `meta`).
pub const STORE_SCHEMA: u32 = 4;

/// How long `open` waits for a lock still held by a sled thread of a store this process just
/// dropped.
const LINGERING_LOCK_WAIT: Duration = Duration::from_secs(5);

/// sled's page cache bound (its default is 1 GiB). Small on purpose: the store's working
/// set is the outbox heads and the records a page touches, and what is not cached is read
/// from the kernel's page cache. sled counts its cache by serialised size and holds about
/// twice that in memory (heaptrack: 8 MiB of nodes at a 4 MiB bound). At 64 MiB a
/// 50,000-alert first start peaked at 85–122 MiB RSS; at 8 MiB, 63–67 MiB; at 4 MiB,
/// 60–64.7 MiB; at 1 MiB, 57.7–59.7 MiB, all delivered within 2 % of the same time (README,
/// "How Security Center is read").
const CACHE_CAPACITY: u64 = 1 << 20;

const META_SCHEMA: &[u8] = b"schema";
/// File written once the new store's schema and epoch are durable; its presence with an empty
/// `meta` tree means sled lost the store's contents.
const MARKER_FILE: &str = "sasrelay.store";
/// The file [`DirLock`] locks.
const LOCK_FILE: &str = "sasrelay.lock";
const META_EPOCH: &[u8] = b"epoch";

/// The durable state of one sasrelay instance. Cheap to clone (an `Arc` inside); `Send + Sync`.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    dir: PathBuf,
    /// Never changes, across reopens too (checked).
    epoch: String,
    /// The open sled instance; `None` after a failed [`Store::reopen`]. Calls clone the `Arc`
    /// and release the lock at once; `reopen` takes it for writing.
    slot: RwLock<Option<Arc<Inner>>>,
    /// Handling actions under way (not in sled: see `audit`).
    under_way: audit::UnderWay,
    _lock: DirLock,
}

/// One open sled instance with its trees and indexes.
struct Inner {
    dir: PathBuf,
    db: sled::Db,
    records: sled::Tree,
    cursors: sled::Tree,
    guards: sled::Tree,
    groups: sled::Tree,
    members: sled::Tree,
    silences: sled::Tree,
    suppressed: sled::Tree,
    /// Open groups; every group write happens with it locked.
    group_index: Mutex<groups::GroupIndex>,
    reminders: sled::Tree,
    quarantine: sled::Tree,
    details: sled::Tree,
    pairs: sled::Tree,
    held: sled::Tree,
    health: sled::Tree,
    audit: sled::Tree,
    audit_by_finding: sled::Tree,
    spent_links: sled::Tree,
    /// Outbox payloads, outside sled.
    payloads: Arc<payloads::PayloadLog>,
    /// Reminder due times; every reminder write happens with it locked.
    reminder_index: Mutex<reminders::ReminderIndex>,
    /// Sinks that have an outbox or dead-letter tree. Grows only.
    sinks: RwLock<HashMap<String, Arc<Sink>>>,
    epoch: String,
    open_ms: u64,
}

/// sasrelay's own lock on a state directory: an exclusive `flock` on `sasrelay.lock`, held
/// for the life of a [`Store`] (across reopens) and released when it is dropped, at once.
///
/// sled has a lock of its own, but it cannot serve: it is taken inside `sled::open`, after
/// the moment leftovers of an interrupted open must be cleaned up (see
/// [`remove_unfinished_snapshots`]), and it lingers for a moment after a store is dropped
/// while sled IO threads finish.
struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| error::from_io(dir, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    dir: dir.to_path_buf(),
                    pid: error::read_pid(dir),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(error::from_io(dir, e)),
        }
        // Names the holder in the `Locked` error other processes report.
        std::fs::write(
            dir.join(error::PID_FILE),
            format!("{}\n", std::process::id()),
        )
        .map_err(|e| error::from_io(dir, e))?;
        Ok(DirLock { _file: file })
    }
}

/// Deletes `snap.*.generating` files. sled writes a snapshot under that name during `open`
/// and renames it when complete; an open interrupted by a crash or a full disk leaves it
/// behind, empty or partial, and sled then takes it for the newest snapshot and fails every
/// later open with "corrupt snapshot" (upstream #1527, #1533; reproduced here by opening on a
/// full disk). The unfinished file was never in use: the previous snapshot and the log hold
/// everything. Only called with the [`DirLock`] held and no sled instance open.
fn remove_unfinished_snapshots(dir: &Path) -> Result<(), StoreError> {
    for entry in std::fs::read_dir(dir).map_err(|e| error::from_io(dir, e))? {
        let entry = entry.map_err(|e| error::from_io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(dir = %dir.display(), file = %name, "Removing a snapshot an interrupted start left unfinished.");
            std::fs::remove_file(entry.path()).map_err(|e| error::from_io(dir, e))?;
        }
    }
    Ok(())
}

/// Opens sled in `dir`, with the [`DirLock`] held. If sled reports its own lock as held, it
/// is a sled IO thread of a store this process just dropped finishing its last write (any
/// other sasrelay would hold the `DirLock`): wait for it, up to [`LINGERING_LOCK_WAIT`].
fn open_sled(dir: &Path) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new().path(dir).cache_capacity(CACHE_CAPACITY);
    let deadline = Instant::now() + LINGERING_LOCK_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        let err = match catch_panic(dir, || config.open())? {
            Ok(db) => return Ok(db),
            Err(e) => error::from_sled(dir, e),
        };
        match err {
            StoreError::Locked { .. } if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            err => return Err(err),
        }
    }
}

/// One sink's trees and in-memory index. Every outbox write for the sink happens with `index`
/// locked, so the index always matches the tree.
struct Sink {
    outbox: sled::Tree,
    dead: sled::Tree,
    index: Mutex<SinkIndex>,
}

#[derive(Default)]
struct SinkIndex {
    /// Waiting entries by seq (enqueue order).
    pending: BTreeMap<u64, Pending>,
    /// `(next_attempt_at_ms, seq)` of every waiting entry.
    schedule: BTreeSet<(i64, u64)>,
    /// `(order hash, seq)` of every waiting entry (see `Payload::order_hashes`).
    order: BTreeSet<(u64, u64)>,
    dead_letters: u64,
}

struct Pending {
    next_attempt_at_ms: i64,
    enqueued_at_ms: i64,
    order: Box<[u64]>,
}

impl SinkIndex {
    fn insert(&mut self, seq: u64, next_attempt_at_ms: i64, enqueued_at_ms: i64, order: &[u64]) {
        self.remove(seq);
        self.schedule.insert((next_attempt_at_ms, seq));
        self.order.extend(order.iter().map(|&h| (h, seq)));
        self.pending.insert(
            seq,
            Pending {
                next_attempt_at_ms,
                enqueued_at_ms,
                order: order.into(),
            },
        );
    }

    /// A waiting entry's new due time.
    fn set_due(&mut self, seq: u64, next_attempt_at_ms: i64) {
        if let Some(p) = self.pending.get_mut(&seq) {
            self.schedule.remove(&(p.next_attempt_at_ms, seq));
            p.next_attempt_at_ms = next_attempt_at_ms;
            self.schedule.insert((next_attempt_at_ms, seq));
        }
    }

    fn remove(&mut self, seq: u64) {
        if let Some(old) = self.pending.remove(&seq) {
            self.schedule.remove(&(old.next_attempt_at_ms, seq));
            for &h in &old.order {
                self.order.remove(&(h, seq));
            }
        }
    }

    /// Whether an earlier entry about one of the findings `order` names waits out a backoff
    /// (is not due at `now_ms`): then `seq` must wait too, so one finding's events reach the
    /// sink in the order they were enqueued. (An earlier entry that is due or in flight is
    /// read or held by the worker, which orders the two itself.)
    fn waits_for_earlier(&self, seq: u64, order: &[u64], now_ms: i64) -> bool {
        order.iter().any(|&h| {
            self.order.range((h, 0)..(h, seq)).any(|&(_, earlier)| {
                self.pending
                    .get(&earlier)
                    .is_some_and(|p| p.next_attempt_at_ms > now_ms)
            })
        })
    }

    fn stats(&self) -> SinkStats {
        SinkStats {
            depth: self.pending.len() as u64,
            dead_letters: self.dead_letters,
            oldest_enqueued_at_ms: self.pending.values().next().map(|p| p.enqueued_at_ms),
            next_due_at_ms: self.schedule.first().map(|&(at, _)| at),
        }
    }
}

impl Sink {
    fn lock(&self) -> MutexGuard<'_, SinkIndex> {
        // A panic while the lock was held happened between two single-key writes, each of
        // which is consistent on its own; the index may be one step behind, which the next
        // open repairs. Keep going rather than poison every later call.
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Maps sled results to [`StoreError`]s that name the directory.
trait At<T> {
    fn at(self, dir: &Path) -> Result<T, StoreError>;
}

impl<T> At<T> for sled::Result<T> {
    fn at(self, dir: &Path) -> Result<T, StoreError> {
        self.map_err(|e| error::from_sled(dir, e))
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.shared.dir)
            .field("epoch", &self.shared.epoch)
            .finish_non_exhaustive()
    }
}

/// What the startup reconcile pass repaired.
#[derive(Debug, Default)]
struct Repairs {
    guards_recreated: u64,
    duplicates_removed: u64,
    dead_letter_moves_finished: u64,
    payloads_lost: u64,
    /// Entries whose stored value did not decode, moved to the dead letters.
    unreadable_moved: u64,
}

impl Repairs {
    fn any(&self) -> bool {
        self.guards_recreated
            + self.duplicates_removed
            + self.dead_letter_moves_finished
            + self.payloads_lost
            + self.unreadable_moved
            > 0
    }
}

/// Why an outbox entry could not be loaded.
enum LoadError {
    /// Its stored value or its payload is damaged or gone: it can never be sent.
    Unreadable {
        /// Its header, when that much decoded (boxed: the common result stays small).
        header: Option<Box<payloads::Header>>,
        /// What failed, naming the entry.
        why: String,
    },
    /// Reading failed in a way that may pass (IO, sled).
    Store(StoreError),
}

impl LoadError {
    /// A decode error of the entry or its payload: unreadable.
    fn unreadable(header: Option<Box<payloads::Header>>, e: StoreError) -> LoadError {
        let why = match e {
            StoreError::Codec { what, source, .. } => format!("{what}: {source}"),
            other => return LoadError::Store(other),
        };
        LoadError::Unreadable { header, why }
    }
}

/// The dead letter of the outbox entry at `sink`'s `seq` that cannot be read back because
/// `why`: the attempts and times of its header (when it decoded), an empty digest standing in
/// for the payload, under the payload's id (`unreadable/<sink>/<seq>` when unknown), and
/// [`DeadLetter::unreadable`] set, so that it is listed and can be discarded but never
/// replayed.
fn unreadable_letter(
    sink: &str,
    seq: u64,
    header: Option<&payloads::Header>,
    why: &str,
    dead_at_ms: i64,
) -> DeadLetter {
    let id = header.map_or_else(|| format!("unreadable/{sink}/{seq}"), |h| h.id.clone());
    let created_at =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(dead_at_ms) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let stand_in = crate::event::Digest {
        schema: crate::event::EVENT_SCHEMA,
        id,
        route: "unreadable".to_string(),
        group: BTreeMap::new(),
        created_at,
        events: Vec::new(),
    };
    DeadLetter {
        entry: OutboxEntry {
            v: crate::event::OUTBOX_SCHEMA,
            payload: Payload::Digest(stand_in),
            attempts: header.map_or(0, |h| h.attempts),
            enqueued_at_ms: header.map_or(dead_at_ms, |h| h.enqueued_at_ms),
            next_attempt_at_ms: header.map_or(dead_at_ms, |h| h.next_attempt_at_ms),
            last_error: header.and_then(|h| h.last_error.clone()),
        },
        dead_at_ms,
        reason: format!("sink {sink} entry seq {seq} cannot be read back: {why}"),
        last_response: None,
        unreadable: Some(why.to_string()),
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    ///
    /// Creates the directory, opens sled with a small page cache (1 MiB), checks the schema
    /// version, creates the epoch on first use, and reconciles the outbox with its guards (an entry
    /// written just before a crash may lack its guard). Fails with a [`StoreError`] naming the
    /// directory when another process (or another `Store` in this one) holds it, it is not
    /// writable, it is corrupt, the disk is full or a newer sasrelay wrote it; never panics,
    /// even when sled does. Blocks (see the module doc).
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            // A file in the way makes `create_dir_all` say "File exists"; say what is wrong.
            let e = if dir.exists() && !dir.is_dir() {
                std::io::Error::new(
                    std::io::ErrorKind::NotADirectory,
                    "it is a file, not a directory",
                )
            } else {
                e
            };
            error::from_io(dir, e)
        })?;
        let lock = DirLock::acquire(dir)?;
        let inner = Inner::open(dir)?;
        Ok(Store {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                epoch: inner.epoch.clone(),
                slot: RwLock::new(Some(Arc::new(inner))),
                under_way: audit::UnderWay::default(),
                _lock: lock,
            }),
        })
    }

    /// Closes sled and opens it again, for every clone of this store: recovery, reconcile and
    /// the in-memory indexes are redone from what is durable.
    ///
    /// Needed after a write failed with [`StoreError::DiskFull`] (or another IO error): sled
    /// keeps the first IO error of a log write and fails every later write and flush of that
    /// instance with it, even once space is free. Writes not yet flushed when it failed are
    /// lost, as in a crash; nothing flushed is. Other calls block while this runs (recovery,
    /// plus waiting for their own in-flight calls to finish). If opening fails (still no
    /// space), the store stays closed — calls fail with [`StoreError::Closed`] — until a later
    /// `reopen` succeeds.
    pub fn reopen(&self) -> Result<(), StoreError> {
        self.reopen_inner()
    }

    /// After `err` from a store call: when it is the kind sled does not recover from by
    /// itself (a full disk, an IO error, a closed store), tries [`Store::reopen`] (on a
    /// blocking thread: it reads the whole store) and logs the result. Callers retry their work
    /// afterwards; a failed reopen is retried on their next failure.
    pub async fn heal(&self, err: &StoreError) {
        if !matches!(
            err,
            StoreError::DiskFull { .. } | StoreError::Io { .. } | StoreError::Closed { .. }
        ) {
            return;
        }
        let store = self.clone();
        let reopened = tokio::task::spawn_blocking(move || store.reopen_inner())
            .await
            .unwrap_or_else(|e| Err(error::from_io(self.dir(), std::io::Error::other(e))));
        match reopened {
            Ok(()) => tracing::warn!(
                dir = %self.dir().display(),
                "Reopened the state store after a write failure; writes not yet flushed were lost and will be redone."
            ),
            Err(e) => {
                tracing::error!(error = %e, "The state store is still unusable; findings are not accepted until it recovers.")
            }
        }
    }

    fn reopen_inner(&self) -> Result<(), StoreError> {
        let mut slot = self
            .shared
            .slot
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // sled's file lock goes when the last handle on the old instance does; `open_sled`
        // waits for handles still held by calls in flight.
        drop(slot.take());
        let inner = Inner::open(&self.shared.dir)?;
        if inner.epoch != self.shared.epoch {
            return Err(StoreError::Corrupt {
                dir: self.shared.dir.clone(),
                detail: format!(
                    "its epoch changed from {} to {} while sasrelay ran",
                    self.shared.epoch, inner.epoch
                ),
            });
        }
        *slot = Some(Arc::new(inner));
        Ok(())
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// This store's random id, created with the store and never changed (the summary event's
    /// id depends on it, so a restart never re-sends a summary).
    pub fn epoch(&self) -> &str {
        &self.shared.epoch
    }

    /// Makes every write so far durable (sled `flush_async`: one fsync for everything written
    /// since the last flush). Call it once per poll batch, before advancing a cursor.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let inner = self.current()?;
        inner.flush().await
    }

    fn current(&self) -> Result<Arc<Inner>, StoreError> {
        self.shared
            .slot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| StoreError::Closed {
                dir: self.shared.dir.clone(),
            })
    }

    /// The record of `fingerprint` in `source`/`domain`.
    pub fn get_record(
        &self,
        source: &str,
        domain: Domain,
        fingerprint: &str,
    ) -> Result<Option<Record>, StoreError> {
        let inner = self.current()?;
        let key = keys::record(source, domain, fingerprint);
        match inner.records.get(&key).at(&inner.dir)? {
            Some(v) => Ok(Some(inner.decode(&v, || format!("record {fingerprint}"))?)),
            None => Ok(None),
        }
    }

    /// Writes the record of `fingerprint` in `source`/`domain`.
    pub fn put_record(
        &self,
        source: &str,
        domain: Domain,
        fingerprint: &str,
        record: &Record,
    ) -> Result<(), StoreError> {
        let inner = self.current()?;
        let value = inner.encode_record(record, || format!("record {fingerprint}"))?;
        inner
            .records
            .insert(keys::record(source, domain, fingerprint), value)
            .at(&inner.dir)?;
        Ok(())
    }

    /// Deletes the record of `fingerprint`; says whether there was one.
    pub fn remove_record(
        &self,
        source: &str,
        domain: Domain,
        fingerprint: &str,
    ) -> Result<bool, StoreError> {
        let inner = self.current()?;
        let old = inner
            .records
            .remove(keys::record(source, domain, fingerprint))
            .at(&inner.dir)?;
        Ok(old.is_some())
    }

    /// Every record of `source`/`domain`, by fingerprint (a prefix scan).
    pub fn records(
        &self,
        source: &str,
        domain: Domain,
    ) -> Result<Vec<(String, Record)>, StoreError> {
        let mut out = Vec::new();
        self.for_each_record(source, domain, |fp, r| out.push((fp, r)))?;
        Ok(out)
    }

    /// Calls `each` with every lifecycle record of `source`/`domain`, one at a time (a sweep's
    /// end looks at all of them without holding them all).
    pub fn for_each_record(
        &self,
        source: &str,
        domain: Domain,
        mut each: impl FnMut(String, Record),
    ) -> Result<(), StoreError> {
        let inner = self.current()?;
        let prefix = keys::scope(source, domain);
        for item in inner.records.scan_prefix(&prefix) {
            let (k, v) = item.at(&inner.dir)?;
            let fingerprint = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let record = inner.decode(&v, || format!("record {fingerprint}"))?;
            each(fingerprint, record);
        }
        Ok(())
    }

    /// The poll cursor of `source`/`domain`.
    pub fn cursor(&self, source: &str, domain: Domain) -> Result<Option<Cursor>, StoreError> {
        let inner = self.current()?;
        match inner
            .cursors
            .get(keys::scope(source, domain))
            .at(&inner.dir)?
        {
            Some(v) => {
                Ok(Some(inner.decode(&v, || {
                    format!("cursor {source}/{}", domain.as_str())
                })?))
            }
            None => Ok(None),
        }
    }

    /// Writes the poll cursor of `source`/`domain`. Flush the outbox writes it covers first.
    pub fn set_cursor(
        &self,
        source: &str,
        domain: Domain,
        cursor: &Cursor,
    ) -> Result<(), StoreError> {
        let inner = self.current()?;
        let value = inner.encode(cursor, || format!("cursor {source}/{}", domain.as_str()))?;
        inner
            .cursors
            .insert(keys::scope(source, domain), value)
            .at(&inner.dir)?;
        Ok(())
    }

    /// Adds `entry` to `sink`'s outbox unless its payload id was enqueued there before (and
    /// its guard not yet pruned). Idempotent across crashes: see the module doc.
    pub fn enqueue(&self, sink: &str, entry: &OutboxEntry) -> Result<Enqueued, StoreError> {
        self.current()?.enqueue(sink, entry)
    }

    /// The seq under which `payload_id` was enqueued to `sink`, while its guard exists (the
    /// entry itself may have been delivered or dead-lettered since).
    pub fn enqueued_seq(&self, sink: &str, payload_id: &str) -> Result<Option<u64>, StoreError> {
        self.current()?.enqueued_seq(sink, payload_id)
    }

    /// Up to `limit` of `sink`'s entries with `next_attempt_at_ms <= now_ms`, oldest first,
    /// whatever waits before them: what is there, for folding and inspection. A worker reads
    /// with [`Store::due_skipping`].
    pub fn due(
        &self,
        sink: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<(u64, OutboxEntry)>, StoreError> {
        self.read_due(
            sink,
            now_ms,
            limit,
            &std::collections::HashSet::new(),
            false,
        )
    }

    /// Up to `limit` of `sink`'s waiting entries, due or not, oldest first, passing over the
    /// seqs in `skip`: what a new leadership term finds left from an earlier one.
    pub fn waiting(
        &self,
        sink: &str,
        limit: usize,
        skip: &std::collections::HashSet<u64>,
    ) -> Result<Vec<(u64, OutboxEntry)>, StoreError> {
        self.read_due(sink, i64::MAX, limit, skip, false)
    }

    /// The entries a delivery worker may start: like [`Store::due`], but passing over the
    /// seqs in `skip` (its attempts in flight) and every entry that shares a finding with an
    /// earlier entry still waiting out a backoff (see the module doc's "Memory"), so `limit`
    /// counts only entries the caller can use. The worker itself holds an entry back while an
    /// earlier one about the same finding is in flight or ahead of it in what it read.
    ///
    /// Like every read of the outbox, it moves an entry that cannot be read back (its payload
    /// damaged or gone, its stored value undecodable) to the sink's dead letters, logged, and
    /// returns the others: see "Values that cannot be read" in the module doc.
    pub fn due_skipping(
        &self,
        sink: &str,
        now_ms: i64,
        limit: usize,
        skip: &std::collections::HashSet<u64>,
    ) -> Result<Vec<(u64, OutboxEntry)>, StoreError> {
        self.read_due(sink, now_ms, limit, skip, true)
    }

    fn read_due(
        &self,
        sink: &str,
        now_ms: i64,
        limit: usize,
        skip: &std::collections::HashSet<u64>,
        ordered: bool,
    ) -> Result<Vec<(u64, OutboxEntry)>, StoreError> {
        let inner = self.current()?;
        let Some(s) = inner.sink(sink) else {
            return Ok(Vec::new());
        };
        let seqs: Vec<u64> = {
            let index = s.lock();
            match index.schedule.first() {
                Some(&(at, _)) if at <= now_ms => index
                    .pending
                    .iter()
                    .filter(|(seq, p)| {
                        p.next_attempt_at_ms <= now_ms
                            && !skip.contains(seq)
                            && !(ordered && index.waits_for_earlier(**seq, &p.order, now_ms))
                    })
                    .take(limit)
                    .map(|(&seq, _)| seq)
                    .collect(),
                _ => return Ok(Vec::new()),
            }
        };
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            // Acked or dead-lettered since the index was read: skip it.
            let Some(v) = s.outbox.get(keys::seq(seq)).at(&inner.dir)? else {
                continue;
            };
            match inner.load_entry(sink, seq, &v) {
                Ok(entry) => out.push((seq, entry)),
                Err(LoadError::Store(e)) => return Err(e),
                // It can never be sent; left in place it would be read first forever.
                Err(LoadError::Unreadable { header, why }) => {
                    let mut index = s.lock();
                    inner.bury_unreadable(sink, &s, &mut index, seq, header.as_deref(), &why)?;
                }
            }
        }
        Ok(out)
    }

    /// The earliest `next_attempt_at_ms` among `sink`'s waiting entries.
    pub fn next_due_at(&self, sink: &str) -> Option<i64> {
        let Ok(inner) = self.current() else {
            return None;
        };
        inner.sink(sink)?.lock().schedule.first().map(|&(at, _)| at)
    }

    /// How many entries wait in `sink`'s outbox (kept in memory; no scan).
    pub fn depth(&self, sink: &str) -> u64 {
        let Ok(inner) = self.current() else {
            return 0;
        };
        inner
            .sink(sink)
            .map_or(0, |s| s.lock().pending.len() as u64)
    }

    /// `enqueued_at_ms` of `sink`'s oldest waiting entry.
    pub fn oldest_enqueued_at(&self, sink: &str) -> Option<i64> {
        let Ok(inner) = self.current() else {
            return None;
        };
        inner
            .sink(sink)?
            .lock()
            .pending
            .values()
            .next()
            .map(|p| p.enqueued_at_ms)
    }

    /// Sinks with at least one waiting entry, sorted.
    pub fn sinks_with_entries(&self) -> Vec<String> {
        let Ok(inner) = self.current() else {
            return Vec::new();
        };
        let sinks = inner.sinks.read().unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<String> = sinks
            .iter()
            .filter(|(_, s)| !s.lock().pending.is_empty())
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// Removes a delivered entry; says whether it was still there. Its guard stays until
    /// pruned, so a re-poll cannot enqueue the payload again.
    pub fn ack(&self, sink: &str, seq: u64) -> Result<bool, StoreError> {
        let inner = self.current()?;
        let Some(s) = inner.sink(sink) else {
            return Ok(false);
        };
        let mut index = s.lock();
        let old = s.outbox.remove(keys::seq(seq)).at(&inner.dir)?;
        index.remove(seq);
        if let Some(old) = &old {
            inner.release_payload(old);
        }
        Ok(old.is_some())
    }

    /// Replaces the entry at `seq` (after a failed attempt: attempts, next attempt time, last
    /// error) with a compare-and-swap, so an entry acked or dead-lettered meanwhile is not
    /// brought back. Returns `false` when the entry is gone. Fails with
    /// [`StoreError::WrongEntry`] if `entry` carries a different payload than the stored one.
    pub fn reschedule(
        &self,
        sink: &str,
        seq: u64,
        entry: &OutboxEntry,
    ) -> Result<bool, StoreError> {
        let inner = self.current()?;
        let dir = &inner.dir;
        let Some(s) = inner.sink(sink) else {
            return Ok(false);
        };
        let key = keys::seq(seq);
        let mut index = s.lock();
        loop {
            let Some(current) = s.outbox.get(key).at(dir)? else {
                index.remove(seq);
                return Ok(false);
            };
            let (stored_id, value) = match payloads::Header::decode(&current) {
                Some(h) => {
                    let value = payloads::Header {
                        attempts: entry.attempts,
                        next_attempt_at_ms: entry.next_attempt_at_ms,
                        last_error: entry.last_error.clone(),
                        ..h.clone()
                    }
                    .encode();
                    (h.id, value)
                }
                None => {
                    // An entry written before the payload log: rewritten whole, as then.
                    let stored: OutboxEntry =
                        inner.decode(&current, || format!("outbox/{sink} entry {seq}"))?;
                    let value = inner.encode(entry, || format!("outbox/{sink} entry {seq}"))?;
                    (stored.payload.id().to_string(), value)
                }
            };
            if stored_id != entry.payload.id() {
                return Err(StoreError::WrongEntry {
                    sink: sink.to_string(),
                    seq,
                    stored: stored_id,
                    given: entry.payload.id().to_string(),
                });
            }
            match s
                .outbox
                .compare_and_swap(key, Some(&current), Some(&value[..]))
                .at(dir)?
            {
                Ok(()) => {
                    index.set_due(seq, entry.next_attempt_at_ms);
                    return Ok(true);
                }
                // Changed underneath (not possible while every writer holds the lock, but
                // cheap to handle): read again.
                Err(_) => continue,
            }
        }
    }

    /// Moves the entry at `seq` to `sink`'s dead letters (insert there, then remove from the
    /// outbox). Returns `false`, writing nothing, when the entry is no longer in the outbox.
    pub fn dead_letter(
        &self,
        sink: &str,
        seq: u64,
        letter: &DeadLetter,
    ) -> Result<bool, StoreError> {
        let inner = self.current()?;
        let Some(s) = inner.sink(sink) else {
            return Ok(false);
        };
        let value = inner.encode(letter, || format!("dead/{sink} letter {seq}"))?;
        let mut index = s.lock();
        inner.move_to_dead(&s, &mut index, seq, value)
    }

    /// `sink`'s dead letters, oldest first. One whose stored value does not decode is logged
    /// and listed as an unreadable letter ([`DeadLetter::unreadable`]), so that it can be
    /// found and discarded.
    pub fn dead_letters(&self, sink: &str) -> Result<Vec<(u64, DeadLetter)>, StoreError> {
        let inner = self.current()?;
        let Some(s) = inner.sink(sink) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in s.dead.iter() {
            let (k, v) = item.at(&inner.dir)?;
            let Some(seq) = keys::parse_seq(&k) else {
                continue;
            };
            out.push((seq, inner.read_letter(sink, seq, &v)));
        }
        Ok(out)
    }

    /// Puts a dead letter back in its sink's outbox: the same payload (so the same idempotency
    /// key), zero attempts, enqueued and due at `now_ms`. Crash-safe in three single-key
    /// writes: the new entry, then the guard moved to it (compare-and-swap), then the dead
    /// letter removed. A crash after the first leaves an entry the next open removes as a
    /// duplicate (the guard still names the dead letter); after the second, the next replay
    /// of the dead letter finds the guard moved and only removes it ([`Replayed::Superseded`]).
    /// A letter the store could not read back ([`DeadLetter::unreadable`]) is refused and kept
    /// ([`Replayed::Unreadable`]).
    pub fn replay_dead_letter(
        &self,
        sink: &str,
        seq: u64,
        now_ms: i64,
    ) -> Result<Replayed, StoreError> {
        let inner = self.current()?;
        let dir = &inner.dir;
        let Some(s) = inner.sink(sink) else {
            return Ok(Replayed::NotFound);
        };
        let key = keys::seq(seq);
        let Some(stored) = s.dead.get(key).at(dir)? else {
            return Ok(Replayed::NotFound);
        };
        let letter = inner.read_letter(sink, seq, &stored);
        if let Some(why) = &letter.unreadable {
            tracing::warn!(sink, seq, error = %why, "Refused to replay a dead letter the store could not read back; there is nothing to send.");
            return Ok(Replayed::Unreadable);
        }
        let entry = OutboxEntry {
            attempts: 0,
            enqueued_at_ms: now_ms,
            next_attempt_at_ms: now_ms,
            last_error: None,
            ..letter.entry
        };
        let body = inner.encode_payload(&entry.payload, || format!("outbox/{sink} payload"))?;
        let order = entry.payload.order_hashes();
        let guard_key = keys::guard(sink, entry.payload.id());
        let mut index = s.lock();
        let current = inner.guards.get(&guard_key).at(dir)?;
        if let Some(v) = &current {
            let owner = inner.guard_seq(v)?;
            if owner != seq {
                if s.dead.remove(key).at(dir)?.is_some() {
                    index.dead_letters = index.dead_letters.saturating_sub(1);
                }
                return Ok(Replayed::Superseded(owner));
            }
        }
        let (new_seq, loc) = inner.insert_entry(&s, &entry, &body, &order)?;
        let new_key = keys::seq(new_seq);
        let guard = keys::guard_value(new_seq, now_ms);
        // Guards change only under this sink's lock, or by pruning (which drops a guard whose
        // entry left the outbox, as a dead letter's has): try again from what is there now.
        let mut expected = current;
        loop {
            match inner
                .guards
                .compare_and_swap(&guard_key, expected.as_deref(), Some(&guard[..]))
            {
                Ok(Ok(())) => break,
                Ok(Err(lost)) => expected = lost.current.map(|v| v.to_vec().into()),
                Err(e) => {
                    match s.outbox.remove(new_key) {
                        Ok(_) => inner.payloads.release(loc),
                        Err(undo) => {
                            tracing::warn!(sink, seq = new_seq, error = %undo, "Could not undo a half-done replay; the next start repairs it.")
                        }
                    }
                    return Err(error::from_sled(dir, e));
                }
            }
        }
        index.insert(
            new_seq,
            entry.next_attempt_at_ms,
            entry.enqueued_at_ms,
            &order,
        );
        if s.dead.remove(key).at(dir)?.is_some() {
            index.dead_letters = index.dead_letters.saturating_sub(1);
        }
        Ok(Replayed::Requeued(new_seq))
    }

    /// Every sink the store holds trees for (configured now or not), sorted.
    pub fn sink_names(&self) -> Vec<String> {
        self.current().map_or(Vec::new(), |inner| {
            let sinks = inner.sinks.read().unwrap_or_else(PoisonError::into_inner);
            sinks.keys().cloned().collect()
        })
    }

    /// Deletes one dead letter (after an operator replayed or discarded it); returns it, read
    /// before it is deleted. One whose stored value does not decode is deleted all the same
    /// (deleting is what was asked) and returned as an unreadable letter
    /// ([`DeadLetter::unreadable`] says why).
    pub fn remove_dead_letter(
        &self,
        sink: &str,
        seq: u64,
    ) -> Result<Option<DeadLetter>, StoreError> {
        let inner = self.current()?;
        let Some(s) = inner.sink(sink) else {
            return Ok(None);
        };
        let key = keys::seq(seq);
        let mut index = s.lock();
        let Some(stored) = s.dead.get(key).at(&inner.dir)? else {
            return Ok(None);
        };
        let letter = inner.read_letter(sink, seq, &stored);
        // Dead letters change only under the sink's lock: what was read is what goes.
        if s.dead.remove(key).at(&inner.dir)?.is_none() {
            return Ok(None);
        }
        index.dead_letters = index.dead_letters.saturating_sub(1);
        Ok(Some(letter))
    }

    /// Deletes lifecycle records resolved more than `resolved_retention_ms` before `now_ms`,
    /// and enqueue guards older than `guard_ttl_ms` whose entry has left the outbox. Scans
    /// both trees; one key per delete, each a compare-and-swap against the value read, so a
    /// record updated meanwhile is kept.
    ///
    /// A payload whose guard is pruned can be enqueued again: the TTL must exceed the time in
    /// which a source can report the same event again (its re-poll window).
    ///
    /// A record that does not decode is logged with its key and kept (its finding's lifecycle
    /// cannot be judged); the rest are pruned as usual.
    pub fn prune(
        &self,
        now_ms: i64,
        resolved_retention_ms: i64,
        guard_ttl_ms: i64,
    ) -> Result<PruneReport, StoreError> {
        let inner = self.current()?;
        let dir = &inner.dir;
        let mut report = PruneReport::default();

        let record_cutoff = now_ms.saturating_sub(resolved_retention_ms);
        for item in inner.records.iter() {
            let (k, v) = item.at(dir)?;
            let Some(record) = inner.decode_or_pass::<Record>(
                &v,
                || format!("records {}", keys::show(&k, 2)),
                "A lifecycle record cannot be read; pruning passes over it and keeps it.",
            ) else {
                continue;
            };
            let resolved_at = match (record.status, record.resolved_at_ms) {
                (RecordStatus::Resolved, Some(at)) => at,
                (RecordStatus::Resolved, None) => record.last_seen_ms,
                (RecordStatus::Active, _) => continue,
            };
            if resolved_at < record_cutoff
                && inner
                    .records
                    .compare_and_swap(&k, Some(&v), None as Option<&[u8]>)
                    .at(dir)?
                    .is_ok()
            {
                report.records_removed += 1;
            }
        }

        let guard_cutoff = now_ms.saturating_sub(guard_ttl_ms);
        for item in inner.guards.iter() {
            let (k, v) = item.at(dir)?;
            let Some((seq, enqueued_at)) = keys::parse_guard_value(&v) else {
                continue;
            };
            if enqueued_at >= guard_cutoff {
                continue;
            }
            let Some((sink, _)) = keys::split_guard(&k) else {
                continue;
            };
            // Seqs are never reused, so an entry found absent cannot come back.
            let pending = match (groups::group_of_guard(sink), inner.sink(sink)) {
                (Some(gid), _) => inner.has_member(gid, seq)?,
                (None, Some(s)) => s.outbox.contains_key(keys::seq(seq)).at(dir)?,
                (None, None) => false,
            };
            if pending {
                report.guards_kept_pending += 1;
            } else if inner
                .guards
                .compare_and_swap(&k, Some(&v), None as Option<&[u8]>)
                .at(dir)?
                .is_ok()
            {
                report.guards_removed += 1;
            }
        }
        Ok(report)
    }

    /// Deletes dead letters that died before `cutoff_ms` (each a compare-and-swap against the
    /// value read); returns how many. One that does not decode is logged with its key and
    /// kept: an operator can still discard it.
    pub fn prune_dead_letters(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let inner = self.current()?;
        let sinks: Vec<(String, Arc<Sink>)> = inner
            .sinks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        let mut removed = 0;
        for (name, s) in sinks {
            let mut index = s.lock();
            for item in s.dead.iter() {
                let (k, v) = item.at(&inner.dir)?;
                let what = || match keys::parse_seq(&k) {
                    Some(seq) => format!("dead/{name} letter {seq}"),
                    None => format!("dead/{name} key {}", keys::show(&k, 0)),
                };
                let Some(letter) = inner.decode_or_pass::<DeadLetter>(
                    &v,
                    what,
                    "A dead letter cannot be read; pruning passes over it and keeps it.",
                ) else {
                    continue;
                };
                if letter.dead_at_ms < cutoff_ms
                    && s.dead
                        .compare_and_swap(&k, Some(&v), None as Option<&[u8]>)
                        .at(&inner.dir)?
                        .is_ok()
                {
                    index.dead_letters = index.dead_letters.saturating_sub(1);
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// The queue figures of every sink that has an outbox or dead letters (kept in memory;
    /// no scan, unlike [`Store::stats`]).
    pub fn sink_stats(&self) -> Result<BTreeMap<String, SinkStats>, StoreError> {
        let inner = self.current()?;
        let sinks = inner.sinks.read().unwrap_or_else(PoisonError::into_inner);
        Ok(sinks
            .iter()
            .map(|(name, s)| (name.clone(), s.lock().stats()))
            .collect())
    }

    /// Size on disk, per-sink queue figures and open time.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let inner = self.current()?;
        let size_on_disk = inner.db.size_on_disk().at(&inner.dir)? + inner.payloads.usage().1;
        let sinks = self.sink_stats()?;
        Ok(StoreStats {
            size_on_disk,
            sinks,
            open_ms: inner.open_ms,
        })
    }
}

impl Inner {
    async fn flush(&self) -> Result<(), StoreError> {
        // Segments nothing pointed into before this flush: gone once it made that durable.
        let idle = self.payloads.unreferenced();
        if self.payloads.dirty() {
            // Payloads first, so no entry this flush makes durable can lack its payload.
            let log = self.payloads.clone();
            tokio::task::spawn_blocking(move || log.sync())
                .await
                .map_err(|e| error::from_io(&self.dir, std::io::Error::other(e)))?
                .map_err(|e| error::from_io(&self.dir, e))?;
        }
        self.db.flush_async().await.at(&self.dir)?;
        if !idle.is_empty()
            && let Err(e) = self.payloads.remove_unreferenced(&idle)
        {
            // Space only: the next flush tries again.
            tracing::warn!(dir = %self.dir.display(), error = %e, "Could not delete a payload segment nothing points into.");
        }
        Ok(())
    }

    /// Opens sled in `dir` and prepares it (see [`Store::open`]); the caller holds the
    /// [`DirLock`].
    fn open(dir: &Path) -> Result<Inner, StoreError> {
        let started = Instant::now();
        remove_unfinished_snapshots(dir)?;
        let db = open_sled(dir)?;
        let mut inner = catch_panic(dir, || Inner::init(dir, db))??;
        inner.open_ms = started.elapsed().as_millis() as u64;
        tracing::info!(dir = %dir.display(), open_ms = inner.open_ms, "Opened the state store.");
        Ok(inner)
    }

    /// Everything `open` does after sled opened: schema, epoch, reconcile, a full read of
    /// every tree (see "Opening" in the module doc), and the marker for a new store.
    fn init(dir: &Path, db: sled::Db) -> Result<Inner, StoreError> {
        let meta = db.open_tree("meta").at(dir)?;
        let marker = dir.join(MARKER_FILE);
        let initialised = std::fs::read_to_string(&marker).is_ok_and(|s| !s.trim().is_empty());
        if initialised && !meta.contains_key(META_SCHEMA).at(dir)? {
            // sled treats unreadable logs as "nothing was written", so a store whose files
            // were destroyed opens empty. Starting afresh silently would re-send everything
            // still open in Security Center as new; make the operator decide.
            return Err(StoreError::Corrupt {
                dir: dir.to_path_buf(),
                detail: format!(
                    "{MARKER_FILE} says a store was created here, but sled recovered no data from its files"
                ),
            });
        }
        let mut changed = check_schema(dir, &meta)?;
        let (epoch, new_epoch) = load_epoch(dir, &meta)?;
        changed |= new_epoch;

        let store = Inner {
            dir: dir.to_path_buf(),
            records: db.open_tree("records").at(dir)?,
            cursors: db.open_tree("cursors").at(dir)?,
            guards: db.open_tree("enq").at(dir)?,
            groups: db.open_tree("groups").at(dir)?,
            members: db.open_tree("members").at(dir)?,
            silences: db.open_tree("silences").at(dir)?,
            suppressed: db.open_tree("suppressed").at(dir)?,
            group_index: Mutex::new(groups::GroupIndex::default()),
            reminders: db.open_tree("reminders").at(dir)?,
            quarantine: db.open_tree("quarantine").at(dir)?,
            details: db.open_tree("details").at(dir)?,
            pairs: db.open_tree("pairs").at(dir)?,
            held: db.open_tree("held").at(dir)?,
            health: db.open_tree("health").at(dir)?,
            audit: db.open_tree("audit").at(dir)?,
            audit_by_finding: db.open_tree("audit_by_finding").at(dir)?,
            spent_links: db.open_tree("spent_links").at(dir)?,
            payloads: Arc::new(
                payloads::PayloadLog::open(dir).map_err(|e| error::from_io(dir, e))?,
            ),
            reminder_index: Mutex::new(reminders::ReminderIndex::default()),
            db,
            sinks: RwLock::new(HashMap::new()),
            epoch,
            open_ms: 0,
        };
        let mut repairs = store.reconcile()?;
        let (adopted, removed) = store.reconcile_groups()?;
        store.load_reminders()?;
        repairs.guards_recreated += adopted;
        repairs.duplicates_removed += removed;
        changed |= repairs.any();
        for name in store.db.tree_names() {
            if name.starts_with(keys::OUTBOX_PREFIX.as_bytes())
                || name.starts_with(keys::DEAD_PREFIX.as_bytes())
            {
                continue; // read by reconcile
            }
            for item in store.db.open_tree(&name).at(dir)?.iter() {
                item.at(dir)?;
            }
        }
        if changed {
            store.db.flush().at(dir)?;
        }
        // What is read above is durable: a segment no entry points into is garbage.
        let idle = store.payloads.unreferenced();
        store
            .payloads
            .remove_unreferenced(&idle)
            .map_err(|e| error::from_io(dir, e))?;
        if !initialised {
            write_marker(&marker, &store.epoch).map_err(|e| error::from_io(dir, e))?;
        }
        Ok(store)
    }

    // ----- cursors -----

    // ----- outbox -----

    fn enqueue(&self, sink: &str, entry: &OutboxEntry) -> Result<Enqueued, StoreError> {
        let dir = &self.dir;
        let s = self.sink_or_create(sink)?;
        // Encoding (serialise + compress) is most of the CPU here and needs no lock: pollers
        // enqueueing to the same sink wait only for the writes.
        let body = self.encode_payload(&entry.payload, || format!("outbox/{sink} payload"))?;
        let order = entry.payload.order_hashes();
        let guard_key = keys::guard(sink, entry.payload.id());
        let mut index = s.lock();
        // No read of the guard first: the lifecycle diff already keeps known findings from
        // producing events, so a duplicate only follows a crash, and the compare-and-swap
        // below catches it (at the cost of writing and removing the entry).
        let (seq, loc) = self.insert_entry(&s, entry, &body, &order)?;
        let seq_key = keys::seq(seq);
        let guard = keys::guard_value(seq, entry.enqueued_at_ms);
        loop {
            let cas =
                self.guards
                    .compare_and_swap(&guard_key, None as Option<&[u8]>, Some(&guard[..]));
            match cas {
                Ok(Ok(())) => {
                    index.insert(seq, entry.next_attempt_at_ms, entry.enqueued_at_ms, &order);
                    return Ok(Enqueued::Inserted(seq));
                }
                Ok(Err(lost)) => match lost.current {
                    Some(current) => {
                        s.outbox.remove(seq_key).at(dir)?;
                        self.payloads.release(loc);
                        return Ok(Enqueued::Duplicate(self.guard_seq(&current)?));
                    }
                    // The guard was pruned between the CAS and its report: try again.
                    None => continue,
                },
                Err(e) => {
                    // Leave no unguarded entry behind if we can; if this fails too, the
                    // reconcile pass at the next open sorts it out.
                    match s.outbox.remove(seq_key) {
                        Ok(_) => self.payloads.release(loc),
                        Err(undo) => {
                            tracing::warn!(sink, seq, error = %undo, "Could not undo a half-done enqueue; the next start repairs it.")
                        }
                    }
                    return Err(error::from_sled(dir, e));
                }
            }
        }
    }

    /// Appends `body` (the encoded payload of `entry`) to the payload log and inserts the
    /// entry's header at a fresh seq; the caller holds the sink's lock and writes the guard.
    fn insert_entry(
        &self,
        s: &Sink,
        entry: &OutboxEntry,
        body: &[u8],
        order: &[u64],
    ) -> Result<(u64, payloads::Loc), StoreError> {
        let dir = &self.dir;
        let loc = self
            .payloads
            .append(entry.payload.id(), body)
            .map_err(|e| error::from_io(dir, e))?;
        let inserted = self.db.generate_id().and_then(|seq| {
            let header = payloads::Header {
                loc,
                id: entry.payload.id().to_string(),
                attempts: entry.attempts,
                enqueued_at_ms: entry.enqueued_at_ms,
                next_attempt_at_ms: entry.next_attempt_at_ms,
                last_error: entry.last_error.clone(),
                order: order.to_vec(),
            };
            s.outbox.insert(keys::seq(seq), header.encode())?;
            Ok(seq)
        });
        match inserted {
            Ok(seq) => Ok((seq, loc)),
            Err(e) => {
                self.payloads.release(loc);
                Err(error::from_sled(dir, e))
            }
        }
    }

    /// The entry stored as `value` at `sink`'s `seq`: a header with its payload read from the
    /// log, or (written before the log) the whole entry.
    fn load_entry(&self, sink: &str, seq: u64, value: &[u8]) -> Result<OutboxEntry, LoadError> {
        let Some(h) = payloads::Header::decode(value) else {
            return self
                .decode(value, || format!("outbox/{sink} entry {seq}"))
                .map_err(|e| LoadError::unreadable(None, e));
        };
        let body = match self.payloads.read(h.loc) {
            Ok(body) => body,
            // May pass (and a reopen, which `heal` tries, reads every payload again).
            Err(payloads::ReadError::Io { seg, source }) => {
                let detail = format!(
                    "outbox/{sink} entry {seq} ({}): payload segment {seg:016x}: {source}",
                    h.id
                );
                return Err(LoadError::Store(StoreError::Io {
                    dir: self.dir.clone(),
                    source: std::io::Error::new(source.kind(), detail),
                }));
            }
            Err(e) => {
                return Err(LoadError::Unreadable {
                    header: Some(Box::new(h)),
                    why: e.to_string(),
                });
            }
        };
        let payload = match self.decode(&body, || format!("outbox/{sink} entry {seq}'s payload")) {
            Ok(payload) => payload,
            Err(e) => return Err(LoadError::unreadable(Some(Box::new(h)), e)),
        };
        Ok(OutboxEntry {
            v: crate::event::OUTBOX_SCHEMA,
            payload,
            attempts: h.attempts,
            enqueued_at_ms: h.enqueued_at_ms,
            next_attempt_at_ms: h.next_attempt_at_ms,
            last_error: h.last_error,
        })
    }

    /// Moves the entry at `seq` from `s`'s outbox to its dead letters as `letter` (encoded):
    /// insert there, then remove from the outbox and release its payload. The caller holds
    /// the sink's lock (`index`). False, writing nothing, when the entry has left the outbox.
    fn move_to_dead(
        &self,
        s: &Sink,
        index: &mut SinkIndex,
        seq: u64,
        letter: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let dir = &self.dir;
        let key = keys::seq(seq);
        if !s.outbox.contains_key(key).at(dir)? {
            index.remove(seq);
            return Ok(false);
        }
        if s.dead.insert(key, letter).at(dir)?.is_none() {
            index.dead_letters += 1;
        }
        if let Some(old) = s.outbox.remove(key).at(dir)? {
            self.release_payload(&old);
        }
        index.remove(seq);
        Ok(true)
    }

    /// Moves the entry at `sink`'s `seq`, which cannot be read back because `why`, to the
    /// sink's dead letters as an unreadable letter ([`unreadable_letter`]), and logs it. The
    /// caller holds the sink's lock (`index`).
    fn bury_unreadable(
        &self,
        sink: &str,
        s: &Sink,
        index: &mut SinkIndex,
        seq: u64,
        header: Option<&payloads::Header>,
        why: &str,
    ) -> Result<bool, StoreError> {
        let now_ms = crate::clock::unix_ms(time::OffsetDateTime::now_utc());
        let letter = unreadable_letter(sink, seq, header, why, now_ms);
        let value = self.encode(&letter, || format!("dead/{sink} letter {seq}"))?;
        let moved = self.move_to_dead(s, index, seq, value)?;
        if moved {
            tracing::error!(
                sink,
                seq,
                payload = %letter.entry.payload.id(),
                error = why,
                "An outbox entry cannot be read back; it was moved to the dead letters (it cannot be replayed) and the sink goes on with the next."
            );
        }
        Ok(moved)
    }

    /// The dead letter stored as `value` at `sink`'s `seq`. One that does not decode is
    /// logged and returned as an unreadable letter ([`unreadable_letter`]; when it died is
    /// unknown, shown as 0): it can be listed and discarded, never replayed.
    fn read_letter(&self, sink: &str, seq: u64, value: &[u8]) -> DeadLetter {
        match self.decode(value, || format!("dead/{sink} letter {seq}")) {
            Ok(letter) => letter,
            Err(e) => {
                tracing::error!(sink, seq, error = %e, "A dead letter cannot be read; it is shown as unreadable and can only be discarded.");
                let why = match e {
                    StoreError::Codec { what, source, .. } => format!("{what}: {source}"),
                    other => other.to_string(),
                };
                unreadable_letter(sink, seq, None, &why, 0)
            }
        }
    }

    /// After an outbox value was removed: one reference fewer to its payload.
    fn release_payload(&self, value: &[u8]) {
        if let Some(h) = payloads::Header::decode(value) {
            self.payloads.release(h.loc);
        }
    }

    fn enqueued_seq(&self, sink: &str, payload_id: &str) -> Result<Option<u64>, StoreError> {
        match self
            .guards
            .get(keys::guard(sink, payload_id))
            .at(&self.dir)?
        {
            Some(v) => Ok(Some(self.guard_seq(&v)?)),
            None => Ok(None),
        }
    }

    // ----- pruning and figures -----

    // ----- internals -----

    fn sink(&self, name: &str) -> Option<Arc<Sink>> {
        self.sinks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn sink_or_create(&self, name: &str) -> Result<Arc<Sink>, StoreError> {
        if let Some(s) = self.sink(name) {
            return Ok(s);
        }
        let mut sinks = self.sinks.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = sinks.get(name) {
            return Ok(s.clone());
        }
        let dir = &self.dir;
        let s = Arc::new(Sink {
            outbox: self.db.open_tree(keys::outbox_tree(name)).at(dir)?,
            dead: self.db.open_tree(keys::dead_tree(name)).at(dir)?,
            index: Mutex::new(SinkIndex::default()),
        });
        sinks.insert(name.to_string(), s.clone());
        Ok(s)
    }

    /// Rebuilds the in-memory indexes and repairs what a crash can leave half-done: an
    /// entry without its guard (adopt it, or remove it if another entry owns the guard) and a
    /// dead-letter move cut between its two writes (finish it). An entry whose value decodes
    /// as neither a header nor a whole entry is moved to the dead letters as unreadable.
    fn reconcile(&self) -> Result<Repairs, StoreError> {
        let dir = &self.dir;
        let mut names = BTreeSet::new();
        for name in self.db.tree_names() {
            let Ok(name) = std::str::from_utf8(&name) else {
                continue;
            };
            if let Some(sink) = name
                .strip_prefix(keys::OUTBOX_PREFIX)
                .or_else(|| name.strip_prefix(keys::DEAD_PREFIX))
            {
                names.insert(sink.to_string());
            }
        }
        let mut repairs = Repairs::default();
        for name in names {
            let s = self.sink_or_create(&name)?;
            let mut index = s.lock();
            for item in s.outbox.iter() {
                let (k, v) = item.at(dir)?;
                let Some(seq) = keys::parse_seq(&k) else {
                    tracing::warn!(sink = %name, "Ignoring an outbox key that is not a sequence number.");
                    continue;
                };
                if s.dead.contains_key(&k).at(dir)? {
                    s.outbox.remove(&k).at(dir)?;
                    repairs.dead_letter_moves_finished += 1;
                    continue;
                }
                let (id, next_attempt_at_ms, enqueued_at_ms, loc, order) =
                    match payloads::Header::decode(&v) {
                        Some(h) => (
                            h.id,
                            h.next_attempt_at_ms,
                            h.enqueued_at_ms,
                            Some(h.loc),
                            h.order,
                        ),
                        None => {
                            let entry: OutboxEntry =
                                match self.decode(&v, || format!("outbox/{name} entry {seq}")) {
                                    Ok(entry) => entry,
                                    Err(e) => match LoadError::unreadable(None, e) {
                                        LoadError::Unreadable { why, .. } => {
                                            self.bury_unreadable(
                                                &name, &s, &mut index, seq, None, &why,
                                            )?;
                                            repairs.unreadable_moved += 1;
                                            continue;
                                        }
                                        LoadError::Store(e) => return Err(e),
                                    },
                                };
                            let id = entry.payload.id().to_string();
                            let order = entry.payload.order_hashes();
                            (
                                id,
                                entry.next_attempt_at_ms,
                                entry.enqueued_at_ms,
                                None,
                                order,
                            )
                        }
                    };
                let guard_key = keys::guard(&name, &id);
                if let Some(Err(e)) = loc.map(|loc| self.payloads.read(loc)) {
                    // A power loss between sled writing its buffers and the next flush leaves
                    // this (see `payloads`), or damage while stopped; the event cannot be
                    // sent. It is kept as an unreadable dead letter, so that `dead-letters
                    // list` and the dead-letter count show it, and its guard goes, so that a
                    // poll that finds the finding again (its record was not durable either)
                    // enqueues it anew. Written directly, not through `move_to_dead`: no
                    // payload reference of this sink is counted yet.
                    tracing::error!(
                        sink = %name,
                        seq,
                        payload = %id,
                        error = %e,
                        "An outbox entry's payload cannot be read back after a crash or damage; it is kept as a dead letter (it cannot be replayed). Its finding is announced again if a poll finds it unrecorded, or when it changes."
                    );
                    let header = payloads::Header::decode(&v);
                    let now_ms = crate::clock::unix_ms(time::OffsetDateTime::now_utc());
                    let letter =
                        unreadable_letter(&name, seq, header.as_ref(), &e.to_string(), now_ms);
                    let value = self.encode(&letter, || format!("dead/{name} letter {seq}"))?;
                    s.dead.insert(&k, value).at(dir)?;
                    s.outbox.remove(&k).at(dir)?;
                    if let Some(g) = self.guards.get(&guard_key).at(dir)?
                        && self.guard_seq(&g)? == seq
                    {
                        self.guards.remove(&guard_key).at(dir)?;
                    }
                    repairs.payloads_lost += 1;
                    continue;
                }
                let guard = keys::guard_value(seq, enqueued_at_ms);
                let owner = match self.guards.get(&guard_key).at(dir)? {
                    Some(v) => self.guard_seq(&v)?,
                    None => {
                        // Nothing else writes guards during open.
                        let _ = self
                            .guards
                            .compare_and_swap(&guard_key, None as Option<&[u8]>, Some(&guard[..]))
                            .at(dir)?;
                        repairs.guards_recreated += 1;
                        seq
                    }
                };
                if owner == seq {
                    index.insert(seq, next_attempt_at_ms, enqueued_at_ms, &order);
                    if let Some(loc) = loc {
                        self.payloads.add_ref(loc);
                    }
                } else {
                    s.outbox.remove(&k).at(dir)?;
                    repairs.duplicates_removed += 1;
                }
            }
            let mut dead_letters = 0;
            for item in s.dead.iter() {
                item.at(dir)?;
                dead_letters += 1;
            }
            index.dead_letters = dead_letters;
        }
        if repairs.any() {
            tracing::warn!(
                dir = %dir.display(),
                guards_recreated = repairs.guards_recreated,
                duplicates_removed = repairs.duplicates_removed,
                dead_letter_moves_finished = repairs.dead_letter_moves_finished,
                payloads_lost = repairs.payloads_lost,
                unreadable_moved = repairs.unreadable_moved,
                "Repaired outbox writes that a crash had cut short."
            );
        }
        Ok(repairs)
    }

    fn guard_seq(&self, v: &[u8]) -> Result<u64, StoreError> {
        keys::parse_guard_value(v)
            .map(|(seq, _)| seq)
            .ok_or_else(|| StoreError::Corrupt {
                dir: self.dir.clone(),
                detail: format!("an enqueue guard holds {} bytes, not 16", v.len()),
            })
    }

    /// `value` decoded, or `None` when it does not decode, logged at ERROR: the error names
    /// its tree and key (through `what`), `passed_over` says what the scan does about it. For
    /// scans that go on past a damaged value (pruners, operators' listings), so one never
    /// stops or hides the rest.
    fn decode_or_pass<T: DeserializeOwned>(
        &self,
        value: &[u8],
        what: impl FnOnce() -> String,
        passed_over: &'static str,
    ) -> Option<T> {
        match self.decode(value, what) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::error!(error = %e, "{passed_over}");
                None
            }
        }
    }

    fn decode<T: DeserializeOwned>(
        &self,
        bytes: &[u8],
        what: impl FnOnce() -> String,
    ) -> Result<T, StoreError> {
        let decoded = match bytes.split_first() {
            Some((&LZ4_JSON, packed)) => match codec::lz4_claim(packed).and_then(|(len, block)| {
                lz4_flex::block::decompress(block, len).map_err(|e| e.to_string())
            }) {
                Ok(json) => serde_json::from_slice(&json),
                Err(e) => Err(corrupt(e)),
            },
            Some((&LZ4_DICT_JSON, packed)) => unpack_with_dict(packed, |json| {
                serde_json::from_slice(json.map_err(corrupt)?)
            }),
            Some((&ZSTD_DICT2_JSON, frame)) => codec::unzstd(frame, codec::Dict::V2, |json| {
                serde_json::from_slice(json.map_err(corrupt)?)
            }),
            Some((&ZSTD_DICT_JSON, frame)) => codec::unzstd(frame, codec::Dict::V1, |json| {
                serde_json::from_slice(json.map_err(corrupt)?)
            }),
            Some((&LZ4_RECORD_JSON, packed)) => match codec::unpack_record(packed) {
                Ok(json) => serde_json::from_slice(&json),
                Err(e) => Err(corrupt(e)),
            },
            _ => serde_json::from_slice(bytes),
        };
        decoded.map_err(|source| StoreError::Codec {
            dir: self.dir.clone(),
            what: format!("decoding {}", what()),
            source,
        })
    }

    fn encode<T: Serialize>(
        &self,
        value: &T,
        what: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, StoreError> {
        Ok(pack(self.json(value, what)?, None))
    }

    /// A payload as the payload log keeps it: zstd with [`codec::PAYLOAD_DICT_V2`]
    /// ([`ZSTD_DICT2_JSON`]).
    fn encode_payload(
        &self,
        payload: &crate::event::Payload,
        what: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, StoreError> {
        let json = self.json(payload, what)?;
        Ok(codec::zstd(&json).unwrap_or(json))
    }

    /// A lifecycle record as sled keeps it: LZ4 with [`codec::RECORD_DICT`]
    /// ([`LZ4_RECORD_JSON`]), whatever its size: sled's space and cost per key grow with the
    /// value, and records are most of what it holds.
    fn encode_record(
        &self,
        record: &Record,
        what: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, StoreError> {
        Ok(codec::pack_record(self.json(record, what)?))
    }

    fn json<T: Serialize>(
        &self,
        value: &T,
        what: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, StoreError> {
        // Payloads run to kilobytes: start big rather than grow by doubling.
        let mut json = Vec::with_capacity(4096);
        serde_json::to_writer(&mut json, value).map_err(|source| StoreError::Codec {
            dir: self.dir.clone(),
            what: format!("encoding {}", what()),
            source,
        })?;
        Ok(json)
    }
}

/// A packed value that does not unpack, as the JSON error every decode reports.
fn corrupt(e: impl std::fmt::Display) -> serde_json::Error {
    <serde_json::Error as serde::de::Error>::custom(format!("corrupt compressed value: {e}"))
}

/// Marks a stored value as LZ4-compressed JSON. Plain JSON values start with `{`, so both
/// forms are told apart by their first byte and old plain values stay readable.
const LZ4_JSON: u8 = 0x01;
/// Marks a payload in the payload log as LZ4-compressed JSON with [`PAYLOAD_DICT`] as the
/// block's prefix.
const LZ4_DICT_JSON: u8 = 0x03;
/// Marks a lifecycle record as LZ4-compressed JSON with [`codec::RECORD_DICT`] as the block's
/// prefix (see [`codec::pack_record`]).
const LZ4_RECORD_JSON: u8 = 0x04;
/// Marks a payload in the payload log as one zstd frame (its content size in its header)
/// compressed with [`PAYLOAD_DICT`] as a raw-content dictionary, at level
/// [`codec::ZSTD_LEVEL`] (schema 3). Payloads written before it ([`LZ4_DICT_JSON`]) stay
/// readable.
const ZSTD_DICT_JSON: u8 = 0x05;
/// Marks a payload as one zstd frame compressed with [`codec::PAYLOAD_DICT_V2`] (the same
/// content with its entropy tables), at level [`codec::ZSTD_LEVEL`]: what schema 4 writes.
const ZSTD_DICT2_JSON: u8 = 0x06;
/// Values at least this long are compressed.
const COMPRESS_FROM: usize = 512;

/// The dictionary of [`ZSTD_DICT_JSON`] and [`LZ4_DICT_JSON`] payloads: one payload per domain
/// as sasrelay stores it (the `render --sample` findings, each with the first item of the
/// matching sample answer in `shared/sas-api/samples` as its raw item), compact JSON, alerts
/// last. A payload repeats most of its key names, console link prefixes and enum values from
/// it: a simulator alert of 4.4 KB JSON packs into 0.94 KB with zstd and it, 1.5 KB with LZ4
/// and it, 2.5 KB with LZ4 alone. **Frozen**: stored payloads need the
/// exact bytes to be read back (a test pins its CRC); a better dictionary gets a new marker
/// and file, and this one stays for what it wrote.
static PAYLOAD_DICT: &[u8] = include_bytes!("payload-dict-v1.json");

/// Compresses a large JSON value. sled copies whole leaf nodes as they change, so its cost and
/// its space on disk grow with value size (measured here: a 5 KB insert costs 5x a 500 B one);
/// an outbox entry carries a whole finding with its raw item, and compresses about 3:1.
/// Deterministic, so compare-and-swap on re-encoded values still matches.
fn pack(json: Vec<u8>, dict: Option<&[u8]>) -> Vec<u8> {
    if json.len() < COMPRESS_FROM {
        return json;
    }
    // The layout of `compress_prepend_size` (little-endian u32 length, then the block) after
    // the marker, written in one allocation.
    let Ok(len) = u32::try_from(json.len()) else {
        return json;
    };
    let mut out = vec![0u8; 5 + lz4_flex::block::get_maximum_output_size(json.len())];
    out[0] = if dict.is_some() {
        LZ4_DICT_JSON
    } else {
        LZ4_JSON
    };
    out[1..5].copy_from_slice(&len.to_le_bytes());
    let packed = match dict {
        Some(dict) => lz4_flex::block::compress_into_with_dict(&json, &mut out[5..], dict),
        None => lz4_flex::block::compress_into(&json, &mut out[5..]),
    };
    match packed {
        Ok(n) if 5 + n < json.len() => {
            out.truncate(5 + n);
            out
        }
        _ => json,
    }
}

/// Decompresses an [`LZ4_DICT_JSON`] value (after its marker) into this thread's reused
/// buffer and hands it to `f`: a delivery reads one payload after another, and a fresh
/// zeroed buffer each time showed in its profile.
fn unpack_with_dict<T>(packed: &[u8], f: impl FnOnce(Result<&[u8], String>) -> T) -> T {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let (len, block) = match codec::lz4_claim(packed) {
        Ok(claim) => claim,
        Err(e) => return f(Err(e)),
    };
    BUF.with(|buf| match buf.try_borrow_mut() {
        Ok(mut buf) => {
            buf.resize(len, 0);
            let out =
                match lz4_flex::block::decompress_into_with_dict(block, &mut buf[..], PAYLOAD_DICT)
                {
                    Ok(n) if n == len => f(Ok(&buf[..])),
                    Ok(n) => f(Err(format!("{n} bytes where {len} were expected"))),
                    Err(e) => f(Err(e.to_string())),
                };
            // One huge payload does not keep a huge buffer.
            if buf.capacity() > 1 << 20 {
                *buf = Vec::new();
            }
            out
        }
        // Re-entered (not done today): a buffer of its own.
        Err(_) => match lz4_flex::block::decompress_with_dict(block, len, PAYLOAD_DICT) {
            Ok(json) => f(Ok(&json)),
            Err(e) => f(Err(e.to_string())),
        },
    })
}

/// Checks the schema version in `meta`, writing it into a new store. Returns whether it wrote.
fn check_schema(dir: &Path, meta: &sled::Tree) -> Result<bool, StoreError> {
    match meta.get(META_SCHEMA).at(dir)? {
        Some(v) => {
            let found: u32 = std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| StoreError::Corrupt {
                    dir: dir.to_path_buf(),
                    detail: "the schema version is unreadable".to_string(),
                })?;
            if found > STORE_SCHEMA {
                return Err(StoreError::NewerSchema {
                    dir: dir.to_path_buf(),
                    found,
                    supported: STORE_SCHEMA,
                });
            }
            if found < STORE_SCHEMA {
                // 1 → 2: outbox entries point into the payload log. Entries written whole
                // by schema 1 stay readable and are delivered as they are. 2 → 3: records
                // and payloads are written packed with new dictionaries (`codec`); the plain
                // records and LZ4 payloads already there stay readable. 3 → 4: payloads are
                // written with the second payload dictionary (`codec::PAYLOAD_DICT_V2`); those
                // of the first stay readable. Each new number
                // keeps an older sasrelay from misreading (or failing on) what it cannot read.
                meta.insert(META_SCHEMA, STORE_SCHEMA.to_string().as_bytes())
                    .at(dir)?;
                tracing::info!(dir = %dir.display(), from = found, to = STORE_SCHEMA, "Upgraded the state store's schema.");
                return Ok(true);
            }
            Ok(false)
        }
        None => {
            meta.insert(META_SCHEMA, STORE_SCHEMA.to_string().as_bytes())
                .at(dir)?;
            Ok(true)
        }
    }
}

/// Loads the epoch, creating it in a new store. Returns it and whether it was created.
fn load_epoch(dir: &Path, meta: &sled::Tree) -> Result<(String, bool), StoreError> {
    if let Some(v) = meta.get(META_EPOCH).at(dir)? {
        return Ok((String::from_utf8_lossy(&v).into_owned(), false));
    }
    let epoch = uuid::Uuid::new_v4().simple().to_string();
    meta.insert(META_EPOCH, epoch.as_bytes()).at(dir)?;
    Ok((epoch, true))
}

/// Runs `f`, turning a panic into [`StoreError::Corrupt`]: sled panics on some corrupt
/// files (upstream #1533, #1166) instead of returning `Corruption`, and an operator needs the
/// same advice either way.
fn catch_panic<T>(dir: &Path, f: impl FnOnce() -> T) -> Result<T, StoreError> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let text = crate::task::panic_message(panic.as_ref());
        StoreError::Corrupt {
            dir: dir.to_path_buf(),
            detail: format!(
                "sled panicked reading it: {}",
                crate::text::truncate_bytes(&text, 200)
            ),
        }
    })
}

/// Writes the marker durably: a torn or missing marker only means the next open cannot tell
/// a destroyed store from a new one.
fn write_marker(path: &Path, epoch: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(format!("{epoch}\n").as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
impl Store {
    /// Writes an outbox entry without its guard, as a crash between the two writes of
    /// `enqueue` leaves it.
    fn insert_unguarded(&self, sink: &str, entry: &OutboxEntry) -> u64 {
        let s = self.current().unwrap().sink_or_create(sink).unwrap();
        let seq = self.current().unwrap().db.generate_id().unwrap();
        s.outbox
            .insert(keys::seq(seq), serde_json::to_vec(entry).unwrap())
            .unwrap();
        seq
    }

    /// Writes a dead letter without removing the entry, as a crash inside `dead_letter`
    /// leaves it.
    fn insert_dead_only(&self, sink: &str, seq: u64, letter: &DeadLetter) {
        let s = self.current().unwrap().sink_or_create(sink).unwrap();
        s.dead
            .insert(keys::seq(seq), serde_json::to_vec(letter).unwrap())
            .unwrap();
    }

    /// Writes a group header straight to sled, as a crash after a close's first step leaves
    /// it (the in-memory index learns it at the next open).
    fn write_group_header(&self, gid: &str, header: &GroupHeader) {
        self.current()
            .unwrap()
            .groups
            .insert(gid.as_bytes(), serde_json::to_vec(header).unwrap())
            .unwrap();
    }

    fn member_count(&self) -> usize {
        self.current().unwrap().members.iter().count()
    }

    fn guard_count(&self) -> usize {
        self.current().unwrap().guards.iter().count()
    }
}
