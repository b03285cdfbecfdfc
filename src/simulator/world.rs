//! The in-memory world: clusters and the findings of the four domains, how they are created,
//! patched and moved between states, and one step of the background generator.
//!
//! Findings are stored in wire shape (`serde_json` maps with the sample keys) so the API returns
//! them as they are and control-plane patches merge over them; the few fields filters need are read
//! back from the map. No IO and no clock: callers pass `now_ms`.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::catalog::{Cluster, Node, merge};
use super::config::SimConfig;
use super::table::{Table, alarm_key, cluster_key, node_key};

/// Hard cap on records per domain; the generator stops adding and the control interface refuses
/// beyond it, so a long-running demo cannot grow without bound.
pub const MAX_RECORDS_PER_DOMAIN: usize = 50_000;
const DAY_MS: i64 = 86_400_000;

const TIME_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

/// Milliseconds since the Unix epoch, from the system clock.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `YYYY-MM-DD HH:mm:ss` in UTC (the format of `LastTime`, `TimeStart`, `LastFoundTime`).
pub(crate) fn fmt_time(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(TIME_FORMAT).ok())
        .unwrap_or_default()
}

/// Parses `YYYY-MM-DD HH:mm:ss` as UTC into epoch milliseconds.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    PrimitiveDateTime::parse(s.trim(), TIME_FORMAT)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp() * 1000)
}

/// The four finding domains of the ACK "Security Monitoring" page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    /// `DescribeSuspEvents` records, keyed by `Id`.
    #[serde(alias = "alerts")]
    Alert,
    /// `DescribeVulList` records, keyed by `PrimaryId`.
    #[serde(alias = "vulns", alias = "vulnerability", alias = "vulnerabilities")]
    Vuln,
    /// `DescribeCheckWarnings` records, keyed by `CheckWarningId`.
    Baseline,
    /// `ListInterceptionHistory` records, keyed by `Id`.
    #[serde(alias = "interception")]
    Firewall,
}

impl Domain {
    /// The key that identifies a record of this domain.
    pub fn id_key(self) -> &'static str {
        match self {
            Domain::Alert | Domain::Firewall => "Id",
            Domain::Vuln => "PrimaryId",
            Domain::Baseline => "CheckWarningId",
        }
    }

    /// The field [`crate::simulator::Simulator::set_status`] changes.
    pub fn status_key(self) -> &'static str {
        match self {
            Domain::Alert => "EventStatus",
            _ => "Status",
        }
    }
}

impl FromStr for Domain {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(Value::String(s.to_string()))
            .map_err(|_| format!("unknown domain {s:?} (alert, vuln, baseline, firewall)"))
    }
}

/// A baseline check warning: the wire item plus what the API derives from, but does not show on,
/// the item (its baseline, its cluster, when it was found).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Warning {
    pub risk_id: i64,
    pub cluster_id: String,
    pub found_ms: i64,
    pub body: Map<String, Value>,
}

impl Warning {
    pub(crate) fn empty() -> Self {
        Warning {
            risk_id: 0,
            cluster_id: String::new(),
            found_ms: 0,
            body: Map::new(),
        }
    }

    /// The item as the control interface shows it: the wire item plus `RiskId` and `ClusterId`.
    pub(crate) fn to_control_json(&self) -> Value {
        let mut m = self.body.clone();
        m.insert("RiskId".into(), Value::from(self.risk_id));
        m.insert("ClusterId".into(), Value::from(self.cluster_id.clone()));
        Value::Object(m)
    }
}

