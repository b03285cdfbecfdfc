//! `[ha]`: two replicas, one leader (the module doc of [`crate::ha`] has the design).
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `coordinator` | — | `"kubernetes"` (a Lease and a ConfigMap in the pod's namespace) or `"postgres"` (a lease row and a checkpoint row) |
//! | `name` | `"sasrelay"` | the Lease's name (the ConfigMap is `<name>-checkpoint`; the rows' key); one per pair of replicas |
//! | `identity` | `$POD_NAME`, else the host name | this replica's name, unique among candidates |
//! | `lease_duration` | `"15s"` | how long a lease nobody renews stays held |
//! | `renew_deadline` | `"10s"` | how long a leader keeps failing to renew before it stops leading (shorter than `lease_duration`) |
//! | `retry_period` | `"2s"` | time between tries (× 1 to 1.2) |
//! | `checkpoint_interval` | `"2s"` | how often the leader writes its checkpoint |
//! | `ring` | `4096` | events settled above the watermark kept per stream and sink in the checkpoint |
//! | `api_url`, `namespace`, `token_file` | in-cluster | `kubernetes` only: another API server (a VM pair using a cluster's Lease, the tests) |
//! | `url` | — | `postgres` only: a connection URL, or `{ env = "X" }` / `{ file = "/path" }` |

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::duration::{HumanDuration, format_duration};
use crate::sinks::MaybeSecret;

use super::lease::Timings;
use super::ledger::DEFAULT_RING_CAP;

/// `name` when not given.
pub const DEFAULT_NAME: &str = "sasrelay";

/// `checkpoint_interval` when not given.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);

/// `[ha]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHa {
    coordinator: Option<String>,
    name: Option<String>,
    identity: Option<String>,
    lease_duration: Option<HumanDuration>,
    renew_deadline: Option<HumanDuration>,
    retry_period: Option<HumanDuration>,
    checkpoint_interval: Option<HumanDuration>,
    ring: Option<usize>,
    api_url: Option<String>,
    namespace: Option<String>,
    token_file: Option<PathBuf>,
    url: Option<MaybeSecret>,
}

/// Where the lease and the checkpoint live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Coordinator {
    /// A `coordination.k8s.io/v1` Lease and a ConfigMap.
    Kubernetes {
        /// Another API server than the pod's: its URL, namespace and bearer-token file.
        api: Option<(String, String, Option<PathBuf>)>,
    },
    /// A lease row and a checkpoint row in PostgreSQL.
    Postgres {
        /// The connection URL (read when the daemon starts).
        url: MaybeSecret,
    },
}

/// Checked `[ha]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaSettings {
    /// Where the lease and the checkpoint live.
    pub coordinator: Coordinator,
    /// The lease's name.
    pub name: String,
    /// This replica's name, when written (else `$POD_NAME` or the host name, at start).
    pub identity: Option<String>,
    /// Lease duration, renew deadline, retry period.
    pub timings: Timings,
    /// How often the leader writes its checkpoint.
    pub checkpoint_interval: Duration,
    /// Ring entries kept per stream and sink.
    pub ring: usize,
}

impl HaSettings {
    /// The checkpoint ConfigMap's name.
    pub fn checkpoint_name(&self) -> String {
        format!("{}-checkpoint", self.name)
    }

