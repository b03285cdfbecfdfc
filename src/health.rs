//! Health: what sasrelay can truthfully say about itself, decided without IO (`now` and every
//! figure are parameters; `daemon::health` gathers them and acts).
//!
//! ## The model
//!
//! Every (source, domain) is in one [`State`], from its poll figures ([`classify`]), with
//! `N` = `[health] blind_after` and `I` the domain's poll interval:
//!
//! | state | when |
//! |---|---|
//! | `starting` | no poll has finished since the daemon started (or a reload added the domain), for less than `N + 1` intervals |
//! | `ok` | the latest poll succeeded, less than `N + 1` intervals ago; or, since then, a poll still reading a long listing committed a page less than `N + 1` intervals ago |
//! | `degraded` | the latest poll failed, and one succeeded less than `N` intervals ago |
//! | `blind` | the latest poll failed and none ever succeeded; or none succeeded for `N` intervals; or no poll finished, and no page was committed, for `N + 1` intervals |
//!
//! A source that cannot connect (its credentials cannot be loaded, its client cannot be
//! built) fails every domain's poll: its domains are `blind` from the first failure. A
//! `starting` domain is not judged ([`undecided`]): an episode an earlier run left open stays
//! open across a restart until the domain is seen again.
//!
//! ## Conditions and meta-events
//!
//! Three conditions ([`HealthCondition`]) open an episode when they start to hold and close
//! it when they stop ([`next_episode`]); each change is announced once, as a meta-event,
//! through the sinks of `[health] sinks` ([`HealthSettings::targets`]):
//!
//! - `source_blind`: a (source, domain) is `blind`;
//! - `credentials_expiring`: a source's refreshing credential expires within
//!   `credentials_warning` (or has expired) and its latest refresh failed;
//! - `sink_stalled`: a sink's oldest waiting entry is older than `stalled_after` (announced
//!   through the other sinks only).
//!
//! ## Configuration (`[health]`)
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `blind_after` | `3` | intervals of failure (after a success) before a domain is `blind` (1 to 100) |
//! | `sinks` | every sink | where meta-events go; `[]` sends none |
//! | `stalled_after` | `"15m"` | age of a sink's oldest waiting entry that makes it `sink_stalled` (1s to 30d) |
//! | `credentials_warning` | `"10m"` | how long before expiry a credential that fails to refresh is reported (1s to 1d) |
//! | `heartbeat_url` | none | a dead man's switch (healthchecks.io style): `GET` every `heartbeat_interval` while the daemon is ready; a string or `{ env = "X" }` / `{ file = "/path" }` |
//! | `heartbeat_interval` | `"1m"` | how often (1s to 1d) |

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::{HumanDuration, format_duration};
use crate::event::{EPISODE_SCHEMA, HealthCondition, HealthEpisode};
use crate::finding::Domain;
use crate::sinks::MaybeSecret;

/// `blind_after` when not given.
pub const DEFAULT_BLIND_AFTER: u32 = 3;
/// `stalled_after` when not given.
pub const DEFAULT_STALLED_AFTER: Duration = Duration::from_secs(15 * 60);
/// `credentials_warning` when not given.
pub const DEFAULT_CREDENTIALS_WARNING: Duration = Duration::from_secs(10 * 60);
/// `heartbeat_interval` when not given.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(60);

/// `[health]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    blind_after: Option<u32>,
    sinks: Option<Vec<String>>,
    stalled_after: Option<HumanDuration>,
    credentials_warning: Option<HumanDuration>,
    heartbeat_url: Option<MaybeSecret>,
    heartbeat_interval: Option<HumanDuration>,
}

/// Checked `[health]` (the module doc has the table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthSettings {
    /// Intervals of failure before a domain is `blind`.
    pub blind_after: u32,
    /// The sinks meta-events go to; `None`: every sink.
    pub sinks: Option<Vec<String>>,
    /// Age of a sink's oldest waiting entry that makes it stalled.
    pub stalled_after: Duration,
    /// How long before expiry a credential that fails to refresh is reported.
    pub credentials_warning: Duration,
    /// The dead man's switch to ping, as written (a secret is read by `daemon::build`).
    pub heartbeat_url: Option<MaybeSecret>,
    /// How often to ping it.
    pub heartbeat_interval: Duration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            blind_after: DEFAULT_BLIND_AFTER,
            sinks: None,
            stalled_after: DEFAULT_STALLED_AFTER,
            credentials_warning: DEFAULT_CREDENTIALS_WARNING,
            heartbeat_url: None,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
        }
    }
}

