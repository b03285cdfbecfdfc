//! Events: what the daemon tells sinks about, and the outbox entries that carry them.
//!
//! An [`Event`] is produced by the lifecycle tracker when a finding is new, recurs or is
//! resolved, or as a [`Summary`] on a first start. Its [`Event::id`] is the idempotency key: it is
//! derived only from what happened (fingerprint, kind, occurrence), so a re-poll after a crash
//! produces the same id and the outbox's enqueue guard drops the duplicate, and a sink gets the
//! same key on every retry (`webhook-id` for Standard Webhooks).
//!
//! These types are persisted (JSON, inside [`OutboxEntry`]) and sent (the webhook payload), so
//! they are versioned: [`EVENT_SCHEMA`] changes only with a migration.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::finding::{Domain, Finding, Resolution};

/// Version of the event / payload schema.
pub const EVENT_SCHEMA: u32 = 1;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// First seen.
    New,
    /// Seen again after it had been reported (an alert occurred again, a firewall record's
    /// `TryCount` grew).
    Recurring,
    /// Closed in Security Center (handled, fixed, ignored, expired) or gone from a snapshot.
    Resolved,
    /// First-start summary: how many findings of a source and domain are being tracked.
    Summary,
}

impl EventKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::New => "new",
            EventKind::Recurring => "recurring",
            EventKind::Resolved => "resolved",
            EventKind::Summary => "summary",
        }
    }
}

/// The first-start summary of one source and domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Findings now tracked silently.
    pub tracked: u64,
    /// Human sentence, e.g. "Tracking 42 open alerts in source prod".
    pub message: String,
}

/// One thing to tell sinks about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Schema version ([`EVENT_SCHEMA`]).
    pub schema: u32,
    /// Idempotency key: lowercase hex SHA-256 of what happened; stable across retries,
    /// re-polls and restarts.
    pub id: String,
    /// What happened.
    pub kind: EventKind,
    /// Configured source name.
    pub source: String,
    /// Domain.
    pub domain: Domain,
    /// When sasrelay observed it.
    #[serde(with = "time::serde::rfc3339")]
    pub observed_at: OffsetDateTime,
    /// For `resolved`: how (may differ from the finding's own field for `gone`).
    #[serde(default)]
    pub resolution: Option<Resolution>,
    /// The finding, for every kind but `summary`.
    #[serde(default)]
    pub finding: Option<Finding>,
    /// The summary, for `summary`.
    #[serde(default)]
    pub summary: Option<Summary>,
}

/// Idempotency key of an event: SHA-256 over length-prefixed parts, hex.
pub fn event_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(b"sasrelay/event/v1");
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

impl Event {
    /// An event about a finding. `occurrence` distinguishes repeated events of one kind for one
    /// finding (the occurrence time or try count for `recurring`; empty for `new`/`resolved`,
    /// which happen once per lifecycle — `generation` counts lifecycles, so a finding that
    /// re-opens after being resolved produces a fresh `new`).
    pub fn about(
        kind: EventKind,
        finding: Finding,
        generation: u64,
        occurrence: &str,
        resolution: Option<Resolution>,
        observed_at: OffsetDateTime,
    ) -> Event {
        let id = event_id(&[
            &finding.fingerprint,
            kind.as_str(),
            &generation.to_string(),
            occurrence,
        ]);
        Event {
            schema: EVENT_SCHEMA,
            id,
            kind,
            source: finding.source.clone(),
            domain: finding.domain,
            observed_at,
            resolution,
            finding: Some(finding),
            summary: None,
        }
    }

    /// The first-start summary of a source and domain. Its id depends on the source, domain
    /// and `epoch` (the store's creation id), so a restart never re-sends it.
    pub fn summary(
        source: &str,
        domain: Domain,
        tracked: u64,
        epoch: &str,
        observed_at: OffsetDateTime,
    ) -> Event {
        let noun = match domain {
            Domain::Alerts => "open alerts",
            Domain::Vulnerabilities => "open vulnerabilities",
            Domain::Baseline => "failing baseline checks",
            Domain::Firewall => "container-firewall alerts",
        };
        Event {
            schema: EVENT_SCHEMA,
            id: event_id(&["summary", source, domain.as_str(), epoch]),
            kind: EventKind::Summary,
            source: source.to_string(),
            domain,
            observed_at,
            resolution: None,
            finding: None,
            summary: Some(Summary {
                tracked,
                message: format!(
                    "sasrelay started tracking {tracked} {noun} in source {source}; from now on only changes are reported"
                ),
            }),
        }
    }
}

/// What an outbox entry delivers. A tagged enum so later kinds (a routed digest of many
/// events, a worker-folded backlog) are added without breaking stored entries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Payload {
    /// One event.
    Event(Event),
}

impl Payload {
    /// The idempotency key delivered with this payload.
    pub fn id(&self) -> &str {
        match self {
            Payload::Event(e) => &e.id,
        }
    }
}

/// Version of [`OutboxEntry`]'s stored form.
pub const OUTBOX_SCHEMA: u32 = 1;

/// One pending delivery to one sink, as stored in that sink's outbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Schema version ([`OUTBOX_SCHEMA`]).
    pub v: u32,
    /// What to deliver.
    pub payload: Payload,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it was enqueued (unix ms).
    pub enqueued_at_ms: i64,
    /// Not before (unix ms).
    pub next_attempt_at_ms: i64,
    /// Why the last attempt failed, if it did.
    #[serde(default)]
    pub last_error: Option<String>,
}

impl OutboxEntry {
    /// A fresh entry, due at once.
    pub fn new(payload: Payload, now_ms: i64) -> OutboxEntry {
        OutboxEntry {
            v: OUTBOX_SCHEMA,
            payload,
            attempts: 0,
            enqueued_at_ms: now_ms,
            next_attempt_at_ms: now_ms,
            last_error: None,
        }
    }
}

/// An entry moved aside after a permanent failure or after giving up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The entry as it was.
    pub entry: OutboxEntry,
    /// Why it was given up (unix ms).
    pub dead_at_ms: i64,
    /// Why.
    pub reason: String,
    /// The sink's last response (status line and a bounded body), when there was one.
    #[serde(default)]
    pub last_response: Option<String>,
}
