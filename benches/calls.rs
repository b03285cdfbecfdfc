//! Security Center calls per hour, by domain and action, for one account of 1, 10, 100 and
//! 1,000 clusters, "listed" (the source's `clusters` names every cluster) and "account-wide"
//! (`clusters` empty), at default intervals; with the busiest second per action and the cycle
//! time of each domain's poll under the default call budget (5 calls per second per action).
//!
//! `cargo bench --bench calls` (about 8 minutes; `SASRELAY_BENCH_CLUSTERS=1,10` runs only those
//! sizes). Not a test: nothing asserts a figure.
//!
//! An hour per case is out of reach, so the bench runs the library's own [`Poller`] in
//! process against the simulator and counts, from the simulator's per-action counters, the
//! calls of each kind of poll: the first poll, an idle poll (windowed domains: nothing new;
//! vulnerabilities and baseline: the statistics probe, unchanged), the periodic full sweep
//! (every [`RECONCILE_EVERY`]th interval even when the probe is unchanged) and a poll after a
//! trickle of new findings (one new finding per domain since the last poll: a changed probe,
//! so a full sweep). Calls per hour follow from the default intervals (alerts 30 s, firewall
//! 60 s, vulnerabilities 15 min, baseline 1 h) and that cadence. The `Poller` rather than the
//! binary because the bench needs to choose each poll's `now` (to reach the sixth interval
//! without waiting 90 minutes) and to attribute calls to one poll.
//!
//! Counting runs at the highest budget (50 calls per second per action) to stay within
//! minutes. The cycle time is then measured separately: one poll per domain under the default
//! budget, in parallel (each domain has actions of its own, so buckets of its own), for at
//! most [`TIMED_CAP`]; a poll that ends within it is a measured figure, one that does not is
//! stopped there and projected from its measured pace (calls made / time taken) and its
//! counted calls. The busiest second per action is the simulator's, over those timed polls.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sasrelay::credentials::CredentialContext;
use sasrelay::credentials::env::MapEnv;
use sasrelay::finding::Domain;
use sasrelay::pipeline::dispatch::{Dispatcher, Silences, SinkHandle};
use sasrelay::pipeline::poller::{Poller, RECONCILE_EVERY};
use sasrelay::sas::source::{DomainPoll, Source};
use sasrelay::simulator::{self, InitialFindings, SimConfig, SimHandle, Simulator};
use sasrelay::sinks::Sink;
use sasrelay::store::Store;
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long one timed poll may run under the default budget before it is projected instead.
const TIMED_CAP: Duration = Duration::from_secs(8);
const CLUSTERS: [usize; 4] = [1, 10, 100, 1_000];
/// The targets at 1,000 clusters.
const TARGET_CALLS_PER_HOUR: f64 = 15_000.0;
const TARGET_BUSIEST: u64 = 5;

/// Findings per cluster: a modest account (the call counts of listed sources grow with
/// clusters, not findings; account-wide baseline sweeps grow with machines that have warnings).
fn per_cluster() -> InitialFindings {
    InitialFindings {
        alerts: 3,
        vulns: 4,
        baseline: 1,
        firewall: 2,
    }
}

type Calls = BTreeMap<String, u64>;

/// The calls of one kind of poll, by action.
#[derive(Default, Clone)]
struct DomainCalls {
    first: Calls,
    idle: Calls,
    /// Vulnerabilities and baseline: the periodic full sweep (probe + sweep). Account-wide
    /// sources have no probe, so every poll is a full sweep and this is the idle poll.
    reconcile: Calls,
    trickle: Calls,
}

/// What one domain's timed poll showed.
#[derive(Default, Clone)]
struct Cycle {
    secs: f64,
    measured: bool,
}

/// One domain of one case.
struct DomainResult {
    calls: DomainCalls,
    cycle: Cycle,
    /// The poll interval, in seconds.
    interval: f64,
}