/// What one generator step changed, by record id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    /// New alerts.
    pub new_alerts: Vec<i64>,
    /// Alerts whose `LastTimeStamp` moved forward (the behaviour happened again).
    pub recurring_alerts: Vec<i64>,
    /// Alerts that left `EventStatus` 1.
    pub handled_alerts: Vec<i64>,
    /// New vulnerability records.
    pub new_vulns: Vec<i64>,
    /// Vulnerabilities now `Status` 7 (fixed).
    pub fixed_vulns: Vec<i64>,
    /// Vulnerabilities now `Status` 10 (ignored).
    pub ignored_vulns: Vec<i64>,
    /// New baseline check warnings.
    pub new_baseline: Vec<i64>,
    /// Baseline warnings now `Status` 3 (passed).
    pub passed_baseline: Vec<i64>,
    /// Baseline warnings now `Status` 6 (ignored).
    pub ignored_baseline: Vec<i64>,
    /// New firewall records.
    pub new_firewall: Vec<i64>,
    /// Firewall records whose `TryCount` and `LastTime` grew.
    pub grown_firewall: Vec<i64>,
}

/// Why a control-plane change was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    /// No record with that id.
    #[error("no {0:?} finding with id {1}")]
    NotFound(Domain, i64),
    /// The request makes no sense (wrong id type, unknown baseline …).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A bound was reached.
    #[error("limit reached: {0}")]
    Full(String),
}

/// A listing's matching row ids in page order, valid while its table is at `version`.
pub(crate) struct Listing {
    /// The filters and order it answers, as text.
    pub(crate) query: String,
    /// The table's version when it was computed.
    pub(crate) version: u64,
    /// The matching ids, in the order pages cut them.
    pub(crate) ids: std::sync::Arc<Vec<i64>>,
}

