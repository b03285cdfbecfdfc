//! The simulator's alert detail actions over real sockets with signed requests:
//! `DescribeSuspEventDetail` is the listed alert as it is now (its status included), flat and
//! with the SDK model's keys; `DescribeAlarmEventDetail` chains from a listed alert's
//! `AlarmUniqueInfo`, aggregates the alerts that share it and carries the diagnosis; unknown
//! ids and missing parameters get the service's errors.

use std::collections::BTreeSet;

use sasrelay::sas::sign::SignatureVersion;
use sasrelay::simulator::{Domain, SimHandle};
use serde_json::{Value, json};

use super::api::{AK, Api, assert_error, cluster, items, start};

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// The keys of `DescribeSuspEventDetailResponseBody` in SDK 10.3.2.
const SUSP_DETAIL_KEYS: [&str; 19] = [
    "AlarmUniqueInfo",
    "CanBeDealOnLine",
    "DataSource",
    "Details",
    "EventDesc",
    "EventName",
    "EventStatus",
    "EventTypeDesc",
    "Id",
    "InstanceName",
    "InternetIp",
    "IntranetIp",
    "LastTime",
    "Level",
    "OperateErrorCode",
    "OperateMsg",
    "RequestId",
    "SaleVersion",
    "Uuid",
];

/// The keys of `DescribeAlarmEventDetailResponseBodyData` in SDK 10.3.2.
const ALARM_DATA_KEYS: [&str; 27] = [
    "AlarmEventAliasName",
    "AlarmEventDesc",
    "AlarmUniqueInfo",
    "AppName",
    "CanBeDealOnLine",
    "CanCancelFault",
    "CauseDetails",
    "ContainHwMode",
    "ContainerId",
    "ContainerImageId",
    "ContainerImageName",
    "DataSource",
    "EndTime",
    "InstanceName",
    "InternetIp",
    "IntranetIp",
    "K8sClusterId",
    "K8sClusterName",
    "K8sNamespace",
    "K8sNodeId",
    "K8sNodeName",
    "K8sPodName",
    "Level",
    "Solution",
    "StartTime",
    "Type",
    "Uuid",
];

/// A pending alert with a process chain in its details.
fn add_alert(sim: &SimHandle, fields: Value) -> Value {
    let row = |name: &str, value: &str| json!({"NameDisplay": name, "Type": "text", "Value": value, "ValueDisplay": value});
    let mut all = json!({
        "EventStatus": 1,
        "Details": [
            row("Parent process", "runc:[2:INIT]"),
            row("Command line", "/bin/bash -i"),
            row("Process ID", "4242"),
        ],
    });
    for (k, v) in fields.as_object().unwrap() {
        all[k] = v.clone();
    }
    sim.add_finding(Domain::Alert, Some(&cluster(sim, 0)), all)
        .unwrap()
}

async fn listed(api: &Api, id: i64) -> Value {
    let body = api
        .ok("DescribeSuspEvents", &[("Id", &id.to_string())])
        .await;
    items(&body, "SuspEvents")[0].clone()
}

async fn susp_detail(api: &Api, id: i64) -> Value {
    api.ok(
        "DescribeSuspEventDetail",
        &[
            ("SuspiciousEventId", &id.to_string()),
            ("From", "sas"),
            ("Lang", "en"),
        ],
    )
    .await
}

