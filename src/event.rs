//! Events: what the daemon tells sinks about, and the outbox entries that carry them.
//!
//! An [`Event`] is produced by the lifecycle tracker when a finding is new, recurs or is
//! resolved, or as a [`Summary`] on a first start. Its [`Event::id`] is the idempotency key: it is
//! derived only from what happened (fingerprint, kind, occurrence), so a re-poll after a crash
//! produces the same id and the outbox's enqueue guard drops the duplicate, and a sink gets the
//! same key on every retry (`webhook-id` for Standard Webhooks).
//!
//! A [`HealthEvent`] is a meta-event: sasrelay telling the same sinks about itself (a source
//! that cannot read a domain, credentials about to expire, a sink that does not deliver). Its
//! id derives from the condition, its episode and when it changed, so a restart never sends it
//! twice.
//!
//! These types are persisted (JSON, inside [`OutboxEntry`]) and sent (the webhook payload), so
//! they are versioned: [`EVENT_SCHEMA`] changes only with a migration.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::finding::{Domain, Finding, Resolution, Severity};

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
    /// Still open after a route's `repeat_interval` (a reminder).
    Reminder,
}

impl EventKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::New => "new",
            EventKind::Recurring => "recurring",
            EventKind::Resolved => "resolved",
            EventKind::Summary => "summary",
            EventKind::Reminder => "reminder",
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
    /// Sent by a replica that took over from a leader which may already have sent it: the
    /// same id as before, said in every rendering (`shared/scale-out.md` §3).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub possible_repeat: bool,
    /// For `resolved`: who closed it through sasrelay (`sasrelay handle`, a chat action), as
    /// the audit log says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_by: Option<HandledBy>,
}

/// Who handled a finding through sasrelay, and how ([`crate::store::AuditEntry`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandledBy {
    /// The OS user of `sasrelay handle`, or a chat identity.
    pub who: String,
    /// `cli` or `chat`.
    pub via: String,
    /// `ignore`, `whitelist`, `handled`.
    pub action: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
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

/// The id of [`Event::about`]'s event: so the `new` of a finding's lifecycle can be named
/// from its `resolved` (occurrence empty).
pub fn finding_event_id(
    fingerprint: &str,
    kind: EventKind,
    generation: u64,
    occurrence: &str,
) -> String {
    event_id(&[
        fingerprint,
        kind.as_str(),
        &generation.to_string(),
        occurrence,
    ])
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
        let id = finding_event_id(&finding.fingerprint, kind, generation, occurrence);
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
            possible_repeat: false,
            handled_by: None,
        }
    }

    /// When what this event reports happened, on Security Center's clock (unix ms): the time
    /// key its listing is windowed and sorted by — an alert's latest occurrence, or its
    /// handling time (`OperateTime`) once handled; a firewall record's last time; a
    /// vulnerability's first detection (`FirstTs`) and a baseline risk's last detection for
    /// a `new`. `None` for what has no such time: a snapshot's resolution, a summary, a
    /// reminder. The handoff between replicas orders events by it ([`crate::ha::ledger`]).
    pub fn activity_ms(&self) -> Option<i64> {
        let f = self.finding.as_ref()?;
        let ms =
            |t: Option<OffsetDateTime>| t.map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
        match (self.domain, self.kind) {
            (_, EventKind::Summary | EventKind::Reminder) => None,
            (Domain::Alerts, EventKind::Resolved) => f.raw.get("OperateTime").and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            }),
            (Domain::Alerts | Domain::Firewall, _) => ms(f.last_seen),
            (Domain::Vulnerabilities | Domain::Baseline, EventKind::New) => {
                ms(f.first_seen.or(f.last_seen))
            }
            (Domain::Vulnerabilities | Domain::Baseline, _) => None,
        }
    }

    /// A reminder that `original`'s finding is still open: the `sent`-th (from 1) for this
    /// sink and route since `original` was delivered. Its id depends on the finding, its
    /// generation, `original`'s id (a recurrence restarts the count under a new id), the
    /// route, the sink and the number, so a re-sent reminder after a crash is recognised.
    pub fn reminder(
        original: &Event,
        generation: u64,
        route: &str,
        sink: &str,
        sent: u64,
        observed_at: OffsetDateTime,
    ) -> Event {
        let fingerprint = original
            .finding
            .as_ref()
            .map_or(original.id.as_str(), |f| f.fingerprint.as_str());
        Event {
            schema: EVENT_SCHEMA,
            id: event_id(&[
                fingerprint,
                "reminder",
                &generation.to_string(),
                &original.id,
                route,
                sink,
                &sent.to_string(),
            ]),
            kind: EventKind::Reminder,
            source: original.source.clone(),
            domain: original.domain,
            observed_at,
            resolution: None,
            finding: original.finding.clone(),
            summary: None,
            possible_repeat: false,
            handled_by: None,
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
            possible_repeat: false,
            handled_by: None,
        }
    }
}

