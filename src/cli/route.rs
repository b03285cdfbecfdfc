//! `sasrelay route test`: what the configured routing does with given findings (the
//! [`Router::explain`] trace and the targets), or, with `--from-simulator N`, how many
//! messages each sink would receive for N realistic findings after grouping.
//!
//! Silences are not applied: they live in the running daemon (`sasrelay silence list`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;
use time::OffsetDateTime;

use super::out::{out, outln};
use super::{CONFIG_ENV, DEFAULT_CONFIG, Session, load_config, terminal_safe};
use crate::config::Settings;
use crate::event::{Event, EventKind};
use crate::finding::{Domain, Finding};
use crate::routing::{Router, Subject, to_timestamp};
use crate::sinks::SinkConfig;

/// `sasrelay route …`.
#[derive(Debug, clap::Subcommand)]
pub enum RouteCommand {
    /// Show where findings go: each route tried and why it matched or not, then the targets;
    /// or, with --from-simulator, how many messages each sink would receive.
    Test {
        /// Configuration file.
        #[arg(long, short, value_name = "FILE", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// A finding or event as JSON, or `@FILE` (one object, an array, or one per line as
        /// `sasrelay findings --json` prints); repeatable.
        #[arg(
            long,
            value_name = "JSON_OR_@FILE",
            required_unless_present = "from_simulator",
            conflicts_with = "from_simulator"
        )]
        finding: Vec<String>,
        /// Generate this many realistic findings with the simulator instead and count the
        /// messages each sink would receive after grouping.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=MAX_SIMULATED as u64))]
        from_simulator: Option<u64>,
        /// Seed of the simulated world (as `sasrelay simulate --seed`).
        #[arg(long, default_value_t = 20_240_520, requires = "from_simulator")]
        seed: u64,
        /// Route as of this time (RFC 3339; default now), for mute and active time intervals.
        #[arg(long, value_name = "RFC3339")]
        at: Option<String>,
    },
}

/// Runs `route …`.
pub async fn run(command: RouteCommand) -> ExitCode {
    match command {
        RouteCommand::Test {
            config,
            finding,
            from_simulator,
            seed,
            at,
        } => {
            test(
                &config,
                &finding,
                from_simulator.map(|n| n as usize),
                seed,
                at.as_deref(),
            )
            .await
        }
    }
}

/// Most findings `--from-simulator` generates.
pub const MAX_SIMULATED: usize = 2000;

/// Reads `--finding` values: inline JSON or `@FILE`; each holds one object, an array of
/// them, or one per line (what `sasrelay findings --json` prints). An object with `schema`
/// and `kind` is an [`Event`]; anything else a [`Finding`], wrapped in a `new` event.
pub fn read_events(args: &[String], now: OffsetDateTime) -> Result<Vec<Event>, String> {
    let mut out = Vec::new();
    for arg in args {
        let (text, from) = match arg.strip_prefix('@') {
            Some(path) => (
                std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?,
                path.to_string(),
            ),
            None => (arg.clone(), "--finding".to_string()),
        };
        let mut values = Vec::new();
        for v in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
            match v.map_err(|e| format!("{from}: not JSON: {e}"))? {
                Value::Array(items) => values.extend(items),
                v => values.push(v),
            }
        }
        if values.is_empty() {
            return Err(format!("{from}: no finding in it"));
        }
        for (i, v) in values.into_iter().enumerate() {
            out.push(to_event(v, now).map_err(|e| format!("{from}: item {}: {e}", i + 1))?);
        }
    }
    Ok(out)
}

fn to_event(v: Value, now: OffsetDateTime) -> Result<Event, String> {
    if v.get("schema").is_some() && v.get("kind").is_some() {
        return serde_json::from_value::<Event>(v).map_err(|e| format!("not an event: {e}"));
    }
    let finding: Finding = serde_json::from_value(v).map_err(|e| format!("not a finding: {e}"))?;
    Ok(new_event(finding, now))
}

fn new_event(finding: Finding, now: OffsetDateTime) -> Event {
    Event::about(EventKind::New, finding, 0, "", None, now)
}

fn sink_config<'a>(settings: &'a Settings, name: &str) -> Option<&'a SinkConfig> {
    settings.sinks.iter().find(|s| s.name == name)
}

