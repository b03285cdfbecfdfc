//! The handling audit log (issue 17): every action taken on a finding through sasrelay — who,
//! when, what, Security Center's `RequestId` and the result — listed by `sasrelay handle log`,
//! and read back when the finding's `resolved` event goes out, so it can name who handled it.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `audit` | `at_ms` (i64, big-endian) ‖ a sled id (u64, big-endian) | [`AuditEntry`] JSON |
//! | `audit_by_finding` | `source` (length-prefixed) ‖ finding id | the `audit` key of its latest successful action |
//!
//! Two single-key writes, entry first: a crash between them leaves the index on an older
//! action, never on a missing one. Bounded: the daemon's pruner keeps [`AUDIT_KEPT`] entries
//! (oldest deleted first), and an index entry whose action was pruned reads as none.
//!
//! An action is recorded when it ends, seconds after Security Center applied it (its task is
//! followed until it ends). A poll in between sees the finding resolved before the log says
//! who did it; so an action under way is also registered in memory
//! ([`Store::begin_handling`]) and [`Store::last_handled`] returns it until its guard drops.
//! Not durable: a crash meanwhile costs only the "by whom" of that one resolution.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::{At, Store, StoreError, keys};

/// Actions under way, by their finding's index key: the entry as it would be recorded, and
/// the token of the [`Handling`] guard that registered it.
#[derive(Default)]
pub(super) struct UnderWay {
    entries: Mutex<HashMap<Vec<u8>, (u64, AuditEntry)>>,
    next: AtomicU64,
}

/// An action under way on a finding (see [`Store::begin_handling`]); unregistered when dropped.
#[must_use = "the action counts as under way only while this guard lives"]
pub struct Handling {
    store: Store,
    key: Vec<u8>,
    token: u64,
}

impl Drop for Handling {
    fn drop(&mut self) {
        let mut entries = self
            .store
            .shared
            .under_way
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A later action on the same finding registered itself over this one: leave it.
        if entries
            .get(&self.key)
            .is_some_and(|(t, _)| *t == self.token)
        {
            entries.remove(&self.key);
        }
    }
}

/// Version of [`AuditEntry`]'s stored form.
pub const AUDIT_SCHEMA: u32 = 1;

/// Entries kept (the newest).
pub const AUDIT_KEPT: usize = 100_000;

/// One action on a finding, as it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Schema version ([`AUDIT_SCHEMA`]).
    pub v: u32,
    /// When it ended (unix ms).
    pub at_ms: i64,
    /// Who: the OS user of `sasrelay handle`, or the identity a chat action carried.
    pub who: String,
    /// Through what: `cli` or `chat`.
    pub via: String,
    /// The configured source.
    pub source: String,
    /// The finding's domain (`alerts`, …).
    pub domain: String,
    /// The finding (`alert:752312`).
    pub finding: String,
    /// The action (`ignore`, `whitelist`, `handled`, `undo-ignore`, …).
    pub action: String,
    /// What it did, for people (`whitelist: cmdline contains "/bin/bash -i" on this asset`).
    pub detail: String,
    /// `success`, `failure`, `refused` or `unfinished` (the task did not end in time);
    /// `under_way` only for an action not ended yet (never stored).
    pub result: String,
    /// The service's error code (or sasrelay's refusal), when not a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The service's message, or why sasrelay refused.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Security Center's `RequestId` of the write (or of the refusal).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_id: String,
    /// The asynchronous task, when the action has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<i64>,
}

impl AuditEntry {
    /// Whether the action took effect.
    pub fn succeeded(&self) -> bool {
        self.result == "success"
    }
}

/// An `audit` key as messages name it: `at_ms/id`.
fn show_key(key: &[u8]) -> String {
    match key.split_first_chunk::<8>() {
        Some((at, id)) if id.len() == 8 => format!(
            "{}/{}",
            i64::from_be_bytes(*at),
            u64::from_be_bytes(id.try_into().expect("8 bytes"))
        ),
        _ => keys::show(key, 0),
    }
}

