//! The handling ("Handle") actions of the contract's §5: what an operator's buttons call to
//! ignore, whitelist or mark an alert handled, fix, verify or ignore a vulnerability, and ignore
//! or re-check a baseline warning; and the container firewall's rule switch (§4.3). Bodies are
//! shaped like `samples/*.json`; errors are the service's (`SecurityEventNotExists`,
//! `EventNotSupportOperation`, `HcIllegalParameter` …).
//!
//! # Alert tasks, and when their change shows
//! `HandleSecurityEvents` does not change the world in its own answer: it validates the request,
//! decides per event whether the code is allowed *now* (the operations
//! `DescribeSecurityEventOperations` would offer), and creates a task. The change is applied at
//! the start of the next request the simulator answers, whatever its action (a listing, a status
//! query, another handling call), and before the next generator tick or control-plane read or
//! change — so a client never sees it in the `HandleSecurityEvents` answer and always sees it in
//! the next one, and two tasks apply in the order they were created. The task's status is
//! observable as asynchronous independently of that: the first `DescribeSecurityEventOperationStatus`
//! of a task answers `Processing` (every event `Processing`), every later one the final state.
//! The handling time written on the alert (`OperateTime`) is when the task was created.
//!
//! The vulnerability, baseline and firewall-rule actions answer only `RequestId` and take effect
//! at once.
//!
//! Pure: no IO, no clock (`now` comes in).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::actions::{Args, VUL_HANDLED, VUL_TYPES};
use super::catalog::obj;
use super::error::ApiError;
use super::tasks::Change;
use super::world::{Domain, World};

/// The handling actions, in contract order (the reading ones are
/// [`super::READING_ACTIONS`]).
pub const HANDLING_ACTIONS: &[&str] = &[
    "DescribeSecurityEventOperations",
    "HandleSecurityEvents",
    "DescribeSecurityEventOperationStatus",
    "OperationCancelIgnoreSuspEvent",
    "ModifyOperateVul",
    "IgnoreHcCheckWarnings",
    "ValidateHcWarnings",
    "ModifyInterceptionRuleSwitch",
];

/// At most this many handling calls are kept for [`super::Simulator::handling_calls`]; the
/// oldest are dropped first.
pub const MAX_HANDLING_CALLS: usize = 10_000;
/// Events one `HandleSecurityEvents` call may name (the contract gives no limit; this bounds a
/// task).
const MAX_EVENTS_PER_TASK: usize = 1_000;

/// Request parameters that belong to the signature, not to the action: left out of
/// [`HandlingCall::params`].
const SIGNATURE_PARAMS: &[&str] = &[
    "AccessKeyId",
    "Action",
    "Format",
    "SecurityToken",
    "Signature",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureType",
    "SignatureVersion",
    "Timestamp",
    "Version",
];

/// One request of a handling action ([`HANDLING_ACTIONS`]) that reached the action:
/// authenticated, permitted and neither throttled nor failed by an injected error, whatever the
/// action answered (a refused parameter included).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HandlingCall {
    /// The action, e.g. `HandleSecurityEvents`.
    pub action: String,
    /// The request's parameters (query and form merged, the first of a repeated key), without
    /// the signature's own (`AccessKeyId`, `Signature*`, `Timestamp`, `Version` …). Flattened
    /// arrays keep their keys: `SecurityEventIds.1`.
    pub params: BTreeMap<String, String>,
    /// The caller's access key id.
    pub access_key_id: String,
    /// The simulator's clock when it arrived (unix ms, [`super::Simulator::now_ms`]).
    pub at_ms: i64,
}

