//! The Python peers some tests talk to: the official Security Center SDK (a client of the
//! simulator) and aiosmtpd (the SMTP server of the email tests).
//!
//! Each peer lives in a venv under `target/` that its `tests/<peer>/setup.sh` creates on first
//! use (pip, from PyPI), once per test run; an environment variable can name a ready python
//! instead (`.ci/run` prepares both venvs and sets both). A peer that cannot be set up fails
//! every test that needs it with the reason: a peer-backed test never passes without its peer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A Python peer: where its python comes from and how to make one.
struct Peer {
    /// What the peer is, for messages.
    what: &'static str,
    /// Names a python that already has the peer's packages; skips the setup.
    var: &'static str,
    /// The script that creates the venv (idempotent), relative to the crate root.
    setup: &'static str,
    /// The venv the script creates, relative to the crate root.
    venv: &'static str,
    /// The python once found or set up, or why not; the first test to ask sets it up and the
    /// others wait for it.
    ready: OnceLock<Result<PathBuf, String>>,
}

static SDK: Peer = Peer {
    what: "the official Python SDK (alibabacloud-sas20181203)",
    var: "SASRELAY_SDK_PYTHON",
    setup: "tests/sdk/setup.sh",
    venv: "target/sdk-venv",
    ready: OnceLock::new(),
};

static SMTP: Peer = Peer {
    what: "the SMTP server (aiosmtpd with trustme)",
    var: "SASRELAY_SMTP_PYTHON",
    setup: "tests/smtp/setup.sh",
    venv: "target/smtp-venv",
    ready: OnceLock::new(),
};

/// A python with the official SDK installed; panics with the reason when there is none.
pub fn sdk_python() -> PathBuf {
    SDK.python()
}

/// A python with aiosmtpd and trustme installed; panics with the reason when there is none.
pub fn smtp_python() -> PathBuf {
    SMTP.python()
}

/// The crate root: the scripts and venvs are found from it.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

impl Peer {
    fn python(&self) -> PathBuf {
        match self.ready.get_or_init(|| self.set_up()) {
            Ok(python) => python.clone(),
            Err(why) => panic!("{why}"),
        }
    }

    fn set_up(&self) -> Result<PathBuf, String> {
        if let Some(python) = std::env::var_os(self.var) {
            return Ok(PathBuf::from(python));
        }
        let out = Command::new("bash")
            .arg(root().join(self.setup))
            .output()
            .map_err(|e| {
                format!(
                    "cannot run `bash {}` to set up {}: {e}",
                    self.setup, self.what
                )
            })?;
        if !out.status.success() {
            return Err(format!(
                "{what} is not available: `bash {setup}` failed ({status}). It needs python3 with \
                 the venv module and PyPI (pip); or set {var} to a python that has the packages. \
                 To run the rest without them, skip them by name: `cargo test -- --skip NAME`.\n{stdout}{stderr}",
                what = self.what,
                setup = self.setup,
                status = out.status,
                var = self.var,
                stdout = String::from_utf8_lossy(&out.stdout),
                stderr = String::from_utf8_lossy(&out.stderr),
            ));
        }
        Ok(root().join(self.venv).join("bin/python"))
    }
}
