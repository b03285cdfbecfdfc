//! The daemon: [`run`] is wiring only. Everything that can be wrong with the configuration is
//! found first, by [`build`] (the step `sasrelay check` runs too), before the store is opened;
//! then [`start`] opens the store, makes the dispatcher from the built sinks, binds the admin
//! API (unless `[admin] listen = "off"`), spawns the tasks, waits for shutdown and stops them
//! in order.
//!
//! Every long-running job is a [`crate::task::Task`] driven by the runner in [`tasks`], which
//! owns looping, cancellation, backoff and the failure log: per sink a delivery worker
//! (`deliver`); per source a `connect` ([`sources`]), then per domain a poller (`poll`); the
//! grouper (`group`); the pruner (`prune`, [`prune`]); the systemd heartbeat (`watchdog`,
//! [`notify::Watchdog`]). The admin API is a server, spawned beside them; [`door`] accepts its
//! connections and screens its requests.
//!
//! Shutdown (SIGTERM/SIGINT, or the caller's token): polling stops first (a poll in progress
//! finishes, or is dropped before its cursor moves once the grace period is over — both are
//! safe), then the workers finish the delivery in flight within the grace period, then the
//! store is flushed. The log says whether the shutdown was clean. The tasks are spawned on two
//! trackers, the pollers' and the workers', each stopped by its own token.

pub mod admin;
pub mod build;
pub mod door;
pub mod health;
pub mod heartbeat;
pub mod metrics;
pub mod notify;
pub mod prune;
pub mod sources;
pub mod tasks;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::credentials::CredentialContext;
use crate::credentials::env::ProcessEnv;
use crate::daemon::admin::AdminState;
use crate::daemon::health::{Health, Monitor};
use crate::daemon::heartbeat::Heartbeat;
use crate::daemon::notify::{Notifier, Watchdog};
use crate::daemon::prune::Pruner;
use crate::daemon::sources::{Connect, PollerParts};
use crate::pipeline::delivery::Worker;
use crate::pipeline::dispatch::{Dispatcher, Silences, SinkHandle};
use crate::pipeline::grouper::Grouper;
use crate::pipeline::metrics::Metrics;
use crate::sinks::Sink;
use crate::store::Store;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration cannot be started with ([`build`]): every problem, each with its place.
    #[error("{0}")]
    Config(crate::config::ConfigErrors),
    /// The store could not be opened.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    /// The admin API's address could not be bound.
    #[error(
        "cannot listen on {addr} for the admin API ([admin] listen in {file}): {reason}; choose another address or set listen = \"off\""
    )]
    AdminBind {
        /// The config file.
        file: String,
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        reason: String,
    },
    /// Something else at start (HTTP client).
    #[error("{0}")]
    Other(String),
}

/// How the daemon stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopReport {
    /// Every task finished within the grace period and the final flush succeeded.
    pub clean: bool,
}

