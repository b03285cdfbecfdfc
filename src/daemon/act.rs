//! The action page (issue 17, `[actions]`): where a notification's "Ignore…" button leads. It
//! listens on its own address, meant for an internal network or behind the organisation's
//! reverse proxy with single sign-on, and never on the admin API's.
//!
//! | route | does |
//! |---|---|
//! | `GET /act/{domain}/{id}?t=TOKEN` | checks the link ([`crate::action_link::verify`]), shows the finding (escaped like every sink), what the action would do now ([`crate::handle::plan`]) and a form to confirm it; changes nothing |
//! | `POST /act/{domain}/{id}` | the confirmation: checked again, the link spent, the action done and its task followed ([`crate::handle::execute`]), recorded in the audit log; the page names who did what and how it ended |
//!
//! ## Security model
//!
//! - **The link is the capability.** A link is signed (HMAC-SHA256 with `[actions] secret`),
//!   names one finding, one action and the sink that carried it, and expires (`link_ttl`).
//!   Tampered, expired and cross-finding links are refused with a page saying which.
//! - **Single use.** The confirmation spends the link's nonce in the store (compare-and-swap)
//!   before acting: a replay is told when and by whom it was used.
//! - **A `GET` never acts.** Chat clients, mail scanners and link previews fetch links on
//!   their own; only a `POST` from the page acts.
//! - **Cross-site requests.** The form carries a CSRF token bound (HMAC) to a random
//!   `SameSite=Lax`, `HttpOnly` cookie the page set and to the link (Lax, not Strict: a link
//!   opened from chat is a cross-site navigation, and a Strict cookie would be missing there
//!   and made anew, breaking the form of a page open in another tab; a cross-site `POST`
//!   carries neither); a `POST` whose
//!   `Sec-Fetch-Site` is anything but `same-origin` (or, from a browser that does not send
//!   it, whose `Origin` is not this page's: `public_url`, or the `Host` it was sent to) is
//!   refused before anything else.
//! - **Who.** With `identity_header`, the signed-in user is read from that header, but only
//!   on connections from `trusted_proxies` (anyone else could send it); `allowed_identities`,
//!   when set, lists who may act. Without an identity the page says it is unauthenticated and
//!   acts only with `allow_unauthenticated = true`, recording "unauthenticated" as who.
//! - **Leaks.** Every answer says `Referrer-Policy: same-origin` (the token is in the URL; no
//!   other site ever sees it — and not `no-referrer`, with which browsers send
//!   `Origin: null` on the page's own form),
//!   `Cache-Control: no-store`, a `Content-Security-Policy` allowing no script and no frame,
//!   `X-Frame-Options: DENY`.
//! - **Exhaustion.** Connections are served by the admin API's door ([`super::door::serve`]):
//!   the same header-read and idle timeouts and connection cap.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::action_link::{self, ActionsSettings, Claims, Refused};
use crate::finding::Domain;
use crate::handle::{Action, Outcome, Plan, Request};
use crate::render::escape::html;
use crate::secret::Secret;
use crate::store::{SpentLink, Store};

use super::door::PeerAddr;
use super::sources::Connected;

/// The cookie the CSRF token is bound to.
const COOKIE: &str = "sasrelay_act";

/// Longest remark or reason accepted from the form.
const MAX_REMARK: usize = 500;

/// Longest identity taken from the proxy's header.
const MAX_IDENTITY: usize = 256;

/// What the page needs: its settings, the key, the store and the sources to act through.
pub struct ActState {
    /// `[actions]`.
    pub settings: ActionsSettings,
    /// The key links are signed with.
    pub key: Secret,
    /// The store (spent links, records, the audit log).
    pub store: Store,
    /// The sources connected now.
    pub connected: Connected,
    /// The daemon's counters (requests by outcome).
    pub metrics: Arc<crate::pipeline::metrics::Metrics>,
}

