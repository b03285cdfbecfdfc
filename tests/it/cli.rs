//! The real `sasrelay` binary against the in-process simulator: `check --online` with good,
//! wrong, unknown and denied credentials, `check` on an invalid file, and `findings` as JSON
//! lines and as a terminal-safe table under a header. [`shell`]: completions, man pages, the
//! configuration path and closed pipes.
//!
//! The binary runs as a child process (on a blocking thread, so the simulator keeps serving);
//! expected values come from the simulator's own records.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use sasrelay::simulator::{
    DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET, Domain as SimDomain, SimConfig, SimCredential,
    SimHandle, Simulator,
};
use serde_json::{Value, json};
use tempfile::TempDir;
use time::OffsetDateTime;

use crate::support::{Daemon, SECRET_ENV};

mod shell;

const DOMAINS: [&str; 4] = ["alerts", "vulnerabilities", "baseline", "firewall"];
const HANDLED_VULN: [i64; 6] = [7, 8, 9, 10, 11, 20];

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A config of one source named `sim` reading the simulator with the given AccessKey ID (the
/// secret comes from `SIM_SK`), and what `run` (so `check`) needs besides: a state directory and
/// a sink.
fn sim_config(sim: &SimHandle, access_key_id: &str) -> String {
    format!(
        r#"[[source]]
name = "sim"
endpoint = "{}"
region = "cn-hangzhou"
max_attempts = 2
retry_initial_delay = "5ms"
retry_max_delay = "20ms"
credentials = {{ type = "access_key", access_key_id = "{access_key_id}", access_key_secret = {{ env = "SIM_SK" }} }}

{DAEMON}"#,
        sim.base_url()
    )
}

/// `[state]` and a sink: the rest of a file `run` starts with.
const DAEMON: &str =
    "[state]\ndirectory = \"state\"\n\n[[sink]]\nname = \"out\"\ntype = \"stdout\"\n";

fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `args` and `SIM_SK=secret`, without blocking the simulator's runtime.
async fn sasrelay(args: &[&str], secret: &str) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sasrelay"));
    cmd.args(args)
        .env("SIM_SK", secret)
        .env_remove("SASRELAY_LOG")
        .env("NO_COLOR", "1");
    let out: Output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The line of `check --online` output about `domain`.
fn domain_line<'a>(run: &'a Run, domain: &str) -> &'a str {
    run.stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{domain} ")))
        .unwrap_or_else(|| panic!("no line for {domain}:\n{}", run.stdout))
}

/// The `N` of `... permitted: N open` for `domain`.
fn open_count(run: &Run, domain: &str) -> i64 {
    let line = domain_line(run, domain);
    line.split("reachable, authenticated, permitted: ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(" open"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{domain} not reported readable: {line}"))
}

/// Every `RequestId X` in `s` (X as printed).
fn request_ids(s: &str) -> Vec<&str> {
    s.match_indices("RequestId ")
        .map(|(i, m)| {
            s[i + m.len()..]
                .split(|c: char| c == ')' || c.is_whitespace())
                .next()
                .unwrap_or("")
        })
        .collect()
}

