//! Shared pieces of the end-to-end tests: a scriptable webhook receiver, the real `sasrelay`
//! binary as a child process with its log lines collected, and the configuration that joins
//! them to an in-process simulator.
//!
//! Nothing here sleeps to synchronise: waits are on the receiver's state (a `watch` channel
//! bumped on every request), on the daemon's log lines (the same), or on the simulator's call
//! counters; every wait has a generous timeout that only turns a hang into a failure.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use sasrelay::simulator::{
    DEMO_ACCESS_KEY_SECRET, InitialFindings, SimConfig, SimHandle, Simulator,
};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Environment variable the generated configs read the simulator's secret from.
pub const SECRET_ENV: &str = "SASRELAY_E2E_SIM_SECRET";
/// The four simulator actions that start a poll of each domain.
pub const DOMAIN_ACTIONS: [&str; 4] = [
    "DescribeSuspEvents",
    "DescribeVulList",
    "DescribeCheckWarningSummary",
    "ListInterceptionHistory",
];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// The webhook receiver
// ---------------------------------------------------------------------------------------------

/// How the receiver answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A status with a body.
    Status(u16, &'static str),
    /// A status with `Retry-After: <secs>`.
    RetryAfter(u16, u64),
}

/// One request the receiver answered.
#[derive(Clone, Debug)]
pub struct Request {
    /// `webhook-id`.
    pub webhook_id: String,
    /// `x-sasrelay-attempt`.
    pub attempt: u32,
    /// What the receiver answered.
    pub status: u16,
    /// The JSON body.
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
}

impl Request {
    /// Answered with a 2xx: delivered.
    pub fn delivered(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `kind` of the payload.
    pub fn kind(&self) -> &str {
        self.body["kind"].as_str().unwrap_or("")
    }

    /// `domain` of the payload.
    pub fn domain(&self) -> &str {
        self.body["domain"].as_str().unwrap_or("")
    }

    /// `finding.id` (`alert:123`), empty for summaries.
    pub fn finding_id(&self) -> &str {
        self.body["finding"]["id"].as_str().unwrap_or("")
    }
}

#[derive(Default)]
struct HookInner {
    requests: Vec<Request>,
    script: VecDeque<Reply>,
    /// How long each request takes to answer (a slow receiver).
    delay: Duration,
}

struct HookState {
    inner: Mutex<HookInner>,
    changed: watch::Sender<u64>,
}

/// A webhook receiver on `127.0.0.1`: records every request, answers from a script (then 200),
/// and can stop listening and listen again on the same port.
pub struct Hook {
    addr: SocketAddr,
    state: Arc<HookState>,
    serving: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

async fn receive(State(state): State<Arc<HookState>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (reply, delay) = {
        let mut inner = lock(&state.inner);
        (inner.script.pop_front(), inner.delay)
    };
    // A slow receiver, not a synchronisation: the sender waits for the answer.
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (status, response) = match reply {
        None => (200, StatusCode::OK.into_response()),
        Some(Reply::Status(code, text)) => {
            let s = StatusCode::from_u16(code).expect("valid status");
            (code, (s, text).into_response())
        }
        Some(Reply::RetryAfter(code, secs)) => {
            let s = StatusCode::from_u16(code).expect("valid status");
            let mut r = (s, "slow down").into_response();
            r.headers_mut().insert(
                "retry-after",
                HeaderValue::from_str(&secs.to_string()).expect("digits"),
            );
            (code, r)
        }
    };
    let request = Request {
        webhook_id: header("webhook-id"),
        attempt: header("x-sasrelay-attempt").parse().unwrap_or(0),
        status,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at: Instant::now(),
    };
    lock(&state.inner).requests.push(request);
    state.changed.send_modify(|n| *n += 1);
    response
}

impl Hook {
    /// Listens on a fresh port.
    pub async fn start() -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind hook");
        let addr = listener.local_addr().expect("hook addr");
        let mut hook = Hook {
            addr,
            state: Arc::new(HookState {
                inner: Mutex::new(HookInner::default()),
                changed: watch::channel(0).0,
            }),
            serving: None,
        };
        hook.serve(listener);
        hook
    }

