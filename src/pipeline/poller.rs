//! Polling: one task per (source, domain). Each step ([`Poller::poll_once`]) reads the domain,
//! lets the lifecycle tracker decide what changed, and writes the result in the store's
//! crash-safe order. [`Poller`] is a [`Task`]: the daemon's runner repeats it every interval
//! and backs off after failures (capped at the interval); a poll in progress at shutdown
//! finishes, or is dropped before its cursor moves, which the order below makes safe.
//!
//! The order of one poll, chosen so that a crash between any two steps loses nothing:
//! 1. read: a window since the watermark minus the overlap (alerts, firewall), or the full
//!    snapshot (vulnerabilities, baseline); a failed read writes nothing. Vulnerabilities that
//!    left the snapshot are then looked up by `PrimaryId`, so they resolve as fixed, ignored or
//!    expired rather than `gone` (a failed lookup leaves them `gone`; it is not a failed poll);
//! 2. dispatch every event (see `dispatch`): into each routed sink's outbox, into its routing
//!    group, or into the suppression log (each idempotent: the event id guards);
//! 3. write the lifecycle records;
//! 4. flush (group commit: one `flush` per poll);
//! 5. advance the cursor (watermark, initialised) and flush again.
//!
//! A crash before 4 loses the unflushed tail as a prefix, so a record is never durable without
//! its enqueued event; the next poll sees the finding again and the enqueue guard drops a
//! repeat. The cursor only moves after everything it covers is durable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::backoff::Backoff;
use crate::event::Event;
use crate::finding::{Domain, Finding};
use crate::pipeline::dispatch::{Dispatched, Dispatcher};
use crate::pipeline::lifecycle::{self, Confirmation, Coverage, GoneRule};
use crate::pipeline::metrics::{Metrics, PollFailure};
use crate::record::Record;
use crate::sas::models::Quarantined;
use crate::sas::source::{DomainPoll, InitialSync, ReadWindow, Source};
use crate::store::{Cursor, QuarantineEntry, Store, StoreError};
use crate::task::{Label, Next, Task, TaskError};

/// How far back a first start reads container-firewall records (the API needs a window).
pub const FIREWALL_FIRST_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// A snapshot domain whose statistics probe is unchanged is still swept in full after this
/// many intervals: equal counts can hide a change (one finding fixed, another opened).
pub const RECONCILE_EVERY: u32 = 6;

/// What one successful poll did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Findings listed.
    pub observed: usize,
    /// Lifecycle records written.
    pub changed: usize,
    /// What dispatch did with the events (outbox entries, group members, suppressions).
    pub dispatched: Dispatched,
    /// Findings recorded silently on a baseline first start.
    pub silently_tracked: u64,
    /// The statistics probe was unchanged, so the full sweep was skipped.
    pub skipped_unchanged: bool,
    /// Vulnerabilities that left the pending list and were looked up by `PrimaryId`.
    pub looked_up: usize,
    /// Of those, resolved with the reason Security Center gave (fixed, ignored, expired)
    /// instead of `gone`.
    pub explained: usize,
    /// The lookup failed, so every vulnerability that left the list was resolved as `gone`.
    pub lookup_failed: bool,
    /// Records listed that could not be read (quarantined; the rest of the poll went on).
    pub quarantined: usize,
    /// Open findings this sweep missed that stay open until more sweeps agree.
    pub pending_gone: usize,
}