impl DomainResult {
    /// Calls per hour of `count(kind of poll)`, at idle and with a trickle: vulnerabilities
    /// and baseline sweep in full every [`RECONCILE_EVERY`]th idle interval; a trickle changes
    /// their probe, so every poll sweeps.
    fn hourly(&self, d: Domain, count: impl Fn(&Calls) -> f64) -> (f64, f64) {
        let polls = 3600.0 / self.interval;
        let every = f64::from(RECONCILE_EVERY);
        let c = &self.calls;
        let idle = match d {
            Domain::Vulnerabilities | Domain::Baseline => {
                polls * ((every - 1.0) * count(&c.idle) + count(&c.reconcile)) / every
            }
            Domain::Alerts | Domain::Firewall => polls * count(&c.idle),
        };
        (idle, polls * count(&c.trickle))
    }
}

struct CaseResult {
    clusters: usize,
    listed: bool,
    domains: BTreeMap<Domain, DomainResult>,
    busiest: Calls,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let mut results = Vec::new();
    // `SASRELAY_BENCH_CLUSTERS=1,10` runs only those sizes (a quick look).
    let sizes: Vec<usize> = std::env::var("SASRELAY_BENCH_CLUSTERS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| CLUSTERS.to_vec());
    for clusters in sizes {
        for listed in [true, false] {
            let t = Instant::now();
            let r = runtime.block_on(case(clusters, listed));
            eprintln!(
                "calls: {clusters} clusters {} done in {:.0} s",
                mode(listed),
                t.elapsed().as_secs_f64()
            );
            results.push(r);
        }
    }
    print_tables(&results);
    println!(
        "\ncalls: whole bench {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

fn mode(listed: bool) -> &'static str {
    if listed { "listed" } else { "account-wide" }
}

/// The rig of one case: a simulator, a store, a dispatcher with a file sink nobody delivers.
struct Rig {
    sim: SimHandle,
    store: Store,
    dispatcher: Arc<Dispatcher>,
    dir: tempfile::TempDir,
    clusters: Vec<String>,
}

impl Rig {
    async fn start(clusters: usize) -> Rig {
        let sim = Simulator::start(SimConfig {
            clusters,
            initial: per_cluster(),
            initial_per_cluster: true,
            hostile_strings: false,
            ..SimConfig::default()
        })
        .await
        .expect("simulator");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("sk"), simulator::DEMO_ACCESS_KEY_SECRET).expect("secret");
        let store = Store::open(&dir.path().join("state")).expect("store");
        let settings =
            sasrelay::config::parse(Path::new("bench.toml"), &config(&sim, &dir, &[], ""))
                .expect("config");
        let sink = Arc::new(Sink::build(&settings.sinks[0]).expect("sink"));
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
            Arc::new(Silences::load(store.clone()).expect("silences")),
            store.clone(),
            Arc::new(Notify::new()),
        ));
        let clusters = sim.clusters().into_iter().map(|c| c.cluster_id).collect();
        Rig {
            sim,
            store,
            dispatcher,
            dir,
            clusters,
        }
    }

    /// A source on the simulator: `clusters` listed (or none: account-wide), `extra` lines.
    async fn source(&self, clusters: &[String], extra: &str) -> (Arc<Source>, Vec<DomainPoll>) {
        let text = config(&self.sim, &self.dir, clusters, extra);
        let settings = sasrelay::config::parse(Path::new("bench.toml"), &text).expect("config");
        let ctx = CredentialContext::new(
            reqwest::Client::new(),
            CancellationToken::new(),
            tokio_util::task::TaskTracker::new(),
        );
        let polls = settings.sources[0].polls.clone();
        let source = Source::connect(settings.sources[0].clone(), &MapEnv::new(), &ctx)
            .await
            .expect("source");
        (Arc::new(source), polls)
    }

    fn poller(&self, source: &Arc<Source>, poll: &DomainPoll) -> Poller {
        Poller::new(
            source.clone(),
            *poll,
            self.store.clone(),
            self.dispatcher.clone(),
        )
    }
}

