//! Normalisation of every record of every shared sample, with the values a reader of the
//! console would expect, plus decoding variants the real service sends and fingerprint
//! stability and distinctness across all four domains.

use std::collections::HashSet;

use sasrelay::finding::*;
use sasrelay::sas::models::*;
use sasrelay::sas::normalise::*;
use serde_json::{Value, json};

fn sample(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/samples")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn ctx() -> NormaliseContext {
    let mut c = NormaliseContext::new("prod-hz", "cn-hangzhou");
    c.cluster_id = Some("c1234567890abcdef".into());
    c.cluster_names
        .insert("c1234567890abcdef".into(), "prod-ack-hangzhou".into());
    c
}

const CLUSTER: &str = "c1234567890abcdef";
const CLUSTER_LINK: &str =
    "https://cs.console.aliyun.com/#/k8s/cluster/c1234567890abcdef/v2/info/overview";
const CONSOLE: &str = "https://yundun.console.aliyun.com/?p=sas";

fn alerts() -> Vec<Item<SuspEvent>> {
    serde_json::from_value::<SuspEventsResponse>(sample("DescribeSuspEvents"))
        .unwrap()
        .items
}

fn vulns() -> Vec<Item<VulRecord>> {
    serde_json::from_value::<VulListResponse>(sample("DescribeVulList"))
        .unwrap()
        .items
}

fn firewall() -> Vec<Item<InterceptionHistory>> {
    serde_json::from_value::<InterceptionHistoryResponse>(sample("ListInterceptionHistory"))
        .unwrap()
        .items
}

/// A `DescribeCheckWarningDetail` body shaped as docs/sas-api.md §3.4 describes it.
fn detail_body(check_id: i64) -> Value {
    let (item, level, kind, description, advice) = match check_id {
        3201 => (
            "Ensure that the kubelet --anonymous-auth argument is set to false",
            "high",
            "hc.check.type.access_control",
            "Anonymous requests to the kubelet API are served with the system:anonymous identity.",
            "Set authentication.anonymous.enabled: false in /var/lib/kubelet/config.yaml and restart kubelet.",
        ),
        3207 => (
            "Ensure that the --protect-kernel-defaults argument is set to true",
            "medium",
            "hc.check.type.service_conf",
            "Kubelet may override kernel parameters it needs.",
            "Set protectKernelDefaults: true in the kubelet configuration.",
        ),
        _ => (
            "Ensure that the kubelet configuration file permissions are set to 644 or more restrictive",
            "low",
            "hc.check.type.file_rights",
            "A writable kubelet configuration lets local users change node security settings.",
            "Run chmod 644 /var/lib/kubelet/config.yaml.",
        ),
    };
    json!({
        "RequestId": format!("7E0618A9-D5EF-4220-9471-C42B5E92{check_id:04}"),
        "CheckId": check_id,
        "Item": item,
        "Level": level,
        "Type": kind,
        "Description": description,
        "Advice": advice,
        "Prompt": "",
        "CheckDetailColumns": [
            {"Key": "path", "ShowName": "Config file", "Type": "text", "Grids": []},
            {"Key": "values", "ShowName": "Current values", "Type": "grid",
             "Grids": [{"Key": "name", "ShowName": "Name", "Type": "text"},
                       {"Key": "value", "ShowName": "Value", "Type": "text"}]}
        ],
        "CheckDetailAssetInfo": [{"path": "/var/lib/kubelet/config.yaml", "name": "x", "value": "y"}]
    })
}

/// The first risk × its first machine × every check item of the samples, with details.
fn baseline() -> Vec<BaselineItem> {
    let risks = serde_json::from_value::<CheckWarningSummaryResponse>(sample(
        "DescribeCheckWarningSummary",
    ))
    .unwrap()
    .items;
    let machines =
        serde_json::from_value::<WarningMachinesResponse>(sample("DescribeWarningMachines"))
            .unwrap()
            .items;
    let checks = serde_json::from_value::<CheckWarningsResponse>(sample("DescribeCheckWarnings"))
        .unwrap()
        .items;
    checks
        .into_iter()
        .map(|check| BaselineItem {
            risk: risks[0].clone(),
            machine: machines[0].clone(),
            detail: Some(serde_json::from_value(detail_body(check.check_id.unwrap())).unwrap()),
            check,
        })
        .collect()
}

fn all_findings() -> Vec<Finding> {
    let c = ctx();
    let mut out: Vec<Finding> = alerts()
        .into_iter()
        .map(|i| normalise_alert(&c, i))
        .collect();
    out.extend(vulns().into_iter().map(|i| normalise_vulnerability(&c, i)));
    out.extend(baseline().into_iter().map(|i| normalise_baseline(&c, i)));
    out.extend(firewall().into_iter().map(|i| normalise_firewall(&c, i)));
    out
}

