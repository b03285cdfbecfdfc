//! Configuration: the TOML the operator writes ([`RawSource`] per source, close to the text, with spans) and
//! the checked [`Settings`] built from it.
//!
//! Loading never stops at the first problem: the document is parsed once, then every section is
//! deserialised on its own and every semantic rule is checked, and all errors come back together,
//! each naming the file, line, column and key.

use std::collections::BTreeSet;
use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::DeTable;

use crate::credentials::config::CredentialsConfig;
use crate::duration::{HumanDuration, parse_duration};
use crate::event::EventSwitches;
use crate::finding::Domain;
use crate::record::GoneRule;
use crate::sas::api::VulType;
use crate::sas::client::ClientSettings;
use crate::sas::endpoint;
use crate::sas::quota::MAX_CALLS_PER_SECOND;
use crate::sas::sign::SignatureVersion;
use crate::sas::source::{DomainPoll, InitialSync, SourceSettings, WindowListingScope};
use crate::sinks::SinkConfig;

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted key path, e.g. `source[0].credentials.type`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    /// `file:line:col: key: message`, or `file: key: message` when no place in the file is
    /// known (a missing section, an unreadable file).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(f, ": {}: {}", self.key, self.message)
    }
}

/// Every problem found in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} error{} in configuration:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The four Security Center domains, as named in config.
pub const DOMAINS: [&str; 4] = ["alerts", "vulnerabilities", "baseline", "firewall"];
/// Vulnerability types sasrelay can read: `DescribeVulList.Type`, with `app+sca` meaning
/// `Type=app&AttachTypes=sca`.
pub const VULNERABILITY_TYPES: [&str; 7] = ["cve", "sca", "app+sca", "app", "sys", "cms", "emg"];

/// `[state]`: where the daemon keeps its store.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    /// Directory of the store (one process per directory). Required for `run`.
    pub directory: Spanned<PathBuf>,
    /// How long records of resolved findings are kept (so a re-listing is not news).
    pub resolved_retention: Option<HumanDuration>,
    /// How long an enqueue guard outlives its delivered entry (re-poll protection).
    pub guard_ttl: Option<HumanDuration>,
    /// How long dead letters are kept before they are deleted.
    pub dead_letter_retention: Option<HumanDuration>,
}

/// `[daemon]`: process-wide behaviour.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    /// How long SIGTERM waits for in-flight deliveries.
    pub shutdown_grace: Option<HumanDuration>,
    /// The log filter (tracing `EnvFilter` syntax); `--log` / `SASRELAY_LOG` win over it.
    pub log: Option<Spanned<String>>,
}

/// `[delivery]`: retry policy of every sink's outbox.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    /// Upper bound of the first retry wait.
    pub retry_initial_delay: Option<HumanDuration>,
    /// Longest retry wait.
    pub retry_max_delay: Option<HumanDuration>,
    /// Attempts before an entry goes to the dead letter (0 = no limit; age still applies).
    pub max_attempts: Option<u32>,
    /// Age after which an undelivered entry goes to the dead letter.
    pub max_age: Option<HumanDuration>,
}

/// Checked delivery policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliverySettings {
    /// Upper bound of the first retry wait.
    pub retry_initial_delay: Duration,
    /// Longest retry wait.
    pub retry_max_delay: Duration,
    /// Attempts before dead-lettering (0 = unlimited).
    pub max_attempts: u32,
    /// Age before dead-lettering.
    pub max_age: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            retry_initial_delay: Duration::from_secs(5),
            retry_max_delay: Duration::from_secs(600),
            max_attempts: 0,
            max_age: Duration::from_secs(86_400),
        }
    }
}

/// `[source.poll]`: per-domain intervals (`"off"` disables a domain).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoll {
    /// Alerts interval.
    pub alerts: Option<Spanned<String>>,
    /// Vulnerabilities interval.
    pub vulnerabilities: Option<Spanned<String>>,
    /// Baseline interval.
    pub baseline: Option<Spanned<String>>,
    /// Firewall interval.
    pub firewall: Option<Spanned<String>>,
    /// How far before the watermark a windowed poll starts.
    pub overlap: Option<HumanDuration>,
}

/// `[source.events]`: which event kinds each domain emits.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvents {
    /// Alerts.
    pub alerts: Option<Vec<Spanned<String>>>,
    /// Vulnerabilities.
    pub vulnerabilities: Option<Vec<Spanned<String>>>,
    /// Baseline.
    pub baseline: Option<Vec<Spanned<String>>>,
    /// Firewall.
    pub firewall: Option<Vec<Spanned<String>>>,
}

/// `[source.gone]`: when a vulnerability or baseline finding that left the list is resolved
/// as `gone` ([`GoneRule`]).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGone {
    /// Complete sweeps in a row that must miss a finding.
    pub sweeps: Option<Spanned<u32>>,
    /// A sweep missing more than this share of the open findings...
    pub hold_share: Option<Spanned<f64>>,
    /// ... and at least this many...
    pub hold_at_least: Option<Spanned<u32>>,
    /// ... needs this many sweeps in a row instead.
    pub hold_sweeps: Option<Spanned<u32>>,
}

/// A `[[source]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// Unique name; appears in logs, findings and fingerprints.
    pub name: Spanned<String>,
    /// Region of the account's resources; selects the Security Center site. Required;
    /// optional here so that a wrong value does not hide the table's other errors.
    pub region: Option<Spanned<String>>,
    /// Use the site's VPC endpoint.
    #[serde(default)]
    pub vpc_endpoint: bool,
    /// Explicit endpoint URL; overrides `region`/`vpc_endpoint` for transport.
    pub endpoint: Option<Spanned<String>>,
    /// ACK cluster ids; empty means the whole account.
    #[serde(default)]
    pub clusters: Vec<Spanned<String>>,
    /// Domains to read.
    pub domains: Option<Spanned<Vec<Spanned<String>>>>,
    /// `DescribeVulList` types to read.
    pub vulnerability_types: Option<Vec<Spanned<String>>>,
    /// `en` or `zh`.
    pub lang: Option<Spanned<String>>,
    /// `v3` or `v1`.
    #[serde(default)]
    pub signature: SignatureVersion,
    /// Base URL of the Security Center console, for links.
    pub console_base: Option<Spanned<String>>,
    /// Per domain, the URL template of a finding's own console page.
    pub console_links: Option<std::collections::BTreeMap<String, Spanned<String>>>,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Option<HumanDuration>,
    /// Whole-call timeout.
    pub timeout: Option<HumanDuration>,
    /// Hard cap on pages per listing.
    pub max_pages: Option<Spanned<u32>>,
    /// Security Center calls per second per action, shared by the site's quota group.
    pub calls_per_second: Option<Spanned<u32>>,
    /// Sources of another account get buckets of their own under another group name.
    pub quota_group: Option<Spanned<String>>,
    /// Largest response body accepted, in bytes.
    pub max_response_bytes: Option<Spanned<u64>>,
    /// Attempts per call (first included) for throttling, 5xx, timeouts and broken bodies.
    pub max_attempts: Option<Spanned<u32>>,
    /// Upper bound of the first retry wait.
    pub retry_initial_delay: Option<HumanDuration>,
    /// Longest retry wait.
    pub retry_max_delay: Option<HumanDuration>,
    /// Per-domain poll intervals.
    #[serde(default)]
    pub poll: RawPoll,
    /// Per-domain event kinds.
    #[serde(default)]
    pub events: RawEvents,
    /// First-start behaviour.
    #[serde(default)]
    pub initial_sync: InitialSync,
    /// When a finding that left a snapshot is resolved as `gone`.
    #[serde(default)]
    pub gone: RawGone,
    /// How alerts and firewall records are listed when `clusters` is set.
    #[serde(default)]
    pub window_listing: WindowListingScope,
    /// Where the signing key comes from. Required; optional here like `region`.
    pub credentials: Option<CredentialsConfig>,
}

/// The checked configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The file it came from.
    pub file: PathBuf,
    /// Sources, in file order.
    pub sources: Vec<SourceSettings>,
    /// `[state]`, when present (required by `run`, not by `check` or `findings`).
    pub state: Option<StateSettings>,
    /// Shutdown grace period.
    pub shutdown_grace: Duration,
    /// `[daemon] log`: the daemon's log filter (tracing `EnvFilter` syntax), checked; `None`:
    /// `info`.
    pub log: Option<String>,
    /// Outbox retry policy.
    pub delivery: DeliverySettings,
    /// Sinks, in file order.
    pub sinks: Vec<SinkConfig>,
    /// The routing tree (`[routing]`, `[[route]]`, `[[time_interval]]`); every event to every
    /// sink when none is configured.
    pub router: crate::routing::Router,
    /// `[admin]`: the loopback HTTP API for silences.
    pub admin: AdminSettings,
    /// `[health]`: when a source is blind, where meta-events go, the heartbeat.
    pub health: crate::health::HealthSettings,
    /// `[ha]`: two replicas, one leader; `None`: this process is the only one.
    pub ha: Option<crate::ha::config::HaSettings>,
    /// `[actions]`: the action page and the links to it in notifications; `None`: off.
    pub actions: Option<crate::action_link::ActionsSettings>,
    /// Problems that do not stop sasrelay (a route shadowed by a catch-all, an unused time
    /// interval), for `sasrelay check` to show.
    pub warnings: Vec<ConfigError>,
    /// Where each key was written, for problems found after checking (a sink's secret that
    /// cannot be read) to carry `file:line:col` too.
    pub positions: Positions,
}

/// Where every key of a config file was written, by dotted path (`sink[0].url`), and which
/// `[[sink]]` and `[[source]]` tables carry which name: problems found after the file was
/// checked (building the sinks, loading credentials) are reported with `file:line:col` and the
/// key as written, like the file's own errors.
#[derive(Clone, Debug, Default)]
pub struct Positions {
    file: PathBuf,
    at: std::collections::BTreeMap<String, (usize, usize)>,
    sinks: Vec<String>,
    sources: Vec<String>,
}

