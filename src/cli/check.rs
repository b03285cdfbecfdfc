//! `sasrelay check`: runs the step `sasrelay run` starts with,
//! [`daemon::build`](crate::daemon::build) — the file checked, every sink built with its
//! secrets, every custom template rendered against the samples, the admin token read, each
//! source's credentials tried — and reports every problem at once, each with file, line, column
//! and key, exiting 78 as `run` would. A source whose credentials cannot be loaded now is a
//! warning (`run` starts and retries it). With `--online`, makes one signed call per source and
//! domain and says which of reachable, authenticated and permitted failed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use time::OffsetDateTime;

use super::out::outln;
use super::{CONFIG_ENV, DEFAULT_CONFIG, EXIT_CONFIG, Session};
use crate::credentials::env::ProcessEnv;
use crate::daemon::build::{self, Built};
use crate::finding::Domain;
use crate::pipeline::poller::RECONCILE_EVERY;
use crate::sas::error::{ErrorClass, SasError};
use crate::sas::source::{Source, SourceSettings};

/// `sasrelay check` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file.
    #[arg(long, short, value_name = "FILE", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Make one signed call per source and domain and report what each can see.
    #[arg(long)]
    online: bool,
}

/// Runs `check`.
pub async fn run(args: Args) -> ExitCode {
    let built = match build::load(&args.config, &ProcessEnv) {
        Ok(b) => b,
        Err(errs) => {
            eprint!("{errs}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    print_summary(&built);
    if !args.online {
        return ExitCode::SUCCESS;
    }
    let session = match Session::open() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut ok = true;
    for source in built.settings.sources {
        ok &= probe_source(source, &session).await;
    }
    session.close().await;
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: one or more sources cannot read Security Center; see above");
        ExitCode::FAILURE
    }
}

/// The verdict line, the warnings (a shadowed route, an unused time interval, a source whose
/// credentials cannot be loaded now: they do not stop `run`) and one line per source.
fn print_summary(built: &Built) {
    let settings = &built.settings;
    let (sources, sinks) = (settings.sources.len(), built.sinks.len());
    outln!(
        "{}: configuration OK ({sources} source{}, {sinks} sink{})",
        settings.file.display(),
        if sources == 1 { "" } else { "s" },
        if sinks == 1 { "" } else { "s" },
    );
    for w in &built.warnings {
        eprintln!("warning: {w}");
    }
    for s in &settings.sources {
        outln!(
            "  source {}: region {} via {} (signature {:?}), clusters: {}, domains: {}",
            s.name,
            s.region,
            s.client.endpoint,
            s.client.signature,
            if s.clusters.is_empty() {
                "all".to_string()
            } else {
                s.clusters.join(", ")
            },
            s.domains
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// One signed call per domain of one source; prints what each can see. True when all succeed.
async fn probe_source(settings: SourceSettings, session: &Session) -> bool {
    outln!("source {} ({}):", settings.name, settings.client.endpoint);
    print_budget(&settings);
    let domains = settings.domains.clone();
    let source = match Source::connect(settings, &ProcessEnv, &session.ctx).await {
        Ok(s) => s,
        Err(e) => {
            outln!("  credentials: FAILED\n    {e}");
            return false;
        }
    };
    // A static key is only proven by the calls below; an expiring one was fetched just now.
    outln!(
        "  credentials: loaded ({})",
        source.credential_provider().unwrap_or("custom")
    );
    let now = OffsetDateTime::now_utc();
    let mut ok = true;
    for domain in domains {
        match source.probe(domain, now).await {
            Ok(n) => outln!(
                "  {:<16} reachable, authenticated, permitted: {n} open",
                domain.as_str()
            ),
            Err(e) => {
                ok = false;
                outln!("  {:<16} {}", domain.as_str(), probe_verdict(&e));
                outln!("    {e}");
            }
        }
    }
    ok
}

/// The least a source costs of the call budget at idle (every listing one page): calls an hour
/// per domain, and how long its longest poll takes at `calls_per_second` (a vulnerability or
/// baseline poll that also sweeps). Listings longer than a page, and a baseline sweep's
/// machines and check items, add to it; `sasrelay status` shows what a running daemon spends.
pub fn idle_budget(s: &SourceSettings) -> Vec<(Domain, f64, Duration)> {
    let clusters = s.clusters.len().max(1) as f64;
    let windows = if s.windows_account_wide() {
        1.0
    } else {
        clusters
    };
    let types = s.vulnerability_types.len().max(1) as f64;
    let probed = !s.clusters.is_empty();
    let rate = f64::from(s.client.calls_per_second.get());
    s.polls
        .iter()
        .map(|p| {
            // (calls of an ordinary poll, calls of the poll that sweeps)
            let (poll, sweep) = match p.domain {
                Domain::Alerts => (2.0 * windows, 2.0 * windows),
                Domain::Firewall => (windows, windows),
                Domain::Vulnerabilities if probed => (clusters, clusters + clusters * types),
                Domain::Vulnerabilities => (types, types),
                Domain::Baseline if probed => (clusters, 2.0 * clusters),
                Domain::Baseline => (1.0, 1.0),
            };
            let every = if probed && matches!(p.domain, Domain::Vulnerabilities | Domain::Baseline)
            {
                f64::from(RECONCILE_EVERY)
            } else {
                1.0
            };
            let per_poll = poll + (sweep - poll) / every;
            let per_hour = per_poll * 3600.0 / p.interval.as_secs_f64().max(1.0);
            (p.domain, per_hour, Duration::from_secs_f64(sweep / rate))
        })
        .collect()
}

/// Prints [`idle_budget`] for `s`, and a warning for a domain whose poll cannot end within its
/// interval at the budget.
fn print_budget(s: &SourceSettings) {
    let budget = idle_budget(s);
    let total: f64 = budget.iter().map(|(_, h, _)| h).sum();
    outln!(
        "  call budget: {} calls a second per action; at idle at least {:.0} calls an hour ({})",
        s.client.calls_per_second,
        total,
        budget
            .iter()
            .map(|(d, h, _)| format!("{} {h:.0}", d.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for ((domain, _, cycle), poll) in budget.iter().zip(&s.polls) {
        if *cycle > poll.interval {
            outln!(
                "  warning: a {} poll needs at least {} of calls at this budget, longer than its {} interval; raise the interval or calls_per_second",
                domain.as_str(),
                crate::duration::format_duration(*cycle),
                crate::duration::format_duration(poll.interval),
            );
        }
    }
}

/// Which of reachable / authenticated / permitted failed, in plain words.
fn probe_verdict(e: &SasError) -> &'static str {
    match (e, e.class()) {
        (SasError::Transport { .. }, _) => "UNREACHABLE",
        (_, Some(ErrorClass::Auth)) => "reachable, NOT AUTHENTICATED",
        (_, Some(ErrorClass::Permission)) => "reachable, authenticated, NOT PERMITTED",
        (_, Some(ErrorClass::Throttled)) => "reachable, THROTTLED (retries exhausted)",
        (_, Some(ErrorClass::Server)) => "reachable, SERVICE ERROR (retries exhausted)",
        _ => "reachable, FAILED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(extra: &str) -> SourceSettings {
        let clusters: Vec<String> = (0..1000).map(|i| format!("\"c{i:04}\"")).collect();
        let text = format!(
            "[[source]]\nname = \"a\"\nregion = \"cn-hangzhou\"\nclusters = [{}]\ncredentials = {{ type = \"env\" }}\n{extra}\n",
            clusters.join(", ")
        );
        let mut settings = crate::config::parse(std::path::Path::new("t.toml"), &text).unwrap();
        settings.sources.remove(0)
    }

    fn per_hour(budget: &[(Domain, f64, Duration)], domain: Domain) -> f64 {
        budget.iter().find(|(d, _, _)| *d == domain).unwrap().1
    }

    #[test]
    fn a_thousand_listed_clusters_fit_the_budget_only_with_windows_listed_once() {
        // The default: alerts and firewall listed once for the account.
        let once = idle_budget(&source(""));
        assert_eq!(per_hour(&once, Domain::Alerts), 240.0);
        assert_eq!(per_hour(&once, Domain::Firewall), 60.0);
        // 1,000 statistics calls every 15 minutes, and every 6th poll 2,000 listings more.
        let vulns = per_hour(&once, Domain::Vulnerabilities);
        assert!(
            (vulns - (4000.0 + 2000.0 * 4.0 / 6.0)).abs() < 1.0,
            "{vulns}"
        );
        let total: f64 = once.iter().map(|(_, h, _)| h).sum();
        assert!(total <= 15_000.0, "{total}");
        for ((_, _, cycle), poll) in once.iter().zip(&source("").polls) {
            assert!(*cycle <= poll.interval, "{cycle:?} > {:?}", poll.interval);
        }
        // Per cluster: 2,000 alert calls a poll, 400 s at 5 a second for a 30 s interval.
        let each = idle_budget(&source("window_listing = \"per_cluster\""));
        assert_eq!(per_hour(&each, Domain::Alerts), 240_000.0);
        let alerts = each.iter().find(|(d, _, _)| *d == Domain::Alerts).unwrap();
        assert!(alerts.2 > Duration::from_secs(300), "{:?}", alerts.2);
    }
}
