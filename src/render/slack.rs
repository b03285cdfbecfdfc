//! The Slack message body (incoming webhook or `chat.postMessage` without `channel`): Block
//! Kit blocks within Slack's limits, a `text` fallback for notifications, no unfurling.
//!
//! Blocks: a `header` (plain_text, the severity emoji and the headline), a section with the
//! configured mentions, a `context` line (severity, event, source, time), a section of
//! `fields` (cluster, namespace, pod, image, host, …), the template's mrkdwn body split into
//! sections at line ends, and an `actions` block of buttons: the action buttons
//! ([`SlackOptions::actions`], one event only; `action_id` `sasrelay_act_{i}`), then the link
//! buttons (`sasrelay_link_{i}`) in the room left. With `colour_bar` the blocks go into one
//! legacy attachment whose `color` is the severity's.
//!
//! Limits (the ones slack_sdk's validators enforce; [`check_limits`] checks them): ≤ 50 blocks,
//! header ≤ 150 characters, section text ≤ 3000, ≤ 10 fields of ≤ 2000, ≤ 10 context elements,
//! ≤ 25 actions elements, button text ≤ 75, button URL ≤ 3000, `action_id`/`block_id` ≤ 255.
//!
//! A meta-event ([`crate::event::HealthEvent`]) is a plain `text` message instead (mrkdwn,
//! every line escaped, the mentions last):
//! `{"text":"[sasrelay] FIRING: …\n…\n<@U1>","unfurl_links":false,"unfurl_media":false}`.

use serde_json::{Value, json};

use super::dingtalk::{self, Button};
use super::engine::{Engine, localtime, severity_color, severity_emoji};
use super::view::{self, TextLinks, context_fields};
use super::{ActionButton, Budget, Lang, MAX_SHRINK, Rendered, TemplateKind, escape, zone_or_utc};
use crate::event::{Event, HealthEvent, Payload};
use crate::text::{clip, truncate_chars};

/// Most blocks in a message.
pub const MAX_BLOCKS: usize = 50;
/// Most characters of a header's text.
pub const MAX_HEADER: usize = 150;
/// Most characters of a section's text.
pub const MAX_SECTION: usize = 3000;
/// Most fields of a section.
pub const MAX_FIELDS: usize = 10;
/// Most characters of a field.
pub const MAX_FIELD: usize = 2000;
/// Most elements of a context block.
pub const MAX_CONTEXT: usize = 10;
/// Most elements of an actions block.
pub const MAX_ACTIONS: usize = 25;
/// Most characters of a button's text.
pub const MAX_BUTTON_TEXT: usize = 75;
/// Most characters of a button's URL.
pub const MAX_URL: usize = 3000;
/// Most characters of an `action_id` or `block_id`.
pub const MAX_ID: usize = 255;
/// Most characters of the fallback `text` (Slack advises ≤ 4000).
pub const MAX_TEXT: usize = 3000;
/// Most buttons placed (action buttons first, link buttons in the room left).
pub const MAX_BUTTONS: usize = 5;

/// How to render for one Slack destination.
#[derive(Clone, Debug, PartialEq)]
pub struct SlackOptions {
    /// Language of the built-in template and labels.
    pub lang: Lang,
    /// IANA zone for times (unknown zones fall back to UTC with a warning).
    pub timezone: String,
    /// Who to mention: user IDs (`U…`/`W…` → `<@U…>`), user groups (`S…` or `subteam^S…` →
    /// `<!subteam^S…>`), `here`, `channel`, `everyone` (→ `<!here>` …). Invalid ones are
    /// skipped with a warning.
    pub mentions: Vec<String>,
    /// A custom mrkdwn body template (its text), instead of the built-in one.
    pub template: Option<String>,
    /// Put the blocks in a legacy attachment with the severity colour as its bar.
    pub colour_bar: bool,
    /// Add link buttons (console, CVE page, alert detail, cluster).
    pub buttons: bool,
    /// Action buttons for one event (before the link buttons), whatever `buttons` says;
    /// ignored for digests and meta-events.
    pub actions: Vec<ActionButton>,
    /// Start smaller: 0 = full, up to [`MAX_SHRINK`].
    pub shrink: u8,
}

