//! `sasrelay run`: the daemon, until SIGTERM or SIGINT; a configuration the daemon cannot start
//! with exits 78 (`EX_CONFIG`), which the systemd unit does not restart on.

use std::path::PathBuf;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::{EXIT_CONFIG, cancel_on_signal, load_config};
use crate::config;

/// `sasrelay run` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file.
    #[arg(long, short)]
    config: PathBuf,
}

/// Runs `run`.
pub async fn run(args: Args) -> ExitCode {
    let settings = match load_config(&args.config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let shutdown = CancellationToken::new();
    cancel_on_signal(&shutdown);
    run_daemon_with(settings, shutdown).await
}

/// The daemon until `shutdown`, with its start errors mapped to exit codes.
pub(super) async fn run_daemon_with(
    settings: config::Settings,
    shutdown: CancellationToken,
) -> ExitCode {
    match crate::daemon::run(settings, shutdown).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            tracing::error!(error = %e, "sasrelay cannot start.");
            // A missing [state] or [[sink]] is a configuration problem: restarting won't help
            // (the systemd unit does not restart on 78).
            match e {
                crate::daemon::StartError::NoState(_) | crate::daemon::StartError::NoSinks(_) => {
                    ExitCode::from(EXIT_CONFIG)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}
