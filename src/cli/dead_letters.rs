//! `sasrelay dead-letters list | replay | discard`: what no sink would take, and putting it
//! back once the sink is fixed. Talks to the running daemon's admin API.

use std::path::Path;
use std::process::ExitCode;

use super::admin_client::{NO_BODY, client, fail, text_table};
use super::out::{out, outln};
use super::{CONFIG_ENV, DEFAULT_CONFIG, terminal_safe};
use crate::daemon::admin::{DeadLetterView, ReplayReport, ReplayRequest};
use std::path::PathBuf;

/// `sasrelay dead-letters …`.
#[derive(Debug, clap::Subcommand)]
pub enum DeadLetterCommand {
    /// List dead letters, newest first, with why each was given up.
    List {
        /// Configuration file (for `[admin] listen` and `[admin] token`).
        #[arg(long, short, value_name = "FILE", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
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
        #[arg(long, short, value_name = "FILE", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
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
        #[arg(long, short, value_name = "FILE", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The sink.
        #[arg(long)]
        sink: String,
        /// Sequence numbers from `dead-letters list`; repeatable.
        #[arg(long = "seq", required = true)]
        seqs: Vec<u64>,
    },
}

/// Runs `dead-letters …`.
pub async fn run(command: DeadLetterCommand) -> ExitCode {
    match command {
        DeadLetterCommand::List {
            config,
            sink,
            limit,
            json,
        } => list(&config, sink.as_deref(), limit as usize, json).await,
        DeadLetterCommand::Replay {
            config,
            sink,
            seqs,
            all,
        } => replay(&config, &sink, seqs, all).await,
        DeadLetterCommand::Discard { config, sink, seqs } => discard(&config, &sink, &seqs).await,
    }
}

/// `dead-letters list`: newest first, as a table or JSON.
pub(super) async fn list(config: &Path, sink: Option<&str>, limit: usize, json: bool) -> ExitCode {
    let client = match client(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut path = format!("/dead-letters?limit={limit}");
    if let Some(s) = sink {
        path.push_str("&sink=");
        path.extend(percent_encoding::utf8_percent_encode(
            s,
            percent_encoding::NON_ALPHANUMERIC,
        ));
    }
    let body = match client.call(reqwest::Method::GET, &path, NO_BODY).await {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let total = body["total"].as_u64().unwrap_or(0);
    let views: Vec<DeadLetterView> = match serde_json::from_value(body["dead_letters"].clone()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: unexpected answer from the admin API: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&views).unwrap_or_else(|_| "[]".into())
        );
    } else {
        out!("{}", table(&views));
    }
    if (views.len() as u64) < total {
        eprintln!(
            "({} of {total} dead letters shown; --limit shows more)",
            views.len()
        );
    }
    ExitCode::SUCCESS
}

/// The listing as a text table; every untrusted string stripped of control characters.
fn table(views: &[DeadLetterView]) -> String {
    let mut rows = vec![
        [
            "SINK", "SEQ", "DEAD AT", "ATTEMPTS", "WHAT", "TITLE", "REASON",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for v in views {
        let sink = if v.configured {
            terminal_safe(&v.sink, 32)
        } else {
            format!("{} (not configured)", terminal_safe(&v.sink, 32))
        };
        rows.push(vec![
            sink,
            v.seq.to_string(),
            terminal_safe(&v.dead_at, 30),
            v.attempts.to_string(),
            terminal_safe(&v.what, 20),
            terminal_safe(&v.title, 60),
            terminal_safe(&v.reason, 120),
        ]);
    }
    text_table(&rows)
}

/// `dead-letters replay`: the listed seqs, or every dead letter of the sink.
pub(super) async fn replay(config: &Path, sink: &str, seqs: Vec<u64>, all: bool) -> ExitCode {
    let client = match client(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let req = ReplayRequest {
        sink: sink.to_string(),
        seqs,
        all,
    };
    let body = match client
        .call(reqwest::Method::POST, "/dead-letters/replay", Some(&req))
        .await
    {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let report: ReplayReport = match serde_json::from_value(body) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: unexpected answer from the admin API: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sink = terminal_safe(sink, 64);
    for [dead, new] in &report.requeued {
        outln!("{sink}: dead letter {dead} requeued as {new}");
    }
    for seq in &report.superseded {
        outln!("{sink}: dead letter {seq} was already requeued (removed)");
    }
    for seq in &report.not_found {
        eprintln!("{sink}: no dead letter {seq}");
    }
    for seq in &report.unreadable {
        eprintln!(
            "{sink}: dead letter {seq} cannot be replayed: the store could not read its payload back (its reason in `dead-letters list` says why); discard it"
        );
    }
    eprintln!(
        "{} requeued, {} already requeued, {} not found, {} unreadable",
        report.requeued.len(),
        report.superseded.len(),
        report.not_found.len(),
        report.unreadable.len()
    );
    if report.not_found.is_empty() && report.unreadable.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `dead-letters discard`: deletes the given dead letters for good.
pub(super) async fn discard(config: &Path, sink: &str, seqs: &[u64]) -> ExitCode {
    let client = match client(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut failed = false;
    let encoded_sink =
        percent_encoding::utf8_percent_encode(sink, percent_encoding::NON_ALPHANUMERIC).to_string();
    for seq in seqs {
        let path = format!("/dead-letters/{encoded_sink}/{seq}");
        match client.call(reqwest::Method::DELETE, &path, NO_BODY).await {
            Ok(v) => outln!(
                "{}: dead letter {seq} discarded ({})",
                terminal_safe(sink, 64),
                terminal_safe(v["payload_id"].as_str().unwrap_or_default(), 80)
            ),
            Err(e) => {
                eprintln!("error: {}", e.0);
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
