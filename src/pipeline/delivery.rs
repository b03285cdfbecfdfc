//! Delivery: one worker per sink drains that sink's outbox.
//!
//! The worker owns policy; the sink makes one attempt. Each entry is removed only after the
//! sink confirmed it ([`Outcome::Delivered`]). A retryable failure reschedules the entry with
//! jittered exponential backoff (never sooner than the sink's `Retry-After`) and pauses the
//! whole sink, so a sink that is down is probed, not flooded. A permanent failure, or an entry
//! older than `max_age` (or past `max_attempts`), goes to the dead letter with the reason and
//! the last response.
//!
//! Up to the sink's `concurrency` attempts are in flight at once, each in a task of its own.
//! They start in outbox order, but an entry about a finding that an attempt in flight carries
//! (or that an earlier waiting entry carries) waits for it ([`Payload::order_keys`]; the store
//! passes over an entry while an earlier one in backoff holds a key of it): events about one
//! finding reach a sink in the order they were enqueued — a `resolved` never overtakes its
//! `new` — while events about different findings may arrive in any order.
//!
//! Acks are made durable together (group commit): one flush covers the acks of up to
//! [`GROUP_MAX`] deliveries, made once the oldest of them is [`GROUP_WINDOW`] old, and before
//! the worker waits with nothing in flight; a reschedule or a dead letter is flushed at once
//! (with any acks before it). sled keeps unflushed writes in memory (it flushes on its own
//! every 500 ms), so a `kill -9` repeats at most the attempts in flight and the acks not yet
//! flushed: at most `concurrency + GROUP_MAX` messages per sink, each with its original
//! idempotency key. A flush per ack cost a disk sync and a hand-off to sled's threads per
//! delivery, most of a delivery's CPU against a fast receiver.
//!
//! [`Worker`] is a [`Task`]: each step starts what may start and lands one attempt, or reads
//! the due entries, or waits for the next one (woken by an enqueue unless the sink is paused).
//! The runner looks for shutdown between steps and then calls [`Task::stop`], which lands
//! every attempt in flight and starts none (the daemon bounds that with its grace period). The
//! worker's own schedule (per-entry backoff, the sink's pause, `Retry-After`) lives in the
//! outbox and in the worker, not in the runner.
//!
//! ## Rate limits
//!
//! A chat or mail sink takes a permit from its rate limiter before it sends; without one it
//! sends nothing and answers [`Outcome::Throttled`]. That is not an attempt: the worker waits
//! for the permit ([`Verdict::Wait`]) and the entry keeps its attempt count and schedule.
//!
//! ## Backlog folding
//!
//! A rate-limited sink can send only so much: DingTalk 20 messages a minute per robot. When a
//! sink that folds ([`Sink::fold`]: DingTalk, Feishu, WeCom, Slack, email; never webhooks or
//! PagerDuty) has more than `fold_after` single events due, the worker folds them, in outbox
//! order, into digests of at most `fold_max_members` (route `backlog`, [`Digest::new`]), so
//! every finding is still
//! delivered, within the budget. [`plan_fold`] decides (pure). Entries that already failed an
//! attempt are not folded: a message the platform refuses must not take others down with it.
//! Nothing is folded while an attempt is in flight, so no entry is both sent and folded.
//!
//! Folding uses single-key writes only and is crash-safe: the digest is enqueued first —
//! guarded by its id, derived from the member ids — and flushed, then the members are acked.
//! After a crash between the two steps the members are still due and the digest is in the
//! outbox: before folding, the worker acks every due single event that a due `backlog` digest
//! already carries ([`already_folded`]), and folding the same members again yields the same
//! digest id, which the enqueue guard turns into "already there, just ack".

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::backoff::Backoff;
use crate::clock::unix_ms;
use crate::config::DeliverySettings;
use crate::event::{DeadLetter, Digest, OutboxEntry, Payload};
use crate::ha::Term;
use crate::pipeline::dispatch::stream_of;
use crate::pipeline::metrics::{DeliveryOutcome, Metrics};
use crate::sinks::chat::Fold;
use crate::sinks::{Outcome, Sink};
use crate::store::{Enqueued, Store, StoreError};
use crate::task::{Label, Next, Task, TaskError};

/// Entries read from the outbox per round.
const BATCH: usize = 32;
/// The most acks one flush covers: with the delivery in flight, the most a crash repeats.
pub const GROUP_MAX: usize = 32;
/// How old the oldest unflushed ack may get before the next attempt waits for its flush.
pub const GROUP_WINDOW: Duration = Duration::from_millis(5);
/// Longest idle wait when nothing is scheduled (a safety net; wake-ups normally come first).
const IDLE: Duration = Duration::from_secs(60);
/// Pause after the outbox could not be read or updated.
const STORE_PAUSE_MS: i64 = 5_000;

/// How often a worker held back by its term (a stale checkpoint) looks again.
const HELD_BACK: Duration = Duration::from_millis(50);

/// How long a worker whose leadership term ended waits before it looks again (it is being
/// stopped; the pause only keeps it from starting anything meanwhile).
const CUT_OFF_PAUSE: Duration = Duration::from_secs(1);

/// The longest wait this worker ever sets (a backoff step — `retry_max_delay` is at most this
/// — a `Retry-After`, a rate limit). An entry due, or a pause ending, later than this from now
/// was scheduled before the wall clock stepped back.
pub const MAX_WAIT: Duration = crate::config::MAX_RETRY_DELAY;
/// Due entries looked at when deciding whether to fold a backlog.
const FOLD_SCAN: usize = 2048;
/// Route name of a folded backlog digest.
pub const BACKLOG_ROUTE: &str = "backlog";

