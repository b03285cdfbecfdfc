//! The email sink: one SMTP submission (lettre, pooled: one transport per sink) of a
//! `multipart/alternative` message (text, then HTML) rendered by
//! [`render::email`](crate::render::email).
//!
//! The subject comes from the renderer (one header-safe line in which no `=?` survives, so the
//! only RFC 2047 encoded words are those lettre writes); the From display name is configuration;
//! recipients come only from `to` and `cc`; the `Message-ID` is `<{payload id}@sasrelay>`,
//! so a retried message keeps its identity. No other header carries finding text. TLS is
//! `starttls` by default (port 587; credentials are never sent before STARTTLS succeeded),
//! `implicit` (465) or, only when written out, `none` (25, and then no credentials).
//! `ca_file` adds a private CA to the trusted roots.
//!
//! ## Classification ([`classify`])
//!
//! | failure | outcome |
//! |---|---|
//! | SMTP 4xx reply | `Retry` |
//! | SMTP 5xx reply | `Permanent` (dead letter) |
//! | connection refused or reset, timeout, TLS handshake | `Retry` |
//! | client-side problem (no common AUTH mechanism, a bad address) | `Permanent` |

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use super::chat;
use super::http::check_timeout;
use super::limit::{Limiter, RateLimit};
use super::{MaybeSecret, Outcome};
use crate::duration::HumanDuration;
use crate::event::Payload;
use crate::render::email::EmailOptions;
use crate::render::{Lang, valid_zone};
use crate::secret::SecretRef;
use crate::text::error_chain;
use crate::text::{strip_control, truncate_bytes};

/// Keys of `type = "email"`, besides the common ones.
pub const KEYS: [&str; 20] = [
    "host",
    "port",
    "tls",
    "username",
    "password",
    "from",
    "to",
    "cc",
    "ca_file",
    "lang",
    "timezone",
    "subject_template",
    "text_template",
    "html_template",
    "rate_limit",
    "timeout",
    "fold_after",
    "fold_max_members",
    "pool_size",
    "max_message_bytes",
];

/// Default `fold_after`.
pub const DEFAULT_FOLD_AFTER: usize = 10;
/// Default `max_message_bytes`, the largest message sent as encoded on the wire (headers,
/// both parts): 256 KiB, well under what relays take (often 10 MiB, some 1 MiB).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// `max_message_bytes` bounds: a message needs room for its headers and two parts.
pub const MAX_MESSAGE_BYTES_RANGE: std::ops::RangeInclusive<usize> = 16 * 1024..=64 * 1024 * 1024;

/// The smallest cap a part is rendered to when a message is too large.
const MIN_PART_BYTES: usize = 4096;

/// Default `fold_max_members`.
pub const DEFAULT_FOLD_MAX: usize = 50;
/// Default `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// Plain connect, then STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// No TLS (port 25): only for a local relay; no credentials.
    None,
}

impl TlsMode {
    /// The usual port.
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::Implicit => 465,
            TlsMode::Starttls => 587,
            TlsMode::None => 25,
        }
    }
}

/// `type = "email"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP server host name (also the name its certificate must carry).
    pub host: String,
    /// Port; default by `tls`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (default), `implicit` or `none`.
    #[serde(default)]
    pub tls: TlsMode,
    /// SMTP AUTH user.
    #[serde(default)]
    pub username: Option<MaybeSecret>,
    /// SMTP AUTH password.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// Sender, e.g. `"sasrelay <alerts@example.com>"`.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Copy recipients.
    #[serde(default)]
    pub cc: Vec<String>,
    /// A PEM file with a CA to trust besides the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `en` (default) or `zh`.
    #[serde(default)]
    pub lang: Lang,
    /// IANA zone times are shown in.
    #[serde(default = "utc")]
    pub timezone: String,
    /// Custom subject template file.
    #[serde(default)]
    pub subject_template: Option<PathBuf>,
    /// Custom text-part template file.
    #[serde(default)]
    pub text_template: Option<PathBuf>,
    /// Custom HTML-part template file.
    #[serde(default)]
    pub html_template: Option<PathBuf>,
    /// Rate limit of the sink.
    #[serde(default = "default_rate")]
    pub rate_limit: RateLimit,
    /// Per-command SMTP timeout.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Fold a due backlog of more than this many single events into digests.
    #[serde(default = "default_fold_after")]
    pub fold_after: usize,
    /// Most events per folded digest.
    #[serde(default = "default_fold_max")]
    pub fold_max_members: usize,
    /// Most pooled SMTP connections.
    #[serde(default = "default_pool")]
    pub pool_size: u32,
    /// The largest message sent, as encoded on the wire ([`MAX_MESSAGE_BYTES`] by default):
    /// its parts are rendered smaller until it fits.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
}