fn is_request_id(id: &str) -> bool {
    id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

fn pending_alerts(sim: &Simulator) -> BTreeSet<i64> {
    sim.findings(SimDomain::Alert)
        .iter()
        .filter(|r| int(&r["EventStatus"]) == 1)
        .map(|r| int(&r["Id"]))
        .collect()
}

fn firewall_since(sim: &Simulator, since: i64, until: i64) -> i64 {
    sim.findings(SimDomain::Firewall)
        .iter()
        .filter(|r| int(&r["LastTime"]) >= since && int(&r["FirstTime"]) <= until)
        .count() as i64
}

// --------------------------------------------------------------------------------- check --online

#[tokio::test]
async fn check_online_reports_every_domain_readable_with_the_simulators_counts() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let dir = TempDir::new().unwrap();
    let cfg = write(&dir, "sasrelay.toml", &sim_config(&sim, DEMO_ACCESS_KEY_ID));

    let alerts = pending_alerts(&sim).len() as i64;
    // The probe counts every configured vulnerability type: Linux (cve) and application
    // (app with AttachTypes=sca: web scanner and sca) by default.
    let vulns = sim
        .findings(SimDomain::Vuln)
        .iter()
        .filter(|r| {
            matches!(text(&r["Type"]), "cve" | "app" | "sca")
                && !HANDLED_VULN.contains(&int(&r["Status"]))
        })
        .count() as i64;
    // Baselines with a failed or verifying check.
    let risks: BTreeSet<i64> = sim
        .findings(SimDomain::Baseline)
        .iter()
        .filter(|w| matches!(int(&w["Status"]), 1 | 2))
        .map(|w| int(&w["RiskId"]))
        .collect();
    let before = now_ms();
    let firewall_most = firewall_since(&sim, before - 86_400_000, before);

    let run = sasrelay(
        &["check", "--config", path_str(&cfg), "--online"],
        DEMO_ACCESS_KEY_SECRET,
    )
    .await;
    let after = now_ms();
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("configuration OK (1 source, 1 sink)"),
        "{}",
        run.stdout
    );
    // What the source costs of the call budget at idle, before anything is called.
    assert!(
        run.stdout
            .contains("call budget: 5 calls a second per action; at idle at least"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("credentials: loaded (static_ak)"),
        "{}",
        run.stdout
    );
    assert_eq!(open_count(&run, "alerts"), alerts);
    assert_eq!(open_count(&run, "vulnerabilities"), vulns);
    assert_eq!(open_count(&run, "baseline"), risks.len() as i64);
    // The 24-hour window moved while the command ran; a record may have left it meanwhile.
    let firewall = open_count(&run, "firewall");
    let firewall_least = firewall_since(&sim, after - 86_400_000, after);
    assert!(
        (firewall_least..=firewall_most).contains(&firewall) && firewall > 0,
        "{firewall} not in {firewall_least}..={firewall_most}"
    );
    // One probe per domain (two vulnerability types), one page of one item each.
    assert_eq!(sim.calls().values().sum::<u64>(), 5, "{:?}", sim.calls());
}

#[tokio::test]
async fn check_online_explains_a_wrong_secret_an_unknown_key_and_a_denied_key() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut denied = SimCredential::new("sasrelay-denied", "denied-secret");
    denied.denied = true;
    sim.add_credential(denied).unwrap();
    let dir = TempDir::new().unwrap();

    struct Case {
        access_key_id: &'static str,
        secret: &'static str,
        verdict: &'static str,
        code: &'static str,
        hint: &'static str,
    }
    let cases = [
        Case {
            access_key_id: DEMO_ACCESS_KEY_ID,
            secret: "sasrelay-sim-secreT",
            verdict: "reachable, NOT AUTHENTICATED",
            code: "SignatureDoesNotMatch",
            hint: "the AccessKey secret is wrong for this AccessKey ID",
        },
        Case {
            access_key_id: "LTAI5tNobodyHere",
            secret: "whatever-secret",
            verdict: "reachable, NOT AUTHENTICATED",
            code: "InvalidAccessKeyId.NotFound",
            hint: "this AccessKey ID does not exist on this site",
        },
        Case {
            access_key_id: "sasrelay-denied",
            secret: "denied-secret",
            verdict: "reachable, authenticated, NOT PERMITTED",
            code: "Forbidden.RAM",
            hint: "AliyunYundunSASReadOnlyAccess",
        },
    ];
    for case in cases {
        let cfg = write(&dir, "check.toml", &sim_config(&sim, case.access_key_id));
        sim.reset_calls();
        let run = sasrelay(
            &["check", "--config", path_str(&cfg), "--online"],
            case.secret,
        )
        .await;
        let all = format!("{}\n{}", run.stdout, run.stderr);
        assert_eq!(run.code, Some(1), "{}: {all}", case.code);
        // Per domain: the verdict, then one indented line with the code, the RequestId and
        // the hint (service text such as the string-to-sign cannot break it up).
        let lines: Vec<&str> = run.stdout.lines().collect();
        for domain in DOMAINS {
            let line = domain_line(&run, domain);
            assert!(
                line.contains(case.verdict),
                "{} {domain}: {line}",
                case.code
            );
            let i = lines.iter().position(|l| *l == line).unwrap();
            let detail = lines.get(i + 1).copied().unwrap_or_default();
            assert!(
                detail.starts_with("    ")
                    && detail.contains(case.code)
                    && detail.contains("RequestId ")
                    && detail.contains(case.hint),
                "{} {domain}: {detail}",
                case.code
            );
        }
        assert!(
            !run.stdout.chars().any(|c| c.is_control() && c != '\n'),
            "{all}"
        );
        assert_eq!(
            run.stdout.matches(case.code).count(),
            4,
            "{}: {all}",
            case.code
        );
        assert!(run.stdout.contains(case.hint), "{}: {all}", case.code);
        let ids = request_ids(&run.stdout);
        assert_eq!(ids.len(), 4, "{}: {all}", case.code);
        assert!(ids.iter().all(|id| is_request_id(id)), "{ids:?}");
        assert!(
            run.stderr
                .contains("one or more sources cannot read Security Center"),
            "{all}"
        );
        assert!(!all.contains(case.secret), "the secret leaked: {all}");
        // A credential problem is not retried: one call per domain.
        assert_eq!(
            sim.calls().values().sum::<u64>(),
            4,
            "{}: {:?}",
            case.code,
            sim.calls()
        );
    }
}

