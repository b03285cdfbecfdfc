//! Keeping an expiring credential fresh: one background task per handle that fetches a new
//! credential ahead of expiry and swaps it in atomically.
//!
//! Invariants:
//! - [`ProvideCredential::current`] never waits on the network and never sees a gap: the old
//!   credential is served until the new one has replaced it under a write lock.
//! - A failed refresh keeps the old credential until it expires (WARN, with when it expires),
//!   then `current()` fails naming the provider and the last failure (ERROR, once at expiry and
//!   on every failed attempt after it); attempts continue with capped, jittered backoff.
//! - The task is spawned on the caller's tracker and ends when the shutdown token is cancelled;
//!   the last credential keeps being served until it expires.
//! - Progress is published on a [`watch`] channel ([`RefreshStatus`]) so tests and health checks
//!   can wait for a refresh instead of sleeping.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::ecs::EcsRamRole;
use super::http::format_timestamp;
use super::rrsa::Rrsa;
use super::uri::CredentialsUri;
use super::{Credential, CredentialContext, CredentialError, CredentialHandle, ProvideCredential};
use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::duration::format_duration;

/// When to refresh and how to retry.
///
/// A credential fetched at `t` and expiring at `e` is refreshed at the earlier of `e − lead` (the
/// SDK treats credentials as stale 15 minutes before expiry) and two thirds of its lifetime. The
/// lead is capped at half the lifetime, so short-lived credentials (tests, tight session
/// policies) are refreshed at half their life rather than at once or after expiry; a server that
/// keeps handing out the same nearly-expired key is thus asked again at halving intervals, a few
/// times, until the key has expired and the backoff takes over. Failed attempts are retried after
/// `initial_backoff`, doubling up to `max_backoff`, each delay jittered down by up to half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefreshPolicy {
    lead: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Default for RefreshPolicy {
    /// Lead 15 min, backoff 5 s doubling to 5 min.
    fn default() -> Self {
        RefreshPolicy {
            lead: Duration::from_secs(15 * 60),
            initial_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(5 * 60),
        }
    }
}

impl RefreshPolicy {
    /// A policy; rejects a zero backoff and a maximum below the initial backoff.
    pub fn new(
        lead: Duration,
        initial_backoff: Duration,
        max_backoff: Duration,
    ) -> Result<Self, CredentialError> {
        if initial_backoff.is_zero() {
            return Err(CredentialError::Config(
                "refresh policy: initial_backoff must be positive".into(),
            ));
        }
        if max_backoff < initial_backoff {
            return Err(CredentialError::Config(format!(
                "refresh policy: max_backoff {} is below initial_backoff {}",
                format_duration(max_backoff),
                format_duration(initial_backoff)
            )));
        }
        Ok(RefreshPolicy {
            lead,
            initial_backoff,
            max_backoff,
        })
    }

    /// When a credential fetched at `fetched_at` and expiring at `expiration` is refreshed.
    pub fn refresh_at(
        &self,
        fetched_at: OffsetDateTime,
        expiration: OffsetDateTime,
    ) -> OffsetDateTime {
        let lifetime = (expiration - fetched_at).max(time::Duration::ZERO);
        let at_most_half = |d: Duration| {
            time::Duration::try_from(d)
                .unwrap_or(time::Duration::MAX)
                .min(lifetime / 2)
        };
        let by_lead = expiration - at_most_half(self.lead);
        let by_fraction = fetched_at + lifetime * 2 / 3;
        by_lead.min(by_fraction).max(fetched_at)
    }

    /// The un-jittered delay before retry number `attempt` (0-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.curve().step(attempt.saturating_add(1))
    }

    /// The crate's backoff curve between `initial_backoff` and `max_backoff`.
    fn curve(&self) -> Backoff {
        Backoff::saturating(self.initial_backoff, self.max_backoff)
    }

    /// The longest delay between two attempts.
    pub fn max_backoff(&self) -> Duration {
        self.max_backoff
    }
}

/// What the refresher has done so far; published on the handle's watch channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshStatus {
    /// Credentials obtained so far, counting the first (so 1 when the handle is returned).
    pub generation: u64,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// Failed attempts over the handle's life.
    pub total_failures: u64,
    /// Why the latest attempt failed, when it did. Never holds a secret.
    pub last_error: Option<String>,
    /// When the credential being served expires.
    pub expiration: OffsetDateTime,
    /// When the next attempt is due; `None` once the refresher has stopped.
    pub next_attempt: Option<OffsetDateTime>,
}

/// A provider that fetches expiring credentials.
#[derive(Debug)]
pub(crate) enum Fetcher {
    Rrsa(Rrsa),
    Ecs(EcsRamRole),
    Uri(CredentialsUri),
}