impl HealthSettings {
    /// Checks `raw` against the configured sink names: the settings (defaults where a value
    /// is wrong) and every problem as `(key, message)`, the key relative to `[health]`.
    pub fn check(raw: RawHealth, sinks: &[&str]) -> (HealthSettings, Vec<(String, String)>) {
        let d = HealthSettings::default();
        let mut problems = Vec::new();
        let mut within = |key: &str, v: Option<HumanDuration>, default, min, max| match v {
            Some(HumanDuration(v)) if v < min || v > max => {
                problems.push((
                    key.to_string(),
                    format!(
                        "must be between {} and {}",
                        format_duration(min),
                        format_duration(max)
                    ),
                ));
                default
            }
            Some(HumanDuration(v)) => v,
            None => default,
        };
        const SECOND: Duration = Duration::from_secs(1);
        const DAY: Duration = Duration::from_secs(86_400);
        let stalled_after = within(
            "stalled_after",
            raw.stalled_after,
            d.stalled_after,
            SECOND,
            30 * DAY,
        );
        let credentials_warning = within(
            "credentials_warning",
            raw.credentials_warning,
            d.credentials_warning,
            SECOND,
            DAY,
        );
        let heartbeat_interval = within(
            "heartbeat_interval",
            raw.heartbeat_interval,
            d.heartbeat_interval,
            SECOND,
            DAY,
        );
        let blind_after = match raw.blind_after {
            Some(n @ 1..=100) => n,
            Some(_) => {
                problems.push((
                    "blind_after".into(),
                    "must be between 1 and 100 (poll intervals)".into(),
                ));
                d.blind_after
            }
            None => d.blind_after,
        };
        if let Some(list) = &raw.sinks {
            for (i, name) in list.iter().enumerate() {
                if !sinks.contains(&name.as_str()) {
                    problems.push((
                        format!("sinks[{i}]"),
                        format!(
                            "no sink is named {name:?}; configured sinks: {}",
                            sinks.join(", ")
                        ),
                    ));
                }
            }
        }
        if let Some(MaybeSecret::Inline(url)) = &raw.heartbeat_url
            && let Err(e) = crate::sinks::http::parse_url(url, false, false)
        {
            problems.push(("heartbeat_url".into(), e));
        }
        let settings = HealthSettings {
            blind_after,
            sinks: raw.sinks,
            stalled_after,
            credentials_warning,
            heartbeat_url: raw.heartbeat_url,
            heartbeat_interval,
        };
        (settings, problems)
    }

    /// The sinks a meta-event about `condition` goes to, out of `all` configured: those of
    /// `[health] sinks` (every sink by default), except the sink a `sink_stalled` is about.
    pub fn targets<'a>(
        &self,
        condition: &HealthCondition,
        all: impl IntoIterator<Item = &'a str>,
    ) -> Vec<String> {
        all.into_iter()
            .filter(|s| self.sinks.as_ref().is_none_or(|l| l.iter().any(|n| n == s)))
            .filter(|s| condition.sink() != Some(*s))
            .map(str::to_string)
            .collect()
    }
}

/// The health of one (source, domain).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// No poll has finished since the daemon started (yet within its grace).
    Starting,
    /// Reading.
    Ok,
    /// Failing, but it read recently.
    Degraded,
    /// Not reading: never succeeded, failing too long, or stuck.
    Blind,
}

impl State {
    /// Every state, in the order of the `sasrelay_source_health` series.
    pub const ALL: [State; 4] = [State::Starting, State::Ok, State::Degraded, State::Blind];

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Ok => "ok",
            State::Degraded => "degraded",
            State::Blind => "blind",
        }
    }
}

/// What [`classify`] reads of one (source, domain).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollView {
    /// The domain's poll interval.
    pub interval: Duration,
    /// Whether a poll succeeded since the daemon started.
    pub succeeded_since_start: bool,
    /// When the last successful poll ended (unix ms), this run or an earlier one.
    pub last_success_ms: Option<i64>,
    /// When a page of a poll was last read and committed, this run (unix ms): a poll still
    /// reading a long listing is being read, not stalled.
    pub last_page_ms: Option<i64>,
    /// Failed polls (connect failures included) since the last success.
    pub consecutive_failures: u64,
}