/// Several events delivered as one message: a routing group (`group_by`, `group_wait`), or a
/// backlog a sink worker folded because it exceeded the sink's rate budget.
///
/// `events` holds every member in full (a webhook gets all of them); chat renderings list the
/// first few and count the rest. Each member event is in exactly one digest per sink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Digest {
    /// Schema version ([`EVENT_SCHEMA`]).
    pub schema: u32,
    /// Idempotency key, derived from the group and its member ids ([`Digest::new`]).
    pub id: String,
    /// The route that grouped it (its name or path, e.g. `route[1].routes[0]`); `backlog` for
    /// a folded backlog.
    pub route: String,
    /// The `group_by` labels and their values for this group, e.g. `cluster = c-prod`.
    #[serde(default)]
    pub group: std::collections::BTreeMap<String, String>,
    /// When the digest was closed.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The members, in arrival order.
    pub events: Vec<Event>,
}

/// How many members of a digest fall in each bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DigestCounts {
    /// By event kind.
    pub by_kind: std::collections::BTreeMap<EventKind, u64>,
    /// By domain.
    pub by_domain: std::collections::BTreeMap<Domain, u64>,
    /// By severity of the finding, highest first when iterated in reverse.
    pub by_severity: std::collections::BTreeMap<Severity, u64>,
}

impl Digest {
    /// A digest of `events`; its id is derived from the route, the group and the member ids,
    /// so closing the same members again yields the same id.
    pub fn new(
        route: &str,
        group: std::collections::BTreeMap<String, String>,
        events: Vec<Event>,
        created_at: OffsetDateTime,
    ) -> Digest {
        let mut parts: Vec<&str> = vec!["digest", route];
        for (k, v) in &group {
            parts.push(k);
            parts.push(v);
        }
        parts.extend(events.iter().map(|e| e.id.as_str()));
        Digest {
            schema: EVENT_SCHEMA,
            id: event_id(&parts),
            route: route.to_string(),
            group,
            created_at,
            events,
        }
    }

    /// Member counts by kind, domain and severity.
    pub fn counts(&self) -> DigestCounts {
        let mut c = DigestCounts::default();
        for e in &self.events {
            *c.by_kind.entry(e.kind).or_default() += 1;
            *c.by_domain.entry(e.domain).or_default() += 1;
            if let Some(f) = &e.finding {
                *c.by_severity.entry(f.severity).or_default() += 1;
            }
        }
        c
    }

