//! Races sasrelay against Alertmanager (issue 13, build point 6): the same N distinct findings
//! go through each into one counting webhook receiver in this process, for N = 1,000, 10,000
//! and 50,000, interleaved over rounds (who goes first rotates); then a 2,000-finding burst
//! into a receiver that answers after 30 ms. Prints one markdown table per receiver: rate, the
//! delivery phase's rate, CPU per delivered finding, peak RSS, disk per pending finding, lost,
//! duplicated and the ratios; then start to ready and idle RSS.
//!
//! `bash benches/race.sh [rounds] [arguments]` installs Alertmanager first (or says why it
//! cannot and races sasrelay alone); `cargo bench --bench race -- --help` lists the arguments.
//! Not a test: nothing asserts a figure, but a loss, a duplicate or a contestant that did not
//! finish within the deadline is printed as such.
//!
//! How each is measured:
//! - **sasrelay**: the real binary (`sasrelay run`) against the simulator in this process, which
//!   holds the N open alerts before the daemon starts (loading them is not timed). Timed from
//!   the first `/readyz` 200 to the last delivery, so the polls that read the N alerts are
//!   inside; the delivery phase alone is the first delivery to the last.
//! - **sasrelay, outbox drain**: the same, but the receiver refuses (503, `Retry-After: 1`) until
//!   sasrelay's outbox holds all N (untimed; the state directory is measured then: **disk per
//!   pending finding**); then it accepts, and the drain is timed from the first delivery (before
//!   it sasrelay waits out the last refusal's second) to the last. Delivery alone, whatever
//!   reading the simulator and the call budget cost; its peak RSS covers the fill.
//! - **Alertmanager**: timed from the first POST of the N alerts to `/api/v2/alerts` (batches of
//!   1,000) to the last delivery; `group_by: ['...']` makes one notification per alert.
//! - **CPU**: utime + stime of the contestant's process only (not the simulator, not this
//!   harness) over the timed phase, divided by N. **Peak RSS**: its `VmHWM` at the end. This
//!   harness's own CPU over the same phase (simulator, receiver, the POSTing client) is printed
//!   with each run, so a bottleneck here shows.
//! - The simulator runs on a thread and a runtime of its own here. Each sasrelay run prints its
//!   CPU per finding, how busy that thread was, when the polls had enqueued all N and how long
//!   sasrelay waited for its call budget (50 calls/s at most, 100 alerts a page: reading N
//!   takes N/5,000 s at least).
//! - **Start to ready**: process spawn to the first ready answer. **Idle RSS**: `VmRSS` once the
//!   process is ready and the receiver has seen nothing for 5 s.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use sasrelay::simulator::{
    DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET, Domain, InitialFindings, SimConfig, SimHandle,
    Simulator,
};
use serde_json::{Value, json};

const USAGE: &str = "cargo bench --bench race -- [options]

  --rounds R            interleaved rounds (default 3)
  --n A,B,C             burst sizes for the immediate receiver (default 1000,10000,50000)
  --slow-n N            burst size for the slow receiver, 0 to skip (default 2000)
  --delay-ms D          the slow receiver's answer delay (default 30)
  --alertmanager PATH   the Alertmanager binary (default: alertmanager or
                        prometheus-alertmanager on PATH)
  --no-alertmanager     race sasrelay alone
  --deadline-s S        a contestant not done after S seconds is reported unfinished (default 600)
  --idle-s S            quiet time before idle RSS is read (default 5)
  --sink-extra TEXT     lines added to sasrelay's [[sink]] table (e.g. 'concurrency = 16')
  --no-drain            skip sasrelay's outbox drain (and so the disk figure)
  --no-poll             skip sasrelay polling the simulator (e.g. to profile the drain alone)
  --keep-state DIR      copy the state directory of each filled outbox to DIR/<N>-<round>
                        (to study what the disk figure is made of)";

/// Alerts per POST to Alertmanager.
const AM_BATCH: usize = 1_000;
/// How long a process may take to answer ready, and to exit after SIGTERM.
const PROCESS_WAIT: Duration = Duration::from_secs(60);

fn main() {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("race: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(race(&options));
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/// What to race, from the command line.
struct Options {
    rounds: usize,
    ns: Vec<usize>,
    slow_n: usize,
    delay: Duration,
    alertmanager: Option<PathBuf>,
    deadline: Duration,
    idle: Duration,
    sink_extra: String,
    drain: bool,
    poll: bool,
    keep_state: Option<PathBuf>,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut o = Options {
            rounds: 3,
            ns: vec![1_000, 10_000, 50_000],
            slow_n: 2_000,
            delay: Duration::from_millis(30),
            alertmanager: None,
            deadline: Duration::from_secs(600),
            idle: Duration::from_secs(5),
            sink_extra: String::new(),
            drain: true,
            poll: true,
            keep_state: None,
        };
        let mut search_alertmanager = true;
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                // `cargo bench` passes it to every bench binary.
                "--bench" => {}
                "--rounds" => o.rounds = number(&value()?)?,
                "--n" => o.ns = value()?.split(',').map(number).collect::<Result<_, _>>()?,
                "--slow-n" => o.slow_n = number(&value()?)?,
                "--delay-ms" => o.delay = Duration::from_millis(number(&value()?)? as u64),
                "--alertmanager" => o.alertmanager = Some(PathBuf::from(value()?)),
                "--no-alertmanager" => search_alertmanager = false,
                "--deadline-s" => o.deadline = Duration::from_secs(number(&value()?)? as u64),
                "--idle-s" => o.idle = Duration::from_secs(number(&value()?)? as u64),
                "--sink-extra" => o.sink_extra = value()?,
                "--no-drain" => o.drain = false,
                "--no-poll" => o.poll = false,
                "--keep-state" => o.keep_state = Some(PathBuf::from(value()?)),
                "--help" | "-h" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if !search_alertmanager {
            o.alertmanager = None;
        } else if o.alertmanager.is_none() {
            o.alertmanager = on_path("alertmanager").or_else(|| on_path("prometheus-alertmanager"));
        }
        Ok(o)
    }
}

/// `50000`, `50_000`.
fn number(text: &str) -> Result<usize, String> {
    text.trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))
}

