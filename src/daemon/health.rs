//! The daemon's health, as [`crate::health`] decides it from live figures: [`Health`] gathers
//! them (the pollers' counters, the credential refreshers' progress, the outboxes) into a
//! [`Snapshot`] for `/readyz`, `GET /api/v1/status` ([`StatusView`]), `/metrics` and the
//! heartbeat; the [`Monitor`] task turns changes into meta-events.
//!
//! ## The monitor's write order
//!
//! Every second the monitor takes a snapshot, asks which conditions hold
//! ([`crate::health::firing`]) and, for each condition that starts or stops holding
//! ([`crate::health::next_episode`]; one that cannot be judged yet,
//! [`crate::health::undecided`], keeps its episode as it is):
//!
//! 1. stores the episode's change, not yet announced;
//! 2. enqueues its meta-event in each target sink's outbox (the id is the enqueue guard);
//! 3. stores the change as announced;
//!
//! then flushes once and wakes the sinks. A crash anywhere leaves a prefix: a change not
//! stored is seen again; one stored but not announced is announced at the next start (the
//! guard drops an enqueue that had happened); so each meta-event is enqueued once per sink.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};

use crate::clock::rfc3339_ms;
use crate::credentials::RefreshStatus;
use crate::event::{HealthEpisode, OutboxEntry, Payload};
use crate::finding::Domain;
use crate::health::{
    CredentialView, HealthSettings, PollView, SinkView, SourceHealth, State, classify, firing,
    next_episode, undecided,
};
use crate::pipeline::metrics::Metrics;
use crate::sas::source::SourceSettings;
use crate::store::{Enqueued, Store, StoreError};
use crate::task::{Label, Next, Task, TaskError};

/// How often the monitor looks.
pub const MONITOR_EVERY: Duration = Duration::from_secs(1);

/// What the daemon's health is computed from. Cheap to clone; shared by the monitor, the
/// heartbeat, the admin API and the source connects (which register credentials here). Made
/// once per process ([`Health::new`]); what the configuration says is set by
/// [`Health::configure`], at start and again on every reload.
#[derive(Clone)]
pub struct Health {
    config: Arc<RwLock<Configured>>,
    metrics: Arc<Metrics>,
    store: Store,
    /// The refreshers' progress, by source; added when a source with an expiring credential
    /// connects.
    credentials: Arc<Mutex<BTreeMap<String, watch::Receiver<RefreshStatus>>>>,
    started_ms: i64,
}

/// One configured (source, domain).
#[derive(Clone, Debug)]
struct Judged {
    source: String,
    domain: Domain,
    /// Its poll interval.
    interval: Duration,
    /// Since when it is configured (unix ms): the start, or the reload that added it. Until
    /// it has been polled it is `starting` for as long as a new process's would be, so a
    /// source added by a reload is not `blind` before its first poll.
    since_ms: i64,
}

/// What the configuration in force says about health.
#[derive(Clone, Debug, Default)]
struct Configured {
    settings: HealthSettings,
    /// `[health] heartbeat_url`, read.
    heartbeat: Option<reqwest::Url>,
    /// Every configured (source, domain).
    polls: Vec<Judged>,
    /// The configured sinks, each with the wake of its worker.
    sinks: BTreeMap<String, Arc<Notify>>,
    /// Whether this is a later configuration than the start's.
    later: bool,
}

/// One (source, domain) as the status shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// The source.
    pub source: String,
    /// The domain.
    pub domain: Domain,
    /// `starting`, `ok`, `degraded` or `blind`.
    pub state: State,
    /// Why, in a few words.
    pub why: String,
    /// The poll interval (`"30s"`).
    pub interval: String,
    /// When the last poll succeeded (RFC 3339; an earlier run's as the store remembers it).
    pub last_success: Option<String>,
    /// Why the latest failed poll failed (control characters removed).
    pub last_error: Option<String>,
    /// Failed polls since the last success.
    pub consecutive_failures: u64,
    /// How long the last poll took, in seconds: the domain's cycle time, to hold against its
    /// interval.
    #[serde(default)]
    pub last_poll_s: f64,
}

