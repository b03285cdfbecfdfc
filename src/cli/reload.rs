//! `sasrelay reload`: asks the running daemon to read its configuration file again
//! (`POST /-/reload` on its admin API, what SIGHUP does) and prints what changed, or every
//! reason the daemon refused the file (it then keeps running the configuration it had).
//!
//! The daemon's address and token come from the file's `[admin]` table, read even when the
//! rest of the file has errors: the daemon judges the file, with its own environment (the
//! secrets it resolves are its, not this shell's), and says why it refuses it.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;

use super::admin_client::{AdminClient, fail};
use super::out::out;
use super::{CONFIG_ENV, DEFAULT_CONFIG, EXIT_CONFIG, terminal_safe};
use crate::config::{self, ConfigErrors};

/// `sasrelay reload` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (the one the daemon runs with; for `[admin] listen` and
    /// `[admin] token`).
    #[arg(long, short, value_name = "FILE", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
}

/// Runs `reload`: 0 reloaded, 78 the file was refused, 1 the daemon could not be asked.
pub async fn run(args: Args) -> ExitCode {
    let checked = config::check_file(&args.config);
    // Without a readable `[admin]` the daemon cannot be found: say why and send nothing.
    let unreachable = checked
        .errors
        .iter()
        .any(|e| e.key.starts_with("admin") || e.key.starts_with('('));
    if unreachable {
        eprint!("{}", ConfigErrors(checked.errors));
        eprintln!(
            "error: cannot find the daemon's admin API through {}; nothing was sent (the daemon keeps its configuration)",
            args.config.display()
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    let client = match AdminClient::new(&checked.settings) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.reload().await {
        Ok(attempt) => {
            out!("{}", summary(&attempt));
            ExitCode::SUCCESS
        }
        Err((Some(422), e)) => {
            eprintln!("error: {}", e.0);
            ExitCode::from(EXIT_CONFIG)
        }
        Err((_, e)) => fail(e),
    }
}

/// What a successful reload (`attempt`, as the API answers it) changed, a line per kind.
fn summary(attempt: &Value) -> String {
    let file = attempt["file"].as_str().unwrap_or_default();
    let mut out = format!("configuration reloaded from {}\n", terminal_safe(file, 200));
    for kind in ["sinks", "sources"] {
        let diff = &attempt["changes"][kind];
        let parts: Vec<String> = ["added", "removed", "restarted", "unchanged"]
            .into_iter()
            .filter_map(|what| {
                let names: Vec<String> = diff[what]
                    .as_array()?
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|n| terminal_safe(n, 64))
                    .collect();
                (!names.is_empty()).then(|| format!("{what} {}", names.join(", ")))
            })
            .collect();
        if !parts.is_empty() {
            out.push_str(&format!("  {kind}: {}\n", parts.join("; ")));
        }
    }
    for o in attempt["orphaned_outboxes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let sink = terminal_safe(o["sink"].as_str().unwrap_or_default(), 64);
        let pending = o["pending"].as_u64().unwrap_or(0);
        out.push_str(&format!(
            "  sink {sink} is not configured: {pending} entries stay in its outbox until it returns\n"
        ));
    }
    for kept in attempt["kept"].as_array().into_iter().flatten() {
        let kept = terminal_safe(kept.as_str().unwrap_or_default(), 300);
        out.push_str(&format!("  kept (restart to apply): {kept}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_what_changed_and_what_was_kept() {
        let attempt = serde_json::json!({
            "file": "/etc/sasrelay.toml",
            "successful": true,
            "changes": {
                "sinks": {"added": ["chat"], "removed": ["old"], "restarted": ["hook"], "unchanged": []},
                "sources": {"added": [], "removed": [], "restarted": [], "unchanged": ["prod\u{1b}[31m"]}
            },
            "kept": ["[admin]: the admin API keeps its address, token and limits"],
            "orphaned_outboxes": [{"sink": "old", "pending": 3}]
        });
        assert_eq!(
            summary(&attempt),
            "configuration reloaded from /etc/sasrelay.toml\n  sinks: added chat; removed old; restarted hook\n  sources: unchanged prod [31m\n  sink old is not configured: 3 entries stay in its outbox until it returns\n  kept (restart to apply): [admin]: the admin API keeps its address, token and limits\n"
        );
    }
}
