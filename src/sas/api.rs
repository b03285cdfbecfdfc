//! The four domain listings and the per-cluster statistics probes: how each request is built
//! (docs/sas-api.md §1.5, §2.4, §3.7, §4.1) and how every listing is paged.
//!
//! A listing is read a page at a time by a [`Walker`] (the baseline's three nested listings by
//! a [`BaselineWalker`], one affected asset at a time), so its caller decides what to do with
//! each page before the next is read and a listing of any length costs one page of memory.
//! Each call goes through [`SasCall::call`] (for [`SasClient`], retried under the source's
//! retry policy); a call that still fails ends the walk with that error. Paging is decided by
//! the pure [`decide`] function, which stops on an empty or short page, on
//! `CurrentPage*PageSize >= TotalCount`, when a page only repeats items already read (a server
//! ignoring `CurrentPage` cannot make a listing loop), and at the client's `max_pages`
//! ([`WalkEnd::Capped`]: the rest is unread, which the caller knows). Listings sorted newest
//! first by a time key (alerts, handled alerts, firewall records) can be resumed where an
//! earlier walk stopped ([`Walker::resume`]). The `list_*` functions collect a whole walk and
//! turn a cut into [`SasError::TooManyPages`], for callers that want all or nothing.
//!
//! Request building is split from calling (`*_request` functions) so it can be tested without a
//! network; the calls go through [`SasCall`], which [`SasClient`] implements.

use std::collections::{HashMap, HashSet, VecDeque};
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
    Page, PageMeta, Quarantined, RecordId, SuspEvent, SuspEventStatisticsResponse, VulRecord,
    WarningMachine, WarningSummary,
};
use super::pairs::{ListedPair, PairKey, PairSkip, SkippedPair, pair_counts};
use super::params::Params;

/// Page size requested by every listing unless a query says otherwise (the documented maximum
/// for the actions that state one).
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// The one-call surface the listings need. [`SasClient`] implements it; tests implement it with
/// scripted responses.
pub trait SasCall: Sync {
    /// Calls `action` and decodes the success body ([`SasClient::call`]: retrying what is
    /// worth retrying).
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
    /// Records that could not be read, kept (bounded), each once.
    pub quarantined: Vec<Quarantined>,
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
            quarantined: Vec::new(),
            pages: 0,
            total_count: None,
            stopped_on_repeat: false,
        }
    }
}

impl<T> Listing<T> {
    /// Appends another listing, skipping records identical to ones already held.
    pub fn merge(&mut self, other: Listing<T>) {
        let mut seen: HashSet<[u8; 32]> = self.items.iter().map(|i| digest(&i.raw)).collect();
        for item in other.items {
            if seen.insert(digest(&item.raw)) {
                self.items.push(item);
            }
        }
        let mut poisoned: HashSet<String> =
            self.quarantined.iter().map(|q| q.digest.clone()).collect();
        for q in other.quarantined {
            if poisoned.insert(q.digest.clone()) {
                self.quarantined.push(q);
            }
        }
        self.pages = self.pages.saturating_add(other.pages);
        self.total_count = match (self.total_count, other.total_count) {
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
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
pub enum Paging {
    /// `CurrentPage` + `PageSize`.
    Number,
    /// `UseNextToken=true` + `NextToken` + `PageSize`.
    Token,
}

/// How a walk ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalkEnd {
    /// The listing is complete: an empty or short page, the total reached, no next token, or
    /// a page reaching below the walk's floor ([`Walker::newest_first`]).
    Finished,
    /// The server answered a page with records already read: it ignores paging, so the walk
    /// stopped there. What it read stands, but the listing is not known to be complete.
    Repeated,
    /// `max_pages` pages were read and more exist: the rest of the listing is unread.
    Capped(Cut),
}

/// A walk the page cap stopped before the end of its listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// The action walked.
    pub action: &'static str,
    /// Pages fetched.
    pub pages: u32,
    /// Distinct records read.
    pub seen: usize,
    /// The last `TotalCount` the server reported.
    pub total: Option<i64>,
}

impl Cut {
    /// The error of a caller that wanted the whole listing.
    pub fn error(&self) -> SasError {
        SasError::TooManyPages {
            action: self.action.to_string(),
            pages: self.pages,
            seen: self.seen,
            total: self.total.unwrap_or(-1),
        }
    }
}

/// A listing sorted newest first by a time key, which makes it resumable.
#[derive(Clone, Copy)]
struct Sorted<T> {
    /// The record's time key (unix ms).
    key: fn(&T) -> i64,
    /// Records below this key are outside the window: dropped, and the page holding one is
    /// the last.
    floor: Option<i64>,
    /// Resuming: the oldest key an earlier walk read. The first page must start at or above
    /// it, else records moved up past the resume point and the walk backs up a page.
    cut: Option<i64>,
}

/// One listing, read a page at a time ([`Walker::next_page`]); the caller decides what to do
/// with each page before the next is read, so a listing of any length costs one page of
/// memory (and the digests of what it read, to spot a server that repeats pages).
///
/// Paging is decided by the pure [`decide`]. A walk ends [`WalkEnd::Finished`],
/// [`WalkEnd::Repeated`] or, at the client's `max_pages`, [`WalkEnd::Capped`]; a call that
/// fails ends it with that error. A listing sorted newest first by a time key
/// ([`Walker::newest_first`]) can be resumed by a later walk: [`Walker::position`] says where
/// this one stopped, [`Walker::resume`] starts there.
pub struct Walker<'c, C: ?Sized, T> {
    client: &'c C,
    action: &'static str,
    base: Params,
    form: Option<Params>,
    page_size: u32,
    paging: Paging,
    max_pages: u32,
    page_no: u32,
    token: Option<String>,
    sorted: Option<Sorted<T>>,
    seen: HashSet<[u8; 32]>,
    poisoned: HashSet<String>,
    fetched: u32,
    /// Pages read again as overlap on resuming: not counted against the cap, so a resumed walk
    /// always gets further than where it started.
    overlap: u32,
    total_count: Option<i64>,
    /// By how much `TotalCount` fell at the latest page (records left the listing mid-walk).
    shrunk_by: i64,
    /// Pages up to this one are being read again after a shrink: records already read there
    /// are expected, not a server repeating itself.
    reread_through: u32,
    /// The page most recently returned, and the oldest key read.
    last_page: u32,
    oldest: Option<i64>,
    end: Option<WalkEnd>,
}

