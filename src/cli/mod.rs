//! The command line: argument parsing, logging setup, exit codes, and one file per subcommand,
//! each with its `Args` (or subcommand enum) and a `run`:
//!
//! | command | file |
//! |---|---|
//! | `check` | [`check`] |
//! | `findings` | [`findings`] |
//! | `run` | [`run`] |
//! | `demo` | [`demo`] |
//! | `simulate` | [`simulate`] |
//! | `render` | [`render`] (prints exactly what a sink would send) |
//! | `send-test` | [`send_test`] (a sample alert through a sink's real path) |
//! | `silence add/list/expire` | [`silence`] |
//! | `dead-letters list/replay/discard` | [`dead_letters`] |
//! | `healthcheck` | [`healthcheck`] |
//! | `status` | [`status`] |
//! | `reload` | [`reload`] |
//! | `route test` | [`route`] |
//! | `completions` | [`completions`] (shell completion scripts) |
//! | `man` | [`man`] (man pages) |
//!
//! `silence`, `dead-letters`, `healthcheck`, `status` and `reload` talk to the running daemon's
//! admin API through one client (`admin_client`). Signals are handled in `signals`. This file
//! keeps what several commands share: loading the config, logging, the credential session,
//! terminal-safe text, and the configuration file's path: `--config FILE`, else
//! `SASRELAY_CONFIG`, else [`DEFAULT_CONFIG`] (a missing file is named with where its path came
//! from). Standard output goes through `out` (`outln!` rather than `println!`), so a closed
//! pipe ends a command quietly instead of panicking.
//!
//! Logs go to stderr: text with colours only when stderr is a terminal (and `NO_COLOR` is
//! unset), or with `--log-format json` one object per line with the event's fields at the top
//! level (`timestamp`, `level`, `target`, `message`, then `source`, `sink`, …).
//!
//! Exit codes: 0 success, 1 a runtime failure (Security Center unreachable, rejected
//! credentials…, the daemon's admin API unreachable), 2 bad usage (clap), 65 (`EX_DATAERR`)
//! unreadable `route test --finding` input, 78 (`EX_CONFIG`) an invalid configuration file —
//! for `check` and `run`, any problem of [`daemon::build`](crate::daemon::build): the file, a
//! sink's secret, a template, the admin token, a missing `[state]` or `[[sink]]` — and for
//! every command, a configuration file that does not exist.

// Everything goes through `out`, which ends quietly on a closed pipe; `println!` would panic.
#![deny(clippy::print_stdout)]

mod admin_client;
pub mod check;
pub mod completions;
pub mod dead_letters;
pub mod demo;
pub mod findings;
pub mod handle;
pub mod healthcheck;
pub mod man;
mod out;
pub mod reload;
pub mod render;
pub mod route;
pub mod run;
pub mod send_test;
mod signals;
pub mod silence;
pub mod simulate;
pub mod status;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config;
use crate::credentials::CredentialContext;
use crate::daemon::reload::LogFilter;
use crate::duration::{HumanDuration, parse_duration};
use crate::finding::Domain;

/// Exit code for an invalid configuration (sysexits `EX_CONFIG`).
pub const EXIT_CONFIG: u8 = 78;

/// The configuration file of every command that reads one, when neither `--config` nor
/// [`CONFIG_ENV`] names another: where the systemd unit and the image keep it.
pub const DEFAULT_CONFIG: &str = "/etc/sasrelay/sasrelay.toml";

/// The environment variable naming the configuration file when `--config` is not given.
pub const CONFIG_ENV: &str = "SASRELAY_CONFIG";

/// Forwards Alibaba Cloud Security Center findings for ACK clusters.
#[derive(Debug, Parser)]
#[command(name = "sasrelay", version, about)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `sasrelay=debug`. Default: `info`
    /// for `run` (or its `[daemon] log`, which this overrides), `demo` and `simulate`, `warn`
    /// for the one-shot commands.
    #[arg(long, global = true, env = "SASRELAY_LOG")]
    pub log: Option<String>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A domain on the command line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum DomainArg {
    /// Runtime alerts (DescribeSuspEvents).
    Alerts,
    /// Linux and application vulnerabilities (DescribeVulList).
    Vulnerabilities,
    /// Baseline (configuration) risks (DescribeCheckWarnings).
    Baseline,
    /// Container-firewall alerts (ListInterceptionHistory).
    Firewall,
}

