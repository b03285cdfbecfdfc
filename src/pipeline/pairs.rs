//! What a baseline sweep keeps of its risk × asset pairs ([`crate::sas::pairs`]) in the
//! store's `pairs` tree: the book the walk asks whether a pair's counts changed
//! ([`PairRows`]), and the ledger of the pairs one sweep met ([`PairLedger`]).
//!
//! The order keeps the absence judgement right: a pair's row (its counts and the fingerprints
//! of its findings) is written only after the page that listed it is committed, and only when
//! the listing was whole, so a row never names fewer findings than the pair holds, nor any
//! that is not recorded. A skipped pair's fingerprints count as listed by the sweep, so
//! nothing it holds is resolved while it goes unlisted; a pair gone from the machine list
//! is not met, its findings are not counted, and its row is removed at the end of a sweep
//! that walked its scope whole.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

use crate::sas::pairs::{PairBook, PairKey, PairListed};
use crate::sas::source::PagePairs;
use crate::store::{PAIR_SCHEMA, PairName, Store, StoreError, StoredPair};

/// One source's rows, as the book a baseline walk asks.
pub struct PairRows {
    store: Store,
    source: String,
}

impl PairRows {
    /// The rows of `source` in `store`.
    pub fn new(store: Store, source: &str) -> Self {
        PairRows {
            store,
            source: source.to_string(),
        }
    }
}

fn name(pair: &PairKey) -> PairName<'_> {
    [&pair.risk_id, &pair.uuid, &pair.container]
}

impl PairBook for PairRows {
    fn recall(&self, cluster: Option<&str>, pair: &PairKey) -> Option<PairListed> {
        match self
            .store
            .pair(&self.source, cluster.unwrap_or(""), name(pair))
        {
            Ok(row) => row.map(|r| PairListed {
                counts: r.counts,
                listed_at_ms: r.listed_at_ms,
                kept: r.fingerprints,
            }),
            Err(e) => {
                // Not knowing costs one listing, never a wrong judgement.
                tracing::debug!(source = %self.source, error = %e, "Could not read a baseline pair's last listing; listing it.");
                None
            }
        }
    }
}

/// The pairs one baseline sweep met, listed or skipped, by a digest of scope and pair.
#[derive(Debug, Default)]
pub struct PairLedger {
    met: HashSet<[u8; 32]>,
    /// Pairs left unlisted.
    pub skipped: usize,
    /// Pairs listed.
    pub listed: usize,
}

