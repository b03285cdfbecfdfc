//! Reloading the configuration of the real `sasrelay run` binary, fed by the simulator:
//! SIGHUP with a new route file routes the next event anew while what was queued is still
//! delivered; a broken file keeps the running configuration and says why (log, metric,
//! `POST /-/reload`, `sasrelay reload`); a burst in flight across several reloads arrives
//! exactly once; a removed sink's outbox stays and is delivered when the sink returns; the log
//! filter follows `[daemon] log`; every signal is named in the log; the health judges what
//! the reloaded file configures.
//!
//! Synchronisation is on the receivers, the daemon's log lines, `/metrics` and the simulator's
//! call counters under deadlines; never on sleeps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::admin::{T, admin_addr, http, sasrelay, write};
use crate::support::*;
use sasrelay::simulator::{Domain, SimHandle};
use serde_json::{Value, json};
use tempfile::TempDir;

const TOKEN: &str = "tok-reload-7c1e";

/// The simulator (no findings at first), two webhook receivers and a config file.
struct Rig {
    sim: SimHandle,
    /// The sink `hook`.
    hook: Hook,
    /// The sink `other`.
    other: Hook,
    dir: TempDir,
}

impl Rig {
    async fn start() -> Rig {
        Rig {
            sim: quiet_simulator().await,
            hook: Hook::start().await,
            other: Hook::start().await,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("sasrelay.toml")
    }

    /// Writes the config: alerts only, the sinks `hook` and `other`, new alerts routed to
    /// `route_to`, with `extra`.
    fn write(&self, route_to: &str, extra: &Extra<'_>) -> PathBuf {
        let (endpoint, url, state) = (
            self.sim.endpoint(),
            self.hook.url(),
            self.dir.path().join("state"),
        );
        let other = format!(
            "[[sink]]\nname = \"other\"\ntype = \"webhook\"\nurl = \"{}\"\n",
            self.other.url()
        );
        let tail = format!(
            r#"{}
[routing]
default = "drop"

[[route]]
name = "new-alerts"
matchers = ['domain="alerts"', 'kind="new"']
sinks = ["{route_to}"]
"#,
            if extra.without_other { "" } else { &other }
        );
        let mut spec = ConfigSpec::new(&endpoint, &url, &state);
        spec.source_extra = extra.source.unwrap_or("domains = [\"alerts\"]");
        spec.daemon_extra = extra.daemon;
        spec.delivery_extra = extra.delivery;
        if let Some(admin) = extra.admin {
            spec.admin = admin;
        }
        spec.tail = &tail;
        spec.write(&self.config_path())
    }

    /// Adds `n` alerts; their finding ids.
    fn add_alerts(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let a = self
                    .sim
                    .add_finding(Domain::Alert, None, json!({}))
                    .unwrap();
                format!("alert:{}", a["Id"].as_i64().unwrap())
            })
            .collect()
    }
}

/// What a test changes in [`Rig::write`]'s config.
#[derive(Default)]
struct Extra<'a> {
    /// The `[admin]` table's lines instead of the default.
    admin: Option<&'a str>,
    /// The `[[source]]`'s extra lines instead of `domains = ["alerts"]`.
    source: Option<&'a str>,
    /// Lines in `[daemon]`.
    daemon: &'a str,
    /// Lines in `[delivery]`.
    delivery: &'a str,
    /// No sink `other`.
    without_other: bool,
}

/// Delivered new-alert events per finding id.
fn alerts_delivered(requests: &[Request]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in requests
        .iter()
        .filter(|r| r.delivered() && r.kind() == "new")
    {
        *m.entry(r.finding_id().to_string()).or_default() += 1;
    }
    m
}

fn has_all(requests: &[Request], ids: &[String]) -> bool {
    let got = alerts_delivered(requests);
    ids.iter().all(|id| got.contains_key(id))
}

