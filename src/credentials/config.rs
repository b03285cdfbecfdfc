//! `credentials = { type = "...", ... }`: what the operator writes, and its validation against the
//! environment into a plan — parse, then validate, then (in `mod.rs`) act.
//!
//! Conventions:
//! - Secrets are [`SecretRef`]s (`{ env = "X" }` / `{ file = "/path" }`), never inline.
//! - `access_key_id` is not secret, so it may also be written inline as a plain string.
//! - Durations are strings of `<number><unit>` groups, units `s`, `m`, `h` (`"1h"`, `"90m"`,
//!   `"1h30m"`, `"900s"`), the crate-wide convention; bare integers are rejected so a value never
//!   silently means seconds in one key and minutes in another.
//! - Every field an ACK pod-identity webhook or the official SDK reads from the environment
//!   defaults to that variable; an explicit config value wins.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;

use super::env::{self, Env};
use super::{Credential, CredentialError, PROVIDER_ENV, PROVIDER_STATIC_AK, PROVIDER_STATIC_STS};
use crate::secret::{Secret, SecretRef};

/// Default STS endpoint (the global one), used when neither config nor environment names one.
pub const DEFAULT_STS_ENDPOINT: &str = "https://sts.aliyuncs.com";
/// Default ECS instance-metadata endpoint.
pub const DEFAULT_METADATA_ENDPOINT: &str = "http://100.100.100.200";
/// Default `DurationSeconds` for AssumeRoleWithOIDC.
pub const DEFAULT_RRSA_DURATION: Duration = Duration::from_secs(3600);
/// Smallest `DurationSeconds` STS accepts.
pub const MIN_RRSA_DURATION: Duration = Duration::from_secs(900);
/// Largest `DurationSeconds` STS accepts (a role's MaxSessionDuration may be lower).
pub const MAX_RRSA_DURATION: Duration = Duration::from_secs(43_200);

/// Where a source's Alibaba Cloud credentials come from, tagged by `type`.
///
/// ```toml
/// credentials = { type = "access_key", access_key_id = "LTAI...", access_key_secret = { env = "SAS_SK" } }
/// credentials = { type = "env" }
/// credentials = { type = "rrsa" }                  # everything from the ACK webhook's env vars
/// credentials = { type = "ecs_ram_role", role_name = "sasrelay-node" }
/// credentials = { type = "uri", uri = "http://127.0.0.1:8080/credentials" }
/// credentials = { type = "default" }               # the SDK's chain
/// ```
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CredentialsConfig {
    /// A long-lived AccessKey pair, or a static STS key when `security_token` is given.
    AccessKey(AccessKeyConfig),
    /// `ALIBABA_CLOUD_ACCESS_KEY_ID`, `ALIBABA_CLOUD_ACCESS_KEY_SECRET`, optional
    /// `ALIBABA_CLOUD_SECURITY_TOKEN`, read once at startup.
    Env(EnvConfig),
    /// RRSA on ACK: the pod's projected OIDC token exchanged for STS keys (AssumeRoleWithOIDC).
    Rrsa(RrsaConfig),
    /// The ECS instance RAM role, from the instance-metadata service.
    EcsRamRole(EcsRamRoleConfig),
    /// A local credentials endpoint returning the SDK's credentials JSON.
    Uri(UriConfig),
    /// The official SDK's default chain: env → RRSA → ECS RAM role → credentials URI.
    Default(DefaultChainConfig),
}

/// `type = "access_key"`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyConfig {
    /// The AccessKey ID: inline (`"LTAI..."`; it is not secret) or a [`SecretRef`] when it is
    /// deployed alongside the secret.
    pub access_key_id: AccessKeyId,
    /// The AccessKey secret.
    pub access_key_secret: SecretRef,
    /// An STS token; makes this a static (non-refreshed) STS key that an operator must rotate.
    #[serde(default)]
    pub security_token: Option<SecretRef>,
}

