//! `sasrelay demo`: the simulator and the daemon together in one process, printing events to
//! stdout — findings flow within seconds, with no account and no config.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::run::run_daemon_with;
use super::{cancel_on_signal, parse_window};
use crate::config;
use crate::duration::HumanDuration;

/// `sasrelay demo` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How often the simulator changes findings.
    #[arg(long, value_parser = parse_window, default_value = "5s")]
    tick: HumanDuration,
    /// State directory (default: a fresh temporary directory, removed at exit).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Print events as JSON lines instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `demo`.
pub async fn run(args: Args) -> ExitCode {
    let Args { tick, state, json } = args;
    let tick = tick.0;
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
