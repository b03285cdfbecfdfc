//! Authentication as the real gateway does it: V3 (`Authorization: ACS3-HMAC-SHA256 …`) and V1
//! (`Signature` parameter) signature checks, STS tokens, the timestamp window and nonce replay
//! protection, each failure mapped to the error code the real service returns.
//!
//! Signature arithmetic is not re-implemented here: it comes from [`crate::sas::sign`], the same
//! code the client signs with, which reproduces every SDK vector. Order of checks: shape of the
//! signature → access key → timestamp → signature → token → version → nonce, so a request that
//! fails authentication never burns a nonce.

use std::collections::{HashMap, VecDeque};

use axum::http::HeaderMap;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::config::SimCredential;
use super::error::ApiError;
use crate::sas::params::form_decode;
use crate::sas::sign::{
    API_VERSION, parse_v3_authorization, signatures_equal, v1_expected, v3_expected,
};

/// Decoded `(key, value)` parameters in wire order.
type Pairs = Vec<(String, String)>;

/// Nonces remembered at most; beyond it the oldest are forgotten first.
const MAX_NONCES: usize = 100_000;

/// Accepted credentials and used nonces.
pub(crate) struct AuthState {
    pub creds: HashMap<String, SimCredential>,
    nonces: HashMap<String, i64>,
    order: VecDeque<(i64, String)>,
    window_ms: i64,
}

/// A request as received, before any interpretation.
pub(crate) struct RawRequest<'a> {
    pub method: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// An authenticated request.
#[derive(Debug)]
pub(crate) struct Verified {
    /// The action (from `x-acs-action` under V3, `Action` under V1).
    pub action: String,
    /// Query and form parameters merged.
    pub params: Vec<(String, String)>,
    /// The caller's access key (for permission checks).
    pub access_key_id: String,
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    if values.is_empty() {
        return None;
    }
    // Repeated headers are canonicalised as their sorted values joined with commas.
    values.sort();
    Some(values.join(","))
}

fn incomplete(why: &str) -> ApiError {
    ApiError::with_message(
        "IncompleteSignature",
        format!(
            "{} {why}",
            super::error::default_message("IncompleteSignature")
        ),
    )
}

/// The action a request names, without authenticating it (for call counters and logs).
pub(crate) fn claimed_action(req: &RawRequest<'_>) -> Option<String> {
    if req.headers.contains_key("authorization") {
        header(req.headers, "x-acs-action")
    } else {
        form_decode(req.query)
            .into_iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v)
            .or_else(|| header(req.headers, "x-acs-action"))
    }
}

/// Query and (for form bodies) body parameters, merged in that order.
pub(crate) fn merged_params(req: &RawRequest<'_>) -> (Pairs, Pairs) {
    let query = form_decode(req.query);
    let is_form = req
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let mut all = query.clone();
    if is_form {
        all.extend(form_decode(&String::from_utf8_lossy(req.body)));
    }
    (query, all)
}

impl AuthState {
    pub(crate) fn new(creds: &[SimCredential], window_ms: i64) -> Self {
        AuthState {
            creds: creds
                .iter()
                .map(|c| (c.access_key_id.clone(), c.clone()))
                .collect(),
            nonces: HashMap::new(),
            order: VecDeque::new(),
            window_ms,
        }
    }

    fn credential(&self, id: &str) -> Result<SimCredential, ApiError> {
        let c = self
            .creds
            .get(id)
            .ok_or_else(|| ApiError::new("InvalidAccessKeyId.NotFound"))?;
        if c.disabled {
            return Err(ApiError::new("InvalidAccessKeyId.Inactive"));
        }
        Ok(c.clone())
    }

