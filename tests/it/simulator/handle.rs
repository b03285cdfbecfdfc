//! The simulator's handling actions over real sockets with signed requests: each one changes the
//! world and the next listing shows it; the refusals have the service's codes; an alert task
//! goes `Processing` → `Success`; a key whose RAM policy denies a write gets `Forbidden.RAM`;
//! every handling call is recorded with its parameters and key.

use sasrelay::sas::sign::SignatureVersion;
use sasrelay::simulator::{Domain, SimCredential, SimHandle};
use serde_json::{Value, json};

use super::api::{AK, Api, assert_error, cluster, fixture, items, shape_diff, start};

/// Asserts that `body` has exactly the key set of the sample `action.json`.
fn assert_sample_shape(action: &str, body: &Value) {
    let mut diffs = Vec::new();
    shape_diff(
        &fixture(&format!("{action}.json")),
        body,
        action,
        &mut diffs,
    );
    assert!(diffs.is_empty(), "shape differences:\n{}", diffs.join("\n"));
}

/// A pending alert whose details offer every operation: a process with a command line, a
/// parent process and a remote address.
fn add_alert(sim: &SimHandle) -> i64 {
    let c = cluster(sim, 0);
    let row = |name: &str, value: &str| json!({"NameDisplay": name, "Type": "text", "Value": value, "ValueDisplay": value});
    let alert = sim
        .add_finding(
            Domain::Alert,
            Some(&c),
            json!({
                "EventStatus": 1,
                "Details": [
                    row("Command line", "/bin/bash -i"),
                    row("Parent process", "runc:[2:INIT]"),
                    row("Remote address", "203.0.113.9:4444"),
                    row("Process ID", "4242"),
                ],
            }),
        )
        .unwrap();
    alert["Id"].as_i64().unwrap()
}

/// The alert as `DescribeSuspEvents` lists it now.
async fn listed(api: &Api, id: i64) -> Value {
    let body = api
        .ok("DescribeSuspEvents", &[("Id", &id.to_string())])
        .await;
    let list = items(&body, "SuspEvents");
    assert_eq!(list.len(), 1, "{body}");
    list[0].clone()
}

async fn codes(api: &Api, id: i64) -> Vec<String> {
    let body = api
        .ok(
            "DescribeSecurityEventOperations",
            &[("SecurityEventId", &id.to_string())],
        )
        .await;
    items(&body, "SecurityEventOperationsResponse")
        .iter()
        .map(|o| o["OperationCode"].as_str().unwrap().to_string())
        .collect()
}

/// Runs `HandleSecurityEvents` and returns its task id.
async fn handle(api: &Api, code: &str, ids: &[i64], extra: &[(&str, &str)]) -> String {
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    let keys: Vec<String> = (1..=ids.len())
        .map(|n| format!("SecurityEventIds.{n}"))
        .collect();
    let mut q: Vec<(&str, &str)> = vec![("OperationCode", code)];
    q.extend(
        keys.iter()
            .map(String::as_str)
            .zip(ids.iter().map(String::as_str)),
    );
    q.extend_from_slice(extra);
    let body = api.ok("HandleSecurityEvents", &q).await;
    assert_sample_shape("HandleSecurityEvents", &body);
    body["HandleSecurityEventsResponse"]["TaskId"]
        .as_i64()
        .unwrap()
        .to_string()
}

async fn task_status(api: &Api, task: &str) -> Value {
    let body = api
        .ok("DescribeSecurityEventOperationStatus", &[("TaskId", task)])
        .await;
    body["SecurityEventOperationStatusResponse"].clone()
}

/// Follows a task to its end: `Processing` to the first query, the final state to the next.
async fn finish(api: &Api, task: &str) -> Value {
    let first = task_status(api, task).await;
    assert_eq!(first["TaskStatus"], "Processing", "{first}");
    for e in first["SecurityEventOperationStatuses"].as_array().unwrap() {
        assert_eq!(e["Status"], "Processing", "{first}");
    }
    let done = task_status(api, task).await;
    assert_ne!(done["TaskStatus"], "Processing", "{done}");
    done
}

