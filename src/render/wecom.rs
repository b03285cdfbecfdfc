//! The WeCom (企业微信) group-robot body: a `markdown` message whose content never exceeds
//! WeCom's 4,096 bytes (errcode 40058 above it).
//!
//! ```json
//! {"msgtype":"markdown","markdown":{"content":"### <font color=\"warning\">🔴</font> …\n> …\n<@zhangsan>"}}
//! ```
//!
//! Severity is shown with WeCom's three colours (`<font color="warning|info|comment">`):
//! critical and high `warning`, lower `comment`, resolved `info` (green). Mentions: WeCom's
//! `mentioned_list` works for `text` messages only; markdown mentions are `<@userid>` in the
//! content, so configured user IDs are written there after the template's text, and
//! untrusted `<` `>` `@` are full-width ([`super::escape::wecom`]), so no finding can mention anyone
//! or add a colour, link or heading. Links are inline (`[label](url)`), sasrelay's only; so
//! are action buttons ([`WeComOptions::actions`], one event only), a line the template places:
//! `**Actions**: [Ignore…](https://…) · [Mark handled…](https://…)`.
//!
//! A meta-event ([`crate::event::HealthEvent`]) is a `text` message instead, whose mentions
//! go in `mentioned_list`:
//! `{"msgtype":"text","text":{"content":"[sasrelay] FIRING: …","mentioned_list":["zhangsan"]}}`.

use serde_json::{Value, json};

use super::dingtalk::{Fit, assemble, valid_entries};
use super::view::{self, TextLinks};
use super::{ActionButton, Lang, Rendered, TemplateKind, zone_or_utc};
use crate::event::{HealthEvent, Payload};

/// WeCom's limit on `markdown.content`, in bytes.
pub const MAX_CONTENT_BYTES: usize = 4096;
/// Most mentions placed.
pub const MAX_MENTIONS: usize = 50;

/// How to render for one WeCom robot.
#[derive(Clone, Debug, PartialEq)]
pub struct WeComOptions {
    /// Language of the built-in template and labels.
    pub lang: Lang,
    /// IANA zone for times (unknown zones fall back to UTC with a warning).
    pub timezone: String,
    /// WeCom user IDs to mention (`<@userid>`).
    pub at_user_ids: Vec<String>,
    /// A custom markdown template (its text), instead of the built-in one.
    pub template: Option<String>,
    /// Whether to include the finding's links inline.
    pub console_links: bool,
    /// Action links for one event (a line of links), whatever `console_links` says; ignored
    /// for digests and meta-events.
    pub actions: Vec<ActionButton>,
    /// Start smaller: 0 = full; as [`DingTalkOptions::shrink`](super::dingtalk::DingTalkOptions::shrink).
    pub shrink: u8,
    /// Content limit in bytes ([`MAX_CONTENT_BYTES`]).
    pub max_content_bytes: usize,
    /// A body size WeCom refused as too large: the whole body stays below it.
    pub refused_bytes: Option<usize>,
}

impl Default for WeComOptions {
    fn default() -> Self {
        WeComOptions {
            lang: Lang::En,
            timezone: "Asia/Shanghai".into(),
            at_user_ids: Vec::new(),
            template: None,
            console_links: true,
            actions: Vec::new(),
            shrink: 0,
            max_content_bytes: MAX_CONTENT_BYTES,
            refused_bytes: None,
        }
    }
}

/// A WeCom user ID as a mention takes it: 1 to 64 ASCII letters, digits, `_`, `-`, `.`.
pub fn valid_user_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The markdown content of a body this module rendered.
pub fn content(body: &Value) -> &str {
    body["markdown"]["content"].as_str().unwrap_or_default()
}

