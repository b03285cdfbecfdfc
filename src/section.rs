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
        let path = e.path().to_string();
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
