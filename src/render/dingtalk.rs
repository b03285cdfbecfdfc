//! The DingTalk custom-robot body: `markdown` or `actionCard` JSON, complete with `at` and
//! `msgUuid`, never over the robot's 20,000-byte limit (measured on the serialised JSON).
//!
//! ```json
//! {"msgtype":"markdown","markdown":{"title":"…","text":"…\n\n@13800001111"},
//!  "at":{"atMobiles":["13800001111"],"atUserIds":[],"isAtAll":false},"msgUuid":"<payload id>"}
//! {"msgtype":"actionCard","actionCard":{"title":"…","text":"…","btnOrientation":"0",
//!  "btns":[{"title":"Alert detail","actionURL":"https://…"}]},"msgUuid":"<payload id>"}
//! ```
//!
//! Mentions: DingTalk pings only numbers and user IDs listed in `at` (and shows them where the
//! text says `@<number>`), so both come from the options only; untrusted `@` is written `＠`.
//! `at` exists for `markdown` only (DingTalk ignores it on action cards; configured mentions on
//! an action card give a warning). A configured keyword is put in the title and the text unless
//! they already contain it, and is never cut off.
//!
//! Action buttons ([`DingTalkOptions::actions`], one event only) are the first `btns` of an
//! action card, before the link buttons; in a `markdown` message the template places them as a
//! line of links at the end (`**Actions**: [Ignore…](https://…) · [Mark handled…](https://…)`).
//!
//! A meta-event ([`crate::event::HealthEvent`]) is a `text` message instead:
//! `{"msgtype":"text","text":{"content":"<keyword> [sasrelay] FIRING: …\n…\n@138…"},"at":{…},"msgUuid":…}`,
//! the same mentions, no template.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::engine::Engine;
use super::view::{self, TextLinks, link_label, links};
use super::{ActionButton, Budget, Lang, MAX_SHRINK, Rendered, TemplateKind, escape, zone_or_utc};
use crate::event::{HealthEvent, Payload};
use crate::finding::LinkKind;
use crate::text::{clip, json_len, truncate_json};

/// DingTalk's body limit in bytes (errcode 460101 above it).
pub const MAX_BODY_BYTES: usize = 20_000;
/// Most `at` entries placed (mobiles and user IDs together).
pub const MAX_MENTIONS: usize = 50;
/// Most action-card buttons (action buttons first, link buttons in the room left).
pub const MAX_BUTTONS: usize = 5;

/// Which robot message type to send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MsgType {
    /// `markdown`: text with inline links; supports `at`.
    #[default]
    Markdown,
    /// `actionCard` with one button per action and per link (console, CVE page, alert
    /// detail); no `at`.
    ActionCard,
}

/// How to render for one DingTalk robot.
#[derive(Clone, Debug, PartialEq)]
pub struct DingTalkOptions {
    /// Language of the built-in template and labels.
    pub lang: Lang,
    /// IANA zone for times (unknown zones fall back to UTC with a warning).
    pub timezone: String,
    /// Message type.
    pub msg_type: MsgType,
    /// Mobile numbers to mention (`@<mobile>` in the text and `at.atMobiles`).
    pub at_mobiles: Vec<String>,
    /// DingTalk user IDs to mention (`@<id>` in the text and `at.atUserIds`).
    pub at_user_ids: Vec<String>,
    /// Mention everyone (`at.isAtAll`).
    pub at_all: bool,
    /// The robot's custom keyword, if its security setting uses one.
    pub keyword: Option<String>,
    /// A custom markdown template (its text), instead of the built-in one.
    pub template: Option<String>,
    /// Whether to include the finding's links (inline for markdown, buttons for action cards).
    pub console_links: bool,
    /// Action buttons for one event (the first buttons of an action card, a line of links in
    /// markdown), whatever `console_links` says; ignored for digests and meta-events.
    pub actions: Vec<ActionButton>,
    /// Start smaller: 0 = full; each step lowers the budget level (up to [`MAX_SHRINK`]) and the
    /// byte target (100%, 75%, 50%, 35%, then 25%). Use `level + 1` after errcode 460101.
    pub shrink: u8,
    /// Body limit in bytes ([`MAX_BODY_BYTES`]).
    pub max_body_bytes: usize,
}

