//! Routing as an operator sees it: matcher tables (every operator, anchoring, multi-valued
//! and absent fields), route trees written in TOML (nesting, inheritance, `continue`, the
//! default route), config errors with their keys and spans, time intervals across midnight,
//! DST changes and month ends, `route test` explanations, and property tests of the matcher
//! syntax.

use std::time::Duration;

use jiff::Timestamp;
use proptest::prelude::*;
use sasrelay::event::{Event, EventKind};
use sasrelay::finding::*;
use sasrelay::routing::*;
use time::OffsetDateTime;

// ---------------------------------------------------------------------------------------------
// Helpers

fn subject(fields: &[(&str, &str)]) -> Subject {
    let mut s = Subject::empty();
    for (k, v) in fields {
        s.set(k, v).unwrap_or_else(|e| panic!("{k}: {e}"));
    }
    s
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

const SINKS: &[&str] = &["ops", "pager", "chat", "team-a", "email"];

fn compile(text: &str) -> Result<(Router, Vec<Issue>), Vec<Issue>> {
    let doc = parse_document(text).unwrap_or_else(|e| panic!("{e:?}"));
    Router::compile(&doc.config, SINKS, &doc.time_intervals)
}

fn router(text: &str) -> Router {
    match compile(text) {
        Ok((r, warnings)) => {
            assert!(warnings.is_empty(), "unexpected warnings: {warnings:#?}");
            r
        }
        Err(e) => panic!("{e:#?}"),
    }
}

fn errors(text: &str) -> Vec<Issue> {
    match compile(text) {
        Ok(_) => panic!("compiled"),
        Err(e) => e,
    }
}

/// The issue with that key; its span must cover `expect` in `text`.
fn issue_at<'a>(issues: &'a [Issue], key: &str, text: &str, expect: &str) -> &'a Issue {
    let i = issues
        .iter()
        .find(|i| i.key == key)
        .unwrap_or_else(|| panic!("no issue with key {key}: {issues:#?}"));
    let span = i.span.clone().unwrap_or_else(|| panic!("no span: {i:?}"));
    assert_eq!(&text[span], expect, "{i}");
    i
}

