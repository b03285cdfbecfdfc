//! The command line: argument parsing, logging setup, and one function per subcommand
//! (`silence`, `dead-letters` and their admin-API client in private submodules, `route test`
//! in [`route`]). `render` prints exactly what a sink would send; `send-test` sends a sample
//! alert through a sink's real path and prints the platform's answer; `check` also renders
//! every custom template against samples.
//!
//! Exit codes: 0 success, 1 a runtime failure (Security Center unreachable, rejected
//! credentials…, the daemon's admin API unreachable), 2 bad usage (clap), 65 (`EX_DATAERR`)
//! unreadable `route test --finding` input, 78 (`EX_CONFIG`) an invalid configuration file.

mod admin_client;
mod dead_letters;
pub mod route;
mod silence;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config;
use crate::credentials::CredentialContext;
use crate::credentials::env::ProcessEnv;
use crate::duration::{HumanDuration, parse_duration};
use crate::finding::{Domain, Finding};
use crate::sas::error::{ErrorClass, SasError};
use crate::sas::source::{ReadWindow, Source};

/// Exit code for an invalid configuration (sysexits `EX_CONFIG`).
pub const EXIT_CONFIG: u8 = 78;

/// Forwards Alibaba Cloud Security Center findings for ACK clusters.
#[derive(Debug, Parser)]
#[command(name = "sasrelay", version, about)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `sasrelay=debug`. Default: `info`
    /// for `run`, `demo` and `simulate`, `warn` for the one-shot commands.
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

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print exactly the body a sink would send (JSON for DingTalk, Feishu, WeCom and Slack,
    /// the MIME message for email, the event document for webhooks) for a finding, a sample or
    /// a digest.
    Render {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// The sink's name.
        #[arg(long)]
        sink: String,
        /// A normalised finding (as `sasrelay findings --json` prints it), inline or `@FILE`.
        #[arg(long, conflicts_with_all = ["sample", "digest"])]
        finding: Option<String>,
        /// A built-in sample finding of this domain (the default: alerts).
        #[arg(long, value_enum, conflicts_with = "digest")]
        sample: Option<DomainArg>,
        /// The built-in sample digest.
        #[arg(long)]
        digest: bool,
    },
    /// Send a sample alert through a sink's real path (one attempt, after its rate limit) and
    /// print the platform's answer; exit 1 when it was not delivered.
    SendTest {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// The sink's name.
        #[arg(long)]
        sink: String,
    },
    /// Validate a configuration file; with --online, also call Security Center once per source
    /// and domain.
    Check {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Make one signed call per source and domain and report what each can see.
        #[arg(long)]
        online: bool,
    },
    /// List what Security Center holds now for one domain, normalised.
    Findings {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Which domain to list.
        #[arg(long, value_enum)]
        domain: DomainArg,
        /// Only this source (default: all configured sources).
        #[arg(long)]
        source: Option<String>,
        /// Also list alerts handled within this window (e.g. `24h`).
        #[arg(long, value_parser = parse_window)]
        handled_within: Option<HumanDuration>,
        /// Firewall records within this window.
        #[arg(long, value_parser = parse_window, default_value = "24h")]
        firewall_within: HumanDuration,
        /// One JSON object per line (the full normalised finding) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run the daemon: poll every configured source and domain, track lifecycles in the store,
    /// deliver events to every sink. Stops cleanly on SIGTERM or SIGINT.
    Run {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// The simulator and the daemon together, printing events to stdout: see findings flow
    /// within seconds, with no account and no config.
    Demo {
        /// How often the simulator changes findings.
        #[arg(long, value_parser = parse_window, default_value = "5s")]
        tick: HumanDuration,
        /// State directory (default: a fresh temporary directory, removed at exit).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Print events as JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Serve a fake Security Center (signatures, paging, filters and errors like the real one)
    /// with generated ACK findings, for demos and tests. Control endpoints live under `/_sim/`.
    Simulate {
        /// Address to listen on (loopback by default: the control API has no authentication).
        #[arg(long, default_value = crate::simulator::DEMO_LISTEN)]
        listen: std::net::SocketAddr,
        /// Seed of the generated world; the same seed gives the same findings.
        #[arg(long, default_value_t = 20_240_520)]
        seed: u64,
        /// Number of ACK clusters.
        #[arg(long, default_value_t = 2)]
        clusters: usize,
        /// Worker nodes per cluster.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// How often new findings appear and old ones get handled; `0s` turns the generator off.
        #[arg(long, value_parser = parse_window, default_value = "10s")]
        tick: HumanDuration,
        /// AccessKey ID the simulator accepts.
        #[arg(long, default_value = crate::simulator::DEMO_ACCESS_KEY_ID)]
        access_key_id: String,
        /// AccessKey secret the simulator accepts (a demo value, not a real secret).
        #[arg(long, default_value = crate::simulator::DEMO_ACCESS_KEY_SECRET)]
        access_key_secret: String,
    },
    /// Silences: keep matching events from every sink for a while. Talks to the running
    /// daemon's admin API (`[admin] listen`, with `[admin] token`).
    Silence {
        /// What to do.
        #[command(subcommand)]
        command: SilenceCommand,
    },
    /// Dead letters: what a sink refused for good or never took in time (`[delivery]
    /// max_age`, `max_attempts`). List them, replay them once the sink is fixed, or discard
    /// them. Talks to the running daemon's admin API.
    DeadLetters {
        /// What to do.
        #[command(subcommand)]
        command: DeadLetterCommand,
    },
    /// Exit 0 when the running daemon answers ready (`GET /readyz` on `[admin] listen`), 1
    /// otherwise: for a container HEALTHCHECK.
    Healthcheck {
        /// Configuration file (for `[admin] listen`).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Routing tools.
    Route {
        /// What to do.
        #[command(subcommand)]
        command: RouteCommand,
    },
}

/// `sasrelay silence …`.
#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Create a silence; prints its id.
    Add {
        /// Configuration file (for `[admin] listen` and `[admin] token`).
        #[arg(long, short)]
        config: PathBuf,
        /// A matcher, e.g. `namespace="kube-system"` or `severity<high`; repeat for more (all
        /// must hold).
        #[arg(long = "matcher", short = 'm', required = true)]
        matchers: Vec<String>,
        /// How long from the start, e.g. `2h` or `1d`.
        #[arg(
            long = "for",
            value_name = "DURATION",
            required_unless_present = "until",
            conflicts_with = "until"
        )]
        duration: Option<String>,
        /// When it ends (RFC 3339, e.g. `2026-05-01T18:00:00Z`).
        #[arg(long, value_name = "RFC3339")]
        until: Option<String>,
        /// When it starts (RFC 3339); default now.
        #[arg(long, value_name = "RFC3339")]
        start: Option<String>,
        /// Who creates it (default `$USER`, else `sasrelay`).
        #[arg(long)]
        author: Option<String>,
        /// Why.
        #[arg(long)]
        comment: String,
    },
    /// List pending and active silences with how many events each kept back.
    List {
        /// Configuration file (for `[admin] listen` and `[admin] token`).
        #[arg(long, short)]
        config: PathBuf,
        /// Include expired silences.
        #[arg(long)]
        all: bool,
        /// JSON (an array of silences, as the admin API shows them) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// End a silence now.
    Expire {
        /// Configuration file (for `[admin] listen` and `[admin] token`).
        #[arg(long, short)]
        config: PathBuf,
        /// The silence's id.
        id: String,
    },
}

/// `sasrelay dead-letters …`.
#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    /// List dead letters, newest first, with why each was given up.
    List {
        /// Configuration file (for `[admin] listen` and `[admin] token`).
        #[arg(long, short)]
        config: PathBuf,
        /// Only this sink's.
        #[arg(long)]
        sink: Option<String>,
        /// Show at most this many.
        #[arg(long, default_value_t = crate::daemon::admin::DEFAULT_DEAD_LETTER_LIMIT as u64,
              value_parser = clap::value_parser!(u64).range(1..=crate::daemon::admin::MAX_DEAD_LETTER_LIMIT as u64))]
        limit: u64,
        /// JSON (an array, as the admin API shows them) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back in their sink's outbox (same idempotency key, fresh attempts).
    Replay {
        /// Configuration file (for `[admin] listen` and `[admin] token`).
        #[arg(long, short)]
        config: PathBuf,
        /// The sink.
        #[arg(long)]
        sink: String,
        /// Sequence numbers from `dead-letters list`; repeatable.
        #[arg(long = "seq", required_unless_present = "all", conflicts_with = "all")]
        seqs: Vec<u64>,
        /// Every dead letter of the sink.
        #[arg(long)]
        all: bool,
    },
    /// Delete dead letters for good.
    Discard {
        /// Configuration file (for `[admin] listen` and `[admin] token`).
        #[arg(long, short)]
        config: PathBuf,
        /// The sink.
        #[arg(long)]
        sink: String,
        /// Sequence numbers from `dead-letters list`; repeatable.
        #[arg(long = "seq", required = true)]
        seqs: Vec<u64>,
    },
}