fn t(s: &str) -> Option<String> {
    Some(s.to_string())
}

fn rfc(f: &Option<time::OffsetDateTime>) -> String {
    f.map(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    })
    .unwrap_or_default()
}

fn detail<'a>(f: &'a Finding, name: &str) -> Vec<&'a str> {
    f.details
        .iter()
        .filter(|d| d.name == name)
        .map(|d| d.value.as_str())
        .collect()
}

fn urls(f: &Finding, kind: LinkKind) -> Vec<&str> {
    f.links
        .iter()
        .filter(|l| l.kind == kind)
        .map(|l| l.url.as_str())
        .collect()
}

/// Expected values shared by all domains.
struct Expect {
    id: &'static str,
    severity: Severity,
    native_severity: &'static str,
    status: Status,
    resolution: Option<Resolution>,
    title: &'static str,
    namespace: Option<&'static str>,
    pod: Option<&'static str>,
    image: Option<&'static str>,
    first_seen: &'static str,
    last_seen: &'static str,
}

fn check(f: &Finding, e: &Expect, domain: Domain) {
    let id = e.id;
    assert_eq!(f.domain, domain, "{id}");
    assert_eq!(f.id, e.id);
    assert_eq!(f.severity, e.severity, "{id}");
    assert_eq!(f.native_severity, e.native_severity, "{id}");
    assert_eq!(f.status, e.status, "{id}");
    assert_eq!(f.resolution, e.resolution, "{id}");
    assert_eq!(f.title, e.title, "{id}");
    assert_eq!(f.kubernetes.cluster_id.as_deref(), Some(CLUSTER), "{id}");
    assert_eq!(
        f.kubernetes.cluster_name.as_deref(),
        Some("prod-ack-hangzhou"),
        "{id}"
    );
    assert_eq!(f.kubernetes.namespace.as_deref(), e.namespace, "{id}");
    assert_eq!(f.kubernetes.pod.as_deref(), e.pod, "{id}");
    assert_eq!(f.kubernetes.image.as_deref(), e.image, "{id}");
    assert_eq!(rfc(&f.first_seen), e.first_seen, "{id}");
    assert_eq!(rfc(&f.last_seen), e.last_seen, "{id}");
    assert_eq!(f.source, "prod-hz");
    assert_eq!(f.region, "cn-hangzhou");
    assert_eq!(urls(f, LinkKind::Cluster), vec![CLUSTER_LINK], "{id}");
    assert_eq!(urls(f, LinkKind::Console), vec![CONSOLE], "{id}");
    assert_eq!(f.fingerprint.len(), 64);
}

