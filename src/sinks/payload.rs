//! The JSON document every sink sends for an event — the webhook body, a `format = "json"`
//! stdout line, a file line — and the human text line of `format = "text"`. Pure: no IO, no
//! clock.
//!
//! ## Schema `sasrelay.event.v1`
//!
//! One JSON object per event, UTF-8, on one line. Within `v1` keys are only ever *added*:
//! consumers must ignore keys they do not know. Removing or renaming a key, or changing its
//! type or meaning, makes a new schema name. Timestamps are RFC 3339 in UTC; absent values are
//! `null`, never missing. Besides the escapes JSON requires, DEL, C1 controls and invisible
//! format characters inside strings (bidi, zero-width, fillers, variation selectors, tags:
//! [`is_invisible_format`]) are written as `\uXXXX` (a surrogate pair beyond U+FFFF), so a
//! line is safe to print on a terminal; a JSON parser returns the original text.
//!
//! | key | type | meaning |
//! |---|---|---|
//! | `schema` | string | `"sasrelay.event.v1"` |
//! | `id` | string | the event's idempotency key, 64 lowercase hex; the same on every retry, re-poll and restart, and at every sink (the webhook sink's `webhook-id` header is one per event and sink: see `webhook`) |
//! | `kind` | string | `new`, `recurring` (occurred again), `resolved`, `summary` (first-start count) |
//! | `source` | string | configured source name |
//! | `domain` | string | `alerts`, `vulnerabilities`, `baseline`, `firewall` |
//! | `observed_at` | string | when sasrelay observed the change |
//! | `resolution` | string \| null | for `resolved`: `handled`, `ignored`, `false_positive`, `fixed`, `expired`, `gone` (no longer listed) |
//! | `finding` | object \| null | the finding (below); `null` for `summary` |
//! | `summary` | object \| null | for `summary`: `{"tracked": <count>, "message": <sentence>}`; else `null` |
//! | `truncated` | number (only when cut) | the document was longer than the webhook's `max_body_bytes`: its original length in bytes; its long texts end `… [cut: N bytes]` ([`to_json_within`]) |
//! | `raw_omitted` | `true` (only when cut that far) | even so too long: every `raw` item is `null` |
//! | `handled_by` | object (only when so) | for `resolved`: who closed it through sasrelay — `who`, `via` (`cli`, `chat`), `action` (`ignore`, `whitelist`, `handled`), `at` |
//! | `possible_repeat` | `true` (only when so) | sent by a replica that took over from a leader which may already have sent it, with the same `id` (see the README's "High availability") |
//!
//! `finding`:
//!
//! | key | type | meaning |
//! |---|---|---|
//! | `domain` | string | as above |
//! | `id` | string | Security Center identity: `alert:<Id>`, `vul:<PrimaryId>`, `baseline:<CheckWarningId>`, `firewall:<Id>` |
//! | `fingerprint` | string | 64 hex; stable identity of the finding across events |
//! | `severity` | string | `info`, `low`, `medium`, `high`, `critical` |
//! | `native_severity` | string | as Security Center sent it (`serious`, `asap`, `3`, …) |
//! | `status` | string | `active` or `resolved` |
//! | `resolution` | string \| null | as the top-level key, as Security Center reports it |
//! | `native_status` | string | status code as sent (may be empty) |
//! | `title` | string | one line |
//! | `description` | string | may be empty |
//! | `alert_type` | string | category as the console names it |
//! | `kubernetes` | object | `cluster_id`, `cluster_name`, `namespace`, `pod`, `container_id`, `container_name`, `image`, `node`, `app` (each string \| null) |
//! | `host` | object | `instance_id`, `instance_name`, `public_ip`, `private_ip`, `uuid`, `region` (each string \| null) |
//! | `first_seen` | string \| null | first occurrence |
//! | `last_seen` | string \| null | latest occurrence or scan |
//! | `details` | array | `{"name", "value"}` pairs in console order (names may repeat) |
//! | `links` | array | `{"kind", "label", "url"}`; `kind` is `cve`, `report`, `asset`, `console`, `cluster` |
//! | `cves` | array | CVE IDs (strings) |
//! | `tactics` | array | MITRE ATT&CK `{"id", "name"}` |
//! | `source` | string | configured source name |
//! | `region` | string | configured region |
//! | `raw` | object | the record exactly as Security Center sent it |
//!
//! ## Schema `sasrelay.digest.v1`
//!
//! Several events grouped by a route (or folded from a backlog) into one delivery, with the same
//! rules for adding keys:
//!
//! | key | type | meaning |
//! |---|---|---|
//! | `schema` | string | `"sasrelay.digest.v1"` |
//! | `id` | string | idempotency key of the digest (64 hex); the `webhook-id` header derives from it and the sink |
//! | `route` | string | the route that grouped the events, or `backlog` |
//! | `group` | object | the `group_by` labels and their values (strings) |
//! | `created_at` | string | when the group was closed |
//! | `headline` | string | one sentence, e.g. `12 new vulnerabilities in cluster c-prod: 3 high, 9 medium` |
//! | `count` | number | how many events |
//! | `events` | array | every member, each a complete `sasrelay.event.v1` object |
//! | `truncated`, `raw_omitted` | (only when cut) | as an event's |
//! | `members_slimmed` | `true` (only when cut that far) | each member's `finding` keeps only `domain`, `id`, `fingerprint`, `severity`, `status`, `resolution`, `title`, `kubernetes`, `host`, `source`, `region` (and `slim: true`) |
//! | `omitted` | number (only when cut that far) | members dropped from the end to fit, the last resort (`count` stays the digest's) |
//!
//! ## Schema `sasrelay.health.v1`
//!
//! A meta-event: sasrelay's own health (see the README's "Health"), one document when a
//! condition starts to hold and one when it stops, with the same rules for adding keys:
//!
//! | key | type | meaning |
//! |---|---|---|
//! | `schema` | string | `"sasrelay.health.v1"` |
//! | `id` | string | idempotency key (64 hex), one per condition, episode and status; the `webhook-id` header derives from it and the sink |
//! | `status` | string | `firing` or `resolved` |
//! | `condition` | string | `source_blind`, `credentials_expiring`, `sink_stalled` |
//! | `key` | string | the condition and what it is about, e.g. `source_blind/prod/alerts`; the same in the `firing` and `resolved` documents of every episode |
//! | `source` | string \| null | the configured source, for `source_blind` and `credentials_expiring` |
//! | `domain` | string \| null | the domain, for `source_blind` |
//! | `sink` | string \| null | the sink, for `sink_stalled` |
//! | `episode` | number | which episode of the condition (1, 2, …) |
//! | `since` | string | when the episode began |
//! | `observed_at` | string | when sasrelay saw the change |
//! | `message` | string | one sentence for people |
//! | `detail` | string \| null | the last error behind it (may be written by a remote service) |
//!
//! Everything inside `finding` and `summary.message` may be written by an attacker (process
//! names, file paths, image names): render it as text, never as markup.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::event::{Event, EventKind, HealthEvent, Payload, Summary};
use crate::finding::{
    Detail, Domain, Finding, Host, Kubernetes, Link, Resolution, Severity, Status, Tactic,
};
use crate::text::{is_invisible_format, strip_control};

