//! A configured Security Center source, connected: its credentials, its client, and reading
//! each domain as normalised [`Finding`]s — once per configured cluster, or account-wide.
//!
//! This is the seam between configuration and the Security Center side: [`SourceSettings`] is
//! the component's checked config (what `config` builds from a `[[source]]` table), and the
//! CLI's `check` and `findings` commands and the daemon's pollers read through a [`Source`].

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use serde_json::Value;
use time::OffsetDateTime;

use crate::credentials::CredentialsConfig;
use crate::credentials::env::Env;
use crate::credentials::{CredentialContext, CredentialHandle};
use crate::event::EventSwitches;
use crate::finding::{Domain, Finding};
use crate::record::GoneRule;
use crate::sas::api::{
    self, AlertQuery, BaselineQuery, BaselineWalker, Cut, Dealed, DetailCache, FirewallQuery,
    VulQuery, VulType, WalkEnd, Walker,
};
use crate::sas::client::{ClientSettings, SasClient};
use crate::sas::error::SasError;
use crate::sas::models::{
    InterceptionHistory, ListItem, Page, Quarantined, RecordId, SuspEvent, VulRecord,
    WarningSummary,
};
use crate::sas::normalise::{self, NormaliseContext};
use crate::sas::pairs::{ListedPair, PairSkip, SkippedPair};
use crate::sas::params::Params;

/// One checked `[[source]]`: what [`crate::config`] builds and a [`Source`] connects.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceSettings {
    /// Unique name.
    pub name: String,
    /// Region.
    pub region: String,
    /// ACK cluster ids (empty: the whole account).
    pub clusters: Vec<String>,
    /// Domains to read, in the canonical order.
    pub domains: Vec<Domain>,
    /// Vulnerability types.
    pub vulnerability_types: Vec<VulType>,
    /// Console base for links.
    pub console_base: String,
    /// Per domain, the URL template of a finding's own console page (`console_links`;
    /// [`crate::sas::normalise::own_link`]).
    pub console_links: std::collections::BTreeMap<Domain, String>,
    /// Transport settings (endpoint, signature, lang, timeouts, caps).
    pub client: ClientSettings,
    /// Credential provider config.
    pub credentials: CredentialsConfig,
    /// Enabled domains with their interval and events, in canonical order.
    pub polls: Vec<DomainPoll>,
    /// How far before the watermark windowed polls start.
    pub overlap: Duration,
    /// First-start behaviour.
    pub initial_sync: InitialSync,
    /// When a vulnerability or baseline finding that left the list is resolved as `gone`.
    pub gone: GoneRule,
    /// How alerts and firewall records are listed when `clusters` is set.
    pub window_listing: WindowListingScope,
}

impl SourceSettings {
    /// Whether alerts and firewall records are listed once for the account (always, without
    /// `clusters`), as [`SourceSettings::window_listing`] says.
    pub fn windows_account_wide(&self) -> bool {
        self.clusters.is_empty()
            || match self.window_listing {
                WindowListingScope::Auto => self.clusters.len() >= 2,
                WindowListingScope::Account => true,
                WindowListingScope::PerCluster => false,
            }
    }
}

/// Per-domain polling of a source: interval (`None` = off) and event switches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainPoll {
    /// The domain.
    pub domain: Domain,
    /// How often to poll.
    pub interval: Duration,
    /// Which events to emit.
    pub events: EventSwitches,
}

/// How a source with `clusters` lists its windowed domains (alerts, firewall).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowListingScope {
    /// Account-wide when two or more clusters are configured (then it costs one listing a
    /// poll instead of one per cluster), per cluster for one.
    #[default]
    Auto,
    /// One account-wide listing a poll, the records of other clusters dropped on arrival:
    /// fewer calls, unless the account's other clusters raise far more alerts than these.
    Account,
    /// One listing per configured cluster a poll.
    PerCluster,
}

/// How a first start treats findings that are already open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitialSync {
    /// Record them silently and send one summary event per source and domain.
    #[default]
    Baseline,
    /// Send every one of them.
    Notify,
}

/// Every vulnerability `Status` (contract §2.4: pending 1, 2, 3, 12; in progress 4, 5, 6; done
/// 7, 8, 9, 11; ignored 10; expired 20), to look a record up whatever its state.
pub const VUL_EVERY_STATUS: [i64; 14] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 20];

/// A source whose credentials resolved and whose client is built.
#[derive(Clone, Debug)]
pub struct Source {
    /// The checked settings it was built from.
    pub settings: SourceSettings,
    client: SasClient,
    credentials: CredentialHandle,
    /// Baseline check details, kept across sweeps ([`DetailCache`]).
    details: Arc<DetailCache>,
}

/// What one read of a domain saw.
#[derive(Clone, Debug, Default)]
pub struct Sweep {
    /// Every record read, normalised.
    pub findings: Vec<Finding>,
    /// Records that could not be read, each once. A snapshot sweep holding any is incomplete:
    /// a finding whose record is among them would look gone.
    pub quarantined: Vec<Quarantined>,
}

