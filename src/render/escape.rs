//! Escaping of untrusted text, one function per output kind. Pure string functions; the
//! template environment calls them from its formatter for every value a template prints, and
//! the sink renderers call them for the strings they place themselves (titles, headers, fields).
//!
//! Every function first removes what no output may carry: control characters become spaces
//! (so an untrusted value is always **one line** and can never start a *new* line, nor add a
//! mail header) and invisible characters — bidi controls, zero-width, fillers, variation
//! selectors, tags — are dropped ([`crate::text::strip_control`]). A template may still print
//! a value at the start of one of its lines, so what would make that line a heading, quote,
//! list item or rule is neutralised at the value's start too (`# `, `> `, `- `, `+ `, `1. `,
//! `---`, `===` for the markdown kinds; `>`, Slack's quote, for [`slack`]). Then, per kind:
//!
//! | kind | what else | example in → out |
//! |---|---|---|
//! | [`dingtalk`] | markdown/HTML-active ASCII → full-width look-alikes (see the function); `@` → `＠`; a leading list or rule marker full-width; links defanged | `[x](https://e)` → `［x］(https:／／e)`, `- x` → `－ x` |
//! | [`feishu`] | the same as [`dingtalk`] (so `<at id=all></at>` → `＜at id=all＞＜/at＞`) | `<at user_id="all">` → `＜at user_id="all"＞` |
//! | [`wecom`] | the same as [`dingtalk`] (so `<@userid>` and `<font color="info">` are inert) | `<@all>` → `＜＠all＞` |
//! | [`feishu_plain`] | the same as [`slack_plain`] | `<at id=all>` → `＜at id=all＞` |
//! | [`slack`] | `&<>` → entities, but a leading `>` → `＞` (a quote even as `&gt;`); `*~`` ` `` and word-edge `_` → full-width; `@` → `＠`; links defanged | `<!here> *b*` → `&lt;!here&gt; ＊b＊`, `> ok` → `＞ ok` |
//! | [`slack_plain`] | `<>` → full-width, `@` → `＠` (plain_text is not parsed; defence in depth); links defanged | `<@U1>` → `＜＠U1＞` |
//! | [`html`] | `& < > " '` → entities; links defanged | `<script>` → `&lt;script&gt;` |
//! | [`text`] | links defanged | `http://e` → `http:／／e` |
//! | [`header_line`] | one line, `=?` → `=？` (no RFC 2047 encoded word), capped | `=?utf-8?b?4oCu?=` → `=？utf-8?b?4oCu?=` |
//!
//! Why look-alikes rather than backslashes for DingTalk: DingTalk's markdown dialect is not
//! documented to honour backslash escapes; if it did not, `\[x\](y)` would still be a link. A
//! full-width bracket is inert under every markdown dialect and still reads as a bracket.
//!
//! "Defanged" links: `://` becomes `:／／` and `www.` becomes `www．`, so neither a chat client's
//! nor a mail client's linkifier turns an attacker's URL into a clickable link. Bare domains
//! (`evil.example/x`) may still be linkified by clients with fuzzy linkifiers; such a link shows
//! its real target, which is the best a text transformation can do without mangling every path.

use crate::text::strip_control;

/// The full-width form (U+FF01..U+FF5E) of a printable ASCII character.
fn wide(c: char) -> char {
    debug_assert!(c.is_ascii_graphic());
    char::from_u32(c as u32 + 0xFEE0).unwrap_or(c)
}

