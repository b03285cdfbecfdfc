//! Polling: one task per (source, domain). Each step ([`Poller::poll_once`]) reads the domain
//! a page at a time ([`Source::reader`]), lets the lifecycle tracker decide what each page
//! changed, and writes the result in the store's crash-safe order before the next page is
//! read. [`Poller`] is a [`Task`]: the daemon's runner repeats it every interval and backs off
//! after failures (capped at the interval); a poll in progress at shutdown stops after the page
//! it is committing ([`Poller::with_stop`]) without moving its cursor — or, past the shutdown
//! grace, is dropped — which the order below makes safe.
//!
//! The order of one poll, chosen so that a crash between any two steps loses nothing:
//! 1. per page, as it arrives — of the window since the watermark minus the overlap (alerts,
//!    firewall), then of the backfill the cursor keeps (below), or of the full snapshot
//!    (vulnerabilities, baseline):
//!    1. diff it against the stored records of what it lists (nothing else is loaded);
//!    2. dispatch its events (see `dispatch`): into each routed sink's outbox, into its
//!       routing group, or into the suppression log (each idempotent: the event id guards);
//!    3. write the lifecycle records;
//!    4. flush (group commit: one `flush` per page), then wake the sinks, so delivery starts
//!       after the first page;
//! 2. a complete snapshot sweep then resolves what it did not list: the stored records are
//!    scanned once for open findings the sweep missed (it kept only the digests of the
//!    fingerprints it listed); a chunk at a time, vulnerabilities among them are looked up by
//!    `PrimaryId` (fixed, ignored or expired rather than `gone`; a failed lookup is not a failed
//!    poll), [`lifecycle::confirm_gone`] holds those not missed often enough, and the chunk is
//!    written as a page is (2–4). A sweep that is not complete — a listing stopped by the page
//!    cap or by a server repeating pages, or a record that could not be read — resolves
//!    nothing;
//! 3. advance the cursor (watermark, backfill, initialised) and flush again.
//!
//! A crash before a page's flush loses the unflushed tail as a prefix, so a record is never
//! durable without its enqueued event. The cursor moves once, after every page it covers is
//! durable: a crash mid-poll leaves the old cursor, so the next poll reads the same window and
//! backfill again; what was committed lists as unchanged (its records exist), and what was
//! enqueued but not recorded is dropped by the enqueue guard. Memory is one page and, for a
//! snapshot, 32 bytes per finding listed — never every finding of a poll.
//!
//! # The page cap and the backfill
//! `max_pages` stops a runaway listing (repeated pages and stuck tokens stop earlier, in
//! [`crate::sas::api::decide`]), but it does not fail the poll. A windowed listing is sorted
//! newest first (alerts by `LastTimeStamp`, handled alerts by `OperateTime`, firewall records
//! by `LastTime`), so what a cut walk left unread is its older part: the poll commits what it
//! read, moves the watermark, and keeps a [`Remainder`] in the cursor — the same query, the
//! last page read and the oldest time read. The next polls read their own window first, then
//! resume each remainder at its last page (read again as overlap; if records that left the
//! listing moved later ones up past it, the walk backs up a page at a time), until the
//! listing ends. So a backlog of any size is delivered over several polls, each alert once
//! (records and guards drop what overlap reads again), newest first. A first start's
//! remainders stay a first start's: with `initial_sync = "baseline"` they are tracked
//! silently and the one summary is sent when the last of them is read. A snapshot sweep cut
//! by the cap is incomplete: it records and sends what it listed, resolves nothing, and says
//! so (raise `max_pages`).
//!
//! # A listing that fails
//! The reader goes on past a listing that still fails after the client's retries
//! ([`crate::sas::source::Reader::past_failures`]): one cluster refused, or answering badly,
//! holds back no other. The failed listing — and, when the failure is the source's
//! (credentials, permission, reachability, quota) or the third cluster's in a row, every
//! listing not started — is set aside: a windowed one as a [`Remainder`] from where it
//! stopped (from the top if it never started), so the cursor moves and the next polls resume
//! it like a cut walk;
//! a snapshot sweep judges absence only in the clusters it read completely, and keeps the
//! failed clusters out of the stored statistics probe so the next poll sweeps them whatever
//! their counts say. The poll then fails ([`PollError::Partial`], naming the clusters) without
//! counting as a success, so health and metrics see it; the runner retries it with backoff.
//! When nothing at all was read, the poll fails as a whole and the cursor stays; a first sweep
//! that failed anywhere stores no cursor either (it stays a first sweep until it is whole).
//! The next poll reads the clusters whose listings failed after every other, so clusters that
//! keep failing side by side in the configured order stop only each other, not the clusters
//! after them.
//!
//! # Baseline pairs
//! A baseline sweep after the first lists a risk × asset pair (`DescribeCheckWarnings`) only
//! when its machine row's counts changed since its last whole listing, or that listing is
//! about a day old ([`crate::sas::pairs`]); the findings kept for a pair it skips count as
//! listed, so absence is judged as if it had been listed ([`crate::pipeline::pairs`] keeps
//! the rows: written after the page that listed the pair, removed once a sweep that walked
//! its scope whole no longer meets it).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::event::Event;
use crate::finding::{Domain, Finding};
use crate::pipeline::dispatch::{Dispatched, Dispatcher};
use crate::pipeline::lifecycle::{self, Confirmation, Coverage, Diff};
use crate::pipeline::metrics::{Metrics, PollFailure};
use crate::pipeline::pairs::{PairLedger, PairRows};
use crate::record::{Record, RecordStatus};
use crate::sas::api::DetailCache;
use crate::sas::models::Quarantined;
use crate::sas::pairs::PairSkip;
use crate::sas::source::{
    Batch, DomainPoll, FailedListing, InitialSync, ReadEnd, ReadWindow, Remainder, Source,
    WindowListing,
};
use crate::store::{self, Backfill, Cursor, QuarantineEntry, Store, StoreError};
use crate::task::{Label, Next, Task, TaskError};

