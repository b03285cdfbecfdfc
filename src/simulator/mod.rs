//! A fake Alibaba Cloud Security Center (sas, API 2018-12-03) HTTP server, faithful enough that
//! sasrelay's tests and its quick start run without an Alibaba Cloud account.
//!
//! It speaks the real protocol (RPC on `/`, POST or GET, query and form parameters merged, V3
//! `ACS3-HMAC-SHA256` and V1 `HMAC-SHA1` signatures verified with [`crate::sas::sign`], STS
//! tokens, a ±15 min timestamp window, nonce replay protection), answers the fifteen read
//! actions of the ACK "Security Monitoring" page (lists, statistics, details) and its eight
//! handling actions with bodies shaped exactly like the contract's samples and the official
//! SDK's models (docs/sas-api.md), and fails the way the real service fails (error bodies and
//! statuses of `samples/errors`).
//!
//! # Layout
//! - `config`: [`SimConfig`] (world size, seed, generator pace, credentials), validated.
//! - `world` / `generate`: the seeded in-memory world (clusters, nodes, workloads, firewall rules)
//!   and its findings in all four domains; one generator step ([`Simulator::tick`]). Every
//!   generated firewall record names a rule of its cluster (`RuleId`, `RuleName`).
//! - `auth`: signature, token, timestamp and nonce checks. `actions`: filters, sorting, paging.
//! - `detail`: the alert detail bodies and the diagnosis, derived from the alert's record.
//! - `table`: one domain's findings with indexes by cluster, node, natural key and alert
//!   aggregate, so a 1,000-cluster world lists one cluster without walking every record.
//! - `counters`: calls per action and the busiest second per action.
//! - `handle`: the handling (write) actions and the alert-handling tasks.
//! - `faults`: count-based fault injection. `server`: the axum router.
//!
//! # Running it
//! In process (tests): `let sim = Simulator::start(SimConfig::default()).await?;` then point a
//! client at `sim.endpoint()` (`127.0.0.1:PORT`, plain HTTP) with the credential `sasrelay-sim` /
//! `sasrelay-sim-secret`. As a daemon: bind a listener to [`SimConfig::demo`]'s `listen`
//! (`127.0.0.1:8901`) and call [`serve`] with a cancellation token. The generator only runs when
//! [`SimConfig::tick`] is set; tests leave it `None` and drive changes explicitly.
//!
//! # Actions
//! Alerts `DescribeSuspEvents` (`Dealed` N/Y, `Status`, `Levels`, `ClusterId`, `TimeStart`/
//! `TimeEnd` as UTC `YYYY-MM-DD HH:mm:ss` on the latest occurrence, `Id`, `Uuids`, `Remark`,
//! `AlarmUniqueInfo`, `SortColumn`/`SortType` when `Dealed=Y`, page size 20, max 100),
//! `GetClusterSuspEventStatistics`, `DescribeSuspEventDetail` (`SuspiciousEventId` and `From`
//! required: one alert in any state, flat, its current `EventStatus` as a string and its
//! `Details` as `{NameDisplay, Type, Value}`; an unknown id is `SecurityEventNotExists`),
//! `DescribeAlarmEventDetail` (`AlarmUniqueInfo` and `From` required: the alerts sharing that
//! `AlarmUniqueInfo` as one `Data` — the worst `Level`, `StartTime`/`EndTime` spanning their
//! occurrences, the rest from the latest, with the diagnosis `CauseDetails`: process chain,
//! container, evidence, ATT&CK tactics; an unknown one is `InvalidParameter`);
//! vulnerabilities `DescribeVulList` (`Type` required, `AttachTypes`, `Dealed` y/n, `StatusList`,
//! `Necessity`, `ClusterId`, `Uuids`, `Ids` (at most 50; the other filters still apply, so
//! `StatusList=7,10` finds handled records by id), `Name`, page size 10, `UseNextToken`/`NextToken`),
//! `DescribeClusterVulStatistics`; baseline `DescribeCheckWarningSummary` → `DescribeWarningMachines`
//! (`RiskId` required) → `DescribeCheckWarnings` (`RiskId` + `Uuid` required) →
//! `DescribeCheckWarningDetail` (`CheckWarningId`, or `Uuid` + `CheckId`),
//! `GetClusterCheckItemWarningStatistics`; firewall `ListInterceptionHistory` (`ClusterId`,
//! `StartTime`/`EndTime` epoch ms, `InterceptionTypes.N`, `HistoryName`), `GetInterceptionSummary`,
//! `ListClusterInterceptionConfig`, `ListInterceptionRulePage` (`ClusterId`, `CurrentPage`,
//! `PageSize` required; the cluster's rules by `OrderIndex`, an unknown cluster has none;
//! `Criteria` with `CriteriaType` `ID`, `RULE_SWITCH`, `INTERCEPTOR_TYPE`, `DST_PORT` (exact;
//! `6379` or `6379/6379`) or `RULE_NAME`, `SRC_TARGET`, `DST_TARGET` (case-insensitive
//! substring; the default type); `PageInfo` with `CurrentPage`). A `PageSize` above the maximum
//! is `InvalidParameter`. The baseline summary, machine view and statistics count failed and
//! verifying items (`Status` 1, 2) unless `Status` asks for another state;
//! `DescribeCheckWarnings` lists every state. Request bodies are capped at 2 MiB.
//!
//! Handling (contract §5, module `handle`): `DescribeSecurityEventOperations` (`SecurityEventId`:
//! the codes the alert allows now — pending: `ignore`, `advance_mark_mis_info` with `MarkField`
//! from its `Details`, `manual_handled`, `kill_and_quara`/`quara`/`block_ip` when its details
//! have a process, file or remote IP; whitelisted: `rm_mark_mis_info`; handled: `cancle_manual`;
//! ignored: none), `HandleSecurityEvents` (→ a `TaskId`; the change shows from the next request,
//! tick or control call; EventStatus 2 ignore, 8 whitelist, 32 handled, 1 undo; a code the event
//! does not allow fails that event with `EventNotSupportOperation`),
//! `DescribeSecurityEventOperationStatus` (`Processing` to a task's first query, then
//! `Success`/`Failure`), `OperationCancelIgnoreSuspEvent`, `ModifyOperateVul` (Status 7, 10, 1 or
//! the record removed), `IgnoreHcCheckWarnings` (Status 6 / 1), `ValidateHcWarnings` (Status 3),
//! and the firewall's `ModifyInterceptionRuleSwitch` (`ClusterId`, `RuleIds` comma list,
//! `RuleSwitch` 0/1, all required: the rules' switch, seen by the next `ListInterceptionRulePage`
//! and in the rule counts of `GetInterceptionSummary` and `ListClusterInterceptionConfig`; an
//! unknown cluster or rule is `InvalidParameter` and changes nothing).
//! Unknown alerts are `SecurityEventNotExists`. Every call of these that reaches its action is
//! recorded ([`Simulator::handling_calls`]); [`Simulator::firewall_rule`] and
//! [`Simulator::firewall_rules`] show the rules as listed now.
//!
//! # Control endpoints (same port, JSON in and out, no authentication)
//! | Method and path | Body → answer |
//! |---|---|
//! | `GET /_sim/clusters` | → `[{cluster_id, cluster_name, region_id, cluster_type, cnnf_status, interception_switch, nodes: [{uuid, instance_id, instance_name, intranet_ip, internet_ip, node_name}], workloads, rules}]` |
//! | `POST /_sim/findings` | `{"domain": "alert"\|"vuln"\|"baseline"\|"firewall", "cluster_id"?: str, "fields"?: {…}}` → the stored record. `fields` (wire keys) are merged recursively over a generated default; naming an existing id (`Id`, `PrimaryId`, `CheckWarningId`) patches that record instead. Baseline fields may add `RiskId` (one of 120, 88, 37, 64) and `ClusterId`. |
//! | `GET /_sim/findings/{domain}` | → every record of the domain |
//! | `GET /_sim/findings/{domain}/{id}` | → the record, or 404 |
//! | `DELETE /_sim/findings/{domain}/{id}` | → the record as it was (no action returns it any more), or 404 |
//! | `POST /_sim/findings/{domain}/{id}/status` | `{"status": 7}` → the record (`EventStatus` for alerts, `Status` otherwise, plus the handling/fix timestamps) |
//! | `POST /_sim/tick` | → `{new_alerts: [id], recurring_alerts, handled_alerts, new_vulns, fixed_vulns, ignored_vulns, new_baseline, passed_baseline, ignored_baseline, new_firewall, grown_firewall}` |
//! | `POST /_sim/credentials` | `{"access_key_id", "access_key_secret", "security_token"?, "expires_at_ms"?, "denied"?, "denied_actions"?: [str], "disabled"?}` → `{"ok": true}` (replaces a key with the same id) |
//! | `DELETE /_sim/credentials/{id}` | → `{"ok": true}` or 404 |
//! | `POST /_sim/faults` | `{"kind": …, "action"?: str, "param"?: str, "count"?: n (1)}` → `{"ok": true}` (`param`: only calls that carry that parameter, e.g. `Ids`); kinds: `throttling` (`code`? `Throttling.User`, `retry_after_ms`? 1000, `status`?), `service_unavailable`, `internal_error`, `error` (`code`, `status`?, `message`?), `slow` (`delay_ms`), `truncated` / `short_body` (`keep_bytes`?), `not_json`, `wrong_types`, `list_missing` (a 200 with only `RequestId`), `code_in_ok` (`code`? `ServiceUnavailable`: an error body in a 200), `poison_record` (`id`: that record carries `1e400`), `high_ids` (identities raised by 2^63), `oversized_page` (`records`: every list of the normal answer holds that many records `{"Id": n}`, at most 1,000,000, whatever `PageSize` asked) |
//! | `GET /_sim/faults`, `DELETE /_sim/faults` | → pending rules / clears them |
//! | `GET /_sim/calls`, `DELETE /_sim/calls` | → `{"calls": {"DescribeSuspEvents": 3, …, "_other": n}, "total": n, "busiest_second": {"DescribeSuspEvents": 2, …}}` (the most calls of each action within any one second) / resets (the handling calls too) |
//! | `GET /_sim/handling` | → `{"calls": [{"action", "params": {…}, "access_key_id", "at_ms"}]}`: [`Simulator::handling_calls`], oldest first |
//!
//! Control errors are `{"error": "…"}` with 400 (bad request), 404 (unknown id or domain) or
//! 507 (a bound was reached).