/// The bench's configuration: every domain at its default interval, a file sink.
fn config(sim: &SimHandle, dir: &tempfile::TempDir, clusters: &[String], extra: &str) -> String {
    let list: Vec<String> = clusters.iter().map(|c| format!("\"{c}\"")).collect();
    format!(
        "[[source]]\nname = \"bench\"\nregion = \"cn-hangzhou\"\nendpoint = \"{}\"\nclusters = [{}]\ndomains = [\"alerts\", \"vulnerabilities\", \"baseline\", \"firewall\"]\ncredentials = {{ type = \"access_key\", access_key_id = \"sasrelay-sim\", access_key_secret = {{ file = \"{}\" }} }}\n{extra}\n[[sink]]\nname = \"out\"\ntype = \"file\"\npath = \"{}\"\n",
        sim.base_url(),
        list.join(", "),
        dir.path().join("sk").display(),
        dir.path().join("events.jsonl").display()
    )
}

fn actions_of(domain: Domain) -> &'static [&'static str] {
    match domain {
        Domain::Alerts => &["DescribeSuspEvents", "GetClusterSuspEventStatistics"],
        Domain::Vulnerabilities => &["DescribeVulList", "DescribeClusterVulStatistics"],
        Domain::Baseline => &[
            "DescribeCheckWarningSummary",
            "DescribeWarningMachines",
            "DescribeCheckWarnings",
            "DescribeCheckWarningDetail",
            "GetClusterCheckItemWarningStatistics",
        ],
        Domain::Firewall => &[
            "ListInterceptionHistory",
            "GetInterceptionSummary",
            "ListClusterInterceptionConfig",
        ],
    }
}

/// Calls of `domain`'s actions between two snapshots of the simulator's counters.
fn delta(domain: Domain, before: &Calls, after: &Calls) -> Calls {
    actions_of(domain)
        .iter()
        .filter_map(|a| {
            let n = after.get(*a).copied().unwrap_or(0) - before.get(*a).copied().unwrap_or(0);
            (n > 0).then(|| (a.to_string(), n))
        })
        .collect()
}

fn sum(c: &Calls) -> u64 {
    c.values().sum()
}

/// One poll of `poller` at `now`; the calls it made.
async fn counted(sim: &Simulator, domain: Domain, poller: &Poller, now: OffsetDateTime) -> Calls {
    let before = sim.calls();
    poller.poll_once(now).await.expect("poll");
    delta(domain, &before, &sim.calls())
}

/// Adds one new, open finding of `domain` on a cluster of the world.
fn trickle(sim: &Simulator, domain: Domain, cluster: &str) {
    let (d, fields) = match domain {
        Domain::Alerts => (simulator::Domain::Alert, json!({ "EventStatus": 1 })),
        Domain::Vulnerabilities => (
            simulator::Domain::Vuln,
            json!({ "Type": "cve", "Status": 1, "Necessity": "asap" }),
        ),
        Domain::Baseline => (simulator::Domain::Baseline, json!({ "Status": 1 })),
        Domain::Firewall => (simulator::Domain::Firewall, json!({})),
    };
    sim.add_finding(d, Some(cluster), fields).expect("trickle");
}

