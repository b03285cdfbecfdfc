//! Simulator settings: the shape of the fake world, the generator's pace and the credentials the
//! fake service accepts. Parse, then validate: [`SimConfig::validate`] rejects nonsense before a
//! socket is bound.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Access key id of the built-in demo credential.
pub const DEMO_ACCESS_KEY_ID: &str = "sasrelay-sim";
/// Secret of the built-in demo credential (not a secret: it only opens the simulator).
pub const DEMO_ACCESS_KEY_SECRET: &str = "sasrelay-sim-secret";
/// Address `sasrelay simulate` listens on by default.
pub const DEMO_LISTEN: &str = "127.0.0.1:8901";

/// Upper bounds that keep the in-memory world bounded whatever the configuration says: 1,000
/// clusters is the large account of the call benchmark (`benches/calls.rs`).
pub const MAX_CLUSTERS: usize = 1_000;
/// See [`MAX_CLUSTERS`]. A node costs a few hundred bytes, so even 1,000 × 50 nodes stay
/// around 20 MB; the findings are what grows.
pub const MAX_NODES_PER_CLUSTER: usize = 50;
/// Maximum initial findings per domain when `initial` counts are totals.
pub const MAX_INITIAL_PER_DOMAIN: usize = 10_000;
/// Maximum initial findings per domain when `initial` counts are per cluster (count ×
/// clusters); the world's own cap per domain ([`crate::simulator::MAX_RECORDS_PER_DOMAIN`]).
pub const MAX_INITIAL_TOTAL_PER_CLUSTER_WORLD: usize = 50_000;
/// Maximum accepted credentials.
pub const MAX_CREDENTIALS: usize = 1_000;

/// An access key the simulator accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimCredential {
    /// AccessKey ID.
    pub access_key_id: String,
    /// AccessKey secret.
    pub access_key_secret: String,
    /// When set the key is an STS key: requests must carry exactly this token
    /// (V1 `SecurityToken`, V3 signed `x-acs-security-token`).
    #[serde(default)]
    pub security_token: Option<String>,
    /// Epoch milliseconds after which requests fail with `InvalidSecurityToken.Expired`.
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    /// Every authenticated call fails with 403 `Forbidden.RAM` (permission-denied testing).
    #[serde(default)]
    pub denied: bool,
    /// Only these actions fail with `Forbidden.RAM` (in addition to `denied`).
    #[serde(default)]
    pub denied_actions: Vec<String>,
    /// The key is disabled: `InvalidAccessKeyId.Inactive`.
    #[serde(default)]
    pub disabled: bool,
}

impl SimCredential {
    /// A plain, permanent AccessKey pair.
    pub fn new(access_key_id: impl Into<String>, access_key_secret: impl Into<String>) -> Self {
        SimCredential {
            access_key_id: access_key_id.into(),
            access_key_secret: access_key_secret.into(),
            security_token: None,
            expires_at_ms: None,
            denied: false,
            denied_actions: Vec::new(),
            disabled: false,
        }
    }

    /// An STS key: the token must accompany every request; `expires_at_ms` is epoch ms.
    pub fn sts(
        access_key_id: impl Into<String>,
        access_key_secret: impl Into<String>,
        token: impl Into<String>,
        expires_at_ms: Option<i64>,
    ) -> Self {
        SimCredential {
            security_token: Some(token.into()),
            expires_at_ms,
            ..Self::new(access_key_id, access_key_secret)
        }
    }

    /// The demo credential (`sasrelay-sim` / `sasrelay-sim-secret`).
    pub fn demo() -> Self {
        Self::new(DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET)
    }
}

/// How many findings each domain starts with: totals over the world, or per cluster when
/// [`SimConfig::initial_per_cluster`] is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitialFindings {
    /// `DescribeSuspEvents` records.
    pub alerts: usize,
    /// `DescribeVulList` records.
    pub vulns: usize,
    /// `DescribeCheckWarnings` records (baseline check items on assets).
    pub baseline: usize,
    /// `ListInterceptionHistory` records.
    pub firewall: usize,
}

