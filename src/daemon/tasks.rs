//! The task runner: drives a [`Task`] step by step until it is done, fails for good, or its
//! token is cancelled (the contract, and why it lives in `crate::task`, is there).
//!
//! The runner owns what every hand-written loop used to repeat:
//! - cancellation: checked before every step and raced against every wait, never against a
//!   step, so a step that writes is never abandoned half-way (a delivery worker's attempts in
//!   flight land in its [`Task::stop`], which the runner awaits after a cancellation; a
//!   poll finishes or, past the shutdown grace, is dropped with the runtime before its cursor
//!   moves, which is safe by the store's write order);
//! - backoff: after a retryable failure the next step waits by the task's curve
//!   ([`Task::backoff`], equal jitter) for the number of consecutive failures; a success
//!   resets the count;
//! - panics: a step that panics is a failed step, logged at ERROR with the panic's message and
//!   retried after the backoff like any other, so a bug met on one record (a poll) or one
//!   entry (a delivery) never makes a task vanish silently while the others run on (the task
//!   keeps the state the step left; health's `blind` condition still sees a poll that keeps
//!   failing);
//! - logging, with the task's [`Label`] as keys (`task`, and `source`, `domain`, `sink` where
//!   they apply): a failure at WARN (ERROR when urgent or after [`ERROR_AFTER`] in a row), the
//!   first success after failures at INFO, a permanent failure at ERROR, the stop at DEBUG.
//!
//! The daemon's tasks: `poll` (one per source and domain, `pipeline::poller`), `connect` (one
//! per source until it connects, `daemon::sources`), `deliver` (one per sink,
//! `pipeline::delivery`), `group` (`pipeline::grouper`), `prune` (`daemon::prune`) and
//! `watchdog` (`daemon::notify`).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::task::Poll;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Level;

use crate::task::{Label, Next, Task, TaskError, panic_message};

/// One log event at `$level` (chosen at run time) with the label's keys; absent keys are
/// left out. tracing fixes an event's level where it is written, hence one arm per level.
macro_rules! event {
    ($level:expr, $label:expr, $($rest:tt)+) => {{
        let label: &Label = $label;
        let (task, source, domain, sink) =
            (label.task, label.source.as_deref(), label.domain, label.sink.as_deref());
        match $level {
            Level::ERROR => tracing::error!(task, source, domain, sink, $($rest)+),
            Level::WARN => tracing::warn!(task, source, domain, sink, $($rest)+),
            Level::INFO => tracing::info!(task, source, domain, sink, $($rest)+),
            _ => tracing::debug!(task, source, domain, sink, $($rest)+),
        }
    }};
}

/// Consecutive failures after which a retryable one is logged at ERROR instead of WARN: a
/// blip is a warning, an outage needs an operator.
pub const ERROR_AFTER: u32 = 5;

/// Why [`run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The task said [`Next::Done`].
    Done,
    /// The token was cancelled.
    Cancelled,
    /// A step failed permanently.
    Failed,
}

/// Spawns [`run`] of `task` on `tracker`, stopped by `shutdown`.
pub fn spawn<T: Task + 'static>(
    tracker: &TaskTracker,
    task: T,
    shutdown: &CancellationToken,
) -> JoinHandle<Ended> {
    tracker.spawn(run(task, shutdown.clone()))
}

/// Steps `task` until it is done, fails permanently, or `shutdown` is cancelled.
pub async fn run<T: Task>(mut task: T, shutdown: CancellationToken) -> Ended {
    let label = task.label();
    let curve = task.backoff();
    let mut failures: u32 = 0;
    let ended = loop {
        if shutdown.is_cancelled() {
            break Ended::Cancelled;
        }
        let step = match catching(task.step()).await {
            Ok(step) => step,
            Err(panic) => {
                Err(TaskError::retryable("The task's step panicked.", panic).urgent(true))
            }
        };
        let next = match step {
            Ok(next) => {
                if failures > 0 {
                    recovered(&label, failures);
                }
                failures = 0;
                next
            }
            Err(e) if e.is_retryable() => {
                failures = failures.saturating_add(1);
                let wait = curve.delay_now(failures);
                failed(&label, &e, failures, wait);
                Next::After(wait)
            }
            Err(e) => {
                gave_up(&label, &e);
                break Ended::Failed;
            }
        };
        match wait(next, &shutdown).await {
            Some(ended) => break ended,
            None => continue,
        }
    };
    if ended == Ended::Cancelled {
        task.stop().await;
    }
    event!(Level::DEBUG, &label, ?ended, "Task stopped.");
    ended
}

