//! The action page (issue 17, `[actions]`) as a process, over real sockets: a Slack message's
//! button leads, through a single-sign-on proxy that names the user, to a page that shows the
//! alert and acts only on a confirmed `POST`; the simulator records the one call, the next poll
//! sends one `resolved` naming who and how, and the link is spent. Tampered, expired,
//! cross-finding and garbage links, cross-site and CSRF-less posts, a user not on the allow
//! list, an identity header from an untrusted address, are each refused with a page saying
//! why, and change nothing. The browser walk of the same loop is `tests/it/browser.rs`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sasrelay::simulator::{Domain as SimDomain, SimHandle};
use serde_json::Value;

use crate::sinkkit::FakeSlack;
use crate::support::*;

const T: std::time::Duration = std::time::Duration::from_secs(30);

/// The key links are signed with (so the test can make expired links).
pub const KEY: &str = "0123456789abcdef0123456789abcdef-test-key";

/// A reverse proxy on 127.0.0.1 standing for the organisation's single-sign-on: it forwards
/// everything to the action page, naming the signed-in user in `X-Forwarded-User` (and
/// dropping any such header the browser sent).
#[derive(Clone)]
pub struct Proxy {
    /// Where it listens: the action links' `public_url`.
    pub addr: SocketAddr,
    /// The action page it forwards to (set once the daemon has bound it).
    target: Arc<Mutex<Option<SocketAddr>>>,
    /// The user it names; `None`: none.
    user: Arc<Mutex<Option<String>>>,
    client: reqwest::Client,
}

