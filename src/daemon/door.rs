//! The admin API's door: how connections are let in and how requests are screened before any
//! handler of [`crate::daemon::admin`] sees them.
//!
//! The API can expire silences and replay or discard dead letters, so it is guarded against
//! more than a stolen token:
//!
//! - **Cross-site requests.** A web page can make a browser send a "simple" `POST` (no
//!   `Content-Type`, `text/plain`, a form) to any address without a CORS preflight. Every
//!   state-changing request (any method but `GET` and `HEAD`, under `/api/` and `/-/`) must say
//!   `Content-Type: application/json`, which a page cannot send cross-site without a preflight
//!   that this API never answers: 415 otherwise. A request that carries an `Origin` header came
//!   from a browser page and is refused (403): no legitimate client of this API is a web page.
//! - **DNS rebinding.** A page can rebind its own name to 127.0.0.1 and then read this API as
//!   "same origin". Its requests carry the page's name in `Host`, so every request (`GET`
//!   included) must name this API: the address the connection arrived on, `localhost`,
//!   `127.0.0.1` or `[::1]` with the port it arrived on, or a name in `[admin] hosts` (`name` for
//!   any port, `name:port` for one). Anything else gets 421.
//! - **Exhaustion.** A client that opens connections and sends nothing (or half a request
//!   line) must not hold a file descriptor for ever: headers must arrive within
//!   `[admin] header_read_timeout` (also the longest a kept-alive connection waits for its next
//!   request), a connection that moves no byte either way for `[admin] idle_timeout` is closed,
//!   and at most `[admin] max_connections` are served at once. Further connections are closed
//!   as soon as they are accepted, never queued, so the daemon's descriptors stay available
//!   to its sinks. The cap is lowered to a quarter of the process's open-file limit when that
//!   is smaller (a unit with a low `LimitNOFILE`).
//!
//! Only HTTP/1.1 is served (and 1.0): every client of this API speaks it, and hyper's
//! header-read timeout is an HTTP/1 feature.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::AdminSettings;

/// How often refusals at the connection cap are logged, at most.
const REFUSAL_REPORT_EVERY: Duration = Duration::from_secs(60);

/// How long a connection may take to finish once shutdown begins (within the daemon's
/// `shutdown_grace`, default 10 s); then it is dropped.
const DRAIN: Duration = Duration::from_secs(2);

/// Largest request head (request line and headers) accepted, in bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The answer to a refused or failed request: `{"error": message}` with `status`.
pub fn json_error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// The address a connection arrived on, put in each of its requests' extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalAddr(pub SocketAddr);

/// The address a connection came from, put in each of its requests' extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// What requests are screened against: the `Host` names allowed beside the connection's own
/// address and the loopback names.
#[derive(Clone, Debug, Default)]
pub struct Screen {
    /// `[admin] hosts`, lowercase.
    pub hosts: Vec<String>,
}

impl Screen {
    /// The screen of `settings`.
    pub fn new(settings: &AdminSettings) -> Screen {
        Screen {
            hosts: settings.hosts.clone(),
        }
    }

    /// `Ok` when a request may reach the handlers; otherwise the status and why.
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        authority: Option<&str>,
        headers: &HeaderMap,
        local: Option<SocketAddr>,
    ) -> Result<(), (StatusCode, String)> {
        // A request in absolute form names its target in the URI; otherwise `Host` does.
        let named = authority.or_else(|| headers.get(header::HOST)?.to_str().ok());
        match named {
            Some(h) if host_allowed(h, local, &self.hosts) => {}
            Some(h) => {
                return Err((
                    StatusCode::MISDIRECTED_REQUEST,
                    format!(
                        "Host {:?} is not this admin API's address, localhost or a name in [admin] hosts: refused (DNS-rebinding defence); add the name to [admin] hosts if it is yours",
                        crate::text::strip_control(h)
                    ),
                ));
            }
            None => {
                return Err((
                    StatusCode::MISDIRECTED_REQUEST,
                    "the request names no Host: refused (DNS-rebinding defence)".into(),
                ));
            }
        }
        if headers.contains_key(header::ORIGIN) {
            return Err((
                StatusCode::FORBIDDEN,
                "requests from web pages (with an Origin header) are refused: the admin API is for sasrelay's commands, curl and scrapers".into(),
            ));
        }
        let changes_state = method != Method::GET && method != Method::HEAD;
        let guarded = path.starts_with("/api/") || path.starts_with("/-/");
        if changes_state && guarded && !is_json(headers) {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("{method} needs Content-Type: application/json (even without a body)"),
            ));
        }
        Ok(())
    }
}