/// The `schema` value of an event document.
pub const PAYLOAD_SCHEMA: &str = "sasrelay.event.v1";
/// The `schema` value of a digest document.
pub const DIGEST_SCHEMA: &str = "sasrelay.digest.v1";
/// The `schema` value of a meta-event document.
pub const HEALTH_SCHEMA: &str = "sasrelay.health.v1";

#[derive(Serialize)]
struct WireHealth<'a> {
    schema: &'static str,
    id: &'a str,
    status: &'static str,
    condition: &'static str,
    key: String,
    source: Option<&'a str>,
    domain: Option<Domain>,
    sink: Option<&'a str>,
    episode: u64,
    since: String,
    observed_at: String,
    message: &'a str,
    detail: Option<&'a str>,
}

impl<'a> WireHealth<'a> {
    fn new(h: &'a HealthEvent) -> Self {
        WireHealth {
            schema: HEALTH_SCHEMA,
            id: &h.id,
            status: h.status.as_str(),
            condition: h.condition.name(),
            key: h.condition.key(),
            source: h.condition.source(),
            domain: h.condition.domain(),
            sink: h.condition.sink(),
            episode: h.episode,
            since: rfc3339(h.since),
            observed_at: rfc3339(h.observed_at),
            message: &h.message,
            detail: h.detail.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct WireDigest<'a> {
    schema: &'static str,
    id: &'a str,
    route: &'a str,
    group: &'a std::collections::BTreeMap<String, String>,
    created_at: String,
    headline: String,
    count: usize,
    events: Vec<WireEvent<'a>>,
}

#[derive(Serialize)]
struct WireEvent<'a> {
    schema: &'static str,
    id: &'a str,
    kind: EventKind,
    source: &'a str,
    domain: Domain,
    observed_at: String,
    resolution: Option<Resolution>,
    finding: Option<WireFinding<'a>>,
    summary: Option<&'a Summary>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    possible_repeat: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    handled_by: Option<&'a crate::event::HandledBy>,
}

#[derive(Serialize)]
struct WireFinding<'a> {
    domain: Domain,
    id: &'a str,
    fingerprint: &'a str,
    severity: Severity,
    native_severity: &'a str,
    status: Status,
    resolution: Option<Resolution>,
    native_status: &'a str,
    title: &'a str,
    description: &'a str,
    alert_type: &'a str,
    kubernetes: &'a Kubernetes,
    host: &'a Host,
    first_seen: Option<String>,
    last_seen: Option<String>,
    details: &'a [Detail],
    links: &'a [Link],
    cves: &'a [String],
    tactics: &'a [Tactic],
    source: &'a str,
    region: &'a str,
    raw: crate::finding::RawVerbatim<'a>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    utc.format(&Rfc3339)
        .unwrap_or_else(|_| utc.unix_timestamp().to_string())
}