// --------------------------------------------------------------------------- invalid config

#[tokio::test]
async fn an_invalid_config_exits_78_and_names_file_line_column_and_key_of_every_error() {
    let dir = TempDir::new().unwrap();
    let text = r#"[[source]]
name = "prod"
region = "mars-1"
clusters = ["prod-cluster"]
lang = "fr"
credentials = { type = "env" }

[[source]]
name = "prod"
region = "cn-hangzhou"
colour = "blue"
credentials = { type = "env" }

[extra]
x = 1
"#;
    let text = &format!("{text}\n{DAEMON}");
    let cfg = write(&dir, "bad.toml", text);
    let file = path_str(&cfg);
    let run = sasrelay(&["check", "--config", file], "unused").await;
    assert_eq!(run.code, Some(78), "{}\n{}", run.stdout, run.stderr);
    assert!(!run.stdout.contains("configuration OK"), "{}", run.stdout);

    let mut lines = run.stderr.lines();
    let header = lines.next().unwrap_or_default();
    let n: usize = header
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no error count: {}", run.stderr));
    assert!(header.ends_with("in configuration:"), "{header}");
    let errors: Vec<&str> = lines.map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(errors.len(), n, "{}", run.stderr);
    // Every error is `file:line:col: key: message` with a real position.
    for e in &errors {
        let rest = e
            .strip_prefix(&format!("{file}:"))
            .unwrap_or_else(|| panic!("not prefixed by the file: {e}"));
        let mut parts = rest.splitn(4, ": ");
        let pos = parts.next().unwrap();
        let (line, col) = pos.split_once(':').unwrap_or_else(|| panic!("{e}"));
        let (line, col): (usize, usize) = (line.parse().unwrap(), col.parse().unwrap());
        assert!(line >= 1 && col >= 1, "{e}");
        let key = parts.next().unwrap_or_default();
        let message = parts.collect::<Vec<_>>().join(": ");
        assert!(!key.is_empty() && !message.is_empty(), "{e}");
    }
    // The exact positions of the values at fault.
    let at = |needle: &str| position(text, needle);
    for (key, needle) in [
        ("source[0].region", "\"mars-1\""),
        ("source[0].clusters[0]", "\"prod-cluster\""),
        ("source[0].lang", "\"fr\""),
        ("extra", "extra]"),
    ] {
        let (line, col) = at(needle);
        let prefix = format!("{file}:{line}:{col}: {key}: ");
        assert!(
            errors.iter().any(|e| e.starts_with(&prefix)),
            "no `{prefix}` in\n{}",
            run.stderr
        );
    }
    assert!(
        errors
            .iter()
            .any(|e| e.contains(": source[1].") && e.contains("colour")),
        "{}",
        run.stderr
    );
    assert!(
        errors.iter().any(|e| e.contains("mars-1")),
        "{}",
        run.stderr
    );
}

/// Line and column (1-based) where `needle` first occurs in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in {text}"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

// ------------------------------------------------------------------- check builds what run builds

/// A file `run` would start with, but for `sink` (the `[[sink]]` table's lines) and `source`
/// (extra lines in the `[[source]]` table); the source's secret is the one [`Daemon`] sets.
fn daemon_config(state: &Path, source: &str, sink: &str) -> String {
    format!(
        r#"[[source]]
name = "prod"
region = "cn-hangzhou"
credentials = {{ type = "access_key", access_key_id = "LTAI", access_key_secret = {{ env = "{SECRET_ENV}" }} }}
{source}
[state]
directory = "{}"

[admin]
listen = "off"

[[sink]]
name = "soc"
type = "webhook"
{sink}
"#,
        state.display()
    )
}

