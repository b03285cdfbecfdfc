//! The normalised [`Finding`]: one shape for alerts, vulnerabilities, baseline risks and
//! container firewall alerts, with its severity, status and resolution scales, links and
//! [`fingerprint`]. Pure data. [`crate::sas::normalise`] builds findings from the raw Security
//! Center records by pure functions (no clock, no IO), so the same record always gives the same
//! finding and fingerprint.
//!
//! A finding is what the rest of the pipeline routes and renders, and it becomes the JSON body
//! of webhooks, so every field is documented and serialised with a stable name. It is not a
//! storage format: the store keeps its own versioned records.
//!
//! Mappings (implemented, and documented again, in [`crate::sas::normalise`]):
//!
//! | domain | severity | active | resolved |
//! |---|---|---|---|
//! | alerts | `serious`→critical, `suspicious`→high, `remind`→medium | 1 pending | 2 ignored, 4/16/32 handled, 8/604 false positive, 64 expired |
//! | vulnerabilities | `asap`→high, `later`→medium, `nntf`→low | 1,2,3,12 open; 4,5,6 fixing; 9,11 rolled back | 7,8 fixed, 10 ignored, 20 expired |
//! | baseline | `high`/`medium`/`low` | 1 failed, 2 verifying, 7 fixing | 3 passed and 8 fixed → fixed, 5 expired, 6 ignored |
//! | firewall | `RiskLevel` 3→high, 2→medium, 1→low, 0/-1→info | 0 unhandled | 1, 2 handled, 3 ignored |
//!
//! Unknown severities map to `info` and unknown status codes to active; the service's own value
//! is always kept in `native_severity`/`native_status`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::text::percent_encode;

/// Default Security Center console (China site; the international one is
/// `https://yundun.console.alibabacloud.com/?p=sas`).
pub const DEFAULT_CONSOLE_BASE: &str = "https://yundun.console.aliyun.com/?p=sas";
/// Default ACK console.
pub const DEFAULT_ACK_CONSOLE_BASE: &str = "https://cs.console.aliyun.com";
/// Alibaba Cloud Vulnerability Database search, safe for any CVE ID.
pub const AVD_SEARCH: &str = "https://avd.aliyun.com/search?q=";
/// Version tag mixed into every fingerprint; bump only with a migration of stored state.
const FINGERPRINT_VERSION: &str = "sasrelay/finding/v1";

/// Which Security Center feature a finding comes from (the ACK "Security Monitoring" sections).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    /// Alert events (`DescribeSuspEvents`).
    Alerts,
    /// Vulnerability records (`DescribeVulList`).
    Vulnerabilities,
    /// Baseline check results (`DescribeCheckWarnings`).
    Baseline,
    /// Container firewall alerts (`ListInterceptionHistory`).
    Firewall,
}

impl Domain {
    /// All four, in the order the ACK page shows them.
    pub const ALL: [Domain; 4] = [
        Domain::Alerts,
        Domain::Vulnerabilities,
        Domain::Baseline,
        Domain::Firewall,
    ];

    /// The lower-case name used in payloads, config and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Domain::Alerts => "alerts",
            Domain::Vulnerabilities => "vulnerabilities",
            Domain::Baseline => "baseline",
            Domain::Firewall => "firewall",
        }
    }
}

/// Normalised severity, ordered `Info < Low < Medium < High < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational, or the service gave no usable severity.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical (only alerts reach it: `serious`).
    Critical,
}

impl Severity {
    /// All five, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lower-case name used in payloads, config and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Whether a finding still needs attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Open, being fixed, or in an unknown state.
    Active,
    /// Closed; `resolution` says how.
    Resolved,
}

impl Status {
    /// The lower-case name used in payloads and matchers.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Resolved => "resolved",
        }
    }
}

