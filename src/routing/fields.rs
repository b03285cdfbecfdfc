//! The matchable fields: one table ([`FIELDS`]: name, doc, accessor) and the routing
//! [`Subject`] built from an [`Event`] by running every accessor once.
//!
//! Alertmanager semantics: an absent value is the empty string. Multi-valued fields (`ip`,
//! `cve`, `tactic`) hold a list; an empty list behaves as one empty value. `detail.<Name>` reads
//! the first finding detail with that exact label.

use std::fmt;

use crate::event::Event;
use crate::finding::Severity;

/// One matchable field.
pub struct FieldDef {
    /// Name used in matchers and `group_by`, e.g. `namespace`.
    pub name: &'static str,
    /// One line for `route test` and error messages.
    pub doc: &'static str,
    /// Whether it may hold several values.
    pub multi: bool,
    /// The closed set of values it can take, when there is one (checked in `=` / `!=`).
    pub values: Option<&'static [&'static str]>,
    /// Reads the values from an event (empty: absent).
    pub get: fn(&Event) -> Vec<String>,
}

impl fmt::Debug for FieldDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldDef")
            .field("name", &self.name)
            .finish()
    }
}

/// The prefix of detail fields: `detail.Command line`.
pub const DETAIL_PREFIX: &str = "detail.";

const DOMAINS: &[&str] = &["alerts", "vulnerabilities", "baseline", "firewall"];
const KINDS: &[&str] = &["new", "recurring", "resolved", "summary", "reminder"];
const SEVERITIES: &[&str] = &["info", "low", "medium", "high", "critical"];
const STATUSES: &[&str] = &["active", "resolved"];
const RESOLUTIONS: &[&str] = &[
    "handled",
    "ignored",
    "false_positive",
    "fixed",
    "expired",
    "gone",
];

fn one(s: &str) -> Vec<String> {
    let s = s.trim();
    if s.is_empty() {
        Vec::new()
    } else {
        vec![s.to_string()]
    }
}

fn opt(s: &Option<String>) -> Vec<String> {
    s.as_deref().map(one).unwrap_or_default()
}

fn finding<T>(e: &Event, f: impl Fn(&crate::finding::Finding) -> T) -> Option<T> {
    e.finding.as_ref().map(f)
}

/// Parses a severity name (`info`, `low`, `medium`, `high`, `critical`).
pub fn parse_severity(s: &str) -> Option<Severity> {
    Severity::ALL.into_iter().find(|v| v.as_str() == s)
}

