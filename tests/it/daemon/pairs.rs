//! Baseline sweeps list only the risk × asset pairs whose counts changed, through the real
//! binary against the simulator: after the first sweep an unchanged pair costs no
//! `DescribeCheckWarnings` call, a pair whose counts moved costs one, a check that passes in
//! a pair skipped until then resolves once, nothing resolves while its pair goes unlisted,
//! the rows of pairs that left the machine list are removed, and a restart keeps using the
//! rows of the last run.
//!
//! Both kinds of source: account-wide (every poll sweeps the whole account, so without the
//! skip every poll lists every pair) and listed clusters (the statistics probe sweeps only
//! the cluster that changed, and every sixth interval all of them).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::*;
use sasrelay::simulator::{Domain, SimHandle};
use serde_json::json;

/// Failure guard for every wait (a hang becomes a failure, never a pass).
const T: Duration = Duration::from_secs(60);

const CHECKS: &str = "DescribeCheckWarnings";

/// The host baseline every warning here fails (no container: one listing per pair).
const RISK: i64 = 120;

/// Adds a failing check of [`RISK`] on `uuid` in `cluster`; its finding id.
fn fail(sim: &SimHandle, cluster: &str, uuid: &str) -> (i64, String) {
    let w = sim
        .add_finding(
            Domain::Baseline,
            Some(cluster),
            json!({ "RiskId": RISK, "Uuid": uuid, "Level": "high" }),
        )
        .unwrap();
    let id = w["CheckWarningId"].as_i64().expect("CheckWarningId");
    (id, format!("baseline:{id}"))
}

/// `(kind, finding id)` of every delivered finding event, after checking each arrived once.
fn delivered(hook: &Hook) -> BTreeSet<(String, String)> {
    hook.with_requests(|requests| {
        assert_each_once(requests);
        requests
            .iter()
            .filter(|r| r.delivered() && r.body["schema"] != "sasrelay.health.v1")
            .map(|r| (r.kind().to_string(), r.finding_id().to_string()))
            .collect()
    })
}

async fn wait_event(hook: &Hook, kind: &str, id: &str) {
    hook.wait_for(&format!("{kind} {id}"), T, |rs| {
        rs.iter()
            .any(|r| r.delivered() && r.kind() == kind && r.finding_id() == id)
    })
    .await
}

/// Three polls (one started after the call) that list no pair: the count of
/// `DescribeCheckWarnings` is what it was before them.
async fn assert_quiet_polls(daemon: &Daemon, sim: &SimHandle, calls: u64, what: &str) {
    daemon.wait_more_polls_of(&["baseline"], 3, T).await;
    assert_eq!(sim.call_count(CHECKS), calls, "{what}");
}