impl Default for SlackOptions {
    fn default() -> Self {
        SlackOptions {
            lang: Lang::En,
            timezone: "UTC".into(),
            mentions: Vec::new(),
            template: None,
            colour_bar: false,
            buttons: true,
            actions: Vec::new(),
            shrink: 0,
        }
    }
}

/// Budgets per shrink level, and how many body sections each allows.
const LEVELS: [(Budget, usize); 4] = [
    (
        Budget {
            items: 15,
            details: 25,
            field: 1500,
            desc: 2500,
            list: 10,
        },
        12,
    ),
    (
        Budget {
            items: 8,
            details: 12,
            field: 500,
            desc: 800,
            list: 5,
        },
        6,
    ),
    (
        Budget {
            items: 5,
            details: 6,
            field: 200,
            desc: 300,
            list: 3,
        },
        3,
    ),
    (
        Budget {
            items: 3,
            details: 0,
            field: 100,
            desc: 0,
            list: 1,
        },
        1,
    ),
];

/// Characters of the whole body (all sections) a message should stay under; Slack truncates
/// messages at 40,000.
const MAX_BODY_CHARS: usize = 12_000;

/// A configured mention in Slack's syntax, or `None` when it is not one.
pub fn mention(m: &str) -> Option<String> {
    let m = m.trim().trim_start_matches(['@', '!']);
    let id_ok = |s: &str| {
        (3..=24).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    };
    match m {
        "here" | "channel" | "everyone" => Some(format!("<!{m}>")),
        _ if m.starts_with("subteam^") && id_ok(&m[8..]) && m[8..].starts_with('S') => {
            Some(format!("<!{m}>"))
        }
        _ if id_ok(m) && m.starts_with('S') => Some(format!("<!subteam^{m}>")),
        _ if id_ok(m) && (m.starts_with('U') || m.starts_with('W')) => Some(format!("<@{m}>")),
        _ => None,
    }
}

/// Cuts mrkdwn to `max` characters without leaving half an entity (`&am`) at the end.
fn cut_mrkdwn(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t = truncate_chars(s, max);
    t.pop(); // the `…`
    if let Some(amp) = t.rfind('&')
        && !t[amp..].contains(';')
    {
        t.truncate(amp);
    }
    t.push('…');
    t
}

fn mrkdwn(text: String) -> Value {
    json!({"type": "mrkdwn", "text": text})
}

