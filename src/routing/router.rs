//! The compiled route tree: [`Router::compile`] checks config and resolves inheritance once;
//! [`Router::decide`] walks the tree for one subject (pure: `now` is a parameter) and
//! [`Router::explain`] does the same while recording why each route matched or not.
//!
//! Alertmanager semantics: a route matches when all its matchers hold (matchers are not
//! inherited); its children are tried only when it matched, in order, and the first matching
//! child wins unless it has `continue = true`; when no child matches, the route itself is the
//! match. The default route (`[routing]`) is the root: it takes whatever no top-level route
//! matched. Children inherit sinks, grouping, `repeat_interval` and time intervals unless they
//! set their own; top-level routes inherit everything from `[routing]` except its
//! `default_sinks`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use serde_spanned::Spanned;

use super::config::{RouteConfig, RoutingConfig};
use super::fields::{Field, Subject};
use super::interval::{TimeIntervalConfig, TimeIntervals};
use super::issue::Issue;
use super::matcher::{Check, Matcher, parse_matchers, write_clean};
use crate::duration::parse_duration;

/// `group_wait` when grouping and none is set.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
/// `group_interval` when grouping and none is set.
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(300);
/// `max_group_size` when grouping and none is set.
pub const DEFAULT_MAX_GROUP_SIZE: u32 = 100;
/// Largest `max_group_size` accepted.
pub const MAX_GROUP_SIZE_LIMIT: u32 = 10_000;
/// Longest `group_wait`, `group_interval` or `repeat_interval` accepted.
pub const MAX_ROUTING_DURATION: Duration = Duration::from_secs(30 * 86_400);
/// The `group_by` value meaning "every field" (each distinct event alone).
pub const GROUP_BY_ALL: &str = "...";
/// The name of the default route in decisions.
pub const DEFAULT_ROUTE: &str = "default";

#[derive(Clone, Debug, PartialEq, Eq)]
enum GroupBy {
    All,
    Fields(Vec<Field>),
}

/// Settings after inheritance.
#[derive(Clone, Debug, Default)]
struct Effective {
    sinks: Vec<String>,
    /// Whether `sinks` was written on this route (so `sinks = []` is a deliberate drop).
    sinks_written: bool,
    group_by: Option<GroupBy>,
    group_wait: Option<Duration>,
    group_interval: Option<Duration>,
    max_group_size: Option<u32>,
    repeat_interval: Option<Duration>,
    mute: Vec<String>,
    active: Vec<String>,
}

#[derive(Clone, Debug)]
struct Node {
    path: String,
    name: Option<String>,
    matchers: Vec<Matcher>,
    continue_matching: bool,
    settings: Effective,
    children: Vec<Node>,
}

impl Node {
    fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.path.clone())
    }

    fn display(&self) -> String {
        match &self.name {
            Some(n) if *n != self.path => format!("{} ({n})", self.path),
            _ => self.path.clone(),
        }
    }
}

/// The compiled routing tree.
#[derive(Clone, Debug)]
pub struct Router {
    root: Node,
    drop_default: bool,
    intervals: TimeIntervals,
}

/// How an event is grouped on one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grouping {
    /// The `group_by` fields as written (`["..."]` for every field).
    pub group_by: Vec<String>,
    /// Wait for more members before a new group's first message.
    pub group_wait: Duration,
    /// Wait before sending members that arrived after a group's previous message.
    pub group_interval: Duration,
    /// Most members per message.
    pub max_group_size: u32,
    /// This subject's group: field → value (`a, b` for multi-valued fields; empty when
    /// absent). For `...`, every field that has a value.
    pub group_key: BTreeMap<String, String>,
}

/// One place an event goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The route's name, else its path (`route[1].routes[0]`); `default` for the default route.
    pub route: String,
    /// The sink.
    pub sink: String,
    /// Grouping, when the route has `group_by`.
    pub grouping: Option<Grouping>,
    /// Re-send an unchanged group this often (off when `None`).
    pub repeat_interval: Option<Duration>,
    /// Why it is muted now: the active mute interval's name, or
    /// `outside active_time_intervals: a, b`. Muted targets are not delivered.
    pub muted_by: Option<String>,
}