/// Three clusters × two nodes, one failing check per node; the first pair holds a second.
async fn scenario(listed: bool) {
    let sim = quiet_simulator_of(3).await;
    let clusters = sim.clusters();
    let mut pairs = Vec::new();
    let mut ids = Vec::new();
    for c in &clusters {
        for n in &c.nodes[..2] {
            ids.push(fail(&sim, &c.cluster_id, &n.uuid));
            pairs.push((c.cluster_id.clone(), n.uuid.clone()));
        }
    }
    let (fixed, fixed_id) = fail(&sim, &pairs[0].0, &pairs[0].1);
    ids.push((fixed, fixed_id.clone()));

    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, url, state) = (sim.endpoint(), hook.url(), dir.path().join("state"));
    let cluster_ids: Vec<String> = clusters
        .iter()
        .map(|c| format!("\"{}\"", c.cluster_id))
        .collect();
    // Vulnerabilities too: their sweeps of the same scopes must leave the pairs' rows be.
    let source_extra = if listed {
        format!(
            "domains = [\"vulnerabilities\", \"baseline\"]\nclusters = [{}]",
            cluster_ids.join(", ")
        )
    } else {
        r#"domains = ["vulnerabilities", "baseline"]"#.to_string()
    };
    let mut spec = ConfigSpec::new(&endpoint, &url, &state);
    spec.initial_sync = "notify";
    spec.source_extra = &source_extra;
    spec.poll = r#"{ vulnerabilities = "1s", baseline = "1s" }"#;
    let config = spec.write(&dir.path().join("sasrelay.toml"));

    // The first sweep lists every pair (seven findings on six pairs).
    let mut daemon = Daemon::spawn(&config);
    hook.wait_delivered(ids.len(), T).await;
    daemon.wait_more_polls_of(&["baseline"], 2, T).await;
    let first = sim.call_count(CHECKS);
    assert!(first >= 6, "the first sweep lists every pair: {first}");

    // Unchanged pairs are not listed again, and nothing they hold resolves meanwhile (two
    // sweeps missing a finding would resolve it).
    assert_quiet_polls(&daemon, &sim, first, "unchanged pairs were listed again").await;
    let new: BTreeSet<(String, String)> = ids
        .iter()
        .map(|(_, id)| ("new".to_string(), id.clone()))
        .collect();
    assert_eq!(
        delivered(&hook),
        new,
        "only the first sweep's findings, once"
    );

    // A check failing on the fourth pair moves that pair's counts: one listing, and its new
    // finding is sent.
    let (_, added) = fail(&sim, &pairs[3].0, &pairs[3].1);
    wait_event(&hook, "new", &added).await;
    assert_quiet_polls(&daemon, &sim, first + 1, "one changed pair, one listing").await;

    // The second check of the first pair (skipped since the first sweep) passes: its pair is
    // listed once, and it resolves once.
    sim.set_status(Domain::Baseline, fixed, 3).unwrap();
    wait_event(&hook, "resolved", &fixed_id).await;
    assert_quiet_polls(&daemon, &sim, first + 2, "one passed check, one listing").await;

    // The last pair's only check is deleted: the pair leaves the machine list (no listing),
    // its finding resolves as gone, and its row goes.
    let (gone, gone_id) = ids[5].clone();
    sim.remove_finding(Domain::Baseline, gone).unwrap();
    wait_event(&hook, "resolved", &gone_id).await;
    daemon.wait_more_polls_of(&["baseline"], 2, T).await;
    assert_eq!(
        sim.call_count(CHECKS),
        first + 2,
        "a pair gone is not listed"
    );
    let mut expected = new.clone();
    expected.insert(("new".into(), added.clone()));
    expected.insert(("resolved".into(), fixed_id.clone()));
    expected.insert(("resolved".into(), gone_id.clone()));
    assert_eq!(delivered(&hook), expected, "nothing else resolved");
    assert_eq!(daemon.terminate(T).await.code(), Some(0));

    // The rows as kept: five pairs, each with its findings' fingerprints.
    {
        let store = sasrelay::store::Store::open(&state).unwrap();
        let row = |i: usize| {
            let (c, u) = &pairs[i];
            let scope = if listed { c.as_str() } else { "" };
            let r = store
                .pair("sim", scope, [&RISK.to_string(), u, ""])
                .unwrap();
            r.map(|r| r.fingerprints.len())
        };
        let kept: Vec<Option<usize>> = (0..6).map(row).collect();
        assert_eq!(
            kept,
            [Some(2), Some(1), Some(1), Some(2), Some(1), None],
            "the first pair holds its passed check too; the sixth left the list"
        );
    }

    // A restart sweeps with the rows it kept: no pair is listed again.
    let mut daemon = Daemon::spawn(&config);
    daemon.wait_more_polls_of(&["baseline"], 2, T).await;
    assert_quiet_polls(
        &daemon,
        &sim,
        first + 2,
        "pairs listed again after a restart",
    )
    .await;
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
    assert_eq!(delivered(&hook), expected, "a restart sends nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_wide_sweeps_list_only_the_pairs_whose_counts_changed() {
    scenario(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_of_listed_clusters_list_only_the_pairs_whose_counts_changed() {
    scenario(true).await;
}
