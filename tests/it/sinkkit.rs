//! What the chat-sink tests share: building a sink from TOML with an injected environment,
//! delivering through its rate limiter, findings and events to send, hostile payloads, and a
//! fake Slack ([`FakeSlack`]) the real binary can post to too.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use serde_json::Value;
use tokio::net::TcpListener;

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

/// One request a [`FakeSlack`] answered.
#[derive(Clone, Debug)]
pub struct SlackRequest {
    /// The path posted to (`/services/…` or `/api/chat.postMessage`).
    pub path: String,
    /// When it arrived.
    pub at: Instant,
    /// What the fake answered.
    pub status: u16,
    /// `Authorization`, when sent.
    pub auth: Option<String>,
    /// The JSON body.
    pub body: Value,
}

/// A scripted answer: status, `Retry-After` seconds, body.
pub type SlackReply = (u16, Option<u64>, &'static str);

/// A Slack on 127.0.0.1: an incoming webhook (`/services/T1/B1/hooksecret`) and
/// `chat.postMessage`, answering from a script (then 200), recording every request.
#[derive(Clone)]
pub struct FakeSlack {
    /// Scripted answers `(status, retry_after, body)`, then `200 ok`.
    script: Arc<Mutex<std::collections::VecDeque<SlackReply>>>,
    log: Arc<Mutex<Vec<SlackRequest>>>,
    bump: Arc<watch::Sender<usize>>,
    /// Where it listens.
    pub addr: SocketAddr,
}

async fn slack_receive(
    State(fake): State<FakeSlack>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let api = uri.path().starts_with("/api/");
    let (status, retry_after, text) = lock(&fake.script).pop_front().unwrap_or((
        200,
        None,
        if api {
            r#"{"ok":true,"ts":"1.1"}"#
        } else {
            "ok"
        },
    ));
    let n = {
        let mut log = lock(&fake.log);
        log.push(SlackRequest {
            path: uri.path().to_string(),
            at: Instant::now(),
            status,
            auth: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        log.len()
    };
    fake.bump.send_replace(n);
    let mut r = (axum::http::StatusCode::from_u16(status).unwrap(), text).into_response();
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    r
}

impl FakeSlack {
    /// Listens on a fresh port, answering `script` first.
    pub async fn start(script: Vec<SlackReply>) -> FakeSlack {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeSlack {
            script: Arc::new(Mutex::new(script.into())),
            log: Arc::new(Mutex::new(Vec::new())),
            bump: Arc::new(watch::channel(0).0),
            addr: listener.local_addr().unwrap(),
        };
        let app = Router::new()
            .route("/services/T1/B1/hooksecret", post(slack_receive))
            .route("/api/chat.postMessage", post(slack_receive))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    /// The incoming webhook's URL.
    pub fn hook(&self) -> String {
        format!("http://{}/services/T1/B1/hooksecret", self.addr)
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<SlackRequest> {
        lock(&self.log).clone()
    }

    /// Waits until `done(&log)` holds (60 s at most).
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[SlackRequest]) -> bool) {
        wait_until(
            self.bump.subscribe(),
            || self.log(),
            what,
            Duration::from_secs(60),
            done,
        )
        .await;
    }
}
