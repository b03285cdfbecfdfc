//! Text that came from outside, made safe and short. A leaf: imported by many, imports nothing
//! of ours.
//!
//! - Scrubbing: [`strip_control`] for one line of a terminal or a log (control characters become
//!   spaces, invisible format characters — bidi overrides, zero-width, fillers, variation
//!   selectors, tags: every Cf and default-ignorable character — are dropped), and
//!   [`is_invisible_format`] for the escapers that keep line breaks. Security Center's error
//!   text, a receiver's error body and a finding's fields all go through the same scrubber.
//! - Cutting on character boundaries (never inside a multi-byte UTF-8 sequence, so CJK and
//!   emoji survive) with visible markers that count towards the limit: [`truncate_bytes`],
//!   [`truncate_chars`], [`clip`], [`truncate_json`].
//! - Measuring how many bytes a string takes once serialised as a JSON string.
//! - [`error_chain`]: an error and its sources on one scrubbed line.
//! - [`percent_encode`]: RFC 3986, for signatures and links.
//!
//! Pure.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986 unreserved (`A-Z a-z 0-9 - _ . ~`) is escaped.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// RFC 3986 percent-encoding, as Security Center's signatures and the consoles' links want it:
/// unreserved characters kept, everything else `%XX` (uppercase), so space is `%20`, `*` is
/// `%2A` and `~` stays.
pub fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