impl Sweep {
    fn quarantine(&mut self, records: Vec<Quarantined>) {
        Quarantined::add_each_once(&mut self.quarantined, records);
    }
}

/// What to read besides what is open now.
#[derive(Clone, Copy, Debug)]
pub struct ReadWindow {
    /// "Now", for the windows below.
    pub now: OffsetDateTime,
    /// Only pending alerts whose latest occurrence is at or after this time (`TimeStart`);
    /// `None` lists every pending alert.
    pub occurred_since: Option<OffsetDateTime>,
    /// Also read alerts handled since this time (`Dealed=Y`, by handling time), so resolutions
    /// are seen.
    pub handled_since: Option<OffsetDateTime>,
    /// Container-firewall records since this time (the API requires a window).
    pub firewall_since: OffsetDateTime,
}

impl ReadWindow {
    /// Open findings now, and firewall records of the last 24 hours.
    pub fn open_now(now: OffsetDateTime) -> Self {
        ReadWindow {
            now,
            occurred_since: None,
            handled_since: None,
            firewall_since: now - time::Duration::hours(24),
        }
    }
}

impl Source {
    /// Resolves credentials (fetching the first one for expiring providers) and builds the
    /// client. The error names the source and what failed.
    pub async fn connect(
        settings: SourceSettings,
        env: &dyn Env,
        ctx: &CredentialContext,
    ) -> Result<Source, String> {
        let credentials = CredentialHandle::from_config(&settings.credentials, env, ctx)
            .await
            .map_err(|e| format!("source {}: credentials: {e}", settings.name))?;
        let client = SasClient::new(settings.client.clone(), credentials.clone())
            .map_err(|e| format!("source {}: {e}", settings.name))?;
        Ok(Source {
            settings,
            client,
            credentials,
            details: Arc::default(),
        })
    }

