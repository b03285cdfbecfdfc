//! Leadership (`[ha]`): which of two replicas polls and delivers, and how a new leader takes
//! over (issue 18; `shared/scale-out.md` §3).
//!
//! [`Leadership::start`] builds the coordinator `[ha]` names and runs an
//! [`Elector`] beside the daemon. The daemon's loop calls
//! [`Leadership::follow`] whenever the role changes:
//!
//! - **taking the lease** begins a term (`Leadership::begin`): load the checkpoint (retried
//!   while the term still leads), write it back at once under the new epoch — which fences
//!   the old leader, whose next write is refused — and, when there was one, read it as a
//!   [`Takeover`]: each windowed source × domain's cursor moves back to where the old
//!   leader's marks say the first listing must start, each snapshot's next poll is a full
//!   sweep, and what this replica's outbox still holds from an earlier term of its own is
//!   acked where the old leader settled it. Then the wiring's parts start for the term
//!   (`Wiring::lead`) and a writer stores the term's checkpoint every
//!   `checkpoint_interval`;
//! - **losing it** (a failed renew past the deadline, another holder, a fenced write) stops
//!   every part at once (`Wiring::step_down`): polls stop at their next page, attempts in
//!   flight are cut off at the term's deadline (they stay in the outbox; the successor sends
//!   them, flagged), and the writer stops without writing again;
//! - **shutdown** ([`Leadership::stop`]) steps down the same way, writes one last checkpoint
//!   while the term still leads (so a rolling update repeats nothing), then releases the lease
//!   so the standby takes over at its next try.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::StartError;
use super::wiring::Wiring;
use crate::credentials::env::Env;
use crate::finding::Domain;
use crate::ha::Term;
use crate::ha::checkpoint::{CheckpointApi, CheckpointError, CheckpointStore, Stored};
use crate::ha::config::{Coordinator, HaSettings, default_identity};
use crate::ha::kube::KubeApi;
use crate::ha::lease::{Elector, Gate, KubeLease, LeaseApi, Role};
use crate::ha::ledger::{Checkpoint, Handoff, Takeover, Verdict, stream_key};
use crate::ha::postgres::{PgCheckpoint, PgCoordinator};
use crate::pipeline::dispatch::stream_of;
use crate::pipeline::metrics::Metrics;
use crate::sas::source::SourceSettings;
use crate::store::{CURSOR_SCHEMA, Cursor, Store};

/// Entries read at a time when a term looks at what an earlier one left.
const LEFTOVER_BATCH: usize = 256;

/// Where the checkpoint lives.
#[derive(Clone)]
enum Checkpoints {
    Kube(CheckpointApi),
    Postgres(PgCheckpoint),
}

impl Checkpoints {
    fn describe(&self) -> String {
        match self {
            Checkpoints::Kube(c) => c.describe(),
            Checkpoints::Postgres(c) => c.describe(),
        }
    }

    async fn load(&self) -> Result<Option<Stored>, String> {
        match self {
            Checkpoints::Kube(c) => c.load().await.map_err(|e| e.to_string()),
            Checkpoints::Postgres(c) => c.load().await.map_err(|e| e.to_string()),
        }
    }

    /// Stores `text` under `epoch`, sending nothing at or after `deadline` (the term's);
    /// `Err(Some(stored))` when fenced by a later epoch.
    async fn store(
        &self,
        epoch: u64,
        text: &str,
        deadline: Instant,
    ) -> Result<(), (Option<u64>, String)> {
        fn split<E: std::error::Error>(e: CheckpointError<E>) -> (Option<u64>, String) {
            match e {
                CheckpointError::Fenced { stored, .. } => (Some(stored), e.to_string()),
                other => (None, other.to_string()),
            }
        }
        match self {
            Checkpoints::Kube(c) => c
                .store_before(epoch, text, Some(deadline))
                .await
                .map_err(split),
            Checkpoints::Postgres(c) => c
                .store_before(epoch, text, Some(deadline))
                .await
                .map_err(split),
        }
    }
}

