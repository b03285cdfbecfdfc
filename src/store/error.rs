//! Store errors: one variant per failure an operator can act on, each naming the state
//! directory, plus `Io`/`Sled` fallbacks. Classification of sled's and the OS's errors lives
//! here so that `open` and every later call report a full disk or a lock the same way.

use std::io;
use std::path::{Path, PathBuf};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the directory's lock.
    #[error(
        "state directory {} is locked by another sasrelay process ({}) — two instances must not share a state directory",
        .dir.display(),
        pid_text(*.pid)
    )]
    Locked {
        /// The state directory.
        dir: PathBuf,
        /// The holder's pid, as it recorded it in `sasrelay.pid`, when known.
        pid: Option<u32>,
    },

    /// The directory cannot be created or written (permissions, read-only file system, a path
    /// component that is a file).
    #[error("state directory {} is not writable: {source}", .dir.display())]
    Unwritable {
        /// The state directory.
        dir: PathBuf,
        /// What the OS said.
        source: io::Error,
    },

    /// The files in the directory cannot be read back as a store.
    #[error(
        "state directory {} is corrupt ({detail}); stop sasrelay, move the directory aside and start again: sasrelay re-polls Security Center and deduplication falls back to Security Center's own ids and statuses",
        .dir.display()
    )]
    Corrupt {
        /// The state directory.
        dir: PathBuf,
        /// What was wrong, as far as it is known.
        detail: String,
    },

    /// The file system holding the directory is full (ENOSPC or a quota).
    #[error(
        "no space left on the file system holding state directory {} ({source}); free space — new findings are not accepted until then",
        .dir.display()
    )]
    DiskFull {
        /// The state directory.
        dir: PathBuf,
        /// What the OS said.
        source: io::Error,
    },

    /// The directory was written by a newer sasrelay whose store schema this build does not know.
    #[error(
        "state directory {} has store schema {found}, but this sasrelay supports schema {supported} at most; run the newer sasrelay or move the directory aside",
        .dir.display()
    )]
    NewerSchema {
        /// The state directory.
        dir: PathBuf,
        /// Schema version found on disk.
        found: u32,
        /// Newest schema this build supports.
        supported: u32,
    },

    /// A stored value could not be decoded or a value could not be encoded.
    #[error("state directory {}: {what}: {source}", .dir.display())]
    Codec {
        /// The state directory.
        dir: PathBuf,
        /// Which value (tree and key).
        what: String,
        /// The JSON error.
        source: serde_json::Error,
    },

    /// `reschedule` was given an entry for a different payload than the one stored at `seq`.
    #[error("outbox {sink} entry {seq} holds payload {stored}, not {given}")]
    WrongEntry {
        /// The sink.
        sink: String,
        /// The outbox sequence number.
        seq: u64,
        /// Payload id stored at `seq`.
        stored: String,
        /// Payload id the caller passed.
        given: String,
    },

    /// The store is closed: a [`Store::reopen`](super::Store::reopen) failed (its error said
    /// why); the next successful one opens it again.
    #[error("the store in {} is closed after a failed reopen; it opens again with the next successful reopen", .dir.display())]
    Closed {
        /// The state directory.
        dir: PathBuf,
    },

    /// Any other IO error.
    #[error("state directory {}: {source}", .dir.display())]
    Io {
        /// The state directory.
        dir: PathBuf,
        /// What the OS said.
        source: io::Error,
    },

    /// Any other sled error.
    #[error("state directory {}: sled: {source}", .dir.display())]
    Sled {
        /// The state directory.
        dir: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
}

fn pid_text(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_string(),
    }
}

/// Name of the file, inside the state directory, where the lock holder records its pid.
pub(crate) const PID_FILE: &str = "sasrelay.pid";

