//! The Security Center client against the in-process simulator over real HTTP on 127.0.0.1:
//! paging in every domain, both signature versions with and without an STS token, every error
//! class and its retry behaviour, broken bodies, the whole-call timeout, `Source::read` per
//! domain (per cluster and account-wide), and status changes seen through a read window.
//!
//! Expected values always come from the simulator's own records (its control interface), never
//! from the client under test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use sasrelay::config;
use sasrelay::credentials::{Credential, CredentialContext, CredentialHandle, MapEnv};
use sasrelay::finding::{self, Domain, Finding, LinkKind, Resolution, Status};
use sasrelay::sas::api::{self, AlertQuery, BaselineQuery, FirewallQuery, VulQuery, VulType};
use sasrelay::sas::client::{ClientSettings, SasClient};
use sasrelay::sas::error::{ErrorClass, SasError};
use sasrelay::sas::retry::RetryPolicy;
use sasrelay::sas::sign::SignatureVersion;
use sasrelay::sas::source::{ReadWindow, Source};
use sasrelay::secret::Secret;
use sasrelay::simulator::{
    DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET, Domain as SimDomain, FaultKind, FaultSpec,
    SimConfig, SimCredential, SimHandle, Simulator,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

// ------------------------------------------------------------------------------------ helpers

/// `DescribeVulList` statuses that count as handled (`Dealed=y`).
const VUL_HANDLED: [i64; 6] = [7, 8, 9, 10, 11, 20];

async fn start() -> SimHandle {
    Simulator::start(SimConfig::default()).await.unwrap()
}

fn credential(ak: &str, secret: &str, token: Option<&str>) -> CredentialHandle {
    CredentialHandle::fixed(Credential {
        access_key_id: ak.into(),
        access_key_secret: Secret::new(secret),
        security_token: token.map(Secret::new),
        expiration: None,
        provider: if token.is_some() {
            "static_sts"
        } else {
            "static_ak"
        },
    })
}

/// Client settings for the simulator with millisecond retry delays.
fn settings(sim: &SimHandle, max_attempts: u32) -> ClientSettings {
    let mut s = ClientSettings::new(sim.base_url());
    s.retry = RetryPolicy::new(
        max_attempts,
        Duration::from_millis(5),
        Duration::from_millis(50),
    )
    .unwrap();
    s.timeout = Duration::from_secs(20);
    // The simulator has no quota unless a test sets one.
    s.calls_per_second = std::num::NonZeroU32::new(50).unwrap();
    s
}

fn client_with(settings: ClientSettings, ak: &str, secret: &str, token: Option<&str>) -> SasClient {
    SasClient::new(settings, credential(ak, secret, token)).unwrap()
}

fn demo_client(sim: &SimHandle) -> SasClient {
    client_with(
        settings(sim, 4),
        DEMO_ACCESS_KEY_ID,
        DEMO_ACCESS_KEY_SECRET,
        None,
    )
}

fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Pending alert ids (optionally of one cluster), as the simulator holds them.
fn pending_alerts(sim: &Simulator, cluster: Option<&str>) -> BTreeSet<i64> {
    sim.findings(SimDomain::Alert)
        .iter()
        .filter(|r| int(&r["EventStatus"]) == 1)
        .filter(|r| cluster.is_none_or(|c| text(&r["K8sClusterId"]) == c))
        .map(|r| int(&r["Id"]))
        .collect()
}

/// Unhandled vulnerability `PrimaryId`s of the given wire types.
fn pending_vulns(sim: &Simulator, types: &[&str], cluster: Option<&str>) -> BTreeSet<i64> {
    sim.findings(SimDomain::Vuln)
        .iter()
        .filter(|r| !VUL_HANDLED.contains(&int(&r["Status"])))
        .filter(|r| types.contains(&text(&r["Type"])))
        .filter(|r| cluster.is_none_or(|c| text(&r["K8sClusterId"]) == c))
        .map(|r| int(&r["PrimaryId"]))
        .collect()
}

/// Firewall record ids overlapping `[start, end]` (epoch ms; `None` is unbounded).
fn firewall_records(
    sim: &Simulator,
    cluster: Option<&str>,
    start: Option<i64>,
    end: Option<i64>,
) -> BTreeSet<i64> {
    sim.findings(SimDomain::Firewall)
        .iter()
        .filter(|r| cluster.is_none_or(|c| text(&r["ClusterId"]) == c))
        .filter(|r| start.is_none_or(|t| int(&r["LastTime"]) >= t))
        .filter(|r| end.is_none_or(|t| int(&r["FirstTime"]) <= t))
        .map(|r| int(&r["Id"]))
        .collect()
}

/// Baseline check results the ACK page shows: every check result of a (baseline, asset) pair
/// that has at least one failed or verifying check, by `CheckWarningId`.
fn baseline_records(sim: &Simulator, cluster: Option<&str>) -> BTreeSet<i64> {
    let all = sim.findings(SimDomain::Baseline);
    let open: BTreeSet<(i64, String)> = all
        .iter()
        .filter(|w| matches!(int(&w["Status"]), 1 | 2))
        .filter(|w| cluster.is_none_or(|c| text(&w["ClusterId"]) == c))
        .map(|w| (int(&w["RiskId"]), text(&w["Uuid"]).to_string()))
        .collect();
    all.iter()
        .filter(|w| open.contains(&(int(&w["RiskId"]), text(&w["Uuid"]).to_string())))
        .map(|w| int(&w["CheckWarningId"]))
        .collect()
}

/// Asserts `got` holds every id of `want` exactly once and nothing else.
fn assert_exactly_once(what: &str, got: &[i64], want: &BTreeSet<i64>) {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for id in got {
        *counts.entry(*id).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "{what}: ids read more than once: {dups:?}");
    let got: BTreeSet<i64> = counts.into_keys().collect();
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:?}, unexpected {extra:?}"
    );
}

