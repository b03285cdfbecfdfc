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
use crate::finding::Domain;
use crate::handle::{Action, Outcome, Plan, Request};
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
    /// Act on a vulnerability: verify its fix, fix it, ignore it (with a reason) or undo the
    /// ignore. With no action, print what it allows now.
    Vuln(VulnArgs),
    /// Act on a baseline risk's failing check (`baseline:<CheckWarningId>`): ignore it (with a
    /// reason), undo the ignore, or check it again.
    Baseline(BaselineArgs),
    /// Act on the rule a container-firewall alert (`firewall:<Id>`) fired: switch it off or on.
    /// With no action, print the rule and whether it is on.
    Firewall(FirewallArgs),
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

/// What every `handle` action takes.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Configuration file (for the sources and `[admin] listen` and `[admin] token`).
    #[arg(long, short, value_name = "FILE", env = CONFIG_ENV, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// The configured source it came from (default: the only one configured).
    #[arg(long)]
    source: Option<String>,
    /// Act without asking for confirmation (for scripts).
    #[arg(long, short)]
    yes: bool,
    /// Print the plan and the outcome as JSON.
    #[arg(long)]
    json: bool,
}

/// `sasrelay handle vuln` arguments.
#[derive(Debug, clap::Args)]
pub struct VulnArgs {
    #[command(flatten)]
    common: Common,
    /// The vulnerability: its record id (`PrimaryId`), or the finding id `vul:<id>`.
    id: String,
    /// Verify the fix: Security Center checks the asset again.
    #[arg(long, group = "act")]
    verify: bool,
    /// Fix it: Security Center runs the fix on the asset (Linux, Windows and Web-CMS
    /// vulnerabilities).
    #[arg(long, group = "act")]
    fix: bool,
    /// Ignore it (needs --reason).
    #[arg(long, group = "act", requires = "reason")]
    ignore: bool,
    /// Undo an ignore.
    #[arg(long, group = "act")]
    undo_ignore: bool,
    /// Why (kept by Security Center with an ignore).
    #[arg(long)]
    reason: Option<String>,
}

/// `sasrelay handle baseline` arguments.
#[derive(Debug, clap::Args)]
pub struct BaselineArgs {
    #[command(flatten)]
    common: Common,
    /// The failing check: its `CheckWarningId`, or the finding id `baseline:<id>`.
    id: String,
    /// Ignore it (needs --reason).
    #[arg(long, group = "act", requires = "reason")]
    ignore: bool,
    /// Undo an ignore.
    #[arg(long, group = "act")]
    undo_ignore: bool,
    /// Check it again (Security Center re-runs the check on its asset).
    #[arg(long, group = "act")]
    recheck: bool,
    /// Why (kept by Security Center with an ignore).
    #[arg(long)]
    reason: Option<String>,
}

/// `sasrelay handle firewall` arguments.
#[derive(Debug, clap::Args)]
pub struct FirewallArgs {
    #[command(flatten)]
    common: Common,
    /// The alert: its `Id`, or the finding id `firewall:<id>` (found within the last 7 days).
    id: String,
    /// Switch off the rule that fired: its traffic is no longer blocked or alerted on by it.
    #[arg(long, group = "act")]
    rule_off: bool,
    /// Switch the rule that fired on again.
    #[arg(long, group = "act")]
    rule_on: bool,
}

/// `sasrelay handle alert` arguments.
#[derive(Debug, clap::Args)]
pub struct AlertArgs {
    #[command(flatten)]
    common: Common,
    /// The alert: its Security Center id, or the finding id `alert:<id>` a notification shows.
    id: String,
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
}

