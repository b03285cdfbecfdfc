//! PagerDuty Events API v2 bodies: a [`Payload`] turned into the exact JSON the `pagerduty`
//! sink posts to `/v2/enqueue`. Pure: no IO, no clock.
//!
//! ## Mapping
//!
//! | payload | `event_action` | `dedup_key` | `payload.severity` |
//! |---|---|---|---|
//! | `new`, `recurring`, `reminder` event | `trigger` | `sasrelay:<fingerprint>` | [`SeverityMap`] of the finding's severity |
//! | `resolved` event | `resolve` (no `payload`) | `sasrelay:<fingerprint>` | — |
//! | `summary` event (first start) | `trigger` | `sasrelay:summary:<event id>` | `info` (never pages at high urgency) |
//! | digest (a grouping route) | `trigger` | `sasrelay:digest:<digest id>` | highest mapped severity of its unresolved members, else `info` |
//! | meta-event, firing | `trigger` | `sasrelay:health:<SHA-256 of the condition's key>` | `critical` for a blind source, else `error` |
//! | meta-event, resolved | `resolve` (no `payload`) | the same key | — |
//!
//! The dedup key of a finding depends on its fingerprint only, so the `resolve` closes the
//! alert the `trigger` opened and recurrences and reminders land on the same alert; once
//! resolved, a re-opened finding's `new` opens a fresh alert under the same key (PagerDuty's
//! rule). A key part that is not 1 to 128 ASCII alphanumerics (a tampered stored entry) is
//! replaced by its SHA-256, so nothing can change the key's shape; keys stay under 255
//! characters.
//!
//! A digest is **one** alert summarising its members, never one request per member: a
//! partially sent batch would be re-sent from its start on retry, and a member's `trigger`
//! repeated after its `resolve` would open a new incident. Its members' own alerts are not
//! touched, so routes with `group_by` should not target a PagerDuty sink (the sink never folds
//! a backlog into digests itself).
//!
//! ## Untrusted text
//!
//! Every string from a finding is one line: control characters become spaces, invisible
//! characters are dropped, whitespace runs collapse ([`escape::header_line`]), and URLs are
//! defanged ([`escape::text`]: `https:／／…`, `www．…`) — in the summary, `source`,
//! `component`, `group`, `class` and every custom detail alike, since PagerDuty makes links of
//! URLs wherever it shows text. Only `links[].href` and `client_url` are URLs, and only
//! sasrelay's own. Lengths are capped per field
//! (`summary` ≤ 1024 characters, PagerDuty's limit, cut on a character boundary) and the
//! serialised body is kept under [`MAX_BODY_BYTES`] (PagerDuty accepts 512 KB) by dropping the
//! bulky `custom_details` first. Links come only from [`Finding::links`], re-checked with
//! [`checked_url`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::view::{digest_headline, event_headline, link_label, links, rfc3339};
use super::{Lang, checked_url, escape};
use crate::event::{Digest, Event, EventKind, HealthCondition, HealthEvent, HealthStatus, Payload};
use crate::finding::{Finding, Severity};
use crate::text::clip;

/// Longest `payload.summary`, in characters (PagerDuty's limit).
pub const MAX_SUMMARY: usize = 1024;
/// Longest `dedup_key` PagerDuty accepts.
pub const MAX_DEDUP_KEY: usize = 255;
/// Largest body sasrelay sends; PagerDuty accepts 512 KB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// `client` of every trigger.
pub const CLIENT: &str = "sasrelay";
/// Prefix of every dedup key.
pub const KEY_PREFIX: &str = "sasrelay:";
/// Characters of a free-text custom detail (title, description, detail value).
const MAX_TEXT: usize = 1000;
/// Characters of an identifier (source, component, group, class, Kubernetes and host values).
const MAX_ID: usize = 255;
/// Detail rows, CVEs and links carried.
const MAX_DETAILS: usize = 30;
const MAX_LIST: usize = 50;
const MAX_LINKS: usize = 10;
/// Digest members listed in `custom_details`.
const MAX_MEMBERS: usize = 20;

/// A PagerDuty alert severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PdSeverity {
    /// `info`.
    Info,
    /// `warning`.
    Warning,
    /// `error`.
    Error,
    /// `critical`.
    Critical,
}

