//! The rendering layer from the outside: the injection corpus through every sink, snapshots of
//! every sink × domain, size limits on huge and hostile input, custom and broken templates.
//!
//! Snapshots live in `tests/fixtures/render/snapshots/`. A mismatch fails and prints the first
//! differing line; `UPDATE_SNAPSHOTS=1 cargo test --test it render::` rewrites them (ignored when
//! `CI` is set, so CI never accepts a change), and the diff is then reviewed in git.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::corpus::{corpus, without_bold_labels};
use sasrelay::event::{Digest, Event, Payload};
use sasrelay::finding::{Detail, Domain, Finding, Tactic};
use sasrelay::render::dingtalk::{self, DingTalkOptions, MsgType};
use sasrelay::render::email::{self, EmailOptions, RenderedEmail};
use sasrelay::render::feishu::{self, FeishuOptions};
use sasrelay::render::pagerduty::{self, SeverityMap};
use sasrelay::render::slack::{self, SlackOptions};
use sasrelay::render::wecom::{self, WeComOptions};
use sasrelay::render::{
    ActionButton, Lang, Rendered, TemplateKind, builtin_template, check_template, sample_digest,
    sample_event, sample_summary,
};
use serde_json::Value;
use time::macros::datetime;

// ---------------------------------------------------------------------------------------------
// Helpers

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/render")
}

/// Compares `actual` with the snapshot file `name`; returns a description of a mismatch.
fn snapshot(name: &str, actual: &str) -> Option<String> {
    let path = fixtures().join("snapshots").join(name);
    let update = std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1")
        && std::env::var_os("CI").is_none();
    if update {
        std::fs::write(&path, actual).expect("write snapshot");
        return None;
    }
    let Ok(expected) = std::fs::read_to_string(&path) else {
        return Some(format!(
            "{name}: no snapshot; run UPDATE_SNAPSHOTS=1 cargo test --test it render:: and review it"
        ));
    };
    if expected == actual {
        return None;
    }
    let (i, (e, a)) = expected
        .lines()
        .zip(actual.lines())
        .enumerate()
        .find(|(_, (e, a))| e != a)
        .unwrap_or((
            expected.lines().count().min(actual.lines().count()),
            ("<end>", "<end>"),
        ));
    Some(format!(
        "{name}: differs at line {}:\n  expected: {e}\n  actual:   {a}",
        i + 1
    ))
}

fn json(v: &Value) -> String {
    format!("{}\n", serde_json::to_string_pretty(v).unwrap())
}

fn email_text(r: &RenderedEmail) -> String {
    format!(
        "Subject: {}\n\n----- text/plain -----\n{}\n----- text/html -----\n{}\n",
        r.subject, r.text, r.html
    )
}

/// Every string in a JSON value with the key it sits under.
fn strings<'a>(v: &'a Value, key: &'a str, out: &mut Vec<(&'a str, &'a str)>) {
    match v {
        Value::String(s) => out.push((key, s)),
        Value::Array(a) => a.iter().for_each(|x| strings(x, key, out)),
        Value::Object(o) => {
            let plain = o.get("type").and_then(Value::as_str) == Some("plain_text");
            o.iter().for_each(|(k, x)| {
                let k = if plain && k == "text" {
                    "plain_text"
                } else {
                    k
                };
                strings(x, k, out)
            })
        }
        _ => {}
    }
}

/// [`strings`] but those under `url_key`: button URLs, each asserted to be one of `urls`.
fn strings_but_urls<'a>(
    what: &str,
    body: &'a Value,
    url_key: &str,
    urls: &[String],
) -> Vec<(&'a str, &'a str)> {
    let mut all = Vec::new();
    strings(body, "", &mut all);
    all.retain(|(key, s)| {
        let url = *key == url_key;
        assert!(
            !url || urls.iter().any(|u| u == s),
            "{what}: untrusted button url {s}"
        );
        !url
    });
    all
}

/// Characters that render as nothing or reorder their neighbours: Unicode 16's format (Cf) and
/// default-ignorable characters — bidi controls, zero-width, the soft hyphen, the combining
/// grapheme joiner, Hangul fillers, variation selectors, tag characters, interlinear
/// annotations, prepended number signs — written out here, not taken from the crate.
pub(crate) fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}'
        | '\u{0890}'..='\u{0891}' | '\u{08E2}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFFB}' | '\u{110BD}' | '\u{110CD}' | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// No control characters (but `\n`/`\t` when `multiline`) and no invisible format characters.
fn assert_clean(what: &str, s: &str, multiline: bool) {
    if let Some(c) = s
        .chars()
        .find(|&c| (c.is_control() && !(multiline && (c == '\n' || c == '\t'))) || invisible(c))
    {
        panic!("{what}: contains {c:?}");
    }
}

/// A sample finding of `domain` with `s` in every text field.
fn hostile(domain: Domain, s: &str) -> Event {
    let mut e = sample_event(domain);
    let f: &mut Finding = e.finding.as_mut().unwrap();
    let o = || Some(s.to_string());
    f.title = s.into();
    f.description = s.into();
    f.alert_type = s.into();
    f.native_severity = s.into();
    f.native_status = s.into();
    f.region = s.into();
    f.source = s.into();
    f.kubernetes = sasrelay::finding::Kubernetes {
        cluster_id: o(),
        cluster_name: o(),
        namespace: o(),
        pod: o(),
        container_id: o(),
        container_name: o(),
        image: o(),
        node: o(),
        app: o(),
    };
    f.host = sasrelay::finding::Host {
        instance_id: o(),
        instance_name: o(),
        public_ip: o(),
        private_ip: o(),
        uuid: o(),
        region: o(),
    };
    f.details = vec![
        Detail {
            name: s.into(),
            value: s.into(),
        },
        Detail {
            name: "Command line".into(),
            value: s.into(),
        },
    ];
    f.cves.insert(0, s.into());
    f.tactics = vec![Tactic {
        id: s.into(),
        name: s.into(),
    }];
    for l in &mut f.links {
        l.label = s.into();
    }
    e.source = s.into();
    e
}