/// How `access_key_id` is written: inline, or read like a secret.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(
    untagged,
    expecting = "a string, { env = \"NAME\" } or { file = \"/path\" }"
)]
pub enum AccessKeyId {
    /// `access_key_id = "LTAI..."`.
    Inline(String),
    /// `access_key_id = { env = "X" }` or `{ file = "/path" }`.
    From(SecretRef),
}

/// `type = "env"`: no options.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnvConfig {}

/// `type = "rrsa"`. Every field is optional; unset ones come from the environment the ACK
/// pod-identity webhook injects.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RrsaConfig {
    /// RAM role to assume; default `ALIBABA_CLOUD_ROLE_ARN`.
    pub role_arn: Option<String>,
    /// The cluster's OIDC provider; default `ALIBABA_CLOUD_OIDC_PROVIDER_ARN`.
    pub oidc_provider_arn: Option<String>,
    /// Projected service-account token, re-read on every refresh; default
    /// `ALIBABA_CLOUD_OIDC_TOKEN_FILE`.
    pub oidc_token_file: Option<PathBuf>,
    /// `RoleSessionName` (2–64 of `A-Za-z0-9.@_-`); default `ALIBABA_CLOUD_ROLE_SESSION_NAME`,
    /// else `sasrelay-<unix seconds at startup>`.
    pub role_session_name: Option<String>,
    /// Requested lifetime (`DurationSeconds`), `"15m"` to `"12h"`; default `"1h"`.
    #[serde(deserialize_with = "de_opt_duration")]
    pub duration: Option<Duration>,
    /// An optional session policy (JSON text) narrowing the role's permissions.
    pub policy: Option<String>,
    /// STS base URL. Default `https://sts.aliyuncs.com`; with `ALIBABA_CLOUD_STS_REGION=r`,
    /// `https://sts.r.aliyuncs.com`, or `https://sts-vpc.r.aliyuncs.com` when
    /// `ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED=true`. A bare host means HTTPS.
    pub sts_endpoint: Option<String>,
}

/// `type = "ecs_ram_role"`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EcsRamRoleConfig {
    /// The instance's RAM role; default `ALIBABA_CLOUD_ECS_METADATA`, else discovered from the
    /// metadata service (once, then reused).
    pub role_name: Option<String>,
    /// Metadata base URL; default `http://100.100.100.200`.
    pub metadata_endpoint: Option<String>,
    /// Whether to fall back to header-less (IMDSv1) calls when the hardened-mode token cannot be
    /// had; default `true` unless `ALIBABA_CLOUD_IMDSV1_DISABLED=true`.
    pub imdsv1_fallback: Option<bool>,
}

/// `type = "uri"`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UriConfig {
    /// The endpoint (GET); default `ALIBABA_CLOUD_CREDENTIALS_URI`.
    pub uri: Option<String>,
}

/// `type = "default"`: the chain is driven by the environment, as the SDK's is; these only
/// override where the network steps go.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DefaultChainConfig {
    /// STS base URL for the RRSA step (defaults as in [`RrsaConfig::sts_endpoint`]).
    pub sts_endpoint: Option<String>,
    /// Metadata base URL for the ECS step (default `http://100.100.100.200`).
    pub metadata_endpoint: Option<String>,
}

/// Parses `"1h"`, `"90m"`, `"1h30m"`, `"900s"` (the config-wide duration syntax).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse_duration(text)
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

// ---------------------------------------------------------------------------------------------
// Validation: config + environment → what to do

/// A validated plan: a fixed credential, a fetcher to run (and keep refreshing), or the chain.
pub(crate) enum Plan {
    Fixed(Credential),
    Rrsa(RrsaPlan),
    Ecs(EcsPlan),
    Uri(UriPlan),
    Chain(DefaultChainConfig),
}

