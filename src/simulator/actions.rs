//! The Security Center actions the simulator answers: parameter checks, filters, sorting and
//! paging over the [`World`], producing bodies shaped exactly like `samples/*.json`.
//!
//! Paging follows the contract (docs/sas-api.md): Describe* actions carry `Count`/`CurrentPage`/`PageSize`/
//! `TotalCount` at the top level, List* actions a `PageInfo` object (with the SDK's `CurrrentPage`
//! spelling for `ListClusterInterceptionConfig`), and `DescribeVulList` also pages with
//! `UseNextToken`/`NextToken` (then without `TotalCount`). Pure: no IO, no clock (`now` comes in).
//! The handling (write) actions live in `super::handle`; this module answers the reads (the
//! alert detail bodies are built by `super::detail`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::catalog::{FirewallRule, check_def, obj, risk_def};
use super::detail;
use super::error::ApiError;
use super::table::{alarm_key, cluster_key, node_key};
use super::world::{Warning, World, parse_time};

/// The reading actions (listings, details, statistics) the simulator implements, in contract
/// order; the handling ones are `super::handle`'s `HANDLING_ACTIONS`.
pub const READING_ACTIONS: &[&str] = &[
    "DescribeSuspEvents",
    "DescribeSuspEventDetail",
    "DescribeAlarmEventDetail",
    "GetClusterSuspEventStatistics",
    "DescribeVulList",
    "DescribeClusterVulStatistics",
    "DescribeCheckWarningSummary",
    "DescribeWarningMachines",
    "DescribeCheckWarnings",
    "DescribeCheckWarningDetail",
    "GetClusterCheckItemWarningStatistics",
    "ListInterceptionHistory",
    "GetInterceptionSummary",
    "ListClusterInterceptionConfig",
    "ListInterceptionRulePage",
];

/// Request parameters (query and form merged; the first occurrence of a key wins).
pub(crate) struct Args<'a>(pub &'a [(String, String)]);

impl Args<'_> {
    /// The value of `key`; blank values count as absent (the SDK never sends them for unset fields).
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    pub(super) fn required(&self, key: &str) -> Result<&str, ApiError> {
        self.get(key).ok_or_else(|| ApiError::missing(key))
    }

    /// A required integer: `MissingParameter` when absent, `InvalidParameter` when not one.
    pub(super) fn required_int(&self, key: &str) -> Result<i64, ApiError> {
        self.int(key)?.ok_or_else(|| ApiError::missing(key))
    }

    pub(super) fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| ApiError::invalid(key, "not an integer"))
            })
            .transpose()
    }

    /// A comma-separated list.
    pub(super) fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A flattened array (`Key.1`, `Key.2`, …); a comma-joined `Key` is accepted too.
    pub(super) fn flat(&self, key: &str) -> Vec<String> {
        let prefix = format!("{key}.");
        let mut indexed: Vec<(u32, String)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let n = k.strip_prefix(&prefix)?.parse::<u32>().ok()?;
                Some((n, v.clone()))
            })
            .collect();
        indexed.sort();
        let mut out: Vec<String> = indexed.into_iter().map(|(_, v)| v).collect();
        out.extend(self.list(key));
        out
    }

    pub(super) fn int_list(&self, key: &str, values: Vec<String>) -> Result<Vec<i64>, ApiError> {
        values
            .iter()
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| ApiError::invalid(key, "not a list of integers"))
            })
            .collect()
    }

    /// `(CurrentPage, PageSize)` with the action's default and maximum page size.
    fn page(&self, default_size: i64, max_size: i64) -> Result<(i64, i64), ApiError> {
        let page = self.int("CurrentPage")?.unwrap_or(1);
        let size = self.int("PageSize")?.unwrap_or(default_size);
        if page < 1 {
            return Err(ApiError::invalid("CurrentPage", "must be at least 1"));
        }
        if !(1..=max_size).contains(&size) {
            return Err(ApiError::invalid(
                "PageSize",
                &format!("must be between 1 and {max_size}"),
            ));
        }
        Ok((page, size))
    }

    fn yes_no(&self, key: &str, yes: &str, no: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v == yes => Ok(Some(true)),
            Some(v) if v == no => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid(key, &format!("must be {yes} or {no}"))),
        }
    }
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The items of one page (1-based) and the total.
fn slice<T: Clone>(items: &[T], page: i64, size: i64) -> Vec<T> {
    let start = usize::try_from((page - 1).saturating_mul(size)).unwrap_or(usize::MAX);
    let size = usize::try_from(size).unwrap_or(0);
    items.iter().skip(start).take(size).cloned().collect()
}

/// A Describe*-style paged body: `Count`, `CurrentPage`, `PageSize`, `TotalCount`, then the list.
fn describe_page(list_key: &str, items: Vec<Value>, page: i64, size: i64) -> Map<String, Value> {
    describe_page_of(list_key, slice(&items, page, size), items.len(), page, size)
}

/// Records of one page, cloned from borrowed rows: only the page is copied, so a large world
/// does not make every page request copy every record.
fn page_of(rows: &[&Map<String, Value>], page: i64, size: i64) -> Vec<Value> {
    slice(rows, page, size)
        .into_iter()
        .map(|r| Value::Object(r.clone()))
        .collect()
}

