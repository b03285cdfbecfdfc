//! `sasrelay handle` against a running daemon and the simulator (issue 17): each action
//! changes the simulator's state (which records the call), the next poll emits exactly one
//! `resolved` naming who handled it and how, and the audit log lists it; refused actions (not
//! allowed for the alert, an unknown alert, a field the alert does not offer, a key without
//! the write right, no terminal to confirm on) give the service's code or sasrelay's, with a
//! hint, and change nothing.

use std::path::PathBuf;

use super::admin::{admin_addr, sasrelay};
use crate::support::*;
use sasrelay::simulator::{Domain as SimDomain, SimCredential, SimHandle};
use serde_json::Value;

const T: std::time::Duration = std::time::Duration::from_secs(30);

/// A daemon polling alerts of source `sim` every second (and of source `ro`, whose key may
/// read but not handle), and the CLI's config naming the port it bound.
struct Rig {
    sim: SimHandle,
    hook: Hook,
    daemon: Daemon,
    cli: PathBuf,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn start() -> Rig {
        let sim = quiet_simulator().await;
        let mut ro = SimCredential::new("ro-key", "ro-secret");
        ro.denied_actions = vec![
            "HandleSecurityEvents".into(),
            "OperationCancelIgnoreSuspEvent".into(),
        ];
        sim.add_credential(ro).unwrap();
        let hook = Hook::start().await;
        let dir = tempfile::tempdir().unwrap();
        let (endpoint, url, state) = (sim.endpoint(), hook.url(), dir.path().join("state"));
        let ro_source = format!(
            r#"[[source]]
calls_per_second = 50
name = "ro"
region = "cn-hangzhou"
endpoint = "http://{endpoint}"
credentials = {{ type = "access_key", access_key_id = "ro-key", access_key_secret = {{ env = "RO_SK" }} }}
poll = {{ alerts = "1s" }}
"#
        );
        let mut spec = ConfigSpec::new(&endpoint, &url, &state);
        spec.source_extra = "domains = [\"alerts\"]";
        spec.poll = r#"{ alerts = "1s" }"#;
        spec.tail = &ro_source;
        let config = spec.write(&dir.path().join("sasrelay.toml"));
        let daemon = Daemon::spawn_env(&config, &[("RO_SK", "ro-secret".as_ref())]);
        let bound = admin_addr(&daemon).await;
        let admin = format!("listen = \"{bound}\"");
        spec.admin = &admin;
        let cli = spec.write(&dir.path().join("cli.toml"));
        // Both sources polled once: what comes after is new.
        daemon.wait_more_polls_of(&["alerts"], 2, T).await;
        Rig {
            sim,
            hook,
            daemon,
            cli,
            _dir: dir,
        }
    }

    /// `sasrelay handle …` as OS user `alice` (an alert of source `sim` unless another is
    /// named: with two sources configured the CLI asks which).
    async fn handle(&self, args: &[&str]) -> super::admin::Run {
        let mut all = vec!["handle"];
        all.extend_from_slice(&args[..1]);
        all.extend_from_slice(&["--config", self.cli.to_str().unwrap()]);
        all.extend_from_slice(&args[1..]);
        if args[0] == "alert" && !args.contains(&"--source") {
            all.extend_from_slice(&["--source", "sim"]);
        }
        sasrelay(&all, &[("USER", "alice")]).await
    }

    /// A new open alert, announced (`new` delivered); its id.
    async fn new_alert(&self) -> i64 {
        let id = self
            .sim
            .add_finding(SimDomain::Alert, None, Value::Null)
            .unwrap()["Id"]
            .as_i64()
            .unwrap();
        let finding = format!("alert:{id}");
        self.hook
            .wait_for(&format!("new {finding}"), T, |r| {
                r.iter()
                    .any(|r| r.delivered() && r.kind() == "new" && r.finding_id() == finding)
            })
            .await;
        id
    }