mod actions;
mod auth;
mod catalog;
mod config;
mod counters;
mod detail;
mod error;
mod faults;
mod generate;
mod handle;
mod server;
mod table;
mod tasks;
mod world;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use actions::READING_ACTIONS;
pub use catalog::{Cluster, FirewallRule, Node, Workload};
pub use config::{
    DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET, DEMO_LISTEN, InitialFindings, MAX_CLUSTERS,
    MAX_CREDENTIALS, MAX_INITIAL_PER_DOMAIN, MAX_INITIAL_TOTAL_PER_CLUSTER_WORLD,
    MAX_NODES_PER_CLUSTER, SimConfig, SimConfigError, SimCredential,
};
pub use counters::MAX_WINDOW_CALLS;
pub use faults::{
    FaultKind, FaultSpec, MAX_DELAY_MS, MAX_FAULT_COUNT, MAX_FAULTS, MAX_OVERSIZED_RECORDS,
};
pub use handle::{HANDLING_ACTIONS, HandlingCall, MAX_HANDLING_CALLS};
pub use world::{ControlError, Domain, MAX_RECORDS_PER_DOMAIN, TickReport};

use auth::{AuthState, RawRequest, Verified};
use counters::CallCounters;
use faults::FaultQueue;
use world::World;

/// Every action the simulator implements: the reading ones, then the handling ones (contract
/// §5, and the firewall's rule switch of §4.3).
pub fn actions() -> impl Iterator<Item = &'static str> {
    READING_ACTIONS.iter().chain(HANDLING_ACTIONS).copied()
}