/// What to do with an entry after an attempt. Pure, so the policy is table-tested.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Remove it: delivered.
    Ack,
    /// Try again at this time (unix ms), recording the reason.
    Retry {
        /// Next attempt (unix ms).
        at_ms: i64,
        /// Why the attempt failed.
        reason: String,
    },
    /// Nothing was attempted (the sink's rate limit had no permit): wait until this time
    /// (unix ms), then try the same entry again. The entry is not touched.
    Wait {
        /// When to look again (unix ms).
        until_ms: i64,
    },
    /// Give up: dead letter.
    Dead {
        /// Why.
        reason: String,
        /// The sink's last response.
        response: Option<String>,
    },
}

/// Decides the fate of `entry` after `outcome`, with `attempts` made so far (this one
/// included). `jitter` is uniform in `[0, 1)`.
pub fn decide(
    policy: &DeliverySettings,
    entry: &OutboxEntry,
    attempts: u32,
    outcome: &Outcome,
    now_ms: i64,
    jitter: f64,
) -> Verdict {
    match outcome {
        Outcome::Delivered { .. } => Verdict::Ack,
        Outcome::Throttled { after } => Verdict::Wait {
            until_ms: now_ms + (*after).min(MAX_WAIT).as_millis() as i64,
        },
        Outcome::Permanent { reason, response } => Verdict::Dead {
            reason: reason.clone(),
            response: response.clone(),
        },
        Outcome::Retry { after, reason } => {
            let age = Duration::from_millis((now_ms - entry.enqueued_at_ms).max(0) as u64);
            if policy.max_attempts > 0 && attempts >= policy.max_attempts {
                return Verdict::Dead {
                    reason: format!("gave up after {attempts} attempts; last: {reason}"),
                    response: None,
                };
            }
            if age >= policy.max_age {
                return Verdict::Dead {
                    reason: format!(
                        "gave up after {}s undelivered (max_age); last: {reason}",
                        age.as_secs()
                    ),
                    response: None,
                };
            }
            let curve = Backoff::saturating(policy.retry_initial_delay, policy.retry_max_delay);
            let wait = curve.delay_honouring(attempts, jitter, *after, MAX_WAIT);
            Verdict::Retry {
                at_ms: now_ms + wait.as_millis() as i64,
                reason: reason.clone(),
            }
        }
    }
}

/// Which due entries to fold, as groups of outbox seqs, each group one digest. `due` is the
/// due part of the outbox in order: `(seq, is a single event never attempted)`. Folds only
/// when more than `fold.after` entries qualify; groups hold at most `fold.max_members` and at
/// least two. Pure.
pub fn plan_fold(due: &[(u64, bool)], fold: Fold) -> Vec<Vec<u64>> {
    let singles: Vec<u64> = due
        .iter()
        .filter(|(_, s)| *s)
        .map(|(seq, _)| *seq)
        .collect();
    if singles.len() <= fold.after || fold.max_members < 2 {
        return Vec::new();
    }
    singles
        .chunks(fold.max_members)
        .filter(|c| c.len() >= 2)
        .map(<[u64]>::to_vec)
        .collect()
}

/// Seqs of due single events that a due `backlog` digest already carries: the trace of a
/// fold interrupted between its enqueue and its acks. Pure.
pub fn already_folded(due: &[(u64, OutboxEntry)]) -> Vec<u64> {
    let carried: HashSet<&str> = due
        .iter()
        .filter_map(|(_, e)| match &e.payload {
            Payload::Digest(d) if d.route == BACKLOG_ROUTE => Some(d),
            _ => None,
        })
        .flat_map(|d| d.events.iter().map(|m| m.id.as_str()))
        .collect();
    due.iter()
        .filter(
            |(_, e)| matches!(&e.payload, Payload::Event(ev) if carried.contains(ev.id.as_str())),
        )
        .map(|(seq, _)| *seq)
        .collect()
}

/// What one fold pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoldReport {
    /// Digests enqueued (new ones).
    pub digests: usize,
    /// Digests that were already there (a fold interrupted by a crash).
    pub existing: usize,
    /// Single events acked because a digest carries them.
    pub folded: usize,
}

/// Folds `sink`'s due backlog (see the module doc): acks what an earlier, interrupted fold
/// already carries, then enqueues each planned digest (flushed) before acking its members.
pub async fn fold_backlog(
    store: &Store,
    sink: &str,
    fold: Fold,
    now_ms: i64,
) -> Result<FoldReport, StoreError> {
    let mut report = FoldReport::default();
    let due = store.due(sink, now_ms, FOLD_SCAN)?;
    let stale = already_folded(&due);
    for seq in &stale {
        store.ack(sink, *seq)?;
        report.folded += 1;
    }
    if !stale.is_empty() {
        store.flush().await?;
    }
    let stale: HashSet<u64> = stale.into_iter().collect();
    let view: Vec<(u64, bool)> = due
        .iter()
        .filter(|(seq, _)| !stale.contains(seq))
        .map(|(seq, e)| {
            (
                *seq,
                matches!(e.payload, Payload::Event(_)) && e.attempts == 0,
            )
        })
        .collect();
    let plan = plan_fold(&view, fold);
    if plan.is_empty() {
        return Ok(report);
    }
    let by_seq: BTreeMap<u64, &OutboxEntry> = due.iter().map(|(s, e)| (*s, e)).collect();
    let now = time::OffsetDateTime::from_unix_timestamp_nanos(now_ms as i128 * 1_000_000)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    for group in plan {
        let members: Vec<&OutboxEntry> = group
            .iter()
            .filter_map(|s| by_seq.get(s).copied())
            .collect();
        let events = members
            .iter()
            .filter_map(|e| match &e.payload {
                Payload::Event(ev) => Some((**ev).clone()),
                Payload::Digest(_) | Payload::Health(_) => None,
            })
            .collect();
        let digest = Digest::new(BACKLOG_ROUTE, BTreeMap::new(), events, now);
        let mut entry = OutboxEntry::new(Payload::Digest(digest), now_ms);
        // The digest is as old as its oldest member, so `max_age` still bounds every finding.
        entry.enqueued_at_ms = members
            .iter()
            .map(|e| e.enqueued_at_ms)
            .min()
            .unwrap_or(now_ms);
        match store.enqueue(sink, &entry)? {
            Enqueued::Inserted(_) => report.digests += 1,
            Enqueued::Duplicate(_) => report.existing += 1,
        }
        // Durable before the members go: a crash now leaves both, never neither.
        store.flush().await?;
        for seq in &group {
            store.ack(sink, *seq)?;
            report.folded += 1;
        }
        store.flush().await?;
    }
    Ok(report)
}

