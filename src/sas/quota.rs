//! The Security Center call budget: one token bucket per (site, quota group, action), shared by
//! every source of the process that calls that site, so sources on one account add up to one
//! rate instead of one each.
//!
//! Security Center's quota is about 10 calls per second per API action per account and site
//! (docs/sas-api.md §7). sasrelay cannot tell which keys belong to one account, so by default
//! every source on a site shares one bucket per action (never over any account's quota; slower
//! when one process serves several accounts); sources of different accounts can set
//! `quota_group` to get buckets of their own. The default rate, [`DEFAULT_CALLS_PER_SECOND`],
//! stays well under the quota, leaving room for the console and other tools on the account.
//!
//! Buckets are GCRA ([`governor`]) with a burst of one: calls of one action are spaced
//! `1 / rate` apart, so no second ever holds more than `rate` of them. A call waits for its
//! permit before it is signed (a signature's timestamp must be fresh). Waits are counted per
//! action ([`waits`]) for metrics and logs.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// Calls per second per action when a source does not set `calls_per_second`.
pub const DEFAULT_CALLS_PER_SECOND: u32 = 5;

/// The highest `calls_per_second` accepted (the service's own quota is about 10).
pub const MAX_CALLS_PER_SECOND: u32 = 50;

/// Permits are this much further apart than `1 / calls_per_second`: with exact spacing, calls
/// 200 ms apart at 5 a second put 6 inside one second at the service as soon as one of them is
/// delayed on its way (measured with the simulator counting its busiest second). 5 % tolerates
/// 50 ms of jitter at 5 a second.
const SPACING_MARGIN: f64 = 1.05;

type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock, NoOpMiddleware>;

/// Which bucket a call takes its permit from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BucketKey {
    /// `host[:port]` of the endpoint (the site).
    pub site: String,
    /// The `quota_group` (empty: the site's shared group).
    pub group: String,
    /// The API action.
    pub action: String,
}

/// How long calls of one action waited for permits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Waits {
    /// Permits taken.
    pub calls: u64,
    /// Of those, permits that had to be waited for.
    pub waited: u64,
    /// Total time waited.
    pub total: Duration,
}

#[derive(Default)]
struct Budget {
    buckets: Mutex<HashMap<BucketKey, Arc<Bucket>>>,
    waits: Mutex<BTreeMap<String, Waits>>,
}

static BUDGET: LazyLock<Budget> = LazyLock::new(Budget::default);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The bucket of `key`, created at `per_second` by its first user (later users of the same
/// key share it as it is: the first source's setting wins, which `check` keeps consistent).
fn bucket(key: &BucketKey, per_second: NonZeroU32) -> Arc<Bucket> {
    lock(&BUDGET.buckets)
        .entry(key.clone())
        .or_insert_with(|| {
            // Permits a little more than 1/rate apart, so that a call delayed on its way does
            // not land in the same second as the rate's next ones at the service.
            let period = Duration::from_secs_f64(SPACING_MARGIN / f64::from(per_second.get()));
            let quota = Quota::with_period(period)
                .unwrap_or_else(|| Quota::per_second(per_second))
                .allow_burst(NonZeroU32::MIN);
            Arc::new(RateLimiter::direct(quota))
        })
        .clone()
}

/// Waits for a permit to call `key.action`; returns how long it waited.
pub async fn acquire(key: &BucketKey, per_second: NonZeroU32) -> Duration {
    let bucket = bucket(key, per_second);
    let clock = DefaultClock::default();
    let start = std::time::Instant::now();
    let mut waited = false;
    while let Err(not_until) = bucket.check() {
        waited = true;
        tokio::time::sleep(not_until.wait_time_from(clock.now())).await;
    }
    let took: Duration = if waited {
        start.elapsed()
    } else {
        Duration::ZERO
    };
    let mut waits = lock(&BUDGET.waits);
    let w = waits.entry(key.action.clone()).or_default();
    w.calls += 1;
    w.waited += u64::from(waited);
    w.total += took;
    took
}

/// Permits taken and time waited so far, by action (all buckets of the process).
pub fn waits() -> BTreeMap<String, Waits> {
    lock(&BUDGET.waits).clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn one_bucket_per_site_group_and_action_spaces_calls() {
        let key = |site: &str, group: &str, action: &str| BucketKey {
            site: site.into(),
            group: group.into(),
            action: action.into(),
        };
        let rate = NonZeroU32::new(20).unwrap();
        let a = key("quota-test-site:1", "", "DescribeSuspEvents");
        let start = Instant::now();
        for _ in 0..5 {
            acquire(&a, rate).await;
        }
        // Five permits at 20/s: the first at once, then one every 50 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(200),
            "{:?}",
            start.elapsed()
        );
        // Another action, group or site has its own bucket: its first permit is immediate.
        for other in [
            key("quota-test-site:1", "", "DescribeVulList"),
            key("quota-test-site:1", "tenant-b", "DescribeSuspEvents"),
            key("quota-test-site:2", "", "DescribeSuspEvents"),
        ] {
            assert_eq!(acquire(&other, rate).await, Duration::ZERO, "{other:?}");
        }
        let w = waits()["DescribeSuspEvents"];
        assert!(w.calls >= 7 && w.waited >= 4, "{w:?}");
    }
}
