//! The official Python SDK (`alibabacloud-sas20181203`) as a client of the simulator: V3, V1 and
//! STS signing, every implemented action, and every response parsed into the SDK's models with
//! nothing lost (`tests/sdk/check_sdk.py` does the checking; this test starts the simulator,
//! provides the SDK and fails with the script's output). The script also reads the key fields
//! the SDK decoded (the detail actions chained from a listed alert, the firewall rules) and
//! switches a firewall alert's rule off and on; this test checks that those writes reached the
//! world and the handling log.
//!
//! The SDK comes from [`crate::peers`]: `SASRELAY_SDK_PYTHON` when set (a python with the SDK
//! installed), otherwise `target/sdk-venv`, created on first use by `tests/sdk/setup.sh` (pip,
//! from PyPI). Without it the test fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use sasrelay::simulator::{SimConfig, Simulator};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run_script(python: &Path, port: u16) -> std::process::Output {
    Command::new(python)
        .arg(root().join("tests/sdk/check_sdk.py"))
        .arg("--port")
        .arg(port.to_string())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run tests/sdk/check_sdk.py")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_parses_every_action() {
    let python = tokio::task::spawn_blocking(crate::peers::sdk_python)
        .await
        .unwrap();
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let port = sim.addr().port();
    let out = tokio::task::spawn_blocking(move || run_script(&python, port))
        .await
        .unwrap();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "SDK compatibility failed:\n{report}");
    assert!(report.contains("all SDK checks passed"), "{report}");
    // The SDK really went through the simulator: four signing modes hit every action.
    for action in sasrelay::simulator::actions() {
        assert!(
            sim.call_count(action) >= 4,
            "{action} called {} times\n{report}",
            sim.call_count(action)
        );
    }
    // Off and on once per signing mode, plus the two refused calls of the error checks.
    let switches: Vec<_> = sim
        .handling_calls()
        .into_iter()
        .filter(|c| c.action == "ModifyInterceptionRuleSwitch")
        .collect();
    assert_eq!(switches.len(), 10, "{switches:?}\n{report}");
    let cluster = sim.clusters()[0].cluster_id.clone();
    let rule_id: i64 = switches[0].params["RuleIds"].parse().unwrap();
    let rule = sim.firewall_rule(&cluster, rule_id).unwrap();
    assert_eq!(rule["RuleSwitch"], 1, "switched back on: {rule}");
    sim.stop().await.unwrap();
}
