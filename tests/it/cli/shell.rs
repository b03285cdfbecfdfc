//! The CLI as an operator's shell meets it, through the real binary: completion scripts and
//! man pages generated from the parser's own definitions (bash parses and completes its
//! script; groff and man render every page without a warning, where they are installed), the
//! configuration path (`--config`, else `SASRELAY_CONFIG`, else `/etc/sasrelay/sasrelay.toml`),
//! `--version`, and output into a pipe whose reader is gone.
//!
//! Which commands exist comes from `sasrelay::cli::Cli` itself, so a new subcommand is checked
//! without editing this file.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use clap::CommandFactory;
use sasrelay::cli::{CONFIG_ENV, Cli, DEFAULT_CONFIG, EXIT_CONFIG};
use sasrelay::simulator::{
    DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET, InitialFindings, SimConfig, Simulator,
};
use tempfile::TempDir;

use super::{path_str, sim_config, write};

const SHELLS: [&str; 5] = ["bash", "zsh", "fish", "elvish", "powershell"];

/// The binary with a clean environment for what it reads: no log filter, no configuration
/// variable (a test sets it when it means to), no colour; the simulator's secret in `SIM_SK`.
fn sasrelay(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sasrelay"));
    cmd.args(args)
        .env_remove("SASRELAY_LOG")
        .env_remove(CONFIG_ENV)
        .env("NO_COLOR", "1")
        .env("SIM_SK", DEMO_ACCESS_KEY_SECRET);
    cmd
}

/// Runs `cmd` to the end on a blocking thread (the simulator keeps serving), within a minute.
async fn finish(mut cmd: Command) -> Output {
    let run = tokio::task::spawn_blocking(move || cmd.output());
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the command did not finish within a minute")
        .unwrap()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every command below the top as its words, depth first: `["silence"]`, `["silence", "add"]`…
fn command_paths() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands() {
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_string());
            out.push(path.clone());
            walk(sub, &path, out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), &[], &mut out);
    out
}

/// The commands (by path) that take `--config`.
fn config_commands() -> Vec<Vec<String>> {
    let top = Cli::command();
    command_paths()
        .into_iter()
        .filter(|path| {
            let mut cmd = &top;
            for word in path {
                cmd = cmd.find_subcommand(word).unwrap();
            }
            cmd.get_arguments().any(|a| a.get_id() == "config")
        })
        .collect()
}

/// A file `check` passes without the network: one source (its secret in `SIM_SK`), a state
/// directory and a stdout sink.
fn offline_config(dir: &TempDir) -> std::path::PathBuf {
    write(
        dir,
        "sasrelay.toml",
        r#"[[source]]
name = "prod"
endpoint = "http://127.0.0.1:9"
region = "cn-hangzhou"
credentials = { type = "access_key", access_key_id = "id", access_key_secret = { env = "SIM_SK" } }

[state]
directory = "state"

[[sink]]
name = "out"
type = "stdout"
"#,
    )
}

/// Whether `tool` runs. Under CI (`CI` set) a missing one fails the test instead: the page
/// must have been rendered there; elsewhere the skip is said on stderr.
fn installed(tool: &str) -> bool {
    let there = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !there {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is missing under CI: install groff-base and man-db to render the man pages"
        );
        eprintln!("note: {tool} is not installed; the man pages were not rendered with it");
    }
    there
}

// ------------------------------------------------------------------------------ completions