/// The Security Center calls of one action, over every bucket of the call budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetStatus {
    /// The API action.
    pub action: String,
    /// Calls since the daemon started (retries included).
    pub calls: u64,
    /// Calls an hour, on average since the start.
    pub calls_per_hour: u64,
    /// Calls that waited for a permit.
    pub waited: u64,
    /// Seconds waited in all.
    pub wait_s: f64,
}

/// One sink's outbox as the status shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkStatus {
    /// The sink.
    pub sink: String,
    /// Entries waiting.
    pub depth: u64,
    /// Seconds the oldest waiting entry has waited (0 when none waits).
    pub oldest_age_s: u64,
    /// Dead letters kept.
    pub dead_letters: u64,
}

/// A refreshing credential as the status shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialStatus {
    /// The source.
    pub source: String,
    /// When the credential being served expires (RFC 3339).
    pub expires_at: String,
    /// Failed refresh attempts since the last success.
    pub consecutive_failures: u32,
    /// Why the latest attempt failed.
    pub last_error: Option<String>,
}

/// An episode as the status shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionStatus {
    /// The condition's key (`source_blind/prod/alerts`).
    pub key: String,
    /// Its episode.
    pub episode: u64,
    /// Whether it holds now.
    pub open: bool,
    /// When the episode began (RFC 3339).
    pub since: String,
    /// What its latest meta-event said.
    pub message: String,
}

/// The body of `GET /api/v1/status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    /// What `/readyz` answers.
    pub ready: bool,
    /// Why not, one line per reason (empty when ready).
    pub not_ready: Vec<String>,
    /// Every configured source × domain.
    pub sources: Vec<SourceStatus>,
    /// Every source whose credential expires and is refreshed.
    pub credentials: Vec<CredentialStatus>,
    /// Every configured sink, and any other sink whose outbox still holds entries.
    pub sinks: Vec<SinkStatus>,
    /// Every health condition seen, open ones first.
    pub conditions: Vec<ConditionStatus>,
    /// Security Center calls by action ([`crate::sas::quota`]).
    #[serde(default)]
    pub budget: Vec<BudgetStatus>,
    /// With `[ha]`: this replica's role, epoch, takeovers and flagged repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha: Option<crate::pipeline::metrics::HaFigures>,
}

/// The health at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Every configured (source, domain) with its verdict.
    pub sources: Vec<SourceHealth>,
    /// Their figures, in the same order.
    pub views: Vec<PollView>,
    /// Every registered refreshing credential.
    pub credentials: Vec<CredentialView>,
    /// Every configured sink's outbox (and other outboxes that hold entries).
    pub sinks: Vec<SinkView>,
    /// When it was taken (unix ms).
    pub now_ms: i64,
}

impl Snapshot {
    /// Why the daemon is not ready, one line per blind (source, domain): empty when none is.
    pub fn blind(&self) -> Vec<String> {
        self.sources
            .iter()
            .filter(|s| s.verdict.state == State::Blind)
            .map(|s| {
                format!(
                    "blind: {}/{} ({})",
                    s.source,
                    s.domain.as_str(),
                    s.verdict.why
                )
            })
            .collect()
    }
}

impl Health {
    /// The health of a daemon counting into `metrics` over `store`, started now, with nothing
    /// configured yet ([`Health::configure`]).
    pub fn new(metrics: Arc<Metrics>, store: Store) -> Health {
        Health {
            config: Arc::default(),
            started_ms: (metrics.start_unix() * 1e3) as i64,
            metrics,
            store,
            credentials: Arc::default(),
        }
    }

