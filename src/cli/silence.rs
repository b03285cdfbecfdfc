//! `sasrelay silence add | list | expire`: a small client of the running daemon's admin API
//! ([`crate::daemon::admin`]). The store allows one process, so these commands never open it; they
//! read `[admin] listen` and `[admin] token` from the config and ask the daemon.

use std::path::Path;
use std::process::ExitCode;

use super::admin_client::{NO_BODY, client, fail, text_table};
use super::out::{out, outln};
use super::{CONFIG_ENV, DEFAULT_CONFIG, terminal_safe};
use crate::daemon::admin::{NewSilence, SilenceView};
use std::path::PathBuf;

/// `sasrelay silence …`.
#[derive(Debug, clap::Subcommand)]
pub enum SilenceCommand {
    /// Create a silence; prints its id.
    Add {
        /// Configuration file (for `[admin] listen` and `[admin] token`).
        #[arg(long, short, value_name = "FILE", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
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
        /// Create it even though its matchers match every event (e.g. `domain=~".+"` for a
        /// maintenance window); without it such a silence is refused.
        #[arg(long)]
        force: bool,
    },
    /// List pending and active silences with how many events each kept back.
    List {
        /// Configuration file (for `[admin] listen` and `[admin] token`).
        #[arg(long, short, value_name = "FILE", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
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
        #[arg(long, short, value_name = "FILE", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The silence's id.
        id: String,
    },
}

/// Runs `silence …`.
pub async fn run(command: SilenceCommand) -> ExitCode {
    match command {
        SilenceCommand::Add {
            config,
            matchers,
            duration,
            until,
            start,
            author,
            comment,
            force,
        } => {
            let created_by = author
                .or_else(|| std::env::var("USER").ok())
                .filter(|a| !a.trim().is_empty())
                .unwrap_or_else(|| "sasrelay".into());
            let req = NewSilence {
                matchers,
                starts_at: start,
                ends_at: until,
                duration,
                created_by,
                comment,
                force,
            };
            add(&config, req).await
        }
        SilenceCommand::List { config, all, json } => list(&config, all, json).await,
        SilenceCommand::Expire { config, id } => expire(&config, &id).await,
    }
}

/// `silence add`: prints the new silence's id.
pub(super) async fn add(config: &Path, req: NewSilence) -> ExitCode {
    let client = match client(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client
        .call(reqwest::Method::POST, "/silences", Some(&req))
        .await
    {
        Ok(v) => {
            let id = v["id"].as_str().unwrap_or_default();
            let ends = v["silence"]["ends_at"].as_str().unwrap_or_default();
            let state = v["silence"]["state"].as_str().unwrap_or_default();
            outln!("{}", terminal_safe(id, 64));
            eprintln!(
                "silence {} created ({}, ends {})",
                terminal_safe(id, 64),
                terminal_safe(state, 16),
                terminal_safe(ends, 40)
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// `silence list`: a table of pending and active silences (every one with `all`), or JSON.
pub(super) async fn list(config: &Path, all: bool, json: bool) -> ExitCode {
    let client = match client(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let body = match client
        .call(reqwest::Method::GET, "/silences", NO_BODY)
        .await
    {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let views: Vec<SilenceView> = match serde_json::from_value(body["silences"].clone()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: unexpected answer from the admin API: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shown: Vec<&SilenceView> = views
        .iter()
        .filter(|v| all || v.state != "expired")
        .collect();
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&shown).unwrap_or_else(|_| "[]".into())
        );
        return ExitCode::SUCCESS;
    }
    out!("{}", table(&shown));
    if shown.len() < views.len() {
        eprintln!(
            "({} expired silence{} hidden; --all shows them)",
            views.len() - shown.len(),
            if views.len() - shown.len() == 1 {
                ""
            } else {
                "s"
            }
        );
    }
    ExitCode::SUCCESS
}

/// The listing as a text table; every untrusted string stripped of control characters.
fn table(views: &[&SilenceView]) -> String {
    let mut rows = vec![
        [
            "ID",
            "STATE",
            "ENDS",
            "SUPPRESSED",
            "HELD",
            "AUTHOR",
            "MATCHERS",
            "COMMENT",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for v in views {
        let s = &v.silence;
        let matchers: Vec<String> = s.matchers.iter().map(|m| m.to_string()).collect();
        rows.push(vec![
            terminal_safe(&s.id, 40),
            terminal_safe(&v.state, 10),
            s.ends_at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            v.suppressed.to_string(),
            v.held.to_string(),
            terminal_safe(&s.created_by, 24),
            terminal_safe(&matchers.join(", "), 100),
            terminal_safe(&s.comment, 80),
        ]);
    }
    text_table(&rows)
}

/// `silence expire ID`.
pub(super) async fn expire(config: &Path, id: &str) -> ExitCode {
    let client = match client(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let path = format!(
        "/silences/{}",
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
    );
    match client.call(reqwest::Method::DELETE, &path, NO_BODY).await {
        Ok(v) => {
            outln!(
                "silence {} expired ({} suppressed; {} held, sent now where their finding is still open)",
                terminal_safe(v["id"].as_str().unwrap_or(id), 64),
                v["suppressed"].as_u64().unwrap_or(0),
                v["held"].as_u64().unwrap_or(0)
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_strips_control_characters_and_aligns() {
        let s = crate::routing::Silence::new(
            "id-1",
            crate::routing::parse_matchers(r#"namespace="kube-system""#).unwrap(),
            "2026-05-01T10:00:00Z".parse().unwrap(),
            "2026-05-01T12:00:00.5Z".parse().unwrap(),
            "eve\u{1b}[31m",
            "line\nbreak",
            "2026-05-01T09:00:00Z".parse().unwrap(),
        )
        .unwrap();
        let v = SilenceView {
            silence: s,
            state: "active".into(),
            suppressed: 3,
            held: 2,
        };
        let t = table(&[&v]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2, "{t}");
        assert!(lines[0].starts_with("ID    STATE   ENDS"), "{t}");
        assert!(
            lines[1].contains("2026-05-01T12:00:00Z  3           2 "),
            "{t}"
        );
        assert!(lines[1].contains("eve [31m"), "{t}");
        assert!(lines[1].ends_with("line break"), "{t}");
        assert!(!t.contains('\u{1b}'));
    }
}
