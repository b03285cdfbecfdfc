//! The Prometheus text exposition (format 0.0.4) of the daemon's metrics, served by the admin
//! API as `GET /metrics`.
//!
//! Pollers and delivery workers count into one shared [`Metrics`] (`pipeline::metrics`);
//! figures the store already knows (outbox depth, the oldest waiting entry, dead letters, size
//! on disk) are read at scrape time, so they are never stale and cost nothing between scrapes.
//! Rendering is pure: [`render`] takes the counters, the store's figures and `now`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `sasrelay_build_info` | gauge (1) | `version` |
//! | `sasrelay_start_time_seconds` | gauge | |
//! | `sasrelay_polls_total` | counter | `source`, `domain`, `outcome` (`ok`, `error`) |
//! | `sasrelay_poll_consecutive_failures` | gauge | `source`, `domain` |
//! | `sasrelay_last_successful_poll_timestamp_seconds` | gauge (0 until a poll ever succeeded; an earlier run's success counts) | `source`, `domain` |
//! | `sasrelay_source_health` | gauge (1 for the current state, 0 for the others) | `source`, `domain`, `state` (`starting`, `ok`, `degraded`, `blind`; [`crate::health`]) |
//! | `sasrelay_last_poll_duration_seconds` | gauge | `source`, `domain` |
//! | `sasrelay_findings_observed` | gauge (last successful poll) | `source`, `domain` |
//! | `sasrelay_poll_errors_total` | counter | `source`, `domain`, `action` (the Security Center action that failed, `none` for a store failure or a source that could not connect), `reason` (`throttled`, `server`, `auth`, `permission`, `request`, `timeout`, `unreachable`, `error_code_in_200`, `list_missing`, `not_a_list`, `page_too_large`, `body_too_large`, `truncated`, `invalid`, `too_many_pages`, `credentials` (a poll, or a source that could not connect), `connect`, `store`) |
//! | `sasrelay_quarantined_records_total` | counter (sightings) | `source`, `domain` |
//! | `sasrelay_events_total` | counter | `source`, `domain`, `outcome` (`enqueued`, `grouped`, `silenced`, `muted`, `dropped`, `duplicate`) |
//! | `sasrelay_delivery_attempts_total` | counter | `sink`, `outcome` (`delivered`, `retry`, `dead_letter`) |
//! | `sasrelay_outbox_depth` | gauge | `sink` |
//! | `sasrelay_outbox_oldest_age_seconds` | gauge (0 when empty) | `sink` |
//! | `sasrelay_dead_letters` | gauge | `sink` |
//! | `sasrelay_store_size_bytes` | gauge | |
//! | `sasrelay_sas_calls_total` | counter (permits taken from the call budget, retries included) | `action` |
//! | `sasrelay_sas_call_waits_total` | counter (calls that waited for a permit) | `action` |
//! | `sasrelay_sas_call_wait_seconds_total` | counter | `action` |
//! | `sasrelay_config_last_reload_successful` | gauge (1 before any reload) | |
//! | `sasrelay_config_last_reload_success_timestamp_seconds` | gauge (the start before any) | |
//! | `sasrelay_config_reloads_total` | counter | `outcome` (`success`, `failure`) |
//! | `sasrelay_ha_leader` | gauge (with `[ha]` only: 1 leading, 0 standing by) | |
//! | `sasrelay_ha_epoch` | gauge (with `[ha]`) | |
//! | `sasrelay_ha_takeovers_total` | counter (with `[ha]`) | |
//! | `sasrelay_ha_possible_repeats_total` | counter (with `[ha]`: deliveries flagged as possible repeats) | `sink` |
//!
//! The alerts an operator wants (the README has them as rules):
//! `sasrelay_source_health{state="blind"} == 1` (a source × domain cannot be read, including
//! one that never succeeded), `time() - sasrelay_last_successful_poll_timestamp_seconds`
//! above a few intervals (the gauge is 0 until a first success, so "never" fires too),
//! `sasrelay_outbox_oldest_age_seconds` growing (a sink is down), and an entry given up:
//! `increase(sasrelay_delivery_attempts_total{outcome="dead_letter"}[1h]) > 0`
//! (`sasrelay_dead_letters` is a gauge, so `increase()` does not apply to it).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::daemon::reload::ReloadStatus;
use crate::health::{SourceHealth, State};
use crate::pipeline::metrics::{DeliveryFigures, HaFigures, Metrics, PollFigures};
use crate::sas::quota::Waits;
use crate::store::StoreStats;

