//! `sasrelay status`: the running daemon's health (`GET /api/v1/status`, see
//! [`crate::daemon::health`]) as tables: every source × domain with its state, last success,
//! consecutive failures and last error; every sink with its outbox depth, oldest age and dead
//! letters; refreshing credentials; open health conditions. `--json` prints the answer as is.
//! Exits 0 whenever the daemon answered (whether ready or not: `healthcheck` is the probe).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::admin_client::{NO_BODY, client, fail, text_table};
use super::out::{out, outln};
use super::{CONFIG_ENV, DEFAULT_CONFIG, terminal_safe};
use crate::daemon::health::StatusView;

/// `sasrelay status` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (for `[admin] listen` and `[admin] token`).
    #[arg(long, short, value_name = "FILE", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Print the admin API's JSON answer instead of tables.
    #[arg(long)]
    json: bool,
}

/// Runs `status`.
pub async fn run(args: Args) -> ExitCode {
    status(&args.config, args.json).await
}

async fn status(config: &Path, json: bool) -> ExitCode {
    let client = match client(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let body = match client.call(reqwest::Method::GET, "/status", NO_BODY).await {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_else(|_| "{}".into())
        );
        return ExitCode::SUCCESS;
    }
    match serde_json::from_value::<StatusView>(body) {
        Ok(view) => {
            out!("{}", render(&view));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: unexpected answer from the admin API: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The status as text: a readiness line, then one table per part; every string from the
/// daemon made terminal-safe (errors may carry a remote service's text).
pub fn render(v: &StatusView) -> String {
    let mut out = String::new();
    if v.ready {
        out.push_str("ready\n");
    } else {
        out.push_str("NOT READY\n");
        for r in &v.not_ready {
            out.push_str(&format!("  {}\n", terminal_safe(r, 300)));
        }
    }
    if let Some(ha) = &v.ha {
        let repeats: u64 = ha.possible_repeats.values().sum();
        let renew = match ha.last_renew_ms {
            Some(ms) => format!(
                "lease last renewed or read at {}",
                crate::clock::rfc3339_ms(ms)
            ),
            None => "the lease never reached yet".to_string(),
        };
        out.push_str(&format!(
            "{} (epoch {}), {renew}, {} takeovers, {} deliveries flagged as possible repeats\n",
            if ha.leading { "leader" } else { "standby" },
            ha.epoch,
            ha.takeovers,
            repeats
        ));
        if let Some(why) = &ha.blocked {
            out.push_str(&format!(
                "  HOLDS THE LEASE BUT DOES NOT LEAD: {}\n",
                terminal_safe(why, 300)
            ));
        }
    }
    let dash = || "-".to_string();
    let mut sources = vec![
        [
            "SOURCE",
            "DOMAIN",
            "STATE",
            "INTERVAL",
            "LAST POLL",
            "LAST SUCCESS",
            "FAILURES",
            "LAST ERROR",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for s in &v.sources {
        sources.push(vec![
            terminal_safe(&s.source, 64),
            s.domain.as_str().to_string(),
            s.state.as_str().to_string(),
            terminal_safe(&s.interval, 16),
            format!("{:.1}s", s.last_poll_s),
            s.last_success
                .as_deref()
                .map_or_else(dash, |t| terminal_safe(t, 40)),
            s.consecutive_failures.to_string(),
            s.last_error
                .as_deref()
                .map_or_else(dash, |e| terminal_safe(e, 160)),
        ]);
    }
    out.push('\n');
    out.push_str(&text_table(&sources));
    let mut sinks = vec![
        ["SINK", "DEPTH", "OLDEST", "DEAD LETTERS"]
            .map(String::from)
            .to_vec(),
    ];
    for s in &v.sinks {
        sinks.push(vec![
            terminal_safe(&s.sink, 64),
            s.depth.to_string(),
            crate::duration::format_duration(std::time::Duration::from_secs(s.oldest_age_s)),
            s.dead_letters.to_string(),
        ]);
    }
    out.push('\n');
    out.push_str(&text_table(&sinks));
    if !v.budget.is_empty() {
        let mut budget = vec![
            ["ACTION", "CALLS", "CALLS/HOUR", "WAITED", "WAIT"]
                .map(String::from)
                .to_vec(),
        ];
        for b in &v.budget {
            budget.push(vec![
                terminal_safe(&b.action, 64),
                b.calls.to_string(),
                b.calls_per_hour.to_string(),
                b.waited.to_string(),
                format!("{:.1}s", b.wait_s),
            ]);
        }
        out.push('\n');
        out.push_str(&text_table(&budget));
    }
    if !v.credentials.is_empty() {
        let mut creds = vec![
            [
                "SOURCE",
                "CREDENTIAL EXPIRES",
                "REFRESH FAILURES",
                "LAST ERROR",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for c in &v.credentials {
            creds.push(vec![
                terminal_safe(&c.source, 64),
                terminal_safe(&c.expires_at, 40),
                c.consecutive_failures.to_string(),
                c.last_error
                    .as_deref()
                    .map_or_else(dash, |e| terminal_safe(e, 160)),
            ]);
        }
        out.push('\n');
        out.push_str(&text_table(&creds));
    }
    let open: Vec<_> = v.conditions.iter().filter(|c| c.open).collect();
    if !open.is_empty() {
        let mut rows = vec![
            ["CONDITION", "EPISODE", "SINCE", "MESSAGE"]
                .map(String::from)
                .to_vec(),
        ];
        for c in open {
            rows.push(vec![
                terminal_safe(&c.key, 100),
                c.episode.to_string(),
                terminal_safe(&c.since, 40),
                terminal_safe(&c.message, 200),
            ]);
        }
        out.push('\n');
        out.push_str(&text_table(&rows));
    }
    out
}
