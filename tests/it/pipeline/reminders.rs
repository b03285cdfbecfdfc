//! `repeat_interval`: a route that delivered a new finding reminds about it while it stays
//! open — through the same route and sink, with a fresh idempotency key each time — holds
//! reminders back while a silence matches, and stops once the finding is resolved. What a
//! silence or mute window held is sent when it ends, through the same route, if its finding
//! is still open (and a `resolved` too where `send_resolved_after_silence` asks).
//! In process against a real store; time is a parameter.

use std::path::Path;
use std::sync::Arc;

use sasrelay::config::parse;
use sasrelay::event::EventSwitches;
use sasrelay::event::{Event, EventKind, Payload};
use sasrelay::finding::Domain;
use sasrelay::pipeline::dispatch::{Dispatched, Dispatcher, Silences, SinkHandle};
use sasrelay::pipeline::lifecycle::{self, Coverage};
use sasrelay::record::RecordStatus;
use sasrelay::routing::{Silence, parse_matchers, to_timestamp};
use sasrelay::sinks::Sink;
use sasrelay::store::Store;
use time::{Duration, OffsetDateTime};
use tokio::sync::Notify;

const CONFIG: &str = r#"
[[source]]
# The simulator has no quota unless a test sets one; tests poll every second.
calls_per_second = 50
name = "prod"
region = "cn-hangzhou"
credentials = { type = "access_key", access_key_id = "LTAI", access_key_secret = { env = "UNUSED_SECRET" } }

[[sink]]
name = "chat"
type = "stdout"

[[sink]]
name = "log"
type = "stdout"

[routing]
default_sinks = ["log"]

[[route]]
name = "unhandled"
matchers = ['domain="alerts"', 'severity>=high']
sinks = ["chat"]
repeat_interval = "4h"
"#;

pub(super) struct Bench {
    pub(super) store: Store,
    pub(super) dispatcher: Dispatcher,
    silences: Arc<Silences>,
    _dir: tempfile::TempDir,
}

pub(super) fn bench() -> Bench {
    bench_with(CONFIG)
}

fn bench_with(config: &str) -> Bench {
    let settings = parse(Path::new("t.toml"), config).expect("config");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let sinks = settings
        .sinks
        .iter()
        .map(|c| {
            let sink = Arc::new(Sink::build(c).unwrap());
            (
                c.name.clone(),
                SinkHandle {
                    sink,
                    wake: Arc::new(Notify::new()),
                },
            )
        })
        .collect();
    let silences = Arc::new(Silences::load(store.clone()).unwrap());
    let dispatcher = Dispatcher::new(
        settings.router.clone(),
        sinks,
        silences.clone(),
        store.clone(),
        Arc::new(Notify::new()),
    );
    Bench {
        store,
        dispatcher,
        silences,
        _dir: dir,
    }
}

/// A high alert as the poller would produce it: record written, event dispatched (and
/// delivered: no silence holds it).
pub(super) fn new_alert(b: &Bench, now: OffsetDateTime) -> (String, Event) {
    let (fingerprint, event, out) = dispatched_alert(b, now);
    assert_eq!((out.enqueued, out.reminders_started), (1, 1));
    (fingerprint, event)
}

/// A high alert as the poller would produce it: record written, event dispatched; what
/// dispatch did.
fn dispatched_alert(b: &Bench, now: OffsetDateTime) -> (String, Event, Dispatched) {
    let sample: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/samples/DescribeSuspEvents.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let item = sasrelay::sas::models::Item::from_value(sample["SuspEvents"][0].clone()).unwrap();
    let finding = sasrelay::sas::normalise::normalise_alert(
        &sasrelay::sas::normalise::NormaliseContext::new("prod", "cn-hangzhou"),
        item,
    );
    assert!(finding.severity >= sasrelay::finding::Severity::High);
    let mut diff = lifecycle::diff(
        vec![finding],
        &Default::default(),
        Coverage::Window,
        EventSwitches::default(),
        false,
        now,
    );
    let change = diff.changes.remove(0);
    b.store
        .put_record("prod", Domain::Alerts, &change.fingerprint, &change.record)
        .unwrap();
    let event = change.event.unwrap();
    let mut out = Dispatched::default();
    b.dispatcher
        .dispatch(event.clone(), Some(change.record.generation), now, &mut out)
        .unwrap();
    (change.fingerprint, event, out)
}