    /// Which credential provider the source uses (`static_ak`, `rrsa`, ...).
    pub fn credential_provider(&self) -> Option<&'static str> {
        self.credentials.provider_name()
    }

    /// The refresher's progress when the source's credential expires and is refreshed (for
    /// the daemon's health); `None` for a static one.
    pub fn credential_status(
        &self,
    ) -> Option<tokio::sync::watch::Receiver<crate::credentials::RefreshStatus>> {
        self.credentials.refresh_status()
    }

    /// The Security Center client.
    pub fn client(&self) -> &SasClient {
        &self.client
    }

    /// The baseline check details this source's walks fetched and keep.
    pub fn details(&self) -> &DetailCache {
        &self.details
    }

    /// The configured clusters as filters, or one account-wide `None`.
    fn scopes(&self) -> Vec<Option<String>> {
        if self.settings.clusters.is_empty() {
            vec![None]
        } else {
            self.settings.clusters.iter().cloned().map(Some).collect()
        }
    }

    /// The listings of a windowed domain: one account-wide (`None`) — the records of clusters
    /// not configured are dropped as they arrive ([`Source::keeps`]) — or one per cluster, as
    /// [`SourceSettings::window_listing`] says.
    fn window_scopes(&self) -> Vec<Option<String>> {
        if self.settings.windows_account_wide() {
            vec![None]
        } else {
            self.scopes()
        }
    }

    /// Whether a finding listed under `scope` belongs to this source: everything a
    /// cluster's own listing returns, and from an account-wide listing of a source with
    /// `clusters`, what one of them raised.
    fn keeps(&self, scope: Option<&str>, f: &Finding) -> bool {
        scope.is_some()
            || self.settings.clusters.is_empty()
            || f.kubernetes
                .cluster_id
                .as_ref()
                .is_some_and(|c| self.settings.clusters.contains(c))
    }

    fn normalise_context(&self, cluster: Option<&str>) -> NormaliseContext {
        let mut ctx = NormaliseContext::new(&self.settings.name, &self.settings.region);
        ctx.console_base = self.settings.console_base.clone();
        ctx.console_links = self.settings.console_links.clone();
        ctx.cluster_id = cluster.map(str::to_string);
        ctx
    }

    /// Reads one domain completely and normalises every item; records that cannot be read are
    /// quarantined, not fatal. Built on [`Source::reader`], collecting every page: a listing the
    /// page cap stops is [`SasError::TooManyPages`] (a caller that wants every record gets all
    /// or an error). A finding listed twice (a vulnerability under two configured types) is
    /// kept once.
    pub async fn read(&self, domain: Domain, window: &ReadWindow) -> Result<Sweep, SasError> {
        let mut reader = self.reader(domain, window);
        let mut out = Sweep::default();
        let mut held: HashSet<String> = HashSet::new();
        while let Some(batch) = reader.next_batch().await? {
            out.quarantine(batch.quarantined);
            out.findings.extend(
                batch
                    .findings
                    .into_iter()
                    .filter(|f| held.insert(f.fingerprint.clone())),
            );
        }
        match reader.end().cuts.first() {
            Some(cut) => Err(cut.error()),
            None => Ok(out),
        }
    }

    /// Reads `domain` a page at a time ([`Reader::next_batch`]), in bounded memory: the poll's
    /// window (or snapshot) per configured cluster — or, for a windowed domain, account-wide
    /// ([`SourceSettings::window_listing`]) — then any [`Remainder`]s of earlier polls
    /// ([`Reader::resume`]).
    pub fn reader(&self, domain: Domain, window: &ReadWindow) -> Reader<'_> {
        let mut plans = VecDeque::new();
        let scopes = match domain {
            Domain::Alerts | Domain::Firewall => self.window_scopes(),
            Domain::Vulnerabilities | Domain::Baseline => self.scopes(),
        };
        for cluster in scopes {
            let mut plan = |what| {
                plans.push_back(Plan {
                    cluster: cluster.clone(),
                    what,
                    first_start: false,
                })
            };
            match domain {
                Domain::Alerts => {
                    plan(What::window(
                        WindowListing::PendingAlerts,
                        window.occurred_since.map(api::epoch_ms),
                        None,
                    ));
                    if let Some(since) = window.handled_since {
                        plan(What::window(
                            WindowListing::HandledAlerts,
                            Some(api::epoch_ms(since)),
                            None,
                        ));
                    }
                }
                Domain::Firewall => plan(What::window(
                    WindowListing::Firewall,
                    Some(api::epoch_ms(window.firewall_since)),
                    Some(api::epoch_ms(window.now)),
                )),
                Domain::Vulnerabilities => {
                    let q = VulQuery {
                        types: self.settings.vulnerability_types.clone(),
                        ..VulQuery::default()
                    };
                    for ty in api::vul_types(&q) {
                        plan(What::Vulns(ty));
                    }
                }
                Domain::Baseline => plan(What::Baseline),
            }
        }
        Reader {
            source: self,
            plans,
            current: None,
            end: ReadEnd {
                complete: true,
                ..ReadEnd::default()
            },
            fresh: Vec::new(),
            resumed: Vec::new(),
            pair_skip: None,
            past_failures: false,
            failed_in_a_row: 0,
            last_failed: None,
        }
    }

    /// The vulnerability record `id` (`PrimaryId`) in whatever state it is, among the
    /// configured types; `None` when Security Center returns none.
    pub async fn vulnerability_record(
        &self,
        id: &RecordId,
    ) -> Result<Option<crate::sas::models::VulRecord>, SasError> {
        let q = VulQuery {
            types: self.settings.vulnerability_types.clone(),
            dealed: None,
            status_list: VUL_EVERY_STATUS.to_vec(),
            ..VulQuery::default()
        };
        let listing =
            api::lookup_vulnerabilities(&self.client, &q, std::slice::from_ref(id)).await?;
        Ok(listing.items.into_iter().next().map(|i| i.typed))
    }

    /// Looks up, by `PrimaryId`, vulnerability records that left the pending list, among those
    /// Security Center closed with a reason (`StatusList` = [`crate::sas::normalise::VUL_RESOLVED_STATUSES`]:
    /// fixed, ignored, expired), for every configured type, and normalises them as the listing
    /// does. `wanted` maps each id to the cluster its finding was seen in (the normalisation
    /// hint for records without a cluster ID). Ids not returned were not closed with a reason
    /// (deleted, still pending, rolled back); the caller keeps them `gone`.
    pub async fn lookup_resolved_vulnerabilities(
        &self,
        wanted: &BTreeMap<RecordId, Option<String>>,
    ) -> Result<Vec<Finding>, SasError> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let q = VulQuery {
            types: self.settings.vulnerability_types.clone(),
            dealed: None,
            status_list: crate::sas::normalise::VUL_RESOLVED_STATUSES.to_vec(),
            ..VulQuery::default()
        };
        let ids: Vec<RecordId> = wanted.keys().cloned().collect();
        let listing = api::lookup_vulnerabilities(&self.client, &q, &ids).await?;
        if !listing.quarantined.is_empty() {
            tracing::warn!(
                source = %self.settings.name,
                records = listing.quarantined.len(),
                "Looking up vulnerabilities that left the list, Security Center sent records that cannot be read; those stay gone."
            );
        }
        Ok(listing
            .items
            .into_iter()
            .map(|i| {
                let cluster = i
                    .primary_id
                    .as_ref()
                    .or(i.extend_content_json.primary_id.as_ref())
                    .and_then(|id| wanted.get(id).cloned().flatten());
                crate::sas::normalise::normalise_vulnerability(
                    &self.normalise_context(cluster.as_deref()),
                    i,
                )
            })
            .collect())
    }

    /// A cheap summary of a snapshot domain — per configured cluster, the counts of
    /// `DescribeClusterVulStatistics` (vulnerabilities) or `GetClusterCheckItemWarningStatistics`
    /// (baseline) — that changes when the list changes in most ways. `None` where no probe
    /// exists: windowed domains, and sources without configured clusters (the statistics
    /// actions are per cluster).
    pub async fn change_probe(&self, domain: Domain) -> Result<Option<String>, SasError> {
        if self.settings.clusters.is_empty() {
            return Ok(None);
        }
        let mut parts = Vec::new();
        for cluster in &self.settings.clusters {
            match domain {
                Domain::Vulnerabilities => {
                    let s = api::vul_statistics(
                        &self.client,
                        cluster,
                        &self.settings.vulnerability_types,
                    )
                    .await?
                    .vul_stat;
                    parts.push(format!(
                        "{cluster}:{}/{}/{}",
                        s.asap_count, s.later_count, s.nntf_count
                    ));
                }
                Domain::Baseline => {
                    let s = api::baseline_statistics(&self.client, cluster).await?.data;
                    parts.push(format!(
                        "{cluster}:{}/{}/{}",
                        s.high_warning_count, s.medium_warning_count, s.low_warning_count
                    ));
                }
                Domain::Alerts | Domain::Firewall => return Ok(None),
            }
        }
        Ok(Some(parts.join(";")))
    }

    /// One cheap signed call per configured cluster (one page of one item) that proves the
    /// source can read `domain`, and the number of open items Security Center reports:
    /// alerts pending, vulnerability records unfixed (every configured type), baseline risks
    /// with failing checks, firewall records of the last 24 hours.
    pub async fn probe(&self, domain: Domain, now: OffsetDateTime) -> Result<i64, SasError> {
        let lang = self.client.lang().to_string();
        let mut total = 0;
        for cluster in self.scopes() {
            total += match domain {
                Domain::Alerts => {
                    let q = AlertQuery {
                        cluster_id: cluster,
                        dealed: Some(Dealed::Pending),
                        ..AlertQuery::default()
                    };
                    let (query, form) = api::alerts_request(&q, &lang);
                    self.count::<SuspEvent>("DescribeSuspEvents", query, Some(form))
                        .await?
                }
                Domain::Vulnerabilities => {
                    let q = VulQuery {
                        cluster_id: cluster,
                        dealed: Some(Dealed::Pending),
                        ..VulQuery::default()
                    };
                    let mut n = 0;
                    for ty in &self.settings.vulnerability_types {
                        let query = api::vul_request(&q, *ty, &lang);
                        n += self
                            .count::<VulRecord>("DescribeVulList", query, None)
                            .await?;
                    }
                    n
                }
                Domain::Baseline => {
                    let q = BaselineQuery {
                        cluster_id: cluster,
                        ..BaselineQuery::default()
                    };
                    let query = api::warning_summary_request(&q, &lang);
                    self.count::<WarningSummary>("DescribeCheckWarningSummary", query, None)
                        .await?
                }
                Domain::Firewall => {
                    let q = FirewallQuery {
                        cluster_id: cluster,
                        start: Some(now - time::Duration::hours(24)),
                        end: Some(now),
                        ..FirewallQuery::default()
                    };
                    let query = api::firewall_request(&q, &lang);
                    self.count::<InterceptionHistory>("ListInterceptionHistory", query, None)
                        .await?
                }
            };
        }
        Ok(total)
    }

    async fn count<T: ListItem>(
        &self,
        action: &str,
        mut query: Params,
        form: Option<Params>,
    ) -> Result<i64, SasError> {
        query.set("CurrentPage", 1).set("PageSize", 1);
        let body: Value = self.client.call(action, &query, form.as_ref()).await?;
        let page = Page::<T>::from_value(body).map_err(|e| SasError::Malformed {
            action: action.to_string(),
            status: 200,
            request_id: "unknown".into(),
            reason: e.to_string(),
        })?;
        Ok(page.meta.total_count.unwrap_or(page.received() as i64))
    }
}