/// The fake Security Center data.
pub(crate) struct World {
    pub(crate) rng: StdRng,
    pub(crate) hostile: bool,
    pub(crate) clusters: Vec<Cluster>,
    /// Cluster id → index in `clusters`, and node UUID → (cluster, node) indexes: lookups a
    /// 1,000-cluster world makes per record.
    pub(crate) cluster_at: HashMap<String, usize>,
    pub(crate) node_at: HashMap<String, (usize, usize)>,
    pub(crate) alerts: Table<Map<String, Value>>,
    pub(crate) vulns: Table<Map<String, Value>>,
    pub(crate) warnings: Table<Warning>,
    pub(crate) interceptions: Table<Map<String, Value>>,
    /// The last alert listing's matching ids in page order, by its filters and the table's
    /// version: the pages of one listing filter and sort a 50,000-alert table once, not once
    /// per page (which made the simulator, not sasrelay, the bottleneck of the benchmarks).
    pub(crate) alert_listing: std::sync::Mutex<Option<Listing>>,
    /// Alert-handling tasks (`HandleSecurityEvents`); their changes are applied by
    /// [`World::settle_tasks`].
    pub(crate) tasks: super::tasks::Tasks,
    next_alert: i64,
    next_vuln: i64,
    next_warning: i64,
    next_interception: i64,
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Cluster keys of the non-empty string fields `fields` of a record (a listing's `ClusterId`
/// filter never matches an empty or non-string value).
fn cluster_keys(r: &Map<String, Value>, fields: &[&str]) -> Vec<String> {
    let mut keys: Vec<String> = fields
        .iter()
        .filter_map(|f| r.get(*f).and_then(Value::as_str))
        .filter(|c| !c.is_empty())
        .map(cluster_key)
        .collect();
    keys.dedup();
    keys
}

/// Index keys of an alert: its cluster, as either field names it, and its aggregate
/// (`AlarmUniqueInfo`, what `DescribeAlarmEventDetail` looks up).
fn alert_keys(r: &Map<String, Value>) -> Vec<String> {
    let mut keys = cluster_keys(r, &["K8sClusterId", "clusterId"]);
    if let Some(a) = r
        .get("AlarmUniqueInfo")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        keys.push(alarm_key(a));
    }
    keys
}

/// Index keys of a vulnerability record: its cluster and its natural key
/// `(Uuid, Name, ContainerId)` when all three are strings (the generator's duplicate check).
fn vuln_keys(r: &Map<String, Value>) -> Vec<String> {
    let mut keys = cluster_keys(r, &["K8sClusterId"]);
    let text = |k: &str| r.get(k).and_then(Value::as_str);
    if let (Some(u), Some(n), Some(c)) = (text("Uuid"), text("Name"), text("ContainerId")) {
        keys.push(vuln_natural_key(u, n, c));
    }
    keys
}

pub(crate) fn vuln_natural_key(uuid: &str, name: &str, container: &str) -> String {
    format!("n\u{0}{uuid}\u{0}{name}\u{0}{container}")
}

/// Index keys of a check warning: its cluster, its node and its natural key
/// `(RiskId, Uuid, CheckId)` (the generator's duplicate check).
fn warning_keys(w: &Warning) -> Vec<String> {
    let mut keys = Vec::new();
    if !w.cluster_id.is_empty() {
        keys.push(cluster_key(&w.cluster_id));
    }
    if let Some(u) = w.body.get("Uuid").and_then(Value::as_str) {
        keys.push(node_key(u));
        if let Some(c) = w.body.get("CheckId").and_then(Value::as_i64) {
            keys.push(warning_natural_key(w.risk_id, u, c));
        }
    }
    keys
}

pub(crate) fn warning_natural_key(risk_id: i64, uuid: &str, check_id: i64) -> String {
    format!("k\u{0}{risk_id}\u{0}{uuid}\u{0}{check_id}")
}

/// Index keys of a firewall record: its cluster.
fn interception_keys(r: &Map<String, Value>) -> Vec<String> {
    cluster_keys(r, &["ClusterId"])
}

impl World {
    /// Builds the world of `cfg` with its initial findings, timestamps spread over the three days
    /// before `now`.
    pub(crate) fn new(cfg: &SimConfig, now: i64) -> World {
        let mut w = World {
            rng: StdRng::seed_from_u64(cfg.seed),
            hostile: cfg.hostile_strings,
            clusters: Vec::new(),
            cluster_at: HashMap::new(),
            node_at: HashMap::new(),
            alerts: Table::new(alert_keys),
            vulns: Table::new(vuln_keys),
            warnings: Table::new(warning_keys),
            interceptions: Table::new(interception_keys),
            alert_listing: std::sync::Mutex::new(None),
            tasks: super::tasks::Tasks::default(),
            next_alert: 750_001,
            next_vuln: 1_040_310_001,
            next_warning: 81_930_001,
            next_interception: 45_001,
        };
        w.build_clusters(cfg.clusters, cfg.nodes_per_cluster);
        w.index_clusters();
        let per = if cfg.initial_per_cluster {
            cfg.clusters
        } else {
            1
        };
        let initial = &cfg.initial;
        // Per cluster: the k-th record (ids grow with time) goes to cluster k mod N, so every
        // cluster holds exactly the count. Totals: each record on a random cluster.
        let on = |w: &World, k: usize| {
            cfg.initial_per_cluster
                .then(|| w.clusters[k % w.clusters.len()].cluster_id.clone())
        };
        for (k, t) in w.spread(initial.alerts * per, now).into_iter().enumerate() {
            let id = w.insert_new(Domain::Alert, on(&w, k).as_deref(), t);
            if w.rng.random_ratio(3, 10) {
                let status = *[2i64, 4, 8, 32].choose(&mut w.rng).unwrap_or(&32);
                w.apply_status(Domain::Alert, id, status, t + 600_000);
            }
        }
        for (k, t) in w.spread(initial.vulns * per, now).into_iter().enumerate() {
            let id = w.insert_new(Domain::Vuln, on(&w, k).as_deref(), t);
            match w.rng.random_range(0..10) {
                0 | 1 => w.apply_status(Domain::Vuln, id, 7, t),
                2 => w.apply_status(Domain::Vuln, id, 10, t),
                _ => {}
            }
        }
        for (k, t) in w
            .spread(initial.baseline * per, now)
            .into_iter()
            .enumerate()
        {
            let id = w.insert_new(Domain::Baseline, on(&w, k).as_deref(), t);
            match w.rng.random_range(0..20) {
                0..=2 => w.apply_status(Domain::Baseline, id, 2, t),
                3 | 4 => w.apply_status(Domain::Baseline, id, 6, t),
                5 => w.apply_status(Domain::Baseline, id, 3, t),
                _ => {}
            }
        }
        for (k, t) in w
            .spread(initial.firewall * per, now)
            .into_iter()
            .enumerate()
        {
            let id = w.insert_new(Domain::Firewall, on(&w, k).as_deref(), t);
            match w.rng.random_range(0..10) {
                0 | 1 => w.apply_status(Domain::Firewall, id, 1, t),
                2 => w.apply_status(Domain::Firewall, id, 3, t),
                _ => {}
            }
        }
        w
    }

