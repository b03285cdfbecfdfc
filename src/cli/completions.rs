//! `sasrelay completions SHELL`: the shell completion script for bash, zsh, fish, elvish or
//! PowerShell, generated from the same clap definitions as the parser, so it cannot drift
//! from the commands it completes.

use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// `sasrelay completions` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell whose script to print.
    #[arg(value_enum)]
    shell: Shell,
}

/// Runs `completions`: prints the script.
pub fn run(args: Args) -> ExitCode {
    super::out::write_bytes(&script(args.shell));
    ExitCode::SUCCESS
}

/// The completion script for `shell`. Generated into memory: clap_complete panics when its
/// writer fails, and stdout may be a closed pipe.
pub fn script(shell: Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let name = cmd.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    script
}