impl Positions {
    fn of(file: &Path, text: &str, root: &DeTable<'_>) -> Positions {
        let mut out = Positions {
            file: file.to_path_buf(),
            ..Positions::default()
        };
        for (key, value) in root.iter() {
            let key = key.get_ref().as_ref();
            out.walk(text, key, value);
            let names = value.get_ref().as_array().map(|items| {
                items
                    .iter()
                    .map(|t| {
                        let name = t.get_ref().get("name").map(|n| n.get_ref());
                        name.and_then(|n| n.as_str())
                            .unwrap_or_default()
                            .to_string()
                    })
                    .collect()
            });
            match key {
                "sink" => out.sinks = names.unwrap_or_default(),
                "source" => out.sources = names.unwrap_or_default(),
                _ => {}
            }
        }
        out
    }

    fn walk(&mut self, text: &str, path: &str, value: &Spanned<toml::de::DeValue<'_>>) {
        self.at
            .insert(path.to_string(), line_col(text, value.span().start));
        match value.get_ref() {
            toml::de::DeValue::Table(t) => {
                for (k, v) in t.iter() {
                    self.walk(text, &format!("{path}.{}", k.get_ref()), v);
                }
            }
            toml::de::DeValue::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    self.walk(text, &format!("{path}[{i}]"), v);
                }
            }
            _ => {}
        }
    }

    /// `sink[i]`, the path of the first `[[sink]]` named `name`.
    pub fn sink(&self, name: &str) -> String {
        Self::indexed("sink", &self.sinks, name)
    }

    /// `source[i]`, the path of the first `[[source]]` named `name`.
    pub fn source(&self, name: &str) -> String {
        Self::indexed("source", &self.sources, name)
    }

    fn indexed(table: &str, names: &[String], name: &str) -> String {
        match names.iter().position(|n| n == name) {
            Some(i) => format!("{table}[{i}]"),
            None => table.to_string(),
        }
    }

    /// A problem with `key` (`sink[0].signing_secret[1]`), placed where the key was written,
    /// or where its nearest written parent was (a default, a missing section: no place).
    pub fn error(&self, key: &str, message: String) -> ConfigError {
        let mut path = key;
        let (line, column) = loop {
            if let Some(at) = self.at.get(path) {
                break *at;
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => break (0, 0),
            }
        };
        ConfigError {
            file: self.file.clone(),
            line,
            column,
            key: key.to_string(),
            message,
        }
    }
}

/// A config file checked: settings built from every part that passed, and every problem found.
/// `run` and `check` go on to build what these settings describe and report its problems with
/// these, all at once.
#[derive(Clone, Debug)]
pub struct Checked {
    /// Settings from every table that could be read and passed its own checks. A key set
    /// aside as unknown or unreadable does not drop its table, so the rest of it is still built
    /// and checked.
    pub settings: Settings,
    /// Every problem, in file order; empty when the file is valid.
    pub errors: Vec<ConfigError>,
}

impl Checked {
    /// The settings when the file has no error, else every error.
    pub fn into_result(self) -> Result<Settings, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(self.settings)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

/// Default `[admin] listen` address.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9595";
/// The `[admin] health_listen` address the docs and the Kubernetes manifests use (9464, in
/// the range Prometheus exporters take their ports from); the key itself defaults to `"off"`.
pub const SUGGESTED_HEALTH_LISTEN: &str = "0.0.0.0:9464";

/// `[admin]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    listen: Option<Spanned<String>>,
    health_listen: Option<Spanned<String>>,
    token: Option<crate::secret::SecretRef>,
    allow_unauthenticated: Option<Spanned<bool>>,
    hosts: Option<Vec<Spanned<String>>>,
    header_read_timeout: Option<Spanned<HumanDuration>>,
    idle_timeout: Option<Spanned<HumanDuration>>,
    max_connections: Option<Spanned<u32>>,
    max_silence: Option<Spanned<HumanDuration>>,
}

/// Checked `[admin]`: where the admin API listens, who may use it and how long and how many
/// connections it keeps (see `daemon::admin` for how each is enforced).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminSettings {
    /// Where the admin API listens; `None` when `listen = "off"`.
    pub listen: Option<std::net::SocketAddr>,
    /// A second address serving only `/healthz`, `/readyz` and `/metrics` (never `/api/` or
    /// `/-/`), for Kubernetes probes and Prometheus while the API stays on loopback; `None`
    /// when `health_listen = "off"` (the default). It needs no token: it changes nothing.
    pub health_listen: Option<std::net::SocketAddr>,
    /// Bearer token required by the API (and sent by the CLI), when set.
    pub token: Option<crate::secret::SecretRef>,
    /// `allow_unauthenticated = true`: a non-loopback `listen` without a token is accepted
    /// (and warned about at start) instead of refused.
    pub allow_unauthenticated: bool,
    /// Extra names a request's `Host` may carry (lowercase; `name` for any port, `name:port`
    /// for one), beside the address a connection arrived on and the loopback names.
    pub hosts: Vec<String>,
    /// How long a connection may take to send a request's headers (from its opening, or from
    /// the previous answer).
    pub header_read_timeout: Duration,
    /// How long a connection may move no byte in either direction while waiting on the client.
    pub idle_timeout: Duration,
    /// Most connections served at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Longest a silence may last from now.
    pub max_silence: Duration,
}

impl AdminSettings {
    /// Whether the API is reachable beyond this host with no token: a non-loopback `listen`
    /// and no `token` (only valid with `allow_unauthenticated`).
    pub fn open_without_token(&self) -> bool {
        self.token.is_none() && self.listen.is_some_and(|a| !is_loopback(a.ip()))
    }
}

/// Loopback, including an IPv4 loopback written as an IPv4-mapped IPv6 address.
pub fn is_loopback(ip: std::net::IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            listen: DEFAULT_ADMIN_LISTEN.parse().ok(),
            health_listen: None,
            token: None,
            allow_unauthenticated: false,
            hosts: Vec::new(),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 256,
            max_silence: Duration::from_secs(30 * 86_400),
        }
    }
}

/// Checked `[state]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateSettings {
    /// Store directory.
    pub directory: PathBuf,
    /// Retention of resolved records.
    pub resolved_retention: Duration,
    /// Enqueue-guard lifetime after delivery.
    pub guard_ttl: Duration,
    /// How long dead letters are kept.
    pub dead_letter_retention: Duration,
}

/// Reads and checks a config file.
pub fn load(path: &Path) -> Result<Settings, ConfigErrors> {
    check_file(path).into_result()
}

/// Parses and checks config text; `file` is used in messages only.
pub fn parse(file: &Path, text: &str) -> Result<Settings, ConfigErrors> {
    check(file, text).into_result()
}

/// Reads and checks a config file, keeping what passed beside every problem.
pub fn check_file(path: &Path) -> Checked {
    match std::fs::read_to_string(path) {
        Ok(text) => check(path, &text),
        Err(e) => Checked {
            settings: Settings::empty(path),
            errors: vec![ConfigError {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                key: "(file)".into(),
                message: format!("cannot read: {e}"),
            }],
        },
    }
}

impl Settings {
    /// Settings of a file that yielded nothing: no source, no sink, every default.
    fn empty(file: &Path) -> Settings {
        Settings {
            file: file.to_path_buf(),
            sources: Vec::new(),
            state: None,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            log: None,
            delivery: DeliverySettings::default(),
            sinks: Vec::new(),
            router: crate::routing::Router::broadcast(&[]),
            admin: AdminSettings::default(),
            health: crate::health::HealthSettings::default(),
            ha: None,
            actions: None,
            warnings: Vec::new(),
            positions: Positions {
                file: file.to_path_buf(),
                ..Positions::default()
            },
        }
    }
}