/// Classifies an OS error met while working in `dir`.
pub(crate) fn from_io(dir: &Path, source: io::Error) -> StoreError {
    let dir = dir.to_path_buf();
    // sled reports a held lock as `Other` with this text (config.rs, `try_lock`).
    if source.to_string().contains("could not acquire lock") {
        let pid = read_pid(&dir);
        return StoreError::Locked { dir, pid };
    }
    match source.kind() {
        io::ErrorKind::PermissionDenied
        | io::ErrorKind::ReadOnlyFilesystem
        | io::ErrorKind::NotADirectory => StoreError::Unwritable { dir, source },
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            StoreError::DiskFull { dir, source }
        }
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData => StoreError::Corrupt {
            dir,
            detail: source.to_string(),
        },
        _ => StoreError::Io { dir, source },
    }
}

/// Classifies a sled error met while working in `dir`.
pub(crate) fn from_sled(dir: &Path, source: sled::Error) -> StoreError {
    match source {
        sled::Error::Io(e) => from_io(dir, e),
        sled::Error::Corruption { at, .. } => StoreError::Corrupt {
            dir: dir.to_path_buf(),
            detail: match at {
                Some(at) => format!("sled found a bad checksum at {at}"),
                None => "sled found a bad checksum".to_string(),
            },
        },
        // At open, "unsupported" means the files disagree with this sled's format parameters:
        // for an operator that is the same situation as corruption.
        sled::Error::Unsupported(ref msg) => StoreError::Corrupt {
            dir: dir.to_path_buf(),
            detail: format!("sled cannot read its files: {msg}"),
        },
        other => StoreError::Sled {
            dir: dir.to_path_buf(),
            source: other,
        },
    }
}

pub(crate) fn read_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(e: io::Error) -> StoreError {
        from_io(Path::new("/var/lib/sasrelay"), e)
    }

    #[test]
    fn os_errors_map_to_what_an_operator_can_act_on() {
        let full = classify(io::Error::from_raw_os_error(28)); // ENOSPC
        assert!(matches!(full, StoreError::DiskFull { .. }), "{full:?}");
        assert!(
            full.to_string().starts_with(
                "no space left on the file system holding state directory /var/lib/sasrelay ("
            ),
            "{full}"
        );
        let quota = classify(io::Error::from_raw_os_error(122)); // EDQUOT
        assert!(matches!(quota, StoreError::DiskFull { .. }), "{quota:?}");
        for errno in [13, 30, 20] {
            // EACCES, EROFS, ENOTDIR
            let e = classify(io::Error::from_raw_os_error(errno));
            assert!(matches!(e, StoreError::Unwritable { .. }), "{errno}: {e:?}");
        }
        let other = classify(io::Error::from_raw_os_error(5)); // EIO
        assert!(matches!(other, StoreError::Io { .. }), "{other:?}");
    }

    #[test]
    fn sleds_lock_error_becomes_locked() {
        let dir = tempfile::tempdir().unwrap();
        let e = from_io(
            dir.path(),
            io::Error::other(format!(
                "could not acquire lock on {:?}: Os {{ code: 11, kind: WouldBlock }}",
                dir.path().join("db")
            )),
        );
        assert!(matches!(e, StoreError::Locked { pid: None, .. }), "{e:?}");
        assert!(e.to_string().contains("(pid unknown)"), "{e}");
        std::fs::write(dir.path().join(PID_FILE), "4242\n").unwrap();
        let e = from_io(dir.path(), io::Error::other("could not acquire lock on x"));
        assert!(e.to_string().contains("(pid 4242)"), "{e}");
    }

    #[test]
    fn sled_errors_are_classified() {
        let dir = Path::new("/d");
        let e = from_sled(dir, sled::Error::Io(io::Error::from_raw_os_error(28)));
        assert!(matches!(e, StoreError::DiskFull { .. }), "{e:?}");
        let e = from_sled(dir, sled::Error::Unsupported("bad".to_string()));
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
        let e = from_sled(dir, sled::Error::ReportableBug("bug".to_string()));
        assert!(matches!(e, StoreError::Sled { .. }), "{e:?}");
    }
}
