//! The PagerDuty sink: one `POST {api_base}/v2/enqueue` of a
//! [`render::pagerduty`](crate::render::pagerduty) Events API v2 event per call. New,
//! recurring and reminder events trigger (or update) the finding's alert, `resolved` resolves
//! it under the same `dedup_key`; the mapping table is in the render module.
//!
//! The `routing_key` (integration key) authenticates by being in the body: it is a secret
//! (`{ env = "X" }` / `{ file = "/path" }`), never printed (`render --sink` shows it redacted),
//! and checked when the sink is built (32 ASCII letters and digits). `api_base` may only name
//! PagerDuty's events hosts ([`HOSTS`]) or, for tests, a loopback host, so a config cannot send
//! the key and the findings elsewhere; redirects are never followed.
//!
//! One [`Limiter`] per sink (one routing key), default one event per 500 ms — PagerDuty's 120
//! events a minute — and, like every limiter, starting empty; a faster `rate_limit` is refused
//! unless `api_base` is loopback. The sink never folds a backlog into digests (a digest is one
//! alert, which would not resolve its members' alerts); see the render module for digests that
//! a grouping route sends anyway.
//!
//! ## Classification ([`classify`])
//!
//! | answer | outcome |
//! |---|---|
//! | 202 (or another 2xx whose body says `"status":"success"`) | `Delivered` |
//! | 400 (`invalid event`) | `Permanent`, with PagerDuty's `errors` and the body |
//! | 429 | `Retry` after `Retry-After`, or [`DEFAULT_429_DELAY`] without one (PagerDuty's advice) |
//! | 408, 425, 5xx, network errors, timeouts, another 2xx | `Retry` |
//! | redirects, other 4xx | `Permanent` (401/403/404 with a hint about `routing_key`/`api_base`) |

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::Outcome;
use super::http::{
    self, ReadBody, default_timeout, is_loopback, parse_retry_after, redact_location, status_line,
    vendor_url,
};
use super::limit::{Limiter, RateLimit};
use crate::duration::HumanDuration;
use crate::event::Payload;
use crate::render::pagerduty::SeverityMap;
use crate::secret::{Secret, SecretRef};
use crate::text::{strip_control, truncate_bytes};

/// Keys of `type = "pagerduty"`, besides the common ones.
pub const KEYS: [&str; 5] = [
    "routing_key",
    "api_base",
    "severity_map",
    "rate_limit",
    "timeout",
];

/// Default `api_base`.
pub const API_BASE: &str = "https://events.pagerduty.com";
/// Hosts `api_base` may name (US and EU service regions); loopback besides, for tests.
pub const HOSTS: [&str; 2] = ["events.pagerduty.com", "events.eu.pagerduty.com"];
/// PagerDuty's limit per routing key.
pub const MAX_PER_MINUTE: u64 = 120;
/// Default `rate_limit.period`: 120 events a minute.
pub const DEFAULT_PERIOD: Duration = Duration::from_millis(500);
/// Wait after a 429 without `Retry-After` (PagerDuty suggests retrying 30 s apart).
pub const DEFAULT_429_DELAY: Duration = Duration::from_secs(30);
/// Length of an integration key.
pub const ROUTING_KEY_LEN: usize = 32;
/// Bytes of a response body read.
const MAX_RESPONSE: usize = 4096;

/// `type = "pagerduty"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// The integration (routing) key: `{ env = "X" }` or `{ file = "/path" }`.
    #[serde(default)]
    pub routing_key: Option<SecretRef>,
    /// Events API base (tests point it at a fake on loopback).
    #[serde(default = "api_base")]
    pub api_base: String,
    /// Overrides of the severity mapping.
    #[serde(default)]
    pub severity_map: SeverityMap,
    /// Rate limit of the routing key.
    #[serde(default = "default_rate")]
    pub rate_limit: RateLimit,
    /// Whole-attempt timeout.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

fn api_base() -> String {
    API_BASE.into()
}
fn default_rate() -> RateLimit {
    RateLimit::new(DEFAULT_PERIOD, 1)
}

/// Checks `api_base`: https to a PagerDuty events host, or http/https to loopback; no query,
/// fragment or user info.
fn check_api_base(text: &str) -> Result<reqwest::Url, String> {
    let url = vendor_url(text, false, false, &HOSTS, "a PagerDuty events host")?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err("must be a base URL without query, fragment or user info".into());
    }
    Ok(url)
}

