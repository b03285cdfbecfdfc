//! `sasrelay render`: prints exactly the body a sink would send — JSON for DingTalk, Feishu,
//! WeCom and Slack, the MIME message for email, the event document for webhooks — for a finding,
//! a built-in sample or the sample digest. Nothing is sent.

use std::path::PathBuf;
use std::process::ExitCode;

use time::OffsetDateTime;

use super::{DomainArg, load_config};
use crate::config;
use crate::finding::{Domain, Finding};

/// `sasrelay render` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// The sink's name.
    #[arg(long)]
    sink: String,
    /// A normalised finding (as `sasrelay findings --json` prints it), inline or `@FILE`.
    #[arg(long, conflicts_with_all = ["sample", "digest"])]
    finding: Option<String>,
    /// A built-in sample finding of this domain (the default: alerts).
    #[arg(long, value_enum, conflicts_with = "digest")]
    sample: Option<DomainArg>,
    /// The built-in sample digest.
    #[arg(long)]
    digest: bool,
}

/// Runs `render`.
pub fn run(args: Args) -> ExitCode {
    let Args {
        config: path,
        sink: name,
        finding,
        sample,
        digest,
    } = args;
    let (path, name, finding) = (path.as_path(), name.as_str(), finding.as_deref());
    let settings = match load_config(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let sink = match configured_sink(&settings, name) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let payload: crate::event::Payload = if digest {
        crate::render::sample_digest().into()
    } else if let Some(text) = finding {
        let text = match text.strip_prefix('@') {
            Some(file) => match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: cannot read {file}: {e}");
                    return ExitCode::FAILURE;
                }
            },
            None => text.to_string(),
        };
        let f: Finding = match serde_json::from_str(&text) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: --finding is not a normalised finding: {e}");
                return ExitCode::FAILURE;
            }
        };
        crate::event::Event::about(
            crate::event::EventKind::New,
            f,
            0,
            "",
            None,
            OffsetDateTime::now_utc(),
        )
        .into()
    } else {
        crate::render::sample_event(sample.map_or(Domain::Alerts, Domain::from)).into()
    };
    match sink.preview(&payload) {
        Ok(body) => {
            println!("{body}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the sink named `name` from the configuration (secrets resolved).
pub(super) fn configured_sink(
    settings: &config::Settings,
    name: &str,
) -> Result<crate::sinks::Sink, ExitCode> {
    let Some(cfg) = settings.sinks.iter().find(|s| s.name == name) else {
        let names: Vec<&str> = settings.sinks.iter().map(|s| s.name.as_str()).collect();
        eprintln!(
            "error: no sink named `{name}` in {}; configured: {}",
            settings.file.display(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
        return Err(ExitCode::from(2));
    };
    crate::sinks::Sink::build(cfg).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}
