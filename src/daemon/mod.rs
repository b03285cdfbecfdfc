//! The daemon: opens the store, builds the sinks, starts one poller per (source, domain), one
//! delivery worker per sink, a pruner and (unless `[admin] listen = "off"`) the admin API, and
//! stops them in order.
//!
//! Shutdown (SIGTERM/SIGINT, or the caller's token): polling stops first (a poll in progress
//! finishes or is abandoned before its writes — both are safe), then the workers finish the
//! delivery in flight within the grace period, then the store is flushed. The log says whether
//! the shutdown was clean. Every task is spawned on one tracker; every loop watches one token.

pub mod admin;
pub mod metrics;
pub mod notify;
pub mod tasks;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::unix_ms;
use crate::config::Settings;
use crate::credentials::CredentialContext;
use crate::credentials::env::ProcessEnv;
use crate::daemon::notify::Notifier;
use crate::pipeline::delivery::Worker;
use crate::pipeline::dispatch::{Dispatcher, Silences, SinkHandle};
use crate::pipeline::grouper::Grouper;
use crate::pipeline::poller::{Poller, connect_with_retry};
use crate::sinks::Sink;
use crate::store::Store;

/// How often resolved records and old enqueue guards are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `[state]` is missing.
    #[error("{0}: no [state] section: `run` needs `[state] directory = \"/var/lib/sasrelay\"`")]
    NoState(String),
    /// No sink configured.
    #[error("{0}: no [[sink]] configured: findings would have nowhere to go")]
    NoSinks(String),
    /// The store could not be opened.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    /// A sink could not be built (a secret missing, a bad URL).
    #[error("sink {name}: {reason}")]
    Sink {
        /// Sink name.
        name: String,
        /// What failed.
        reason: String,
    },
    /// `[admin] token` could not be read.
    #[error("{file}: [admin] token ({from}): {reason}")]
    AdminToken {
        /// The config file.
        file: String,
        /// Where the token comes from (never the token).
        from: String,
        /// Why it could not be read.
        reason: String,
    },
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

