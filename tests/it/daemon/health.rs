//! Health end to end: the real `sasrelay run` binary against the simulator with a source it
//! cannot read — its secret env var unset, or a secret Security Center refuses — turns the
//! source `blind` within three poll intervals (`/readyz` 503, `sasrelay healthcheck` exit 1,
//! `sasrelay status`, `/metrics`), sends one `blind` meta-event to a webhook and to a chat fake,
//! and one resolved meta-event once Security Center accepts the secret; a restart sends
//! neither again. The heartbeat pings a local dead man's switch while ready, and not while
//! blind.
//!
//! Waits are on the receivers' state, the daemon's log lines and the admin API's answers under
//! a deadline; never on sleeps.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use reqwest::StatusCode;
use sasrelay::simulator::{SimConfig, SimCredential, SimHandle, Simulator};
use serde_json::Value;
use tokio::sync::watch;

use super::admin::{Run, admin_addr, http, sasrelay, status_sinks};
use crate::sinkkit::{FakeSlack, SlackRequest};
use crate::support::*;

/// Failure guard for every wait (a hang becomes a failure, never a pass).
const T: Duration = Duration::from_secs(60);
/// The poll interval of the generated configs.
const INTERVAL: Duration = Duration::from_secs(1);
/// The secret env var the configs of these tests read instead of the simulator's.
const OWN_SECRET_ENV: &str = "SASRELAY_E2E_HEALTH_SECRET";
/// A secret the simulator does not know until a test registers it.
const WRONG_SECRET: &str = "not-the-simulator-secret";

/// A dead man's switch on 127.0.0.1: counts `GET /ping/<uuid>`.
struct Switch {
    addr: std::net::SocketAddr,
    pings: Arc<Mutex<Vec<Instant>>>,
    bump: Arc<watch::Sender<usize>>,
}