    /// Waits for the `resolved` of alert `id`, then checks it came once; its payload.
    async fn resolved(&self, id: i64) -> Value {
        let finding = format!("alert:{id}");
        // Source `ro` lists the same alerts (one simulated account): the one handled is `sim`'s.
        let is = |r: &Request| {
            r.delivered()
                && r.kind() == "resolved"
                && r.finding_id() == finding
                && r.body["source"] == "sim"
        };
        self.hook
            .wait_for(&format!("resolved {finding}"), T, |r| r.iter().any(is))
            .await;
        // One more poll: a second resolved would be there by now.
        self.daemon.wait_more_polls_of(&["alerts"], 2, T).await;
        let copies: Vec<Value> = self
            .hook
            .delivered()
            .into_iter()
            .filter(|r| is(r))
            .map(|r| r.body)
            .collect();
        assert_eq!(copies.len(), 1, "{finding}: {copies:?}");
        copies.into_iter().next().unwrap()
    }

    /// The handling calls the simulator recorded for `action` with source `sim`'s key.
    fn calls(&self, action: &str) -> Vec<std::collections::BTreeMap<String, String>> {
        self.sim
            .handling_calls()
            .into_iter()
            .filter(|c| c.action == action && c.access_key_id == "sasrelay-sim")
            .map(|c| c.params)
            .collect()
    }
}