impl<'c, C, T> Walker<'c, C, T>
where
    C: SasCall + ?Sized,
    T: ListItem + Send,
{
    /// A walk of `action` from its first page. `base` holds the filters; paging parameters
    /// are added here.
    pub fn new(
        client: &'c C,
        action: &'static str,
        base: Params,
        form: Option<Params>,
        page_size: u32,
        paging: Paging,
    ) -> Self {
        Walker {
            client,
            action,
            base,
            form,
            page_size: page_size.max(1),
            paging,
            max_pages: client.max_pages(),
            page_no: 1,
            token: None,
            sorted: None,
            seen: HashSet::new(),
            poisoned: HashSet::new(),
            fetched: 0,
            overlap: 0,
            total_count: None,
            shrunk_by: 0,
            reread_through: 0,
            last_page: 0,
            oldest: None,
            end: None,
        }
    }

    /// The listing is sorted newest first by `key` (unix ms); with a `floor`, records below it
    /// are dropped and the page reaching below it is the last (a sorted listing that has
    /// reached past the records wanted).
    pub fn newest_first(mut self, key: fn(&T) -> i64, floor: Option<i64>) -> Self {
        self.sorted = Some(Sorted {
            key,
            floor,
            cut: None,
        });
        self
    }

    /// Starts at `page` (the last page an earlier walk of the same query read, so it is read
    /// again as overlap, not counted against the cap), where that walk's oldest key was `cut`. Records the listing dropped
    /// since (handled alerts) move later records up; if the page now starts below `cut`, the
    /// walk backs up a page at a time, so nothing is skipped. Only for a walk sorted
    /// ([`Walker::newest_first`]) and paged by number.
    pub fn resume(mut self, page: u32, cut: i64) -> Self {
        if let Some(s) = &mut self.sorted
            && self.paging == Paging::Number
        {
            s.cut = Some(cut);
            self.page_no = page.max(1);
        }
        self
    }

    /// The action walked.
    pub fn action(&self) -> &'static str {
        self.action
    }

    /// How the walk ended; `None` while it goes on.
    pub fn end(&self) -> Option<&WalkEnd> {
        self.end.as_ref()
    }

    /// Pages fetched so far.
    pub fn pages(&self) -> u32 {
        self.fetched
    }

    /// The last `TotalCount` the server reported.
    pub fn total_count(&self) -> Option<i64> {
        self.total_count
    }

    /// Where a later walk resumes: the page most recently returned and the oldest key read
    /// (for a sorted walk that read a record).
    pub fn position(&self) -> Option<(u32, i64)> {
        self.oldest.map(|oldest| (self.last_page, oldest))
    }

    /// The next page: its records not read before in this walk, and its unreadable records,
    /// each once. `None` once the walk has ended ([`Walker::end`] says how).
    pub async fn next_page(&mut self) -> Result<Option<Page<T>>, SasError> {
        loop {
            if self.end.is_some() {
                return Ok(None);
            }
            let resuming = self.sorted.as_ref().is_some_and(|s| s.cut.is_some());
            let mut page = self.fetch().await?;
            if self.backs_up(&page) {
                continue;
            }
            if resuming {
                self.overlap += 1;
            }
            let received = page.received();
            let reached_floor = self.sorted.as_ref().is_some_and(|s| {
                s.floor
                    .is_some_and(|f| page.items.iter().any(|i| (s.key)(&i.typed) < f))
            });
            let fresh = self.keep_fresh(&mut page);
            let token_stuck = self.paging == Paging::Token
                && self.token.is_some()
                && page.meta.next_token.as_deref() == self.token.as_deref();
            let observation = PageObservation {
                requested_page: self.page_no,
                requested_size: self.page_size,
                received,
                // Once records left the listing, what was read no longer tells its end.
                seen_total: if self.reread_through > 0 {
                    0
                } else {
                    self.seen.len() + self.poisoned.len()
                },
                meta: page.meta.clone(),
                repeated: ((received > 0 && fresh == 0) && self.page_no > self.reread_through)
                    || token_stuck,
                token_mode: self.paging == Paging::Token,
                pages_fetched: self.fetched - self.overlap,
                max_pages: self.max_pages,
            };
            self.last_page = self.page_no;
            self.end = match decide(&observation) {
                PageDecision::Continue | PageDecision::LimitReached if reached_floor => {
                    Some(WalkEnd::Finished)
                }
                PageDecision::Continue => {
                    self.page_no = self.next_page_no();
                    self.token = observation.meta.next_token;
                    None
                }
                PageDecision::Finished => Some(WalkEnd::Finished),
                PageDecision::Repeated => {
                    tracing::warn!(
                        action = self.action,
                        page = self.page_no,
                        "The server repeated records already read; it seems to ignore paging, so the listing stops here."
                    );
                    Some(WalkEnd::Repeated)
                }
                PageDecision::LimitReached => Some(WalkEnd::Capped(
                    self.cut(self.seen.len() + self.poisoned.len()),
                )),
            };
            return Ok(Some(page));
        }
    }

    /// The page after the current one; after a shrink, the page where the records that moved
    /// up now are. `k` records leaving the listing before the current page moved the `k` after
    /// the last page read up into pages already read: the walk goes back `ceil(k / size)`
    /// pages and reads forward again (what it read before is dropped as read). Re-reads count
    /// against the cap, so a listing that keeps shrinking still ends.
    fn next_page_no(&mut self) -> u32 {
        let shrunk = std::mem::take(&mut self.shrunk_by);
        if shrunk <= 0 {
            return self.page_no.saturating_add(1);
        }
        let back =
            u32::try_from((shrunk as u64).div_ceil(u64::from(self.page_size))).unwrap_or(u32::MAX);
        tracing::debug!(
            action = self.action,
            page = self.page_no,
            shrunk,
            "Records left the listing while it was read; reading the pages they moved into again."
        );
        self.reread_through = self.page_no;
        self.page_no.saturating_sub(back).max(1)
    }

    fn cut(&self, seen: usize) -> Cut {
        Cut {
            action: self.action,
            pages: self.fetched,
            seen,
            total: self.total_count,
        }
    }

    /// One call for the current page, refused when it holds more records than asked for.
    async fn fetch(&mut self) -> Result<Page<T>, SasError> {
        let mut query = self.base.clone();
        match self.paging {
            Paging::Number => {
                query.set("CurrentPage", self.page_no);
            }
            Paging::Token => {
                query.set("UseNextToken", "true");
                query.set_opt("NextToken", self.token.as_deref());
            }
        }
        query.set("PageSize", self.page_size);
        let page: Page<T> = self
            .client
            .call(self.action, &query, self.form.as_ref())
            .await?;
        self.fetched += 1;
        let received = page.received();
        if received > self.page_size as usize {
            // More than asked for is not an honest page: a proxy, a bug or an attack.
            return Err(SasError::Malformed {
                action: self.action.to_string(),
                status: 200,
                request_id: page.request_id.clone(),
                reason: format!(
                    "a page of {received} records answered PageSize={}",
                    self.page_size
                ),
            });
        }
        if let Some(total) = page.meta.total_count {
            if let Some(before) = self.total_count
                && total < before
                && self.paging == Paging::Number
            {
                self.shrunk_by = before - total;
            }
            self.total_count = Some(total);
        }
        Ok(page)
    }

    /// Resuming: whether `page` starts below the resume point, so the walk must back up a page
    /// (records the listing dropped moved later ones up, maybe past the page resumed at). The
    /// first page that does not is where the walk goes on. Backing up counts against the cap.
    fn backs_up(&mut self, page: &Page<T>) -> bool {
        let Some(s) = &mut self.sorted else {
            return false;
        };
        let Some(cut) = s.cut else {
            return false;
        };
        let newest = page.items.first().map(|i| (s.key)(&i.typed));
        if self.page_no <= 1 || newest.is_some_and(|k| k >= cut) {
            s.cut = None;
            return false;
        }
        self.page_no -= 1;
        if self.fetched >= self.max_pages {
            self.last_page = self.page_no;
            self.oldest = Some(cut);
            self.end = Some(WalkEnd::Capped(self.cut(0)));
        }
        true
    }

    /// Drops from `page` the records this walk read before and those below its floor; notes
    /// the oldest key. Returns how many records were new (readable or not).
    fn keep_fresh(&mut self, page: &mut Page<T>) -> usize {
        let seen = &mut self.seen;
        page.items.retain(|i| seen.insert(digest(&i.raw)));
        let poisoned = &mut self.poisoned;
        page.quarantined
            .retain(|q| poisoned.insert(q.digest.clone()));
        let fresh = page.received();
        for q in &mut page.quarantined {
            q.action = self.action.to_string();
            // The poller warns once per new record (a listing repeats it every poll).
            tracing::debug!(
                action = self.action,
                page = self.page_no,
                digest = %q.digest,
                reason = %crate::text::strip_control(&q.reason),
                "Quarantined a record that cannot be read; the rest of the page goes on."
            );
        }
        if let Some(s) = &self.sorted {
            if let Some(oldest) = page.items.iter().map(|i| (s.key)(&i.typed)).min() {
                self.oldest = Some(self.oldest.map_or(oldest, |o| o.min(oldest)));
            }
            if let Some(floor) = s.floor {
                page.items.retain(|i| (s.key)(&i.typed) >= floor);
            }
        }
        fresh
    }

    /// Reads the rest of the walk into one [`Listing`]. A walk cut by the page cap is
    /// [`SasError::TooManyPages`]: a caller that wants every record gets all or an error.
    pub async fn collect(mut self) -> Result<Listing<T>, SasError> {
        let mut listing = Listing::<T>::default();
        while let Some(page) = self.next_page().await? {
            listing.items.extend(page.items);
            listing.quarantined.extend(page.quarantined);
        }
        listing.pages = self.fetched;
        listing.total_count = self.total_count;
        match self.end {
            Some(WalkEnd::Capped(cut)) => Err(cut.error()),
            Some(WalkEnd::Repeated) => {
                listing.stopped_on_repeat = true;
                Ok(listing)
            }
            _ => Ok(listing),
        }
    }
}

/// Fetches every page of `action` ([`Walker::collect`]).
async fn walk<C, T>(
    c: &C,
    action: &'static str,
    base: &Params,
    form: Option<&Params>,
    page_size: u32,
    paging: Paging,
) -> Result<Listing<T>, SasError>
where
    C: SasCall + ?Sized,
    T: ListItem + Send,
{
    Walker::new(c, action, base.clone(), form.cloned(), page_size, paging)
        .collect()
        .await
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

/// `YYYY-MM-DD HH:mm:ss` in UTC wall-clock (docs/sas-api.md §1.5: if the service reads it as UTC+8 the
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
    /// Only this cluster; `None` lists account-wide (split client-side, docs/sas-api.md §11).
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

/// A walk of alert events (`DescribeSuspEvents`), newest occurrence first (`LastTimeStamp`),
/// resumable.
pub fn alerts_walker<'c, C: SasCall + ?Sized>(
    c: &'c C,
    q: &AlertQuery,
) -> Walker<'c, C, SuspEvent> {
    let (query, form) = alerts_request(q, c.lang());
    Walker::new(
        c,
        "DescribeSuspEvents",
        query,
        Some(form),
        q.page_size,
        Paging::Number,
    )
    .newest_first(|a: &SuspEvent| a.last_time_stamp, None)
}

/// Lists alert events (`DescribeSuspEvents`), every page.
pub async fn list_alerts<C: SasCall + ?Sized>(
    c: &C,
    q: &AlertQuery,
) -> Result<Listing<SuspEvent>, SasError> {
    alerts_walker(c, q).collect().await
}

/// A walk of alerts handled at or after `since` (`Dealed=Y`, most recently handled first),
/// reading pages until one reaches back past `since` and keeping only the records handled
/// since then; resumable.
///
/// `TimeStart`/`TimeEnd` window the *latest occurrence* (docs/sas-api.md §1.1), so they cannot express
/// "handled since": an alert that last occurred a week ago and was handled a minute ago must be
/// read. The window and status filters of `q` are ignored; its cluster, levels, tactic and page
/// size apply.
pub fn handled_alerts_walker<'c, C: SasCall + ?Sized>(
    c: &'c C,
    q: &AlertQuery,
    since: OffsetDateTime,
) -> Walker<'c, C, SuspEvent> {
    let q = AlertQuery {
        dealed: Some(Dealed::Handled),
        time_start: None,
        time_end: None,
        ..q.clone()
    };
    let (mut query, form) = alerts_request(&q, c.lang());
    query
        .set("SortColumn", "operateTime")
        .set("SortType", "desc");
    Walker::new(
        c,
        "DescribeSuspEvents",
        query,
        Some(form),
        q.page_size,
        Paging::Number,
    )
    .newest_first(|a: &SuspEvent| a.operate_time, Some(epoch_ms(since)))
}

/// Lists alerts handled at or after `since` ([`handled_alerts_walker`]), every page.
pub async fn list_alerts_handled_since<C: SasCall + ?Sized>(
    c: &C,
    q: &AlertQuery,
    since: OffsetDateTime,
) -> Result<Listing<SuspEvent>, SasError> {
    handled_alerts_walker(c, q, since).collect().await
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
    /// `Type=app&AttachTypes=sca`: application vulnerabilities, found by the web scanner and
    /// by software-composition analysis — what the console's "application vulnerabilities"
    /// list shows. The official SDK's `DescribeVulListRequest` says `AttachTypes` must be set
    /// when `Type` is `app` (without it, only web-scanner findings are listed), so `app` alone
    /// is never sent.
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
            VulType::AppSca => "app",
            VulType::Sca => "sca",
        }
    }

    /// The `AttachTypes` parameter, if any.
    pub fn attach_types(self) -> Option<&'static str> {
        matches!(self, VulType::AppSca).then_some("sca")
    }

    /// The `Types` of `DescribeClusterVulStatistics` that count what this type lists.
    pub fn statistics_types(self) -> &'static [&'static str] {
        match self {
            VulType::AppSca => &["app", "sca"],
            other => match other.type_param() {
                "cve" => &["cve"],
                "sys" => &["sys"],
                "cms" => &["cms"],
                "emg" => &["emg"],
                _ => &["sca"],
            },
        }
    }
}

impl std::str::FromStr for VulType {
    type Err = String;

    /// `cve`, `sys`, `cms`, `emg`, `app` (the same as `app+sca`, see [`VulType::AppSca`]),
    /// `app+sca` (or `app-sca`), `sca`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "cve" => VulType::Cve,
            "sys" => VulType::Sys,
            "cms" => VulType::Cms,
            "emg" => VulType::Emg,
            "app" | "app+sca" | "app-sca" | "app_sca" => VulType::AppSca,
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

/// How `DescribeVulList` pages for `q`.
fn vul_paging(q: &VulQuery) -> Paging {
    if q.use_next_token {
        Paging::Token
    } else {
        Paging::Number
    }
}

/// A walk of the vulnerability records (`DescribeVulList`) of one type of the query.
pub fn vul_walker<'c, C: SasCall + ?Sized>(
    c: &'c C,
    q: &VulQuery,
    ty: VulType,
) -> Walker<'c, C, VulRecord> {
    let query = vul_request(q, ty, c.lang());
    Walker::new(
        c,
        "DescribeVulList",
        query,
        None,
        q.page_size,
        vul_paging(q),
    )
}

