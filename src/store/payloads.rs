//! The payload log: every outbox entry's payload, written once, outside sled.
//!
//! sled copies whole leaf nodes as their values change, so a kilobyte payload cost about
//! 2.7 KiB on disk inside it, and rewrote that on every reschedule. Here a payload is appended
//! once to a segment file under `payloads/` in the state directory and the outbox entry in
//! sled keeps only where it is ([`Loc`]) beside its attempt counters, a few dozen bytes. The
//! same event enqueued to several sinks one after the other is written once and referred to
//! by every entry (the log remembers the last payload it appended).
//!
//! ## Format
//!
//! Segment `NNNNNNNNNNNNNNNN.seg` (the id in hex, increasing from 0; `ffffffffffffffff` is
//! never written, and a file of that name is passed over at open): records back to back, each
//! `len` (u32 LE) ‖ CRC-32 of the body (u32 LE) ‖ body. A segment is appended to until it
//! passes [`SEGMENT_BYTES`]; after an open, writing starts in a new segment (the old tail may
//! be torn). Writes go to the kernel at once (`pwrite` at the segment's known end, no buffer
//! here), so a `kill -9` loses nothing appended; a torn record left by a failed write is
//! overwritten by the next one.
//!
//! ## Durability and order
//!
//! An enqueue appends the payload before it inserts the entry that points to it, and
//! [`PayloadLog::sync`] (`fdatasync` of every segment written since the last) runs before
//! every sled flush, so an entry made durable by a flush always finds its payload. (sled also
//! writes its buffers out on its own, unsynced; only a power loss between that and the next
//! flush could leave an entry whose payload never reached the disk. The open finds it, by
//! length and CRC, reports it and keeps it as an unreadable dead letter.)
//!
//! ## Space
//!
//! The store counts, per segment, the entries pointing into it (rebuilt at open from the
//! outboxes). A segment no entry points into is deleted at the next flush (after sled made
//! the removals durable; at open, at once), except the one being written. A segment that
//! still holds one waiting entry is kept whole: the waste is bounded by how long an entry
//! can wait (`[delivery] max_age`) times the rate of new payloads.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A segment is closed for writing once it is this long.
pub(super) const SEGMENT_BYTES: u64 = 4 << 20;

/// Bytes before each record's body: length and CRC-32.
const RECORD_HEADER: u64 = 8;

/// A record claimed longer than this is checked against its segment's length before it is
/// read (payloads are a few kilobytes; a segment closes at [`SEGMENT_BYTES`]).
const LARGE_RECORD: u64 = 1 << 20;

/// The directory, inside the state directory, holding the segments.
pub(super) const DIR: &str = "payloads";

/// Where a payload is: segment, offset of its record, length of its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Loc {
    pub seg: u64,
    pub offset: u64,
    pub len: u32,
}

/// Why a payload could not be read back.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// The segment or the record is not there (deleted, or never reached the disk).
    #[error("payload segment {seg:016x} has no record of {len} bytes at {offset}")]
    Missing { seg: u64, offset: u64, len: u32 },
    /// The record is there but its length or CRC does not match.
    #[error("payload segment {seg:016x} record at {offset}: {what}")]
    Damaged { seg: u64, offset: u64, what: String },
    /// Reading failed.
    #[error("payload segment {seg:016x}: {source}")]
    Io { seg: u64, source: io::Error },
}

/// A payload read back: the record as read, dereferencing to its body (no copy).
#[derive(Debug)]
pub(super) struct Body(Vec<u8>);

impl std::ops::Deref for Body {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0[RECORD_HEADER as usize..]
    }
}

/// The segments of one state directory and the counts of entries pointing into them.
pub(super) struct PayloadLog {
    dir: PathBuf,
    state: Mutex<State>,
}

struct Segment {
    file: Arc<File>,
    /// Entries pointing into it.
    refs: u64,
}

#[derive(Default)]
struct State {
    segments: BTreeMap<u64, Segment>,
    /// The segment being written and its end; `None` until the first append after open.
    active: Option<(u64, u64)>,
    next_id: u64,
    /// Segments written since the last sync.
    unsynced: BTreeSet<u64>,
    /// The last payload appended, by id: enqueued to another sink next, it is not written
    /// again.
    last: Option<(String, Loc)>,
}

