//! The grouper: one [`Task`] that closes routing groups when they are due — after `group_wait`,
//! then every `group_interval`, or at once when full — turning their members into one digest
//! in the sink's outbox, and wakes that sink's worker. It also sends due reminders
//! (`repeat_interval`, through [`Dispatcher::remind_due`]) and, when a silence or a mute
//! window ends, what it held ([`Dispatcher::release_ended_holds`]).
//!
//! The group state lives in the store (see `store::groups` for the crash-safe close), so this
//! task holds nothing of its own: after a restart it finds the open groups, including a close
//! a crash cut short, and carries on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::clock::unix_ms;
use crate::pipeline::dispatch::Dispatcher;
use crate::store::{GroupClosed, Store};
use crate::task::{Label, Next, Task, TaskError};

/// Longest sleep between looks at the groups, so a clock jump cannot stall a group for long.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Pause after a failed close before looking again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Closes due groups, one [`Grouper::tick`] a step.
pub struct Grouper {
    store: Store,
    /// Wakes the worker of a sink (by name) after a digest went into its outbox.
    wakes: BTreeMap<String, Arc<Notify>>,
    /// Signalled by dispatch when it adds a member, so a new group's due time is seen.
    wake: Arc<Notify>,
    /// Sends due reminders.
    dispatcher: Option<Arc<Dispatcher>>,
}

impl Grouper {
    /// A grouper over `store`'s groups.
    pub fn new(store: Store, wakes: BTreeMap<String, Arc<Notify>>, wake: Arc<Notify>) -> Self {
        Grouper {
            store,
            wakes,
            wake,
            dispatcher: None,
        }
    }

    /// Also sends due reminders through `dispatcher`.
    pub fn with_reminders(mut self, dispatcher: Arc<Dispatcher>) -> Self {
        self.dispatcher = Some(dispatcher);
        self
    }

    /// Closes every group due at `now`; returns how many digests were enqueued and how many
    /// closes failed.
    pub async fn tick(&self, now: OffsetDateTime) -> (usize, usize) {
        let now_ms = unix_ms(now);
        let (mut digests, mut failed) = (0, 0);
        let mut woken = Vec::new();
        for gid in self.store.due_groups(now_ms) {
            match self.store.close_group(&gid, now_ms, now) {
                Ok(GroupClosed::Digest {
                    sink,
                    digest_id,
                    members,
                    ..
                }) => {
                    tracing::info!(sink = %sink, group = %gid, digest = %digest_id, members, "Group closed into a digest.");
                    digests += 1;
                    woken.push(sink);
                }
                Ok(GroupClosed::Expired) => {
                    tracing::debug!(group = %gid, "Empty group expired.");
                }
                Ok(GroupClosed::NotDue) => {}
                Err(e) => {
                    failed += 1;
                    tracing::error!(group = %gid, error = %e, "Closing a group failed; it stays open and is retried.");
                    self.store.heal(&e).await;
                }
            }
        }
        if let Some(d) = &self.dispatcher {
            match d.release_ended_holds(now) {
                Ok(out) => {
                    if out.released + out.let_go + out.folded > 0 {
                        tracing::info!(
                            released = out.released,
                            let_go = out.let_go,
                            folded = out.folded,
                            "Sent what ended silences and mute windows held (events of findings that closed meanwhile are let go)."
                        );
                        if let Err(e) = self.store.flush().await {
                            tracing::error!(error = %e, "Flushing released events failed.");
                        }
                        d.wake(&out);
                    }
                }
                Err(e) => {
                    failed += 1;
                    tracing::error!(error = %e, "Releasing what ended silences and mute windows held failed; it is retried.");
                    self.store.heal(&e).await;
                }
            }
            match d.remind_due(now) {
                Ok(out) => {
                    if out.reminded > 0 {
                        tracing::info!(
                            reminded = out.reminded,
                            "Sent reminders about findings still open."
                        );
                        if let Err(e) = self.store.flush().await {
                            tracing::error!(error = %e, "Flushing reminders failed.");
                        }
                        d.wake(&out);
                    }
                }
                Err(e) => {
                    failed += 1;
                    tracing::error!(error = %e, "Sending reminders failed; they are retried.");
                    self.store.heal(&e).await;
                }
            }
        }
        if !woken.is_empty() {
            // Not needed for correctness (every step is crash-safe), but a digest should not
            // wait for the next poll's flush to become durable.
            if let Err(e) = self.store.flush().await {
                tracing::error!(error = %e, "Flushing closed groups failed.");
            }
            for sink in woken {
                match self.wakes.get(&sink) {
                    Some(w) => w.notify_one(),
                    None => {
                        tracing::warn!(sink = %sink, "A digest went to a sink that is no longer configured; it waits in its outbox.")
                    }
                }
            }
        }
        (digests, failed)
    }

    /// How long until a group or a reminder may be due (at most [`MAX_SLEEP`]; at least
    /// [`RETRY_AFTER_FAILURE`] after a failed close, which stays due: no spinning on it).
    fn next_look(&self, failed: usize) -> Duration {
        let now_ms = unix_ms(OffsetDateTime::now_utc());
        let reminder = self
            .dispatcher
            .as_ref()
            .and_then(|_| self.store.next_reminder_due());
        let silence_end = self.dispatcher.as_ref().and_then(|d| {
            d.silences()
                .next_end(crate::routing::to_timestamp(OffsetDateTime::now_utc()))
                .map(|t| t.as_millisecond())
        });
        let window_end = self
            .dispatcher
            .as_ref()
            .and_then(|d| d.next_window_look(now_ms));
        let next = [
            self.store.next_group_due(),
            reminder,
            silence_end,
            window_end,
        ]
        .into_iter()
        .flatten()
        .min();
        let wait = match next {
            Some(at) => Duration::from_millis(at.saturating_sub(now_ms).max(0) as u64),
            None => MAX_SLEEP,
        }
        .min(MAX_SLEEP);
        if failed > 0 {
            wait.max(RETRY_AFTER_FAILURE)
        } else {
            wait
        }
    }
}

impl Task for Grouper {
    fn label(&self) -> Label {
        Label::new("group")
    }

    /// [`Grouper::tick`], then wait until something may be due or dispatch adds a member.
    /// Failed closes are logged by the tick and retried by the next one, not the runner.
    async fn step(&mut self) -> Result<Next, TaskError> {
        let (_, failed) = self.tick(OffsetDateTime::now_utc()).await;
        let wait = self.next_look(failed);
        if wait.is_zero() {
            // Due again at once (a full group with more members).
            return Ok(Next::Now);
        }
        Ok(Next::WakeOr(self.wake.clone(), wait))
    }
}
