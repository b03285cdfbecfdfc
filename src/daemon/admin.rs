//! The admin HTTP API: silences, the suppression log and dead letters, for operators and for
//! the `sasrelay silence` and `sasrelay dead-letters` commands (sled allows one process per
//! store, so the CLI never opens the store itself: it asks the running daemon here).
//!
//! | Method and path | Body → answer |
//! |---|---|
//! | `GET /healthz` | → `ok`: the process answers (no authentication) |
//! | `GET /readyz` | → `ready`, or 503 naming why: the store cannot be written, or a source × domain is `blind` ([`crate::health`]; no authentication) |
//! | `GET /metrics` | → Prometheus text ([`crate::daemon::metrics`]; no authentication: names and counts only) |
//! | `GET /api/v1/status` | → [`StatusView`]: every source × domain's state, last success, last error and consecutive failures; every sink's depth, oldest age and dead letters; credentials; health episodes |
//! | `GET /api/v1/silences` | → `{"silences": [SilenceView]}`, newest first |
//! | `POST /api/v1/silences` | [`NewSilence`] → 201 `{"id", "silence": SilenceView}` |
//! | `DELETE /api/v1/silences/{id}` | → 200 SilenceView (expired now), or 404 |
//! | `GET /api/v1/suppressed?silence=ID&limit=N` | → `{"total", "suppressed": [Suppressed + "held"]}`, newest first; `held`: still held by its silence, sent when it ends if the finding is still open |
//! | `GET /api/v1/dead-letters?sink=NAME&limit=N` | → `{"total", "dead_letters": [DeadLetterView]}`, newest first |
//! | `POST /api/v1/dead-letters/replay` | [`ReplayRequest`] → [`ReplayReport`] |
//! | `DELETE /api/v1/dead-letters/{sink}/{seq}` | → 200 DeadLetterView (discarded), or 404 |
//! | `GET /api/v1/quarantine` | → `{"quarantined": [QuarantineEntry]}`: records Security Center listed that could not be read, kept (bounded) with their text, by source and domain ([`crate::store::QuarantineEntry`]) |
//! | `POST /api/v1/handle/plan` | [`crate::handle::Request`] → [`crate::handle::Plan`]: what the alert allows now and what the request would do, or why it cannot (nothing is changed) |
//! | `POST /api/v1/handle` | [`crate::handle::Request`] → `{"plan", "outcome"}` ([`crate::handle::Outcome`]): checked again, done, its task followed, recorded in the audit log (also when refused) |
//! | `GET /api/v1/handle/log?limit=N` | → `{"entries": [AuditEntry]}`, newest first ([`crate::store::AuditEntry`]) |
//! | `POST /-/reload` | → 200 [`ReloadAttempt`], or 422 `{"error", "attempt"}` when the file is refused (the running configuration is kept; [`crate::daemon::reload`]) |
//!
//! A replay puts dead letters back in their sink's outbox with the same idempotency key,
//! zero attempts and a fresh `max_age` (see [`Store::replay_dead_letter`]), and wakes the
//! sink's worker. Only sinks configured now can be replayed to (409 otherwise: the entries
//! would wait for a worker that does not exist). A dead letter the store could not read back
//! (listed with `payload: "unreadable"`) is never replayed: the report lists it under
//! `unreadable`; discard it.
//!
//! A [`SilenceView`] is the stored silence (`id`, `matchers` as canonical strings,
//! `starts_at`, `ends_at`, `created_by`, `comment`, `created_at`; times RFC 3339) plus its
//! `state` (`pending`, `active`, `expired`), `suppressed`, how many (event, sink) pairs it
//! kept back, and `held`, how many of those it still holds (sent when it ends if their finding
//! is still open). A silence lasts at most `[admin] max_silence` from now, and one whose matchers
//! match every event ([`crate::routing::matches_every_event`]) needs `"force": true`. Errors
//! are `{"error": "…"}` with 400 (a bad body or query), 401 (token), 403 (an `Origin`
//! header), 404, 409 (too many silences), 415 (a state change that is not JSON), 421 (a
//! foreign `Host`) or 500 (the store failed).
//!
//! `[admin] health_listen`, when set, is a second address serving only the first three rows
//! ([`health_router`]): Kubernetes probes and Prometheus reach it from the pod network while
//! `/api/` and `/-/` stay on `[admin] listen` (404 there). It shares the state and the door.
//!
//! Every request passes [`crate::daemon::door`] first (the `Host`, `Origin` and
//! `Content-Type` rules, timeouts and the connection cap). When a token is configured every
//! `/api/` and `/-/` request needs `Authorization: Bearer <token>`; the comparison is constant-time over
//! SHA-256 digests and the token is never logged. Bodies are capped at [`MAX_BODY`]; listings
//! and silences are bounded too.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::config::AdminSettings;
use crate::daemon::door::{self, Screen};
use crate::daemon::health::{Health, StatusView};
use crate::daemon::reload::{Cause, ReloadAttempt, ReloadError, Reloads};
use crate::daemon::wiring::ConfiguredSinks;
use crate::event::{DeadLetter, Payload};
use crate::pipeline::dispatch::Silences;
use crate::pipeline::metrics::Metrics;
use crate::routing::{Silence, SilenceState, parse_matchers};
use crate::secret::Secret;
use crate::store::{Replayed, Store, Suppressed};

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Most silences kept at once (any state); creating more is refused with 409.
pub const MAX_SILENCES: usize = 1000;
/// Most matcher strings in one silence.
pub const MAX_MATCHERS: usize = 64;
/// Longest `comment`, in characters.
pub const MAX_COMMENT: usize = 2048;
/// Longest `created_by`, in characters.
pub const MAX_AUTHOR: usize = 128;
/// `limit` of `/api/v1/suppressed` when none is given.
pub const DEFAULT_SUPPRESSED_LIMIT: usize = 100;
/// Largest `limit` of `/api/v1/suppressed`.
pub const MAX_SUPPRESSED_LIMIT: usize = 1000;

