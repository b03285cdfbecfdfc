//! Sinks end to end: the Standard Webhooks and GitHub signing vectors, the `sasrelay.event.v1`
//! document, a webhook against a real receiver on 127.0.0.1 that verifies signatures on its own
//! and answers with scripted statuses, config checks, filters, and the stdout and file sinks.

use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http_body::Frame;
use sasrelay::event::{Event, EventKind, Payload};
use sasrelay::finding::*;
use sasrelay::sinks::payload::{PAYLOAD_SCHEMA, text_line, to_json, to_json_within};
use sasrelay::sinks::webhook::{decode_signing_key, github_signature, standard_signature};
use sasrelay::sinks::{Backend, Outcome, Sink, SinkConfig, StdoutSink};
use serde_json::{Value, json};
use sha2::Sha256;
use time::OffsetDateTime;
use time::macros::datetime;

// ------------------------------------------------------------------------------------ fixtures

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sinks")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn finding(domain: Domain, severity: Severity, title: &str) -> Finding {
    Finding {
        domain,
        id: "alert:123".into(),
        fingerprint: "f".repeat(64),
        severity,
        native_severity: "serious".into(),
        status: Status::Active,
        resolution: None,
        native_status: "1".into(),
        title: title.into(),
        description: "A process opened a reverse shell.".into(),
        alert_type: "Reverse shell".into(),
        kubernetes: Kubernetes {
            cluster_id: Some("c1234567890abcdef".into()),
            cluster_name: Some("prod-ack".into()),
            namespace: Some("default".into()),
            pod: Some("web-0".into()),
            container_id: Some("containerd://abc".into()),
            container_name: Some("web".into()),
            image: Some("registry.example/web:1".into()),
            node: Some("cn-hangzhou.10.0.0.1".into()),
            app: Some("web".into()),
        },
        host: Host {
            instance_id: Some("i-bp1".into()),
            instance_name: Some("node-1".into()),
            public_ip: None,
            private_ip: Some("10.0.0.1".into()),
            uuid: Some("uuid-1".into()),
            region: Some("cn-hangzhou".into()),
        },
        first_seen: Some(datetime!(2024-05-01 16:00:00 +08:00)),
        last_seen: None,
        details: vec![Detail {
            name: "Command line".into(),
            value: "bash -i".into(),
        }],
        links: vec![Link {
            kind: LinkKind::Cve,
            label: "CVE-2024-1086".into(),
            url: "https://avd.aliyun.com/search?q=CVE-2024-1086".into(),
        }],
        cves: vec!["CVE-2024-1086".into()],
        tactics: vec![Tactic {
            id: "TA0002".into(),
            name: "Execution".into(),
        }],
        source: "prod".into(),
        region: "cn-hangzhou".into(),
        raw: json!({"Id": 123, "Level": "serious", "Nested": {"x": [1, 2]}}).into(),
    }
}

const OBSERVED: OffsetDateTime = datetime!(2024-05-01 08:00:05 UTC);

fn event(kind: EventKind, f: Finding) -> Event {
    let resolution = (kind == EventKind::Resolved).then_some(Resolution::Fixed);
    Event::about(kind, f, 1, "", resolution, OBSERVED)
}

