//! Dispatch: where the poller hands each event over. The pure [`Router`] decides the targets;
//! dispatch applies them to the store in the poll's crash-safe write order (before the
//! records and the cursor):
//!
//! - a target whose sink filter refuses the event is skipped;
//! - an active silence that matches, or a mute window, records the event as suppressed for
//!   that sink (not sent, not lost: `sasrelay silence list` and the admin API show it) and
//!   holds it whole; when the silence or window ends ([`Dispatcher::release_ended_holds`],
//!   run by the grouper) it goes through its route if its finding is still open;
//! - a grouped target adds the event to its group (the grouper closes groups into digests);
//! - anything else goes straight into the sink's outbox.
//!
//! Every write is idempotent per event (outbox and group guards, suppression keys), so the
//! re-poll after a crash repeats it harmlessly.
//!
//! A configuration reload replaces the routes and sinks whole ([`Dispatcher::reroute`]): each
//! event is routed by the routes in force when its dispatch starts, old or new, never a mix.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::clock::unix_ms;
use crate::event::{Event, EventKind, OutboxEntry, Payload, event_id, finding_event_id};
use crate::ha::Term;
use crate::ha::ledger::{Handoff, stream_key};
use crate::record::RecordStatus;
use crate::routing::Target;
use crate::routing::{Router, Silence, SilenceState, Subject, to_timestamp};
use crate::sinks::Sink;
use crate::store::{
    Enqueued, GROUP_SCHEMA, GroupAdded, GroupHeader, HELD_SCHEMA, Held, REMINDER_SCHEMA, Reminder,
    Store, StoreError, Suppressed, mute_holder, muted_by,
};

/// How old a handling may be to be named in the resolution it explains: older, the
/// resolution is not taken to come from it.
pub const HANDLED_WITHIN_MS: i64 = 7 * 24 * 3600 * 1000;

/// A configured sink and the handle that wakes its worker.
#[derive(Clone)]
pub struct SinkHandle {
    /// The sink.
    pub sink: Arc<Sink>,
    /// Signalled after a poll or a group close put something in its outbox.
    pub wake: Arc<Notify>,
}

/// What dispatching a batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dispatched {
    /// Outbox entries written.
    pub enqueued: usize,
    /// Events a guard recognised (already enqueued or grouped: a re-poll after a crash).
    pub duplicates: usize,
    /// Events added to a group.
    pub grouped: usize,
    /// Events kept from a sink by a silence.
    pub silenced: usize,
    /// Events kept from a sink by a mute window.
    pub muted: usize,
    /// Events no route sent anywhere (`default = "drop"`, or routes without sinks).
    pub dropped: usize,
    /// Targets skipped by the sink's own filter (`domains`, `events`, `min_severity`).
    pub filtered: usize,
    /// Reminders started (a route with `repeat_interval` delivered a new finding).
    pub reminders_started: usize,
    /// Reminders sent (still open after `repeat_interval`).
    pub reminded: usize,
    /// Events an ended silence held that went on to their sink (sent, grouped, or held by
    /// another silence in force).
    pub released: usize,
    /// Events an ended silence held that were let go: their finding closed meanwhile, or their
    /// sink or route no longer takes them.
    pub let_go: usize,
    /// Events an ended hold folded into another of the same finding: after a silence, one
    /// message per finding still open (its `new` if that was held, else its latest
    /// `recurring`), not one per recurrence.
    pub folded: usize,
    /// Targets a takeover skipped: the old leader had settled the event there.
    pub settled_before: usize,
    /// Sinks to wake once the batch is durable.
    pub wake: BTreeSet<String>,
    /// The grouper should look at the groups again.
    pub wake_grouper: bool,
}

/// Silences as the daemon holds them: every stored silence, kept in memory, written through
/// to the store. Shared by dispatch and the admin API.
pub struct Silences {
    store: Store,
    list: RwLock<Vec<Silence>>,
    /// Signalled when a silence is ended early, so the owner of releases (the grouper) sends
    /// what it held at once.
    ended: Arc<Notify>,
}

