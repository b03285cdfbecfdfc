//! The systemd unit's sandbox, proven on the real binary: `systemd/sasrelay.service`'s syscall
//! filter (`@system-service` less `@privileged @resources`, EPERM otherwise), its address
//! families and `MemoryDenyWriteExecute`, loaded as systemd would load them by
//! `tests/seccomp/under_unit.py` (systemd is not PID 1 here), around a daemon that starts,
//! polls every domain and delivers. A call the filter refuses that the daemon needed shows up
//! as a poll or a delivery that never happens, an error in its log, or a failed exit.
//!
//! Needs Debian's `python3-seccomp` under `/usr/bin/python3` and `systemd-analyze`
//! (`.ci/run` installs them); without them the tests fail and say so.

use std::process::Command;
use std::time::Duration;

use crate::support::*;
use sasrelay::simulator::{Domain, SimConfig, Simulator};
use serde_json::json;

const T: Duration = Duration::from_secs(60);
const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/sasrelay.service");
const WRAPPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/seccomp/under_unit.py");
const PYTHON: &str = "/usr/bin/python3";

/// `program` under the unit's sandbox.
fn under_unit(program: &std::path::Path) -> Command {
    let ok = Command::new(PYTHON)
        .args(["-c", "import seccomp"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{PYTHON} cannot import seccomp: install Debian's python3-seccomp (.ci/run does)"
    );
    let mut cmd = Command::new(PYTHON);
    cmd.arg(WRAPPER).arg(UNIT).arg("--").arg(program);
    cmd
}

/// The sandbox is real: under it, a call `@resources` holds, a packet socket and a writable
/// executable mapping are refused the way systemd refuses them, and an INET socket is not.
#[test]
fn the_wrapper_refuses_what_the_unit_refuses() {
    let probe = r#"
import errno, mmap, os, socket
def attempt(f):
    try:
        f()
        return "allowed"
    except OSError as e:
        return errno.errorcode[e.errno]
print(attempt(lambda: os.setpriority(os.PRIO_PROCESS, 0, 5)),
      attempt(lambda: socket.socket(17, socket.SOCK_RAW)),
      attempt(lambda: mmap.mmap(-1, 4096, prot=7)),
      attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()))
"#;
    let out = under_unit(PYTHON.as_ref())
        .args(["-c", probe])
        .output()
        .expect("run the wrapper");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "EPERM EAFNOSUPPORT EPERM allowed",
        "{stderr}"
    );
    assert!(stderr.contains("allow-list of"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_polls_and_delivers_under_the_units_syscall_filter() {
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator");
    let hook = Hook::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (endpoint, url, state) = (sim.endpoint(), hook.url(), dir.path().join("state"));
    let config = ConfigSpec::new(&endpoint, &url, &state).write(&dir.path().join("sasrelay.toml"));

    let mut cmd = under_unit(&daemon_binary());
    cmd.args(["--log-format", "json", "run", "--config"])
        .arg(&config);
    let mut daemon = Daemon::spawn_command(cmd);
    // A poll of every domain, each delivered: the four first-start summaries.
    hook.wait_delivered(4, T).await;
    let alert = sim
        .add_finding(Domain::Alert, None, json!({}))
        .expect("add an alert")["Id"]
        .as_i64()
        .expect("Id");
    let id = format!("alert:{alert}");
    hook.wait_for(&format!("the new alert {id}"), T, |r| {
        r.iter().any(|x| x.delivered() && x.finding_id() == id)
    })
    .await;

    // The filter is on the daemon itself (the wrapper exec'd it in place).
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid)).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(field("Seccomp:"), "2", "not in seccomp filter mode");
    assert_eq!(field("Seccomp_filters:"), "2");
    assert!(
        field("NoNewPrivs:") == "1",
        "no_new_privs is not set: {status}"
    );

    let exit = daemon.terminate(T).await;
    assert!(exit.success(), "{exit}");
    let lines = daemon.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("under_unit.py: seccomp loaded")),
        "the wrapper did not say what it loaded"
    );
    let refused: Vec<&String> = lines
        .iter()
        .filter(|l| {
            l.contains("\"level\":\"ERROR\"")
                || l.contains("Operation not permitted")
                || l.contains("os error 1)")
        })
        .collect();
    assert!(refused.is_empty(), "refused under the filter: {refused:#?}");
    assert_each_once(&hook.requests());
}