/// One attempt, back from its task.
struct Landed {
    seq: u64,
    entry: OutboxEntry,
    attempts: u32,
    outcome: Outcome,
}

/// What the worker keeps about an attempt in flight, by its task.
struct Flight {
    seq: u64,
    keys: Vec<String>,
}

/// The worker of one sink: a [`Task`] whose every step starts what may start (up to the sink's
/// `concurrency`, in outbox order, one finding at a time) and lands one attempt, or reads the
/// next due entries, or waits for them.
pub struct Worker {
    sink: Arc<Sink>,
    store: Store,
    policy: DeliverySettings,
    /// Signalled by dispatch, the grouper and the admin API's replay after they put an entry
    /// into this sink's outbox.
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    /// Nothing is started before this time (unix ms): a failed attempt's backoff, a rate
    /// limit's wait, or the pause after a store failure. A wake-up does not end it.
    paused_until_ms: i64,
    /// Due entries read in one go and not yet started. Dropped when the sink fails, so the
    /// next read after the pause finds them again, in order.
    batch: VecDeque<(u64, OutboxEntry, Vec<String>)>,
    /// Attempts in flight, each a task of its own, so they progress while the worker flushes.
    flights: JoinSet<Landed>,
    /// The seqs and order keys of those attempts, by task.
    flying: HashMap<tokio::task::Id, Flight>,
    /// Their seqs, which a read of the outbox passes over, and their order keys, held.
    seqs: HashSet<u64>,
    held: HashMap<String, usize>,
    /// Whether the first step has run (it reports what the last run left pending).
    resumed: bool,
    /// Acks not yet flushed, and when the oldest of them was made.
    unflushed: usize,
    unflushed_since: Option<std::time::Instant>,
    /// With replicas, the leadership term it works for: its ledger is told what is settled;
    /// nothing starts unless the term still leads, and an attempt in flight is cut off at the
    /// term's deadline (the entry stays; a successor sends it, flagged).
    term: Option<Term>,
}

impl Worker {
    /// A worker delivering `sink`'s outbox; `wake` is signalled by pollers after an enqueue.
    pub fn new(sink: Arc<Sink>, store: Store, policy: DeliverySettings, wake: Arc<Notify>) -> Self {
        Worker {
            sink,
            store,
            policy,
            wake,
            metrics: Arc::default(),
            paused_until_ms: 0,
            batch: VecDeque::new(),
            flights: JoinSet::new(),
            flying: HashMap::new(),
            seqs: HashSet::new(),
            held: HashMap::new(),
            resumed: false,
            unflushed: 0,
            unflushed_since: None,
            term: None,
        }
    }

    /// Works for a leadership term: tells its ledger what it settles and sends only while
    /// its gate is open.
    pub fn for_term(mut self, term: Option<Term>) -> Self {
        self.term = term;
        self
    }

    /// Tells the term's ledger that `payload`'s events are settled here.
    fn settle(&self, payload: &Payload, now_ms: i64) {
        if let Some(h) = self.term.as_ref().map(|t| &t.handoff) {
            for e in payload.events() {
                h.settled(self.sink.name(), &stream_of(e), &e.id, now_ms);
            }
        }
    }