fn alert(severity: Severity) -> Payload {
    Payload::from(event(
        EventKind::New,
        finding(Domain::Alerts, severity, "Reverse shell"),
    ))
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn sink_config(text: &str) -> SinkConfig {
    toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

// ------------------------------------------------------------------------------------ vectors

#[test]
fn standard_webhooks_vectors_are_reproduced() {
    let v = fixture("standard_webhooks.json");
    let vectors = v["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 3);
    for case in vectors {
        let key = decode_signing_key(case["secret"].as_str().unwrap()).unwrap();
        assert_eq!(
            hex::encode(&key),
            case["secret_key_bytes_hex"].as_str().unwrap()
        );
        let sig = standard_signature(
            &[key],
            case["webhook_id"].as_str().unwrap(),
            case["webhook_timestamp"].as_i64().unwrap(),
            case["body"].as_str().unwrap().as_bytes(),
        );
        assert_eq!(
            sig,
            case["webhook_signature"].as_str().unwrap(),
            "{}",
            case["name"]
        );
    }
    let rot = &v["rotation_example"];
    let keys: Vec<Vec<u8>> = rot["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| decode_signing_key(s.as_str().unwrap()).unwrap())
        .collect();
    let sig = standard_signature(
        &keys,
        rot["webhook_id"].as_str().unwrap(),
        rot["webhook_timestamp"].as_i64().unwrap(),
        rot["body"].as_str().unwrap().as_bytes(),
    );
    assert_eq!(sig, rot["webhook_signature"].as_str().unwrap());
}

#[test]
fn github_vectors_are_reproduced() {
    let v = fixture("github_hmac.json");
    let vectors = v["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 3);
    for case in vectors {
        let sig = github_signature(
            case["secret"].as_str().unwrap().as_bytes(),
            case["body"].as_str().unwrap().as_bytes(),
        );
        assert_eq!(sig, case["X-Hub-Signature-256"].as_str().unwrap());
    }
}

// ------------------------------------------------------------------------------------ payload

#[test]
fn payload_document_has_every_field_with_stable_names() {
    let payload = alert(Severity::Critical);
    let line = to_json(&payload);
    assert!(!line.contains('\n'));
    let doc: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        keys(&doc),
        [
            "schema",
            "id",
            "kind",
            "source",
            "domain",
            "observed_at",
            "resolution",
            "finding",
            "summary"
        ]
    );
    assert_eq!(doc["schema"], PAYLOAD_SCHEMA);
    assert_eq!(doc["id"], payload.id());
    assert_eq!(doc["id"].as_str().unwrap().len(), 64);
    assert_eq!(doc["kind"], "new");
    assert_eq!(doc["source"], "prod");
    assert_eq!(doc["domain"], "alerts");
    assert_eq!(doc["observed_at"], "2024-05-01T08:00:05Z");
    assert_eq!(doc["resolution"], Value::Null);
    assert_eq!(doc["summary"], Value::Null);
    let f = &doc["finding"];
    assert_eq!(
        keys(f),
        [
            "domain",
            "id",
            "fingerprint",
            "severity",
            "native_severity",
            "status",
            "resolution",
            "native_status",
            "title",
            "description",
            "alert_type",
            "kubernetes",
            "host",
            "first_seen",
            "last_seen",
            "details",
            "links",
            "cves",
            "tactics",
            "source",
            "region",
            "raw"
        ]
    );
    assert_eq!(
        keys(&f["kubernetes"]),
        [
            "cluster_id",
            "cluster_name",
            "namespace",
            "pod",
            "container_id",
            "container_name",
            "image",
            "node",
            "app"
        ]
    );
    assert_eq!(
        keys(&f["host"]),
        [
            "instance_id",
            "instance_name",
            "public_ip",
            "private_ip",
            "uuid",
            "region"
        ]
    );
    assert_eq!(keys(&f["details"][0]), ["name", "value"]);
    assert_eq!(keys(&f["links"][0]), ["kind", "label", "url"]);
    assert_eq!(keys(&f["tactics"][0]), ["id", "name"]);
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["status"], "active");
    assert_eq!(f["resolution"], Value::Null);
    // Converted to UTC; absent times are null, not missing.
    assert_eq!(f["first_seen"], "2024-05-01T08:00:00Z");
    assert_eq!(f["last_seen"], Value::Null);
    assert_eq!(f["host"]["public_ip"], Value::Null);
    assert_eq!(f["links"][0]["kind"], "cve");
    assert_eq!(f["cves"], json!(["CVE-2024-1086"]));
    assert_eq!(
        f["raw"],
        json!({"Id": 123, "Level": "serious", "Nested": {"x": [1, 2]}})
    );

    let resolved = Payload::from(event(
        EventKind::Resolved,
        finding(Domain::Vulnerabilities, Severity::High, "CVE"),
    ));
    let doc: Value = serde_json::from_str(&to_json(&resolved)).unwrap();
    assert_eq!(doc["kind"], "resolved");
    assert_eq!(doc["resolution"], "fixed");
    assert_ne!(doc["id"], payload.id(), "kinds have distinct ids");

    let summary = Payload::from(Event::summary(
        "prod",
        Domain::Baseline,
        42,
        "epoch-1",
        OBSERVED,
    ));
    let doc: Value = serde_json::from_str(&to_json(&summary)).unwrap();
    assert_eq!(doc["kind"], "summary");
    assert_eq!(doc["finding"], Value::Null);
    assert_eq!(keys(&doc["summary"]), ["tracked", "message"]);
    assert_eq!(doc["summary"]["tracked"], 42);
}

#[test]
fn hostile_text_is_escaped_in_json_and_stripped_in_text() {
    let hostile = "Reverse shell\u{1b}[2J\r\nFAKE: all clear\u{7}\u{9b}31m\u{202e}gpj.exe";
    let payload = Payload::from(event(
        EventKind::New,
        finding(Domain::Alerts, Severity::High, hostile),
    ));
    let line = to_json(&payload);
    assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
    assert!(!line.contains('\u{202e}'));
    let doc: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        doc["finding"]["title"], hostile,
        "JSON keeps the text exactly"
    );

    let text = text_line(&payload);
    assert!(!text.chars().any(|c| c.is_control()), "{text:?}");
    assert!(!text.contains('\u{202e}'));
    assert_eq!(
        text,
        "2024-05-01T08:00:05Z HIGH new alerts source=prod cluster=prod-ack/default: \
         Reverse shell [2J  FAKE: all clear  31mgpj.exe [alert:123]"
    );
}

// ------------------------------------------------------------------------------------ receiver

#[derive(Clone, Debug)]
struct Captured {
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Captured>>>,
}

impl Receiver {
    fn requests(&self, path: &str) -> Vec<Captured> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.path == path)
            .cloned()
            .collect()
    }
}