/// Where one event goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Every target, in route order then sink order. A sink can appear more than once when
    /// several routes matched (`continue`); each keeps its route's grouping.
    pub targets: Vec<Target>,
    /// The routes that matched (names or paths), in order.
    pub routes: Vec<String>,
    /// No top-level route matched: the default route decided.
    pub defaulted: bool,
    /// No target at all: the default is `drop`, or the matching routes have no sinks. The
    /// caller counts these.
    pub dropped: bool,
}

/// Why a route was or was not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every matcher held (empty: the route has none).
    Matched(Vec<Check>),
    /// This matcher did not hold (later ones were not evaluated).
    Failed(Check),
    /// Not tried: an earlier sibling matched and has no `continue`.
    Skipped {
        /// That sibling.
        by: String,
    },
    /// The default route took the event (no top-level route matched).
    Default {
        /// Whether the default drops.
        drop: bool,
    },
}

/// One line of [`Router::explain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceLine {
    /// Nesting depth (0 for top-level routes).
    pub depth: usize,
    /// The route's path and name, e.g. `route[1] (team-a)`.
    pub route: String,
    /// What happened.
    pub outcome: Outcome,
}

impl fmt::Display for TraceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:indent$}{}: ", "", self.route, indent = self.depth * 2)?;
        match &self.outcome {
            Outcome::Matched(checks) if checks.is_empty() => f.write_str("matched: (no matchers)"),
            Outcome::Matched(checks) => {
                f.write_str("matched: ")?;
                for (i, c) in checks.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{c}")?;
                }
                Ok(())
            }
            Outcome::Failed(c) => write!(f, "failed: {c}"),
            Outcome::Skipped { by } => {
                write!(f, "not tried: {by} matched first and has no `continue`")
            }
            Outcome::Default { drop: true } => f.write_str("no route matched: dropped"),
            Outcome::Default { drop: false } => f.write_str("no route matched: default sinks"),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "→ {} via {}", self.sink, self.route)?;
        if let Some(g) = &self.grouping {
            write!(f, "; grouped by {} (", g.group_by.join(", "))?;
            for (i, (k, v)) in g.group_key.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k} = ")?;
                write_clean(f, v)?;
            }
            write!(
                f,
                "), wait {}, interval {}, at most {}",
                crate::duration::format_duration(g.group_wait),
                crate::duration::format_duration(g.group_interval),
                g.max_group_size
            )?;
        }
        if let Some(r) = self.repeat_interval {
            write!(f, "; repeat every {}", crate::duration::format_duration(r))?;
        }
        if let Some(m) = &self.muted_by {
            write!(f, "; muted: {m}")?;
        }
        Ok(())
    }
}

/// [`Router::explain`]'s result: the trace and the decision. `Display` prints both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// Each route visited, in order.
    pub trace: Vec<TraceLine>,
    /// The decision (the same as [`Router::decide`]'s).
    pub decision: Decision,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.trace {
            writeln!(f, "{line}")?;
        }
        for t in &self.decision.targets {
            writeln!(f, "{t}")?;
        }
        if self.decision.dropped {
            writeln!(f, "→ dropped (no sink)")?;
        }
        Ok(())
    }
}

/// Borrowed view of the settings a route (or `[routing]`) writes.
struct RawSettings<'a> {
    /// `sinks`, or `default_sinks` for `[routing]`.
    sinks_key: &'static str,
    sinks: Option<&'a [Spanned<String>]>,
    group_by: Option<&'a [Spanned<String>]>,
    group_wait: Option<&'a Spanned<String>>,
    group_interval: Option<&'a Spanned<String>>,
    repeat_interval: Option<&'a Spanned<String>>,
    max_group_size: Option<&'a Spanned<i64>>,
    mute: Option<&'a [Spanned<String>]>,
    active: Option<&'a [Spanned<String>]>,
}

struct Compiler<'a> {
    sinks: &'a [&'a str],
    intervals: &'a TimeIntervals,
    issues: Vec<Issue>,
    names: BTreeMap<String, String>,
    used_intervals: BTreeSet<String>,
}

