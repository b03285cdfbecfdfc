//! The four domain listings and the per-cluster statistics probes: how each request is built
//! (contract §1.5, §2.4, §3.7, §4.1) and how every listing is paged to the end.
//!
//! Each function makes exactly one attempt per call and never sleeps: a failed call ends the
//! listing with that error and the caller (the source runner) owns retries and backoff. Paging
//! is decided by the pure [`decide`] function, which stops on an empty or short page, on
//! `CurrentPage*PageSize >= TotalCount`, when a page only repeats items already read (a server
//! ignoring `CurrentPage` cannot make a listing loop), and fails with
//! [`SasError::TooManyPages`] at the client's `max_pages`.
//!
//! Request building is split from calling (`*_request` functions) so it can be tested without a
//! network; the calls go through [`SasCall`], which [`SasClient`] implements.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::{OffsetDateTime, UtcOffset, macros::format_description};

use super::client::SasClient;
use super::error::SasError;
use super::models::{
    BaselineItem, CheckItemWarningStatisticsResponse, CheckWarning, CheckWarningDetail,
    ClusterVulStatisticsResponse, InterceptionHistory, InterceptionSummaryResponse, Item, ListItem,
    Page, PageMeta, SuspEvent, SuspEventStatisticsResponse, VulRecord, WarningMachine,
    WarningSummary,
};
use super::params::Params;

/// Page size requested by every listing unless a query says otherwise (the documented maximum
/// for the actions that state one).
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// The one-call surface the listings need. [`SasClient`] implements it; tests implement it with
/// scripted responses.
pub trait SasCall: Sync {
    /// Calls `action` once and decodes the success body (see [`SasClient::call`]).
    fn call<T: DeserializeOwned + Send>(
        &self,
        action: &str,
        query: &Params,
        form: Option<&Params>,
    ) -> impl Future<Output = Result<T, SasError>> + Send;

    /// The hard cap on pages per listing.
    fn max_pages(&self) -> u32;

    /// `Lang` to request display names in.
    fn lang(&self) -> &str;
}

impl SasCall for SasClient {
    fn call<T: DeserializeOwned + Send>(
        &self,
        action: &str,
        query: &Params,
        form: Option<&Params>,
    ) -> impl Future<Output = Result<T, SasError>> + Send {
        SasClient::call::<T>(self, action, query, form)
    }

    fn max_pages(&self) -> u32 {
        SasClient::max_pages(self)
    }

    fn lang(&self) -> &str {
        SasClient::lang(self)
    }
}

// ---------------------------------------------------------------------------------------------
// Paging

/// What one page told us, as input to [`decide`].
#[derive(Clone, Debug, Default)]
pub struct PageObservation {
    /// The `CurrentPage` we asked for (1-based).
    pub requested_page: u32,
    /// The `PageSize` we asked for.
    pub requested_size: u32,
    /// Records the server sent on this page.
    pub received: usize,
    /// Distinct records collected so far, this page included.
    pub seen_total: usize,
    /// Paging fields of the response.
    pub meta: PageMeta,
    /// Every record on this page had already been read (or the `NextToken` did not move).
    pub repeated: bool,
    /// Paging by `NextToken` rather than by page number.
    pub token_mode: bool,
    /// Pages fetched so far, this one included.
    pub pages_fetched: u32,
    /// The client's page cap.
    pub max_pages: u32,
}

/// What to do after a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageDecision {
    /// Fetch the next page.
    Continue,
    /// The listing is complete.
    Finished,
    /// The page only repeated records already read: the server ignores paging. Stop with what
    /// was read.
    Repeated,
    /// More pages exist but `max_pages` is reached.
    LimitReached,
}

