//! A configured Security Center source, connected: its credentials, its client, and reading
//! each domain as normalised [`Finding`]s — once per configured cluster, or account-wide.
//!
//! This is the seam between configuration and the Security Center side: [`SourceSettings`] is
//! the component's checked config (what `config` builds from a `[[source]]` table), and the
//! CLI's `check` and `findings` commands and the daemon's pollers read through a [`Source`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use serde_json::Value;
use time::OffsetDateTime;

use crate::credentials::CredentialsConfig;
use crate::credentials::env::Env;
use crate::credentials::{CredentialContext, CredentialHandle};
use crate::event::EventSwitches;
use crate::finding::{Domain, Finding};
use crate::sas::api::{self, AlertQuery, BaselineQuery, Dealed, FirewallQuery, VulQuery, VulType};
use crate::sas::client::{ClientSettings, SasClient};
use crate::sas::error::SasError;
use crate::sas::models::{
    InterceptionHistory, ListItem, Page, Quarantined, RecordId, SuspEvent, VulRecord,
    WarningSummary,
};
use crate::sas::normalise::NormaliseContext;
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

/// A source whose credentials resolved and whose client is built.
#[derive(Clone, Debug)]
pub struct Source {
    /// The checked settings it was built from.
    pub settings: SourceSettings,
    client: SasClient,
    credentials: CredentialHandle,
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

    /// The configured clusters as filters, or one account-wide `None`.
    fn scopes(&self) -> Vec<Option<String>> {
        if self.settings.clusters.is_empty() {
            vec![None]
        } else {
            self.settings.clusters.iter().cloned().map(Some).collect()
        }
    }

    fn normalise_context(&self, cluster: Option<&str>) -> NormaliseContext {
        let mut ctx = NormaliseContext::new(&self.settings.name, &self.settings.region);
        ctx.console_base = self.settings.console_base.clone();
        ctx.cluster_id = cluster.map(str::to_string);
        ctx
    }

    /// Reads one domain completely and normalises every item; records that cannot be read are
    /// quarantined, not fatal.
    pub async fn read(&self, domain: Domain, window: &ReadWindow) -> Result<Sweep, SasError> {
        let mut out = Sweep::default();
        for cluster in self.scopes() {
            let ctx = self.normalise_context(cluster.as_deref());
            match domain {
                Domain::Alerts => {
                    let q = AlertQuery {
                        cluster_id: cluster.clone(),
                        dealed: Some(Dealed::Pending),
                        ..AlertQuery::default()
                    };
                    let windowed = AlertQuery {
                        time_start: window.occurred_since,
                        ..q.clone()
                    };
                    let pending = api::list_alerts(&self.client, &windowed).await?;
                    out.quarantine(pending.quarantined);
                    let mut items = pending.items;
                    if let Some(since) = window.handled_since {
                        // By handling time, not by occurrence: an old alert handled just now
                        // must be seen resolved.
                        let handled =
                            api::list_alerts_handled_since(&self.client, &q, since).await?;
                        out.quarantine(handled.quarantined);
                        items.extend(handled.items);
                    }
                    out.findings.extend(
                        items
                            .into_iter()
                            .map(|i| crate::sas::normalise::normalise_alert(&ctx, i)),
                    );
                }
                Domain::Vulnerabilities => {
                    let q = VulQuery {
                        cluster_id: cluster.clone(),
                        types: self.settings.vulnerability_types.clone(),
                        dealed: Some(Dealed::Pending),
                        ..VulQuery::default()
                    };
                    let listing = api::list_vulnerabilities(&self.client, &q).await?;
                    out.quarantine(listing.quarantined);
                    out.findings.extend(
                        listing
                            .items
                            .into_iter()
                            .map(|i| crate::sas::normalise::normalise_vulnerability(&ctx, i)),
                    );
                }
                Domain::Baseline => {
                    let q = BaselineQuery {
                        cluster_id: cluster.clone(),
                        ..BaselineQuery::default()
                    };
                    let listing = api::list_baseline(&self.client, &q).await?;
                    out.quarantine(listing.quarantined);
                    out.findings.extend(
                        listing
                            .items
                            .into_iter()
                            .map(|i| crate::sas::normalise::normalise_baseline(&ctx, i)),
                    );
                }
                Domain::Firewall => {
                    let q = FirewallQuery {
                        cluster_id: cluster.clone(),
                        start: Some(window.firewall_since),
                        end: Some(window.now),
                        ..FirewallQuery::default()
                    };
                    let listing = api::list_firewall(&self.client, &q).await?;
                    out.quarantine(listing.quarantined);
                    out.findings.extend(
                        listing
                            .items
                            .into_iter()
                            .map(|i| crate::sas::normalise::normalise_firewall(&ctx, i)),
                    );
                }
            }
        }
        Ok(out)
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