/// Events of `kind` waiting in `sink`'s outbox.
pub(super) fn waiting(b: &Bench, sink: &str, kind: EventKind) -> Vec<Event> {
    b.store
        .due(sink, i64::MAX, 100)
        .unwrap()
        .into_iter()
        .filter_map(|(_, e)| match e.payload {
            Payload::Event(e) if e.kind == kind => Some(*e),
            _ => None,
        })
        .collect()
}

/// Reminder events waiting in `sink`'s outbox.
fn reminders(b: &Bench, sink: &str) -> Vec<Event> {
    waiting(b, sink, EventKind::Reminder)
}

#[test]
fn a_still_open_finding_is_reminded_every_repeat_interval_until_resolved() {
    let b = bench();
    let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let (fp, event) = new_alert(&b, t0);

    assert_eq!(
        b.dispatcher
            .remind_due(t0 + Duration::minutes(239))
            .unwrap()
            .reminded,
        0
    );
    assert_eq!(
        b.dispatcher
            .remind_due(t0 + Duration::hours(4))
            .unwrap()
            .reminded,
        1
    );
    // Due again only an interval later.
    assert_eq!(
        b.dispatcher
            .remind_due(t0 + Duration::hours(5))
            .unwrap()
            .reminded,
        0
    );
    assert_eq!(
        b.dispatcher
            .remind_due(t0 + Duration::hours(8))
            .unwrap()
            .reminded,
        1
    );
    let sent = reminders(&b, "chat");
    assert_eq!(sent.len(), 2);
    assert_ne!(
        sent[0].id, sent[1].id,
        "each reminder has its own idempotency key"
    );
    assert_eq!(
        sent[0].finding.as_ref().unwrap().fingerprint,
        event.finding.as_ref().unwrap().fingerprint
    );
    assert!(
        reminders(&b, "log").is_empty(),
        "only the route with repeat_interval reminds"
    );

    // The alert occurs again: its recurring event restarts the reminder, and the next
    // reminder is a new message (not taken for a repeat of the first one).
    let recurring = Event::about(
        EventKind::Recurring,
        event.finding.clone().unwrap(),
        1,
        "second-occurrence",
        None,
        t0 + Duration::hours(9),
    );
    let mut out = Dispatched::default();
    b.dispatcher
        .dispatch(recurring, Some(1), t0 + Duration::hours(9), &mut out)
        .unwrap();
    assert_eq!(out.reminders_started, 1);
    assert_eq!(
        b.dispatcher
            .remind_due(t0 + Duration::hours(13))
            .unwrap()
            .reminded,
        1
    );
    let sent = reminders(&b, "chat");
    assert_eq!(
        sent.len(),
        3,
        "the reminder after the recurrence was delivered"
    );
    let ids: std::collections::BTreeSet<&str> = sent.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 3);

    // Resolved: the reminder is dropped, nothing more is sent.
    let mut record = b
        .store
        .get_record("prod", Domain::Alerts, &fp)
        .unwrap()
        .unwrap();
    record.status = RecordStatus::Resolved;
    b.store
        .put_record("prod", Domain::Alerts, &fp, &record)
        .unwrap();
    assert_eq!(
        b.dispatcher
            .remind_due(t0 + Duration::hours(18))
            .unwrap()
            .reminded,
        0
    );
    assert_eq!(b.store.next_reminder_due(), None);
}