/// The longest a poller's first poll waits after its start (a tenth of its interval, at most
/// this): the pollers of one start spread out rather than call together.
pub const MAX_START_OFFSET: Duration = Duration::from_secs(10);

/// A watermark this far past now is worth a warning (less is a clock's ordinary drift).
const FUTURE_WATERMARK_SLACK_MS: i64 = 5_000;

/// How far back a first start reads container-firewall records (the API needs a window).
pub const FIREWALL_FIRST_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// A snapshot domain whose statistics probe is unchanged is still swept in full after this
/// many intervals: equal counts can hide a change (one finding fixed, another opened).
pub const RECONCILE_EVERY: u32 = 6;

/// What one successful poll did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Findings listed.
    pub observed: usize,
    /// Lifecycle records written.
    pub changed: usize,
    /// What dispatch did with the events (outbox entries, group members, suppressions).
    pub dispatched: Dispatched,
    /// Findings recorded silently on a baseline first start.
    pub silently_tracked: u64,
    /// The statistics probe was unchanged, so the full sweep was skipped.
    pub skipped_unchanged: bool,
    /// Vulnerabilities that left the pending list and were looked up by `PrimaryId`.
    pub looked_up: usize,
    /// Of those, resolved with the reason Security Center gave (fixed, ignored, expired)
    /// instead of `gone`.
    pub explained: usize,
    /// The lookup failed, so every vulnerability that left the list was resolved as `gone`.
    pub lookup_failed: bool,
    /// Records listed that could not be read (quarantined; the rest of the poll went on).
    pub quarantined: usize,
    /// Open findings this sweep missed that stay open until more sweeps agree.
    pub pending_gone: usize,
    /// The clusters of the findings [`PollReport::pending_gone`] counts: swept again by the
    /// next poll, whatever their counts say.
    pub missed_in: BTreeSet<String>,
    /// Pages committed.
    pub pages: usize,
    /// The daemon is stopping: the poll stopped after a page and did not move the cursor.
    pub interrupted: bool,
    /// A listing was stopped by the page cap or by a server repeating pages: a snapshot sweep
    /// that resolved nothing, or a window whose older part waits in the backfill.
    pub incomplete: bool,
    /// Windowed listings the next polls resume ([`Remainder`]).
    pub backfill: usize,
    /// Baseline risk × asset pairs left unlisted: their counts had not changed.
    pub pairs_skipped: usize,
    /// Baseline pairs listed.
    pub pairs_listed: usize,
}

/// Missed findings of a complete sweep resolved per chunk (one lookup and one flush each).
const GONE_CHUNK: usize = 500;

/// What a snapshot sweep listed: 32 bytes per fingerprint.
type Listed = HashSet<[u8; 32]>;

fn listed_key(fingerprint: &str) -> [u8; 32] {
    Sha256::digest(fingerprint.as_bytes()).into()
}

/// A remainder as the cursor keeps it.
fn stored(r: &Remainder) -> store::Remainder {
    store::Remainder {
        cluster: r.cluster.clone(),
        listing: r.listing.as_str().to_string(),
        since_ms: r.since_ms,
        until_ms: r.until_ms,
        page: r.page,
        cut_ms: r.cut_ms,
        first_start: r.first_start,
    }
}

/// A remainder the cursor kept; `None` for a listing this version does not know.
fn restored(r: store::Remainder) -> Option<Remainder> {
    Some(Remainder {
        listing: WindowListing::parse(&r.listing)?,
        cluster: r.cluster,
        since_ms: r.since_ms,
        until_ms: r.until_ms,
        page: r.page,
        cut_ms: r.cut_ms,
        first_start: r.first_start,
    })
}

/// Why a poll failed. Nothing was written past the failing step.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// Security Center could not be read.
    #[error("{0}")]
    Read(#[from] crate::sas::error::SasError),
    /// The store refused a write.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Listings failed after their retries, others did not: what was read is recorded and
    /// the cursor keeps the failed ones to read again.
    #[error("{}", partial_message(.0))]
    Partial(Vec<FailedListing>),
}

impl PollError {
    /// The Security Center error behind the failure, if any (the first, when several).
    pub fn sas(&self) -> Option<&crate::sas::error::SasError> {
        match self {
            PollError::Read(e) => Some(e),
            PollError::Partial(failed) => failed.first().map(|f| &f.error),
            PollError::Store(_) => None,
        }
    }
}