/// `[daemon] shutdown_grace` when not given.
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Parses and checks config text (`file` is used in messages only), keeping what passed beside
/// every problem.
pub fn check(file: &Path, text: &str) -> Checked {
    let mut errs = Errors {
        file,
        text,
        list: Vec::new(),
    };
    let root = match DeTable::parse(text) {
        Ok(r) => r,
        Err(e) => {
            errs.push(e.span(), "(syntax)", e.message().to_string());
            return Checked {
                settings: Settings::empty(file),
                errors: errs.list,
            };
        }
    };
    let positions = Positions::of(file, text, root.get_ref());
    let mut sources = Vec::new();
    let mut sinks = Vec::new();
    let mut saw_source = false;
    let (mut state, mut daemon, mut delivery) =
        (None, RawDaemon::default(), RawDelivery::default());
    let mut delivery_span = None;
    let mut admin: Option<RawAdmin> = None;
    let mut health: Option<crate::health::RawHealth> = None;
    let mut ha: Option<crate::ha::config::RawHa> = None;
    let mut actions: Option<crate::action_link::RawActions> = None;
    for (key, value) in root.get_ref().iter() {
        let name = key.get_ref().as_ref();
        match name {
            "source" | "sink" => {
                saw_source |= name == "source";
                let Some(items) = value.get_ref().as_array() else {
                    errs.push(
                        Some(value.span()),
                        name,
                        format!("must be an array of tables: write each one as [[{name}]]"),
                    );
                    continue;
                };
                for (i, item) in items.iter().enumerate() {
                    let key = format!("{name}[{i}]");
                    if name == "source" {
                        if let Some(raw) = section::<RawSource>(item, &key, &mut errs) {
                            sources.push((i, raw));
                        }
                    } else if let Some(raw) = sink_section(item, &key, &mut errs) {
                        sinks.push((i, raw));
                    }
                }
            }
            "state" => state = section::<RawState>(value, name, &mut errs),
            "daemon" => daemon = section(value, name, &mut errs).unwrap_or_default(),
            "delivery" => {
                delivery_span = Some(value.span());
                delivery = section(value, name, &mut errs).unwrap_or_default();
            }
            "admin" => admin = section(value, name, &mut errs),
            "health" => health = section(value, name, &mut errs),
            "ha" => ha = section(value, name, &mut errs),
            "actions" => actions = section(value, name, &mut errs),
            // Read by `routing::parse_document` below.
            "routing" | "route" | "time_interval" => {}
            other => errs.push(
                Some(key.span()),
                other,
                crate::section::unknown_key(other, "", &TOP_LEVEL_KEYS),
            ),
        }
    }
    if !saw_source && errs.list.is_empty() {
        errs.push(
            Some(0..0),
            "source",
            "no [[source]] configured: add at least one Security Center source".into(),
        );
    }
    let state = state.map(|raw| check_state(raw, file));
    let shutdown_grace = daemon
        .shutdown_grace
        .map_or(DEFAULT_SHUTDOWN_GRACE, |d| d.0);
    let log = check_log_filter(daemon.log, &mut errs);
    let mut warnings = Vec::new();
    let delivery = check_delivery(&delivery, delivery_span, &mut errs, &mut warnings);
    let sinks = check_sinks(sinks, &positions, &mut errs);
    let admin = check_admin(admin.unwrap_or_default(), &mut errs, &mut warnings);
    let router = check_routing(text, &sinks, &mut errs, &mut warnings);
    let health = check_health(health.unwrap_or_default(), &positions, &mut errs);
    let ha = ha.and_then(|raw| {
        let (settings, problems) = crate::ha::config::HaSettings::check(raw);
        for (key, message) in problems {
            errs.list
                .push(positions.error(&format!("ha.{key}"), message));
        }
        settings
    });
    let actions = actions.and_then(|raw| {
        let (mut settings, problems) = crate::action_link::ActionsSettings::check(raw);
        if let Some(secret) = settings.as_mut().and_then(|s| s.secret.as_mut()) {
            secret.anchor(errs.file.parent().unwrap_or(Path::new(".")));
        }
        for (key, message) in problems {
            errs.list
                .push(positions.error(&format!("actions.{key}"), message));
        }
        settings
    });
    if let (Some(a), Some(_)) = (&actions, &ha)
        && a.secret.is_none()
    {
        errs.list.push(positions.error(
            "actions",
            "needs secret = { file = \"…\" } (or { env = \"…\" }) with [ha]: both replicas must sign and check links with one key, and without it each keeps its own".into(),
        ));
    }
    let mut names = BTreeSet::new();
    let mut settings = Vec::new();
    let mut budgets: Vec<(String, String, NonZeroU32, String)> = Vec::new();
    for (i, raw) in sources {
        let span = raw
            .calls_per_second
            .as_ref()
            .map_or(raw.name.span(), |c| c.span());
        if let Some(s) = check_source(i, raw, &mut names, &mut errs) {
            // One bucket per (site, group, action) serves every source in it, at one rate.
            let c = &s.client;
            match budgets
                .iter()
                .find(|(e, g, _, _)| *e == c.endpoint && *g == c.quota_group)
            {
                Some((_, _, rate, first)) if *rate != c.calls_per_second => errs.push(
                    Some(span),
                    &format!("source[{i}].calls_per_second"),
                    format!(
                        "is {} but source {first} on the same endpoint and quota_group uses {rate}: they share one budget; set the same value, or a different quota_group for another account",
                        c.calls_per_second
                    ),
                ),
                Some(_) => {}
                None => budgets.push((
                    c.endpoint.clone(),
                    c.quota_group.clone(),
                    c.calls_per_second,
                    s.name.clone(),
                )),
            }
            settings.push(s);
        }
    }
    errs.list.sort_by_key(|e| (e.line, e.column));
    Checked {
        settings: Settings {
            file: file.to_path_buf(),
            sources: settings,
            state,
            shutdown_grace,
            log,
            delivery,
            sinks,
            router,
            admin,
            health,
            ha,
            actions,
            warnings,
            positions,
        },
        errors: errs.list,
    }
}

/// The top-level keys of a config file: the tables [`check`] reads (keep in step with its
/// `match`), for the "did you mean" of an unknown one.
const TOP_LEVEL_KEYS: [&str; 12] = [
    "source",
    "sink",
    "state",
    "daemon",
    "delivery",
    "admin",
    "health",
    "ha",
    "actions",
    "routing",
    "route",
    "time_interval",
];

/// `[health]` against the sink names written in the file (a sink with an error of its own
/// still counts: one mistake, one message) ([`crate::health::HealthSettings::check`]), each
/// problem placed at its key.
fn check_health(
    raw: crate::health::RawHealth,
    positions: &Positions,
    errs: &mut Errors<'_>,
) -> crate::health::HealthSettings {
    let names: Vec<&str> = positions.sinks.iter().map(String::as_str).collect();
    let (mut settings, problems) = crate::health::HealthSettings::check(raw, &names);
    for (key, message) in problems {
        errs.list
            .push(positions.error(&format!("health.{key}"), message));
    }
    if let Some(url) = &mut settings.heartbeat_url {
        url.anchor(errs.file.parent().unwrap_or(Path::new(".")));
    }
    settings
}

/// `[daemon] log`, when it parses as a log filter. A bare word must be a level: `EnvFilter`
/// would take `verbose` as a target name and log nothing, silently.
fn check_log_filter(raw: Option<Spanned<String>>, errs: &mut Errors<'_>) -> Option<String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let raw = raw?;
    let not_a_level = raw.get_ref().split(',').map(str::trim).find(|d| {
        !d.is_empty() && !d.contains('=') && !LEVELS.contains(&d.to_ascii_lowercase().as_str())
    });
    let problem = match (
        not_a_level,
        tracing_subscriber::EnvFilter::builder().parse(raw.get_ref()),
    ) {
        (_, Err(e)) => e.to_string(),
        (Some(word), Ok(_)) => format!("`{word}` is not a level"),
        (None, Ok(_)) => return Some(raw.into_inner()),
    };
    let message = format!(
        "not a log filter ({problem}): write a level ({}) or `target=level` pairs separated by commas, e.g. \"info,sasrelay::sinks=debug\"",
        LEVELS.join(", ")
    );
    errs.push(Some(raw.span()), "daemon.log", message);
    None
}

/// `[state]` with its defaults, the directory relative to the config file's.
fn check_state(raw: RawState, file: &Path) -> StateSettings {
    let d = raw.directory.get_ref();
    let retention = |v: Option<HumanDuration>| v.map_or(Duration::from_secs(30 * 86_400), |d| d.0);
    StateSettings {
        directory: if d.is_relative() {
            file.parent().unwrap_or(Path::new(".")).join(d)
        } else {
            d.clone()
        },
        resolved_retention: retention(raw.resolved_retention),
        guard_ttl: retention(raw.guard_ttl),
        dead_letter_retention: retention(raw.dead_letter_retention),
    }
}

fn check_admin(
    raw: RawAdmin,
    errs: &mut Errors<'_>,
    warnings: &mut Vec<ConfigError>,
) -> AdminSettings {
    let d = AdminSettings::default();
    let mut out = AdminSettings {
        token: raw.token.clone(),
        allow_unauthenticated: raw
            .allow_unauthenticated
            .as_ref()
            .is_some_and(|b| *b.get_ref()),
        hosts: check_admin_hosts(raw.hosts.as_deref().unwrap_or_default(), errs),
        header_read_timeout: admin_duration(
            &raw.header_read_timeout,
            "header_read_timeout",
            d.header_read_timeout,
            (Duration::from_millis(100), Duration::from_secs(3600)),
            errs,
        ),
        idle_timeout: admin_duration(
            &raw.idle_timeout,
            "idle_timeout",
            d.idle_timeout,
            (Duration::from_millis(100), Duration::from_secs(3600)),
            errs,
        ),
        max_connections: d.max_connections,
        max_silence: admin_duration(
            &raw.max_silence,
            "max_silence",
            d.max_silence,
            (Duration::from_secs(60), Duration::from_secs(366 * 86_400)),
            errs,
        ),
        ..d
    };
    if let Some(n) = &raw.max_connections {
        match *n.get_ref() {
            n @ 1..=65_536 => out.max_connections = n as usize,
            _ => errs.at(
                n,
                "admin.max_connections".into(),
                "must be between 1 and 65536".into(),
            ),
        }
    }
    check_admin_listen(&raw, &mut out, errs, warnings);
    check_health_listen(&raw, &mut out, errs);
    if let Some(crate::secret::SecretRef::File { file }) = &mut out.token
        && file.is_relative()
    {
        *file = errs.file.parent().unwrap_or(Path::new(".")).join(&*file);
    }
    out
}

/// `[admin] listen`, and whether it exposes the API beyond this host without a token: an
/// error at `listen`, or with `allow_unauthenticated = true` a warning at that key.
fn check_admin_listen(
    raw: &RawAdmin,
    out: &mut AdminSettings,
    errs: &mut Errors<'_>,
    warnings: &mut Vec<ConfigError>,
) {
    if let Some(listen) = &raw.listen {
        out.listen =
            listen_address(listen, "listen", DEFAULT_ADMIN_LISTEN, errs).unwrap_or(out.listen);
    }
    if let (Some(listen), Some(addr)) = (&raw.listen, out.listen)
        && out.open_without_token()
    {
        match &raw.allow_unauthenticated {
            Some(allow) if *allow.get_ref() => warnings.push(errs.error(
                Some(allow.span()),
                "admin.allow_unauthenticated",
                format!("the admin API listens on {addr}, beyond this host, without a token: anyone who reaches it can create silences and replay or discard dead letters"),
            )),
            _ => errs.at(
                listen,
                "admin.listen".into(),
                format!("{addr} is not a loopback address and [admin] has no token: anyone who reaches it could create silences and replay or discard dead letters; set [admin] token = {{ env = \"SASRELAY_ADMIN_TOKEN\" }} (or {{ file = \"...\" }}), listen on 127.0.0.1, or set allow_unauthenticated = true to accept the risk"),
            ),
        }
    }
}