/// The query's types, each once, in order.
pub fn vul_types(q: &VulQuery) -> Vec<VulType> {
    let mut types: Vec<VulType> = Vec::new();
    for &ty in &q.types {
        if !types.contains(&ty) {
            types.push(ty);
        }
    }
    types
}

/// Lists vulnerability records (`DescribeVulList`) for every type in the query, every page,
/// merged (a record identical across types is kept once).
pub async fn list_vulnerabilities<C: SasCall + ?Sized>(
    c: &C,
    q: &VulQuery,
) -> Result<Listing<VulRecord>, SasError> {
    let mut all = Listing::default();
    for ty in vul_types(q) {
        all.merge(vul_walker(c, q, ty).collect().await?);
    }
    Ok(all)
}

/// The most `Ids` one `DescribeVulList` request may carry (docs/sas-api.md §2.1).
pub const MAX_VUL_IDS: usize = 50;

/// The query of one `DescribeVulList` request for `ty` that looks records up by `PrimaryId`
/// (`Ids`, at most [`MAX_VUL_IDS`]; the caller splits), without paging. `q` supplies the other
/// filters: a lookup of handled records sets `status_list` (or `dealed`), since the pending
/// filter of a listing would hide exactly the records looked for.
pub fn vul_ids_request(q: &VulQuery, ty: VulType, ids: &[RecordId], lang: &str) -> Params {
    let mut query = vul_request(q, ty, lang);
    query.set_simple("Ids", ids);
    query
}

/// Looks vulnerability records up by `PrimaryId` (`DescribeVulList` with `Ids`): for every
/// type in the query, the ids in chunks of [`MAX_VUL_IDS`] (sorted, each once), every page,
/// merged. Only records whose `PrimaryId` was asked for are kept, so a server that ignored
/// `Ids` cannot pass off other records as answers. No ids, no calls.
pub async fn lookup_vulnerabilities<C: SasCall + ?Sized>(
    c: &C,
    q: &VulQuery,
    ids: &[RecordId],
) -> Result<Listing<VulRecord>, SasError> {
    let mut wanted: Vec<RecordId> = ids.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let paging = vul_paging(q);
    let mut all = Listing::default();
    for ty in vul_types(q) {
        for chunk in wanted.chunks(MAX_VUL_IDS) {
            let query = vul_ids_request(q, ty, chunk, c.lang());
            let mut listing: Listing<VulRecord> =
                walk(c, "DescribeVulList", &query, None, q.page_size, paging).await?;
            listing.items.retain(|i| {
                i.primary_id
                    .as_ref()
                    .or(i.extend_content_json.primary_id.as_ref())
                    .is_some_and(|id| chunk.binary_search(id).is_ok())
            });
            all.merge(listing);
        }
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
pub fn warning_machines_request(risk_id: &str, cluster_id: Option<&str>, lang: &str) -> Params {
    let mut query = Params::new();
    query.set("RiskId", risk_id).set("Lang", lang);
    query.set_opt("ClusterId", cluster_id.filter(|s| !s.is_empty()));
    query
}

/// The query of `DescribeCheckWarnings` for one risk on one asset, without paging.
/// `ContainerName` scopes a container asset to its own checks.
pub fn check_warnings_request(
    risk_id: &str,
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
    risk_id: &str,
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
    risk_id: &str,
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
    check_warning_id: &str,
) -> Result<Item<CheckWarningDetail>, SasError> {
    let mut query = Params::new();
    query
        .set("CheckWarningId", check_warning_id)
        .set("Lang", c.lang());
    c.call("DescribeCheckWarningDetail", &query, None).await
}

/// One alert's detail (`DescribeSuspEventDetail`: its evidence, status and host), as sent.
pub async fn susp_event_detail<C: SasCall + ?Sized>(
    c: &C,
    id: i64,
) -> Result<Item<super::models::SuspEventDetail>, SasError> {
    let mut query = Params::new();
    query
        .set("SuspiciousEventId", id)
        .set("From", "sas")
        .set("Lang", c.lang());
    c.call("DescribeSuspEventDetail", &query, None).await
}

/// The diagnosis of the aggregated alert `alarm_unique_info` (`DescribeAlarmEventDetail`:
/// the console's tracing data, `Data.CauseDetails`), as sent: its `Data` object.
pub async fn alarm_event_detail<C: SasCall + ?Sized>(
    c: &C,
    alarm_unique_info: &str,
) -> Result<serde_json::Value, SasError> {
    let mut query = Params::new();
    query
        .set("AlarmUniqueInfo", alarm_unique_info)
        .set("From", "sas")
        .set("Lang", c.lang());
    let body: serde_json::Value = c.call("DescribeAlarmEventDetail", &query, None).await?;
    Ok(body.get("Data").cloned().unwrap_or(serde_json::Value::Null))
}

/// The baseline walk's result: one item per check result, and every record of the three
/// listings that could not be read (a risk or machine among them hides its check results).
/// A batch of [`BaselineWalker::next_batch`] also says which pair its items are, and which
/// pairs the walk skipped since the last batch ([`BaselineWalker::skip_unchanged`]).
#[derive(Clone, Debug, Default)]
pub struct BaselineListing {
    /// One per check result, each once.
    pub items: Vec<BaselineItem>,
    /// Unreadable records of any of the three listings, each once.
    pub quarantined: Vec<Quarantined>,
    /// The risk × asset pair whose check results `items` are, when the batch listed one.
    pub pair: Option<ListedPair>,
    /// Pairs left unlisted since the last batch: their counts are unchanged.
    pub skipped: Vec<SkippedPair>,
}

/// Check-item details (`DescribeCheckWarningDetail`: description and advice) by `CheckId`,
/// shared by the baseline walks of one source across its sweeps: a check's text is fetched
/// once per [`DetailCache::TTL`], not once per sweep, cluster and asset. Only the check-level
/// part is kept ([`check_level`]). Bounded: past [`DetailCache::MAX_ENTRIES`] distinct checks
/// it starts afresh. What it fetched is handed out for keeping across restarts
/// ([`DetailCache::take_fetched`]) and taken back at start ([`DetailCache::preload`]).
#[derive(Debug, Default)]
pub struct DetailCache {
    inner: std::sync::Mutex<Details>,
}

#[derive(Debug, Default)]
struct Details {
    entries: HashMap<i64, (std::time::Instant, Item<CheckWarningDetail>)>,
    /// Fetched since the last [`DetailCache::take_fetched`].
    fetched: Vec<i64>,
}

impl DetailCache {
    /// How long a detail is used before it is fetched again (a check's text changes with
    /// Security Center's releases, not with its results).
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
    /// Distinct checks kept (an account has a few hundred).
    pub const MAX_ENTRIES: usize = 10_000;

    fn lock(&self) -> std::sync::MutexGuard<'_, Details> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The detail of `check_id`, if fetched less than [`DetailCache::TTL`] ago.
    pub fn get(&self, check_id: i64) -> Option<Item<CheckWarningDetail>> {
        self.lock()
            .entries
            .get(&check_id)
            .filter(|(at, _)| at.elapsed() < Self::TTL)
            .map(|(_, d)| d.clone())
    }

    /// Keeps `detail` as `check_id`'s, fetched now.
    pub fn put(&self, check_id: i64, detail: Item<CheckWarningDetail>) {
        let mut d = self.lock();
        d.insert(check_id, std::time::Instant::now(), detail);
        d.fetched.push(check_id);
    }

    /// Takes back a detail fetched `age` ago (from the store at start); false when it is too
    /// old or not a detail.
    pub fn preload(&self, check_id: i64, age: std::time::Duration, raw: Value) -> bool {
        let Some(at) = std::time::Instant::now().checked_sub(age) else {
            return false;
        };
        match Item::from_value(raw) {
            Ok(detail) if age < Self::TTL => {
                self.lock().insert(check_id, at, check_level(detail));
                true
            }
            _ => false,
        }
    }

    /// The details fetched since the last call, with how long ago each was fetched: for the
    /// caller to keep.
    pub fn take_fetched(&self) -> Vec<(i64, std::time::Duration, Value)> {
        let mut d = self.lock();
        let fetched = std::mem::take(&mut d.fetched);
        let mut out: Vec<(i64, std::time::Duration, Value)> = Vec::new();
        for id in fetched {
            if let Some((at, detail)) = d.entries.get(&id)
                && !out.iter().any(|(seen, _, _)| *seen == id)
            {
                out.push((id, at.elapsed(), detail.raw.clone()));
            }
        }
        out
    }
}

impl Details {
    fn insert(&mut self, check_id: i64, at: std::time::Instant, detail: Item<CheckWarningDetail>) {
        if self.entries.len() >= DetailCache::MAX_ENTRIES && !self.entries.contains_key(&check_id) {
            self.entries.clear();
        }
        self.entries.insert(check_id, (at, detail));
    }
}

/// The part of a check's detail that is the same for every asset: without the evidence of the
/// asset it was fetched for (`CheckDetailAssetInfo` names that asset's files, values, UUID and
/// container) and without the answer's `RequestId`. A detail shared between assets must not
/// show one asset's evidence in another's notification.
pub fn check_level(mut detail: Item<CheckWarningDetail>) -> Item<CheckWarningDetail> {
    if let Some(o) = detail.raw.as_object_mut() {
        o.remove("CheckDetailAssetInfo");
        o.remove("RequestId");
    }
    detail.typed.check_detail_asset_info.clear();
    detail.typed.request_id.clear();
    detail
}

/// The baseline walk, one affected asset at a time ([`BaselineWalker::next_batch`]): summary
/// → machines → check items (→ detail, cached per `CheckId`), one [`BaselineItem`] per check
/// item, each once. Risks without a `RiskId` and machines without a `Uuid` cannot be followed
/// and are skipped with a warning.
///
/// The asset is the `Uuid` (docs/sas-api.md §3.7: asset key `(RiskId, Uuid)`), and a machine row names
/// at most one container even when several containers on that node fail the same baseline, so
/// the checks of each asset are listed unscoped; for a row naming a container they are listed
/// scoped to it as well, in case the service only shows a container's checks when asked by
/// name. The results are merged, each check result once.
///
/// With [`BaselineWalker::skip_unchanged`], a pair (risk × asset) whose machine row shows
/// the counts of its last complete listing, listed recently enough, is not listed again
/// ([`crate::sas::pairs`]): the batch names it among the skipped with what was kept of it.
///
/// Memory: the risks of one summary page, the machines of one machine page and the checks of
/// one asset, up to [`SKIPPED_PER_BATCH`] skipped pairs, plus the detail cache (one per
/// distinct check definition).
pub struct BaselineWalker<'c, C: ?Sized> {
    c: &'c C,
    q: BaselineQuery,
    summaries: Walker<'c, C, WarningSummary>,
    risks: VecDeque<Item<WarningSummary>>,
    risk: Option<RiskWalk<'c, C>>,
    details: std::sync::Arc<DetailCache>,
    /// Unreadable records met since the last batch.
    quarantined: Vec<Quarantined>,
    /// Whether (and against what) unchanged pairs are skipped.
    skip: Option<PairSkip>,
    /// Pairs skipped since the last batch.
    skipped: Vec<SkippedPair>,
    cuts: Vec<Cut>,
    repeated: bool,
}

/// Skipped pairs a walk holds before it hands them out in a batch of their own: an
/// account-wide walk may skip every pair of the account in a row.
pub const SKIPPED_PER_BATCH: usize = 100;

/// The machines of one risk being walked.
struct RiskWalk<'c, C: ?Sized> {
    risk: Item<WarningSummary>,
    risk_id: String,
    machines: Walker<'c, C, WarningMachine>,
    queue: VecDeque<Item<WarningMachine>>,
    /// (uuid, container scope) pairs whose checks were listed.
    listed: HashSet<(String, String)>,
    /// Pairs (machine rows) met, listed or skipped: a row repeated is not met twice.
    met: HashSet<PairKey>,
    /// Check results already yielded for this risk.
    seen: HashSet<[u8; 32]>,
}

