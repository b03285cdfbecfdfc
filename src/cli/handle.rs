//! `sasrelay handle alert ID …` and `sasrelay handle log`: act on an alert as the console's
//! "Handle" does, through the running daemon (which holds the source's credentials and the
//! store with the audit log; [`crate::handle`], admin API `/api/v1/handle`).
//!
//! `handle alert` first asks what the alert allows now and prints what the action would do;
//! with no action it stops there. With one it asks for confirmation on a terminal (`--yes`
//! for scripts; without a terminal and without `--yes` it refuses), then acts, follows the
//! task to its end and prints the outcome. Exit codes: 0 done, 1 refused or failed (the
//! service's code and a hint on stderr), 75 the task had not ended when the daemon stopped
//! following it (the next poll shows whether it took effect), 78 a configuration problem.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::admin_client::{AdminClient, NO_BODY, fail, text_table};
use super::out::{out, outln};
use super::{CONFIG_ENV, DEFAULT_CONFIG, EXIT_CONFIG, load_config, terminal_safe};
use crate::handle::{AlertAction, Outcome, Plan, Request};
use crate::sas::handle::WhitelistRule;
use crate::store::AuditEntry;

/// Exit code of an action whose task had not ended (`EX_TEMPFAIL`).
pub const EXIT_UNFINISHED: u8 = 75;

/// `sasrelay handle …`.
#[derive(Debug, clap::Subcommand)]
pub enum HandleCommand {
    /// Act on an alert: ignore it, whitelist what it matched, or mark it handled (or undo one
    /// of those with --undo). With no action, print what the alert allows now.
    Alert(AlertArgs),
    /// The audit log: every action taken through sasrelay, newest first.
    Log {
        /// Configuration file (for `[admin] listen` and `[admin] token`).
        #[arg(long, short, value_name = "FILE", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// JSON (the entries as the admin API returns them) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `sasrelay handle alert` arguments.
#[derive(Debug, clap::Args)]
pub struct AlertArgs {
    /// Configuration file (for the sources and `[admin] listen` and `[admin] token`).
    #[arg(long, short, value_name = "FILE", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// The alert: its Security Center id, or the finding id `alert:<id>` a notification shows.
    id: String,
    /// The configured source it came from (default: the only one configured).
    #[arg(long)]
    source: Option<String>,
    /// Ignore it.
    #[arg(long, group = "act")]
    ignore: bool,
    /// Whitelist: alerts whose FIELD passes OP against VALUE become false positives (FIELD
    /// one the alert offers — run with no action to see them; OP one of contains,
    /// notContains, regex, strEqual, strNotEqual).
    #[arg(long, group = "act", num_args = 3, value_names = ["FIELD", "OP", "VALUE"])]
    whitelist: Option<Vec<String>>,
    /// The whitelist rule's reach: this asset (`part`) or every asset (`all`).
    #[arg(long, value_parser = ["part", "all"], default_value = "part", requires = "whitelist")]
    scope: String,
    /// Mark it handled by hand.
    #[arg(long, group = "act")]
    handled: bool,
    /// Undo the action named with it (--ignore, --whitelist or --handled; for --whitelist,
    /// FIELD OP VALUE are not needed: give `--undo --whitelist - - -`, or use
    /// --undo-whitelist).
    #[arg(long)]
    undo: bool,
    /// Remove the whitelist mark (same as --undo with --whitelist).
    #[arg(long, group = "act")]
    undo_whitelist: bool,
    /// A remark Security Center keeps with the action.
    #[arg(long)]
    remark: Option<String>,
    /// Act without asking for confirmation (for scripts).
    #[arg(long, short)]
    yes: bool,
    /// Print the plan and the outcome as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `handle …`.
pub async fn run(command: HandleCommand) -> ExitCode {
    match command {
        HandleCommand::Alert(args) => alert(args).await,
        HandleCommand::Log {
            config,
            limit,
            json,
        } => log(&config, limit, json).await,
    }
}

/// Who runs this: the OS user (`$USER`, `$LOGNAME`), else the numeric uid.
pub fn os_user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|u| !u.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/self/status")
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(|u| format!("uid {u}")))
        })
        .unwrap_or_else(|| "unknown user".into())
}

