//! The WeCom (企业微信) group-robot sink: one `POST` of a [`render::wecom`](crate::render::wecom)
//! markdown message to `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<key>`,
//! classified by the body's `errcode`.
//!
//! ## Webhook, rate limit
//!
//! The `key` is the only credential (WeCom has no signing), so give `url` as a secret. Only
//! `qyapi.weixin.qq.com` is accepted, besides loopback for tests; redirects are not followed.
//! WeCom allows 20 messages a minute per robot: the default `rate_limit` is one per 3 s, burst
//! 1, and a backlog is folded into digests.
//!
//! ## Classification ([`classify`])
//!
//! WeCom answers HTTP 200 with an `errcode`, a number or (like DingTalk and Feishu) a numeric
//! string; the body decides. The table below is [`CODES`], read the way every robot's is
//! ([`robot`]).
//!
//! | answer | outcome |
//! |---|---|
//! | errcode 0 | `Delivered` |
//! | 45009 (api freq out of limit) | `Retry` after [`LIMITED_PAUSE`] (60 s) |
//! | 40058 (content too long) | `Retry` rendered one shrink level smaller; `Permanent` past [`MAX_SHRINK`](crate::render::MAX_SHRINK) |
//! | 93000 (invalid webhook URL or key) | `Permanent`, with a hint |
//! | -1 (system busy), other errcodes, an unreadable body | `Retry` with backoff |
//! | HTTP 408, 425, 429, 5xx | `Retry` (with `Retry-After`) |
//! | other HTTP statuses, redirects | `Permanent` |
//!
//! Messages name the robot by its host only: the key is never logged.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::chat::{self, default_zone, info, yes};
use super::http::{default_timeout, vendor_url};
use super::limit::RateLimit;
use super::robot::{self, Answer, Codes, Hook, Meaning};
use super::{MaybeSecret, Outcome};
use crate::duration::HumanDuration;
use crate::event::Payload;
use crate::finding::Severity;
use crate::render::Lang;
use crate::render::wecom::{WeComOptions, valid_user_id};

/// Keys of `type = "wecom"`, besides the common ones.
pub const KEYS: [&str; 11] = [
    "url",
    "lang",
    "timezone",
    "at_user_ids",
    "mention_min_severity",
    "template",
    "console_links",
    "rate_limit",
    "timeout",
    "fold_after",
    "fold_max_members",
];

/// The host a webhook URL may name (besides loopback, for tests).
pub const HOST: &str = "qyapi.weixin.qq.com";
/// The webhook path.
pub const SEND_PATH: &str = "/cgi-bin/webhook/send";
/// Default `rate_limit`: one message per 3 s, burst 1 (20 a minute, WeCom's limit).
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(3);
/// How long to wait after errcode 45009 (over 20 a minute).
pub const LIMITED_PAUSE: Duration = Duration::from_secs(60);

/// `type = "wecom"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeComConfig {
    /// The robot's webhook URL (with `key`), inline or (better) a secret.
    pub url: MaybeSecret,
    /// `en` (default) or `zh`.
    #[serde(default)]
    pub lang: Lang,
    /// IANA zone times are shown in.
    #[serde(default = "default_zone")]
    pub timezone: String,
    /// WeCom user IDs to mention (`<@userid>` in the markdown).
    #[serde(default)]
    pub at_user_ids: Vec<String>,
    /// Mentions only for messages whose (highest) severity reaches this.
    #[serde(default = "info")]
    pub mention_min_severity: Severity,
    /// A custom markdown template file.
    #[serde(default)]
    pub template: Option<PathBuf>,
    /// Inline links to the console, CVE pages and alert details.
    #[serde(default = "yes")]
    pub console_links: bool,
    /// The robot's rate limit.
    #[serde(default = "default_rate")]
    pub rate_limit: RateLimit,
    /// Whole-attempt timeout.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Fold a due backlog of more than this many single events into digests.
    #[serde(default = "super::dingtalk::default_fold_after")]
    pub fold_after: usize,
    /// Most events per folded digest.
    #[serde(default = "super::dingtalk::default_fold_max")]
    pub fold_max_members: usize,
}