/// A term in progress.
struct Running {
    epoch: u64,
    /// When the term took over from a checkpoint (unix ms), if it did.
    took_over_ms: Option<i64>,
    gate: Gate,
    handoff: Arc<Handoff>,
    writer_stop: CancellationToken,
    writer: JoinHandle<()>,
}

/// This replica's candidacy and, while it leads, its term.
pub struct Leadership {
    settings: HaSettings,
    identity: String,
    role: watch::Receiver<Role>,
    elector_stop: CancellationToken,
    elector: JoinHandle<()>,
    checkpoints: Checkpoints,
    store: Store,
    metrics: Arc<Metrics>,
    term: Option<Running>,
}

impl Leadership {
    /// Builds the coordinator `[ha]` names and starts standing for the lease.
    pub async fn start(
        settings: &HaSettings,
        env: &dyn Env,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> Result<Leadership, StartError> {
        let identity = settings
            .identity
            .clone()
            .or_else(|| default_identity(&|k| env.var(k)))
            .ok_or_else(|| {
                StartError::Other(
                    "[ha] identity is not set and neither is POD_NAME nor a host name: name this replica".into(),
                )
            })?;
        let timings = settings.timings;
        // Every call ends well within the renew deadline.
        let call_timeout = timings.renew_deadline / 2;
        let (tx, role) = watch::channel(Role::Standby { holder: None });
        let elector_stop = CancellationToken::new();
        let (elector, checkpoints) = match &settings.coordinator {
            Coordinator::Kubernetes { api } => {
                let kube = match api {
                    None => KubeApi::in_cluster(call_timeout).map_err(|e| {
                        StartError::Other(format!("[ha] coordinator = \"kubernetes\": {e}"))
                    })?,
                    Some((url, namespace, token)) => {
                        let http = reqwest::Client::builder()
                            .timeout(call_timeout)
                            .no_proxy()
                            .build()
                            .map_err(|e| StartError::Other(format!("HTTP client: {e}")))?;
                        KubeApi::new(http, url, namespace, token.clone())
                    }
                };
                let lease = KubeLease::new(
                    LeaseApi::new(kube.clone(), &settings.name),
                    &identity,
                    timings.lease,
                );
                let elector = Elector::new(lease, timings).on_success(renewed(&metrics));
                (
                    tokio::spawn(elector.run(tx, elector_stop.clone())),
                    Checkpoints::Kube(CheckpointApi::new(kube, &settings.checkpoint_name())),
                )
            }
            Coordinator::Postgres { url } => {
                let url = url
                    .resolve_with(&|k| env.var(k))
                    .map_err(|e| StartError::Other(format!("[ha] url: {e}")))?;
                let pg = PgCoordinator::new(
                    url.expose(),
                    &settings.name,
                    &identity,
                    timings.lease,
                    call_timeout,
                )
                .map_err(|e| StartError::Other(format!("[ha] url: {e}")))?;
                let elector = Elector::new(pg.lease, timings).on_success(renewed(&metrics));
                (
                    tokio::spawn(elector.run(tx, elector_stop.clone())),
                    Checkpoints::Postgres(pg.checkpoint),
                )
            }
        };
        tracing::info!(
            identity = %identity,
            checkpoint = %checkpoints.describe(),
            "Standing for leadership: this replica polls and delivers only while it holds the lease."
        );
        metrics.ha_role(false, None);
        Ok(Leadership {
            settings: settings.clone(),
            identity,
            role,
            elector_stop,
            elector,
            checkpoints,
            store,
            metrics,
            term: None,
        })
    }

    /// Resolves when the role changed.
    pub async fn changed(&mut self) {
        if self.role.changed().await.is_err() {
            // The elector ended (only at shutdown): nothing more will change.
            std::future::pending::<()>().await;
        }
    }

    /// Acts on the role now: begins a term on taking the lease, ends it on losing it.
    pub async fn follow(&mut self, wiring: &mut Wiring, grace: Duration) {
        let role = self.role.borrow().clone();
        let leading = match role {
            Role::Leader { epoch, .. } => Some(epoch),
            Role::Standby { .. } => None,
        };
        if let Some(term) = &self.term
            && leading != Some(term.epoch)
        {
            tracing::warn!(
                epoch = term.epoch,
                "Leadership lost: stopping polls and deliveries."
            );
            self.end_term(wiring, grace, false).await;
        }
        if let (Some(epoch), None) = (leading, &self.term) {
            let sources = wiring.settings().sources.clone();
            if let Some(term) = self.begin(epoch, &sources).await {
                wiring.lead(Some(Term {
                    handoff: term.handoff.clone(),
                    gate: term.gate.clone(),
                    max_lag: self.settings.checkpoint_interval,
                    leftovers_before_ms: term.took_over_ms,
                }));
                if term.took_over_ms.is_some() {
                    self.metrics.ha_took_over();
                }
                self.term = Some(term);
            }
        }
        if self.term.is_some() || leading.is_none() {
            self.metrics.ha_blocked(None);
        }
        self.metrics
            .ha_role(self.term.is_some(), self.term.as_ref().map(|t| t.epoch));
    }

    /// Begins the term leading with `epoch` (see the module doc); `None` when it stopped
    /// leading before it could.
    async fn begin(&mut self, epoch: u64, sources: &[SourceSettings]) -> Option<Running> {
        // One try each: a failure returns, and the next renew (a role change) tries again, so
        // the daemon's loop never stops answering shutdown and reloads while this fails.
        let gate = Gate::new(self.role.clone(), epoch);
        let loaded = match self.checkpoints.load().await {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::error!(checkpoint = %self.checkpoints.describe(), error = %e, "Leading, but cannot read the checkpoint: nothing polls or delivers until it is read (retried at every renew).");
                self.metrics.ha_blocked(Some(format!(
                    "cannot read the checkpoint ({}): {e}",
                    self.checkpoints.describe()
                )));
                return None;
            }
        };
        let took_over_ms = crate::clock::unix_ms(time::OffsetDateTime::now_utc());
        let takeover = loaded.as_ref().map(|stored| {
            let checkpoint = serde_json::from_str::<Checkpoint>(&stored.text).unwrap_or_else(|e| {
                tracing::error!(checkpoint = %self.checkpoints.describe(), error = %e, "The checkpoint cannot be read: taking over without it (what the old leader may have sent is sent again, flagged).");
                Checkpoint::default()
            });
            Takeover::new(checkpoint, took_over_ms)
        });
        // Fence the old leader at once: its next write finds this epoch and is refused.
        let fence = match &loaded {
            Some(stored) => stored.text.clone(),
            None => serde_json::to_string(
                &Handoff::new(&self.identity, None, 1)
                    .checkpoint(took_over_ms)
                    .0,
            )
            .unwrap_or_default(),
        };
        // Not past the term's deadline: a replica paused or stopped while fencing must not
        // write once its lease may have lapsed, even before its successor fenced it.
        let deadline = gate.deadline()?;
        match self.checkpoints.store(epoch, &fence, deadline).await {
            Ok(()) => {}
            Err((Some(stored), e)) => {
                tracing::error!(epoch, stored, error = %e, "Another replica leads with a later epoch: not starting.");
                return None;
            }
            Err((None, e)) => {
                tracing::error!(checkpoint = %self.checkpoints.describe(), error = %e, "Leading, but cannot write the checkpoint under the new epoch: nothing polls or delivers until it is written (retried at every renew).");
                self.metrics.ha_blocked(Some(format!(
                    "cannot write the checkpoint ({}): {e}",
                    self.checkpoints.describe()
                )));
                return None;
            }
        }
        if !gate.open() {
            return None;
        }
        let handoff = Arc::new(Handoff::new(
            &self.identity,
            takeover.clone(),
            self.settings.ring,
        ));
        // The fence was this term's first stored checkpoint (the old leader's, which is what
        // this term's ledger holds so far).
        handoff.stored(handoff.checkpoint(took_over_ms).1);
        if let Some(t) = &takeover
            && let Err(e) = self.prepare(t, &handoff, sources).await
        {
            tracing::error!(error = %e, "Leading, but cannot prepare the store for the takeover: nothing polls or delivers (retried at every renew).");
            self.metrics.ha_blocked(Some(format!(
                "cannot prepare the store for the takeover: {e}"
            )));
            return None;
        }
        tracing::info!(
            epoch,
            identity = %self.identity,
            took_over = takeover.is_some(),
            "Leading: polling and delivering."
        );
        let writer_stop = CancellationToken::new();
        let writer = tokio::spawn(write_checkpoints(
            self.checkpoints.clone(),
            epoch,
            handoff.clone(),
            gate.clone(),
            self.settings.checkpoint_interval,
            writer_stop.clone(),
        ));
        Some(Running {
            epoch,
            took_over_ms: takeover.is_some().then_some(took_over_ms),
            gate,
            handoff,
            writer_stop,
            writer,
        })
    }

