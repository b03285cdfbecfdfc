//! The shipped deployment files are correct: the systemd unit passes `systemd-analyze verify`
//! (with ExecStart pointing at the binary under test), and the Dockerfile builds the binary
//! this crate declares and runs it as a non-root user with the state directory as a volume.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string(root().join("systemd/sasrelay.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/sasrelay run --config"));
    assert!(
        unit.contains("RestartPreventExitStatus=78"),
        "a bad config must not restart-loop"
    );
    // Descriptors are bounded on purpose: the admin API's connection cap derives from it.
    let nofile = unit
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .expect("LimitNOFILE= in the unit");
    let nofile: u64 = nofile.trim().parse().expect("a number");
    assert!(
        nofile / 4 >= sasrelay::config::AdminSettings::default().max_connections as u64,
        "LimitNOFILE={nofile} would lower the admin connection cap below its default"
    );
    // `systemctl reload` sends SIGHUP, which reloads (tests/it/daemon/reload.rs), never kills.
    assert!(
        unit.contains("ExecReload=/bin/kill -HUP $MAINPID"),
        "systemctl reload must reach the daemon as SIGHUP"
    );
    // The daemon speaks sd_notify (tests/it/daemon/e2e.rs proves READY, WATCHDOG, STOPPING).
    for line in ["Type=notify", "NotifyAccess=main", "WatchdogSec="] {
        assert!(unit.contains(line), "{line}");
    }
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("sasrelay.service");
    std::fs::write(
        &local,
        unit.replace("/usr/bin/sasrelay", env!("CARGO_BIN_EXE_sasrelay")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&local)
        .output()
        .expect("systemd-analyze (package systemd) is needed to check the unit");
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The unit's sandbox scores at most 2.0 ("OK") in `systemd-analyze security` (the offline
/// scorer; `--threshold` is on its 0–100 scale). Its syscall filter is proven on the daemon in
/// `tests/it/daemon/seccomp.rs`.
#[test]
fn systemd_unit_exposure_is_at_most_two() {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(root().join("systemd/sasrelay.service"))
        .output()
        .expect("systemd-analyze (package systemd) is needed to score the unit");
    let text = String::from_utf8_lossy(&out.stdout);
    let overall = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall exposure in:\n{text}"));
    assert!(out.status.success(), "exposure above 2.0: {overall}");
    let score: f64 = overall
        .split(':')
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no score in {overall:?}"));
    assert!(score <= 2.0, "{overall}");
}

#[test]
fn dockerfile_builds_the_binary_and_runs_it_unprivileged() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let froms = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(froms >= 2, "multi-stage build expected");
    assert!(text.contains("cargo build --release --locked --bin sasrelay"));
    assert!(text.contains("USER 10001:10001"));
    assert!(text.contains("VOLUME [\"/var/lib/sasrelay\"]"));
    assert!(
        text.contains("ca-certificates"),
        "rustls uses the system roots"
    );
    // The health check runs a subcommand the binary has.
    let check = text
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with("CMD [\"/usr/local/bin/sasrelay\", \"healthcheck\"")
        })
        .expect("a HEALTHCHECK that runs `sasrelay healthcheck`");
    assert!(text.contains("HEALTHCHECK "), "{check}");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_sasrelay"))
        .args(["healthcheck", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success(), "{help:?}");
    // Every path the build copies exists in the repository.
    for line in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(root().join(src).exists(), "Dockerfile copies missing {src}");
        }
    }
}