/// A state and why, in a few words for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The state.
    pub state: State,
    /// Why, e.g. `every poll failed since the daemon started`.
    pub why: String,
}

/// `n` intervals of `interval`, in ms.
fn intervals_ms(interval: Duration, n: u32) -> i64 {
    i64::try_from(interval.saturating_mul(n).as_millis()).unwrap_or(i64::MAX)
}

/// A span of ms as people read it (`1m30s`).
fn age(ms: i64) -> String {
    format_duration(Duration::from_millis(
        u64::try_from(ms.max(0) / 1000 * 1000).unwrap_or(0),
    ))
}

/// `1 failed poll`, `3 failed polls`.
fn failed_polls(n: u64) -> String {
    format!("{n} failed poll{}", if n == 1 { "" } else { "s" })
}

/// The state of a (source, domain) with `v`, `blind_after` intervals, in a daemon started at
/// `started_ms` (or, for a domain a reload added, since that reload), at `now_ms` (the module
/// doc has the table).
pub fn classify(v: &PollView, blind_after: u32, started_ms: i64, now_ms: i64) -> Verdict {
    let verdict = |state, why: String| Verdict { state, why };
    let stale = intervals_ms(v.interval, blind_after.saturating_add(1));
    if v.consecutive_failures > 0 {
        return match v.last_success_ms {
            None => verdict(
                State::Blind,
                format!(
                    "never read: {}, none ever succeeded",
                    failed_polls(v.consecutive_failures)
                ),
            ),
            Some(t) if now_ms - t > intervals_ms(v.interval, blind_after) => verdict(
                State::Blind,
                format!(
                    "not read for {}: {} since the last success",
                    age(now_ms - t),
                    failed_polls(v.consecutive_failures)
                ),
            ),
            Some(t) => verdict(
                State::Degraded,
                format!(
                    "{}; the last success was {} ago",
                    failed_polls(v.consecutive_failures),
                    age(now_ms - t)
                ),
            ),
        };
    }
    // A page committed after the last success is a poll still reading: seen, not stalled.
    let reading = v
        .last_page_ms
        .filter(|p| v.last_success_ms.is_none_or(|t| *p > t) && now_ms - p <= stale);
    if let Some(p) = reading {
        return verdict(
            State::Ok,
            format!("a poll is reading; its last page {} ago", age(now_ms - p)),
        );
    }
    match v.last_success_ms {
        Some(t) if v.succeeded_since_start && now_ms - t > stale => verdict(
            State::Blind,
            format!("no poll has finished for {}", age(now_ms - t)),
        ),
        Some(t) if v.succeeded_since_start => {
            verdict(State::Ok, format!("read {} ago", age(now_ms - t)))
        }
        _ if now_ms - started_ms > stale => verdict(
            State::Blind,
            format!(
                "no poll has finished since the daemon started {} ago",
                age(now_ms - started_ms)
            ),
        ),
        _ => verdict(State::Starting, "the first poll has not finished".into()),
    }
}

/// What [`firing`] reads of a source's refreshing credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialView {
    /// The source.
    pub source: String,
    /// When the credential being served expires (unix ms).
    pub expiration_ms: i64,
    /// Failed refresh attempts since the last success.
    pub consecutive_failures: u32,
    /// Why the latest attempt failed.
    pub last_error: Option<String>,
}

/// What [`firing`] reads of one sink's outbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkView {
    /// The sink.
    pub sink: String,
    /// Entries waiting.
    pub depth: u64,
    /// When the oldest waiting entry was enqueued (unix ms).
    pub oldest_enqueued_ms: Option<i64>,
    /// Dead letters kept.
    pub dead_letters: u64,
}

/// One (source, domain) with its verdict and last error, as [`firing`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceHealth {
    /// The source.
    pub source: String,
    /// The domain.
    pub domain: Domain,
    /// Its state and why.
    pub verdict: Verdict,
    /// Why the latest failed poll failed (control characters removed).
    pub last_error: Option<String>,
}

