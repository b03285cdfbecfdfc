//! The action loop in a real browser (issue 17): headless Chromium (Debian's `chromium`)
//! driven over WebDriver by Debian's `chromium-driver`, both installed by `.ci/run`. It opens
//! the link of a rendered Slack message through the single-sign-on proxy, sees the alert,
//! writes a remark and confirms; the simulator records the call and the resolved notification
//! names the user. Then, in the same browser, a used, a tampered, an expired and a
//! cross-finding link and a cross-site form post (a page on another site that submits to the
//! action page by itself) are each refused. Screenshots of every page land in
//! `target/tmp/screenshots/` (the README's comes from there).
//!
//! Without Chromium or its driver the test fails, naming the packages: it never passes
//! without its browser.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::act::{KEY, Rig};

const CHROMIUM: &str = "/usr/bin/chromium";
const DRIVER: &str = "/usr/bin/chromedriver";

/// The W3C WebDriver element key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The chromedriver process, killed when dropped (a failing test leaves none behind).
struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A chromedriver process and one headless Chromium session.
struct Browser {
    driver: Driver,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        for (path, package) in [(CHROMIUM, "chromium"), (DRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: install Debian's {package} (apt-get install chromium chromium-driver; .ci/run does)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Driver(
            std::process::Command::new(DRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver"),
        );
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        // Ready when /status says so (a bounded wait on the driver's own answer).
        let mut ready = false;
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "chromedriver did not become ready on {base}");
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1000,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_string();
        Browser {
            driver,
            base,
            session,
            http,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(
            v["value"].get("error").is_none(),
            "WebDriver {path}: {}",
            v["value"]
        );
        v["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// The page's visible text.
    async fn text(&self) -> String {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": "return document.body.innerText", "args": []})),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().unwrap().to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let e = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Waits (10 s at most, on the browser's own answers) until the page's text holds `what`.
    async fn wait_text(&self, what: &str) -> String {
        let mut last = String::new();
        for _ in 0..200 {
            last = self.text().await;
            if last.contains(what) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the page never said {what:?}; it says: {last}");
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = STANDARD.decode(b64.as_str().unwrap()).unwrap();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        path
    }

    async fn quit(self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
        drop(self.driver);
    }
}

/// A page on another site (`localhost`, not `127.0.0.1`) that posts a confirmation of `action`
/// to the action page by itself, as a cross-site request forgery would.
async fn evil_site(action: String, token: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let html = format!(
        "<!doctype html><form method=post action=\"{action}\"><input name=t value=\"{token}\"><input name=csrf value=\"{}\"></form><script>document.forms[0].submit()</script>",
        "0".repeat(64)
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://localhost:{port}/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responder_ignores_an_alert_from_a_slack_link_in_chromium() {
    let rig = Rig::start().await;
    // A title an attacker wrote: markup and a link, shown as text.
    let title = "Reverse shell <b>to</b> https://evil.example/x";
    let (id, links) = rig
        .new_alert_with(json!({ "AlarmEventNameDisplay": title }))
        .await;
    let (other, other_links) = rig.new_alert().await;
    let browser = Browser::start().await;

    // The link of the rendered Slack message, through the sign-on proxy: the alert, the action.
    browser.open(&links[0]).await;
    let text = browser.wait_text("Confirm: Ignore").await;
    assert!(text.contains(&format!("alert:{id}")), "{text}");
    assert!(text.contains("You act as alice"), "{text}");
    assert!(
        text.contains("Reverse shell <b>to</b> https:／／evil.example/x"),
        "the title, as text, its link defanged: {text}"
    );
    browser
        .type_into("#remark", "known scanner, see ticket 42")
        .await;
    browser.screenshot("1-confirm").await;
    assert_eq!(rig.calls("HandleSecurityEvents").len(), 0, "looking acts");

    browser.click("#confirm").await;
    let text = browser.wait_text("Done:").await;
    assert!(
        text.contains("by alice via sasrelay (slack link)"),
        "{text}"
    );
    browser.screenshot("2-done").await;
    let calls = rig.calls("HandleSecurityEvents");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["SecurityEventIds.1"], id.to_string());
    assert_eq!(calls[0]["Remark"], "known scanner, see ticket 42");
    let resolved = rig.resolved(id).await;
    assert_eq!(resolved["handled_by"]["who"], "alice", "{resolved}");
    assert_eq!(resolved["handled_by"]["via"], "slack link", "{resolved}");

    // The same link again: used.
    browser.open(&links[0]).await;
    browser.wait_text("already used, by alice").await;
    browser.screenshot("3-replayed").await;

    // Tampered, expired, cross-finding.
    let token = |l: &str| l.split("?t=").nth(1).unwrap().to_string();
    let mut t = token(&other_links[0]).into_bytes();
    let at = t.len() - 5;
    t[at] = if t[at] == b'A' { b'B' } else { b'A' };
    let base = format!("{}/act/alerts/{other}", rig.proxy.url());
    browser
        .open(&format!("{base}?t={}", String::from_utf8(t).unwrap()))
        .await;
    browser.wait_text("signature does not match").await;
    browser.screenshot("4-tampered").await;

    let body = token(&other_links[0]);
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body.split('.').next().unwrap())
        .unwrap();
    let mut claims: sasrelay::action_link::Claims = serde_json::from_slice(&json).unwrap();
    claims.exp = time::OffsetDateTime::now_utc().unix_timestamp() - 60;
    browser
        .open(&format!(
            "{base}?t={}",
            sasrelay::action_link::sign(KEY.as_bytes(), &claims)
        ))
        .await;
    browser.wait_text("expired").await;
    browser.screenshot("5-expired").await;

    browser
        .open(&format!("{base}?t={}", token(&links[1])))
        .await;
    browser.wait_text("another finding").await;
    browser.screenshot("6-other-finding").await;

    // A page on another site posting a confirmation by itself.
    let evil = evil_site(base.clone(), token(&other_links[0])).await;
    browser.open(&evil).await;
    browser.wait_text("came from another site").await;
    browser.screenshot("7-cross-site").await;

    assert_eq!(
        rig.calls("HandleSecurityEvents").len(),
        1,
        "no refused request reached Security Center"
    );
    browser.quit().await;
}