    /// One plain-text line summarising the digest, e.g. "12 new vulnerabilities in cluster
    /// c-prod: 3 high, 9 medium". Untrusted text (group values) is included as is; renderers
    /// escape it.
    pub fn headline(&self) -> String {
        let c = self.counts();
        let n = self.events.len();
        let kind = match c.by_kind.keys().collect::<Vec<_>>().as_slice() {
            [EventKind::Reminder] => "still-open ".to_string(),
            [k] if **k != EventKind::Summary => format!("{} ", k.as_str()),
            _ => String::new(),
        };
        let what = match c.by_domain.keys().collect::<Vec<_>>().as_slice() {
            [Domain::Alerts] => plural(n, "alert", "alerts"),
            [Domain::Vulnerabilities] => plural(n, "vulnerability", "vulnerabilities"),
            [Domain::Baseline] => plural(n, "baseline risk", "baseline risks"),
            [Domain::Firewall] => {
                plural(n, "container-firewall alert", "container-firewall alerts")
            }
            _ => plural(n, "finding", "findings"),
        };
        let mut line = format!("{n} {kind}{what}");
        if !self.group.is_empty() {
            let scope: Vec<String> = self
                .group
                .iter()
                .map(|(k, v)| format!("{k} {}", if v.is_empty() { "(none)" } else { v }))
                .collect();
            line.push_str(" in ");
            line.push_str(&scope.join(", "));
        }
        if !c.by_severity.is_empty() {
            let sev: Vec<String> = c
                .by_severity
                .iter()
                .rev()
                .map(|(s, k)| format!("{k} {}", s.as_str()))
                .collect();
            line.push_str(": ");
            line.push_str(&sev.join(", "));
        }
        line
    }
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// A condition sasrelay watches in itself; one meta-event opens and one closes each episode.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "condition", rename_all = "snake_case")]
pub enum HealthCondition {
    /// A source cannot read a domain: it never succeeded, or it has failed for longer than
    /// `[health] blind_after` poll intervals.
    SourceBlind {
        /// The configured source.
        source: String,
        /// The domain it cannot read.
        domain: Domain,
    },
    /// A source's credential expires soon (or has expired) and refreshing it fails.
    CredentialsExpiring {
        /// The configured source.
        source: String,
    },
    /// A sink's oldest pending entry is older than `[health] outbox_max_age`.
    SinkStalled {
        /// The configured sink.
        sink: String,
    },
}

impl HealthCondition {
    /// The condition's name: `source_blind`, `credentials_expiring`, `sink_stalled`.
    pub fn name(&self) -> &'static str {
        match self {
            HealthCondition::SourceBlind { .. } => "source_blind",
            HealthCondition::CredentialsExpiring { .. } => "credentials_expiring",
            HealthCondition::SinkStalled { .. } => "sink_stalled",
        }
    }

    /// A stable key naming the condition and what it is about, e.g.
    /// `source_blind/prod/alerts`: the store's episode key, and the root of the meta-events'
    /// ids and PagerDuty's dedup key.
    pub fn key(&self) -> String {
        match self {
            HealthCondition::SourceBlind { source, domain } => {
                format!("source_blind/{source}/{}", domain.as_str())
            }
            HealthCondition::CredentialsExpiring { source } => {
                format!("credentials_expiring/{source}")
            }
            HealthCondition::SinkStalled { sink } => format!("sink_stalled/{sink}"),
        }
    }

    /// The source it is about, if any.
    pub fn source(&self) -> Option<&str> {
        match self {
            HealthCondition::SourceBlind { source, .. }
            | HealthCondition::CredentialsExpiring { source } => Some(source),
            HealthCondition::SinkStalled { .. } => None,
        }
    }

    /// The domain it is about, if any.
    pub fn domain(&self) -> Option<Domain> {
        match self {
            HealthCondition::SourceBlind { domain, .. } => Some(*domain),
            _ => None,
        }
    }

    /// The sink it is about, if any.
    pub fn sink(&self) -> Option<&str> {
        match self {
            HealthCondition::SinkStalled { sink } => Some(sink),
            _ => None,
        }
    }
}

/// Whether a meta-event opens or closes its episode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// The condition holds.
    Firing,
    /// The condition no longer holds.
    Resolved,
}

impl HealthStatus {
    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Firing => "firing",
            HealthStatus::Resolved => "resolved",
        }
    }
}

/// A meta-event: sasrelay's own health, sent through the outbox like every event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthEvent {
    /// Schema version ([`EVENT_SCHEMA`]).
    pub schema: u32,
    /// Idempotency key ([`HealthEvent::new`]): one per (condition, episode, status, since).
    pub id: String,
    /// Firing or resolved.
    pub status: HealthStatus,
    /// What it is about.
    #[serde(flatten)]
    pub condition: HealthCondition,
    /// Which episode of the condition (1, 2, … over the store's life).
    pub episode: u64,
    /// When the episode began.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// When sasrelay saw the change.
    #[serde(with = "time::serde::rfc3339")]
    pub observed_at: OffsetDateTime,
    /// One sentence for people (names from the configuration; no text from outside).
    pub message: String,
    /// The last error behind it, control characters removed, when there is one. May hold
    /// text a remote service wrote: render it as text.
    #[serde(default)]
    pub detail: Option<String>,
}

