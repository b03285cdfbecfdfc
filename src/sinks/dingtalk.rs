//! The DingTalk custom-robot sink: one `POST` of a [`render::dingtalk`](crate::render::dingtalk)
//! body (markdown or action card, `msgUuid` = the payload id) to one robot of the sink's pool,
//! signed when the robot has a secret, classified by the body's `errcode`.
//!
//! ## Robots, signing, rate limits
//!
//! `url` names one robot (`https://oapi.dingtalk.com/robot/send?access_token=…`); `robots`
//! names several, used round-robin. Each robot has its own [`Limiter`] (`rate_limit`, default
//! one message per 3 s, burst 1: DingTalk allows 20 a minute and blocks a robot for 10 minutes
//! beyond that). With a `secret`, every attempt appends `timestamp` (Unix ms) and `sign` =
//! URL-encoded base64 HMAC-SHA256(key = secret, message = `"{timestamp}\n{secret}"`) to the
//! stored base URL ([`sign`]).
//!
//! ## Classification ([`classify`])
//!
//! DingTalk answers HTTP 200 with an `errcode` (a number or a numeric string); the body
//! decides. The table below is [`CODES`], read the way every robot's is ([`robot`]).
//!
//! | answer | outcome |
//! |---|---|
//! | errcode 0 | `Delivered` |
//! | 130101, 410100 (sending too fast) | the robot rests [`BLOCK`] (10 min); `Retry` at once with another robot of the pool, or after the rest when all rest |
//! | 460101, 101002 (body too large) | `Retry` rendered one shrink level smaller and below the refused size; `Permanent` past [`MAX_SHRINK`](crate::render::MAX_SHRINK) or when it cannot be rendered smaller |
//! | 310000 (keyword, signature, timestamp or IP allowlist) | `Permanent`, with a hint naming the cause |
//! | 300001, 300005, 400101 (token), 400013, 400102, 400106 (group or robot gone), 400105, 430101–430104 (content refused) | `Permanent` |
//! | other errcodes, an unreadable body | `Retry` with backoff |
//! | HTTP 408, 425, 429, 5xx | `Retry` (with `Retry-After`) |
//! | other HTTP statuses, redirects | `Permanent` |
//!
//! Messages name a robot as `robot 2 of 3` and its URL without the query: the access token
//! is never logged (reqwest errors are printed with `without_url`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use time::OffsetDateTime;

use super::chat::{self, default_zone, info, yes};
use super::http::{self, ReadBody, default_timeout, redact_url, vendor_url};
use super::limit::{Limiter, RateLimit};
use super::robot::{self, Answer, Codes, MAX_RESPONSE, Meaning, ShrinkMemo};
use super::{MaybeSecret, Outcome};
use crate::duration::HumanDuration;
use crate::event::Payload;
use crate::finding::Severity;
use crate::render::Lang;
use crate::render::dingtalk::{DingTalkOptions, MsgType, valid_mobile, valid_user_id};
use crate::secret::{Secret, SecretRef};

/// Keys of `type = "dingtalk"`, besides the common ones.
pub const KEYS: [&str; 17] = [
    "url",
    "secret",
    "robots",
    "keyword",
    "msg_type",
    "lang",
    "timezone",
    "at_mobiles",
    "at_user_ids",
    "at_all",
    "mention_min_severity",
    "template",
    "console_links",
    "rate_limit",
    "timeout",
    "fold_after",
    "fold_max_members",
];

/// How long a robot rests after DingTalk said it sends too fast (DingTalk's own penalty).
pub const BLOCK: Duration = Duration::from_secs(600);
/// Default `rate_limit`: one message per 3 s, burst 1 (20 a minute, DingTalk's limit).
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(3);
/// Default `fold_after`.
pub const DEFAULT_FOLD_AFTER: usize = 10;
/// Default `fold_max_members`: what the fullest rendering lists one by one.
pub const DEFAULT_FOLD_MAX: usize = 20;
/// Most robots in a pool.
pub const MAX_ROBOTS: usize = 20;
/// Hosts a robot URL may name (besides loopback, for tests).
pub const HOSTS: [&str; 2] = ["oapi.dingtalk.com", "oapi.dingtalk.io"];

