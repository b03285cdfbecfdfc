//! Durations as the config writes them: `"500ms"`, `"30s"`, `"15m"`, `"1h30m"`, `"1d"`. One
//! notation for every duration a user types or reads (config keys, `--window`, silences, `route
//! test` and log lines), parsed by [`parse_duration`] and printed back by [`format_duration`].
//! A leaf: imported by many, imports nothing of ours. Pure.

use std::time::Duration;

use serde::Deserialize;

/// A duration written as `"500ms"`, `"30s"`, `"15m"`, `"1h"` or `"1d"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// The longest duration [`parse_duration`] accepts: 100 years (36,500 days). Every duration
/// ends up added to a Unix time in milliseconds (`i64`) somewhere; beyond this one could wrap
/// (a retention of 300 million years cast to `i64` went negative and pruned everything at
/// once), and no setting means anything there.
pub const MAX_DURATION: Duration = Duration::from_secs(36_500 * 86_400);

/// Parses durations written as whole numbers with units — `ms`, `s`, `m`, `h`, `d` — alone or
/// combined from largest to smallest: `"500ms"`, `"30s"`, `"15m"`, `"1h30m"`, `"1d"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {text:?}: expected e.g. \"500ms\", \"30s\", \"15m\", \"1h30m\", \"1d\""
        )
    };
    let units: [(&str, u64); 5] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut rest = text.trim();
    let mut total_ms: u64 = 0;
    let mut last_unit = 0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let pos = units.iter().position(|(u, _)| *u == unit).ok_or_else(bad)?;
        // Units must go from largest to smallest, each at most once ("1h30m", not "30m1h").
        if pos < last_unit || (pos == last_unit && total_ms > 0) {
            return Err(bad());
        }
        last_unit = pos;
        total_ms = n
            .checked_mul(units[pos].1)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    let d = Duration::from_millis(total_ms);
    if d > MAX_DURATION {
        return Err(format!(
            "invalid duration {text:?}: at most 36500d (100 years)"
        ));
    }
    Ok(d)
}

/// A duration in the config's notation (`1h30m`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    if ms > 0 {
        out.push_str(&format!("{ms}ms"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
        for bad in [
            "",
            "30",
            "s",
            "1.5h",
            "-1s",
            "10 years",
            "30m1h",
            "1h1h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_hundred_years_is_the_longest() {
        assert_eq!(parse_duration("36500d"), Ok(MAX_DURATION));
        for long in ["36500d1ms", "36501d", "150000000000d"] {
            let e = parse_duration(long).unwrap_err();
            assert!(e.contains("at most 36500d"), "{long}: {e}");
        }
    }

    #[test]
    fn formats_in_the_config_notation() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(90_000)), "1d1h");
    }

    proptest! {
        /// Whatever a duration is, printing it gives text that parses back to it: a value the
        /// daemon shows can be pasted into the config.
        #[test]
        fn printing_then_parsing_is_the_identity(ms in 0u64..(400 * 86_400_000)) {
            let d = Duration::from_millis(ms);
            let text = format_duration(d);
            prop_assert_eq!(parse_duration(&text), Ok(d), "{}", text);
        }

        /// Parsing never panics, and what it accepts is whole units, largest first.
        #[test]
        fn parsing_any_text_never_panics(text in "\\PC{0,24}") {
            if let Ok(d) = parse_duration(&text) {
                prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
            }
        }

        /// Units combine by addition, in order.
        #[test]
        fn combined_units_add_up(h in 0u64..10_000, m in 0u64..60, s in 0u64..60) {
            let text = format!("{h}h{m}m{s}s");
            prop_assert_eq!(
                parse_duration(&text),
                Ok(Duration::from_secs(h * 3600 + m * 60 + s))
            );
        }
    }
}
