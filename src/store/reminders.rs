//! Reminders (`repeat_interval`): for each (sink, route, finding) that a route with a repeat
//! interval delivered, when to remind about it next if it is still open.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `reminders` | sink, route (length-prefixed) ‖ fingerprint | [`Reminder`] JSON |
//!
//! The due times are also kept in memory (rebuilt at open), so finding what is due never
//! scans the tree. A reminder that does not decode is logged with its key and left out of
//! them: it never sends, and never stops the store from opening. A reminder is sent by enqueueing an event whose id is derived from the
//! finding, its lifecycle generation and the reminder's number, then advancing the stored
//! reminder with a compare-and-swap: a crash between the two re-enqueues the same id, which
//! the guard drops.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{At, Inner, Store, StoreError, keys};
use crate::event::Event;
use crate::finding::Domain;

/// Version of [`Reminder`]'s stored form.
pub const REMINDER_SCHEMA: u32 = 1;

/// One pending reminder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reminder {
    /// Schema version ([`REMINDER_SCHEMA`]).
    pub v: u32,
    /// The sink.
    pub sink: String,
    /// The route (name or path).
    pub route: String,
    /// The finding's source.
    pub source: String,
    /// The finding's domain.
    pub domain: Domain,
    /// The finding's fingerprint.
    pub fingerprint: String,
    /// The lifecycle generation it reminds about (a re-opened finding starts afresh).
    pub generation: u64,
    /// `repeat_interval` in ms.
    pub interval_ms: i64,
    /// When the next reminder is due (unix ms).
    pub due_at_ms: i64,
    /// Reminders sent so far.
    pub sent: u64,
    /// The event that was delivered (its finding is what the reminder shows).
    pub event: Event,
}

/// In-memory due times, rebuilt at open.
#[derive(Default)]
pub(super) struct ReminderIndex {
    due: BTreeSet<(i64, Vec<u8>)>,
    by_key: BTreeMap<Vec<u8>, i64>,
}

impl ReminderIndex {
    fn set(&mut self, key: Vec<u8>, due: i64) {
        if let Some(old) = self.by_key.insert(key.clone(), due) {
            self.due.remove(&(old, key.clone()));
        }
        self.due.insert((due, key));
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(old) = self.by_key.remove(key) {
            self.due.remove(&(old, key.to_vec()));
        }
    }
}

/// The key of a reminder.
pub(super) fn reminder_key(sink: &str, route: &str, fingerprint: &str) -> Vec<u8> {
    let mut k = keys::prefixed(sink);
    k.extend_from_slice(&keys::prefixed(route));
    k.extend_from_slice(fingerprint.as_bytes());
    k
}

impl Store {
    /// Starts (or restarts) a reminder for its (sink, route, finding).
    pub fn put_reminder(&self, r: &Reminder) -> Result<(), StoreError> {
        let inner = self.current()?;
        let key = reminder_key(&r.sink, &r.route, &r.fingerprint);
        let value = inner.encode(r, || format!("reminder {}", r.fingerprint))?;
        let mut index = inner.reminder_index();
        inner.reminders.insert(&key, value).at(&inner.dir)?;
        index.set(key, r.due_at_ms);
        Ok(())
    }

    /// Reminders due at `now_ms`, oldest first, at most `limit`, each with its key. One that
    /// no longer decodes is logged with its key and dropped from the due times (kept in the
    /// tree), so it cannot hold up the others.
    pub fn due_reminders(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Reminder)>, StoreError> {
        let inner = self.current()?;
        let keys: Vec<Vec<u8>> = inner
            .reminder_index()
            .due
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(limit)
            .map(|(_, k)| k.clone())
            .collect();
        let mut out = Vec::new();
        for key in keys {
            let Some(v) = inner.reminders.get(&key).at(&inner.dir)? else {
                inner.reminder_index().remove(&key);
                continue;
            };
            match inner.decode_or_pass(
                &v,
                || format!("reminders {}", keys::show(&key, 2)),
                "A reminder cannot be read; it is passed over and sends nothing.",
            ) {
                Some(r) => out.push((key, r)),
                None => inner.reminder_index().remove(&key),
            }
        }
        Ok(out)
    }

    /// When the next reminder is due (unix ms).
    pub fn next_reminder_due(&self) -> Option<i64> {
        let Ok(inner) = self.current() else {
            return None;
        };
        inner.reminder_index().due.first().map(|(at, _)| *at)
    }

    /// Moves a reminder from `old` to `new` (compare-and-swap); `false` if it changed.
    pub fn advance_reminder(
        &self,
        key: &[u8],
        old: &Reminder,
        new: &Reminder,
    ) -> Result<bool, StoreError> {
        let inner = self.current()?;
        let old_v = inner.encode(old, || "reminder".to_string())?;
        let new_v = inner.encode(new, || "reminder".to_string())?;
        let mut index = inner.reminder_index();
        let done = inner
            .reminders
            .compare_and_swap(key, Some(old_v), Some(new_v))
            .at(&inner.dir)?
            .is_ok();
        if done {
            index.set(key.to_vec(), new.due_at_ms);
        }
        Ok(done)
    }

    /// Deletes a reminder.
    pub fn remove_reminder(&self, key: &[u8]) -> Result<(), StoreError> {
        let inner = self.current()?;
        let mut index = inner.reminder_index();
        inner.reminders.remove(key).at(&inner.dir)?;
        index.remove(key);
        Ok(())
    }
}

impl Inner {
    fn reminder_index(&self) -> std::sync::MutexGuard<'_, ReminderIndex> {
        self.reminder_index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Rebuilds the due-time index. A reminder that does not decode is logged with its key
    /// and left out (kept in the tree): it is a re-notification schedule, and losing one must
    /// not keep the store from opening.
    pub(super) fn load_reminders(&self) -> Result<usize, StoreError> {
        let mut index = self.reminder_index();
        *index = ReminderIndex::default();
        for item in self.reminders.iter() {
            let (k, v) = item.at(&self.dir)?;
            if let Some(r) = self.decode_or_pass::<Reminder>(
                &v,
                || format!("reminders {}", keys::show(&k, 2)),
                "A reminder cannot be read; it is left out and sends nothing.",
            ) {
                index.set(k.to_vec(), r.due_at_ms);
            }
        }
        Ok(index.by_key.len())
    }
}