/// Splits the body at line ends into section texts of at most [`MAX_SECTION`] characters.
fn split_sections(body: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut cur_len = 0;
    for line in body.trim().lines() {
        let line = cut_mrkdwn(line, MAX_SECTION);
        let n = line.chars().count();
        if cur_len > 0 && cur_len + 1 + n > MAX_SECTION {
            out.push(std::mem::take(&mut cur));
            cur_len = 0;
        }
        if cur_len > 0 {
            cur.push('\n');
            cur_len += 1;
        }
        cur.push_str(&line);
        cur_len += n;
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out.retain(|s| !s.trim().is_empty());
    out
}

/// The context line of a lone event.
fn context_line(e: &Event, lang: Lang, tz: &str) -> Vec<Value> {
    let mut parts = Vec::new();
    if let Some(f) = &e.finding {
        let mut what = format!(
            "*{}* · {} {}",
            view::severity_label(f.severity, lang),
            view::kind_label(e.kind, lang),
            view::noun(e.domain, lang)
        );
        if let Some(r) = e.resolution.or(f.resolution)
            && e.kind == crate::event::EventKind::Resolved
        {
            // Who handled it may be a chat identity: escaped like any untrusted text.
            let text = view::resolution_text(r, e.handled_by.as_ref(), lang, &LEVELS[0].0);
            what.push_str(&format!(" ({})", escape::slack(&text)));
        }
        parts.push(what);
        let kind = escape::slack(&clip(&f.alert_type, 200));
        if !kind.trim().is_empty() {
            parts.push(kind);
        }
    }
    let source = match lang {
        Lang::En => format!("source {}", escape::slack(&clip(&e.source, 100))),
        Lang::Zh => format!("来源 {}", escape::slack(&clip(&e.source, 100))),
    };
    parts.push(source);
    let when = e
        .finding
        .as_ref()
        .and_then(|f| f.last_seen)
        .unwrap_or(e.observed_at);
    if let Ok(t) = localtime(&view::rfc3339(when), tz) {
        parts.push(t);
    }
    context_elements(parts)
}

/// Context elements from texts, blank ones dropped (Slack rejects them).
fn context_elements(parts: Vec<String>) -> Vec<Value> {
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .take(MAX_CONTEXT)
        .map(mrkdwn)
        .collect()
}

/// The `actions` block's elements: the action buttons, then (when `links`) the link buttons,
/// [`MAX_BUTTONS`] in all. A URL over [`MAX_URL`] is left out, never cut.
fn buttons(p: &Payload, actions: &[ActionButton], lang: Lang, links: bool) -> Vec<Value> {
    let (acts, links) = dingtalk::buttons(p, actions, lang, links, MAX_BUTTONS);
    let button = |id: String, label: &str, url: String| {
        json!({
            "type": "button",
            "text": {
                "type": "plain_text",
                "text": truncate_chars(&escape::slack_plain(label), MAX_BUTTON_TEXT),
                "emoji": true
            },
            "url": url,
            "action_id": id,
        })
    };
    let fits = |(_, url): &Button| url.chars().count() <= MAX_URL;
    let acts = acts.into_iter().filter(fits).enumerate();
    let links = links.into_iter().filter(fits).enumerate();
    acts.map(|(i, (label, url))| button(format!("sasrelay_act_{i}"), &label, url))
        .chain(links.map(|(i, (label, url))| button(format!("sasrelay_link_{i}"), &label, url)))
        .collect()
}

/// The configured mentions that are valid Slack mention tokens, deduplicated, at most 20,
/// joined by spaces; invalid ones are warned about.
fn mention_tags(mentions: &[String], warnings: &mut Vec<String>) -> String {
    let mut tags = Vec::new();
    for m in mentions {
        match mention(m) {
            Some(t) if !tags.contains(&t) => tags.push(t),
            Some(_) => {}
            None => warnings.push(format!(
                "ignored invalid slack mention {:?}",
                clip(&escape::text(m), 40)
            )),
        }
    }
    tags.truncate(20);
    tags.join(" ")
}

/// The blocks every size level keeps: the header, the mentions, the context line.
fn top_blocks(payload: &Payload, header: &str, mentions: &str, lang: Lang, tz: &str) -> Vec<Value> {
    let mut top = vec![json!({
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": truncate_chars(&escape::slack_plain(header), MAX_HEADER),
            "emoji": true
        }
    })];
    if !mentions.is_empty() {
        top.push(json!({"type": "section", "text": mrkdwn(mentions.to_string())}));
    }
    let context = match payload {
        Payload::Event(e) => context_line(e, lang, tz),
        Payload::Digest(d) => {
            let mut parts = Vec::new();
            if let Ok(t) = localtime(&view::rfc3339(d.created_at), tz) {
                parts.push(t);
            }
            parts.push(escape::slack(&clip(&d.route, 100)));
            context_elements(parts)
        }
        Payload::Health(_) => Vec::new(),
    };
    if !context.is_empty() {
        top.push(json!({"type": "context", "elements": context}));
    }
    top
}

/// A single event's context fields as one section of two-column fields, when it has any.
fn fields_block(payload: &Payload, lang: Lang, max_value: usize) -> Option<Value> {
    let Payload::Event(e) = payload else {
        return None;
    };
    let fields: Vec<Value> = context_fields(e.finding.as_ref()?, lang, max_value)
        .into_iter()
        .take(MAX_FIELDS)
        .map(|(name, value)| {
            mrkdwn(cut_mrkdwn(
                &format!("*{}*\n{}", escape::slack(&name), escape::slack(&value)),
                MAX_FIELD,
            ))
        })
        .collect();
    (!fields.is_empty()).then(|| json!({"type": "section", "fields": fields}))
}

