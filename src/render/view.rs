//! What templates see: a payload turned into a minijinja value, with every untrusted string
//! clipped to the current [`Budget`] (but **not** escaped: the environment's formatter escapes
//! each value as it is printed, per output kind), localised labels, and trusted URLs prepared
//! for the output kind and marked safe.
//!
//! The names are documented in the parent module ("Template context").

use std::collections::BTreeMap;

use minijinja::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{ActionButton, Budget, Lang, TemplateKind, action_label};
use crate::event::{Digest, Event, EventKind, Payload};
use crate::finding::{Domain, Finding, Host, Kubernetes, LinkKind, Resolution, Severity};
use crate::text::clip;

/// A `{name: value}` map built field by field.
#[derive(Default)]
struct Obj(BTreeMap<&'static str, Value>);

impl Obj {
    fn set(mut self, k: &'static str, v: impl Into<Value>) -> Self {
        self.0.insert(k, v.into());
        self
    }
    fn value(self) -> Value {
        Value::from(self.0)
    }
}

fn opt_str(v: Option<String>) -> Value {
    v.map(Value::from).unwrap_or(Value::from(()))
}

/// RFC 3339 in UTC.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    utc.format(&Rfc3339)
        .unwrap_or_else(|_| utc.unix_timestamp().to_string())
}

/// Severity as the templates and headers name it.
pub(crate) fn severity_label(s: Severity, lang: Lang) -> &'static str {
    match (lang, s) {
        (Lang::En, Severity::Critical) => "Critical",
        (Lang::En, Severity::High) => "High",
        (Lang::En, Severity::Medium) => "Medium",
        (Lang::En, Severity::Low) => "Low",
        (Lang::En, Severity::Info) => "Info",
        (Lang::Zh, Severity::Critical) => "严重",
        (Lang::Zh, Severity::High) => "高危",
        (Lang::Zh, Severity::Medium) => "中危",
        (Lang::Zh, Severity::Low) => "低危",
        (Lang::Zh, Severity::Info) => "提示",
    }
}

pub(crate) fn kind_label(k: EventKind, lang: Lang) -> &'static str {
    match (lang, k) {
        (Lang::En, k) => k.as_str(),
        (Lang::Zh, EventKind::New) => "新",
        (Lang::Zh, EventKind::Recurring) => "再次出现的",
        (Lang::Zh, EventKind::Resolved) => "已解决的",
        (Lang::Zh, EventKind::Summary) => "汇总",
        (Lang::Zh, EventKind::Reminder) => "仍未处理的",
    }
}

/// Singular noun of a domain's finding.
pub(crate) fn noun(d: Domain, lang: Lang) -> &'static str {
    match (lang, d) {
        (Lang::En, Domain::Alerts) => "alert",
        (Lang::En, Domain::Vulnerabilities) => "vulnerability",
        (Lang::En, Domain::Baseline) => "baseline risk",
        (Lang::En, Domain::Firewall) => "container-firewall alert",
        (Lang::Zh, Domain::Alerts) => "告警",
        (Lang::Zh, Domain::Vulnerabilities) => "漏洞",
        (Lang::Zh, Domain::Baseline) => "基线风险",
        (Lang::Zh, Domain::Firewall) => "容器防火墙告警",
    }
}

fn domain_label(d: Domain, lang: Lang) -> &'static str {
    match (lang, d) {
        (Lang::En, Domain::Alerts) => "Alerts",
        (Lang::En, Domain::Vulnerabilities) => "Vulnerabilities",
        (Lang::En, Domain::Baseline) => "Baseline",
        (Lang::En, Domain::Firewall) => "Container firewall",
        (Lang::Zh, d) => noun(d, lang),
    }
}

/// A resolution as people read it, naming who handled it through sasrelay when someone did
/// (`ignored, by alice via sasrelay (cli)`).
pub(crate) fn resolution_text(
    r: Resolution,
    by: Option<&crate::event::HandledBy>,
    lang: Lang,
    b: &Budget,
) -> String {
    let label = resolution_label(r, lang);
    match (by, lang) {
        (None, _) => label.to_string(),
        (Some(h), Lang::En) => format!(
            "{label}, by {} via sasrelay ({})",
            clip(&h.who, b.field.min(128)),
            h.via
        ),
        (Some(h), Lang::Zh) => format!(
            "{label}，由 {} 通过 sasrelay（{}）处理",
            clip(&h.who, b.field.min(128)),
            h.via
        ),
    }
}

