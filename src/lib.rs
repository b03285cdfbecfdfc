//! # sasrelay
//!
//! sasrelay reads security findings for ACK (Alibaba Cloud Kubernetes) clusters from Alibaba Cloud
//! Security Center (API `sas` 2018-12-03) and forwards them. This crate is the whole product: one
//! library, one binary (`src/main.rs` only calls [`cli::main`]).
//!
//! ## Bird's-eye view
//!
//! ```text
//! config (TOML) ──► config::Settings (checked; every error at once, with file:line:col and key)
//!                      │
//! credentials ── CredentialHandle: static keys, env, RRSA (OIDC → STS), ECS RAM role, URI;
//!                      │          refreshed in the background ahead of expiry
//! sas::client ── one signed call (V3 ACS3-HMAC-SHA256 or V1 HMAC-SHA1), body capped, errors
//!                      │          classified by Code; retries throttling/5xx/timeouts
//! sas::api ───── the four domains read the way the ACK Security Monitoring page shows them,
//!                      │          fully paged, page count capped
//! finding ────── every item normalised into one `Finding` with a SHA-256 fingerprint
//!                      │
//! poller ─────── one task per (source, domain): read a window or a snapshot → lifecycle::diff
//!                      │          (pure) → vulnerabilities that left the list looked up by id
//!                      │          (lifecycle::explain_gone, pure) → events
//! dispatch ───── routing::Router::decide (pure) per event → each target's sink outbox, its
//!                      │          routing group, or the suppression log (silence, mute window)
//! store ──────── sled, single-key writes only: dispatch writes (guarded) → records → flush →
//!                      │          cursor
//! grouper ────── closes due groups (group_wait, group_interval, max size) into one digest in
//!                      │          the sink's outbox, crash-safely
//! delivery ───── one worker per sink: due entry → sinks::Sink::deliver (one attempt, after the
//!                                 sink's rate limit) → ack / reschedule with backoff / dead
//!                                 letter; a rate-limited backlog is folded into digests
//! ```
//!
//! `daemon` wires these together and stops them in order. `sasrelay simulate`
//! ([`simulator`]) serves a fake Security Center that checks signatures, pages, filters and
//! fails the way the real one does; tests, the benchmarks and `sasrelay demo` use it.
//!
//! ## Codemap
//!
//! - [`cli`] — subcommands (`check`, `findings`, `run`, `demo`, `simulate`, `silence`,
//!   `dead-letters`, `route test`, `render`, `send-test`), logging setup, exit codes; the
//!   admin-API client that `silence` and `dead-letters` share.
//! - [`config`] — raw TOML with spans → checked [`config::Settings`]; durations like `"30s"`.
//! - [`secret`] — `{ env = "X" }` / `{ file = "path" }` references and the redacting [`secret::Secret`].
//! - [`credentials`] — `credentials = { type = ... }` config, the provider chain (static keys,
//!   env, RRSA, ECS RAM role, URI, the SDK's default chain) and one background refresher per
//!   expiring credential.
//! - [`sas::sign`] — both signature algorithms and their server-side verification (pure).
//! - [`sas::params`] — parameter serialisation (flat `Name.1`, comma, JSON) and URL encodings.
//! - [`sas::endpoint`] — region → site → endpoint host.
//! - [`sas::client`] — transport: one attempt (`call_once`) and the retrying `call`.
//! - [`sas::retry`] — the retry schedule (pure).
//! - [`sas::error`] — error bodies, classification by Code, operator hints.
//! - [`sas::models`] — tolerant response models (lenient numbers/strings, odd key spellings,
//!   the raw JSON kept beside every typed item) and paging metadata.
//! - [`sas::api`] — one listing per domain (request building, full paging with a pure
//!   continue/stop decision), the baseline walk, the statistics probes, the lookup of
//!   vulnerability records by `PrimaryId` (`Ids`, 50 a call).
//! - [`finding`] — the normalised [`finding::Finding`], severity/status mappings, fingerprints,
//!   links; pure.
//! - [`sas::source`] — a configured source connected (credentials + client), reading or probing a
//!   domain per cluster or account-wide.
//! - [`simulator`] — the fake Security Center behind `sasrelay simulate` and the tests.
//! - [`event`] — `Event` (new / recurring / resolved / summary) with its idempotency key,
//!   `Digest` (grouped events), the outbox entry and dead letter (versioned, persisted as JSON).
//! - [`pipeline::lifecycle`] — the pure transition table: observations × known records → records and
//!   events; the stored `Record`; `explain_gone` turns a snapshot's `gone` into the looked-up
//!   reason (fixed, ignored, expired).
//! - [`store`] — the only module that imports sled: records, cursors, per-sink outboxes with
//!   enqueue guards, dead letters, routing groups and their crash-safe close, silences, the
//!   suppression log, schema version, pruning, clear open errors; values are JSON,
//!   LZ4-compressed above 512 bytes.
//! - [`pipeline::poller`] — one poll's read → diff → lookup of vulnerabilities that left the list →
//!   crash-safe writes, and the poll loop with backoff.
//! - [`routing`] — pure routing (Alertmanager-style): matchers, the route tree with
//!   inheritance and `continue`, grouping settings, time intervals, silences; decide and
//!   explain for a subject at a given `now`.
//! - [`pipeline::dispatch`] — applies routing decisions to the store (outbox, groups, suppressions);
//!   the in-memory book of silences, written through to the store.
//! - [`pipeline::grouper`] — the task that turns due groups into digests.
//! - [`pipeline::delivery`] — the per-sink worker, its pure retry / dead-letter decision and its
//!   crash-safe backlog folding (pure plan, single-key writes).
//! - [`sinks`] — `webhook` (Standard Webhooks), `stdout`, `file`, `dingtalk` (robot pools,
//!   signing, errcode classification), `feishu` (Feishu/Lark custom bot: body signing, code
//!   classification), `wecom` (WeCom group robot, errcode classification), `slack` (webhook
//!   or chat.postMessage), `email` (lettre SMTP), `pagerduty` (Events API v2, one alert per
//!   finding): config, one attempt, outcome
//!   classification, the `sasrelay.event.v1` payload; `sinks::chat` holds the GCRA rate
//!   limiters (memory-only, so they start empty), what the robot sinks share (the answer type,
//!   the "too large" memory, one HTTP exchange, the single-URL poster of Feishu and WeCom).
//! - [`render`] — the pure rendering layer of the chat, mail and paging sinks: DingTalk robot
//!   JSON, Feishu interactive cards (header colour by severity), WeCom markdown, Slack Block
//!   Kit, email subject/text/HTML from minijinja templates (built-in en/zh or custom),
//!   PagerDuty events (trigger/resolve under a fingerprint-derived `dedup_key`),
//!   per-output escaping of untrusted text, mentions only from config, size limits.
//! - [`daemon`] — `run`: store, sinks, pollers, workers, pruner, admin API; ordered shutdown.
//! - [`daemon::notify`] — systemd's `sd_notify` (`READY=1`, `STOPPING=1`, `WATCHDOG=1`) when
//!   `NOTIFY_SOCKET` is set; a no-op otherwise.
//! - [`daemon::admin`] — the admin HTTP API (silences, the suppression log, dead letters with replay
//!   and discard, `/healthz`, `/readyz`, `/metrics`) that `sasrelay silence`, `dead-letters`
//!   and `healthcheck` talk to; `/api/` is bearer-token protected when `[admin] token` is set.
//! - [`pipeline::metrics`] — the counters pollers and workers update and the Prometheus text the admin
//!   API serves at `/metrics` (store figures read at scrape time).
//! - `lib.rs` itself sets the global allocator (mimalloc), so the binary, the tests and the
//!   benchmarks run on the same one.
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
//!   writes go events (outbox entries, group members, suppressions) → records → flush →
//!   cursor; the cursor never gets ahead of durable state. Every Security Center call of a
//!   poll (the vulnerability lookup included) happens before its first write.
//! - An event id derives from (fingerprint, kind, generation, occurrence), never from the
//!   resolution: a finding resolves once per lifecycle however a re-poll explains it. A failed
//!   lookup of vulnerabilities that left the list is not a failed poll; they resolve as `gone`.
//! - Routing and matching do no IO and read no clock (`now` is a parameter). A routed event is
//!   in exactly one digest per (route, sink): a group close records the digest id and the last
//!   member it covers before it enqueues, and removes members only after.
//! - A silenced or muted event is recorded (not sent, not lost); it is never delivered later.
//! - An outbox entry is removed only after its sink confirmed delivery; a sink makes one attempt
//!   per call and never sleeps; the worker owns backoff, `Retry-After` and dead letters. A
//!   sink whose rate limiter has no permit sends nothing (`Outcome::Throttled`): not an attempt.
//! - A dead-letter replay writes the new entry, then moves the payload's guard to it, then
//!   removes the dead letter; a payload is never pending twice.
//! - A backlog fold enqueues the digest (guarded by an id derived from its members) and flushes
//!   before it acks the members; webhooks and PagerDuty never fold.
//! - Every task of the daemon is spawned on a tracker and stopped through a cancellation token.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// mimalloc, for the binary and for every test and benchmark that links this crate, so the
/// benchmarks measure what the daemon runs. sled clones and frees whole tree nodes on its own
/// threads; under that churn glibc's malloc spent about a quarter of the hot path in
/// `malloc_consolidate` and `unlink_chunk` (README, Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod backoff;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod daemon;
pub mod duration;
pub mod event;
pub mod finding;
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
pub mod text;