/// Attacker-written text made safe for a terminal or a log line: control characters (C0, DEL,
/// C1: escape sequences, newlines, carriage returns) become spaces, and invisible
/// format characters that reorder or hide text ([`is_invisible_format`]) are dropped.
pub fn strip_control(text: &str) -> String {
    text.chars()
        .filter(|c| !is_invisible_format(*c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// What [`is_invisible_format`] drops, as sorted, disjoint, inclusive ranges: every character of
/// general category Cf (format) and every `Default_Ignorable_Code_Point`, Unicode 16 (a test
/// checks the table against both properties over all of `char`). Named here because each has
/// been used to make text render differently from what it is:
///
/// - bidi embeddings, overrides, isolates and marks (U+061C, U+200E–200F, U+202A–202E,
///   U+2066–2069): "Trojan Source", `exe.txt` shown for `txt.exe`;
/// - zero-width and joiners (U+200B–200D, U+2060–2064, U+FEFF, U+034F combining grapheme
///   joiner), the soft hyphen (U+00AD) and U+180E: hide a word inside another;
/// - Hangul fillers (U+115F, U+1160, U+3164, U+FFA0): letters that render as nothing;
/// - variation selectors (U+180B–180F, U+FE00–FE0F, U+E0100–E01EF) and tag characters
///   (U+E0000–E007F): invisible payloads ("ASCII smuggling"), the rest of plane 14 with them;
/// - interlinear annotations (U+FFF9–FFFB), deprecated format characters (U+206A–206F),
///   the prepended number signs (U+0600–0605, U+06DD, U+070F, U+0890–0891, U+08E2, U+110BD,
///   U+110CD), Egyptian, shorthand and musical format controls, and the reserved default
///   ignorables (U+2065, U+FFF0–FFF8).
///
/// The UTF-8 lead bytes of these are those [`crate::sinks::payload`]'s fast scan looks for
/// (`0xc2 0xcd 0xd8 0xdb 0xdc 0xe0 0xe1 0xe2 0xe3 0xef 0xf0 0xf3`); a character added here
/// with a new lead byte must be added there too (its test fails until it is).
pub const INVISIBLE: [(char, char); 25] = [
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{206F}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF0}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0000}', '\u{E0FFF}'),
];

/// Invisible characters that let text render differently from what it is: bidi controls,
/// zero-width characters, fillers, variation selectors, tag characters — every format (Cf) or
/// default-ignorable character ([`INVISIBLE`]). Below U+00AD nothing is (the common case, one
/// comparison); above, a binary search of the table.
pub fn is_invisible_format(c: char) -> bool {
    c >= '\u{00AD}'
        && INVISIBLE
            .binary_search_by(|&(lo, hi)| {
                if hi < c {
                    std::cmp::Ordering::Less
                } else if lo > c {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
}

/// `e: cause: cause` on one line, scrubbed with [`strip_control`] — reqwest hides the useful
/// part (connection refused, timed out, a certificate problem) in sources, and a peer's TLS or
/// proxy error text is not ours. Shared by every HTTP client in the crate.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    strip_control(&text)
}

/// At most `max` characters; a cut is marked with a trailing `…` (counted in `max`).
pub fn truncate_chars(s: &str, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some(_) => {
            let end = s.char_indices().nth(max - 1).map_or(s.len(), |(i, _)| i);
            format!("{}…", &s[..end])
        }
    }
}

/// At most `max` characters; a cut keeps the start and says how much was left out:
/// `abc… (+1234)`. The marker counts towards `max` (when `max` is too small for it, the cut is
/// a bare `…`).
pub fn clip(s: &str, max: usize) -> String {
    let total = s.chars().count();
    if total <= max {
        return s.to_string();
    }
    // The marker's width depends on the number it shows; size it for the worst case.
    let marker_len = format!("… (+{total})").chars().count();
    if max <= marker_len + 1 {
        return truncate_chars(s, max);
    }
    let keep = max - marker_len;
    let end = s.char_indices().nth(keep).map_or(s.len(), |(i, _)| i);
    format!("{}… (+{})", &s[..end], total - keep)
}

/// At most `max` bytes, cut on a character boundary; a cut is marked with `…` (counted).
pub fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let ell = '…'.len_utf8();
    if max < ell {
        return String::new();
    }
    let mut end = max - ell;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Bytes `c` takes inside a JSON string as serde_json writes it.
pub fn json_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Bytes `s` takes inside a JSON string (without the quotes).
pub fn json_len(s: &str) -> usize {
    s.chars().map(json_char_len).sum()
}

/// The longest prefix of `s` whose JSON form plus `marker`'s fits in `max` bytes, followed by
/// `marker`; `s` itself when it fits whole. Cuts at a line end when one is near (so a markdown
/// line is not left half-open), else at a character boundary.
pub fn truncate_json(s: &str, max: usize, marker: &str) -> String {
    if json_len(s) <= max {
        return s.to_string();
    }
    let budget = max.saturating_sub(json_len(marker));
    let mut used = 0;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        let n = json_char_len(c);
        if used + n > budget {
            break;
        }
        used += n;
        end = i + c.len_utf8();
    }
    let mut cut = &s[..end];
    // Prefer a line boundary within the last quarter of what fits.
    if let Some(nl) = cut.rfind('\n')
        && nl >= cut.len() * 3 / 4
    {
        cut = &cut[..nl + 1];
    }
    if json_len(marker) > max {
        return truncate_bytes_json(marker, max);
    }
    format!("{cut}{marker}")
}

fn truncate_bytes_json(s: &str, max: usize) -> String {
    let mut used = 0;
    let mut out = String::new();
    for c in s.chars() {
        let n = json_char_len(c);
        if used + n > max {
            break;
        }
        used += n;
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table is exactly Unicode's format (Cf) and default-ignorable characters, as the
    /// `regex` crate's Unicode 16 tables have them, over every `char`; sorted and disjoint so
    /// the binary search is right.
    #[test]
    fn invisible_is_every_format_and_default_ignorable_character() {
        assert!(INVISIBLE.windows(2).all(|w| w[0].1 < w[1].0), "sorted");
        assert!(INVISIBLE.iter().all(|(lo, hi)| lo <= hi));
        let all: String = (0..=char::MAX as u32).filter_map(char::from_u32).collect();
        let property = regex::Regex::new(r"[\p{Cf}\p{Default_Ignorable_Code_Point}]").unwrap();
        let want: Vec<char> = property
            .find_iter(&all)
            .flat_map(|m| m.as_str().chars())
            .collect();
        let got: Vec<char> = all.chars().filter(|&c| is_invisible_format(c)).collect();
        assert_eq!(got, want);
        // The ones named in the doc, by hand, in case both tables drift together.
        for c in [
            '\u{ad}',
            '\u{34f}',
            '\u{61c}',
            '\u{115f}',
            '\u{1160}',
            '\u{180e}',
            '\u{200b}',
            '\u{202e}',
            '\u{2066}',
            '\u{206a}',
            '\u{206f}',
            '\u{3164}',
            '\u{fe0f}',
            '\u{feff}',
            '\u{ffa0}',
            '\u{fff9}',
            '\u{fffb}',
            '\u{e0001}',
            '\u{e0041}',
            '\u{e007f}',
            '\u{e0100}',
            '\u{e01ef}',
            '\u{1d173}',
            '\u{13430}',
        ] {
            assert!(is_invisible_format(c), "{c:?}");
        }
        for c in [
            'a',
            ' ',
            '\u{ac}',
            '\u{a0}',
            '\u{3000}',
            '异',
            '😀',
            '\u{fffc}',
            '\u{1f3f4}',
        ] {
            assert!(!is_invisible_format(c), "{c:?}");
        }
        assert_eq!(strip_control("a\u{e0041}\u{fe0f}\u{3164}b"), "ab");
    }

    #[test]
    fn char_cuts_are_boundary_safe() {
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abcd", 3), "ab…");
        assert_eq!(truncate_chars("异常登录", 2), "异…");
        assert_eq!(truncate_chars("😀😀😀", 2), "😀…");
        assert_eq!(truncate_chars("x", 0), "");
    }

    #[test]
    fn clip_reports_what_was_left_out() {
        assert_eq!(clip("short", 10), "short");
        let c = clip(&"a".repeat(1000), 20);
        assert!(c.chars().count() <= 20, "{c}");
        assert_eq!(c, format!("{}… (+989)", "a".repeat(11)));
        let cjk = clip(&"异".repeat(1000), 50);
        assert!(cjk.chars().count() <= 50);
        assert_eq!(clip("abcdef", 3), "ab…");
    }

    #[test]
    fn byte_cuts_are_boundary_safe() {
        assert_eq!(truncate_bytes("异常登录", 10), "异常…");
        assert_eq!(truncate_bytes("ab", 1), "");
        for max in 0..20 {
            assert!(truncate_bytes("😀异a\"", max).len() <= max);
        }
    }

    #[test]
    fn json_lengths_match_serde() {
        for s in [
            "plain",
            "q\"b\\s",
            "nl\n\r\t",
            "\u{1}\u{1f}",
            "异😀",
            "\u{7f}",
        ] {
            let encoded = serde_json::to_string(s).unwrap();
            assert_eq!(json_len(s) + 2, encoded.len(), "{s:?}");
        }
    }

    #[test]
    fn json_truncation_fits_the_budget() {
        let inputs = [
            "a".repeat(5000),
            "异".repeat(5000),
            "😀".repeat(5000),
            "\"\\".repeat(5000),
            "line\n".repeat(2000),
        ];
        for s in &inputs {
            for max in [0, 1, 5, 17, 100, 999, 4096] {
                let t = truncate_json(s, max, "\n… (truncated)");
                assert!(json_len(&t) <= max, "{max} {}", json_len(&t));
            }
        }
        assert_eq!(truncate_json("fits", 100, "…"), "fits");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Text that stresses the cuts: ASCII, two-, three- and four-byte characters, JSON's
        /// escaped characters and line breaks, in any mix.
        fn text() -> impl Strategy<Value = String> {
            let c = prop_oneof![
                4 => proptest::char::range('a', 'z'),
                1 => any::<char>(),
                1 => prop::sample::select(vec!['é', '异', '😀', '"', '\\', '\n', '\u{1}', '…']),
            ];
            prop::collection::vec(c, 0..80).prop_map(String::from_iter)
        }

        /// `cut` is `s` whole, or a prefix of `s` followed by `marker`; returns the prefix.
        fn prefix_before<'a>(s: &str, cut: &'a str, marker: &str) -> &'a str {
            let kept = cut
                .strip_suffix(marker)
                .unwrap_or_else(|| panic!("{cut:?} does not end with {marker:?}"));
            assert!(s.starts_with(kept), "{kept:?} is not a prefix of {s:?}");
            kept
        }

        proptest! {
            #[test]
            fn truncate_bytes_keeps_the_longest_prefix_that_fits(s in text(), max in 0usize..120) {
                let t = truncate_bytes(&s, max);
                prop_assert!(t.len() <= max, "{} bytes > {max}", t.len());
                if s.len() <= max {
                    prop_assert_eq!(&t, &s);
                } else if max < '…'.len_utf8() {
                    prop_assert_eq!(t, "");
                } else {
                    let kept = prefix_before(&s, &t, "…");
                    // The next character would not have fitted beside the marker.
                    let next = s[kept.len()..].chars().next().map_or(0, char::len_utf8);
                    prop_assert!(kept.len() + next + '…'.len_utf8() > max);
                }
            }

            #[test]
            fn truncate_chars_keeps_max_minus_one_characters(s in text(), max in 0usize..100) {
                let t = truncate_chars(&s, max);
                let total = s.chars().count();
                prop_assert!(t.chars().count() <= max);
                if total <= max {
                    prop_assert_eq!(&t, &s);
                } else if max == 0 {
                    prop_assert_eq!(t, "");
                } else {
                    let kept = prefix_before(&s, &t, "…");
                    prop_assert_eq!(kept.chars().count(), max - 1);
                }
            }

            #[test]
            fn clip_counts_what_it_left_out(s in text(), max in 0usize..100) {
                let t = clip(&s, max);
                let total = s.chars().count();
                prop_assert!(t.chars().count() <= max, "{t:?} is over {max}");
                if total <= max {
                    prop_assert_eq!(&t, &s);
                } else if let Some(counted) = t.strip_suffix(')') {
                    // The marker names the characters cut off.
                    let (head, left_out) = counted.rsplit_once("… (+").unwrap();
                    prop_assert!(s.starts_with(head), "{head:?} is not a prefix of {s:?}");
                    prop_assert_eq!(head.chars().count() + left_out.parse::<usize>().unwrap(), total);
                } else {
                    // Too small for the counted marker: a plain character cut.
                    prop_assert_eq!(t, truncate_chars(&s, max));
                }
            }

            #[test]
            fn truncate_json_fits_its_budget_with_the_marker(
                s in text(),
                max in 0usize..160,
                marker in prop::sample::select(vec!["…", "\n… (truncated)", "\"cut\""]),
            ) {
                let t = truncate_json(&s, max, marker);
                prop_assert!(json_len(&t) <= max, "{} > {max}", json_len(&t));
                if json_len(&s) <= max {
                    prop_assert_eq!(&t, &s);
                } else if json_len(marker) > max {
                    // No room for the marker: as much of it as fits.
                    prop_assert!(marker.starts_with(t.as_str()), "{t:?}");
                } else {
                    prefix_before(&s, &t, marker);
                }
            }
        }
    }
}
