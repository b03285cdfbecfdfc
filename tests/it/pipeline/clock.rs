//! Due times across a wall-clock step: an entry scheduled before the clock stepped back is
//! delivered now, not after the step on top of its delay.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sasrelay::daemon::tasks;
use sasrelay::event::OutboxEntry;
use sasrelay::finding::Severity;
use sasrelay::pipeline::delivery::{MAX_WAIT, Worker};
use sasrelay::store::Store;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::sinkkit::{event_of, finding, sink};

/// An entry left due two hours ahead — what a retry scheduled for 30 s becomes when the wall
/// clock then steps back by two hours — is retried at once, not two hours later.
#[tokio::test]
async fn an_entry_due_past_any_retry_delay_is_taken_as_due_after_a_clock_step_back() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let sink = sink(
        &format!(
            "name = \"out\"\ntype = \"file\"\npath = \"{}\"\n",
            out.display()
        ),
        &[],
    );
    let store = Store::open(&dir.path().join("state")).unwrap();
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let event = event_of(finding(1, "stepped", Severity::High));
    let id = event.id.clone();
    let mut entry = OutboxEntry::new(event.into(), now_ms);
    let seq = store.enqueue("out", &entry).unwrap().seq();
    entry.attempts = 1;
    entry.next_attempt_at_ms = now_ms + 2 * MAX_WAIT.as_millis() as i64;
    assert!(store.reschedule("out", seq, &entry).unwrap());

    let token = CancellationToken::new();
    let worker = Worker::new(
        Arc::new(sink),
        store.clone(),
        Default::default(),
        Arc::new(Notify::new()),
    );
    let task = tokio::spawn(tasks::run(worker, token.clone()));
    let deadline = Instant::now() + Duration::from_secs(30);
    // The file sink has no notification; its output is checked on a short interval, a wait on
    // a condition bounded by the deadline.
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while store.depth("out") > 0 {
        assert!(
            Instant::now() < deadline,
            "the entry still waits for a clock that stepped back"
        );
        tick.tick().await;
    }
    token.cancel();
    task.await.unwrap();
    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written.lines().count(), 1, "{written}");
    assert!(written.contains(&id), "{written}");
}