/// What a request came to, for `sasrelay_action_page_requests_total`: put in the response's
/// extensions where the page is made, counted by [`count`].
#[derive(Clone, Copy, Debug)]
struct Counted(&'static str);

/// `r`, counted as `outcome`.
fn tagged(mut r: Response, outcome: &'static str) -> Response {
    r.extensions_mut().insert(Counted(outcome));
    r
}

/// Counts each answer by its [`Counted`] outcome.
async fn count(State(state): State<Arc<ActState>>, r: Response) -> Response {
    if let Some(Counted(outcome)) = r.extensions().get::<Counted>() {
        state.metrics.action_page(outcome);
    }
    r
}

/// The page's routes, with its headers on every answer.
pub fn router(state: Arc<ActState>) -> Router {
    Router::new()
        .route("/act/{domain}/{id}", get(show).post(confirm))
        .fallback(not_found)
        .layer(axum::middleware::map_response(protect))
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            count,
        ))
        .with_state(state)
}

/// The headers every answer carries (module doc, "Leaks").
async fn protect(mut r: Response) -> Response {
    let h = r.headers_mut();
    let mut set = |k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(header::REFERRER_POLICY, "same-origin");
    set(header::CACHE_CONTROL, "no-store");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    r
}

async fn not_found() -> Response {
    tagged(
        page(
            StatusCode::NOT_FOUND,
            "Not found",
            "<p>This address serves sasrelay's action links only: open one from a notification.</p>",
        ),
        "not_found",
    )
}

/// The finding a path names: `/act/alerts/752312`.
fn finding_of(domain: &str, id: &str) -> Option<(Domain, i64)> {
    let d = Domain::ALL.into_iter().find(|d| d.as_str() == domain)?;
    let id = id.parse::<i64>().ok().filter(|n| *n > 0)?;
    Some((d, id))
}

fn now_s() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The page refusing a link, and the log line.
fn refused_link(r: Refused, peer: Option<IpAddr>) -> Response {
    tracing::warn!(peer = ?peer, reason = ?r, "An action link was refused: {}", r.message());
    let status = match r {
        Refused::Malformed => StatusCode::BAD_REQUEST,
        Refused::Tampered | Refused::OtherFinding => StatusCode::FORBIDDEN,
        Refused::Expired => StatusCode::GONE,
    };
    tagged(
        page(
            status,
            "Link refused",
            &format!(
                "<p class=\"refused\">{}</p><p>Nothing was changed.</p>",
                html(r.message())
            ),
        ),
        r.name(),
    )
}

/// The link of a request: its claims, or why not (`None`: no such finding page).
fn checked(
    state: &ActState,
    domain: &str,
    id: &str,
    token: Option<&str>,
) -> Result<Claims, Option<Refused>> {
    let (domain, id) = finding_of(domain, id).ok_or(None)?;
    let token = token.unwrap_or_default();
    action_link::verify(state.key.expose().as_bytes(), token, domain, id, now_s()).map_err(Some)
}

/// The page refusing a link `checked` refused.
fn refusal_page(why: Option<Refused>, peer: Option<IpAddr>) -> Response {
    match why {
        Some(r) => refused_link(r, peer),
        None => not_found_page(),
    }
}

fn not_found_page() -> Response {
    tagged(
        page(
            StatusCode::NOT_FOUND,
            "Not found",
            "<p>No such finding page.</p>",
        ),
        "not_found",
    )
}

/// Who is asking, as far as the page can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Who {
    /// Named by a trusted proxy (and allowed).
    User(String),
    /// Named, but not in `allowed_identities`.
    NotAllowed(String),
    /// Nobody named them.
    Anonymous,
}

/// Who a request comes from (module doc, "Who").
fn who(settings: &ActionsSettings, peer: Option<IpAddr>, headers: &HeaderMap) -> Who {
    let Some(name) = &settings.identity_header else {
        return Who::Anonymous;
    };
    let trusted = peer.is_some_and(|p| settings.trusted_proxies.iter().any(|n| n.contains(p)));
    if !trusted {
        return Who::Anonymous;
    }
    let Some(value) = headers
        .get(name.as_str())
        .and_then(|v| v.to_str().ok())
        .map(|v| crate::text::strip_control(v).trim().to_string())
        .filter(|v| !v.is_empty() && v.chars().count() <= MAX_IDENTITY)
    else {
        return Who::Anonymous;
    };
    if settings.allowed_identities.is_empty()
        || settings
            .allowed_identities
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&value))
    {
        Who::User(value)
    } else {
        Who::NotAllowed(value)
    }
}

