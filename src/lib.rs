//! # sasrelay
//!
//! sasrelay reads security findings for ACK (Alibaba Cloud Kubernetes) clusters from Alibaba Cloud
//! Security Center (API `sas` 2018-12-03) and forwards them. This crate is the whole product: one
//! library, one binary (`src/main.rs` tunes the allocator, installs `src/image.rs`'s start-up
//! memory release — the only `unsafe` code, kept out of this library — and calls
//! [`cli::main`]).
//!
//! ## Bird's-eye view
//!
//! ```text
//! config (TOML) ──► config::Settings (checked; every error at once, with file:line:col and key)
//!                      │
//! credentials ── CredentialHandle: static keys, env, RRSA (OIDC → STS), ECS RAM role, URI;
//!                      │          refreshed in the background ahead of expiry
//! sas ────────── client: one signed call (V3 ACS3-HMAC-SHA256 or V1 HMAC-SHA1), body capped,
//!                      │          errors classified by Code, throttling/5xx/timeouts retried;
//!                      │          api: the four domains a page at a time; normalise: every item into
//!                      │          one `Finding`; source: a configured source reading a domain
//! pipeline ───── poller (page by page) → lifecycle (pure diff) → dispatch (routing::Router, pure) → the
//!                      │          sink's outbox, a routing group or the suppression log;
//!                      │          grouper closes due groups into digests; reminders
//! store ──────── sled, single-key writes only: per page dispatch writes (payload appended to
//!                      │          the payload log, entry header and guard in sled) → records →
//!                      │          flush (payload log, then sled); then the cursor
//! pipeline ───── delivery: one worker per sink, up to `concurrency` attempts in flight (one
//!                      │          finding's events one at a time): due entry → sinks::Sink::deliver
//!                      │          (one attempt, after the sink's rate limit) → ack (group commit) /
//!                      │          reschedule with backoff / dead letter; a rate-limited backlog
//!                      │          folded into digests
//! sinks ──────── webhook, stdout, file, DingTalk, Feishu, WeCom, Slack, email, PagerDuty;
//!                                 render makes their bodies (pure)
//! ```
//!
//! [`daemon`] wires these together, runs them as tasks and stops them in order, and serves
//! the admin API (and, on `[admin] health_listen`, its health and metrics alone, for
//! Kubernetes) and, with `[actions]`, the action page notifications' buttons open
//! ([`daemon::act`]). `sasrelay simulate` ([`simulator`]) serves a fake Security Center that checks
//! signatures, pages, filters and fails the way the real one does; tests, the benchmarks and
//! `sasrelay demo` use it.
//!
//! ## Layers
//!
//! Modules import only downward; `tests/it/architecture.rs` fails on any import cycle between
//! sibling modules and on a leaf importing anything of ours.
//!
//! | layer | modules |
//! |---|---|
//! | leaves: imported by many, import nothing of ours | [`text`], [`duration`], [`clock`], [`backoff`], [`section`], [`secret`], [`http_body`] |
//! | the data that flows (pure) | [`finding`], [`event`], [`record`] |
//! | pure decisions and bodies | [`routing`], [`render`], [`health`], [`action_link`] |
//! | doors to the outside | [`credentials`], [`sas`] (Security Center), [`sinks`] (the destinations), [`store`] (the only door to sled) |
//! | configuration: every component's config checked into one `Settings` | [`config`] |
//! | the shape of a long-running job | [`task`] (imports only [`backoff`]) |
//! | one finding's path | [`pipeline`] |
//! | acting on a finding (a responder's request, checked, done, audited) | [`handle`] |
//! | running it | [`daemon`], [`cli`]; [`simulator`] beside them |
//!
//! Two places differ from the layout in STYLE's sketch, for the import graph: secrets
//! ([`secret`]) are a leaf rather than part of `config` (credentials and sinks resolve them,
//! and `config` imports both), and the counters the pipeline updates live in
//! [`pipeline::metrics`] (the daemon only exposes them), so the pipeline never imports the
//! daemon.
//! [`health`] is pure but reads its `heartbeat_url` the way a sink reads its URL
//! ([`sinks::MaybeSecret`], checked by `sinks::http::parse_url`), so it imports [`sinks`]
//! for those two; below [`daemon`] only [`config`] imports it.
//!
//! ## Codemap
//!
//! - [`text`] — the one scrubber for attacker-written text (control and invisible
//!   characters), the truncators (the marker counts towards the limit), error chains, RFC 3986
//!   encoding.
//! - [`duration`] — `"30s"`, `"1h30m"`: parsed and printed back one way everywhere.
//! - [`clock`] — Unix milliseconds (the store's unit) and the injectable wall [`clock::Clock`].
//! - [`backoff`] — the one retry curve (exponential, capped, equal jitter).
//! - [`section`] — one TOML section read on its own, errors with span and key path.
//! - [`secret`] — `{ env = "X" }` / `{ file = "path" }` references and the redacting
//!   [`secret::Secret`].
//! - [`http_body`] — the one capped body read (exactly `cap` bytes is whole, one more is not).
//! - [`task`] — the contract of a long-running job (garage's `Worker` style): one step, then
//!   "again now", "after D", "when woken or after D" or "done"; errors say whether to retry.
//! - [`finding`] — the normalised [`finding::Finding`], its scales, links and fingerprint.
//! - [`event`] — `Event` (new / recurring / resolved / summary / reminder) with its idempotency
//!   key, `Digest` (grouped events), `HealthEvent` (a meta-event about sasrelay itself) and the
//!   `HealthEpisode` the store keeps per condition, the outbox entry and dead letter
//!   (versioned JSON), which event kinds a domain emits.
//! - [`record`] — what the store keeps per finding to follow its lifecycle, and the rule
//!   for when one that left a snapshot is gone ([`record::GoneRule`], a source setting).
//! - [`config`] — raw TOML with spans → checked [`config::Settings`].
//! - [`credentials`] — `credentials = { type = ... }` config, the provider chain (static keys,
//!   env, RRSA, ECS RAM role, URI, the SDK's default chain), one background refresher per
//!   expiring credential, the [`credentials::SigningKey`] a signature borrows.
//! - [`sas`] — everything that knows Security Center: [`sas::sign`] (both signature
//!   algorithms and their verification, pure), [`sas::params`], [`sas::endpoint`] (region →
//!   site → host), [`sas::client`] (one attempt and the retrying call), [`sas::retry`],
//!   [`sas::quota`] (the call budget: one token bucket per site and action, shared by every
//!   source), [`sas::error`] (error bodies, classification by Code, operator hints), [`sas::models`]
//!   (tolerant response models keeping the raw JSON), [`sas::api`] (one listing per domain,
//!   read a page at a time by a resumable walker with a pure continue/stop decision; the
//!   baseline walk, with check details kept across sweeps; statistics probes; vulnerability
//!   lookup by id), [`sas::pairs`] (baseline risk × asset pairs and when one whose counts
//!   did not change may go unlisted, pure), [`sas::normalise`] (raw records → `Finding`, pure),
//!   [`sas::source`] (a configured source: its checked settings, credentials and client,
//!   reading a domain per cluster or account-wide — alerts and firewall of several clusters
//!   in one listing, filtered on arrival — a page at a time, resuming what the page cap left,
//!   going on past a listing that fails so one cluster holds back no other).
//!   A snapshot poll sweeps only the clusters whose statistics changed, and a baseline sweep
//!   lists only the risk × asset pairs whose counts changed. [`sas::handle`]: the write
//!   actions behind the console's "Handle" (an alert's allowed operations, the task that
//!   applies one, its status; a vulnerability's, a baseline check's, a firewall rule's
//!   switch), typed.
//! - [`action_link`] — the signed, expiring action links of notifications (`[actions]`): the
//!   token (HMAC-SHA256 over its claims: source, finding, action, sink, expiry, nonce), its
//!   check (tampered, expired, another finding's), the [`action_link::Minter`] a chat sink mints
//!   its buttons with, `[actions]` settings. Pure; the page that takes the links is
//!   `daemon::act`.
//! - [`handle`] — acting on a finding (an alert: ignore, whitelist, mark handled, their undos;
//!   a vulnerability: verify, fix, ignore, undo; a baseline risk: ignore, undo, re-check; a
//!   firewall alert: its rule off or on): the request, the plan checked against what the
//!   finding allows now, the action done once and its task followed, the outcome and its audit
//!   entry. The daemon runs it for `sasrelay handle` (admin API) and for the action page
//!   (`daemon::act`); a `resolved` event then names who handled it (`handled_by`, read from
//!   the audit log by [`pipeline::dispatch`]).
//! - [`pipeline`] — one finding's path in order, its module doc drawing the flow:
//!   [`pipeline::poller`] (page by page: read → diff → crash-safe writes; a complete sweep's
//!   end: lookup of vulnerabilities that left the list; the backfill of what the page cap left), [`pipeline::lifecycle`] (the pure transition table),
//!   [`pipeline::dispatch`] (routing decisions applied to the store; the book of silences;
//!   what silences and mute windows hold, sent at their end; reminders due),
//!   [`pipeline::grouper`] (due groups into digests, due reminders sent, what ended silences
//!   and mute windows held released), [`pipeline::pairs`] (what a baseline sweep keeps of its
//!   pairs: the rows it asks, those it writes and removes),
//!   [`pipeline::delivery`] (the per-sink worker, its pure retry / dead-letter decision and
//!   crash-safe backlog folding), [`pipeline::metrics`] (the counters these update). The
//!   poller, the worker and the grouper are [`task::Task`]s: each step is one poll, one
//!   delivery attempt, one grouping tick.
//! - [`ha`] — two replicas, one leader: the election with client-go's semantics
//!   ([`ha::lease`]: expiry on the local monotonic clock, compare-and-swap writes, the
//!   transition count as the epoch; the [`ha::lease::Gate`] every poll and send checks) on a
//!   Kubernetes Lease ([`ha::kube`]) or a PostgreSQL row ([`ha::postgres`]); the checkpoint a
//!   stale epoch cannot overwrite ([`ha::checkpoint`]; a ConfigMap or a row); what it holds
//!   and what a successor decides from it ([`ha::ledger`]: per source × domain and sink a
//!   settled-through mark and a ring above it; the verdict per event); `[ha]`
//!   ([`ha::config`]). Pure but for the coordinators' IO.
//! - [`health`] — the health model, pure: a source × domain's state (`starting`, `ok`,
//!   `degraded`, `blind`) from its poll figures, the conditions that send meta-events (a
//!   blind domain, a credential about to expire unrefreshed, a stalled sink), their episodes,
//!   `[health]`.
//! - [`routing`] — pure routing (Alertmanager-style): matchers, the route tree with
//!   inheritance and `continue`, grouping settings, time intervals, silences; decide and
//!   explain for a subject at a given `now`.
//! - [`store`] — the only module that imports sled: records, cursors, per-sink outboxes with
//!   enqueue guards (each entry a small header pointing into the payload log, `payloads/`
//!   beside sled's files: every event's payload appended once, however many sinks it goes
//!   to, zstd with a frozen dictionary, synced before each sled flush, deleted a segment at
//!   a time; records LZ4 with a frozen dictionary of their own), dead letters, routing groups and their crash-safe close, reminders,
//!   silences, the suppression log, quarantined records, baseline check details and pairs, the
//!   handling audit log, schema version, pruning; its module doc lists every tree.
//! - [`sinks`] — one file per destination (`webhook` with Standard Webhooks signing, `stdout`,
//!   `file`, `dingtalk`, `feishu`, `wecom`, `slack`, `email`, `pagerduty`) and what they share
//!   once: [`sinks::http`] (client, URL and host rules, one exchange, `Retry-After`),
//!   [`sinks::limit`] (GCRA limiters, starting empty), [`sinks::robot`] (the group robots' one
//!   answer-code classifier), [`sinks::chat`] (folding, templates, mentions). A
//!   [`sinks::Sink`] is its common fields (name, filters, fold) beside a per-platform
//!   [`sinks::Backend`]; the `sasrelay.event.v1` payload is [`sinks::payload`].
//! - [`render`] — the pure rendering layer of the chat, mail and paging sinks: DingTalk robot
//!   JSON, Feishu cards, WeCom markdown, Slack Block Kit, email subject/text/HTML from
//!   minijinja templates (built-in en/zh or custom), PagerDuty events; per-output escaping of
//!   untrusted text, mentions only from config, size limits.
//! - [`daemon`] — `run` is wiring only: the store (opened once), the admin API and the
//!   process-long tasks, reloads taken one at a time, everything stopped in order;
//!   [`daemon::build`] (the one step from a config file to what the daemon starts
//!   with, no store and no network: sinks with their secrets, templates, the admin token;
//!   every problem at once; `check` runs it and stops), [`daemon::wiring`] (what a reload
//!   rebuilds: routes, sinks' workers, sources, the grouper, each handed over only once the
//!   old one has ended), [`daemon::reload`] (SIGHUP / `POST /-/reload` requests, the atomic
//!   re-read, the shared reload status, the log filter), [`daemon::tasks`] (the runner: loop, cancellation, backoff, failure and recovery
//!   logs), [`daemon::sources`] (connecting a source, then starting its pollers),
//!   [`daemon::prune`], [`daemon::admin`] (silences, the suppression log, dead letters with
//!   replay and discard, handling a finding and its audit log, `/healthz`, `/readyz`,
//!   `/metrics`; bearer token on `/api/`),
//!   [`daemon::door`] (the admin API's door: `Host`, `Origin` and `Content-Type` screening,
//!   header-read and idle timeouts, the connection cap), [`daemon::metrics`] (the Prometheus exposition), [`daemon::notify`] (systemd
//!   `sd_notify` and the watchdog heartbeat), [`daemon::health`] (live health for `/readyz`,
//!   `/api/v1/status` and `/metrics`; the monitor that enqueues meta-events),
//!   [`daemon::heartbeat`] (the ping to an external dead man's switch), [`daemon::memory`]
//!   (start-up memory handed back once every source × domain has had its first poll),
//!   [`daemon::ha`] (with `[ha]`: standing for the lease; a term's takeover — checkpoint
//!   loaded and fenced, cursors moved back, leftovers settled — its parts and checkpoint
//!   writer; stepping down at once when the lease is lost).
//! - [`cli`] — one file per subcommand (`check`, `findings`, `run`, `demo`, `simulate`,
//!   `render`, `send-test`, `silence`, `dead-letters`, `handle`, `healthcheck`, `status`, `reload`,
//!   `route test`, `completions`, `man`), logging setup, signals, exit codes, the admin-API
//!   client, the configuration path (`--config`, `SASRELAY_CONFIG`, the default), standard
//!   output that ends quietly on a closed pipe.
//! - [`simulator`] — the fake Security Center behind `sasrelay simulate` and the tests.
//! - `lib.rs` itself sets the global allocator (mimalloc), so the binary, the tests and the
//!   benchmarks run on the same one.
//!
//! ## The network doors
//!
//! Only these open sockets: [`sas::client`] and [`credentials`] (Security Center, STS, the
//! metadata service), [`sinks`] (the destinations), [`daemon::admin`] (the admin API, on
//! loopback by default, behind [`daemon::door`]) and [`simulator`] (tests and the demo). Every outbound call has connect
//! and total timeouts and reads its body under a cap ([`http_body`]).
//!
//! ## Invariants
//!
//! - Signing, parameter encoding, error classification, the retry schedule and config checking do
//!   no IO and read no clock; their inputs come from the caller, so they are table-tested.
//! - Secrets live in [`secret::Secret`]; nothing logs or `Debug`-prints a secret, and
//!   transport errors are printed without the request URL (it carries the AccessKey ID and, under
//!   V1, the STS token).
//! - `SasClient::call_once` makes exactly one HTTP request; all waiting happens in `call`, bounded
//!   by the source's retry policy.
//! - Every response body is read under a size cap; every call has connect and total timeouts;
//!   every listing has a page cap.
//! - Normalisation is pure and keeps the raw item: nothing the service sends is dropped, and a
//!   fingerprint is SHA-256 over length-prefixed canonical fields (versioned), never `std`'s
//!   hasher.
//! - Attacker-controlled text (anything inside a finding) is printed to terminals only with
//!   control characters removed.
//! - Only [`store`] imports sled, and it never uses sled batches or transactions. A poll's
//!   writes go, page by page, events (outbox entries, group members, suppressions) → records
//!   → flush, and the cursor last; the cursor never gets ahead of durable state. A page's
//!   Security Center calls (a resolution chunk's vulnerability lookup included) happen before
//!   its writes. A poll holds one page, never every finding; the page cap stops a listing, not
//!   a poll: a window's older rest is resumed by the next polls (the cursor's backfill).
//! - An outbox entry's payload is in the payload log before the entry is in sled, and a flush
//!   syncs the log before sled: a durable entry always finds its payload. A payload segment
//!   is deleted only after a flush made durable the removal of the last entry pointing into it.
//! - An event id derives from (fingerprint, kind, generation, occurrence), never from the
//!   resolution: a finding resolves once per lifecycle however a re-poll explains it. A failed
//!   lookup of vulnerabilities that left the list is not a failed poll.
//! - Absence is evidence only from complete sweeps: a snapshot finding resolves as `gone` only
//!   after consecutive complete sweeps miss it ([`pipeline::lifecycle::confirm_gone`]); a sweep
//!   holding an unreadable (quarantined) record resolves nothing; a 200 that is not a page is
//!   an error, never an empty page. One unreadable record is quarantined, never fatal.
//! - Windows are read by Security Center's clock: the watermark is the poll's start less how
//!   far the local clock runs ahead of the service (its answers' `Date`), and never past now
//!   ([`sas::client::ServiceClock`]). A listing whose `TotalCount` falls mid-walk is read
//!   again from where the moved records are ([`sas::api::Walker`]).
//! - Routing and matching do no IO and read no clock (`now` is a parameter). A routed event is
//!   in exactly one digest per (route, sink): a group close records the digest id and the last
//!   member it covers before it enqueues, and removes members only after.
//! - A silenced or muted event is recorded and held whole, never sent while held; when its
//!   silence or mute window ends it goes through its route once if its finding is still open
//!   (one message per finding: its `new`, else its latest `recurring`), else it is let go (a
//!   `resolved` still goes to a sink with `send_resolved_after_silence` that was told of the
//!   finding). Folded copies are removed before anything is sent, so a crash sends no two.
//! - An outbox entry is removed only after its sink confirmed delivery; a sink makes one attempt
//!   per call and never sleeps; the worker owns backoff, `Retry-After` and dead letters. A
//!   sink whose rate limiter has no permit sends nothing (`Outcome::Throttled`): not an attempt.
//!   An entry starts only while no attempt in flight carries one of its findings, so one
//!   finding's events reach a sink in order; a stop lands every attempt in flight.
//!   An entry the store cannot read back (a damaged payload) is moved to the dead letters by
//!   the read that meets it, marked unreadable, so it never stalls the entries behind it.
//! - A dead-letter replay writes the new entry, then moves the payload's guard to it, then
//!   removes the dead letter; a payload is never pending twice. An unreadable dead letter is
//!   never replayed.
//! - A backlog fold enqueues the digest (guarded by an id derived from its members) and flushes
//!   before it acks the members; webhooks and PagerDuty never fold.
//! - Every task of the daemon is run by [`daemon::tasks::run`], spawned on a tracker and stopped
//!   through a cancellation token; a step in progress is never abandoned by the runner, and a
//!   step that panics is a failed step (logged at ERROR, retried after the backoff), never a
//!   task that silently vanishes.
//! - A meta-event goes through the outbox like every event, with an id derived from (condition,
//!   episode, status): the episode's change is stored, then enqueued, then marked announced, so
//!   a restart neither repeats nor forgets it. Routes, silences and sink filters do not apply
//!   to it. A source that cannot connect counts as a failed poll of each of its domains.
//! - A reload applies a file whole or not at all, and never runs two workers of one sink or
//!   two pollers of one source and domain at once ([`daemon::wiring`]); the store is opened
//!   once per process.
//! - With `[ha]`, pollers, workers and the grouper run only within a leadership term: a poll
//!   starts and a send starts only while the term's gate is open (the lease renewed within
//!   `renew_deadline` on the local monotonic clock, and for a send also a stored checkpoint
//!   that holds every delivery so far or was taken within one `checkpoint_interval`), and a
//!   send in flight is cut off at the deadline. A term judges its polls' health from its own
//!   start. A term writes
//!   the checkpoint under its epoch before anything starts; no write under an older epoch
//!   lands. A successor sends every event the old leader had not settled (by the marks and
//!   rings) and flags each it may be sending again; a replica's store is never shared.
//! - sasrelay never requests a destructive operation ([`handle::DESTRUCTIVE`]: killing,
//!   quarantining, blocking, switching protection off). A write to Security Center on a
//!   finding is checked against what the finding allows now, made once (never retried: a
//!   retry could act twice), and recorded in the audit log whatever its result.
//! - An action link acts at most once and only on a confirmed `POST` from its own page: the
//!   link's signature, expiry and finding are checked, the page's CSRF token (bound to its
//!   cookie and the link) and the request's origin are checked, the identity comes only from
//!   a trusted proxy, and the link is spent in the store before Security Center is called
//!   ([`daemon::act`]). A `GET` changes nothing.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// mimalloc, for the binary and for every test and benchmark that links this crate, so the
/// benchmarks measure what the daemon runs. sled clones and frees whole tree nodes on its own
/// threads; under that churn glibc's malloc spent about a quarter of the hot path in
/// `malloc_consolidate` and `unlink_chunk` (README, Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod action_link;
pub mod backoff;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod daemon;
pub mod duration;
pub mod event;
pub mod finding;
pub mod ha;
pub mod handle;
pub mod health;
pub mod http_body;
pub mod pipeline;
pub mod record;
pub mod render;
pub mod routing;
pub mod sas;
pub mod secret;
pub mod section;
pub mod simulator;
pub mod sinks;
pub mod store;
pub mod task;
pub mod text;