/// A body that sends `first` (if any) and then never finishes.
struct Stall(Option<Bytes>);

impl http_body::Body for Stall {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
            None => Poll::Pending,
        }
    }
}

fn http_date(t: OffsetDateTime) -> String {
    t.format(time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    ))
    .unwrap()
}

async fn receive(State(r): State<Receiver>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    r.seen.lock().unwrap().push(Captured {
        path: path.clone(),
        query: uri.query().map(str::to_string),
        headers,
        body,
    });
    match path.as_str() {
        "/ok" => StatusCode::NO_CONTENT.into_response(),
        "/busy" => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "7")],
            "overloaded",
        )
            .into_response(),
        "/ratelimited" => {
            let at = http_date(OffsetDateTime::now_utc() + Duration::from_secs(120));
            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", at)]).into_response()
        }
        "/bad" => {
            let mut body = "field `title` is required\u{1b}[31m\r\n".to_string();
            body.push_str(&"x".repeat(5000));
            (StatusCode::BAD_REQUEST, body).into_response()
        }
        "/gone" => StatusCode::GONE.into_response(),
        // A receiver (or proxy) that takes at most 1 MiB.
        "/one-mib" => {
            let len = r.seen.lock().unwrap().last().unwrap().body.len();
            if len > 1 << 20 {
                StatusCode::PAYLOAD_TOO_LARGE.into_response()
            } else {
                StatusCode::NO_CONTENT.into_response()
            }
        }
        "/moved" => {
            let host = uri_host(&r);
            (
                StatusCode::FOUND,
                [("location", format!("http://{host}/ok?token=LEAKED"))],
            )
                .into_response()
        }
        "/hang" => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        "/accepted-then-stall" => Response::builder()
            .status(StatusCode::OK)
            .body(Body::new(Stall(None)))
            .unwrap(),
        "/rejected-then-stall" => Response::builder()
            .status(StatusCode::UNPROCESSABLE_ENTITY)
            .body(Body::new(Stall(Some(Bytes::from_static(
                b"schema mismatch",
            )))))
            .unwrap(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn uri_host(r: &Receiver) -> String {
    // The Host header of the request just recorded.
    let seen = r.seen.lock().unwrap();
    let last = seen.last().unwrap();
    last.headers["host"].to_str().unwrap().to_string()
}

async fn start_receiver() -> (SocketAddr, Receiver) {
    let receiver = Receiver::default();
    let app = Router::new().fallback(receive).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, receiver)
}

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const GH_SECRET: &str = "It's a Secret to Everybody";
const URL_TOKEN: &str = "SECRET123";
const AUTH: &str = "Bearer t0ps3cret";

fn env(k: &str) -> Option<String> {
    match k {
        "WHSEC" => Some(WHSEC.into()),
        "GH_SECRET" => Some(GH_SECRET.into()),
        "HOOK_AUTH" => Some(AUTH.into()),
        _ => None,
    }
}

fn webhook(url: &str) -> Sink {
    webhook_with_timeout(url, "500ms")
}

fn webhook_with_timeout(url: &str, timeout: &str) -> Sink {
    let text = format!(
        r#"
name = "soc"
type = "webhook"
url = "{url}"
signing_secret = {{ env = "WHSEC" }}
github_signing_secret = {{ env = "GH_SECRET" }}
headers = {{ "X-Team" = "secops", Authorization = {{ env = "HOOK_AUTH" }} }}
timeout = "{timeout}"
"#
    );
    Sink::build_with(&sink_config(&text), env).unwrap()
}

fn hook_at(addr: SocketAddr, path: &str) -> Sink {
    webhook(&format!("http://{addr}{path}?token={URL_TOKEN}"))
}

