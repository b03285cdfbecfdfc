//! The small HTTP toolkit the fetching providers share: capped bodies, error text that never
//! carries a URL's query or a secret, the credentials JSON the metadata service and credentials
//! URIs return, and the `YYYY-MM-DDThh:mm:ssZ` timestamps every one of these services speaks.

use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

use super::Credential;
use crate::http_body::{BodyError, read_whole};
use crate::secret::Secret;
use crate::text::error_chain;

/// Largest response body read from STS, the metadata service or a credentials URI.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

const TIMESTAMP: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// Formats a UTC timestamp the way Alibaba Cloud APIs want it.
pub(crate) fn format_timestamp(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(TIMESTAMP)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Parses `Expiration` (`YYYY-MM-DDThh:mm:ssZ`, UTC).
pub(crate) fn parse_timestamp(text: &str) -> Result<OffsetDateTime, String> {
    time::PrimitiveDateTime::parse(text.trim(), TIMESTAMP)
        .map(|t| t.assume_utc())
        .map_err(|_| format!("Expiration {text:?} is not YYYY-MM-DDThh:mm:ssZ"))
}

/// `scheme://host[:port]/path` — no user info, query or fragment, which may hold a token.
pub(crate) fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let mut s = format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""));
            if let Some(p) = u.port() {
                s.push_str(&format!(":{p}"));
            }
            if u.path() != "/" {
                s.push_str(u.path());
            }
            s
        }
        Err(_) => "<unparsable URL>".to_string(),
    }
}

/// A transport error as text: no URL (the caller names the endpoint), the cause chain spelled out.
pub(crate) fn describe_transport(e: reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!(
            "timed out after {}",
            crate::duration::format_duration(timeout)
        );
    }
    error_chain(&e.without_url())
}

/// Reads at most `cap` bytes of body ([`read_whole`]: exactly `cap` is accepted); more is an
/// error (a misbehaving or hostile endpoint).
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    read_whole(&mut resp, cap).await.map_err(|e| match e {
        BodyError::TooLarge => format!("response body is larger than {cap} bytes"),
        BodyError::Failed { error, .. } => {
            format!(
                "reading the response: {}",
                describe_transport(error, timeout)
            )
        }
    })
}

/// The error fields Alibaba Cloud services put in a JSON error body (either capitalisation).
#[derive(Default, Deserialize)]
pub(crate) struct ApiErrorBody {
    #[serde(alias = "code")]
    #[serde(rename = "Code")]
    pub code: Option<String>,
    #[serde(alias = "message")]
    #[serde(rename = "Message")]
    pub message: Option<String>,
    #[serde(alias = "requestId")]
    #[serde(rename = "RequestId")]
    pub request_id: Option<String>,
}

/// Describes a non-success response: `HTTP 400: Code: Message (RequestId X)` when the body is an
/// API error, else the status and a short, single-line prefix of the body. `scrub` values are
/// removed from the text (a server may echo what it was sent).
pub(crate) fn describe_failure(status: reqwest::StatusCode, body: &[u8], scrub: &[&str]) -> String {
    let mut text = match serde_json::from_slice::<ApiErrorBody>(body) {
        Ok(ApiErrorBody {
            code: Some(code),
            message,
            request_id,
        }) => {
            let mut s = format!("HTTP {}: {code}", status.as_u16());
            if let Some(m) = message.filter(|m| !m.is_empty()) {
                s.push_str(&format!(": {m}"));
            }
            if let Some(id) = request_id {
                s.push_str(&format!(" (RequestId {id})"));
            }
            s
        }
        _ => {
            let snippet: String = String::from_utf8_lossy(body)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(200)
                .collect();
            if snippet.is_empty() {
                format!("HTTP {}", status.as_u16())
            } else {
                format!("HTTP {}: {snippet}", status.as_u16())
            }
        }
    };
    for s in scrub.iter().filter(|s| s.len() >= 4) {
        text = text.replace(s, "[redacted]");
    }
    text
}

/// Where a JSON body failed to parse, without quoting it (it may hold a secret).
pub(crate) fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax => "malformed JSON",
        Category::Data => "JSON of an unexpected shape",
        Category::Eof => "truncated JSON",
        Category::Io => "unreadable JSON",
    };
    format!(
        "response is {what} (line {} column {})",
        e.line(),
        e.column()
    )
}