/// Why a poll failed. Nothing was written past the failing step.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// Security Center could not be read.
    #[error("{0}")]
    Read(#[from] crate::sas::error::SasError),
    /// The store refused a write.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// What the change probe says about a snapshot domain.
enum Probe {
    /// Unchanged since a recent sweep: skip this one (the cursor already says so).
    Unchanged,
    /// Sweep, and record this probe value (none for window domains, a first start, or a
    /// failed probe).
    Sweep(Option<String>),
}

/// The poller of one source and domain.
pub struct Poller {
    source: Arc<Source>,
    poll: DomainPoll,
    store: Store,
    dispatcher: Arc<Dispatcher>,
    metrics: Arc<Metrics>,
    gone_rule: GoneRule,
}

impl Poller {
    /// A poller for `poll.domain` of `source`.
    pub fn new(
        source: Arc<Source>,
        poll: DomainPoll,
        store: Store,
        dispatcher: Arc<Dispatcher>,
    ) -> Self {
        Poller {
            source,
            poll,
            store,
            dispatcher,
            metrics: Arc::default(),
            gone_rule: GoneRule::default(),
        }
    }

    /// Resolves findings that left a snapshot by `rule` instead of the default.
    pub fn with_gone_rule(mut self, rule: GoneRule) -> Self {
        self.gone_rule = rule;
        self
    }

    /// Counts this poller's polls into `metrics` (the daemon's).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    fn name(&self) -> &str {
        &self.source.settings.name
    }

    /// One poll: read, diff, enqueue, record, flush, advance. `now` is the poll's start.
    pub async fn poll_once(&self, now: OffsetDateTime) -> Result<PollReport, PollError> {
        let settings = &self.source.settings;
        let domain = self.poll.domain;
        let cursor = self.store.cursor(&settings.name, domain)?;
        let first = !cursor.as_ref().is_some_and(|c| c.initialised);
        let overlap = time::Duration::try_from(settings.overlap).unwrap_or(time::Duration::ZERO);
        let since = cursor
            .as_ref()
            .and_then(|c| c.watermark_ms)
            .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok())
            .filter(|_| !first)
            .map(|w| w - overlap);
        let now_ms = crate::clock::unix_ms(now);
        let probe = match self.probe(first, cursor.as_ref(), now_ms).await? {
            Probe::Unchanged => {
                return Ok(PollReport {
                    skipped_unchanged: true,
                    ..PollReport::default()
                });
            }
            Probe::Sweep(p) => p,
        };
        let firewall_first = time::Duration::try_from(FIREWALL_FIRST_WINDOW).unwrap_or_default();
        let window = ReadWindow {
            now,
            occurred_since: since,
            handled_since: since,
            firewall_since: since.unwrap_or(now - firewall_first),
        };
        let sweep = self.source.read(domain, &window).await?;
        let coverage = match domain {
            Domain::Vulnerabilities | Domain::Baseline if sweep.quarantined.is_empty() => {
                Coverage::Snapshot
            }
            Domain::Vulnerabilities | Domain::Baseline => {
                tracing::warn!(
                    source = %settings.name,
                    domain = domain.as_str(),
                    quarantined = sweep.quarantined.len(),
                    "The sweep holds records that cannot be read; nothing is resolved as gone until a sweep is complete."
                );
                Coverage::Partial
            }
            Domain::Alerts | Domain::Firewall => Coverage::Window,
        };
        self.keep_quarantined(&sweep.quarantined, now_ms)?;
        let quarantined = sweep.quarantined.len();
        let observed = sweep.findings;
        let known = self.known_records(coverage, &observed)?;
        let silent = first && settings.initial_sync == InitialSync::Baseline;
        let observed_count = observed.len();
        let mut diff = lifecycle::diff(observed, &known, coverage, self.poll.events, silent, now);

        let mut report = PollReport {
            observed: observed_count,
            quarantined,
            changed: diff.changes.len(),
            silently_tracked: diff.silently_tracked,
            ..PollReport::default()
        };
        // 1b. Why did vulnerabilities leave the list? Asked before anything is written, so a
        // crash before the flush asks again.
        if domain == Domain::Vulnerabilities {
            self.explain_gone_vulnerabilities(&mut diff, now, &mut report)
                .await;
        }
        // 1c. Missing once is not gone.
        if coverage == Coverage::Snapshot {
            let c = lifecycle::confirm_gone(&mut diff, &known, &self.gone_rule);
            self.report_confirmation(&c);
            report.pending_gone = c.pending;
        }
        // 2. Events first.
        let summary = silent.then(|| {
            Event::summary(
                &settings.name,
                domain,
                diff.silently_tracked,
                self.store.epoch(),
                now,
            )
        });
        // Events are taken out of the changes (the records stay): no copy of the finding.
        for change in &mut diff.changes {
            if let Some(event) = change.event.take() {
                self.dispatcher.dispatch(
                    event,
                    Some(change.record.generation),
                    now,
                    &mut report.dispatched,
                )?;
            }
        }
        if let Some(event) = summary {
            self.dispatcher
                .dispatch(event, None, now, &mut report.dispatched)?;
        }
        // 3. Then the records they justify.
        for change in &diff.changes {
            self.store
                .put_record(&settings.name, domain, &change.fingerprint, &change.record)?;
        }
        // 4. Group commit.
        self.store.flush().await?;
        // 5. Only now may the cursor move.
        self.store.set_cursor(
            &settings.name,
            domain,
            &Cursor {
                v: crate::store::CURSOR_SCHEMA,
                watermark_ms: Some(now_ms),
                initialised: true,
                last_success_ms: now_ms,
                // Findings awaiting confirmation need the next sweep, whatever the probe says.
                probe: probe.filter(|_| report.pending_gone == 0),
                last_sweep_ms: Some(now_ms),
            },
        )?;
        self.store.flush().await?;
        self.dispatcher.wake(&report.dispatched);
        Ok(report)
    }

    /// Snapshot domains: a cheap probe first; an unchanged one skips the sweep (the cursor
    /// records the success), except for the periodic reconcile. A probe that fails is not
    /// fatal: sweep instead.
    async fn probe(
        &self,
        first: bool,
        cursor: Option<&Cursor>,
        now_ms: i64,
    ) -> Result<Probe, PollError> {
        let settings = &self.source.settings;
        let domain = self.poll.domain;
        let probe = match domain {
            Domain::Vulnerabilities | Domain::Baseline if !first => {
                match self.source.change_probe(domain).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::debug!(source = %settings.name, domain = domain.as_str(), error = %e, "Change probe failed; sweeping in full.");
                        None
                    }
                }
            }
            _ => None,
        };
        if let (Some(p), Some(c)) = (&probe, cursor) {
            let reconcile_ms =
                (self.poll.interval.as_millis() as i64).saturating_mul(RECONCILE_EVERY as i64);
            let recent = c
                .last_sweep_ms
                .is_some_and(|at| now_ms.saturating_sub(at) < reconcile_ms);
            if c.probe.as_deref() == Some(p.as_str()) && recent {
                let mut next = c.clone();
                next.last_success_ms = now_ms;
                self.store.set_cursor(&settings.name, domain, &next)?;
                return Ok(Probe::Unchanged);
            }
        }
        Ok(Probe::Sweep(probe))
    }

    /// The known records the diff needs. A snapshot needs every one (absence means gone); a
    /// window only those of what it listed — loading all of them on every 30-second alert
    /// poll would be waste.
    fn known_records(
        &self,
        coverage: Coverage,
        observed: &[Finding],
    ) -> Result<BTreeMap<String, Record>, StoreError> {
        let source = &self.source.settings.name;
        let domain = self.poll.domain;
        match coverage {
            Coverage::Snapshot => Ok(self.store.records(source, domain)?.into_iter().collect()),
            Coverage::Window | Coverage::Partial => {
                let mut known = BTreeMap::new();
                for f in observed {
                    if let Some(r) = self.store.get_record(source, domain, &f.fingerprint)? {
                        known.insert(f.fingerprint.clone(), r);
                    }
                }
                Ok(known)
            }
        }
    }

    /// Says why findings that left the list are not resolved yet, when that is news: a mass
    /// disappearance is held at WARN (it looks like a broken answer), the rest at DEBUG.
    fn report_confirmation(&self, c: &Confirmation) {
        if c.pending == 0 {
            return;
        }
        let domain = self.poll.domain.as_str();
        if c.mass {
            tracing::warn!(
                source = self.name(),
                domain,
                vanished = c.vanished,
                sweeps = self.gone_rule.hold_sweeps,
                "A large share of the open findings left the list in one sweep; holding them open until that many sweeps in a row agree."
            );
        } else {
            tracing::debug!(
                source = self.name(),
                domain,
                pending = c.pending,
                "Findings left the list; they resolve once the next sweep agrees."
            );
        }
    }

    /// Keeps the records the poll could not read where the operator can see them (the store's
    /// quarantine, `sasrelay findings --quarantined`), warning once per new record.
    fn keep_quarantined(&self, records: &[Quarantined], now_ms: i64) -> Result<(), StoreError> {
        let domain = self.poll.domain;
        for q in records {
            let entry = QuarantineEntry {
                v: crate::store::QUARANTINE_SCHEMA,
                source: self.name().to_string(),
                domain,
                digest: q.digest.clone(),
                action: q.action.clone(),
                reason: q.reason.clone(),
                raw: q.raw.clone(),
                bytes: q.bytes,
                first_seen_ms: now_ms,
                last_seen_ms: now_ms,
                times: 1,
            };
            if self.store.quarantine(&entry)? {
                tracing::warn!(
                    source = self.name(),
                    domain = domain.as_str(),
                    action = %q.action,
                    digest = %q.digest,
                    bytes = q.bytes,
                    reason = %crate::text::strip_control(&q.reason),
                    "Quarantined a record Security Center listed but sasrelay cannot read; see `sasrelay findings --quarantined`."
                );
            }
        }
        Ok(())
    }

    /// Asks Security Center why the vulnerabilities that left the pending list left it — fixed,
    /// ignored or expired ([`Source::lookup_resolved_vulnerabilities`]) — and resolves them
    /// with that reason ([`lifecycle::explain_gone`]); the rest stay `gone`. A failed lookup
    /// does not fail the poll (that would hold every other change of the poll back for as long
    /// as the lookup fails): those findings are resolved as `gone`, once, with a warning.
    async fn explain_gone_vulnerabilities(
        &self,
        diff: &mut lifecycle::Diff,
        now: OffsetDateTime,
        report: &mut PollReport,
    ) {
        let wanted: BTreeMap<crate::sas::models::RecordId, Option<String>> = diff
            .gone()
            .filter_map(|c| {
                let id = crate::sas::normalise::vul_primary_id(&c.record.id)?;
                Some((id, c.record.last.kubernetes.cluster_id.clone()))
            })
            .collect();
        if wanted.is_empty() {
            return;
        }
        report.looked_up = wanted.len();
        match self.source.lookup_resolved_vulnerabilities(&wanted).await {
            Ok(closed) => report.explained = lifecycle::explain_gone(diff, closed, now),
            Err(e) => {
                report.lookup_failed = true;
                tracing::warn!(
                    source = self.name(),
                    domain = Domain::Vulnerabilities.as_str(),
                    findings = wanted.len(),
                    error = %e,
                    "Could not look up why vulnerabilities left the pending list; resolving them as gone."
                );
            }
        }
    }

    /// Counts and logs a successful poll that took `took`.
    fn record(&self, r: &PollReport, took: Duration) {
        let domain = self.poll.domain.as_str();
        self.metrics
            .poll_ok(self.name(), domain, took, r.observed, &r.dispatched);
        self.metrics.quarantined(self.name(), domain, r.quarantined);
        tracing::debug!(
            source = self.name(),
            domain,
            observed = r.observed,
            changed = r.changed,
            enqueued = r.dispatched.enqueued,
            grouped = r.dispatched.grouped,
            suppressed = r.dispatched.silenced + r.dispatched.muted,
            dropped = r.dispatched.dropped,
            duplicates = r.dispatched.duplicates,
            skipped_unchanged = r.skipped_unchanged,
            looked_up = r.looked_up,
            explained = r.explained,
            quarantined = r.quarantined,
            pending_gone = r.pending_gone,
            "Poll done."
        );
        if r.silently_tracked > 0 {
            tracing::info!(
                source = self.name(),
                domain,
                tracked = r.silently_tracked,
                "First start: tracking open findings silently (initial_sync = baseline)."
            );
        }
    }
}