impl<'a> WireFinding<'a> {
    fn new(f: &'a Finding) -> Self {
        // Exhaustive on purpose: a new `Finding` field fails to compile here until someone
        // decides whether and how it goes on the wire (and updates the schema table).
        let Finding {
            domain,
            id,
            fingerprint,
            severity,
            native_severity,
            status,
            resolution,
            native_status,
            title,
            description,
            alert_type,
            kubernetes,
            host,
            first_seen,
            last_seen,
            details,
            links,
            cves,
            tactics,
            source,
            region,
            raw,
        } = f;
        WireFinding {
            domain: *domain,
            id,
            fingerprint,
            severity: *severity,
            native_severity,
            status: *status,
            resolution: *resolution,
            native_status,
            title,
            description,
            alert_type,
            kubernetes,
            host,
            first_seen: first_seen.map(rfc3339),
            last_seen: last_seen.map(rfc3339),
            details,
            links,
            cves,
            tactics,
            source,
            region,
            raw: raw.as_serialize_verbatim(),
        }
    }
}

fn wire(e: &Event) -> WireEvent<'_> {
    WireEvent {
        schema: PAYLOAD_SCHEMA,
        id: &e.id,
        kind: e.kind,
        source: &e.source,
        domain: e.domain,
        observed_at: rfc3339(e.observed_at),
        resolution: e.resolution,
        finding: e.finding.as_ref().map(WireFinding::new),
        summary: e.summary.as_ref(),
        possible_repeat: e.possible_repeat,
        handled_by: e.handled_by.as_ref(),
    }
}

/// The `sasrelay.event.v1` document of a payload, on one line (no trailing newline), with
/// terminal-unsafe characters escaped (see the module doc). The webhook signs exactly these bytes.
pub fn to_json(payload: &Payload) -> String {
    let text = match payload {
        Payload::Event(e) => serde_json::to_string(&wire(e)),
        Payload::Digest(d) => serde_json::to_string(&WireDigest {
            schema: DIGEST_SCHEMA,
            id: &d.id,
            route: &d.route,
            group: &d.group,
            created_at: rfc3339(d.created_at),
            headline: d.headline(),
            count: d.events.len(),
            events: d.events.iter().map(wire).collect(),
        }),
        Payload::Health(h) => serde_json::to_string(&WireHealth::new(h)),
    }
    // Serialising borrowed strings, numbers and `Value`s into a String cannot fail.
    .unwrap_or_else(|e| format!("{{\"schema\":\"{PAYLOAD_SCHEMA}\",\"error\":\"{e}\"}}"));
    escape_unsafe(text)
}

/// The longest text a field keeps when a document must be cut to fit a body cap, tried in
/// turn (bytes, the marker included) until it fits.
const CUT_STEPS: [usize; 5] = [16_384, 4_096, 1_024, 256, 64];