/// The name recorded for `who`, when it may act; else why not.
fn actor(settings: &ActionsSettings, who: &Who) -> Result<String, String> {
    match who {
        Who::User(u) => Ok(u.clone()),
        Who::NotAllowed(u) => Err(format!(
            "{u} is not among the identities allowed to act here ([actions] allowed_identities)."
        )),
        Who::Anonymous if settings.allow_unauthenticated => Ok("unauthenticated".into()),
        Who::Anonymous => Err(match &settings.identity_header {
            Some(h) => format!(
                "You are not signed in: this page acts only for a user its single-sign-on proxy names (header {h}). Open the link through that proxy."
            ),
            None => "This page does not act for unauthenticated users.".into(),
        }),
    }
}

/// The CSRF token of `cookie` for the link `nonce`.
fn csrf(key: &Secret, cookie: &str, nonce: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key"));
    m.update(b"sasrelay-action-csrf-v1\n");
    m.update(cookie.as_bytes());
    m.update(b"\n");
    m.update(nonce.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// The page's cookie in `headers`, when well-formed.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The request a link's claims make, for `who`.
fn request(claims: &Claims, who: String, remark: Option<String>) -> Request {
    // `verify` admits only `action_link::LINK_ACTIONS`: ignore, handled, verify.
    let action = match claims.action.as_str() {
        "handled" => Action::Handled,
        "verify" => Action::Verify,
        _ => Action::Ignore,
    };
    Request {
        source: claims.source.clone(),
        domain: claims.domain,
        id: claims.id,
        action,
        remark,
        who,
        via: format!("{} link", claims.sink),
        asset: None,
    }
}

#[derive(Debug, Deserialize)]
struct LinkQuery {
    t: Option<String>,
}

/// `GET /act/{domain}/{id}?t=…`: the finding and the confirmation form; changes nothing.
async fn show(
    State(state): State<Arc<ActState>>,
    Path((domain, id)): Path<(String, String)>,
    query: Result<Query<LinkQuery>, axum::extract::rejection::QueryRejection>,
    peer: Option<axum::Extension<PeerAddr>>,
    headers: HeaderMap,
) -> Response {
    let peer = peer.map(|p| p.0.0.ip());
    let token = query.ok().and_then(|q| q.0.t);
    let claims = match checked(&state, &domain, &id, token.as_deref()) {
        Ok(c) => c,
        Err(why) => return refusal_page(why, peer),
    };
    if let Some(r) = spent_page(&state, &claims) {
        return r;
    }
    let who = who(&state.settings, peer, &headers);
    let mut body = finding_html(&state, &claims);
    let may = actor(&state.settings, &who);
    let plan = match state.connected.get(&claims.source) {
        Some(source) => Some(
            crate::handle::plan(
                &source,
                // The reason is asked on the page; the plan only needs to know there will be one.
                request(
                    &claims,
                    may.clone().unwrap_or_default(),
                    action_link::needs_reason(claims.domain, &claims.action)
                        .then(|| "(given on confirmation)".to_string()),
                ),
            )
            .await,
        ),
        None => None,
    };
    body.push_str(&plan_html(plan.as_ref(), &claims));
    let cookie_value = cookie(&headers).unwrap_or_else(|| hex::encode(rand::random::<[u8; 16]>()));
    match (&may, &plan) {
        (Err(why), _) => body.push_str(&format!("<p class=\"refused\">{}</p>", html(why))),
        (Ok(_), Some(p)) if p.refused.is_none() => {
            body.push_str(&form_html(&state, &claims, &who, &cookie_value));
        }
        _ => {}
    }
    let mut r = tagged(page(StatusCode::OK, &title_of(&claims), &body), "shown");
    // The path as the browser sees it: under public_url's own path, if it has one.
    let (secure, base_path) = match reqwest::Url::parse(&state.settings.public_url) {
        Ok(u) => (
            if u.scheme() == "https" {
                "; Secure"
            } else {
                ""
            },
            u.path().trim_end_matches('/').to_string(),
        ),
        Err(_) => ("", String::new()),
    };
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{COOKIE}={cookie_value}; Path={base_path}/act; HttpOnly; SameSite=Lax{secure}"
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// The refusal of a spent link, if it is.
fn spent_page(state: &ActState, claims: &Claims) -> Option<Response> {
    let first = match state.store.spent_link(&claims.nonce) {
        Ok(f) => f?,
        Err(e) => return Some(store_failed(&e)),
    };
    Some(used_page(&first))
}

fn used_page(first: &SpentLink) -> Response {
    let at = crate::clock::rfc3339_ms(first.at_ms);
    tagged(
        page(
            StatusCode::GONE,
            "Link already used",
            &format!(
                "<p class=\"refused\">This link was already used, by {} at {}. A link acts once; use a newer notification, or sasrelay handle on the command line.</p><p>Nothing was changed.</p>",
                html(&first.who),
                html(&at)
            ),
        ),
        "spent",
    )
}

fn store_failed(e: &crate::store::StoreError) -> Response {
    tracing::error!(error = %e, "The action page cannot read or write the store.");
    tagged(
        page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Store error",
            &format!(
                "<p class=\"refused\">sasrelay cannot use its store: {}</p><p>Nothing was changed.</p>",
                html(&e.to_string())
            ),
        ),
        "store_error",
    )
}

fn action_title(action: &str) -> &'static str {
    match action {
        "ignore" => "Ignore",
        "handled" => "Mark handled",
        "verify" => "Verify the fix",
        _ => "Act",
    }
}

fn title_of(claims: &Claims) -> String {
    format!("{} {}", action_title(&claims.action), claims.finding())
}

/// The finding as its notification showed it (signed in the link), and whether sasrelay still
/// sees it open (its record), escaped.
fn finding_html(state: &ActState, claims: &Claims) -> String {
    let shown = &claims.shown;
    let mut rows: Vec<(&str, String)> = vec![
        ("Title", shown.title.clone()),
        ("Severity", shown.severity.clone()),
        ("Where", shown.place.clone()),
        ("Image", shown.image.clone()),
        ("Finding", claims.finding()),
        ("Source", claims.source.clone()),
        ("Sent by", claims.sink.clone()),
    ];
    rows.retain(|(_, v)| !v.is_empty());
    match state
        .store
        .get_record(&claims.source, claims.domain, &claims.fp)
    {
        Ok(Some(r)) => rows.push((
            "sasrelay sees it",
            match r.status {
                crate::record::RecordStatus::Active => "open".to_string(),
                crate::record::RecordStatus::Resolved => {
                    format!("resolved ({})", r.resolution.map_or("", |x| x.as_str()))
                }
            },
        )),
        Ok(None) => rows.push((
            "sasrelay sees it",
            "no longer tracked (resolved long ago and pruned)".into(),
        )),
        Err(e) => {
            tracing::warn!(error = %e, finding = %claims.finding(), "The action page cannot read the finding's record.");
        }
    }
    let mut out = String::from("<table>");
    for (k, v) in rows {
        out.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>",
            html(k),
            html(&v)
        ));
    }
    out.push_str("</table>");
    out
}