// ---------------------------------------------------------------------------------------------
// Reading a page at a time

/// A resumable listing of a windowed domain: sorted newest first by a time key, so the part a
/// poll could not read within the page cap is the older part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowListing {
    /// Pending alerts by latest occurrence (`DescribeSuspEvents`, `Dealed=N`, `TimeStart`).
    PendingAlerts,
    /// Alerts handled since the window's start, by handling time (`Dealed=Y`).
    HandledAlerts,
    /// Container-firewall records by latest occurrence (`ListInterceptionHistory`).
    Firewall,
}

impl WindowListing {
    /// The stable name kept in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            WindowListing::PendingAlerts => "pending_alerts",
            WindowListing::HandledAlerts => "handled_alerts",
            WindowListing::Firewall => "firewall",
        }
    }

    /// The listing named `s` ([`WindowListing::as_str`]).
    pub fn parse(s: &str) -> Option<Self> {
        [
            WindowListing::PendingAlerts,
            WindowListing::HandledAlerts,
            WindowListing::Firewall,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }
}

/// The unread, older part of a windowed listing that the page cap stopped. A later poll
/// resumes the same query where the walk stopped ([`Walker::resume`]: at the last page read,
/// backing up while records dropped since moved later ones up), until it is read to the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remainder {
    /// The cluster filter of the listing (`None`: account-wide).
    pub cluster: Option<String>,
    /// Which listing.
    pub listing: WindowListing,
    /// The window's start (unix ms): `TimeStart`, `StartTime`, or how far back the handled
    /// listing reads; `None`: no lower bound (a first start lists every pending alert).
    pub since_ms: Option<i64>,
    /// The window's end (unix ms) where the query has one (firewall `EndTime`).
    pub until_ms: Option<i64>,
    /// The last page read.
    pub page: u32,
    /// The oldest time key read (unix ms).
    pub cut_ms: i64,
    /// Part of a first start's window (read as `initial_sync` says).
    pub first_start: bool,
}