/// [`describe_page`] for a page already cut out of `total` items.
fn describe_page_of(
    list_key: &str,
    rows: Vec<Value>,
    total: usize,
    page: i64,
    size: i64,
) -> Map<String, Value> {
    obj(json!({
        "Count": rows.len(),
        "CurrentPage": page,
        "PageSize": size,
        "TotalCount": total,
        list_key: rows,
    }))
}

/// A List*-style paged body: `PageInfo` then the list.
fn list_page(
    list_key: &str,
    items: Vec<Value>,
    page: i64,
    size: i64,
    page_key: &str,
) -> Map<String, Value> {
    list_page_of(
        list_key,
        slice(&items, page, size),
        items.len(),
        page,
        size,
        page_key,
    )
}

/// [`list_page`] for a page already cut out of `total` items.
fn list_page_of(
    list_key: &str,
    rows: Vec<Value>,
    total: usize,
    page: i64,
    size: i64,
    page_key: &str,
) -> Map<String, Value> {
    let mut info = Map::new();
    info.insert("Count".into(), rows.len().into());
    info.insert(page_key.into(), page.into());
    info.insert("PageSize".into(), size.into());
    info.insert("TotalCount".into(), total.into());
    let mut m = Map::new();
    m.insert("PageInfo".into(), Value::Object(info));
    m.insert(list_key.into(), Value::Array(rows));
    m
}

/// Answers one action. `Err` is an API error body; unknown actions are the caller's concern.
pub(crate) fn dispatch(
    world: &World,
    action: &str,
    args: &Args<'_>,
    now: i64,
) -> Result<Map<String, Value>, ApiError> {
    match action {
        "DescribeSuspEvents" => describe_susp_events(world, args),
        "DescribeSuspEventDetail" => susp_event_detail(world, args),
        "DescribeAlarmEventDetail" => alarm_event_detail(world, args),
        "GetClusterSuspEventStatistics" => susp_statistics(world, args),
        "DescribeVulList" => describe_vul_list(world, args),
        "DescribeClusterVulStatistics" => vul_statistics(world, args),
        "DescribeCheckWarningSummary" => check_warning_summary(world, args),
        "DescribeWarningMachines" => warning_machines(world, args),
        "DescribeCheckWarnings" => check_warnings(world, args),
        "DescribeCheckWarningDetail" => check_warning_detail(world, args),
        "GetClusterCheckItemWarningStatistics" => check_statistics(world, args),
        "ListInterceptionHistory" => interception_history(world, args),
        "GetInterceptionSummary" => interception_summary(world, args, now),
        "ListClusterInterceptionConfig" => cluster_interception_config(world, args),
        "ListInterceptionRulePage" => interception_rule_page(world, args),
        _ => Err(ApiError::new("InvalidAction.NotFound")),
    }
}

// ------------------------------------------------------------------------------------ alerts

fn describe_susp_events(world: &World, a: &Args<'_>) -> Result<Map<String, Value>, ApiError> {
    let dealed = a.yes_no("Dealed", "Y", "N")?;
    let status = a.int("Status")?.filter(|s| *s != 0);
    let levels = a.list("Levels");
    for l in &levels {
        if !matches!(l.as_str(), "serious" | "suspicious" | "remind") {
            return Err(ApiError::invalid(
                "Levels",
                "use serious, suspicious, remind",
            ));
        }
    }
    let cluster = a.get("ClusterId");
    let start = a
        .get("TimeStart")
        .map(|t| {
            parse_time(t).ok_or_else(|| ApiError::invalid("TimeStart", "use YYYY-MM-DD HH:mm:ss"))
        })
        .transpose()?;
    let end = a
        .get("TimeEnd")
        .map(|t| {
            parse_time(t).ok_or_else(|| ApiError::invalid("TimeEnd", "use YYYY-MM-DD HH:mm:ss"))
        })
        .transpose()?;
    let id = a.int("Id")?;
    let uuids = a.list("Uuids");
    let remark = a.get("Remark");
    // The exceptions of one aggregated alert (what DescribeAlarmEventDetail aggregates).
    let alarm = a.get("AlarmUniqueInfo");
    let (page, size) = a.page(20, 100)?;

    // Pending events: newest occurrence first. Handled events (Dealed=Y) honour SortColumn and
    // SortType, which the SDK documents only for that case.
    let by_operate = dealed == Some(true) && a.get("SortColumn") != Some("lastTime");
    let ascending = dealed == Some(true) && a.get("SortType") == Some("asc");
    let query = format!(
        "{dealed:?} {status:?} {levels:?} {cluster:?} {start:?} {end:?} {id:?} {uuids:?} {remark:?} {alarm:?} {by_operate} {ascending}"
    );
    let version = world.alerts.version();
    let cached = crate::simulator::lock(&world.alert_listing)
        .as_ref()
        .filter(|l| l.query == query && l.version == version)
        .map(|l| l.ids.clone());
    let ids = match cached {
        Some(ids) => ids,
        None => {
            let scope = match (alarm, cluster) {
                (Some(x), _) => Some(alarm_key(x)),
                (None, c) => c.map(cluster_key),
            };
            let mut rows: Vec<&Map<String, Value>> = world
                .alerts
                .scan(scope.as_deref())
                .filter(|r| {
                    let st = i(&r["EventStatus"]);
                    let last = i(&r["LastTimeStamp"]);
                    dealed.is_none_or(|d| d == (st != 1))
                        && status.is_none_or(|s| s == st)
                        && (levels.is_empty() || levels.iter().any(|l| l == s(&r["Level"])))
                        && cluster
                            .is_none_or(|c| s(&r["K8sClusterId"]) == c || s(&r["clusterId"]) == c)
                        && start.is_none_or(|t| last >= t)
                        // TimeEnd has second precision: include the whole second.
                        && end.is_none_or(|t| last <= t + 999)
                        && id.is_none_or(|x| x == i(&r["Id"]))
                        && alarm.is_none_or(|x| s(&r["AlarmUniqueInfo"]) == x)
                        && (uuids.is_empty() || uuids.iter().any(|u| u == s(&r["Uuid"])))
                        && remark.is_none_or(|m| {
                            ["Name", "AlarmEventNameDisplay", "InstanceName", "IntranetIp", "InternetIp"]
                                .iter()
                                .any(|k| s(&r[*k]).contains(m))
                        })
                })
                .collect();
            // Keys read once per row, not per comparison: a 50,000-alert world sorts them all.
            rows.sort_by_cached_key(|r| {
                std::cmp::Reverse(if by_operate {
                    (i(&r["OperateTime"]), i(&r["Id"]))
                } else {
                    (i(&r["LastTimeStamp"]), i(&r["Id"]))
                })
            });
            if ascending {
                rows.reverse();
            }
            let ids = std::sync::Arc::new(rows.iter().map(|r| i(&r["Id"])).collect::<Vec<i64>>());
            *crate::simulator::lock(&world.alert_listing) =
                Some(crate::simulator::world::Listing {
                    query,
                    version,
                    ids: ids.clone(),
                });
            ids
        }
    };
    let rows: Vec<&Map<String, Value>> = slice(&ids, page, size)
        .into_iter()
        .filter_map(|id| world.alerts.get(id))
        .collect();
    // SuspEvents' CurrentPage/PageSize are strings in the SDK request but ints in the response.
    Ok(describe_page_of(
        "SuspEvents",
        page_of(&rows, 1, size),
        ids.len(),
        page,
        size,
    ))
}

