//! Sinks: where events go, configured by `[[sink]]` tables. A sink makes exactly **one**
//! delivery attempt and says how it went; the delivery worker owns everything else (retries,
//! backoff with jitter, give-up, dead letters, shutdown, waiting out a rate limit).
//!
//! Nine sinks exist: [`webhook`] (a generic JSON POST, signed the Standard Webhooks way),
//! [`stdout`] (one line per event) and [`file`](mod@file) (JSON Lines, appended) send the same
//! versioned JSON document, [`payload`] (`sasrelay.event.v1`), whose schema is written down
//! there; [`dingtalk`], [`feishu`], [`wecom`], [`slack`] and [`email`] send what
//! [`render`](crate::render) makes of an event or a digest, each destination under its own rate
//! limit, and let the worker fold a backlog ([`Sink::fold`]); [`pagerduty`] sends Events API v2
//! triggers and resolves under a per-finding `dedup_key`, rate-limited like the chat sinks but
//! never folding. Their keys are documented in their modules and in
//! `config/sasrelay.example.toml`.
//!
//! What they share lives beside them, once:
//!
//! | module | what |
//! |---|---|
//! | [`http`] | the HTTP client (rustls, timeouts, user agent, no redirects), URL rules and vendor host allow-lists, one exchange with a capped body ([`crate::http_body`]), `Retry-After`, error text |
//! | [`limit`] | `rate_limit` and the GCRA [`Limiter`](limit::Limiter), starting empty |
//! | [`robot`] | the group robots (DingTalk, Feishu, WeCom): one answer-code parser and classifier, each robot's code table, the "too large" memory, the single-URL poster |
//! | [`chat`] | the chat and mail sinks: backlog folding settings, templates, mention thresholds |
//!
//! ## Shape
//!
//! [`SinkConfig`] and [`Sink`] are the same shape: the common fields (`name`, `filters`, and for
//! a built sink its [`Fold`](chat::Fold) settings) beside the per-platform part, [`SinkKind`]
//! (config) or [`Backend`] (built). Reading a common field needs no `match`. The registry is
//! the exhaustive `match`es on the kind: `Backend`'s `build`, `deliver` and `preview` for a
//! built sink, and for its config the parsing of `type`, [`SinkKind::type_name`] and
//! [`SinkConfig`]'s `check`, `anchor` and `templates` (each type's own checks). A new sink
//! fails to compile until it is wired in each.
//!
//! ```text
//! [[sink]] ──serde──► SinkConfig ──check()──► problems (key, message), no IO
//!                          │
//!                     Sink::build ── resolves secrets, builds the HTTP client and limiters
//!                          │
//! worker: accepts(event)? ─► deliver(payload, attempt)
//!                              ─► Outcome::{Delivered, Retry, Permanent, Throttled}
//! ```
//!
//! ## Configuration
//!
//! Keys every sink takes:
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `name` | required | unique; letters, digits, `-`, `_`, `.`; at most 64 characters |
//! | `type` | required | `"webhook"`, `"stdout"`, `"file"`, `"dingtalk"`, `"feishu"`, `"wecom"`, `"slack"`, `"email"` or `"pagerduty"` |
//! | `domains` | all four | which domains to deliver: `alerts`, `vulnerabilities`, `baseline`, `firewall` |
//! | `min_severity` | `"info"` | lowest finding severity delivered (`info` < `low` < `medium` < `high` < `critical`); `summary` events always pass |
//! | `events` | all four | which event kinds to deliver: `new`, `recurring`, `resolved`, `summary` |
//! | `send_resolved_after_silence` | `true` for PagerDuty, else `false` | send a `resolved` a silence or mute window held, at its end, when the sink had heard of the finding |
//! | `concurrency` | 16 for webhooks, else 1 | deliveries in flight at once (1 to 64; stdout and file only 1). Events about one finding never overtake each other |
//!
//! `type = "pagerduty"` ([`pagerduty::PagerDutyConfig`]):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `routing_key` | required | the Events API v2 integration key: `{ env = "X" }` or `{ file = "/path" }` (32 letters and digits) |
//! | `api_base` | `"https://events.pagerduty.com"` | `events.pagerduty.com` or `events.eu.pagerduty.com` over https; loopback only besides (tests) |
//! | `severity_map` | see below | `{ critical = "critical", high = "error", medium = "warning", low = "info", info = "info" }`; give only the keys to change |
//! | `rate_limit` | `{ period = "500ms", burst = 1 }` | 120 events a minute per routing key; faster only for loopback |
//! | `timeout` | `"10s"` | whole-attempt timeout; at most `"10m"` |
//!
//! `type = "webhook"` ([`webhook::WebhookConfig`]):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `url` | required | `https://…`, as a string or as a secret (`{ env = "X" }` / `{ file = "/path" }`), since URLs often carry tokens. `http://` only for loopback hosts unless `allow_http = true` |
//! | `allow_http` | `false` | allow `http://` to hosts other than loopback (e.g. an in-cluster receiver) |
//! | `signing_secret` | none | Standard Webhooks key(s): `{ env = "X" }`, `{ file = "/path" }` or a list of them while rotating; each value is `whsec_<base64>` (or bare base64) of 24 to 64 bytes |
//! | `github_signing_secret` | none | also send `x-hub-signature-256: sha256=<hex>` (GitHub-style) with this secret |
//! | `headers` | none | extra headers: `{ "x-team" = "sec", authorization = { env = "HOOK_AUTH" } }`; values may be secrets. `content-type`, `content-length`, `host`, `webhook-*`, `x-sasrelay-*`, `x-hub-signature-256` and hop-by-hop headers are refused |
//! | `timeout` | `"10s"` | whole-attempt timeout (connect, send, response headers); at most `"10m"` |
//! | `max_response_bytes` | `2048` | how much of a failed response's body is read and kept (1 to 65536) |
//!
//! `type = "stdout"` ([`stdout::StdoutConfig`]): `format` = `"text"` (default; one human line,
//! control characters removed) or `"json"` (the payload, one line).
//!
//! `type = "file"` ([`file::FileConfig`]): `path` (required; JSON Lines, appended, created with
//! mode 0600; a relative path is relative to the config file once [`SinkConfig::anchor`] ran) and
//! `fsync` (default `true`).
//!
//! ```toml
//! [[sink]]
//! name = "soc"
//! type = "webhook"
//! url = { env = "SOC_WEBHOOK_URL" }
//! signing_secret = { file = "/run/secrets/soc-whsec" }
//! min_severity = "high"
//! events = ["new", "resolved"]
//!
//! [[sink]]
//! name = "audit"
//! type = "file"
//! path = "/var/lib/sasrelay/events.jsonl"
//! ```
//!
//! ## Validation
//!
//! Parsing rejects unknown keys and wrong types. [`SinkConfig::check`] then returns every
//! semantic problem as `(key, message)`, where `key` is a dotted path *relative to the sink
//! table* (`url`, `headers.Connection`, `domains`); the config module prefixes `sink[i].` and
//! looks the key up in its spanned document to attach a line and column. `check` does no IO and
//! reads no environment, so a secret URL is only validated by [`Sink::build`], whose messages
//! never contain the secret. The one rule that spans sinks, unique names, is checked by the
//! config module with the other cross-table rules.
//!
//! ## Outcomes
//!
//! [`Outcome::Retry`] means "nothing was delivered, the same payload may succeed later" (network
//! errors, timeouts, 408/425/429/5xx, a full disk); [`Outcome::Permanent`] means "sending this
//! again will not help" (other 4xx, a redirect, 501/505). A sink never sleeps or loops; `after`
//! is only the receiver's `Retry-After`, for the worker to weigh against its own backoff.
//! [`Outcome::Throttled`] means nothing was sent because the sink's rate limit had no permit:
//! not an attempt.

