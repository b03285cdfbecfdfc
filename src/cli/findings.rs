//! `sasrelay findings`: lists what Security Center holds now for one domain, normalised, as a
//! table under a header row (attacker-written text made terminal-safe; every source's findings
//! in one table, as `silence list` prints its own) or as one JSON finding per line; with
//! `--quarantined`, the records of the listing that cannot be read instead. A listing that
//! could not be read, or that held unreadable records, exits 1: an empty or short listing
//! must never pass for "nothing is open".

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use time::OffsetDateTime;

use super::admin_client::text_table;
use super::out::{out, outln};
use super::{
    CONFIG_ENV, DEFAULT_CONFIG, DomainArg, EXIT_CONFIG, Session, load_config, parse_window,
    terminal_safe,
};
use crate::credentials::env::ProcessEnv;
use crate::duration::HumanDuration;
use crate::finding::{Domain, Finding};
use crate::sas::models::Quarantined;
use crate::sas::source::{ReadWindow, Source, SourceSettings, Sweep};

/// `sasrelay findings` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file.
    #[arg(long, short, value_name = "FILE", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Which domain to list.
    #[arg(long, value_enum)]
    domain: DomainArg,
    /// Only this source (default: all configured sources).
    #[arg(long)]
    source: Option<String>,
    /// Also list alerts handled within this window (e.g. `24h`).
    #[arg(long, value_parser = parse_window)]
    handled_within: Option<HumanDuration>,
    /// Firewall records within this window.
    #[arg(long, value_parser = parse_window, default_value = "24h")]
    firewall_within: HumanDuration,
    /// One JSON object per line (the full normalised finding) instead of a table.
    #[arg(long)]
    json: bool,
    /// List the records Security Center sent that cannot be read (with why, and their text)
    /// instead of the findings.
    #[arg(long, conflicts_with = "id")]
    quarantined: bool,
    /// Show this one finding in full (its Security Center id, or the finding id a notification
    /// shows, `alert:752312`), with Security Center's detail: an alert's evidence and the
    /// console's diagnosis (tracing) data, a baseline check's description and advice. Alerts
    /// handled within `--handled-within` (default 7d here) and firewall records within
    /// `--firewall-within` are found too.
    #[arg(long, value_name = "ID")]
    id: Option<String>,
}

/// Runs `findings`.
pub async fn run(args: Args) -> ExitCode {
    let now = OffsetDateTime::now_utc();
    let handled_within = match (&args.handled_within, &args.id) {
        (Some(d), _) => Some(d.0),
        // One finding asked for by id may well be handled already.
        (None, Some(_)) => Some(ONE_HANDLED_WITHIN),
        (None, None) => None,
    };
    let window = ReadWindow {
        now,
        occurred_since: None,
        handled_since: handled_within.map(|d| now - d),
        firewall_since: now - args.firewall_within.0,
    };
    if let Some(id) = &args.id {
        return one(
            &args.config,
            args.domain.into(),
            args.source.as_deref(),
            window,
            id,
            args.json,
        )
        .await;
    }
    let show = if args.quarantined {
        Show::Quarantined
    } else {
        Show::Findings { json: args.json }
    };
    list(
        &args.config,
        args.domain.into(),
        args.source.as_deref(),
        window,
        show,
    )
    .await
}

/// How far back `--id` looks for a handled alert when `--handled-within` is not given.
const ONE_HANDLED_WITHIN: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

/// The Security Center number in `id` (`752312`, or `<prefix>:752312` for `domain`); `None` for
/// an id made of a natural key, which is matched whole.
fn native_number(id: &str, domain: Domain) -> Option<i64> {
    let prefix = crate::action_link::id_prefix(domain);
    let n = id
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or(id);
    n.parse().ok()
}

