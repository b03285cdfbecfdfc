//! Rate limits: the `rate_limit = { period, burst }` setting and the [`Limiter`] that enforces
//! it, a GCRA bucket ([`governor`]) per destination (a DingTalk robot, a Feishu bot, a WeCom
//! robot, a Slack webhook or channel, an SMTP sink, a PagerDuty routing key).
//!
//! A permit is taken *at the sender*, so retries count too. A limiter lives in memory only, so it
//! starts **empty**: a process that restarts in a loop cannot send a fresh burst each time
//! (DingTalk would block the robot for 10 minutes after 20 messages in a minute). A sink that
//! finds its limiter empty sends nothing and answers [`Outcome::Throttled`](super::Outcome);
//! the worker waits without counting an attempt.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::Deserialize;

use crate::duration::HumanDuration;

/// Longest `rate_limit.period`.
pub const MAX_PERIOD: Duration = Duration::from_secs(3600);
/// Largest `rate_limit.burst`.
pub const MAX_BURST: u32 = 100;

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

/// One destination's token bucket, on the process clock (or, in tests, a fake one). Starts
/// empty (see the module doc).
pub struct Limiter<C: Clock = DefaultClock> {
    inner: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
    clock: C,
}

impl<C: Clock> std::fmt::Debug for Limiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limiter")
    }
}

impl Limiter {
    /// A limiter for `limit`, with its burst already spent.
    pub fn new(limit: &RateLimit) -> Limiter {
        Limiter::with_clock(limit, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Limiter<C> {
    /// A limiter for `limit` reading `clock`, with its burst already spent.
    pub fn with_clock(limit: &RateLimit, clock: C) -> Limiter<C> {
        let burst = NonZeroU32::new(limit.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(limit.period.0.max(Duration::from_millis(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        let inner = RateLimiter::direct_with_clock(quota, clock.clone());
        // Spend the burst: memory-only state must not grant a fresh burst after a restart.
        let _ = inner.check_n(burst);
        Limiter { inner, clock }
    }

    /// Takes one permit, or says how long until one is free. Never waits.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        self.inner
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn limiter_starts_empty_and_refills_by_period() {
        let clock = FakeRelativeClock::default();
        let l = Limiter::with_clock(&RateLimit::new(Duration::from_secs(3), 1), clock.clone());
        assert_eq!(l.try_acquire(), Err(Duration::from_secs(3)));
        clock.advance(Duration::from_secs(1));
        assert_eq!(l.try_acquire(), Err(Duration::from_secs(2)));
        clock.advance(Duration::from_secs(2));
        assert_eq!(l.try_acquire(), Ok(()));
        assert_eq!(l.try_acquire(), Err(Duration::from_secs(3)));

        // A burst refills one permit per period, up to the burst.
        let l = Limiter::with_clock(&RateLimit::new(Duration::from_secs(1), 3), clock.clone());
        assert!(l.try_acquire().is_err());
        clock.advance(Duration::from_secs(10));
        assert_eq!(
            (0..4).map(|_| l.try_acquire().is_ok()).collect::<Vec<_>>(),
            [true, true, true, false]
        );
    }

    #[test]
    fn the_process_clock_limiter_starts_empty_too() {
        let l = Limiter::new(&RateLimit::new(Duration::from_secs(3), 1));
        let wait = l.try_acquire().unwrap_err();
        assert!(
            wait > Duration::from_secs(2) && wait <= Duration::from_secs(3),
            "{wait:?}"
        );
    }

    #[test]
    fn rate_limit_checks_name_their_keys() {
        let bad = RateLimit::new(Duration::ZERO, 0);
        let keys: Vec<String> = bad.check("rate_limit").into_iter().map(|p| p.0).collect();
        assert_eq!(keys, ["rate_limit.period", "rate_limit.burst"]);
        assert!(
            RateLimit::new(Duration::from_secs(3), 1)
                .check("r")
                .is_empty()
        );
        assert_eq!(RateLimit::new(Duration::from_secs(3), 1).per_minute(), 20);
    }
}
