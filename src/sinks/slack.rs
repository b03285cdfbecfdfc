//! The Slack sink: one `POST` of a [`render::slack`](crate::render::slack) Block Kit message to
//! an incoming webhook (`webhook_url`) or to `chat.postMessage` (`token` + `channel`).
//!
//! One [`Limiter`] per sink (one webhook or channel; default one message a second, Slack's
//! documented limit), taken before sending. `Retry-After` on a 429 is honoured by the worker.
//!
//! ## Classification ([`classify`])
//!
//! | answer | outcome |
//! |---|---|
//! | webhook: 2xx (body `ok`) | `Delivered` |
//! | chat.postMessage: 2xx with `{"ok":true}` | `Delivered` |
//! | 429, `rate_limited`/`ratelimited`, 5xx, `rollup_error`, `internal_error`, `fatal_error`, `service_unavailable`, `request_timeout` | `Retry` (with `Retry-After`) |
//! | `invalid_payload`, `invalid_blocks`, `no_text`, `channel_not_found`, `not_in_channel`, `is_archived`, `channel_is_archived`, `no_service`, `invalid_token`, `invalid_auth`, `not_authed`, `token_revoked`, `account_inactive`, `missing_scope`, `action_prohibited`, … | `Permanent`, naming the error |
//! | chat.postMessage: 2xx with an unknown error or an unreadable body | `Retry` |
//! | other statuses, redirects | `Permanent` |
//!
//! The webhook URL and the token are never logged: messages show `hooks.slack.com/…` and the
//! API host only.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::chat::{self, info, yes};
use super::http::{
    self, ReadBody, default_timeout, parse_retry_after, redact_url, status_line, vendor_url,
};
use super::limit::{Limiter, RateLimit};
use super::{MaybeSecret, Outcome};
use crate::duration::HumanDuration;
use crate::event::Payload;
use crate::finding::Severity;
use crate::render::slack::{SlackOptions, mention};
use crate::render::{Lang, valid_zone};
use crate::secret::{Secret, SecretRef};
use crate::text::{strip_control, truncate_bytes};

/// Bytes of a response body read.
const MAX_RESPONSE: usize = 4096;

/// Keys of `type = "slack"`, besides the common ones.
pub const KEYS: [&str; 16] = [
    "webhook_url",
    "token",
    "channel",
    "api_base",
    "lang",
    "timezone",
    "mentions",
    "mention_min_severity",
    "template",
    "colour_bar",
    "buttons",
    "rate_limit",
    "timeout",
    "fold_after",
    "fold_max_members",
    "allow_http",
];

/// Default `api_base`.
pub const API_BASE: &str = "https://slack.com/api";
/// Default `fold_after`.
pub const DEFAULT_FOLD_AFTER: usize = 10;
/// Default `fold_max_members`: what the fullest rendering lists one by one.
pub const DEFAULT_FOLD_MAX: usize = 15;

/// `type = "slack"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// An incoming webhook URL (a credential).
    #[serde(default)]
    pub webhook_url: Option<MaybeSecret>,
    /// A bot token (`xoxb-…`) for `chat.postMessage`.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// The channel ID (or name) for `chat.postMessage`.
    #[serde(default)]
    pub channel: Option<String>,
    /// Base of the Web API (tests point it at a fake).
    #[serde(default = "api_base")]
    pub api_base: String,
    /// `en` (default) or `zh`.
    #[serde(default)]
    pub lang: Lang,
    /// IANA zone times are shown in.
    #[serde(default = "utc")]
    pub timezone: String,
    /// Who to mention: `U…` users, `S…` groups, `here`, `channel`, `everyone`.
    #[serde(default)]
    pub mentions: Vec<String>,
    /// Mentions only for messages whose (highest) severity reaches this.
    #[serde(default = "info")]
    pub mention_min_severity: Severity,
    /// A custom mrkdwn template file.
    #[serde(default)]
    pub template: Option<PathBuf>,
    /// Put the blocks in an attachment with the severity colour.
    #[serde(default)]
    pub colour_bar: bool,
    /// Link buttons.
    #[serde(default = "yes")]
    pub buttons: bool,
    /// Rate limit of the webhook or channel.
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
    /// Allow `http://` to non-loopback hosts.
    #[serde(default)]
    pub allow_http: bool,
}

