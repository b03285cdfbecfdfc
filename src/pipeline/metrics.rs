//! The daemon's counters: pollers and delivery workers count into one shared [`Metrics`]; the
//! admin API reads them at scrape time and `daemon::metrics` renders them, with the store's
//! figures, as Prometheus text. Only counting lives here, so the pipeline never knows how its
//! numbers are shown.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::pipeline::dispatch::Dispatched;

/// Counters of one (source, domain) poller.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PollFigures {
    /// Successful polls.
    pub ok: u64,
    /// Failed polls.
    pub failed: u64,
    /// Failures since the last success.
    pub consecutive_failures: u64,
    /// When the last successful poll ended (unix seconds), this run or, as the store's cursor
    /// remembers it, an earlier one ([`Metrics::remember_success`]).
    pub last_success_unix: Option<f64>,
    /// When a page of a poll was last read and committed in this run (unix seconds): a long
    /// poll still reading is not mistaken for a stalled one ([`Metrics::poll_page`]).
    pub last_page_unix: Option<f64>,
    /// Why the latest failed poll failed (control characters removed, at most
    /// [`MAX_ERROR_CHARS`]); cleared by a success.
    pub last_error: Option<String>,
    /// How long the last poll (successful or not) took.
    pub last_duration: Duration,
    /// Findings the last successful poll listed.
    pub observed: u64,
    /// What dispatch did with the events, by outcome.
    pub events: BTreeMap<&'static str, u64>,
    /// Failed polls by (action, reason): the Security Center action that failed (`none` when
    /// no call failed) and [`crate::sas::error::SasError::reason_label`] (or `store`).
    pub errors: BTreeMap<(String, &'static str), u64>,
    /// Sightings of records that could not be read and were quarantined.
    pub quarantined: u64,
}

/// Why a poll failed, for [`Metrics::poll_failed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollFailure<'a> {
    /// The Security Center action that failed; `none` when no call failed (the store, a
    /// source that could not connect).
    pub action: &'a str,
    /// [`crate::sas::error::SasError::reason_label`], `store`, `credentials` or `connect`.
    pub reason: &'static str,
    /// What went wrong, as `/api/v1/status` and meta-events show it.
    pub error: &'a str,
}

/// Most characters of a poll's error kept for `/api/v1/status` and meta-events.
pub const MAX_ERROR_CHARS: usize = 500;

/// Counters of one sink's worker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryFigures {
    /// Attempts the sink confirmed.
    pub delivered: u64,
    /// Attempts that failed and were rescheduled.
    pub retried: u64,
    /// Entries moved to the dead letter.
    pub dead_lettered: u64,
}

/// What a delivery attempt came to, for [`Metrics::delivery`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Confirmed by the sink.
    Delivered,
    /// Failed; rescheduled.
    Retry,
    /// Given up; moved to the dead letter.
    DeadLetter,
}

/// With replicas (`[ha]`): this replica's role and what its takeovers sent again.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HaFigures {
    /// Leading now.
    pub leading: bool,
    /// The epoch of the term it leads or last led.
    pub epoch: u64,
    /// Terms this replica began from another's checkpoint.
    pub takeovers: u64,
    /// Deliveries flagged as possible repeats, by sink.
    pub possible_repeats: BTreeMap<String, u64>,
    /// When this replica last renewed the lease (leading) or read it (standing by), unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_renew_ms: Option<i64>,
    /// Why this replica holds the lease but does not lead (its term cannot start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
}

/// The daemon's counters. Shared by pollers, workers and the admin API.
#[derive(Debug)]
pub struct Metrics {
    start_unix: f64,
    polls: Mutex<BTreeMap<(String, &'static str), PollFigures>>,
    deliveries: Mutex<BTreeMap<String, DeliveryFigures>>,
    ha: Mutex<Option<HaFigures>>,
    /// Requests to the action page by outcome (`[actions]`).
    action_page: Mutex<BTreeMap<&'static str, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(crate::clock::unix_seconds_now())
    }
}

impl Metrics {
    /// Empty counters of a daemon started at `start_unix` (seconds).
    pub fn new(start_unix: f64) -> Metrics {
        Metrics {
            start_unix,
            polls: Mutex::default(),
            deliveries: Mutex::default(),
            ha: Mutex::default(),
            action_page: Mutex::default(),
        }
    }