impl PagerDutyConfig {
    /// Semantic problems as `(key, message)`; see [`SinkConfig::check`](super::SinkConfig::check).
    pub fn check(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if self.routing_key.is_none() {
            p.push((
                "routing_key".to_string(),
                "is required: the service's Events API v2 integration key, as { env = \"NAME\" } or { file = \"/path\" }".into(),
            ));
        }
        let loopback = match check_api_base(&self.api_base) {
            Ok(u) => is_loopback(u.host_str().unwrap_or_default()),
            Err(e) => {
                p.push(("api_base".to_string(), e));
                false
            }
        };
        p.extend(self.rate_limit.check("rate_limit"));
        if !loopback && self.rate_limit.period.0 < DEFAULT_PERIOD {
            p.push((
                "rate_limit.period".to_string(),
                format!(
                    "{:?} is faster than PagerDuty's {MAX_PER_MINUTE} events a minute per routing key; use at least \"500ms\"",
                    self.rate_limit.period.0
                ),
            ));
        }
        p.extend(http::check_timeout(self.timeout.0));
        p
    }

    /// Makes a relative `file` secret relative to `base`.
    pub fn anchor(&mut self, base: &Path) {
        if let Some(k) = &mut self.routing_key {
            k.anchor(base);
        }
    }
}

/// Checks a resolved routing key; the message never holds it.
fn check_routing_key(key: &str) -> Result<(), String> {
    let n = key.chars().count();
    if n != ROUTING_KEY_LEN || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "routing_key: is not an integration key ({ROUTING_KEY_LEN} letters and digits; got {n} characters)"
        ));
    }
    Ok(())
}

/// Sorts a PagerDuty answer into an [`Outcome`] (table in the module doc). Pure: `now` only
/// turns an HTTP-date `Retry-After` into a delay.
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    location: Option<&str>,
    body: &[u8],
    now: OffsetDateTime,
) -> Outcome {
    let text = truncate_bytes(strip_control(&String::from_utf8_lossy(body)).trim(), 1024);
    let line = status_line(status);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(|s| truncate_bytes(&strip_control(s), 200))
    };
    let response = Some(if text.is_empty() {
        line.clone()
    } else {
        format!("{line}: {text}")
    });
    let after = retry_after.and_then(|v| parse_retry_after(v, now));
    match status {
        202 => Outcome::Delivered {
            detail: format!("{line} from PagerDuty"),
        },
        200..=299 if field("status").as_deref() == Some("success") => Outcome::Delivered {
            detail: format!("{line} from PagerDuty"),
        },
        200..=299 => Outcome::Retry {
            after,
            reason: format!(
                "{line} from PagerDuty without \"status\":\"success\"; delivery undetermined"
            ),
        },
        300..=399 => Outcome::Permanent {
            reason: format!(
                "{line} from PagerDuty: redirect to {} not followed; check `api_base`",
                location
                    .map(redact_location)
                    .unwrap_or_else(|| "(no Location)".into())
            ),
            response,
        },
        400 => Outcome::Permanent {
            reason: format!("{line} from PagerDuty: {}", invalid_event(parsed.as_ref())),
            response,
        },
        429 => Outcome::Retry {
            after: Some(after.unwrap_or(DEFAULT_429_DELAY)),
            reason: format!(
                "{line} from PagerDuty: more than about {MAX_PER_MINUTE} events a minute for this routing key"
            ),
        },
        408 | 425 | 500..=599 => Outcome::Retry {
            after,
            reason: format!("{line} from PagerDuty"),
        },
        401 | 403 | 404 => Outcome::Permanent {
            reason: format!(
                "{line} from PagerDuty: check `routing_key` (an Events API v2 integration key) and `api_base`"
            ),
            response,
        },
        _ => Outcome::Permanent {
            reason: format!("{line} from PagerDuty"),
            response,
        },
    }
}

/// Why PagerDuty refused an event (its 400 body): its `status` and up to five of its `errors`,
/// each bounded and without control characters.
fn invalid_event(body: Option<&Value>) -> String {
    let clean = |s: &str| truncate_bytes(&strip_control(s), 200);
    let what = body
        .and_then(|v| v.get("status"))
        .and_then(Value::as_str)
        .map_or_else(|| "invalid event".into(), clean);
    let errors: Vec<String> = body
        .and_then(|v| v.get("errors"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .take(5)
                .map(clean)
                .collect()
        })
        .unwrap_or_default();
    if errors.is_empty() {
        what
    } else {
        format!("{what}: {}", errors.join("; "))
    }
}