impl PdSeverity {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PdSeverity::Info => "info",
            PdSeverity::Warning => "warning",
            PdSeverity::Error => "error",
            PdSeverity::Critical => "critical",
        }
    }
}

/// `severity_map = { high = "critical" }`: sasrelay severity → PagerDuty severity; absent keys
/// keep the default ([`SeverityMap::default_for`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityMap {
    /// For `critical` findings (alerts `serious`).
    #[serde(default)]
    pub critical: Option<PdSeverity>,
    /// For `high` (alerts `suspicious`, vulnerabilities `asap`, baseline high, firewall 3).
    #[serde(default)]
    pub high: Option<PdSeverity>,
    /// For `medium` (alerts `remind`, vulnerabilities `later`, …).
    #[serde(default)]
    pub medium: Option<PdSeverity>,
    /// For `low`.
    #[serde(default)]
    pub low: Option<PdSeverity>,
    /// For `info`.
    #[serde(default)]
    pub info: Option<PdSeverity>,
}

impl SeverityMap {
    /// The default: `critical`→critical, `high`→error, `medium`→warning, `low` and
    /// `info`→info. So a `serious` alert is critical and a `suspicious` one error, as the
    /// protocol notes suggest, and only those two reach PagerDuty's high-urgency severities.
    pub fn default_for(s: Severity) -> PdSeverity {
        match s {
            Severity::Critical => PdSeverity::Critical,
            Severity::High => PdSeverity::Error,
            Severity::Medium => PdSeverity::Warning,
            Severity::Low | Severity::Info => PdSeverity::Info,
        }
    }

    /// The PagerDuty severity of `s`.
    pub fn get(&self, s: Severity) -> PdSeverity {
        let over = match s {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
            Severity::Info => self.info,
        };
        over.unwrap_or_else(|| Self::default_for(s))
    }
}

/// `s` when it is 1 to 128 ASCII alphanumerics, else its SHA-256 (hex): a dedup key keeps
/// its shape whatever a stored entry holds.
fn key_part(s: &str) -> String {
    if !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        s.to_string()
    } else {
        hex::encode(Sha256::digest(s.as_bytes()))
    }
}

/// The dedup key of a finding: `sasrelay:<fingerprint>`.
pub fn finding_key(f: &Finding) -> String {
    format!("{KEY_PREFIX}{}", key_part(&f.fingerprint))
}

/// The dedup key of one event: its finding's ([`finding_key`]), or `sasrelay:summary:<id>`
/// for a summary (and an event without a finding).
pub fn event_key(e: &Event) -> String {
    match &e.finding {
        Some(f) => finding_key(f),
        None => format!("{KEY_PREFIX}summary:{}", key_part(&e.id)),
    }
}

/// The dedup key of a meta-event's condition: `sasrelay:health:<SHA-256 of its key>`, the
/// same for every episode, so a `resolve` closes what the `trigger` opened.
pub fn health_key(c: &HealthCondition) -> String {
    format!("{KEY_PREFIX}health:{}", key_part(&c.key()))
}

/// The dedup key of a digest: `sasrelay:digest:<id>`.
pub fn digest_key(d: &Digest) -> String {
    format!("{KEY_PREFIX}digest:{}", key_part(&d.id))
}

/// Untrusted text as one clean line of at most `max` characters, URLs defanged.
fn line(s: &str, max: usize) -> String {
    escape::header_line(&escape::text(s), max)
}

/// The first candidate that is not empty once cleaned.
fn first_clean<'a>(candidates: impl IntoIterator<Item = Option<&'a str>>) -> Option<String> {
    candidates
        .into_iter()
        .flatten()
        .map(|s| line(s, MAX_ID))
        .find(|s| !s.is_empty())
}

/// The exact body for `payload`. `routing_key` is placed as given (the sink checked it).
pub fn render(payload: &Payload, routing_key: &str, map: &SeverityMap) -> Value {
    let body = match payload {
        Payload::Event(e) => event_body(e, map),
        Payload::Digest(d) => digest_body(d, map),
        Payload::Health(h) => health_body(h),
    };
    let mut out = Map::new();
    out.insert("routing_key".into(), Value::from(routing_key));
    if let Value::Object(o) = fit(body) {
        out.extend(o);
    }
    Value::Object(out)
}