fn hostile_payloads(s: &str) -> Vec<(&'static str, Payload)> {
    let mut summary = sample_summary(Domain::Alerts);
    summary.source = s.into();
    summary.summary.as_mut().unwrap().message = s.into();
    let group = BTreeMap::from([
        ("cluster".to_string(), s.to_string()),
        (s.to_string(), s.to_string()),
    ]);
    let digest = Digest::new(
        s,
        group,
        vec![
            hostile(Domain::Alerts, s),
            hostile(Domain::Vulnerabilities, s),
            summary.clone(),
        ],
        datetime!(2024-05-01 08:00 UTC),
    );
    // Resolved by someone whose name came from a chat identity (a proxy header).
    let mut handled = hostile(Domain::Alerts, s);
    handled.kind = sasrelay::event::EventKind::Resolved;
    handled.resolution = Some(sasrelay::finding::Resolution::Ignored);
    handled.handled_by = Some(sasrelay::event::HandledBy {
        who: s.into(),
        via: "chat".into(),
        action: "ignore".into(),
        at: datetime!(2024-05-01 08:00 UTC),
    });
    vec![
        ("alert", hostile(Domain::Alerts, s).into()),
        ("handled alert", handled.into()),
        ("vulnerability", hostile(Domain::Vulnerabilities, s).into()),
        ("summary", summary.into()),
        ("digest", digest.into()),
    ]
}

/// Action buttons as a sink passes them: two good URLs (with characters each output encodes)
/// and two that fail `checked_url` and must never show.
fn actions() -> Vec<ActionButton> {
    [
        (
            "ignore",
            "https://relay.example.com/act/ignore?t=v1.eyJmIjoxfQ.c2ln&lang=en",
        ),
        (
            "handled",
            "https://relay.example.com/act/handled?t=v1.(x)[y]",
        ),
        ("fix", "javascript:alert(1)"),
        ("verify", "https://evil.example/\"><img src=x>"),
    ]
    .into_iter()
    .map(|(action, url)| ActionButton {
        action: action.into(),
        url: url.into(),
    })
    .collect()
}

/// The URLs sasrelay itself put into the payload (trusted): its findings' links and, for one
/// event with a finding, the good [`actions`].
fn trusted_urls(p: &Payload) -> Vec<String> {
    let mut urls: Vec<String> = p
        .events()
        .iter()
        .filter_map(|e| e.finding.as_ref())
        .flat_map(|f| f.links.iter().map(|l| l.url.clone()))
        .collect();
    if let Payload::Event(e) = p
        && e.finding.is_some()
    {
        urls.extend(actions().into_iter().take(2).map(|a| a.url));
    }
    urls.sort();
    urls.dedup();
    urls
}

/// `s` with every `](trusted)` markdown link destination removed; what remains must hold no
/// link of any kind.
fn without_trusted_md_links(s: &str, urls: &[String]) -> String {
    let mut t = s.to_string();
    for u in urls {
        let md = u
            .replace('(', "%28")
            .replace(')', "%29")
            .replace('[', "%5B")
            .replace(']', "%5D");
        t = t.replace(&format!("]({md})"), "]");
    }
    t
}

const DT_MOBILE: &str = "13900000000";
const PD_KEY: &str = "0123456789abcdef0123456789abcdef";
const DT_USER: &str = "oncall_1";

fn check_dingtalk(what: &str, p: &Payload, r: &Rendered<Value>, card: bool) {
    let body = &r.body;
    assert!(
        dingtalk::encoded_len(body) <= dingtalk::MAX_BODY_BYTES,
        "{what}: {} bytes",
        dingtalk::encoded_len(body)
    );
    assert_eq!(body["msgUuid"], p.id(), "{what}");
    let section = if body["msgtype"] == "actionCard" {
        assert!(card, "{what}: unexpected action card");
        assert!(body.get("at").is_none(), "{what}: at on an action card");
        "actionCard"
    } else {
        assert_eq!(body["msgtype"], "markdown", "{what}");
        assert_eq!(
            body["at"]["atMobiles"],
            serde_json::json!([DT_MOBILE]),
            "{what}"
        );
        assert_eq!(
            body["at"]["atUserIds"],
            serde_json::json!([DT_USER]),
            "{what}"
        );
        assert_eq!(body["at"]["isAtAll"], false, "{what}");
        "markdown"
    };
    let urls = trusted_urls(p);
    for (key, s) in strings_but_urls(what, body, "actionURL", &urls) {
        assert_clean(&format!("{what}: {key}"), s, key == "text");
        if key == "msgUuid" {
            continue;
        }
        // Inline links: only `](trusted)`.
        let mut t = without_trusted_md_links(s, &urls);
        for tag in [DT_MOBILE, DT_USER] {
            t = t.replace(&format!("@{tag}"), "");
        }
        for c in [
            "#D00000", "#FF6A00", "#FFA500", "#439FE0", "#9E9E9E", "#2EB67D",
        ] {
            t = t.replace(&format!("<font color=\"{c}\">"), "");
        }
        t = t.replace("</font>", "");
        let t = without_bold_labels(&t);
        for bad in ["](", "![", "<", "@", "://", "*", "`", "~", "\\", "|"] {
            assert!(
                !t.contains(bad),
                "{what}: {key} contains {bad:?}:\n{}",
                excerpt(&t, bad)
            );
        }
        for (n, line) in t.lines().enumerate() {
            if line.starts_with('#') {
                assert!(
                    n == 0 && line.starts_with("### "),
                    "{what}: heading {line:?}"
                );
            }
            assert_no_block_marker(&format!("{what}: {key}"), line);
            let line = line.strip_prefix("> ").unwrap_or(line);
            assert!(
                !line.contains('>'),
                "{what}: {key} has '>': {}",
                excerpt(line, ">")
            );
        }
        if key == "text" {
            assert!(body[section]["text"].is_string());
        }
    }
}

/// A markdown line with the template's own prefix taken off (a `> ` quote, a `- ` bullet):
/// what follows may be a value, which must not open a list item, a rule or a setext heading
/// underline (`- x`, `+ x`, `1. x`, `2) x`, `---`, `===`).
fn assert_no_block_marker(what: &str, line: &str) {
    let mut rest = line;
    for prefix in ["> ", "- "] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let rest = rest.trim_start();
    let ends_item = |s: &str| s.is_empty() || s.starts_with(char::is_whitespace);
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let after_digits = &rest[digits..];
    let bad = ["-", "+", "="].iter().any(|m| {
        rest.strip_prefix(m)
            .is_some_and(|r| ends_item(r) || r.starts_with(m))
    }) || (digits > 0
        && [".", ")"]
            .iter()
            .any(|m| after_digits.strip_prefix(m).is_some_and(ends_item)));
    assert!(!bad, "{what}: a value opens a block: {line:?}");
}