/// Whether the simulator implements `action`.
pub fn implements(action: &str) -> bool {
    READING_ACTIONS.contains(&action) || HANDLING_ACTIONS.contains(&action)
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration was rejected.
    #[error("invalid simulator configuration")]
    Config(#[from] SimConfigError),
    /// Binding or serving failed.
    #[error("simulator socket error")]
    Io(#[from] std::io::Error),
}

struct Shared {
    world: Mutex<World>,
    auth: Mutex<AuthState>,
    faults: Mutex<FaultQueue>,
    calls: Mutex<CallCounters>,
    tick: Option<Duration>,
    quota: Option<u32>,
    /// Arrival times of recent calls per action, for the quota.
    recent: Mutex<HashMap<String, VecDeque<Instant>>>,
    throttled: AtomicU64,
    /// How far the simulator's clock runs from the host's, in ms ([`Simulator::set_clock_offset`]).
    clock_offset_ms: AtomicI64,
    /// Handling calls that reached their action, oldest first, at most [`MAX_HANDLING_CALLS`].
    handling: Mutex<VecDeque<HandlingCall>>,
}

/// The simulator's state and its control interface. Cheap to clone (shared state); every method
/// locks briefly and never across an await.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
}

/// A lock that survives a panicked holder: the state is plain data, still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Simulator {
    /// Builds the world of `cfg` (validated first).
    pub fn new(cfg: SimConfig) -> Result<Simulator, SimConfigError> {
        cfg.validate()?;
        let window_ms = i64::try_from(cfg.timestamp_window.as_millis()).unwrap_or(i64::MAX);
        Ok(Simulator {
            shared: Arc::new(Shared {
                world: Mutex::new(World::new(&cfg, world::now_ms())),
                auth: Mutex::new(AuthState::new(&cfg.credentials, window_ms)),
                faults: Mutex::new(FaultQueue::default()),
                calls: Mutex::new(CallCounters::default()),
                tick: cfg.tick,
                quota: cfg.quota_per_second,
                recent: Mutex::new(HashMap::new()),
                throttled: AtomicU64::new(0),
                clock_offset_ms: AtomicI64::new(0),
                handling: Mutex::new(VecDeque::new()),
            }),
        })
    }

    /// Builds the simulator, binds `127.0.0.1:0` and serves in a background task until the handle
    /// is stopped or dropped.
    pub async fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
        let sim = Simulator::new(cfg)?;
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, sim.clone(), shutdown.clone()));
        Ok(SimHandle {
            addr,
            sim,
            shutdown,
            task: Some(task),
        })
    }

    /// The world, with every alert-handling task created so far applied (see
    /// `handle`'s module doc: a task's change shows from the next request, tick or control call).
    fn world(&self) -> MutexGuard<'_, World> {
        let mut w = lock(&self.shared.world);
        w.settle_tasks();
        w
    }

    /// Answers an authenticated, permitted call of an implemented action; records it first when
    /// it is a handling action.
    pub(crate) fn answer(
        &self,
        call: &Verified,
        now: i64,
    ) -> Result<serde_json::Map<String, Value>, error::ApiError> {
        let args = actions::Args(&call.params);
        if HANDLING_ACTIONS.contains(&call.action.as_str()) {
            {
                let mut calls = lock(&self.shared.handling);
                if calls.len() >= MAX_HANDLING_CALLS {
                    calls.pop_front();
                }
                calls.push_back(HandlingCall::new(
                    &call.action,
                    &call.params,
                    &call.access_key_id,
                    now,
                ));
            }
            handle::dispatch(&mut self.world(), &call.action, &args, now)
        } else {
            actions::dispatch(&self.world(), &call.action, &args, now)
        }
    }

    /// The calls of handling actions ([`HANDLING_ACTIONS`]) that reached their action
    /// (authenticated, permitted, not throttled or failed by an injected error), oldest first,
    /// whatever they answered; at most the last [`MAX_HANDLING_CALLS`]. Cleared by
    /// [`Simulator::reset_calls`].
    pub fn handling_calls(&self) -> Vec<HandlingCall> {
        lock(&self.shared.handling).iter().cloned().collect()
    }

    pub(crate) fn verify(
        &self,
        req: &RawRequest<'_>,
        now: i64,
    ) -> Result<Verified, error::ApiError> {
        lock(&self.shared.auth).verify(req, now)
    }

    /// Whether a call of `action` arriving now exceeds the quota (and is then counted as
    /// throttled). Calls answered with throttling do not count against the window.
    pub(crate) fn over_quota(&self, action: &str) -> bool {
        let Some(limit) = self.shared.quota else {
            return false;
        };
        let now = Instant::now();
        let mut recent = lock(&self.shared.recent);
        let window = recent.entry(action.to_string()).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        if window.len() >= limit as usize {
            self.shared.throttled.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        window.push_back(now);
        false
    }

    /// Calls answered `Throttling.User` because of the quota.
    pub fn throttled_count(&self) -> u64 {
        self.shared.throttled.load(Ordering::Relaxed)
    }

    pub(crate) fn permitted(&self, access_key_id: &str, action: &str) -> bool {
        lock(&self.shared.auth).permitted(access_key_id, action)
    }

    pub(crate) fn take_fault(
        &self,
        action: &str,
        params: &[(String, String)],
    ) -> Option<FaultKind> {
        lock(&self.shared.faults).take(action, params)
    }

    pub(crate) fn count_call(&self, key: &str) {
        lock(&self.shared.calls).count(key, Instant::now());
    }

    /// The clusters of the world (ids, names, nodes, workloads, firewall rules).
    pub fn clusters(&self) -> Vec<Cluster> {
        lock(&self.shared.world).clusters.clone()
    }

    /// A container firewall rule of a cluster as `ListInterceptionRulePage` lists it now
    /// (`RuleSwitch` as last set), or `None` when the cluster has no such rule.
    pub fn firewall_rule(&self, cluster_id: &str, rule_id: i64) -> Option<Value> {
        let w = lock(&self.shared.world);
        let c = w.cluster(cluster_id)?;
        c.rule(rule_id).map(|r| c.rule_json(r))
    }

    /// Every firewall rule of a cluster, in the order `ListInterceptionRulePage` lists them
    /// (empty for an unknown cluster).
    pub fn firewall_rules(&self, cluster_id: &str) -> Vec<Value> {
        let w = lock(&self.shared.world);
        w.cluster(cluster_id)
            .map(|c| {
                c.rules_by_priority()
                    .into_iter()
                    .map(|r| c.rule_json(r))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Adds a finding: `fields` (an object of wire keys, or null) merged over a generated default
    /// on `cluster_id` (or the cluster named in `fields`, or a random one). Naming an existing id
    /// patches that record. Returns the stored record.
    pub fn add_finding(
        &self,
        domain: Domain,
        cluster_id: Option<&str>,
        fields: Value,
    ) -> Result<Value, ControlError> {
        let fields = match fields {
            Value::Object(m) => m,
            Value::Null => serde_json::Map::new(),
            _ => return Err(ControlError::Invalid("fields must be an object".into())),
        };
        self.world().add(domain, cluster_id, &fields, self.now_ms())
    }

    /// Moves a finding to `status` (alerts: `EventStatus`; others: `Status`).
    pub fn set_status(&self, domain: Domain, id: i64, status: i64) -> Result<Value, ControlError> {
        self.world().set_status(domain, id, status, self.now_ms())
    }

    /// Deletes a finding: no action returns it any more, whatever the filter. Returns the
    /// record as it was.
    pub fn remove_finding(&self, domain: Domain, id: i64) -> Result<Value, ControlError> {
        self.world()
            .remove(domain, id)
            .ok_or(ControlError::NotFound(domain, id))
    }

    /// One finding, as stored (baseline records also show `RiskId` and `ClusterId`).
    pub fn finding(&self, domain: Domain, id: i64) -> Option<Value> {
        self.world().get(domain, id)
    }

    /// Every finding of a domain, by ascending id.
    pub fn findings(&self, domain: Domain) -> Vec<Value> {
        let w = self.world();
        match domain {
            Domain::Alert => w.alerts.values().cloned().map(Value::Object).collect(),
            Domain::Vuln => w.vulns.values().cloned().map(Value::Object).collect(),
            Domain::Baseline => w.warnings.values().map(|x| x.to_control_json()).collect(),
            Domain::Firewall => w
                .interceptions
                .values()
                .cloned()
                .map(Value::Object)
                .collect(),
        }
    }

    /// The simulator's clock (unix ms): the host's, moved by [`Simulator::set_clock_offset`].
    /// Request timestamps are checked against it, new findings are stamped with it, and every
    /// answer's `Date` header tells it.
    pub fn now_ms(&self) -> i64 {
        world::now_ms().saturating_add(self.shared.clock_offset_ms.load(Ordering::Relaxed))
    }

    /// Runs the simulator's clock `offset_ms` from the host's. Negative: Security Center is
    /// behind the client — what a client whose wall clock stepped forward sees; back to 0 is
    /// that clock stepping back.
    pub fn set_clock_offset(&self, offset_ms: i64) {
        self.shared
            .clock_offset_ms
            .store(offset_ms, Ordering::Relaxed);
    }

    /// Runs one generator step now (what the background generator does every tick).
    pub fn tick(&self) -> TickReport {
        self.world().tick(self.now_ms())
    }

    /// Accepts a credential (replacing one with the same id).
    pub fn add_credential(&self, cred: SimCredential) -> Result<(), ControlError> {
        config::validate_credential(&cred).map_err(ControlError::Invalid)?;
        let mut auth = lock(&self.shared.auth);
        if auth.creds.len() >= config::MAX_CREDENTIALS
            && !auth.creds.contains_key(&cred.access_key_id)
        {
            return Err(ControlError::Full(format!(
                "{} credentials",
                config::MAX_CREDENTIALS
            )));
        }
        auth.creds.insert(cred.access_key_id.clone(), cred);
        Ok(())
    }

    /// Stops accepting a credential; false when it was unknown.
    pub fn remove_credential(&self, access_key_id: &str) -> bool {
        lock(&self.shared.auth)
            .creds
            .remove(access_key_id)
            .is_some()
    }

    /// The permission toggle: while `denied`, every call with this key fails with 403
    /// `Forbidden.RAM`. False when the key is unknown.
    pub fn set_permission_denied(&self, access_key_id: &str, denied: bool) -> bool {
        match lock(&self.shared.auth).creds.get_mut(access_key_id) {
            Some(c) => {
                c.denied = denied;
                true
            }
            None => false,
        }
    }

    /// Queues a fault for the next `spec.count` matching calls.
    pub fn inject_fault(&self, spec: FaultSpec) -> Result<(), ControlError> {
        let mut q = lock(&self.shared.faults);
        q.push(spec).map_err(|e| {
            if e.starts_with("at most") {
                ControlError::Full(e)
            } else {
                ControlError::Invalid(e)
            }
        })
    }

    /// Faults not yet consumed.
    pub fn pending_faults(&self) -> Vec<FaultSpec> {
        lock(&self.shared.faults).pending()
    }

    /// Drops every pending fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Requests received per action, whatever their outcome (rejected ones included); requests
    /// naming no implemented action count under `_other`.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.calls).totals()
    }

    /// Requests received for one action.
    pub fn call_count(&self, action: &str) -> u64 {
        lock(&self.shared.calls).total(action)
    }

    /// The most requests of `action` received within any one second (a sliding window, as a
    /// per-second quota is judged; every request counts, throttled and rejected ones too) since
    /// the start or the last [`Simulator::reset_calls`]; 0 if none.
    pub fn busiest_second(&self, action: &str) -> u64 {
        lock(&self.shared.calls).busiest_second(action)
    }

    /// [`Simulator::busiest_second`] of every action called.
    pub fn busiest_seconds(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.calls).busiest_seconds()
    }

    /// Zeroes the call counters and the busiest seconds, and forgets the handling calls.
    pub fn reset_calls(&self) {
        lock(&self.shared.calls).clear();
        lock(&self.shared.handling).clear();
    }
}

/// Serves the simulator on `listener` until `shutdown` is cancelled; runs the background generator
/// too when the configuration has a tick. Returns once the server and the generator have stopped.
pub async fn serve(
    listener: TcpListener,
    sim: Simulator,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let generator = sim.shared.tick.map(|every| {
        let (sim, token) = (sim.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            // The first tick fires at once; the world already holds its initial findings.
            interval.tick().await;
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = interval.tick() => {
                        let rep = sim.tick();
                        tracing::debug!(
                            new_alerts = rep.new_alerts.len(),
                            new_vulns = rep.new_vulns.len(),
                            new_baseline = rep.new_baseline.len(),
                            new_firewall = rep.new_firewall.len(),
                            "Simulator generated findings."
                        );
                    }
                }
            }
        })
    });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "Security Center simulator listening.");
    }
    let app = server::router(sim, shutdown.clone());
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
    // Stop the generator too when the server ended on its own (an accept error).
    shutdown.cancel();
    if let Some(g) = generator {
        let _ = g.await;
    }
    result
}

/// A simulator serving on `127.0.0.1:PORT` in a background task. Dropping the handle stops the
/// server; [`SimHandle::stop`] also waits for it. Derefs to [`Simulator`] for control.
pub struct SimHandle {
    addr: SocketAddr,
    sim: Simulator,
    /// Cancelled by `stop` or `Drop`; the serve task watches it.
    shutdown: CancellationToken,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl SimHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, what a client's `endpoint` setting takes.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The control interface.
    pub fn simulator(&self) -> &Simulator {
        &self.sim
    }

    /// Stops the server and waits until it has.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(t) => t.await.unwrap_or_else(|e| Err(std::io::Error::other(e))),
            None => Ok(()),
        }
    }
}

impl std::ops::Deref for SimHandle {
    type Target = Simulator;

    fn deref(&self) -> &Simulator {
        &self.sim
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
