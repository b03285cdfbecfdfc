//! Handling a finding (issue 17): the Security Center actions behind the console's "Handle"
//! (`shared/sas-api/README.md` §5), typed. Alerts: which codes an alert allows depends on the
//! alert: [`event_operations`] asks first; [`handle_events`] starts a task, which
//! [`operation_status`] follows to its end; undoing an ignore is its own action
//! ([`cancel_ignore`]). Vulnerabilities: [`modify_operate_vul`] (verify, fix, ignore, undo).
//! Baseline risks: [`ignore_check_warnings`] (ignore, undo).
//!
//! Writes are called once: a retried write could act twice (a whitelist rule added twice, a
//! task started twice). Reads ([`event_operations`], [`operation_status`]) retry as every
//! listing does.

use serde::Deserialize;

use super::client::SasClient;
use super::error::SasError;
use super::models::lenient;
use super::params::Params;

/// What a whitelist rule may test, as [`event_operations`] offers it (`MarkField`, read with the
/// service's `FiledName` spelling; written, in sasrelay's API, as `name`, `alias`, `value`,
/// `supported`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct MarkField {
    /// The field (`cmdline`, `filepath`, …).
    #[serde(
        rename(deserialize = "FiledName"),
        alias = "name",
        default,
        deserialize_with = "lenient::string"
    )]
    pub name: String,
    /// Its name for people.
    #[serde(
        rename(deserialize = "FiledAliasName"),
        alias = "alias",
        default,
        deserialize_with = "lenient::string"
    )]
    pub alias: String,
    /// The alert's value of it.
    #[serde(
        rename(deserialize = "MarkMisValue"),
        alias = "value",
        default,
        deserialize_with = "lenient::string"
    )]
    pub value: String,
    /// The tests it supports (`contains`, `notContains`, `regex`, `strEqual`, `strNotEqual`).
    #[serde(
        rename(deserialize = "SupportedMisType"),
        alias = "supported",
        default,
        deserialize_with = "lenient::string_list"
    )]
    pub supported: Vec<String>,
}

/// One operation an alert allows now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Operation {
    /// `ignore`, `advance_mark_mis_info`, `manual_handled`, `rm_mark_mis_info`, …
    #[serde(
        rename = "OperationCode",
        default,
        deserialize_with = "lenient::string"
    )]
    pub code: String,
    /// Whether this user may perform it.
    #[serde(rename = "UserCanOperate", default, deserialize_with = "lenient::bool")]
    pub user_can_operate: bool,
    /// For a whitelist: the fields a rule may test.
    #[serde(rename = "MarkField", default, deserialize_with = "lenient::vec")]
    pub mark_fields: Vec<MarkField>,
    /// For a whitelist: further fields from the alert's source.
    #[serde(
        rename = "MarkFieldsSource",
        default,
        deserialize_with = "lenient::vec"
    )]
    pub mark_fields_source: Vec<MarkField>,
}

/// [`event_operations`]' answer.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Operations {
    /// `RequestId`.
    #[serde(rename = "RequestId", default, deserialize_with = "lenient::string")]
    pub request_id: String,
    /// What the alert allows.
    #[serde(
        rename = "SecurityEventOperationsResponse",
        default,
        deserialize_with = "lenient::vec"
    )]
    pub operations: Vec<Operation>,
}

/// The operations alert `id` (`SuspEvents[].Id`) allows now (`DescribeSecurityEventOperations`).
pub async fn event_operations(client: &SasClient, id: i64) -> Result<Operations, SasError> {
    let mut q = Params::new();
    q.set("SecurityEventId", id).set("Lang", client.lang());
    client
        .call("DescribeSecurityEventOperations", &q, None)
        .await
}

/// A whitelist rule (`MarkMissParam`): alerts whose `field` passes `operate` against `value`
/// are marked false positives from now on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WhitelistRule {
    /// A field the alert offers ([`MarkField::name`]).
    pub field: String,
    /// `contains`, `notContains`, `regex`, `strEqual` or `strNotEqual`.
    pub operate: String,
    /// What the field is tested against.
    pub value: String,
    /// The rule's reach: this asset only (`part`) or every asset (`ALL`).
    pub all_assets: bool,
}

impl WhitelistRule {
    /// The `MarkMissParam` JSON.
    pub fn param(&self) -> String {
        serde_json::json!({
            "field": self.field,
            "operate": self.operate,
            "fieldValue": self.value,
            "uuid": if self.all_assets { "ALL" } else { "part" },
        })
        .to_string()
    }
}

