//! Routing config as written: `[routing]` (the default route), ordered `[[route]]` entries
//! with nested `[[route.routes]]`, and `[[time_interval]]` (see [`super::interval`]). User
//! strings are [`Spanned`] so the checks in [`super::router`] can point at the line.
//!
//! ```toml
//! [routing]
//! default_sinks = ["ops-log"]        # or: default = "drop" (or "all": every sink)
//! group_wait = "30s"                 # settings every [[route]] inherits
//!
//! [[route]]
//! name = "page"
//! matchers = ['severity>=high', 'tactic="Privilege Escalation"']
//! sinks = ["pagerduty"]
//!
//! [[route]]
//! name = "vuln-digest"
//! matchers = ['domain="vulnerabilities"', 'severity="medium"']
//! sinks = ["email"]
//! group_by = ["cluster"]
//! group_wait = "1m"
//! group_interval = "1d"
//!
//! [[route]]
//! name = "teams"
//! matchers = ['namespace=~"team-.*"']
//! sinks = ["ops-chat"]
//!
//!   [[route.routes]]
//!   matchers = ['namespace=~"team-a-.*"']
//!   sinks = ["team-a-chat"]
//! ```
//!
//! Matcher strings are easiest in TOML literal strings (`'...'`), which need no escaping.

use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::DeTable;

use super::interval::TimeIntervalConfig;
use super::issue::Issue;

/// `[routing]`: what happens to events no top-level `[[route]]` matched, and the settings
/// every `[[route]]` inherits (Alertmanager's root route).
///
/// `default_sinks = [...]` sends them to those sinks; `default = "drop"` drops them (each
/// decision says so, and the caller counts them); `default = "all"`, or neither key, sends
/// them to every configured sink. Top-level routes do not inherit `default_sinks`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultRouteConfig {
    /// `"drop"` or `"all"`; exclusive with `default_sinks`.
    pub default: Option<Spanned<String>>,
    /// Sinks for unmatched events.
    pub default_sinks: Option<Vec<Spanned<String>>>,
    /// Grouping fields (`["..."]`: every field, so each finding alone; `[]`: one group for
    /// everything). Absent: no grouping.
    pub group_by: Option<Vec<Spanned<String>>>,
    /// How long a new group waits for more members (default 30s).
    pub group_wait: Option<Spanned<String>>,
    /// How long a group waits before sending members that arrived after its first message
    /// (default 5m).
    pub group_interval: Option<Spanned<String>>,
    /// How long until an unchanged group is sent again (default off; `"off"` turns an
    /// inherited one off).
    pub repeat_interval: Option<Spanned<String>>,
    /// Most members per group message (default 100).
    pub max_group_size: Option<Spanned<i64>>,
    /// Muted while any of these time intervals is active.
    pub mute_time_intervals: Option<Vec<Spanned<String>>>,
    /// Muted while none of these time intervals is active.
    pub active_time_intervals: Option<Vec<Spanned<String>>>,
}

/// A `[[route]]` (or nested `[[route.routes]]`) as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name used in decisions, digests and `route test` (default: its path, `route[1]`);
    /// unique, letters, digits, `-`, `_` and `.`; `default` is reserved.
    pub name: Option<Spanned<String>>,
    /// Matcher strings; all must hold (none: matches everything). Not inherited.
    #[serde(default)]
    pub matchers: Vec<Spanned<String>>,
    /// Sink names; absent: the parent's (a top-level route has none to inherit);
    /// `sinks = []` drops on purpose.
    pub sinks: Option<Vec<Spanned<String>>>,
    /// Keep trying later siblings after this route matched.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// Grouping fields (`["..."]`: each finding alone; `[]`: one group); absent: the
    /// parent's. Events are grouped only on routes whose effective `group_by` is set.
    pub group_by: Option<Vec<Spanned<String>>>,
    /// Absent: the parent's (default 30s).
    pub group_wait: Option<Spanned<String>>,
    /// Absent: the parent's (default 5m).
    pub group_interval: Option<Spanned<String>>,
    /// Absent: the parent's (default off); `"off"` turns an inherited one off.
    pub repeat_interval: Option<Spanned<String>>,
    /// Absent: the parent's (default 100).
    pub max_group_size: Option<Spanned<i64>>,
    /// Absent: the parent's.
    pub mute_time_intervals: Option<Vec<Spanned<String>>>,
    /// Absent: the parent's.
    pub active_time_intervals: Option<Vec<Spanned<String>>>,
    /// Child routes, tried in order when this one matched.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// The routing part of a config: `[routing]` and the `[[route]]` list.
