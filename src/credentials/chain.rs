//! The official SDK's default chain: the first provider that yields a credential wins and is
//! the one refreshed from then on.
//!
//! Order (alibabacloud-credentials `DefaultCredentialsProvider`): environment AccessKey → RRSA
//! when `ALIBABA_CLOUD_OIDC_TOKEN_FILE`, `ALIBABA_CLOUD_ROLE_ARN` and
//! `ALIBABA_CLOUD_OIDC_PROVIDER_ARN` are all set → ECS RAM role unless
//! `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true` → credentials URI when
//! `ALIBABA_CLOUD_CREDENTIALS_URI` is set. The SDK's CLI-profile and INI-file steps are not
//! implemented: a daemon is configured through its own file, not a workstation's profiles.
//! When nothing yields, the error lists every step and why it did not.

use super::config::{
    DefaultChainConfig, EcsRamRoleConfig, EnvOutcome, RrsaConfig, UriConfig, env_credential,
};
use super::ecs::EcsRamRole;
use super::env::{self, Env};
use super::refresh::Fetcher;
use super::rrsa::Rrsa;
use super::uri::CredentialsUri;
use super::{CredentialContext, CredentialError, CredentialHandle};

/// Walks the chain.
pub(crate) async fn resolve(
    cfg: &DefaultChainConfig,
    env: &dyn Env,
    ctx: &CredentialContext,
) -> Result<CredentialHandle, CredentialError> {
    let mut tried: Vec<String> = Vec::new();

    match env_credential(env) {
        EnvOutcome::Found(c) => return Ok(chosen(CredentialHandle::fixed(c))),
        EnvOutcome::Unset(why) | EnvOutcome::Partial(why) => tried.push(format!("env: {why}")),
    }

    let missing: Vec<&str> = [env::OIDC_TOKEN_FILE, env::ROLE_ARN, env::OIDC_PROVIDER_ARN]
        .into_iter()
        .filter(|v| env.non_empty(v).is_none())
        .collect();
    if missing.is_empty() {
        let plan = RrsaConfig::default().plan(env, cfg.sts_endpoint.as_deref(), ctx.clock.now());
        match plan {
            Ok(p) => match attempt(Fetcher::Rrsa(Rrsa::new(p)), ctx).await {
                Ok(h) => return Ok(chosen(h)),
                Err(e) => tried.push(e),
            },
            Err(e) => tried.push(format!("rrsa: {e}")),
        }
    } else {
        tried.push(format!("rrsa: skipped, {} not set", missing.join(", ")));
    }

    if env.is_true(env::ECS_METADATA_DISABLED) {
        tried.push(format!(
            "ecs_ram_role: skipped, {}=true",
            env::ECS_METADATA_DISABLED
        ));
    } else {
        let cfg = EcsRamRoleConfig {
            metadata_endpoint: cfg.metadata_endpoint.clone(),
            ..Default::default()
        };
        match cfg.plan(env).and_then(EcsRamRole::new) {
            Ok(f) => match attempt(Fetcher::Ecs(f), ctx).await {
                Ok(h) => return Ok(chosen(h)),
                Err(e) => tried.push(e),
            },
            Err(e) => tried.push(format!("ecs_ram_role: {e}")),
        }
    }

    if env.non_empty(env::CREDENTIALS_URI).is_some() {
        match UriConfig::default().plan(env) {
            Ok(p) => match attempt(Fetcher::Uri(CredentialsUri::new(p)), ctx).await {
                Ok(h) => return Ok(chosen(h)),
                Err(e) => tried.push(e),
            },
            Err(e) => tried.push(format!("uri: {e}")),
        }
    } else {
        tried.push(format!("uri: skipped, {} not set", env::CREDENTIALS_URI));
    }

    Err(CredentialError::Unavailable(format!(
        "default chain: no provider yielded a credential: {}",
        tried.join("; ")
    )))
}

async fn attempt(fetcher: Fetcher, ctx: &CredentialContext) -> Result<CredentialHandle, String> {
    let name = fetcher.name();
    CredentialHandle::start(fetcher, ctx)
        .await
        .map_err(|e| {
            tracing::info!(provider = name, error = %e, "Default credential chain: provider did not yield; trying the next.");
            e.to_string()
        })
}

fn chosen(handle: CredentialHandle) -> CredentialHandle {
    tracing::info!(
        provider = handle.provider_name().unwrap_or("unknown"),
        "Default credential chain: provider chosen."
    );
    handle
}
