//! Security Center errors: decoding the error body and classifying it by `Code`, not by status.
//!
//! Classification is pure so it can be table-tested; the client decides what to do with it
//! (retry throttling and server errors, stop on everything else), and the message always carries
//! the Code, the RequestId and a hint a newcomer can act on.

use std::time::Duration;

use serde::Deserialize;

/// An error body as Security Center sends it (`Code`/`code` and friends are both accepted).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ApiErrorBody {
    /// Error code, e.g. `Throttling.User`.
    #[serde(alias = "code", default)]
    pub code: String,
    /// Human message.
    #[serde(alias = "message", default)]
    pub message: String,
    /// Request id to quote to support.
    #[serde(alias = "requestId", default)]
    pub request_id: String,
    /// Troubleshooting link.
    #[serde(alias = "recommend", default)]
    pub recommend: String,
    /// Endpoint host that answered.
    #[serde(alias = "hostId", default)]
    pub host_id: String,
}

impl ApiErrorBody {
    /// Parses an error body (PascalCase keys as on the wire, or lower-camel).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(rename = "Code", alias = "code", default)]
            code: Option<String>,
            #[serde(rename = "Message", alias = "message", default)]
            message: Option<String>,
            #[serde(rename = "RequestId", alias = "requestId", default)]
            request_id: Option<String>,
            #[serde(rename = "Recommend", alias = "recommend", default)]
            recommend: Option<String>,
            #[serde(rename = "HostId", alias = "hostId", default)]
            host_id: Option<String>,
        }
        let w: Wire = serde_json::from_slice(bytes).ok()?;
        let code = w.code.filter(|c| !c.is_empty())?;
        Some(ApiErrorBody {
            code,
            message: w.message.unwrap_or_default(),
            request_id: w.request_id.unwrap_or_default(),
            recommend: w.recommend.unwrap_or_default(),
            host_id: w.host_id.unwrap_or_default(),
        })
    }
}

/// What kind of failure an error code means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Flow control: retry after a pause.
    Throttled,
    /// The service failed: retry with backoff.
    Server,
    /// Signature, key, token or clock problems: fix the credentials or the clock.
    Auth,
    /// The key works but lacks permission.
    Permission,
    /// The request itself is wrong (parameters, unknown action).
    Request,
}

impl ErrorClass {
    /// Whether the same request may succeed later without operator action.
    pub fn retryable(self) -> bool {
        matches!(self, ErrorClass::Throttled | ErrorClass::Server)
    }
}

/// Classifies an error by its `Code`, falling back on the HTTP status only for unknown codes.
pub fn classify(code: &str, status: u16) -> ErrorClass {
    match code {
        c if c.starts_with("Throttling") => ErrorClass::Throttled,
        "ServiceUnavailable" | "InternalError" | "ServiceTimeout" | "UnknownError" => {
            ErrorClass::Server
        }
        c if c.starts_with("SignatureDoesNotMatch")
            || c.starts_with("IncompleteSignature")
            || c.starts_with("InvalidAccessKeyId")
            || c.starts_with("InvalidSecurityToken")
            || c.starts_with("InvalidTimeStamp")
            || c.starts_with("SignatureNonceUsed")
            || c == "MissingSecurityToken" =>
        {
            ErrorClass::Auth
        }
        c if c.starts_with("Forbidden") || c == "NoPermission" => ErrorClass::Permission,
        c if c.starts_with("MissingParameter")
            || c.starts_with("InvalidParameter")
            || c.starts_with("InvalidAction") =>
        {
            ErrorClass::Request
        }
        _ if status >= 500 => ErrorClass::Server,
        _ if status == 429 => ErrorClass::Throttled,
        _ if status == 401 => ErrorClass::Auth,
        _ if status == 403 => ErrorClass::Permission,
        _ => ErrorClass::Request,
    }
}

