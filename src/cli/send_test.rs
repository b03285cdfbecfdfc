//! `sasrelay send-test`: sends a sample alert through a sink's real path (one attempt, after its
//! rate limit) and prints the platform's answer; exit 1 when it was not delivered.

use std::process::ExitCode;

use super::SinkArgs;
use super::out::outln;
use crate::finding::Domain;

/// `sasrelay send-test` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which sink.
    #[command(flatten)]
    target: SinkArgs,
}

/// Runs `send-test`.
pub async fn run(args: Args) -> ExitCode {
    let name = args.target.sink.as_str();
    let sink = match args.target.build() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let payload: crate::event::Payload = crate::render::sample_event(Domain::Alerts).into();
    let outcome = loop {
        match sink.deliver(&payload, 1).await {
            crate::sinks::Outcome::Throttled { after } => tokio::time::sleep(after).await,
            other => break other,
        }
    };
    match outcome {
        crate::sinks::Outcome::Delivered { detail } => {
            outln!("sink {name}: delivered ({detail})");
            ExitCode::SUCCESS
        }
        crate::sinks::Outcome::Retry { after, reason } => {
            outln!(
                "sink {name}: NOT delivered, retryable{}: {reason}",
                after.map_or(String::new(), |a| format!(" after {}s", a.as_secs()))
            );
            ExitCode::FAILURE
        }
        crate::sinks::Outcome::Permanent { reason, response } => {
            outln!("sink {name}: NOT delivered, permanent: {reason}");
            if let Some(r) = response {
                outln!("  response: {r}");
            }
            ExitCode::FAILURE
        }
        crate::sinks::Outcome::Throttled { .. } => ExitCode::FAILURE,
    }
}
