//! Credentials: what a signature needs, where it comes from, and keeping it fresh.
//!
//! A [`CredentialHandle`] is what the Security Center client holds. It always answers with the
//! current credential; providers that hand out expiring keys (STS via RRSA, the ECS RAM role, a
//! credentials URI) are refreshed in the background ahead of expiry.
//!
//! Layout:
//! - [`config`]: the `credentials = { type = "..." }` config ([`CredentialsConfig`]) and its
//!   validation against the environment.
//! - [`env`](mod@env): the injectable environment ([`Env`]); nothing here reads `std::env` directly.
//! - [`crate::clock`]: the injectable wall clock expiry is judged by ([`Clock`]).
//! - `rrsa`, `ecs`, `uri`: one fetch of an expiring credential each; `http`: what they share.
//! - `refresh`: the background refresher and its [`RefreshPolicy`] / [`RefreshStatus`].
//! - `chain`: the SDK's default chain.
//!
//! Invariants: a secret (AccessKey secret, STS token, OIDC token, a credentials URI's query)
//! never appears in a log line, an error or `Debug` output; every network call has a timeout and
//! a capped body; a handle spawns at most one task, on the caller's tracker, stopped by the
//! caller's token.

use crate::clock::{Clock, SystemClock};
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::secret::Secret;

mod chain;
pub mod config;
mod ecs;
pub mod env;
mod http;
mod refresh;
mod rrsa;
mod uri;

pub use config::{
    AccessKeyConfig, AccessKeyId, CredentialsConfig, DefaultChainConfig, EcsRamRoleConfig,
    EnvConfig, RrsaConfig, UriConfig,
};
pub use env::{Env, MapEnv, ProcessEnv};
pub use refresh::{RefreshPolicy, RefreshStatus};

/// `provider` of an inline/secret-file AccessKey pair.
pub const PROVIDER_STATIC_AK: &str = "static_ak";
/// `provider` of a configured static STS key.
pub const PROVIDER_STATIC_STS: &str = "static_sts";
/// `provider` of keys read from `ALIBABA_CLOUD_*` environment variables.
pub const PROVIDER_ENV: &str = "env";
/// `provider` of RRSA (AssumeRoleWithOIDC) keys.
pub const PROVIDER_RRSA: &str = "rrsa";
/// `provider` of ECS instance RAM role keys.
pub const PROVIDER_ECS_RAM_ROLE: &str = "ecs_ram_role";
/// `provider` of credentials-URI keys.
pub const PROVIDER_URI: &str = "uri";

/// The key material a signature needs: borrowed from a [`Credential`] for one request, so the
/// secret is never copied out of its redacting type for longer than the signing.
#[derive(Clone, Copy, Debug)]
pub struct SigningKey<'a> {
    /// AccessKey ID.
    pub access_key_id: &'a str,
    /// AccessKey secret.
    pub access_key_secret: &'a str,
    /// STS security token, when the key is temporary.
    pub security_token: Option<&'a str>,
}

/// One usable key: an AccessKey pair, optionally with an STS token and its expiry.
#[derive(Clone, Debug)]
pub struct Credential {
    /// AccessKey ID (not secret; safe to log).
    pub access_key_id: String,
    /// AccessKey secret.
    pub access_key_secret: Secret,
    /// STS security token for temporary keys.
    pub security_token: Option<Secret>,
    /// When temporary keys stop working.
    pub expiration: Option<OffsetDateTime>,
    /// Which provider produced it (`static_ak`, `static_sts`, `env`, `rrsa`, `ecs_ram_role`, `uri`);
    /// sent as `x-acs-credentials-provider`.
    pub provider: &'static str,
}

impl Credential {
    /// Borrows the key material for signing.
    pub fn signing_key(&self) -> SigningKey<'_> {
        SigningKey {
            access_key_id: &self.access_key_id,
            access_key_secret: self.access_key_secret.expose(),
            security_token: self.security_token.as_ref().map(Secret::expose),
        }
    }
}

/// Why no credential is available. Messages name the provider and never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The provider could not produce a credential; the message says which provider and why.
    #[error("{0}")]
    Unavailable(String),
    /// The configuration (or the environment it defers to) is incomplete or invalid; the
    /// message lists every problem found.
    #[error("invalid credentials config: {0}")]
    Config(String),
}

/// Something that can produce the current credential.
pub trait ProvideCredential: Send + Sync + 'static {
    /// The current credential, or why there is none.
    fn current(&self) -> Result<Credential, CredentialError>;
}

/// A cheap, clonable handle on a credential provider.
#[derive(Clone)]
pub struct CredentialHandle {
    provider: Arc<dyn ProvideCredential>,
    /// The provider's name, when known (`None` for [`CredentialHandle::from_provider`]).
    name: Option<&'static str>,
    /// Published by the refresh task after every attempt; closed when the task ends.
    status: Option<watch::Receiver<RefreshStatus>>,
}

