//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics (the
//! parent module lists them).
//!
//! [`LeaseApi`] is the API server's Lease resource ([`super::kube`]): `GET`, `POST` (create;
//! 409 when it exists) and `PUT` with the `resourceVersion` read (409 when someone wrote in
//! between). [`Elector`] is one
//! candidate: [`Elector::try_acquire_or_renew`] is client-go's step of the same name, and
//! [`Elector::run`] loops it — every `retry` (with jitter) while standing by, and while
//! leading until a renew fails for `renew_deadline` — publishing its [`Role`] on a watch.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::kube::{ApiError, KubeApi};
use super::{Attempt, LeaseBackend};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// client-go's defaults: a lease lasts 15 s, a leader gives up after failing to renew for
/// 10 s, candidates and the leader try every 2 s (× up to 1.2, jitter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timings {
    /// How long a lease nobody renews stays held (`leaseDurationSeconds`).
    pub lease: Duration,
    /// How long a leader keeps failing to renew before it stops leading; shorter than
    /// `lease` so it stops before a standby may take over.
    pub renew_deadline: Duration,
    /// Time between tries.
    pub retry: Duration,
}

impl Default for Timings {
    fn default() -> Timings {
        Timings {
            lease: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

/// The Lease's `spec`, as the API server holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseRecord {
    /// Who holds it; empty or absent when released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_identity: Option<String>,
    /// How long it stays held without a renew, in whole seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_duration_seconds: Option<i64>,
    /// When the current holder acquired it (RFC 3339 with microseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquire_time: Option<String>,
    /// When the holder last renewed it. Informational: expiry is judged by when a candidate
    /// saw the record change, on its own clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_time: Option<String>,
    /// Changes of holder so far: the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_transitions: Option<u64>,
}

impl LeaseRecord {
    fn holder(&self) -> Option<&str> {
        self.holder_identity.as_deref().filter(|h| !h.is_empty())
    }

    fn transitions(&self) -> u64 {
        self.lease_transitions.unwrap_or(0)
    }
}

/// A Lease read from (or written to) the API server: its record and the version to write
/// against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// `metadata.resourceVersion`: a `PUT` naming another version is refused.
    pub resource_version: String,
    /// `spec`.
    pub record: LeaseRecord,
}

/// The Lease object on the wire (only what this client reads and writes).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    metadata: Metadata,
    #[serde(default)]
    spec: LeaseRecord,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource_version: Option<String>,
}

/// The API server's Lease resource `namespace/name`.
#[derive(Clone, Debug)]
pub struct LeaseApi {
    api: KubeApi,
    name: String,
}

impl LeaseApi {
    /// The Lease `name` in `api`'s namespace.
    pub fn new(api: KubeApi, name: &str) -> LeaseApi {
        LeaseApi {
            api,
            name: name.to_string(),
        }
    }

    /// `namespace/name`, for logs.
    pub fn describe(&self) -> String {
        self.api.describe(&self.name)
    }

    fn collection(&self) -> String {
        self.api.collection("apis/coordination.k8s.io/v1", "leases")
    }

    fn url(&self) -> String {
        format!("{}/{}", self.collection(), self.name)
    }

    /// The Lease, or `None` when it does not exist.
    pub async fn get(&self) -> Result<Option<Lease>, ApiError> {
        self.api
            .get(&self.url(), "lease read")
            .await?
            .map(|v| lease(v, "lease read"))
            .transpose()
    }

    /// Creates the Lease holding `record`; [`ApiError::Conflict`] when it exists.
    pub async fn create(&self, record: &LeaseRecord) -> Result<Lease, ApiError> {
        let body = self.wire(None, record);
        let v = self
            .api
            .create(&self.collection(), &body, "lease create")
            .await?;
        lease(v, "lease create")
    }

    /// Replaces the Lease's record if it is still at `resource_version`;
    /// [`ApiError::Conflict`] when it changed.
    pub async fn update(
        &self,
        resource_version: &str,
        record: &LeaseRecord,
    ) -> Result<Lease, ApiError> {
        let body = self.wire(Some(resource_version), record);
        let v = self.api.replace(&self.url(), &body, "lease update").await?;
        lease(v, "lease update")
    }

