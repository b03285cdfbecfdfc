//! The Feishu/Lark custom-bot sink: one `POST` of a [`render::feishu`](crate::render::feishu)
//! interactive card to the bot's webhook, signed in the body when the bot has a secret,
//! classified by the body's `code`.
//!
//! ## Webhook, signing, rate limit
//!
//! `url` is the bot's webhook, `https://open.feishu.cn/open-apis/bot/v2/hook/<id>` (Lark:
//! `open.larksuite.com`); the hook id is a credential, so give it as a secret. Only those hosts
//! are accepted, besides loopback for tests; redirects are not followed. With a `secret`, every
//! attempt adds `timestamp` (Unix **seconds**, a string) and `sign` = base64 HMAC-SHA256(key =
//! `"{timestamp}\n{secret}"`, message = empty) to the JSON body ([`sign`]): the reverse of
//! DingTalk, whose key is the secret and whose signature goes in the query.
//!
//! Feishu allows 100 messages a minute and 5 a second per bot. One [`Limiter`](super::limit::Limiter) covers both:
//! the default `rate_limit` is one message per 650 ms, burst 1 (at most 2 in any second, 93 a
//! minute). A burst above 1 would need a second limiter for the 5/s rule (a full bucket of
//! `burst` plus the refill within the second); burst 1 keeps one limiter and stays under both.
//!
//! ## Classification ([`classify`])
//!
//! Feishu answers HTTP 200 with a `code` (legacy bodies: only `StatusCode`), a number or a
//! numeric string; the body decides. The table below is [`CODES`], read the way every robot's
//! is ([`robot`]).
//!
//! | answer | outcome |
//! |---|---|
//! | code 0 (or a legacy `StatusCode` 0 without `code`) | `Delivered` |
//! | 11232 (frequency limited) | `Retry` after [`LIMITED_PAUSE`] |
//! | 9499 (bad request, or over 20 KB) | `Retry` rendered one shrink level smaller; `Permanent` past [`MAX_SHRINK`](crate::render::MAX_SHRINK) |
//! | 19001 (hook id invalid), 19021 (signature or timestamp), 19022 (IP allowlist), 19024 (keyword) | `Permanent`, with a hint naming the key to fix |
//! | other codes, an unreadable body | `Retry` with backoff |
//! | HTTP 408, 425, 429, 5xx | `Retry` (with `Retry-After`) |
//! | other HTTP statuses, redirects | `Permanent` |
//!
//! Messages name the bot by its host only: the hook id is never logged.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
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
use crate::render::feishu::{FeishuOptions, MAX_BODY_BYTES, valid_user_id};
use crate::secret::{Secret, SecretRef};

