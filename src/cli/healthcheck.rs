//! `sasrelay healthcheck`: exit 0 when the running daemon answers ready (`GET /readyz` on
//! `[admin] listen`: its store can be written and no source × domain is `blind`), 1 otherwise,
//! printing why — for a container `HEALTHCHECK`, since the image has no curl.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{CONFIG_ENV, DEFAULT_CONFIG};

/// `sasrelay healthcheck` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (for `[admin] listen`).
    #[arg(long, short, value_name = "FILE", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
}

/// Runs `healthcheck`.
pub async fn run(args: Args) -> ExitCode {
    super::admin_client::healthcheck(&args.config).await
}