    fn wire(&self, resource_version: Option<&str>, record: &LeaseRecord) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": self.api.metadata(&self.name, resource_version),
            "spec": record,
        })
    }
}

/// The Lease in an answer.
fn lease(v: serde_json::Value, what: &'static str) -> Result<Lease, ApiError> {
    let wire: Wire = serde_json::from_value(v)
        .map_err(|e| ApiError::Setup(format!("the {what} answer is not a Lease: {e}")))?;
    Ok(Lease {
        resource_version: wire.metadata.resource_version.unwrap_or_default(),
        record: wire.spec,
    })
}

/// What a candidate is, as [`Elector::run`] publishes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not leading: another holds the lease (named when known), or none could be read yet.
    Standby {
        /// The holder last observed.
        holder: Option<String>,
    },
    /// Leading with `epoch` (the lease's transitions when acquired) until `deadline`, the
    /// local monotonic instant by which it must have stopped unless a renew moves it on.
    Leader {
        /// The fencing epoch.
        epoch: u64,
        /// Last successful renew's start + `renew_deadline`.
        deadline: Instant,
    },
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Leader { epoch, .. } => write!(f, "leader (epoch {epoch})"),
            Role::Standby { holder: Some(h) } => write!(f, "standby ({h} leads)"),
            Role::Standby { holder: None } => f.write_str("standby"),
        }
    }
}

impl Role {
    /// Leading at `now` (a leader past its deadline is not).
    pub fn leads_at(&self, now: Instant) -> bool {
        matches!(self, Role::Leader { deadline, .. } if now < *deadline)
    }
}

/// The Kubernetes Lease as a [`LeaseBackend`]: client-go's `tryAcquireOrRenew` on a
/// [`LeaseApi`], judging expiry by when this candidate saw the record change.
pub struct KubeLease {
    api: LeaseApi,
    identity: String,
    lease: Duration,
    /// The record last seen and when (on this clock) it was first seen in that state.
    observed: Option<(LeaseRecord, Instant)>,
}

impl KubeLease {
    /// Candidate `identity` (the pod name: unique among candidates) for the Lease behind
    /// `api`, held for `lease` without a renew.
    pub fn new(api: LeaseApi, identity: &str, lease: Duration) -> KubeLease {
        KubeLease {
            api,
            identity: identity.to_string(),
            lease,
            observed: None,
        }
    }

    fn won(&mut self, record: LeaseRecord, started: Instant) -> Attempt {
        let epoch = record.transitions();
        self.observed = Some((record, started));
        Attempt::Holding { epoch }
    }
}

impl LeaseBackend for KubeLease {
    type Error = ApiError;

    fn describe(&self) -> String {
        format!("Lease {}", self.api.describe())
    }

    fn identity(&self) -> &str {
        &self.identity
    }

    /// Reads the lease; takes it when it is absent, released, ours, or unchanged for `lease`
    /// since this candidate first saw it so; writes with the version read.
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, ApiError> {
        let started = Instant::now();
        let now = micro_time(time::OffsetDateTime::now_utc());
        let Some(current) = self.api.get().await? else {
            let record = LeaseRecord {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(whole_seconds(self.lease)),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
            };
            let created = self.api.create(&record).await?;
            return Ok(self.won(created.record, started));
        };
        let record = current.record;
        // A change counts from when its answer arrived (client-go's observedTime), so a slow
        // read never makes a lease look older than it is.
        let seen_at = match &self.observed {
            Some((r, at)) if *r == record => *at,
            _ => Instant::now(),
        };
        self.observed = Some((record.clone(), seen_at));
        let ours = record.holder() == Some(self.identity.as_str());
        if record.holder().is_some() && !ours && Instant::now().duration_since(seen_at) < self.lease
        {
            // Held by another, and renewed (changed) within a lease duration of our clock.
            return Ok(Attempt::HeldBy {
                holder: record.holder().map(str::to_string),
            });
        }
        let mut next = LeaseRecord {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(whole_seconds(self.lease)),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(record.transitions()),
        };
        if ours {
            next.acquire_time = record.acquire_time.clone();
        } else {
            next.lease_transitions = Some(record.transitions() + 1);
        }
        let written = self.api.update(&current.resource_version, &next).await?;
        Ok(self.won(written.record, started))
    }