fn utc() -> String {
    "UTC".into()
}
fn default_rate() -> RateLimit {
    RateLimit::new(Duration::from_secs(2), 5)
}
fn default_timeout() -> HumanDuration {
    HumanDuration(DEFAULT_TIMEOUT)
}
fn default_fold_after() -> usize {
    DEFAULT_FOLD_AFTER
}
fn default_fold_max() -> usize {
    DEFAULT_FOLD_MAX
}
fn default_pool() -> u32 {
    2
}
fn default_max_message() -> usize {
    MAX_MESSAGE_BYTES
}

impl EmailConfig {
    /// Semantic problems as `(key, message)`.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let host = self.host.trim();
        if host.is_empty()
            || host.len() > 253
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        {
            p.push((
                "host".to_string(),
                "must be a host name or IP address".into(),
            ));
        }
        if self.port == Some(0) {
            p.push(("port".to_string(), "must be 1 to 65535".into()));
        }
        if self.username.is_some() != self.password.is_some() {
            p.push((
                "password".to_string(),
                "`username` and `password` go together".into(),
            ));
        }
        if self.tls == TlsMode::None && self.username.is_some() {
            p.push((
                "tls".to_string(),
                "is \"none\": credentials would cross the network in clear; use \"starttls\" or \"implicit\""
                    .into(),
            ));
        }
        if let Err(e) = self.from.parse::<Mailbox>() {
            p.push(("from".to_string(), format!("is not an email address: {e}")));
        }
        if self.to.is_empty() {
            p.push(("to".to_string(), "must list at least one recipient".into()));
        }
        for (key, list) in [("to", &self.to), ("cc", &self.cc)] {
            for (i, a) in list.iter().enumerate() {
                if let Err(e) = a.parse::<Mailbox>() {
                    p.push((
                        format!("{key}[{i}]"),
                        format!("is not an email address: {e}"),
                    ));
                }
            }
        }
        if !valid_zone(&self.timezone) {
            p.push((
                "timezone".to_string(),
                format!("unknown time zone {:?}", self.timezone),
            ));
        }
        if !(1..=16).contains(&self.pool_size) {
            p.push(("pool_size".to_string(), "must be between 1 and 16".into()));
        }
        if !MAX_MESSAGE_BYTES_RANGE.contains(&self.max_message_bytes) {
            p.push((
                "max_message_bytes".to_string(),
                format!(
                    "must be between {} and {} (bytes of the message as sent)",
                    MAX_MESSAGE_BYTES_RANGE.start(),
                    MAX_MESSAGE_BYTES_RANGE.end()
                ),
            ));
        }
        p.extend(self.rate_limit.check("rate_limit"));
        p.extend(check_timeout(self.timeout.0));
        p.extend(chat::check_fold(self.fold_after, self.fold_max_members));
        p
    }

    /// Makes relative paths relative to `base`.
    pub fn anchor(&mut self, base: &Path) {
        if let Some(u) = &mut self.username {
            u.anchor(base);
        }
        if let Some(s) = &mut self.password {
            s.anchor(base);
        }
        for p in [
            &mut self.ca_file,
            &mut self.subject_template,
            &mut self.text_template,
            &mut self.html_template,
        ] {
            chat::anchor_path(p, base);
        }
    }
}

/// Why an SMTP submission failed, as [`classify`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpFailure {
    /// The server replied with this code.
    Reply(u16),
    /// A command timed out.
    Timeout,
    /// The TLS handshake failed.
    Tls,
    /// A client-side problem (no common AUTH mechanism, an unusable address).
    Client,
    /// Connecting or talking failed (refused, reset, DNS).
    Connection,
}

impl SmtpFailure {
    fn of(e: &lettre::transport::smtp::Error) -> SmtpFailure {
        if let Some(code) = e.status() {
            return SmtpFailure::Reply(code.to_string().parse().unwrap_or(0));
        }
        if e.is_timeout() {
            SmtpFailure::Timeout
        } else if e.is_tls() {
            SmtpFailure::Tls
        } else if e.is_client() {
            SmtpFailure::Client
        } else {
            SmtpFailure::Connection
        }
    }
}