/// The binary's exit code and stderr for `check` and for `run` on `cfg`, each with `envs`.
/// `run` is given 30 s to exit; a start would fail the test there.
async fn check_and_run(cfg: &Path, envs: &[(&str, &str)]) -> [(Option<i32>, String); 2] {
    let envs: Vec<(&str, &std::ffi::OsStr)> = envs.iter().map(|(k, v)| (*k, v.as_ref())).collect();
    let mut out = Vec::new();
    for command in ["check", "run"] {
        let args = [command.as_ref(), "--config".as_ref(), cfg.as_os_str()];
        let mut child = Daemon::spawn_args_env(&args, &envs);
        let status = child.wait_exit(Duration::from_secs(30)).await;
        out.push((status.code(), child.lines().join("\n")));
    }
    let run = out.pop().unwrap();
    let check = out.pop().unwrap();
    [check, run]
}

/// The `file:line:col: key: message` lines of `stderr`, sorted.
fn error_lines(stderr: &str, file: &str) -> Vec<String> {
    let mut lines: Vec<String> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(&format!("{file}:")))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// `(key, text)` pairs.
type Pairs = &'static [(&'static str, &'static str)];

#[tokio::test]
async fn check_and_run_refuse_the_same_files_with_the_same_errors_and_exit_78() {
    let dir = TempDir::new().unwrap();
    let state = dir.path().join("state");
    let hook = "url = \"http://127.0.0.1:9/hook\"";
    let whsec = "signing_secret = { env = \"SASRELAY_SOC_WHSEC\" }";
    // (case, file, the errors as (key, message start), the environment)
    let cases: [(&str, String, Pairs, Pairs); 4] = [
        (
            "unset sink secret",
            daemon_config(&state, "", "url = { env = \"SASRELAY_SOC_WEBHOOK_URL\" }"),
            &[(
                "sink[0].url",
                "sink \"soc\": environment variable SASRELAY_SOC_WEBHOOK_URL is not set",
            )],
            &[],
        ),
        (
            "malformed whsec_",
            daemon_config(&state, "", &format!("{hook}\n{whsec}")),
            &[(
                "sink[0].signing_secret",
                "sink \"soc\": env SASRELAY_SOC_WHSEC: is not `whsec_` followed by standard, padded base64",
            )],
            &[("SASRELAY_SOC_WHSEC", "whsec_n0t!base64")],
        ),
        (
            "unknown key in [[sink]]",
            daemon_config(&state, "", &format!("{hook}\nmin_severty = \"high\"")),
            &[(
                "sink[0].min_severty",
                "unknown key `min_severty` for a webhook sink (sink \"soc\"): did you mean `min_severity`?",
            )],
            &[],
        ),
        (
            "three errors in one [[source]]",
            daemon_config(
                &state,
                "lang = \"fr\"\npoll_intervall = \"30s\"\nmax_pages = \"many\"",
                hook,
            ),
            &[
                ("source[0].lang", "`fr` must be \"en\" or \"zh\""),
                ("source[0].poll_intervall", "unknown field `poll_intervall`"),
                ("source[0].max_pages", "invalid type: string \"many\""),
            ],
            &[],
        ),
    ];
    for (case, text, expected, envs) in cases {
        let cfg = dir.path().join("sasrelay.toml");
        std::fs::write(&cfg, &text).unwrap();
        let file = path_str(&cfg);
        let [(check_code, check), (run_code, run)] = check_and_run(&cfg, envs).await;
        assert_eq!(check_code, Some(78), "{case}: check\n{check}");
        assert_eq!(run_code, Some(78), "{case}: run\n{run}");
        let errors = error_lines(&check, file);
        assert_eq!(
            errors,
            error_lines(&run, file),
            "{case}: check and run differ"
        );
        assert_eq!(errors.len(), expected.len(), "{case}: {errors:#?}");
        for (key, message) in expected {
            // At the key's own line (the value, or the key when it is unknown).
            let name = key.rsplit('.').next().unwrap();
            let (line, _) = position(&text, &format!("\n{name} ="));
            let prefix = format!("{file}:{}:", line + 1);
            assert!(
                errors
                    .iter()
                    .any(|e| e.starts_with(&prefix) && e.contains(&format!(": {key}: {message}"))),
                "{case}: no `{prefix}…: {key}: {message}` in {errors:#?}"
            );
        }
        assert!(
            !check.contains("n0t!base64") && !run.contains("n0t!base64"),
            "{case}"
        );
        // `run` never started: the store was not even opened.
        assert!(!state.exists(), "{case}: run opened the store");
    }
}

