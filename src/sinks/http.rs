//! The HTTP plumbing every HTTP sink shares (webhook, DingTalk, Feishu, WeCom, Slack,
//! PagerDuty): the client, the URL rules, one exchange with its capped body, and the text of
//! what went wrong.
//!
//! - **Client** ([`client`]): rustls (reqwest's only TLS here), a connect timeout of at most
//!   [`CONNECT_TIMEOUT`], the sink's whole-attempt `timeout`, sasrelay's [`USER_AGENT`], and no
//!   redirects: a token in a URL must not reach another host.
//! - **URLs** ([`parse_url`], [`vendor_url`]): `https://`, or `http://` to loopback (or anywhere
//!   with `allow_http`); a vendor's sink accepts only that vendor's hosts, besides loopback for
//!   tests. Messages never quote a URL that came from a secret. [`redact_url`] and
//!   [`redact_location`] print URLs without user info, query or fragment.
//! - **One exchange** ([`exchange`]): send, read `Retry-After` and `Location`, read the body
//!   under a cap ([`crate::http_body`]: exactly the cap is whole, more is "body truncated"). A
//!   transport failure is [`Outcome::Retry`] whose reason names the request but never its URL.
//! - **Answers**: [`status_line`] (`HTTP 503 Service Unavailable`) and [`parse_retry_after`]
//!   (seconds or an HTTP-date, clamped to [`RETRY_AFTER_RANGE`]).

use std::net::IpAddr;
use std::time::Duration;

use time::OffsetDateTime;

use super::Outcome;
use crate::duration::HumanDuration;
use crate::http_body::{BodyEnd, read_capped};
use crate::text::{error_chain, strip_control, truncate_bytes};

/// `User-Agent` of every HTTP request a sink makes.
pub const USER_AGENT: &str = concat!("sasrelay/", env!("CARGO_PKG_VERSION"));
/// Default `timeout` of the HTTP sinks.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest `timeout`.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// Connect timeout (or `timeout`, when shorter).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bounds applied to a receiver's `Retry-After`.
pub const RETRY_AFTER_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(3600));

/// The serde default of `timeout` ([`DEFAULT_TIMEOUT`]).
pub fn default_timeout() -> HumanDuration {
    HumanDuration(DEFAULT_TIMEOUT)
}

/// Checks a `timeout`: more than zero, at most [`MAX_TIMEOUT`].
pub fn check_timeout(t: Duration) -> Vec<(String, String)> {
    if t.is_zero() || t > MAX_TIMEOUT {
        vec![(
            "timeout".to_string(),
            format!("{t:?} is out of range: use more than 0s and at most 10m"),
        )]
    } else {
        Vec::new()
    }
}

/// An HTTP client for a sink: timeouts, no redirects (a token in the URL must not reach
/// another host), sasrelay's user agent.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(timeout.min(CONNECT_TIMEOUT))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))
}

/// Parses and checks a sink URL: absolute, with a host, `https://` (or `http://` to loopback,
/// or anywhere with `allow_http`). `secret`: the URL came from a secret, so the message must
/// not quote it.
pub fn parse_url(text: &str, allow_http: bool, secret: bool) -> Result<reqwest::Url, String> {
    let shown = |t: &str| {
        if secret {
            "the URL".to_string()
        } else {
            format!("`{t}`")
        }
    };
    let url = reqwest::Url::parse(text.trim())
        .map_err(|e| format!("{} is not an absolute URL: {e}", shown(text)))?;
    let host = match url.host_str() {
        Some(h) if !h.is_empty() => h,
        _ => return Err(format!("{} has no host", shown(text))),
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_http || is_loopback(host) => Ok(url),
        "http" => Err(format!(
            "{} uses plain http to a non-loopback host: use https://, or set allow_http = true \
             if the network path is trusted",
            shown(text)
        )),
        other => Err(format!(
            "{} has scheme `{other}`; expected https:// (or http://)",
            shown(text)
        )),
    }
}