/// An `[admin]` address key: `Some(None)` for `"off"`, `Some(Some(addr))` for an address,
/// `None` (and an error at the key) for anything else.
fn listen_address(
    value: &Spanned<String>,
    key: &str,
    example: &str,
    errs: &mut Errors<'_>,
) -> Option<Option<std::net::SocketAddr>> {
    match value.get_ref().as_str() {
        "off" => Some(None),
        text => match text.parse::<std::net::SocketAddr>() {
            Ok(addr) => Some(Some(addr)),
            Err(_) => {
                errs.at(
                    value,
                    format!("admin.{key}"),
                    format!("expected an address like \"{example}\" or \"off\", got {text:?}"),
                );
                None
            }
        },
    }
}

/// `[admin] health_listen`: an address or `"off"`, and never one the admin API binds too (the
/// second bind would fail at start, so it is refused here, where `check` sees it).
fn check_health_listen(raw: &RawAdmin, out: &mut AdminSettings, errs: &mut Errors<'_>) {
    let Some(value) = &raw.health_listen else {
        return;
    };
    out.health_listen =
        listen_address(value, "health_listen", SUGGESTED_HEALTH_LISTEN, errs).flatten();
    if let (Some(health), Some(admin)) = (out.health_listen, out.listen)
        && health.port() != 0
        && health.port() == admin.port()
        && (health.ip() == admin.ip()
            || health.ip().is_unspecified()
            || admin.ip().is_unspecified())
    {
        errs.at(
            value,
            "admin.health_listen".into(),
            format!("{health} overlaps [admin] listen = \"{admin}\": both cannot bind it; choose another port (\"{SUGGESTED_HEALTH_LISTEN}\" is the usual one)"),
        );
        out.health_listen = None;
    }
}

/// An `[admin]` duration within `range` (inclusive), or `default` when absent.
fn admin_duration(
    raw: &Option<Spanned<HumanDuration>>,
    key: &str,
    default: Duration,
    (min, max): (Duration, Duration),
    errs: &mut Errors<'_>,
) -> Duration {
    let Some(v) = raw else { return default };
    let d = v.get_ref().0;
    if d < min || d > max {
        errs.at(
            v,
            format!("admin.{key}"),
            format!(
                "must be between {} and {}",
                crate::duration::format_duration(min),
                crate::duration::format_duration(max)
            ),
        );
        return default;
    }
    d
}

/// `[admin] hosts`: names (or `name:port`) a request's `Host` may carry, lowercase.
fn check_admin_hosts(raw: &[Spanned<String>], errs: &mut Errors<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for (i, h) in raw.iter().enumerate() {
        let text = h.get_ref().trim().to_ascii_lowercase();
        let plain = !text.is_empty()
            && text.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']')
            });
        if plain {
            out.push(text);
        } else {
            errs.at(
                h,
                format!("admin.hosts[{i}]"),
                format!("expected a host name as a client writes it in the Host header, like \"sasrelay.internal\" or \"sasrelay.internal:9595\" (no scheme or path), got {:?}", h.get_ref()),
            );
        }
    }
    out
}

/// Reads and compiles the routing tables against the configured sinks. Errors join `errs`;
/// warnings are returned for `check` to show.
fn check_routing(
    text: &str,
    sinks: &[SinkConfig],
    errs: &mut Errors<'_>,
    warnings: &mut Vec<ConfigError>,
) -> crate::routing::Router {
    use crate::routing::{Router, parse_document};
    let names: Vec<&str> = sinks.iter().map(|s| s.name.as_str()).collect();
    let issues = match parse_document(text) {
        Ok(doc) => match Router::compile(&doc.config, &names, &doc.time_intervals) {
            Ok((router, warned)) => {
                for w in warned {
                    warnings.push(errs.error(w.span, &w.key, w.message));
                }
                for (route, sink) in router.grouped_targets() {
                    let Some(cfg) = sinks.iter().find(|c| c.name == sink) else {
                        continue;
                    };
                    if matches!(cfg.kind, crate::sinks::SinkKind::PagerDuty(_)) {
                        warnings.push(errs.error(
                            grouped_route_span(&doc.config, &route, &sink),
                            &route,
                            format!(
                                "this route groups events (group_by) and sends the digests to sink {sink:?} (pagerduty): a digest becomes one alert that does not resolve its members' alerts; route pagerduty without group_by"
                            ),
                        ));
                    }
                }
                return router;
            }
            Err(issues) => issues,
        },
        Err(issues) => issues,
    };
    for issue in issues {
        let e = errs.error(issue.span.clone(), &issue.key, issue.message.clone());
        if issue.is_error() {
            errs.list.push(e);
        } else {
            warnings.push(e);
        }
    }
    Router::broadcast(&names)
}

/// Where the route at `path` (`route[1].routes[0]`, or the default route) names `sink` or
/// sets `group_by`: the deepest such place on the way down, preferring the sink.
fn grouped_route_span(
    config: &crate::routing::RoutingConfig,
    path: &str,
    sink: &str,
) -> Option<std::ops::Range<usize>> {
    let spans = |sinks: Option<&Vec<Spanned<String>>>, group_by: Option<&Vec<Spanned<String>>>| {
        let named = sinks.and_then(|l| l.iter().find(|s| s.get_ref() == sink));
        named
            .or_else(|| group_by.and_then(|l| l.first()))
            .map(Spanned::span)
    };
    let default = config.routing.as_ref();
    let mut found = default.and_then(|d| spans(d.default_sinks.as_ref(), d.group_by.as_ref()));
    let mut level = &config.routes;
    for part in path.split('.') {
        let Some(i) = part
            .split_once('[')
            .and_then(|(_, rest)| rest.strip_suffix(']'))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            break;
        };
        let Some(route) = level.get(i) else { break };
        if let Some(span) = spans(route.sinks.as_ref(), route.group_by.as_ref()) {
            found = Some(span);
        }
        level = &route.routes;
    }
    found
}

/// Deserialises one section on its own, so an error in it does not hide errors elsewhere, nor
/// one key's error another's in the same table.
fn section<T: serde::de::DeserializeOwned>(
    value: &Spanned<toml::de::DeValue<'_>>,
    key: &str,
    errs: &mut Errors<'_>,
) -> Option<T> {
    let (value, errors) = crate::section::deserialize_section_all(value, key);
    for (span, key, message) in errors {
        errs.push(span, &key, message);
    }
    value
}

/// One `[[sink]]` table: keys its `type` does not take are reported each where it is written,
/// with a "did you mean", and set aside; the rest is read as [`section`] reads any table.
fn sink_section(
    item: &Spanned<toml::de::DeValue<'_>>,
    key: &str,
    errs: &mut Errors<'_>,
) -> Option<Spanned<SinkConfig>> {
    let mut item = item.clone();
    if let toml::de::DeValue::Table(table) = item.get_mut() {
        let kind = table.get("type").and_then(|t| t.get_ref().as_str());
        if let Some((kind, expected)) = kind.and_then(|k| Some((k, crate::sinks::keys_of(k)?))) {
            let kind = kind.to_string();
            let name = table.get("name").and_then(|n| n.get_ref().as_str());
            let what = match name {
                Some(n) => format!(" for a {kind} sink (sink {n:?})"),
                None => format!(" for a {kind} sink"),
            };
            let unknown: Vec<(String, std::ops::Range<usize>)> = table
                .iter()
                .filter(|(k, _)| !expected.contains(&k.get_ref().as_ref()))
                .map(|(k, _)| (k.get_ref().to_string(), k.span()))
                .collect();
            for (name, span) in unknown {
                let message = crate::section::unknown_key(&name, &what, &expected);
                errs.push(Some(span), &format!("{key}.{name}"), message);
                table.remove(name.as_str());
            }
        }
    }
    section(&item, key, errs)
}

fn check_delivery(
    raw: &RawDelivery,
    span: Option<std::ops::Range<usize>>,
    errs: &mut Errors<'_>,
    warnings: &mut Vec<ConfigError>,
) -> DeliverySettings {
    let d = DeliverySettings::default();
    let mut out = DeliverySettings {
        retry_initial_delay: raw
            .retry_initial_delay
            .map_or(d.retry_initial_delay, |v| v.0),
        retry_max_delay: raw.retry_max_delay.map_or(d.retry_max_delay, |v| v.0),
        max_attempts: raw.max_attempts.unwrap_or(d.max_attempts),
        max_age: raw.max_age.map_or(d.max_age, |v| v.0),
    };
    if out.retry_initial_delay.is_zero() || out.retry_initial_delay > out.retry_max_delay {
        errs.push(
            span.clone(),
            "delivery.retry_initial_delay",
            "must be above 0s and at most delivery.retry_max_delay".into(),
        );
    }
    if out.retry_max_delay > MAX_RETRY_DELAY {
        // Accepted before 1h became the ceiling: warned about and capped, not refused, so a
        // file that worked keeps working.
        warnings.push(errs.error(
            span.clone(),
            "delivery.retry_max_delay",
            "is over 1h, the longest wait a delivery worker sets (one due later is taken for a delivery scheduled before the wall clock stepped back); 1h is used".into(),
        ));
        out.retry_max_delay = MAX_RETRY_DELAY;
        out.retry_initial_delay = out.retry_initial_delay.min(MAX_RETRY_DELAY);
    }
    if out.max_age < Duration::from_secs(60) {
        errs.push(span, "delivery.max_age", "must be at least 1m".into());
    }
    out
}

/// The longest `[delivery] retry_max_delay`, and so the longest wait a delivery worker ever
/// sets (`pipeline::delivery::MAX_WAIT`).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

fn check_sinks(
    raw: Vec<(usize, Spanned<SinkConfig>)>,
    positions: &Positions,
    errs: &mut Errors<'_>,
) -> Vec<SinkConfig> {
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for (i, sink) in raw {
        let before = errs.list.len();
        let name = sink.get_ref().name.clone();
        if !names.insert(name.clone()) {
            errs.list.push(positions.error(
                &format!("sink[{i}].name"),
                format!("duplicate sink name `{name}`"),
            ));
        }
        for (key, message) in sink.get_ref().check() {
            // At the key the problem is about (`url`, `headers.Connection`), not the table.
            let e = positions.error(&format!("sink[{i}].{key}"), message);
            errs.list.push(e);
        }
        if errs.list.len() == before {
            let mut sink = sink.into_inner();
            sink.anchor(errs.file.parent().unwrap_or(Path::new(".")));
            out.push(sink);
        }
    }
    out
}

