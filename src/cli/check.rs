//! `sasrelay check`: runs the step `sasrelay run` starts with,
//! [`daemon::build`](crate::daemon::build) — the file checked, every sink built with its
//! secrets, every custom template rendered against the samples, the admin token read, each
//! source's credentials tried — and reports every problem at once, each with file, line, column
//! and key, exiting 78 as `run` would. A source whose credentials cannot be loaded now is a
//! warning (`run` starts and retries it). With `--online`, makes one signed call per source and
//! domain and says which of reachable, authenticated and permitted failed.

use std::path::PathBuf;
use std::process::ExitCode;

use time::OffsetDateTime;

use super::{EXIT_CONFIG, Session};
use crate::credentials::env::ProcessEnv;
use crate::daemon::build::{self, Built};
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
    println!(
        "{}: configuration OK ({sources} source{}, {sinks} sink{})",
        settings.file.display(),
        if sources == 1 { "" } else { "s" },
        if sinks == 1 { "" } else { "s" },
    );
    for w in &built.warnings {
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
