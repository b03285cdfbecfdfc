//! The poller against the simulator, in process: statistics probes let an unchanged snapshot
//! domain skip its full sweep, a changed one is swept, and the periodic reconcile sweeps anyway;
//! vulnerabilities that leave the pending list resolve with the reason Security Center gives
//! (fixed, ignored, expired) or as `gone`, exactly once, even when the lookup fails; a first
//! start larger than the page cap stays silent across the polls that read it, and a snapshot
//! sweep the cap stops resolves nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use sasrelay::event::EventSwitches;
use sasrelay::event::{Event, EventKind, Payload, event_id};
use sasrelay::finding::{Domain, Resolution};
use sasrelay::pipeline::dispatch::{Dispatcher, Silences, SinkHandle};
use sasrelay::pipeline::poller::{Poller, RECONCILE_EVERY};
use sasrelay::record::RecordStatus;
use sasrelay::sas::source::DomainPoll;
use sasrelay::simulator::{self, FaultKind, FaultSpec, SimConfig, Simulator};
use sasrelay::sinks::Sink;
use sasrelay::store::Store;
use serde_json::json;
use tokio::sync::Notify;

/// A poller of one source's vulnerabilities against an in-process simulator, with a file sink
/// `out` whose outbox the tests read (no delivery worker runs).
struct Rig {
    sim: simulator::SimHandle,
    cluster: String,
    store: Store,
    poller: Poller,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// A rig polling vulnerabilities; `source_extra`: more lines of the `[[source]]` table.
    async fn start(source_extra: &str) -> Rig {
        Rig::start_for(Domain::Vulnerabilities, source_extra).await
    }

    /// A rig polling `domain`.
    async fn start_for(domain: Domain, source_extra: &str) -> Rig {
        Rig::start_with(SimConfig::default(), domain, 1, source_extra).await
    }

    /// A rig polling `domain` of a simulator built from `sim`, the source naming its first
    /// `configured` clusters.
    async fn start_with(
        sim: SimConfig,
        domain: Domain,
        configured: usize,
        source_extra: &str,
    ) -> Rig {
        let sim = Simulator::start(sim).await.unwrap();
        let cluster = sim.clusters()[0].cluster_id.clone();
        let clusters: Vec<String> = sim.clusters()[..configured]
            .iter()
            .map(|c| format!("\"{}\"", c.cluster_id))
            .collect();
        let clusters = clusters.join(", ");
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("sk");
        std::fs::write(&secret, simulator::DEMO_ACCESS_KEY_SECRET).unwrap();
        let text = format!(
            "[[source]]\ncalls_per_second = 50\nname = \"sim\"\nregion = \"cn-hangzhou\"\nendpoint = \"{}\"\nclusters = [{clusters}]\ncredentials = {{ type = \"access_key\", access_key_id = \"sasrelay-sim\", access_key_secret = {{ file = \"{}\" }} }}\n{source_extra}\n[[sink]]\nname = \"out\"\ntype = \"file\"\npath = \"{}\"\n",
            sim.base_url(),
            secret.display(),
            dir.path().join("events.jsonl").display()
        );
        let (settings, source) = crate::support::connect_first_source(&text).await;
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
            domain,
            interval: Duration::from_secs(60),
            events: EventSwitches::default(),
        };
        let poller = Poller::new(source, poll, store.clone(), dispatcher);
        Rig {
            sim,
            cluster,
            store,
            poller,
            _dir: dir,
        }
    }

    /// Every event in the sink's outbox, oldest first.
    fn outbox(&self) -> Vec<Event> {
        self.store
            .due("out", i64::MAX, 100_000)
            .unwrap()
            .into_iter()
            .filter_map(|(_, e)| match e.payload {
                Payload::Event(ev) => Some(*ev),
                Payload::Digest(_) | Payload::Health(_) => None,
            })
            .collect()
    }

    /// The finding ids of the `new` events in the outbox, oldest first.
    fn news(&self) -> Vec<String> {
        self.outbox()
            .iter()
            .filter(|e| e.kind == EventKind::New)
            .map(|e| e.finding.as_ref().unwrap().id.clone())
            .collect()
    }

    /// The `resolved` events in the outbox, by finding id.
    fn resolved(&self) -> BTreeMap<String, Vec<Event>> {
        let mut out: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        for ev in self.outbox() {
            if ev.kind == EventKind::Resolved {
                let id = ev.finding.as_ref().unwrap().id.clone();
                out.entry(id).or_default().push(ev);
            }
        }
        out
    }

    /// Adds an open `cve` vulnerability to the rig's cluster; returns its `PrimaryId`.
    fn add_vuln(&self) -> i64 {
        self.sim
            .add_finding(
                simulator::Domain::Vuln,
                Some(&self.cluster),
                json!({ "Type": "cve", "Status": 1, "Necessity": "asap" }),
            )
            .unwrap()["PrimaryId"]
            .as_i64()
            .unwrap()
    }
}