/// Counts the calls of each kind of poll of one domain (at 50 calls per second).
async fn count_domain(
    rig: &Rig,
    source: &Arc<Source>,
    poll: &DomainPoll,
    listed: bool,
) -> DomainCalls {
    let sim: &Simulator = &rig.sim;
    let poller = rig.poller(source, poll);
    let d = poll.domain;
    let snapshot = matches!(d, Domain::Vulnerabilities | Domain::Baseline);
    let interval = time::Duration::try_from(poll.interval).expect("interval");
    // Snapshot domains: synthetic times one interval apart reach the sixth without waiting.
    // Windowed domains read up to now, so they poll at the real now.
    let at = |k: i32| {
        if snapshot {
            OffsetDateTime::now_utc() + interval * k
        } else {
            OffsetDateTime::now_utc()
        }
    };
    let first = counted(sim, d, &poller, at(0)).await;
    let every = RECONCILE_EVERY as i32;
    // A first start records no probe, so the second poll of a listed snapshot domain sweeps
    // and records one (a one-off, not counted); the steady state begins after it.
    let settled = if snapshot && listed {
        counted(sim, d, &poller, at(1)).await;
        1
    } else {
        0
    };
    let mut out = DomainCalls {
        first,
        idle: counted(sim, d, &poller, at(settled + 1)).await,
        ..DomainCalls::default()
    };
    out.reconcile = if snapshot && listed {
        counted(sim, d, &poller, at(settled + every)).await
    } else {
        out.idle.clone()
    };
    let cluster = &rig.clusters[rig.clusters.len() / 2];
    trickle(sim, d, cluster);
    out.trickle = counted(sim, d, &poller, at(settled + every + 1)).await;
    out
}

/// One poll of the domain under the default budget (a full sweep for snapshot domains), at
/// most [`TIMED_CAP`]: measured when it ends in time, else projected from its pace.
async fn time_domain(rig: &Rig, source: &Arc<Source>, poll: &DomainPoll, full: u64) -> Cycle {
    let sim: &Simulator = &rig.sim;
    let stop = CancellationToken::new();
    let poller = rig.poller(source, poll).with_stop(stop.clone());
    let d = poll.domain;
    let interval = time::Duration::try_from(poll.interval).expect("interval");
    // Snapshot domains: far enough ahead that the periodic full sweep is due.
    let now = if matches!(d, Domain::Vulnerabilities | Domain::Baseline) {
        OffsetDateTime::now_utc() + interval * (4 * RECONCILE_EVERY as i32)
    } else {
        OffsetDateTime::now_utc()
    };
    let before = sim.calls();
    let started = Instant::now();
    let poll_fut = poller.poll_once(now);
    tokio::pin!(poll_fut);
    let finished = tokio::select! {
        r = &mut poll_fut => { r.expect("timed poll"); true }
        _ = tokio::time::sleep(TIMED_CAP) => false,
    };
    let secs = started.elapsed().as_secs_f64();
    if finished {
        return Cycle {
            secs,
            measured: true,
        };
    }
    let done = sum(&delta(d, &before, &sim.calls())).max(1);
    stop.cancel();
    // Let the poll stop at its page boundary so its calls end before the next case.
    let _ = tokio::time::timeout(Duration::from_secs(30), &mut poll_fut).await;
    Cycle {
        secs: secs * full as f64 / done as f64,
        measured: false,
    }
}

async fn case(clusters: usize, listed: bool) -> CaseResult {
    let rig = Rig::start(clusters).await;
    let names: Vec<String> = if listed {
        rig.clusters.clone()
    } else {
        Vec::new()
    };
    // Counting: its own quota group so its 50/s buckets are not the timed polls' 5/s ones.
    let (fast, polls) = rig
        .source(&names, "calls_per_second = 50\nquota_group = \"counting\"")
        .await;
    let counts = each_domain(&polls, |p| count_domain(&rig, &fast, p, listed)).await;
    rig.sim.reset_calls();
    let (budgeted, _) = rig.source(&names, "").await;
    let timed = each_domain(&polls, |p| {
        let i = polls.iter().position(|x| x.domain == p.domain).unwrap_or(0);
        let c = &counts[i];
        let full = sum(if matches!(p.domain, Domain::Alerts | Domain::Firewall) {
            &c.idle
        } else {
            &c.reconcile
        });
        time_domain(&rig, &budgeted, p, full)
    })
    .await;
    let mut domains = BTreeMap::new();
    for ((p, calls), cycle) in polls.iter().zip(counts).zip(timed) {
        domains.insert(
            p.domain,
            DomainResult {
                calls,
                cycle,
                interval: p.interval.as_secs_f64(),
            },
        );
    }
    CaseResult {
        clusters,
        listed,
        domains,
        busiest: rig.sim.busiest_seconds(),
    }
}