    /// Fills the cluster-id and node-UUID lookups once the clusters are built (clusters and
    /// nodes never change afterwards; only their firewall rules' switches do).
    fn index_clusters(&mut self) {
        for (ci, c) in self.clusters.iter().enumerate() {
            self.cluster_at.insert(c.cluster_id.clone(), ci);
            for (ni, n) in c.nodes.iter().enumerate() {
                self.node_at.insert(n.uuid.clone(), (ci, ni));
            }
        }
    }

    /// `n` sorted instants in the three days before `now` (ids then grow with time, as on the real
    /// service).
    fn spread(&mut self, n: usize, now: i64) -> Vec<i64> {
        let mut v: Vec<i64> = (0..n)
            .map(|_| now - self.rng.random_range(60_000..3 * DAY_MS))
            .collect();
        v.sort_unstable();
        v
    }

    fn len(&self, d: Domain) -> usize {
        match d {
            Domain::Alert => self.alerts.len(),
            Domain::Vuln => self.vulns.len(),
            Domain::Baseline => self.warnings.len(),
            Domain::Firewall => self.interceptions.len(),
        }
    }

    fn next_id(&mut self, d: Domain) -> i64 {
        let step = self.rng.random_range(1..30);
        let slot = match d {
            Domain::Alert => &mut self.next_alert,
            Domain::Vuln => &mut self.next_vuln,
            Domain::Baseline => &mut self.next_warning,
            Domain::Firewall => &mut self.next_interception,
        };
        let id = *slot;
        *slot += step;
        id
    }

    fn bump_next(&mut self, d: Domain, used: i64) {
        let slot = match d {
            Domain::Alert => &mut self.next_alert,
            Domain::Vuln => &mut self.next_vuln,
            Domain::Baseline => &mut self.next_warning,
            Domain::Firewall => &mut self.next_interception,
        };
        if used >= *slot {
            *slot = used.saturating_add(1);
        }
    }

    /// Inserts a generated record; returns its id.
    fn insert_new(&mut self, d: Domain, cluster: Option<&str>, at: i64) -> i64 {
        let id = self.next_id(d);
        match d {
            Domain::Alert => {
                let r = self.default_alert(id, cluster, at);
                self.alerts.insert(id, r);
            }
            Domain::Vuln => {
                let r = self.default_vuln(id, cluster, at);
                self.vulns.insert(id, r);
            }
            Domain::Baseline => {
                let r = self.default_warning(id, cluster, None, at);
                self.warnings.insert(id, r);
            }
            Domain::Firewall => {
                let r = self.default_interception(id, cluster, at);
                self.interceptions.insert(id, r);
            }
        }
        id
    }

    /// The record as the control interface shows it.
    pub(crate) fn get(&self, d: Domain, id: i64) -> Option<Value> {
        match d {
            Domain::Alert => self.alerts.get(id).cloned().map(Value::Object),
            Domain::Vuln => self.vulns.get(id).cloned().map(Value::Object),
            Domain::Baseline => self.warnings.get(id).map(Warning::to_control_json),
            Domain::Firewall => self.interceptions.get(id).cloned().map(Value::Object),
        }
    }

    /// Deletes a record (the real service drops a vulnerability record on `vul_delete`, and
    /// stops listing a finding whose asset was released); `None` if there was none.
    pub(crate) fn remove(&mut self, d: Domain, id: i64) -> Option<Value> {
        match d {
            Domain::Alert => self.alerts.remove(id).map(Value::Object),
            Domain::Vuln => self.vulns.remove(id).map(Value::Object),
            Domain::Baseline => self.warnings.remove(id).map(|w| w.to_control_json()),
            Domain::Firewall => self.interceptions.remove(id).map(Value::Object),
        }
    }