/// `type = "dingtalk"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingTalkConfig {
    /// One robot's webhook URL (with `access_token`), inline or a secret.
    #[serde(default)]
    pub url: Option<MaybeSecret>,
    /// That robot's signing secret (`SEC…`).
    #[serde(default)]
    pub secret: Option<SecretRef>,
    /// A pool of robots, used round-robin (instead of `url`).
    #[serde(default)]
    pub robots: Vec<RobotConfig>,
    /// The robots' custom keyword, when their security setting uses one.
    #[serde(default)]
    pub keyword: Option<String>,
    /// `markdown` (default) or `action_card`.
    #[serde(default)]
    pub msg_type: MsgType,
    /// `en` (default) or `zh`.
    #[serde(default)]
    pub lang: Lang,
    /// IANA zone times are shown in.
    #[serde(default = "default_zone")]
    pub timezone: String,
    /// Mobile numbers to mention.
    #[serde(default)]
    pub at_mobiles: Vec<String>,
    /// DingTalk user IDs to mention.
    #[serde(default)]
    pub at_user_ids: Vec<String>,
    /// Mention everyone.
    #[serde(default)]
    pub at_all: bool,
    /// Mentions only for messages whose (highest) severity reaches this.
    #[serde(default = "info")]
    pub mention_min_severity: Severity,
    /// A custom markdown template file.
    #[serde(default)]
    pub template: Option<PathBuf>,
    /// Links to the console, CVE pages and alert details (inline or as buttons).
    #[serde(default = "yes")]
    pub console_links: bool,
    /// Per-robot rate limit.
    #[serde(default = "default_rate")]
    pub rate_limit: RateLimit,
    /// Whole-attempt timeout.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Fold a due backlog of more than this many single events into digests.
    #[serde(default = "default_fold_after")]
    pub fold_after: usize,
    /// Most events per folded digest.
    #[serde(default = "default_fold_max")]
    pub fold_max_members: usize,
}

/// One robot of `robots = [{ url = …, secret = … }]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobotConfig {
    /// The robot's webhook URL.
    pub url: MaybeSecret,
    /// Its signing secret.
    #[serde(default)]
    pub secret: Option<SecretRef>,
}

fn default_rate() -> RateLimit {
    RateLimit::new(DEFAULT_PERIOD, 1)
}
pub(super) fn default_fold_after() -> usize {
    DEFAULT_FOLD_AFTER
}
pub(super) fn default_fold_max() -> usize {
    DEFAULT_FOLD_MAX
}

impl DingTalkConfig {
    /// Semantic problems as `(key, message)`; see [`SinkConfig::check`](super::SinkConfig::check).
    pub fn check(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        match (&self.url, self.robots.is_empty()) {
            (None, true) => p.push((
                "url".to_string(),
                "is required: give `url` (one robot) or `robots` (a pool)".into(),
            )),
            (Some(_), false) => p.push((
                "robots".to_string(),
                "cannot be combined with `url`: put every robot in `robots`".into(),
            )),
            _ => {}
        }
        if self.secret.is_some() && !self.robots.is_empty() {
            p.push((
                "secret".to_string(),
                "belongs to `url`; give each robot its own `robots[i].secret`".into(),
            ));
        }
        if self.robots.len() > MAX_ROBOTS {
            p.push((
                "robots".to_string(),
                format!("has {} robots; at most {MAX_ROBOTS}", self.robots.len()),
            ));
        }
        if let Some(MaybeSecret::Inline(u)) = &self.url
            && let Err(e) = check_robot_url(u, false)
        {
            p.push(("url".to_string(), e));
        }
        for (i, r) in self.robots.iter().enumerate() {
            if let MaybeSecret::Inline(u) = &r.url
                && let Err(e) = check_robot_url(u, false)
            {
                p.push((format!("robots[{i}].url"), e));
            }
        }
        p.extend(robot::check_keyword(self.keyword.as_deref()));
        p.extend(chat::check_each(
            "at_mobiles",
            &self.at_mobiles,
            valid_mobile,
            "a mobile number (digits, optional leading + and - separators)",
        ));
        p.extend(chat::check_each(
            "at_user_ids",
            &self.at_user_ids,
            valid_user_id,
            "a DingTalk user ID (1 to 64 of letters, digits, _ - . $)",
        ));
        let mentions = !self.at_mobiles.is_empty() || !self.at_user_ids.is_empty() || self.at_all;
        if self.msg_type == MsgType::ActionCard && mentions {
            p.push((
                "msg_type".to_string(),
                "action cards cannot mention anyone: use \"markdown\" or remove the mentions"
                    .into(),
            ));
        }
        p.extend(robot::check_robot(
            &self.timezone,
            &self.rate_limit,
            self.timeout.0,
            self.fold_after,
            self.fold_max_members,
        ));
        p
    }