impl From<DomainArg> for Domain {
    fn from(d: DomainArg) -> Domain {
        match d {
            DomainArg::Alerts => Domain::Alerts,
            DomainArg::Vulnerabilities => Domain::Vulnerabilities,
            DomainArg::Baseline => Domain::Baseline,
            DomainArg::Firewall => Domain::Firewall,
        }
    }
}

/// `--config` and `--sink`: one configured sink, for the commands that exercise a sink.
#[derive(Debug, clap::Args)]
pub struct SinkArgs {
    /// Configuration file.
    #[arg(long, short, value_name = "FILE", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// The sink's name.
    #[arg(long)]
    pub sink: String,
}

impl SinkArgs {
    /// Loads the configuration and builds the named sink (secrets resolved); prints why not
    /// and gives the exit code when it cannot.
    fn build(&self) -> Result<crate::sinks::Sink, ExitCode> {
        let settings = load_config(&self.config)?;
        configured_sink(&settings, &self.sink)
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print exactly the body a sink would send (JSON for DingTalk, Feishu, WeCom and Slack,
    /// the MIME message for email, the event document for webhooks) for a finding, a sample or
    /// a digest.
    Render(render::Args),
    /// Send a sample alert through a sink's real path (one attempt, after its rate limit) and
    /// print the platform's answer; exit 1 when it was not delivered.
    SendTest(send_test::Args),
    /// Validate a configuration file; with --online, also call Security Center once per source
    /// and domain.
    Check(check::Args),
    /// List what Security Center holds now for one domain, normalised.
    Findings(findings::Args),
    /// Run the daemon: poll every configured source and domain, track lifecycles in the store,
    /// deliver events to every sink. Stops cleanly on SIGTERM or SIGINT; SIGHUP reloads the
    /// configuration.
    Run(run::Args),
    /// The simulator and the daemon together, printing events to stdout: see findings flow
    /// within seconds, with no account and no config.
    Demo(demo::Args),
    /// Serve a fake Security Center (signatures, paging, filters and errors like the real one)
    /// with generated ACK findings, for demos and tests. Control endpoints live under `/_sim/`.
    Simulate(simulate::Args),
    /// Silences: keep matching events from every sink for a while. Talks to the running
    /// daemon's admin API (`[admin] listen`, with `[admin] token`).
    Silence {
        /// What to do.
        #[command(subcommand)]
        command: silence::SilenceCommand,
    },
    /// Dead letters: what a sink refused for good or never took in time (`[delivery]
    /// max_age`, `max_attempts`). List them, replay them once the sink is fixed, or discard
    /// them. Talks to the running daemon's admin API.
    DeadLetters {
        /// What to do.
        #[command(subcommand)]
        command: dead_letters::DeadLetterCommand,
    },
    /// Act on a finding as the console's "Handle" does — ignore an alert, whitelist what it
    /// matched, mark it handled, or undo one of those — and list the audit log of every
    /// action taken. Talks to the running daemon's admin API, which acts with the source's
    /// credentials (they need write rights: README, "Handling findings").
    Handle {
        /// What to do.
        #[command(subcommand)]
        command: handle::HandleCommand,
    },
    /// Exit 0 when the running daemon answers ready (`GET /readyz` on `[admin] listen`), 1
    /// otherwise: for a container HEALTHCHECK.
    Healthcheck(healthcheck::Args),
    /// The running daemon's health: every source × domain (state, last success, failures,
    /// last error), every sink (outbox depth, oldest age, dead letters), open conditions.
    Status(status::Args),
    /// Make the running daemon read its configuration file again (`POST /-/reload`, like
    /// SIGHUP) and print what changed; exit 78 when it refused the file (it keeps running the
    /// configuration it had), with every error.
    Reload(reload::Args),
    /// Routing tools.
    Route {
        /// What to do.
        #[command(subcommand)]
        command: route::RouteCommand,
    },
    /// Print a shell completion script, e.g. `sasrelay completions bash >
    /// /usr/share/bash-completion/completions/sasrelay`.
    Completions(completions::Args),
    /// Print the man page in roff (`sasrelay man | man -l -`), or with --dir write one page per
    /// command.
    Man(man::Args),
}

fn parse_window(s: &str) -> Result<HumanDuration, String> {
    parse_duration(s).map(HumanDuration)
}

/// Parses arguments, sets up logging and runs the subcommand.
pub fn main() -> ExitCode {
    let matches = Cli::command()
        .try_get_matches()
        .unwrap_or_else(|e| usage_error(&e));
    let cli = Cli::from_arg_matches(&matches)
        .map_err(|e| e.format(&mut Cli::command()))
        .unwrap_or_else(|e| e.exit());
    if let Err(code) = config_exists(&matches) {
        return code;
    }
    let default_filter = match cli.command {
        Command::Run(_) | Command::Demo(_) | Command::Simulate(_) => "info",
        Command::Check(_)
        | Command::Findings(_)
        | Command::Silence { .. }
        | Command::DeadLetters { .. }
        | Command::Handle { .. }
        | Command::Healthcheck(_)
        | Command::Status(_)
        | Command::Reload(_)
        | Command::Route { .. }
        | Command::Render(_)
        | Command::SendTest(_)
        | Command::Completions(_)
        | Command::Man(_) => "warn",
    };
    let log = init_logging(cli.log.as_deref(), default_filter, cli.log_format);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os(WORKER_THREADS_ENV).is_none() {
        builder.worker_threads(DEFAULT_WORKER_THREADS);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(execute(cli.command, log))
}

/// tokio's own variable for its worker thread count; when set, it decides.
const WORKER_THREADS_ENV: &str = "TOKIO_WORKER_THREADS";

/// One async worker thread unless `TOKIO_WORKER_THREADS` says otherwise. sasrelay waits on
/// sockets far more than it computes, and sled and `spawn_blocking` have threads of their
/// own; a second worker mostly hands tasks to and fro. Measured on two vCPUs (`benches/race.rs`,
/// 10,000 deliveries from a full outbox): one worker 71–72 µs of CPU per delivery at
/// 13,500–13,600/s, two (tokio's default here) 91–94 µs at 12,150–12,170/s; polling and
/// delivering 10,000 alerts, 163 against 186 µs at the same rate.
const DEFAULT_WORKER_THREADS: usize = 1;

/// Prints clap's error (or help, or version) and exits with its code; an empty
/// `SASRELAY_CONFIG` gets a word of its own, since clap names only `--config`.
fn usage_error(e: &clap::Error) -> ! {
    let _ = e.print();
    let empty = std::env::var_os(CONFIG_ENV).is_some_and(|v| v.is_empty());
    if e.kind() == clap::error::ErrorKind::InvalidValue && empty {
        eprintln!("note: {CONFIG_ENV} is set but empty: unset it, or set it to the file");
    }
    std::process::exit(e.exit_code())
}

/// Logs to stderr through `pinned` (`--log`, `SASRELAY_LOG`) or `default`, in `format`; the
/// filter that `run` changes from `[daemon] log` (unless pinned).
fn init_logging(pinned: Option<&str>, default: &str, format: LogFormat) -> LogFilter {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_new(pinned.unwrap_or(default))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    // Escape codes only for a person at a terminal: a journal or a file gets plain text.
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry.with(lines).init(),
        LogFormat::Json => registry.with(lines.json().flatten_event(true)).init(),
    }
    LogFilter::new(
        move |f| {
            let filter = tracing_subscriber::EnvFilter::try_new(f).map_err(|e| e.to_string())?;
            handle.reload(filter).map_err(|e| e.to_string())
        },
        pinned.map(str::to_string),
    )
}

/// Runs one subcommand.
async fn execute(command: Command, log: LogFilter) -> ExitCode {
    match command {
        Command::Run(args) => run::run(args, log).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Simulate(args) => simulate::run(args).await,
        Command::Check(args) => check::run(args).await,
        Command::Silence { command } => silence::run(command).await,
        Command::Healthcheck(args) => healthcheck::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Reload(args) => reload::run(args).await,
        Command::DeadLetters { command } => dead_letters::run(command).await,
        Command::Handle { command } => handle::run(command).await,
        Command::Route { command } => route::run(command).await,
        Command::Render(args) => render::run(args),
        Command::SendTest(args) => send_test::run(args).await,
        Command::Findings(args) => findings::run(args).await,
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
    }
}

/// The configuration file the command will read (`--config`, the deepest subcommand's) must
/// exist; when it does not, says which path was tried, where that came from, and how to name
/// another, and gives the exit code. Other problems with the file are the loader's to report.
fn config_exists(matches: &ArgMatches) -> Result<(), ExitCode> {
    let mut leaf = matches;
    while let Some((_, sub)) = leaf.subcommand() {
        leaf = sub;
    }
    let Some(path) = leaf.try_get_one::<PathBuf>("config").ok().flatten() else {
        return Ok(());
    };
    // A path that cannot be checked (a directory without search permission) is left to the
    // loader, whose error says why.
    if path.try_exists().unwrap_or(true) {
        return Ok(());
    }
    let from = match leaf.value_source("config") {
        Some(ValueSource::DefaultValue) => {
            format!("the default, as neither --config nor {CONFIG_ENV} is given")
        }
        Some(ValueSource::EnvVariable) => format!("from {CONFIG_ENV}"),
        _ => "from --config".to_string(),
    };
    eprintln!(
        "error: no configuration file at {} ({from}): create it, or name yours with --config FILE or {CONFIG_ENV}=FILE",
        path.display()
    );
    Err(ExitCode::from(EXIT_CONFIG))
}

fn load_config(path: &Path) -> Result<config::Settings, ExitCode> {
    config::load(path).map_err(|errs| {
        eprint!("{errs}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// Builds the sink named `name` from the configuration (secrets resolved).
fn configured_sink(
    settings: &config::Settings,
    name: &str,
) -> Result<crate::sinks::Sink, ExitCode> {
    let Some(cfg) = settings.sinks.iter().find(|s| s.name == name) else {
        let names: Vec<&str> = settings.sinks.iter().map(|s| s.name.as_str()).collect();
        eprintln!(
            "error: no sink named `{name}` in {}; configured: {}",
            settings.file.display(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
        return Err(ExitCode::from(2));
    };
    crate::sinks::Sink::build(cfg).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}

/// Cancels `token` on SIGTERM, SIGINT or SIGHUP (the foreground commands).
fn cancel_on_signal(token: &CancellationToken) {
    let stop = token.clone();
    tokio::spawn(async move {
        signals::wait_for_stop().await;
        stop.cancel();
    });
}

/// Shared plumbing for commands that talk to Security Center: one HTTP client for credential
/// providers, one tracker for their refresh tasks, stopped when the command ends.
struct Session {
    ctx: CredentialContext,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Session {
    /// A session, or (having said why) the exit code.
    fn open() -> Result<Session, ExitCode> {
        Session::new().map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        })
    }

    fn new() -> Result<Session, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        Ok(Session {
            ctx: CredentialContext::new(http, shutdown.clone(), tracker.clone()),
            shutdown,
            tracker,
        })
    }

    async fn close(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Finding text is attacker-controlled: strip control characters (escape sequences, newlines)
/// and invisible bidi/format characters the way the sinks do, and bound the width.
fn terminal_safe(s: &str, max: usize) -> String {
    crate::text::strip_control(s).chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_output_drops_escape_sequences() {
        assert_eq!(terminal_safe("a\u{1b}[31mb\nc", 100), "a [31mb c");
        assert_eq!(terminal_safe("abcdef", 3), "abc");
        assert_eq!(terminal_safe("evil\u{202e}gpj.exe", 100), "evilgpj.exe");
    }
}
