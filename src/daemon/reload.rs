//! Reloading the configuration while the daemon runs: SIGHUP, `POST /-/reload` and
//! `sasrelay reload` (which calls it) all ask through one [`Reloads`] handle; the daemon's
//! control loop takes the requests one at a time ([`ReloadQueue`]), so two reloads never
//! overlap.
//!
//! A reload is atomic: the file is read and built exactly as `check` and `run` build it
//! ([`build::load`]); when anything is wrong the running configuration is kept whole and the
//! reload says why (every error, logged at ERROR, in the answer and in [`ReloadStatus`]).
//! Otherwise [`Wiring::apply`] swaps in the new sources, routes, sinks and templates, and the
//! log filter follows `[daemon] log`. What a running process cannot change — `[state]` (the
//! store is opened once) and `[admin]` (the API is bound and serving) — is kept as it was,
//! and the reload says so.
//!
//! [`ReloadStatus`] is shared: the admin API shows it and `/metrics` exposes it as
//! `sasrelay_config_last_reload_successful`, `sasrelay_config_reloads_total{outcome}` and
//! `sasrelay_config_last_reload_success_timestamp_seconds`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::config::{AdminSettings, ConfigErrors, StateSettings};
use crate::credentials::env::ProcessEnv;
use crate::daemon::build::{self, Built};
use crate::daemon::wiring::{Changes, OrphanedOutbox, Wiring};
use crate::secret::Secret;

/// Reload requests waiting for the control loop at most; a SIGHUP beyond them is coalesced
/// into the ones already waiting (they will read the same file).
const QUEUE: usize = 4;

/// What asked for a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// `SIGHUP` (`systemctl reload`, `kill -HUP`).
    Signal,
    /// `POST /-/reload` on the admin API (`sasrelay reload`).
    AdminApi,
}

impl Cause {
    /// How logs and the status name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Signal => "SIGHUP",
            Cause::AdminApi => "POST /-/reload",
        }
    }
}

/// How the configuration came to be what it is: shared by the daemon (which writes it) and the
/// admin API (which shows it).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReloadStatus {
    /// The configuration file, read at start and by every reload.
    pub file: String,
    /// When the configuration in force was read: the start, or the last successful reload
    /// (RFC 3339).
    pub loaded_at: String,
    /// The same, in Unix seconds (for `/metrics`).
    #[serde(skip)]
    pub loaded_at_unix: f64,
    /// Successful reloads since the start.
    pub succeeded: u64,
    /// Refused reloads since the start.
    pub failed: u64,
    /// The last reload, when there was one.
    pub last: Option<ReloadAttempt>,
    /// Outboxes of sinks no longer configured, as of the start or the last reload: their
    /// entries stay in the store and are delivered when a sink of that name returns.
    pub orphaned_outboxes: Vec<OrphanedOutbox>,
}

impl ReloadStatus {
    /// Whether the last reload succeeded (true before any): the metric's value.
    pub fn last_successful(&self) -> bool {
        self.last.as_ref().is_none_or(|a| a.successful)
    }
}

/// One reload: what asked, and what came of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReloadAttempt {
    /// The file read.
    pub file: String,
    /// When (RFC 3339).
    pub at: String,
    /// `SIGHUP` or `POST /-/reload`.
    pub cause: String,
    /// The new configuration is in force.
    pub successful: bool,
    /// Why the file was refused, each as `file:line:col: key: message`; the running
    /// configuration was kept.
    pub errors: Vec<String>,
    /// Settings the file changes that a running daemon cannot apply (kept as they were;
    /// restart to apply them).
    pub kept: Vec<String>,
    /// What changed (a successful reload).
    pub changes: Changes,
    /// Outboxes of sinks not configured after this reload (a successful one): their entries
    /// stay in the store.
    pub orphaned_outboxes: Vec<OrphanedOutbox>,
}

/// Why a reload was not done.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file cannot be run with; the running configuration is kept.
    #[error(
        "the configuration was not reloaded; the running one is kept: {}",
        .0.errors.join("; ")
    )]
    Refused(Box<ReloadAttempt>),
    /// No daemon takes reloads (it is stopping, or this is not a daemon that reloads).
    #[error("no running daemon takes reloads here (it may be shutting down)")]
    Unavailable,
}