/// Whether the request says `Content-Type: application/json` (parameters allowed).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Splits `host[:port]` (`[v6][:port]` for IPv6); `None` when malformed.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')? + 1;
        let (host, rest) = authority.split_at(end);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    (!host.is_empty()).then_some((host, port))
}

/// Whether `authority` names this API: a configured name (`name` for any port, `name:port`
/// exactly), or — on the port the connection arrived on (80 when none is written) — the
/// connection's own address, `localhost` or a loopback address.
pub fn host_allowed(authority: &str, local: Option<SocketAddr>, hosts: &[String]) -> bool {
    let authority = authority.trim().to_ascii_lowercase();
    let Some((host, port)) = split_host_port(&authority) else {
        return false;
    };
    if hosts.iter().any(|h| *h == authority || *h == host) {
        return true;
    }
    let Some(local) = local else {
        return false;
    };
    if port.unwrap_or(80) != local.port() {
        return false;
    }
    if host == "localhost" {
        return true;
    }
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    literal.parse::<IpAddr>().is_ok_and(|ip| {
        let ip = ip.to_canonical();
        ip.is_loopback() || ip == local.ip().to_canonical()
    })
}

/// The middleware that applies [`Screen::check`] to every request.
pub async fn screen(State(screen): State<Arc<Screen>>, req: Request, next: Next) -> Response {
    let local = req.extensions().get::<LocalAddr>().map(|l| l.0);
    let verdict = screen.check(
        req.method(),
        req.uri().path(),
        req.uri().authority().map(|a| a.as_str()),
        req.headers(),
        local,
    );
    match verdict {
        Ok(()) => next.run(req).await,
        Err((status, message)) => {
            tracing::debug!(
                method = %req.method(),
                path = %crate::text::strip_control(req.uri().path()),
                status = status.as_u16(),
                "Admin API request refused: {message}"
            );
            json_error(status, message)
        }
    }
}

/// The connection cap: `configured`, lowered to a quarter of the open-file limit `nofile` when
/// that is smaller (at least 1), so the cap can never starve the sinks of descriptors.
pub fn connection_cap(configured: usize, nofile: Option<u64>) -> usize {
    match nofile {
        Some(n) => configured.min(usize::try_from(n / 4).unwrap_or(usize::MAX).max(1)),
        None => configured,
    }
}