/// What the API serves from. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    /// The daemon's silences (shared with dispatch).
    pub silences: Arc<Silences>,
    /// The store, for the suppression log.
    pub store: Store,
    /// The bearer token every `/api/` request must carry, when configured.
    pub token: Option<Secret>,
    /// The configured sinks, each with the wake of its delivery worker (kept current across
    /// reloads).
    pub sinks: ConfiguredSinks,
    /// The daemon's counters, for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The daemon's health, for `/readyz`, `/api/v1/status` and `/metrics`.
    pub health: Health,
    /// `[admin]`: the `Host` names, timeouts and connection cap of the door
    /// ([`crate::daemon::door`]) and the longest silence.
    pub settings: AdminSettings,
    /// Reloads of the configuration, and how the last one went.
    pub reload: Reloads,
    /// The sources connected now, for handling.
    pub connected: crate::daemon::sources::Connected,
}

/// `limit` of `/api/v1/dead-letters` when none is given.
pub const DEFAULT_DEAD_LETTER_LIMIT: usize = 100;
/// Largest `limit` of `/api/v1/dead-letters`.
pub const MAX_DEAD_LETTER_LIMIT: usize = 10_000;
/// Most sequence numbers in one replay request.
pub const MAX_REPLAY_SEQS: usize = 10_000;

/// One dead letter as the API shows it: where and why it stopped, and what it carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterView {
    /// The sink it was meant for.
    pub sink: String,
    /// Its sequence number in that sink (what replay and discard take).
    pub seq: u64,
    /// When it was given up (RFC 3339).
    pub dead_at: String,
    /// Why.
    pub reason: String,
    /// The sink's last response, when there was one.
    pub last_response: Option<String>,
    /// Attempts made.
    pub attempts: u32,
    /// When it was enqueued (RFC 3339).
    pub enqueued_at: String,
    /// The idempotency key (the same after a replay).
    pub payload_id: String,
    /// `event`, `digest` or `health` (a meta-event); `unreadable` when the store could not
    /// read it back (`reason` says what failed; it can be discarded, not replayed).
    pub payload: String,
    /// The event kind (`new`, `resolved`, …), for a digest how many events it holds, for a
    /// meta-event `firing` or `resolved`.
    pub what: String,
    /// The finding's title, the summary, the digest's or the meta-event's headline.
    pub title: String,
    /// Whether the sink is configured now (only then can it be replayed).
    pub configured: bool,
}

/// The body of `POST /api/v1/dead-letters/replay`: one sink's dead letters, by `seqs` or
/// `all`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The sink.
    pub sink: String,
    /// Sequence numbers (from the listing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seqs: Vec<u64>,
    /// Every dead letter of the sink instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayReport {
    /// Back in the outbox: `[dead seq, new seq]` pairs.
    pub requeued: Vec<[u64; 2]>,
    /// Already replayed or enqueued again since (removed, nothing enqueued).
    pub superseded: Vec<u64>,
    /// No such dead letter.
    pub not_found: Vec<u64>,
    /// Not replayed: the store could not read their payload back, so there is nothing to
    /// send (their `reason` says what failed); discard them.
    #[serde(default)]
    pub unreadable: Vec<u64>,
}

/// The body of `POST /api/v1/silences`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// Matcher strings; each may hold several (`a="b", c=~"d"` or a brace list). All must hold.
    pub matchers: Vec<String>,
    /// RFC 3339; default now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<String>,
    /// RFC 3339; set this or `duration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    /// `"2h"`, `"30m"`, … from `starts_at`; set this or `ends_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Who creates it.
    pub created_by: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
    /// Create it even though its matchers match every event
    /// ([`crate::routing::matches_every_event`]); `sasrelay silence add --force`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// A silence as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceView {
    /// The stored silence.
    #[serde(flatten)]
    pub silence: Silence,
    /// `pending`, `active` or `expired`, now.
    pub state: String,
    /// How many (event, sink) pairs it kept back, per the suppression log.
    pub suppressed: u64,
    /// How many of those it still holds: sent when it ends, each whose finding is still open
    /// then (the rest are let go).
    #[serde(default)]
    pub held: u64,
}

/// The lowercase name of a state, as the API and the CLI show it.
pub fn state_name(s: SilenceState) -> &'static str {
    match s {
        SilenceState::Pending => "pending",
        SilenceState::Active => "active",
        SilenceState::Expired => "expired",
    }
}