impl Silences {
    /// Loads every stored silence (skipping, with a warning, any that no longer validates).
    pub fn load(store: Store) -> Result<Silences, StoreError> {
        let stored: Vec<Silence> = store.silences()?;
        let list = stored
            .into_iter()
            .filter(|s| match s.validate() {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(silence = %s.id, error = %e, "Ignoring a stored silence that is not valid.");
                    false
                }
            })
            .collect();
        Ok(Silences {
            store,
            list: RwLock::new(list),
            ended: Arc::new(Notify::new()),
        })
    }

    /// What [`Silences::expire`] signals: the grouper waits on it (and dispatch signals it
    /// too, when a group gains a member).
    pub fn ended(&self) -> Arc<Notify> {
        self.ended.clone()
    }

    /// When the next silence in force (or pending) ends: the grouper looks then.
    pub fn next_end(&self, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
        self.list
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|s| s.state(now) != SilenceState::Expired)
            .map(|s| s.ends_at)
            .min()
    }

    /// Whether there is no silence at all (expired ones count until pruned).
    pub fn is_empty(&self) -> bool {
        self.list
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// Every silence, newest first.
    pub fn list(&self) -> Vec<Silence> {
        let mut all = self
            .list
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        all.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        all
    }

    /// The id of the first active silence that matches `subject` at `now`.
    pub fn silencing(&self, subject: &Subject, now: jiff::Timestamp) -> Option<String> {
        self.list
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|s| s.silences(subject, now))
            .map(|s| s.id.clone())
    }

    /// Stores a new (validated) silence, durably.
    pub async fn add(&self, silence: Silence) -> Result<(), StoreError> {
        self.store.put_silence(&silence.id, &silence)?;
        self.store.flush().await?;
        let mut list = self.list.write().unwrap_or_else(PoisonError::into_inner);
        list.retain(|s| s.id != silence.id);
        list.push(silence);
        Ok(())
    }

    /// Ends silence `id` at `now` (kept, as expired, for the record). `None` when there is no
    /// such silence; the silence as it now is otherwise.
    pub async fn expire(
        &self,
        id: &str,
        now: jiff::Timestamp,
    ) -> Result<Option<Silence>, StoreError> {
        let Some(mut s) = self.list().into_iter().find(|s| s.id == id) else {
            return Ok(None);
        };
        if s.state(now) != SilenceState::Expired {
            // Over from now on; a silence that had not started yet never takes effect.
            s.starts_at = s.starts_at.min(now - jiff::SignedDuration::from_millis(1));
            s.ends_at = now;
            self.store.put_silence(&s.id, &s)?;
            self.store.flush().await?;
            let mut list = self.list.write().unwrap_or_else(PoisonError::into_inner);
            if let Some(slot) = list.iter_mut().find(|x| x.id == id) {
                *slot = s.clone();
            }
            drop(list);
            self.ended.notify_one();
        }
        Ok(Some(s))
    }

    /// Deletes silences that ended more than `retention` before `now`; returns how many.
    pub fn prune(&self, now: jiff::Timestamp, retention: std::time::Duration) -> usize {
        let Ok(retention) = jiff::SignedDuration::try_from(retention) else {
            return 0;
        };
        // A silence still holding events (the daemon was down when it ended) stays until they
        // are released.
        let old: Vec<String> = self
            .list()
            .into_iter()
            .filter(|s| s.ends_at + retention < now)
            .filter(|s| self.store.held_count(&s.id).is_ok_and(|n| n == 0))
            .map(|s| s.id)
            .collect();
        let mut removed = 0;
        for id in old {
            match self.store.remove_silence(&id) {
                Ok(_) => {
                    removed += 1;
                    self.list
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .retain(|s| s.id != id);
                }
                Err(e) => {
                    tracing::warn!(silence = %id, error = %e, "Could not prune an old silence.")
                }
            }
        }
        removed
    }
}

/// Applies routing decisions to the store.
pub struct Dispatcher {
    /// The routes and sinks in force; replaced whole by [`Dispatcher::reroute`], read once per
    /// event or reminder pass.
    routes: RwLock<Arc<Routes>>,
    silences: Arc<Silences>,
    store: Store,
    grouper: Arc<Notify>,
    /// With replicas, the leadership term in force ([`crate::ha::Term`]): its ledger (what
    /// is pending where, and after a takeover what the old leader already settled) and gate.
    term: RwLock<Option<Term>>,
}

/// What a configuration routes by: the router and the sinks it names.
struct Routes {
    router: Router,
    /// The router's targets when they are the same for every event (no routing configured).
    fixed: Option<Vec<Target>>,
    sinks: BTreeMap<String, SinkHandle>,
}

