//! The poller against the simulator, in process: statistics probes let an unchanged snapshot
//! domain skip its full sweep, a changed one is swept, and the periodic reconcile sweeps anyway.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sasrelay::config::{DomainPoll, parse};
use sasrelay::credentials::CredentialContext;
use sasrelay::credentials::env::MapEnv;
use sasrelay::dispatch::{Dispatcher, Silences, SinkHandle};
use sasrelay::finding::Domain;
use sasrelay::lifecycle::EventSwitches;
use sasrelay::poller::{Poller, RECONCILE_EVERY};
use sasrelay::simulator::{self, SimConfig, Simulator};
use sasrelay::sinks::Sink;
use sasrelay::source::Source;
use sasrelay::store::Store;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[tokio::test]
async fn unchanged_statistics_skip_the_sweep_until_something_changes() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let cluster = sim.clusters()[0].cluster_id.clone();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("sk");
    std::fs::write(&secret, simulator::DEMO_ACCESS_KEY_SECRET).unwrap();
    let text = format!(
        "[[source]]\nname = \"sim\"\nregion = \"cn-hangzhou\"\nendpoint = \"{}\"\nclusters = [\"{cluster}\"]\ncredentials = {{ type = \"access_key\", access_key_id = \"sasrelay-sim\", access_key_secret = {{ file = \"{}\" }} }}\n[[sink]]\nname = \"out\"\ntype = \"file\"\npath = \"{}\"\n",
        sim.base_url(),
        secret.display(),
        dir.path().join("events.jsonl").display()
    );
    let settings = parse(Path::new("t.toml"), &text).unwrap();
    let ctx = CredentialContext::new(
        reqwest::Client::new(),
        CancellationToken::new(),
        TaskTracker::new(),
    );
    let source = Arc::new(
        Source::connect(settings.sources[0].clone(), &MapEnv::new(), &ctx)
            .await
            .unwrap(),
    );
    let store = Store::open(&dir.path().join("state")).unwrap();
    let sink = Arc::new(Sink::build(&settings.sinks[0]).unwrap());
    let handles = [(
        sink.name().to_string(),
        SinkHandle {
            sink,
            wake: Arc::new(Notify::new()),
        },
    )]
    .into();
    let dispatcher = Arc::new(Dispatcher::new(
        settings.router.clone(),
        handles,
        Arc::new(Silences::load(store.clone()).unwrap()),
        store.clone(),
        Arc::new(Notify::new()),
    ));
    let poll = DomainPoll {
        domain: Domain::Vulnerabilities,
        interval: Duration::from_secs(60),
        events: EventSwitches::default(),
    };
    let poller = Poller::new(source, poll, store.clone(), dispatcher);
    let t0 = time::OffsetDateTime::now_utc();

    // First start: a full sweep (no probe on a first start), counted silently.
    let first = poller.poll_once(t0).await.unwrap();
    assert!(!first.skipped_unchanged);
    assert!(first.silently_tracked > 0);
    // Second poll: the probe is new to the cursor, so it sweeps once more and remembers it.
    let second = poller
        .poll_once(t0 + time::Duration::seconds(60))
        .await
        .unwrap();
    assert!(!second.skipped_unchanged);
    // Third: nothing changed — one statistics call, no listing.
    sim.reset_calls();
    let third = poller
        .poll_once(t0 + time::Duration::seconds(120))
        .await
        .unwrap();
    assert!(third.skipped_unchanged, "{third:?}");
    assert_eq!(sim.call_count("DescribeVulList"), 0);
    assert_eq!(sim.call_count("DescribeClusterVulStatistics"), 1);

    // A new vulnerability in the cluster changes the counts: swept, and it is news.
    sim.add_finding(
        simulator::Domain::Vuln,
        Some(&cluster),
        json!({ "Type": "cve", "Status": 1, "Necessity": "asap" }),
    )
    .unwrap();
    let changed = poller
        .poll_once(t0 + time::Duration::seconds(180))
        .await
        .unwrap();
    assert!(!changed.skipped_unchanged);
    assert_eq!(changed.dispatched.enqueued, 1, "{changed:?}");

    // Equal counts hide nothing for ever: after RECONCILE_EVERY intervals it sweeps anyway.
    let quiet = poller
        .poll_once(t0 + time::Duration::seconds(240))
        .await
        .unwrap();
    assert!(quiet.skipped_unchanged);
    let later = t0 + time::Duration::seconds(180 + 60 * RECONCILE_EVERY as i64);
    sim.reset_calls();
    let reconcile = poller.poll_once(later).await.unwrap();
    assert!(!reconcile.skipped_unchanged);
    assert!(sim.call_count("DescribeVulList") > 0);
}