fn event_body(e: &Event, map: &SeverityMap) -> Value {
    let dedup_key = event_key(e);
    let Some(f) = &e.finding else {
        return summary_body(e, dedup_key);
    };
    if e.kind == EventKind::Resolved {
        return json!({"event_action": "resolve", "dedup_key": dedup_key});
    }
    let k = &f.kubernetes;
    let h = &f.host;
    let source = first_clean([
        h.instance_id.as_deref(),
        h.instance_name.as_deref(),
        k.node.as_deref(),
        k.cluster_name.as_deref(),
        k.cluster_id.as_deref(),
        Some(e.source.as_str()),
    ])
    .unwrap_or_else(|| CLIENT.into());
    let workload = first_clean([
        k.app.as_deref(),
        k.pod.as_deref(),
        k.container_name.as_deref(),
        k.image.as_deref(),
    ]);
    let component = match (first_clean([k.namespace.as_deref()]), workload) {
        // Defanged again once joined: `https:` and `/evil.example` make a URL.
        (Some(ns), Some(w)) => Some(clip(&escape::defang(&format!("{ns}/{w}")), MAX_ID)),
        (ns, w) => w.or(ns),
    };
    let group = first_clean([k.cluster_name.as_deref(), k.cluster_id.as_deref()]);
    let alert_type = line(&f.alert_type, MAX_ID);
    let class = if alert_type.is_empty() {
        e.domain.as_str().to_string()
    } else {
        clip(&format!("{}/{alert_type}", e.domain.as_str()), MAX_ID)
    };
    let at = match e.kind {
        EventKind::Reminder => e.observed_at,
        _ => f.last_seen.unwrap_or(e.observed_at),
    };
    let mut p = Map::new();
    p.insert(
        "summary".into(),
        summary_line(&event_headline(e, Lang::En)).into(),
    );
    p.insert("source".into(), source.into());
    p.insert("severity".into(), map.get(f.severity).as_str().into());
    p.insert("timestamp".into(), rfc3339(at).into());
    if let Some(c) = component {
        p.insert("component".into(), c.into());
    }
    if let Some(g) = group {
        p.insert("group".into(), g.into());
    }
    p.insert("class".into(), class.into());
    p.insert("custom_details".into(), finding_details(e, f));
    let link_list: Vec<Value> = links(f, MAX_LINKS)
        .into_iter()
        .map(|(kind, label, url)| {
            json!({"href": url, "text": line(&link_label(kind, &label, Lang::En), MAX_ID)})
        })
        .collect();
    let mut body = Map::new();
    body.insert("event_action".into(), "trigger".into());
    body.insert("dedup_key".into(), dedup_key.into());
    body.insert("payload".into(), Value::Object(p));
    if !link_list.is_empty() {
        body.insert("links".into(), Value::Array(link_list));
    }
    body.insert("client".into(), CLIENT.into());
    if let Some(url) = f
        .links
        .iter()
        .find(|l| l.kind == crate::finding::LinkKind::Console)
        .and_then(|l| checked_url(&l.url))
    {
        body.insert("client_url".into(), url.into());
    }
    Value::Object(body)
}

/// `payload.summary`: one clean line, URLs defanged, at most [`MAX_SUMMARY`] characters.
fn summary_line(headline: &str) -> String {
    let s = line(headline, MAX_SUMMARY);
    if s.is_empty() {
        "sasrelay event".into()
    } else {
        s
    }
}

fn summary_body(e: &Event, dedup_key: String) -> Value {
    let mut details = Map::new();
    details.insert("event".into(), e.kind.as_str().into());
    details.insert("event_id".into(), line(&e.id, MAX_ID).into());
    details.insert("domain".into(), e.domain.as_str().into());
    details.insert("sasrelay_source".into(), line(&e.source, MAX_ID).into());
    if let Some(s) = &e.summary {
        details.insert("tracked".into(), s.tracked.into());
        details.insert("message".into(), line(&s.message, MAX_TEXT).into());
    }
    json!({
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": summary_line(&event_headline(e, Lang::En)),
            "source": first_clean([Some(e.source.as_str())]).unwrap_or_else(|| CLIENT.into()),
            "severity": PdSeverity::Info.as_str(),
            "timestamp": rfc3339(e.observed_at),
            "class": format!("{}/summary", e.domain.as_str()),
            "custom_details": details,
        },
        "client": CLIENT,
    })
}