#[test]
fn alerts_normalise() {
    use Resolution::*;
    use Severity::*;
    use Status::*;
    let c = ctx();
    let items = alerts();
    let table = [
        Expect {
            id: "alert:752312",
            severity: Critical,
            native_severity: "serious",
            status: Active,
            resolution: None,
            title: "Mining program",
            namespace: Some("payments"),
            pod: Some("checkout-7d9f8b6c5d-x2lqk"),
            image: Some("registry.cn-hangzhou.aliyuncs.com/acme/checkout:1.14.2"),
            first_seen: "2024-05-20T00:10:02Z",
            last_seen: "2024-05-20T00:12:44Z",
        },
        Expect {
            id: "alert:752340",
            severity: Critical,
            native_severity: "serious",
            status: Active,
            resolution: None,
            title: "Container escape via privileged container",
            namespace: Some("kube-system"),
            pod: Some("log-agent-ds-5m8kq"),
            image: Some("docker.io/library/busybox:1.36"),
            first_seen: "2024-05-19T23:58:30Z",
            last_seen: "2024-05-19T23:58:31Z",
        },
        Expect {
            id: "alert:751998",
            severity: High,
            native_severity: "suspicious",
            status: Resolved,
            resolution: Some(Ignored),
            title: "Interactive shell in container",
            namespace: Some("orders"),
            pod: Some("orders-api-6c5b9d7f48-qz7tn"),
            image: Some("acme-registry.cn-hangzhou.cr.aliyuncs.com/orders/orders-api:2.3.0"),
            first_seen: "2024-05-19T13:40:55Z",
            last_seen: "2024-05-19T13:47:10Z",
        },
        Expect {
            id: "alert:751420",
            severity: Medium,
            native_severity: "remind",
            status: Resolved,
            resolution: Some(Handled),
            title: "Malicious image started",
            namespace: Some("default"),
            pod: Some("crypto-test-0"),
            image: Some("docker.io/kdevtmpfsi/miner:latest"),
            // This sample's strings equal its epoch fields in UTC, unlike the others (+08:00):
            // the epoch fields win.
            first_seen: "2024-05-18T09:31:27Z",
            last_seen: "2024-05-18T09:31:27Z",
        },
    ];
    assert_eq!(items.len(), table.len());
    for (item, e) in items.iter().zip(&table) {
        let f = normalise_alert(&c, item.clone());
        check(&f, e, Domain::Alerts);
        assert_eq!(f.raw, item.raw);
        assert!(f.cves.is_empty());
        assert_eq!(
            f.fingerprint,
            fingerprint("prod-hz", Domain::Alerts, &["id", &e.id[6..]])
        );
    }

    let f = normalise_alert(&c, items[0].clone());
    assert_eq!(
        f.description,
        "A mining program was detected running inside a container."
    );
    assert_eq!(f.alert_type, "Malicious process (cloud scan)");
    assert_eq!(f.native_status, "1");
    assert_eq!(
        f.kubernetes.node.as_deref(),
        Some("cn-hangzhou.192.168.3.21")
    );
    assert_eq!(f.kubernetes.app.as_deref(), Some("checkout"));
    assert_eq!(
        f.kubernetes.container_id.as_deref(),
        Some("3f5e9a1c7b2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f")
    );
    assert_eq!(
        f.host,
        Host {
            instance_id: t("i-bp1f8x2k7q3w9e4r5t6y"),
            instance_name: t("worker-k8s-for-cs-c1234567890abcdef-1"),
            public_ip: None,
            private_ip: t("192.168.3.21"),
            uuid: t("5f1c8b2e-0d4a-4b7e-9c3f-2a6d8e1b7c90"),
            region: None,
        }
    );
    let pairs: Vec<(&str, &str)> = f
        .details
        .iter()
        .map(|d| (d.name.as_str(), d.value.as_str()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("Event time", "2024-05-20T00:12:44Z"),
            (
                "Affected asset",
                "worker-k8s-for-cs-c1234567890abcdef-1 (192.168.3.21)"
            ),
            ("Process path", "/tmp/.x/xmrig"),
            (
                "Command line",
                "/tmp/.x/xmrig -o pool.minexmr.com:443 -u 4A1b... --tls"
            ),
            ("Process ID", "28711"),
            ("File MD5", "e2c4a6b8d0f2a4c6e8b0d2f4a6c8e0b2"),
        ]
    );
    assert_eq!(
        urls(&f, LinkKind::Report),
        vec!["https://sas-report.oss-cn-shanghai.aliyuncs.com/deep/752312.pdf"]
    );
    assert_eq!(
        f.tactics,
        vec![Tactic {
            id: "TA0040".into(),
            name: "Impact".into()
        }]
    );
    // The persisted dedup key: changing it re-notifies every open alert.
    assert_eq!(
        f.fingerprint,
        "c944bd533e90bba5de50831a6b872a9da03580abb6a81fef34fe848093b82a3c"
    );

    let escape = normalise_alert(&c, items[1].clone());
    assert_eq!(detail(&escape, "Process ID"), vec!["9123"]);
    assert_eq!(escape.tactics[0].name, "Privilege Escalation");
    assert!(
        urls(&escape, LinkKind::Report).is_empty(),
        "empty report URL"
    );

    // A report URL to any other host than Alibaba Cloud's is text, never a link or button.
    let mut phished = items[0].clone();
    phished.typed.deep_analyze_report_url = "https://evil.example/sas-login".into();
    let phished = normalise_alert(&c, phished);
    assert!(urls(&phished, LinkKind::Report).is_empty());
    assert!(phished.links.iter().all(|l| !l.url.contains("evil")));
    assert_eq!(
        detail(
            &phished,
            "Deep analysis report (not an Alibaba Cloud address)"
        ),
        vec!["https://evil.example/sas-login"]
    );

    let malicious = normalise_alert(&c, items[3].clone());
    assert_eq!(malicious.host.public_ip.as_deref(), Some("47.98.123.45"));
    assert_eq!(
        detail(&malicious, "Affected asset"),
        vec!["worker-k8s-for-cs-c1234567890abcdef-3 (192.168.4.17, 47.98.123.45)"]
    );
}

