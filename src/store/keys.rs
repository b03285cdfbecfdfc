//! Key and small-value encodings (pure).
//!
//! Strings inside composite keys are length-prefixed (`u32` big-endian length, then the UTF-8
//! bytes), never separated by a delimiter: a source called `a` and one called `a\0x` produce
//! prefixes neither of which is a prefix of the other's keys, whatever bytes the names hold.
//! The last component of a key is not prefixed; it is the rest of the key.
//! Integers are big-endian so that byte order is numeric order.

use crate::finding::Domain;

/// Appends a length-prefixed string.
fn push_str(key: &mut Vec<u8>, s: &str) {
    key.extend_from_slice(&(s.len() as u32).to_be_bytes());
    key.extend_from_slice(s.as_bytes());
}

/// Splits a length-prefixed string off the front of `key`.
fn take_str(key: &[u8]) -> Option<(&str, &[u8])> {
    let len = u32::from_be_bytes(key.get(..4)?.try_into().ok()?) as usize;
    let s = std::str::from_utf8(key.get(4..4 + len)?).ok()?;
    Some((s, &key[4 + len..]))
}

/// `key` as messages name it: its first `parts` length-prefixed strings, then the rest,
/// joined by `/` (a record key with `parts` 2 reads `prod/alerts/<fingerprint>`). Text is
/// lossy UTF-8 with control characters escaped; a rest that is not printable UTF-8, and a
/// key that does not split into `parts` strings, are shown in hex (`0x…`).
pub(crate) fn show(key: &[u8], parts: usize) -> String {
    let mut shown = Vec::with_capacity(parts + 1);
    let mut rest = key;
    for _ in 0..parts {
        let Some(len) = rest
            .first_chunk::<4>()
            .map(|n| u32::from_be_bytes(*n) as usize)
        else {
            return hex(key);
        };
        let Some(part) = rest[4..].get(..len) else {
            return hex(key);
        };
        shown.push(text(part));
        rest = &rest[4 + len..];
    }
    shown.push(match std::str::from_utf8(rest) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => hex(rest),
    });
    shown.join("/")
}

fn text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for c in String::from_utf8_lossy(bytes).chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + 2 * bytes.len());
    out.push_str("0x");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// `len s ‖ s`: a length-prefixed string, the front of a composite key.
pub(crate) fn prefixed(s: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + s.len() + 8);
    push_str(&mut key, s);
    key
}

/// The first key after every key that starts with `prefix` (`None`: no such key, the prefix
/// is all `0xff`).
pub(crate) fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

/// Splits the length-prefixed string [`prefixed`] wrote off the front of `key`.
pub(crate) fn take_prefixed(key: &[u8]) -> Option<(&str, &[u8])> {
    take_str(key)
}

/// `len source ‖ source ‖ len domain ‖ domain`: the key of a cursor, and the prefix of every
/// lifecycle record of that source and domain.
pub(crate) fn scope(source: &str, domain: Domain) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + source.len() + 16 + 64);
    push_str(&mut key, source);
    push_str(&mut key, domain.as_str());
    key
}

/// `scope(source, domain) ‖ fingerprint`.
pub(crate) fn record(source: &str, domain: Domain, fingerprint: &str) -> Vec<u8> {
    let mut key = scope(source, domain);
    key.extend_from_slice(fingerprint.as_bytes());
    key
}

/// `len sink ‖ sink ‖ payload id`: the enqueue guard of a payload in a sink's outbox.
pub(crate) fn guard(sink: &str, payload_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + sink.len() + payload_id.len());
    push_str(&mut key, sink);
    key.extend_from_slice(payload_id.as_bytes());
    key
}

/// The sink and payload id of a guard key.
pub(crate) fn split_guard(key: &[u8]) -> Option<(&str, &str)> {
    let (sink, rest) = take_str(key)?;
    Some((sink, std::str::from_utf8(rest).ok()?))
}

