//! The Feishu/Lark custom-bot body: an interactive card (card JSON 1.0), never over the bot's
//! 20 KB request limit (measured on the serialised JSON, less what signing adds).
//!
//! ```json
//! {"msg_type":"interactive","card":{
//!   "config":{"wide_screen_mode":true},
//!   "header":{"template":"red","title":{"tag":"plain_text","content":"<headline>"}},
//!   "elements":[
//!     {"tag":"div","text":{"tag":"lark_md","content":"<template text>\n\n<at id=ou_…></at>"}},
//!     {"tag":"action","actions":[{"tag":"button","type":"danger","text":{"tag":"plain_text","content":"Alert detail"},"url":"https://…"}]},
//!     {"tag":"note","elements":[{"tag":"plain_text","content":"sasrelay · <payload id>"}]}]}}
//! ```
//!
//! Why a card rather than `post` rich text: only a card's header carries a colour
//! (`header.template`), and severity is what a reader must see first ([`header_template`]:
//! critical red, high orange, medium blue, low wathet, info grey; resolved green).
//!
//! The headline is the header (`plain_text`, not parsed by Feishu); the template's text
//! ([`TemplateKind::Feishu`], escaped by [`escape::feishu`]) is one `lark_md` block; the
//! finding's links are buttons (only sasrelay's URLs, re-checked), after the action buttons
//! ([`FeishuOptions::actions`], one event only, shown whatever `console_links` says). Mentions
//! come from the options only and are written after the template's text as `<at id=…></at>`
//! (`<at id=all></at>` for everyone); untrusted `<` `>` `@` are full-width, so no other tag
//! can mention anyone. A configured keyword is put in the header and the text unless they
//! already contain it.
//!
//! A meta-event ([`crate::event::HealthEvent`]) is a `text` message instead:
//! `{"msg_type":"text","content":{"text":"<keyword> [sasrelay] FIRING: …\n…\n<at user_id=\"ou_…\"></at>"}}`.

use serde_json::{Value, json};

use super::dingtalk::{
    Fit, MAX_BUTTONS, assemble, buttons, encoded_len, fit_buttons, target, valid_entries,
};
use super::view::{self, TextLinks, max_severity};
use super::{ActionButton, Lang, Rendered, TemplateKind, escape, zone_or_utc};
use crate::event::{EventKind, HealthEvent, Payload};
use crate::finding::Severity;
use crate::text::clip;

/// Feishu's request body limit ("≤ 20 KB"; 20,000 bytes to be safe), code 9499 above it.
pub const MAX_BODY_BYTES: usize = 20_000;
/// Most mentions placed.
pub const MAX_MENTIONS: usize = 50;

/// How to render for one Feishu bot.
#[derive(Clone, Debug, PartialEq)]
pub struct FeishuOptions {
    /// Language of the built-in template and labels.
    pub lang: Lang,
    /// IANA zone for times (unknown zones fall back to UTC with a warning).
    pub timezone: String,
    /// open_ids (`ou_…`) or user IDs to mention (`<at id=…></at>`).
    pub at_user_ids: Vec<String>,
    /// Mention everyone (`<at id=all></at>`).
    pub at_all: bool,
    /// The bot's custom keyword, if its security setting uses one.
    pub keyword: Option<String>,
    /// A custom `lark_md` template (its text), instead of the built-in one.
    pub template: Option<String>,
    /// Whether to add the finding's links as buttons.
    pub console_links: bool,
    /// Action buttons for one event (before the link buttons), whatever `console_links` says;
    /// ignored for digests and meta-events.
    pub actions: Vec<ActionButton>,
    /// Start smaller: 0 = full; as [`DingTalkOptions::shrink`](super::dingtalk::DingTalkOptions::shrink).
    pub shrink: u8,
    /// Body limit in bytes ([`MAX_BODY_BYTES`], less the signature when signing).
    pub max_body_bytes: usize,
}

impl Default for FeishuOptions {
    fn default() -> Self {
        FeishuOptions {
            lang: Lang::En,
            timezone: "Asia/Shanghai".into(),
            at_user_ids: Vec::new(),
            at_all: false,
            keyword: None,
            template: None,
            console_links: true,
            actions: Vec::new(),
            shrink: 0,
            max_body_bytes: MAX_BODY_BYTES,
        }
    }
}

/// A Feishu open_id, union_id or user ID as a mention takes it: 1 to 64 ASCII letters, digits,
/// `_` or `-` (`all` is `at_all`'s).
pub fn valid_user_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id != "all"
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// The card header colour (`header.template`) of a payload, per the SAS level: critical
/// (`serious`) red, high (`suspicious`) orange, medium (`remind`) blue, low wathet, info grey; a
/// payload whose events are all resolutions green; a summary (no finding) turquoise.
pub fn header_template(p: &Payload) -> &'static str {
    let events = p.events();
    if !events.is_empty() && events.iter().all(|e| e.kind == EventKind::Resolved) {
        return "green";
    }
    match max_severity(p) {
        Some(Severity::Critical) => "red",
        Some(Severity::High) => "orange",
        Some(Severity::Medium) => "blue",
        Some(Severity::Low) => "wathet",
        Some(Severity::Info) => "grey",
        None => "turquoise",
    }
}