pub mod chat;
pub mod dingtalk;
pub mod email;
pub mod feishu;
pub mod file;
pub mod http;
pub mod limit;
pub mod pagerduty;
pub mod payload;
pub mod robot;
pub mod slack;
pub mod stdout;
pub mod webhook;
pub mod wecom;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::event::{Event, EventKind, Payload};
use crate::finding::{Domain, Severity};
use crate::secret::{Secret, SecretRef};

pub use dingtalk::{DingTalkConfig, DingTalkSink};
pub use email::{EmailConfig, EmailSink};
pub use feishu::{FeishuConfig, FeishuSink};
pub use file::{FileConfig, FileSink};
pub use pagerduty::{PagerDutyConfig, PagerDutySink};
pub use slack::{SlackConfig, SlackSink};
pub use stdout::{StdoutConfig, StdoutFormat, StdoutSink};
pub use webhook::{WebhookConfig, WebhookSink};
pub use wecom::{WeComConfig, WeComSink};

/// Longest sink name.
pub const MAX_NAME_LEN: usize = 64;

/// Keys every `[[sink]]` table takes, whatever its type.
pub const COMMON_KEYS: [&str; 7] = [
    "name",
    "type",
    "domains",
    "min_severity",
    "events",
    "send_resolved_after_silence",
    "concurrency",
];

/// Most deliveries one sink may have in flight (`concurrency`).
pub const MAX_CONCURRENCY: usize = 64;

/// Default `concurrency` of a webhook: enough to reach about 500 deliveries a second against a
/// receiver 30 ms away. The other sinks default to 1: their platforms' rate limits (DingTalk 20
/// messages a minute, PagerDuty 120) are far below what one request at a time reaches, so more
/// in flight would only wait for permits; stdout and file write lines in order and take only 1.
pub const WEBHOOK_CONCURRENCY: usize = 16;

/// A `[[sink]]` table, parsed: unknown keys and wrong types are already rejected; semantic rules
/// are in [`SinkConfig::check`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RawSinkConfig")]
pub struct SinkConfig {
    /// Unique name; appears in logs, outbox keys and dead letters.
    pub name: String,
    /// Which events the sink receives.
    pub filters: Filters,
    /// Most deliveries in flight at once (`concurrency`; defaults by type, see
    /// [`WEBHOOK_CONCURRENCY`]).
    pub concurrency: usize,
    /// The type and its own keys.
    pub kind: SinkKind,
}

