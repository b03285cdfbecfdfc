//! The file sink: appends the [`payload`] document of each event as one line to a JSON Lines
//! file.
//!
//! Each attempt opens the file (`O_APPEND | O_CREAT`, mode 0600 when it creates it), so a
//! rotated-away file is simply recreated; writes the line with one `write`; and, with
//! `fsync = true` (the default), syncs the data (and the directory when the file was created)
//! before reporting `Delivered`. If the previous line was left unterminated (a crash mid-write),
//! a newline is written first so the new line parses. If the write fails part-way, the file is
//! cut back to its previous length. Any IO error — a missing directory, permissions, a full
//! disk — is `Retry` with the OS reason: the event stays in the outbox until the file can take it.
//! A failed sync may leave the line in place, so a retry can duplicate it: readers deduplicate on
//! `id`, as with every at-least-once sink.
//!
//! An existing file keeps its permissions; sasrelay never widens or narrows them.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Outcome, payload};
use crate::event::Payload;

/// Keys of `type = "file"`, besides the common ones.
pub const KEYS: [&str; 2] = ["path", "fsync"];

/// `type = "file"`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The JSON Lines file.
    pub path: PathBuf,
    /// Sync every line to disk before reporting it delivered; default `true`.
    #[serde(default = "yes")]
    pub fsync: bool,
}

fn yes() -> bool {
    true
}

impl FileConfig {
    /// Semantic problems as `(key, message)`.
    pub fn check(&self) -> Vec<(String, String)> {
        let text = self.path.as_os_str().to_string_lossy();
        if text.trim().is_empty() {
            return vec![("path".into(), "is empty".into())];
        }
        if text.ends_with('/') {
            return vec![(
                "path".into(),
                format!("`{text}` names a directory; give a file path"),
            )];
        }
        Vec::new()
    }

    /// Makes a relative `path` relative to `base`.
    pub fn anchor(&mut self, base: &Path) {
        if self.path.is_relative() {
            self.path = base.join(&self.path);
        }
    }
}

/// A configured file sink.
#[derive(Clone, Debug)]
pub struct FileSink {
    path: PathBuf,
    fsync: bool,
}

impl FileSink {
    /// A sink appending to `c.path`. Nothing is opened until the first delivery.
    pub fn new(c: &FileConfig) -> FileSink {
        FileSink {
            path: c.path.clone(),
            fsync: c.fsync,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line (on the blocking pool).
    pub async fn deliver(&self, payload: &Payload) -> Outcome {
        let line = payload::to_json(payload);
        let path = self.path.clone();
        let fsync = self.fsync;
        let done =
            tokio::task::spawn_blocking(move || append_line(&path, line.as_bytes(), fsync)).await;
        let shown = self.path.display();
        match done {
            Ok(Ok(n)) => Outcome::Delivered {
                detail: format!("appended {n} bytes to {shown}"),
            },
            Ok(Err(e)) => Outcome::Retry {
                after: None,
                reason: format!("cannot append to {shown}: {e}"),
            },
            Err(e) => Outcome::Retry {
                after: None,
                reason: format!("writer for {shown} failed: {e}"),
            },
        }
    }
}

/// Appends `line` and a newline to `path` as described in the module doc; returns the bytes
/// written.
pub fn append_line(path: &Path, line: &[u8], fsync: bool) -> std::io::Result<usize> {
    let existed = path.symlink_metadata().is_ok();
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let before = file.metadata()?.len();
    let mut buf = Vec::with_capacity(line.len() + 2);
    if before > 0 {
        let mut last = [0u8];
        file.read_exact_at(&mut last, before - 1)?;
        if last[0] != b'\n' {
            buf.push(b'\n');
        }
    }
    buf.extend_from_slice(line);
    buf.push(b'\n');
    if let Err(e) = file.write_all(&buf) {
        // Best effort: do not leave half a line for the retry to follow.
        let _ = file.set_len(before);
        return Err(e);
    }
    if fsync {
        file.sync_data()?;
        if !existed && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
    }
    Ok(buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_terminate_a_torn_last_line_and_create_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.jsonl");
        append_line(&p, b"{\"a\":1}", true).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Simulate a crash mid-write.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"torn\":")
            .unwrap();
        append_line(&p, b"{\"b\":2}", false).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"torn\":\n{\"b\":2}\n");
    }

    #[test]
    fn check_rejects_empty_and_directory_paths() {
        let c = |p: &str| FileConfig {
            path: p.into(),
            fsync: true,
        };
        assert_eq!(c("").check().len(), 1);
        assert_eq!(c("/var/log/").check().len(), 1);
        assert!(c("/var/log/sasrelay.jsonl").check().is_empty());
        let mut rel = c("events.jsonl");
        rel.anchor(Path::new("/etc/sasrelay"));
        assert_eq!(rel.path, PathBuf::from("/etc/sasrelay/events.jsonl"));
    }
}