#[tokio::test]
async fn a_source_that_cannot_load_its_credentials_warns_in_check_and_run_starts() {
    let dir = TempDir::new().unwrap();
    let state = dir.path().join("state");
    let text = daemon_config(&state, "", "url = \"http://127.0.0.1:9/hook\"").replace(
        &format!("{{ env = \"{SECRET_ENV}\" }}"),
        "{ env = \"SASRELAY_E2E_UNSET_SK\" }",
    );
    let cfg = dir.path().join("sasrelay.toml");
    std::fs::write(&cfg, &text).unwrap();
    let file = path_str(&cfg);
    let (line, col) = position(&text, "{ type = \"access_key\"");
    let warning = format!(
        "warning: {file}:{line}:{col}: source[0].credentials: source \"prod\" cannot load its credentials now"
    );

    let args = ["check".as_ref(), "--config".as_ref(), cfg.as_os_str()];
    let mut check = Daemon::spawn_args(&args);
    let status = check.wait_exit(Duration::from_secs(30)).await;
    let stderr = check.lines().join("\n");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&warning), "no `{warning}` in\n{stderr}");
    assert!(stderr.contains("SASRELAY_E2E_UNSET_SK"), "{stderr}");

    let mut run = Daemon::spawn(&cfg);
    run.wait_message("sasrelay running.", Duration::from_secs(30))
        .await;
    let warned = run.messages("The configuration has a warning");
    assert_eq!(warned.len(), 1, "{:?}", run.lines());
    assert!(
        warned[0]["warning"]
            .as_str()
            .is_some_and(|w| w.contains("source[0].credentials")),
        "{warned:?}"
    );
    let status = run.terminate(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0));
}

// ---------------------------------------------------------------------------------- findings