    /// Counts this worker's attempts into `metrics` (the daemon's).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Reads the next due entries into the batch, passing over those in flight, folding a
    /// backlog first when the sink folds, has one and nothing is in flight (a fold must not
    /// take an entry that is being sent). False when the outbox could not be read again after
    /// a fold: look again at once.
    async fn refill(&mut self, now_ms: i64) -> bool {
        let sink = self.sink.clone();
        let name = sink.name();
        let due_by = self.clamp_to_clock(now_ms);
        let due = if now_ms < self.paused_until_ms {
            Vec::new()
        } else {
            match self.store.due_skipping(name, due_by, BATCH, &self.seqs) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(sink = %name, error = %e, "Cannot read the outbox; retrying in 5s.");
                    self.store.heal(&e).await;
                    self.pause_until(now_ms + STORE_PAUSE_MS);
                    Vec::new()
                }
            }
        };
        let due = match sink.fold() {
            Some(fold)
                if !due.is_empty()
                    && self.flights.is_empty()
                    && self.store.depth(name) > fold.after as u64 =>
            {
                match fold_backlog(&self.store, name, fold, now_ms).await {
                    Ok(r) if r.folded > 0 => {
                        tracing::info!(
                            sink = %name,
                            digests = r.digests,
                            existing = r.existing,
                            events = r.folded,
                            "Folded a backlog of single events into digests to stay within the rate limit."
                        );
                        match self.store.due_skipping(name, now_ms, BATCH, &self.seqs) {
                            Ok(d) => d,
                            Err(_) => return false,
                        }
                    }
                    Ok(_) => due,
                    Err(e) => {
                        tracing::error!(sink = %name, error = %e, "Cannot fold the backlog; delivering entries one by one.");
                        self.store.heal(&e).await;
                        due
                    }
                }
            }
            _ => due,
        };
        self.batch = due
            .into_iter()
            .map(|(seq, entry)| {
                let keys = entry.payload.order_keys();
                (seq, entry, keys)
            })
            .collect();
        true
    }

    /// Due times are wall-clock milliseconds. After the clock steps back, entries (and a store
    /// pause) would wait for the step on top of their delay; anything due later than
    /// [`MAX_WAIT`] from now can only come from before such a step, so it is taken as due now
    /// (one early retry at worst), with a warning. Returns the time to read due entries by.
    fn clamp_to_clock(&mut self, now_ms: i64) -> i64 {
        let horizon = now_ms.saturating_add(MAX_WAIT.as_millis() as i64);
        match self.store.next_due_at(self.sink.name()) {
            Some(at) if at > horizon => {
                tracing::warn!(
                    sink = %self.sink.name(),
                    ahead_s = (at - now_ms) / 1000,
                    "An entry is due later than any retry delay: the wall clock stepped back. Retrying the waiting entries now."
                );
                i64::MAX
            }
            _ => now_ms,
        }
    }

    /// The sink's pause, like a due time, is wall-clock milliseconds, and no pause is longer
    /// than [`MAX_WAIT`] (a `Retry-After` is capped by it, a backoff by `retry_max_delay`, a
    /// store pause is 5 s): one ending later than that from now was set before the wall clock
    /// stepped back, and would hold the whole sink for the step on top of it. It ends now
    /// (one early attempt at worst), with a warning.
    fn clamp_pause(&mut self, now_ms: i64) {
        let horizon = now_ms.saturating_add(MAX_WAIT.as_millis() as i64);
        if self.paused_until_ms > horizon {
            tracing::warn!(
                sink = %self.sink.name(),
                ahead_s = (self.paused_until_ms - now_ms) / 1000,
                "The sink's pause ends later than any retry delay: the wall clock stepped back. Ending the pause now."
            );
            self.paused_until_ms = now_ms;
        }
    }

    /// How to wait when nothing is in flight or due at `now_ms`: until the next entry is due or
    /// the pause ends (at most [`IDLE`]), or until woken when not paused.
    fn idle(&self, now_ms: i64) -> Next {
        let next = self
            .store
            .next_due_at(self.sink.name())
            .map(|at| at.max(self.paused_until_ms))
            .map(|at| Duration::from_millis((at - now_ms).max(0) as u64))
            .unwrap_or(IDLE)
            .min(IDLE);
        let pause = Duration::from_millis((self.paused_until_ms - now_ms).max(0) as u64);
        let wait = next.max(pause).max(Duration::from_millis(5));
        if pause.is_zero() {
            Next::WakeOr(self.wake.clone(), wait)
        } else {
            // A wake-up during a pause must not end the pause early.
            Next::After(wait)
        }
    }

    /// Starts attempts until the sink's `concurrency` are in flight, the sink is paused, or
    /// nothing due may start: the first entry in outbox order whose findings are not in flight
    /// (nor held back by an earlier entry waiting for them). When nothing in the batch may
    /// start, the outbox is read again (at most once a step), so entries waiting on one busy
    /// finding do not hold back the others behind them.
    async fn launch(&mut self, now_ms: i64) {
        let mut read = false;
        if self.term.as_ref().is_some_and(|t| !t.may_send()) {
            return;
        }
        while self.flights.len() < self.sink.concurrency() && now_ms >= self.paused_until_ms {
            match self.first_free() {
                Some(i) => {
                    if let Some((seq, entry, keys)) = self.batch.remove(i) {
                        self.start(seq, entry, keys);
                    }
                }
                None if read => return,
                None => {
                    read = true;
                    if !self.refill(now_ms).await {
                        return;
                    }
                }
            }
        }
    }

    /// The index in the batch of the first entry that may start now.
    fn first_free(&self) -> Option<usize> {
        let mut waiting: HashSet<String> = HashSet::new();
        for (i, (_, _, keys)) in self.batch.iter().enumerate() {
            if keys
                .iter()
                .all(|k| !self.held.contains_key(k) && !waiting.contains(k))
            {
                return Some(i);
            }
            waiting.extend(keys.iter().cloned());
        }
        None
    }

    /// Sends `entry` in a task of its own, holding its order keys until it lands.
    fn start(&mut self, seq: u64, entry: OutboxEntry, keys: Vec<String>) {
        for k in &keys {
            *self.held.entry(k.clone()).or_default() += 1;
        }
        let sink = self.sink.clone();
        let attempts = entry.attempts + 1;
        let deadline = self.term.as_ref().map(|t| t.gate.deadline());
        let mut entry = entry;
        if let Some(before) = self.term.as_ref().and_then(|t| t.leftovers_before_ms)
            && entry.enqueued_at_ms < before
        {
            entry.payload.flag_possible_repeat();
        }
        let task = self.flights.spawn(async move {
            let outcome = match deadline {
                None => sink.deliver(&entry.payload, attempts).await,
                Some(None) => Outcome::Throttled {
                    after: CUT_OFF_PAUSE,
                },
                Some(Some(at)) => {
                    match tokio::time::timeout_at(at, sink.deliver(&entry.payload, attempts)).await
                    {
                        Ok(outcome) => outcome,
                        Err(_) => {
                            tracing::warn!(sink = %sink.name(), event = %entry.payload.id(), "The leadership term ended during this delivery: cut off; the entry stays for whoever leads next.");
                            Outcome::Throttled {
                                after: CUT_OFF_PAUSE,
                            }
                        }
                    }
                }
            };
            Landed {
                seq,
                entry,
                attempts,
                outcome,
            }
        });
        self.seqs.insert(seq);
        self.flying.insert(task.id(), Flight { seq, keys });
    }

    /// Waits for the next attempt to land and applies it; when an ack waits for its group's
    /// flush, no longer than the rest of [`GROUP_WINDOW`].
    async fn land_next(&mut self) {
        let window = self
            .unflushed_since
            .map(|t| GROUP_WINDOW.saturating_sub(t.elapsed()));
        // With room for more and no pause, an enqueue starts its entry without waiting for an
        // attempt in flight to land (a slow receiver would otherwise hold new findings back).
        let room = self.flights.len() < self.sink.concurrency()
            && unix_ms(time::OffsetDateTime::now_utc()) >= self.paused_until_ms;
        let wake = self.wake.clone();
        let joined = tokio::select! {
            joined = self.flights.join_next_with_id() => joined,
            () = tokio::time::sleep(window.unwrap_or_default()), if window.is_some() => {
                self.flush_acks().await;
                return;
            }
            () = wake.notified(), if room => return,
        };
        let Some(joined) = joined else {
            return;
        };
        let id = match &joined {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        if let Some(flight) = self.flying.remove(&id) {
            self.seqs.remove(&flight.seq);
            for k in flight.keys {
                if let Some(n) = self.held.get_mut(&k) {
                    *n -= 1;
                    if *n == 0 {
                        self.held.remove(&k);
                    }
                }
            }
        }
        match joined {
            Ok((_, landed)) => self.apply(landed).await,
            Err(e) => {
                // A sink panicked on this entry: it stays in the outbox, unacked; the sink
                // pauses so a payload that always panics is not sent in a loop.
                tracing::error!(sink = %self.sink.name(), error = %e, "A delivery attempt panicked; the entry stays in the outbox. Pausing the sink for 5s.");
                self.pause_until(unix_ms(time::OffsetDateTime::now_utc()) + STORE_PAUSE_MS);
            }
        }
    }

    /// Applies an attempt's outcome; an ack joins the group the next flush covers, any other
    /// outcome is made durable at once.
    async fn apply(&mut self, landed: Landed) {
        let Landed {
            seq,
            entry,
            attempts,
            outcome,
        } = landed;
        let sink = self.sink.clone();
        let name = sink.name();
        let now_ms = unix_ms(time::OffsetDateTime::now_utc());
        let id = entry.payload.id().to_string();
        let verdict = decide(
            &self.policy,
            &entry,
            attempts,
            &outcome,
            now_ms,
            rand::random(),
        );
        let result = match verdict {
            Verdict::Ack => {
                self.metrics.delivery(name, DeliveryOutcome::Delivered);
                tracing::debug!(sink = %name, event = %id, attempts, "Delivered.");
                if attempts > 1 {
                    tracing::info!(sink = %name, event = %id, attempts, "Delivered after retries.");
                }
                match self.store.ack(name, seq) {
                    Ok(_) => {
                        self.settle(&entry.payload, now_ms);
                        if entry.payload.events().iter().any(|e| e.possible_repeat) {
                            self.metrics.ha_possible_repeat(name);
                        }
                        self.unflushed += 1;
                        self.unflushed_since
                            .get_or_insert_with(std::time::Instant::now);
                        if self.unflushed >= GROUP_MAX {
                            self.flush_acks().await;
                        }
                        return;
                    }
                    Err(e) => Err(e),
                }
            }
            Verdict::Retry { at_ms, reason } => {
                self.retry_later(seq, entry, attempts, at_ms, reason, now_ms)
                    .await;
                return;
            }
            Verdict::Wait { until_ms } => {
                tracing::debug!(sink = %name, event = %id, wait_ms = until_ms - now_ms, "Rate limited; waiting for a permit.");
                self.pause_until(until_ms);
                return;
            }
            Verdict::Dead { reason, response } => {
                self.metrics.delivery(name, DeliveryOutcome::DeadLetter);
                tracing::error!(
                    sink = %name,
                    event = %id,
                    attempts,
                    reason = %reason,
                    response = response.as_deref(),
                    "Delivery failed permanently; moved to the dead letter."
                );
                self.settle(&entry.payload, now_ms);
                let mut last = entry;
                last.attempts = attempts;
                let letter = DeadLetter {
                    entry: last,
                    dead_at_ms: now_ms,
                    reason,
                    last_response: response,
                    unreadable: None,
                };
                self.store.dead_letter(name, seq, &letter).map(|_| ())
            }
        };
        if let Err(e) = result {
            tracing::error!(sink = %name, event = %id, error = %e, "Cannot update the outbox after a delivery attempt.");
            self.store.heal(&e).await;
            self.pause_until(now_ms + STORE_PAUSE_MS);
        } else if !self.persist(name, &id).await {
            self.pause_until(now_ms + STORE_PAUSE_MS);
        }
    }

    /// A failed attempt: the entry is rescheduled for `at_ms` and the whole sink pauses until
    /// then (it is unhealthy; the rest waits, in order; attempts already in flight land).
    async fn retry_later(
        &mut self,
        seq: u64,
        entry: OutboxEntry,
        attempts: u32,
        at_ms: i64,
        reason: String,
        now_ms: i64,
    ) {
        let sink = self.sink.clone();
        let name = sink.name();
        let id = entry.payload.id().to_string();
        self.metrics.delivery(name, DeliveryOutcome::Retry);
        tracing::warn!(
            sink = %name,
            event = %id,
            attempts,
            retry_in_ms = at_ms - now_ms,
            reason = %reason,
            "Delivery failed; will retry."
        );
        let mut next = entry;
        next.attempts = attempts;
        next.next_attempt_at_ms = at_ms;
        next.last_error = Some(reason);
        match self.store.reschedule(name, seq, &next) {
            Err(e) => {
                tracing::error!(sink = %name, event = %id, error = %e, "Cannot reschedule; the entry stays due.");
            }
            Ok(_) => {
                self.persist(name, &id).await;
            }
        }
        self.pause_until(at_ms);
    }

    /// Starts nothing before `until_ms` (or before a later pause already set); what was read
    /// is read again afterwards.
    fn pause_until(&mut self, until_ms: i64) {
        self.paused_until_ms = self.paused_until_ms.max(until_ms);
        self.batch.clear();
    }

    /// Flushes the acks not yet flushed; on failure the sink pauses.
    async fn flush_acks(&mut self) {
        let name = self.sink.name().to_string();
        if !self.persist(&name, "(acks of delivered entries)").await {
            self.pause_until(unix_ms(time::OffsetDateTime::now_utc()) + STORE_PAUSE_MS);
        }
    }

    /// Makes the outbox updates so far durable (see the module docs): every ack not yet
    /// flushed, and the reschedule or dead letter just written. False when the flush failed.
    async fn persist(&mut self, name: &str, id: &str) -> bool {
        self.unflushed = 0;
        self.unflushed_since = None;
        match self.store.flush().await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(sink = %name, event = %id, error = %e, "Cannot make the outbox update durable; a crash now would repeat this delivery.");
                false
            }
        }
    }
}

