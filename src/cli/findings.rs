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
use crate::sas::source::{ReadWindow, Source};

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
    #[arg(long)]
    quarantined: bool,
}

/// Runs `findings`.
pub async fn run(args: Args) -> ExitCode {
    let now = OffsetDateTime::now_utc();
    let window = ReadWindow {
        now,
        occurred_since: None,
        handled_since: args.handled_within.map(|d| now - d.0),
        firewall_since: now - args.firewall_within.0,
    };
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
    let mut ok = true;
    let mut findings = Vec::new();
    let mut quarantined = Vec::new();
    for settings in selected {
        if !settings.domains.contains(&domain) {
            eprintln!(
                "note: source {} does not enable domain {}; skipped",
                settings.name,
                domain.as_str()
            );
            continue;
        }
        let source = match Source::connect(settings, &ProcessEnv, &session.ctx).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                ok = false;
                continue;
            }
        };
        match source.read(domain, &window).await {
            Ok(mut sweep) => {
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
            Err(e) => {
                eprintln!("error: source {}: {e}", source.settings.name);
                ok = false;
            }
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