pub(crate) fn resolution_label(r: Resolution, lang: Lang) -> &'static str {
    match (lang, r) {
        (Lang::En, Resolution::Handled) => "handled",
        (Lang::En, Resolution::Ignored) => "ignored",
        (Lang::En, Resolution::FalsePositive) => "false positive",
        (Lang::En, Resolution::Fixed) => "fixed",
        (Lang::En, Resolution::Expired) => "expired",
        (Lang::En, Resolution::Gone) => "no longer listed",
        (Lang::Zh, Resolution::Handled) => "已处理",
        (Lang::Zh, Resolution::Ignored) => "已忽略",
        (Lang::Zh, Resolution::FalsePositive) => "误报",
        (Lang::Zh, Resolution::Fixed) => "已修复",
        (Lang::Zh, Resolution::Expired) => "已过期",
        (Lang::Zh, Resolution::Gone) => "已不在列表中",
    }
}

/// Label of a link button or inline link. CVE links keep their (clipped) label, the CVE ID,
/// unless it would print as nothing.
pub(crate) fn link_label(kind: LinkKind, label: &str, lang: Lang) -> String {
    match (lang, kind) {
        (_, LinkKind::Cve) if crate::text::strip_control(label).trim().is_empty() => "CVE".into(),
        (_, LinkKind::Cve) => clip(label, 40),
        (Lang::En, LinkKind::Console) => "Security Center".into(),
        (Lang::En, LinkKind::Cluster) => "ACK cluster".into(),
        (Lang::En, LinkKind::Asset) => "Alert detail".into(),
        (Lang::En, LinkKind::Report) => "Report".into(),
        (Lang::Zh, LinkKind::Console) => "云安全中心".into(),
        (Lang::Zh, LinkKind::Cluster) => "ACK 集群".into(),
        (Lang::Zh, LinkKind::Asset) => "告警详情".into(),
        (Lang::Zh, LinkKind::Report) => "分析报告".into(),
    }
}

fn link_kind_name(k: LinkKind) -> &'static str {
    match k {
        LinkKind::Cve => "cve",
        LinkKind::Report => "report",
        LinkKind::Asset => "asset",
        LinkKind::Console => "console",
        LinkKind::Cluster => "cluster",
    }
}

/// A URL from [`Finding::links`] (built by sasrelay, but from configured bases and service
/// IDs) checked once more: `http(s)://`, at most 3000 bytes, printable ASCII without
/// whitespace, quotes, angle brackets, backslash, backtick, braces or pipe. `None` drops it.
pub fn checked_url(url: &str) -> Option<&str> {
    let ok_scheme = url.starts_with("https://") || url.starts_with("http://");
    let ok_chars = url.bytes().all(|b| {
        b.is_ascii_graphic() && !matches!(b, b'"' | b'<' | b'>' | b'\\' | b'`' | b'{' | b'}' | b'|')
    });
    (ok_scheme && ok_chars && url.len() > "https://".len() && url.len() <= 3000).then_some(url)
}

/// A checked URL in the form an output kind embeds it: markdown link destinations get
/// parentheses and brackets percent-encoded, HTML attributes get `&` and `'` encoded.
pub(crate) fn url_for(url: &str, kind: TemplateKind) -> String {
    match kind {
        TemplateKind::DingTalk | TemplateKind::Feishu | TemplateKind::WeCom => url
            .replace('(', "%28")
            .replace(')', "%29")
            .replace('[', "%5B")
            .replace(']', "%5D"),
        TemplateKind::EmailHtml => url.replace('&', "&amp;").replace('\'', "%27"),
        _ => url.to_string(),
    }
}