fn excerpt(s: &str, needle: &str) -> String {
    let i = s.find(needle).unwrap_or(0);
    let mut start = i.saturating_sub(80);
    while !s.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (i + 80).min(s.len());
    while !s.is_char_boundary(end) {
        end += 1;
    }
    s[start..end].to_string()
}

const SLACK_MENTIONS: [&str; 2] = ["<@U999>", "<!here>"];

fn check_slack(what: &str, r: &Rendered<Value>) {
    let body = &r.body;
    slack::check_limits(body).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(body["unfurl_links"], false, "{what}");
    assert_eq!(body["unfurl_media"], false, "{what}");
    let mut all = Vec::new();
    strings(body, "", &mut all);
    for (key, s) in all {
        if matches!(key, "url" | "action_id" | "type" | "color") {
            if key == "url" {
                assert!(
                    s.starts_with("https://") && !s.contains("evil"),
                    "{what}: url {s}"
                );
            }
            continue;
        }
        assert_clean(&format!("{what}: {key}"), s, true);
        let mut t = s.to_string();
        for m in SLACK_MENTIONS {
            t = t.replace(m, "");
        }
        let plain = key == "plain_text";
        let formatting: &[&str] = if plain { &[] } else { &["`", "~"] };
        for bad in ["<", ">", "@", "://"].iter().chain(formatting) {
            assert!(
                !t.contains(bad),
                "{what}: {key} contains {bad:?}:\n{}",
                excerpt(&t, bad)
            );
        }
        if plain {
            continue;
        }
        // Slack decodes `&gt;` before it parses: at a line's start it is a quote.
        for line in t.lines() {
            assert!(
                !line.trim_start().starts_with("&gt;"),
                "{what}: {key} quotes: {line:?}"
            );
        }
        // Every `&` starts one of the three entities.
        for (i, _) in t.match_indices('&') {
            let rest = &t[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;"]
                    .iter()
                    .any(|e| rest.starts_with(e)),
                "{what}: {key} raw &: {}",
                excerpt(rest, "&")
            );
        }
    }
}

const HTML_TAGS: [&str; 17] = [
    "!DOCTYPE", "html", "head", "meta", "title", "body", "div", "h2", "h3", "p", "table", "tr",
    "td", "strong", "span", "a", "br",
];

fn check_email(what: &str, p: &Payload, r: &Rendered<RenderedEmail>) {
    let m = &r.body;
    assert_clean(&format!("{what}: subject"), &m.subject, false);
    // No RFC 2047 encoded word: lettre would write it verbatim and the client decode it.
    assert!(!m.subject.contains("=?"), "{what}: subject {:?}", m.subject);
    assert!(
        m.subject.chars().count() <= email::MAX_SUBJECT_CHARS,
        "{what}"
    );
    assert!(!m.subject.is_empty());
    assert_clean(&format!("{what}: text"), &m.text, true);
    assert_clean(&format!("{what}: html"), &m.html, true);
    assert!(m.text.len() <= email::MAX_BODY_BYTES && m.html.len() <= email::MAX_BODY_BYTES);
    let urls = trusted_urls(p);
    let mut text = m.text.clone();
    for u in &urls {
        text = text.replace(u.as_str(), "");
    }
    assert!(
        !text.contains("://"),
        "{what}: text link: {}",
        excerpt(&text, "://")
    );
    // HTML: every tag is one of ours; links only to trusted URLs.
    let html = &m.html;
    for (i, _) in html.match_indices('<') {
        let tag = &html[i + 1..];
        let end = tag
            .find('>')
            .unwrap_or_else(|| panic!("{what}: unclosed tag"));
        let tag = &tag[..end];
        let name = tag
            .trim_start_matches('/')
            .split([' ', '>'])
            .next()
            .unwrap_or("");
        assert!(HTML_TAGS.contains(&name), "{what}: tag <{tag}>");
        let lower = tag.to_ascii_lowercase();
        for bad in [
            "onerror",
            "onmouseover",
            "onload",
            "javascript:",
            "script",
            "evil",
        ] {
            assert!(!lower.contains(bad), "{what}: tag <{tag}>");
        }
        if name == "a" && !tag.starts_with('/') {
            let href = tag
                .strip_prefix("a href=\"")
                .and_then(|t| t.split('"').next())
                .unwrap_or_else(|| panic!("{what}: <{tag}>"));
            assert!(
                urls.iter().any(|u| u.replace('&', "&amp;") == href),
                "{what}: untrusted href {href}"
            );
        }
    }
    let mut visible = html.clone();
    for u in &urls {
        visible = visible.replace(&u.replace('&', "&amp;"), "");
    }
    assert!(
        !visible.contains("://"),
        "{what}: html link: {}",
        excerpt(&visible, "://")
    );
}

/// PagerDuty (which makes links of URLs in any text it shows): `links[].href` and `client_url`
/// are trusted URLs; no other string carries a URL (`://`, `www.`), a control or an invisible
/// character.
fn check_pagerduty(what: &str, p: &Payload, body: &Value) {
    let urls = trusted_urls(p);
    let mut all = Vec::new();
    strings(body, "", &mut all);
    for (key, s) in all {
        if matches!(key, "href" | "client_url") {
            assert!(urls.iter().any(|u| u == s), "{what}: untrusted {key} {s}");
            continue;
        }
        assert_clean(&format!("{what}: {key}"), s, false);
        let lower = s.to_lowercase();
        for bad in ["://", "www."] {
            assert!(
                !lower.contains(bad),
                "{what}: {key} contains {bad:?}: {}",
                excerpt(&lower, bad)
            );
        }
    }
}