fn api_base() -> String {
    API_BASE.into()
}
fn utc() -> String {
    "UTC".into()
}
fn default_rate() -> RateLimit {
    RateLimit::new(Duration::from_secs(1), 1)
}
fn default_fold_after() -> usize {
    DEFAULT_FOLD_AFTER
}
fn default_fold_max() -> usize {
    DEFAULT_FOLD_MAX
}

/// Hosts a Slack URL may name (a webhook URL or `api_base` elsewhere would send a credential
/// and the findings to someone else); loopback is accepted besides, for tests.
pub const HOSTS: [&str; 2] = ["hooks.slack.com", "slack.com"];

/// Parses a Slack URL and checks its host against [`HOSTS`].
fn slack_url(text: &str, allow_http: bool, secret: bool) -> Result<reqwest::Url, String> {
    vendor_url(text, allow_http, secret, &HOSTS, "a Slack host")
}

impl SlackConfig {
    /// Semantic problems as `(key, message)`.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        match (&self.webhook_url, &self.token, &self.channel) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => {}
            (None, None, _) => p.push((
                "webhook_url".to_string(),
                "is required: give `webhook_url`, or `token` and `channel`".into(),
            )),
            (Some(_), _, _) => p.push((
                "token".to_string(),
                "cannot be combined with `webhook_url`: use one way of posting".into(),
            )),
            (None, Some(_), None) => p.push((
                "channel".to_string(),
                "is required with `token` (a channel ID such as C0123456789)".into(),
            )),
        }
        if let Some(MaybeSecret::Inline(u)) = &self.webhook_url
            && let Err(e) = slack_url(u, self.allow_http, false)
        {
            p.push(("webhook_url".to_string(), e));
        }
        if let Err(e) = slack_url(&self.api_base, self.allow_http, false) {
            p.push(("api_base".to_string(), e));
        }
        if let Some(c) = &self.channel
            && (c.trim().is_empty() || c.len() > 80 || c.chars().any(char::is_control))
        {
            p.push(("channel".to_string(), "must be a channel ID or name".into()));
        }
        if !valid_zone(&self.timezone) {
            p.push((
                "timezone".to_string(),
                format!("unknown time zone {:?}", self.timezone),
            ));
        }
        for (i, m) in self.mentions.iter().enumerate() {
            if mention(m).is_none() {
                p.push((
                    format!("mentions[{i}]"),
                    "is not a Slack user (U…/W…), group (S…) or here/channel/everyone".into(),
                ));
            }
        }
        p.extend(self.rate_limit.check("rate_limit"));
        p.extend(http::check_timeout(self.timeout.0));
        p.extend(chat::check_fold(self.fold_after, self.fold_max_members));
        p
    }

    /// Makes relative `file` secrets and the template path relative to `base`.
    pub fn anchor(&mut self, base: &Path) {
        if let Some(u) = &mut self.webhook_url {
            u.anchor(base);
        }
        if let Some(t) = &mut self.token {
            t.anchor(base);
        }
        chat::anchor_path(&mut self.template, base);
    }
}

/// Where a Slack sink posts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// An incoming webhook (errors are a status and a bare string).
    Webhook,
    /// `chat.postMessage` (errors are HTTP 200 with `{"ok":false,"error":…}`).
    Api,
}