impl HandlingCall {
    pub(crate) fn new(
        action: &str,
        params: &[(String, String)],
        access_key_id: &str,
        at_ms: i64,
    ) -> Self {
        let mut map = BTreeMap::new();
        for (k, v) in params {
            if !SIGNATURE_PARAMS.contains(&k.as_str()) {
                map.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        HandlingCall {
            action: action.to_string(),
            params: map,
            access_key_id: access_key_id.to_string(),
            at_ms,
        }
    }
}

// ------------------------------------------------------------------------------------ tasks

impl World {
    /// Applies the change of every task not applied yet, oldest first. Alerts removed meanwhile
    /// are skipped.
    pub(crate) fn settle_tasks(&mut self) {
        while let Some(id) = self.tasks.pending.pop_front() {
            let Some(task) = self.tasks.tasks.get(&id) else {
                continue;
            };
            let at = task.at_ms;
            let changes: Vec<(i64, Change)> = task
                .events
                .iter()
                .filter_map(|(e, r)| r.as_ref().ok().map(|c| (*e, c.clone())))
                .collect();
            for (event, change) in changes {
                if self.alerts.get(event).is_none() {
                    continue;
                }
                self.apply_status(Domain::Alert, event, change.status, at);
                if let Some(rules) = change.mark_rules {
                    self.alerts.update(event, |r| {
                        r.insert("MarkMisRules".into(), rules.into());
                    });
                }
            }
        }
    }
}

// -------------------------------------------------------------------------------- dispatch

/// Answers one handling action.
pub(crate) fn dispatch(
    world: &mut World,
    action: &str,
    args: &Args<'_>,
    now: i64,
) -> Result<Map<String, Value>, ApiError> {
    match action {
        "DescribeSecurityEventOperations" => event_operations(world, args, now),
        "HandleSecurityEvents" => handle_events(world, args, now),
        "DescribeSecurityEventOperationStatus" => operation_status(world, args),
        "OperationCancelIgnoreSuspEvent" => cancel_ignore(world, args, now),
        "ModifyOperateVul" => modify_operate_vul(world, args, now),
        "IgnoreHcCheckWarnings" => ignore_check_warnings(world, args, now),
        "ValidateHcWarnings" => validate_warnings(world, args, now),
        "ModifyInterceptionRuleSwitch" => modify_rule_switch(world, args),
        _ => Err(ApiError::new("InvalidAction.NotFound")),
    }
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// `SecurityEventIds.N` (or comma-joined) as integers, deduplicated in order; required.
fn event_ids(a: &Args<'_>) -> Result<Vec<i64>, ApiError> {
    let raw = a.flat("SecurityEventIds");
    if raw.is_empty() {
        return Err(ApiError::missing("SecurityEventIds"));
    }
    let mut ids = a.int_list("SecurityEventIds", raw)?;
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
    if ids.len() > MAX_EVENTS_PER_TASK {
        return Err(ApiError::invalid(
            "SecurityEventIds",
            &format!("at most {MAX_EVENTS_PER_TASK} events"),
        ));
    }
    Ok(ids)
}

// ------------------------------------------------------------------------ alert operations

/// Whitelist operators of a main field (`MarkField`).
const MIS_TYPES: &[&str] = &[
    "contains",
    "notContains",
    "regex",
    "strEqual",
    "strNotEqual",
];
/// Whitelist operators of a secondary field (`MarkFieldsSource`), as in the sample.
const SOURCE_MIS_TYPES: &[&str] = &["contains", "strEqual"];

/// An alert detail row (`Details[].NameDisplay`) that a whitelist rule can name.
struct MarkDef {
    display: &'static str,
    /// `FiledName` (the rule's `field`).
    name: &'static str,
    /// A main field (`MarkField`, usable in `MarkMissParam`) or a secondary one
    /// (`MarkFieldsSource`).
    main: bool,
    description: &'static str,
}

const MARK_DEFS: &[MarkDef] = &[
    MarkDef {
        display: "Command line",
        name: "cmdline",
        main: true,
        description: "Command line of the process",
    },
    MarkDef {
        display: "Process path",
        name: "proc_path",
        main: true,
        description: "Path of the process file",
    },
    MarkDef {
        display: "File path",
        name: "file_path",
        main: true,
        description: "Path of the file",
    },
    MarkDef {
        display: "Malicious file",
        name: "file_path",
        main: true,
        description: "Path of the file",
    },
    MarkDef {
        display: "Image",
        name: "image",
        main: true,
        description: "Container image",
    },
    MarkDef {
        display: "Request URI",
        name: "request_uri",
        main: true,
        description: "URI of the API server request",
    },
    MarkDef {
        display: "Container ID",
        name: "container_id",
        main: true,
        description: "ID of the container",
    },
    MarkDef {
        display: "Parent process",
        name: "pcmdline",
        main: false,
        description: "Command line of the parent process",
    },
    MarkDef {
        display: "User",
        name: "user",
        main: false,
        description: "User of the process",
    },
    MarkDef {
        display: "Remote address",
        name: "remote_addr",
        main: false,
        description: "Remote address of the connection",
    },
    MarkDef {
        display: "Source IP",
        name: "source_ip",
        main: false,
        description: "Source IP address of the request",
    },
    MarkDef {
        display: "Service account",
        name: "service_account",
        main: false,
        description: "Service account of the request",
    },
    MarkDef {
        display: "File MD5",
        name: "md5",
        main: false,
        description: "MD5 of the file",
    },
];

/// Every operation code the contract names (`HandleSecurityEvents` and
/// `DescribeSecurityEventOperations`); another one is `InvalidParameter`.
const KNOWN_CODES: &[&str] = &[
    "ignore",
    "advance_mark_mis_info",
    "manual_handled",
    "block_ip",
    "kill_process",
    "cleanup",
    "kill_and_quara",
    "quara",
    "disable_malicious_defense",
    "client_problem_check",
    "defense_mark_mis_info",
    "rm_defense_mark_mis_info",
    "rm_mark_mis_info",
    "cancle_manual",
];

/// `EventStatus` that `manual_handled` and the destructive codes leave (SDK: 32 "Handled").
const HANDLED: i64 = 32;
/// How long `block_ip` offers to block by default (the `expireTime` of its parameters).
const BLOCK_MS: i64 = 7 * 86_400_000;

/// The alert's detail rows as (name shown, value).
fn details(alert: &Map<String, Value>) -> Vec<(&str, &str)> {
    alert
        .get("Details")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .map(|r| (s(&r["NameDisplay"]), s(&r["Value"])))
                .filter(|(_, v)| !v.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The main whitelist fields of an alert: (definition, value), one per field name.
fn mark_fields(alert: &Map<String, Value>, main: bool) -> Vec<(&'static MarkDef, String)> {
    let mut out: Vec<(&'static MarkDef, String)> = Vec::new();
    for (shown, value) in details(alert) {
        if let Some(def) = MARK_DEFS
            .iter()
            .find(|d| d.display == shown && d.main == main)
            && !out.iter().any(|(d, _)| d.name == def.name)
        {
            out.push((def, value.to_string()));
        }
    }
    out
}

/// The codes an alert offers now, with their `OperationParams`, in the order the console shows
/// them.
fn offered(alert: &Map<String, Value>, now: i64) -> Vec<(&'static str, String)> {
    let empty = || "{}".to_string();
    match i(&alert["EventStatus"]) {
        1 => {
            let rows = details(alert);
            let has = |names: &[&str]| rows.iter().any(|(n, _)| names.contains(n));
            let mut ops = vec![("ignore", empty())];
            if !mark_fields(alert, true).is_empty() {
                ops.push(("advance_mark_mis_info", empty()));
            }
            ops.push(("manual_handled", empty()));
            if has(&["Process ID"]) {
                ops.push((
                    "kill_and_quara",
                    json!({"subOperation": "killAndQuaraFileByMd5andPath"}).to_string(),
                ));
            } else if has(&["File MD5"]) {
                ops.push((
                    "quara",
                    json!({"subOperation": "quaraFileByMd5andPath"}).to_string(),
                ));
            }
            if has(&["Remote address", "Source IP"]) {
                ops.push((
                    "block_ip",
                    json!({"expireTime": now.saturating_add(BLOCK_MS)}).to_string(),
                ));
            }
            ops
        }
        // Undoing an ignore is OperationCancelIgnoreSuspEvent, not a handling code.
        2 => Vec::new(),
        8 => vec![("rm_mark_mis_info", empty())],
        _ => vec![("cancle_manual", empty())],
    }
}

fn str_list(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|t| Value::from(*t)).collect())
}

/// One `SecurityEventOperationsResponse[]` item.
fn operation(alert: &Map<String, Value>, code: &str, params: String) -> Value {
    let (mut mapping, mut mark, mut source) = (Vec::new(), Vec::new(), Vec::new());
    if code == "advance_mark_mis_info" {
        let uuid = s(&alert["Uuid"]);
        for (def, value) in mark_fields(alert, true) {
            mapping.push(json!({
                "Description": def.description,
                "FillType": "CUSTOM",
                "MaxLength": 1024,
                "MinLength": 1,
                "Name": def.name,
                "Required": true,
                "ShowName": def.display,
                "ShowValue": value,
                "Value": value,
            }));
            mark.push(json!({
                "FiledAliasName": def.display,
                "FiledName": def.name,
                "MarkMisType": "contains",
                "MarkMisValue": value,
                "SupportedMisType": str_list(MIS_TYPES),
                "Uuid": uuid,
            }));
        }
        for (def, value) in mark_fields(alert, false) {
            source.push(json!({
                "FiledAliasName": def.display,
                "FiledName": def.name,
                "MarkMisValue": value,
                "SupportedMisType": str_list(SOURCE_MIS_TYPES),
            }));
        }
    }
    json!({
        "OperationCode": code,
        "OperationParams": params,
        "UserCanOperate": true,
        "MappingMarkFields": mapping,
        "MarkField": mark,
        "MarkFieldsSource": source,
    })
}

fn event_operations(world: &World, a: &Args<'_>, now: i64) -> Result<Map<String, Value>, ApiError> {
    let id = a.required_int("SecurityEventId")?;
    let alert = world
        .alerts
        .get(id)
        .ok_or_else(|| ApiError::event_not_exists(id))?;
    let ops: Vec<Value> = offered(alert, now)
        .into_iter()
        .map(|(code, params)| operation(alert, code, params))
        .collect();
    Ok(obj(json!({ "SecurityEventOperationsResponse": ops })))
}

/// A checked `MarkMissParam`.
struct MarkRule {
    field: String,
    operate: String,
    field_value: String,
    uuid: String,
}

fn mark_rule(a: &Args<'_>) -> Result<MarkRule, ApiError> {
    let raw = a.required("MarkMissParam")?;
    let bad = |why: &str| ApiError::invalid("MarkMissParam", why);
    let v: Value = serde_json::from_str(raw).map_err(|_| bad("not a JSON object"))?;
    let m = v.as_object().ok_or_else(|| bad("not a JSON object"))?;
    let text = |k: &str| {
        m.get(k)
            .and_then(Value::as_str)
            .filter(|t| !t.trim().is_empty())
            .map(str::to_string)
            .ok_or_else(|| bad(&format!("{k} is required (a non-empty string)")))
    };
    let rule = MarkRule {
        field: text("field")?,
        operate: text("operate")?,
        field_value: text("fieldValue")?,
        uuid: text("uuid")?,
    };
    if !MIS_TYPES.contains(&rule.operate.as_str()) {
        return Err(bad(&format!(
            "operate {:?} is not one of {}",
            rule.operate,
            MIS_TYPES.join(", ")
        )));
    }
    if rule.operate == "regex" && regex::Regex::new(&rule.field_value).is_err() {
        return Err(bad("fieldValue is not a valid regular expression"));
    }
    if rule.uuid != "part" && rule.uuid != "ALL" {
        return Err(bad("uuid must be part or ALL"));
    }
    Ok(rule)
}

fn handle_events(
    world: &mut World,
    a: &Args<'_>,
    now: i64,
) -> Result<Map<String, Value>, ApiError> {
    let code = a.required("OperationCode")?;
    let Some(&code) = KNOWN_CODES.iter().find(|c| **c == code) else {
        return Err(ApiError::invalid(
            "OperationCode",
            &format!("unknown operation code {code:?}"),
        ));
    };
    let ids = event_ids(a)?;
    if let Some(id) = ids.iter().find(|id| world.alerts.get(**id).is_none()) {
        return Err(ApiError::event_not_exists(*id));
    }
    let params = a.get("OperationParams");
    if matches!(code, "kill_and_quara" | "block_ip") && params.is_none() {
        return Err(ApiError::missing("OperationParams"));
    }
    if let Some(p) = params
        && !serde_json::from_str::<Value>(p).is_ok_and(|v| v.is_object())
    {
        return Err(ApiError::invalid("OperationParams", "not a JSON object"));
    }
    let rule = match code {
        "advance_mark_mis_info" => Some(mark_rule(a)?),
        _ => None,
    };
    let mut events = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(alert) = world.alerts.get(id) else {
            return Err(ApiError::event_not_exists(id));
        };
        if !offered(alert, now).iter().any(|(c, _)| *c == code) {
            events.push((id, Err("EventNotSupportOperation")));
            continue;
        }
        let change = match (code, &rule) {
            ("ignore", _) => Change {
                status: 2,
                mark_rules: None,
            },
            ("advance_mark_mis_info", Some(rule)) => {
                let fields = mark_fields(alert, true);
                if !fields.iter().any(|(d, _)| d.name == rule.field) {
                    let names: Vec<&str> = fields.iter().map(|(d, _)| d.name).collect();
                    return Err(ApiError::invalid(
                        "MarkMissParam",
                        &format!(
                            "field {:?} is not a whitelist field of event {id} (use one of {})",
                            rule.field,
                            names.join(", ")
                        ),
                    ));
                }
                let rules = json!([{
                    "field": rule.field,
                    "operate": rule.operate,
                    "fieldValue": rule.field_value,
                    "uuid": rule.uuid,
                }]);
                Change {
                    status: 8,
                    mark_rules: Some(rules.to_string()),
                }
            }
            ("rm_mark_mis_info", _) => Change {
                status: 1,
                mark_rules: Some(String::new()),
            },
            ("cancle_manual", _) => Change {
                status: 1,
                mark_rules: None,
            },
            // manual_handled and the destructive codes: the event is handled.
            _ => Change {
                status: HANDLED,
                mark_rules: None,
            },
        };
        events.push((id, Ok(change)));
    }
    let task_id = world.tasks.create(events, now);
    Ok(obj(json!({
        "HandleSecurityEventsResponse": {"TaskId": task_id}
    })))
}

fn operation_status(world: &mut World, a: &Args<'_>) -> Result<Map<String, Value>, ApiError> {
    let task_id = a.int("TaskId")?;
    let ids = a.int_list("SecurityEventIds", a.flat("SecurityEventIds"))?;
    let tasks = &mut world.tasks.tasks;
    let id = match task_id {
        Some(t) if tasks.contains_key(&t) => t,
        Some(_) => return Err(ApiError::invalid("TaskId", "no such task")),
        None if ids.is_empty() => return Err(ApiError::missing("TaskId")),
        // The latest task that handled any of the events.
        None => tasks
            .iter()
            .rev()
            .find(|(_, t)| t.events.iter().any(|(e, _)| ids.contains(e)))
            .map(|(id, _)| *id)
            .ok_or_else(|| {
                ApiError::invalid("SecurityEventIds", "no handling task for these events")
            })?,
    };
    let Some(task) = tasks.get_mut(&id) else {
        return Err(ApiError::invalid("TaskId", "no such task"));
    };
    let processing = !task.queried;
    task.queried = true;
    let shown: Vec<&(i64, Result<Change, &str>)> = task
        .events
        .iter()
        .filter(|(e, _)| ids.is_empty() || ids.contains(e))
        .collect();
    let statuses: Vec<Value> = shown
        .iter()
        .map(|(e, r)| {
            let (status, code) = match r {
                _ if processing => ("Processing", ""),
                Ok(_) => ("Success", "Success"),
                Err(code) => ("Failed", *code),
            };
            json!({"SecurityEventId": e.to_string(), "Status": status, "ErrorCode": code})
        })
        .collect();
    let task_status = if processing {
        "Processing"
    } else if task.events.iter().all(|(_, r)| r.is_err()) {
        "Failure"
    } else {
        "Success"
    };
    Ok(obj(json!({
        "SecurityEventOperationStatusResponse": {
            "TaskStatus": task_status,
            "SecurityEventOperationStatuses": statuses,
        }
    })))
}

fn cancel_ignore(
    world: &mut World,
    a: &Args<'_>,
    now: i64,
) -> Result<Map<String, Value>, ApiError> {
    let ids = event_ids(a)?;
    if let Some(id) = ids.iter().find(|id| world.alerts.get(**id).is_none()) {
        return Err(ApiError::event_not_exists(*id));
    }
    // Only ignored alerts go back to pending; the others are left as they are.
    for id in ids {
        if world
            .alerts
            .get(id)
            .is_some_and(|r| i(&r["EventStatus"]) == 2)
        {
            world.apply_status(Domain::Alert, id, 1, now);
        }
    }
    Ok(obj(json!({
        "Success": true,
        "Code": "200",
        "Message": "successful",
        "HttpStatusCode": 200,
        "TimeCost": 0,
    })))
}

// ---------------------------------------------------------------------------- vulnerabilities

const VUL_OPERATIONS: &[&str] = &[
    "vul_fix",
    "vul_verify",
    "vul_ignore",
    "vul_undo_ignore",
    "vul_delete",
];

/// The `Info` entries as (name, uuid).
fn vul_info(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
    let bad = |why: &str| ApiError::invalid("Info", why);
    // A JSON array, one object, or objects separated by commas (the SDK's wording).
    let parsed: Value = serde_json::from_str(raw)
        .or_else(|_| serde_json::from_str(&format!("[{raw}]")))
        .map_err(|_| bad("not a JSON array of {name, uuid, tag}"))?;
    let items = match parsed {
        Value::Array(items) => items,
        Value::Object(_) => vec![parsed],
        _ => return Err(bad("not a JSON array of {name, uuid, tag}")),
    };
    if items.is_empty() {
        return Err(bad("names no vulnerability"));
    }
    items
        .iter()
        .map(|it| {
            let text = |k: &str| {
                it.get(k)
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| bad(&format!("every entry needs {k}")))
            };
            Ok((text("name")?, text("uuid")?))
        })
        .collect()
}

fn modify_operate_vul(
    world: &mut World,
    a: &Args<'_>,
    now: i64,
) -> Result<Map<String, Value>, ApiError> {
    let ty = a.required("Type")?;
    if !VUL_TYPES.contains(&ty) {
        return Err(ApiError::invalid(
            "Type",
            "use cve, sys, cms, emg, app or sca",
        ));
    }
    let op = a.required("OperateType")?;
    if !VUL_OPERATIONS.contains(&op) {
        return Err(ApiError::invalid(
            "OperateType",
            &format!("use {}", VUL_OPERATIONS.join(", ")),
        ));
    }
    let info = vul_info(a.required("Info")?)?;
    if op == "vul_ignore" {
        a.required("Reason")?;
    }
    // The SDK and the docs say fixing emg/app/sca is not supported but document no error code
    // for it (the only one listed is InsufficientAuthorizationCount); this one is ours.
    if op == "vul_fix" && matches!(ty, "emg" | "app" | "sca") {
        return Err(ApiError::with_message(
            "VulFixNotSupported",
            format!("Fixing is not supported for {ty} vulnerabilities."),
        ));
    }
    let mut targets = Vec::new();
    for (name, uuid) in &info {
        let found: Vec<i64> = world
            .vulns
            .iter()
            .filter(|(_, r)| {
                s(&r["Type"]) == ty
                    && s(&r["Name"]) == name.as_str()
                    && s(&r["Uuid"]) == uuid.as_str()
            })
            .map(|(id, _)| *id)
            .collect();
        if found.is_empty() {
            // Not documented either: a clear code in the style of SecurityEventNotExists.
            return Err(ApiError::with_message(
                "VulNotExists",
                format!("No {ty} vulnerability {name:?} on the asset {uuid}."),
            ));
        }
        targets.extend(found);
    }
    if a.get("DryRun")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Ok(Map::new());
    }
    for id in targets {
        let Some(status) = world.vulns.get(id).map(|r| i(&r["Status"])) else {
            continue;
        };
        let pending = !VUL_HANDLED.contains(&status);
        match op {
            "vul_fix" | "vul_verify" if pending => world.apply_status(Domain::Vuln, id, 7, now),
            "vul_ignore" if pending => world.apply_status(Domain::Vuln, id, 10, now),
            "vul_undo_ignore" if status == 10 => world.apply_status(Domain::Vuln, id, 1, now),
            "vul_delete" => {
                world.remove(Domain::Vuln, id);
            }
            _ => {}
        }
    }
    Ok(Map::new())
}

// -------------------------------------------------------------------------------- baseline

fn ignore_check_warnings(
    world: &mut World,
    a: &Args<'_>,
    now: i64,
) -> Result<Map<String, Value>, ApiError> {
    let ty = a.required_int("Type")?;
    if ty != 1 && ty != 2 {
        return Err(ApiError::invalid(
            "Type",
            "use 1 (ignore) or 2 (cancel ignoring)",
        ));
    }
    let ids = a.int_list("CheckWarningIds", a.list("CheckWarningIds"))?;
    let targets: Vec<i64> = if ids.is_empty() {
        let checks = a.int_list("CheckIds", a.list("CheckIds"))?;
        if checks.is_empty() {
            return Err(ApiError::missing("CheckWarningIds"));
        }
        let risk = a.required_int("RiskId")?;
        world
            .warnings
            .iter()
            .filter(|(_, w)| w.risk_id == risk && checks.contains(&i(&w.body["CheckId"])))
            .map(|(id, _)| *id)
            .collect()
    } else {
        if let Some(id) = ids.iter().find(|id| world.warnings.get(**id).is_none()) {
            return Err(ApiError::invalid(
                "CheckWarningIds",
                &format!("no check warning {id}"),
            ));
        }
        ids
    };
    let reason = a.get("Reason").map(str::to_string);
    for id in targets {
        let Some(status) = world.warnings.get(id).map(|w| i(&w.body["Status"])) else {
            continue;
        };
        if ty == 1 && matches!(status, 1 | 2) {
            world.apply_status(Domain::Baseline, id, 6, now);
            if let Some(r) = &reason {
                world.warnings.update(id, |w| {
                    w.body.insert("Reason".into(), r.clone().into());
                });
            }
        } else if ty == 2 && status == 6 {
            world.apply_status(Domain::Baseline, id, 1, now);
            world.warnings.update(id, |w| {
                w.body.insert("Reason".into(), "".into());
            });
        }
    }
    Ok(Map::new())
}

fn validate_warnings(
    world: &mut World,
    a: &Args<'_>,
    now: i64,
) -> Result<Map<String, Value>, ApiError> {
    let risks = a.int_list("RiskIds", a.list("RiskIds"))?;
    let checks = a.int_list("CheckIds", a.list("CheckIds"))?;
    if risks.is_empty() && checks.is_empty() {
        return Err(ApiError::with_message(
            "HcIllegalParameter",
            "Illegal parameter: specify RiskIds or CheckIds.",
        ));
    }
    let uuids = a.list("Uuids");
    let status = a.int("Status")?;
    // A re-check passes what failed, was being verified or expired; ignored items stay ignored.
    let passing: Vec<i64> = world
        .warnings
        .iter()
        .filter(|(_, w)| {
            let st = i(&w.body["Status"]);
            matches!(st, 1 | 2 | 5)
                && status.is_none_or(|x| x == st)
                && (risks.is_empty() || risks.contains(&w.risk_id))
                && (checks.is_empty() || checks.contains(&i(&w.body["CheckId"])))
                && (uuids.is_empty() || uuids.iter().any(|u| u == s(&w.body["Uuid"])))
        })
        .map(|(id, _)| *id)
        .collect();
    for id in passing {
        world.apply_status(Domain::Baseline, id, 3, now);
    }
    Ok(Map::new())
}

// -------------------------------------------------------------------------------- firewall

/// `ModifyInterceptionRuleSwitch` (contract §4.3): turns rules of one cluster on (1) or off (0);
/// the next `ListInterceptionRulePage` shows it. All or nothing: an unknown cluster or a rule
/// the cluster does not have is `InvalidParameter` (the contract documents no code for either)
/// and changes nothing.
fn modify_rule_switch(world: &mut World, a: &Args<'_>) -> Result<Map<String, Value>, ApiError> {
    let cluster_id = a.required("ClusterId")?;
    let ids = a.int_list("RuleIds", a.list("RuleIds"))?;
    if ids.is_empty() {
        return Err(ApiError::missing("RuleIds"));
    }
    let switch = a.required_int("RuleSwitch")?;
    if switch != 0 && switch != 1 {
        return Err(ApiError::invalid("RuleSwitch", "use 1 (on) or 0 (off)"));
    }
    let Some(cluster) = world.cluster_mut(cluster_id) else {
        return Err(ApiError::invalid(
            "ClusterId",
            &format!("no cluster {cluster_id}"),
        ));
    };
    if let Some(id) = ids.iter().find(|id| cluster.rule(**id).is_none()) {
        return Err(ApiError::invalid(
            "RuleIds",
            &format!("cluster {cluster_id} has no rule {id}"),
        ));
    }
    for rule in cluster
        .rules
        .iter_mut()
        .filter(|r| ids.contains(&r.rule_id))
    {
        rule.rule_switch = switch;
    }
    Ok(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::config::SimConfig;

    fn world() -> World {
        World::new(&SimConfig::default(), 1_716_163_964_000)
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn call(w: &mut World, action: &str, p: &[(&str, &str)]) -> Result<Value, ApiError> {
        let p = pairs(p);
        dispatch(w, action, &Args(&p), 1_716_163_964_000).map(Value::Object)
    }

    fn open_alert(w: &World) -> i64 {
        w.alerts
            .iter()
            .find(|(_, r)| {
                i(&r["EventStatus"]) == 1 && details(r).iter().any(|(n, _)| *n == "Command line")
            })
            .map(|(id, _)| *id)
            .unwrap()
    }

    #[test]
    fn an_open_alert_offers_the_whitelist_built_from_its_details() {
        let mut w = world();
        let id = open_alert(&w);
        let cmdline = details(w.alerts.get(id).unwrap())
            .into_iter()
            .find(|(n, _)| *n == "Command line")
            .unwrap()
            .1
            .to_string();
        let uuid = s(&w.alerts.get(id).unwrap()["Uuid"]).to_string();
        let body = call(
            &mut w,
            "DescribeSecurityEventOperations",
            &[("SecurityEventId", &id.to_string())],
        )
        .unwrap();
        let ops = body["SecurityEventOperationsResponse"].as_array().unwrap();
        let codes: Vec<&str> = ops.iter().map(|o| s(&o["OperationCode"])).collect();
        assert_eq!(
            &codes[..3],
            ["ignore", "advance_mark_mis_info", "manual_handled"]
        );
        let mark = &ops[1]["MarkField"];
        let cmd = mark
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["FiledName"] == "cmdline")
            .unwrap();
        assert_eq!(cmd["MarkMisValue"], cmdline);
        assert_eq!(cmd["MarkMisType"], "contains");
        assert_eq!(cmd["Uuid"], uuid);
        assert_eq!(cmd["SupportedMisType"].as_array().unwrap().len(), 5);
    }

    #[test]
    fn a_task_applies_on_settle_and_reports_processing_once() {
        let mut w = world();
        let id = open_alert(&w);
        let ids = id.to_string();
        let body = call(
            &mut w,
            "HandleSecurityEvents",
            &[("OperationCode", "ignore"), ("SecurityEventIds.1", &ids)],
        )
        .unwrap();
        let task = body["HandleSecurityEventsResponse"]["TaskId"].to_string();
        assert_eq!(i(&w.alerts.get(id).unwrap()["EventStatus"]), 1);
        w.settle_tasks();
        assert_eq!(i(&w.alerts.get(id).unwrap()["EventStatus"]), 2);
        let status = |w: &mut World| {
            call(
                w,
                "DescribeSecurityEventOperationStatus",
                &[("TaskId", &task)],
            )
            .unwrap()["SecurityEventOperationStatusResponse"]
                .clone()
        };
        assert_eq!(status(&mut w)["TaskStatus"], "Processing");
        let done = status(&mut w);
        assert_eq!(done["TaskStatus"], "Success");
        assert_eq!(
            done["SecurityEventOperationStatuses"][0]["ErrorCode"],
            "Success"
        );
        // Ignoring again is not offered: the task fails.
        let again = call(
            &mut w,
            "HandleSecurityEvents",
            &[("OperationCode", "ignore"), ("SecurityEventIds.1", &ids)],
        )
        .unwrap();
        let task = again["HandleSecurityEventsResponse"]["TaskId"].to_string();
        call(
            &mut w,
            "DescribeSecurityEventOperationStatus",
            &[("TaskId", &task)],
        )
        .unwrap();
        let failed = call(
            &mut w,
            "DescribeSecurityEventOperationStatus",
            &[("SecurityEventIds.1", &ids)],
        )
        .unwrap();
        let r = &failed["SecurityEventOperationStatusResponse"];
        assert_eq!(r["TaskStatus"], "Failure");
        assert_eq!(
            r["SecurityEventOperationStatuses"][0]["ErrorCode"],
            "EventNotSupportOperation"
        );
    }

    #[test]
    fn recorded_calls_leave_out_the_signature_parameters() {
        let call = HandlingCall::new(
            "HandleSecurityEvents",
            &pairs(&[
                ("Action", "HandleSecurityEvents"),
                ("Signature", "x"),
                ("OperationCode", "ignore"),
                ("OperationCode", "later"),
                ("SecurityEventIds.1", "7"),
            ]),
            "ak",
            5,
        );
        assert_eq!(
            call.params.into_iter().collect::<Vec<_>>(),
            [
                ("OperationCode".to_string(), "ignore".to_string()),
                ("SecurityEventIds.1".to_string(), "7".to_string())
            ]
        );
    }

    #[test]
    fn rule_switches_change_all_or_nothing() {
        let mut w = world();
        let c = w.clusters[1].cluster_id.clone();
        let ids: Vec<String> = w.clusters[1]
            .rules
            .iter()
            .map(|r| r.rule_id.to_string())
            .collect();
        let switches =
            |w: &World| -> Vec<i64> { w.clusters[1].rules.iter().map(|r| r.rule_switch).collect() };
        assert_eq!(switches(&w), [1, 1, 0]);
        let both = format!("{},{}", ids[0], ids[2]);
        call(
            &mut w,
            "ModifyInterceptionRuleSwitch",
            &[("ClusterId", &c), ("RuleIds", &both), ("RuleSwitch", "0")],
        )
        .unwrap();
        assert_eq!(switches(&w), [0, 1, 0]);
        // One unknown rule: nothing changes.
        let bad = format!("{},200123", ids[1]);
        let e = call(
            &mut w,
            "ModifyInterceptionRuleSwitch",
            &[("ClusterId", &c), ("RuleIds", &bad), ("RuleSwitch", "0")],
        )
        .unwrap_err();
        assert_eq!((e.code.as_str(), e.status), ("InvalidParameter", 400));
        assert!(e.message.contains("RuleIds"), "{}", e.message);
        assert_eq!(switches(&w), [0, 1, 0]);
        // A list of nothing is no list (the other refusals are tested over HTTP).
        let e = call(
            &mut w,
            "ModifyInterceptionRuleSwitch",
            &[("ClusterId", &c), ("RuleIds", " , "), ("RuleSwitch", "1")],
        )
        .unwrap_err();
        assert_eq!(e.code, "MissingParameter");
    }
}