impl Task for Worker {
    fn label(&self) -> Label {
        Label::new("deliver").sink(self.sink.name())
    }

    /// Starts what may start, then lands one attempt; with nothing in flight, waits for the
    /// next due entry (after flushing the acks). Failures are the entries' (rescheduled, dead
    /// lettered) or the store's (a pause), never the step's: the worker keeps its own
    /// per-entry schedule, so the runner's backoff is not used.
    async fn step(&mut self) -> Result<Next, TaskError> {
        if !self.resumed {
            self.resumed = true;
            let pending = self.store.depth(self.sink.name());
            if pending > 0 {
                tracing::info!(sink = %self.sink.name(), pending, "Resuming delivery of pending entries.");
            }
        }
        let now_ms = unix_ms(time::OffsetDateTime::now_utc());
        self.clamp_pause(now_ms);
        if self.flights.is_empty() && self.term.as_ref().is_some_and(|t| !t.may_send()) {
            // Not leading (being stopped), or the term's checkpoint is stale: wait for it.
            if self.unflushed > 0 {
                self.flush_acks().await;
            }
            return Ok(Next::After(HELD_BACK));
        }
        self.launch(now_ms).await;
        if self.flights.is_empty() {
            // Nothing to send now: the group's flush, then the wait.
            if self.unflushed > 0 {
                self.flush_acks().await;
                return Ok(Next::Now);
            }
            return Ok(self.idle(now_ms));
        }
        self.land_next().await;
        Ok(Next::Now)
    }

