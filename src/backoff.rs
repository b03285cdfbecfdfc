//! The one backoff curve of the crate: exponential from an initial step, capped, with equal
//! jitter (half the step fixed, half random). Security Center calls, polls, source connects,
//! credential refreshes and deliveries all wait by it, so "how long until the next try" has one
//! answer everywhere. A leaf: imported by many, imports nothing of ours.
//!
//! Pure: the caller supplies the random draw, so the schedule is table- and property-tested
//! without a clock. [`Backoff::new`] rejects nonsense (a zero step, a step above the cap).

use std::time::Duration;

/// Exponential backoff with equal jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    cap: Duration,
}

impl Backoff {
    /// A curve starting at `initial` and never above `cap`, or why it makes no sense.
    pub fn new(initial: Duration, cap: Duration) -> Result<Self, String> {
        if initial.is_zero() || initial > cap {
            return Err(format!(
                "backoff must satisfy 0 < initial ({initial:?}) <= cap ({cap:?})"
            ));
        }
        Ok(Backoff { initial, cap })
    }

    /// A curve for values the caller has already checked; a nonsensical pair is made sensible
    /// (a zero step becomes 1 ms, a cap below the step is raised to it) rather than panicking.
    pub fn saturating(initial: Duration, cap: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Backoff {
            initial,
            cap: cap.max(initial),
        }
    }

    /// The first step.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The longest wait.
    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// The un-jittered step before retry `attempt` (1-based: the wait after the first failure):
    /// `initial × 2^(attempt−1)`, capped. Saturates, never overflows.
    pub fn step(&self, attempt: u32) -> Duration {
        self.initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.cap)
    }

    /// The wait before retry `attempt`: between half and all of [`Backoff::step`], placed by
    /// `jitter` (a uniform draw in `[0, 1)`; values outside are clamped). Half is fixed so
    /// retries still back off; half is random so a fleet does not retry in step.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        self.step(attempt)
            .mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// [`Backoff::delay`], but never sooner than what the peer asked for (`Retry-After`,
    /// `x-acs-retry-after`), itself limited to `ceiling`.
    pub fn delay_honouring(
        &self,
        attempt: u32,
        jitter: f64,
        asked: Option<Duration>,
        ceiling: Duration,
    ) -> Duration {
        self.delay(attempt, jitter)
            .max(asked.unwrap_or_default().min(ceiling))
    }

    /// [`Backoff::delay`] with a fresh random draw.
    pub fn delay_now(&self, attempt: u32) -> Duration {
        self.delay(attempt, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn doubles_to_its_cap() {
        let b = Backoff::new(secs(5), secs(300)).unwrap();
        let steps: Vec<u64> = (1..9).map(|a| b.step(a).as_secs()).collect();
        assert_eq!(steps, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.step(0), secs(5), "attempt 0 is treated as the first");
        assert_eq!(b.step(u32::MAX), secs(300));
    }

    #[test]
    fn jitter_spans_half_to_all_of_the_step() {
        let b = Backoff::new(secs(2), secs(60)).unwrap();
        assert_eq!(b.delay(2, 0.0), secs(2));
        assert_eq!(b.delay(2, 1.0), secs(4));
        assert_eq!(b.delay(2, 7.0), secs(4), "clamped");
        assert_eq!(b.delay(2, -1.0), secs(2), "clamped");
    }

    #[test]
    fn a_peer_asking_for_longer_wins_up_to_the_ceiling() {
        let b = Backoff::new(secs(1), secs(10)).unwrap();
        assert_eq!(
            b.delay_honouring(1, 0.0, Some(secs(7)), secs(3600)),
            secs(7)
        );
        assert_eq!(
            b.delay_honouring(1, 0.0, Some(secs(7200)), secs(3600)),
            secs(3600)
        );
        assert_eq!(b.delay_honouring(1, 1.0, None, secs(3600)), secs(1));
    }

    #[test]
    fn nonsense_is_rejected_or_made_sensible() {
        assert!(Backoff::new(Duration::ZERO, secs(1)).is_err());
        assert!(Backoff::new(secs(2), secs(1)).is_err());
        let b = Backoff::saturating(Duration::ZERO, Duration::ZERO);
        assert_eq!(
            (b.initial(), b.cap()),
            (Duration::from_millis(1), Duration::from_millis(1))
        );
    }

    proptest! {
        /// Whatever the curve and the draw: the wait is between half the step and the step,
        /// never above the cap, and the un-jittered steps never shrink.
        #[test]
        fn waits_stay_within_the_curve(
            initial_ms in 1u64..100_000,
            extra_ms in 0u64..10_000_000,
            attempt in 0u32..200,
            jitter in -1.0f64..2.0,
        ) {
            let b = Backoff::new(
                Duration::from_millis(initial_ms),
                Duration::from_millis(initial_ms + extra_ms),
            ).unwrap();
            let step = b.step(attempt);
            let wait = b.delay(attempt, jitter);
            prop_assert!(step <= b.cap());
            prop_assert!(step >= b.initial());
            prop_assert!(wait <= step);
            prop_assert!(wait >= step / 2 - Duration::from_nanos(1));
            prop_assert!(b.step(attempt + 1) >= step);
        }
    }
}