impl std::fmt::Debug for CredentialHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialHandle")
            .field("provider", &self.name.unwrap_or("custom"))
            .field("refreshing", &self.status.is_some())
            .finish()
    }
}

struct Fixed(Credential);

impl ProvideCredential for Fixed {
    fn current(&self) -> Result<Credential, CredentialError> {
        Ok(self.0.clone())
    }
}

/// What building a handle needs besides its config: the HTTP client for STS and credentials
/// URIs, the shutdown token and task tracker the refresher runs under, and — for tests — the
/// clock and refresh policy.
///
/// The ECS metadata service is called through a dedicated client (no proxy, 1 s connect
/// timeout), not through `http`.
#[derive(Clone)]
pub struct CredentialContext {
    http: reqwest::Client,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    clock: Arc<dyn Clock>,
    policy: RefreshPolicy,
}

impl CredentialContext {
    /// A context with the system clock and the default [`RefreshPolicy`]. Refresh tasks are
    /// spawned on `tracker` and stop when `shutdown` is cancelled.
    pub fn new(http: reqwest::Client, shutdown: CancellationToken, tracker: TaskTracker) -> Self {
        CredentialContext {
            http,
            shutdown,
            tracker,
            clock: Arc::new(SystemClock),
            policy: RefreshPolicy::default(),
        }
    }

    /// Judges expiry and schedules refreshes by `clock` (tests use a [`ManualClock`](crate::clock::ManualClock)).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Refreshes by `policy`.
    pub fn with_refresh_policy(mut self, policy: RefreshPolicy) -> Self {
        self.policy = policy;
        self
    }
}

impl std::fmt::Debug for CredentialContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialContext")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl CredentialHandle {
    /// A handle that always returns the same credential.
    pub fn fixed(credential: Credential) -> Self {
        let name = credential.provider;
        CredentialHandle {
            provider: Arc::new(Fixed(credential)),
            name: Some(name),
            status: None,
        }
    }

    /// Wraps any provider.
    pub fn from_provider(provider: impl ProvideCredential) -> Self {
        CredentialHandle {
            provider: Arc::new(provider),
            name: None,
            status: None,
        }
    }

    /// The credential to sign the next request with.
    pub fn current(&self) -> Result<Credential, CredentialError> {
        self.provider.current()
    }

    /// Builds the handle a source's `credentials` config describes.
    ///
    /// `env` is consulted only here (defaults, the `env` provider, the default chain); static
    /// secrets are read now. For expiring providers the first credential is fetched before this
    /// returns — failing fast with the provider, the endpoint and the reason — and one refresh
    /// task is spawned on the context's tracker. Errors: [`CredentialError::Config`] when the
    /// config or environment is incomplete, [`CredentialError::Unavailable`] when a fetch
    /// failed.
    pub async fn from_config(
        cfg: &CredentialsConfig,
        env: &dyn Env,
        ctx: &CredentialContext,
    ) -> Result<CredentialHandle, CredentialError> {
        let fetcher = match cfg.plan(env, ctx.clock.now())? {
            config::Plan::Fixed(c) => {
                tracing::info!(
                    provider = c.provider,
                    access_key_id = %c.access_key_id,
                    "Using a static credential."
                );
                return Ok(CredentialHandle::fixed(c));
            }
            config::Plan::Rrsa(p) => refresh::Fetcher::Rrsa(rrsa::Rrsa::new(p)),
            config::Plan::Ecs(p) => refresh::Fetcher::Ecs(
                ecs::EcsRamRole::new(p).map_err(CredentialError::Unavailable)?,
            ),
            config::Plan::Uri(p) => refresh::Fetcher::Uri(uri::CredentialsUri::new(p)),
            config::Plan::Chain(c) => return chain::resolve(&c, env, ctx).await,
        };
        CredentialHandle::start(fetcher, ctx).await
    }

    /// Fetches the first credential and starts refreshing.
    async fn start(
        fetcher: refresh::Fetcher,
        ctx: &CredentialContext,
    ) -> Result<CredentialHandle, CredentialError> {
        let first = fetcher
            .fetch(&ctx.http, &*ctx.clock)
            .await
            .map_err(CredentialError::Unavailable)?;
        tracing::info!(
            provider = fetcher.name(),
            endpoint = %fetcher.endpoint(),
            access_key_id = %first.access_key_id,
            expires_at = %first.expiration.map(http::format_timestamp).unwrap_or_default(),
            "Credential obtained; refreshing it in the background."
        );
        Ok(refresh::start(fetcher, first, ctx))
    }

    /// The provider's name (`rrsa`, `static_ak`, ...), when known.
    pub fn provider_name(&self) -> Option<&'static str> {
        self.name
    }

    /// The refresher's progress, for handles that refresh: `generation` counts credentials
    /// obtained (1 on return from [`CredentialHandle::from_config`]), so waiting on
    /// `rx.wait_for(|s| s.generation >= 2)` waits for the first refresh without sleeping.
    pub fn refresh_status(&self) -> Option<watch::Receiver<RefreshStatus>> {
        self.status.clone()
    }
}