fn health_body(h: &HealthEvent) -> Value {
    let dedup_key = health_key(&h.condition);
    if h.status == HealthStatus::Resolved {
        return json!({"event_action": "resolve", "dedup_key": dedup_key});
    }
    let severity = match h.condition {
        HealthCondition::SourceBlind { .. } => PdSeverity::Critical,
        _ => PdSeverity::Error,
    };
    let mut details = Map::new();
    details.insert("condition".into(), h.condition.name().into());
    details.insert("key".into(), line(&h.condition.key(), MAX_ID).into());
    details.insert("episode".into(), h.episode.into());
    details.insert("event_id".into(), line(&h.id, MAX_ID).into());
    details.insert("since".into(), rfc3339(h.since).into());
    details.insert("message".into(), line(&h.message, MAX_TEXT).into());
    if let Some(d) = &h.detail {
        details.insert("detail".into(), line(d, MAX_TEXT).into());
    }
    json!({
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": summary_line(&super::health::headline(h, Lang::En)),
            "source": CLIENT,
            "severity": severity.as_str(),
            "timestamp": rfc3339(h.observed_at),
            "class": format!("sasrelay/health/{}", h.condition.name()),
            "custom_details": details,
        },
        "client": CLIENT,
    })
}

fn opt_obj(pairs: &[(&str, &Option<String>)]) -> Value {
    let mut o = Map::new();
    for (k, v) in pairs {
        if let Some(v) = v {
            o.insert((*k).into(), line(v, MAX_ID).into());
        }
    }
    Value::Object(o)
}

fn finding_details(e: &Event, f: &Finding) -> Value {
    let k = &f.kubernetes;
    let h = &f.host;
    let mut d = Map::new();
    d.insert("event".into(), e.kind.as_str().into());
    d.insert("event_id".into(), line(&e.id, MAX_ID).into());
    d.insert("finding_id".into(), line(&f.id, MAX_ID).into());
    d.insert("fingerprint".into(), line(&f.fingerprint, MAX_ID).into());
    d.insert("domain".into(), f.domain.as_str().into());
    d.insert("severity".into(), f.severity.as_str().into());
    d.insert(
        "native_severity".into(),
        line(&f.native_severity, MAX_ID).into(),
    );
    d.insert("status".into(), f.status.as_str().into());
    d.insert(
        "native_status".into(),
        line(&f.native_status, MAX_ID).into(),
    );
    d.insert("title".into(), line(&f.title, MAX_TEXT).into());
    if !f.description.is_empty() {
        d.insert("description".into(), line(&f.description, MAX_TEXT).into());
    }
    if !f.alert_type.is_empty() {
        d.insert("alert_type".into(), line(&f.alert_type, MAX_ID).into());
    }
    d.insert("sasrelay_source".into(), line(&f.source, MAX_ID).into());
    d.insert("region".into(), line(&f.region, MAX_ID).into());
    if let Some(t) = f.first_seen {
        d.insert("first_seen".into(), rfc3339(t).into());
    }
    if let Some(t) = f.last_seen {
        d.insert("last_seen".into(), rfc3339(t).into());
    }
    d.insert(
        "kubernetes".into(),
        opt_obj(&[
            ("cluster_id", &k.cluster_id),
            ("cluster_name", &k.cluster_name),
            ("namespace", &k.namespace),
            ("pod", &k.pod),
            ("container_id", &k.container_id),
            ("container_name", &k.container_name),
            ("image", &k.image),
            ("node", &k.node),
            ("app", &k.app),
        ]),
    );
    d.insert(
        "host".into(),
        opt_obj(&[
            ("instance_id", &h.instance_id),
            ("instance_name", &h.instance_name),
            ("public_ip", &h.public_ip),
            ("private_ip", &h.private_ip),
            ("uuid", &h.uuid),
            ("region", &h.region),
        ]),
    );
    if !f.details.is_empty() {
        let rows: Vec<Value> = f
            .details
            .iter()
            .take(MAX_DETAILS)
            .map(|r| json!({"name": line(&r.name, MAX_ID), "value": line(&r.value, MAX_TEXT)}))
            .collect();
        d.insert("details".into(), Value::Array(rows));
        if f.details.len() > MAX_DETAILS {
            d.insert(
                "details_more".into(),
                (f.details.len() - MAX_DETAILS).into(),
            );
        }
    }
    if !f.cves.is_empty() {
        let cves: Vec<Value> = f
            .cves
            .iter()
            .take(MAX_LIST)
            .map(|c| line(c, 64).into())
            .collect();
        d.insert("cves".into(), Value::Array(cves));
    }
    if !f.tactics.is_empty() {
        let tactics: Vec<Value> = f
            .tactics
            .iter()
            .take(MAX_LIST)
            .map(|t| line(&format!("{} {}", t.id, t.name), MAX_ID).into())
            .collect();
        d.insert("tactics".into(), Value::Array(tactics));
    }
    if let Some(r) = e.resolution {
        d.insert("resolution".into(), r.as_str().into());
    }
    Value::Object(d)
}

