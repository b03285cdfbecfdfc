//! Meta-events ([`HealthEvent`]) as people read them: a headline and a few plain lines, in
//! English or Chinese. The chat, mail and paging renderers place these in their simplest
//! message kind (a text message, a plain mail, a PagerDuty trigger or resolve) instead of a
//! finding's card or template: a custom template is written for findings and must not be able
//! to hide that sasrelay is blind. Pure.
//!
//! Everything here is unescaped; each output escapes every line for itself. Names come from
//! the configuration; `detail` may hold a remote service's error text, so it is cut to
//! [`MAX_DETAIL`] characters and always escaped as untrusted.

use crate::event::{HealthCondition, HealthEvent, HealthStatus};
use crate::render::Lang;
use crate::render::view::rfc3339;

/// Most characters of `detail` shown.
pub const MAX_DETAIL: usize = 500;

/// A meta-event as plain text: a headline and the lines below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plain {
    /// One line: `[sasrelay] FIRING: source prod cannot read alerts`.
    pub headline: String,
    /// The sentence, when it began, the last error and the event's id; each one line.
    pub lines: Vec<String>,
}

impl Plain {
    /// The headline and the lines, one per line, each passed through `escape`.
    pub fn joined(&self, escape: impl Fn(&str) -> String) -> String {
        std::iter::once(&self.headline)
            .chain(&self.lines)
            .map(|l| escape(l))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A chat message of `h`: each line passed through `escape`; the robot's `keyword` first
/// unless the text holds it (robots with a keyword refuse messages without it), the mention
/// `tags` (already in the platform's syntax) on a last line.
pub fn message(
    h: &HealthEvent,
    lang: Lang,
    escape: impl Fn(&str) -> String,
    keyword: Option<&str>,
    tags: &[String],
) -> String {
    let mut text = plain(h, lang).joined(escape);
    if let Some(k) = keyword.map(str::trim).filter(|k| !k.is_empty())
        && !text.contains(k)
    {
        text = format!("{} {text}", crate::text::clip(k, 64));
    }
    if !tags.is_empty() {
        text = format!("{text}\n{}", tags.join(" "));
    }
    text
}

/// The headline of `h`: what holds (or holds no more), and about what.
pub fn headline(h: &HealthEvent, lang: Lang) -> String {
    let firing = h.status == HealthStatus::Firing;
    let what = match (&h.condition, lang, firing) {
        (HealthCondition::SourceBlind { source, domain }, Lang::En, true) => {
            format!("source {source} cannot read {}", domain.as_str())
        }
        (HealthCondition::SourceBlind { source, domain }, Lang::En, false) => {
            format!("source {source} reads {} again", domain.as_str())
        }
        (HealthCondition::SourceBlind { source, domain }, Lang::Zh, true) => {
            format!("来源 {source} 无法读取 {}", domain.as_str())
        }
        (HealthCondition::SourceBlind { source, domain }, Lang::Zh, false) => {
            format!("来源 {source} 已恢复读取 {}", domain.as_str())
        }
        (HealthCondition::CredentialsExpiring { source }, Lang::En, true) => {
            format!("credentials of source {source} expire and cannot be refreshed")
        }
        (HealthCondition::CredentialsExpiring { source }, Lang::En, false) => {
            format!("credentials of source {source} are refreshed again")
        }
        (HealthCondition::CredentialsExpiring { source }, Lang::Zh, true) => {
            format!("来源 {source} 的凭证即将过期且无法刷新")
        }
        (HealthCondition::CredentialsExpiring { source }, Lang::Zh, false) => {
            format!("来源 {source} 的凭证已恢复刷新")
        }
        (HealthCondition::SinkStalled { sink }, Lang::En, true) => {
            format!("sink {sink} does not deliver")
        }
        (HealthCondition::SinkStalled { sink }, Lang::En, false) => {
            format!("sink {sink} delivers again")
        }
        (HealthCondition::SinkStalled { sink }, Lang::Zh, true) => {
            format!("通道 {sink} 投递停滞")
        }
        (HealthCondition::SinkStalled { sink }, Lang::Zh, false) => {
            format!("通道 {sink} 已恢复投递")
        }
    };
    let status = match (lang, firing) {
        (Lang::En, true) => "FIRING",
        (Lang::En, false) => "RESOLVED",
        (Lang::Zh, true) => "告警",
        (Lang::Zh, false) => "恢复",
    };
    format!("[sasrelay] {status}: {what}")
}

/// `h` as plain text (unescaped).
pub fn plain(h: &HealthEvent, lang: Lang) -> Plain {
    let (since, error, id) = match lang {
        Lang::En => ("Since", "Last error", "Event"),
        Lang::Zh => ("开始于", "最近错误", "事件"),
    };
    let mut lines = vec![
        crate::text::strip_control(&h.message),
        format!("{since}: {}", rfc3339(h.since)),
    ];
    if let Some(d) = h.detail.as_deref().filter(|d| !d.trim().is_empty()) {
        let d = crate::text::truncate_chars(&crate::text::strip_control(d), MAX_DETAIL);
        lines.push(format!("{error}: {d}"));
    }
    lines.push(format!(
        "{id}: {} #{} ({})",
        h.condition.key(),
        h.episode,
        h.id
    ));
    Plain {
        headline: headline(h, lang),
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Domain;
    use time::macros::datetime;

    fn event(status: HealthStatus, detail: Option<&str>) -> HealthEvent {
        HealthEvent::new(
            HealthCondition::SourceBlind {
                source: "prod".into(),
                domain: Domain::Alerts,
            },
            2,
            status,
            datetime!(2026-05-01 10:00:00 UTC),
            datetime!(2026-05-01 10:05:00 UTC),
            "sasrelay has never read alerts of source prod".into(),
            detail.map(str::to_string),
        )
    }

    #[test]
    fn says_what_holds_in_both_languages() {
        let p = plain(
            &event(HealthStatus::Firing, Some("auth\u{1b}[31m: bad key")),
            Lang::En,
        );
        assert_eq!(
            p.headline,
            "[sasrelay] FIRING: source prod cannot read alerts"
        );
        assert_eq!(p.lines[1], "Since: 2026-05-01T10:00:00Z");
        assert!(p.lines[2].starts_with("Last error: auth"), "{:?}", p.lines);
        assert!(!p.lines[2].contains('\u{1b}'));
        assert!(p.lines[3].starts_with("Event: source_blind/prod/alerts #2 ("));
        let r = plain(&event(HealthStatus::Resolved, None), Lang::Zh);
        assert_eq!(r.headline, "[sasrelay] 恢复: 来源 prod 已恢复读取 alerts");
        assert_eq!(r.lines.len(), 3, "no detail line without a detail");
        let long = "x".repeat(MAX_DETAIL * 2);
        let p = plain(&event(HealthStatus::Firing, Some(&long)), Lang::En);
        assert!(p.lines[2].chars().count() <= MAX_DETAIL + "Last error: ".len());
        assert_eq!(p.joined(|l| l.to_uppercase()).lines().count(), 5);
    }

    /// Every output sends a meta-event as a plain message, with hostile text from a remote
    /// error made inert, and the configured mentions only.
    #[test]
    fn every_output_sends_a_plain_message_with_the_detail_inert() {
        let hostile = "<!channel> @all <at id=all></at> [x](https://evil.example) \u{202e}ok";
        let p: crate::event::Payload = event(HealthStatus::Firing, Some(hostile)).into();
        let back: crate::event::Payload =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p, "stored and read back whole");

        let dt = crate::render::dingtalk::render(
            &p,
            &crate::render::dingtalk::DingTalkOptions {
                keyword: Some("SAS".into()),
                at_mobiles: vec!["13800001111".into()],
                ..Default::default()
            },
        )
        .body;
        assert_eq!(dt["msgtype"], "text");
        let content = dt["text"]["content"].as_str().unwrap();
        assert!(content.starts_with("SAS [sasrelay] FIRING"), "{content}");
        assert!(content.ends_with("@13800001111"), "{content}");
        assert_eq!(dt["at"]["atMobiles"][0], "13800001111");
        let fs = crate::render::feishu::render(
            &p,
            &crate::render::feishu::FeishuOptions {
                at_user_ids: vec!["ou_1".into()],
                ..Default::default()
            },
        )
        .body;
        assert_eq!(fs["msg_type"], "text");
        let fs_text = fs["content"]["text"].as_str().unwrap();
        assert!(fs_text.ends_with("<at user_id=\"ou_1\"></at>"), "{fs_text}");
        let wc = crate::render::wecom::render(
            &p,
            &crate::render::wecom::WeComOptions {
                at_user_ids: vec!["zhangsan".into()],
                ..Default::default()
            },
        )
        .body;
        assert_eq!(wc["text"]["mentioned_list"][0], "zhangsan");
        let sl = crate::render::slack::render(&p, &Default::default()).body;
        let sl_text = sl["text"].as_str().unwrap();
        assert!(sl_text.contains("&lt;!channel&gt;"), "{sl_text}");
        let mail = crate::render::email::render(&p, &Default::default()).body;
        assert_eq!(
            mail.subject,
            "[sasrelay] FIRING: source prod cannot read alerts"
        );
        assert!(mail.html.contains("&lt;!channel&gt;"), "{}", mail.html);
        let chat = [
            content,
            fs_text,
            wc["text"]["content"].as_str().unwrap(),
            sl_text,
        ];
        for text in chat
            .iter()
            .chain([&mail.text.as_str(), &mail.html.as_str()])
        {
            assert!(!text.contains("https://evil"), "links defanged: {text}");
            assert!(!text.contains('\u{202e}'), "{text}");
        }
        // No mention or tag out of a remote error (mail has no mentions).
        for text in chat {
            assert!(
                !text.contains("@all") && !text.contains("<!channel>"),
                "{text}"
            );
            assert!(!text.contains("<at id=all>"), "{text}");
        }

        let map = Default::default();
        let pd = crate::render::pagerduty::render(&p, "rk", &map);
        assert_eq!(pd["event_action"], "trigger");
        assert_eq!(pd["payload"]["severity"], "critical");
        let key = pd["dedup_key"].as_str().unwrap();
        assert!(
            key.starts_with("sasrelay:health:") && key.len() == 16 + 64,
            "{key}"
        );
        let resolved: crate::event::Payload = event(HealthStatus::Resolved, None).into();
        let pd = crate::render::pagerduty::render(&resolved, "rk", &map);
        assert_eq!(pd["event_action"], "resolve");
        assert_eq!(
            pd["dedup_key"], key,
            "the resolve closes what the trigger opened"
        );

        let doc: serde_json::Value =
            serde_json::from_str(&crate::sinks::payload::to_json(&p)).unwrap();
        assert_eq!(doc["schema"], "sasrelay.health.v1");
        assert_eq!(doc["key"], "source_blind/prod/alerts");
        assert_eq!(doc["status"], "firing");
        assert_eq!(doc["sink"], serde_json::Value::Null);
        assert_eq!(doc["detail"], hostile);
        let line = crate::sinks::payload::text_line(&p);
        assert!(
            line.starts_with("2026-05-01T10:05:00Z HEALTH FIRING source_blind/prod/alerts:"),
            "{line}"
        );
    }
}