/// Decides whether to fetch another page. Pure.
///
/// Rules, in order: an empty page finishes; a page of repeats stops ([`PageDecision::Repeated`]);
/// in token mode the listing continues while a `NextToken` is returned; otherwise it finishes
/// on a short page (fewer records than the page size the server reports, else the one asked
/// for), when `CurrentPage*PageSize >= TotalCount`, or when as many distinct records as
/// `TotalCount` were read. Continuing past `max_pages` is [`PageDecision::LimitReached`].
pub fn decide(o: &PageObservation) -> PageDecision {
    if o.received == 0 {
        return PageDecision::Finished;
    }
    if o.repeated {
        return PageDecision::Repeated;
    }
    let more = if o.token_mode {
        o.meta.next_token.is_some()
    } else {
        let size = o
            .meta
            .page_size
            .filter(|s| *s > 0)
            .unwrap_or(i64::from(o.requested_size));
        let page = o
            .meta
            .current_page
            .filter(|p| *p > 0)
            .unwrap_or(i64::from(o.requested_page));
        let short = (o.received as i64) < size;
        let complete = o.meta.total_count.is_some_and(|total| {
            page.saturating_mul(size) >= total || o.seen_total as i64 >= total
        });
        !short && !complete
    };
    if !more {
        PageDecision::Finished
    } else if o.pages_fetched >= o.max_pages {
        PageDecision::LimitReached
    } else {
        PageDecision::Continue
    }
}

/// Every record of a fully paged listing.
#[derive(Clone, Debug, PartialEq)]
pub struct Listing<T> {
    /// Distinct records in the order the server sent them (an identical record repeated on a
    /// later page is kept once).
    pub items: Vec<Item<T>>,
    /// Records that were not JSON objects, kept raw.
    pub undecodable: Vec<Value>,
    /// Pages fetched.
    pub pages: u32,
    /// The last `TotalCount` the server reported (summed over merged listings).
    pub total_count: Option<i64>,
    /// The server answered a page with records already read, so paging stopped early.
    pub stopped_on_repeat: bool,
}

impl<T> Default for Listing<T> {
    fn default() -> Self {
        Listing {
            items: Vec::new(),
            undecodable: Vec::new(),
            pages: 0,
            total_count: None,
            stopped_on_repeat: false,
        }
    }
}

impl<T> Listing<T> {
    /// Appends another listing, skipping records identical to ones already held.
    pub fn merge(&mut self, other: Listing<T>) {
        let mut seen: HashSet<[u8; 32]> = self
            .items
            .iter()
            .map(|i| digest(&i.raw))
            .chain(self.undecodable.iter().map(digest))
            .collect();
        for item in other.items {
            if seen.insert(digest(&item.raw)) {
                self.items.push(item);
            }
        }
        for raw in other.undecodable {
            if seen.insert(digest(&raw)) {
                self.undecodable.push(raw);
            }
        }
        self.pages += other.pages;
        self.total_count = match (self.total_count, other.total_count) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.stopped_on_repeat |= other.stopped_on_repeat;
    }
}

fn digest(v: &Value) -> [u8; 32] {
    Sha256::digest(v.to_string().as_bytes()).into()
}

/// How a listing pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Paging {
    /// `CurrentPage` + `PageSize`.
    Number,
    /// `UseNextToken=true` + `NextToken` + `PageSize`.
    Token,
}