fn digest_body(d: &Digest, map: &SeverityMap) -> Value {
    let severity = d
        .events
        .iter()
        .filter(|e| e.kind != EventKind::Resolved)
        .filter_map(|e| e.finding.as_ref().map(|f| map.get(f.severity)))
        .max()
        .unwrap_or(PdSeverity::Info);
    let cluster = d
        .group
        .iter()
        .find(|(k, _)| k.as_str() == "cluster")
        .map(|(_, v)| v.as_str());
    let source = first_clean([cluster, d.events.first().map(|e| e.source.as_str())])
        .unwrap_or_else(|| CLIENT.into());
    let counts = d.counts();
    let members: Vec<Value> = d
        .events
        .iter()
        .take(MAX_MEMBERS)
        .map(|e| {
            json!({
                "event": e.kind.as_str(),
                "dedup_key": event_key(e),
                "severity": e.finding.as_ref().map(|f| f.severity.as_str()),
                "title": e.finding.as_ref().map(|f| line(&f.title, 200)),
            })
        })
        .collect();
    let group: Map<String, Value> = d
        .group
        .iter()
        .take(MAX_LIST)
        .map(|(k, v)| (line(k, 64), Value::from(line(v, MAX_ID))))
        .collect();
    let mut details = Map::new();
    details.insert("digest_id".into(), line(&d.id, MAX_ID).into());
    details.insert("route".into(), line(&d.route, MAX_ID).into());
    details.insert("group".into(), Value::Object(group));
    details.insert("count".into(), d.events.len().into());
    details.insert(
        "by_severity".into(),
        counts
            .by_severity
            .iter()
            .map(|(s, n)| (s.as_str().to_string(), Value::from(*n)))
            .collect::<Map<_, _>>()
            .into(),
    );
    details.insert(
        "by_kind".into(),
        counts
            .by_kind
            .iter()
            .map(|(k, n)| (k.as_str().to_string(), Value::from(*n)))
            .collect::<Map<_, _>>()
            .into(),
    );
    details.insert("members".into(), Value::Array(members));
    if d.events.len() > MAX_MEMBERS {
        details.insert("members_more".into(), (d.events.len() - MAX_MEMBERS).into());
    }
    let mut p = Map::new();
    p.insert(
        "summary".into(),
        summary_line(&digest_headline(d, Lang::En)).into(),
    );
    p.insert("source".into(), source.into());
    p.insert("severity".into(), severity.as_str().into());
    p.insert("timestamp".into(), rfc3339(d.created_at).into());
    if let Some(c) = first_clean([cluster]) {
        p.insert("group".into(), c.into());
    }
    p.insert("class".into(), "digest".into());
    p.insert("custom_details".into(), Value::Object(details));
    json!({
        "event_action": "trigger",
        "dedup_key": digest_key(d),
        "payload": p,
        "client": CLIENT,
    })
}

fn encoded_len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len())
}