fn default_rate() -> RateLimit {
    RateLimit::new(DEFAULT_PERIOD, 1)
}

impl WeComConfig {
    /// Semantic problems as `(key, message)`; see [`SinkConfig::check`](super::SinkConfig::check).
    pub fn check(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if let MaybeSecret::Inline(u) = &self.url
            && let Err(e) = check_send_url(u, false)
        {
            p.push(("url".to_string(), e));
        }
        p.extend(chat::check_each(
            "at_user_ids",
            &self.at_user_ids,
            valid_user_id,
            "a WeCom user ID (1 to 64 of letters, digits, _ - .)",
        ));
        p.extend(robot::check_robot(
            &self.timezone,
            &self.rate_limit,
            self.timeout.0,
            self.fold_after,
            self.fold_max_members,
        ));
        p
    }

    /// Makes a relative `file` secret and the template path relative to `base`.
    pub fn anchor(&mut self, base: &Path) {
        self.url.anchor(base);
        chat::anchor_path(&mut self.template, base);
    }
}

/// Checks a webhook URL: https (http only to loopback), WeCom's host (or loopback), the
/// `/cgi-bin/webhook/send` path, a `key`. `secret`: the URL came from a secret and must not be
/// quoted.
fn check_send_url(text: &str, secret: bool) -> Result<reqwest::Url, String> {
    let url = vendor_url(text, false, secret, &[HOST], "the WeCom robot host")?;
    if url.path() != SEND_PATH {
        return Err(format!(
            "is not a group-robot webhook: the path must be `{SEND_PATH}`"
        ));
    }
    if !url.query_pairs().any(|(k, v)| k == "key" && !v.is_empty()) {
        return Err("has no `key` query parameter".into());
    }
    Ok(url)
}

/// How WeCom's answers carry their code, and what the codes mean.
pub const CODES: Codes = Codes {
    service: "WeCom",
    name: "errcode",
    code_keys: &["errcode"],
    message_keys: &["errmsg"],
    meaning,
};

