//! Durable routing state: open groups and their members, silences, and the log of events
//! that silences and mute windows kept from a sink.
//!
//! ## Layout
//!
//! | tree | key | value |
//! |---|---|---|
//! | `groups` | group id | [`GroupHeader`] JSON |
//! | `members` | group id (length-prefixed) ‖ seq (u64 BE) | the member [`Event`] JSON |
//! | `enq` | `#group:<group id>` (length-prefixed) ‖ event id | seq ‖ added_at_ms (a guard, as for outboxes) |
//! | `silences` | silence id | the silence, JSON (its type belongs to routing) |
//! | `suppressed` | sink (length-prefixed) ‖ event id | [`Suppressed`] JSON |
//!
//! ## Write order (single keys and compare-and-swap only, like the outbox)
//!
//! - **add a member**: create the header if absent (CAS from nothing), insert the member at a
//!   fresh seq, then CAS its guard from absent. Cut after the header: an empty group, which
//!   the next close removes. Cut after the member: the reconcile pass at open adopts it or,
//!   if its guard names another member, removes it. A lost guard CAS: the member is removed,
//!   the caller hears [`GroupAdded::Duplicate`].
//! - **close** (turn members into one digest): (1) CAS the header to record `closing` — the
//!   digest id and the last member seq it covers; (2) enqueue the digest to the sink's outbox
//!   (guarded by its id); (3) remove the covered members; (4) CAS the header to its next
//!   flush time, `closing` cleared. After a crash, a header with `closing` resumes at (2) if
//!   the digest's guard is absent — the covered members are all still there, so the rebuilt
//!   digest has the same id — and at (3) otherwise. A member is therefore in exactly one
//!   digest.
//!
//! Group operations hold one mutex (`GroupIndex`), so a member cannot slip under a
//! `closing` seq while a close runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{At, Enqueued, Inner, OutboxEntry, Store, StoreError, keys};
use crate::event::{Digest, Event, Payload};

/// Version of [`GroupHeader`]'s stored form.
pub const GROUP_SCHEMA: u32 = 1;

/// Guard "sink" names of group members start with this; sink names cannot contain `#`.
const GROUP_GUARD: &str = "#group:";

/// One open group: where its digest goes and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupHeader {
    /// Schema version ([`GROUP_SCHEMA`]).
    pub v: u32,
    /// The route that grouped (its name or path).
    pub route: String,
    /// The sink the digests go to.
    pub sink: String,
    /// The `group_by` fields and this group's values.
    pub labels: BTreeMap<String, String>,
    /// When the group was opened (unix ms).
    pub opened_at_ms: i64,
    /// When the next digest is due (unix ms): opening + `group_wait`, then each flush +
    /// `group_interval`.
    pub flush_at_ms: i64,
    /// `group_interval` in ms.
    pub group_interval_ms: i64,
    /// A digest holds at most this many members; a group that reaches it is due at once.
    pub max_size: u32,
    /// Digests sent so far.
    #[serde(default)]
    pub flushes: u64,
    /// A close in progress (see the module doc).
    #[serde(default)]
    pub closing: Option<Closing>,
}

/// A close in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closing {
    /// The digest's id.
    pub digest_id: String,
    /// The last member seq it covers.
    pub last_seq: u64,
}

/// What [`Store::group_add`](super::Store::group_add) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupAdded {
    /// A new member.
    Added,
    /// The event was added to this group before; nothing was written.
    Duplicate,
}

/// What [`Store::close_group`](super::Store::close_group) did.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupClosed {
    /// A digest of `members` events went to `sink`'s outbox.
    Digest {
        /// The sink.
        sink: String,
        /// The digest's id.
        digest_id: String,
        /// How many events it holds.
        members: usize,
        /// The outbox entry.
        enqueued: Enqueued,
    },
    /// No members and past its interval: the group was removed.
    Expired,
    /// Not due, or gone.
    NotDue,
}