/// Renders `payload` as a WeCom markdown body.
pub fn render(payload: &Payload, opts: &WeComOptions) -> Rendered<Value> {
    if let Payload::Health(h) = payload {
        return health(h, opts);
    }
    let mut warnings = Vec::new();
    let lang = opts.lang;
    let tz = zone_or_utc(&opts.timezone, &mut warnings);
    let mut ids = valid_entries(
        &opts.at_user_ids,
        valid_user_id,
        "wecom user id",
        &mut warnings,
    );
    if ids.len() > MAX_MENTIONS {
        warnings.push(format!(
            "only the first {MAX_MENTIONS} wecom mentions are used"
        ));
        ids.truncate(MAX_MENTIONS);
    }
    let suffix = if ids.is_empty() {
        String::new()
    } else {
        let tags: Vec<String> = ids.iter().map(|i| format!("<@{i}>")).collect();
        format!("\n{}", tags.join(" "))
    };
    let headline = view::headline(payload, lang);
    let build = |text: &str| json!({"msgtype": "markdown", "markdown": {"content": text}});
    // The content's JSON form bounds its bytes (escapes only add), so the envelope's bytes
    // are added to the limit and the whole body is measured.
    let envelope = super::dingtalk::encoded_len(&build(""));
    let fit = Fit {
        kind: TemplateKind::WeCom,
        lang,
        tz: &tz,
        template: opts.template.as_deref(),
        text: TextLinks {
            links: opts.console_links,
            actions: &opts.actions,
        },
        shrink: opts.shrink,
        max_bytes: (opts.max_content_bytes + envelope)
            .min(
                opts.refused_bytes
                    .map_or(usize::MAX, |r| r.saturating_sub(1)),
            )
            .max(1),
        headline: &headline,
    };
    let (body, level) = fit.run(
        payload,
        |t| assemble(t, &suffix, None),
        build,
        &mut warnings,
    );
    Rendered {
        body,
        warnings,
        level,
    }
}

/// A meta-event as a `text` message (module doc), cut to the content limit.
fn health(h: &HealthEvent, opts: &WeComOptions) -> Rendered<Value> {
    let mut warnings = Vec::new();
    let mut ids = valid_entries(
        &opts.at_user_ids,
        valid_user_id,
        "wecom user id",
        &mut warnings,
    );
    ids.truncate(MAX_MENTIONS);
    let text = super::health::message(h, opts.lang, super::escape::slack_plain, None, &[]);
    let content = crate::text::truncate_bytes(&text, opts.max_content_bytes);
    Rendered {
        body: json!({"msgtype": "text", "text": {"content": content, "mentioned_list": ids}}),
        warnings,
        level: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Domain;
    use crate::render::dingtalk::tests::actions_line;
    use crate::render::sample::{
        assert_no_failing_actions, huge_event, langs_and_links, test_actions,
    };
    use crate::render::{sample_digest, sample_event};

    #[test]
    fn actions_are_a_line_of_links_for_one_event_within_the_limit() {
        let p: Payload = sample_event(Domain::Alerts).into();
        for (lang, console_links) in langs_and_links() {
            let opts = WeComOptions {
                lang,
                console_links,
                actions: test_actions(),
                ..Default::default()
            };
            let c = content(&render(&p, &opts).body).to_string();
            assert!(c.ends_with(&actions_line(lang)), "{c}");
            assert_no_failing_actions(&c);
        }
        let digest = WeComOptions {
            actions: test_actions(),
            ..Default::default()
        };
        let c = content(&render(&sample_digest().into(), &digest).body).to_string();
        assert!(!c.contains("sasrelay.example.com"), "{c}");
        // A huge finding shrinks to fit; below what the smallest budget needs, the last cut
        // goes before the actions line.
        let big: Payload = huge_event(Domain::Alerts).into();
        for (max, shrink) in [(MAX_CONTENT_BYTES, 0), (MAX_CONTENT_BYTES, 4), (1500, 0)] {
            let opts = WeComOptions {
                max_content_bytes: max,
                shrink,
                actions: test_actions(),
                ..Default::default()
            };
            let r = render(&big, &opts);
            let c = content(&r.body);
            assert!(c.len() <= max, "{max}: {}", c.len());
            assert!(r.level > 0 && c.ends_with(&actions_line(Lang::En)), "{c}");
            if shrink > 0 || max < MAX_CONTENT_BYTES {
                assert!(c.contains("(truncated)\n\n**Actions**: "), "{c}");
            }
        }
    }

    #[test]
    fn mentions_and_colours_are_placed_within_the_limit() {
        let p: Payload = sample_event(Domain::Alerts).into();
        let r = render(
            &p,
            &WeComOptions {
                at_user_ids: vec!["zhangsan".into(), "<@all>".into()],
                ..Default::default()
            },
        );
        let c = content(&r.body);
        assert!(c.ends_with("\n<@zhangsan>"), "{c}");
        assert!(c.starts_with("### <font color=\"warning\">"), "{c}");
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        for shrink in 0..5 {
            let d: Payload = sample_digest().into();
            let r = render(
                &d,
                &WeComOptions {
                    shrink,
                    max_content_bytes: 1500,
                    ..Default::default()
                },
            );
            assert!(content(&r.body).len() <= 1500, "{shrink}");
        }
    }
}