#[test]
fn vulnerabilities_normalise() {
    use Resolution::*;
    use Severity::*;
    use Status::*;
    let c = ctx();
    let items = vulns();
    let table = [
        Expect {
            id: "vul:1040311702",
            severity: High,
            native_severity: "asap",
            status: Active,
            resolution: None,
            title: "ALINUX3-SA-2024:0057: Important: kernel security update",
            namespace: None,
            pod: None,
            image: None,
            first_seen: "2024-05-16T00:00:00Z",
            last_seen: "2024-05-20T00:00:00Z",
        },
        Expect {
            id: "vul:1040311955",
            severity: Medium,
            native_severity: "later",
            status: Resolved,
            resolution: Some(Fixed),
            title: "ALINUX3-SA-2024:0102: Moderate: openssl security update",
            namespace: None,
            pod: None,
            image: None,
            first_seen: "2024-05-06T00:00:00Z",
            last_seen: "2024-05-19T00:00:00Z",
        },
        Expect {
            id: "vul:1040312410",
            severity: High,
            native_severity: "asap",
            status: Active,
            resolution: None,
            title: "Spring Framework remote code execution (Spring4Shell)",
            namespace: Some("payments"),
            pod: Some("checkout-7d9f8b6c5d-x2lqk"),
            image: Some("registry.cn-hangzhou.aliyuncs.com/acme/checkout:1.14.2"),
            first_seen: "2024-05-19T00:00:00Z",
            last_seen: "2024-05-20T00:00:00Z",
        },
    ];
    assert_eq!(items.len(), table.len());
    for (item, e) in items.iter().zip(&table) {
        let f = normalise_vulnerability(&c, item.clone());
        check(&f, e, Domain::Vulnerabilities);
        assert_eq!(f.raw, item.raw);
        for cve in &f.cves {
            assert!(
                urls(&f, LinkKind::Cve)
                    .contains(&format!("https://avd.aliyun.com/search?q={cve}").as_str()),
                "{cve}"
            );
        }
    }

    let kernel = normalise_vulnerability(&c, items[0].clone());
    assert_eq!(kernel.cves, vec!["CVE-2024-1086", "CVE-2023-6817"]);
    assert_eq!(
        urls(&kernel, LinkKind::Cve),
        vec![
            "https://avd.aliyun.com/search?q=CVE-2024-1086",
            "https://avd.aliyun.com/search?q=CVE-2023-6817"
        ]
    );
    assert_eq!(
        urls(&kernel, LinkKind::Asset),
        vec![
            "https://yundun.console.aliyun.com/?p=sas#/assetsDetail/5f1c8b2e-0d4a-4b7e-9c3f-2a6d8e1b7c90-IP-192.168.3.21/vul/0/cn-hangzhou"
        ]
    );
    assert_eq!(
        kernel.description,
        "Use-after-free in netfilter nf_tables allows local privilege escalation."
    );
    assert_eq!(kernel.alert_type, "Linux software vulnerability");
    assert_eq!(
        detail(&kernel, "CVEs"),
        vec!["CVE-2024-1086, CVE-2023-6817"]
    );
    assert_eq!(detail(&kernel, "Package"), vec!["kernel"]);
    assert_eq!(detail(&kernel, "Version"), vec!["5.10.134-16.1.al8"]);
    assert_eq!(detail(&kernel, "Fix command"), vec!["yum update kernel"]);
    assert_eq!(
        detail(&kernel, "Rule"),
        vec!["alinux3:3:ALINUX3-SA-2024:0057"]
    );
    assert!(
        detail(&kernel, "Path").is_empty(),
        "empty path is not shown"
    );
    assert_eq!(kernel.host.region.as_deref(), Some("cn-hangzhou"));
    assert_eq!(
        kernel.kubernetes.node.as_deref(),
        Some("cn-hangzhou.192.168.3.21")
    );

    let fixed = normalise_vulnerability(&c, items[1].clone());
    assert_eq!(fixed.native_status, "7");
    assert_eq!(
        detail(&fixed, "Fix command"),
        vec!["yum update openssl-libs"]
    );

    let spring = normalise_vulnerability(&c, items[2].clone());
    assert_eq!(spring.cves, vec!["CVE-2022-22965"]);
    assert_eq!(
        spring.kubernetes.container_name.as_deref(),
        Some("checkout")
    );
    assert_eq!(
        spring.kubernetes.container_id.as_deref(),
        Some("3f5e9a1c7b2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f")
    );
    assert_eq!(
        detail(&spring, "Path"),
        vec!["/app/lib/spring-beans-5.3.17.jar"]
    );
    assert_eq!(detail(&spring, "Version"), vec!["5.3.17"]);
    assert_eq!(
        detail(&spring, "Fix command"),
        vec!["Upgrade org.springframework:spring-beans to 5.3.18 or later"]
    );
    assert_eq!(detail(&spring, "Priority score"), vec!["14.1"]);
}

