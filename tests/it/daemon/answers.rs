//! What the daemon does when Security Center answers wrongly, through the real binary against
//! the simulator: a poisoned record among honest ones, identities past `i64::MAX`, list-less
//! answers, and clocks that step.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use crate::support::*;
use sasrelay::simulator::{
    Domain, FaultKind, FaultSpec, InitialFindings, MAX_FAULT_COUNT, SimConfig, Simulator,
};
use serde_json::json;

/// Failure guard for every wait (a hang becomes a failure, never a pass).
const T: Duration = Duration::from_secs(60);

/// The ids of the simulator's open (pending) alerts.
fn alert_ids(sim: &sasrelay::simulator::SimHandle) -> Vec<i64> {
    sim.findings(Domain::Alert)
        .iter()
        .filter(|a| a["EventStatus"] == 1)
        .map(|a| a["Id"].as_i64().expect("alert Id"))
        .collect()
}

/// The finding ids the receiver got, after checking each arrived exactly once.
fn delivered_once(hook: &Hook) -> BTreeSet<String> {
    let requests = hook.requests();
    assert_each_once(&requests);
    requests
        .iter()
        .map(|r| r.finding_id().to_string())
        .collect()
}

/// Whether `r` is a health meta-event (`sasrelay.health.v1`), not a finding's event.
fn is_meta(r: &Request) -> bool {
    r.body["schema"] == "sasrelay.health.v1"
}

/// The keys of the meta-events in `requests` with `status` (`firing`, `resolved`), once each.
fn meta_keys(requests: &[Request], status: &str) -> BTreeSet<String> {
    requests
        .iter()
        .filter(|r| r.delivered() && is_meta(r) && r.body["status"] == status)
        .map(|r| r.body["key"].as_str().unwrap_or("").to_string())
        .collect()
}

/// A simulator with `alerts` initial alerts (nothing else) answering `DescribeSuspEvents` with
/// `fault` (if any) from the start, a receiver, and a config polling alerts only with
/// `initial_sync = "notify"`; with the ids of the open alerts.
struct Bench {
    sim: sasrelay::simulator::SimHandle,
    hook: Hook,
    _dir: tempfile::TempDir,
    config: std::path::PathBuf,
    ids: Vec<i64>,
}

async fn alerts_only(alerts: usize, fault: impl FnOnce(&[i64]) -> Option<FaultKind>) -> Bench {
    let sim = Simulator::start(SimConfig {
        initial: InitialFindings {
            alerts,
            vulns: 0,
            baseline: 0,
            firewall: 0,
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let ids = alert_ids(&sim);
    if let Some(fault) = fault(&ids) {
        sim.inject_fault(
            FaultSpec::new(fault)
                .for_action("DescribeSuspEvents")
                .times(MAX_FAULT_COUNT),
        )
        .unwrap();
    }
    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, url, state) = (sim.endpoint(), hook.url(), dir.path().join("state"));
    let mut spec = ConfigSpec::new(&endpoint, &url, &state);
    spec.initial_sync = "notify";
    spec.source_extra = r#"domains = ["alerts"]"#;
    let config = spec.write(&dir.path().join("sasrelay.toml"));
    Bench {
        sim,
        hook,
        _dir: dir,
        config,
        ids,
    }
}

/// One record among over 200 open alerts (three pages of 100) carries a number no parser
/// holds. The others are delivered exactly once, the domain keeps polling, the record is quarantined
/// with a warning (once, however often it is listed), kept where `GET /api/v1/quarantine` shows
/// it, and `findings --quarantined` shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_poisoned_record_is_quarantined_and_everything_else_is_delivered() {
    let b = alerts_only(300, |ids| Some(FaultKind::PoisonRecord { id: ids[5] })).await;
    let (hook, config, ids) = (&b.hook, &b.config, &b.ids);
    assert!(ids.len() > 200, "{} open alerts: three pages", ids.len());
    let poisoned = ids[5];

    let mut daemon = Daemon::spawn(config);
    hook.wait_delivered(ids.len() - 1, T).await;
    daemon.wait_more_polls_of(&["alerts"], 3, T).await;
    let delivered = delivered_once(hook);
    let expected: BTreeSet<String> = ids
        .iter()
        .filter(|id| **id != poisoned)
        .map(|id| format!("alert:{id}"))
        .collect();
    assert_eq!(delivered, expected, "every honest record, and only those");
    // The poll that met it counted it, and polls went on after it.
    let polls = daemon.polls("alerts");
    let at = polls
        .iter()
        .position(|p| p["quarantined"] == 1)
        .expect("a poll that quarantined the record");
    assert!(polls.len() >= at + 3, "polling went on: {polls:?}");
    let warnings = daemon.messages("Quarantined a record");
    assert_eq!(
        warnings.len(),
        1,
        "one warning per new record: {warnings:?}"
    );
    let reason = warnings[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("number out of range"), "{reason}");
    assert_eq!(warnings[0]["action"], "DescribeSuspEvents");
    // The daemon's quarantine, through the admin API: the record's text, kept.
    let addr = daemon.messages("Admin API listening")[0]["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let kept: serde_json::Value = reqwest::get(format!("http://{addr}/api/v1/quarantine"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kept = kept["quarantined"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["domain"], "alerts");
    assert_eq!(kept[0]["action"], "DescribeSuspEvents");
    assert!(
        kept[0]["raw"].as_str().unwrap().contains("1e400"),
        "{kept:?}"
    );
    assert_eq!(daemon.terminate(T).await.code(), Some(0));

    // The operator's view of the same listing.
    let cli = Command::new(env!("CARGO_BIN_EXE_sasrelay"))
        .args([
            "findings",
            "--quarantined",
            "--domain",
            "alerts",
            "--config",
        ])
        .arg(config)
        .env(SECRET_ENV, sasrelay::simulator::DEMO_ACCESS_KEY_SECRET)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&cli.stdout),
        String::from_utf8_lossy(&cli.stderr),
    );
    assert_eq!(cli.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("DescribeSuspEvents") && stdout.contains("1e400"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("\"Id\":{poisoned}")), "{stdout}");
    assert!(
        stderr.contains("1 record(s) of the listing cannot be read"),
        "{stderr}"
    );
}