/// A checked RRSA setup.
#[derive(Clone, Debug)]
pub(crate) struct RrsaPlan {
    pub role_arn: String,
    pub oidc_provider_arn: String,
    pub oidc_token_file: PathBuf,
    pub role_session_name: String,
    pub duration: Duration,
    pub policy: Option<String>,
    pub sts_endpoint: String,
}

/// A checked ECS RAM role setup.
#[derive(Clone, Debug)]
pub(crate) struct EcsPlan {
    pub role_name: Option<String>,
    pub metadata_endpoint: String,
    pub imdsv1_fallback: bool,
}

/// A checked credentials-URI setup.
#[derive(Clone, Debug)]
pub(crate) struct UriPlan {
    pub uri: String,
}

impl CredentialsConfig {
    /// Checks what can be checked without the network: the config against the environment,
    /// and that static secrets (env vars, files) can be read. Used by `sasrelay check`.
    pub fn check_offline(&self, env: &dyn Env) -> Result<(), CredentialError> {
        self.plan(env, OffsetDateTime::now_utc()).map(|_| ())
    }

    /// Makes relative file paths (secret files, the OIDC token file) relative to `base`, the
    /// directory of the config file they were written in.
    pub fn anchor_paths(&mut self, base: &std::path::Path) {
        match self {
            CredentialsConfig::AccessKey(c) => {
                if let AccessKeyId::From(r) = &mut c.access_key_id {
                    r.anchor(base);
                }
                c.access_key_secret.anchor(base);
                if let Some(t) = &mut c.security_token {
                    t.anchor(base);
                }
            }
            CredentialsConfig::Rrsa(c) => {
                if let Some(f) = &mut c.oidc_token_file
                    && f.is_relative()
                {
                    *f = base.join(&*f);
                }
            }
            CredentialsConfig::Env(_)
            | CredentialsConfig::EcsRamRole(_)
            | CredentialsConfig::Uri(_)
            | CredentialsConfig::Default(_) => {}
        }
    }

    /// Problems in the credentials config itself, whatever the environment holds: a value out
    /// of range, a malformed URL, an empty inline key id. `check` and `run` refuse these (exit
    /// 78); what depends on the environment (an unset variable, a file not yet mounted) is
    /// only a warning, since the source retries until it loads.
    pub fn check_static(&self) -> Result<(), CredentialError> {
        let mut p: Vec<String> = Vec::new();
        let mut url = |key: &str, value: &Option<String>, normalise: fn(&str) -> String| {
            if let Some(v) = value.as_deref().filter(|v| !v.trim().is_empty())
                && let Err(e) = check_url(&normalise(v))
            {
                p.push(format!("{key}: {e}"));
            }
        };
        let kind = match self {
            CredentialsConfig::AccessKey(c) => {
                if matches!(&c.access_key_id, AccessKeyId::Inline(id) if id.trim().is_empty()) {
                    p.push("access_key_id is empty".into());
                }
                "access_key"
            }
            CredentialsConfig::Env(_) => "env",
            CredentialsConfig::Rrsa(c) => {
                url("sts_endpoint", &c.sts_endpoint, normalise_endpoint);
                p.extend(
                    c.role_session_name
                        .as_deref()
                        .and_then(session_name_problem),
                );
                p.extend(c.duration.and_then(duration_problem));
                "rrsa"
            }
            CredentialsConfig::EcsRamRole(c) => {
                url(
                    "metadata_endpoint",
                    &c.metadata_endpoint,
                    normalise_http_endpoint,
                );
                p.extend(c.role_name.as_deref().and_then(role_name_problem));
                "ecs_ram_role"
            }
            CredentialsConfig::Uri(c) => {
                url("uri", &c.uri, |u| u.trim().to_string());
                "uri"
            }
            CredentialsConfig::Default(c) => {
                url("sts_endpoint", &c.sts_endpoint, |u| u.to_string());
                url("metadata_endpoint", &c.metadata_endpoint, |u| u.to_string());
                "default"
            }
        };
        if p.is_empty() {
            Ok(())
        } else {
            Err(CredentialError::Config(format!("{kind}: {}", p.join("; "))))
        }
    }

