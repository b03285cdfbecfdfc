//! Deterministic fault injection: "the next N calls (of this action) fail like this". Faults are
//! count-based, never random, so a test can say exactly which call is throttled and which succeeds.
//!
//! Faults apply only to authenticated calls of known actions (a throttled request is a valid one),
//! in the order they were injected; each matching call consumes one count of the first matching
//! rule.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;
use http_body::{Frame, SizeHint};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Pending fault rules at most.
pub const MAX_FAULTS: usize = 256;
/// Largest count one rule may carry.
pub const MAX_FAULT_COUNT: u32 = 10_000;
/// Longest injected delay.
pub const MAX_DELAY_MS: u64 = 120_000;

fn one() -> u32 {
    1
}

fn throttling_code() -> String {
    "Throttling.User".into()
}

fn default_retry_after() -> Option<u64> {
    Some(1_000)
}

/// What an injected fault does to a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// A throttling error (`Throttling.User` by default, HTTP 400) with an `x-acs-retry-after`
    /// header in milliseconds (1000 by default; `null` sends none).
    Throttling {
        /// `Throttling.User`, `Throttling.Api` or `Throttling`.
        #[serde(default = "throttling_code")]
        code: String,
        /// Value of `x-acs-retry-after`.
        #[serde(default = "default_retry_after")]
        retry_after_ms: Option<u64>,
        /// HTTP status override (docs/sas-api.md §7.5 reports 429 too).
        #[serde(default)]
        status: Option<u16>,
    },
    /// 503 `ServiceUnavailable`.
    ServiceUnavailable,
    /// 500 `InternalError`.
    InternalError,
    /// Any error code; the status defaults to the code's status in `errors/index.json`.
    Error {
        /// Error code, e.g. `NoPermission`.
        code: String,
        /// HTTP status override.
        #[serde(default)]
        status: Option<u16>,
        /// Message override.
        #[serde(default)]
        message: Option<String>,
    },
    /// The normal answer, after a delay.
    Slow {
        /// Delay in milliseconds (at most 120 000).
        delay_ms: u64,
    },
    /// `Content-Length` announces the whole body, only a prefix is sent, then the connection closes.
    Truncated {
        /// Bytes of the body sent (default half).
        #[serde(default)]
        keep_bytes: Option<usize>,
    },
    /// A complete HTTP response whose body is only a prefix of the JSON (so it does not parse).
    ShortBody {
        /// Bytes kept (default half).
        #[serde(default)]
        keep_bytes: Option<usize>,
    },
    /// HTTP 200 with an HTML gateway page instead of JSON.
    NotJson,
    /// HTTP 200 with valid JSON whose numbers and booleans became strings and whose lists became
    /// objects.
    WrongTypes,
    /// HTTP 200 with nothing but the `RequestId`: the list key and the paging metadata are
    /// missing (what a misbehaving endpoint or proxy was seen to answer).
    ListMissing,
    /// HTTP 200 whose body is an error: `RequestId`, `Code` and `Message` at the top level.
    CodeInOk {
        /// The error code inside the 200.
        #[serde(default = "service_unavailable")]
        code: String,
    },
    /// HTTP 200 with the normal answer, except that the listed record whose identity (`Id`,
    /// `PrimaryId`, `CheckWarningId`, `RiskId`) is `id` carries `"Poison": 1e400`, a number no
    /// JSON parser holding `f64` accepts: one poisoned record in an honest page.
    PoisonRecord {
        /// The identity of the record to poison.
        id: i64,
    },
    /// HTTP 200 with the normal answer, every listed record's identity raised by 2^63 (sent as
    /// an unsigned number past `i64::MAX`).
    HighIds,
    /// HTTP 200 with the normal answer, except that every list in it holds `records` small
    /// records (`{"Id": n}`) whatever `PageSize` asked for: a page no honest server sends.
    OversizedPage {
        /// Records in the list (at most [`MAX_OVERSIZED_RECORDS`]).
        records: usize,
    },
}

/// Most records an oversized page may hold (about 13 MB of JSON).
pub const MAX_OVERSIZED_RECORDS: usize = 1_000_000;