/// Keys of `type = "feishu"`, besides the common ones.
pub const KEYS: [&str; 14] = [
    "url",
    "secret",
    "keyword",
    "lang",
    "timezone",
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

/// Hosts a webhook URL may name (besides loopback, for tests).
pub const HOSTS: [&str; 2] = ["open.feishu.cn", "open.larksuite.com"];
/// The webhook path before the hook id.
pub const HOOK_PATH: &str = "/open-apis/bot/v2/hook/";
/// Default `rate_limit`: one message per 650 ms, burst 1 (under 100/min and 5/s).
pub const DEFAULT_PERIOD: Duration = Duration::from_millis(650);
/// How long to wait after code 11232 (frequency limited).
pub const LIMITED_PAUSE: Duration = Duration::from_secs(2);
/// Bytes `timestamp` and `sign` add to a body (they take 70; the rest is margin).
pub const SIGN_RESERVE: usize = 96;

/// `type = "feishu"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuConfig {
    /// The bot's webhook URL, inline or (better) a secret.
    pub url: MaybeSecret,
    /// The bot's signing secret ("signature verification" in its security settings).
    #[serde(default)]
    pub secret: Option<SecretRef>,
    /// The bot's custom keyword, when its security setting uses one.
    #[serde(default)]
    pub keyword: Option<String>,
    /// `en` (default) or `zh`.
    #[serde(default)]
    pub lang: Lang,
    /// IANA zone times are shown in.
    #[serde(default = "default_zone")]
    pub timezone: String,
    /// open_ids (`ou_…`) or user IDs to mention.
    #[serde(default)]
    pub at_user_ids: Vec<String>,
    /// Mention everyone.
    #[serde(default)]
    pub at_all: bool,
    /// Mentions only for messages whose (highest) severity reaches this.
    #[serde(default = "info")]
    pub mention_min_severity: Severity,
    /// A custom `lark_md` template file.
    #[serde(default)]
    pub template: Option<PathBuf>,
    /// Buttons linking to the console, CVE pages and alert details.
    #[serde(default = "yes")]
    pub console_links: bool,
    /// The bot's rate limit.
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

impl FeishuConfig {
    /// Semantic problems as `(key, message)`; see [`SinkConfig::check`](super::SinkConfig::check).
    pub fn check(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if let MaybeSecret::Inline(u) = &self.url
            && let Err(e) = check_hook_url(u, false)
        {
            p.push(("url".to_string(), e));
        }
        p.extend(robot::check_keyword(self.keyword.as_deref()));
        p.extend(chat::check_each(
            "at_user_ids",
            &self.at_user_ids,
            valid_user_id,
            "a Feishu open_id or user ID (1 to 64 of letters, digits, _ -); use `at_all` for everyone",
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

    /// Makes relative `file` secrets and the template path relative to `base`.
    pub fn anchor(&mut self, base: &Path) {
        self.url.anchor(base);
        if let Some(s) = &mut self.secret {
            s.anchor(base);
        }
        chat::anchor_path(&mut self.template, base);
    }
}

/// Checks a webhook URL: https (http only to loopback), a Feishu or Lark host (or loopback),
/// the `/open-apis/bot/v2/hook/<id>` path, no query. `secret`: the URL came from a secret and
/// must not be quoted.
fn check_hook_url(text: &str, secret: bool) -> Result<reqwest::Url, String> {
    let url = vendor_url(text, false, secret, &HOSTS, "a Feishu or Lark bot host")?;
    let id = url.path().strip_prefix(HOOK_PATH).unwrap_or_default();
    if id.is_empty() || id.contains('/') {
        return Err(format!(
            "is not a custom-bot webhook: the path must be `{HOOK_PATH}<hook id>`"
        ));
    }
    if url.query().is_some() {
        return Err("must not have a query (a signature goes in the body)".into());
    }
    Ok(url)
}

/// The `sign` value: base64 HMAC-SHA256(key = `"{timestamp_s}\n{secret}"`, message = empty).
pub fn sign(secret: &str, timestamp_s: i64) -> String {
    let key = format!("{timestamp_s}\n{secret}");
    let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    STANDARD.encode(mac.finalize().into_bytes())
}

/// `body` with `timestamp` (seconds, a string) and `sign` set.
pub fn signed_body(body: &Value, secret: &str, timestamp_s: i64) -> Value {
    let mut body = body.clone();
    body["timestamp"] = Value::from(timestamp_s.to_string());
    body["sign"] = Value::from(sign(secret, timestamp_s));
    body
}

/// How Feishu's answers carry their code (`code`, or a legacy body's `StatusCode`), and what
/// the codes mean.
pub const CODES: Codes = Codes {
    service: "Feishu",
    name: "code",
    code_keys: &["code", "StatusCode"],
    message_keys: &["msg", "StatusMessage"],
    meaning,
};

/// Feishu's codes (table in the module doc); `None` for the ones retried with backoff.
fn meaning(code: i64, _msg: &str) -> Option<Meaning> {
    Some(match code {
        0 => Meaning::Ok,
        11232 => Meaning::Pause(LIMITED_PAUSE, "frequency limited"),
        9499 => Meaning::TooLarge,
        19001 => Meaning::Permanent(
            "the webhook's hook id is invalid (bot removed, or the URL is wrong): check `url`",
        ),
        19021 => Meaning::Permanent(
            "the signature or its timestamp was refused: check `secret` (the bot's signing secret) and this host's clock (NTP; within 1 hour of Feishu's)",
        ),
        19022 => Meaning::Permanent("this host's IP address is not in the bot's allowlist"),
        19024 => Meaning::Permanent(
            "the message lacks the bot's keyword: set `keyword` to one of the bot's custom keywords",
        ),
        _ => return None,
    })
}

/// Sorts a bot's response into an [`Answer`] (table in the module doc). Pure.
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: OffsetDateTime,
) -> Answer {
    CODES.classify(status, retry_after, body, now)
}

/// A configured Feishu sink. Cheap to clone.
#[derive(Clone)]
pub struct FeishuSink {
    inner: Arc<Inner>,
}

struct Inner {
    config: FeishuConfig,
    template: Option<String>,
    /// The webhook, labelled `Feishu bot at https://open.feishu.cn` (the hook id is the
    /// credential).
    hook: Hook,
    secret: Option<Secret>,
}

impl fmt::Debug for FeishuSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeishuSink")
            .field("bot", &self.inner.hook)
            .field("signed", &self.inner.secret.is_some())
            .field("rate_limit", &self.inner.config.rate_limit)
            .finish_non_exhaustive()
    }
}

impl FeishuSink {
    /// Resolves the URL and secret, reads the template, builds the limiter and the client.
    pub fn build(
        c: &FeishuConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<FeishuSink, String> {
        let text = c.url.resolve_with(env).map_err(|e| format!("url: {e}"))?;
        let url =
            check_hook_url(text.expose(), c.url.is_secret()).map_err(|e| format!("url: {e}"))?;
        let secret = match &c.secret {
            Some(s) => {
                let v = s.resolve_with(env).map_err(|e| format!("secret: {e}"))?;
                if v.expose().trim().is_empty() {
                    return Err("secret: is empty".into());
                }
                Some(Secret::new(v.expose().trim().to_string()))
            }
            None => None,
        };
        Ok(FeishuSink {
            inner: Arc::new(Inner {
                config: c.clone(),
                template: chat::read_template_opt(c.template.as_deref())?,
                hook: Hook::new("Feishu bot", url, &c.rate_limit, c.timeout.0)?,
                secret,
            }),
        })
    }

    /// The card `payload` is sent as (unsigned), at shrink level `shrink` and below `refused`
    /// bytes when Feishu refused that size, with the render warnings. Mentions only when its severity reaches `mention_min_severity`; room is left
    /// for the signature when signing.
    pub fn render(
        &self,
        payload: &Payload,
        shrink: u8,
        refused: Option<usize>,
        actions: &[crate::render::ActionButton],
    ) -> crate::render::Rendered<Value> {
        let c = &self.inner.config;
        let mentions = chat::mentions_apply(payload, c.mention_min_severity);
        let opts = FeishuOptions {
            lang: c.lang,
            timezone: c.timezone.clone(),
            at_user_ids: if mentions {
                c.at_user_ids.clone()
            } else {
                Vec::new()
            },
            at_all: mentions && c.at_all,
            keyword: c.keyword.clone(),
            template: self.inner.template.clone(),
            console_links: c.console_links,
            actions: actions.to_vec(),
            shrink,
            max_body_bytes: {
                let reserve = if self.inner.secret.is_some() {
                    SIGN_RESERVE
                } else {
                    0
                };
                let limit = refused.map_or(MAX_BODY_BYTES, |r| r.saturating_sub(1));
                limit.min(MAX_BODY_BYTES).saturating_sub(reserve).max(1)
            },
        };
        crate::render::feishu::render(payload, &opts)
    }

    /// One POST to the bot, classified (module doc). Sends nothing and answers
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
        let body = match &self.inner.secret {
            Some(s) => signed_body(
                &rendered.body,
                s.expose(),
                OffsetDateTime::now_utc().unix_timestamp(),
            ),
            None => rendered.body,
        };
        let outcome = hook.post(&CODES, id, &body, rendered.level).await;
        if matches!(&outcome, Outcome::Retry { reason, .. } if reason.starts_with("code 11232")) {
            tracing::warn!(sink = %sink, "Feishu says the bot sends too fast; lower `rate_limit`.");
        }
        outcome
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
    fn codes_are_classified() {
        assert_eq!(
            answer(
                200,
                r#"{"StatusCode":0,"StatusMessage":"success","code":0,"data":{},"msg":"success"}"#
            ),
            Answer::Ok
        );
        assert_eq!(
            answer(200, r#"{"StatusCode":0,"StatusMessage":"success"}"#),
            Answer::Ok
        );
        assert!(matches!(
            answer(200, r#"{"code":11232,"data":{},"msg":"frequency limited psm[lark.oapi.app_platform_runtime]appID[1500]"}"#),
            Answer::Retry { after: Some(d), .. } if d == LIMITED_PAUSE
        ));
        assert_eq!(
            answer(200, r#"{"code":9499,"msg":"Bad Request","data":{}}"#),
            Answer::TooLarge { errcode: 9499 }
        );
        let hint = |code: i64| match answer(200, &format!(r#"{{"code":{code},"msg":"x"}}"#)) {
            Answer::Permanent { reason, response } => {
                assert!(response.unwrap().contains("\"x\""));
                reason
            }
            other => panic!("{code}: {other:?}"),
        };
        assert!(hint(19001).contains("`url`"));
        assert!(hint(19021).contains("`secret`") && hint(19021).contains("clock"));
        assert!(hint(19022).contains("allowlist"));
        assert!(hint(19024).contains("`keyword`"));
        for body in [r#"{"code":-1}"#, "not json", r#"{"ok":1}"#, ""] {
            assert!(
                matches!(answer(200, body), Answer::Retry { after: None, .. }),
                "{body}"
            );
        }
        for status in [429, 500, 503] {
            assert!(
                matches!(answer(status, ""), Answer::Retry { after: Some(d), .. } if d == Duration::from_secs(7)),
                "{status}"
            );
        }
        for status in [302, 400, 404] {
            assert!(
                matches!(answer(status, ""), Answer::Permanent { .. }),
                "{status}"
            );
        }
    }

    #[test]
    fn signature_is_the_documented_example_and_not_dingtalks() {
        assert_eq!(
            sign("demo-secret-123", 1_599_360_473),
            "CJ1PDoSs2DIlc1NfehQ6dvr+kobztQsZyES4nAchFfM="
        );
        assert_ne!(
            sign("demo-secret-123", 1_599_360_473),
            super::super::dingtalk::sign("demo-secret-123", 1_599_360_473)
        );
        let body = signed_body(
            &serde_json::json!({"msg_type": "text", "content": {"text": "hello"}}),
            "demo-secret-123",
            1_599_360_473,
        );
        assert_eq!(body["timestamp"], "1599360473");
        assert_eq!(body["sign"], "CJ1PDoSs2DIlc1NfehQ6dvr+kobztQsZyES4nAchFfM=");
    }

    #[test]
    fn hook_urls_must_be_feishu_lark_or_loopback() {
        for ok in [
            "https://open.feishu.cn/open-apis/bot/v2/hook/00000000-0000-4000-8000-000000000000",
            "https://open.larksuite.com/open-apis/bot/v2/hook/abc",
            "http://127.0.0.1:9/open-apis/bot/v2/hook/abc",
        ] {
            assert!(check_hook_url(ok, false).is_ok(), "{ok}");
        }
        let e = check_hook_url("https://evil.example/open-apis/bot/v2/hook/x", false).unwrap_err();
        assert!(e.contains("evil.example"), "{e}");
        let e = check_hook_url("https://open.feishu.cn/open-apis/bot/hook/x", false).unwrap_err();
        assert!(e.contains(HOOK_PATH), "{e}");
        let e = check_hook_url("https://open.feishu.cn/open-apis/bot/v2/hook/", false).unwrap_err();
        assert!(e.contains(HOOK_PATH), "{e}");
        let e = check_hook_url("http://open.feishu.cn/open-apis/bot/v2/hook/SECRETID", true)
            .unwrap_err();
        assert!(!e.contains("SECRETID"), "{e}");
    }
}
