//! The store against real directories, and its kill -9 loop.

use sasrelay::event::{EVENT_SCHEMA, Event, EventKind, OutboxEntry, Payload, Summary};
use sasrelay::finding::Domain;
use time::OffsetDateTime;

mod crash;
mod disk;

/// An entry whose payload id is `id`, about `pad` bytes long in JSON.
pub fn entry(id: &str, now_ms: i64, pad: usize) -> OutboxEntry {
    OutboxEntry::new(
        Payload::from(Event {
            schema: EVENT_SCHEMA,
            id: id.to_string(),
            kind: EventKind::Summary,
            source: "prod".to_string(),
            domain: Domain::Alerts,
            observed_at: OffsetDateTime::UNIX_EPOCH,
            resolution: None,
            finding: None,
            summary: Some(Summary {
                tracked: 1,
                message: "x".repeat(pad),
            }),
            possible_repeat: false,
            handled_by: None,
        }),
        now_ms,
    )
}