    /// Follows the configuration in force: `settings` (`[health]`), the `heartbeat` URL read
    /// from it, the `sources` and the `sinks` with their workers' wakes. Each (source, domain)
    /// new to the process starts from its last success as the store's cursor holds it
    /// ([`Metrics::remember_success`]); refreshers of sources no longer configured are
    /// forgotten.
    pub fn configure(
        &self,
        settings: &HealthSettings,
        heartbeat: Option<reqwest::Url>,
        sources: &[SourceSettings],
        sinks: BTreeMap<String, Arc<Notify>>,
    ) {
        let Configured {
            polls: old, later, ..
        } = self.configured();
        // The first configuration is the start's. A later one judges what it adds from now:
        // a reload's new domain, and every domain when a standby (configured with none)
        // begins to lead — its term, not the process, is what started.
        let now_ms = if later {
            crate::clock::unix_ms(OffsetDateTime::now_utc())
        } else {
            self.started_ms
        };
        let polls: Vec<Judged> = sources
            .iter()
            .flat_map(|s| s.polls.iter().map(move |p| (s, p)))
            .map(|(s, p)| Judged {
                since_ms: old
                    .iter()
                    .find(|o| o.source == s.name && o.domain == p.domain)
                    .map_or(now_ms, |o| o.since_ms),
                source: s.name.clone(),
                domain: p.domain,
                interval: p.interval,
            })
            .collect();
        for j in &polls {
            if let Ok(Some(c)) = self.store.cursor(&j.source, j.domain)
                && c.last_success_ms > 0
            {
                let at = c.last_success_ms as f64 / 1e3;
                self.metrics
                    .remember_success(&j.source, j.domain.as_str(), at);
            }
        }
        self.credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|source, _| sources.iter().any(|s| &s.name == source));
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = Configured {
            settings: settings.clone(),
            heartbeat,
            polls,
            sinks,
            later: true,
        };
    }

    fn configured(&self) -> Configured {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The daemon's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// `[health]` in force.
    pub fn settings(&self) -> HealthSettings {
        self.configured().settings
    }

    /// The heartbeat's URL and interval in force, when one is configured.
    pub fn heartbeat(&self) -> Option<(reqwest::Url, Duration)> {
        let c = self.configured();
        Some((c.heartbeat?, c.settings.heartbeat_interval))
    }

    /// Follows `source`'s credential refresher from now on.
    pub fn watch_credentials(&self, source: &str, status: watch::Receiver<RefreshStatus>) {
        self.credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(source.to_string(), status);
    }

    /// The health at `now_ms`.
    pub fn snapshot(&self, now_ms: i64) -> Snapshot {
        let config = self.configured();
        let figures = self.metrics.polls();
        let mut sources = Vec::new();
        let mut views = Vec::new();
        for Judged {
            source,
            domain,
            interval,
            since_ms,
        } in &config.polls
        {
            let f = figures
                .get(&(source.clone(), domain.as_str()))
                .cloned()
                .unwrap_or_default();
            let last_success_ms = f.last_success_unix.map(|t| (t * 1e3) as i64);
            let view = PollView {
                interval: *interval,
                // Since judging began: a replica that led before and leads again judges its
                // new term from its start, not from its last term's last poll.
                succeeded_since_start: f.ok > 0 && last_success_ms.is_some_and(|t| t >= *since_ms),
                last_success_ms,
                last_page_ms: f.last_page_unix.map(|t| (t * 1e3) as i64),
                consecutive_failures: f.consecutive_failures,
            };
            sources.push(SourceHealth {
                source: source.clone(),
                domain: *domain,
                verdict: classify(&view, config.settings.blind_after, *since_ms, now_ms),
                last_error: f.last_error,
            });
            views.push(view);
        }
        let credentials = self
            .credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(source, rx)| {
                let s = rx.borrow();
                CredentialView {
                    source: source.clone(),
                    expiration_ms: crate::clock::unix_ms(s.expiration),
                    consecutive_failures: s.consecutive_failures,
                    last_error: s.last_error.clone(),
                }
            })
            .collect();
        Snapshot {
            sources,
            views,
            credentials,
            sinks: self.sink_views(&config),
            now_ms,
        }
    }

    /// Every configured sink's outbox figures, then any other outbox that holds entries (a
    /// sink removed from the configuration).
    fn sink_views(&self, config: &Configured) -> Vec<SinkView> {
        let stats = self.store.sink_stats().unwrap_or_default();
        let view = |name: &str| {
            let s = stats.get(name).cloned().unwrap_or_default();
            SinkView {
                sink: name.to_string(),
                depth: s.depth,
                oldest_enqueued_ms: s.oldest_enqueued_at_ms,
                dead_letters: s.dead_letters,
            }
        };
        let mut out: Vec<SinkView> = config.sinks.keys().map(|s| view(s)).collect();
        for (name, s) in &stats {
            if !config.sinks.contains_key(name) && (s.depth > 0 || s.dead_letters > 0) {
                out.push(view(name));
            }
        }
        out
    }

    /// Why the daemon is not ready at `now_ms`, one line per reason: the store cannot be
    /// written, or a (source, domain) is blind. Empty when ready.
    pub fn not_ready(&self, snapshot: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        if let Err(e) = self.store.probe_write(snapshot.now_ms) {
            out.push(format!("store: {e}"));
        }
        out.extend(snapshot.blind());
        out
    }

    /// The status at `now_ms` (`GET /api/v1/status`).
    pub fn status(&self, now_ms: i64) -> StatusView {
        let snap = self.snapshot(now_ms);
        let not_ready = self.not_ready(&snap);
        let figures = self.metrics.polls();
        let sources = snap
            .sources
            .iter()
            .zip(&snap.views)
            .map(|(s, v)| SourceStatus {
                source: s.source.clone(),
                domain: s.domain,
                state: s.verdict.state,
                why: s.verdict.why.clone(),
                interval: crate::duration::format_duration(v.interval),
                last_success: v.last_success_ms.map(rfc3339_ms),
                last_error: s.last_error.clone(),
                consecutive_failures: v.consecutive_failures,
                last_poll_s: figures
                    .get(&(s.source.clone(), s.domain.as_str()))
                    .map_or(0.0, |f| f.last_duration.as_secs_f64()),
            })
            .collect();
        let credentials = snap
            .credentials
            .iter()
            .map(|c| CredentialStatus {
                source: c.source.clone(),
                expires_at: rfc3339_ms(c.expiration_ms),
                consecutive_failures: c.consecutive_failures,
                last_error: c.last_error.clone(),
            })
            .collect();
        let sinks = snap
            .sinks
            .iter()
            .map(|s| SinkStatus {
                sink: s.sink.clone(),
                depth: s.depth,
                oldest_age_s: s.oldest_enqueued_ms.map_or(0, |at| {
                    u64::try_from((now_ms - at).max(0) / 1000).unwrap_or(0)
                }),
                dead_letters: s.dead_letters,
            })
            .collect();
        let mut conditions: Vec<ConditionStatus> = self
            .store
            .health_episodes()
            .unwrap_or_default()
            .into_iter()
            .map(|e| ConditionStatus {
                key: e.condition.key(),
                episode: e.episode,
                open: e.open,
                since: rfc3339_ms(e.since_ms),
                message: e.message,
            })
            .collect();
        conditions.sort_by_key(|c| !c.open);
        let up_s = (now_ms as f64 / 1e3 - self.metrics.start_unix()).max(1.0);
        let budget = crate::sas::quota::waits()
            .into_iter()
            .map(|(action, w)| BudgetStatus {
                action,
                calls: w.calls,
                calls_per_hour: (w.calls as f64 * 3600.0 / up_s).round() as u64,
                waited: w.waited,
                wait_s: w.total.as_secs_f64(),
            })
            .collect();
        StatusView {
            ready: not_ready.is_empty(),
            not_ready,
            sources,
            credentials,
            sinks,
            conditions,
            budget,
            ha: self.metrics.ha(),
        }
    }
}

