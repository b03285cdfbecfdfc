//! A thousand clusters inside the quota, through the real binary: a simulator serving 1,000
//! ACK clusters and enforcing Security Center's quota (10 calls a second per action), a source
//! naming every cluster at the default call budget (alerts and firewall listed once for the
//! account and filtered on arrival). Nothing is throttled, no action sees more than 5 calls in
//! a second, every open alert of the clusters is delivered exactly once, and an alert raised
//! later arrives within two alert polls.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::*;
use sasrelay::simulator::{Domain, InitialFindings, SimConfig, Simulator};
use serde_json::json;

/// Failure guard for every wait (a hang becomes a failure, never a pass).
const T: Duration = Duration::from_secs(120);
/// Clusters in the account, every one named by the source.
const CLUSTERS: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_listed_clusters_stay_inside_the_quota_and_lose_nothing() {
    let sim = Simulator::start(SimConfig {
        clusters: CLUSTERS,
        initial_per_cluster: true,
        initial: InitialFindings {
            alerts: 1,
            vulns: 0,
            baseline: 0,
            firewall: 0,
        },
        quota_per_second: Some(10),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let clusters: Vec<String> = sim.clusters().into_iter().map(|c| c.cluster_id).collect();
    // The pending alerts of the clusters (a listing by cluster shows nothing else either).
    let open: BTreeSet<String> = sim
        .findings(Domain::Alert)
        .iter()
        .filter(|a| a["EventStatus"] == 1)
        .filter(|a| {
            ["K8sClusterId", "clusterId"]
                .iter()
                .any(|k| a[k].as_str().is_some_and(|c| !c.is_empty()))
        })
        .map(|a| format!("alert:{}", a["Id"]))
        .collect();
    assert!(open.len() >= CLUSTERS / 2, "{} open", open.len());

    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, url, state) = (sim.endpoint(), hook.url(), dir.path().join("state"));
    let listed: Vec<String> = clusters.iter().map(|c| format!("\"{c}\"")).collect();
    let source_extra = format!(
        "domains = [\"alerts\", \"firewall\"]\nclusters = [{}]",
        listed.join(", ")
    );
    let mut spec = ConfigSpec::new(&endpoint, &url, &state);
    spec.initial_sync = "notify";
    spec.source_extra = &source_extra;
    spec.poll = r#"{ alerts = "2s", firewall = "2s" }"#;
    // The default budget: 5 calls a second per action.
    spec.calls_per_second = 5;
    let config = spec.write(&dir.path().join("sasrelay.toml"));

    let daemon = Daemon::spawn(&config);
    hook.wait_delivered(open.len(), T).await;
    daemon
        .wait_more_polls_of(&["alerts", "firewall"], 1, T)
        .await;

    // A new alert in the last cluster: delivered by the second alert poll after it was raised.
    let raised = daemon.polls("alerts").len();
    let late = sim
        .add_finding(Domain::Alert, Some(&clusters[CLUSTERS - 1]), json!({}))
        .unwrap();
    hook.wait_delivered(open.len() + 1, T).await;
    let polls_since = daemon.polls("alerts").len() - raised;
    assert!(
        polls_since <= 2,
        "delivered after {polls_since} alert polls, not within two"
    );

    let requests = hook.requests();
    assert_each_once(&requests);
    let delivered: BTreeSet<String> = requests
        .iter()
        .filter(|r| r.delivered())
        .map(|r| r.finding_id().to_string())
        .collect();
    let mut want = open;
    want.insert(format!("alert:{}", late["Id"]));
    assert_eq!(delivered, want, "every alert, once");
    assert_eq!(sim.throttled_count(), 0, "nothing throttled");
    for action in ["DescribeSuspEvents", "ListInterceptionHistory"] {
        let busiest = sim.busiest_second(action);
        assert!(busiest <= 5, "{action}: {busiest} calls in one second");
    }
}