/// The first executable called `name` on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------------------------
// The counting receiver
// ---------------------------------------------------------------------------------------------

/// How the receiver answers.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// 204 after this long (a tokio sleep, so many requests wait at once).
    After(Duration),
    /// 503 with `Retry-After: 1`: nothing is delivered, everything waits in the outbox.
    Refuse,
}

/// What the receiver saw so far.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    /// HTTP requests, refused ones included.
    requests: u64,
    /// Findings delivered: one per sasrelay request, one per alert in an Alertmanager notification.
    deliveries: u64,
    /// Distinct ids among them.
    distinct: usize,
    /// The first delivery.
    first: Option<Instant>,
    /// When the last id never seen before arrived: the burst's last delivery.
    last_new: Option<Instant>,
    /// The last request of any kind.
    last_any: Option<Instant>,
}

#[derive(Default)]
struct Tally {
    counts: Counts,
    ids: HashSet<String>,
}

struct Shared {
    answer: Mutex<Answer>,
    tally: Mutex<Tally>,
}

/// One webhook receiver on 127.0.0.1 counting what sasrelay (`/hook`) and Alertmanager (`/am`)
/// deliver; stops serving when dropped.
struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(answer: Answer) -> Result<Receiver, String> {
        let shared = Arc::new(Shared {
            answer: Mutex::new(answer),
            tally: Mutex::new(Tally::default()),
        });
        let app = Router::new()
            .route("/hook", post(receive))
            .route("/am", post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind the receiver: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { addr, shared, task })
    }

    fn counts(&self) -> Counts {
        lock(&self.shared.tally).counts
    }

    /// Answers `answer` from now on.
    fn set_answer(&self, answer: Answer) {
        *lock(&self.shared.answer) = answer;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(rx): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = *lock(&rx.answer);
    match answer {
        Answer::Refuse => {
            count(&rx, &[]);
            // The shortest wait sasrelay honours, so a refused entry is due again soon after
            // the receiver starts accepting.
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
            )
                .into_response()
        }
        Answer::After(delay) => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            // Counted once answered: that is when the sender sees the delivery done.
            count(&rx, &delivered_ids(&headers, &body));
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

fn count(rx: &Shared, ids: &[String]) {
    let now = Instant::now();
    let mut tally = lock(&rx.tally);
    let Tally { counts, ids: seen } = &mut *tally;
    counts.requests += 1;
    counts.last_any = Some(now);
    for id in ids {
        counts.deliveries += 1;
        counts.first.get_or_insert(now);
        if seen.insert(id.clone()) {
            counts.distinct += 1;
            counts.last_new = Some(now);
        }
    }
}

/// sasrelay: the `webhook-id` header, else the payload's `id`. Alertmanager: the `id` label of
/// every alert in the notification.
fn delivered_ids(headers: &HeaderMap, body: &[u8]) -> Vec<String> {
    if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
        return vec![id.to_string()];
    }
    let doc: Value = serde_json::from_slice(body).unwrap_or_default();
    if let Some(alerts) = doc["alerts"].as_array() {
        return alerts
            .iter()
            .map(|a| a["labels"]["id"].as_str().unwrap_or("?").to_string())
            .collect();
    }
    vec![doc["id"].as_str().unwrap_or("?").to_string()]
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/// A contestant's process, its output in a log file; killed when dropped, whatever the path out.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> Result<Proc, String> {
        let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("start {name} ({:?}): {e}", cmd.get_program()))?;
        Ok(Proc {
            name,
            child,
            log: log.to_path_buf(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// utime + stime so far, in µs.
    fn cpu_us(&self) -> Result<u64, String> {
        cpu_us_of(&self.pid().to_string())
    }

    /// A `kB` field of `/proc/<pid>/status` (`VmHWM:`, `VmRSS:`).
    fn status_kib(&self, field: &str) -> Result<u64, String> {
        let path = format!("/proc/{}/status", self.pid());
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        text.lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or(format!("no {field} in {path}"))
    }

    /// Fails naming the exit and the log's tail when the process is gone.
    fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited early ({status}); the end of its log:\n{}",
                self.name,
                self.log_tail()
            )),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// SIGTERM, then waits (SIGKILL after [`PROCESS_WAIT`]); says how it ended.
    async fn stop(&mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + PROCESS_WAIT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return "exited cleanly".into(),
                Ok(Some(status)) => return format!("exit after SIGTERM: {status}"),
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return format!("did not exit within {PROCESS_WAIT:?} of SIGTERM: killed");
                }
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// utime + stime of `/proc/<pid>/stat` (`pid` may be `self`), in µs.
fn cpu_us_of(pid: &str) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    // The command name (field 2) may hold spaces; the fields after it are plain. Counting
    // from field 3 (the state), utime and stime are fields 14 and 15.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => Ok((u + s) * 1_000_000 / clock_ticks()),
        _ => Err(format!("{path}: no utime and stime")),
    }
}

/// `CLK_TCK` (clock ticks per second), asked of `getconf` once; 100 when it cannot say.
fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// A port free on 127.0.0.1 right now (bound, then released).
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("find a free port: {e}"))
}

fn temp_dir() -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix("sasrelay-race-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))
}