impl HealthEvent {
    /// The meta-event of `condition`'s `episode` turning `status` at `since`. Its id depends
    /// on those four only (all stored with the episode), so a restart that finds the same
    /// episode open sends nothing new; `since` keeps two replicas' episodes of one condition
    /// (each counts its own) from sharing an id.
    pub fn new(
        condition: HealthCondition,
        episode: u64,
        status: HealthStatus,
        since: OffsetDateTime,
        observed_at: OffsetDateTime,
        message: String,
        detail: Option<String>,
    ) -> HealthEvent {
        HealthEvent {
            schema: EVENT_SCHEMA,
            id: event_id(&[
                "health",
                &condition.key(),
                &episode.to_string(),
                status.as_str(),
                &crate::clock::unix_ms(since).to_string(),
            ]),
            status,
            condition,
            episode,
            since,
            observed_at,
            message,
            detail,
        }
    }
}

/// Version of [`HealthEpisode`]'s stored form.
pub const EPISODE_SCHEMA: u32 = 1;

/// What the store keeps per health condition: its latest episode, whether it is still open,
/// and whether the meta-event of its latest change is in the outboxes yet. Written only when
/// the condition changes, so a restart finds the episode it left and sends nothing twice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthEpisode {
    /// Schema version ([`EPISODE_SCHEMA`]).
    pub v: u32,
    /// The condition.
    pub condition: HealthCondition,
    /// Its latest episode (1, 2, …).
    pub episode: u64,
    /// Whether the condition holds (the episode is open).
    pub open: bool,
    /// When the episode began (unix ms).
    pub since_ms: i64,
    /// When it opened or, once closed, when it closed (unix ms).
    pub changed_ms: i64,
    /// The meta-event of the latest change (firing when open, resolved when closed) is
    /// enqueued for every sink it goes to.
    pub announced: bool,
    /// The sentence of the latest change.
    pub message: String,
    /// The error behind it, when the episode opened.
    #[serde(default)]
    pub detail: Option<String>,
}

impl HealthEpisode {
    /// The meta-event announcing the episode's latest change, observed at `observed_at`.
    pub fn event(&self, observed_at: OffsetDateTime) -> HealthEvent {
        let at = |ms: i64| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .unwrap_or(observed_at)
        };
        HealthEvent::new(
            self.condition.clone(),
            self.episode,
            if self.open {
                HealthStatus::Firing
            } else {
                HealthStatus::Resolved
            },
            at(self.since_ms),
            observed_at,
            self.message.clone(),
            self.detail.clone(),
        )
    }
}

/// What an outbox entry delivers. A tagged enum so later kinds are added without breaking
/// stored entries: `{"type": "event", ...the event's fields}`. Serialised by serde's
/// internally tagged derive (the tag first); read by a visitor of its own, which takes the tag
/// when it comes first and reads the rest straight into the variant, instead of buffering the
/// whole payload (raw item included) as serde's derive does — a fifth of a delivery's decode.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Payload {
    /// One event.
    Event(Box<Event>),
    /// Several events as one message.
    Digest(Digest),
    /// A meta-event about sasrelay itself; routes, silences and sink filters do not apply.
    Health(Box<HealthEvent>),
}

/// The `type` of a [`Payload`].
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum PayloadType {
    Event,
    Digest,
    Health,
}

impl PayloadType {
    fn read<'de, D: serde::Deserializer<'de>>(self, rest: D) -> Result<Payload, D::Error> {
        Ok(match self {
            PayloadType::Event => Payload::Event(Box::new(Event::deserialize(rest)?)),
            PayloadType::Digest => Payload::Digest(Digest::deserialize(rest)?),
            PayloadType::Health => Payload::Health(Box::new(HealthEvent::deserialize(rest)?)),
        })
    }
}

/// Reads a [`Payload`]: the tag first, then the rest of the map as that variant; a map whose
/// tag comes later (never written by sasrelay, but valid JSON) is gathered first.
struct PayloadVisitor;