/// What the action would do now, or why it cannot.
fn plan_html(plan: Option<&Plan>, claims: &Claims) -> String {
    match plan {
        None => format!(
            "<p class=\"refused\">sasrelay cannot act on source {} here now: it is not connected, or this replica stands by. Try again in a minute.</p>",
            html(&claims.source)
        ),
        Some(p) => match &p.refused {
            Some(r) => format!(
                "<p class=\"refused\">Security Center would refuse: {} — {} ({})</p>",
                html(&r.code),
                html(&r.message),
                html(&r.hint)
            ),
            None => format!(
                "<p class=\"will\">Confirming will <strong>{}</strong> in Security Center.</p>",
                html(&p.will)
            ),
        },
    }
}

fn form_html(state: &ActState, claims: &Claims, who: &Who, cookie: &str) -> String {
    let token = csrf(&state.key, cookie, &claims.nonce);
    let reason = if action_link::needs_reason(claims.domain, &claims.action) {
        "<label for=\"remark\">Reason (required by Security Center)</label><textarea id=\"remark\" name=\"remark\" required maxlength=\"500\"></textarea>"
    } else {
        "<label for=\"remark\">Remark (optional)</label><textarea id=\"remark\" name=\"remark\" maxlength=\"500\"></textarea>"
    };
    let as_whom = match who {
        Who::User(u) => format!("You act as <strong>{}</strong>.", html(u)),
        _ => "You are <strong>not signed in</strong>: the audit log records this action as unauthenticated.".into(),
    };
    format!(
        "<form method=\"post\"><input type=\"hidden\" name=\"t\" value=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">{reason}<p>{as_whom}</p><button id=\"confirm\" type=\"submit\">Confirm: {}</button></form>",
        html(&action_link::sign(state.key.expose().as_bytes(), claims)),
        html(&token),
        html(action_title(&claims.action)),
    )
}

