//! The injection corpus (`tests/fixtures/render/injection.txt`), shared by the render tests and
//! the chat-sink tests: one hostile string per line, `\r \n \t \0 \\ \u{…}` escapes,
//! `%repeat N unit` for long strings, `#` comments.

/// Undoes the corpus file's escapes.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some('\\') => out.push('\\'),
            Some('u') if it.peek() == Some(&'{') => {
                it.next();
                let hex: String = it.by_ref().take_while(|&c| c != '}').collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Every corpus entry, escapes undone and `%repeat` lines expanded.
pub fn corpus() -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/render/injection.txt");
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("%repeat ") {
            let (n, unit) = rest.split_once(' ').unwrap();
            let n: usize = n.parse().unwrap();
            let unit = unescape(unit);
            let mut s = String::new();
            while s.len() + unit.len() <= n {
                s.push_str(&unit);
            }
            out.push(s);
        } else {
            out.push(unescape(line));
        }
    }
    assert!(out.len() > 50, "corpus too small: {}", out.len());
    out
}

/// Removes `**Label**` spans (the templates' own bold labels: letters, spaces, `&`, CJK), so
/// what remains of a rendered text can be searched for markup an attacker added.
#[allow(dead_code)]
pub fn without_bold_labels(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("**") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find("**") {
            Some(j)
                if j > 0
                    && j <= 40
                    && after[..j]
                        .chars()
                        .all(|c| c.is_alphabetic() || c == ' ' || c == '&') =>
            {
                rest = &after[j + 2..];
            }
            _ => {
                out.push_str("**");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}