/// Builds `settings` ([`build::build`]) and runs until `shutdown` is cancelled.
pub async fn run(
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<StopReport, StartError> {
    let checked = crate::config::Checked {
        settings,
        errors: Vec::new(),
    };
    let built = build::build(checked, &ProcessEnv).map_err(StartError::Config)?;
    start(built, shutdown).await
}

/// Runs what [`build`] built until `shutdown` is cancelled: nothing here can fail for a reason
/// `sasrelay check` would have reported.
pub async fn start(
    built: build::Built,
    shutdown: CancellationToken,
) -> Result<StopReport, StartError> {
    let build::Built {
        settings,
        state,
        sinks,
        admin_token,
        heartbeat,
        warnings,
    } = built;
    for w in &warnings {
        tracing::warn!(warning = %w, "The configuration has a warning; sasrelay starts anyway.");
    }
    let store = Store::open(&state.directory)?;
    let handles = sink_handles(sinks, &store);
    let silences = Arc::new(Silences::load(store.clone())?);
    let metrics = registered_metrics(&settings, &handles);
    let health = Health::new(metrics.clone(), store.clone());
    health.configure(
        &settings.health,
        heartbeat,
        &settings.sources,
        wakes(&handles),
    );
    // Bound before anything is spawned, so a taken port fails the start cleanly.
    let admin = match settings.admin.listen {
        Some(addr) => Some(
            bind_admin(
                &settings,
                admin_token,
                addr,
                &store,
                &silences,
                &handles,
                &health,
            )
            .await?,
        ),
        None => None,
    };
    let grouper_wake = Arc::new(Notify::new());
    let dispatcher = Arc::new(Dispatcher::new(
        settings.router.clone(),
        handles.clone(),
        silences.clone(),
        store.clone(),
        grouper_wake.clone(),
    ));
    let tasks = Tasks::default();
    let credentials = CredentialContext::new(
        http_client()?,
        tasks.stop_polling.clone(),
        tasks.pollers.clone(),
    );
    let parts = PollerParts {
        store: store.clone(),
        dispatcher,
        metrics,
        health: health.clone(),
    };
    tasks.deliver(&handles, &settings, &parts);
    tasks.group(&handles, grouper_wake, &parts);
    tasks.connect(&settings, &credentials, &parts);
    tasks.prune(Pruner::new(store.clone(), silences, &state));
    tasks.health(&health);
    if let Some((listener, admin)) = admin {
        tasks.serve_admin(listener, admin);
    }
    tracing::info!(
        sources = settings.sources.len(),
        sinks = handles.len(),
        state = %state.directory.display(),
        "sasrelay running."
    );
    // systemd (Type=notify): ready now; heartbeats while the runtime answers.
    let notifier = Arc::new(Notifier::from_env(&ProcessEnv, std::process::id()));
    notifier.send("READY=1\nSTATUS=Polling Security Center and delivering.");
    tasks.watchdog(&notifier);

    shutdown.cancelled().await;
    notifier.send("STOPPING=1\nSTATUS=Shutting down.");
    Ok(tasks.stop(settings.shutdown_grace, &store).await)
}

/// One handle per configured sink: the sink built, and the wake of its worker. Warns about
/// outboxes of sinks no longer configured (their entries wait for the sink to return).
fn sink_handles(sinks: Vec<Sink>, store: &Store) -> BTreeMap<String, SinkHandle> {
    let mut handles = BTreeMap::new();
    for sink in sinks {
        let handle = SinkHandle {
            sink: Arc::new(sink),
            wake: Arc::new(Notify::new()),
        };
        handles.insert(handle.sink.name().to_string(), handle);
    }
    for name in store.sinks_with_entries() {
        if !handles.contains_key(&name) {
            tracing::warn!(sink = %name, pending = store.depth(&name), "The outbox holds entries for a sink that is no longer configured; they stay until it returns.");
        }
    }
    handles
}

/// The daemon's counters, with a series for every poller and sink from the start.
fn registered_metrics(settings: &Settings, handles: &BTreeMap<String, SinkHandle>) -> Arc<Metrics> {
    let metrics = Arc::new(Metrics::default());
    metrics.register(
        &settings
            .sources
            .iter()
            .flat_map(|s| s.polls.iter().map(|p| (s.name.clone(), p.domain.as_str())))
            .collect::<Vec<_>>(),
        &handles.keys().cloned().collect::<Vec<_>>(),
    );
    metrics
}

/// The wake of every sink's worker, by sink name.
fn wakes(handles: &BTreeMap<String, SinkHandle>) -> BTreeMap<String, Arc<Notify>> {
    handles
        .iter()
        .map(|(name, h)| (name.clone(), h.wake.clone()))
        .collect()
}

/// Binds `addr` for the admin API, which requires `token` (`[admin] token`, read by
/// [`build`]) when there is one.
async fn bind_admin(
    settings: &Settings,
    token: Option<crate::secret::Secret>,
    addr: std::net::SocketAddr,
    store: &Store,
    silences: &Arc<Silences>,
    handles: &BTreeMap<String, SinkHandle>,
    health: &Health,
) -> Result<(TcpListener, AdminState), StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| StartError::AdminBind {
            file: settings.file.display().to_string(),
            addr,
            reason: e.to_string(),
        })?;
    let state = AdminState {
        silences: silences.clone(),
        store: store.clone(),
        token,
        sinks: wakes(handles),
        metrics: health.metrics().clone(),
        health: health.clone(),
        settings: settings.admin.clone(),
    };
    Ok((listener, state))
}

/// The client the credential providers fetch with.
fn http_client() -> Result<reqwest::Client, StartError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| StartError::Other(format!("cannot build HTTP client: {e}")))
}