impl Compiler<'_> {
    fn err<T>(&mut self, v: &Spanned<T>, key: String, message: String) {
        self.issues.push(Issue::at(v, key, message));
    }

    fn sink_list(&mut self, key: &str, list: &[Spanned<String>]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (k, s) in list.iter().enumerate() {
            let name = s.get_ref();
            if !self.sinks.contains(&name.as_str()) {
                let message = if self.sinks.is_empty() {
                    format!("unknown sink `{name}`: no [[sink]] is configured")
                } else {
                    format!(
                        "unknown sink `{name}`; configured sinks: {}",
                        self.sinks.join(", ")
                    )
                };
                self.err(s, format!("{key}[{k}]"), message);
            } else if !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }

    fn interval_list(&mut self, key: &str, list: &[Spanned<String>]) -> Vec<String> {
        let mut out = Vec::new();
        for (k, s) in list.iter().enumerate() {
            let name = s.get_ref();
            if self.intervals.get(name).is_none() {
                let defined: Vec<&str> = self.intervals.names().collect();
                let message = if defined.is_empty() {
                    format!("unknown time interval `{name}`: no [[time_interval]] is defined")
                } else {
                    format!(
                        "unknown time interval `{name}`; defined: {}",
                        defined.join(", ")
                    )
                };
                self.err(s, format!("{key}[{k}]"), message);
            } else {
                self.used_intervals.insert(name.clone());
                if !out.contains(name) {
                    out.push(name.clone());
                }
            }
        }
        out
    }

    fn duration(
        &mut self,
        key: String,
        v: &Spanned<String>,
        allow_zero: bool,
        allow_off: bool,
    ) -> Option<Option<Duration>> {
        let text = v.get_ref().trim();
        if allow_off && text == "off" {
            return Some(None);
        }
        match parse_duration(text) {
            Ok(d) if d.is_zero() && !allow_zero => {
                let off = if allow_off { ", or \"off\"" } else { "" };
                self.err(v, key, format!("must be above 0s{off}"));
                None
            }
            Ok(d) if d > MAX_ROUTING_DURATION => {
                self.err(v, key, "must be at most 30d".into());
                None
            }
            Ok(d) => Some(Some(d)),
            Err(e) => {
                let off = if allow_off { ", or \"off\"" } else { "" };
                self.err(v, key, format!("{e}{off}"));
                None
            }
        }
    }

    fn settings(&mut self, key: &str, raw: &RawSettings<'_>, parent: &Effective) -> Effective {
        let mut eff = parent.clone();
        eff.sinks_written = raw.sinks.is_some();
        if let Some(list) = raw.sinks {
            eff.sinks = self.sink_list(&format!("{key}.{}", raw.sinks_key), list);
        }
        if let Some(list) = raw.group_by {
            eff.group_by = Some(self.group_by(&format!("{key}.group_by"), list));
        }
        if let Some(v) = raw.group_wait
            && let Some(d) = self.duration(format!("{key}.group_wait"), v, true, false)
        {
            eff.group_wait = d;
        }
        if let Some(v) = raw.group_interval
            && let Some(d) = self.duration(format!("{key}.group_interval"), v, false, false)
        {
            eff.group_interval = d;
        }
        if let Some(v) = raw.repeat_interval
            && let Some(d) = self.duration(format!("{key}.repeat_interval"), v, false, true)
        {
            eff.repeat_interval = d;
        }
        if let Some(v) = raw.max_group_size {
            let n = *v.get_ref();
            match u32::try_from(n) {
                Ok(n @ 1..=MAX_GROUP_SIZE_LIMIT) => eff.max_group_size = Some(n),
                _ => self.err(
                    v,
                    format!("{key}.max_group_size"),
                    format!("must be between 1 and {MAX_GROUP_SIZE_LIMIT}"),
                ),
            }
        }
        if let Some(list) = raw.mute {
            eff.mute = self.interval_list(&format!("{key}.mute_time_intervals"), list);
        }
        if let Some(list) = raw.active {
            eff.active = self.interval_list(&format!("{key}.active_time_intervals"), list);
        }
        eff
    }

    fn group_by(&mut self, key: &str, list: &[Spanned<String>]) -> GroupBy {
        if list.iter().any(|s| s.get_ref() == GROUP_BY_ALL) {
            if list.len() > 1 {
                self.issues.push(Issue::at(
                    &list[0],
                    key.to_string(),
                    format!("`{GROUP_BY_ALL}` means every field and must be the only entry"),
                ));
            }
            return GroupBy::All;
        }
        let mut fields = Vec::new();
        for (k, s) in list.iter().enumerate() {
            match Field::parse(s.get_ref()) {
                Ok(f) if fields.contains(&f) => self.err(
                    s,
                    format!("{key}[{k}]"),
                    format!("`{}` is listed twice", s.get_ref()),
                ),
                Ok(f) => fields.push(f),
                Err(m) => self.err(s, format!("{key}[{k}]"), m),
            }
        }
        GroupBy::Fields(fields)
    }

    fn route(&mut self, path: String, raw: &RouteConfig, parent: &Effective) -> Node {
        let name = raw.name.as_ref().and_then(|n| {
            let text = n.get_ref().trim().to_string();
            if text.is_empty()
                || !text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                self.err(
                    n,
                    format!("{path}.name"),
                    "must be non-empty and use only letters, digits, `-`, `_` and `.`".into(),
                );
                return None;
            }
            if text == DEFAULT_ROUTE {
                self.err(
                    n,
                    format!("{path}.name"),
                    format!("`{DEFAULT_ROUTE}` is the name of the default route ([routing])"),
                );
                return None;
            }
            if let Some(other) = self.names.get(&text) {
                let message = format!("duplicate route name `{text}` (also used by {other})");
                self.err(n, format!("{path}.name"), message);
            } else {
                self.names.insert(text.clone(), path.clone());
            }
            Some(text)
        });
        let mut matchers = Vec::new();
        for (k, m) in raw.matchers.iter().enumerate() {
            match parse_matchers(m.get_ref()) {
                Ok(list) => matchers.extend(list),
                Err(e) => self.err(m, format!("{path}.matchers[{k}]"), e.message),
            }
        }
        let settings = self.settings(
            &path,
            &RawSettings {
                sinks_key: "sinks",
                sinks: raw.sinks.as_deref(),
                group_by: raw.group_by.as_deref(),
                group_wait: raw.group_wait.as_ref(),
                group_interval: raw.group_interval.as_ref(),
                repeat_interval: raw.repeat_interval.as_ref(),
                max_group_size: raw.max_group_size.as_ref(),
                mute: raw.mute_time_intervals.as_deref(),
                active: raw.active_time_intervals.as_deref(),
            },
            parent,
        );
        let children = self.children(&format!("{path}.routes"), &raw.routes, &settings);
        let node = Node {
            path,
            name,
            matchers,
            continue_matching: raw.continue_matching,
            settings,
            children,
        };
        if node.settings.sinks.is_empty() && !node.settings.sinks_written {
            let span = raw
                .name
                .as_ref()
                .map(|n| n.span())
                .or_else(|| raw.matchers.first().map(|m| m.span()));
            self.issues.push(Issue::warning(
                span,
                node.path.clone(),
                "no sinks: events that end at this route are dropped; set `sinks` (top-level routes do not inherit [routing].default_sinks), or `sinks = []` to drop on purpose"
                    .into(),
            ));
        }
        node
    }

    fn children(&mut self, prefix: &str, list: &[RouteConfig], parent: &Effective) -> Vec<Node> {
        let mut out: Vec<Node> = Vec::new();
        let mut catch_all: Option<String> = None;
        for (i, raw) in list.iter().enumerate() {
            let node = self.route(format!("{prefix}[{i}]"), raw, parent);
            if let Some(by) = &catch_all {
                let span = raw
                    .name
                    .as_ref()
                    .map(|n| n.span())
                    .or_else(|| raw.matchers.first().map(|m| m.span()));
                self.issues.push(Issue::warning(
                    span,
                    node.path.clone(),
                    format!(
                        "never tried: {by} before it has no matchers and no `continue`, so it takes every event"
                    ),
                ));
            } else if raw.matchers.is_empty() && !raw.continue_matching {
                catch_all = Some(node.display());
            }
            out.push(node);
        }
        out
    }
}

