//! End to end: 10,000 new alerts appear in the simulator; how long until a local webhook
//! receiver has all of them? Also the daemon's idle RSS.
//!
//! `cargo bench --bench end_to_end`. Everything runs in this process except the idle-RSS
//! probe, which starts the real binary. Not a test: nothing asserts a time.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use sasrelay::simulator::{Domain, InitialFindings, SimConfig, Simulator};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const ALERTS: usize = 10_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(deliver_ten_thousand());
    idle_rss();
}

async fn deliver_ten_thousand() {
    let sim = Simulator::start(SimConfig {
        initial: InitialFindings::NONE,
        ..SimConfig::default()
    })
    .await
    .expect("simulator");

    let received = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(Notify::new());
    let first_at: Arc<std::sync::OnceLock<Instant>> = Arc::new(std::sync::OnceLock::new());
    let (r, d, f) = (received.clone(), done.clone(), first_at.clone());
    let app = Router::new().route(
        "/hook",
        post(move |body: axum::body::Bytes| {
            let (r, d, f) = (r.clone(), d.clone(), f.clone());
            async move {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if v["kind"] == "new" {
                    f.get_or_init(Instant::now);
                }
                if v["kind"] == "new" && r.fetch_add(1, Ordering::SeqCst) + 1 == ALERTS {
                    d.notify_one();
                }
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let state = std::env::temp_dir().join(format!("sasrelay-e2e-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).expect("state dir");
    let secret = state.with_extension("secret");
    std::fs::write(&secret, sasrelay::simulator::DEMO_ACCESS_KEY_SECRET).expect("secret");
    let text = format!(
        r#"[[source]]
name = "bench"
region = "cn-hangzhou"
endpoint = "{endpoint}"
domains = ["alerts"]
poll = {{ alerts = "{interval}" }}
credentials = {{ type = "access_key", access_key_id = "sasrelay-sim", access_key_secret = {{ file = "{secret}" }} }}

[state]
directory = "{state}"

[admin]
listen = "off"

[[sink]]
name = "hook"
type = "webhook"
url = "http://{hook}/hook"
"#,
        endpoint = sim.base_url(),
        interval = std::env::var("SASRELAY_BENCH_ALERTS_INTERVAL").unwrap_or_else(|_| "5s".into()),
        secret = secret.display(),
        state = state.join("store").display(),
    );
    let settings = sasrelay::config::parse(Path::new("bench.toml"), &text).expect("config");
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(sasrelay::daemon::run(settings, shutdown.clone()));
    // Let the first (empty) poll happen, so the alerts below are news, not the initial sync.
    while sim.call_count("DescribeSuspEvents") == 0 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    for i in 0..ALERTS {
        sim.add_finding(Domain::Alert, None, json!({ "Id": 5_000_000 + i as i64 }))
            .expect("add alert");
    }
    let added = started.elapsed();
    let timeout = tokio::time::timeout(Duration::from_secs(300), done.notified()).await;
    let secs = started.elapsed().as_secs_f64();
    match timeout {
        Ok(()) => println!(
            "end_to_end: {ALERTS} new alerts delivered to a local webhook in {secs:.2} s ({:.0}/s; adding them to the simulator took {:.2} s; first delivery after {:.2} s, so {:.0} deliveries/s once flowing)",
            ALERTS as f64 / secs,
            added.as_secs_f64(),
            first_at
                .get()
                .map_or(0.0, |t| t.duration_since(started).as_secs_f64()),
            ALERTS as f64 / first_at.get().map_or(secs, |t| t.elapsed().as_secs_f64()),
        ),
        Err(_) => println!(
            "end_to_end: only {} of {ALERTS} delivered after {secs:.0} s",
            received.load(Ordering::SeqCst)
        ),
    }
    shutdown.cancel();
    let _ = daemon.await;
    let _ = std::fs::remove_dir_all(&state);
    let _ = std::fs::remove_file(&secret);
}

/// Starts the release binary's simulator and, in a second process, the daemon against it;
/// waits for the daemon's first polls and reads the daemon's resident set size.
fn idle_rss() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/sasrelay");
    if !bin.exists() {
        println!("idle_rss: build the release binary first (cargo build --release)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("sasrelay-rss-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let mut sim = Command::new(&bin)
        .args(["simulate", "--listen", "127.0.0.1:0", "--tick", "0s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the simulator");
    let mut first = String::new();
    std::io::BufReader::new(sim.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("simulator banner");
    let endpoint = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("simulator address")
        .to_string();
    std::fs::write(
        dir.join("secret"),
        sasrelay::simulator::DEMO_ACCESS_KEY_SECRET,
    )
    .expect("secret");
    std::fs::write(
        dir.join("c.toml"),
        format!(
            "[[source]]\nname = \"rss\"\nregion = \"cn-hangzhou\"\nendpoint = \"{endpoint}\"\ncredentials = {{ type = \"access_key\", access_key_id = \"sasrelay-sim\", access_key_secret = {{ file = \"secret\" }} }}\n[state]\ndirectory = \"state\"\n[[sink]]\nname = \"out\"\ntype = \"stdout\"\n"
        ),
    )
    .expect("config");
    let mut daemon = Command::new(&bin)
        .args(["run", "--config"])
        .arg(dir.join("c.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sasrelay run");
    let stderr = daemon.stderr.take().expect("stderr");
    let mut seen = 0;
    for line in std::io::BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
    {
        if line.contains("First start") {
            seen += 1;
            if seen == 4 {
                break;
            }
        }
    }
    // Let the first deliveries and allocator churn settle before reading RSS.
    std::thread::sleep(Duration::from_secs(3));
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", daemon.id())).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or("VmRSS: unknown");
    println!(
        "idle_rss: sasrelay run (all four domains, one sink) after its first polls: {}",
        rss.trim_start_matches("VmRSS:").trim()
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = sim.kill();
    let _ = sim.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