/// The daemon's tasks, in the two groups shutdown stops one after the other.
#[derive(Default)]
struct Tasks {
    /// Connects, pollers, the grouper, the pruner, the admin API, the watchdog and the
    /// credential refreshers.
    pollers: TaskTracker,
    /// Cancelled first at shutdown: no new poll, group close or prune starts.
    stop_polling: CancellationToken,
    /// One delivery worker per sink.
    workers: TaskTracker,
    /// Cancelled right after `stop_polling`: the delivery in flight finishes, no new one starts.
    stop_delivering: CancellationToken,
}

impl Tasks {
    /// One delivery worker per sink.
    fn deliver(
        &self,
        handles: &BTreeMap<String, SinkHandle>,
        settings: &Settings,
        parts: &PollerParts,
    ) {
        for handle in handles.values() {
            let worker = Worker::new(
                handle.sink.clone(),
                parts.store.clone(),
                settings.delivery,
                handle.wake.clone(),
            )
            .with_metrics(parts.metrics.clone());
            tasks::spawn(&self.workers, worker, &self.stop_delivering);
        }
    }

    /// The grouper, woken by dispatch through `wake`; it sends reminders too.
    fn group(
        &self,
        handles: &BTreeMap<String, SinkHandle>,
        wake: Arc<Notify>,
        parts: &PollerParts,
    ) {
        let grouper = Grouper::new(parts.store.clone(), wakes(handles), wake)
            .with_reminders(parts.dispatcher.clone());
        tasks::spawn(&self.pollers, grouper, &self.stop_polling);
    }

    /// One connect per source; each starts its source's pollers once connected.
    fn connect(&self, settings: &Settings, credentials: &CredentialContext, parts: &PollerParts) {
        for source in &settings.sources {
            let connect = Connect::new(
                source.clone(),
                credentials.clone(),
                parts.clone(),
                self.pollers.clone(),
                self.stop_polling.clone(),
            );
            tasks::spawn(&self.pollers, connect, &self.stop_polling);
        }
    }

    fn prune(&self, pruner: Pruner) {
        tasks::spawn(&self.pollers, pruner, &self.stop_polling);
    }

    /// The health monitor (meta-events) and the heartbeat (idle without
    /// `[health] heartbeat_url`).
    fn health(&self, health: &Health) {
        tasks::spawn(
            &self.pollers,
            Monitor::new(health.clone()),
            &self.stop_polling,
        );
        match Heartbeat::new(health.clone()) {
            Ok(h) => drop(tasks::spawn(&self.pollers, h, &self.stop_polling)),
            Err(e) => tracing::error!(error = %e, "Cannot send heartbeats."),
        }
    }

    fn serve_admin(&self, listener: TcpListener, state: AdminState) {
        let addr = listener
            .local_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string());
        tracing::info!(
            %addr,
            token = state.token.is_some(),
            "Admin API listening on http://{addr}."
        );
        if state.settings.open_without_token() {
            tracing::warn!(
                %addr,
                "The admin API listens on {addr}, beyond this host, with no token ([admin] allow_unauthenticated = true): anyone who reaches it can create silences and replay or discard dead letters."
            );
        }
        self.pollers
            .spawn(admin::serve(listener, state, self.stop_polling.clone()));
    }

    /// systemd's watchdog heartbeat, when the unit asks for one.
    fn watchdog(&self, notifier: &Arc<Notifier>) {
        if let Some(watchdog) = Watchdog::new(notifier.clone()) {
            tracing::info!(
                every_s = watchdog.every().as_secs_f64(),
                "Sending systemd watchdog heartbeats."
            );
            tasks::spawn(&self.pollers, watchdog, &self.stop_polling);
        }
    }

    /// Polling stops, then the workers finish the delivery in flight, all within `grace`;
    /// then the store is flushed.
    async fn stop(self, grace: Duration, store: &Store) -> StopReport {
        tracing::info!(
            grace_s = grace.as_secs(),
            "Shutting down: polling stops, in-flight deliveries finish."
        );
        self.stop_polling.cancel();
        self.pollers.close();
        self.stop_delivering.cancel();
        self.workers.close();
        let finished = tokio::time::timeout(grace, async {
            self.pollers.wait().await;
            self.workers.wait().await;
        })
        .await
        .is_ok();
        let flushed = match store.flush().await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "Final store flush failed.");
                false
            }
        };
        let clean = finished && flushed;
        if clean {
            tracing::info!("Shutdown clean: every task finished and the store is flushed.");
        } else {
            tracing::warn!(
                tasks_finished = finished,
                flushed,
                "Shutdown not clean: a delivery was abandoned mid-flight (it will be retried on the next start)."
            );
        }
        StopReport { clean }
    }
}
