//! Reminders on time, through the real binary: a route with `repeat_interval = "8s"` sends its
//! first reminder about a finding still open within a second of the interval after the
//! delivery (it was 16–26 s) (the reminder dispatch stores wakes the grouper, which would otherwise sleep up
//! to half a minute), and the next ones an interval apart.

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