    fn serve(&mut self, listener: TcpListener) {
        let token = CancellationToken::new();
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(self.state.clone());
        let stop = token.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .expect("hook server");
        });
        self.serving = Some((token, task));
    }

    /// The URL the sink posts to.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers the next requests with `replies`, in order (after any still queued).
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.state.inner).script.extend(replies);
    }

    /// Takes `delay` to answer each request from now on.
    pub fn slow_down(&self, delay: Duration) {
        lock(&self.state.inner).delay = delay;
    }

    /// Drops the replies still queued; returns how many there were.
    pub fn clear_script(&self) -> usize {
        let mut inner = lock(&self.state.inner);
        let n = inner.script.len();
        inner.script.clear();
        n
    }

    /// Stops listening: the listener is closed and open connections are shut, so the next
    /// attempt is refused.
    pub async fn stop(&mut self) {
        if let Some((token, task)) = self.serving.take() {
            token.cancel();
            task.await.expect("hook task");
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        assert!(self.serving.is_none(), "the hook is still listening");
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind hook port");
        self.serve(listener);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state.inner).requests.clone()
    }

    /// `f` of every request so far, without copying them (a backlog test receives tens of
    /// thousands).
    pub fn with_requests<R>(&self, f: impl FnOnce(&[Request]) -> R) -> R {
        f(&lock(&self.state.inner).requests)
    }

    /// Delivered (2xx) requests so far.
    pub fn delivered(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(Request::delivered)
            .collect()
    }

    /// Number of requests so far.
    pub fn count(&self) -> usize {
        lock(&self.state.inner).requests.len()
    }

    /// Waits until `done(requests)` holds; panics with `what` after `timeout`.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&[Request]) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.state.changed.subscribe();
        loop {
            {
                let inner = lock(&self.state.inner);
                if done(&inner.requests) {
                    return;
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => unreachable!("the sender lives in self"),
                Err(_) => {
                    let reqs = self.requests();
                    panic!(
                        "timed out after {timeout:?} waiting for the webhook to see {what}; it saw {} requests ({} delivered): {:?}",
                        reqs.len(),
                        reqs.iter().filter(|r| r.delivered()).count(),
                        reqs.iter()
                            .rev()
                            .take(10)
                            .map(|r| (r.status, r.kind().to_string(), r.finding_id().to_string()))
                            .collect::<Vec<_>>()
                    );
                }
            }
        }
    }

    /// Waits until at least `n` requests were delivered (2xx) in total.
    pub async fn wait_delivered(&self, n: usize, timeout: Duration) {
        self.wait_for(&format!("{n} deliveries"), timeout, |r| {
            r.iter().filter(|r| r.delivered()).count() >= n
        })
        .await
    }
}

/// Delivered requests per `webhook-id`.
pub fn per_id(requests: &[Request]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in requests.iter().filter(|r| r.delivered()) {
        *m.entry(r.webhook_id.clone()).or_insert(0) += 1;
    }
    m
}

/// Asserts that every delivered `webhook-id` (a finding's event or a health meta-event) was
/// delivered exactly once, and that it is the payload's `id` at a sink: SHA-256 of the id and
/// the sink's name, checked for the tests' usual sink `hook` (another sink's is 64 hex digits;
/// `operators.rs` checks those exactly).
pub fn assert_each_once(requests: &[Request]) {
    for r in requests.iter().filter(|r| r.delivered()) {
        let event = r.body["id"].as_str().unwrap_or("");
        assert!(
            r.webhook_id == sasrelay::sinks::webhook::delivery_id(event, "hook")
                || (r.webhook_id.len() == 64
                    && r.webhook_id.bytes().all(|b| b.is_ascii_hexdigit())
                    && r.webhook_id != event),
            "webhook-id {} is not the delivery id of payload {event}",
            r.webhook_id
        );
        assert!(
            r.body["schema"] == "sasrelay.event.v1" || r.body["schema"] == "sasrelay.health.v1",
            "a finding's event or a health meta-event: {}",
            r.body["schema"]
        );
    }
    let twice: Vec<_> = per_id(requests)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
}

// ---------------------------------------------------------------------------------------------
// The daemon
// ---------------------------------------------------------------------------------------------

/// The binary the daemon tests run: this build's, unless `SASRELAY_E2E_BIN` names another (the
/// soaks measure memory on the release build: `.ci/run`).
pub fn daemon_binary() -> PathBuf {
    std::env::var_os("SASRELAY_E2E_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sasrelay")))
}