/// The identity fields a poisoned or raised record is found by.
const IDENTITY_KEYS: [&str; 4] = ["Id", "PrimaryId", "CheckWarningId", "RiskId"];

/// Placeholder for the poisoned number (or an oversized list), swapped for the raw text after
/// serialisation.
const POISON_MARK: &str = "__sasrelay_poison__";

/// The records of every top-level list of an answer.
fn listed_records(body: &mut Value) -> impl Iterator<Item = &mut serde_json::Map<String, Value>> {
    body.as_object_mut()
        .into_iter()
        .flat_map(|top| top.values_mut())
        .filter_map(Value::as_array_mut)
        .flat_map(|list| list.iter_mut())
        .filter_map(Value::as_object_mut)
}

/// The answer's bytes with the record identified by `id` poisoned (see
/// [`FaultKind::PoisonRecord`]).
pub(crate) fn poisoned(mut body: Value, id: i64) -> Vec<u8> {
    for record in listed_records(&mut body) {
        let hit = IDENTITY_KEYS
            .iter()
            .any(|k| record.get(*k).and_then(Value::as_i64) == Some(id));
        if hit {
            record.insert("Poison".into(), Value::from(POISON_MARK));
        }
    }
    let text = serde_json::to_string(&body).unwrap_or_default();
    text.replace(&format!("\"{POISON_MARK}\""), "1e400")
        .into_bytes()
}

/// The answer's bytes with every top-level list replaced by `records` records `{"Id": n}` (see
/// [`FaultKind::OversizedPage`]), written as text: the simulator itself never holds them as
/// values.
pub(crate) fn oversized(mut body: Value, records: usize) -> Vec<u8> {
    if let Some(top) = body.as_object_mut() {
        for v in top.values_mut().filter(|v| v.is_array()) {
            *v = Value::from(POISON_MARK);
        }
    }
    let mut list = String::with_capacity(records * 14 + 2);
    list.push('[');
    for n in 0..records {
        if n > 0 {
            list.push(',');
        }
        list.push_str(&format!("{{\"Id\":{}}}", n + 1));
    }
    list.push(']');
    serde_json::to_string(&body)
        .unwrap_or_default()
        .replace(&format!("\"{POISON_MARK}\""), &list)
        .into_bytes()
}

/// The answer with every listed identity raised by 2^63 (see [`FaultKind::HighIds`]).
pub(crate) fn high_ids(mut body: Value) -> Value {
    for record in listed_records(&mut body) {
        for key in IDENTITY_KEYS {
            if let Some(id) = record.get(key).and_then(Value::as_i64)
                && id >= 0
            {
                record.insert(key.into(), Value::from(id as u64 | (1 << 63)));
            }
        }
    }
    body
}

fn service_unavailable() -> String {
    "ServiceUnavailable".into()
}

/// One injected fault rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// Only calls of this action; `None` matches every action.
    #[serde(default)]
    pub action: Option<String>,
    /// Only calls that carry this parameter with a non-blank value (e.g. `Ids`, to fail a
    /// lookup by id but not the listing of the same action); `None` matches every call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// With `param`: only calls whose value of it is exactly this (e.g. `ClusterId` = one
    /// cluster, to fail that cluster's listing and no other).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// How many matching calls it affects (1..=10 000).
    #[serde(default = "one")]
    pub count: u32,
    /// What happens.
    #[serde(flatten)]
    pub kind: FaultKind,
}

impl FaultSpec {
    /// A fault for the next matching call of any action.
    pub fn new(kind: FaultKind) -> Self {
        FaultSpec {
            action: None,
            param: None,
            value: None,
            count: 1,
            kind,
        }
    }

    /// The next `count` matching calls.
    pub fn times(mut self, count: u32) -> Self {
        self.count = count;
        self
    }