/// Runs `fut`, a panic inside it caught and returned as its message.
async fn catching<F: Future>(fut: F) -> Result<F::Output, String> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic_message(panic.as_ref()))),
        }
    })
    .await
}

/// Waits as `next` asks; `Some` when the task ends instead.
async fn wait(next: Next, shutdown: &CancellationToken) -> Option<Ended> {
    // `biased`: a cancelled token wins over a wake or a timer that is ready at the same moment.
    match next {
        Next::Done => return Some(Ended::Done),
        Next::Now => tokio::task::yield_now().await,
        Next::After(d) => tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Some(Ended::Cancelled),
            _ = tokio::time::sleep(d) => {}
        },
        Next::WakeOr(wake, d) => tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Some(Ended::Cancelled),
            _ = wake.notified() => {}
            _ = tokio::time::sleep(d) => {}
        },
    }
    None
}

fn failed(label: &Label, e: &TaskError, failures: u32, wait: Duration) {
    let level = if e.is_urgent() || failures >= ERROR_AFTER {
        Level::ERROR
    } else {
        Level::WARN
    };
    let retry_in_s = wait.as_secs();
    event!(
        level,
        label,
        failures,
        retry_in_s,
        error = e.error(),
        "{}",
        e.what()
    );
}

fn recovered(label: &Label, failures: u32) {
    event!(Level::INFO, label, failures, "Task recovered.");
}