    /// An empty holder, so a standby takes it at its next try. The epoch stays.
    async fn release(&mut self) -> Result<(), ApiError> {
        let Some(current) = self.api.get().await? else {
            return Ok(());
        };
        if current.record.holder() != Some(self.identity.as_str()) {
            return Ok(());
        }
        let now = micro_time(time::OffsetDateTime::now_utc());
        let released = LeaseRecord {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: current.record.lease_transitions,
        };
        self.api
            .update(&current.resource_version, &released)
            .await
            .map(|_| ())
    }
}

/// What a leader's work checks before every poll and every send: the role its term began
/// with (`epoch`) still holds, and its monotonic deadline has not passed. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Gate {
    role: watch::Receiver<Role>,
    epoch: u64,
}

impl Gate {
    /// The gate of the term that leads with `epoch`, following `role`.
    pub fn new(role: watch::Receiver<Role>, epoch: u64) -> Gate {
        Gate { role, epoch }
    }

    /// The term's deadline, while it still leads (a later renew moves it on).
    pub fn deadline(&self) -> Option<Instant> {
        match *self.role.borrow() {
            Role::Leader { epoch, deadline } if epoch == self.epoch => Some(deadline),
            _ => None,
        }
    }

    /// Leading now.
    pub fn open(&self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() < d)
    }

    /// The term's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// One candidate for a lease, on any [`LeaseBackend`]: it keeps the leader's monotonic
/// deadline (the start of the last successful try + `renew_deadline`) and loops.
pub struct Elector<B> {
    backend: B,
    timings: Timings,
    /// The holder the last try saw, while standing by.
    holder: Option<String>,
    /// While leading: the epoch and the start of the last successful write.
    leading: Option<(u64, Instant)>,
    /// Told the wall time (unix ms) of every successful try: a renew while leading, a read
    /// of the lease while standing by.
    on_success: Option<Box<dyn Fn(i64) + Send + Sync>>,
}

impl<B: LeaseBackend> Elector<B> {
    /// A candidate on `backend` with `timings`.
    pub fn new(backend: B, timings: Timings) -> Elector<B> {
        Elector {
            backend,
            timings,
            holder: None,
            leading: None,
            on_success: None,
        }
    }

    /// Calls `f` with the wall time (unix ms) of every successful try (the "last renew" of
    /// metrics and status).
    pub fn on_success(mut self, f: impl Fn(i64) + Send + Sync + 'static) -> Elector<B> {
        self.on_success = Some(Box::new(f));
        self
    }

    /// The role after the last step.
    pub fn role(&self) -> Role {
        match self.leading {
            Some((epoch, at)) => Role::Leader {
                epoch,
                deadline: at + self.timings.renew_deadline,
            },
            None => Role::Standby {
                holder: self.holder.clone(),
            },
        }
    }

    /// One try ([`LeaseBackend::try_acquire_or_renew`]). True when this candidate holds the
    /// lease now. A conflict or a failed call is an error and changes nothing (a leader's
    /// deadline stays where the last renew put it).
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, B::Error> {
        let started = Instant::now();
        match self.backend.try_acquire_or_renew().await? {
            Attempt::Holding { epoch } => {
                self.holder = Some(self.backend.identity().to_string());
                self.leading = Some((epoch, started));
                Ok(true)
            }
            Attempt::HeldBy { holder } => {
                self.holder = holder;
                self.leading = None;
                Ok(false)
            }
        }
    }

    /// Gives the lease up if this candidate holds it.
    pub async fn release(&mut self) -> Result<(), B::Error> {
        if self.leading.take().is_none() {
            return Ok(());
        }
        self.backend.release().await
    }

