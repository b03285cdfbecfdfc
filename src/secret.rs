//! Secrets: how they are written in config and how they are held in memory.
//!
//! A [`SecretRef`] is what the operator writes (`{ env = "SAS_SK" }` or `{ file = "/run/secrets/sk" }`);
//! resolving it yields a [`Secret`], whose `Debug` and `Display` never show the value. Nothing in the
//! crate logs a `Secret`; the only way to read it is [`Secret::expose`], which is greppable.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// A secret value held in memory. `Debug`/`Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value that must never be printed.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The raw value, for signing and authentication only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a secret comes from, as written in config. Inline values are deliberately not supported:
/// a config file is often checked in or printed, a secret must not be.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged, deny_unknown_fields)]
pub enum SecretRef {
    /// `{ env = "NAME" }`: read from an environment variable.
    Env {
        /// Variable name.
        env: String,
    },
    /// `{ file = "/path" }`: read from a file; one trailing newline is stripped.
    File {
        /// Path to the file (systemd `LoadCredential=`, Kubernetes secret mounts).
        file: PathBuf,
    },
}

/// Why a secret could not be read. Never contains the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The variable is unset or empty.
    #[error("environment variable {0} is not set or empty")]
    EnvMissing(String),
    /// The file could not be read.
    #[error("cannot read secret file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error text.
        reason: String,
    },
    /// The file exists but holds nothing.
    #[error("secret file {0} is empty")]
    FileEmpty(PathBuf),
}

impl SecretRef {
    /// Reads the secret now, from the process environment or the file system.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        self.resolve_with(|k| std::env::var(k).ok())
    }

    /// Like [`SecretRef::resolve`], with an injectable environment (tests).
    pub fn resolve_with(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env { env: name } => match env(name) {
                Some(v) if !v.is_empty() => Ok(Secret(v)),
                _ => Err(SecretError::EnvMissing(name.clone())),
            },
            SecretRef::File { file } => {
                let text = std::fs::read_to_string(file).map_err(|e| SecretError::File {
                    path: file.clone(),
                    reason: e.to_string(),
                })?;
                let text = text.strip_suffix('\n').unwrap_or(&text);
                let text = text.strip_suffix('\r').unwrap_or(text);
                if text.is_empty() {
                    return Err(SecretError::FileEmpty(file.clone()));
                }
                Ok(Secret(text.to_string()))
            }
        }
    }

    /// Makes a relative `file` path relative to `base` (the config file's directory), so a
    /// config means the same thing whatever directory the daemon is started from.
    pub fn anchor(&mut self, base: &std::path::Path) {
        if let SecretRef::File { file } = self
            && file.is_relative()
        {
            *file = base.join(&*file);
        }
    }

    /// A description safe to log: where the secret comes from, never what it is.
    pub fn describe(&self) -> String {
        match self {
            SecretRef::Env { env } => format!("env {env}"),
            SecretRef::File { file } => format!("file {}", file.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn env_secret_resolves_and_reports_missing() {
        let r = SecretRef::Env { env: "SK".into() };
        let ok = r.resolve_with(|k| (k == "SK").then(|| "v".to_string()));
        assert_eq!(ok.unwrap().expose(), "v");
        assert_eq!(
            r.resolve_with(|_| Some(String::new())),
            Err(SecretError::EnvMissing("SK".into()))
        );
    }

    #[test]
    fn file_secret_strips_one_newline_and_rejects_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sk");
        std::fs::write(&p, "abc\n\n").unwrap();
        let r = SecretRef::File { file: p.clone() };
        assert_eq!(r.resolve().unwrap().expose(), "abc\n");
        std::fs::write(&p, "\n").unwrap();
        assert_eq!(r.resolve(), Err(SecretError::FileEmpty(p.clone())));
        let missing = SecretRef::File {
            file: dir.path().join("nope"),
        };
        assert!(matches!(missing.resolve(), Err(SecretError::File { .. })));
    }

    #[test]
    fn config_shapes_parse_and_unknown_keys_fail() {
        #[derive(Deserialize)]
        struct W {
            s: SecretRef,
        }
        let w: W = toml::from_str("s = { env = \"X\" }").unwrap();
        assert_eq!(w.s, SecretRef::Env { env: "X".into() });
        let w: W = toml::from_str("s = { file = \"/a\" }").unwrap();
        assert_eq!(w.s.describe(), "file /a");
        assert!(toml::from_str::<W>("s = \"inline\"").is_err());
        assert!(toml::from_str::<W>("s = { env = \"X\", extra = 1 }").is_err());
    }
}