/// The task that turns health changes into meta-events (the module doc has its write order).
pub struct Monitor {
    health: Health,
    /// The stored episodes (the monitor is their only writer); loaded by the first step.
    episodes: Option<BTreeMap<String, HealthEpisode>>,
}

impl Monitor {
    /// A monitor of `health`; it wakes the configured sinks' workers after enqueueing.
    pub fn new(health: Health) -> Monitor {
        Monitor {
            health,
            episodes: None,
        }
    }

    /// One look at `now`: every change stored, announced and flushed; the sinks that got a
    /// meta-event are woken. Returns how many meta-events were enqueued.
    pub async fn look(&mut self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let store = self.health.store.clone();
        let now_ms = crate::clock::unix_ms(now);
        let episodes = match self.episodes.take() {
            Some(e) => e,
            None => store
                .health_episodes()?
                .into_iter()
                .map(|e| (e.condition.key(), e))
                .collect(),
        };
        // Kept whatever happens below: the cache follows every write made.
        let episodes = self.episodes.insert(episodes);
        let config = self.health.configured();
        let snap = self.health.snapshot(now_ms);
        let settings = &config.settings;
        let holding: BTreeMap<String, crate::health::Firing> = firing(
            &snap.sources,
            &snap.credentials,
            &snap.sinks,
            settings,
            now_ms,
        )
        .into_iter()
        .map(|f| (f.condition.key(), f))
        .collect();
        let undecided = undecided(&snap.sources);
        let mut keys: Vec<String> = holding.keys().cloned().collect();
        keys.extend(episodes.keys().cloned());
        keys.sort();
        keys.dedup();
        let mut woken = std::collections::BTreeSet::new();
        let mut enqueued = 0;
        for key in keys {
            let stored = episodes.get(&key);
            let changed = if undecided.contains(&key) {
                None
            } else {
                next_episode(stored, holding.get(&key), now_ms)
            };
            if let Some(e) = &changed {
                store.put_health_episode(e)?;
                episodes.insert(key.clone(), e.clone());
            }
            let Some(e) = episodes.get_mut(&key).filter(|e| !e.announced) else {
                continue;
            };
            let event = e.event(now);
            let targets = settings.targets(&e.condition, config.sinks.keys().map(String::as_str));
            for sink in &targets {
                let entry = OutboxEntry::new(Payload::from(event.clone()), now_ms);
                if let Enqueued::Inserted(_) = store.enqueue(sink, &entry)? {
                    enqueued += 1;
                    woken.insert(sink.clone());
                }
            }
            e.announced = true;
            store.put_health_episode(e)?;
            log_change(e, &targets);
        }
        if !woken.is_empty() || enqueued > 0 {
            store.flush().await?;
        }
        for sink in &woken {
            if let Some(w) = config.sinks.get(sink) {
                w.notify_one();
            }
        }
        Ok(enqueued)
    }
}