#[tokio::test]
async fn an_alert_detail_is_its_listed_record_now() {
    let sim = start().await;
    let id = add_alert(&sim, json!({}))["Id"].as_i64().unwrap();
    for version in [SignatureVersion::V3, SignatureVersion::V1] {
        let api = Api::new(&sim, version);
        let alert = listed(&api, id).await;
        let d = susp_detail(&api, id).await;
        assert_eq!(keys(&d), BTreeSet::from(SUSP_DETAIL_KEYS), "{d}");
        assert_eq!(d["Id"], id);
        // A string here, an int in the list.
        assert_eq!(d["EventStatus"], "1");
        for (detail_key, list_key) in [
            ("EventName", "AlarmEventNameDisplay"),
            ("EventTypeDesc", "AlarmEventTypeDisplay"),
            ("EventDesc", "Desc"),
            ("AlarmUniqueInfo", "AlarmUniqueInfo"),
            ("Level", "Level"),
            ("LastTime", "LastTime"),
            ("Uuid", "Uuid"),
            ("InstanceName", "InstanceName"),
            ("InternetIp", "InternetIp"),
            ("IntranetIp", "IntranetIp"),
            ("CanBeDealOnLine", "CanBeDealOnLine"),
            ("DataSource", "DataSource"),
            ("SaleVersion", "SaleVersion"),
            ("OperateErrorCode", "OperateErrorCode"),
            ("OperateMsg", "OperateMsg"),
        ] {
            assert_eq!(d[detail_key], alert[list_key], "{detail_key}");
        }
        // The list's details without ValueDisplay (not in this model).
        assert_eq!(
            d["Details"],
            json!([
                {"NameDisplay": "Parent process", "Type": "text", "Value": "runc:[2:INIT]"},
                {"NameDisplay": "Command line", "Type": "text", "Value": "/bin/bash -i"},
                {"NameDisplay": "Process ID", "Type": "text", "Value": "4242"},
            ])
        );
    }
    // Handled since: the detail follows the record.
    sim.set_status(Domain::Alert, id, 32).unwrap();
    let api = Api::new(&sim, SignatureVersion::V3);
    let d = susp_detail(&api, id).await;
    assert_eq!(
        (&d["EventStatus"], &d["OperateErrorCode"], &d["OperateMsg"]),
        (&json!("32"), &json!("Success"), &json!("manual_handled"))
    );
    // Every generated alert has a detail and an aggregate to chain to.
    for alert in sim.findings(Domain::Alert) {
        let id = alert["Id"].as_i64().unwrap();
        let d = susp_detail(&api, id).await;
        assert_eq!(d["EventStatus"], alert["EventStatus"].to_string());
        let info = d["AlarmUniqueInfo"].as_str().unwrap();
        assert_eq!(info.len(), 32, "{d}");
        assert_eq!(info, alert["AlarmUniqueInfo"]);
    }

    let host = sim.endpoint();
    for (params, status, code) in [
        (
            vec![("SuspiciousEventId", "1"), ("From", "sas")],
            400,
            "SecurityEventNotExists",
        ),
        (vec![("From", "sas")], 400, "MissingParameter"),
        (
            vec![("SuspiciousEventId", "x"), ("From", "sas")],
            400,
            "InvalidParameter",
        ),
        (
            vec![("SuspiciousEventId", &*id.to_string())],
            400,
            "MissingParameter",
        ),
    ] {
        let r = api.call("DescribeSuspEventDetail", &params).await;
        assert_error(&r, status, code, &host);
    }
    // A removed alert has no detail any more.
    sim.remove_finding(Domain::Alert, id).unwrap();
    let r = api
        .call(
            "DescribeSuspEventDetail",
            &[("SuspiciousEventId", &id.to_string()), ("From", "sas")],
        )
        .await;
    assert_error(&r, 400, "SecurityEventNotExists", &host);
    assert!(
        r.json["Message"]
            .as_str()
            .unwrap()
            .contains(&id.to_string())
    );
    // Reads: not in the handling log.
    assert!(sim.handling_calls().is_empty());
    sim.stop().await.unwrap();
}

async fn alarm_detail(api: &Api, info: &str) -> Value {
    let body = api
        .ok(
            "DescribeAlarmEventDetail",
            &[("AlarmUniqueInfo", info), ("From", "sas"), ("Lang", "en")],
        )
        .await;
    assert_eq!(keys(&body), BTreeSet::from(["Data", "RequestId"]), "{body}");
    assert_eq!(
        keys(&body["Data"]),
        BTreeSet::from(ALARM_DATA_KEYS),
        "{body}"
    );
    body["Data"].clone()
}