/// How a resolved finding was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Handled by a person or by automatic defence.
    Handled,
    /// Ignored.
    Ignored,
    /// Marked a false positive (by a person, by a whitelist rule or by the system).
    FalsePositive,
    /// Fixed, or the check now passes.
    Fixed,
    /// Expired.
    Expired,
    /// No longer listed by Security Center, for no reason it reports: it left a full snapshot
    /// and (vulnerabilities) a lookup by id found no fixed, ignored or expired record — or the
    /// lookup failed.
    Gone,
}

impl Resolution {
    /// The snake_case name used in payloads and matchers (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Handled => "handled",
            Resolution::Ignored => "ignored",
            Resolution::FalsePositive => "false_positive",
            Resolution::Fixed => "fixed",
            Resolution::Expired => "expired",
            Resolution::Gone => "gone",
        }
    }
}

/// Kubernetes context. Absent values are `null`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Kubernetes {
    /// ACK cluster ID.
    pub cluster_id: Option<String>,
    /// Cluster name.
    pub cluster_name: Option<String>,
    /// Namespace.
    pub namespace: Option<String>,
    /// Pod.
    pub pod: Option<String>,
    /// Container ID.
    pub container_id: Option<String>,
    /// Container name.
    pub container_name: Option<String>,
    /// Image reference.
    pub image: Option<String>,
    /// Node name.
    pub node: Option<String>,
    /// Application (workload) name.
    pub app: Option<String>,
}

/// The host (ECS instance / node). Absent values are `null`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Host {
    /// ECS instance ID.
    pub instance_id: Option<String>,
    /// ECS instance name.
    pub instance_name: Option<String>,
    /// Public IP.
    pub public_ip: Option<String>,
    /// Private IP.
    pub private_ip: Option<String>,
    /// Security Center agent UUID.
    pub uuid: Option<String>,
    /// Region of the host, when the record says.
    pub region: Option<String>,
}

/// One labelled value, in the order the console shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    /// Label, e.g. `Command line`.
    pub name: String,
    /// Value as displayed.
    pub value: String,
}

/// What a link points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// A CVE in the Alibaba Cloud Vulnerability Database.
    Cve,
    /// A report produced by Security Center (deep file analysis).
    Report,
    /// The asset in the Security Center console.
    Asset,
    /// The Security Center console.
    Console,
    /// The cluster in the ACK console.
    Cluster,
}

/// A link for humans.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// What it points at.
    pub kind: LinkKind,
    /// Short label, e.g. `CVE-2024-1086`.
    pub label: String,
    /// Absolute URL.
    pub url: String,
}

/// A MITRE ATT&CK tactic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tactic {
    /// Tactic ID, e.g. `TA0040`.
    pub id: String,
    /// Name, e.g. `Impact` (empty when only the ID is known).
    pub name: String,
}

/// A finding's raw item: a JSON value, read lazily.
///
/// Read back from the store (serde_json), it is kept as its JSON text and parsed only when
/// something looks inside (`Deref` to [`Value`]): delivering to a webhook copies the text
/// into the body as it is ([`Raw::as_serialize_verbatim`]), which spares the delivery path
/// building and dropping a map of every key the service sent (about a third of a delivery's
/// decode and re-encode). Built from a [`Value`], it is that value. Serialising it through
/// `Serialize` always goes through the value, so any serializer (templates included) sees a
/// plain JSON value.
#[derive(Default)]
pub struct Raw {
    /// The JSON text as read, when it was read from JSON.
    text: Option<Box<serde_json::value::RawValue>>,
    /// The value: given, or parsed from `text` on first use (`Null` if the text does not parse).
    value: std::sync::OnceLock<Value>,
}

impl Raw {
    /// What a serde_json serializer writes as the text read (verbatim), or as the value.
    pub fn as_serialize_verbatim(&self) -> RawVerbatim<'_> {
        RawVerbatim(self)
    }
}

impl From<Value> for Raw {
    fn from(value: Value) -> Raw {
        Raw {
            text: None,
            value: std::sync::OnceLock::from(value),
        }
    }
}

impl std::ops::Deref for Raw {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.value.get_or_init(|| {
            self.text
                .as_ref()
                .and_then(|t| serde_json::from_str(t.get()).ok())
                .unwrap_or(Value::Null)
        })
    }
}

