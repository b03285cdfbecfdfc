//! The admin API over a real socket, the `sasrelay silence` commands (the real binary) against
//! it and against a running daemon fed by the simulator, `sasrelay route test` and the
//! warnings of `sasrelay check`.
//!
//! Nothing sleeps to synchronise: waits are on the webhook receiver, the daemon's log lines or
//! a condition polled under a deadline.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use reqwest::StatusCode;
use sasrelay::config::AdminSettings;
use sasrelay::daemon::admin::{AdminState, DeadLetterView, SilenceView};
use sasrelay::pipeline::dispatch::Silences;
use sasrelay::secret::Secret;
use sasrelay::simulator::{Domain as SimDomain, SimConfig, Simulator};
use sasrelay::store::{Store, Suppressed};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// Failure guard for every wait (a hang becomes a failure, never a pass).
pub(super) const T: Duration = Duration::from_secs(60);
const TOKEN: &str = "tok-3f9a1c";

/// An admin API served in process on 127.0.0.1:0 over a fresh store.
pub(super) struct Api {
    pub(super) addr: std::net::SocketAddr,
    pub(super) store: Store,
    pub(super) silences: Arc<Silences>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: TempDir,
}

impl Api {
    async fn start(token: Option<&str>) -> Api {
        Api::start_with(token, &[], AdminSettings::default()).await
    }