/// Runs `handle …`.
pub async fn run(command: HandleCommand) -> ExitCode {
    match command {
        HandleCommand::Alert(args) => {
            let action = alert_action(&args);
            act_on(&args.common, Domain::Alerts, &args.id, action, args.remark).await
        }
        HandleCommand::Vuln(args) => {
            let action = first(&[
                (args.verify, Action::Verify),
                (args.fix, Action::Fix),
                (args.ignore, Action::Ignore),
                (args.undo_ignore, Action::UndoIgnore),
            ]);
            act_on(
                &args.common,
                Domain::Vulnerabilities,
                &args.id,
                Ok(action),
                args.reason,
            )
            .await
        }
        HandleCommand::Baseline(args) => {
            let action = first(&[
                (args.ignore, Action::Ignore),
                (args.undo_ignore, Action::UndoIgnore),
                (args.recheck, Action::Recheck),
            ]);
            act_on(
                &args.common,
                Domain::Baseline,
                &args.id,
                Ok(action),
                args.reason,
            )
            .await
        }
        HandleCommand::Firewall(args) => {
            let action = first(&[
                (args.rule_off, Action::RuleOff),
                (args.rule_on, Action::RuleOn),
            ]);
            act_on(&args.common, Domain::Firewall, &args.id, Ok(action), None).await
        }
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

/// The action of the first flag set (clap lets at most one be).
fn first(flags: &[(bool, Action)]) -> Option<Action> {
    flags.iter().find(|(set, _)| *set).map(|(_, a)| a.clone())
}

/// [`act`] on the finding `id` names (a number, or `<prefix>:<number>`), or the usage error.
async fn act_on(
    args: &Common,
    domain: Domain,
    id: &str,
    action: Result<Option<Action>, String>,
    remark: Option<String>,
) -> ExitCode {
    let prefix = match domain {
        Domain::Alerts => "alert",
        Domain::Vulnerabilities => "vul",
        Domain::Baseline => "baseline",
        Domain::Firewall => "firewall",
    };
    match parse_id(id, prefix).and_then(|id| Ok((id, action?))) {
        Ok((id, action)) => act(args, domain, id, action, remark).await,
        Err(why) => usage(why),
    }
}

/// A usage error: said, exit 2.
fn usage(why: String) -> ExitCode {
    eprintln!("error: {why}");
    ExitCode::from(2)
}

/// The action the flags ask for; `None` when none (print the plan only).
fn alert_action(args: &AlertArgs) -> Result<Option<Action>, String> {
    let whitelist = args.whitelist.as_ref();
    let a = match (args.ignore, whitelist, args.handled, args.undo_whitelist) {
        (true, _, _, _) if args.undo => Action::UndoIgnore,
        (true, _, _, _) => Action::Ignore,
        (_, Some(_), _, _) if args.undo => Action::UndoWhitelist,
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
            Action::Whitelist {
                rule: WhitelistRule {
                    field: field.clone(),
                    operate: operate.clone(),
                    value: value.clone(),
                    all_assets: args.scope == "all",
                },
            }
        }
        (_, _, true, _) if args.undo => Action::UndoHandled,
        (_, _, true, _) => Action::Handled,
        (_, _, _, true) => Action::UndoWhitelist,
        _ if args.undo => {
            return Err(
                "--undo needs the action to undo: --ignore, --whitelist or --handled".into(),
            );
        }
        _ => return Ok(None),
    };
    Ok(Some(a))
}

/// A Security Center id from `123` or `<prefix>:123`.
fn parse_id(s: &str, prefix: &str) -> Result<i64, String> {
    let t = s.trim();
    let n = t
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or(t);
    n.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{s:?} is not a {prefix} id (a number, or {prefix}:<number>)"))
}

/// Plans `action` on finding `id` of `domain` (with `remark`), and with an action asks, acts
/// and prints the outcome; without one prints what the finding allows.
async fn act(
    args: &Common,
    domain: Domain,
    id: i64,
    action: Option<Action>,
    remark: Option<String>,
) -> ExitCode {
    let settings = match load_config(&args.config) {
        Ok(s) => s,
        Err(code) => return code,
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
                "name the finding's source with --source (configured: {})",
                names.join(", ")
            ));
        }
    };
    let client = match AdminClient::new(&settings) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let request = Request {
        source,
        domain,
        id,
        // The plan of "no action" is the plan of an action that needs nothing more (no
        // reason): it says what the finding allows.
        action: action.clone().unwrap_or(match domain {
            Domain::Vulnerabilities => Action::Verify,
            Domain::Baseline => Action::UndoIgnore,
            Domain::Firewall => Action::RuleOn,
            _ => Action::Ignore,
        }),
        remark,
        who: os_user(),
        via: "cli".into(),
        asset: None,
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
            serde_json::json!({"allowed": plan.allowed, "fields": plan.fields, "rule": plan.rule, "refused": plan.refused})
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
        if let Some(t) = &plan.rule {
            outln!(
                "Rule \"{}\" (RuleId {}, cluster {}) is {}; it {} matching traffic.",
                terminal_safe(&t.rule.name, 200),
                t.rule.id,
                terminal_safe(&t.cluster_id, 64),
                if t.rule.switch == 1 { "on" } else { "off" },
                t.rule.effect()
            );
        }
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
    fn a_finding_is_named_by_its_number_or_its_finding_id() {
        assert_eq!(parse_id("752312", "alert"), Ok(752312));
        assert_eq!(parse_id("alert:752312", "alert"), Ok(752312));
        assert_eq!(parse_id("vul:7", "vul"), Ok(7));
        assert!(parse_id("vul:1", "alert").is_err());
        assert!(parse_id("-3", "alert").is_err());
    }
}