/// The per-type part of a sink's configuration, tagged by `type`.
#[derive(Clone, Debug, PartialEq)]
pub enum SinkKind {
    /// `type = "webhook"`.
    Webhook(WebhookConfig),
    /// `type = "stdout"`.
    Stdout(StdoutConfig),
    /// `type = "file"`.
    File(FileConfig),
    /// `type = "dingtalk"`.
    DingTalk(DingTalkConfig),
    /// `type = "feishu"`.
    Feishu(FeishuConfig),
    /// `type = "wecom"`.
    WeCom(WeComConfig),
    /// `type = "slack"`.
    Slack(SlackConfig),
    /// `type = "email"`.
    Email(EmailConfig),
    /// `type = "pagerduty"`.
    PagerDuty(PagerDutyConfig),
}

impl SinkKind {
    /// The `type` value.
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkKind::Webhook(_) => "webhook",
            SinkKind::Stdout(_) => "stdout",
            SinkKind::File(_) => "file",
            SinkKind::DingTalk(_) => "dingtalk",
            SinkKind::Feishu(_) => "feishu",
            SinkKind::WeCom(_) => "wecom",
            SinkKind::Slack(_) => "slack",
            SinkKind::Email(_) => "email",
            SinkKind::PagerDuty(_) => "pagerduty",
        }
    }
}

/// Which events a sink receives. `None` lists mean "all".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filters {
    /// Domains delivered (`domains`); `None`: all.
    pub domains: Option<Vec<Domain>>,
    /// Lowest finding severity delivered (`min_severity`); summaries always pass.
    pub min_severity: Severity,
    /// Event kinds delivered (`events`); `None`: all.
    pub events: Option<Vec<EventKind>>,
    /// Whether a `resolved` event a silence or mute window held is sent at its end although
    /// its finding is closed (`send_resolved_after_silence`; default: PagerDuty only, so an
    /// incident opened before the silence closes with its finding). Never when the same hold
    /// also kept back the finding's `new`: the sink never heard of it.
    pub resolved_after_silence: bool,
}

impl Default for Filters {
    fn default() -> Self {
        Filters {
            domains: None,
            min_severity: Severity::Info,
            events: None,
            resolved_after_silence: false,
        }
    }
}

impl Filters {
    /// Whether an event passes: its domain and kind are listed (or the lists are absent), and,
    /// unless it is a summary, its finding is at least `min_severity`.
    pub fn accepts(&self, event: &Event) -> bool {
        if self
            .domains
            .as_ref()
            .is_some_and(|d| !d.contains(&event.domain))
        {
            return false;
        }
        if self
            .events
            .as_ref()
            .is_some_and(|k| !k.contains(&event.kind))
        {
            return false;
        }
        if event.kind == EventKind::Summary {
            return true;
        }
        let severity = event
            .finding
            .as_ref()
            .map_or(Severity::Info, |f| f.severity);
        severity >= self.min_severity
    }
}

/// The table as serde sees it: the common keys, the type, and everything else kept for the
/// type's own config struct (which denies unknown keys).
#[derive(Deserialize)]
struct RawSinkConfig {
    name: String,
    #[serde(rename = "type")]
    kind: SinkType,
    #[serde(default)]
    domains: Option<Vec<Domain>>,
    #[serde(default)]
    min_severity: Option<Severity>,
    #[serde(default)]
    events: Option<Vec<EventKind>>,
    #[serde(default)]
    send_resolved_after_silence: Option<bool>,
    #[serde(default)]
    concurrency: Option<usize>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SinkType {
    Webhook,
    Stdout,
    File,
    #[serde(rename = "dingtalk")]
    DingTalk,
    Feishu,
    #[serde(rename = "wecom")]
    WeCom,
    Slack,
    Email,
    #[serde(rename = "pagerduty")]
    PagerDuty,
}

impl SinkType {
    /// The keys of this type's own table (beside [`COMMON_KEYS`]).
    fn keys(self) -> &'static [&'static str] {
        match self {
            SinkType::Webhook => &webhook::KEYS,
            SinkType::Stdout => &stdout::KEYS,
            SinkType::File => &file::KEYS,
            SinkType::DingTalk => &dingtalk::KEYS,
            SinkType::Feishu => &feishu::KEYS,
            SinkType::WeCom => &wecom::KEYS,
            SinkType::Slack => &slack::KEYS,
            SinkType::Email => &email::KEYS,
            SinkType::PagerDuty => &pagerduty::KEYS,
        }
    }
}

/// Every key a `[[sink]]` table of `type = type_name` takes, the common ones first; `None`
/// when there is no such type. The config module reports any other key where it is written.
pub fn keys_of(type_name: &str) -> Option<Vec<&'static str>> {
    use serde::de::value::{Error, StrDeserializer};
    let kind = SinkType::deserialize(StrDeserializer::<Error>::new(type_name)).ok()?;
    Some(COMMON_KEYS.iter().chain(kind.keys()).copied().collect())
}

impl TryFrom<RawSinkConfig> for SinkConfig {
    type Error = String;