struct LogState {
    lines: Mutex<Vec<String>>,
    changed: watch::Sender<u64>,
}

/// The real `sasrelay run` as a child process. Its stderr (JSON log lines) is collected and
/// echoed to the test's output; dropping it kills the process.
pub struct Daemon {
    child: Option<Child>,
    /// Process id.
    pub pid: u32,
    logs: Arc<LogState>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    /// `sasrelay --log-format json run --config <config>`.
    pub fn spawn(config: &Path) -> Daemon {
        Daemon::spawn_args(&[
            "--log-format".as_ref(),
            "json".as_ref(),
            "run".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ])
    }

    /// The binary with `args`.
    pub fn spawn_args(args: &[&std::ffi::OsStr]) -> Daemon {
        Daemon::spawn_args_env(args, &[])
    }

    /// `sasrelay --log-format json run --config <config>` with extra environment variables.
    pub fn spawn_env(config: &Path, envs: &[(&str, &std::ffi::OsStr)]) -> Daemon {
        Daemon::spawn_args_env(
            &[
                "--log-format".as_ref(),
                "json".as_ref(),
                "run".as_ref(),
                "--config".as_ref(),
                config.as_os_str(),
            ],
            envs,
        )
    }

    /// The binary with `args` and extra environment variables.
    pub fn spawn_args_env(args: &[&std::ffi::OsStr], envs: &[(&str, &std::ffi::OsStr)]) -> Daemon {
        let mut cmd = Command::new(daemon_binary());
        cmd.args(args).envs(envs.iter().copied());
        Daemon::spawn_command(cmd)
    }

    /// `sasrelay --log-format json run --config <config>` with an open-file limit of `n` (soft
    /// and hard), set by util-linux's `prlimit`, which then runs the binary in its own process
    /// (so `pid` is the daemon's).
    pub fn spawn_with_open_files(config: &Path, n: u32) -> Daemon {
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={n}:{n}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_sasrelay"))
            .args(["--log-format", "json", "run", "--config"])
            .arg(config);
        Daemon::spawn_command(cmd)
    }

