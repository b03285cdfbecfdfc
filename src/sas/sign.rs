//! Request signing for Security Center: ACS3-HMAC-SHA256 ("V3", the default) and the RPC
//! HMAC-SHA1 signature ("V1"), exactly as the official SDK computes them, plus the server-side
//! verification the simulator uses. Pure: no clock, no randomness, no IO — timestamps and nonces
//! come in through [`SigningContext`], so every vector in `tests/fixtures/vectors` is reproducible.

use crate::credentials::SigningKey;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::params::{Params, form_encode, percent_encode};

/// API version every action here uses.
pub const API_VERSION: &str = "2018-12-03";
/// SHA-256 of the empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Which signature a source uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureVersion {
    /// ACS3-HMAC-SHA256 (the SDK's default).
    #[default]
    V3,
    /// RPC HMAC-SHA1 (`SignatureVersion=1.0`), for accounts or proxies that need it.
    V1,
}

/// Per-request values that would otherwise come from the clock and the RNG.
#[derive(Clone, Debug)]
pub struct SigningContext {
    /// UTC `YYYY-MM-DDThh:mm:ssZ`.
    pub timestamp: String,
    /// Unique per request.
    pub nonce: String,
    /// Sent (and, under V3, signed) as `user-agent`; `None` sends no header.
    pub user_agent: Option<String>,
    /// `x-acs-credentials-provider` value; `None` sends no header.
    pub credentials_provider: Option<String>,
}

/// One request before signing.
#[derive(Clone, Debug)]
pub struct UnsignedRequest<'a> {
    /// `POST` or `GET`.
    pub method: &'a str,
    /// Host header value (`tds.cn-shanghai.aliyuncs.com`, or `127.0.0.1:PORT` for the simulator).
    pub host: &'a str,
    /// API action.
    pub action: &'a str,
    /// Query parameters.
    pub query: &'a Params,
    /// Form-body parameters. `Some` for actions whose SDK model has a body
    /// (`DescribeSuspEvents`, for `TacticId`): the SDK then sends `content-type` even when the
    /// body is empty, and signs it.
    pub form: Option<&'a Params>,
}

/// A request ready to send: path is always `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRequest {
    /// Encoded query string (without `?`).
    pub query: String,
    /// Headers to send, in order.
    pub headers: Vec<(String, String)>,
    /// Encoded form body (empty when there is none).
    pub body: String,
}