    /// The cluster with this id.
    pub(crate) fn cluster(&self, cluster_id: &str) -> Option<&Cluster> {
        self.clusters.get(*self.cluster_at.get(cluster_id)?)
    }

    /// The cluster with this id, to change its firewall rules.
    pub(crate) fn cluster_mut(&mut self, cluster_id: &str) -> Option<&mut Cluster> {
        self.clusters.get_mut(*self.cluster_at.get(cluster_id)?)
    }

    /// Node and cluster of a Security Center UUID.
    pub(crate) fn node(&self, uuid: &str) -> Option<(&Cluster, &Node)> {
        let (ci, ni) = *self.node_at.get(uuid)?;
        let c = self.clusters.get(ci)?;
        Some((c, c.nodes.get(ni)?))
    }

    /// Adds a finding: a generated default for `cluster_id` (or the cluster named in `fields`, or a
    /// random one) with `fields` merged over it. When `fields` names an existing id, the fields are
    /// merged over that record instead (an update). Baseline fields may carry `RiskId` and
    /// `ClusterId`, which the API derives from, but does not show on, the item.
    pub(crate) fn add(
        &mut self,
        d: Domain,
        cluster_id: Option<&str>,
        fields: &Map<String, Value>,
        now: i64,
    ) -> Result<Value, ControlError> {
        let id_key = d.id_key();
        let requested = match fields.get(id_key) {
            None => None,
            Some(v) => Some(
                v.as_i64()
                    .ok_or_else(|| ControlError::Invalid(format!("{id_key} must be an integer")))?,
            ),
        };
        let mut fields = fields.clone();
        let (risk_id, hidden_cluster) = baseline_hints(d, &mut fields)?;
        if let Some(id) = requested
            && self.get(d, id).is_some()
        {
            self.update(d, id, &fields, risk_id, hidden_cluster);
            return self.get(d, id).ok_or(ControlError::NotFound(d, id));
        }
        if self.len(d) >= MAX_RECORDS_PER_DOMAIN {
            return Err(ControlError::Full(format!(
                "{MAX_RECORDS_PER_DOMAIN} {d:?} records"
            )));
        }
        let cluster = cluster_id
            .map(str::to_string)
            .or(hidden_cluster)
            .or_else(|| {
                ["K8sClusterId", "ClusterId", "clusterId"]
                    .iter()
                    .find_map(|k| fields.get(*k).and_then(Value::as_str).map(str::to_string))
            });
        let cluster = cluster.as_deref();
        let unknown_cluster = cluster.filter(|c| !self.cluster_at.contains_key(*c));
        let at = ["LastTimeStamp", "LastTs", "LastTime"]
            .iter()
            .find_map(|k| fields.get(*k).and_then(Value::as_i64))
            .unwrap_or(now);
        let id = match requested {
            Some(id) => id,
            None => self.next_id(d),
        };
        self.bump_next(d, id);
        self.insert_default(d, id, (cluster, unknown_cluster), at, &fields, risk_id);
        self.get(d, id).ok_or(ControlError::NotFound(d, id))
    }

    /// Merges `fields` over the existing record `id` (checked to exist by the caller).
    fn update(
        &mut self,
        d: Domain,
        id: i64,
        fields: &Map<String, Value>,
        risk_id: Option<i64>,
        hidden_cluster: Option<String>,
    ) {
        match d {
            Domain::Alert => self.alerts.update(id, |r| merge(r, fields)),
            Domain::Vuln => self.vulns.update(id, |r| merge(r, fields)),
            Domain::Firewall => self.interceptions.update(id, |r| merge(r, fields)),
            Domain::Baseline => self.warnings.update(id, |w| {
                merge(&mut w.body, fields);
                if let Some(r) = risk_id {
                    w.risk_id = r;
                }
                if let Some(c) = hidden_cluster {
                    w.cluster_id = c;
                }
            }),
        };
    }

