//! `[admin] health_listen` through the real binary: the second address answers `/healthz`,
//! `/readyz` and `/metrics` and nothing else (the admin API's paths are 404 there, whatever the
//! method), while the admin API keeps working on its own address; a taken port stops the start
//! naming the key. This is what the Kubernetes manifests (`deploy/kubernetes/`) probe and scrape.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::admin::{T, admin_addr, http};
use crate::support::*;

/// The address the daemon's health listener bound (it logs it once listening).
async fn health_addr(daemon: &Daemon) -> String {
    daemon.wait_message("Health and metrics listening", T).await;
    daemon.messages("Health and metrics listening")[0]["addr"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn get(url: &str) -> (StatusCode, String) {
    let resp = http().get(url).send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// Polls `url` until it answers 200 and its body holds `needle`, under the test's deadline.
async fn wait_for_body(url: &str, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let (status, body) = get(url).await;
        if status == StatusCode::OK && body.contains(needle) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url}: no 200 with {needle:?} within {T:?}; last: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_listener_serves_probes_and_metrics_and_never_the_api() {
    let sim = quiet_simulator().await;
    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, url, state) = (sim.endpoint(), hook.url(), dir.path().join("state"));
    let mut spec = ConfigSpec::new(&endpoint, &url, &state);
    spec.admin = "listen = \"127.0.0.1:0\"\nhealth_listen = \"127.0.0.1:0\"";
    let config = spec.write(&dir.path().join("sasrelay.toml"));
    let mut daemon = Daemon::spawn(&config);
    let admin = admin_addr(&daemon).await;
    let health = health_addr(&daemon).await;
    assert_ne!(admin, health);

    // What the kubelet and Prometheus ask for.
    assert_eq!(
        get(&format!("http://{health}/healthz")).await,
        (StatusCode::OK, "ok".to_string())
    );
    wait_for_body(&format!("http://{health}/readyz"), "ready").await;
    // The metrics of the running daemon, with its polls: the same exposition as the API's.
    daemon.wait_more_polls_of(&["alerts"], 1, T).await;
    let metrics = wait_for_body(
        &format!("http://{health}/metrics"),
        r#"sasrelay_polls_total{source="sim",domain="alerts",outcome="ok"}"#,
    )
    .await;
    for family in [
        "sasrelay_build_info",
        "sasrelay_source_health",
        "sasrelay_outbox_depth",
    ] {
        assert!(metrics.contains(family), "{family} missing:\n{metrics}");
    }
    let resp = http()
        .get(format!("http://{health}/metrics"))
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        resp.headers()
    );

    // Nothing of the admin API answers there, whatever the method, even well-formed.
    for (method, path) in [
        (Method::GET, "/api/v1/status"),
        (Method::GET, "/api/v1/silences"),
        (Method::POST, "/api/v1/silences"),
        (Method::DELETE, "/api/v1/silences/x"),
        (Method::GET, "/api/v1/dead-letters"),
        (Method::POST, "/api/v1/dead-letters/replay"),
        (Method::GET, "/api/v1/quarantine"),
        (Method::POST, "/-/reload"),
    ] {
        let resp = http()
            .request(method.clone(), format!("http://{health}{path}"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("[admin] health_listen"),
            "{method} {path}: {body}"
        );
    }
    // The same door as the API: a name it does not know is refused (DNS rebinding).
    let foreign = http()
        .get(format!("http://{health}/metrics"))
        .header("host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::MISDIRECTED_REQUEST);

    // The admin API still answers on its own address.
    let (status, body) = get(&format!("http://{admin}/api/v1/status")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let view: Value = serde_json::from_str(&body).unwrap();
    assert!(view["sources"].is_array(), "{view}");
    assert_eq!(
        get(&format!("http://{admin}/healthz")).await.0,
        StatusCode::OK
    );

    assert_eq!(daemon.terminate(T).await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_health_port_stops_the_start_naming_the_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let admin = format!("listen = \"127.0.0.1:0\"\nhealth_listen = \"{addr}\"");
    let mut spec = ConfigSpec::new("127.0.0.1:9", "http://127.0.0.1:9/hook", &state);
    spec.admin = &admin;
    let config = spec.write(&dir.path().join("sasrelay.toml"));
    let mut daemon = Daemon::spawn(&config);
    assert_eq!(daemon.wait_exit(T).await.code(), Some(1));
    let log = daemon.lines().join("\n");
    assert!(log.contains(&format!("cannot listen on {addr}")), "{log}");
    assert!(log.contains("[admin] health_listen"), "{log}");
    drop(taken);
}
