//! Baseline risk × asset pairs as last listed: per source, walk scope (a cluster, or the
//! account) and pair, the counts of its `DescribeWarningMachines` row when its check results
//! were last listed completely, when, and the fingerprints of the findings they were. A sweep
//! that finds a pair's counts unchanged does not list it again and counts those findings as
//! listed (see `crate::sas::pairs`).
//!
//! | tree | key | value |
//! |---|---|---|
//! | `pairs` | source, scope, risk id, uuid (length-prefixed) ‖ container | [`StoredPair`] JSON |
//!
//! The scope is the cluster id, empty for an account-wide walk. Written by the poller after
//! the records of the pair's findings (so a row never names findings that are not recorded);
//! rows of pairs no longer listed are removed at the end of a sweep that walked their scope
//! whole ([`Store::retain_pairs`]), and rows too old to be trusted by the pruner
//! ([`Store::prune_pairs`]). Single-key writes and compare-and-swap only.

use serde::{Deserialize, Serialize};

use super::{At, Inner, Store, StoreError, keys};

/// Version of [`StoredPair`]'s stored form. A row of a newer version is not used (the pair is
/// listed again), never an error.
pub const PAIR_SCHEMA: u32 = 1;

/// A pair's last complete listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPair {
    /// Schema version ([`PAIR_SCHEMA`]).
    pub v: u32,
    /// The counts of the pair's machine row then (`high/medium/low/pass/status`).
    pub counts: String,
    /// When it was listed (unix ms).
    pub listed_at_ms: i64,
    /// The fingerprints of the findings its check results were.
    pub fingerprints: Vec<String>,
}

/// A pair as the key names it: risk id, uuid, container (empty for none).
pub type PairName<'a> = [&'a str; 3];

fn scope_prefix(source: &str, scope: &str) -> Vec<u8> {
    let mut key = keys::prefixed(source);
    key.extend_from_slice(&keys::prefixed(scope));
    key
}

fn pair_key(source: &str, scope: &str, [risk, uuid, container]: PairName<'_>) -> Vec<u8> {
    let mut key = scope_prefix(source, scope);
    key.extend_from_slice(&keys::prefixed(risk));
    key.extend_from_slice(&keys::prefixed(uuid));
    key.extend_from_slice(container.as_bytes());
    key
}

/// The pair a key names after its scope prefix.
fn pair_name(rest: &[u8]) -> Option<PairName<'_>> {
    let (risk, rest) = keys::take_prefixed(rest)?;
    let (uuid, container) = keys::take_prefixed(rest)?;
    Some([risk, uuid, std::str::from_utf8(container).ok()?])
}

impl Store {
    /// Keeps `row` as the last listing of `pair` in `source`'s walk of `scope`.
    pub fn put_pair(
        &self,
        source: &str,
        scope: &str,
        pair: PairName<'_>,
        row: &StoredPair,
    ) -> Result<(), StoreError> {
        let inner = self.current()?;
        let value = inner.encode(row, || format!("baseline pair {}", pair.join("/")))?;
        inner
            .pairs
            .insert(pair_key(source, scope, pair), value)
            .at(&inner.dir)?;
        Ok(())
    }

    /// The last listing of `pair` in `source`'s walk of `scope`, if one is kept in a form
    /// this version reads.
    pub fn pair(
        &self,
        source: &str,
        scope: &str,
        pair: PairName<'_>,
    ) -> Result<Option<StoredPair>, StoreError> {
        let inner = self.current()?;
        let Some(v) = inner
            .pairs
            .get(pair_key(source, scope, pair))
            .at(&inner.dir)?
        else {
            return Ok(None);
        };
        let row: StoredPair = inner.decode(&v, || format!("baseline pair {}", pair.join("/")))?;
        Ok((row.v <= PAIR_SCHEMA).then_some(row))
    }