struct Errors<'a> {
    file: &'a Path,
    text: &'a str,
    list: Vec<ConfigError>,
}

impl Errors<'_> {
    fn push(&mut self, span: Option<std::ops::Range<usize>>, key: &str, message: String) {
        let e = self.error(span, key, message);
        self.list.push(e);
    }

    /// A located error, not yet recorded.
    fn error(
        &self,
        span: Option<std::ops::Range<usize>>,
        key: &str,
        message: String,
    ) -> ConfigError {
        let (line, column) = span.map(|s| line_col(self.text, s.start)).unwrap_or((0, 0));
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            key: key.to_string(),
            message,
        }
    }

    fn at<T>(&mut self, v: &Spanned<T>, key: String, message: String) {
        self.push(Some(v.span()), &key, message);
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn check_source(
    i: usize,
    raw: RawSource,
    names: &mut BTreeSet<String>,
    errs: &mut Errors<'_>,
) -> Option<SourceSettings> {
    let before = errs.list.len();
    let name = check_source_name(i, &raw, names, errs);
    check_required(i, &raw, errs);
    let region = raw.region.as_ref().map(|r| r.get_ref().clone());
    let endpoint = check_endpoint(i, &raw, errs);
    let site = region.as_deref().and_then(endpoint::site_of);
    check_clusters(i, &raw, errs);
    let (domains, vulnerability_types) = check_domains(i, &raw, errs);
    let client = check_client(i, &raw, endpoint, errs);
    let console_base = match &raw.console_base {
        Some(c) => c.get_ref().clone(),
        None => site
            .unwrap_or(endpoint::Site::China)
            .console_base()
            .to_string(),
    };
    let console_links = check_console_links(i, &raw, errs);
    let (polls, overlap) = check_polls(i, &raw, &domains, errs);
    let gone = check_gone(i, &raw.gone, errs);
    let (Some(region), Some(mut credentials)) = (region, raw.credentials) else {
        return None;
    };
    credentials.anchor_paths(errs.file.parent().unwrap_or(Path::new(".")));
    (errs.list.len() == before).then(|| SourceSettings {
        name,
        region,
        clusters: raw.clusters.iter().map(|c| c.get_ref().clone()).collect(),
        domains,
        vulnerability_types,
        console_base,
        console_links,
        client,
        credentials,
        polls,
        overlap,
        initial_sync: raw.initial_sync,
        gone,
        window_listing: raw.window_listing,
    })
}

/// `gone`: each key in range, and a mass disappearance held at least as long as one finding.
fn check_gone(i: usize, raw: &RawGone, errs: &mut Errors<'_>) -> GoneRule {
    let k = |field: &str| format!("source[{i}].gone.{field}");
    let mut rule = GoneRule::default();
    let sweeps = |v: &Option<Spanned<u32>>, field: &str, errs: &mut Errors<'_>| {
        let v = v.as_ref()?;
        if (1..=MAX_GONE_SWEEPS).contains(v.get_ref()) {
            Some(*v.get_ref())
        } else {
            let message = format!("must be between 1 and {MAX_GONE_SWEEPS} (sweeps)");
            errs.at(v, k(field), message);
            None
        }
    };
    if let Some(n) = sweeps(&raw.sweeps, "sweeps", errs) {
        rule.sweeps = n;
    }
    if let Some(n) = sweeps(&raw.hold_sweeps, "hold_sweeps", errs) {
        rule.hold_sweeps = n;
    }
    if let Some(v) = &raw.hold_share {
        let share = *v.get_ref();
        if share > 0.0 && share <= 1.0 {
            rule.hold_share = share;
        } else {
            errs.at(
                v,
                k("hold_share"),
                "must be above 0 and at most 1 (0.5 is half)".into(),
            );
        }
    }
    if let Some(v) = &raw.hold_at_least {
        rule.hold_at_least = *v.get_ref() as usize;
    }
    if rule.hold_sweeps < rule.sweeps {
        let span = raw.hold_sweeps.as_ref().or(raw.sweeps.as_ref());
        let message = format!(
            "hold_sweeps ({}) must be at least sweeps ({}): a mass disappearance is held longer, not shorter",
            rule.hold_sweeps, rule.sweeps
        );
        errs.push(span.map(|v| v.span()), &k("hold_sweeps"), message);
    }
    rule
}

/// The most sweeps `gone` may ask for.
const MAX_GONE_SWEEPS: u32 = 20;

/// `name`: a unique, log- and metric-safe identifier.
fn check_source_name(
    i: usize,
    raw: &RawSource,
    names: &mut BTreeSet<String>,
    errs: &mut Errors<'_>,
) -> String {
    let k = |field: &str| format!("source[{i}].{field}");
    let name = raw.name.get_ref().clone();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        errs.at(
            &raw.name,
            k("name"),
            "must be non-empty and use only letters, digits, `-`, `_` and `.`".into(),
        );
    } else if !names.insert(name.clone()) {
        errs.at(
            &raw.name,
            k("name"),
            format!("duplicate source name `{name}`"),
        );
    }
    name
}

/// `region` and `credentials`, required but read as optional (so that a wrong value does not
/// hide the table's other errors): absent is an error here, unless reading it failed already.
fn check_required(i: usize, raw: &RawSource, errs: &mut Errors<'_>) {
    let required = [
        (
            "region",
            raw.region.is_some(),
            "is required: the region of the account's resources, e.g. region = \"cn-hangzhou\"",
        ),
        (
            "credentials",
            raw.credentials.is_some(),
            "is required: where the signing key comes from, e.g. credentials = { type = \"rrsa\" }",
        ),
    ];
    for (field, present, message) in required {
        let key = format!("source[{i}].{field}");
        let reported = errs.list.iter().any(|e| {
            e.key
                .strip_prefix(&key)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        });
        if !present && !reported {
            errs.push(Some(raw.name.span()), &key, message.into());
        }
    }
}

/// `endpoint`, or the one the region implies.
fn check_endpoint(i: usize, raw: &RawSource, errs: &mut Errors<'_>) -> String {
    let k = |field: &str| format!("source[{i}].{field}");
    match &raw.endpoint {
        Some(ep) => {
            let url = ep.get_ref();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                errs.at(
                    ep,
                    k("endpoint"),
                    format!("`{url}` must be an absolute http:// or https:// URL"),
                );
            }
            url.clone()
        }
        None => match &raw.region {
            Some(region) => match endpoint::endpoint_for(region.get_ref(), raw.vpc_endpoint) {
                Ok(url) => url,
                Err(msg) => {
                    errs.at(region, k("region"), msg);
                    String::new()
                }
            },
            None => String::new(),
        },
    }
}

/// `clusters`: each an ACK cluster id.
fn check_clusters(i: usize, raw: &RawSource, errs: &mut Errors<'_>) {
    for (j, c) in raw.clusters.iter().enumerate() {
        let id = c.get_ref();
        if id.len() < 2 || !id.starts_with('c') || !id.chars().all(|ch| ch.is_ascii_alphanumeric())
        {
            errs.at(
                c,
                format!("source[{i}].clusters[{j}]"),
                format!(
                    "`{id}` is not an ACK cluster id (they look like c1234567890abcdef; see the cluster's Basic Information page)"
                ),
            );
        }
    }
}

/// `domains` (in canonical order) and `vulnerability_types` (default: Linux CVEs and
/// application vulnerabilities, `app` with `AttachTypes=sca`: the two lists the console shows).
/// `console_links`: a template per domain name, each checked
/// ([`crate::sas::normalise::check_link_template`]).
fn check_console_links(
    i: usize,
    raw: &RawSource,
    errs: &mut Errors<'_>,
) -> std::collections::BTreeMap<Domain, String> {
    let mut out = std::collections::BTreeMap::new();
    for (name, template) in raw.console_links.iter().flatten() {
        let key = format!("source[{i}].console_links.{name}");
        let Some(domain) = Domain::ALL.into_iter().find(|d| d.as_str() == name) else {
            errs.at(
                template,
                key,
                format!("is not a domain: use one of {}", DOMAINS.join(", ")),
            );
            continue;
        };
        match crate::sas::normalise::check_link_template(template.get_ref().trim()) {
            Ok(()) => {
                out.insert(domain, template.get_ref().trim().to_string());
            }
            Err(e) => errs.at(template, key, e),
        }
    }
    out
}

fn check_domains(i: usize, raw: &RawSource, errs: &mut Errors<'_>) -> (Vec<Domain>, Vec<VulType>) {
    let k = |field: &str| format!("source[{i}].{field}");
    let domains = check_names(
        raw.domains.as_ref().map(|d| d.get_ref().as_slice()),
        &DOMAINS,
        &k("domains"),
        "domain",
        errs,
    );
    let vulnerability_types = check_names(
        raw.vulnerability_types.as_deref(),
        &VULNERABILITY_TYPES,
        &k("vulnerability_types"),
        "vulnerability type",
        errs,
    );
    if let Some(d) = raw.domains.as_ref().filter(|d| d.get_ref().is_empty()) {
        errs.at(
            d,
            k("domains"),
            format!("is empty: list at least one of {}", DOMAINS.join(", ")),
        );
    }
    let vulnerability_types: Vec<VulType> = if raw.vulnerability_types.is_none() {
        vec![VulType::Cve, VulType::AppSca]
    } else {
        vulnerability_types
            .iter()
            .filter_map(|t| t.parse().ok())
            .collect()
    };
    let domains: Vec<Domain> = Domain::ALL
        .into_iter()
        .filter(|d| domains.iter().any(|n| n == d.as_str()))
        .collect();
    (domains, vulnerability_types)
}