fn susp_statistics(world: &World, a: &Args<'_>) -> Result<Map<String, Value>, ApiError> {
    let cluster = a.get("ClusterId");
    let mut counts = [0i64; 3];
    for r in world.alerts.scan(cluster.map(cluster_key).as_deref()) {
        if i(&r["EventStatus"]) != 1 || cluster.is_some_and(|c| s(&r["K8sClusterId"]) != c) {
            continue;
        }
        match s(&r["Level"]) {
            "serious" => counts[0] += 1,
            "suspicious" => counts[1] += 1,
            "remind" => counts[2] += 1,
            _ => {}
        }
    }
    Ok(obj(json!({
        "SuspStatistics": {"Remind": counts[2], "Serious": counts[0], "Suspicious": counts[1]}
    })))
}

/// `DescribeSuspEventDetail`: one alert record (`SuspiciousEventId` = its `Id`, any state) as
/// the flat detail body.
fn susp_event_detail(world: &World, a: &Args<'_>) -> Result<Map<String, Value>, ApiError> {
    let id = a.required_int("SuspiciousEventId")?;
    a.required("From")?;
    let alert = world
        .alerts
        .get(id)
        .ok_or_else(|| ApiError::event_not_exists(id))?;
    Ok(detail::susp_event_detail(alert))
}

/// `DescribeAlarmEventDetail`: the alert records sharing `AlarmUniqueInfo`, as one aggregate
/// with its diagnosis. When no alert has it: `InvalidParameter` (the contract documents no code
/// for that).
fn alarm_event_detail(world: &World, a: &Args<'_>) -> Result<Map<String, Value>, ApiError> {
    let info = a.required("AlarmUniqueInfo")?;
    a.required("From")?;
    let group: Vec<&Map<String, Value>> = world
        .alerts
        .scan(Some(&alarm_key(info)))
        .filter(|r| s(&r["AlarmUniqueInfo"]) == info)
        .collect();
    if group.is_empty() {
        return Err(ApiError::invalid(
            "AlarmUniqueInfo",
            &format!("no alert {info:?}"),
        ));
    }
    Ok(detail::alarm_event_detail(&group))
}

// ----------------------------------------------------------------------------- vulnerabilities

pub(super) const VUL_TYPES: &[&str] = &["cve", "sys", "cms", "app", "emg", "sca"];
/// `Dealed=y`: fixed, rolled back, ignored, expired.
pub(super) const VUL_HANDLED: &[i64] = &[7, 8, 9, 10, 11, 20];
const TOKEN_PREFIX: &str = "NT";
/// `Ids` of one `DescribeVulList` request at most (docs/sas-api.md §2.1).
const MAX_VUL_IDS: usize = 50;

fn vul_types(key: &str, values: Vec<String>) -> Result<Vec<String>, ApiError> {
    for t in &values {
        if !VUL_TYPES.contains(&t.as_str()) {
            return Err(ApiError::invalid(key, "use cve, sys, cms, app, emg or sca"));
        }
    }
    Ok(values)
}