fn sinks(d: &Decision) -> Vec<(String, String)> {
    d.targets
        .iter()
        .map(|t| (t.route.clone(), t.sink.clone()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

const NOON: &str = "2026-05-06T12:00:00Z";

fn finding() -> Finding {
    Finding {
        domain: Domain::Alerts,
        id: "alert:1".into(),
        fingerprint: "fp".into(),
        severity: Severity::Critical,
        native_severity: "serious".into(),
        status: Status::Resolved,
        resolution: Some(Resolution::Handled),
        native_status: "4".into(),
        title: "Container escape".into(),
        description: String::new(),
        alert_type: "Container escape".into(),
        kubernetes: Kubernetes {
            cluster_id: Some("c-prod".into()),
            cluster_name: Some("prod-hz".into()),
            namespace: Some("team-a-web".into()),
            pod: Some("web-1".into()),
            container_id: Some("cid".into()),
            container_name: Some("nginx".into()),
            image: Some("nginx:1.27".into()),
            node: Some("node-1".into()),
            app: Some("web".into()),
        },
        host: Host {
            instance_id: Some("i-1".into()),
            instance_name: Some("worker-1".into()),
            public_ip: Some("47.1.1.1".into()),
            private_ip: Some("10.0.0.5".into()),
            uuid: None,
            region: None,
        },
        first_seen: None,
        last_seen: None,
        details: vec![Detail {
            name: "Command line".into(),
            value: "nsenter -t 1".into(),
        }],
        links: vec![],
        cves: vec!["CVE-2024-1086".into(), "CVE-2022-0492".into()],
        tactics: vec![Tactic {
            id: "TA0004".into(),
            name: "Privilege Escalation".into(),
        }],
        source: "prod".into(),
        region: "cn-hangzhou".into(),
        raw: serde_json::Value::Null.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Fields

#[test]
fn subject_from_event_reads_every_field() {
    let e = Event::about(
        EventKind::Resolved,
        finding(),
        0,
        "",
        Some(Resolution::Gone),
        OffsetDateTime::UNIX_EPOCH,
    );
    let s = Subject::from_event(&e);
    let get = |name: &str| s.value(&Field::parse(name).unwrap());
    for (field, want) in [
        ("domain", "alerts"),
        ("kind", "resolved"),
        ("severity", "critical"),
        ("source", "prod"),
        ("region", "cn-hangzhou"),
        ("cluster", "c-prod"),
        ("cluster_name", "prod-hz"),
        ("namespace", "team-a-web"),
        ("pod", "web-1"),
        ("container", "nginx"),
        ("image", "nginx:1.27"),
        ("node", "node-1"),
        ("app", "web"),
        ("alert_type", "Container escape"),
        ("title", "Container escape"),
        ("status", "resolved"),
        // The event's resolution wins over the finding's.
        ("resolution", "gone"),
        ("instance_id", "i-1"),
        ("host", "worker-1"),
        ("ip", "10.0.0.5, 47.1.1.1"),
        ("cve", "CVE-2024-1086, CVE-2022-0492"),
        ("tactic", "TA0004, Privilege Escalation"),
        ("fingerprint", "fp"),
        ("detail.Command line", "nsenter -t 1"),
        ("detail.Nope", ""),
    ] {
        assert_eq!(get(field), want, "{field}");
    }
    // Every table entry is covered above.
    assert_eq!(FIELDS.len(), 23);

    let summary = Event::summary(
        "prod",
        Domain::Baseline,
        3,
        "epoch",
        OffsetDateTime::UNIX_EPOCH,
    );
    let s = Subject::from_event(&summary);
    assert_eq!(s.value(&Field::parse("kind").unwrap()), "summary");
    assert_eq!(s.value(&Field::parse("severity").unwrap()), "");
    assert!(!"severity<=critical".parse::<Matcher>().unwrap().matches(&s));
    assert!(r#"severity="""#.parse::<Matcher>().unwrap().matches(&s));
}

// ---------------------------------------------------------------------------------------------
// Matchers

#[test]
fn every_operator_on_single_valued_and_absent_fields() {
    let prod = subject(&[("cluster", "prod")]);
    let prod2 = subject(&[("cluster", "prod-2")]);
    let none = Subject::empty();
    #[rustfmt::skip]
    let table: &[(&str, &Subject, bool)] = &[
        (r#"cluster="prod""#, &prod, true),
        (r#"cluster="prod""#, &prod2, false),
        (r#"cluster="prod""#, &none, false),
        ("cluster=prod", &prod, true),
        (r#"cluster="""#, &none, true),
        (r#"cluster="""#, &prod, false),
        (r#"cluster!="prod""#, &prod, false),
        (r#"cluster!="prod""#, &prod2, true),
        (r#"cluster!="prod""#, &none, true),
        (r#"cluster!="""#, &none, false),
        // Regexes are anchored at both ends, as in Alertmanager.
        (r#"cluster=~"prod""#, &prod, true),
        (r#"cluster=~"prod""#, &prod2, false),
        (r#"cluster=~"rod""#, &prod, false),
        (r#"cluster=~"prod.*""#, &prod2, true),
        (r#"cluster=~"prod|dev""#, &prod, true),
        (r#"cluster=~".*""#, &none, true),
        (r#"cluster=~".+""#, &none, false),
        (r#"cluster!~"prod""#, &prod, false),
        (r#"cluster!~"prod""#, &prod2, true),
        (r#"cluster!~"prod""#, &none, true),
        (r#"cluster!~".*""#, &none, false),
        (r#"cluster!~".+""#, &none, true),
    ];
    for (text, s, want) in table {
        let m: Matcher = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(m.matches(s), *want, "{text} on {s:?}");
    }
}

#[test]
fn severity_comparisons_follow_the_order() {
    let at = |sev: &str| subject(&[("severity", sev)]);
    #[rustfmt::skip]
    let table: &[(&str, &[&str])] = &[
        ("severity>=high", &["high", "critical"]),
        ("severity>medium", &["high", "critical"]),
        ("severity<=low", &["info", "low"]),
        ("severity<high", &["info", "low", "medium"]),
        ("severity>=info", &["info", "low", "medium", "high", "critical"]),
        ("severity>critical", &[]),
        (r#"severity="medium""#, &["medium"]),
        (r#"severity!="medium""#, &["info", "low", "high", "critical"]),
        (r#"severity=~"high|critical""#, &["high", "critical"]),
    ];
    for (text, holds_for) in table {
        let m: Matcher = text.parse().unwrap();
        for sev in Severity::ALL {
            let want = holds_for.contains(&sev.as_str());
            assert_eq!(m.matches(&at(sev.as_str())), want, "{text} on {sev:?}");
        }
        // No severity (a summary): comparisons never hold.
        if m.op().is_comparison() {
            assert!(!m.matches(&Subject::empty()), "{text} on no severity");
        }
    }
}

#[test]
fn multi_valued_fields() {
    let two = subject(&[("cve", "CVE-1"), ("cve", "CVE-2")]);
    let none = Subject::empty();
    let tactic = subject(&[("tactic", "TA0004"), ("tactic", "Privilege Escalation")]);
    let ips = subject(&[("ip", "10.0.0.5"), ("ip", "47.1.1.1")]);
    #[rustfmt::skip]
    let table: &[(&str, &Subject, bool)] = &[
        // = / =~ hold if any value matches.
        (r#"cve="CVE-1""#, &two, true),
        (r#"cve="CVE-2""#, &two, true),
        (r#"cve="CVE-3""#, &two, false),
        (r#"cve=~"CVE-2""#, &two, true),
        (r#"cve=~"CVE-.*""#, &two, true),
        // != / !~ hold if no value matches.
        (r#"cve!="CVE-1""#, &two, false),
        (r#"cve!="CVE-3""#, &two, true),
        (r#"cve!~"CVE-2""#, &two, false),
        (r#"cve!~"CVE-9.*""#, &two, true),
        // An empty list behaves as one empty value.
        (r#"cve="""#, &none, true),
        (r#"cve!="""#, &none, false),
        (r#"cve=~".*""#, &none, true),
        (r#"cve!="CVE-1""#, &none, true),
        (r#"cve="CVE-1""#, &none, false),
        // A tactic matches by id or by name.
        (r#"tactic="TA0004""#, &tactic, true),
        (r#"tactic="Privilege Escalation""#, &tactic, true),
        (r#"tactic="TA0040""#, &tactic, false),
        (r#"tactic!="Impact""#, &tactic, true),
        // ip is the private or the public address.
        (r#"ip="47.1.1.1""#, &ips, true),
        (r#"ip=~"10\.0\..*""#, &ips, true),
        (r#"ip!~"10\..*""#, &ips, false),
    ];
    for (text, s, want) in table {
        let m: Matcher = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(m.matches(s), *want, "{text} on {s:?}");
    }
}

#[test]
fn detail_fields_read_the_first_value_by_exact_name() {
    let mut s = Subject::empty();
    s.set("detail.Port", "22").unwrap();
    s.set("detail.Port", "23").unwrap();
    for (text, want) in [
        (r#"detail.Port="22""#, true),
        (r#"detail.Port="23""#, false),
        (r#"detail.port="22""#, false),
        (r#""detail.Command line"="""#, true),
    ] {
        let m: Matcher = text.parse().unwrap();
        assert_eq!(m.matches(&s), want, "{text}");
    }
}

#[test]
fn matcher_errors_are_precise() {
    let err = |s: &str| s.parse::<Matcher>().unwrap_err().message;
    let e = err(r#"clutser="c1""#);
    assert!(e.starts_with("unknown field `clutser`; known fields: domain, kind, severity, source, region, cluster,"), "{e}");
    assert!(e.ends_with(", tactic, fingerprint, detail.<name>"), "{e}");
    assert_eq!(
        err("cluster c1"),
        "expected an operator (=, !=, =~, !~, >=, >, <=, <) after `cluster`"
    );
    let e = err(r#"cluster=~"prod-(""#);
    assert!(e.starts_with("invalid regex `prod-(`: "), "{e}");
    assert!(!e.contains('\n'), "{e}");
    assert_eq!(
        err("namespace>=high"),
        "comparison `>=` works only on `severity`, not on `namespace`; use =, !=, =~ or !~"
    );
    assert_eq!(
        err("severity<urgent"),
        "unknown severity `urgent`; expected one of: info, low, medium, high, critical"
    );
    assert_eq!(
        err("kind=created"),
        "unknown kind `created`; expected one of: new, recurring, resolved, summary, reminder"
    );
}

// ---------------------------------------------------------------------------------------------
// Route trees

const TREE: &str = r#"
[routing]
default_sinks = ["ops"]
group_wait = "10s"

[[route]]
name = "page"
matchers = ['severity>=high', 'kind="new"']
sinks = ["pager"]
continue = true

[[route]]
name = "teams"
matchers = ['namespace=~"team-.*"']
sinks = ["chat"]
group_by = ["cluster", "namespace"]
repeat_interval = "4h"

  [[route.routes]]
  name = "team-a"
  matchers = ['namespace=~"team-a-.*"']
  sinks = ["team-a"]

  [[route.routes]]
  matchers = ['{namespace=~"team-b-.*", kind!="resolved"}']
  group_wait = "1m"
  repeat_interval = "off"

[[route]]
name = "vuln-digest"
matchers = ['domain="vulnerabilities"', 'severity="medium"']
sinks = ["email"]
group_by = ["..."]
group_interval = "1d"
max_group_size = 500
"#;

#[test]
fn nesting_inheritance_and_continue() {
    let r = router(TREE);
    let now = ts(NOON);

    // A new high alert in team-a: paged (continue), then the teams branch; team-a wins there.
    let s = subject(&[
        ("kind", "new"),
        ("domain", "alerts"),
        ("severity", "critical"),
        ("cluster", "c-prod"),
        ("namespace", "team-a-web"),
    ]);
    let d = r.decide(&s, now);
    assert_eq!(sinks(&d), pairs(&[("page", "pager"), ("team-a", "team-a")]));
    assert_eq!(d.routes, ["page", "team-a"]);
    assert!(!d.defaulted && !d.dropped);
    // page has no group_by: not grouped, even though group_wait is inherited.
    assert_eq!(d.targets[0].grouping, None);
    assert_eq!(d.targets[0].repeat_interval, None);
    // team-a inherits group_by and repeat_interval from teams, group_wait from [routing].
    let g = d.targets[1].grouping.as_ref().unwrap();
    assert_eq!(g.group_by, ["cluster", "namespace"]);
    assert_eq!(g.group_wait, Duration::from_secs(10));
    assert_eq!(g.group_interval, Duration::from_secs(300));
    assert_eq!(g.max_group_size, 100);
    assert_eq!(
        g.group_key
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        [("cluster", "c-prod"), ("namespace", "team-a-web")]
    );
    assert_eq!(
        d.targets[1].repeat_interval,
        Some(Duration::from_secs(4 * 3600))
    );

    // team-b: the unnamed child inherits sinks from teams, overrides group_wait, turns the
    // inherited repeat_interval off; its name is its path.
    let s = subject(&[("kind", "recurring"), ("namespace", "team-b-api")]);
    let d = r.decide(&s, now);
    assert_eq!(sinks(&d), pairs(&[("route[1].routes[1]", "chat")]));
    let g = d.targets[0].grouping.as_ref().unwrap();
    assert_eq!(g.group_wait, Duration::from_secs(60));
    assert_eq!(g.group_key["cluster"], "");
    assert_eq!(d.targets[0].repeat_interval, None);

    // team-b resolved: no child matches, so the parent is the match.
    let s = subject(&[("kind", "resolved"), ("namespace", "team-b-api")]);
    assert_eq!(sinks(&r.decide(&s, now)), pairs(&[("teams", "chat")]));

    // First match wins among siblings: a medium vulnerability in a team namespace goes to the
    // teams branch only, not to vuln-digest.
    let s = subject(&[
        ("domain", "vulnerabilities"),
        ("severity", "medium"),
        ("namespace", "team-c"),
    ]);
    assert_eq!(sinks(&r.decide(&s, now)), pairs(&[("teams", "chat")]));

    // `...` groups by every field that has a value.
    let s = subject(&[
        ("domain", "vulnerabilities"),
        ("severity", "medium"),
        ("cve", "CVE-1"),
        ("cve", "CVE-2"),
    ]);
    let d = r.decide(&s, now);
    assert_eq!(sinks(&d), pairs(&[("vuln-digest", "email")]));
    let g = d.targets[0].grouping.as_ref().unwrap();
    assert_eq!(g.group_by, ["..."]);
    assert_eq!(g.group_interval, Duration::from_secs(86_400));
    assert_eq!(g.max_group_size, 500);
    assert_eq!(g.group_key.len(), 3);
    assert_eq!(g.group_key["cve"], "CVE-1, CVE-2");

    // Nothing matches: the default route, which is not grouped (no group_by in [routing]).
    let s = subject(&[("domain", "baseline"), ("severity", "low")]);
    let d = r.decide(&s, now);
    assert_eq!(sinks(&d), pairs(&[("default", "ops")]));
    assert!(d.defaulted && !d.dropped);
    assert_eq!(d.targets[0].grouping, None);

    // A high alert elsewhere: paged, and since page continues and nothing else matches, the
    // match is page alone (the default is not used once a route matched).
    let s = subject(&[("kind", "new"), ("severity", "high")]);
    let d = r.decide(&s, now);
    assert_eq!(sinks(&d), pairs(&[("page", "pager")]));
    assert!(!d.defaulted);
}

#[test]
fn routing_settings_are_inherited_by_top_level_routes() {
    let r = router(
        r#"
[routing]
default = "all"
group_by = ["cluster"]
group_interval = "10m"
repeat_interval = "1h"

[[route]]
matchers = ['cluster="a"']
sinks = ["chat"]
"#,
    );
    let d = r.decide(&subject(&[("cluster", "a")]), ts(NOON));
    assert_eq!(sinks(&d), pairs(&[("route[0]", "chat")]));
    let g = d.targets[0].grouping.as_ref().unwrap();
    assert_eq!(g.group_by, ["cluster"]);
    assert_eq!(g.group_interval, Duration::from_secs(600));
    assert_eq!(
        d.targets[0].repeat_interval,
        Some(Duration::from_secs(3600))
    );
    // default = "all": every sink, with [routing]'s grouping.
    let d = r.decide(&subject(&[("cluster", "b")]), ts(NOON));
    assert_eq!(d.targets.len(), SINKS.len());
    assert!(d.defaulted);
    assert!(
        d.targets
            .iter()
            .all(|t| t.route == "default" && t.grouping.is_some())
    );
}

#[test]
fn the_default_route_can_drop() {
    let text = r#"
[routing]
default = "drop"

[[route]]
matchers = ['severity>=high']
sinks = ["pager"]

[[route]]
name = "mute-kube-system"
matchers = ['namespace="kube-system"']
sinks = []
"#;
    let r = router(text);
    let d = r.decide(&subject(&[("severity", "low")]), ts(NOON));
    assert!(d.dropped && d.defaulted, "{d:?}");
    assert!(d.targets.is_empty());
    let x = r.explain(&subject(&[("severity", "low")]), ts(NOON));
    assert_eq!(x.decision, d);
    assert_eq!(
        x.to_string(),
        "route[0]: failed: severity>=high (severity = low)\n\
         route[1] (mute-kube-system): failed: namespace=\"kube-system\" (namespace = (empty))\n\
         default: no route matched: dropped\n\
         → dropped (no sink)\n"
    );
    // `sinks = []` drops on purpose, without a warning, and the decision names the route.
    let d = r.decide(&subject(&[("namespace", "kube-system")]), ts(NOON));
    assert!(d.dropped && !d.defaulted);
    assert_eq!(d.routes, ["mute-kube-system"]);
}

#[test]
fn without_routing_config_every_event_goes_to_every_sink() {
    let doc = parse_document("[[source]]\nname = \"x\"\n").unwrap();
    let (r, warnings) = Router::compile(&doc.config, SINKS, &doc.time_intervals).unwrap();
    assert!(warnings.is_empty());
    let broadcast = Router::broadcast(SINKS);
    for s in [
        Subject::empty(),
        subject(&[("severity", "critical"), ("namespace", "kube-system")]),
    ] {
        let d = r.decide(&s, ts(NOON));
        assert_eq!(d, broadcast.decide(&s, ts(NOON)));
        let got: Vec<&str> = d.targets.iter().map(|t| t.sink.as_str()).collect();
        assert_eq!(got, SINKS);
        assert!(
            d.targets.iter().all(|t| t.grouping.is_none()
                && t.muted_by.is_none()
                && t.repeat_interval.is_none())
        );
        assert!(!d.dropped);
    }
}

#[test]
fn shadowed_and_sinkless_routes_are_warned_about() {
    let text = r#"
[routing]
default_sinks = ["ops"]

[[route]]
name = "everything"
sinks = ["chat"]

[[route]]
name = "never"
matchers = ['severity>=high']
sinks = ["pager"]

[[route]]
name = "teams"
matchers = ['namespace=~"team-.*"']
sinks = ["chat"]

  [[route.routes]]
  name = "all-teams"
  continue = true

  [[route.routes]]
  name = "catch"

  [[route.routes]]
  name = "shadowed-child"
  matchers = ['namespace="team-a"']
"#;
    let (_, warnings) = compile(text).unwrap();
    assert!(warnings.iter().all(|w| w.level == Level::Warning));
    let keys: Vec<&str> = warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(
        keys,
        ["route[1]", "route[2]", "route[2].routes[2]"],
        "{warnings:#?}"
    );
    let w = issue_at(&warnings, "route[1]", text, "\"never\"");
    assert_eq!(
        w.message,
        "never tried: route[0] (everything) before it has no matchers and no `continue`, so it takes every event"
    );
    // A continuing catch-all shadows nothing; `catch` shadows the next child.
    let w = issue_at(&warnings, "route[2].routes[2]", text, "\"shadowed-child\"");
    assert!(w.message.contains("route[2].routes[1] (catch)"), "{w}");

    let text = r#"
[[route]]
name = "no-sinks"
matchers = ['severity>=high']
"#;
    let (_, warnings) = compile(text).unwrap();
    let keys: Vec<&str> = warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(keys, ["route[0]", "routing"], "{warnings:#?}");
    let w = issue_at(&warnings, "route[0]", text, "\"no-sinks\"");
    assert!(w.message.starts_with("no sinks: "), "{w}");
    assert!(
        warnings[1].message.starts_with("no default route"),
        "{}",
        warnings[1]
    );
}

#[test]
fn config_errors_name_the_key_and_point_at_the_text() {
    let text = r#"
[routing]
default_sinks = ["ops", "opz"]

[[time_interval]]
name = "nights"
[[time_interval.intervals]]
times = [{ start_time = "22:00", end_time = "24:00" }]
location = "Europe/Berlim"

[[time_interval]]
name = "nights"
intervals = []

[[route]]
name = "a"
matchers = ['severity>=high', 'cluster=~"prod-("']
sinks = ["pager", "pagr"]
mute_time_intervals = ["nights", "weekend"]
group_wait = "soon"
max_group_size = 0

[[route]]
name = "b"
matchers = ['namespace="x"']
sinks = ["chat"]
repeat_interval = "0s"

  [[route.routes]]
  name = "a"
  matchers = ['clutser="c1"']
  group_by = ["cluster", "clutser"]
  active_time_intervals = ["business-hours"]
"#;
    let issues = errors(text);
    let e = issue_at(&issues, "routing.default_sinks[1]", text, "\"opz\"");
    assert_eq!(
        e.message,
        "unknown sink `opz`; configured sinks: ops, pager, chat, team-a, email"
    );
    let e = issue_at(&issues, "route[0].sinks[1]", text, "\"pagr\"");
    assert!(e.message.starts_with("unknown sink `pagr`"), "{e}");
    let e = issue_at(
        &issues,
        "route[0].matchers[1]",
        text,
        r#"'cluster=~"prod-("'"#,
    );
    assert!(e.message.starts_with("invalid regex `prod-(`"), "{e}");
    let e = issue_at(
        &issues,
        "route[0].mute_time_intervals[1]",
        text,
        "\"weekend\"",
    );
    assert_eq!(
        e.message,
        "unknown time interval `weekend`; defined: nights"
    );
    let e = issue_at(&issues, "route[0].group_wait", text, "\"soon\"");
    assert!(e.message.starts_with("invalid duration \"soon\""), "{e}");
    let e = issue_at(&issues, "route[0].max_group_size", text, "0");
    assert_eq!(e.message, "must be between 1 and 10000");
    let e = issue_at(&issues, "route[1].repeat_interval", text, "\"0s\"");
    assert_eq!(e.message, "must be above 0s, or \"off\"");
    let e = issue_at(&issues, "route[1].routes[0].name", text, "\"a\"");
    assert_eq!(
        e.message,
        "duplicate route name `a` (also used by route[0])"
    );
    let e = issue_at(
        &issues,
        "route[1].routes[0].matchers[0]",
        text,
        r#"'clutser="c1"'"#,
    );
    assert!(
        e.message
            .starts_with("unknown field `clutser`; known fields: "),
        "{e}"
    );
    let e = issue_at(
        &issues,
        "route[1].routes[0].group_by[1]",
        text,
        "\"clutser\"",
    );
    assert!(e.message.starts_with("unknown field `clutser`"), "{e}");
    issue_at(
        &issues,
        "route[1].routes[0].active_time_intervals[0]",
        text,
        "\"business-hours\"",
    );
    let e = issue_at(
        &issues,
        "time_interval[0].intervals[0].location",
        text,
        "\"Europe/Berlim\"",
    );
    assert!(
        e.message.starts_with("unknown time zone `Europe/Berlim`"),
        "{e}"
    );
    let e = issue_at(&issues, "time_interval[1].name", text, "\"nights\"");
    assert_eq!(e.message, "duplicate time interval name `nights`");
    assert!(issues.iter().filter(|i| i.is_error()).count() >= 13);
    for i in &issues {
        assert!(
            i.message.chars().next().is_some_and(|c| !c.is_uppercase())
                && !i.message.ends_with('.'),
            "{i}"
        );
    }
}

#[test]
fn unused_intervals_are_warned_about_and_missing_sinks_explained() {
    let text = r#"
[[time_interval]]
name = "weekend"
intervals = [{ weekdays = ["saturday:sunday"] }]

[routing]
default_sinks = ["ops"]
"#;
    let (_, warnings) = compile(text).unwrap();
    let w = issue_at(&warnings, "time_interval[0].name", text, "\"weekend\"");
    assert_eq!(
        w.message,
        "time interval `weekend` is not used by any route"
    );
    assert_eq!(w.level, Level::Warning);

    let doc =
        parse_document("[[route]]\nsinks = [\"ops\"]\nmute_time_intervals = [\"x\"]\n").unwrap();
    let issues = Router::compile(&doc.config, &[], &doc.time_intervals).unwrap_err();
    let msgs: Vec<&str> = issues.iter().map(|i| i.message.as_str()).collect();
    assert!(
        msgs.contains(&"unknown sink `ops`: no [[sink]] is configured"),
        "{msgs:?}"
    );
    assert!(
        msgs.contains(&"unknown time interval `x`: no [[time_interval]] is defined"),
        "{msgs:?}"
    );
}

#[test]
fn unknown_keys_and_bad_types_are_reported_by_the_document_parser() {
    let text = "[[route]]\nmatchers = ['severity>=high']\nsinkz = [\"x\"]\n\n[[route]]\ncontinue = \"yes\"\n\n[routing]\ndefault_sinks = \"ops\"\n";
    let issues = parse_document(text).unwrap_err();
    let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys.len(), 3, "{issues:#?}");
    assert!(keys.iter().any(|k| k.starts_with("route[0]")), "{keys:?}");
    assert!(keys.contains(&"route[1].continue"), "{keys:?}");
    assert!(keys.contains(&"routing.default_sinks"), "{keys:?}");
    assert!(
        issues.iter().any(|i| i.message.contains("sinkz")),
        "{issues:#?}"
    );
    assert!(parse_document("route = 1").is_err());
}

#[test]
fn interval_config_errors() {
    let text = r#"
[[time_interval]]
name = "bad"
[[time_interval.intervals]]
times = [{ start_time = "06:00", end_time = "02:00" }, { start_time = "24:00", end_time = "24:00" }, { start_time = "7:5", end_time = "25:00" }]
weekdays = ["friday:monday", "mon"]
days_of_month = [0, "-1:5", "10:2", 32]
months = ["march:january", "smarch", 13]
years = ["2027:2026", "twenty"]

[[route]]
matchers = ['severity>=high']
sinks = ["pager"]
mute_time_intervals = ["bad"]
"#;
    let issues = errors(text);
    let k = "time_interval[0].intervals[0]";
    for (key, span) in [
        ("times[0].end_time", "\"02:00\""),
        ("times[1].start_time", "\"24:00\""),
        ("times[2].start_time", "\"7:5\""),
        ("times[2].end_time", "\"25:00\""),
        ("weekdays[0]", "\"friday:monday\""),
        ("weekdays[1]", "\"mon\""),
        ("days_of_month[0]", "0"),
        ("days_of_month[1]", "\"-1:5\""),
        ("days_of_month[2]", "\"10:2\""),
        ("days_of_month[3]", "32"),
        ("months[0]", "\"march:january\""),
        ("months[1]", "\"smarch\""),
        ("months[2]", "13"),
        ("years[0]", "\"2027:2026\""),
        ("years[1]", "\"twenty\""),
    ] {
        issue_at(&issues, &format!("{k}.{key}"), text, span);
    }
    let e = issues
        .iter()
        .find(|i| i.key == format!("{k}.times[0].end_time"))
        .unwrap();
    assert!(e.message.contains("use two ranges"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Time intervals

fn muted(r: &Router, at: &str) -> Option<String> {
    let d = r.decide(&subject(&[("namespace", "kube-system")]), ts(at));
    assert_eq!(d.targets.len(), 1);
    d.targets[0].muted_by.clone()
}

#[test]
fn mute_windows_across_midnight() {
    let r = router(
        r#"
[[time_interval]]
name = "nights"
[[time_interval.intervals]]
times = [{ start_time = "22:00", end_time = "24:00" }]
[[time_interval.intervals]]
times = [{ start_time = "00:00", end_time = "06:00" }]

[routing]
default = "drop"

[[route]]
matchers = ['namespace="kube-system"']
sinks = ["chat"]
mute_time_intervals = ["nights"]
"#,
    );
    for (at, want) in [
        ("2026-05-06T21:59:59Z", false),
        ("2026-05-06T22:00:00Z", true),
        ("2026-05-06T23:59:59Z", true),
        ("2026-05-07T00:00:00Z", true),
        ("2026-05-07T05:59:59Z", true),
        ("2026-05-07T06:00:00Z", false),
        ("2026-05-07T12:00:00Z", false),
    ] {
        let got = muted(&r, at);
        assert_eq!(got.is_some(), want, "{at}");
        if want {
            assert_eq!(got.as_deref(), Some("nights"));
        }
    }
}

#[test]
fn active_time_intervals_mute_outside_them() {
    let r = router(
        r#"
[[time_interval]]
name = "business-hours"
[[time_interval.intervals]]
weekdays = ["monday:friday"]
times = [{ start_time = "09:00", end_time = "17:00" }]
location = "Asia/Shanghai"

[routing]
default = "drop"

[[route]]
matchers = ['namespace="kube-system"']
sinks = ["chat"]
active_time_intervals = ["business-hours"]
"#,
    );
    // 2026-05-06 is a Wednesday; Shanghai is UTC+8.
    assert_eq!(muted(&r, "2026-05-06T01:00:00Z"), None); // 09:00 local
    assert_eq!(muted(&r, "2026-05-06T08:59:00Z"), None); // 16:59 local
    assert_eq!(
        muted(&r, "2026-05-06T09:00:00Z").as_deref(), // 17:00 local
        Some("outside active_time_intervals: business-hours")
    );
    assert!(muted(&r, "2026-05-09T02:00:00Z").is_some()); // Saturday 10:00 local
}

fn interval(body: &str) -> TimeIntervals {
    let text = format!("[[time_interval]]\nname = \"w\"\n[[time_interval.intervals]]\n{body}\n");
    let doc = parse_document(&text).unwrap_or_else(|e| panic!("{e:?}"));
    let (t, issues) = TimeIntervals::compile(&doc.time_intervals);
    assert!(issues.is_empty(), "{issues:#?}");
    t
}

fn active_at(t: &TimeIntervals, table: &[(&str, bool)]) {
    for (at, want) in table {
        assert_eq!(t.is_active("w", ts(at)), *want, "{at}");
    }
}

#[test]
fn windows_keep_their_local_meaning_across_dst_in_new_york() {
    // Spring forward: 2026-03-08 02:00 EST becomes 03:00 EDT. A 01:00–03:00 window that night
    // lasts one real hour (02:00–03:00 does not exist).
    let t = interval(
        "times = [{ start_time = \"01:00\", end_time = \"03:00\" }]\nlocation = \"America/New_York\"",
    );
    active_at(
        &t,
        &[
            ("2026-03-08T05:59:59Z", false), // 00:59:59 EST
            ("2026-03-08T06:00:00Z", true),  // 01:00 EST
            ("2026-03-08T06:59:59Z", true),  // 01:59:59 EST
            ("2026-03-08T07:00:00Z", false), // 03:00 EDT
            // The next night the same window is 05:00–07:00 UTC.
            ("2026-03-09T05:00:00Z", true), // 01:00 EDT
            ("2026-03-09T06:59:59Z", true), // 02:59:59 EDT
            ("2026-03-09T07:00:00Z", false),
        ],
    );
    // Fall back: 2026-11-01 02:00 EDT becomes 01:00 EST; 01:00–02:00 happens twice, so the
    // window lasts two real hours.
    let t = interval(
        "times = [{ start_time = \"01:00\", end_time = \"02:00\" }]\nlocation = \"America/New_York\"",
    );
    active_at(
        &t,
        &[
            ("2026-11-01T04:59:59Z", false), // 00:59:59 EDT
            ("2026-11-01T05:00:00Z", true),  // 01:00 EDT
            ("2026-11-01T05:59:59Z", true),  // 01:59:59 EDT
            ("2026-11-01T06:00:00Z", true),  // 01:00 EST (again)
            ("2026-11-01T06:59:59Z", true),  // 01:59:59 EST
            ("2026-11-01T07:00:00Z", false), // 02:00 EST
        ],
    );
    // Business hours follow the wall clock: 09:00 local is 14:00 UTC before the change and
    // 13:00 UTC after it.
    let t = interval(
        "times = [{ start_time = \"09:00\", end_time = \"17:00\" }]\nweekdays = [\"monday:friday\"]\nlocation = \"America/New_York\"",
    );
    active_at(
        &t,
        &[
            ("2026-03-06T13:30:00Z", false), // Friday 08:30 EST
            ("2026-03-06T14:00:00Z", true),  // Friday 09:00 EST
            ("2026-03-09T13:00:00Z", true),  // Monday 09:00 EDT
            ("2026-03-09T12:59:59Z", false), // Monday 08:59:59 EDT
            ("2026-03-08T15:00:00Z", false), // Sunday
        ],
    );
}

#[test]
fn windows_keep_their_local_meaning_across_dst_in_berlin() {
    let t = interval(
        "times = [{ start_time = \"08:00\", end_time = \"09:00\" }]\nlocation = \"Europe/Berlin\"",
    );
    active_at(
        &t,
        &[
            // CET (+01:00) before 2026-03-29 …
            ("2026-03-28T07:00:00Z", true),
            ("2026-03-28T06:00:00Z", false),
            // … CEST (+02:00) after it …
            ("2026-03-30T06:00:00Z", true),
            ("2026-03-30T07:00:00Z", false),
            // … and CET again after 2026-10-25.
            ("2026-10-24T06:30:00Z", true),
            ("2026-10-26T06:30:00Z", false),
            ("2026-10-26T07:30:00Z", true),
        ],
    );
    // The UTC default ignores DST entirely.
    let utc = interval("times = [{ start_time = \"08:00\", end_time = \"09:00\" }]");
    active_at(
        &utc,
        &[
            ("2026-03-28T08:00:00Z", true),
            ("2026-03-30T08:00:00Z", true),
        ],
    );
}

#[test]
fn days_of_month_count_from_the_end_when_negative() {
    let last = interval("days_of_month = [-1]");
    active_at(
        &last,
        &[
            ("2026-01-31T12:00:00Z", true),
            ("2026-01-30T12:00:00Z", false),
            ("2026-02-28T12:00:00Z", true),
            ("2026-02-27T12:00:00Z", false),
            ("2028-02-29T12:00:00Z", true),
            ("2028-02-28T12:00:00Z", false),
            ("2026-04-30T12:00:00Z", true),
        ],
    );
    let last3 = interval("days_of_month = [\"-3:-1\"]");
    active_at(
        &last3,
        &[
            ("2026-02-25T23:59:59Z", false),
            ("2026-02-26T00:00:00Z", true),
            ("2026-02-28T23:59:59Z", true),
            ("2026-03-01T00:00:00Z", false),
            ("2026-03-29T00:00:00Z", true),
            ("2026-03-28T23:00:00Z", false),
        ],
    );
    // A mixed range covers from a day to the month's end; days past a short month's end are
    // clamped, and a range starting after it never matches.
    let mixed = interval("days_of_month = [\"25:-1\"]");
    active_at(
        &mixed,
        &[
            ("2026-02-28T00:00:00Z", true),
            ("2026-02-24T00:00:00Z", false),
        ],
    );
    let late = interval("days_of_month = [\"30:31\"]");
    active_at(
        &late,
        &[
            ("2026-02-28T00:00:00Z", false),
            ("2026-01-30T00:00:00Z", true),
            ("2026-04-30T00:00:00Z", true),
        ],
    );
    let first_week = interval("days_of_month = [\"1:7\", 15]");
    active_at(
        &first_week,
        &[
            ("2026-05-01T00:00:00Z", true),
            ("2026-05-07T23:59:59Z", true),
            ("2026-05-08T00:00:00Z", false),
            ("2026-05-15T10:00:00Z", true),
        ],
    );
}

#[test]
fn every_field_of_an_interval_must_match() {
    let t = interval(
        "weekdays = [\"saturday:sunday\"]\nmonths = [\"december\", \"1:2\"]\nyears = [\"2026:2027\"]\ntimes = [{ start_time = \"10:00\", end_time = \"12:00\" }]",
    );
    active_at(
        &t,
        &[
            ("2026-01-03T11:00:00Z", true),  // Saturday in January 2026
            ("2026-01-03T12:00:00Z", false), // end is exclusive
            ("2026-01-05T11:00:00Z", false), // Monday
            ("2026-03-07T11:00:00Z", false), // March
            ("2026-12-05T11:00:00Z", true),  // December
            ("2028-01-01T11:00:00Z", false), // Saturday, but 2028
        ],
    );
    // An interval with no fields always matches; a named interval with several matches when
    // any does.
    active_at(&interval(""), &[("2026-05-06T12:00:00Z", true)]);
}

// ---------------------------------------------------------------------------------------------
// route test

#[test]
fn explain_says_which_matcher_decided_with_what_value() {
    let r = router(TREE);
    let s = subject(&[
        ("kind", "new"),
        ("severity", "medium"),
        ("namespace", "team-a-web"),
        ("cluster", "c-prod"),
    ]);
    let x = r.explain(&s, ts(NOON));
    let lines: Vec<String> = x.trace.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "route[0] (page): failed: severity>=high (severity = medium)",
            r#"route[1] (teams): matched: namespace=~"team-.*" (namespace = team-a-web)"#,
            r#"  route[1].routes[0] (team-a): matched: namespace=~"team-a-.*" (namespace = team-a-web)"#,
            "  route[1].routes[1]: not tried: route[1].routes[0] (team-a) matched first and has no `continue`",
            "route[2] (vuln-digest): not tried: route[1] (teams) matched first and has no `continue`",
        ]
    );
    assert_eq!(x.decision, r.decide(&s, ts(NOON)));
    let text = x.to_string();
    assert!(
        text.ends_with(
            "→ team-a via team-a; grouped by cluster, namespace (cluster = c-prod, namespace = team-a-web), wait 10s, interval 5m, at most 100; repeat every 4h\n"
        ),
        "{text}"
    );

    // Multi-valued and absent values, and control characters escaped for terminals.
    let s = subject(&[
        ("kind", "new"),
        ("severity", "high"),
        ("namespace", "evil\u{1b}[2J"),
    ]);
    let x = r.explain(&s, ts(NOON));
    assert_eq!(
        x.trace[0].to_string(),
        r#"route[0] (page): matched: severity>=high (severity = high), kind="new" (kind = new)"#
    );
    assert_eq!(
        x.trace[1].to_string(),
        r#"route[1] (teams): failed: namespace=~"team-.*" (namespace = evil\u{1b}[2J)"#
    );
    let s = subject(&[("cve", "CVE-1"), ("cve", "CVE-2")]);
    let m: Matcher = r#"cve="CVE-3""#.parse().unwrap();
    assert_eq!(
        m.check(&s).to_string(),
        r#"cve="CVE-3" (cve = [CVE-1, CVE-2])"#
    );
}

// ---------------------------------------------------------------------------------------------
// Silences

#[test]
fn silences_match_events() {
    let e = Event::about(
        EventKind::New,
        finding(),
        0,
        "",
        None,
        OffsetDateTime::UNIX_EPOCH,
    );
    let s = Subject::from_event(&e);
    let silence = Silence::new(
        "s1",
        parse_matchers(r#"{cluster="c-prod", tactic="Privilege Escalation"}"#).unwrap(),
        ts("2026-05-06T00:00:00Z"),
        ts("2026-05-07T00:00:00Z"),
        "alice",
        "upgrade",
        ts("2026-05-05T00:00:00Z"),
    )
    .unwrap();
    assert!(silence.silences(&s, ts(NOON)));
    assert!(!silence.silences(&s, ts("2026-05-07T00:00:00Z")));
    let other = Subject::from_event(&Event {
        finding: Some(Finding {
            tactics: vec![],
            ..finding()
        }),
        ..e
    });
    assert!(!silence.matches(&other));
}

// ---------------------------------------------------------------------------------------------
// Properties of the matcher syntax

fn any_field() -> impl Strategy<Value = Field> {
    prop_oneof![
        3 => (0..FIELDS.len()).prop_map(Field::Known),
        1 => "[ -~\n\u{e9}]{1,12}".prop_map(Field::Detail),
    ]
}

fn any_op() -> impl Strategy<Value = Op> {
    proptest::sample::select(Op::ALL.to_vec())
}

fn any_matcher() -> impl Strategy<Value = Matcher> {
    (
        any_field(),
        any_op(),
        "[ -~\n\t\u{e9}\u{1F600}]{0,16}",
        proptest::sample::select(vec![
            ".*",
            "prod-.*",
            "a|b",
            "[0-9]+",
            r"\d{2}",
            "(?i)x",
            "",
            "team-(a|b)-.*",
        ]),
        0..5usize,
        any::<bool>(),
    )
        .prop_filter_map(
            "valid matcher",
            |(field, op, text, pattern, idx, literal)| {
                let closed = field.def().and_then(|d| d.values);
                let value = if op.is_comparison() {
                    Severity::ALL[idx].as_str().to_string()
                } else if matches!(op, Op::Regex | Op::NotRegex) {
                    if literal {
                        regex::escape(&text)
                    } else {
                        pattern.to_string()
                    }
                } else if let Some(values) = closed {
                    values.get(idx).copied().unwrap_or("").to_string()
                } else {
                    text
                };
                let field = if op.is_comparison() {
                    Field::parse("severity").ok()?
                } else {
                    field
                };
                Matcher::new(field, op, value).ok()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn display_then_parse_is_the_identity(m in any_matcher()) {
        let text = m.to_string();
        let back: Matcher = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.to_string(), text);
    }

    #[test]
    fn brace_lists_round_trip(list in proptest::collection::vec(any_matcher(), 0..5)) {
        let text = format!(
            "{{{}}}",
            list.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        );
        let back = parse_matchers(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(back, list);
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in "\\PC{0,40}") {
        if let Ok(list) = parse_matchers(&text) {
            for m in list {
                let again: Matcher = m.to_string().parse().map_err(|e| TestCaseError::fail(format!("{m}: {e}")))?;
                prop_assert_eq!(again, m);
            }
        }
    }

    #[test]
    fn parsing_near_misses_never_panics(text in r#"[{} ,"\\a-z_.=!~<>*()|\n]{0,30}"#) {
        match parse_matchers(&text) {
            Ok(list) => {
                for m in list {
                    let again: Matcher = m.to_string().parse().map_err(|e| TestCaseError::fail(format!("{m}: {e}")))?;
                    prop_assert_eq!(again, m);
                }
            }
            Err(e) => {
                prop_assert!(e.offset <= text.len());
                prop_assert!(!e.message.is_empty());
            }
        }
    }

    #[test]
    fn parsing_known_fields_with_junk_never_panics(
        field in proptest::sample::select(FIELDS.iter().map(|f| f.name).collect::<Vec<_>>()),
        op in proptest::sample::select(vec!["=", "!=", "=~", "!~", ">=", ">", "<=", "<", "==", "~", ""]),
        value in r#"[ -~]{0,12}"#,
    ) {
        let _ = parse_matchers(&format!("{field}{op}{value}"));
        let _ = parse_matchers(&format!("{{{field} {op} \"{value}\"}}"));
    }
}