    /// Inserts a generated default record `id` on `cluster` (or a random one), with an
    /// unknown cluster id kept as given and `fields` merged over it.
    fn insert_default(
        &mut self,
        d: Domain,
        id: i64,
        (cluster, unknown_cluster): (Option<&str>, Option<&str>),
        at: i64,
        fields: &Map<String, Value>,
        risk_id: Option<i64>,
    ) {
        match d {
            Domain::Alert => {
                let mut r = self.default_alert(id, cluster, at);
                if let Some(c) = unknown_cluster {
                    r.insert("K8sClusterId".into(), c.into());
                    r.insert("clusterId".into(), c.into());
                }
                merge(&mut r, fields);
                self.alerts.insert(id, r);
            }
            Domain::Vuln => {
                let mut r = self.default_vuln(id, cluster, at);
                if let Some(c) = unknown_cluster {
                    r.insert("K8sClusterId".into(), c.into());
                }
                merge(&mut r, fields);
                self.vulns.insert(id, r);
            }
            Domain::Baseline => {
                let mut w = self.default_warning(id, cluster, risk_id, at);
                if let Some(c) = unknown_cluster {
                    w.cluster_id = c.to_string();
                }
                merge(&mut w.body, fields);
                self.warnings.insert(id, w);
            }
            Domain::Firewall => {
                let mut r = self.default_interception(id, cluster, at);
                if let Some(c) = unknown_cluster {
                    r.insert("ClusterId".into(), c.into());
                }
                merge(&mut r, fields);
                self.interceptions.insert(id, r);
            }
        }
    }

    /// Moves a finding to `status`, updating the fields the real service updates with it
    /// (handling time, fix time, progress …).
    pub(crate) fn set_status(
        &mut self,
        d: Domain,
        id: i64,
        status: i64,
        now: i64,
    ) -> Result<Value, ControlError> {
        if self.get(d, id).is_none() {
            return Err(ControlError::NotFound(d, id));
        }
        self.apply_status(d, id, status, now);
        self.get(d, id).ok_or(ControlError::NotFound(d, id))
    }

    pub(crate) fn apply_status(&mut self, d: Domain, id: i64, status: i64, now: i64) {
        match d {
            Domain::Alert => {
                let (time, code, msg) = match status {
                    1 => (0, "", ""),
                    2 => (now, "Success", "ignore"),
                    8 => (now, "Success", "advance_mark_mis_info"),
                    _ => (now, "Success", "manual_handled"),
                };
                self.alerts.update(id, |r| {
                    r.insert("EventStatus".into(), status.into());
                    r.insert("OperateTime".into(), time.into());
                    r.insert("OperateErrorCode".into(), code.into());
                    r.insert("OperateMsg".into(), msg.into());
                });
            }
            Domain::Vuln => {
                self.vulns.update(id, |r| {
                    r.insert("Status".into(), status.into());
                    r.insert("ModifyTs".into(), now.into());
                    if let Some(Value::Object(ext)) = r.get_mut("ExtendContentJson") {
                        ext.insert("Status".into(), status.to_string().into());
                    }
                    if matches!(status, 7 | 8) {
                        r.insert("RepairTs".into(), now.into());
                        r.insert("Progress".into(), 100.into());
                        r.insert("ResultCode".into(), "0".into());
                        r.insert("ResultMessage".into(), "fix succeeded".into());
                    }
                });
            }
            Domain::Baseline => {
                let reason = if status == 6 {
                    Some(self.ignore_reason())
                } else {
                    None
                };
                self.warnings.update(id, |w| {
                    w.body.insert("Status".into(), status.into());
                    w.body.insert(
                        "LastHandleTime".into(),
                        (if status == 1 { 0 } else { now }).into(),
                    );
                    if let Some(reason) = reason
                        && w.body.get("Reason").and_then(Value::as_str) == Some("")
                    {
                        w.body.insert("Reason".into(), reason.into());
                    }
                });
            }
            Domain::Firewall => {
                self.interceptions.update(id, |r| {
                    r.insert("Status".into(), status.into());
                });
            }
        }
    }

