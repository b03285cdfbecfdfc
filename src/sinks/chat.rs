//! What the chat and mail sinks ([`dingtalk`](super::dingtalk), [`feishu`](super::feishu),
//! [`slack`](super::slack), [`email`](super::email)) share: rate limits, backlog folding
//! settings, custom template files, mention thresholds, bounded response reading, and for the
//! robots that answer HTTP 200 with a code (DingTalk, Feishu) the [`Answer`] their responses
//! are sorted into and the memory of "too large" payloads ([`ShrinkMemo`]).
//!
//! ## Rate limits
//!
//! Each destination (a DingTalk robot, a Slack webhook or channel, an SMTP sink) has one
//! [`Limiter`]: a GCRA bucket ([`governor`]) taken *at the sender*, so retries count too. A
//! limiter lives in memory only, so it starts **empty**: a process that restarts in a loop
//! cannot send a fresh burst each time (DingTalk would block the robot for 10 minutes after
//! 20 messages in a minute). A sink that finds its limiter empty sends nothing and answers
//! [`Outcome::Throttled`]; the worker waits without counting an
//! attempt.
//!
//! ## Backlog folding
//!
//! A sink that folds ([`Fold`]) lets the delivery worker merge a due backlog of single events
//! larger than `fold_after` into digests of at most `fold_max_members` (see
//! [`delivery`](crate::pipeline::delivery)), so a storm of findings becomes a few messages within the
//! platform's budget instead of hours of queue.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use time::OffsetDateTime;

use super::Outcome;
use super::webhook::{parse_retry_after, status_line};
use crate::duration::HumanDuration;
use crate::event::Payload;
use crate::finding::Severity;
use crate::text::error_chain;
use crate::text::{strip_control, truncate_bytes};

/// Longest `rate_limit.period`.
pub const MAX_PERIOD: Duration = Duration::from_secs(3600);
/// Largest `rate_limit.burst`.
pub const MAX_BURST: u32 = 100;
/// Largest `fold_max_members`.
pub const MAX_FOLD_MEMBERS: usize = 100;
/// Largest custom template file, in bytes.
pub const MAX_TEMPLATE_BYTES: u64 = 256 * 1024;

/// `rate_limit = { period = "3s", burst = 1 }`: at most `burst` messages at once, then one per
/// `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Time one message "costs": the sustained rate is one per `period`.
    pub period: HumanDuration,
    /// Messages that may go back to back when the bucket is full.
    #[serde(default = "one")]
    pub burst: u32,
}

fn one() -> u32 {
    1
}

impl RateLimit {
    /// A limit of one message per `period`, bursts of `burst`.
    pub fn new(period: Duration, burst: u32) -> RateLimit {
        RateLimit {
            period: HumanDuration(period),
            burst,
        }
    }

    /// Problems under `key` (`rate_limit`).
    pub fn check(&self, key: &str) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let t = self.period.0;
        if t.is_zero() || t > MAX_PERIOD {
            p.push((
                format!("{key}.period"),
                format!("{t:?} is out of range: use more than 0s and at most 1h"),
            ));
        }
        if self.burst == 0 || self.burst > MAX_BURST {
            p.push((
                format!("{key}.burst"),
                format!("must be between 1 and {MAX_BURST}"),
            ));
        }
        p
    }

    /// Messages per minute this limit sustains (rounded down, at least 1).
    pub fn per_minute(&self) -> u64 {
        (60_000 / self.period.0.as_millis().max(1) as u64).max(1)
    }
}

/// One destination's token bucket. Starts empty (see the module doc).
pub struct Limiter {
    inner: DefaultDirectRateLimiter,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limiter")
    }
}

