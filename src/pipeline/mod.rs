//! One finding's path through the daemon, in the order it travels. Read the files top to bottom
//! and you have followed a finding from Security Center to a sink's acknowledgement.
//!
//! ```text
//! sas::source ── one page of one domain, normalised into `Finding`s
//!      │
//! poller ─────── a window or snapshot per (source, domain); every Security Center call of the
//!      │         poll happens before its first write
//! lifecycle ──── pure: observations × known records → records and events (new, recurring,
//!      │         resolved), `explain_gone` for the vulnerabilities that left the list
//! dispatch ───── routing::Router::decide (pure) per event → a sink's outbox, a routing group,
//!      │         or the suppression log; written before the records, the flush and the cursor
//! grouper ────── due groups closed into one digest in the sink's outbox, crash-safely
//!      │
//! delivery ───── one worker per sink: due entry → one attempt → ack / reschedule / dead letter;
//!                a rate-limited backlog folded into digests
//! ```
//!
//! The poller, the grouper and the delivery worker are [`crate::task::Task`]s: each does one
//! step and says when it wants the next; the daemon's runner loops, backs off and stops them.
//!
//! [`metrics`] holds the counters these steps update; `daemon::metrics` renders them as
//! Prometheus text. [`pairs`] is what a baseline sweep keeps of its risk × asset pairs, so
//! the next one lists only those whose counts changed.

pub mod delivery;
pub mod dispatch;
pub mod grouper;
pub mod lifecycle;
pub mod metrics;
pub mod pairs;
pub mod poller;
