//! Acting on a finding (issue 17): what a responder may ask ([`Request`]), what Security
//! Center allows for it now and what the request would do ([`plan`]), doing it and following
//! its task to the end ([`execute`]), and the audit entry that records it
//! ([`crate::store::AuditEntry`]). The daemon runs these for `sasrelay handle` (admin API,
//! `POST /api/v1/handle/plan` then `POST /api/v1/handle`); chat actions will reach the same
//! functions.
//!
//! Alerts: ignore, whitelist, mark handled, and their undos. Vulnerabilities: verify, fix,
//! ignore (with a reason), undo the ignore (`ModifyOperateVul`, on the record looked up by
//! its id). Baseline risks: ignore (with a reason) and undo (`IgnoreHcCheckWarnings`), re-check
//! (`ValidateHcWarnings`, the check item looked up by the id). Container-firewall alerts have
//! no handling API (contract §5.4): the rule that fired is switched off or on instead
//! (`ModifyInterceptionRuleSwitch`, the alert looked up in the last 7 days). Destructive codes
//! (`kill_process`, `kill_and_quara`, `block_ip`, `quara`, `cleanup`,
//! `disable_malicious_defense`) are never requested by sasrelay. Handling needs RAM rights
//! beyond `AliyunYundunSASReadOnlyAccess` (README, "Handling findings"); a refusal names the
//! right.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::finding::Domain;
use crate::sas::client::SasClient;
use crate::sas::error::SasError;
use crate::sas::handle::{self as api, Operation, VulTarget, WhitelistRule};
use crate::sas::source::Source;
use crate::store::{AUDIT_SCHEMA, AuditEntry};

/// Operation codes sasrelay never requests: they kill processes, quarantine files, block
/// addresses or switch protection off — not something to do from a notification.
pub const DESTRUCTIVE: &[&str] = &[
    "kill_process",
    "kill_and_quara",
    "block_ip",
    "quara",
    "cleanup",
    "disable_malicious_defense",
];

/// The tests a whitelist rule may apply.
pub const WHITELIST_OPERATES: &[&str] = &[
    "contains",
    "notContains",
    "regex",
    "strEqual",
    "strNotEqual",
];

/// What to do to a finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Ignore it (alerts: `ignore`; vulnerabilities: `vul_ignore`; baseline: `Type` 1). A
    /// vulnerability or baseline ignore needs a reason (the request's remark).
    Ignore,
    /// Add a whitelist rule built from it (`advance_mark_mis_info`): it and matching alerts
    /// are false positives from now on.
    Whitelist {
        /// The rule.
        rule: WhitelistRule,
    },
    /// Mark it handled by hand (`manual_handled`).
    Handled,
    /// Undo an ignore (`OperationCancelIgnoreSuspEvent`).
    UndoIgnore,
    /// Remove the whitelist mark (`rm_mark_mis_info`).
    UndoWhitelist,
    /// Undo "handled by hand" (`cancle_manual`, the service's spelling).
    UndoHandled,
    /// A vulnerability: verify its fix (`vul_verify`: Security Center checks the asset again).
    Verify,
    /// A vulnerability: fix it (`vul_fix`: Security Center runs the fix on the asset; Linux,
    /// Windows and Web-CMS vulnerabilities only).
    Fix,
    /// A baseline risk: check it again (`ValidateHcWarnings`), on its asset.
    Recheck,
    /// A container-firewall alert: switch on the rule that fired (`ModifyInterceptionRuleSwitch`).
    RuleOn,
    /// A container-firewall alert: switch off the rule that fired. Its traffic is then no longer
    /// blocked or alerted on: the command line only, never from a notification.
    RuleOff,
}

