//! The daemon: [`run`] is wiring only. Everything that can be wrong with the configuration is
//! found first, by [`build`] (the step `sasrelay check` runs too), before the store is opened;
//! then [`start`] opens the store (once, for the life of the process), binds the admin API
//! (unless `[admin] listen = "off"`) and the health and metrics listener (`[admin]
//! health_listen`, when set), starts the [`wiring`] (sinks' workers, sources, grouper,
//! routes) and the process-long tasks, takes reload requests ([`reload`]) until shutdown, and
//! stops everything in order.
//!
//! Every long-running job is a [`crate::task::Task`] driven by the runner in [`tasks`], which
//! owns looping, cancellation, backoff and the failure log: per sink a delivery worker
//! (`deliver`); per source a `connect` ([`sources`]), then per domain a poller (`poll`); the
//! grouper (`group`); the pruner (`prune`, [`prune`]); the health monitor (`health`,
//! [`health::Monitor`]) and the ping to a dead man's switch (`heartbeat`, [`heartbeat`]); the
//! systemd heartbeat (`watchdog`, [`notify::Watchdog`]). The admin API is a server, spawned beside them; [`door`] accepts its
//! connections and screens its requests.
//!
//! A reload (SIGHUP, `POST /-/reload`) reads and builds the file as `check` does; an invalid
//! file changes nothing. A valid one rebuilds the wiring on the same store: routes change for
//! the next event, each sink's new worker takes over its outbox once the old one finished the
//! delivery in flight, changed sources restart once their poll in progress is done (see
//! [`wiring`] for why nothing is lost or sent twice). `[state]` and `[admin]` stay as they
//! were started.
//!
//! Shutdown (SIGTERM/SIGINT, or the caller's token): polling stops first (a poll in progress
//! finishes, or is dropped before its cursor moves once the grace period is over — both are
//! safe), then the workers finish the delivery in flight within the grace period, then the
//! store is flushed. The log says whether the shutdown was clean. The tasks are spawned on two
//! trackers, the pollers' and the workers', each stopped by its own token; the wiring's parts
//! have trackers and tokens of their own under those.