/// With two of three clusters configured, alerts and firewall records are listed
/// account-wide — one listing a poll, not one per cluster — and the third cluster's records are
/// dropped; `window_listing = "per_cluster"` lists each configured cluster instead, and both
/// deliver the same findings.
#[tokio::test]
async fn windows_of_several_clusters_are_listed_once_account_wide_and_filtered() {
    for (domain, action, sim_domain) in [
        (
            Domain::Alerts,
            "DescribeSuspEvents",
            simulator::Domain::Alert,
        ),
        (
            Domain::Firewall,
            "ListInterceptionHistory",
            simulator::Domain::Firewall,
        ),
    ] {
        let mut delivered = Vec::new();
        for (extra, listings) in [("", 1), ("window_listing = \"per_cluster\"", 2)] {
            let sim = SimConfig {
                clusters: 3,
                ..SimConfig::default()
            };
            let extra = format!("initial_sync = \"notify\"\n{extra}");
            let rig = Rig::start_with(sim, domain, 2, &extra).await;
            let clusters: Vec<String> = rig
                .sim
                .clusters()
                .into_iter()
                .map(|c| c.cluster_id)
                .collect();
            for c in &clusters {
                rig.sim.add_finding(sim_domain, Some(c), json!({})).unwrap();
            }
            rig.sim.reset_calls();
            rig.poller
                .poll_once(time::OffsetDateTime::now_utc())
                .await
                .unwrap();
            assert_eq!(
                rig.sim.call_count(action),
                listings,
                "{action} {extra}: one listing a poll account-wide, one per cluster otherwise"
            );
            let news: BTreeSet<String> = rig
                .outbox()
                .iter()
                .filter(|e| e.kind == EventKind::New)
                .map(|e| {
                    let f = e.finding.as_ref().unwrap();
                    let cluster = f.kubernetes.cluster_id.clone().unwrap_or_default();
                    assert!(
                        clusters[..2].contains(&cluster),
                        "{action} {extra}: a finding of {cluster} is not this source's"
                    );
                    f.id.clone()
                })
                .collect();
            let open_in_both = rig
                .sim
                .findings(sim_domain)
                .iter()
                .filter(|r| {
                    ["K8sClusterId", "ClusterId", "clusterId"].iter().any(|k| {
                        r[k].as_str()
                            .is_some_and(|c| clusters[..2].contains(&c.to_string()))
                    })
                })
                .count();
            assert!(
                news.len() >= 2 && news.len() <= open_in_both,
                "{action} {extra}: {news:?}"
            );
            delivered.push(news);
        }
        assert_eq!(
            delivered[0], delivered[1],
            "{action}: the same findings either way"
        );
    }
}