impl Clone for Raw {
    fn clone(&self) -> Raw {
        Raw {
            text: self.text.clone(),
            value: self.value.clone(),
        }
    }
}

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl PartialEq for Raw {
    fn eq(&self, other: &Raw) -> bool {
        **self == **other
    }
}

impl PartialEq<Value> for Raw {
    fn eq(&self, other: &Value) -> bool {
        **self == *other
    }
}

impl Serialize for Raw {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

/// See [`Raw::as_serialize_verbatim`].
pub struct RawVerbatim<'a>(&'a Raw);

impl Serialize for RawVerbatim<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (&self.0.text, self.0.value.get()) {
            (_, Some(value)) => value.serialize(serializer),
            (Some(text), None) => text.serialize(serializer),
            (None, None) => Value::Null.serialize(serializer),
        }
    }
}

/// serde_json's name for its raw-value protocol: asked for a newtype struct of this name, its
/// deserializers hand over the value's text instead of parsing it.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Raw, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Raw;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }

            // serde_json (from text, or from a `Value`): the text.
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Raw, A::Error> {
                let text = Box::<serde_json::value::RawValue>::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(Raw {
                    text: Some(text),
                    value: std::sync::OnceLock::new(),
                })
            }

            // Any other deserializer (serde's buffered content, for one): the value.
            fn visit_newtype_struct<D: serde::Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<Raw, D::Error> {
                Value::deserialize(deserializer).map(Raw::from)
            }
        }

        deserializer.deserialize_newtype_struct(RAW_VALUE_TOKEN, Visitor)
    }
}

/// One normalised finding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Which feature it comes from.
    pub domain: Domain,
    /// Domain-native identity: `alert:<Id>`, `vul:<PrimaryId>`, `baseline:<CheckWarningId>`,
    /// `firewall:<Id>`; when the ID is missing, the natural key joined with `/`.
    pub id: String,
    /// Lowercase hex SHA-256 over the dedup scope, the domain and the dedup key (see
    /// [`fingerprint`]). Stable across polls and restarts.
    pub fingerprint: String,
    /// Normalised severity.
    pub severity: Severity,
    /// Severity as the service sent it (`serious`, `asap`, `high`, `3`, ...).
    pub native_severity: String,
    /// Active or resolved.
    pub status: Status,
    /// How it was resolved (`null` while active).
    pub resolution: Option<Resolution>,
    /// Status code as the service sent it (empty when absent).
    pub native_status: String,
    /// One-line title.
    pub title: String,
    /// Longer description (may be empty).
    pub description: String,
    /// Category as the console names it (alert type, vulnerability type, baseline category,
    /// firewall alert name).
    pub alert_type: String,
    /// Kubernetes context.
    pub kubernetes: Kubernetes,
    /// Host context.
    pub host: Host,
    /// First occurrence (RFC 3339, UTC), when known.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub first_seen: Option<OffsetDateTime>,
    /// Latest occurrence or scan (RFC 3339, UTC), when known.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_seen: Option<OffsetDateTime>,
    /// Evidence as the console lists it (labels may repeat, e.g. one block per package).
    pub details: Vec<Detail>,
    /// Links: CVEs, reports, asset, console, cluster.
    pub links: Vec<Link>,
    /// CVE IDs.
    pub cves: Vec<String>,
    /// ATT&CK tactics (alerts).
    pub tactics: Vec<Tactic>,
    /// Configured source name.
    pub source: String,
    /// Configured region.
    pub region: String,
    /// The record exactly as the service sent it (baseline: `{risk, machine, check, detail}`).
    pub raw: Raw,
}

/// The ACK console overview of a cluster.
pub fn cluster_url(ack_console_base: &str, cluster_id: &str) -> String {
    format!(
        "{}/#/k8s/cluster/{}/v2/info/overview",
        ack_console_base.trim_end_matches('/'),
        percent_encode(cluster_id)
    )
}

