//! Normalisation: the raw Security Center records of the four domains turned into one
//! [`Finding`] each, by pure functions (no clock, no IO), so the same record always gives the
//! same finding and fingerprint. The severity and status tables are in [`crate::finding`]'s
//! module doc and in the docs of the functions below that implement them.

use std::collections::BTreeMap;

use time::format_description::well_known::Rfc3339;
use time::{
    OffsetDateTime, PrimitiveDateTime, UtcOffset, macros::format_description, macros::offset,
};

use crate::finding::*;
use crate::sas::models::{BaselineItem, InterceptionHistory, Item, SuspEvent, VulRecord};
use crate::text::percent_encode;

/// Values from configuration that normalisation needs.
#[derive(Clone, Debug, PartialEq)]
pub struct NormaliseContext {
    /// Configured source name (copied into every finding).
    pub source: String,
    /// Dedup scope mixed into fingerprints: the source name by default. Setting it to the
    /// account ID keeps fingerprints stable when a source is renamed.
    pub scope: String,
    /// Configured region.
    pub region: String,
    /// Security Center console URL.
    pub console_base: String,
    /// ACK console URL.
    pub ack_console_base: String,
    /// Per domain, the URL template of a finding's own console page ([`own_link`]).
    pub console_links: BTreeMap<Domain, String>,
    /// Offset of the service's `YYYY-MM-DD HH:mm:ss` strings, used only when a record has no
    /// epoch-ms field (those always win). Default UTC+8: three of the four shared alert samples
    /// carry strings equal to their epoch fields at +08:00 (the fourth at UTC), and the
    /// contract (docs/sas-api.md) documents no zone.
    pub service_offset: UtcOffset,
    /// The cluster the listing was filtered on, used when a record carries no cluster ID
    /// (baseline records never do).
    pub cluster_id: Option<String>,
    /// Configured cluster display names by ID, used when a record carries no name.
    pub cluster_names: BTreeMap<String, String>,
}

impl NormaliseContext {
    /// A context with the default consoles, UTC+8 service time and no cluster hints.
    pub fn new(source: impl Into<String>, region: impl Into<String>) -> Self {
        let source = source.into();
        NormaliseContext {
            scope: source.clone(),
            source,
            region: region.into(),
            console_base: DEFAULT_CONSOLE_BASE.to_string(),
            ack_console_base: DEFAULT_ACK_CONSOLE_BASE.to_string(),
            console_links: BTreeMap::new(),
            service_offset: offset!(+8),
            cluster_id: None,
            cluster_names: BTreeMap::new(),
        }
    }

    fn cluster(&self, id: Option<String>, name: &str) -> (Option<String>, Option<String>) {
        let id = id.or_else(|| opt(self.cluster_id.as_deref().unwrap_or("")));
        let name = opt(name).or_else(|| {
            id.as_ref()
                .and_then(|i| self.cluster_names.get(i))
                .and_then(|n| opt(n))
        });
        (id, name)
    }

    fn common_links(&self, cluster_id: Option<&str>) -> Vec<Link> {
        let mut links = Vec::new();
        if !self.console_base.trim().is_empty() {
            links.push(Link {
                kind: LinkKind::Console,
                label: "Security Center console".into(),
                url: self.console_base.clone(),
            });
        }
        if let Some(id) = cluster_id {
            links.push(Link {
                kind: LinkKind::Cluster,
                label: format!("ACK cluster {id}"),
                url: cluster_url(&self.ack_console_base, id),
            });
        }
        links
    }
}

/// The placeholders a `console_links` template may use.
pub const LINK_PLACEHOLDERS: &[&str] = &["id", "uuid", "ip", "region", "cluster_id", "instance_id"];

/// Checks a `console_links` template: an `http(s)://` URL whose `{…}` are
/// [`LINK_PLACEHOLDERS`].
pub fn check_link_template(t: &str) -> Result<(), String> {
    if !(t.starts_with("https://") || t.starts_with("http://")) {
        return Err("must start with https:// (or http://)".into());
    }
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err("has a `{` without its `}`".into());
        };
        let name = &rest[open + 1..open + close];
        if !LINK_PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "has {{{name}}}, which is none of {}",
                LINK_PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{p}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

/// The finding's own console page from `ctx`'s template for its domain: each placeholder
/// filled (percent-encoded) from the finding — `{id}` its Security Center id (the number of
/// `alert:752312`), `{uuid}`, `{ip}` (private, else public), `{region}`, `{cluster_id}`,
/// `{instance_id}`; `None` without a template or when one it uses has no value (never a
/// half-filled link).
pub fn own_link(ctx: &NormaliseContext, f: &Finding) -> Option<Link> {
    let template = ctx.console_links.get(&f.domain)?;
    let value = |name: &str| -> Option<String> {
        let v = match name {
            "id" => f.id.split_once(':').map(|(_, n)| n.to_string()),
            "uuid" => f.host.uuid.clone(),
            "ip" => f.host.private_ip.clone().or(f.host.public_ip.clone()),
            "region" => f.host.region.clone().or(Some(ctx.region.clone())),
            "cluster_id" => f.kubernetes.cluster_id.clone(),
            "instance_id" => f.host.instance_id.clone(),
            _ => None,
        }?;
        opt(&v).map(|v| percent_encode(&v))
    };
    let mut url = String::new();
    let mut rest = template.as_str();
    while let Some(open) = rest.find('{') {
        let close = open + rest[open..].find('}')?;
        url.push_str(&rest[..open]);
        url.push_str(&value(&rest[open + 1..close])?);
        rest = &rest[close + 1..];
    }
    url.push_str(rest);
    Some(Link {
        kind: LinkKind::Asset,
        label: "In the console".into(),
        url,
    })
}