fn describe_vul_list(world: &World, a: &Args<'_>) -> Result<Map<String, Value>, ApiError> {
    let ty = a.required("Type")?.to_string();
    let attach = vul_types("AttachTypes", a.list("AttachTypes"))?;
    // The SDK: "If you set Type to app, you must specify this parameter" (AttachTypes=sca).
    if ty == "app" && attach.is_empty() {
        return Err(ApiError::invalid(
            "AttachTypes",
            "is required with Type=app: set it to sca",
        ));
    }
    let mut types = vul_types("Type", vec![ty])?;
    types.extend(attach);
    let dealed = a.yes_no("Dealed", "y", "n")?;
    let statuses = a.int_list("StatusList", a.list("StatusList"))?;
    let necessity = a.list("Necessity");
    for n in &necessity {
        if !matches!(n.as_str(), "asap" | "later" | "nntf") {
            return Err(ApiError::invalid("Necessity", "use asap, later, nntf"));
        }
    }
    let cluster = a.get("ClusterId");
    let uuids = a.list("Uuids");
    let ids = a.int_list("Ids", a.list("Ids"))?;
    if ids.len() > MAX_VUL_IDS {
        return Err(ApiError::invalid("Ids", "at most 50 ids"));
    }
    let name = a.get("Name");
    // The Python SDK renders booleans as `True`/`False`, the others as `true`/`false`.
    let use_token = match a
        .get("UseNextToken")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid("UseNextToken", "must be true or false")),
    };
    let (page, size) = a.page(10, 100)?;

    let mut rows: Vec<&Map<String, Value>> = world
        .vulns
        .scan(cluster.map(cluster_key).as_deref())
        .filter(|r| {
            let st = i(&r["Status"]);
            types.iter().any(|t| t == s(&r["Type"]))
                && dealed.is_none_or(|d| d == VUL_HANDLED.contains(&st))
                && (statuses.is_empty() || statuses.contains(&st))
                && (necessity.is_empty() || necessity.iter().any(|n| n == s(&r["Necessity"])))
                && cluster.is_none_or(|c| s(&r["K8sClusterId"]) == c)
                && (uuids.is_empty() || uuids.iter().any(|u| u == s(&r["Uuid"])))
                && (ids.is_empty() || ids.contains(&i(&r["PrimaryId"])))
                && name.is_none_or(|n| s(&r["Name"]) == n)
        })
        .collect();
    // Newest records first; PrimaryId order keeps token paging stable while statuses change.
    rows.sort_by_cached_key(|r| std::cmp::Reverse(i(&r["PrimaryId"])));

    if use_token {
        let after = match a.get("NextToken") {
            None => None,
            Some(t) => Some(
                t.strip_prefix(TOKEN_PREFIX)
                    .and_then(|h| i64::from_str_radix(h, 16).ok())
                    .ok_or_else(|| ApiError::invalid("NextToken", "unknown token"))?,
            ),
        };
        let rest: Vec<&Map<String, Value>> = rows
            .into_iter()
            .filter(|r| after.is_none_or(|x| i(&r["PrimaryId"]) < x))
            .collect();
        let size_u = usize::try_from(size).unwrap_or(0);
        let page_rows: Vec<Value> = rest
            .iter()
            .take(size_u)
            .map(|r| Value::Object((*r).clone()))
            .collect();
        let next = if rest.len() > size_u {
            page_rows
                .last()
                .map(|r| format!("{TOKEN_PREFIX}{:x}", i(&r["PrimaryId"])))
                .unwrap_or_default()
        } else {
            String::new()
        };
        return Ok(obj(json!({
            "CurrentPage": page,
            "PageSize": size,
            "NextToken": next,
            "VulRecords": page_rows,
        })));
    }
    let total = rows.len();
    let page_rows: Vec<Value> = slice(&rows, page, size)
        .into_iter()
        .map(|r| Value::Object(r.clone()))
        .collect();
    Ok(obj(json!({
        "CurrentPage": page,
        "PageSize": size,
        "TotalCount": total,
        "NextToken": "",
        "VulRecords": page_rows,
    })))
}

fn vul_statistics(world: &World, a: &Args<'_>) -> Result<Map<String, Value>, ApiError> {
    let cluster = a.get("ClusterId");
    let types = vul_types("Types", a.list("Types"))?;
    let mut counts = [0u64; 3];
    for r in world.vulns.scan(cluster.map(cluster_key).as_deref()) {
        if VUL_HANDLED.contains(&i(&r["Status"]))
            || cluster.is_some_and(|c| s(&r["K8sClusterId"]) != c)
            || (!types.is_empty() && !types.iter().any(|t| t == s(&r["Type"])))
        {
            continue;
        }
        match s(&r["Necessity"]) {
            "asap" => counts[0] += 1,
            "later" => counts[1] += 1,
            "nntf" => counts[2] += 1,
            _ => {}
        }
    }
    // Strings on the wire, as in the SDK model and the sample.
    Ok(obj(json!({
        "VulStat": {
            "AsapCount": counts[0].to_string(),
            "LaterCount": counts[1].to_string(),
            "NntfCount": counts[2].to_string(),
        }
    })))
}

