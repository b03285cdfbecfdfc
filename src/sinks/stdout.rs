//! The stdout sink: one line per event on standard output — a human line
//! ([`payload::text_line`], control characters removed) or the JSON document
//! ([`payload::to_json`]). For `kubectl logs`, journald and trying sasrelay out.
//!
//! The write happens on the blocking pool (a full pipe must not stall the runtime). A failed
//! write (a closed pipe) is `Retry`: the event stays in the outbox.

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use super::{Outcome, payload};
use crate::event::Payload;

/// Keys of `type = "stdout"`, besides the common ones.
pub const KEYS: [&str; 1] = ["format"];

/// `type = "stdout"`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// Line format; default `text`.
    #[serde(default)]
    pub format: StdoutFormat,
}

/// `format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StdoutFormat {
    /// One human line per event.
    #[default]
    Text,
    /// The `sasrelay.event.v1` document, one per line.
    Json,
}

type Output = Arc<Mutex<Box<dyn Write + Send>>>;

/// A configured stdout sink.
#[derive(Clone)]
pub struct StdoutSink {
    format: StdoutFormat,
    out: Output,
}

impl fmt::Debug for StdoutSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StdoutSink")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl StdoutSink {
    /// A sink writing to the process's standard output.
    pub fn new(c: &StdoutConfig) -> StdoutSink {
        StdoutSink {
            format: c.format,
            out: Arc::new(Mutex::new(Box::new(std::io::stdout()))),
        }
    }

    /// The same sink writing to `out` instead (tests, embedding).
    pub fn with_output(mut self, out: impl Write + Send + 'static) -> StdoutSink {
        self.out = Arc::new(Mutex::new(Box::new(out)));
        self
    }

    /// The line written for `payload`, without the newline. Pure.
    pub fn render(&self, payload: &Payload) -> String {
        match self.format {
            StdoutFormat::Text => payload::text_line(payload),
            StdoutFormat::Json => payload::to_json(payload),
        }
    }

    /// Writes one line and flushes.
    pub async fn deliver(&self, payload: &Payload) -> Outcome {
        let mut line = self.render(payload);
        line.push('\n');
        let out = Arc::clone(&self.out);
        let written = tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a half-written line that matters more
            // than losing the sink; keep writing.
            let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
            out.write_all(line.as_bytes())?;
            out.flush()
        })
        .await;
        match written {
            Ok(Ok(())) => Outcome::Delivered {
                detail: "written to stdout".into(),
            },
            Ok(Err(e)) => Outcome::Retry {
                after: None,
                reason: format!("cannot write to stdout: {e}"),
            },
            Err(e) => Outcome::Retry {
                after: None,
                reason: format!("stdout writer failed: {e}"),
            },
        }
    }
}
