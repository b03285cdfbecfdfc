//! The simulator's container firewall rules over real sockets with signed requests:
//! `ListInterceptionRulePage` lists each cluster's rules in priority order with the sample's
//! shape, pages and searches them; every firewall alert names a listed rule of its cluster;
//! `ModifyInterceptionRuleSwitch` changes them all or nothing, shows in the next listing and the
//! rule counts, is refused without permission or a valid signature, and is recorded.

use std::collections::BTreeMap;

use sasrelay::sas::sign::SignatureVersion;
use sasrelay::simulator::{Domain, SimCredential};
use serde_json::Value;

use super::api::{AK, Api, assert_error, cluster, fixture, get_json, items, shape_diff, start};

/// The keys of `ListInterceptionRulePage`'s required parameters.
const PAGE: [&str; 3] = ["ClusterId", "CurrentPage", "PageSize"];
/// The keys of `ModifyInterceptionRuleSwitch`'s parameters.
const SWITCH: [&str; 3] = ["ClusterId", "RuleIds", "RuleSwitch"];

/// Request parameters `keys` = `values`, leaving out those given as `None`.
fn present<'a>(keys: [&'a str; 3], values: [Option<&'a str>; 3]) -> Vec<(&'a str, &'a str)> {
    keys.into_iter()
        .zip(values)
        .filter_map(|(k, v)| Some((k, v?)))
        .collect()
}

async fn rule_page(api: &Api, c: &str, extra: &[(&str, &str)]) -> Value {
    let mut q = vec![("ClusterId", c), ("CurrentPage", "1"), ("PageSize", "20")];
    q.extend_from_slice(extra);
    api.ok("ListInterceptionRulePage", &q).await
}

/// Rule ids a search finds.
async fn found(api: &Api, c: &str, kind: &str, criteria: &str) -> Vec<i64> {
    let body = rule_page(api, c, &[("CriteriaType", kind), ("Criteria", criteria)]).await;
    ids(&body)
}

/// One integer field of every listed rule.
fn column(body: &Value, key: &str) -> Vec<i64> {
    items(body, "InterceptionRuleList")
        .iter()
        .map(|r| r[key].as_i64().unwrap())
        .collect()
}

fn ids(body: &Value) -> Vec<i64> {
    column(body, "RuleId")
}

