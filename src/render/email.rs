//! An email's subject, text part and HTML part (plain first, HTML last in
//! `multipart/alternative`; building the MIME message and sending it is the sink's job).
//!
//! The subject is one header-safe line ([`escape::header_line`]): whatever the template
//! produced, control characters (CR, LF, NUL, …) and invisible format characters are removed,
//! whitespace runs collapsed, every `=?` broken (`=？`, so no RFC 2047 encoded word from a
//! finding is decoded by the mail client into characters the scrub removed), and it is capped
//! (256 characters by default), so an untrusted value can never add a header such as `Bcc:`.
//! Recipients come from configuration only; nothing here produces one. The HTML part is a
//! complete small document with inline styles; both parts stay under `max_body_bytes`.
//!
//! Action buttons ([`EmailOptions::actions`], one event only) are placed by the templates after
//! the links: `Ignore…: https://…` lines under "Actions" in the text part, `<a href="…">`
//! links (the URL attribute-escaped) in the HTML part.
//!
//! A meta-event ([`crate::event::HealthEvent`]) is a plain mail: its headline as the subject,
//! its lines as the text part and as paragraphs of the HTML part, no template.

use super::engine::Engine;
use super::view::{self, TextLinks};
use super::{
    ActionButton, Budget, Lang, MAX_SHRINK, Rendered, TemplateKind, escape, is_body_char,
    zone_or_utc,
};
use crate::event::{HealthEvent, Payload};
use crate::text::truncate_bytes;

/// Default subject cap in characters.
pub const MAX_SUBJECT_CHARS: usize = 256;
/// Default cap of each part in bytes.
pub const MAX_BODY_BYTES: usize = 1_000_000;

/// How to render for one mail sink.
#[derive(Clone, Debug, PartialEq)]
pub struct EmailOptions {
    /// Language of the built-in templates and labels.
    pub lang: Lang,
    /// IANA zone for times (unknown zones fall back to UTC with a warning).
    pub timezone: String,
    /// A custom subject template (its text).
    pub subject_template: Option<String>,
    /// A custom text-part template.
    pub text_template: Option<String>,
    /// A custom HTML-part template (a whole document).
    pub html_template: Option<String>,
    /// Action links for one event; ignored for digests and meta-events.
    pub actions: Vec<ActionButton>,
    /// Start smaller: 0 = full, up to [`MAX_SHRINK`].
    pub shrink: u8,
    /// Subject cap in characters.
    pub max_subject_chars: usize,
    /// Cap of each part in bytes.
    pub max_body_bytes: usize,
}

impl Default for EmailOptions {
    fn default() -> Self {
        EmailOptions {
            lang: Lang::En,
            timezone: "UTC".into(),
            subject_template: None,
            text_template: None,
            html_template: None,
            actions: Vec::new(),
            shrink: 0,
            max_subject_chars: MAX_SUBJECT_CHARS,
            max_body_bytes: MAX_BODY_BYTES,
        }
    }
}

/// A rendered email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedEmail {
    /// One line, no control characters, at most `max_subject_chars` characters.
    pub subject: String,
    /// The `text/plain` part (`\n` line ends).
    pub text: String,
    /// The `text/html` part, a complete document.
    pub html: String,
}

const LEVELS: [Budget; 4] = [
    Budget {
        items: 100,
        details: 100,
        field: 20_000,
        desc: 20_000,
        list: 50,
    },
    Budget {
        items: 50,
        details: 40,
        field: 4000,
        desc: 4000,
        list: 20,
    },
    Budget {
        items: 20,
        details: 15,
        field: 1000,
        desc: 1000,
        list: 10,
    },
    Budget {
        items: 10,
        details: 5,
        field: 300,
        desc: 300,
        list: 5,
    },
];

/// Drops characters no body should carry (controls other than `\n` and `\t`, invisible format
/// characters) — a custom template's own text included.
fn clean_body(s: &str) -> String {
    s.chars().filter(|c| is_body_char(*c)).collect()
}

/// A meta-event as a plain mail (module doc).
fn health(h: &HealthEvent, opts: &EmailOptions) -> Rendered<RenderedEmail> {
    let plain = super::health::plain(h, opts.lang);
    let paragraphs: String = plain
        .lines
        .iter()
        .map(|l| format!("<p>{}</p>\n", escape::html(l)))
        .collect();
    Rendered {
        body: RenderedEmail {
            subject: escape::header_line(&plain.headline, opts.max_subject_chars.max(16)),
            text: plain.joined(escape::text),
            html: format!(
                "<!DOCTYPE html>\n<html><body>\n<h3>{}</h3>\n{paragraphs}</body></html>",
                escape::html(&plain.headline)
            ),
        },
        warnings: Vec::new(),
        level: 0,
    }
}

