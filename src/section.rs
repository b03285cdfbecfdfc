//! One TOML section read on its own, so that an error in it does not hide errors elsewhere and
//! every error names its place: the span, and the dotted key path below the section
//! (`source[0].credentials.type`). Shared by [`crate::config`] and [`crate::routing`], which
//! read different sections of the same document. A leaf: imports nothing of ours.
//!
//! [`deserialize_section_all`] goes further: a key that fails is set aside and the rest read
//! again, so two mistakes in one table are both reported. An unknown key or variant close to an
//! expected one gets a "did you mean" ([`closest`]).

use serde_spanned::Spanned;
use toml::de::ValueDeserializer;

/// Where and why a section did not deserialise: the span (byte offsets into the document), the
/// dotted key and the message.
pub type SectionError = (Option<std::ops::Range<usize>>, String, String);

/// Deserialises one TOML table; an error carries its span, the dotted key path below `key`
/// (`source[0].credentials.type`) and the message.
pub fn deserialize_section<T: serde::de::DeserializeOwned>(
    value: &Spanned<toml::de::DeValue<'_>>,
    key: &str,
) -> Result<T, SectionError> {
    serde_path_to_error::deserialize::<_, T>(ValueDeserializer::from(value.clone())).map_err(|e| {
        let path = readable_path(&e.path().to_string());
        let inner = e.into_inner();
        let key = if path == "." || path.is_empty() {
            key.to_string()
        } else {
            format!("{key}.{path}")
        };
        (
            inner.span().or(Some(value.span())),
            key,
            suggest(inner.message()),
        )
    })
}

/// Like [`deserialize_section`] for a table, reporting every key that fails rather than the
/// first: a key whose value does not deserialise (or that is unknown) is reported, removed, and
/// the table read again. The value comes back only when what is left deserialises; the errors
/// are every one found. A required key that was removed is not reported a second time as
/// missing.
pub fn deserialize_section_all<T: serde::de::DeserializeOwned>(
    value: &Spanned<toml::de::DeValue<'_>>,
    key: &str,
) -> (Option<T>, Vec<SectionError>) {
    let mut table = value.clone();
    let mut removed: Vec<String> = Vec::new();
    let mut errors = Vec::new();
    loop {
        let failed = match deserialize_section::<T>(&table, key) {
            Ok(v) => return (Some(v), errors),
            Err(e) => e,
        };
        let below = failed
            .1
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('.'))
            .map(|rest| rest.split(['.', '[']).next().unwrap_or(rest).to_string());
        if let Some(missing) = missing_field(&failed.2)
            && removed.iter().any(|r| r == missing)
        {
            return (None, errors);
        }
        let toml::de::DeValue::Table(entries) = table.get_mut() else {
            errors.push(failed);
            return (None, errors);
        };
        match below.filter(|k| entries.contains_key(k.as_str())) {
            Some(k) => {
                entries.remove(k.as_str());
                removed.push(k);
                errors.push(failed);
            }
            None => {
                errors.push(failed);
                return (None, errors);
            }
        }
    }
}

/// The key named by serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
}

/// serde's "unknown field `x`, expected ..." or "unknown variant `x`, expected ..." with a "did
/// you mean" added when one of the expected names is close to `x`; other messages unchanged.
pub fn suggest(message: &str) -> String {
    let Some(rest) = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))
    else {
        return message.to_string();
    };
    let Some((word, tail)) = rest.split_once('`') else {
        return message.to_string();
    };
    let Some((_, expected)) = tail.split_once("expected ") else {
        return message.to_string();
    };
    let candidates = expected.split('`').skip(1).step_by(2);
    match closest(word, candidates) {
        Some(near) => {
            let head = &message[..message.len() - tail.len()];
            format!("{head} (did you mean `{near}`?){tail}")
        }
        None => message.to_string(),
    }
}

/// "unknown key `x`" followed by `place`, with a "did you mean" when an expected key is close, and the
/// expected keys: for tables whose keys are checked by hand rather than by serde.
pub fn unknown_key(key: &str, place: &str, expected: &[&str]) -> String {
    let list = expected.join(", ");
    match closest(key, expected.iter().copied()) {
        Some(near) => {
            format!("unknown key `{key}`{place}: did you mean `{near}`? (expected one of: {list})")
        }
        None => format!("unknown key `{key}`{place}; expected one of: {list}"),
    }
}

/// The candidate nearest to `word` when it is near enough to be a typo of it: at most one edit
/// for short words, two up to eight characters, three beyond (a transposition is one edit).
/// `None` when nothing is that close.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = match word.chars().count() {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`: the
/// optimal-string-alignment distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The key path as the operator wrote it: `serde_spanned` wraps values it keeps spans for in a
/// private field, whose name must not reach an error message (`sink[0].min_severity`, not
/// `sink[0].$__serde_spanned_private_value.min_severity`).
fn readable_path(path: &str) -> String {
    const SPANNED: &str = "$__serde_spanned_private_value";
    path.split('.')
        .filter(|part| *part != SPANNED)
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spanned_wrappers_leave_the_key_path() {
        assert_eq!(
            readable_path("$__serde_spanned_private_value.min_severity"),
            "min_severity"
        );
        assert_eq!(
            readable_path("[0].$__serde_spanned_private_value.credentials.type"),
            "[0].credentials.type"
        );
        assert_eq!(readable_path("poll.alerts"), "poll.alerts");
    }

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        let keys = ["name", "region", "min_severity", "clusters", "sink"];
        assert_eq!(closest("regoin", keys), Some("region"));
        assert_eq!(closest("min_severty", keys), Some("min_severity"));
        assert_eq!(closest("sinks", keys), Some("sink"));
        assert_eq!(closest("Name", keys), Some("name"));
        assert_eq!(closest("colour", keys), None);
        assert_eq!(closest("x", keys), None);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn serde_unknown_names_get_a_did_you_mean() {
        assert_eq!(
            suggest("unknown field `regoin`, expected one of `name`, `region`"),
            "unknown field `regoin` (did you mean `region`?), expected one of `name`, `region`"
        );
        assert_eq!(
            suggest("unknown variant `hihg`, expected `high` or `low`"),
            "unknown variant `hihg` (did you mean `high`?), expected `high` or `low`"
        );
        let far = "unknown field `colour`, expected one of `name`, `region`";
        assert_eq!(suggest(far), far);
        assert_eq!(
            suggest("invalid type: integer `5`"),
            "invalid type: integer `5`"
        );
    }

    fn table(text: &str) -> Spanned<toml::de::DeValue<'_>> {
        toml::de::DeValue::parse(text).unwrap()
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Two {
        name: String,
        port: Option<u16>,
        lang: Option<String>,
    }

    #[test]
    fn every_failing_key_of_a_table_is_reported() {
        let doc = table("{ name = \"a\", colour = 1, port = \"x\", lang = \"en\" }");
        let (value, errors) = deserialize_section_all::<Two>(&doc, "source[0]");
        let keys: Vec<&str> = errors.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(keys, ["source[0].colour", "source[0].port"], "{errors:?}");
        assert_eq!(value.map(|v| v.lang), Some(Some("en".into())));
        // A required key that fails is reported once, not again as missing.
        let doc = table("{ name = 5, nmae = \"a\" }");
        let (value, errors) = deserialize_section_all::<Two>(&doc, "t");
        assert!(value.is_none());
        let messages: Vec<&str> = errors.iter().map(|e| e.2.as_str()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages.iter().all(|m| !m.starts_with("missing")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("did you mean `name`")),
            "{messages:?}"
        );
    }
}