impl Router {
    /// Today's behaviour: every event to every sink, ungrouped, never muted.
    pub fn broadcast(sink_names: &[&str]) -> Router {
        Router {
            root: Node {
                path: DEFAULT_ROUTE.into(),
                name: None,
                matchers: Vec::new(),
                continue_matching: false,
                settings: Effective {
                    sinks: sink_names.iter().map(|s| s.to_string()).collect(),
                    ..Effective::default()
                },
                children: Vec::new(),
            },
            drop_default: false,
            intervals: TimeIntervals::default(),
        }
    }

    /// Checks routing config against the configured sinks and the `[[time_interval]]`
    /// tables, resolving inheritance. `Ok` carries the router and any warnings; `Err` every
    /// issue found (errors and warnings). Issues come in file order. With neither `[routing]` nor `[[route]]`, the router
    /// is [`Router::broadcast`].
    pub fn compile(
        config: &RoutingConfig,
        sink_names: &[&str],
        interval_config: &[TimeIntervalConfig],
    ) -> Result<(Router, Vec<Issue>), Vec<Issue>> {
        let (intervals, mut issues) = TimeIntervals::compile(interval_config);
        let mut c = Compiler {
            sinks: sink_names,
            intervals: &intervals,
            issues: Vec::new(),
            names: BTreeMap::new(),
            used_intervals: BTreeSet::new(),
        };
        let mut router = Router::broadcast(sink_names);
        if !config.is_empty() {
            let raw = config.routing.clone().unwrap_or_default();
            let mut drop_default = false;
            match (&raw.default, &raw.default_sinks) {
                (Some(d), Some(_)) => c.err(
                    d,
                    "routing.default".into(),
                    "set either `default` or `default_sinks`, not both".into(),
                ),
                (Some(d), None) => match d.get_ref().as_str() {
                    "drop" => drop_default = true,
                    "all" => {}
                    other => c.err(
                        d,
                        "routing.default".into(),
                        format!(
                            "unknown default `{other}`; expected \"drop\" or \"all\", or list sinks in `default_sinks`"
                        ),
                    ),
                },
                (None, Some(_)) => {}
                (None, None) => {
                    if !config.routes.is_empty() {
                        c.issues.push(Issue::warning(
                            None,
                            "routing",
                            "no default route: events no [[route]] matches go to every sink; set [routing] default_sinks = [...] or default = \"drop\" (or \"all\" to keep this)"
                                .into(),
                        ));
                    }
                }
            }
            let mut root_settings = c.settings(
                "routing",
                &RawSettings {
                    sinks_key: "default_sinks",
                    sinks: raw.default_sinks.as_deref(),
                    group_by: raw.group_by.as_deref(),
                    group_wait: raw.group_wait.as_ref(),
                    group_interval: raw.group_interval.as_ref(),
                    repeat_interval: raw.repeat_interval.as_ref(),
                    max_group_size: raw.max_group_size.as_ref(),
                    mute: raw.mute_time_intervals.as_deref(),
                    active: raw.active_time_intervals.as_deref(),
                },
                &Effective::default(),
            );
            if raw.default_sinks.is_none() && !drop_default {
                root_settings.sinks = sink_names.iter().map(|s| s.to_string()).collect();
            }
            if drop_default {
                root_settings.sinks.clear();
            }
            let inherited = Effective {
                sinks: Vec::new(),
                sinks_written: false,
                ..root_settings.clone()
            };
            let children = c.children("route", &config.routes, &inherited);
            router = Router {
                root: Node {
                    path: DEFAULT_ROUTE.into(),
                    name: None,
                    matchers: Vec::new(),
                    continue_matching: false,
                    settings: root_settings,
                    children,
                },
                drop_default,
                intervals: TimeIntervals::default(),
            };
        }
        let used = std::mem::take(&mut c.used_intervals);
        issues.append(&mut c.issues);
        drop(c);
        let mut seen = BTreeSet::new();
        for (i, ti) in interval_config.iter().enumerate() {
            let name = ti.name.get_ref().trim();
            // A duplicate or empty name is already an error.
            if name.is_empty() || !seen.insert(name) || used.contains(name) {
                continue;
            }
            issues.push(Issue::warning(
                Some(ti.name.span()),
                format!("time_interval[{i}].name"),
                format!("time interval `{name}` is not used by any route"),
            ));
        }
        router.intervals = intervals;
        // File order; issues without a position last.
        issues.sort_by_key(|i| i.span.as_ref().map_or(usize::MAX, |s| s.start));
        if issues.iter().any(Issue::is_error) {
            Err(issues)
        } else {
            Ok((router, issues))
        }
    }