/// `findings --id`: one finding in full, with Security Center's detail — an alert's evidence
/// and the console's diagnosis (tracing), a baseline check's description and advice — found
/// when handled too, terminal-safe; an id no source lists exits 1 saying so.
#[tokio::test]
async fn findings_by_id_shows_one_finding_with_its_detail_and_diagnosis() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let hostile = sim
        .add_finding(
            SimDomain::Alert,
            None,
            json!({"EventStatus": 1, "AlarmEventNameDisplay": "evil\u{1b}[31mred\nsecond line"}),
        )
        .unwrap();
    let id = int(&hostile["Id"]);
    let dir = TempDir::new().unwrap();
    let cfg = write(&dir, "sasrelay.toml", &sim_config(&sim, DEMO_ACCESS_KEY_ID));
    let file = path_str(&cfg);
    let finding = format!("alert:{id}");

    let run = sasrelay(
        &[
            "findings", "--config", file, "--domain", "alerts", "--id", &finding,
        ],
        DEMO_ACCESS_KEY_SECRET,
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout
            .starts_with(&format!("{finding} (source sim) — ")),
        "{}",
        run.stdout
    );
    for section in [
        "kubernetes:",
        "Security Center detail:",
        "Diagnosis (the console's tracing data):",
    ] {
        assert!(run.stdout.contains(section), "no {section}\n{}", run.stdout);
    }
    assert!(
        run.stdout.chars().all(|c| c == '\n' || !c.is_control()),
        "a control character reached the terminal:\n{}",
        run.stdout
    );

    let run = sasrelay(
        &[
            "findings",
            "--config",
            file,
            "--domain",
            "alerts",
            "--id",
            &id.to_string(),
            "--json",
        ],
        DEMO_ACCESS_KEY_SECRET,
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let v: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(v["finding"]["id"], finding.as_str());
    assert_eq!(v["finding"]["title"], "evil\u{1b}[31mred\nsecond line");
    assert_eq!(int(&v["detail"]["Id"]), id, "{v}");
    assert_eq!(
        v["detail"]["AlarmUniqueInfo"], hostile["AlarmUniqueInfo"],
        "{v}"
    );
    assert!(
        v["diagnosis"]["CauseDetails"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "{v}"
    );

    // Handled (ignored) now: still found, by default within 7 days.
    sim.set_status(SimDomain::Alert, id, 2).unwrap();
    let run = sasrelay(
        &[
            "findings", "--config", file, "--domain", "alerts", "--id", &finding, "--json",
        ],
        DEMO_ACCESS_KEY_SECRET,
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let v: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(v["finding"]["status"], "resolved", "{v}");

    // A baseline check: its description and advice.
    let check = sim
        .findings(SimDomain::Baseline)
        .into_iter()
        .find(|w| int(&w["Status"]) == 1)
        .unwrap();
    let run = sasrelay(
        &[
            "findings",
            "--config",
            file,
            "--domain",
            "baseline",
            "--id",
            &format!("baseline:{}", int(&check["CheckWarningId"])),
            "--json",
        ],
        DEMO_ACCESS_KEY_SECRET,
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let v: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(v["detail"]["CheckId"], check["CheckId"], "{v}");
    assert!(v["detail"]["Advice"].is_string(), "{v}");

    let run = sasrelay(
        &[
            "findings",
            "--config",
            file,
            "--domain",
            "alerts",
            "--id",
            "alert:999999999",
        ],
        DEMO_ACCESS_KEY_SECRET,
    )
    .await;
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(
        run.stderr.contains("no source lists alert:999999999"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn findings_prints_json_lines_and_a_terminal_safe_table() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let hostile = sim
        .add_finding(
            SimDomain::Alert,
            None,
            json!({"EventStatus": 1, "AlarmEventNameDisplay": "evil\u{1b}[31mred\nsecond line"}),
        )
        .unwrap();
    let hostile_id = int(&hostile["Id"]);
    let want: BTreeSet<String> = pending_alerts(&sim)
        .into_iter()
        .map(|id| format!("alert:{id}"))
        .collect();
    assert!(want.contains(&format!("alert:{hostile_id}")));
    let dir = TempDir::new().unwrap();
    let cfg = write(&dir, "sasrelay.toml", &sim_config(&sim, DEMO_ACCESS_KEY_ID));
    let file = path_str(&cfg);

    let run = sasrelay(
        &["findings", "--config", file, "--domain", "alerts", "--json"],
        DEMO_ACCESS_KEY_SECRET,
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.iter().all(Value::is_object));
    let ids: Vec<String> = lines.iter().map(|f| text(&f["id"]).to_string()).collect();
    assert_eq!(ids.len(), want.len(), "each alert once");
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), want);
    let evil = lines
        .iter()
        .find(|f| f["id"] == format!("alert:{hostile_id}"))
        .unwrap();
    // JSON keeps the text as sent (escaped); only the terminal view strips it.
    assert_eq!(evil["title"], "evil\u{1b}[31mred\nsecond line");
    assert_eq!(evil["domain"], "alerts");
    assert_eq!(evil["status"], "active");
    assert_eq!(evil["source"], "sim");

    let run = sasrelay(
        &["findings", "--config", file, "--domain", "alerts"],
        DEMO_ACCESS_KEY_SECRET,
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        !run.stdout.contains('\u{1b}'),
        "an escape sequence reached the terminal"
    );
    assert!(
        run.stdout.chars().all(|c| c == '\n' || !c.is_control()),
        "a control character reached the terminal"
    );
    let (header, rows) = run.stdout.split_once('\n').unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["SEVERITY", "STATUS", "ID", "CLUSTER", "NAMESPACE", "TITLE"],
        "a header row first:\n{}",
        run.stdout
    );
    let rows: Vec<&str> = rows.lines().collect();
    assert_eq!(
        rows.len(),
        want.len(),
        "one row per finding under the header:\n{}",
        run.stdout
    );
    let row = rows
        .iter()
        .find(|r| r.contains(&format!("alert:{hostile_id} ")))
        .unwrap();
    let title = "evil [31mred second line";
    assert!(row.ends_with(title), "{row}");
    assert_eq!(
        row.chars().count() - title.chars().count(),
        header.find("TITLE").unwrap(),
        "the titles line up under TITLE:\n{header}\n{row}"
    );
    for id in &want {
        assert!(
            rows.iter().any(|r| r.contains(&format!("{id} "))),
            "{id} missing"
        );
    }
}

#[tokio::test]
async fn run_without_state_or_sinks_is_a_configuration_error() {
    let dir = TempDir::new().unwrap();
    let cfg = write(
        &dir,
        "sasrelay.toml",
        "[[source]]\nname = \"a\"\nregion = \"cn-hangzhou\"\ncredentials = { type = \"env\" }\n",
    );
    let run = sasrelay(&["run", "--config", path_str(&cfg)], "unused").await;
    assert_eq!(run.code, Some(78), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("no [state] section"), "{}", run.stderr);
}
