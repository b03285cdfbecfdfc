//! Start-up memory handed back (`sasrelay::daemon::memory`, `src/image.rs`), through the real
//! binary: once every source × domain has had its first poll, the daemon drops the mappings of
//! its start-up code and read-only data, its resident set falls, and it goes on polling and
//! delivering on the code it maps back.

use std::time::Duration;

use crate::support::*;
use sasrelay::simulator::Domain;
use serde_json::json;

/// Failure guard for every wait (a hang becomes a failure, never a pass).
const T: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_its_first_polls_the_daemon_hands_back_its_start_up_memory_and_runs_on() {
    let sim = quiet_simulator().await;
    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, url, state) = (sim.endpoint(), hook.url(), dir.path().join("state"));
    let mut spec = ConfigSpec::new(&endpoint, &url, &state);
    spec.source_extra = r#"domains = ["alerts", "vulnerabilities"]"#;
    spec.poll = r#"{ alerts = "1s", vulnerabilities = "1s" }"#;
    let config = spec.write(&dir.path().join("sasrelay.toml"));
    let log = "info,sasrelay::pipeline::poller=debug,sasrelay::daemon::memory=debug";
    let mut daemon = Daemon::spawn_env(&config, &[("SASRELAY_LOG", log.as_ref())]);

    let handed_back = "start-up code and heap handed back";
    daemon
        .wait_log(handed_back, T, |v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains(handed_back))
        })
        .await;
    let line = daemon.messages(handed_back).remove(0);
    let field = |k: &str| line[k].as_u64().unwrap_or_else(|| panic!("{k} in {line}"));
    assert!(field("mapped_kib") > 1024, "{line}");
    assert!(
        field("rss_after_kib") < field("rss_before_kib"),
        "the resident set did not fall: {line}"
    );
    // Only once both domains had their first poll.
    let polled: Vec<String> = daemon
        .lines()
        .iter()
        .take_while(|l| !l.contains(handed_back))
        .filter(|l| l.contains("Poll done."))
        .cloned()
        .collect();
    for domain in ["alerts", "vulnerabilities"] {
        assert!(
            polled.iter().any(|l| l.contains(&format!("\"{domain}\""))),
            "released before the first {domain} poll: {polled:?}"
        );
    }

    // The code it dropped maps back in: a new alert is polled and delivered as before.
    let alert = sim.add_finding(Domain::Alert, None, json!({})).unwrap();
    let id = format!("alert:{}", alert["Id"]);
    hook.wait_for(&id, T, |rs| {
        rs.iter().any(|r| r.delivered() && r.finding_id() == id)
    })
    .await;
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
}
