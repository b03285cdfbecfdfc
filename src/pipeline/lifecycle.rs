//! Lifecycle tracking: what a poll's observations mean, given what was known before.
//!
//! Pure: no store, no clock, no IO. The poller loads the known [`Record`]s, calls [`diff`], and
//! writes the resulting records and events in the store's crash-safe order. Keeping the decision
//! here makes every transition table-testable:
//!
//! | known before | observed | outcome |
//! |---|---|---|
//! | nothing | active | `new` (or counted silently on a baseline first start) |
//! | nothing | resolved | recorded silently (never reported open, so nothing to close) |
//! | active | active, later occurrence | `recurring` (alerts: a later `LastTimeStamp`; firewall: a larger `TryCount`) |
//! | active | resolved | `resolved`, with the resolution |
//! | active | absent from a complete snapshot | `resolved` as `gone`, or as the reason the caller looked up ([`explain_gone`]) |
//! | resolved | active | `new` of the next generation (re-opened) |
//!
//! Event ids derive from (fingerprint, kind, generation, occurrence), so the same observation
//! always yields the same event id: a re-poll after a crash cannot enqueue twice. The
//! resolution is not part of the id, so a `gone` explained differently on a re-poll is still
//! the same event.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use crate::event::{Event, EventKind, EventSwitches};
use crate::finding::{Domain, Finding, Resolution, Status};
use crate::record::{RECORD_SCHEMA, Record, RecordStatus, Remembered};

/// How complete a poll's observations are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// Everything open was listed (vulnerabilities, baseline): known active findings that are
    /// absent are gone.
    Snapshot,
    /// Only a time window was listed (alerts, firewall): absence means nothing.
    Window,
    /// A snapshot domain's sweep that is not complete (records could not be read): what was
    /// listed is recorded as in a snapshot, but absence means nothing — the finding that
    /// looks gone may be the unreadable record.
    Partial,
}

/// One change to persist: the new record, and the event to enqueue (if any).
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The finding's fingerprint.
    pub fingerprint: String,
    /// The record to store.
    pub record: Record,
    /// The event to enqueue before storing the record.
    pub event: Option<Event>,
}

/// The outcome of one poll.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diff {
    /// Changes in a stable order (observed first, in listing order; then gone ones).
    pub changes: Vec<Change>,
    /// Findings recorded silently because this is a baseline first start.
    pub silently_tracked: u64,
}

impl Diff {
    /// The changes that close a finding because it left a complete snapshot (resolved as
    /// `gone`, for now: [`explain_gone`] may still give the real reason).
    pub fn gone(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|c| c.record.resolution == Some(Resolution::Gone))
    }
}

/// Gives findings that left a snapshot the reason Security Center knows, before anything of
/// the poll is written: each closed finding in `closed` (looked up by the caller, matched by
/// fingerprint) turns its `gone` change into a resolution with that finding's own resolution —
/// the record remembers it, and the event carries it and the looked-up finding (its status
/// fields and raw record). Returns how many changes it explained.
///
/// Anything else stays `gone`: a finding not in `closed` (deleted, or the lookup failed), one
/// still active there, or one whose resolution is `gone` itself. The event id does not change:
/// it derives from (fingerprint, kind, generation), never from the resolution, so a re-poll
/// after a crash whose lookup answers differently still produces the id the enqueue guard
/// knows — at most one `resolved` event per lifecycle.
pub fn explain_gone(diff: &mut Diff, closed: Vec<Finding>, now: OffsetDateTime) -> usize {
    let mut by_fp: BTreeMap<String, Finding> = closed
        .into_iter()
        .filter(|f| {
            f.status == Status::Resolved && f.resolution.is_some_and(|r| r != Resolution::Gone)
        })
        .map(|f| (f.fingerprint.clone(), f))
        .collect();
    let mut explained = 0;
    for change in &mut diff.changes {
        if change.record.resolution != Some(Resolution::Gone) {
            continue;
        }
        let Some(f) = by_fp.remove(&change.fingerprint) else {
            continue;
        };
        let resolution = f.resolution;
        change.record.resolution = resolution;
        change.record.last = Remembered::of(&f);
        if change.event.is_some() {
            change.event = Some(Event::about(
                EventKind::Resolved,
                f,
                change.record.generation,
                "",
                resolution,
                now,
            ));
        }
        explained += 1;
    }
    explained
}