impl PayloadLog {
    /// Opens (creating) `payloads/` under `state_dir` and every segment in it. Nothing is
    /// counted yet: the store adds a reference for every entry it finds, then calls
    /// [`PayloadLog::remove_unreferenced`].
    pub fn open(state_dir: &Path) -> io::Result<PayloadLog> {
        let dir = state_dir.join(DIR);
        std::fs::create_dir_all(&dir)?;
        let mut state = State::default();
        for item in std::fs::read_dir(&dir)? {
            let item = item?;
            let name = item.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            else {
                continue;
            };
            // Ids count up from 0 and `append` never writes the last one, so this file is not
            // ours; counting from it would overflow.
            let Some(next) = id.checked_add(1) else {
                tracing::warn!(dir = %dir.display(), file = %name.to_string_lossy(), "Passing over a payload segment whose id leaves no room for another; sasrelay never writes one.");
                continue;
            };
            let file = OpenOptions::new().read(true).open(item.path())?;
            state.segments.insert(
                id,
                Segment {
                    file: Arc::new(file),
                    refs: 0,
                },
            );
            state.next_id = state.next_id.max(next);
        }
        Ok(PayloadLog {
            dir,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn path(&self, seg: u64) -> PathBuf {
        self.dir.join(format!("{seg:016x}.seg"))
    }

    /// Writes `body` (the payload `id`) and counts one reference to it; the same `id` as the
    /// last append is not written again, only counted.
    pub fn append(&self, id: &str, body: &[u8]) -> io::Result<Loc> {
        let mut state = self.lock();
        if let Some((last, loc)) = &state.last
            && last == id
        {
            let loc = *loc;
            if let Some(s) = state.segments.get_mut(&loc.seg) {
                s.refs += 1;
                return Ok(loc);
            }
        }
        let len = u32::try_from(body.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "payload over 4 GiB"))?;
        let record = RECORD_HEADER + u64::from(len);
        let (seg, end) = match state.active {
            Some((seg, end)) if end == 0 || end + record <= SEGMENT_BYTES => (seg, end),
            _ => {
                let seg = state.next_id;
                let next = seg.checked_add(1).ok_or_else(|| {
                    io::Error::other("payload segment ids are used up (a stray segment file named near ffffffffffffffff.seg?)")
                })?;
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(self.path(seg))?;
                state.next_id = next;
                state.segments.insert(
                    seg,
                    Segment {
                        file: Arc::new(file),
                        refs: 0,
                    },
                );
                state.active = Some((seg, 0));
                (seg, 0)
            }
        };
        let mut buf = Vec::with_capacity(record as usize);
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        buf.extend_from_slice(body);
        let s = state
            .segments
            .get_mut(&seg)
            .expect("the active segment is open");
        // At the known end: a failed write leaves a torn tail that the next one overwrites.
        s.file.write_all_at(&buf, end)?;
        s.refs += 1;
        state.active = Some((seg, end + record));
        state.unsynced.insert(seg);
        let loc = Loc {
            seg,
            offset: end,
            len,
        };
        state.last = Some((id.to_string(), loc));
        Ok(loc)
    }

    /// Counts one more entry pointing at `loc` (at open, for every entry found).
    pub fn add_ref(&self, loc: Loc) {
        if let Some(s) = self.lock().segments.get_mut(&loc.seg) {
            s.refs += 1;
        }
    }

    /// Counts one entry fewer pointing at `loc` (acked, dead-lettered, removed). The segment
    /// goes at the next [`PayloadLog::remove_unreferenced`] once nothing points into it.
    pub fn release(&self, loc: Loc) {
        if let Some(s) = self.lock().segments.get_mut(&loc.seg) {
            s.refs = s.refs.saturating_sub(1);
        }
    }

    /// The body at `loc`, checked against its length and CRC.
    pub fn read(&self, loc: Loc) -> Result<Body, ReadError> {
        let missing = || ReadError::Missing {
            seg: loc.seg,
            offset: loc.offset,
            len: loc.len,
        };
        let file = self
            .lock()
            .segments
            .get(&loc.seg)
            .map(|s| s.file.clone())
            .ok_or_else(missing)?;
        let record = RECORD_HEADER + u64::from(loc.len);
        // The length comes from the entry's header in sled. A damaged one can claim up to
        // 4 GiB: a claim larger than any payload is checked against the segment's length
        // before a buffer that large is asked for.
        if record > LARGE_RECORD {
            let size = file.metadata().map_err(|e| ReadError::Io {
                seg: loc.seg,
                source: e,
            })?;
            if loc.offset.saturating_add(record) > size.len() {
                return Err(missing());
            }
        }
        let mut buf = vec![0u8; record as usize];
        file.read_exact_at(&mut buf, loc.offset)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => missing(),
                _ => ReadError::Io {
                    seg: loc.seg,
                    source: e,
                },
            })?;
        let damaged = |what: String| ReadError::Damaged {
            seg: loc.seg,
            offset: loc.offset,
            what,
        };
        let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes"));
        if len != loc.len {
            return Err(damaged(format!(
                "length {len} where the entry says {}",
                loc.len
            )));
        }
        let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
        if crc32fast::hash(&buf[RECORD_HEADER as usize..]) != crc {
            return Err(damaged("CRC mismatch".to_string()));
        }
        Ok(Body(buf))
    }

