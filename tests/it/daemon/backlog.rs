//! A large backlog and an oversized page, through the real binary against the simulator. A
//! first start over more open alerts than one poll's page cap reads delivers each exactly
//! once over several polls (the cursor's backfill), starting after the first page and in
//! bounded memory, while alerts are handled and added meanwhile; a "page" of 200,000 records
//! answered to `PageSize=100` is refused with an error naming the action, in bounded memory,
//! and the domain recovers once the answers are honest again.
//!
//! Figures are printed: the first delivery after the first page (bounded by the issue's 5 s),
//! the daemon's peak RSS (`VmHWM`) and that peak less the binary's mapped code (`RssFile`,
//! 35 MiB in the debug build these tests run, 14 MiB in a release build; `SASRELAY_E2E_BIN`
//! runs another binary). The latter is what is bounded: by 64 MiB for a backlog a few polls
//! long and for the oversized page. The 50,000-alert soak bounds it by 112 MiB in the debug
//! build (which peaked at 72–74 MiB less its code; the release build peaks at 54–55 MiB in
//! all, 41 MiB less its code: README, "How Security Center is read") — far under what one
//! poll holding its 20,000 findings would take (the old design: 1.15 GB). Run it against a
//! release binary with `SASRELAY_E2E_BIN=target/release/sasrelay` for the README's figure.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::support::*;
use sasrelay::simulator::{
    Domain, FaultKind, FaultSpec, InitialFindings, MAX_FAULT_COUNT, SimConfig, SimHandle, Simulator,
};
use serde_json::{Value, json};

/// Failure guard for every short wait (a hang becomes a failure, never a pass).
const T: Duration = Duration::from_secs(60);
/// The issue's bound on the daemon's peak RSS, applied to the peak less the binary's mapped code.
const RSS_BOUND_KIB: u64 = 64 * 1024;
/// Alerts polled every second.
const DEFAULT_POLL: &str = r#"{ alerts = "1s" }"#;
/// The soak's bound on the same figure (see the module doc).
const SOAK_RSS_BOUND_KIB: u64 = 112 * 1024;
/// The issue's bound on the first delivery after the first page.
const FIRST_DELIVERY_BOUND: Duration = Duration::from_secs(5);