impl Limiter {
    /// A limiter for `limit`, with its burst already spent.
    pub fn new(limit: &RateLimit) -> Limiter {
        let burst = NonZeroU32::new(limit.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(limit.period.0.max(Duration::from_millis(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        let inner = RateLimiter::direct(quota);
        // Spend the burst: memory-only state must not grant a fresh burst after a restart.
        let _ = inner.check_n(burst);
        Limiter { inner }
    }

    /// Takes one permit, or says how long until one is free. Never waits.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        self.inner
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// What a robot's answer means for the sink (DingTalk's and Feishu's `classify`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// errcode 0.
    Ok,
    /// The robot sends too fast (DingTalk 130101, 410100): rest it.
    Blocked {
        /// The errcode.
        errcode: i64,
    },
    /// The body is too large (DingTalk 460101, 101002; Feishu 9499): render smaller.
    TooLarge {
        /// The errcode.
        errcode: i64,
    },
    /// Try again later.
    Retry {
        /// `Retry-After`, when given.
        after: Option<Duration>,
        /// Why.
        reason: String,
    },
    /// Sending again will not help.
    Permanent {
        /// Why, with a hint.
        reason: String,
        /// Status and body.
        response: Option<String>,
    },
}

/// The part of a robot's classification that does not read the body's code: the status line,
/// the body as one bounded line, and the response kept for a dead letter; or, for a status
/// other than 2xx, the answer itself (408, 425, 429, 5xx but 501 and 505: `Retry` with
/// `Retry-After`; a redirect or another status: `Permanent`). Pure.
pub fn http_answer(
    service: &str,
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(String, String, Option<String>), Answer> {
    let text = truncate_bytes(strip_control(&String::from_utf8_lossy(body)).trim(), 512);
    let line = status_line(status);
    let response = Some(if text.is_empty() {
        line.clone()
    } else {
        format!("{line}: {text}")
    });
    if (200..300).contains(&status) {
        return Ok((line, text, response));
    }
    Err(match status {
        408 | 425 | 429 | 500 | 502..=504 | 506..=599 => Answer::Retry {
            after: retry_after.and_then(|v| parse_retry_after(v, now)),
            reason: format!("{line} from {service}"),
        },
        300..=399 => Answer::Permanent {
            reason: format!("{line}: {service} redirected; redirects are not followed"),
            response,
        },
        _ => Answer::Permanent {
            reason: format!("{line} from {service}"),
            response,
        },
    })
}

/// The shrink level each payload renders at after its robot said "too large" (memory only,
/// bounded: cleared when it holds 1024 payloads).
#[derive(Debug, Default)]
pub struct ShrinkMemo {
    levels: Mutex<HashMap<String, u8>>,
}

impl ShrinkMemo {
    /// The level to render payload `id` at (0 unless it was too large before).
    pub fn get(&self, id: &str) -> u8 {
        let map = self.levels.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(id).copied().unwrap_or(0)
    }

    /// Forgets `id` (delivered or dead-lettered).
    pub fn forget(&self, id: &str) {
        let mut map = self.levels.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(id);
    }

    /// The outcome of a robot's [`Answer`] for payload `id` (`size` bytes rendered at
    /// `level`) sent to the robot named `label`: delivered and permanent answers forget `id`;
    /// "too large" is [`ShrinkMemo::too_large`]; "blocked" (a robot that names no rest) and
    /// retries are `Retry`.
    pub fn settle(
        &self,
        answer: Answer,
        service: &str,
        label: &str,
        id: &str,
        size: usize,
        level: u8,
    ) -> Outcome {
        match answer {
            Answer::Ok => {
                self.forget(id);
                Outcome::Delivered {
                    detail: format!("accepted by the {label} ({size} bytes, level {level})"),
                }
            }
            Answer::TooLarge { errcode } => self.too_large(service, id, errcode, size, level),
            Answer::Blocked { errcode } => Outcome::Retry {
                after: None,
                reason: format!("code {errcode} (sending too fast) from the {label}"),
            },
            Answer::Retry { after, reason } => Outcome::Retry {
                after,
                reason: format!("{reason} ({label})"),
            },
            Answer::Permanent { reason, response } => {
                self.forget(id);
                Outcome::Permanent {
                    reason: format!("{reason} ({label})"),
                    response,
                }
            }
        }
    }

    /// The outcome of "too large" (`code`) for payload `id`, `size` bytes rendered at `level`:
    /// `Retry` remembering `level + 1`, or `Permanent` past [`MAX_SHRINK`](crate::render::MAX_SHRINK).
    pub fn too_large(&self, service: &str, id: &str, code: i64, size: usize, level: u8) -> Outcome {
        if level >= crate::render::MAX_SHRINK {
            self.forget(id);
            return Outcome::Permanent {
                reason: format!(
                    "code {code}: the message is too large for {service} even at the smallest rendering ({size} bytes)"
                ),
                response: None,
            };
        }
        {
            let mut map = self.levels.lock().unwrap_or_else(PoisonError::into_inner);
            if map.len() >= 1024 {
                map.clear();
            }
            map.insert(id.to_string(), level + 1);
        }
        Outcome::Retry {
            after: None,
            reason: format!(
                "code {code}: {size} bytes is too large for {service}; the next attempt renders at level {}",
                level + 1
            ),
        }
    }
}

/// How a sink lets the worker fold its backlog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fold {
    /// Fold when more than this many single events are due.
    pub after: usize,
    /// Most members per folded digest.
    pub max_members: usize,
}

/// Checks `fold_after` / `fold_max_members`.
pub fn check_fold(after: usize, max_members: usize) -> Vec<(String, String)> {
    let mut p = Vec::new();
    if after == 0 {
        p.push((
            "fold_after".to_string(),
            "must be at least 1 (a backlog of that many due events is sent one by one)".into(),
        ));
    }
    if !(2..=MAX_FOLD_MEMBERS).contains(&max_members) {
        p.push((
            "fold_max_members".to_string(),
            format!("must be between 2 and {MAX_FOLD_MEMBERS}"),
        ));
    }
    p
}

/// Reads a custom template file (`template = "path"`), bounded in size.
pub fn read_template(key: &str, path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX_TEMPLATE_BYTES {
        return Err(format!(
            "{key}: {} is larger than {MAX_TEMPLATE_BYTES} bytes",
            path.display()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))
}

/// Makes a relative template path relative to `base`.
pub fn anchor_path(path: &mut Option<PathBuf>, base: &Path) {
    if let Some(p) = path
        && p.is_relative()
    {
        *p = base.join(&*p);
    }
}

/// The highest finding severity in a payload (`None` for summaries only).
pub fn top_severity(payload: &Payload) -> Option<Severity> {
    payload
        .events()
        .iter()
        .filter_map(|e| e.finding.as_ref().map(|f| f.severity))
        .max()
}

/// Whether configured mentions apply to `payload`: its highest severity reaches `min`
/// (a payload without findings, a summary, only when `min` is `info`).
pub fn mentions_apply(payload: &Payload, min: Severity) -> bool {
    top_severity(payload).unwrap_or(Severity::Info) >= min
}

/// Reads at most `max` bytes of a response body; the note says why it is incomplete.
pub async fn read_capped(
    response: &mut reqwest::Response,
    max: usize,
) -> (Vec<u8>, Option<String>) {
    let mut body = Vec::new();
    let mut note = None;
    while body.len() <= max {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                note = Some(if e.is_timeout() {
                    "body timed out".to_string()
                } else {
                    "body cut short".to_string()
                });
                break;
            }
        }
    }
    if body.len() > max {
        body.truncate(max);
        note = Some("body truncated".to_string());
    }
    (body, note)
}

/// An HTTP client for a chat sink: timeouts, no redirects (a token in the URL must not reach
/// another host), sasrelay's user agent.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(timeout.min(super::webhook::CONNECT_TIMEOUT))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(super::USER_AGENT)
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))
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
    /// The body, at most the `max` bytes asked for.
    pub body: Vec<u8>,
}