/// Renders `payload` as a Feishu interactive card body (unsigned; the sink adds `timestamp`
/// and `sign`).
pub fn render(payload: &Payload, opts: &FeishuOptions) -> Rendered<Value> {
    if let Payload::Health(h) = payload {
        return health(h, opts);
    }
    let mut warnings = Vec::new();
    let lang = opts.lang;
    let tz = zone_or_utc(&opts.timezone, &mut warnings);
    let keyword = opts
        .keyword
        .as_deref()
        .map(|k| clip(k.trim(), 64))
        .filter(|k| !k.is_empty());

    let mut ids = valid_entries(
        &opts.at_user_ids,
        valid_user_id,
        "feishu user id",
        &mut warnings,
    );
    if ids.len() > MAX_MENTIONS {
        warnings.push(format!(
            "only the first {MAX_MENTIONS} feishu mentions are used"
        ));
        ids.truncate(MAX_MENTIONS);
    }
    let mut tags: Vec<String> = ids.iter().map(|i| format!("<at id={i}></at>")).collect();
    if opts.at_all {
        tags.push("<at id=all></at>".into());
    }
    let suffix = if tags.is_empty() {
        String::new()
    } else {
        format!("\n\n{}", tags.join(" "))
    };

    let headline = view::headline(payload, lang);
    let mut title = clip(&escape::feishu_plain(&headline), 100);
    if let Some(k) = &keyword
        && !title.contains(k.as_str())
    {
        title = format!("{k} {title}");
    }
    let colour = header_template(payload);
    let danger = matches!(
        max_severity(payload),
        Some(Severity::Critical | Severity::High)
    ) && colour != "green";
    // Action buttons plain (`default`); the first link button carries the severity.
    let (acts, links) = buttons(
        payload,
        &opts.actions,
        lang,
        opts.console_links,
        MAX_BUTTONS,
    );
    let button = |kind: &str, label: &str, url: String| {
        json!({
            "tag": "button",
            "type": kind,
            "text": {"tag": "plain_text", "content": escape::feishu_plain(label)},
            "url": url,
        })
    };
    let mut btns: Vec<Value> = acts
        .into_iter()
        .map(|(label, url)| button("default", &label, url))
        .collect();
    btns.extend(links.into_iter().enumerate().map(|(i, (label, url))| {
        let kind = match (i, danger) {
            (0, true) => "danger",
            (0, false) => "primary",
            _ => "default",
        };
        button(kind, &label, url)
    }));
    let note = format!(
        "sasrelay · {}",
        escape::feishu_plain(&clip(payload.id(), 80))
    );

    let card = |btns: &[Value], text: &str| -> Value {
        let mut elements = vec![json!({"tag": "div", "text": {"tag": "lark_md", "content": text}})];
        if !btns.is_empty() {
            elements.push(json!({"tag": "action", "actions": btns}));
        }
        elements.push(json!({"tag": "note", "elements": [{"tag": "plain_text", "content": note}]}));
        json!({
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": true},
                "header": {"template": colour, "title": {"tag": "plain_text", "content": title}},
                "elements": elements,
            },
        })
    };
    let bare = assemble("", &suffix, keyword.as_deref());
    fit_buttons(
        &mut btns,
        target(opts.max_body_bytes, opts.shrink),
        |b| encoded_len(&card(b, &bare)),
        &mut warnings,
    );
    let fit = Fit {
        kind: TemplateKind::Feishu,
        lang,
        tz: &tz,
        template: opts.template.as_deref(),
        text: TextLinks::default(),
        shrink: opts.shrink,
        max_bytes: opts.max_body_bytes,
        headline: &headline,
    };
    let (body, level) = fit.run(
        payload,
        |t| assemble(t, &suffix, keyword.as_deref()),
        |t| card(&btns, t),
        &mut warnings,
    );
    Rendered {
        body,
        warnings,
        level,
    }
}

/// A meta-event as a `text` message (module doc): the keyword first unless the text holds
/// it, then the plain lines, then the mentions.
fn health(h: &HealthEvent, opts: &FeishuOptions) -> Rendered<Value> {
    let mut warnings = Vec::new();
    let mut ids = valid_entries(
        &opts.at_user_ids,
        valid_user_id,
        "feishu user id",
        &mut warnings,
    );
    ids.truncate(MAX_MENTIONS);
    if opts.at_all {
        ids.push("all".into());
    }
    let tags: Vec<String> = ids
        .iter()
        .map(|i| format!("<at user_id=\"{i}\"></at>"))
        .collect();
    let keyword = opts.keyword.as_deref();
    let text = super::health::message(h, opts.lang, escape::feishu_plain, keyword, &tags);
    Rendered {
        body: json!({"msg_type": "text", "content": {"text": text}}),
        warnings,
        level: 0,
    }
}