/// An event a silence or mute window kept from one sink, kept for operators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppressed {
    /// When (unix ms).
    pub at_ms: i64,
    /// The event's id.
    pub event_id: String,
    /// `new`, `resolved`, …
    pub kind: String,
    /// The finding's fingerprint, if the event has a finding.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// One line about the event (untrusted text; escape before display).
    pub title: String,
    /// The sink it was kept from.
    pub sink: String,
    /// The route that matched.
    pub route: String,
    /// `silence` or `mute`.
    pub by: String,
    /// The silence id, or the time interval's name.
    pub reason: String,
}

/// In-memory view of the groups: header and member count by group id, rebuilt at open.
#[derive(Default)]
pub(super) struct GroupIndex {
    groups: BTreeMap<String, (GroupHeader, u64)>,
}

fn member_key(gid: &str, seq: u64) -> Vec<u8> {
    let mut k = keys::prefixed(gid);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn guard_name(gid: &str) -> String {
    format!("{GROUP_GUARD}{gid}")
}

/// Whether a guard's "sink" is a group's, and which.
pub(super) fn group_of_guard(sink: &str) -> Option<&str> {
    sink.strip_prefix(GROUP_GUARD)
}

impl Store {
    /// Adds `event` to the routing group `gid`, opening it with `header` if it is not open.
    /// Idempotent per (group, event id) while the member's guard lasts: see the `groups`
    /// module doc for the write order.
    pub fn group_add(
        &self,
        gid: &str,
        header: &GroupHeader,
        event: &Event,
        now_ms: i64,
    ) -> Result<GroupAdded, StoreError> {
        let inner = self.current()?;
        let dir = &inner.dir;
        let mut index = inner.group_index();
        if !index.groups.contains_key(gid) {
            let value = inner.encode(header, || format!("group {gid} header"))?;
            match inner
                .groups
                .compare_and_swap(gid.as_bytes(), None as Option<&[u8]>, Some(value))
                .at(dir)?
            {
                Ok(()) => {
                    index.groups.insert(gid.to_string(), (header.clone(), 0));
                }
                Err(lost) => {
                    // Only this index's holder writes headers; a stored one it does not know
                    // means a bug, but the stored header wins.
                    let stored: GroupHeader = match lost.current {
                        Some(v) => inner.decode(&v, || format!("group {gid} header"))?,
                        None => header.clone(),
                    };
                    index.groups.insert(gid.to_string(), (stored, 0));
                }
            }
        }
        let value = inner.encode(event, || format!("group {gid} member {}", event.id))?;
        let seq = inner.db.generate_id().at(dir)?;
        let key = member_key(gid, seq);
        inner.members.insert(&key, value).at(dir)?;
        let guard_key = keys::guard(&guard_name(gid), &event.id);
        let guard = keys::guard_value(seq, now_ms);
        match inner
            .guards
            .compare_and_swap(&guard_key, None as Option<&[u8]>, Some(&guard[..]))
            .at(dir)?
        {
            Ok(()) => {
                if let Some((_, n)) = index.groups.get_mut(gid) {
                    *n += 1;
                }
                Ok(GroupAdded::Added)
            }
            Err(_) => {
                inner.members.remove(&key).at(dir)?;
                Ok(GroupAdded::Duplicate)
            }
        }
    }

    /// When the next group is due (unix ms; `i64::MIN` for one due at once).
    pub fn next_group_due(&self) -> Option<i64> {
        let Ok(inner) = self.current() else {
            return None;
        };
        inner
            .group_index()
            .groups
            .values()
            .map(|(h, n)| {
                if h.closing.is_some() || *n >= u64::from(h.max_size) {
                    i64::MIN
                } else {
                    h.flush_at_ms
                }
            })
            .min()
    }

    /// Ids of the groups due at `now_ms` (flush time reached, full, or mid-close).
    pub fn due_groups(&self, now_ms: i64) -> Vec<String> {
        let Ok(inner) = self.current() else {
            return Vec::new();
        };
        inner
            .group_index()
            .groups
            .iter()
            .filter(|(_, (h, n))| {
                h.closing.is_some() || *n >= u64::from(h.max_size) || h.flush_at_ms <= now_ms
            })
            .map(|(gid, _)| gid.clone())
            .collect()
    }

    /// Every open group: id, header, member count.
    pub fn groups(&self) -> Vec<(String, GroupHeader, u64)> {
        let Ok(inner) = self.current() else {
            return Vec::new();
        };
        inner
            .group_index()
            .groups
            .iter()
            .map(|(gid, (h, n))| (gid.clone(), h.clone(), *n))
            .collect()
    }

    /// Closes group `gid` if it is due: its oldest members (up to its `max_size`) become one
    /// digest in its sink's outbox, stamped `created_at`; an empty group past its interval is
    /// removed. Crash-safe and idempotent: see the `groups` module doc.
    pub fn close_group(
        &self,
        gid: &str,
        now_ms: i64,
        created_at: time::OffsetDateTime,
    ) -> Result<GroupClosed, StoreError> {
        let inner = self.current()?;
        let dir = &inner.dir;
        let mut index = inner.group_index();
        let Some((header, count)) = index.groups.get(gid).cloned() else {
            return Ok(GroupClosed::NotDue);
        };
        let full = count >= u64::from(header.max_size);
        if header.closing.is_none() && !full && header.flush_at_ms > now_ms {
            return Ok(GroupClosed::NotDue);
        }
        let guard_sink = header.sink.clone();
        let (closing, digest) = match header.closing.clone() {
            Some(c) if inner.enqueued_seq(&guard_sink, &c.digest_id)?.is_some() => (c, None),
            resumed => {
                let limit = resumed
                    .as_ref()
                    .map_or(header.max_size as usize, |_| usize::MAX);
                let members =
                    inner.group_members(gid, resumed.as_ref().map(|c| c.last_seq), limit)?;
                let Some(&(last_seq, _)) = members.last() else {
                    if header.flush_at_ms <= now_ms {
                        inner.remove_group_header(gid, &header)?;
                        index.groups.remove(gid);
                        return Ok(GroupClosed::Expired);
                    }
                    return Ok(GroupClosed::NotDue);
                };
                let events: Vec<Event> = members.into_iter().map(|(_, e)| e).collect();
                let digest = Digest::new(&header.route, header.labels.clone(), events, created_at);
                let closing = Closing {
                    digest_id: digest.id.clone(),
                    last_seq,
                };
                // (1) record the close. A resumed close whose digest never reached the outbox
                // (no guard) rebuilds the same members, so the same id; were it to differ,
                // nothing was sent for the old one and the new one simply replaces it.
                let mut marked = header.clone();
                marked.closing = Some(closing.clone());
                inner.cas_group_header(gid, &header, &marked)?;
                index.groups.insert(gid.to_string(), (marked, count));
                (closing, Some(digest))
            }
        };
        let members = digest.as_ref().map_or(0, |d| d.events.len());
        // (2) the digest into the outbox
        let enqueued = match digest {
            Some(d) => inner.enqueue(&guard_sink, &OutboxEntry::new(Payload::from(d), now_ms))?,
            None => Enqueued::Duplicate(
                inner
                    .enqueued_seq(&guard_sink, &closing.digest_id)?
                    .unwrap_or_default(),
            ),
        };
        // (3) the covered members out
        let prefix = keys::prefixed(gid);
        let mut removed = 0u64;
        for item in inner.members.scan_prefix(&prefix) {
            let (k, _) = item.at(dir)?;
            let seq = keys::parse_seq(&k[prefix.len()..]).unwrap_or(u64::MAX);
            if seq > closing.last_seq {
                break;
            }
            inner.members.remove(&k).at(dir)?;
            removed += 1;
        }
        // (4) the next flush
        let (current, _) = index
            .groups
            .get(gid)
            .cloned()
            .unwrap_or((header.clone(), count));
        let mut next = current.clone();
        next.closing = None;
        next.flushes += 1;
        next.flush_at_ms = now_ms.saturating_add(next.group_interval_ms);
        inner.cas_group_header(gid, &current, &next)?;
        index
            .groups
            .insert(gid.to_string(), (next, count.saturating_sub(removed)));
        Ok(GroupClosed::Digest {
            sink: guard_sink,
            digest_id: closing.digest_id,
            members: if members == 0 {
                removed as usize
            } else {
                members
            },
            enqueued,
        })
    }

    /// Stores (or replaces) a silence under `id`.
    pub fn put_silence<T: Serialize>(&self, id: &str, silence: &T) -> Result<(), StoreError> {
        let inner = self.current()?;
        let value = inner.encode(silence, || format!("silence {id}"))?;
        inner.silences.insert(id.as_bytes(), value).at(&inner.dir)?;
        Ok(())
    }

    /// Every stored silence.
    pub fn silences<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        let inner = self.current()?;
        let mut out = Vec::new();
        for item in inner.silences.iter() {
            let (k, v) = item.at(&inner.dir)?;
            out.push(inner.decode(&v, || format!("silence {}", String::from_utf8_lossy(&k)))?);
        }
        Ok(out)
    }

    /// Deletes a silence; says whether it existed.
    pub fn remove_silence(&self, id: &str) -> Result<bool, StoreError> {
        let inner = self.current()?;
        Ok(inner
            .silences
            .remove(id.as_bytes())
            .at(&inner.dir)?
            .is_some())
    }

    /// Records that an event was kept from a sink by a silence or a mute window (idempotent
    /// per sink and event).
    pub fn record_suppressed(&self, s: &Suppressed) -> Result<(), StoreError> {
        let inner = self.current()?;
        let key = keys::guard(&s.sink, &s.event_id);
        let value = inner.encode(s, || format!("suppressed {}", s.event_id))?;
        inner.suppressed.insert(key, value).at(&inner.dir)?;
        Ok(())
    }

    /// Every recorded suppression, oldest first (a scan).
    pub fn suppressed(&self) -> Result<Vec<Suppressed>, StoreError> {
        let inner = self.current()?;
        let mut out: Vec<Suppressed> = Vec::new();
        for item in inner.suppressed.iter() {
            let (k, v) = item.at(&inner.dir)?;
            out.extend(inner.decode_or_pass(
                &v,
                || format!("suppressed {}", keys::show(&k, 1)),
                "A stored value cannot be read; the listing leaves it out.",
            ));
        }
        out.sort_by_key(|s| s.at_ms);
        Ok(out)
    }

    /// Deletes suppression records older than `cutoff_ms`; returns how many. One that does
    /// not decode is logged with its key and kept.
    pub fn prune_suppressed(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let inner = self.current()?;
        let mut removed = 0;
        for item in inner.suppressed.iter() {
            let (k, v) = item.at(&inner.dir)?;
            let Some(s) = inner.decode_or_pass::<Suppressed>(
                &v,
                || format!("suppressed {}", keys::show(&k, 1)),
                "A suppression record cannot be read; pruning passes over it and keeps it.",
            ) else {
                continue;
            };
            if s.at_ms < cutoff_ms
                && inner
                    .suppressed
                    .compare_and_swap(&k, Some(&v), None as Option<&[u8]>)
                    .at(&inner.dir)?
                    .is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl Inner {
    fn group_index(&self) -> std::sync::MutexGuard<'_, GroupIndex> {
        self.group_index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Members of `gid` in seq order: those up to `up_to` (all of them), or the first `limit`.
    pub(super) fn group_members(
        &self,
        gid: &str,
        up_to: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Event)>, StoreError> {
        let prefix = keys::prefixed(gid);
        let mut out = Vec::new();
        for item in self.members.scan_prefix(&prefix) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.at(&self.dir)?;
            let Some(seq) = keys::parse_seq(&k[prefix.len()..]) else {
                continue;
            };
            if up_to.is_some_and(|last| seq > last) {
                break;
            }
            out.push((
                seq,
                self.decode(&v, || format!("group {gid} member {seq}"))?,
            ));
        }
        Ok(out)
    }

    fn cas_group_header(
        &self,
        gid: &str,
        old: &GroupHeader,
        new: &GroupHeader,
    ) -> Result<(), StoreError> {
        let old = self.encode(old, || format!("group {gid} header"))?;
        let new = self.encode(new, || format!("group {gid} header"))?;
        match self
            .groups
            .compare_and_swap(gid.as_bytes(), Some(old), Some(new))
            .at(&self.dir)?
        {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::Corrupt {
                dir: self.dir.clone(),
                detail: format!("group {gid}: its header changed under the group lock"),
            }),
        }
    }

    fn remove_group_header(&self, gid: &str, header: &GroupHeader) -> Result<(), StoreError> {
        let old = self.encode(header, || format!("group {gid} header"))?;
        let _ = self
            .groups
            .compare_and_swap(gid.as_bytes(), Some(old), None as Option<&[u8]>)
            .at(&self.dir)?;
        Ok(())
    }

    /// Rebuilds the group index and repairs members a crash left without their guard (adopt)
    /// or duplicated (remove). Returns `(guards_recreated, duplicates_removed)`.
    pub(super) fn reconcile_groups(&self) -> Result<(u64, u64), StoreError> {
        let dir = &self.dir;
        let mut index = self.group_index();
        index.groups.clear();
        for item in self.groups.iter() {
            let (k, v) = item.at(dir)?;
            let gid = String::from_utf8_lossy(&k).into_owned();
            let header: GroupHeader = self.decode(&v, || format!("group {gid} header"))?;
            index.groups.insert(gid, (header, 0));
        }
        let (mut adopted, mut removed) = (0, 0);
        for item in self.members.iter() {
            let (k, v) = item.at(dir)?;
            let Some((gid, rest)) = keys::take_prefixed(&k) else {
                continue;
            };
            let Some(seq) = keys::parse_seq(rest) else {
                continue;
            };
            let event: Event = self.decode(&v, || format!("group {gid} member {seq}"))?;
            let guard_key = keys::guard(&guard_name(gid), &event.id);
            let owner = match self.guards.get(&guard_key).at(dir)? {
                Some(g) => self.guard_seq(&g)?,
                None => {
                    let guard = keys::guard_value(
                        seq,
                        (event.observed_at.unix_timestamp_nanos() / 1_000_000) as i64,
                    );
                    let _ = self
                        .guards
                        .compare_and_swap(&guard_key, None as Option<&[u8]>, Some(&guard[..]))
                        .at(dir)?;
                    adopted += 1;
                    seq
                }
            };
            if owner != seq {
                self.members.remove(&k).at(dir)?;
                removed += 1;
                continue;
            }
            match index.groups.get_mut(gid) {
                Some((_, n)) => *n += 1,
                None => {
                    // A member whose header is gone cannot be routed any more; keep it out
                    // of the way but say so (headers are written before members).
                    tracing::warn!(
                        group = gid,
                        seq,
                        "A group member has no group header; it stays in the store until its group is recreated."
                    );
                }
            }
        }
        Ok((adopted, removed))
    }

    /// Whether `gid` still has the member at `seq` (for pruning its guard).
    pub(super) fn has_member(&self, gid: &str, seq: u64) -> Result<bool, StoreError> {
        self.members
            .contains_key(member_key(gid, seq))
            .at(&self.dir)
    }

    // ----- silences -----

    // ----- suppressed -----
}