#[tokio::test]
async fn rules_are_listed_by_priority_in_the_sample_shape() {
    let sim = start().await;
    let api = Api::new(&sim, SignatureVersion::V3);
    let c = cluster(&sim, 0);
    let body = rule_page(&api, &c, &[]).await;
    let sample = fixture("ListInterceptionRulePage.json");
    let mut diffs = Vec::new();
    shape_diff(&sample, &body, "ListInterceptionRulePage", &mut diffs);
    assert!(diffs.is_empty(), "shape differences:\n{}", diffs.join("\n"));
    // This family spells CurrentPage with two r's (ListClusterInterceptionConfig has three).
    assert_eq!(
        body["PageInfo"],
        serde_json::json!({"Count": 3, "CurrentPage": 1, "PageSize": 20, "TotalCount": 3})
    );
    assert_eq!(ids(&body), [200_123, 200_131, 200_142]);
    // Cluster 0's first rule is the sample's, object for object.
    assert_eq!(
        body["InterceptionRuleList"][0],
        sample["InterceptionRuleList"][0]
    );
    let orders = column(&body, "OrderIndex");
    assert_eq!(orders, [5, 20, 30]);
    // The accessors show the same.
    assert_eq!(
        sim.firewall_rules(&c),
        *items(&body, "InterceptionRuleList")
    );
    assert_eq!(
        sim.firewall_rule(&c, 200_131).unwrap(),
        body["InterceptionRuleList"][1]
    );
    assert!(sim.firewall_rule(&c, 200_231).is_none(), "cluster 1's rule");
    // Each cluster has its own rules; an unknown cluster has none.
    let other = rule_page(&api, &cluster(&sim, 1), &[]).await;
    assert_eq!(ids(&other), [200_223, 200_231, 200_242]);
    let none = rule_page(&api, "c0000000000000000", &[]).await;
    assert_eq!(none["PageInfo"]["TotalCount"], 0);
    assert!(items(&none, "InterceptionRuleList").is_empty());
    assert!(sim.firewall_rules("c0000000000000000").is_empty());

    // Pages of one, V1-signed.
    let v1 = Api::new(&sim, SignatureVersion::V1);
    let mut paged = Vec::new();
    for page in ["1", "2", "3", "4"] {
        let body = v1
            .ok(
                "ListInterceptionRulePage",
                &[("ClusterId", &c), ("CurrentPage", page), ("PageSize", "1")],
            )
            .await;
        assert_eq!(
            body["PageInfo"]["CurrentPage"],
            page.parse::<i64>().unwrap()
        );
        assert_eq!(body["PageInfo"]["TotalCount"], 3);
        assert_eq!(body["PageInfo"]["Count"], ids(&body).len());
        paged.extend(ids(&body));
    }
    assert_eq!(paged, [200_123, 200_131, 200_142]);
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn every_firewall_alert_names_a_listed_rule_of_its_cluster() {
    let sim = start().await;
    let api = Api::new(&sim, SignatureVersion::V3);
    for _ in 0..5 {
        sim.tick();
    }
    let alerts = sim.findings(Domain::Firewall);
    assert!(alerts.len() >= 24);
    let mut per_rule: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for a in &alerts {
        let c = a["ClusterId"].as_str().unwrap();
        let id = a["RuleId"].as_i64().unwrap();
        *per_rule.entry((c.to_string(), id)).or_default() += 1;
        let rule = sim
            .firewall_rule(c, id)
            .unwrap_or_else(|| panic!("no rule for {a}"));
        assert_eq!(rule["RuleName"], a["RuleName"]);
        assert_eq!(rule["InterceptType"], a["InterceptionType"]);
        assert_eq!(rule["SrcTarget"]["TargetName"], a["SrcRuleTargetName"]);
        assert_eq!(rule["DstTarget"]["TargetName"], a["DstRuleTargetName"]);
        assert_eq!(rule["DstTarget"]["Namespace"], a["DstNamespace"]);
        assert_eq!(
            rule["DstTarget"]["Ports"][0],
            format!("{0}/{0}", a["DstPort"])
        );
    }
    // Looked up the way a client would: by the alert's RuleId, in its cluster.
    for (c, id) in per_rule.keys() {
        assert_eq!(found(&api, c, "ID", &id.to_string()).await, [*id]);
    }
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn rules_are_searched_by_every_criteria_type() {
    let sim = start().await;
    let api = Api::new(&sim, SignatureVersion::V3);
    let c = cluster(&sim, 1);
    for (kind, criteria, want) in [
        ("ID", "200231", vec![200_231]),
        ("ID", "20023", vec![]),
        ("ID", "not a number", vec![]),
        ("RULE_NAME", "DENY", vec![200_223, 200_242]),
        ("RULE_NAME", "egress", vec![200_231]),
        ("SRC_TARGET", "batch", vec![200_231]),
        ("DST_TARGET", "checkout-obj", vec![200_242]),
        ("DST_PORT", "6379", vec![200_223]),
        ("DST_PORT", "8443/8443", vec![200_242]),
        ("RULE_SWITCH", "0", vec![200_242]),
        ("RULE_SWITCH", "1", vec![200_223, 200_231]),
        ("INTERCEPTOR_TYPE", "2", vec![200_231]),
        ("INTERCEPTOR_TYPE", "3", vec![]),
    ] {
        assert_eq!(
            found(&api, &c, kind, criteria).await,
            want,
            "{kind} {criteria}"
        );
    }
    // Criteria alone searches names; a type alone filters nothing.
    let body = rule_page(&api, &c, &[("Criteria", "redis")]).await;
    assert_eq!(ids(&body), [200_223]);
    let body = rule_page(&api, &c, &[("CriteriaType", "ID")]).await;
    assert_eq!(ids(&body).len(), 3);

    let host = sim.endpoint();
    let cl = Some(c.as_str());
    let unknown_type = [("CriteriaType", "NAME"), ("Criteria", "x")];
    for (params, code) in [
        (
            [
                present(PAGE, [cl, Some("1"), Some("20")]),
                unknown_type.to_vec(),
            ]
            .concat(),
            "InvalidParameter",
        ),
        (
            present(PAGE, [cl, Some("1"), Some("101")]),
            "InvalidParameter",
        ),
        (
            present(PAGE, [cl, Some("0"), Some("20")]),
            "InvalidParameter",
        ),
        (
            present(PAGE, [None, Some("1"), Some("20")]),
            "MissingParameter",
        ),
        (present(PAGE, [cl, None, Some("20")]), "MissingParameter"),
        (present(PAGE, [cl, Some("1"), None]), "MissingParameter"),
    ] {
        let r = api.call("ListInterceptionRulePage", &params).await;
        assert_error(&r, 400, code, &host);
    }
    sim.stop().await.unwrap();
}

/// `(OpenRuleCount, CloseRuleCount)` of `GetInterceptionSummary`, and `OpenRuleCount` of the
/// cluster in `ListClusterInterceptionConfig`.
async fn rule_counts(api: &Api, c: &str) -> (Value, Value, Value) {
    let summary = api.ok("GetInterceptionSummary", &[]).await;
    let config = api
        .ok("ListClusterInterceptionConfig", &[("ClusterId", c)])
        .await;
    (
        summary["InterceptionSummary"]["OpenRuleCount"].clone(),
        summary["InterceptionSummary"]["CloseRuleCount"].clone(),
        config["ClusterConfigList"][0]["OpenRuleCount"].clone(),
    )
}

async fn switches(api: &Api, c: &str) -> Vec<i64> {
    column(&rule_page(api, c, &[]).await, "RuleSwitch")
}

#[tokio::test]
async fn switching_rules_shows_in_the_next_listing_and_is_recorded() {
    let sim = start().await;
    let host = sim.endpoint();
    let api = Api::new(&sim, SignatureVersion::V3);
    let c = cluster(&sim, 1);
    assert_eq!(switches(&api, &c).await, [1, 1, 0]);
    assert_eq!(rule_counts(&api, &c).await, (5.into(), 1.into(), 2.into()));

    let body = api
        .ok(
            "ModifyInterceptionRuleSwitch",
            &[
                ("ClusterId", &c),
                ("RuleIds", "200223, 200231"),
                ("RuleSwitch", "0"),
            ],
        )
        .await;
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["RequestId"], "{body}");
    assert_eq!(switches(&api, &c).await, [0, 0, 0]);
    assert_eq!(found(&api, &c, "RULE_SWITCH", "0").await.len(), 3);
    assert_eq!(rule_counts(&api, &c).await, (3.into(), 3.into(), 0.into()));
    assert_eq!(sim.firewall_rule(&c, 200_231).unwrap()["RuleSwitch"], 0);
    // The other cluster's rules are untouched.
    assert_eq!(switches(&api, &cluster(&sim, 0)).await, [1, 1, 1]);

    // V1 turns one back on.
    let v1 = Api::new(&sim, SignatureVersion::V1);
    v1.ok(
        "ModifyInterceptionRuleSwitch",
        &[
            ("ClusterId", &c),
            ("RuleIds", "200242"),
            ("RuleSwitch", "1"),
        ],
    )
    .await;
    assert_eq!(switches(&api, &c).await, [0, 0, 1]);

    // Refusals change nothing: unknown rules and clusters, bad values, missing parameters.
    let cl = Some(c.as_str());
    let one = Some("200223");
    for (params, code) in [
        (
            present(SWITCH, [cl, Some("200223,200123"), Some("1")]),
            "InvalidParameter",
        ),
        (
            present(SWITCH, [Some("c0000000000000000"), one, Some("1")]),
            "InvalidParameter",
        ),
        (present(SWITCH, [cl, one, Some("on")]), "InvalidParameter"),
        (present(SWITCH, [cl, one, Some("2")]), "InvalidParameter"),
        (
            present(SWITCH, [cl, Some("rule-1"), Some("1")]),
            "InvalidParameter",
        ),
        (present(SWITCH, [cl, None, Some("1")]), "MissingParameter"),
        (present(SWITCH, [None, one, Some("1")]), "MissingParameter"),
        (present(SWITCH, [cl, one, None]), "MissingParameter"),
    ] {
        let r = api.call("ModifyInterceptionRuleSwitch", &params).await;
        assert_error(&r, 400, code, &host);
    }
    let r = api
        .call(
            "ModifyInterceptionRuleSwitch",
            &[
                ("ClusterId", &c),
                ("RuleIds", "200223,999"),
                ("RuleSwitch", "1"),
            ],
        )
        .await;
    assert!(
        r.json["Message"].as_str().unwrap().contains("999"),
        "{}",
        r.text
    );
    assert_eq!(switches(&api, &c).await, [0, 0, 1]);

    // Without permission, or signed with the wrong secret: refused before the action.
    let mut reader = SimCredential::new("reader", "reader-secret");
    reader.denied_actions = vec!["ModifyInterceptionRuleSwitch".into()];
    sim.add_credential(reader).unwrap();
    let ro = Api::new(&sim, SignatureVersion::V3).key("reader", "reader-secret", None);
    let all_on = [
        ("ClusterId", c.as_str()),
        ("RuleIds", "200223,200231"),
        ("RuleSwitch", "1"),
    ];
    assert_error(
        &ro.call("ModifyInterceptionRuleSwitch", &all_on).await,
        403,
        "Forbidden.RAM",
        &host,
    );
    assert_eq!(rule_page(&ro, &c, &[]).await["PageInfo"]["TotalCount"], 3);
    let forged = Api::new(&sim, SignatureVersion::V3).key(AK, "not-the-secret", None);
    assert_error(
        &forged.call("ModifyInterceptionRuleSwitch", &all_on).await,
        400,
        "SignatureDoesNotMatch",
        &host,
    );
    assert_eq!(switches(&api, &c).await, [0, 0, 1]);

    // The log: every call that reached the action, refused ones included, with its parameters.
    let calls: Vec<_> = sim
        .handling_calls()
        .into_iter()
        .filter(|call| call.action == "ModifyInterceptionRuleSwitch")
        .collect();
    assert_eq!(calls.len(), 11);
    assert!(calls.iter().all(|call| call.access_key_id == AK));
    let first: Vec<(&str, &str)> = calls[0]
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        first,
        [
            ("ClusterId", c.as_str()),
            ("RuleIds", "200223, 200231"),
            ("RuleSwitch", "0")
        ]
    );
    assert_eq!(calls[1].params["RuleIds"], "200242");
    let control = reqwest::Client::new();
    let http = get_json(&control, &format!("{}/_sim/handling", sim.base_url())).await;
    let logged = items(&http, "calls")
        .iter()
        .filter(|call| call["action"] == "ModifyInterceptionRuleSwitch")
        .count();
    assert_eq!(logged, 11);
    // The control endpoint's clusters show the switches too.
    let clusters = get_json(&control, &format!("{}/_sim/clusters", sim.base_url())).await;
    let on: Vec<i64> = items(&clusters[1], "rules")
        .iter()
        .map(|r| r["rule_switch"].as_i64().unwrap())
        .collect();
    assert_eq!(on, [0, 0, 1]);
    sim.stop().await.unwrap();
}
