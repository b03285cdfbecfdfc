//! The HTTP face of the simulator: the RPC endpoint `/` (POST and GET) and the JSON control
//! endpoints under `/_sim/` (documented in the module doc of [`crate::simulator`]).
//!
//! Request pipeline for `/`: count the call → authenticate ([`super::auth`]) → known action? →
//! permitted? → injected fault? → answer ([`super::actions`]). Every error is a Security Center
//! error body with the status the real service uses.

use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::Simulator;
use super::auth::{RawRequest, claimed_action};
use super::config::SimCredential;
use super::error::{ApiError, status_for};
use super::faults::{CutBody, FaultKind, FaultSpec, NOT_JSON_BODY, wrong_types};
use super::implements;
use super::world::{ControlError, Domain};

/// `HostId` when the request has no `Host` header.
const DEFAULT_HOST_ID: &str = "tds.cn-shanghai.aliyuncs.com";
/// Counter key for requests that name no implemented action.
pub(crate) const OTHER_ACTION: &str = "_other";

#[derive(Clone)]
struct AppState {
    sim: Simulator,
    /// Cancelled by `serve`'s caller; cuts injected delays short so shutdown is prompt.
    shutdown: CancellationToken,
}

/// The router serving the API and the control endpoints.
pub(crate) fn router(sim: Simulator, shutdown: CancellationToken) -> Router {
    Router::new()
        .route("/", any(api))
        .route("/_sim/clusters", get(clusters))
        .route("/_sim/findings", post(add_finding))
        .route("/_sim/findings/{domain}", get(list_findings))
        .route(
            "/_sim/findings/{domain}/{id}",
            get(get_finding).delete(remove_finding),
        )
        .route("/_sim/findings/{domain}/{id}/status", post(set_status))
        .route("/_sim/tick", post(tick))
        .route("/_sim/credentials", post(add_credential))
        .route(
            "/_sim/credentials/{id}",
            axum::routing::delete(remove_credential),
        )
        .route(
            "/_sim/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/_sim/calls", get(calls).delete(reset_calls))
        .route("/_sim/handling", get(handling_calls))
        .fallback(not_found)
        .layer(axum::middleware::map_response_with_state(
            sim.clone(),
            dated,
        ))
        .with_state(AppState { sim, shutdown })
}

/// Every answer carries the simulator's clock in `Date`, as the real service's carry its own.
async fn dated(State(sim): State<Simulator>, mut response: Response) -> Response {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(sim.now_ms()).unwrap_or(0));
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(at)) {
        response.headers_mut().insert(axum::http::header::DATE, v);
    }
    response
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string().to_uppercase()
}

fn json_response(status: u16, body: &Value, request_id: &str) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-acs-request-id", v);
    }
    resp
}

fn error_response(e: &ApiError, request_id: &str, host_id: &str) -> Response {
    let mut resp = json_response(
        e.status,
        &Value::Object(e.body(request_id, host_id)),
        request_id,
    );
    if let Some(ms) = e.retry_after_ms
        && let Ok(v) = HeaderValue::from_str(&ms.to_string())
    {
        resp.headers_mut().insert("x-acs-retry-after", v);
    }
    resp
}

fn fault_error(kind: &FaultKind) -> Option<ApiError> {
    match kind {
        FaultKind::Throttling {
            code,
            retry_after_ms,
            status,
        } => {
            let mut e = ApiError::new(code);
            e.status = status.unwrap_or(status_for(code));
            e.retry_after_ms = *retry_after_ms;
            Some(e)
        }
        FaultKind::ServiceUnavailable => Some(ApiError::new("ServiceUnavailable")),
        FaultKind::InternalError => Some(ApiError::new("InternalError")),
        FaultKind::Error {
            code,
            status,
            message,
        } => {
            let mut e = match message {
                Some(m) => ApiError::with_message(code, m.clone()),
                None => ApiError::new(code),
            };
            if let Some(s) = status {
                e.status = *s;
            }
            Some(e)
        }
        _ => None,
    }
}