impl Task for Poller {
    fn label(&self) -> Label {
        Label::new("poll")
            .source(self.name())
            .domain(self.poll.domain.as_str())
    }

    /// A failed poll is retried from 1 s, doubling, but never later than the next regular
    /// poll would have been.
    fn backoff(&self) -> Backoff {
        Backoff::saturating(Duration::from_secs(1), self.poll.interval)
    }

    /// One poll now ([`Poller::poll_once`]), counted and logged; the next one after the
    /// interval. A failed poll never advances the watermark; a store failure is logged at
    /// ERROR at once (data waits to be recorded), a read failure only once it persists.
    async fn step(&mut self) -> Result<Next, TaskError> {
        let started = std::time::Instant::now();
        match self.poll_once(OffsetDateTime::now_utc()).await {
            Ok(r) => {
                self.record(&r, started.elapsed());
                Ok(Next::After(self.poll.interval))
            }
            Err(e) => {
                let (action, reason) = match &e {
                    PollError::Read(err) => (err.action().unwrap_or("none"), err.reason_label()),
                    PollError::Store(_) => ("none", "store"),
                };
                let error = e.to_string();
                let failure = PollFailure {
                    action,
                    reason,
                    error: &error,
                };
                self.metrics.poll_failed(
                    self.name(),
                    self.poll.domain.as_str(),
                    started.elapsed(),
                    failure,
                );
                if let PollError::Store(err) = &e {
                    self.store.heal(err);
                }
                let data_at_risk = matches!(e, PollError::Store(_));
                Err(
                    TaskError::retryable("Poll failed; nothing was recorded, retrying.", e)
                        .urgent(data_at_risk),
                )
            }
        }
    }
}