async fn forward(
    State(p): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = p.target.lock().unwrap().expect("the action page's address");
    let url = format!(
        "http://{target}{}",
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut req = p.client.request(method, url).body(body);
    for (k, v) in &headers {
        if k != "host" && k != "x-forwarded-user" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    // The browser's Host, as a proxy passes it on.
    if let Some(h) = headers.get("host") {
        req = req.header("host", h);
    }
    if let Some(u) = p.user.lock().unwrap().clone() {
        req = req.header("x-forwarded-user", u);
    }
    let r = req.send().await.expect("the action page answers");
    let status = r.status();
    let mut out = HeaderMap::new();
    for (k, v) in r.headers() {
        if k != "content-length" && k != "transfer-encoding" {
            out.append(k, v.clone());
        }
    }
    let body = r.bytes().await.unwrap_or_default();
    (status, out, body).into_response()
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = Proxy {
            addr: listener.local_addr().unwrap(),
            target: Arc::default(),
            user: Arc::new(Mutex::new(Some("alice".into()))),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        };
        let app = axum::Router::new().fallback(forward).with_state(p.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        p
    }

    /// Names `user` from now on (`None`: nobody).
    pub fn sign_in(&self, user: Option<&str>) {
        *self.user.lock().unwrap() = user.map(str::to_string);
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A daemon polling alerts every second, delivering to a webhook and to Slack with action
/// buttons, its action page behind [`Proxy`], which only user `alice` may use.
pub struct Rig {
    pub sim: SimHandle,
    pub hook: Hook,
    pub slack: FakeSlack,
    pub proxy: Proxy,
    pub daemon: Daemon,
    /// Where the action page listens (not through the proxy).
    pub page: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Rig {
    pub async fn start() -> Rig {
        Rig::polling(
            "domains = [\"alerts\"]",
            r#"{ alerts = "1s" }"#,
            &["alerts"],
        )
        .await
    }

    /// A rig whose source reads `domains` every `poll` (`names`: the domains, for waits).
    pub async fn polling(domains: &str, poll: &str, names: &[&str]) -> Rig {
        let sim = quiet_simulator().await;
        let hook = Hook::start().await;
        let slack = FakeSlack::start(Vec::new()).await;
        let proxy = Proxy::start().await;
        let dir = tempfile::tempdir().unwrap();
        let (endpoint, url, state) = (sim.endpoint(), hook.url(), dir.path().join("state"));
        let tail = format!(
            r#"[[sink]]
name = "slack"
type = "slack"
webhook_url = {{ env = "SLACK_HOOK" }}
rate_limit = {{ period = "1ms" }}

[actions]
listen = "127.0.0.1:0"
public_url = "{public}"
secret = {{ env = "ACT_KEY" }}
identity_header = "X-Forwarded-User"
trusted_proxies = ["127.0.0.1"]
allowed_identities = ["alice"]
"#,
            public = proxy.url()
        );
        let mut spec = ConfigSpec::new(&endpoint, &url, &state);
        spec.source_extra = domains;
        spec.poll = poll;
        spec.tail = &tail;
        let config = spec.write(&dir.path().join("sasrelay.toml"));
        let daemon = Daemon::spawn_env(
            &config,
            &[
                ("SLACK_HOOK", slack.hook().as_ref()),
                ("ACT_KEY", KEY.as_ref()),
            ],
        );
        daemon.wait_message("Action page listening", T).await;
        let page: SocketAddr = daemon.messages("Action page listening")[0]["addr"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        *proxy.target.lock().unwrap() = Some(page);
        daemon.wait_more_polls_of(names, 2, T).await;
        Rig {
            sim,
            hook,
            slack,
            proxy,
            daemon,
            page,
            _dir: dir,
        }
    }

    /// A new open alert; its id and the action links of its Slack message (ignore, handled).
    pub async fn new_alert(&self) -> (i64, Vec<String>) {
        self.new_alert_with(Value::Null).await
    }

    /// [`Rig::new_alert`] with `fields` set on the simulated alert.
    pub async fn new_alert_with(&self, fields: Value) -> (i64, Vec<String>) {
        self.new_finding(SimDomain::Alert, fields).await
    }

    /// A new open finding of `domain`; its id and the action links of its Slack message.
    pub async fn new_finding(&self, domain: SimDomain, fields: Value) -> (i64, Vec<String>) {
        let (key, path) = match domain {
            SimDomain::Alert => ("Id", "alerts"),
            SimDomain::Vuln => ("PrimaryId", "vulnerabilities"),
            SimDomain::Baseline => ("CheckWarningId", "baseline"),
            SimDomain::Firewall => ("Id", "firewall"),
        };
        let id = self.sim.add_finding(domain, None, fields).unwrap()[key]
            .as_i64()
            .unwrap();
        let prefix = format!("{}/act/{path}/{id}?t=", self.proxy.url());
        let links = |log: &[crate::sinkkit::SlackRequest]| -> Vec<String> {
            let mut out = Vec::new();
            for r in log {
                collect_urls(&r.body, &prefix, &mut out);
            }
            out
        };
        self.slack
            .wait_for(&format!("the Slack message of {path} {id}"), |log| {
                !links(log).is_empty()
            })
            .await;
        (id, links(&self.slack.log()))
    }

    /// The handling calls the simulator recorded for `action`.
    pub fn calls(&self, action: &str) -> Vec<std::collections::BTreeMap<String, String>> {
        self.sim
            .handling_calls()
            .into_iter()
            .filter(|c| c.action == action)
            .map(|c| c.params)
            .collect()
    }

    /// Waits for the one `resolved` of alert `id` (and one more poll, for a second); its body.
    pub async fn resolved(&self, id: i64) -> Value {
        let finding = format!("alert:{id}");
        let is = |r: &Request| r.delivered() && r.kind() == "resolved" && r.finding_id() == finding;
        self.hook
            .wait_for(&format!("resolved {finding}"), T, |r| r.iter().any(is))
            .await;
        self.daemon.wait_more_polls_of(&["alerts"], 2, T).await;
        let copies: Vec<Value> = self
            .hook
            .delivered()
            .into_iter()
            .filter(|r| is(r))
            .map(|r| r.body)
            .collect();
        assert_eq!(copies.len(), 1, "{finding}: {copies:?}");
        copies.into_iter().next().unwrap()
    }
}

/// Every string in `v` starting with `prefix`, in order.
fn collect_urls(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.starts_with(prefix) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| collect_urls(v, prefix, out)),
        Value::Object(o) => o.values().for_each(|v| collect_urls(v, prefix, out)),
        _ => {}
    }
}

/// A browser-like client: keeps the page's cookie, reads its form.
struct Visitor {
    client: reqwest::Client,
    cookie: Option<String>,
}

/// One answer: status and page.
struct Page {
    status: u16,
    text: String,
}

impl Page {
    /// The value of the form's hidden field `name`.
    fn field(&self, name: &str) -> Option<String> {
        let needle = format!("name=\"{name}\" value=\"");
        let at = self.text.find(&needle)? + needle.len();
        let end = self.text[at..].find('"')?;
        Some(self.text[at..at + end].replace("&amp;", "&"))
    }
}

impl Visitor {
    fn new() -> Visitor {
        Visitor::from(reqwest::Client::builder())
    }

    fn from(b: reqwest::ClientBuilder) -> Visitor {
        Visitor {
            client: b
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    /// Opens `url` as a browser's navigation does: with the page's (`SameSite=Lax`) cookie.
    async fn get(&mut self, url: &str, headers: &[(&str, &str)]) -> Page {
        let mut req = self.client.get(url);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        if let Some(c) = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
        {
            self.cookie = Some(c.to_string());
        }
        for h in [
            "referrer-policy",
            "content-security-policy",
            "cache-control",
        ] {
            assert!(r.headers().contains_key(h), "{url}: no {h}");
        }
        Page {
            status: r.status().as_u16(),
            text: r.text().await.unwrap(),
        }
    }

    /// Posts the confirmation form of `url`'s page (`form`: t, csrf, remark).
    async fn post(&self, url: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Page {
        let mut req = self.client.post(url).form(form);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        Page {
            status: r.status().as_u16(),
            text: r.text().await.unwrap(),
        }
    }
}

/// The confirmation of `page` (its token and CSRF token, and `remark`).
fn confirmation(page: &Page) -> (String, String) {
    (
        page.field("t")
            .unwrap_or_else(|| panic!("no form: {}", page.text)),
        page.field("csrf").unwrap(),
    )
}

/// The claims of a link's token.
fn claims(link: &str) -> Value {
    let token = link.split("?t=").nth(1).unwrap();
    let body = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_button_ignores_the_alert_once_through_a_confirmed_page() {
    let rig = Rig::start().await;
    let (id, links) = rig.new_alert().await;
    assert_eq!(links.len(), 2, "ignore and mark handled: {links:?}");
    assert_eq!(claims(&links[0])["action"], "ignore");
    assert_eq!(claims(&links[1])["action"], "handled");
    assert_eq!(claims(&links[0])["sink"], "slack");

    // Looking changes nothing; the page shows the alert, what confirming does, and who acts.
    let mut alice = Visitor::new();
    let page = alice.get(&links[0], &[]).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains(&format!("alert:{id}")), "{}", page.text);
    assert!(page.text.contains("Confirm: Ignore"), "{}", page.text);
    assert!(
        page.text.contains("<strong>alice</strong>"),
        "{}",
        page.text
    );
    assert!(alice.cookie.is_some());
    assert_eq!(rig.calls("HandleSecurityEvents").len(), 0);

    let (t, csrf) = confirmation(&page);
    // The other link opened in another tab meanwhile: the first page's form still holds.
    let other_tab = alice.get(&links[1], &[]).await;
    assert_eq!(other_tab.status, 200, "{}", other_tab.text);
    let origin = rig.proxy.url();
    let done = alice
        .post(
            &links[0],
            &[("t", &t), ("csrf", &csrf), ("remark", "known scanner")],
            &[("origin", &origin)],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert!(
        done.text.contains("by alice via sasrelay (slack link)"),
        "{}",
        done.text
    );
    let calls = rig.calls("HandleSecurityEvents");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["OperationCode"], "ignore");
    assert_eq!(calls[0]["SecurityEventIds.1"], id.to_string());

    // The next poll resolves it once, naming who and how.
    let body = rig.resolved(id).await;
    assert_eq!(body["resolution"], "ignored", "{body}");
    assert_eq!(body["handled_by"]["who"], "alice", "{body}");
    assert_eq!(body["handled_by"]["via"], "slack link", "{body}");
    assert_eq!(body["handled_by"]["action"], "ignore", "{body}");

    // The link is spent: posting it again or opening it says by whom, and nothing is called.
    let again = alice
        .post(
            &links[0],
            &[("t", &t), ("csrf", &csrf)],
            &[("origin", &origin)],
        )
        .await;
    assert_eq!(again.status, 410, "{}", again.text);
    assert!(
        again.text.contains("already used, by alice"),
        "{}",
        again.text
    );
    assert_eq!(alice.get(&links[0], &[]).await.status, 410);
    assert_eq!(rig.calls("HandleSecurityEvents").len(), 1);

    // The audit log has it, from the link.
    let log = rig.daemon.messages("Handled a finding");
    assert!(
        log.iter()
            .any(|l| l["who"] == "alice" && l["via"] == "slack link"),
        "{log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_links_foreign_posts_and_strangers_are_refused_and_change_nothing() {
    let rig = Rig::start().await;
    let (a, a_links) = rig.new_alert().await;
    let (b, b_links) = rig.new_alert().await;
    let origin = rig.proxy.url();
    let mut alice = Visitor::new();
    let b_page = alice.get(&b_links[0], &[]).await;
    let (b_t, b_csrf) = confirmation(&b_page);

    // Links: tampered, garbage, expired, brought to another finding's page.
    let mut tampered = b_links[0].clone().into_bytes();
    let at = tampered.len() - 50;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let page = Visitor::new().get(&tampered, &[]).await;
    assert_eq!(page.status, 403, "{}", page.text);
    assert!(
        page.text.contains("signature does not match"),
        "{}",
        page.text
    );

    let page = Visitor::new()
        .get(&format!("{origin}/act/alerts/{b}?t=nonsense"), &[])
        .await;
    assert_eq!(page.status, 400, "{}", page.text);

    let mut old: sasrelay::action_link::Claims =
        serde_json::from_value(claims(&b_links[0])).unwrap();
    old.exp = time::OffsetDateTime::now_utc().unix_timestamp() - 1;
    let expired = format!(
        "{origin}/act/alerts/{b}?t={}",
        sasrelay::action_link::sign(KEY.as_bytes(), &old)
    );
    let page = Visitor::new().get(&expired, &[]).await;
    assert_eq!(page.status, 410, "{}", page.text);
    assert!(page.text.contains("expired"), "{}", page.text);

    let a_token = a_links[0].split("?t=").nth(1).unwrap();
    let cross = format!("{origin}/act/alerts/{b}?t={a_token}");
    let page = Visitor::new().get(&cross, &[]).await;
    assert_eq!(page.status, 403, "{}", page.text);
    assert!(page.text.contains("another finding"), "{}", page.text);
    let page = alice
        .post(
            &format!("{origin}/act/alerts/{b}"),
            &[("t", a_token), ("csrf", &b_csrf)],
            &[("origin", &origin)],
        )
        .await;
    assert_eq!(page.status, 403, "{}", page.text);

    // Posts from another site, or without the page's cookie and CSRF token.
    for headers in [
        vec![("origin", "http://evil.example")],
        vec![("origin", "null")],
        vec![("sec-fetch-site", "cross-site")],
    ] {
        let page = alice
            .post(&b_links[0], &[("t", &b_t), ("csrf", &b_csrf)], &headers)
            .await;
        assert_eq!(page.status, 403, "{headers:?}: {}", page.text);
        assert!(page.text.contains("another site"), "{}", page.text);
    }
    let stranger = Visitor::new();
    let page = stranger
        .post(&b_links[0], &[("t", &b_t), ("csrf", &b_csrf)], &[])
        .await;
    assert_eq!(page.status, 403, "{}", page.text);
    assert!(page.text.contains("CSRF"), "{}", page.text);
    let page = alice
        .post(&b_links[0], &[("t", &b_t), ("csrf", &"0".repeat(64))], &[])
        .await;
    assert_eq!(page.status, 403, "{}", page.text);

    // Someone the proxy names but the allow list does not: sees the page, cannot act.
    rig.proxy.sign_in(Some("mallory"));
    let mut mallory = Visitor::new();
    let page = mallory.get(&b_links[0], &[]).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("mallory is not among"), "{}", page.text);
    assert!(page.field("csrf").is_none(), "no form for mallory");
    let page = alice
        .post(&b_links[0], &[("t", &b_t), ("csrf", &b_csrf)], &[])
        .await;
    assert_eq!(page.status, 403, "{}", page.text);
    rig.proxy.sign_in(Some("alice"));

    // Straight to the page, not through the proxy: an identity header from 127.0.0.2 is not
    // believed, so the page is unauthenticated and offers no form.
    let direct = format!(
        "http://{}/act/alerts/{b}?t={}",
        rig.page,
        b_links[0].split("?t=").nth(1).unwrap()
    );
    let mut spoofer =
        Visitor::from(reqwest::Client::builder().local_address(Some("127.0.0.2".parse().unwrap())));
    let page = spoofer.get(&direct, &[("x-forwarded-user", "alice")]).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("not signed in"), "{}", page.text);
    assert!(page.field("csrf").is_none());

    // Nothing was called, no link was spent: B's link still works, once.
    assert_eq!(rig.calls("HandleSecurityEvents").len(), 0);
    let page = alice.get(&b_links[0], &[]).await;
    let (t, csrf) = confirmation(&page);
    let done = alice
        .post(
            &b_links[0],
            &[("t", &t), ("csrf", &csrf)],
            &[("origin", &origin)],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(rig.calls("HandleSecurityEvents").len(), 1);
    assert_eq!(rig.resolved(b).await["handled_by"]["who"], "alice");
    let _ = a;

    // Every answer is counted by outcome.
    let admin = super::admin::admin_addr(&rig.daemon).await;
    let metrics = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (outcome, n) in [
        ("shown", 4),
        ("tampered", 1),
        ("malformed", 1),
        ("expired", 1),
        ("other_finding", 2),
        ("cross_site", 3),
        ("csrf", 2),
        ("not_allowed", 1),
        ("done", 1),
    ] {
        let line = format!("sasrelay_action_page_requests_total{{outcome=\"{outcome}\"}} {n}\n");
        assert!(metrics.contains(&line), "no {line:?} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vulnerability_is_ignored_from_its_link_with_the_reason_the_page_asks_for() {
    let rig = Rig::polling(
        "domains = [\"vulnerabilities\"]",
        r#"{ vulnerabilities = "1s" }"#,
        &["vulnerabilities"],
    )
    .await;
    let (id, links) = rig.new_finding(SimDomain::Vuln, Value::Null).await;
    let actions: Vec<String> = links
        .iter()
        .map(|l| claims(l)["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["verify", "ignore"], "{links:?}");
    let ignore = &links[1];
    let origin = rig.proxy.url();

    let mut alice = Visitor::new();
    let page = alice.get(ignore, &[]).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains("Reason (required by Security Center)"),
        "{}",
        page.text
    );
    let (t, csrf) = confirmation(&page);

    // No reason: refused, the link not spent.
    let none = alice
        .post(
            ignore,
            &[("t", &t), ("csrf", &csrf), ("remark", " ")],
            &[("origin", &origin)],
        )
        .await;
    assert_eq!(none.status, 400, "{}", none.text);
    assert!(none.text.contains("needs a reason"), "{}", none.text);
    assert_eq!(alice.get(ignore, &[]).await.status, 200, "still usable");

    let done = alice
        .post(
            ignore,
            &[
                ("t", &t),
                ("csrf", &csrf),
                ("remark", "not reachable from outside"),
            ],
            &[("origin", &origin)],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    let calls = rig.calls("ModifyOperateVul");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["OperateType"], "vul_ignore");
    assert_eq!(calls[0]["Reason"], "not reachable from outside");

    let finding = format!("vul:{id}");
    let is = |r: &Request| r.delivered() && r.kind() == "resolved" && r.finding_id() == finding;
    rig.hook
        .wait_for(&format!("resolved {finding}"), T, |r| r.iter().any(is))
        .await;
    let body = rig
        .hook
        .delivered()
        .into_iter()
        .find(|r| is(r))
        .unwrap()
        .body;
    assert_eq!(body["resolution"], "ignored", "{body}");
    assert_eq!(body["handled_by"]["who"], "alice", "{body}");
    assert_eq!(body["handled_by"]["via"], "slack link", "{body}");
}