    /// Makes relative `file` secrets and the template path relative to `base`.
    pub fn anchor(&mut self, base: &Path) {
        if let Some(u) = &mut self.url {
            u.anchor(base);
        }
        if let Some(s) = &mut self.secret {
            s.anchor(base);
        }
        for r in &mut self.robots {
            r.url.anchor(base);
            if let Some(s) = &mut r.secret {
                s.anchor(base);
            }
        }
        chat::anchor_path(&mut self.template, base);
    }

    /// Render options for `payload` (mentions only when its severity reaches the threshold).
    pub fn options(&self, template: Option<String>) -> DingTalkOptions {
        DingTalkOptions {
            lang: self.lang,
            timezone: self.timezone.clone(),
            msg_type: self.msg_type,
            at_mobiles: self
                .at_mobiles
                .iter()
                .map(|m| m.trim().to_string())
                .collect(),
            at_user_ids: self
                .at_user_ids
                .iter()
                .map(|m| m.trim().to_string())
                .collect(),
            at_all: self.at_all,
            keyword: self.keyword.clone(),
            template,
            console_links: self.console_links,
            ..Default::default()
        }
    }
}

/// Checks a robot URL: https (http only to loopback), a DingTalk host (or loopback), an
/// `access_token`. `secret`: the URL came from a secret and must not be quoted.
fn check_robot_url(text: &str, secret: bool) -> Result<reqwest::Url, String> {
    let url = vendor_url(text, false, secret, &HOSTS, "a DingTalk robot host")?;
    if !url
        .query_pairs()
        .any(|(k, v)| k == "access_token" && !v.is_empty())
    {
        return Err("has no `access_token` query parameter".into());
    }
    Ok(url)
}

/// The `sign` value: base64 HMAC-SHA256(key = secret, message = `"{timestamp_ms}\n{secret}"`),
/// not yet URL-encoded.
pub fn sign(secret: &str, timestamp_ms: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// `base` with `timestamp` and `sign` set (any earlier ones removed first; the values are
/// form-encoded, so `+` `/` `=` become `%2B` `%2F` `%3D`).
pub fn signed_url(base: &reqwest::Url, secret: &str, timestamp_ms: i64) -> reqwest::Url {
    let mut url = base.clone();
    let kept: Vec<(String, String)> = base
        .query_pairs()
        .filter(|(k, _)| k != "timestamp" && k != "sign")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = url.query_pairs_mut();
        q.clear();
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        q.append_pair("timestamp", &timestamp_ms.to_string());
        q.append_pair("sign", &sign(secret, timestamp_ms));
    }
    url
}

/// The hint for errcode 310000, from its errmsg (both the English and the Chinese forms).
pub fn security_hint(errmsg: &str) -> &'static str {
    let m = errmsg.to_lowercase();
    if m.contains("keyword") || m.contains("关键词") {
        "the message lacks the robot's keyword: set `keyword` to one of the robot's custom keywords"
    } else if m.contains("timestamp") || m.contains("时间戳") {
        "the signature timestamp was refused: check this host's clock (NTP); it must be within 1 hour of DingTalk's"
    } else if m.contains("sign") || m.contains("签名") {
        "the signature does not match: check `secret` (the robot's SEC… value)"
    } else if m.contains("ip") || m.contains("白名单") {
        "this host's IP address is not in the robot's allowlist (check IPv6 egress too)"
    } else {
        "the robot's security settings refused the message: check `keyword`, `secret` and the IP allowlist"
    }
}

/// How DingTalk's answers carry their code, and what the codes mean.
pub const CODES: Codes = Codes {
    service: "DingTalk",
    name: "errcode",
    code_keys: &["errcode"],
    message_keys: &["errmsg"],
    meaning,
};

/// DingTalk's codes (table in the module doc); `None` for the ones retried with backoff.
fn meaning(errcode: i64, errmsg: &str) -> Option<Meaning> {
    Some(match errcode {
        0 => Meaning::Ok,
        130101 | 410100 => Meaning::Blocked,
        460101 | 101002 => Meaning::TooLarge,
        310000 => Meaning::Permanent(security_hint(errmsg)),
        300001 | 300005 | 400101 => Meaning::Permanent(
            "the access_token does not exist (robot removed, or the token is wrong): check `url`",
        ),
        400013 => Meaning::Permanent("the group was dissolved"),
        400102 => Meaning::Permanent("the robot is disabled"),
        400106 => Meaning::Permanent("the robot is not in the group"),
        400105 => Meaning::Permanent("DingTalk does not support this message type"),
        430101..=430104 => Meaning::Permanent("DingTalk refused the content (link, text or image)"),
        _ => return None,
    })
}