/// A simulator holding `n` open alerts (nothing else), their latest occurrences spread over
/// the three days before now, one second apart at least; with their finding ids.
async fn with_open_alerts(n: usize) -> (SimHandle, Vec<i64>) {
    let sim = Simulator::start(SimConfig {
        initial: InitialFindings::NONE,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let span_ms: i64 = 3 * 24 * 3600 * 1000;
    let step = (span_ms / n as i64).max(1000);
    let ids = (0..n as i64)
        .map(|i| {
            let at = now_ms - 60_000 - i * step;
            sim.add_finding(Domain::Alert, None, json!({ "LastTimeStamp": at }))
                .unwrap()["Id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    (sim, ids)
}

/// The finding ids the receiver got `kind` events for, after checking that every payload
/// arrived exactly once; read in place (tens of thousands of requests).
fn delivered_once(hook: &Hook, kind: &str) -> BTreeMap<String, usize> {
    hook.with_requests(|requests| {
        assert_each_once(requests);
        let mut out: BTreeMap<String, usize> = BTreeMap::new();
        for r in requests
            .iter()
            .filter(|r| r.delivered() && r.kind() == kind)
        {
            *out.entry(r.finding_id().to_string()).or_default() += 1;
        }
        out
    })
}

fn alert_set(ids: &[i64]) -> BTreeSet<String> {
    ids.iter().map(|id| format!("alert:{id}")).collect()
}

/// Waits until every alert of `ids` is delivered and two more polls add nothing; checks that
/// each arrived as `new` and nothing twice; stops the daemon.
async fn each_new_once(daemon: &mut Daemon, hook: &Hook, ids: &[i64]) {
    hook.wait_delivered(ids.len(), T).await;
    daemon.wait_more_polls_of(&["alerts"], 2, T).await;
    let news = delivered_once(hook, "new");
    assert_eq!(
        news.keys().cloned().collect::<BTreeSet<_>>(),
        alert_set(ids)
    );
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
}

/// What a first start over a backlog measured.
struct Figures {
    /// From the first `DescribeSuspEvents` call to the first delivery.
    first_delivery: Duration,
    /// From the daemon's start until every alert was delivered.
    all_delivered: Duration,
    /// The daemon's peak RSS (`VmHWM`).
    peak_rss_kib: u64,
    /// Of which mapped files (the binary's code) at the end.
    mapped_kib: u64,
    /// Polls whose window the page cap stopped (their rest went to the backfill).
    cut_polls: usize,
}

/// A config for `sim` and `hook` in `dir`: alerts only (`source_extra` added to the source),
/// polled as `poll` says, `initial_sync = "notify"`.
fn alerts_config(
    sim: &SimHandle,
    hook: &Hook,
    dir: &tempfile::TempDir,
    source_extra: &str,
    poll: &str,
) -> std::path::PathBuf {
    let (endpoint, url, state) = (sim.endpoint(), hook.url(), dir.path().join("state"));
    let mut spec = ConfigSpec::new(&endpoint, &url, &state);
    spec.initial_sync = "notify";
    spec.poll = poll;
    let extra = format!("domains = [\"alerts\"]\n{source_extra}");
    spec.source_extra = &extra;
    spec.write(&dir.path().join("sasrelay.toml"))
}

/// Starts the daemon (`initial_sync = "notify"`, alerts only, `source_extra` in the source),
/// waits until the first alert is delivered, calls `meanwhile` once the first poll is done,
/// then waits until `expected_new` are delivered and two more polls find nothing more.
async fn first_start(
    sim: &SimHandle,
    hook: &Hook,
    source_extra: &str,
    poll: &str,
    expected_new: usize,
    meanwhile: impl FnOnce(&Daemon),
    deadline: Duration,
) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let config = alerts_config(sim, hook, &dir, source_extra, poll);

    sim.reset_calls();
    let started = Instant::now();
    let mut daemon = Daemon::spawn(&config);
    wait_calls(sim, &[("DescribeSuspEvents", 1)], T).await;
    let first_call = Instant::now();
    hook.wait_delivered(1, T).await;
    let first_delivery = hook.with_requests(|r| r[0].at) - first_call;
    daemon
        .wait_log("the first poll", deadline, |v| {
            v["message"] == "Poll done." && v["domain"] == "alerts"
        })
        .await;
    meanwhile(&daemon);
    // Counted as they arrive: recounting tens of thousands on every request would be O(n²).
    let (mut checked, mut news) = (0, 0);
    hook.wait_for(&format!("{expected_new} new alerts"), deadline, |r| {
        news += r[checked..]
            .iter()
            .filter(|r| r.delivered() && r.kind() == "new")
            .count();
        checked = r.len();
        news >= expected_new
    })
    .await;
    let all_delivered = started.elapsed();
    daemon.wait_more_polls_of(&["alerts"], 2, T).await;
    let (peak_rss_kib, mapped_kib) = daemon.memory_kib();
    let polls = daemon.polls("alerts");
    let cut_polls = polls.iter().filter(|p| p["incomplete"] == true).count();
    let last = polls.last().expect("a poll");
    assert_eq!(last["backfill"], 0, "nothing left to read: {last}");
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
    Figures {
        first_delivery,
        all_delivered,
        peak_rss_kib,
        mapped_kib,
        cut_polls,
    }
}

fn report(what: &str, f: &Figures, rss_bound_kib: u64) {
    let mib = |kib: u64| kib as f64 / 1024.0;
    eprintln!(
        "{what}: first delivery {:.2} s after the first page was asked for; all delivered after {:.1} s; {} polls cut by the page cap; daemon peak RSS {:.1} MiB ({:.1} MiB less its mapped code)",
        f.first_delivery.as_secs_f64(),
        f.all_delivered.as_secs_f64(),
        f.cut_polls,
        mib(f.peak_rss_kib),
        mib(f.peak_rss_kib - f.mapped_kib)
    );
    assert!(
        f.first_delivery <= FIRST_DELIVERY_BOUND,
        "{what}: first delivery {:?} after the first page",
        f.first_delivery
    );
    assert!(
        f.peak_rss_kib - f.mapped_kib <= rss_bound_kib,
        "{what}: peak RSS {} KiB, {} KiB of it mapped files",
        f.peak_rss_kib,
        f.mapped_kib
    );
}

/// 3,000 open alerts at a first start, 500 a poll (`max_pages = 5`): the first poll reads the
/// newest 500 and leaves the rest to the backfill. Then the 300 newest, already
/// delivered, are handled — the pending list shrinks ahead of where the backfill resumes, so
/// it must back up rather than skip — and 50 new alerts appear. Every alert is new exactly
/// once, the handled ones resolve exactly once, nothing else is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_past_the_page_cap_is_delivered_over_several_polls_each_once() {
    let (sim, ids) = with_open_alerts(3_000).await;
    let hook = Hook::start().await;
    let handled: Vec<i64> = ids[..300].to_vec();
    let added: std::sync::Mutex<Vec<i64>> = std::sync::Mutex::new(Vec::new());
    let figures = first_start(
        &sim,
        &hook,
        "max_pages = 5",
        r#"{ alerts = "3s" }"#,
        3_050,
        |daemon| {
            let first = daemon.polls("alerts");
            assert_eq!(first.len(), 1);
            assert_eq!(
                (&first[0]["incomplete"], &first[0]["backfill"]),
                (&json!(true), &json!(1)),
                "the first poll was cut and left a backfill: {}",
                first[0]
            );
            for id in &handled {
                sim.set_status(Domain::Alert, *id, 32).unwrap();
            }
            let mut added = added.lock().unwrap();
            for _ in 0..50 {
                added.push(
                    sim.add_finding(Domain::Alert, None, json!({})).unwrap()["Id"]
                        .as_i64()
                        .unwrap(),
                );
            }
        },
        T * 3,
    )
    .await;
    report("3,000 alerts, max_pages = 5", &figures, RSS_BOUND_KIB);
    assert!(figures.cut_polls >= 5, "{} polls cut", figures.cut_polls);

    let added = added.into_inner().unwrap();
    let news = delivered_once(&hook, "new");
    let want: BTreeSet<String> = alert_set(&ids).union(&alert_set(&added)).cloned().collect();
    assert_eq!(news.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert!(news.values().all(|n| *n == 1));
    let resolved = delivered_once(&hook, "resolved");
    assert_eq!(
        resolved.keys().cloned().collect::<BTreeSet<_>>(),
        alert_set(&handled)
    );
    let kinds: BTreeSet<String> =
        hook.with_requests(|r| r.iter().map(|r| r.kind().to_string()).collect());
    assert_eq!(
        kinds,
        ["new", "resolved"].map(String::from).into(),
        "nothing else"
    );
}

/// The issue's measurement: 50,000 open alerts at a first start with `initial_sync =
/// "notify"` and default settings (100 a page, `max_pages = 200`): every alert delivered
/// exactly once over three polls, the first within 5 s of the first page, memory bounded (see
/// the module doc for which bound). About five minutes in a debug build, so a soak (`.ci/run`
/// runs it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: several minutes; .ci/run runs it"]
async fn soak_a_first_start_over_50000_open_alerts_delivers_each_once_in_bounded_memory() {
    let (sim, ids) = with_open_alerts(50_000).await;
    let hook = Hook::start().await;
    let figures = first_start(
        &sim,
        &hook,
        "",
        DEFAULT_POLL,
        ids.len(),
        |_| {},
        Duration::from_secs(900),
    )
    .await;
    report(
        "50,000 alerts, default settings",
        &figures,
        SOAK_RSS_BOUND_KIB,
    );
    assert!(figures.cut_polls >= 2, "{} polls cut", figures.cut_polls);
    let news = delivered_once(&hook, "new");
    assert_eq!(
        news.keys().cloned().collect::<BTreeSet<_>>(),
        alert_set(&ids)
    );
    assert!(news.values().all(|n| *n == 1));
    // Polls of 200 pages each, at a 1 s interval, are long but reading: never called blind.
    let meta: Vec<String> = hook.with_requests(|r| {
        r.iter()
            .filter(|r| r.body["schema"] == "sasrelay.health.v1")
            .map(|r| r.body.to_string())
            .collect()
    });
    assert!(meta.is_empty(), "health meta-events: {meta:?}");
}

/// A "page" of 200,000 records answered to `PageSize=100`: refused while it is read, with an
/// error naming the action, the daemon's memory bounded; the domain keeps polling and, once
/// the answers are honest, delivers every alert exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_page_is_refused_in_bounded_memory_and_the_domain_recovers() {
    let (sim, ids) = with_open_alerts(150).await;
    sim.inject_fault(
        FaultSpec::new(FaultKind::OversizedPage { records: 200_000 })
            .for_action("DescribeSuspEvents")
            .times(MAX_FAULT_COUNT),
    )
    .unwrap();
    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = alerts_config(
        &sim,
        &hook,
        &dir,
        "retry_initial_delay = \"50ms\"\nretry_max_delay = \"100ms\"",
        DEFAULT_POLL,
    );

    let mut daemon = Daemon::spawn(&config);
    // Two failed polls, each after its retries: every attempt downloaded 200,000 records.
    let failed = |v: &Value| {
        v["task"] == "poll"
            && v["error"]
                .as_str()
                .is_some_and(|e| e.contains("a page of more than 1000 records"))
    };
    daemon
        .wait_log("a failed poll naming the oversized page", T, failed)
        .await;
    wait_calls(&sim, &[("DescribeSuspEvents", 8)], T).await;
    let errors: Vec<String> = daemon
        .lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(failed)
        .map(|v| v["error"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        errors[0].contains("DescribeSuspEvents"),
        "the error names the action: {errors:?}"
    );
    let delivered = hook.delivered();
    let findings = delivered
        .iter()
        .filter(|r| r.body["schema"] == "sasrelay.event.v1")
        .count();
    assert_eq!(findings, 0, "nothing delivered from a refused page");
    let (peak, mapped) = daemon.memory_kib();
    eprintln!(
        "oversized page (200,000 records to PageSize=100): {} refused attempts; daemon peak RSS {:.1} MiB ({:.1} MiB less its mapped code)",
        sim.call_count("DescribeSuspEvents"),
        peak as f64 / 1024.0,
        (peak - mapped) as f64 / 1024.0
    );
    assert!(
        peak - mapped <= RSS_BOUND_KIB,
        "peak RSS {peak} KiB, {mapped} KiB of it mapped files"
    );

    // Honest answers again: the domain was still polling, and catches up.
    sim.clear_faults();
    each_new_once(&mut daemon, &hook, &ids).await;
}

/// SIGTERM in the middle of a long poll: the poll stops after the page it is committing, the
/// shutdown is clean, and the cursor has not moved; the next start reads the window again and
/// delivers the rest, every alert exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_mid_poll_stops_at_a_page_and_the_next_start_goes_on() {
    let (sim, ids) = with_open_alerts(2_000).await;
    // 200 ms a page: the first poll (20 pages) takes over four seconds.
    sim.inject_fault(
        FaultSpec::new(FaultKind::Slow { delay_ms: 200 })
            .for_action("DescribeSuspEvents")
            .times(25),
    )
    .unwrap();
    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = alerts_config(&sim, &hook, &dir, "", DEFAULT_POLL);

    let mut daemon = Daemon::spawn(&config);
    hook.wait_delivered(1, T).await;
    let asked = sim.call_count("DescribeSuspEvents");
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
    assert_eq!(daemon.messages("Shutdown clean").len(), 1);
    let polls = daemon.polls("alerts");
    assert_eq!(polls.len(), 1, "{polls:?}");
    assert_eq!(polls[0]["interrupted"], true, "{}", polls[0]);
    let read = polls[0]["observed"].as_u64().unwrap();
    assert!(
        read < ids.len() as u64 && sim.call_count("DescribeSuspEvents") <= asked + 1,
        "stopped after the page in progress: {} of {} read",
        read,
        ids.len()
    );

    let mut daemon = Daemon::spawn(&config);
    each_new_once(&mut daemon, &hook, &ids).await;
}
