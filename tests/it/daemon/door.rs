//! The admin API's door (`src/daemon/door.rs`) over real sockets: cross-site-style requests
//! are refused and change nothing; a non-loopback `listen` without a token is a configuration
//! error for `check` and `run`; and 3,000 half-open connections to the real daemon, run under
//! an open-file limit of 256, are closed by the cap and the header timeout while webhook
//! deliveries keep flowing.
//!
//! Nothing sleeps to synchronise: waits are on the webhook receiver, the daemon's log lines,
//! sockets reaching end of file, or a condition polled under a deadline.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use sasrelay::config::AdminSettings;
use sasrelay::event::DeadLetter;
use sasrelay::simulator::{Domain as SimDomain, SimConfig, Simulator};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::admin::{Api, Run, SOURCE, T, admin_addr, http, sasrelay, write};
use crate::support::*;

/// A request built by hand, so nothing adds or fixes headers: `(status, body)`.
async fn raw(addr: SocketAddr, request: String) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut answer))
        .await
        .expect("the API answers and closes")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    (status, text)
}

/// A `POST`/`DELETE` as a web page could make a browser send it: `headers` as given (no
/// `Content-Type` unless listed), `Connection: close`.
fn request(method: &str, path: &str, host: &str, headers: &[&str], body: &str) -> String {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_requests_get_4xx_and_change_nothing() {
    // No token: the door alone must hold.
    let api = Api::start_with(None, &["hook"], AdminSettings::default()).await;
    let seq = api
        .store
        .enqueue("hook", &crate::store::entry("p-1", 1, 10))
        .unwrap()
        .seq();
    let letter = DeadLetter {
        entry: crate::store::entry("p-1", 1, 10),
        dead_at_ms: 2,
        reason: "HTTP 400".into(),
        last_response: None,
        unreadable: None,
    };
    assert!(api.store.dead_letter("hook", seq, &letter).unwrap());
    let here = api.addr.to_string();
    let evil = format!("evil.example:{}", api.addr.port());
    let silence =
        json!({"matchers": ["cluster=c1"], "duration": "1h", "created_by": "page"}).to_string();
    let replay = json!({"sink": "hook", "all": true}).to_string();
    let discard = format!("/api/v1/dead-letters/hook/{seq}");
    let json_ct = "Content-Type: application/json";
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "no content type",
            request("POST", "/api/v1/silences", &here, &[], &silence),
            415,
        ),
        (
            "text/plain",
            request(
                "POST",
                "/api/v1/silences",
                &here,
                &["Content-Type: text/plain"],
                &silence,
            ),
            415,
        ),
        (
            "a form",
            request(
                "POST",
                "/api/v1/silences",
                &here,
                &["Content-Type: application/x-www-form-urlencoded"],
                "matchers=x",
            ),
            415,
        ),
        (
            "a replay as text/plain",
            request(
                "POST",
                "/api/v1/dead-letters/replay",
                &here,
                &["Content-Type: text/plain;charset=UTF-8"],
                &replay,
            ),
            415,
        ),
        (
            "a discard with no content type",
            request("DELETE", &discard, &here, &[], ""),
            415,
        ),
        (
            "a foreign Origin",
            request(
                "POST",
                "/api/v1/silences",
                &here,
                &[json_ct, "Origin: http://evil.example"],
                &silence,
            ),
            403,
        ),
        (
            "a foreign Origin on a replay",
            request(
                "POST",
                "/api/v1/dead-letters/replay",
                &here,
                &[json_ct, "Origin: null"],
                &replay,
            ),
            403,
        ),
        (
            "a foreign Host (DNS rebinding)",
            request("POST", "/api/v1/silences", &evil, &[json_ct], &silence),
            421,
        ),
        (
            "a foreign Host on a discard",
            request("DELETE", &discard, &evil, &[json_ct], ""),
            421,
        ),
        (
            "a rebinding read",
            request("GET", "/api/v1/dead-letters", &evil, &[], ""),
            421,
        ),
        (
            "a rebinding read of the metrics",
            request("GET", "/metrics", &evil, &[], ""),
            421,
        ),
        (
            "no Host at all",
            "GET /api/v1/silences HTTP/1.0\r\n\r\n".to_string(),
            421,
        ),
    ];
    for (what, req, want) in &cases {
        let (status, text) = raw(api.addr, req.clone()).await;
        assert_eq!(status, *want, "{what}: {text}");
        assert!(text.contains("\"error\""), "{what} says why: {text}");
    }
    assert!(api.silences.list().is_empty(), "no silence was created");
    let left: Vec<u64> = api
        .store
        .dead_letters("hook")
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(
        left,
        [seq],
        "the dead letter was neither replayed nor discarded"
    );
    assert_eq!(
        api.store.depth("hook"),
        0,
        "nothing went back to the outbox"
    );

    // The same requests, as sasrelay's commands and curl send them, pass.
    let (status, text) = raw(
        api.addr,
        request("POST", "/api/v1/silences", &here, &[json_ct], &silence),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let localhost = format!("localhost:{}", api.addr.port());
    let (status, text) = raw(
        api.addr,
        request("GET", "/api/v1/dead-letters", &localhost, &[], ""),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = raw(
        api.addr,
        request(
            "DELETE",
            &discard,
            &here,
            &["Content-Type: application/json; charset=utf-8"],
            "",
        ),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(api.store.dead_letters("hook").unwrap().is_empty());
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_in_admin_hosts_are_let_in() {
    let settings = AdminSettings {
        hosts: vec!["sasrelay.internal".into()],
        ..AdminSettings::default()
    };
    let api = Api::start_with(None, &[], settings).await;
    for (host, want) in [
        ("sasrelay.internal", StatusCode::OK),
        ("other.internal", StatusCode::MISDIRECTED_REQUEST),
    ] {
        let resp = http()
            .get(api.url("/healthz"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), want, "{host}");
    }
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_closed_by_the_idle_timeout() {
    let settings = AdminSettings {
        idle_timeout: Duration::from_millis(500),
        ..AdminSettings::default()
    };
    let api = Api::start_with(None, &[], settings).await;
    let head = format!(
        "POST /api/v1/silences HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"matchers\"",
        api.addr
    );
    // The head is complete (the header timeout is over), the body stops after 12 bytes.
    let mut s = TcpStream::connect(api.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let closed = tokio::time::timeout(T, closed_by_daemon(s, stop))
        .await
        .expect("a stalled body is not waited for forever");
    assert!(closed);
    assert!(api.silences.list().is_empty());
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_listen_without_a_token_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{SOURCE}\n[state]\ndirectory = \"state\"\n\n[[sink]]\nname = \"out\"\ntype = \"stdout\"\n\n[admin]\nlisten = \"0.0.0.0:0\"\n"
    );
    let open = write(dir.path(), "open.toml", &text);
    let line = text[..text.find("listen").unwrap()].matches('\n').count() + 1;
    let located = format!("{}:{line}:10: admin.listen: ", open.display());
    let cfg = open.to_str().unwrap();
    for command in [&["check", "--config", cfg][..], &["run", "--config", cfg]] {
        let run: Run = sasrelay(command, &[]).await;
        assert_eq!(run.code, Some(78), "{command:?}: {}", run.stderr);
        assert!(run.stderr.contains(&located), "{command:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("not a loopback address"),
            "{}",
            run.stderr
        );
    }

    // A token, or an explicit opt-out (warned about), makes it pass.
    for (name, extra, warned) in [
        ("token.toml", "token = { env = \"ADMIN_TOKEN\" }", false),
        ("allowed.toml", "allow_unauthenticated = true", true),
    ] {
        let file = write(dir.path(), name, &format!("{text}{extra}\n"));
        // `check` builds what `run` builds: the token's variable must be set.
        let env = [("ADMIN_TOKEN", "a-long-enough-admin-token")];
        let check = sasrelay(&["check", "--config", file.to_str().unwrap()], &env).await;
        assert_eq!(check.code, Some(0), "{extra}: {}", check.stderr);
        let warning = check
            .stderr
            .lines()
            .any(|l| l.starts_with("warning: ") && l.contains("admin.allow_unauthenticated"));
        assert_eq!(warning, warned, "{extra}: {}", check.stderr);
    }
}

/// The simulator, a webhook receiver and the real daemon between them.
struct Rig {
    sim: sasrelay::simulator::SimHandle,
    hook: Hook,
    daemon: Daemon,
    dir: tempfile::TempDir,
}

impl Rig {
    /// The daemon with `[admin]` being `admin`, started by `spawn` from its config file.
    async fn start(admin: &str, spawn: impl FnOnce(&std::path::Path) -> Daemon) -> Rig {
        let sim = Simulator::start(SimConfig::default()).await.unwrap();
        let hook = Hook::start().await;
        let dir = tempfile::tempdir().unwrap();
        let (endpoint, url, state) = (sim.endpoint(), hook.url(), dir.path().join("state"));
        let mut spec = ConfigSpec::new(&endpoint, &url, &state);
        spec.admin = admin;
        let daemon = spawn(&spec.write(&dir.path().join("sasrelay.toml")));
        Rig {
            sim,
            hook,
            daemon,
            dir,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_warns_when_it_opts_out_of_the_token() {
    let admin = "listen = \"0.0.0.0:0\"\nallow_unauthenticated = true";
    let mut rig = Rig::start(admin, Daemon::spawn).await;
    rig.daemon.wait_message("with no token", T).await;
    rig.hook.wait_delivered(1, T).await;
    assert!(rig.daemon.terminate(T).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_connection_does_not_hold_up_a_clean_shutdown() {
    // The default header_read_timeout (10s) is longer than this daemon's shutdown_grace (5s).
    let mut rig = Rig::start("listen = \"127.0.0.1:0\"", Daemon::spawn).await;
    let bound: SocketAddr = admin_addr(&rig.daemon).await.parse().unwrap();
    let stuck = half_open(bound, b"GET /healthz HT").await;
    // Accepted in order: once a later connection is answered, the stuck one is being served.
    let resp = http()
        .get(format!("http://{bound}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(rig.daemon.terminate(T).await.success());
    assert_eq!(
        rig.daemon.messages("Shutdown clean").len(),
        1,
        "the shutdown waited for the half-open connection"
    );
    drop(stuck);
}

/// Opens a connection to `addr` and sends `partial` (maybe nothing), never a whole request.
async fn half_open(addr: SocketAddr, partial: &'static [u8]) -> TcpStream {
    let mut s = tokio::time::timeout(T, TcpStream::connect(addr))
        .await
        .expect("connect within the deadline")
        .expect("connect");
    // A connection closed at the cap may refuse the bytes already; reading shows it closed.
    let _ = s.write_all(partial).await;
    s
}

/// Reads until the daemon closes `s` (end of file or a reset), or `stop` is cancelled (then
/// `false`).
async fn closed_by_daemon(mut s: TcpStream, stop: tokio_util::sync::CancellationToken) -> bool {
    let mut buf = [0u8; 256];
    loop {
        tokio::select! {
            () = stop.cancelled() => return false,
            read = s.read(&mut buf) => match read {
                Ok(0) | Err(_) => return true,
                // An answer to a timed-out head, before the close.
                Ok(_) => {}
            },
        }
    }
}

/// Connections the kernel holds established on the daemon's side of `port` (in the daemon or
/// in its accept queue), from `/proc/net/tcp` and `/proc/net/tcp6`.
fn established_at(port: u16) -> usize {
    let want = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .map(|text| {
            text.lines()
                .skip(1)
                .filter(|l| {
                    let cols: Vec<&str> = l.split_whitespace().collect();
                    // 01 ESTABLISHED, 08 CLOSE_WAIT: a descriptor the daemon still holds.
                    cols.len() > 3 && cols[1].ends_with(&want) && matches!(cols[3], "01" | "08")
                })
                .count()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_open_connections_are_closed_and_deliveries_flow_under_a_256_fd_limit() {
    const FLOOD: usize = 3000;
    // Short timeouts keep the test fast; the cap is the default, which the daemon lowers to
    // a quarter of its open-file limit.
    let admin = "listen = \"127.0.0.1:0\"\nheader_read_timeout = \"2s\"\nidle_timeout = \"3s\"";
    let Rig {
        sim,
        hook,
        mut daemon,
        dir,
    } = Rig::start(admin, |config| Daemon::spawn_with_open_files(config, 256)).await;
    let bound: SocketAddr = admin_addr(&daemon).await.parse().unwrap();
    daemon
        .wait_message("serves at most 64 connections at once", T)
        .await;
    hook.wait_delivered(4, T).await; // The first start's summaries.

    // 3,000 connections: every other one sends half a request line, the rest nothing.
    let mut opening = tokio::task::JoinSet::new();
    for i in 0..FLOOD {
        let partial: &'static [u8] = if i % 2 == 1 { b"GET /healthz HT" } else { b"" };
        opening.spawn(async move { (i % 2 == 1, half_open(bound, partial).await) });
    }
    let mut flood = Vec::new();
    while let Some(opened) = opening.join_next().await {
        flood.push(opened.unwrap());
    }
    assert_eq!(flood.len(), FLOOD);
    daemon
        .wait_message("its cap: new connections are closed", T)
        .await;

    // Deliveries keep flowing while the flood is open.
    let alert = sim
        .add_finding(SimDomain::Alert, None, Value::Null)
        .unwrap()["Id"]
        .as_i64()
        .unwrap();
    let alert_id = format!("alert:{alert}");
    hook.wait_for(&alert_id, T, |r| {
        r.iter()
            .any(|r| r.delivered() && r.finding_id() == alert_id)
    })
    .await;

    // Every connection that sent bytes is closed by the daemon, at the cap or by the header
    // timeout. A silent one may never have reached it: when the accept queue overflows, the
    // kernel drops its handshake's last ACK and keeps no state (SYN cookies), while the client
    // believes it is connected. Those hold nothing of the daemon's, so once the daemon's side
    // of the port holds no connection, they are all that is left.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut reading = tokio::task::JoinSet::new();
    for (spoke, stream) in flood {
        let stop = stop.clone();
        reading.spawn(async move { (spoke, closed_by_daemon(stream, stop).await) });
    }
    let deadline = tokio::time::Instant::now() + T;
    let mut closed = [0usize; 2]; // [silent, spoke]
    let mut left = FLOOD;
    while closed[1] < FLOOD / 2 {
        let next = tokio::time::timeout_at(deadline, reading.join_next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} connections that sent half a request line stayed open for {T:?}",
                    FLOOD / 2 - closed[1]
                )
            });
        let (spoke, was_closed) = next.expect("tasks left").unwrap();
        assert!(was_closed, "only silent connections are given up on");
        closed[usize::from(spoke)] += 1;
        left -= 1;
    }
    let mut held = established_at(bound.port());
    while held > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the daemon's side still holds {held} connections after {T:?}"
        );
        // Each close ends a reader task: wait for one, or re-count after a timeout round.
        if let Ok(Some(done)) =
            tokio::time::timeout(Duration::from_millis(200), reading.join_next()).await
        {
            let (spoke, was_closed) = done.unwrap();
            closed[usize::from(spoke)] += usize::from(was_closed);
            left -= 1;
        }
        held = established_at(bound.port());
    }
    stop.cancel();
    while let Some(done) = reading.join_next().await {
        let (spoke, was_closed) = done.unwrap();
        closed[usize::from(spoke)] += usize::from(was_closed);
    }
    eprintln!(
        "closed by the daemon: {} silent, {} with half a request line; {} silent never reached it",
        closed[0],
        closed[1],
        FLOOD / 2 - closed[0]
    );
    assert!(left <= FLOOD / 2, "{left}");
    assert!(
        closed[0] > 64,
        "the daemon closed silent connections too (at the cap and by the timeout): {closed:?}"
    );

    // The door opens again once the half-open connections are gone.
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let answer = http()
            .get(format!("http://{bound}/healthz"))
            .send()
            .await
            .map(|r| r.status());
        if answer.as_ref().is_ok_and(|s| *s == StatusCode::OK) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz never answered again: {answer:?}"
        );
        // A connection the cap still closed: the last permits free as their tasks end.
        tokio::task::yield_now().await;
    }
    let cli = write(
        dir.path(),
        "cli.toml",
        &format!("{SOURCE}\n[admin]\nlisten = \"{bound}\"\n"),
    );
    let health = sasrelay(&["healthcheck", "--config", cli.to_str().unwrap()], &[]).await;
    assert_eq!(health.code, Some(0), "{}", health.stderr);

    // Nothing ran out of descriptors.
    let log = daemon.lines().join("\n");
    assert!(!log.contains("os error 24"), "EMFILE in the daemon's log");
    assert!(
        !log.contains("Too many open files"),
        "EMFILE in the daemon's log"
    );
    assert!(daemon.terminate(T).await.success());
}