/// The headline of any payload: an event's, a digest's, or a meta-event's.
pub(crate) fn headline(p: &Payload, lang: Lang) -> String {
    match p {
        Payload::Event(e) => event_headline(e, lang),
        Payload::Digest(d) => digest_headline(d, lang),
        Payload::Health(h) => super::health::headline(h, lang),
    }
}

/// What a headline starts with when its event (or a digest's member) may repeat one an
/// earlier leader sent (a takeover after a failover).
pub(crate) fn repeat_mark(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "[possible repeat] ",
        Lang::Zh => "【可能重复】",
    }
}

/// One headline line for an event.
pub(crate) fn event_headline(e: &Event, lang: Lang) -> String {
    let line = event_headline_plain(e, lang);
    if e.possible_repeat {
        format!("{}{line}", repeat_mark(lang))
    } else {
        line
    }
}

fn event_headline_plain(e: &Event, lang: Lang) -> String {
    match (&e.finding, &e.summary) {
        (Some(f), _) => {
            let cluster = f
                .kubernetes
                .cluster_name
                .clone()
                .or_else(|| f.kubernetes.cluster_id.clone());
            let title = clip(&f.title, 200);
            match lang {
                Lang::En => {
                    let mut s = format!(
                        "{} {} {}: {}",
                        f.severity.as_str().to_uppercase(),
                        e.kind.as_str(),
                        noun(e.domain, lang),
                        title
                    );
                    if let Some(c) = cluster {
                        s.push_str(" in ");
                        s.push_str(&clip(&c, 64));
                    }
                    s
                }
                Lang::Zh => {
                    let mut s = format!(
                        "【{}】{}{}：{}",
                        severity_label(f.severity, lang),
                        kind_label(e.kind, lang),
                        noun(e.domain, lang),
                        title
                    );
                    if let Some(c) = cluster {
                        s.push_str(&format!("（{}）", clip(&c, 64)));
                    }
                    s
                }
            }
        }
        (None, Some(s)) => match lang {
            Lang::En => format!(
                "Tracking {} {} in source {}",
                s.tracked,
                match e.domain {
                    Domain::Alerts => "open alerts",
                    Domain::Vulnerabilities => "open vulnerabilities",
                    Domain::Baseline => "failing baseline checks",
                    Domain::Firewall => "container-firewall alerts",
                },
                clip(&e.source, 64)
            ),
            Lang::Zh => format!(
                "来源 {} 正在跟踪 {} 条{}",
                clip(&e.source, 64),
                s.tracked,
                noun(e.domain, lang)
            ),
        },
        (None, None) => format!("{} {}", e.kind.as_str(), e.domain.as_str()),
    }
}

/// One headline line for a digest: [`Digest::headline`]'s wording (re-implemented so group
/// values can be clipped without copying the members), or its Chinese counterpart.
pub(crate) fn digest_headline(d: &Digest, lang: Lang) -> String {
    let line = digest_headline_plain(d, lang);
    if d.events.iter().any(|e| e.possible_repeat) {
        format!("{}{line}", repeat_mark(lang))
    } else {
        line
    }
}

