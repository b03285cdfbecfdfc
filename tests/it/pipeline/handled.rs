//! A `resolved` event names who handled the finding through sasrelay, even when the poll that
//! sees the resolution comes while the action's task is still followed (before its audit
//! entry is written). In process against a real store, through the daemon's dispatcher.

use sasrelay::event::{Event, EventKind};
use sasrelay::finding::{Resolution, Status};
use sasrelay::store::{AUDIT_SCHEMA, AuditEntry};
use time::{Duration, OffsetDateTime};

use super::reminders::{bench, new_alert, waiting};

#[test]
fn a_resolution_seen_while_the_action_is_under_way_names_who_took_it() {
    let b = bench();
    let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let (_, event) = new_alert(&b, t0);
    let mut finding = event.finding.unwrap();
    finding.status = Status::Resolved;
    finding.resolution = Some(Resolution::Ignored);
    let resolved = |occurrence: &str, at: OffsetDateTime| {
        let mut out = Default::default();
        b.dispatcher
            .dispatch(
                Event::about(
                    EventKind::Resolved,
                    finding.clone(),
                    1,
                    occurrence,
                    Some(Resolution::Ignored),
                    at,
                ),
                Some(1),
                at,
                &mut out,
            )
            .unwrap();
    };

    // Nobody acted through sasrelay: the resolution names nobody.
    resolved("console", t0 + Duration::minutes(1));
    // alice's ignore from a chat link: Security Center applied it, the task is still followed
    // when the poll sees the alert ignored.
    let under_way = b.store.begin_handling(AuditEntry {
        v: AUDIT_SCHEMA,
        at_ms: sasrelay::clock::unix_ms(t0 + Duration::minutes(2)),
        who: "alice".into(),
        via: "chat".into(),
        source: "prod".into(),
        domain: "alerts".into(),
        finding: finding.id.clone(),
        action: "ignore".into(),
        detail: "ignore".into(),
        result: "under_way".into(),
        error_code: None,
        message: String::new(),
        request_id: String::new(),
        task_id: None,
    });
    resolved("alice", t0 + Duration::minutes(2));
    drop(under_way);

    let sent = waiting(&b, "chat", EventKind::Resolved);
    let names: Vec<Option<(String, String, String)>> = sent
        .iter()
        .map(|e| {
            e.handled_by
                .as_ref()
                .map(|h| (h.who.clone(), h.via.clone(), h.action.clone()))
        })
        .collect();
    assert_eq!(
        names,
        [None, Some(("alice".into(), "chat".into(), "ignore".into()))]
    );
}