#[test]
fn baseline_normalises() {
    use Resolution::*;
    use Severity::*;
    use Status::*;
    let c = ctx();
    let items = baseline();
    let base = Expect {
        id: "",
        severity: Info,
        native_severity: "",
        status: Active,
        resolution: None,
        title: "",
        namespace: None,
        pod: None,
        image: None,
        first_seen: "",
        // LastFoundTime "2024-05-20 03:12:08" at UTC+8.
        last_seen: "2024-05-19T19:12:08Z",
    };
    let table = [
        Expect {
            id: "baseline:81934412",
            severity: High,
            native_severity: "high",
            title: "Ensure that the kubelet --anonymous-auth argument is set to false",
            ..base
        },
        Expect {
            id: "baseline:81934415",
            severity: Medium,
            native_severity: "medium",
            status: Resolved,
            resolution: Some(Ignored),
            title: "Ensure that the --protect-kernel-defaults argument is set to true",
            ..base
        },
        Expect {
            id: "baseline:81934420",
            severity: Low,
            native_severity: "low",
            title: "Ensure that the kubelet configuration file permissions are set to 644 or more restrictive",
            ..base
        },
    ];
    assert_eq!(items.len(), table.len());
    for (item, e) in items.iter().zip(&table) {
        let f = normalise_baseline(&c, item.clone());
        check(&f, e, Domain::Baseline);
        assert_eq!(f.raw["check"], item.check.raw);
        assert_eq!(f.raw["machine"], item.machine.raw);
        assert_eq!(f.raw["risk"], item.risk.raw);
        assert_eq!(f.raw["detail"], item.detail.as_ref().unwrap().raw);
        assert_eq!(f.alert_type, "Container security / Kubernetes");
        assert_eq!(
            f.host.instance_id.as_deref(),
            Some("i-bp1f8x2k7q3w9e4r5t6y")
        );
        assert_eq!(
            f.host.uuid.as_deref(),
            Some("5f1c8b2e-0d4a-4b7e-9c3f-2a6d8e1b7c90")
        );
        assert_eq!(
            detail(&f, "Risk"),
            vec!["Kubernetes (ACK) node security baseline (CIS)"]
        );
        assert_eq!(detail(&f, "Check item"), vec![e.title]);
    }

    let anon = normalise_baseline(&c, items[0].clone());
    assert_eq!(
        anon.description,
        "Anonymous requests to the kubelet API are served with the system:anonymous identity."
    );
    let pairs: Vec<(&str, &str)> = anon
        .details
        .iter()
        .map(|d| (d.name.as_str(), d.value.as_str()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            (
                "Check item",
                "Ensure that the kubelet --anonymous-auth argument is set to false"
            ),
            ("Check type", "Access control"),
            ("Risk", "Kubernetes (ACK) node security baseline (CIS)"),
            ("Risk category", "Container security / Kubernetes"),
            (
                "Affected asset",
                "worker-k8s-for-cs-c1234567890abcdef-1 (192.168.3.21)"
            ),
            (
                "Advice",
                "Set authentication.anonymous.enabled: false in /var/lib/kubelet/config.yaml and restart kubelet."
            ),
        ]
    );
    let ignored = normalise_baseline(&c, items[1].clone());
    assert_eq!(
        detail(&ignored, "Reason"),
        vec!["accepted risk: legacy workload"]
    );
    assert_eq!(ignored.native_status, "6");
    let verifying = normalise_baseline(&c, items[2].clone());
    assert_eq!(verifying.native_status, "2");
    assert_eq!(detail(&verifying, "Check type"), vec!["File rights"]);

    // Without a detail the finding still carries the check, just no description or advice.
    let mut bare = items[0].clone();
    bare.detail = None;
    let f = normalise_baseline(&c, bare.clone());
    assert_eq!(f.id, "baseline:81934412");
    assert_eq!(f.fingerprint, anon.fingerprint);
    assert!(f.description.is_empty());
    assert!(detail(&f, "Advice").is_empty());
    assert_eq!(f.raw["detail"], Value::Null);
}

#[test]
fn baseline_without_check_warning_id_uses_the_natural_key() {
    let c = ctx();
    let machines =
        serde_json::from_value::<WarningMachinesResponse>(sample("DescribeWarningMachines"))
            .unwrap()
            .items;
    let mut item = baseline().remove(0);
    item.machine = machines[2].clone();
    item.check = serde_json::from_value(json!({
        "CheckId": 3301, "Item": "Redis requires a password", "Level": "high", "Status": 1,
        "Uuid": "0e7b4c2a-9d1f-4a6e-8b3c-5f2d7a1e9c48"
    }))
    .unwrap();
    let f = normalise_baseline(&c, item.clone());
    assert_eq!(
        f.id,
        "baseline:0e7b4c2a-9d1f-4a6e-8b3c-5f2d7a1e9c48/3301/redis-cache-0"
    );
    assert_eq!(
        f.fingerprint,
        fingerprint(
            "prod-hz",
            Domain::Baseline,
            &[
                "natural",
                "0e7b4c2a-9d1f-4a6e-8b3c-5f2d7a1e9c48",
                "3301",
                "redis-cache-0"
            ]
        )
    );
    assert_eq!(
        f.kubernetes.container_name.as_deref(),
        Some("redis-cache-0")
    );
    assert_eq!(detail(&f, "Container"), vec!["redis-cache-0"]);
    assert_eq!(f.host.public_ip.as_deref(), Some("47.98.123.45"));
}

