//! `sasrelay run`: the daemon, until SIGTERM or SIGINT; SIGHUP (or `sasrelay reload`) reloads
//! its configuration. It starts on what [`daemon::build`](crate::daemon::build) makes of the
//! file, the step `sasrelay check` runs: a configuration it cannot start with (the file's
//! errors, a sink secret that cannot be read, a malformed `whsec_` key…) is reported whole, as
//! `check` reports it, and exits 78 (`EX_CONFIG`), which the systemd unit does not restart on.

use std::path::PathBuf;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::signals::{self, Signals};
use super::{CONFIG_ENV, DEFAULT_CONFIG, EXIT_CONFIG};
use crate::config;
use crate::credentials::env::ProcessEnv;
use crate::daemon::reload::{self, LogFilter};
use crate::daemon::{Control, StartError, build};

/// `sasrelay run` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file.
    #[arg(long, short, value_name = "FILE", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
}

/// Runs `run`, with `log` the process's log filter (set from `[daemon] log`).
pub async fn run(args: Args, log: LogFilter) -> ExitCode {
    // First of all: until the handlers are installed, SIGHUP's default action kills the
    // process, and `systemctl reload` may come as soon as the unit is started.
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install the signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    let (reloads, queue) = reload::channel();
    signals::serve_daemon(signals, shutdown.clone(), reloads);
    let built = match build::load(&args.config, &ProcessEnv) {
        Ok(b) => b,
        Err(errs) => return exit_code(StartError::Config(errs)),
    };
    if shutdown.is_cancelled() {
        // Stopped while the file was read: nothing was started.
        return ExitCode::SUCCESS;
    }
    let control = Control {
        shutdown,
        reloads: Some(queue),
        log: Some(log),
    };
    match crate::daemon::start(built, control).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => exit_code(e),
    }
}

/// The daemon on `settings` until `shutdown` (or a signal), with its start errors mapped to
/// exit codes.
pub(super) async fn run_daemon_with(
    settings: config::Settings,
    shutdown: CancellationToken,
) -> ExitCode {
    match crate::daemon::run(settings, shutdown).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => exit_code(e),
    }
}

/// Says why the daemon cannot start and gives the exit code: 78 for the configuration
/// (restarting won't help; the systemd unit does not restart on 78), 1 otherwise.
fn exit_code(e: StartError) -> ExitCode {
    match e {
        StartError::Config(errs) => {
            eprint!("{errs}");
            tracing::error!(
                errors = errs.0.len(),
                "sasrelay cannot start: the configuration is invalid (see above)."
            );
            ExitCode::from(EXIT_CONFIG)
        }
        e => {
            eprintln!("error: {e}");
            tracing::error!(error = %e, "sasrelay cannot start.");
            ExitCode::FAILURE
        }
    }
}