/// `f` with its own console page ([`own_link`]) in place of any default one.
fn with_own_link(ctx: &NormaliseContext, mut f: Finding) -> Finding {
    if let Some(link) = own_link(ctx, &f) {
        f.links.retain(|l| l.kind != LinkKind::Asset);
        f.links.insert(0, link);
    }
    f
}

/// A timestamp from epoch milliseconds; `None` for zero, negative or out-of-range values (the
/// service sends 0 for "never").
pub fn from_epoch_ms(ms: i64) -> Option<OffsetDateTime> {
    if ms <= 0 {
        return None;
    }
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// A timestamp from the service's `YYYY-MM-DD HH:mm:ss` (read at `offset`) or from RFC 3339;
/// converted to UTC. `None` when empty, unparseable, or outside the years UTC can hold
/// (`9999-12-31 23:59:59` at +08:00 is fine; `-08:00` would be year 10000).
pub fn parse_service_time(s: &str, offset: UtcOffset) -> Option<OffsetDateTime> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let t = match PrimitiveDateTime::parse(s, &fmt) {
        Ok(t) => t.assume_offset(offset),
        Err(_) => OffsetDateTime::parse(s, &Rfc3339).ok()?,
    };
    // `to_offset` panics past year 9999; a record's time is whatever the record says.
    t.checked_to_offset(UtcOffset::UTC)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Domains whose every host is Alibaba Cloud's own (consoles, accounts, documentation).
const OWN_DOMAINS: &[&str] = &["aliyun.com", "alibabacloud.com"];

/// The OSS bucket Security Center's reports are objects in
/// (`sas-report.oss-cn-shanghai.aliyuncs.com`). Only this bucket of `aliyuncs.com`: anyone can
/// create a bucket there (`phish.oss-cn-hangzhou.aliyuncs.com`) and serve a page from it.
const REPORT_BUCKET: &str = "sas-report";

/// Whether `url` is https to Alibaba Cloud's own hosts: under [`OWN_DOMAINS`], or the
/// [`REPORT_BUCKET`] in any OSS region. A URL inside an alert can be written by whoever the
/// alert is about; only such a one becomes a link (a "Report" button to any host would be a
/// phishing link with sasrelay's name on it). Any other is shown as text.
fn is_alibaba_cloud_https(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains(['@', '\\']) {
        return false; // user info: `https://oss.aliyuncs.com@evil.example/`
    }
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _port)| host)
        .to_ascii_lowercase();
    let under = |domain: &str| {
        host.strip_suffix(domain)
            .and_then(|sub| sub.strip_suffix('.'))
            .filter(|sub| !sub.is_empty())
    };
    let report_bucket = under("aliyuncs.com")
        .and_then(|sub| sub.strip_prefix(REPORT_BUCKET))
        .and_then(|region| region.strip_prefix(".oss-"))
        .is_some_and(|region| {
            !region.is_empty()
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    report_bucket || OWN_DOMAINS.iter().any(|d| under(d).is_some())
}

fn opt(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn first(candidates: &[&str]) -> String {
    candidates
        .iter()
        .map(|s| s.trim())
        .find(|s| !s.is_empty())
        .unwrap_or("")
        .to_string()
}

fn code(c: Option<i64>) -> String {
    c.map(|c| c.to_string()).unwrap_or_default()
}

/// Pushes a detail when its value is non-empty.
fn push(details: &mut Vec<Detail>, name: &str, value: impl Into<String>) {
    let value = value.into();
    if !value.trim().is_empty() {
        details.push(Detail {
            name: name.to_string(),
            value,
        });
    }
}

/// `name (ip, ip)` for an asset.
fn asset_label(name: &str, private_ip: &str, public_ip: &str) -> String {
    let ips: Vec<&str> = [private_ip, public_ip]
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    match (name.trim(), ips.is_empty()) {
        ("", true) => String::new(),
        ("", false) => ips.join(", "),
        (n, true) => n.to_string(),
        (n, false) => format!("{n} ({})", ips.join(", ")),
    }
}

// ---------------------------------------------------------------------------------------------
// Alerts

/// `Level` → severity: `serious`→critical, `suspicious`→high, `remind`→medium, other→info.
/// Alerts are the only domain with a critical tier because `serious` is the console's "urgent".
pub fn alert_severity(level: &str) -> Severity {
    match level.trim().to_ascii_lowercase().as_str() {
        "serious" => Severity::Critical,
        "suspicious" => Severity::High,
        "remind" => Severity::Medium,
        _ => Severity::Info,
    }
}

/// `EventStatus` → status (docs/sas-api.md §1.3): 1 pending is active; 2 ignored; 4 confirmed
/// and 32 handled are handled; 8 and 604 (system) false positive; 64 expired. 16 (processing)
/// stays active: the handling task can still fail and put the alert back to pending, and a
/// resolution sent then would be false. Absent or unknown codes are active, so nothing is
/// silently closed.
pub fn alert_status(event_status: Option<i64>) -> (Status, Option<Resolution>) {
    let resolved = |r| (Status::Resolved, Some(r));
    match event_status {
        Some(2) => resolved(Resolution::Ignored),
        Some(4 | 32) => resolved(Resolution::Handled),
        Some(8 | 604) => resolved(Resolution::FalsePositive),
        Some(64) => resolved(Resolution::Expired),
        _ => (Status::Active, None),
    }
}

/// Normalises one `DescribeSuspEvents` record.
pub fn normalise_alert(ctx: &NormaliseContext, item: Item<SuspEvent>) -> Finding {
    with_own_link(ctx, normalise_alert_fields(ctx, item))
}

fn normalise_alert_fields(ctx: &NormaliseContext, item: Item<SuspEvent>) -> Finding {
    let e = &item.typed;
    let (id, key): (String, Vec<String>) = match &e.id {
        Some(n) => (format!("alert:{n}"), vec!["id".into(), n.to_string()]),
        None => {
            let unique = first(&[&e.alarm_unique_info, &e.unique_info]);
            let parts = [unique, e.uuid.trim().into(), e.container_id.trim().into()];
            (format!("alert:{}", parts.join("/")), natural(&parts))
        }
    };
    let (status, resolution) = alert_status(e.event_status);
    let (cluster_id, cluster_name) = ctx.cluster(e.cluster_id(), &e.k8s_cluster_name);
    let first_seen = from_epoch_ms(e.occurrence_time_stamp)
        .or_else(|| parse_service_time(&e.occurrence_time, ctx.service_offset));
    let last_seen = from_epoch_ms(e.last_time_stamp)
        .or_else(|| parse_service_time(&e.last_time, ctx.service_offset));

    let mut details = Vec::new();
    push(
        &mut details,
        "Event time",
        last_seen
            .map(rfc3339)
            .unwrap_or_else(|| e.last_time.clone()),
    );
    push(
        &mut details,
        "Affected asset",
        asset_label(&e.instance_name, &e.intranet_ip, &e.internet_ip),
    );
    for d in &e.details {
        let value = first(&[&d.value_display, &d.value]);
        let name = first(&[&d.name_display]);
        if !name.is_empty() || !value.is_empty() {
            details.push(Detail { name, value });
        }
    }

    let mut links = Vec::new();
    if let Some(url) = opt(&e.deep_analyze_report_url) {
        if is_alibaba_cloud_https(&url) {
            links.push(Link {
                kind: LinkKind::Report,
                label: "Deep analysis report".into(),
                url,
            });
        } else {
            // Shown as text (defanged like every value), never as a link or button.
            details.push(Detail {
                name: "Deep analysis report (not an Alibaba Cloud address)".into(),
                value: url,
            });
        }
    }
    links.extend(ctx.common_links(cluster_id.as_deref()));

    let mut tactics: Vec<Tactic> = e
        .tactic_items
        .iter()
        .filter(|t| !t.tactic_id.trim().is_empty() || !t.tactic_display_name.trim().is_empty())
        .map(|t| Tactic {
            id: t.tactic_id.trim().to_string(),
            name: t.tactic_display_name.trim().to_string(),
        })
        .collect();
    if tactics.is_empty() {
        tactics = e
            .stages
            .split(',')
            .filter_map(opt)
            .map(|id| Tactic {
                id,
                name: String::new(),
            })
            .collect();
    }

    let key_refs: Vec<&str> = key.iter().map(String::as_str).collect();
    Finding {
        domain: Domain::Alerts,
        id,
        fingerprint: fingerprint(&ctx.scope, Domain::Alerts, &key_refs),
        severity: alert_severity(&e.level),
        native_severity: e.level.trim().to_string(),
        status,
        resolution,
        native_status: code(e.event_status),
        title: first(&[&e.alarm_event_name_display, &e.alarm_event_name, &e.name]),
        description: e.desc.trim().to_string(),
        alert_type: first(&[&e.alarm_event_type_display, &e.alarm_event_type]),
        kubernetes: Kubernetes {
            cluster_id,
            cluster_name,
            namespace: opt(&e.k8s_namespace),
            pod: opt(&e.k8s_pod_name),
            container_id: opt(&e.container_id),
            container_name: None,
            image: opt(&e.container_image_name),
            node: opt(&e.k8s_node_name),
            app: opt(&e.app_name),
        },
        host: Host {
            instance_id: opt(&e.instance_id),
            instance_name: opt(&e.instance_name),
            public_ip: opt(&e.internet_ip),
            private_ip: opt(&e.intranet_ip),
            uuid: opt(&e.uuid),
            region: None,
        },
        first_seen,
        last_seen,
        details,
        links,
        cves: Vec::new(),
        tactics,
        source: ctx.source.clone(),
        region: ctx.region.clone(),
        raw: item.raw.into(),
    }
}

/// A natural key: a `natural` tag (so it never equals an ID key) and the parts.
fn natural(parts: &[String]) -> Vec<String> {
    std::iter::once("natural".to_string())
        .chain(parts.iter().cloned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Vulnerabilities

/// `Necessity` → severity: `asap`→high, `later`→medium, `nntf`→low, other→info.
pub fn vul_severity(necessity: &str) -> Severity {
    match necessity.trim().to_ascii_lowercase().as_str() {
        "asap" => Severity::High,
        "later" => Severity::Medium,
        "nntf" => Severity::Low,
        _ => Severity::Info,
    }
}

/// The `Status` codes [`vul_status`] closes with a resolution (7, 8 fixed, 10 ignored, 20
/// expired): what a lookup of vulnerabilities that left the pending list asks for (`StatusList`),
/// so every record it returns carries a real reason. Kept next to the mapping; a test holds the
/// two together.
pub const VUL_RESOLVED_STATUSES: [i64; 4] = [7, 8, 10, 20];

/// `Status` → status (docs/sas-api.md §2.4): 7 fixed and 8 fixed-restart-needed are fixed, 10 ignored,
/// 20 expired. 9 and 11 ("rolled back") are active: the contract lists them as done, but a
/// rolled-back fix leaves the vulnerability in place. Open (1, 2, 3, 12), in-progress (4, 5, 6)
/// and unknown codes are active.
pub fn vul_status(status: Option<i64>) -> (Status, Option<Resolution>) {
    let resolved = |r| (Status::Resolved, Some(r));
    match status {
        Some(7 | 8) => resolved(Resolution::Fixed),
        Some(10) => resolved(Resolution::Ignored),
        Some(20) => resolved(Resolution::Expired),
        _ => (Status::Active, None),
    }
}

fn vul_type_name(kind: &str) -> String {
    match kind.trim().to_ascii_lowercase().as_str() {
        "cve" => "Linux software vulnerability".into(),
        "sys" => "Windows system vulnerability".into(),
        "cms" => "Web-CMS vulnerability".into(),
        "emg" => "Emergency vulnerability".into(),
        "app" => "Application vulnerability".into(),
        "sca" => "Application vulnerability (software composition)".into(),
        other => other.to_string(),
    }
}

/// The `PrimaryId` in a vulnerability finding's id (`vul:<PrimaryId>`, as
/// [`normalise_vulnerability`] writes it); `None` for the natural-key ids of records that had
/// none (`vul:<Uuid>/<Name>/<ContainerId>`) and for other domains' ids.
pub fn vul_primary_id(id: &str) -> Option<crate::sas::models::RecordId> {
    let rest = id.strip_prefix("vul:")?;
    // A natural key is `<Uuid>/<Name>/<ContainerId>`; an id is one part.
    Some(rest)
        .filter(|r| !r.is_empty() && !r.contains('/'))
        .map(str::to_string)
}

/// Normalises one `DescribeVulList` record.
pub fn normalise_vulnerability(ctx: &NormaliseContext, item: Item<VulRecord>) -> Finding {
    with_own_link(ctx, normalise_vulnerability_fields(ctx, item))
}

fn normalise_vulnerability_fields(ctx: &NormaliseContext, item: Item<VulRecord>) -> Finding {
    let v = &item.typed;
    let x = &v.extend_content_json;
    let primary = v.primary_id.as_ref().or(x.primary_id.as_ref());
    let (id, key): (String, Vec<String>) = match primary {
        Some(n) => (format!("vul:{n}"), vec!["id".into(), n.to_string()]),
        None => {
            let parts = [
                v.uuid.trim().to_string(),
                v.name.trim().to_string(),
                v.container_id.trim().to_string(),
            ];
            (format!("vul:{}", parts.join("/")), natural(&parts))
        }
    };
    let (status, resolution) = vul_status(v.status.or_else(|| x.status.trim().parse().ok()));
    let cves = v.cves();
    let (cluster_id, cluster_name) = ctx.cluster(v.cluster_id(), "");
    let rpm = x.rpm_entity_list.first();
    let image = opt(&v.image).or_else(|| rpm.and_then(|r| opt(&r.image_name)));
    let container_name = rpm.and_then(|r| opt(&r.container_name));

    let mut details = Vec::new();
    push(&mut details, "Rule", v.name.trim());
    push(&mut details, "CVEs", cves.join(", "));
    push(
        &mut details,
        "Affected asset",
        asset_label(&v.instance_name, &v.intranet_ip, &v.internet_ip),
    );
    for r in &x.rpm_entity_list {
        push(&mut details, "Package", r.name.trim());
        push(
            &mut details,
            "Version",
            first(&[&r.version, &r.full_version]),
        );
        push(&mut details, "Path", r.path.trim());
        push(&mut details, "Container", r.container_name.trim());
        push(&mut details, "Image", r.image_name.trim());
        push(&mut details, "Match", r.match_detail.trim());
        push(&mut details, "Fix command", r.update_cmd.trim());
    }
    if x.rpm_entity_list.is_empty() {
        push(&mut details, "Path", x.absolute_path.trim());
    }
    push(
        &mut details,
        "Priority score",
        x.necessity.total_score.trim(),
    );

    let mut links: Vec<Link> = cves
        .iter()
        .map(|c| Link {
            kind: LinkKind::Cve,
            label: c.clone(),
            url: cve_url(c),
        })
        .collect();
    let region = first(&[&v.region_id, &ctx.region]);
    if let (Some(uuid), Some(ip), false) = (opt(&v.uuid), opt(&v.intranet_ip), region.is_empty()) {
        links.push(Link {
            kind: LinkKind::Asset,
            label: "Asset vulnerabilities".into(),
            url: format!(
                "{}#/assetsDetail/{}-IP-{}/vul/0/{}",
                ctx.console_base,
                percent_encode(&uuid),
                percent_encode(&ip),
                percent_encode(&region)
            ),
        });
    }
    links.extend(ctx.common_links(cluster_id.as_deref()));

    let key_refs: Vec<&str> = key.iter().map(String::as_str).collect();
    Finding {
        domain: Domain::Vulnerabilities,
        id,
        fingerprint: fingerprint(&ctx.scope, Domain::Vulnerabilities, &key_refs),
        severity: vul_severity(&v.necessity),
        native_severity: v.necessity.trim().to_string(),
        status,
        resolution,
        native_status: code(v.status),
        title: first(&[&v.alias_name, &x.alias_name, &v.name]),
        description: first(&[&x.description]),
        alert_type: vul_type_name(&v.kind),
        kubernetes: Kubernetes {
            cluster_id,
            cluster_name,
            namespace: opt(&v.k8s_namespace).or_else(|| opt(&v.namespace)),
            pod: opt(&v.k8s_pod_name),
            container_id: opt(&v.container_id),
            container_name,
            image,
            node: opt(&v.k8s_node_name),
            app: None,
        },
        host: Host {
            instance_id: opt(&v.instance_id),
            instance_name: opt(&v.instance_name),
            public_ip: opt(&v.internet_ip),
            private_ip: opt(&v.intranet_ip).or_else(|| opt(&x.ip)),
            uuid: opt(&v.uuid),
            region: opt(&v.region_id),
        },
        first_seen: from_epoch_ms(v.first_ts),
        last_seen: from_epoch_ms(v.last_ts).or_else(|| from_epoch_ms(x.last_ts)),
        details,
        links,
        cves,
        tactics: Vec::new(),
        source: ctx.source.clone(),
        region: ctx.region.clone(),
        raw: item.raw.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Baseline

/// `Level` → severity: `high`, `medium`, `low` as named; other→info.
pub fn baseline_severity(level: &str) -> Severity {
    match level.trim().to_ascii_lowercase().as_str() {
        "high" => Severity::High,
        "medium" => Severity::Medium,
        "low" => Severity::Low,
        _ => Severity::Info,
    }
}

/// Check `Status` → status (docs/sas-api.md §3.3, §3.5): 3 passed and 8 fixed are fixed, 5 expired,
/// 6 ignored (the newer API calls it whitelisted). 1 failed, 2 verifying, 7 fixing and unknown
/// codes are active.
pub fn baseline_status(status: Option<i64>) -> (Status, Option<Resolution>) {
    let resolved = |r| (Status::Resolved, Some(r));
    match status {
        Some(3 | 8) => resolved(Resolution::Fixed),
        Some(5) => resolved(Resolution::Expired),
        Some(6) => resolved(Resolution::Ignored),
        _ => (Status::Active, None),
    }
}

/// `hc.check.type.access_control` → `Access control`.
fn check_type_name(kind: &str) -> String {
    let short = kind.trim().trim_start_matches("hc.check.type.");
    let spaced = short.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Normalises one baseline check result (with its risk, machine and detail).
pub fn normalise_baseline(ctx: &NormaliseContext, item: BaselineItem) -> Finding {
    with_own_link(ctx, normalise_baseline_fields(ctx, item))
}

fn normalise_baseline_fields(ctx: &NormaliseContext, item: BaselineItem) -> Finding {
    let risk = &item.risk.typed;
    let m = &item.machine.typed;
    let c = &item.check.typed;
    let detail = item.detail.as_ref().map(|d| &d.typed);
    let uuid = first(&[&c.uuid, &m.uuid]);
    let container_name = first(&[&c.container_name, &m.container_name]);
    let (id, key): (String, Vec<String>) = match &c.check_warning_id {
        Some(n) => (format!("baseline:{n}"), vec!["id".into(), n.to_string()]),
        None => {
            let parts = [uuid.clone(), code(c.check_id), container_name.clone()];
            (format!("baseline:{}", parts.join("/")), natural(&parts))
        }
    };
    let level = first(&[
        &c.level,
        detail.map(|d| d.level.as_str()).unwrap_or(""),
        &risk.level,
    ]);
    let (status, resolution) = baseline_status(c.status);
    let (cluster_id, cluster_name) = ctx.cluster(None, "");
    let item_title = first(&[&c.item, detail.map(|d| d.item.as_str()).unwrap_or("")]);
    let kind = first(&[&c.kind, detail.map(|d| d.kind.as_str()).unwrap_or("")]);
    let category: Vec<&str> = [risk.type_alias.trim(), risk.sub_type_alias.trim()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();

    let mut details = Vec::new();
    push(&mut details, "Check item", item_title.clone());
    push(&mut details, "Check type", check_type_name(&kind));
    push(&mut details, "Risk", risk.risk_name.trim());
    push(&mut details, "Risk category", category.join(" / "));
    push(
        &mut details,
        "Affected asset",
        asset_label(&m.instance_name, &m.intranet_ip, &m.internet_ip),
    );
    push(&mut details, "Container", container_name.clone());
    push(&mut details, "Reason", c.reason.trim());
    push(&mut details, "Error", c.exec_error_message.trim());
    push(
        &mut details,
        "Advice",
        detail.map(|d| d.advice.trim()).unwrap_or(""),
    );

    let key_refs: Vec<&str> = key.iter().map(String::as_str).collect();
    Finding {
        domain: Domain::Baseline,
        id,
        fingerprint: fingerprint(&ctx.scope, Domain::Baseline, &key_refs),
        severity: baseline_severity(&level),
        native_severity: level,
        status,
        resolution,
        native_status: code(c.status),
        title: first(&[&item_title, &risk.risk_name]),
        description: detail
            .map(|d| d.description.trim().to_string())
            .unwrap_or_default(),
        alert_type: first(&[&category.join(" / "), &risk.risk_name]),
        kubernetes: Kubernetes {
            cluster_id: cluster_id.clone(),
            cluster_name,
            namespace: None,
            pod: None,
            container_id: opt(&c.container_id).or_else(|| opt(&m.container_id)),
            container_name: opt(&container_name),
            image: None,
            node: None,
            app: None,
        },
        host: Host {
            instance_id: opt(&m.instance_id),
            instance_name: opt(&m.instance_name),
            public_ip: opt(&m.internet_ip),
            private_ip: opt(&m.intranet_ip),
            uuid: opt(&uuid),
            region: opt(&m.region_id),
        },
        first_seen: None,
        last_seen: parse_service_time(&risk.last_found_time, ctx.service_offset),
        details,
        links: ctx.common_links(cluster_id.as_deref()),
        cves: Vec::new(),
        tactics: Vec::new(),
        source: ctx.source.clone(),
        region: ctx.region.clone(),
        raw: item.into_raw().into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Container firewall

/// `RiskLevel` → severity: 3→high, 2→medium, 1→low, 0 (none), -1 (unknown) and absent→info.
pub fn firewall_severity(risk_level: Option<i64>) -> Severity {
    match risk_level {
        Some(3) => Severity::High,
        Some(2) => Severity::Medium,
        Some(1) => Severity::Low,
        _ => Severity::Info,
    }
}

/// `Status` → status (docs/sas-api.md §4.1): 0 unhandled is active; 1 handled and 2 manually
/// handled are handled; 3 ignored. Unknown codes are active.
pub fn firewall_status(status: Option<i64>) -> (Status, Option<Resolution>) {
    let resolved = |r| (Status::Resolved, Some(r));
    match status {
        Some(1 | 2) => resolved(Resolution::Handled),
        Some(3) => resolved(Resolution::Ignored),
        _ => (Status::Active, None),
    }
}

/// Rule mode name: 0 observe, 1 block, 2 alert, 3 allow.
pub fn interception_mode(mode: Option<i64>) -> String {
    match mode {
        Some(0) => "observe".into(),
        Some(1) => "block".into(),
        Some(2) => "alert".into(),
        Some(3) => "allow".into(),
        Some(n) => format!("unknown ({n})"),
        None => String::new(),
    }
}

/// `namespace/pod (image)`, falling back to the rule's `namespace/app`.
fn endpoint(ns: &str, pod: &str, image: &str, rule_ns: &str, rule_app: &str) -> String {
    let path = |a: &str, b: &str| -> String {
        [a.trim(), b.trim()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("/")
    };
    let observed = path(ns, pod);
    let base = if observed.is_empty() {
        path(rule_ns, rule_app)
    } else {
        observed
    };
    match opt(image) {
        Some(img) if !base.is_empty() => format!("{base} ({img})"),
        Some(img) => img,
        None => base,
    }
}

/// Normalises one `ListInterceptionHistory` record.
pub fn normalise_firewall(ctx: &NormaliseContext, item: Item<InterceptionHistory>) -> Finding {
    with_own_link(ctx, normalise_firewall_fields(ctx, item))
}

fn normalise_firewall_fields(ctx: &NormaliseContext, item: Item<InterceptionHistory>) -> Finding {
    let f = &item.typed;
    let (id, key) = firewall_identity(f);
    let (status, resolution) = firewall_status(f.status);
    let (cluster_id, cluster_name) = ctx.cluster(opt(&f.cluster_id), &f.cluster_name);
    let name = f.interception_name.trim();
    let alert_type = if name.is_empty() || name.parse::<i64>().is_ok() {
        "Container firewall alert".to_string()
    } else {
        name.to_string()
    };
    let src_app = first(&[
        &f.real_src_app_name,
        &f.src_app_name,
        &f.src_rule_target_name,
    ]);
    let dst_app = first(&[
        &f.real_dst_app_name,
        &f.dst_app_name,
        &f.dst_rule_target_name,
    ]);
    let port = code(f.dst_port);
    let dst_short = if port.is_empty() {
        dst_app.clone()
    } else {
        format!("{dst_app}:{port}")
    };
    let source = endpoint(
        &f.real_src_namespace,
        &f.real_src_pod_name,
        &f.real_src_image_name,
        &f.src_namespace,
        &f.src_app_name,
    );
    let target = endpoint(
        &f.real_dst_namespace,
        &f.real_dst_pod_name,
        &f.real_dst_image_name,
        &f.dst_namespace,
        &f.dst_app_name,
    );
    let rule = match (opt(&f.rule_name), f.rule_id) {
        (Some(n), Some(id)) => format!("{n} ({id})"),
        (Some(n), None) => n,
        (None, Some(id)) => id.to_string(),
        (None, None) => String::new(),
    };
    let applied = interception_mode(f.real_interception_type.or(f.interception_type));
    let last_seen = from_epoch_ms(f.last_time);

    let connection = Connection {
        source: &source,
        target: &target,
        port: &port,
        rule: &rule,
        applied: &applied,
    };
    let details = connection.details(f, last_seen);
    let description = connection.description(f.try_count);

    let key_refs: Vec<&str> = key.iter().map(String::as_str).collect();
    Finding {
        domain: Domain::Firewall,
        id,
        fingerprint: fingerprint(&ctx.scope, Domain::Firewall, &key_refs),
        severity: firewall_severity(f.risk_level),
        native_severity: code(f.risk_level),
        status,
        resolution,
        native_status: code(f.status),
        title: format!("{alert_type}: {src_app} → {dst_short}"),
        description,
        alert_type,
        kubernetes: Kubernetes {
            cluster_id: cluster_id.clone(),
            cluster_name,
            namespace: opt(&f.real_src_namespace).or_else(|| opt(&f.src_namespace)),
            pod: opt(&f.real_src_pod_name),
            container_id: None,
            container_name: None,
            image: opt(&f.real_src_image_name),
            node: None,
            app: opt(&src_app),
        },
        host: Host::default(),
        first_seen: from_epoch_ms(f.first_time),
        last_seen,
        details,
        links: ctx.common_links(cluster_id.as_deref()),
        cves: Vec::new(),
        tactics: Vec::new(),
        source: ctx.source.clone(),
        region: ctx.region.clone(),
        raw: item.raw.into(),
    }
}

/// A firewall record's id and dedup key: its `Id`, else the natural key of the connection.
fn firewall_identity(f: &InterceptionHistory) -> (String, Vec<String>) {
    match &f.id {
        Some(n) => (format!("firewall:{n}"), vec!["id".into(), n.to_string()]),
        None => {
            let parts = [
                f.cluster_id.trim().to_string(),
                code(f.rule_id),
                f.real_src_pod_name.trim().to_string(),
                f.real_dst_pod_name.trim().to_string(),
                code(f.dst_port),
                f.first_time.to_string(),
            ];
            (format!("firewall:{}", parts.join("/")), natural(&parts))
        }
    }
}

/// The parts of an intercepted connection that the details and the description show.
struct Connection<'a> {
    source: &'a str,
    target: &'a str,
    port: &'a str,
    rule: &'a str,
    applied: &'a str,
}

impl Connection<'_> {
    fn details(&self, f: &InterceptionHistory, last_seen: Option<OffsetDateTime>) -> Vec<Detail> {
        let mut details = Vec::new();
        push(
            &mut details,
            "Event time",
            last_seen.map(rfc3339).unwrap_or_default(),
        );
        push(&mut details, "Source", self.source);
        push(&mut details, "Target", self.target);
        push(&mut details, "Port", self.port);
        push(&mut details, "Rule", self.rule);
        push(
            &mut details,
            "Defence mode",
            interception_mode(f.interception_type),
        );
        push(&mut details, "Applied mode", self.applied);
        push(&mut details, "Try count", f.try_count.to_string());
        details
    }

    fn description(&self, try_count: i64) -> String {
        let (source, target, port, rule, applied) =
            (self.source, self.target, self.port, self.rule, self.applied);
        let mut description = format!("Connection from {source} to {target}");
        if !port.is_empty() {
            description.push_str(&format!(" on port {port}"));
        }
        description.push_str(&format!(": {try_count} attempt(s)"));
        if !rule.is_empty() {
            description.push_str(&format!("; rule {rule}"));
        }
        if !applied.is_empty() {
            description.push_str(&format!(", applied mode {applied}"));
        }
        description.push('.');
        description
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_alibaba_cloud_https_report_urls_are_links() {
        for ok in [
            "https://sas-report.oss-cn-shanghai.aliyuncs.com/deep/752312.pdf",
            "https://SAS-REPORT.OSS-CN-SHANGHAI.ALIYUNCS.COM:443/deep/1.pdf?Expires=1&Signature=x",
            "https://sas-report.oss-ap-southeast-1.aliyuncs.com/deep/1.pdf",
            "https://yundun.console.aliyun.com/?p=sas#/x",
            "https://account.alibabacloud.com/login",
        ] {
            assert!(super::is_alibaba_cloud_https(ok), "{ok}");
        }
        for bad in [
            "http://sas-report.oss-cn-shanghai.aliyuncs.com/deep/1.pdf",
            "https://evil.example/sas-login",
            "https://aliyuncs.com.evil.example/x",
            "https://evilaliyuncs.com/x",
            "https://aliyuncs.com/x",
            "https://.aliyuncs.com/x",
            "https://oss.aliyuncs.com@evil.example/x",
            "https://evil.example\\@oss.aliyuncs.com/x",
            "https://evil.example?.aliyuncs.com",
            "https://evil.example#.aliyuncs.com",
            "javascript:alert(1)//.aliyuncs.com",
            // Anyone's bucket, or anything else on aliyuncs.com, is not Alibaba Cloud's page.
            "https://phish.oss-cn-hangzhou.aliyuncs.com/login.html",
            "https://sas-report2.oss-cn-hangzhou.aliyuncs.com/x",
            "https://sas-report.oss-cn-hangzhou.aliyuncs.com.evil.example/x",
            "https://x.sas-report.oss-cn-hangzhou.aliyuncs.com/x",
            "https://sas-report.oss-.aliyuncs.com/x",
            "https://sas-report.evil.aliyuncs.com/x",
            "https://ecs.cn-hangzhou.aliyuncs.com/x",
        ] {
            assert!(!super::is_alibaba_cloud_https(bad), "{bad}");
        }
    }

    #[test]
    fn a_console_link_template_fills_from_the_finding_or_gives_no_link() {
        assert!(check_link_template("https://c.example/#/a?id={id}&r={region}").is_ok());
        assert!(check_link_template("ftp://c.example/{id}").is_err());
        assert!(check_link_template("https://c.example/{nope}").is_err());
        assert!(check_link_template("https://c.example/{id").is_err());
        let mut ctx = NormaliseContext::new("prod", "cn-hangzhou");
        ctx.console_links.insert(
            Domain::Alerts,
            "https://c.example/#/alarm?id={id}&uuid={uuid}&r={region}".into(),
        );
        let mut f = crate::render::sample_event(Domain::Alerts).finding.unwrap();
        f.id = "alert:752312".into();
        f.host.uuid = Some("u 1/2".into());
        f.host.region = None;
        let l = own_link(&ctx, &f).unwrap();
        assert_eq!(l.kind, LinkKind::Asset);
        assert_eq!(
            l.url,
            "https://c.example/#/alarm?id=752312&uuid=u%201%2F2&r=cn-hangzhou"
        );
        f.host.uuid = None;
        assert_eq!(own_link(&ctx, &f), None, "no half-filled link");
        let v = crate::render::sample_event(Domain::Vulnerabilities)
            .finding
            .unwrap();
        assert_eq!(own_link(&ctx, &v), None, "no template for the domain");
    }
    use super::*;

    #[test]
    fn service_time_parsing() {
        let t = parse_service_time("2024-05-20 08:12:44", offset!(+8)).unwrap();
        assert_eq!(t.unix_timestamp(), 1_716_163_964);
        assert_eq!(rfc3339(t), "2024-05-20T00:12:44Z");
        let t = parse_service_time("2024-05-20T00:12:44Z", offset!(+8)).unwrap();
        assert_eq!(t.unix_timestamp(), 1_716_163_964);
        assert!(parse_service_time("", offset!(+8)).is_none());
        assert!(parse_service_time("yesterday", offset!(+8)).is_none());
        // Past the years UTC holds: no time, never a panic (a poller that panics on one record
        // dies again on it after every restart).
        assert!(parse_service_time("9999-12-31T23:59:59-08:00", offset!(+8)).is_none());
        assert!(parse_service_time("-9999-01-01 00:00:00", offset!(+8)).is_none());
        assert!(parse_service_time("9999-12-31 23:59:59", offset!(-8)).is_none());
        assert!(parse_service_time("9999-12-31 23:59:59", offset!(+8)).is_some());
        assert!(from_epoch_ms(0).is_none());
        assert!(from_epoch_ms(-5).is_none());
        assert!(from_epoch_ms(i64::MAX).is_none());
        assert_eq!(
            rfc3339(from_epoch_ms(1_716_163_964_000).unwrap()),
            "2024-05-20T00:12:44Z"
        );
    }

    #[test]
    fn check_type_names() {
        assert_eq!(
            check_type_name("hc.check.type.access_control"),
            "Access control"
        );
        assert_eq!(check_type_name(""), "");
    }

    #[test]
    fn status_tables() {
        use Resolution::*;
        let active = (Status::Active, None);
        let r = |x| (Status::Resolved, Some(x));
        for (code, want) in [
            (None, active),
            (Some(1), active),
            (Some(2), r(Ignored)),
            (Some(4), r(Handled)),
            (Some(8), r(FalsePositive)),
            (Some(16), active),
            (Some(32), r(Handled)),
            (Some(64), r(Expired)),
            (Some(604), r(FalsePositive)),
            (Some(999), active),
        ] {
            assert_eq!(alert_status(code), want, "alert {code:?}");
        }
        for (code, want) in [
            (Some(1), active),
            (Some(2), active),
            (Some(4), active),
            (Some(6), active),
            (Some(7), r(Fixed)),
            (Some(8), r(Fixed)),
            (Some(9), active),
            (Some(10), r(Ignored)),
            (Some(11), active),
            (Some(12), active),
            (Some(20), r(Expired)),
        ] {
            assert_eq!(vul_status(code), want, "vul {code:?}");
        }
        let resolving: Vec<i64> = (-1..=64)
            .filter(|c| vul_status(Some(*c)).0 == Status::Resolved)
            .collect();
        assert_eq!(resolving, VUL_RESOLVED_STATUSES);
        for (code, want) in [
            (Some(1), active),
            (Some(2), active),
            (Some(3), r(Fixed)),
            (Some(5), r(Expired)),
            (Some(6), r(Ignored)),
            (Some(7), active),
            (Some(8), r(Fixed)),
        ] {
            assert_eq!(baseline_status(code), want, "baseline {code:?}");
        }
        for (code, want) in [
            (Some(0), active),
            (Some(1), r(Handled)),
            (Some(2), r(Handled)),
            (Some(3), r(Ignored)),
            (None, active),
        ] {
            assert_eq!(firewall_status(code), want, "firewall {code:?}");
        }
    }

    #[test]
    fn vulnerability_ids_give_their_primary_id_back() {
        let ctx = NormaliseContext::new("prod", "cn-hangzhou");
        let with = normalise_vulnerability(
            &ctx,
            Item::from_value(serde_json::json!({"PrimaryId": 1040311702})).unwrap(),
        );
        assert_eq!(vul_primary_id(&with.id), Some("1040311702".into()));
        let without = normalise_vulnerability(
            &ctx,
            Item::from_value(serde_json::json!({"Uuid": "u-1", "Name": "n", "ContainerId": "42"}))
                .unwrap(),
        );
        assert_eq!(without.id, "vul:u-1/n/42");
        assert_eq!(vul_primary_id(&without.id), None);
        assert_eq!(vul_primary_id("alert:12"), None);
        assert_eq!(vul_primary_id("vul:"), None);
    }

    #[test]
    fn severity_tables() {
        use Severity::*;
        for (l, s) in [
            ("serious", Critical),
            ("SERIOUS", Critical),
            ("suspicious", High),
            ("remind", Medium),
            ("", Info),
            ("other", Info),
        ] {
            assert_eq!(alert_severity(l), s, "{l}");
        }
        for (l, s) in [
            ("asap", High),
            ("later", Medium),
            ("nntf", Low),
            ("x", Info),
        ] {
            assert_eq!(vul_severity(l), s, "{l}");
        }
        for (l, s) in [("high", High), ("medium", Medium), ("low", Low), ("", Info)] {
            assert_eq!(baseline_severity(l), s, "{l}");
        }
        for (l, s) in [
            (Some(3), High),
            (Some(2), Medium),
            (Some(1), Low),
            (Some(0), Info),
            (Some(-1), Info),
            (None, Info),
        ] {
            assert_eq!(firewall_severity(l), s, "{l:?}");
        }
    }
}