impl<'de> serde::de::Visitor<'de> for PayloadVisitor {
    type Value = Payload;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a payload object with a `type`")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Payload, A::Error> {
        use serde::de::Error as _;
        let Some(first) = map.next_key::<String>()? else {
            return Err(A::Error::missing_field("type"));
        };
        if first == "type" {
            let kind: PayloadType = map.next_value()?;
            return kind.read(serde::de::value::MapAccessDeserializer::new(map));
        }
        let mut object = serde_json::Map::new();
        object.insert(first, map.next_value()?);
        while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
            object.insert(k, v);
        }
        let kind = object
            .remove("type")
            .ok_or_else(|| A::Error::missing_field("type"))?;
        let kind = PayloadType::deserialize(kind).map_err(A::Error::custom)?;
        kind.read(serde_json::Value::Object(object))
            .map_err(A::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Payload, D::Error> {
        d.deserialize_map(PayloadVisitor)
    }
}

impl From<Event> for Payload {
    fn from(e: Event) -> Payload {
        Payload::Event(Box::new(e))
    }
}

impl From<Digest> for Payload {
    fn from(d: Digest) -> Payload {
        Payload::Digest(d)
    }
}

impl From<HealthEvent> for Payload {
    fn from(h: HealthEvent) -> Payload {
        Payload::Health(Box::new(h))
    }
}

impl Payload {
    /// The idempotency key delivered with this payload.
    pub fn id(&self) -> &str {
        match self {
            Payload::Event(e) => &e.id,
            Payload::Digest(d) => &d.id,
            Payload::Health(h) => &h.id,
        }
    }

    /// Marks every finding event it carries as a possible repeat (a replica that took over
    /// delivers what an earlier term of its own left in the outbox).
    pub fn flag_possible_repeat(&mut self) {
        match self {
            Payload::Event(e) => e.possible_repeat = true,
            Payload::Digest(d) => d.events.iter_mut().for_each(|e| e.possible_repeat = true),
            Payload::Health(_) => {}
        }
    }

    /// The finding events this payload carries (one, or a digest's members; none for a
    /// meta-event).
    pub fn events(&self) -> &[Event] {
        match self {
            Payload::Event(e) => std::slice::from_ref(e),
            Payload::Digest(d) => &d.events,
            Payload::Health(_) => &[],
        }
    }

    /// The findings this payload is about, as keys of a sink's delivery order: source and
    /// fingerprint of each finding it carries (a digest's every member), one key shared by
    /// every meta-event, none for a summary. A sink sends an entry only once no earlier entry
    /// of its outbox holds one of its keys, so events about one finding reach it in the order
    /// they were enqueued — a `resolved` never overtakes its `new`. Pure.
    pub fn order_keys(&self) -> Vec<String> {
        match self {
            Payload::Health(_) => vec!["health".to_string()],
            Payload::Event(_) | Payload::Digest(_) => self
                .events()
                .iter()
                .filter_map(|e| {
                    let f = e.finding.as_ref()?;
                    Some(format!("{}\u{1f}{}", e.source, f.fingerprint))
                })
                .collect(),
        }
    }

    /// [`Payload::order_keys`] as stable 64-bit hashes (FNV-1a), what the store keeps per
    /// outbox entry. Two keys sharing a hash only make one entry wait for the other.
    pub fn order_hashes(&self) -> Vec<u64> {
        let mut hashes: Vec<u64> = self.order_keys().iter().map(|k| fnv1a(k)).collect();
        hashes.sort_unstable();
        hashes.dedup();
        hashes
    }
}

/// FNV-1a, 64 bits: stable across builds and restarts (unlike `std`'s hasher), which a value
/// kept on disk needs.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
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
    /// Set when the store could not read the entry back (its payload damaged or gone, its
    /// stored value undecodable): what failed. `entry` then holds what was readable, and an
    /// empty digest stands in for the payload (under the payload's id when it is known), so
    /// the letter can be listed and discarded; it is never replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// Which event kinds a domain emits (config `events`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventSwitches {
    /// Emit `new`.
    pub new: bool,
    /// Emit `resolved`.
    pub resolved: bool,
    /// Emit `recurring`.
    pub recurring: bool,
}

