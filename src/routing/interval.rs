//! Time intervals with Alertmanager semantics: `[[time_interval]]` config, its checks, and
//! whether a named interval contains an instant.
//!
//! An interval matches when every field it sets matches, evaluated in the local (wall-clock)
//! time of its `location` (default UTC; time zones come from the tz database bundled into the
//! binary, so they work in containers without `/usr/share/zoneinfo`). Wall-clock evaluation
//! means a window keeps its local meaning across DST changes: `01:00`–`03:00` on the night the
//! clocks spring forward lasts one real hour, on the night they fall back three. A named time
//! interval matches when any of its intervals does; one with no fields set always matches.
//!
//! ```toml
//! [[time_interval]]
//! name = "nights"
//! [[time_interval.intervals]]
//! times = [{ start_time = "22:00", end_time = "24:00" }, { start_time = "00:00", end_time = "06:00" }]
//! weekdays = ["monday:friday"]
//! location = "Europe/Berlin"
//! ```
//!
//! Fields: `times` (`start_time`/`end_time` as `HH:MM`, end exclusive, `24:00` allowed as an
//! end, start before end), `weekdays` (`monday`, ranges `monday:friday`), `days_of_month`
//! (1..31, negative counts from the month's end: -1 is the last day; ranges `"1:5"`,
//! `"-3:-1"`), `months` (names or numbers, ranges `"january:march"`), `years` (ranges
//! `"2026:2027"`), `location` (IANA name).

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_spanned::Spanned;

use super::issue::Issue;

/// A `[[time_interval]]` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalConfig {
    /// Name that routes refer to in `mute_time_intervals` / `active_time_intervals`.
    pub name: Spanned<String>,
    /// The intervals; the named interval is active when any of them is
    /// (`time_intervals` is accepted too, as in Alertmanager).
    #[serde(alias = "time_intervals")]
    pub intervals: Vec<IntervalConfig>,
}

/// One interval as written: every field it sets must match.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntervalConfig {
    /// Times of day; any may match.
    pub times: Option<Vec<TimeRangeConfig>>,
    /// Days of the week or ranges (`monday:friday`).
    pub weekdays: Option<Vec<Spanned<String>>>,
    /// Days of the month (1..31, or -31..-1 from the end) or ranges (`"1:5"`, `"-3:-1"`).
    pub days_of_month: Option<Vec<Spanned<RangeValue>>>,
    /// Months by name or number, or ranges (`"january:march"`, `"1:3"`).
    pub months: Option<Vec<Spanned<RangeValue>>>,
    /// Years or ranges (`"2026:2027"`).
    pub years: Option<Vec<Spanned<RangeValue>>>,
    /// IANA time zone the other fields are read in (default `UTC`).
    pub location: Option<Spanned<String>>,
}

/// A time-of-day range as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRangeConfig {
    /// Inclusive start, `HH:MM`.
    pub start_time: Spanned<String>,
    /// Exclusive end, `HH:MM` (`24:00` for midnight at the end of the day).
    pub end_time: Spanned<String>,
}

/// A range element written as a number (`15`) or a string (`"15"`, `"1:5"`, `"march"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeValue {
    /// A number.
    Int(i64),
    /// A string.
    Text(String),
}