/// Fetches every page of `action`. `base` holds the filters; paging parameters are added here.
async fn walk<C, T>(
    c: &C,
    action: &str,
    base: &Params,
    form: Option<&Params>,
    page_size: u32,
    paging: Paging,
) -> Result<Listing<T>, SasError>
where
    C: SasCall + ?Sized,
    T: ListItem + Send,
{
    let page_size = page_size.max(1);
    let max_pages = c.max_pages();
    let mut listing = Listing::<T>::default();
    let mut seen: HashSet<[u8; 32]> = HashSet::new();
    let mut page_no: u32 = 1;
    let mut token: Option<String> = None;
    loop {
        let mut query = base.clone();
        match paging {
            Paging::Number => {
                query.set("CurrentPage", page_no);
            }
            Paging::Token => {
                query.set("UseNextToken", "true");
                query.set_opt("NextToken", token.as_deref());
            }
        }
        query.set("PageSize", page_size);
        let page: Page<T> = c.call(action, &query, form).await?;
        listing.pages += 1;
        let received = page.received();
        let mut fresh = 0usize;
        for item in page.items {
            if seen.insert(digest(&item.raw)) {
                listing.items.push(item);
                fresh += 1;
            }
        }
        for raw in page.undecodable {
            if seen.insert(digest(&raw)) {
                tracing::warn!(action, "Skipped a record that is not a JSON object.");
                listing.undecodable.push(raw);
                fresh += 1;
            }
        }
        if page.meta.total_count.is_some() {
            listing.total_count = page.meta.total_count;
        }
        let token_stuck = paging == Paging::Token
            && token.is_some()
            && page.meta.next_token.as_deref() == token.as_deref();
        let observation = PageObservation {
            requested_page: page_no,
            requested_size: page_size,
            received,
            seen_total: listing.items.len() + listing.undecodable.len(),
            meta: page.meta,
            repeated: (received > 0 && fresh == 0) || token_stuck,
            token_mode: paging == Paging::Token,
            pages_fetched: listing.pages,
            max_pages,
        };
        match decide(&observation) {
            PageDecision::Continue => {
                page_no += 1;
                token = observation.meta.next_token;
            }
            PageDecision::Finished => return Ok(listing),
            PageDecision::Repeated => {
                tracing::warn!(
                    action,
                    page = page_no,
                    "The server repeated records already read; it seems to ignore paging, so the listing stops here."
                );
                listing.stopped_on_repeat = true;
                return Ok(listing);
            }
            PageDecision::LimitReached => {
                return Err(SasError::TooManyPages {
                    action: action.to_string(),
                    pages: listing.pages,
                    seen: observation.seen_total,
                    total: listing.total_count.unwrap_or(-1),
                });
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared request pieces

/// The handled/pending filter. Alerts send it as `N`/`Y`, vulnerabilities as `n`/`y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dealed {
    /// Not handled yet.
    Pending,
    /// Handled (recently handled, for alerts).
    Handled,
}

impl Dealed {
    fn upper(self) -> &'static str {
        match self {
            Dealed::Pending => "N",
            Dealed::Handled => "Y",
        }
    }

    fn lower(self) -> &'static str {
        match self {
            Dealed::Pending => "n",
            Dealed::Handled => "y",
        }
    }
}

/// `YYYY-MM-DD HH:mm:ss` in UTC wall-clock (contract §1.5: if the service reads it as UTC+8 the
/// window only gets wider).
pub fn format_alert_time(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.to_offset(UtcOffset::UTC)
        .format(&fmt)
        .expect("a fixed numeric format cannot fail")
}

/// Epoch milliseconds.
pub fn epoch_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

// ---------------------------------------------------------------------------------------------
// Alerts

/// Filters for `DescribeSuspEvents`.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertQuery {
    /// Only this cluster; `None` lists account-wide (split client-side, contract §11).
    pub cluster_id: Option<String>,
    /// Pending (`N`) or recently handled (`Y`); `None` sends no filter.
    pub dealed: Option<Dealed>,
    /// Levels (`serious`, `suspicious`, `remind`); empty sends no filter.
    pub levels: Vec<String>,
    /// Lower bound on the latest-occurrence time.
    pub time_start: Option<OffsetDateTime>,
    /// Upper bound on the latest-occurrence time.
    pub time_end: Option<OffsetDateTime>,
    /// ATT&CK tactic filter (the one form-body parameter).
    pub tactic_id: Option<String>,
    /// Page size (max 100).
    pub page_size: u32,
}