#[derive(Debug, Deserialize)]
struct Confirmation {
    #[serde(default)]
    t: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    remark: String,
}

/// Whether a `POST` came from another site (module doc, "Cross-site requests").
fn cross_site(settings: &ActionsSettings, headers: &HeaderMap) -> bool {
    // A browser says where a request comes from in `Sec-Fetch-Site`; only the page's own
    // form is `same-origin`.
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() != b"same-origin";
    }
    // Older browsers: their `Origin`, when they send one, must be this page's.
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let public = reqwest::Url::parse(&settings.public_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let own = [public, format!("http://{host}"), format!("https://{host}")];
    !own.iter().any(|o| o.eq_ignore_ascii_case(origin))
}

/// `POST /act/{domain}/{id}`: the confirmation (module doc).
async fn confirm(
    State(state): State<Arc<ActState>>,
    Path((domain, id)): Path<(String, String)>,
    peer: Option<axum::Extension<PeerAddr>>,
    headers: HeaderMap,
    form: Result<axum::Form<Confirmation>, axum::extract::rejection::FormRejection>,
) -> Response {
    let peer = peer.map(|p| p.0.0.ip());
    if cross_site(&state.settings, &headers) {
        tracing::warn!(peer = ?peer, "A cross-site POST to the action page was refused.");
        return tagged(
            page(
                StatusCode::FORBIDDEN,
                "Refused",
                "<p class=\"refused\">This confirmation came from another site: refused. Nothing was changed.</p>",
            ),
            "cross_site",
        );
    }
    let Ok(axum::Form(form)) = form else {
        return tagged(
            page(
                StatusCode::BAD_REQUEST,
                "Refused",
                "<p class=\"refused\">This is not a confirmation sent by sasrelay's page. Nothing was changed.</p>",
            ),
            "bad_form",
        );
    };
    let claims = match checked(&state, &domain, &id, Some(&form.t)) {
        Ok(c) => c,
        Err(why) => return refusal_page(why, peer),
    };
    let bound = cookie(&headers).is_some_and(|c| {
        let want = csrf(&state.key, &c, &claims.nonce);
        // Equal length hex; compared in constant time.
        want.len() == form.csrf.len()
            && want
                .bytes()
                .zip(form.csrf.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if !bound {
        tracing::warn!(peer = ?peer, finding = %claims.finding(), "An action confirmation without this page's CSRF token was refused.");
        return tagged(
            page(
                StatusCode::FORBIDDEN,
                "Refused",
                "<p class=\"refused\">This confirmation did not come from the page sasrelay showed you (its CSRF token or cookie is missing or wrong): refused. Open the link again. Nothing was changed.</p>",
            ),
            "csrf",
        );
    }
    let who = who(&state.settings, peer, &headers);
    let actor = match actor(&state.settings, &who) {
        Ok(a) => a,
        Err(why) => {
            return tagged(
                page(
                    StatusCode::FORBIDDEN,
                    "Refused",
                    &format!(
                        "<p class=\"refused\">{}</p><p>Nothing was changed.</p>",
                        html(&why)
                    ),
                ),
                "not_allowed",
            );
        }
    };
    let remark = crate::text::strip_control(form.remark.trim());
    if remark.chars().count() > MAX_REMARK {
        return tagged(
            page(
                StatusCode::BAD_REQUEST,
                "Refused",
                &format!(
                    "<p class=\"refused\">The remark is longer than {MAX_REMARK} characters. Nothing was changed.</p>"
                ),
            ),
            "bad_form",
        );
    }
    if remark.is_empty() && action_link::needs_reason(claims.domain, &claims.action) {
        return tagged(
            page(
                StatusCode::BAD_REQUEST,
                "Refused",
                "<p class=\"refused\">Security Center needs a reason for this. Go back and write one. Nothing was changed.</p>",
            ),
            "no_reason",
        );
    }
    let Some(source) = state.connected.get(&claims.source) else {
        return tagged(
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not now",
                &format!(
                    "{}<p>The link is still valid.</p>",
                    plan_html(None, &claims)
                ),
            ),
            "not_now",
        );
    };
    let spent = SpentLink {
        exp_s: claims.exp,
        at_ms: crate::clock::unix_ms(time::OffsetDateTime::now_utc()),
        who: actor.clone(),
    };
    match state.store.spend_link(&claims.nonce, &spent).await {
        Ok(None) => {}
        Ok(Some(first)) => {
            tracing::warn!(peer = ?peer, finding = %claims.finding(), first = %first.who, "A used action link was brought back: refused.");
            return used_page(&first);
        }
        Err(e) => return store_failed(&e),
    }
    let req = request(&claims, actor, (!remark.is_empty()).then_some(remark));
    let (plan, outcome, recorded) = perform(&state.store, &source, req).await;
    let mut body = finding_html(&state, &claims);
    body.push_str(&outcome_html(&plan, &outcome));
    if let Err(e) = recorded {
        body.push_str(&format!(
            "<p class=\"refused\">It could not be recorded in the audit log: {}</p>",
            html(&e.to_string())
        ));
    }
    let (status, counted) = if outcome.result == "success" {
        (StatusCode::OK, "done")
    } else {
        (StatusCode::CONFLICT, "failed")
    };
    tagged(page(status, &title_of(&claims), &body), counted)
}

fn outcome_html(plan: &Plan, outcome: &Outcome) -> String {
    let r = &plan.request;
    let headline = match outcome.result.as_str() {
        "success" => format!(
            "Done: {} {}, by {} via sasrelay ({}). The next poll sends its resolution.",
            html(action_title(r.action.name())),
            html(&r.finding()),
            html(&r.who),
            html(&r.via)
        ),
        "unfinished" => "Security Center accepted it but its task had not finished when sasrelay stopped waiting; the next poll shows whether it took effect.".into(),
        _ => "It did not take effect.".into(),
    };
    let class = if outcome.result == "success" {
        "done"
    } else {
        "refused"
    };
    let mut out = format!(
        "<p id=\"outcome\" class=\"{class}\">{headline}</p><p>{}</p>",
        html(&outcome.message)
    );
    if !outcome.request_id.is_empty() {
        out.push_str(&format!(
            "<p class=\"small\">Security Center RequestId {}</p>",
            html(&outcome.request_id)
        ));
    }
    out
}

/// Fills in the asset of a baseline re-check that names none, from the finding's record (a
/// scan of the source's baseline records: a re-check is a person's action, not a hot path).
pub fn fill_asset(store: &Store, req: &mut Request) {
    if req.domain != Domain::Baseline || req.action != Action::Recheck || req.asset.is_some() {
        return;
    }
    let finding = req.finding();
    match store.records(&req.source, Domain::Baseline) {
        Ok(records) => {
            req.asset = records
                .into_iter()
                .find(|(_, r)| r.id == finding)
                .and_then(|(_, r)| r.last.host.uuid)
                .filter(|u| !u.is_empty());
        }
        Err(e) => {
            tracing::warn!(error = %e, finding = %finding, "Cannot read the baseline records to find the asset to re-check; it is re-checked wherever it fails.");
        }
    }
}

/// Checks `req` again, does it, follows its task and records it in the audit log and the
/// log: the plan, the outcome and whether it was recorded. The admin API's `POST
/// /api/v1/handle` and the action page both act through it.
pub async fn perform(
    store: &Store,
    source: &crate::sas::source::Source,
    req: Request,
) -> (Plan, Outcome, Result<(), crate::store::StoreError>) {
    let plan = crate::handle::plan(source, req).await;
    // A poll that sees the change before the task ends still names who made it.
    let under_way = plan.refused.is_none().then(|| {
        let at_ms = crate::clock::unix_ms(time::OffsetDateTime::now_utc());
        store.begin_handling(Outcome::under_way().audit(&plan.request, at_ms))
    });
    let outcome = crate::handle::execute(source, &plan, crate::handle::FOLLOW_FOR).await;
    let at_ms = crate::clock::unix_ms(time::OffsetDateTime::now_utc());
    let entry = outcome.audit(&plan.request, at_ms);
    if entry.succeeded() {
        tracing::info!(who = %entry.who, via = %entry.via, source = %entry.source, finding = %entry.finding, action = %entry.action, request_id = %entry.request_id, task = ?entry.task_id, "Handled a finding: {}.", entry.detail);
    } else {
        tracing::warn!(who = %entry.who, via = %entry.via, source = %entry.source, finding = %entry.finding, action = %entry.action, result = %entry.result, error_code = ?entry.error_code, request_id = %entry.request_id, "A handling request did not take effect: {}", entry.message);
    }
    let recorded = store.record_audit(&entry).await;
    if let Err(e) = &recorded {
        tracing::error!(error = %e, finding = %entry.finding, "Cannot record the handling in the audit log.");
    }
    // Recorded (or not): from here on the log answers.
    drop(under_way);
    (plan, outcome, recorded)
}

/// The key file in the state directory when `[actions] secret` is not set.
pub const KEY_FILE: &str = "action-link.key";

/// The key links are signed with: `[actions] secret`, else the state directory's key file
/// (made on first use: 32 random bytes, hex, mode 0600). Both replicas of a pair must share a
/// configured secret (`sasrelay check` says so).
pub fn key(settings: &ActionsSettings, state_dir: &std::path::Path) -> Result<Secret, String> {
    if let Some(r) = &settings.secret {
        let s = r
            .resolve()
            .map_err(|e| format!("[actions] secret ({}): {e}", r.describe()))?;
        if s.expose().len() < 32 {
            return Err(format!(
                "[actions] secret ({}) is shorter than 32 characters: use a random key, e.g. `openssl rand -hex 32`",
                r.describe()
            ));
        }
        return Ok(s);
    }
    let path = state_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 32 => return Ok(Secret::new(text.trim())),
        Ok(_) => {
            return Err(format!(
                "{} is shorter than 32 characters: delete it (links sent so far stop working) or set [actions] secret",
                path.display()
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let value = hex::encode(rand::random::<[u8; 32]>());
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(value.as_bytes())?;
        f.sync_all()
    };
    write().map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    tracing::info!(file = %path.display(), "Made the key that signs action links.");
    Ok(Secret::new(value))
}

/// Serves the action page on `listener` until `shutdown`, with the admin API's door
/// (`admin`'s timeouts and connection cap).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ActState>,
    admin: crate::config::AdminSettings,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let result = super::door::serve(listener, router(state), &admin, shutdown).await;
    if let Err(e) = &result {
        tracing::error!(error = %e, "The action page stopped: {e}.");
    }
    result
}

/// A whole page: `title` and `body` (already escaped HTML), with its status.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html_text = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"referrer\" content=\"same-origin\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t} — sasrelay</title><style>{STYLE}</style></head><body><main><h1>{t}</h1>{body}<p class=\"small\">sasrelay · action page</p></main></body></html>",
        t = html(title),
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html_text,
    )
        .into_response()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#172b4d;margin:0}main{max-width:44rem;margin:2rem auto;background:#fff;padding:1.5rem 2rem;border-radius:8px;box-shadow:0 1px 3px #0002}h1{font-size:1.4rem}table{border-collapse:collapse;width:100%;margin:1rem 0}th{text-align:left;width:9rem;color:#5e6c84;font-weight:600;vertical-align:top}th,td{padding:.3rem .4rem;border-bottom:1px solid #eee;word-break:break-word}.refused{color:#bf2600;font-weight:600}.done{color:#006644;font-weight:600}.will{background:#fffae6;padding:.6rem}label{display:block;margin-top:1rem;font-weight:600}textarea{width:100%;min-height:4rem}button{margin-top:1rem;background:#0052cc;color:#fff;border:0;border-radius:4px;padding:.6rem 1.2rem;font-size:1rem;cursor:pointer}.small{color:#6b778c;font-size:.8rem}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action_link::Net;

    fn settings() -> ActionsSettings {
        ActionsSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            public_url: "https://relay.example".into(),
            secret: None,
            link_ttl: action_link::DEFAULT_LINK_TTL,
            offer: vec!["ignore".into()],
            identity_header: Some("x-forwarded-user".into()),
            trusted_proxies: vec![Net::parse("10.0.0.0/8").unwrap()],
            allowed_identities: vec!["alice@example.com".into()],
            allow_unauthenticated: false,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn identities_come_only_from_trusted_proxies_and_the_allow_list() {
        let s = settings();
        let h = headers(&[("x-forwarded-user", "Alice@example.com")]);
        let proxy = Some("10.1.2.3".parse().unwrap());
        let other = Some("192.0.2.1".parse().unwrap());
        assert_eq!(who(&s, proxy, &h), Who::User("Alice@example.com".into()));
        assert_eq!(who(&s, other, &h), Who::Anonymous);
        assert_eq!(who(&s, None, &h), Who::Anonymous);
        let mallory = headers(&[("x-forwarded-user", "mallory")]);
        assert_eq!(who(&s, proxy, &mallory), Who::NotAllowed("mallory".into()));
        assert!(actor(&s, &Who::NotAllowed("mallory".into())).is_err());
        assert!(actor(&s, &Who::Anonymous).is_err());
        let open = ActionsSettings {
            allow_unauthenticated: true,
            ..s
        };
        assert_eq!(actor(&open, &Who::Anonymous).unwrap(), "unauthenticated");
    }

    #[test]
    fn cross_site_posts_are_told_apart_from_the_pages_own() {
        let s = settings();
        assert!(!cross_site(&s, &headers(&[])));
        assert!(!cross_site(
            &s,
            &headers(&[("origin", "https://relay.example")])
        ));
        assert!(!cross_site(
            &s,
            &headers(&[
                ("origin", "http://127.0.0.1:9095"),
                ("host", "127.0.0.1:9095")
            ])
        ));
        assert!(cross_site(
            &s,
            &headers(&[("origin", "https://evil.example")])
        ));
        assert!(cross_site(&s, &headers(&[("origin", "null")])));
        assert!(cross_site(
            &s,
            &headers(&[("sec-fetch-site", "cross-site")])
        ));
        assert!(!cross_site(
            &s,
            &headers(&[("sec-fetch-site", "same-origin"), ("origin", "null")])
        ));
        assert!(cross_site(&s, &headers(&[("sec-fetch-site", "same-site")])));
        assert!(cross_site(&s, &headers(&[("sec-fetch-site", "none")])));
        assert!(cross_site(
            &s,
            &headers(&[
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://relay.example")
            ])
        ));
    }

    #[test]
    fn the_csrf_token_binds_cookie_and_link() {
        let key = Secret::new("k");
        let a = csrf(&key, "00112233445566778899aabbccddeeff", "n1");
        assert_eq!(a, csrf(&key, "00112233445566778899aabbccddeeff", "n1"));
        assert_ne!(a, csrf(&key, "00112233445566778899aabbccddeef0", "n1"));
        assert_ne!(a, csrf(&key, "00112233445566778899aabbccddeeff", "n2"));
        let h = headers(&[(
            "cookie",
            "x=1; sasrelay_act=00112233445566778899aabbccddeeff",
        )]);
        assert_eq!(
            cookie(&h).as_deref(),
            Some("00112233445566778899aabbccddeeff")
        );
        assert_eq!(
            cookie(&headers(&[("cookie", "sasrelay_act=<script>")])),
            None
        );
    }
}