/// WeCom's codes (table in the module doc); `None` for the ones retried with backoff.
fn meaning(errcode: i64, _errmsg: &str) -> Option<Meaning> {
    Some(match errcode {
        0 => Meaning::Ok,
        45009 => Meaning::Pause(LIMITED_PAUSE, "over 20 messages a minute"),
        40058 => Meaning::TooLarge,
        93000 => Meaning::Permanent(
            "the webhook URL or its key is invalid (robot removed, or only the key was expected): check `url`",
        ),
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

/// A configured WeCom sink. Cheap to clone.
#[derive(Clone)]
pub struct WeComSink {
    inner: Arc<Inner>,
}

struct Inner {
    config: WeComConfig,
    template: Option<String>,
    /// The webhook, labelled `WeCom robot at https://qyapi.weixin.qq.com` (the key is the
    /// credential).
    hook: Hook,
}

impl fmt::Debug for WeComSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeComSink")
            .field("robot", &self.inner.hook)
            .field("rate_limit", &self.inner.config.rate_limit)
            .finish_non_exhaustive()
    }
}

impl WeComSink {
    /// Resolves the URL, reads the template, builds the limiter and the client.
    pub fn build(
        c: &WeComConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<WeComSink, String> {
        let text = c.url.resolve_with(env).map_err(|e| format!("url: {e}"))?;
        let url =
            check_send_url(text.expose(), c.url.is_secret()).map_err(|e| format!("url: {e}"))?;
        Ok(WeComSink {
            inner: Arc::new(Inner {
                config: c.clone(),
                template: chat::read_template_opt(c.template.as_deref())?,
                hook: Hook::new("WeCom robot", url, &c.rate_limit, c.timeout.0)?,
            }),
        })
    }

    /// The body `payload` is sent as, at shrink level `shrink` and below `refused` bytes when
    /// WeCom refused that size, with the render warnings.
    pub fn render(
        &self,
        payload: &Payload,
        shrink: u8,
        refused: Option<usize>,
        actions: &[crate::render::ActionButton],
    ) -> crate::render::Rendered<Value> {
        let c = &self.inner.config;
        let opts = WeComOptions {
            lang: c.lang,
            timezone: c.timezone.clone(),
            at_user_ids: if chat::mentions_apply(payload, c.mention_min_severity) {
                c.at_user_ids.clone()
            } else {
                Vec::new()
            },
            template: self.inner.template.clone(),
            console_links: c.console_links,
            shrink,
            refused_bytes: refused,
            actions: actions.to_vec(),
            ..Default::default()
        };
        crate::render::wecom::render(payload, &opts)
    }

    /// One POST to the robot, classified (module doc). Sends nothing and answers
    /// [`Outcome::Throttled`] when the rate limit has no permit.
    pub async fn deliver(
        &self,
        sink: &str,
        payload: &Payload,
        actions: &[crate::render::ActionButton],
    ) -> Outcome {
        let hook = &self.inner.hook;
        if let Err(throttled) = hook.permit() {
            return throttled;
        }
        let id = payload.id();
        let rendered = self.render(payload, hook.level(id), hook.refused(id), actions);
        for w in &rendered.warnings {
            tracing::warn!(sink = %sink, event = %id, warning = %w, "The message was rendered with a warning.");
        }
        hook.post(&CODES, id, &rendered.body, rendered.level).await
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
        assert!(matches!(
            answer(200, r#"{"errcode":45009,"errmsg":"api freq out of limit, hint: [1]"}"#),
            Answer::Retry { after: Some(d), .. } if d == LIMITED_PAUSE
        ));
        assert_eq!(
            answer(
                200,
                r#"{"errcode":40058,"errmsg":"markdown.content exceed max length 4096"}"#
            ),
            Answer::TooLarge { errcode: 40058 }
        );
        match answer(200, r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#) {
            Answer::Permanent { reason, response } => {
                assert!(reason.contains("`url`"), "{reason}");
                assert!(response.unwrap().contains("invalid webhook url"));
            }
            other => panic!("{other:?}"),
        }
        // Like DingTalk and Feishu, a code sent as a string counts.
        assert_eq!(answer(200, r#"{"errcode":"0","errmsg":"ok"}"#), Answer::Ok);
        assert!(matches!(
            answer(200, r#"{"errcode":"45009","errmsg":"api freq out of limit"}"#),
            Answer::Retry { after: Some(d), .. } if d == LIMITED_PAUSE
        ));
        assert_eq!(
            answer(200, r#"{"errcode":" 40058 "}"#),
            Answer::TooLarge { errcode: 40058 }
        );
        for body in [
            r#"{"errcode":-1,"errmsg":"system busy"}"#,
            r#"{"errcode":"busy"}"#,
            "nope",
            "{}",
        ] {
            assert!(
                matches!(answer(200, body), Answer::Retry { after: None, .. }),
                "{body}"
            );
        }
        assert!(matches!(answer(503, ""), Answer::Retry { .. }));
        assert!(matches!(answer(302, ""), Answer::Permanent { .. }));
    }

    #[test]
    fn send_urls_must_be_wecom_or_loopback_with_a_key() {
        assert!(
            check_send_url(
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
                false
            )
            .is_ok()
        );
        assert!(check_send_url("http://127.0.0.1:1/cgi-bin/webhook/send?key=k", false).is_ok());
        let e =
            check_send_url("https://evil.example/cgi-bin/webhook/send?key=k", false).unwrap_err();
        assert!(e.contains("evil.example"), "{e}");
        let e =
            check_send_url("https://qyapi.weixin.qq.com/cgi-bin/webhook/send", false).unwrap_err();
        assert!(e.contains("`key`"), "{e}");
        let e =
            check_send_url("https://qyapi.weixin.qq.com/cgi-bin/send?key=k", false).unwrap_err();
        assert!(e.contains(SEND_PATH), "{e}");
        let e = check_send_url(
            "http://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=SECRETKEY",
            true,
        )
        .unwrap_err();
        assert!(!e.contains("SECRETKEY"), "{e}");
    }
}
