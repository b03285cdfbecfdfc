//! The heartbeat to an external dead man's switch (`[health] heartbeat_url`, healthchecks.io
//! style): a `GET` every `heartbeat_interval` while the daemon is ready ([`Health::not_ready`]
//! is empty). The switch alerts when the pings stop, so it notices what no meta-event can
//! say: a dead host, a daemon that does not run, a daemon that cannot reach any sink, and a
//! blind daemon (which withholds its ping). Without a URL the task idles, looking again every
//! [`IDLE_EVERY`] (a reload may add one).
//!
//! The URL usually carries the switch's secret (a check UUID), so logs show only its scheme
//! and host.

use std::time::Duration;

use crate::backoff::Backoff;
use crate::daemon::health::Health;
use crate::sinks::Outcome;
use crate::sinks::http::{self, ReadBody};
use crate::task::{Label, Next, Task, TaskError};

/// Whole-request timeout of one ping.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle heartbeat (no URL configured) looks again.
pub const IDLE_EVERY: Duration = Duration::from_secs(60);

/// The heartbeat task.
pub struct Heartbeat {
    health: Health,
    client: reqwest::Client,
    /// The endpoint last pinged, as logs show it; `None` before the first.
    shown: Option<String>,
    /// The interval in force (for the backoff's cap).
    every: Duration,
}

impl Heartbeat {
    /// Pings the URL `health` has configured while it says the daemon is ready.
    pub fn new(health: Health) -> Result<Heartbeat, String> {
        Ok(Heartbeat {
            client: http::client(PING_TIMEOUT)?,
            health,
            shown: None,
            every: IDLE_EVERY,
        })
    }

    /// One ping to `url`, shown as `shown`.
    async fn ping(&self, url: reqwest::Url, shown: &str) -> Result<(), TaskError> {
        let what = format!("GET {shown}");
        let request = self.client.get(url);
        match http::exchange(request, &what, PING_TIMEOUT, 1024, ReadBody::UnlessSuccess).await {
            Ok(reply) if (200..300).contains(&reply.status) => Ok(()),
            Ok(reply) => Err(TaskError::retryable(
                "The dead man's switch refused the heartbeat; retrying.",
                format!("{what}: HTTP {}", reply.status),
            )),
            Err(Outcome::Retry { reason, .. } | Outcome::Permanent { reason, .. }) => Err(
                TaskError::retryable("Cannot reach the dead man's switch; retrying.", reason),
            ),
            Err(other) => Err(TaskError::retryable(
                "Cannot reach the dead man's switch; retrying.",
                format!("{what}: {other:?}"),
            )),
        }
    }
}

impl Task for Heartbeat {
    fn label(&self) -> Label {
        Label::new("heartbeat")
    }

    /// A failed ping is tried again from 1 s, never later than the next regular one.
    fn backoff(&self) -> Backoff {
        Backoff::saturating(Duration::from_secs(1), self.every)
    }

    async fn step(&mut self) -> Result<Next, TaskError> {
        let Some((url, every)) = self.health.heartbeat() else {
            self.shown = None;
            return Ok(Next::After(IDLE_EVERY));
        };
        self.every = every;
        let shown = http::redact_url(&url, true);
        if self.shown.as_deref() != Some(shown.as_str()) {
            tracing::info!(
                endpoint = %shown,
                every_s = every.as_secs_f64(),
                "Sending heartbeats to the dead man's switch while ready."
            );
            self.shown = Some(shown.clone());
        }
        let now_ms = crate::clock::unix_ms(time::OffsetDateTime::now_utc());
        let not_ready = self.health.not_ready(&self.health.snapshot(now_ms));
        if !not_ready.is_empty() {
            tracing::warn!(
                endpoint = %shown,
                reasons = ?not_ready,
                "Not ready: the heartbeat is withheld, so the dead man's switch will alert."
            );
            return Ok(Next::After(every));
        }
        self.ping(url, &shown).await?;
        tracing::debug!(endpoint = %shown, "Heartbeat sent.");
        Ok(Next::After(every))
    }
}