fn digest_headline_plain(d: &Digest, lang: Lang) -> String {
    let c = d.counts();
    let n = d.events.len();
    let single_kind = match c.by_kind.keys().collect::<Vec<_>>().as_slice() {
        [k] if **k != EventKind::Summary => Some(**k),
        _ => None,
    };
    let single_domain = match c.by_domain.keys().collect::<Vec<_>>().as_slice() {
        [d] => Some(**d),
        _ => None,
    };
    let scope: Vec<String> = d
        .group
        .iter()
        .map(|(k, v)| {
            let v = if v.is_empty() {
                if lang == Lang::Zh {
                    "(无)".to_string()
                } else {
                    "(none)".to_string()
                }
            } else {
                clip(v, 64)
            };
            format!("{} {v}", clip(k, 40))
        })
        .collect();
    let sev: Vec<String> = c
        .by_severity
        .iter()
        .rev()
        .map(|(s, k)| match lang {
            Lang::En => format!("{k} {}", s.as_str()),
            Lang::Zh => format!("{} {k}", severity_label(*s, lang)),
        })
        .collect();
    let line = match lang {
        Lang::En => {
            let kind = single_kind
                .map(|k| format!("{} ", k.as_str()))
                .unwrap_or_default();
            let what = match single_domain {
                Some(Domain::Alerts) => plural(n, "alert", "alerts"),
                Some(Domain::Vulnerabilities) => plural(n, "vulnerability", "vulnerabilities"),
                Some(Domain::Baseline) => plural(n, "baseline risk", "baseline risks"),
                Some(Domain::Firewall) => {
                    plural(n, "container-firewall alert", "container-firewall alerts")
                }
                None => plural(n, "finding", "findings"),
            };
            let mut line = format!("{n} {kind}{what}");
            if !scope.is_empty() {
                line.push_str(" in ");
                line.push_str(&scope.join(", "));
            }
            if !sev.is_empty() {
                line.push_str(": ");
                line.push_str(&sev.join(", "));
            }
            line
        }
        Lang::Zh => {
            let kind = single_kind.map(|k| kind_label(k, lang)).unwrap_or("");
            let what = single_domain.map(|d| noun(d, lang)).unwrap_or("安全事件");
            let mut line = format!("{n} 条{kind}{what}");
            if !scope.is_empty() {
                line.push_str(&format!("（{}）", scope.join("，")));
            }
            if !sev.is_empty() {
                line.push('：');
                line.push_str(&sev.join("，"));
            }
            line
        }
    };
    clip(&line, 300)
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// Highest severity among the payload's findings.
pub(crate) fn max_severity(p: &Payload) -> Option<Severity> {
    p.events()
        .iter()
        .filter_map(|e| e.finding.as_ref().map(|f| f.severity))
        .max()
}

/// Labelled non-empty Kubernetes and host values, in reading order.
pub(crate) fn context_fields(f: &Finding, lang: Lang, max: usize) -> Vec<(String, String)> {
    let k = &f.kubernetes;
    let h = &f.host;
    let both = |name: &Option<String>, id: &Option<String>| match (name, id) {
        (Some(n), Some(i)) if n != i => Some(format!("{n} ({i})")),
        (Some(n), _) => Some(n.clone()),
        (None, Some(i)) => Some(i.clone()),
        (None, None) => None,
    };
    let ip = match (&h.public_ip, &h.private_ip) {
        (Some(p), Some(q)) => Some(format!("{p} / {q}")),
        (Some(p), None) => Some(p.clone()),
        (None, Some(q)) => Some(q.clone()),
        (None, None) => None,
    };
    let rows: [(&str, &str, Option<String>); 9] = [
        ("Cluster", "集群", both(&k.cluster_name, &k.cluster_id)),
        ("Namespace", "命名空间", k.namespace.clone()),
        ("Pod", "Pod", k.pod.clone()),
        ("Container", "容器", k.container_name.clone()),
        ("Image", "镜像", k.image.clone()),
        ("Node", "节点", k.node.clone()),
        ("App", "应用", k.app.clone()),
        ("Host", "主机", both(&h.instance_name, &h.instance_id)),
        ("IP", "IP", ip),
    ];
    rows.into_iter()
        .filter_map(|(en, zh, v)| {
            let v = v.filter(|v| !v.trim().is_empty())?;
            let name = if lang == Lang::Zh { zh } else { en };
            Some((name.to_string(), clip(&v, max)))
        })
        .collect()
}

/// `cluster / namespace / pod`, the short place of a finding.
fn place(f: &Finding, max: usize) -> String {
    let k = &f.kubernetes;
    let parts: Vec<String> = [
        k.cluster_name.as_ref().or(k.cluster_id.as_ref()),
        k.namespace.as_ref(),
        k.pod.as_ref(),
    ]
    .into_iter()
    .flatten()
    .filter(|s| !s.trim().is_empty())
    .map(|s| clip(s, max))
    .collect();
    if parts.is_empty() {
        h_place(f, max)
    } else {
        parts.join(" / ")
    }
}

fn h_place(f: &Finding, max: usize) -> String {
    let h = &f.host;
    h.instance_name
        .as_ref()
        .or(h.instance_id.as_ref())
        .or(h.private_ip.as_ref())
        .map(|s| clip(s, max))
        .unwrap_or_default()
}

fn pairs(rows: Vec<(String, String)>, k1: &'static str, k2: &'static str) -> Value {
    Value::from_iter(
        rows.into_iter()
            .map(|(a, b)| Obj::default().set(k1, a).set(k2, b).value()),
    )
}

/// The links of a finding that pass [`checked_url`], deduplicated by URL, at most `max`.
pub(crate) fn links(f: &Finding, max: usize) -> Vec<(LinkKind, String, String)> {
    checked_unique(
        f.links
            .iter()
            .map(|l| (&l.url[..], (l.kind, l.label.clone()))),
        max,
    )
    .into_iter()
    .map(|((kind, label), url)| (kind, label, url))
    .collect()
}

/// Most action buttons placed (there are five actions).
pub(crate) const MAX_ACTION_BUTTONS: usize = 5;

/// The action buttons of a payload as `(action, label, url)`: for one event with a finding
/// only (never a digest, a summary or a meta-event), those whose URL passes [`checked_url`],
/// deduplicated by URL, at most `max`.
pub(crate) fn action_links(
    p: &Payload,
    actions: &[ActionButton],
    lang: Lang,
    max: usize,
) -> Vec<(String, &'static str, String)> {
    match p {
        Payload::Event(e) if e.finding.is_some() => {
            checked_unique(actions.iter().map(|a| (&a.url[..], &a.action[..])), max)
                .into_iter()
                .map(|(action, url)| (clip(action, 32), action_label(action, lang), url))
                .collect()
        }
        _ => Vec::new(),
    }
}

/// The `(item, url)` pairs whose URL passes [`checked_url`], the first of each URL, at most `max`.
fn checked_unique<'a, T>(
    items: impl Iterator<Item = (&'a str, T)>,
    max: usize,
) -> Vec<(T, String)> {
    let mut seen = std::collections::BTreeSet::new();
    items
        .filter_map(|(url, item)| {
            let url = checked_url(url)?;
            seen.insert(url).then(|| (item, url.to_string()))
        })
        .take(max)
        .collect()
}

/// Which links a template's text carries; the rest are buttons or left out.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TextLinks<'a> {
    /// The finding's links (`inline_links`).
    pub links: bool,
    /// The action buttons (`actions`); empty where the output shows them as buttons.
    pub actions: &'a [ActionButton],
}