impl InitialFindings {
    /// No finding at first: a test adds exactly those it counts.
    pub const NONE: InitialFindings = InitialFindings {
        alerts: 0,
        vulns: 0,
        baseline: 0,
        firewall: 0,
    };
}

/// Everything the simulator needs to build its world and answer requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// Where [`crate::simulator::serve`]'s caller should bind; [`crate::simulator::Simulator::start`]
    /// ignores it and binds `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Seed of the world generator: the same seed gives the same clusters, ids and content.
    pub seed: u64,
    /// Number of ACK clusters (1..=1,000).
    pub clusters: usize,
    /// Worker nodes per cluster (1..=50).
    pub nodes_per_cluster: usize,
    /// Findings per domain at start.
    pub initial: InitialFindings,
    /// `false` (the default): `initial` counts are totals, each record on a random cluster
    /// (the worlds of existing seeds stay as they were). `true`: they are per cluster — every
    /// cluster holds exactly that many of each domain, so a 1,000-cluster world has findings in
    /// proportion (totals up to 50,000 per domain).
    pub initial_per_cluster: bool,
    /// Interval of the background generator; `None` means findings only change through the control
    /// interface (what tests use, so nothing moves under them).
    pub tick: Option<Duration>,
    /// Accepted credentials.
    pub credentials: Vec<SimCredential>,
    /// Now and then put attacker-written content (markdown, HTML, chat mentions, newlines) into
    /// command lines, file paths and reasons, so sinks get tested against it.
    pub hostile_strings: bool,
    /// Accepted clock skew for `Timestamp` / `x-acs-date` (the real service: 15 minutes).
    pub timestamp_window: Duration,
    /// Enforce a quota as the real service does: a call arriving when this many calls of the
    /// same action arrived within the last second is answered `Throttling.User`. `None`: no
    /// quota (tests that do not test it poll fast).
    pub quota_per_second: Option<u32>,
}

impl Default for SimConfig {
    /// Test defaults: 2 clusters × 3 nodes, a few dozen findings per domain, no generator, the demo
    /// credential, listen `127.0.0.1:0`.
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 20_240_520,
            clusters: 2,
            nodes_per_cluster: 3,
            initial: InitialFindings {
                alerts: 30,
                vulns: 40,
                baseline: 30,
                firewall: 24,
            },
            initial_per_cluster: false,
            tick: None,
            credentials: vec![SimCredential::demo()],
            hostile_strings: true,
            timestamp_window: Duration::from_secs(15 * 60),
            quota_per_second: None,
        }
    }
}

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SimConfigError {
    /// `clusters` outside 1..=1,000.
    #[error("clusters must be between 1 and {MAX_CLUSTERS}, got {0}")]
    Clusters(usize),
    /// `nodes_per_cluster` outside 1..=50.
    #[error("nodes_per_cluster must be between 1 and {MAX_NODES_PER_CLUSTER}, got {0}")]
    Nodes(usize),
    /// An initial count above the cap (the total, when counts are per cluster).
    #[error(
        "initial {0} findings must be at most {MAX_INITIAL_PER_DOMAIN} in all, or {MAX_INITIAL_TOTAL_PER_CLUSTER_WORLD} in all with initial_per_cluster; got {1} in all"
    )]
    Initial(&'static str, usize),
    /// A generator interval under 10 ms.
    #[error("tick must be at least 10ms, got {0:?}")]
    Tick(Duration),
    /// Too many credentials, or one with an empty id or secret.
    #[error("invalid credentials: {0}")]
    Credentials(String),
    /// A timestamp window of zero or above one day.
    #[error("timestamp_window must be between 1s and 24h, got {0:?}")]
    Window(Duration),
}