/// The value of `series` on the daemon's `/metrics`.
async fn metric(admin: &str, series: &str) -> Option<f64> {
    let text = http()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Waits until `series` satisfies `ok`.
async fn wait_metric(admin: &str, series: &str, ok: impl Fn(f64) -> bool) {
    let deadline = Instant::now() + T;
    // `/metrics` has no change notification: reading it on a short interval is a wait on a
    // condition, bounded by the deadline.
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        let value = metric(admin, series).await;
        if value.is_some_and(&ok) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {series}; it is {value:?}"
        );
        tick.tick().await;
    }
}

/// Waits until the daemon has logged `n` successful reloads in all.
async fn wait_reloaded(daemon: &Daemon, n: usize) {
    let mut seen = 0;
    daemon
        .wait_log(&format!("{n} reloads"), T, |v| {
            if v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Configuration reloaded"))
            {
                seen += 1;
            }
            seen >= n
        })
        .await
}

/// `POST {path}` on the admin API as `sasrelay reload` sends it, with `token` if any.
async fn post(admin: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = http()
        .post(format!("http://{admin}{path}"))
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("POST");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_new_routes_routes_the_next_event_anew_and_loses_no_queued_entry() {
    let mut rig = Rig::start().await;
    let config = rig.write("hook", &Extra::default());
    let mut daemon = Daemon::spawn(&config);
    let admin = admin_addr(&daemon).await;
    daemon.wait_more_polls_of(&["alerts"], 1, T).await;

    // Entries wait in hook's outbox while it is down.
    rig.hook.stop().await;
    let queued = rig.add_alerts(20);
    wait_metric(&admin, r#"sasrelay_outbox_depth{sink="hook"}"#, |v| {
        v >= 20.0
    })
    .await;

    rig.write("other", &Extra::default());
    kill_pid(daemon.pid, "HUP");
    wait_reloaded(&daemon, 1).await;
    let next = rig.add_alerts(1);
    rig.other
        .wait_for("the alert after the reload", T, |r| has_all(r, &next))
        .await;

    // hook returns: the new worker of `hook` delivers what was queued before the reload.
    rig.hook.restart().await;
    rig.hook
        .wait_for("the 20 queued alerts", T, |r| has_all(r, &queued))
        .await;
    daemon.wait_more_polls_of(&["alerts"], 2, T).await;
    let to_hook = alerts_delivered(&rig.hook.requests());
    assert_eq!(
        to_hook.keys().cloned().collect::<Vec<_>>(),
        {
            let mut q = queued.clone();
            q.sort();
            q
        },
        "hook gets exactly what was queued, once each"
    );
    assert!(to_hook.values().all(|&n| n == 1), "{to_hook:?}");
    let to_other = alerts_delivered(&rig.other.requests());
    assert_eq!(to_other.keys().collect::<Vec<_>>(), vec![&next[0]]);
    assert_each_once(&rig.hook.requests());
    assert_each_once(&rig.other.requests());

    // Each signal is named, with its fields at the top level of the JSON line.
    let hup = daemon.messages("Received SIGHUP");
    assert_eq!(hup.len(), 1, "{hup:?}");
    assert_eq!(hup[0]["signal"], "SIGHUP");
    assert!(hup[0].get("fields").is_none(), "{}", hup[0]);
    let reloaded = daemon.messages("Configuration reloaded");
    assert_eq!(reloaded[0]["cause"], "SIGHUP");
    assert_eq!(reloaded[0]["sinks_added"], "");
    assert_eq!(
        metric(
            &admin,
            r#"sasrelay_config_reloads_total{outcome="success"}"#
        )
        .await,
        Some(1.0)
    );
    let status = daemon.terminate(T).await;
    assert_eq!(status.code(), Some(0), "{status}");
    assert_eq!(daemon.messages("Received SIGTERM")[0]["signal"], "SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_keeps_the_running_configuration_and_every_door_says_why() {
    let rig = Rig::start().await;
    let admin_table = "listen = \"127.0.0.1:0\"\ntoken = { env = \"ADMIN_TOKEN\" }";
    let with_token = Extra {
        admin: Some(admin_table),
        ..Extra::default()
    };
    let config = rig.write("hook", &with_token);
    let token_env = [("ADMIN_TOKEN", TOKEN.as_ref())];
    let mut daemon = Daemon::spawn_env(&config, &token_env);
    let admin = admin_addr(&daemon).await;
    daemon.wait_more_polls_of(&["alerts"], 1, T).await;

    // Three errors: a sink with an unknown key and so without its `url`, a route to a sink
    // that does not exist.
    let good = std::fs::read_to_string(&config).unwrap();
    let broken = good
        .replacen(
            "name = \"other\"\ntype = \"webhook\"\nurl",
            "name = \"other\"\ntype = \"webhook\"\nurll",
            1,
        )
        .replacen("sinks = [\"hook\"]", "sinks = [\"nowhere\"]", 1);
    assert_ne!(broken, good);
    std::fs::write(&config, &broken).unwrap();
    kill_pid(daemon.pid, "HUP");
    daemon.wait_message("was not reloaded", T).await;
    let refused = &daemon.messages("was not reloaded")[0];
    assert_eq!(refused["level"], "ERROR");
    assert_eq!(refused["count"], 3, "{refused}");
    let errors = refused["errors"].as_str().unwrap();
    assert!(errors.contains("sink[1].urll"), "{errors}");
    assert!(errors.contains("nowhere"), "{errors}");
    assert_eq!(
        metric(&admin, "sasrelay_config_last_reload_successful").await,
        Some(0.0)
    );
    // The old configuration still runs, routes and all.
    let before = rig.add_alerts(1);
    rig.hook
        .wait_for("an alert routed as before", T, |r| has_all(r, &before))
        .await;

    // POST /-/reload needs the token, and answers 422 with every error.
    assert_eq!(post(&admin, "/-/reload", None).await.0, 401);
    let (status, body) = post(&admin, "/-/reload", Some(TOKEN)).await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("sink[1].urll") && message.contains("nowhere"),
        "{message}"
    );
    assert_eq!(body["attempt"]["errors"].as_array().unwrap().len(), 3);
    // `sasrelay reload` exits 78 with them.
    let dir = rig.dir.path();
    let cli = write(
        dir,
        "cli.toml",
        &format!("[admin]\nlisten = \"{admin}\"\ntoken = {{ env = \"ADMIN_TOKEN\" }}\n"),
    );
    let cli = cli.to_str().unwrap();
    let run = sasrelay(&["reload", "--config", cli], &[("ADMIN_TOKEN", TOKEN)]).await;
    assert_eq!(run.code, Some(78), "{}", run.stderr);
    assert!(run.stderr.contains("sink[1].urll"), "{}", run.stderr);
    assert!(
        run.stderr.contains("the running one is kept"),
        "{}",
        run.stderr
    );
    assert_eq!(
        metric(
            &admin,
            r#"sasrelay_config_reloads_total{outcome="failure"}"#
        )
        .await,
        Some(3.0)
    );

    // Fixed (and routed to `other` now): `sasrelay reload` applies it.
    rig.write("other", &with_token);
    let run = sasrelay(&["reload", "--config", cli], &[("ADMIN_TOKEN", TOKEN)]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!(
            "configuration reloaded from {}\n  sinks: restarted hook, other\n  sources: unchanged sim\n",
            config.display()
        )
    );
    assert_eq!(
        metric(&admin, "sasrelay_config_last_reload_successful").await,
        Some(1.0)
    );
    let after = rig.add_alerts(1);
    rig.other
        .wait_for("an alert routed anew", T, |r| has_all(r, &after))
        .await;
    assert!(!has_all(&rig.hook.requests(), &after));
    let status = daemon.terminate(T).await;
    assert_eq!(status.code(), Some(0), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_in_flight_across_reloads_is_delivered_exactly_once() {
    let rig = Rig::start().await;
    let config = rig.write("hook", &Extra::default());
    let mut daemon = Daemon::spawn(&config);
    daemon.wait_more_polls_of(&["alerts"], 1, T).await;
    // A slow receiver keeps deliveries in flight while the reloads happen.
    rig.hook.slow_down(Duration::from_millis(20));
    let burst = rig.add_alerts(200);
    let mut delivered = 40;
    for reload in 1..=3 {
        rig.hook
            .wait_for(&format!("{delivered} alerts"), T, |r| {
                alerts_delivered(r).len() >= delivered
            })
            .await;
        // The source's table changes (its pollers restart) and so does the sink (its worker
        // is handed over).
        let extra = format!("domains = [\"alerts\"]\ntimeout = \"{}s\"", 10 + reload);
        let delivery = if reload % 2 == 1 {
            "max_attempts = 50"
        } else {
            ""
        };
        rig.write(
            "hook",
            &Extra {
                source: Some(&extra),
                delivery,
                ..Extra::default()
            },
        );
        kill_pid(daemon.pid, "HUP");
        wait_reloaded(&daemon, reload).await;
        delivered += 40;
    }
    rig.hook
        .wait_for("all 200 alerts", T, |r| has_all(r, &burst))
        .await;
    daemon.wait_more_polls_of(&["alerts"], 2, T).await;
    let got = alerts_delivered(&rig.hook.requests());
    assert_eq!(got.len(), 200, "{got:?}");
    assert!(got.values().all(|&n| n == 1), "{got:?}");
    assert_each_once(&rig.hook.requests());
    let reloads = daemon.messages("Configuration reloaded");
    assert_eq!(reloads.len(), 3);
    for r in &reloads {
        assert_eq!(r["sources_restarted"], "sim", "{r}");
    }
    let status = daemon.terminate(T).await;
    assert_eq!(status.code(), Some(0), "{status}");
}

/// `sasrelay run` in text format, with neither `SASRELAY_LOG` nor `NO_COLOR`.
fn spawn_text(config: &Path) -> Daemon {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sasrelay"));
    cmd.args(["run", "--config"])
        .arg(config)
        .env_remove("SASRELAY_LOG")
        .env_remove("NO_COLOR");
    Daemon::spawn_command(cmd)
}

fn logged(daemon: &Daemon, needle: &str) -> usize {
    daemon.lines().iter().filter(|l| l.contains(needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_filter_follows_the_file_and_text_logs_carry_no_colour_codes() {
    let rig = Rig::start().await;
    let quiet = Extra {
        daemon: "log = \"warn\"",
        ..Extra::default()
    };
    let config = rig.write("hook", &quiet);
    let mut daemon = spawn_text(&config);
    wait_calls(&rig.sim, &[("DescribeSuspEvents", 3)], T).await;
    assert_eq!(logged(&daemon, "Poll done."), 0, "{:?}", daemon.lines());
    assert_eq!(
        logged(&daemon, "sasrelay running."),
        0,
        "INFO is filtered out"
    );

    let verbose = Extra {
        daemon: "log = \"info,sasrelay::pipeline::poller=debug\"",
        ..Extra::default()
    };
    rig.write("hook", &verbose);
    kill_pid(daemon.pid, "HUP");
    daemon
        .wait_log("a poll at debug", T, |v| {
            v.as_str().is_some_and(|l| l.contains("Poll done."))
        })
        .await;
    let status = daemon.terminate(T).await;
    assert_eq!(status.code(), Some(0), "{status}");
    assert_eq!(logged(&daemon, "Received SIGTERM: shutting down."), 1);
    let lines = daemon.lines();
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "stderr is not a terminal: no escape codes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_sinks_outbox_stays_in_the_store_and_is_delivered_when_it_returns() {
    let mut rig = Rig::start().await;
    let config = rig.write("other", &Extra::default());
    let mut daemon = Daemon::spawn(&config);
    let admin = admin_addr(&daemon).await;
    daemon.wait_more_polls_of(&["alerts"], 1, T).await;
    rig.other.stop().await;
    let waiting = rig.add_alerts(5);
    let depth = r#"sasrelay_outbox_depth{sink="other"}"#;
    wait_metric(&admin, depth, |v| v >= 5.0).await;

    // `other` is removed: its worker stops; its outbox stays, and the reload says so.
    let without_other = Extra {
        without_other: true,
        ..Extra::default()
    };
    rig.write("hook", &without_other);
    let cli = write(
        rig.dir.path(),
        "cli.toml",
        &format!("[admin]\nlisten = \"{admin}\"\n"),
    );
    let run = sasrelay(&["reload", "--config", cli.to_str().unwrap()], &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout
            .contains("  sinks: removed other; restarted hook\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "  sink other is not configured: 5 entries stay in its outbox until it returns\n"
        ),
        "{}",
        run.stdout
    );
    let warned = daemon.messages("is no longer configured");
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert_eq!(
        (&warned[0]["sink"], &warned[0]["pending"]),
        (&json!("other"), &json!(5))
    );
    daemon
        .wait_message("Stopped the worker of sink other.", T)
        .await;
    assert_eq!(metric(&admin, depth).await, Some(5.0), "nothing dropped");

    // It returns: its new worker delivers what waited.
    rig.other.restart().await;
    rig.write("other", &Extra::default());
    kill_pid(daemon.pid, "HUP");
    wait_reloaded(&daemon, 2).await;
    rig.other
        .wait_for("the 5 alerts that waited", T, |r| has_all(r, &waiting))
        .await;
    assert_each_once(&rig.other.requests());
    let status = daemon.terminate(T).await;
    assert_eq!(status.code(), Some(0), "{status}");
}

/// `GET /api/v1/status` (no token configured): every `(source, domain, state)` and the sinks.
async fn health_status(admin: &str) -> (Vec<(String, String, String)>, Vec<String>) {
    let status: Value = http()
        .get(format!("http://{admin}/api/v1/status"))
        .send()
        .await
        .expect("GET /api/v1/status")
        .json()
        .await
        .expect("the status");
    let sources = status["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .map(|s| {
            let field = |k: &str| s[k].as_str().expect(k).to_string();
            (field("source"), field("domain"), field("state"))
        })
        .collect();
    let sinks = super::admin::status_sinks(&status)
        .into_iter()
        .map(str::to_string)
        .collect();
    (sources, sinks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_what_the_health_judges_and_a_new_domain_is_never_blind() {
    let rig = Rig::start().await;
    let config = rig.write("hook", &Extra::default());
    let mut daemon = Daemon::spawn(&config);
    let admin = admin_addr(&daemon).await;
    daemon.wait_more_polls_of(&["alerts"], 1, T).await;
    let (sources, sinks) = health_status(&admin).await;
    let judged = |sources: &[(String, String, String)]| -> Vec<(String, String)> {
        sources
            .iter()
            .map(|(s, d, _)| (s.clone(), d.clone()))
            .collect()
    };
    assert_eq!(judged(&sources), [("sim".into(), "alerts".into())]);
    assert_eq!(sinks, ["hook", "other"]);

    // A domain more, a sink less: judged and listed from the reload's answer on.
    let more = Extra {
        source: Some("domains = [\"alerts\", \"firewall\"]"),
        without_other: true,
        ..Extra::default()
    };
    rig.write("hook", &more);
    let (code, body) = post(&admin, "/-/reload", None).await;
    assert_eq!(code, 200, "{body}");
    let (sources, sinks) = health_status(&admin).await;
    assert_eq!(
        judged(&sources),
        [
            ("sim".into(), "alerts".into()),
            ("sim".into(), "firewall".into())
        ]
    );
    assert_eq!(sinks, ["hook"]);
    let (_, _, firewall) = &sources[1];
    assert!(
        firewall == "starting" || firewall == "ok",
        "a domain the reload added is not judged before its first poll: {sources:?}"
    );
    daemon.wait_more_polls_of(&["firewall"], 1, T).await;
    let (sources, _) = health_status(&admin).await;
    assert!(
        sources.iter().all(|(_, _, state)| state == "ok"),
        "{sources:?}"
    );
    let ready = http()
        .get(format!("http://{admin}/readyz"))
        .send()
        .await
        .expect("GET /readyz");
    assert_eq!(ready.status().as_u16(), 200);
    let status = daemon.terminate(T).await;
    assert_eq!(status.code(), Some(0), "{status}");
}