/// Turns a [`NewSilence`] into a checked silence with id `id`, created at `now`, lasting at
/// most `max` from now (`[admin] max_silence`; from its start when that is later), and
/// matching every event only with `force`. The error is the message the API answers with
/// (400).
pub fn build_silence(
    req: &NewSilence,
    id: String,
    now: jiff::Timestamp,
    max: std::time::Duration,
) -> Result<Silence, String> {
    if req.matchers.len() > MAX_MATCHERS {
        return Err(format!("at most {MAX_MATCHERS} matchers per silence"));
    }
    let mut matchers = Vec::new();
    for (i, text) in req.matchers.iter().enumerate() {
        let parsed = parse_matchers(text).map_err(|e| {
            let column = text.get(..e.offset).map_or(e.offset, |s| s.chars().count()) + 1;
            format!(
                "matchers[{i}] {:?}: {} (at column {column})",
                crate::text::strip_control(text),
                e.message
            )
        })?;
        matchers.extend(parsed);
    }
    if matchers.len() > MAX_MATCHERS {
        return Err(format!("at most {MAX_MATCHERS} matchers per silence"));
    }
    let author = req.created_by.trim();
    if author.chars().count() > MAX_AUTHOR {
        return Err(format!("created_by is longer than {MAX_AUTHOR} characters"));
    }
    if req.comment.chars().count() > MAX_COMMENT {
        return Err(format!("comment is longer than {MAX_COMMENT} characters"));
    }
    let time = |key: &str, text: &str| -> Result<jiff::Timestamp, String> {
        text.trim().parse::<jiff::Timestamp>().map_err(|e| {
            format!(
                "{key}: expected an RFC 3339 time like \"2026-05-01T10:00:00Z\", got {text:?}: {e}"
            )
        })
    };
    let starts_at = match &req.starts_at {
        Some(s) => time("starts_at", s)?,
        None => now,
    };
    let ends_at = match (&req.ends_at, &req.duration) {
        (Some(_), Some(_)) => return Err("set either ends_at or duration, not both".into()),
        (None, None) => return Err("set ends_at (RFC 3339) or duration (e.g. \"2h\")".into()),
        (Some(e), None) => time("ends_at", e)?,
        (None, Some(d)) => {
            let d = crate::duration::parse_duration(d).map_err(|e| format!("duration: {e}"))?;
            if d.is_zero() {
                return Err("duration must be more than zero".into());
            }
            jiff::SignedDuration::try_from(d)
                .ok()
                .and_then(|d| starts_at.checked_add(d).ok())
                .ok_or_else(|| "duration is too long".to_string())?
        }
    };
    if ends_at <= now {
        return Err(format!("ends_at {ends_at} is in the past"));
    }
    let silence = Silence::new(
        id,
        matchers,
        starts_at,
        ends_at,
        author,
        req.comment.clone(),
        now,
    )
    .map_err(|e| e.to_string())?;
    // What it can still silence: a start in the past adds nothing.
    let from = silence.starts_at.max(now);
    let span_ms = silence.ends_at.as_millisecond() - from.as_millisecond();
    if u128::try_from(span_ms).unwrap_or(0) > max.as_millis() {
        return Err(format!(
            "the silence would last {} from {from}; at most {} ([admin] max_silence): shorten it, or raise max_silence",
            crate::duration::format_duration(std::time::Duration::from_millis(
                u64::try_from(span_ms).unwrap_or(u64::MAX)
            )),
            crate::duration::format_duration(max)
        ));
    }
    if !req.force && crate::routing::matches_every_event(&silence.matchers) {
        let shown: Vec<String> = silence.matchers.iter().map(|m| m.to_string()).collect();
        return Err(format!(
            "matchers {} match every event: this would silence everything; narrow them, or set \"force\": true (sasrelay silence add --force) to mean it",
            shown.join(", ")
        ));
    }
    Ok(silence)
}

/// The admin API's routes over `state`, every request screened first
/// ([`door::screen`]: `Host`, `Origin`, `Content-Type`).
pub fn router(state: AdminState) -> Router {
    let screen = Arc::new(Screen::new(&state.settings));
    let state = Arc::new(state);
    let api = Router::new()
        .route("/status", get(status))
        .route("/silences", get(list_silences).post(create_silence))
        .route("/silences/{id}", delete(expire_silence))
        .route("/suppressed", get(suppressed))
        .route("/dead-letters", get(list_dead_letters))
        .route("/dead-letters/replay", post(replay_dead_letters))
        .route("/dead-letters/{sink}/{seq}", delete(discard_dead_letter))
        .route("/quarantine", get(quarantined))
        .route("/handle/plan", post(handle_plan))
        .route("/handle", post(handle_act))
        .route("/handle/log", get(handle_log))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    let control = Router::new()
        .route("/reload", post(reload))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    probes()
        .nest("/api/v1", api)
        .nest("/-", control)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(screen, door::screen))
        .with_state(state)
}