/// Feishu and WeCom (whose own corpus tests run through their sinks): every button URL and
/// every link of the markdown text `md` is a trusted one, and no other string carries a URL.
fn check_md_links(what: &str, p: &Payload, body: &Value, md: &str) {
    let urls = trusted_urls(p);
    for (key, s) in strings_but_urls(what, body, "url", &urls) {
        let t = without_trusted_md_links(s, &urls);
        assert!(
            !t.contains("://"),
            "{what}: {key} link: {}",
            excerpt(&t, "://")
        );
    }
    let t = without_trusted_md_links(md, &urls);
    assert!(
        !t.contains("]("),
        "{what}: markdown link: {}",
        excerpt(&t, "](")
    );
    for line in md.lines() {
        assert_no_block_marker(what, line);
    }
}

#[test]
fn injection_corpus_never_escapes_any_sink() {
    let dt = |msg_type| DingTalkOptions {
        msg_type,
        at_mobiles: vec![DT_MOBILE.into()],
        at_user_ids: vec![DT_USER.into()],
        actions: actions(),
        ..Default::default()
    };
    let sl = |colour_bar| SlackOptions {
        mentions: vec!["U999".into(), "here".into()],
        colour_bar,
        actions: actions(),
        ..Default::default()
    };
    for (n, entry) in corpus().iter().enumerate() {
        for (name, p) in hostile_payloads(entry) {
            for lang in [Lang::En, Lang::Zh] {
                let what = format!(
                    "entry {n} ({}) {name} {}",
                    excerpt(entry, ""),
                    lang.as_str()
                );
                let md = dingtalk::render(
                    &p,
                    &DingTalkOptions {
                        lang,
                        ..dt(MsgType::Markdown)
                    },
                );
                check_dingtalk(&format!("dingtalk {what}"), &p, &md, false);
                let card = dingtalk::render(
                    &p,
                    &DingTalkOptions {
                        lang,
                        ..dt(MsgType::ActionCard)
                    },
                );
                check_dingtalk(&format!("dingtalk card {what}"), &p, &card, true);
                for bar in [false, true] {
                    let s = slack::render(&p, &SlackOptions { lang, ..sl(bar) });
                    check_slack(&format!("slack {what}"), &s);
                }
                let e = email::render(
                    &p,
                    &EmailOptions {
                        lang,
                        actions: actions(),
                        ..Default::default()
                    },
                );
                check_email(&format!("email {what}"), &p, &e);
                let f = feishu::render(
                    &p,
                    &FeishuOptions {
                        lang,
                        actions: actions(),
                        ..Default::default()
                    },
                );
                let text = feishu::card_text(&f.body);
                check_md_links(&format!("feishu {what}"), &p, &f.body, text);
                let w = wecom::render(
                    &p,
                    &WeComOptions {
                        lang,
                        actions: actions(),
                        ..Default::default()
                    },
                );
                let text = wecom::content(&w.body);
                check_md_links(&format!("wecom {what}"), &p, &w.body, text);
                if lang == Lang::En {
                    let pd = pagerduty::render(&p, PD_KEY, &SeverityMap::default());
                    check_pagerduty(&format!("pagerduty {what}"), &p, &pd);
                }
                // Our action links are there for one event with a finding, and only then.
                let ours = &actions()[0].url;
                let want = trusted_urls(&p).contains(ours);
                let slack = slack::render(&p, &sl(false)).body;
                for (out, body) in [
                    ("dingtalk", md.body.to_string()),
                    ("dingtalk card", card.body.to_string()),
                    ("slack", slack.to_string()),
                    ("email", e.body.text.clone()),
                    ("feishu", f.body.to_string()),
                    ("wecom", w.body.to_string()),
                ] {
                    assert_eq!(body.contains(ours.as_str()), want, "{out} {what}");
                }
            }
        }
    }
}

#[test]
fn the_checks_catch_an_unescaped_value() {
    // The checks above must be able to fail: feed them a body carrying raw input.
    let p: Payload = hostile(Domain::Alerts, "[x](https://evil.example)").into();
    let mut r = dingtalk::render(
        &p,
        &DingTalkOptions {
            at_mobiles: vec![DT_MOBILE.into()],
            at_user_ids: vec![DT_USER.into()],
            ..Default::default()
        },
    );
    r.body["markdown"]["text"] = Value::from("[x](https://evil.example)");
    let caught = std::panic::catch_unwind(|| check_dingtalk("planted", &p, &r, false));
    assert!(caught.is_err());
    let mut s = slack::render(&p, &SlackOptions::default());
    s.body["text"] = Value::from("<!channel>");
    assert!(std::panic::catch_unwind(|| check_slack("planted", &s)).is_err());
    let mut e = email::render(&p, &EmailOptions::default());
    e.body.html = "<p><img src=x onerror=alert(1)></p>".into();
    assert!(std::panic::catch_unwind(|| check_email("planted", &p, &e)).is_err());
    e.body.html = String::new();
    e.body.subject = "x\r\nBcc: evil@example.com".into();
    assert!(std::panic::catch_unwind(|| check_email("planted", &p, &e)).is_err());
    let mut w = wecom::render(&p, &WeComOptions::default());
    let planted = "[x](evil.example)";
    assert!(std::panic::catch_unwind(|| check_md_links("planted", &p, &w.body, planted)).is_err());
    w.body["markdown"]["content"] = Value::from("https://evil.example");
    let md = wecom::content(&w.body);
    assert!(std::panic::catch_unwind(|| check_md_links("planted", &p, &w.body, md)).is_err());
    let mut f = feishu::render(&p, &FeishuOptions::default());
    f.body["card"]["elements"][1]["actions"][0]["url"] = Value::from("https://evil.example");
    let md = feishu::card_text(&f.body);
    assert!(std::panic::catch_unwind(|| check_md_links("planted", &p, &f.body, md)).is_err());
    let mut pd = pagerduty::render(&p, PD_KEY, &SeverityMap::default());
    check_pagerduty("as rendered", &p, &pd);
    pd["payload"]["component"] = Value::from("see WWW.evil.example");
    assert!(std::panic::catch_unwind(|| check_pagerduty("planted", &p, &pd)).is_err());
    pd["links"][0]["href"] = Value::from("https://evil.example");
    pd["payload"]["component"] = Value::from("x");
    assert!(std::panic::catch_unwind(|| check_pagerduty("planted", &p, &pd)).is_err());
}

// ---------------------------------------------------------------------------------------------
// Snapshots