    /// Only calls of `action`.
    pub fn for_action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }

    /// Only calls carrying the parameter `name` (non-blank).
    pub fn with_param(mut self, name: impl Into<String>) -> Self {
        self.param = Some(name.into());
        self
    }

    /// Only calls whose parameter `name` is `value`.
    pub fn with_param_value(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.param = Some(name.into());
        self.value = Some(value.into());
        self
    }

    /// `Throttling.User` with `x-acs-retry-after: retry_after_ms`.
    pub fn throttling(retry_after_ms: u64) -> Self {
        Self::new(FaultKind::Throttling {
            code: throttling_code(),
            retry_after_ms: Some(retry_after_ms),
            status: None,
        })
    }

    /// Rejects nonsense before it is queued.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_FAULT_COUNT).contains(&self.count) {
            return Err(format!("count must be between 1 and {MAX_FAULT_COUNT}"));
        }
        match &self.kind {
            FaultKind::Slow { delay_ms } if *delay_ms > MAX_DELAY_MS => {
                Err(format!("delay_ms must be at most {MAX_DELAY_MS}"))
            }
            FaultKind::OversizedPage { records } if *records > MAX_OVERSIZED_RECORDS => {
                Err(format!("records must be at most {MAX_OVERSIZED_RECORDS}"))
            }
            FaultKind::Throttling { status, .. } | FaultKind::Error { status, .. }
                if status.is_some_and(|s| !(400..=599).contains(&s)) =>
            {
                Err("status must be a 4xx or 5xx code".into())
            }
            FaultKind::Error { code, .. } | FaultKind::Throttling { code, .. }
                if code.is_empty() || code.len() > 100 =>
            {
                Err("code must be 1..=100 bytes".into())
            }
            _ => Ok(()),
        }
    }
}

/// Pending fault rules in injection order.
#[derive(Default)]
pub(crate) struct FaultQueue {
    rules: VecDeque<FaultSpec>,
}

impl FaultQueue {
    pub(crate) fn push(&mut self, spec: FaultSpec) -> Result<(), String> {
        spec.validate()?;
        if self.rules.len() >= MAX_FAULTS {
            return Err(format!("at most {MAX_FAULTS} pending fault rules"));
        }
        self.rules.push_back(spec);
        Ok(())
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    pub(crate) fn pending(&self) -> Vec<FaultSpec> {
        self.rules.iter().cloned().collect()
    }

    /// Consumes one count of the first rule matching `action` and `params`.
    pub(crate) fn take(&mut self, action: &str, params: &[(String, String)]) -> Option<FaultKind> {
        let carries = |name: &str, value: Option<&str>| {
            params.iter().any(|(k, v)| {
                k == name && !v.trim().is_empty() && value.is_none_or(|value| v == value)
            })
        };
        let idx = self.rules.iter().position(|r| {
            r.action.as_deref().is_none_or(|a| a == action)
                && r.param
                    .as_deref()
                    .is_none_or(|name| carries(name, r.value.as_deref()))
        })?;
        let rule = &mut self.rules[idx];
        let kind = rule.kind.clone();
        rule.count -= 1;
        if rule.count == 0 {
            self.rules.remove(idx);
        }
        Some(kind)
    }
}

/// Numbers and booleans become strings, arrays become objects keyed by index: valid JSON that no
/// typed client should accept.
pub(crate) fn wrong_types(v: Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Array(a) => Value::Object(
            a.into_iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), wrong_types(v)))
                .collect(),
        ),
        Value::Object(m) => {
            Value::Object(m.into_iter().map(|(k, v)| (k, wrong_types(v))).collect())
        }
        other => other,
    }
}

/// The gateway error page a misbehaving proxy returns.
pub(crate) const NOT_JSON_BODY: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>Tengine</center>\r\n</body>\r\n</html>\r\n";

enum CutState {
    Data(Bytes),
    /// Yield once so the server flushes the prefix before the connection is dropped.
    Flush,
    Fail,
}

/// A body that announces `full_len` bytes, sends a prefix, then fails, so the server aborts the
/// connection mid-body.
pub(crate) struct CutBody {
    state: CutState,
    full_len: u64,
}

impl CutBody {
    pub(crate) fn new(prefix: Bytes, full_len: u64) -> Self {
        CutBody {
            state: CutState::Data(prefix),
            full_len,
        }
    }
}