/// Keys whose strings are never cut: what identifies and dates the document, an event and a
/// finding (ids are 64 hex digits, times RFC 3339, the rest short enumerations).
const NEVER_CUT: [&str; 14] = [
    "schema",
    "id",
    "fingerprint",
    "kind",
    "domain",
    "status",
    "severity",
    "observed_at",
    "created_at",
    "first_seen",
    "last_seen",
    "resolution",
    "route",
    "source",
];

/// [`to_json`] within `cap` bytes. A document that fits is exactly [`to_json`]'s. One that
/// does not is cut, least useful first, until it fits: every text longer than a step of
/// `CUT_STEPS` (16 KiB down to 64 bytes) is cut on a character boundary and ends
/// `… [cut: N bytes]` (N its original length) — outside the raw item first, then in it too —
/// then the raw items are dropped (`null`, `raw_omitted` set), a digest's members keep only
/// what identifies and places their finding (`members_slimmed`), and a digest then drops its last
/// members (`omitted` says how many). A cut document says so at the top level: `truncated`
/// holds the whole document's original length in bytes. The ids, kinds, severities and
/// times are never cut (`NEVER_CUT`). Attacker-written text can therefore not push a notification
/// past what its receiver takes.
pub fn to_json_within(payload: &Payload, cap: usize) -> String {
    let full = to_json(payload);
    if full.len() <= cap {
        return full;
    }
    let Ok(mut doc) = serde_json::from_str::<Value>(&full) else {
        return full;
    };
    let original = full.len();
    let render = |doc: &Value| escape_unsafe(doc.to_string());
    if let Some(o) = doc.as_object_mut() {
        o.insert("truncated".into(), Value::from(original));
    }
    for step in CUT_STEPS {
        cut_strings(&mut doc, step, false);
        let text = render(&doc);
        if text.len() <= cap {
            return text;
        }
        cut_strings(&mut doc, step, true);
        let text = render(&doc);
        if text.len() <= cap {
            return text;
        }
    }
    // Too long even so: the raw items go (`null`), then a digest's last members.
    drop_raw(&mut doc);
    if let Some(o) = doc.as_object_mut() {
        o.insert("raw_omitted".into(), Value::Bool(true));
    }
    let text = render(&doc);
    if text.len() <= cap {
        return text;
    }
    // A digest's members keep what identifies and places their finding.
    if let Some(events) = doc.get_mut("events").and_then(Value::as_array_mut) {
        events.iter_mut().for_each(slim_member);
        if let Some(o) = doc.as_object_mut() {
            o.insert("members_slimmed".into(), Value::Bool(true));
        }
        let text = render(&doc);
        if text.len() <= cap {
            return text;
        }
    }
    let mut omitted = 0usize;
    while let Some(events) = doc.get_mut("events").and_then(Value::as_array_mut) {
        if events.pop().is_none() {
            break;
        }
        omitted += 1;
        if let Some(o) = doc.as_object_mut() {
            o.insert("omitted".into(), Value::from(omitted));
        }
        let text = render(&doc);
        if text.len() <= cap {
            return text;
        }
    }
    render(&doc)
}

/// What a slimmed digest member keeps of its finding.
const SLIM_FINDING: [&str; 11] = [
    "domain",
    "id",
    "fingerprint",
    "severity",
    "status",
    "resolution",
    "title",
    "kubernetes",
    "host",
    "source",
    "region",
];

/// A digest member's finding without its description, details, links, CVEs, tactics and raw
/// item (`slim: true` says so).
fn slim_member(event: &mut Value) {
    if let Some(f) = event.get_mut("finding").and_then(Value::as_object_mut) {
        f.retain(|k, _| SLIM_FINDING.contains(&k.as_str()));
        f.insert("slim".into(), Value::Bool(true));
    }
}

/// Sets every `raw` member in `v` to `null`.
fn drop_raw(v: &mut Value) {
    match v {
        Value::Array(a) => a.iter_mut().for_each(drop_raw),
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if k == "raw" {
                    *x = Value::Null;
                } else {
                    drop_raw(x);
                }
            }
        }
        _ => {}
    }
}

/// Cuts every string in `v` longer than `max` bytes to `max` (on a character boundary, the
/// marker included): outside `raw` members, or inside them too with `raw`.
fn cut_strings(v: &mut Value, max: usize, raw: bool) {
    match v {
        Value::String(s) if s.len() > max => *s = cut(s, max),
        Value::Array(a) => a.iter_mut().for_each(|x| cut_strings(x, max, raw)),
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if (k == "raw" && !raw) || (x.is_string() && NEVER_CUT.contains(&k.as_str())) {
                    continue;
                }
                cut_strings(x, max, raw);
            }
        }
        _ => {}
    }
}