/// The exposition text of `metrics`, `store` (when it could be read) and the `health` of
/// every source × domain at `now_ms`.
pub fn exposition(
    metrics: &Metrics,
    store: Option<&StoreStats>,
    health: &[SourceHealth],
    now_ms: i64,
) -> String {
    let mut out = render(
        metrics.start_unix(),
        &metrics.polls(),
        &metrics.deliveries(),
        store,
        now_ms,
    );
    render_health(&mut out, health);
    render_budget(&mut out, &crate::sas::quota::waits());
    if let Some(ha) = metrics.ha() {
        render_ha(&mut out, &ha);
    }
    render_action_page(&mut out, &metrics.action_page_counts());
    out
}

/// The action page (`[actions]`): its requests by outcome, once it has answered one. Refused
/// links (`tampered`, `expired`, `other_finding`, `malformed`, `spent`), `cross_site` and
/// `csrf` refusals climbing are worth a look: someone is trying links or forging posts.
fn render_action_page(out: &mut String, counts: &BTreeMap<&'static str, u64>) {
    if counts.is_empty() {
        return;
    }
    header(
        out,
        "sasrelay_action_page_requests_total",
        "counter",
        "Requests to the action page by outcome: shown, done, failed (Security Center refused or the task failed), not_now (no source connected), the refused ones (malformed, tampered, expired, other_finding, spent, cross_site, csrf, not_allowed, no_reason, bad_form, not_found) and store_error.",
    );
    for (outcome, n) in counts {
        let _ = writeln!(
            out,
            "sasrelay_action_page_requests_total{{outcome=\"{outcome}\"}} {n}"
        );
    }
}

/// With replicas (`[ha]`): the role, the epoch, takeovers and flagged repeats.
fn render_ha(out: &mut String, ha: &HaFigures) {
    header(
        out,
        "sasrelay_ha_leader",
        "gauge",
        "1 while this replica leads (polls and delivers), 0 while it stands by.",
    );
    let _ = writeln!(out, "sasrelay_ha_leader {}", u8::from(ha.leading));
    header(
        out,
        "sasrelay_ha_epoch",
        "gauge",
        "The epoch (lease transitions) of the term this replica leads or last led.",
    );
    let _ = writeln!(out, "sasrelay_ha_epoch {}", ha.epoch);
    header(
        out,
        "sasrelay_ha_last_renew_timestamp_seconds",
        "gauge",
        "When this replica last renewed the lease (leading) or read it (standing by); 0 before the first time. A replica that cannot reach its coordinator cannot take over.",
    );
    let _ = writeln!(
        out,
        "sasrelay_ha_last_renew_timestamp_seconds {:.3}",
        ha.last_renew_ms.unwrap_or(0) as f64 / 1000.0
    );
    header(
        out,
        "sasrelay_ha_blocked",
        "gauge",
        "1 while this replica holds the lease but cannot start its term (see the log or sasrelay status): nothing polls.",
    );
    let _ = writeln!(
        out,
        "sasrelay_ha_blocked {}",
        u8::from(ha.blocked.is_some())
    );
    header(
        out,
        "sasrelay_ha_takeovers_total",
        "counter",
        "Terms this replica began from another's checkpoint.",
    );
    let _ = writeln!(out, "sasrelay_ha_takeovers_total {}", ha.takeovers);
    header(
        out,
        "sasrelay_ha_possible_repeats_total",
        "counter",
        "Deliveries flagged as possible repeats after a takeover.",
    );
    for (sink, n) in &ha.possible_repeats {
        let _ = writeln!(
            out,
            "sasrelay_ha_possible_repeats_total{{sink=\"{}\"}} {n}",
            label(sink)
        );
    }
}

