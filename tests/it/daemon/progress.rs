//! Progress per cluster, through the real binary against the simulator: a listing that keeps
//! failing for one cluster (after the client's retries) neither discards nor holds back what
//! the other clusters' listings read. Alerts of the other clusters are delivered while it
//! fails, and its own once it recovers, each exactly once; a vulnerability sweep resolves what
//! left the other clusters' lists and judges nothing about the failing one until it is read.
//! Clusters that keep failing side by side are read last, so they do not stop the read (three
//! in a row do) before the clusters after them.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::*;
use sasrelay::simulator::{Domain, FaultKind, FaultSpec, MAX_FAULT_COUNT, SimHandle};
use serde_json::{Value, json};

/// Failure guard for every wait (a hang becomes a failure, never a pass).
const T: Duration = Duration::from_secs(60);

/// The WARN line of a poll that failed in part.
const FAILED_IN_PART: &str = "Poll failed in part; the rest is recorded, retrying.";

/// A simulator with three clusters and no findings; their ids.
async fn three_clusters() -> (SimHandle, Vec<String>) {
    let sim = quiet_simulator_of(3).await;
    let clusters = sim.clusters().into_iter().map(|c| c.cluster_id).collect();
    (sim, clusters)
}

/// Every call of `action` for `cluster` fails with `InternalError` until the faults are
/// cleared (the client retries each, then gives up on that listing).
fn fail_cluster(sim: &SimHandle, action: &str, cluster: &str) {
    sim.inject_fault(
        FaultSpec::new(FaultKind::InternalError)
            .for_action(action)
            .with_param_value("ClusterId", cluster)
            .times(MAX_FAULT_COUNT),
    )
    .unwrap();
}

/// A config naming `clusters`, reading `domain` every second, `initial_sync = "notify"`.
fn config(
    sim: &SimHandle,
    hook: &Hook,
    dir: &tempfile::TempDir,
    clusters: &[String],
    domain: &str,
) -> std::path::PathBuf {
    let (endpoint, url, state) = (sim.endpoint(), hook.url(), dir.path().join("state"));
    let listed: Vec<String> = clusters.iter().map(|c| format!("\"{c}\"")).collect();
    let source_extra = format!(
        "domains = [\"{domain}\"]\nclusters = [{}]\nwindow_listing = \"per_cluster\"",
        listed.join(", ")
    );
    let poll = format!("{{ {domain} = \"1s\" }}");
    let mut spec = ConfigSpec::new(&endpoint, &url, &state);
    spec.initial_sync = "notify";
    spec.source_extra = &source_extra;
    spec.poll = &poll;
    spec.write(&dir.path().join("sasrelay.toml"))
}

/// Waits for the WARN of a poll that failed in part, naming `cluster`.
async fn wait_failed_in_part(daemon: &Daemon, cluster: &str) {
    daemon
        .wait_log(&format!("a poll failed in part at {cluster}"), T, |v| {
            v["message"] == FAILED_IN_PART
                && v["error"]
                    .as_str()
                    .is_some_and(|e| e.contains(cluster) && e.contains("InternalError"))
        })
        .await;
}

/// Waits for `more` polls failing in part beyond those logged now.
async fn wait_more_failures(daemon: &Daemon, more: usize) {
    let want = daemon.messages(FAILED_IN_PART).len() + more;
    let mut seen = 0;
    daemon
        .wait_log(&format!("{more} more polls failing in part"), T, |v| {
            seen += usize::from(v["message"] == FAILED_IN_PART);
            seen >= want
        })
        .await;
}

/// Whether `r` is a finding's event (not a `sasrelay.health.v1` meta-event: the failing
/// domain goes blind after three intervals, and says so).
fn is_finding(r: &Request) -> bool {
    r.body["schema"] != "sasrelay.health.v1"
}

/// Waits until the finding `id` was delivered as `kind`.
async fn wait_event(hook: &Hook, kind: &str, id: &str) {
    hook.wait_for(&format!("{kind} {id}"), T, |rs| {
        rs.iter()
            .any(|r| r.delivered() && r.kind() == kind && r.finding_id() == id)
    })
    .await
}

/// `(kind, finding id)` of every delivered finding event, after checking each arrived exactly
/// once.
fn delivered(hook: &Hook) -> BTreeSet<(String, String)> {
    hook.with_requests(|requests| {
        assert_each_once(requests);
        requests
            .iter()
            .filter(|r| r.delivered() && is_finding(r))
            .map(|r| (r.kind().to_string(), r.finding_id().to_string()))
            .collect()
    })
}