impl http_body::Body for CutBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match std::mem::replace(&mut self.state, CutState::Fail) {
            CutState::Data(b) => {
                self.state = CutState::Flush;
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            CutState::Flush => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            CutState::Fail => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "simulated truncated response",
            )))),
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.full_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_consumed_in_order_and_per_action() {
        let mut q = FaultQueue::default();
        q.push(FaultSpec::throttling(5).times(2).for_action("A"))
            .unwrap();
        q.push(FaultSpec::new(FaultKind::InternalError)).unwrap();
        assert!(matches!(q.take("B", &[]), Some(FaultKind::InternalError)));
        assert_eq!(q.take("B", &[]), None);
        assert!(matches!(
            q.take("A", &[]),
            Some(FaultKind::Throttling { .. })
        ));
        assert!(matches!(
            q.take("A", &[]),
            Some(FaultKind::Throttling { .. })
        ));
        assert_eq!(q.take("A", &[]), None);
    }

    #[test]
    fn a_rule_with_a_param_only_matches_calls_carrying_it() {
        let mut q = FaultQueue::default();
        q.push(
            FaultSpec::new(FaultKind::ServiceUnavailable)
                .for_action("A")
                .with_param("Ids"),
        )
        .unwrap();
        let p = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(q.take("A", &p("Type", "cve")), None);
        assert_eq!(q.take("A", &p("Ids", " ")), None, "a blank value is absent");
        assert_eq!(q.take("B", &p("Ids", "1,2")), None);
        assert_eq!(
            q.take("A", &p("Ids", "1,2")),
            Some(FaultKind::ServiceUnavailable)
        );
        assert!(q.pending().is_empty());
        let s: FaultSpec =
            serde_json::from_str(r#"{"kind":"internal_error","param":"Ids"}"#).unwrap();
        assert_eq!(s.param.as_deref(), Some("Ids"));
        let json = serde_json::to_value(FaultSpec::new(FaultKind::InternalError)).unwrap();
        assert!(json.get("param").is_none(), "{json}");
        // A value narrows the rule to calls carrying exactly it.
        q.push(FaultSpec::new(FaultKind::InternalError).with_param_value("ClusterId", "c2"))
            .unwrap();
        assert_eq!(q.take("A", &p("ClusterId", "c1")), None);
        assert_eq!(q.take("A", &p("ClusterId", "c22")), None);
        assert_eq!(
            q.take("A", &p("ClusterId", "c2")),
            Some(FaultKind::InternalError)
        );
    }

    #[test]
    fn specs_parse_from_json_and_are_validated() {
        let s: FaultSpec =
            serde_json::from_str(r#"{"kind":"throttling","action":"DescribeVulList","count":3}"#)
                .unwrap();
        assert_eq!(s.count, 3);
        assert_eq!(
            s.kind,
            FaultKind::Throttling {
                code: "Throttling.User".into(),
                retry_after_ms: Some(1000),
                status: None
            }
        );
        let s: FaultSpec = serde_json::from_str(r#"{"kind":"slow","delay_ms":999999}"#).unwrap();
        assert!(s.validate().is_err());
        assert!(
            serde_json::from_str::<FaultSpec>(r#"{"kind":"nonsense"}"#).is_err(),
            "unknown kinds are rejected"
        );
    }

    #[test]
    fn an_oversized_page_holds_that_many_records_in_every_list() {
        let body =
            serde_json::json!({"RequestId": "r", "TotalCount": 3, "SuspEvents": [{"Id": 9}]});
        let text = oversized(body, 3);
        let v: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"RequestId": "r", "TotalCount": 3, "SuspEvents": [{"Id": 1}, {"Id": 2}, {"Id": 3}]})
        );
        let big = FaultSpec::new(FaultKind::OversizedPage {
            records: MAX_OVERSIZED_RECORDS + 1,
        });
        assert!(big.validate().is_err());
    }

    #[test]
    fn wrong_types_breaks_every_scalar() {
        let v = wrong_types(serde_json::json!({"A": 1, "B": [true], "C": "x"}));
        assert_eq!(
            v,
            serde_json::json!({"A": "1", "B": {"0": "true"}, "C": "x"})
        );
    }
}