    /// `cmd` (the binary, or something that runs it) with the tests' environment, its stderr
    /// collected. `SASRELAY_LOG` and `NO_COLOR` are set unless `cmd` sets or removes them.
    pub fn spawn_command(mut cmd: Command) -> Daemon {
        let given: Vec<std::ffi::OsString> = cmd.get_envs().map(|(k, _)| k.to_owned()).collect();
        // "Poll done." (debug) tells the tests what each poll observed and enqueued.
        for (key, value) in [
            ("SASRELAY_LOG", "info,sasrelay::pipeline::poller=debug"),
            ("NO_COLOR", "1"),
        ] {
            if !given.iter().any(|k| k == key) {
                cmd.env(key, value);
            }
        }
        let mut child = cmd
            .env(SECRET_ENV, DEMO_ACCESS_KEY_SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
        let pid = child.id();
        let logs = Arc::new(LogState {
            lines: Mutex::new(Vec::new()),
            changed: watch::channel(0).0,
        });
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = logs.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[sasrelay {pid}] {line}");
                lock(&sink.lines).push(line);
                sink.changed.send_modify(|n| *n += 1);
            }
        });
        Daemon {
            child: Some(child),
            pid,
            logs,
            reader: Some(reader),
        }
    }

    /// Every log line so far.
    pub fn lines(&self) -> Vec<String> {
        lock(&self.logs.lines).clone()
    }

    /// Log lines whose `message` contains `needle`, parsed (an event's fields are at the top
    /// level of its JSON line).
    pub fn messages(&self, needle: &str) -> Vec<Value> {
        self.lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"].as_str().is_some_and(|m| m.contains(needle)))
            .collect()
    }

    /// Waits until a log line satisfies `pred` (parsed JSON; non-JSON lines as strings).
    pub async fn wait_log(
        &self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.logs.changed.subscribe();
        let mut checked = 0;
        loop {
            {
                let lines = lock(&self.logs.lines);
                for l in &lines[checked..] {
                    let v = serde_json::from_str::<Value>(l)
                        .unwrap_or_else(|_| Value::String(l.clone()));
                    if pred(&v) {
                        return;
                    }
                }
                checked = lines.len();
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => unreachable!("the sender lives in self"),
                Err(_) => {
                    panic!("timed out after {timeout:?} waiting for the daemon to log {what}")
                }
            }
        }
    }

    /// Waits for a log message containing `needle`.
    pub async fn wait_message(&self, needle: &str, timeout: Duration) {
        self.wait_log(needle, timeout, |v| {
            v["message"].as_str().is_some_and(|m| m.contains(needle))
        })
        .await
    }

    /// Waits for the process to exit (panics after `timeout`), then for its last log line.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("not yet waited for");
        let waited = tokio::task::spawn_blocking(move || {
            let status = child.wait();
            (child, status)
        });
        let (child, status) = match tokio::time::timeout(timeout, waited).await {
            Ok(joined) => joined.expect("wait task"),
            Err(_) => {
                kill_pid(self.pid, "KILL");
                panic!(
                    "sasrelay (pid {}) did not exit within {timeout:?}",
                    self.pid
                );
            }
        };
        drop(child);
        if let Some(reader) = self.reader.take() {
            tokio::task::spawn_blocking(move || reader.join())
                .await
                .expect("join")
                .expect("log reader");
        }
        status.expect("wait for sasrelay")
    }

    /// The process's memory so far, from `/proc/<pid>/status`: its peak resident set size
    /// (`VmHWM`) and how much of what is resident now are mapped files (`RssFile`: the binary's
    /// code, about 14 MiB for a release build and 35 MiB for a debug one), in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .unwrap_or_else(|e| panic!("read /proc/{}/status: {e}", self.pid));
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc/{}/status", self.pid))
        };
        (field("VmHWM:"), field("RssFile:"))
    }

    /// SIGTERM, then waits for the exit.
    pub async fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        kill_pid(self.pid, "TERM");
        self.wait_exit(timeout).await
    }

    /// SIGKILL (`Child::kill`), then reaps it.
    pub async fn kill9(&mut self) {
        if let Some(child) = self.child.as_mut() {
            child.kill().expect("SIGKILL");
        }
        self.wait_exit(Duration::from_secs(30)).await;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn kill_pid(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

// ---------------------------------------------------------------------------------------------
// Configuration and the simulator
// ---------------------------------------------------------------------------------------------

/// What goes into a generated config.
pub struct ConfigSpec<'a> {
    /// The simulator's `host:port`.
    pub sim: &'a str,
    /// Webhook URL.
    pub hook: &'a str,
    /// State directory.
    pub state: &'a Path,
    /// `baseline` or `notify`.
    pub initial_sync: &'a str,
    /// Extra lines in the `[[source]]` table (e.g. `domains = [...]`).
    pub source_extra: &'a str,
    /// The source's `poll` table. Default: every domain each second.
    pub poll: &'a str,
    /// Extra lines in `[daemon]` (e.g. `log = "warn"`).
    pub daemon_extra: &'a str,
    /// Extra lines in `[delivery]`.
    pub delivery_extra: &'a str,
    /// Extra tables at the end of the file (`[routing]`, `[[route]]`, …).
    pub tail: &'a str,
    /// The `[admin]` table's lines. Default: `listen = "127.0.0.1:0"` (an ephemeral port, so
    /// daemons of parallel tests never collide; the daemon logs the address it bound).
    pub admin: &'a str,
    /// The source's `calls_per_second`. Default 50: the simulator has no quota unless a test
    /// sets one, and tests poll every second.
    pub calls_per_second: u32,
}

impl<'a> ConfigSpec<'a> {
    /// Every domain polled each second, baseline first start, fast retries.
    pub fn new(sim: &'a str, hook: &'a str, state: &'a Path) -> Self {
        ConfigSpec {
            sim,
            hook,
            state,
            initial_sync: "baseline",
            source_extra: "",
            poll: r#"{ alerts = "1s", firewall = "1s", vulnerabilities = "1s", baseline = "1s" }"#,
            daemon_extra: "",
            delivery_extra: "",
            tail: "",
            admin: r#"listen = "127.0.0.1:0""#,
            calls_per_second: 50,
        }
    }

    /// Writes the file to `path` and returns it.
    pub fn write(&self, path: &Path) -> PathBuf {
        let text = format!(
            r#"[[source]]
calls_per_second = {calls_per_second}
name = "sim"
region = "cn-hangzhou"
endpoint = "http://{sim}"
credentials = {{ type = "access_key", access_key_id = "sasrelay-sim", access_key_secret = {{ env = "{SECRET_ENV}" }} }}
poll = {poll}
initial_sync = "{initial_sync}"
{source_extra}

[state]
directory = "{state}"

[daemon]
shutdown_grace = "5s"
{daemon_extra}

[delivery]
retry_initial_delay = "100ms"
retry_max_delay = "1s"
{delivery_extra}

[admin]
{admin}

[[sink]]
name = "hook"
type = "webhook"
url = "{hook}"

{tail}
"#,
            sim = self.sim,
            poll = self.poll,
            initial_sync = self.initial_sync,
            source_extra = self.source_extra,
            state = self.state.display(),
            daemon_extra = self.daemon_extra,
            calls_per_second = self.calls_per_second,
            delivery_extra = self.delivery_extra,
            admin = self.admin,
            hook = self.hook,
            tail = self.tail,
        );
        std::fs::write(path, text).expect("write config");
        path.to_path_buf()
    }
}

/// A simulator holding no finding at first: a test adds exactly those it counts.
pub async fn quiet_simulator() -> SimHandle {
    quiet_simulator_of(SimConfig::default().clusters).await
}

/// [`quiet_simulator`] with `clusters` clusters.
pub async fn quiet_simulator_of(clusters: usize) -> SimHandle {
    Simulator::start(SimConfig {
        clusters,
        initial: InitialFindings::NONE,
        ..SimConfig::default()
    })
    .await
    .expect("simulator")
}

/// Waits until every action in `actions` was called at least `at_least[i]` times.
pub async fn wait_calls(sim: &SimHandle, actions: &[(&str, u64)], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    // The simulator has no change notification for its counters; checking them on a short
    // interval is a wait on a condition, bounded by the deadline.
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        if actions.iter().all(|(a, n)| sim.call_count(a) >= *n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for simulator calls {actions:?}; calls: {:?}",
            sim.calls()
        );
        tick.tick().await;
    }
}