impl Fetcher {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Fetcher::Rrsa(_) => super::PROVIDER_RRSA,
            Fetcher::Ecs(_) => super::PROVIDER_ECS_RAM_ROLE,
            Fetcher::Uri(_) => super::PROVIDER_URI,
        }
    }

    pub(crate) fn endpoint(&self) -> String {
        match self {
            Fetcher::Rrsa(f) => f.endpoint(),
            Fetcher::Ecs(f) => f.endpoint(),
            Fetcher::Uri(f) => f.endpoint(),
        }
    }

    /// One attempt; a credential without a future `Expiration` is an error.
    pub(crate) async fn fetch(
        &self,
        http: &reqwest::Client,
        clock: &dyn Clock,
    ) -> Result<Credential, String> {
        let credential = match self {
            Fetcher::Rrsa(f) => f.fetch(http, clock.now()).await,
            Fetcher::Ecs(f) => f.fetch().await,
            Fetcher::Uri(f) => f.fetch(http).await,
        }?;
        match credential.expiration {
            Some(exp) if exp > clock.now() => Ok(credential),
            Some(exp) => Err(format!(
                "{}: {} returned a credential that expired at {}",
                self.name(),
                self.endpoint(),
                format_timestamp(exp)
            )),
            None => Err(format!(
                "{}: {} returned a credential without Expiration",
                self.name(),
                self.endpoint()
            )),
        }
    }
}

/// The credential being served and the latest refresh failure.
struct Served {
    credential: Credential,
    last_error: Option<String>,
}

/// The provider behind a refreshing handle.
struct Refreshing {
    provider: &'static str,
    clock: Arc<dyn Clock>,
    /// Written only by the refresh task; never held across an await.
    served: RwLock<Served>,
}

impl ProvideCredential for Refreshing {
    fn current(&self) -> Result<Credential, CredentialError> {
        let served = self.served.read().unwrap_or_else(PoisonError::into_inner);
        match served.credential.expiration {
            Some(exp) if self.clock.now() >= exp => Err(CredentialError::Unavailable(format!(
                "{}: the credential expired at {} and no refresh has succeeded since; last refresh failure: {}",
                self.provider,
                format_timestamp(exp),
                served
                    .last_error
                    .as_deref()
                    .unwrap_or("none recorded (the refresher is stopped or has not run yet)")
            ))),
            _ => Ok(served.credential.clone()),
        }
    }
}

/// Serves `first` and spawns the task that keeps it fresh.
pub(crate) fn start(
    fetcher: Fetcher,
    first: Credential,
    ctx: &CredentialContext,
) -> CredentialHandle {
    let provider = fetcher.name();
    let fetched_at = ctx.clock.now();
    let expiration = first
        .expiration
        .expect("Fetcher::fetch only returns credentials with an expiration");
    let shared = Arc::new(Refreshing {
        provider,
        clock: ctx.clock.clone(),
        served: RwLock::new(Served {
            credential: first,
            last_error: None,
        }),
    });
    let (status_tx, status_rx) = watch::channel(RefreshStatus {
        generation: 1,
        consecutive_failures: 0,
        total_failures: 0,
        last_error: None,
        expiration,
        next_attempt: Some(ctx.policy.refresh_at(fetched_at, expiration)),
    });
    let task = Refresher {
        fetcher,
        shared: shared.clone(),
        status: status_tx,
        http: ctx.http.clone(),
        clock: ctx.clock.clone(),
        policy: ctx.policy,
        shutdown: ctx.shutdown.clone(),
    };
    ctx.tracker.spawn(
        task.run(fetched_at, expiration)
            .instrument(tracing::Span::current()),
    );
    CredentialHandle {
        provider: shared,
        name: Some(provider),
        status: Some(status_rx),
    }
}

struct Refresher {
    fetcher: Fetcher,
    shared: Arc<Refreshing>,
    status: watch::Sender<RefreshStatus>,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    policy: RefreshPolicy,
    shutdown: CancellationToken,
}