    fn try_from(raw: RawSinkConfig) -> Result<Self, String> {
        fn typed<T: serde::de::DeserializeOwned>(
            type_name: &str,
            keys: &[&str],
            rest: Map<String, Value>,
        ) -> Result<T, String> {
            if let Some(unknown) = rest.keys().find(|k| !keys.contains(&k.as_str())) {
                let all: Vec<&str> = COMMON_KEYS.iter().chain(keys).copied().collect();
                let place = format!(" for a {type_name} sink");
                return Err(crate::section::unknown_key(unknown, &place, &all));
            }
            serde_path_to_error::deserialize(Value::Object(rest)).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path == "." || path.is_empty() {
                    inner.to_string()
                } else {
                    format!("{path}: {inner}")
                }
            })
        }
        let keys = raw.kind.keys();
        let kind = match raw.kind {
            SinkType::Webhook => SinkKind::Webhook(typed("webhook", keys, raw.rest)?),
            SinkType::Stdout => SinkKind::Stdout(typed("stdout", keys, raw.rest)?),
            SinkType::File => SinkKind::File(typed("file", keys, raw.rest)?),
            SinkType::DingTalk => SinkKind::DingTalk(typed("dingtalk", keys, raw.rest)?),
            SinkType::Feishu => SinkKind::Feishu(typed("feishu", keys, raw.rest)?),
            SinkType::WeCom => SinkKind::WeCom(typed("wecom", keys, raw.rest)?),
            SinkType::Slack => SinkKind::Slack(typed("slack", keys, raw.rest)?),
            SinkType::Email => SinkKind::Email(typed("email", keys, raw.rest)?),
            SinkType::PagerDuty => SinkKind::PagerDuty(typed("pagerduty", keys, raw.rest)?),
        };
        Ok(SinkConfig {
            name: raw.name,
            filters: Filters {
                domains: raw.domains,
                min_severity: raw.min_severity.unwrap_or(Severity::Info),
                events: raw.events,
                resolved_after_silence: raw
                    .send_resolved_after_silence
                    .unwrap_or(matches!(kind, SinkKind::PagerDuty(_))),
            },
            concurrency: raw.concurrency.unwrap_or(match kind {
                SinkKind::Webhook(_) => WEBHOOK_CONCURRENCY,
                _ => 1,
            }),
            kind,
        })
    }
}

