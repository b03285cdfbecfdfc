//! What the store keeps per finding to follow its lifecycle: a small, versioned [`Record`], never
//! the finding itself. [`crate::pipeline::lifecycle`] decides how records change; the store
//! keeps them. Pure data.

use serde::{Deserialize, Serialize};

use crate::finding::{Domain, Finding, Host, Kubernetes, Resolution, Severity, Status};

/// Version of [`Record`]'s stored form.
pub const RECORD_SCHEMA: u32 = 1;

/// Whether a tracked finding is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordStatus {
    /// Open: its `new` event was enqueued (or it was counted into a first-start summary).
    Active,
    /// Closed: its `resolved` event was enqueued, or it was first seen closed.
    Resolved,
}

/// What the store keeps per finding: small, versioned, never the finding itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Schema version ([`RECORD_SCHEMA`]).
    pub v: u32,
    /// The finding's id (`alert:752312`), for operators reading the store.
    pub id: String,
    /// Open or closed.
    pub status: RecordStatus,
    /// Lifecycles so far: 1 for the first, +1 each time a resolved finding re-opens.
    pub generation: u64,
    /// When sasrelay first observed it (unix ms).
    pub first_seen_ms: i64,
    /// When sasrelay last recorded a change (unix ms).
    pub last_seen_ms: i64,
    /// The occurrence marker last reported (see [`occurrence`](crate::pipeline::lifecycle::occurrence)).
    pub occurrence: String,
    /// When it was recorded resolved (unix ms); drives pruning.
    #[serde(default)]
    pub resolved_at_ms: Option<i64>,
    /// How it was resolved.
    #[serde(default)]
    pub resolution: Option<Resolution>,
    /// What a `resolved` event needs when the finding has left the API (snapshot domains).
    pub last: Remembered,
    /// Snapshot domains: complete sweeps in a row that did not list this open finding. It
    /// resolves as `gone` only once enough sweeps agree (see
    /// [`confirm_gone`](crate::pipeline::lifecycle::confirm_gone)); listed again, it is 0.
    #[serde(default, skip_serializing_if = "is_default")]
    pub absent_sweeps: u32,
}

/// The part of a finding kept to describe it after Security Center stops listing it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    /// Domain.
    pub domain: Domain,
    /// Title.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// Normalised severity.
    pub severity: Severity,
    /// Native severity.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub native_severity: String,
    /// Category.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alert_type: String,
    /// Kubernetes context.
    #[serde(default, skip_serializing_if = "is_default")]
    pub kubernetes: Kubernetes,
    /// Host context.
    #[serde(default, skip_serializing_if = "is_default")]
    pub host: Host,
    /// Source name.
    pub source: String,
    /// Region.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl Remembered {
    /// Nothing known but the domain and source (records written by tools and tests).
    pub fn unknown(domain: Domain, source: &str) -> Self {
        Remembered {
            domain,
            title: String::new(),
            severity: Severity::Info,
            native_severity: String::new(),
            alert_type: String::new(),
            kubernetes: Kubernetes::default(),
            host: Host::default(),
            source: source.to_string(),
            region: String::new(),
        }
    }

    /// Remembers `f`.
    pub fn of(f: &Finding) -> Self {
        Remembered {
            domain: f.domain,
            title: f.title.clone(),
            severity: f.severity,
            native_severity: f.native_severity.clone(),
            alert_type: f.alert_type.clone(),
            kubernetes: f.kubernetes.clone(),
            host: f.host.clone(),
            source: f.source.clone(),
            region: f.region.clone(),
        }
    }

    /// A finding rebuilt from what was remembered, closed as `gone`.
    pub fn to_gone_finding(&self, fingerprint: &str, id: &str) -> Finding {
        Finding {
            domain: self.domain,
            id: id.to_string(),
            fingerprint: fingerprint.to_string(),
            severity: self.severity,
            native_severity: self.native_severity.clone(),
            status: Status::Resolved,
            resolution: Some(Resolution::Gone),
            native_status: String::new(),
            title: self.title.clone(),
            description: "No longer listed by Security Center.".to_string(),
            alert_type: self.alert_type.clone(),
            kubernetes: self.kubernetes.clone(),
            host: self.host.clone(),
            first_seen: None,
            last_seen: None,
            details: Vec::new(),
            links: Vec::new(),
            cves: Vec::new(),
            tactics: Vec::new(),
            source: self.source.clone(),
            region: self.region.clone(),
            raw: serde_json::Value::Null.into(),
        }
    }
}

/// When a finding that left a snapshot is believed gone: one sweep that misses it is not
/// evidence enough (an odd answer, a short listing), so it must be missed by several complete
/// sweeps in a row; and a sweep in which a large share of what is open vanishes at once is
/// held longer, since that looks more like a broken answer than like a mass fix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GoneRule {
    /// Complete sweeps in a row that must miss a finding (at least 1).
    pub sweeps: u32,
    /// A sweep that would resolve more than this share of the open findings...
    pub hold_share: f64,
    /// ... and at least this many of them, is a mass disappearance...
    pub hold_at_least: usize,
    /// ... which needs this many sweeps in a row instead.
    pub hold_sweeps: u32,
}

impl Default for GoneRule {
    fn default() -> Self {
        GoneRule {
            sweeps: 2,
            hold_share: 0.5,
            hold_at_least: 20,
            hold_sweeps: 4,
        }
    }
}

impl GoneRule {
    /// The verdict for one complete sweep that missed `vanished` of the `open` (active) findings
    /// known before it: how many sweeps in a row must miss a finding, and whether this is a
    /// mass disappearance.
    pub fn judge(&self, vanished: usize, open: usize) -> GoneVerdict {
        let mass =
            vanished >= self.hold_at_least && vanished as f64 > self.hold_share * open as f64;
        GoneVerdict {
            needed: if mass { self.hold_sweeps } else { self.sweeps },
            mass,
        }
    }
}

/// What [`GoneRule::judge`] decided for one sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoneVerdict {
    /// Complete sweeps in a row that must miss a finding before it resolves as `gone`.
    pub needed: u32,
    /// The sweep's disappearances are a mass disappearance ([`GoneRule::hold_share`]).
    pub mass: bool,
}