    /// Lands every attempt in flight (acked, rescheduled or dead-lettered as usual) and
    /// flushes, starting nothing new.
    async fn stop(&mut self) {
        self.batch.clear();
        while !self.flights.is_empty() {
            self.land_next().await;
        }
        if self.unflushed > 0 {
            self.flush_acks().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind};
    use crate::finding::Domain;

    fn event(i: usize) -> Event {
        let mut f = crate::render::sample_event(Domain::Alerts).finding.unwrap();
        f.fingerprint = format!("fp-{i}");
        f.title = format!("finding {i}");
        Event::about(
            EventKind::New,
            f,
            0,
            "",
            None,
            time::OffsetDateTime::UNIX_EPOCH,
        )
    }

    fn entry(p: impl Into<Payload>, enqueued: i64) -> OutboxEntry {
        OutboxEntry::new(p.into(), enqueued)
    }

    /// A pause set before the wall clock stepped back by hours — here one ending two
    /// [`MAX_WAIT`]s from now — ends at once: the next step delivers what is due instead of
    /// holding the whole sink until the clock catches up.
    /// A store in `dir`'s `state/` and a worker delivering its sink `out` to the file
    /// `dir/events.jsonl` (returned too).
    fn file_worker(dir: &std::path::Path) -> (Worker, Store, std::path::PathBuf) {
        let out = dir.join("events.jsonl");
        let config: crate::sinks::SinkConfig = toml::from_str(&format!(
            "name = \"out\"\ntype = \"file\"\npath = \"{}\"\n",
            out.display()
        ))
        .unwrap();
        let sink = Sink::build_with(&config, |_| None).unwrap();
        let store = Store::open(&dir.join("state")).unwrap();
        let worker = Worker::new(
            Arc::new(sink),
            store.clone(),
            DeliverySettings::default(),
            Arc::new(Notify::new()),
        );
        (worker, store, out)
    }

    #[tokio::test]
    async fn a_pause_from_before_a_clock_step_back_ends_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (mut worker, store, out) = file_worker(dir.path());
        let now_ms = unix_ms(time::OffsetDateTime::now_utc());
        store.enqueue("out", &entry(event(1), now_ms)).unwrap();
        worker.paused_until_ms = now_ms + 2 * MAX_WAIT.as_millis() as i64;
        worker.step().await.unwrap();
        assert_eq!(store.depth("out"), 0, "the sink still waits for the clock");
        assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 1);

