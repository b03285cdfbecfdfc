//! The credentials module end to end: config parsing, static and environment keys, and the
//! fetching providers (RRSA, ECS RAM role, credentials URI, the default chain) against local
//! fakes of STS, the ECS metadata service and a credentials endpoint on 127.0.0.1:0, including
//! background refresh driven by a manual clock and observed through the refresh-status channel.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use sasrelay::clock::{Clock, ManualClock, SystemClock};
use sasrelay::credentials::{
    CredentialContext, CredentialError, CredentialHandle, CredentialsConfig, Env, MapEnv,
    RefreshPolicy, RefreshStatus,
};
use serde_json::json;
use time::OffsetDateTime;
use time::macros::format_description;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Failure guard for every wait; never a synchronisation device.
const GUARD: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Harness

fn ts(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap()
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// An address nothing listens on (connection refused at once).
async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

fn parse(toml_text: &str) -> Result<CredentialsConfig, toml::de::Error> {
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Source {
        credentials: CredentialsConfig,
    }
    toml::from_str::<Source>(toml_text).map(|s| s.credentials)
}

fn cfg(toml_text: &str) -> CredentialsConfig {
    parse(toml_text).unwrap_or_else(|e| panic!("{toml_text}: {e}"))
}

struct Harness {
    clock: Arc<ManualClock>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    ctx: CredentialContext,
}

impl Harness {
    fn manual() -> Self {
        let clock = Arc::new(ManualClock::starting_now());
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let ctx = CredentialContext::new(reqwest::Client::new(), shutdown.clone(), tracker.clone())
            .with_clock(clock.clone())
            .with_refresh_policy(
                RefreshPolicy::new(
                    Duration::from_secs(15 * 60),
                    Duration::from_secs(5),
                    Duration::from_secs(60),
                )
                .unwrap(),
            );
        Harness {
            clock,
            shutdown,
            tracker,
            ctx,
        }
    }

    async fn build(&self, c: &CredentialsConfig, env: &dyn Env) -> CredentialHandle {
        CredentialHandle::from_config(c, env, &self.ctx)
            .await
            .unwrap_or_else(|e| panic!("from_config: {e}"))
    }

    async fn build_err(&self, c: &CredentialsConfig, env: &dyn Env) -> CredentialError {
        CredentialHandle::from_config(c, env, &self.ctx)
            .await
            .expect_err("from_config should fail")
    }

    /// Cancels and checks every refresher actually stops.
    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(GUARD, self.tracker.wait())
            .await
            .expect("refresh tasks stop on the cancellation token");
    }
}

async fn wait_status(
    rx: &mut watch::Receiver<RefreshStatus>,
    what: &str,
    f: impl FnMut(&RefreshStatus) -> bool,
) -> RefreshStatus {
    tokio::time::timeout(GUARD, rx.wait_for(f))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .expect("refresher dropped its status")
        .clone()
}

/// Captures log output of everything on this (current-thread) runtime.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        // While only one subscriber was ever registered, tracing computes a new callsite's
        // interest from the subscriber of whichever thread reaches it first; tests on other
        // threads have none, so a callsite they reach first would be cached as "never" here
        // (seen in `daemon::tasks`' log test). A second subscriber, registered once and kept
        // alive, makes tracing ask every one.
        static OTHER: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
        drop(tracing::dispatcher::set_default(OTHER.get_or_init(|| {
            tracing::Dispatch::new(tracing_subscriber::registry())
        })));
        let logs = Logs::default();
        let w = logs.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        (logs, tracing::subscriber::set_default(sub))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn assert_no_secret(text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "secret {s:?} leaked into:\n{text}");
    }
}

fn write_token(dir: &Path, token: &str) -> PathBuf {
    let p = dir.join("token");
    std::fs::write(&p, format!("{token}\n")).unwrap();
    p
}

// ---------------------------------------------------------------------------------------------
// Fake STS

#[derive(Clone, Debug)]
struct StsCall {
    query: HashMap<String, String>,
    form: HashMap<String, String>,
}

struct StsState {
    clock: Arc<dyn Clock>,
    /// Overrides `DurationSeconds` (real STS refuses under 900 s; tests want seconds).
    lifetime: Option<Duration>,
    failure: Mutex<Option<(StatusCode, serde_json::Value)>>,
    calls: Mutex<Vec<StsCall>>,
    count: watch::Sender<usize>,
    issued: AtomicU64,
}

#[derive(Clone)]
struct Sts {
    state: Arc<StsState>,
    addr: SocketAddr,
}

