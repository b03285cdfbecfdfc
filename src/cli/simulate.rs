//! `sasrelay simulate`: serves the fake Security Center ([`crate::simulator`]) on its own, for
//! demos, tests and scripts; prints the address it listens on.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::out::outln;
use super::{cancel_on_signal, parse_window};
use crate::duration::HumanDuration;

/// `sasrelay simulate` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
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
}

/// Runs `simulate`.
pub async fn run(args: Args) -> ExitCode {
    let cfg = crate::simulator::SimConfig {
        listen: args.listen,
        seed: args.seed,
        clusters: args.clusters,
        nodes_per_cluster: args.nodes,
        tick: (!args.tick.0.is_zero()).then_some(args.tick.0),
        credentials: vec![crate::simulator::SimCredential::new(
            args.access_key_id,
            args.access_key_secret,
        )],
        ..crate::simulator::SimConfig::demo()
    };
    serve(cfg).await
}

async fn serve(cfg: crate::simulator::SimConfig) -> ExitCode {
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
    outln!("sasrelay simulator listening on http://{addr} (AccessKey ID {key}); Ctrl-C stops it");
    let shutdown = CancellationToken::new();
    cancel_on_signal(&shutdown);
    match crate::simulator::serve(listener, sim, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: simulator: {e}");
            ExitCode::FAILURE
        }
    }
}