/// A condition that holds now, with what its meta-event says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Firing {
    /// The condition.
    pub condition: HealthCondition,
    /// One sentence (names from the configuration only).
    pub message: String,
    /// The error behind it.
    pub detail: Option<String>,
}

/// Every condition that holds at `now_ms`.
pub fn firing(
    sources: &[SourceHealth],
    credentials: &[CredentialView],
    sinks: &[SinkView],
    settings: &HealthSettings,
    now_ms: i64,
) -> Vec<Firing> {
    let mut out = Vec::new();
    for s in sources.iter().filter(|s| s.verdict.state == State::Blind) {
        out.push(Firing {
            condition: HealthCondition::SourceBlind {
                source: s.source.clone(),
                domain: s.domain,
            },
            message: format!(
                "sasrelay cannot read {} of source {}: {}",
                s.domain.as_str(),
                s.source,
                s.verdict.why
            ),
            detail: s.last_error.clone(),
        });
    }
    let warning = i64::try_from(settings.credentials_warning.as_millis()).unwrap_or(i64::MAX);
    for c in credentials {
        let left = c.expiration_ms - now_ms;
        if c.consecutive_failures == 0 || left > warning {
            continue;
        }
        let when = if left > 0 {
            format!("expires in {}", age(left))
        } else {
            format!("expired {} ago", age(-left))
        };
        out.push(Firing {
            condition: HealthCondition::CredentialsExpiring {
                source: c.source.clone(),
            },
            message: format!(
                "the credential of source {} {when} and {} refresh attempts failed",
                c.source, c.consecutive_failures
            ),
            detail: c.last_error.clone(),
        });
    }
    let stalled = i64::try_from(settings.stalled_after.as_millis()).unwrap_or(i64::MAX);
    for s in sinks {
        let Some(oldest) = s.oldest_enqueued_ms else {
            continue;
        };
        if now_ms - oldest <= stalled {
            continue;
        }
        out.push(Firing {
            condition: HealthCondition::SinkStalled {
                sink: s.sink.clone(),
            },
            message: format!(
                "sink {} has not delivered for {}: {} entries wait, the oldest longer than stalled_after ({})",
                s.sink,
                age(now_ms - oldest),
                s.depth,
                format_duration(settings.stalled_after)
            ),
            detail: None,
        });
    }
    out
}

/// The keys of the conditions that cannot be judged yet: a (source, domain) whose first poll
/// since the start has not finished is neither blind nor seeing, and its source's credential
/// is not followed until it connects. An episode left open by an earlier run stays open
/// until they can be judged (a restart is not a recovery).
pub fn undecided(sources: &[SourceHealth]) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for s in sources
        .iter()
        .filter(|s| s.verdict.state == State::Starting)
    {
        let blind = HealthCondition::SourceBlind {
            source: s.source.clone(),
            domain: s.domain,
        };
        let credentials = HealthCondition::CredentialsExpiring {
            source: s.source.clone(),
        };
        out.insert(blind.key());
        out.insert(credentials.key());
    }
    out
}

/// The sentence of a closed episode.
fn resolved_message(c: &HealthCondition) -> String {
    match c {
        HealthCondition::SourceBlind { source, domain } => {
            format!(
                "sasrelay reads {} of source {source} again",
                domain.as_str()
            )
        }
        HealthCondition::CredentialsExpiring { source } => {
            format!("the credential of source {source} was refreshed")
        }
        HealthCondition::SinkStalled { sink } => format!("sink {sink} delivers again"),
    }
}