/// The soft open-file limit of this process, from `/proc/self/limits` (Linux; `None`
/// elsewhere, when unlimited or unreadable).
fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Serves `app` on `listener` until `shutdown` is cancelled, under `settings`' timeouts and
/// connection cap; then lets the requests in flight finish and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: &AdminSettings,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let nofile = open_file_limit();
    let cap = connection_cap(settings.max_connections, nofile);
    if cap < settings.max_connections {
        tracing::warn!(
            cap,
            configured = settings.max_connections,
            open_file_limit = nofile.unwrap_or(0),
            "The admin API serves at most {cap} connections at once, not [admin] max_connections = {}: a quarter of the open-file limit ({}), so the sinks keep theirs; raise LimitNOFILE to allow more.",
            settings.max_connections,
            nofile.unwrap_or(0)
        );
    }
    let permits = Arc::new(Semaphore::new(cap));
    let connections = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_header_size(MAX_HEADER_BYTES);
    // Refusals are reported at most once a minute: a flood must not flood the log too.
    let mut refused: u64 = 0;
    let mut reported: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                accept_failed(&e).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Closed at once: a client that cannot get in learns so now.
            drop(stream);
            refused += 1;
            if reported.is_none_or(|at| at.elapsed() >= REFUSAL_REPORT_EVERY) {
                tracing::warn!(
                    cap,
                    refused,
                    "The admin API has {cap} connections open, its cap: new connections are closed until some finish (header_read_timeout and idle_timeout close idle ones); {refused} closed since the last report."
                );
                reported = Some(Instant::now());
                refused = 0;
            }
            continue;
        };
        let conn = Connection {
            http: http.clone(),
            app: app.clone(),
            idle_timeout: settings.idle_timeout,
            shutdown: shutdown.clone(),
            _permit: permit,
        };
        connections.spawn(conn.run(stream));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// An `accept` that failed. Running out of descriptors or memory is waited out briefly (the
/// listener would fail again at once); anything else concerns one connection only.
async fn accept_failed(e: &io::Error) {
    let exhausted = matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12)); // ENFILE EMFILE ENOBUFS ENOMEM
    if exhausted {
        tracing::warn!(error = %e, "The admin API cannot accept a connection: {e}; retrying shortly.");
        tokio::time::sleep(Duration::from_millis(100)).await;
    } else {
        tracing::debug!(error = %e, "The admin API could not accept a connection: {e}.");
    }
}

/// One accepted connection and what serving it needs; the permit is released when it ends.
struct Connection {
    http: hyper::server::conn::http1::Builder,
    app: Router,
    idle_timeout: Duration,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        let local = stream.local_addr().ok();
        let peer = stream.peer_addr().ok();
        let io = TokioIo::new(Idle::new(stream, self.idle_timeout));
        let app = TowerToHyperService::new(self.app);
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            if let Some(addr) = local {
                req.extensions_mut().insert(LocalAddr(addr));
            }
            if let Some(addr) = peer {
                req.extensions_mut().insert(PeerAddr(addr));
            }
            app.call(req)
        });
        let conn = self.http.serve_connection(io, service);
        tokio::pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            () = self.shutdown.cancelled() => {
                // Finish the request in flight; an idle connection closes at once. A client
                // still sending its head is not waited for beyond DRAIN, so it cannot hold up
                // the daemon's shutdown.
                conn.as_mut().graceful_shutdown();
                match tokio::time::timeout(DRAIN, conn).await {
                    Ok(r) => r,
                    Err(_) => return,
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "An admin API connection ended: {e}.");
        }
    }
}