/// The transport: `lang`, `signature`, timeouts, page and body caps, the retry policy.
fn check_client(
    i: usize,
    raw: &RawSource,
    endpoint: String,
    errs: &mut Errors<'_>,
) -> ClientSettings {
    let k = |field: &str| format!("source[{i}].{field}");
    let lang = match &raw.lang {
        Some(l) if !matches!(l.get_ref().as_str(), "en" | "zh") => {
            errs.at(
                l,
                k("lang"),
                format!("`{}` must be \"en\" or \"zh\"", l.get_ref()),
            );
            "en".to_string()
        }
        Some(l) => l.get_ref().clone(),
        None => "en".to_string(),
    };
    let mut client = ClientSettings::new(endpoint);
    client.signature = raw.signature;
    client.lang = lang;
    if let Some(d) = raw.connect_timeout {
        client.connect_timeout = d.0;
    }
    if let Some(d) = raw.timeout {
        client.timeout = d.0;
    }
    for (field, d) in [
        ("connect_timeout", client.connect_timeout),
        ("timeout", client.timeout),
    ] {
        if d.is_zero() || d > Duration::from_secs(600) {
            errs.push(
                Some(raw.name.span()),
                &k(field),
                format!("{d:?} is out of range: use more than 0s and at most 10m"),
            );
        }
    }
    if let Some(m) = &raw.max_pages {
        if *m.get_ref() == 0 || *m.get_ref() > 100_000 {
            errs.at(m, k("max_pages"), "must be between 1 and 100000".into());
        }
        client.max_pages = *m.get_ref();
    }
    if let Some(c) = &raw.calls_per_second {
        match NonZeroU32::new(*c.get_ref()).filter(|n| n.get() <= MAX_CALLS_PER_SECOND) {
            Some(n) => client.calls_per_second = n,
            None => errs.at(
                c,
                k("calls_per_second"),
                format!(
                    "must be between 1 and {MAX_CALLS_PER_SECOND} (Security Center allows about 10 per action)"
                ),
            ),
        }
    }
    if let Some(g) = &raw.quota_group {
        client.quota_group = g.get_ref().trim().to_string();
    }
    if let Some(m) = &raw.max_response_bytes {
        if *m.get_ref() < 4096 || *m.get_ref() > (1 << 30) {
            errs.at(
                m,
                k("max_response_bytes"),
                "must be between 4096 and 1073741824".into(),
            );
        }
        client.max_body_bytes = *m.get_ref() as usize;
    }
    let default_retry = crate::sas::retry::RetryPolicy::default();
    match crate::sas::retry::RetryPolicy::new(
        raw.max_attempts
            .as_ref()
            .map_or(default_retry.max_attempts, |m| *m.get_ref()),
        raw.retry_initial_delay
            .map_or(default_retry.initial_delay, |d| d.0),
        raw.retry_max_delay.map_or(default_retry.max_delay, |d| d.0),
    ) {
        Ok(p) => client.retry = p,
        Err(msg) => match &raw.max_attempts {
            Some(m) => errs.at(m, k("max_attempts"), msg),
            None => errs.push(Some(raw.name.span()), &k("retry_initial_delay"), msg),
        },
    }
    client
}

/// Default poll interval of a domain.
pub fn default_interval(d: Domain) -> Duration {
    match d {
        Domain::Alerts => Duration::from_secs(30),
        Domain::Firewall => Duration::from_secs(60),
        Domain::Vulnerabilities => Duration::from_secs(15 * 60),
        Domain::Baseline => Duration::from_secs(3600),
    }
}

fn check_polls(
    i: usize,
    raw: &RawSource,
    domains: &[Domain],
    errs: &mut Errors<'_>,
) -> (Vec<DomainPoll>, Duration) {
    let mut out = Vec::new();
    // Every written key is checked, even for a domain that is not enabled: a typo there is
    // still a typo.
    for d in &Domain::ALL {
        let (interval, events) = match d {
            Domain::Alerts => (&raw.poll.alerts, raw.events.alerts.as_deref()),
            Domain::Vulnerabilities => (
                &raw.poll.vulnerabilities,
                raw.events.vulnerabilities.as_deref(),
            ),
            Domain::Baseline => (&raw.poll.baseline, raw.events.baseline.as_deref()),
            Domain::Firewall => (&raw.poll.firewall, raw.events.firewall.as_deref()),
        };
        let key = |f: &str| format!("source[{i}].{f}.{}", d.as_str());
        let interval = match interval {
            None => Some(default_interval(*d)),
            Some(v) if v.get_ref() == "off" => None,
            Some(v) => match parse_duration(v.get_ref()) {
                Ok(dur)
                    if dur >= Duration::from_secs(1) && dur <= Duration::from_secs(7 * 86_400) =>
                {
                    Some(dur)
                }
                Ok(_) => {
                    errs.at(
                        v,
                        key("poll"),
                        "must be between 1s and 7d, or \"off\"".into(),
                    );
                    None
                }
                Err(e) => {
                    errs.at(v, key("poll"), format!("{e}, or \"off\""));
                    None
                }
            },
        };
        let mut switches = EventSwitches {
            new: false,
            resolved: false,
            recurring: false,
        };
        match events {
            None => switches = EventSwitches::default(),
            Some(list) => {
                for e in list {
                    match e.get_ref().as_str() {
                        "new" => switches.new = true,
                        "resolved" => switches.resolved = true,
                        "recurring" => switches.recurring = true,
                        other => errs.at(
                            e,
                            key("events"),
                            format!("unknown event `{other}`; expected new, resolved or recurring"),
                        ),
                    }
                }
            }
        }
        if let Some(interval) = interval.filter(|_| domains.contains(d)) {
            out.push(DomainPoll {
                domain: *d,
                interval,
                events: switches,
            });
        }
    }
    let overlap = raw.poll.overlap.map_or(Duration::from_secs(300), |d| d.0);
    if overlap > Duration::from_secs(86_400) {
        errs.push(
            Some(raw.name.span()),
            &format!("source[{i}].poll.overlap"),
            "must be at most 1d".into(),
        );
    }
    (out, overlap)
}