/// An outbox or dead-letter key.
pub(crate) fn seq(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The sequence number of an outbox or dead-letter key.
pub(crate) fn parse_seq(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// A guard's value: `seq ‖ enqueued_at_ms`, both big-endian. The enqueue time lets `prune`
/// expire guards without a secondary index.
pub(crate) fn guard_value(seq: u64, enqueued_at_ms: i64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&seq.to_be_bytes());
    v[8..].copy_from_slice(&enqueued_at_ms.to_be_bytes());
    v
}

/// `(seq, enqueued_at_ms)` of a guard's value.
pub(crate) fn parse_guard_value(v: &[u8]) -> Option<(u64, i64)> {
    let seq = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    let at = i64::from_be_bytes(v.get(8..16)?.try_into().ok()?);
    Some((seq, at))
}

/// Tree holding a sink's pending entries.
pub(crate) fn outbox_tree(sink: &str) -> String {
    format!("{OUTBOX_PREFIX}{sink}")
}

/// Tree holding a sink's dead letters.
pub(crate) fn dead_tree(sink: &str) -> String {
    format!("{DEAD_PREFIX}{sink}")
}

/// Prefix of outbox tree names.
pub(crate) const OUTBOX_PREFIX: &str = "outbox/";
/// Prefix of dead-letter tree names.
pub(crate) const DEAD_PREFIX: &str = "dead/";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_with_shared_prefixes_do_not_nest() {
        let names = ["a", "a\0x", "a\0", "", "ab", "\0"];
        for x in names {
            for y in names {
                for dx in Domain::ALL {
                    for dy in Domain::ALL {
                        if (x, dx) == (y, dy) {
                            continue;
                        }
                        let key = record(y, dy, "fp");
                        assert!(
                            !key.starts_with(&scope(x, dx)),
                            "record of ({y:?}, {dy:?}) lies under scope ({x:?}, {dx:?})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn guard_keys_round_trip_and_do_not_collide() {
        assert_eq!(split_guard(&guard("a\0b", "id")), Some(("a\0b", "id")));
        assert_eq!(split_guard(&guard("", "")), Some(("", "")));
        assert_ne!(guard("a", "\0bid"), guard("a\0b", "id"));
        assert_eq!(split_guard(&[0, 0, 0, 9, b'a']), None);
    }

    #[test]
    fn a_successor_follows_every_key_under_its_prefix() {
        assert_eq!(successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(successor(&[1, 0xff, 0xff]), Some(vec![2]));
        assert_eq!(successor(&[0xff]), None);
        let p = prefixed("s");
        let next = successor(&p).unwrap();
        for tail in [&[][..], &[0xff, 0xff][..], b"zzz"] {
            let mut key = p.clone();
            key.extend_from_slice(tail);
            assert!(key < next);
        }
        assert!(prefixed("t") >= next);
    }

    #[test]
    fn keys_are_shown_as_text_where_they_are_text_and_hex_where_not() {
        assert_eq!(
            show(&record("prod", Domain::Alerts, "fp"), 2),
            "prod/alerts/fp"
        );
        assert_eq!(show(&guard("a\nb", "运维"), 1), "a\\nb/运维");
        let mut binary = prefixed("en");
        binary.extend_from_slice(&7i64.to_be_bytes());
        assert_eq!(show(&binary, 1), "en/0x0000000000000007");
        assert_eq!(show(&[0, 0, 0, 9, b'a'], 1), "0x0000000961", "cut short");
        assert_eq!(show(&[0xff, b'a'], 0), "0xff61");
        assert_eq!(show(&[0, 0, 0, 1, 0xff], 1), "\u{fffd}/");
    }

    #[test]
    fn seq_keys_sort_numerically() {
        assert!(seq(255) < seq(256));
        assert!(seq(1) < seq(u64::MAX));
        assert_eq!(parse_seq(&seq(42)), Some(42));
        assert_eq!(parse_seq(b"short"), None);
    }

    #[test]
    fn guard_values_round_trip() {
        assert_eq!(
            parse_guard_value(&guard_value(7, -3)),
            Some((7, -3)),
            "negative times survive"
        );
        assert_eq!(parse_guard_value(&[1, 2, 3]), None);
    }
}