#[test]
fn firewall_normalises() {
    use Resolution::*;
    use Severity::*;
    use Status::*;
    let c = ctx();
    let items = firewall();
    let table = [
        Expect {
            id: "firewall:45012",
            severity: High,
            native_severity: "3",
            status: Active,
            resolution: None,
            title: "Abnormal access: web-frontend → redis-cache:6379",
            namespace: Some("web"),
            pod: Some("web-frontend-5b7c9d8f6d-8hj2k"),
            image: Some("registry.cn-hangzhou.aliyuncs.com/acme/web-frontend:3.2.1"),
            first_seen: "2024-05-20T00:00:00Z",
            last_seen: "2024-05-20T02:10:02Z",
        },
        Expect {
            id: "firewall:45013",
            severity: Medium,
            native_severity: "2",
            status: Resolved,
            resolution: Some(Handled),
            title: "Abnormal access: report-batch → orders-api:8080",
            namespace: Some("batch"),
            pod: Some("report-batch-28591200-xk2vd"),
            image: Some("acme-registry.cn-hangzhou.cr.aliyuncs.com/batch/report:0.9.4"),
            first_seen: "2024-05-19T16:00:00Z",
            last_seen: "2024-05-19T17:00:00Z",
        },
        Expect {
            id: "firewall:44990",
            severity: Low,
            native_severity: "1",
            status: Resolved,
            resolution: Some(Ignored),
            title: "Abnormal access: debug-toolbox → redis-cache:6379",
            namespace: Some("web"),
            pod: Some("debug-toolbox"),
            image: Some("docker.io/nicolaka/netshoot:v0.12"),
            first_seen: "2024-05-18T16:00:00Z",
            last_seen: "2024-05-18T16:02:00Z",
        },
    ];
    assert_eq!(items.len(), table.len());
    for (item, e) in items.iter().zip(&table) {
        let f = normalise_firewall(&c, item.clone());
        check(&f, e, Domain::Firewall);
        assert_eq!(f.raw, item.raw);
        assert_eq!(f.alert_type, "Abnormal access");
    }
    let f = normalise_firewall(&c, items[0].clone());
    let pairs: Vec<(&str, &str)> = f
        .details
        .iter()
        .map(|d| (d.name.as_str(), d.value.as_str()))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("Event time", "2024-05-20T02:10:02Z"),
            (
                "Source",
                "web/web-frontend-5b7c9d8f6d-8hj2k (registry.cn-hangzhou.aliyuncs.com/acme/web-frontend:3.2.1)"
            ),
            ("Target", "data/redis-cache-0 (docker.io/library/redis:7.2)"),
            ("Port", "6379"),
            ("Rule", "deny redis from web (200123)"),
            ("Defence mode", "block"),
            ("Applied mode", "block"),
            ("Try count", "37"),
        ]
    );
    assert!(f.description.contains("37 attempt(s)"), "{}", f.description);
    let alert_mode = normalise_firewall(&c, items[1].clone());
    assert_eq!(detail(&alert_mode, "Defence mode"), vec!["alert"]);
}

#[test]
fn fingerprints_and_ids_are_distinct_and_stable() {
    let first = all_findings();
    let second = all_findings();
    assert_eq!(first, second, "normalisation is deterministic");
    assert_eq!(first.len(), 4 + 3 + 3 + 3);
    let fps: HashSet<&str> = first.iter().map(|f| f.fingerprint.as_str()).collect();
    assert_eq!(fps.len(), first.len(), "fingerprints are distinct");
    let ids: HashSet<&str> = first.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids.len(), first.len(), "ids are distinct");

    // Another source scope gives other fingerprints for the same records.
    let mut other = ctx();
    other.scope = "1234567890123456".into();
    let f1 = normalise_alert(&ctx(), alerts()[0].clone());
    let f2 = normalise_alert(&other, alerts()[0].clone());
    assert_eq!(f1.id, f2.id);
    assert_ne!(f1.fingerprint, f2.fingerprint);

    // A repeat of the same alert (later LastTimeStamp, new status) keeps its fingerprint.
    let mut raw = alerts()[0].raw.clone();
    raw["LastTimeStamp"] = json!(1716170000000i64);
    raw["EventStatus"] = json!(32);
    let later = normalise_alert(&ctx(), Item::from_value(raw).unwrap());
    assert_eq!(later.fingerprint, f1.fingerprint);
    assert_eq!(later.status, Status::Resolved);
    assert_ne!(later.last_seen, f1.last_seen);
}