fn id_of(finding: &Value, key: &str, prefix: &str) -> String {
    format!("{prefix}:{}", finding[key])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_of_other_clusters_flow_while_one_fails_and_its_own_arrive_once_it_recovers() {
    let (sim, clusters) = three_clusters().await;
    let mut alerts: Vec<Vec<String>> = Vec::new();
    for c in &clusters {
        let two = (0..2)
            .map(|_| {
                let a = sim.add_finding(Domain::Alert, Some(c), json!({})).unwrap();
                id_of(&a, "Id", "alert")
            })
            .collect();
        alerts.push(two);
    }
    // The second cluster's listing fails from the start.
    fail_cluster(&sim, "DescribeSuspEvents", &clusters[1]);

    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::spawn(&config(&sim, &hook, &dir, &clusters, "alerts"));

    // The first and third clusters' alerts arrive although the second keeps failing, and so
    // does one raised in the third meanwhile: the failing listing holds nothing back.
    for id in alerts[0].iter().chain(&alerts[2]) {
        wait_event(&hook, "new", id).await;
    }
    wait_failed_in_part(&daemon, &clusters[1]).await;
    let late = sim
        .add_finding(Domain::Alert, Some(&clusters[2]), json!({}))
        .unwrap();
    let late = id_of(&late, "Id", "alert");
    wait_event(&hook, "new", &late).await;
    wait_more_failures(&daemon, 2).await;
    let while_failing: BTreeSet<String> = delivered(&hook).into_iter().map(|(_, id)| id).collect();
    let mut others: BTreeSet<String> = alerts[0].iter().chain(&alerts[2]).cloned().collect();
    others.insert(late.clone());
    assert_eq!(
        while_failing, others,
        "the failing cluster's alerts cannot have been read"
    );
    assert!(
        !sim.pending_faults().is_empty(),
        "the fault must still be failing the second cluster"
    );

    // The second cluster recovers: its alerts (kept as the listing's remainder) arrive, each
    // once, and nothing else is sent again.
    sim.clear_faults();
    for id in &alerts[1] {
        wait_event(&hook, "new", id).await;
    }
    daemon.wait_more_polls_of(&["alerts"], 2, T).await;
    let all: BTreeSet<(String, String)> = alerts
        .iter()
        .flatten()
        .chain([&late])
        .map(|id| ("new".to_string(), id.clone()))
        .collect();
    assert_eq!(delivered(&hook), all);
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_resolves_what_left_the_clusters_it_read_and_nothing_of_the_one_that_failed() {
    let (sim, clusters) = three_clusters().await;
    let vulns: Vec<(i64, String)> = clusters
        .iter()
        .map(|c| {
            let v = sim.add_finding(Domain::Vuln, Some(c), json!({})).unwrap();
            let primary = v["PrimaryId"].as_i64().expect("PrimaryId");
            (primary, id_of(&v, "PrimaryId", "vul"))
        })
        .collect();

    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::spawn(&config(&sim, &hook, &dir, &clusters, "vulnerabilities"));
    hook.wait_delivered(3, T).await;
    daemon.wait_more_polls_of(&["vulnerabilities"], 1, T).await;

    // The first two clusters' vulnerabilities are fixed; the second cluster's listing fails.
    fail_cluster(&sim, "DescribeVulList", &clusters[1]);
    sim.remove_finding(Domain::Vuln, vulns[0].0).unwrap();
    sim.remove_finding(Domain::Vuln, vulns[1].0).unwrap();

    // The first cluster's is resolved (two sweeps agree it is gone) while the second still
    // fails, and the second's is not: its cluster was not read.
    wait_event(&hook, "resolved", &vulns[0].1).await;
    wait_failed_in_part(&daemon, &clusters[1]).await;
    wait_more_failures(&daemon, 2).await;
    assert!(
        !sim.pending_faults().is_empty(),
        "the fault must still be failing the second cluster"
    );
    assert!(
        !delivered(&hook).contains(&("resolved".into(), vulns[1].1.clone())),
        "a cluster whose listing failed was judged"
    );

    // Once the second cluster is read again, its vulnerability resolves too.
    sim.clear_faults();
    wait_event(&hook, "resolved", &vulns[1].1).await;
    daemon.wait_more_polls_of(&["vulnerabilities"], 2, T).await;
    let expected: BTreeSet<(String, String)> = vulns
        .iter()
        .map(|(_, id)| ("new".to_string(), id.clone()))
        .chain(
            vulns[..2]
                .iter()
                .map(|(_, id)| ("resolved".to_string(), id.clone())),
        )
        .collect();
    assert_eq!(delivered(&hook), expected);
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_that_keep_failing_side_by_side_do_not_hold_back_the_ones_after_them() {
    let sim = quiet_simulator_of(5).await;
    let clusters: Vec<String> = sim.clusters().into_iter().map(|c| c.cluster_id).collect();
    // The first three clusters of the configured order fail every poll: three in a row stop
    // a read, so without reading them last the last two would never be read.
    for c in &clusters[..3] {
        fail_cluster(&sim, "DescribeVulList", c);
    }
    let vulns: Vec<String> = clusters[3..]
        .iter()
        .map(|c| {
            let v = sim.add_finding(Domain::Vuln, Some(c), json!({})).unwrap();
            id_of(&v, "PrimaryId", "vul")
        })
        .collect();

    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, url, state) = (sim.endpoint(), hook.url(), dir.path().join("state"));
    let listed: Vec<String> = clusters.iter().map(|c| format!("\"{c}\"")).collect();
    // No retries: a failing listing fails at once, so polls come every second.
    let source_extra = format!(
        "domains = [\"vulnerabilities\"]\nclusters = [{}]\nmax_attempts = 1",
        listed.join(", ")
    );
    let mut spec = ConfigSpec::new(&endpoint, &url, &state);
    spec.initial_sync = "notify";
    spec.source_extra = &source_extra;
    spec.poll = r#"{ vulnerabilities = "1s" }"#;
    let mut daemon = Daemon::spawn(&spec.write(&dir.path().join("sasrelay.toml")));
    for id in &vulns {
        wait_event(&hook, "new", id).await;
    }
    // The failing clusters are still tried every poll.
    let before = daemon.messages(FAILED_IN_PART).len();
    wait_failed_in_part(&daemon, &clusters[0]).await;
    wait_more_failures(&daemon, 2).await;
    assert!(daemon.messages(FAILED_IN_PART).len() >= before + 2);
    assert!(
        !sim.pending_faults().is_empty(),
        "the faults must still be failing the first three clusters"
    );
    let all: BTreeSet<(String, String)> = vulns
        .iter()
        .map(|id| ("new".to_string(), id.clone()))
        .collect();
    assert_eq!(delivered(&hook), all);
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
}