impl<'c, C: SasCall + ?Sized> BaselineWalker<'c, C> {
    /// A baseline walk of `q`.
    pub fn new(c: &'c C, q: &BaselineQuery) -> Self {
        let summaries = Walker::new(
            c,
            "DescribeCheckWarningSummary",
            warning_summary_request(q, c.lang()),
            None,
            q.page_size,
            Paging::Number,
        );
        BaselineWalker {
            c,
            q: q.clone(),
            summaries,
            risks: VecDeque::new(),
            risk: None,
            details: std::sync::Arc::default(),
            quarantined: Vec::new(),
            skip: None,
            skipped: Vec::new(),
            cuts: Vec::new(),
            repeated: false,
        }
    }

    /// Takes details from `cache` (shared across walks) instead of a cache of its own.
    pub fn with_details(mut self, cache: std::sync::Arc<DetailCache>) -> Self {
        self.details = cache;
        self
    }

    /// Leaves unlisted the pairs whose counts `skip`'s book recalls unchanged
    /// ([`PairSkip::recall_unchanged`]).
    pub fn skip_unchanged(mut self, skip: PairSkip) -> Self {
        self.skip = Some(skip);
        self
    }

    /// Listings the page cap stopped (their rest unread), so far.
    pub fn cuts(&self) -> &[Cut] {
        &self.cuts
    }

    /// A listing stopped because the server repeated a page.
    pub fn repeated(&self) -> bool {
        self.repeated
    }

    fn note(&mut self, end: Option<&WalkEnd>) {
        match end {
            Some(WalkEnd::Capped(cut)) => self.cuts.push(cut.clone()),
            Some(WalkEnd::Repeated) => self.repeated = true,
            _ => {}
        }
    }

    /// The check results of the next affected asset listed (with the unreadable records met
    /// on the way and the pairs skipped since the last batch), or `None` when the walk is
    /// over.
    pub async fn next_batch(&mut self) -> Result<Option<BaselineListing>, SasError> {
        loop {
            if self.skipped.len() >= SKIPPED_PER_BATCH {
                return Ok(Some(self.held_back()));
            }
            if let Some(walk) = &mut self.risk {
                if let Some(machine) = walk.queue.pop_front() {
                    let pair = PairKey::of(&walk.risk_id, &machine);
                    let counts = pair_counts(&machine);
                    if let Some(key) = &pair {
                        if !walk.met.insert(key.clone()) {
                            continue;
                        }
                        let cluster = non_empty(&self.q.cluster_id);
                        if let Some(known) = self
                            .skip
                            .as_ref()
                            .and_then(|s| s.recall_unchanged(cluster, key, &counts))
                        {
                            self.skipped.push(SkippedPair {
                                key: key.clone(),
                                kept: known.kept,
                            });
                            continue;
                        }
                    }
                    let mut batch = BaselineListing {
                        quarantined: std::mem::take(&mut self.quarantined),
                        skipped: std::mem::take(&mut self.skipped),
                        ..BaselineListing::default()
                    };
                    let read =
                        asset_checks(self.c, &self.q, &self.details, walk, machine, &mut batch)
                            .await?;
                    let whole =
                        read.whole && read.ends.iter().all(|e| matches!(e, WalkEnd::Finished));
                    batch.pair = pair.map(|key| ListedPair { key, counts, whole });
                    for end in read.ends {
                        self.note(Some(&end));
                    }
                    return Ok(Some(batch));
                }
                match walk.machines.next_page().await? {
                    Some(page) => {
                        Quarantined::add_each_once(&mut self.quarantined, page.quarantined);
                        walk.queue.extend(page.items);
                    }
                    None => {
                        let end = walk.machines.end().cloned();
                        self.risk = None;
                        self.note(end.as_ref());
                    }
                }
                continue;
            }
            if let Some(risk) = self.risks.pop_front() {
                self.risk = self.start_risk(risk);
                continue;
            }
            match self.summaries.next_page().await? {
                Some(page) => {
                    Quarantined::add_each_once(&mut self.quarantined, page.quarantined);
                    self.risks.extend(page.items);
                }
                None => {
                    let end = self.summaries.end().cloned();
                    self.note(end.as_ref());
                    if self.quarantined.is_empty() && self.skipped.is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(self.held_back()));
                }
            }
        }
    }

    /// A batch of what the walk holds: the unreadable records and skipped pairs met since the
    /// last batch.
    fn held_back(&mut self) -> BaselineListing {
        BaselineListing {
            quarantined: std::mem::take(&mut self.quarantined),
            skipped: std::mem::take(&mut self.skipped),
            ..BaselineListing::default()
        }
    }

    fn start_risk(&self, risk: Item<WarningSummary>) -> Option<RiskWalk<'c, C>> {
        let Some(risk_id) = risk.risk_id.clone() else {
            tracing::warn!(risk = %risk.risk_name, "Skipped a baseline risk without RiskId.");
            return None;
        };
        let risk_id = risk_id.as_str().to_string();
        let machines = Walker::new(
            self.c,
            "DescribeWarningMachines",
            warning_machines_request(&risk_id, non_empty(&self.q.cluster_id), self.c.lang()),
            None,
            self.q.page_size,
            Paging::Number,
        );
        Some(RiskWalk {
            risk,
            risk_id,
            machines,
            queue: VecDeque::new(),
            listed: HashSet::new(),
            met: HashSet::new(),
            seen: HashSet::new(),
        })
    }
}

/// How the check listings of one asset ended.
struct AssetRead {
    ends: Vec<WalkEnd>,
    /// No record of them was unreadable, and none of their check results was held back as
    /// yielded already by another asset of the risk.
    whole: bool,
}

/// The check results of one asset of a risk into `batch`: listed unscoped and, for a row
/// naming a container, scoped to it; each check result once per risk, with its detail.
/// Returns how the check listings ended.
async fn asset_checks<C: SasCall + ?Sized>(
    c: &C,
    q: &BaselineQuery,
    details: &DetailCache,
    walk: &mut RiskWalk<'_, C>,
    machine: Item<WarningMachine>,
    batch: &mut BaselineListing,
) -> Result<AssetRead, SasError> {
    let mut read = AssetRead {
        ends: Vec::new(),
        whole: true,
    };
    if machine.uuid.trim().is_empty() {
        tracing::warn!(risk_id = %walk.risk_id, "Skipped an affected asset without Uuid.");
        return Ok(read);
    }
    let container = machine.container_name.trim();
    let mut checks = Vec::new();
    for scope in [None, Some(container).filter(|c| !c.is_empty())] {
        if !walk
            .listed
            .insert((machine.uuid.clone(), scope.unwrap_or("").to_string()))
        {
            continue;
        }
        let query = check_warnings_request(&walk.risk_id, &machine.uuid, scope, c.lang());
        let mut listing = Walker::<C, CheckWarning>::new(
            c,
            "DescribeCheckWarnings",
            query,
            None,
            q.page_size,
            Paging::Number,
        );
        while let Some(page) = listing.next_page().await? {
            read.whole &= page.quarantined.is_empty();
            Quarantined::add_each_once(&mut batch.quarantined, page.quarantined);
            checks.extend(page.items);
        }
        read.ends.extend(listing.end().cloned());
    }
    // A check result both listings of this asset hold is its own; one another asset of the
    // risk yielded already is not in this batch, so the batch is not the asset's whole.
    let mut own = HashSet::new();
    for check in checks {
        let d = digest(&check.raw);
        if !own.insert(d) {
            continue;
        }
        if !walk.seen.insert(d) {
            read.whole = false;
            continue;
        }
        let detail = match (q.fetch_details, check.check_warning_id.as_deref()) {
            (true, Some(cw_id)) => match check.check_id {
                Some(check_id) => match details.get(check_id) {
                    Some(d) => Some(d),
                    None => {
                        let d = check_level(check_warning_detail(c, cw_id).await?);
                        details.put(check_id, d.clone());
                        Some(d)
                    }
                },
                None => Some(check_level(check_warning_detail(c, cw_id).await?)),
            },
            _ => None,
        };
        batch.items.push(BaselineItem {
            risk: walk.risk.clone(),
            machine: machine.clone(),
            check,
            detail,
        });
    }
    Ok(read)
}

/// Walks the whole baseline ([`BaselineWalker`]) into one listing. A listing the page cap
/// stopped is [`SasError::TooManyPages`].
pub async fn list_baseline<C: SasCall + ?Sized>(
    c: &C,
    q: &BaselineQuery,
) -> Result<BaselineListing, SasError> {
    let mut walker = BaselineWalker::new(c, q);
    let mut out = BaselineListing::default();
    while let Some(batch) = walker.next_batch().await? {
        out.items.extend(batch.items);
        Quarantined::add_each_once(&mut out.quarantined, batch.quarantined);
    }
    match walker.cuts().first() {
        Some(cut) => Err(cut.error()),
        None => Ok(out),
    }
}