/// One line naming an event (untrusted text cleaned).
fn headline(e: &Event) -> String {
    match &e.finding {
        Some(f) => format!(
            "{} {} finding {} ({}): {}",
            e.kind.as_str(),
            e.domain.as_str(),
            terminal_safe(&f.id, 60),
            format!("{:?}", f.severity).to_lowercase(),
            terminal_safe(&f.title, 100)
        ),
        None => format!("{} {} event {}", e.kind.as_str(), e.domain.as_str(), e.id),
    }
}

/// Prints the trace and the targets for each event.
pub fn explain(settings: &Settings, events: &[Event], at: jiff::Timestamp) -> String {
    let mut out = String::new();
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("event {}: {}\n", i + 1, headline(e)));
        let explanation = settings.router.explain(&Subject::from_event(e), at);
        for line in explanation.to_string().lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
        for t in &explanation.decision.targets {
            if let Some(sink) = sink_config(settings, &t.sink)
                && !sink.filters.accepts(e)
            {
                out.push_str(&format!(
                    "  note: sink {}'s own filter (domains, events, min_severity) refuses this event: not sent there\n",
                    t.sink
                ));
            }
        }
    }
    out
}

/// What one sink would receive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkCount {
    /// Messages: one per ungrouped event, plus each group's events in chunks of
    /// `max_group_size`.
    pub messages: u64,
    /// Events that reach it (grouped or not).
    pub events: u64,
    /// Of those, sent one by one.
    pub ungrouped: u64,
    /// Distinct (route, group key) groups.
    pub groups: u64,
    /// Kept back by a mute window or outside the active intervals.
    pub muted: u64,
    /// Refused by the sink's own filter.
    pub filtered: u64,
}

/// Every sink's count, and how many events no route sent anywhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forecast {
    /// By sink name.
    pub sinks: BTreeMap<String, SinkCount>,
    /// Events without any target.
    pub dropped: u64,
}

/// A group as the daemon keys it: route, sink, group key. Maps to (members, max_group_size).
type GroupId = (String, String, BTreeMap<String, String>);

/// Counts what each sink would receive for `events` routed at `at` (pure).
pub fn forecast(
    router: &Router,
    sinks: &[SinkConfig],
    events: &[Event],
    at: jiff::Timestamp,
) -> Forecast {
    let mut f = Forecast::default();
    for s in sinks {
        f.sinks.insert(s.name.clone(), SinkCount::default());
    }
    let mut groups: BTreeMap<GroupId, (u64, u32)> = BTreeMap::new();
    for e in events {
        let decision = router.decide(&Subject::from_event(e), at);
        if decision.dropped {
            f.dropped += 1;
            continue;
        }
        for t in decision.targets {
            let count = f.sinks.entry(t.sink.clone()).or_default();
            if sinks
                .iter()
                .find(|s| s.name == t.sink)
                .is_some_and(|s| !s.filters.accepts(e))
            {
                count.filtered += 1;
                continue;
            }
            if t.muted_by.is_some() {
                count.muted += 1;
                continue;
            }
            count.events += 1;
            match t.grouping {
                Some(g) => {
                    let slot = groups
                        .entry((t.route, t.sink, g.group_key))
                        .or_insert((0, g.max_group_size.max(1)));
                    slot.0 += 1;
                }
                None => {
                    count.ungrouped += 1;
                    count.messages += 1;
                }
            }
        }
    }
    for ((_, sink, _), (n, max)) in groups {
        let count = f.sinks.entry(sink).or_default();
        count.groups += 1;
        count.messages += n.div_ceil(u64::from(max));
    }
    f
}

/// The forecast as a table.
pub fn forecast_table(f: &Forecast) -> String {
    let mut out = format!(
        "{:<24} {:>8} {:>7} {:>9} {:>6} {:>6} {:>8}\n",
        "SINK", "MESSAGES", "EVENTS", "UNGROUPED", "GROUPS", "MUTED", "FILTERED"
    );
    for (name, c) in &f.sinks {
        out.push_str(&format!(
            "{:<24} {:>8} {:>7} {:>9} {:>6} {:>6} {:>8}\n",
            name, c.messages, c.events, c.ungrouped, c.groups, c.muted, c.filtered
        ));
    }
    out.push_str(&format!(
        "dropped (no route sends them anywhere): {}\n",
        f.dropped
    ));
    out
}

