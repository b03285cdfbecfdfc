//! The command line: argument parsing, logging setup, and one function per subcommand.
//!
//! Exit codes: 0 success, 1 a runtime failure (Security Center unreachable, rejected
//! credentials…), 2 bad usage (clap), 78 (`EX_CONFIG`) an invalid configuration file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config;

/// Exit code for an invalid configuration (sysexits `EX_CONFIG`).
pub const EXIT_CONFIG: u8 = 78;

/// Forwards Alibaba Cloud Security Center findings for ACK clusters.
#[derive(Debug, Parser)]
#[command(name = "sasrelay", version, about)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `sasrelay=debug`.
    #[arg(long, global = true, env = "SASRELAY_LOG", default_value = "info")]
    pub log: String,
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

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
}

/// Parses arguments, sets up logging and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log, cli.log_format);
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
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
        Command::Check { config, online } => check(&config, online).await,
    }
}

fn load_config(path: &std::path::Path) -> Result<config::Settings, ExitCode> {
    config::load(path).map_err(|errs| {
        eprint!("{errs}");
        ExitCode::from(EXIT_CONFIG)
    })
}

async fn check(path: &std::path::Path, online: bool) -> ExitCode {
    let settings = match load_config(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    println!(
        "{}: configuration OK ({} source{})",
        path.display(),
        settings.sources.len(),
        if settings.sources.len() == 1 { "" } else { "s" }
    );
    for s in &settings.sources {
        println!(
            "  source {}: {} via {} ({:?}), clusters: {}, domains: {}",
            s.name,
            s.region,
            s.client.endpoint,
            s.client.signature,
            if s.clusters.is_empty() {
                "all".to_string()
            } else {
                s.clusters.join(", ")
            },
            s.domains.join(", ")
        );
    }
    if online {
        eprintln!("error: --online is not available in this build");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