/// Pages a listing of `n` records at `size` takes (an empty listing still costs one call).
fn pages_for(n: usize, size: usize) -> u32 {
    n.div_ceil(size).max(1) as u32
}

fn api_error(e: &SasError) -> (&str, u16, &str) {
    match e {
        SasError::Api { status, body, .. } => (&body.code, *status, &body.request_id),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn one_page() -> AlertQuery {
    AlertQuery {
        page_size: 100,
        ..AlertQuery::default()
    }
}

/// Adds records through the control interface so every domain needs several pages.
fn populate(sim: &Simulator) {
    let clusters = sim.clusters();
    let c0 = &clusters[0];
    let c1 = &clusters[1];
    for i in 0..24 {
        let c = if i % 2 == 0 { c0 } else { c1 };
        sim.add_finding(
            SimDomain::Alert,
            Some(&c.cluster_id),
            json!({"EventStatus": 1}),
        )
        .unwrap();
        sim.add_finding(SimDomain::Vuln, Some(&c.cluster_id), json!({"Type": "cve"}))
            .unwrap();
        sim.add_finding(SimDomain::Firewall, Some(&c.cluster_id), Value::Null)
            .unwrap();
    }
    for _ in 0..16 {
        sim.add_finding(
            SimDomain::Vuln,
            Some(&c1.cluster_id),
            json!({"Type": "sca"}),
        )
        .unwrap();
    }
    // Eight check results of one baseline on one node: DescribeCheckWarnings needs 4 pages of 2.
    for _ in 0..8 {
        sim.add_finding(
            SimDomain::Baseline,
            Some(&c0.cluster_id),
            json!({"RiskId": 120, "Uuid": c0.nodes[0].uuid, "Status": 1}),
        )
        .unwrap();
    }
}

// ------------------------------------------------------------------------------------- paging

#[tokio::test]
async fn every_domain_pages_to_the_end_and_reads_each_record_once() {
    let sim = start().await;
    populate(&sim);
    let client = demo_client(&sim);

    // Alerts: pending ones, 7 per page.
    let want = pending_alerts(&sim, None);
    assert!(want.len() >= 21, "{}", want.len());
    sim.reset_calls();
    let q = AlertQuery {
        page_size: 7,
        ..AlertQuery::default()
    };
    let listing = api::list_alerts(&client, &q).await.unwrap();
    let got: Vec<i64> = listing
        .items
        .iter()
        .map(|i| i.id.as_deref().unwrap().parse::<i64>().unwrap())
        .collect();
    assert_exactly_once("alerts", &got, &want);
    assert_eq!(listing.pages, pages_for(want.len(), 7));
    assert!(listing.pages >= 3);
    assert_eq!(listing.total_count, Some(want.len() as i64));
    assert!(!listing.stopped_on_repeat);
    assert_eq!(
        sim.call_count("DescribeSuspEvents"),
        u64::from(listing.pages)
    );

    // Vulnerabilities, page numbers: Linux (cve) and application (app+sca), 7 per page.
    let want_cve = pending_vulns(&sim, &["cve"], None);
    let want_app = pending_vulns(&sim, &["app", "sca"], None);
    assert!(want_cve.len() >= 21 && want_app.len() >= 15);
    let want: BTreeSet<i64> = want_cve.union(&want_app).copied().collect();
    let expected_pages = pages_for(want_cve.len(), 7) + pages_for(want_app.len(), 7);
    for use_next_token in [false, true] {
        sim.reset_calls();
        let q = VulQuery {
            page_size: 7,
            use_next_token,
            ..VulQuery::default()
        };
        let listing = api::list_vulnerabilities(&client, &q).await.unwrap();
        let got: Vec<i64> = listing
            .items
            .iter()
            .map(|i| i.primary_id.as_deref().unwrap().parse::<i64>().unwrap())
            .collect();
        assert_exactly_once(&format!("vulns (token {use_next_token})"), &got, &want);
        assert_eq!(listing.pages, expected_pages, "token {use_next_token}");
        assert_eq!(sim.call_count("DescribeVulList"), u64::from(expected_pages));
        // NextToken paging carries no TotalCount.
        let total = (!use_next_token).then_some(want.len() as i64);
        assert_eq!(listing.total_count, total, "token {use_next_token}");
    }

    // Firewall: every record (no window), 5 per page.
    let want = firewall_records(&sim, None, None, None);
    assert!(want.len() >= 15);
    sim.reset_calls();
    let q = FirewallQuery {
        page_size: 5,
        ..FirewallQuery::default()
    };
    let listing = api::list_firewall(&client, &q).await.unwrap();
    let got: Vec<i64> = listing
        .items
        .iter()
        .map(|i| i.id.as_deref().unwrap().parse::<i64>().unwrap())
        .collect();
    assert_exactly_once("firewall", &got, &want);
    assert_eq!(listing.pages, pages_for(want.len(), 5));
    assert_eq!(
        sim.call_count("ListInterceptionHistory"),
        u64::from(listing.pages)
    );

    // Baseline: summary → machines → check results, 2 per page at every level.
    let want = baseline_records(&sim, None);
    sim.reset_calls();
    let q = BaselineQuery {
        page_size: 2,
        ..BaselineQuery::default()
    };
    let items = api::list_baseline(&client, &q).await.unwrap().items;
    let got: Vec<i64> = items
        .iter()
        .map(|i| {
            i.check
                .check_warning_id
                .as_deref()
                .unwrap()
                .parse::<i64>()
                .unwrap()
        })
        .collect();
    assert_exactly_once("baseline", &got, &want);
    let risks: BTreeSet<i64> = items
        .iter()
        .map(|i| i.risk.risk_id.as_deref().unwrap().parse::<i64>().unwrap())
        .collect();
    assert_eq!(
        sim.call_count("DescribeCheckWarningSummary"),
        u64::from(pages_for(risks.len(), 2))
    );
    // The eight results on one node alone take four pages of two.
    assert!(sim.call_count("DescribeCheckWarnings") >= 4);

    // The page cap: a listing that needs more pages fails instead of reading a partial set.
    let mut capped = settings(&sim, 1);
    capped.max_pages = 2;
    let capped = client_with(capped, DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET, None);
    let want = pending_alerts(&sim, None);
    let q = AlertQuery {
        page_size: 7,
        ..AlertQuery::default()
    };
    match api::list_alerts(&capped, &q).await {
        Err(SasError::TooManyPages {
            action,
            pages,
            seen,
            total,
        }) => {
            assert_eq!(action, "DescribeSuspEvents");
            assert_eq!((pages, seen, total), (2, 14, want.len() as i64));
        }
        other => panic!("expected TooManyPages, got {other:?}"),
    }
    let q = VulQuery {
        page_size: 7,
        use_next_token: true,
        types: vec![VulType::Cve],
        ..VulQuery::default()
    };
    assert!(matches!(
        api::list_vulnerabilities(&capped, &q).await,
        Err(SasError::TooManyPages { pages: 2, .. })
    ));
}

// --------------------------------------------------------------------------------- signatures

#[tokio::test]
async fn both_signature_versions_work_with_and_without_an_sts_token() {
    let sim = start().await;
    sim.add_credential(SimCredential::sts(
        "STS.sasrelay-test",
        "sts-secret",
        "sts-token-value/with+odd=chars",
        None,
    ))
    .unwrap();
    let want = pending_alerts(&sim, None);
    assert!(!want.is_empty());
    for version in [SignatureVersion::V3, SignatureVersion::V1] {
        for (ak, secret, token) in [
            (DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET, None),
            (
                "STS.sasrelay-test",
                "sts-secret",
                Some("sts-token-value/with+odd=chars"),
            ),
        ] {
            let mut s = settings(&sim, 1);
            s.signature = version;
            let client = client_with(s, ak, secret, token);
            let listing = api::list_alerts(&client, &one_page())
                .await
                .unwrap_or_else(|e| panic!("{version:?} {ak}: {e}"));
            let got: Vec<i64> = listing
                .items
                .iter()
                .map(|i| i.id.as_deref().unwrap().parse::<i64>().unwrap())
                .collect();
            assert_exactly_once(&format!("{version:?} {ak}"), &got, &want);
            // A form-less action too.
            let vulns = api::list_vulnerabilities(&client, &VulQuery::default())
                .await
                .unwrap();
            assert!(!vulns.items.is_empty(), "{version:?} {ak}");
        }
        // The STS key without its token, or with another one, is refused.
        for token in [None, Some("another-token")] {
            let mut s = settings(&sim, 3);
            s.signature = version;
            let client = client_with(s, "STS.sasrelay-test", "sts-secret", token);
            sim.reset_calls();
            let e = api::list_alerts(&client, &one_page()).await.unwrap_err();
            assert_eq!(
                api_error(&e).0,
                "InvalidSecurityToken.MismatchWithAccessKey",
                "{version:?} {token:?}"
            );
            assert_eq!(e.class(), Some(ErrorClass::Auth));
            assert_eq!(sim.call_count("DescribeSuspEvents"), 1, "not retried");
        }
    }
}

// ----------------------------------------------------------------------------------- errors

#[tokio::test]
async fn throttling_is_retried_after_the_pause_the_service_asks_for() {
    let sim = start().await;
    let client = demo_client(&sim);
    let want = pending_alerts(&sim, None);
    sim.inject_fault(
        FaultSpec::throttling(40)
            .times(2)
            .for_action("DescribeSuspEvents"),
    )
    .unwrap();
    sim.reset_calls();
    let started = Instant::now();
    let listing = api::list_alerts(&client, &one_page()).await.unwrap();
    let got: Vec<i64> = listing
        .items
        .iter()
        .map(|i| i.id.as_deref().unwrap().parse::<i64>().unwrap())
        .collect();
    assert_exactly_once("alerts after throttling", &got, &want);
    assert_eq!(sim.call_count("DescribeSuspEvents"), 3);
    // Two waits of at least the 40 ms `x-acs-retry-after` (the backoff alone is 5–10 ms).
    assert!(
        started.elapsed() >= Duration::from_millis(80),
        "{:?}",
        started.elapsed()
    );
    assert!(sim.pending_faults().is_empty());
}

#[tokio::test]
async fn a_wrong_secret_fails_at_once_with_code_request_id_and_hint() {
    let sim = start().await;
    let client = client_with(
        settings(&sim, 4),
        DEMO_ACCESS_KEY_ID,
        "not-the-secret",
        None,
    );
    sim.reset_calls();
    let e = api::list_alerts(&client, &one_page()).await.unwrap_err();
    let (code, status, request_id) = api_error(&e);
    assert_eq!(code, "SignatureDoesNotMatch");
    assert_eq!(status, 400);
    assert!(!request_id.is_empty());
    let shown = e.to_string();
    assert!(
        shown.contains(&format!("RequestId {request_id}")),
        "{shown}"
    );
    assert!(shown.contains("AccessKey secret is wrong"), "{shown}");
    assert!(
        !shown.contains("not-the-secret"),
        "the secret leaked: {shown}"
    );
    assert_eq!(e.class(), Some(ErrorClass::Auth));
    assert_eq!(sim.call_count("DescribeSuspEvents"), 1, "not retried");
    assert_eq!(sim.calls().values().sum::<u64>(), 1);
}

#[tokio::test]
async fn an_unknown_key_and_a_denied_key_are_not_retried() {
    let sim = start().await;
    let mut denied = SimCredential::new("sasrelay-denied", "denied-secret");
    denied.denied = true;
    sim.add_credential(denied).unwrap();

    let client = client_with(settings(&sim, 4), "LTAI-nobody", "whatever", None);
    sim.reset_calls();
    let e = api::list_vulnerabilities(&client, &VulQuery::default())
        .await
        .unwrap_err();
    assert_eq!(api_error(&e).0, "InvalidAccessKeyId.NotFound");
    assert_eq!(e.class(), Some(ErrorClass::Auth));
    assert!(e.to_string().contains("does not exist on this site"), "{e}");
    assert_eq!(sim.call_count("DescribeVulList"), 1);

    let client = client_with(settings(&sim, 4), "sasrelay-denied", "denied-secret", None);
    sim.reset_calls();
    let e = api::list_firewall(&client, &FirewallQuery::default())
        .await
        .unwrap_err();
    let (code, status, request_id) = api_error(&e);
    assert_eq!((code, status), ("Forbidden.RAM", 403));
    assert!(!request_id.is_empty());
    assert_eq!(e.class(), Some(ErrorClass::Permission));
    assert!(
        e.to_string().contains("AliyunYundunSASReadOnlyAccess"),
        "{e}"
    );
    assert_eq!(sim.call_count("ListInterceptionHistory"), 1);

    // The toggle works both ways: the same key reads once permitted again.
    assert!(sim.set_permission_denied("sasrelay-denied", false));
    let listing = api::list_firewall(&client, &FirewallQuery::default())
        .await
        .unwrap();
    assert_eq!(
        listing.items.len(),
        firewall_records(&sim, None, None, None).len()
    );
}

#[tokio::test]
async fn server_errors_are_retried_and_the_last_error_is_returned_when_retries_run_out() {
    let sim = start().await;
    let want = pending_alerts(&sim, None);

    // Two 503s, then success.
    let client = demo_client(&sim);
    sim.inject_fault(
        FaultSpec::new(FaultKind::ServiceUnavailable)
            .times(2)
            .for_action("DescribeSuspEvents"),
    )
    .unwrap();
    sim.reset_calls();
    let listing = api::list_alerts(&client, &one_page()).await.unwrap();
    assert_eq!(listing.items.len(), want.len());
    assert_eq!(sim.call_count("DescribeSuspEvents"), 3);

    // Three attempts, three different failures: the third is what the caller sees.
    let client = client_with(
        settings(&sim, 3),
        DEMO_ACCESS_KEY_ID,
        DEMO_ACCESS_KEY_SECRET,
        None,
    );
    for kind in [
        FaultKind::InternalError,
        FaultKind::ServiceUnavailable,
        FaultKind::Throttling {
            code: "Throttling.Api".into(),
            retry_after_ms: Some(5),
            status: Some(429),
        },
    ] {
        sim.inject_fault(FaultSpec::new(kind).for_action("DescribeSuspEvents"))
            .unwrap();
    }
    sim.reset_calls();
    let e = api::list_alerts(&client, &one_page()).await.unwrap_err();
    let (code, status, _) = api_error(&e);
    assert_eq!((code, status), ("Throttling.Api", 429));
    assert_eq!(e.retry_after(), Some(Duration::from_millis(5)));
    assert_eq!(sim.call_count("DescribeSuspEvents"), 3);
    assert!(sim.pending_faults().is_empty());

    // A permanent error after a retryable one ends the retries at once.
    sim.inject_fault(FaultSpec::new(FaultKind::InternalError).for_action("DescribeVulList"))
        .unwrap();
    sim.inject_fault(
        FaultSpec::new(FaultKind::Error {
            code: "InvalidParameter".into(),
            status: None,
            message: None,
        })
        .for_action("DescribeVulList"),
    )
    .unwrap();
    sim.reset_calls();
    let e = api::list_vulnerabilities(&client, &VulQuery::default())
        .await
        .unwrap_err();
    assert_eq!(api_error(&e).0, "InvalidParameter");
    assert_eq!(sim.call_count("DescribeVulList"), 2);
}

// --------------------------------------------------------------------------- broken bodies

#[tokio::test]
async fn truncated_and_malformed_bodies_are_errors_and_truncation_is_retried() {
    let sim = start().await;
    let want = pending_alerts(&sim, None);
    let once = client_with(
        settings(&sim, 1),
        DEMO_ACCESS_KEY_ID,
        DEMO_ACCESS_KEY_SECRET,
        None,
    );

    // The connection breaks mid-body: retried, then the full answer.
    let client = demo_client(&sim);
    sim.inject_fault(
        FaultSpec::new(FaultKind::Truncated { keep_bytes: None })
            .times(2)
            .for_action("DescribeSuspEvents"),
    )
    .unwrap();
    sim.reset_calls();
    let listing = api::list_alerts(&client, &one_page()).await.unwrap();
    let got: Vec<i64> = listing
        .items
        .iter()
        .map(|i| i.id.as_deref().unwrap().parse::<i64>().unwrap())
        .collect();
    assert_exactly_once("alerts after truncation", &got, &want);
    assert_eq!(sim.call_count("DescribeSuspEvents"), 3);

    // Without retries each broken body is a Malformed error naming what broke.
    let cases: [(FaultKind, &str); 3] = [
        (FaultKind::Truncated { keep_bytes: None }, "truncated"),
        (
            FaultKind::ShortBody {
                keep_bytes: Some(40),
            },
            "truncated",
        ),
        (FaultKind::NotJson, "invalid JSON"),
    ];
    for (kind, reason_has) in cases {
        sim.inject_fault(FaultSpec::new(kind.clone()).for_action("DescribeSuspEvents"))
            .unwrap();
        sim.reset_calls();
        let e = api::list_alerts(&once, &one_page()).await.unwrap_err();
        match &e {
            SasError::Malformed {
                action,
                status,
                reason,
                ..
            } => {
                assert_eq!(action, "DescribeSuspEvents", "{kind:?}");
                assert_eq!(*status, 200, "{kind:?}");
                assert!(reason.contains(reason_has), "{kind:?}: {e}");
            }
            other => panic!("{kind:?}: expected Malformed, got {other:?}"),
        }
        assert_eq!(sim.call_count("DescribeSuspEvents"), 1, "{kind:?}");
    }
    assert!(sim.pending_faults().is_empty());

    // Still broken after every attempt: the error, after exactly max_attempts calls.
    let three = client_with(
        settings(&sim, 3),
        DEMO_ACCESS_KEY_ID,
        DEMO_ACCESS_KEY_SECRET,
        None,
    );
    sim.inject_fault(
        FaultSpec::new(FaultKind::ShortBody { keep_bytes: None })
            .times(5)
            .for_action("DescribeVulList"),
    )
    .unwrap();
    sim.reset_calls();
    let e = api::list_vulnerabilities(&three, &VulQuery::default())
        .await
        .unwrap_err();
    assert!(matches!(e, SasError::Malformed { .. }), "{e:?}");
    assert_eq!(sim.call_count("DescribeVulList"), 3);
    sim.clear_faults();

    // Valid JSON whose numbers became strings and whose lists became objects keyed "0", "1", …:
    // the models are built to absorb both, so the page reads exactly the pending alerts, with
    // their ids parsed from strings.
    sim.inject_fault(FaultSpec::new(FaultKind::WrongTypes).for_action("DescribeSuspEvents"))
        .unwrap();
    sim.reset_calls();
    let listing = api::list_alerts(&once, &one_page()).await.unwrap();
    let got: Vec<i64> = listing
        .items
        .iter()
        .map(|i| {
            i.id.as_deref()
                .expect("an id read from a string")
                .parse::<i64>()
                .unwrap()
        })
        .collect();
    assert_exactly_once("alerts with wrong types", &got, &want);
    assert_eq!(listing.total_count, Some(want.len() as i64));
    assert_eq!(sim.call_count("DescribeSuspEvents"), 1);
    assert!(listing.items.iter().all(|i| !i.level.is_empty()));
}

// ---------------------------------------------------------------------------------- timeouts

#[tokio::test]
async fn a_response_slower_than_the_call_timeout_is_a_transport_timeout() {
    let sim = start().await;
    let mut s = settings(&sim, 1);
    s.timeout = Duration::from_millis(300);
    let client = client_with(s.clone(), DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET, None);
    sim.inject_fault(
        FaultSpec::new(FaultKind::Slow { delay_ms: 5_000 }).for_action("DescribeSuspEvents"),
    )
    .unwrap();
    let started = Instant::now();
    let e = api::list_alerts(&client, &one_page()).await.unwrap_err();
    let elapsed = started.elapsed();
    match &e {
        SasError::Transport {
            action, timeout, ..
        } => {
            assert_eq!(action, "DescribeSuspEvents");
            assert!(*timeout, "{e}");
        }
        other => panic!("expected a transport timeout, got {other:?}"),
    }
    assert!(e.retryable());
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );

    // A timed-out attempt is retried; the next one answers.
    s.retry = RetryPolicy::new(2, Duration::from_millis(5), Duration::from_millis(10)).unwrap();
    let client = client_with(s, DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET, None);
    sim.inject_fault(
        FaultSpec::new(FaultKind::Slow { delay_ms: 5_000 }).for_action("DescribeSuspEvents"),
    )
    .unwrap();
    sim.reset_calls();
    let listing = api::list_alerts(&client, &one_page()).await.unwrap();
    assert_eq!(listing.items.len(), pending_alerts(&sim, None).len());
    assert_eq!(sim.call_count("DescribeSuspEvents"), 2);
}

// ------------------------------------------------------------------------------------ source

fn source_config(sim: &SimHandle, clusters: &[&str]) -> String {
    let clusters: Vec<String> = clusters.iter().map(|c| format!("\"{c}\"")).collect();
    format!(
        r#"
[[source]]
# The simulator has no quota unless a test sets one; tests poll every second.
calls_per_second = 50
name = "sim"
region = "cn-hangzhou"
endpoint = "{}"
clusters = [{}]
max_attempts = 2
retry_initial_delay = "5ms"
retry_max_delay = "20ms"
credentials = {{ type = "access_key", access_key_id = "{DEMO_ACCESS_KEY_ID}", access_key_secret = {{ env = "SIM_SK" }} }}
"#,
        sim.base_url(),
        clusters.join(", ")
    )
}

async fn connect(sim: &SimHandle, clusters: &[&str]) -> Source {
    let text = source_config(sim, clusters);
    let settings = config::parse(Path::new("sim.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}"))
        .sources
        .remove(0);
    let env = MapEnv::new().set("SIM_SK", DEMO_ACCESS_KEY_SECRET);
    let ctx = CredentialContext::new(
        reqwest::Client::new(),
        CancellationToken::new(),
        TaskTracker::new(),
    );
    Source::connect(settings, &env, &ctx).await.unwrap()
}

fn finding_ids(domain: Domain, prefix: &str, list: &[Finding]) -> Vec<i64> {
    list.iter()
        .map(|f| {
            assert_eq!(f.domain, domain);
            assert_eq!(f.source, "sim");
            assert_eq!(f.region, "cn-hangzhou");
            let n: i64 =
                f.id.strip_prefix(prefix)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("unexpected id {}", f.id));
            assert_eq!(
                f.fingerprint,
                finding::fingerprint("sim", domain, &["id", &n.to_string()]),
                "{}",
                f.id
            );
            n
        })
        .collect()
}