/// The message: fallback text and blocks, inside a coloured attachment when `colour` is set;
/// link and media unfurling off (a finding's URLs are not ours to preview).
fn envelope(fallback: String, blocks: Vec<Value>, colour: Option<&str>) -> Value {
    match colour {
        Some(colour) => json!({
            "text": fallback,
            "attachments": [{
                "color": colour,
                "fallback": fallback,
                "blocks": blocks,
            }],
            "unfurl_links": false,
            "unfurl_media": false,
        }),
        None => json!({
            "text": fallback,
            "blocks": blocks,
            "unfurl_links": false,
            "unfurl_media": false,
        }),
    }
}

/// A meta-event as a plain `text` message (module doc).
fn health(h: &HealthEvent, opts: &SlackOptions) -> Rendered<Value> {
    let mut warnings = Vec::new();
    let mentions = mention_tags(&opts.mentions, &mut warnings);
    let tags: Vec<String> = Some(mentions)
        .filter(|m| !m.is_empty())
        .into_iter()
        .collect();
    let text = super::health::message(h, opts.lang, escape::slack, None, &tags);
    Rendered {
        body: json!({
            "text": cut_mrkdwn(&text, MAX_TEXT),
            "unfurl_links": false,
            "unfurl_media": false,
        }),
        warnings,
        level: 0,
    }
}