/// Renders `payload` as an email.
pub fn render(payload: &Payload, opts: &EmailOptions) -> Rendered<RenderedEmail> {
    if let Payload::Health(h) = payload {
        return health(h, opts);
    }
    let mut warnings = Vec::new();
    let lang = opts.lang;
    let tz = zone_or_utc(&opts.timezone, &mut warnings);
    let headline = view::headline(payload, lang);

    let mut subject_engine = Engine::new(
        TemplateKind::EmailSubject,
        lang,
        opts.subject_template.as_deref(),
        &mut warnings,
    );
    let ctx = view::context(
        payload,
        lang,
        &tz,
        &LEVELS[MAX_SHRINK as usize],
        TemplateKind::EmailSubject,
        TextLinks {
            links: true,
            actions: &[],
        },
        MAX_SHRINK,
    );
    let max_subject = opts.max_subject_chars.max(16);
    let mut subject = escape::header_line(
        &subject_engine.render(&ctx, &headline, &mut warnings),
        max_subject,
    );
    if subject.is_empty() {
        subject = escape::header_line(&format!("[sasrelay] {headline}"), max_subject);
    }

    let mut text_engine = Engine::new(
        TemplateKind::EmailText,
        lang,
        opts.text_template.as_deref(),
        &mut warnings,
    );
    let mut html_engine = Engine::new(
        TemplateKind::EmailHtml,
        lang,
        opts.html_template.as_deref(),
        &mut warnings,
    );
    let max = opts.max_body_bytes.max(4096);
    let mut level = opts.shrink.min(MAX_SHRINK);
    let mut dropped_custom = false;
    let links = TextLinks {
        links: true,
        actions: &opts.actions,
    };
    let (text, html) = loop {
        let b = &LEVELS[level as usize];
        let tctx = view::context(payload, lang, &tz, b, TemplateKind::EmailText, links, level);
        let hctx = view::context(payload, lang, &tz, b, TemplateKind::EmailHtml, links, level);
        let text = clean_body(&text_engine.render(&tctx, &headline, &mut warnings));
        let html = clean_body(&html_engine.render(&hctx, &headline, &mut warnings));
        if text.len() <= max && html.len() <= max {
            break (text, html);
        }
        if level < MAX_SHRINK {
            level += 1;
            continue;
        }
        if !dropped_custom && (text_engine.uses_custom() || html_engine.uses_custom()) {
            // The built-in templates fit at the smallest budget; a custom one that does not
            // is replaced rather than cut (cutting HTML could leave a broken document).
            dropped_custom = true;
            text_engine.drop_custom("output is over the size cap", &mut warnings);
            html_engine.drop_custom("output is over the size cap", &mut warnings);
            continue;
        }
        // Unreachable with the built-in templates and the 4 KiB floor; cut as a last resort.
        let html = if html.len() > max {
            let cut = truncate_bytes(&html, max.saturating_sub(16));
            let end = cut.rfind('<').unwrap_or(cut.len());
            format!("{}</body></html>", &cut[..end])
        } else {
            html
        };
        break (truncate_bytes(&text, max), html);
    };
    Rendered {
        body: RenderedEmail {
            subject,
            text,
            html,
        },
        warnings,
        level,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Domain;
    use crate::render::sample::{
        assert_no_failing_actions, huge_event, sample_actions, test_actions,
    };
    use crate::render::{sample_digest, sample_event};

    #[test]
    fn actions_follow_the_links_in_both_parts() {
        let urls: Vec<String> = sample_actions().into_iter().map(|a| a.url).collect();
        let html_url = |u: &String| u.replace('&', "&amp;");
        let link = |u: &String, label: &str| {
            format!(
                "<a href=\"{}\" style=\"color:#0a66c2;\">{label}</a>",
                html_url(u)
            )
        };
        let p: Payload = sample_event(Domain::Vulnerabilities).into();
        for (lang, text, html) in [
            (
                Lang::En,
                format!(
                    "\n\nActions\n  Ignore…: {}\n  Mark handled…: {}\n\n-- \n",
                    urls[0], urls[1]
                ),
                format!(
                    "Actions: {} · {}</p>",
                    link(&urls[0], "Ignore…"),
                    link(&urls[1], "Mark handled…")
                ),
            ),
            (
                Lang::Zh,
                format!(
                    "\n\n操作\n  忽略…：{}\n  标记为已处理…：{}\n\n-- \n",
                    urls[0], urls[1]
                ),
                format!(
                    "操作：{} · {}</p>",
                    link(&urls[0], "忽略…"),
                    link(&urls[1], "标记为已处理…")
                ),
            ),
        ] {
            let opts = EmailOptions {
                lang,
                actions: test_actions(),
                ..Default::default()
            };
            let m = render(&p, &opts).body;
            assert!(m.text.contains(&text), "{}", m.text);
            assert!(m.html.contains(&html), "{}", m.html);
            assert!(!m.subject.contains("sasrelay.example.com"));
            assert_no_failing_actions(&format!("{}{}", m.text, m.html));
        }
        let opts = EmailOptions {
            actions: test_actions(),
            ..Default::default()
        };
        let d = render(&sample_digest().into(), &opts).body;
        assert!(!format!("{}{}", d.text, d.html).contains("sasrelay.example.com"));
        let small = EmailOptions {
            max_body_bytes: 50_000,
            ..opts
        };
        let r = render(&huge_event(Domain::Alerts).into(), &small);
        let m = r.body;
        assert!(r.level > 0 && m.text.len() <= 50_000 && m.html.len() <= 50_000);
        assert!(m.text.contains(&urls[1]) && m.html.contains(&html_url(&urls[1])));
    }

    #[test]
    fn subject_is_one_capped_line() {
        let mut e = sample_event(Domain::Alerts);
        if let Some(f) = e.finding.as_mut() {
            f.title = format!("x\r\nBcc: evil@example.com\r\n{}", "y".repeat(500));
        }
        let r = render(&e.into(), &EmailOptions::default());
        let s = &r.body.subject;
        assert!(
            s.starts_with("[sasrelay] CRITICAL new alert: x Bcc:"),
            "{s}"
        );
        assert!(!s.contains(['\r', '\n']));
        assert!(s.chars().count() <= MAX_SUBJECT_CHARS);
        assert!(
            r.body.html.starts_with("<!DOCTYPE html>"),
            "{}",
            r.body.html
        );
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }
}