/// The credentials JSON of the ECS metadata service and credentials URIs. No `Debug`: it holds
/// secrets as plain strings until [`CredentialsBody::into_credential`] wraps them.
#[derive(Deserialize)]
pub(crate) struct CredentialsBody {
    #[serde(rename = "Code")]
    pub code: Option<String>,
    #[serde(rename = "Message")]
    pub message: Option<String>,
    #[serde(rename = "AccessKeyId")]
    pub access_key_id: Option<String>,
    #[serde(rename = "AccessKeySecret")]
    pub access_key_secret: Option<String>,
    #[serde(rename = "SecurityToken")]
    pub security_token: Option<String>,
    #[serde(rename = "Expiration")]
    pub expiration: Option<String>,
}

impl CredentialsBody {
    /// Parses and checks a body: `Code` must be `Success` and every field present.
    pub(crate) fn parse(body: &[u8], provider: &'static str) -> Result<Credential, String> {
        let parsed: CredentialsBody =
            serde_json::from_slice(body).map_err(|e| describe_json_error(&e))?;
        parsed.into_credential(provider)
    }

    /// Checks that `Code` is `Success` and that every key field is present.
    pub(crate) fn into_credential(self, provider: &'static str) -> Result<Credential, String> {
        match self.code.as_deref() {
            Some("Success") => {}
            other => {
                let mut s = format!("Code is {:?}, not \"Success\"", other.unwrap_or(""));
                if let Some(m) = self.message.filter(|m| !m.is_empty()) {
                    s.push_str(&format!(": {m}"));
                }
                return Err(s);
            }
        }
        let mut missing = Vec::new();
        for (name, v) in [
            ("AccessKeyId", &self.access_key_id),
            ("AccessKeySecret", &self.access_key_secret),
            ("SecurityToken", &self.security_token),
            ("Expiration", &self.expiration),
        ] {
            if v.as_deref().is_none_or(str::is_empty) {
                missing.push(name);
            }
        }
        if !missing.is_empty() {
            return Err(format!("response lacks {}", missing.join(", ")));
        }
        let expiration = parse_timestamp(self.expiration.as_deref().unwrap_or_default())?;
        Ok(Credential {
            access_key_id: self.access_key_id.unwrap_or_default(),
            access_key_secret: Secret::new(self.access_key_secret.unwrap_or_default()),
            security_token: self.security_token.map(Secret::new),
            expiration: Some(expiration),
            provider,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_reject_other_shapes() {
        let t = parse_timestamp("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(format_timestamp(t), "2026-01-02T03:04:05Z");
        for bad in [
            "2026-01-02 03:04:05",
            "2026-01-02T03:04:05+08:00",
            "tomorrow",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_lose_their_query_and_user_info() {
        assert_eq!(
            redact_url("http://u:p@127.0.0.1:8080/creds?token=abc#x"),
            "http://127.0.0.1:8080/creds"
        );
        assert_eq!(
            redact_url("https://sts.aliyuncs.com"),
            "https://sts.aliyuncs.com"
        );
    }

    #[test]
    fn failures_name_code_and_request_id_and_scrub_echoed_secrets() {
        let body = br#"{"RequestId":"R1","Code":"InvalidParameter.OIDCToken","Message":"bad token eyJsecret"}"#;
        let text = describe_failure(reqwest::StatusCode::BAD_REQUEST, body, &["eyJsecret"]);
        assert_eq!(
            text,
            "HTTP 400: InvalidParameter.OIDCToken: bad token [redacted] (RequestId R1)"
        );
        let text = describe_failure(
            reqwest::StatusCode::BAD_GATEWAY,
            b"<html>\n oops </html>",
            &[],
        );
        assert_eq!(text, "HTTP 502: <html> oops </html>");
    }

    #[test]
    fn credentials_body_checks_code_and_fields_without_quoting_them() {
        let ok = br#"{"Code":"Success","AccessKeyId":"STS.a","AccessKeySecret":"s3cr3t","SecurityToken":"t0k3n","Expiration":"2030-01-01T00:00:00Z"}"#;
        let c = CredentialsBody::parse(ok, "uri").unwrap();
        assert_eq!(c.access_key_id, "STS.a");
        let failed = br#"{"Code":"Failed","Message":"role not attached"}"#;
        assert_eq!(
            CredentialsBody::parse(failed, "uri").unwrap_err(),
            "Code is \"Failed\", not \"Success\": role not attached"
        );
        let partial = br#"{"Code":"Success","AccessKeyId":"STS.a","AccessKeySecret":"s3cr3t"}"#;
        assert_eq!(
            CredentialsBody::parse(partial, "uri").unwrap_err(),
            "response lacks SecurityToken, Expiration"
        );
        let mistyped = br#"{"Code":"Success","AccessKeyId":"STS.a","AccessKeySecret":"s3cr3t","SecurityToken":7}"#;
        let e = CredentialsBody::parse(mistyped, "uri").unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
    }
}