/// `/healthz`, `/readyz` and `/metrics`: what both listeners serve.
fn probes() -> Router<Shared> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The routes of `[admin] health_listen`: `/healthz`, `/readyz` and `/metrics`, nothing else,
/// so the address can be opened to the kubelet and Prometheus while `/api/` and `/-/` stay on
/// `[admin] listen`. Requests pass the same [`door::screen`] (a probe or a pod-IP scrape names
/// the address it connects to, so it passes as it is).
pub fn health_router(state: AdminState) -> Router {
    let screen = Arc::new(Screen::new(&state.settings));
    probes()
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such endpoint: this address ([admin] health_listen) serves only /healthz, /readyz and /metrics; the admin API is on [admin] listen".into(),
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(screen, door::screen))
        .with_state(Arc::new(state))
}

/// Serves the admin API on `listener` until `shutdown` is cancelled (then finishes the
/// requests in flight and returns), under the door's timeouts and connection cap
/// ([`door::serve`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let settings = state.settings.clone();
    let result = door::serve(listener, router(state), &settings, shutdown).await;
    if let Err(e) = &result {
        tracing::error!(error = %e, "The admin API stopped: {e}.");
    }
    result
}

/// Most connections `[admin] health_listen` serves at once: its clients are the kubelet and a
/// scraper or two, and it is meant to be reachable from the cluster's network, so a flood there
/// must not take the descriptors the admin API and the sinks need.
pub const HEALTH_MAX_CONNECTIONS: usize = 32;

/// Serves [`health_router`] on `listener` until `shutdown` is cancelled, through the same door
/// as the API with at most [`HEALTH_MAX_CONNECTIONS`] connections (fewer when `[admin]
/// max_connections` is lower).
pub async fn serve_health(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let settings = AdminSettings {
        max_connections: state.settings.max_connections.min(HEALTH_MAX_CONNECTIONS),
        ..state.settings.clone()
    };
    let result = door::serve(listener, health_router(state), &settings, shutdown).await;
    if let Err(e) = &result {
        tracing::error!(error = %e, "The health and metrics listener stopped: {e}.");
    }
    result
}

type Shared = Arc<AdminState>;

fn error(status: StatusCode, message: String) -> Response {
    door::json_error(status, message)
}

fn store_error(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "The admin API could not read or write the store.");
    error(StatusCode::INTERNAL_SERVER_ERROR, format!("store: {e}"))
}

fn now() -> jiff::Timestamp {
    crate::routing::to_timestamp(time::OffsetDateTime::now_utc())
}

/// Constant-time equality of two secrets (over their SHA-256 digests, so the length leaks
/// nothing either).
fn same_secret(a: &str, b: &str) -> bool {
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

async fn authenticate(State(state): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                // The scheme is case-insensitive (RFC 9110).
                let (scheme, token) = v.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then_some(token.trim())
            });
        if !presented.is_some_and(|p| same_secret(p, token.expose())) {
            let mut resp = error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token: send `Authorization: Bearer <[admin] token>`"
                    .into(),
            );
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        }
    }
    next.run(req).await
}

/// The suppression log, read off the async threads (it is a scan).
async fn suppression_log(store: &Store) -> Result<Vec<Suppressed>, Response> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.suppressed())
        .await
        .map_err(store_error)?
        .map_err(store_error)
}

fn view(store: &Store, silence: Silence, log: &[Suppressed], now: jiff::Timestamp) -> SilenceView {
    let suppressed = log
        .iter()
        .filter(|s| s.by == "silence" && s.reason == silence.id)
        .count() as u64;
    let held = store.held_count(&silence.id).unwrap_or(0) as u64;
    SilenceView {
        state: state_name(silence.state(now)).into(),
        silence,
        suppressed,
        held,
    }
}

async fn list_silences(State(state): State<Shared>) -> Response {
    let log = match suppression_log(&state.store).await {
        Ok(l) => l,
        Err(resp) => return resp,
    };
    let now = now();
    let silences: Vec<SilenceView> = state
        .silences
        .list()
        .into_iter()
        .map(|s| view(&state.store, s, &log, now))
        .collect();
    axum::Json(json!({ "silences": silences })).into_response()
}

async fn create_silence(State(state): State<Shared>, body: Bytes) -> Response {
    let req: NewSilence = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    };
    if state.silences.list().len() >= MAX_SILENCES {
        return error(
            StatusCode::CONFLICT,
            format!(
                "{MAX_SILENCES} silences are stored already: expire some, or wait for old ones to be pruned"
            ),
        );
    }
    let now = now();
    let id = uuid::Uuid::new_v4().to_string();
    let silence = match build_silence(&req, id.clone(), now, state.settings.max_silence) {
        Ok(s) => s,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    if let Err(e) = state.silences.add(silence.clone()).await {
        return store_error(e);
    }
    let matchers: Vec<String> = silence.matchers.iter().map(|m| m.to_string()).collect();
    tracing::info!(
        silence = %id,
        created_by = %silence.created_by,
        matchers = %matchers.join(", "),
        ends_at = %silence.ends_at,
        "Silence created."
    );
    let view = view(&state.store, silence, &[], now);
    (
        StatusCode::CREATED,
        axum::Json(json!({ "id": id, "silence": view })),
    )
        .into_response()
}

