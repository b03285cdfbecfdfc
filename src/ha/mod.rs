//! High availability (issue 18): two replicas, one leader. The election
//! ([`lease::Elector`]) runs on any [`LeaseBackend`] and the epoch-fenced checkpoint on any
//! [`checkpoint::CheckpointStore`]: on the Kubernetes API server ([`kube`]: token, CA,
//! `GET`/`POST`/`PUT`) a `coordination.k8s.io/v1` Lease ([`lease::KubeLease`]) and a ConfigMap
//! ([`checkpoint::CheckpointApi`]); on PostgreSQL a lease row and a checkpoint row
//! ([`postgres`]). What the checkpoint holds and what a successor decides from it is
//! [`ledger`]; a term as the pipeline sees it is [`Term`]; `[ha]` is [`config`]. The daemon's
//! side (a term's takeover, its parts, stepping down) is `daemon::ha`.
//!
//! The semantics are client-go's (`tools/leaderelection`), which `shared/scale-out.md` chose
//! over the two maintained crates (both judge expiry by comparing the holder's wall clock with
//! ours, and one acquires with a merge patch that two candidates can both win):
//! - a lease is expired when the record a candidate observed has not changed for
//!   `lease_duration`, measured on the candidate's own monotonic clock from the moment it saw
//!   the change — never by comparing `renewTime` with the local wall clock, so clock offset
//!   between replicas does not matter;
//! - every write is a `PUT` carrying the `resourceVersion` read, so of two candidates that
//!   both saw the lease expire exactly one wins (the API server refuses the other with 409);
//! - `leaseTransitions` counts changes of holder: it is the epoch that fences an old leader;
//! - a leader that cannot renew within `renew_deadline` (shorter than `lease_duration`) stops
//!   leading before any other candidate can consider the lease expired; on shutdown it
//!   releases the lease (empty holder) so a standby takes over at its next retry.

pub mod checkpoint;
pub mod config;
pub mod kube;
pub mod lease;
pub mod ledger;
pub mod postgres;

/// What one try for a lease ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// This candidate holds the lease, with this fencing epoch.
    Holding {
        /// Changes of holder so far.
        epoch: u64,
    },
    /// Another candidate holds it (named when known).
    HeldBy {
        /// The holder.
        holder: Option<String>,
    },
}

/// Where a lease lives (a Kubernetes Lease, a PostgreSQL row): one candidate's view of it.
/// [`lease::Elector`] keeps the leader's deadline and the loop; a backend makes one try at a
/// time and must never let two candidates hold at once (a compare-and-swap on the server),
/// bump the epoch on every change of holder, and judge expiry without comparing the
/// holder's wall clock with ours.
pub trait LeaseBackend: Send + 'static {
    /// Why a call failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// What and where, for logs (`Lease sasrelay/sasrelay-main`).
    fn describe(&self) -> String;

    /// This candidate's name, unique among candidates.
    fn identity(&self) -> &str;

    /// One try: take the lease if it is free, released or expired, renew it if ours.
    fn try_acquire_or_renew(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Attempt, Self::Error>> + Send;

    /// Gives the lease up if this candidate holds it (the epoch stays).
    fn release(&mut self) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send;
}

/// A leadership term as the pipeline sees it: the ledger it keeps for the checkpoint (and,
/// after a takeover, the verdicts on what the old leader settled), and the gate every poll
/// and send checks. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Term {
    /// The term's ledger.
    pub handoff: std::sync::Arc<ledger::Handoff>,
    /// Open while the term leads.
    pub gate: lease::Gate,
    /// How stale the term's last stored checkpoint may be for it to go on sending after a
    /// delivery the checkpoint does not hold yet.
    pub max_lag: std::time::Duration,
    /// After a takeover, when the term began (unix ms): an outbox entry enqueued before it
    /// was left by an earlier term of this replica, and another leader may have sent it since
    /// its last checkpoint — it is delivered flagged as a possible repeat.
    pub leftovers_before_ms: Option<i64>,
}

impl Term {
    /// Whether the term may start a delivery now: it leads, and its checkpoint is fresh or
    /// holds every delivery so far ([`ledger::Handoff::recorded_within`]).
    pub fn may_send(&self) -> bool {
        self.gate.open() && self.handoff.recorded_within(self.max_lag)
    }
}
