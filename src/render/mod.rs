//! Rendering: a [`Payload`] (one event or a digest) turned into the exact body a chat, mail or
//! paging sink sends — DingTalk robot JSON ([`dingtalk`]), a Feishu/Lark interactive card
//! ([`feishu`]), WeCom robot markdown ([`wecom`]), Slack Block Kit JSON ([`slack`]), an
//! email's subject, text and HTML ([`email`]), a PagerDuty Events API v2 event ([`pagerduty`]).
//! Pure: no IO, no clock; sending, rate limits and config wiring live in the sinks built on top.
//!
//! ## Untrusted text
//!
//! Every string inside a finding, a summary message or a digest's group values may be written
//! by an attacker (process names, command lines, paths, image names). It must never add a
//! mention, link, image, markup, header or recipient. Three rules make that hold:
//!
//! 1. **Everything untrusted is escaped where it is printed**, for the output it is printed
//!    into ([`escape`] has the table and examples). Templates never escape by hand: the
//!    environment's formatter escapes every `{{ value }}` by the template's output kind
//!    (minijinja `set_auto_escape_callback` + a custom formatter). Untrusted values are always
//!    one line: control characters become spaces, invisible characters (bidi controls,
//!    zero-width, fillers, variation selectors, tags: [`crate::text::is_invisible_format`])
//!    are dropped.
//! 2. **Only configuration adds mentions.** Mentions come from the sink options and are placed
//!    by the renderer after the template ran (DingTalk: `@mobile` in the text *and* in
//!    `at.atMobiles`; Slack: `<@U…>` / `<!here>`); the `@` of untrusted text is always made a
//!    look-alike (`＠`), so it cannot name anyone either.
//! 3. **Only sasrelay's links are links.** Button and inline-link URLs come from
//!    [`Finding::links`](crate::finding::Finding::links) and, for one event, from the sink's
//!    [`ActionButton`]s; they are re-checked ([`checked_url`]) and inserted as safe values;
//!    URLs inside untrusted text are defanged (`https:／／…`).
//!
//! ## Templates
//!
//! Each output has built-in templates in English and Chinese ([`Lang`]) and can be overridden
//! by a template text from config ([`TemplateKind`] lists them; [`check_template`] checks one
//! for `sasrelay check`). Helpers are the filters
//! `severity_emoji`, `severity_color`, `localtime("Asia/Shanghai")` and `truncate(n)`.
//! Nothing a template writes switches escaping off: `safe` leaves a finding's text escaped,
//! `tojson`'s output is escaped like any text, and `autoescape` blocks and `include`,
//! `import` and `extends` are refused (the engine's module doc has the details).
//! Undefined names are errors (`UndefinedBehavior::Strict`), `trim_blocks` and
//! `lstrip_blocks` are on. A custom template that fails at render time is replaced by the
//! built-in one and the result carries a warning ([`Rendered::warnings`]); a message is never
//! dropped.
//!
//! ### Template context
//!
//! What `{{ … }}` can name:
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `lang` | string | `en` or `zh` |
//! | `tz` | string | the configured IANA zone (default of `localtime`) |
//! | `headline` | string | one line: `HIGH new alert: Reverse shell in c-prod`, or the digest headline |
//! | `severity` | string \| none | the (highest) severity: `info` … `critical` |
//! | `event` | object \| none | the event, when the payload is one event (below) |
//! | `digest` | object \| none | the digest, when the payload is a digest (below) |
//! | `inline_links` | bool | whether the text should carry the links (false when buttons do) |
//! | `actions` | list | action links the text should carry: `[{action,label,url}]` (below) |
//! | `level` | number | shrink level (0 = full) |
//!
//! `event`: `id kind kind_label domain domain_label noun source region observed_at resolution
//! resolution_label severity severity_label native_severity title description alert_type
//! place context[{name,value}] kubernetes{…} host{…} first_seen last_seen details[{name,value}]
//! details_more cves[] cves_more tactics[{id,name}] links[{kind,label,url}] summary{tracked,message}|none`.
//!
//! `digest`: `id route group[{key,value}] created_at headline count more events[…]
//! counts{severity[{severity,label,count}],kind[{kind,label,count}],domain[{domain,label,count}]}`.
//!
//! `actions`: the payload's [`ActionButton`]s whose URL passes [`checked_url`] (at most 5), each
//! `{action, label, url}` (`ignore`, `Ignore…`, the URL encoded like `links`' URLs). Only for one
//! event with a finding, and only where the text carries them: empty for digests and
//! meta-events, and where the output shows them as buttons (Slack, Feishu, DingTalk action
//! cards).
//!
//! Times (`observed_at`, `first_seen`, `last_seen`, `created_at`) are RFC 3339 UTC strings;
//! print them with `|localtime`. Untrusted strings arrive clipped to the current budget
//! (`… (+N)`), lists cut to it with a count of the rest (`details_more`, `cves_more`, `more`);
//! absent values are `none`, never undefined, so `{% if event.summary %}` is safe.
//!
//! ## Sizes
//!
//! Every output knows its limits and never exceeds them: DingTalk's and Feishu's serialised
//! bodies ≤ 20,000 bytes, WeCom's markdown content ≤ 4,096 bytes, Slack's Block Kit limits, email caps. Rendering starts at a budget (items of a digest,
//! detail rows, characters per value) and shrinks it level by level until the output fits; a
//! last hard cut (on a character boundary, with a marker) guarantees the limit whatever a custom
//! template does. [`Rendered::level`] says which level was used; a sink told "too large" by
//! the service (DingTalk errcode 460101, Feishu code 9499) renders again with a larger `shrink`.
//!
//! ## Meta-events
//!
//! A [`Payload::Health`] (sasrelay's own health) is not a
//! finding: every output sends it as its plainest message ([`health`]: a headline and a few
//! lines), never through a custom template.
//!
//! [`Payload`]: crate::event::Payload

