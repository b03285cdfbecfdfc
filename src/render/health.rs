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
    lines.push(format!("{id}: {} #{} ({})", h.condition.key(), h.episode, h.id));
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
        let p = plain(&event(HealthStatus::Firing, Some("auth\u{1b}[31m: bad key")), Lang::En);
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
}
