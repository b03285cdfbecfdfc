//! Wall-clock time. A leaf: imported by many, imports nothing of ours.
//!
//! [`unix_ms`] is the one conversion to the integer milliseconds the store keeps (due times,
//! enqueue times, cursors). [`Clock`] is wall-clock time for expiry decisions, injectable so
//! credential refresh can be tested without waiting.
//!
//! Credential lifetimes are wall-clock facts (`Expiration` is a UTC timestamp from the server), so
//! the refresher sleeps towards wall-clock instants rather than monotonic durations. The
//! [`SystemClock`] sleeps in bounded steps and re-reads the wall clock, so a suspended VM or a
//! stepped clock cannot make it oversleep an expiry. [`ManualClock`] is moved by hand in tests.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

/// Unix milliseconds: the store's time unit.
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Unix milliseconds as RFC 3339 in UTC (`2026-05-01T10:00:00.5Z`); empty when out of range.
pub fn rfc3339_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Now, as Unix seconds with a fraction (what Prometheus timestamps are).
pub fn unix_seconds_now() -> f64 {
    OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9
}

/// A boxed future, as [`Clock::sleep_until`] returns.
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// The time source for expiry checks and refresh scheduling.
pub trait Clock: Send + Sync + 'static {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;
    /// Completes once [`Clock::now`] has reached `deadline` (at once if it already has).
    fn sleep_until(&self, deadline: OffsetDateTime) -> Sleep<'_>;
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

/// Longest single sleep before the wall clock is looked at again.
const MAX_SLEEP_STEP: Duration = Duration::from_secs(60);

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn sleep_until(&self, deadline: OffsetDateTime) -> Sleep<'_> {
        Box::pin(async move {
            loop {
                let left = deadline - OffsetDateTime::now_utc();
                if !left.is_positive() {
                    return;
                }
                let step = Duration::try_from(left)
                    .unwrap_or(MAX_SLEEP_STEP)
                    .min(MAX_SLEEP_STEP);
                tokio::time::sleep(step).await;
            }
        })
    }
}

/// A clock that only moves when told to; sleepers wake as soon as it passes their deadline.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<OffsetDateTime>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        ManualClock {
            now: watch::Sender::new(start),
        }
    }

    /// A clock standing at the current wall-clock second.
    pub fn starting_now() -> Self {
        let now = OffsetDateTime::now_utc();
        Self::new(now.replace_nanosecond(0).unwrap_or(now))
    }

    /// Moves the clock forward by `by`, waking every sleeper whose deadline has passed.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|t| *t += by);
    }

    /// Moves the clock to `to` (never backwards).
    pub fn advance_to(&self, to: OffsetDateTime) {
        self.now.send_if_modified(|t| {
            let later = to > *t;
            if later {
                *t = to;
            }
            later
        });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.borrow()
    }

    fn sleep_until(&self, deadline: OffsetDateTime) -> Sleep<'_> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as `self`, which outlives this future.
            let _ = rx.wait_for(|now| *now >= deadline).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_only_when_it_passes_their_deadline() {
        let clock = ManualClock::starting_now();
        let start = clock.now();
        let deadline = start + Duration::from_secs(60);
        let mut sleep = clock.sleep_until(deadline);
        assert!(!poll_once(&mut sleep).await);
        clock.advance(Duration::from_secs(59));
        assert!(!poll_once(&mut sleep).await);
        clock.advance(Duration::from_secs(1));
        assert!(poll_once(&mut sleep).await);
        assert_eq!(clock.now(), deadline);
        clock.advance_to(start);
        assert_eq!(clock.now(), deadline, "never moves backwards");
    }

    async fn poll_once(f: &mut Sleep<'_>) -> bool {
        std::future::poll_fn(|cx| std::task::Poll::Ready(f.as_mut().poll(cx).is_ready())).await
    }
}
