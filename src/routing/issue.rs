//! [`Issue`]: one problem found while compiling routing config, with the byte span of the
//! offending text (so the config loader can print file:line:col) and its dotted key.

use std::fmt;
use std::ops::Range;

use serde_spanned::Spanned;

/// How bad an issue is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// The config is rejected.
    Error,
    /// The config works, but probably not as meant.
    Warning,
}

/// One problem in routing config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// Byte range in the config text, when known.
    pub span: Option<Range<usize>>,
    /// Dotted key, e.g. `route[2].routes[0].matchers[1]`.
    pub key: String,
    /// What is wrong (lowercase, no trailing period).
    pub message: String,
    /// Error or warning.
    pub level: Level,
}

impl Issue {
    /// An error.
    pub fn error(span: Option<Range<usize>>, key: impl Into<String>, message: String) -> Issue {
        Issue {
            span,
            key: key.into(),
            message,
            level: Level::Error,
        }
    }

    /// A warning.
    pub fn warning(span: Option<Range<usize>>, key: impl Into<String>, message: String) -> Issue {
        Issue {
            span,
            key: key.into(),
            message,
            level: Level::Warning,
        }
    }

    /// An error at a spanned value.
    pub fn at<T>(v: &Spanned<T>, key: impl Into<String>, message: String) -> Issue {
        Issue::error(Some(v.span()), key, message)
    }

    /// Whether it is an error.
    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.key, self.message)
    }
}