#[test]
fn findings_round_trip_as_json() {
    for f in all_findings() {
        let text = serde_json::to_string(&f).unwrap();
        let back: Finding = serde_json::from_str(&text).unwrap();
        assert_eq!(back, f, "{}", f.id);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(v["first_seen"].is_null() || v["first_seen"].as_str().unwrap().ends_with('Z'));
        assert!(matches!(
            v["severity"].as_str(),
            Some("critical" | "high" | "medium" | "low" | "info")
        ));
        assert!(matches!(v["status"].as_str(), Some("active" | "resolved")));
        assert!(matches!(
            v["domain"].as_str(),
            Some("alerts" | "vulnerabilities" | "baseline" | "firewall")
        ));
    }
}

#[test]
fn string_number_swaps_normalise_like_the_originals() {
    let c = ctx();
    let original = &alerts()[0];
    let mut swapped = original.raw.clone();
    swapped["Id"] = json!("752312");
    swapped["EventStatus"] = json!("1");
    swapped["LastTimeStamp"] = json!("1716163964000");
    swapped["OccurrenceTimeStamp"] = json!(null);
    swapped["Unknown"] = json!({"x": 1});
    let a = normalise_alert(&c, original.clone());
    let b = normalise_alert(&c, Item::from_value(swapped).unwrap());
    assert_eq!(b.id, a.id);
    assert_eq!(b.fingerprint, a.fingerprint);
    assert_eq!(b.status, a.status);
    assert_eq!(b.last_seen, a.last_seen);
    // Without epoch fields the service-time strings (UTC+8) give the same instants.
    assert_eq!(b.first_seen, a.first_seen);

    let mut v = vulns()[0].raw.clone();
    v["PrimaryId"] = json!("1040311702");
    v["Status"] = json!("1");
    v["FirstTs"] = json!("1715817600000");
    let a = normalise_vulnerability(&c, vulns()[0].clone());
    let b = normalise_vulnerability(&c, Item::from_value(v).unwrap());
    assert_eq!((b.id.as_str(), b.status), (a.id.as_str(), a.status));
    assert_eq!(b.fingerprint, a.fingerprint);
    assert_eq!(b.first_seen, a.first_seen);

    let mut fw = firewall()[0].raw.clone();
    fw["InterceptionName"] = json!(7);
    fw["RiskLevel"] = json!("3");
    fw["Id"] = json!("45012");
    let f = normalise_firewall(&c, Item::from_value(fw).unwrap());
    assert_eq!(f.id, "firewall:45012");
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.alert_type, "Container firewall alert");
    assert_eq!(
        f.title,
        "Container firewall alert: web-frontend → redis-cache:6379"
    );
}

#[test]
fn sparse_records_still_normalise() {
    let c = NormaliseContext::new("s", "cn-shanghai");
    let alert: Item<SuspEvent> = serde_json::from_value(json!({
        "UniqueInfo": "u1", "Uuid": "host", "Level": null, "Stages": "TA0001,TA0002",
        "LastTime": "2024-05-20 08:12:44"
    }))
    .unwrap();
    let f = normalise_alert(&c, alert.clone());
    assert_eq!(f.id, "alert:u1/host/");
    assert_eq!(f.severity, Severity::Info);
    assert_eq!(f.status, Status::Active);
    assert_eq!(rfc(&f.last_seen), "2024-05-20T00:12:44Z");
    assert_eq!(f.first_seen, None);
    assert_eq!(
        f.tactics.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        vec!["TA0001", "TA0002"]
    );
    assert!(f.kubernetes.cluster_id.is_none());
    assert!(urls(&f, LinkKind::Cluster).is_empty());

    let vul: Item<VulRecord> = serde_json::from_value(json!({
        "Uuid": "host", "Name": "sca:CVE-2022-22965", "ContainerId": "c9",
        "Necessity": "later", "Related": "CVE-2022-22965"
    }))
    .unwrap();
    let f = normalise_vulnerability(&c, vul.clone());
    assert_eq!(f.id, "vul:host/sca:CVE-2022-22965/c9");
    assert_eq!(
        f.fingerprint,
        fingerprint(
            "s",
            Domain::Vulnerabilities,
            &["natural", "host", "sca:CVE-2022-22965", "c9"]
        )
    );
    assert_eq!(f.cves, vec!["CVE-2022-22965"]);
    assert!(urls(&f, LinkKind::Asset).is_empty(), "no IP, no asset link");

    let fw: Item<InterceptionHistory> = serde_json::from_value(json!({})).unwrap();
    let f = normalise_firewall(&c, fw.clone());
    assert!(f.id.starts_with("firewall:"));
    assert_eq!(f.severity, Severity::Info);
    assert_eq!(f.native_severity, "");
    assert_eq!(f.first_seen, None);
}