impl Sts {
    async fn start(clock: Arc<dyn Clock>, lifetime: Option<Duration>) -> Sts {
        let state = Arc::new(StsState {
            clock,
            lifetime,
            failure: Mutex::new(None),
            calls: Mutex::new(Vec::new()),
            count: watch::Sender::new(0),
            issued: AtomicU64::new(0),
        });
        let router = Router::new()
            .route("/", post(sts_handler))
            .with_state(state.clone());
        let addr = serve(router).await;
        Sts { state, addr }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn fail_with(&self, code: &str, message: &str) {
        *self.state.failure.lock().unwrap() = Some((
            StatusCode::BAD_REQUEST,
            json!({"RequestId": "REQ-STS-FAIL", "HostId": "sts.aliyuncs.com", "Code": code,
                   "Message": message, "Recommend": "https://api.aliyun.com/troubleshoot"}),
        ));
    }

    fn recover(&self) {
        *self.state.failure.lock().unwrap() = None;
    }

    fn calls(&self) -> Vec<StsCall> {
        self.state.calls.lock().unwrap().clone()
    }
}

async fn sts_handler(
    State(s): State<Arc<StsState>>,
    Query(query): Query<HashMap<String, String>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    s.calls.lock().unwrap().push(StsCall {
        query: query.clone(),
        form: form.clone(),
    });
    s.count.send_modify(|n| *n += 1);
    let all: HashMap<&str, &str> = query
        .iter()
        .chain(form.iter())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let bad = |code: &str, msg: String| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"RequestId": "REQ-BAD", "Code": code, "Message": msg})),
        )
            .into_response()
    };
    for (k, v) in [
        ("Action", "AssumeRoleWithOIDC"),
        ("Version", "2015-04-01"),
        ("Format", "JSON"),
    ] {
        if all.get(k) != Some(&v) {
            return bad("InvalidParameter", format!("{k} must be {v}"));
        }
    }
    for k in [
        "Timestamp",
        "RoleArn",
        "OIDCProviderArn",
        "OIDCToken",
        "RoleSessionName",
        "DurationSeconds",
    ] {
        if all.get(k).is_none_or(|v| v.is_empty()) {
            return bad("MissingParameter", format!("{k} is mandatory"));
        }
    }
    if all.contains_key("AccessKeyId") || all.contains_key("Signature") {
        return bad("InvalidParameter", "AssumeRoleWithOIDC is anonymous".into());
    }
    if let Some((status, body)) = s.failure.lock().unwrap().clone() {
        return (status, axum::Json(body)).into_response();
    }
    let lifetime = s.lifetime.unwrap_or_else(|| {
        Duration::from_secs(all["DurationSeconds"].parse().expect("numeric duration"))
    });
    let n = s.issued.fetch_add(1, Ordering::SeqCst) + 1;
    axum::Json(json!({
        "RequestId": format!("REQ-{n}"),
        "Credentials": {
            "AccessKeyId": format!("STS.rrsa-{n}"),
            "AccessKeySecret": format!("sts-secret-{n}"),
            "SecurityToken": format!("sts-token-{n}"),
            "Expiration": ts(s.clock.now() + lifetime),
        },
        "AssumedRoleUser": {"Arn": all["RoleArn"], "AssumedRoleId": "3000:sasrelay"},
    }))
    .into_response()
}

// ---------------------------------------------------------------------------------------------
// Fake ECS metadata service

#[derive(Clone, Debug, PartialEq, Eq)]
struct MetaCall {
    method: Method,
    path: String,
    token: Option<String>,
    ttl: Option<String>,
}

struct EcsState {
    clock: Arc<dyn Clock>,
    /// Whether `PUT /latest/api/token` works (hardened mode available).
    hardened: bool,
    /// Whether reads without the token are refused (IMDSv1 disabled on the instance).
    require_token: bool,
    role: String,
    code: Mutex<String>,
    calls: Mutex<Vec<MetaCall>>,
    issued: AtomicU64,
}

struct Ecs {
    state: Arc<EcsState>,
    addr: SocketAddr,
}

const MD_TOKEN: &str = "md-token-abc";

impl Ecs {
    async fn start(clock: Arc<dyn Clock>, hardened: bool, require_token: bool) -> Ecs {
        let state = Arc::new(EcsState {
            clock,
            hardened,
            require_token,
            role: "sasrelay-node".into(),
            code: Mutex::new("Success".into()),
            calls: Mutex::new(Vec::new()),
            issued: AtomicU64::new(0),
        });
        let router = Router::new()
            .route("/latest/api/token", put(md_token))
            .route("/latest/meta-data/ram/security-credentials/", get(md_roles))
            .route(
                "/latest/meta-data/ram/security-credentials/{role}",
                get(md_creds),
            )
            .with_state(state.clone());
        let addr = serve(router).await;
        Ecs { state, addr }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn calls(&self) -> Vec<MetaCall> {
        self.state.calls.lock().unwrap().clone()
    }
}

fn record(s: &EcsState, method: Method, path: &str, h: &HeaderMap) {
    let header = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_string());
    s.calls.lock().unwrap().push(MetaCall {
        method,
        path: path.to_string(),
        token: header("x-aliyun-ecs-metadata-token"),
        ttl: header("x-aliyun-ecs-metadata-token-ttl-seconds"),
    });
}

fn md_authorised(s: &EcsState, h: &HeaderMap) -> bool {
    match h.get("x-aliyun-ecs-metadata-token") {
        Some(t) => t == MD_TOKEN,
        None => !s.require_token,
    }
}

async fn md_token(State(s): State<Arc<EcsState>>, h: HeaderMap) -> Response {
    record(&s, Method::PUT, "/latest/api/token", &h);
    if !s.hardened {
        return (StatusCode::FORBIDDEN, "hardened mode unavailable").into_response();
    }
    if h.get("x-aliyun-ecs-metadata-token-ttl-seconds")
        .is_none_or(|v| v != "21600")
    {
        return (StatusCode::BAD_REQUEST, "ttl header required").into_response();
    }
    MD_TOKEN.into_response()
}