/// The AVD search page of a CVE.
pub fn cve_url(cve: &str) -> String {
    format!("{AVD_SEARCH}{}", percent_encode(cve))
}

/// Lowercase hex SHA-256 over `FINGERPRINT_VERSION`, `scope`, the domain name and `key`, each
/// field prefixed with its byte length as a big-endian u64, so no two different field lists
/// encode to the same bytes.
pub fn fingerprint(scope: &str, domain: Domain, key: &[&str]) -> String {
    let mut h = Sha256::new();
    for field in [FINGERPRINT_VERSION, scope, domain.as_str()]
        .iter()
        .chain(key.iter())
    {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_item_read_from_json_is_kept_as_text_until_looked_into() {
        let text = r#"{"Zeta":1,"Alpha":{"x":[1,2.5,"\u0007"]},"Id":752312}"#;
        let raw: Raw = serde_json::from_str(text).unwrap();
        assert!(raw.value.get().is_none(), "not parsed on read");
        // Verbatim: the same bytes, key order included.
        let out = serde_json::to_string(&raw.as_serialize_verbatim()).unwrap();
        assert_eq!(out, text);
        // Looked into: parsed once, and equal to what it says.
        assert_eq!(raw["Id"], 752312);
        assert!(raw.value.get().is_some());
        assert_eq!(raw, serde_json::from_str::<Value>(text).unwrap());
        // Any serializer sees the value (a template engine, a `Value`).
        let fresh: Raw = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_value(&fresh).unwrap()["Alpha"]["x"][1], 2.5);
        assert_eq!(serde_json::to_string(&fresh).unwrap(), text);
    }

    #[test]
    fn a_raw_item_reads_from_a_value_and_from_buffered_content() {
        let value = serde_json::json!({"Name": "x", "Nested": {"type": "t"}});
        let from_value: Raw = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(from_value, value);
        let built = Raw::from(value.clone());
        assert_eq!(
            serde_json::to_string(&built.as_serialize_verbatim()).unwrap(),
            value.to_string()
        );
        // serde's untagged and internally tagged enums buffer their input first.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Item { raw: Raw },
        }
        let Either::Item { raw } = serde_json::from_str(&format!("{{\"raw\":{value}}}")).unwrap();
        assert_eq!(raw, value);
        let null: Raw = serde_json::from_str("null").unwrap();
        assert_eq!(null, Value::Null);
    }

    #[test]
    fn severity_is_ordered() {
        assert!(Severity::Info < Severity::Low);
        assert!(Severity::Low < Severity::Medium);
        assert!(Severity::Medium < Severity::High);
        assert!(Severity::High < Severity::Critical);
    }

    #[test]
    fn fingerprint_fields_cannot_slide_into_each_other() {
        let a = fingerprint("s", Domain::Vulnerabilities, &["natural", "ab", "c"]);
        let b = fingerprint("s", Domain::Vulnerabilities, &["natural", "a", "bc"]);
        assert_ne!(a, b);
        let c = fingerprint("s", Domain::Alerts, &["id", "1"]);
        let d = fingerprint("s", Domain::Firewall, &["id", "1"]);
        assert_ne!(c, d);
        assert_ne!(
            fingerprint("s1", Domain::Alerts, &["id", "1"]),
            fingerprint("s", Domain::Alerts, &["1id", "1"])
        );
        assert_eq!(c.len(), 64);
        assert!(c.chars().all(|ch| matches!(ch, '0'..='9' | 'a'..='f')));
    }

    #[test]
    fn fingerprint_is_pinned() {
        // A change here changes every stored fingerprint: only with a migration.
        let mut h = Sha256::new();
        for f in ["sasrelay/finding/v1", "prod", "alerts", "id", "752312"] {
            h.update((f.len() as u64).to_be_bytes());
            h.update(f.as_bytes());
        }
        assert_eq!(
            fingerprint("prod", Domain::Alerts, &["id", "752312"]),
            hex::encode(h.finalize())
        );
    }
}