impl Action {
    /// Its name in the CLI, the audit log and notifications.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Ignore => "ignore",
            Action::Whitelist { .. } => "whitelist",
            Action::Handled => "handled",
            Action::UndoIgnore => "undo-ignore",
            Action::UndoWhitelist => "undo-whitelist",
            Action::UndoHandled => "undo-handled",
            Action::Verify => "verify",
            Action::Fix => "fix",
            Action::Recheck => "recheck",
            Action::RuleOn => "rule-on",
            Action::RuleOff => "rule-off",
        }
    }

    /// The `OperationCode` of `HandleSecurityEvents`; `None` for an undone ignore, which is
    /// its own action.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Action::Ignore => Some("ignore"),
            Action::Whitelist { .. } => Some("advance_mark_mis_info"),
            Action::Handled => Some("manual_handled"),
            Action::UndoIgnore => None,
            Action::UndoWhitelist => Some("rm_mark_mis_info"),
            Action::UndoHandled => Some("cancle_manual"),
            Action::Verify | Action::Fix | Action::Recheck | Action::RuleOn | Action::RuleOff => {
                None
            }
        }
    }

    /// What it does, for people.
    pub fn describe(&self) -> String {
        match self {
            Action::Ignore => "ignore it".into(),
            Action::Whitelist { rule } => format!(
                "whitelist: alerts whose {} {} {:?} become false positives, on {}",
                rule.field,
                rule.operate,
                rule.value,
                if rule.all_assets {
                    "every asset"
                } else {
                    "this asset only"
                }
            ),
            Action::Handled => "mark the alert handled".into(),
            Action::UndoIgnore => "undo the ignore (it is open again)".into(),
            Action::UndoWhitelist => "remove the whitelist mark (the alert is open again)".into(),
            Action::UndoHandled => "undo \"handled\" (the alert is open again)".into(),
            Action::Verify => "verify the fix (Security Center checks the asset again)".into(),
            Action::Fix => "fix it (Security Center runs the fix on the asset)".into(),
            Action::Recheck => "check it again (Security Center re-runs the check)".into(),
            Action::RuleOn => "switch on the firewall rule that fired".into(),
            Action::RuleOff => "switch off the firewall rule that fired".into(),
        }
    }
}

fn alerts() -> Domain {
    Domain::Alerts
}

/// One request to act on a finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The configured source the finding came from.
    pub source: String,
    /// Its domain (default `alerts`).
    #[serde(default = "alerts")]
    pub domain: Domain,
    /// Its Security Center id: an alert's `Id`, a vulnerability's `PrimaryId`, a baseline
    /// warning's `CheckWarningId` (the finding is `alert:<id>`, `vul:<id>`, `baseline:<id>`).
    pub id: i64,
    /// What to do.
    #[serde(flatten)]
    pub action: Action,
    /// A remark Security Center keeps with the action (the reason of a vulnerability or
    /// baseline ignore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    /// Who asks (the OS user of the CLI, or a chat identity).
    pub who: String,
    /// A baseline re-check: the asset (its UUID) it is limited to; the daemon fills it from
    /// the finding's record when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// Through what: `cli` or `chat`.
    pub via: String,
}

impl Request {
    /// The finding's id (`alert:<id>`, `vul:<id>`, `baseline:<id>`, `firewall:<id>`).
    pub fn finding(&self) -> String {
        let prefix = match self.domain {
            Domain::Alerts => "alert",
            Domain::Vulnerabilities => "vul",
            Domain::Baseline => "baseline",
            Domain::Firewall => "firewall",
        };
        format!("{prefix}:{}", self.id)
    }
}

/// Why sasrelay or Security Center refuses a request, with what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The service's error code, or sasrelay's (`NotAllowed`, `UnknownField`, …).
    pub code: String,
    /// What was refused.
    pub message: String,
    /// What to do.
    pub hint: String,
    /// The `RequestId` of the call that answered, when one did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_id: String,
}