/// `sasrelay route …`.
#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Show where findings go: each route tried and why it matched or not, then the targets;
    /// or, with --from-simulator, how many messages each sink would receive.
    Test {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// A finding or event as JSON, or `@FILE` (one object, an array, or one per line as
        /// `sasrelay findings --json` prints); repeatable.
        #[arg(
            long,
            value_name = "JSON_OR_@FILE",
            required_unless_present = "from_simulator",
            conflicts_with = "from_simulator"
        )]
        finding: Vec<String>,
        /// Generate this many realistic findings with the simulator instead and count the
        /// messages each sink would receive after grouping.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=route::MAX_SIMULATED as u64))]
        from_simulator: Option<u64>,
        /// Seed of the simulated world (as `sasrelay simulate --seed`).
        #[arg(long, default_value_t = 20_240_520, requires = "from_simulator")]
        seed: u64,
        /// Route as of this time (RFC 3339; default now), for mute and active time intervals.
        #[arg(long, value_name = "RFC3339")]
        at: Option<String>,
    },
}

fn parse_window(s: &str) -> Result<HumanDuration, String> {
    parse_duration(s).map(HumanDuration)
}

/// Parses arguments, sets up logging and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_filter = match cli.command {
        Command::Run { .. } | Command::Demo { .. } | Command::Simulate { .. } => "info",
        Command::Check { .. }
        | Command::Findings { .. }
        | Command::Silence { .. }
        | Command::DeadLetters { .. }
        | Command::Healthcheck { .. }
        | Command::Route { .. }
        | Command::Render { .. }
        | Command::SendTest { .. } => "warn",
    };
    init_logging(cli.log.as_deref().unwrap_or(default_filter), cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli.command))
}

fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(command: Command) -> ExitCode {
    match command {
        Command::Run { config } => {
            let settings = match load_config(&config) {
                Ok(s) => s,
                Err(code) => return code,
            };
            run_daemon(settings).await
        }
        Command::Demo { tick, state, json } => demo(tick.0, state, json).await,
        Command::Simulate {
            listen,
            seed,
            clusters,
            nodes,
            tick,
            access_key_id,
            access_key_secret,
        } => {
            let cfg = crate::simulator::SimConfig {
                listen,
                seed,
                clusters,
                nodes_per_cluster: nodes,
                tick: (!tick.0.is_zero()).then_some(tick.0),
                credentials: vec![crate::simulator::SimCredential::new(
                    access_key_id,
                    access_key_secret,
                )],
                ..crate::simulator::SimConfig::demo()
            };
            simulate(cfg).await
        }
        Command::Check { config, online } => check(&config, online).await,
        Command::Silence { command } => match command {
            SilenceCommand::Add {
                config,
                matchers,
                duration,
                until,
                start,
                author,
                comment,
            } => {
                let created_by = author
                    .or_else(|| std::env::var("USER").ok())
                    .filter(|a| !a.trim().is_empty())
                    .unwrap_or_else(|| "sasrelay".into());
                let req = crate::daemon::admin::NewSilence {
                    matchers,
                    starts_at: start,
                    ends_at: until,
                    duration,
                    created_by,
                    comment,
                };
                silence::add(&config, req).await
            }
            SilenceCommand::List { config, all, json } => silence::list(&config, all, json).await,
            SilenceCommand::Expire { config, id } => silence::expire(&config, &id).await,
        },
        Command::Healthcheck { config } => admin_client::healthcheck(&config).await,
        Command::DeadLetters { command } => match command {
            DeadLetterCommand::List {
                config,
                sink,
                limit,
                json,
            } => dead_letters::list(&config, sink.as_deref(), limit as usize, json).await,
            DeadLetterCommand::Replay {
                config,
                sink,
                seqs,
                all,
            } => dead_letters::replay(&config, &sink, seqs, all).await,
            DeadLetterCommand::Discard { config, sink, seqs } => {
                dead_letters::discard(&config, &sink, &seqs).await
            }
        },
        Command::Route {
            command:
                RouteCommand::Test {
                    config,
                    finding,
                    from_simulator,
                    seed,
                    at,
                },
        } => {
            route::test(
                &config,
                &finding,
                from_simulator.map(|n| n as usize),
                seed,
                at.as_deref(),
            )
            .await
        }
        Command::Render {
            config,
            sink,
            finding,
            sample,
            digest,
        } => render(&config, &sink, finding.as_deref(), sample, digest),
        Command::SendTest { config, sink } => send_test(&config, &sink).await,
        Command::Findings {
            config,
            domain,
            source,
            handled_within,
            firewall_within,
            json,
        } => {
            let now = OffsetDateTime::now_utc();
            let window = ReadWindow {
                now,
                occurred_since: None,
                handled_since: handled_within.map(|d| now - d.0),
                firewall_since: now - firewall_within.0,
            };
            findings(&config, domain.into(), source.as_deref(), window, json).await
        }
    }
}

