//! What operators expect of reminders and idempotency keys, through the real binary.
//!
//! Reminders on time: a route with `repeat_interval = "8s"` sends its first reminder about a
//! finding still open within a second of the interval after the delivery (it was 16–26 s:
//! the reminder dispatch stores now wakes the grouper, which would otherwise sleep up to half
//! a minute), and the next ones an interval apart. And one `webhook-id` per event and sink,
//! stable across a retry.

use std::time::Duration;

use crate::support::*;
use sasrelay::simulator::Domain;
use serde_json::json;

/// Failure guard for every wait (a hang becomes a failure, never a pass).
const T: Duration = Duration::from_secs(60);

const ROUTE: &str = r#"
[[route]]
name = "remind"
matchers = ['domain="alerts"']
sinks = ["hook"]
repeat_interval = "8s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_reminder_comes_one_repeat_interval_after_the_delivery() {
    let sim = quiet_simulator().await;
    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, url, state) = (sim.endpoint(), hook.url(), dir.path().join("state"));
    let mut spec = ConfigSpec::new(&endpoint, &url, &state);
    spec.source_extra = r#"domains = ["alerts"]"#;
    spec.poll = r#"{ alerts = "1s" }"#;
    spec.tail = ROUTE;
    let config = spec.write(&dir.path().join("sasrelay.toml"));
    let mut daemon = Daemon::spawn(&config);
    // The first start's summary, then a quiet poll: the grouper has gone to sleep.
    hook.wait_delivered(1, T).await;
    daemon.wait_more_polls_of(&["alerts"], 2, T).await;

    let alert = sim.add_finding(Domain::Alert, None, json!({})).unwrap();
    let id = format!("alert:{}", alert["Id"]);
    let reminders = |rs: &[Request], n: usize| {
        rs.iter()
            .filter(|r| r.delivered() && r.kind() == "reminder" && r.finding_id() == id)
            .count()
            >= n
    };
    hook.wait_for("two reminders", T, |rs| reminders(rs, 2))
        .await;
    let requests = hook.requests();
    let at = |kind: &str| -> Vec<std::time::Instant> {
        requests
            .iter()
            .filter(|r| r.delivered() && r.kind() == kind && r.finding_id() == id)
            .map(|r| r.at)
            .collect()
    };
    let (news, reminded) = (at("new"), at("reminder"));
    assert_eq!(news.len(), 1);
    let first = reminded[0] - news[0];
    let second = reminded[1] - reminded[0];
    eprintln!("first reminder {first:?} after the delivery, the second {second:?} later");
    // Due an interval after the dispatch, a moment before the delivery itself.
    assert!(
        first > Duration::from_secs(7) && first < Duration::from_secs(9),
        "the first reminder came {first:?} after the delivery"
    );
    assert!(
        second >= Duration::from_millis(7_500) && second < Duration::from_secs(9),
        "the second reminder came {second:?} after the first"
    );
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
}

/// One event routed to two webhook sinks behind one receiver through `continue`: a
/// `webhook-id` per sink (so the receiver, deduplicating by it, keeps both), each the same on
/// the retry of a failed attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_at_two_sinks_carries_a_webhook_id_per_sink_stable_across_a_retry() {
    let sim = quiet_simulator().await;
    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, url, state) = (sim.endpoint(), hook.url(), dir.path().join("state"));
    // A route sends alerts to `hook` and goes on (`continue`) to the next, to `twin`.
    let tail = format!(
        "[[sink]]\nname = \"twin\"\ntype = \"webhook\"\nurl = \"{url}\"\n\n[[route]]\nname = \"soc\"\nmatchers = ['domain=\"alerts\"']\nsinks = [\"hook\"]\ncontinue = true\n\n[[route]]\nname = \"archive\"\nmatchers = ['domain=\"alerts\"']\nsinks = [\"twin\"]\n"
    );
    let mut spec = ConfigSpec::new(&endpoint, &url, &state);
    spec.source_extra = r#"domains = ["alerts"]"#;
    spec.poll = r#"{ alerts = "1s" }"#;
    spec.initial_sync = "notify";
    spec.tail = &tail;
    let config = spec.write(&dir.path().join("sasrelay.toml"));
    // The first attempt of each sink fails: each is retried.
    hook.script([Reply::Status(503, "busy"), Reply::Status(503, "busy")]);
    let mut daemon = Daemon::spawn(&config);
    let alert = sim.add_finding(Domain::Alert, None, json!({})).unwrap();
    let id = format!("alert:{}", alert["Id"]);
    hook.wait_for("the alert at both sinks", T, |rs| {
        rs.iter()
            .filter(|r| r.delivered() && r.finding_id() == id)
            .count()
            >= 2
    })
    .await;
    let requests: Vec<Request> = hook
        .requests()
        .into_iter()
        .filter(|r| r.finding_id() == id)
        .collect();
    assert_eq!(requests.len(), 4, "two failed attempts, two deliveries");
    let event = requests[0].body["id"].as_str().unwrap().to_string();
    assert!(requests.iter().all(|r| r.body["id"] == event.as_str()));
    let ids: std::collections::BTreeMap<&str, usize> =
        requests.iter().fold(Default::default(), |mut m, r| {
            *m.entry(r.webhook_id.as_str()).or_default() += 1;
            m
        });
    assert_eq!(ids.len(), 2, "one webhook-id per sink: {ids:?}");
    assert!(
        ids.values().all(|n| *n == 2),
        "the same on the retry: {ids:?}"
    );
    for sink in ["hook", "twin"] {
        let expected = sasrelay::sinks::webhook::delivery_id(&event, sink);
        assert!(ids.contains_key(expected.as_str()), "{sink}: {ids:?}");
    }
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
}