/// What a sweep's end decided about the findings it missed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Confirmation {
    /// Open findings this sweep missed without Security Center giving a reason.
    pub vanished: usize,
    /// Of those, kept open until more sweeps agree.
    pub pending: usize,
    /// The vanished ones are a mass disappearance ([`GoneRule::hold_share`](crate::record::GoneRule::hold_share)).
    pub mass: bool,
}

/// Applies a [`GoneVerdict`](crate::record::GoneVerdict) to the `gone` changes of a complete snapshot (after [`explain_gone`]):
/// a finding the sweep missed resolves as `gone` only when `needed` complete sweeps in a row
/// missed it; until then its record stays open with the count of misses, and no event is
/// sent. A finding Security Center closed with a reason (a lookup by id) is evidence and
/// resolves at once. (A finding listed again after a miss starts counting afresh: [`diff`]
/// resets the count of whatever is listed, in any sweep.) Only for a complete sweep: an
/// incomplete one counts no miss. Returns how many findings stay open pending.
pub fn confirm_gone(diff: &mut Diff, known: &BTreeMap<String, Record>, needed: u32) -> usize {
    let mut pending = 0;
    for change in &mut diff.changes {
        let prior = known.get(&change.fingerprint);
        let missed = prior.map_or(0, |r| r.absent_sweeps) + 1;
        match prior {
            Some(prior)
                if change.record.resolution == Some(Resolution::Gone) && missed < needed =>
            {
                change.record = Record {
                    absent_sweeps: missed,
                    ..prior.clone()
                };
                change.event = None;
                pending += 1;
            }
            _ => change.record.absent_sweeps = 0,
        }
    }
    pending
}

/// After a takeover (`shared/scale-out.md` §3), a windowed finding this replica has no record
/// of, observed closed, that existed before the takeover (`first_seen` at or before
/// `before_ms`) may have been announced open by an earlier leader: it is adopted as open, so
/// [`diff`] reports its `resolved` (with the id the earlier leader would have used) rather
/// than recording it silently — a closing notice sent twice beats one lost. Whether the old
/// leader had already sent it is the handoff's verdict, not the lifecycle's. An open finding
/// is never adopted: its `new` carries the id an earlier leader used, and the handoff's
/// verdict drops it where that leader settled it. Returns how many it adopted.
pub fn adopt(
    observed: &[Finding],
    known: &mut BTreeMap<String, Record>,
    before_ms: i64,
    now: OffsetDateTime,
) -> usize {
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut adopted = 0;
    for f in observed {
        let existed = f
            .first_seen
            .is_some_and(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64 <= before_ms);
        if !existed || f.status == Status::Active || known.contains_key(&f.fingerprint) {
            continue;
        }
        let record = fresh(f, Coverage::Window, RecordStatus::Active, 1, "", now_ms);
        known.insert(f.fingerprint.clone(), record);
        adopted += 1;
    }
    adopted
}

/// The occurrence marker of a finding: alerts, the latest occurrence (unix ms); firewall
/// records, the try count; other domains have none.
pub fn occurrence(f: &Finding) -> String {
    match f.domain {
        Domain::Alerts => f
            .last_seen
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000).to_string())
            .unwrap_or_default(),
        Domain::Firewall => f
            .raw
            .get("TryCount")
            .map(|v| match v {
                serde_json::Value::String(s) => s.trim().to_string(),
                other => other.to_string(),
            })
            .unwrap_or_default(),
        Domain::Vulnerabilities | Domain::Baseline => String::new(),
    }
}