/// What a request would do, checked against what the alert allows now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The request.
    pub request: Request,
    /// What it would do, for people.
    pub will: String,
    /// The operation codes the alert allows now (destructive ones left out).
    pub allowed: Vec<String>,
    /// The fields a whitelist rule may test, with the alert's values.
    pub fields: Vec<api::MarkField>,
    /// A vulnerability: the record acted on, as looked up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vul: Option<VulTarget>,
    /// A baseline re-check: the check item, as looked up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckTarget>,
    /// A container-firewall alert: the rule that fired, as looked up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleTarget>,
    /// Why it cannot be done, when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
}

/// The check item a baseline re-check runs again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckTarget {
    /// Its `CheckId`.
    pub check_id: i64,
    /// Its title.
    pub item: String,
}

/// The container-firewall rule a request switches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleTarget {
    /// The cluster it belongs to.
    pub cluster_id: String,
    /// The rule, as listed now.
    pub rule: api::InterceptionRule,
}

/// How long back a firewall alert is looked for by its id (the API lists by time window only).
pub const FIREWALL_LOOKBACK: Duration = Duration::from_secs(7 * 86_400);

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// `success`, `failure`, `refused` or `unfinished`.
    pub result: String,
    /// For people: what happened.
    pub message: String,
    /// The service's code when not a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The write's `RequestId`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_id: String,
    /// The task, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<i64>,
}

impl Outcome {
    fn refused(r: &Refusal) -> Outcome {
        Outcome {
            result: "refused".into(),
            message: format!("{} ({})", r.message, r.hint),
            error_code: Some(r.code.clone()),
            request_id: r.request_id.clone(),
            task_id: None,
        }
    }

    /// An action not ended yet: its audit entry says `under_way` (see
    /// [`crate::store::Store::begin_handling`]).
    pub fn under_way() -> Outcome {
        Outcome {
            result: "under_way".into(),
            message: "under way".into(),
            error_code: None,
            request_id: String::new(),
            task_id: None,
        }
    }

    /// The audit entry of `request` ending so at `at_ms`.
    pub fn audit(&self, request: &Request, at_ms: i64) -> AuditEntry {
        AuditEntry {
            v: AUDIT_SCHEMA,
            at_ms,
            who: request.who.clone(),
            via: request.via.clone(),
            source: request.source.clone(),
            domain: request.domain.as_str().into(),
            finding: request.finding(),
            action: request.action.name().into(),
            detail: request.action.describe(),
            result: self.result.clone(),
            error_code: self.error_code.clone(),
            message: self.message.clone(),
            request_id: self.request_id.clone(),
            task_id: self.task_id,
        }
    }
}

/// What a failed call means for a handling request: the service's code, its message and a hint
/// naming what to do (the RAM rights for a permission error).
pub fn refusal(e: &SasError, action: &str) -> Refusal {
    let (code, request_id, message) = match e {
        SasError::Api { body, status, .. } => (
            body.code.clone(),
            body.request_id.clone(),
            format!(
                "{action}: Security Center answered {} (HTTP {status}): {}",
                body.code, body.message
            ),
        ),
        other => ("Unreachable".to_string(), String::new(), other.to_string()),
    };
    let hint = match code.as_str() {
        "Forbidden.RAM" | "NoPermission" => format!(
            "handling needs write rights the read-only policy lacks: allow yundun-sas:{action} (README, \"Handling findings\", has the whole policy)"
        ),
        "SecurityEventNotExists" => {
            "no such alert in this source's account and region: check the id (the number in alert:<id>) and --source".into()
        }
        "Unreachable" => "Security Center could not be reached; nothing was changed, try again".into(),
        c => crate::sas::error::hint(c).into(),
    };
    Refusal {
        code,
        message: crate::text::strip_control(&message),
        hint,
        request_id,
    }
}

fn refused(code: &str, message: String, hint: String) -> Option<Refusal> {
    Some(Refusal {
        code: code.into(),
        message,
        hint,
        request_id: String::new(),
    })
}