/// [`parse_url`], then the host must be one of the vendor's `hosts` or loopback (tests), so a
/// config cannot send a credential and the findings elsewhere. `what` names the hosts in the
/// message (`a DingTalk robot host`).
pub fn vendor_url(
    text: &str,
    allow_http: bool,
    secret: bool,
    hosts: &[&str],
    what: &str,
) -> Result<reqwest::Url, String> {
    let url = parse_url(text, allow_http, secret)?;
    let host = url.host_str().unwrap_or_default();
    if !hosts.contains(&host) && !is_loopback(host) {
        return Err(format!(
            "host `{host}` is not {what} ({}); only loopback is accepted besides, for tests",
            hosts.join(", ")
        ));
    }
    Ok(url)
}

/// `localhost`, or a loopback IP address (brackets allowed).
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `scheme://host[:port]/path` of a URL (no user info, query or fragment); only
/// `scheme://host[:port]` when `hide_path` (the URL is a secret and its path may be the token).
pub fn redact_url(url: &reqwest::Url, hide_path: bool) -> String {
    let mut s = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(p) = url.port() {
        s.push_str(&format!(":{p}"));
    }
    if hide_path {
        if url.path() != "/" {
            s.push_str("/…");
        }
    } else {
        s.push_str(url.path());
    }
    s
}

/// A `Location` header made safe to print: absolute URLs as `scheme://host/path`, relative ones
/// cut at `?`/`#`, control characters removed, at most 256 bytes.
pub fn redact_location(location: &str) -> String {
    let shown = match reqwest::Url::parse(location.trim()) {
        Ok(u) => redact_url(&u, false),
        Err(_) => location
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    truncate_bytes(&strip_control(&shown), 256)
}

/// `HTTP 503 Service Unavailable`.
pub fn status_line(status: u16) -> String {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason());
    match reason {
        Some(r) => format!("HTTP {status} {r}"),
        None => format!("HTTP {status}"),
    }
}

/// `Retry-After` as delta-seconds (`120`) or an IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`),
/// clamped to [`RETRY_AFTER_RANGE`]; `None` when unparseable.
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let v = value.trim();
    let (lo, hi) = RETRY_AFTER_RANGE;
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).clamp(lo, hi));
    }
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(v, &fmt).ok()?.assume_utc();
    let secs = (at - now).whole_seconds().max(0) as u64;
    Some(Duration::from_secs(secs).clamp(lo, hi))
}

/// Which answers' bodies [`exchange`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadBody {
    /// Every answer's (the robots answer HTTP 200 with a code in the body).
    Always,
    /// Only a failure's: a 2xx is accepted whatever its body says, and waiting for it could
    /// only turn a delivery into a timeout and a duplicate (the webhook).
    UnlessSuccess,
}

/// One HTTP answer as a sink classifies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// `Retry-After`, as sent.
    pub retry_after: Option<String>,
    /// `Location`, as sent (a redirect's target).
    pub location: Option<String>,
    /// The body, at most the `max` bytes asked for (empty when it was not read).
    pub body: Vec<u8>,
    /// Why the body is incomplete, if it is: `body truncated`, `body timed out`,
    /// `body cut short`.
    pub body_note: Option<&'static str>,
}

/// Sends `request` (one attempt) and reads the answer, the body capped at `max` bytes. A
/// transport failure is an [`Outcome::Retry`] whose reason names `what` (`POST robot 1 of 2`)
/// and never the URL; a request that cannot be built is [`Outcome::Permanent`].
pub async fn exchange(
    request: reqwest::RequestBuilder,
    what: &str,
    timeout: Duration,
    max: usize,
    read: ReadBody,
) -> Result<Reply, Outcome> {
    let mut response = request
        .send()
        .await
        .map_err(|e| transport_failure(what, e, timeout))?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (retry_after, location) = (header("retry-after"), header("location"));
    let status = response.status().as_u16();
    let (body, body_note) = match read {
        ReadBody::UnlessSuccess if (200..300).contains(&status) => (Vec::new(), None),
        _ => {
            let capped = read_capped(&mut response, max).await;
            let note = match capped.end {
                BodyEnd::Complete => None,
                BodyEnd::TooLarge => Some("body truncated"),
                BodyEnd::Failed(e) if e.is_timeout() => Some("body timed out"),
                BodyEnd::Failed(_) => Some("body cut short"),
            };
            (capped.bytes, note)
        }
    };
    Ok(Reply {
        status,
        retry_after,
        location,
        body,
        body_note,
    })
}