#[test]
fn every_shells_completion_script_names_every_command_and_bash_completes_them() {
    let names: BTreeSet<String> = command_paths().into_iter().flatten().collect();
    assert!(names.contains("dead-letters") && names.contains("completions"));
    let dir = TempDir::new().unwrap();
    for shell in SHELLS {
        let out = sasrelay(&["completions", shell]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for name in &names {
            assert!(script.contains(name.as_str()), "{shell}: `{name}` missing");
        }
        std::fs::write(dir.path().join(shell), &out.stdout).unwrap();
    }
    let bash = dir.path().join("bash");
    let parsed = Command::new("bash").arg("-n").arg(&bash).output().unwrap();
    assert!(parsed.status.success(), "{}", text(&parsed.stderr));
    assert!(parsed.stderr.is_empty(), "{}", text(&parsed.stderr));

    // Loaded into bash, the script completes words the way a user's Tab would.
    let complete = |words: &[&str]| -> Vec<String> {
        let script = format!(
            "source {}\nCOMP_WORDS=({})\nCOMP_CWORD={}\n_sasrelay sasrelay {} {}\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"",
            path_str(&bash),
            words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            words.len() - 1,
            format_args!("'{}'", words[words.len() - 1]),
            format_args!("'{}'", words[words.len() - 2]),
        );
        let out = Command::new("bash").arg("-c").arg(script).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        // Options come too where a word may be one; the words are what is checked.
        text(&out.stdout)
            .lines()
            .filter(|w| !w.starts_with('-') || words[words.len() - 1].starts_with('-'))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(complete(&["sasrelay", "sil"]), ["silence"]);
    assert_eq!(complete(&["sasrelay", "silence", "l"]), ["list"]);
    assert_eq!(complete(&["sasrelay", "findings", "--dom"]), ["--domain"]);
    assert_eq!(
        complete(&["sasrelay", "completions", ""]),
        ["bash", "elvish", "fish", "powershell", "zsh"]
    );
}

// ------------------------------------------------------------------------------------- man

/// groff's and man's complaints about `page` (empty when neither is installed): every
/// warning on, and man under `LANG=C`, where a raw UTF-8 byte would be an invalid character.
fn render_warnings(page: &Path) -> String {
    let mut said = String::new();
    if installed("groff") {
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(page)
            .output()
            .unwrap();
        assert!(out.status.success(), "groff failed on {}", page.display());
        said += &text(&out.stderr);
    }
    if installed("man") {
        let out = Command::new("man")
            .arg("-l")
            .arg(page)
            .env("MANPAGER", "cat")
            .env("LANG", "C")
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        assert!(out.status.success(), "man failed on {}", page.display());
        assert!(
            text(&out.stdout).contains("SYNOPSIS"),
            "{}",
            text(&out.stdout)
        );
        said += &text(&out.stderr);
    }
    said
}

#[test]
fn man_prints_the_top_page_and_writes_one_clean_page_per_command() {
    let out = sasrelay(&["man"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let top = text(&out.stdout);
    assert!(top.contains(".TH SASRELAY 1 "), "{top}");
    assert!(top.is_ascii(), "non-ASCII reaches man as raw bytes");
    for sub in Cli::command().get_subcommands() {
        let name = sub.get_name().replace('-', "\\-");
        assert!(top.contains(&format!("sasrelay\\-{name}(1)")), "{name}");
    }
    assert!(
        !top.contains("sasrelay\\-help(1)"),
        "a help page that is not written"
    );

    let dir = TempDir::new().unwrap();
    let pages = dir.path().join("man1");
    let out = sasrelay(&["man", "--dir", path_str(&pages)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut want: BTreeSet<String> = command_paths()
        .iter()
        .map(|p| format!("sasrelay-{}.1", p.join("-")))
        .collect();
    want.insert("sasrelay.1".into());
    let written: BTreeSet<String> = std::fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(written, want);
    let listed: BTreeSet<String> = text(&out.stdout)
        .lines()
        .map(|l| {
            Path::new(l)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(listed, want, "each file written is printed");
    assert_eq!(
        std::fs::read_to_string(pages.join("sasrelay.1")).unwrap(),
        top
    );
    for name in &want {
        let page = pages.join(name);
        let roff = std::fs::read_to_string(&page).unwrap();
        let title = name.trim_end_matches(".1").to_uppercase();
        assert!(roff.contains(&format!(".TH {title} 1 ")), "{name}");
        let said = render_warnings(&page);
        assert!(said.is_empty(), "{name}:\n{said}");
    }
    // The config option documents where its value comes from when not given.
    let findings = std::fs::read_to_string(pages.join("sasrelay-findings.1")).unwrap();
    assert!(findings.contains(CONFIG_ENV), "{findings}");
    assert!(findings.contains(DEFAULT_CONFIG), "{findings}");
}

#[test]
fn version_prints_the_crate_version() {
    let out = sasrelay(&["--version"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!("sasrelay {}\n", env!("CARGO_PKG_VERSION"))
    );
}

// ------------------------------------------------------------------------ the config path

#[test]
fn every_command_with_config_reads_the_variable_then_the_default() {
    let commands = config_commands();
    for must in [
        &["run"][..],
        &["check"],
        &["findings"],
        &["render"],
        &["send-test"],
        &["status"],
        &["reload"],
        &["healthcheck"],
        &["silence", "list"],
        &["dead-letters", "replay"],
        &["route", "test"],
    ] {
        assert!(
            commands.iter().any(|c| c == must),
            "{must:?} takes no --config"
        );
    }
    let top = Cli::command();
    for path in &commands {
        let mut cmd = &top;
        for word in path {
            cmd = cmd.find_subcommand(word).unwrap();
        }
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_id() == "config")
            .unwrap();
        assert_eq!(arg.get_long(), Some("config"), "{path:?}");
        assert_eq!(arg.get_short(), Some('c'), "{path:?}");
        assert_eq!(
            arg.get_env().and_then(|e| e.to_str()),
            Some(CONFIG_ENV),
            "{path:?}"
        );
        let defaults: Vec<_> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_str())
            .collect();
        assert_eq!(defaults, [Some(DEFAULT_CONFIG)], "{path:?}");
    }
}

#[test]
fn the_config_comes_from_the_flag_then_the_variable_then_the_default() {
    let dir = TempDir::new().unwrap();
    let cfg = offline_config(&dir);
    let file = path_str(&cfg);
    let missing = dir.path().join("nowhere.toml");

    // The variable alone.
    let out = sasrelay(&["check"]).env(CONFIG_ENV, file).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with(&format!("{file}: configuration OK")),
        "{}",
        text(&out.stdout)
    );

    // The flag wins over the variable.
    let out = sasrelay(&["check", "--config", file])
        .env(CONFIG_ENV, &missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // A variable naming nothing is said to be the variable's.
    let out = sasrelay(&["status"])
        .env(CONFIG_ENV, &missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(i32::from(EXIT_CONFIG)));
    let said = text(&out.stderr);
    assert!(
        said.contains(&format!("{} (from {CONFIG_ENV})", missing.display())),
        "{said}"
    );

    // Neither: the default path, named, with how to point elsewhere. (On a host where sasrelay
    // is installed the default exists, and this test cannot show the error.)
    assert!(
        !Path::new(DEFAULT_CONFIG).exists(),
        "{DEFAULT_CONFIG} exists on this machine: run this test where it does not"
    );
    for command in [
        &["check"][..],
        &["silence", "list"],
        &["findings", "--domain", "alerts"],
    ] {
        let out = sasrelay(command).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(i32::from(EXIT_CONFIG)),
            "{command:?}"
        );
        let said = text(&out.stderr);
        assert!(
            said.contains(&format!(
                "no configuration file at {DEFAULT_CONFIG} (the default"
            )),
            "{command:?}: {said}"
        );
        assert!(
            said.contains("--config FILE") && said.contains(&format!("{CONFIG_ENV}=FILE")),
            "{command:?}: {said}"
        );
    }

    // An empty variable is a usage error that names the variable.
    let out = sasrelay(&["check"]).env(CONFIG_ENV, "").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!("{CONFIG_ENV} is set but empty")),
        "{}",
        text(&out.stderr)
    );
}

// ------------------------------------------------------------------------------ closed pipes

/// Asserts `out` is a quiet end: status 0 and no panic.
fn quiet(what: &str, out: &Output) {
    let said = text(&out.stderr);
    assert!(
        !said.contains("panicked") && !said.contains("failed printing"),
        "{what}: {said}"
    );
    assert_eq!(out.status.code(), Some(0), "{what}: {said}");
}

#[tokio::test]
async fn a_reader_that_goes_away_ends_every_printing_command_quietly() {
    let sim = Simulator::start(SimConfig {
        initial: InitialFindings {
            alerts: 3000,
            ..SimConfig::default().initial
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = TempDir::new().unwrap();
    let cfg = write(&dir, "sasrelay.toml", &sim_config(&sim, DEMO_ACCESS_KEY_ID));
    let file = path_str(&cfg);

    // No reader at all (`| true`): the first write meets the closed pipe.
    let commands: [&[&str]; 11] = [
        &["completions", "bash"],
        &["completions", "zsh"],
        &["man"],
        &["--help"],
        &["--version"],
        &["check"],
        &["render", "--sink", "out", "--digest"],
        &["findings", "--domain", "alerts"],
        &["findings", "--domain", "alerts", "--json"],
        &["check", "--online"],
        &["route", "test", "--from-simulator", "200"],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = sasrelay(args);
        // The config through the variable: the pipe tests double as its end-to-end use.
        cmd.env(CONFIG_ENV, file).stdout(writer);
        let out = finish(cmd).await;
        quiet(&format!("{args:?} | true"), &out);
    }

    // A reader that takes one line and leaves (`| head -1`), from listings far larger than
    // the pipe (64 KiB) and the reader's buffer (8 KiB) hold, so the binary is still writing
    // when it goes.
    for args in [
        &["findings", "--domain", "alerts"][..],
        &["findings", "--domain", "alerts", "--json"],
    ] {
        let mut whole = sasrelay(args);
        whole.env(CONFIG_ENV, file);
        let whole = finish(whole).await;
        quiet(&format!("{args:?}"), &whole);
        assert!(
            whole.stdout.len() > 128 * 1024,
            "{args:?}: only {} bytes, the pipe could take them all",
            whole.stdout.len()
        );
        let first_line = text(&whole.stdout).lines().next().unwrap().to_string();

        let mut cmd = sasrelay(args);
        cmd.env(CONFIG_ENV, file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let head = tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            // The reader is dropped here: the pipe is closed.
            (line, child.wait_with_output().unwrap())
        });
        let (line, out) = tokio::time::timeout(Duration::from_secs(60), head)
            .await
            .expect("the command did not end after its reader left")
            .unwrap();
        assert_eq!(line.trim_end(), first_line, "{args:?}");
        quiet(&format!("{args:?} | head -1"), &out);
    }
}
