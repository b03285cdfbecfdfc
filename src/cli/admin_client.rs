//! The CLI's client of the running daemon's admin API ([`crate::daemon::admin`]): the store allows one
//! process, so `sasrelay silence` and `sasrelay dead-letters` never open it; they read
//! `[admin] listen` and `[admin] token` from the config and ask the daemon. `sasrelay reload`
//! asks it to read its configuration again.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::out::outln;
use super::{EXIT_CONFIG, load_config, terminal_safe};
use crate::config::Settings;

/// A connection to the daemon's admin API, as the config describes it.
pub(super) struct AdminClient {
    http: reqwest::Client,
    base: String,
    addr: SocketAddr,
    config: String,
    token: Option<crate::secret::Secret>,
}

/// Why a call failed, already worded for the operator.
pub(super) struct Failed(pub(super) String);

impl AdminClient {
    /// The client for `settings`, or the exit code after printing why there is none.
    pub(super) fn new(settings: &Settings) -> Result<AdminClient, ExitCode> {
        let config = settings.file.display().to_string();
        let Some(listen) = settings.admin.listen else {
            eprintln!(
                "error: the admin API is off in {config} ([admin] listen = \"off\"): set [admin] listen (default \"{}\") and restart `sasrelay run`",
                crate::config::DEFAULT_ADMIN_LISTEN
            );
            return Err(ExitCode::from(EXIT_CONFIG));
        };
        if listen.port() == 0 {
            eprintln!(
                "error: [admin] listen in {config} has port 0 (any free port): the CLI cannot know which one the daemon bound; set a fixed port"
            );
            return Err(ExitCode::from(EXIT_CONFIG));
        }
        // A daemon listening on every interface is reached on loopback.
        let addr = match listen.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
            }
            _ => listen,
        };
        let token = match &settings.admin.token {
            Some(r) => match r.resolve() {
                Ok(t) => Some(t),
                Err(e) => {
                    eprintln!("error: [admin] token ({}): {e}", r.describe());
                    return Err(ExitCode::from(EXIT_CONFIG));
                }
            },
            None => None,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| {
                eprintln!("error: cannot build HTTP client: {e}");
                ExitCode::FAILURE
            })?;
        Ok(AdminClient {
            http,
            base: format!("http://{addr}/api/v1"),
            addr,
            config,
            token,
        })
    }

    /// `GET /readyz`: `Ok` when the daemon answers that it is ready.
    pub(super) async fn ready(&self) -> Result<(), Failed> {
        let resp = self
            .http
            .get(format!("http://{}/readyz", self.addr))
            .send()
            .await
            .map_err(|_| {
                Failed(format!(
                    "no sasrelay daemon answers at {} (from [admin] listen in {})",
                    self.addr, self.config
                ))
            })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            Ok(())
        } else {
            Err(Failed(format!(
                "the daemon at {} is not ready ({status}): {}",
                self.addr,
                terminal_safe(&text, 200)
            )))
        }
    }

    /// One call under `/api/v1`; `Ok` carries the JSON body of a 2xx answer.
    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Value, Failed> {
        let url = format!("{}{path}", self.base);
        self.send(method, &url, body).await.map_err(|(_, e)| e)
    }

    /// `POST /-/reload`; `Ok` carries what the reload did, `Err` the answer's status (when
    /// there was one) and why.
    pub(super) async fn reload(&self) -> Result<Value, (Option<u16>, Failed)> {
        let url = format!("http://{}/-/reload", self.addr);
        self.send(reqwest::Method::POST, &url, NO_BODY).await
    }

    /// One request to `url`; `Ok` carries the JSON body of a 2xx answer.
    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Value, (Option<u16>, Failed)> {
        let method_changes_state = method != reqwest::Method::GET;
        let mut req = self.http.request(method, url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose());
        }
        // The daemon takes a state change only as JSON (a cross-site defence, see
        // `daemon::door`), a DELETE without a body included.
        req = match body {
            Some(b) => req.json(b),
            None if method_changes_state => {
                req.header(reqwest::header::CONTENT_TYPE, "application/json")
            }
            None => req,
        };
        let resp = req.send().await.map_err(|e| {
            // The URL carries nothing secret, but the reqwest error text adds nothing either.
            let why = if e.is_connect() {
                "connection refused or unreachable"
            } else if e.is_timeout() {
                "timed out"
            } else {
                "request failed"
            };
            let why = format!(
                "cannot reach the sasrelay daemon's admin API at {} ({why}): is `sasrelay run --config {}` running, with [admin] listen = \"{}\"?",
                self.addr, self.config, self.addr
            );
            (None, Failed(why))
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| {
            let why = format!("reading the admin API's answer: {e}");
            (Some(status.as_u16()), Failed(why))
        })?;
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        let message = json["error"]
            .as_str()
            .map(crate::text::strip_control)
            .unwrap_or_else(|| terminal_safe(&text, 200));
        let code = status.as_u16();
        Err((
            Some(code),
            Failed(match code {
                401 => format!(
                    "the daemon at {} refused the admin token ({message}): check [admin] token in {} matches the daemon's",
                    self.addr, self.config
                ),
                code => format!("the daemon answered {code}: {message}"),
            }),
        ))
    }
}

/// The `body` of a call that sends none.
pub(super) const NO_BODY: Option<&()> = None;

/// The client for the config at `config`, or the exit code after printing why there is none.
pub(super) fn client(config: &Path) -> Result<AdminClient, ExitCode> {
    let settings = load_config(config)?;
    AdminClient::new(&settings)
}

/// Prints why a call failed; the exit code.
pub(super) fn fail(e: Failed) -> ExitCode {
    eprintln!("error: {}", e.0);
    ExitCode::FAILURE
}

/// `sasrelay healthcheck`: exit 0 when the daemon of `config` answers ready, 1 otherwise (for
/// a container `HEALTHCHECK`, which has no curl in the image).
pub(super) async fn healthcheck(config: &Path) -> ExitCode {
    let client = match client(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.ready().await {
        Ok(()) => {
            outln!("ready");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// Rows (the first is the header) as left-aligned columns two spaces apart; the last column
/// is not padded. Cells must already be terminal-safe.
pub(super) fn text_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(&widths).enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