/// Checks `request` against what its finding allows now (an alert:
/// `DescribeSecurityEventOperations`; a vulnerability: its record's state): the plan says
/// what it would do, or why it cannot.
pub async fn plan(source: &Source, request: Request) -> Plan {
    let mut plan = Plan {
        will: format!(
            "{} of source {}: {}",
            request.finding(),
            request.source,
            request.action.describe()
        ),
        request,
        allowed: Vec::new(),
        fields: Vec::new(),
        vul: None,
        check: None,
        rule: None,
        refused: None,
    };
    let domain = plan.request.domain;
    let fits = match domain {
        Domain::Alerts => matches!(
            plan.request.action,
            Action::Ignore
                | Action::Whitelist { .. }
                | Action::Handled
                | Action::UndoIgnore
                | Action::UndoWhitelist
                | Action::UndoHandled
        ),
        Domain::Vulnerabilities => matches!(
            plan.request.action,
            Action::Ignore | Action::UndoIgnore | Action::Verify | Action::Fix
        ),
        Domain::Baseline => matches!(
            plan.request.action,
            Action::Ignore | Action::UndoIgnore | Action::Recheck
        ),
        Domain::Firewall => matches!(plan.request.action, Action::RuleOn | Action::RuleOff),
    };
    if !fits {
        plan.refused = refused(
            "NotForDomain",
            format!(
                "{} is not an action on {}",
                plan.request.action.name(),
                domain.as_str()
            ),
            "alerts: ignore, whitelist, handled (and --undo); vulnerabilities: verify, fix, ignore, undo-ignore; baseline: ignore, undo-ignore, recheck; firewall: rule-on, rule-off (the rule that fired; Security Center has no action on the alert itself)".into(),
        );
        return plan;
    }
    let needs_reason = domain != Domain::Alerts && plan.request.action == Action::Ignore;
    if needs_reason
        && plan
            .request
            .remark
            .as_deref()
            .is_none_or(|r| r.trim().is_empty())
    {
        plan.refused = refused(
            "MissingReason",
            format!("ignoring {} needs a reason", plan.request.finding()),
            "give one with --reason: Security Center keeps it with the ignore".into(),
        );
        return plan;
    }
    match domain {
        Domain::Alerts => plan_alert(source.client(), plan).await,
        Domain::Vulnerabilities => plan_vul(source, plan).await,
        Domain::Firewall => plan_firewall(source, plan).await,
        Domain::Baseline => plan_baseline(source.client(), plan).await,
    }
}