/// A configured PagerDuty sink. Cheap to clone.
#[derive(Clone)]
pub struct PagerDutySink {
    inner: Arc<Inner>,
}

struct Inner {
    config: PagerDutyConfig,
    url: reqwest::Url,
    endpoint: String,
    routing_key: Secret,
    limiter: Limiter,
    client: reqwest::Client,
}

impl fmt::Debug for PagerDutySink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PagerDutySink")
            .field("endpoint", &self.inner.endpoint)
            .field("routing_key", &self.inner.routing_key)
            .finish_non_exhaustive()
    }
}

impl PagerDutySink {
    /// Resolves and checks the routing key, builds the limiter and the client.
    pub fn build(
        c: &PagerDutyConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<PagerDutySink, String> {
        let Some(r) = &c.routing_key else {
            return Err("routing_key: is required".into());
        };
        let key = r
            .resolve_with(env)
            .map_err(|e| format!("routing_key: {e}"))?;
        let key = key.expose().trim().to_string();
        check_routing_key(&key)?;
        let base = check_api_base(&c.api_base).map_err(|e| format!("api_base: {e}"))?;
        let url = reqwest::Url::parse(&format!(
            "{}/v2/enqueue",
            base.as_str().trim_end_matches('/')
        ))
        .map_err(|e| format!("api_base: {e}"))?;
        Ok(PagerDutySink {
            inner: Arc::new(Inner {
                endpoint: http::redact_url(&url, false),
                config: c.clone(),
                url,
                routing_key: Secret::new(key),
                limiter: Limiter::new(&c.rate_limit),
                client: http::client(c.timeout.0)?,
            }),
        })
    }

    /// The exact JSON body sent for `payload`.
    pub fn render(&self, payload: &Payload) -> Value {
        crate::render::pagerduty::render(
            payload,
            self.inner.routing_key.expose(),
            &self.inner.config.severity_map,
        )
    }

    /// The body with the routing key redacted, for `sasrelay render`.
    pub fn preview(&self, payload: &Payload) -> Value {
        crate::render::pagerduty::render(payload, "<redacted>", &self.inner.config.severity_map)
    }

    /// One POST, classified (module doc); [`Outcome::Throttled`] without a permit.
    pub async fn deliver(&self, payload: &Payload) -> Outcome {
        if let Err(after) = self.inner.limiter.try_acquire() {
            return Outcome::Throttled { after };
        }
        let body = serde_json::to_vec(&self.render(payload)).unwrap_or_default();
        let request = self
            .inner
            .client
            .post(self.inner.url.clone())
            .header("content-type", "application/json")
            .body(body);
        let what = format!("POST {}", self.inner.endpoint);
        let timeout = self.inner.config.timeout.0;
        let reply =
            match http::exchange(request, &what, timeout, MAX_RESPONSE, ReadBody::Always).await {
                Ok(r) => r,
                Err(o) => return o,
            };
        classify(
            reply.status,
            reply.retry_after.as_deref(),
            reply.location.as_deref(),
            &reply.body,
            OffsetDateTime::now_utc(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2024-05-01 08:00:00 UTC);

    #[derive(Debug, PartialEq)]
    enum C {
        Ok,
        Retry(Option<u64>),
        Perm,
    }

    fn c(status: u16, ra: Option<&str>, body: &str) -> C {
        match classify(status, ra, None, body.as_bytes(), NOW) {
            Outcome::Delivered { .. } => C::Ok,
            Outcome::Retry { after, .. } => C::Retry(after.map(|d| d.as_secs())),
            Outcome::Permanent { .. } => C::Perm,
            Outcome::Throttled { .. } => unreachable!(),
        }
    }

    #[test]
    fn answers_are_classified() {
        let ok = r#"{"status":"success","message":"Event processed","dedup_key":"k"}"#;
        assert_eq!(c(202, None, ok), C::Ok);
        assert_eq!(c(202, None, ""), C::Ok);
        assert_eq!(c(200, None, ok), C::Ok);
        assert_eq!(c(200, None, "{}"), C::Retry(None));
        assert_eq!(c(429, None, ""), C::Retry(Some(30)));
        assert_eq!(c(429, Some("2"), ""), C::Retry(Some(2)));
        assert_eq!(c(500, None, ""), C::Retry(None));
        assert_eq!(c(503, Some("7"), "<html>"), C::Retry(Some(7)));
        assert_eq!(c(408, None, ""), C::Retry(None));
        for s in [301, 302, 400, 401, 403, 404, 413, 422] {
            assert_eq!(c(s, None, ""), C::Perm, "{s}");
        }
    }

    #[test]
    fn a_400_keeps_the_errors_and_a_clean_body() {
        let body = "{\"status\":\"invalid event\",\"message\":\"Event object is invalid\",\"errors\":[\"Length of 'routing_key' is incorrect (should be 32 characters)\\u001b[2J\"]}";
        match classify(400, None, None, body.as_bytes(), NOW) {
            Outcome::Permanent { reason, response } => {
                assert!(reason.contains("invalid event"), "{reason}");
                assert!(reason.contains("routing_key"), "{reason}");
                let r = response.unwrap();
                assert!(r.starts_with("HTTP 400 Bad Request: {"), "{r}");
                assert!(!r.chars().any(char::is_control), "{r:?}");
                assert!(!reason.chars().any(char::is_control), "{reason:?}");
            }
            other => panic!("{other:?}"),
        }
        match classify(302, None, Some("https://evil.example/x?key=1"), b"", NOW) {
            Outcome::Permanent { reason, .. } => {
                assert!(reason.contains("evil.example/x"), "{reason}");
                assert!(!reason.contains("key=1"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    fn problems(text: &str) -> Vec<String> {
        let c: PagerDutyConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        c.check().into_iter().map(|p| p.0).collect()
    }

    #[test]
    fn config_is_checked_by_key() {
        let key = "routing_key = { env = \"PD\" }\n";
        assert!(problems(key).is_empty());
        assert_eq!(problems(""), ["routing_key"]);
        for ok in [
            "https://events.pagerduty.com",
            "https://events.eu.pagerduty.com/",
            "http://127.0.0.1:9",
            "http://[::1]:9/pd",
        ] {
            assert!(
                problems(&format!("{key}api_base = \"{ok}\"")).is_empty(),
                "{ok}"
            );
        }
        for bad in [
            "http://events.pagerduty.com",
            "https://events.pagerduty.com.evil.example",
            "https://evil.example",
            "https://events.pagerduty.com/?x=1",
            "https://user@events.pagerduty.com",
            "ftp://127.0.0.1",
            "not a url",
        ] {
            assert_eq!(
                problems(&format!("{key}api_base = \"{bad}\"")),
                ["api_base"],
                "{bad}"
            );
        }
        assert_eq!(
            problems(&format!("{key}rate_limit = {{ period = \"100ms\" }}")),
            ["rate_limit.period"]
        );
        assert!(
            problems(&format!(
                "{key}rate_limit = {{ period = \"1ms\" }}\napi_base = \"http://127.0.0.1:9\""
            ))
            .is_empty()
        );
        assert!(toml::from_str::<PagerDutyConfig>("routing_key = \"inline\"").is_err());
        assert!(toml::from_str::<PagerDutyConfig>("service_key = \"x\"").is_err());
    }

    #[test]
    fn routing_keys_are_checked_without_echo() {
        assert!(check_routing_key("0123456789abcdef0123456789ABCDEF").is_ok());
        for bad in [
            "short",
            "0123456789abcdef0123456789abcdef0",
            "0123456789abcdef0123456789abcd\"}",
        ] {
            let e = check_routing_key(bad).unwrap_err();
            assert!(!e.contains(bad), "{e}");
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let c: PagerDutyConfig =
            toml::from_str("routing_key = { env = \"PD\" }\napi_base = \"http://127.0.0.1:9\"")
                .unwrap();
        let key = "0123456789abcdef0123456789abcdef";
        let s = PagerDutySink::build(&c, &|_| Some(format!(" {key}\n"))).unwrap();
        assert!(!format!("{s:?}").contains(key));
        let p: Payload = crate::render::sample_event(crate::finding::Domain::Alerts).into();
        assert_eq!(s.render(&p)["routing_key"], key);
        assert_eq!(s.preview(&p)["routing_key"], "<redacted>");
        assert_eq!(s.inner.url.as_str(), "http://127.0.0.1:9/v2/enqueue");
    }
}