type HmacSha256 = Hmac<Sha256>;
type HmacSha1 = Hmac<sha1::Sha1>;

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn hmac_sha256_hex(key: &str, msg: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).expect("hmac takes any key length");
    mac.update(msg.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

// ---------------------------------------------------------------------------------------------
// V3

/// `key=enc(value)` pairs sorted by key and joined with `&` (keys encoded too, for compliance).
pub fn v3_canonical_query(pairs: &[(String, String)]) -> String {
    let mut enc: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    enc.sort();
    enc.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Canonical headers (`name:value\n`, sorted) and the `SignedHeaders` list from `(name, value)`
/// pairs. Names are lower-cased, values trimmed; repeated names are merged with sorted values.
pub fn v3_canonical_headers(headers: &[(String, String)]) -> (String, String) {
    let mut map: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (n, v) in headers {
        map.entry(n.to_ascii_lowercase())
            .or_default()
            .push(v.trim().to_string());
    }
    let mut canonical = String::new();
    for (n, vs) in &mut map {
        vs.sort();
        canonical.push_str(&format!("{n}:{}\n", vs.join(",")));
    }
    let signed = map.keys().cloned().collect::<Vec<_>>().join(";");
    (canonical, signed)
}

/// The V3 canonical request.
pub fn v3_canonical_request(
    method: &str,
    query: &[(String, String)],
    signed_headers: &[(String, String)],
    hashed_payload: &str,
) -> String {
    let (canonical_headers, signed) = v3_canonical_headers(signed_headers);
    format!(
        "{method}\n/\n{}\n{canonical_headers}\n{signed}\n{hashed_payload}",
        v3_canonical_query(query)
    )
}

/// `ACS3-HMAC-SHA256\n` + hex(SHA-256(canonical request)).
pub fn v3_string_to_sign(canonical_request: &str) -> String {
    format!(
        "ACS3-HMAC-SHA256\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// Hex HMAC-SHA256 of the string to sign, keyed by the secret (no `&` suffix).
pub fn v3_signature(secret: &str, string_to_sign: &str) -> String {
    hmac_sha256_hex(secret, string_to_sign)
}

/// The headers both algorithms send first, in the SDK's order.
fn base_headers(req: &UnsignedRequest<'_>, ctx: &SigningContext) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), req.host.into()),
        ("x-acs-version".into(), API_VERSION.into()),
        ("x-acs-action".into(), req.action.into()),
    ];
    if let Some(ua) = &ctx.user_agent {
        headers.push(("user-agent".into(), ua.clone()));
    }
    headers
}

/// Signs with ACS3-HMAC-SHA256, adding the headers the SDK adds and signing all of them.
pub fn sign_v3(
    req: &UnsignedRequest<'_>,
    ctx: &SigningContext,
    key: &SigningKey<'_>,
) -> SignedRequest {
    let body = req.form.map(|f| form_encode(f.pairs())).unwrap_or_default();
    let hashed = sha256_hex(body.as_bytes());
    let mut headers = base_headers(req, ctx);
    headers.push(("x-acs-date".into(), ctx.timestamp.clone()));
    headers.push(("x-acs-signature-nonce".into(), ctx.nonce.clone()));
    headers.push(("accept".into(), "application/json".into()));
    if req.form.is_some() {
        headers.push((
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
    }
    headers.push(("x-acs-content-sha256".into(), hashed.clone()));
    if let Some(p) = &ctx.credentials_provider {
        headers.push(("x-acs-credentials-provider".into(), p.clone()));
    }
    if let Some(token) = key.security_token {
        headers.push(("x-acs-accesskey-id".into(), key.access_key_id.into()));
        headers.push(("x-acs-security-token".into(), token.into()));
    }
    let canonical = v3_canonical_request(req.method, req.query.pairs(), &headers, &hashed);
    let (_, signed_names) = v3_canonical_headers(&headers);
    let signature = v3_signature(key.access_key_secret, &v3_string_to_sign(&canonical));
    headers.push((
        "Authorization".into(),
        format!(
            "ACS3-HMAC-SHA256 Credential={},SignedHeaders={signed_names},Signature={signature}",
            key.access_key_id
        ),
    ));
    SignedRequest {
        query: form_encode(req.query.pairs()),
        headers,
        body,
    }
}

// ---------------------------------------------------------------------------------------------
// V1

/// Sorted `enc(key)=enc(value)` of every signed parameter (everything but `Signature`).
pub fn v1_canonicalized_query(params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> =
        params.iter().filter(|(k, _)| k != "Signature").collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    sorted
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `METHOD&%2F&enc(canonicalized query)`.
pub fn v1_string_to_sign(method: &str, canonicalized: &str) -> String {
    format!("{method}&%2F&{}", percent_encode(canonicalized))
}

/// Base64 HMAC-SHA1 keyed by `secret + "&"`.
pub fn v1_signature(secret: &str, string_to_sign: &str) -> String {
    let mut mac =
        HmacSha1::new_from_slice(format!("{secret}&").as_bytes()).expect("any key length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Signs with RPC HMAC-SHA1: common parameters go into the query, the form body is signed too.
pub fn sign_v1(
    req: &UnsignedRequest<'_>,
    ctx: &SigningContext,
    key: &SigningKey<'_>,
) -> SignedRequest {
    let mut query = Params::new();
    query
        .set("Action", req.action)
        .set("Format", "json")
        .set("Version", API_VERSION)
        .set("Timestamp", &ctx.timestamp)
        .set("SignatureNonce", &ctx.nonce);
    for (k, v) in req.query.pairs() {
        query.set(k, v);
    }
    if let Some(token) = key.security_token {
        query.set("SecurityToken", token);
    }
    query
        .set("SignatureMethod", "HMAC-SHA1")
        .set("SignatureVersion", "1.0")
        .set("AccessKeyId", key.access_key_id);
    let mut all: Vec<(String, String)> = query.pairs().to_vec();
    if let Some(form) = req.form {
        all.extend(form.pairs().iter().cloned());
    }
    let sts = v1_string_to_sign(req.method, &v1_canonicalized_query(&all));
    query.set("Signature", v1_signature(key.access_key_secret, &sts));

    let body = req.form.map(|f| form_encode(f.pairs())).unwrap_or_default();
    let mut headers = base_headers(req, ctx);
    if req.form.is_some() {
        headers.push((
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
    }
    if let Some(p) = &ctx.credentials_provider {
        headers.push(("x-acs-credentials-provider".into(), p.clone()));
    }
    SignedRequest {
        query: form_encode(query.pairs()),
        headers,
        body,
    }
}

/// Signs with the chosen algorithm.
pub fn sign(
    version: SignatureVersion,
    req: &UnsignedRequest<'_>,
    ctx: &SigningContext,
    key: &SigningKey<'_>,
) -> SignedRequest {
    match version {
        SignatureVersion::V3 => sign_v3(req, ctx, key),
        SignatureVersion::V1 => sign_v1(req, ctx, key),
    }
}

// ---------------------------------------------------------------------------------------------
// Verification (the simulator's side)

/// A parsed `Authorization: ACS3-HMAC-SHA256 ...` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V3Authorization {
    /// The AccessKey ID from `Credential=`.
    pub access_key_id: String,
    /// Lower-case header names from `SignedHeaders=`.
    pub signed_headers: Vec<String>,
    /// Hex signature.
    pub signature: String,
}

/// Parses an ACS3 `Authorization` header; `None` when it is malformed (`IncompleteSignature`).
pub fn parse_v3_authorization(value: &str) -> Option<V3Authorization> {
    let rest = value.strip_prefix("ACS3-HMAC-SHA256 ")?;
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => cred = Some(v.to_string()),
            "SignedHeaders" => signed = Some(v.to_string()),
            "Signature" => sig = Some(v.to_string()),
            _ => return None,
        }
    }
    let signed_headers: Vec<String> = signed?.split(';').map(str::to_string).collect();
    let (cred, signature) = (cred?, sig?);
    if cred.is_empty() || signature.is_empty() || signed_headers.iter().any(String::is_empty) {
        return None;
    }
    Some(V3Authorization {
        access_key_id: cred,
        signed_headers,
        signature,
    })
}

/// Expected V3 signature for a received request. Only the headers named in `SignedHeaders` are
/// used, so headers added by HTTP stacks (`Accept-Encoding`, `Content-Length`) do not matter; the
/// payload hash is recomputed from the raw body. Returns `(string_to_sign, signature)`.
pub fn v3_expected(
    method: &str,
    decoded_query: &[(String, String)],
    header: impl Fn(&str) -> Option<String>,
    auth: &V3Authorization,
    raw_body: &[u8],
    secret: &str,
) -> (String, String) {
    let signed: Vec<(String, String)> = auth
        .signed_headers
        .iter()
        .map(|n| (n.clone(), header(n).unwrap_or_default()))
        .collect();
    let canonical = v3_canonical_request(method, decoded_query, &signed, &sha256_hex(raw_body));
    let sts = v3_string_to_sign(&canonical);
    let sig = v3_signature(secret, &sts);
    (sts, sig)
}

/// Expected V1 signature for received parameters (query and form merged, `Signature` excluded).
/// Returns `(string_to_sign, signature)`.
pub fn v1_expected(method: &str, params: &[(String, String)], secret: &str) -> (String, String) {
    let sts = v1_string_to_sign(method, &v1_canonicalized_query(params));
    let sig = v1_signature(secret, &sts);
    (sts, sig)
}

/// Constant-time comparison of two signatures.
pub fn signatures_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
