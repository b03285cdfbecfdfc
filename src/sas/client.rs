//! The Security Center transport: one signed HTTP call, its body read under a size cap, and the
//! answer decoded or turned into a classified [`SasError`].
//!
//! [`SasClient::call_once`] makes exactly one HTTP request and never sleeps;
//! [`SasClient::call`] retries throttling, server errors, timeouts and broken bodies under the
//! source's [`RetryPolicy`] (honouring `x-acs-retry-after`) and returns the last error when the
//! attempts run out. Permanent errors (signature, key, permission, parameters) are never retried.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use time::macros::format_description;

use super::error::{ApiErrorBody, SasError};
use super::params::Params;
use super::quota;
use super::retry::RetryPolicy;
use super::sign::{self, SignatureVersion, SigningContext, UnsignedRequest};
use crate::credentials::CredentialHandle;
use crate::http_body::{BodyError, read_whole};

/// How a client talks to one Security Center endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientSettings {
    /// `https://tds.cn-shanghai.aliyuncs.com`, or an explicit override such as
    /// `http://127.0.0.1:8901` for the simulator.
    pub endpoint: String,
    /// Signature algorithm.
    pub signature: SignatureVersion,
    /// `Lang` for display names: `en` or `zh`.
    pub lang: String,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-call timeout, body included.
    pub timeout: Duration,
    /// Largest response body accepted.
    pub max_body_bytes: usize,
    /// Hard cap on pages per listing.
    pub max_pages: u32,
    /// Retries of throttled, failed and timed-out calls within one listing.
    pub retry: RetryPolicy,
    /// Calls per second per action, shared with every source of the same site and quota
    /// group (see [`crate::sas::quota`]).
    pub calls_per_second: NonZeroU32,
    /// The quota group (empty: the site's shared one).
    pub quota_group: String,
}

impl ClientSettings {
    /// Settings with the documented defaults for an endpoint.
    pub fn new(endpoint: impl Into<String>) -> Self {
        ClientSettings {
            endpoint: endpoint.into(),
            signature: SignatureVersion::V3,
            lang: "en".into(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            max_body_bytes: 16 << 20,
            max_pages: 200,
            retry: RetryPolicy::default(),
            calls_per_second: NonZeroU32::new(quota::DEFAULT_CALLS_PER_SECOND)
                .unwrap_or(NonZeroU32::MIN),
            quota_group: String::new(),
        }
    }
}

/// A client for one source (account + site). Cheap to clone.
#[derive(Clone, Debug)]
pub struct SasClient {
    http: reqwest::Client,
    settings: Arc<ClientSettings>,
    /// `host[:port]` of the endpoint, exactly as the HTTP stack sends it in `Host`.
    host: Arc<str>,
    credentials: CredentialHandle,
    /// What the answers' `Date` headers say of the local clock.
    clock: Arc<ServiceClock>,
}

/// How far the local wall clock runs ahead of Security Center's, as the `Date` header of the
/// latest answer tells it. `Date` has whole seconds, so the figure errs by up to a second
/// plus the answer's latency towards "ahead": a watermark moved back by it is never later
/// than the service's own now.
#[derive(Debug, Default)]
pub struct ServiceClock {
    /// Local minus service time at the latest answer, ms; [`i64::MIN`] until one is seen.
    ahead_ms: AtomicI64,
    /// The clocks are [`CLOCK_APART`] apart or more (warned once per episode).
    apart: AtomicBool,
    /// The latest `Date` was [`IMPLAUSIBLE_APART`] or more away (warned once per episode).
    implausible: AtomicBool,
}

/// Local and service clocks this far apart (or more) are worth a warning: windows are read
/// by the service's clock, and past 15 minutes the service refuses signatures.
const CLOCK_APART: Duration = Duration::from_secs(60);

/// A `Date` this far from the local clock (or more) is not believed: see
/// [`ServiceClock::observe`].
const IMPLAUSIBLE_APART: Duration = Duration::from_secs(86_400);

impl ServiceClock {
    fn new() -> Self {
        ServiceClock {
            ahead_ms: AtomicI64::new(i64::MIN),
            apart: AtomicBool::new(false),
            implausible: AtomicBool::new(false),
        }
    }

