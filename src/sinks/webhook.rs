//! The generic webhook: one `POST` of the [`sasrelay.event.v1`](super::payload) document per event,
//! signed the [Standard Webhooks] way, classified by HTTP status.
//!
//! ## Request
//!
//! | header | value |
//! |---|---|
//! | `content-type` | `application/json` |
//! | `user-agent` | `sasrelay/<version>` |
//! | `webhook-id` | the delivery's idempotency key, one per event and sink ([`delivery_id`]): the same on every retry, restart and replay, and different at each sink a route sends the event to (`continue`), so a receiver behind two sink names deduplicates neither away |
//! | `webhook-timestamp` | Unix seconds of *this* attempt |
//! | `webhook-signature` | with `signing_secret`: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, one entry per key, space-separated |
//! | `x-hub-signature-256` | with `github_signing_secret`: `sha256=<hex HMAC-SHA256(secret, body)>` |
//! | `x-sasrelay-attempt` | 1 for the first attempt, then 2, 3, … |
//! | configured `headers` | as written |
//!
//! Receivers verify the signature over the exact body bytes, compare in constant time and
//! reject timestamps more than 5 minutes away from their clock.
//!
//! The body is at most `max_body_bytes` (default 256 KiB): a longer document is cut to fit
//! ([`payload::to_json_within`]), so attacker-written text in a finding cannot make a receiver
//! refuse it.
//!
//! ## Classification ([`classify`])
//!
//! | response | outcome |
//! |---|---|
//! | 2xx | `Delivered` (the body is not read) |
//! | 3xx | `Permanent`: redirects are never followed (a token in the URL must not reach another host); the reason names the `Location` without its query |
//! | 408, 425, 429, 500, 502–504, 506–599 | `Retry`, with `Retry-After` (seconds or HTTP-date) clamped to 1 s..1 h |
//! | 410 | `Permanent`: the receiver says the endpoint is gone |
//! | other 4xx, 501, 505 | `Permanent`, with the status line and up to `max_response_bytes` of body |
//! | connect error, TLS error, reset, timeout | `Retry` |
//!
//! Messages name the endpoint as `scheme://host[:port]/path` — never the query, user info or
//! fragment — and only `scheme://host[:port]` when the URL itself is a secret. Response text is
//! stripped of control characters.
//!
//! [Standard Webhooks]: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use sha2::Sha256;
use time::OffsetDateTime;

use super::http::{
    self, ReadBody, parse_retry_after, parse_url, redact_location, redact_url, status_line,
};
use super::{MaybeSecret, Outcome, payload};
use crate::duration::HumanDuration;
use crate::event::Payload;
use crate::secret::{Secret, SecretRef};
use crate::text::{strip_control, truncate_bytes};

/// Keys of `type = "webhook"`, besides the common ones.
pub const KEYS: [&str; 8] = [
    "url",
    "allow_http",
    "signing_secret",
    "github_signing_secret",
    "headers",
    "timeout",
    "max_response_bytes",
    "max_body_bytes",
];

/// Default `max_body_bytes`: well under the 1 MiB many receivers and proxies accept.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
/// `max_body_bytes` bounds.
pub const MAX_BODY_BYTES_RANGE: std::ops::RangeInclusive<usize> = 4096..=16 * 1024 * 1024;

/// Default `max_response_bytes`.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 2048;
/// Largest `max_response_bytes`.
pub const MAX_RESPONSE_BYTES: usize = 65_536;
/// Shortest Standard Webhooks key, in bytes (the spec's lower bound).
pub const MIN_KEY_BYTES: usize = 24;

/// Headers `headers` may not set: framing, ours, and hop-by-hop (RFC 9110 §7.6.1).
const RESERVED_HEADERS: [&str; 14] = [
    "content-type",
    "content-length",
    "host",
    "x-hub-signature-256",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// `type = "webhook"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST: inline or a secret reference.
    pub url: MaybeSecret,
    /// Allow `http://` to non-loopback hosts.
    #[serde(default)]
    pub allow_http: bool,
    /// Standard Webhooks key(s).
    #[serde(default)]
    pub signing_secret: Option<SigningSecrets>,
    /// Secret for an additional GitHub-style `x-hub-signature-256`.
    #[serde(default)]
    pub github_signing_secret: Option<SecretRef>,
    /// Extra headers; values inline or secret references.
    #[serde(default)]
    pub headers: BTreeMap<String, MaybeSecret>,
    /// Whole-attempt timeout.
    #[serde(default = "http::default_timeout")]
    pub timeout: HumanDuration,
    /// Bytes of a failed response's body kept.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// Largest request body: a longer document is cut to fit
    /// ([`payload::to_json_within`]).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

fn default_max_body_bytes() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

fn default_max_response_bytes() -> usize {
    DEFAULT_MAX_RESPONSE_BYTES
}

/// `signing_secret`: one key, or several while rotating (every key signs; receivers accept any).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(
    untagged,
    expecting = "{ env = \"NAME\" }, { file = \"/path\" } or a list of them"
)]
pub enum SigningSecrets {
    /// One key.
    One(SecretRef),
    /// Several keys, sent as several `v1,` entries.
    Many(Vec<SecretRef>),
}