/// What to store for a condition whose stored episode is `stored` and which `now` holds
/// (`firing`) or not, at `now_ms`; `None` when nothing changes. A condition that starts to
/// hold opens the next episode; one that stops closes it; either change is stored as not yet
/// announced.
pub fn next_episode(
    stored: Option<&HealthEpisode>,
    firing: Option<&Firing>,
    now_ms: i64,
) -> Option<HealthEpisode> {
    match (stored, firing) {
        (Some(e), Some(_)) if e.open => None,
        (stored, Some(f)) => Some(HealthEpisode {
            v: EPISODE_SCHEMA,
            condition: f.condition.clone(),
            episode: stored.map_or(1, |e| e.episode + 1),
            open: true,
            since_ms: now_ms,
            changed_ms: now_ms,
            announced: false,
            message: f.message.clone(),
            detail: f.detail.clone(),
        }),
        (Some(e), None) if e.open => Some(HealthEpisode {
            open: false,
            changed_ms: now_ms,
            announced: false,
            message: resolved_message(&e.condition),
            detail: None,
            ..e.clone()
        }),
        (_, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::HealthStatus;

    const S: i64 = 1000;
    const I: Duration = Duration::from_secs(10);

    fn view(ok: bool, last: Option<i64>, failures: u64) -> PollView {
        PollView {
            interval: I,
            succeeded_since_start: ok,
            last_success_ms: last,
            last_page_ms: None,
            consecutive_failures: failures,
        }
    }

    #[test]
    fn states_follow_the_table() {
        let start = 1_000_000;
        let at = |v: &PollView, now: i64| classify(v, 3, start, now).state;
        // Nothing finished yet: starting for N + 1 intervals, then blind.
        assert_eq!(at(&view(false, None, 0), start + 40 * S), State::Starting);
        assert_eq!(at(&view(false, None, 0), start + 41 * S), State::Blind);
        // A success before this run does not make it ok.
        let earlier = Some(start - 5 * S);
        assert_eq!(at(&view(false, earlier, 0), start + S), State::Starting);
        // Failing and never succeeded: blind at once.
        let never = classify(&view(false, None, 1), 3, start, start + S);
        assert_eq!(never.state, State::Blind);
        assert!(never.why.contains("none ever succeeded"), "{}", never.why);
        // Failing after a success: degraded for N intervals, then blind.
        let last = Some(start + 100 * S);
        assert_eq!(at(&view(true, last, 2), start + 130 * S), State::Degraded);
        let v = classify(&view(true, last, 3), 3, start, start + 131 * S);
        assert_eq!(v.state, State::Blind);
        assert!(v.why.contains("not read for 31s"), "{}", v.why);
        // An earlier run's success counts for how long it has failed.
        assert_eq!(at(&view(false, earlier, 1), start + S), State::Degraded);
        // Succeeding: ok, until no poll has finished for N + 1 intervals (stuck).
        assert_eq!(at(&view(true, last, 0), start + 140 * S), State::Ok);
        assert_eq!(at(&view(true, last, 0), start + 141 * S), State::Blind);
    }

    #[test]
    fn a_poll_still_committing_pages_is_read_not_stalled() {
        let start = 1_000_000;
        let reading = |last: Option<i64>, page, failures, now| {
            let v = PollView {
                last_page_ms: Some(page),
                ..view(last.is_some(), last, failures)
            };
            classify(&v, 3, start, now)
        };
        // A first poll reading a long backlog: ok while pages come, blind once they stop.
        let v = reading(None, start + 50 * S, 0, start + 60 * S);
        assert_eq!(v.state, State::Ok);
        assert!(v.why.contains("last page 10s ago"), "{}", v.why);
        assert_eq!(
            reading(None, start + 50 * S, 0, start + 91 * S).state,
            State::Blind
        );
        // A long poll after a success: its pages keep it ok past N + 1 intervals.
        let last = Some(start + 10 * S);
        assert_eq!(
            reading(last, start + 55 * S, 0, start + 60 * S).state,
            State::Ok
        );
        // A page older than the last success says nothing new.
        assert_eq!(
            reading(last, start + 5 * S, 0, start + 60 * S).state,
            State::Blind
        );
        // Failing polls are judged by their last success, whatever pages they read before
        // failing: a poll that always fails at the same page is blind.
        assert_eq!(
            reading(last, start + 59 * S, 3, start + 60 * S).state,
            State::Blind
        );
    }

    fn raw(text: &str) -> RawHealth {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn checks_settings_and_picks_targets() {
        let (s, p) = HealthSettings::check(raw(""), &["a", "b"]);
        assert_eq!(s, HealthSettings::default());
        assert!(p.is_empty());
        let (s, p) = HealthSettings::check(
            raw(
                "blind_after = 0\nsinks = [\"a\", \"c\"]\nstalled_after = \"0s\"\nheartbeat_url = \"http://hc.example/x\"\n",
            ),
            &["a", "b"],
        );
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["stalled_after", "blind_after", "sinks[1]", "heartbeat_url"]
        );
        assert!(p[2].1.contains("\"c\"") && p[2].1.contains("a, b"), "{p:?}");
        assert_eq!(s.blind_after, DEFAULT_BLIND_AFTER);
        let stalled = HealthCondition::SinkStalled { sink: "a".into() };
        assert_eq!(s.targets(&stalled, ["a", "b"]), Vec::<String>::new());
        let (all, _) = HealthSettings::check(raw(""), &["a", "b"]);
        assert_eq!(all.targets(&stalled, ["a", "b"]), ["b"]);
        let blind = HealthCondition::CredentialsExpiring { source: "p".into() };
        assert_eq!(all.targets(&blind, ["a", "b"]), ["a", "b"]);
        assert!(
            HealthSettings::check(raw("sinks = []"), &["a"])
                .0
                .targets(&blind, ["a"])
                .is_empty()
        );
        assert!(toml::from_str::<RawHealth>("blind_afterr = 1").is_err());
    }

    #[test]
    fn conditions_fire_from_sources_credentials_and_sinks() {
        let settings = HealthSettings::default();
        let now = 10_000_000;
        let source = |state| SourceHealth {
            source: "prod".into(),
            domain: Domain::Alerts,
            verdict: Verdict {
                state,
                why: "why".into(),
            },
            last_error: Some("auth: bad".into()),
        };
        let cred = |failures, left_ms| CredentialView {
            source: "prod".into(),
            expiration_ms: now + left_ms,
            consecutive_failures: failures,
            last_error: Some("sts: 500".into()),
        };
        let sink = |age_ms: Option<i64>| SinkView {
            sink: "hook".into(),
            depth: 4,
            oldest_enqueued_ms: age_ms.map(|a| now - a),
            dead_letters: 0,
        };
        let f = firing(
            &[source(State::Blind), source(State::Degraded)],
            &[cred(1, 5 * 60 * S), cred(0, S), cred(3, 20 * 60 * S)],
            &[sink(Some(16 * 60 * S)), sink(Some(60 * S)), sink(None)],
            &settings,
            now,
        );
        let keys: Vec<String> = f.iter().map(|f| f.condition.key()).collect();
        assert_eq!(
            keys,
            [
                "source_blind/prod/alerts",
                "credentials_expiring/prod",
                "sink_stalled/hook"
            ]
        );
        assert_eq!(f[0].detail.as_deref(), Some("auth: bad"));
        assert!(f[1].message.contains("expires in 5m"), "{}", f[1].message);
        assert!(f[2].message.contains("4 entries"), "{}", f[2].message);
        let expired = firing(&[], &[cred(2, -S)], &[], &settings, now);
        assert!(expired[0].message.contains("expired 1s ago"));
    }

    #[test]
    fn episodes_open_once_close_once_and_count_up() {
        let f = Firing {
            condition: HealthCondition::SinkStalled { sink: "s".into() },
            message: "stalled".into(),
            detail: Some("d".into()),
        };
        let opened = next_episode(None, Some(&f), 5).unwrap();
        assert_eq!(
            (opened.episode, opened.open, opened.announced),
            (1, true, false)
        );
        let event = opened.event(time::OffsetDateTime::UNIX_EPOCH);
        assert_eq!(event.status, HealthStatus::Firing);
        // Still firing: nothing to write, announced or not.
        assert_eq!(next_episode(Some(&opened), Some(&f), 9), None);
        let closed = next_episode(Some(&opened), None, 9).unwrap();
        assert_eq!(
            (closed.episode, closed.open, closed.since_ms),
            (1, false, 5)
        );
        assert_eq!(closed.message, "sink s delivers again");
        let resolved = closed.event(time::OffsetDateTime::UNIX_EPOCH);
        assert_eq!(resolved.status, HealthStatus::Resolved);
        assert_ne!(resolved.id, event.id);
        // Same episode and status: the same id, whenever it is built.
        assert_eq!(opened.event(time::OffsetDateTime::now_utc()).id, event.id);
        assert_eq!(next_episode(Some(&closed), None, 12), None);
        assert_eq!(
            next_episode(Some(&closed), Some(&f), 12).unwrap().episode,
            2
        );
    }
}