/// Whether `now` is a later occurrence than `before` (both numeric markers; anything
/// unparsable never counts as later, so a garbled field cannot cause a flood).
fn later(now: &str, before: &str) -> bool {
    match (now.parse::<i64>(), before.parse::<i64>()) {
        (Ok(n), Ok(b)) => n > b,
        (Ok(_), Err(_)) => before.is_empty(),
        _ => false,
    }
}

/// Decides what a poll means.
///
/// - `observed`: what the poll listed (duplicates by fingerprint are collapsed, last wins).
/// - `known`: the stored records of this source and domain, by fingerprint.
/// - `coverage`: whether absence from `observed` means "gone".
/// - `silent_first_start`: a baseline first start — record open findings without events.
pub fn diff(
    observed: Vec<Finding>,
    known: &BTreeMap<String, Record>,
    coverage: Coverage,
    switches: EventSwitches,
    silent_first_start: bool,
    now: OffsetDateTime,
) -> Diff {
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut out = Diff::default();
    let mut last_index: BTreeMap<String, usize> = BTreeMap::new();
    for (i, f) in observed.iter().enumerate() {
        last_index.insert(f.fingerprint.clone(), i);
    }
    let mut seen: BTreeSet<String> = BTreeSet::new();
    // Findings are moved into their events: a finding carries the raw item, and copying it
    // per event would dominate a poll's cost.
    for (i, f) in observed.into_iter().enumerate() {
        if last_index.get(f.fingerprint.as_str()) != Some(&i) {
            continue;
        }
        seen.insert(f.fingerprint.clone());
        let fingerprint = f.fingerprint.clone();
        let occ = occurrence(&f);
        let prior = known.get(&fingerprint);
        let open = f.status == Status::Active;
        let change = match (prior, open) {
            (None, true) => {
                let record = fresh(&f, coverage, RecordStatus::Active, 1, &occ, now_ms);
                if silent_first_start {
                    out.silently_tracked += 1;
                    Some((record, None))
                } else {
                    let event = switches
                        .new
                        .then(|| Event::about(EventKind::New, f, 1, "", None, now));
                    Some((record, event))
                }
            }
            (None, false) => {
                let mut record = fresh(&f, coverage, RecordStatus::Resolved, 1, &occ, now_ms);
                record.resolved_at_ms = Some(now_ms);
                record.resolution = f.resolution;
                Some((record, None))
            }
            (Some(r), true) if r.status == RecordStatus::Resolved => {
                let generation = r.generation + 1;
                let mut record =
                    fresh(&f, coverage, RecordStatus::Active, generation, &occ, now_ms);
                record.first_seen_ms = r.first_seen_ms;
                let event = switches
                    .new
                    .then(|| Event::about(EventKind::New, f, generation, "", None, now));
                Some((record, event))
            }
            (Some(r), true) if later(&occ, &r.occurrence) => {
                let mut record = r.clone();
                record.occurrence = occ.clone();
                record.last_seen_ms = now_ms;
                record.last = remembered(&f, coverage);
                let event = switches
                    .recurring
                    .then(|| Event::about(EventKind::Recurring, f, r.generation, &occ, None, now));
                Some((record, event))
            }
            // Listed again after sweeps that missed it: it is there, the count starts afresh.
            (Some(r), true) => (r.absent_sweeps > 0).then(|| (r.clone(), None)),
            (Some(r), false) if r.status == RecordStatus::Active => {
                let resolution = f.resolution;
                Some(resolve(r, f, coverage, resolution, switches, now, now_ms))
            }
            (Some(_), false) => None,
        };
        if let Some((mut record, event)) = change {
            record.absent_sweeps = 0;
            out.changes.push(Change {
                fingerprint,
                record,
                event,
            });
        }
    }
    if coverage == Coverage::Snapshot {
        for (fp, r) in known {
            if r.status == RecordStatus::Active && !seen.contains(fp) {
                let mut record = r.clone();
                record.status = RecordStatus::Resolved;
                record.resolved_at_ms = Some(now_ms);
                record.resolution = Some(Resolution::Gone);
                record.last_seen_ms = now_ms;
                out.changes.push(Change {
                    fingerprint: fp.clone(),
                    record,
                    // The finding itself is no longer listed; the event carries what is known.
                    event: switches.resolved.then(|| gone_event(fp, r, now)),
                });
            }
        }
    }
    out
}