    /// The action page answered a request with `outcome` (`shown`, `done`, `failed`,
    /// `tampered`, `cross_site`, …).
    pub fn action_page(&self, outcome: &'static str) {
        *self
            .action_page
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(outcome)
            .or_default() += 1;
    }

    /// The action page's requests by outcome, as counted so far.
    pub fn action_page_counts(&self) -> BTreeMap<&'static str, u64> {
        self.action_page
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn ha_mut<R>(&self, f: impl FnOnce(&mut HaFigures) -> R) -> R {
        let mut ha = self.ha.lock().unwrap_or_else(PoisonError::into_inner);
        f(ha.get_or_insert_with(HaFigures::default))
    }

    /// With replicas: leading (with `epoch`) or standing by.
    pub fn ha_role(&self, leading: bool, epoch: Option<u64>) {
        self.ha_mut(|h| {
            h.leading = leading;
            if let Some(epoch) = epoch {
                h.epoch = epoch;
            }
        });
    }

    /// With replicas: a lease try succeeded at `unix_ms`.
    pub fn ha_renewed(&self, unix_ms: i64) {
        self.ha_mut(|h| h.last_renew_ms = Some(unix_ms));
    }

    /// With replicas: the replica holds the lease but its term cannot start, because of
    /// `why` (`None`: it can, or it does not hold the lease).
    pub fn ha_blocked(&self, why: Option<String>) {
        self.ha_mut(|h| h.blocked = why);
    }

    /// With replicas: a term began from another's checkpoint.
    pub fn ha_took_over(&self) {
        self.ha_mut(|h| h.takeovers += 1);
    }

    /// With replicas: a delivery to `sink` was flagged as a possible repeat.
    pub fn ha_possible_repeat(&self, sink: &str) {
        self.ha_mut(|h| *h.possible_repeats.entry(sink.to_string()).or_default() += 1);
    }