impl Default for AlertQuery {
    /// Pending alerts, every level, no window, 100 per page.
    fn default() -> Self {
        AlertQuery {
            cluster_id: None,
            dealed: Some(Dealed::Pending),
            levels: Vec::new(),
            time_start: None,
            time_end: None,
            tactic_id: None,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// The query and form of a `DescribeSuspEvents` request, without paging. The form is empty
/// unless `TacticId` is set, but is always sent (the SDK always sends a body for this action).
pub fn alerts_request(q: &AlertQuery, lang: &str) -> (Params, Params) {
    let mut query = Params::new();
    query.set("From", "sas").set("Lang", lang);
    query.set_opt("ClusterId", non_empty(&q.cluster_id));
    query.set_opt("Dealed", q.dealed.map(Dealed::upper));
    if !q.levels.is_empty() {
        query.set_simple("Levels", &q.levels);
    }
    query.set_opt("TimeStart", q.time_start.map(format_alert_time));
    query.set_opt("TimeEnd", q.time_end.map(format_alert_time));
    let mut form = Params::new();
    form.set_opt("TacticId", non_empty(&q.tactic_id));
    (query, form)
}

/// Lists alert events (`DescribeSuspEvents`), every page.
pub async fn list_alerts<C: SasCall + ?Sized>(
    c: &C,
    q: &AlertQuery,
) -> Result<Listing<SuspEvent>, SasError> {
    let (query, form) = alerts_request(q, c.lang());
    walk(
        c,
        "DescribeSuspEvents",
        &query,
        Some(&form),
        q.page_size,
        Paging::Number,
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Vulnerabilities

/// A `DescribeVulList` type selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VulType {
    /// `Type=cve`: Linux software (the ACK page's "Linux" vulnerabilities).
    Cve,
    /// `Type=sys`: Windows.
    Sys,
    /// `Type=cms`: Web CMS.
    Cms,
    /// `Type=emg`: emergency.
    Emg,
    /// `Type=app`: application (web scanner).
    App,
    /// `Type=app&AttachTypes=sca`: application vulnerabilities found by component analysis
    /// (the ACK page's "application" vulnerabilities).
    AppSca,
    /// `Type=sca`: software-composition vulnerabilities.
    Sca,
}

impl VulType {
    /// The `Type` parameter.
    pub fn type_param(self) -> &'static str {
        match self {
            VulType::Cve => "cve",
            VulType::Sys => "sys",
            VulType::Cms => "cms",
            VulType::Emg => "emg",
            VulType::App | VulType::AppSca => "app",
            VulType::Sca => "sca",
        }
    }

    /// The `AttachTypes` parameter, if any.
    pub fn attach_types(self) -> Option<&'static str> {
        matches!(self, VulType::AppSca).then_some("sca")
    }
}

impl std::str::FromStr for VulType {
    type Err = String;

    /// `cve`, `sys`, `cms`, `emg`, `app`, `app+sca` (or `app-sca`), `sca`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "cve" => VulType::Cve,
            "sys" => VulType::Sys,
            "cms" => VulType::Cms,
            "emg" => VulType::Emg,
            "app" => VulType::App,
            "app+sca" | "app-sca" | "app_sca" => VulType::AppSca,
            "sca" => VulType::Sca,
            other => {
                return Err(format!(
                    "unknown vulnerability type `{other}` (expected cve, sys, cms, emg, app, app+sca or sca)"
                ));
            }
        })
    }
}

/// Filters for `DescribeVulList`.
#[derive(Clone, Debug, PartialEq)]
pub struct VulQuery {
    /// Only this cluster.
    pub cluster_id: Option<String>,
    /// One listing per type, merged.
    pub types: Vec<VulType>,
    /// Pending (`n`) or handled (`y`); ignored when `status_list` is non-empty.
    pub dealed: Option<Dealed>,
    /// Status codes (sent as a comma list `StatusList`); takes precedence over `dealed`.
    pub status_list: Vec<i64>,
    /// Priorities (`asap`, `later`, `nntf`); empty sends no filter.
    pub necessity: Vec<String>,
    /// Page with `NextToken` instead of `CurrentPage` (no `TotalCount` then).
    pub use_next_token: bool,
    /// Page size.
    pub page_size: u32,
}