pub mod act;
pub mod admin;
pub mod build;
pub mod door;
pub mod ha;
pub mod health;
pub mod heartbeat;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod prune;
pub mod reload;
pub mod sources;
pub mod tasks;
pub mod wiring;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::credentials::env::ProcessEnv;
use crate::daemon::admin::AdminState;
use crate::daemon::health::{Health, Monitor};
use crate::daemon::heartbeat::Heartbeat;
use crate::daemon::notify::{Notifier, Watchdog};
use crate::daemon::prune::Pruner;
use crate::daemon::reload::{LogFilter, ReloadQueue, Reloader, Reloads};
use crate::daemon::wiring::{ConfiguredSinks, Ground, Wiring};
use crate::pipeline::dispatch::Silences;
use crate::pipeline::metrics::Metrics;
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
    /// The health and metrics listener's address could not be bound.
    #[error(
        "cannot listen on {addr} for health and metrics ([admin] health_listen in {file}): {reason}; choose another address or set health_listen = \"off\""
    )]
    HealthBind {
        /// The config file.
        file: String,
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        reason: String,
    },
    /// The action page's address could not be bound.
    #[error(
        "cannot listen on {addr} for the action page ([actions] listen in {file}): {reason}; choose another address"
    )]
    ActionsBind {
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

/// What the daemon is run with besides its configuration: how it is stopped, and what may
/// change it while it runs.
pub struct Control {
    /// Cancelled to stop the daemon (SIGTERM, SIGINT, or the caller).
    pub shutdown: CancellationToken,
    /// Reload requests (SIGHUP, `POST /-/reload`); `None`: the daemon never reloads (the
    /// demo), and `POST /-/reload` answers 503.
    pub reloads: Option<ReloadQueue>,
    /// The process's log filter, set from `[daemon] log` at start and on reload; `None`: left
    /// as it is.
    pub log: Option<LogFilter>,
}

impl Control {
    /// Stopped by `shutdown`, never reloaded, the log filter left alone.
    pub fn new(shutdown: CancellationToken) -> Control {
        Control {
            shutdown,
            reloads: None,
            log: None,
        }
    }
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
    start(built, Control::new(shutdown)).await
}

/// Runs what [`build`] built until `control.shutdown` is cancelled, reloading on each request
/// of `control.reloads`: nothing here can fail for a reason `sasrelay check` would have
/// reported. The store is opened once, here; a reload rebuilds the [`wiring`] on it.
pub async fn start(built: build::Built, control: Control) -> Result<StopReport, StartError> {
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
    if let Some(log) = &control.log {
        log.apply(settings.log.as_deref());
    }
    let store = Store::open(&state.directory)?;
    let silences = Arc::new(Silences::load(store.clone())?);
    let (reloads, mut queue) = match control.reloads {
        Some(queue) => (queue.handle(), Some(queue)),
        None => (Reloads::default(), None),
    };
    let metrics = Arc::new(Metrics::default());
    let health = Health::new(metrics.clone(), store.clone());
    let action_key = match &settings.actions {
        Some(a) => Some(act::key(a, &state.directory).map_err(StartError::Other)?),
        None => None,
    };
    let ground = Ground {
        store: store.clone(),
        silences: silences.clone(),
        metrics,
        health: health.clone(),
        http: http_client()?,
        configured: ConfiguredSinks::default(),
        connected: Default::default(),
        actions: settings
            .actions
            .as_ref()
            .zip(action_key.as_ref())
            .map(|(a, k)| {
                Arc::new(crate::action_link::Minter::new(
                    k.clone(),
                    &a.public_url,
                    a.link_ttl,
                    a.offer.clone(),
                ))
            }),
    };
    // Bound before anything is spawned, so a taken port fails the start cleanly.
    let admin = match settings.admin.listen {
        Some(addr) => {
            Some(bind_admin(&settings, admin_token.clone(), addr, &ground, &reloads).await?)
        }
        None => None,
    };
    let health_listener = match settings.admin.health_listen {
        Some(addr) => Some(bind_health(&settings, addr, &ground, &reloads).await?),
        None => None,
    };
    let actions_listener = match settings.actions.as_ref().zip(action_key) {
        Some((a, key)) => {
            let listener = bind(a.listen, |reason| StartError::ActionsBind {
                file: settings.file.display().to_string(),
                addr: a.listen,
                reason,
            })
            .await?;
            let state = act::ActState {
                settings: a.clone(),
                key,
                store: store.clone(),
                connected: ground.connected.clone(),
                metrics: ground.metrics.clone(),
            };
            Some((listener, Arc::new(state)))
        }
        None => None,
    };
    let mut reloader = Reloader {
        file: settings.file.clone(),
        state: state.clone(),
        admin: (settings.admin.clone(), admin_token),
        actions: settings.actions.clone(),
        log: control.log,
        reloads,
    };
    // With replicas, stand for the lease before anything polls or delivers.
    let mut leadership = match &settings.ha {
        Some(ha) => Some(
            ha::Leadership::start(ha, &ProcessEnv, store.clone(), ground.metrics.clone()).await?,
        ),
        None => None,
    };
    let tasks = Tasks::default();
    let settings_admin = settings.admin.clone();
    let mut wiring = Wiring::start(ground, tasks.clone(), settings, sinks, heartbeat);
    let orphaned = wiring.orphaned_outboxes();
    for o in &orphaned {
        tracing::warn!(sink = %o.sink, pending = o.pending, "The outbox holds entries for a sink that is no longer configured; they stay until it returns.");
    }
    reloader.started(orphaned);
    tasks.prune(Pruner::new(store.clone(), silences, &state));
    tasks.health(&health);
    if let Some((listener, admin)) = admin {
        tasks.serve_admin(listener, admin);
    }
    if let Some((listener, state)) = health_listener {
        tasks.serve_health(listener, state);
    }
    if let Some((listener, state)) = actions_listener {
        tasks.serve_actions(listener, state, settings_admin.clone());
    }
    tracing::info!(
        sources = wiring.settings().sources.len(),
        sinks = wiring.settings().sinks.len(),
        state = %state.directory.display(),
        "sasrelay running."
    );
    // systemd (Type=notify): ready now; heartbeats while the runtime answers.
    let notifier = Arc::new(Notifier::from_env(&ProcessEnv, std::process::id()));
    notifier.send("READY=1\nSTATUS=Polling Security Center and delivering.");
    tasks.watchdog(&notifier);

    let grace = wiring.settings().shutdown_grace;
    loop {
        tokio::select! {
            biased;
            _ = control.shutdown.cancelled() => break,
            () = role_changed(leadership.as_mut()) => {
                if let Some(l) = leadership.as_mut() {
                    l.follow(&mut wiring, grace).await;
                }
            }
            () = next_reload(&mut reloader, queue.as_mut(), &mut wiring) => {}
        }
    }
    notifier.send("STOPPING=1\nSTATUS=Shutting down.");
    if let Some(l) = leadership {
        // Polls and deliveries stop, a last checkpoint is written, the lease is released.
        l.stop(&mut wiring, grace).await;
    }
    Ok(tasks.stop(grace, &store, wiring).await)
}

/// Resolves when the lease role changed; never without replicas.
async fn role_changed(leadership: Option<&mut ha::Leadership>) {
    match leadership {
        Some(l) => l.changed().await,
        None => std::future::pending().await,
    }
}

/// Does the next reload request; never resolves without a queue (nothing asks).
async fn next_reload(
    reloader: &mut Reloader,
    queue: Option<&mut ReloadQueue>,
    wiring: &mut Wiring,
) {
    match queue {
        Some(queue) => reloader.next(queue, wiring).await,
        None => std::future::pending().await,
    }
}

/// Binds `addr` for the admin API, which requires `token` (`[admin] token`, read by
/// [`build`]) when there is one.
async fn bind_admin(
    settings: &Settings,
    token: Option<crate::secret::Secret>,
    addr: std::net::SocketAddr,
    ground: &Ground,
    reloads: &Reloads,
) -> Result<(TcpListener, AdminState), StartError> {
    let listener = bind(addr, |reason| StartError::AdminBind {
        file: settings.file.display().to_string(),
        addr,
        reason,
    })
    .await?;
    Ok((listener, admin_state(settings, token, ground, reloads)))
}

/// Binds `addr` for `[admin] health_listen`, which serves only health and metrics (so the
/// state it is given has no token to check).
async fn bind_health(
    settings: &Settings,
    addr: std::net::SocketAddr,
    ground: &Ground,
    reloads: &Reloads,
) -> Result<(TcpListener, AdminState), StartError> {
    let listener = bind(addr, |reason| StartError::HealthBind {
        file: settings.file.display().to_string(),
        addr,
        reason,
    })
    .await?;
    Ok((listener, admin_state(settings, None, ground, reloads)))
}

/// Binds `addr`; a failure becomes the [`StartError`] `error` makes of the OS's reason.
async fn bind(
    addr: std::net::SocketAddr,
    error: impl FnOnce(String) -> StartError,
) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| error(e.to_string()))
}

