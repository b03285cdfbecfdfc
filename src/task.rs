//! The contract of the daemon's long-running tasks, in the style of garage's `Worker`: a task
//! does one step of work and says when it wants the next ([`Next`]); whether a failed step is
//! worth retrying is in its error ([`TaskError`]). The runner (`daemon::tasks`) owns the loop:
//! cancellation, backoff on consecutive failures, and the log lines about failing, recovering
//! and stopping.
//!
//! Why the contract sits here and the runner in `daemon`: the pipeline's own types (the poller,
//! the delivery worker, the grouper) implement [`Task`] themselves, because what they want next
//! ("again after the interval", "when woken, or after the next due time") is their knowledge,
//! and `pipeline` must not import `daemon`. Adapters in `daemon` over one-step methods would
//! have needed a copy of [`Next`] in every pipeline type to say the same thing. Running,
//! stopping and logging are the daemon's business, so the runner stays there.
//!
//! Imports only [`crate::backoff`] (a leaf), so anything may implement a task.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::backoff::Backoff;

/// One long-running job, driven step by step by the runner.
///
/// A step is never abandoned by the runner: cancellation is observed between steps and while
/// waiting for the next, so a step that writes finishes its writes. A step that must give up
/// early on shutdown (a long read before any write) races its own token.
pub trait Task: Send {
    /// Who the task is, for every line the runner logs about it.
    fn label(&self) -> Label;

    /// The curve the runner waits by after consecutive failed steps: 1 s doubling to 5 min
    /// unless the task says otherwise.
    fn backoff(&self) -> Backoff {
        Backoff::saturating(Duration::from_secs(1), Duration::from_secs(300))
    }

    /// Does one unit of work and says when to do the next.
    fn step(&mut self) -> impl Future<Output = Result<Next, TaskError>> + Send;

    /// Called once when the runner stops the task (cancelled, not failed): finish what is in
    /// flight and start nothing new. A task with several operations in flight (the delivery
    /// worker) lands them here, so a stop abandons none; the daemon bounds the wait with its
    /// shutdown grace. Nothing by default.
    fn stop(&mut self) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
}

/// When a task wants its next step.
#[derive(Debug)]
pub enum Next {
    /// At once (the runner yields first, so producers and shutdown get a turn).
    Now,
    /// After this long.
    After(Duration),
    /// When `Notify` is signalled, or after this long, whichever comes first. A signal sent
    /// during the step is not lost (`Notify` keeps one permit).
    WakeOr(Arc<Notify>, Duration),
    /// Never: the task is finished.
    Done,
}

/// Who a task is, as the runner logs it: `task` names the kind of job, and the crate's stable
/// keys say what it works on (absent keys are left out of the line).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Label {
    /// The kind of job: `poll`, `connect`, `deliver`, `group`, `prune`, `watchdog`.
    pub task: &'static str,
    /// The source it reads, when it reads one.
    pub source: Option<String>,
    /// The domain it reads, when it reads one.
    pub domain: Option<&'static str>,
    /// The sink it delivers to, when it delivers.
    pub sink: Option<String>,
}

impl Label {
    /// A task of kind `task`, about nothing in particular yet.
    pub fn new(task: &'static str) -> Label {
        Label {
            task,
            ..Label::default()
        }
    }

    /// The task reads `source`.
    pub fn source(mut self, source: impl Into<String>) -> Label {
        self.source = Some(source.into());
        self
    }

    /// The task reads `domain`.
    pub fn domain(mut self, domain: &'static str) -> Label {
        self.domain = Some(domain);
        self
    }

    /// The task delivers to `sink`.
    pub fn sink(mut self, sink: impl Into<String>) -> Label {
        self.sink = Some(sink.into());
        self
    }
}

/// The message a panic carried (`panic!` with a literal or a formatted one), or "no message".
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_string()
    }
}

/// Why a step failed, and whether another step may mend it.
#[derive(Debug)]
pub struct TaskError {
    what: &'static str,
    error: String,
    retryable: bool,
    urgent: bool,
}

impl TaskError {
    /// A failure worth another step after the backoff. `what` is the sentence the runner
    /// logs ("Poll failed; nothing was recorded, retrying."); `error` says why.
    pub fn retryable(what: &'static str, error: impl fmt::Display) -> TaskError {
        TaskError {
            what,
            error: error.to_string(),
            retryable: true,
            urgent: false,
        }
    }

    /// A failure no retry can mend: the runner logs it at ERROR and ends the task.
    pub fn permanent(what: &'static str, error: impl fmt::Display) -> TaskError {
        TaskError {
            what,
            error: error.to_string(),
            retryable: false,
            urgent: true,
        }
    }

    /// Logged at ERROR from the first failure (data is at risk, or an operator must act)
    /// rather than only once failures have lasted a while.
    pub fn urgent(mut self, urgent: bool) -> TaskError {
        self.urgent |= urgent;
        self
    }

    /// The log sentence.
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// Why the step failed.
    pub fn error(&self) -> &str {
        &self.error
    }

    /// Whether another step may mend it.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// Whether it is logged at ERROR from the first failure.
    pub fn is_urgent(&self) -> bool {
        self.urgent
    }
}