/// A stream that fails with `TimedOut` once it has waited `limit` with no byte read or
/// written: the idle timeout, counted only while the server waits on the client.
struct Idle<S> {
    inner: S,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<S> Idle<S> {
    fn new(inner: S, limit: Duration) -> Idle<S> {
        Idle {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }

    fn active(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.limit);
    }

    /// The answer to a wait on the client: still pending, or the idle timeout.
    fn waiting<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "admin connection idle",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.active();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.waiting(cx),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                if r.as_ref().is_ok_and(|n| *n > 0) {
                    this.active();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.waiting(cx),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.waiting(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending => this.waiting(cx),
            ready => ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn local() -> Option<SocketAddr> {
        Some("127.0.0.1:9595".parse().unwrap())
    }

    #[test]
    fn hosts_name_this_api_or_are_refused() {
        let hosts = vec!["sasrelay.internal".to_string(), "proxy.example:8443".into()];
        for ok in [
            "127.0.0.1:9595",
            "localhost:9595",
            "LOCALHOST:9595",
            "[::1]:9595",
            "127.0.0.2:9595",
            "sasrelay.internal",
            "sasrelay.internal:1234",
            "proxy.example:8443",
        ] {
            assert!(host_allowed(ok, local(), &hosts), "{ok}");
        }
        for bad in [
            "evil.example:9595",
            "localhost:9596",
            "localhost",
            "127.0.0.1",
            "proxy.example",
            "proxy.example:443",
            "localhost.evil.example:9595",
            "127.0.0.1:9595:1",
            "[::1",
            ":9595",
            "",
            "10.0.0.5:9595",
        ] {
            assert!(!host_allowed(bad, local(), &hosts), "{bad}");
        }
        // The address a connection arrived on, in any spelling of the same IP.
        let v4: SocketAddr = "10.0.0.5:9595".parse().unwrap();
        assert!(host_allowed("10.0.0.5:9595", Some(v4), &[]));
        let v6: SocketAddr = "[fd00::5]:80".parse().unwrap();
        assert!(host_allowed("[fd00:0:0::5]", Some(v6), &[]));
        // Without a connection address only configured names pass.
        assert!(!host_allowed("127.0.0.1:9595", None, &[]));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn state_changes_need_json_and_pages_are_refused() {
        let screen = Screen::default();
        let check = |method: Method, path: &str, h: &[(&'static str, &'static str)]| {
            let mut all = vec![("host", "127.0.0.1:9595")];
            all.extend_from_slice(h);
            screen
                .check(&method, path, None, &headers(&all), local())
                .map_err(|(s, _)| s.as_u16())
        };
        let json = [("content-type", "application/json")];
        assert_eq!(check(Method::POST, "/api/v1/silences", &json), Ok(()));
        assert_eq!(
            check(
                Method::POST,
                "/api/v1/silences",
                &[("content-type", "Application/JSON; charset=utf-8")]
            ),
            Ok(())
        );
        assert_eq!(check(Method::DELETE, "/api/v1/silences/x", &json), Ok(()));
        assert_eq!(check(Method::GET, "/api/v1/silences", &[]), Ok(()));
        for ct in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data"),
            Some("application/jsonx"),
        ] {
            let h: Vec<_> = ct.map(|c| ("content-type", c)).into_iter().collect();
            for (m, p) in [
                (Method::POST, "/api/v1/silences"),
                (Method::DELETE, "/api/v1/dead-letters/hook/1"),
                (Method::PUT, "/-/reload"),
            ] {
                assert_eq!(check(m.clone(), p, &h), Err(415), "{m} {p} {ct:?}");
            }
        }
        assert_eq!(
            check(
                Method::POST,
                "/api/v1/silences",
                &[("content-type", "application/json"), ("origin", "null")]
            ),
            Err(403)
        );
        assert_eq!(
            check(
                Method::GET,
                "/metrics",
                &[("origin", "http://evil.example")]
            ),
            Err(403)
        );
        let evil = headers(&[("host", "evil.example:9595")]);
        assert_eq!(
            screen
                .check(&Method::GET, "/metrics", None, &evil, local())
                .map_err(|(s, _)| s.as_u16()),
            Err(421)
        );
        // An absolute-form target names the host, whatever `Host` says.
        let fine = headers(&[("host", "127.0.0.1:9595")]);
        assert!(
            screen
                .check(
                    &Method::GET,
                    "/metrics",
                    Some("evil.example:9595"),
                    &fine,
                    local()
                )
                .is_err()
        );
        assert!(
            screen
                .check(&Method::GET, "/metrics", None, &HeaderMap::new(), local())
                .is_err(),
            "no Host at all"
        );
    }

    #[test]
    fn the_cap_leaves_three_quarters_of_the_descriptors_to_the_rest() {
        assert_eq!(connection_cap(256, None), 256);
        assert_eq!(connection_cap(256, Some(65_536)), 256);
        assert_eq!(connection_cap(256, Some(256)), 64);
        assert_eq!(connection_cap(256, Some(2)), 1);
    }
}