/// A poller's first step only waits its start offset — a random part of a tenth of its
/// interval — so the pollers of a start do not call together; the next step polls.
#[tokio::test]
async fn the_first_step_waits_a_start_offset_then_polls() {
    use sasrelay::task::{Next, Task};
    let mut rig = Rig::start("").await;
    rig.sim.reset_calls();
    let calls = |rig: &Rig| rig.sim.calls().values().sum::<u64>();
    match rig.poller.step().await.unwrap() {
        Next::After(d) => assert!(d <= Duration::from_secs(6), "{d:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(calls(&rig), 0, "no call before the offset");
    match rig.poller.step().await.unwrap() {
        Next::After(d) => assert_eq!(d, Duration::from_secs(60)),
        other => panic!("{other:?}"),
    }
    assert!(calls(&rig) > 0, "the second step polls");
}

/// With three clusters configured, a change in one cluster's counts sweeps that cluster only,
/// and what the other clusters hold is not taken for gone. A finding of a cluster swept alone
/// that left the list is confirmed by sweeping that cluster again at the next poll, though its
/// counts no longer move, and resolves as `gone`.
#[tokio::test]
async fn only_the_clusters_whose_counts_changed_are_swept_again() {
    let sim = SimConfig {
        clusters: 3,
        ..SimConfig::default()
    };
    let rig = Rig::start_with(sim, Domain::Vulnerabilities, 3, "").await;
    let (sim, poller) = (&rig.sim, &rig.poller);
    let clusters: Vec<String> = sim.clusters().into_iter().map(|c| c.cluster_id).collect();
    let at = |s: i64| time::OffsetDateTime::now_utc() + time::Duration::seconds(s);
    let vuln = |c: &str| {
        sim.add_finding(
            simulator::Domain::Vuln,
            Some(c),
            json!({ "Type": "cve", "Status": 1, "Necessity": "asap" }),
        )
        .unwrap()["PrimaryId"]
            .as_i64()
            .unwrap()
    };
    let doomed = vuln(&clusters[0]);
    poller.poll_once(at(0)).await.unwrap();
    // The second poll sweeps every cluster and remembers the probe.
    sim.reset_calls();
    poller.poll_once(at(60)).await.unwrap();
    let per_cluster = sim.call_count("DescribeVulList") / 3;
    assert!(per_cluster > 0);

    vuln(&clusters[2]);
    sim.reset_calls();
    let changed = poller.poll_once(at(120)).await.unwrap();
    assert_eq!(changed.dispatched.enqueued, 1, "{changed:?}");
    assert_eq!(
        sim.call_count("DescribeVulList"),
        per_cluster,
        "only the changed cluster is listed"
    );
    assert!(rig.resolved().is_empty(), "{:?}", rig.resolved());

    // One of cluster 0's leaves the list without a reason: missed once, kept open...
    sim.remove_finding(simulator::Domain::Vuln, doomed).unwrap();
    let missed = poller.poll_once(at(180)).await.unwrap();
    assert_eq!(missed.pending_gone, 1, "{missed:?}");
    assert!(rig.resolved().is_empty());
    // ... and cluster 0 is swept again though its counts did not move since: gone.
    let confirmed = poller.poll_once(at(240)).await.unwrap();
    assert!(!confirmed.skipped_unchanged, "{confirmed:?}");
    let resolved = rig.resolved();
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    let event = &resolved.values().next().unwrap()[0];
    let finding = event.finding.as_ref().unwrap();
    assert_eq!(finding.resolution, Some(Resolution::Gone));
    assert_eq!(finding.kubernetes.cluster_id.as_ref(), Some(&clusters[0]));
    // Then nothing moves: skipped.
    assert!(poller.poll_once(at(300)).await.unwrap().skipped_unchanged);
}

/// Baseline check details (description and advice) are fetched once, not again by every
/// sweep: the second sweep lists every check again but asks no detail.
#[tokio::test]
async fn baseline_check_details_are_fetched_once_across_sweeps() {
    let rig = Rig::start_for(Domain::Baseline, "").await;
    let (sim, poller) = (&rig.sim, &rig.poller);
    let t0 = time::OffsetDateTime::now_utc();
    poller.poll_once(t0).await.unwrap();
    assert!(sim.call_count("DescribeCheckWarningDetail") > 0);
    sim.reset_calls();
    // The probe is new to the cursor: a full sweep. A day later, so that every risk × asset
    // pair is due to be listed again whatever its counts (`sas::pairs::PAIR_RELIST_AFTER`).
    let second = poller
        .poll_once(t0 + time::Duration::hours(25))
        .await
        .unwrap();
    assert!(!second.skipped_unchanged);
    assert!(sim.call_count("DescribeCheckWarnings") > 0);
    assert_eq!(sim.call_count("DescribeCheckWarningDetail"), 0);
}

#[tokio::test]
async fn unchanged_statistics_skip_the_sweep_until_something_changes() {
    let rig = Rig::start("").await;
    let (sim, cluster, poller) = (&rig.sim, &rig.cluster, &rig.poller);
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
        Some(cluster),
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

/// Two polls from a fresh state: the first tracks what is open silently, the second sees the
/// `n` vulnerabilities added in between as new. Returns their ids and the time of the next poll.
async fn opened<const N: usize>(rig: &Rig) -> ([i64; N], time::OffsetDateTime) {
    let t0 = time::OffsetDateTime::now_utc();
    let first = rig.poller.poll_once(t0).await.unwrap();
    assert!(first.silently_tracked > 0);
    let ids = [(); N].map(|_| rig.add_vuln());
    let t1 = t0 + time::Duration::seconds(60);
    let second = rig.poller.poll_once(t1).await.unwrap();
    assert_eq!(second.dispatched.enqueued, N, "{second:?}");
    let news: BTreeSet<String> = rig.news().into_iter().collect();
    assert_eq!(news, ids.iter().map(|i| format!("vul:{i}")).collect());
    assert!(rig.resolved().is_empty());
    (ids, t1 + time::Duration::seconds(60))
}

#[tokio::test]
async fn vulnerabilities_leaving_the_list_resolve_with_the_reason_security_center_gives() {
    let rig = Rig::start("").await;
    let ([fixed, ignored, expired, removed], t) = opened(&rig).await;

    rig.sim
        .set_status(simulator::Domain::Vuln, fixed, 7)
        .unwrap();
    rig.sim
        .set_status(simulator::Domain::Vuln, ignored, 10)
        .unwrap();
    rig.sim
        .set_status(simulator::Domain::Vuln, expired, 20)
        .unwrap();
    rig.sim
        .remove_finding(simulator::Domain::Vuln, removed)
        .unwrap();
    rig.sim.reset_calls();
    let report = rig.poller.poll_once(t).await.unwrap();
    assert_eq!(report.looked_up, 4, "{report:?}");
    assert_eq!(report.explained, 3, "{report:?}");
    assert!(!report.lookup_failed);
    // The reasons are evidence; the one deleted without a reason waits for the next sweep.
    assert_eq!(report.dispatched.enqueued, 3, "{report:?}");
    assert_eq!(report.pending_gone, 1, "{report:?}");
    // The listing (cve and app+sca) and one lookup per type.
    assert_eq!(rig.sim.call_count("DescribeVulList"), 4);
    assert!(!rig.resolved().contains_key(&format!("vul:{removed}")));
    // The next sweep is not skipped, although the statistics are unchanged, and confirms it.
    let t = t + time::Duration::seconds(60);
    let report = rig.poller.poll_once(t).await.unwrap();
    assert!(!report.skipped_unchanged, "{report:?}");
    assert_eq!(
        (
            report.looked_up,
            report.dispatched.enqueued,
            report.pending_gone
        ),
        (1, 1, 0),
        "{report:?}"
    );

    let resolved = rig.resolved();
    assert_eq!(resolved.len(), 4, "{:?}", resolved.keys());
    for (id, want, status) in [
        (fixed, Resolution::Fixed, Some("7")),
        (ignored, Resolution::Ignored, Some("10")),
        (expired, Resolution::Expired, Some("20")),
        (removed, Resolution::Gone, None),
    ] {
        let events = &resolved[&format!("vul:{id}")];
        assert_eq!(events.len(), 1, "vul:{id}: exactly one resolved event");
        let ev = &events[0];
        assert_eq!(ev.resolution, Some(want), "vul:{id}");
        let f = ev.finding.as_ref().unwrap();
        assert_eq!(f.resolution, Some(want), "vul:{id}");
        // The id derives from (fingerprint, kind, generation) as before: not from the reason.
        assert_eq!(ev.id, event_id(&[&f.fingerprint, "resolved", "1", ""]));
        match status {
            Some(code) => {
                // The looked-up record: its status fields and raw item.
                assert_eq!(f.native_status, code, "vul:{id}");
                assert_eq!(f.raw["PrimaryId"], id);
                assert_eq!(f.raw["Status"].to_string(), code);
                assert_eq!(
                    f.kubernetes.cluster_id.as_deref(),
                    Some(rig.cluster.as_str())
                );
            }
            None => {
                assert_eq!(f.raw, serde_json::Value::Null);
                assert_eq!(f.description, "No longer listed by Security Center.");
            }
        }
        let record = rig
            .store
            .get_record("sim", Domain::Vulnerabilities, &f.fingerprint)
            .unwrap()
            .unwrap();
        assert_eq!(record.status, RecordStatus::Resolved);
        assert_eq!(record.resolution, Some(want), "vul:{id}");
    }

    // Later polls neither look up again nor resolve again.
    rig.sim.reset_calls();
    let t = t + time::Duration::seconds(60 * (RECONCILE_EVERY as i64 + 1));
    let again = rig.poller.poll_once(t).await.unwrap();
    assert!(!again.skipped_unchanged);
    assert_eq!(
        (again.looked_up, again.dispatched.enqueued),
        (0, 0),
        "{again:?}"
    );
    assert_eq!(rig.sim.call_count("DescribeVulList"), 2, "the listing only");
    assert!(rig.resolved().values().all(|v| v.len() == 1));
}

/// A lookup that fails does not fail the poll; the finding waits for the next sweep, whose
/// lookup is tried again; when that fails too, the finding resolves as `gone`, exactly once.
#[tokio::test]
async fn a_failed_lookup_resolves_as_gone_exactly_once_without_failing_the_poll() {
    // Two attempts per call, retried after 10 ms (the throttle asks for 10 ms too).
    let rig =
        Rig::start("max_attempts = 2\nretry_initial_delay = \"10ms\"\nretry_max_delay = \"10ms\"")
            .await;
    let ([fixed], t) = opened(&rig).await;

    rig.sim
        .set_status(simulator::Domain::Vuln, fixed, 7)
        .unwrap();
    // Every attempt of the lookup is throttled; the listing of the same action is not.
    rig.sim
        .inject_fault(
            FaultSpec::new(FaultKind::Throttling {
                code: "Throttling.User".into(),
                retry_after_ms: Some(10),
                status: None,
            })
            .for_action("DescribeVulList")
            .with_param("Ids")
            .times(4),
        )
        .unwrap();
    let first = rig.poller.poll_once(t).await.unwrap();
    assert!(first.lookup_failed, "{first:?}");
    assert_eq!(
        (first.pending_gone, first.dispatched.enqueued),
        (1, 0),
        "{first:?}"
    );
    let t = t + time::Duration::seconds(60);
    let report = rig.poller.poll_once(t).await.unwrap();
    assert!(
        rig.sim.pending_faults().is_empty(),
        "both attempts of both sweeps were made"
    );
    assert_eq!(report.looked_up, 1, "{report:?}");
    assert!(report.lookup_failed, "{report:?}");
    assert_eq!(report.explained, 0);
    assert_eq!(report.dispatched.enqueued, 1, "{report:?}");
    let resolved = rig.resolved();
    let events = &resolved[&format!("vul:{fixed}")];
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].resolution, Some(Resolution::Gone));

    // The lookup works again, but the finding is closed: nothing more, not even a lookup.
    rig.sim.reset_calls();
    let t = t + time::Duration::seconds(60 * (RECONCILE_EVERY as i64 + 1));
    let again = rig.poller.poll_once(t).await.unwrap();
    assert_eq!(
        (again.looked_up, again.dispatched.enqueued),
        (0, 0),
        "{again:?}"
    );
    assert_eq!(rig.sim.call_count("DescribeVulList"), 2, "the listing only");
    assert_eq!(rig.resolved()[&format!("vul:{fixed}")].len(), 1);
}

/// A 200 that is not a page — nothing but a `RequestId`, or an error `Code` inside the 200 —
/// fails the poll, records nothing and resolves nothing; once the answers are normal again,
/// nothing is re-sent and what opened meanwhile is new exactly once. (Read as empty pages,
/// list-less answers once resolved every open vulnerability and re-opened them as `new` later.)
#[tokio::test]
async fn answers_that_are_not_pages_never_resolve_anything() {
    // One attempt per call, so every injected answer is one failed poll.
    let rig = Rig::start("max_attempts = 1").await;
    let ([a, b], t) = opened(&rig).await;
    let before = rig.outbox().len();
    let mut t = t + time::Duration::seconds(60 * RECONCILE_EVERY as i64);
    for kind in [
        FaultKind::ListMissing,
        FaultKind::CodeInOk {
            code: "ServiceUnavailable".into(),
        },
    ] {
        rig.sim
            .inject_fault(FaultSpec::new(kind.clone()).for_action("DescribeVulList"))
            .unwrap();
        let err = rig.poller.poll_once(t).await.unwrap_err().to_string();
        assert!(
            err.contains("VulRecords") || err.contains("ServiceUnavailable"),
            "{kind:?}: {err}"
        );
        assert!(rig.sim.pending_faults().is_empty(), "{kind:?} was answered");
        assert_eq!(rig.outbox().len(), before, "{kind:?}: nothing enqueued");
        for id in [a, b] {
            let records = rig.store.records("sim", Domain::Vulnerabilities).unwrap();
            let r = records
                .iter()
                .find(|(_, r)| r.id == format!("vul:{id}"))
                .expect("still tracked");
            assert_eq!(
                r.1.status,
                RecordStatus::Active,
                "{kind:?}: vul:{id} still open"
            );
        }
        t += time::Duration::seconds(60 * (RECONCILE_EVERY as i64 + 1));
    }

    // Normal answers again, with one vulnerability opened during the fault window.
    let c = rig.add_vuln();
    let report = rig.poller.poll_once(t).await.unwrap();
    assert_eq!(report.dispatched.enqueued, 1, "{report:?}");
    assert!(rig.resolved().is_empty(), "nothing resolved");
    let news = rig.news();
    for id in [a, b, c] {
        let n = news.iter().filter(|n| **n == format!("vul:{id}")).count();
        assert_eq!(n, 1, "vul:{id} is new exactly once");
    }
}

/// A sweep holding a record that cannot be read is incomplete: the finding behind that record
/// would look gone, so nothing is resolved until a sweep is complete again; the record is in
/// the store's quarantine. Then what really left the list resolves, once.
#[tokio::test]
async fn a_sweep_with_an_unreadable_record_resolves_nothing() {
    let rig = Rig::start("").await;
    let ([poisoned, removed], t) = opened(&rig).await;
    rig.sim
        .remove_finding(simulator::Domain::Vuln, removed)
        .unwrap();
    rig.sim
        .inject_fault(
            FaultSpec::new(FaultKind::PoisonRecord { id: poisoned })
                .for_action("DescribeVulList")
                .times(simulator::MAX_FAULT_COUNT),
        )
        .unwrap();
    let t = t + time::Duration::seconds(60 * RECONCILE_EVERY as i64);
    let report = rig.poller.poll_once(t).await.unwrap();
    assert_eq!(report.quarantined, 1, "{report:?}");
    assert_eq!(report.dispatched.enqueued, 0, "{report:?}");
    assert!(rig.resolved().is_empty(), "nothing resolved");
    let records = rig.store.records("sim", Domain::Vulnerabilities).unwrap();
    for id in [poisoned, removed] {
        let (_, r) = records
            .iter()
            .find(|(_, r)| r.id == format!("vul:{id}"))
            .expect("tracked");
        assert_eq!(r.status, RecordStatus::Active, "vul:{id}");
    }
    let kept = rig.store.quarantined().unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].action, "DescribeVulList");
    assert!(kept[0].raw.contains(&format!("\"PrimaryId\":{poisoned}")));
    assert!(
        kept[0].reason.contains("number out of range"),
        "{:?}",
        kept[0]
    );

    // The same record again is the same entry, seen twice.
    let t = t + time::Duration::seconds(60 * (RECONCILE_EVERY as i64 + 1));
    rig.poller.poll_once(t).await.unwrap();
    let kept = rig.store.quarantined().unwrap();
    assert_eq!((kept.len(), kept[0].times), (1, 2));
    assert!(rig.resolved().is_empty(), "still nothing resolved");

    // Readable again: only what really left resolves, once two complete sweeps agree.
    rig.sim.clear_faults();
    let t = t + time::Duration::seconds(60 * (RECONCILE_EVERY as i64 + 1));
    let report = rig.poller.poll_once(t).await.unwrap();
    assert_eq!((report.quarantined, report.pending_gone), (0, 1));
    assert!(rig.resolved().is_empty());
    let report = rig
        .poller
        .poll_once(t + time::Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(report.pending_gone, 0);
    let resolved = rig.resolved();
    assert_eq!(
        resolved.keys().collect::<Vec<_>>(),
        vec![&format!("vul:{removed}")]
    );
    assert_eq!(resolved[&format!("vul:{removed}")].len(), 1);
}

