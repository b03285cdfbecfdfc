//! The part of the running daemon that a configuration reload rebuilds: the routes dispatch
//! follows, one delivery worker per sink, per source its connect, pollers and credential
//! refreshers, and the grouper; and what the health watches (`[health]`, the heartbeat URL,
//! the sources × domains and sinks it judges). What lives as long as the process — the store
//! (opened once), the silences, the counters, the health with its monitor and heartbeat, the
//! admin API, the pruner, the watchdog — is the daemon's
//! ([`crate::daemon`]); the wiring is started on it (`Wiring::start`) and rebuilt from each
//! new configuration ([`Wiring::apply`]).
//!
//! Each sink's worker, each source and the grouper is a `Part`: tasks stopped by one token
//! and waited for by one tracker. Two parts of one name never run at once: a new part's first
//! task waits until every task of the part it replaces has ended. So
//! - a sink's new worker starts once the old one finished the delivery in flight: an outbox
//!   entry is never attempted by two workers at once, and entries already in the outbox stay
//!   there for the new worker (a sink is found by name);
//! - a changed source's new pollers start once the old poll in progress finished (it is never
//!   cut off by a reload; at shutdown, past the grace period, it is dropped before its cursor
//!   moves, which the store's write order makes safe): one cursor, one writer;
//! - the grouper is replaced the same way (it holds nothing: groups live in the store).
//!
//! [`Wiring::apply`] does not wait for any of this: routing changes for the next event, the
//! rest as soon as each old task lets go. A source whose `[[source]]` table is unchanged keeps
//! running untouched, unless it reads a static key from a file: then it restarts, so a rotated
//! key file is read (the table cannot show that change). A sink no longer configured stops its
//! worker; its outbox and dead letters stay in the store ([`Wiring::orphaned_outboxes`]) and
//! are delivered if a sink of that name returns.
//!
//! At shutdown every part is stopped with the daemon's tokens (`Wiring::stop` hands their
//! trackers over to be waited for); a part replaced or removed earlier is waited for by its
//! successor or by a task on the daemon's trackers, so nothing is left running unwatched.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Tasks;
use crate::config::Settings;
use crate::credentials::CredentialContext;
use crate::credentials::config::{AccessKeyId, CredentialsConfig};
use crate::daemon::health::Health;
use crate::daemon::sources::{Connect, PollerParts};
use crate::daemon::tasks;
use crate::ha::Term;
use crate::pipeline::delivery::Worker;
use crate::pipeline::dispatch::{Dispatcher, Silences, SinkHandle};
use crate::pipeline::grouper::Grouper;
use crate::pipeline::metrics::Metrics;
use crate::routing::Router;
use crate::sas::source::SourceSettings;
use crate::secret::SecretRef;
use crate::sinks::Sink;
use crate::store::Store;
use crate::task::Task;

/// The sinks configured now, each with the wake of its worker: what the admin API replays to.
/// Shared (cheap to clone) and replaced whole by a reload.
#[derive(Clone, Debug, Default)]
pub struct ConfiguredSinks(Arc<RwLock<BTreeMap<String, Arc<Notify>>>>);

impl ConfiguredSinks {
    /// The wake of sink `name`'s worker, when the sink is configured.
    pub fn get(&self, name: &str) -> Option<Arc<Notify>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Whether sink `name` is configured.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn replace(&self, sinks: BTreeMap<String, Arc<Notify>>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = sinks;
    }
}

impl FromIterator<(String, Arc<Notify>)> for ConfiguredSinks {
    fn from_iter<I: IntoIterator<Item = (String, Arc<Notify>)>>(iter: I) -> Self {
        ConfiguredSinks(Arc::new(RwLock::new(iter.into_iter().collect())))
    }
}

/// An outbox holding entries for a sink that is not configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrphanedOutbox {
    /// The sink's name.
    pub sink: String,
    /// Entries waiting in its outbox.
    pub pending: u64,
}

/// What a reload did with each name of one kind (sinks or sources).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// New: started.
    pub added: Vec<String>,
    /// Gone: stopped (a sink's outbox stays in the store).
    pub removed: Vec<String>,
    /// Replaced by a new part of the same name once the old one ended.
    pub restarted: Vec<String>,
    /// Left running as they were.
    pub unchanged: Vec<String>,
}