#[derive(Clone, Debug, Default)]
pub struct RoutingConfig {
    /// `[routing]`, when present.
    pub routing: Option<DefaultRouteConfig>,
    /// `[[route]]`, in file order.
    pub routes: Vec<RouteConfig>,
}

impl RoutingConfig {
    /// Whether neither `[routing]` nor any `[[route]]` is present (today's behaviour: every
    /// event to every sink).
    pub fn is_empty(&self) -> bool {
        self.routing.is_none() && self.routes.is_empty()
    }
}

/// The routing-related tables of a whole config document.
#[derive(Clone, Debug, Default)]
pub struct RoutingDocument {
    /// `[routing]` and `[[route]]`.
    pub config: RoutingConfig,
    /// `[[time_interval]]`, in file order.
    pub time_intervals: Vec<TimeIntervalConfig>,
}

/// Reads `[routing]`, `[[route]]` and `[[time_interval]]` from a config document, ignoring
/// every other key. Spans are byte offsets into `text`. Every section is read on its own, so
/// all syntax and type errors come back at once.
pub fn parse_document(text: &str) -> Result<RoutingDocument, Vec<Issue>> {
    let root = DeTable::parse(text)
        .map_err(|e| vec![Issue::error(e.span(), "(syntax)", e.message().to_string())])?;
    let mut doc = RoutingDocument::default();
    let mut issues = Vec::new();
    for (key, value) in root.get_ref().iter() {
        let name = key.get_ref().as_ref();
        match name {
            "routing" => doc.config.routing = section(value, name, &mut issues),
            "route" | "time_interval" => {
                let Some(items) = value.get_ref().as_array() else {
                    issues.push(Issue::error(
                        Some(value.span()),
                        name,
                        format!("must be an array of tables: write each one as [[{name}]]"),
                    ));
                    continue;
                };
                for (i, item) in items.iter().enumerate() {
                    let key = format!("{name}[{i}]");
                    if name == "route" {
                        if let Some(r) = section(item, &key, &mut issues) {
                            doc.config.routes.push(r);
                        }
                    } else if let Some(t) = section(item, &key, &mut issues) {
                        doc.time_intervals.push(t);
                    }
                }
            }
            _ => {}
        }
    }
    if issues.is_empty() {
        Ok(doc)
    } else {
        Err(issues)
    }
}

/// Deserialises one table on its own; an error names the key path inside it.
pub fn section<T: serde::de::DeserializeOwned>(
    value: &Spanned<toml::de::DeValue<'_>>,
    key: &str,
    issues: &mut Vec<Issue>,
) -> Option<T> {
    match crate::section::deserialize_section(value, key) {
        Ok(v) => Some(v),
        Err((span, key, message)) => {
            issues.push(Issue::error(span, key, message));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::router::Router;

    /// The ```toml blocks of a file's module doc.
    fn doc_examples(source: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut current: Option<String> = None;
        for line in source.lines().filter_map(|l| l.strip_prefix("//!")) {
            let line = line.strip_prefix(' ').unwrap_or(line);
            match (&mut current, line.trim()) {
                (None, "```toml") => current = Some(String::new()),
                (Some(_), "```") => out.extend(current.take()),
                (Some(text), _) => {
                    text.push_str(line);
                    text.push('\n');
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn the_documented_examples_compile_without_warnings() {
        let mut examples = doc_examples(include_str!("config.rs"));
        assert_eq!(examples.len(), 1);
        let intervals = doc_examples(include_str!("interval.rs"));
        assert_eq!(intervals.len(), 1);
        // Use the documented time interval so it is not reported as unused.
        examples[0].push_str(&intervals[0]);
        examples[0].push_str("\n[[route]]\nmatchers = ['namespace=\"kube-system\"']\nsinks = [\"ops-chat\"]\nmute_time_intervals = [\"nights\"]\n");
        let doc = parse_document(&examples[0]).unwrap_or_else(|e| panic!("{e:#?}"));
        let sinks = ["ops-log", "pagerduty", "email", "ops-chat", "team-a-chat"];
        match Router::compile(&doc.config, &sinks, &doc.time_intervals) {
            Ok((_, warnings)) => assert!(warnings.is_empty(), "{warnings:#?}"),
            Err(e) => panic!("{e:#?}"),
        }
    }
}