pub mod dingtalk;
pub mod email;
mod engine;
pub mod escape;
pub mod feishu;
pub mod health;
pub mod pagerduty;
mod sample;
pub mod slack;
mod view;
pub mod wecom;

use serde::{Deserialize, Serialize};

use crate::event::Payload;
use crate::finding::Domain;

pub use engine::{builtin_template, localtime, severity_color, severity_emoji, valid_zone};
pub use sample::{sample_digest, sample_event, sample_summary};
pub use view::checked_url;

/// A link to sasrelay's action page for one action on the payload's finding (built and signed
/// by the sink; the renderer only places it, after the same [`checked_url`] check as other
/// links). Placed for a [`Payload::Event`] with a finding only, never for digests or
/// meta-events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionButton {
    /// The action's name: `ignore`, `handled`, `whitelist`, `verify`, `fix` (labels come from it).
    pub action: String,
    /// The page's URL (https or http; carries a token).
    pub url: String,
}

/// The label of an action button, e.g. "Ignore…" / "忽略…", "Mark handled…" / "标记为已处理…",
/// "Whitelist…" / "加白名单…", "Verify fix…" / "验证修复…", "Fix…" / "修复…"; unknown names →
/// "Act…" / "处理…". The ellipsis says the page asks before it acts.
pub fn action_label(action: &str, lang: Lang) -> &'static str {
    match (lang, action) {
        (Lang::En, "ignore") => "Ignore…",
        (Lang::En, "handled") => "Mark handled…",
        (Lang::En, "whitelist") => "Whitelist…",
        (Lang::En, "verify") => "Verify fix…",
        (Lang::En, "fix") => "Fix…",
        (Lang::En, _) => "Act…",
        (Lang::Zh, "ignore") => "忽略…",
        (Lang::Zh, "handled") => "标记为已处理…",
        (Lang::Zh, "whitelist") => "加白名单…",
        (Lang::Zh, "verify") => "验证修复…",
        (Lang::Zh, "fix") => "修复…",
        (Lang::Zh, _) => "处理…",
    }
}

/// Highest meaningful shrink level: beyond it only size targets shrink further.
pub const MAX_SHRINK: u8 = 3;

/// Language of the built-in templates and labels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// English.
    #[default]
    En,
    /// Simplified Chinese.
    Zh,
}

impl Lang {
    /// `en` or `zh`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }
}

/// A template a user can override, which also decides how values are escaped in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateKind {
    /// DingTalk markdown text (`markdown.text` / `actionCard.text`); DingTalk escaping.
    DingTalk,
    /// Feishu/Lark card text (`lark_md`); Feishu escaping.
    Feishu,
    /// WeCom group-robot markdown (`markdown.content`); WeCom escaping.
    WeCom,
    /// Slack mrkdwn body (split into section blocks); Slack escaping.
    Slack,
    /// Email subject (made one header-safe line afterwards); text escaping.
    EmailSubject,
    /// Email text part; text escaping.
    EmailText,
    /// Email HTML part (a whole document); HTML escaping.
    EmailHtml,
}