/// The receiver's own check: HMAC over `{id}.{timestamp}.{body}` with the base64 key, and a
/// timestamp within 5 minutes.
fn verify_standard(c: &Captured) {
    let h = |n: &str| c.headers[n].to_str().unwrap().to_string();
    let id = h("webhook-id");
    let ts = h("webhook-timestamp");
    let key = STANDARD.decode(WHSEC.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&c.body);
    let sig = h("webhook-signature");
    let b64 = sig.strip_prefix("v1,").expect("v1 signature");
    mac.verify_slice(&STANDARD.decode(b64).unwrap())
        .expect("webhook-signature verifies");
    let skew = OffsetDateTime::now_utc().unix_timestamp() - ts.parse::<i64>().unwrap();
    assert!(skew.abs() <= 300, "timestamp {ts} is {skew}s off");
    let mut mac = Hmac::<Sha256>::new_from_slice(GH_SECRET.as_bytes()).unwrap();
    mac.update(&c.body);
    let gh = h("x-hub-signature-256");
    let hexsig = gh.strip_prefix("sha256=").unwrap();
    mac.verify_slice(&hex::decode(hexsig).unwrap())
        .expect("x-hub-signature-256 verifies");
}

fn assert_no_secret(text: &str) {
    for s in [
        URL_TOKEN,
        "LEAKED",
        "t0ps3cret",
        WHSEC,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ] {
        assert!(!text.contains(s), "{s} leaked in {text:?}");
    }
}

fn assert_outcome_clean(o: &Outcome) {
    assert_no_secret(&format!("{o:?}"));
}

// ------------------------------------------------------------------------------------ webhook

#[tokio::test]
async fn webhook_delivers_signed_json_with_all_headers() {
    let (addr, rx) = start_receiver().await;
    let sink = hook_at(addr, "/ok");
    let payload = alert(Severity::Critical);
    let first = sink.deliver(&payload, 1).await;
    assert!(first.is_delivered(), "{first:?}");
    let second = sink.deliver(&payload, 2).await;
    assert!(second.is_delivered(), "{second:?}");
    let Outcome::Delivered { detail } = &first else {
        unreachable!()
    };
    assert_eq!(
        detail,
        &format!("HTTP 204 No Content from http://{addr}/ok")
    );
    assert_outcome_clean(&first);

    let got = rx.requests("/ok");
    assert_eq!(got.len(), 2);
    for (i, c) in got.iter().enumerate() {
        let h = |n: &str| c.headers[n].to_str().unwrap();
        assert_eq!(h("content-type"), "application/json");
        assert_eq!(
            h("user-agent"),
            format!("sasrelay/{}", env!("CARGO_PKG_VERSION"))
        );
        // One per (event, sink): SHA-256 of the event's id, NUL, the sink's name.
        let per_sink: String = {
            use sha2::Digest;
            let mut d = Sha256::new();
            d.update(format!("{}\0soc", payload.id()).as_bytes());
            d.finalize().iter().map(|b| format!("{b:02x}")).collect()
        };
        assert_eq!(h("webhook-id"), per_sink, "stable across retries");
        assert_eq!(h("x-sasrelay-attempt"), (i + 1).to_string());
        assert_eq!(h("x-team"), "secops");
        assert_eq!(h("authorization"), AUTH);
        // The token in the URL reaches the receiver; it is only kept out of messages.
        assert_eq!(c.query.as_deref(), Some("token=SECRET123"));
        verify_standard(c);
        let doc: Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(doc["schema"], PAYLOAD_SCHEMA);
        assert_eq!(doc["id"], payload.id());
        assert_eq!(c.body, to_json(&payload).as_bytes(), "the documented bytes");
    }
}

/// 100 KB of attacker-written text in every text field of a finding (and in its raw item):
/// the body stays within the default 256 KiB cap, so a receiver that refuses bodies over 1 MiB
/// takes it at the first attempt; what was cut says so, the signature covers the cut body,
/// and the ids are whole.
#[tokio::test]
async fn a_finding_with_huge_fields_is_cut_to_the_body_cap_and_delivered() {
    let (addr, rx) = start_receiver().await;
    let sink = hook_at(addr, "/one-mib");
    let huge = |c: char| c.to_string().repeat(100_000);
    let mut f = finding(Domain::Alerts, Severity::High, &huge('t'));
    f.description = huge('d');
    f.alert_type = huge('a');
    f.kubernetes.pod = Some(huge('p'));
    f.kubernetes.image = Some(huge('i'));
    f.details = (0..5)
        .map(|i| Detail {
            name: format!("Field {i}"),
            value: huge('v'),
        })
        .collect();
    f.raw = json!({"CommandLine": huge('c'), "FilePath": huge('f'), "Id": 123}).into();
    let payload = Payload::from(event(EventKind::New, f));
    let full = to_json(&payload).len();
    assert!(full > 1 << 20, "the whole document is {full} bytes");

    let o = sink.deliver(&payload, 1).await;
    assert!(o.is_delivered(), "{o:?}");
    let got = rx.requests("/one-mib");
    assert_eq!(got.len(), 1);
    let c = &got[0];
    assert!(c.body.len() <= 256 * 1024, "{} bytes", c.body.len());
    verify_standard(c);
    let doc: Value = serde_json::from_slice(&c.body).unwrap();
    assert_eq!(doc["id"], payload.id());
    assert_eq!(doc["truncated"], full);
    let title = doc["finding"]["title"].as_str().unwrap();
    assert!(title.ends_with("… [cut: 100000 bytes]"), "{title}");
    assert!(title.starts_with("ttt"));
    assert_eq!(doc["finding"]["fingerprint"], "f".repeat(64));
    assert_eq!(doc["finding"]["raw"]["Id"], 123);
    assert!(
        doc["finding"]["raw"]["CommandLine"]
            .as_str()
            .unwrap()
            .ends_with("… [cut: 100000 bytes]")
    );
}