/// The `Name`s and `Value`s of one `CauseDetails` group.
fn group(data: &Value, key: &str) -> Vec<(String, String)> {
    let g = items(data, "CauseDetails")
        .iter()
        .find(|g| g["Key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {data}"));
    items(g, "Value")
        .iter()
        .map(|v| {
            assert_eq!(v["Type"], "text");
            (
                v["Name"].as_str().unwrap().to_string(),
                v["Value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_aggregate_chains_from_a_listed_alert_with_its_diagnosis() {
    let sim = start().await;
    let api = Api::new(&sim, SignatureVersion::V3);
    let c = cluster(&sim, 0);
    let alert = add_alert(&sim, json!({}));
    let id = alert["Id"].as_i64().unwrap();
    // List → detail → aggregate, as a client would chain them.
    let d = susp_detail(&api, id).await;
    let info = d["AlarmUniqueInfo"].as_str().unwrap().to_string();
    let data = alarm_detail(&api, &info).await;
    let listed = listed(&api, id).await;
    for (key, list_key) in [
        ("AlarmUniqueInfo", "AlarmUniqueInfo"),
        ("AlarmEventAliasName", "AlarmEventNameDisplay"),
        ("AlarmEventDesc", "Desc"),
        ("Type", "AlarmEventTypeDisplay"),
        ("Level", "Level"),
        ("Uuid", "Uuid"),
        ("InstanceName", "InstanceName"),
        ("InternetIp", "InternetIp"),
        ("IntranetIp", "IntranetIp"),
        ("AppName", "AppName"),
        ("ContainerId", "ContainerId"),
        ("ContainerImageId", "ContainerImageId"),
        ("ContainerImageName", "ContainerImageName"),
        ("K8sClusterId", "K8sClusterId"),
        ("K8sClusterName", "K8sClusterName"),
        ("K8sNamespace", "K8sNamespace"),
        ("K8sNodeId", "K8sNodeId"),
        ("K8sNodeName", "K8sNodeName"),
        ("K8sPodName", "K8sPodName"),
        ("CanBeDealOnLine", "CanBeDealOnLine"),
        ("CanCancelFault", "CanCancelFault"),
        ("ContainHwMode", "ContainHwMode"),
        ("DataSource", "DataSource"),
        ("StartTime", "OccurrenceTimeStamp"),
        ("EndTime", "LastTimeStamp"),
    ] {
        assert_eq!(data[key], listed[list_key], "{key}");
    }
    assert_eq!(data["K8sClusterId"], c.as_str());
    assert!(!data["Solution"].as_str().unwrap().is_empty());
    // The diagnosis: runtime → container init → parent → the process, then where and why.
    let chain = group(&data, "Process chain");
    let container = listed["ContainerId"].as_str().unwrap();
    assert_eq!(chain.len(), 4, "{chain:?}");
    assert_eq!(chain[0].0, "containerd-shim");
    assert!(chain[0].1.contains(container), "{chain:?}");
    assert_eq!(
        chain[1],
        (
            "Container init (PID 1)".to_string(),
            format!("/usr/local/bin/{}", listed["AppName"].as_str().unwrap())
        )
    );
    assert_eq!(
        chain[2..],
        [
            ("Parent process".to_string(), "runc:[2:INIT]".to_string()),
            ("Process (PID 4242)".to_string(), "/bin/bash -i".to_string()),
        ]
    );
    let place = group(&data, "Container");
    assert!(place.contains(&(
        "Pod".to_string(),
        listed["K8sPodName"].as_str().unwrap().to_string()
    )));
    assert!(place.contains(&("Container ID".to_string(), container.to_string())));
    assert_eq!(
        group(&data, "Evidence"),
        [
            ("Parent process", "runc:[2:INIT]"),
            ("Command line", "/bin/bash -i"),
            ("Process ID", "4242"),
        ]
        .map(|(n, v)| (n.to_string(), v.to_string()))
    );
    let tactic = &listed["TacticItems"][0];
    assert_eq!(
        group(&data, "ATT&CK tactics"),
        [(
            tactic["TacticId"].as_str().unwrap().to_string(),
            tactic["TacticDisplayName"].as_str().unwrap().to_string()
        )]
    );

    // A second exception of the same alert: the aggregate spans both, takes the worse level
    // and shows the newer one.
    let (first, last) = (
        listed["OccurrenceTimeStamp"].as_i64().unwrap(),
        listed["LastTimeStamp"].as_i64().unwrap(),
    );
    let level = if listed["Level"] == "serious" {
        "remind"
    } else {
        "serious"
    };
    let newer = add_alert(
        &sim,
        json!({
            "AlarmUniqueInfo": info,
            "UniqueInfo": info,
            "Level": level,
            "OccurrenceTimeStamp": first + 1,
            "LastTimeStamp": last + 60_000,
            "K8sPodName": "checkout-7d9f8b6c5d-newer",
            "Details": [{"NameDisplay": "Process path", "Type": "text", "Value": "/tmp/x", "ValueDisplay": "/tmp/x"}],
        }),
    );
    // The list shows the exceptions of one alert by its AlarmUniqueInfo.
    let both = api
        .ok("DescribeSuspEvents", &[("AlarmUniqueInfo", &info)])
        .await;
    let mut ids: Vec<i64> = items(&both, "SuspEvents")
        .iter()
        .map(|r| r["Id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [id, newer["Id"].as_i64().unwrap()]);
    let data = alarm_detail(&api, &info).await;
    assert_eq!(data["Level"], "serious");
    assert_eq!(data["StartTime"], first);
    assert_eq!(data["EndTime"], last + 60_000);
    assert_eq!(data["K8sPodName"], "checkout-7d9f8b6c5d-newer");
    let chain = group(&data, "Process chain");
    assert_eq!(
        chain.last().unwrap(),
        &("Process".to_string(), "/tmp/x".to_string()),
        "the newer exception's process, without a PID"
    );

    let host = sim.endpoint();
    for (params, code) in [
        (
            vec![
                ("AlarmUniqueInfo", "0123456789abcdef0123456789abcdef"),
                ("From", "sas"),
            ],
            "InvalidParameter",
        ),
        (vec![("From", "sas")], "MissingParameter"),
        (vec![("AlarmUniqueInfo", info.as_str())], "MissingParameter"),
    ] {
        let r = api.call("DescribeAlarmEventDetail", &params).await;
        assert_error(&r, 400, code, &host);
    }
    // A wrong secret is refused before the action, as for every other action.
    let wrong = Api::new(&sim, SignatureVersion::V1).key(AK, "not-the-secret", None);
    let r = wrong
        .call(
            "DescribeAlarmEventDetail",
            &[("AlarmUniqueInfo", &info), ("From", "sas")],
        )
        .await;
    assert_error(&r, 400, "SignatureDoesNotMatch", &host);
    assert_eq!(sim.call_count("DescribeAlarmEventDetail"), 6);
    sim.stop().await.unwrap();
}