impl Routes {
    fn new(router: Router, sinks: BTreeMap<String, SinkHandle>) -> Arc<Routes> {
        Arc::new(Routes {
            fixed: router.fixed_targets(),
            router,
            sinks,
        })
    }
}

/// A group's id: its route, sink and group key.
pub fn group_id(route: &str, sink: &str, key: &BTreeMap<String, String>) -> String {
    let mut parts: Vec<&str> = vec!["group", route, sink];
    for (k, v) in key {
        parts.push(k);
        parts.push(v);
    }
    event_id(&parts)
}

impl Dispatcher {
    /// A dispatcher for `router`'s decisions over `sinks` (by name).
    pub fn new(
        router: Router,
        sinks: BTreeMap<String, SinkHandle>,
        silences: Arc<Silences>,
        store: Store,
        grouper: Arc<Notify>,
    ) -> Dispatcher {
        Dispatcher {
            routes: RwLock::new(Routes::new(router, sinks)),
            silences,
            store,
            grouper,
            term: RwLock::new(None),
        }
    }

    /// From now on, works for `term` (`None`: no term — standing by, or no replicas): tells
    /// its ledger what is pending where, and asks it, after a takeover, what the old leader
    /// already settled (those targets are skipped; the rest of the first listing's events
    /// are flagged as possible repeats where the old leader could have sent them).
    pub fn set_term(&self, term: Option<Term>) {
        *self.term.write().unwrap_or_else(PoisonError::into_inner) = term;
    }

    /// The term in force.
    pub fn term(&self) -> Option<Term> {
        self.term
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn handoff(&self) -> Option<Arc<Handoff>> {
        self.term
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|t| t.handoff.clone())
    }

    /// Tells the handoff `event` is pending at `sink`.
    fn pending(&self, sink: &str, event: &Event) {
        if let Some(h) = self.handoff() {
            h.pending(sink, &stream_of(event), &event.id, event.activity_ms());
        }
    }

    /// Tells the handoff `event` was let go at `sink` (it will never be sent there).
    fn settled(&self, sink: &str, event: &Event, now_ms: i64) {
        if let Some(h) = self.handoff() {
            h.settled(sink, &stream_of(event), &event.id, now_ms);
        }
    }

    /// The silences it consults.
    pub fn silences(&self) -> &Silences {
        &self.silences
    }

    /// From now on, routes by `router` to `sinks` (a configuration reload). A dispatch in
    /// progress finishes with the routes it started with.
    pub fn reroute(&self, router: Router, sinks: BTreeMap<String, SinkHandle>) {
        *self.routes.write().unwrap_or_else(PoisonError::into_inner) = Routes::new(router, sinks);
    }

    /// The routes in force now.
    fn routes(&self) -> Arc<Routes> {
        self.routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Who handled `f` through sasrelay, when the audit log's latest successful action on it
    /// explains `resolution` (an ignore an `ignored`, a whitelist a `false_positive`, "handled"
    /// a `handled`, a verify or a fix a `fixed`; any of those three a `gone`) and is at most
    /// [`HANDLED_WITHIN_MS`] old.
    fn handled_by(
        &self,
        source: &str,
        f: &crate::finding::Finding,
        resolution: Option<crate::finding::Resolution>,
        now_ms: i64,
    ) -> Option<crate::event::HandledBy> {
        use crate::finding::Resolution;
        let entry = match self.store.last_handled(source, &f.id) {
            Ok(entry) => entry?,
            Err(e) => {
                tracing::warn!(finding = %f.id, error = %e, "Cannot read the handling audit log; the resolution goes out without who handled it.");
                return None;
            }
        };
        let explains = matches!(
            (entry.action.as_str(), resolution),
            ("ignore", Some(Resolution::Ignored))
                | ("whitelist", Some(Resolution::FalsePositive))
                | ("handled", Some(Resolution::Handled))
                | ("verify" | "fix" | "recheck", Some(Resolution::Fixed))
                // A snapshot finding that left its listing after one was handled (a baseline
                // check ignored leaves the failing list; no lookup says why).
                | ("ignore" | "verify" | "fix" | "recheck", Some(Resolution::Gone))
        );
        (explains && now_ms.saturating_sub(entry.at_ms) <= HANDLED_WITHIN_MS).then(|| {
            crate::event::HandledBy {
                who: entry.who,
                via: entry.via,
                action: entry.action,
                at: time::OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(entry.at_ms) * 1_000_000,
                )
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            }
        })
    }