#[test]
fn a_document_within_the_cap_is_sent_as_it_is_and_raw_is_cut_last() {
    let payload = alert(Severity::High);
    let full = to_json(&payload);
    assert_eq!(to_json_within(&payload, full.len()), full);
    // Long text outside the raw item and inside it: a cap that cutting the fields meets
    // leaves the raw item whole.
    let mut f = finding(Domain::Alerts, Severity::High, &"t".repeat(60_000));
    f.raw = json!({"CommandLine": "c".repeat(10_000)}).into();
    let payload = Payload::from(event(EventKind::New, f));
    let cut = to_json_within(&payload, 40_000);
    assert!(cut.len() <= 40_000, "{}", cut.len());
    let doc: Value = serde_json::from_str(&cut).unwrap();
    assert_eq!(doc["finding"]["raw"]["CommandLine"], "c".repeat(10_000));
    assert!(
        doc["finding"]["title"]
            .as_str()
            .unwrap()
            .ends_with("… [cut: 60000 bytes]")
    );
}

#[test]
fn a_digest_too_long_for_the_cap_cuts_member_text_then_drops_members() {
    let events: Vec<Event> = (0..50)
        .map(|i| {
            event(
                EventKind::New,
                finding(
                    Domain::Alerts,
                    Severity::High,
                    &format!("{i} {}", "t".repeat(10_000)),
                ),
            )
        })
        .collect();
    let payload: Payload = sasrelay::event::Digest::new(
        "backlog",
        std::collections::BTreeMap::new(),
        events,
        OBSERVED,
    )
    .into();
    let cut = to_json_within(&payload, 16_384);
    assert!(cut.len() <= 16_384, "{}", cut.len());
    let doc: Value = serde_json::from_str(&cut).unwrap();
    assert_eq!(doc["count"], 50, "the count stays the digest's");
    let kept = doc["events"].as_array().unwrap().len();
    assert!((1..50).contains(&kept), "{kept} members kept");
    assert_eq!(doc["omitted"], 50 - kept);
    assert!(doc["truncated"].as_u64().unwrap() > 500_000);
}

#[tokio::test]
async fn unsigned_webhook_sends_no_signature_headers() {
    let (addr, rx) = start_receiver().await;
    let cfg = sink_config(&format!(
        "name = \"plain\"\ntype = \"webhook\"\nurl = \"http://{addr}/ok\"\n"
    ));
    let sink = Sink::build_with(&cfg, |_| None).unwrap();
    assert!(sink.deliver(&alert(Severity::Low), 1).await.is_delivered());
    let c = &rx.requests("/ok")[0];
    assert!(c.headers.get("webhook-signature").is_none());
    assert!(c.headers.get("x-hub-signature-256").is_none());
    assert!(c.headers.get("webhook-id").is_some());
    assert!(c.headers.get("webhook-timestamp").is_some());
}