#[derive(Debug, Default, Deserialize)]
struct Started {
    #[serde(rename = "RequestId", default, deserialize_with = "lenient::string")]
    request_id: String,
    #[serde(
        rename = "HandleSecurityEventsResponse",
        default,
        deserialize_with = "lenient::object"
    )]
    response: TaskRef,
}

#[derive(Debug, Default, Deserialize)]
struct TaskRef {
    #[serde(rename = "TaskId", default, deserialize_with = "lenient::i64")]
    task_id: i64,
}

/// A task [`handle_events`] started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// `TaskId`, to follow with [`operation_status`].
    pub id: i64,
    /// The start's `RequestId`.
    pub request_id: String,
}

/// Starts `code` on alerts `ids` (`HandleSecurityEvents`), with a whitelist `rule` for
/// `advance_mark_mis_info` and a `remark`. Called once (a write).
pub async fn handle_events(
    client: &SasClient,
    code: &str,
    ids: &[i64],
    rule: Option<&WhitelistRule>,
    remark: Option<&str>,
) -> Result<Task, SasError> {
    let mut q = Params::new();
    q.set("OperationCode", code);
    q.set_flat("SecurityEventIds", ids);
    q.set_opt("MarkMissParam", rule.map(WhitelistRule::param));
    q.set_opt("Remark", remark.filter(|r| !r.is_empty()));
    let started: Started = client.call_once("HandleSecurityEvents", &q, None).await?;
    Ok(Task {
        id: started.response.task_id,
        request_id: started.request_id,
    })
}

/// One alert's part of a task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct EventStatus {
    /// The alert (`SecurityEventId`).
    #[serde(
        rename = "SecurityEventId",
        default,
        deserialize_with = "lenient::string"
    )]
    pub id: String,
    /// `Processing`, `Success` or `Failed`.
    #[serde(rename = "Status", default, deserialize_with = "lenient::string")]
    pub status: String,
    /// Why it failed (`EventNotSupportOperation`, …); `Success` otherwise.
    #[serde(rename = "ErrorCode", default, deserialize_with = "lenient::string")]
    pub error_code: String,
}

/// Where a task stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct TaskStatus {
    /// `Processing`, `Pending`, `Success` or `Failure`.
    #[serde(rename = "TaskStatus", default, deserialize_with = "lenient::string")]
    pub status: String,
    /// Per alert.
    #[serde(
        rename = "SecurityEventOperationStatuses",
        default,
        deserialize_with = "lenient::vec"
    )]
    pub events: Vec<EventStatus>,
}

impl TaskStatus {
    /// Whether the task ended (succeeded or failed).
    pub fn ended(&self) -> bool {
        matches!(self.status.as_str(), "Success" | "Failure")
    }
}

#[derive(Debug, Default, Deserialize)]
struct StatusBody {
    #[serde(
        rename = "SecurityEventOperationStatusResponse",
        default,
        deserialize_with = "lenient::object"
    )]
    response: TaskStatus,
}

/// Where task `task_id` stands (`DescribeSecurityEventOperationStatus`).
pub async fn operation_status(client: &SasClient, task_id: i64) -> Result<TaskStatus, SasError> {
    let mut q = Params::new();
    q.set("TaskId", task_id);
    let body: StatusBody = client
        .call("DescribeSecurityEventOperationStatus", &q, None)
        .await?;
    Ok(body.response)
}

#[derive(Debug, Default, Deserialize)]
struct Cancelled {
    #[serde(rename = "RequestId", default, deserialize_with = "lenient::string")]
    request_id: String,
    #[serde(rename = "Success", default, deserialize_with = "lenient::bool")]
    success: bool,
    #[serde(rename = "Code", default, deserialize_with = "lenient::string")]
    code: String,
    #[serde(rename = "Message", default, deserialize_with = "lenient::string")]
    message: String,
}

/// What [`cancel_ignore`] answered: its `RequestId`, and the service's code and message when
/// it did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cancel {
    /// `RequestId`.
    pub request_id: String,
    /// `None` on success; else the service's `Code` and `Message`.
    pub refused: Option<(String, String)>,
}