impl Remainder {
    /// One remainder for the same listing from `older` (a resumed walk) and `newer` (the
    /// poll's own window, cut again): the newer query is a prefix of the older one widened to
    /// the newer end (the records from the newer start up are the same, newest first), so
    /// resuming the widened query at the newer position reads what both left unread (and
    /// again what lies between them).
    pub fn merge(older: Remainder, newer: Remainder) -> Remainder {
        Remainder {
            since_ms: match (older.since_ms, newer.since_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                _ => None,
            },
            first_start: older.first_start && newer.first_start,
            ..newer
        }
    }
}

/// One page of a domain, normalised.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// The findings of the page.
    pub findings: Vec<Finding>,
    /// Its records that could not be read.
    pub quarantined: Vec<Quarantined>,
    /// The page belongs to a first start's window (the poll's own, or a remainder of one).
    pub first_start: bool,
    /// Baseline: the risk × asset pairs the page covers.
    pub pairs: PagePairs,
}

/// The baseline risk × asset pairs one page covers ([`crate::sas::pairs`]).
#[derive(Clone, Debug, Default)]
pub struct PagePairs {
    /// The scope of the walk (`None`: account-wide).
    pub cluster: Option<String>,
    /// The pair whose check results the page's findings are, when it listed one.
    pub listed: Option<ListedPair>,
    /// Pairs left unlisted because their counts are unchanged ([`Reader::skip_unchanged_pairs`]).
    pub skipped: Vec<SkippedPair>,
}

impl Batch {
    fn fill<I>(
        &mut self,
        quarantined: Vec<Quarantined>,
        items: Vec<I>,
        normalise: impl Fn(I) -> Finding,
    ) {
        self.quarantined = quarantined;
        self.findings = items.into_iter().map(normalise).collect();
    }
}

/// How a read ended.
#[derive(Debug, Default)]
pub struct ReadEnd {
    /// Every listing was read to its end: none was stopped by the page cap or by a server
    /// repeating pages. A snapshot read that is not complete resolves nothing.
    pub complete: bool,
    /// Listings the page cap stopped.
    pub cuts: Vec<Cut>,
    /// Windowed listings to resume in later polls (one per cluster and listing).
    pub remainders: Vec<Remainder>,
    /// Listings that failed after the client's retries, in a read that goes on past them
    /// ([`Reader::past_failures`]); a windowed one left a remainder where it stopped.
    pub failed: Vec<FailedListing>,
    /// Listings read to their end (or to the page cap).
    pub read: usize,
    /// The scopes (a cluster, or `None` for the account) not read completely because a
    /// listing of theirs failed or was never started: a snapshot sweep judges nothing about
    /// them.
    pub unread: BTreeSet<Option<String>>,
    /// The scopes with a listing read to its end, neither stopped by the page cap nor by a
    /// server repeating pages (one listed in [`ReadEnd::unread`] too had another that failed).
    pub walked: BTreeSet<Option<String>>,
}

/// A listing that failed after the client's retries.
#[derive(Debug)]
pub struct FailedListing {
    /// Its cluster filter (`None`: account-wide).
    pub cluster: Option<String>,
    /// Why.
    pub error: SasError,
}

/// A read going on past failed listings stops once the listings of this many scopes in a row
/// failed: that looks like the source failing, not one cluster.
const FAILED_IN_A_ROW: usize = 3;

/// One listing to walk.
struct Plan {
    cluster: Option<String>,
    what: What,
    first_start: bool,
}

enum What {
    /// A windowed listing, from its first page or resumed at `(page, cut)`.
    Window {
        listing: WindowListing,
        since_ms: Option<i64>,
        until_ms: Option<i64>,
        resume: Option<(u32, i64)>,
    },
    /// The vulnerabilities of one type.
    Vulns(VulType),
    /// The baseline walk.
    Baseline,
}

impl What {
    fn window(listing: WindowListing, since_ms: Option<i64>, until_ms: Option<i64>) -> What {
        What::Window {
            listing,
            since_ms,
            until_ms,
            resume: None,
        }
    }
}

