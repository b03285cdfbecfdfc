//! High availability (issue 18): two replicas, one leader. Built so far, the building blocks
//! on the Kubernetes API server ([`kube`]: token, CA, `GET`/`POST`/`PUT`): the election on a
//! `coordination.k8s.io/v1` Lease ([`lease`]) and the epoch-fenced checkpoint in a ConfigMap
//! ([`checkpoint`]). The daemon does not use them yet (next: gating polls and sends on the
//! leader's monotonic deadline, what the checkpoint holds, takeover).
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
pub mod kube;
pub mod lease;