/// Sorts a robot's response into an [`Answer`] (table in the module doc). Pure.
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: OffsetDateTime,
) -> Answer {
    CODES.classify(status, retry_after, body, now)
}

/// One robot of the pool.
struct Robot {
    base: reqwest::Url,
    secret: Option<Secret>,
    /// `robot 2 of 3 (https://host/path)`; no query.
    label: String,
    limiter: Limiter,
    rest_until: Mutex<Option<Instant>>,
}

impl Robot {
    fn resting(&self, now: Instant) -> Option<Duration> {
        let until = *self
            .rest_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        until
            .and_then(|u| u.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }
}

/// A configured DingTalk sink. Cheap to clone.
#[derive(Clone)]
pub struct DingTalkSink {
    inner: Arc<Inner>,
}

struct Inner {
    config: DingTalkConfig,
    template: Option<String>,
    robots: Vec<Robot>,
    next: AtomicUsize,
    client: reqwest::Client,
    /// Shrink level to render each payload at, after DingTalk said "too large".
    shrink: ShrinkMemo,
}

impl fmt::Debug for DingTalkSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DingTalkSink")
            .field("robots", &self.inner.robots.len())
            .field("msg_type", &self.inner.config.msg_type)
            .field("rate_limit", &self.inner.config.rate_limit)
            .finish_non_exhaustive()
    }
}

