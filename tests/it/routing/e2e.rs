//! Routing end to end with the real binary: a chat-facing route groups an alert storm by
//! cluster into a handful of digests, every alert in exactly one of them; killing the daemon
//! while a group is collecting loses nothing and sends nothing twice.
//!
//! Synchronisation is on the receiver's state and the daemon's log lines, never on sleeps.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::*;
use sasrelay::simulator::{Domain, SimHandle};
use serde_json::json;

const T: Duration = Duration::from_secs(60);

/// A route that digests every alert by cluster.
fn grouped_route(group_wait: &str, max_group_size: u32) -> String {
    format!(
        r#"[routing]
default = "drop"

[[route]]
name = "chat"
matchers = ['domain="alerts"']
sinks = ["hook"]
group_by = ["cluster"]
group_wait = "{group_wait}"
group_interval = "1m"
max_group_size = {max_group_size}
"#
    )
}

/// Finding ids (`alert:…`) in each digest delivered, by digest id (the webhook-id), counting
/// how often each digest arrived.
fn digests(requests: &[Request]) -> (BTreeMap<String, Vec<String>>, BTreeMap<String, usize>) {
    let mut members = BTreeMap::new();
    let mut arrivals: BTreeMap<String, usize> = BTreeMap::new();
    for r in requests.iter().filter(|r| r.delivered()) {
        assert_eq!(r.body["schema"], "sasrelay.digest.v1", "{}", r.body);
        *arrivals.entry(r.webhook_id.clone()).or_default() += 1;
        let ids: Vec<String> = r.body["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|e| e["finding"]["id"].as_str().map(str::to_string))
            .collect();
        assert_eq!(
            r.body["count"].as_u64(),
            Some(r.body["events"].as_array().unwrap().len() as u64)
        );
        members.insert(r.webhook_id.clone(), ids);
    }
    (members, arrivals)
}

/// How many digests hold each alert id.
fn placements(members: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> = BTreeMap::new();
    for ids in members.values() {
        for id in ids {
            *out.entry(id.clone()).or_default() += 1;
        }
    }
    out
}

fn add_alerts(sim: &SimHandle, cluster: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let a = sim
                .add_finding(Domain::Alert, Some(cluster), json!({}))
                .unwrap();
            format!("alert:{}", a["Id"].as_i64().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_storm_becomes_a_handful_of_digests_with_every_alert_once() {
    let sim = quiet_simulator().await;
    let cluster = sim.clusters()[0].cluster_id.clone();
    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (endpoint, url) = (sim.endpoint(), hook.url());
    let route = grouped_route("3s", 100);
    let mut spec = ConfigSpec::new(&endpoint, &url, &state);
    spec.source_extra = "domains = [\"alerts\"]";
    spec.tail = &route;
    let config = spec.write(&dir.path().join("sasrelay.toml"));

    let mut daemon = Daemon::spawn(&config);
    daemon.wait_more_polls_of(&["alerts"], 1, T).await;
    let alerts = add_alerts(&sim, &cluster, 300);
    hook.wait_for("all 300 alerts in digests", T, |r| {
        placements(&digests(r).0).len() >= 300
    })
    .await;
    daemon.wait_more_polls_of(&["alerts"], 2, T).await;

    let (members, arrivals) = digests(&hook.requests());
    let placed = placements(&members);
    for a in &alerts {
        assert_eq!(placed.get(a), Some(&1), "{a} is not in exactly one digest");
    }
    let alert_digests = members
        .values()
        .filter(|ids| !ids.is_empty())
        .collect::<Vec<_>>();
    // 300 alerts, at most 100 per digest: three digests, not 300 messages.
    assert_eq!(alert_digests.len(), 3, "{:?}", arrivals);
    assert!(alert_digests.iter().all(|ids| ids.len() <= 100));
    assert!(arrivals.values().all(|&n| n == 1), "{arrivals:?}");
    let one = hook
        .requests()
        .into_iter()
        .find(|r| r.body["count"] == 100)
        .expect("a full digest");
    assert_eq!(one.body["route"], "chat");
    assert_eq!(one.body["group"]["cluster"], cluster.as_str());
    assert!(
        one.body["headline"]
            .as_str()
            .unwrap()
            .starts_with("100 new alerts in cluster "),
        "{}",
        one.body["headline"]
    );
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_while_a_group_collects_loses_nothing_and_sends_nothing_twice() {
    let sim = quiet_simulator().await;
    let cluster = sim.clusters()[0].cluster_id.clone();
    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (endpoint, url) = (sim.endpoint(), hook.url());
    // Long enough that the kill below lands while the group waits.
    let route = grouped_route("4s", 1000);
    let mut spec = ConfigSpec::new(&endpoint, &url, &state);
    spec.source_extra = "domains = [\"alerts\"]";
    spec.tail = &route;
    let config = spec.write(&dir.path().join("sasrelay.toml"));

    let mut daemon = Daemon::spawn(&config);
    daemon.wait_more_polls_of(&["alerts"], 1, T).await;
    let alerts = add_alerts(&sim, &cluster, 150);
    // Polls that grouped them are durable once they logged "Poll done."; wait until all 150
    // (plus the first-start summary, grouped in its own group) are in groups.
    let mut grouped = 0;
    daemon
        .wait_log("150 alerts grouped", T, |v| {
            if v["message"] == "Poll done." {
                grouped += v["grouped"].as_u64().unwrap_or(0);
            }
            grouped > 150
        })
        .await;
    assert!(
        !hook
            .requests()
            .iter()
            .any(|r| r.body["count"].as_u64().unwrap_or(0) > 1),
        "the alert group must still be collecting when the daemon is killed"
    );
    daemon.kill9().await;
    let before_restart = hook.count();

    let mut daemon = Daemon::spawn(&config);
    hook.wait_for("all 150 alerts in digests", T, |r| {
        placements(&digests(r).0).len() >= 150
    })
    .await;
    daemon.wait_more_polls_of(&["alerts"], 2, T).await;
    let (members, arrivals) = digests(&hook.requests());
    let placed = placements(&members);
    for a in &alerts {
        assert_eq!(placed.get(a), Some(&1), "{a} is not in exactly one digest");
    }
    assert!(
        arrivals.values().all(|&n| n == 1),
        "a digest arrived twice: {arrivals:?}"
    );
    println!(
        "kill during group_wait: {grouped} grouped before the kill, {before_restart} deliveries before the restart, {} digests after",
        members.len()
    );
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
}