/// `findings --id`: the finding of that id in the listing of each selected source, in full,
/// with Security Center's detail of it; exit 1 when no source lists it.
async fn one(
    path: &Path,
    domain: Domain,
    only: Option<&str>,
    window: ReadWindow,
    id: &str,
    json: bool,
) -> ExitCode {
    let settings = match load_config(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let number = native_number(id, domain);
    let wanted = match number {
        Some(n) => format!("{}:{n}", crate::action_link::id_prefix(domain)),
        None => id.to_string(),
    };
    let session = match Session::open() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut found = false;
    let sources = settings
        .sources
        .into_iter()
        .filter(|s| only.is_none_or(|o| o == s.name) && s.domains.contains(&domain));
    let (read, ok) = read_each(sources, domain, &window, &session).await;
    for (source, sweep) in read {
        let Some(f) = sweep.findings.into_iter().find(|f| f.id == wanted) else {
            continue;
        };
        found = true;
        let (detail, diagnosis) = match number {
            Some(n) => detail_of(&source, domain, n).await,
            None => (None, None),
        };
        if json {
            outln!(
                "{}",
                serde_json::json!({"source": source.settings.name, "finding": f, "detail": detail, "diagnosis": diagnosis})
            );
        } else {
            out!(
                "{}",
                full(
                    &source.settings.name,
                    &f,
                    detail.as_ref(),
                    diagnosis.as_ref()
                )
            );
        }
    }
    session.close().await;
    if !found {
        eprintln!(
            "error: no source lists {wanted} now{}",
            if ok {
                " (an alert handled long ago: widen --handled-within; a firewall record: --firewall-within)"
            } else {
                " — and a listing failed (above)"
            }
        );
        return ExitCode::FAILURE;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Security Center's detail of finding `n` (an alert's `DescribeSuspEventDetail`, a baseline
/// check's `DescribeCheckWarningDetail`) and, for an alert, its diagnosis
/// (`DescribeAlarmEventDetail`). A failed call is said on stderr and shown as absent.
async fn detail_of(
    source: &Source,
    domain: Domain,
    n: i64,
) -> (Option<serde_json::Value>, Option<serde_json::Value>) {
    let client = source.client();
    let warn = |what: &str, e: &dyn std::fmt::Display| {
        eprintln!("warning: source {}: {what}: {e}", source.settings.name);
    };
    match domain {
        Domain::Alerts => {
            let detail = match crate::sas::api::susp_event_detail(client, n).await {
                Ok(d) => d.raw,
                Err(e) => {
                    warn("DescribeSuspEventDetail", &e);
                    return (None, None);
                }
            };
            let unique = detail["AlarmUniqueInfo"].as_str().unwrap_or_default();
            let diagnosis = if unique.is_empty() {
                None
            } else {
                match crate::sas::api::alarm_event_detail(client, unique).await {
                    Ok(d) => Some(d),
                    Err(e) => {
                        warn("DescribeAlarmEventDetail", &e);
                        None
                    }
                }
            };
            (Some(detail), diagnosis)
        }
        Domain::Baseline => {
            match crate::sas::api::check_warning_detail(client, &n.to_string()).await {
                Ok(d) => (Some(d.raw), None),
                Err(e) => {
                    warn("DescribeCheckWarningDetail", &e);
                    (None, None)
                }
            }
        }
        Domain::Vulnerabilities | Domain::Firewall => (None, None),
    }
}

/// The finding in full for people: every field that has a value, then Security Center's
/// detail and diagnosis, each line terminal-safe.
fn full(
    source: &str,
    f: &Finding,
    detail: Option<&serde_json::Value>,
    diagnosis: Option<&serde_json::Value>,
) -> String {
    let mut out = format!(
        "{} (source {}) — {} — {}\n",
        terminal_safe(&f.id, 100),
        terminal_safe(source, 100),
        f.severity.as_str(),
        terminal_safe(&f.title, 300)
    );
    let mut v = serde_json::to_value(f).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        for k in ["raw", "id", "title", "severity", "source", "fingerprint"] {
            o.remove(k);
        }
    }
    tree(&v, 1, &mut out);
    for (heading, value) in [
        ("Security Center detail", detail),
        ("Diagnosis (the console's tracing data)", diagnosis),
    ] {
        if let Some(v) = value.filter(|v| !v.is_null()) {
            out.push_str(&format!("{heading}:\n"));
            tree(v, 1, &mut out);
        }
    }
    out
}

/// `v` as indented `key: value` lines, leaving out what is empty; every string terminal-safe.
fn tree(v: &serde_json::Value, depth: usize, out: &mut String) {
    use serde_json::Value;
    let pad = "  ".repeat(depth);
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    match v {
        Value::Object(o) => {
            for (k, v) in o.iter().filter(|(_, v)| !empty(v)) {
                match v {
                    Value::Object(_) | Value::Array(_) => {
                        out.push_str(&format!("{pad}{}:\n", terminal_safe(k, 100)));
                        tree(v, depth + 1, out);
                    }
                    leaf => out.push_str(&format!(
                        "{pad}{}: {}\n",
                        terminal_safe(k, 100),
                        scalar(leaf)
                    )),
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate().filter(|(_, v)| !empty(v)) {
                match v {
                    Value::Object(_) | Value::Array(_) => {
                        out.push_str(&format!("{pad}- [{i}]\n"));
                        tree(v, depth + 1, out);
                    }
                    leaf => out.push_str(&format!("{pad}- {}\n", scalar(leaf))),
                }
            }
        }
        leaf => out.push_str(&format!("{pad}{}\n", scalar(leaf))),
    }
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => terminal_safe(s, 2000),
        other => other.to_string(),
    }
}

/// What to print.
#[derive(Clone, Copy)]
enum Show {
    Findings { json: bool },
    Quarantined,
}

async fn list(
    path: &Path,
    domain: Domain,
    only: Option<&str>,
    window: ReadWindow,
    show: Show,
) -> ExitCode {
    let settings = match load_config(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let selected: Vec<_> = settings
        .sources
        .into_iter()
        .filter(|s| only.is_none_or(|o| o == s.name))
        .collect();
    if selected.is_empty() {
        eprintln!(
            "error: no source named `{}` in {}",
            only.unwrap_or_default(),
            path.display()
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    let session = match Session::open() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let enabled = selected.into_iter().filter(|settings| {
        let enabled = settings.domains.contains(&domain);
        if !enabled {
            eprintln!(
                "note: source {} does not enable domain {}; skipped",
                settings.name,
                domain.as_str()
            );
        }
        enabled
    });
    let (read, mut ok) = read_each(enabled, domain, &window, &session).await;
    let mut findings = Vec::new();
    let mut quarantined = Vec::new();
    for (source, mut sweep) in read {
        findings.append(&mut sweep.findings);
        let unreadable = sweep.quarantined.len();
        quarantined.append(&mut sweep.quarantined);
        if unreadable > 0 {
            eprintln!(
                "error: source {}: {} record(s) of the listing cannot be read{}",
                source.settings.name,
                unreadable,
                match show {
                    Show::Findings { .. } => "; `--quarantined` shows them",
                    Show::Quarantined => "",
                }
            );
            ok = false;
        }
    }
    session.close().await;
    match show {
        Show::Findings { json: true } => print_json(&findings),
        // A header over nothing would read as "nothing is open" when no source answered.
        Show::Findings { json: false } if findings.is_empty() && !ok => {}
        Show::Findings { json: false } => out!("{}", table(&findings)),
        Show::Quarantined => print_quarantined(&quarantined),
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Connects each source in turn and reads `domain` from it, saying on stderr what could not
/// be connected or read. Returns what was read, each with its source (for follow-up calls),
/// and whether every source was.
async fn read_each(
    sources: impl Iterator<Item = SourceSettings>,
    domain: Domain,
    window: &ReadWindow,
    session: &Session,
) -> (Vec<(Source, Sweep)>, bool) {
    let mut ok = true;
    let mut read = Vec::new();
    for settings in sources {
        let source = match Source::connect(settings, &ProcessEnv, &session.ctx).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                ok = false;
                continue;
            }
        };
        match source.read(domain, window).await {
            Ok(sweep) => read.push((source, sweep)),
            Err(e) => {
                eprintln!("error: source {}: {e}", source.settings.name);
                ok = false;
            }
        }
    }
    (read, ok)
}

/// One block per record: digest, action, size and reason, then its text (terminal-safe).
fn print_quarantined(records: &[Quarantined]) {
    for q in records {
        outln!(
            "{} {} ({} bytes): {}\n  {}",
            q.digest,
            q.action,
            q.bytes,
            terminal_safe(&q.reason, 300),
            terminal_safe(&q.raw, crate::sas::models::QUARANTINE_KEEP_BYTES),
        );
    }
}

/// One JSON object per line, the full normalised finding; no header, for machines.
fn print_json(list: &[Finding]) {
    for f in list {
        let line = serde_json::to_string(f).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        outln!("{line}");
    }
}

/// The listing as a text table under a header row (printed even when nothing is open, so an
/// empty listing still reads as one); every untrusted string stripped of control characters.
fn table(list: &[Finding]) -> String {
    let mut rows = vec![
        ["SEVERITY", "STATUS", "ID", "CLUSTER", "NAMESPACE", "TITLE"]
            .map(String::from)
            .to_vec(),
    ];
    for f in list {
        rows.push(vec![
            format!("{:?}", f.severity).to_lowercase(),
            format!("{:?}", f.status).to_lowercase(),
            terminal_safe(&f.id, 64),
            terminal_safe(f.kubernetes.cluster_id.as_deref().unwrap_or("-"), 20),
            terminal_safe(f.kubernetes.namespace.as_deref().unwrap_or("-"), 16),
            terminal_safe(&f.title, 100),
        ]);
    }
    text_table(&rows)
}
