//! Delivery: one worker per sink drains that sink's outbox.
//!
//! The worker owns policy; the sink makes one attempt. Each entry is removed only after the
//! sink confirmed it ([`Outcome::Delivered`]). A retryable failure reschedules the entry with
//! jittered exponential backoff (never sooner than the sink's `Retry-After`) and pauses the
//! whole sink for that long, so a sink that is down is probed, not flooded, and entries keep
//! their order. A permanent failure, or an entry older than `max_age` (or past `max_attempts`),
//! goes to the dead letter with the reason and the last response. One delivery is in flight per
//! sink, and the outbox update after each attempt (ack, reschedule, dead letter) is flushed
//! before the next attempt starts: sled keeps unflushed writes in memory for up to 500 ms, so
//! without the flush a `kill -9` forgot the acks of every delivery of that window and they were
//! sent again. A crash between a send and its durable ack repeats at most that one message.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::DeliverySettings;
use crate::event::{DeadLetter, OutboxEntry};
use crate::poller::unix_ms;
use crate::sinks::{Outcome, Sink};
use crate::store::Store;

/// Entries read from the outbox per round.
const BATCH: usize = 32;
/// Longest idle wait when nothing is scheduled (a safety net; wake-ups normally come first).
const IDLE: Duration = Duration::from_secs(60);

/// What to do with an entry after an attempt. Pure, so the policy is table-tested.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Remove it: delivered.
    Ack,
    /// Try again at this time (unix ms), recording the reason.
    Retry {
        /// Next attempt (unix ms).
        at_ms: i64,
        /// Why the attempt failed.
        reason: String,
    },
    /// Give up: dead letter.
    Dead {
        /// Why.
        reason: String,
        /// The sink's last response.
        response: Option<String>,
    },
}

/// Decides the fate of `entry` after `outcome`, with `attempts` made so far (this one
/// included). `jitter` is uniform in `[0, 1)`.
pub fn decide(
    policy: &DeliverySettings,
    entry: &OutboxEntry,
    attempts: u32,
    outcome: &Outcome,
    now_ms: i64,
    jitter: f64,
) -> Verdict {
    match outcome {
        Outcome::Delivered { .. } => Verdict::Ack,
        Outcome::Permanent { reason, response } => Verdict::Dead {
            reason: reason.clone(),
            response: response.clone(),
        },
        Outcome::Retry { after, reason } => {
            let age = Duration::from_millis((now_ms - entry.enqueued_at_ms).max(0) as u64);
            if policy.max_attempts > 0 && attempts >= policy.max_attempts {
                return Verdict::Dead {
                    reason: format!("gave up after {attempts} attempts; last: {reason}"),
                    response: None,
                };
            }
            if age >= policy.max_age {
                return Verdict::Dead {
                    reason: format!(
                        "gave up after {}s undelivered (max_age); last: {reason}",
                        age.as_secs()
                    ),
                    response: None,
                };
            }
            let exp = crate::sas::retry::exponential(
                policy.retry_initial_delay,
                attempts,
                policy.retry_max_delay,
            );
            let wait = exp
                .mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
                .max(after.unwrap_or_default().min(Duration::from_secs(3600)));
            Verdict::Retry {
                at_ms: now_ms + wait.as_millis() as i64,
                reason: reason.clone(),
            }
        }
    }
}

/// The worker of one sink.
pub struct Worker {
    sink: Arc<Sink>,
    store: Store,
    policy: DeliverySettings,
    wake: Arc<Notify>,
}

impl Worker {
    /// A worker delivering `sink`'s outbox; `wake` is signalled by pollers after an enqueue.
    pub fn new(sink: Arc<Sink>, store: Store, policy: DeliverySettings, wake: Arc<Notify>) -> Self {
        Worker {
            sink,
            store,
            policy,
            wake,
        }
    }