/// A container-firewall alert's plan: the alert looked up in the last [`FIREWALL_LOOKBACK`]
/// (its cluster and rule), then the rule as listed now; switching it the other way is what
/// is allowed.
async fn plan_firewall(source: &Source, mut plan: Plan) -> Plan {
    let now = time::OffsetDateTime::now_utc();
    let window = crate::sas::source::ReadWindow {
        now,
        occurred_since: None,
        handled_since: None,
        firewall_since: now - FIREWALL_LOOKBACK,
    };
    let finding = plan.request.finding();
    let alert = match source.read(Domain::Firewall, &window).await {
        Ok(sweep) => sweep.findings.into_iter().find(|f| f.id == finding),
        Err(e) => {
            plan.refused = Some(refusal(&e, "ListInterceptionHistory"));
            return plan;
        }
    };
    let Some(alert) = alert else {
        plan.refused = refused(
            "FirewallAlertNotFound",
            format!(
                "source {} lists no {finding} in the last 7 days",
                plan.request.source
            ),
            "check the id (the number in firewall:<id>) and --source".into(),
        );
        return plan;
    };
    let cluster_id = alert.raw["ClusterId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let rule_id = alert.raw["RuleId"].as_i64().unwrap_or(0);
    if cluster_id.is_empty() || rule_id == 0 {
        plan.refused = refused(
            "NoRule",
            format!("{finding} names no rule (ClusterId {cluster_id:?}, RuleId {rule_id})"),
            "edit the rule in the console".into(),
        );
        return plan;
    }
    let rule = match api::interception_rule(source.client(), &cluster_id, rule_id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            plan.refused = refused(
                "RuleNotFound",
                format!("cluster {cluster_id} lists no rule {rule_id} (deleted since {finding}?)"),
                "look at the cluster's rules in the console".into(),
            );
            return plan;
        }
        Err(e) => {
            plan.refused = Some(refusal(&e, "ListInterceptionRulePage"));
            return plan;
        }
    };
    let on = rule.switch == 1;
    plan.allowed = vec![if on { "rule-off" } else { "rule-on" }.to_string()];
    plan.will = format!(
        "{finding} of source {}: switch {} rule \"{}\" (RuleId {rule_id}, cluster {cluster_id}; it {} matching traffic){}",
        plan.request.source,
        if plan.request.action == Action::RuleOn {
            "on"
        } else {
            "off"
        },
        crate::text::strip_control(&rule.name),
        rule.effect(),
        if plan.request.action == Action::RuleOff {
            ": from then on that traffic is neither blocked nor alerted on by this rule"
        } else {
            ""
        }
    );
    let name = plan.request.action.name();
    if !plan.allowed.iter().any(|a| a == name) {
        plan.refused = refused(
            "NotAllowed",
            format!(
                "rule {rule_id} is already {}",
                if on { "on" } else { "off" }
            ),
            format!("it allows now: {}", plan.allowed.join(", ")),
        );
    }
    plan.rule = Some(RuleTarget { cluster_id, rule });
    plan
}

/// A baseline risk's plan: the service judges an ignore and its undo by the id; a re-check
/// needs the check item, looked up by the id (`DescribeCheckWarningDetail`).
async fn plan_baseline(client: &SasClient, mut plan: Plan) -> Plan {
    plan.allowed = vec!["ignore".into(), "undo-ignore".into(), "recheck".into()];
    if plan.request.action != Action::Recheck {
        return plan;
    }
    let detail =
        match crate::sas::api::check_warning_detail(client, &plan.request.id.to_string()).await {
            Ok(d) => d.typed,
            Err(e) => {
                plan.refused = Some(refusal(&e, "DescribeCheckWarningDetail"));
                return plan;
            }
        };
    let Some(check_id) = detail.check_id else {
        plan.refused = refused(
            "CheckNotFound",
            format!(
                "Security Center returns no check item for {}",
                plan.request.finding()
            ),
            "check the id (the number in baseline:<id>) and --source".into(),
        );
        return plan;
    };
    let item = crate::text::strip_control(&detail.item);
    plan.will = format!(
        "{} of source {}: check \"{}\" (CheckId {check_id}) again, on {}",
        plan.request.finding(),
        plan.request.source,
        item,
        match &plan.request.asset {
            Some(a) => format!("asset {a}"),
            None => "every asset where it fails (sasrelay does not know this one's asset)".into(),
        }
    );
    plan.check = Some(CheckTarget { check_id, item });
    plan
}

/// Vulnerability types Security Center can fix (`vul_fix` is refused for `emg`, `app`, `sca`).
pub const FIXABLE_VUL_TYPES: &[&str] = &["cve", "sys", "cms"];