impl Default for DingTalkOptions {
    fn default() -> Self {
        DingTalkOptions {
            lang: Lang::En,
            timezone: "Asia/Shanghai".into(),
            msg_type: MsgType::Markdown,
            at_mobiles: Vec::new(),
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

/// Budgets per shrink level.
const LEVELS: [Budget; 4] = [
    Budget {
        items: 20,
        details: 20,
        field: 500,
        desc: 1000,
        list: 10,
    },
    Budget {
        items: 10,
        details: 10,
        field: 200,
        desc: 300,
        list: 5,
    },
    Budget {
        items: 5,
        details: 4,
        field: 100,
        desc: 120,
        list: 3,
    },
    Budget {
        items: 3,
        details: 0,
        field: 60,
        desc: 0,
        list: 1,
    },
];

/// The byte target at a shrink setting.
pub(crate) fn target(max: usize, shrink: u8) -> usize {
    let pct = match shrink {
        0 => 100,
        1 => 75,
        2 => 50,
        3 => 35,
        _ => 25,
    };
    max / 100 * pct + max % 100 * pct / 100
}

/// A mobile number as DingTalk takes it: digits, optionally a leading `+` and `-` separators.
pub fn valid_mobile(m: &str) -> bool {
    let digits = m.strip_prefix('+').unwrap_or(m);
    (5..=20).contains(&m.len())
        && digits.starts_with(|c: char| c.is_ascii_digit())
        && digits.chars().all(|c| c.is_ascii_digit() || c == '-')
}

/// A DingTalk user ID: 1 to 64 of ASCII letters, digits, `_`, `-`, `.`, `$`.
pub fn valid_user_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
}

/// The configured mentions that are valid (warning about the rest), at most [`MAX_MENTIONS`].
fn mentions(opts: &DingTalkOptions, warnings: &mut Vec<String>) -> (Vec<String>, Vec<String>) {
    let mut mobiles = valid_entries(&opts.at_mobiles, valid_mobile, "dingtalk mobile", warnings);
    let mut ids = valid_entries(
        &opts.at_user_ids,
        valid_user_id,
        "dingtalk user id",
        warnings,
    );
    if mobiles.len() + ids.len() > MAX_MENTIONS {
        warnings.push(format!(
            "only the first {MAX_MENTIONS} dingtalk mentions are used"
        ));
        mobiles.truncate(MAX_MENTIONS);
        ids.truncate(MAX_MENTIONS - mobiles.len());
    }
    (mobiles, ids)
}

/// `@<mobile>` and `@<user id>`, as DingTalk shows the mentions listed in `at`.
fn mention_tags(mobiles: &[String], ids: &[String]) -> Vec<String> {
    mobiles.iter().chain(ids).map(|m| format!("@{m}")).collect()
}

/// The trimmed entries of `list` that pass `ok`; each other one adds a warning naming `what`
/// (`feishu user id`). For configured mentions, which the sink's check already refused, so
/// only a direct caller of the renderer meets the warning.
pub(crate) fn valid_entries(
    list: &[String],
    ok: fn(&str) -> bool,
    what: &str,
    warnings: &mut Vec<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for m in list {
        let m = m.trim();
        if ok(m) {
            out.push(m.to_string());
        } else {
            warnings.push(format!(
                "ignored invalid {what} {:?}",
                clip(&escape::text(m), 40)
            ));
        }
    }
    out
}

/// A button's label (not yet escaped) and URL.
pub(crate) type Button = (String, String);

/// The buttons of one message as `(label, url)`, the label not yet escaped: the action buttons
/// first ([`view::action_links`]), then, when `links`, the link buttons ([`link_buttons`]) in
/// the room left; `max` in all, each URL once. Returned apart, `(actions, links)`, so each
/// output can style them.
pub(crate) fn buttons(
    p: &Payload,
    actions: &[ActionButton],
    lang: Lang,
    links: bool,
    max: usize,
) -> (Vec<Button>, Vec<Button>) {
    let acts: Vec<Button> = view::action_links(p, actions, lang, max)
        .into_iter()
        .map(|(_, label, url)| (label.to_string(), url))
        .collect();
    let mut rest = if links {
        link_buttons(p, lang, max)
    } else {
        Vec::new()
    };
    rest.retain(|(_, url)| acts.iter().all(|(_, a)| a != url));
    rest.truncate(max - acts.len());
    (acts, rest)
}

/// Drops buttons from the end (link buttons before action buttons) while they take more than
/// half of the room the body leaves for its text within `limit` (`bare_len` measures the body
/// with no text and the buttons given): the text keeps room, and [`Fit::run`]'s last cut can
/// always fit. A button is left out whole, never cut.
pub(crate) fn fit_buttons<B>(
    buttons: &mut Vec<B>,
    limit: usize,
    bare_len: impl Fn(&[B]) -> usize,
    warnings: &mut Vec<String>,
) {
    let before = buttons.len();
    let bare = bare_len(&[]);
    let half = limit.saturating_sub(bare) / 2;
    while !buttons.is_empty() && bare_len(buttons).saturating_sub(bare) > half {
        buttons.pop();
    }
    if buttons.len() < before {
        warnings.push(format!(
            "{} of {before} buttons left out to fit the size limit",
            before - buttons.len()
        ));
    }
}

/// Button links as `(label, url)`, the label not yet escaped: for an event its finding's links
/// (alert detail, CVE pages, report, console, cluster), at most `max`; for a digest the console
/// and cluster links of its members, at most 2.
pub(crate) fn link_buttons(p: &Payload, lang: Lang, max: usize) -> Vec<Button> {
    let rank = |k: LinkKind| match k {
        LinkKind::Asset => 0,
        LinkKind::Cve => 1,
        LinkKind::Report => 2,
        LinkKind::Console => 3,
        LinkKind::Cluster => 4,
    };
    let mut all: Vec<(LinkKind, String, String)> = Vec::new();
    let digest = matches!(p, Payload::Digest(_));
    for e in p.events() {
        if let Some(f) = &e.finding {
            for l in links(f, 16) {
                let wanted = !digest || matches!(l.0, LinkKind::Console | LinkKind::Cluster);
                if wanted && !all.iter().any(|a| a.2 == l.2) {
                    all.push(l);
                }
            }
        }
        if all.len() >= 16 {
            break;
        }
    }
    all.sort_by_key(|l| rank(l.0));
    all.into_iter()
        .take(if digest { 2.min(max) } else { max })
        .map(|(k, label, url)| (link_label(k, &label, lang), url))
        .collect()
}

/// Serialised size of a body, as the sink sends it (`serde_json::to_vec`).
pub fn encoded_len(body: &Value) -> usize {
    serde_json::to_vec(body).map_or(usize::MAX, |v| v.len())
}

/// Renders `payload` as a DingTalk robot body.
pub fn render(payload: &Payload, opts: &DingTalkOptions) -> Rendered<Value> {
    if let Payload::Health(h) = payload {
        return health(h, opts);
    }
    let mut warnings = Vec::new();
    let lang = opts.lang;
    let tz = zone_or_utc(&opts.timezone, &mut warnings);
    let (mobiles, ids) = mentions(opts, &mut warnings);
    let keyword = opts
        .keyword
        .as_deref()
        .map(|k| clip(k.trim(), 64))
        .filter(|k| !k.is_empty());

    let headline = view::headline(payload, lang);
    let mut title = clip(&escape::dingtalk(&headline), 100);
    if let Some(k) = &keyword
        && !title.contains(k.as_str())
    {
        title = format!("{k} {title}");
    }
    let body_of = |msg_type: MsgType, btns: &[Value], text: &str| -> Value {
        let mut body = match msg_type {
            MsgType::Markdown => json!({
                "msgtype": "markdown",
                "markdown": {"title": title, "text": text},
                "at": {"atMobiles": mobiles, "atUserIds": ids, "isAtAll": opts.at_all},
            }),
            MsgType::ActionCard => json!({
                "msgtype": "actionCard",
                "actionCard": {"title": title, "text": text, "btnOrientation": "0", "btns": btns},
            }),
        };
        body["msgUuid"] = Value::from(payload.id());
        body
    };

    let mut msg_type = opts.msg_type;
    let mut btns: Vec<Value> = Vec::new();
    if msg_type == MsgType::ActionCard {
        let (acts, links) = buttons(
            payload,
            &opts.actions,
            lang,
            opts.console_links,
            MAX_BUTTONS,
        );
        btns = acts
            .into_iter()
            .chain(links)
            .map(|(label, url)| json!({"title": escape::dingtalk(&label), "actionURL": url}))
            .collect();
        let bare = assemble("", "", keyword.as_deref());
        fit_buttons(
            &mut btns,
            target(opts.max_body_bytes, opts.shrink),
            |b| encoded_len(&body_of(MsgType::ActionCard, b, &bare)),
            &mut warnings,
        );
    }
    if msg_type == MsgType::ActionCard && btns.is_empty() {
        warnings.push("no buttons for the action card, sent as markdown".into());
        msg_type = MsgType::Markdown;
    }
    let has_mentions = !mobiles.is_empty() || !ids.is_empty() || opts.at_all;
    if msg_type == MsgType::ActionCard && has_mentions {
        warnings.push("dingtalk action cards cannot mention anyone; mentions ignored".into());
    }

    // What follows the template's text and is never cut: mentions, then the keyword.
    let mut suffix = String::new();
    let markdown = msg_type == MsgType::Markdown;
    if markdown {
        let tags = mention_tags(&mobiles, &ids);
        if !tags.is_empty() {
            suffix.push_str("\n\n");
            suffix.push_str(&tags.join(" "));
        }
    }

    let fit = Fit {
        kind: TemplateKind::DingTalk,
        lang,
        tz: &tz,
        template: opts.template.as_deref(),
        text: TextLinks {
            links: opts.console_links && markdown,
            actions: if markdown { &opts.actions } else { &[] },
        },
        shrink: opts.shrink,
        max_bytes: opts.max_body_bytes,
        headline: &headline,
    };
    let (body, level) = fit.run(
        payload,
        |t| assemble(t, &suffix, keyword.as_deref()),
        |t| body_of(msg_type, &btns, t),
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
fn health(h: &HealthEvent, opts: &DingTalkOptions) -> Rendered<Value> {
    let mut warnings = Vec::new();
    let (mobiles, ids) = mentions(opts, &mut warnings);
    let tags = mention_tags(&mobiles, &ids);
    let keyword = opts.keyword.as_deref();
    let content = super::health::message(h, opts.lang, escape::slack_plain, keyword, &tags);
    Rendered {
        body: json!({
            "msgtype": "text",
            "text": {"content": content},
            "at": {"atMobiles": mobiles, "atUserIds": ids, "isAtAll": opts.at_all},
            "msgUuid": h.id,
        }),
        warnings,
        level: 0,
    }
}

/// How a robot body with one markdown text (DingTalk's `markdown.text`, Feishu's `lark_md`)
/// is fitted into its byte limit: the template renders at the shrink level's budget and the
/// next level is tried until the serialised body fits the target; still too large at the
/// smallest budget, the template's text is cut (on a line or character boundary, with a
/// marker); the lines from its first action link on and what `assemble` appends (mentions,
/// keyword) are kept whole.
pub(crate) struct Fit<'a> {
    /// Which template (and escaping).
    pub kind: TemplateKind,
    /// Language of the built-in template.
    pub lang: Lang,
    /// Zone the times are shown in (already checked).
    pub tz: &'a str,
    /// A custom template text.
    pub template: Option<&'a str>,
    /// Which links the text carries.
    pub text: TextLinks<'a>,
    /// First shrink level (see [`DingTalkOptions::shrink`]).
    pub shrink: u8,
    /// The body limit in bytes.
    pub max_bytes: usize,
    /// The payload's headline (the template's fallback).
    pub headline: &'a str,
}

impl Fit<'_> {
    /// The fitted body and the level used. `assemble` turns the template's text into the
    /// message text; `build` turns that into the whole body.
    pub(crate) fn run(
        &self,
        payload: &Payload,
        assemble: impl Fn(&str) -> String,
        build: impl Fn(&str) -> Value,
        warnings: &mut Vec<String>,
    ) -> (Value, u8) {
        let limit = target(self.max_bytes, self.shrink);
        let mut engine = Engine::new(self.kind, self.lang, self.template, warnings);
        let mut level = self.shrink.min(MAX_SHRINK);
        let mut body_text;
        loop {
            let ctx = view::context(
                payload,
                self.lang,
                self.tz,
                &LEVELS[level as usize],
                self.kind,
                self.text,
                level,
            );
            body_text = engine.render(&ctx, self.headline, warnings);
            let body = build(&assemble(&body_text));
            if encoded_len(&body) <= limit {
                return (body, level);
            }
            if level == MAX_SHRINK {
                break;
            }
            level += 1;
        }
        let fixed = encoded_len(&build(""));
        let room = limit
            .saturating_sub(fixed)
            .saturating_sub(json_len(&assemble("")));
        let marker = match self.lang {
            Lang::En => "\n\n… (truncated)",
            Lang::Zh => "\n\n…（已截断）",
        };
        let text = body_text.trim_end();
        // The action links are what a responder needs most: cut before them, not through them
        // (unless they would take more than half of the room).
        let sep = "\n\n";
        let cut = match self.actions_start(payload, text) {
            Some(at) if json_len(&text[at..]) + json_len(sep) <= room / 2 => {
                let tail = &text[at..];
                let head = text[..at].trim_end();
                let room = room - json_len(tail) - json_len(sep);
                format!("{}{sep}{tail}", truncate_json(head, room, marker))
            }
            _ => truncate_json(text, room, marker),
        };
        (build(&assemble(&cut)), level)
    }

    /// Where the line with the first action link in `text` starts, if the text carries one.
    /// Untrusted text cannot hold one of these URLs: its `://` is always defanged.
    fn actions_start(&self, payload: &Payload, text: &str) -> Option<usize> {
        let max = view::MAX_ACTION_BUTTONS;
        let at = view::action_links(payload, self.text.actions, self.lang, max)
            .iter()
            .filter_map(|(_, _, url)| text.find(&view::url_for(url, self.kind)))
            .min()?;
        Some(text[..at].rfind('\n').map_or(0, |nl| nl + 1))
    }
}

/// Template text + mentions + the keyword when the rest lacks it.
pub(crate) fn assemble(body: &str, suffix: &str, keyword: Option<&str>) -> String {
    let mut text = body.trim_end().to_string();
    text.push_str(suffix);
    if let Some(k) = keyword
        && !text.contains(k)
    {
        text.push_str("\n\n");
        text.push_str(k);
    }
    text
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::finding::Domain;
    use crate::render::sample::{
        assert_no_failing_actions, huge_event, langs_and_links, sample_actions, test_actions,
    };
    use crate::render::{action_label, sample_digest, sample_event};

    /// The markdown line the built-in template ends an event with, given the sample actions.
    pub(crate) fn actions_line(lang: Lang) -> String {
        let urls: Vec<String> = sample_actions().into_iter().map(|a| a.url).collect();
        match lang {
            Lang::En => format!(
                "**Actions**: [Ignore…]({}) · [Mark handled…]({})",
                urls[0], urls[1]
            ),
            Lang::Zh => format!(
                "**操作**：[忽略…]({}) · [标记为已处理…]({})",
                urls[0], urls[1]
            ),
        }
    }

    #[test]
    fn actions_end_the_markdown_and_lead_the_card_buttons() {
        let p: Payload = sample_event(Domain::Vulnerabilities).into();
        for (lang, console_links) in langs_and_links() {
            let opts = DingTalkOptions {
                lang,
                console_links,
                actions: test_actions(),
                ..Default::default()
            };
            let md = render(&p, &opts);
            let text = md.body["markdown"]["text"].as_str().unwrap();
            assert!(text.ends_with(&actions_line(lang)), "{text}");
            assert_eq!(text.contains("](https://yundun"), console_links, "{text}");
            assert_no_failing_actions(&md.body.to_string());
            let card = render(
                &p,
                &DingTalkOptions {
                    msg_type: MsgType::ActionCard,
                    ..opts
                },
            );
            assert!(card.warnings.is_empty(), "{:?}", card.warnings);
            let btns = card.body["actionCard"]["btns"].as_array().unwrap();
            let want: Vec<(String, String)> = sample_actions()
                .into_iter()
                .map(|a| (action_label(&a.action, lang).to_string(), a.url))
                .collect();
            for (b, (label, url)) in btns.iter().zip(&want) {
                assert_eq!((&b["title"], &b["actionURL"]), (&json!(label), &json!(url)));
            }
            assert_eq!(btns.len(), if console_links { MAX_BUTTONS } else { 2 });
            let text = card.body["actionCard"]["text"].as_str().unwrap();
            assert!(!text.contains("sasrelay.example.com"), "{text}");
            assert_no_failing_actions(&card.body.to_string());
        }
    }

    #[test]
    fn digests_get_no_actions() {
        let p: Payload = sample_digest().into();
        for msg_type in [MsgType::Markdown, MsgType::ActionCard] {
            let opts = DingTalkOptions {
                msg_type,
                actions: test_actions(),
                ..Default::default()
            };
            let body = render(&p, &opts).body.to_string();
            assert!(!body.contains("sasrelay.example.com"), "{body}");
        }
    }

    #[test]
    fn actions_keep_the_body_within_its_limit() {
        let big: Payload = huge_event(Domain::Alerts).into();
        for msg_type in [MsgType::Markdown, MsgType::ActionCard] {
            for (max, shrink) in [
                (MAX_BODY_BYTES, 0),
                (MAX_BODY_BYTES, 4),
                (4_000, 0),
                (2_000, 1),
            ] {
                let opts = DingTalkOptions {
                    msg_type,
                    max_body_bytes: max,
                    shrink,
                    actions: test_actions(),
                    ..Default::default()
                };
                let r = render(&big, &opts);
                assert!(
                    encoded_len(&r.body) <= target(max, shrink),
                    "{msg_type:?} {max}"
                );
                assert!(r.body.to_string().contains(&sample_actions()[1].url));
            }
        }
        // Buttons too large for the body are left out whole (links first), never cut.
        let long = |action: &str| ActionButton {
            action: action.into(),
            url: format!(
                "https://sasrelay.example.com/act/{action}?t={}",
                "t".repeat(2900)
            ),
        };
        let actions: Vec<ActionButton> = ["ignore", "handled", "whitelist", "verify", "fix"]
            .into_iter()
            .map(long)
            .collect();
        let p: Payload = sample_event(Domain::Vulnerabilities).into();
        for shrink in [0, 1, 4] {
            let opts = DingTalkOptions {
                msg_type: MsgType::ActionCard,
                shrink,
                actions: actions.clone(),
                ..Default::default()
            };
            let r = render(&p, &opts);
            assert!(encoded_len(&r.body) <= target(MAX_BODY_BYTES, shrink));
            assert!(r.warnings.iter().any(|w| w.contains("buttons left out")));
            if shrink == 4 {
                // Not even one fits in half of 5,000 bytes: a markdown message instead.
                assert_eq!(r.body["msgtype"], "markdown");
                continue;
            }
            let btns = r.body["actionCard"]["btns"].as_array().unwrap();
            assert!(!btns.is_empty() && btns.len() < 5, "{}", btns.len());
            for (b, a) in btns.iter().zip(&actions) {
                assert_eq!(b["actionURL"], json!(a.url));
            }
        }
    }

    #[test]
    fn targets_shrink_with_the_setting() {
        assert_eq!(target(20_000, 0), 20_000);
        assert_eq!(target(20_000, 1), 15_000);
        assert_eq!(target(20_000, 9), 5_000);
    }

    #[test]
    fn mention_syntax() {
        assert!(valid_mobile("13800001111") && valid_mobile("+86-13800001111"));
        assert!(!valid_mobile("138 0000") && !valid_mobile("@all") && !valid_mobile("+"));
        assert!(valid_user_id("manager1234") && !valid_user_id("a b") && !valid_user_id(""));
    }

    #[test]
    fn keyword_and_mentions_are_placed() {
        let p: Payload = sample_event(Domain::Alerts).into();
        let opts = DingTalkOptions {
            at_mobiles: vec!["13800001111".into(), "bad number".into()],
            at_user_ids: vec!["manager1234".into()],
            keyword: Some("安全告警".into()),
            ..Default::default()
        };
        let r = render(&p, &opts);
        let text = r.body["markdown"]["text"].as_str().unwrap();
        assert!(
            text.ends_with("@13800001111 @manager1234\n\n安全告警"),
            "{text}"
        );
        assert!(
            r.body["markdown"]["title"]
                .as_str()
                .unwrap()
                .starts_with("安全告警 ")
        );
        assert_eq!(r.body["at"]["atMobiles"], json!(["13800001111"]));
        assert_eq!(r.body["msgUuid"], json!(p.id()));
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    }
}