    /// Delivers until `shutdown`. A delivery in flight when `shutdown` fires is finished (the
    /// daemon bounds that with its grace period); no new one starts.
    pub async fn run(self, shutdown: CancellationToken) {
        let name = self.sink.name().to_string();
        let pending = self.store.depth(&name);
        if pending > 0 {
            tracing::info!(sink = %name, pending, "Resuming delivery of pending entries.");
        }
        let mut paused_until_ms: i64 = 0;
        'outer: loop {
            if shutdown.is_cancelled() {
                break;
            }
            let now_ms = unix_ms(time::OffsetDateTime::now_utc());
            let due = if now_ms < paused_until_ms {
                Vec::new()
            } else {
                match self.store.due(&name, now_ms, BATCH) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::error!(sink = %name, error = %e, "Cannot read the outbox; retrying in 5s.");
                        self.store.heal(&e);
                        paused_until_ms = now_ms + 5_000;
                        Vec::new()
                    }
                }
            };
            if due.is_empty() {
                let next = self
                    .store
                    .next_due_at(&name)
                    .map(|at| at.max(paused_until_ms))
                    .map(|at| Duration::from_millis((at - now_ms).max(0) as u64))
                    .unwrap_or(IDLE)
                    .min(IDLE);
                let pause = Duration::from_millis((paused_until_ms - now_ms).max(0) as u64);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    // A wake-up during a pause must not end the pause early.
                    _ = self.wake.notified(), if pause.is_zero() => {}
                    _ = tokio::time::sleep(next.max(pause).max(Duration::from_millis(5))) => {}
                }
                continue;
            }
            for (seq, entry) in due {
                if shutdown.is_cancelled() {
                    break 'outer;
                }
                let attempts = entry.attempts + 1;
                let outcome = self.sink.deliver(&entry.payload, attempts).await;
                let now_ms = unix_ms(time::OffsetDateTime::now_utc());
                let id = entry.payload.id().to_string();
                let verdict = decide(
                    &self.policy,
                    &entry,
                    attempts,
                    &outcome,
                    now_ms,
                    rand::random(),
                );
                let result = match verdict {
                    Verdict::Ack => {
                        tracing::debug!(sink = %name, event = %id, attempts, "Delivered.");
                        if attempts > 1 {
                            tracing::info!(sink = %name, event = %id, attempts, "Delivered after retries.");
                        }
                        self.store.ack(&name, seq).map(|_| ())
                    }
                    Verdict::Retry { at_ms, reason } => {
                        tracing::warn!(
                            sink = %name,
                            event = %id,
                            attempts,
                            retry_in_ms = at_ms - now_ms,
                            reason = %reason,
                            "Delivery failed; will retry."
                        );
                        paused_until_ms = at_ms;
                        let mut next = entry.clone();
                        next.attempts = attempts;
                        next.next_attempt_at_ms = at_ms;
                        next.last_error = Some(reason);
                        let r = self.store.reschedule(&name, seq, &next).map(|_| ());
                        // The sink is unhealthy: stop this round, keep the order.
                        if let Err(e) = r {
                            tracing::error!(sink = %name, event = %id, error = %e, "Cannot reschedule; the entry stays due.");
                        } else {
                            self.persist(&name, &id).await;
                        }
                        continue 'outer;
                    }
                    Verdict::Dead { reason, response } => {
                        tracing::error!(
                            sink = %name,
                            event = %id,
                            attempts,
                            reason = %reason,
                            response = response.as_deref(),
                            "Delivery failed permanently; moved to the dead letter."
                        );
                        let mut last = entry.clone();
                        last.attempts = attempts;
                        let letter = DeadLetter {
                            entry: last,
                            dead_at_ms: now_ms,
                            reason,
                            last_response: response,
                        };
                        self.store.dead_letter(&name, seq, &letter).map(|_| ())
                    }
                };
                if let Err(e) = result {
                    tracing::error!(sink = %name, event = %id, error = %e, "Cannot update the outbox after a delivery attempt.");
                    self.store.heal(&e);
                    paused_until_ms = now_ms + 5_000;
                    continue 'outer;
                }
                if !self.persist(&name, &id).await {
                    paused_until_ms = now_ms + 5_000;
                    continue 'outer;
                }
            }
        }
        tracing::debug!(sink = %name, "Delivery worker stopped.");
    }

    /// Makes the outbox update of an attempt durable before the next attempt starts (one
    /// fsync per attempt; see the module docs). False when the flush failed.
    async fn persist(&self, name: &str, id: &str) -> bool {
        match self.store.flush().await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(sink = %name, event = %id, error = %e, "Cannot make the outbox update durable; a crash now would repeat this delivery.");
                false
            }
        }
    }
}