/// The call budget ([`crate::sas::quota`]): calls and waits by action, over every bucket of
/// the process. Waits growing steadily mean the polls need more calls than the budget gives:
/// raise an interval or `calls_per_second` (README, "A call budget").
fn render_budget(out: &mut String, waits: &BTreeMap<String, Waits>) {
    type Value = fn(&Waits) -> String;
    let series: [(&str, &str, Value); 3] = [
        (
            "sasrelay_sas_calls_total",
            "Security Center calls, by action (permits taken from the call budget).",
            |w| w.calls.to_string(),
        ),
        (
            "sasrelay_sas_call_waits_total",
            "Security Center calls that waited for the call budget, by action.",
            |w| w.waited.to_string(),
        ),
        (
            "sasrelay_sas_call_wait_seconds_total",
            "Time Security Center calls waited for the call budget, by action.",
            |w| format!("{:.3}", w.total.as_secs_f64()),
        ),
    ];
    for (name, help, value) in series {
        header(out, name, "counter", help);
        for (action, w) in waits {
            let _ = writeln!(out, "{name}{{action=\"{}\"}} {}", label(action), value(w));
        }
    }
}

/// `sasrelay_source_health`: one series per source × domain and state, 1 for the current.
fn render_health(out: &mut String, health: &[SourceHealth]) {
    header(
        out,
        "sasrelay_source_health",
        "gauge",
        "1 for the current state of a source and domain (starting, ok, degraded, blind), 0 for the others.",
    );
    for h in health {
        for state in State::ALL {
            let _ = writeln!(
                out,
                "sasrelay_source_health{{source=\"{}\",domain=\"{}\",state=\"{}\"}} {}",
                label(&h.source),
                h.domain.as_str(),
                state.as_str(),
                u8::from(h.verdict.state == state)
            );
        }
    }
}

/// The `outcome` label of `sasrelay_events_total` for each dispatch outcome.
const EVENT_OUTCOMES: [(&str, &str); 6] = [
    ("outcome=\"enqueued\"", "enqueued"),
    ("outcome=\"grouped\"", "grouped"),
    ("outcome=\"silenced\"", "silenced"),
    ("outcome=\"muted\"", "muted"),
    ("outcome=\"dropped\"", "dropped"),
    ("outcome=\"duplicate\"", "duplicate"),
];

/// A label value escaped as the exposition format requires (`\`, `"` and newlines).
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Writes `# HELP` and `# TYPE` of one metric.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The exposition text (pure).
pub fn render(
    start_unix: f64,
    polls: &BTreeMap<(String, &'static str), PollFigures>,
    deliveries: &BTreeMap<String, DeliveryFigures>,
    store: Option<&StoreStats>,
    now_ms: i64,
) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "sasrelay_build_info",
        "gauge",
        "The running version.",
    );
    let _ = writeln!(
        out,
        "sasrelay_build_info{{version=\"{}\"}} 1",
        label(env!("CARGO_PKG_VERSION"))
    );
    header(
        &mut out,
        "sasrelay_start_time_seconds",
        "gauge",
        "When the daemon started (unix seconds).",
    );
    let _ = writeln!(out, "sasrelay_start_time_seconds {start_unix:.3}");

    render_polls(&mut out, polls);
    render_poll_problems(&mut out, polls);
    render_deliveries(&mut out, deliveries);
    if let Some(store) = store {
        render_store(&mut out, store, now_ms);
    }
    out
}

