//! `sasrelay silence add | list | expire`: a small client of the running daemon's admin API
//! ([`crate::admin`]). The store allows one process, so these commands never open it; they
//! read `[admin] listen` and `[admin] token` from the config and ask the daemon.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::{EXIT_CONFIG, load_config, terminal_safe};
use crate::admin::{NewSilence, SilenceView};
use crate::config::Settings;

/// A connection to the daemon's admin API, as the config describes it.
struct AdminClient {
    http: reqwest::Client,
    base: String,
    addr: SocketAddr,
    config: String,
    token: Option<crate::secret::Secret>,
}

/// Why a call failed, already worded for the operator.
struct Failed(String);

impl AdminClient {
    /// The client for `settings`, or the exit code after printing why there is none.
    fn new(settings: &Settings) -> Result<AdminClient, ExitCode> {
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

    /// One call; `Ok` carries the JSON body of a 2xx answer.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&NewSilence>,
    ) -> Result<Value, Failed> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose());
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            // The URL carries nothing secret, but the reqwest error text adds nothing either.
            let why = if e.is_connect() {
                "connection refused or unreachable"
            } else if e.is_timeout() {
                "timed out"
            } else {
                "request failed"
            };
            Failed(format!(
                "cannot reach the sasrelay daemon's admin API at {} ({why}): is `sasrelay run --config {}` running, with [admin] listen = \"{}\"?",
                self.addr, self.config, self.addr
            ))
        })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| Failed(format!("reading the admin API's answer: {e}")))?;
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        let message = json["error"]
            .as_str()
            .map(crate::sinks::strip_control)
            .unwrap_or_else(|| terminal_safe(&text, 200));
        Err(Failed(match status.as_u16() {
            401 => format!(
                "the daemon at {} refused the admin token ({message}): check [admin] token in {} matches the daemon's",
                self.addr, self.config
            ),
            code => format!("the daemon answered {code}: {message}"),
        }))
    }
}

fn client(config: &Path) -> Result<AdminClient, ExitCode> {
    let settings = load_config(config)?;
    AdminClient::new(&settings)
}

fn fail(e: Failed) -> ExitCode {
    eprintln!("error: {}", e.0);
    ExitCode::FAILURE
}

/// `silence add`: prints the new silence's id.
pub(super) async fn add(config: &Path, req: NewSilence) -> ExitCode {
    let client = match client(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client
        .call(reqwest::Method::POST, "/silences", Some(&req))
        .await
    {
        Ok(v) => {
            let id = v["id"].as_str().unwrap_or_default();
            let ends = v["silence"]["ends_at"].as_str().unwrap_or_default();
            let state = v["silence"]["state"].as_str().unwrap_or_default();
            println!("{}", terminal_safe(id, 64));
            eprintln!(
                "silence {} created ({}, ends {})",
                terminal_safe(id, 64),
                terminal_safe(state, 16),
                terminal_safe(ends, 40)
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// `silence list`: a table of pending and active silences (every one with `all`), or JSON.
pub(super) async fn list(config: &Path, all: bool, json: bool) -> ExitCode {
    let client = match client(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let body = match client.call(reqwest::Method::GET, "/silences", None).await {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let views: Vec<SilenceView> = match serde_json::from_value(body["silences"].clone()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: unexpected answer from the admin API: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shown: Vec<&SilenceView> = views
        .iter()
        .filter(|v| all || v.state != "expired")
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&shown).unwrap_or_else(|_| "[]".into())
        );
        return ExitCode::SUCCESS;
    }
    print!("{}", table(&shown));
    if shown.len() < views.len() {
        eprintln!(
            "({} expired silence{} hidden; --all shows them)",
            views.len() - shown.len(),
            if views.len() - shown.len() == 1 {
                ""
            } else {
                "s"
            }
        );
    }
    ExitCode::SUCCESS
}

/// The listing as a text table; every untrusted string stripped of control characters.
fn table(views: &[&SilenceView]) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "STATE".into(),
        "ENDS".into(),
        "SUPPRESSED".into(),
        "AUTHOR".into(),
        "MATCHERS".into(),
        "COMMENT".into(),
    ]];
    for v in views {
        let s = &v.silence;
        let matchers: Vec<String> = s.matchers.iter().map(|m| m.to_string()).collect();
        rows.push([
            terminal_safe(&s.id, 40),
            terminal_safe(&v.state, 10),
            s.ends_at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            v.suppressed.to_string(),
            terminal_safe(&s.created_by, 24),
            terminal_safe(&matchers.join(", "), 100),
            terminal_safe(&s.comment, 80),
        ]);
    }
    let mut widths = [0usize; 7];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(widths).enumerate() {
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

/// `silence expire ID`.
pub(super) async fn expire(config: &Path, id: &str) -> ExitCode {
    let client = match client(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let path = format!(
        "/silences/{}",
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
    );
    match client.call(reqwest::Method::DELETE, &path, None).await {
        Ok(v) => {
            println!(
                "silence {} expired ({} suppressed)",
                terminal_safe(v["id"].as_str().unwrap_or(id), 64),
                v["suppressed"].as_u64().unwrap_or(0)
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_strips_control_characters_and_aligns() {
        let s = crate::routing::Silence::new(
            "id-1",
            crate::routing::parse_matchers(r#"namespace="kube-system""#).unwrap(),
            "2026-05-01T10:00:00Z".parse().unwrap(),
            "2026-05-01T12:00:00.5Z".parse().unwrap(),
            "eve\u{1b}[31m",
            "line\nbreak",
            "2026-05-01T09:00:00Z".parse().unwrap(),
        )
        .unwrap();
        let v = SilenceView {
            silence: s,
            state: "active".into(),
            suppressed: 3,
        };
        let t = table(&[&v]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2, "{t}");
        assert!(lines[0].starts_with("ID    STATE   ENDS"), "{t}");
        assert!(lines[1].contains("2026-05-01T12:00:00Z  3 "), "{t}");
        assert!(lines[1].contains("eve [31m"), "{t}");
        assert!(lines[1].ends_with("line break"), "{t}");
        assert!(!t.contains('\u{1b}'));
    }
}
