//! Baseline risk × asset pairs: the unit `DescribeCheckWarnings` lists, and the rule that lets
//! a baseline walk ([`crate::sas::api::BaselineWalker`]) leave a pair unlisted when its counts
//! have not changed since its last complete listing. Pure: what was listed is recalled through
//! a [`PairBook`] the caller implements (the poller keeps it in the state store).
//!
//! A pair's `DescribeWarningMachines` row carries its own counts (failing items by level,
//! passing items, and whether a check is being verified). One failing check fixed, a new one
//! failing, a check moved to verifying: each changes the row, so the pair is listed again.
//! What the counts cannot show — one check swapped for another of the same level on the same
//! asset between two sweeps, or a changed text on a check — is caught by listing every pair
//! again once its last listing is older than [`PAIR_RELIST_AFTER`] less a spread of up to
//! [`PAIR_RELIST_SPREAD`] (by a hash of the pair, so the pairs of one first sweep do not all
//! fall due on the same later sweep).

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::models::WarningMachine;

/// A pair is listed again, whatever its counts say, once its last listing is this old (less
/// its spread): a day, the default period of Security Center's baseline scans, so a change
/// the counts cannot show is seen within about a scan.
pub const PAIR_RELIST_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Up to how much earlier than [`PAIR_RELIST_AFTER`] a pair falls due, by a hash of its key:
/// the pairs a first sweep listed together are listed again over half a day of sweeps, not
/// on one.
pub const PAIR_RELIST_SPREAD: Duration = Duration::from_secs(12 * 3600);

/// One baseline risk on one affected asset, as a `DescribeWarningMachines` row names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairKey {
    /// The risk (`RiskId`).
    pub risk_id: String,
    /// The asset (`Uuid`).
    pub uuid: String,
    /// The container the row names (`ContainerName`), empty for none.
    pub container: String,
}

impl PairKey {
    /// The pair of `machine`'s row under `risk_id`; `None` for a row without `Uuid` (it cannot
    /// be listed).
    pub fn of(risk_id: &str, machine: &WarningMachine) -> Option<PairKey> {
        let uuid = machine.uuid.trim();
        (!uuid.is_empty()).then(|| PairKey {
            risk_id: risk_id.to_string(),
            uuid: uuid.to_string(),
            container: machine.container_name.trim().to_string(),
        })
    }

    /// How old its last listing may be before it is listed again whatever its counts:
    /// [`PAIR_RELIST_AFTER`] less a spread below [`PAIR_RELIST_SPREAD`] taken from a hash of
    /// the key (the same for a pair on every run).
    pub fn relist_after_ms(&self) -> i64 {
        let mut h = Sha256::new();
        for part in [&self.risk_id, &self.uuid, &self.container] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        let hash = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash[..8]);
        let spread = PAIR_RELIST_SPREAD.as_millis() as u64;
        let early = u64::from_be_bytes(first) % spread.max(1);
        PAIR_RELIST_AFTER.as_millis() as i64 - early as i64
    }
}

/// The counts of a pair's machine row, as kept: `high/medium/low/pass/status`. `Status` (1
/// done, 2 verifying) is part of it because a check moving to verifying changes no count.
pub fn pair_counts(machine: &WarningMachine) -> String {
    format!(
        "{}/{}/{}/{}/{}",
        machine.high_warning_count,
        machine.medium_warning_count,
        machine.low_warning_count,
        machine.pass_count,
        machine.status
    )
}

/// What a [`PairBook`] recalls of a pair's last complete listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairListed {
    /// The counts of its machine row then ([`pair_counts`]).
    pub counts: String,
    /// When it was listed (unix ms).
    pub listed_at_ms: i64,
    /// What the caller kept of the check results listed (their findings' fingerprints),
    /// handed back with a pair the walk skips: they count as listed again.
    pub kept: Vec<String>,
}

/// Where a baseline walk asks about a pair's last complete listing.
pub trait PairBook: Send + Sync {
    /// The last complete listing of `pair` in the walk of `cluster` (`None`: account-wide),
    /// if one is known. A book that cannot tell (a read error) says `None`: the pair is
    /// listed, which is always safe.
    fn recall(&self, cluster: Option<&str>, pair: &PairKey) -> Option<PairListed>;
}

/// How a baseline walk may skip pairs: the book of their last listings, and the poll's now.
#[derive(Clone)]
pub struct PairSkip {
    /// The last listings.
    pub book: Arc<dyn PairBook>,
    /// The poll's now (unix ms), for the age of a listing.
    pub now_ms: i64,
}