/// `n` findings as the daemon would read them from a simulator seeded with `seed` (the world
/// `sasrelay simulate --seed` builds): the simulator is served on loopback inside this process
/// and read through the real client, so signing, paging, the baseline walk and normalisation
/// are the daemon's. Domains are interleaved so every one is represented.
pub async fn simulated_findings(n: usize, seed: u64) -> Result<Vec<Finding>, String> {
    use crate::credentials::env::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, MapEnv};
    use crate::simulator::{
        DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET, InitialFindings, SimConfig, Simulator,
    };
    let cfg = SimConfig {
        seed,
        // Some generated findings start handled, so ask for more than needed.
        initial: InitialFindings {
            alerts: n,
            vulns: n,
            baseline: n,
            firewall: n,
        },
        ..SimConfig::default()
    };
    let sim = Simulator::start(cfg)
        .await
        .map_err(|e| format!("simulator: {e}"))?;
    let text = format!(
        r#"[[source]]
name = "simulator"
region = "cn-hangzhou"
endpoint = "http://{}"
credentials = {{ type = "env" }}
"#,
        sim.endpoint()
    );
    let settings = crate::config::parse(Path::new("(simulator)"), &text)
        .map_err(|e| format!("simulator source: {e}"))?;
    let source_settings = settings
        .sources
        .into_iter()
        .next()
        .ok_or("simulator source: none")?;
    let session = Session::new()?;
    let env = MapEnv::new()
        .set(ACCESS_KEY_ID, DEMO_ACCESS_KEY_ID)
        .set(ACCESS_KEY_SECRET, DEMO_ACCESS_KEY_SECRET);
    let result = async {
        let source =
            crate::sas::source::Source::connect(source_settings, &env, &session.ctx).await?;
        let now = OffsetDateTime::now_utc();
        let window = crate::sas::source::ReadWindow {
            now,
            occurred_since: None,
            handled_since: None,
            firewall_since: now - time::Duration::days(4),
        };
        let mut lists = Vec::new();
        for d in [
            Domain::Alerts,
            Domain::Vulnerabilities,
            Domain::Baseline,
            Domain::Firewall,
        ] {
            let list = source
                .read(d, &window)
                .await
                .map_err(|e| format!("simulator {}: {e}", d.as_str()))?;
            lists.push(list.findings.into_iter());
        }
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let before = out.len();
            for l in lists.iter_mut() {
                if out.len() < n
                    && let Some(f) = l.next()
                {
                    out.push(f);
                }
            }
            if out.len() == before {
                break;
            }
        }
        Ok::<_, String>(out)
    }
    .await;
    session.close().await;
    let _ = sim.stop().await;
    result
}