impl SigningSecrets {
    /// Each key with its path as written: `signing_secret`, or `signing_secret[i]` in a list.
    pub fn keyed(&self) -> Vec<(String, &SecretRef)> {
        match self {
            SigningSecrets::One(r) => vec![("signing_secret".to_string(), r)],
            SigningSecrets::Many(v) => v
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("signing_secret[{i}]"), r))
                .collect(),
        }
    }
}

impl WebhookConfig {
    /// Semantic problems as `(key, message)`; see [`SinkConfig::check`](super::SinkConfig::check).
    pub fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if let MaybeSecret::Inline(url) = &self.url
            && let Err(e) = parse_url(url, self.allow_http, false)
        {
            problems.push(("url".to_string(), e));
        }
        if let Some(SigningSecrets::Many(v)) = &self.signing_secret
            && v.is_empty()
        {
            problems.push((
                "signing_secret".to_string(),
                "is an empty list: give at least one key or remove the key".into(),
            ));
        }
        let mut seen = BTreeMap::new();
        for (name, value) in &self.headers {
            let key = format!("headers.{name}");
            if let Err(e) = check_header_name(name) {
                problems.push((key, e));
                continue;
            }
            if let Some(first) = seen.insert(name.to_ascii_lowercase(), name) {
                problems.push((
                    key,
                    format!("repeats header `{first}` (header names are case-insensitive)"),
                ));
                continue;
            }
            if let MaybeSecret::Inline(v) = value
                && HeaderValue::from_str(v).is_err()
            {
                problems.push((
                    key,
                    "value must be visible ASCII or spaces (no newlines or control characters)"
                        .into(),
                ));
            }
        }
        problems.extend(http::check_timeout(self.timeout.0));
        if self.max_response_bytes == 0 || self.max_response_bytes > MAX_RESPONSE_BYTES {
            problems.push((
                "max_response_bytes".to_string(),
                format!("must be between 1 and {MAX_RESPONSE_BYTES}"),
            ));
        }
        if !MAX_BODY_BYTES_RANGE.contains(&self.max_body_bytes) {
            problems.push((
                "max_body_bytes".to_string(),
                format!(
                    "must be between {} and {}",
                    MAX_BODY_BYTES_RANGE.start(),
                    MAX_BODY_BYTES_RANGE.end()
                ),
            ));
        }
        problems
    }

    /// Makes relative `file` secrets relative to `base`.
    pub fn anchor(&mut self, base: &Path) {
        self.url.anchor(base);
        if let Some(s) = &mut self.signing_secret {
            match s {
                SigningSecrets::One(r) => r.anchor(base),
                SigningSecrets::Many(v) => v.iter_mut().for_each(|r| r.anchor(base)),
            }
        }
        if let Some(r) = &mut self.github_signing_secret {
            r.anchor(base);
        }
        for v in self.headers.values_mut() {
            v.anchor(base);
        }
    }
}

fn check_header_name(name: &str) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err("is not a valid header name".into());
    }
    if RESERVED_HEADERS.contains(&lower.as_str())
        || lower.starts_with("webhook-")
        || lower.starts_with("x-sasrelay-")
    {
        return Err(format!(
            "`{name}` is set by sasrelay or by the HTTP connection and cannot be configured"
        ));
    }
    Ok(())
}