/// One request: its cause, and where to send the result when someone waits for it.
struct Request {
    cause: Cause,
    answer: Option<oneshot::Sender<ReloadAttempt>>,
}

/// Asks the running daemon to reload and reads how reloads went. Cheap to clone. The default
/// handle is attached to no daemon: its reloads are [`ReloadError::Unavailable`].
#[derive(Clone)]
pub struct Reloads {
    requests: mpsc::Sender<Request>,
    status: Arc<Mutex<ReloadStatus>>,
}

impl Default for Reloads {
    fn default() -> Self {
        channel().0
    }
}

/// The daemon's end of [`Reloads`]: requests in the order they came.
pub struct ReloadQueue {
    requests: mpsc::Receiver<Request>,
    handle: Reloads,
}

/// A handle and the queue it feeds.
pub fn channel() -> (Reloads, ReloadQueue) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let handle = Reloads {
        requests: tx,
        status: Arc::default(),
    };
    let queue = ReloadQueue {
        requests: rx,
        handle: handle.clone(),
    };
    (handle, queue)
}

impl Reloads {
    /// How the configuration came to be what it is.
    pub fn status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reloads and waits for the outcome.
    pub async fn reload(&self, cause: Cause) -> Result<ReloadAttempt, ReloadError> {
        let (tx, rx) = oneshot::channel();
        let request = Request {
            cause,
            answer: Some(tx),
        };
        self.requests
            .send(request)
            .await
            .map_err(|_| ReloadError::Unavailable)?;
        match rx.await {
            Ok(attempt) if attempt.successful => Ok(attempt),
            Ok(attempt) => Err(ReloadError::Refused(Box::new(attempt))),
            Err(_) => Err(ReloadError::Unavailable),
        }
    }

    /// Asks for a reload without waiting (a signal handler). False when it was not queued:
    /// the queue is full (the reloads already waiting will read the same file) or no daemon
    /// takes reloads.
    pub fn request(&self, cause: Cause) -> bool {
        self.requests
            .try_send(Request {
                cause,
                answer: None,
            })
            .is_ok()
    }