impl SinkConfig {
    /// Every semantic problem, as `(key, message)` with `key` relative to the `[[sink]]` table
    /// (`url`, `headers.Connection`). Pure: no IO, no environment, no secrets resolved.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.name.is_empty()
            || self.name.chars().count() > MAX_NAME_LEN
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            problems.push((
                "name".to_string(),
                format!(
                    "must be 1 to {MAX_NAME_LEN} letters, digits, `-`, `_` or `.`, got {:?}",
                    self.name
                ),
            ));
        }
        if self.filters.domains.as_ref().is_some_and(Vec::is_empty) {
            problems.push((
                "domains".to_string(),
                "is empty, so nothing would be delivered: list domains or remove the key".into(),
            ));
        }
        if self.filters.events.as_ref().is_some_and(Vec::is_empty) {
            problems.push((
                "events".to_string(),
                "is empty, so nothing would be delivered: list event kinds or remove the key"
                    .into(),
            ));
        }
        let in_order = matches!(self.kind, SinkKind::Stdout(_) | SinkKind::File(_));
        if in_order && self.concurrency != 1 {
            problems.push((
                "concurrency".to_string(),
                format!(
                    "a {} sink writes its lines in order, one at a time: remove the key (got {})",
                    self.kind.type_name(),
                    self.concurrency
                ),
            ));
        } else if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            problems.push((
                "concurrency".to_string(),
                format!(
                    "must be 1 to {MAX_CONCURRENCY} deliveries in flight, got {}",
                    self.concurrency
                ),
            ));
        }
        match &self.kind {
            SinkKind::Webhook(c) => problems.extend(c.check()),
            SinkKind::Stdout(_) => {}
            SinkKind::File(c) => problems.extend(c.check()),
            SinkKind::DingTalk(c) => problems.extend(c.check()),
            SinkKind::Feishu(c) => problems.extend(c.check()),
            SinkKind::WeCom(c) => problems.extend(c.check()),
            SinkKind::Slack(c) => problems.extend(c.check()),
            SinkKind::Email(c) => problems.extend(c.check()),
            SinkKind::PagerDuty(c) => problems.extend(c.check()),
        }
        problems
    }

    /// The custom template files this sink renders with: `(key, kind, path)`, for
    /// `sasrelay check`.
    pub fn templates(&self) -> Vec<(&'static str, crate::render::TemplateKind, &Path)> {
        use crate::render::TemplateKind as K;
        let list: Vec<(&'static str, K, Option<&std::path::PathBuf>)> = match &self.kind {
            SinkKind::DingTalk(c) => vec![("template", K::DingTalk, c.template.as_ref())],
            SinkKind::Feishu(c) => vec![("template", K::Feishu, c.template.as_ref())],
            SinkKind::WeCom(c) => vec![("template", K::WeCom, c.template.as_ref())],
            SinkKind::Slack(c) => vec![("template", K::Slack, c.template.as_ref())],
            SinkKind::Email(c) => vec![
                (
                    "subject_template",
                    K::EmailSubject,
                    c.subject_template.as_ref(),
                ),
                ("text_template", K::EmailText, c.text_template.as_ref()),
                ("html_template", K::EmailHtml, c.html_template.as_ref()),
            ],
            SinkKind::Webhook(_)
            | SinkKind::Stdout(_)
            | SinkKind::File(_)
            | SinkKind::PagerDuty(_) => Vec::new(),
        };
        list.into_iter()
            .filter_map(|(k, kind, p)| p.map(|p| (k, kind, p.as_path())))
            .collect()
    }

    /// Every secret this sink reads, with its key relative to the table as written (`url`,
    /// `signing_secret[1]`, `robots[0].secret`, `headers.authorization`), so that each one that
    /// cannot be read is reported, not only the first.
    pub fn secrets<'a>(&'a self) -> Vec<(String, &'a SecretRef)> {
        let mut out: Vec<(String, &'a SecretRef)> = Vec::new();
        let mut add = |key: String, r: Option<&'a SecretRef>| out.extend(r.map(|r| (key, r)));
        let maybe = |m: Option<&'a MaybeSecret>| m.and_then(MaybeSecret::reference);
        match &self.kind {
            SinkKind::Webhook(c) => {
                add("url".into(), c.url.reference());
                for (key, r) in c.signing_secret.iter().flat_map(|s| s.keyed()) {
                    add(key, Some(r));
                }
                add(
                    "github_signing_secret".into(),
                    c.github_signing_secret.as_ref(),
                );
                for (name, v) in &c.headers {
                    add(format!("headers.{name}"), v.reference());
                }
            }
            SinkKind::Stdout(_) | SinkKind::File(_) => {}
            SinkKind::DingTalk(c) => {
                add("url".into(), maybe(c.url.as_ref()));
                add("secret".into(), c.secret.as_ref());
                for (i, r) in c.robots.iter().enumerate() {
                    add(format!("robots[{i}].url"), r.url.reference());
                    add(format!("robots[{i}].secret"), r.secret.as_ref());
                }
            }
            SinkKind::Feishu(c) => {
                add("url".into(), c.url.reference());
                add("secret".into(), c.secret.as_ref());
            }
            SinkKind::WeCom(c) => add("url".into(), c.url.reference()),
            SinkKind::Slack(c) => {
                add("webhook_url".into(), maybe(c.webhook_url.as_ref()));
                add("token".into(), c.token.as_ref());
            }
            SinkKind::Email(c) => {
                add("username".into(), maybe(c.username.as_ref()));
                add("password".into(), c.password.as_ref());
            }
            SinkKind::PagerDuty(c) => add("routing_key".into(), c.routing_key.as_ref()),
        }
        out
    }

    /// Makes relative paths (`file` secrets, a file sink's `path`) relative to `base`, the
    /// config file's directory.
    pub fn anchor(&mut self, base: &Path) {
        match &mut self.kind {
            SinkKind::Webhook(c) => c.anchor(base),
            SinkKind::Stdout(_) => {}
            SinkKind::File(c) => c.anchor(base),
            SinkKind::DingTalk(c) => c.anchor(base),
            SinkKind::Feishu(c) => c.anchor(base),
            SinkKind::WeCom(c) => c.anchor(base),
            SinkKind::Slack(c) => c.anchor(base),
            SinkKind::Email(c) => c.anchor(base),
            SinkKind::PagerDuty(c) => c.anchor(base),
        }
    }
}

/// The result of one delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The destination has it (a 2xx, a line written and, if configured, synced).
    Delivered {
        /// What happened, for a DEBUG log (`HTTP 204 No Content from https://host/path`).
        detail: String,
    },
    /// Not delivered; the same payload may succeed later.
    Retry {
        /// The receiver's `Retry-After`, clamped to 1 s..1 h; `None` when it gave none.
        after: Option<Duration>,
        /// Why, safe to log (no URL query, no secret).
        reason: String,
    },
    /// Not delivered, and repeating the attempt will not help: dead-letter it.
    Permanent {
        /// Why, safe to log.
        reason: String,
        /// The status line and a bounded, control-character-free body, when there was one.
        response: Option<String>,
    },
    /// Nothing was sent: the sink's rate limit has no permit now (or every destination rests
    /// after a "too fast" answer). Not an attempt; the worker waits `after` and tries again.
    Throttled {
        /// How long until a permit is free.
        after: Duration,
    },
}

impl Outcome {
    /// `Delivered`?
    pub fn is_delivered(&self) -> bool {
        matches!(self, Outcome::Delivered { .. })
    }
}

/// A configured sink, ready to deliver: what every sink has (its name, its filters, how its
/// backlog may be folded) and the platform's own implementation. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Sink {
    name: String,
    filters: Filters,
    concurrency: usize,
    fold: Option<chat::Fold>,
    backend: Backend,
    actions: Option<Arc<crate::action_link::Minter>>,
}