/// A contestant's process, ready.
struct Started {
    proc: Proc,
    /// `http://127.0.0.1:<port>`: sasrelay's admin API, Alertmanager's API.
    url: String,
    /// Spawn to the first ready answer.
    start_to_ready: Duration,
    /// Its files (config, log, state); removed when dropped.
    dir: tempfile::TempDir,
}

/// Starts `cmd` (its log `<name>.log` in `dir`) and waits until `ready_path` on `port` answers
/// 200.
async fn spawn_ready(
    name: &'static str,
    cmd: Command,
    dir: tempfile::TempDir,
    port: u16,
    ready_path: &str,
) -> Result<Started, String> {
    let url = format!("http://127.0.0.1:{port}");
    let spawned = Instant::now();
    let mut proc = Proc::spawn(name, cmd, &dir.path().join(format!("{name}.log")))?;
    wait_ready(&http(), &format!("{url}{ready_path}"), &mut proc).await?;
    Ok(Started {
        proc,
        url,
        start_to_ready: spawned.elapsed(),
        dir,
    })
}

/// Polls `url` until it answers 200 (the process must stay up meanwhile).
async fn wait_ready(client: &reqwest::Client, url: &str, proc: &mut Proc) -> Result<(), String> {
    let deadline = Instant::now() + PROCESS_WAIT;
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status() == reqwest::StatusCode::OK
        {
            return Ok(());
        }
        proc.check_alive()?;
        if Instant::now() > deadline {
            return Err(format!("{url} not ready within {PROCESS_WAIT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until the receiver has `n` distinct ids: `Ok(true)`, or `Ok(false)` at `deadline`.
async fn wait_distinct(
    rx: &Receiver,
    n: usize,
    proc: &mut Proc,
    deadline: Instant,
) -> Result<bool, String> {
    loop {
        if rx.counts().distinct >= n {
            return Ok(true);
        }
        proc.check_alive()?;
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the receiver has seen nothing for `quiet`, counting from `since`.
async fn wait_quiet(rx: &Receiver, since: Instant, quiet: Duration) {
    loop {
        let last = rx.counts().last_any.map_or(since, |t| t.max(since));
        if last.elapsed() >= quiet {
            return;
        }
        tokio::time::sleep(quiet - last.elapsed()).await;
    }
}

// ---------------------------------------------------------------------------------------------
// One run
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Contestant {
    Alertmanager,
    /// sasrelay timed from ready: reading the alerts from the simulator, then delivering.
    Sasrelay,
    /// sasrelay delivering an outbox filled beforehand (untimed): delivery alone, whatever the
    /// simulator and the call budget cost.
    Drain,
}

impl Contestant {
    fn name(self) -> &'static str {
        match self {
            Contestant::Alertmanager => "Alertmanager",
            Contestant::Sasrelay => "sasrelay",
            Contestant::Drain => "sasrelay, outbox drain",
        }
    }
}

/// One contestant's burst of `n`.
struct Run {
    n: usize,
    /// Spawn to the first ready answer.
    start_to_ready: Duration,
    /// Start of the timed phase.
    started: Instant,
    counts: Counts,
    /// All `n` arrived before the deadline.
    finished: bool,
    /// The contestant's CPU over the timed phase, µs.
    cpu_us: u64,
    peak_rss_kib: u64,
    /// This harness's CPU over the timed phase, µs.
    harness_cpu_us: u64,
    /// The state directory with all `n` waiting (the drain, measured before it starts).
    disk: Option<Disk>,
    /// Contestant-specific figures for the run's line.
    detail: String,
}

impl Run {
    fn seconds(&self) -> Option<f64> {
        let last = self.counts.last_new?;
        self.finished
            .then(|| last.duration_since(self.started).as_secs_f64())
    }

    fn rate(&self) -> Option<f64> {
        self.seconds().map(|s| self.n as f64 / s)
    }

    fn phase_rate(&self) -> Option<f64> {
        let phase = self.counts.last_new?.duration_since(self.counts.first?);
        (self.finished && !phase.is_zero()).then(|| self.n as f64 / phase.as_secs_f64())
    }

    fn cpu_per_finding(&self) -> f64 {
        self.cpu_us as f64 / self.n.max(1) as f64
    }

    fn lost(&self) -> usize {
        self.n.saturating_sub(self.counts.distinct)
    }

    fn duplicated(&self) -> u64 {
        self.counts.deliveries - self.counts.distinct as u64
    }

    fn line(&self) -> String {
        let rate = match (self.rate(), self.phase_rate()) {
            (Some(r), Some(p)) => format!(
                "{}/s in {:.2} s (delivery phase {}/s)",
                thousands(r),
                self.seconds().unwrap_or(0.0),
                thousands(p)
            ),
            _ => format!(
                "NOT FINISHED: {} of {} after {:.0} s",
                self.counts.distinct,
                self.n,
                self.started.elapsed().as_secs_f64()
            ),
        };
        format!(
            "{rate}, CPU {:.0} µs/finding, peak RSS {:.1} MiB, lost {}, duplicated {}, start to ready {:.1} ms, harness CPU {:.0} µs/finding; {}",
            self.cpu_per_finding(),
            self.peak_rss_kib as f64 / 1024.0,
            self.lost(),
            self.duplicated(),
            self.start_to_ready.as_secs_f64() * 1e3,
            self.harness_cpu_us as f64 / self.n.max(1) as f64,
            self.detail
        )
    }
}

/// Where a timed phase began: the instant, and the CPU then of the contestant and of this
/// harness (µs).
struct Start {
    at: Instant,
    cpu_us: u64,
    harness_cpu_us: u64,
}

impl Start {
    fn now(proc: &Proc) -> Result<Start, String> {
        Ok(Start {
            cpu_us: proc.cpu_us()?,
            harness_cpu_us: cpu_us_of("self")?,
            at: Instant::now(),
        })
    }
}

/// Waits for all `n` from `start` (or the deadline) and reads the figures; the process keeps
/// running (the caller may ask it more, then stops it).
async fn finish(
    rx: &Receiver,
    proc: &mut Proc,
    n: usize,
    start: &Start,
    start_to_ready: Duration,
    deadline: Duration,
) -> Result<Run, String> {
    let finished = wait_distinct(rx, n, proc, start.at + deadline).await?;
    Ok(Run {
        n,
        start_to_ready,
        started: start.at,
        counts: rx.counts(),
        finished,
        cpu_us: proc.cpu_us()?.saturating_sub(start.cpu_us),
        peak_rss_kib: proc.status_kib("VmHWM:")?,
        harness_cpu_us: cpu_us_of("self")?.saturating_sub(start.harness_cpu_us),
        disk: None,
        detail: String::new(),
    })
}

// ---------------------------------------------------------------------------------------------
// sasrelay
// ---------------------------------------------------------------------------------------------

/// The simulator, alone on a thread and a runtime of its own, so its CPU is told apart from
/// the receiver's and the one thread's saturation shows: stopped when dropped.
struct SimThread {
    sim: SimHandle,
    /// `self/task/<tid>`, for [`cpu_us_of`].
    task: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SimThread {
    /// A simulator holding `n` open alerts and nothing else (see [`open_alerts`]).
    fn start(n: usize) -> Result<SimThread, String> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let runtime = match runtime {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("simulator runtime: {e}")));
                    return;
                }
            };
            runtime.block_on(async move {
                let task = std::fs::read_link("/proc/thread-self")
                    .ok()
                    .and_then(|p| Some(p.file_name()?.to_str()?.to_string()))
                    .map_or("self".into(), |tid| format!("self/task/{tid}"));
                let _ = ready_tx.send(open_alerts(n).await.map(|sim| (sim, task)));
                let _ = stopped.await;
            });
        });
        let (sim, task) = ready_rx
            .recv()
            .map_err(|_| "the simulator thread ended before starting".to_string())??;
        Ok(SimThread {
            sim,
            task,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    fn cpu_us(&self) -> Result<u64, String> {
        cpu_us_of(&self.task)
    }
}

impl Drop for SimThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A simulator holding `n` open alerts and nothing else, their latest occurrences spread over
/// the three days before now, at least a second apart (as the backlog tests load it:
/// `InitialFindings` would mark about 3 in 10 handled, and caps totals at 10,000).
async fn open_alerts(n: usize) -> Result<SimHandle, String> {
    let sim = Simulator::start(SimConfig {
        initial: InitialFindings::NONE,
        ..SimConfig::default()
    })
    .await
    .map_err(|e| format!("simulator: {e}"))?;
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let step = (3 * 24 * 3600 * 1000 / n.max(1) as i64).max(1000);
    for i in 0..n as i64 {
        let at = now_ms - 60_000 - i * step;
        sim.add_finding(Domain::Alert, None, json!({ "LastTimeStamp": at }))
            .map_err(|e| format!("simulator: add alert {i}: {e}"))?;
    }
    Ok(sim)
}

/// `sasrelay.toml` in `dir`: the simulator's alerts (every one notified at first start, the call
/// budget at its maximum), one webhook sink to `hook`, the admin API on `admin_port`; `tail`
/// ends the file (lines of the sink's table, then other tables).
fn sasrelay_config(
    dir: &Path,
    sim: &SimHandle,
    hook: SocketAddr,
    admin_port: u16,
    tail: &str,
) -> Result<PathBuf, String> {
    let secret = dir.join("secret");
    write_private(&secret, DEMO_ACCESS_KEY_SECRET)?;
    let text = format!(
        r#"[[source]]
name = "sim"
region = "cn-hangzhou"
endpoint = "{endpoint}"
calls_per_second = 50
domains = ["alerts"]
poll = {{ alerts = "1s" }}
initial_sync = "notify"
credentials = {{ type = "access_key", access_key_id = "{DEMO_ACCESS_KEY_ID}", access_key_secret = {{ file = "{secret}" }} }}

[state]
directory = "{state}"

[admin]
listen = "127.0.0.1:{admin_port}"

[[sink]]
name = "hook"
type = "webhook"
url = "http://{hook}/hook"
{tail}
"#,
        endpoint = sim.base_url(),
        secret = secret.display(),
        state = dir.join("state").display(),
    );
    let path = dir.join("sasrelay.toml");
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Starts `sasrelay run` against `sim`, delivering to `rx`; returns once `/readyz` says 200.
async fn start_sasrelay(
    o: &Options,
    sim: &SimHandle,
    rx: &Receiver,
    delivery: &str,
) -> Result<Started, String> {
    let dir = temp_dir()?;
    let port = free_port()?;
    let sink = format!("{}\n{delivery}", o.sink_extra);
    let config = sasrelay_config(dir.path(), sim, rx.addr, port, &sink)?;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sasrelay"));
    // JSON lines, with the poller's "Poll done." (one a poll) for the poll phase's end.
    cmd.args(["--log-format", "json", "run", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .env("SASRELAY_LOG", "info,sasrelay::pipeline::poller=debug");
    spawn_ready("sasrelay", cmd, dir, port, "/readyz").await
}

fn http() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default()
        })
        .clone()
}

/// sasrelay delivers `n` alerts waiting in its simulator to a receiver answering `answer`.
async fn race_sasrelay(o: &Options, n: usize, answer: Answer) -> Result<Run, String> {
    let loading = Instant::now();
    let sim = SimThread::start(n)?;
    let loaded = loading.elapsed();
    let rx = Receiver::start(answer).await?;
    let mut s = start_sasrelay(o, &sim.sim, &rx, "").await?;
    let started_wall = time::OffsetDateTime::now_utc();
    let start = Start::now(&s.proc)?;
    let sim_cpu0 = sim.cpu_us()?;
    let mut run = finish(&rx, &mut s.proc, n, &start, s.start_to_ready, o.deadline).await?;
    let sim_cpu = sim.cpu_us()?.saturating_sub(sim_cpu0);
    let budget_wait = scrape(
        &s.url,
        r#"sasrelay_sas_call_wait_seconds_total{action="DescribeSuspEvents"}"#,
    )
    .await;
    let stopped = s.proc.stop().await;
    let since = |t: Option<Instant>| t.map(|t| t.duration_since(start.at).as_secs_f64());
    let polls = polls_until(&s.proc.log, n, started_wall);
    run.detail = format!(
        "first delivery after {}, {}, {} waiting for the call budget; simulator: {} DescribeSuspEvents calls, {:.0} µs CPU per finding (its thread busy {:.0}% of the timed phase), loading it took {:.2} s (untimed); {stopped}",
        since(run.counts.first).map_or("never".into(), |s| format!("{s:.2} s")),
        polls.map_or(
            format!("its log does not show all {n} enqueued"),
            |(secs, polls, pages)| {
                format!("all {n} enqueued after {secs:.2} s ({polls} polls, {pages} pages)")
            }
        ),
        budget_wait.map_or_else(|e| e, |w| format!("{:.2} s", w.unwrap_or(0.0))),
        sim.sim.call_count("DescribeSuspEvents"),
        sim_cpu as f64 / n.max(1) as f64,
        since(run.counts.last_new).map_or(0.0, |s| sim_cpu as f64 / 1e4 / s),
        loaded.as_secs_f64(),
    );
    Ok(run)
}

/// From sasrelay's JSON log (its poller's "Poll done." lines): seconds from `started` until
/// the poll after which `n` events had been enqueued, with the number of polls and pages so far.
fn polls_until(log: &Path, n: usize, started: time::OffsetDateTime) -> Option<(f64, u64, u64)> {
    use time::format_description::well_known::Rfc3339;
    let text = std::fs::read_to_string(log).ok()?;
    let (mut enqueued, mut polls, mut pages) = (0, 0, 0);
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["message"] != "Poll done." {
            continue;
        }
        enqueued += v["enqueued"].as_u64().unwrap_or(0);
        polls += 1;
        pages += v["pages"].as_u64().unwrap_or(0);
        if enqueued >= n as u64 {
            let at = time::OffsetDateTime::parse(v["timestamp"].as_str()?, &Rfc3339).ok()?;
            return Some(((at - started).as_seconds_f64(), polls, pages));
        }
    }
    None
}

/// Bytes under the state directory once sasrelay's outbox holds `n` undeliverable findings.
#[derive(Clone, Copy, Debug)]
struct Disk {
    /// Sum of file sizes.
    bytes: u64,
    /// Sum of allocated blocks.
    allocated: u64,
}

/// Retries soon and often while the receiver refuses, so the filled outbox is due at once when
/// it starts accepting.
const FILL_DELIVERY: &str =
    "[delivery]\nretry_initial_delay = \"100ms\"\nretry_max_delay = \"1s\"\n";

/// sasrelay's outbox filled with `n` findings while the receiver refuses (untimed; the state
/// directory is measured then), then delivered once it accepts: timed from the switch.
async fn race_drain(o: &Options, n: usize) -> Result<Run, String> {
    let sim = SimThread::start(n)?;
    let rx = Receiver::start(Answer::Refuse).await?;
    let mut s = start_sasrelay(o, &sim.sim, &rx, FILL_DELIVERY).await?;
    let filling = Instant::now();
    wait_outbox(&mut s, n, o.deadline).await?;
    let filled = filling.elapsed();
    let (bytes, allocated) = du(&s.dir.path().join("state"));
    if let Some(keep) = &o.keep_state {
        keep_state(&s.dir.path().join("state"), keep, n)?;
    }
    let refused = rx.counts().requests;
    let start = Start::now(&s.proc)?;
    rx.set_answer(Answer::After(Duration::ZERO));
    let mut run = finish(&rx, &mut s.proc, n, &start, s.start_to_ready, o.deadline).await?;
    let stopped = s.proc.stop().await;
    run.disk = Some(Disk { bytes, allocated });
    run.detail = format!(
        "outbox filled in {:.2} s (untimed; {refused} refused attempts meanwhile), state directory {:.1} MiB; the first delivery came {:.2} s after the receiver started accepting (the retry wait after the last 503, not timed); {stopped}",
        filled.as_secs_f64(),
        bytes as f64 / 1_048_576.0,
        run.counts
            .first
            .map_or(0.0, |t| t.duration_since(start.at).as_secs_f64()),
    );
    // Timed from the first delivery: before it, sasrelay only waits out the refusal's
    // `Retry-After` (CPU is counted from the switch; it spends next to none meanwhile).
    if let Some(first) = run.counts.first {
        run.started = first;
    }
    Ok(run)
}

/// Copies the filled state directory to `keep`/`<n>-<k>` (the first `k` free).
fn keep_state(state: &Path, keep: &Path, n: usize) -> Result<(), String> {
    let to = (1..)
        .map(|k| keep.join(format!("{n}-{k}")))
        .find(|p| !p.exists())
        .expect("a free name");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(state)
        .arg(&to)
        .status()
        .map_err(|e| format!("cp: {e}"))?;
    match copied.success() {
        true => Ok(()),
        false => Err(format!(
            "copying {} to {} failed",
            state.display(),
            to.display()
        )),
    }
}

/// Waits until sasrelay's outbox holds `n`.
async fn wait_outbox(s: &mut Started, n: usize, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let depth = scrape(&s.url, r#"sasrelay_outbox_depth{sink="hook"}"#)
            .await?
            .unwrap_or(0.0);
        if depth >= n as f64 {
            return Ok(());
        }
        s.proc.check_alive()?;
        if Instant::now() > deadline {
            return Err(format!("the outbox held {depth} of {n} after {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The value of the series `series` (name and labels, as printed) in sasrelay's `/metrics`.
async fn scrape(admin: &str, series: &str) -> Result<Option<f64>, String> {
    let url = format!("{admin}/metrics");
    let text = http()
        .get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("{url}: {e}"))?
        .text()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok()))
}

/// (Sum of file sizes, sum of allocated blocks) under `dir`.
fn du(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut sums = (0, 0);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            let (b, a) = du(&entry.path());
            sums = (sums.0 + b, sums.1 + a);
        } else {
            sums = (sums.0 + meta.len(), sums.1 + meta.blocks() * 512);
        }
    }
    sums
}

// ---------------------------------------------------------------------------------------------
// Alertmanager
// ---------------------------------------------------------------------------------------------

/// `am.yml` in `dir`: one notification per alert, sent at once, to `hook`'s `/am`.
fn alertmanager_config(dir: &Path, hook: SocketAddr) -> Result<PathBuf, String> {
    let text = format!(
        "route:
  receiver: count
  group_by: ['...']
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 24h
receivers:
  - name: count
    webhook_configs:
      - url: http://{hook}/am
        send_resolved: false
"
    );
    let path = dir.join("am.yml");
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Starts `bin` (no cluster gossip) delivering to `rx`; returns once `/-/ready` says 200.
async fn start_alertmanager(bin: &Path, rx: &Receiver) -> Result<Started, String> {
    let dir = temp_dir()?;
    let port = free_port()?;
    let config = alertmanager_config(dir.path(), rx.addr)?;
    let mut cmd = Command::new(bin);
    cmd.arg("--config.file")
        .arg(&config)
        .arg("--storage.path")
        .arg(dir.path().join("data"))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .current_dir(dir.path());
    spawn_ready("alertmanager", cmd, dir, port, "/-/ready").await
}

/// The bodies of the POSTs: `n` alerts `{alertname: race, id: <i>}` firing for an hour, in
/// batches of [`AM_BATCH`].
fn alert_batches(n: usize) -> Vec<String> {
    use time::format_description::well_known::Rfc3339;
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let (starts, ends) = (fmt(now), fmt(now + time::Duration::hours(1)));
    (0..n)
        .step_by(AM_BATCH)
        .map(|from| {
            let alerts: Vec<Value> = (from..(from + AM_BATCH).min(n))
                .map(|i| {
                    json!({
                        "labels": { "alertname": "race", "id": i.to_string() },
                        "startsAt": starts,
                        "endsAt": ends,
                    })
                })
                .collect();
            Value::Array(alerts).to_string()
        })
        .collect()
}

/// Alertmanager is sent `n` alerts and notifies a receiver answering `answer`.
async fn race_alertmanager(
    o: &Options,
    bin: &Path,
    n: usize,
    answer: Answer,
) -> Result<Run, String> {
    let rx = Receiver::start(answer).await?;
    let mut am = start_alertmanager(bin, &rx).await?;
    let batches = alert_batches(n);
    let url = format!("{}/api/v2/alerts", am.url);
    let start = Start::now(&am.proc)?;
    for body in batches {
        http()
            .post(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("POST {url}: {e}"))?;
    }
    let posted = start.at.elapsed();
    let mut run = finish(&rx, &mut am.proc, n, &start, am.start_to_ready, o.deadline).await?;
    let stopped = am.proc.stop().await;
    run.detail = format!(
        "POSTing took {:.2} s, {} notifications; {stopped}",
        posted.as_secs_f64(),
        run.counts.requests
    );
    Ok(run)
}

// ---------------------------------------------------------------------------------------------
// Idle
// ---------------------------------------------------------------------------------------------

/// Start to ready and resident set once idle.
#[derive(Clone, Copy, Debug)]
struct Idle {
    start_to_ready: Duration,
    rss_kib: u64,
}

/// sasrelay over an empty simulator, idle.
async fn idle_sasrelay(o: &Options) -> Result<Idle, String> {
    let sim = SimThread::start(0)?;
    let rx = Receiver::start(Answer::After(Duration::ZERO)).await?;
    let s = start_sasrelay(o, &sim.sim, &rx, "").await?;
    idle_of(s, &rx, o.idle).await
}

/// Alertmanager with no alert, idle.
async fn idle_alertmanager(o: &Options, bin: &Path) -> Result<Idle, String> {
    let rx = Receiver::start(Answer::After(Duration::ZERO)).await?;
    let am = start_alertmanager(bin, &rx).await?;
    idle_of(am, &rx, o.idle).await
}

/// VmRSS of `started` once `rx` has seen nothing for `quiet`; then stops it.
async fn idle_of(mut started: Started, rx: &Receiver, quiet: Duration) -> Result<Idle, String> {
    wait_quiet(rx, Instant::now(), quiet).await;
    started.proc.check_alive()?;
    let rss_kib = started.proc.status_kib("VmRSS:")?;
    started.proc.stop().await;
    Ok(Idle {
        start_to_ready: started.start_to_ready,
        rss_kib,
    })
}

// ---------------------------------------------------------------------------------------------
// The race and its tables
// ---------------------------------------------------------------------------------------------

/// Which receiver a run delivered to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Immediate,
    Slow,
}

/// Every run, keyed by (mode, N, contestant), in round order.
type Results = BTreeMap<(Mode, usize, Contestant), Vec<Result<Run, String>>>;

async fn race(o: &Options) {
    match &o.alertmanager {
        Some(bin) => println!("race: Alertmanager is {}", bin.display()),
        None => println!(
            "race: no Alertmanager (not on PATH, or --no-alertmanager): racing sasrelay alone"
        ),
    }
    println!(
        "race: sasrelay is {}; {} round(s), N = {:?}, then N = {} into a receiver answering after {} ms",
        env!("CARGO_BIN_EXE_sasrelay"),
        o.rounds,
        o.ns,
        o.slow_n,
        o.delay.as_millis()
    );
    let mut results = Results::new();
    let mut idle: BTreeMap<Contestant, Vec<Result<Idle, String>>> = BTreeMap::new();
    for round in 0..o.rounds {
        for &n in &o.ns {
            race_round(o, round, n, Mode::Immediate, &mut results).await;
        }
        if o.slow_n > 0 {
            race_round(o, round, o.slow_n, Mode::Slow, &mut results).await;
        }
        measure_idle(o, round, &mut idle).await;
    }
    print_tables(o, &results, &idle);
}

/// Every contestant at `n`, in an order that rotates with the round, so none always goes first.
async fn race_round(o: &Options, round: usize, n: usize, mode: Mode, results: &mut Results) {
    let mut order = Vec::new();
    if o.poll {
        order.push(Contestant::Sasrelay);
    }
    if o.alertmanager.is_some() {
        order.push(Contestant::Alertmanager);
    }
    // The drain measures delivery alone; into the slow receiver that is what the race measures.
    if o.drain && mode == Mode::Immediate {
        order.push(Contestant::Drain);
    }
    if order.is_empty() {
        return;
    }
    let turn = round % order.len();
    order.rotate_left(turn);
    let answer = match mode {
        Mode::Immediate => Answer::After(Duration::ZERO),
        Mode::Slow => Answer::After(o.delay),
    };
    for who in order {
        let run = match (who, &o.alertmanager) {
            (Contestant::Alertmanager, Some(bin)) => race_alertmanager(o, bin, n, answer).await,
            (Contestant::Drain, _) => race_drain(o, n).await,
            _ => race_sasrelay(o, n, answer).await,
        };
        let what = format!("round {} · {mode:?} · N = {n} · {}", round + 1, who.name());
        match &run {
            Ok(r) => println!("{what}: {}", r.line()),
            Err(e) => println!("{what}: FAILED: {e}"),
        }
        results.entry((mode, n, who)).or_default().push(run);
    }
}

async fn measure_idle(
    o: &Options,
    round: usize,
    idle: &mut BTreeMap<Contestant, Vec<Result<Idle, String>>>,
) {
    let mut measured = vec![(Contestant::Sasrelay, idle_sasrelay(o).await)];
    if let Some(bin) = &o.alertmanager {
        measured.push((Contestant::Alertmanager, idle_alertmanager(o, bin).await));
    }
    for (who, result) in measured {
        match &result {
            Ok(i) => println!(
                "round {} · idle · {}: start to ready {:.1} ms, idle RSS {:.1} MiB",
                round + 1,
                who.name(),
                i.start_to_ready.as_secs_f64() * 1e3,
                i.rss_kib as f64 / 1024.0
            ),
            Err(e) => println!("round {} · idle · {}: FAILED: {e}", round + 1, who.name()),
        }
        idle.entry(who).or_default().push(result);
    }
}

fn print_tables(
    o: &Options,
    results: &Results,
    idle: &BTreeMap<Contestant, Vec<Result<Idle, String>>>,
) {
    let rounds = o.rounds;
    println!("\n### Immediate receiver ({rounds} interleaved round(s); ranges are min–max)\n");
    print_mode(results, Mode::Immediate);
    if o.slow_n > 0 {
        println!(
            "\n### Receiver answering after {} ms ({rounds} round(s))\n",
            o.delay.as_millis()
        );
        print_mode(results, Mode::Slow);
    }
    println!("\n### Start and idle ({rounds} round(s))\n");
    print_idle(results, idle);
    let failures: Vec<String> = results
        .iter()
        .flat_map(|((mode, n, who), runs)| {
            runs.iter().filter_map(move |r| {
                r.as_ref()
                    .err()
                    .map(|e| format!("- {mode:?}, N = {n}, {}: {e}", who.name()))
            })
        })
        .collect();
    if !failures.is_empty() {
        println!("\nFailed runs:\n{}", failures.join("\n"));
    }
}

const HEADER: &str = "| N | contestant | rate /s | delivery phase /s | CPU µs per finding | peak RSS MiB | disk KiB per pending finding | lost | duplicated |
|---:|---|---:|---:|---:|---:|---:|---:|---:|";

fn print_mode(results: &Results, mode: Mode) {
    println!("{HEADER}");
    let ns: std::collections::BTreeSet<usize> = results
        .keys()
        .filter(|k| k.0 == mode)
        .map(|k| k.1)
        .collect();
    for n in ns {
        let runs = |who| results.get(&(mode, n, who)).map_or(&[][..], Vec::as_slice);
        let am = runs(Contestant::Alertmanager);
        for who in [
            Contestant::Alertmanager,
            Contestant::Sasrelay,
            Contestant::Drain,
        ] {
            if !runs(who).is_empty() {
                println!("{}", contestant_row(n, who, runs(who)));
            }
        }
        for who in [Contestant::Sasrelay, Contestant::Drain] {
            if !am.is_empty() && !runs(who).is_empty() {
                println!("{}", ratio_row(n, who, runs(who), am));
            }
        }
    }
}

/// One contestant's row: ranges over its runs; unfinished and failed runs said in the rate cell.
fn contestant_row(n: usize, who: Contestant, runs: &[Result<Run, String>]) -> String {
    let ok: Vec<&Run> = runs.iter().filter_map(|r| r.as_ref().ok()).collect();
    let per_finding_kib = |bytes: u64| bytes as f64 / 1024.0 / n.max(1) as f64;
    let disk_of = |f: fn(&Disk) -> u64| {
        range(
            ok.iter()
                .filter_map(|r| Some(per_finding_kib(f(r.disk.as_ref()?)))),
            |v| format!("{v:.2}"),
        )
    };
    let disk = match ok.iter().any(|r| r.disk.is_some()) {
        true => format!(
            "{} ({} allocated)",
            disk_of(|d| d.bytes),
            disk_of(|d| d.allocated)
        ),
        false => "—".into(),
    };
    let failed = runs.len() - ok.len();
    let unfinished: Vec<String> = ok
        .iter()
        .filter(|r| !r.finished)
        .map(|r| format!("{} of {n}", r.counts.distinct))
        .collect();
    let mut rate = range(ok.iter().filter_map(|r| r.rate()), thousands);
    if !unfinished.is_empty() {
        rate = format!("{rate} NOT FINISHED ({})", unfinished.join(", "));
    }
    if failed > 0 {
        rate = format!("{rate} FAILED ×{failed}");
    }
    format!(
        "| {} | {} | {rate} | {} | {} | {} | {disk} | {} | {} |",
        thousands(n as f64),
        who.name(),
        range(ok.iter().filter_map(|r| r.phase_rate()), thousands),
        range(ok.iter().map(|r| r.cpu_per_finding()), |v| format!(
            "{v:.0}"
        )),
        range(ok.iter().map(|r| r.peak_rss_kib as f64 / 1024.0), |v| {
            format!("{v:.1}")
        }),
        range(ok.iter().map(|r| r.lost() as f64), |v| format!("{v:.0}")),
        range(ok.iter().map(|r| r.duplicated() as f64), |v| format!(
            "{v:.0}"
        )),
    )
}

/// `who` ÷ Alertmanager, per round (they ran back to back), over the rounds both finished.
fn ratio_row(
    n: usize,
    who: Contestant,
    sr: &[Result<Run, String>],
    am: &[Result<Run, String>],
) -> String {
    let pairs: Vec<(&Run, &Run)> = sr
        .iter()
        .zip(am)
        .filter_map(|(s, a)| Some((s.as_ref().ok()?, a.as_ref().ok()?)))
        .filter(|(s, a)| s.finished && a.finished)
        .collect();
    let ratio = |f: &dyn Fn(&Run) -> Option<f64>| {
        range(
            pairs
                .iter()
                .filter_map(|(s, a)| Some(f(s)? / f(a)?))
                .filter(|r| r.is_finite()),
            |v| format!("{}×", significant(v)),
        )
    };
    format!(
        "| {} | **{} ÷ Alertmanager** | {} | {} | {} | {} | | | |",
        thousands(n as f64),
        who.name(),
        ratio(&|r| r.rate()),
        ratio(&|r| r.phase_rate()),
        ratio(&|r| Some(r.cpu_per_finding())),
        ratio(&|r| Some(r.peak_rss_kib as f64)),
    )
}

/// Start to ready (every start: the races', the drains' and the idle runs') and idle RSS.
fn print_idle(results: &Results, idle: &BTreeMap<Contestant, Vec<Result<Idle, String>>>) {
    println!("| | start to ready ms | idle RSS MiB |\n|---|---:|---:|");
    for (who, idles) in idle {
        let ok: Vec<&Idle> = idles.iter().filter_map(|r| r.as_ref().ok()).collect();
        let same_binary =
            |c: Contestant| c == *who || (c == Contestant::Drain && *who == Contestant::Sasrelay);
        let mut starts: Vec<f64> = results
            .iter()
            .filter(|(k, _)| same_binary(k.2))
            .flat_map(|(_, runs)| runs.iter().filter_map(|r| r.as_ref().ok()))
            .map(|r| r.start_to_ready)
            .chain(ok.iter().map(|i| i.start_to_ready))
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        // A start now and then waits on the machine (two cores, shared): the median says more.
        starts.sort_by(f64::total_cmp);
        let median = starts
            .get(starts.len() / 2)
            .map_or("—".into(), |m| format!("{m:.1}"));
        let failed = idles.len() - ok.len();
        println!(
            "| {} | {} (median {median}, {} starts) | {}{} |",
            who.name(),
            range(starts.iter().copied(), |v| format!("{v:.1}")),
            starts.len(),
            range(ok.iter().map(|i| i.rss_kib as f64 / 1024.0), |v| {
                format!("{v:.1}")
            }),
            if failed > 0 {
                format!(" (FAILED ×{failed})")
            } else {
                String::new()
            }
        );
    }
}

/// `min–max` of `values` (just the value when they agree, `—` when there are none).
fn range(values: impl Iterator<Item = f64>, fmt: impl Fn(f64) -> String) -> String {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return "—".into();
    }
    let (a, b) = (fmt(lo), fmt(hi));
    if a == b { a } else { format!("{a}–{b}") }
}

/// Two significant digits at least: `1.47`, `0.021`.
fn significant(v: f64) -> String {
    let decimals = if v > 0.0 && v < 0.1 { 3 } else { 2 };
    format!("{v:.decimals$}")
}

/// `12,345` (rounded).
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