    /// Checks the config against the environment, reading static secrets now.
    pub(crate) fn plan(&self, env: &dyn Env, now: OffsetDateTime) -> Result<Plan, CredentialError> {
        match self {
            CredentialsConfig::AccessKey(c) => c.credential(env).map(Plan::Fixed),
            CredentialsConfig::Env(_) => match env_credential(env) {
                EnvOutcome::Found(c) => Ok(Plan::Fixed(c)),
                EnvOutcome::Unset(why) | EnvOutcome::Partial(why) => {
                    Err(CredentialError::Config(format!("env: {why}")))
                }
            },
            CredentialsConfig::Rrsa(c) => c
                .plan(env, None, now)
                .map(Plan::Rrsa)
                .map_err(|e| CredentialError::Config(format!("rrsa: {e}"))),
            CredentialsConfig::EcsRamRole(c) => c
                .plan(env)
                .map(Plan::Ecs)
                .map_err(|e| CredentialError::Config(format!("ecs_ram_role: {e}"))),
            CredentialsConfig::Uri(c) => c
                .plan(env)
                .map(Plan::Uri)
                .map_err(|e| CredentialError::Config(format!("uri: {e}"))),
            CredentialsConfig::Default(c) => {
                for (name, ep) in [
                    ("sts_endpoint", &c.sts_endpoint),
                    ("metadata_endpoint", &c.metadata_endpoint),
                ] {
                    if let Some(ep) = ep {
                        check_url(ep).map_err(|e| {
                            CredentialError::Config(format!("default: {name}: {e}"))
                        })?;
                    }
                }
                Ok(Plan::Chain(c.clone()))
            }
        }
    }
}

impl AccessKeyConfig {
    fn credential(&self, env: &dyn Env) -> Result<Credential, CredentialError> {
        let lookup = |k: &str| env.var(k);
        let mut problems = Vec::new();
        let id = match &self.access_key_id {
            AccessKeyId::Inline(id) if id.trim().is_empty() => {
                problems.push("access_key_id is empty".to_string());
                None
            }
            AccessKeyId::Inline(id) => Some(id.trim().to_string()),
            AccessKeyId::From(r) => match r.resolve_with(lookup) {
                Ok(s) => Some(s.expose().trim().to_string()),
                Err(e) => {
                    problems.push(format!("access_key_id: {e}"));
                    None
                }
            },
        };
        let secret = match self.access_key_secret.resolve_with(lookup) {
            Ok(s) => Some(s),
            Err(e) => {
                problems.push(format!("access_key_secret: {e}"));
                None
            }
        };
        let token = match &self.security_token {
            None => None,
            Some(r) => match r.resolve_with(lookup) {
                Ok(s) => Some(s),
                Err(e) => {
                    problems.push(format!("security_token: {e}"));
                    None
                }
            },
        };
        match (id, secret) {
            (Some(access_key_id), Some(access_key_secret)) if problems.is_empty() => {
                Ok(Credential {
                    access_key_id,
                    access_key_secret,
                    provider: if token.is_some() {
                        PROVIDER_STATIC_STS
                    } else {
                        PROVIDER_STATIC_AK
                    },
                    security_token: token,
                    expiration: None,
                })
            }
            _ => Err(CredentialError::Config(format!(
                "access_key: {}",
                problems.join("; ")
            ))),
        }
    }
}

/// What the `env` provider (and the chain's first step) found.
pub(crate) enum EnvOutcome {
    Found(Credential),
    /// Neither variable is set: the chain moves on quietly.
    Unset(String),
    /// One is set without the other: a misconfiguration worth reporting.
    Partial(String),
}

