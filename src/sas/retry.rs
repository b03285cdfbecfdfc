//! Retry policy for Security Center calls: which failures are retried, and how long to wait.
//!
//! The schedule is pure (the caller supplies the random jitter), so it is tested without a clock.
//! Throttling waits at least what the service asked for in `x-acs-retry-after`.

use std::time::Duration;

use super::error::SasError;
use crate::backoff::Backoff;

/// The crate's backoff curve ([`Backoff`]), capped, for a bounded number of attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Upper bound of the first wait.
    pub initial_delay: Duration,
    /// No wait is longer than this (a `x-acs-retry-after` above it is clamped too).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// A policy, or why it makes no sense.
    pub fn new(
        max_attempts: u32,
        initial_delay: Duration,
        max_delay: Duration,
    ) -> Result<Self, String> {
        if max_attempts == 0 || max_attempts > 20 {
            return Err(format!(
                "max_attempts {max_attempts} must be between 1 and 20"
            ));
        }
        if initial_delay.is_zero() || initial_delay > max_delay {
            return Err(format!(
                "retry delays must satisfy 0 < initial ({initial_delay:?}) <= max ({max_delay:?})"
            ));
        }
        Ok(RetryPolicy {
            max_attempts,
            initial_delay,
            max_delay,
        })
    }

    /// How long to wait before attempt `attempt + 1` after `err` ended attempt `attempt`
    /// (1-based), or `None` to give up. `jitter` is uniform in `[0, 1)`.
    pub fn next_delay(&self, attempt: u32, err: &SasError, jitter: f64) -> Option<Duration> {
        if attempt >= self.max_attempts || !err.retryable() {
            return None;
        }
        let curve = Backoff::saturating(self.initial_delay, self.max_delay);
        Some(curve.delay_honouring(attempt, jitter, err.retry_after(), self.max_delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sas::error::ApiErrorBody;

    fn api(code: &str, status: u16, retry_after: Option<Duration>) -> SasError {
        SasError::Api {
            action: "A".into(),
            status,
            body: Box::new(ApiErrorBody {
                code: code.into(),
                ..Default::default()
            }),
            retry_after,
        }
    }

    #[test]
    fn backs_off_exponentially_within_bounds() {
        let p = RetryPolicy::new(6, Duration::from_secs(1), Duration::from_secs(5)).unwrap();
        let e = api("ServiceUnavailable", 503, None);
        let full: Vec<_> = (1..6).map(|a| p.next_delay(a, &e, 1.0).unwrap()).collect();
        assert!(full[0] < Duration::from_secs(1) + Duration::from_millis(1));
        assert!(full.windows(2).all(|w| w[0] <= w[1]));
        assert!(full.iter().all(|d| *d <= Duration::from_secs(5)));
        assert_eq!(p.next_delay(1, &e, 0.0), Some(Duration::from_millis(500)));
        assert_eq!(p.next_delay(6, &e, 0.5), None, "attempts are bounded");
    }

    #[test]
    fn honours_retry_after_but_clamps_it() {
        let p = RetryPolicy::new(3, Duration::from_millis(100), Duration::from_secs(10)).unwrap();
        let e = api("Throttling.User", 400, Some(Duration::from_secs(2)));
        assert_eq!(p.next_delay(1, &e, 0.0), Some(Duration::from_secs(2)));
        let e = api("Throttling.User", 400, Some(Duration::from_secs(600)));
        assert_eq!(p.next_delay(1, &e, 0.0), Some(Duration::from_secs(10)));
    }

    #[test]
    fn permanent_errors_are_not_retried() {
        let p = RetryPolicy::default();
        for (code, status) in [
            ("SignatureDoesNotMatch", 400),
            ("Forbidden.RAM", 403),
            ("InvalidAccessKeyId.NotFound", 404),
        ] {
            assert_eq!(
                p.next_delay(1, &api(code, status, None), 0.5),
                None,
                "{code}"
            );
        }
    }

    #[test]
    fn nonsense_is_rejected() {
        assert!(RetryPolicy::new(0, Duration::from_secs(1), Duration::from_secs(2)).is_err());
        assert!(RetryPolicy::new(3, Duration::ZERO, Duration::from_secs(2)).is_err());
        assert!(RetryPolicy::new(3, Duration::from_secs(3), Duration::from_secs(2)).is_err());
    }
}
