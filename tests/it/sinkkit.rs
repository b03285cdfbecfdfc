//! What the chat-sink tests share: building a sink from TOML with an injected environment,
//! delivering through its rate limiter, findings and events to send, hostile payloads.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sasrelay::event::{Event, EventKind, Payload};
use sasrelay::finding::{Detail, Domain, Finding, Severity};
use sasrelay::render::sample_event;
use sasrelay::sinks::{Outcome, Sink, SinkConfig};
use tokio::sync::watch;

/// A lock that survives a panicked holder.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A sink built from its TOML table, `{ env = … }` secrets read from `env`.
pub fn sink(text: &str, env: &[(&str, &str)]) -> Sink {
    let c: SinkConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Sink::build_with(&c, |k| env.get(k).cloned()).unwrap_or_else(|e| panic!("{e}"))
}

/// One attempt, waiting for the sink's rate limiter first (as the worker does).
pub async fn deliver(s: &Sink, p: &Payload) -> Outcome {
    loop {
        match s.deliver(p, 1).await {
            Outcome::Throttled { after } => tokio::time::sleep(after).await,
            other => return other,
        }
    }
}

/// A finding with `title`, distinct by `n`.
pub fn finding(n: usize, title: &str, severity: Severity) -> Finding {
    let mut f = sample_event(Domain::Alerts).finding.unwrap();
    f.fingerprint = format!("{n:064}");
    f.id = format!("alert:{n}");
    f.title = title.into();
    f.severity = severity;
    f
}

/// A new event about `f`, observed now.
pub fn event_of(f: Finding) -> Event {
    Event::about(
        EventKind::New,
        f,
        0,
        "",
        None,
        time::OffsetDateTime::now_utc(),
    )
}

/// The text of an outcome, for assertion messages.
pub fn reason(o: &Outcome) -> String {
    match o {
        Outcome::Delivered { detail } => detail.clone(),
        Outcome::Retry { reason, .. } => reason.clone(),
        Outcome::Permanent { reason, response } => format!("{reason} {response:?}"),
        Outcome::Throttled { after } => format!("throttled {after:?}"),
    }
}

/// An alert with `s` in every text field a renderer prints.
pub fn hostile(n: usize, s: &str) -> Payload {
    let mut f = finding(n, s, Severity::High);
    f.description = s.into();
    f.alert_type = s.into();
    f.kubernetes.cluster_name = Some(s.into());
    f.kubernetes.namespace = Some(s.into());
    f.kubernetes.pod = Some(s.into());
    f.kubernetes.container_name = Some(s.into());
    f.kubernetes.image = Some(s.into());
    f.host.instance_name = Some(s.into());
    f.cves = vec![s.into()];
    for d in &mut f.details {
        d.value = s.into();
    }
    f.details.push(Detail {
        name: s.into(),
        value: s.into(),
    });
    event_of(f).into()
}

/// Waits until `done(&log())` holds, looking again whenever a fake bumps `rx` (once per
/// request); `limit` only turns a hang into a failure.
pub async fn wait_until<T>(
    mut rx: watch::Receiver<usize>,
    log: impl Fn() -> Vec<T>,
    what: &str,
    limit: Duration,
    done: impl Fn(&[T]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if done(&log()) {
            return;
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            panic!("timed out waiting for {what}; {} requests", log().len());
        }
    }
}