    /// The replicas' figures, when `[ha]` is configured.
    pub fn ha(&self) -> Option<HaFigures> {
        self.ha
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Registers a poller and a sink before their first poll or delivery, so every series
    /// exists from the start (a scrape shows zeros, not gaps).
    pub fn register(&self, polls: &[(String, &'static str)], sinks: &[String]) {
        let mut p = self.polls.lock().unwrap_or_else(PoisonError::into_inner);
        for key in polls {
            p.entry(key.clone()).or_default();
        }
        drop(p);
        let mut d = self
            .deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for sink in sinks {
            d.entry(sink.clone()).or_default();
        }
    }

    /// A successful poll of `source`/`domain` that took `took` and listed `observed`.
    pub fn poll_ok(
        &self,
        source: &str,
        domain: &'static str,
        took: Duration,
        observed: usize,
        dispatched: &Dispatched,
    ) {
        let mut polls = self.polls.lock().unwrap_or_else(PoisonError::into_inner);
        let f = polls.entry((source.to_string(), domain)).or_default();
        f.ok += 1;
        f.consecutive_failures = 0;
        f.last_error = None;
        f.last_success_unix = Some(crate::clock::unix_seconds_now());
        f.last_duration = took;
        f.observed = observed as u64;
        for (outcome, n) in [
            ("enqueued", dispatched.enqueued),
            ("grouped", dispatched.grouped),
            ("silenced", dispatched.silenced),
            ("muted", dispatched.muted),
            ("dropped", dispatched.dropped),
            ("duplicate", dispatched.duplicates),
        ] {
            *f.events.entry(outcome).or_default() += n as u64;
        }
    }

    /// A page of a poll of `source`/`domain` was read and committed: the source is being read,
    /// whatever the poll's length.
    pub fn poll_page(&self, source: &str, domain: &'static str) {
        let mut polls = self.polls.lock().unwrap_or_else(PoisonError::into_inner);
        let f = polls.entry((source.to_string(), domain)).or_default();
        f.last_page_unix = Some(crate::clock::unix_seconds_now());
    }

    /// A failed poll of `source`/`domain` that took `took`, as `failure` says.
    pub fn poll_failed(
        &self,
        source: &str,
        domain: &'static str,
        took: Duration,
        failure: PollFailure<'_>,
    ) {
        let mut polls = self.polls.lock().unwrap_or_else(PoisonError::into_inner);
        let f = polls.entry((source.to_string(), domain)).or_default();
        f.failed += 1;
        *f.errors
            .entry((failure.action.to_string(), failure.reason))
            .or_default() += 1;
        f.consecutive_failures += 1;
        f.last_duration = took;
        f.last_error = Some(crate::text::truncate_chars(
            &crate::text::strip_control(failure.error),
            MAX_ERROR_CHARS,
        ));
    }

    /// A source that could not connect (its credentials, its client): a failed poll of
    /// every one of its `domains`, for `reason` (action `none`: no call was made), since none
    /// of them was read.
    pub fn connect_failed(
        &self,
        source: &str,
        domains: &[&'static str],
        reason: &'static str,
        error: &str,
    ) {
        for domain in domains {
            let failure = PollFailure {
                action: "none",
                reason,
                error,
            };
            self.poll_failed(source, domain, Duration::ZERO, failure);
        }
    }

    /// The last success of `source`/`domain` before this run (the store's cursor), shown
    /// until this run's first success: `sasrelay_last_successful_poll_timestamp_seconds`
    /// then tells the time since Security Center was last read across restarts.
    pub fn remember_success(&self, source: &str, domain: &'static str, unix: f64) {
        let mut polls = self.polls.lock().unwrap_or_else(PoisonError::into_inner);
        let f = polls.entry((source.to_string(), domain)).or_default();
        if f.last_success_unix.is_none() {
            f.last_success_unix = Some(unix);
        }
    }

    /// A poll of `source`/`domain` listed `n` records that could not be read.
    pub fn quarantined(&self, source: &str, domain: &'static str, n: usize) {
        let mut polls = self.polls.lock().unwrap_or_else(PoisonError::into_inner);
        let f = polls.entry((source.to_string(), domain)).or_default();
        f.quarantined += n as u64;
    }

    /// One delivery attempt to `sink` came to `outcome`.
    pub fn delivery(&self, sink: &str, outcome: DeliveryOutcome) {
        let mut d = self
            .deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let f = d.entry(sink.to_string()).or_default();
        match outcome {
            DeliveryOutcome::Delivered => f.delivered += 1,
            DeliveryOutcome::Retry => f.retried += 1,
            DeliveryOutcome::DeadLetter => f.dead_lettered += 1,
        }
    }

    /// A copy of the poll counters.
    pub fn polls(&self) -> BTreeMap<(String, &'static str), PollFigures> {
        self.polls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A copy of the delivery counters.
    pub fn deliveries(&self) -> BTreeMap<String, DeliveryFigures> {
        self.deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// When the daemon started (unix seconds).
    pub fn start_unix(&self) -> f64 {
        self.start_unix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_polls_and_deliveries_and_resets_consecutive_failures() {
        let m = Metrics::new(1_000.5);
        m.register(&[("prod".into(), "baseline")], &["hook".into()]);
        let dispatched = Dispatched {
            enqueued: 3,
            duplicates: 1,
            ..Dispatched::default()
        };
        // Failed, failed, ok, failed: the consecutive count restarts at the success.
        for ok in [false, false, true, false] {
            if ok {
                m.poll_ok("prod", "alerts", Duration::from_secs(2), 7, &dispatched);
            } else {
                m.poll_failed(
                    "prod",
                    "alerts",
                    Duration::from_millis(100),
                    PollFailure {
                        action: "DescribeSuspEvents",
                        reason: "server",
                        error: "HTTP 503\u{1b}[2J",
                    },
                );
            }
        }
        m.delivery("hook", DeliveryOutcome::Retry);
        m.delivery("hook", DeliveryOutcome::Delivered);
        let polls = m.polls();
        let alerts = &polls[&("prod".to_string(), "alerts")];
        assert_eq!((alerts.ok, alerts.failed), (1, 3));
        assert_eq!(alerts.consecutive_failures, 1);
        assert_eq!(alerts.last_error.as_deref(), Some("HTTP 503 [2J"));
        assert_eq!(
            alerts.errors,
            BTreeMap::from([(("DescribeSuspEvents".to_string(), "server"), 3)])
        );
        assert_eq!(alerts.last_duration, Duration::from_millis(100));
        assert_eq!(alerts.observed, 7);
        assert_eq!(alerts.events["enqueued"], 3);
        assert_eq!(alerts.events["duplicate"], 1);
        assert!(alerts.last_success_unix.is_some());
        // Registered but never polled: present, all zero.
        assert_eq!(
            polls[&("prod".to_string(), "baseline")],
            PollFigures::default()
        );
        assert_eq!(
            m.deliveries()["hook"],
            DeliveryFigures {
                delivered: 1,
                retried: 1,
                dead_lettered: 0
            }
        );
        assert_eq!(m.start_unix(), 1_000.5);
    }
}