    /// Moves the cursors where the takeover says the first listings start, and settles what
    /// this replica's outbox holds from an earlier term that the old leader settled.
    async fn prepare(
        &self,
        takeover: &Takeover,
        handoff: &Handoff,
        sources: &[SourceSettings],
    ) -> Result<(), crate::store::StoreError> {
        let store = &self.store;
        for source in sources {
            for poll in &source.polls {
                let stream = stream_key(&source.name, poll.domain.as_str());
                let Some(start) = takeover.window_start_ms(&stream) else {
                    continue;
                };
                let mut cursor = store.cursor(&source.name, poll.domain)?.unwrap_or(Cursor {
                    v: CURSOR_SCHEMA,
                    watermark_ms: None,
                    initialised: false,
                    last_success_ms: 0,
                    probe: None,
                    last_sweep_ms: None,
                    backfill: None,
                });
                cursor.initialised = true;
                match poll.domain {
                    Domain::Alerts | Domain::Firewall => {
                        let watermark = start.saturating_add(source.overlap.as_millis() as i64);
                        if cursor.watermark_ms.is_none_or(|w| w > watermark) {
                            cursor.watermark_ms = Some(watermark);
                        }
                    }
                    // A full sweep: what changed while another replica led is not in this
                    // replica's statistics.
                    Domain::Vulnerabilities | Domain::Baseline => cursor.probe = None,
                }
                store.set_cursor(&source.name, poll.domain, &cursor)?;
            }
        }
        let mut dropped = 0;
        for sink in store.sinks_with_entries() {
            let mut seen = std::collections::HashSet::new();
            loop {
                let batch = store.waiting(&sink, LEFTOVER_BATCH, &seen)?;
                if batch.is_empty() {
                    break;
                }
                for (seq, entry) in batch {
                    seen.insert(seq);
                    let events = entry.payload.events();
                    let settled = !events.is_empty()
                        && events.iter().all(|e| {
                            takeover.decide(&sink, &stream_of(e), &e.id, e.activity_ms())
                                == Verdict::Settled
                        });
                    if settled {
                        store.ack(&sink, seq)?;
                        dropped += 1;
                    } else {
                        for e in events {
                            tracing::debug!(sink = %sink, event = %e.id, at_ms = e.activity_ms(), mark = ?takeover.checkpoint().streams.get(&stream_of(e)).map(|m| (m.listed_through_ms, m.sinks.get(&sink).map(|s| (s.through_ms, s.ring.len())))), "Left from an earlier term and not settled since: kept.");
                            handoff.pending(&sink, &stream_of(e), &e.id, e.activity_ms());
                        }
                    }
                }
            }
        }
        if dropped > 0 {
            tracing::info!(
                dropped,
                "Left from an earlier term and settled by the replica that led since: removed from the outbox."
            );
        }
        store.flush().await
    }