async fn simulate(cfg: crate::simulator::SimConfig) -> ExitCode {
    let listen = cfg.listen;
    let key = cfg
        .credentials
        .first()
        .map(|c| c.access_key_id.clone())
        .unwrap_or_default();
    let sim = match crate::simulator::Simulator::new(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: simulator: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: simulator: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().map_or(listen, |a| a);
    // Tests and scripts read this line to find the port when listening on :0.
    println!("sasrelay simulator listening on http://{addr} (AccessKey ID {key}); Ctrl-C stops it");
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        stop.cancel();
    });
    match crate::simulator::serve(listener, sim, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: simulator: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

async fn run_daemon(settings: config::Settings) -> ExitCode {
    let shutdown = CancellationToken::new();
    cancel_on_signal(&shutdown);
    run_daemon_with(settings, shutdown).await
}

fn cancel_on_signal(token: &CancellationToken) {
    let stop = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("Signal received.");
        stop.cancel();
    });
}

async fn run_daemon_with(settings: config::Settings, shutdown: CancellationToken) -> ExitCode {
    match crate::daemon::run(settings, shutdown).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            tracing::error!(error = %e, "sasrelay cannot start.");
            // A missing [state] or [[sink]] is a configuration problem: restarting won't help
            // (the systemd unit does not restart on 78).
            match e {
                crate::daemon::StartError::NoState(_) | crate::daemon::StartError::NoSinks(_) => {
                    ExitCode::from(EXIT_CONFIG)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}

async fn demo(tick: std::time::Duration, state: Option<PathBuf>, json: bool) -> ExitCode {
    let sim = crate::simulator::SimConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        tick: (!tick.is_zero()).then_some(tick),
        ..crate::simulator::SimConfig::demo()
    };
    let simulator = match crate::simulator::Simulator::new(sim) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: simulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: simulator: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: simulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A private scratch directory holds the demo key's secret file and, unless --state was
    // given, the store; it is removed at exit.
    let scratch = std::env::temp_dir().join(format!("sasrelay-demo-{}", std::process::id()));
    let secret = scratch.join("simulator.secret");
    if let Err(e) = std::fs::create_dir_all(&scratch)
        .and_then(|_| std::fs::write(&secret, crate::simulator::DEMO_ACCESS_KEY_SECRET))
    {
        eprintln!("error: cannot create {}: {e}", scratch.display());
        return ExitCode::FAILURE;
    }
    let state_dir = state.unwrap_or_else(|| scratch.join("state"));
    let text = format!(
        r#"[[source]]
name = "demo"
region = "cn-hangzhou"
endpoint = "http://{addr}"
poll = {{ alerts = "2s", firewall = "2s", vulnerabilities = "5s", baseline = "5s" }}
events = {{ alerts = ["new", "resolved", "recurring"] }}
credentials = {{ type = "access_key", access_key_id = "{id}", access_key_secret = {{ file = "{secret}" }} }}

[state]
directory = "{state}"

# No config file for `sasrelay silence` to read, so no admin API (and no port to collide on).
[admin]
listen = "off"

[[sink]]
name = "console"
type = "stdout"
format = "{format}"
"#,
        id = crate::simulator::DEMO_ACCESS_KEY_ID,
        state = state_dir.display(),
        secret = secret.display(),
        format = if json { "json" } else { "text" },
    );
    let settings = match config::parse(Path::new("(demo)"), &text) {
        Ok(s) => s,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "sasrelay demo: simulator on http://{addr}, state in {}; new findings every {}s. Ctrl-C stops.",
        state_dir.display(),
        tick.as_secs()
    );
    let shutdown = CancellationToken::new();
    cancel_on_signal(&shutdown);
    let sim_token = shutdown.clone();
    let sim_task = tokio::spawn(crate::simulator::serve(listener, simulator, sim_token));
    let code = run_daemon_with(settings, shutdown.clone()).await;
    shutdown.cancel();
    let _ = sim_task.await;
    let _ = std::fs::remove_dir_all(&scratch);
    code
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

fn render(
    path: &Path,
    name: &str,
    finding: Option<&str>,
    sample: Option<DomainArg>,
    digest: bool,
) -> ExitCode {
    let settings = match load_config(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let sink = match configured_sink(&settings, name) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let payload: crate::event::Payload = if digest {
        crate::render::sample_digest().into()
    } else if let Some(text) = finding {
        let text = match text.strip_prefix('@') {
            Some(file) => match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: cannot read {file}: {e}");
                    return ExitCode::FAILURE;
                }
            },
            None => text.to_string(),
        };
        let f: Finding = match serde_json::from_str(&text) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: --finding is not a normalised finding: {e}");
                return ExitCode::FAILURE;
            }
        };
        crate::event::Event::about(
            crate::event::EventKind::New,
            f,
            0,
            "",
            None,
            OffsetDateTime::now_utc(),
        )
        .into()
    } else {
        crate::render::sample_event(sample.map_or(Domain::Alerts, Domain::from)).into()
    };
    match sink.preview(&payload) {
        Ok(body) => {
            println!("{body}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn send_test(path: &Path, name: &str) -> ExitCode {
    let settings = match load_config(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let sink = match configured_sink(&settings, name) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let payload: crate::event::Payload = crate::render::sample_event(Domain::Alerts).into();
    let outcome = loop {
        match sink.deliver(&payload, 1).await {
            crate::sinks::Outcome::Throttled { after } => tokio::time::sleep(after).await,
            other => break other,
        }
    };
    match outcome {
        crate::sinks::Outcome::Delivered { detail } => {
            println!("sink {name}: delivered ({detail})");
            ExitCode::SUCCESS
        }
        crate::sinks::Outcome::Retry { after, reason } => {
            println!(
                "sink {name}: NOT delivered, retryable{}: {reason}",
                after.map_or(String::new(), |a| format!(" after {}s", a.as_secs()))
            );
            ExitCode::FAILURE
        }
        crate::sinks::Outcome::Permanent { reason, response } => {
            println!("sink {name}: NOT delivered, permanent: {reason}");
            if let Some(r) = response {
                println!("  response: {r}");
            }
            ExitCode::FAILURE
        }
        crate::sinks::Outcome::Throttled { .. } => ExitCode::FAILURE,
    }
}

fn load_config(path: &Path) -> Result<config::Settings, ExitCode> {
    config::load(path).map_err(|errs| {
        eprint!("{errs}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// Shared plumbing for commands that talk to Security Center: one HTTP client for credential
/// providers, one tracker for their refresh tasks, stopped when the command ends.
struct Session {
    ctx: CredentialContext,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Session {
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

async fn check(path: &Path, online: bool) -> ExitCode {
    let settings = match load_config(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    // Static secrets and the environment are checked offline too: a missing env var is the
    // commonest deployment mistake and needs no network to find.
    let mut ok = true;
    for s in &settings.sources {
        if let Err(e) = s.credentials.check_offline(&ProcessEnv) {
            eprintln!("error: source {}: credentials: {e}", s.name);
            ok = false;
        }
    }
    // Custom templates are rendered against every sample, so a typo fails here, not at 3 am.
    for (i, sink) in settings.sinks.iter().enumerate() {
        for (key, kind, file) in sink.templates() {
            let result = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))
                .and_then(|text| crate::render::check_template(kind, &text));
            if let Err(e) = result {
                eprintln!("error: sink[{i}].{key} (sink {}): {e}", sink.name);
                ok = false;
            }
        }
    }
    println!(
        "{}: configuration {} ({} source{})",
        path.display(),
        if ok { "OK" } else { "INVALID" },
        settings.sources.len(),
        if settings.sources.len() == 1 { "" } else { "s" }
    );
    // Warnings (a shadowed route, an unused time interval) do not fail the check.
    for w in &settings.warnings {
        eprintln!("warning: {w}");
    }
    for s in &settings.sources {
        println!(
            "  source {}: region {} via {} (signature {:?}), clusters: {}, domains: {}",
            s.name,
            s.region,
            s.client.endpoint,
            s.client.signature,
            if s.clusters.is_empty() {
                "all".to_string()
            } else {
                s.clusters.join(", ")
            },
            s.domains
                .iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !ok {
        return ExitCode::FAILURE;
    }
    if !online {
        return ExitCode::SUCCESS;
    }
    let session = match Session::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for settings in settings.sources {
        println!("source {} ({}):", settings.name, settings.client.endpoint);
        let domains = settings.domains.clone();
        let source = match Source::connect(settings, &ProcessEnv, &session.ctx).await {
            Ok(s) => s,
            Err(e) => {
                println!("  credentials: FAILED\n    {e}");
                ok = false;
                continue;
            }
        };
        // A static key is only proven by the calls below; an expiring one was fetched just now.
        println!(
            "  credentials: loaded ({})",
            source.credential_provider().unwrap_or("custom")
        );
        let now = OffsetDateTime::now_utc();
        for domain in domains {
            match source.probe(domain, now).await {
                Ok(n) => println!(
                    "  {:<16} reachable, authenticated, permitted: {n} open",
                    domain.as_str()
                ),
                Err(e) => {
                    ok = false;
                    println!("  {:<16} {}", domain.as_str(), probe_verdict(&e));
                    println!("    {e}");
                }
            }
        }
    }
    session.close().await;
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: one or more sources cannot read Security Center; see above");
        ExitCode::FAILURE
    }
}

/// Which of reachable / authenticated / permitted failed, in plain words.
fn probe_verdict(e: &SasError) -> &'static str {
    match (e, e.class()) {
        (SasError::Transport { .. }, _) => "UNREACHABLE",
        (_, Some(ErrorClass::Auth)) => "reachable, NOT AUTHENTICATED",
        (_, Some(ErrorClass::Permission)) => "reachable, authenticated, NOT PERMITTED",
        (_, Some(ErrorClass::Throttled)) => "reachable, THROTTLED (retries exhausted)",
        (_, Some(ErrorClass::Server)) => "reachable, SERVICE ERROR (retries exhausted)",
        _ => "reachable, FAILED",
    }
}

async fn findings(
    path: &Path,
    domain: Domain,
    only: Option<&str>,
    window: ReadWindow,
    json: bool,
) -> ExitCode {
    let settings = match load_config(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let selected: Vec<_> = settings
        .sources
        .into_iter()
        .filter(|s| only.is_none_or(|o| o == s.name))
        .collect();
    if selected.is_empty() {
        eprintln!(
            "error: no source named `{}` in {}",
            only.unwrap_or_default(),
            path.display()
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    let session = match Session::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut ok = true;
    for settings in selected {
        if !settings.domains.contains(&domain) {
            eprintln!(
                "note: source {} does not enable domain {}; skipped",
                settings.name,
                domain.as_str()
            );
            continue;
        }
        let source = match Source::connect(settings, &ProcessEnv, &session.ctx).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                ok = false;
                continue;
            }
        };
        match source.read(domain, &window).await {
            Ok(list) => print_findings(&list, json),
            Err(e) => {
                eprintln!("error: source {}: {e}", source.settings.name);
                ok = false;
            }
        }
    }
    session.close().await;
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_findings(list: &[Finding], json: bool) {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for f in list {
        let line = if json {
            serde_json::to_string(f).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        } else {
            format!(
                "{:<8} {:<8} {:<22} {:<20} {:<16} {}",
                format!("{:?}", f.severity).to_lowercase(),
                format!("{:?}", f.status).to_lowercase(),
                f.id,
                terminal_safe(f.kubernetes.cluster_id.as_deref().unwrap_or("-"), 20),
                terminal_safe(f.kubernetes.namespace.as_deref().unwrap_or("-"), 16),
                terminal_safe(&f.title, 100),
            )
        };
        // A closed pipe (`| head`) ends the listing quietly.
        if writeln!(out, "{line}").is_err() {
            return;
        }
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