/// Identities past `i64::MAX` are kept exactly: alerts whose ids differ only below 2^63 stay
/// distinct findings (saturating them once made 102 alerts one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_past_i64_stay_distinct_findings() {
    let b = alerts_only(102, |_| Some(FaultKind::HighIds)).await;
    let (hook, config, ids) = (&b.hook, &b.config, &b.ids);

    let mut daemon = Daemon::spawn(config);
    hook.wait_delivered(ids.len(), T).await;
    daemon.wait_more_polls_of(&["alerts"], 2, T).await;
    let delivered = delivered_once(hook);
    let expected: BTreeSet<String> = ids
        .iter()
        .map(|id| format!("alert:{}", *id as u64 | (1 << 63)))
        .collect();
    assert_eq!(delivered, expected);
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
}

/// A stretch of `200 {"RequestId": …}` answers on every action (a misbehaving endpoint or
/// proxy), then normal answers: nothing still open is resolved, nothing is sent as new twice,
/// and every alert created during the fault window is delivered exactly once. Meanwhile the
/// only messages are the health's: a domain that cannot be read is announced blind, then
/// resolved once it is read again. (Read as empty
/// pages, such answers once resolved every open vulnerability and re-sent it as new later.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_less_answers_for_a_while_lose_and_invent_nothing() {
    let sim = Simulator::start(SimConfig {
        initial: InitialFindings {
            alerts: 30,
            vulns: 30,
            baseline: 20,
            firewall: 20,
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, url, state) = (sim.endpoint(), hook.url(), dir.path().join("state"));
    let mut spec = ConfigSpec::new(&endpoint, &url, &state);
    // One attempt per call: every list-less answer is a failed poll at once.
    spec.source_extra = "max_attempts = 1";
    let config = spec.write(&dir.path().join("sasrelay.toml"));
    let mut daemon = Daemon::spawn(&config);
    // Baseline first start: one summary per domain, then quiet polls.
    hook.wait_delivered(4, T).await;
    daemon.wait_more_polls(2, T).await;
    let before = hook.count();

    sim.inject_fault(FaultSpec::new(FaultKind::ListMissing).times(MAX_FAULT_COUNT))
        .unwrap();
    let calls = sim.call_count("DescribeSuspEvents");
    let mut created = Vec::new();
    for _ in 0..3 {
        let a = sim.add_finding(Domain::Alert, None, json!({})).unwrap();
        created.push(format!("alert:{}", a["Id"].as_i64().unwrap()));
    }
    let v = sim
        .add_finding(Domain::Vuln, None, json!({"Type": "cve"}))
        .unwrap();
    created.push(format!("vul:{}", v["PrimaryId"].as_i64().unwrap()));
    // At least five failed alert polls (1 s apart) with every domain failing.
    wait_calls(&sim, &[("DescribeSuspEvents", calls + 5)], T).await;
    let failed_alert_poll = |v: &serde_json::Value| {
        v["domain"] == "alerts"
            && v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Poll failed"))
    };
    // (Every alert poll before the fault succeeded: these are the fault's.)
    let mut failed_seen = 0;
    daemon
        .wait_log("five failed alert polls", T, |v| {
            failed_seen += usize::from(failed_alert_poll(v));
            failed_seen >= 5
        })
        .await;
    let meanwhile = hook.requests().split_off(before);
    assert!(
        meanwhile.iter().all(|r| is_meta(r)
            && r.body["status"] == "firing"
            && r.body["key"]
                .as_str()
                .is_some_and(|k| k.starts_with("source_blind/sim/"))),
        "nothing but blind domains announced while the answers were not pages: {:?}",
        meanwhile.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    sim.clear_faults();

    hook.wait_for(
        "the findings created meanwhile, and every blind domain resolved",
        T,
        |r| {
            created
                .iter()
                .all(|id| r.iter().any(|x| x.delivered() && x.finding_id() == id))
                && meta_keys(r, "firing") == meta_keys(r, "resolved")
        },
    )
    .await;
    daemon.wait_more_polls(3, T).await;
    let (meta, requests): (Vec<Request>, Vec<Request>) =
        hook.requests().into_iter().partition(is_meta);
    assert_each_once(&requests);
    let mut meta_ids: Vec<&str> = meta.iter().map(|r| r.webhook_id.as_str()).collect();
    meta_ids.sort_unstable();
    meta_ids.dedup();
    assert_eq!(
        meta_ids.len(),
        meta.len(),
        "each meta-event once: {meta_ids:?}"
    );
    assert!(
        !meta_keys(&meta, "firing").is_empty(),
        "five failed polls in a row make a domain blind"
    );
    let after: Vec<_> = requests[before..].iter().collect();
    assert!(
        after.iter().all(|r| r.kind() == "new"),
        "nothing resolved: {:?}",
        after
            .iter()
            .map(|r| (r.kind(), r.finding_id()))
            .collect::<Vec<_>>()
    );
    let ids: BTreeSet<String> = after.iter().map(|r| r.finding_id().to_string()).collect();
    assert_eq!(
        ids,
        created.iter().cloned().collect(),
        "only what opened meanwhile"
    );
    let addr = super::admin::admin_addr(&daemon).await;
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("reason=\"list_missing\""),
        "failed polls are counted by reason: {metrics}"
    );
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
}

/// How far the clock steps: past the default 5-minute overlap (so a watermark read by the
/// local clock would skip what happened meanwhile), within Security Center's 15-minute
/// signature window (so it still answers).
const STEP_MS: i64 = 10 * 60 * 1000;

/// The local clock steps forward by ten minutes, then back. Played by moving Security
/// Center's clock instead (what the daemon sees is the same: its clock ahead, then in step
/// again). An alert raised while the clock is ahead is stamped with Security Center's time,
/// ten minutes before what the daemon's clock says; one raised after the step back is
/// stamped before the watermark written meanwhile. Both are delivered, once each; the
/// daemon says the clocks are apart, then in step. Without the `Date`-header correction
/// the first is never delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_stepping_forward_then_back_misses_no_alert() {
    let b = alerts_only(0, |_| None).await;
    let sim = &b.sim;
    let (hook, config) = (&b.hook, &b.config);
    let mut daemon = Daemon::spawn(config);
    daemon.wait_more_polls_of(&["alerts"], 1, T).await;
    let raise = || {
        let a = sim.add_finding(Domain::Alert, None, json!({})).unwrap();
        format!("alert:{}", a["Id"].as_i64().unwrap())
    };

    let before = raise();
    hook.wait_delivered(1, T).await;

    // The step forward: the daemon learns it from the answers' `Date`.
    sim.set_clock_offset(-STEP_MS);
    daemon
        .wait_log("a warning that the clocks are apart", T, |v| {
            v["level"] == "WARN"
                && v["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("The local clock is 6") && m.contains("ahead"))
        })
        .await;
    daemon.wait_more_polls_of(&["alerts"], 2, T).await;
    let ahead = raise();
    hook.wait_delivered(2, T).await;
    daemon.wait_more_polls_of(&["alerts"], 2, T).await;

    // The step back.
    sim.set_clock_offset(0);
    let back = raise();
    hook.wait_delivered(3, T).await;
    daemon
        .wait_log("the clocks in step again", T, |v| {
            v["message"] == "The local clock is in step with Security Center's again."
        })
        .await;
    daemon.wait_more_polls_of(&["alerts"], 2, T).await;

    assert_eq!(
        delivered_once(hook),
        BTreeSet::from([before, ahead, back]),
        "every alert delivered, once"
    );
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
}