#[tokio::test]
async fn webhook_statuses_become_the_right_outcomes() {
    let (addr, rx) = start_receiver().await;
    let payload = alert(Severity::High);

    let o = hook_at(addr, "/busy").deliver(&payload, 1).await;
    assert_outcome_clean(&o);
    match &o {
        Outcome::Retry { after, reason } => {
            assert_eq!(*after, Some(Duration::from_secs(7)));
            assert_eq!(
                reason,
                &format!("HTTP 503 Service Unavailable from http://{addr}/busy: overloaded")
            );
        }
        other => panic!("{other:?}"),
    }

    let o = hook_at(addr, "/ratelimited").deliver(&payload, 1).await;
    assert_outcome_clean(&o);
    match &o {
        Outcome::Retry {
            after: Some(after), ..
        } => {
            assert!(
                (Duration::from_secs(100)..=Duration::from_secs(120)).contains(after),
                "{after:?}"
            );
        }
        other => panic!("{other:?}"),
    }

    let o = hook_at(addr, "/bad").deliver(&payload, 1).await;
    assert_outcome_clean(&o);
    match &o {
        Outcome::Permanent { reason, response } => {
            assert_eq!(
                reason,
                &format!("HTTP 400 Bad Request from http://{addr}/bad")
            );
            let response = response.as_deref().unwrap();
            assert!(
                response.starts_with("HTTP 400 Bad Request: field `title` is required [31m"),
                "{response}"
            );
            assert!(!response.chars().any(char::is_control), "{response:?}");
            assert!(response.len() <= 2048 + 64, "{}", response.len());
            assert!(response.ends_with("(body truncated)"), "{response}");
        }
        other => panic!("{other:?}"),
    }

    let o = hook_at(addr, "/gone").deliver(&payload, 1).await;
    assert!(
        matches!(&o, Outcome::Permanent { reason, .. } if reason.contains("410") && reason.contains("gone")),
        "{o:?}"
    );

    let o = hook_at(addr, "/missing").deliver(&payload, 1).await;
    assert!(matches!(&o, Outcome::Permanent { .. }), "{o:?}");

    // One attempt each: the sink never retries on its own.
    for path in ["/busy", "/ratelimited", "/bad", "/gone", "/missing"] {
        assert_eq!(rx.requests(path).len(), 1, "{path}");
    }
}