async fn md_roles(State(s): State<Arc<EcsState>>, h: HeaderMap) -> Response {
    record(
        &s,
        Method::GET,
        "/latest/meta-data/ram/security-credentials/",
        &h,
    );
    if !md_authorised(&s, &h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    format!("{}\n", s.role).into_response()
}

async fn md_creds(
    State(s): State<Arc<EcsState>>,
    UrlPath(role): UrlPath<String>,
    h: HeaderMap,
) -> Response {
    record(
        &s,
        Method::GET,
        &format!("/latest/meta-data/ram/security-credentials/{role}"),
        &h,
    );
    if !md_authorised(&s, &h) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if role != s.role {
        return (StatusCode::NOT_FOUND, "no such role").into_response();
    }
    let n = s.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let now = s.clock.now();
    axum::Json(json!({
        "Code": *s.code.lock().unwrap(),
        "AccessKeyId": format!("STS.ecs-{n}"),
        "AccessKeySecret": format!("ecs-secret-{n}"),
        "SecurityToken": format!("ecs-token-{n}"),
        "Expiration": ts(now + Duration::from_secs(6 * 3600)),
        "LastUpdated": ts(now),
    }))
    .into_response()
}

// ---------------------------------------------------------------------------------------------
// Fake credentials URI

struct UriState {
    clock: Arc<dyn Clock>,
    fail: AtomicBool,
    issued: AtomicU64,
}

struct UriFake {
    addr: SocketAddr,
    state: Arc<UriState>,
}

const URI_AUTH: &str = "uri-auth-hunter2";

impl UriFake {
    async fn start(clock: Arc<dyn Clock>) -> UriFake {
        let state = Arc::new(UriState {
            clock,
            fail: AtomicBool::new(false),
            issued: AtomicU64::new(0),
        });
        let router = Router::new()
            .route("/creds", get(uri_creds))
            .with_state(state.clone());
        UriFake {
            addr: serve(router).await,
            state,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/creds?auth={URI_AUTH}", self.addr)
    }
}

async fn uri_creds(
    State(s): State<Arc<UriState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if q.get("auth").map(String::as_str) != Some(URI_AUTH) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if s.fail.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "vault agent sealed").into_response();
    }
    let n = s.issued.fetch_add(1, Ordering::SeqCst) + 1;
    axum::Json(json!({
        "Code": "Success",
        "AccessKeyId": format!("STS.uri-{n}"),
        "AccessKeySecret": format!("uri-secret-{n}"),
        "SecurityToken": format!("uri-token-{n}"),
        "Expiration": ts(s.clock.now() + Duration::from_secs(3600)),
    }))
    .into_response()
}

// ---------------------------------------------------------------------------------------------
// Config

#[test]
fn every_type_parses_and_unknown_keys_are_rejected() {
    let ok = [
        r#"credentials = { type = "access_key", access_key_id = "LTAI5t", access_key_secret = { env = "SK" } }"#,
        r#"credentials = { type = "access_key", access_key_id = { file = "/run/id" }, access_key_secret = { file = "/run/sk" }, security_token = { env = "TOK" } }"#,
        r#"credentials = { type = "env" }"#,
        r#"credentials = { type = "rrsa" }"#,
        r#"credentials = { type = "rrsa", role_arn = "acs:ram::1:role/r", oidc_provider_arn = "acs:ram::1:oidc-provider/p", oidc_token_file = "/t", role_session_name = "sasrelay", duration = "1h30m", sts_endpoint = "https://sts.cn-shanghai.aliyuncs.com", policy = "{}" }"#,
        r#"credentials = { type = "ecs_ram_role" }"#,
        r#"credentials = { type = "ecs_ram_role", role_name = "node", metadata_endpoint = "http://100.100.100.200", imdsv1_fallback = false }"#,
        r#"credentials = { type = "uri", uri = "http://127.0.0.1:8080/c" }"#,
        r#"credentials = { type = "default" }"#,
        r#"credentials = { type = "default", sts_endpoint = "https://sts.aliyuncs.com", metadata_endpoint = "http://100.100.100.200" }"#,
    ];
    for text in ok {
        cfg(text);
    }
    let rrsa = cfg(ok[4]);
    match rrsa {
        CredentialsConfig::Rrsa(r) => assert_eq!(r.duration, Some(Duration::from_secs(5400))),
        other => panic!("{other:?}"),
    }

    let bad = [
        // An unknown key in every type.
        r#"credentials = { type = "access_key", access_key_id = "a", access_key_secret = { env = "SK" }, region = "x" }"#,
        r#"credentials = { type = "env", prefix = "X" }"#,
        r#"credentials = { type = "rrsa", role = "r" }"#,
        r#"credentials = { type = "ecs_ram_role", role = "r" }"#,
        r#"credentials = { type = "uri", url = "http://x" }"#,
        r#"credentials = { type = "default", profile = "p" }"#,
        // Unknown type, missing type.
        r#"credentials = { type = "ram_role_arn" }"#,
        r#"credentials = { uri = "http://x" }"#,
        // Inline secrets are not accepted.
        r#"credentials = { type = "access_key", access_key_id = "a", access_key_secret = "plain" }"#,
        // Missing required key.
        r#"credentials = { type = "access_key", access_key_id = "a" }"#,
        // Durations are strings with units.
        r#"credentials = { type = "rrsa", duration = 3600 }"#,
        r#"credentials = { type = "rrsa", duration = "1y" }"#,
    ];
    for text in bad {
        assert!(parse(text).is_err(), "accepted: {text}");
    }
    let e = parse(bad[2]).unwrap_err().to_string();
    assert!(e.contains("role"), "{e}");
}