/// `2 listings failed (clusters c2, c7); the rest of the poll is recorded and they are read
/// again: <the first error>`.
fn partial_message(failed: &[FailedListing]) -> String {
    let scopes: BTreeSet<String> = failed
        .iter()
        .map(|f| f.cluster.clone().unwrap_or_else(|| "account-wide".into()))
        .collect();
    let scopes: Vec<String> = scopes.into_iter().collect();
    let n = failed.len();
    format!(
        "{n} listing{} failed ({}); the rest of the poll is recorded and {} read again: {}",
        if n == 1 { "" } else { "s" },
        scopes.join(", "),
        if n == 1 { "it is" } else { "they are" },
        failed
            .first()
            .map(|f| f.error.to_string())
            .unwrap_or_default()
    )
}

/// What the change probe says about a snapshot domain.
enum Probe {
    /// Unchanged since a recent sweep: skip this one (the cursor already says so).
    Unchanged,
    /// Sweep, and record this probe value (none for window domains, a first start, or a
    /// failed probe): every cluster, or `only` those whose counts changed since a recent
    /// sweep.
    Sweep {
        probe: Option<String>,
        only: Option<BTreeSet<String>>,
    },
}

/// The clusters of probe `new` whose part (`cluster:counts`) is not in `old`: those a sweep
/// must read again.
fn changed_clusters(old: &str, new: &str) -> BTreeSet<String> {
    let before: BTreeSet<&str> = old.split(';').collect();
    new.split(';')
        .filter(|part| !before.contains(part))
        .filter_map(|part| part.split_once(':').map(|(c, _)| c.to_string()))
        .collect()
}