/// Every matchable field, in the order `route test` lists them.
pub static FIELDS: &[FieldDef] = &[
    FieldDef {
        name: "domain",
        doc: "alerts, vulnerabilities, baseline or firewall",
        multi: false,
        values: Some(DOMAINS),
        get: |e| one(e.domain.as_str()),
    },
    FieldDef {
        name: "kind",
        doc: "event kind: new, recurring, resolved or summary",
        multi: false,
        values: Some(KINDS),
        get: |e| one(e.kind.as_str()),
    },
    FieldDef {
        name: "severity",
        doc: "info < low < medium < high < critical (also >=, >, <=, <); empty for summaries",
        multi: false,
        values: Some(SEVERITIES),
        get: |e| finding(e, |f| one(f.severity.as_str())).unwrap_or_default(),
    },
    FieldDef {
        name: "source",
        doc: "configured source name",
        multi: false,
        values: None,
        get: |e| one(&e.source),
    },
    FieldDef {
        name: "region",
        doc: "configured region of the source",
        multi: false,
        values: None,
        get: |e| finding(e, |f| one(&f.region)).unwrap_or_default(),
    },
    FieldDef {
        name: "cluster",
        doc: "ACK cluster id",
        multi: false,
        values: None,
        get: |e| finding(e, |f| opt(&f.kubernetes.cluster_id)).unwrap_or_default(),
    },
    FieldDef {
        name: "cluster_name",
        doc: "ACK cluster name",
        multi: false,
        values: None,
        get: |e| finding(e, |f| opt(&f.kubernetes.cluster_name)).unwrap_or_default(),
    },
    FieldDef {
        name: "namespace",
        doc: "Kubernetes namespace",
        multi: false,
        values: None,
        get: |e| finding(e, |f| opt(&f.kubernetes.namespace)).unwrap_or_default(),
    },
    FieldDef {
        name: "pod",
        doc: "pod name",
        multi: false,
        values: None,
        get: |e| finding(e, |f| opt(&f.kubernetes.pod)).unwrap_or_default(),
    },
    FieldDef {
        name: "container",
        doc: "container name",
        multi: false,
        values: None,
        get: |e| finding(e, |f| opt(&f.kubernetes.container_name)).unwrap_or_default(),
    },
    FieldDef {
        name: "image",
        doc: "image reference",
        multi: false,
        values: None,
        get: |e| finding(e, |f| opt(&f.kubernetes.image)).unwrap_or_default(),
    },
    FieldDef {
        name: "node",
        doc: "node name",
        multi: false,
        values: None,
        get: |e| finding(e, |f| opt(&f.kubernetes.node)).unwrap_or_default(),
    },
    FieldDef {
        name: "app",
        doc: "application (workload) name",
        multi: false,
        values: None,
        get: |e| finding(e, |f| opt(&f.kubernetes.app)).unwrap_or_default(),
    },
    FieldDef {
        name: "alert_type",
        doc: "category as the console names it",
        multi: false,
        values: None,
        get: |e| finding(e, |f| one(&f.alert_type)).unwrap_or_default(),
    },
    FieldDef {
        name: "title",
        doc: "one-line title",
        multi: false,
        values: None,
        get: |e| finding(e, |f| one(&f.title)).unwrap_or_default(),
    },
    FieldDef {
        name: "status",
        doc: "active or resolved",
        multi: false,
        values: Some(STATUSES),
        get: |e| finding(e, |f| one(f.status.as_str())).unwrap_or_default(),
    },
    FieldDef {
        name: "resolution",
        doc: "how it was resolved: handled, ignored, false_positive, fixed, expired, gone",
        multi: false,
        values: Some(RESOLUTIONS),
        get: |e| {
            e.resolution
                .or_else(|| e.finding.as_ref().and_then(|f| f.resolution))
                .map(|r| one(r.as_str()))
                .unwrap_or_default()
        },
    },
    FieldDef {
        name: "instance_id",
        doc: "ECS instance id",
        multi: false,
        values: None,
        get: |e| finding(e, |f| opt(&f.host.instance_id)).unwrap_or_default(),
    },
    FieldDef {
        name: "host",
        doc: "ECS instance name",
        multi: false,
        values: None,
        get: |e| finding(e, |f| opt(&f.host.instance_name)).unwrap_or_default(),
    },
    FieldDef {
        name: "ip",
        doc: "private and public IP (multi-valued)",
        multi: true,
        values: None,
        get: |e| {
            finding(e, |f| {
                let mut v = opt(&f.host.private_ip);
                v.extend(opt(&f.host.public_ip));
                v
            })
            .unwrap_or_default()
        },
    },
    FieldDef {
        name: "cve",
        doc: "CVE ids (multi-valued)",
        multi: true,
        values: None,
        get: |e| finding(e, |f| f.cves.iter().flat_map(|c| one(c)).collect()).unwrap_or_default(),
    },
    FieldDef {
        name: "tactic",
        doc: "ATT&CK tactic ids and names, e.g. TA0004 or Privilege Escalation (multi-valued)",
        multi: true,
        values: None,
        get: |e| {
            finding(e, |f| {
                f.tactics
                    .iter()
                    .flat_map(|t| one(&t.id).into_iter().chain(one(&t.name)))
                    .collect()
            })
            .unwrap_or_default()
        },
    },
    FieldDef {
        name: "fingerprint",
        doc: "the finding's fingerprint (one finding; empty for summaries)",
        multi: false,
        values: None,
        get: |e| finding(e, |f| one(&f.fingerprint)).unwrap_or_default(),
    },
];

/// The names of every field, for error messages: `domain, kind, …, detail.<name>`.
pub fn field_names() -> String {
    let mut s: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
    s.push("detail.<name>");
    s.join(", ")
}

/// A field a matcher or `group_by` refers to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// An entry of [`FIELDS`], by index ([`Field::parse`] makes valid ones; an index out of
    /// range has no values and is named `(unknown)`).
    Known(usize),
    /// `detail.<name>`: the first finding detail with that label.
    Detail(String),
}

impl Field {
    /// Looks a field up by name; the error lists the known fields.
    pub fn parse(name: &str) -> Result<Field, String> {
        if let Some(i) = FIELDS.iter().position(|f| f.name == name) {
            return Ok(Field::Known(i));
        }
        if let Some(label) = name.strip_prefix(DETAIL_PREFIX) {
            if label.is_empty() {
                return Err("`detail.` needs a detail name, e.g. `detail.Command line`".into());
            }
            return Ok(Field::Detail(label.to_string()));
        }
        Err(format!(
            "unknown field `{name}`; known fields: {}",
            field_names()
        ))
    }

    /// The `severity` field.
    pub fn severity() -> Field {
        Field::Known(SEVERITY)
    }

    /// Its name as written in config.
    pub fn name(&self) -> String {
        match self {
            Field::Known(i) => FIELDS.get(*i).map_or("(unknown)", |f| f.name).to_string(),
            Field::Detail(d) => format!("{DETAIL_PREFIX}{d}"),
        }
    }