/// Sorts an SMTP failure into an [`Outcome`] (table in the module doc). Pure.
pub fn classify(failure: SmtpFailure, detail: &str) -> Outcome {
    let detail = truncate_bytes(strip_control(detail).trim(), 512);
    match failure {
        SmtpFailure::Reply(code @ 500..=599) => Outcome::Permanent {
            reason: format!("the SMTP server refused the message permanently ({code})"),
            response: Some(detail),
        },
        SmtpFailure::Reply(code) => Outcome::Retry {
            after: None,
            reason: format!("SMTP reply {code}: {detail}"),
        },
        SmtpFailure::Client => Outcome::Permanent {
            reason: format!("cannot submit: {detail}"),
            response: None,
        },
        SmtpFailure::Tls => Outcome::Retry {
            after: None,
            reason: format!(
                "TLS with the SMTP server failed (check `tls` and `ca_file`): {detail}"
            ),
        },
        SmtpFailure::Timeout => Outcome::Retry {
            after: None,
            reason: format!("SMTP timed out: {detail}"),
        },
        SmtpFailure::Connection => Outcome::Retry {
            after: None,
            reason: format!("SMTP connection failed: {detail}"),
        },
    }
}

/// A configured email sink. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct EmailSink {
    inner: Arc<Inner>,
}

struct Inner {
    config: EmailConfig,
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    options: EmailOptions,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    limiter: Limiter,
}

impl fmt::Debug for EmailSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSink")
            .field("host", &self.inner.config.host)
            .field("tls", &self.inner.config.tls)
            .field("to", &self.inner.config.to)
            .finish_non_exhaustive()
    }
}