/// Probe `p` without the parts of `clusters`: stored after a sweep that left findings of those
/// clusters awaiting confirmation, so the next poll sweeps them whatever their counts say.
fn probe_without(p: &str, clusters: &BTreeSet<String>) -> String {
    p.split(';')
        .filter(|part| {
            part.split_once(':')
                .is_none_or(|(c, _)| !clusters.contains(c))
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// The poller of one source and domain.
pub struct Poller {
    source: Arc<Source>,
    poll: DomainPoll,
    store: Store,
    dispatcher: Arc<Dispatcher>,
    metrics: Arc<Metrics>,
    /// Cancelled by the daemon's shutdown (its pollers' token): a poll stops at the next page
    /// boundary instead of reading on.
    stop: CancellationToken,
    /// The first step's start offset has been waited ([`MAX_START_OFFSET`]).
    offset_taken: bool,
    /// The scopes whose listings failed in the last poll: the next reads them last
    /// ([`crate::sas::source::Reader::failed_last`]).
    failed_last: std::sync::Mutex<BTreeSet<Option<String>>>,
}

impl Poller {
    /// A poller for `poll.domain` of `source`.
    pub fn new(
        source: Arc<Source>,
        poll: DomainPoll,
        store: Store,
        dispatcher: Arc<Dispatcher>,
    ) -> Self {
        Poller {
            source,
            poll,
            store,
            dispatcher,
            metrics: Arc::default(),
            stop: CancellationToken::new(),
            offset_taken: false,
            failed_last: std::sync::Mutex::default(),
        }
    }

    /// Stops a poll in progress at its next page boundary once `stop` is cancelled (the
    /// daemon's shutdown): what was committed stays, the cursor does not move, so the next
    /// start reads the same window again.
    pub fn with_stop(mut self, stop: CancellationToken) -> Self {
        self.stop = stop;
        self
    }

    /// Counts this poller's polls into `metrics` (the daemon's).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    fn name(&self) -> &str {
        &self.source.settings.name
    }

    fn lock_failed_last(&self) -> std::sync::MutexGuard<'_, BTreeSet<Option<String>>> {
        self.failed_last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn failed_last(&self) -> BTreeSet<Option<String>> {
        self.lock_failed_last().clone()
    }

    /// One poll: page by page read, diff, enqueue, record, flush; then resolve (a complete
    /// snapshot) and advance. `now` is the poll's start.
    pub async fn poll_once(&self, now: OffsetDateTime) -> Result<PollReport, PollError> {
        let settings = &self.source.settings;
        let domain = self.poll.domain;
        let cursor = self.store.cursor(&settings.name, domain)?;
        let first = !cursor.as_ref().is_some_and(|c| c.initialised);
        let now_ms = crate::clock::unix_ms(now);
        let (probe, only) = match self.probe(first, cursor.as_ref(), now_ms).await? {
            Probe::Unchanged => {
                return Ok(PollReport {
                    skipped_unchanged: true,
                    ..PollReport::default()
                });
            }
            Probe::Sweep { probe, only } => (probe, only),
        };
        let ahead_at_start = self.clock_ahead_ms();
        let window = self.window(cursor.as_ref(), first, now, ahead_at_start);
        let last_full_sweep_ms = cursor.as_ref().and_then(|c| c.last_sweep_ms);
        let last_success_ms = cursor.as_ref().map_or(0, |c| c.last_success_ms);
        let carried = cursor.and_then(|c| c.backfill).unwrap_or_default();
        let resumed_first_start = carried.remainders.iter().any(|r| r.first_start);
        let remainders = carried
            .remainders
            .into_iter()
            .filter_map(|r| {
                let (listing, since_ms, until_ms) = (r.listing.clone(), r.since_ms, r.until_ms);
                let known = restored(r);
                if known.is_none() {
                    // Written by another build (or damaged): this one cannot read that part.
                    tracing::warn!(
                        source = %self.source.settings.name,
                        domain = domain.as_str(),
                        listing,
                        since_ms,
                        until_ms,
                        "The cursor holds a part of a window still to read for a listing this build does not know; it is dropped."
                    );
                }
                known
            })
            .collect();

        // 1. Page by page.
        let mut report = PollReport::default();
        let mut listed = Listed::new();
        let mut pairs = PairLedger::default();
        let mut reader = self
            .source
            .reader(domain, &window)
            .only_clusters(only.as_ref())
            .first_start(first)
            .resume(remainders)
            .failed_last(&self.failed_last())
            .past_failures();
        if domain == Domain::Baseline && !first {
            // A first sweep lists every pair: what it tracks silently is counted by it.
            reader = reader.skip_unchanged_pairs(PairSkip {
                book: Arc::new(PairRows::new(self.store.clone(), &settings.name)),
                now_ms,
            });
        }
        while let Some(batch) = reader.next_batch().await? {
            self.commit_page(batch, now, &mut listed, &mut pairs, &mut report)
                .await?;
            if self.stop.is_cancelled() {
                // Committed pages stay; the unmoved cursor makes the next start read them again
                // (as unchanged) and go on.
                report.interrupted = true;
                return Ok(report);
            }
        }
        let mut end = reader.into_end();
        self.report_cuts(&end);
        report.incomplete = !end.complete;
        report.backfill = end.remainders.len();
        let mut failed = std::mem::take(&mut end.failed);
        *self.lock_failed_last() = failed.iter().map(|f| f.cluster.clone()).collect();
        if !failed.is_empty() && end.read == 0 && report.pages == 0 {
            // Nothing was read: the poll failed as a whole, and the cursor stays.
            return Err(PollError::Read(failed.swap_remove(0).error));
        }
        if !failed.is_empty() && first && self.snapshot() {
            // A first sweep stays a first sweep until it is whole: what it listed is recorded
            // (silently or sent, as `initial_sync` says); the next poll sweeps again.
            return Err(PollError::Partial(failed));
        }

        // 2. What a complete sweep did not list, in the scopes it read completely.
        (report.pairs_skipped, report.pairs_listed) = (pairs.skipped, pairs.listed);
        if self.snapshot() {
            if end.complete && report.quarantined == 0 {
                self.resolve_absent(&listed, only.as_ref(), &end.unread, now, &mut report)
                    .await?;
                // Pairs no longer listed in a scope the baseline walk read whole keep no row
                // (a vulnerability sweep meets no pair: it must leave them be).
                if domain == Domain::Baseline {
                    let whole = end.walked.difference(&end.unread);
                    pairs.forget_gone(&self.store, &settings.name, whole)?;
                }
            } else if report.quarantined > 0 {
                tracing::warn!(
                    source = %settings.name,
                    domain = domain.as_str(),
                    quarantined = report.quarantined,
                    "The sweep holds records that cannot be read; nothing is resolved as gone until a sweep is complete."
                );
            }
        }
        // A first start's summary, once nothing of its window is left to read.
        let tracked = carried.tracked + report.silently_tracked;
        let first_start_left = end.remainders.iter().any(|r| r.first_start);
        if (first || resumed_first_start) && !first_start_left {
            self.summarise(tracked, now, &mut report).await?;
        }

        // 3. Only now may the cursor move.
        // Security Center's now when the poll began, as far as its answers tell: a local
        // clock stepped forward must not move the window past what it holds.
        let watermark_ms = now_ms - ahead_at_start.max(self.clock_ahead_ms());
        let backfill = (!end.remainders.is_empty()).then(|| Backfill {
            remainders: end.remainders.iter().map(stored).collect(),
            tracked: if first_start_left { tracked } else { 0 },
        });
        self.store.set_cursor(
            &settings.name,
            domain,
            &Cursor {
                v: crate::store::CURSOR_SCHEMA,
                watermark_ms: Some(watermark_ms),
                initialised: true,
                last_success_ms: if failed.is_empty() {
                    now_ms
                } else {
                    last_success_ms
                },
                // Clusters with findings awaiting confirmation, or with a listing that failed,
                // need the next sweep whatever their counts say; an incomplete sweep (or one
                // whose account-wide listing failed) needs the next one whole.
                probe: probe
                    .filter(|_| !report.incomplete && !end.unread.contains(&None))
                    .map(|p| {
                        let mut again = report.missed_in.clone();
                        again.extend(end.unread.iter().flatten().cloned());
                        probe_without(&p, &again)
                    }),
                // A sweep of the changed clusters only does not put off the periodic full one.
                last_sweep_ms: if only.is_some() {
                    last_full_sweep_ms
                } else {
                    Some(now_ms)
                },
                backfill,
            },
        )?;
        self.keep_details(now_ms)?;
        self.store.flush().await?;
        if let Some(term) = self.dispatcher.term() {
            let whole = !self.snapshot() || (end.complete && failed.is_empty() && only.is_none());
            if whole {
                term.handoff.listed(
                    &self.stream(),
                    self.listed_through(watermark_ms, &end.remainders),
                );
            }
        }
        if !failed.is_empty() {
            return Err(PollError::Partial(failed));
        }
        Ok(report)
    }

    /// The handoff's name of this source and domain.
    fn stream(&self) -> String {
        crate::ha::ledger::stream_key(self.name(), self.poll.domain.as_str())
    }

    /// What a committed poll with `watermark_ms` has listed through, for the handoff: every
    /// record up to the next window's start (the watermark less the overlap), and nothing
    /// from the oldest window a remainder still has to read.
    fn listed_through(&self, watermark_ms: i64, remainders: &[Remainder]) -> i64 {
        let overlap = self.source.settings.overlap.as_millis() as i64;
        remainders
            .iter()
            .map(|r| r.since_ms.map_or(i64::MIN, |s| s.saturating_sub(1)))
            .fold(watermark_ms - overlap, i64::min)
    }

    /// Takes back the baseline check details kept by earlier runs (once, before the first
    /// poll): a restart does not fetch every check's text again.
    fn restore_details(&self) -> Result<(), StoreError> {
        if self.poll.domain != Domain::Baseline {
            return Ok(());
        }
        let ttl_ms = DetailCache::TTL.as_millis() as i64;
        let now_ms = crate::clock::unix_ms(OffsetDateTime::now_utc());
        let kept = self
            .store
            .details(&self.source.settings.client.lang, now_ms - ttl_ms)?;
        let details = self.source.details();
        let restored = kept
            .into_iter()
            .filter(|d| {
                let age =
                    Duration::from_millis(now_ms.saturating_sub(d.fetched_at_ms).max(0) as u64);
                details.preload(d.check_id, age, d.raw.clone())
            })
            .count();
        tracing::debug!(
            source = self.name(),
            restored,
            "Baseline check details restored."
        );
        Ok(())
    }

    /// Keeps the baseline check details fetched since the last poll, for later runs.
    fn keep_details(&self, now_ms: i64) -> Result<(), StoreError> {
        let lang = &self.source.settings.client.lang;
        for (check_id, age, raw) in self.source.details().take_fetched() {
            let detail = store::StoredDetail {
                v: store::DETAIL_SCHEMA,
                check_id,
                fetched_at_ms: now_ms.saturating_sub(age.as_millis() as i64),
                raw,
            };
            self.store.put_detail(lang, &detail)?;
        }
        Ok(())
    }

    /// How far the local clock runs ahead of Security Center's, as its answers tell (0 when
    /// behind or not known yet).
    fn clock_ahead_ms(&self) -> i64 {
        let clock = self.source.client().service_clock();
        clock.ahead_ms().unwrap_or(0).max(0)
    }

    /// What the poll reads besides what is open now: since the watermark minus the overlap
    /// (nothing on a first start; firewall records of the last day then). The watermark is
    /// clamped to Security Center's now (the local clock less `ahead_ms`): one written while
    /// the clock ran ahead, before its answers told, would otherwise skip what happens until
    /// the clock catches up with it.
    fn window(
        &self,
        cursor: Option<&Cursor>,
        first: bool,
        now: OffsetDateTime,
        ahead_ms: i64,
    ) -> ReadWindow {
        let overlap =
            time::Duration::try_from(self.source.settings.overlap).unwrap_or(time::Duration::ZERO);
        let service_now_ms = crate::clock::unix_ms(now) - ahead_ms;
        let watermark = cursor.and_then(|c| c.watermark_ms).filter(|_| !first);
        if let Some(w) = watermark.filter(|w| *w > service_now_ms + FUTURE_WATERMARK_SLACK_MS) {
            tracing::warn!(
                source = %self.source.settings.name,
                domain = self.poll.domain.as_str(),
                ahead_s = (w - service_now_ms) / 1000,
                "The watermark is ahead of now (the clock stepped back?); reading from now less the overlap instead."
            );
        }
        let since = watermark
            .map(|w| w.min(service_now_ms))
            .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok())
            // A watermark near the earliest time `time` holds (a damaged cursor) cannot go
            // back by the overlap: read as if there were none, which reads more, never less.
            .and_then(|w| w.checked_sub(overlap));
        let firewall_first = time::Duration::try_from(FIREWALL_FIRST_WINDOW).unwrap_or_default();
        ReadWindow {
            now,
            occurred_since: since,
            handled_since: since,
            firewall_since: since.unwrap_or(now - firewall_first),
        }
    }

    /// The one summary of a first start (`initial_sync = "baseline"`): `tracked` findings
    /// recorded silently. Its id derives from the store's epoch, so it is sent once.
    async fn summarise(
        &self,
        tracked: u64,
        now: OffsetDateTime,
        report: &mut PollReport,
    ) -> Result<(), PollError> {
        let settings = &self.source.settings;
        if settings.initial_sync != InitialSync::Baseline {
            return Ok(());
        }
        let summary = Event::summary(
            &settings.name,
            self.poll.domain,
            tracked,
            self.store.epoch(),
            now,
        );
        self.dispatcher
            .dispatch(summary, None, now, &mut report.dispatched)?;
        self.store.flush().await?;
        self.dispatcher.wake(&report.dispatched);
        Ok(())
    }

    fn snapshot(&self) -> bool {
        matches!(self.poll.domain, Domain::Vulnerabilities | Domain::Baseline)
    }

    /// One page: quarantine what could not be read, diff what was listed against its stored
    /// records, write ([`Poller::write`]). A snapshot notes what it listed for the sweep's end.
    async fn commit_page(
        &self,
        mut batch: Batch,
        now: OffsetDateTime,
        listed: &mut Listed,
        pairs: &mut PairLedger,
        report: &mut PollReport,
    ) -> Result<(), PollError> {
        let settings = &self.source.settings;
        let page_pairs = std::mem::take(&mut batch.pairs);
        let kept = PairLedger::keepable(
            &page_pairs,
            batch.findings.iter().map(|f| f.fingerprint.clone()),
            batch.quarantined.is_empty(),
        );
        self.keep_quarantined(&batch.quarantined, crate::clock::unix_ms(now))?;
        report.pages += 1;
        report.quarantined += batch.quarantined.len();
        report.observed += batch.findings.len();
        // A snapshot page is part of a sweep: what it lists is recorded as in a snapshot, but
        // absence is only judged at the sweep's end.
        let coverage = if self.snapshot() {
            listed.extend(batch.findings.iter().map(|f| listed_key(&f.fingerprint)));
            Coverage::Partial
        } else {
            Coverage::Window
        };
        let mut known = self.known_records(&batch.findings)?;
        if !self.snapshot()
            && let Some(before) = self
                .dispatcher
                .term()
                .and_then(|t| t.handoff.adopt_before_ms())
        {
            lifecycle::adopt(&batch.findings, &mut known, before, now);
        }
        let silent = batch.first_start && settings.initial_sync == InitialSync::Baseline;
        let diff = lifecycle::diff(
            batch.findings,
            &known,
            coverage,
            self.poll.events,
            silent,
            now,
        );
        report.silently_tracked += diff.silently_tracked;
        self.write(diff, now, report).await?;
        // The pair's row only once its findings are recorded; what skipped pairs kept counts
        // as listed.
        let now_ms = crate::clock::unix_ms(now);
        let seen = pairs.committed(&self.store, &settings.name, page_pairs, kept, now_ms)?;
        listed.extend(seen.iter().map(|fp| listed_key(fp)));
        self.metrics
            .poll_page(&settings.name, self.poll.domain.as_str());
        Ok(())
    }

    /// Writes a diff in the crash-safe order: events, then the records they justify, then one
    /// flush; then the sinks with something new are woken.
    async fn write(
        &self,
        mut diff: Diff,
        now: OffsetDateTime,
        report: &mut PollReport,
    ) -> Result<(), PollError> {
        if diff.changes.is_empty() {
            return Ok(());
        }
        report.changed += diff.changes.len();
        // Events are taken out of the changes (the records stay): no copy of the finding.
        for change in &mut diff.changes {
            if let Some(event) = change.event.take() {
                self.dispatcher.dispatch(
                    event,
                    Some(change.record.generation),
                    now,
                    &mut report.dispatched,
                )?;
            }
        }
        let name = &self.source.settings.name;
        for change in &diff.changes {
            self.store
                .put_record(name, self.poll.domain, &change.fingerprint, &change.record)?;
        }
        self.store.flush().await?;
        self.dispatcher.wake(&report.dispatched);
        Ok(())
    }

    /// The end of a complete snapshot sweep: the open findings it did not list. One pass over
    /// the stored records counts what is open and collects the fingerprints the sweep missed;
    /// the rule judges them all at once (a mass disappearance is held longer); then a chunk at
    /// a time they are loaded, looked up (vulnerabilities), confirmed and written.
    async fn resolve_absent(
        &self,
        listed: &Listed,
        only: Option<&BTreeSet<String>>,
        unread: &BTreeSet<Option<String>>,
        now: OffsetDateTime,
        report: &mut PollReport,
    ) -> Result<(), PollError> {
        let (name, domain) = (&self.source.settings.name, self.poll.domain);
        let mut open = 0usize;
        let mut missed: Vec<String> = Vec::new();
        // Judged only where the sweep read every listing: not in a cluster whose listing
        // failed, nowhere when an account-wide one did.
        let swept = |r: &Record| {
            let cluster = &r.last.kubernetes.cluster_id;
            only.is_none_or(|o| cluster.as_ref().is_some_and(|c| o.contains(c)))
                && !unread.contains(&None)
                && !unread.contains(cluster)
        };
        self.store.for_each_record(name, domain, |fp, r| {
            if r.status == RecordStatus::Active && swept(&r) {
                open += 1;
                if !listed.contains(&listed_key(&fp)) {
                    missed.push(fp);
                }
            }
        })?;
        let verdict = self.source.settings.gone.judge(missed.len(), open);
        let mut confirmation = Confirmation {
            vanished: missed.len(),
            pending: 0,
            mass: verdict.mass,
        };
        for chunk in missed.chunks(GONE_CHUNK) {
            let mut known = BTreeMap::new();
            for fp in chunk {
                if let Some(r) = self.store.get_record(name, domain, fp)? {
                    known.insert(fp.clone(), r);
                }
            }
            let mut diff = lifecycle::diff(
                Vec::new(),
                &known,
                Coverage::Snapshot,
                self.poll.events,
                false,
                now,
            );
            // Why did vulnerabilities leave the list? Asked before the chunk is written, so a
            // crash before its flush asks again.
            if domain == Domain::Vulnerabilities {
                self.explain_gone_vulnerabilities(&mut diff, now, report)
                    .await;
            }
            confirmation.pending += lifecycle::confirm_gone(&mut diff, &known, verdict.needed);
            // The clusters of what stays open pending are swept again by the next poll.
            let pending = diff
                .changes
                .iter()
                .filter(|c| c.record.status == RecordStatus::Active);
            report
                .missed_in
                .extend(pending.filter_map(|c| c.record.last.kubernetes.cluster_id.clone()));
            self.write(diff, now, report).await?;
        }
        self.report_confirmation(&confirmation);
        report.pending_gone = confirmation.pending;
        Ok(())
    }

    /// Says when a listing stopped at the page cap: a window reads the rest in later polls; a
    /// snapshot sweep is incomplete and resolves nothing.
    fn report_cuts(&self, end: &ReadEnd) {
        let domain = self.poll.domain.as_str();
        for cut in &end.cuts {
            if self.snapshot() {
                tracing::warn!(
                    source = self.name(),
                    domain,
                    action = cut.action,
                    pages = cut.pages,
                    total = cut.total,
                    "The sweep stopped at the page cap (max_pages): what it listed is recorded and sent, but it is incomplete, so nothing is resolved as gone; raise max_pages."
                );
            } else {
                tracing::info!(
                    source = self.name(),
                    domain,
                    action = cut.action,
                    pages = cut.pages,
                    total = cut.total,
                    "The page cap (max_pages) stopped a listing: what was read is committed, and the older rest is read by the next polls."
                );
            }
        }
    }

    /// Snapshot domains: a cheap probe first; an unchanged one skips the sweep (the cursor
    /// records the success), except for the periodic reconcile. A probe that fails is not
    /// fatal: sweep instead.
    async fn probe(
        &self,
        first: bool,
        cursor: Option<&Cursor>,
        now_ms: i64,
    ) -> Result<Probe, PollError> {
        let settings = &self.source.settings;
        let domain = self.poll.domain;
        let probe = match domain {
            Domain::Vulnerabilities | Domain::Baseline if !first => {
                match self.source.change_probe(domain).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::debug!(source = %settings.name, domain = domain.as_str(), error = %e, "Change probe failed; sweeping in full.");
                        None
                    }
                }
            }
            _ => None,
        };
        if let (Some(p), Some(c)) = (&probe, cursor) {
            let reconcile_ms =
                (self.poll.interval.as_millis() as i64).saturating_mul(RECONCILE_EVERY as i64);
            let recent = c
                .last_sweep_ms
                .is_some_and(|at| now_ms.saturating_sub(at) < reconcile_ms);
            if let Some(old) = c.probe.as_deref().filter(|_| recent) {
                let only = changed_clusters(old, p);
                if only.is_empty() {
                    let mut next = c.clone();
                    next.last_success_ms = now_ms;
                    self.store.set_cursor(&settings.name, domain, &next)?;
                    return Ok(Probe::Unchanged);
                }
                // Only the clusters whose counts moved are read again.
                return Ok(Probe::Sweep {
                    probe,
                    only: Some(only),
                });
            }
        }
        Ok(Probe::Sweep { probe, only: None })
    }

    /// The stored records of what a page lists (nothing else: loading every record on every
    /// page would cost memory and time with the size of the store).
    fn known_records(&self, observed: &[Finding]) -> Result<BTreeMap<String, Record>, StoreError> {
        let source = &self.source.settings.name;
        let mut known = BTreeMap::new();
        for f in observed {
            if let Some(r) = self
                .store
                .get_record(source, self.poll.domain, &f.fingerprint)?
            {
                known.insert(f.fingerprint.clone(), r);
            }
        }
        Ok(known)
    }

    /// Says why findings that left the list are not resolved yet, when that is news: a mass
    /// disappearance is held at WARN (it looks like a broken answer), the rest at DEBUG.
    fn report_confirmation(&self, c: &Confirmation) {
        if c.pending == 0 {
            return;
        }
        let domain = self.poll.domain.as_str();
        if c.mass {
            tracing::warn!(
                source = self.name(),
                domain,
                vanished = c.vanished,
                sweeps = self.source.settings.gone.hold_sweeps,
                "A large share of the open findings left the list in one sweep; holding them open until that many sweeps in a row agree."
            );
        } else {
            tracing::debug!(
                source = self.name(),
                domain,
                pending = c.pending,
                "Findings left the list; they resolve once the next sweep agrees."
            );
        }
    }

    /// Keeps the records the poll could not read where the operator can see them (the store's
    /// quarantine, `sasrelay findings --quarantined`), warning once per new record.
    fn keep_quarantined(&self, records: &[Quarantined], now_ms: i64) -> Result<(), StoreError> {
        let domain = self.poll.domain;
        for q in records {
            let entry = QuarantineEntry {
                v: crate::store::QUARANTINE_SCHEMA,
                source: self.name().to_string(),
                domain,
                digest: q.digest.clone(),
                action: q.action.clone(),
                reason: q.reason.clone(),
                raw: q.raw.clone(),
                bytes: q.bytes,
                first_seen_ms: now_ms,
                last_seen_ms: now_ms,
                times: 1,
            };
            if self.store.quarantine(&entry)? {
                tracing::warn!(
                    source = self.name(),
                    domain = domain.as_str(),
                    action = %q.action,
                    digest = %q.digest,
                    bytes = q.bytes,
                    reason = %crate::text::strip_control(&q.reason),
                    "Quarantined a record Security Center listed but sasrelay cannot read; see `sasrelay findings --quarantined`."
                );
            }
        }
        Ok(())
    }

    /// Asks Security Center why the vulnerabilities that left the pending list left it — fixed,
    /// ignored or expired ([`Source::lookup_resolved_vulnerabilities`]) — and resolves them
    /// with that reason ([`lifecycle::explain_gone`]); the rest stay `gone`. A failed lookup
    /// does not fail the poll (that would hold every other change of the poll back for as long
    /// as the lookup fails): those findings are resolved as `gone`, once, with a warning.
    async fn explain_gone_vulnerabilities(
        &self,
        diff: &mut lifecycle::Diff,
        now: OffsetDateTime,
        report: &mut PollReport,
    ) {
        let wanted: BTreeMap<crate::sas::models::RecordId, Option<String>> = diff
            .gone()
            .filter_map(|c| {
                let id = crate::sas::normalise::vul_primary_id(&c.record.id)?;
                Some((id, c.record.last.kubernetes.cluster_id.clone()))
            })
            .collect();
        if wanted.is_empty() {
            return;
        }
        report.looked_up += wanted.len();
        match self.source.lookup_resolved_vulnerabilities(&wanted).await {
            Ok(closed) => report.explained += lifecycle::explain_gone(diff, closed, now),
            Err(e) => {
                report.lookup_failed = true;
                tracing::warn!(
                    source = self.name(),
                    domain = Domain::Vulnerabilities.as_str(),
                    findings = wanted.len(),
                    error = %e,
                    "Could not look up why vulnerabilities left the pending list; resolving them as gone."
                );
            }
        }
    }

    /// Counts and logs a successful poll that took `took`.
    fn record(&self, r: &PollReport, took: Duration) {
        let domain = self.poll.domain.as_str();
        self.metrics
            .poll_ok(self.name(), domain, took, r.observed, &r.dispatched);
        self.metrics.quarantined(self.name(), domain, r.quarantined);
        tracing::debug!(
            source = self.name(),
            domain,
            observed = r.observed,
            changed = r.changed,
            enqueued = r.dispatched.enqueued,
            grouped = r.dispatched.grouped,
            suppressed = r.dispatched.silenced + r.dispatched.muted,
            dropped = r.dispatched.dropped,
            duplicates = r.dispatched.duplicates,
            skipped_unchanged = r.skipped_unchanged,
            looked_up = r.looked_up,
            explained = r.explained,
            quarantined = r.quarantined,
            pending_gone = r.pending_gone,
            pages = r.pages,
            interrupted = r.interrupted,
            incomplete = r.incomplete,
            backfill = r.backfill,
            pairs_skipped = r.pairs_skipped,
            pairs_listed = r.pairs_listed,
            "Poll done."
        );
        if r.silently_tracked > 0 {
            tracing::info!(
                source = self.name(),
                domain,
                tracked = r.silently_tracked,
                "First start: tracking open findings silently (initial_sync = baseline)."
            );
        }
    }
}