    /// Routes `event` and writes what the decision says. Call [`Dispatcher::wake`] with the
    /// result once the batch is flushed. `generation` is the finding's lifecycle generation
    /// (`None` for summaries); a `new` or `recurring` event delivered by a route with a
    /// `repeat_interval` starts that route's reminder for the finding.
    pub fn dispatch(
        &self,
        mut event: Event,
        generation: Option<u64>,
        now: OffsetDateTime,
        out: &mut Dispatched,
    ) -> Result<(), StoreError> {
        let now_ms = unix_ms(now);
        let ts = to_timestamp(now);
        if event.kind == EventKind::Resolved
            && event.handled_by.is_none()
            && let Some(f) = &event.finding
        {
            event.handled_by =
                self.handled_by(&event.source, f, event.resolution.or(f.resolution), now_ms);
        }
        // With replicas only: the handoff's name of the event's stream and its activity time.
        let handoff = self
            .handoff()
            .map(|h| (h, stream_of(&event), event.activity_ms()));
        if let Some((h, stream, at_ms)) = &handoff
            && h.possible_repeat(stream, *at_ms)
        {
            event.possible_repeat = true;
        }
        // The event moves into its outbox entry (no copy of the finding and its raw item);
        // every target reads it from there.
        let entry = OutboxEntry::new(Payload::from(event), now_ms);
        let [event] = entry.payload.events() else {
            return Ok(());
        };
        // Without routing rules and silences the targets do not depend on the event: skip
        // building its subject.
        let routes = self.routes();
        let decided;
        let (targets, silence) = match &routes.fixed {
            Some(fixed) if self.silences.is_empty() => (fixed.as_slice(), None),
            _ => {
                let subject = Subject::from_event(event);
                decided = routes.router.decide(&subject, ts);
                if decided.dropped {
                    out.dropped += 1;
                    tracing::debug!(event = %event.id, "No route sends this event anywhere; dropped.");
                    return Ok(());
                }
                (
                    decided.targets.as_slice(),
                    self.silences.silencing(&subject, ts),
                )
            }
        };
        for target in targets {
            let Some(handle) = routes.sinks.get(&target.sink) else {
                tracing::warn!(sink = %target.sink, route = %target.route, "A route names a sink that is not configured; skipped.");
                continue;
            };
            if !handle.sink.accepts(event) {
                out.filtered += 1;
                continue;
            }
            if handoff.as_ref().is_some_and(|(h, stream, at_ms)| {
                h.settled_before(&target.sink, stream, &event.id, *at_ms)
            }) {
                out.settled_before += 1;
                continue;
            }
            self.send(target, &entry, generation, silence.as_deref(), now_ms, out)?;
        }
        Ok(())
    }

    /// Sends `entry`'s event to `target` as routing decided: held back by `silence` (a line in
    /// the suppression log, and the event kept whole to send when the silence ends), kept back
    /// by the target's mute window (the line only), or delivered — which starts the route's
    /// reminder for a `new` or `recurring` event.
    fn send(
        &self,
        target: &Target,
        entry: &OutboxEntry,
        generation: Option<u64>,
        silence: Option<&str>,
        now_ms: i64,
        out: &mut Dispatched,
    ) -> Result<(), StoreError> {
        let [event] = entry.payload.events() else {
            return Ok(());
        };
        let suppressed_by = match (silence, &target.muted_by) {
            (Some(id), _) => Some(("silence", id.to_string())),
            (None, Some(window)) => Some(("mute", window.clone())),
            (None, None) => None,
        };
        if let Some((by, reason)) = suppressed_by {
            self.store.record_suppressed(&Suppressed {
                at_ms: now_ms,
                event_id: event.id.clone(),
                kind: event.kind.as_str().to_string(),
                fingerprint: event.finding.as_ref().map(|f| f.fingerprint.clone()),
                title: describe(event),
                sink: target.sink.clone(),
                route: target.route.clone(),
                by: by.to_string(),
                reason: reason.clone(),
            })?;
            let holder = if by == "silence" {
                reason
            } else {
                mute_holder(&reason)
            };
            let opening_held = match (&event.finding, generation) {
                (Some(f), Some(generation)) if event.kind == EventKind::Resolved => {
                    let new = finding_event_id(&f.fingerprint, EventKind::New, generation, "");
                    self.store.is_held(&holder, &target.sink, &new)?
                }
                _ => false,
            };
            self.pending(&target.sink, event);
            self.store.hold(&Held {
                v: HELD_SCHEMA,
                at_ms: now_ms,
                silence: holder,
                route: target.route.clone(),
                sink: target.sink.clone(),
                generation,
                event: event.clone(),
                opening_held,
            })?;
            if by == "silence" {
                out.silenced += 1;
            } else {
                out.muted += 1;
            }
            return Ok(());
        }
        self.deliver(target, entry, now_ms, out)?;
        if let (Some(every), Some(generation), Some(f)) =
            (target.repeat_interval, generation, &event.finding)
            && matches!(event.kind, EventKind::New | EventKind::Recurring)
        {
            let interval_ms = every.as_millis() as i64;
            self.store.put_reminder(&Reminder {
                v: REMINDER_SCHEMA,
                sink: target.sink.clone(),
                route: target.route.clone(),
                source: event.source.clone(),
                domain: event.domain,
                fingerprint: f.fingerprint.clone(),
                generation,
                interval_ms,
                due_at_ms: now_ms.saturating_add(interval_ms),
                sent: 0,
                event: event.clone(),
            })?;
            out.reminders_started += 1;
            // The grouper sends reminders: it must know of this one's due time now, not at
            // its next look (up to half a minute away).
            out.wake_grouper = true;
        }
        Ok(())
    }