async fn api(
    State(st): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = new_request_id();
    let host_id = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(DEFAULT_HOST_ID)
        .to_string();
    let raw = RawRequest {
        method: method.as_str(),
        query: uri.query().unwrap_or(""),
        headers: &headers,
        body: &body,
    };
    let counted = claimed_action(&raw)
        .filter(|a| implements(a))
        .unwrap_or_else(|| OTHER_ACTION.to_string());
    st.sim.count_call(&counted);
    if method != Method::POST && method != Method::GET {
        return error_response(
            &ApiError::new("InvalidAction.NotFound"),
            &request_id,
            &host_id,
        );
    }
    let now = st.sim.now_ms();
    let verified = match st.sim.verify(&raw, now) {
        Ok(v) => v,
        Err(e) => {
            tracing::debug!(code = %e.code, "simulator rejected a request");
            return error_response(&e, &request_id, &host_id);
        }
    };
    if !implements(&verified.action) {
        return error_response(
            &ApiError::new("InvalidAction.NotFound"),
            &request_id,
            &host_id,
        );
    }
    if !st.sim.permitted(&verified.access_key_id, &verified.action) {
        return error_response(&ApiError::new("Forbidden.RAM"), &request_id, &host_id);
    }
    if st.sim.over_quota(&verified.action) {
        let mut e = ApiError::new("Throttling.User");
        e.status = status_for("Throttling.User");
        return error_response(&e, &request_id, &host_id);
    }
    let fault = st.sim.take_fault(&verified.action, &verified.params);
    if let Some(kind) = &fault {
        if let Some(e) = fault_error(kind) {
            return error_response(&e, &request_id, &host_id);
        }
        if let FaultKind::Slow { delay_ms } = kind {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(*delay_ms)) => {}
                _ = st.shutdown.cancelled() => {
                    return error_response(&ApiError::new("ServiceUnavailable"), &request_id, &host_id);
                }
            }
        }
    }
    let result = st.sim.answer(&verified, now);
    let mut body = match result {
        Ok(b) => b,
        Err(e) => return error_response(&e, &request_id, &host_id),
    };
    // RequestId first, as the real service orders it.
    let mut out = Map::new();
    out.insert("RequestId".into(), Value::String(request_id.clone()));
    out.append(&mut body);
    let out = Value::Object(out);
    match fault {
        Some(FaultKind::Truncated { keep_bytes }) => {
            let bytes = serde_json::to_vec(&out).unwrap_or_default();
            let keep = keep_bytes
                .unwrap_or(bytes.len() / 2)
                .min(bytes.len().saturating_sub(1));
            let full = bytes.len() as u64;
            let mut resp = Response::new(Body::new(CutBody::new(
                Bytes::from(bytes).slice(..keep),
                full,
            )));
            resp.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("application/json;charset=utf-8"),
            );
            resp
        }
        Some(FaultKind::ShortBody { keep_bytes }) => {
            let bytes = serde_json::to_vec(&out).unwrap_or_default();
            let keep = keep_bytes
                .unwrap_or(bytes.len() / 2)
                .min(bytes.len().saturating_sub(1));
            let mut resp = Response::new(Body::from(bytes[..keep].to_vec()));
            resp.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("application/json;charset=utf-8"),
            );
            resp
        }
        Some(FaultKind::NotJson) => (
            StatusCode::OK,
            [("content-type", "text/html")],
            NOT_JSON_BODY,
        )
            .into_response(),
        Some(FaultKind::WrongTypes) => json_response(200, &wrong_types(out), &request_id),
        Some(FaultKind::ListMissing) => json_response(
            200,
            &serde_json::json!({ "RequestId": request_id }),
            &request_id,
        ),
        Some(FaultKind::CodeInOk { code }) => json_response(
            200,
            &serde_json::json!({
                "RequestId": request_id,
                "Code": code,
                "Message": "The request has failed due to a temporary failure of the server.",
            }),
            &request_id,
        ),
        Some(FaultKind::PoisonRecord { id }) => {
            let mut resp = json_response(200, &Value::Null, &request_id);
            *resp.body_mut() = Body::from(super::faults::poisoned(out, id));
            resp
        }
        Some(FaultKind::HighIds) => json_response(200, &super::faults::high_ids(out), &request_id),
        Some(FaultKind::OversizedPage { records }) => {
            let mut resp = json_response(200, &Value::Null, &request_id);
            *resp.body_mut() = Body::from(super::faults::oversized(out, records));
            resp
        }
        _ => json_response(200, &out, &request_id),
    }
}

async fn not_found(headers: HeaderMap) -> Response {
    let host_id = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(DEFAULT_HOST_ID)
        .to_string();
    error_response(
        &ApiError::new("InvalidAction.NotFound"),
        &new_request_id(),
        &host_id,
    )
}

// ------------------------------------------------------------------------------ control plane

fn control_ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

fn control_err(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({"error": msg.to_string()}))).into_response()
}

fn from_control_error(e: ControlError) -> Response {
    let status = match e {
        ControlError::NotFound(..) => StatusCode::NOT_FOUND,
        ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
        ControlError::Full(_) => StatusCode::INSUFFICIENT_STORAGE,
    };
    control_err(status, e)
}

/// A refused control request, turned into a response by the handler.
type Refusal = (StatusCode, String);

