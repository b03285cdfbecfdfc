//! Signals, each named in a log line when it arrives (`signal` = `SIGTERM`, `SIGINT` or
//! `SIGHUP`). SIGTERM and SIGINT stop the process cleanly. SIGHUP asks `sasrelay run` to
//! reload its configuration ([`crate::daemon::reload`]); it never kills it, whose default
//! action it would otherwise be. The foreground commands (`demo`, `simulate`) stop on SIGHUP
//! too, as a closed terminal should make them.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::daemon::reload::{Cause, Reloads};

/// A signal the process handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Signal {
    /// Stop (systemd, `kill`, `docker stop`).
    Term,
    /// Stop (Ctrl-C).
    Int,
    /// Reload (`systemctl reload`, `kill -HUP`).
    Hup,
}

impl Signal {
    /// Its conventional name.
    pub(super) fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
            Signal::Hup => "SIGHUP",
        }
    }
}

/// The handlers of SIGTERM, SIGINT and SIGHUP. While they are installed none of these ends the
/// process by its default action; they arrive through [`Signals::next`] instead.
pub(super) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers. `run` does this first, so no SIGHUP can end it from then on.
    pub(super) fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal to arrive.
    pub(super) async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Term,
            _ = self.int.recv() => Signal::Int,
            _ = self.hup.recv() => Signal::Hup,
        }
    }
}

/// `sasrelay run`'s signals, until the process ends: SIGHUP asks `reloads` for a reload,
/// SIGTERM and SIGINT cancel `shutdown`.
pub(super) fn serve_daemon(mut signals: Signals, shutdown: CancellationToken, reloads: Reloads) {
    tokio::spawn(async move {
        loop {
            let got = signals.next().await;
            let name = got.name();
            match got {
                Signal::Hup if shutdown.is_cancelled() => {
                    tracing::info!(
                        signal = name,
                        "Received {name} while shutting down; not reloading."
                    );
                }
                Signal::Hup if reloads.request(Cause::Signal) => {
                    tracing::info!(
                        signal = name,
                        "Received {name}: reloading the configuration."
                    );
                }
                Signal::Hup => {
                    tracing::warn!(
                        signal = name,
                        "Received {name}: reloads are already waiting (they read the same file); this one adds nothing."
                    );
                }
                Signal::Term | Signal::Int => stopping(got, &shutdown),
            }
        }
    });
}

/// Logs `got` as a request to stop, and cancels `shutdown`.
fn stopping(got: Signal, shutdown: &CancellationToken) {
    let name = got.name();
    if shutdown.is_cancelled() {
        tracing::info!(signal = name, "Received {name}: already shutting down.");
    } else {
        tracing::info!(signal = name, "Received {name}: shutting down.");
        shutdown.cancel();
    }
}

/// Resolves when SIGTERM, SIGINT or SIGHUP arrives, having logged which. Without handlers
/// (they could not be installed, said once), only Ctrl-C is seen.
pub(super) async fn wait_for_stop() {
    match Signals::install() {
        Ok(mut signals) => {
            let got = signals.next().await;
            tracing::info!(
                signal = got.name(),
                "Received {}: shutting down.",
                got.name()
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "Cannot install signal handlers; only Ctrl-C stops this.");
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!(signal = "SIGINT", "Received SIGINT: shutting down.");
        }
    }
}