    /// Stops the term's parts (waiting for them at most `grace`) and its writer; on a
    /// shutdown, writes a last checkpoint while the term still leads.
    async fn end_term(&mut self, wiring: &mut Wiring, grace: Duration, last_write: bool) {
        let Some(term) = self.term.take() else {
            return;
        };
        let parts = wiring.step_down();
        let ended = tokio::time::timeout(grace, async {
            for part in parts {
                part.wait().await;
            }
        })
        .await
        .is_ok();
        if !ended {
            tracing::warn!("The term's tasks did not all end within the shutdown grace period.");
        }
        term.writer_stop.cancel();
        let _ = term.writer.await;
        if last_write && term.gate.open() {
            match write_once(&self.checkpoints, term.epoch, &term.handoff, &term.gate).await {
                Ok(()) => tracing::info!("Wrote the last checkpoint of this term."),
                Err(e) => tracing::warn!(error = %e, "Could not write the last checkpoint."),
            }
        }
    }

    /// Ends the term (if any) with a last checkpoint, then releases the lease.
    pub async fn stop(mut self, wiring: &mut Wiring, grace: Duration) {
        self.end_term(wiring, grace, true).await;
        self.elector_stop.cancel();
        let _ = self.elector.await;
    }
}

/// Reports a successful lease try to the metrics.
fn renewed(metrics: &Arc<Metrics>) -> impl Fn(i64) + Send + Sync + 'static {
    let metrics = metrics.clone();
    move |ms| metrics.ha_renewed(ms)
}