    /// Checks `[ha]`; problems as (key, message).
    pub fn check(raw: RawHa) -> (Option<HaSettings>, Vec<(String, String)>) {
        let mut problems: Vec<(String, String)> = Vec::new();
        let mut problem = |k: &str, m: String| problems.push((k.to_string(), m));
        let d = Timings::default();
        let timings = Timings {
            lease: raw.lease_duration.map_or(d.lease, |h| h.0),
            renew_deadline: raw.renew_deadline.map_or(d.renew_deadline, |h| h.0),
            retry: raw.retry_period.map_or(d.retry, |h| h.0),
        };
        if timings.renew_deadline >= timings.lease {
            problem(
                "renew_deadline",
                format!(
                    "must be shorter than lease_duration ({}): a leader must stop before a standby may take over",
                    format_duration(timings.lease)
                ),
            );
        }
        if timings.retry.mul_f64(1.2) >= timings.renew_deadline {
            problem(
                "retry_period",
                format!(
                    "× 1.2 (its jitter) must be shorter than renew_deadline ({}): a leader must get several tries to renew",
                    format_duration(timings.renew_deadline)
                ),
            );
        }
        if timings.retry < Duration::from_millis(100) {
            problem("retry_period", "must be at least 100ms".into());
        }
        let checkpoint_interval = raw
            .checkpoint_interval
            .map_or(DEFAULT_CHECKPOINT_INTERVAL, |h| h.0);
        if checkpoint_interval < Duration::from_millis(100)
            || checkpoint_interval > Duration::from_secs(60)
        {
            problem(
                "checkpoint_interval",
                "must be between 100ms and 1m: what was delivered since the last checkpoint is repeated (flagged) after a failover".into(),
            );
        }
        let name = raw.name.unwrap_or_else(|| DEFAULT_NAME.to_string());
        if !is_dns_subdomain(&format!("{name}-checkpoint")) {
            problem(
                "name",
                format!(
                    "{name:?} is not a Kubernetes object name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 241 characters"
                ),
            );
        }
        if raw.identity.as_ref().is_some_and(|i| i.trim().is_empty()) {
            problem("identity", "must not be empty".into());
        }
        let ring = raw.ring.unwrap_or(DEFAULT_RING_CAP);
        if !(16..=100_000).contains(&ring) {
            problem("ring", "must be between 16 and 100000".into());
        }
        let kube_keys =
            raw.api_url.is_some() || raw.namespace.is_some() || raw.token_file.is_some();
        let coordinator = match raw.coordinator.as_deref() {
            Some("kubernetes") => {
                if raw.url.is_some() {
                    problem("url", "is for coordinator = \"postgres\"".into());
                }
                let api = match (raw.api_url, raw.namespace) {
                    (None, None) => {
                        if raw.token_file.is_some() {
                            problem("token_file", "needs api_url and namespace".into());
                        }
                        None
                    }
                    (Some(url), Some(ns)) => {
                        if !(url.starts_with("https://") || url.starts_with("http://")) {
                            problem("api_url", format!("{url:?} is not an http(s) URL"));
                        }
                        Some((url, ns, raw.token_file))
                    }
                    (Some(_), None) => {
                        problem("namespace", "is needed with api_url".into());
                        None
                    }
                    (None, Some(_)) => {
                        problem("api_url", "is needed with namespace".into());
                        None
                    }
                };
                Some(Coordinator::Kubernetes { api })
            }
            Some("postgres") => {
                if kube_keys {
                    problem(
                        "api_url",
                        "api_url, namespace and token_file are for coordinator = \"kubernetes\""
                            .into(),
                    );
                }
                match raw.url {
                    Some(url) => Some(Coordinator::Postgres { url }),
                    None => {
                        problem(
                            "url",
                            "is needed with coordinator = \"postgres\" (postgres://user@host/db, or { env = \"X\" })".into(),
                        );
                        None
                    }
                }
            }
            Some(other) => {
                problem(
                    "coordinator",
                    format!("{other:?} is not a coordinator: \"kubernetes\" or \"postgres\""),
                );
                None
            }
            None => {
                problem(
                    "coordinator",
                    "is needed: \"kubernetes\" (a Lease in the pod's namespace) or \"postgres\""
                        .into(),
                );
                None
            }
        };
        let settings = coordinator.map(|coordinator| HaSettings {
            coordinator,
            name,
            identity: raw.identity,
            timings,
            checkpoint_interval,
            ring,
        });
        if problems.is_empty() {
            (settings, problems)
        } else {
            (None, problems)
        }
    }
}

/// A Kubernetes object name (RFC 1123 subdomain).
fn is_dns_subdomain(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 253
        && s.starts_with(ok)
        && s.ends_with(ok)
        && s.chars().all(|c| ok(c) || c == '-' || c == '.')
}

/// This replica's name when `[ha] identity` is not written: `$POD_NAME` (the Kubernetes
/// manifests set it from the pod's name), else the host name.
pub fn default_identity(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    env("POD_NAME")
        .filter(|n| !n.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawHa {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn the_defaults_are_client_gos() {
        let (s, problems) = HaSettings::check(raw("coordinator = \"kubernetes\""));
        assert!(problems.is_empty(), "{problems:?}");
        let s = s.unwrap();
        assert_eq!(s.timings, Timings::default());
        assert_eq!(s.name, "sasrelay");
        assert_eq!(s.checkpoint_name(), "sasrelay-checkpoint");
        assert_eq!(s.coordinator, Coordinator::Kubernetes { api: None });
        assert_eq!(s.checkpoint_interval, Duration::from_secs(2));
    }

    #[test]
    fn timings_a_leader_could_not_stop_within_are_refused() {
        let (s, problems) = HaSettings::check(raw(
            "coordinator = \"kubernetes\"\nlease_duration = \"10s\"\nrenew_deadline = \"10s\"\nretry_period = \"9s\"",
        ));
        assert!(s.is_none());
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["renew_deadline", "retry_period"], "{problems:?}");
    }

    #[test]
    fn each_coordinator_takes_its_own_keys() {
        let (_, problems) = HaSettings::check(raw("coordinator = \"postgres\""));
        assert_eq!(problems[0].0, "url");
        let (_, problems) = HaSettings::check(raw(
            "coordinator = \"kubernetes\"\napi_url = \"http://127.0.0.1:1\"",
        ));
        assert_eq!(problems[0].0, "namespace");
        let (s, problems) = HaSettings::check(raw(
            "coordinator = \"postgres\"\nurl = { env = \"SASRELAY_HA_URL\" }\nname = \"bu-a\"",
        ));
        assert!(problems.is_empty(), "{problems:?}");
        assert!(matches!(
            s.unwrap().coordinator,
            Coordinator::Postgres { .. }
        ));
        let (_, problems) = HaSettings::check(raw("coordinator = \"etcd\""));
        assert_eq!(problems[0].0, "coordinator");
        let (_, problems) = HaSettings::check(raw("coordinator = \"kubernetes\"\nname = \"Main\""));
        assert_eq!(problems[0].0, "name");
    }
}