impl PairSkip {
    /// What the book kept of `pair` when it may go unlisted now ([`unchanged`]), else `None`.
    pub fn recall_unchanged(
        &self,
        cluster: Option<&str>,
        pair: &PairKey,
        counts: &str,
    ) -> Option<PairListed> {
        self.book
            .recall(cluster, pair)
            .filter(|known| unchanged(pair, known, counts, self.now_ms))
    }
}

/// Whether `pair`, whose machine row now shows `counts`, may go unlisted at `now_ms`: its
/// counts are those of its last complete listing, and that listing is not older than
/// [`PairKey::relist_after_ms`] (nor in the future: a clock stepped back lists it).
pub fn unchanged(pair: &PairKey, known: &PairListed, counts: &str, now_ms: i64) -> bool {
    let age = now_ms.saturating_sub(known.listed_at_ms);
    known.counts == counts && (0..pair.relist_after_ms()).contains(&age)
}

/// A pair the walk listed: the check results of its batch are the pair's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedPair {
    /// The pair.
    pub key: PairKey,
    /// The counts of its machine row ([`pair_counts`]).
    pub counts: String,
    /// Every listing of it was read to its end, with no record that could not be read, and
    /// every check result it holds is in its batch (none was yielded earlier by another
    /// pair): only then may what it listed stand for it when it is skipped.
    pub whole: bool,
}

/// A pair the walk did not list: its counts are unchanged since its last listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedPair {
    /// The pair.
    pub key: PairKey,
    /// What the book kept of its last listing ([`PairListed::kept`]).
    pub kept: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uuid: &str) -> PairKey {
        PairKey {
            risk_id: "120".into(),
            uuid: uuid.into(),
            container: String::new(),
        }
    }

    fn listed(counts: &str, at: i64) -> PairListed {
        PairListed {
            counts: counts.into(),
            listed_at_ms: at,
            kept: vec!["fp".into()],
        }
    }

    #[test]
    fn a_pair_is_skipped_only_with_the_same_counts_and_a_recent_listing() {
        let k = key("u1");
        let due = k.relist_after_ms();
        let day = PAIR_RELIST_AFTER.as_millis() as i64;
        let half = day - PAIR_RELIST_SPREAD.as_millis() as i64;
        assert!((half..=day).contains(&due), "{due}");
        let t0 = 1_000_000;
        assert!(unchanged(&k, &listed("1/0/0/5/1", t0), "1/0/0/5/1", t0));
        assert!(unchanged(
            &k,
            &listed("1/0/0/5/1", t0),
            "1/0/0/5/1",
            t0 + due - 1
        ));
        // Due again by age, whatever the counts.
        assert!(!unchanged(
            &k,
            &listed("1/0/0/5/1", t0),
            "1/0/0/5/1",
            t0 + due
        ));
        // A check fixed (one fewer failing, one more passing), verifying, another level.
        for other in ["0/0/0/6/1", "1/0/0/5/2", "0/1/0/5/1"] {
            assert!(!unchanged(&k, &listed("1/0/0/5/1", t0), other, t0 + 1));
        }
        // A listing from the future (the clock stepped back) is not trusted.
        assert!(!unchanged(
            &k,
            &listed("1/0/0/5/1", t0),
            "1/0/0/5/1",
            t0 - 1
        ));
    }

    #[test]
    fn pairs_fall_due_spread_over_the_spread() {
        let dues: Vec<i64> = (0..200)
            .map(|i| key(&format!("u{i}")).relist_after_ms())
            .collect();
        let day = PAIR_RELIST_AFTER.as_millis() as i64;
        let spread = PAIR_RELIST_SPREAD.as_millis() as i64;
        assert!(dues.iter().all(|d| (day - spread..=day).contains(d)));
        // Roughly uniform: each quarter of the spread holds some.
        for q in 0..4 {
            let lo = day - spread + q * spread / 4;
            let n = dues
                .iter()
                .filter(|d| (lo..lo + spread / 4).contains(*d))
                .count();
            assert!(n > 20, "quarter {q}: {n} of 200");
        }
        assert_eq!(key("u1").relist_after_ms(), key("u1").relist_after_ms());
    }

    #[test]
    fn counts_name_every_field_of_the_row_that_moves_with_its_checks() {
        let m = WarningMachine {
            uuid: " u1 ".into(),
            container_name: "redis-0".into(),
            high_warning_count: 2,
            medium_warning_count: 1,
            low_warning_count: 0,
            pass_count: 30,
            status: 2,
            ..WarningMachine::default()
        };
        assert_eq!(pair_counts(&m), "2/1/0/30/2");
        let k = PairKey::of("37", &m).unwrap();
        assert_eq!((k.uuid.as_str(), k.container.as_str()), ("u1", "redis-0"));
        let nameless = WarningMachine {
            uuid: " ".into(),
            ..m
        };
        assert_eq!(PairKey::of("37", &nameless), None);
    }
}
