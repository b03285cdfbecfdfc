//! Connecting a source: a [`Task`] per configured source that connects it (credentials and a
//! client) and then starts one poller per domain. A credentials outage at boot must not
//! crash-loop the daemon, so a failed connect is retried by the runner with its backoff (1 s
//! doubling to 5 min) until it works or the daemon stops; every failure is logged at ERROR,
//! since until it connects the source is not read at all. Each failure counts as a failed poll
//! of every domain of the source (`reason` `credentials`, or `connect`), so its domains are
//! `blind` ([`crate::health`]) from the first one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::credentials::CredentialContext;
use crate::credentials::env::ProcessEnv;
use crate::daemon::health::Health;
use crate::daemon::tasks;
use crate::pipeline::dispatch::Dispatcher;
use crate::pipeline::metrics::Metrics;
use crate::pipeline::poller::Poller;
use crate::sas::source::{Source, SourceSettings};
use crate::store::Store;
use crate::task::{Label, Next, Task, TaskError};

/// What a connected source's pollers write to and count into.
#[derive(Clone)]
pub struct PollerParts {
    /// The store.
    pub store: Store,
    /// Where their events go.
    pub dispatcher: Arc<Dispatcher>,
    /// The daemon's counters.
    pub metrics: Arc<Metrics>,
    /// The daemon's health, which follows each connected source's credential refresher.
    pub health: Health,
    /// Where a connected source is found by name (handling acts through its client).
    pub connected: Connected,
}

/// The sources connected now, by name, for what acts through a source's client and
/// credentials (`sasrelay handle`). Weak: a source whose pollers all ended (stopped by a
/// reload, or a term that ended) is gone.
#[derive(Clone, Default)]
pub struct Connected(Arc<Mutex<BTreeMap<String, Weak<Source>>>>);

impl Connected {
    /// The connected source `name`, if its pollers run.
    pub fn get(&self, name: &str) -> Option<Arc<Source>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .and_then(Weak::upgrade)
    }

    fn insert(&self, name: &str, source: &Arc<Source>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), Arc::downgrade(source));
    }
}

/// Connects one source, then spawns its pollers on `tracker`, stopped by `shutdown`.
pub struct Connect {
    settings: SourceSettings,
    ctx: CredentialContext,
    parts: PollerParts,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Connect {
    /// A connect of `settings` under `ctx` whose pollers run on `tracker` until `shutdown`.
    pub fn new(
        settings: SourceSettings,
        ctx: CredentialContext,
        parts: PollerParts,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Connect {
        Connect {
            settings,
            ctx,
            parts,
            tracker,
            shutdown,
        }
    }

    fn start_pollers(&self, source: Source) {
        let source = Arc::new(source);
        self.parts.connected.insert(&self.settings.name, &source);
        for poll in &self.settings.polls {
            let poller = Poller::new(
                source.clone(),
                *poll,
                self.parts.store.clone(),
                self.parts.dispatcher.clone(),
            )
            .with_metrics(self.parts.metrics.clone())
            .with_stop(self.shutdown.clone());
            tasks::spawn(&self.tracker, poller, &self.shutdown);
        }
    }
}

impl Task for Connect {
    fn label(&self) -> Label {
        Label::new("connect").source(&self.settings.name)
    }

    async fn step(&mut self) -> Result<Next, TaskError> {
        let name = &self.settings.name;
        match Source::connect(self.settings.clone(), &ProcessEnv, &self.ctx).await {
            Ok(source) => {
                if let Some(status) = source.credential_status() {
                    self.parts.health.watch_credentials(name, status);
                }
                self.start_pollers(source);
                Ok(Next::Done)
            }
            Err(e) => {
                // Nothing of the source is read until it connects: every domain failed.
                let reason = if e.starts_with(&format!("source {name}: credentials: ")) {
                    "credentials"
                } else {
                    "connect"
                };
                let domains: Vec<&'static str> = self
                    .settings
                    .polls
                    .iter()
                    .map(|p| p.domain.as_str())
                    .collect();
                self.parts
                    .metrics
                    .connect_failed(name, &domains, reason, &e);
                Err(TaskError::retryable("Cannot connect the source; retrying.", e).urgent(true))
            }
        }
    }
}