/// What the admin API and the health listener serve from.
fn admin_state(
    settings: &Settings,
    token: Option<crate::secret::Secret>,
    ground: &Ground,
    reloads: &Reloads,
) -> AdminState {
    AdminState {
        silences: ground.silences.clone(),
        store: ground.store.clone(),
        token,
        sinks: ground.configured.clone(),
        metrics: ground.metrics.clone(),
        health: ground.health.clone(),
        settings: settings.admin.clone(),
        reload: reloads.clone(),
        connected: ground.connected.clone(),
    }
}

/// The client the credential providers fetch with.
fn http_client() -> Result<reqwest::Client, StartError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| StartError::Other(format!("cannot build HTTP client: {e}")))
}

/// The daemon's tasks, in the two groups shutdown stops one after the other. Cheap to clone
/// (the trackers and tokens are shared).
#[derive(Clone, Default)]
struct Tasks {
    /// The pruner, the health monitor and heartbeat, the admin API, the watchdog, and the [`wiring`]'s sources (connects,
    /// pollers, credential refreshers) and grouper.
    pollers: TaskTracker,
    /// Cancelled first at shutdown: no new poll, group close or prune starts.
    stop_polling: CancellationToken,
    /// One delivery worker per sink.
    workers: TaskTracker,
    /// Cancelled right after `stop_polling`: the delivery in flight finishes, no new one starts.
    stop_delivering: CancellationToken,
}

impl Tasks {
    fn prune(&self, pruner: Pruner) {
        tasks::spawn(&self.pollers, pruner, &self.stop_polling);
    }

    /// The health monitor (meta-events), the start-up memory release (`memory::Settle`) and
    /// the heartbeat (idle without `[health] heartbeat_url`).
    fn health(&self, health: &Health) {
        tasks::spawn(
            &self.pollers,
            Monitor::new(health.clone()),
            &self.stop_polling,
        );
        // Start-up memory goes back once every source × domain has had its first poll.
        tasks::spawn(
            &self.pollers,
            memory::Settle::new(health.clone()),
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

    /// `[admin] health_listen`: health and metrics only, stopped with the pollers like the API.
    fn serve_health(&self, listener: TcpListener, state: AdminState) {
        let addr = listener
            .local_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string());
        tracing::info!(
            %addr,
            "Health and metrics listening on http://{addr} (/healthz, /readyz, /metrics only)."
        );
        self.pollers.spawn(admin::serve_health(
            listener,
            state,
            self.stop_polling.clone(),
        ));
    }

    /// `[actions]`: the action page, stopped with the pollers like the API.
    fn serve_actions(
        &self,
        listener: TcpListener,
        state: Arc<act::ActState>,
        admin: crate::config::AdminSettings,
    ) {
        let addr = listener
            .local_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string());
        tracing::info!(
            %addr,
            public_url = %state.settings.public_url,
            identity_header = ?state.settings.identity_header,
            allow_unauthenticated = state.settings.allow_unauthenticated,
            "Action page listening on http://{addr} (links point to {}).",
            state.settings.public_url
        );
        self.pollers.spawn(act::serve(
            listener,
            state,
            admin,
            self.stop_polling.clone(),
        ));
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
    async fn stop(self, grace: Duration, store: &Store, wiring: Wiring) -> StopReport {
        tracing::info!(
            grace_s = grace.as_secs(),
            "Shutting down: polling stops, in-flight deliveries finish."
        );
        self.stop_polling.cancel();
        self.pollers.close();
        self.stop_delivering.cancel();
        self.workers.close();
        let parts = wiring.stop();
        let finished = tokio::time::timeout(grace, async {
            self.pollers.wait().await;
            self.workers.wait().await;
            for part in parts {
                part.wait().await;
            }
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