/// Puts ignored alerts `ids` back to open (`OperationCancelIgnoreSuspEvent`). Called once.
pub async fn cancel_ignore(
    client: &SasClient,
    ids: &[i64],
    remark: Option<&str>,
) -> Result<Cancel, SasError> {
    let mut q = Params::new();
    q.set_flat("SecurityEventIds", ids);
    q.set_opt("Remark", remark.filter(|r| !r.is_empty()));
    let c: Cancelled = client
        .call_once("OperationCancelIgnoreSuspEvent", &q, None)
        .await?;
    Ok(Cancel {
        request_id: c.request_id,
        refused: (!c.success).then_some((c.code, c.message)),
    })
}

#[derive(Debug, Default, Deserialize)]
struct Answered {
    #[serde(rename = "RequestId", default, deserialize_with = "lenient::string")]
    request_id: String,
}

/// One vulnerability record to act on (`Info` of `ModifyOperateVul`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VulTarget {
    /// `Type`: `cve`, `sys`, `cms`, `emg`, `app` or `sca`.
    pub kind: String,
    /// `Name`.
    pub name: String,
    /// The asset (`Uuid`).
    pub uuid: String,
    /// `Tag` (`oval`, `system`, `cms`, …).
    pub tag: String,
}

/// `ModifyOperateVul`: `operate` (`vul_verify`, `vul_fix`, `vul_ignore`, `vul_undo_ignore`) on
/// `target`, with `reason` (required for `vul_ignore`). Called once (a write); its
/// `RequestId`.
pub async fn modify_operate_vul(
    client: &SasClient,
    operate: &str,
    target: &VulTarget,
    reason: Option<&str>,
) -> Result<String, SasError> {
    let mut q = Params::new();
    q.set("Type", &target.kind)
        .set("OperateType", operate)
        .set("From", "sas");
    q.set_json(
        "Info",
        &serde_json::json!([{"name": target.name, "uuid": target.uuid, "tag": target.tag}]),
    );
    q.set_opt("Reason", reason.filter(|r| !r.is_empty()));
    let a: Answered = client.call_once("ModifyOperateVul", &q, None).await?;
    Ok(a.request_id)
}

/// `IgnoreHcCheckWarnings`: ignores (`ignore`) or un-ignores baseline check warnings `ids`,
/// with `reason`. Called once (a write); its `RequestId`.
pub async fn ignore_check_warnings(
    client: &SasClient,
    ignore: bool,
    ids: &[i64],
    reason: Option<&str>,
) -> Result<String, SasError> {
    let mut q = Params::new();
    q.set("Type", if ignore { 1 } else { 2 });
    q.set_simple("CheckWarningIds", ids);
    q.set_opt("Reason", reason.filter(|r| !r.is_empty()));
    let a: Answered = client.call_once("IgnoreHcCheckWarnings", &q, None).await?;
    Ok(a.request_id)
}

/// A container-firewall rule as `ListInterceptionRulePage` lists it (the part handling reads).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct InterceptionRule {
    /// `RuleId`.
    #[serde(rename = "RuleId", default, deserialize_with = "lenient::i64")]
    pub id: i64,
    /// `RuleName`.
    #[serde(rename = "RuleName", default, deserialize_with = "lenient::string")]
    pub name: String,
    /// `RuleSwitch`: 1 on, 0 off.
    #[serde(rename = "RuleSwitch", default, deserialize_with = "lenient::i64")]
    pub switch: i64,
    /// `InterceptType`: 1 block, 2 alert, 3 allow.
    #[serde(rename = "InterceptType", default, deserialize_with = "lenient::i64")]
    pub intercept_type: i64,
}

impl InterceptionRule {
    /// What it does to matching traffic, for people.
    pub fn effect(&self) -> &'static str {
        match self.intercept_type {
            1 => "blocks",
            2 => "alerts on",
            3 => "allows",
            _ => "acts on",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct RulePage {
    #[serde(
        rename = "InterceptionRuleList",
        default,
        deserialize_with = "lenient::vec"
    )]
    rules: Vec<InterceptionRule>,
    #[serde(rename = "PageInfo", default)]
    page: RulePageInfo,
}

#[derive(Debug, Default, Deserialize)]
struct RulePageInfo {
    #[serde(rename = "TotalCount", default, deserialize_with = "lenient::i64")]
    total: i64,
}

/// Rules read per page of `ListInterceptionRulePage`.
const RULE_PAGE_SIZE: i64 = 100;

/// Most pages of rules read for one lookup.
const MAX_RULE_PAGES: i64 = 20;

