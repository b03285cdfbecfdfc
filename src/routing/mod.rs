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
pub use silence::{Silence, SilenceError, SilenceState};