impl Refresher {
    async fn run(self, mut fetched_at: OffsetDateTime, mut expiration: OffsetDateTime) {
        let provider = self.fetcher.name();
        let endpoint = self.fetcher.endpoint();
        'scheduled: loop {
            let due = self.policy.refresh_at(fetched_at, expiration);
            self.status.send_modify(|s| s.next_attempt = Some(due));
            tracing::debug!(
                provider,
                expires_at = %format_timestamp(expiration),
                refresh_at = %format_timestamp(due),
                "Credential refresh scheduled."
            );
            if !self.sleep_until(due).await {
                break;
            }
            let mut attempt: u32 = 0;
            loop {
                let result = tokio::select! {
                    _ = self.shutdown.cancelled() => break 'scheduled,
                    r = self.fetcher.fetch(&self.http, &*self.clock) => r,
                };
                let now = self.clock.now();
                match result {
                    Ok(credential) => {
                        let Some(new_expiration) = credential.expiration else {
                            break 'scheduled;
                        };
                        tracing::info!(
                            provider,
                            access_key_id = %credential.access_key_id,
                            expires_at = %format_timestamp(new_expiration),
                            "Credential refreshed."
                        );
                        *self
                            .shared
                            .served
                            .write()
                            .unwrap_or_else(PoisonError::into_inner) = Served {
                            credential,
                            last_error: None,
                        };
                        fetched_at = now;
                        expiration = new_expiration;
                        // One update, so a watcher never sees the new generation paired
                        // with the old schedule.
                        let next = self.policy.refresh_at(now, new_expiration);
                        self.status.send_modify(|s| {
                            s.generation += 1;
                            s.consecutive_failures = 0;
                            s.last_error = None;
                            s.expiration = new_expiration;
                            s.next_attempt = Some(next);
                        });
                        continue 'scheduled;
                    }
                    Err(error) => {
                        let delay = self.jittered(attempt);
                        attempt = attempt.saturating_add(1);
                        let retry_at = now + delay;
                        if now < expiration {
                            tracing::warn!(
                                provider,
                                endpoint = %endpoint,
                                error = %error,
                                expires_at = %format_timestamp(expiration),
                                retry_in = %format_duration(delay),
                                "Credential refresh failed; keeping the current credential until it expires."
                            );
                        } else {
                            tracing::error!(
                                provider,
                                endpoint = %endpoint,
                                error = %error,
                                expired_at = %format_timestamp(expiration),
                                retry_in = %format_duration(delay),
                                "Credential refresh failed and the credential has expired; requests will fail until a refresh succeeds."
                            );
                        }
                        self.shared
                            .served
                            .write()
                            .unwrap_or_else(PoisonError::into_inner)
                            .last_error = Some(error.clone());
                        // Published after logging, so a watcher that sees it sees the log too.
                        self.status.send_modify(|s| {
                            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
                            s.total_failures += 1;
                            s.last_error = Some(error.clone());
                            s.next_attempt = Some(retry_at);
                        });
                        if now < expiration && retry_at > expiration {
                            if !self.sleep_until(expiration).await {
                                break 'scheduled;
                            }
                            self.log_expired(expiration, &error);
                        }
                        if !self.sleep_until(retry_at).await {
                            break 'scheduled;
                        }
                    }
                }
            }
        }
        self.status.send_modify(|s| s.next_attempt = None);
        tracing::debug!(provider, "Credential refresher stopped.");
    }

    fn log_expired(&self, expiration: OffsetDateTime, error: &str) {
        tracing::error!(
            provider = self.fetcher.name(),
            endpoint = %self.fetcher.endpoint(),
            error = %error,
            expired_at = %format_timestamp(expiration),
            "Credential expired before a refresh succeeded; requests will fail until one does."
        );
    }

    /// Sleeps until `deadline` on the clock; `false` when shut down first.
    async fn sleep_until(&self, deadline: OffsetDateTime) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = self.clock.sleep_until(deadline) => true,
        }
    }

    /// Backoff for `attempt` (0-based), jittered down by up to half so many handles do not
    /// retry in step.
    fn jittered(&self, attempt: u32) -> Duration {
        self.policy.curve().delay_now(attempt.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn policy(lead_secs: u64) -> RefreshPolicy {
        RefreshPolicy::new(
            Duration::from_secs(lead_secs),
            Duration::from_secs(1),
            Duration::from_secs(2),
        )
        .unwrap()
    }

    #[test]
    fn refresh_is_due_at_the_earlier_of_lead_and_two_thirds_of_lifetime() {
        let p = RefreshPolicy::default();
        let t = datetime!(2026-01-01 00:00:00 UTC);
        let at = |lifetime: u64| p.refresh_at(t, t + Duration::from_secs(lifetime));
        // One hour: 2/3 (40 min) comes before expiry − 15 min (45 min).
        assert_eq!(at(3600), t + Duration::from_secs(2400));
        // Six hours (ECS): 2/3 (4 h) comes before expiry − 15 min (5 h 45).
        assert_eq!(at(6 * 3600), t + Duration::from_secs(4 * 3600));
        // Thirty minutes: expiry − 15 min (15 min) comes before 2/3 (20 min).
        assert_eq!(at(1800), t + Duration::from_secs(900));
        // Nine seconds: the 15 min lead is capped at half the life.
        assert_eq!(at(9), t + Duration::from_millis(4500));
        // Already expired: at once.
        assert_eq!(p.refresh_at(t, t - Duration::from_secs(1)), t);
        // A long lead wins over 2/3 when it is the earlier.
        assert_eq!(
            policy(5 * 3600).refresh_at(t, t + Duration::from_secs(12 * 3600)),
            t + Duration::from_secs(7 * 3600)
        );
        // Zero lead: 2/3 of the life.
        assert_eq!(
            policy(0).refresh_at(t, t + Duration::from_secs(30)),
            t + Duration::from_secs(20)
        );
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_nonsense_is_rejected() {
        let p = RefreshPolicy::default();
        let secs: Vec<u64> = (0..8).map(|a| p.backoff(a).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(300));
        assert!(RefreshPolicy::new(Duration::ZERO, Duration::ZERO, Duration::ZERO).is_err());
        assert!(
            RefreshPolicy::new(
                Duration::ZERO,
                Duration::from_secs(2),
                Duration::from_secs(1)
            )
            .is_err()
        );
    }
}