/// Error strings after which sending again will not help.
const PERMANENT: [&str; 30] = [
    "invalid_payload",
    "user_not_found",
    "action_prohibited",
    "channel_not_found",
    "channel_is_archived",
    "is_archived",
    "invalid_token",
    "no_active_hooks",
    "no_service",
    "no_service_id",
    "no_team",
    "no_text",
    "posting_to_general_channel_denied",
    "team_disabled",
    "too_many_attachments",
    "not_in_channel",
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "missing_scope",
    "invalid_blocks",
    "invalid_blocks_format",
    "msg_blocks_too_long",
    "msg_too_long",
    "invalid_arguments",
    "restricted_action",
    "ekm_access_denied",
    "not_allowed_token_type",
];
/// Error strings that mean "later".
const TRANSIENT: [&str; 7] = [
    "rate_limited",
    "ratelimited",
    "rollup_error",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

fn hint(error: &str) -> &'static str {
    match error {
        "channel_not_found" | "not_in_channel" | "is_archived" | "channel_is_archived" => {
            ": check `channel`, and invite the app to it (or grant chat:write.public)"
        }
        "invalid_token" | "invalid_auth" | "not_authed" | "token_revoked" | "token_expired"
        | "account_inactive" | "no_service" | "no_active_hooks" => {
            ": the webhook or token is no longer valid; create a new one"
        }
        "missing_scope" => ": the app lacks the chat:write scope",
        _ => "",
    }
}

/// Sorts a Slack response into an [`Outcome`] (table in the module doc). Pure.
pub fn classify(
    via: Via,
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: OffsetDateTime,
) -> Outcome {
    let text = truncate_bytes(strip_control(&String::from_utf8_lossy(body)).trim(), 512);
    let line = status_line(status);
    let after = retry_after.and_then(|v| parse_retry_after(v, now));
    let error: Option<String> = match via {
        Via::Api => serde_json::from_slice::<Value>(body).ok().and_then(|v| {
            if v["ok"] == Value::Bool(true) {
                Some(String::new())
            } else {
                v["error"].as_str().map(str::to_string)
            }
        }),
        Via::Webhook => {
            let t = text.trim().to_string();
            (!t.is_empty()
                && t.len() <= 64
                && t.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .then_some(t)
        }
    };
    let response = Some(if text.is_empty() {
        line.clone()
    } else {
        format!("{line}: {text}")
    });
    if (200..300).contains(&status) {
        match (via, error.as_deref()) {
            (Via::Webhook, _) | (Via::Api, Some("")) => {
                return Outcome::Delivered {
                    detail: format!("{line} from Slack"),
                };
            }
            (Via::Api, None) => {
                return Outcome::Retry {
                    after,
                    reason: format!("{line} from Slack without `ok`; delivery undetermined"),
                };
            }
            _ => {}
        }
    }
    if let Some(e) = error.as_deref().filter(|e| !e.is_empty()) {
        if TRANSIENT.contains(&e) {
            return Outcome::Retry {
                after,
                reason: format!("Slack answered `{e}` ({line})"),
            };
        }
        if PERMANENT.contains(&e) {
            return Outcome::Permanent {
                reason: format!("Slack answered `{e}`{}", hint(e)),
                response,
            };
        }
        if via == Via::Api && (200..300).contains(&status) {
            return Outcome::Retry {
                after,
                reason: format!("Slack answered `{e}`"),
            };
        }
    }
    match status {
        408 | 425 | 429 | 500 | 502..=504 | 506..=599 => Outcome::Retry {
            after,
            reason: format!("{line} from Slack"),
        },
        _ => Outcome::Permanent {
            reason: format!("{line} from Slack"),
            response,
        },
    }
}

/// A configured Slack sink. Cheap to clone.
#[derive(Clone)]
pub struct SlackSink {
    inner: Arc<Inner>,
}

struct Inner {
    config: SlackConfig,
    template: Option<String>,
    via: Via,
    url: reqwest::Url,
    token: Option<Secret>,
    endpoint: String,
    limiter: Limiter,
    client: reqwest::Client,
}

impl fmt::Debug for SlackSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackSink")
            .field("via", &self.inner.via)
            .field("endpoint", &self.inner.endpoint)
            .finish_non_exhaustive()
    }
}