/// Checks a list of names against the allowed set; returns them in canonical order, deduplicated.
/// `None` (key absent) means all of them.
fn check_names(
    given: Option<&[Spanned<String>]>,
    allowed: &[&str],
    key: &str,
    what: &str,
    errs: &mut Errors<'_>,
) -> Vec<String> {
    let Some(given) = given else {
        return allowed.iter().map(|s| s.to_string()).collect();
    };
    for (j, g) in given.iter().enumerate() {
        if !allowed.contains(&g.get_ref().as_str()) {
            errs.at(
                g,
                format!("{key}[{j}]"),
                format!(
                    "unknown {what} `{}`; expected one of: {}",
                    g.get_ref(),
                    allowed.join(", ")
                ),
            );
        }
    }
    allowed
        .iter()
        .filter(|a| given.iter().any(|g| g.get_ref() == *a))
        .map(|s| s.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[source]]
name = "prod"
region = "cn-hangzhou"
clusters = ["c1234567890abcdef"]
credentials = { type = "access_key", access_key_id = "LTAI5t", access_key_secret = { env = "SAS_SK" } }

[[source]]
name = "intl"
region = "ap-southeast-1"
vpc_endpoint = true
domains = ["firewall", "alerts"]
signature = "v1"
lang = "zh"
timeout = "10s"
credentials = { type = "env" }
"#;

    fn errors(text: &str) -> Vec<ConfigError> {
        parse(Path::new("t.toml"), text).unwrap_err().0
    }

    #[test]
    fn console_links_are_checked_per_domain() {
        let ok = GOOD.replacen(
            "clusters = [",
            "console_links = { alerts = \"https://c.example/#/a?id={id}\" }\nclusters = [",
            1,
        );
        let s = parse(Path::new("t.toml"), &ok).unwrap();
        assert_eq!(
            s.sources[0].console_links[&Domain::Alerts],
            "https://c.example/#/a?id={id}"
        );
        let bad = GOOD.replacen(
            "clusters = [",
            "console_links = { alert = \"https://c.example/{id}\", baseline = \"https://c.example/{name}\" }\nclusters = [",
            1,
        );
        let keys: Vec<String> = errors(&bad).into_iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "source[0].console_links.alert",
                "source[0].console_links.baseline"
            ]
        );
    }

    /// Files written before 1h became the ceiling keep loading: capped, with a warning.
    #[test]
    fn a_retry_max_delay_over_an_hour_is_capped_with_a_warning() {
        let text = format!("{GOOD}\n[delivery]\nretry_max_delay = \"2h\"\n");
        let s = parse(Path::new("t.toml"), &text).unwrap();
        assert_eq!(s.delivery.retry_max_delay, MAX_RETRY_DELAY);
        assert!(
            s.warnings
                .iter()
                .any(|w| w.key == "delivery.retry_max_delay"),
            "{:?}",
            s.warnings
        );
    }

    #[test]
    fn a_good_file_yields_checked_settings() {
        let s = parse(Path::new("t.toml"), GOOD).unwrap();
        assert_eq!(s.sources.len(), 2);
        let prod = &s.sources[0];
        assert_eq!(prod.client.endpoint, "https://tds.cn-shanghai.aliyuncs.com");
        assert_eq!(prod.domains, Domain::ALL.to_vec());
        assert_eq!(
            prod.vulnerability_types,
            vec![VulType::Cve, VulType::AppSca]
        );
        assert_eq!(
            prod.console_base,
            "https://yundun.console.aliyun.com/?p=sas"
        );
        let intl = &s.sources[1];
        assert_eq!(
            intl.client.endpoint,
            "https://tds-intl.vpc-proxy.aliyuncs.com"
        );
        assert_eq!(intl.domains, vec![Domain::Alerts, Domain::Firewall]);
        assert_eq!(intl.client.signature, SignatureVersion::V1);
        assert_eq!(intl.client.lang, "zh");
        assert_eq!(intl.client.timeout, Duration::from_secs(10));
        assert!(intl.console_base.contains("alibabacloud.com"));
    }

    #[test]
    fn grouping_routes_that_page_pagerduty_are_warned_about_where_they_name_it() {
        let text = r#"
[[source]]
name = "a"
region = "cn-hangzhou"
credentials = { type = "env" }

[[sink]]
name = "chat"
type = "stdout"

[[sink]]
name = "oncall"
type = "pagerduty"
routing_key = { env = "PD_KEY" }

[routing]
default_sinks = ["chat"]

[[route]]
matchers = ['severity>=high']
group_by = ["cluster"]
sinks = ["chat"]
  [[route.routes]]
  matchers = ['domain="alerts"']
  sinks = ["chat", "oncall"]

[[route]]
matchers = ['domain="vulnerabilities"']
sinks = ["oncall"]
"#;
        let s = parse(Path::new("t.toml"), text).unwrap();
        let warned: Vec<&ConfigError> = s
            .warnings
            .iter()
            .filter(|w| w.message.contains("pagerduty"))
            .collect();
        assert_eq!(warned.len(), 1, "{:#?}", s.warnings);
        // The nested route inherits `group_by`; the warning points at its `"oncall"`.
        assert_eq!(warned[0].key, "route[0].routes[0]");
        assert_eq!(
            (warned[0].line, warned[0].column),
            (25, 20),
            "{}",
            warned[0]
        );
        assert!(warned[0].message.contains("\"oncall\""), "{}", warned[0]);
    }

    #[test]
    fn all_errors_are_reported_at_once_with_positions_and_keys() {
        let text = r#"
[[source]]
name = "a"
region = "mars-1"
clusters = ["prod-cluster"]
credentials = { type = "env" }

[[source]]
name = "b"
region = "cn-hangzhou"
colour = "blue"
credentials = { type = "env" }

[[source]]
name = "a"
region = "cn-hangzhou"
domains = ["alerts", "malware"]
lang = "fr"
credentials = { type = "env" }

[extra]
x = 1
"#;
        let errs = errors(text);
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"extra"), "{keys:?}");
        assert!(keys.contains(&"source[0].region"), "{keys:?}");
        assert!(keys.contains(&"source[0].clusters[0]"), "{keys:?}");
        assert!(keys.contains(&"source[1].colour"), "{keys:?}");
        assert!(keys.contains(&"source[2].name"), "{keys:?}");
        assert!(keys.contains(&"source[2].domains[1]"), "{keys:?}");
        assert!(keys.contains(&"source[2].lang"), "{keys:?}");
        let region = errs.iter().find(|e| e.key == "source[0].region").unwrap();
        assert_eq!((region.line, region.column), (4, 10));
        let colour = errs
            .iter()
            .find(|e| e.key.starts_with("source[1]"))
            .unwrap();
        assert!(colour.message.contains("colour"), "{colour}");
        assert_eq!(colour.line, 11, "{colour}");
        let text = ConfigErrors(errs.clone()).to_string();
        assert!(text.starts_with(&format!("{} errors in configuration", errs.len())));
        assert!(
            text.contains("t.toml:4:10: source[0].region: unknown region `mars-1`"),
            "{text}"
        );
    }

    #[test]
    fn sources_sharing_a_call_budget_must_agree_on_its_rate() {
        let src = |name: &str, extra: &str| {
            format!(
                "[[source]]\nname = \"{name}\"\nregion = \"cn-hangzhou\"\ncredentials = {{ type = \"env\" }}\n{extra}\n"
            )
        };
        let two = format!(
            "{}{}",
            src("a", "calls_per_second = 4"),
            src("b", "calls_per_second = 6")
        );
        let e = errors(&two);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].key, "source[1].calls_per_second");
        assert!(e[0].message.contains("source a"), "{}", e[0].message);
        assert_eq!(e[0].line, 10);
        // Another account, another group: its own budget.
        let grouped = format!(
            "{}{}",
            src("a", "calls_per_second = 4"),
            src("b", "calls_per_second = 6\nquota_group = \"tenant-b\"")
        );
        assert!(parse(Path::new("t.toml"), &grouped).is_ok());
        let e = errors(&src("a", "calls_per_second = 0"));
        assert_eq!(e[0].key, "source[0].calls_per_second");
    }

    #[test]
    fn the_gone_rule_has_defaults_and_is_checked() {
        let src = |extra: &str| {
            format!(
                "[[source]]\nname = \"a\"\nregion = \"cn-hangzhou\"\ncredentials = {{ type = \"env\" }}\n{extra}\n"
            )
        };
        let gone = |extra: &str| parse(Path::new("t.toml"), &src(extra)).unwrap().sources[0].gone;
        assert_eq!(gone(""), GoneRule::default());
        let set =
            gone("gone = { sweeps = 3, hold_share = 0.25, hold_at_least = 5, hold_sweeps = 6 }");
        assert_eq!(
            set,
            GoneRule {
                sweeps: 3,
                hold_share: 0.25,
                hold_at_least: 5,
                hold_sweeps: 6
            }
        );
        let e = errors(&src("gone = { sweeps = 0, hold_share = 1.5 }"));
        let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["source[0].gone.sweeps", "source[0].gone.hold_share"]);
        let e = errors(&src("gone = { sweeps = 5 }"));
        assert_eq!(e[0].key, "source[0].gone.hold_sweeps");
        assert!(
            e[0].message.contains("at least sweeps (5)"),
            "{}",
            e[0].message
        );
        let e = errors(&src("gone = { sweep = 5 }"));
        assert!(e[0].key.starts_with("source[0]"), "{e:?}");
    }

    #[test]
    fn syntax_errors_and_empty_files_are_explained() {
        let e = errors("[[source]\nname = 1");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].line, 1);
        let e = errors("");
        assert!(e[0].message.contains("no [[source]]"));
        let e = errors("source = 3");
        assert!(e[0].message.contains("[[source]]"));
    }

    #[test]
    fn bad_types_and_ranges_name_the_key() {
        let e = errors(
            "[[source]]\nname = \"a\"\nregion = \"cn-hangzhou\"\nmax_pages = 0\ntimeout = \"soon\"\ncredentials = { type = \"env\" }\n",
        );
        let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"source[0].timeout"), "{keys:?}");
        let e = errors(
            "[[source]]\nname = \"a\"\nregion = \"cn-hangzhou\"\nmax_pages = 0\ndomains = []\ncredentials = { type = \"env\" }\n",
        );
        let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, vec!["source[0].max_pages", "source[0].domains"]);
        assert_eq!(e[0].line, 4);
    }

    #[test]
    fn credential_errors_name_the_credentials_key() {
        let e = errors(
            "[[source]]\nname = \"a\"\nregion = \"cn-hangzhou\"\ncredentials = { type = \"access_key\", access_key_id = \"x\", access_key_secret = { env = \"Y\" }, bogus = 1 }\n",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].key.starts_with("source[0].credentials"), "{}", e[0]);
        assert!(e[0].message.contains("bogus"), "{}", e[0]);
        assert_eq!(e[0].line, 4);
        let e = errors(
            "[[source]]\nname = \"a\"\nregion = \"cn-hangzhou\"\ncredentials = { type = \"password\" }\n",
        );
        assert!(e[0].message.contains("password"), "{}", e[0]);
    }

    #[test]
    fn relative_secret_files_are_relative_to_the_config_file() {
        let text = "[[source]]\nname = \"a\"\nregion = \"cn-hangzhou\"\ncredentials = { type = \"access_key\", access_key_id = \"x\", access_key_secret = { file = \"sk\" } }\n";
        let s = parse(Path::new("/etc/sasrelay/sasrelay.toml"), text).unwrap();
        let CredentialsConfig::AccessKey(ak) = &s.sources[0].credentials else {
            panic!("access_key expected");
        };
        assert_eq!(
            ak.access_key_secret,
            crate::secret::SecretRef::File {
                file: "/etc/sasrelay/sk".into()
            }
        );
    }

    #[test]
    fn daemon_sections_have_defaults_and_are_checked() {
        let s = parse(Path::new("/etc/sasrelay/c.toml"), GOOD).unwrap();
        assert!(s.state.is_none());
        assert_eq!(s.delivery, DeliverySettings::default());
        assert_eq!(s.shutdown_grace, Duration::from_secs(10));
        let prod = &s.sources[0];
        assert_eq!(prod.polls.len(), 4);
        assert_eq!(prod.polls[0].interval, Duration::from_secs(30));
        assert_eq!(prod.polls[0].events, EventSwitches::default());
        assert_eq!(prod.initial_sync, InitialSync::Baseline);

        let text = format!(
            "{GOOD}\n[state]\ndirectory = \"state\"\nresolved_retention = \"7d\"\n[delivery]\nmax_age = \"1h\"\n"
        )
        .replacen(
            "lang = \"zh\"",
            "lang = \"zh\"\ninitial_sync = \"notify\"\npoll = { alerts = \"5s\", firewall = \"off\" }\nevents = { alerts = [\"new\", \"recurring\"] }",
            1,
        );
        let s = parse(Path::new("/etc/sasrelay/c.toml"), &text).unwrap();
        let state = s.state.unwrap();
        assert_eq!(state.directory, Path::new("/etc/sasrelay/state"));
        assert_eq!(state.resolved_retention, Duration::from_secs(7 * 86_400));
        assert_eq!(s.delivery.max_age, Duration::from_secs(3600));
        let intl = &s.sources[1];
        assert_eq!(intl.initial_sync, InitialSync::Notify);
        assert_eq!(intl.polls.len(), 1, "firewall is off");
        assert_eq!(intl.polls[0].interval, Duration::from_secs(5));
        assert!(intl.polls[0].events.recurring && !intl.polls[0].events.resolved);

        let bad = GOOD.replacen(
            "timeout = \"10s\"",
            "timeout = \"10s\"\npoll = { alerts = \"0s\", baseline = \"often\" }\nevents = { firewall = [\"deleted\"] }",
            1,
        ) + "\n[delivery]\nmax_age = \"5s\"\n[stat]\n";
        let keys: Vec<String> = errors(&bad).into_iter().map(|e| e.key).collect();
        for k in [
            "source[1].poll.alerts",
            "source[1].poll.baseline",
            "source[1].events.firewall",
            "delivery.max_age",
            "stat",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
    }

    /// A retention of millions of years went negative as milliseconds and would have pruned
    /// every dead letter at once; the config refuses it at its key.
    #[test]
    fn a_duration_past_a_hundred_years_is_refused_at_its_key() {
        let text = format!(
            "{GOOD}\n[state]\ndirectory = \"state\"\ndead_letter_retention = \"150000000000d\"\n"
        );
        let errs = errors(&text);
        let e = errs
            .iter()
            .find(|e| e.key.contains("dead_letter_retention") || e.message.contains("36500d"))
            .unwrap_or_else(|| panic!("no error for the retention: {errs:?}"));
        assert!(e.message.contains("at most 36500d"), "{e:?}");
    }

    #[test]
    fn health_problems_are_reported_at_their_keys_and_the_table_has_a_name() {
        let text = format!(
            "{GOOD}\n[[sink]]\nname = \"hook\"\ntype = \"stdout\"\n\n[health]\nblind_after = 0\nsinks = [\"hook\", \"pager\"]\nheartbeat_url = \"ftp://hc.example/x\"\nblind_aftr = 2\n"
        );
        let e = errors(&text);
        let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "health.blind_after",
                "health.sinks[1]",
                "health.heartbeat_url",
                "health.blind_aftr"
            ],
            "{e:?}"
        );
        let line = |needle: &str| text[..text.find(needle).unwrap()].matches('\n').count() + 1;
        assert_eq!(e[0].line, line("blind_after = 0"), "{}", e[0]);
        assert_eq!((e[1].line, e[1].column), (line("sinks ="), 18), "{}", e[1]);
        assert!(e[1].message.contains("\"pager\""), "{}", e[1]);
        assert!(e[2].message.contains("ftp"), "{}", e[2]);
        assert!(
            e[3].message.contains("did you mean `blind_after`?"),
            "{}",
            e[3]
        );
        let e = errors(&format!("{GOOD}\n[heath]\nblind_after = 2\n"));
        assert!(e[0].message.contains("did you mean `health`?"), "{}", e[0]);
        let s = parse(
            Path::new("t.toml"),
            &format!("{GOOD}\n[health]\nblind_after = 5\nstalled_after = \"1h\"\n"),
        )
        .unwrap();
        assert_eq!(s.health.blind_after, 5);
        assert_eq!(s.health.stalled_after, Duration::from_secs(3600));
        assert_eq!(s.health.sinks, None);
    }

    #[test]
    fn the_daemon_log_filter_is_checked() {
        let with = |filter: &str| format!("{GOOD}\n[daemon]\nlog = \"{filter}\"\n");
        let s = parse(Path::new("c.toml"), &with("info,sasrelay::sinks=debug")).unwrap();
        assert_eq!(s.log.as_deref(), Some("info,sasrelay::sinks=debug"));
        assert_eq!(parse(Path::new("c.toml"), GOOD).unwrap().log, None);
        for bad in ["verbose", "info,sasrelay=loud"] {
            let errs = errors(&with(bad));
            assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
            assert_eq!(errs[0].key, "daemon.log");
            assert!(
                errs[0].message.starts_with("not a log filter"),
                "{}",
                errs[0]
            );
            assert!(errs[0].line > 0, "placed: {}", errs[0]);
        }
    }

    #[test]
    fn an_admin_api_beyond_loopback_needs_a_token_or_an_explicit_opt_out() {
        let with = |admin: &str| format!("{GOOD}\n[admin]\n{admin}\n");
        let text = with(r#"listen = "0.0.0.0:9595""#);
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].key, "admin.listen");
        let line = text[..text.find("listen").unwrap()].matches('\n').count() + 1;
        assert_eq!((e[0].line, e[0].column), (line, 10), "{}", e[0]);
        assert!(e[0].message.contains("not a loopback address"), "{}", e[0]);
        assert!(e[0].message.contains("allow_unauthenticated"), "{}", e[0]);
        for fine in [
            r#"listen = "0.0.0.0:9595"
token = { env = "T" }"#,
            r#"listen = "127.0.0.1:9595""#,
            r#"listen = "[::1]:9595""#,
            r#"listen = "[::ffff:127.0.0.1]:9595""#,
            r#"listen = "off""#,
        ] {
            let s = parse(Path::new("t.toml"), &with(fine)).unwrap();
            assert!(s.warnings.is_empty(), "{fine}: {:?}", s.warnings);
        }
        let s = parse(
            Path::new("t.toml"),
            &with("listen = \"[::]:9595\"\nallow_unauthenticated = true"),
        )
        .unwrap();
        assert!(s.admin.open_without_token());
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert_eq!(s.warnings[0].key, "admin.allow_unauthenticated");
    }

    #[test]
    fn a_health_listener_is_off_by_default_and_needs_no_token_beyond_loopback() {
        let with = |admin: &str| format!("{GOOD}\n[admin]\n{admin}\n");
        assert_eq!(
            parse(Path::new("t.toml"), GOOD)
                .unwrap()
                .admin
                .health_listen,
            None
        );
        let s = parse(
            Path::new("t.toml"),
            &with(r#"health_listen = "0.0.0.0:9464""#),
        )
        .unwrap();
        assert_eq!(s.admin.health_listen, "0.0.0.0:9464".parse().ok());
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert!(
            !s.admin.open_without_token(),
            "the API itself stays on loopback"
        );
        let off = parse(Path::new("t.toml"), &with(r#"health_listen = "off""#)).unwrap();
        assert_eq!(off.admin.health_listen, None);
        // An address `run` could not bind beside the API is refused where `check` sees it.
        for (admin, message) in [
            (
                r#"health_listen = "0.0.0.0""#,
                "expected an address like \"0.0.0.0:9464\"",
            ),
            (
                r#"health_listen = "127.0.0.1:9595""#,
                "overlaps [admin] listen",
            ),
            (
                "listen = \"127.0.0.1:9464\"\nhealth_listen = \"0.0.0.0:9464\"",
                "overlaps [admin] listen",
            ),
        ] {
            let text = with(admin);
            let e = errors(&text);
            assert_eq!(e.len(), 1, "{admin}: {e:?}");
            assert_eq!(e[0].key, "admin.health_listen");
            let line = text[..text.find("health_listen").unwrap()]
                .matches('\n')
                .count()
                + 1;
            assert_eq!((e[0].line, e[0].column), (line, 17), "{}", e[0]);
            assert!(e[0].message.contains(message), "{}", e[0]);
        }
        // Other ports, or an ephemeral one (tests), are fine beside the API.
        for fine in [
            "listen = \"127.0.0.1:0\"\nhealth_listen = \"127.0.0.1:0\"",
            "listen = \"127.0.0.1:9595\"\nhealth_listen = \"127.0.0.2:9595\"",
            "listen = \"off\"\nhealth_listen = \"0.0.0.0:9595\"",
        ] {
            let s = parse(Path::new("t.toml"), &with(fine)).unwrap();
            assert!(s.admin.health_listen.is_some(), "{fine}");
        }
    }

    #[test]
    fn admin_limits_have_defaults_and_ranges() {
        let s = parse(Path::new("t.toml"), GOOD).unwrap();
        assert_eq!(s.admin, AdminSettings::default());
        assert_eq!(s.admin.header_read_timeout, Duration::from_secs(10));
        assert_eq!(s.admin.max_silence, Duration::from_secs(30 * 86_400));
        let text = format!(
            "{GOOD}\n[admin]\nhosts = [\"Relay.Internal\", \"x:1\"]\nheader_read_timeout = \"2s\"\nidle_timeout = \"5s\"\nmax_connections = 8\nmax_silence = \"7d\"\n"
        );
        let a = parse(Path::new("t.toml"), &text).unwrap().admin;
        assert_eq!(a.hosts, ["relay.internal", "x:1"]);
        assert_eq!(a.header_read_timeout, Duration::from_secs(2));
        assert_eq!(a.idle_timeout, Duration::from_secs(5));
        assert_eq!(a.max_connections, 8);
        assert_eq!(a.max_silence, Duration::from_secs(7 * 86_400));
        let bad = format!(
            "{GOOD}\n[admin]\nhosts = [\"http://x/\"]\nheader_read_timeout = \"0s\"\nidle_timeout = \"2h\"\nmax_connections = 0\nmax_silence = \"10s\"\n"
        );
        let keys: Vec<String> = errors(&bad).into_iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "admin.hosts[0]",
                "admin.header_read_timeout",
                "admin.idle_timeout",
                "admin.max_connections",
                "admin.max_silence"
            ]
        );
    }

    #[test]
    fn a_type_error_inside_a_sink_names_the_key_as_written() {
        let bad = format!("{GOOD}\n[[sink]]\nname = \"a\"\ntype = \"stdout\"\nmin_severity = 5\n");
        let keys: Vec<String> = errors(&bad).into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["sink[0].min_severity"]);
    }

    #[test]
    fn sinks_are_parsed_checked_and_anchored() {
        let text = format!(
            "{GOOD}\n[[sink]]\nname = \"log\"\ntype = \"file\"\npath = \"events.jsonl\"\n\n[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\n"
        );
        let s = parse(Path::new("/etc/sasrelay/c.toml"), &text).unwrap();
        assert_eq!(s.sinks.len(), 2);
        assert_eq!(s.sinks[0].name, "log");

        let bad = format!(
            "{GOOD}\n[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"ftp://x\"\n\n[[sink]]\nname = \"hook\"\ntype = \"stdout\"\n\n[[sink]]\nname = \"x\"\ntype = \"pager\"\n"
        );
        let errs = errors(&bad);
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"sink[0].url"), "{keys:?}");
        assert!(keys.contains(&"sink[1].name"), "{keys:?}");
        assert!(keys.iter().any(|k| k.starts_with("sink[2]")), "{keys:?}");
        assert!(errs.iter().all(|e| e.line > 0), "{errs:?}");
    }
}