    /// Sends what ended silences and mute windows held. For every holder over at `now` (a
    /// silence expired, ended early with `silence expire`, or no longer stored; a mute window
    /// no longer in force for the route that held), each event it held goes to its sink as
    /// routing decides now — through the same route where it still sends there (its grouping
    /// and reminder included), held again by a silence or window in force — if its finding is
    /// still open in the same lifecycle (an event without a finding always goes). An event
    /// whose finding closed meanwhile is let go (it stays in the suppression log), except a
    /// `resolved` for a sink with `send_resolved_after_silence` that had heard of the finding.
    /// One message per finding: its held `new`, else its latest held `recurring`
    /// ([`Dispatched::folded`] counts the rest).
    /// Crash-safe: the event is enqueued first and its `held` key removed after, so a crash
    /// in between enqueues it again and the outbox guard drops the copy. Call
    /// [`Dispatcher::wake`] with the result once the store is flushed.
    pub fn release_ended_holds(&self, now: OffsetDateTime) -> Result<Dispatched, StoreError> {
        let now_ms = unix_ms(now);
        let ts = to_timestamp(now);
        let mut out = Dispatched::default();
        let routes = self.routes();
        let silences = self.silences.list();
        for holder in self.store.holders()? {
            let in_force = match muted_by(&holder) {
                Some(window) => self.window_in_force(&routes, &holder, window, ts)?,
                None => silences
                    .iter()
                    .any(|s| s.id == holder && s.state(ts) != SilenceState::Expired),
            };
            if in_force {
                continue;
            }
            // Fold first, then send: a crash in between finds only the ones to send left.
            for (sink, id, stream) in self.folded_by(&holder)? {
                self.store.unhold(&holder, &sink, &id)?;
                if let Some(h) = self.handoff() {
                    h.settled(&sink, &stream, &id, now_ms);
                }
                out.folded += 1;
            }
            loop {
                let batch = self.store.held_by(&holder, RELEASE_BATCH)?;
                if batch.is_empty() {
                    break;
                }
                for held in batch {
                    self.release(&routes, &held, now_ms, ts, &mut out)?;
                    self.store.release_held(&held)?;
                }
            }
        }
        Ok(out)
    }

    /// The events (sink, event id, stream) `holder` holds that fold into another of the same finding
    /// lifecycle from the same sink: of its `new` and `recurring` events, only the `new` if
    /// held, else the latest `recurring`, is sent at the end — one message per finding still
    /// open, not one per recurrence.
    fn folded_by(&self, holder: &str) -> Result<Vec<(String, String, String)>, StoreError> {
        let mut keep: HashMap<FindingSlot, Rank> = HashMap::new();
        let mut folded = Vec::new();
        self.store.each_held(holder, |held| {
            let Some(slot) = finding_slot(&held) else {
                return;
            };
            let stream = stream_of(&held.event);
            let rank = (
                held.event.kind == EventKind::New,
                held.event.observed_at,
                held.event.id,
            );
            let loser = match keep.get_mut(&slot) {
                Some(best) if *best >= rank => rank.2,
                Some(best) => std::mem::replace(best, rank).2,
                None => {
                    keep.insert(slot, rank);
                    return;
                }
            };
            folded.push((held.sink, loser, stream));
        })?;
        Ok(folded)
    }