/// What [`Wiring::apply`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// Sinks: every sink that stays gets a new worker (its settings or templates may have
    /// changed); the added ones start one.
    pub sinks: Diff,
    /// Sources.
    pub sources: Diff,
}

/// What the wiring runs on, made once per process.
pub struct Ground {
    /// The store.
    pub store: Store,
    /// The silences (dispatch reads them).
    pub silences: Arc<Silences>,
    /// The daemon's counters.
    pub metrics: Arc<Metrics>,
    /// The daemon's health (on the same counters), reconfigured by each [`Wiring::apply`].
    pub health: Health,
    /// The client the credential providers fetch with.
    pub http: reqwest::Client,
    /// Kept up to date for the admin API.
    pub configured: ConfiguredSinks,
    /// The sources connected now (handling acts through them).
    pub connected: crate::daemon::sources::Connected,
    /// `[actions]`: what signs the action links chat sinks put in notifications.
    pub actions: Option<Arc<crate::action_link::Minter>>,
}

/// What a reload does with a source, given how it runs now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourcePlan {
    /// Not running: start it.
    Start,
    /// Leave it running.
    Keep,
    /// Stop it and start it again once stopped.
    Restart,
}

/// The plan for `new` when `running` is how the source of that name runs now (pure).
pub fn source_plan(running: Option<&SourceSettings>, new: &SourceSettings) -> SourcePlan {
    match running {
        None => SourcePlan::Start,
        Some(old) if old == new && !reads_key_file(new) => SourcePlan::Keep,
        Some(_) => SourcePlan::Restart,
    }
}

/// Whether `source` reads a static key from a file, which only a restart reads again.
fn reads_key_file(source: &SourceSettings) -> bool {
    let CredentialsConfig::AccessKey(c) = &source.credentials else {
        return false;
    };
    let file = |r: &SecretRef| matches!(r, SecretRef::File { .. });
    file(&c.access_key_secret)
        || c.security_token.as_ref().is_some_and(file)
        || matches!(&c.access_key_id, AccessKeyId::From(r) if file(r))
}

/// Tasks stopped by one token and waited for by one tracker.
struct Part {
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Part {
    /// A part stopped with `parent` (the daemon's token for its kind) or on its own.
    fn under(parent: &CancellationToken) -> Part {
        Part {
            stop: parent.child_token(),
            tracker: TaskTracker::new(),
        }
    }

    /// Runs `task` as this part's on `root` (which shutdown waits for), once `previous` — the
    /// part this one replaces — has ended.
    fn run_after(
        &self,
        root: &TaskTracker,
        previous: Option<TaskTracker>,
        task: impl Task + 'static,
    ) {
        let stop = self.stop.clone();
        root.spawn(self.tracker.track_future(async move {
            if let Some(previous) = previous {
                previous.wait().await;
            }
            tasks::run(task, stop).await
        }));
    }

    /// Stops every task of the part: the tracker returned is done once they have ended.
    fn stop(self) -> TaskTracker {
        self.stop.cancel();
        self.tracker.close();
        self.tracker
    }
}

/// A leadership term's tokens: its parts stop with them (or with the daemon's, whose
/// children they are).
struct Running {
    /// `None` without replicas: the process leads for its whole life.
    term: Option<Term>,
    stop_polling: CancellationToken,
    stop_delivering: CancellationToken,
}

/// The sinks' workers, the sources and the grouper, as the configuration in force says —
/// while this process leads (`Wiring::lead`; at once without replicas). Standing by, only
/// the routes and what the health judges follow the configuration.
pub struct Wiring {
    parts: PollerParts,
    grouper_wake: Arc<Notify>,
    http: reqwest::Client,
    configured: ConfiguredSinks,
    tasks: Tasks,
    settings: Settings,
    /// Per sink name, the wake its workers share across reloads, so a wake sent towards an
    /// old worker reaches its successor.
    wakes: BTreeMap<String, Arc<Notify>>,
    workers: BTreeMap<String, Part>,
    sources: BTreeMap<String, (SourceSettings, Part)>,
    grouper: Option<Part>,
    /// The sinks configured now, and the heartbeat URL.
    handles: BTreeMap<String, SinkHandle>,
    heartbeat: Option<reqwest::Url>,
    /// What signs the action links of notifications (`[actions]`).
    actions: Option<Arc<crate::action_link::Minter>>,
    /// The term the parts run for; `None` while standing by.
    running: Option<Running>,
}

impl Wiring {
    /// Starts what `settings`, `sinks` and `heartbeat` describe on `ground`, under the
    /// daemon's `tasks`: at once without replicas (`[ha]`), else standing by until
    /// [`Wiring::lead`].
    pub(super) fn start(
        ground: Ground,
        tasks: Tasks,
        settings: Settings,
        sinks: Vec<Sink>,
        heartbeat: Option<reqwest::Url>,
    ) -> Wiring {
        let alone = settings.ha.is_none();
        // Dispatch (a group gained a member) and `silence expire` both wake the grouper.
        let grouper_wake = ground.silences.ended();
        let dispatcher = Arc::new(Dispatcher::new(
            Router::broadcast(&[]),
            BTreeMap::new(),
            ground.silences,
            ground.store.clone(),
            grouper_wake.clone(),
        ));
        let mut wiring = Wiring {
            parts: PollerParts {
                store: ground.store,
                dispatcher,
                metrics: ground.metrics,
                health: ground.health,
                connected: ground.connected,
            },
            grouper_wake,
            http: ground.http,
            configured: ground.configured,
            tasks,
            settings: settings.clone(),
            wakes: BTreeMap::new(),
            workers: BTreeMap::new(),
            sources: BTreeMap::new(),
            grouper: None,
            handles: BTreeMap::new(),
            heartbeat: None,
            actions: ground.actions,
            running: None,
        };
        wiring.apply(settings, sinks, heartbeat);
        if alone {
            wiring.lead(None);
        }
        wiring
    }