    fn check_time(&self, value: &str, now: i64) -> Result<(), ApiError> {
        let t = OffsetDateTime::parse(value.trim(), &Rfc3339)
            .map_err(|_| ApiError::new("InvalidTimeStamp.Format"))?;
        let ms = i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MIN);
        if now.abs_diff(ms) > self.window_ms.unsigned_abs() {
            return Err(ApiError::new("InvalidTimeStamp.Expired"));
        }
        Ok(())
    }

    /// Records a nonce; `SignatureNonceUsed` when it was seen inside the replay window.
    fn use_nonce(&mut self, nonce: &str, now: i64) -> Result<(), ApiError> {
        // A replay older than twice the timestamp window already fails the timestamp check.
        let horizon = now - 2 * self.window_ms;
        while let Some((t, n)) = self.order.front() {
            if *t >= horizon && self.order.len() < MAX_NONCES {
                break;
            }
            if self.nonces.get(n) == Some(t) {
                self.nonces.remove(n);
            }
            self.order.pop_front();
        }
        if self.nonces.contains_key(nonce) {
            return Err(ApiError::new("SignatureNonceUsed"));
        }
        self.nonces.insert(nonce.to_string(), now);
        self.order.push_back((now, nonce.to_string()));
        Ok(())
    }

    /// Authenticates one request at `now` (epoch ms).
    pub(crate) fn verify(&mut self, req: &RawRequest<'_>, now: i64) -> Result<Verified, ApiError> {
        let (query, params) = merged_params(req);
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let (action, version, cred, token, nonce) = if let Some(value) =
            header(req.headers, "authorization")
        {
            let auth = parse_v3_authorization(&value)
                .ok_or_else(|| incomplete("Malformed Authorization header."))?;
            let signed = |n: &str| auth.signed_headers.iter().any(|h| h == n);
            for required in [
                "host",
                "x-acs-action",
                "x-acs-date",
                "x-acs-signature-nonce",
            ] {
                if !signed(required) {
                    return Err(incomplete(&format!(
                        "Header {required} must be in SignedHeaders."
                    )));
                }
            }
            let token = header(req.headers, "x-acs-security-token");
            if token.is_some() && !signed("x-acs-security-token") {
                return Err(incomplete(
                    "Header x-acs-security-token must be in SignedHeaders.",
                ));
            }
            let action =
                header(req.headers, "x-acs-action").ok_or_else(|| ApiError::missing("Action"))?;
            let version =
                header(req.headers, "x-acs-version").ok_or_else(|| ApiError::missing("Version"))?;
            let date =
                header(req.headers, "x-acs-date").ok_or_else(|| ApiError::missing("x-acs-date"))?;
            let nonce = header(req.headers, "x-acs-signature-nonce")
                .ok_or_else(|| ApiError::missing("x-acs-signature-nonce"))?;
            let cred = self.credential(&auth.access_key_id)?;
            self.check_time(&date, now)?;
            let (sts, expected) = v3_expected(
                req.method,
                &query,
                |n| header(req.headers, n),
                &auth,
                req.body,
                &cred.access_key_secret,
            );
            if !signatures_equal(&expected, &auth.signature) {
                return Err(ApiError::signature_mismatch(&sts));
            }
            (action, version, cred, token, nonce)
        } else {
            let action = get("Action").ok_or_else(|| ApiError::missing("Action"))?;
            let signature = get("Signature").ok_or_else(|| ApiError::missing("Signature"))?;
            let ak = get("AccessKeyId").ok_or_else(|| ApiError::missing("AccessKeyId"))?;
            match get("SignatureMethod").as_deref() {
                None => return Err(ApiError::missing("SignatureMethod")),
                Some("HMAC-SHA1") => {}
                Some(_) => return Err(incomplete("Unsupported SignatureMethod.")),
            }
            match get("SignatureVersion").as_deref() {
                None => return Err(ApiError::missing("SignatureVersion")),
                Some("1.0") => {}
                Some(_) => return Err(incomplete("Unsupported SignatureVersion.")),
            }
            let ts = get("Timestamp").ok_or_else(|| ApiError::missing("Timestamp"))?;
            let nonce = get("SignatureNonce").ok_or_else(|| ApiError::missing("SignatureNonce"))?;
            let version = get("Version").ok_or_else(|| ApiError::missing("Version"))?;
            let cred = self.credential(&ak)?;
            self.check_time(&ts, now)?;
            let (sts, expected) = v1_expected(req.method, &params, &cred.access_key_secret);
            if !signatures_equal(&expected, &signature) {
                return Err(ApiError::signature_mismatch(&sts));
            }
            (action, version, cred, get("SecurityToken"), nonce)
        };
        if let Some(expiry) = cred.expires_at_ms
            && now >= expiry
        {
            return Err(ApiError::new("InvalidSecurityToken.Expired"));
        }
        if token.as_deref().filter(|t| !t.is_empty()) != cred.security_token.as_deref() {
            return Err(ApiError::new("InvalidSecurityToken.MismatchWithAccessKey"));
        }
        if version != API_VERSION {
            return Err(ApiError::with_message(
                "InvalidAction.NotFound",
                format!(
                    "{} Version {version} is not supported; use {API_VERSION}.",
                    super::error::default_message("InvalidAction.NotFound")
                ),
            ));
        }
        self.use_nonce(&nonce, now)?;
        Ok(Verified {
            action,
            params,
            access_key_id: cred.access_key_id,
        })
    }

    /// Whether this key may call `action` (`Forbidden.RAM` otherwise).
    pub(crate) fn permitted(&self, access_key_id: &str, action: &str) -> bool {
        self.creds
            .get(access_key_id)
            .is_some_and(|c| !c.denied && !c.denied_actions.iter().any(|a| a == action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_single_use_and_bounded_by_time() {
        let mut st = AuthState::new(&[], 1_000);
        assert!(st.use_nonce("a", 10_000).is_ok());
        assert_eq!(
            st.use_nonce("a", 10_500).unwrap_err().code,
            "SignatureNonceUsed"
        );
        // Past twice the window the nonce is forgotten (the timestamp check guards replays then).
        assert!(st.use_nonce("b", 20_000).is_ok());
        assert!(st.use_nonce("a", 20_001).is_ok());
    }

    #[test]
    fn time_window_and_format() {
        let st = AuthState::new(&[], 15 * 60_000);
        let now = 1_716_193_800_000; // 2024-05-20T08:30:00Z
        assert!(st.check_time("2024-05-20T08:30:00Z", now).is_ok());
        assert!(st.check_time("2024-05-20T08:44:59Z", now).is_ok());
        assert_eq!(
            st.check_time("2024-05-20T08:45:01Z", now).unwrap_err().code,
            "InvalidTimeStamp.Expired"
        );
        assert_eq!(
            st.check_time("20240520", now).unwrap_err().code,
            "InvalidTimeStamp.Format"
        );
    }
}