async fn expire_silence(State(state): State<Shared>, Path(id): Path<String>) -> Response {
    let now = now();
    match state.silences.expire(&id, now).await {
        Ok(Some(silence)) => {
            tracing::info!(silence = %id, "Silence expired.");
            let log = match suppression_log(&state.store).await {
                Ok(l) => l,
                Err(resp) => return resp,
            };
            axum::Json(view(&state.store, silence, &log, now)).into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no silence with id {:?}", crate::text::strip_control(&id)),
        ),
        Err(e) => store_error(e),
    }
}

/// The query of `GET /api/v1/suppressed`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuppressedQuery {
    silence: Option<String>,
    limit: Option<usize>,
}

async fn suppressed(
    State(state): State<Shared>,
    query: Result<Query<SuppressedQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid query: {e}")),
    };
    let limit = q.limit.unwrap_or(DEFAULT_SUPPRESSED_LIMIT);
    if limit == 0 || limit > MAX_SUPPRESSED_LIMIT {
        return error(
            StatusCode::BAD_REQUEST,
            format!("limit must be between 1 and {MAX_SUPPRESSED_LIMIT}"),
        );
    }
    let log = match suppression_log(&state.store).await {
        Ok(l) => l,
        Err(resp) => return resp,
    };
    let matching: Vec<&Suppressed> = log
        .iter()
        .rev()
        .filter(|s| {
            q.silence
                .as_ref()
                .is_none_or(|id| s.by == "silence" && s.reason == *id)
        })
        .collect();
    let total = matching.len();
    let list: Vec<Value> = matching
        .into_iter()
        .take(limit)
        .map(|s| {
            let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
            // Still held by its silence or mute window: sent when it ends if the finding is
            // still open.
            let holder = match s.by.as_str() {
                "mute" => crate::store::mute_holder(&s.reason),
                _ => s.reason.clone(),
            };
            let held = state
                .store
                .is_held(&holder, &s.sink, &s.event_id)
                .unwrap_or(false);
            if let Some(o) = v.as_object_mut() {
                o.insert("held".into(), Value::Bool(held));
            }
            v
        })
        .collect();
    axum::Json(json!({ "total": total, "suppressed": list })).into_response()
}

/// The store's figures, read off the async threads (`size_on_disk` walks its files).
async fn store_stats(store: &Store) -> Result<crate::store::StoreStats, String> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || store.stats()).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn now_ms() -> i64 {
    crate::clock::unix_ms(time::OffsetDateTime::now_utc())
}

/// 503 naming every reason while the store cannot be written or a source × domain is blind.
async fn readyz(State(state): State<Shared>) -> Response {
    let health = state.health.clone();
    let not_ready = match tokio::task::spawn_blocking(move || {
        let snapshot = health.snapshot(now_ms());
        health.not_ready(&snapshot)
    })
    .await
    {
        Ok(reasons) => reasons,
        Err(e) => vec![e.to_string()],
    };
    if not_ready.is_empty() {
        return "ready".into_response();
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: {}", not_ready.join("; ")),
    )
        .into_response()
}