/// A vulnerability's plan: its record (in any state), and what that state allows.
async fn plan_vul(source: &Source, mut plan: Plan) -> Plan {
    let record = match source
        .vulnerability_record(&plan.request.id.to_string())
        .await
    {
        Ok(Some(r)) => r,
        Ok(None) => {
            plan.refused = refused(
                "VulNotFound",
                format!(
                    "Security Center returns no vulnerability record {} in source {}",
                    plan.request.id, plan.request.source
                ),
                "check the id (the number in vul:<id>), --source, and the source's vulnerability_types".into(),
            );
            return plan;
        }
        Err(e) => {
            plan.refused = Some(refusal(&e, "DescribeVulList"));
            return plan;
        }
    };
    let status = record.status.unwrap_or(0);
    plan.allowed = match status {
        1 | 2 | 3 | 12 => {
            let mut a = vec!["verify".to_string(), "ignore".to_string()];
            if FIXABLE_VUL_TYPES.contains(&record.kind.as_str()) {
                a.push("fix".into());
            }
            a
        }
        10 => vec!["undo-ignore".into()],
        _ => Vec::new(),
    };
    plan.vul = Some(VulTarget {
        kind: record.kind,
        name: record.name,
        uuid: record.uuid,
        tag: record.tag,
    });
    let name = plan.request.action.name();
    if !plan.allowed.iter().any(|a| a == name) {
        let now = if plan.allowed.is_empty() {
            "nothing".to_string()
        } else {
            plan.allowed.join(", ")
        };
        plan.refused = refused(
            "NotAllowed",
            format!(
                "{} (Status {status}) does not allow {name} now; it allows: {now}",
                plan.request.finding()
            ),
            "a pending vulnerability allows verify, ignore and (Linux, Windows, Web-CMS) fix; an ignored one allows undo-ignore; one being fixed, fixed or expired allows nothing".into(),
        );
    }
    plan
}

/// An alert's plan: what `DescribeSecurityEventOperations` allows.
async fn plan_alert(client: &SasClient, mut plan: Plan) -> Plan {
    let ops = match api::event_operations(client, plan.request.id).await {
        Ok(ops) => ops,
        Err(e) => {
            plan.refused = Some(refusal(&e, "DescribeSecurityEventOperations"));
            return plan;
        }
    };
    let offered: Vec<&Operation> = ops
        .operations
        .iter()
        .filter(|o| !DESTRUCTIVE.contains(&o.code.as_str()))
        .collect();
    plan.allowed = offered
        .iter()
        .filter(|o| o.user_can_operate)
        .map(|o| o.code.clone())
        .collect();
    if let Some(w) = offered.iter().find(|o| o.code == "advance_mark_mis_info") {
        plan.fields = w
            .mark_fields
            .iter()
            .chain(&w.mark_fields_source)
            .cloned()
            .collect();
    }
    let refuse = |code: &str, message: String, hint: String| Refusal {
        code: code.into(),
        message,
        hint,
        request_id: ops.request_id.clone(),
    };
    let Some(code) = plan.request.action.code() else {
        // Undoing an ignore is its own action; the service judges it.
        return plan;
    };
    let allowed = plan.allowed.iter().any(|c| c == code);
    if !allowed {
        let now = if plan.allowed.is_empty() {
            "nothing".to_string()
        } else {
            plan.allowed.join(", ")
        };
        let name = plan.request.action.name();
        let what = if name == code {
            name.to_string()
        } else {
            format!("{name} ({code})")
        };
        plan.refused = Some(refuse(
            "NotAllowed",
            format!(
                "{} does not allow {what} now; it allows: {now}",
                plan.request.finding()
            ),
            "an alert already handled allows only the undo of what was done to it (undo-ignore, undo-whitelist, undo-handled); `sasrelay handle alert ID --source S` with no action lists what it allows".into(),
        ));
        return plan;
    }
    if let Action::Whitelist { rule } = &plan.request.action {
        match plan.fields.iter().find(|f| f.name == rule.field) {
            None => {
                let offered: Vec<String> = plan.fields.iter().map(|f| f.name.clone()).collect();
                plan.refused = Some(refuse(
                    "UnknownField",
                    format!(
                        "{} offers no whitelist field {:?}",
                        plan.request.finding(),
                        rule.field
                    ),
                    format!("it offers: {}", offered.join(", ")),
                ));
            }
            Some(f) if !f.supported.is_empty() && !f.supported.contains(&rule.operate) => {
                plan.refused = Some(refuse(
                    "UnsupportedTest",
                    format!(
                        "field {} does not support the test {:?}",
                        f.name, rule.operate
                    ),
                    format!("it supports: {}", f.supported.join(", ")),
                ));
            }
            Some(_) => {}
        }
    }
    plan
}