    /// With the sinks named `sinks` configured (their wakes unused) and `settings`.
    pub(super) async fn start_with(
        token: Option<&str>,
        sinks: &[&str],
        settings: AdminSettings,
    ) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        let silences = Arc::new(Silences::load(store.clone()).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let metrics: Arc<sasrelay::pipeline::metrics::Metrics> = Default::default();
        let health = sasrelay::daemon::health::Health::new(metrics.clone(), store.clone());
        let wakes = sinks
            .iter()
            .map(|s| (s.to_string(), Arc::new(tokio::sync::Notify::new())))
            .collect();
        health.configure(&Default::default(), None, &[], wakes);
        let state = AdminState {
            silences: silences.clone(),
            store: store.clone(),
            token: token.map(Secret::new),
            sinks: sinks
                .iter()
                .map(|s| (s.to_string(), Arc::new(tokio::sync::Notify::new())))
                .collect(),
            metrics,
            health,
            settings,
            reload: Default::default(),
            connected: Default::default(),
        };
        let task = tokio::spawn(sasrelay::daemon::admin::serve(
            listener,
            state,
            shutdown.clone(),
        ));
        Api {
            addr,
            store,
            silences,
            shutdown,
            task,
            _dir: dir,
        }
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(super) async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

pub(super) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn call(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let changes_state = method != reqwest::Method::GET;
    let mut req = http().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    // The API takes a state change only as JSON, a DELETE without a body included.
    if let Some(b) = body {
        req = req.json(&b);
    } else if changes_state {
        req = req.header("content-type", "application/json");
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn suppressed(at_ms: i64, event: &str, by: &str, reason: &str) -> Suppressed {
    Suppressed {
        at_ms,
        event_id: event.into(),
        kind: "new".into(),
        fingerprint: None,
        title: format!("title of {event}"),
        sink: "hook".into(),
        route: "default".into(),
        by: by.into(),
        reason: reason.into(),
    }
}

#[tokio::test]
async fn the_api_creates_lists_and_expires_silences_behind_a_token() {
    let api = Api::start(Some(TOKEN)).await;
    let silences_url = api.url("/api/v1/silences");
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    // /healthz is open; /api/ needs the token.
    let resp = http().get(api.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "ok");
    for token in [None, Some("wrong"), Some("tok-3f9a1")] {
        let mut req = http().get(&silences_url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "token {token:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body: Value = resp.json().await.unwrap();
        assert!(!body.to_string().contains(TOKEN));
    }
    let (status, body) = call(
        post.clone(),
        &silences_url,
        Some("wrong"),
        Some(json!({"matchers": ["cluster=c1"], "duration": "1h", "created_by": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        api.silences.list().is_empty(),
        "nothing created without the token"
    );
    let (status, body) = call(get.clone(), &silences_url, Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"silences": []}));
    let resp = http()
        .get(&silences_url)
        .header("authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the scheme is case-insensitive"
    );

    // Create.
    let (status, body) = call(
        post.clone(),
        &silences_url,
        Some(TOKEN),
        Some(json!({
            "matchers": ["namespace=\"kube-system\"", "severity<high"],
            "duration": "2h",
            "created_by": "alice",
            "comment": "node upgrade"
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(body["silence"]["id"], id.as_str());
    assert_eq!(body["silence"]["state"], "active");
    assert_eq!(
        body["silence"]["matchers"],
        json!(["namespace=\"kube-system\"", "severity<high"])
    );
    assert_eq!(api.silences.list().len(), 1, "the daemon's book has it");
    let (status, body) = call(
        post.clone(),
        &silences_url,
        Some(TOKEN),
        Some(json!({
            "matchers": ["cluster=c9"],
            "starts_at": "2099-01-01T00:00:00Z",
            "ends_at": "2099-01-02T00:00:00+08:00",
            "created_by": "bob"
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["silence"]["state"], "pending");
    assert_eq!(body["silence"]["ends_at"], "2099-01-01T16:00:00Z");
    let pending = body["id"].as_str().unwrap().to_string();

    // Validation.
    for (req, needle) in [
        (
            json!({"matchers": ["clutser=\"x\""], "duration": "1h", "created_by": "a"}),
            "matchers[0]",
        ),
        (
            json!({"matchers": ["cluster=~\"(\""], "duration": "1h", "created_by": "a"}),
            "column",
        ),
        (
            json!({"matchers": ["cluster=c1"], "duration": "2 hours", "created_by": "a"}),
            "duration: invalid duration",
        ),
        (
            json!({"matchers": ["cluster=c1"], "created_by": "a"}),
            "set ends_at",
        ),
        (
            json!({"matchers": ["cluster=c1"], "duration": "1h", "ends_at": "2099-01-01T00:00:00Z", "created_by": "a"}),
            "not both",
        ),
        (
            json!({"matchers": ["cluster=~\".*\""], "duration": "1h", "created_by": "a"}),
            "must not match the empty value",
        ),
        (
            json!({"matchers": [], "duration": "1h", "created_by": "a"}),
            "at least one matcher",
        ),
        (
            json!({"matchers": ["cluster=c1"], "duration": "1h", "created_by": "a", "extra": 1}),
            "unknown field `extra`",
        ),
        (
            json!({"matchers": ["cluster=c1"], "ends_at": "yesterday", "created_by": "a"}),
            "ends_at: expected an RFC 3339 time",
        ),
    ] {
        let (status, body) =
            call(post.clone(), &silences_url, Some(TOKEN), Some(req.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{req} → {body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{req}: {message:?} lacks {needle:?}"
        );
    }
    let big = "x".repeat(100 * 1024);
    let resp = http()
        .post(&silences_url)
        .bearer_auth(TOKEN)
        .json(&json!({"matchers": ["cluster=c1"], "duration": "1h", "created_by": "a", "comment": big}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        api.silences.list().len(),
        2,
        "no invalid silence was stored"
    );

    // The suppression log counts per silence.
    api.store
        .record_suppressed(&suppressed(1000, "e1", "silence", &id))
        .unwrap();
    api.store
        .record_suppressed(&suppressed(3000, "e2", "silence", &id))
        .unwrap();
    api.store
        .record_suppressed(&suppressed(2000, "e3", "mute", "night"))
        .unwrap();
    let (_, body) = call(get.clone(), &silences_url, Some(TOKEN), None).await;
    let list: Vec<SilenceView> = serde_json::from_value(body["silences"].clone()).unwrap();
    let counts: Vec<(&str, &str, u64)> = list
        .iter()
        .map(|v| (v.silence.id.as_str(), v.state.as_str(), v.suppressed))
        .collect();
    assert_eq!(
        counts,
        [(pending.as_str(), "pending", 0), (id.as_str(), "active", 2)],
        "newest first"
    );
    let (status, body) = call(
        get.clone(),
        &api.url(&format!("/api/v1/suppressed?silence={id}&limit=1")),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 2);
    assert_eq!(body["suppressed"].as_array().unwrap().len(), 1);
    assert_eq!(body["suppressed"][0]["event_id"], "e2", "newest first");
    let (_, body) = call(
        get.clone(),
        &api.url("/api/v1/suppressed"),
        Some(TOKEN),
        None,
    )
    .await;
    let events: Vec<&str> = body["suppressed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["e2", "e3", "e1"]);
    let (status, _) = call(
        get.clone(),
        &api.url("/api/v1/suppressed?limit=0"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Expire.
    let del = reqwest::Method::DELETE;
    let (status, body) = call(
        del.clone(),
        &api.url("/api/v1/silences/no-such-id"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"].as_str().unwrap().contains("no silence"),
        "{body}"
    );
    let (status, body) = call(
        del.clone(),
        &api.url(&format!("/api/v1/silences/{id}")),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["state"], "expired");
    assert_eq!(body["suppressed"], 2);
    let (status, _) = call(del, &api.url(&format!("/api/v1/silences/{id}")), None, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "expiring needs the token too"
    );
    // The expiry is durable: a fresh book over the same store sees it.
    let reloaded = Silences::load(api.store.clone()).unwrap();
    let now = jiff::Timestamp::now();
    let states: Vec<_> = reloaded.list().iter().map(|s| s.state(now)).collect();
    assert_eq!(
        states,
        [
            sasrelay::routing::SilenceState::Pending,
            sasrelay::routing::SilenceState::Expired
        ]
    );
    let (status, _) = call(
        reqwest::Method::GET,
        &api.url("/api/v1/nope"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    api.stop().await;
}

#[tokio::test]
async fn without_a_token_the_api_is_open() {
    let api = Api::start(None).await;
    let (status, body) = call(
        reqwest::Method::GET,
        &api.url("/api/v1/silences"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The CLI
// ---------------------------------------------------------------------------------------------

pub(super) struct Run {
    pub(super) code: Option<i32>,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

/// Runs the binary with `args` (and `envs`) on a blocking thread, so in-process servers keep
/// serving.
pub(super) async fn sasrelay(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sasrelay"));
    cmd.args(args)
        .env_remove("SASRELAY_LOG")
        .env("NO_COLOR", "1")
        .env("SIM_SK", "unused");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out: Output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    eprintln!(
        "$ sasrelay {}\n[exit {:?}]\n{}{}",
        args.join(" "),
        run.code,
        run.stdout,
        run.stderr
    );
    run
}

pub(super) const SOURCE: &str = r#"[[source]]
# The simulator has no quota unless a test sets one; tests poll every second.
calls_per_second = 50
name = "sim"
region = "cn-hangzhou"
credentials = { type = "access_key", access_key_id = "sasrelay-sim", access_key_secret = { env = "SIM_SK" } }
"#;

pub(super) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A config whose `[admin]` points at `listen` with the token from `ADMIN_TOKEN`.
pub(super) fn cli_config(dir: &Path, listen: &str) -> PathBuf {
    write(
        dir,
        "cli.toml",
        &format!("{SOURCE}\n[admin]\nlisten = \"{listen}\"\ntoken = {{ env = \"ADMIN_TOKEN\" }}\n"),
    )
}

/// The sink names of a `GET /api/v1/status` answer, in order.
pub(super) fn status_sinks(status: &Value) -> Vec<&str> {
    status["sinks"]
        .as_array()
        .expect("sinks")
        .iter()
        .map(|s| s["sink"].as_str().expect("a sink name"))
        .collect()
}

#[tokio::test]
async fn the_status_is_behind_the_token_and_lists_every_sink() {
    let api = Api::start_with(Some(TOKEN), &["hook", "chat"], AdminSettings::default()).await;
    let (status, _) = call(reqwest::Method::GET, &api.url("/api/v1/status"), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call(
        reqwest::Method::GET,
        &api.url("/api/v1/status"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Nothing configured to poll and a writable store: ready, every sink listed, empty.
    assert_eq!(body["ready"], true, "{body}");
    assert_eq!(body["sources"], json!([]));
    assert_eq!(status_sinks(&body), ["chat", "hook"]);
    assert_eq!(body["sinks"][0]["depth"], 0);
    let resp = http().get(api.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_commands_talk_to_the_admin_api() {
    let api = Api::start(Some(TOKEN)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = cli_config(dir.path(), &api.addr.to_string());
    let cfg = config.to_str().unwrap();
    let env = [("ADMIN_TOKEN", TOKEN), ("USER", "carol")];

    let add = sasrelay(
        &[
            "silence",
            "add",
            "--config",
            cfg,
            "--matcher",
            r#"namespace="kube-system""#,
            "-m",
            "severity<high",
            "--for",
            "2h",
            "--comment",
            "upgrade\u{1b}[31m now",
        ],
        &env,
    )
    .await;
    assert_eq!(add.code, Some(0), "{}", add.stderr);
    let id = add.stdout.trim().to_string();
    assert_eq!(id.len(), 36, "a uuid: {id:?}");
    let stored = api.silences.list();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, id);
    assert_eq!(
        stored[0].created_by, "carol",
        "the author defaults to $USER"
    );
    assert_eq!(stored[0].matchers.len(), 2);
    api.store
        .record_suppressed(&suppressed(1, "e1", "silence", &id))
        .unwrap();

    let list = sasrelay(&["silence", "list", "--config", cfg], &env).await;
    assert_eq!(list.code, Some(0), "{}", list.stderr);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", list.stdout);
    for col in [
        "ID",
        "STATE",
        "ENDS",
        "SUPPRESSED",
        "HELD",
        "AUTHOR",
        "MATCHERS",
        "COMMENT",
    ] {
        assert!(lines[0].contains(col), "{}", lines[0]);
    }
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &row[..6],
        [id.as_str(), "active", row[2], "1", "0", "carol"]
    );
    assert!(lines[1].contains(r#"namespace="kube-system", severity<high"#));
    assert!(lines[1].ends_with("upgrade [31m now"), "{}", lines[1]);
    assert!(
        !list.stdout.contains('\u{1b}'),
        "control characters are stripped"
    );

    let bad = sasrelay(
        &[
            "silence",
            "add",
            "--config",
            cfg,
            "--matcher",
            "clutser=x",
            "--for",
            "1h",
            "--comment",
            "c",
        ],
        &env,
    )
    .await;
    assert_eq!(bad.code, Some(1));
    assert!(bad.stderr.contains("matchers[0]"), "{}", bad.stderr);
    let bad = sasrelay(
        &[
            "silence",
            "add",
            "--config",
            cfg,
            "--matcher",
            "cluster=x",
            "--until",
            "2000-01-01T00:00:00Z",
            "--comment",
            "c",
        ],
        &env,
    )
    .await;
    assert_eq!(bad.code, Some(1));
    assert!(bad.stderr.contains("in the past"), "{}", bad.stderr);
    let usage = sasrelay(
        &[
            "silence",
            "add",
            "--config",
            cfg,
            "--matcher",
            "cluster=x",
            "--comment",
            "c",
        ],
        &env,
    )
    .await;
    assert_eq!(usage.code, Some(2), "--for or --until is required");
    assert_eq!(api.silences.list().len(), 1);

    let wrong = sasrelay(
        &["silence", "list", "--config", cfg],
        &[("ADMIN_TOKEN", "nope")],
    )
    .await;
    assert_eq!(wrong.code, Some(1));
    assert!(
        wrong.stderr.contains("refused the admin token"),
        "{}",
        wrong.stderr
    );
    assert!(!wrong.stderr.contains(TOKEN));
    let missing = sasrelay(&["silence", "list", "--config", cfg], &[]).await;
    assert_eq!(missing.code, Some(78));
    assert!(
        missing.stderr.contains("[admin] token (env ADMIN_TOKEN)"),
        "{}",
        missing.stderr
    );

    let unknown = sasrelay(&["silence", "expire", "--config", cfg, "nope"], &env).await;
    assert_eq!(unknown.code, Some(1));
    assert!(
        unknown.stderr.contains("no silence with id"),
        "{}",
        unknown.stderr
    );
    let expire = sasrelay(&["silence", "expire", "--config", cfg, &id], &env).await;
    assert_eq!(expire.code, Some(0), "{}", expire.stderr);
    assert!(expire.stdout.contains(&format!("silence {id} expired")));

    let list = sasrelay(&["silence", "list", "--config", cfg], &env).await;
    assert_eq!(
        list.stdout.lines().count(),
        1,
        "only the header: {}",
        list.stdout
    );
    assert!(
        list.stderr.contains("1 expired silence hidden"),
        "{}",
        list.stderr
    );
    let all = sasrelay(
        &["silence", "list", "--config", cfg, "--all", "--json"],
        &env,
    )
    .await;
    assert_eq!(all.code, Some(0));
    let views: Vec<SilenceView> = serde_json::from_str(&all.stdout).unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].silence.id, id);
    assert_eq!(views[0].state, "expired");
    assert_eq!(views[0].suppressed, 1);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_are_bounded_in_time_and_silencing_everything_needs_force() {
    let settings = AdminSettings {
        max_silence: Duration::from_secs(7 * 86_400),
        ..AdminSettings::default()
    };
    let api = Api::start_with(Some(TOKEN), &[], settings).await;
    let dir = tempfile::tempdir().unwrap();
    let config = cli_config(dir.path(), &api.addr.to_string());
    let cfg = config.to_str().unwrap();
    let env = [("ADMIN_TOKEN", TOKEN)];
    let add = |matcher: &'static str, length: &'static str, force: bool| {
        let mut args = vec![
            "silence",
            "add",
            "--config",
            cfg,
            "-m",
            matcher,
            "--for",
            length,
            "--comment",
            "maintenance",
        ];
        if force {
            args.push("--force");
        }
        async move { sasrelay(&args, &env).await }
    };

    let long = add(r#"cluster="c1""#, "8d", false).await;
    assert_eq!(long.code, Some(1), "{}", long.stderr);
    assert!(
        long.stderr.contains("at most 7d ([admin] max_silence)"),
        "{}",
        long.stderr
    );
    let everything = add(r#"domain=~".+""#, "2h", false).await;
    assert_eq!(everything.code, Some(1), "{}", everything.stderr);
    assert!(
        everything.stderr.contains("match every event") && everything.stderr.contains("--force"),
        "{}",
        everything.stderr
    );
    assert!(api.silences.list().is_empty(), "nothing was created");

    let forced = add(r#"domain=~".+""#, "2h", true).await;
    assert_eq!(forced.code, Some(0), "{}", forced.stderr);
    let forced_long = add(r#"domain=~".+""#, "8d", true).await;
    assert_eq!(
        forced_long.code,
        Some(1),
        "--force does not lift max_silence"
    );
    let narrow = add(r#"cluster="c1""#, "7d", false).await;
    assert_eq!(narrow.code, Some(0), "{}", narrow.stderr);
    assert_eq!(api.silences.list().len(), 2);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_commands_explain_an_unreachable_daemon() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = cli_config(dir.path(), &addr);
    let run = sasrelay(
        &["silence", "list", "--config", config.to_str().unwrap()],
        &[("ADMIN_TOKEN", TOKEN)],
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains(&addr), "{}", run.stderr);
    assert!(run.stderr.contains("sasrelay run"), "{}", run.stderr);
    assert!(run.stderr.contains("[admin] listen"), "{}", run.stderr);

    let off = write(
        dir.path(),
        "off.toml",
        &format!("{SOURCE}\n[admin]\nlisten = \"off\"\n"),
    );
    let run = sasrelay(&["silence", "list", "--config", off.to_str().unwrap()], &[]).await;
    assert_eq!(run.code, Some(78));
    assert!(run.stderr.contains("admin API is off"), "{}", run.stderr);
}

// ---------------------------------------------------------------------------------------------
// A running daemon
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_keeps_matching_events_from_a_running_daemon() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = write(dir.path(), "admin.token", &format!("{TOKEN}\n"));
    let (endpoint, url, state) = (sim.endpoint(), hook.url(), dir.path().join("state"));
    let admin = format!(
        "listen = \"127.0.0.1:0\"\ntoken = {{ file = \"{}\" }}",
        token_file.display()
    );
    let mut spec = ConfigSpec::new(&endpoint, &url, &state);
    spec.admin = &admin;
    let config = spec.write(&dir.path().join("sasrelay.toml"));
    let mut daemon = Daemon::spawn(&config);
    let bound = admin_addr(&daemon).await;
    assert!(
        !daemon.lines().iter().any(|l| l.contains(TOKEN)),
        "the token is never logged"
    );
    // The CLI's config names the port the daemon bound.
    let cli_admin = format!(
        "listen = \"{bound}\"\ntoken = {{ file = \"{}\" }}",
        token_file.display()
    );
    spec.admin = &cli_admin;
    let cli = spec.write(&dir.path().join("cli.toml"));
    let cli = cli.to_str().unwrap();
    let resp = http()
        .get(format!("http://{bound}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    hook.wait_delivered(4, T).await; // The first start's summaries.
    let add = sasrelay(
        &[
            "silence",
            "add",
            "--config",
            cli,
            "--matcher",
            r#"domain="alerts""#,
            "--for",
            "1h",
            "--author",
            "ops",
            "--comment",
            "noisy alerts",
        ],
        &[],
    )
    .await;
    assert_eq!(add.code, Some(0), "{}", add.stderr);
    let id = add.stdout.trim().to_string();

    let alert = sim
        .add_finding(SimDomain::Alert, None, Value::Null)
        .unwrap()["Id"]
        .as_i64()
        .unwrap();
    let vuln = sim.add_finding(SimDomain::Vuln, None, Value::Null).unwrap()["PrimaryId"]
        .as_i64()
        .unwrap();
    let vuln_id = format!("vul:{vuln}");
    hook.wait_for(&vuln_id, T, |r| r.iter().any(|r| r.finding_id() == vuln_id))
        .await;
    // The alert was seen by a poll and kept back: wait for the silence's count.
    let views = wait_suppressed(&daemon, cli, &id, 1).await;
    assert_eq!(views[0].state, "active");
    let alert_id = format!("alert:{alert}");
    assert!(
        !hook.requests().iter().any(|r| r.finding_id() == alert_id),
        "the silenced alert reached the webhook"
    );
    let (status, body) = call(
        reqwest::Method::GET,
        &format!("http://{bound}/api/v1/suppressed?silence={id}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["suppressed"][0]["by"], "silence");
    assert_eq!(body["suppressed"][0]["sink"], "hook");
    assert_eq!(
        body["suppressed"][0]["held"], true,
        "sent when the silence ends"
    );

    // The silence survives a restart: the next daemon keeps the next alert back too.
    assert!(daemon.terminate(T).await.success());
    let mut daemon = Daemon::spawn(&config);
    let bound = admin_addr(&daemon).await;
    let cli_admin = format!(
        "listen = \"{bound}\"\ntoken = {{ file = \"{}\" }}",
        token_file.display()
    );
    spec.admin = &cli_admin;
    let cli = spec.write(&dir.path().join("cli.toml"));
    let cli = cli.to_str().unwrap();
    let second = sim
        .add_finding(SimDomain::Alert, None, Value::Null)
        .unwrap()["Id"]
        .as_i64()
        .unwrap();
    let second_id = format!("alert:{second}");
    let views = wait_suppressed(&daemon, cli, &id, 2).await;
    assert_eq!(views[0].state, "active", "after the restart: {views:?}");
    assert!(
        !hook.requests().iter().any(|r| r.finding_id() == second_id),
        "an alert silenced after the restart reached the webhook"
    );

    // A third alert arrives under the silence and is handled before it ends: its `new` and
    // its `resolved` are both held.
    let third = sim
        .add_finding(SimDomain::Alert, None, Value::Null)
        .unwrap()["Id"]
        .as_i64()
        .unwrap();
    let third_id = format!("alert:{third}");
    wait_suppressed(&daemon, cli, &id, 3).await;
    sim.set_status(SimDomain::Alert, third, 4).unwrap();
    let views = wait_suppressed(&daemon, cli, &id, 4).await;
    let held = views.iter().find(|v| v.silence.id == id).unwrap().held;
    assert_eq!(
        held, 4,
        "every event the silence kept back is held: {views:?}"
    );
    let silenced = [alert_id.clone(), second_id.clone(), third_id.clone()];
    assert!(
        !hook
            .requests()
            .iter()
            .any(|r| silenced.iter().any(|id| id == r.finding_id())),
        "a silenced alert reached the webhook"
    );

    // The silence ends: the two alerts still open arrive, once each — the one kept back before
    // the restart too — and the handled one is let go (neither its `new` nor its `resolved`).
    let expire = sasrelay(&["silence", "expire", "--config", cli, &id], &[]).await;
    assert_eq!(expire.code, Some(0), "{}", expire.stderr);
    // (How many it still held when the answer was written: the grouper may have sent some.)
    assert!(
        expire.stdout.contains(" held, sent now"),
        "{}",
        expire.stdout
    );
    for held in [&alert_id, &second_id] {
        hook.wait_for(held, T, |r| r.iter().any(|r| r.finding_id() == *held))
            .await;
    }
    let later = sim
        .add_finding(SimDomain::Alert, None, Value::Null)
        .unwrap()["Id"]
        .as_i64()
        .unwrap();
    let later_id = format!("alert:{later}");
    hook.wait_for(&later_id, T, |r| {
        r.iter().any(|r| r.finding_id() == later_id)
    })
    .await;
    daemon.wait_more_polls_of(&["alerts"], 2, T).await;
    let requests = hook.requests();
    assert_each_once(&requests);
    let sent = |id: &str| requests.iter().filter(|r| r.finding_id() == id).count();
    assert_eq!(
        (
            sent(&alert_id),
            sent(&second_id),
            sent(&third_id),
            sent(&later_id)
        ),
        (1, 1, 0, 1)
    );
    let list = sasrelay(
        &["silence", "list", "--config", cli, "--json", "--all"],
        &[],
    )
    .await;
    let views: Vec<SilenceView> = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(views.len(), 1, "{views:?}");
    assert_eq!(
        (views[0].state.as_str(), views[0].held),
        ("expired", 0),
        "released: {views:?}"
    );
    assert!(daemon.terminate(T).await.success());
}

/// Waits until silence `id` counts at least `n` suppressed events (polling `silence list`
/// after each alert poll); the views then.
async fn wait_suppressed(daemon: &Daemon, cli: &str, id: &str, n: u64) -> Vec<SilenceView> {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let list = sasrelay(&["silence", "list", "--config", cli, "--json"], &[]).await;
        assert_eq!(list.code, Some(0), "{}", list.stderr);
        let views: Vec<SilenceView> = serde_json::from_str(&list.stdout).unwrap();
        if views
            .iter()
            .any(|v| v.silence.id == id && v.suppressed >= n)
        {
            return views;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the silence never counted {n} suppressed events: {views:?}"
        );
        daemon.wait_more_polls_of(&["alerts"], 1, T).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_refuses_to_start_when_the_admin_address_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let admin = format!("listen = \"{addr}\"");
    let mut spec = ConfigSpec::new("127.0.0.1:9", "http://127.0.0.1:9/hook", &state);
    spec.admin = &admin;
    let config = spec.write(&dir.path().join("sasrelay.toml"));
    let mut daemon = Daemon::spawn(&config);
    let status = daemon.wait_exit(T).await;
    assert_eq!(status.code(), Some(1));
    let log = daemon.lines().join("\n");
    assert!(log.contains(&format!("cannot listen on {addr}")), "{log}");
    assert!(log.contains("[admin] listen"), "{log}");
    drop(taken);

    let admin = r#"listen = "127.0.0.1:0"
token = { env = "SASRELAY_TEST_NO_SUCH_TOKEN" }"#;
    spec.admin = admin;
    let config = spec.write(&dir.path().join("sasrelay.toml"));
    // A token that cannot be read is a configuration error, as `check` reports it.
    let mut daemon = Daemon::spawn(&config);
    assert_eq!(daemon.wait_exit(T).await.code(), Some(78));
    let log = daemon.lines().join("\n");
    assert!(
        log.contains(
            "admin.token: the admin API's token (env SASRELAY_TEST_NO_SUCH_TOKEN): environment variable"
        ),
        "{log}"
    );
}

// ---------------------------------------------------------------------------------------------
// route test and check
// ---------------------------------------------------------------------------------------------

const ROUTES: &str = r#"
[[sink]]
name = "chat"
type = "stdout"

[[sink]]
name = "archive"
type = "stdout"

[routing]
default = "drop"

[[route]]
name = "alerts"
matchers = ['domain="alerts"']
sinks = ["chat"]
group_by = ["cluster"]
max_group_size = 5

[[route]]
name = "rest"
sinks = ["archive"]
"#;

/// `(messages, events, ungrouped, groups, muted, filtered)` of a sink's row.
fn row(out: &str, sink: &str) -> [u64; 6] {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(sink))
        .unwrap_or_else(|| panic!("no row for {sink} in\n{out}"));
    let n: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    n.try_into().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_test_counts_messages_per_sink_for_simulated_findings() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "routes.toml", &format!("{SOURCE}{ROUTES}"));
    let cfg = config.to_str().unwrap();
    let run = sasrelay(
        &["route", "test", "--config", cfg, "--from-simulator", "50"],
        &[],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let head = run.stdout.lines().next().unwrap();
    assert!(
        head.starts_with("50 findings from the simulator (seed 20240520): "),
        "{head}"
    );
    let alerts: u64 = head
        .split(": ")
        .nth(1)
        .unwrap()
        .split(", ")
        .find_map(|p| p.strip_suffix(" alerts"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(alerts > 0 && alerts < 50, "{head}");
    let [messages, events, ungrouped, groups, muted, filtered] = row(&run.stdout, "chat");
    assert_eq!(events, alerts, "every alert goes to chat");
    assert_eq!((ungrouped, muted, filtered), (0, 0, 0));
    // The simulator's world has two clusters: at most two groups, each in chunks of 5.
    assert!((1..=2).contains(&groups), "{}", run.stdout);
    assert!(
        messages >= alerts.div_ceil(5) && messages <= alerts / 5 + groups,
        "{}",
        run.stdout
    );
    assert!(messages < events, "grouping saves messages: {}", run.stdout);
    assert_eq!(
        row(&run.stdout, "archive"),
        [50 - alerts, 50 - alerts, 50 - alerts, 0, 0, 0],
        "the catch-all sends the rest one by one"
    );
    assert!(
        run.stdout
            .contains("dropped (no route sends them anywhere): 0")
    );

    let again = sasrelay(
        &[
            "route",
            "test",
            "--config",
            cfg,
            "--from-simulator",
            "50",
            "--seed",
            "20240520",
        ],
        &[],
    )
    .await;
    assert_eq!(
        again.stdout.lines().skip(2).collect::<Vec<_>>(),
        run.stdout.lines().skip(2).collect::<Vec<_>>(),
        "the same seed gives the same counts"
    );
}

fn test_finding(cluster: &str) -> Value {
    let item = sasrelay::sas::models::Item::from_value(json!({
        "Id": 4242, "AlarmUniqueInfo": "u-4242", "Level": "serious", "Name": "Reverse shell",
        "EventStatus": 1
    }))
    .unwrap();
    let mut f = sasrelay::sas::normalise::normalise_alert(
        &sasrelay::sas::normalise::NormaliseContext::new("sim", "cn-hangzhou"),
        item,
    );
    f.kubernetes.cluster_id = Some(cluster.into());
    serde_json::to_value(f).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_test_prints_why_each_route_matched_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let routes = r#"
[[sink]]
name = "dev"
type = "stdout"

[[sink]]
name = "oncall"
type = "stdout"

[routing]
default = "drop"

[[route]]
matchers = ['cluster="c-dev"']
sinks = ["dev"]

[[route]]
name = "prod"
matchers = ['domain="alerts"', 'severity>=high']
sinks = ["oncall"]
"#;
    let config = write(dir.path(), "routes.toml", &format!("{SOURCE}{routes}"));
    let cfg = config.to_str().unwrap();
    let finding = test_finding("c-prod");
    let file = write(dir.path(), "finding.json", &finding.to_string());
    let run = sasrelay(
        &[
            "route",
            "test",
            "--config",
            cfg,
            "--finding",
            &format!("@{}", file.display()),
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let out = &run.stdout;
    assert!(
        out.contains("event 1: new alerts finding alert:4242"),
        "{out}"
    );
    assert!(
        out.contains(r#"route[0]: failed: cluster="c-dev" (cluster = c-prod)"#),
        "{out}"
    );
    assert!(
        out.contains(
            r#"route[1] (prod): matched: domain="alerts" (domain = alerts), severity>=high"#
        ),
        "{out}"
    );
    assert!(out.contains("→ oncall via prod"), "{out}");
    assert!(!out.contains("→ dev"), "{out}");

    // Inline, as an array: the second one goes to dev.
    let dev = test_finding("c-dev");
    let run = sasrelay(
        &[
            "route",
            "test",
            "--config",
            cfg,
            "--finding",
            &json!([dev]).to_string(),
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout
            .contains(r#"route[0]: matched: cluster="c-dev" (cluster = c-dev)"#),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("→ dev via route[0]"), "{}", run.stdout);

    let bad = sasrelay(
        &[
            "route",
            "test",
            "--config",
            cfg,
            "--finding",
            "{\"nope\": 1}",
        ],
        &[],
    )
    .await;
    assert_eq!(bad.code, Some(65));
    assert!(bad.stderr.contains("not a finding"), "{}", bad.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prints_routing_warnings_and_passes() {
    let dir = tempfile::tempdir().unwrap();
    let routes = r#"
[state]
directory = "state"

[[sink]]
name = "a"
type = "stdout"

[routing]
default = "drop"

[[route]]
name = "everything"
sinks = ["a"]

[[route]]
name = "alerts"
matchers = ['domain="alerts"']
sinks = ["a"]
"#;
    let config = write(dir.path(), "shadow.toml", &format!("{SOURCE}{routes}"));
    let run = sasrelay(&["check", "--config", config.to_str().unwrap()], &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let warning = run
        .stderr
        .lines()
        .find(|l| l.starts_with("warning: "))
        .unwrap_or_else(|| panic!("no warning in {}", run.stderr));
    let location = format!("warning: {}:", config.display());
    assert!(warning.starts_with(&location), "{warning}");
    assert!(warning.contains("never tried"), "{warning}");
    // It points at the shadowed route's name.
    let text = format!("{SOURCE}{routes}");
    let at = text.find("name = \"alerts\"").unwrap();
    let line = text[..at].matches('\n').count() + 1;
    assert!(
        warning[location.len()..].starts_with(&format!("{line}:8: route[1]: ")),
        "{warning}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_replayed_once_with_their_id_and_discarded() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, url, state) = (sim.endpoint(), hook.url(), dir.path().join("state"));
    let spec = ConfigSpec::new(&endpoint, &url, &state);
    let config = spec.write(&dir.path().join("sasrelay.toml"));
    // The receiver rejects the first two summaries for good.
    hook.script([
        Reply::Status(400, "schema rejected: unknown key `kind`"),
        Reply::Status(422, "unprocessable"),
    ]);
    let mut daemon = Daemon::spawn(&config);
    let bound = admin_addr(&daemon).await;
    let mut cli_spec = ConfigSpec::new(&endpoint, &url, &state);
    let cli_admin = format!("listen = \"{bound}\"");
    cli_spec.admin = &cli_admin;
    let cli = cli_spec.write(&dir.path().join("cli.toml"));
    let cli = cli.to_str().unwrap();
    hook.wait_delivered(2, T).await;
    let mut dead = 0;
    daemon
        .wait_log("two dead letters", T, |v| {
            let m = v["message"].as_str().unwrap_or_default();
            dead += usize::from(m.contains("moved to the dead letter"));
            dead == 2
        })
        .await;
    let rejected: Vec<String> = hook
        .requests()
        .iter()
        .filter(|r| !r.delivered())
        .map(|r| r.body["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rejected.len(), 2);

    // The metrics show them (and every domain's polls, once each has logged one), and the
    // daemon is ready.
    daemon.wait_more_polls(1, T).await;
    let ready = http()
        .get(format!("http://{bound}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let metrics = http()
        .get(format!("http://{bound}/metrics"))
        .send()
        .await
        .unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let metrics = metrics.text().await.unwrap();
    let series = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    assert_eq!(series(r#"sasrelay_dead_letters{sink="hook"}"#), 2.0);
    assert_eq!(
        series(r#"sasrelay_delivery_attempts_total{sink="hook",outcome="dead_letter"}"#),
        2.0
    );
    assert!(series(r#"sasrelay_delivery_attempts_total{sink="hook",outcome="delivered"}"#) >= 2.0);
    for domain in ["alerts", "vulnerabilities", "baseline", "firewall"] {
        assert!(
            series(&format!(
                r#"sasrelay_polls_total{{source="sim",domain="{domain}",outcome="ok"}}"#
            )) >= 1.0
        );
    }
    // Every call took a permit from the call budget.
    assert!(series(r#"sasrelay_sas_calls_total{action="DescribeSuspEvents"}"#) >= 1.0);
    series(r#"sasrelay_sas_call_wait_seconds_total{action="DescribeSuspEvents"}"#);

    let list = dead_letters(cli, "list", &["--json"]).await;
    assert_eq!(list.code, Some(0), "{}", list.stderr);
    let views: Vec<DeadLetterView> = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(views.len(), 2, "{views:?}");
    let mut listed: Vec<String> = views.iter().map(|v| v.payload_id.clone()).collect();
    listed.sort();
    let mut expected = rejected.clone();
    expected.sort();
    assert_eq!(listed, expected);
    for v in &views {
        assert_eq!(v.sink, "hook");
        assert!(v.configured);
        assert_eq!(v.what, "summary");
        assert_eq!(v.attempts, 1);
        assert!(v.reason.contains("40") || v.reason.contains("42"), "{v:?}");
        assert!(v.last_response.is_some(), "{v:?}");
    }
    let table = dead_letters(cli, "list", &[]).await;
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    assert!(table.stdout.starts_with("SINK"), "{}", table.stdout);
    assert_eq!(table.stdout.lines().count(), 3, "{}", table.stdout);

    // Replay one: it is delivered once, under the id it was rejected with.
    let (replayed, discarded) = (&views[0], &views[1]);
    let seq = replayed.seq.to_string();
    let run = dead_letters(cli, "replay", &["--sink", "hook", "--seq", &seq]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("requeued as"), "{}", run.stdout);
    let id = replayed.payload_id.clone();
    hook.wait_for("the replayed summary", T, |r| {
        r.iter()
            .any(|r| r.delivered() && r.body["id"] == id.as_str())
    })
    .await;
    let again = dead_letters(cli, "replay", &["--sink", "hook", "--seq", &seq]).await;
    assert_eq!(again.code, Some(1), "a second replay finds nothing");
    assert!(again.stderr.contains("no dead letter"), "{}", again.stderr);

    // Only configured sinks can be replayed to.
    let other = dead_letters(cli, "replay", &["--sink", "gone", "--all"]).await;
    assert_eq!(other.code, Some(1));
    assert!(other.stderr.contains("not configured"), "{}", other.stderr);

    // Discard the other: gone for good.
    let dseq = discarded.seq.to_string();
    let run = dead_letters(cli, "discard", &["--sink", "hook", "--seq", &dseq]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let list = dead_letters(cli, "list", &["--json"]).await;
    let views: Vec<DeadLetterView> = serde_json::from_str(&list.stdout).unwrap();
    assert!(views.is_empty(), "{views:?}");

    let health = sasrelay(&["healthcheck", "--config", cli], &[]).await;
    assert_eq!(health.code, Some(0), "{}", health.stderr);
    assert_eq!(health.stdout.trim(), "ready");

    // A restart sends nothing again: the replayed summary was delivered exactly once and the
    // discarded one never.
    let status = daemon.terminate(T).await;
    assert_eq!(status.code(), Some(0), "{status}");
    let health = sasrelay(&["healthcheck", "--config", cli], &[]).await;
    assert_eq!(health.code, Some(1), "no daemon, not healthy");
    assert!(
        health.stderr.contains("no sasrelay daemon answers"),
        "{}",
        health.stderr
    );
    let mut daemon = Daemon::spawn(&config);
    daemon.wait_more_polls(4, T).await;
    let requests = hook.requests();
    let delivered_with = |id: &str| {
        requests
            .iter()
            .filter(|r| r.delivered() && r.body["id"] == id)
            .count()
    };
    assert_eq!(delivered_with(&replayed.payload_id), 1);
    assert_eq!(delivered_with(&discarded.payload_id), 0);
    assert_eq!(hook.delivered().len(), 3, "two summaries plus the replay");
    let status = daemon.terminate(T).await;
    assert_eq!(status.code(), Some(0), "{status}");
}

/// `sasrelay dead-letters SUB --config CLI ARGS…`.
async fn dead_letters(cli: &str, sub: &str, args: &[&str]) -> Run {
    let mut all = vec!["dead-letters", sub, "--config", cli];
    all.extend_from_slice(args);
    sasrelay(&all, &[]).await
}

/// The address the daemon's admin API bound (it logs it once listening).
pub(super) async fn admin_addr(daemon: &Daemon) -> String {
    daemon.wait_message("Admin API listening", T).await;
    daemon.messages("Admin API listening")[0]["addr"]
        .as_str()
        .unwrap()
        .to_string()
}