/// The template value of one event.
pub(crate) fn event_value(e: &Event, lang: Lang, b: &Budget, kind: TemplateKind) -> Value {
    let mut o = Obj::default()
        .set("id", e.id.clone())
        .set("possible_repeat", e.possible_repeat)
        .set("kind", e.kind.as_str())
        .set("kind_label", kind_label(e.kind, lang))
        .set("domain", e.domain.as_str())
        .set("domain_label", domain_label(e.domain, lang))
        .set("noun", noun(e.domain, lang))
        .set("source", clip(&e.source, b.field))
        .set("observed_at", rfc3339(e.observed_at))
        .set("headline", event_headline(e, lang));
    let resolution = e
        .resolution
        .or(e.finding.as_ref().and_then(|f| f.resolution))
        .filter(|_| e.kind == EventKind::Resolved);
    o = o
        .set(
            "resolution",
            opt_str(resolution.map(|r| r.as_str().to_string())),
        )
        .set(
            "resolution_label",
            opt_str(resolution.map(|r| resolution_text(r, e.handled_by.as_ref(), lang, b))),
        )
        .set(
            "handled_by",
            match &e.handled_by {
                Some(h) => Obj::default()
                    .set("who", clip(&h.who, b.field.min(128)))
                    .set("via", h.via.clone())
                    .set("action", h.action.clone())
                    .set("at", rfc3339(h.at))
                    .value(),
                None => Value::from(()),
            },
        );
    o = o.set(
        "summary",
        match &e.summary {
            Some(s) => Obj::default()
                .set("tracked", s.tracked)
                .set("message", clip(&s.message, b.desc.max(200)))
                .value(),
            None => Value::from(()),
        },
    );
    match &e.finding {
        Some(f) => with_finding(o, f, lang, b, kind),
        None => without_finding(o),
    }
}