#[tokio::test]
async fn config_problems_are_reported_together_before_any_network_call() {
    let h = Harness::manual();
    let env = MapEnv::new();
    let e = h
        .build_err(
            &cfg(r#"credentials = { type = "rrsa", duration = "10m", role_session_name = "a b" }"#),
            &env,
        )
        .await;
    assert!(matches!(e, CredentialError::Config(_)), "{e:?}");
    let msg = e.to_string();
    for needle in [
        "ALIBABA_CLOUD_ROLE_ARN",
        "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
        "role_session_name",
        "duration 600s",
    ] {
        assert!(msg.contains(needle), "{needle} missing from {msg}");
    }
    let e = h
        .build_err(&cfg(r#"credentials = { type = "uri" }"#), &env)
        .await;
    assert!(
        e.to_string().contains("ALIBABA_CLOUD_CREDENTIALS_URI"),
        "{e}"
    );
    let e = h
        .build_err(
            &cfg(r#"credentials = { type = "ecs_ram_role", metadata_endpoint = "ftp://x" }"#),
            &env,
        )
        .await;
    assert!(e.to_string().contains("metadata_endpoint"), "{e}");
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Static and environment keys

#[tokio::test]
async fn access_keys_come_from_env_and_file_secret_refs() {
    let h = Harness::manual();
    let dir = tempfile::tempdir().unwrap();
    let sk = dir.path().join("sk");
    std::fs::write(&sk, "file-secret-value\n").unwrap();
    let env = MapEnv::new()
        .set("SAS_AK", "LTAI-from-env")
        .set("SAS_TOKEN", "static-sts-token");

    let text = format!(
        r#"credentials = {{ type = "access_key", access_key_id = {{ env = "SAS_AK" }}, access_key_secret = {{ file = "{}" }} }}"#,
        sk.display()
    );
    let handle = h.build(&cfg(&text), &env).await;
    let c = handle.current().unwrap();
    assert_eq!(c.access_key_id, "LTAI-from-env");
    assert_eq!(c.access_key_secret.expose(), "file-secret-value");
    assert_eq!(c.security_token, None);
    assert_eq!(c.provider, "static_ak");
    assert!(handle.refresh_status().is_none());

    let text = format!(
        r#"credentials = {{ type = "access_key", access_key_id = "LTAI-inline", access_key_secret = {{ file = "{}" }}, security_token = {{ env = "SAS_TOKEN" }} }}"#,
        sk.display()
    );
    let c = h.build(&cfg(&text), &env).await.current().unwrap();
    assert_eq!(c.access_key_id, "LTAI-inline");
    assert_eq!(c.security_token.unwrap().expose(), "static-sts-token");
    assert_eq!(c.provider, "static_sts");

    let missing = r#"credentials = { type = "access_key", access_key_id = { env = "NOPE_ID" }, access_key_secret = { env = "NOPE_SK" } }"#;
    let e = h.build_err(&cfg(missing), &env).await;
    assert!(matches!(e, CredentialError::Config(_)));
    let msg = e.to_string();
    assert!(msg.contains("NOPE_ID") && msg.contains("NOPE_SK"), "{msg}");
    h.stop().await;
}

#[tokio::test]
async fn env_provider_reads_the_sdk_variables() {
    let h = Harness::manual();
    let env = MapEnv::new()
        .set("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI-env")
        .set("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "env-secret")
        .set("ALIBABA_CLOUD_SECURITY_TOKEN", "env-token");
    let handle = h
        .build(&cfg(r#"credentials = { type = "env" }"#), &env)
        .await;
    let c = handle.current().unwrap();
    assert_eq!(
        (
            c.access_key_id.as_str(),
            c.access_key_secret.expose(),
            c.provider
        ),
        ("LTAI-env", "env-secret", "env")
    );
    assert_eq!(c.security_token.as_ref().unwrap().expose(), "env-token");
    assert_no_secret(&format!("{handle:?} {c:?}"), &["env-secret", "env-token"]);

    let partial = MapEnv::new().set("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI-env");
    let e = h
        .build_err(&cfg(r#"credentials = { type = "env" }"#), &partial)
        .await;
    assert!(
        e.to_string()
            .contains("ALIBABA_CLOUD_ACCESS_KEY_SECRET is not"),
        "{e}"
    );
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// RRSA

fn rrsa_env(token_file: &Path) -> MapEnv {
    MapEnv::new()
        .set("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1234:role/sasrelay")
        .set(
            "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
            "acs:ram::1234:oidc-provider/ack-rrsa-c1",
        )
        .set(
            "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
            token_file.to_string_lossy(),
        )
}

#[tokio::test]
async fn rrsa_exchanges_the_token_and_rereads_a_rotated_token_file() {
    let h = Harness::manual();
    let sts = Sts::start(h.clock.clone(), None).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_token(dir.path(), "oidc-jwt-v1");
    let env = rrsa_env(&token_file).set("ALIBABA_CLOUD_ROLE_SESSION_NAME", "sasrelay-test");
    let text = format!(
        r#"credentials = {{ type = "rrsa", duration = "20m", sts_endpoint = "{}" }}"#,
        sts.url()
    );
    let started = h.clock.now();
    let handle = h.build(&cfg(&text), &env).await;
    let c = handle.current().unwrap();
    assert_eq!(c.access_key_id, "STS.rrsa-1");
    assert_eq!(c.access_key_secret.expose(), "sts-secret-1");
    assert_eq!(c.security_token.as_ref().unwrap().expose(), "sts-token-1");
    assert_eq!(c.provider, "rrsa");
    assert_eq!(c.expiration, Some(started + Duration::from_secs(1200)));

    let first = &sts.calls()[0];
    assert_eq!(first.form["OIDCToken"], "oidc-jwt-v1");
    assert_eq!(first.form["RoleArn"], "acs:ram::1234:role/sasrelay");
    assert_eq!(
        first.form["OIDCProviderArn"],
        "acs:ram::1234:oidc-provider/ack-rrsa-c1"
    );
    assert_eq!(first.form["RoleSessionName"], "sasrelay-test");
    assert_eq!(first.form["DurationSeconds"], "1200");
    assert_eq!(first.query["Timestamp"], ts(started));
    assert!(
        !first.query.contains_key("OIDCToken"),
        "the token stays out of the URL"
    );

    // The kubelet rotates the projected token; the next refresh must send the new one.
    write_token(dir.path(), "oidc-jwt-v2");
    let mut status = handle.refresh_status().expect("rrsa refreshes");
    let due = status.borrow().next_attempt.unwrap();
    // 20 min of life: the 15 min lead is capped at half of it, so the refresh is due at 10 min
    // (before 2/3, 13 min 20 s).
    assert_eq!(due, started + Duration::from_secs(600));
    h.clock.advance_to(due);
    wait_status(&mut status, "the first refresh", |s| s.generation == 2).await;
    let c = handle.current().unwrap();
    assert_eq!(c.access_key_id, "STS.rrsa-2");
    let calls = sts.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].form["OIDCToken"], "oidc-jwt-v2");
    assert_eq!(calls[1].query["Timestamp"], ts(due));
    h.stop().await;
}

#[tokio::test]
async fn rrsa_first_fetch_failure_names_provider_endpoint_code_and_request_id() {
    let h = Harness::manual();
    let sts = Sts::start(h.clock.clone(), None).await;
    sts.fail_with(
        "InvalidParameter.OIDCToken",
        "The OIDC token oidc-jwt-secret is expired.",
    );
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_token(dir.path(), "oidc-jwt-secret");
    let text = format!(
        r#"credentials = {{ type = "rrsa", sts_endpoint = "{}" }}"#,
        sts.url()
    );
    let e = h.build_err(&cfg(&text), &rrsa_env(&token_file)).await;
    assert!(matches!(e, CredentialError::Unavailable(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "rrsa: AssumeRoleWithOIDC at {} failed: HTTP 400: InvalidParameter.OIDCToken:",
            sts.url()
        )),
        "{msg}"
    );
    assert!(msg.contains("(RequestId REQ-STS-FAIL)"), "{msg}");
    assert_no_secret(&msg, &["oidc-jwt-secret"]);
    assert_no_secret(&format!("{e:?}"), &["oidc-jwt-secret"]);

    // A missing token file is named.
    let gone = dir.path().join("gone");
    let e = h.build_err(&cfg(&text), &rrsa_env(&gone)).await;
    assert!(
        e.to_string()
            .starts_with(&format!("rrsa: OIDC token file {}:", gone.display())),
        "{e}"
    );

    // An unreachable STS is named with the transport reason.
    let closed = closed_port().await;
    let text = format!(r#"credentials = {{ type = "rrsa", sts_endpoint = "http://{closed}" }}"#);
    let e = h.build_err(&cfg(&text), &rrsa_env(&token_file)).await;
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "rrsa: AssumeRoleWithOIDC at http://{closed} failed: "
        )),
        "{msg}"
    );
    assert!(msg.len() > format!("rrsa: AssumeRoleWithOIDC at http://{closed} failed: ").len());
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Background refresh

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_runs_ahead_of_expiry_and_current_never_sees_a_gap() {
    let h = Harness::manual();
    let sts = Sts::start(h.clock.clone(), None).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_token(dir.path(), "oidc-jwt");
    let text = format!(
        r#"credentials = {{ type = "rrsa", sts_endpoint = "{}" }}"#,
        sts.url()
    );
    let handle = h.build(&cfg(&text), &rrsa_env(&token_file)).await;
    let mut status = handle.refresh_status().unwrap();

    // A reader on another thread calls current() as fast as it can throughout, publishing how
    // many reads it has made so the test can make sure it overlaps every refresh.
    let stop = Arc::new(AtomicBool::new(false));
    let (reads_tx, mut reads) = watch::channel(0u64);
    let reader = {
        let (handle, stop) = (handle.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = handle.current() {
                    errors.push(e.to_string());
                }
                reads_tx.send_modify(|n| *n += 1);
                std::thread::yield_now();
            }
            errors
        })
    };
    let mut reader_progressed = async || {
        let seen = *reads.borrow_and_update();
        tokio::time::timeout(GUARD, reads.wait_for(|n| *n > seen))
            .await
            .expect("reader makes progress")
            .expect("reader alive");
    };

    for generation in 1..=4u64 {
        reader_progressed().await;
        let before = status.borrow().clone();
        assert_eq!(before.generation, generation);
        let old = handle.current().unwrap();
        let expires = old.expiration.unwrap();
        let due = before.next_attempt.unwrap();
        // One hour of life: refreshed at 2/3 (40 min), 20 min ahead of expiry.
        assert_eq!(expires - due, time::Duration::minutes(20));
        // Walk up to the due time a minute at a time: the same key is served all along.
        while h.clock.now() + Duration::from_secs(60) < due {
            h.clock.advance(Duration::from_secs(60));
            assert_eq!(handle.current().unwrap().access_key_id, old.access_key_id);
        }
        h.clock.advance_to(due);
        let after = wait_status(&mut status, "a refresh", |s| s.generation == generation + 1).await;
        assert!(
            h.clock.now() < expires,
            "refreshed before the old key expired"
        );
        let new = handle.current().unwrap();
        assert_ne!(new.access_key_id, old.access_key_id);
        assert_eq!(after.expiration, new.expiration.unwrap());
        assert_eq!(after.consecutive_failures, 0);
        reader_progressed().await;
    }
    assert_eq!(sts.calls().len(), 5);

    stop.store(true, Ordering::Relaxed);
    let errors = reader.join().unwrap();
    assert!(errors.is_empty(), "current() failed: {errors:?}");

    // Shutdown stops the task: the status channel reports no next attempt, then closes.
    h.shutdown.cancel();
    wait_status(&mut status, "the refresher to stop", |s| {
        s.next_attempt.is_none()
    })
    .await;
    h.stop().await;
    // The last credential is still served after shutdown, until it expires.
    assert!(handle.current().is_ok());
}

#[tokio::test(flavor = "current_thread")]
async fn failed_refresh_keeps_the_old_key_then_errors_after_expiry_then_recovers() {
    let (logs, _guard) = Logs::capture();
    let h = Harness::manual();
    let sts = Sts::start(h.clock.clone(), None).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_token(dir.path(), "oidc-jwt-private");
    let text = format!(
        r#"credentials = {{ type = "rrsa", sts_endpoint = "{}" }}"#,
        sts.url()
    );
    let handle = h.build(&cfg(&text), &rrsa_env(&token_file)).await;
    let mut status = handle.refresh_status().unwrap();
    let old = handle.current().unwrap();
    let expires = old.expiration.unwrap();

    sts.fail_with("InvalidParameter.OIDCToken", "token expired");
    let due = status.borrow().next_attempt.unwrap();
    h.clock.advance_to(due);
    let s = wait_status(&mut status, "a failed refresh", |s| s.total_failures == 1).await;
    let err = s.last_error.unwrap();
    assert!(err.contains("InvalidParameter.OIDCToken"), "{err}");
    assert!(err.contains(&sts.url()), "{err}");
    // Still serving the old key, which has not expired.
    assert_eq!(handle.current().unwrap().access_key_id, old.access_key_id);
    let retry = s.next_attempt.unwrap();
    assert!(
        retry > due && retry <= due + Duration::from_secs(5),
        "backoff starts at ≤ 5 s"
    );
    let text_now = logs.text();
    assert!(
        text_now.contains("WARN")
            && text_now.contains("keeping the current credential until it expires")
            && text_now.contains(&format!("expires_at={}", ts(expires))),
        "{text_now}"
    );

    // Past expiry the handle errors, naming the provider and the last failure.
    h.clock.advance_to(expires);
    let e = handle.current().unwrap_err().to_string();
    assert!(e.starts_with("rrsa: the credential expired at"), "{e}");
    assert!(e.contains("InvalidParameter.OIDCToken"), "{e}");
    let s = wait_status(&mut status, "a failure after expiry", |s| {
        s.total_failures >= 2
    })
    .await;
    assert!(s.consecutive_failures >= 2);
    assert!(logs.text().contains("ERROR"), "{}", logs.text());

    // STS recovers: the next retry (at most max_backoff later) restores service.
    sts.recover();
    h.clock.advance(Duration::from_secs(60));
    wait_status(&mut status, "recovery", |s| s.generation == 2).await;
    let c = handle.current().unwrap();
    assert_eq!(c.access_key_id, "STS.rrsa-2");
    assert_eq!(status.borrow().consecutive_failures, 0);

    // Nothing secret anywhere: logs, errors, Debug of handle, credential and status.
    let everything = format!(
        "{}\n{e}\n{handle:?}\n{c:?}\n{old:?}\n{:?}",
        logs.text(),
        *status.borrow()
    );
    assert_no_secret(
        &everything,
        &[
            "oidc-jwt-private",
            "sts-secret-1",
            "sts-token-1",
            "sts-secret-2",
            "sts-token-2",
        ],
    );
    assert!(everything.contains("STS.rrsa-2"), "the key ID may be shown");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_credentials_refresh_on_the_real_clock_without_a_gap() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // 6 s of life (as issued with second precision, 5-6 s): refreshed at half of it.
    let sts = Sts::start(clock.clone(), Some(Duration::from_secs(6))).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_token(dir.path(), "oidc-jwt");
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let ctx = CredentialContext::new(reqwest::Client::new(), shutdown.clone(), tracker.clone());
    let text = format!(
        r#"credentials = {{ type = "rrsa", sts_endpoint = "{}" }}"#,
        sts.url()
    );
    let handle = CredentialHandle::from_config(&cfg(&text), &rrsa_env(&token_file), &ctx)
        .await
        .unwrap();
    let mut status = handle.refresh_status().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (handle, stop) = (handle.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = handle.current() {
                    errors.push(e.to_string());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            errors
        })
    };
    wait_status(&mut status, "a real-time refresh", |s| s.generation >= 2).await;
    stop.store(true, Ordering::Relaxed);
    let errors = reader.join().unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(handle.current().unwrap().access_key_id, "STS.rrsa-2");
    shutdown.cancel();
    tracker.close();
    tokio::time::timeout(GUARD, tracker.wait()).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// ECS RAM role

#[tokio::test]
async fn ecs_hardened_flow_uses_the_token_for_discovery_and_credentials() {
    let h = Harness::manual();
    let ecs = Ecs::start(h.clock.clone(), true, true).await;
    let text = format!(
        r#"credentials = {{ type = "ecs_ram_role", metadata_endpoint = "{}" }}"#,
        ecs.url()
    );
    let handle = h.build(&cfg(&text), &MapEnv::new()).await;
    let c = handle.current().unwrap();
    assert_eq!(c.access_key_id, "STS.ecs-1");
    assert_eq!(c.provider, "ecs_ram_role");
    assert_eq!(c.security_token.as_ref().unwrap().expose(), "ecs-token-1");
    let tok = Some(MD_TOKEN.to_string());
    assert_eq!(
        ecs.calls(),
        vec![
            MetaCall {
                method: Method::PUT,
                path: "/latest/api/token".into(),
                token: None,
                ttl: Some("21600".into())
            },
            MetaCall {
                method: Method::GET,
                path: "/latest/meta-data/ram/security-credentials/".into(),
                token: tok.clone(),
                ttl: None
            },
            MetaCall {
                method: Method::GET,
                path: "/latest/meta-data/ram/security-credentials/sasrelay-node".into(),
                token: tok.clone(),
                ttl: None
            },
        ]
    );

    // A refresh re-fetches the token but reuses the discovered role.
    let mut status = handle.refresh_status().unwrap();
    let due = status.borrow().next_attempt.unwrap();
    h.clock.advance_to(due);
    wait_status(&mut status, "an ECS refresh", |s| s.generation == 2).await;
    assert_eq!(handle.current().unwrap().access_key_id, "STS.ecs-2");
    let paths: Vec<String> = ecs.calls()[3..].iter().map(|c| c.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/latest/api/token",
            "/latest/meta-data/ram/security-credentials/sasrelay-node"
        ]
    );

    // A configured role skips discovery; Code other than Success is an error.
    *ecs.state.code.lock().unwrap() = "Failed".into();
    let text = format!(
        r#"credentials = {{ type = "ecs_ram_role", role_name = "sasrelay-node", metadata_endpoint = "{}" }}"#,
        ecs.url()
    );
    let before = ecs.calls().len();
    let e = h.build_err(&cfg(&text), &MapEnv::new()).await.to_string();
    assert!(
        e.starts_with(&format!(
            "ecs_ram_role: metadata service at {} failed: GET /latest/meta-data/ram/security-credentials/sasrelay-node: Code is \"Failed\"",
            ecs.url()
        )),
        "{e}"
    );
    assert_no_secret(&e, &["ecs-secret", "ecs-token"]);
    assert!(
        ecs.calls()[before..]
            .iter()
            .all(|c| c.path != "/latest/meta-data/ram/security-credentials/")
    );
    h.stop().await;
}

#[tokio::test]
async fn ecs_falls_back_to_imdsv1_unless_disabled() {
    let h = Harness::manual();
    let ecs = Ecs::start(h.clock.clone(), false, false).await;
    let text = format!(
        r#"credentials = {{ type = "ecs_ram_role", metadata_endpoint = "{}" }}"#,
        ecs.url()
    );
    let handle = h.build(&cfg(&text), &MapEnv::new()).await;
    assert_eq!(handle.current().unwrap().access_key_id, "STS.ecs-1");
    let calls = ecs.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].method, Method::PUT);
    assert!(
        calls[1..].iter().all(|c| c.token.is_none()),
        "IMDSv1 reads carry no token: {calls:?}"
    );

    // Disabled by config or by the SDK's variable: the token failure is final.
    let off = format!(
        r#"credentials = {{ type = "ecs_ram_role", metadata_endpoint = "{}", imdsv1_fallback = false }}"#,
        ecs.url()
    );
    let by_env = MapEnv::new().set("ALIBABA_CLOUD_IMDSV1_DISABLED", "true");
    for (c, env) in [(cfg(&off), MapEnv::new()), (cfg(&text), by_env)] {
        let before = ecs.calls().len();
        let e = h.build_err(&c, &env).await.to_string();
        assert!(
            e.starts_with(&format!(
                "ecs_ram_role: metadata service at {} failed: PUT /latest/api/token: HTTP 403",
                ecs.url()
            )) && e.ends_with("(IMDSv1 fallback is disabled)"),
            "{e}"
        );
        assert_eq!(
            ecs.calls().len(),
            before + 1,
            "no header-less read was made"
        );
    }
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Credentials URI

#[tokio::test]
async fn uri_provider_fetches_refreshes_and_never_shows_the_query() {
    let h = Harness::manual();
    let fake = UriFake::start(h.clock.clone()).await;
    let env = MapEnv::new().set("ALIBABA_CLOUD_CREDENTIALS_URI", fake.url());
    let handle = h
        .build(&cfg(r#"credentials = { type = "uri" }"#), &env)
        .await;
    let c = handle.current().unwrap();
    assert_eq!((c.access_key_id.as_str(), c.provider), ("STS.uri-1", "uri"));
    assert_eq!(c.access_key_secret.expose(), "uri-secret-1");

    let mut status = handle.refresh_status().unwrap();
    fake.state.fail.store(true, Ordering::SeqCst);
    let due = status.borrow().next_attempt.unwrap();
    h.clock.advance_to(due);
    let s = wait_status(&mut status, "a failed URI refresh", |s| {
        s.total_failures == 1
    })
    .await;
    let err = s.last_error.unwrap();
    assert_eq!(
        err,
        format!(
            "uri: GET http://{}/creds failed: HTTP 500: vault agent sealed",
            fake.addr
        )
    );
    assert_no_secret(&err, &[URI_AUTH]);

    let text = format!(
        r#"credentials = {{ type = "uri", uri = "{}" }}"#,
        fake.url()
    );
    let e = h.build_err(&cfg(&text), &MapEnv::new()).await.to_string();
    assert!(e.starts_with("uri: GET http://"), "{e}");
    assert_no_secret(&e, &[URI_AUTH]);
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Default chain

#[tokio::test]
async fn default_chain_takes_the_first_provider_that_yields_in_sdk_order() {
    let h = Harness::manual();
    let sts = Sts::start(h.clock.clone(), None).await;
    let ecs = Ecs::start(h.clock.clone(), true, true).await;
    let uri = UriFake::start(h.clock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_token(dir.path(), "oidc-jwt");
    let chain = cfg(&format!(
        r#"credentials = {{ type = "default", sts_endpoint = "{}", metadata_endpoint = "{}" }}"#,
        sts.url(),
        ecs.url()
    ));
    let env_keys = [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI-env"),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "env-secret"),
    ];
    let uri_var = ("ALIBABA_CLOUD_CREDENTIALS_URI", uri.url());
    let everything = rrsa_env(&token_file)
        .set(env_keys[0].0, env_keys[0].1)
        .set(env_keys[1].0, env_keys[1].1)
        .set(uri_var.0, &uri_var.1);

    // 1. Environment keys win over everything.
    let handle = h.build(&chain, &everything).await;
    assert_eq!(handle.provider_name(), Some("env"));
    assert_eq!(
        sts.calls().len() + ecs.calls().len(),
        0,
        "nothing else was tried"
    );

    // 2. Then RRSA, when all three variables are set.
    let env = rrsa_env(&token_file).set(uri_var.0, &uri_var.1);
    let handle = h.build(&chain, &env).await;
    assert_eq!(handle.current().unwrap().provider, "rrsa");
    assert!(handle.refresh_status().is_some());
    assert!(ecs.calls().is_empty());

    // 3. Then the ECS role (RRSA incomplete: only two of three variables).
    let env = MapEnv::new()
        .set("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/r")
        .set(
            "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
            "acs:ram::1:oidc-provider/p",
        )
        .set(uri_var.0, &uri_var.1);
    let handle = h.build(&chain, &env).await;
    assert_eq!(handle.current().unwrap().provider, "ecs_ram_role");
    assert_eq!(uri.state.issued.load(Ordering::SeqCst), 0);

    // 4. Then the URI, when ECS metadata is disabled.
    let env = MapEnv::new()
        .set("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
        .set(uri_var.0, &uri_var.1);
    let handle = h.build(&chain, &env).await;
    assert_eq!(handle.current().unwrap().provider, "uri");

    // A failing step is passed over: STS refuses, so ECS wins.
    sts.fail_with("NoPermission", "role trust policy denies the provider");
    let handle = h.build(&chain, &rrsa_env(&token_file)).await;
    assert_eq!(handle.current().unwrap().provider, "ecs_ram_role");
    h.stop().await;
}

#[tokio::test]
async fn default_chain_error_lists_every_step() {
    let h = Harness::manual();
    let sts = Sts::start(h.clock.clone(), None).await;
    sts.fail_with("NoPermission", "denied");
    let dead = closed_port().await;
    let chain = cfg(&format!(
        r#"credentials = {{ type = "default", sts_endpoint = "{}", metadata_endpoint = "http://{dead}" }}"#,
        sts.url()
    ));

    let e = h.build_err(&chain, &MapEnv::new()).await;
    assert!(matches!(e, CredentialError::Unavailable(_)));
    let msg = e.to_string();
    let steps: Vec<&str> = msg
        .strip_prefix("default chain: no provider yielded a credential: ")
        .unwrap_or_else(|| panic!("{msg}"))
        .split("; ")
        .collect();
    assert_eq!(steps.len(), 4, "{msg}");
    assert_eq!(
        steps[0],
        "env: ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET are not set"
    );
    assert_eq!(
        steps[1],
        "rrsa: skipped, ALIBABA_CLOUD_OIDC_TOKEN_FILE, ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN not set"
    );
    assert!(
        steps[2].starts_with(&format!(
            "ecs_ram_role: metadata service at http://{dead} failed: GET /latest/meta-data/ram/security-credentials/"
        )) && steps[2].contains("(IMDSv1 was used because PUT /latest/api/token: "),
        "{}",
        steps[2]
    );
    assert_eq!(
        steps[3],
        "uri: skipped, ALIBABA_CLOUD_CREDENTIALS_URI not set"
    );

    // With RRSA configured but refused, ECS disabled and the URI failing, each says why.
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_token(dir.path(), "oidc-jwt");
    let env = rrsa_env(&token_file)
        .set("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI-only-half")
        .set("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
        .set(
            "ALIBABA_CLOUD_CREDENTIALS_URI",
            format!("http://{dead}/creds"),
        );
    let msg = h.build_err(&chain, &env).await.to_string();
    for needle in [
        "env: ALIBABA_CLOUD_ACCESS_KEY_ID is set but ALIBABA_CLOUD_ACCESS_KEY_SECRET is not",
        &format!(
            "rrsa: AssumeRoleWithOIDC at {} failed: HTTP 400: NoPermission: denied",
            sts.url()
        ),
        "ecs_ram_role: skipped, ALIBABA_CLOUD_ECS_METADATA_DISABLED=true",
        &format!("uri: GET http://{dead}/creds failed: "),
    ] {
        assert!(msg.contains(needle), "{needle:?} missing from {msg}");
    }
    h.stop().await;
}