impl Default for VulQuery {
    /// Pending Linux and application (SCA) vulnerabilities, 100 per page.
    fn default() -> Self {
        VulQuery {
            cluster_id: None,
            types: vec![VulType::Cve, VulType::AppSca],
            dealed: Some(Dealed::Pending),
            status_list: Vec::new(),
            necessity: Vec::new(),
            use_next_token: false,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// The query of one `DescribeVulList` request for `ty`, without paging.
pub fn vul_request(q: &VulQuery, ty: VulType, lang: &str) -> Params {
    let mut query = Params::new();
    query.set("Type", ty.type_param());
    query.set_opt("AttachTypes", ty.attach_types());
    query.set("Lang", lang);
    query.set_opt("ClusterId", non_empty(&q.cluster_id));
    if q.status_list.is_empty() {
        query.set_opt("Dealed", q.dealed.map(Dealed::lower));
    } else {
        query.set_simple("StatusList", &q.status_list);
    }
    if !q.necessity.is_empty() {
        query.set_simple("Necessity", &q.necessity);
    }
    query
}

/// Lists vulnerability records (`DescribeVulList`) for every type in the query, every page,
/// merged (a record identical across types is kept once).
pub async fn list_vulnerabilities<C: SasCall + ?Sized>(
    c: &C,
    q: &VulQuery,
) -> Result<Listing<VulRecord>, SasError> {
    let paging = if q.use_next_token {
        Paging::Token
    } else {
        Paging::Number
    };
    let mut all = Listing::default();
    let mut done: Vec<VulType> = Vec::new();
    for &ty in &q.types {
        if done.contains(&ty) {
            continue;
        }
        done.push(ty);
        let query = vul_request(q, ty, c.lang());
        let listing = walk(c, "DescribeVulList", &query, None, q.page_size, paging).await?;
        all.merge(listing);
    }
    Ok(all)
}

// ---------------------------------------------------------------------------------------------
// Baseline

/// Filters for the baseline walk.
#[derive(Clone, Debug, PartialEq)]
pub struct BaselineQuery {
    /// Only this cluster (summary and machines; `DescribeCheckWarnings` has no cluster filter).
    pub cluster_id: Option<String>,
    /// `Status` filter of the summary (e.g. `1` failed); `None` sends none.
    pub status: Option<String>,
    /// Fetch `DescribeCheckWarningDetail` (once per `CheckId` per walk).
    pub fetch_details: bool,
    /// Page size of the three listings.
    pub page_size: u32,
}

impl Default for BaselineQuery {
    /// Every risk, with details, 100 per page.
    fn default() -> Self {
        BaselineQuery {
            cluster_id: None,
            status: None,
            fetch_details: true,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// The query of `DescribeCheckWarningSummary`, without paging.
pub fn warning_summary_request(q: &BaselineQuery, lang: &str) -> Params {
    let mut query = Params::new();
    query.set("Lang", lang);
    query.set_opt("ClusterId", non_empty(&q.cluster_id));
    query.set_opt("Status", non_empty(&q.status));
    query
}

/// The query of `DescribeWarningMachines` for one risk, without paging.
pub fn warning_machines_request(risk_id: i64, cluster_id: Option<&str>, lang: &str) -> Params {
    let mut query = Params::new();
    query.set("RiskId", risk_id).set("Lang", lang);
    query.set_opt("ClusterId", cluster_id.filter(|s| !s.is_empty()));
    query
}

/// The query of `DescribeCheckWarnings` for one risk on one asset, without paging.
/// `ContainerName` scopes a container asset to its own checks.
pub fn check_warnings_request(
    risk_id: i64,
    uuid: &str,
    container_name: Option<&str>,
    lang: &str,
) -> Params {
    let mut query = Params::new();
    query
        .set("RiskId", risk_id)
        .set("Uuid", uuid)
        .set("Lang", lang);
    query.set_opt("ContainerName", container_name.filter(|s| !s.is_empty()));
    query
}

/// Lists baselines with failing items (`DescribeCheckWarningSummary`), every page.
pub async fn list_warning_summaries<C: SasCall + ?Sized>(
    c: &C,
    q: &BaselineQuery,
) -> Result<Listing<WarningSummary>, SasError> {
    let query = warning_summary_request(q, c.lang());
    walk(
        c,
        "DescribeCheckWarningSummary",
        &query,
        None,
        q.page_size,
        Paging::Number,
    )
    .await
}

/// Lists the assets affected by one risk (`DescribeWarningMachines`), every page.
pub async fn list_warning_machines<C: SasCall + ?Sized>(
    c: &C,
    risk_id: i64,
    cluster_id: Option<&str>,
    page_size: u32,
) -> Result<Listing<WarningMachine>, SasError> {
    let query = warning_machines_request(risk_id, cluster_id, c.lang());
    walk(
        c,
        "DescribeWarningMachines",
        &query,
        None,
        page_size,
        Paging::Number,
    )
    .await
}

/// Lists the check items of one risk on one asset (`DescribeCheckWarnings`), every page.
pub async fn list_check_warnings<C: SasCall + ?Sized>(
    c: &C,
    risk_id: i64,
    uuid: &str,
    container_name: Option<&str>,
    page_size: u32,
) -> Result<Listing<CheckWarning>, SasError> {
    let query = check_warnings_request(risk_id, uuid, container_name, c.lang());
    walk(
        c,
        "DescribeCheckWarnings",
        &query,
        None,
        page_size,
        Paging::Number,
    )
    .await
}

/// Fetches description and advice of one check result (`DescribeCheckWarningDetail`).
pub async fn check_warning_detail<C: SasCall + ?Sized>(
    c: &C,
    check_warning_id: i64,
) -> Result<Item<CheckWarningDetail>, SasError> {
    let mut query = Params::new();
    query
        .set("CheckWarningId", check_warning_id)
        .set("Lang", c.lang());
    c.call("DescribeCheckWarningDetail", &query, None).await
}

/// Walks summary → machines → check items (→ detail, cached per `CheckId`) and returns one
/// [`BaselineItem`] per check item per asset. Risks without a `RiskId` and machines without a
/// `Uuid` cannot be followed and are skipped with a warning.
pub async fn list_baseline<C: SasCall + ?Sized>(
    c: &C,
    q: &BaselineQuery,
) -> Result<Vec<BaselineItem>, SasError> {
    let cluster = non_empty(&q.cluster_id);
    let mut details: HashMap<i64, Item<CheckWarningDetail>> = HashMap::new();
    let mut out = Vec::new();
    for risk in list_warning_summaries(c, q).await?.items {
        let Some(risk_id) = risk.risk_id else {
            tracing::warn!(risk = %risk.risk_name, "Skipped a baseline risk without RiskId.");
            continue;
        };
        let machines = list_warning_machines(c, risk_id, cluster, q.page_size).await?;
        for machine in machines.items {
            if machine.uuid.trim().is_empty() {
                tracing::warn!(risk_id, "Skipped an affected asset without Uuid.");
                continue;
            }
            let container = Some(machine.container_name.as_str());
            let checks =
                list_check_warnings(c, risk_id, &machine.uuid, container, q.page_size).await?;
            for check in checks.items {
                let detail = match (q.fetch_details, check.check_warning_id) {
                    (true, Some(cw_id)) => match check.check_id {
                        Some(check_id) => match details.get(&check_id) {
                            Some(d) => Some(d.clone()),
                            None => {
                                let d = check_warning_detail(c, cw_id).await?;
                                details.insert(check_id, d.clone());
                                Some(d)
                            }
                        },
                        None => Some(check_warning_detail(c, cw_id).await?),
                    },
                    _ => None,
                };
                out.push(BaselineItem {
                    risk: risk.clone(),
                    machine: machine.clone(),
                    check,
                    detail,
                });
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Container firewall

/// Filters for `ListInterceptionHistory`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FirewallQuery {
    /// Only this cluster.
    pub cluster_id: Option<String>,
    /// Window start (sent as epoch ms).
    pub start: Option<OffsetDateTime>,
    /// Window end (sent as epoch ms).
    pub end: Option<OffsetDateTime>,
    /// Rule modes (1 block, 2 alert), flattened `InterceptionTypes.N`; empty sends no filter.
    pub interception_types: Vec<i64>,
    /// Alert name filter.
    pub history_name: Option<String>,
    /// Page size; 0 means [`DEFAULT_PAGE_SIZE`].
    pub page_size: u32,
}

/// The query of `ListInterceptionHistory`, without paging.
pub fn firewall_request(q: &FirewallQuery, lang: &str) -> Params {
    let mut query = Params::new();
    query.set("Lang", lang);
    query.set_opt("ClusterId", non_empty(&q.cluster_id));
    query.set_opt("StartTime", q.start.map(epoch_ms));
    query.set_opt("EndTime", q.end.map(epoch_ms));
    query.set_flat("InterceptionTypes", &q.interception_types);
    query.set_opt("HistoryName", non_empty(&q.history_name));
    query
}

/// Lists container firewall alerts (`ListInterceptionHistory`), every page.
pub async fn list_firewall<C: SasCall + ?Sized>(
    c: &C,
    q: &FirewallQuery,
) -> Result<Listing<InterceptionHistory>, SasError> {
    let query = firewall_request(q, c.lang());
    let size = if q.page_size == 0 {
        DEFAULT_PAGE_SIZE
    } else {
        q.page_size
    };
    walk(
        c,
        "ListInterceptionHistory",
        &query,
        None,
        size,
        Paging::Number,
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Statistics probes (one call each, per cluster)

/// Unhandled alert counts of a cluster (`GetClusterSuspEventStatistics`).
pub async fn alert_statistics<C: SasCall + ?Sized>(
    c: &C,
    cluster_id: &str,
) -> Result<SuspEventStatisticsResponse, SasError> {
    let mut query = Params::new();
    query.set("ClusterId", cluster_id).set("From", "sas");
    c.call("GetClusterSuspEventStatistics", &query, None).await
}

/// Vulnerability counts of a cluster (`DescribeClusterVulStatistics`); `Types` is the comma
/// list of the distinct `Type` values of `types` (none sends no filter).
pub async fn vul_statistics<C: SasCall + ?Sized>(
    c: &C,
    cluster_id: &str,
    types: &[VulType],
) -> Result<ClusterVulStatisticsResponse, SasError> {
    let mut names: Vec<&str> = Vec::new();
    for t in types {
        if !names.contains(&t.type_param()) {
            names.push(t.type_param());
        }
    }
    let mut query = Params::new();
    query.set("ClusterId", cluster_id);
    if !names.is_empty() {
        query.set_simple("Types", &names);
    }
    c.call("DescribeClusterVulStatistics", &query, None).await
}

/// Failing baseline item counts of a cluster (`GetClusterCheckItemWarningStatistics`).
pub async fn baseline_statistics<C: SasCall + ?Sized>(
    c: &C,
    cluster_id: &str,
) -> Result<CheckItemWarningStatisticsResponse, SasError> {
    let mut query = Params::new();
    query.set("ClusterId", cluster_id);
    c.call("GetClusterCheckItemWarningStatistics", &query, None)
        .await
}

/// Container firewall counters of a cluster (`GetInterceptionSummary`).
pub async fn firewall_summary<C: SasCall + ?Sized>(
    c: &C,
    cluster_id: &str,
) -> Result<InterceptionSummaryResponse, SasError> {
    let mut query = Params::new();
    query.set("ClusterId", cluster_id);
    c.call("GetInterceptionSummary", &query, None).await
}