/// An event's template fields taken from its finding.
fn with_finding(o: Obj, f: &Finding, lang: Lang, b: &Budget, kind: TemplateKind) -> Value {
    let details: Vec<(String, String)> = f
        .details
        .iter()
        .take(b.details)
        .map(|d| (clip(&d.name, 64), clip(&d.value, b.field)))
        .collect();
    o.set("severity", f.severity.as_str())
        .set("severity_label", severity_label(f.severity, lang))
        .set("native_severity", clip(&f.native_severity, 64))
        .set("title", clip(&f.title, b.field.min(256)))
        .set("description", clip(&f.description, b.desc))
        .set("alert_type", clip(&f.alert_type, b.field.min(128)))
        .set("region", clip(&f.region, 64))
        .set("place", place(f, b.field.min(128)))
        .set(
            "context",
            pairs(context_fields(f, lang, b.field), "name", "value"),
        )
        .set("kubernetes", kubernetes_value(&f.kubernetes, b.field))
        .set("host", host_value(&f.host, b.field))
        .set("first_seen", opt_str(f.first_seen.map(rfc3339)))
        .set("last_seen", opt_str(f.last_seen.map(rfc3339)))
        .set("details", pairs(details, "name", "value"))
        .set("details_more", f.details.len().saturating_sub(b.details))
        .set(
            "cves",
            Value::from_iter(f.cves.iter().take(b.list).map(|c| clip(c, 64))),
        )
        .set("cves_more", f.cves.len().saturating_sub(b.list))
        .set(
            "tactics",
            pairs(
                f.tactics
                    .iter()
                    .take(b.list)
                    .map(|t| (clip(&t.id, 32), clip(&t.name, 64)))
                    .collect(),
                "id",
                "name",
            ),
        )
        .set("links", links_value(f, lang, kind))
        .value()
}

/// The same template fields, empty, for an event without a finding (a summary).
fn without_finding(o: Obj) -> Value {
    let none = || Value::from(());
    o.set("severity", none())
        .set("severity_label", none())
        .set("native_severity", "")
        .set("title", "")
        .set("description", "")
        .set("alert_type", "")
        .set("region", "")
        .set("place", "")
        .set("context", Value::from(Vec::<Value>::new()))
        .set("kubernetes", none())
        .set("host", none())
        .set("first_seen", none())
        .set("last_seen", none())
        .set("details", Value::from(Vec::<Value>::new()))
        .set("details_more", 0)
        .set("cves", Value::from(Vec::<Value>::new()))
        .set("cves_more", 0)
        .set("tactics", Value::from(Vec::<Value>::new()))
        .set("links", Value::from(Vec::<Value>::new()))
        .value()
}

/// A finding's Kubernetes context, each field clipped to `max`.
fn kubernetes_value(k: &Kubernetes, max: usize) -> Value {
    let c = |v: &Option<String>| opt_str(v.as_ref().map(|s| clip(s, max)));
    Obj::default()
        .set("cluster_id", c(&k.cluster_id))
        .set("cluster_name", c(&k.cluster_name))
        .set("namespace", c(&k.namespace))
        .set("pod", c(&k.pod))
        .set("container_id", c(&k.container_id))
        .set("container_name", c(&k.container_name))
        .set("image", c(&k.image))
        .set("node", c(&k.node))
        .set("app", c(&k.app))
        .value()
}

/// A finding's host context, each field clipped to `max`.
fn host_value(h: &Host, max: usize) -> Value {
    let c = |v: &Option<String>| opt_str(v.as_ref().map(|s| clip(s, max)));
    Obj::default()
        .set("instance_id", c(&h.instance_id))
        .set("instance_name", c(&h.instance_name))
        .set("public_ip", c(&h.public_ip))
        .set("private_ip", c(&h.private_ip))
        .set("uuid", c(&h.uuid))
        .set("region", c(&h.region))
        .value()
}

/// A finding's links (at most 8), each URL encoded for the template kind.
fn links_value(f: &Finding, lang: Lang, kind: TemplateKind) -> Value {
    Value::from_iter(links(f, 8).into_iter().map(|(k, label, url)| {
        link_value(
            ("kind", link_kind_name(k)),
            link_label(k, &label, lang),
            &url,
            kind,
        )
    }))
}