    /// Whether mute window `window` (holder `holder`) still mutes what it held: routing its
    /// first held event now still mutes that route's target by the same window. Windows are
    /// a matter of time alone, so one event answers for all.
    fn window_in_force(
        &self,
        routes: &Routes,
        holder: &str,
        window: &str,
        ts: jiff::Timestamp,
    ) -> Result<bool, StoreError> {
        let Some(held) = self.store.held_by(holder, 1)?.into_iter().next() else {
            return Ok(false);
        };
        let decision = routes.router.decide(&Subject::from_event(&held.event), ts);
        Ok(decision.targets.iter().any(|t| {
            t.route == held.route && t.sink == held.sink && t.muted_by.as_deref() == Some(window)
        }))
    }

    /// When the grouper should look at mute windows again: the next whole minute (windows
    /// start and end on minutes) while any window holds events; `None` otherwise.
    pub fn next_window_look(&self, now_ms: i64) -> Option<i64> {
        let holders = self.store.holders().ok()?;
        holders
            .iter()
            .any(|h| muted_by(h).is_some())
            .then(|| (now_ms.div_euclid(MINUTE_MS) + 1) * MINUTE_MS + WINDOW_LOOK_MARGIN_MS)
    }

    /// One held event after its silence: on to its sink, or let go.
    fn release(
        &self,
        routes: &Routes,
        held: &Held,
        now_ms: i64,
        ts: jiff::Timestamp,
        out: &mut Dispatched,
    ) -> Result<(), StoreError> {
        let event = &held.event;
        let open = match (&event.finding, held.generation) {
            (Some(f), Some(generation)) => self
                .store
                .get_record(&event.source, event.domain, &f.fingerprint)?
                .is_some_and(|r| r.status == RecordStatus::Active && r.generation == generation),
            (Some(_), None) => false,
            (None, _) => true,
        };
        let sink = routes.sinks.get(&held.sink);
        // A closed finding's `resolved`, to a sink that heard of it and asks for it.
        let open = open
            || (event.kind == EventKind::Resolved
                && !held.opening_held
                && sink.is_some_and(|h| h.sink.filters().resolved_after_silence));
        let subject = Subject::from_event(event);
        let decision = routes.router.decide(&subject, ts);
        let target = decision
            .targets
            .iter()
            .find(|t| t.route == held.route && t.sink == held.sink)
            .or_else(|| decision.targets.iter().find(|t| t.sink == held.sink));
        let accepts = sink.is_some_and(|h| h.sink.accepts(event));
        let (Some(target), true, true) = (target, open, accepts) else {
            tracing::debug!(event = %event.id, sink = %held.sink, silence = %held.silence, open, "A held event is let go after its silence.");
            self.settled(&held.sink, event, now_ms);
            out.let_go += 1;
            return Ok(());
        };
        let silence = self.silences.silencing(&subject, ts);
        let entry = OutboxEntry::new(Payload::from(event.clone()), now_ms);
        self.send(
            target,
            &entry,
            held.generation,
            silence.as_deref(),
            now_ms,
            out,
        )?;
        out.released += 1;
        Ok(())
    }

    /// Puts `entry`'s event on its way to `target`: into the target's group, or into the
    /// sink's outbox (one entry per event, shared by its ungrouped targets).
    fn deliver(
        &self,
        target: &Target,
        entry: &OutboxEntry,
        now_ms: i64,
        out: &mut Dispatched,
    ) -> Result<(), StoreError> {
        let [event] = entry.payload.events() else {
            return Ok(());
        };
        match &target.grouping {
            Some(g) => {
                let gid = group_id(&target.route, &target.sink, &g.group_key);
                let header = GroupHeader {
                    v: GROUP_SCHEMA,
                    route: target.route.clone(),
                    sink: target.sink.clone(),
                    labels: g.group_key.clone(),
                    opened_at_ms: now_ms,
                    flush_at_ms: now_ms.saturating_add(g.group_wait.as_millis() as i64),
                    group_interval_ms: g.group_interval.as_millis() as i64,
                    max_size: g.max_group_size.max(1),
                    flushes: 0,
                    closing: None,
                };
                match self.store.group_add(&gid, &header, event, now_ms)? {
                    GroupAdded::Added => {
                        self.pending(&target.sink, event);
                        out.grouped += 1;
                        out.wake_grouper = true;
                    }
                    GroupAdded::Duplicate => out.duplicates += 1,
                }
            }
            None => match self.store.enqueue(&target.sink, entry)? {
                Enqueued::Inserted(_) => {
                    self.pending(&target.sink, event);
                    out.enqueued += 1;
                    out.wake.insert(target.sink.clone());
                }
                Enqueued::Duplicate(_) => out.duplicates += 1,
            },
        }
        Ok(())
    }