impl SlackSink {
    /// Resolves the webhook URL or token, reads the template, builds the limiter and client.
    pub fn build(
        c: &SlackConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SlackSink, String> {
        let (via, url, token) = match (&c.webhook_url, &c.token) {
            (Some(u), _) => {
                let text = u
                    .resolve_with(env)
                    .map_err(|e| format!("webhook_url: {e}"))?;
                let url = slack_url(text.expose(), c.allow_http, u.is_secret())
                    .map_err(|e| format!("webhook_url: {e}"))?;
                (Via::Webhook, url, None)
            }
            (None, Some(t)) => {
                let token = t.resolve_with(env).map_err(|e| format!("token: {e}"))?;
                let base = slack_url(&c.api_base, c.allow_http, false)
                    .map_err(|e| format!("api_base: {e}"))?;
                let url = reqwest::Url::parse(&format!(
                    "{}/chat.postMessage",
                    base.as_str().trim_end_matches('/')
                ))
                .map_err(|e| format!("api_base: {e}"))?;
                (
                    Via::Api,
                    url,
                    Some(Secret::new(token.expose().trim().to_string())),
                )
            }
            (None, None) => return Err("webhook_url: is required".into()),
        };
        let template = chat::read_template_opt(c.template.as_deref())?;
        Ok(SlackSink {
            inner: Arc::new(Inner {
                endpoint: redact_url(&url, via == Via::Webhook),
                config: c.clone(),
                template,
                via,
                url,
                token,
                limiter: Limiter::new(&c.rate_limit),
                client: http::client(c.timeout.0)?,
            }),
        })
    }

    /// The exact JSON body sent for `payload`, with the render warnings.
    pub fn render(
        &self,
        payload: &Payload,
        actions: &[crate::render::ActionButton],
    ) -> crate::render::Rendered<Value> {
        let c = &self.inner.config;
        let opts = SlackOptions {
            lang: c.lang,
            timezone: c.timezone.clone(),
            mentions: if chat::mentions_apply(payload, c.mention_min_severity) {
                c.mentions.clone()
            } else {
                Vec::new()
            },
            template: self.inner.template.clone(),
            colour_bar: c.colour_bar,
            buttons: c.buttons,
            shrink: 0,
            actions: actions.to_vec(),
        };
        let mut r = crate::render::slack::render(payload, &opts);
        if let (Via::Api, Some(ch)) = (self.inner.via, &c.channel)
            && let Some(o) = r.body.as_object_mut()
        {
            o.insert("channel".into(), Value::from(ch.trim()));
        }
        r
    }

    /// One POST, classified (module doc); [`Outcome::Throttled`] without a permit.
    pub async fn deliver(
        &self,
        sink: &str,
        payload: &Payload,
        actions: &[crate::render::ActionButton],
    ) -> Outcome {
        if let Err(after) = self.inner.limiter.try_acquire() {
            return Outcome::Throttled { after };
        }
        let rendered = self.render(payload, actions);
        for w in &rendered.warnings {
            tracing::warn!(sink = %sink, event = %payload.id(), warning = %w, "The message was rendered with a warning.");
        }
        let body = serde_json::to_vec(&rendered.body).unwrap_or_default();
        let mut req = self
            .inner
            .client
            .post(self.inner.url.clone())
            .header("content-type", "application/json; charset=utf-8")
            .body(body);
        if let Some(t) = &self.inner.token {
            let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", t.expose()))
                .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("Bearer invalid"));
            v.set_sensitive(true);
            req = req.header("authorization", v);
        }
        let what = format!("POST {}", self.inner.endpoint);
        let timeout = self.inner.config.timeout.0;
        let reply = match http::exchange(req, &what, timeout, MAX_RESPONSE, ReadBody::Always).await
        {
            Ok(r) => r,
            Err(o) => return o,
        };
        classify(
            self.inner.via,
            reply.status,
            reply.retry_after.as_deref(),
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

    fn c(via: Via, status: u16, ra: Option<&str>, body: &str) -> C {
        match classify(via, status, ra, body.as_bytes(), NOW) {
            Outcome::Delivered { .. } => C::Ok,
            Outcome::Retry { after, .. } => C::Retry(after.map(|d| d.as_secs())),
            Outcome::Permanent { .. } => C::Perm,
            Outcome::Throttled { .. } => unreachable!(),
        }
    }

    #[test]
    fn only_slack_hosts_and_loopback_are_accepted() {
        assert!(slack_url("https://hooks.slack.com/services/T0/B0/x", false, true).is_ok());
        assert!(slack_url("https://slack.com/api", false, false).is_ok());
        assert!(slack_url("http://127.0.0.1:9/hook", false, false).is_ok());
        let e = slack_url(
            "https://hooks.slack.com.evil.example/services/x",
            false,
            true,
        )
        .unwrap_err();
        assert!(e.contains("is not a Slack host"), "{e}");
        assert!(!e.contains("services/x"), "the URL is a credential: {e}");
        assert!(slack_url("https://evil.example/api", false, false).is_err());
    }

    #[test]
    fn webhook_answers() {
        use Via::Webhook as W;
        assert_eq!(c(W, 200, None, "ok"), C::Ok);
        assert_eq!(c(W, 429, Some("30"), "rate_limited"), C::Retry(Some(30)));
        assert_eq!(c(W, 429, None, ""), C::Retry(None));
        assert_eq!(c(W, 500, None, "rollup_error"), C::Retry(None));
        assert_eq!(c(W, 503, Some("2"), "<html>"), C::Retry(Some(2)));
        for (status, body) in [
            (400, "invalid_payload"),
            (400, "user_not_found"),
            (403, "action_prohibited"),
            (404, "channel_not_found"),
            (410, "channel_is_archived"),
            (403, "invalid_token"),
            (404, "no_service"),
            (400, "no_text"),
            (400, "something_new"),
            (302, ""),
        ] {
            assert_eq!(c(W, status, None, body), C::Perm, "{status} {body}");
        }
        match classify(W, 404, None, b"channel_not_found", NOW) {
            Outcome::Permanent { reason, .. } => assert!(reason.contains("`channel`"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn api_answers() {
        use Via::Api as A;
        assert_eq!(c(A, 200, None, r#"{"ok":true,"ts":"1.2"}"#), C::Ok);
        assert_eq!(
            c(A, 200, None, r#"{"ok":false,"error":"ratelimited"}"#),
            C::Retry(None)
        );
        assert_eq!(
            c(A, 429, Some("3"), r#"{"ok":false,"error":"ratelimited"}"#),
            C::Retry(Some(3))
        );
        assert_eq!(
            c(A, 200, None, r#"{"ok":false,"error":"internal_error"}"#),
            C::Retry(None)
        );
        assert_eq!(
            c(A, 200, None, r#"{"ok":false,"error":"brand_new"}"#),
            C::Retry(None)
        );
        assert_eq!(c(A, 200, None, "not json"), C::Retry(None));
        for e in [
            "channel_not_found",
            "not_in_channel",
            "invalid_auth",
            "token_revoked",
            "missing_scope",
            "invalid_blocks",
            "msg_too_long",
            "is_archived",
        ] {
            assert_eq!(
                c(A, 200, None, &format!(r#"{{"ok":false,"error":"{e}"}}"#)),
                C::Perm,
                "{e}"
            );
        }
        assert_eq!(c(A, 502, None, ""), C::Retry(None));
        assert_eq!(c(A, 401, None, ""), C::Perm);
    }

    #[test]
    fn one_way_of_posting() {
        let parse = |t: &str| -> Vec<String> {
            let c: SlackConfig = toml::from_str(t).unwrap();
            c.check().into_iter().map(|p| p.0).collect()
        };
        assert!(parse("webhook_url = \"https://hooks.slack.com/services/T/B/X\"").is_empty());
        assert!(parse("token = { env = \"T\" }\nchannel = \"C1\"").is_empty());
        assert_eq!(parse(""), ["webhook_url"]);
        assert_eq!(parse("token = { env = \"T\" }"), ["channel"]);
        assert_eq!(
            parse(
                "webhook_url = \"https://hooks.slack.com/x\"\ntoken = { env = \"T\" }\nchannel = \"C\""
            ),
            ["token"]
        );
        assert_eq!(
            parse("webhook_url = \"http://hooks.slack.com/x\""),
            ["webhook_url"]
        );
        assert_eq!(
            parse("webhook_url = \"https://hooks.slack.com/x\"\nmentions = [\"bob\"]"),
            ["mentions[0]"]
        );
    }
}