// ------------------------------------------------------------------------------------ baseline

/// Warnings the summary and machine views count by default: failed and verifying.
const OPEN: &[i64] = &[1, 2];

fn level_rank(l: &str) -> u8 {
    match l {
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

fn level_counts<'a>(ws: impl Iterator<Item = &'a Warning>) -> (i64, i64, i64) {
    let (mut h, mut m, mut l) = (0, 0, 0);
    for w in ws {
        match s(&w.body["Level"]) {
            "high" => h += 1,
            "medium" => m += 1,
            "low" => l += 1,
            _ => {}
        }
    }
    (h, m, l)
}

fn check_warning_summary(world: &World, a: &Args<'_>) -> Result<Map<String, Value>, ApiError> {
    let cluster = a.get("ClusterId");
    let status = match a.int("Status")? {
        Some(s) => Some(s),
        None => a.int("RiskStatus")?,
    };
    let risk_name = a.get("RiskName");
    let type_name = a.get("TypeName");
    let uuids = a.list("Uuids");
    let (page, size) = a.page(20, 100)?;

    let mut by_risk: BTreeMap<i64, Vec<&Warning>> = BTreeMap::new();
    for w in world.warnings.scan(cluster.map(cluster_key).as_deref()) {
        let st = i(&w.body["Status"]);
        let keep = match status {
            Some(x) => st == x,
            None => OPEN.contains(&st),
        } && cluster.is_none_or(|c| w.cluster_id == c)
            && (uuids.is_empty() || uuids.iter().any(|u| u == s(&w.body["Uuid"])));
        if keep {
            by_risk.entry(w.risk_id).or_default().push(w);
        }
    }
    let mut rows: Vec<(u8, i64, Value)> = Vec::new();
    for (risk_id, ws) in by_risk {
        let Some(def) = risk_def(risk_id) else {
            continue;
        };
        if risk_name.is_some_and(|n| !def.name.contains(n))
            || type_name.is_some_and(|t| def.type_alias != t)
        {
            continue;
        }
        let (h, m, l) = level_counts(ws.iter().copied());
        let level = ws
            .iter()
            .map(|w| s(&w.body["Level"]))
            .max_by_key(|l| level_rank(l))
            .unwrap_or("low")
            .to_string();
        let machines: BTreeSet<&str> = ws.iter().map(|w| s(&w.body["Uuid"])).collect();
        let last = ws.iter().map(|w| w.found_ms).max().unwrap_or(0);
        rows.push((
            level_rank(&level),
            risk_id,
            json!({
                "CheckCount": def.check_count,
                "CheckExploit": def.exploit,
                "ContainerRisk": def.container,
                "DatabaseRisk": def.database,
                "HighWarningCount": h,
                "LastFoundTime": super::world::fmt_time(last),
                "Level": level,
                "LowWarningCount": l,
                "MediumWarningCount": m,
                "RiskId": risk_id,
                "RiskName": def.name,
                "SubTypeAlias": def.sub_type_alias,
                "TypeAlias": def.type_alias,
                "WarningMachineCount": machines.len(),
            }),
        ));
    }
    rows.sort_by_key(|r| std::cmp::Reverse((r.0, r.1)));
    let items = rows.into_iter().map(|(_, _, v)| v).collect();
    Ok(describe_page("WarningSummarys", items, page, size))
}

fn warning_machines(world: &World, a: &Args<'_>) -> Result<Map<String, Value>, ApiError> {
    let risk_id = a.required_int("RiskId")?;
    let cluster = a.get("ClusterId");
    let uuids = a.list("Uuids");
    let machine_name = a.get("MachineName");
    let (page, size) = a.page(10, 100)?;
    let check_count = risk_def(risk_id).map(|r| r.check_count).unwrap_or(0);

    let mut by_uuid: BTreeMap<&str, Vec<&Warning>> = BTreeMap::new();
    for w in world.warnings.scan(cluster.map(cluster_key).as_deref()) {
        if w.risk_id == risk_id
            && OPEN.contains(&i(&w.body["Status"]))
            && cluster.is_none_or(|c| w.cluster_id == c)
            && (uuids.is_empty() || uuids.iter().any(|u| u == s(&w.body["Uuid"])))
        {
            by_uuid.entry(s(&w.body["Uuid"])).or_default().push(w);
        }
    }
    let mut rows: Vec<(i64, Value)> = Vec::new();
    for (uuid, ws) in by_uuid {
        let (cluster_region, node) = match world.node(uuid) {
            Some((c, n)) => (c.region_id.clone(), Some(n)),
            None => (String::new(), None),
        };
        let field = |f: fn(&super::catalog::Node) -> &String| {
            node.map(|n| f(n).clone()).unwrap_or_default()
        };
        let instance_name = field(|n| &n.instance_name);
        if machine_name.is_some_and(|m| !instance_name.contains(m)) {
            continue;
        }
        let (h, m, l) = level_counts(ws.iter().copied());
        let container = ws.iter().find(|w| !s(&w.body["ContainerId"]).is_empty());
        let verifying = ws.iter().any(|w| i(&w.body["Status"]) == 2);
        rows.push((
            h,
            json!({
                "AssetType": "ECS",
                "AuthVersion": 7,
                "Bind": true,
                "ContainerId": container.map(|w| s(&w.body["ContainerId"])).unwrap_or(""),
                "ContainerName": container.map(|w| s(&w.body["ContainerName"])).unwrap_or(""),
                "HighWarningCount": h,
                "InstanceId": field(|n| &n.instance_id),
                "InstanceName": instance_name,
                "InternetIp": field(|n| &n.internet_ip),
                "IntranetIp": field(|n| &n.intranet_ip),
                "LowWarningCount": l,
                "MediumWarningCount": m,
                "Online": true,
                "PassCount": (check_count - (ws.len() as i64)).max(0),
                "PortOpen": container.is_some(),
                "RegionId": cluster_region,
                "Status": if verifying { 2 } else { 1 },
                "Uuid": uuid,
            }),
        ));
    }
    // Stable order: most high-level warnings first, then UUID.
    rows.sort_by(|x, y| {
        y.0.cmp(&x.0)
            .then_with(|| s(&x.1["Uuid"]).cmp(s(&y.1["Uuid"])))
    });
    let items = rows.into_iter().map(|(_, v)| v).collect();
    Ok(describe_page("WarningMachines", items, page, size))
}

fn check_warnings(world: &World, a: &Args<'_>) -> Result<Map<String, Value>, ApiError> {
    let risk_id = a.required_int("RiskId")?;
    let uuid = a.required("Uuid")?;
    let check_id = a.int("CheckId")?;
    let check_type = a.get("CheckType");
    let risk_status = a.int("RiskStatus")?;
    let container = a.get("ContainerName");
    let (page, size) = a.page(20, 100)?;
    let items: Vec<Value> = world
        .warnings
        .scan(Some(&node_key(uuid)))
        .filter(|w| {
            w.risk_id == risk_id
                && s(&w.body["Uuid"]) == uuid
                && check_id.is_none_or(|c| i(&w.body["CheckId"]) == c)
                && check_type.is_none_or(|t| s(&w.body["Type"]) == t)
                && risk_status.is_none_or(|x| i(&w.body["Status"]) == x)
                && container.is_none_or(|c| s(&w.body["ContainerName"]) == c)
        })
        .map(|w| Value::Object(w.body.clone()))
        .collect();
    Ok(describe_page("CheckWarnings", items, page, size))
}

fn check_warning_detail(world: &World, a: &Args<'_>) -> Result<Map<String, Value>, ApiError> {
    let warning = match a.int("CheckWarningId")? {
        Some(id) => Some(
            world
                .warnings
                .get(id)
                .ok_or_else(|| ApiError::invalid("CheckWarningId", "no such check warning"))?,
        ),
        None => {
            let check_id = a
                .int("CheckId")?
                .ok_or_else(|| ApiError::missing("CheckWarningId"))?;
            let uuid = a.required("Uuid")?;
            let found = world
                .warnings
                .scan(Some(&node_key(uuid)))
                .find(|w| i(&w.body["CheckId"]) == check_id && s(&w.body["Uuid"]) == uuid);
            if found.is_none() && check_def(check_id).is_none() {
                return Err(ApiError::invalid("CheckId", "no such check item"));
            }
            found
        }
    };
    let check_id = match warning {
        Some(w) => i(&w.body["CheckId"]),
        None => a.int("CheckId")?.unwrap_or(0),
    };
    let def = check_def(check_id).map(|(_, c)| c);
    let item = warning
        .map(|w| s(&w.body["Item"]).to_string())
        .or_else(|| def.map(|d| d.item.to_string()))
        .unwrap_or_default();
    let level = warning
        .map(|w| s(&w.body["Level"]).to_string())
        .or_else(|| def.map(|d| d.level.to_string()))
        .unwrap_or_default();
    let kind = warning
        .map(|w| s(&w.body["Type"]).to_string())
        .or_else(|| def.map(|d| d.kind.to_string()))
        .unwrap_or_default();
    let (description, advice, path, param, current, expected) = match def {
        Some(d) => (
            d.description,
            d.advice,
            d.path,
            d.param,
            d.current,
            d.expected,
        ),
        None => (
            "The configuration deviates from the security baseline.",
            "Apply the baseline's expected setting and verify again.",
            "",
            "",
            "",
            "",
        ),
    };
    let mut asset = Map::new();
    asset.insert("path".into(), path.into());
    asset.insert("param".into(), param.into());
    asset.insert("current".into(), current.into());
    asset.insert("expected".into(), expected.into());
    if let Some(w) = warning {
        asset.insert("uuid".into(), w.body["Uuid"].clone());
        asset.insert("container".into(), w.body["ContainerName"].clone());
    }
    Ok(obj(json!({
        "Advice": advice,
        "CheckDetailAssetInfo": [asset],
        "CheckDetailColumns": [
            {"Grids": [], "Key": "path", "ShowName": "Configuration file", "Type": "text"},
            {
                "Grids": [
                    {"Key": "param", "ShowName": "Parameter", "Type": "text"},
                    {"Key": "current", "ShowName": "Current value", "Type": "text"},
                    {"Key": "expected", "ShowName": "Expected value", "Type": "text"},
                ],
                "Key": "settings",
                "ShowName": "Check result",
                "Type": "grid",
            },
        ],
        "CheckId": check_id,
        "Description": description,
        "Item": item,
        "Level": level,
        "Prompt": format!("Set {param} to {expected} in {path}."),
        "Type": kind,
    })))
}

fn check_statistics(world: &World, a: &Args<'_>) -> Result<Map<String, Value>, ApiError> {
    let cluster = a.get("ClusterId");
    let uuid = a.get("Uuid");
    let scope = match (uuid, cluster) {
        (Some(u), _) => Some(node_key(u)),
        (None, c) => c.map(cluster_key),
    };
    let (h, m, l) = level_counts(world.warnings.scan(scope.as_deref()).filter(|w| {
        i(&w.body["Status"]) == 1
            && cluster.is_none_or(|c| w.cluster_id == c)
            && uuid.is_none_or(|u| s(&w.body["Uuid"]) == u)
    }));
    Ok(obj(json!({
        "Data": {"HighWarningCount": h, "LowWarningCount": l, "MediumWarningCount": m}
    })))
}

// ------------------------------------------------------------------------------------ firewall

fn interception_history(world: &World, a: &Args<'_>) -> Result<Map<String, Value>, ApiError> {
    let cluster = a.get("ClusterId");
    let start = a.int("StartTime")?;
    let end = a.int("EndTime")?;
    let types = a.int_list("InterceptionTypes", a.flat("InterceptionTypes"))?;
    let name = a.get("HistoryName");
    let (page, size) = a.page(20, 100)?;
    let mut rows: Vec<&Map<String, Value>> = world
        .interceptions
        .scan(cluster.map(cluster_key).as_deref())
        .filter(|r| {
            // A per-day record matches when its [FirstTime, LastTime] overlaps the window.
            cluster.is_none_or(|c| s(&r["ClusterId"]) == c)
                && start.is_none_or(|t| i(&r["LastTime"]) >= t)
                && end.is_none_or(|t| i(&r["FirstTime"]) <= t)
                && (types.is_empty() || types.contains(&i(&r["InterceptionType"])))
                // InterceptionName is text on the wire although the SDK annotates int.
                && name.is_none_or(|n| match &r["InterceptionName"] {
                    Value::String(x) => x.contains(n),
                    other => other.to_string().contains(n),
                })
        })
        .collect();
    rows.sort_by_cached_key(|r| std::cmp::Reverse((i(&r["LastTime"]), i(&r["Id"]))));
    Ok(list_page_of(
        "InterceptionHistoryList",
        page_of(&rows, page, size),
        rows.len(),
        page,
        size,
        "CurrentPage",
    ))
}

fn interception_summary(
    world: &World,
    a: &Args<'_>,
    now: i64,
) -> Result<Map<String, Value>, ApiError> {
    const DAY: i64 = 86_400_000;
    let cluster = a.get("ClusterId");
    let excluded = a.flat("ExcludeClusterTypes");
    let clusters: Vec<_> = world
        .clusters
        .iter()
        .filter(|c| !excluded.contains(&c.cluster_type))
        .collect();
    let open = clusters
        .iter()
        .filter(|c| c.interception_switch == 1)
        .count();
    let rules: Vec<_> = clusters.iter().flat_map(|c| c.rules.iter()).collect();
    let open_rules = rules.iter().filter(|r| r.rule_switch == 1).count();
    let recs: Vec<&Map<String, Value>> = world
        .interceptions
        .scan(cluster.map(cluster_key).as_deref())
        .filter(|r| cluster.is_none_or(|c| s(&r["ClusterId"]) == c))
        .collect();
    let since = |days: i64| {
        recs.iter()
            .filter(|r| i(&r["LastTime"]) >= now - days * DAY)
            .count()
    };
    Ok(obj(json!({
        "InterceptionSummary": {
            "CloseClusterCount": clusters.len() - open,
            "CloseRuleCount": rules.len() - open_rules,
            "ClusterCount": clusters.len(),
            "InterceptionCountInDays": since(30),
            "OpenClusterCount": open,
            "OpenRuleCount": open_rules,
            "RiskCount180Day": since(180),
            "RiskCount30Day": since(30),
            "RiskCountToday": recs.iter().filter(|r| i(&r["LastTime"]) >= now - now.rem_euclid(DAY)).count(),
            "RuleCount": rules.len(),
        }
    })))
}

fn cluster_interception_config(
    world: &World,
    a: &Args<'_>,
) -> Result<Map<String, Value>, ApiError> {
    let cluster = a.get("ClusterId");
    let name = a.get("ClusterName");
    let status = a.int("ClusterCNNFStatus")?;
    let excluded = a.flat("ExcludeClusterTypes");
    let (page, size) = a.page(20, 100)?;
    let items: Vec<Value> = world
        .clusters
        .iter()
        .filter(|c| {
            cluster.is_none_or(|x| c.cluster_id == x)
                && name.is_none_or(|n| c.cluster_name.contains(n))
                && status.is_none_or(|st| c.cnnf_status == st)
                && !excluded.contains(&c.cluster_type)
        })
        .map(|c| {
            json!({
                "ClusterCNNFStatus": c.cnnf_status,
                "ClusterId": c.cluster_id,
                "ClusterName": c.cluster_name,
                "ClusterType": c.cluster_type,
                "InterceptionSwitch": c.interception_switch,
                "OpenRuleCount": c.rules.iter().filter(|r| r.rule_switch == 1).count(),
                "SupportCNNF": true,
                "TotalRuleCount": c.rules.len(),
            })
        })
        .collect();
    // The SDK model spells the page number key with three r's here.
    Ok(list_page(
        "ClusterConfigList",
        items,
        page,
        size,
        "CurrrentPage",
    ))
}

/// `CriteriaType` values of `ListInterceptionRulePage` (the SDK's list).
const RULE_CRITERIA: &[&str] = &[
    "ID",
    "RULE_NAME",
    "SRC_TARGET",
    "DST_TARGET",
    "DST_PORT",
    "RULE_SWITCH",
    "INTERCEPTOR_TYPE",
];

/// Whether `rule` matches the search `criteria` of type `kind`: exact for ids, switch, mode
/// and port (`6379` or `6379/6379`), a case-insensitive substring for names.
fn rule_matches(rule: &FirewallRule, kind: &str, criteria: &str) -> bool {
    let c = criteria.trim();
    let like = |name: &str| name.to_lowercase().contains(&c.to_lowercase());
    match kind {
        "ID" => rule.rule_id.to_string() == c,
        "RULE_NAME" => like(&rule.rule_name),
        "SRC_TARGET" => like(&rule.src_target),
        "DST_TARGET" => like(&rule.dst_target),
        "DST_PORT" => {
            let port = rule.dst_port.to_string();
            c == port || c == format!("{port}/{port}")
        }
        "RULE_SWITCH" => rule.rule_switch.to_string() == c,
        "INTERCEPTOR_TYPE" => rule.intercept_type.to_string() == c,
        _ => false,
    }
}

/// `ListInterceptionRulePage`: one cluster's rules in priority order, optionally searched.
/// `ClusterId`, `CurrentPage` and `PageSize` are required; an unknown cluster has no rules.
/// `Criteria` without `CriteriaType` searches rule names.
fn interception_rule_page(world: &World, a: &Args<'_>) -> Result<Map<String, Value>, ApiError> {
    let cluster = a.required("ClusterId")?;
    a.required("CurrentPage")?;
    a.required("PageSize")?;
    let (page, size) = a.page(20, 100)?;
    let kind = a.get("CriteriaType").unwrap_or("RULE_NAME");
    if !RULE_CRITERIA.contains(&kind) {
        return Err(ApiError::invalid(
            "CriteriaType",
            &format!("use {}", RULE_CRITERIA.join(", ")),
        ));
    }
    let criteria = a.get("Criteria");
    let items: Vec<Value> = world
        .cluster(cluster)
        .map(|c| {
            c.rules_by_priority()
                .into_iter()
                .filter(|r| criteria.is_none_or(|x| rule_matches(r, kind, x)))
                .map(|r| c.rule_json(r))
                .collect()
        })
        .unwrap_or_default();
    // Unlike ListClusterInterceptionConfig, this model spells CurrentPage with two r's.
    Ok(list_page(
        "InterceptionRuleList",
        items,
        page,
        size,
        "CurrentPage",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn args_parse_lists_pages_and_flags() {
        let p = pairs(&[
            ("InterceptionTypes.2", "2"),
            ("InterceptionTypes.1", "1"),
            ("Levels", "serious, remind"),
            ("PageSize", "101"),
            ("Blank", ""),
        ]);
        let a = Args(&p);
        assert_eq!(a.flat("InterceptionTypes"), ["1", "2"]);
        assert_eq!(a.list("Levels"), ["serious", "remind"]);
        assert_eq!(a.page(20, 100).unwrap_err().code, "InvalidParameter");
        assert_eq!(a.get("Blank"), None);
        assert_eq!(a.required("Blank").unwrap_err().code, "MissingParameter");
    }

    #[test]
    fn rule_criteria_match_exactly_or_by_substring() {
        let w = World::new(&crate::simulator::SimConfig::default(), 1_716_163_964_000);
        let rule = &w.clusters[0].rules[0];
        assert_eq!(rule.rule_id, 200_123);
        for (kind, criteria, hit) in [
            ("ID", "200123", true),
            ("ID", "20012", false),
            ("RULE_NAME", "REDIS", true),
            ("RULE_NAME", "batch", false),
            ("SRC_TARGET", "web-front", true),
            ("DST_TARGET", "redis-obj", true),
            ("DST_TARGET", "web", false),
            ("DST_PORT", "6379", true),
            ("DST_PORT", "6379/6379", true),
            ("DST_PORT", "637", false),
            ("RULE_SWITCH", "1", true),
            ("RULE_SWITCH", "0", false),
            ("INTERCEPTOR_TYPE", "1", true),
            ("INTERCEPTOR_TYPE", "2", false),
        ] {
            assert_eq!(rule_matches(rule, kind, criteria), hit, "{kind} {criteria}");
        }
    }

    #[test]
    fn slice_pages_one_based() {
        let v: Vec<i32> = (1..=25).collect();
        assert_eq!(slice(&v, 3, 10), vec![21, 22, 23, 24, 25]);
        assert!(slice(&v, 4, 10).is_empty());
        assert!(slice(&v, i64::MAX, 100).is_empty());
    }
}