impl SimConfig {
    /// What `sasrelay simulate` runs: listen `127.0.0.1:8901`, credential `sasrelay-sim` /
    /// `sasrelay-sim-secret`, new findings every 10 seconds.
    pub fn demo() -> Self {
        SimConfig {
            listen: DEMO_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8901))),
            tick: Some(Duration::from_secs(10)),
            ..SimConfig::default()
        }
    }

    /// Checks every bound; returns the first violation.
    pub fn validate(&self) -> Result<(), SimConfigError> {
        if !(1..=MAX_CLUSTERS).contains(&self.clusters) {
            return Err(SimConfigError::Clusters(self.clusters));
        }
        if !(1..=MAX_NODES_PER_CLUSTER).contains(&self.nodes_per_cluster) {
            return Err(SimConfigError::Nodes(self.nodes_per_cluster));
        }
        for (name, n) in [
            ("alerts", self.initial.alerts),
            ("vulns", self.initial.vulns),
            ("baseline", self.initial.baseline),
            ("firewall", self.initial.firewall),
        ] {
            let (total, cap) = if self.initial_per_cluster {
                (
                    n.saturating_mul(self.clusters),
                    MAX_INITIAL_TOTAL_PER_CLUSTER_WORLD,
                )
            } else {
                (n, MAX_INITIAL_PER_DOMAIN)
            };
            if total > cap {
                return Err(SimConfigError::Initial(name, total));
            }
        }
        if let Some(t) = self.tick
            && t < Duration::from_millis(10)
        {
            return Err(SimConfigError::Tick(t));
        }
        if self.credentials.len() > MAX_CREDENTIALS {
            return Err(SimConfigError::Credentials(format!(
                "at most {MAX_CREDENTIALS} credentials"
            )));
        }
        for c in &self.credentials {
            validate_credential(c).map_err(SimConfigError::Credentials)?;
        }
        if self.timestamp_window < Duration::from_secs(1)
            || self.timestamp_window > Duration::from_secs(86_400)
        {
            return Err(SimConfigError::Window(self.timestamp_window));
        }
        Ok(())
    }
}

/// Rejects credentials no client could use.
pub(crate) fn validate_credential(c: &SimCredential) -> Result<(), String> {
    if c.access_key_id.is_empty() || c.access_key_id.len() > 128 {
        return Err("access_key_id must be 1..=128 bytes".into());
    }
    if c.access_key_secret.is_empty() || c.access_key_secret.len() > 256 {
        return Err("access_key_secret must be 1..=256 bytes".into());
    }
    if c.security_token
        .as_ref()
        .is_some_and(|t| t.is_empty() || t.len() > 8192)
    {
        return Err("security_token must be 1..=8192 bytes".into());
    }
    if c.denied_actions.len() > 100 {
        return Err("at most 100 denied_actions".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bounds_are_enforced() {
        assert_eq!(SimConfig::default().validate(), Ok(()));
        assert_eq!(SimConfig::demo().validate(), Ok(()));
        assert_eq!(SimConfig::demo().listen.port(), 8901);
        let bad = SimConfig {
            clusters: 0,
            ..SimConfig::default()
        };
        assert_eq!(bad.validate(), Err(SimConfigError::Clusters(0)));
        let big = SimConfig {
            clusters: MAX_CLUSTERS,
            initial_per_cluster: true,
            initial: InitialFindings {
                alerts: 50,
                vulns: 50,
                baseline: 50,
                firewall: 50,
            },
            ..SimConfig::default()
        };
        assert_eq!(big.validate(), Ok(()));
        let too_many = SimConfig {
            initial: InitialFindings {
                alerts: 51,
                ..big.initial
            },
            ..big.clone()
        };
        assert_eq!(
            too_many.validate(),
            Err(SimConfigError::Initial("alerts", 51_000))
        );
        let bad = SimConfig {
            clusters: MAX_CLUSTERS + 1,
            ..SimConfig::default()
        };
        assert_eq!(bad.validate(), Err(SimConfigError::Clusters(1_001)));
        let bad = SimConfig {
            tick: Some(Duration::from_millis(1)),
            ..SimConfig::default()
        };
        assert!(matches!(bad.validate(), Err(SimConfigError::Tick(_))));
        let bad = SimConfig {
            credentials: vec![SimCredential::new("", "x")],
            ..SimConfig::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(SimConfigError::Credentials(_))
        ));
    }
}