fn fresh(
    f: &Finding,
    coverage: Coverage,
    status: RecordStatus,
    generation: u64,
    occ: &str,
    now_ms: i64,
) -> Record {
    Record {
        v: RECORD_SCHEMA,
        id: f.id.clone(),
        status,
        generation,
        first_seen_ms: now_ms,
        last_seen_ms: now_ms,
        occurrence: occ.to_string(),
        resolved_at_ms: None,
        resolution: None,
        last: remembered(f, coverage),
        absent_sweeps: 0,
    }
}

fn resolve(
    r: &Record,
    f: Finding,
    coverage: Coverage,
    resolution: Option<Resolution>,
    switches: EventSwitches,
    now: OffsetDateTime,
    now_ms: i64,
) -> (Record, Option<Event>) {
    let mut record = r.clone();
    record.status = RecordStatus::Resolved;
    record.resolved_at_ms = Some(now_ms);
    record.resolution = resolution;
    record.last_seen_ms = now_ms;
    record.last = remembered(&f, coverage);
    let event = switches
        .resolved
        .then(|| Event::about(EventKind::Resolved, f, r.generation, "", resolution, now));
    (record, event)
}

/// A `resolved` event for a finding that left a snapshot: the finding is gone from the API,
/// so the event carries a finding rebuilt from the record.
fn gone_event(fp: &str, r: &Record, now: OffsetDateTime) -> Event {
    Event::about(
        EventKind::Resolved,
        r.last.to_gone_finding(fp, &r.id),
        r.generation,
        "",
        Some(Resolution::Gone),
        now,
    )
}