    /// One generator step: new findings appear in every domain, some get handled, fixed, ignored
    /// or passed, alerts recur and firewall records grow.
    pub(crate) fn tick(&mut self, now: i64) -> TickReport {
        let mut rep = TickReport::default();
        // Alerts.
        for _ in 0..self.rng.random_range(1..=2) {
            if self.alerts.len() < MAX_RECORDS_PER_DOMAIN {
                rep.new_alerts
                    .push(self.insert_new(Domain::Alert, None, now));
            }
        }
        let pending: Vec<i64> = self
            .alerts
            .iter()
            .filter(|(_, r)| i(&r["EventStatus"]) == 1 && !rep.new_alerts.contains(&i(&r["Id"])))
            .map(|(id, _)| *id)
            .collect();
        if let Some(&id) = pending.choose(&mut self.rng)
            && self
                .alerts
                .update(id, |r| {
                    r.insert("LastTimeStamp".into(), now.into());
                    r.insert("LastTime".into(), fmt_time(now).into());
                })
                .is_some()
        {
            rep.recurring_alerts.push(id);
        }
        if self.rng.random_ratio(1, 2)
            && let Some(&id) = pending
                .iter()
                .filter(|id| !rep.recurring_alerts.contains(id))
                .collect::<Vec<_>>()
                .choose(&mut self.rng)
                .copied()
        {
            let status = *[2i64, 4, 8, 32].choose(&mut self.rng).unwrap_or(&32);
            self.apply_status(Domain::Alert, id, status, now);
            rep.handled_alerts.push(id);
        }
        // Vulnerabilities.
        if self.rng.random_ratio(1, 2) && self.vulns.len() < MAX_RECORDS_PER_DOMAIN {
            rep.new_vulns.push(self.insert_new(Domain::Vuln, None, now));
        }
        let open: Vec<i64> = self
            .vulns
            .iter()
            .filter(|(id, r)| i(&r["Status"]) == 1 && !rep.new_vulns.contains(id))
            .map(|(id, _)| *id)
            .collect();
        if self.rng.random_ratio(1, 3)
            && let Some(&id) = open.choose(&mut self.rng)
        {
            self.apply_status(Domain::Vuln, id, 7, now);
            rep.fixed_vulns.push(id);
        }
        if self.rng.random_ratio(1, 5)
            && let Some(&id) = open
                .iter()
                .filter(|id| !rep.fixed_vulns.contains(id))
                .collect::<Vec<_>>()
                .choose(&mut self.rng)
                .copied()
        {
            self.apply_status(Domain::Vuln, id, 10, now);
            rep.ignored_vulns.push(id);
        }
        // Baseline.
        if self.rng.random_ratio(1, 2) && self.warnings.len() < MAX_RECORDS_PER_DOMAIN {
            rep.new_baseline
                .push(self.insert_new(Domain::Baseline, None, now));
        }
        let failing: Vec<i64> = self
            .warnings
            .iter()
            .filter(|(id, w)| i(&w.body["Status"]) == 1 && !rep.new_baseline.contains(id))
            .map(|(id, _)| *id)
            .collect();
        if self.rng.random_ratio(1, 3)
            && let Some(&id) = failing.choose(&mut self.rng)
        {
            self.apply_status(Domain::Baseline, id, 3, now);
            rep.passed_baseline.push(id);
        }
        if self.rng.random_ratio(1, 5)
            && let Some(&id) = failing
                .iter()
                .filter(|id| !rep.passed_baseline.contains(id))
                .collect::<Vec<_>>()
                .choose(&mut self.rng)
                .copied()
        {
            self.apply_status(Domain::Baseline, id, 6, now);
            rep.ignored_baseline.push(id);
        }
        // Firewall: records are per-day aggregates, so today's grow and new ones appear.
        if self.rng.random_ratio(1, 2) && self.interceptions.len() < MAX_RECORDS_PER_DOMAIN {
            rep.new_firewall
                .push(self.insert_new(Domain::Firewall, None, now));
        }
        let today = now - now.rem_euclid(DAY_MS);
        let growable: Vec<i64> = self
            .interceptions
            .iter()
            .filter(|(id, r)| i(&r["FirstTime"]) >= today && !rep.new_firewall.contains(id))
            .map(|(id, _)| *id)
            .collect();
        for &id in growable.choose_multiple(&mut self.rng, 2) {
            let add = self.rng.random_range(1..10i64);
            let grown = self.interceptions.update(id, |r| {
                let tries = i(&r["TryCount"]).saturating_add(add);
                r.insert("TryCount".into(), tries.into());
                r.insert("LastTime".into(), now.into());
            });
            if grown.is_some() {
                rep.grown_firewall.push(id);
            }
        }
        rep
    }
}

/// Baseline fields may carry `RiskId` and `ClusterId`, which the API derives from but does not
/// show on the item: takes them out of `fields` (checked) for a baseline record.
fn baseline_hints(
    d: Domain,
    fields: &mut Map<String, Value>,
) -> Result<(Option<i64>, Option<String>), ControlError> {
    if d != Domain::Baseline {
        return Ok((None, None));
    }
    let risk = match fields.remove("RiskId") {
        None => None,
        Some(v) => {
            let r = v
                .as_i64()
                .ok_or_else(|| ControlError::Invalid("RiskId must be an integer".into()))?;
            if super::catalog::risk_def(r).is_none() {
                let known: Vec<i64> = super::catalog::RISKS.iter().map(|r| r.id).collect();
                return Err(ControlError::Invalid(format!(
                    "unknown RiskId {r}; known baselines: {known:?}"
                )));
            }
            Some(r)
        }
    };
    let c = fields
        .remove("ClusterId")
        .and_then(|v| v.as_str().map(str::to_string));
    Ok((risk, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format_round_trips_in_utc() {
        assert_eq!(fmt_time(1_716_163_964_000), "2024-05-20 00:12:44");
        assert_eq!(parse_time("2024-05-20 00:12:44"), Some(1_716_163_964_000));
        assert_eq!(parse_time("2024-05-20T00:12:44Z"), None);
    }

    #[test]
    fn same_seed_same_world() {
        let cfg = SimConfig::default();
        let a = World::new(&cfg, 1_716_163_964_000);
        let b = World::new(&cfg, 1_716_163_964_000);
        assert_eq!(a.clusters, b.clusters);
        assert_eq!(a.alerts, b.alerts);
        assert_eq!(a.vulns, b.vulns);
        assert_eq!(a.warnings, b.warnings);
        assert_eq!(a.interceptions, b.interceptions);
        assert_eq!(a.alerts.len(), cfg.initial.alerts);
        let other = World::new(
            &SimConfig {
                seed: 7,
                ..cfg.clone()
            },
            1_716_163_964_000,
        );
        assert_ne!(a.clusters, other.clusters);
    }

    #[test]
    fn every_firewall_record_names_a_rule_of_its_cluster() {
        let now = 1_716_163_964_000;
        let cfg = SimConfig {
            clusters: 7,
            ..SimConfig::default()
        };
        let mut w = World::new(&cfg, now);
        for k in 1..=40 {
            w.tick(now + k * 60_000);
        }
        assert!(w.interceptions.len() > cfg.initial.firewall);
        for r in w.interceptions.values() {
            let c = w.cluster(r["ClusterId"].as_str().unwrap()).unwrap();
            let rule = c.rule(i(&r["RuleId"])).unwrap_or_else(|| panic!("{r:?}"));
            assert_eq!(r["RuleName"], rule.rule_name.as_str());
            assert_eq!(i(&r["InterceptionType"]), rule.intercept_type);
            assert_eq!(i(&r["DstPort"]), rule.dst_port);
            assert_eq!(r["SrcRuleTargetName"], rule.src_target.as_str());
            assert_eq!(r["DstRuleTargetName"], rule.dst_target.as_str());
        }
    }

    #[test]
    fn domain_parses_with_aliases() {
        assert_eq!("alert".parse::<Domain>(), Ok(Domain::Alert));
        assert_eq!("vulnerabilities".parse::<Domain>(), Ok(Domain::Vuln));
        assert!("nope".parse::<Domain>().is_err());
    }
}
