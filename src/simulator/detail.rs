//! The bodies of the alert detail actions (contract §1.2): `DescribeSuspEventDetail`, one
//! exception as a flat object, and `DescribeAlarmEventDetail`, the aggregated alert its
//! exceptions share (`AlarmUniqueInfo`) with its diagnosis (`CauseDetails`).
//!
//! Both are derived from the alerts' list records as they are at the time of the call (status
//! and handling result included); nothing is stored besides the record, so a control-plane
//! patch of an alert shows in its details too. The diagnosis is the console's tracing view: the
//! process chain from the container runtime down to the offending process, the container the
//! alert came from, the evidence rows and the ATT&CK tactics, each a `{Key, Value: [{Name, Type,
//! Value}]}` group built from the record's fields. Pure: no IO, no clock, no randomness.

use serde_json::{Map, Value, json};

use super::catalog::{alert_kind, obj};

/// `Solution` of an alert whose name the catalog does not know (a control-plane patch).
const GENERIC_SOLUTION: &str = "Check the process and the files the alert names, isolate the workload if the behaviour is unexpected, then handle the alert.";

fn text<'a>(r: &'a Map<String, Value>, key: &str) -> &'a str {
    r.get(key).and_then(Value::as_str).unwrap_or("")
}

fn int(r: &Map<String, Value>, key: &str) -> i64 {
    r.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn flag(r: &Map<String, Value>, key: &str) -> bool {
    r.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// The record's `Details` rows as (name shown, type, value).
fn rows(r: &Map<String, Value>) -> Vec<(&str, &str, &str)> {
    r.get("Details")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .map(|d| {
                    let field = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("");
                    let kind = match field("Type") {
                        "" => "text",
                        k => k,
                    };
                    (field("NameDisplay"), kind, field("Value"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `DescribeSuspEventDetail`'s body (without `RequestId`) for one alert record. `EventStatus`
/// is a string here (an int in the list), as the SDK model has it.
pub(super) fn susp_event_detail(r: &Map<String, Value>) -> Map<String, Value> {
    let status = match r.get("EventStatus") {
        Some(Value::String(s)) => s.clone(),
        other => other.and_then(Value::as_i64).unwrap_or(0).to_string(),
    };
    let details: Vec<Value> = rows(r)
        .into_iter()
        .map(|(name, kind, value)| json!({"NameDisplay": name, "Type": kind, "Value": value}))
        .collect();
    obj(json!({
        "AlarmUniqueInfo": text(r, "AlarmUniqueInfo"),
        "CanBeDealOnLine": flag(r, "CanBeDealOnLine"),
        "DataSource": text(r, "DataSource"),
        "Details": details,
        "EventDesc": text(r, "Desc"),
        "EventName": text(r, "AlarmEventNameDisplay"),
        "EventStatus": status,
        "EventTypeDesc": text(r, "AlarmEventTypeDisplay"),
        "Id": int(r, "Id"),
        "InstanceName": text(r, "InstanceName"),
        "InternetIp": text(r, "InternetIp"),
        "IntranetIp": text(r, "IntranetIp"),
        "LastTime": text(r, "LastTime"),
        "Level": text(r, "Level"),
        "OperateErrorCode": text(r, "OperateErrorCode"),
        "OperateMsg": text(r, "OperateMsg"),
        "SaleVersion": text(r, "SaleVersion"),
        "Uuid": text(r, "Uuid"),
    }))
}

fn level_rank(level: &str) -> u8 {
    match level {
        "serious" => 3,
        "suspicious" => 2,
        "remind" => 1,
        _ => 0,
    }
}

/// `DescribeAlarmEventDetail`'s body (without `RequestId`) for the records of one aggregated
/// alert (`group` is not empty): the most severe `Level`, `StartTime` the first occurrence and
/// `EndTime` the latest of any of them, everything else from the latest record.
pub(super) fn alarm_event_detail(group: &[&Map<String, Value>]) -> Map<String, Value> {
    let Some(latest) = group
        .iter()
        .copied()
        .max_by_key(|r| (int(r, "LastTimeStamp"), int(r, "Id")))
    else {
        return Map::new();
    };
    let level = group
        .iter()
        .map(|r| text(r, "Level"))
        .max_by_key(|l| level_rank(l))
        .unwrap_or("");
    let start = group
        .iter()
        .map(|r| int(r, "OccurrenceTimeStamp"))
        .min()
        .unwrap_or(0);
    let end = group
        .iter()
        .map(|r| int(r, "LastTimeStamp"))
        .max()
        .unwrap_or(0);
    let solution = alert_kind(text(latest, "AlarmEventName"))
        .map(|k| k.solution)
        .unwrap_or(GENERIC_SOLUTION);
    let t = |k: &str| text(latest, k);
    // Two halves: one `json!` with every key is close to the macro's recursion limit.
    let mut data = obj(json!({
        "AlarmEventAliasName": t("AlarmEventNameDisplay"),
        "AlarmEventDesc": t("Desc"),
        "AlarmUniqueInfo": t("AlarmUniqueInfo"),
        "AppName": t("AppName"),
        "CanBeDealOnLine": flag(latest, "CanBeDealOnLine"),
        "CanCancelFault": flag(latest, "CanCancelFault"),
        "CauseDetails": cause_details(latest),
        "ContainHwMode": flag(latest, "ContainHwMode"),
        "ContainerId": t("ContainerId"),
        "ContainerImageId": t("ContainerImageId"),
        "ContainerImageName": t("ContainerImageName"),
        "DataSource": t("DataSource"),
        "EndTime": end,
        "InstanceName": t("InstanceName"),
    }));
    data.extend(obj(json!({
        "InternetIp": t("InternetIp"),
        "IntranetIp": t("IntranetIp"),
        "K8sClusterId": t("K8sClusterId"),
        "K8sClusterName": t("K8sClusterName"),
        "K8sNamespace": t("K8sNamespace"),
        "K8sNodeId": t("K8sNodeId"),
        "K8sNodeName": t("K8sNodeName"),
        "K8sPodName": t("K8sPodName"),
        "Level": level,
        "Solution": solution,
        "StartTime": start,
        "Type": t("AlarmEventTypeDisplay"),
        "Uuid": t("Uuid"),
    })));
    obj(json!({ "Data": data }))
}

/// One `CauseDetails[]` group from (name, type, value) rows; empty values are left out and a
/// group with none is `None`.
fn group(key: &str, rows: Vec<(String, &str, String)>) -> Option<Value> {
    let values: Vec<Value> = rows
        .into_iter()
        .filter(|(_, _, v)| !v.is_empty())
        .map(|(name, kind, value)| json!({"Name": name, "Type": kind, "Value": value}))
        .collect();
    (!values.is_empty()).then(|| json!({"Key": key, "Value": values}))
}

/// The diagnosis of one alert record: process chain, container, evidence, tactics.
pub(super) fn cause_details(r: &Map<String, Value>) -> Value {
    let details = rows(r);
    let find = |name: &str| {
        details
            .iter()
            .find(|(n, _, v)| *n == name && !v.is_empty())
            .map(|(_, _, v)| v.to_string())
    };
    let container = text(r, "ContainerId");
    let app = text(r, "AppName");
    let mut chain = Vec::new();
    if !container.is_empty() {
        chain.push((
            "containerd-shim".to_string(),
            "text",
            format!(
                "/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id {container} -address /run/containerd/containerd.sock"
            ),
        ));
        if !app.is_empty() {
            chain.push((
                "Container init (PID 1)".to_string(),
                "text",
                format!("/usr/local/bin/{app}"),
            ));
        }
    }
    if let Some(parent) = find("Parent process") {
        chain.push(("Parent process".to_string(), "text", parent));
    }
    if let Some(process) = find("Command line").or_else(|| find("Process path")) {
        let name = match find("Process ID") {
            Some(pid) => format!("Process (PID {pid})"),
            None => "Process".to_string(),
        };
        chain.push((name, "text", process));
    }
    let cluster = match (text(r, "K8sClusterName"), text(r, "K8sClusterId")) {
        ("", id) => id.to_string(),
        (name, "") => name.to_string(),
        (name, id) => format!("{name} ({id})"),
    };
    let field = |name: &str, key: &str| (name.to_string(), "text", text(r, key).to_string());
    let place = vec![
        ("Cluster".to_string(), "text", cluster),
        field("Node", "K8sNodeName"),
        field("Namespace", "K8sNamespace"),
        field("Pod", "K8sPodName"),
        field("Container ID", "ContainerId"),
        field("Image", "ContainerImageName"),
    ];
    let evidence = details
        .iter()
        .map(|(n, kind, v)| (n.to_string(), *kind, v.to_string()))
        .collect();
    let tactics = r
        .get("TacticItems")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|t| {
                    let f = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    (f("TacticId"), "text", f("TacticDisplayName"))
                })
                .collect()
        })
        .unwrap_or_default();
    Value::Array(
        [
            group("Process chain", chain),
            group("Container", place),
            group("Evidence", evidence),
            group("ATT&CK tactics", tactics),
        ]
        .into_iter()
        .flatten()
        .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Map<String, Value> {
        let row = |n: &str, v: &str| json!({"NameDisplay": n, "Type": "text", "Value": v, "ValueDisplay": v});
        obj(json!({
            "Id": 7,
            "AlarmEventName": "Reverse shell",
            "AlarmEventNameDisplay": "Reverse shell",
            "AlarmEventTypeDisplay": "Abnormal process behavior",
            "AlarmUniqueInfo": "u1",
            "AppName": "checkout",
            "ContainerId": "abc",
            "Details": [row("Parent process", "runc:[2:INIT]"), row("Command line", "bash -i"), row("Process ID", "42")],
            "EventStatus": 8,
            "K8sClusterId": "c1",
            "K8sClusterName": "prod",
            "LastTimeStamp": 2000,
            "Level": "suspicious",
            "OccurrenceTimeStamp": 1000,
            "TacticItems": [{"TacticId": "TA0011", "TacticDisplayName": "Command and Control"}],
        }))
    }

    #[test]
    fn the_flat_detail_has_a_string_status_and_three_key_details() {
        let d = susp_event_detail(&alert());
        assert_eq!(d["EventStatus"], "8");
        assert_eq!(d["Id"], 7);
        assert_eq!(d["EventTypeDesc"], "Abnormal process behavior");
        assert_eq!(
            d["Details"][1],
            json!({"NameDisplay": "Command line", "Type": "text", "Value": "bash -i"})
        );
    }

    #[test]
    fn the_diagnosis_chains_processes_from_the_runtime_down() {
        let causes = cause_details(&alert());
        let keys: Vec<&str> = causes
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["Key"].as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            ["Process chain", "Container", "Evidence", "ATT&CK tactics"]
        );
        let chain: Vec<&str> = causes[0]["Value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["Name"].as_str().unwrap())
            .collect();
        assert_eq!(
            chain,
            [
                "containerd-shim",
                "Container init (PID 1)",
                "Parent process",
                "Process (PID 42)"
            ]
        );
        assert_eq!(causes[0]["Value"][3]["Value"], "bash -i");
        assert_eq!(causes[1]["Value"][0]["Value"], "prod (c1)");
    }

    #[test]
    fn an_aggregate_takes_the_worst_level_and_the_whole_time_span() {
        let a = alert();
        let mut b = alert();
        b.insert("Id".into(), 8.into());
        b.insert("Level".into(), "serious".into());
        b.insert("OccurrenceTimeStamp".into(), 500.into());
        b.insert("LastTimeStamp".into(), 1500.into());
        b.insert("K8sPodName".into(), "older-pod".into());
        let d = alarm_event_detail(&[&a, &b]);
        let data = &d["Data"];
        assert_eq!(data["Level"], "serious");
        assert_eq!(
            (data["StartTime"].as_i64(), data["EndTime"].as_i64()),
            (Some(500), Some(2000))
        );
        // Everything else is the latest record's.
        assert_eq!(data["K8sPodName"], "");
        assert!(
            data["Solution"]
                .as_str()
                .unwrap()
                .contains("remote address")
        );
    }
}