/// A hint for the operator, naming what to check for a given code.
pub fn hint(code: &str) -> &'static str {
    match code {
        "SignatureDoesNotMatch" => {
            "the AccessKey secret is wrong for this AccessKey ID (check the secret's env var or file; a trailing space or newline counts), or a proxy rewrote the request"
        }
        "IncompleteSignature" => {
            "the request signature is malformed; this is a sasrelay bug, please report it"
        }
        "InvalidAccessKeyId.NotFound" => {
            "this AccessKey ID does not exist on this site: check for typos, a deleted key, an expired STS key, or a China-site key used on the international site (or the other way round)"
        }
        "InvalidAccessKeyId.Inactive" => {
            "this AccessKey is disabled in the RAM console: enable it or use another key"
        }
        "InvalidSecurityToken.Expired" => {
            "the STS token expired: sasrelay refreshes RRSA, ECS-role and URI credentials itself, so a static STS token must be replaced by hand"
        }
        "InvalidSecurityToken.Malformed" | "InvalidSecurityToken.MismatchWithAccessKey" => {
            "the STS token does not belong to this AccessKey ID: configure all three values from the same AssumeRole result"
        }
        "InvalidTimeStamp.Expired" => {
            "this machine's clock is off by more than 15 minutes: fix NTP"
        }
        "SignatureNonceUsed" => {
            "a request nonce was replayed; retrying with a fresh nonce normally clears it"
        }
        "Forbidden.RAM" | "NoPermission" => {
            "the RAM user or role lacks permission: attach the system policy AliyunYundunSASReadOnlyAccess (or a custom policy allowing yundun-sas:Describe*, yundun-sas:List* and yundun-sas:Get*)"
        }
        "MissingParameter" | "InvalidParameter" => {
            "Security Center rejected a parameter; check clusters and filters in the source config"
        }
        "InvalidAction.NotFound" => {
            "the endpoint does not know this action: check `region`/`endpoint` point at Security Center (tds.*.aliyuncs.com)"
        }
        c if c.starts_with("Throttling") => {
            "Security Center is rate-limiting this account; sasrelay backs off and retries"
        }
        "ServiceUnavailable" | "InternalError" => {
            "Security Center had a server-side problem; sasrelay retries with backoff"
        }
        _ => "see the Recommend link for this error code",
    }
}

/// Text the service (or a proxy in front of it) wrote, fit for one line of a terminal or a
/// log: the same scrubber as a finding's text ([`crate::text::strip_control`]).
/// `SignatureDoesNotMatch` messages, for one, carry the server's string-to-sign on a second line.
use crate::text::strip_control as printable;

/// Everything that can go wrong calling Security Center.
#[derive(Debug, thiserror::Error)]
pub enum SasError {
    /// Security Center answered with an error body.
    #[error(
        "{action} failed: {code} (HTTP {status}, RequestId {request_id}): {message} — hint: {hint}",
        code = printable(&body.code),
        request_id = if body.request_id.is_empty() { "none".into() } else { printable(&body.request_id) },
        message = printable(&body.message),
        hint = hint(&body.code)
    )]
    Api {
        /// The action that was called.
        action: String,
        /// HTTP status.
        status: u16,
        /// The decoded error body (boxed: it is large and errors travel far).
        body: Box<ApiErrorBody>,
        /// `x-acs-retry-after` (milliseconds on the wire), when the service sent one.
        retry_after: Option<Duration>,
    },
    /// No response: connect failure, timeout, reset.
    #[error("{action}: cannot reach {endpoint}: {reason}")]
    Transport {
        /// The action.
        action: String,
        /// The endpoint URL (no secrets in it).
        endpoint: String,
        /// What failed.
        reason: String,
        /// Timeouts and connection failures are retried.
        timeout: bool,
    },
    /// A response that could not be decoded (truncated, not JSON, wrong shape, too large).
    #[error("{action}: malformed response (HTTP {status}, RequestId {request_id}): {reason}")]
    Malformed {
        /// The action.
        action: String,
        /// HTTP status.
        status: u16,
        /// RequestId if it could be found.
        request_id: String,
        /// Why decoding failed.
        reason: String,
    },
    /// A listing needed more pages than allowed.
    #[error("{action}: stopped after {pages} pages (max_pages); {seen} of {total} items read")]
    TooManyPages {
        /// The action.
        action: String,
        /// Pages read.
        pages: u32,
        /// Items read.
        seen: usize,
        /// What the service said the total was.
        total: i64,
    },
    /// No credential to sign with.
    #[error("no credentials: {0}")]
    Credentials(String),
}