#[tokio::test]
async fn a_silence_holds_reminders_back_without_losing_the_schedule() {
    let b = bench();
    let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    new_alert(&b, t0);
    let silence = Silence::new(
        "s1",
        parse_matchers(r#"domain="alerts""#).unwrap(),
        to_timestamp(t0),
        to_timestamp(t0 + Duration::hours(6)),
        "ops",
        "maintenance",
        to_timestamp(t0),
    )
    .unwrap();
    b.silences.add(silence).await.unwrap();
    assert_eq!(
        b.dispatcher
            .remind_due(t0 + Duration::hours(4))
            .unwrap()
            .reminded,
        0
    );
    assert!(reminders(&b, "chat").is_empty());
    // The silence is over by the next interval: the reminder goes out, numbered first.
    assert_eq!(
        b.dispatcher
            .remind_due(t0 + Duration::hours(8))
            .unwrap()
            .reminded,
        1
    );
    assert_eq!(reminders(&b, "chat").len(), 1);
}

/// `out` released `event` alone, into `chat`'s outbox, its reminder starting.
fn assert_sent_once(b: &Bench, out: &Dispatched, event: &Event) {
    assert_eq!(
        (out.released, out.enqueued, out.reminders_started),
        (1, 1, 1)
    );
    let sent = news(b, "chat");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].id, event.id);
}

/// New events (not reminders) waiting in `sink`'s outbox.
fn news(b: &Bench, sink: &str) -> Vec<Event> {
    waiting(b, sink, EventKind::New)
}

fn alert_silence(id: &str, from: OffsetDateTime, until: OffsetDateTime) -> Silence {
    Silence::new(
        id,
        parse_matchers(r#"domain="alerts""#).unwrap(),
        to_timestamp(from),
        to_timestamp(until),
        "ops",
        "maintenance",
        to_timestamp(from),
    )
    .unwrap()
}

#[tokio::test]
async fn a_silence_ending_on_time_sends_what_it_held_once_through_its_route() {
    let b = bench();
    let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    // Two silences overlap: the first ends after two hours, the second after three.
    b.silences
        .add(alert_silence("s1", t0, t0 + Duration::hours(2)))
        .await
        .unwrap();
    b.silences
        .add(alert_silence("s2", t0, t0 + Duration::hours(3)))
        .await
        .unwrap();
    let (_, event, out) = dispatched_alert(&b, t0);
    assert_eq!((out.enqueued, out.silenced), (0, 1));
    assert_eq!(b.store.held_count("s1").unwrap(), 1);
    let release = |at| b.dispatcher.release_ended_holds(at).unwrap();

    // Nothing goes while it holds.
    assert_eq!(release(t0 + Duration::hours(1)).released, 0);
    // The first ends: the event goes on, held by the second, still in force.
    let out = release(t0 + Duration::minutes(150));
    assert_eq!((out.released, out.silenced, out.enqueued), (1, 1, 0));
    assert_eq!(b.store.held_count("s1").unwrap(), 0);
    assert_eq!(b.store.held_count("s2").unwrap(), 1);
    assert!(news(&b, "chat").is_empty());
    assert_eq!(b.store.next_reminder_due(), None);
    // The second ends: the event reaches its route's sink, with its id, and its reminder
    // starts from then.
    let end = t0 + Duration::minutes(200);
    assert_sent_once(&b, &release(end), &event);
    assert_eq!(
        b.store.next_reminder_due(),
        Some((end + Duration::hours(4)).unix_timestamp() * 1000)
    );
    // Once: nothing is held any more.
    assert_eq!(release(end + Duration::hours(1)), Dispatched::default());
    assert_eq!(news(&b, "chat").len(), 1);
}

#[tokio::test]
async fn a_silence_lets_go_the_events_of_findings_that_closed_while_it_held() {
    let b = bench();
    let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    b.silences
        .add(alert_silence("s1", t0, t0 + Duration::hours(2)))
        .await
        .unwrap();
    let (fp, _, _) = dispatched_alert(&b, t0);
    // The alert is handled while the silence holds its `new`.
    let mut record = b
        .store
        .get_record("prod", Domain::Alerts, &fp)
        .unwrap()
        .unwrap();
    record.status = RecordStatus::Resolved;
    b.store
        .put_record("prod", Domain::Alerts, &fp, &record)
        .unwrap();
    let out = b
        .dispatcher
        .release_ended_holds(t0 + Duration::hours(3))
        .unwrap();
    assert_eq!((out.released, out.let_go, out.enqueued), (0, 1, 0));
    assert_eq!(b.store.held_count("s1").unwrap(), 0);
    assert!(news(&b, "chat").is_empty());
}

/// A mute window holds what it keeps back like a silence (README, "Mute windows"): when the
/// window ends, a still-open finding goes through its route once, its reminder starting then.
#[tokio::test]
async fn a_mute_window_sends_what_it_held_when_it_ends() {
    let config = format!(
        "{CONFIG}\n[[time_interval]]\nname = \"two-to-four\"\n[[time_interval.intervals]]\ntimes = [{{ start_time = \"02:00\", end_time = \"04:00\" }}]\nlocation = \"UTC\"\n"
    )
    .replace(
        "repeat_interval = \"4h\"",
        "repeat_interval = \"4h\"\nmute_time_intervals = [\"two-to-four\"]",
    );
    let b = bench_with(&config);
    // 03:00 UTC: inside the window.
    let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000 - 1_800_000_000 % 86_400 + 3 * 3600)
        .unwrap();
    let (_, event, out) = dispatched_alert(&b, t0);
    assert_eq!((out.enqueued, out.muted, out.silenced), (0, 1, 0));
    assert_eq!(b.store.suppressed().unwrap().len(), 1);
    assert_eq!(b.store.held_count("mute:two-to-four").unwrap(), 1);
    // The grouper looks again on the next whole minute while a window holds something.
    let t0_ms = t0.unix_timestamp() * 1000;
    let look = b.dispatcher.next_window_look(t0_ms + 1_000).unwrap();
    assert!(look > t0_ms + 1_000 && look <= t0_ms + 61_000, "{look}");
    let release = |at| b.dispatcher.release_ended_holds(at).unwrap();
    // Still inside the window: nothing goes.
    assert_eq!(release(t0 + Duration::minutes(59)), Dispatched::default());
    assert!(news(&b, "chat").is_empty());
    // 04:00: the window has ended; the event goes once, its reminder starting now.
    let end = t0 + Duration::hours(1);
    assert_sent_once(&b, &release(end), &event);
    assert_eq!(b.store.held_count("mute:two-to-four").unwrap(), 0);
    assert_eq!(b.dispatcher.next_window_look(t0_ms), None);
    assert_eq!(release(end + Duration::hours(1)), Dispatched::default());
    assert_eq!(news(&b, "chat").len(), 1);
}