impl Task for Poller {
    fn label(&self) -> Label {
        Label::new("poll")
            .source(self.name())
            .domain(self.poll.domain.as_str())
    }

    /// A failed poll is retried from 1 s, doubling, but never later than the next regular
    /// poll would have been.
    fn backoff(&self) -> Backoff {
        Backoff::saturating(Duration::from_secs(1), self.poll.interval)
    }

    /// One poll now ([`Poller::poll_once`]), counted and logged; the next one after the
    /// interval. A failed poll never advances the watermark; a store failure is logged at
    /// ERROR at once (data waits to be recorded), a read failure only once it persists.
    async fn step(&mut self) -> Result<Next, TaskError> {
        if !self.offset_taken {
            // The pollers of a start (and of a reload) do not all call at once: each first
            // waits a random part of a tenth of its interval (at most 10 s).
            self.offset_taken = true;
            if let Err(e) = self.restore_details() {
                tracing::warn!(source = self.name(), error = %e, "Could not read the kept baseline check details; fetching them again.");
            }
            let spread = (self.poll.interval / 10).min(MAX_START_OFFSET);
            return Ok(Next::After(spread.mul_f64(rand::random::<f64>())));
        }
        if self.dispatcher.term().is_some_and(|t| !t.gate.open()) {
            // The leadership term is over (or past its deadline): no poll; the daemon is
            // stopping this poller.
            return Ok(Next::After(Duration::from_secs(1)));
        }
        let started = std::time::Instant::now();
        match self.poll_once(OffsetDateTime::now_utc()).await {
            Ok(r) => {
                self.record(&r, started.elapsed());
                Ok(Next::After(self.poll.interval))
            }
            Err(e) => {
                let (action, reason) = match e.sas() {
                    Some(err) => (err.action().unwrap_or("none"), err.reason_label()),
                    None => ("none", "store"),
                };
                let error = e.to_string();
                let failure = PollFailure {
                    action,
                    reason,
                    error: &error,
                };
                self.metrics.poll_failed(
                    self.name(),
                    self.poll.domain.as_str(),
                    started.elapsed(),
                    failure,
                );
                if let PollError::Store(err) = &e {
                    self.store.heal(err).await;
                }
                let data_at_risk = matches!(e, PollError::Store(_));
                let what = match e {
                    PollError::Partial(_) => "Poll failed in part; the rest is recorded, retrying.",
                    _ => "Poll failed; nothing was recorded, retrying.",
                };
                Err(TaskError::retryable(what, e).urgent(data_at_risk))
            }
        }
    }
}