impl TemplateKind {
    /// All of them.
    pub const ALL: [TemplateKind; 7] = [
        TemplateKind::DingTalk,
        TemplateKind::Feishu,
        TemplateKind::WeCom,
        TemplateKind::Slack,
        TemplateKind::EmailSubject,
        TemplateKind::EmailText,
        TemplateKind::EmailHtml,
    ];

    /// Name used in messages and config, e.g. `dingtalk`, `email_html`.
    pub fn name(self) -> &'static str {
        match self {
            TemplateKind::DingTalk => "dingtalk",
            TemplateKind::Feishu => "feishu",
            TemplateKind::WeCom => "wecom",
            TemplateKind::Slack => "slack",
            TemplateKind::EmailSubject => "email_subject",
            TemplateKind::EmailText => "email_text",
            TemplateKind::EmailHtml => "email_html",
        }
    }

    /// Template-name suffix (`custom.dingtalk.md`); the escaping follows the kind the
    /// environment was built for, not the name.
    fn suffix(self) -> &'static str {
        match self {
            TemplateKind::DingTalk => ".dingtalk.md",
            TemplateKind::Feishu => ".feishu.md",
            TemplateKind::WeCom => ".wecom.md",
            TemplateKind::Slack => ".slack",
            TemplateKind::EmailSubject => ".subject",
            TemplateKind::EmailText => ".txt",
            TemplateKind::EmailHtml => ".html",
        }
    }

    /// The escape mode's name (minijinja's `AutoEscape::Custom`).
    fn escape_name(self) -> &'static str {
        match self {
            TemplateKind::DingTalk => "dingtalk",
            TemplateKind::Feishu => "feishu",
            TemplateKind::WeCom => "wecom",
            TemplateKind::Slack => "slack",
            TemplateKind::EmailSubject => "subject",
            TemplateKind::EmailText => "text",
            TemplateKind::EmailHtml => "html",
        }
    }
}

/// A rendered body with what the sink should know about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered<T> {
    /// What to send.
    pub body: T,
    /// Why something was not rendered as configured (a custom template failed, a mention was
    /// invalid, a time zone unknown); log them, the body is still complete.
    pub warnings: Vec<String>,
    /// The shrink level used (0 = full). After a "too large" answer, render again with
    /// `shrink = level + 1`.
    pub level: u8,
}

/// What a rendering at one shrink level may include.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Budget {
    /// Digest members listed.
    pub items: usize,
    /// Detail rows of a lone finding.
    pub details: usize,
    /// Characters per value (title, detail value, Kubernetes field, …).
    pub field: usize,
    /// Characters of a description or summary message.
    pub desc: usize,
    /// CVE IDs and tactics listed.
    pub list: usize,
}

/// Whether a character may stay in a message body: not a control character other than `\n`
/// and `\t`, not an invisible format character.
pub(crate) fn is_body_char(c: char) -> bool {
    (c == '\n' || c == '\t' || !c.is_control()) && !crate::text::is_invisible_format(c)
}

/// The time zone to show times in: `zone` when the bundled database knows it, else UTC with a
/// warning.
pub(crate) fn zone_or_utc(zone: &str, warnings: &mut Vec<String>) -> String {
    if valid_zone(zone) {
        zone.to_string()
    } else {
        warnings.push(format!(
            "unknown time zone {zone:?}, times are shown in UTC"
        ));
        "UTC".to_string()
    }
}