/// Runs `f` for the four domains concurrently (each domain has actions, so buckets, of its
/// own); the outputs in the order of `polls`.
async fn each_domain<'a, F, Fut, T>(polls: &'a [DomainPoll], f: F) -> Vec<T>
where
    F: Fn(&'a DomainPoll) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    assert_eq!(polls.len(), 4, "the bench configures all four domains");
    let (a, b, c, d) = tokio::join!(f(&polls[0]), f(&polls[1]), f(&polls[2]), f(&polls[3]));
    vec![a, b, c, d]
}

fn print_tables(results: &[CaseResult]) {
    println!(
        "\nSecurity Center calls per hour by domain, default intervals (alerts 30s, firewall 60s, vulnerabilities 15m, baseline 1h)"
    );
    println!(
        "busiest = most calls of one action in any one second, over one poll per domain under the default budget (5/s per action)"
    );
    println!(
        "cycle = one poll under the default budget (vulnerabilities, baseline: a full sweep); ~ = projected from the measured pace"
    );
    println!(
        "\n| clusters | sources | domain | first poll | idle poll | full sweep | trickle poll | calls/h idle | calls/h trickle | busiest s | cycle |"
    );
    println!("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let (mut idle_total, mut trickle_total, mut worst) = (0.0, 0.0, 0);
        let mut fits = true;
        for (&d, dr) in &r.domains {
            let (c, cycle) = (&dr.calls, &dr.cycle);
            let (idle, trickle) = dr.hourly(d, |m| sum(m) as f64);
            let busiest = actions_of(d)
                .iter()
                .map(|a| r.busiest.get(*a).copied().unwrap_or(0))
                .max()
                .unwrap_or(0);
            fits &= cycle.secs <= dr.interval;
            worst = worst.max(busiest);
            idle_total += idle;
            trickle_total += trickle;
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {busiest} | {}{} |",
                r.clusters,
                mode(r.listed),
                d.as_str(),
                sum(&c.first),
                sum(&c.idle),
                sum(&c.reconcile),
                sum(&c.trickle),
                idle,
                trickle,
                if cycle.measured { "" } else { "~" },
                fmt_secs(cycle.secs),
            );
        }
        println!(
            "| {} | {} | **all** | | | | | **{idle_total:.0}** | **{trickle_total:.0}** | {worst} | {} |",
            r.clusters,
            mode(r.listed),
            verdict(idle_total, worst, fits),
        );
    }
    print_actions(results);
}

fn verdict(idle: f64, busiest: u64, cycles_fit: bool) -> String {
    let mut misses = Vec::new();
    if idle > TARGET_CALLS_PER_HOUR {
        misses.push("calls/h");
    }
    if busiest > TARGET_BUSIEST {
        misses.push("busiest second");
    }
    if !cycles_fit {
        misses.push("cycle > interval");
    }
    if misses.is_empty() {
        "fits the targets".into()
    } else {
        format!("misses: {}", misses.join(", "))
    }
}

/// Calls per hour by action (idle / trickle).
fn print_actions(results: &[CaseResult]) {
    println!("\nCalls per hour by action (idle / trickle)\n");
    println!("| clusters | sources | action | idle | trickle | busiest s |");
    println!("|---:|---|---|---:|---:|---:|");
    for r in results {
        for (&d, dr) in &r.domains {
            for a in actions_of(d) {
                let (idle, trickle) = dr.hourly(d, |m| m.get(*a).copied().unwrap_or(0) as f64);
                if idle + trickle == 0.0 {
                    continue;
                }
                println!(
                    "| {} | {} | {a} | {idle:.0} | {trickle:.0} | {} |",
                    r.clusters,
                    mode(r.listed),
                    r.busiest.get(*a).copied().unwrap_or(0)
                );
            }
        }
    }
}

fn fmt_secs(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        format!("{:.1} min", s / 60.0)
    }
}