/// What `handle … ID --json` with no action printed: the plan, and what the finding allows.
fn allowed(run: super::admin::Run) -> (Value, Vec<String>) {
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let plan: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let codes = plan["allowed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    (plan, codes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_action_from_the_cli_resolves_the_alert_once_naming_who_and_how() {
    let rig = Rig::start().await;
    let [a, b, c] = [
        rig.new_alert().await,
        rig.new_alert().await,
        rig.new_alert().await,
    ];

    // With no action: what the alert allows, and the fields a whitelist may test.
    let (plan, codes) = allowed(rig.handle(&["alert", &b.to_string(), "--json"]).await);
    let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
    for code in ["ignore", "advance_mark_mis_info", "manual_handled"] {
        assert!(codes.contains(&code), "{codes:?}");
    }
    for destructive in sasrelay::handle::DESTRUCTIVE {
        assert!(!codes.contains(destructive), "offered {destructive}");
    }
    let field = plan["fields"][0]["name"].as_str().unwrap().to_string();
    let value = plan["fields"][0]["value"].as_str().unwrap().to_string();
    assert_eq!(
        rig.calls("HandleSecurityEvents").len(),
        0,
        "a plan changes nothing"
    );

    // Ignore A (by its finding id), whitelist B, mark C handled.
    let ignore = rig
        .handle(&["alert", &format!("alert:{a}"), "--ignore", "--yes"])
        .await;
    assert_eq!(ignore.code, Some(0), "{}", ignore.stderr);
    assert!(ignore.stdout.starts_with("Done:"), "{}", ignore.stdout);
    assert!(ignore.stdout.contains("RequestId"), "{}", ignore.stdout);
    let whitelist = rig
        .handle(&[
            "alert",
            &b.to_string(),
            "--whitelist",
            &field,
            "contains",
            &value,
            "--yes",
        ])
        .await;
    assert_eq!(whitelist.code, Some(0), "{}", whitelist.stderr);
    let handled = rig
        .handle(&[
            "alert",
            &c.to_string(),
            "--handled",
            "--remark",
            "patched the image",
            "--yes",
        ])
        .await;
    assert_eq!(handled.code, Some(0), "{}", handled.stderr);

    // The simulator got exactly these calls, and its state moved.
    let calls = rig.calls("HandleSecurityEvents");
    let codes: Vec<(&str, &str)> = calls
        .iter()
        .map(|p| {
            (
                p["OperationCode"].as_str(),
                p["SecurityEventIds.1"].as_str(),
            )
        })
        .collect();
    let (a_s, b_s, c_s) = (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        codes,
        [
            ("ignore", a_s.as_str()),
            ("advance_mark_mis_info", b_s.as_str()),
            ("manual_handled", c_s.as_str())
        ]
    );
    let rule: Value = serde_json::from_str(&calls[1]["MarkMissParam"]).unwrap();
    assert_eq!(rule["field"], field.as_str());
    assert_eq!(rule["uuid"], "part");
    assert_eq!(calls[2]["Remark"], "patched the image");
    assert_eq!(
        rig.sim.finding(SimDomain::Alert, a).unwrap()["EventStatus"],
        2
    );

    // Each resolves once, saying who handled it and how.
    for (id, action, resolution) in [
        (a, "ignore", "ignored"),
        (b, "whitelist", "false_positive"),
        (c, "handled", "handled"),
    ] {
        let body = rig.resolved(id).await;
        assert_eq!(body["resolution"], resolution, "{body}");
        assert_eq!(body["handled_by"]["who"], "alice", "{body}");
        assert_eq!(body["handled_by"]["via"], "cli");
        assert_eq!(body["handled_by"]["action"], action);
    }

    // The audit log lists the three, newest first, with Security Center's request ids.
    let log = rig.handle(&["log", "--json"]).await;
    assert_eq!(log.code, Some(0), "{}", log.stderr);
    let entries: Vec<Value> = serde_json::from_str(&log.stdout).unwrap();
    let rows: Vec<(&str, &str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["finding"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["result"].as_str().unwrap(),
                e["who"].as_str().unwrap(),
            )
        })
        .collect();
    let (fa, fb, fc) = (
        format!("alert:{a}"),
        format!("alert:{b}"),
        format!("alert:{c}"),
    );
    assert_eq!(
        rows,
        [
            (fc.as_str(), "handled", "success", "alice"),
            (fb.as_str(), "whitelist", "success", "alice"),
            (fa.as_str(), "ignore", "success", "alice"),
        ]
    );
    assert!(
        entries
            .iter()
            .all(|e| !e["request_id"].as_str().unwrap_or_default().is_empty())
    );
    // And the daemon's log says who did what.
    assert!(
        rig.daemon
            .messages("Handled a finding")
            .iter()
            .any(|m| m["who"] == "alice" && m["action"] == "whitelist"),
        "no log line of the whitelist"
    );

    // An undo opens the alert again.
    let undo = rig
        .handle(&["alert", &a.to_string(), "--ignore", "--undo", "--yes"])
        .await;
    assert_eq!(undo.code, Some(0), "{}", undo.stderr);
    assert_eq!(rig.calls("OperationCancelIgnoreSuspEvent").len(), 1);
    assert_eq!(
        rig.sim.finding(SimDomain::Alert, a).unwrap()["EventStatus"],
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_actions_say_why_with_a_hint_and_change_nothing() {
    let rig = Rig::start().await;
    let a = rig.new_alert().await;
    let a_s = a.to_string();

    // No terminal to confirm on, and no --yes.
    let unconfirmed = rig.handle(&["alert", &a_s, "--ignore"]).await;
    assert_eq!(unconfirmed.code, Some(2), "{}", unconfirmed.stderr);
    assert!(
        unconfirmed.stderr.contains("--yes"),
        "{}",
        unconfirmed.stderr
    );

    // A field the alert does not offer.
    let field = rig
        .handle(&[
            "alert",
            &a_s,
            "--whitelist",
            "no_such_field",
            "contains",
            "x",
            "--yes",
        ])
        .await;
    assert_eq!(field.code, Some(1));
    assert!(field.stderr.contains("UnknownField"), "{}", field.stderr);
    assert!(field.stderr.contains("it offers:"), "{}", field.stderr);

    // An alert that does not exist: the service's code, and a hint.
    let missing = rig
        .handle(&["alert", "999999999", "--ignore", "--yes"])
        .await;
    assert_eq!(missing.code, Some(1));
    assert!(
        missing.stderr.contains("SecurityEventNotExists"),
        "{}",
        missing.stderr
    );
    assert!(missing.stderr.contains("hint:"), "{}", missing.stderr);

    // A key that may read but not handle: Forbidden.RAM, naming the right to add.
    let ro_alert = a; // The simulator's alerts are one account: both sources list them.
    let forbidden = rig
        .handle(&[
            "alert",
            &ro_alert.to_string(),
            "--source",
            "ro",
            "--ignore",
            "--yes",
        ])
        .await;
    assert_eq!(forbidden.code, Some(1), "{}", forbidden.stdout);
    let said = format!("{}{}", forbidden.stdout, forbidden.stderr);
    assert!(said.contains("Forbidden.RAM"), "{said}");
    assert!(said.contains("yundun-sas:HandleSecurityEvents"), "{said}");

    assert!(
        rig.calls("HandleSecurityEvents").is_empty(),
        "a refused request wrote nothing with the handling key"
    );
    assert_eq!(
        rig.sim.finding(SimDomain::Alert, a).unwrap()["EventStatus"],
        1,
        "nothing changed"
    );

    // Now ignore it, and ask again: an ignored alert allows no second ignore.
    let ok = rig.handle(&["alert", &a_s, "--ignore", "--yes"]).await;
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    let again = rig.handle(&["alert", &a_s, "--ignore", "--yes"]).await;
    assert_eq!(again.code, Some(1));
    assert!(again.stderr.contains("NotAllowed"), "{}", again.stderr);
    assert!(again.stderr.contains("undo"), "{}", again.stderr);

    // Every refusal that reached the daemon's act step is in the audit log with its code.
    let log = rig.handle(&["log", "--json"]).await;
    let entries: Vec<Value> = serde_json::from_str(&log.stdout).unwrap();
    let results: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["result"].as_str().unwrap(),
                e["error_code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        results.contains(&("refused", "Forbidden.RAM")),
        "{results:?}"
    );
    assert!(results.contains(&("success", "")), "{results:?}");
}

/// A quiet simulator, a hook, a daemon polling the source's `domains` every `poll`, and the
/// CLI's config naming the admin port it bound (with the directory holding both files).
async fn polling(
    domains: &str,
    poll: &str,
) -> (SimHandle, Hook, Daemon, String, tempfile::TempDir) {
    let sim = quiet_simulator().await;
    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, url, state) = (sim.endpoint(), hook.url(), dir.path().join("state"));
    let mut spec = ConfigSpec::new(&endpoint, &url, &state);
    spec.source_extra = domains;
    spec.poll = poll;
    let config = spec.write(&dir.path().join("sasrelay.toml"));
    let daemon = Daemon::spawn(&config);
    let bound = admin_addr(&daemon).await;
    let admin = format!("listen = \"{bound}\"");
    spec.admin = &admin;
    let cli = spec.write(&dir.path().join("cli.toml"));
    let cli = cli.to_str().unwrap().to_string();
    (sim, hook, daemon, cli, dir)
}

/// Vulnerabilities and baseline risks: verify, ignore (a reason required) and undo; each
/// action changes the simulator's record, the next sweep resolves it once naming who, and a
/// refused one (an ignore without a reason, an action the state does not allow) says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vulnerabilities_and_baseline_risks_are_handled_and_resolve_naming_who() {
    let (sim, hook, daemon, cli, _dir) = polling(
        "domains = [\"vulnerabilities\", \"baseline\"]",
        r#"{ vulnerabilities = "1s", baseline = "1s" }"#,
    )
    .await;
    daemon
        .wait_more_polls_of(&["vulnerabilities", "baseline"], 2, T)
        .await;
    let handle = |args: Vec<String>| {
        let cli = cli.clone();
        async move {
            let mut all = vec![
                "handle".to_string(),
                args[0].clone(),
                "--config".into(),
                cli,
            ];
            all.extend(args[1..].iter().cloned());
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            sasrelay(&refs, &[("USER", "bob")]).await
        }
    };
    let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<String>>();

    let new = |domain: SimDomain, key: &str| {
        sim.add_finding(domain, None, Value::Null).unwrap()[key]
            .as_i64()
            .unwrap()
    };
    let (v1, v2) = (
        new(SimDomain::Vuln, "PrimaryId"),
        new(SimDomain::Vuln, "PrimaryId"),
    );
    let (b1, b2) = (
        new(SimDomain::Baseline, "CheckWarningId"),
        new(SimDomain::Baseline, "CheckWarningId"),
    );
    for finding in [
        format!("vul:{v1}"),
        format!("vul:{v2}"),
        format!("baseline:{b1}"),
        format!("baseline:{b2}"),
    ] {
        hook.wait_for(&format!("new {finding}"), T, |r| {
            r.iter()
                .any(|r| r.delivered() && r.kind() == "new" && r.finding_id() == finding)
        })
        .await;
    }

    // What a pending vulnerability allows.
    let (_, codes) = allowed(handle(args(&format!("vuln vul:{v1} --json"))).await);
    let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
    assert!(
        codes.contains(&"verify") && codes.contains(&"ignore"),
        "{codes:?}"
    );

    // An ignore needs a reason (clap refuses it; the daemon would too).
    let no_reason = handle(args(&format!("vuln {v2} --ignore --yes"))).await;
    assert_eq!(no_reason.code, Some(2), "{}", no_reason.stderr);
    assert!(
        no_reason.stderr.contains("--reason"),
        "{}",
        no_reason.stderr
    );

    // Verify v1, ignore v2 with a reason, ignore the baseline check.
    let verify = handle(args(&format!("vuln {v1} --verify --yes"))).await;
    assert_eq!(verify.code, Some(0), "{}", verify.stderr);
    let mut ignore = args(&format!("vuln {v2} --ignore --yes --reason"));
    ignore.push("accepted risk: not reachable".into());
    let ignore = handle(ignore).await;
    assert_eq!(ignore.code, Some(0), "{}", ignore.stderr);
    let mut ignore_b = args(&format!("baseline baseline:{b1} --ignore --yes --reason"));
    ignore_b.push("managed by the platform team".into());
    let ignore_b = handle(ignore_b).await;
    assert_eq!(ignore_b.code, Some(0), "{}", ignore_b.stderr);
    // Re-check the other: its check item, on its own asset (from sasrelay's record).
    let recheck = handle(args(&format!("baseline baseline:{b2} --recheck --yes"))).await;
    assert_eq!(recheck.code, Some(0), "{}", recheck.stderr);
    let b2_record = sim.finding(SimDomain::Baseline, b2).unwrap();
    assert!(
        recheck.stderr.contains(&format!(
            "(CheckId {}) again, on asset {}",
            b2_record["CheckId"],
            b2_record["Uuid"].as_str().unwrap()
        )),
        "{}",
        recheck.stderr
    );

    // The simulator got the calls, with the record's own name, asset and tag.
    let calls: Vec<_> = sim
        .handling_calls()
        .into_iter()
        .filter(|c| {
            [
                "ModifyOperateVul",
                "IgnoreHcCheckWarnings",
                "ValidateHcWarnings",
            ]
            .contains(&c.action.as_str())
        })
        .collect();
    let ops: Vec<(&str, &str)> = calls
        .iter()
        .map(|c| {
            (
                c.action.as_str(),
                c.params
                    .get("OperateType")
                    .or(c.params.get("Type"))
                    .map(String::as_str)
                    .unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("ModifyOperateVul", "vul_verify"),
            ("ModifyOperateVul", "vul_ignore"),
            ("IgnoreHcCheckWarnings", "1"),
            ("ValidateHcWarnings", "")
        ]
    );
    assert_eq!(
        calls[3].params["CheckIds"],
        b2_record["CheckId"].to_string()
    );
    assert_eq!(
        calls[3].params["Uuids"],
        b2_record["Uuid"].as_str().unwrap()
    );
    assert_eq!(
        sim.finding(SimDomain::Baseline, b2).unwrap()["Status"],
        3,
        "the re-check passed it"
    );
    let record = sim.finding(SimDomain::Vuln, v1).unwrap();
    let info: Value = serde_json::from_str(&calls[0].params["Info"]).unwrap();
    assert_eq!(info[0]["name"], record["Name"]);
    assert_eq!(info[0]["uuid"], record["Uuid"]);
    assert_eq!(calls[1].params["Reason"], "accepted risk: not reachable");
    assert_eq!(calls[2].params["CheckWarningIds"], b1.to_string());

    // Each resolves once, naming who and how.
    for (finding, action, resolution) in [
        (format!("vul:{v1}"), "verify", "fixed"),
        (format!("vul:{v2}"), "ignore", "ignored"),
        // An ignored check leaves the failing list; nothing says why but the audit log.
        (format!("baseline:{b1}"), "ignore", "gone"),
        // A check that passes leaves the failing list too.
        (format!("baseline:{b2}"), "recheck", "gone"),
    ] {
        let is = |r: &Request| r.delivered() && r.kind() == "resolved" && r.finding_id() == finding;
        hook.wait_for(&format!("resolved {finding}"), T, |r| r.iter().any(is))
            .await;
        daemon
            .wait_more_polls_of(&["vulnerabilities", "baseline"], 2, T)
            .await;
        let copies: Vec<Value> = hook
            .delivered()
            .into_iter()
            .filter(|r| is(r))
            .map(|r| r.body)
            .collect();
        assert_eq!(copies.len(), 1, "{finding}: {copies:?}");
        assert_eq!(copies[0]["resolution"], resolution, "{}", copies[0]);
        assert_eq!(copies[0]["handled_by"]["who"], "bob", "{}", copies[0]);
        assert_eq!(copies[0]["handled_by"]["action"], action);
    }

    // An ignored vulnerability allows only the undo; a second ignore is refused.
    let mut again = args(&format!("vuln {v2} --ignore --yes --reason"));
    again.push("again".into());
    let again = handle(again).await;
    assert_eq!(again.code, Some(1), "{}", again.stdout);
    assert!(again.stderr.contains("NotAllowed"), "{}", again.stderr);
    let undo = handle(args(&format!("vuln {v2} --undo-ignore --yes"))).await;
    assert_eq!(undo.code, Some(0), "{}", undo.stderr);
    assert_eq!(sim.finding(SimDomain::Vuln, v2).unwrap()["Status"], 1);
    let undo_b = handle(args(&format!("baseline {b1} --undo-ignore --yes"))).await;
    assert_eq!(undo_b.code, Some(0), "{}", undo_b.stderr);
    assert_eq!(sim.finding(SimDomain::Baseline, b1).unwrap()["Status"], 1);
}

/// The rule a container-firewall alert fired: shown, switched off (the plan says what that
/// stops), refused a second time, switched on again; each call recorded by the simulator and
/// listed in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rule_a_firewall_alert_fired_is_switched_off_and_on() {
    let (sim, _hook, _daemon, cli, _dir) =
        polling("domains = [\"firewall\"]", r#"{ firewall = "1s" }"#).await;
    let record = sim
        .add_finding(SimDomain::Firewall, None, Value::Null)
        .unwrap();
    let id = record["Id"].as_i64().unwrap();
    let (cluster, rule) = (
        record["ClusterId"].as_str().unwrap().to_string(),
        record["RuleId"].as_i64().unwrap(),
    );
    assert_eq!(sim.firewall_rule(&cluster, rule).unwrap()["RuleSwitch"], 1);
    let handle = |extra: &[&str]| {
        let mut all = vec!["handle", "firewall", "--config", &cli, ""];
        let id = format!("firewall:{id}");
        all[4] = &id;
        all.extend_from_slice(extra);
        let all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
        async move {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            sasrelay(&refs, &[("USER", "carol")]).await
        }
    };

    let show = handle(&[]).await;
    assert_eq!(show.code, Some(0), "{}", show.stderr);
    assert!(
        show.stdout.contains("allows now: rule-off"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout
            .contains(&format!("(RuleId {rule}, cluster {cluster}) is on")),
        "{}",
        show.stdout
    );

    let off = handle(&["--rule-off", "--yes"]).await;
    assert_eq!(off.code, Some(0), "{}", off.stderr);
    assert!(
        off.stderr.contains("neither blocked nor alerted on"),
        "the plan says what switching it off stops: {}",
        off.stderr
    );
    assert_eq!(sim.firewall_rule(&cluster, rule).unwrap()["RuleSwitch"], 0);
    let calls: Vec<_> = sim
        .handling_calls()
        .into_iter()
        .filter(|c| c.action == "ModifyInterceptionRuleSwitch")
        .collect();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].params["RuleIds"], rule.to_string());
    assert_eq!(calls[0].params["RuleSwitch"], "0");
    assert_eq!(calls[0].params["ClusterId"], cluster);

    let again = handle(&["--rule-off", "--yes"]).await;
    assert_eq!(again.code, Some(1), "{}", again.stdout);
    assert!(again.stderr.contains("NotAllowed"), "{}", again.stderr);
    assert!(again.stderr.contains("already off"), "{}", again.stderr);

    let on = handle(&["--rule-on", "--yes"]).await;
    assert_eq!(on.code, Some(0), "{}", on.stderr);
    assert_eq!(sim.firewall_rule(&cluster, rule).unwrap()["RuleSwitch"], 1);

    let log = sasrelay(&["handle", "log", "--config", &cli, "--json"], &[]).await;
    let entries: Vec<Value> = serde_json::from_str(&log.stdout).unwrap();
    let rows: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["result"].as_str().unwrap(),
                e["who"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("rule-on", "success", "carol"),
            ("rule-off", "success", "carol")
        ]
    );
}