    /// Makes every append so far durable (`fdatasync` of the segments written since the
    /// last sync). Blocking.
    pub fn sync(&self) -> io::Result<()> {
        // Taken off the list before syncing: `fdatasync` covers every write made before it
        // starts, and an append during it marks its segment again for the next sync.
        let files: Vec<(u64, Arc<File>)> = {
            let mut state = self.lock();
            let unsynced = std::mem::take(&mut state.unsynced);
            unsynced
                .into_iter()
                .filter_map(|seg| Some((seg, state.segments.get(&seg)?.file.clone())))
                .collect()
        };
        for (i, (_, file)) in files.iter().enumerate() {
            if let Err(e) = file.sync_data() {
                // Not synced: still owed by the next sync.
                self.lock()
                    .unsynced
                    .extend(files[i..].iter().map(|(seg, _)| *seg));
                return Err(e);
            }
        }
        Ok(())
    }

    /// Whether an append happened since the last [`PayloadLog::sync`].
    pub fn dirty(&self) -> bool {
        !self.lock().unsynced.is_empty()
    }

    /// Segments nothing points into, except the one being written: call before a flush,
    /// then pass them to [`PayloadLog::remove_unreferenced`] once sled made the removals
    /// durable.
    pub fn unreferenced(&self) -> Vec<u64> {
        let state = self.lock();
        let active = state.active.map(|(seg, _)| seg);
        state
            .segments
            .iter()
            .filter(|(seg, s)| s.refs == 0 && Some(**seg) != active)
            .map(|(seg, _)| *seg)
            .collect()
    }