async fn status(State(state): State<Shared>) -> Response {
    let health = state.health.clone();
    match tokio::task::spawn_blocking(move || health.status(now_ms())).await {
        Ok(view) => axum::Json::<StatusView>(view).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn metrics(State(state): State<Shared>) -> Response {
    let stats = store_stats(&state.store).await.ok();
    let now_ms = now_ms();
    let health = state.health.snapshot(now_ms);
    let mut text =
        crate::daemon::metrics::exposition(&state.metrics, stats.as_ref(), &health.sources, now_ms);
    crate::daemon::metrics::render_reloads(&mut text, &state.reload.status());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// `POST /-/reload`: reads the configuration file again ([`crate::daemon::reload`]).
async fn reload(State(state): State<Shared>) -> Response {
    match state.reload.reload(Cause::AdminApi).await {
        Ok(attempt) => axum::Json(attempt).into_response(),
        Err(ReloadError::Refused(attempt)) => refused(*attempt),
        Err(e @ ReloadError::Unavailable) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// 422 with every error of a refused reload, one per line after the first.
fn refused(attempt: ReloadAttempt) -> Response {
    let message = format!(
        "the configuration was not reloaded; the running one is kept. {} error{}:\n  {}",
        attempt.errors.len(),
        if attempt.errors.len() == 1 { "" } else { "s" },
        attempt.errors.join("\n  ")
    );
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({ "error": message, "attempt": attempt })),
    )
        .into_response()
}

/// The listing row of one dead letter.
pub fn dead_letter_view(
    sink: &str,
    seq: u64,
    letter: &DeadLetter,
    configured: bool,
) -> DeadLetterView {
    let (payload, what, title) = match &letter.entry.payload {
        _ if letter.unreadable.is_some() => (
            "unreadable",
            String::new(),
            "(the store could not read it back)".to_string(),
        ),
        Payload::Event(e) => (
            "event",
            e.kind.as_str().to_string(),
            e.finding
                .as_ref()
                .map(|f| f.title.clone())
                .or_else(|| e.summary.as_ref().map(|s| s.message.clone()))
                .unwrap_or_default(),
        ),
        Payload::Digest(d) => ("digest", format!("{} events", d.events.len()), d.headline()),
        Payload::Health(h) => (
            "health",
            h.status.as_str().to_string(),
            crate::render::health::headline(h, crate::render::Lang::En),
        ),
    };
    DeadLetterView {
        sink: sink.to_string(),
        seq,
        dead_at: crate::clock::rfc3339_ms(letter.dead_at_ms),
        reason: letter.reason.clone(),
        last_response: letter.last_response.clone(),
        attempts: letter.entry.attempts,
        enqueued_at: crate::clock::rfc3339_ms(letter.entry.enqueued_at_ms),
        payload_id: letter.entry.payload.id().to_string(),
        payload: payload.to_string(),
        what,
        title,
        configured,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterQuery {
    sink: Option<String>,
    limit: Option<usize>,
}

/// Runs a blocking store call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(store_error)?
        .map_err(store_error)
}

/// Longest `who` and `remark` of a handling request, and of a whitelist rule's value.
pub const MAX_HANDLE_TEXT: usize = 1024;
/// `limit` of `/api/v1/handle/log` when none is given, and the largest.
pub const DEFAULT_HANDLE_LOG_LIMIT: usize = 100;
/// Largest `limit` of `/api/v1/handle/log`.
pub const MAX_HANDLE_LOG_LIMIT: usize = 10_000;

/// A handling request from a body, checked; or the 400 saying why not.
fn handle_request(body: &[u8]) -> Result<crate::handle::Request, (StatusCode, String)> {
    let req: crate::handle::Request = serde_json::from_slice(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("invalid body: {e}")))?;
    let too_long = |what: &str| {
        (
            StatusCode::BAD_REQUEST,
            format!("{what} is longer than {MAX_HANDLE_TEXT} characters"),
        )
    };
    if req.who.trim().is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            "who is empty: every action is recorded with who asked".into(),
        ));
    }
    if req.who.chars().count() > MAX_HANDLE_TEXT {
        return Err(too_long("who"));
    }
    if req
        .remark
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_HANDLE_TEXT)
    {
        return Err(too_long("remark"));
    }
    if let crate::handle::Action::Whitelist { rule } = &req.action {
        if rule.value.chars().count() > MAX_HANDLE_TEXT {
            return Err(too_long("the whitelist value"));
        }
        if !crate::handle::WHITELIST_OPERATES.contains(&rule.operate.as_str()) {
            return Err((
                StatusCode::BAD_REQUEST,
                format!(
                    "the whitelist test {:?} is none of {}",
                    rule.operate,
                    crate::handle::WHITELIST_OPERATES.join(", ")
                ),
            ));
        }
    }
    Ok(req)
}

/// The connected source a request names; or the 503 saying why there is none.
fn handling_source(
    state: &AdminState,
    name: &str,
) -> Result<Arc<crate::sas::source::Source>, (StatusCode, String)> {
    state.connected.get(name).ok_or_else(|| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "source {name:?} is not connected here: it is not configured, it cannot connect (sasrelay status says why), or this replica stands by (act where sasrelay status says leader)"
            ),
        )
    })
}

/// `POST /api/v1/handle/plan`: what a request would do; changes nothing.
async fn handle_plan(State(state): State<Shared>, body: Bytes) -> Response {
    let (req, source) = match handle_request(&body)
        .and_then(|req| Ok((handling_source(&state, &req.source)?, req)))
    {
        Ok((source, req)) => (req, source),
        Err((status, message)) => return error(status, message),
    };
    let mut req = req;
    super::act::fill_asset(&state.store, &mut req);
    axum::Json(crate::handle::plan(&source, req).await).into_response()
}

/// `POST /api/v1/handle`: checks the request again, does it, follows its task, and records it
/// (refusals too) in the audit log and the log.
async fn handle_act(State(state): State<Shared>, body: Bytes) -> Response {
    let (req, source) = match handle_request(&body)
        .and_then(|req| Ok((handling_source(&state, &req.source)?, req)))
    {
        Ok((source, req)) => (req, source),
        Err((status, message)) => return error(status, message),
    };
    let mut req = req;
    super::act::fill_asset(&state.store, &mut req);
    let (plan, outcome, recorded) = super::act::perform(&state.store, &source, req).await;
    if let Err(e) = recorded {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "{} — but it could not be recorded in the audit log: {e}",
                outcome.message
            ),
        );
    }
    axum::Json(json!({ "plan": plan, "outcome": outcome })).into_response()
}

#[derive(Debug, Deserialize)]
struct HandleLogQuery {
    limit: Option<usize>,
}

/// `GET /api/v1/handle/log`: the newest audit entries.
async fn handle_log(
    State(state): State<Shared>,
    query: Result<Query<HandleLogQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let limit = q.limit.unwrap_or(DEFAULT_HANDLE_LOG_LIMIT);
    if limit == 0 || limit > MAX_HANDLE_LOG_LIMIT {
        return error(
            StatusCode::BAD_REQUEST,
            format!("limit must be 1..={MAX_HANDLE_LOG_LIMIT}"),
        );
    }
    let store = state.store.clone();
    match blocking(move || store.audit_log(limit)).await {
        Ok(entries) => axum::Json(json!({ "entries": entries })).into_response(),
        Err(response) => response,
    }
}