/// `initial_sync = "baseline"` over more open alerts than one poll reads (`max_pages = 1`): the
/// first poll tracks the newest page silently and leaves the rest to the backfill; the next
/// polls read it, silently too, and the one summary — counting every open alert — is sent
/// when nothing of the first start is left. Afterwards a new alert is news.
#[tokio::test]
async fn a_first_start_past_the_page_cap_stays_silent_until_read_and_is_summarised_once() {
    let rig = Rig::start_for(Domain::Alerts, "max_pages = 1").await;
    let now = time::OffsetDateTime::now_utc();
    let now_ms = now.unix_timestamp() * 1000;
    // Open alerts of the cluster, an hour old and older (outside any later poll's window).
    for i in 0..250 {
        rig.sim
            .add_finding(
                simulator::Domain::Alert,
                Some(&rig.cluster),
                json!({ "LastTimeStamp": now_ms - 3_600_000 - i * 10_000 }),
            )
            .unwrap();
    }
    let open = rig
        .sim
        .findings(simulator::Domain::Alert)
        .iter()
        .filter(|a| a["EventStatus"] == 1 && a["K8sClusterId"] == rig.cluster.as_str())
        .count() as u64;
    assert!(open > 250);

    let mut t = now;
    let mut polls = Vec::new();
    loop {
        let report = rig.poller.poll_once(t).await.unwrap();
        polls.push(report.clone());
        if report.backfill == 0 {
            break;
        }
        assert!(
            rig.outbox().is_empty(),
            "silent while the first start is read"
        );
        assert!(polls.len() < 10, "{polls:?}");
        t += time::Duration::seconds(30);
    }
    assert!(polls.len() >= 3, "{polls:?}");
    assert!(
        polls[0].incomplete && polls[0].backfill == 1,
        "{:?}",
        polls[0]
    );
    let tracked: u64 = polls.iter().map(|p| p.silently_tracked).sum();
    assert_eq!(tracked, open);
    let outbox = rig.outbox();
    assert_eq!(outbox.len(), 1, "one summary: {outbox:?}");
    assert_eq!(outbox[0].kind, EventKind::Summary);
    assert_eq!(outbox[0].summary.as_ref().unwrap().tracked, open);

    let id = rig
        .sim
        .add_finding(simulator::Domain::Alert, Some(&rig.cluster), json!({}))
        .unwrap()["Id"]
        .as_i64()
        .unwrap();
    let report = rig
        .poller
        .poll_once(t + time::Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(report.dispatched.enqueued, 1, "{report:?}");
    assert_eq!(rig.news(), [format!("alert:{id}")]);
}

/// A vulnerability sweep stopped by the page cap is incomplete: what it listed is recorded and
/// sent, but the findings it did not reach are not missed — nothing is judged or resolved.
#[tokio::test]
async fn a_sweep_cut_by_the_page_cap_resolves_nothing() {
    let rig = Rig::start("max_pages = 1").await;
    let t0 = time::OffsetDateTime::now_utc();
    let first = rig.poller.poll_once(t0).await.unwrap();
    assert!(
        !first.incomplete,
        "the cluster's few fit one page: {first:?}"
    );
    let before = rig.store.records("sim", Domain::Vulnerabilities).unwrap();
    assert!(!before.is_empty());
    // 120 newer ones: the listing (newest first, 100 a page) no longer reaches the old ones.
    let added: Vec<i64> = (0..120).map(|_| rig.add_vuln()).collect();
    let mut t = t0;
    for n in 0..3 {
        t += time::Duration::seconds(60 * (RECONCILE_EVERY as i64 + 1));
        let report = rig.poller.poll_once(t).await.unwrap();
        assert!(report.incomplete, "{report:?}");
        assert_eq!(report.pending_gone, 0, "nothing judged: {report:?}");
        if n == 0 {
            assert_eq!(report.dispatched.enqueued, 100, "the newest page is news");
        }
    }
    assert!(rig.resolved().is_empty(), "nothing resolved");
    for (fp, r) in before {
        let now = rig
            .store
            .get_record("sim", Domain::Vulnerabilities, &fp)
            .unwrap()
            .unwrap();
        assert_eq!(
            (now.status, now.absent_sweeps),
            (r.status, 0),
            "{} neither resolved nor counted missing",
            r.id
        );
    }
    assert_eq!(added.len(), 120);
}