impl DingTalkSink {
    /// Resolves secrets, reads the template, builds one limiter per robot and the client.
    pub fn build(
        c: &DingTalkConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<DingTalkSink, String> {
        let mut sources: Vec<(String, &MaybeSecret, Option<&SecretRef>)> = Vec::new();
        if let Some(u) = &c.url {
            sources.push(("url".into(), u, c.secret.as_ref()));
        }
        for (i, r) in c.robots.iter().enumerate() {
            sources.push((format!("robots[{i}].url"), &r.url, r.secret.as_ref()));
        }
        let n = sources.len();
        let mut robots = Vec::new();
        for (i, (key, url, secret)) in sources.into_iter().enumerate() {
            let text = url.resolve_with(env).map_err(|e| format!("{key}: {e}"))?;
            let base = check_robot_url(text.expose(), url.is_secret())
                .map_err(|e| format!("{key}: {e}"))?;
            let secret = match secret {
                Some(s) => {
                    let v = s
                        .resolve_with(env)
                        .map_err(|e| format!("{}: {e}", key.replace("url", "secret")))?;
                    if v.expose().trim().is_empty() {
                        return Err(format!("{}: is empty", key.replace("url", "secret")));
                    }
                    Some(Secret::new(v.expose().trim().to_string()))
                }
                None => None,
            };
            robots.push(Robot {
                label: format!("robot {} of {n} ({})", i + 1, redact_url(&base, false)),
                base,
                secret,
                limiter: Limiter::new(&c.rate_limit),
                rest_until: Mutex::new(None),
            });
        }
        let template = chat::read_template_opt(c.template.as_deref())?;
        Ok(DingTalkSink {
            inner: Arc::new(Inner {
                config: c.clone(),
                template,
                robots,
                next: AtomicUsize::new(0),
                client: http::client(c.timeout.0)?,
                shrink: ShrinkMemo::default(),
            }),
        })
    }

    /// The body `payload` is sent as, at shrink level `shrink` and below `refused` bytes when
    /// DingTalk refused that size, with the render warnings.
    pub fn render(
        &self,
        payload: &Payload,
        shrink: u8,
        refused: Option<usize>,
        actions: &[crate::render::ActionButton],
    ) -> crate::render::Rendered<Value> {
        let c = &self.inner.config;
        let mut opts = c.options(self.inner.template.clone());
        if !chat::mentions_apply(payload, c.mention_min_severity) {
            opts.at_mobiles.clear();
            opts.at_user_ids.clear();
            opts.at_all = false;
        }
        opts.shrink = shrink;
        opts.actions = actions.to_vec();
        if let Some(refused) = refused {
            opts.max_body_bytes = opts.max_body_bytes.min(refused.saturating_sub(1)).max(1);
        }
        crate::render::dingtalk::render(payload, &opts)
    }

    /// Picks the next robot that is neither resting nor out of budget (taking a permit), or
    /// says how long until one is.
    fn pick(&self) -> Result<&Robot, Duration> {
        let robots = &self.inner.robots;
        let n = robots.len();
        let start = self.inner.next.load(Ordering::Relaxed);
        let now = Instant::now();
        let mut wait = Duration::MAX;
        for k in 0..n {
            let i = (start + k) % n;
            let r = &robots[i];
            if let Some(rest) = r.resting(now) {
                wait = wait.min(rest);
                continue;
            }
            match r.limiter.try_acquire() {
                Ok(()) => {
                    self.inner.next.store(i + 1, Ordering::Relaxed);
                    return Ok(r);
                }
                Err(w) => wait = wait.min(w),
            }
        }
        Err(wait.max(Duration::from_millis(1)))
    }

    /// One POST to the next robot, classified (module doc). Sends nothing and answers
    /// [`Outcome::Throttled`] when every robot rests or is out of budget.
    pub async fn deliver(
        &self,
        sink: &str,
        payload: &Payload,
        actions: &[crate::render::ActionButton],
    ) -> Outcome {
        let robot = match self.pick() {
            Ok(r) => r,
            Err(after) => return Outcome::Throttled { after },
        };
        let id = payload.id();
        let shrink = &self.inner.shrink;
        let rendered = self.render(payload, shrink.get(id), shrink.refused(id), actions);
        for w in &rendered.warnings {
            tracing::warn!(sink = %sink, event = %id, warning = %w, "The message was rendered with a warning.");
        }
        let body = serde_json::to_vec(&rendered.body).unwrap_or_default();
        let size = body.len();
        if let Some(refused) = shrink.not_smaller(CODES.service, id, size) {
            return refused;
        }
        let url = match &robot.secret {
            Some(s) => signed_url(
                &robot.base,
                s.expose(),
                OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000,
            ),
            None => robot.base.clone(),
        };
        let request = self
            .inner
            .client
            .post(url)
            .header("content-type", "application/json; charset=utf-8")
            .body(body);
        let what = format!("POST {}", robot.label);
        let timeout = self.inner.config.timeout.0;
        let reply =
            match http::exchange(request, &what, timeout, MAX_RESPONSE, ReadBody::Always).await {
                Ok(r) => r,
                Err(o) => return o,
            };
        let answer = classify(
            reply.status,
            reply.retry_after.as_deref(),
            &reply.body,
            OffsetDateTime::now_utc(),
        );
        let level = rendered.level;
        match answer {
            Answer::Ok => {
                self.inner.shrink.forget(id);
                Outcome::Delivered {
                    detail: format!(
                        "errcode 0 from {} ({size} bytes, level {level})",
                        robot.label
                    ),
                }
            }
            Answer::Blocked { errcode } => self.rest(sink, robot, errcode),
            other => {
                (self.inner.shrink).settle(other, CODES.service, &robot.label, id, size, level)
            }
        }
    }

    /// Rests `robot` for [`BLOCK`] after DingTalk said it sends too fast: `Retry` at once with
    /// another robot of the pool, or after the shortest rest when every robot rests.
    fn rest(&self, sink: &str, robot: &Robot, errcode: i64) -> Outcome {
        let now = Instant::now();
        *robot
            .rest_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(now + BLOCK);
        let rest = self
            .inner
            .robots
            .iter()
            .map(|r| r.resting(now).unwrap_or_default())
            .min()
            .unwrap_or(BLOCK);
        tracing::warn!(sink = %sink, robot = %robot.label, errcode, "DingTalk says the robot sends too fast; it rests for 10 minutes.");
        Outcome::Retry {
            after: (!rest.is_zero()).then_some(rest),
            reason: format!(
                "errcode {errcode} (sending too fast) from {}; it rests {}s{}",
                robot.label,
                BLOCK.as_secs(),
                if rest.is_zero() {
                    ", the others of the pool carry on"
                } else {
                    ""
                }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2024-05-01 08:00:00 UTC);

    fn answer(status: u16, body: &str) -> Answer {
        classify(status, Some("7"), body.as_bytes(), NOW)
    }

    #[test]
    fn errcodes_are_classified() {
        assert_eq!(answer(200, r#"{"errcode":0,"errmsg":"ok"}"#), Answer::Ok);
        for code in [130101, 410100] {
            let b = format!(r#"{{"errcode":{code},"errmsg":"send too fast","wait":5}}"#);
            assert_eq!(answer(200, &b), Answer::Blocked { errcode: code });
        }
        for code in [460101, 101002] {
            let b = format!(r#"{{"errcode":{code},"errmsg":"message too long"}}"#);
            assert_eq!(answer(200, &b), Answer::TooLarge { errcode: code });
        }
        let hint =
            |msg: &str| match answer(200, &format!(r#"{{"errcode":310000,"errmsg":"{msg}"}}"#)) {
                Answer::Permanent { reason, .. } => reason,
                other => panic!("{other:?}"),
            };
        assert!(hint("keywords not in content").contains("`keyword`"));
        assert!(hint("description:关键词不匹配;").contains("`keyword`"));
        assert!(hint("sign not match").contains("`secret`"));
        assert!(hint("description:机器人发送签名不匹配;").contains("`secret`"));
        assert!(hint("invalid timestamp").contains("clock"));
        assert!(hint("ip 1.2.3.4 not in whitelist").contains("allowlist"));
        assert!(hint("something new").contains("security settings"));
        for code in [
            300001, 300005, 400101, 400013, 400102, 400105, 400106, 430101, 430104,
        ] {
            let b = format!(r#"{{"errcode":{code},"errmsg":"x"}}"#);
            assert!(
                matches!(answer(200, &b), Answer::Permanent { .. }),
                "{code}"
            );
        }
        match answer(200, r#"{"errcode":300001,"errmsg":"token is not exist"}"#) {
            Answer::Permanent { reason, response } => {
                assert!(
                    reason.contains("access_token") && reason.contains("`url`"),
                    "{reason}"
                );
                assert!(response.unwrap().contains("token is not exist"));
            }
            other => panic!("{other:?}"),
        }
        for body in [
            r#"{"errcode":-1,"errmsg":"busy"}"#,
            r#"{"errcode":500100}"#,
            "not json",
            r#"{"ok":1}"#,
            r#"{"errcode":"777"}"#,
        ] {
            assert!(
                matches!(answer(200, body), Answer::Retry { after: None, .. }),
                "{body}"
            );
        }
        assert_eq!(answer(200, r#"{"errcode":"0"}"#), Answer::Ok);
        for status in [429, 500, 502, 503, 504] {
            assert!(
                matches!(answer(status, ""), Answer::Retry { after: Some(d), .. } if d == Duration::from_secs(7)),
                "{status}"
            );
        }
        for status in [301, 302, 400, 403, 404, 501] {
            assert!(
                matches!(answer(status, ""), Answer::Permanent { .. }),
                "{status}"
            );
        }
    }

    #[test]
    fn signature_matches_the_documented_example_and_is_form_encoded() {
        let s = sign("this is secret", 1_577_836_800_000);
        assert_eq!(s, "fFV9t5lBS7KH4+5B0JjR99ab+AJkXFauQXycgTkS/tc=");
        let base = reqwest::Url::parse(
            "https://oapi.dingtalk.com/robot/send?access_token=TOKEN&timestamp=1&sign=old",
        )
        .unwrap();
        let url = signed_url(&base, "this is secret", 1_577_836_800_000);
        assert_eq!(
            url.as_str(),
            "https://oapi.dingtalk.com/robot/send?access_token=TOKEN&timestamp=1577836800000&sign=fFV9t5lBS7KH4%2B5B0JjR99ab%2BAJkXFauQXycgTkS%2Ftc%3D"
        );
    }

    #[test]
    fn robot_urls_must_be_dingtalk_or_loopback_with_a_token() {
        assert!(
            check_robot_url("https://oapi.dingtalk.com/robot/send?access_token=x", false).is_ok()
        );
        assert!(check_robot_url("http://127.0.0.1:9/robot/send?access_token=x", false).is_ok());
        let e =
            check_robot_url("https://evil.example/robot/send?access_token=x", false).unwrap_err();
        assert!(e.contains("evil.example"), "{e}");
        let e = check_robot_url("https://oapi.dingtalk.com/robot/send", false).unwrap_err();
        assert!(e.contains("access_token"), "{e}");
        let e = check_robot_url(
            "http://oapi.dingtalk.com/robot/send?access_token=SECRET",
            true,
        )
        .unwrap_err();
        assert!(!e.contains("SECRET"), "{e}");
    }
}