/// The quarantined records the store keeps (the daemon's view; `sasrelay findings
/// --quarantined` asks Security Center afresh).
async fn quarantined(State(state): State<Shared>) -> Response {
    let store = state.store.clone();
    match blocking(move || store.quarantined()).await {
        Ok(entries) => axum::Json(serde_json::json!({ "quarantined": entries })).into_response(),
        Err(response) => response,
    }
}

async fn list_dead_letters(
    State(state): State<Shared>,
    query: Result<Query<DeadLetterQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let limit = q.limit.unwrap_or(DEFAULT_DEAD_LETTER_LIMIT);
    if limit == 0 || limit > MAX_DEAD_LETTER_LIMIT {
        return error(
            StatusCode::BAD_REQUEST,
            format!("limit must be 1..={MAX_DEAD_LETTER_LIMIT}"),
        );
    }
    let store = state.store.clone();
    let names: Vec<String> = match q.sink {
        Some(s) => vec![s],
        None => store.sink_names(),
    };
    let rows = match blocking(move || {
        let mut rows = Vec::new();
        for name in names {
            for (seq, letter) in store.dead_letters(&name)? {
                rows.push((name.clone(), seq, letter));
            }
        }
        Ok(rows)
    })
    .await
    {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let total = rows.len();
    let mut rows = rows;
    // Newest first; seqs break ties in enqueue order.
    rows.sort_by_key(|(_, seq, l)| std::cmp::Reverse((l.dead_at_ms, *seq)));
    let views: Vec<DeadLetterView> = rows
        .iter()
        .take(limit)
        .map(|(sink, seq, l)| dead_letter_view(sink, *seq, l, state.sinks.contains_key(sink)))
        .collect();
    axum::Json(json!({ "total": total, "dead_letters": views })).into_response()
}

async fn replay_dead_letters(State(state): State<Shared>, body: Bytes) -> Response {
    let req: ReplayRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad replay request: {e}")),
    };
    if req.all != req.seqs.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "give either `seqs` (from the listing) or `all: true`".into(),
        );
    }
    if req.seqs.len() > MAX_REPLAY_SEQS {
        return error(
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_REPLAY_SEQS} seqs per request"),
        );
    }
    let Some(wake) = state.sinks.get(&req.sink) else {
        return error(
            StatusCode::CONFLICT,
            format!(
                "sink {:?} is not configured: its entries would wait for a worker that does not exist; configure it (or discard the dead letters)",
                crate::text::strip_control(&req.sink)
            ),
        );
    };
    let store = state.store.clone();
    let report = blocking(move || {
        let seqs = if req.all {
            store
                .dead_letters(&req.sink)?
                .into_iter()
                .map(|(seq, _)| seq)
                .collect()
        } else {
            req.seqs
        };
        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        let mut report = ReplayReport::default();
        for seq in seqs {
            match store.replay_dead_letter(&req.sink, seq, now_ms)? {
                Replayed::Requeued(new) => report.requeued.push([seq, new]),
                Replayed::Superseded(_) => report.superseded.push(seq),
                Replayed::NotFound => report.not_found.push(seq),
                Replayed::Unreadable => report.unreadable.push(seq),
            }
        }
        if !report.requeued.is_empty() || !report.superseded.is_empty() {
            tracing::info!(
                sink = %req.sink,
                requeued = report.requeued.len(),
                superseded = report.superseded.len(),
                "Dead letters replayed by an operator."
            );
        }
        Ok(report)
    })
    .await;
    let report = match report {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Err(e) = state.store.flush().await {
        return store_error(e);
    }
    wake.notify_one();
    axum::Json(report).into_response()
}

