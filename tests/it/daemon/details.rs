//! Baseline check details across sweeps and restarts, through the real binary against the
//! simulator: a check's description and advice (`DescribeCheckWarningDetail`) are fetched once
//! for every asset failing it and every sweep, kept in the state store, and not fetched again
//! after a restart; what a notification carries of them is the check's, never the evidence
//! of the asset they were fetched for.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::*;
use sasrelay::simulator::{Domain, InitialFindings, SimConfig, Simulator};

/// Failure guard for every wait (a hang becomes a failure, never a pass).
const T: Duration = Duration::from_secs(60);

const DETAIL: &str = "DescribeCheckWarningDetail";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_details_are_fetched_once_per_check_and_survive_a_restart() {
    let sim = Simulator::start(SimConfig {
        initial: InitialFindings {
            baseline: 30,
            ..InitialFindings::NONE
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let all = sim.findings(Domain::Baseline);
    let failing = all.iter().filter(|w| w["Status"] == 1).count();
    // The walk lists every check result of an affected asset, failing or not.
    let checks: BTreeSet<String> = all.iter().map(|w| w["CheckId"].to_string()).collect();
    assert!(
        all.len() > checks.len(),
        "some check must have results on several assets ({} results, {} checks)",
        all.len(),
        checks.len()
    );

    // The whole account: every poll sweeps in full (no statistics probe to skip one).
    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, url, state) = (sim.endpoint(), hook.url(), dir.path().join("state"));
    let mut spec = ConfigSpec::new(&endpoint, &url, &state);
    spec.initial_sync = "notify";
    spec.source_extra = r#"domains = ["baseline"]"#;
    spec.poll = r#"{ baseline = "1s" }"#;
    let config = spec.write(&dir.path().join("sasrelay.toml"));

    let mut daemon = Daemon::spawn(&config);
    hook.wait_delivered(failing, T).await;
    daemon.wait_more_polls_of(&["baseline"], 2, T).await;
    let fetched = sim.call_count(DETAIL);
    assert_eq!(
        fetched,
        checks.len() as u64,
        "one detail call per check, whatever the assets and sweeps"
    );
    assert_eq!(daemon.terminate(T).await.code(), Some(0));

    // A restart sweeps again with the details it kept: no detail is fetched.
    let mut daemon = Daemon::spawn(&config);
    daemon.wait_more_polls_of(&["baseline"], 2, T).await;
    assert_eq!(
        sim.call_count(DETAIL),
        fetched,
        "details fetched again after a restart"
    );
    assert_eq!(daemon.terminate(T).await.code(), Some(0));

    // Every notification carries the check's text, and no asset's evidence: a detail shared by
    // the assets failing one check would otherwise show the first asset's files and UUID in
    // the others'.
    let requests = hook.requests();
    assert_each_once(&requests);
    for r in requests.iter().filter(|r| r.delivered()) {
        let detail = &r.body["finding"]["raw"]["detail"];
        assert!(detail["Advice"].is_string(), "{detail}");
        assert!(detail.get("CheckDetailAssetInfo").is_none(), "{detail}");
        assert!(detail.get("RequestId").is_none(), "{detail}");
    }
}