/// `route test`.
pub(super) async fn test(
    config: &Path,
    findings: &[String],
    from_simulator: Option<usize>,
    seed: u64,
    at: Option<&str>,
) -> ExitCode {
    let settings = match load_config(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let now = OffsetDateTime::now_utc();
    let at = match at {
        Some(t) => match t.parse::<jiff::Timestamp>() {
            Ok(t) => t,
            Err(e) => {
                eprintln!(
                    "error: --at: expected an RFC 3339 time like \"2026-05-01T10:00:00Z\": {e}"
                );
                return ExitCode::from(2);
            }
        },
        None => to_timestamp(now),
    };
    if let Some(n) = from_simulator {
        let list = match simulated_findings(n, seed).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut by_domain: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &list {
            *by_domain.entry(f.domain.as_str()).or_default() += 1;
        }
        let events: Vec<Event> = list.into_iter().map(|f| new_event(f, now)).collect();
        outln!(
            "{} findings from the simulator (seed {seed}): {}",
            events.len(),
            by_domain
                .iter()
                .map(|(d, n)| format!("{n} {d}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        outln!("routed as new events at {at}; silences are not applied (they live in the daemon)");
        outln!();
        let f = forecast(&settings.router, &settings.sinks, &events, at);
        out!("{}", forecast_table(&f));
        return ExitCode::SUCCESS;
    }
    let events = match read_events(findings, now) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_DATAERR);
        }
    };
    out!("{}", explain(&settings, &events, at));
    if settings.sinks.is_empty() {
        eprintln!("note: {} configures no [[sink]]", config.display());
    }
    ExitCode::SUCCESS
}

/// Exit code for unreadable `--finding` input (sysexits `EX_DATAERR`).
const EXIT_DATAERR: u8 = 65;

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[[source]]
name = "s"
region = "cn-hangzhou"
credentials = { type = "env" }

[[sink]]
name = "chat"
type = "stdout"

[[sink]]
name = "archive"
type = "stdout"

[[sink]]
name = "pager"
type = "stdout"
min_severity = "critical"

[routing]
default = "drop"

[[route]]
matchers = ['domain="alerts"']
sinks = ["chat", "pager"]
group_by = ["cluster"]
max_group_size = 2

[[route]]
matchers = ['domain="vulnerabilities"']
sinks = ["archive"]
"#;

    fn finding(domain: Domain, cluster: &str, i: usize, severity: &str) -> Event {
        let mut f = test_finding();
        f.domain = domain;
        f.id = format!("{}:{i}", domain.as_str());
        f.fingerprint = format!("fp-{}-{i}", domain.as_str());
        f.kubernetes.cluster_id = Some(cluster.into());
        f.severity = crate::routing::fields::parse_severity(severity).unwrap();
        new_event(f, OffsetDateTime::UNIX_EPOCH)
    }

    fn test_finding() -> Finding {
        let item = crate::sas::models::Item::from_value(serde_json::json!({
            "Id": 1, "AlarmUniqueInfo": "u1", "Level": "serious", "Name": "Reverse shell",
            "ClusterId": "c1", "EventStatus": 1
        }))
        .unwrap();
        crate::sas::normalise::normalise_alert(
            &crate::sas::normalise::NormaliseContext::new("s", "r"),
            item,
        )
    }

    #[test]
    fn forecast_counts_groups_filters_and_drops() {
        let settings = crate::config::parse(Path::new("t.toml"), CONFIG).unwrap();
        let mut events = Vec::new();
        for i in 0..5 {
            events.push(finding(Domain::Alerts, "c1", i, "high"));
        }
        events.push(finding(Domain::Alerts, "c2", 9, "critical"));
        for i in 0..3 {
            events.push(finding(Domain::Vulnerabilities, "c1", i, "low"));
        }
        events.push(finding(Domain::Baseline, "c1", 0, "low"));
        let f = forecast(
            &settings.router,
            &settings.sinks,
            &events,
            "2026-05-01T10:00:00Z".parse().unwrap(),
        );
        assert_eq!(f.dropped, 1);
        // c1: 5 alerts → 3 messages of at most 2; c2: 1 alert → 1 message.
        assert_eq!(
            f.sinks["chat"],
            SinkCount {
                messages: 4,
                events: 6,
                groups: 2,
                ..SinkCount::default()
            }
        );
        assert_eq!(
            f.sinks["pager"],
            SinkCount {
                messages: 1,
                events: 1,
                groups: 1,
                filtered: 5,
                ..SinkCount::default()
            }
        );
        assert_eq!(
            f.sinks["archive"],
            SinkCount {
                messages: 3,
                events: 3,
                ungrouped: 3,
                ..SinkCount::default()
            }
        );
        let t = forecast_table(&f);
        assert!(
            t.contains("dropped (no route sends them anywhere): 1"),
            "{t}"
        );
    }

    #[test]
    fn reads_findings_events_arrays_and_lines() {
        let f = serde_json::to_string(&test_finding()).unwrap();
        let now = OffsetDateTime::UNIX_EPOCH;
        let e = serde_json::to_string(&new_event(test_finding(), now)).unwrap();
        let events = read_events(
            &[f.clone(), format!("[{f}, {e}]"), format!("{f}\n{e}\n")],
            now,
        )
        .unwrap();
        assert_eq!(events.len(), 5);
        assert!(events.iter().all(|e| e.kind == EventKind::New));
        let err = read_events(&[r#"{"title": 1}"#.into()], now).unwrap_err();
        assert!(err.starts_with("--finding: item 1: not a finding"), "{err}");
        assert!(read_events(&["@/nonexistent/x".into()], now).is_err());
    }
}