/// A noisy alert recurring all through a silence is one message at its end, not one per
/// recurrence: its held `new` if the silence caught that, else its latest `recurring`.
#[tokio::test]
async fn a_silence_sends_one_message_per_finding_not_one_per_recurrence() {
    for new_held in [true, false] {
        let b = bench();
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let from = if new_held {
            t0
        } else {
            t0 + Duration::minutes(5)
        };
        b.silences
            .add(alert_silence("s1", from, t0 + Duration::hours(2)))
            .await
            .unwrap();
        let (fp, new, out) = dispatched_alert(&b, t0 + Duration::minutes(1));
        assert_eq!(out.silenced, usize::from(new_held));
        let generation = b
            .store
            .get_record("prod", Domain::Alerts, &fp)
            .unwrap()
            .unwrap()
            .generation;
        let mut recurrences = Vec::new();
        for n in 1..=5 {
            let at = t0 + Duration::minutes(10 * n);
            let e = Event::about(
                EventKind::Recurring,
                new.finding.clone().unwrap(),
                generation,
                &format!("occurrence {n}"),
                None,
                at,
            );
            let mut out = Dispatched::default();
            b.dispatcher
                .dispatch(e.clone(), Some(generation), at, &mut out)
                .unwrap();
            assert_eq!(out.silenced, 1);
            recurrences.push(e);
        }
        let out = b
            .dispatcher
            .release_ended_holds(t0 + Duration::hours(3))
            .unwrap();
        let held = 5 + usize::from(new_held);
        assert_eq!(
            (out.released, out.folded),
            (1, held - 1),
            "new held: {new_held}"
        );
        assert_eq!(b.store.held_count("s1").unwrap(), 0);
        let sent: Vec<String> = b
            .store
            .due("chat", i64::MAX, 100)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.payload.id().to_string())
            .collect();
        let expected = if new_held {
            &new.id
        } else {
            &recurrences[4].id
        };
        // Without the silence the `new` went out at once; after it, exactly the one chosen.
        let want: Vec<&String> = if new_held {
            vec![expected]
        } else {
            vec![&new.id, expected]
        };
        let mut sent_sorted = sent.clone();
        sent_sorted.sort();
        let mut want_sorted: Vec<String> = want.into_iter().cloned().collect();
        want_sorted.sort();
        assert_eq!(sent_sorted, want_sorted, "new held: {new_held}");
    }
}