/// Decodes a Standard Webhooks key: `whsec_<base64>` or bare base64 (standard alphabet, padded).
/// Rejects keys shorter than [`MIN_KEY_BYTES`]. The message never contains the key.
pub fn decode_signing_key(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.trim();
    let b64 = b64.strip_prefix("whsec_").unwrap_or(b64);
    let key = STANDARD
        .decode(b64)
        .map_err(|e| format!("is not `whsec_` followed by standard, padded base64 ({e})"))?;
    if key.len() < MIN_KEY_BYTES {
        return Err(format!(
            "decodes to {} bytes; Standard Webhooks keys are 24 to 64 random bytes",
            key.len()
        ));
    }
    Ok(key)
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// The `webhook-signature` value: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`
/// for each key, space-separated.
pub fn standard_signature(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    keys.iter()
        .map(|k| {
            let mac = hmac_sha256(k, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
            format!("v1,{}", STANDARD.encode(mac))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `x-hub-signature-256` value: `sha256=<lowercase hex HMAC-SHA256(secret, body)>`.
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac_sha256(secret, &[body])))
}

/// A configured webhook. Cheap to clone.
#[derive(Clone)]
pub struct WebhookSink {
    inner: Arc<Inner>,
}

struct Inner {
    url: reqwest::Url,
    /// The URL as messages show it.
    endpoint: String,
    keys: Vec<Vec<u8>>,
    github_key: Option<Secret>,
    headers: HeaderMap,
    client: reqwest::Client,
    timeout: Duration,
    max_response_bytes: usize,
    max_body_bytes: usize,
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink")
            .field("endpoint", &self.inner.endpoint)
            .field("signing_keys", &self.inner.keys.len())
            .field("github_signature", &self.inner.github_key.is_some())
            .field("headers", &self.inner.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// Resolves secrets and builds the client. Errors name the key, never a secret value.
    pub fn build(
        c: &WebhookConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<WebhookSink, String> {
        let url_text = c.url.resolve_with(env).map_err(|e| format!("url: {e}"))?;
        let url = parse_url(url_text.expose(), c.allow_http, c.url.is_secret())
            .map_err(|e| format!("url: {e}"))?;
        let mut keys = Vec::new();
        for (path, r) in c
            .signing_secret
            .as_ref()
            .map_or_else(Vec::new, SigningSecrets::keyed)
        {
            let secret = r.resolve_with(env).map_err(|e| format!("{path}: {e}"))?;
            let key = decode_signing_key(secret.expose())
                .map_err(|e| format!("{path}: {}: {e}", r.describe()))?;
            keys.push(key);
        }
        let github_key = match &c.github_signing_secret {
            Some(r) => Some(
                r.resolve_with(env)
                    .map_err(|e| format!("github_signing_secret: {e}"))?,
            ),
            None => None,
        };
        let mut headers = HeaderMap::new();
        for (n, v) in &c.headers {
            check_header_name(n).map_err(|e| format!("headers.{n}: {e}"))?;
            let name = HeaderName::from_bytes(n.as_bytes())
                .map_err(|_| format!("headers.{n}: is not a valid header name"))?;
            let value = v
                .resolve_with(env)
                .map_err(|e| format!("headers.{n}: {e}"))?;
            let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
                format!("headers.{n}: value must be visible ASCII or spaces (no newlines)")
            })?;
            value.set_sensitive(v.is_secret());
            headers.insert(name, value);
        }
        let timeout = c.timeout.0;
        let client = http::client(timeout)?;
        Ok(WebhookSink {
            inner: Arc::new(Inner {
                endpoint: redact_url(&url, c.url.is_secret()),
                url,
                keys,
                github_key,
                headers,
                client,
                timeout,
                max_response_bytes: c.max_response_bytes,
                max_body_bytes: c.max_body_bytes,
            }),
        })
    }

    /// The largest body it sends (`max_body_bytes`).
    pub fn max_body_bytes(&self) -> usize {
        self.inner.max_body_bytes
    }

    /// The endpoint as messages show it (`scheme://host[:port]/path`).
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// The headers of one attempt (configured ones, then sasrelay's). Pure.
    pub fn request_headers(
        &self,
        id: &str,
        timestamp: i64,
        attempt: u32,
        body: &[u8],
    ) -> HeaderMap {
        let mut h = self.inner.headers.clone();
        let mut set = |name: &'static str, value: String| {
            // Every value here is ASCII we produced: ids are hex, the rest digits and base64.
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        };
        set("content-type", "application/json".into());
        set("webhook-id", id.to_string());
        set("webhook-timestamp", timestamp.to_string());
        if !self.inner.keys.is_empty() {
            set(
                "webhook-signature",
                standard_signature(&self.inner.keys, id, timestamp, body),
            );
        }
        if let Some(k) = &self.inner.github_key {
            set(
                "x-hub-signature-256",
                github_signature(k.expose().as_bytes(), body),
            );
        }
        set("x-sasrelay-attempt", attempt.to_string());
        h
    }

    /// One POST to sink `sink`, classified. See the module doc.
    pub async fn deliver(&self, sink: &str, payload: &Payload, attempt: u32) -> Outcome {
        let body = payload::to_json_within(payload, self.inner.max_body_bytes).into_bytes();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let id = delivery_id(payload.id(), sink);
        let headers = self.request_headers(&id, now, attempt, &body);
        let inner = &self.inner;
        let request = inner
            .client
            .post(inner.url.clone())
            .headers(headers)
            .body(body);
        let what = format!("POST {}", inner.endpoint);
        let max = inner.max_response_bytes;
        let reply =
            match http::exchange(request, &what, inner.timeout, max, ReadBody::UnlessSuccess).await
            {
                Ok(r) => r,
                Err(o) => return o,
            };
        classify(
            &inner.endpoint,
            &HttpResponse {
                status: reply.status,
                retry_after: reply.retry_after.as_deref(),
                location: reply.location.as_deref(),
                body: &reply.body,
                body_note: reply.body_note,
                max_body_bytes: max,
            },
            OffsetDateTime::now_utc(),
        )
    }
}

/// The `webhook-id` of the payload `payload_id` at sink `sink`: lowercase hex SHA-256 of the
/// payload id, a NUL byte and the sink's name. One per (event, sink), and stable across
/// retries, restarts and dead-letter replays because both parts are.
pub fn delivery_id(payload_id: &str, sink: &str) -> String {
    use sha2::Digest;
    let mut h = Sha256::new();
    h.update(payload_id.as_bytes());
    h.update([0u8]);
    h.update(sink.as_bytes());
    hex::encode(h.finalize())
}

/// What [`classify`] looks at: the parts of a response that decide an outcome.
#[derive(Clone, Copy, Debug)]
pub struct HttpResponse<'a> {
    /// Status code.
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<&'a str>,
    /// The `Location` header, if any.
    pub location: Option<&'a str>,
    /// The start of the body (empty for 2xx, which is not read).
    pub body: &'a [u8],
    /// Why the body is incomplete, if it is (`body truncated`, `body timed out`).
    pub body_note: Option<&'a str>,
    /// Bound on the body text kept in `response`.
    pub max_body_bytes: usize,
}