    /// Whether the parts run (this process leads, or there are no replicas).
    pub fn leading(&self) -> bool {
        self.running.is_some()
    }

    /// Starts the parts for `term` (`None`: no replicas): the workers, the grouper, the
    /// sources, each once what an earlier term left of it has ended.
    pub(super) fn lead(&mut self, term: Option<Term>) {
        self.parts.dispatcher.set_term(term.clone());
        self.running = Some(Running {
            term,
            stop_polling: self.tasks.stop_polling.child_token(),
            stop_delivering: self.tasks.stop_delivering.child_token(),
        });
        self.configure_health();
        let handles = self.handles.clone();
        self.hand_over_sinks(&handles);
        self.hand_over_grouper(&handles);
        self.hand_over_sources();
    }

    /// Stops every part of the term at once (a poll in progress stops at its next page, an
    /// attempt in flight is cut off at the term's deadline); their trackers, to wait for.
    pub(super) fn step_down(&mut self) -> Vec<TaskTracker> {
        self.parts.dispatcher.set_term(None);
        if let Some(running) = self.running.take() {
            running.stop_polling.cancel();
            running.stop_delivering.cancel();
        }
        self.configure_health();
        let sources = std::mem::take(&mut self.sources)
            .into_values()
            .map(|(_, part)| part);
        let grouper = self.grouper.take().into_iter();
        std::mem::take(&mut self.workers)
            .into_values()
            .chain(sources)
            .chain(grouper)
            .map(Part::stop)
            .collect()
    }

    /// What the health judges: the sources and sinks configured while leading; nothing while
    /// standing by (another replica polls and delivers).
    fn configure_health(&self) {
        let (sources, sinks) = if self.running.is_some() {
            (self.settings.sources.as_slice(), wakes(&self.handles))
        } else {
            (&[][..], BTreeMap::new())
        };
        self.parts.health.configure(
            &self.settings.health,
            self.heartbeat.clone(),
            sources,
            sinks,
        );
    }