/// The action the flags ask for; `None` when none (print the plan only).
fn action(args: &AlertArgs) -> Result<Option<AlertAction>, String> {
    let whitelist = args.whitelist.as_ref();
    let a = match (args.ignore, whitelist, args.handled, args.undo_whitelist) {
        (true, _, _, _) if args.undo => AlertAction::UndoIgnore,
        (true, _, _, _) => AlertAction::Ignore,
        (_, Some(_), _, _) if args.undo => AlertAction::UndoWhitelist,
        (_, Some(v), _, _) => {
            let [field, operate, value] = v.as_slice() else {
                return Err("--whitelist takes FIELD OP VALUE".into());
            };
            if !crate::handle::WHITELIST_OPERATES.contains(&operate.as_str()) {
                return Err(format!(
                    "--whitelist: OP {operate:?} is none of {}",
                    crate::handle::WHITELIST_OPERATES.join(", ")
                ));
            }
            AlertAction::Whitelist {
                rule: WhitelistRule {
                    field: field.clone(),
                    operate: operate.clone(),
                    value: value.clone(),
                    all_assets: args.scope == "all",
                },
            }
        }
        (_, _, true, _) if args.undo => AlertAction::UndoHandled,
        (_, _, true, _) => AlertAction::Handled,
        (_, _, _, true) => AlertAction::UndoWhitelist,
        _ if args.undo => {
            return Err(
                "--undo needs the action to undo: --ignore, --whitelist or --handled".into(),
            );
        }
        _ => return Ok(None),
    };
    Ok(Some(a))
}

/// The alert's Security Center id from `123` or `alert:123`.
fn alert_id(s: &str) -> Result<i64, String> {
    let n = s.trim().strip_prefix("alert:").unwrap_or(s.trim());
    n.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{s:?} is not an alert id (a number, or alert:<number>)"))
}

