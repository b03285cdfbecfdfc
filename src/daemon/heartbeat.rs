//! The heartbeat to an external dead man's switch (`[health] heartbeat_url`, healthchecks.io
//! style): a `GET` every `heartbeat_interval` while the daemon is ready ([`Health::not_ready`]
//! is empty). The switch alerts when the pings stop, so it notices what no meta-event can
//! say: a dead host, a daemon that does not run, a daemon that cannot reach any sink, and a
//! blind daemon (which withholds its ping).
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

/// The heartbeat task.
pub struct Heartbeat {
    health: Health,
    url: reqwest::Url,
    every: Duration,
    client: reqwest::Client,
    /// The endpoint as logs show it.
    shown: String,
}

impl Heartbeat {
    /// Pings `url` every `every` while `health` says the daemon is ready.
    pub fn new(health: Health, url: reqwest::Url, every: Duration) -> Result<Heartbeat, String> {
        Ok(Heartbeat {
            shown: http::redact_url(&url, true),
            client: http::client(PING_TIMEOUT)?,
            health,
            url,
            every,
        })
    }

    /// The endpoint as logs show it (scheme and host).
    pub fn shown(&self) -> &str {
        &self.shown
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
        let now_ms = crate::clock::unix_ms(time::OffsetDateTime::now_utc());
        let snapshot = self.health.snapshot(now_ms);
        let not_ready = self.health.not_ready(&snapshot);
        if !not_ready.is_empty() {
            tracing::warn!(
                endpoint = %self.shown,
                reasons = ?not_ready,
                "Not ready: the heartbeat is withheld, so the dead man's switch will alert."
            );
            return Ok(Next::After(self.every));
        }
        let what = format!("GET {}", self.shown);
        let request = self.client.get(self.url.clone());
        match http::exchange(request, &what, PING_TIMEOUT, 1024, ReadBody::UnlessSuccess).await {
            Ok(reply) if (200..300).contains(&reply.status) => {
                tracing::debug!(endpoint = %self.shown, "Heartbeat sent.");
                Ok(Next::After(self.every))
            }
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