    /// The configuration in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Rebuilds the wiring for `settings`, its built `sinks` and its `heartbeat` URL (read by
    /// [`crate::daemon::build`]): the routes and what the health judges at once, then each
    /// part as its predecessor lets go (see the module doc).
    pub fn apply(
        &mut self,
        settings: Settings,
        sinks: Vec<Sink>,
        heartbeat: Option<reqwest::Url>,
    ) -> Changes {
        let handles = self.handles(sinks);
        self.parts
            .dispatcher
            .reroute(settings.router.clone(), handles.clone());
        let polls: Vec<(String, &'static str)> = settings
            .sources
            .iter()
            .flat_map(|s| s.polls.iter().map(|p| (s.name.clone(), p.domain.as_str())))
            .collect();
        let names: Vec<String> = handles.keys().cloned().collect();
        self.parts.metrics.register(&polls, &names);
        self.settings = settings;
        self.heartbeat = heartbeat;
        self.handles = handles.clone();
        // A new source × domain is `starting`, a removed one is no longer judged or alerted on.
        self.configure_health();
        self.configured.replace(wakes(&handles));
        if self.running.is_none() {
            return Changes::default();
        }
        let sinks = self.hand_over_sinks(&handles);
        self.hand_over_grouper(&handles);
        let sources = self.hand_over_sources();
        Changes { sinks, sources }
    }

    /// Outboxes holding entries for sinks that are not configured now.
    pub fn orphaned_outboxes(&self) -> Vec<OrphanedOutbox> {
        let store = &self.parts.store;
        store
            .sinks_with_entries()
            .into_iter()
            .filter(|name| !self.workers.contains_key(name))
            .map(|sink| OrphanedOutbox {
                pending: store.depth(&sink),
                sink,
            })
            .collect()
    }

    /// Stops every part; their trackers, for shutdown to wait for.
    pub(super) fn stop(self) -> Vec<TaskTracker> {
        let sources = self.sources.into_values().map(|(_, part)| part);
        let grouper = self.grouper.into_iter();
        self.workers
            .into_values()
            .chain(sources)
            .chain(grouper)
            .map(Part::stop)
            .collect()
    }

    /// The tokens the term's parts stop with (polling, delivering): the term's, or the
    /// daemon's when no term runs (nothing is started then).
    fn term_tokens(&self) -> (CancellationToken, CancellationToken) {
        match &self.running {
            Some(r) => (r.stop_polling.clone(), r.stop_delivering.clone()),
            None => (
                self.tasks.stop_polling.clone(),
                self.tasks.stop_delivering.clone(),
            ),
        }
    }

    /// One handle per sink, with the wake of its name.
    fn handles(&mut self, sinks: Vec<Sink>) -> BTreeMap<String, SinkHandle> {
        sinks
            .into_iter()
            .map(|sink| {
                let sink = sink.with_actions(self.actions.clone());
                let name = sink.name().to_string();
                let wake = self.wakes.entry(name.clone()).or_default().clone();
                let handle = SinkHandle {
                    sink: Arc::new(sink),
                    wake,
                };
                (name, handle)
            })
            .collect()
    }

    /// A new worker per configured sink, each after its predecessor's delivery in flight;
    /// the workers of sinks no longer configured stop.
    fn hand_over_sinks(&mut self, handles: &BTreeMap<String, SinkHandle>) -> Diff {
        let mut diff = Diff::default();
        let mut old = std::mem::take(&mut self.workers);
        for (name, handle) in handles {
            let previous = old.remove(name).map(Part::stop);
            match previous {
                Some(_) => diff.restarted.push(name.clone()),
                None => diff.added.push(name.clone()),
            }
            let part = Part::under(&self.term_tokens().1);
            let worker = Worker::new(
                handle.sink.clone(),
                self.parts.store.clone(),
                self.settings.delivery,
                handle.wake.clone(),
            )
            .with_metrics(self.parts.metrics.clone())
            .for_term(self.running.as_ref().and_then(|r| r.term.clone()));
            part.run_after(&self.tasks.workers, previous, worker);
            self.workers.insert(name.clone(), part);
        }
        for (name, part) in old {
            let pending = self.parts.store.depth(&name);
            tracing::warn!(
                sink = %name,
                pending,
                "Sink {name} is no longer configured: its worker stops after the delivery in flight; the {pending} entries in its outbox stay in the store until a sink of that name returns."
            );
            retire(
                &self.tasks.workers,
                part,
                format!("the worker of sink {name}"),
            );
            diff.removed.push(name);
        }
        diff
    }

    /// A new grouper, with the wakes of the sinks configured now.
    fn hand_over_grouper(&mut self, handles: &BTreeMap<String, SinkHandle>) {
        let previous = self.grouper.take().map(Part::stop);
        let part = Part::under(&self.term_tokens().0);
        let grouper = Grouper::new(
            self.parts.store.clone(),
            wakes(handles),
            self.grouper_wake.clone(),
        )
        .with_reminders(self.parts.dispatcher.clone());
        part.run_after(&self.tasks.pollers, previous, grouper);
        self.grouper = Some(part);
    }

    /// Starts new sources, restarts changed ones, stops removed ones ([`source_plan`]).
    fn hand_over_sources(&mut self) -> Diff {
        let mut diff = Diff::default();
        let mut old = std::mem::take(&mut self.sources);
        for source in self.settings.sources.clone() {
            let name = source.name.clone();
            let running = old.remove(&name);
            let previous = match (
                source_plan(running.as_ref().map(|(s, _)| s), &source),
                running,
            ) {
                (SourcePlan::Keep, Some(kept)) => {
                    self.sources.insert(name.clone(), kept);
                    diff.unchanged.push(name);
                    continue;
                }
                (SourcePlan::Restart, Some((_, part))) => {
                    tracing::info!(source = %name, "Source {name} changed: its pollers restart once the poll in progress is done.");
                    diff.restarted.push(name);
                    Some(part.stop())
                }
                _ => {
                    diff.added.push(name);
                    None
                }
            };
            self.start_source(source, previous);
        }
        for (name, (_, part)) in old {
            tracing::info!(source = %name, "Source {name} is no longer configured: it stops once the poll in progress is done.");
            retire(&self.tasks.pollers, part, format!("source {name}"));
            diff.removed.push(name);
        }
        diff
    }

    /// Connects `source` (and starts its pollers) once `previous` has ended.
    fn start_source(&mut self, source: SourceSettings, previous: Option<TaskTracker>) {
        let part = Part::under(&self.term_tokens().0);
        let credentials =
            CredentialContext::new(self.http.clone(), part.stop.clone(), part.tracker.clone());
        let connect = Connect::new(
            source.clone(),
            credentials,
            self.parts.clone(),
            part.tracker.clone(),
            part.stop.clone(),
        );
        part.run_after(&self.tasks.pollers, previous, connect);
        self.sources.insert(source.name.clone(), (source, part));
    }
}

/// Stops `part` for good; a task on `root` waits for it (so shutdown does too) and says when
/// `what` has stopped.
fn retire(root: &TaskTracker, part: Part, what: String) {
    let ended = part.stop();
    root.spawn(async move {
        ended.wait().await;
        tracing::info!("Stopped {what}.");
    });
}

/// The wake of every sink's worker, by sink name.
fn wakes(handles: &BTreeMap<String, SinkHandle>) -> BTreeMap<String, Arc<Notify>> {
    handles
        .iter()
        .map(|(name, h)| (name.clone(), h.wake.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(extra: &str) -> SourceSettings {
        let text = format!("[[source]]\nname = \"prod\"\nregion = \"cn-hangzhou\"\n{extra}\n");
        let checked = crate::config::check(std::path::Path::new("/etc/c.toml"), &text);
        assert!(checked.errors.is_empty(), "{:?}", checked.errors);
        checked.settings.sources[0].clone()
    }

    #[test]
    fn a_source_restarts_when_its_table_changed_or_it_reads_a_key_file() {
        let env = "credentials = { type = \"env\" }";
        let a = source(env);
        assert_eq!(source_plan(None, &a), SourcePlan::Start);
        assert_eq!(source_plan(Some(&a), &source(env)), SourcePlan::Keep);
        let slower = source(&format!("{env}\npoll = {{ alerts = \"5m\" }}"));
        assert_eq!(source_plan(Some(&a), &slower), SourcePlan::Restart);
        let keyed = |secret: &str| {
            source(&format!(
                "credentials = {{ type = \"access_key\", access_key_id = \"LTAI\", access_key_secret = {secret} }}"
            ))
        };
        let from_env = keyed("{ env = \"SK\" }");
        assert_eq!(source_plan(Some(&from_env), &from_env), SourcePlan::Keep);
        // A rotated key file looks the same in the table: only a restart reads it again.
        let from_file = keyed("{ file = \"/run/credentials/sk\" }");
        assert_eq!(
            source_plan(Some(&from_file), &from_file),
            SourcePlan::Restart
        );
    }

    #[test]
    fn configured_sinks_are_replaced_whole() {
        let configured: ConfiguredSinks = [("a".to_string(), Arc::new(Notify::new()))]
            .into_iter()
            .collect();
        let seen = configured.clone();
        assert!(seen.contains_key("a"));
        configured.replace(BTreeMap::from([("b".to_string(), Arc::new(Notify::new()))]));
        assert!(!seen.contains_key("a"));
        assert!(seen.get("b").is_some());
    }
}