/// `s` cut to at most `max` bytes with `… [cut: N bytes]` at its end (`N` = `s.len()`); just
/// the marker when `max` is smaller than it.
fn cut(s: &str, max: usize) -> String {
    let marker = format!("… [cut: {} bytes]", s.len());
    let keep = max.saturating_sub(marker.len());
    let mut end = keep.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", &s[..end])
}

/// Writes DEL, C1 controls and invisible format characters as `\uXXXX`, those beyond U+FFFF
/// (tags, variation selectors of plane 14, …) as a UTF-16 surrogate pair `\uXXXX\uXXXX` as
/// JSON wants. Valid on serde_json output: such characters can only occur inside strings (the
/// structure is ASCII). ASCII controls are left to the JSON writer (it escapes them inside
/// strings; outside, they are whitespace). Takes the document by value: nothing to escape
/// returns it as it is, without a copy.
fn escape_unsafe(json: String) -> String {
    let Some(mut next) = find_unsafe(&json, 0) else {
        return json;
    };
    let mut out = String::with_capacity(json.len() + 16);
    let mut from = 0;
    loop {
        let (at, c) = next;
        out.push_str(&json[from..at]);
        use std::fmt::Write as _;
        for unit in c.encode_utf16(&mut [0; 2]) {
            let _ = write!(out, "\\u{unit:04x}");
        }
        from = at + c.len_utf8();
        match find_unsafe(&json, from) {
            Some(found) => next = found,
            None => break,
        }
    }
    out.push_str(&json[from..]);
    out
}

/// The UTF-8 lead bytes of every character [`escape_unsafe`] escapes, in disjoint sets of at
/// most three, one vectorised search (`memchr`, `memchr2`, `memchr3`) each: `0x7f` (DEL),
/// `0xc2` (U+0080–00BF: the C1 controls, the soft hyphen), `0xcd` (U+034F), `0xd8` `0xdb`
/// `0xdc` (Arabic and Syriac format characters), `0xe0` (U+0890–08E2), `0xe1` (Hangul fillers,
/// Khmer and Mongolian ignorables), `0xe2` (U+2000–2FFF: zero-width and bidi), `0xe3`
/// (U+3164), `0xef` (variation selectors, U+FEFF, U+FFA0, U+FFF0–FFFB), `0xf0` (Kaithi,
/// Egyptian, shorthand and musical format controls) and `0xf3` (plane 14: tags, variation
/// selectors) — the lead bytes of [`crate::text::INVISIBLE`] (a test checks every range).
/// Never the lead bytes of most CJK text (`0xe4`–`0xe9`). The bytes that also start common
/// visible text — `0xe3` (CJK punctuation such as `。`, kana) and `0xf0` (emoji) — share a set,
/// so their many false hits restart only that one search.
const LEAD_BYTES: [&[u8]; 5] = [
    &[0xe2, 0xc2, 0xef],
    &[0x7f, 0xd8, 0xe1],
    &[0xcd, 0xdb, 0xdc],
    &[0xe0, 0xf3],
    &[0xe3, 0xf0],
];

/// The first character at or after byte `from` (a character boundary) that [`escape_unsafe`]
/// writes escaped. A delivery runs this over every document, most of them with text in CJK
/// scripts: only the bytes that can start such a character are looked at ([`LEAD_BYTES`]),
/// found with one vectorised search per set (one byte-by-byte `match` took 3.5 % of a
/// delivery's CPU), and only the character at a hit is decoded.
fn find_unsafe(json: &str, from: usize) -> Option<(usize, char)> {
    let bytes = json.as_bytes();
    let next = |set: &[u8], at: usize| {
        let rest = bytes.get(at..)?;
        match *set {
            [a] => memchr::memchr(a, rest),
            [a, b] => memchr::memchr2(a, b, rest),
            [a, b, c] => memchr::memchr3(a, b, c, rest),
            _ => None,
        }
        .map(|i| at + i)
    };
    let mut hits = LEAD_BYTES.map(|set| next(set, from));
    loop {
        let (set, at) = hits
            .iter()
            .enumerate()
            .filter_map(|(set, hit)| hit.map(|at| (set, at)))
            .min_by_key(|&(_, at)| at)?;
        let c = json.get(at..)?.chars().next()?;
        if c.is_control() || is_invisible_format(c) {
            return Some((at, c));
        }
        // Only the search that found this byte moves on; the others' next hits still stand.
        hits[set] = next(LEAD_BYTES[set], at + c.len_utf8());
    }
}