/// A payload's action links ([`action_links`]), each URL encoded for the template kind.
fn actions_value(p: &Payload, actions: &[ActionButton], lang: Lang, kind: TemplateKind) -> Value {
    Value::from_iter(
        action_links(p, actions, lang, MAX_ACTION_BUTTONS)
            .into_iter()
            .map(|(action, label, url)| link_value(("action", &action), label, &url, kind)),
    )
}

/// `{<what>, label, url}`: one link of the template context, its checked URL encoded for the
/// template kind and marked safe.
fn link_value(
    what: (&'static str, &str),
    label: impl Into<Value>,
    url: &str,
    kind: TemplateKind,
) -> Value {
    Obj::default()
        .set(what.0, what.1.to_string())
        .set("label", label)
        .set("url", Value::from_safe_string(url_for(url, kind)))
        .value()
}

fn digest_value(d: &Digest, lang: Lang, b: &Budget, kind: TemplateKind) -> Value {
    let c = d.counts();
    let counts = Obj::default()
        .set(
            "severity",
            Value::from_iter(c.by_severity.iter().rev().map(|(s, n)| {
                Obj::default()
                    .set("severity", s.as_str())
                    .set("label", severity_label(*s, lang))
                    .set("count", *n)
                    .value()
            })),
        )
        .set(
            "kind",
            Value::from_iter(c.by_kind.iter().map(|(k, n)| {
                Obj::default()
                    .set("kind", k.as_str())
                    .set("label", kind_label(*k, lang))
                    .set("count", *n)
                    .value()
            })),
        )
        .set(
            "domain",
            Value::from_iter(c.by_domain.iter().map(|(dm, n)| {
                Obj::default()
                    .set("domain", dm.as_str())
                    .set("label", domain_label(*dm, lang))
                    .set("count", *n)
                    .value()
            })),
        )
        .value();
    // Members get a smaller budget than a lone event: they are list items.
    let item = Budget {
        details: 0,
        desc: 0,
        field: b.field.min(160),
        ..*b
    };
    Obj::default()
        .set("id", d.id.clone())
        .set("route", clip(&d.route, 128))
        .set(
            "group",
            pairs(
                d.group
                    .iter()
                    .map(|(k, v)| (clip(k, 40), clip(v, 128)))
                    .collect(),
                "key",
                "value",
            ),
        )
        .set("created_at", rfc3339(d.created_at))
        .set("headline", digest_headline(d, lang))
        .set("count", d.events.len())
        .set("more", d.events.len().saturating_sub(b.items))
        .set(
            "events",
            Value::from_iter(
                d.events
                    .iter()
                    .take(b.items)
                    .map(|e| event_value(e, lang, &item, kind)),
            ),
        )
        .set("counts", counts)
        .value()
}

/// The whole template context of a payload.
pub(crate) fn context(
    p: &Payload,
    lang: Lang,
    tz: &str,
    b: &Budget,
    kind: TemplateKind,
    text: TextLinks<'_>,
    level: u8,
) -> Value {
    let (headline, event, digest) = match p {
        Payload::Event(e) => (
            event_headline(e, lang),
            event_value(e, lang, b, kind),
            Value::from(()),
        ),
        Payload::Digest(d) => (
            digest_headline(d, lang),
            Value::from(()),
            digest_value(d, lang, b, kind),
        ),
        // Renderers send meta-events as plain messages; a template sees only the headline.
        Payload::Health(h) => (
            super::health::headline(h, lang),
            Value::from(()),
            Value::from(()),
        ),
    };
    Obj::default()
        .set("lang", lang.as_str())
        .set("tz", tz.to_string())
        .set("headline", headline)
        .set(
            "severity",
            opt_str(max_severity(p).map(|s| s.as_str().into())),
        )
        .set("event", event)
        .set("digest", digest)
        .set("inline_links", text.links)
        .set("actions", actions_value(p, text.actions, lang, kind))
        .set("level", level)
        .value()
}