/// The rule `rule_id` of cluster `cluster_id` (`ListInterceptionRulePage`, read page by page
/// and matched here rather than through the action's criteria); `None` when it does not list it.
pub async fn interception_rule(
    client: &SasClient,
    cluster_id: &str,
    rule_id: i64,
) -> Result<Option<InterceptionRule>, SasError> {
    let mut seen = 0;
    for page in 1..=MAX_RULE_PAGES {
        let mut q = Params::new();
        q.set("ClusterId", cluster_id)
            .set("CurrentPage", page)
            .set("PageSize", RULE_PAGE_SIZE);
        let p: RulePage = client.call("ListInterceptionRulePage", &q, None).await?;
        let n = p.rules.len() as i64;
        if let Some(r) = p.rules.into_iter().find(|r| r.id == rule_id) {
            return Ok(Some(r));
        }
        seen += n;
        if n < RULE_PAGE_SIZE || seen >= p.page.total {
            break;
        }
    }
    Ok(None)
}

/// `ModifyInterceptionRuleSwitch`: switches the rules `rule_ids` of cluster `cluster_id` on or
/// off. Called once (a write); its `RequestId`.
pub async fn switch_interception_rules(
    client: &SasClient,
    cluster_id: &str,
    rule_ids: &[i64],
    on: bool,
) -> Result<String, SasError> {
    let mut q = Params::new();
    q.set("ClusterId", cluster_id);
    q.set_simple("RuleIds", rule_ids);
    q.set("RuleSwitch", i64::from(on));
    let a: Answered = client
        .call_once("ModifyInterceptionRuleSwitch", &q, None)
        .await?;
    Ok(a.request_id)
}

/// `ValidateHcWarnings`: Security Center checks the check items `check_ids` again, on the
/// assets `uuids` (every asset where they fail when empty). Called once (a write); its
/// `RequestId`.
pub async fn validate_warnings(
    client: &SasClient,
    check_ids: &[i64],
    uuids: &[String],
) -> Result<String, SasError> {
    let mut q = Params::new();
    q.set_simple("CheckIds", check_ids);
    if !uuids.is_empty() {
        q.set_simple("Uuids", uuids);
    }
    let a: Answered = client.call_once("ValidateHcWarnings", &q, None).await?;
    Ok(a.request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample bodies of the contract decode with nothing lost that the handler reads.
    #[test]
    fn the_contract_samples_decode() {
        let ops: Operations = serde_json::from_str(include_str!(
            "../../tests/fixtures/samples/DescribeSecurityEventOperations.json"
        ))
        .unwrap();
        let codes: Vec<&str> = ops.operations.iter().map(|o| o.code.as_str()).collect();
        assert_eq!(codes, ["ignore", "advance_mark_mis_info", "kill_and_quara"]);
        let whitelist = &ops.operations[1];
        assert!(whitelist.user_can_operate);
        assert_eq!(whitelist.mark_fields[0].name, "cmdline");
        assert_eq!(whitelist.mark_fields[0].value, "/bin/bash -i");
        assert_eq!(whitelist.mark_fields[0].supported.len(), 5);
        assert_eq!(whitelist.mark_fields_source[0].name, "pcmdline");
        // sasrelay's own API writes plain names, and reads them back.
        let ours = serde_json::to_value(&whitelist.mark_fields[0]).unwrap();
        assert_eq!(ours["name"], "cmdline");
        assert_eq!(ours["value"], "/bin/bash -i");
        let back: MarkField = serde_json::from_value(ours).unwrap();
        assert_eq!(back, whitelist.mark_fields[0]);
        let started: Started = serde_json::from_str(include_str!(
            "../../tests/fixtures/samples/HandleSecurityEvents.json"
        ))
        .unwrap();
        assert_eq!(started.response.task_id, 9087001);
        let status: StatusBody = serde_json::from_str(include_str!(
            "../../tests/fixtures/samples/DescribeSecurityEventOperationStatus.json"
        ))
        .unwrap();
        assert!(status.response.ended());
        assert_eq!(
            status.response.events[1].error_code,
            "EventNotSupportOperation"
        );
    }

    #[test]
    fn a_whitelist_rule_is_the_param_the_service_reads() {
        let rule = WhitelistRule {
            field: "cmdline".into(),
            operate: "contains".into(),
            value: "/bin/\"bash\"".into(),
            all_assets: false,
        };
        let v: serde_json::Value = serde_json::from_str(&rule.param()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"field": "cmdline", "operate": "contains", "fieldValue": "/bin/\"bash\"", "uuid": "part"})
        );
    }
}
