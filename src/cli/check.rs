//! `sasrelay check`: validates a configuration file — every error at once, with file, line,
//! column and key — checks credentials' static parts and renders every custom template against
//! the samples; with `--online`, makes one signed call per source and domain and says which of
//! reachable, authenticated and permitted failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use time::OffsetDateTime;

use super::{Session, load_config};
use crate::config::Settings;
use crate::credentials::env::ProcessEnv;
use crate::sas::error::{ErrorClass, SasError};
use crate::sas::source::{Source, SourceSettings};

/// `sasrelay check` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Make one signed call per source and domain and report what each can see.
    #[arg(long)]
    online: bool,
}

/// Runs `check`.
pub async fn run(args: Args) -> ExitCode {
    let path = args.config.as_path();
    let settings = match load_config(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let ok = check_offline(&settings);
    print_summary(path, &settings, ok);
    if !ok {
        return ExitCode::FAILURE;
    }
    if !args.online {
        return ExitCode::SUCCESS;
    }
    let session = match Session::open() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut ok = true;
    for source in settings.sources {
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

/// What can be checked without the network: static secrets and the environment (a missing env
/// var is the commonest deployment mistake), and every custom template rendered against every
/// sample, so a typo fails here, not at 3 am. Prints each problem; true when there is none.
fn check_offline(settings: &Settings) -> bool {
    let mut ok = true;
    for s in &settings.sources {
        if let Err(e) = s.credentials.check_offline(&ProcessEnv) {
            eprintln!("error: source {}: credentials: {e}", s.name);
            ok = false;
        }
    }
    for (i, sink) in settings.sinks.iter().enumerate() {
        for (key, kind, file) in sink.templates() {
            let result = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))
                .and_then(|text| crate::render::check_template(kind, &text));
            if let Err(e) = result {
                eprintln!("error: sink[{i}].{key} (sink {}): {e}", sink.name);
                ok = false;
            }
        }
    }
    ok
}

/// The verdict line, the warnings (a shadowed route, an unused time interval: they do not fail
/// the check) and one line per source.
fn print_summary(path: &Path, settings: &Settings, ok: bool) {
    println!(
        "{}: configuration {} ({} source{})",
        path.display(),
        if ok { "OK" } else { "INVALID" },
        settings.sources.len(),
        if settings.sources.len() == 1 { "" } else { "s" }
    );
    for w in &settings.warnings {
        eprintln!("warning: {w}");
    }
    for s in &settings.sources {
        println!(
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
    println!("source {} ({}):", settings.name, settings.client.endpoint);
    let domains = settings.domains.clone();
    let source = match Source::connect(settings, &ProcessEnv, &session.ctx).await {
        Ok(s) => s,
        Err(e) => {
            println!("  credentials: FAILED\n    {e}");
            return false;
        }
    };
    // A static key is only proven by the calls below; an expiring one was fetched just now.
    println!(
        "  credentials: loaded ({})",
        source.credential_provider().unwrap_or("custom")
    );
    let now = OffsetDateTime::now_utc();
    let mut ok = true;
    for domain in domains {
        match source.probe(domain, now).await {
            Ok(n) => println!(
                "  {:<16} reachable, authenticated, permitted: {n} open",
                domain.as_str()
            ),
            Err(e) => {
                ok = false;
                println!("  {:<16} {}", domain.as_str(), probe_verdict(&e));
                println!("    {e}");
            }
        }
    }
    ok
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