/// The series of every poller.
fn render_polls(out: &mut String, polls: &BTreeMap<(String, &'static str), PollFigures>) {
    // One series (or one per extra label) per poller.
    type Values = fn(&PollFigures) -> Vec<(&'static str, Option<String>)>;
    let per_poller: [(&str, &str, &str, Values); 6] = [
        (
            "sasrelay_polls_total",
            "counter",
            "Polls of Security Center, by outcome.",
            |f| {
                vec![
                    ("outcome=\"ok\"", Some(f.ok.to_string())),
                    ("outcome=\"error\"", Some(f.failed.to_string())),
                ]
            },
        ),
        (
            "sasrelay_poll_consecutive_failures",
            "gauge",
            "Failed polls since the last successful one.",
            |f| vec![("", Some(f.consecutive_failures.to_string()))],
        ),
        (
            "sasrelay_last_successful_poll_timestamp_seconds",
            "gauge",
            "When the last successful poll ended (unix seconds; 0 until a poll ever succeeded).",
            |f| {
                vec![(
                    "",
                    Some(format!("{:.3}", f.last_success_unix.unwrap_or(0.0))),
                )]
            },
        ),
        (
            "sasrelay_last_poll_duration_seconds",
            "gauge",
            "How long the last poll took, successful or not.",
            |f| vec![("", Some(format!("{:.3}", f.last_duration.as_secs_f64())))],
        ),
        (
            "sasrelay_findings_observed",
            "gauge",
            "Findings the last successful poll listed.",
            |f| vec![("", Some(f.observed.to_string()))],
        ),
        (
            "sasrelay_events_total",
            "counter",
            "Lifecycle events per (event, sink) target, by what dispatch did with them.",
            |f| {
                EVENT_OUTCOMES
                    .iter()
                    .map(|(label, outcome)| {
                        (
                            *label,
                            Some(f.events.get(outcome).copied().unwrap_or(0).to_string()),
                        )
                    })
                    .collect()
            },
        ),
    ];
    for (name, kind, help, values) in per_poller {
        header(out, name, kind, help);
        for ((s, d), f) in polls {
            for (extra, value) in values(f) {
                let Some(value) = value else { continue };
                let sep = if extra.is_empty() { "" } else { "," };
                let _ = writeln!(
                    out,
                    "{name}{{source=\"{}\",domain=\"{}\"{sep}{extra}}} {value}",
                    label(s),
                    label(d)
                );
            }
        }
    }
}

/// Why polls failed, and records that could not be read: series that exist only once
/// something happened (a reason label per failure kind).
fn render_poll_problems(out: &mut String, polls: &BTreeMap<(String, &'static str), PollFigures>) {
    header(
        out,
        "sasrelay_poll_errors_total",
        "counter",
        "Failed polls, by reason.",
    );
    for ((s, d), f) in polls {
        for ((action, reason), n) in &f.errors {
            let _ = writeln!(
                out,
                "sasrelay_poll_errors_total{{source=\"{}\",domain=\"{}\",action=\"{}\",reason=\"{}\"}} {n}",
                label(s),
                label(d),
                label(action),
                label(reason)
            );
        }
    }
    header(
        out,
        "sasrelay_quarantined_records_total",
        "counter",
        "Sightings of listed records that could not be read (quarantined; the poll went on).",
    );
    for ((s, d), f) in polls {
        let _ = writeln!(
            out,
            "sasrelay_quarantined_records_total{{source=\"{}\",domain=\"{}\"}} {}",
            label(s),
            label(d),
            f.quarantined
        );
    }
}

/// The delivery attempts of every sink.
fn render_deliveries(out: &mut String, deliveries: &BTreeMap<String, DeliveryFigures>) {
    header(
        out,
        "sasrelay_delivery_attempts_total",
        "counter",
        "Delivery attempts per sink, by outcome.",
    );
    for (sink, f) in deliveries {
        let sink = label(sink);
        for (outcome, n) in [
            ("delivered", f.delivered),
            ("retry", f.retried),
            ("dead_letter", f.dead_lettered),
        ] {
            let _ = writeln!(
                out,
                "sasrelay_delivery_attempts_total{{sink=\"{sink}\",outcome=\"{outcome}\"}} {n}"
            );
        }
    }
}

/// The store's figures, read at scrape time.
fn render_store(out: &mut String, store: &StoreStats, now_ms: i64) {
    type SinkValue = fn(&crate::store::SinkStats, i64) -> String;
    let per_sink: [(&str, &str, SinkValue); 3] = [
        (
            "sasrelay_outbox_depth",
            "Entries waiting in the sink's outbox.",
            |s, _| s.depth.to_string(),
        ),
        (
            "sasrelay_outbox_oldest_age_seconds",
            "Age of the oldest waiting entry (0 when the outbox is empty).",
            |s, now_ms| {
                let age = s
                    .oldest_enqueued_at_ms
                    .map_or(0.0, |at| (now_ms.saturating_sub(at)).max(0) as f64 / 1000.0);
                format!("{age:.3}")
            },
        ),
        (
            "sasrelay_dead_letters",
            "Dead letters kept for the sink (see `sasrelay dead-letters`).",
            |s, _| s.dead_letters.to_string(),
        ),
    ];
    for (name, help, value) in per_sink {
        header(out, name, "gauge", help);
        for (sink, s) in &store.sinks {
            let _ = writeln!(
                out,
                "{name}{{sink=\"{}\"}} {}",
                label(sink),
                value(s, now_ms)
            );
        }
    }
    header(
        out,
        "sasrelay_store_size_bytes",
        "gauge",
        "The store's size on disk.",
    );
    let _ = writeln!(out, "sasrelay_store_size_bytes {}", store.size_on_disk);
}

/// Appends the configuration-reload series of `status` (pure).
pub fn render_reloads(out: &mut String, status: &ReloadStatus) {
    header(
        out,
        "sasrelay_config_last_reload_successful",
        "gauge",
        "Whether the last configuration reload succeeded (1 before any).",
    );
    let _ = writeln!(
        out,
        "sasrelay_config_last_reload_successful {}",
        u8::from(status.last_successful())
    );
    header(
        out,
        "sasrelay_config_last_reload_success_timestamp_seconds",
        "gauge",
        "When the configuration in force was read: the start or the last successful reload (unix seconds).",
    );
    let _ = writeln!(
        out,
        "sasrelay_config_last_reload_success_timestamp_seconds {:.3}",
        status.loaded_at_unix
    );
    header(
        out,
        "sasrelay_config_reloads_total",
        "counter",
        "Configuration reloads, by outcome.",
    );
    let _ = writeln!(
        out,
        "sasrelay_config_reloads_total{{outcome=\"success\"}} {}",
        status.succeeded
    );
    let _ = writeln!(
        out,
        "sasrelay_config_reloads_total{{outcome=\"failure\"}} {}",
        status.failed
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::pipeline::dispatch::Dispatched;
    use crate::pipeline::metrics::{DeliveryOutcome, PollFailure};
    use crate::store::SinkStats;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn counts_polls_events_and_deliveries() {
        let m = Metrics::new(1_000.5);
        m.register(
            &[("prod".into(), "alerts"), ("prod".into(), "baseline")],
            &["hook".into()],
        );
        let dispatched = Dispatched {
            enqueued: 3,
            duplicates: 1,
            silenced: 2,
            ..Dispatched::default()
        };
        for _ in 0..2 {
            m.poll_failed(
                "prod",
                "alerts",
                Duration::from_millis(250),
                PollFailure {
                    action: "DescribeSuspEvents",
                    reason: "list_missing",
                    error: "no list",
                },
            );
        }
        m.poll_ok(
            "prod",
            "alerts",
            Duration::from_millis(1500),
            7,
            &dispatched,
        );
        m.poll_ok(
            "prod",
            "alerts",
            Duration::from_millis(1500),
            9,
            &dispatched,
        );
        m.poll_failed(
            "prod",
            "alerts",
            Duration::from_millis(100),
            PollFailure {
                action: "DescribeSuspEvents",
                reason: "server",
                error: "503",
            },
        );
        m.quarantined("prod", "baseline", 2);
        m.delivery("hook", DeliveryOutcome::Retry);
        m.delivery("hook", DeliveryOutcome::Delivered);
        m.delivery("hook", DeliveryOutcome::DeadLetter);
        let mut store = StoreStats {
            size_on_disk: 4096,
            ..StoreStats::default()
        };
        store.sinks.insert(
            "hook".into(),
            SinkStats {
                depth: 2,
                dead_letters: 1,
                oldest_enqueued_at_ms: Some(10_000),
                next_due_at_ms: None,
            },
        );
        let health = [crate::health::SourceHealth {
            source: "prod".into(),
            domain: crate::finding::Domain::Alerts,
            verdict: crate::health::Verdict {
                state: State::Degraded,
                why: String::new(),
            },
            last_error: None,
        }];
        let t = exposition(&m, Some(&store), &health, 70_500);
        for (state, v) in [
            ("starting", 0.0),
            ("ok", 0.0),
            ("degraded", 1.0),
            ("blind", 0.0),
        ] {
            assert_eq!(
                value(
                    &t,
                    &format!(
                        "sasrelay_source_health{{source=\"prod\",domain=\"alerts\",state=\"{state}\"}}"
                    )
                ),
                Some(v),
                "{state}"
            );
        }
        let sd = r#"source="prod",domain="alerts""#;
        assert_eq!(
            value(&t, &format!("sasrelay_polls_total{{{sd},outcome=\"ok\"}}")),
            Some(2.0)
        );
        assert_eq!(
            value(
                &t,
                &format!("sasrelay_polls_total{{{sd},outcome=\"error\"}}")
            ),
            Some(3.0)
        );
        assert_eq!(
            value(&t, &format!("sasrelay_poll_consecutive_failures{{{sd}}}")),
            Some(1.0)
        );
        assert_eq!(
            value(
                &t,
                &format!(
                    "sasrelay_poll_errors_total{{{sd},action=\"DescribeSuspEvents\",reason=\"list_missing\"}}"
                )
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &t,
                &format!(
                    "sasrelay_poll_errors_total{{{sd},action=\"DescribeSuspEvents\",reason=\"server\"}}"
                )
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &t,
                r#"sasrelay_quarantined_records_total{source="prod",domain="baseline"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            value(&t, &format!("sasrelay_last_poll_duration_seconds{{{sd}}}")),
            Some(0.1)
        );
        assert_eq!(
            value(&t, &format!("sasrelay_findings_observed{{{sd}}}")),
            Some(9.0)
        );
        assert_eq!(
            value(
                &t,
                &format!("sasrelay_events_total{{{sd},outcome=\"enqueued\"}}")
            ),
            Some(6.0)
        );
        assert_eq!(
            value(
                &t,
                &format!("sasrelay_events_total{{{sd},outcome=\"duplicate\"}}")
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &t,
                &format!("sasrelay_events_total{{{sd},outcome=\"silenced\"}}")
            ),
            Some(4.0)
        );
        assert_eq!(
            value(
                &t,
                &format!("sasrelay_events_total{{{sd},outcome=\"muted\"}}")
            ),
            Some(0.0)
        );
        assert!(
            value(
                &t,
                &format!("sasrelay_last_successful_poll_timestamp_seconds{{{sd}}}")
            )
            .is_some()
        );
        // A registered poller that has not polled yet shows zeros, its last success too (so
        // `time() - …` alerts on a source that never succeeded).
        let base = r#"source="prod",domain="baseline""#;
        assert_eq!(
            value(
                &t,
                &format!("sasrelay_polls_total{{{base},outcome=\"ok\"}}")
            ),
            Some(0.0)
        );
        assert_eq!(
            value(
                &t,
                &format!("sasrelay_last_successful_poll_timestamp_seconds{{{base}}}")
            ),
            Some(0.0)
        );
        for (outcome, n) in [("delivered", 1.0), ("retry", 1.0), ("dead_letter", 1.0)] {
            assert_eq!(
                value(
                    &t,
                    &format!(
                        "sasrelay_delivery_attempts_total{{sink=\"hook\",outcome=\"{outcome}\"}}"
                    )
                ),
                Some(n)
            );
        }
        assert_eq!(
            value(&t, r#"sasrelay_outbox_depth{sink="hook"}"#),
            Some(2.0)
        );
        assert_eq!(
            value(&t, r#"sasrelay_outbox_oldest_age_seconds{sink="hook"}"#),
            Some(60.5)
        );
        assert_eq!(
            value(&t, r#"sasrelay_dead_letters{sink="hook"}"#),
            Some(1.0)
        );
        assert_eq!(value(&t, "sasrelay_store_size_bytes"), Some(4096.0));
        assert_eq!(value(&t, "sasrelay_start_time_seconds"), Some(1000.5));
    }

    #[test]
    fn every_line_is_well_formed_and_labels_are_escaped() {
        let m = Metrics::new(0.0);
        m.register(&[("we\"ird\\src\nname".into(), "alerts")], &["a\"b".into()]);
        let t = exposition(&m, None, &[], 0);
        assert!(t.contains(r#"source="we\"ird\\src\nname""#), "{t}");
        assert!(t.contains(r#"sink="a\"b""#), "{t}");
        let mut typed = std::collections::BTreeSet::new();
        for line in t.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge"].contains(&kind), "{line}");
                assert!(typed.insert(name.to_string()), "TYPE twice: {line}");
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            // name{labels} value, or name value; the name was typed above.
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(typed.contains(name), "untyped series: {line}");
            let v = line.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "{line}");
        }
        // Without the store's figures, no store series.
        assert!(!t.contains("sasrelay_outbox_depth"));
    }

    #[test]
    fn the_call_budget_is_exposed_by_action() {
        let waits = BTreeMap::from([(
            "DescribeSuspEvents".to_string(),
            Waits {
                calls: 12,
                waited: 5,
                total: std::time::Duration::from_millis(1_250),
            },
        )]);
        let mut t = String::new();
        render_budget(&mut t, &waits);
        assert_eq!(
            value(
                &t,
                r#"sasrelay_sas_calls_total{action="DescribeSuspEvents"}"#
            ),
            Some(12.0)
        );
        assert_eq!(
            value(
                &t,
                r#"sasrelay_sas_call_waits_total{action="DescribeSuspEvents"}"#
            ),
            Some(5.0)
        );
        assert_eq!(
            value(
                &t,
                r#"sasrelay_sas_call_wait_seconds_total{action="DescribeSuspEvents"}"#
            ),
            Some(1.25)
        );
    }

    #[test]
    fn reloads_are_exposed_as_the_last_outcome_and_counters() {
        let mut status = ReloadStatus {
            loaded_at_unix: 1000.5,
            succeeded: 2,
            failed: 1,
            ..ReloadStatus::default()
        };
        let mut t = String::new();
        render_reloads(&mut t, &status);
        assert_eq!(
            value(&t, "sasrelay_config_last_reload_successful"),
            Some(1.0)
        );
        assert_eq!(
            value(&t, "sasrelay_config_last_reload_success_timestamp_seconds"),
            Some(1000.5)
        );
        assert_eq!(
            value(&t, r#"sasrelay_config_reloads_total{outcome="failure"}"#),
            Some(1.0)
        );
        status.last = Some(crate::daemon::reload::ReloadAttempt::default());
        let mut t = String::new();
        render_reloads(&mut t, &status);
        assert_eq!(
            value(&t, "sasrelay_config_last_reload_successful"),
            Some(0.0)
        );
    }
}