/// Runs until `shutdown` is cancelled.
pub async fn run(
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<StopReport, StartError> {
    let file = settings.file.display().to_string();
    let state = settings
        .state
        .clone()
        .ok_or_else(|| StartError::NoState(file.clone()))?;
    if settings.sinks.is_empty() {
        return Err(StartError::NoSinks(file));
    }
    let store = Store::open(&state.directory)?;
    let mut sinks = Vec::new();
    for cfg in &settings.sinks {
        let sink = Sink::build(cfg).map_err(|reason| StartError::Sink {
            name: cfg.name.clone(),
            reason,
        })?;
        sinks.push(Arc::new(sink));
    }
    let handles: std::collections::BTreeMap<String, SinkHandle> = sinks
        .iter()
        .map(|s| {
            (
                s.name().to_string(),
                SinkHandle {
                    sink: s.clone(),
                    wake: Arc::new(Notify::new()),
                },
            )
        })
        .collect();
    for name in store.sinks_with_entries() {
        if !handles.contains_key(&name) {
            tracing::warn!(sink = %name, pending = store.depth(&name), "The outbox holds entries for a sink that is no longer configured; they stay until it returns.");
        }
    }
    let silences = Arc::new(Silences::load(store.clone())?);
    let metrics = Arc::new(crate::pipeline::metrics::Metrics::default());
    metrics.register(
        &settings
            .sources
            .iter()
            .flat_map(|s| s.polls.iter().map(|p| (s.name.clone(), p.domain.as_str())))
            .collect::<Vec<_>>(),
        &handles.keys().cloned().collect::<Vec<_>>(),
    );
    // Bound before anything is spawned, so a taken port or a missing token fails the start
    // cleanly.
    let admin = match settings.admin.listen {
        Some(addr) => {
            let token = match &settings.admin.token {
                Some(r) => Some(r.resolve().map_err(|e| StartError::AdminToken {
                    file: file.clone(),
                    from: r.describe(),
                    reason: e.to_string(),
                })?),
                None => None,
            };
            let listener =
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| StartError::AdminBind {
                        file: file.clone(),
                        addr,
                        reason: e.to_string(),
                    })?;
            let state = crate::daemon::admin::AdminState {
                silences: silences.clone(),
                store: store.clone(),
                token,
                sinks: handles
                    .iter()
                    .map(|(name, h)| (name.clone(), h.wake.clone()))
                    .collect(),
                metrics: metrics.clone(),
            };
            Some((listener, state))
        }
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
    let stop_polling = CancellationToken::new();
    let stop_delivering = CancellationToken::new();
    let pollers = TaskTracker::new();
    let workers = TaskTracker::new();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| StartError::Other(format!("cannot build HTTP client: {e}")))?;
    let cred_ctx = CredentialContext::new(http, stop_polling.clone(), pollers.clone());

    for handle in handles.values() {
        let worker = Worker::new(
            handle.sink.clone(),
            store.clone(),
            settings.delivery,
            handle.wake.clone(),
        )
        .with_metrics(metrics.clone());
        workers.spawn(worker.run(stop_delivering.clone()));
    }
    let grouper = Grouper::new(
        store.clone(),
        handles
            .iter()
            .map(|(name, h)| (name.clone(), h.wake.clone()))
            .collect(),
        grouper_wake,
    )
    .with_reminders(dispatcher.clone());
    pollers.spawn(grouper.run(stop_polling.clone()));
    for source_settings in settings.sources.clone() {
        let (store, dispatcher, token, ctx, tracker, metrics) = (
            store.clone(),
            dispatcher.clone(),
            stop_polling.clone(),
            cred_ctx.clone(),
            pollers.clone(),
            metrics.clone(),
        );
        pollers.spawn(async move {
            let polls = source_settings.polls.clone();
            let Some(source) = connect_with_retry(source_settings, &ProcessEnv, &ctx, &token).await
            else {
                return;
            };
            let source = Arc::new(source);
            for poll in polls {
                let poller = Poller::new(source.clone(), poll, store.clone(), dispatcher.clone())
                    .with_metrics(metrics.clone());
                tracker.spawn(poller.run(token.clone()));
            }
        });
    }
    {
        let (store, token, silences) = (store.clone(), stop_polling.clone(), silences.clone());
        let retention = state.resolved_retention.as_millis() as i64;
        let guard_ttl = state.guard_ttl.as_millis() as i64;
        let dead_retention = state.dead_letter_retention.as_millis() as i64;
        pollers.spawn(async move {
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(PRUNE_EVERY) => {}
                }
                let now = unix_ms(time::OffsetDateTime::now_utc());
                match store.prune(now, retention, guard_ttl) {
                    Ok(r) => tracing::debug!(?r, "Pruned the store."),
                    Err(e) => tracing::error!(error = %e, "Pruning the store failed."),
                }
                match store.prune_dead_letters(now.saturating_sub(dead_retention)) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        removed = n,
                        "Deleted dead letters older than [state] dead_letter_retention."
                    ),
                    Err(e) => tracing::error!(error = %e, "Pruning dead letters failed."),
                }
                if let Err(e) = store.prune_suppressed(now.saturating_sub(retention)) {
                    tracing::error!(error = %e, "Pruning the suppression log failed.");
                }
                silences.prune(
                    crate::routing::to_timestamp(time::OffsetDateTime::now_utc()),
                    std::time::Duration::from_millis(retention as u64),
                );
            }
        });
    }
    if let Some((listener, state)) = admin {
        let addr = listener
            .local_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string());
        tracing::info!(
            %addr,
            token = state.token.is_some(),
            "Admin API listening on http://{addr}."
        );
        pollers.spawn(crate::daemon::admin::serve(
            listener,
            state,
            stop_polling.clone(),
        ));
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
    if let Some(every) = notifier.watchdog_every() {
        let (notifier, token) = (notifier.clone(), stop_polling.clone());
        tracing::info!(
            every_s = every.as_secs_f64(),
            "Sending systemd watchdog heartbeats."
        );
        pollers.spawn(async move {
            loop {
                notifier.send("WATCHDOG=1");
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        });
    }

    shutdown.cancelled().await;
    notifier.send("STOPPING=1\nSTATUS=Shutting down.");
    tracing::info!(
        grace_s = settings.shutdown_grace.as_secs(),
        "Shutting down: polling stops, in-flight deliveries finish."
    );
    stop_polling.cancel();
    pollers.close();
    stop_delivering.cancel();
    workers.close();
    let finished = tokio::time::timeout(settings.shutdown_grace, async {
        pollers.wait().await;
        workers.wait().await;
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
    Ok(StopReport { clean })
}