/// How long [`execute`] follows a task before it reports it unfinished (the service's tasks
/// end in a second or two; the admin client waits 15 s for an answer).
pub const FOLLOW_FOR: Duration = Duration::from_secs(10);

/// Does what `plan` says — unless it was refused — and, for an alert, follows its task to its
/// end (at most `follow_for`).
pub async fn execute(source: &Source, plan: &Plan, follow_for: Duration) -> Outcome {
    if let Some(r) = &plan.refused {
        return Outcome::refused(r);
    }
    let request = &plan.request;
    let client = source.client();
    let done = |request_id: String| Outcome {
        result: "success".into(),
        message: format!("{}: {}", request.finding(), request.action.describe()),
        error_code: None,
        request_id,
        task_id: None,
    };
    match request.domain {
        Domain::Vulnerabilities => {
            let Some(target) = &plan.vul else {
                return Outcome::refused(&Refusal {
                    code: "VulNotFound".into(),
                    message: "the plan holds no record to act on".into(),
                    hint: "ask again".into(),
                    request_id: String::new(),
                });
            };
            let operate = match request.action {
                Action::Verify => "vul_verify",
                Action::Fix => "vul_fix",
                Action::UndoIgnore => "vul_undo_ignore",
                _ => "vul_ignore",
            };
            return match api::modify_operate_vul(client, operate, target, request.remark.as_deref())
                .await
            {
                Ok(id) => done(id),
                Err(e) => Outcome::refused(&refusal(&e, "ModifyOperateVul")),
            };
        }
        Domain::Baseline if request.action == Action::Recheck => {
            let Some(check) = &plan.check else {
                return Outcome::refused(&Refusal {
                    code: "CheckNotFound".into(),
                    message: format!("{}: no check item to re-run", request.finding()),
                    hint: "plan the request first".into(),
                    request_id: String::new(),
                });
            };
            let assets: Vec<String> = request.asset.iter().cloned().collect();
            return match api::validate_warnings(client, &[check.check_id], &assets).await {
                Ok(id) => done(id),
                Err(e) => Outcome::refused(&refusal(&e, "ValidateHcWarnings")),
            };
        }
        Domain::Baseline => {
            let ignore = request.action == Action::Ignore;
            return match api::ignore_check_warnings(
                client,
                ignore,
                &[request.id],
                request.remark.as_deref(),
            )
            .await
            {
                Ok(id) => done(id),
                Err(e) => Outcome::refused(&refusal(&e, "IgnoreHcCheckWarnings")),
            };
        }
        Domain::Firewall => {
            let Some(target) = &plan.rule else {
                return Outcome::refused(&Refusal {
                    code: "RuleNotFound".into(),
                    message: format!("{}: no rule to switch", request.finding()),
                    hint: "plan the request first".into(),
                    request_id: String::new(),
                });
            };
            let on = request.action == Action::RuleOn;
            return match api::switch_interception_rules(
                client,
                &target.cluster_id,
                &[target.rule.id],
                on,
            )
            .await
            {
                Ok(id) => done(id),
                Err(e) => Outcome::refused(&refusal(&e, "ModifyInterceptionRuleSwitch")),
            };
        }
        Domain::Alerts => {}
    }
    let remark = request.remark.as_deref();
    let Some(code) = request.action.code() else {
        return match api::cancel_ignore(client, &[request.id], remark).await {
            Err(e) => Outcome::refused(&refusal(&e, "OperationCancelIgnoreSuspEvent")),
            Ok(c) => match c.refused {
                None => Outcome {
                    result: "success".into(),
                    message: format!("{}: the ignore is undone", request.finding()),
                    error_code: None,
                    request_id: c.request_id,
                    task_id: None,
                },
                Some((code, message)) => Outcome {
                    result: "failure".into(),
                    message: crate::text::strip_control(&message),
                    error_code: Some(code),
                    request_id: c.request_id,
                    task_id: None,
                },
            },
        };
    };
    let rule = match &request.action {
        Action::Whitelist { rule } => Some(rule),
        _ => None,
    };
    let task = match api::handle_events(client, code, &[request.id], rule, remark).await {
        Ok(t) => t,
        Err(e) => return Outcome::refused(&refusal(&e, "HandleSecurityEvents")),
    };
    let deadline = Instant::now() + follow_for;
    let mut wait = Duration::from_millis(200);
    loop {
        match api::operation_status(client, task.id).await {
            Ok(status) if status.ended() => return ended(request, &task, &status),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(task = task.id, error = %e, "Cannot read the handling task's status; trying again.");
            }
        }
        if Instant::now() + wait > deadline {
            return Outcome {
                result: "unfinished".into(),
                message: format!(
                    "task {} had not ended after {}s: Security Center may still apply it (the next poll shows)",
                    task.id,
                    follow_for.as_secs()
                ),
                error_code: None,
                request_id: task.request_id.clone(),
                task_id: Some(task.id),
            };
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

/// The outcome of a task that ended with `status`.
fn ended(request: &Request, task: &api::Task, status: &api::TaskStatus) -> Outcome {
    let mine = status
        .events
        .iter()
        .find(|e| e.id == request.id.to_string());
    let failed = status.status == "Failure" || mine.is_some_and(|e| e.status == "Failed");
    let (result, error_code, message) = if failed {
        let code = mine
            .map(|e| e.error_code.clone())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "Failure".into());
        let message = format!(
            "{} was not {}: Security Center answered {code}",
            request.finding(),
            request.action.name()
        );
        ("failure", Some(code), message)
    } else {
        (
            "success",
            None,
            format!("{}: {}", request.finding(), request.action.describe()),
        )
    };
    Outcome {
        result: result.into(),
        message: crate::text::strip_control(&message),
        error_code,
        request_id: task.request_id.clone(),
        task_id: Some(task.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reads_and_writes_as_the_admin_api_carries_it() {
        let r = Request {
            source: "prod".into(),
            domain: Domain::Alerts,
            id: 752312,
            action: Action::Whitelist {
                rule: WhitelistRule {
                    field: "cmdline".into(),
                    operate: "contains".into(),
                    value: "/bin/bash -i".into(),
                    all_assets: false,
                },
            },
            remark: None,
            who: "alice".into(),
            via: "cli".into(),
            asset: None,
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["action"], "whitelist");
        assert_eq!(v["rule"]["field"], "cmdline");
        let back: Request = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        let ignore: Request = serde_json::from_value(serde_json::json!({
            "source": "prod", "id": 1, "action": "undo-ignore", "who": "bob", "via": "cli"
        }))
        .unwrap();
        assert_eq!(ignore.action, Action::UndoIgnore);
        assert_eq!(ignore.action.code(), None);
        assert_eq!(ignore.domain, Domain::Alerts, "alerts unless named");
        assert_eq!(ignore.finding(), "alert:1");
        let vul: Request = serde_json::from_value(serde_json::json!({
            "source": "prod", "domain": "vulnerabilities", "id": 7, "action": "verify",
            "who": "bob", "via": "cli"
        }))
        .unwrap();
        assert_eq!(vul.finding(), "vul:7");
        assert_eq!(vul.action, Action::Verify);
    }

    #[test]
    fn no_action_sasrelay_requests_is_destructive() {
        let all = [
            Action::Ignore,
            Action::Handled,
            Action::UndoIgnore,
            Action::UndoWhitelist,
            Action::UndoHandled,
        ];
        for a in all {
            assert!(a.code().is_none_or(|c| !DESTRUCTIVE.contains(&c)), "{a:?}");
        }
    }
}