/// Keeps the body (without the routing key's 32 characters) under [`MAX_BODY_BYTES`]: drops
/// the bulkiest custom details, then all of them but the identifiers.
fn fit(mut body: Value) -> Value {
    const SLACK: usize = 128;
    if encoded_len(&body) + SLACK <= MAX_BODY_BYTES {
        return body;
    }
    let Some(details) = body
        .pointer_mut("/payload/custom_details")
        .and_then(Value::as_object_mut)
    else {
        return body;
    };
    for k in ["details", "description", "members", "kubernetes", "host"] {
        details.remove(k);
    }
    details.insert("truncated".into(), true.into());
    if encoded_len(&body) + SLACK <= MAX_BODY_BYTES {
        return body;
    }
    if let Some(details) = body
        .pointer_mut("/payload/custom_details")
        .and_then(Value::as_object_mut)
    {
        details.retain(|k, _| {
            matches!(
                k.as_str(),
                "event" | "event_id" | "finding_id" | "fingerprint" | "digest_id" | "truncated"
            )
        });
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{sample_digest, sample_event, sample_summary};

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn with_kind(kind: EventKind) -> Event {
        let mut e = sample_event(crate::finding::Domain::Alerts);
        e.kind = kind;
        e
    }

    #[test]
    fn default_severity_mapping_and_overrides() {
        let m = SeverityMap::default();
        let got: Vec<&str> = Severity::ALL.iter().map(|s| m.get(*s).as_str()).collect();
        assert_eq!(got, ["info", "info", "warning", "error", "critical"]);
        let m: SeverityMap = toml::from_str("high = \"critical\"\ninfo = \"warning\"").unwrap();
        assert_eq!(m.get(Severity::High), PdSeverity::Critical);
        assert_eq!(m.get(Severity::Info), PdSeverity::Warning);
        assert_eq!(m.get(Severity::Medium), PdSeverity::Warning);
        assert!(toml::from_str::<SeverityMap>("high = \"page\"").is_err());
        assert!(toml::from_str::<SeverityMap>("serious = \"critical\"").is_err());
    }

    #[test]
    fn trigger_and_resolve_share_the_finding_key() {
        let m = SeverityMap::default();
        let fp = sample_event(crate::finding::Domain::Alerts)
            .finding
            .unwrap()
            .fingerprint;
        let mut keys = Vec::new();
        for (kind, action) in [
            (EventKind::New, "trigger"),
            (EventKind::Recurring, "trigger"),
            (EventKind::Reminder, "trigger"),
            (EventKind::Resolved, "resolve"),
        ] {
            let b = render(&with_kind(kind).into(), KEY, &m);
            assert_eq!(b["event_action"], action, "{kind:?}");
            assert_eq!(b["routing_key"], KEY);
            keys.push(b["dedup_key"].as_str().unwrap().to_string());
            if kind == EventKind::Resolved {
                let o = b.as_object().unwrap();
                let names: Vec<&str> = o.keys().map(String::as_str).collect();
                assert_eq!(names, ["routing_key", "event_action", "dedup_key"]);
            } else {
                assert_eq!(b["client"], CLIENT);
                assert_eq!(
                    b["payload"]["severity"], "critical",
                    "the sample is critical"
                );
            }
        }
        assert!(
            keys.iter().all(|k| *k == format!("sasrelay:{fp}")),
            "{keys:?}"
        );
    }

    #[test]
    fn trigger_payload_fields() {
        let e = sample_event(crate::finding::Domain::Alerts);
        let f = e.finding.clone().unwrap();
        let b = render(&e.clone().into(), KEY, &SeverityMap::default());
        let p = &b["payload"];
        assert_eq!(
            p["summary"].as_str().unwrap(),
            escape::header_line(&event_headline(&e, Lang::En), MAX_SUMMARY)
        );
        assert!(!p["source"].as_str().unwrap().is_empty());
        assert_eq!(
            p["timestamp"],
            rfc3339(f.last_seen.unwrap_or(e.observed_at))
        );
        assert_eq!(
            p["group"].as_str(),
            f.kubernetes
                .cluster_name
                .as_deref()
                .or(f.kubernetes.cluster_id.as_deref())
        );
        assert!(p["class"].as_str().unwrap().starts_with("alerts"));
        assert_eq!(p["custom_details"]["fingerprint"], f.fingerprint.as_str());
        let hrefs: Vec<&str> = b["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["href"].as_str().unwrap())
            .collect();
        assert!(!hrefs.is_empty());
        assert!(hrefs.iter().all(|h| f.links.iter().any(|l| l.url == *h)));
        assert!(b.get("images").is_none());
    }

    #[test]
    fn summaries_are_info_and_digests_one_alert() {
        let m = SeverityMap {
            info: Some(PdSeverity::Critical),
            ..Default::default()
        };
        let s = sample_summary(crate::finding::Domain::Vulnerabilities);
        let b = render(&s.clone().into(), KEY, &m);
        assert_eq!(b["event_action"], "trigger");
        assert_eq!(b["payload"]["severity"], "info", "never mapped");
        assert_eq!(b["dedup_key"], format!("sasrelay:summary:{}", s.id));
        assert_eq!(b["payload"]["custom_details"]["tracked"], 42);

        let d = sample_digest();
        let b = render(&d.clone().into(), KEY, &SeverityMap::default());
        assert_eq!(b["event_action"], "trigger");
        assert_eq!(b["dedup_key"], format!("sasrelay:digest:{}", d.id));
        assert_eq!(b["payload"]["severity"], "critical", "one critical member");
        assert_eq!(b["payload"]["group"], "c-prod");
        assert_eq!(b["payload"]["custom_details"]["count"], 12);
        let mut resolved = d.clone();
        for e in &mut resolved.events {
            e.kind = EventKind::Resolved;
        }
        let b = render(&resolved.into(), KEY, &SeverityMap::default());
        assert_eq!(b["payload"]["severity"], "info");
    }

    #[test]
    fn keys_keep_their_shape_whatever_is_stored() {
        let mut e = with_kind(EventKind::New);
        e.finding.as_mut().unwrap().fingerprint = "x\",\"routing_key\":\"evil".repeat(20);
        let k = event_key(&e);
        assert!(k.starts_with(KEY_PREFIX));
        assert!(k.len() <= MAX_DEDUP_KEY);
        assert!(k[KEY_PREFIX.len()..].bytes().all(|b| b.is_ascii_hexdigit()));
        let mut s = sample_summary(crate::finding::Domain::Alerts);
        s.id = "a".repeat(300);
        assert!(event_key(&s).len() <= MAX_DEDUP_KEY);
    }

    #[test]
    fn hostile_text_is_one_clean_line_and_the_body_stays_small() {
        let hostile = "A\u{1b}[2J\r\nB\u{202e}C\u{200b} http://evil.example ".repeat(20_000);
        let mut e = with_kind(EventKind::New);
        {
            let f = e.finding.as_mut().unwrap();
            f.title = hostile.clone();
            f.description = hostile.clone();
            f.host.instance_id = Some("\u{1b}\r\n".into());
            f.host.instance_name = Some(hostile.clone());
            f.details = (0..200)
                .map(|i| crate::finding::Detail {
                    name: format!("{i}{hostile}"),
                    value: hostile.clone(),
                })
                .collect();
        }
        let b = render(&e.into(), KEY, &SeverityMap::default());
        let text = serde_json::to_string(&b).unwrap();
        assert!(text.len() <= MAX_BODY_BYTES, "{}", text.len());
        let summary = b["payload"]["summary"].as_str().unwrap();
        assert!(summary.chars().count() <= MAX_SUMMARY);
        assert!(!summary.contains("://"));
        fn walk(v: &Value) {
            match v {
                Value::String(s) => assert!(
                    !s.chars()
                        .any(|c| c.is_control() || crate::text::is_invisible_format(c)),
                    "{s:?}"
                ),
                Value::Array(a) => a.iter().for_each(walk),
                Value::Object(o) => o.values().for_each(walk),
                _ => {}
            }
        }
        walk(&b);
        // The all-control instance ID is skipped for the next non-empty candidate.
        assert!(b["payload"]["source"].as_str().unwrap().starts_with('A'));
        // No URL outside `links` and `client_url`, however the fields are joined.
        let mut e = with_kind(EventKind::New);
        {
            let f = e.finding.as_mut().unwrap();
            f.kubernetes.namespace = Some("https:".into());
            f.kubernetes.app = Some("/evil.example".into());
            f.host.instance_id = Some("WWW.evil.example".into());
            f.alert_type = "x://y".into();
        }
        let mut b = render(&e.into(), KEY, &SeverityMap::default());
        let o = b.as_object_mut().unwrap();
        o.remove("links");
        o.remove("client_url");
        let text = b.to_string().to_lowercase();
        assert!(!text.contains("://") && !text.contains("www."), "{text}");
    }
}