impl Switch {
    async fn start() -> Switch {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pings: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let bump = Arc::new(watch::channel(0).0);
        let (p, b) = (pings.clone(), bump.clone());
        let app = Router::new().route(
            "/ping/3f1e",
            get(move || async move {
                let n = {
                    let mut p = p.lock().unwrap();
                    p.push(Instant::now());
                    p.len()
                };
                b.send_replace(n);
                "OK"
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Switch { addr, pings, bump }
    }

    fn url(&self) -> String {
        format!("http://{}/ping/3f1e", self.addr)
    }

    fn count(&self) -> usize {
        self.pings.lock().unwrap().len()
    }

    async fn wait_pings(&self, n: usize) {
        let mut rx = self.bump.subscribe();
        let deadline = tokio::time::Instant::now() + T;
        while self.count() < n {
            tokio::time::timeout_at(deadline, rx.changed())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {n} heartbeats"))
                .unwrap();
        }
    }
}

/// The simulator, a webhook, a fake Slack and a state directory.
struct Rig {
    sim: SimHandle,
    hook: Hook,
    slack: FakeSlack,
    dir: tempfile::TempDir,
}

impl Rig {
    async fn start() -> Rig {
        Rig {
            sim: Simulator::start(SimConfig::default()).await.unwrap(),
            hook: Hook::start().await,
            slack: FakeSlack::start(Vec::new()).await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A config polling alerts only, every second, whose source reads its secret from
    /// [`OWN_SECRET_ENV`]; the webhook and the Slack sink; `health` as `[health]`'s lines.
    /// With `admin` as the admin listen address (`127.0.0.1:0` for the daemon).
    fn config(&self, name: &str, admin: &str, health: &str) -> std::path::PathBuf {
        self.config_at(name, &self.sim.endpoint(), "", admin, health)
    }

    /// [`Rig::config`] with the source reading `endpoint` (`host:port`), `source_extra` lines
    /// added to it.
    fn config_at(
        &self,
        name: &str,
        endpoint: &str,
        source_extra: &str,
        admin: &str,
        health: &str,
    ) -> std::path::PathBuf {
        let (url, state) = (self.hook.url(), self.dir.path().join("state"));
        let tail = format!(
            "[[sink]]\nname = \"chat\"\ntype = \"slack\"\nwebhook_url = \"{}\"\n\n[health]\n{health}\n",
            self.slack.hook()
        );
        let admin = format!("listen = \"{admin}\"");
        let mut spec = ConfigSpec::new(endpoint, &url, &state);
        let source_extra = format!("domains = [\"alerts\"]\n{source_extra}");
        spec.source_extra = &source_extra;
        spec.admin = &admin;
        spec.tail = &tail;
        let path = spec.write(&self.dir.path().join(name));
        let text = std::fs::read_to_string(&path).unwrap().replace(
            &format!("{{ env = \"{SECRET_ENV}\" }}"),
            &format!("{{ env = \"{OWN_SECRET_ENV}\" }}"),
        );
        assert!(
            text.contains(OWN_SECRET_ENV),
            "the source reads {OWN_SECRET_ENV}"
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The daemon on `config` with [`OWN_SECRET_ENV`] set to `secret` (unset with `None`),
    /// its admin address, and the CLI's config naming that address.
    async fn daemon(
        &self,
        config: &std::path::Path,
        secret: Option<&str>,
        health: &str,
    ) -> (Daemon, String, String) {
        let envs: Vec<(&str, &std::ffi::OsStr)> = secret
            .map(|s| (OWN_SECRET_ENV, s.as_ref()))
            .into_iter()
            .collect();
        let daemon = Daemon::spawn_env(config, &envs);
        let addr = admin_addr(&daemon).await;
        let cli = self.config("cli.toml", &addr, health);
        (daemon, addr, cli.to_str().unwrap().to_string())
    }
}

/// The delivered meta-events of the webhook: `(status, key, episode, id)`.
fn webhook_meta(hook: &Hook) -> Vec<(String, String, u64, String)> {
    hook.delivered()
        .iter()
        .filter(|r| r.body["schema"] == "sasrelay.health.v1")
        .map(|r| {
            assert_eq!(
                r.webhook_id,
                sasrelay::sinks::webhook::delivery_id(r.body["id"].as_str().unwrap(), "hook")
            );
            (
                r.body["status"].as_str().unwrap().to_string(),
                r.body["key"].as_str().unwrap().to_string(),
                r.body["episode"].as_u64().unwrap(),
                r.webhook_id.clone(),
            )
        })
        .collect()
}

/// The text of the Slack messages that are meta-events, in order.
fn slack_meta(log: &[SlackRequest]) -> Vec<String> {
    log.iter()
        .filter(|r| r.status == 200)
        .filter_map(|r| r.body["text"].as_str())
        .filter(|t| t.contains("[sasrelay]"))
        .map(str::to_string)
        .collect()
}

/// Waits until the webhook and Slack each have `n` meta-events.
async fn wait_meta(rig: &Rig, n: usize) {
    rig.hook
        .wait_for(&format!("{n} meta-events"), T, |r| {
            r.iter()
                .filter(|x| x.delivered() && x.body["schema"] == "sasrelay.health.v1")
                .count()
                >= n
        })
        .await;
    rig.slack
        .wait_for(&format!("{n} meta-events on Slack"), |log| {
            slack_meta(log).len() >= n
        })
        .await;
}

/// `GET /metrics`: the exposition text.
async fn metrics(addr: &str) -> String {
    http()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// `GET /readyz`: the status and the body.
async fn readyz(addr: &str) -> (StatusCode, String) {
    let resp = http()
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// Waits until `/readyz` answers `want`; returns its body and when it first did.
async fn wait_ready(addr: &str, want: StatusCode) -> (String, Instant) {
    let deadline = Instant::now() + T;
    // The admin API has no change notification: asking again on a short tick is a wait on a
    // condition, bounded by the deadline.
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        let (status, body) = readyz(addr).await;
        if status == want {
            return (body, Instant::now());
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still answers {status} ({body}), waiting for {want}"
        );
        tick.tick().await;
    }
}

/// The source's blind side, common to both tests: `/readyz` 503 naming it within three poll
/// intervals of the daemon running, `healthcheck` exit 1, the status and the metrics saying
/// why; one firing meta-event on the webhook and on Slack. Returns the firing's id.
async fn assert_blind(rig: &Rig, daemon: &Daemon, addr: &str, cli: &str, error: &str) -> String {
    daemon.wait_message("sasrelay running.", T).await;
    let running = Instant::now();
    let (body, at) = wait_ready(addr, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        at - running < 3 * INTERVAL,
        "blind after {:?}, more than 3 poll intervals",
        at - running
    );
    assert!(body.contains("blind: sim/alerts"), "{body}");
    let check: Run = sasrelay(&["healthcheck", "--config", cli], &[]).await;
    assert_eq!(check.code, Some(1), "{}", check.stderr);
    assert!(
        check.stderr.contains("blind: sim/alerts"),
        "{}",
        check.stderr
    );

    wait_meta(rig, 1).await;
    let meta = webhook_meta(&rig.hook);
    assert_eq!(meta.len(), 1, "{meta:?}");
    assert_eq!(
        (meta[0].0.as_str(), meta[0].1.as_str(), meta[0].2),
        ("firing", "source_blind/sim/alerts", 1)
    );
    let firing = rig
        .hook
        .delivered()
        .into_iter()
        .find(|r| r.webhook_id == meta[0].3)
        .unwrap();
    assert_eq!(firing.body["condition"], "source_blind");
    assert_eq!(firing.body["source"], "sim");
    assert_eq!(firing.body["domain"], "alerts");
    assert!(
        firing.body["detail"].as_str().unwrap().contains(error),
        "{}",
        firing.body
    );
    let slack = slack_meta(&rig.slack.log());
    assert_eq!(slack.len(), 1, "{slack:?}");
    assert!(
        slack[0].starts_with("[sasrelay] FIRING: source sim cannot read alerts"),
        "{}",
        slack[0]
    );
    let status = sasrelay(&["status", "--config", cli], &[]).await;
    assert_eq!(status.code, Some(0), "{}", status.stderr);
    assert!(status.stdout.starts_with("NOT READY"), "{}", status.stdout);
    let row = status
        .stdout
        .lines()
        .find(|l| l.starts_with("sim ") && l.contains("alerts"))
        .unwrap_or_else(|| panic!("no row for sim/alerts:\n{}", status.stdout));
    assert!(row.contains("blind") && row.contains(error), "{row}");
    assert!(
        status.stdout.contains("source_blind/sim/alerts"),
        "{}",
        status.stdout
    );
    let json = sasrelay(&["status", "--config", cli, "--json"], &[]).await;
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["ready"], false);
    assert_eq!(v["sources"][0]["state"], "blind");
    assert!(v["sources"][0]["consecutive_failures"].as_u64().unwrap() >= 1);
    assert_eq!(v["sources"][0]["last_success"], Value::Null);
    assert_eq!(status_sinks(&v), ["chat", "hook"]);

    let metrics = metrics(addr).await;
    let sd = r#"source="sim",domain="alerts""#;
    for (series, want) in [
        (
            format!("sasrelay_last_successful_poll_timestamp_seconds{{{sd}}} 0.000"),
            true,
        ),
        (
            format!("sasrelay_source_health{{{sd},state=\"blind\"}} 1"),
            true,
        ),
        (
            format!("sasrelay_source_health{{{sd},state=\"ok\"}} 0"),
            true,
        ),
    ] {
        assert_eq!(
            metrics.lines().any(|l| l == series),
            want,
            "{series} in\n{metrics}"
        );
    }

    meta[0].3.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_blind_at_once_and_resolves_once_security_center_accepts_it() {
    let rig = Rig::start().await;
    let switch = Switch::start().await;
    let health = format!(
        "heartbeat_url = \"{}\"\nheartbeat_interval = \"1s\"",
        switch.url()
    );
    let config = rig.config("sasrelay.toml", "127.0.0.1:0", &health);
    let (mut daemon, addr, cli) = rig.daemon(&config, Some(WRONG_SECRET), &health).await;
    let firing = assert_blind(&rig, &daemon, &addr, &cli, "SignatureDoesNotMatch").await;
    // The calls it tried (refused, but made), by action, against the call budget.
    let status = sasrelay(&["status", "--config", &cli], &[]).await;
    assert!(status.stdout.contains("CALLS/HOUR"), "{}", status.stdout);
    let json = sasrelay(&["status", "--config", &cli, "--json"], &[]).await;
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    let budget = v["budget"].as_array().unwrap();
    let alerts = budget
        .iter()
        .find(|b| b["action"] == "DescribeSuspEvents")
        .unwrap_or_else(|| panic!("{budget:?}"));
    assert!(alerts["calls"].as_u64().unwrap() >= 1, "{alerts}");
    assert!(alerts["calls_per_hour"].as_u64().unwrap() >= 1, "{alerts}");

    // While blind, the heartbeat is withheld: two more withheld beats, no new ping.
    let pings = switch.count();
    const WITHHELD: &str = "Not ready: the heartbeat is withheld";
    let want = daemon.messages(WITHHELD).len() + 2;
    let mut seen = 0;
    daemon
        .wait_log("two more withheld heartbeats", T, |v| {
            if v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(WITHHELD))
            {
                seen += 1;
            }
            seen >= want
        })
        .await;
    assert_eq!(switch.count(), pings, "no heartbeat while blind");

    // Security Center learns the secret: no reload, the next poll succeeds.
    rig.sim
        .add_credential(SimCredential::new("sasrelay-sim", WRONG_SECRET))
        .unwrap();
    wait_ready(&addr, StatusCode::OK).await;
    let check = sasrelay(&["healthcheck", "--config", &cli], &[]).await;
    assert_eq!(check.code, Some(0), "{}", check.stderr);
    wait_meta(&rig, 2).await;
    switch.wait_pings(pings + 2).await;
    let status = sasrelay(&["status", "--config", &cli, "--json"], &[]).await;
    let v: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(v["sources"][0]["state"], "ok", "{v}");
    assert!(v["sources"][0]["last_success"].is_string(), "{v}");
    assert_eq!(v["sources"][0]["last_error"], Value::Null, "{v}");

    // Some more polls, then a restart: nothing is sent twice.
    daemon.wait_more_polls_of(&["alerts"], 3, T).await;
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
    let mut daemon = Daemon::spawn_env(&config, &[(OWN_SECRET_ENV, WRONG_SECRET.as_ref())]);
    daemon.wait_more_polls_of(&["alerts"], 3, T).await;
    let meta = webhook_meta(&rig.hook);
    let shape: Vec<(&str, &str, u64)> = meta
        .iter()
        .map(|(s, k, e, _)| (s.as_str(), k.as_str(), *e))
        .collect();
    assert_eq!(
        shape,
        [
            ("firing", "source_blind/sim/alerts", 1),
            ("resolved", "source_blind/sim/alerts", 1)
        ]
    );
    assert_eq!(meta[0].3, firing);
    assert_ne!(meta[1].3, firing);
    let slack = slack_meta(&rig.slack.log());
    assert_eq!(slack.len(), 2, "{slack:?}");
    assert!(
        slack[1].starts_with("[sasrelay] RESOLVED: source sim reads alerts again"),
        "{}",
        slack[1]
    );
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unset_secret_env_var_is_blind_at_once_with_one_meta_event_and_a_reload_fixes_it() {
    let rig = Rig::start().await;
    let config = rig.config("sasrelay.toml", "127.0.0.1:0", "");
    let (mut daemon, addr, cli) = rig.daemon(&config, None, "").await;
    assert_blind(&rig, &daemon, &addr, &cli, OWN_SECRET_ENV).await;
    let metrics = metrics(&addr).await;
    assert!(
        metrics.lines().any(|l| l.starts_with(
            r#"sasrelay_poll_errors_total{source="sim",domain="alerts",action="none",reason="credentials"}"#
        )),
        "{metrics}"
    );
    // The connect keeps failing; the meta-event is not repeated.
    daemon
        .wait_log("another failed connect", T, |v| {
            v["message"] == "Cannot connect the source; retrying."
                && v["failures"].as_u64().is_some_and(|a| a >= 3)
        })
        .await;
    assert_eq!(webhook_meta(&rig.hook).len(), 1);
    assert_eq!(slack_meta(&rig.slack.log()).len(), 1);

    // A restart while still blind is not a recovery: nothing is sent, not even a second
    // firing, however often the source fails to connect.
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
    let mut daemon = Daemon::spawn_env(&config, &[]);
    let addr = admin_addr(&daemon).await;
    wait_ready(&addr, StatusCode::SERVICE_UNAVAILABLE).await;
    daemon
        .wait_log("three failed connects after the restart", T, |v| {
            v["message"] == "Cannot connect the source; retrying."
                && v["failures"].as_u64().is_some_and(|a| a >= 3)
        })
        .await;
    let meta = webhook_meta(&rig.hook);
    assert_eq!(meta.len(), 1, "{meta:?}");
    assert_eq!(slack_meta(&rig.slack.log()).len(), 1);

    // Fixed by a reload: the source now reads its secret from a file. One resolved
    // meta-event on each sink, and ready again.
    let secret = rig.dir.path().join("sk");
    std::fs::write(&secret, sasrelay::simulator::DEMO_ACCESS_KEY_SECRET).unwrap();
    let fixed = std::fs::read_to_string(&config).unwrap().replace(
        &format!("{{ env = \"{OWN_SECRET_ENV}\" }}"),
        &format!("{{ file = \"{}\" }}", secret.display()),
    );
    assert!(fixed.contains("file = "), "the source now reads a file");
    std::fs::write(&config, fixed).unwrap();
    kill_pid(daemon.pid, "HUP");
    wait_ready(&addr, StatusCode::OK).await;
    wait_meta(&rig, 2).await;
    daemon.wait_more_polls_of(&["alerts"], 2, T).await;
    let shape: Vec<(String, String)> = webhook_meta(&rig.hook)
        .into_iter()
        .map(|(status, key, _, _)| (status, key))
        .collect();
    assert_eq!(
        shape,
        [
            ("firing".to_string(), "source_blind/sim/alerts".to_string()),
            (
                "resolved".to_string(),
                "source_blind/sim/alerts".to_string()
            )
        ]
    );
    let slack = slack_meta(&rig.slack.log());
    assert_eq!(slack.len(), 2, "{slack:?}");
    assert!(slack[1].starts_with("[sasrelay] RESOLVED"), "{}", slack[1]);
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
}

/// Security Center as a black hole: accepts connections and never answers, so every poll
/// runs until the client's timeout.
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_blind_neither_resolves_nor_fires_again() {
    let rig = Rig::start().await;
    let endpoint = black_hole().await;
    // Each poll hangs for 1.5 s, so after a restart the monitor looks while the first poll
    // is still in progress (the domain is `starting`): that must not read as a recovery.
    let extra = "timeout = \"1500ms\"\nmax_attempts = 1";
    let config = rig.config_at("sasrelay.toml", &endpoint, extra, "127.0.0.1:0", "");
    let secret = [(OWN_SECRET_ENV, WRONG_SECRET.as_ref())];
    let mut daemon = Daemon::spawn_env(&config, &secret);
    wait_meta(&rig, 1).await;
    assert_eq!(daemon.terminate(T).await.code(), Some(0));

    let mut daemon = Daemon::spawn_env(&config, &secret);
    daemon
        .wait_log("two timed-out polls after the restart", T, |v| {
            v["message"] == "Poll failed; nothing was recorded, retrying."
                && v["failures"].as_u64().is_some_and(|n| n >= 2)
        })
        .await;
    let meta = webhook_meta(&rig.hook);
    let shape: Vec<(&str, u64)> = meta.iter().map(|(s, _, e, _)| (s.as_str(), *e)).collect();
    assert_eq!(shape, [("firing", 1)], "{meta:?}");
    assert_eq!(slack_meta(&rig.slack.log()).len(), 1);
    assert_eq!(daemon.terminate(T).await.code(), Some(0));
}