/// Sorts a response into an [`Outcome`] (table in the module doc). Pure: `now` is only used to
/// turn an HTTP-date `Retry-After` into a delay.
pub fn classify(endpoint: &str, r: &HttpResponse<'_>, now: OffsetDateTime) -> Outcome {
    let line = status_line(r.status);
    let body = truncate_bytes(
        strip_control(&String::from_utf8_lossy(r.body)).trim(),
        r.max_body_bytes.max(1),
    );
    let response = || {
        let mut text = line.clone();
        if !body.is_empty() {
            text.push_str(": ");
            text.push_str(&body);
        }
        if let Some(note) = r.body_note {
            text.push_str(&format!(" ({note})"));
        }
        Some(text)
    };
    let retry = || Outcome::Retry {
        after: r.retry_after.and_then(|v| parse_retry_after(v, now)),
        reason: if body.is_empty() {
            format!("{line} from {endpoint}")
        } else {
            format!("{line} from {endpoint}: {}", truncate_bytes(&body, 200))
        },
    };
    let permanent = |why: &str| Outcome::Permanent {
        reason: format!("{line} from {endpoint}{why}"),
        response: response(),
    };
    match r.status {
        200..=299 => Outcome::Delivered {
            detail: format!("{line} from {endpoint}"),
        },
        300..=399 => permanent(&format!(
            ": redirect to {} not followed; set `url` to the final address",
            r.location
                .map(redact_location)
                .unwrap_or_else(|| "(no Location)".into())
        )),
        408 | 425 | 429 => retry(),
        410 => permanent(": the receiver says this endpoint is gone; remove or update the sink"),
        501 | 505 => permanent(""),
        500..=599 => retry(),
        400..=499 => permanent(""),
        _ => permanent(": unexpected status"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const EP: &str = "https://hooks.example.com/in";
    const NOW: OffsetDateTime = datetime!(2024-05-01 08:00:00 UTC);

    fn resp<'a>(status: u16, retry_after: Option<&'a str>, body: &'a [u8]) -> HttpResponse<'a> {
        HttpResponse {
            status,
            retry_after,
            location: None,
            body,
            body_note: None,
            max_body_bytes: 2048,
        }
    }

    #[derive(Debug, PartialEq)]
    enum Class {
        Delivered,
        Retry(Option<u64>),
        Permanent,
    }

    fn class(o: &Outcome) -> Class {
        match o {
            Outcome::Delivered { .. } => Class::Delivered,
            Outcome::Retry { after, .. } => Class::Retry(after.map(|d| d.as_secs())),
            Outcome::Permanent { .. } => Class::Permanent,
            Outcome::Throttled { .. } => panic!("a webhook is never throttled"),
        }
    }

    #[test]
    fn classification_table() {
        use Class::*;
        let date = "Wed, 01 May 2024 08:02:00 GMT";
        let table: &[(u16, Option<&str>, Class)] = &[
            (200, None, Delivered),
            (201, None, Delivered),
            (202, Some("30"), Delivered),
            (204, None, Delivered),
            (299, None, Delivered),
            (301, None, Permanent),
            (302, Some("5"), Permanent),
            (307, None, Permanent),
            (308, None, Permanent),
            (400, None, Permanent),
            (401, None, Permanent),
            (403, None, Permanent),
            (404, None, Permanent),
            (408, None, Retry(None)),
            (410, None, Permanent),
            (413, None, Permanent),
            (422, None, Permanent),
            (425, Some("2"), Retry(Some(2))),
            (429, Some("120"), Retry(Some(120))),
            (429, Some(date), Retry(Some(120))),
            (429, Some("soon"), Retry(None)),
            (500, None, Retry(None)),
            (501, None, Permanent),
            (502, None, Retry(None)),
            (503, Some("7"), Retry(Some(7))),
            (503, Some(date), Retry(Some(120))),
            (503, Some("0"), Retry(Some(1))),
            (503, Some("999999999999999999999"), Retry(Some(3600))),
            (504, None, Retry(None)),
            (505, None, Permanent),
            (507, None, Retry(None)),
            (599, None, Retry(None)),
            (600, None, Permanent),
            (101, None, Permanent),
        ];
        for (status, ra, want) in table {
            let got = classify(EP, &resp(*status, *ra, b""), NOW);
            assert_eq!(&class(&got), want, "{status} {ra:?}: {got:?}");
        }
    }

    #[test]
    fn permanent_failures_carry_a_bounded_clean_response() {
        let mut body = b"{\"error\":\"bad\x1b[31m field\"}\r\n".to_vec();
        body.extend(std::iter::repeat_n(b'x', 5000));
        let mut r = resp(400, None, &body);
        r.max_body_bytes = 100;
        let Outcome::Permanent { reason, response } = classify(EP, &r, NOW) else {
            panic!("permanent expected");
        };
        assert_eq!(
            reason,
            "HTTP 400 Bad Request from https://hooks.example.com/in"
        );
        let response = response.unwrap();
        assert!(response.starts_with("HTTP 400 Bad Request: {\"error\":\"bad [31m field\"}"));
        assert!(!response.chars().any(char::is_control), "{response:?}");
        assert!(
            response.len() <= "HTTP 400 Bad Request: ".len() + 100,
            "{response}"
        );
        // Without a body the response is just the status line.
        let Outcome::Permanent { response, .. } = classify(EP, &resp(404, None, b""), NOW) else {
            panic!()
        };
        assert_eq!(response.as_deref(), Some("HTTP 404 Not Found"));
    }

    #[test]
    fn redirects_name_the_location_without_its_query() {
        let mut r = resp(302, None, b"");
        r.location = Some("https://evil.example:8443/collect?token=SECRET#frag");
        let Outcome::Permanent { reason, .. } = classify(EP, &r, NOW) else {
            panic!()
        };
        assert!(
            reason.contains("https://evil.example:8443/collect"),
            "{reason}"
        );
        assert!(
            !reason.contains("SECRET") && !reason.contains("frag"),
            "{reason}"
        );
    }

    #[test]
    fn header_names_are_checked() {
        for bad in [
            "Content-Type",
            "content-length",
            "Host",
            "Webhook-Signature",
            "webhook-id",
            "Connection",
            "Transfer-Encoding",
            "TE",
            "Upgrade",
            "Keep-Alive",
            "Proxy-Authorization",
            "X-Sasrelay-Attempt",
            "x-hub-signature-256",
            "bad header",
            "",
        ] {
            assert!(check_header_name(bad).is_err(), "{bad}");
        }
        for good in ["Authorization", "X-Team", "user-agent", "Idempotency-Key"] {
            assert!(check_header_name(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn signing_keys_decode_strictly_and_never_echo() {
        assert_eq!(
            decode_signing_key("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
                .unwrap()
                .len(),
            24
        );
        assert_eq!(
            decode_signing_key("C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
                .unwrap()
                .len(),
            24
        );
        let e = decode_signing_key("whsec_c2hvcnQ=").unwrap_err();
        assert!(e.contains("5 bytes"), "{e}");
        let e = decode_signing_key("whsec_not base64!!").unwrap_err();
        assert!(!e.contains("not base64!!"), "{e}");
    }
}
