//! Silences, the pure part: a checked [`Silence`] (matchers and a time window), whether it is
//! active at an instant and whether it matches a subject. Storage and the HTTP API live
//! elsewhere; the serde form (matchers as canonical strings, times as RFC 3339) is what they
//! persist and send.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::fields::Subject;
use super::matcher::Matcher;

/// A silence: events whose subject matches every matcher are muted while it is active.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Unique id (chosen by the store).
    pub id: String,
    /// All must hold; stored as canonical matcher strings.
    pub matchers: Vec<Matcher>,
    /// Active from (inclusive).
    #[serde(with = "rfc3339")]
    pub starts_at: Timestamp,
    /// Active until (exclusive).
    #[serde(with = "rfc3339")]
    pub ends_at: Timestamp,
    /// Who created it.
    pub created_by: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
    /// When it was created.
    #[serde(with = "rfc3339")]
    pub created_at: Timestamp,
}

/// Why a silence is rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    /// No matchers: it would silence everything.
    #[error("a silence needs at least one matcher")]
    NoMatchers,
    /// Every matcher also matches an absent value, so it would silence nearly everything.
    #[error(
        "at least one matcher must not match the empty value (e.g. cluster=\"c123\", not cluster=~\".*\")"
    )]
    MatchesEverything,
    /// The window is empty or reversed.
    #[error("ends_at must be after starts_at")]
    BadWindow,
    /// No author.
    #[error("created_by must not be empty")]
    NoAuthor,
}

/// Whether a silence is waiting, active or over at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SilenceState {
    /// `now < starts_at`.
    Pending,
    /// `starts_at <= now < ends_at`.
    Active,
    /// `now >= ends_at`.
    Expired,
}

impl Silence {
    /// A checked silence: at least one matcher, one of which does not match the empty
    /// value, `ends_at > starts_at`, and a non-empty author.
    pub fn new(
        id: impl Into<String>,
        matchers: Vec<Matcher>,
        starts_at: Timestamp,
        ends_at: Timestamp,
        created_by: impl Into<String>,
        comment: impl Into<String>,
        created_at: Timestamp,
    ) -> Result<Silence, SilenceError> {
        let s = Silence {
            id: id.into(),
            matchers,
            starts_at,
            ends_at,
            created_by: created_by.into(),
            comment: comment.into(),
            created_at,
        };
        s.validate()?;
        Ok(s)
    }

    /// The constructor's checks, for silences read back from storage or an API body.
    pub fn validate(&self) -> Result<(), SilenceError> {
        if self.matchers.is_empty() {
            return Err(SilenceError::NoMatchers);
        }
        if self.matchers.iter().all(Matcher::matches_empty) {
            return Err(SilenceError::MatchesEverything);
        }
        if self.ends_at <= self.starts_at {
            return Err(SilenceError::BadWindow);
        }
        if self.created_by.trim().is_empty() {
            return Err(SilenceError::NoAuthor);
        }
        Ok(())
    }

    /// Where `now` falls relative to its window.
    pub fn state(&self, now: Timestamp) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// Whether it is in force at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.state(now) == SilenceState::Active
    }

    /// Whether every matcher holds for the subject (regardless of time).
    pub fn matches(&self, subject: &Subject) -> bool {
        self.matchers.iter().all(|m| m.matches(subject))
    }

    /// Whether it mutes the subject at `now`.
    pub fn silences(&self, subject: &Subject, now: Timestamp) -> bool {
        self.is_active(now) && self.matches(subject)
    }
}

/// Fields every event has a value of: `domain` and `kind` always, `source` always (source
/// names are never empty). Any other field is absent from some event (a summary has no
/// cluster or severity), so a matcher that fails on the empty value cannot hold for every
/// event.
const ALWAYS_PRESENT: [&str; 3] = ["domain", "kind", "source"];

/// Values a field without a closed set of values is tried with: short and long, letters,
/// digits, punctuation and non-ASCII, in the shapes real source names, cluster ids and
/// namespaces take.
const SAMPLES: [&str; 10] = [
    "a",
    "Z",
    "0",
    "prod",
    "cn-hangzhou-prod",
    "acct_2",
    "c1234567890abcdef",
    "kube-system",
    "a.b:c/d@e",
    "生产",
];

/// Whether `matchers` (all must hold) would silence every event, so that creating such a
/// silence needs an explicit `force`.
///
/// Decided matcher by matcher: all must hold, so the set matches every event exactly when each
/// matcher does. A matcher is taken to hold for every event when it holds for every value its
/// field can take: every value of a field with a closed set (`domain`, `kind`, `severity`,
/// `status`, `resolution`), or each of ten sample values (`SAMPLES`) for an open one
/// (`source`, `cluster`, `detail.X`, …); plus the empty value unless the field is one every
/// event carries (`domain`, `kind`, `source`). No matchers at all match everything.
///
/// The samples make this conservative: a matcher that only looks universal (a regex accepting
/// every sample, like `source=~"[^ ]+"`) is treated as universal and needs `force` too, while a
/// matcher that truly accepts every value always accepts every sample, so nothing universal
/// slips through. Multi-valued fields are tried with one value at a time, which errs the same
/// way. A checked [`Silence`] already has a matcher that fails on the empty value, so in
/// practice only matchers on `domain`, `kind` and `source` can make it universal
/// (`domain=~".+"`, `kind!=""`, `source=~".+"`).
pub fn matches_every_event(matchers: &[Matcher]) -> bool {
    matchers.iter().all(holds_for_every_value)
}