    /// Deletes those of `segs` that still nobody points into. Returns how many went.
    pub fn remove_unreferenced(&self, segs: &[u64]) -> io::Result<usize> {
        let mut removed = 0;
        for &seg in segs {
            {
                let mut state = self.lock();
                let idle = state
                    .segments
                    .get(&seg)
                    .is_some_and(|s| s.refs == 0 && state.active.map(|(a, _)| a) != Some(seg));
                if !idle {
                    continue;
                }
                state.segments.remove(&seg);
                state.unsynced.remove(&seg);
                if state.last.as_ref().is_some_and(|(_, loc)| loc.seg == seg) {
                    state.last = None;
                }
            }
            match std::fs::remove_file(self.path(seg)) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// Segments and the bytes they hold, for figures.
    pub fn usage(&self) -> (usize, u64) {
        let state = self.lock();
        let bytes = state
            .segments
            .values()
            .filter_map(|s| s.file.metadata().ok())
            .map(|m| m.len())
            .sum();
        (state.segments.len(), bytes)
    }
}

/// Marks an outbox value as a [`Header`]. Older entries are JSON (`{`) or LZ4-compressed
/// JSON (`0x01`) holding the whole entry, payload included; both stay readable.
pub(super) const HEADER_MARK: u8 = 0x02;

/// An outbox entry as sled keeps it: where its payload is, and its attempt counters.
///
/// Layout (little-endian): mark `0x02` ‖ segment u64 ‖ offset u64 ‖ length u32 ‖ attempts
/// u32 ‖ enqueued_at_ms i64 ‖ next_attempt_at_ms i64 ‖ payload id (u16 length ‖ UTF-8) ‖
/// last error (u32 length ‖ UTF-8, absent when the length is `u32::MAX`) ‖ order hashes
/// (u16 count ‖ u64 each, see [`Payload::order_hashes`](crate::event::Payload::order_hashes)).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Header {
    pub loc: Loc,
    pub id: String,
    pub attempts: u32,
    pub enqueued_at_ms: i64,
    pub next_attempt_at_ms: i64,
    pub last_error: Option<String>,
    pub order: Vec<u64>,
}

impl Header {
    pub fn encode(&self) -> Vec<u8> {
        let error_len = self.last_error.as_ref().map_or(0, String::len);
        let mut out = Vec::with_capacity(47 + self.id.len() + error_len);
        out.push(HEADER_MARK);
        out.extend_from_slice(&self.loc.seg.to_le_bytes());
        out.extend_from_slice(&self.loc.offset.to_le_bytes());
        out.extend_from_slice(&self.loc.len.to_le_bytes());
        out.extend_from_slice(&self.attempts.to_le_bytes());
        out.extend_from_slice(&self.enqueued_at_ms.to_le_bytes());
        out.extend_from_slice(&self.next_attempt_at_ms.to_le_bytes());
        // Payload ids are short (an event id, a digest id); longer is cut, never stored wrong.
        let id = crate::text::truncate_bytes(&self.id, usize::from(u16::MAX));
        out.extend_from_slice(&(id.len() as u16).to_le_bytes());
        out.extend_from_slice(id.as_bytes());
        match &self.last_error {
            Some(e) => {
                let e = crate::text::truncate_bytes(e, (u32::MAX - 1) as usize);
                out.extend_from_slice(&(e.len() as u32).to_le_bytes());
                out.extend_from_slice(e.as_bytes());
            }
            None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
        // A digest carries at most a few thousand findings; beyond u16, order is kept by
        // the first 65,535.
        let order = &self.order[..self.order.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(order.len() as u16).to_le_bytes());
        for h in order {
            out.extend_from_slice(&h.to_le_bytes());
        }
        out
    }

    /// `None` unless `bytes` is a whole header.
    pub fn decode(bytes: &[u8]) -> Option<Header> {
        let mut r = Reader(bytes.strip_prefix(&[HEADER_MARK])?);
        let loc = Loc {
            seg: u64::from_le_bytes(r.take()?),
            offset: u64::from_le_bytes(r.take()?),
            len: u32::from_le_bytes(r.take()?),
        };
        let attempts = u32::from_le_bytes(r.take()?);
        let enqueued_at_ms = i64::from_le_bytes(r.take()?);
        let next_attempt_at_ms = i64::from_le_bytes(r.take()?);
        let id_len = u16::from_le_bytes(r.take()?);
        let id = r.text(usize::from(id_len))?;
        let last_error = match u32::from_le_bytes(r.take()?) {
            u32::MAX => None,
            n => Some(r.text(n as usize)?),
        };
        let count = u16::from_le_bytes(r.take()?);
        let order = (0..count)
            .map(|_| r.take().map(u64::from_le_bytes))
            .collect::<Option<Vec<u64>>>()?;
        r.0.is_empty().then_some(Header {
            loc,
            id,
            attempts,
            enqueued_at_ms,
            next_attempt_at_ms,
            last_error,
            order,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn text(&mut self, n: usize) -> Option<String> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8(head.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::under_address_cap;

    #[test]
    fn appends_read_back_and_the_same_id_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = PayloadLog::open(dir.path()).unwrap();
        let a = log.append("a", b"first payload").unwrap();
        let again = log.append("a", b"first payload").unwrap();
        assert_eq!(a, again);
        let b = log.append("b", b"second").unwrap();
        assert_eq!(b.offset, RECORD_HEADER + 13);
        assert_eq!(&*log.read(a).unwrap(), b"first payload");
        assert_eq!(&*log.read(b).unwrap(), b"second");
        // Two references to `a`: one release leaves the segment in use.
        log.release(a);
        log.release(b);
        log.sync().unwrap();
        assert!(log.unreferenced().is_empty(), "the active segment stays");
        assert!(!log.dirty());
    }

    #[test]
    fn headers_round_trip_and_refuse_anything_else() {
        let h = Header {
            loc: Loc {
                seg: 3,
                offset: 4096,
                len: 1234,
            },
            id: "alert:7:new:1".to_string(),
            attempts: 2,
            enqueued_at_ms: 1_700_000_000_000,
            next_attempt_at_ms: -1,
            last_error: Some("HTTP 503 — übel".to_string()),
            order: vec![7, u64::MAX],
        };
        let bytes = h.encode();
        assert_eq!(Header::decode(&bytes), Some(h.clone()));
        let none = Header {
            last_error: None,
            order: Vec::new(),
            ..h
        };
        assert_eq!(Header::decode(&none.encode()), Some(none));
        assert_eq!(Header::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Header::decode(b"{\"v\":1}"), None);
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Header::decode(&longer), None);
    }

    #[test]
    fn damage_and_absence_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let log = PayloadLog::open(dir.path()).unwrap();
        let a = log.append("a", b"payload").unwrap();
        let wrong_len = Loc { len: 3, ..a };
        assert!(matches!(
            log.read(wrong_len),
            Err(ReadError::Damaged { .. })
        ));
        let beyond = Loc { offset: 100, ..a };
        assert!(matches!(log.read(beyond), Err(ReadError::Missing { .. })));
        let other = Loc { seg: 9, ..a };
        assert!(matches!(log.read(other), Err(ReadError::Missing { .. })));
        // Flip a byte of the body on disk.
        let path = dir.path().join(DIR).join(format!("{:016x}.seg", a.seg));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[9] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let err = log.read(a).unwrap_err();
        assert!(err.to_string().contains("CRC mismatch"), "{err}");
    }

    /// A header claiming a 4 GiB payload is reported missing, without asking for 4 GiB.
    #[test]
    fn a_damaged_length_is_not_allocated() {
        under_address_cap(
            "store::payloads::tests::a_damaged_length_is_not_allocated",
            || {
                let dir = tempfile::tempdir().unwrap();
                let log = PayloadLog::open(dir.path()).unwrap();
                let a = log.append("a", b"payload").unwrap();
                let huge = Loc { len: u32::MAX, ..a };
                assert!(matches!(log.read(huge), Err(ReadError::Missing { .. })));
                // Under the cap, a record of a few megabytes still reads.
                let big = vec![7u8; 3 << 20];
                let b = log.append("b", &big).unwrap();
                assert_eq!(&*log.read(b).unwrap(), &big[..]);
            },
        );
    }

    #[test]
    fn segments_roll_and_go_when_nothing_points_into_them() {
        let dir = tempfile::tempdir().unwrap();
        let log = PayloadLog::open(dir.path()).unwrap();
        let body = vec![7u8; 1 << 20];
        let locs: Vec<Loc> = (0..6)
            .map(|i| log.append(&i.to_string(), &body).unwrap())
            .collect();
        let segs: BTreeSet<u64> = locs.iter().map(|l| l.seg).collect();
        assert_eq!(segs.len(), 2, "4 MiB segments hold three 1 MiB records");
        for loc in &locs[..3] {
            log.release(*loc);
        }
        let idle = log.unreferenced();
        assert_eq!(idle, vec![locs[0].seg]);
        assert_eq!(log.remove_unreferenced(&idle).unwrap(), 1);
        assert!(matches!(log.read(locs[0]), Err(ReadError::Missing { .. })));
        assert_eq!(*log.read(locs[5]).unwrap(), body[..]);
        // Reopened: segments found again, counted by the store, written in a new one.
        drop(log);
        let log = PayloadLog::open(dir.path()).unwrap();
        assert_eq!(log.usage().0, 1);
        let next = log.append("x", b"x").unwrap();
        assert!(next.seg > locs[5].seg);
        assert_eq!(*log.read(locs[5]).unwrap(), body[..]);
        assert_eq!(log.unreferenced(), vec![locs[5].seg], "not yet counted");
    }

    /// A segment whose id leaves no room for a next (a stray file; sasrelay never writes
    /// one) is passed over, not an overflow: writing goes on in segments of their own.
    #[test]
    fn a_segment_id_that_leaves_no_room_is_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let segs = dir.path().join(DIR);
        std::fs::create_dir_all(&segs).unwrap();
        std::fs::write(segs.join("0000000000000003.seg"), b"").unwrap();
        let stray = segs.join("ffffffffffffffff.seg");
        std::fs::write(&stray, b"not ours").unwrap();
        let log = PayloadLog::open(dir.path()).unwrap();
        assert_eq!(log.usage().0, 1, "only the segment of ours");
        let a = log.append("a", b"payload").unwrap();
        assert_eq!(a.seg, 4);
        assert_eq!(&*log.read(a).unwrap(), b"payload");
        assert!(log.remove_unreferenced(&[u64::MAX]).is_ok());
        assert!(stray.exists(), "left alone");
    }
}
