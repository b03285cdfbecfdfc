//! Baseline check details (`DescribeCheckWarningDetail`: what a check verifies and how to fix
//! it), kept across restarts so that a restart does not fetch every check's text again. Only
//! the check-level part is kept (the same for every asset); the reader strips the evidence of
//! the asset a detail was fetched for.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `details` | language (length-prefixed) ‖ check id (i64, big-endian) | [`StoredDetail`] JSON |
//!
//! Bounded by what Security Center defines (a few hundred checks per language). The reader
//! fetches a detail again once it is older than its TTL and writes it back; the daemon's pruner
//! deletes entries older than that.

use serde::{Deserialize, Serialize};

use super::{At, Store, StoreError, keys};

/// Version of [`StoredDetail`]'s stored form. An entry of a newer version is skipped (fetched
/// again), never an error.
pub const DETAIL_SCHEMA: u32 = 1;

/// One check's detail as the reader fetched it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredDetail {
    /// Schema version ([`DETAIL_SCHEMA`]).
    pub v: u32,
    /// The check (`CheckId`).
    pub check_id: i64,
    /// When it was fetched (unix ms).
    pub fetched_at_ms: i64,
    /// The detail's JSON, check-level fields only.
    pub raw: serde_json::Value,
}

/// A `details` key as messages name it: `lang/check id`.
fn show_key(key: &[u8]) -> String {
    match keys::take_prefixed(key) {
        Some((lang, id)) if id.len() == 8 => {
            format!(
                "{lang}/{}",
                i64::from_be_bytes(id.try_into().expect("8 bytes"))
            )
        }
        _ => keys::show(key, 1),
    }
}

fn detail_key(lang: &str, check_id: i64) -> Vec<u8> {
    let mut key = keys::prefixed(lang);
    key.extend_from_slice(&check_id.to_be_bytes());
    key
}

impl Store {
    /// Keeps `detail` for `lang` (replacing what was kept for the check).
    pub fn put_detail(&self, lang: &str, detail: &StoredDetail) -> Result<(), StoreError> {
        let inner = self.current()?;
        let value = inner.encode(detail, || format!("check detail {}", detail.check_id))?;
        inner
            .details
            .insert(detail_key(lang, detail.check_id), value)
            .at(&inner.dir)?;
        Ok(())
    }

    /// The details kept for `lang` fetched at or after `since_ms`, by check id. One that does
    /// not decode is logged with its key and passed over, as if it were not kept: it is fetched
    /// again (and `prune_details` deletes it).
    pub fn details(&self, lang: &str, since_ms: i64) -> Result<Vec<StoredDetail>, StoreError> {
        let inner = self.current()?;
        let mut out = Vec::new();
        for item in inner.details.scan_prefix(keys::prefixed(lang)) {
            let (k, v) = item.at(&inner.dir)?;
            let d: StoredDetail = match inner.decode(&v, || format!("details {}", show_key(&k))) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "A kept baseline check detail cannot be read; it is fetched again.");
                    continue;
                }
            };
            if d.v <= DETAIL_SCHEMA && d.fetched_at_ms >= since_ms {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Deletes the details fetched before `before_ms`, whatever their language, and any that
    /// does not decode (logged with its key); how many.
    pub fn prune_details(&self, before_ms: i64) -> Result<usize, StoreError> {
        let inner = self.current()?;
        let mut removed = 0;
        for item in inner.details.iter() {
            let (k, v) = item.at(&inner.dir)?;
            let expired = match inner
                .decode::<StoredDetail>(&v, || format!("details {}", show_key(&k)))
            {
                Ok(d) => d.fetched_at_ms < before_ms,
                // A cache of what Security Center says: deleting it only means fetching it again.
                Err(e) => {
                    tracing::warn!(error = %e, "Deleting a kept baseline check detail that cannot be read; it is fetched again.");
                    true
                }
            };
            if expired {
                inner.details.remove(k).at(&inner.dir)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_kept_per_language_and_pruned_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = |check_id, at| StoredDetail {
            v: DETAIL_SCHEMA,
            check_id,
            fetched_at_ms: at,
            raw: serde_json::json!({ "CheckId": check_id, "Advice": "fix it" }),
        };
        store.put_detail("en", &d(7, 1_000)).unwrap();
        store.put_detail("en", &d(-3, 5_000)).unwrap();
        store.put_detail("zh", &d(7, 5_000)).unwrap();
        // A newer one replaces the older of the same check and language.
        store.put_detail("en", &d(7, 6_000)).unwrap();
        let en: Vec<(i64, i64)> = store
            .details("en", 0)
            .unwrap()
            .iter()
            .map(|d| (d.check_id, d.fetched_at_ms))
            .collect();
        assert_eq!(en.len(), 2);
        assert!(
            en.contains(&(7, 6_000)) && en.contains(&(-3, 5_000)),
            "{en:?}"
        );
        assert_eq!(
            store.details("en", 5_500).unwrap().len(),
            1,
            "older ones skipped"
        );
        // An entry a newer sasrelay wrote is skipped, not an error.
        store
            .put_detail(
                "en",
                &StoredDetail {
                    v: DETAIL_SCHEMA + 1,
                    ..d(9, 6_000)
                },
            )
            .unwrap();
        assert_eq!(store.details("en", 0).unwrap().len(), 2);
        assert_eq!(store.prune_details(5_500).unwrap(), 2);
        assert_eq!(store.details("zh", 0).unwrap().len(), 0);
        assert_eq!(store.details("en", 0).unwrap().len(), 1);
        // Kept across a reopen.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.details("en", 0).unwrap()[0].check_id, 7);
    }
}