fn met_key(scope: &str, [risk, uuid, container]: PairName<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [scope, risk, uuid, container] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

impl PairLedger {
    /// What to keep of a page's findings for its listed pair: their fingerprints, when the
    /// pair was listed whole and the page holds no unreadable record; else `None` (the pair
    /// keeps no row and is listed again next sweep).
    pub fn keepable(
        pairs: &PagePairs,
        fingerprints: impl Iterator<Item = String>,
        clean: bool,
    ) -> Option<Vec<String>> {
        pairs
            .listed
            .as_ref()
            .filter(|p| p.whole && clean)
            .map(|_| fingerprints.collect())
    }

    /// After the page covering `pairs` is committed: keeps the listed pair's row (with `kept`,
    /// from [`PairLedger::keepable`]) and notes every pair as met. Returns the fingerprints
    /// the skipped pairs kept, which the sweep counts as listed.
    pub fn committed(
        &mut self,
        store: &Store,
        source: &str,
        pairs: PagePairs,
        kept: Option<Vec<String>>,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let scope = pairs.cluster.as_deref().unwrap_or("");
        if let Some(p) = &pairs.listed {
            self.listed += 1;
            self.met.insert(met_key(scope, name(&p.key)));
            if let Some(fingerprints) = kept {
                let row = StoredPair {
                    v: PAIR_SCHEMA,
                    counts: p.counts.clone(),
                    listed_at_ms: now_ms,
                    fingerprints,
                };
                store.put_pair(source, scope, name(&p.key), &row)?;
            }
        }
        let mut seen = Vec::new();
        for p in pairs.skipped {
            self.skipped += 1;
            self.met.insert(met_key(scope, name(&p.key)));
            seen.extend(p.kept);
        }
        Ok(seen)
    }

    /// The end of a sweep: removes the rows of pairs it did not meet in `scopes` (those it
    /// walked whole); how many.
    pub fn forget_gone<'a>(
        &self,
        store: &Store,
        source: &str,
        scopes: impl Iterator<Item = &'a Option<String>>,
    ) -> Result<usize, StoreError> {
        let mut removed = 0;
        for scope in scopes {
            let scope = scope.as_deref().unwrap_or("");
            removed +=
                store.retain_pairs(source, scope, |p| self.met.contains(&met_key(scope, p)))?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sas::pairs::{ListedPair, SkippedPair};

    /// Risk 120 on host `uuid`, as its machine row names it.
    fn key(uuid: &str) -> PairKey {
        let row = crate::sas::models::WarningMachine {
            uuid: uuid.into(),
            ..Default::default()
        };
        PairKey::of("120", &row).unwrap()
    }

    fn page(cluster: &str, listed: Option<(&str, bool)>, skipped: &[&str]) -> PagePairs {
        PagePairs {
            cluster: Some(cluster.into()),
            listed: listed.map(|(uuid, whole)| ListedPair {
                key: key(uuid),
                counts: "1/0/0/9/1".into(),
                whole,
            }),
            skipped: skipped
                .iter()
                .map(|uuid| SkippedPair {
                    key: key(uuid),
                    kept: vec![format!("fp-{uuid}")],
                })
                .collect(),
        }
    }

    #[test]
    fn a_sweep_keeps_whole_listings_counts_skipped_ones_and_forgets_pairs_gone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let rows = PairRows::new(store.clone(), "s");
        let fps = || ["a".to_string(), "b".to_string()].into_iter();

        // What a page may keep: a whole listing on a clean page only.
        let whole = page("c1", Some(("u1", true)), &[]);
        assert_eq!(PairLedger::keepable(&whole, fps(), true).unwrap().len(), 2);
        assert_eq!(PairLedger::keepable(&whole, fps(), false), None);
        let partial = page("c1", Some(("u2", false)), &[]);
        assert_eq!(PairLedger::keepable(&partial, fps(), true), None);
        assert_eq!(
            PairLedger::keepable(&page("c1", None, &["u3"]), fps(), true),
            None
        );

        // A first sweep of c1 lists u1 (whole) and u2 (not whole), and one of c2 lists u9.
        let mut first = PairLedger::default();
        let kept = PairLedger::keepable(&whole, fps(), true);
        assert!(
            first
                .committed(&store, "s", whole, kept, 1_000)
                .unwrap()
                .is_empty()
        );
        first.committed(&store, "s", partial, None, 1_000).unwrap();
        let c2 = page("c2", Some(("u9", true)), &[]);
        first
            .committed(&store, "s", c2, Some(vec!["z".into()]), 1_000)
            .unwrap();
        let u1 = rows.recall(Some("c1"), &key("u1")).unwrap();
        assert_eq!((u1.counts.as_str(), u1.listed_at_ms), ("1/0/0/9/1", 1_000));
        assert_eq!(u1.kept, ["a", "b"]);
        assert_eq!(
            rows.recall(Some("c1"), &key("u2")),
            None,
            "not whole: no row"
        );
        assert_eq!(rows.recall(None, &key("u1")), None, "another scope");
        assert_eq!((first.listed, first.skipped), (3, 0));

        // The next sweep walks c1 only: it skips u1 (its fingerprints count as listed) and
        // does not meet u4 (a row an earlier sweep kept), whose row goes; c2's stays.
        store
            .put_pair(
                "s",
                "c1",
                ["120", "u4", ""],
                &StoredPair {
                    v: PAIR_SCHEMA,
                    counts: "1/0/0/9/1".into(),
                    listed_at_ms: 1_000,
                    fingerprints: vec!["d".into()],
                },
            )
            .unwrap();
        let mut next = PairLedger::default();
        let seen = next
            .committed(&store, "s", page("c1", None, &["u1"]), None, 2_000)
            .unwrap();
        assert_eq!(seen, ["fp-u1"]);
        assert_eq!((next.listed, next.skipped), (0, 1));
        let walked = [Some("c1".to_string())];
        assert_eq!(next.forget_gone(&store, "s", walked.iter()).unwrap(), 1);
        assert!(
            rows.recall(Some("c1"), &key("u4")).is_none(),
            "u4 left the list"
        );
        assert!(rows.recall(Some("c1"), &key("u1")).is_some(), "u1 was met");
        assert!(
            rows.recall(Some("c2"), &key("u9")).is_some(),
            "c2 was not walked"
        );
    }
}