/// One human line for a terminal (no trailing newline), every control character removed:
///
/// ```text
/// 2024-05-01T08:00:00Z CRITICAL new alerts source=prod cluster=prod-ack/default: Reverse shell [alert:123]
/// 2024-05-01T09:00:00Z HIGH resolved(fixed) vulnerabilities source=prod cluster=-: CVE-2024-1086 [vul:7]
/// 2024-05-01T08:00:00Z SUMMARY alerts source=prod: sasrelay started tracking 42 open alerts …
/// ```
///
/// A digest is its headline line followed by one indented line per member. A meta-event:
///
/// ```text
/// 2024-05-01T08:00:00Z HEALTH FIRING source_blind/prod/alerts: sasrelay has never read alerts of source prod [auth: …]
/// ```
pub fn text_line(payload: &Payload) -> String {
    match payload {
        Payload::Event(e) => event_line(e),
        Payload::Health(h) => {
            let detail = h
                .detail
                .as_deref()
                .map(|d| format!(" [{d}]"))
                .unwrap_or_default();
            strip_control(&format!(
                "{} HEALTH {} {}: {}{detail}",
                rfc3339(h.observed_at),
                h.status.as_str().to_uppercase(),
                h.condition.key(),
                h.message
            ))
        }
        Payload::Digest(d) => {
            let mut out = strip_control(&format!(
                "{} DIGEST route={}: {}",
                rfc3339(d.created_at),
                d.route,
                d.headline()
            ));
            for e in &d.events {
                out.push_str("\n  ");
                out.push_str(&event_line(e));
            }
            out
        }
    }
}

fn event_line(e: &Event) -> String {
    let mut line = event_line_plain(e);
    if let Some(h) = &e.handled_by {
        line.push_str(&format!(
            " (handled by {} via {}: {})",
            crate::text::strip_control(&h.who),
            h.via,
            h.action
        ));
    }
    if e.possible_repeat {
        format!("{line} (possible repeat)")
    } else {
        line
    }
}