/// Checks a custom template for `sasrelay check`: refuses `autoescape`, `include`, `import`
/// and `extends` (the error names the template, the line and the statement), then compiles it
/// and renders it against sample payloads (a summary, a finding of each domain, a digest; with
/// sample action links; in both languages and at the fullest and the smallest budget). A
/// render error names the sample and the template line.
pub fn check_template(kind: TemplateKind, text: &str) -> Result<(), String> {
    engine::check_statements(kind, text)?;
    let mut payloads: Vec<(String, Payload)> =
        vec![("summary".into(), sample_summary(Domain::Alerts).into())];
    for d in Domain::ALL {
        payloads.push((d.as_str().into(), sample_event(d).into()));
    }
    payloads.push(("digest".into(), sample_digest().into()));
    let budgets = [
        Budget {
            items: 20,
            details: 30,
            field: 1000,
            desc: 2000,
            list: 10,
        },
        Budget {
            items: 2,
            details: 0,
            field: 40,
            desc: 0,
            list: 1,
        },
    ];
    let actions = sample::sample_actions();
    let links = view::TextLinks {
        links: true,
        actions: &actions,
    };
    for (what, p) in &payloads {
        for lang in [Lang::En, Lang::Zh] {
            for (level, b) in budgets.iter().enumerate() {
                let ctx = view::context(p, lang, "Asia/Shanghai", b, kind, links, level as u8);
                engine::try_render(kind, text, &ctx)
                    .map_err(|e| format!("sample {what} ({}): {e}", lang.as_str()))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_templates_pass_their_own_check() {
        for kind in TemplateKind::ALL {
            for lang in [Lang::En, Lang::Zh] {
                check_template(kind, builtin_template(kind, lang))
                    .unwrap_or_else(|e| panic!("{} {}: {e}", kind.name(), lang.as_str()));
            }
        }
    }

    #[test]
    fn action_labels_follow_the_name_and_language() {
        assert_eq!(action_label("ignore", Lang::En), "Ignore…");
        assert_eq!(action_label("ignore", Lang::Zh), "忽略…");
        assert_eq!(action_label("handled", Lang::En), "Mark handled…");
        assert_eq!(action_label("handled", Lang::Zh), "标记为已处理…");
        assert_eq!(action_label("whitelist", Lang::Zh), "加白名单…");
        assert_eq!(action_label("verify", Lang::En), "Verify fix…");
        assert_eq!(action_label("fix", Lang::Zh), "修复…");
        assert_eq!(action_label("Ignore", Lang::En), "Act…");
        assert_eq!(action_label("", Lang::Zh), "处理…");
    }

    #[test]
    fn templates_see_the_checked_actions_of_one_event_only() {
        let actions = sample::test_actions();
        let links = view::TextLinks {
            links: false,
            actions: &actions,
        };
        let b = Budget {
            items: 5,
            details: 5,
            field: 100,
            desc: 100,
            list: 5,
        };
        let tpl = "{% for a in actions %}{{ a.action }} {{ a.label }} {{ a.url }}\n{% endfor %}";
        let render = |p: &Payload, kind| {
            let ctx = view::context(p, Lang::En, "UTC", &b, kind, links, 0);
            engine::try_render(kind, tpl, &ctx).unwrap()
        };
        let urls: Vec<String> = sample::sample_actions()
            .into_iter()
            .map(|a| a.url)
            .collect();
        let event: Payload = sample_event(Domain::Alerts).into();
        // Bad URLs left out, each good one encoded for the output (`&` in an HTML attribute).
        assert_eq!(
            render(&event, TemplateKind::EmailHtml),
            format!(
                "ignore Ignore… {}\nhandled Mark handled… {}\n",
                urls[0].replace('&', "&amp;"),
                urls[1].replace('&', "&amp;")
            )
        );
        assert_eq!(
            render(&event, TemplateKind::WeCom),
            format!(
                "ignore Ignore… {}\nhandled Mark handled… {}\n",
                urls[0], urls[1]
            )
        );
        // Never for a digest or a summary (no finding).
        for p in [
            Payload::from(sample_digest()),
            sample_summary(Domain::Alerts).into(),
        ] {
            assert_eq!(render(&p, TemplateKind::DingTalk), "");
        }
    }

    #[test]
    fn check_reports_undefined_names_and_syntax_errors() {
        let e = check_template(TemplateKind::Slack, "{{ event.titel }}").unwrap_err();
        assert!(
            e.contains("sample summary") && e.contains("custom.slack:1"),
            "{e}"
        );
        // Fine for events, fails on the digest (event is none there).
        let e = check_template(TemplateKind::DingTalk, "{{ event.title|upper }}").unwrap_err();
        assert!(e.contains("digest"), "{e}");
        let e = check_template(TemplateKind::EmailHtml, "{% for x in %}").unwrap_err();
        assert!(e.contains("syntax error"), "{e}");
        assert!(check_template(TemplateKind::EmailSubject, "{{ headline }}").is_ok());
    }
}