impl fmt::Display for RangeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RangeValue::Int(n) => write!(f, "{n}"),
            RangeValue::Text(s) => f.write_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for RangeValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RangeValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string such as \"1:5\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RangeValue, E> {
                Ok(RangeValue::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RangeValue, E> {
                i64::try_from(v)
                    .map(RangeValue::Int)
                    .map_err(|_| E::custom("number out of range"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RangeValue, E> {
                Ok(RangeValue::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// One checked interval.
#[derive(Clone, Debug)]
struct Interval {
    /// Minutes of the day, `[start, end)`.
    times: Vec<(u16, u16)>,
    /// Monday = 1 … Sunday = 7, inclusive.
    weekdays: Vec<(i8, i8)>,
    /// Inclusive; negative counts from the month's end.
    days_of_month: Vec<(i8, i8)>,
    /// 1..12, inclusive.
    months: Vec<(i8, i8)>,
    /// Inclusive.
    years: Vec<(i16, i16)>,
    tz: TimeZone,
}

impl Interval {
    fn contains(&self, now: Timestamp) -> bool {
        let dt = self.tz.to_datetime(now);
        let in_any = |ranges: &[(i8, i8)], v: i8| ranges.iter().any(|&(b, e)| b <= v && v <= e);
        if !self.times.is_empty() {
            let minute = dt.hour() as u16 * 60 + dt.minute() as u16;
            if !self.times.iter().any(|&(s, e)| s <= minute && minute < e) {
                return false;
            }
        }
        if !self.weekdays.is_empty() && !in_any(&self.weekdays, dt.weekday().to_monday_one_offset())
        {
            return false;
        }
        if !self.days_of_month.is_empty() {
            // Alertmanager's rule: resolve negative days against this month's length, skip a
            // range that starts after the month ends, clamp the rest to the month.
            let len = dt.days_in_month();
            let day = dt.day();
            let resolve = |d: i8| if d < 0 { len + d + 1 } else { d };
            let hit = self.days_of_month.iter().any(|&(b, e)| {
                let (b, e) = (resolve(b), resolve(e));
                if b > len {
                    return false;
                }
                let (b, e) = (b.clamp(-len, len), e.clamp(-len, len));
                b <= day && day <= e
            });
            if !hit {
                return false;
            }
        }
        if !self.months.is_empty() && !in_any(&self.months, dt.month()) {
            return false;
        }
        if !self.years.is_empty() {
            let y = dt.year();
            if !self.years.iter().any(|&(b, e)| b <= y && y <= e) {
                return false;
            }
        }
        true
    }
}

/// A checked named time interval.
#[derive(Clone, Debug)]
pub struct TimeInterval {
    name: String,
    intervals: Vec<Interval>,
}

impl TimeInterval {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether any of its intervals contains `now`.
    pub fn contains(&self, now: Timestamp) -> bool {
        self.intervals.iter().any(|i| i.contains(now))
    }
}

/// Every checked named time interval.
#[derive(Clone, Debug, Default)]
pub struct TimeIntervals {
    by_name: BTreeMap<String, TimeInterval>,
}

impl TimeIntervals {
    /// Checks `[[time_interval]]` tables. Every problem is reported (keys like
    /// `time_interval[0].intervals[1].weekdays[0]`); an interval with errors is still
    /// registered under its name, so references to it are not reported again.
    pub fn compile(config: &[TimeIntervalConfig]) -> (TimeIntervals, Vec<Issue>) {
        let mut issues = Vec::new();
        let mut by_name = BTreeMap::new();
        for (i, ti) in config.iter().enumerate() {
            let key = format!("time_interval[{i}]");
            let name = ti.name.get_ref().trim().to_string();
            if name.is_empty() {
                issues.push(Issue::at(
                    &ti.name,
                    format!("{key}.name"),
                    "must not be empty".into(),
                ));
            } else if by_name.contains_key(&name) {
                issues.push(Issue::at(
                    &ti.name,
                    format!("{key}.name"),
                    format!("duplicate time interval name `{name}`"),
                ));
                continue;
            }
            if ti.intervals.is_empty() {
                issues.push(Issue::warning(
                    Some(ti.name.span()),
                    format!("{key}.intervals"),
                    format!("time interval `{name}` has no intervals, so it is never active"),
                ));
            }
            let intervals = ti
                .intervals
                .iter()
                .enumerate()
                .map(|(j, c)| compile_interval(c, &format!("{key}.intervals[{j}]"), &mut issues))
                .collect();
            by_name.insert(name.clone(), TimeInterval { name, intervals });
        }
        (TimeIntervals { by_name }, issues)
    }

    /// The interval of that name.
    pub fn get(&self, name: &str) -> Option<&TimeInterval> {
        self.by_name.get(name)
    }

    /// Whether the named interval exists and contains `now`.
    pub fn is_active(&self, name: &str, now: Timestamp) -> bool {
        self.get(name).is_some_and(|t| t.contains(now))
    }

    /// Every name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

fn compile_interval(c: &IntervalConfig, key: &str, issues: &mut Vec<Issue>) -> Interval {
    let mut out = Interval {
        times: Vec::new(),
        weekdays: Vec::new(),
        days_of_month: Vec::new(),
        months: Vec::new(),
        years: Vec::new(),
        tz: TimeZone::UTC,
    };
    for (k, t) in c.times.iter().flatten().enumerate() {
        let k = format!("{key}.times[{k}]");
        let start = parse_hhmm(t.start_time.get_ref());
        let end = parse_hhmm(t.end_time.get_ref());
        match (start, end) {
            (Some(1440), _) => issues.push(Issue::at(
                &t.start_time,
                format!("{k}.start_time"),
                "start_time cannot be 24:00; use 00:00".into(),
            )),
            (Some(s), Some(e)) if s >= e => issues.push(Issue::at(
                &t.end_time,
                format!("{k}.end_time"),
                format!(
                    "end_time {} must be after start_time {}; to cross midnight use two ranges, e.g. 22:00–24:00 and 00:00–06:00",
                    t.end_time.get_ref(),
                    t.start_time.get_ref()
                ),
            )),
            (Some(s), Some(e)) => out.times.push((s, e)),
            (s, e) => {
                for (v, name, ok) in [
                    (&t.start_time, "start_time", s.is_some()),
                    (&t.end_time, "end_time", e.is_some()),
                ] {
                    if !ok {
                        issues.push(Issue::at(
                            v,
                            format!("{k}.{name}"),
                            format!(
                                "invalid time `{}`: expected HH:MM between 00:00 and 24:00",
                                v.get_ref()
                            ),
                        ));
                    }
                }
            }
        }
    }
    for (k, w) in c.weekdays.iter().flatten().enumerate() {
        let text = RangeValue::Text(w.get_ref().clone());
        match parse_range(&text, weekday) {
            Ok((b, e)) if b <= e => out.weekdays.push((b, e)),
            Ok(_) => issues.push(Issue::at(
                w,
                format!("{key}.weekdays[{k}]"),
                format!(
                    "`{}`: the start day must not be after the end day",
                    w.get_ref()
                ),
            )),
            Err(m) => issues.push(Issue::at(w, format!("{key}.weekdays[{k}]"), m)),
        }
    }
    for (k, d) in c.days_of_month.iter().flatten().enumerate() {
        let k = format!("{key}.days_of_month[{k}]");
        match parse_range(d.get_ref(), day_of_month).and_then(|r| check_days(r, d.get_ref())) {
            Ok(r) => out.days_of_month.push(r),
            Err(m) => issues.push(Issue::at(d, k, m)),
        }
    }
    for (k, m) in c.months.iter().flatten().enumerate() {
        match parse_range(m.get_ref(), month) {
            Ok((b, e)) if b <= e => out.months.push((b, e)),
            Ok(_) => issues.push(Issue::at(
                m,
                format!("{key}.months[{k}]"),
                format!(
                    "`{}`: the start month must not be after the end month",
                    m.get_ref()
                ),
            )),
            Err(msg) => issues.push(Issue::at(m, format!("{key}.months[{k}]"), msg)),
        }
    }
    for (k, y) in c.years.iter().flatten().enumerate() {
        match parse_range(y.get_ref(), year) {
            Ok((b, e)) if b <= e => out.years.push((b, e)),
            Ok(_) => issues.push(Issue::at(
                y,
                format!("{key}.years[{k}]"),
                format!(
                    "`{}`: the start year must not be after the end year",
                    y.get_ref()
                ),
            )),
            Err(msg) => issues.push(Issue::at(y, format!("{key}.years[{k}]"), msg)),
        }
    }
    if let Some(loc) = &c.location {
        match time_zone(loc.get_ref()) {
            Ok(tz) => out.tz = tz,
            Err(m) => issues.push(Issue::at(loc, format!("{key}.location"), m)),
        }
    }
    out
}

/// An IANA time zone from the bundled database.
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    if name.eq_ignore_ascii_case("local") {
        return Err(
            "`Local` is not supported (containers usually run in UTC): name an IANA time zone such as Europe/Berlin, or UTC"
                .into(),
        );
    }
    TimeZone::get(name).map_err(|_| {
        format!("unknown time zone `{name}`: use an IANA name such as Europe/Berlin, America/New_York or UTC")
    })
}

/// `HH:MM` → minutes since midnight; `24:00` → 1440.
fn parse_hhmm(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    if !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// Parses `a` or `a:b` with `one` for each side.
fn parse_range<T: Copy>(
    v: &RangeValue,
    one: fn(&str) -> Result<T, String>,
) -> Result<(T, T), String> {
    match v {
        RangeValue::Int(n) => {
            let x = one(&n.to_string())?;
            Ok((x, x))
        }
        RangeValue::Text(s) => match s.split_once(':') {
            Some((a, b)) => Ok((one(a.trim())?, one(b.trim())?)),
            None => {
                let x = one(s.trim())?;
                Ok((x, x))
            }
        },
    }
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn weekday(s: &str) -> Result<i8, String> {
    let lower = s.to_ascii_lowercase();
    WEEKDAYS
        .iter()
        .position(|w| *w == lower)
        .map(|i| i as i8 + 1)
        .ok_or_else(|| {
            format!(
                "unknown weekday `{s}`; expected a day such as monday, or a range such as monday:friday"
            )
        })
}

fn month(s: &str) -> Result<i8, String> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = MONTHS.iter().position(|m| *m == lower) {
        return Ok(i as i8 + 1);
    }
    match s.parse::<i8>() {
        Ok(n @ 1..=12) => Ok(n),
        _ => Err(format!(
            "unknown month `{s}`; expected january … december or 1 … 12, or a range such as \"january:march\""
        )),
    }
}

fn year(s: &str) -> Result<i16, String> {
    match s.parse::<i16>() {
        Ok(n @ 1..=9999) => Ok(n),
        _ => Err(format!(
            "invalid year `{s}`; expected a year such as 2026, or a range such as \"2026:2027\""
        )),
    }
}

fn day_of_month(s: &str) -> Result<i8, String> {
    match s.parse::<i8>() {
        Ok(n @ (-31..=-1 | 1..=31)) => Ok(n),
        _ => Err(format!(
            "invalid day of month `{s}`; expected 1 … 31, or -31 … -1 counting from the month's end"
        )),
    }
}

/// Alertmanager's checks of a day range: a negative start needs a negative end, and the start
/// must not be after the end in a 28-day month.
fn check_days((b, e): (i8, i8), written: &RangeValue) -> Result<(i8, i8), String> {
    if b < 0 && e > 0 {
        return Err(format!(
            "`{written}`: the end day must be negative when the start day is"
        ));
    }
    let norm = |d: i8| if d < 0 { 28 + d + 1 } else { d };
    if norm(b) > norm(e) {
        return Err(format!(
            "`{written}`: the end day {e} is before the start day {b}"
        ));
    }
    Ok((b, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hhmm() {
        assert_eq!(parse_hhmm("00:00"), Some(0));
        assert_eq!(parse_hhmm("9:05"), Some(545));
        assert_eq!(parse_hhmm("23:59"), Some(1439));
        assert_eq!(parse_hhmm("24:00"), Some(1440));
        for bad in [
            "24:01", "25:00", "12:60", "12", "12:5", "ab:cd", "-1:00", "",
        ] {
            assert_eq!(parse_hhmm(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges() {
        let t = |s: &str| RangeValue::Text(s.into());
        assert_eq!(parse_range(&t("monday:friday"), weekday), Ok((1, 5)));
        assert_eq!(parse_range(&t("Sunday"), weekday), Ok((7, 7)));
        assert!(parse_range(&t("mon"), weekday).is_err());
        assert_eq!(parse_range(&t("january:3"), month), Ok((1, 3)));
        assert_eq!(parse_range(&RangeValue::Int(12), month), Ok((12, 12)));
        assert_eq!(parse_range(&t("2025:2027"), year), Ok((2025, 2027)));
        let days = |v: RangeValue| parse_range(&v, day_of_month).and_then(|r| check_days(r, &v));
        assert_eq!(days(t("-3:-1")), Ok((-3, -1)));
        assert_eq!(days(t("1:-1")), Ok((1, -1)));
        assert!(days(t("-1:5")).is_err());
        assert!(days(t("5:1")).is_err());
        assert!(days(RangeValue::Int(0)).is_err());
        assert!(days(RangeValue::Int(32)).is_err());
    }
}