#[tokio::test]
async fn redirects_are_not_followed_and_the_location_is_redacted() {
    let (addr, rx) = start_receiver().await;
    let o = hook_at(addr, "/moved")
        .deliver(&alert(Severity::High), 1)
        .await;
    assert_outcome_clean(&o);
    match &o {
        Outcome::Permanent { reason, response } => {
            assert!(reason.starts_with("HTTP 302 Found"), "{reason}");
            assert!(
                reason.contains(&format!("redirect to http://{addr}/ok not followed")),
                "{reason}"
            );
            assert_eq!(response.as_deref(), Some("HTTP 302 Found"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rx.requests("/moved").len(), 1);
    assert!(rx.requests("/ok").is_empty(), "the redirect was followed");
}

#[tokio::test]
async fn timeouts_and_closed_ports_are_retried_without_leaking_the_url() {
    let (addr, rx) = start_receiver().await;
    let payload = alert(Severity::High);

    let o = hook_at(addr, "/hang").deliver(&payload, 1).await;
    assert_outcome_clean(&o);
    match &o {
        Outcome::Retry { after, reason } => {
            assert_eq!(*after, None);
            assert_eq!(
                reason,
                &format!("POST http://{addr}/hang: timed out after 500ms")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rx.requests("/hang").len(), 1, "the request did arrive");

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let o = hook_at(closed, "/ok").deliver(&payload, 1).await;
    assert_outcome_clean(&o);
    match &o {
        Outcome::Retry { after, reason } => {
            assert_eq!(*after, None);
            assert!(
                reason.starts_with(&format!("POST http://{closed}/ok: cannot connect")),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bodies_never_hold_up_a_verdict() {
    let (addr, _rx) = start_receiver().await;
    let payload = alert(Severity::High);
    // A 2xx is delivered at once, whatever its body does: not after the (long) timeout.
    let sink = webhook_with_timeout(&format!("http://{addr}/accepted-then-stall"), "60s");
    let o = tokio::time::timeout(Duration::from_secs(20), sink.deliver(&payload, 1))
        .await
        .expect("a 2xx must not wait for its body");
    assert!(o.is_delivered(), "{o:?}");
    // A stalled error body still yields the status's verdict, with what arrived.
    let o = hook_at(addr, "/rejected-then-stall")
        .deliver(&payload, 1)
        .await;
    match &o {
        Outcome::Permanent { response, .. } => assert_eq!(
            response.as_deref(),
            Some("HTTP 422 Unprocessable Entity: schema mismatch (body timed out)")
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_secret_url_is_not_even_shown_by_path() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url = format!("http://{closed}/services/T0KEN/path?x={URL_TOKEN}");
    let cfg = sink_config("name = \"s\"\ntype = \"webhook\"\nurl = { env = \"URL\" }\n");
    let sink = Sink::build_with(&cfg, |k| (k == "URL").then(|| url.clone())).unwrap();
    let o = sink.deliver(&alert(Severity::High), 1).await;
    let text = format!("{o:?} {sink:?}");
    assert!(text.contains(&format!("http://{closed}/…")), "{text}");
    assert!(
        !text.contains("T0KEN") && !text.contains(URL_TOKEN),
        "{text}"
    );
    let e = Sink::build_with(&cfg, |_| None).unwrap_err();
    assert!(e.contains("url") && e.contains("URL"), "{e}");
    let e = Sink::build_with(&cfg, |_| Some("ftp://h/T0KEN".into())).unwrap_err();
    assert!(e.contains("ftp") && !e.contains("T0KEN"), "{e}");
}

#[test]
fn sink_debug_never_shows_secrets() {
    let sink = webhook(&format!("https://hooks.example.com/in?token={URL_TOKEN}"));
    let text = format!("{sink:?}");
    assert_no_secret(&text);
    assert!(text.contains("https://hooks.example.com/in"), "{text}");
}

// ------------------------------------------------------------------------------------ config

#[test]
fn forbidden_headers_and_bad_urls_are_reported_by_key() {
    let cfg = sink_config(
        r#"
name = "h"
type = "webhook"
url = "http://hooks.example.com/x?token=T"
headers = { "Content-Type" = "text/plain", "Webhook-Id" = "x", Connection = "close", "X-Ok" = "1", "x-ok" = "2", "X-Bad" = "a\nb", "Transfer-Encoding" = "chunked" }
timeout = "0s"
max_response_bytes = 0
signing_secret = []
"#,
    );
    let problems = cfg.check();
    let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "url",
            "signing_secret",
            "headers.Connection",
            "headers.Content-Type",
            "headers.Transfer-Encoding",
            "headers.Webhook-Id",
            "headers.X-Bad",
            "headers.x-ok",
            "timeout",
            "max_response_bytes"
        ],
        "{problems:#?}"
    );
    assert!(problems[0].1.contains("allow_http"), "{problems:?}");
    assert!(problems[7].1.contains("X-Ok"), "{problems:?}");
    let e = Sink::build_with(&cfg, |_| None).unwrap_err();
    assert!(e.starts_with("sink `h`: url:"), "{e}");

    let ok = sink_config(
        "name = \"h\"\ntype = \"webhook\"\nurl = \"http://receiver.monitoring.svc:8080/x\"\nallow_http = true\nheaders = { \"X-Ok\" = \"1\" }\n",
    );
    assert_eq!(ok.check(), vec![]);
    let wrong_scheme =
        sink_config("name = \"h\"\ntype = \"webhook\"\nurl = \"file:///etc/passwd\"\n");
    assert_eq!(wrong_scheme.check()[0].0, "url");
}

#[test]
fn bad_signing_secrets_fail_the_build_without_echoing() {
    let cfg = sink_config(
        "name = \"h\"\ntype = \"webhook\"\nurl = \"https://h.example/x\"\nsigning_secret = [{ env = \"A\" }, { env = \"B\" }]\n",
    );
    let e = Sink::build_with(&cfg, |k| match k {
        "A" => Some(WHSEC.into()),
        "B" => Some("whsec_dG9vc2hvcnQ=".into()),
        _ => None,
    })
    .unwrap_err();
    assert!(e.contains("signing_secret[1]: env B: "), "{e}");
    assert!(!e.contains("dG9vc2hvcnQ"), "{e}");
    let e = Sink::build_with(&cfg, |_| None).unwrap_err();
    assert!(e.contains("signing_secret") && e.contains("A"), "{e}");
}

#[test]
fn relative_paths_are_anchored_to_the_config_directory() {
    let mut cfg = sink_config("name = \"f\"\ntype = \"file\"\npath = \"events.jsonl\"\n");
    cfg.anchor(std::path::Path::new("/etc/sasrelay"));
    let sink = Sink::build(&cfg).unwrap();
    let Backend::File(f) = sink.backend() else {
        panic!("file sink expected")
    };
    assert_eq!(f.path(), std::path::Path::new("/etc/sasrelay/events.jsonl"));
}

// ------------------------------------------------------------------------------------ filters

#[test]
fn filters_select_domains_severities_and_kinds() {
    let sink = Sink::build(&sink_config(
        r#"
name = "f"
type = "stdout"
domains = ["alerts", "firewall"]
min_severity = "high"
events = ["new", "resolved", "summary"]
"#,
    ))
    .unwrap();
    let ev = |kind, domain, severity| event(kind, finding(domain, severity, "t"));
    let table = [
        (ev(EventKind::New, Domain::Alerts, Severity::Critical), true),
        (ev(EventKind::New, Domain::Alerts, Severity::High), true),
        (ev(EventKind::New, Domain::Alerts, Severity::Medium), false),
        (
            ev(EventKind::Resolved, Domain::Firewall, Severity::High),
            true,
        ),
        (
            ev(EventKind::Recurring, Domain::Alerts, Severity::Critical),
            false,
        ),
        (
            ev(EventKind::New, Domain::Vulnerabilities, Severity::Critical),
            false,
        ),
        (ev(EventKind::New, Domain::Baseline, Severity::High), false),
        // Summaries pass the severity filter but not the domain filter.
        (
            Event::summary("prod", Domain::Alerts, 3, "e", OBSERVED),
            true,
        ),
        (
            Event::summary("prod", Domain::Baseline, 3, "e", OBSERVED),
            false,
        ),
    ];
    for (e, want) in &table {
        assert_eq!(sink.accepts(e), *want, "{:?} {:?}", e.kind, e.domain);
    }
    let all = Sink::build(&sink_config("name = \"all\"\ntype = \"stdout\"\n")).unwrap();
    assert!(table.iter().all(|(e, _)| all.accepts(e)));
    let no_summary = Sink::build(&sink_config(
        "name = \"ns\"\ntype = \"stdout\"\nevents = [\"new\"]\n",
    ))
    .unwrap();
    assert!(!no_summary.accepts(&table[7].0));
    assert_eq!(no_summary.name(), "ns");
}

// ------------------------------------------------------------------------------------ stdout

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn stdout_sink(format: &str, out: Shared) -> Sink {
    let cfg = sink_config(&format!(
        "name = \"o\"\ntype = \"stdout\"\nformat = \"{format}\"\n"
    ));
    let sink = Sink::build(&cfg).unwrap();
    let Backend::Stdout(s) = sink.backend() else {
        panic!("stdout sink expected")
    };
    let s = StdoutSink::with_output(s.clone(), out);
    sink.with_backend(Backend::Stdout(s))
}

#[tokio::test]
async fn stdout_text_lines_carry_no_control_characters() {
    let out = Shared::default();
    let sink = stdout_sink("text", out.clone());
    let hostile = "Miner\u{1b}]0;pwned\u{7}\nsecond line\u{85}\u{202e}";
    let payload = Payload::from(event(
        EventKind::New,
        finding(Domain::Alerts, Severity::Critical, hostile),
    ));
    assert!(sink.deliver(&payload, 1).await.is_delivered());
    assert!(sink.deliver(&alert(Severity::Low), 2).await.is_delivered());
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    for l in &lines {
        assert!(!l.chars().any(|c| c.is_control()), "{l:?}");
        assert!(!l.contains('\u{202e}'), "{l:?}");
    }
    assert!(lines[0].contains("CRITICAL new alerts source=prod cluster=prod-ack/default: Miner ]0;pwned  second line  [alert:123]"), "{}", lines[0]);
    assert!(lines[1].contains(" LOW new alerts "), "{}", lines[1]);
}

#[tokio::test]
async fn stdout_json_is_the_webhook_document() {
    let out = Shared::default();
    let sink = stdout_sink("json", out.clone());
    let payload = alert(Severity::Medium);
    assert!(sink.deliver(&payload, 1).await.is_delivered());
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text, format!("{}\n", to_json(&payload)));
}

// ------------------------------------------------------------------------------------ file

#[tokio::test]
async fn file_sink_appends_json_lines_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let cfg = sink_config(&format!(
        "name = \"f\"\ntype = \"file\"\npath = {:?}\n",
        path.to_str().unwrap()
    ));
    let sink = Sink::build(&cfg).unwrap();
    assert!(
        !path.exists(),
        "nothing is opened before the first delivery"
    );
    let a = alert(Severity::High);
    let b = Payload::from(Event::summary("prod", Domain::Alerts, 2, "e", OBSERVED));
    for p in [&a, &b] {
        let o = sink.deliver(p, 1).await;
        assert!(o.is_delivered(), "{o:?}");
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A second sink on the same file appends rather than truncating.
    let again = Sink::build(&cfg).unwrap();
    assert!(again.deliver(&a, 2).await.is_delivered());
    let text = std::fs::read_to_string(&path).unwrap();
    let ids: Vec<String> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["schema"], PAYLOAD_SCHEMA);
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids, [a.id(), b.id(), a.id()]);
    assert!(text.ends_with('\n'));
}

#[tokio::test]
async fn unwritable_file_paths_are_retried_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("plain-file");
    std::fs::write(&not_a_dir, "x").unwrap();
    // Permission bits do not stop root, which tests may run as; these fail for everyone.
    for path in [not_a_dir.join("events.jsonl"), dir.path().to_path_buf()] {
        let cfg = sink_config(&format!(
            "name = \"f\"\ntype = \"file\"\npath = {:?}\nfsync = false\n",
            path.to_str().unwrap()
        ));
        let o = Sink::build(&cfg)
            .unwrap()
            .deliver(&alert(Severity::High), 1)
            .await;
        match &o {
            Outcome::Retry { after, reason } => {
                assert_eq!(*after, None);
                assert!(
                    reason.starts_with(&format!("cannot append to {}: ", path.display())),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