fn event_line_plain(e: &Event) -> String {
    let when = rfc3339(e.observed_at);
    let line = match (&e.finding, &e.summary) {
        (Some(f), _) => {
            let kind = match e.resolution.or(f.resolution) {
                Some(r) if e.kind == EventKind::Resolved => {
                    format!("resolved({})", r.as_str())
                }
                _ => e.kind.as_str().to_string(),
            };
            let k = &f.kubernetes;
            let mut place = k
                .cluster_name
                .clone()
                .or_else(|| k.cluster_id.clone())
                .unwrap_or_else(|| "-".into());
            if let Some(ns) = &k.namespace {
                place.push('/');
                place.push_str(ns);
            }
            format!(
                "{when} {} {kind} {} source={} cluster={place}: {} [{}]",
                severity_name(f.severity),
                e.domain.as_str(),
                e.source,
                f.title,
                f.id
            )
        }
        (None, Some(s)) => format!(
            "{when} SUMMARY {} source={}: {}",
            e.domain.as_str(),
            e.source,
            s.message
        ),
        (None, None) => format!(
            "{when} {} {} source={}: event {}",
            e.kind.as_str().to_uppercase(),
            e.domain.as_str(),
            e.source,
            e.id
        ),
    };
    strip_control(&line)
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "INFO",
        Severity::Low => "LOW",
        Severity::Medium => "MEDIUM",
        Severity::High => "HIGH",
        Severity::Critical => "CRITICAL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_json_equivalent() {
        let v = serde_json::json!({"t": "a\u{7f}b\u{9b}c\u{202e}d\u{1b}e 异常 \u{e0041}\u{fe0f}\u{3164}😀"});
        let plain = serde_json::to_string(&v).unwrap();
        let escaped = escape_unsafe(plain.clone());
        assert!(
            !escaped
                .chars()
                .any(|c| c.is_control() || is_invisible_format(c)),
            "{escaped}"
        );
        assert!(escaped.contains("\\u007f") && escaped.contains("\\u202e"));
        // Beyond U+FFFF: a surrogate pair, as JSON wants.
        assert!(escaped.contains("\\udb40\\udc41"), "{escaped}");
        assert!(escaped.contains("异常") && escaped.contains('😀'));
        let back: Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back, v);
    }

    /// What `escape_unsafe` must do, written the slow way: every character from DEL up that
    /// is a control or an invisible format character, escaped (in UTF-16 code units).
    fn escape_slowly(json: &str) -> String {
        json.chars()
            .map(|c| {
                if c >= '\u{7f}' && (c.is_control() || is_invisible_format(c)) {
                    c.encode_utf16(&mut [0; 2])
                        .iter()
                        .map(|u| format!("\\u{u:04x}"))
                        .collect()
                } else {
                    c.to_string()
                }
            })
            .collect()
    }

    #[test]
    fn escaping_finds_every_unsafe_character_among_any_others() {
        let unsafe_chars = [
            '\u{7f}',
            '\u{80}',
            '\u{9f}',
            '\u{ad}',
            '\u{34f}',
            '\u{600}',
            '\u{61c}',
            '\u{6dd}',
            '\u{70f}',
            '\u{890}',
            '\u{8e2}',
            '\u{115f}',
            '\u{1160}',
            '\u{17b4}',
            '\u{180b}',
            '\u{180e}',
            '\u{200b}',
            '\u{200f}',
            '\u{202a}',
            '\u{202e}',
            '\u{2060}',
            '\u{2064}',
            '\u{2065}',
            '\u{2066}',
            '\u{206f}',
            '\u{3164}',
            '\u{fe00}',
            '\u{fe0f}',
            '\u{feff}',
            '\u{ffa0}',
            '\u{fff9}',
            '\u{fffb}',
            '\u{110bd}',
            '\u{13430}',
            '\u{1bca0}',
            '\u{1d173}',
            '\u{e0001}',
            '\u{e0041}',
            '\u{e007f}',
            '\u{e0100}',
            '\u{e01ef}',
        ];
        // Neighbours sharing lead bytes with them, and other scripts.
        let safe_chars = [
            'a',
            '{',
            '"',
            '\u{a0}',
            '\u{bf}',
            '\u{c0}',
            '\u{34e}',
            '\u{5ff}',
            '\u{606}',
            '\u{6de}',
            '\u{88f}',
            '\u{1161}',
            '\u{1800}',
            '\u{2010}',
            '\u{2070}',
            '\u{3000}',
            '\u{3002}',
            '\u{3163}',
            '\u{3165}',
            '异',
            '常',
            '\u{fe10}',
            '\u{fefe}',
            '\u{ff01}',
            '\u{ff0c}',
            '\u{fffc}',
            '😀',
            '\u{1d172}',
            '\u{e0200}',
        ];
        let all: Vec<char> = unsafe_chars.iter().chain(&safe_chars).copied().collect();
        // Every pair and triple, so each character is met first, last, alone and next to
        // every other.
        for &a in &all {
            for &b in &all {
                for tail in ["", "x", "异", "\u{202e}"] {
                    let json = format!("{a}{b}{tail}");
                    assert_eq!(
                        escape_unsafe(json.clone()),
                        escape_slowly(&json),
                        "{json:?}"
                    );
                }
            }
        }
        for &c in &unsafe_chars {
            assert!(find_unsafe(&c.to_string(), 0).is_some(), "{c:?} missed");
        }
        // Every invisible character the text module knows, behind CJK and emoji text: a new
        // one with a lead byte `LEAD_BYTES` lacks fails here.
        for &(lo, hi) in crate::text::INVISIBLE.iter() {
            for c in (lo..=hi).step_by(7).chain([hi]) {
                let json = format!("异常。😀{c}x");
                assert_eq!(
                    find_unsafe(&json, 0).map(|(_, f)| f),
                    Some(c),
                    "{c:?} missed"
                );
            }
        }
        let mixed = "告警 \u{200b}x\u{7f}异常\u{feff}".repeat(50);
        assert_eq!(escape_unsafe(mixed.clone()), escape_slowly(&mixed));
        let plain = "进程 /bin/sh -c 'curl http://x' 异常".repeat(20);
        assert_eq!(
            escape_unsafe(plain.clone()),
            plain,
            "nothing to escape: unchanged"
        );
    }
}