/// The current call count of each domain's first action.
pub fn domain_calls(sim: &SimHandle) -> [u64; 4] {
    DOMAIN_ACTIONS.map(|a| sim.call_count(a))
}

/// The four domains as the daemon's logs name them.
pub const DOMAINS: [&str; 4] = ["alerts", "vulnerabilities", "baseline", "firewall"];

impl Daemon {
    /// The daemon's "Poll done." lines (parsed) of `domain`.
    pub fn polls(&self, domain: &str) -> Vec<Value> {
        self.messages("Poll done.")
            .into_iter()
            .filter(|f| f["domain"] == domain)
            .collect()
    }

    /// Waits until every domain logged `more` completed polls beyond those logged now. With
    /// `more >= 2`, at least one of them started after this call.
    pub async fn wait_more_polls(&self, more: usize, timeout: Duration) {
        self.wait_more_polls_of(&DOMAINS, more, timeout).await
    }

    /// [`Daemon::wait_more_polls`] for some domains only.
    pub async fn wait_more_polls_of(&self, domains: &[&str], more: usize, timeout: Duration) {
        let want: Vec<usize> = domains.iter().map(|d| self.polls(d).len() + more).collect();
        let mut done = vec![0usize; domains.len()];
        self.wait_log(&format!("{more} more polls of {domains:?}"), timeout, |v| {
            if v["message"] == "Poll done."
                && let Some(i) = domains.iter().position(|d| v["domain"] == *d)
            {
                done[i] += 1;
            }
            done.iter().zip(&want).all(|(c, w)| c >= w)
        })
        .await
    }
}

/// The settings of a config `text` and its first `[[source]]` connected (secrets from files,
/// no environment), as the daemon would connect it.
pub async fn connect_first_source(
    text: &str,
) -> (
    sasrelay::config::Settings,
    Arc<sasrelay::sas::source::Source>,
) {
    let settings = sasrelay::config::parse(Path::new("t.toml"), text).unwrap();
    let ctx = sasrelay::credentials::CredentialContext::new(
        reqwest::Client::new(),
        CancellationToken::new(),
        tokio_util::task::TaskTracker::new(),
    );
    let source = sasrelay::sas::source::Source::connect(
        settings.sources[0].clone(),
        &sasrelay::credentials::env::MapEnv::new(),
        &ctx,
    )
    .await
    .unwrap();
    (settings, Arc::new(source))
}