/// The cluster a simulator record of `domain` belongs to.
fn cluster_of(sim: &Simulator, domain: SimDomain, id: i64) -> String {
    let r = sim.finding(domain, id).unwrap();
    ["K8sClusterId", "ClusterId"]
        .iter()
        .map(|k| text(&r[*k]))
        .find(|s| !s.is_empty())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn source_reads_every_domain_per_cluster_and_account_wide() {
    let sim = start().await;
    populate(&sim);
    let clusters = sim.clusters();
    let c0 = clusters[0].cluster_id.clone();
    let now = OffsetDateTime::now_utc();
    let window = ReadWindow::open_now(now);
    let (since, until) = (ms(window.firewall_since), ms(now));

    for scope in [Some(c0.as_str()), None] {
        let source = match scope {
            Some(c) => connect(&sim, &[c]).await,
            None => connect(&sim, &[]).await,
        };
        let what = |d: &str| format!("{d} ({scope:?})");
        let check_cluster = |list: &[Finding], sim_domain: SimDomain, ids: &[i64]| {
            for (f, id) in list.iter().zip(ids) {
                let want = match (scope, sim_domain) {
                    (Some(c), _) => Some(c.to_string()),
                    // Baseline records carry no cluster; account-wide there is none to fill in.
                    (None, SimDomain::Baseline) => None,
                    (None, d) => Some(cluster_of(&sim, d, *id)),
                };
                assert_eq!(f.kubernetes.cluster_id, want, "{}", f.id);
                if let Some(c) = &want {
                    assert!(
                        f.links
                            .iter()
                            .any(|l| l.kind == LinkKind::Cluster && l.url.contains(c.as_str())),
                        "{}: {:?}",
                        f.id,
                        f.links
                    );
                }
            }
        };

        let list = source.read(Domain::Alerts, &window).await.unwrap().findings;
        let ids = finding_ids(Domain::Alerts, "alert:", &list);
        assert_exactly_once(&what("alerts"), &ids, &pending_alerts(&sim, scope));
        assert!(list.iter().all(|f| f.status == Status::Active));
        check_cluster(&list, SimDomain::Alert, &ids);

        let list = source
            .read(Domain::Vulnerabilities, &window)
            .await
            .unwrap()
            .findings;
        let ids = finding_ids(Domain::Vulnerabilities, "vul:", &list);
        // The config's default types: Linux (cve) and software composition (sca).
        assert_exactly_once(
            &what("vulns"),
            &ids,
            &pending_vulns(&sim, &["cve", "app", "sca"], scope),
        );
        check_cluster(&list, SimDomain::Vuln, &ids);

        let list = source
            .read(Domain::Baseline, &window)
            .await
            .unwrap()
            .findings;
        let ids = finding_ids(Domain::Baseline, "baseline:", &list);
        assert_exactly_once(&what("baseline"), &ids, &baseline_records(&sim, scope));
        check_cluster(&list, SimDomain::Baseline, &ids);
        for (f, id) in list.iter().zip(&ids) {
            let r = sim.finding(SimDomain::Baseline, *id).unwrap();
            assert_eq!(f.host.uuid.as_deref(), Some(text(&r["Uuid"])), "{}", f.id);
            assert_eq!(f.native_status, int(&r["Status"]).to_string(), "{}", f.id);
            assert!(!f.description.is_empty(), "detail was fetched: {}", f.id);
        }

        let list = source
            .read(Domain::Firewall, &window)
            .await
            .unwrap()
            .findings;
        let ids = finding_ids(Domain::Firewall, "firewall:", &list);
        assert_exactly_once(
            &what("firewall"),
            &ids,
            &firewall_records(&sim, scope, Some(since), Some(until)),
        );
        check_cluster(&list, SimDomain::Firewall, &ids);
    }
}

// ------------------------------------------------------------------------------ status changes

#[tokio::test]
async fn handled_alerts_and_fixed_vulnerabilities_are_seen_as_such() {
    let sim = start().await;
    let source = connect(&sim, &[]).await;
    let start_ms = now_ms();

    // An alert that last occurred two days ago and is handled now, a fresh one marked a false
    // positive, and one that stays pending.
    let old = sim
        .findings(SimDomain::Alert)
        .into_iter()
        .find(|r| int(&r["EventStatus"]) == 1 && int(&r["LastTimeStamp"]) < start_ms - 86_400_000)
        .expect("the default world has old pending alerts");
    let old_id = int(&old["Id"]);
    let fresh_id = int(&sim
        .add_finding(SimDomain::Alert, None, json!({"EventStatus": 1}))
        .unwrap()["Id"]);
    let vul = sim
        .findings(SimDomain::Vuln)
        .into_iter()
        .find(|r| text(&r["Type"]) == "cve" && !VUL_HANDLED.contains(&int(&r["Status"])))
        .unwrap();
    let vul_id = int(&vul["PrimaryId"]);

    let now = OffsetDateTime::now_utc();
    let before = source
        .read(Domain::Alerts, &ReadWindow::open_now(now))
        .await
        .unwrap()
        .findings;
    for id in [old_id, fresh_id] {
        let f = before
            .iter()
            .find(|f| f.id == format!("alert:{id}"))
            .unwrap();
        assert_eq!((f.status, f.resolution), (Status::Active, None));
    }
    let vulns = source
        .read(Domain::Vulnerabilities, &ReadWindow::open_now(now))
        .await
        .unwrap()
        .findings;
    assert!(vulns.iter().any(|f| f.id == format!("vul:{vul_id}")));

    sim.set_status(SimDomain::Alert, old_id, 32).unwrap();
    sim.set_status(SimDomain::Alert, fresh_id, 8).unwrap();
    sim.set_status(SimDomain::Vuln, vul_id, 7).unwrap();

    let now = OffsetDateTime::now_utc();
    let window = ReadWindow {
        handled_since: Some(now - time::Duration::hours(1)),
        ..ReadWindow::open_now(now)
    };
    let after = source.read(Domain::Alerts, &window).await.unwrap().findings;
    for (id, resolution) in [
        (old_id, Resolution::Handled),
        (fresh_id, Resolution::FalsePositive),
    ] {
        let seen: Vec<&Finding> = after
            .iter()
            .filter(|f| f.id == format!("alert:{id}"))
            .collect();
        assert_eq!(seen.len(), 1, "alert {id}: {seen:?}");
        assert_eq!(seen[0].status, Status::Resolved, "alert {id}");
        assert_eq!(seen[0].resolution, Some(resolution), "alert {id}");
    }
    // Pending alerts are still read alongside, each once.
    let ids: Vec<i64> = after
        .iter()
        .filter(|f| f.status == Status::Active)
        .map(|f| f.id.trim_start_matches("alert:").parse().unwrap())
        .collect();
    assert_exactly_once("pending after handling", &ids, &pending_alerts(&sim, None));
    // Handled alerts outside the window are not read.
    let since_ms = ms(now) - 3_600_000;
    for f in after.iter().filter(|f| f.status == Status::Resolved) {
        assert!(int(&f.raw["OperateTime"]) >= since_ms, "{}", f.id);
    }

    let vulns = source
        .read(Domain::Vulnerabilities, &window)
        .await
        .unwrap()
        .findings;
    assert!(!vulns.iter().any(|f| f.id == format!("vul:{vul_id}")));
    assert_exactly_once(
        "vulns after fix",
        &finding_ids(Domain::Vulnerabilities, "vul:", &vulns),
        &pending_vulns(&sim, &["cve", "app", "sca"], None),
    );
}