#[tokio::test]
async fn operations_are_those_the_alert_allows_now() {
    let sim = start().await;
    let api = Api::new(&sim, SignatureVersion::V3);
    let id = add_alert(&sim);
    let uuid = sim.finding(Domain::Alert, id).unwrap()["Uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let body = api
        .ok(
            "DescribeSecurityEventOperations",
            &[("SecurityEventId", &id.to_string())],
        )
        .await;
    assert_sample_shape("DescribeSecurityEventOperations", &body);
    let ops = items(&body, "SecurityEventOperationsResponse");
    let codes_now: Vec<&str> = ops
        .iter()
        .map(|o| o["OperationCode"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes_now,
        [
            "ignore",
            "advance_mark_mis_info",
            "manual_handled",
            "kill_and_quara",
            "block_ip"
        ]
    );
    let white = &ops[1];
    assert_eq!(
        white["MarkField"],
        json!([{
            "FiledAliasName": "Command line",
            "FiledName": "cmdline",
            "MarkMisType": "contains",
            "MarkMisValue": "/bin/bash -i",
            "SupportedMisType": ["contains", "notContains", "regex", "strEqual", "strNotEqual"],
            "Uuid": uuid,
        }])
    );
    let sources: Vec<&str> = items(white, "MarkFieldsSource")
        .iter()
        .map(|f| f["FiledName"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["pcmdline", "remote_addr"]);
    assert_eq!(white["MappingMarkFields"][0]["Value"], "/bin/bash -i");
    assert_eq!(
        ops[3]["OperationParams"],
        "{\"subOperation\":\"killAndQuaraFileByMd5andPath\"}"
    );
    assert!(ops.iter().all(|o| o["UserCanOperate"] == true));

    assert_error(
        &api.call(
            "DescribeSecurityEventOperations",
            &[("SecurityEventId", "1")],
        )
        .await,
        400,
        "SecurityEventNotExists",
        &sim.endpoint(),
    );
    assert_error(
        &api.call("DescribeSecurityEventOperations", &[]).await,
        400,
        "MissingParameter",
        &sim.endpoint(),
    );
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn ignore_shows_on_the_next_poll_and_is_undone_by_cancel_ignore() {
    let sim = start().await;
    let api = Api::new(&sim, SignatureVersion::V3);
    let id = add_alert(&sim);
    let pending = || async {
        let body = api
            .ok(
                "DescribeSuspEvents",
                &[("Dealed", "N"), ("PageSize", "100")],
            )
            .await;
        let total = body["TotalCount"].as_u64().unwrap();
        let page = 100.min(total);
        let mut all: Vec<i64> = Vec::new();
        for p in 1..=total.div_ceil(page.max(1)) {
            let b = api
                .ok(
                    "DescribeSuspEvents",
                    &[
                        ("Dealed", "N"),
                        ("PageSize", "100"),
                        ("CurrentPage", &p.to_string()),
                    ],
                )
                .await;
            all.extend(
                items(&b, "SuspEvents")
                    .iter()
                    .map(|r| r["Id"].as_i64().unwrap()),
            );
        }
        all
    };
    assert!(pending().await.contains(&id));

    let task = handle(&api, "ignore", &[id], &[("Remark", "known test pod")]).await;
    // The next poll sees the alert ignored, whether or not the client followed the task.
    let alert = listed(&api, id).await;
    assert_eq!(alert["EventStatus"], 2);
    assert_eq!(alert["OperateMsg"], "ignore");
    assert!(alert["OperateTime"].as_i64().unwrap() > 0);
    assert!(!pending().await.contains(&id));

    let done = finish(&api, &task).await;
    assert_eq!(
        done,
        json!({
            "TaskStatus": "Success",
            "SecurityEventOperationStatuses": [
                {"SecurityEventId": id.to_string(), "Status": "Success", "ErrorCode": "Success"}
            ],
        })
    );
    let body = api
        .ok("DescribeSecurityEventOperationStatus", &[("TaskId", &task)])
        .await;
    assert_sample_shape("DescribeSecurityEventOperationStatus", &body);

    // An ignored alert offers no handling code; ignoring it again fails that event.
    assert!(codes(&api, id).await.is_empty());
    let again = handle(&api, "ignore", &[id], &[]).await;
    let failed = finish(&api, &again).await;
    assert_eq!(failed["TaskStatus"], "Failure");
    assert_eq!(
        failed["SecurityEventOperationStatuses"][0],
        json!({"SecurityEventId": id.to_string(), "Status": "Failed", "ErrorCode": "EventNotSupportOperation"})
    );
    assert_eq!(listed(&api, id).await["EventStatus"], 2);

    // Undoing the ignore.
    let body = api
        .ok(
            "OperationCancelIgnoreSuspEvent",
            &[("SecurityEventIds.1", &id.to_string()), ("Remark", "oops")],
        )
        .await;
    assert_eq!(body["Success"], true);
    assert_eq!(body["HttpStatusCode"], 200);
    assert!(body["Code"].is_string() && body["Message"].is_string());
    assert!(body["TimeCost"].is_i64() && body["RequestId"].is_string());
    let alert = listed(&api, id).await;
    assert_eq!(alert["EventStatus"], 1);
    assert_eq!(alert["OperateTime"], 0);
    assert!(pending().await.contains(&id));
    assert_error(
        &api.call(
            "OperationCancelIgnoreSuspEvent",
            &[("SecurityEventIds.1", "1")],
        )
        .await,
        400,
        "SecurityEventNotExists",
        &sim.endpoint(),
    );
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn whitelist_and_manual_handling_with_their_undo() {
    let sim = start().await;
    let api = Api::new(&sim, SignatureVersion::V1);
    let id = add_alert(&sim);
    let other = add_alert(&sim);
    let host = sim.endpoint();
    let rule = |field: &str, operate: &str| {
        json!({"field": field, "operate": operate, "fieldValue": "/bin/bash", "uuid": "part"})
            .to_string()
    };
    let ids = id.to_string();
    let refused = |q: Vec<(&'static str, String)>| {
        let api = api.clone();
        async move {
            let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
            api.call("HandleSecurityEvents", &q).await
        }
    };
    // The rule is checked against the event's own whitelist fields and the supported operators.
    let r = refused(vec![
        ("OperationCode", "advance_mark_mis_info".into()),
        ("SecurityEventIds.1", ids.clone()),
        ("MarkMissParam", rule("pcmdline", "contains")),
    ])
    .await;
    assert_error(&r, 400, "InvalidParameter", &host);
    assert!(
        r.json["Message"].as_str().unwrap().contains("pcmdline"),
        "{}",
        r.text
    );
    assert!(
        r.json["Message"].as_str().unwrap().contains("cmdline"),
        "{}",
        r.text
    );
    let r = refused(vec![
        ("OperationCode", "advance_mark_mis_info".into()),
        ("SecurityEventIds.1", ids.clone()),
        ("MarkMissParam", rule("cmdline", "startsWith")),
    ])
    .await;
    assert_error(&r, 400, "InvalidParameter", &host);
    assert!(
        r.json["Message"].as_str().unwrap().contains("operate"),
        "{}",
        r.text
    );
    let r = refused(vec![
        ("OperationCode", "advance_mark_mis_info".into()),
        ("SecurityEventIds.1", ids.clone()),
    ])
    .await;
    assert_error(&r, 400, "MissingParameter", &host);
    let r = refused(vec![
        ("OperationCode", "ignore".into()),
        ("SecurityEventIds.1", "1".into()),
    ])
    .await;
    assert_error(&r, 400, "SecurityEventNotExists", &host);
    let r = refused(vec![
        ("OperationCode", "kill_and_quara".into()),
        ("SecurityEventIds.1", ids.clone()),
    ])
    .await;
    assert_error(&r, 400, "MissingParameter", &host);
    let r = refused(vec![
        ("OperationCode", "reboot".into()),
        ("SecurityEventIds.1", ids.clone()),
    ])
    .await;
    assert_error(&r, 400, "InvalidParameter", &host);
    assert_eq!(listed(&api, id).await["EventStatus"], 1);

    // Whitelisting, then removing it.
    let task = handle(
        &api,
        "advance_mark_mis_info",
        &[id],
        &[("MarkMissParam", &rule("cmdline", "contains"))],
    )
    .await;
    assert_eq!(finish(&api, &task).await["TaskStatus"], "Success");
    let alert = listed(&api, id).await;
    assert_eq!(alert["EventStatus"], 8);
    assert!(alert["MarkMisRules"].as_str().unwrap().contains("cmdline"));
    assert_eq!(codes(&api, id).await, ["rm_mark_mis_info"]);
    handle(&api, "rm_mark_mis_info", &[id], &[]).await;
    let alert = listed(&api, id).await;
    assert_eq!(alert["EventStatus"], 1);
    assert_eq!(alert["MarkMisRules"], "");

    // Manually handled, then cancelled ("cancle", sic).
    handle(&api, "manual_handled", &[id], &[]).await;
    let alert = listed(&api, id).await;
    assert_eq!(alert["EventStatus"], 32);
    assert_eq!(alert["OperateMsg"], "manual_handled");
    assert_eq!(codes(&api, id).await, ["cancle_manual"]);
    handle(&api, "cancle_manual", &[id], &[]).await;
    assert_eq!(listed(&api, id).await["EventStatus"], 1);

    // One task, two events: one allowed, one not — the task succeeds, as in the sample.
    handle(&api, "ignore", &[other], &[]).await;
    let task = handle(
        &api,
        "block_ip",
        &[id, other],
        &[("OperationParams", "{\"expireTime\":1641566807783}")],
    )
    .await;
    let done = finish(&api, &task).await;
    assert_eq!(
        done,
        json!({
            "TaskStatus": "Success",
            "SecurityEventOperationStatuses": [
                {"SecurityEventId": id.to_string(), "Status": "Success", "ErrorCode": "Success"},
                {"SecurityEventId": other.to_string(), "Status": "Failed", "ErrorCode": "EventNotSupportOperation"},
            ],
        })
    );
    assert_eq!(listed(&api, id).await["EventStatus"], 32);
    assert_eq!(listed(&api, other).await["EventStatus"], 2);
    // A task is also found by its events, and unknown tasks are refused.
    let by_event = api
        .ok(
            "DescribeSecurityEventOperationStatus",
            &[("SecurityEventIds.1", &other.to_string())],
        )
        .await;
    assert_eq!(
        by_event["SecurityEventOperationStatusResponse"]["SecurityEventOperationStatuses"],
        json!([{"SecurityEventId": other.to_string(), "Status": "Failed", "ErrorCode": "EventNotSupportOperation"}])
    );
    assert_error(
        &api.call("DescribeSecurityEventOperationStatus", &[("TaskId", "1")])
            .await,
        400,
        "InvalidParameter",
        &host,
    );
    sim.stop().await.unwrap();
}

/// An open vulnerability record of `ty`: (PrimaryId, Name, Uuid).
async fn open_vuln(api: &Api, ty: &str) -> (i64, String, String) {
    let mut q = vec![("Type", ty), ("Dealed", "n"), ("PageSize", "100")];
    if ty == "app" {
        q.push(("AttachTypes", "sca"));
    }
    let body = api.ok("DescribeVulList", &q).await;
    let r = items(&body, "VulRecords")
        .iter()
        .find(|r| r["Type"] == ty)
        .unwrap_or_else(|| panic!("no open {ty} vulnerability: {body}"))
        .clone();
    (
        r["PrimaryId"].as_i64().unwrap(),
        r["Name"].as_str().unwrap().to_string(),
        r["Uuid"].as_str().unwrap().to_string(),
    )
}

async fn vuln_status(api: &Api, ty: &str, id: i64) -> i64 {
    let mut q = vec![
        ("Type", ty.to_string()),
        ("Ids", id.to_string()),
        ("StatusList", "1,2,3,4,5,6,7,8,9,10,11,12,20".to_string()),
    ];
    if ty == "app" {
        q.push(("AttachTypes", "sca".into()));
    }
    let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let body = api.ok("DescribeVulList", &q).await;
    let list = items(&body, "VulRecords");
    assert_eq!(list.len(), 1, "{body}");
    list[0]["Status"].as_i64().unwrap()
}

#[tokio::test]
async fn vulnerabilities_are_ignored_restored_and_fixed() {
    let sim = start().await;
    let api = Api::new(&sim, SignatureVersion::V3);
    let host = sim.endpoint();
    let (id, name, uuid) = open_vuln(&api, "cve").await;
    let info = json!([{"name": name, "uuid": uuid, "tag": "oval"}]).to_string();
    let modify = |op: &'static str, reason: Option<&'static str>| {
        let (api, info) = (api.clone(), info.clone());
        async move {
            let mut q = vec![
                ("Type", "cve"),
                ("OperateType", op),
                ("Info", info.as_str()),
            ];
            if let Some(r) = reason {
                q.push(("Reason", r));
            }
            api.call("ModifyOperateVul", &q).await
        }
    };
    assert_error(
        &modify("vul_ignore", None).await,
        400,
        "MissingParameter",
        &host,
    );
    assert_eq!(vuln_status(&api, "cve", id).await, 1);

    let r = modify("vul_ignore", Some("accepted risk")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["RequestId"]
    );
    assert_eq!(vuln_status(&api, "cve", id).await, 10);
    assert_eq!(modify("vul_undo_ignore", None).await.status, 200);
    assert_eq!(vuln_status(&api, "cve", id).await, 1);
    assert_eq!(modify("vul_fix", None).await.status, 200);
    assert_eq!(vuln_status(&api, "cve", id).await, 7);

    let (vid, vname, vuuid) = open_vuln(&api, "app").await;
    let app_info = json!([{"name": vname, "uuid": vuuid, "tag": "app"}]).to_string();
    let r = api
        .call(
            "ModifyOperateVul",
            &[
                ("Type", "app"),
                ("OperateType", "vul_fix"),
                ("Info", &app_info),
            ],
        )
        .await;
    assert_error(&r, 400, "VulFixNotSupported", &host);
    api.ok(
        "ModifyOperateVul",
        &[
            ("Type", "app"),
            ("OperateType", "vul_verify"),
            ("Info", &app_info),
        ],
    )
    .await;
    assert_eq!(vuln_status(&api, "app", vid).await, 7);

    let missing = json!([{"name": "no-such-vuln", "uuid": uuid, "tag": "oval"}]).to_string();
    let r = api
        .call(
            "ModifyOperateVul",
            &[
                ("Type", "cve"),
                ("OperateType", "vul_verify"),
                ("Info", &missing),
            ],
        )
        .await;
    assert_error(&r, 400, "VulNotExists", &host);
    let r = api
        .call(
            "ModifyOperateVul",
            &[
                ("Type", "cve"),
                ("OperateType", "vul_verify"),
                ("Info", "nope"),
            ],
        )
        .await;
    assert_error(&r, 400, "InvalidParameter", &host);
    sim.stop().await.unwrap();
}

/// A failing baseline warning: (CheckWarningId, RiskId, Uuid, CheckId).
fn failing_warning(sim: &SimHandle) -> (i64, i64, String, i64) {
    let w = sim
        .findings(Domain::Baseline)
        .into_iter()
        .find(|w| w["Status"] == 1)
        .expect("a failing warning");
    (
        w["CheckWarningId"].as_i64().unwrap(),
        w["RiskId"].as_i64().unwrap(),
        w["Uuid"].as_str().unwrap().to_string(),
        w["CheckId"].as_i64().unwrap(),
    )
}

async fn warning(api: &Api, risk: i64, uuid: &str, id: i64) -> Value {
    let body = api
        .ok(
            "DescribeCheckWarnings",
            &[
                ("RiskId", &risk.to_string()),
                ("Uuid", uuid),
                ("PageSize", "100"),
            ],
        )
        .await;
    items(&body, "CheckWarnings")
        .iter()
        .find(|w| w["CheckWarningId"] == id)
        .unwrap_or_else(|| panic!("warning {id} not listed: {body}"))
        .clone()
}

#[tokio::test]
async fn baseline_warnings_are_ignored_restored_and_verified() {
    let sim = start().await;
    let api = Api::new(&sim, SignatureVersion::V3);
    let host = sim.endpoint();
    let (id, risk, uuid, check) = failing_warning(&sim);
    let ids = id.to_string();
    api.ok(
        "IgnoreHcCheckWarnings",
        &[
            ("Type", "1"),
            ("CheckWarningIds", &ids),
            ("Reason", "not applicable"),
        ],
    )
    .await;
    let w = warning(&api, risk, &uuid, id).await;
    assert_eq!(w["Status"], 6);
    assert_eq!(w["Reason"], "not applicable");
    api.ok(
        "IgnoreHcCheckWarnings",
        &[("Type", "2"), ("CheckWarningIds", &ids)],
    )
    .await;
    assert_eq!(warning(&api, risk, &uuid, id).await["Status"], 1);
    assert_error(
        &api.call("IgnoreHcCheckWarnings", &[("Type", "1")]).await,
        400,
        "MissingParameter",
        &host,
    );

    assert_error(
        &api.call("ValidateHcWarnings", &[("Uuids", &uuid)]).await,
        400,
        "HcIllegalParameter",
        &host,
    );
    let body = api
        .ok(
            "ValidateHcWarnings",
            &[
                ("RiskIds", &risk.to_string()),
                ("CheckIds", &check.to_string()),
                ("Uuids", &uuid),
            ],
        )
        .await;
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["RequestId"]
    );
    assert_eq!(warning(&api, risk, &uuid, id).await["Status"], 3);
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn a_read_only_key_is_refused_and_every_handling_call_is_recorded() {
    let sim = start().await;
    let id = add_alert(&sim);
    let mut reader = SimCredential::new("reader", "reader-secret");
    reader.denied_actions = vec!["HandleSecurityEvents".into(), "ModifyOperateVul".into()];
    sim.add_credential(reader).unwrap();
    let ro = Api::new(&sim, SignatureVersion::V1).key("reader", "reader-secret", None);
    let ids = id.to_string();
    assert_error(
        &ro.call(
            "HandleSecurityEvents",
            &[("OperationCode", "ignore"), ("SecurityEventIds.1", &ids)],
        )
        .await,
        403,
        "Forbidden.RAM",
        &sim.endpoint(),
    );
    ro.ok(
        "DescribeSecurityEventOperations",
        &[("SecurityEventId", &ids)],
    )
    .await;
    assert_eq!(listed(&ro, id).await["EventStatus"], 1);

    let api = Api::new(&sim, SignatureVersion::V3);
    let before = sim.now_ms();
    handle(&api, "ignore", &[id], &[("Remark", "by test")]).await;
    let calls = sim.handling_calls();
    let summary: Vec<(&str, &str)> = calls
        .iter()
        .map(|c| (c.action.as_str(), c.access_key_id.as_str()))
        .collect();
    // The refused call never reached the action: only the two that did are recorded.
    assert_eq!(
        summary,
        [
            ("DescribeSecurityEventOperations", "reader"),
            ("HandleSecurityEvents", AK)
        ]
    );
    // V1's signature parameters are not the request's.
    assert_eq!(
        calls[0].params.iter().collect::<Vec<_>>(),
        [(&"SecurityEventId".to_string(), &ids)]
    );
    let expected: Vec<(String, String)> = [
        ("OperationCode", "ignore"),
        ("Remark", "by test"),
        ("SecurityEventIds.1", ids.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(
        calls[1].params.clone().into_iter().collect::<Vec<_>>(),
        expected
    );
    assert!(calls[1].at_ms >= before && calls[1].at_ms <= sim.now_ms());
    // The control endpoint shows the same, and DELETE /_sim/calls forgets them.
    let http = reqwest::Client::new();
    let url = format!("{}/_sim/handling", sim.base_url());
    let shown: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        shown["calls"][1],
        json!({
            "action": "HandleSecurityEvents",
            "params": {"OperationCode": "ignore", "Remark": "by test", "SecurityEventIds.1": ids},
            "access_key_id": AK,
            "at_ms": calls[1].at_ms,
        })
    );
    http.delete(format!("{}/_sim/calls", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert!(sim.handling_calls().is_empty());
    let shown: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(shown["calls"], json!([]));
    sim.stop().await.unwrap();
}