/// `://` → `:／／`, `www.` → `www．` (case-insensitive).
pub fn defang(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < s.len() {
        if b[i..].starts_with(b"://") {
            out.push_str(":／／");
            i += 3;
        } else if b.len() - i >= 4
            && b[i..i + 4].eq_ignore_ascii_case(b"www.")
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
        {
            out.push_str(&s[i..i + 3]);
            out.push('．');
            i += 4;
        } else {
            // Copy one whole character.
            let c = s[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Whether the `_` at char index `i` of `chars` sits between two alphanumerics (intraword), where
/// no markdown dialect in use (CommonMark, GFM, Slack mrkdwn) starts emphasis.
fn intraword(chars: &[char], i: usize) -> bool {
    i > 0 && i + 1 < chars.len() && chars[i - 1].is_alphanumeric() && chars[i + 1].is_alphanumeric()
}

/// The char index of the first non-whitespace character of `chars` (where a markdown block
/// marker would sit were the value printed at the start of a line), `chars.len()` if none.
fn lead(chars: &[char]) -> usize {
    chars
        .iter()
        .position(|c| !c.is_whitespace())
        .unwrap_or(chars.len())
}

/// The char index of the character that makes `chars` open a list item, rule or setext
/// heading underline when it starts a markdown line: `-`, `+` or `=` first and followed by
/// whitespace, the end or the same character (`- x`, `+ x`, `-`, `---`, `===`), or the `.` /
/// `)` after 1–9 leading digits when followed by whitespace or the end (`1. x`, `2)`).
/// (`#`, `>`, `*` and `_` are full-width wherever they are.)
fn block_marker(chars: &[char]) -> Option<usize> {
    let at = lead(chars);
    let ends_item = |i: usize| chars.get(i).is_none_or(|c| c.is_whitespace());
    match *chars.get(at)? {
        c @ ('-' | '+' | '=') if ends_item(at + 1) || chars.get(at + 1) == Some(&c) => Some(at),
        '0'..='9' => {
            let digits = chars[at..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            let dot = at + digits;
            (digits <= 9 && matches!(chars.get(dot), Some('.' | ')')) && ends_item(dot + 1))
                .then_some(dot)
        }
        _ => None,
    }
}

/// Untrusted text for DingTalk markdown (and the markdown title / button labels).
///
/// Replaced by full-width forms: `[ ] < > * ~ `` ` `` # \ | &` and `_` except inside a word
/// (`&` so no HTML entity can be decoded into markup by a lax renderer); `@` → `＠` (a literal
/// `@13800000000` can never look like a mention); at the value's start, the marker of a list
/// item, rule or setext underline (`- x` → `－ x`, `1. x` → `1． x`, `---` → `－--`; see
/// `block_marker`), since a template may print the value at the start of a line. Links defanged.
pub fn dingtalk(s: &str) -> String {
    let clean = defang(&strip_control(s));
    let chars: Vec<char> = clean.chars().collect();
    let marker = block_marker(&chars);
    let mut out = String::with_capacity(clean.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '[' | ']' | '<' | '>' | '*' | '~' | '`' | '#' | '\\' | '|' | '@' | '&' => {
                out.push(wide(c))
            }
            '_' if !intraword(&chars, i) => out.push(wide(c)),
            _ if marker == Some(i) => out.push(wide(c)),
            _ => out.push(c),
        }
    }
    out
}

/// Untrusted text for Feishu/Lark `lark_md` (card text). Its active syntax is a subset of
/// DingTalk's set plus tags (`<at id=…>`, `<font>`, `<a>`, `<text_tag>`) and autolinks, all
/// neutralised by [`dingtalk`]'s replacements (`<` `>` `[` `]` `*` `~` `_` `` ` `` `&` `@`
/// to full-width, links defanged), so the two are one function.
pub fn feishu(s: &str) -> String {
    dingtalk(s)
}

/// Untrusted text for WeCom robot markdown. Its active syntax (headings, bold, links,
/// `` `code` ``, `>` quotes, `<font color>`, `<@userid>` mentions) is a subset of DingTalk's,
/// so [`dingtalk`]'s replacements neutralise it.
pub fn wecom(s: &str) -> String {
    dingtalk(s)
}

/// Untrusted text for Feishu `plain_text` (the card header, button labels, the note): not
/// parsed by Feishu, so, as for Slack's, only `<` `>` `@` become look-alikes and links are
/// defanged, as defence in depth.
pub fn feishu_plain(s: &str) -> String {
    slack_plain(s)
}

/// Untrusted text for Slack mrkdwn (section text, fields, context, the fallback `text`).
///
/// `&` → `&amp;`, `<` → `&lt;`, `>` → `&gt;` (Slack's own rule; neutralises `<!channel>`,
/// `<@U…>`, `<url|text>`), except that a `>` starting the value (after spaces) is `＞`: Slack
/// decodes `&gt;` before it looks for formatting, so `&gt; Verified safe` at the start of a
/// line (a template's, or a field's second line) would render as a quote. Formatting
/// characters `* ~ `` ` `` and `_` except inside a word → full-width (mrkdwn has no escape for
/// them); `@` → `＠` (bare `@here`/`@channel` stay words). Links defanged.
pub fn slack(s: &str) -> String {
    let clean = defang(&strip_control(s));
    let chars: Vec<char> = clean.chars().collect();
    let start = lead(&chars);
    let mut out = String::with_capacity(clean.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' if i == start => out.push(wide(c)),
            '>' => out.push_str("&gt;"),
            '*' | '~' | '`' | '@' => out.push(wide(c)),
            '_' if !intraword(&chars, i) => out.push(wide(c)),
            _ => out.push(c),
        }
    }
    out
}

/// Untrusted text for Slack `plain_text` objects (header, button labels). Slack does not parse
/// them for mentions, so only `<`, `>` and `@` are made look-alikes, as defence in depth, and
/// links are defanged.
pub fn slack_plain(s: &str) -> String {
    defang(&strip_control(s))
        .chars()
        .map(|c| match c {
            '<' | '>' | '@' => wide(c),
            c => c,
        })
        .collect()
}

/// Untrusted text for HTML element content and quoted attribute values. Links defanged.
pub fn html(s: &str) -> String {
    let clean = defang(&strip_control(s));
    let mut out = String::with_capacity(clean.len() + 8);
    for c in clean.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Untrusted text for a plain-text body (the email text part). Links defanged.
pub fn text(s: &str) -> String {
    defang(&strip_control(s))
}

/// One header-safe line: every control character (CR, LF, NUL, TAB, …) and invisible format
/// character removed, whitespace runs collapsed, trimmed, every `=?` made `=？` (below), at
/// most `max_chars` characters (cut on a character boundary, marked with `…`). For the email
/// subject, whose input is already escaped text plus the template's own text.
///
/// `=?` starts an RFC 2047 encoded word. Lettre writes an all-ASCII word of a header as it is,
/// so `=?utf-8?b?4oCuZ25wLmV4ZQ==?=` in a title would reach the mail client verbatim and be
/// decoded there — into U+202E and text, re-creating what the scrub above removed. With a
/// full-width `？` (the look-alike [`dingtalk`] uses for ASCII punctuation) the word is no
/// longer ASCII, so lettre encodes it itself and the client shows it literally.
pub fn header_line(s: &str, max_chars: usize) -> String {
    let clean = strip_control(s);
    let collapsed = clean.split_whitespace().collect::<Vec<_>>().join(" ");
    let inert = collapsed.replace("=?", "=？");
    crate::text::truncate_chars(&inert, max_chars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dingtalk_neutralises_markdown_html_and_mentions() {
        let cases = [
            ("[x](https://evil)", "［x］(https:／／evil)"),
            ("![i](http://e/p.png)", "!［i］(http:／／e/p.png)"),
            ("# heading", "＃ heading"),
            ("<script>alert(1)</script>", "＜script＞alert(1)＜/script＞"),
            ("@13800000000 @all", "＠13800000000 ＠all"),
            ("**bold** _it_ my_var", "＊＊bold＊＊ ＿it＿ my_var"),
            ("a\r\n# b\u{202e}c\0d", "a  ＃ bc d"),
            ("see www.evil.example", "see www．evil.example"),
            ("异常登录 😀", "异常登录 😀"),
            ("&lt;b&gt; a|b \\x", "＆lt;b＆gt; a｜b ＼x"),
            // At the start (a template may print it at the start of a line): no list item,
            // rule or setext underline; elsewhere, and when not a marker, unchanged.
            ("- list item", "－ list item"),
            ("  + item", "  ＋ item"),
            ("-", "－"),
            ("---", "－--"),
            ("=== x", "＝== x"),
            ("1. first", "1． first"),
            ("2023) x", "2023） x"),
            ("> Verified safe by SecOps", "＞ Verified safe by SecOps"),
            ("a - b 1. c", "a - b 1. c"),
            ("-1 +86 1.2.3 1234567890. x", "-1 +86 1.2.3 1234567890. x"),
        ];
        for (input, want) in cases {
            assert_eq!(dingtalk(input), want, "{input:?}");
        }
    }

    #[test]
    fn slack_escapes_control_sequences_and_formatting() {
        let cases = [
            (
                "<!channel> & <@U123>",
                "&lt;!channel&gt; &amp; &lt;＠U123&gt;",
            ),
            ("<https://evil|click>", "&lt;https:／／evil|click&gt;"),
            (
                "*b* _i_ ~s~ `c` snake_case",
                "＊b＊ ＿i＿ ～s～ ｀c｀ snake_case",
            ),
            ("@here @channel", "＠here ＠channel"),
            ("x\ny\u{200b}z", "x yz"),
            // A quote only at the value's start; `&gt;` would be one there too.
            ("> Verified safe by SecOps", "＞ Verified safe by SecOps"),
            ("  >> x > y", "  ＞&gt; x &gt; y"),
            ("a > b", "a &gt; b"),
        ];
        for (input, want) in cases {
            assert_eq!(slack(input), want, "{input:?}");
        }
        assert_eq!(slack_plain("<@U1> & *x*"), "＜＠U1＞ & *x*");
    }

    #[test]
    fn html_and_text_and_header() {
        assert_eq!(
            html("<a href='x'>\"&"),
            "&lt;a href=&#39;x&#39;&gt;&quot;&amp;"
        );
        assert_eq!(text("a\0b http://x"), "a b http:／／x");
        assert_eq!(
            header_line("x\r\nBcc: evil@x\t\u{202e} end ", 256),
            "x Bcc: evil@x end"
        );
        // No RFC 2047 encoded word survives, however it was split.
        assert_eq!(
            header_line("Login from =?utf-8?b?4oCuZ25wLmV4ZQ==?= ok", 256),
            "Login from =？utf-8?b?4oCuZ25wLmV4ZQ==？= ok"
        );
        assert_eq!(
            header_line("=\u{200b}?UTF-8?Q?=E2=80=AE?= ==??=", 256),
            "=？UTF-8?Q?=E2=80=AE?= ==？?="
        );
        let long = header_line(&"异".repeat(300), 10);
        assert_eq!(long.chars().count(), 10);
        assert!(long.ends_with('…'));
    }
}