// ---------------------------------------------------------------------------------------------
// Container firewall

/// Filters for `ListInterceptionHistory`.
#[derive(Clone, Debug, PartialEq)]
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

impl Default for FirewallQuery {
    /// Every mode, no window, 100 per page.
    fn default() -> Self {
        FirewallQuery {
            cluster_id: None,
            start: None,
            end: None,
            interception_types: Vec::new(),
            history_name: None,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
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

/// A walk of container firewall alerts (`ListInterceptionHistory`), latest occurrence first
/// (`LastTime`), resumable.
pub fn firewall_walker<'c, C: SasCall + ?Sized>(
    c: &'c C,
    q: &FirewallQuery,
) -> Walker<'c, C, InterceptionHistory> {
    let query = firewall_request(q, c.lang());
    let size = if q.page_size == 0 {
        DEFAULT_PAGE_SIZE
    } else {
        q.page_size
    };
    Walker::new(
        c,
        "ListInterceptionHistory",
        query,
        None,
        size,
        Paging::Number,
    )
    .newest_first(|r: &InterceptionHistory| r.last_time, None)
}

/// Lists container firewall alerts (`ListInterceptionHistory`), every page.
pub async fn list_firewall<C: SasCall + ?Sized>(
    c: &C,
    q: &FirewallQuery,
) -> Result<Listing<InterceptionHistory>, SasError> {
    firewall_walker(c, q).collect().await
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
    for name in types.iter().flat_map(|t| t.statistics_types()) {
        if !names.contains(name) {
            names.push(name);
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

#[cfg(test)]
// The fake answers with the transport's own `SasError`, whose size is not ours to choose.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    use time::macros::datetime;

    type Responder = Box<dyn Fn(&str, &Params) -> Result<Value, SasError> + Send + Sync>;

    #[test]
    fn merged_totals_saturate() {
        let huge = || Listing::<Value> {
            total_count: Some(i64::MAX),
            pages: u32::MAX,
            ..Listing::default()
        };
        let mut all = huge();
        all.merge(huge());
        assert_eq!(all.total_count, Some(i64::MAX));
        assert_eq!(all.pages, u32::MAX);
    }

    /// A scripted Security Center: records every call and answers from a closure.
    struct Fake {
        max_pages: u32,
        calls: Mutex<Vec<(String, Params, Option<Params>)>>,
        respond: Responder,
    }

    impl Fake {
        fn new(
            max_pages: u32,
            respond: impl Fn(&str, &Params) -> Result<Value, SasError> + Send + Sync + 'static,
        ) -> Self {
            Fake {
                max_pages,
                calls: Mutex::new(Vec::new()),
                respond: Box::new(respond),
            }
        }

        fn calls(&self) -> Vec<(String, Params, Option<Params>)> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl SasCall for Fake {
        fn call<T: DeserializeOwned + Send>(
            &self,
            action: &str,
            query: &Params,
            form: Option<&Params>,
        ) -> impl Future<Output = Result<T, SasError>> + Send {
            self.calls
                .lock()
                .unwrap()
                .push((action.to_string(), query.clone(), form.cloned()));
            let result = (self.respond)(action, query).and_then(|v| {
                serde_json::from_value(v).map_err(|e| SasError::Malformed {
                    action: action.to_string(),
                    status: 200,
                    request_id: String::new(),
                    reason: e.to_string(),
                })
            });
            std::future::ready(result)
        }

        fn max_pages(&self) -> u32 {
            self.max_pages
        }

        fn lang(&self) -> &str {
            "en"
        }
    }

    fn num(q: &Params, key: &str) -> i64 {
        q.get(key).unwrap().parse().unwrap()
    }

    /// `total` records `{"Id": n}` under `key`, paged by `CurrentPage`/`PageSize` (the server
    /// caps the page size at `cap`); `ignore_page` makes it always answer page 1.
    fn numbered(key: &'static str, total: i64, cap: i64, ignore_page: bool) -> Responder {
        Box::new(move |_, q| {
            let size = num(q, "PageSize").min(cap);
            let page = if ignore_page {
                1
            } else {
                num(q, "CurrentPage")
            };
            let items: Vec<Value> = ((page - 1) * size..(page * size).min(total))
                .map(|n| json!({"Id": n + 1}))
                .collect();
            Ok(json!({
                "RequestId": "r", "CurrentPage": page, "PageSize": size,
                "TotalCount": total, "Count": items.len(), key: items
            }))
        })
    }

    fn obs(page: u32, received: usize, seen: usize, total: Option<i64>) -> PageObservation {
        PageObservation {
            requested_page: page,
            requested_size: 100,
            received,
            seen_total: seen,
            meta: PageMeta {
                current_page: Some(i64::from(page)),
                page_size: Some(100),
                total_count: total,
                ..PageMeta::default()
            },
            repeated: false,
            token_mode: false,
            pages_fetched: page,
            max_pages: 10,
        }
    }

    #[test]
    fn paging_decision_table() {
        use PageDecision::*;
        let token = |next: Option<&str>| PageObservation {
            token_mode: true,
            meta: PageMeta {
                next_token: next.map(str::to_string),
                ..PageMeta::default()
            },
            ..obs(1, 100, 100, None)
        };
        let cases: Vec<(&str, PageObservation, PageDecision)> = vec![
            ("empty page", obs(1, 0, 0, Some(500)), Finished),
            (
                "full page, more to come",
                obs(1, 100, 100, Some(250)),
                Continue,
            ),
            (
                "page*size reaches total",
                obs(3, 100, 300, Some(300)),
                Finished,
            ),
            ("short last page", obs(3, 50, 250, Some(250)), Finished),
            ("short page without total", obs(2, 99, 199, None), Finished),
            ("full page without total", obs(2, 100, 200, None), Continue),
            (
                "seen reaches total before page*size",
                PageObservation {
                    meta: PageMeta {
                        current_page: Some(1),
                        page_size: Some(100),
                        total_count: Some(100),
                        ..PageMeta::default()
                    },
                    ..obs(1, 100, 100, None)
                },
                Finished,
            ),
            (
                "repeated page",
                PageObservation {
                    repeated: true,
                    ..obs(2, 100, 100, Some(1000))
                },
                Repeated,
            ),
            (
                "limit reached with more",
                obs(10, 100, 1000, Some(5000)),
                LimitReached,
            ),
            (
                "limit reached but done",
                obs(10, 100, 1000, Some(1000)),
                Finished,
            ),
            (
                "server caps page size at 20 and says so",
                PageObservation {
                    meta: PageMeta {
                        current_page: Some(1),
                        page_size: Some(20),
                        total_count: Some(45),
                        ..PageMeta::default()
                    },
                    ..obs(1, 20, 20, None)
                },
                Continue,
            ),
            (
                "no paging fields at all: requested values used",
                PageObservation {
                    meta: PageMeta::default(),
                    ..obs(1, 100, 100, None)
                },
                Continue,
            ),
            ("token: next token", token(Some("t2")), Continue),
            ("token: no next token", token(None), Finished),
        ];
        for (name, o, want) in cases {
            assert_eq!(decide(&o), want, "{name}");
        }
    }

    #[test]
    fn alert_request_follows_the_polling_recipe() {
        let q = AlertQuery {
            cluster_id: Some("c1".into()),
            levels: vec!["serious".into(), "suspicious".into()],
            time_start: Some(datetime!(2024-05-20 08:12:44 +8)),
            time_end: Some(datetime!(2024-05-20 01:00:00 UTC)),
            ..AlertQuery::default()
        };
        let (query, form) = alerts_request(&q, "en");
        assert_eq!(
            query.pairs(),
            Params::from_iter([
                ("From", "sas"),
                ("Lang", "en"),
                ("ClusterId", "c1"),
                ("Dealed", "N"),
                ("Levels", "serious,suspicious"),
                ("TimeStart", "2024-05-20 00:12:44"),
                ("TimeEnd", "2024-05-20 01:00:00"),
            ])
            .pairs()
        );
        assert!(form.is_empty());
        let q = AlertQuery {
            dealed: Some(Dealed::Handled),
            tactic_id: Some("TA0040".into()),
            cluster_id: Some("  ".into()),
            ..AlertQuery::default()
        };
        let (query, form) = alerts_request(&q, "zh");
        assert_eq!(query.get("Dealed"), Some("Y"));
        assert_eq!(query.get("ClusterId"), None);
        assert_eq!(query.get("Lang"), Some("zh"));
        assert_eq!(form.get("TacticId"), Some("TA0040"));
    }

    #[tokio::test]
    async fn alerts_page_to_the_end_with_a_form_body() {
        let fake = Fake::new(50, numbered("SuspEvents", 250, 100, false));
        let listing = list_alerts(&fake, &AlertQuery::default()).await.unwrap();
        assert_eq!(listing.items.len(), 250);
        assert_eq!(listing.pages, 3);
        assert_eq!(listing.total_count, Some(250));
        assert!(!listing.stopped_on_repeat);
        let calls = fake.calls();
        assert_eq!(calls.len(), 3);
        for (i, (action, query, form)) in calls.iter().enumerate() {
            assert_eq!(action, "DescribeSuspEvents");
            assert_eq!(query.get("CurrentPage"), Some((i + 1).to_string().as_str()));
            assert_eq!(query.get("PageSize"), Some("100"));
            assert_eq!(query.get("From"), Some("sas"));
            assert_eq!(form.as_ref(), Some(&Params::new()));
        }
    }

    #[tokio::test]
    async fn a_page_larger_than_asked_for_is_an_error() {
        // The server ignores PageSize: 150 records on a page that asked for 100.
        let fake = Fake::new(50, move |_, _| {
            let items: Vec<Value> = (0..150).map(|n| json!({"Id": n + 1})).collect();
            Ok(json!({"RequestId": "r", "TotalCount": 150, "SuspEvents": items}))
        });
        let err = list_alerts(&fake, &AlertQuery::default())
            .await
            .unwrap_err();
        assert!(matches!(err, SasError::Malformed { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("150 records answered PageSize=100"),
            "{err}"
        );
        assert!(
            err.retryable(),
            "retried like a server fault, then the poll fails"
        );
    }

    #[tokio::test]
    async fn a_server_ignoring_current_page_cannot_loop() {
        let fake = Fake::new(1000, numbered("SuspEvents", 1000, 100, true));
        let listing = list_alerts(&fake, &AlertQuery::default()).await.unwrap();
        assert_eq!(listing.items.len(), 100);
        assert_eq!(listing.pages, 2);
        assert!(listing.stopped_on_repeat);
    }

    #[tokio::test]
    async fn handled_alerts_are_read_by_handling_time_until_a_page_reaches_past_it() {
        // 1000 handled alerts, handled one minute apart, newest first; Id n handled at
        // `base - n` minutes. The window takes the first 150.
        let base = datetime!(2024-05-20 12:00:00 UTC);
        let fake = Fake::new(3, move |_, q| {
            let (page, size) = (num(q, "CurrentPage"), num(q, "PageSize"));
            let rows: Vec<Value> = ((page - 1) * size..(page * size).min(1000))
                .map(|n| json!({"Id": n, "EventStatus": 32, "OperateTime": epoch_ms(base) - n * 60_000}))
                .collect();
            Ok(
                json!({"CurrentPage": page, "PageSize": size, "TotalCount": 1000, "SuspEvents": rows}),
            )
        });
        let q = AlertQuery {
            cluster_id: Some("c1".into()),
            time_start: Some(base),
            ..AlertQuery::default()
        };
        let since = base - time::Duration::minutes(149);
        let listing = list_alerts_handled_since(&fake, &q, since).await.unwrap();
        let ids: Vec<i64> = listing
            .items
            .iter()
            .map(|i| i.id.as_deref().unwrap().parse::<i64>().unwrap())
            .collect();
        assert_eq!(ids, (0..150).collect::<Vec<_>>());
        // Page 2 reaches past the window: no third page, so the page cap of 3 is not hit.
        let calls = fake.calls();
        assert_eq!(calls.len(), 2);
        let first = &calls[0].1;
        assert_eq!(first.get("Dealed"), Some("Y"));
        assert_eq!(first.get("SortColumn"), Some("operateTime"));
        assert_eq!(first.get("SortType"), Some("desc"));
        assert_eq!(first.get("ClusterId"), Some("c1"));
        assert_eq!(
            first.get("TimeStart"),
            None,
            "occurrence time does not bound handling"
        );
    }

    /// Alerts `{"Id": id, "LastTimeStamp": 10_000 - id}` for the ids in `rows`, in that order
    /// (newest first), paged by number; `rows` may change between calls.
    fn served(
        rows: std::sync::Arc<Mutex<Vec<i64>>>,
    ) -> impl Fn(&str, &Params) -> Result<Value, SasError> + Send + Sync + 'static {
        move |_, q| {
            let (page, size) = (num(q, "CurrentPage"), num(q, "PageSize"));
            let rows = rows.lock().unwrap();
            let items: Vec<Value> = rows
                .iter()
                .skip(((page - 1) * size) as usize)
                .take(size as usize)
                .map(|id| json!({"Id": id, "LastTimeStamp": 10_000 - id}))
                .collect();
            Ok(json!({
                "CurrentPage": page, "PageSize": size, "TotalCount": rows.len(), "SuspEvents": items
            }))
        }
    }

    async fn read_all(w: &mut Walker<'_, Fake, SuspEvent>, into: &mut BTreeSet<i64>) {
        while let Some(p) = w.next_page().await.unwrap() {
            into.extend(
                p.items
                    .iter()
                    .map(|i| i.id.as_deref().unwrap().parse::<i64>().unwrap()),
            );
        }
    }

    fn pages_asked(fake: &Fake) -> Vec<i64> {
        fake.calls()
            .iter()
            .map(|c| num(&c.1, "CurrentPage"))
            .collect()
    }

    #[tokio::test]
    async fn a_resumed_walk_backs_up_past_records_that_left_the_listing_and_skips_nothing() {
        let rows = std::sync::Arc::new(Mutex::new((0..1000).collect::<Vec<i64>>()));
        let mut read = BTreeSet::new();
        let fake = Fake::new(3, served(rows.clone()));
        let mut first = alerts_walker(&fake, &AlertQuery::default());
        read_all(&mut first, &mut read).await;
        assert!(matches!(first.end(), Some(WalkEnd::Capped(_))));
        let (page, cut) = first.position().unwrap();
        assert_eq!((page, cut), (3, 10_000 - 299));
        // The 250 newest leave the listing (handled): the unread move up two and a half pages,
        // past where the walk resumes.
        rows.lock().unwrap().drain(..250);
        let fake = Fake::new(100, served(rows.clone()));
        let mut second = alerts_walker(&fake, &AlertQuery::default()).resume(page, cut);
        read_all(&mut second, &mut read).await;
        assert_eq!(second.end(), Some(&WalkEnd::Finished));
        assert_eq!(
            read,
            (0..1000).collect::<BTreeSet<i64>>(),
            "nothing skipped"
        );
        // Pages 3 and 2 now start below the cut; page 1 does not: the walk goes on from there.
        assert_eq!(pages_asked(&fake), [3, 2, 1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[tokio::test]
    async fn records_leaving_the_listing_mid_walk_move_none_past_it() {
        let rows = std::sync::Arc::new(Mutex::new((0..1000).collect::<Vec<i64>>()));
        let fake = Fake::new(100, served(rows.clone()));
        let mut w = alerts_walker(&fake, &AlertQuery::default());
        let mut read = BTreeSet::new();
        let mut pages = 0;
        while let Some(p) = w.next_page().await.unwrap() {
            read.extend(
                p.items
                    .iter()
                    .map(|i| i.id.as_deref().unwrap().parse::<i64>().unwrap()),
            );
            pages += 1;
            // After the third page read, 150 alerts already read are handled: the rest move up
            // a page and a half. After the seventh, 20 more.
            match pages {
                3 => drop(rows.lock().unwrap().drain(..150)),
                7 => drop(rows.lock().unwrap().drain(..20)),
                _ => {}
            }
        }
        assert_eq!(w.end(), Some(&WalkEnd::Finished));
        assert_eq!(
            read,
            (0..1000).collect::<BTreeSet<i64>>(),
            "nothing skipped"
        );
        // Page 4 showed the first shrink: back to page 2 (where 300.. now are) and forward
        // again, page 4 read again without being taken for a repeat; page 5 showed the
        // second: page 4 again.
        assert_eq!(
            pages_asked(&fake),
            [1, 2, 3, 4, 2, 3, 4, 5, 4, 5, 6, 7, 8, 9]
        );
    }

    #[tokio::test]
    async fn a_resumed_walk_reads_its_overlap_page_beyond_the_cap_so_it_always_progresses() {
        let rows = std::sync::Arc::new(Mutex::new((0..500).collect::<Vec<i64>>()));
        let mut read = BTreeSet::new();
        let mut at: Option<(u32, i64)> = None;
        for walk in 1..=20 {
            let fake = Fake::new(1, served(rows.clone()));
            let mut w = alerts_walker(&fake, &AlertQuery::default());
            if let Some((page, cut)) = at {
                w = w.resume(page, cut);
            }
            // New alerts keep arriving at the top: the walk reads some again, and goes on.
            rows.lock().unwrap().insert(0, -walk);
            read_all(&mut w, &mut read).await;
            if w.end() == Some(&WalkEnd::Finished) {
                assert_eq!(walk, 6, "one page further each walk");
                break;
            }
            assert!(matches!(w.end(), Some(WalkEnd::Capped(_))), "walk {walk}");
            at = w.position();
            assert_eq!(at.map(|a| a.0), Some(walk as u32), "walk {walk}");
        }
        assert!((0..500).all(|id| read.contains(&id)), "every record read");
    }

    #[tokio::test]
    async fn max_pages_is_enforced() {
        let fake = Fake::new(3, numbered("InterceptionHistoryList", 1000, 100, false));
        let err = list_firewall(&fake, &FirewallQuery::default())
            .await
            .unwrap_err();
        match err {
            SasError::TooManyPages {
                action,
                pages,
                seen,
                total,
            } => {
                assert_eq!(action, "ListInterceptionHistory");
                assert_eq!((pages, seen, total), (3, 300, 1000));
            }
            other => panic!("unexpected {other}"),
        }
        assert_eq!(fake.calls().len(), 3);
    }

    #[tokio::test]
    async fn a_capped_page_size_still_pages_fully() {
        let fake = Fake::new(50, numbered("VulRecords", 45, 20, false));
        let q = VulQuery {
            types: vec![VulType::Cve],
            ..VulQuery::default()
        };
        let listing = list_vulnerabilities(&fake, &q).await.unwrap();
        assert_eq!(listing.items.len(), 45);
        assert_eq!(listing.pages, 3);
    }

    #[tokio::test]
    async fn errors_end_the_listing_after_one_attempt() {
        let fake = Fake::new(50, |_, q| {
            if q.get("CurrentPage") == Some("2") {
                Err(SasError::Transport {
                    action: "DescribeSuspEvents".into(),
                    endpoint: "https://x".into(),
                    reason: "reset".into(),
                    timeout: false,
                })
            } else {
                numbered("SuspEvents", 300, 100, false)("DescribeSuspEvents", q)
            }
        });
        let err = list_alerts(&fake, &AlertQuery::default())
            .await
            .unwrap_err();
        assert!(matches!(err, SasError::Transport { .. }));
        assert_eq!(fake.calls().len(), 2);
    }

    #[test]
    fn vul_requests_per_type() {
        let q = VulQuery {
            cluster_id: Some("c1".into()),
            ..VulQuery::default()
        };
        let cve = vul_request(&q, VulType::Cve, "en");
        assert_eq!(
            cve.pairs(),
            Params::from_iter([
                ("Type", "cve"),
                ("Lang", "en"),
                ("ClusterId", "c1"),
                ("Dealed", "n")
            ])
            .pairs()
        );
        let app = vul_request(&q, VulType::AppSca, "en");
        assert_eq!(app.get("Type"), Some("app"));
        assert_eq!(app.get("AttachTypes"), Some("sca"));
        let sca = vul_request(&q, VulType::Sca, "en");
        assert_eq!(sca.get("Type"), Some("sca"));
        assert_eq!(sca.get("AttachTypes"), None);
        let q = VulQuery {
            status_list: vec![1, 2, 3],
            dealed: Some(Dealed::Handled),
            necessity: vec!["asap".into()],
            ..VulQuery::default()
        };
        let by_status = vul_request(&q, VulType::Cve, "en");
        assert_eq!(by_status.get("StatusList"), Some("1,2,3"));
        assert_eq!(by_status.get("Dealed"), None);
        assert_eq!(by_status.get("Necessity"), Some("asap"));
        let q = VulQuery {
            dealed: Some(Dealed::Handled),
            ..VulQuery::default()
        };
        assert_eq!(vul_request(&q, VulType::Cve, "en").get("Dealed"), Some("y"));
        assert_eq!("app+sca".parse::<VulType>(), Ok(VulType::AppSca));
        assert_eq!(
            "app".parse::<VulType>(),
            Ok(VulType::AppSca),
            "AttachTypes is required"
        );
        assert_eq!(" CVE ".parse::<VulType>(), Ok(VulType::Cve));
        assert!("nope".parse::<VulType>().is_err());
    }

    #[tokio::test]
    async fn vulnerabilities_walk_every_type_and_merge() {
        let fake = Fake::new(50, |_, q| {
            let ty = q.get("Type").unwrap().to_string();
            let items = match ty.as_str() {
                "cve" => vec![json!({"PrimaryId": 1}), json!({"PrimaryId": 2})],
                _ => vec![json!({"PrimaryId": 2}), json!({"PrimaryId": 3})],
            };
            Ok(json!({"CurrentPage": 1, "PageSize": 100, "TotalCount": 2, "VulRecords": items}))
        });
        let listing = list_vulnerabilities(&fake, &VulQuery::default())
            .await
            .unwrap();
        let ids: Vec<_> = listing.items.iter().map(|i| i.primary_id.clone()).collect();
        assert_eq!(
            ids,
            vec![Some("1".into()), Some("2".into()), Some("3".into())]
        );
        assert_eq!(listing.pages, 2);
        assert_eq!(listing.total_count, Some(4));
        let types: Vec<_> = fake
            .calls()
            .iter()
            .map(|(_, q, f)| {
                assert!(f.is_none());
                (
                    q.get("Type").unwrap().to_string(),
                    q.get("AttachTypes").map(str::to_string),
                )
            })
            .collect();
        assert_eq!(
            types,
            vec![("cve".into(), None), ("app".into(), Some("sca".into()))]
        );
    }

    #[tokio::test]
    async fn a_lookup_by_ids_asks_in_chunks_of_50_per_type_and_keeps_only_what_it_asked_for() {
        let fake = Fake::new(50, |_, q| {
            let ids: Vec<i64> = q
                .get("Ids")
                .unwrap()
                .split(',')
                .map(|s| s.parse().unwrap())
                .collect();
            assert!(ids.len() <= MAX_VUL_IDS, "{} ids", ids.len());
            // Every asked id answers, plus one record nobody asked for (a server ignoring
            // `Ids`), on type `cve` only.
            let mut items: Vec<Value> = match q.get("Type") {
                Some("cve") => ids
                    .iter()
                    .map(|id| json!({"PrimaryId": id, "Status": 7}))
                    .collect(),
                _ => Vec::new(),
            };
            items.push(json!({"PrimaryId": 999_999, "Status": 7}));
            Ok(
                json!({"CurrentPage": 1, "PageSize": 100, "TotalCount": items.len(), "VulRecords": items}),
            )
        });
        let q = VulQuery {
            status_list: crate::sas::normalise::VUL_RESOLVED_STATUSES.to_vec(),
            dealed: None,
            ..VulQuery::default()
        };
        // 120 distinct ids, given unsorted and with a repeat.
        let mut ids: Vec<String> = (1..=120).rev().map(|n: i64| n.to_string()).collect();
        ids.push("7".into());
        let listing = lookup_vulnerabilities(&fake, &q, &ids).await.unwrap();
        let mut got: Vec<i64> = listing
            .items
            .iter()
            .filter_map(|i| i.primary_id.as_deref()?.parse::<i64>().ok())
            .collect();
        got.sort_unstable();
        assert_eq!(got, (1..=120).collect::<Vec<_>>());
        let calls = fake.calls();
        // Two types × three chunks (50, 50, 20).
        assert_eq!(calls.len(), 6);
        let chunks: Vec<(String, usize)> = calls
            .iter()
            .map(|(action, q, _)| {
                assert_eq!(action, "DescribeVulList");
                assert_eq!(q.get("StatusList"), Some("7,8,10,20"));
                assert_eq!(q.get("Dealed"), None);
                assert_eq!(q.get("ClusterId"), None);
                (
                    q.get("Type").unwrap().to_string(),
                    q.get("Ids").unwrap().split(',').count(),
                )
            })
            .collect();
        assert_eq!(
            chunks,
            [
                ("cve", 50),
                ("cve", 50),
                ("cve", 20),
                ("app", 50),
                ("app", 50),
                ("app", 20)
            ]
            .map(|(t, n)| (t.to_string(), n))
        );
        assert_eq!(calls[0].1.get("Ids").unwrap().split(',').next(), Some("1"));

        let none = Fake::new(50, |_, _| panic!("no ids, no call"));
        let empty = lookup_vulnerabilities(&none, &q, &[]).await.unwrap();
        assert!(empty.items.is_empty());
    }

    #[tokio::test]
    async fn vulnerabilities_by_next_token() {
        let fake = Fake::new(50, |_, q| {
            assert_eq!(q.get("UseNextToken"), Some("true"));
            assert_eq!(q.get("CurrentPage"), None);
            Ok(match q.get("NextToken") {
                None => json!({"NextToken": "t2", "VulRecords": [{"PrimaryId": 1}]}),
                Some("t2") => json!({"NextToken": "", "VulRecords": [{"PrimaryId": 2}]}),
                Some(other) => panic!("unexpected token {other}"),
            })
        });
        let q = VulQuery {
            types: vec![VulType::Cve],
            use_next_token: true,
            ..VulQuery::default()
        };
        let listing = list_vulnerabilities(&fake, &q).await.unwrap();
        assert_eq!(listing.items.len(), 2);
        assert_eq!(listing.pages, 2);

        // A token that never changes is a loop, not more data.
        let stuck = Fake::new(50, |_, q| {
            let n = if q.get("NextToken").is_some() { 2 } else { 1 };
            Ok(json!({"NextToken": "same", "VulRecords": [{"PrimaryId": n}]}))
        });
        let listing = list_vulnerabilities(&stuck, &q).await.unwrap();
        assert!(listing.stopped_on_repeat);
        assert_eq!(stuck.calls().len(), 2);
    }

    #[test]
    fn firewall_request_uses_epoch_ms_and_flat_types() {
        let q = FirewallQuery {
            cluster_id: Some("c1".into()),
            start: Some(datetime!(2024-05-20 00:00:00 UTC)),
            end: Some(datetime!(2024-05-20 00:00:01.5 UTC)),
            interception_types: vec![1, 2],
            ..FirewallQuery::default()
        };
        let p = firewall_request(&q, "en");
        assert_eq!(
            p.pairs(),
            Params::from_iter([
                ("Lang", "en"),
                ("ClusterId", "c1"),
                ("StartTime", "1716163200000"),
                ("EndTime", "1716163201500"),
                ("InterceptionTypes.1", "1"),
                ("InterceptionTypes.2", "2"),
            ])
            .pairs()
        );
    }

    #[tokio::test]
    async fn firewall_pages_with_page_info() {
        let fake = Fake::new(50, |_, q| {
            let page = num(q, "CurrentPage");
            let items: Vec<Value> = (0..if page == 1 { 2 } else { 1 })
                .map(|i| json!({"Id": page * 10 + i}))
                .collect();
            Ok(json!({
                "PageInfo": {"CurrrentPage": page, "PageSize": 2, "TotalCount": 3, "Count": items.len()},
                "InterceptionHistoryList": items
            }))
        });
        let q = FirewallQuery {
            page_size: 2,
            ..FirewallQuery::default()
        };
        let listing = list_firewall(&fake, &q).await.unwrap();
        let ids: Vec<_> = listing.items.iter().map(|i| i.id.clone()).collect();
        assert_eq!(
            ids,
            vec![Some("10".into()), Some("11".into()), Some("20".into())]
        );
    }

    fn baseline_fake() -> Fake {
        Fake::new(50, |action, q| {
            Ok(match action {
                "DescribeCheckWarningSummary" => json!({
                    "CurrentPage": 1, "PageSize": 100, "TotalCount": 3,
                    "WarningSummarys": [
                        {"RiskId": 120, "RiskName": "k8s", "Level": "high"},
                        {"RiskName": "no id"},
                        {"RiskId": 88, "RiskName": "os", "Level": "medium"}
                    ]
                }),
                "DescribeWarningMachines" => {
                    assert_eq!(q.get("ClusterId"), Some("c1"));
                    json!({"TotalCount": 2, "WarningMachines": [
                        {"Uuid": "u1", "InstanceName": "n1"},
                        {"Uuid": "", "InstanceName": "no uuid"},
                        {"Uuid": "u2", "ContainerName": "redis-0"}
                    ]})
                }
                "DescribeCheckWarnings" => {
                    let risk = num(q, "RiskId");
                    let uuid = q.get("Uuid").unwrap();
                    json!({"TotalCount": 1, "CheckWarnings": [{
                        "CheckWarningId": format!("{risk}{}", &uuid[1..]),
                        "CheckId": 3000 + risk,
                        "Item": "check", "Status": 1, "Uuid": uuid
                    }]})
                }
                "DescribeCheckWarningDetail" => json!({
                    "CheckId": 1, "Description": format!("d{}", q.get("CheckWarningId").unwrap()),
                    "Advice": "fix it"
                }),
                other => panic!("unexpected action {other}"),
            })
        })
    }

    #[tokio::test]
    async fn baseline_walk_assembles_items_and_caches_details_per_check() {
        let fake = baseline_fake();
        let q = BaselineQuery {
            cluster_id: Some("c1".into()),
            ..BaselineQuery::default()
        };
        let items = list_baseline(&fake, &q).await.unwrap().items;
        let got: Vec<_> = items
            .iter()
            .map(|i| {
                (
                    i.risk.risk_id.as_deref().unwrap().parse::<i64>().unwrap(),
                    i.machine.uuid.clone(),
                    i.check
                        .check_warning_id
                        .as_deref()
                        .unwrap()
                        .parse::<i64>()
                        .unwrap(),
                    i.detail.as_ref().unwrap().description.clone(),
                )
            })
            .collect();
        // Details are cached per CheckId: the second asset of a risk reuses the first's.
        assert_eq!(
            got,
            vec![
                (120, "u1".into(), 1201, "d1201".into()),
                (120, "u2".into(), 1202, "d1201".into()),
                (88, "u1".into(), 881, "d881".into()),
                (88, "u2".into(), 882, "d881".into()),
            ]
        );
        let calls = fake.calls();
        let count = |a: &str| calls.iter().filter(|(x, _, _)| x == a).count();
        assert_eq!(count("DescribeCheckWarningSummary"), 1);
        assert_eq!(count("DescribeWarningMachines"), 2);
        // u2's row names a container: its checks are listed unscoped and scoped to it, and the
        // check both answers hold is kept once.
        assert_eq!(count("DescribeCheckWarnings"), 6);
        assert_eq!(count("DescribeCheckWarningDetail"), 2);
        let u2_scopes: Vec<Option<&str>> = calls
            .iter()
            .filter(|(a, q, _)| a == "DescribeCheckWarnings" && q.get("Uuid") == Some("u2"))
            .map(|(_, q, _)| q.get("ContainerName"))
            .collect();
        assert_eq!(
            u2_scopes,
            vec![None, Some("redis-0"), None, Some("redis-0")]
        );
        let summary = &calls[0].1;
        assert_eq!(summary.get("ClusterId"), Some("c1"));
        assert_eq!(summary.get("CurrentPage"), Some("1"));

        let no_details = list_baseline(
            &baseline_fake(),
            &BaselineQuery {
                fetch_details: false,
                ..q
            },
        )
        .await
        .unwrap();
        assert!(no_details.items.iter().all(|i| i.detail.is_none()));
    }

    /// A book of pair listings: `(risk, uuid, container) → (counts, listed at)`.
    struct Book(HashMap<(String, String, String), (String, i64)>);

    impl crate::sas::pairs::PairBook for Book {
        fn recall(
            &self,
            cluster: Option<&str>,
            pair: &PairKey,
        ) -> Option<crate::sas::pairs::PairListed> {
            assert_eq!(cluster, Some("c1"));
            let k = (
                pair.risk_id.clone(),
                pair.uuid.clone(),
                pair.container.clone(),
            );
            self.0
                .get(&k)
                .map(|(counts, at)| crate::sas::pairs::PairListed {
                    counts: counts.clone(),
                    listed_at_ms: *at,
                    kept: vec![format!("fp-{}-{}", pair.risk_id, pair.uuid)],
                })
        }
    }

    /// Risk 120 on `machines` hosts `h0`, `h1`, … (one failing check each, `h1` with `h1_high`
    /// high ones) and, on `h0`, a second row naming container `redis-0` whose scoped listing
    /// returns the check the unscoped one of `h0` did.
    fn pairs_fake(machines: usize, h1_high: i64) -> Fake {
        Fake::new(50, move |action, q| {
            Ok(match action {
                "DescribeCheckWarningSummary" => json!({
                    "TotalCount": 1,
                    "WarningSummarys": [{"RiskId": 120, "RiskName": "k8s", "Level": "high"}]
                }),
                "DescribeWarningMachines" => {
                    let page = num(q, "CurrentPage") as usize;
                    let size = num(q, "PageSize") as usize;
                    let mut rows: Vec<Value> = (0..machines)
                        .map(|i| {
                            let high = if i == 1 { h1_high } else { 1 };
                            json!({"Uuid": format!("h{i}"), "HighWarningCount": high, "PassCount": 9, "Status": 1})
                        })
                        .collect();
                    rows.push(json!({"Uuid": "h0", "ContainerName": "redis-0", "HighWarningCount": 1, "Status": 1}));
                    let total = rows.len();
                    let rows: Vec<Value> = rows
                        .into_iter()
                        .skip((page - 1) * size)
                        .take(size)
                        .collect();
                    json!({"TotalCount": total, "WarningMachines": rows})
                }
                "DescribeCheckWarnings" => {
                    let uuid = q.get("Uuid").unwrap();
                    json!({"TotalCount": 1, "CheckWarnings": [{
                        "CheckWarningId": format!("7{}", &uuid[1..]), "CheckId": 1,
                        "Item": "check", "Status": 1, "Uuid": uuid
                    }]})
                }
                other => panic!("unexpected action {other}"),
            })
        })
    }

    fn c1_without_details() -> BaselineQuery {
        BaselineQuery {
            cluster_id: Some("c1".into()),
            fetch_details: false,
            ..BaselineQuery::default()
        }
    }

    async fn walk_all(walker: &mut BaselineWalker<'_, Fake>) -> Vec<BaselineListing> {
        let mut out = Vec::new();
        while let Some(b) = walker.next_batch().await.unwrap() {
            out.push(b);
        }
        out
    }

    #[tokio::test]
    async fn a_baseline_walk_skips_the_pairs_whose_counts_are_unchanged() {
        let q = c1_without_details();
        let now = 10_000_000;
        let pair = |uuid: &str, container: &str| {
            ("120".to_string(), uuid.to_string(), container.to_string())
        };
        // h0 and h2 were listed with today's counts, h1 with one high warning fewer, h3 too
        // long ago; h4 is new; h0/redis-0 too.
        let book = Book(HashMap::from([
            (pair("h0", ""), ("1/0/0/9/1".to_string(), now - 1_000)),
            (pair("h1", ""), ("1/0/0/9/1".to_string(), now - 1_000)),
            (pair("h2", ""), ("1/0/0/9/1".to_string(), now - 1_000)),
            (
                pair("h3", ""),
                ("1/0/0/9/1".to_string(), now - 25 * 3600 * 1000),
            ),
        ]));
        let skip = PairSkip {
            book: std::sync::Arc::new(book),
            now_ms: now,
        };
        let fake = pairs_fake(5, 2);
        let mut walker = BaselineWalker::new(&fake, &q).skip_unchanged(skip.clone());
        let batches = walk_all(&mut walker).await;
        let listed_uuids: Vec<String> = fake
            .calls()
            .iter()
            .filter(|(a, _, _)| a == "DescribeCheckWarnings")
            .map(|(_, q, _)| {
                format!(
                    "{}{}",
                    q.get("Uuid").unwrap(),
                    q.get("ContainerName")
                        .map(|c| format!("/{c}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        // Unchanged h0 and h2 are not listed; h0's container row is new, so listed (unscoped
        // too: h0's unscoped listing was skipped).
        assert_eq!(listed_uuids, ["h1", "h3", "h4", "h0", "h0/redis-0"]);
        let listed: Vec<(String, String, bool)> = batches
            .iter()
            .filter_map(|b| b.pair.as_ref())
            .map(|p| (p.key.uuid.clone(), p.counts.clone(), p.whole))
            .collect();
        assert_eq!(
            listed,
            [
                ("h1".into(), "2/0/0/9/1".into(), true),
                ("h3".into(), "1/0/0/9/1".into(), true),
                ("h4".into(), "1/0/0/9/1".into(), true),
                ("h0".into(), "1/0/0/0/1".into(), true),
            ]
        );
        let skipped: Vec<(String, Vec<String>)> = batches
            .iter()
            .flat_map(|b| &b.skipped)
            .map(|s| (s.key.uuid.clone(), s.kept.clone()))
            .collect();
        assert_eq!(
            skipped,
            [
                ("h0".to_string(), vec!["fp-120-h0".to_string()]),
                ("h2".to_string(), vec!["fp-120-h2".to_string()]),
            ]
        );
        // Each listed pair's batch holds its own check results; a skipped pair rides along
        // with the next listed one.
        assert_eq!(batches.iter().map(|b| b.items.len()).sum::<usize>(), 4);
        assert_eq!(batches[0].skipped.len(), 1, "h0 before h1");

        // Without a book every pair is listed; the container row's scoped listing returns the
        // check h0's unscoped listing yielded: its batch is not the pair's whole.
        let fake = pairs_fake(5, 2);
        let batches = walk_all(&mut BaselineWalker::new(&fake, &q)).await;
        let whole: Vec<(String, bool)> = batches
            .iter()
            .filter_map(|b| b.pair.as_ref())
            .map(|p| (format!("{}/{}", p.key.uuid, p.key.container), p.whole))
            .collect();
        assert_eq!(whole.len(), 6);
        assert!(
            whole.contains(&("h0/redis-0".to_string(), false)),
            "{whole:?}"
        );
        assert_eq!(whole.iter().filter(|(_, w)| *w).count(), 5);
        assert!(batches.iter().all(|b| b.skipped.is_empty()));
    }

    #[tokio::test]
    async fn skipped_pairs_are_handed_out_a_bounded_batch_at_a_time() {
        let q = c1_without_details();
        let n = SKIPPED_PER_BATCH + 50;
        let book = Book(
            (0..n)
                .map(|i| {
                    (
                        ("120".to_string(), format!("h{i}"), String::new()),
                        ("1/0/0/9/1".to_string(), 0),
                    )
                })
                .chain([(
                    ("120".to_string(), "h0".to_string(), "redis-0".to_string()),
                    ("1/0/0/0/1".to_string(), 0),
                )])
                .collect(),
        );
        let skip = PairSkip {
            book: std::sync::Arc::new(book),
            now_ms: 1,
        };
        let fake = pairs_fake(n, 1);
        let batches = walk_all(&mut BaselineWalker::new(&fake, &q).skip_unchanged(skip)).await;
        let sizes: Vec<usize> = batches.iter().map(|b| b.skipped.len()).collect();
        assert_eq!(sizes, [SKIPPED_PER_BATCH, 51]);
        assert!(
            batches
                .iter()
                .all(|b| b.items.is_empty() && b.pair.is_none())
        );
        let calls = fake.calls();
        assert!(
            calls.iter().all(|(a, _, _)| a != "DescribeCheckWarnings"),
            "no pair listed"
        );
    }

    #[tokio::test]
    async fn statistics_probes_send_one_call_each() {
        let fake = Fake::new(50, |action, _| {
            Ok(match action {
                "GetClusterSuspEventStatistics" => {
                    json!({"SuspStatistics": {"Serious": 2, "Suspicious": "1", "Remind": 1}})
                }
                "DescribeClusterVulStatistics" => {
                    json!({"VulStat": {"AsapCount": "4", "LaterCount": "2", "NntfCount": "0"}})
                }
                "GetClusterCheckItemWarningStatistics" => {
                    json!({"Data": {"HighWarningCount": 4}})
                }
                "GetInterceptionSummary" => json!({"InterceptionSummary": {"RiskCountToday": 3}}),
                other => panic!("unexpected {other}"),
            })
        });
        assert_eq!(
            alert_statistics(&fake, "c1")
                .await
                .unwrap()
                .susp_statistics
                .suspicious,
            1
        );
        let v = vul_statistics(&fake, "c1", &[VulType::Cve, VulType::AppSca, VulType::Sca])
            .await
            .unwrap();
        assert_eq!(v.vul_stat.asap_count, 4);
        assert_eq!(
            baseline_statistics(&fake, "c1")
                .await
                .unwrap()
                .data
                .high_warning_count,
            4
        );
        assert_eq!(
            firewall_summary(&fake, "c1")
                .await
                .unwrap()
                .interception_summary
                .risk_count_today,
            3
        );
        let calls = fake.calls();
        assert_eq!(calls.len(), 4);
        assert_eq!(calls[0].1.get("From"), Some("sas"));
        assert_eq!(calls[1].1.get("Types"), Some("cve,app,sca"));
        assert!(calls.iter().all(|(_, q, f)| {
            q.get("ClusterId") == Some("c1") && f.is_none() && q.get("CurrentPage").is_none()
        }));
    }
}