/// Sends `request` (one attempt) and reads the answer, the body capped at `max` bytes. A
/// transport failure is an [`Outcome::Retry`] whose reason names `what` (`POST robot 1 of 2`)
/// and never the URL.
pub async fn exchange(
    request: reqwest::RequestBuilder,
    what: &str,
    timeout: Duration,
    max: usize,
) -> Result<Reply, Outcome> {
    let mut response = request.send().await.map_err(|e| Outcome::Retry {
        after: None,
        reason: transport_reason(what, e, timeout),
    })?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (retry_after, location) = (header("retry-after"), header("location"));
    let status = response.status().as_u16();
    let (body, _) = read_capped(&mut response, max).await;
    Ok(Reply {
        status,
        retry_after,
        location,
        body,
    })
}

/// Checks what every robot sink (DingTalk, Feishu, WeCom) has: `timezone`, `rate_limit`,
/// `timeout`, `fold_after` and `fold_max_members`.
pub fn check_robot(
    timezone: &str,
    rate_limit: &RateLimit,
    timeout: Duration,
    fold_after: usize,
    fold_max_members: usize,
) -> Vec<(String, String)> {
    let mut p = Vec::new();
    if !crate::render::valid_zone(timezone) {
        p.push((
            "timezone".to_string(),
            format!("unknown time zone {timezone:?}; use an IANA name such as \"Asia/Shanghai\""),
        ));
    }
    p.extend(rate_limit.check("rate_limit"));
    p.extend(check_timeout(timeout));
    p.extend(check_fold(fold_after, fold_max_members));
    p
}

/// Checks a robot's custom `keyword`: 1 to 64 characters on one line.
pub fn check_keyword(keyword: Option<&str>) -> Option<(String, String)> {
    keyword
        .filter(|k| {
            k.trim().is_empty() || k.chars().count() > 64 || k.chars().any(char::is_control)
        })
        .map(|_| {
            (
                "keyword".to_string(),
                "must be 1 to 64 characters on one line".into(),
            )
        })
}

/// Checks each entry of the list under `key` with `valid`; `what` says what an entry must be.
pub fn check_each(
    key: &str,
    list: &[String],
    valid: fn(&str) -> bool,
    what: &str,
) -> Vec<(String, String)> {
    list.iter()
        .enumerate()
        .filter(|(_, m)| !valid(m.trim()))
        .map(|(i, _)| (format!("{key}[{i}]"), format!("is not {what}")))
        .collect()
}

/// Reads the custom template file under `template`, if one is configured.
pub fn read_template_opt(path: Option<&Path>) -> Result<Option<String>, String> {
    path.map(|p| read_template("template", p)).transpose()
}