    /// Where an event with this subject goes at `now`.
    pub fn decide(&self, subject: &Subject, now: Timestamp) -> Decision {
        self.run(subject, now, None)
    }

    /// [`Router::decide`] plus a line for every route visited saying which matcher held or
    /// failed, with the value it saw (for `sasrelay route test`).
    pub fn explain(&self, subject: &Subject, now: Timestamp) -> Explanation {
        let mut trace = Vec::new();
        let decision = self.run(subject, now, Some(&mut trace));
        Explanation { trace, decision }
    }

    fn run(
        &self,
        subject: &Subject,
        now: Timestamp,
        mut trace: Option<&mut Vec<TraceLine>>,
    ) -> Decision {
        let mut matched: Vec<&Node> = Vec::new();
        walk(&self.root, subject, 0, &mut matched, trace.as_deref_mut());
        let defaulted = matched.len() == 1 && std::ptr::eq(matched[0], &self.root);
        if defaulted && let Some(t) = trace {
            t.push(TraceLine {
                depth: 0,
                route: DEFAULT_ROUTE.into(),
                outcome: Outcome::Default {
                    drop: self.drop_default,
                },
            });
        }
        let mut targets = Vec::new();
        for node in &matched {
            let s = &node.settings;
            let grouping = s.group_by.as_ref().map(|g| grouping(g, s, subject));
            let muted_by = self.muted_by(s, now);
            for sink in &s.sinks {
                targets.push(Target {
                    route: node.label(),
                    sink: sink.clone(),
                    grouping: grouping.clone(),
                    repeat_interval: s.repeat_interval,
                    muted_by: muted_by.clone(),
                });
            }
        }
        Decision {
            dropped: targets.is_empty(),
            routes: matched.iter().map(|n| n.label()).collect(),
            defaulted,
            targets,
        }
    }