    /// Notes an answer's `Date` header from `endpoint`, received at `local_ms`.
    fn observe(&self, endpoint: &str, date: &str, local_ms: i64) {
        let Ok(at) = httpdate::parse_http_date(date) else {
            return;
        };
        let service_ms = match at.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(_) => return,
        };
        let ahead = local_ms.saturating_sub(service_ms);
        let implausible_ms = i64::try_from(IMPLAUSIBLE_APART.as_millis()).unwrap_or(i64::MAX);
        if ahead.saturating_abs() >= implausible_ms {
            // Security Center refuses signatures 15 minutes off, so an answer dated a day
            // away is a proxy's (or a damaged) header, or a clock no call can succeed with;
            // taking it would move every window by that much (a 1970 date: read from 1970).
            if !self.implausible.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    endpoint,
                    date,
                    ahead_s = ahead / 1000,
                    "An answer's Date header is more than a day from the local clock; ignored for reading windows. Either a proxy rewrites Date or the local clock is badly wrong (then Security Center refuses every signature)."
                );
            }
            return;
        }
        self.implausible.store(false, Ordering::Relaxed);
        self.ahead_ms.store(ahead, Ordering::Relaxed);
        let apart_ms = i64::try_from(CLOCK_APART.as_millis()).unwrap_or(i64::MAX);
        // Back in step at half the distance, so a clock hovering at the line warns once.
        let apart = ahead.saturating_abs() >= apart_ms;
        let in_step = ahead.saturating_abs() < apart_ms / 2;
        if apart && !self.apart.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                endpoint,
                ahead_s = ahead / 1000,
                "The local clock is {} s {} Security Center's (its answers' Date header). Alert and firewall windows are read by Security Center's clock, so nothing is missed, but keep NTP running: past 15 minutes Security Center refuses every signature.",
                ahead.saturating_abs() / 1000,
                if ahead > 0 { "ahead of" } else { "behind" },
            );
        } else if in_step && self.apart.swap(false, Ordering::Relaxed) {
            tracing::info!(
                endpoint,
                "The local clock is in step with Security Center's again."
            );
        }
    }

    /// Local minus service time (ms; negative: the local clock is behind), once an answer
    /// told it.
    pub fn ahead_ms(&self) -> Option<i64> {
        Some(self.ahead_ms.load(Ordering::Relaxed)).filter(|ms| *ms != i64::MIN)
    }
}

/// The user agent sent (and signed) on every call.
pub const USER_AGENT: &str = concat!("sasrelay/", env!("CARGO_PKG_VERSION"));