fn refused((status, msg): Refusal) -> Response {
    control_err(status, msg)
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Refusal> {
    serde_json::from_slice(body).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))
}

fn domain(s: &str) -> Result<Domain, Refusal> {
    s.parse::<Domain>().map_err(|e| (StatusCode::NOT_FOUND, e))
}

async fn clusters(State(st): State<AppState>) -> Response {
    control_ok(serde_json::to_value(st.sim.clusters()).unwrap_or(Value::Null))
}

/// Body of `POST /_sim/findings`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddFindingBody {
    domain: Domain,
    #[serde(default)]
    cluster_id: Option<String>,
    #[serde(default)]
    fields: Map<String, Value>,
}

async fn add_finding(State(st): State<AppState>, body: Bytes) -> Response {
    let req: AddFindingBody = match parse(&body) {
        Ok(r) => r,
        Err(r) => return refused(r),
    };
    match st.sim.add_finding(
        req.domain,
        req.cluster_id.as_deref(),
        Value::Object(req.fields),
    ) {
        Ok(v) => control_ok(v),
        Err(e) => from_control_error(e),
    }
}

async fn list_findings(State(st): State<AppState>, Path(d): Path<String>) -> Response {
    match domain(&d) {
        Ok(d) => control_ok(Value::Array(st.sim.findings(d))),
        Err(r) => refused(r),
    }
}

async fn get_finding(State(st): State<AppState>, Path((d, id)): Path<(String, i64)>) -> Response {
    let d = match domain(&d) {
        Ok(d) => d,
        Err(r) => return refused(r),
    };
    match st.sim.finding(d, id) {
        Some(v) => control_ok(v),
        None => from_control_error(ControlError::NotFound(d, id)),
    }
}

async fn remove_finding(
    State(st): State<AppState>,
    Path((d, id)): Path<(String, i64)>,
) -> Response {
    let d = match domain(&d) {
        Ok(d) => d,
        Err(r) => return refused(r),
    };
    match st.sim.remove_finding(d, id) {
        Ok(v) => control_ok(v),
        Err(e) => from_control_error(e),
    }
}

/// Body of `POST /_sim/findings/{domain}/{id}/status`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: i64,
}

async fn set_status(
    State(st): State<AppState>,
    Path((d, id)): Path<(String, i64)>,
    body: Bytes,
) -> Response {
    let d = match domain(&d) {
        Ok(d) => d,
        Err(r) => return refused(r),
    };
    let req: StatusBody = match parse(&body) {
        Ok(r) => r,
        Err(r) => return refused(r),
    };
    match st.sim.set_status(d, id, req.status) {
        Ok(v) => control_ok(v),
        Err(e) => from_control_error(e),
    }
}

async fn tick(State(st): State<AppState>) -> Response {
    control_ok(serde_json::to_value(st.sim.tick()).unwrap_or(Value::Null))
}

async fn add_credential(State(st): State<AppState>, body: Bytes) -> Response {
    let c: SimCredential = match parse(&body) {
        Ok(c) => c,
        Err(r) => return refused(r),
    };
    match st.sim.add_credential(c) {
        Ok(()) => control_ok(json!({"ok": true})),
        Err(e) => from_control_error(e),
    }
}

async fn remove_credential(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    if st.sim.remove_credential(&id) {
        control_ok(json!({"ok": true}))
    } else {
        control_err(StatusCode::NOT_FOUND, format!("no credential {id:?}"))
    }
}

async fn add_fault(State(st): State<AppState>, body: Bytes) -> Response {
    let spec: FaultSpec = match parse(&body) {
        Ok(s) => s,
        Err(r) => return refused(r),
    };
    match st.sim.inject_fault(spec) {
        Ok(()) => control_ok(json!({"ok": true})),
        Err(e) => from_control_error(e),
    }
}

async fn list_faults(State(st): State<AppState>) -> Response {
    control_ok(serde_json::to_value(st.sim.pending_faults()).unwrap_or(Value::Null))
}

async fn clear_faults(State(st): State<AppState>) -> Response {
    st.sim.clear_faults();
    control_ok(json!({"ok": true}))
}

async fn calls(State(st): State<AppState>) -> Response {
    let calls = st.sim.calls();
    let total: u64 = calls.values().sum();
    let busiest = st.sim.busiest_seconds();
    control_ok(json!({"calls": calls, "total": total, "busiest_second": busiest}))
}

async fn handling_calls(State(st): State<AppState>) -> Response {
    control_ok(json!({"calls": st.sim.handling_calls()}))
}

async fn reset_calls(State(st): State<AppState>) -> Response {
    st.sim.reset_calls();
    control_ok(json!({"ok": true}))
}