fn holds_for_every_value(m: &Matcher) -> bool {
    let field = m.field();
    let name = field.name();
    let mut values: Vec<&str> = match field.def().and_then(|d| d.values) {
        Some(closed) => closed.to_vec(),
        None => SAMPLES.to_vec(),
    };
    if !ALWAYS_PRESENT.contains(&name.as_str()) {
        values.push("");
    }
    values.into_iter().all(|v| {
        // Every sample is a valid value of its field, so `with` cannot fail; a failure
        // counts as "does not hold", the side that asks for no `force`.
        Subject::empty()
            .with(&name, v)
            .is_ok_and(|subject| m.matches(&subject))
    })
}

/// `jiff::Timestamp` as an RFC 3339 string.
mod rfc3339 {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(t)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn m(s: &str) -> Matcher {
        s.parse().unwrap()
    }

    fn silence(matchers: Vec<Matcher>) -> Result<Silence, SilenceError> {
        Silence::new(
            "s1",
            matchers,
            ts("2026-05-01T10:00:00Z"),
            ts("2026-05-01T12:00:00Z"),
            "alice",
            "kube upgrade",
            ts("2026-05-01T09:00:00Z"),
        )
    }

    #[test]
    fn constructor_checks() {
        assert_eq!(silence(vec![]), Err(SilenceError::NoMatchers));
        assert_eq!(
            silence(vec![m(r#"cluster=~".*""#), m(r#"pod!="x""#)]),
            Err(SilenceError::MatchesEverything)
        );
        let mut ok = silence(vec![m(r#"namespace="kube-system""#)]).unwrap();
        ok.ends_at = ok.starts_at;
        assert_eq!(ok.validate(), Err(SilenceError::BadWindow));
        let bad_author = Silence::new(
            "s",
            vec![m("cluster=c1")],
            ts("2026-05-01T10:00:00Z"),
            ts("2026-05-01T12:00:00Z"),
            " ",
            "",
            ts("2026-05-01T09:00:00Z"),
        );
        assert_eq!(bad_author, Err(SilenceError::NoAuthor));
    }

    #[test]
    fn matcher_sets_that_match_every_event_are_recognised() {
        let set = |text: &[&str]| -> Vec<Matcher> { text.iter().map(|t| m(t)).collect() };
        for everything in [
            &[][..],
            &[r#"domain=~".+""#],
            &[r#"domain=~"alerts|vulnerabilities|baseline|firewall""#],
            &[r#"kind!="""#],
            &[r#"source=~".+""#],
            &[r#"source!="""#],
            &[r#"source=~"[^ ]+""#],
            &[r#"cluster=~".*""#, r#"domain!="""#],
            &[r#"detail.User=~".*""#, r#"source=~".+""#],
        ] {
            assert!(matches_every_event(&set(everything)), "{everything:?}");
        }
        for some in [
            &[r#"domain="alerts""#][..],
            &[r#"domain!="alerts""#],
            &[r#"kind=~"new|resolved|recurring|summary""#],
            &["severity>=info"],
            &[r#"cluster=~".+""#],
            &[r#"source="prod""#],
            &[r#"source=~"[a-z]+""#],
            &[r#"domain=~".+""#, r#"namespace="kube-system""#],
        ] {
            assert!(!matches_every_event(&set(some)), "{some:?}");
        }
    }

    #[test]
    fn window_and_match() {
        let s = silence(vec![m(r#"namespace="kube-system""#), m("severity<high")]).unwrap();
        assert_eq!(s.state(ts("2026-05-01T09:59:59Z")), SilenceState::Pending);
        assert!(s.is_active(ts("2026-05-01T10:00:00Z")));
        assert!(s.is_active(ts("2026-05-01T11:59:59Z")));
        assert_eq!(s.state(ts("2026-05-01T12:00:00Z")), SilenceState::Expired);
        let low = Subject::empty()
            .with("namespace", "kube-system")
            .and_then(|x| x.with("severity", "low"))
            .unwrap();
        let high = low.clone().with("severity", "high").unwrap();
        assert!(s.matches(&low));
        assert!(!s.matches(&high));
        assert!(s.silences(&low, ts("2026-05-01T11:00:00Z")));
        assert!(!s.silences(&low, ts("2026-05-01T13:00:00Z")));
    }

    #[test]
    fn serde_uses_canonical_matcher_strings() {
        let s = silence(vec![m("namespace = kube-system"), m("severity<high")]).unwrap();
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json["matchers"],
            serde_json::json!([r#"namespace="kube-system""#, "severity<high"])
        );
        assert_eq!(json["starts_at"], "2026-05-01T10:00:00Z");
        let back: Silence = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, s);
        let mut bad = json;
        bad["matchers"] = serde_json::json!(["clutser=x"]);
        let e = serde_json::from_value::<Silence>(bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `clutser`"), "{e}");
    }
}
