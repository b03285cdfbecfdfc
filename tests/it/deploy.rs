//! The shipped deployment files are correct: the systemd unit passes `systemd-analyze verify`
//! (with ExecStart pointing at the binary under test) and scores at most 2.0, and the
//! Dockerfile copies the tree `deploy/static/build.sh` stages and runs it as a non-root user
//! with the state directory as a volume.

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

/// The image is the static binary's staged tree on an empty base (`deploy/static/build.sh`
/// stages it; `deploy/static/check.sh`, run by CI, runs the binary from it under chroot as the
/// image's user). This checks the Dockerfile's promises against what the script stages.
#[test]
fn dockerfile_copies_the_staged_tree_and_runs_it_unprivileged() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(
        froms,
        ["FROM scratch"],
        "one stage on an empty base: nothing to pin or patch"
    );
    assert!(text.contains("USER 10001:10001"));
    assert!(text.contains("VOLUME [\"/var/lib/sasrelay\"]"));
    let build = std::fs::read_to_string(root().join("deploy/static/build.sh")).unwrap();
    for staged in [
        "usr/local/bin",
        "etc/ssl/certs",
        "etc/sasrelay",
        "var/lib/sasrelay",
        "sasrelay:x:10001:10001",
    ] {
        assert!(build.contains(staged), "build.sh does not stage {staged}");
    }
    // Everything copied comes from the staged tree, which .dockerignore lets through.
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "!target/static/rootfs/"));
    for line in text.lines().filter(|l| l.starts_with("COPY ")) {
        let sources: Vec<&str> = line
            .split_whitespace()
            .skip(1)
            .filter(|p| !p.starts_with("--"))
            .collect();
        for src in &sources[..sources.len() - 1] {
            assert!(src.starts_with("target/static/rootfs/"), "{line}");
        }
    }
    // The health check runs a subcommand the binary has.
    assert!(text.contains("HEALTHCHECK "));
    assert!(
        text.lines().any(|l| l
            .trim_start()
            .starts_with("CMD [\"/usr/local/bin/sasrelay\", \"healthcheck\"")),
        "a HEALTHCHECK that runs `sasrelay healthcheck`"
    );
    let help = Command::new(env!("CARGO_BIN_EXE_sasrelay"))
        .args(["healthcheck", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success(), "{help:?}");
}