/// The log line of an announced change: an open episode at ERROR (an operator must act), a
/// closed one at WARN (recovered).
fn log_change(e: &HealthEpisode, targets: &[String]) {
    let key = e.condition.key();
    if e.open {
        tracing::error!(
            condition = %key,
            episode = e.episode,
            sinks = ?targets,
            detail = e.detail.as_deref().unwrap_or(""),
            "{}; meta-event sent.",
            e.message
        );
    } else {
        tracing::warn!(
            condition = %key,
            episode = e.episode,
            sinks = ?targets,
            "{}; resolved meta-event sent.",
            e.message
        );
    }
}

impl Task for Monitor {
    fn label(&self) -> Label {
        Label::new("health")
    }

    async fn step(&mut self) -> Result<Next, TaskError> {
        match self.look(OffsetDateTime::now_utc()).await {
            Ok(_) => Ok(Next::After(MONITOR_EVERY)),
            Err(e) => {
                self.health.store.heal(&e).await;
                // What was written may not be durable: read it again.
                self.episodes = None;
                Err(
                    TaskError::retryable("Health check could not store its meta-events.", e)
                        .urgent(true),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::dispatch::Dispatched;

    const CONFIG: &str = r#"
[[source]]
name = "prod"
region = "cn-hangzhou"
domains = ["alerts"]
poll = { alerts = "1m" }
credentials = { type = "env" }

[health]
stalled_after = "1m"
"#;

    fn rig() -> (tempfile::TempDir, Store, Arc<Metrics>, Monitor) {
        let settings = crate::config::parse(std::path::Path::new("t.toml"), CONFIG).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let metrics = Arc::new(Metrics::default());
        let health = Health::new(metrics.clone(), store.clone());
        let sinks = ["a", "b"].map(|s| (s.to_string(), Arc::new(Notify::new())));
        health.configure(&settings.health, None, &settings.sources, sinks.into());
        let monitor = Monitor::new(health);
        (dir, store, metrics, monitor)
    }

    fn at(now: OffsetDateTime, secs: i64) -> OffsetDateTime {
        now + time::Duration::seconds(secs)
    }

    /// The payload ids waiting in `sink`'s outbox.
    fn waiting(store: &Store, sink: &str) -> Vec<String> {
        store
            .due(sink, i64::MAX, 100)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.payload.id().to_string())
            .collect()
    }

    /// A replica that stood by for an hour (configured with nothing to judge) and begins to
    /// lead judges its polls from its term's start: starting, not blind for an hour.
    #[test]
    fn a_term_that_begins_late_judges_its_polls_from_its_start() {
        let settings = crate::config::parse(std::path::Path::new("t.toml"), CONFIG).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = crate::clock::unix_ms(OffsetDateTime::now_utc());
        let metrics = Arc::new(Metrics::new((now - 3_600_000) as f64 / 1e3));
        let health = Health::new(metrics.clone(), store);
        // Standing by.
        health.configure(&settings.health, None, &[], BTreeMap::new());
        // Leading.
        health.configure(&settings.health, None, &settings.sources, BTreeMap::new());
        let state = |at_ms| health.snapshot(at_ms).sources[0].verdict.state;
        assert_eq!(state(now + 1_000), State::Starting);
        // Judged from the term's start: blind only once its own polls are overdue.
        assert_eq!(state(now + 10 * 60_000), State::Blind);
    }

    #[tokio::test]
    async fn each_change_is_enqueued_once_per_sink_across_a_crash() {
        let (_dir, store, metrics, mut monitor) = rig();
        let now = OffsetDateTime::now_utc();
        metrics.connect_failed("prod", &["alerts"], "credentials", "SAS_SK is not set");
        assert_eq!(monitor.look(now).await.unwrap(), 2, "one per sink");
        assert_eq!(monitor.look(at(now, 1)).await.unwrap(), 0, "still blind");
        let firing = waiting(&store, "a");
        assert_eq!(firing, waiting(&store, "b"));
        let stored = store
            .health_episode("source_blind/prod/alerts")
            .unwrap()
            .unwrap();
        assert!(stored.open && stored.announced, "{stored:?}");
        assert_eq!(stored.detail.as_deref(), Some("SAS_SK is not set"));

        // A crash after the change was stored but before it was marked announced: the next
        // start announces it again, and the enqueue guards drop both.
        store
            .put_health_episode(&HealthEpisode {
                announced: false,
                ..stored
            })
            .unwrap();
        let (_, _, _, restarted) = rig();
        let mut restarted = Monitor::new(Health {
            store: store.clone(),
            metrics: metrics.clone(),
            ..restarted.health
        });
        assert_eq!(restarted.look(at(now, 2)).await.unwrap(), 0);
        assert_eq!(waiting(&store, "a"), firing);

        // A restart is not a recovery: before its first poll finishes the source is not
        // judged, and the open episode stays open (no resolved, no second firing).
        let fresh = Arc::new(Metrics::default());
        let mut rebooted = Monitor::new(Health {
            store: store.clone(),
            metrics: fresh.clone(),
            ..restarted.health.clone()
        });
        assert_eq!(rebooted.look(at(now, 2)).await.unwrap(), 0);
        fresh.connect_failed("prod", &["alerts"], "credentials", "SAS_SK is not set");
        assert_eq!(rebooted.look(at(now, 3)).await.unwrap(), 0);
        let kept = store
            .health_episode("source_blind/prod/alerts")
            .unwrap()
            .unwrap();
        assert!(kept.open && kept.episode == 1, "{kept:?}");

        // Read again: resolved once, to both.
        metrics.poll_ok("prod", "alerts", Duration::ZERO, 0, &Dispatched::default());
        assert_eq!(restarted.look(at(now, 3)).await.unwrap(), 2);
        assert_eq!(restarted.look(at(now, 4)).await.unwrap(), 0);
        let stored = store
            .health_episode("source_blind/prod/alerts")
            .unwrap()
            .unwrap();
        assert!(!stored.open && stored.announced && stored.episode == 1);
        assert_eq!(waiting(&store, "b").len(), 2);
        assert!(
            restarted
                .health
                .status(crate::clock::unix_ms(at(now, 4)))
                .ready
        );
    }

    #[test]
    fn a_reload_judges_the_sources_it_configures_from_when_it_added_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let hour_ago = crate::clock::unix_seconds_now() - 3600.0;
        let health = Health::new(Arc::new(Metrics::new(hour_ago)), store);
        let configure = |text: &str| {
            let s = crate::config::parse(std::path::Path::new("t.toml"), text).unwrap();
            health.configure(&s.health, None, &s.sources, BTreeMap::new());
        };
        let state = |now_ms| -> Vec<(String, State)> {
            let snap = health.snapshot(now_ms);
            snap.sources
                .iter()
                .map(|h| (h.source.clone(), h.verdict.state))
                .collect()
        };
        configure(CONFIG);
        let staging = CONFIG.replace("\"prod\"", "\"staging\"");
        configure(&format!(
            "{CONFIG}{}",
            staging.replace("[health]\nstalled_after = \"1m\"", "")
        ));
        let now_ms = crate::clock::unix_ms(OffsetDateTime::now_utc());
        // Never polled: prod, there for an hour, is blind; staging, added now, is starting.
        assert_eq!(
            state(now_ms),
            [
                ("prod".to_string(), State::Blind),
                ("staging".to_string(), State::Starting)
            ]
        );
        // Configured again, staging keeps its start; prod, removed, is no longer judged.
        configure(&staging);
        assert_eq!(state(now_ms), [("staging".to_string(), State::Starting)]);
        assert_eq!(
            state(now_ms + 3_600_000),
            [("staging".to_string(), State::Blind)]
        );
    }

    #[tokio::test]
    async fn expiring_credentials_and_a_stalled_sink_are_conditions_too() {
        let (_dir, store, metrics, mut monitor) = rig();
        let now = OffsetDateTime::now_utc();
        metrics.poll_ok("prod", "alerts", Duration::ZERO, 0, &Dispatched::default());
        let (tx, rx) = watch::channel(RefreshStatus {
            generation: 1,
            consecutive_failures: 2,
            total_failures: 2,
            last_error: Some("rrsa: STS answered 500".into()),
            expiration: at(now, 300),
            next_attempt: Some(at(now, 10)),
        });
        monitor.health.watch_credentials("prod", rx);
        assert_eq!(monitor.look(now).await.unwrap(), 2);
        let open = |store: &Store| -> Vec<String> {
            store
                .health_episodes()
                .unwrap()
                .into_iter()
                .filter(|e| e.open)
                .map(|e| e.condition.key())
                .collect()
        };
        assert_eq!(open(&store), ["credentials_expiring/prod"]);
        tx.send_modify(|s| {
            s.consecutive_failures = 0;
            s.expiration = at(now, 3600);
        });
        // Entries of `a` and `b` (the two meta-events) wait; a minute on, both sinks are
        // stalled, and each is told about the other only.
        metrics.poll_ok("prod", "alerts", Duration::ZERO, 0, &Dispatched::default());
        let later = at(now, 61);
        let enqueued = monitor.look(later).await.unwrap();
        let mut keys = open(&store);
        keys.sort();
        assert_eq!(keys, ["sink_stalled/a", "sink_stalled/b"]);
        // Resolved credentials to both; each stall to the other sink only.
        assert_eq!(enqueued, 4);
        let stall = |sink: &str| {
            let key = format!("sink_stalled/{sink}");
            let since = store.health_episode(&key).unwrap().unwrap().since_ms;
            crate::event::event_id(&["health", &key, "1", "firing", &since.to_string()])
        };
        assert!(waiting(&store, "a").contains(&stall("b")));
        assert!(!waiting(&store, "a").contains(&stall("a")));
        assert!(waiting(&store, "b").contains(&stall("a")));
    }
}