pub(crate) fn env_credential(env: &dyn Env) -> EnvOutcome {
    let id = env.non_empty(env::ACCESS_KEY_ID);
    let secret = env.non_empty(env::ACCESS_KEY_SECRET);
    match (id, secret) {
        (Some(id), Some(secret)) => EnvOutcome::Found(Credential {
            access_key_id: id,
            access_key_secret: Secret::new(secret),
            security_token: env.non_empty(env::SECURITY_TOKEN).map(Secret::new),
            expiration: None,
            provider: PROVIDER_ENV,
        }),
        (None, None) => EnvOutcome::Unset(format!(
            "{} and {} are not set",
            env::ACCESS_KEY_ID,
            env::ACCESS_KEY_SECRET
        )),
        (Some(_), None) => EnvOutcome::Partial(format!(
            "{} is set but {} is not",
            env::ACCESS_KEY_ID,
            env::ACCESS_KEY_SECRET
        )),
        (None, Some(_)) => EnvOutcome::Partial(format!(
            "{} is set but {} is not",
            env::ACCESS_KEY_SECRET,
            env::ACCESS_KEY_ID
        )),
    }
}

impl RrsaConfig {
    /// Fills defaults from the environment and checks every field, reporting all problems at once.
    pub(crate) fn plan(
        &self,
        env: &dyn Env,
        sts_endpoint_override: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<RrsaPlan, String> {
        let mut problems = Vec::new();
        let mut required = |value: &Option<String>, key: &str, var: &str| -> String {
            match value
                .clone()
                .filter(|v| !v.trim().is_empty())
                .or_else(|| env.non_empty(var))
            {
                Some(v) => v.trim().to_string(),
                None => {
                    problems.push(format!("{key} is not set and {var} is empty"));
                    String::new()
                }
            }
        };
        let role_arn = required(&self.role_arn, "role_arn", env::ROLE_ARN);
        let oidc_provider_arn = required(
            &self.oidc_provider_arn,
            "oidc_provider_arn",
            env::OIDC_PROVIDER_ARN,
        );
        let token_file = required(
            &self
                .oidc_token_file
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
            "oidc_token_file",
            env::OIDC_TOKEN_FILE,
        );
        let role_session_name = self
            .role_session_name
            .clone()
            .or_else(|| env.non_empty(env::ROLE_SESSION_NAME))
            .unwrap_or_else(|| format!("sasrelay-{}", now.unix_timestamp()));
        problems.extend(session_name_problem(&role_session_name));
        let duration = self.duration.unwrap_or(DEFAULT_RRSA_DURATION);
        problems.extend(duration_problem(duration));
        let sts_endpoint = self
            .sts_endpoint
            .as_deref()
            .or(sts_endpoint_override)
            .map(normalise_endpoint)
            .unwrap_or_else(|| default_sts_endpoint(env));
        if let Err(e) = check_url(&sts_endpoint) {
            problems.push(format!("sts_endpoint: {e}"));
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        Ok(RrsaPlan {
            role_arn,
            oidc_provider_arn,
            oidc_token_file: PathBuf::from(token_file),
            role_session_name,
            duration,
            policy: self.policy.clone(),
            sts_endpoint,
        })
    }
}

/// What is wrong with an RRSA `role_session_name`, if anything.
fn session_name_problem(name: &str) -> Option<String> {
    let valid = (2..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".@_-".contains(c));
    (!valid).then(|| format!("role_session_name {name:?} must be 2-64 characters of A-Za-z0-9.@_-"))
}

/// What is wrong with an RRSA `duration`, if anything.
fn duration_problem(duration: Duration) -> Option<String> {
    (!(MIN_RRSA_DURATION..=MAX_RRSA_DURATION).contains(&duration)).then(|| {
        format!(
            "duration {}s is outside STS's range of 900s (15m) to 43200s (12h)",
            duration.as_secs()
        )
    })
}

/// What is wrong with an ECS `role_name`, if anything.
fn role_name_problem(role: &str) -> Option<String> {
    role.contains(['/', '?', '#'])
        .then(|| format!("role_name {role:?} must not contain '/', '?' or '#'"))
}

/// The SDK's STS endpoint choice.
pub(crate) fn default_sts_endpoint(env: &dyn Env) -> String {
    match env.non_empty(env::STS_REGION) {
        Some(region) => {
            let prefix = if env.is_true(env::VPC_ENDPOINT_ENABLED) {
                "sts-vpc"
            } else {
                "sts"
            };
            format!("https://{prefix}.{}.aliyuncs.com", region.trim())
        }
        None => DEFAULT_STS_ENDPOINT.to_string(),
    }
}

impl EcsRamRoleConfig {
    pub(crate) fn plan(&self, env: &dyn Env) -> Result<EcsPlan, String> {
        let metadata_endpoint = self
            .metadata_endpoint
            .as_deref()
            .map(normalise_http_endpoint)
            .unwrap_or_else(|| DEFAULT_METADATA_ENDPOINT.to_string());
        check_url(&metadata_endpoint).map_err(|e| format!("metadata_endpoint: {e}"))?;
        let role_name = self
            .role_name
            .clone()
            .filter(|r| !r.trim().is_empty())
            .or_else(|| env.non_empty(env::ECS_METADATA))
            .map(|r| r.trim().to_string());
        if let Some(problem) = role_name.as_deref().and_then(role_name_problem) {
            return Err(problem);
        }
        Ok(EcsPlan {
            role_name,
            metadata_endpoint,
            imdsv1_fallback: self
                .imdsv1_fallback
                .unwrap_or_else(|| !env.is_true(env::IMDSV1_DISABLED)),
        })
    }
}

impl UriConfig {
    pub(crate) fn plan(&self, env: &dyn Env) -> Result<UriPlan, String> {
        let uri = self
            .uri
            .clone()
            .filter(|u| !u.trim().is_empty())
            .or_else(|| env.non_empty(env::CREDENTIALS_URI))
            .ok_or_else(|| format!("uri is not set and {} is empty", env::CREDENTIALS_URI))?;
        let uri = uri.trim().to_string();
        check_url(&uri)?;
        Ok(UriPlan { uri })
    }
}

/// A bare host means HTTPS (STS); a trailing `/` is dropped.
fn normalise_endpoint(ep: &str) -> String {
    let ep = ep.trim().trim_end_matches('/');
    if ep.contains("://") {
        ep.to_string()
    } else {
        format!("https://{ep}")
    }
}

/// A bare host means HTTP (the metadata service has no TLS); a trailing `/` is dropped.
fn normalise_http_endpoint(ep: &str) -> String {
    let ep = ep.trim().trim_end_matches('/');
    if ep.contains("://") {
        ep.to_string()
    } else {
        format!("http://{ep}")
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| format!("{:?} is not a URL: {e}", super::http::redact_url(url)))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "{} must be an http:// or https:// URL with a host",
            super::http::redact_url(url)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_one_convention() {
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("900s"), Ok(Duration::from_secs(900)));
        for bad in ["", "10", "h", "1.5h", "-1h", "1h 30m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn sts_endpoint_follows_the_sdk() {
        let none = env::MapEnv::new();
        assert_eq!(default_sts_endpoint(&none), "https://sts.aliyuncs.com");
        let region = env::MapEnv::new().set(env::STS_REGION, "cn-shanghai");
        assert_eq!(
            default_sts_endpoint(&region),
            "https://sts.cn-shanghai.aliyuncs.com"
        );
        let vpc = region.set(env::VPC_ENDPOINT_ENABLED, "TRUE");
        assert_eq!(
            default_sts_endpoint(&vpc),
            "https://sts-vpc.cn-shanghai.aliyuncs.com"
        );
        let vpc_no_region = env::MapEnv::new().set(env::VPC_ENDPOINT_ENABLED, "true");
        assert_eq!(
            default_sts_endpoint(&vpc_no_region),
            "https://sts.aliyuncs.com"
        );
        assert_eq!(
            normalise_endpoint("sts.example.com/"),
            "https://sts.example.com"
        );
    }
}