    /// Removes the rows of `source`'s walk of `scope` whose pair `keep` refuses (and any key
    /// it cannot read); how many.
    pub fn retain_pairs(
        &self,
        source: &str,
        scope: &str,
        mut keep: impl FnMut(PairName<'_>) -> bool,
    ) -> Result<usize, StoreError> {
        let inner = self.current()?;
        let prefix = scope_prefix(source, scope);
        remove_rows(&inner, inner.pairs.scan_prefix(&prefix), |k, _| {
            Ok(!pair_name(&k[prefix.len()..]).is_some_and(&mut keep))
        })
    }

    /// Deletes the rows listed before `before_ms` (too old for a sweep to trust, whatever
    /// their source: also those of sources no longer configured), and any row that does not
    /// decode (logged with its key); how many.
    pub fn prune_pairs(&self, before_ms: i64) -> Result<usize, StoreError> {
        let inner = self.current()?;
        remove_rows(&inner, inner.pairs.iter(), |k, v| {
            match inner.decode::<StoredPair>(v, || format!("pairs {}", keys::show(k, 4))) {
                Ok(row) => Ok(row.listed_at_ms < before_ms),
                // A cache of the last listing: without it the pair is only listed again.
                Err(e) => {
                    tracing::warn!(error = %e, "Deleting a baseline pair row that cannot be read; the pair is listed again.");
                    Ok(true)
                }
            }
        })
    }
}

/// Removes the rows of `rows` that `gone` picks (by key and value); how many. By
/// compare-and-swap: a row rewritten meanwhile is a pair listed again, and stays.
fn remove_rows(
    inner: &Inner,
    rows: sled::Iter,
    mut gone: impl FnMut(&[u8], &[u8]) -> Result<bool, StoreError>,
) -> Result<usize, StoreError> {
    let mut removed = 0;
    for item in rows {
        let (k, v) = item.at(&inner.dir)?;
        if gone(&k, &v)?
            && inner
                .pairs
                .compare_and_swap(&k, Some(&v), None as Option<&[u8]>)
                .at(&inner.dir)?
                .is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(counts: &str, at: i64, fps: &[&str]) -> StoredPair {
        StoredPair {
            v: PAIR_SCHEMA,
            counts: counts.into(),
            listed_at_ms: at,
            fingerprints: fps.iter().map(|f| f.to_string()).collect(),
        }
    }

    #[test]
    fn pairs_are_kept_per_source_and_scope_retained_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (p1, p2, p3) = (
            ["120", "u1", ""],
            ["120", "u2", ""],
            ["37", "u1", "redis-0"],
        );
        store
            .put_pair("s", "c1", p1, &row("1/0/0/5/1", 1_000, &["a"]))
            .unwrap();
        store
            .put_pair("s", "c1", p2, &row("0/1/0/5/1", 1_000, &["b"]))
            .unwrap();
        store
            .put_pair("s", "c1", p3, &row("1/0/0/9/1", 5_000, &["c", "d"]))
            .unwrap();
        store
            .put_pair("s", "c2", p1, &row("2/0/0/5/1", 1_000, &["e"]))
            .unwrap();
        store
            .put_pair("s", "", p1, &row("3/0/0/5/1", 1_000, &["f"]))
            .unwrap();
        store
            .put_pair("t", "c1", p1, &row("4/0/0/5/1", 1_000, &["g"]))
            .unwrap();
        // A later listing replaces the row; each source and scope has its own.
        store
            .put_pair("s", "c1", p1, &row("1/0/0/5/1", 2_000, &["a", "h"]))
            .unwrap();
        assert_eq!(
            store.pair("s", "c1", p1).unwrap(),
            Some(row("1/0/0/5/1", 2_000, &["a", "h"]))
        );
        let counts = |source, scope, p| store.pair(source, scope, p).unwrap().map(|r| r.counts);
        assert_eq!(counts("s", "c2", p1).as_deref(), Some("2/0/0/5/1"));
        assert_eq!(counts("s", "", p1).as_deref(), Some("3/0/0/5/1"));
        assert_eq!(counts("t", "c1", p1).as_deref(), Some("4/0/0/5/1"));
        assert_eq!(counts("s", "c2", p2), None);
        // A container and a uuid cannot slide into each other.
        assert_eq!(counts("s", "c1", ["37", "u1redis-0", ""]), None);

        // The end of a sweep of s/c1 that met p1 and p3 only: p2's row goes, nothing else.
        let mut seen = Vec::new();
        let removed = store
            .retain_pairs("s", "c1", |p| {
                seen.push(p.map(str::to_string));
                p != p2
            })
            .unwrap();
        assert_eq!(removed, 1);
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen.contains(&p3.map(str::to_string)));
        assert_eq!(counts("s", "c1", p2), None);
        assert!(counts("s", "c1", p1).is_some() && counts("s", "c2", p1).is_some());

        // A row a newer version wrote is not used.
        store
            .put_pair(
                "s",
                "c9",
                p1,
                &StoredPair {
                    v: PAIR_SCHEMA + 1,
                    ..row("1/0/0/0/1", 9_000, &[])
                },
            )
            .unwrap();
        assert_eq!(store.pair("s", "c9", p1).unwrap(), None);

        // Kept across a reopen; pruned by age whatever the source.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.pair("s", "c1", p3).unwrap().unwrap().fingerprints,
            ["c", "d"]
        );
        assert_eq!(store.prune_pairs(2_000).unwrap(), 3);
        assert!(
            store.pair("s", "c1", p1).unwrap().is_some(),
            "listed at 2,000"
        );
        assert!(store.pair("t", "c1", p1).unwrap().is_none());
        assert!(store.pair("s", "", p1).unwrap().is_none());
    }
}