impl SasError {
    /// Whether retrying the same call may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            SasError::Api { status, body, .. } => classify(&body.code, *status).retryable(),
            // A connection that failed before any answer is worth retrying; so is a truncated
            // body (the connection broke mid-response) — a malformed but complete body is not
            // better on the second try, but the poller's backoff bounds the cost either way.
            SasError::Transport { .. } | SasError::Malformed { .. } => true,
            SasError::TooManyPages { .. } | SasError::Credentials(_) => false,
        }
    }

    /// Whether the failure is about the source rather than one listing: its credentials,
    /// permissions, the endpoint or the quota. The next listing would fail alike, so a read
    /// that goes on past a failed listing stops here instead of spending calls on it.
    pub fn source_wide(&self) -> bool {
        match self {
            SasError::Api { status, body, .. } => !matches!(
                classify(&body.code, *status),
                ErrorClass::Server | ErrorClass::Request
            ),
            SasError::Transport { .. } | SasError::Credentials(_) => true,
            SasError::Malformed { .. } | SasError::TooManyPages { .. } => false,
        }
    }

    /// The error class, for Api errors.
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            SasError::Api { status, body, .. } => Some(classify(&body.code, *status)),
            _ => None,
        }
    }

    /// The service's error code, for Api errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            SasError::Api { body, .. } => Some(&body.code),
            _ => None,
        }
    }

    /// A short, fixed label of what went wrong, for metrics (`reason` label): the class of an
    /// API error, `timeout` or `unreachable` for transport failures, and for a malformed answer
    /// what was wrong with it (`error_code_in_200`, `list_missing`, `not_a_list`,
    /// `page_too_large`, `body_too_large`, `truncated`, `invalid`).
    pub fn reason_label(&self) -> &'static str {
        match self {
            SasError::Api { status, body, .. } => match classify(&body.code, *status) {
                ErrorClass::Throttled => "throttled",
                ErrorClass::Server => "server",
                ErrorClass::Auth => "auth",
                ErrorClass::Permission => "permission",
                ErrorClass::Request => "request",
            },
            SasError::Transport { timeout: true, .. } => "timeout",
            SasError::Transport { .. } => "unreachable",
            SasError::Malformed { reason, .. } => malformed_label(reason),
            SasError::TooManyPages { .. } => "too_many_pages",
            SasError::Credentials(_) => "credentials",
        }
    }

    /// The action that failed, when the error comes from a call.
    pub fn action(&self) -> Option<&str> {
        match self {
            SasError::Api { action, .. }
            | SasError::Transport { action, .. }
            | SasError::Malformed { action, .. }
            | SasError::TooManyPages { action, .. } => Some(action),
            SasError::Credentials(_) => None,
        }
    }

    /// The pause the service asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SasError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The label of a malformed answer, from the reason the reader gave (its wording is ours:
