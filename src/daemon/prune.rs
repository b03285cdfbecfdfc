//! The pruner: a [`Task`] that, every [`PRUNE_EVERY`], removes what `[state]` says is old
//! enough to go — resolved records and enqueue guards, dead letters, the suppression log,
//! expired silences, baseline check details and pairs. Each part that fails is logged and
//! tried again next time; none stops the others.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::clock::unix_ms;
use crate::config::StateSettings;
use crate::pipeline::dispatch::Silences;
use crate::store::Store;
use crate::task::{Label, Next, Task, TaskError};

/// How often resolved records and old enqueue guards are pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Prunes the store and the silences every [`PRUNE_EVERY`].
pub struct Pruner {
    store: Store,
    silences: Arc<Silences>,
    /// `[state] resolved_retention`: resolved records, the suppression log, expired silences.
    retention: Duration,
    /// `[state] guard_ttl`: enqueue guards.
    guard_ttl: Duration,
    /// `[state] dead_letter_retention`.
    dead_letter_retention: Duration,
    /// The first prune comes one period after the start, not at it: a daemon that restarts
    /// often does not spend its starts pruning.
    started: bool,
}

impl Pruner {
    /// A pruner of `store` and `silences` by `state`'s retention settings.
    pub fn new(store: Store, silences: Arc<Silences>, state: &StateSettings) -> Pruner {
        Pruner {
            store,
            silences,
            retention: state.resolved_retention,
            guard_ttl: state.guard_ttl,
            dead_letter_retention: state.dead_letter_retention,
            started: false,
        }
    }

    /// Prunes everything that is old enough at `now`.
    pub fn prune(&self, now: OffsetDateTime) {
        let now_ms = unix_ms(now);
        let retention = self.retention.as_millis() as i64;
        let guard_ttl = self.guard_ttl.as_millis() as i64;
        let dead_retention = self.dead_letter_retention.as_millis() as i64;
        match self.store.prune(now_ms, retention, guard_ttl) {
            Ok(r) => tracing::debug!(?r, "Pruned the store."),
            Err(e) => tracing::error!(error = %e, "Pruning the store failed."),
        }
        match self
            .store
            .prune_dead_letters(now_ms.saturating_sub(dead_retention))
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                removed = n,
                "Deleted dead letters older than [state] dead_letter_retention."
            ),
            Err(e) => tracing::error!(error = %e, "Pruning dead letters failed."),
        }
        if let Err(e) = self
            .store
            .prune_suppressed(now_ms.saturating_sub(retention))
        {
            tracing::error!(error = %e, "Pruning the suppression log failed.");
        }
        if let Err(e) = self
            .store
            .prune_quarantined(now_ms.saturating_sub(retention))
        {
            tracing::error!(error = %e, "Pruning quarantined records failed.");
        }
        if let Err(e) = self.store.prune_audit(crate::store::AUDIT_KEPT) {
            tracing::error!(error = %e, "Pruning the handling audit log failed.");
        }
        if let Err(e) = self.store.prune_spent_links(now_ms.div_euclid(1000)) {
            tracing::error!(error = %e, "Pruning spent action links failed.");
        }
        let detail_ttl = crate::sas::api::DetailCache::TTL.as_millis() as i64;
        if let Err(e) = self.store.prune_details(now_ms.saturating_sub(detail_ttl)) {
            tracing::error!(error = %e, "Pruning baseline check details failed.");
        }
        // A pair listed longer ago than this is listed again whatever its counts: its row
        // serves no sweep (and a source no longer configured leaves its rows behind).
        let pair_age = crate::sas::pairs::PAIR_RELIST_AFTER.as_millis() as i64;
        if let Err(e) = self.store.prune_pairs(now_ms.saturating_sub(pair_age)) {
            tracing::error!(error = %e, "Pruning baseline pairs failed.");
        }
        self.silences
            .prune(crate::routing::to_timestamp(now), self.retention);
    }
}

impl Task for Pruner {
    fn label(&self) -> Label {
        Label::new("prune")
    }

    async fn step(&mut self) -> Result<Next, TaskError> {
        if self.started {
            self.prune(OffsetDateTime::now_utc());
        }
        self.started = true;
        Ok(Next::After(PRUNE_EVERY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{DeadLetter, OutboxEntry, Payload};
    use crate::finding::Domain;

    fn state(dead_letter_retention: Duration) -> StateSettings {
        StateSettings {
            directory: std::path::PathBuf::new(),
            resolved_retention: Duration::from_secs(3600),
            guard_ttl: Duration::from_secs(3600),
            dead_letter_retention,
        }
    }

    #[tokio::test]
    async fn the_first_step_waits_a_period_and_later_ones_prune() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let entry = OutboxEntry::new(
            Payload::from(crate::render::sample_event(Domain::Alerts)),
            0,
        );
        let seq = store.enqueue("hook", &entry).unwrap().seq();
        let letter = DeadLetter {
            entry,
            dead_at_ms: 0,
            reason: "refused".into(),
            last_response: None,
            unreadable: None,
        };
        store.dead_letter("hook", seq, &letter).unwrap();
        let silences = Arc::new(Silences::load(store.clone()).unwrap());
        let mut pruner = Pruner::new(store.clone(), silences, &state(Duration::from_secs(1)));
        let dead = |store: &Store| store.dead_letters("hook").unwrap().len();

        assert!(matches!(pruner.step().await, Ok(Next::After(PRUNE_EVERY))));
        assert_eq!(dead(&store), 1, "nothing pruned at the start");
        assert!(matches!(pruner.step().await, Ok(Next::After(PRUNE_EVERY))));
        assert_eq!(
            dead(&store),
            0,
            "a dead letter older than the retention is gone"
        );
    }
}