        // A pause within MAX_WAIT (a Retry-After, a backoff) is kept.
        store.enqueue("out", &entry(event(2), now_ms)).unwrap();
        worker.paused_until_ms = unix_ms(time::OffsetDateTime::now_utc()) + 60_000;
        worker.step().await.unwrap();
        assert_eq!(store.depth("out"), 1, "a real pause was cut short");
    }

    /// An entry whose payload was damaged on disk does not stall its sink: the worker's read
    /// moves it to the dead letters and the entry behind it is delivered in the same step.
    #[tokio::test]
    async fn a_damaged_payload_does_not_stall_the_entries_behind_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut worker, store, out) = file_worker(dir.path());
        let state = dir.path().join("state");
        let now_ms = unix_ms(time::OffsetDateTime::now_utc());
        store.enqueue("out", &entry(event(1), now_ms)).unwrap();
        store.enqueue("out", &entry(event(2), now_ms)).unwrap();
        // Flip a byte of the first payload's body (after its length and CRC).
        let segments: Vec<_> = std::fs::read_dir(state.join("payloads"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let [segment] = &segments[..] else {
            panic!("one segment: {segments:?}")
        };
        let mut bytes = std::fs::read(segment).unwrap();
        bytes[9] ^= 0xff;
        std::fs::write(segment, bytes).unwrap();

        worker.step().await.unwrap();
        assert_eq!(store.depth("out"), 0);
        let delivered = std::fs::read_to_string(&out).unwrap();
        assert_eq!(delivered.lines().count(), 1, "{delivered}");
        assert!(delivered.contains(&entry(event(2), 0).payload.id().to_string()));
        let letters = store.dead_letters("out").unwrap();
        assert_eq!(letters.len(), 1);
        assert!(letters[0].1.reason.contains("CRC mismatch"), "{letters:?}");
    }

    #[test]
    fn decide_table() {
        let policy = DeliverySettings {
            retry_initial_delay: Duration::from_secs(5),
            retry_max_delay: Duration::from_secs(600),
            max_attempts: 5,
            max_age: Duration::from_secs(3600),
        };
        let e = entry(event(1), 0);
        let retry = |after: Option<u64>| Outcome::Retry {
            after: after.map(Duration::from_secs),
            reason: "r".into(),
        };
        let at = |v: Verdict| match v {
            Verdict::Retry { at_ms, .. } => at_ms,
            other => panic!("{other:?}"),
        };
        let delivered = Outcome::Delivered {
            detail: "ok".into(),
        };
        assert_eq!(decide(&policy, &e, 1, &delivered, 1000, 0.5), Verdict::Ack);
        // Jitter spans half to all of the exponential step; Retry-After is a floor.
        assert_eq!(
            at(decide(&policy, &e, 1, &retry(None), 1000, 0.0)),
            1000 + 2500
        );
        assert_eq!(
            at(decide(&policy, &e, 1, &retry(None), 1000, 1.0)),
            1000 + 5000
        );
        assert_eq!(
            at(decide(&policy, &e, 1, &retry(Some(600)), 1000, 0.0)),
            1000 + 600_000
        );
        assert_eq!(
            at(decide(&policy, &e, 1, &retry(Some(99_999)), 1000, 0.0)),
            1000 + 3_600_000
        );
        assert!(matches!(
            decide(&policy, &e, 5, &retry(None), 1000, 0.0),
            Verdict::Dead { .. }
        ));
        assert!(matches!(
            decide(&policy, &e, 1, &retry(None), 3_600_000, 0.0),
            Verdict::Dead { .. }
        ));
        let permanent = Outcome::Permanent {
            reason: "no".into(),
            response: Some("HTTP 400".into()),
        };
        assert_eq!(
            decide(&policy, &e, 1, &permanent, 1000, 0.0),
            Verdict::Dead {
                reason: "no".into(),
                response: Some("HTTP 400".into())
            }
        );
        // A throttled call is no attempt: no give-up, whatever the count; just a wait.
        let throttled = Outcome::Throttled {
            after: Duration::from_millis(2500),
        };
        assert_eq!(
            decide(&policy, &e, 99, &throttled, 1000, 0.0),
            Verdict::Wait { until_ms: 3500 }
        );
        assert_eq!(
            decide(
                &policy,
                &e,
                1,
                &Outcome::Throttled {
                    after: Duration::from_secs(99_999)
                },
                0,
                0.0
            ),
            Verdict::Wait {
                until_ms: 3_600_000
            }
        );
    }

    #[test]
    fn plan_fold_table() {
        let fold = Fold {
            after: 3,
            max_members: 2,
        };
        let all = |n: u64| (1..=n).map(|s| (s, true)).collect::<Vec<_>>();
        // At or under the threshold: nothing.
        assert!(plan_fold(&all(3), fold).is_empty());
        // Over it: chunks of max_members in order; a lone leftover stays single.
        assert_eq!(plan_fold(&all(5), fold), vec![vec![1, 2], vec![3, 4]]);
        assert_eq!(plan_fold(&all(4), fold), vec![vec![1, 2], vec![3, 4]]);
        // Only singles count and fold; digests and retried entries are skipped.
        let mixed = [
            (1, true),
            (2, false),
            (3, true),
            (4, true),
            (5, false),
            (6, true),
        ];
        assert_eq!(
            plan_fold(
                &mixed,
                Fold {
                    after: 3,
                    max_members: 50
                }
            ),
            vec![vec![1, 3, 4, 6]]
        );
        assert!(
            plan_fold(
                &mixed,
                Fold {
                    after: 4,
                    max_members: 50
                }
            )
            .is_empty()
        );
        assert!(
            plan_fold(
                &all(10),
                Fold {
                    after: 1,
                    max_members: 1
                }
            )
            .is_empty()
        );
    }

    #[test]
    fn already_folded_finds_members_of_backlog_digests_only() {
        let d = Digest::new(
            BACKLOG_ROUTE,
            BTreeMap::new(),
            vec![event(1), event(2)],
            time::OffsetDateTime::UNIX_EPOCH,
        );
        let g = Digest::new(
            "route[0]",
            BTreeMap::new(),
            vec![event(3)],
            time::OffsetDateTime::UNIX_EPOCH,
        );
        let due = vec![
            (1, entry(event(1), 0)),
            (2, entry(event(2), 0)),
            (3, entry(event(3), 0)),
            (4, entry(event(4), 0)),
            (5, entry(d, 0)),
            (6, entry(g, 0)),
        ];
        assert_eq!(already_folded(&due), vec![1, 2]);
    }

    #[tokio::test]
    async fn folding_is_crash_safe_and_never_duplicates_a_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let fold = Fold {
            after: 3,
            max_members: 4,
        };
        for i in 0..6 {
            store
                .enqueue("s", &entry(event(i), 100 + i as i64))
                .unwrap();
        }
        // A crash after the digest of the first fold was enqueued, before any member was acked:
        // replay the first step by hand.
        let first = Digest::new(
            BACKLOG_ROUTE,
            BTreeMap::new(),
            (0..4).map(event).collect(),
            time::OffsetDateTime::UNIX_EPOCH,
        );
        store.enqueue("s", &entry(first.clone(), 100)).unwrap();
        let r = fold_backlog(&store, "s", fold, 10_000).await.unwrap();
        // The four carried members are acked; the remaining two are not over the threshold.
        assert_eq!(
            r,
            FoldReport {
                digests: 0,
                existing: 0,
                folded: 4
            }
        );
        let due = store.due("s", 10_000, 100).unwrap();
        let ids: Vec<&str> = due.iter().map(|(_, e)| e.payload.id()).collect();
        assert_eq!(
            ids,
            vec![
                event(4).id.as_str(),
                event(5).id.as_str(),
                first.id.as_str()
            ]
        );

        // Same members folded again after the digest was delivered (its guard remains): the
        // guard says "already there", the members are just acked.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..4 {
            store
                .enqueue("s", &entry(event(i), 100 + i as i64))
                .unwrap();
        }
        let seq = store
            .enqueue("s", &entry(first.clone(), 100))
            .unwrap()
            .seq();
        store.ack("s", seq).unwrap();
        let r = fold_backlog(
            &store,
            "s",
            Fold {
                after: 3,
                max_members: 4,
            },
            10_000,
        )
        .await
        .unwrap();
        assert_eq!(
            r,
            FoldReport {
                digests: 0,
                existing: 1,
                folded: 4
            }
        );
        assert_eq!(store.depth("s"), 0);

        // A plain fold: the digest keeps the oldest member's age.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..9 {
            store
                .enqueue("s", &entry(event(i), 100 + i as i64))
                .unwrap();
        }
        let r = fold_backlog(&store, "s", fold, 10_000).await.unwrap();
        assert_eq!(
            r,
            FoldReport {
                digests: 2,
                existing: 0,
                folded: 8
            }
        );
        let due = store.due("s", 10_000, 100).unwrap();
        assert_eq!(due.len(), 3);
        assert!(matches!(&due[0].1.payload, Payload::Event(e) if e.id == event(8).id));
        match &due[1].1.payload {
            Payload::Digest(d) => {
                assert_eq!(d.route, BACKLOG_ROUTE);
                assert_eq!(d.events.len(), 4);
                assert_eq!(due[1].1.enqueued_at_ms, 100);
            }
            other => panic!("{other:?}"),
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// A due outbox part: increasing seqs (with gaps), each a never-attempted single or not.
        fn due() -> impl Strategy<Value = Vec<(u64, bool)>> {
            prop::collection::vec((1u64..4, prop::bool::weighted(0.7)), 0..120).prop_map(|v| {
                let mut seq = 0;
                v.into_iter()
                    .map(|(gap, single)| {
                        seq += gap;
                        (seq, single)
                    })
                    .collect()
            })
        }

        proptest! {
            #[test]
            fn plan_fold_groups_each_eligible_entry_at_most_once(
                due in due(),
                after in 0usize..60,
                max_members in 0usize..12,
            ) {
                let fold = Fold { after, max_members };
                let plan = plan_fold(&due, fold);
                prop_assert_eq!(&plan, &plan_fold(&due, fold), "deterministic");
                let singles: Vec<u64> =
                    due.iter().filter(|(_, s)| *s).map(|(seq, _)| *seq).collect();
                if singles.len() <= after || max_members < 2 {
                    prop_assert!(plan.is_empty(), "{plan:?}");
                }
                for group in &plan {
                    prop_assert!(
                        (2..=max_members).contains(&group.len()),
                        "a group of {} with max {max_members}",
                        group.len()
                    );
                }
                // Members are eligible singles, each once, in outbox order.
                let members: Vec<u64> = plan.concat();
                let mut rest = singles.iter();
                for m in &members {
                    prop_assert!(rest.any(|s| s == m), "{m} is not an eligible single in order");
                }
                // A fold leaves behind at most a lone single it could not pair.
                if !plan.is_empty() {
                    prop_assert!(singles.len() - members.len() <= 1);
                }
            }
        }
    }
}
