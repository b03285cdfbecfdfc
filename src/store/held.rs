//! Events a silence or a mute window holds back from a sink, kept whole so that they can be
//! sent once it ends (the suppression log keeps only a line about each).
//!
//! | tree | key | value |
//! |---|---|---|
//! | `held` | holder (a silence id, or [`mute_holder`]), sink (length-prefixed) ‖ event id | [`Held`] JSON |
//!
//! Written by dispatch beside the suppression record, in the same batch (so a crash keeps
//! both or neither of a page's); released by the owner of silence ends
//! (`pipeline::dispatch`): the event is enqueued (or grouped, or held by another silence)
//! first, then its `held` key removed, so a crash in between enqueues it again, and the
//! outbox guard drops the copy.

use serde::{Deserialize, Serialize};

use super::{At, Store, StoreError, keys};
use crate::event::Event;

/// Version of [`Held`]'s stored form.
pub const HELD_SCHEMA: u32 = 1;

/// One event a silence holds back from one sink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// Schema version ([`HELD_SCHEMA`]).
    pub v: u32,
    /// When it was held (unix ms).
    pub at_ms: i64,
    /// What holds it: a silence id, or a mute window's [`mute_holder`].
    pub silence: String,
    /// The route that sent it to the sink.
    pub route: String,
    /// The sink it is held from.
    pub sink: String,
    /// The finding's lifecycle generation when the event was made (`None`: no finding).
    pub generation: Option<u64>,
    /// The event, whole.
    pub event: Event,
    /// For a `resolved` event: whether the same holder also held its finding's `new` from
    /// this sink, so the sink never heard of the finding (`send_resolved_after_silence` then
    /// sends nothing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub opening_held: bool,
}

/// The holder key of events a mute window keeps back: `mute:` and the window as routing
/// names it (a `mute_time_intervals` name, or `outside active_time_intervals: …`). Silence
/// ids are UUIDs, so the two never meet.
pub fn mute_holder(window: &str) -> String {
    format!("mute:{window}")
}

/// The mute window of a [`mute_holder`] key; `None` for a silence.
pub fn muted_by(holder: &str) -> Option<&str> {
    holder.strip_prefix("mute:")
}

fn silence_prefix(silence: &str) -> Vec<u8> {
    keys::prefixed(silence)
}

fn held_key(h: &Held) -> Vec<u8> {
    let mut key = silence_prefix(&h.silence);
    key.extend_from_slice(&keys::guard(&h.sink, &h.event.id));
    key
}

impl Store {
    /// Keeps `held` (the same event held twice from one sink by one silence is kept once).
    pub fn hold(&self, held: &Held) -> Result<(), StoreError> {
        let inner = self.current()?;
        let value = inner.encode(held, || format!("held event {}", held.event.id))?;
        inner.held.insert(held_key(held), value).at(&inner.dir)?;
        Ok(())
    }

    /// Up to `limit` events `silence` holds, oldest key first. One that does not decode is
    /// passed over (see [`Store::each_held`]).
    pub fn held_by(&self, silence: &str, limit: usize) -> Result<Vec<Held>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        self.scan_held(silence, |held| {
            out.push(held);
            out.len() < limit
        })?;
        Ok(out)
    }

    /// Calls `each` with every event `holder` holds, in key order, one decoded at a time. One
    /// that does not decode is logged with its key and passed over (kept): it cannot be sent,
    /// and it must not keep the others from being released when their silence ends.
    pub fn each_held(&self, holder: &str, mut each: impl FnMut(Held)) -> Result<(), StoreError> {
        self.scan_held(holder, |held| {
            each(held);
            true
        })
    }

    /// Calls `each` with what `holder` holds, in key order, while it returns true.
    fn scan_held(
        &self,
        holder: &str,
        mut each: impl FnMut(Held) -> bool,
    ) -> Result<(), StoreError> {
        let inner = self.current()?;
        for item in inner.held.scan_prefix(silence_prefix(holder)) {
            let (k, v) = item.at(&inner.dir)?;
            let held = inner.decode_or_pass(
                &v,
                || format!("held {}", keys::show(&k, 2)),
                "An event a silence holds cannot be read; it is passed over and kept.",
            );
            if let Some(held) = held
                && !each(held)
            {
                break;
            }
        }
        Ok(())
    }

    /// Lets go what `holder` holds of event `event_id` from `sink`.
    pub fn unhold(&self, holder: &str, sink: &str, event_id: &str) -> Result<(), StoreError> {
        let inner = self.current()?;
        let mut key = silence_prefix(holder);
        key.extend_from_slice(&keys::guard(sink, event_id));
        inner.held.remove(key).at(&inner.dir)?;
        Ok(())
    }

    /// How many events `silence` holds (a scan of its keys).
    pub fn held_count(&self, silence: &str) -> Result<usize, StoreError> {
        let inner = self.current()?;
        let mut n = 0;
        for item in inner.held.scan_prefix(silence_prefix(silence)) {
            item.at(&inner.dir)?;
            n += 1;
        }
        Ok(n)
    }

    /// Whether `silence` still holds event `event_id` from `sink`.
    pub fn is_held(&self, silence: &str, sink: &str, event_id: &str) -> Result<bool, StoreError> {
        let inner = self.current()?;
        let mut key = silence_prefix(silence);
        key.extend_from_slice(&keys::guard(sink, event_id));
        inner.held.contains_key(key).at(&inner.dir)
    }

    /// Every holder that holds at least one event, in key order: one seek per holder, not a
    /// scan of what they hold.
    pub fn holders(&self) -> Result<Vec<String>, StoreError> {
        let inner = self.current()?;
        let mut out = Vec::new();
        let mut from: Vec<u8> = Vec::new();
        while let Some(item) = inner.held.range(from.clone()..).next() {
            let (key, _) = item.at(&inner.dir)?;
            let Some((holder, _)) = keys::take_prefixed(&key) else {
                // Not a key this module wrote: step past it.
                from = key.to_vec();
                from.push(0);
                continue;
            };
            let prefix = silence_prefix(holder);
            out.push(holder.to_string());
            match keys::successor(&prefix) {
                Some(next) => from = next,
                None => break,
            }
        }
        Ok(out)
    }

    /// Lets `held` go (sent, held elsewhere, or not to be sent).
    pub fn release_held(&self, held: &Held) -> Result<(), StoreError> {
        let inner = self.current()?;
        inner.held.remove(held_key(held)).at(&inner.dir)?;
        Ok(())
    }
}