fn index_key(source: &str, finding: &str) -> Vec<u8> {
    let mut key = keys::prefixed(source);
    key.extend_from_slice(finding.as_bytes());
    key
}

impl Store {
    /// Appends `entry` to the audit log (and, for a success, makes it its finding's latest),
    /// then flushes.
    pub async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        {
            let inner = self.current()?;
            let id = inner.db.generate_id().at(&inner.dir)?;
            let mut key = entry.at_ms.to_be_bytes().to_vec();
            key.extend_from_slice(&id.to_be_bytes());
            let value = inner.encode(entry, || format!("audit entry of {}", entry.finding))?;
            inner.audit.insert(key.clone(), value).at(&inner.dir)?;
            if entry.succeeded() {
                inner
                    .audit_by_finding
                    .insert(index_key(&entry.source, &entry.finding), key)
                    .at(&inner.dir)?;
            }
        }
        self.flush().await
    }

    /// The newest `limit` entries, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let inner = self.current()?;
        let mut out = Vec::new();
        for item in inner.audit.iter().rev().take(limit) {
            let (k, v) = item.at(&inner.dir)?;
            out.extend(inner.decode_or_pass(
                &v,
                || format!("audit {}", show_key(&k)),
                "A stored value cannot be read; the listing leaves it out.",
            ));
        }
        Ok(out)
    }

    /// Registers an action about to be taken on `entry`'s finding (`entry` as it would be
    /// recorded, its `result` saying it is under way) until the returned guard drops:
    /// meanwhile [`Store::last_handled`] returns it.
    pub fn begin_handling(&self, entry: AuditEntry) -> Handling {
        let key = index_key(&entry.source, &entry.finding);
        let token = self.shared.under_way.next.fetch_add(1, Ordering::Relaxed);
        self.shared
            .under_way
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.clone(), (token, entry));
        Handling {
            store: self.clone(),
            key,
            token,
        }
    }

    /// The action under way on `finding` of `source` (see [`Store::begin_handling`]), else its
    /// latest successful action, if one is kept.
    pub fn last_handled(
        &self,
        source: &str,
        finding: &str,
    ) -> Result<Option<AuditEntry>, StoreError> {
        if let Some((_, entry)) = self
            .shared
            .under_way
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&index_key(source, finding))
        {
            return Ok(Some(entry.clone()));
        }
        let inner = self.current()?;
        let Some(key) = inner
            .audit_by_finding
            .get(index_key(source, finding))
            .at(&inner.dir)?
        else {
            return Ok(None);
        };
        match inner.audit.get(key).at(&inner.dir)? {
            Some(v) => Ok(Some(
                inner.decode(&v, || format!("audit entry of {finding}"))?,
            )),
            None => Ok(None),
        }
    }

    /// Deletes the oldest entries beyond `keep` (and the index entries pointing at them);
    /// how many. One that does not decode is logged with its key and kept (its index entry
    /// cannot be found without it).
    pub fn prune_audit(&self, keep: usize) -> Result<usize, StoreError> {
        let inner = self.current()?;
        let excess = inner.audit.len().saturating_sub(keep);
        let mut removed = 0;
        for item in inner.audit.iter().take(excess) {
            let (k, v) = item.at(&inner.dir)?;
            let Some(e) = inner.decode_or_pass::<AuditEntry>(
                &v,
                || format!("audit {}", show_key(&k)),
                "An audit log entry cannot be read; pruning passes over it and keeps it.",
            ) else {
                continue;
            };
            let index = index_key(&e.source, &e.finding);
            if inner
                .audit_by_finding
                .get(&index)
                .at(&inner.dir)?
                .as_deref()
                == Some(&k[..])
            {
                inner.audit_by_finding.remove(index).at(&inner.dir)?;
            }
            inner.audit.remove(k).at(&inner.dir)?;
            removed += 1;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(finding: &str, at_ms: i64, action: &str, result: &str) -> AuditEntry {
        AuditEntry {
            v: AUDIT_SCHEMA,
            at_ms,
            who: "alice".into(),
            via: "cli".into(),
            source: "prod".into(),
            domain: "alerts".into(),
            finding: finding.into(),
            action: action.into(),
            detail: format!("{action} it"),
            result: result.into(),
            error_code: (result != "success").then(|| "Forbidden.RAM".into()),
            message: String::new(),
            request_id: "R".into(),
            task_id: Some(1),
        }
    }

    #[tokio::test]
    async fn the_log_keeps_every_action_and_each_findings_latest_success_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .record_audit(&entry("alert:1", 10, "ignore", "success"))
                .await
                .unwrap();
            // Two in the same millisecond are both kept.
            store
                .record_audit(&entry("alert:2", 20, "whitelist", "refused"))
                .await
                .unwrap();
            store
                .record_audit(&entry("alert:2", 20, "handled", "success"))
                .await
                .unwrap();
            // A refusal does not become the finding's latest action.
            store
                .record_audit(&entry("alert:1", 30, "undo-ignore", "failure"))
                .await
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let log: Vec<(String, i64, String)> = store
            .audit_log(10)
            .unwrap()
            .into_iter()
            .map(|e| (e.finding, e.at_ms, e.action))
            .collect();
        assert_eq!(
            log,
            [
                ("alert:1".to_string(), 30, "undo-ignore".to_string()),
                ("alert:2".to_string(), 20, "handled".to_string()),
                ("alert:2".to_string(), 20, "whitelist".to_string()),
                ("alert:1".to_string(), 10, "ignore".to_string()),
            ]
        );
        assert_eq!(store.audit_log(1).unwrap().len(), 1);
        let last = |f: &str| store.last_handled("prod", f).unwrap().map(|e| e.action);
        assert_eq!(last("alert:1").as_deref(), Some("ignore"));
        assert_eq!(last("alert:2").as_deref(), Some("handled"));
        assert_eq!(store.last_handled("other", "alert:1").unwrap(), None);
        // Pruning keeps the newest; an index entry whose action went reads as none.
        assert_eq!(store.prune_audit(2).unwrap(), 2);
        assert_eq!(store.audit_log(10).unwrap().len(), 2);
        assert_eq!(last("alert:1"), None);
        assert_eq!(last("alert:2").as_deref(), Some("handled"));
    }

    #[tokio::test]
    async fn an_action_under_way_answers_for_its_finding_until_its_guard_drops() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let done = entry("alert:1", 1, "handled", "success");
        store.record_audit(&done).await.unwrap();
        assert_eq!(
            store.last_handled("prod", "alert:1").unwrap(),
            Some(done.clone())
        );
        let under_way = |who: &str, action: &str, at_ms| AuditEntry {
            who: who.into(),
            ..entry("alert:1", at_ms, action, "under_way")
        };

        let first = store.begin_handling(under_way("bob", "ignore", 2));
        assert_eq!(
            store.last_handled("prod", "alert:1").unwrap(),
            Some(under_way("bob", "ignore", 2))
        );
        // Other findings and sources are not affected.
        assert_eq!(store.last_handled("prod", "alert:2").unwrap(), None);
        assert_eq!(store.last_handled("staging", "alert:1").unwrap(), None);
        // A second action on the same finding overtakes the first; the first ending does not
        // unregister the second.
        let second = store.begin_handling(under_way("carol", "whitelist", 3));
        drop(first);
        assert_eq!(
            store.last_handled("prod", "alert:1").unwrap(),
            Some(under_way("carol", "whitelist", 3))
        );
        drop(second);
        // Ended without a success recorded as the finding's latest: the log answers again.
        assert_eq!(store.last_handled("prod", "alert:1").unwrap(), Some(done));
    }
}
