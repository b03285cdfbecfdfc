//! Quarantined records: what Security Center listed that could not be read (a number the
//! parser cannot hold, a record that is not an object), kept so the operator can see it
//! (`sasrelay findings --quarantined`) and report it, while the rest of the page goes on.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `quarantine` | `source`, `domain` (length-prefixed) ‖ digest of the record's text | [`QuarantineEntry`] JSON |
//!
//! Bounded: at most [`QUARANTINE_PER_SCOPE`] entries per source and domain (a new one evicts
//! the one seen longest ago), each holding at most what the reader kept of the text. The same
//! record listed again updates its entry (last seen, times), one key write each time. The
//! daemon's pruner deletes entries not listed for `[state] resolved_retention`.

use serde::{Deserialize, Serialize};

use super::{At, Store, StoreError, keys};
use crate::finding::Domain;

/// Version of [`QuarantineEntry`]'s stored form.
pub const QUARANTINE_SCHEMA: u32 = 1;

/// Entries kept per source and domain.
pub const QUARANTINE_PER_SCOPE: usize = 200;

/// One quarantined record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    /// Schema version ([`QUARANTINE_SCHEMA`]).
    pub v: u32,
    /// The source that listed it.
    pub source: String,
    /// Its domain.
    pub domain: Domain,
    /// SHA-256 of its whole text, hex (the key).
    pub digest: String,
    /// The listing action that returned it, when known.
    pub action: String,
    /// Why it could not be read.
    pub reason: String,
    /// Its text as sent, cut by the reader.
    pub raw: String,
    /// Length of the whole text in bytes.
    pub bytes: usize,
    /// First seen (unix ms).
    pub first_seen_ms: i64,
    /// Last seen (unix ms).
    pub last_seen_ms: i64,
    /// Polls that listed it.
    pub times: u64,
}

impl Store {
    /// Records that `entry` was listed at `entry.last_seen_ms`: a new entry, or the stored one
    /// with its last sighting and count updated. True when it is new.
    pub fn quarantine(&self, entry: &QuarantineEntry) -> Result<bool, StoreError> {
        let inner = self.current()?;
        let scope = keys::scope(&entry.source, entry.domain);
        let mut key = scope.clone();
        key.extend_from_slice(entry.digest.as_bytes());
        let what = || format!("quarantined record {}", entry.digest);
        let stored: Option<QuarantineEntry> = match inner.quarantine.get(&key).at(&inner.dir)? {
            Some(v) => Some(inner.decode(&v, what)?),
            None => None,
        };
        let fresh = stored.is_none();
        let next = match stored {
            Some(old) => QuarantineEntry {
                first_seen_ms: old.first_seen_ms,
                times: old.times.saturating_add(1),
                ..entry.clone()
            },
            None => {
                self.evict_oldest_quarantined(&scope)?;
                entry.clone()
            }
        };
        let value = inner.encode(&next, what)?;
        inner.quarantine.insert(key, value).at(&inner.dir)?;
        Ok(fresh)
    }

    /// Makes room for one more entry in `scope`.
    fn evict_oldest_quarantined(&self, scope: &[u8]) -> Result<(), StoreError> {
        let inner = self.current()?;
        let mut held = Vec::new();
        for item in inner.quarantine.scan_prefix(scope) {
            let (k, v) = item.at(&inner.dir)?;
            let Some(e) = inner.decode_or_pass::<QuarantineEntry>(
                &v,
                || format!("quarantine {}", keys::show(&k, 2)),
                "A quarantined record cannot be read; it is passed over and kept.",
            ) else {
                continue;
            };
            held.push((e.last_seen_ms, k));
        }
        if held.len() < QUARANTINE_PER_SCOPE {
            return Ok(());
        }
        held.sort();
        for (_, k) in held.iter().take(held.len() + 1 - QUARANTINE_PER_SCOPE) {
            inner.quarantine.remove(k).at(&inner.dir)?;
        }
        Ok(())
    }

    /// Deletes the entries last listed before `before_ms` (a record Security Center stopped
    /// listing, or a parser that learnt to read it); how many. One that does not decode is
    /// logged with its key and kept.
    pub fn prune_quarantined(&self, before_ms: i64) -> Result<usize, StoreError> {
        let inner = self.current()?;
        let mut removed = 0;
        for item in inner.quarantine.iter() {
            let (k, v) = item.at(&inner.dir)?;
            let Some(e) = inner.decode_or_pass::<QuarantineEntry>(
                &v,
                || format!("quarantine {}", keys::show(&k, 2)),
                "A quarantined record cannot be read; pruning passes over it and keeps it.",
            ) else {
                continue;
            };
            if e.last_seen_ms < before_ms {
                inner.quarantine.remove(k).at(&inner.dir)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Every quarantined record, by source and domain, then digest.
    pub fn quarantined(&self) -> Result<Vec<QuarantineEntry>, StoreError> {
        let inner = self.current()?;
        let mut out = Vec::new();
        for item in inner.quarantine.iter() {
            let (k, v) = item.at(&inner.dir)?;
            out.extend(inner.decode_or_pass(
                &v,
                || format!("quarantine {}", keys::show(&k, 2)),
                "A stored value cannot be read; the listing leaves it out.",
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(source: &str, n: usize, seen_ms: i64) -> QuarantineEntry {
        QuarantineEntry {
            v: QUARANTINE_SCHEMA,
            source: source.into(),
            domain: Domain::Alerts,
            digest: format!("{n:064x}"),
            action: "DescribeSuspEvents".into(),
            reason: "unreadable JSON".into(),
            raw: format!("{{\"Id\":{n},\"X\":1e400}}"),
            bytes: 20,
            first_seen_ms: seen_ms,
            last_seen_ms: seen_ms,
            times: 1,
        }
    }

    #[test]
    fn entries_are_kept_once_per_record_and_bounded_per_scope() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for n in 0..QUARANTINE_PER_SCOPE {
            assert!(store.quarantine(&entry("a", n, n as i64)).unwrap());
        }
        // Seen again: the same entry, first sighting kept.
        assert!(!store.quarantine(&entry("a", 0, 5_000)).unwrap());
        // One more record evicts the one seen longest ago (1; 0 was just seen again).
        assert!(store.quarantine(&entry("a", 9_999, 6_000)).unwrap());
        // Another scope has its own budget.
        assert!(store.quarantine(&entry("b", 1, 1)).unwrap());
        let all = store.quarantined().unwrap();
        let a: Vec<&QuarantineEntry> = all.iter().filter(|e| e.source == "a").collect();
        assert_eq!(a.len(), QUARANTINE_PER_SCOPE);
        assert!(!a.iter().any(|e| e.digest == format!("{:064x}", 1)));
        let zero = a
            .iter()
            .find(|e| e.digest == format!("{:064x}", 0))
            .unwrap();
        assert_eq!(
            (zero.first_seen_ms, zero.last_seen_ms, zero.times),
            (0, 5_000, 2)
        );
        assert_eq!(all.iter().filter(|e| e.source == "b").count(), 1);
        // Pruning drops what was last listed before the line, in every scope.
        // (a: 2 to 99; b: its one.)
        assert_eq!(store.prune_quarantined(100).unwrap(), 98 + 1);
        let left = store.quarantined().unwrap();
        assert_eq!(left.len(), QUARANTINE_PER_SCOPE + 1 - 99);
        assert!(left.iter().all(|e| e.last_seen_ms >= 100), "{left:?}");
    }
}