/// Writes the term's checkpoint every `every`, and soon after each delivered batch (at most
/// every `every` / 4, so a burst of deliveries costs the coordinator a few writes a second),
/// while it leads, until `stop`; a fenced write ends it (another replica leads).
async fn write_checkpoints(
    checkpoints: Checkpoints,
    epoch: u64,
    handoff: Arc<Handoff>,
    gate: Gate,
    every: Duration,
    stop: CancellationToken,
) {
    let gap = every / 4;
    let mut last = Instant::now();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(last + every) => {}
            () = async {
                handoff.settled_since().await;
                tokio::time::sleep_until(last + gap).await;
            } => {}
        }
        if !gate.open() {
            return;
        }
        last = Instant::now();
        if let Err(e) = write_once(&checkpoints, epoch, &handoff, &gate).await {
            match e {
                WriteError::Fenced(stored) => {
                    tracing::error!(
                        epoch,
                        stored,
                        "The checkpoint holds a later epoch: another replica leads. Not writing again."
                    );
                    return;
                }
                other => {
                    tracing::warn!(checkpoint = %checkpoints.describe(), error = %other, "Cannot write the checkpoint; trying again.");
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("fenced by epoch {0}")]
    Fenced(u64),
    #[error("{0}")]
    Failed(String),
    #[error("the term ended before the write did")]
    Late,
}

/// One checkpoint write, given up at the term's deadline.
async fn write_once(
    checkpoints: &Checkpoints,
    epoch: u64,
    handoff: &Handoff,
    gate: &Gate,
) -> Result<(), WriteError> {
    let now_ms = crate::clock::unix_ms(time::OffsetDateTime::now_utc());
    let (checkpoint, snapshot) = handoff.checkpoint(now_ms);
    let text = serde_json::to_string(&checkpoint).map_err(|e| WriteError::Failed(e.to_string()))?;
    let deadline = gate.deadline().ok_or(WriteError::Late)?;
    if Instant::now() >= deadline {
        return Err(WriteError::Late);
    }
    match tokio::time::timeout_at(deadline, checkpoints.store(epoch, &text, deadline)).await {
        Err(_) => Err(WriteError::Late),
        Ok(Ok(())) => {
            handoff.stored(snapshot);
            Ok(())
        }
        Ok(Err((Some(stored), _))) => Err(WriteError::Fenced(stored)),
        Ok(Err((None, e))) => Err(WriteError::Failed(e)),
    }
}