    /// Tries every `retry` (× 1–1.2) until `shutdown`, publishing the role on `role` after
    /// every change: a leader whose renews fail past its deadline publishes `Standby` at the
    /// deadline — even while a call still hangs. On `shutdown` a leader releases the lease.
    pub async fn run(mut self, role: watch::Sender<Role>, shutdown: CancellationToken) {
        let describe = self.backend.describe();
        let identity = self.backend.identity().to_string();
        loop {
            let attempt = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                r = self.step_within_deadline() => r,
            };
            match attempt {
                Err(e) => {
                    tracing::warn!(lease = %describe, identity = %identity, error = %e, "Lease try failed.")
                }
                Ok(_) => {
                    if let Some(f) = &self.on_success {
                        f(crate::clock::unix_ms(time::OffsetDateTime::now_utc()));
                    }
                }
            }
            let now = Instant::now();
            let mut current = self.role();
            if let Role::Leader { deadline, .. } = current
                && now >= deadline
            {
                tracing::error!(lease = %describe, identity = %identity, "Could not renew the lease within the renew deadline: stopping leading.");
                self.leading = None;
                current = self.role();
            }
            role.send_if_modified(|r| {
                if *r == current {
                    return false;
                }
                // A renew only moves the deadline on: published, not logged.
                let renewed = matches!((&*r, &current), (Role::Leader { epoch: a, .. }, Role::Leader { epoch: b, .. }) if a == b);
                if !renewed {
                    tracing::info!(lease = %describe, identity = %identity, role = %current, "Lease role changed.");
                }
                *r = current;
                true
            });
            let jitter = 1.0 + rand::random::<f64>() * 0.2;
            let wait = self.timings.retry.mul_f64(jitter);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        let was_leading = self.leading.is_some();
        role.send_replace(Role::Standby { holder: None });
        if was_leading {
            match self.release().await {
                Ok(()) => {
                    tracing::info!(lease = %describe, identity = %identity, "Released the lease.")
                }
                Err(e) => {
                    tracing::warn!(lease = %describe, identity = %identity, error = %e, "Could not release the lease; it expires on its own.")
                }
            }
        }
    }

    /// One try, cut short at the leader's deadline (a hanging call must not keep a leader
    /// that can no longer renew believing it leads).
    async fn step_within_deadline(&mut self) -> Result<bool, TryError<B::Error>> {
        let deadline = match self.role() {
            Role::Leader { deadline, .. } => deadline,
            Role::Standby { .. } => Instant::now() + self.timings.renew_deadline,
        };
        match tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await {
            Ok(r) => r.map_err(TryError::Backend),
            Err(_) => Err(TryError::NoAnswer),
        }
    }
}

/// Why one try of [`Elector::run`] failed.
#[derive(Debug, thiserror::Error)]
enum TryError<E> {
    #[error(transparent)]
    Backend(E),
    #[error("no answer before the renew deadline")]
    NoAnswer,
}

/// Whole seconds, at least 1.
fn whole_seconds(d: Duration) -> i64 {
    (d.as_secs() as i64).max(1)
}

/// Kubernetes `MicroTime`: RFC 3339 in UTC with exactly six fractional digits.
pub fn micro_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_time_has_six_fractional_digits() {
        let t = time::macros::datetime!(2026-12-06 02:40:05.5 UTC);
        assert_eq!(micro_time(t), "2026-12-06T02:40:05.500000Z");
    }

    #[test]
    fn a_lease_object_reads_and_writes_as_the_api_server_has_it() {
        let text = r#"{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"sasrelay-main","namespace":"sasrelay","resourceVersion":"812","uid":"x"},"spec":{"holderIdentity":"sasrelay-0","leaseDurationSeconds":15,"acquireTime":"2026-12-06T02:40:05.500000Z","renewTime":"2026-12-06T02:41:05.500000Z","leaseTransitions":3}}"#;
        let wire: Wire = serde_json::from_str(text).unwrap();
        assert_eq!(wire.metadata.resource_version.as_deref(), Some("812"));
        assert_eq!(wire.spec.holder(), Some("sasrelay-0"));
        assert_eq!(wire.spec.transitions(), 3);
        let back = serde_json::to_value(&wire).unwrap();
        assert_eq!(back["spec"]["leaseDurationSeconds"], 15);
        assert_eq!(back["metadata"]["resourceVersion"], "812");
        // A released lease: no holder, and an empty one reads the same.
        let released: LeaseRecord = serde_json::from_str(r#"{"holderIdentity":""}"#).unwrap();
        assert_eq!(released.holder(), None);
    }
}