/// The per-platform part of a built [`Sink`].
#[derive(Clone, Debug)]
pub enum Backend {
    /// A generic webhook.
    Webhook(WebhookSink),
    /// Lines on standard output.
    Stdout(StdoutSink),
    /// A JSON Lines file.
    File(FileSink),
    /// DingTalk custom robots.
    DingTalk(DingTalkSink),
    /// A Feishu/Lark custom bot.
    Feishu(FeishuSink),
    /// A WeCom group robot.
    WeCom(WeComSink),
    /// Slack (incoming webhook or chat.postMessage).
    Slack(SlackSink),
    /// Email over SMTP.
    Email(EmailSink),
    /// PagerDuty Events API v2.
    PagerDuty(PagerDutySink),
}

impl Sink {
    /// Builds a sink: runs [`SinkConfig::check`], resolves secrets from the process environment
    /// and files, builds the HTTP client. The error names the key and never holds a secret.
    pub fn build(config: &SinkConfig) -> Result<Sink, String> {
        Self::build_with(config, |k| std::env::var(k).ok())
    }

    /// Like [`Sink::build`], with an injectable environment for `{ env = "X" }` secrets.
    pub fn build_with(
        config: &SinkConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Sink, String> {
        Self::build_checked(config, env).map_err(|problems| {
            let text: Vec<String> = problems
                .iter()
                .map(|(k, m)| match k.as_str() {
                    "" => m.clone(),
                    k => format!("{k}: {m}"),
                })
                .collect();
            format!("sink `{}`: {}", config.name, text.join("; "))
        })
    }

    /// Like [`Sink::build_with`], with every problem as `(key, message)`, the key relative to
    /// the `[[sink]]` table (empty when the problem is the whole sink's): the
    /// [`SinkConfig::check`] problems; else every secret that cannot be read; else the first
    /// value the platform's build refuses (a malformed `whsec_` key, a URL off its hosts).
    pub fn build_checked(
        config: &SinkConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Sink, Vec<(String, String)>> {
        let mut problems = config.check();
        if problems.is_empty() {
            for (key, secret) in config.secrets() {
                if let Err(e) = secret.resolve_with(&env) {
                    problems.push((key, e.to_string()));
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let (backend, fold) = Backend::build(&config.kind, &env).map_err(|e| vec![keyed(e)])?;
        Ok(Sink {
            name: config.name.clone(),
            filters: config.filters.clone(),
            concurrency: config.concurrency,
            fold,
            backend,
            actions: None,
        })
    }

    /// The same sink delivering through `backend` instead (tests and embedding: a stdout
    /// sink writing elsewhere, [`StdoutSink::with_output`]).
    pub fn with_backend(self, backend: Backend) -> Sink {
        Sink { backend, ..self }
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configured filters.
    pub fn filters(&self) -> &Filters {
        &self.filters
    }

    /// The platform's implementation.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Whether this sink wants `event` (its `domains`, `min_severity` and `events` filters).
    pub fn accepts(&self, event: &Event) -> bool {
        self.filters.accepts(event)
    }

    /// Most deliveries the worker keeps in flight at once (`concurrency`).
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// How the worker may fold this sink's backlog into digests; `None` for sinks that take
    /// every event as it is (webhook, stdout, file) and for PagerDuty, whose alerts are per
    /// finding (a digest could not resolve its members' alerts).
    pub fn fold(&self) -> Option<chat::Fold> {
        self.fold
    }

    /// Makes exactly one delivery attempt and classifies it. Never sleeps, never loops, never
    /// panics on bad input. `attempt` is 1 for the first attempt (sent as `x-sasrelay-attempt`).
    pub async fn deliver(&self, payload: &Payload, attempt: u32) -> Outcome {
        let actions = self.action_buttons(payload);
        self.backend
            .deliver(&self.name, payload, attempt, &actions)
            .await
    }

    /// The same sink putting action buttons in its notifications (`[actions]`): chat and
    /// email sinks only; the others ignore it.
    pub fn with_actions(mut self, minter: Option<Arc<crate::action_link::Minter>>) -> Sink {
        self.actions = minter.filter(|_| self.backend.carries_actions());
        self
    }

    /// The action buttons of `payload`: one event's, minted now; none for digests and
    /// meta-events, or without `[actions]`.
    fn action_buttons(&self, payload: &Payload) -> Vec<crate::render::ActionButton> {
        match (&self.actions, payload) {
            (Some(m), Payload::Event(e)) => m.buttons(
                e,
                &self.name,
                time::OffsetDateTime::now_utc().unix_timestamp(),
            ),
            _ => Vec::new(),
        }
    }

    /// Exactly what [`Sink::deliver`] would send for `payload` (first attempt): the JSON body
    /// of a chat sink, the MIME message of an email sink, the PagerDuty event (its routing key
    /// redacted), the payload document otherwise.
    pub fn preview(&self, payload: &Payload) -> Result<String, String> {
        self.backend.preview(payload)
    }
}

/// A build error, `key: message` by the convention of every platform's `build`, split; a message
/// that does not start with a key is the whole sink's.
fn keyed(problem: String) -> (String, String) {
    let is_key = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.[]".contains(c))
    };
    match problem.split_once(": ") {
        Some((key, message)) if is_key(key) => (key.to_string(), message.to_string()),
        _ => (String::new(), problem),
    }
}

/// The fold settings of a sink that folds.
fn folds(after: usize, max_members: usize) -> Option<chat::Fold> {
    Some(chat::Fold { after, max_members })
}

/// The registry: the only `match`es on the kind of sink. A new sink fails to compile here
/// until it is built, delivered and previewed.
impl Backend {
    /// Whether its notifications can carry action buttons (chat and email).
    fn carries_actions(&self) -> bool {
        matches!(
            self,
            Backend::DingTalk(_)
                | Backend::Feishu(_)
                | Backend::WeCom(_)
                | Backend::Slack(_)
                | Backend::Email(_)
        )
    }

    /// Builds the implementation for `kind` (secrets resolved through `env`) and says whether
    /// and how its backlog folds. The error names the key and never holds a secret.
    fn build(
        kind: &SinkKind,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Backend, Option<chat::Fold>), String> {
        Ok(match kind {
            SinkKind::Webhook(c) => (Backend::Webhook(WebhookSink::build(c, env)?), None),
            SinkKind::Stdout(c) => (Backend::Stdout(StdoutSink::new(c)), None),
            SinkKind::File(c) => (Backend::File(FileSink::new(c)), None),
            SinkKind::DingTalk(c) => (
                Backend::DingTalk(DingTalkSink::build(c, env)?),
                folds(c.fold_after, c.fold_max_members),
            ),
            SinkKind::Feishu(c) => (
                Backend::Feishu(FeishuSink::build(c, env)?),
                folds(c.fold_after, c.fold_max_members),
            ),
            SinkKind::WeCom(c) => (
                Backend::WeCom(WeComSink::build(c, env)?),
                folds(c.fold_after, c.fold_max_members),
            ),
            SinkKind::Slack(c) => (
                Backend::Slack(SlackSink::build(c, env)?),
                folds(c.fold_after, c.fold_max_members),
            ),
            SinkKind::Email(c) => (
                Backend::Email(EmailSink::build(c, env)?),
                folds(c.fold_after, c.fold_max_members),
            ),
            SinkKind::PagerDuty(c) => (Backend::PagerDuty(PagerDutySink::build(c, env)?), None),
        })
    }

    /// One attempt ([`Sink::deliver`]); `sink` is the name the logs carry.
    async fn deliver(
        &self,
        sink: &str,
        payload: &Payload,
        attempt: u32,
        actions: &[crate::render::ActionButton],
    ) -> Outcome {
        match self {
            Backend::Webhook(s) => s.deliver(sink, payload, attempt).await,
            Backend::Stdout(s) => s.deliver(payload).await,
            Backend::File(s) => s.deliver(payload).await,
            Backend::DingTalk(s) => s.deliver(sink, payload, actions).await,
            Backend::Feishu(s) => s.deliver(sink, payload, actions).await,
            Backend::WeCom(s) => s.deliver(sink, payload, actions).await,
            Backend::Slack(s) => s.deliver(sink, payload, actions).await,
            Backend::Email(s) => s.deliver(sink, payload, actions).await,
            Backend::PagerDuty(s) => s.deliver(payload).await,
        }
    }

    /// What one attempt would send ([`Sink::preview`]).
    fn preview(&self, payload: &Payload) -> Result<String, String> {
        let json = |body: &Value| serde_json::to_string(body).map_err(|e| e.to_string());
        match self {
            Backend::Webhook(s) => Ok(payload::to_json_within(payload, s.max_body_bytes())),
            Backend::File(_) => Ok(payload::to_json(payload)),
            Backend::Stdout(s) => Ok(s.render(payload)),
            Backend::Email(s) => s
                .message(payload, &[])
                .map(|(m, _)| String::from_utf8_lossy(&m.formatted()).into_owned()),
            Backend::Slack(s) => json(&s.render(payload, &[]).body),
            Backend::DingTalk(s) => json(&s.render(payload, 0, None, &[]).body),
            Backend::Feishu(s) => json(&s.render(payload, 0, None, &[]).body),
            Backend::WeCom(s) => json(&s.render(payload, 0, None, &[]).body),
            Backend::PagerDuty(s) => json(&s.preview(payload)),
        }
    }
}

/// A config value written inline or read like a secret: `url = "https://…"` or
/// `url = { env = "HOOK_URL" }`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(
    untagged,
    expecting = "a string, { env = \"NAME\" } or { file = \"/path\" }"
)]
pub enum MaybeSecret {
    /// Written in the config file.
    Inline(String),
    /// Read from the environment or a file when the sink is built.
    From(SecretRef),
}

impl MaybeSecret {
    /// The value (a [`Secret`] either way, so it is never printed by accident).
    pub fn resolve_with(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Secret, String> {
        match self {
            MaybeSecret::Inline(v) => Ok(Secret::new(v.clone())),
            MaybeSecret::From(r) => r.resolve_with(env).map_err(|e| e.to_string()),
        }
    }

    /// Whether the value is a secret reference.
    pub fn is_secret(&self) -> bool {
        matches!(self, MaybeSecret::From(_))
    }

    /// The secret reference, when the value is one.
    pub fn reference(&self) -> Option<&SecretRef> {
        match self {
            MaybeSecret::Inline(_) => None,
            MaybeSecret::From(r) => Some(r),
        }
    }

    /// Makes a relative `file` reference relative to `base`.
    pub fn anchor(&mut self, base: &Path) {
        if let MaybeSecret::From(r) = self {
            r.anchor(base);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SinkConfig, String> {
        toml::from_str::<SinkConfig>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn common_keys_and_defaults() {
        let c = parse("name = \"out\"\ntype = \"stdout\"\n").unwrap();
        assert_eq!(c.name, "out");
        assert_eq!(c.filters, Filters::default());
        assert_eq!(c.kind, SinkKind::Stdout(StdoutConfig::default()));
        assert!(c.check().is_empty());
        let c = parse(
            "name = \"f\"\ntype = \"file\"\npath = \"x.jsonl\"\ndomains = [\"alerts\"]\nmin_severity = \"high\"\nevents = [\"new\"]\n",
        )
        .unwrap();
        assert_eq!(c.filters.domains, Some(vec![Domain::Alerts]));
        assert_eq!(c.filters.min_severity, Severity::High);
        assert_eq!(c.filters.events, Some(vec![EventKind::New]));
        assert!(!c.filters.resolved_after_silence);
        // PagerDuty closes incidents opened before a silence unless told not to.
        let pd = "name = \"pd\"\ntype = \"pagerduty\"\nrouting_key = { env = \"K\" }\n";
        assert!(parse(pd).unwrap().filters.resolved_after_silence);
        let off = format!("{pd}send_resolved_after_silence = false\n");
        assert!(!parse(&off).unwrap().filters.resolved_after_silence);
        let on = "name = \"o\"\ntype = \"stdout\"\nsend_resolved_after_silence = true\n";
        assert!(parse(on).unwrap().filters.resolved_after_silence);
    }

    #[test]
    fn unknown_keys_and_types_are_rejected_by_name() {
        let e = parse("name = \"a\"\ntype = \"stdout\"\ncolour = \"blue\"\n").unwrap_err();
        assert!(e.contains("unknown key `colour` for a stdout sink"), "{e}");
        assert!(e.contains("min_severity"), "{e}");
        // A webhook key on a file sink is unknown there.
        let e = parse("name = \"a\"\ntype = \"file\"\npath = \"p\"\nurl = \"https://x\"\n")
            .unwrap_err();
        assert!(e.contains("unknown key `url` for a file sink"), "{e}");
        let e = parse("name = \"a\"\ntype = \"pager\"\n").unwrap_err();
        assert!(e.contains("pager"), "{e}");
        let e = parse("name = \"a\"\ntype = \"stdout\"\nformat = \"xml\"\n").unwrap_err();
        assert!(e.contains("format") && e.contains("xml"), "{e}");
        let e = parse("name = \"a\"\ntype = \"webhook\"\nurl = \"https://x\"\ntimeout = 5\n")
            .unwrap_err();
        assert!(e.contains("timeout"), "{e}");
        let e = parse("name = \"a\"\ntype = \"stdout\"\ndomains = [\"malware\"]\n").unwrap_err();
        assert!(e.contains("malware"), "{e}");
        let e = parse("type = \"stdout\"\n").unwrap_err();
        assert!(e.contains("name"), "{e}");
    }

    #[test]
    fn check_reports_names_and_empty_filters() {
        let mut c =
            parse("name = \"bad name!\"\ntype = \"stdout\"\ndomains = []\nevents = []\n").unwrap();
        let keys: Vec<String> = c.check().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["name", "domains", "events"]);
        c.name = "x".repeat(MAX_NAME_LEN + 1);
        assert!(c.check().iter().any(|(k, _)| k == "name"));
        c.name = "ok-name_1.2".into();
        c.filters = Filters::default();
        assert!(c.check().is_empty());
    }

    #[test]
    fn concurrency_defaults_by_type_and_is_bounded() {
        let hook = "name = \"a\"\ntype = \"webhook\"\nurl = \"https://x.example/h\"\n";
        let pd = "name = \"p\"\ntype = \"pagerduty\"\nrouting_key = { env = \"K\" }\n";
        assert_eq!(parse(hook).unwrap().concurrency, WEBHOOK_CONCURRENCY);
        assert_eq!(parse(pd).unwrap().concurrency, 1);
        let problems = |text: String| -> Vec<(String, String)> { parse(&text).unwrap().check() };
        for ok in [1, MAX_CONCURRENCY] {
            assert!(problems(format!("{hook}concurrency = {ok}\n")).is_empty());
            assert!(problems(format!("{pd}concurrency = {ok}\n")).is_empty());
        }
        for bad in [0, MAX_CONCURRENCY + 1] {
            let p = problems(format!("{hook}concurrency = {bad}\n"));
            assert_eq!(p.len(), 1, "{p:?}");
            assert_eq!(p[0].0, "concurrency");
            assert!(p[0].1.contains(&format!("got {bad}")), "{p:?}");
        }
        let p = problems("name = \"o\"\ntype = \"stdout\"\nconcurrency = 4\n".into());
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].1.contains("in order"), "{p:?}");
        assert!(problems("name = \"o\"\ntype = \"stdout\"\nconcurrency = 1\n".into()).is_empty());
    }
}