/// Renders `payload` as a Slack message body.
pub fn render(payload: &Payload, opts: &SlackOptions) -> Rendered<Value> {
    if let Payload::Health(h) = payload {
        return health(h, opts);
    }
    let mut warnings = Vec::new();
    let lang = opts.lang;
    let tz = zone_or_utc(&opts.timezone, &mut warnings);
    let mentions = mention_tags(&opts.mentions, &mut warnings);

    let headline = view::headline(payload, lang);
    let severity = view::max_severity(payload)
        .map(|s| s.as_str())
        .unwrap_or("");
    let emoji = severity_emoji(severity);

    let fixed_top = top_blocks(
        payload,
        &format!("{emoji} {headline}"),
        &mentions,
        lang,
        &tz,
    );
    let btns = buttons(payload, &opts.actions, lang, opts.buttons);

    let mut engine = Engine::new(
        TemplateKind::Slack,
        lang,
        opts.template.as_deref(),
        &mut warnings,
    );
    let first = opts.shrink.min(MAX_SHRINK);
    let mut level = first;
    let (blocks, level) = loop {
        let (budget, max_sections) = LEVELS[level as usize];
        let ctx = view::context(
            payload,
            lang,
            &tz,
            &budget,
            TemplateKind::Slack,
            TextLinks::default(),
            level,
        );
        let body = engine.render(&ctx, &headline, &mut warnings);
        let mut sections = split_sections(&body);
        let total: usize = sections.iter().map(|s| s.chars().count()).sum();
        let fits = sections.len() <= max_sections && total <= MAX_BODY_CHARS;
        if !fits && level < MAX_SHRINK {
            level += 1;
            continue;
        }
        if !fits {
            let marker = match lang {
                Lang::En => "_… (truncated)_",
                Lang::Zh => "_…（已截断）_",
            };
            sections.truncate(max_sections.max(1));
            if let Some(last) = sections.last_mut() {
                let keep = MAX_SECTION.saturating_sub(marker.chars().count() + 1);
                *last = format!("{}\n{marker}", cut_mrkdwn(last, keep));
            }
        }
        let mut blocks = fixed_top.clone();
        blocks.extend(fields_block(payload, lang, budget.field.min(1000)));
        blocks.extend(
            sections
                .into_iter()
                .map(|s| json!({"type": "section", "text": mrkdwn(s)})),
        );
        if !btns.is_empty() {
            blocks.push(json!({"type": "actions", "elements": btns}));
        }
        break (blocks, level);
    };

    let mut fallback = escape::slack(&headline);
    if !mentions.is_empty() {
        fallback = format!("{mentions} {fallback}");
    }
    let fallback = cut_mrkdwn(&fallback, MAX_TEXT);
    let body = envelope(
        fallback,
        blocks,
        opts.colour_bar.then(|| severity_color(severity)),
    );
    if let Err(e) = check_limits(&body) {
        // Construction keeps every limit; this is a bug, but the message must still go out.
        warnings.push(format!("slack limits: {e}"));
    }
    Rendered {
        body,
        warnings,
        level,
    }
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// Checks a body against the Block Kit limits slack_sdk enforces (see the module doc); the
/// error names the first violation.
pub fn check_limits(body: &Value) -> Result<(), String> {
    let mut lists: Vec<&Vec<Value>> = Vec::new();
    if let Some(b) = body["blocks"].as_array() {
        lists.push(b);
    }
    if let Some(atts) = body["attachments"].as_array() {
        for a in atts {
            if let Some(b) = a["blocks"].as_array() {
                lists.push(b);
            }
        }
    }
    if chars(&body["text"]) > 40_000 {
        return Err("text over 40000 characters".into());
    }
    for blocks in lists {
        if blocks.len() > MAX_BLOCKS {
            return Err(format!("{} blocks (max {MAX_BLOCKS})", blocks.len()));
        }
        for (i, b) in blocks.iter().enumerate() {
            if chars(&b["block_id"]) > MAX_ID {
                return Err(format!("block {i}: block_id too long"));
            }
            match b["type"].as_str().unwrap_or("") {
                "header" => {
                    if b["text"]["type"] != "plain_text" {
                        return Err(format!("block {i}: header text must be plain_text"));
                    }
                    let n = chars(&b["text"]["text"]);
                    if n == 0 || n > MAX_HEADER {
                        return Err(format!("block {i}: header text has {n} characters"));
                    }
                }
                "section" => {
                    let n = chars(&b["text"]["text"]);
                    if n > MAX_SECTION {
                        return Err(format!("block {i}: section text has {n} characters"));
                    }
                    let fields = b["fields"].as_array().map_or(&[][..], |f| f.as_slice());
                    if fields.len() > MAX_FIELDS {
                        return Err(format!("block {i}: {} fields", fields.len()));
                    }
                    if let Some(f) = fields.iter().find(|f| chars(&f["text"]) > MAX_FIELD) {
                        return Err(format!(
                            "block {i}: field has {} characters",
                            chars(&f["text"])
                        ));
                    }
                    if b["text"].is_null() && fields.is_empty() {
                        return Err(format!("block {i}: section without text or fields"));
                    }
                    if !b["text"].is_null()
                        && b["text"]["text"]
                            .as_str()
                            .is_none_or(|t| t.trim().is_empty())
                    {
                        return Err(format!("block {i}: empty section text"));
                    }
                }
                "context" => {
                    let n = b["elements"].as_array().map_or(0, Vec::len);
                    if n == 0 || n > MAX_CONTEXT {
                        return Err(format!("block {i}: context has {n} elements"));
                    }
                    if let Some(el) = b["elements"].as_array().into_iter().flatten().find(|e| {
                        chars(&e["text"]) > MAX_SECTION
                            || e["text"].as_str().is_none_or(|t| t.trim().is_empty())
                    }) {
                        return Err(format!(
                            "block {i}: context element has {} characters",
                            chars(&el["text"])
                        ));
                    }
                }
                "actions" => {
                    let els = b["elements"].as_array().map_or(&[][..], |e| e.as_slice());
                    if els.is_empty() || els.len() > MAX_ACTIONS {
                        return Err(format!("block {i}: actions has {} elements", els.len()));
                    }
                    for el in els {
                        let t = chars(&el["text"]["text"]);
                        if t == 0 || t > MAX_BUTTON_TEXT {
                            return Err(format!("block {i}: button text has {t} characters"));
                        }
                        if chars(&el["url"]) > MAX_URL {
                            return Err(format!("block {i}: button url too long"));
                        }
                        if chars(&el["action_id"]) > MAX_ID {
                            return Err(format!("block {i}: action_id too long"));
                        }
                    }
                }
                "divider" => {}
                other => return Err(format!("block {i}: unexpected type {other:?}")),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Domain;
    use crate::render::sample::{
        assert_no_failing_actions, huge_event, sample_actions, test_actions,
    };
    use crate::render::{sample_digest, sample_event};

    fn elements(body: &Value) -> &[Value] {
        let blocks = body["blocks"].as_array().unwrap();
        let actions = blocks.iter().find(|b| b["type"] == "actions");
        actions.map_or(&[], |b| b["elements"].as_array().unwrap())
    }

    #[test]
    fn action_buttons_come_first_for_one_event_only() {
        let urls: Vec<String> = sample_actions().into_iter().map(|a| a.url).collect();
        let p: Payload = sample_event(Domain::Alerts).into();
        for (lang, labels) in [
            (Lang::En, ["Ignore…", "Mark handled…"]),
            (Lang::Zh, ["忽略…", "标记为已处理…"]),
        ] {
            for links in [true, false] {
                let opts = SlackOptions {
                    lang,
                    buttons: links,
                    actions: test_actions(),
                    ..Default::default()
                };
                let r = render(&p, &opts);
                check_limits(&r.body).unwrap();
                let els = elements(&r.body);
                for i in 0..2 {
                    assert_eq!(els[i]["text"]["text"], labels[i]);
                    assert_eq!(els[i]["url"], urls[i].as_str());
                    assert_eq!(els[i]["action_id"], format!("sasrelay_act_{i}"));
                    assert!(els[i].get("style").is_none());
                }
                // Link buttons give way: MAX_BUTTONS in all.
                assert_eq!(els.len(), if links { MAX_BUTTONS } else { 2 });
                if links {
                    assert_eq!(els[2]["action_id"], "sasrelay_link_0");
                }
                // The failing URLs (and the one over MAX_URL) are left out, not cut.
                assert_no_failing_actions(&r.body.to_string());
            }
        }
        // A digest shows none, even when given some.
        let d: Payload = sample_digest().into();
        let opts = SlackOptions {
            actions: test_actions(),
            ..Default::default()
        };
        let r = render(&d, &opts);
        assert!(!r.body.to_string().contains("sasrelay.example.com"));
        assert!(elements(&r.body).len() <= 2);
        // With the body at its limits the buttons stay, within Block Kit's.
        let r = render(&huge_event(Domain::Vulnerabilities).into(), &opts);
        check_limits(&r.body).unwrap();
        assert_eq!(elements(&r.body)[1]["url"], urls[1].as_str());
        assert!(r.level > 0);
    }

    #[test]
    fn mentions_from_config() {
        assert_eq!(mention("U0123ABCD").as_deref(), Some("<@U0123ABCD>"));
        assert_eq!(mention("@here").as_deref(), Some("<!here>"));
        assert_eq!(mention("S012AB").as_deref(), Some("<!subteam^S012AB>"));
        assert_eq!(
            mention("subteam^S012AB").as_deref(),
            Some("<!subteam^S012AB>")
        );
        for bad in ["u123", "<@U1>", "U1|x", "all", "", "U1 U2"] {
            assert_eq!(mention(bad), None, "{bad}");
        }
    }

    #[test]
    fn cuts_never_leave_half_entities() {
        let s = format!("{}&amp;tail", "a".repeat(10));
        assert_eq!(cut_mrkdwn(&s, 13), "aaaaaaaaaa…");
        assert_eq!(cut_mrkdwn("short", 10), "short");
    }

    #[test]
    fn sections_split_at_line_ends_within_limits() {
        let body = (0..400)
            .map(|i| format!("line {i} {}", "x".repeat(20)))
            .collect::<Vec<_>>()
            .join("\n");
        let s = split_sections(&body);
        assert!(s.len() > 1);
        assert!(s.iter().all(|t| t.chars().count() <= MAX_SECTION));
        assert_eq!(s.join("\n"), body);
        let one = split_sections(&"y".repeat(10_000));
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].chars().count(), MAX_SECTION);
    }
}