/// `sas::models` and `sas::client`).
fn malformed_label(reason: &str) -> &'static str {
    const LABELS: [(&str, &str); 6] = [
        ("carrying error Code", "error_code_in_200"),
        ("list and its paging does not say", "list_missing"),
        ("not a list", "not_a_list"),
        ("a page of", "page_too_large"),
        ("response body larger than", "body_too_large"),
        ("truncated", "truncated"),
    ];
    LABELS
        .iter()
        .find(|(needle, _)| reason.contains(needle))
        .map_or("invalid", |(_, label)| label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_answers_are_labelled_by_what_was_wrong() {
        let m = |reason: &str| SasError::Malformed {
            action: "DescribeSuspEvents".into(),
            status: 200,
            request_id: "r".into(),
            reason: reason.into(),
        };
        let table = [
            (
                "a 200 answer carrying error Code Throttling.User: x",
                "error_code_in_200",
            ),
            (
                "the answer has no SuspEvents list and its paging does not say the result is empty",
                "list_missing",
            ),
            ("the SuspEvents list is a string, not a list", "not_a_list"),
            (
                "a page of 101 records answered PageSize=100",
                "page_too_large",
            ),
            (
                "a page of more than 1000 records; no listing pages",
                "page_too_large",
            ),
            ("response body larger than 16777216 bytes", "body_too_large"),
            ("response truncated after 10 bytes: reset", "truncated"),
            (
                "invalid JSON for DescribeSuspEvents: expected value",
                "invalid",
            ),
        ];
        for (reason, label) in table {
            assert_eq!(m(reason).reason_label(), label, "{reason}");
        }
    }

    #[test]
    fn classification_follows_code_not_status() {
        let table = [
            ("Throttling.User", 400, ErrorClass::Throttled),
            ("Throttling.Api", 429, ErrorClass::Throttled),
            ("Throttling", 503, ErrorClass::Throttled),
            ("ServiceUnavailable", 503, ErrorClass::Server),
            ("InternalError", 500, ErrorClass::Server),
            ("SignatureDoesNotMatch", 400, ErrorClass::Auth),
            ("IncompleteSignature", 400, ErrorClass::Auth),
            ("InvalidAccessKeyId.NotFound", 404, ErrorClass::Auth),
            ("InvalidAccessKeyId.Inactive", 400, ErrorClass::Auth),
            ("InvalidSecurityToken.Expired", 400, ErrorClass::Auth),
            ("InvalidTimeStamp.Expired", 400, ErrorClass::Auth),
            ("SignatureNonceUsed", 400, ErrorClass::Auth),
            ("Forbidden.RAM", 403, ErrorClass::Permission),
            ("NoPermission", 403, ErrorClass::Permission),
            ("MissingParameter", 400, ErrorClass::Request),
            ("InvalidParameter", 400, ErrorClass::Request),
            ("InvalidAction.NotFound", 404, ErrorClass::Request),
            ("SomethingNew", 502, ErrorClass::Server),
            ("SomethingNew", 400, ErrorClass::Request),
        ];
        for (code, status, want) in table {
            assert_eq!(classify(code, status), want, "{code} {status}");
        }
    }

    #[test]
    fn every_shared_error_sample_decodes_and_classifies() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/samples/errors");
        let index: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap())
                .unwrap();
        for entry in index.as_array().unwrap() {
            let code = entry["code"].as_str().unwrap();
            let status = entry["http_status"].as_u64().unwrap() as u16;
            let bytes = std::fs::read(
                dir.join(
                    entry["file"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches("errors/"),
                ),
            )
            .unwrap();
            let body = ApiErrorBody::parse(&bytes).expect(code);
            assert_eq!(body.code, code);
            assert!(!body.request_id.is_empty(), "{code}");
            let err = SasError::Api {
                action: "DescribeSuspEvents".into(),
                status,
                body: Box::new(body.clone()),
                retry_after: None,
            };
            let text = err.to_string();
            assert!(
                text.contains(code) && text.contains(&body.request_id),
                "{text}"
            );
            let retry = code.starts_with("Throttling") || status >= 500;
            assert_eq!(err.retryable(), retry, "{code}");
        }
    }

    #[test]
    fn permission_hint_names_the_policy() {
        let body = ApiErrorBody {
            code: "Forbidden.RAM".into(),
            request_id: "R1".into(),
            ..Default::default()
        };
        let e = SasError::Api {
            action: "DescribeVulList".into(),
            status: 403,
            body: Box::new(body),
            retry_after: None,
        };
        assert!(e.to_string().contains("AliyunYundunSASReadOnlyAccess"));
        assert!(!e.retryable());
    }

    #[test]
    fn service_text_is_shown_on_one_line_without_escape_sequences() {
        let e = SasError::Api {
            action: "DescribeSuspEvents".into(),
            status: 400,
            body: Box::new(ApiErrorBody {
                code: "SignatureDoesNotMatch".into(),
                message: "not matched. server string to sign is:ACS3-HMAC-SHA256\n9037\u{1b}[2J"
                    .into(),
                request_id: "R\r1".into(),
                ..Default::default()
            }),
            retry_after: None,
        };
        let text = e.to_string();
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.contains("ACS3-HMAC-SHA256 9037 [2J"), "{text}");
        assert!(text.contains("RequestId R 1"), "{text}");
        assert!(text.contains("AccessKey secret is wrong"), "{text}");
    }

    #[test]
    fn non_error_bodies_are_not_errors() {
        assert!(ApiErrorBody::parse(b"{\"RequestId\":\"x\",\"SuspEvents\":[]}").is_none());
        assert!(ApiErrorBody::parse(b"<html>").is_none());
    }

    #[test]
    fn a_failure_is_the_sources_when_the_next_listing_would_fail_alike() {
        let api = |code: &str, status: u16| SasError::Api {
            action: "DescribeVulList".into(),
            status,
            body: Box::new(ApiErrorBody {
                code: code.into(),
                ..ApiErrorBody::default()
            }),
            retry_after: None,
        };
        // One listing's trouble: the next cluster may well answer.
        assert!(!api("InternalError", 500).source_wide());
        assert!(!api("InvalidParameter", 400).source_wide());
        let malformed = SasError::Malformed {
            action: "DescribeVulList".into(),
            status: 200,
            request_id: String::new(),
            reason: "truncated".into(),
        };
        assert!(!malformed.source_wide());
        // The source's: every call would fail alike.
        assert!(api("Throttling.User", 400).source_wide());
        assert!(api("InvalidAccessKeyId.NotFound", 404).source_wide());
        assert!(api("Forbidden.RAM", 403).source_wide());
        let unreachable = SasError::Transport {
            action: "DescribeVulList".into(),
            endpoint: "https://tds.aliyuncs.com".into(),
            reason: "connection refused".into(),
            timeout: false,
        };
        assert!(unreachable.source_wide());
        assert!(SasError::Credentials("expired".into()).source_wide());
    }
}
