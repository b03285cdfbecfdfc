//! `sasrelay render`: prints exactly the body a sink would send — JSON for DingTalk, Feishu,
//! WeCom and Slack, the MIME message for email, the event document for webhooks — for a finding,
//! a built-in sample or the sample digest. Nothing is sent.

use std::process::ExitCode;

use time::OffsetDateTime;

use super::out::outln;
use super::{DomainArg, SinkArgs};
use crate::finding::{Domain, Finding};

/// `sasrelay render` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which sink.
    #[command(flatten)]
    target: SinkArgs,
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
        target,
        finding,
        sample,
        digest,
    } = args;
    let finding = finding.as_deref();
    let sink = match target.build() {
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
            outln!("{body}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