impl Default for EventSwitches {
    /// `new` and `resolved`; `recurring` is opt-in.
    fn default() -> Self {
        EventSwitches {
            new: true,
            resolved: true,
            recurring: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, domain: Domain, severity: Severity) -> Event {
        let finding = Finding {
            domain,
            id: id.into(),
            fingerprint: format!("fp-{id}"),
            severity,
            native_severity: String::new(),
            status: crate::finding::Status::Active,
            resolution: None,
            native_status: String::new(),
            title: format!("finding {id}"),
            description: String::new(),
            alert_type: String::new(),
            kubernetes: Default::default(),
            host: Default::default(),
            first_seen: None,
            last_seen: None,
            details: vec![],
            links: vec![],
            cves: vec![],
            tactics: vec![],
            source: "prod".into(),
            region: "cn-hangzhou".into(),
            raw: serde_json::Value::Null.into(),
        };
        Event::about(
            EventKind::New,
            finding,
            0,
            "",
            None,
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn payloads_read_back_whatever_the_tag_position() {
        let mut e = event("1", Domain::Alerts, Severity::High);
        if let Some(f) = e.finding.as_mut() {
            f.raw = serde_json::json!({"Name": "x", "Nested": {"type": "not the tag"}}).into();
        }
        let now = OffsetDateTime::UNIX_EPOCH;
        let health = HealthEvent::new(
            HealthCondition::SinkStalled {
                sink: "hook".into(),
            },
            3,
            HealthStatus::Firing,
            now,
            now,
            "stalled".into(),
            None,
        );
        let digest = Digest::new("r", Default::default(), vec![e.clone()], now);
        for p in [
            Payload::from(e),
            Payload::from(digest),
            Payload::from(health),
        ] {
            let text = serde_json::to_string(&p).unwrap();
            assert!(text.starts_with("{\"type\":"), "{text}");
            assert_eq!(serde_json::from_str::<Payload>(&text).unwrap(), p);
            // The tag last: the gathering path reads the same payload.
            let mut v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&text).unwrap();
            let tag = v.remove("type").unwrap();
            v.insert("type".into(), tag);
            let moved = serde_json::to_string(&v).unwrap();
            assert!(!moved.starts_with("{\"type\":"), "{moved}");
            assert_eq!(serde_json::from_str::<Payload>(&moved).unwrap(), p);
        }
        let e = serde_json::from_str::<Payload>(r#"{"id": "x"}"#).unwrap_err();
        assert!(e.to_string().contains("type"), "{e}");
        let e = serde_json::from_str::<Payload>(r#"{"type": "fax"}"#).unwrap_err();
        assert!(e.to_string().contains("fax"), "{e}");
        let e = serde_json::from_str::<Payload>(r#"{}"#).unwrap_err();
        assert!(e.to_string().contains("type"), "{e}");
    }

    #[test]
    fn digest_headline_counts_kinds_domains_and_severities() {
        let group = [("cluster".to_string(), "c-prod".to_string())].into();
        let events = vec![
            event("1", Domain::Vulnerabilities, Severity::High),
            event("2", Domain::Vulnerabilities, Severity::Medium),
            event("3", Domain::Vulnerabilities, Severity::High),
        ];
        let d = Digest::new("routes[0]", group, events, OffsetDateTime::UNIX_EPOCH);
        assert_eq!(
            d.headline(),
            "3 new vulnerabilities in cluster c-prod: 2 high, 1 medium"
        );
        let mixed = Digest::new(
            "backlog",
            Default::default(),
            vec![
                event("1", Domain::Alerts, Severity::Critical),
                event("2", Domain::Baseline, Severity::Low),
            ],
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(mixed.headline(), "2 new findings: 1 critical, 1 low");
    }

    #[test]
    fn digest_id_depends_on_route_group_and_members_only() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let a = || vec![event("1", Domain::Alerts, Severity::High)];
        let g = || [("cluster".to_string(), "c1".to_string())].into();
        let base = Digest::new("r", g(), a(), at);
        assert_eq!(
            base.id,
            Digest::new("r", g(), a(), at + time::Duration::hours(1)).id
        );
        assert_ne!(base.id, Digest::new("r2", g(), a(), at).id);
        assert_ne!(base.id, Digest::new("r", Default::default(), a(), at).id);
        let mut more = a();
        more.push(event("2", Domain::Alerts, Severity::High));
        assert_ne!(base.id, Digest::new("r", g(), more, at).id);
    }
}