/// `chat`'s finding resolves while a silence holds: its `resolved` event, dispatched as the
/// poller would.
fn resolve_under_silence(b: &Bench, fp: &str, new: &Event, at: OffsetDateTime) -> Dispatched {
    let mut record = b
        .store
        .get_record("prod", Domain::Alerts, fp)
        .unwrap()
        .unwrap();
    record.status = RecordStatus::Resolved;
    b.store
        .put_record("prod", Domain::Alerts, fp, &record)
        .unwrap();
    let resolved = Event::about(
        EventKind::Resolved,
        new.finding.clone().unwrap(),
        record.generation,
        "",
        Some(sasrelay::finding::Resolution::Handled),
        at,
    );
    let mut out = Dispatched::default();
    b.dispatcher
        .dispatch(resolved, Some(record.generation), at, &mut out)
        .unwrap();
    out
}

/// `send_resolved_after_silence`: a finding announced before the silence and resolved under
/// it gets its `resolved` at the silence's end (so a PagerDuty incident closes) — only on
/// a sink that asks, and never for a finding the sink never heard of.
#[tokio::test]
async fn a_resolved_held_by_a_silence_is_sent_after_it_only_where_asked_and_announced() {
    let config = CONFIG.replace(
        "name = \"chat\"\ntype = \"stdout\"",
        "name = \"chat\"\ntype = \"stdout\"\nsend_resolved_after_silence = true",
    );
    let resolved = |b: &Bench| waiting(b, "chat", EventKind::Resolved);
    for (asks, announced) in [(true, true), (false, true), (true, false)] {
        let b = bench_with(if asks { &config } else { CONFIG });
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let start = if announced {
            t0 + Duration::minutes(10)
        } else {
            t0
        };
        b.silences
            .add(alert_silence("s1", start, t0 + Duration::hours(2)))
            .await
            .unwrap();
        let (fp, new, out) = dispatched_alert(&b, t0 + Duration::minutes(1));
        assert_eq!(out.enqueued, usize::from(announced), "{asks} {announced}");
        let out = resolve_under_silence(&b, &fp, &new, t0 + Duration::minutes(30));
        assert_eq!(out.silenced, 1);
        let out = b
            .dispatcher
            .release_ended_holds(t0 + Duration::hours(3))
            .unwrap();
        let sent = usize::from(asks && announced);
        assert_eq!(
            (out.released, out.enqueued),
            (sent, sent),
            "asks {asks}, announced {announced}"
        );
        assert_eq!(resolved(&b).len(), sent);
        assert_eq!(b.store.held_count("s1").unwrap(), 0);
    }
}

#[test]
fn reminders_survive_a_reopen_of_the_store() {
    let dir;
    let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    {
        let b = bench();
        new_alert(&b, t0);
        assert!(b.store.next_reminder_due().is_some());
        dir = b._dir;
        drop(b.dispatcher);
        drop(b.silences);
        drop(b.store);
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.next_reminder_due(),
        Some((t0 + Duration::hours(4)).unix_timestamp() * 1000)
    );
}