impl EmailSink {
    /// Resolves credentials, reads templates and the CA, builds the pooled transport (no
    /// connection is opened before the first delivery).
    pub fn build(
        c: &EmailConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<EmailSink, String> {
        let mailbox = |key: &str, a: &str| {
            a.parse::<Mailbox>()
                .map_err(|e| format!("{key}: is not an email address: {e}"))
        };
        let from = mailbox("from", &c.from)?;
        let to =
            c.to.iter()
                .map(|a| mailbox("to", a))
                .collect::<Result<_, _>>()?;
        let cc =
            c.cc.iter()
                .map(|a| mailbox("cc", a))
                .collect::<Result<_, _>>()?;
        let host = c.host.trim().to_string();
        let mut params = TlsParameters::builder(host.clone());
        if let Some(path) = &c.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("ca_file: cannot read {}: {e}", path.display()))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| {
                format!("ca_file: {} is not a PEM certificate: {e}", path.display())
            })?;
            params = params.add_root_certificate(cert);
        }
        let tls = match c.tls {
            TlsMode::None => Tls::None,
            mode => {
                let p = params.build().map_err(|e| format!("tls: {e}"))?;
                if mode == TlsMode::Implicit {
                    Tls::Wrapper(p)
                } else {
                    Tls::Required(p)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(c.port.unwrap_or(c.tls.default_port()))
            .tls(tls)
            .timeout(Some(c.timeout.0))
            .pool_config(PoolConfig::new().max_size(c.pool_size));
        if let (Some(u), Some(p)) = (&c.username, &c.password) {
            let user = u.resolve_with(env).map_err(|e| format!("username: {e}"))?;
            let pass = p.resolve_with(env).map_err(|e| format!("password: {e}"))?;
            builder = builder.credentials(Credentials::new(
                user.expose().to_string(),
                pass.expose().to_string(),
            ));
        }
        let read = |key: &str, p: &Option<PathBuf>| -> Result<Option<String>, String> {
            p.as_ref().map(|p| chat::read_template(key, p)).transpose()
        };
        let options = EmailOptions {
            lang: c.lang,
            timezone: c.timezone.clone(),
            subject_template: read("subject_template", &c.subject_template)?,
            text_template: read("text_template", &c.text_template)?,
            html_template: read("html_template", &c.html_template)?,
            ..Default::default()
        };
        Ok(EmailSink {
            inner: Arc::new(Inner {
                config: c.clone(),
                from,
                to,
                cc,
                options,
                transport: builder.build(),
                limiter: Limiter::new(&c.rate_limit),
            }),
        })
    }

    /// The message sent for `payload`, and the render warnings: at most `max_message_bytes`
    /// as sent (its parts rendered smaller until the encoded message fits, so attacker-written
    /// text in a finding cannot make a relay refuse it).
    pub fn message(
        &self,
        payload: &Payload,
        actions: &[crate::render::ActionButton],
    ) -> Result<(Message, Vec<String>), String> {
        let mut options = self.inner.options.clone();
        options.actions = actions.to_vec();
        loop {
            let (m, warnings) = self.message_with(payload, &options)?;
            if m.formatted().len() <= self.inner.config.max_message_bytes
                || options.max_body_bytes <= MIN_PART_BYTES
            {
                return Ok((m, warnings));
            }
            options.max_body_bytes = (options.max_body_bytes / 2).max(MIN_PART_BYTES);
        }
    }

    fn message_with(
        &self,
        payload: &Payload,
        options: &crate::render::email::EmailOptions,
    ) -> Result<(Message, Vec<String>), String> {
        let r = crate::render::email::render(payload, options);
        let mut b = Message::builder()
            .from(self.inner.from.clone())
            .subject(r.body.subject)
            .message_id(Some(format!("<{}@sasrelay>", payload.id())));
        for m in &self.inner.to {
            b = b.to(m.clone());
        }
        for m in &self.inner.cc {
            b = b.cc(m.clone());
        }
        let m = b
            .multipart(MultiPart::alternative_plain_html(r.body.text, r.body.html))
            .map_err(|e| format!("cannot build the message: {e}"))?;
        Ok((m, r.warnings))
    }

    /// One SMTP submission, classified; [`Outcome::Throttled`] without a permit.
    pub async fn deliver(
        &self,
        sink: &str,
        payload: &Payload,
        actions: &[crate::render::ActionButton],
    ) -> Outcome {
        if let Err(after) = self.inner.limiter.try_acquire() {
            return Outcome::Throttled { after };
        }
        let (message, warnings) = match self.message(payload, actions) {
            Ok(m) => m,
            Err(reason) => {
                return Outcome::Permanent {
                    reason,
                    response: None,
                };
            }
        };
        for w in &warnings {
            tracing::warn!(sink = %sink, event = %payload.id(), warning = %w, "The message was rendered with a warning.");
        }
        match self.inner.transport.send(message).await {
            Ok(r) => Outcome::Delivered {
                detail: format!(
                    "SMTP {} from {}: {}",
                    r.code(),
                    self.inner.config.host,
                    truncate_bytes(
                        &strip_control(&r.message().collect::<Vec<_>>().join(" ")),
                        200
                    )
                ),
            },
            Err(e) => classify(SmtpFailure::of(&e), &error_chain(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_failures_are_classified() {
        let retry = |f| matches!(classify(f, "x"), Outcome::Retry { .. });
        let permanent = |f| matches!(classify(f, "x"), Outcome::Permanent { .. });
        for code in [421, 450, 451, 452, 454] {
            assert!(retry(SmtpFailure::Reply(code)), "{code}");
        }
        for code in [500, 501, 530, 535, 550, 552, 553, 554] {
            assert!(permanent(SmtpFailure::Reply(code)), "{code}");
        }
        assert!(retry(SmtpFailure::Timeout));
        assert!(retry(SmtpFailure::Connection));
        assert!(retry(SmtpFailure::Tls));
        assert!(permanent(SmtpFailure::Client));
        match classify(SmtpFailure::Tls, "invalid peer certificate\r\nx") {
            Outcome::Retry { reason, .. } => {
                assert!(
                    reason.contains("`ca_file`") && !reason.contains('\n'),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn config_checks() {
        let parse = |t: &str| -> Vec<String> {
            let c: EmailConfig = toml::from_str(t).unwrap();
            c.check().into_iter().map(|p| p.0).collect()
        };
        let base = "host = \"smtp.example.com\"\nfrom = \"sasrelay <a@example.com>\"\nto = [\"b@example.com\"]\n";
        assert!(parse(base).is_empty());
        let c: EmailConfig = toml::from_str(base).unwrap();
        assert_eq!((c.tls, c.tls.default_port()), (TlsMode::Starttls, 587));
        assert_eq!(
            parse(&format!(
                "{base}tls = \"none\"\nusername = \"u\"\npassword = {{ env = \"P\" }}\n"
            )),
            ["tls"]
        );
        assert_eq!(parse(&format!("{base}username = \"u\"\n")), ["password"]);
        assert_eq!(
            parse("host = \"\"\nfrom = \"nope\"\nto = [\"x@y\", \"bad address\"]\ncc = [\"<>\"]\n"),
            ["host", "from", "to[1]", "cc[0]"]
        );
        assert_eq!(parse("host = \"h\"\nfrom = \"a@b.c\"\nto = []\n"), ["to"]);
    }
}