/// The outcome of a request that got no answer, never holding the URL.
fn transport_failure(what: &str, e: reqwest::Error, timeout: Duration) -> Outcome {
    let e = e.without_url();
    if e.is_builder() {
        return Outcome::Permanent {
            reason: format!("{what}: cannot build the request: {e}"),
            response: None,
        };
    }
    let reason = if e.is_timeout() {
        format!("{what}: timed out after {timeout:?}")
    } else if e.is_connect() {
        format!("{what}: cannot connect: {}", error_chain(&e))
    } else {
        format!("{what}: {}", error_chain(&e))
    };
    Outcome::Retry {
        after: None,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2024-05-01 08:00:00 UTC);

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            parse_retry_after("120", NOW),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 3 ", NOW), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 01 May 2024 08:00:30 GMT", NOW),
            Some(Duration::from_secs(30))
        );
        // A date in the past means "now", clamped to the 1 s floor.
        assert_eq!(
            parse_retry_after("Wed, 01 May 2024 07:00:00 GMT", NOW),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            parse_retry_after("Thu, 02 May 2024 08:00:00 GMT", NOW),
            Some(Duration::from_secs(3600))
        );
        for bad in ["", "-1", "1.5", "tomorrow", "2024-05-01T08:00:30Z"] {
            assert_eq!(parse_retry_after(bad, NOW), None, "{bad}");
        }
    }

    #[test]
    fn urls_are_checked_and_redacted() {
        assert!(parse_url("https://h.example/x", false, false).is_ok());
        assert!(parse_url("http://127.0.0.1:8080/x", false, false).is_ok());
        assert!(parse_url("http://[::1]:8080/x", false, false).is_ok());
        assert!(parse_url("http://localhost/x", false, false).is_ok());
        let e = parse_url("http://receiver.svc/x?token=T", false, false).unwrap_err();
        assert!(e.contains("allow_http"), "{e}");
        assert!(parse_url("http://receiver.svc/x", true, false).is_ok());
        let e = parse_url("ftp://h/x", true, false).unwrap_err();
        assert!(e.contains("ftp"), "{e}");
        assert!(parse_url("hooks.example.com/x", false, false).is_err());
        // A secret URL is never quoted.
        let e = parse_url("ftp://h/TOKEN", true, true).unwrap_err();
        assert!(!e.contains("TOKEN"), "{e}");
        let u = reqwest::Url::parse("https://user:pw@h.example:8443/a/b?token=T#f").unwrap();
        assert_eq!(redact_url(&u, false), "https://h.example:8443/a/b");
        assert_eq!(redact_url(&u, true), "https://h.example:8443/…");
        assert_eq!(redact_location("/next?key=SECRET"), "/next");
        assert_eq!(
            redact_location("https://u:pw@h.example/p?q"),
            "https://h.example/p"
        );
    }

    #[test]
    fn vendor_urls_take_the_vendors_hosts_and_loopback_only() {
        let hosts = ["a.example", "b.example"];
        let check = |t: &str| vendor_url(t, false, true, &hosts, "an example host");
        assert!(check("https://a.example/x").is_ok());
        assert!(check("https://b.example/x").is_ok());
        assert!(check("http://127.0.0.1:9/x").is_ok());
        assert!(check("http://[::1]:9/x").is_ok());
        let e = check("https://a.example.evil.example/TOKEN").unwrap_err();
        assert_eq!(
            e,
            "host `a.example.evil.example` is not an example host (a.example, b.example); \
             only loopback is accepted besides, for tests"
        );
        // The scheme rule comes first, and a secret URL is not quoted.
        let e = check("http://a.example/TOKEN").unwrap_err();
        assert!(e.contains("plain http") && !e.contains("TOKEN"), "{e}");
    }

    #[test]
    fn timeouts_are_bounded() {
        assert!(check_timeout(Duration::from_secs(10)).is_empty());
        assert!(check_timeout(MAX_TIMEOUT).is_empty());
        assert_eq!(check_timeout(Duration::ZERO)[0].0, "timeout");
        assert_eq!(check_timeout(MAX_TIMEOUT + Duration::from_secs(1)).len(), 1);
    }
}