/// The walk in progress.
enum Walk<'s> {
    Alerts(Walker<'s, SasClient, SuspEvent>),
    Vulns(Walker<'s, SasClient, VulRecord>),
    Firewall(Walker<'s, SasClient, InterceptionHistory>),
    Baseline(Box<BaselineWalker<'s, SasClient>>),
}

fn at_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A domain read a page at a time ([`Source::reader`]). Holds one page and the walks' digests
/// of what they read; the caller commits each [`Batch`] before asking for the next.
pub struct Reader<'s> {
    source: &'s Source,
    plans: VecDeque<Plan>,
    current: Option<(Plan, Walk<'s>)>,
    end: ReadEnd,
    /// Remainders of this poll's own windows, and of resumed ones.
    fresh: Vec<Remainder>,
    resumed: Vec<Remainder>,
    /// Baseline walks skip the pairs whose counts did not change.
    pair_skip: Option<PairSkip>,
    /// A failed listing is noted and the read goes on ([`Reader::past_failures`]).
    past_failures: bool,
    /// Scopes whose listings failed since a listing last did not, and the last of them.
    failed_in_a_row: usize,
    last_failed: Option<Option<String>>,
}

impl<'s> Reader<'s> {
    /// Reads only the clusters of `only` (all when `None`): a snapshot sweep of the clusters
    /// whose counts changed.
    pub fn only_clusters(mut self, only: Option<&BTreeSet<String>>) -> Self {
        if let Some(only) = only {
            self.plans
                .retain(|p| p.cluster.as_ref().is_some_and(|c| only.contains(c)));
        }
        self
    }

    /// Goes on past a listing that fails after the client's retries: the failure is noted in
    /// [`ReadEnd::failed`], its scope in [`ReadEnd::unread`], a windowed listing leaves a
    /// [`Remainder`] where it stopped, and the next listing is read — unless the failure is
    /// the source's ([`SasError::source_wide`]) or the third cluster's in a row, which stops
    /// the read
    /// (every listing not started is set aside the same way). Without it, a failed listing
    /// fails the read.
    pub fn past_failures(mut self) -> Self {
        self.past_failures = true;
        self
    }

    /// Baseline walks leave unlisted the risk × asset pairs whose counts `skip`'s book
    /// recalls unchanged ([`crate::sas::pairs`]); each page names the pairs it skipped
    /// ([`Batch::pairs`]), so the caller can count what it kept of them as listed.
    pub fn skip_unchanged_pairs(mut self, skip: PairSkip) -> Self {
        self.pair_skip = Some(skip);
        self
    }

    /// Reads the listings of the scopes in `failed` (those whose listings failed in the last
    /// poll) after every other, each group in its order. Without it, clusters that keep
    /// failing and sit next to each other in the configured order would stop every read
    /// ([`Reader::past_failures`]: the third cluster in a row) before the clusters after
    /// them; read last, they stop only each other. A scope that was set aside unread moves to
    /// the front again, so it is tried.
    pub fn failed_last(mut self, failed: &BTreeSet<Option<String>>) -> Self {
        let (last, first): (VecDeque<Plan>, VecDeque<Plan>) = std::mem::take(&mut self.plans)
            .into_iter()
            .partition(|p| failed.contains(&p.cluster));
        self.plans = first;
        self.plans.extend(last);
        self
    }

    /// Marks the poll's own window as a first start's.
    pub fn first_start(mut self, first: bool) -> Self {
        for p in &mut self.plans {
            p.first_start = first;
        }
        self
    }

    /// After the poll's own window, resumes `remainders` of earlier polls (those of clusters
    /// no longer configured are dropped; an account-wide one is kept while windows are listed
    /// account-wide, and one of a configured cluster whichever way they are listed now).
    pub fn resume(mut self, remainders: Vec<Remainder>) -> Self {
        let mut scopes = self.source.scopes();
        scopes.extend(self.source.window_scopes());
        for r in remainders {
            if !scopes.contains(&r.cluster) {
                tracing::debug!(
                    source = %self.source.settings.name,
                    cluster = ?r.cluster,
                    "Dropped the remainder of a cluster no longer configured."
                );
                continue;
            }
            self.plans.push_back(Plan {
                cluster: r.cluster,
                what: What::Window {
                    listing: r.listing,
                    since_ms: r.since_ms,
                    until_ms: r.until_ms,
                    resume: Some((r.page, r.cut_ms)),
                },
                first_start: r.first_start,
            });
        }
        self
    }

    /// The next page of the domain, normalised; `None` when every listing has ended
    /// ([`Reader::end`] says how).
    pub async fn next_batch(&mut self) -> Result<Option<Batch>, SasError> {
        loop {
            let Some((plan, walk)) = &mut self.current else {
                let Some(plan) = self.plans.pop_front() else {
                    self.merge_remainders();
                    return Ok(None);
                };
                let walk = self.start(&plan);
                self.current = Some((plan, walk));
                continue;
            };
            let ctx = self.source.normalise_context(plan.cluster.as_deref());
            let mut batch = Batch {
                first_start: plan.first_start,
                ..Batch::default()
            };
            let page = match walk {
                Walk::Alerts(w) => w.next_page().await.map(|p| {
                    p.map(|p| {
                        batch.fill(p.quarantined, p.items, |i| {
                            normalise::normalise_alert(&ctx, i)
                        })
                    })
                }),
                Walk::Vulns(w) => w.next_page().await.map(|p| {
                    p.map(|p| {
                        batch.fill(p.quarantined, p.items, |i| {
                            normalise::normalise_vulnerability(&ctx, i)
                        })
                    })
                }),
                Walk::Firewall(w) => w.next_page().await.map(|p| {
                    p.map(|p| {
                        batch.fill(p.quarantined, p.items, |i| {
                            normalise::normalise_firewall(&ctx, i)
                        })
                    })
                }),
                Walk::Baseline(w) => w.next_batch().await.map(|b| {
                    b.map(|b| {
                        batch.pairs = PagePairs {
                            cluster: plan.cluster.clone(),
                            listed: b.pair,
                            skipped: b.skipped,
                        };
                        batch.fill(b.quarantined, b.items, |i| {
                            normalise::normalise_baseline(&ctx, i)
                        })
                    })
                }),
            };
            let page = match page {
                Ok(page) => page,
                Err(e) if self.past_failures => {
                    self.fail_current(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match page {
                Some(()) => {
                    self.failed_in_a_row = 0;
                    self.last_failed = None;
                    let scope = plan.cluster.as_deref();
                    batch.findings.retain(|f| self.source.keeps(scope, f));
                    return Ok(Some(batch));
                }
                None => self.finish_current(),
            }
        }
    }

    /// How the read ended (complete once [`Reader::next_batch`] returned `None`).
    pub fn end(&self) -> &ReadEnd {
        &self.end
    }

    /// Takes how the read ended.
    pub fn into_end(self) -> ReadEnd {
        self.end
    }

    fn start(&self, plan: &Plan) -> Walk<'s> {
        let c = &self.source.client;
        let cluster = plan.cluster.clone();
        match &plan.what {
            What::Window {
                listing,
                since_ms,
                until_ms,
                resume,
            } => {
                let walk = match listing {
                    WindowListing::PendingAlerts => Walk::Alerts(api::alerts_walker(
                        c,
                        &AlertQuery {
                            cluster_id: cluster,
                            dealed: Some(Dealed::Pending),
                            time_start: since_ms.map(at_ms),
                            ..AlertQuery::default()
                        },
                    )),
                    WindowListing::HandledAlerts => Walk::Alerts(api::handled_alerts_walker(
                        c,
                        &AlertQuery {
                            cluster_id: cluster,
                            ..AlertQuery::default()
                        },
                        at_ms(since_ms.unwrap_or(0)),
                    )),
                    WindowListing::Firewall => Walk::Firewall(api::firewall_walker(
                        c,
                        &FirewallQuery {
                            cluster_id: cluster,
                            start: since_ms.map(at_ms),
                            end: until_ms.map(at_ms),
                            ..FirewallQuery::default()
                        },
                    )),
                };
                match (walk, resume) {
                    (Walk::Alerts(w), Some((page, cut))) => Walk::Alerts(w.resume(*page, *cut)),
                    (Walk::Firewall(w), Some((page, cut))) => Walk::Firewall(w.resume(*page, *cut)),
                    (walk, _) => walk,
                }
            }
            What::Vulns(ty) => {
                let q = VulQuery {
                    cluster_id: cluster,
                    types: self.source.settings.vulnerability_types.clone(),
                    dealed: Some(Dealed::Pending),
                    ..VulQuery::default()
                };
                Walk::Vulns(api::vul_walker(c, &q, *ty))
            }
            What::Baseline => {
                let walker = BaselineWalker::new(
                    c,
                    &BaselineQuery {
                        cluster_id: cluster,
                        ..BaselineQuery::default()
                    },
                )
                .with_details(self.source.details.clone());
                Walk::Baseline(Box::new(match &self.pair_skip {
                    Some(skip) => walker.skip_unchanged(skip.clone()),
                    None => walker,
                }))
            }
        }
    }

    /// Notes how the current walk ended: a cut makes the read incomplete and, for a windowed
    /// listing, leaves a remainder.
    fn finish_current(&mut self) {
        let Some((plan, walk)) = self.current.take() else {
            return;
        };
        self.end.read += 1;
        self.failed_in_a_row = 0;
        self.last_failed = None;
        let (end, position) = match &walk {
            Walk::Alerts(w) => (w.end().cloned(), w.position()),
            Walk::Firewall(w) => (w.end().cloned(), w.position()),
            Walk::Vulns(w) => (w.end().cloned(), None),
            Walk::Baseline(w) => {
                self.end.cuts.extend(w.cuts().iter().cloned());
                if !w.cuts().is_empty() || w.repeated() {
                    self.end.complete = false;
                } else {
                    self.end.walked.insert(plan.cluster);
                }
                return;
            }
        };
        let cut = match end {
            Some(WalkEnd::Capped(cut)) => cut,
            Some(WalkEnd::Repeated) => {
                self.end.complete = false;
                return;
            }
            _ => {
                self.end.walked.insert(plan.cluster);
                return;
            }
        };
        self.end.complete = false;
        self.end.cuts.push(cut);
        self.keep_remainder(plan, position);
    }

    /// The current listing failed (`error`, after the client's retries): it is set aside, and
    /// so is every listing not started when the failure is the source's or the third
    /// cluster's in a row.
    fn fail_current(&mut self, error: SasError) {
        let Some((plan, walk)) = self.current.take() else {
            return;
        };
        let position = match &walk {
            Walk::Alerts(w) => w.position(),
            Walk::Firewall(w) => w.position(),
            Walk::Vulns(_) | Walk::Baseline(_) => None,
        };
        // A cluster's second listing failing too (vulnerability types, handled alerts) is
        // still one cluster.
        if self.last_failed.as_ref() != Some(&plan.cluster) {
            self.failed_in_a_row += 1;
            self.last_failed = Some(plan.cluster.clone());
        }
        let stop = error.source_wide() || self.failed_in_a_row >= FAILED_IN_A_ROW;
        tracing::debug!(
            source = %self.source.settings.name,
            cluster = ?plan.cluster,
            error = %error,
            stop,
            "A listing failed; set aside."
        );
        self.end.failed.push(FailedListing {
            cluster: plan.cluster.clone(),
            error,
        });
        self.set_aside(plan, position);
        if stop {
            for plan in std::mem::take(&mut self.plans) {
                self.set_aside(plan, None);
            }
        }
    }

    /// A listing not read to its end: its scope is unread, and a windowed one is kept to
    /// resume.
    fn set_aside(&mut self, plan: Plan, position: Option<(u32, i64)>) {
        self.end.unread.insert(plan.cluster.clone());
        self.keep_remainder(plan, position);
    }

    /// Keeps the unread rest of a windowed listing: from `position` (the last page read and
    /// the oldest time read), else where it was asked to resume, else from the top.
    fn keep_remainder(&mut self, plan: Plan, position: Option<(u32, i64)>) {
        let What::Window {
            listing,
            since_ms,
            until_ms,
            resume,
        } = plan.what
        else {
            return;
        };
        let (page, cut_ms) = position.or(resume).unwrap_or((1, i64::MAX));
        let remainder = Remainder {
            cluster: plan.cluster,
            listing,
            since_ms,
            until_ms,
            page,
            cut_ms,
            first_start: plan.first_start,
        };
        if resume.is_some() {
            self.resumed.push(remainder);
        } else {
            self.fresh.push(remainder);
        }
    }

    /// One remainder per cluster and listing ([`Remainder::merge`]).
    fn merge_remainders(&mut self) {
        let mut out: Vec<Remainder> = std::mem::take(&mut self.resumed);
        for newer in std::mem::take(&mut self.fresh) {
            match out
                .iter()
                .position(|r| r.cluster == newer.cluster && r.listing == newer.listing)
            {
                Some(i) => {
                    let older = out.remove(i);
                    out.insert(i, Remainder::merge(older, newer));
                }
                None => out.push(newer),
            }
        }
        self.end.remainders.extend(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remainder(
        since_ms: Option<i64>,
        until_ms: Option<i64>,
        page: u32,
        cut_ms: i64,
    ) -> Remainder {
        Remainder {
            cluster: Some("c1".into()),
            listing: WindowListing::Firewall,
            since_ms,
            until_ms,
            page,
            cut_ms,
            first_start: false,
        }
    }

    #[test]
    fn a_window_cut_again_merges_into_the_older_remainder_at_the_newer_position() {
        // The older remainder reads back to 1,000; the newer window starts at 5,000 and was cut
        // at page 7 (oldest read 6,000): resume the widened query there.
        let older = Remainder {
            first_start: true,
            ..remainder(Some(1_000), Some(4_000), 40, 2_000)
        };
        let newer = remainder(Some(5_000), Some(9_000), 7, 6_000);
        let merged = Remainder::merge(older.clone(), newer.clone());
        assert_eq!(merged, remainder(Some(1_000), Some(9_000), 7, 6_000));
        // No lower bound wins; a first start's stays one only if both are.
        let open = Remainder {
            since_ms: None,
            first_start: true,
            ..older
        };
        let both = Remainder::merge(
            open.clone(),
            Remainder {
                first_start: true,
                ..newer
            },
        );
        assert_eq!((both.since_ms, both.first_start), (None, true));
        for l in [
            WindowListing::PendingAlerts,
            WindowListing::HandledAlerts,
            WindowListing::Firewall,
        ] {
            assert_eq!(WindowListing::parse(l.as_str()), Some(l));
        }
        assert_eq!(WindowListing::parse("vulnerabilities"), None);
    }
}