    fn update(&self, f: impl FnOnce(&mut ReloadStatus)) {
        f(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

impl ReloadQueue {
    /// The handle that feeds this queue.
    pub fn handle(&self) -> Reloads {
        self.handle.clone()
    }
}

/// Sets the process's log filter (`EnvFilter` syntax); the error says why it cannot.
type SetFilter = dyn Fn(&str) -> Result<(), String> + Send + Sync;

/// The process's log filter, as the daemon sets it from `[daemon] log` at start and on reload.
#[derive(Clone)]
pub struct LogFilter {
    set: Arc<SetFilter>,
    pinned: Option<String>,
}

/// The filter when neither the command line nor `[daemon] log` gives one.
pub const DEFAULT_LOG_FILTER: &str = "info";

impl LogFilter {
    /// A filter changed through `set`; `pinned` is the command line's (`--log`,
    /// `SASRELAY_LOG`), which wins over the file's for the life of the process.
    pub fn new(
        set: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static,
        pinned: Option<String>,
    ) -> LogFilter {
        LogFilter {
            set: Arc::new(set),
            pinned,
        }
    }

    /// Applies `configured` (`[daemon] log`; `info` when absent) unless the command line
    /// pinned the filter, which is then said once per call where the two differ.
    pub fn apply(&self, configured: Option<&str>) {
        if let Some(pinned) = &self.pinned {
            if configured.is_some_and(|c| c != pinned) {
                tracing::warn!(
                    filter = %pinned,
                    "[daemon] log is ignored: --log or SASRELAY_LOG sets the log filter for the life of the process."
                );
            }
            return;
        }
        let filter = configured.unwrap_or(DEFAULT_LOG_FILTER);
        if let Err(e) = (self.set)(filter) {
            tracing::error!(filter, error = %e, "Cannot set the log filter; the previous one stays.");
        }
    }
}

/// What a reload compares the file with besides the wiring, and changes: the settings a
/// running process keeps, the log filter, the status.
pub(super) struct Reloader {
    /// The configuration file.
    pub(super) file: PathBuf,
    /// `[state]` as the store was opened.
    pub(super) state: StateSettings,
    /// `[admin]` and its token, as the API was bound.
    pub(super) admin: (AdminSettings, Option<Secret>),
    /// `[actions]`, as the action page was bound and its links signed.
    pub(super) actions: Option<crate::action_link::ActionsSettings>,
    /// The log filter, when the process's can be changed.
    pub(super) log: Option<LogFilter>,
    /// Where the outcome goes.
    pub(super) reloads: Reloads,
}

impl Reloader {
    /// Records the start: the file and when it was read, and the orphaned outboxes.
    pub(super) fn started(&self, orphaned: Vec<OrphanedOutbox>) {
        let file = self.file.display().to_string();
        self.reloads.update(|s| {
            *s = ReloadStatus {
                file,
                loaded_at: jiff::Timestamp::now().to_string(),
                loaded_at_unix: crate::clock::unix_seconds_now(),
                orphaned_outboxes: orphaned,
                ..ReloadStatus::default()
            }
        });
    }

    /// Waits for the next request and does it. The queue holds a sender of its own, so it
    /// never runs dry: this waits for ever when nothing asks.
    pub(super) async fn next(&mut self, queue: &mut ReloadQueue, wiring: &mut Wiring) {
        let Some(request) = queue.requests.recv().await else {
            return std::future::pending().await;
        };
        let attempt = self.reload(wiring, request.cause).await;
        if let Some(answer) = request.answer {
            // The asker may have gone (a client that hung up); the outcome is logged anyway.
            let _ = answer.send(attempt);
        }
    }

    /// Reads the file again and, when it can be run with, applies it.
    async fn reload(&mut self, wiring: &mut Wiring, cause: Cause) -> ReloadAttempt {
        let file = self.file.clone();
        tracing::info!(cause = cause.as_str(), file = %file.display(), "Reloading the configuration.");
        let loaded = tokio::task::spawn_blocking(move || build::load(&file, &ProcessEnv))
            .await
            .unwrap_or_else(|e| Err(unreadable(&self.file, &e)));
        let mut attempt = ReloadAttempt {
            file: self.file.display().to_string(),
            at: jiff::Timestamp::now().to_string(),
            cause: cause.as_str().to_string(),
            ..ReloadAttempt::default()
        };
        match loaded {
            Err(errors) => self.refused(&mut attempt, &errors),
            Ok(built) => self.apply(&mut attempt, wiring, built),
        }
        attempt
    }

    fn refused(&self, attempt: &mut ReloadAttempt, errors: &ConfigErrors) {
        attempt.errors = errors.0.iter().map(ToString::to_string).collect();
        tracing::error!(
            file = %self.file.display(),
            errors = %attempt.errors.join("; "),
            count = attempt.errors.len(),
            "The configuration was not reloaded: the file has errors (listed in `errors`); the running configuration is kept."
        );
        let last = attempt.clone();
        self.reloads.update(|s| {
            s.failed += 1;
            s.last = Some(last);
        });
    }

    fn apply(&mut self, attempt: &mut ReloadAttempt, wiring: &mut Wiring, built: Built) {
        let Built {
            mut settings,
            state,
            sinks,
            admin_token,
            heartbeat,
            warnings,
        } = built;
        for w in &warnings {
            tracing::warn!(warning = %w, "The configuration has a warning; it is reloaded anyway.");
        }
        attempt.kept = kept(
            &self.state,
            &state,
            &self.admin,
            (&settings.admin, &admin_token),
        );
        if settings.actions != self.actions {
            attempt.kept.push(
                "[actions]: the action page keeps its address, key, links and who may act".into(),
            );
            settings.actions = self.actions.clone();
        }
        for what in &attempt.kept {
            tracing::warn!(kept = %what, "A setting the reload cannot change is kept as it was; restart sasrelay to apply it.");
        }
        // The admin API keeps serving as bound: keep its settings too, so what the daemon says
        // it runs with is what it runs with.
        settings.admin = self.admin.0.clone();
        if let Some(log) = &self.log {
            log.apply(settings.log.as_deref());
        }
        attempt.changes = wiring.apply(settings, sinks, heartbeat);
        attempt.successful = true;
        attempt.orphaned_outboxes = wiring.orphaned_outboxes();
        let changes = &attempt.changes;
        tracing::info!(
            cause = %attempt.cause,
            sinks_added = %changes.sinks.added.join(","),
            sinks_removed = %changes.sinks.removed.join(","),
            sources_added = %changes.sources.added.join(","),
            sources_restarted = %changes.sources.restarted.join(","),
            sources_removed = %changes.sources.removed.join(","),
            "Configuration reloaded: routes and templates are the new ones for the next event; each sink's new worker takes over its outbox once the delivery in flight is done."
        );
        let last = attempt.clone();
        self.reloads.update(|s| {
            s.succeeded += 1;
            s.loaded_at = last.at.clone();
            s.loaded_at_unix = crate::clock::unix_seconds_now();
            s.orphaned_outboxes = last.orphaned_outboxes.clone();
            s.last = Some(last);
        });
    }
}

/// The load itself panicked (a bug): reported as the file's error, so the reload is refused.
fn unreadable(file: &std::path::Path, e: &tokio::task::JoinError) -> ConfigErrors {
    ConfigErrors(vec![crate::config::ConfigError {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        key: "(file)".into(),
        message: format!("reading it failed: {e}"),
    }])
}

/// What the file changes that a running daemon cannot: `[state]` (the store stays open where
/// it is) and `[admin]` with its token (the API stays bound as it is). Pure.
pub fn kept(
    state: &StateSettings,
    new_state: &StateSettings,
    admin: &(AdminSettings, Option<Secret>),
    (new_admin, new_token): (&AdminSettings, &Option<Secret>),
) -> Vec<String> {
    let mut kept = Vec::new();
    if state.directory != new_state.directory {
        kept.push(format!(
            "[state] directory: the store stays open at {} (the file now says {})",
            state.directory.display(),
            new_state.directory.display()
        ));
    } else if state != new_state {
        kept.push("[state]: retention settings stay as they were at start".to_string());
    }
    if admin.0 != *new_admin || admin.1 != *new_token {
        kept.push("[admin]: the admin API keeps its address, token and limits".to_string());
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(dir: &str) -> StateSettings {
        let text = format!(
            "[[source]]\nname = \"a\"\nregion = \"cn-hangzhou\"\ncredentials = {{ type = \"env\" }}\n[state]\ndirectory = \"{dir}\"\n"
        );
        crate::config::check(std::path::Path::new("/etc/c.toml"), &text)
            .settings
            .state
            .unwrap()
    }

    #[test]
    fn the_state_directory_and_the_admin_api_are_kept_and_named() {
        let admin = (AdminSettings::default(), None);
        let same = kept(
            &state("/s"),
            &state("/s"),
            &admin,
            (&AdminSettings::default(), &None),
        );
        assert!(same.is_empty(), "{same:?}");
        let moved = kept(
            &state("/s"),
            &state("/t"),
            &admin,
            (&AdminSettings::default(), &Some(Secret::new("x"))),
        );
        assert_eq!(moved.len(), 2, "{moved:?}");
        assert!(moved[0].contains("stays open at /s"), "{moved:?}");
        assert!(moved[0].contains("now says /t"), "{moved:?}");
        assert!(moved[1].starts_with("[admin]"), "{moved:?}");
    }

    #[tokio::test]
    async fn a_detached_handle_says_no_daemon_takes_reloads() {
        let reloads = Reloads::default();
        assert!(matches!(
            reloads.reload(Cause::AdminApi).await,
            Err(ReloadError::Unavailable)
        ));
        assert!(!reloads.request(Cause::Signal));
        assert!(reloads.status().last_successful());
    }

    #[test]
    fn a_pinned_filter_wins_and_the_file_sets_it_otherwise() {
        let set = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = set.clone();
        let free = LogFilter::new(
            move |f| {
                seen.lock().unwrap().push(f.to_string());
                Ok(())
            },
            None,
        );
        free.apply(Some("debug"));
        free.apply(None);
        assert_eq!(*set.lock().unwrap(), ["debug", "info"]);
        let seen = set.clone();
        let pinned = LogFilter::new(
            move |f| {
                seen.lock().unwrap().push(f.to_string());
                Ok(())
            },
            Some("warn".into()),
        );
        pinned.apply(Some("debug"));
        assert_eq!(set.lock().unwrap().len(), 2, "the command line wins");
    }
}