#[test]
fn console_bases_are_configurable() {
    let mut c = ctx();
    c.console_base = "https://yundun.console.alibabacloud.com/?p=sas".into();
    c.ack_console_base = "https://cs.console.alibabacloud.com/".into();
    let f = normalise_vulnerability(&c, vulns()[0].clone());
    assert_eq!(
        urls(&f, LinkKind::Console),
        vec!["https://yundun.console.alibabacloud.com/?p=sas"]
    );
    assert_eq!(
        urls(&f, LinkKind::Cluster),
        vec![
            "https://cs.console.alibabacloud.com/#/k8s/cluster/c1234567890abcdef/v2/info/overview"
        ]
    );
    assert!(
        urls(&f, LinkKind::Asset)[0]
            .starts_with("https://yundun.console.alibabacloud.com/?p=sas#/assetsDetail/")
    );
}

/// Values a damaged or hostile record may carry in any field.
fn hostile_values() -> Vec<Value> {
    vec![
        json!("9999-12-31T23:59:59-08:00"),
        json!("-9999-01-01 00:00:00"),
        json!("9999-12-31 23:59:59"),
        json!("0000-00-00 00:00:00"),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(-1),
        json!(1e308),
        json!(""),
        json!(null),
        json!([]),
        json!({}),
        json!([{"Name": "\u{202e}x", "Value": i64::MIN}]),
        json!("\u{202e}\u{0}\u{feff}<at id=all></at>"),
        json!("x".repeat(100_000)),
    ]
}

/// Every field of the first record of each listing, replaced in turn by each hostile value:
/// the record decodes (leniently) or is refused, and normalising it never panics. A panic
/// here kills a domain's poller, and the same record kills it again after every restart.
#[test]
fn a_hostile_value_in_any_field_never_panics_normalising() {
    fn each_variant(listing: &str, key: &str, mut check: impl FnMut(Value)) -> usize {
        let body = sample(listing);
        let first = body[key][0].as_object().unwrap().clone();
        // Also without the epoch-millisecond times, so that the text times are read.
        let mut textual = first.clone();
        textual.retain(|k, _| !k.ends_with("Stamp"));
        let mut n = 0;
        for record in [first, textual] {
            for field in record.keys() {
                for v in hostile_values() {
                    let mut b = body.clone();
                    let mut record = record.clone();
                    record.insert(field.clone(), v);
                    b[key] = Value::Array(vec![Value::Object(record)]);
                    check(b);
                    n += 1;
                }
            }
        }
        n
    }
    let c = ctx();
    let mut normalised = 0;
    let mut tried = each_variant("DescribeSuspEvents", "SuspEvents", |b| {
        if let Ok(r) = serde_json::from_value::<SuspEventsResponse>(b) {
            r.items.into_iter().for_each(|i| {
                normalise_alert(&c, i);
                normalised += 1;
            });
        }
    });
    tried += each_variant("DescribeVulList", "VulRecords", |b| {
        if let Ok(r) = serde_json::from_value::<VulListResponse>(b) {
            r.items.into_iter().for_each(|i| {
                normalise_vulnerability(&c, i);
                normalised += 1;
            });
        }
    });
    tried += each_variant("ListInterceptionHistory", "InterceptionHistoryList", |b| {
        if let Ok(r) = serde_json::from_value::<InterceptionHistoryResponse>(b) {
            r.items.into_iter().for_each(|i| {
                normalise_firewall(&c, i);
                normalised += 1;
            });
        }
    });
    tried += each_variant("DescribeCheckWarningSummary", "WarningSummarys", |b| {
        let Ok(r) = serde_json::from_value::<CheckWarningSummaryResponse>(b) else {
            return;
        };
        let mut item = baseline().remove(0);
        item.risk = r.items[0].clone();
        normalise_baseline(&c, item);
        normalised += 1;
    });
    // The lenient decoding takes most of them: the test exercised normalisation, not only
    // the decoder's refusals.
    assert!(
        normalised * 2 > tried,
        "{normalised} of {tried} variants normalised"
    );
}