impl SasClient {
    /// Builds a client. Fails when the endpoint is not an absolute http(s) URL.
    pub fn new(settings: ClientSettings, credentials: CredentialHandle) -> Result<Self, String> {
        let url = reqwest::Url::parse(&settings.endpoint)
            .map_err(|e| format!("invalid endpoint `{}`: {e}", settings.endpoint))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "invalid endpoint `{}`: expected http(s)://host[:port]",
                settings.endpoint
            ));
        }
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(SasClient {
            http,
            settings: Arc::new(settings),
            host: host.into(),
            credentials,
            clock: Arc::new(ServiceClock::new()),
        })
    }

    /// How far the local clock runs ahead of Security Center's ([`ServiceClock`]).
    pub fn service_clock(&self) -> &ServiceClock {
        &self.clock
    }

    /// The hard cap on pages per listing.
    pub fn max_pages(&self) -> u32 {
        self.settings.max_pages
    }

    /// `Lang` to request display names in.
    pub fn lang(&self) -> &str {
        &self.settings.lang
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.settings.endpoint
    }

    /// Calls `action`, retrying throttling, server errors, timeouts and broken responses under
    /// the configured [`RetryPolicy`] (honouring `x-acs-retry-after`); permanent errors return at
    /// once. `form` is `Some` for actions whose SDK model has a form body (`DescribeSuspEvents`).
    pub async fn call<T: DeserializeOwned>(
        &self,
        action: &str,
        query: &Params,
        form: Option<&Params>,
    ) -> Result<T, SasError> {
        let mut attempt = 1;
        loop {
            let err = match self.call_once(action, query, form).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let Some(delay) = self
                .settings
                .retry
                .next_delay(attempt, &err, rand::random::<f64>())
            else {
                return Err(err);
            };
            tracing::warn!(
                endpoint = %self.settings.endpoint,
                action,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %err,
                "Security Center call failed; retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Calls `action` exactly once and decodes the success body.
    pub async fn call_once<T: DeserializeOwned>(
        &self,
        action: &str,
        query: &Params,
        form: Option<&Params>,
    ) -> Result<T, SasError> {
        let (status, retry_after, bytes) = self.send(action, query, form).await?;
        decode_response(action, status, retry_after, &bytes)
    }

    async fn send(
        &self,
        action: &str,
        query: &Params,
        form: Option<&Params>,
    ) -> Result<(u16, Option<Duration>, Vec<u8>), SasError> {
        // The permit first: the signature's timestamp must be taken after any wait.
        let key = quota::BucketKey {
            site: self.host.to_string(),
            group: self.settings.quota_group.clone(),
            action: action.to_string(),
        };
        let waited = quota::acquire(&key, self.settings.calls_per_second).await;
        if !waited.is_zero() {
            tracing::trace!(
                action,
                waited_ms = waited.as_millis() as u64,
                "Waited for the call budget."
            );
        }
        let credential = self
            .credentials
            .current()
            .map_err(|e| SasError::Credentials(e.to_string()))?;
        let ctx = SigningContext {
            timestamp: OffsetDateTime::now_utc()
                .format(format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
                ))
                .expect("timestamp formats"),
            nonce: uuid::Uuid::new_v4().simple().to_string(),
            user_agent: Some(USER_AGENT.to_string()),
            credentials_provider: Some(credential.provider.to_string()),
        };
        let unsigned = UnsignedRequest {
            method: "POST",
            host: &self.host,
            action,
            query,
            form,
        };
        let signed = sign::sign(
            self.settings.signature,
            &unsigned,
            &ctx,
            &credential.signing_key(),
        );
        let base = self.settings.endpoint.trim_end_matches('/');
        let mut request = self
            .http
            .post(format!("{base}/?{}", signed.query))
            .body(signed.body);
        for (name, value) in &signed.headers {
            // reqwest derives `Host` from the URL; it equals the signed value.
            if name != "host" {
                request = request.header(name.as_str(), value.as_str());
            }
        }
        let transport = |e: reqwest::Error| {
            let timeout = e.is_timeout();
            SasError::Transport {
                action: action.to_string(),
                endpoint: self.settings.endpoint.clone(),
                // The URL carries the AccessKey ID and, under V1, the STS token: never print it.
                reason: crate::text::error_chain(&e.without_url()),
                timeout,
            }
        };
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        if let Some(date) = response.headers().get("date").and_then(|v| v.to_str().ok()) {
            self.clock.observe(
                &self.settings.endpoint,
                date,
                crate::clock::unix_ms(OffsetDateTime::now_utc()),
            );
        }
        let retry_after = response
            .headers()
            .get("x-acs-retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis);
        let request_id = response
            .headers()
            .get("x-acs-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let cap = self.settings.max_body_bytes;
        let body = match read_whole(&mut response, cap).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                let reason = format!("response body larger than {cap} bytes");
                return Err(malformed(action, status, &request_id, reason));
            }
            Err(BodyError::Failed { error, .. }) if error.is_timeout() => {
                return Err(transport(error));
            }
            Err(BodyError::Failed { read, error }) => {
                let reason = format!(
                    "response truncated after {read} bytes: {}",
                    crate::text::error_chain(&error.without_url())
                );
                return Err(malformed(action, status, &request_id, reason));
            }
        };
        Ok((status, retry_after, body))
    }
}

fn malformed(action: &str, status: u16, request_id: &str, reason: String) -> SasError {
    SasError::Malformed {
        action: action.to_string(),
        status,
        request_id: if request_id.is_empty() {
            "unknown".into()
        } else {
            request_id.to_string()
        },
        reason,
    }
}

/// Turns a received response into the decoded body or a classified error. Pure, so every odd
/// answer the service can give is unit-tested.
pub fn decode_response<T: DeserializeOwned>(
    action: &str,
    status: u16,
    retry_after: Option<Duration>,
    bytes: &[u8],
) -> Result<T, SasError> {
    if let Some(body) = ApiErrorBody::parse(bytes).filter(|_| status != 200) {
        return Err(SasError::Api {
            action: action.to_string(),
            status,
            body: Box::new(body),
            retry_after,
        });
    }
    let request_id = request_id_of(bytes);
    if status != 200 {
        // Not an Alibaba error body: a proxy or load balancer answered. Classify by status.
        let snippet: String = crate::text::strip_control(&String::from_utf8_lossy(bytes))
            .trim()
            .chars()
            .take(200)
            .collect();
        return Err(SasError::Api {
            action: action.to_string(),
            status,
            body: Box::new(ApiErrorBody {
                code: format!("HTTP{status}"),
                message: if snippet.is_empty() {
                    "empty body".into()
                } else {
                    snippet
                },
                request_id,
                ..Default::default()
            }),
            retry_after,
        });
    }
    // One byte that is not UTF-8 (in a command line an attacker wrote) must not fail the
    // whole answer: it becomes U+FFFD, and the record it sits in is still delivered.
    let text = String::from_utf8_lossy(bytes);
    if let std::borrow::Cow::Owned(_) = text {
        tracing::warn!(
            action,
            "Security Center answered with bytes that are not UTF-8; they were replaced with U+FFFD."
        );
    }
    serde_json::from_str::<T>(&text).map_err(|e| SasError::Malformed {
        action: action.to_string(),
        status,
        request_id: if request_id.is_empty() {
            "unknown".into()
        } else {
            request_id
        },
        reason: if e.is_eof() {
            format!("response truncated: {e}")
        } else if e.is_data() {
            format!("not a {action} answer: {e}")
        } else {
            format!("invalid JSON for {action}: {e}")
        },
    })
}

fn request_id_of(bytes: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Rid {
        #[serde(rename = "RequestId", alias = "requestId", default)]
        request_id: String,
    }
    serde_json::from_slice::<Rid>(bytes)
        .map(|r| r.request_id)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sas::error::ErrorClass;

    #[test]
    fn the_service_clock_is_read_from_date_headers() {
        let clock = ServiceClock::new();
        assert_eq!(clock.ahead_ms(), None, "unknown until an answer tells");
        // 2026-12-05T12:00:00Z.
        let date = "Sat, 05 Dec 2026 12:00:00 GMT";
        let service_ms = 1_796_472_000_000;
        clock.observe("e", date, service_ms + 600_400);
        assert_eq!(clock.ahead_ms(), Some(600_400));
        assert!(clock.apart.load(Ordering::Relaxed));
        clock.observe("e", date, service_ms - 90_000);
        assert_eq!(clock.ahead_ms(), Some(-90_000), "behind");
        // Still apart until within half the line: one warning per episode.
        clock.observe("e", date, service_ms + 45_000);
        assert!(clock.apart.load(Ordering::Relaxed));
        clock.observe("e", date, service_ms + 700);
        assert!(!clock.apart.load(Ordering::Relaxed));
        // A header that is not a date changes nothing.
        clock.observe("e", "yesterday", service_ms);
        assert_eq!(clock.ahead_ms(), Some(700));
        // A date a day or more away (a proxy's 1970) is not believed: windows stay put.
        clock.observe("e", "Thu, 01 Jan 1970 00:00:01 GMT", service_ms);
        assert_eq!(clock.ahead_ms(), Some(700));
        assert!(clock.implausible.load(Ordering::Relaxed));
        clock.observe("e", "Sun, 06 Dec 2026 12:00:00 GMT", service_ms);
        assert_eq!(clock.ahead_ms(), Some(700), "a day ahead");
        clock.observe("e", date, service_ms + 3_600_000);
        assert_eq!(clock.ahead_ms(), Some(3_600_000), "an hour is believed");
        assert!(!clock.implausible.load(Ordering::Relaxed));
    }

    #[derive(serde::Deserialize, Debug)]
    struct Body {
        #[serde(rename = "TotalCount")]
        total: i64,
    }

    #[test]
    fn success_decodes() {
        let b: Body =
            decode_response("A", 200, None, br#"{"RequestId":"r","TotalCount":3}"#).unwrap();
        assert_eq!(b.total, 3);
    }

    #[test]
    fn error_body_is_classified_by_code_with_retry_after() {
        let e = decode_response::<Body>(
            "DescribeSuspEvents",
            400,
            Some(Duration::from_millis(1500)),
            br#"{"RequestId":"R9","HostId":"h","Code":"Throttling.User","Message":"Request was denied due to user flow control.","Recommend":"x"}"#,
        )
        .unwrap_err();
        assert_eq!(e.class(), Some(ErrorClass::Throttled));
        assert!(e.retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
        assert!(e.to_string().contains("R9"));
    }

    #[test]
    fn bytes_that_are_not_utf8_do_not_fail_the_answer() {
        let mut body =
            br#"{"RequestId":"r","TotalCount":1,"SuspEvents":[{"Id":1,"Name":"x"#.to_vec();
        body.extend_from_slice(&[0xff, 0xfe]);
        body.extend_from_slice(br#""}]}"#);
        let page: crate::sas::models::SuspEventsResponse =
            decode_response("DescribeSuspEvents", 200, None, &body).unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].name, "x\u{fffd}\u{fffd}");
    }

    #[test]
    fn truncated_and_malformed_bodies_are_errors_not_panics() {
        let full = br#"{"RequestId":"R1","TotalCount":3}"#;
        for cut in 0..full.len() {
            let e = decode_response::<Body>("A", 200, None, &full[..cut]).unwrap_err();
            assert!(matches!(e, SasError::Malformed { .. }), "{cut}: {e}");
        }
        let e = decode_response::<Body>("A", 200, None, br#"{"RequestId":"R2","TotalCount":"x"}"#)
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("R2") && text.contains("not a A answer"),
            "{text}"
        );
        let e = decode_response::<Body>("A", 200, None, b"<html>oops</html>").unwrap_err();
        assert!(matches!(e, SasError::Malformed { .. }));
    }

    #[test]
    fn non_alibaba_error_pages_are_classified_by_status() {
        let e = decode_response::<Body>("A", 502, None, b"<html>Bad Gateway</html>").unwrap_err();
        assert_eq!(e.class(), Some(ErrorClass::Server));
        assert!(e.to_string().contains("HTTP502"));
        let e = decode_response::<Body>("A", 403, None, b"").unwrap_err();
        assert_eq!(e.class(), Some(ErrorClass::Permission));
    }

    #[test]
    fn endpoint_must_be_absolute_http() {
        let creds = CredentialHandle::fixed(crate::credentials::Credential {
            access_key_id: "id".into(),
            access_key_secret: crate::secret::Secret::new("s"),
            security_token: None,
            expiration: None,
            provider: "static_ak",
        });
        assert!(
            SasClient::new(
                ClientSettings::new("tds.cn-shanghai.aliyuncs.com"),
                creds.clone()
            )
            .is_err()
        );
        assert!(SasClient::new(ClientSettings::new("ftp://x"), creds.clone()).is_err());
        let c = SasClient::new(ClientSettings::new("http://127.0.0.1:8901"), creds).unwrap();
        assert_eq!(&*c.host, "127.0.0.1:8901");
    }
}