fn sample_payloads() -> Vec<(&'static str, Payload)> {
    let mut v: Vec<(&'static str, Payload)> = Domain::ALL
        .iter()
        .map(|d| (d.as_str(), sample_event(*d).into()))
        .collect();
    v.push(("summary", sample_summary(Domain::Vulnerabilities).into()));
    v.push(("digest", sample_digest().into()));
    v
}

#[test]
fn snapshots_of_every_sink_and_domain() {
    let mut failures = Vec::new();
    let mut check = |name: String, actual: String| {
        if let Some(f) = snapshot(&name, &actual) {
            failures.push(f);
        }
    };
    for (case, p) in sample_payloads() {
        let zh = matches!(case, "alerts" | "digest" | "vulnerabilities");
        for lang in [Lang::En, Lang::Zh] {
            if lang == Lang::Zh && !zh {
                continue;
            }
            let l = lang.as_str();
            let dt = dingtalk::render(
                &p,
                &DingTalkOptions {
                    lang,
                    at_mobiles: vec!["13800001111".into()],
                    ..Default::default()
                },
            );
            assert!(dt.warnings.is_empty(), "{:?}", dt.warnings);
            check(format!("dingtalk_{case}_{l}.json"), json(&dt.body));
            let fs = feishu::render(
                &p,
                &FeishuOptions {
                    lang,
                    at_user_ids: vec!["ou_0123abcd".into()],
                    ..Default::default()
                },
            );
            assert!(fs.warnings.is_empty(), "{:?}", fs.warnings);
            check(format!("feishu_{case}_{l}.json"), json(&fs.body));
            let wc = wecom::render(
                &p,
                &WeComOptions {
                    lang,
                    at_user_ids: vec!["zhangsan".into()],
                    ..Default::default()
                },
            );
            assert!(wc.warnings.is_empty(), "{:?}", wc.warnings);
            check(format!("wecom_{case}_{l}.json"), json(&wc.body));
            let sl = slack::render(
                &p,
                &SlackOptions {
                    lang,
                    timezone: "Asia/Shanghai".into(),
                    ..Default::default()
                },
            );
            assert!(sl.warnings.is_empty(), "{:?}", sl.warnings);
            check(format!("slack_{case}_{l}.json"), json(&sl.body));
            let em = email::render(
                &p,
                &EmailOptions {
                    lang,
                    timezone: "Asia/Shanghai".into(),
                    ..Default::default()
                },
            );
            assert!(em.warnings.is_empty(), "{:?}", em.warnings);
            check(format!("email_{case}_{l}.txt"), email_text(&em.body));
        }
    }
    let p: Payload = sample_event(Domain::Vulnerabilities).into();
    let card = dingtalk::render(
        &p,
        &DingTalkOptions {
            msg_type: MsgType::ActionCard,
            keyword: Some("sasrelay".into()),
            ..Default::default()
        },
    );
    check(
        "dingtalk_actioncard_vulnerabilities_en.json".into(),
        json(&card.body),
    );
    let bar = slack::render(
        &p,
        &SlackOptions {
            colour_bar: true,
            mentions: vec!["U0123ABCD".into(), "here".into()],
            ..Default::default()
        },
    );
    check(
        "slack_colourbar_vulnerabilities_en.json".into(),
        json(&bar.body),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Sizes

/// A finding whose every field is `s` (e.g. 100 KB), with many detail rows and CVEs.
fn huge(domain: Domain, s: &str) -> Event {
    let mut e = hostile(domain, s);
    let f = e.finding.as_mut().unwrap();
    f.details = (0..200)
        .map(|i| Detail {
            name: format!("Row {i}"),
            value: s.into(),
        })
        .collect();
    f.cves = (0..100).map(|i| format!("CVE-2024-{i:05}")).collect();
    e
}

/// A digest member: a sample finding whose title, pod and command line are `s`.
fn member(i: usize, s: &str) -> Event {
    let mut e = sample_event(Domain::ALL[i % 4]);
    e.id = format!("{i}");
    let f = e.finding.as_mut().unwrap();
    f.title = s.into();
    f.kubernetes.pod = Some(s.into());
    f.details.push(Detail {
        name: "Command line".into(),
        value: s.into(),
    });
    e
}

fn alphabets() -> Vec<(&'static str, String)> {
    vec![
        ("ascii", "A".repeat(100 * 1024)),
        ("cjk", "异常登录".repeat(100 * 1024 / 12)),
        ("emoji", "😀🔥".repeat(100 * 1024 / 8)),
        ("quotes", "\"\\".repeat(50 * 1024)),
        ("markup", "<@U1>[x](y)*_".repeat(100 * 1024 / 13)),
        ("mixed", "a异😀\"<&@#\n".repeat(100 * 1024 / 20)),
    ]
}

#[test]
fn dingtalk_body_stays_under_20000_bytes() {
    for (name, s) in alphabets() {
        let digest = Digest::new(
            "routes[0]",
            BTreeMap::from([("cluster".into(), s.clone())]),
            (0..300).map(|i| member(i, &s)).collect(),
            datetime!(2024-05-01 08:00 UTC),
        );
        let payloads: Vec<(&str, Payload)> = vec![
            ("finding", huge(Domain::Alerts, &s).into()),
            ("digest", digest.into()),
        ];
        for (what, p) in &payloads {
            for msg_type in [MsgType::Markdown, MsgType::ActionCard] {
                for lang in [Lang::En, Lang::Zh] {
                    let opts = DingTalkOptions {
                        msg_type,
                        lang,
                        at_mobiles: vec!["13800001111".into()],
                        keyword: Some("告警".into()),
                        ..Default::default()
                    };
                    let r = dingtalk::render(p, &opts);
                    let len = dingtalk::encoded_len(&r.body);
                    assert!(len <= 20_000, "{name} {what} {msg_type:?}: {len} bytes");
                    assert!(len > 1_000, "{name} {what}: suspiciously small ({len})");
                    let text = r.body[if msg_type == MsgType::Markdown {
                        "markdown"
                    } else {
                        "actionCard"
                    }]["text"]
                        .as_str()
                        .unwrap();
                    assert!(text.contains("告警"), "{name} {what}: keyword lost");
                    if msg_type == MsgType::Markdown {
                        assert!(text.contains("@13800001111"), "{name} {what}: mention lost");
                    }
                    if *what == "digest" {
                        assert!(
                            text.contains("more")
                                || text.contains("还有")
                                || text.contains("truncated")
                                || text.contains("截断"),
                            "{name} {what}: no more-marker"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn dingtalk_shrink_renders_smaller_and_honours_small_limits() {
    let p: Payload = sample_digest().into();
    let mut last = usize::MAX;
    for shrink in 0..=5 {
        let r = dingtalk::render(
            &p,
            &DingTalkOptions {
                shrink,
                ..Default::default()
            },
        );
        let len = dingtalk::encoded_len(&r.body);
        assert!(len <= last, "shrink {shrink}: {len} > {last}");
        assert_eq!(r.level, shrink.min(3));
        last = len;
    }
    assert!(last < dingtalk::encoded_len(&dingtalk::render(&p, &DingTalkOptions::default()).body));
    // A 100 KB finding against limits down to 1500 bytes: never over, always valid JSON with
    // the mention intact.
    let big: Payload = huge(Domain::Alerts, &"异".repeat(40_000)).into();
    for max in [20_000, 9_000, 4_000, 2_500, 1_500] {
        for shrink in [0, 1, 4] {
            let r = dingtalk::render(
                &big,
                &DingTalkOptions {
                    max_body_bytes: max,
                    shrink,
                    at_mobiles: vec!["13800001111".into()],
                    ..Default::default()
                },
            );
            let len = dingtalk::encoded_len(&r.body);
            assert!(len <= max, "{max}/{shrink}: {len}");
            assert!(
                r.body["markdown"]["text"]
                    .as_str()
                    .unwrap()
                    .ends_with("@13800001111")
            );
        }
    }
    // A 300-event digest at shrink 0 lists some members and counts the rest.
    let many = Digest::new(
        "backlog",
        BTreeMap::new(),
        (0..300)
            .map(|i| {
                let mut e = sample_event(Domain::ALL[i % 4]);
                e.id = format!("{i}");
                e
            })
            .collect(),
        datetime!(2024-05-01 08:00 UTC),
    );
    let r = dingtalk::render(&many.into(), &DingTalkOptions::default());
    let text = r.body["markdown"]["text"].as_str().unwrap();
    assert!(text.contains("… and 280 more"), "{text}");
    assert_eq!(r.level, 0);
}

#[test]
fn slack_stays_within_block_kit_limits() {
    for (name, s) in alphabets() {
        let digest = Digest::new(
            &s,
            BTreeMap::from([("cluster".into(), s.clone())]),
            (0..300).map(|i| member(i, &s)).collect(),
            datetime!(2024-05-01 08:00 UTC),
        );
        let payloads: Vec<Payload> = vec![huge(Domain::Vulnerabilities, &s).into(), digest.into()];
        for p in &payloads {
            for colour_bar in [false, true] {
                let r = slack::render(
                    p,
                    &SlackOptions {
                        colour_bar,
                        mentions: vec!["U123ABC".into(), "here".into()],
                        ..Default::default()
                    },
                );
                slack::check_limits(&r.body).unwrap_or_else(|e| panic!("{name}: {e}"));
                let blocks = if colour_bar {
                    &r.body["attachments"][0]["blocks"]
                } else {
                    &r.body["blocks"]
                };
                assert!(blocks.as_array().unwrap().len() <= 50);
                assert!(r.warnings.is_empty(), "{name}: {:?}", r.warnings);
            }
        }
    }
    // The validator itself rejects what slack_sdk rejects.
    let bad = [
        serde_json::json!({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x".repeat(3001)}}]}),
        serde_json::json!({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}}]}),
        serde_json::json!({"blocks": [{"type": "section", "fields": vec![serde_json::json!({"type": "mrkdwn", "text": "f"}); 11]}]}),
        serde_json::json!({"blocks": [{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b".repeat(76)}, "url": "https://x"}]}]}),
        serde_json::json!({"blocks": [{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "b"}, "url": format!("https://x/{}", "a".repeat(2992))}]}]}),
        serde_json::json!({"blocks": vec![serde_json::json!({"type": "divider"}); 51]}),
        serde_json::json!({"blocks": [{"type": "divider", "block_id": "i".repeat(256)}]}),
        serde_json::json!({"blocks": [{"type": "context", "elements": vec![serde_json::json!({"type": "mrkdwn", "text": "c"}); 11]}]}),
    ];
    for b in bad {
        assert!(slack::check_limits(&b).is_err(), "{b:.80}");
    }
}

#[test]
fn email_stays_within_caps() {
    for (name, s) in alphabets() {
        let digest = Digest::new(
            "r",
            BTreeMap::from([("cluster".into(), s.clone())]),
            (0..300).map(|i| member(i, &s)).collect(),
            datetime!(2024-05-01 08:00 UTC),
        );
        for p in [Payload::from(huge(Domain::Alerts, &s)), digest.into()] {
            let r = email::render(&p, &EmailOptions::default());
            assert!(r.body.subject.chars().count() <= 256, "{name}");
            assert!(
                r.body.text.len() <= 1_000_000 && r.body.html.len() <= 1_000_000,
                "{name}"
            );
            assert!(r.body.html.trim_end().ends_with("</html>"), "{name}");
            let small = email::render(
                &p,
                &EmailOptions {
                    max_body_bytes: 50_000,
                    ..Default::default()
                },
            );
            assert!(
                small.body.text.len() <= 50_000 && small.body.html.len() <= 50_000,
                "{name}"
            );
            assert!(small.body.html.trim_end().ends_with("</html>"), "{name}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Templates

#[test]
fn custom_templates_render_with_escaping_and_helpers() {
    let p: Payload = hostile(Domain::Alerts, "<!here> [x](https://evil.example) @all").into();
    let tpl = "{{ event.title|truncate(12) }} | {{ event.observed_at|localtime(\"Asia/Shanghai\") }} | {{ event.severity|severity_emoji }}";
    let dt = dingtalk::render(
        &p,
        &DingTalkOptions {
            template: Some(tpl.into()),
            ..Default::default()
        },
    );
    assert!(dt.warnings.is_empty(), "{:?}", dt.warnings);
    assert_eq!(
        dt.body["markdown"]["text"],
        "＜!here＞ ［x］… | 2024-05-01 16:00:00 CST | 🔴"
    );
    let sl = slack::render(
        &p,
        &SlackOptions {
            template: Some("{{ event.title }}".into()),
            ..Default::default()
        },
    );
    let body = sl.body["blocks"].as_array().unwrap();
    let section = body
        .iter()
        .rev()
        .find(|b| b["type"] == "section" && b["text"].is_object())
        .unwrap();
    assert_eq!(
        section["text"]["text"],
        "&lt;!here&gt; [x](https:／／evil.example) ＠all"
    );
    let em = email::render(
        &p,
        &EmailOptions {
            subject_template: Some("ALERT {{ event.title }}\r\nBcc: x@example.com".into()),
            html_template: Some("<p>{{ event.title }}</p>".into()),
            text_template: Some("{{ event.title }}".into()),
            ..Default::default()
        },
    );
    assert_eq!(
        em.body.subject,
        "ALERT <!here> [x](https:／／evil.example) @all Bcc: x@example.com"
    );
    assert_eq!(
        em.body.html,
        "<p>&lt;!here&gt; [x](https:／／evil.example) @all</p>"
    );
    assert_eq!(em.body.text, "<!here> [x](https:／／evil.example) @all");
}

/// A custom chat template cannot print a finding's text unescaped: `safe`, `tojson` and
/// `escape` still escape for the output; `autoescape` blocks and other templates are refused
/// by `sasrelay check` with the template and line named, and at run time the built-in
/// template is used instead, with a warning.
#[test]
fn custom_templates_cannot_switch_escaping_off() {
    let hostile_title = "[x](https://evil.example) @13800000000 <at id=all></at> <!channel>";
    let p: Payload = hostile(Domain::Alerts, hostile_title).into();
    let bad = ["](https://", "://evil", "@1380", "<at", "<!channel>"];
    let render = |kind: TemplateKind, tpl: &str| -> (String, Vec<String>) {
        let t = Some(tpl.to_string());
        match kind {
            TemplateKind::DingTalk => {
                let r = dingtalk::render(
                    &p,
                    &DingTalkOptions {
                        template: t,
                        ..Default::default()
                    },
                );
                (r.body.to_string(), r.warnings)
            }
            TemplateKind::Feishu => {
                let r = feishu::render(
                    &p,
                    &FeishuOptions {
                        template: t,
                        ..Default::default()
                    },
                );
                (r.body.to_string(), r.warnings)
            }
            TemplateKind::WeCom => {
                let r = wecom::render(
                    &p,
                    &WeComOptions {
                        template: t,
                        ..Default::default()
                    },
                );
                (r.body.to_string(), r.warnings)
            }
            _ => {
                let r = slack::render(
                    &p,
                    &SlackOptions {
                        template: t,
                        ..Default::default()
                    },
                );
                (r.body.to_string(), r.warnings)
            }
        }
    };
    let chat = [
        TemplateKind::DingTalk,
        TemplateKind::Feishu,
        TemplateKind::WeCom,
        TemplateKind::Slack,
    ];
    let accepted = [
        "{% if event %}{{ event.title|tojson }}{% endif %}",
        "{% if event %}{{ event.title|safe }} {{ event|tojson(indent=2) }}{% endif %}",
        "{% if event %}{{ event.title|e }} {{ (event.title|e) ~ event.title }}{% endif %}",
    ];
    let refused = [
        (
            "{% autoescape false %}{{ event.title if event }}{% endautoescape %}",
            "autoescape",
            1,
        ),
        (
            "{{ headline }}\n{%- autoescape 'html' %}{{ event.title|e if event }}{% endautoescape %}",
            "autoescape",
            2,
        ),
        ("{% include 'custom.dingtalk.md' %}", "include", 1),
        ("{% extends 'builtin.slack' %}", "extends", 1),
        ("{% import 'builtin.html' as m %}", "import", 1),
    ];
    for kind in chat {
        for tpl in accepted {
            check_template(kind, tpl).unwrap_or_else(|e| panic!("{tpl}: {e}"));
            let (body, warnings) = render(kind, tpl);
            assert!(warnings.is_empty(), "{}: {warnings:?}", kind.name());
            assert!(
                body.contains("evil"),
                "{}: the custom template ran: {body}",
                kind.name()
            );
            for b in bad {
                assert!(!body.contains(b), "{} {tpl}: {b} in {body}", kind.name());
            }
        }
        let builtin = render(kind, builtin_template(kind, Lang::En)).0;
        for (tpl, statement, line) in refused {
            let e = check_template(kind, tpl).unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "custom {} template, line {line}: `{{% {statement} %}}` is not allowed",
                    kind.name()
                )),
                "{e}"
            );
            let (body, warnings) = render(kind, tpl);
            assert_eq!(body, builtin, "{} {tpl}", kind.name());
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(warnings[0].contains(&e), "{warnings:?}");
        }
    }
}

#[test]
fn broken_custom_templates_fall_back_with_a_warning() {
    let p: Payload = sample_event(Domain::Alerts).into();
    let builtin = dingtalk::render(&p, &DingTalkOptions::default());
    for broken in [
        "{{ event.nope }}",
        "{% if %}",
        "{{ event.title|localtime(\"Mars/Base\") }}",
        "{{ digest.count }}",
    ] {
        let r = dingtalk::render(
            &p,
            &DingTalkOptions {
                template: Some(broken.into()),
                ..Default::default()
            },
        );
        assert_eq!(r.body, builtin.body, "{broken}");
        assert_eq!(r.warnings.len(), 1, "{broken}: {:?}", r.warnings);
        assert!(
            r.warnings[0].starts_with("custom dingtalk template failed"),
            "{:?}",
            r.warnings
        );
        let s = slack::render(
            &p,
            &SlackOptions {
                template: Some(broken.into()),
                ..Default::default()
            },
        );
        assert_eq!(
            s.body,
            slack::render(&p, &SlackOptions::default()).body,
            "{broken}"
        );
        assert_eq!(s.warnings.len(), 1);
        let e = email::render(
            &p,
            &EmailOptions {
                subject_template: Some(broken.into()),
                text_template: Some(broken.into()),
                html_template: Some(broken.into()),
                ..Default::default()
            },
        );
        assert_eq!(
            e.body,
            email::render(&p, &EmailOptions::default()).body,
            "{broken}"
        );
        assert_eq!(e.warnings.len(), 3, "{:?}", e.warnings);
    }
    // A custom template whose output never fits: DingTalk cuts it, email replaces it.
    let flood = "{% for i in range(50000) %}x{% endfor %}";
    let r = dingtalk::render(
        &p,
        &DingTalkOptions {
            template: Some(flood.into()),
            ..Default::default()
        },
    );
    assert!(dingtalk::encoded_len(&r.body) <= 20_000);
    assert!(
        r.body["markdown"]["text"]
            .as_str()
            .unwrap()
            .ends_with("… (truncated)")
    );
    let e = email::render(
        &p,
        &EmailOptions {
            max_body_bytes: 10_000,
            html_template: Some(flood.into()),
            ..Default::default()
        },
    );
    assert!(e.body.html.starts_with("<!DOCTYPE html>"));
    assert!(
        e.warnings.iter().any(|w| w.contains("over the size cap")),
        "{:?}",
        e.warnings
    );
    // Unknown zones fall back to UTC with a warning.
    let z = slack::render(
        &p,
        &SlackOptions {
            timezone: "Mars/Base".into(),
            ..Default::default()
        },
    );
    assert!(z.warnings[0].contains("unknown time zone"));
}

#[test]
fn check_template_covers_every_sample() {
    for kind in TemplateKind::ALL {
        for lang in [Lang::En, Lang::Zh] {
            check_template(kind, builtin_template(kind, lang)).unwrap();
        }
    }
    let err = check_template(
        TemplateKind::DingTalk,
        "{% for d in event.details %}{{ d.nme }}{% endfor %}",
    )
    .unwrap_err();
    assert!(err.starts_with("sample alerts (en)"), "{err}");
    assert!(
        check_template(
            TemplateKind::EmailHtml,
            "{{ headline }}{{ event.title if event else digest.headline }}"
        )
        .is_ok()
    );
}

#[test]
fn samples_are_realistic() {
    for d in Domain::ALL {
        let e = sample_event(d);
        let f = e.finding.as_ref().unwrap();
        assert_eq!(f.kubernetes.cluster_name.as_deref(), Some("c-prod"));
        assert!(!f.details.is_empty() && !f.links.is_empty(), "{d:?}");
    }
    assert!(
        !sample_event(Domain::Vulnerabilities)
            .finding
            .unwrap()
            .cves
            .is_empty()
    );
    assert!(
        !sample_event(Domain::Alerts)
            .finding
            .unwrap()
            .tactics
            .is_empty()
    );
    let d = sample_digest();
    assert!(d.events.len() > 10);
    assert_eq!(d.group.get("cluster").map(String::as_str), Some("c-prod"));
}

/// Random hostile strings (a fixed-seed generator, so failures reproduce) of random lengths
/// from a pool of markup, mention, control, bidi, CJK and emoji pieces, through every sink.
#[test]
fn random_hostile_strings_never_escape_or_overflow() {
    const POOL: [&str; 24] = [
        "<",
        ">",
        "&",
        "@",
        "[",
        "](",
        "![",
        "*",
        "_",
        "~",
        "`",
        "#",
        "\\",
        "|",
        "\r\n",
        "\0",
        "\u{202E}",
        "\u{200B}",
        "异常",
        "😀",
        "https://",
        "www.",
        "<!here>",
        "@13800000000",
    ];
    let mut seed: u64 = 0x5eed_5a5e_1a7e;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let dt = DingTalkOptions {
        at_mobiles: vec![DT_MOBILE.into()],
        at_user_ids: vec![DT_USER.into()],
        ..Default::default()
    };
    let sl = SlackOptions {
        mentions: vec!["U999".into(), "here".into()],
        ..Default::default()
    };
    for round in 0..60 {
        let len = [1, 10, 100, 1_000, 10_000, 60_000][next(6) as usize];
        let mut s = String::new();
        while s.len() < len {
            s.push_str(POOL[next(POOL.len() as u64) as usize]);
            if next(3) == 0 {
                s.push_str("text ");
            }
        }
        for (name, p) in hostile_payloads(&s) {
            let what = format!("round {round} len {len} {name}");
            check_dingtalk(
                &format!("dingtalk {what}"),
                &p,
                &dingtalk::render(&p, &dt),
                false,
            );
            check_slack(&format!("slack {what}"), &slack::render(&p, &sl));
            check_email(
                &format!("email {what}"),
                &p,
                &email::render(&p, &EmailOptions::default()),
            );
        }
    }
}

/// A resolution someone handled through sasrelay names them in every output, in both
/// languages, and in the webhook payload.
#[test]
fn a_resolution_handled_through_sasrelay_names_who() {
    let mut e = sample_event(Domain::Alerts);
    e.kind = sasrelay::event::EventKind::Resolved;
    e.resolution = Some(sasrelay::finding::Resolution::FalsePositive);
    e.handled_by = Some(sasrelay::event::HandledBy {
        who: "alice".into(),
        via: "cli".into(),
        action: "whitelist".into(),
        at: datetime!(2024-05-01 08:00 UTC),
    });
    let p: Payload = e.into();
    let md = dingtalk::render(&p, &DingTalkOptions::default());
    let text = md.body["markdown"]["text"].as_str().unwrap();
    assert!(
        text.contains("false positive, by alice via sasrelay (cli)"),
        "{text}"
    );
    let zh = dingtalk::render(
        &p,
        &DingTalkOptions {
            lang: Lang::Zh,
            ..Default::default()
        },
    );
    let text = zh.body["markdown"]["text"].as_str().unwrap();
    assert!(text.contains("由 alice 通过 sasrelay（cli）处理"), "{text}");
    let s = slack::render(&p, &SlackOptions::default());
    assert!(
        s.body.to_string().contains("by alice via sasrelay (cli)"),
        "{}",
        s.body
    );
    let doc: Value = serde_json::from_str(&sasrelay::sinks::payload::to_json(&p)).unwrap();
    assert_eq!(doc["handled_by"]["who"], "alice");
    assert_eq!(doc["handled_by"]["action"], "whitelist");
    assert_eq!(doc["handled_by"]["at"], "2024-05-01T08:00:00Z");
}