    /// Sends the reminders due at `now` whose finding is still open in the same lifecycle:
    /// through the route and sink that started them, grouped as that route groups today;
    /// kept back (and counted) while a silence or mute window holds. Reminders whose finding
    /// closed, or whose route no longer sends to that sink, are removed.
    pub fn remind_due(&self, now: OffsetDateTime) -> Result<Dispatched, StoreError> {
        let now_ms = unix_ms(now);
        let ts = to_timestamp(now);
        let mut out = Dispatched::default();
        let routes = self.routes();
        for (key, r) in self.store.due_reminders(now_ms, 1_000)? {
            let open = self
                .store
                .get_record(&r.source, r.domain, &r.fingerprint)?
                .is_some_and(|rec| {
                    rec.status == RecordStatus::Active && rec.generation == r.generation
                });
            let subject = Subject::from_event(&r.event);
            let decision = routes.router.decide(&subject, ts);
            let target = decision
                .targets
                .iter()
                .find(|t| t.route == r.route && t.sink == r.sink && t.repeat_interval.is_some());
            let (Some(target), true) = (target, open) else {
                self.store.remove_reminder(&key)?;
                continue;
            };
            let held = self.silences.silencing(&subject, ts).is_some() || target.muted_by.is_some();
            let mut next = r.clone();
            next.interval_ms = target
                .repeat_interval
                .map_or(r.interval_ms, |d| d.as_millis() as i64);
            next.due_at_ms = now_ms.saturating_add(next.interval_ms.max(1_000));
            if !held {
                next.sent = r.sent + 1;
                let event =
                    Event::reminder(&r.event, r.generation, &r.route, &r.sink, next.sent, now);
                let entry = OutboxEntry::new(Payload::from(event), now_ms);
                self.deliver(target, &entry, now_ms, &mut out)?;
                out.reminded += 1;
            }
            // After the send: a crash in between re-sends the same id, which the guard drops.
            self.store.advance_reminder(&key, &r, &next)?;
        }
        Ok(out)
    }

    /// Wakes the workers and the grouper `out` names. Call after the batch is durable.
    pub fn wake(&self, out: &Dispatched) {
        let routes = self.routes();
        for name in &out.wake {
            if let Some(h) = routes.sinks.get(name) {
                h.wake.notify_one();
            }
        }
        if out.wake_grouper {
            self.grouper.notify_one();
        }
    }
}

/// A sink and a finding's lifecycle (source, domain, fingerprint, generation).
type FindingSlot = (String, String, &'static str, String, u64);

/// How a held opening event ranks for sending: a `new` first, then the latest, then the id
/// (so the choice is the same on every read).
type Rank = (bool, OffsetDateTime, String);

/// The slot of a held `new` or `recurring` event; `None` for any other (each sent on its own).
fn finding_slot(held: &Held) -> Option<FindingSlot> {
    let e = &held.event;
    let (Some(f), Some(generation)) = (&e.finding, held.generation) else {
        return None;
    };
    matches!(e.kind, EventKind::New | EventKind::Recurring).then(|| {
        (
            held.sink.clone(),
            e.source.clone(),
            e.domain.as_str(),
            f.fingerprint.clone(),
            generation,
        )
    })
}

/// Held events released per store read.
const RELEASE_BATCH: usize = 500;

const MINUTE_MS: i64 = 60_000;

/// After the minute a window may have ended on, so that the look sees it ended.
const WINDOW_LOOK_MARGIN_MS: i64 = 250;

/// One line about an event for the suppression log.
fn describe(event: &Event) -> String {
    match (&event.finding, &event.summary) {
        (Some(f), _) => f.title.clone(),
        (None, Some(s)) => s.message.clone(),
        (None, None) => event.id.clone(),
    }
}

/// The handoff's stream of `event`: its source and domain.
pub fn stream_of(event: &Event) -> String {
    stream_key(&event.source, event.domain.as_str())
}
