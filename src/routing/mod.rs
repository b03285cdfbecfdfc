//! Routing: which sinks an event goes to, grouped how, muted or not — Alertmanager's routing
//! model over sasrelay's events. Pure: no IO and no clock reads (`now` is a parameter), so
//! every rule is table-tested.
//!
//! - [`matcher`] — `name="value"`, `!=`, `=~`, `!~` (fully anchored), `severity>=high`, brace
//!   lists; canonical `Display`.
//! - [`fields`] — the matchable fields (one table) and the [`Subject`] built from an event.
//! - [`config`] — `[routing]`, `[[route]]` (nested `routes`) as written, with spans.
//! - [`interval`] — `[[time_interval]]`: wall-clock windows in a named time zone.
//! - [`router`] — compile (checks, inheritance, warnings) and decide / explain.
//! - [`silence`] — a checked silence: matchers and a time window.
//! - [`issue`] — a config problem with its span and key.
//!
//! Without `[routing]` and `[[route]]`, [`Router::compile`] gives [`Router::broadcast`]:
//! every event to every sink, ungrouped — sasrelay's behaviour before routing existed.
//!
//! The config loader deserialises `[routing]` into [`DefaultRouteConfig`], each `[[route]]`
//! into [`RouteConfig`] and each `[[time_interval]]` into [`TimeIntervalConfig`] (see
//! [`config::section`]), then calls [`Router::compile`] with the sink names; every [`Issue`]
//! carries a byte span into the file and a dotted key. [`parse_document`] does all of that for
//! a whole document.

pub mod config;
pub mod fields;
pub mod interval;
pub mod issue;
pub mod matcher;
pub mod router;
pub mod silence;

pub use config::{DefaultRouteConfig, RouteConfig, RoutingConfig, RoutingDocument, parse_document};
pub use fields::{FIELDS, Field, FieldDef, Subject};
pub use interval::{TimeInterval, TimeIntervalConfig, TimeIntervals};
pub use issue::{Issue, Level};
pub use matcher::{Check, Matcher, MatcherError, Op, parse_matchers};
pub use router::{Decision, Explanation, Grouping, Outcome, Router, Target, TraceLine};
pub use silence::{Silence, SilenceError, SilenceState, matches_every_event};

/// The routing clock's type from the `time` timestamps the rest of sasrelay uses (saturating
/// at jiff's range, ±9999 years).
pub fn to_timestamp(t: time::OffsetDateTime) -> jiff::Timestamp {
    let nanos = t.unix_timestamp_nanos();
    jiff::Timestamp::from_nanosecond(nanos).unwrap_or(if nanos < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routers_can_be_shared_between_tasks() {
        fn shared<T: Send + Sync + Clone>() {}
        shared::<Router>();
        shared::<Silence>();
    }

    #[test]
    fn timestamps_convert_from_time() {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(1_778_068_800_123_456_789)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        assert_eq!(
            to_timestamp(t).to_string(),
            "2026-05-06T12:00:00.123456789Z"
        );
        assert_eq!(
            to_timestamp(time::OffsetDateTime::UNIX_EPOCH),
            jiff::Timestamp::UNIX_EPOCH
        );
    }
}