async fn alert(args: AlertArgs) -> ExitCode {
    let settings = match load_config(&args.config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let usage = |why: String| {
        eprintln!("error: {why}");
        ExitCode::from(2)
    };
    let id = match alert_id(&args.id) {
        Ok(id) => id,
        Err(why) => return usage(why),
    };
    let names: Vec<&str> = settings.sources.iter().map(|s| s.name.as_str()).collect();
    let source = match (&args.source, names.as_slice()) {
        (Some(s), _) if names.contains(&s.as_str()) => s.clone(),
        (Some(s), _) => {
            eprintln!(
                "error: no source {s:?} in {} (configured: {})",
                args.config.display(),
                names.join(", ")
            );
            return ExitCode::from(EXIT_CONFIG);
        }
        (None, [only]) => only.to_string(),
        (None, _) => {
            return usage(format!(
                "name the alert's source with --source (configured: {})",
                names.join(", ")
            ));
        }
    };
    let action = match action(&args) {
        Ok(a) => a,
        Err(why) => return usage(why),
    };
    let client = match AdminClient::new(&settings) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let request = Request {
        source,
        id,
        // The plan of "no action" is the plan of an ignore: what the alert allows.
        action: action.clone().unwrap_or(AlertAction::Ignore),
        remark: args.remark.clone(),
        who: os_user(),
        via: "cli".into(),
    };
    let plan: Plan = match client
        .call(reqwest::Method::POST, "/handle/plan", Some(&request))
        .await
        .and_then(|v| decode(v, "plan"))
    {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if action.is_none() {
        return show_allowed(&plan, args.json);
    }
    if args.json {
        outln!("{}", serde_json::to_string(&plan).unwrap_or_default());
    } else {
        eprintln!("{}", describe_plan(&plan));
    }
    if let Some(r) = &plan.refused {
        print_refusal("refused", r);
        return ExitCode::FAILURE;
    }
    if !args.yes {
        match confirm("Proceed?") {
            Ok(true) => {}
            Ok(false) => {
                eprintln!("Nothing done.");
                return ExitCode::FAILURE;
            }
            Err(why) => return usage(why),
        }
    }
    let answer = match client
        .call(reqwest::Method::POST, "/handle", Some(&request))
        .await
    {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let outcome: Outcome = match serde_json::from_value(answer["outcome"].clone()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: unexpected answer from the admin API: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        outln!("{}", serde_json::to_string(&outcome).unwrap_or_default());
    } else {
        outln!("{}", describe_outcome(&outcome));
    }
    match outcome.result.as_str() {
        "success" => ExitCode::SUCCESS,
        "unfinished" => ExitCode::from(EXIT_UNFINISHED),
        _ => ExitCode::FAILURE,
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    v: serde_json::Value,
    what: &str,
) -> Result<T, super::admin_client::Failed> {
    serde_json::from_value(v).map_err(|e| {
        super::admin_client::Failed(format!("unexpected {what} from the admin API: {e}"))
    })
}

/// Asks `question` on the terminal; `Err` when there is none to ask on.
fn confirm(question: &str) -> Result<bool, String> {
    if !std::io::stdin().is_terminal() {
        return Err("not a terminal to confirm on: pass --yes to act without confirmation".into());
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the answer: {e}"))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// A refusal on stderr: the code, what was refused, and the hint.
fn print_refusal(label: &str, r: &crate::handle::Refusal) {
    eprintln!(
        "{label}: {} — {}\nhint: {}",
        terminal_safe(&r.code, 80),
        terminal_safe(&r.message, 600),
        terminal_safe(&r.hint, 600)
    );
}

/// The plan for people: what it will do, and what the alert allows.
fn describe_plan(plan: &Plan) -> String {
    let allowed = if plan.allowed.is_empty() {
        "nothing".to_string()
    } else {
        plan.allowed.join(", ")
    };
    format!(
        "Will act on {}.\n{} allows now: {}",
        terminal_safe(&plan.will, 600),
        plan.request.finding(),
        terminal_safe(&allowed, 300)
    )
}

/// With no action: what the alert allows, and the fields a whitelist rule may test.
fn show_allowed(plan: &Plan, json: bool) -> ExitCode {
    if json {
        outln!(
            "{}",
            serde_json::json!({"allowed": plan.allowed, "fields": plan.fields, "refused": plan.refused})
        );
    } else if let Some(r) = &plan.refused.as_ref().filter(|r| r.code != "NotAllowed") {
        print_refusal("error", r);
        return ExitCode::FAILURE;
    } else {
        let allowed = if plan.allowed.is_empty() {
            "nothing".to_string()
        } else {
            plan.allowed.join(", ")
        };
        outln!(
            "{} allows now: {}",
            plan.request.finding(),
            terminal_safe(&allowed, 300)
        );
        if !plan.fields.is_empty() {
            let mut rows = vec![
                ["FIELD", "NAME", "VALUE", "TESTS"]
                    .map(String::from)
                    .to_vec(),
            ];
            for f in &plan.fields {
                rows.push(vec![
                    terminal_safe(&f.name, 64),
                    terminal_safe(&f.alias, 64),
                    terminal_safe(&f.value, 200),
                    terminal_safe(&f.supported.join(","), 100),
                ]);
            }
            outln!("\nWhitelist fields (--whitelist FIELD OP VALUE):");
            out!("{}", text_table(&rows));
        }
    }
    ExitCode::SUCCESS
}

/// An outcome for people.
fn describe_outcome(o: &Outcome) -> String {
    let mut s = match o.result.as_str() {
        "success" => format!("Done: {}", terminal_safe(&o.message, 600)),
        "unfinished" => format!("Not finished yet: {}", terminal_safe(&o.message, 600)),
        other => format!(
            "{}: {}{}",
            if other == "refused" {
                "Refused"
            } else {
                "Failed"
            },
            terminal_safe(&o.message, 600),
            o.error_code
                .as_deref()
                .map(|c| format!(" [{}]", terminal_safe(c, 80)))
                .unwrap_or_default()
        ),
    };
    if !o.request_id.is_empty() {
        s.push_str(&format!(
            " (RequestId {})",
            terminal_safe(&o.request_id, 80)
        ));
    }
    s
}

async fn log(config: &Path, limit: usize, json: bool) -> ExitCode {
    let settings = match load_config(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let client = match AdminClient::new(&settings) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let v = match client
        .call(
            reqwest::Method::GET,
            &format!("/handle/log?limit={limit}"),
            NO_BODY,
        )
        .await
    {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let entries: Vec<AuditEntry> = match decode(v["entries"].clone(), "audit log") {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&entries).unwrap_or_else(|_| "[]".into())
        );
        return ExitCode::SUCCESS;
    }
    let mut rows = vec![
        [
            "AT",
            "WHO",
            "VIA",
            "SOURCE",
            "FINDING",
            "ACTION",
            "RESULT",
            "REQUEST ID",
            "DETAIL",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for e in &entries {
        let detail = if e.succeeded() {
            e.detail.clone()
        } else {
            format!(
                "{}{}",
                e.error_code
                    .as_deref()
                    .map(|c| format!("[{c}] "))
                    .unwrap_or_default(),
                e.message
            )
        };
        rows.push(vec![
            crate::clock::rfc3339_ms(e.at_ms),
            terminal_safe(&e.who, 64),
            terminal_safe(&e.via, 16),
            terminal_safe(&e.source, 64),
            terminal_safe(&e.finding, 64),
            terminal_safe(&e.action, 32),
            terminal_safe(&e.result, 16),
            terminal_safe(&e.request_id, 64),
            terminal_safe(&detail, 300),
        ]);
    }
    out!("{}", text_table(&rows));
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_is_named_by_its_number_or_its_finding_id() {
        assert_eq!(alert_id("752312"), Ok(752312));
        assert_eq!(alert_id("alert:752312"), Ok(752312));
        assert!(alert_id("vul:1").is_err());
        assert!(alert_id("-3").is_err());
    }
}