/// One webhook of a robot sink that posts to a single URL (Feishu, WeCom): the URL, a label
/// without the credential, its rate limiter, the HTTP client and the memory of payloads that
/// were too large.
pub struct Hook {
    url: reqwest::Url,
    label: String,
    limiter: Limiter,
    client: reqwest::Client,
    timeout: Duration,
    shrink: ShrinkMemo,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

/// How a robot sorts a response ([`Answer`]); pure.
pub type Classify = fn(u16, Option<&str>, &[u8], OffsetDateTime) -> Answer;

impl Hook {
    /// `what` names the robot kind (`Feishu bot`); the label is `{what} at scheme://host`.
    pub fn new(
        what: &str,
        url: reqwest::Url,
        rate_limit: &RateLimit,
        timeout: Duration,
    ) -> Result<Hook, String> {
        let label = format!(
            "{what} at {}://{}",
            url.scheme(),
            url.host_str().unwrap_or_default()
        );
        Ok(Hook {
            url,
            label,
            limiter: Limiter::new(rate_limit),
            client: http_client(timeout)?,
            timeout,
            shrink: ShrinkMemo::default(),
        })
    }

    /// `Feishu bot at https://open.feishu.cn`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Takes a permit, or says how long the sink must wait ([`Outcome::Throttled`]).
    pub fn permit(&self) -> Result<(), Outcome> {
        self.limiter
            .try_acquire()
            .map_err(|after| Outcome::Throttled {
                after: after.max(Duration::from_millis(1)),
            })
    }

    /// The shrink level to render payload `id` at.
    pub fn level(&self, id: &str) -> u8 {
        self.shrink.get(id)
    }

    /// One POST of `body` (payload `id`, rendered at `level`), classified by `classify` and
    /// settled ([`ShrinkMemo::settle`]).
    pub async fn post(
        &self,
        service: &str,
        id: &str,
        body: &serde_json::Value,
        level: u8,
        classify: Classify,
    ) -> Outcome {
        let body = serde_json::to_vec(body).unwrap_or_default();
        let size = body.len();
        let request = self
            .client
            .post(self.url.clone())
            .header("content-type", "application/json; charset=utf-8")
            .body(body);
        let what = format!("POST to the {}", self.label);
        let reply = match exchange(request, &what, self.timeout, MAX_RESPONSE).await {
            Ok(r) => r,
            Err(o) => return o,
        };
        let answer = classify(
            reply.status,
            reply.retry_after.as_deref(),
            &reply.body,
            OffsetDateTime::now_utc(),
        );
        self.shrink
            .settle(answer, service, &self.label, id, size, level)
    }
}

/// Bytes of a robot's response body read.
const MAX_RESPONSE: usize = 4096;

/// The reason for a transport failure, never holding the URL.
pub fn transport_reason(what: &str, e: reqwest::Error, timeout: Duration) -> String {
    let e = e.without_url();
    if e.is_timeout() {
        format!("{what}: timed out after {timeout:?}")
    } else if e.is_connect() {
        format!("{what}: cannot connect: {}", error_chain(&e))
    } else {
        format!("{what}: {}", error_chain(&e))
    }
}

/// Checks a `timeout`.
pub fn check_timeout(t: Duration) -> Vec<(String, String)> {
    if t.is_zero() || t > super::webhook::MAX_TIMEOUT {
        vec![(
            "timeout".to_string(),
            format!("{t:?} is out of range: use more than 0s and at most 10m"),
        )]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_starts_empty_and_refills_by_period() {
        let l = Limiter::new(&RateLimit::new(Duration::from_secs(3), 1));
        let wait = l.try_acquire().unwrap_err();
        assert!(
            wait > Duration::from_secs(2) && wait <= Duration::from_secs(3),
            "{wait:?}"
        );
        let l = Limiter::new(&RateLimit::new(Duration::from_millis(1), 5));
        std::thread::sleep(Duration::from_millis(2));
        assert!(l.try_acquire().is_ok());
    }

    #[test]
    fn rate_limit_and_fold_checks_name_their_keys() {
        let bad = RateLimit::new(Duration::ZERO, 0);
        let keys: Vec<String> = bad.check("rate_limit").into_iter().map(|p| p.0).collect();
        assert_eq!(keys, ["rate_limit.period", "rate_limit.burst"]);
        assert!(
            RateLimit::new(Duration::from_secs(3), 1)
                .check("r")
                .is_empty()
        );
        assert_eq!(RateLimit::new(Duration::from_secs(3), 1).per_minute(), 20);
        let keys: Vec<String> = check_fold(0, 1).into_iter().map(|p| p.0).collect();
        assert_eq!(keys, ["fold_after", "fold_max_members"]);
        assert!(check_fold(10, 20).is_empty());
    }
}