async fn discard_dead_letter(
    State(state): State<Shared>,
    Path((sink, seq)): Path<(String, u64)>,
) -> Response {
    let store = state.store.clone();
    let name = sink.clone();
    let removed = blocking(move || store.remove_dead_letter(&name, seq)).await;
    if matches!(removed, Ok(Some(_)))
        && let Err(e) = state.store.flush().await
    {
        return store_error(e);
    }
    match removed {
        Ok(Some(letter)) => {
            tracing::info!(sink = %sink, seq, payload = %letter.entry.payload.id(), "A dead letter was discarded by an operator.");
            axum::Json(dead_letter_view(
                &sink,
                seq,
                &letter,
                state.sinks.contains_key(&sink),
            ))
            .into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!(
                "no dead letter {seq} in sink {:?}",
                crate::text::strip_control(&sink)
            ),
        ),
        Err(resp) => resp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

    #[test]
    fn an_unreadable_dead_letter_is_listed_as_such() {
        let stand_in = crate::event::Digest::new(
            "unreadable",
            std::collections::BTreeMap::new(),
            Vec::new(),
            time::OffsetDateTime::UNIX_EPOCH,
        );
        let letter = DeadLetter {
            entry: crate::event::OutboxEntry::new(Payload::Digest(stand_in), 5),
            dead_at_ms: 7,
            reason: "sink hook entry seq 3 cannot be read back: CRC mismatch".into(),
            last_response: None,
            unreadable: Some("CRC mismatch".into()),
        };
        let view = dead_letter_view("hook", 3, &letter, true);
        assert_eq!(
            (view.payload.as_str(), view.what.as_str()),
            ("unreadable", "")
        );
        assert!(view.reason.contains("CRC mismatch"), "{view:?}");
    }

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn req(matchers: &[&str]) -> NewSilence {
        NewSilence {
            matchers: matchers.iter().map(|s| s.to_string()).collect(),
            duration: Some("2h".into()),
            created_by: "alice".into(),
            comment: "upgrade".into(),
            ..NewSilence::default()
        }
    }

    #[test]
    fn builds_a_silence_from_a_request() {
        let now = ts("2026-05-01T10:00:00Z");
        let s = build_silence(
            &req(&[r#"namespace="kube-system", severity<high"#]),
            "x".into(),
            now,
            MAX,
        )
        .unwrap();
        assert_eq!(s.matchers.len(), 2);
        assert_eq!(s.starts_at, now);
        assert_eq!(s.ends_at, ts("2026-05-01T12:00:00Z"));
        let mut r = req(&["cluster=c1"]);
        r.duration = None;
        r.starts_at = Some("2026-05-01T11:00:00+08:00".into());
        r.ends_at = Some("2026-05-01T12:00:00Z".into());
        let s = build_silence(&r, "y".into(), now, MAX).unwrap();
        assert_eq!(s.starts_at, ts("2026-05-01T03:00:00Z"));
    }

    #[test]
    fn rejects_bad_requests_with_clear_messages() {
        let now = ts("2026-05-01T10:00:00Z");
        let e = build_silence(
            &req(&["cluster=c1", r#"clutser="x""#]),
            "x".into(),
            now,
            MAX,
        )
        .unwrap_err();
        assert!(e.starts_with("matchers[1]"), "{e}");
        assert!(e.contains("column 1"), "{e}");
        let e = build_silence(&req(&[r#"cluster=~"(""#]), "x".into(), now, MAX).unwrap_err();
        assert!(e.contains("column"), "{e}");
        let mut r = req(&["cluster=c1"]);
        r.duration = Some("2 hours".into());
        assert!(
            build_silence(&r, "x".into(), now, MAX)
                .unwrap_err()
                .starts_with("duration: ")
        );
        r.ends_at = Some("2026-05-01T12:00:00Z".into());
        assert!(
            build_silence(&r, "x".into(), now, MAX)
                .unwrap_err()
                .contains("not both")
        );
        r.duration = None;
        r.ends_at = None;
        assert!(
            build_silence(&r, "x".into(), now, MAX)
                .unwrap_err()
                .contains("set ends_at")
        );
        r.ends_at = Some("2026-05-01T09:00:00Z".into());
        assert!(
            build_silence(&r, "x".into(), now, MAX)
                .unwrap_err()
                .contains("in the past")
        );
        let e = build_silence(&req(&[r#"cluster=~".*""#]), "x".into(), now, MAX).unwrap_err();
        assert!(e.contains("must not match the empty value"), "{e}");
        let mut r = req(&["cluster=c1"]);
        r.created_by = " ".into();
        assert_eq!(
            build_silence(&r, "x".into(), now, MAX).unwrap_err(),
            "created_by must not be empty"
        );
    }

    #[test]
    fn silences_last_at_most_max_silence_from_now() {
        let now = ts("2026-05-01T10:00:00Z");
        let mut r = req(&["cluster=c1"]);
        r.duration = Some("30d".into());
        assert!(build_silence(&r, "x".into(), now, MAX).is_ok());
        r.duration = Some("30d1s".into());
        let e = build_silence(&r, "x".into(), now, MAX).unwrap_err();
        assert!(e.contains("would last 30d1s"), "{e}");
        assert!(e.contains("at most 30d ([admin] max_silence)"), "{e}");
        r.duration = None;
        r.ends_at = Some("2036-05-01T10:00:00Z".into());
        assert!(
            build_silence(&r, "x".into(), now, MAX).is_err(),
            "ten years"
        );
        // A start in the past adds nothing: what counts is what is left from now.
        r.starts_at = Some("2026-01-01T00:00:00Z".into());
        r.ends_at = Some("2026-05-20T00:00:00Z".into());
        assert!(build_silence(&r, "x".into(), now, MAX).is_ok());
        // A later start counts from the start.
        r.starts_at = Some("2026-06-01T00:00:00Z".into());
        r.ends_at = Some("2026-06-20T00:00:00Z".into());
        assert!(build_silence(&r, "x".into(), now, MAX).is_ok());
    }

    #[test]
    fn a_silence_of_everything_needs_force() {
        let now = ts("2026-05-01T10:00:00Z");
        let mut r = req(&[r#"domain=~".+""#]);
        let e = build_silence(&r, "x".into(), now, MAX).unwrap_err();
        assert!(e.contains("match every event"), "{e}");
        assert!(e.contains("--force"), "{e}");
        r.force = true;
        assert!(build_silence(&r, "x".into(), now, MAX).is_ok());
        // Force does not lift the other checks.
        r.duration = Some("31d".into());
        assert!(build_silence(&r, "x".into(), now, MAX).is_err());
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }
}
