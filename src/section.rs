//! One TOML section read on its own, so that an error in it does not hide errors elsewhere and
//! every error names its place: the span, and the dotted key path below the section
//! (`source[0].credentials.type`). Shared by [`crate::config`] and [`crate::routing`], which
//! read different sections of the same document. A leaf: imports nothing of ours.

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
            inner.message().to_string(),
        )
    })
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
}