fn gave_up(label: &Label, e: &TaskError) {
    event!(
        Level::ERROR,
        label,
        error = e.error(),
        "{} The task stopped.",
        e.what()
    );
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, VecDeque};
    use std::sync::{Arc, Mutex};

    use tokio::sync::{Notify, watch};
    use tokio::time::Instant;
    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    use super::*;
    use crate::backoff::Backoff;

    /// A task that plays a script of answers and records when each step started.
    struct Scripted {
        script: VecDeque<Result<Next, TaskError>>,
        /// After the script: this, forever.
        then: fn() -> Result<Next, TaskError>,
        started: Arc<Mutex<Vec<Instant>>>,
        /// Steps begun so far.
        steps: watch::Sender<usize>,
    }

    impl Scripted {
        fn new(
            script: impl IntoIterator<Item = Result<Next, TaskError>>,
            then: fn() -> Result<Next, TaskError>,
        ) -> Self {
            Scripted {
                script: script.into_iter().collect(),
                then,
                started: Arc::default(),
                steps: watch::Sender::new(0),
            }
        }
    }

    impl Task for Scripted {
        fn label(&self) -> Label {
            Label::new("scripted").source("prod").domain("alerts")
        }

        fn backoff(&self) -> Backoff {
            Backoff::saturating(Duration::from_secs(1), Duration::from_secs(60))
        }

        async fn step(&mut self) -> Result<Next, TaskError> {
            self.started.lock().unwrap().push(Instant::now());
            self.steps.send_modify(|n| *n += 1);
            self.script.pop_front().unwrap_or_else(self.then)
        }
    }

    fn fail() -> Result<Next, TaskError> {
        Err(TaskError::retryable("Step failed.", "boom"))
    }

    fn gaps(started: &Mutex<Vec<Instant>>) -> Vec<Duration> {
        let s = started.lock().unwrap();
        s.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// `gap` lies within the jittered wait before retry `attempt` of a 1 s curve.
    fn within(gap: Duration, attempt: u32) -> bool {
        let step = Duration::from_secs(1 << (attempt - 1));
        gap >= step / 2 && gap <= step
    }

    #[tokio::test(start_paused = true)]
    async fn steps_again_when_and_as_asked() {
        let wake = Arc::new(Notify::new());
        let task = Scripted::new(
            [
                Ok(Next::Now),
                Ok(Next::After(Duration::from_secs(30))),
                Ok(Next::WakeOr(wake.clone(), Duration::from_secs(3600))),
                Ok(Next::WakeOr(wake.clone(), Duration::from_secs(7))),
            ],
            || Ok(Next::Done),
        );
        let started = task.started.clone();
        let mut steps = task.steps.subscribe();
        let runner = tokio::spawn(run(task, CancellationToken::new()));
        // Third step: wait for it, then wake the task long before its hour is up.
        steps.wait_for(|&n| n >= 3).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        wake.notify_one();
        assert_eq!(runner.await.unwrap(), Ended::Done);
        assert_eq!(
            gaps(&started),
            [
                Duration::ZERO,
                Duration::from_secs(30),
                Duration::from_secs(5),
                Duration::from_secs(7)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_grows_on_consecutive_failures_and_resets_on_success() {
        let task = Scripted::new(
            [
                fail(),
                fail(),
                fail(),
                fail(),
                Ok(Next::Now),
                fail(),
                Ok(Next::Done),
            ],
            || Ok(Next::Done),
        );
        let started = task.started.clone();
        assert_eq!(run(task, CancellationToken::new()).await, Ended::Done);
        let gaps = gaps(&started);
        assert_eq!(gaps.len(), 6, "{gaps:?}");
        for (i, attempt) in [1, 2, 3, 4].into_iter().enumerate() {
            assert!(within(gaps[i], attempt), "failure {attempt}: {gaps:?}");
        }
        assert_eq!(gaps[4], Duration::ZERO, "a success asks for the next step");
        assert!(within(gaps[5], 1), "the count restarted: {gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_ends_the_task() {
        let task = Scripted::new([Err(TaskError::permanent("Broken.", "no"))], fail);
        let started = task.started.clone();
        assert_eq!(run(task, CancellationToken::new()).await, Ended::Failed);
        assert_eq!(started.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_stops_a_wait_at_once() {
        let waits: [fn() -> Result<Next, TaskError>; 3] = [
            || Ok(Next::After(Duration::from_secs(3600))),
            || {
                Ok(Next::WakeOr(
                    Arc::new(Notify::new()),
                    Duration::from_secs(3600),
                ))
            },
            fail,
        ];
        for next in waits {
            let task = Scripted::new([], next);
            let started = task.started.clone();
            let mut steps = task.steps.subscribe();
            let token = CancellationToken::new();
            let begun = Instant::now();
            let runner = tokio::spawn(run(task, token.clone()));
            steps.wait_for(|&n| n >= 1).await.unwrap();
            token.cancel();
            assert_eq!(runner.await.unwrap(), Ended::Cancelled);
            assert_eq!(begun.elapsed(), Duration::ZERO);
            assert_eq!(started.lock().unwrap().len(), 1);
        }
        // Cancelled before the first step: no step at all.
        let task = Scripted::new([], || Ok(Next::Now));
        let started = task.started.clone();
        let token = CancellationToken::new();
        token.cancel();
        assert_eq!(run(task, token).await, Ended::Cancelled);
        assert!(started.lock().unwrap().is_empty());
    }

    /// A step that writes: cancelled while it waits on its "disk", it still finishes.
    struct Writer {
        disk: Arc<Notify>,
        entered: Arc<Notify>,
        written: Arc<Mutex<u32>>,
    }

    impl Task for Writer {
        fn label(&self) -> Label {
            Label::new("writer").sink("hook")
        }

        async fn step(&mut self) -> Result<Next, TaskError> {
            self.entered.notify_one();
            self.disk.notified().await;
            *self.written.lock().unwrap() += 1;
            Ok(Next::Now)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_in_progress_is_finished_not_abandoned() {
        let task = Writer {
            disk: Arc::default(),
            entered: Arc::default(),
            written: Arc::default(),
        };
        let (disk, entered, written) = (
            task.disk.clone(),
            task.entered.clone(),
            task.written.clone(),
        );
        let token = CancellationToken::new();
        let runner = tokio::spawn(run(task, token.clone()));
        entered.notified().await;
        token.cancel();
        tokio::task::yield_now().await;
        assert!(!runner.is_finished(), "the step is still writing");
        disk.notify_one();
        assert_eq!(runner.await.unwrap(), Ended::Cancelled);
        assert_eq!(
            *written.lock().unwrap(),
            1,
            "finished, and no step after it"
        );
    }

    /// Panics in its first step (after an await, as a step in the middle of its work would),
    /// then counts its steps until the third.
    struct Panicky {
        steps: u32,
    }

    impl Task for Panicky {
        fn label(&self) -> Label {
            Label::new("panicky")
        }

        async fn step(&mut self) -> Result<Next, TaskError> {
            self.steps += 1;
            tokio::task::yield_now().await;
            match self.steps {
                1 => panic!("bad record {}", 7),
                2 => Ok(Next::Now),
                _ => Ok(Next::Done),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_step_is_a_failed_step_logged_at_error_and_the_task_goes_on() {
        let events = Events::default();
        let other = tracing::Dispatch::new(tracing_subscriber::registry());
        drop(tracing::dispatcher::set_default(&other));
        let _guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(events.clone()));
        let runner = tokio::spawn(run(Panicky { steps: 0 }, CancellationToken::new()));
        assert_eq!(
            runner.await.unwrap(),
            Ended::Done,
            "the task outlived its panic"
        );
        let logged = events.0.lock().unwrap().clone();
        let (level, fields) = &logged[0];
        assert_eq!(*level, Level::ERROR, "{logged:#?}");
        assert_eq!(fields["message"], "The task's step panicked.");
        assert_eq!(fields["error"], "bad record 7");
        assert_eq!(fields["task"], "panicky");
        assert_eq!(logged[1].1["message"], "Task recovered.");
        drop(other);
    }

    /// One logged event: its level and its fields as text.
    type Logged = (Level, BTreeMap<String, String>);

    /// Collects every event logged on this (current-thread) runtime.
    #[derive(Clone, Default)]
    struct Events(Arc<Mutex<Vec<Logged>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Events {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            struct Fields(BTreeMap<String, String>);
            impl Visit for Fields {
                fn record_str(&mut self, field: &Field, value: &str) {
                    self.0.insert(field.name().into(), value.into());
                }
                fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                    self.0.insert(field.name().into(), format!("{value:?}"));
                }
            }
            let mut fields = Fields(BTreeMap::new());
            event.record(&mut fields);
            let level = *event.metadata().level();
            self.0.lock().unwrap().push((level, fields.0));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failures_recoveries_and_the_stop_are_logged_with_the_tasks_keys() {
        let events = Events::default();
        // While only one subscriber was ever registered, tracing computes a new callsite's
        // interest from the subscriber of whichever thread reaches it first; tests on other
        // threads have none, so a callsite they reach first would be cached as "never" for
        // this one. With a second subscriber registered (and kept alive), tracing asks all.
        let other = tracing::Dispatch::new(tracing_subscriber::registry());
        drop(tracing::dispatcher::set_default(&other));
        let _guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(events.clone()));
        let mut script: Vec<_> = (0..ERROR_AFTER).map(|_| fail()).collect();
        script.push(Ok(Next::Now));
        let urgent = TaskError::retryable("Store write failed.", "disk full").urgent(true);
        script.push(Err(urgent));
        script.push(Ok(Next::Done));
        run(Scripted::new(script, fail), CancellationToken::new()).await;

        let logged = events.0.lock().unwrap().clone();
        let levels: Vec<Level> = logged.iter().map(|(level, _)| *level).collect();
        let (w, e, i) = (Level::WARN, Level::ERROR, Level::INFO);
        assert_eq!(
            levels,
            [w, w, w, w, e, i, e, i, Level::DEBUG],
            "{logged:#?}"
        );
        for (_, f) in &logged {
            assert_eq!(f["task"], "scripted");
            assert_eq!(f["source"], "prod");
            assert_eq!(f["domain"], "alerts");
            assert!(!f.contains_key("sink"), "absent keys are left out");
        }
        let field = |i: usize, key: &str| logged[i].1[key].as_str();
        assert_eq!(field(0, "message"), "Step failed.");
        assert_eq!(field(0, "error"), "boom");
        assert_eq!(field(4, "failures"), ERROR_AFTER.to_string());
        assert_eq!(field(5, "message"), "Task recovered.");
        assert_eq!(field(6, "message"), "Store write failed.");
        assert_eq!(field(6, "failures"), "1", "urgent from the first");
        assert_eq!(field(8, "message"), "Task stopped.");
        assert_eq!(field(8, "ended"), "Done");
        drop(other);
    }
}