    fn muted_by(&self, s: &Effective, now: Timestamp) -> Option<String> {
        if let Some(m) = s.mute.iter().find(|m| self.intervals.is_active(m, now)) {
            return Some(m.clone());
        }
        if !s.active.is_empty() && !s.active.iter().any(|a| self.intervals.is_active(a, now)) {
            return Some(format!(
                "outside active_time_intervals: {}",
                s.active.join(", ")
            ));
        }
        None
    }

    /// The targets of every event, when they depend neither on the event nor on the time:
    /// no routes below the default, no grouping, no time intervals, no drop (the
    /// configuration without routing). Lets a caller skip building a [`Subject`] per event.
    pub fn fixed_targets(&self) -> Option<Vec<Target>> {
        let s = &self.root.settings;
        let fixed = self.root.children.is_empty()
            && !self.drop_default
            && s.group_by.is_none()
            && s.mute.is_empty()
            && s.active.is_empty()
            && !s.sinks.is_empty();
        fixed.then(|| {
            s.sinks
                .iter()
                .map(|sink| Target {
                    route: self.root.label(),
                    sink: sink.clone(),
                    grouping: None,
                    repeat_interval: s.repeat_interval,
                    muted_by: None,
                })
                .collect()
        })
    }

    /// Every (route, sink) pair whose route groups events into digests (`group_by`), the
    /// route by its path (`route[1].routes[0]`, or the default route), in tree order.
    pub fn grouped_targets(&self) -> Vec<(String, String)> {
        fn walk(node: &Node, out: &mut Vec<(String, String)>) {
            if node.settings.group_by.is_some() {
                for sink in &node.settings.sinks {
                    out.push((node.path.clone(), sink.clone()));
                }
            }
            for child in &node.children {
                walk(child, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }

    /// The checked time intervals.
    pub fn intervals(&self) -> &TimeIntervals {
        &self.intervals
    }
}

fn grouping(g: &GroupBy, s: &Effective, subject: &Subject) -> Grouping {
    let (group_by, group_key) = match g {
        GroupBy::All => (
            vec![GROUP_BY_ALL.to_string()],
            subject.present().map(|(k, v)| (k.to_string(), v)).collect(),
        ),
        GroupBy::Fields(fields) => (
            fields.iter().map(Field::name).collect(),
            fields
                .iter()
                .map(|f| (f.name(), subject.value(f)))
                .collect(),
        ),
    };
    Grouping {
        group_by,
        group_wait: s.group_wait.unwrap_or(DEFAULT_GROUP_WAIT),
        group_interval: s.group_interval.unwrap_or(DEFAULT_GROUP_INTERVAL),
        max_group_size: s.max_group_size.unwrap_or(DEFAULT_MAX_GROUP_SIZE),
        group_key,
    }
}

/// Tries the children of a matched node; pushes the matching leaves (or the node itself when
/// no child matched) onto `out`.
fn walk<'r>(
    node: &'r Node,
    subject: &Subject,
    depth: usize,
    out: &mut Vec<&'r Node>,
    mut trace: Option<&mut Vec<TraceLine>>,
) {
    let mut any = false;
    let mut stopped_by: Option<String> = None;
    for child in &node.children {
        if let Some(by) = &stopped_by {
            if let Some(t) = trace.as_deref_mut() {
                t.push(TraceLine {
                    depth,
                    route: child.display(),
                    outcome: Outcome::Skipped { by: by.clone() },
                });
            }
            continue;
        }
        let holds = match trace.as_deref_mut() {
            None => child.matchers.iter().all(|m| m.matches(subject)),
            Some(t) => {
                let mut checks = Vec::new();
                let mut failed = None;
                for m in &child.matchers {
                    let c = m.check(subject);
                    if c.holds {
                        checks.push(c);
                    } else {
                        failed = Some(c);
                        break;
                    }
                }
                let holds = failed.is_none();
                t.push(TraceLine {
                    depth,
                    route: child.display(),
                    outcome: match failed {
                        Some(c) => Outcome::Failed(c),
                        None => Outcome::Matched(checks),
                    },
                });
                holds
            }
        };
        if holds {
            any = true;
            walk(child, subject, depth + 1, out, trace.as_deref_mut());
            if !child.continue_matching {
                stopped_by = Some(child.display());
            }
        }
    }
    if !any {
        out.push(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::config::parse_document;

    fn compile(text: &str) -> Result<(Router, Vec<Issue>), Vec<Issue>> {
        let doc = parse_document(text).map_err(|e| e.clone())?;
        Router::compile(&doc.config, &["a", "b"], &doc.time_intervals)
    }

    #[test]
    fn durations_print_in_config_notation() {
        assert_eq!(crate::duration::format_duration(Duration::ZERO), "0s");
        assert_eq!(
            crate::duration::format_duration(Duration::from_millis(500)),
            "500ms"
        );
        assert_eq!(
            crate::duration::format_duration(Duration::from_secs(5400)),
            "1h30m"
        );
        assert_eq!(
            crate::duration::format_duration(Duration::from_secs(86_400 + 1)),
            "1d1s"
        );
    }

    #[test]
    fn route_names_are_checked() {
        for bad in ["", "team a", "default", "route[0]"] {
            let text = format!("[[route]]\nname = {bad:?}\nsinks = [\"a\"]\n");
            let issues = compile(&text).err().unwrap_or_default();
            assert!(
                issues
                    .iter()
                    .any(|i| i.key == "route[0].name" && i.is_error()),
                "{bad:?}: {issues:?}"
            );
        }
        assert!(
            compile(
                "[[route]]\nname = \"team-a_1.x\"\nsinks = [\"a\"]\n[routing]\ndefault = \"drop\"\n"
            )
            .is_ok()
        );
    }

    #[test]
    fn group_by_checks() {
        let issues = compile("[[route]]\nsinks = [\"a\"]\ngroup_by = [\"...\", \"cluster\"]\n")
            .err()
            .unwrap_or_default();
        assert!(
            issues.iter().any(|i| i.key == "route[0].group_by"),
            "{issues:?}"
        );
        let issues = compile("[[route]]\nsinks = [\"a\"]\ngroup_by = [\"cluster\", \"cluster\"]\n")
            .err()
            .unwrap_or_default();
        assert!(
            issues.iter().any(|i| i.key == "route[0].group_by[1]"),
            "{issues:?}"
        );
    }

    #[test]
    fn an_empty_group_by_puts_every_event_of_the_route_in_one_group() {
        let (r, _) = compile("[[route]]\nsinks = [\"a\"]\ngroup_by = []\n")
            .unwrap_or_else(|e| panic!("{e:?}"));
        let s = Subject::empty()
            .with("cluster", "c1")
            .unwrap_or_else(|e| panic!("{e}"));
        let d = r.decide(&s, Timestamp::UNIX_EPOCH);
        let g = d.targets[0].grouping.as_ref().map(|g| g.group_key.clone());
        assert_eq!(g, Some(BTreeMap::new()));
    }

    #[test]
    fn broadcast_explains_itself() {
        let r = Router::broadcast(&["a", "b"]);
        let x = r.explain(&Subject::empty(), Timestamp::UNIX_EPOCH);
        assert_eq!(
            x.to_string(),
            "default: no route matched: default sinks\n→ a via default\n→ b via default\n"
        );
    }
}