/// What a record of `f` keeps: everything for a snapshot domain (a finding that leaves
/// the list is reported from it); only the domain and source for a windowed one, whose
/// resolutions always come with the finding (keeps those records, written on every new
/// alert, small).
fn remembered(f: &Finding, coverage: Coverage) -> Remembered {
    match coverage {
        Coverage::Snapshot | Coverage::Partial => Remembered::of(f),
        Coverage::Window => Remembered::unknown(f.domain, &f.source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Host, Kubernetes, Severity};
    use crate::record::GoneRule;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-26 12:00 UTC);

    fn finding(domain: Domain, fp: &str, open: bool) -> Finding {
        let rem = Remembered {
            domain,
            title: format!("finding {fp}"),
            severity: Severity::High,
            native_severity: "serious".into(),
            alert_type: String::new(),
            kubernetes: Kubernetes::default(),
            host: Host::default(),
            source: "prod".into(),
            region: "cn-hangzhou".into(),
        };
        let mut f = rem.to_gone_finding(fp, &format!("id-{fp}"));
        f.status = if open {
            Status::Active
        } else {
            Status::Resolved
        };
        f.resolution = (!open).then_some(Resolution::Handled);
        f
    }

    fn alert(fp: &str, open: bool, last_ms: i64) -> Finding {
        let mut f = finding(Domain::Alerts, fp, open);
        f.last_seen = Some(OffsetDateTime::from_unix_timestamp(last_ms / 1000).unwrap());
        f
    }

    fn known(changes: &[Change]) -> BTreeMap<String, Record> {
        changes
            .iter()
            .map(|c| (c.fingerprint.clone(), c.record.clone()))
            .collect()
    }

    fn kinds(d: &Diff) -> Vec<(String, Option<EventKind>)> {
        d.changes
            .iter()
            .map(|c| (c.fingerprint.clone(), c.event.as_ref().map(|e| e.kind)))
            .collect()
    }

    const ALL: EventSwitches = EventSwitches {
        new: true,
        resolved: true,
        recurring: true,
    };

    #[test]
    fn transitions_follow_the_table() {
        let first = diff(
            vec![alert("a", true, 1_000), alert("b", false, 1_000)],
            &BTreeMap::new(),
            Coverage::Window,
            ALL,
            false,
            NOW,
        );
        assert_eq!(
            kinds(&first),
            vec![("a".into(), Some(EventKind::New)), ("b".into(), None)]
        );
        let k = known(&first.changes);
        assert_eq!(k["b"].status, RecordStatus::Resolved);

        // Same observation again: nothing to do.
        let again = diff(
            vec![alert("a", true, 1_000)],
            &k,
            Coverage::Window,
            ALL,
            false,
            NOW,
        );
        assert!(again.changes.is_empty());

        // A later occurrence recurs; an earlier or garbled one does not.
        let rec = diff(
            vec![alert("a", true, 5_000)],
            &k,
            Coverage::Window,
            ALL,
            false,
            NOW,
        );
        assert_eq!(kinds(&rec), vec![("a".into(), Some(EventKind::Recurring))]);
        let old = diff(
            vec![alert("a", true, 500)],
            &k,
            Coverage::Window,
            ALL,
            false,
            NOW,
        );
        assert!(old.changes.is_empty());

        // Handled: resolved once, then silent.
        let res = diff(
            vec![alert("a", false, 1_000)],
            &k,
            Coverage::Window,
            ALL,
            false,
            NOW,
        );
        assert_eq!(kinds(&res), vec![("a".into(), Some(EventKind::Resolved))]);
        let ev = res.changes[0].event.as_ref().unwrap();
        assert_eq!(ev.resolution, Some(Resolution::Handled));
        let k2 = known(&res.changes);
        assert!(
            diff(
                vec![alert("a", false, 1_000)],
                &k2,
                Coverage::Window,
                ALL,
                false,
                NOW
            )
            .changes
            .is_empty()
        );

        // Re-opened: a new event of the next generation, with a different id.
        let re = diff(
            vec![alert("a", true, 9_000)],
            &k2,
            Coverage::Window,
            ALL,
            false,
            NOW,
        );
        assert_eq!(kinds(&re), vec![("a".into(), Some(EventKind::New))]);
        assert_eq!(re.changes[0].record.generation, 2);
        assert_ne!(
            re.changes[0].event.as_ref().unwrap().id,
            first.changes[0].event.as_ref().unwrap().id
        );
    }

    #[test]
    fn snapshot_absence_resolves_as_gone_but_window_absence_does_not() {
        let vulns = [
            finding(Domain::Vulnerabilities, "v1", true),
            finding(Domain::Vulnerabilities, "v2", true),
        ];
        let k = known(
            &diff(
                vulns.to_vec(),
                &BTreeMap::new(),
                Coverage::Snapshot,
                ALL,
                false,
                NOW,
            )
            .changes,
        );
        let d = diff(vulns[..1].to_vec(), &k, Coverage::Snapshot, ALL, false, NOW);
        assert_eq!(kinds(&d), vec![("v2".into(), Some(EventKind::Resolved))]);
        let ev = d.changes[0].event.as_ref().unwrap();
        assert_eq!(ev.resolution, Some(Resolution::Gone));
        let f = ev.finding.as_ref().unwrap();
        assert_eq!(
            (f.title.as_str(), f.fingerprint.as_str()),
            ("finding v2", "v2")
        );
        assert!(
            diff(vulns[..1].to_vec(), &k, Coverage::Window, ALL, false, NOW)
                .changes
                .is_empty()
        );
    }

    /// One complete sweep of `listed` (indices into `all`) against `k`, confirmed by `rule`;
    /// `k` takes the changes. Returns the fingerprints resolved and the confirmation.
    fn sweep(
        all: &[Finding],
        listed: impl Fn(usize) -> bool,
        k: &mut BTreeMap<String, Record>,
        rule: &GoneRule,
    ) -> (Vec<String>, Confirmation) {
        let observed = (0..all.len())
            .filter(|i| listed(*i))
            .map(|i| all[i].clone())
            .collect();
        let mut d = diff(observed, k, Coverage::Snapshot, ALL, false, NOW);
        let open = k
            .values()
            .filter(|r| r.status == RecordStatus::Active)
            .count();
        let vanished = d.gone().count();
        let verdict = rule.judge(vanished, open);
        let pending = confirm_gone(&mut d, k, verdict.needed);
        let c = Confirmation {
            vanished,
            pending,
            mass: verdict.mass,
        };
        let resolved = d
            .changes
            .iter()
            .filter(|c| {
                c.event
                    .as_ref()
                    .is_some_and(|e| e.kind == EventKind::Resolved)
            })
            .map(|c| c.fingerprint.clone())
            .collect();
        k.extend(known(&d.changes));
        (resolved, c)
    }

    #[test]
    fn a_finding_resolves_as_gone_only_when_sweeps_in_a_row_agree() {
        let all: Vec<Finding> = (0..30)
            .map(|i| finding(Domain::Vulnerabilities, &format!("v{i:02}"), true))
            .collect();
        let rule = GoneRule::default();
        let mut k = BTreeMap::new();
        sweep(&all, |_| true, &mut k, &rule);
        // v00 and v01 vanish: the first sweep only counts the miss, silently.
        let (resolved, c) = sweep(&all, |i| i >= 2, &mut k, &rule);
        assert!(resolved.is_empty());
        assert_eq!((c.vanished, c.pending, c.mass), (2, 2, false));
        assert_eq!(k["v00"].absent_sweeps, 1);
        assert_eq!(k["v00"].status, RecordStatus::Active);
        // v01 is back: counting starts afresh, without an event. v00 is missed again: gone.
        let (resolved, c) = sweep(&all, |i| i != 0, &mut k, &rule);
        assert_eq!(resolved, vec!["v00".to_string()]);
        assert_eq!(c.pending, 0);
        assert_eq!(k["v00"].resolution, Some(Resolution::Gone));
        assert_eq!(k["v00"].absent_sweeps, 0);
        assert_eq!(k["v01"].absent_sweeps, 0);
        assert_eq!(k["v01"].status, RecordStatus::Active);
        // A single-sweep rule resolves at once (the old behaviour).
        let once = GoneRule { sweeps: 1, ..rule };
        let (resolved, _) = sweep(&all, |i| i != 0 && i != 1, &mut k, &once);
        assert_eq!(resolved, vec!["v01".to_string()]);
    }

    #[test]
    fn a_mass_disappearance_is_held_for_more_sweeps() {
        let all: Vec<Finding> = (0..30)
            .map(|i| finding(Domain::Baseline, &format!("b{i:02}"), true))
            .collect();
        let rule = GoneRule::default();
        let mut k = BTreeMap::new();
        sweep(&all, |_| true, &mut k, &rule);
        // 25 of 30 vanish (over half, at least 20): held for four sweeps in a row.
        for n in 1..rule.hold_sweeps {
            let (resolved, c) = sweep(&all, |i| i < 5, &mut k, &rule);
            assert!(resolved.is_empty(), "sweep {n}");
            assert_eq!((c.vanished, c.pending, c.mass), (25, 25, true), "sweep {n}");
        }
        let (resolved, c) = sweep(&all, |i| i < 5, &mut k, &rule);
        assert_eq!(resolved.len(), 25);
        assert_eq!(c.pending, 0);
        // 19 vanishing out of 20 is under the minimum: the normal two sweeps.
        let few: Vec<Finding> = (0..20)
            .map(|i| finding(Domain::Baseline, &format!("f{i:02}"), true))
            .collect();
        let mut k = BTreeMap::new();
        sweep(&few, |_| true, &mut k, &rule);
        let (_, c) = sweep(&few, |i| i == 0, &mut k, &rule);
        assert_eq!((c.vanished, c.mass), (19, false));
        let (resolved, _) = sweep(&few, |i| i == 0, &mut k, &rule);
        assert_eq!(resolved.len(), 19);
    }

    #[test]
    fn explained_gone_findings_carry_the_looked_up_reason_and_keep_their_event_id() {
        let open: Vec<Finding> = ["fx", "ig", "ex", "del", "still", "off"]
            .iter()
            .map(|fp| finding(Domain::Vulnerabilities, fp, true))
            .collect();
        let k = known(
            &diff(
                open.clone(),
                &BTreeMap::new(),
                Coverage::Snapshot,
                ALL,
                false,
                NOW,
            )
            .changes,
        );
        // Everything left the list.
        let gone = diff(Vec::new(), &k, Coverage::Snapshot, ALL, false, NOW);
        assert_eq!(gone.gone().count(), 6);
        let gone_ids: BTreeMap<String, String> = gone
            .changes
            .iter()
            .map(|c| (c.fingerprint.clone(), c.event.as_ref().unwrap().id.clone()))
            .collect();

        let closed = |fp: &str, r: Resolution| {
            let mut f = finding(Domain::Vulnerabilities, fp, false);
            f.resolution = Some(r);
            f.native_status = "7".into();
            f.title = format!("looked-up {fp}");
            f.raw = serde_json::json!({"PrimaryId": 1, "Status": 7}).into();
            f
        };
        let mut d = gone.clone();
        let n = explain_gone(
            &mut d,
            vec![
                closed("fx", Resolution::Fixed),
                closed("ig", Resolution::Ignored),
                closed("ex", Resolution::Expired),
                // Still active there: not an explanation.
                finding(Domain::Vulnerabilities, "still", true),
                // Not gone in this poll: ignored.
                closed("elsewhere", Resolution::Fixed),
            ],
            NOW,
        );
        assert_eq!(n, 3);
        let by_fp: BTreeMap<&str, &Change> = d
            .changes
            .iter()
            .map(|c| (c.fingerprint.as_str(), c))
            .collect();
        assert_eq!(by_fp.len(), 6, "no change added or lost");
        for (fp, want) in [
            ("fx", Resolution::Fixed),
            ("ig", Resolution::Ignored),
            ("ex", Resolution::Expired),
            ("del", Resolution::Gone),
            ("still", Resolution::Gone),
            ("off", Resolution::Gone),
        ] {
            let c = by_fp[fp];
            assert_eq!(c.record.resolution, Some(want), "{fp}");
            assert_eq!(c.record.status, RecordStatus::Resolved, "{fp}");
            let ev = c.event.as_ref().unwrap();
            assert_eq!(ev.kind, EventKind::Resolved);
            assert_eq!(ev.resolution, Some(want), "{fp}");
            assert_eq!(
                ev.id, gone_ids[fp],
                "{fp}: the id does not depend on the reason"
            );
            let f = ev.finding.as_ref().unwrap();
            assert_eq!(f.resolution, Some(want), "{fp}");
            if want == Resolution::Gone {
                assert_eq!(f.raw, serde_json::Value::Null);
                assert_eq!(f.title, format!("finding {fp}"));
            } else {
                // The looked-up finding, status fields and raw record included.
                assert_eq!(f.native_status, "7");
                assert_eq!(f.raw["Status"], 7);
                assert_eq!(c.record.last.title, format!("looked-up {fp}"));
            }
        }
        // Resolved events switched off: the record still learns the reason, no event appears.
        let quiet = EventSwitches {
            resolved: false,
            ..ALL
        };
        let mut d = diff(Vec::new(), &k, Coverage::Snapshot, quiet, false, NOW);
        assert_eq!(
            explain_gone(&mut d, vec![closed("fx", Resolution::Fixed)], NOW),
            1
        );
        assert!(d.changes.iter().all(|c| c.event.is_none()));
        // Nothing looked up (a failed lookup): the diff is untouched.
        let mut d = gone.clone();
        assert_eq!(explain_gone(&mut d, Vec::new(), NOW), 0);
        assert_eq!(d, gone);
    }

    #[test]
    fn baseline_first_start_records_silently() {
        let obs: Vec<Finding> = (0..5)
            .map(|i| finding(Domain::Baseline, &format!("b{i}"), true))
            .collect();
        let d = diff(obs, &BTreeMap::new(), Coverage::Snapshot, ALL, true, NOW);
        assert_eq!(d.silently_tracked, 5);
        assert!(d.changes.iter().all(|c| c.event.is_none()));
        assert!(
            d.changes
                .iter()
                .all(|c| c.record.status == RecordStatus::Active)
        );
    }

    #[test]
    fn switches_turn_event_kinds_off_without_losing_state() {
        let none = EventSwitches {
            new: false,
            resolved: false,
            recurring: false,
        };
        let d = diff(
            vec![alert("a", true, 1_000)],
            &BTreeMap::new(),
            Coverage::Window,
            none,
            false,
            NOW,
        );
        assert_eq!(d.changes.len(), 1);
        assert!(d.changes[0].event.is_none());
        let d = diff(
            vec![alert("a", true, 9_000)],
            &known(&d.changes),
            Coverage::Window,
            EventSwitches::default(),
            false,
            NOW,
        );
        assert_eq!(d.changes.len(), 1, "the occurrence is recorded");
        assert!(d.changes[0].event.is_none(), "recurring is opt-in");
    }

    #[test]
    fn event_ids_are_stable_for_the_same_observation() {
        let a = diff(
            vec![alert("a", true, 1)],
            &BTreeMap::new(),
            Coverage::Window,
            ALL,
            false,
            NOW,
        );
        let later = NOW + time::Duration::minutes(5);
        let b = diff(
            vec![alert("a", true, 1)],
            &BTreeMap::new(),
            Coverage::Window,
            ALL,
            false,
            later,
        );
        assert_eq!(
            a.changes[0].event.as_ref().unwrap().id,
            b.changes[0].event.as_ref().unwrap().id
        );
    }

    #[test]
    fn duplicate_fingerprints_in_one_listing_collapse() {
        let d = diff(
            vec![alert("a", true, 1_000), alert("a", true, 2_000)],
            &BTreeMap::new(),
            Coverage::Window,
            ALL,
            false,
            NOW,
        );
        assert_eq!(d.changes.len(), 1);
        assert_eq!(d.changes[0].record.occurrence, "2000");
    }

    #[test]
    fn windowed_records_stay_small_and_snapshot_records_remember_the_finding() {
        let a = alert("a1", true, 1_000);
        let d = diff(
            vec![a.clone()],
            &BTreeMap::new(),
            Coverage::Window,
            ALL,
            false,
            NOW,
        );
        let record = &d.changes[0].record;
        assert_eq!(record.last, Remembered::unknown(Domain::Alerts, "prod"));
        let json = serde_json::to_string(record).unwrap();
        assert!(json.len() < 300, "{} bytes: {json}", json.len());
        // Old records (every field written) still read.
        let full = serde_json::to_value(Remembered::of(&a)).unwrap();
        let back: Remembered = serde_json::from_value(full).unwrap();
        assert_eq!(back, Remembered::of(&a));
        let v = finding(Domain::Vulnerabilities, "v1", true);
        let d = diff(
            vec![v.clone()],
            &BTreeMap::new(),
            Coverage::Snapshot,
            ALL,
            false,
            NOW,
        );
        assert_eq!(d.changes[0].record.last, Remembered::of(&v));
    }
}