/// The `lark_md` text of a card body this module rendered.
pub fn card_text(body: &Value) -> &str {
    body["card"]["elements"][0]["text"]["content"]
        .as_str()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Domain;
    use crate::render::sample::{
        assert_no_failing_actions, huge_event, langs_and_links, sample_actions, test_actions,
    };
    use crate::render::{action_label, sample_digest, sample_event};

    #[test]
    fn header_colour_follows_severity_and_resolution() {
        let mut e = sample_event(Domain::Alerts);
        for (s, want) in [
            (Severity::Critical, "red"),
            (Severity::High, "orange"),
            (Severity::Medium, "blue"),
            (Severity::Low, "wathet"),
            (Severity::Info, "grey"),
        ] {
            e.finding.as_mut().unwrap().severity = s;
            assert_eq!(header_template(&e.clone().into()), want);
        }
        e.kind = EventKind::Resolved;
        assert_eq!(header_template(&e.into()), "green");
    }

    #[test]
    fn mentions_keyword_and_buttons_are_placed() {
        let p: Payload = sample_event(Domain::Vulnerabilities).into();
        let opts = FeishuOptions {
            at_user_ids: vec!["ou_abc123".into(), "bad id!".into(), "all".into()],
            at_all: true,
            keyword: Some("安全告警".into()),
            ..Default::default()
        };
        let r = render(&p, &opts);
        let text = card_text(&r.body);
        assert!(
            text.ends_with("<at id=ou_abc123></at> <at id=all></at>\n\n安全告警"),
            "{text}"
        );
        let title = r.body["card"]["header"]["title"]["content"]
            .as_str()
            .unwrap();
        assert!(title.starts_with("安全告警 "), "{title}");
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        assert_eq!(r.body["msg_type"], "interactive");
        let actions = &r.body["card"]["elements"][1]["actions"];
        assert!(
            actions.as_array().is_some_and(|a| !a.is_empty()),
            "{actions}"
        );
        assert!(encoded_len(&r.body) <= MAX_BODY_BYTES);
    }

    fn buttons_of(body: &Value) -> &[Value] {
        let elements = body["card"]["elements"].as_array().unwrap();
        let action = elements.iter().find(|e| e["tag"] == "action");
        action.map_or(&[], |a| a["actions"].as_array().unwrap())
    }

    #[test]
    fn action_buttons_come_before_the_link_buttons() {
        let p: Payload = sample_event(Domain::Alerts).into();
        for (lang, console_links) in langs_and_links() {
            let opts = FeishuOptions {
                lang,
                console_links,
                actions: test_actions(),
                ..Default::default()
            };
            let r = render(&p, &opts);
            let btns = buttons_of(&r.body);
            for (b, a) in btns.iter().zip(sample_actions()) {
                assert_eq!(b["text"]["content"], action_label(&a.action, lang));
                assert_eq!(b["url"], a.url.as_str());
                assert_eq!(b["type"], "default");
            }
            assert_eq!(btns.len(), if console_links { MAX_BUTTONS } else { 2 });
            if console_links {
                // The first link button still carries the severity.
                assert_eq!(btns[2]["type"], "danger");
            }
            assert!(!card_text(&r.body).contains("sasrelay.example.com"));
            assert_no_failing_actions(&r.body.to_string());
        }
        let d = render(
            &sample_digest().into(),
            &FeishuOptions {
                actions: test_actions(),
                ..Default::default()
            },
        );
        assert!(!d.body.to_string().contains("sasrelay.example.com"));
    }

    #[test]
    fn actions_keep_the_card_within_its_limit() {
        let big: Payload = huge_event(Domain::Alerts).into();
        for max in [MAX_BODY_BYTES, 3000, 1500] {
            let opts = FeishuOptions {
                max_body_bytes: max,
                actions: test_actions(),
                ..Default::default()
            };
            let r = render(&big, &opts);
            assert!(encoded_len(&r.body) <= max, "{max}");
            assert_eq!(
                buttons_of(&r.body)[0]["url"],
                sample_actions()[0].url.as_str()
            );
        }
    }

    #[test]
    fn digests_fit_the_limit_at_every_setting() {
        let p: Payload = sample_digest().into();
        for max in [MAX_BODY_BYTES, 3000, 1500] {
            let r = render(
                &p,
                &FeishuOptions {
                    max_body_bytes: max,
                    ..Default::default()
                },
            );
            assert!(encoded_len(&r.body) <= max, "{max}");
        }
    }
}