    /// Its table entry (`None` for details).
    pub fn def(&self) -> Option<&'static FieldDef> {
        match self {
            Field::Known(i) => FIELDS.get(*i),
            Field::Detail(_) => None,
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

const SEVERITY: usize = 2;

/// What routing sees of an event: every field's values, and the finding's details.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    /// Values by index of [`FIELDS`] (an empty list: absent).
    values: Vec<Vec<String>>,
    /// Finding details, in order (label, value).
    details: Vec<(String, String)>,
}

impl Subject {
    /// A subject with every field absent.
    pub fn empty() -> Subject {
        Subject {
            values: vec![Vec::new(); FIELDS.len()],
            details: Vec::new(),
        }
    }

    /// The subject of an event.
    pub fn from_event(event: &Event) -> Subject {
        Subject {
            values: FIELDS.iter().map(|f| (f.get)(event)).collect(),
            details: event
                .finding
                .as_ref()
                .map(|f| {
                    f.details
                        .iter()
                        .map(|d| (d.name.clone(), d.value.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Sets a field by name (for `route test` and tests); a multi-valued field gets one more
    /// value, a single-valued one is replaced; `detail.X` adds a detail. A field with a closed
    /// set of values (`severity`, `kind`, …) accepts only those, or empty for absent.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        match Field::parse(name)? {
            Field::Known(i) => {
                let Some(def) = FIELDS.get(i) else {
                    return Err(format!("unknown field `{name}`"));
                };
                if let Some(allowed) = def.values
                    && !value.is_empty()
                    && !allowed.contains(&value)
                {
                    return Err(format!(
                        "unknown {name} `{value}`; expected one of: {}",
                        allowed.join(", ")
                    ));
                }
                if self.values.len() < FIELDS.len() {
                    self.values.resize(FIELDS.len(), Vec::new());
                }
                let slot = &mut self.values[i];
                if !def.multi {
                    slot.clear();
                }
                if !value.is_empty() {
                    slot.push(value.to_string());
                }
            }
            Field::Detail(label) => self.details.push((label, value.to_string())),
        }
        Ok(())
    }

    /// Builder form of [`Subject::set`].
    pub fn with(mut self, name: &str, value: &str) -> Result<Subject, String> {
        self.set(name, value)?;
        Ok(self)
    }

    /// The values of a field (empty: absent).
    pub fn values(&self, field: &Field) -> &[String] {
        match field {
            Field::Known(i) => self.values.get(*i).map_or(&[], |v| v.as_slice()),
            Field::Detail(label) => self
                .details
                .iter()
                .find(|(n, _)| n == label)
                .map_or(&[], |(_, v)| std::slice::from_ref(v)),
        }
    }

    /// The values of a field joined for display and group keys: `a, b`; empty when absent.
    pub fn value(&self, field: &Field) -> String {
        self.values(field).join(", ")
    }

    /// The severity, when the subject has a known one.
    pub fn severity(&self) -> Option<Severity> {
        self.values(&Field::severity())
            .first()
            .and_then(|s| parse_severity(s))
    }

    /// Every field with a value, by name (for `group_by = ["..."]`: the group of one finding,
    /// since `fingerprint` is among them).
    pub fn present(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        FIELDS.iter().enumerate().filter_map(|(i, f)| {
            let v = self.values.get(i)?;
            (!v.is_empty()).then(|| (f.name, v.join(", ")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_consistent() {
        assert_eq!(FIELDS[SEVERITY].name, "severity");
        let mut names: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FIELDS.len(), "duplicate field names");
        for f in FIELDS {
            assert!(
                f.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                f.name
            );
        }
    }

    #[test]
    fn unknown_fields_list_the_known_ones() {
        let e = Field::parse("clutser").unwrap_err();
        assert!(
            e.starts_with("unknown field `clutser`; known fields: domain, kind, severity"),
            "{e}"
        );
        assert!(e.ends_with("detail.<name>"), "{e}");
        assert_eq!(
            Field::parse("detail.Command line"),
            Ok(Field::Detail("Command line".into()))
        );
        assert!(Field::parse("detail.").is_err());
    }

    #[test]
    fn set_replaces_single_and_appends_multi_values() {
        let s = Subject::empty()
            .with("cluster", "a")
            .and_then(|s| s.with("cluster", "b"))
            .and_then(|s| s.with("cve", "CVE-1"))
            .and_then(|s| s.with("cve", "CVE-2"))
            .unwrap();
        assert_eq!(s.values(&Field::parse("cluster").unwrap()), ["b"]);
        assert_eq!(s.value(&Field::parse("cve").unwrap()), "CVE-1, CVE-2");
        assert!(s.clone().with("nope", "x").is_err());
        assert_eq!(
            s.with("severity", "hihg").unwrap_err(),
            "unknown severity `hihg`; expected one of: info, low, medium, high, critical"
        );
    }
}
