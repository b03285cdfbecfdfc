//! The ECS instance RAM role, from the instance-metadata service.
//!
//! Hardened mode first: `PUT /latest/api/token` with `X-aliyun-ecs-metadata-token-ttl-seconds`,
//! then every read carries `X-aliyun-ecs-metadata-token`. When the token cannot be had and the
//! fallback is allowed, the reads go header-less (IMDSv1), as the SDK does. Calls use a dedicated
//! client that never goes through a proxy and gives up connecting after 1 s: off ECS, the
//! link-local address simply does not answer, and the default chain must move on quickly.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::config::EcsPlan;
use super::http::{
    CredentialsBody, MAX_BODY_BYTES, describe_failure, describe_transport, read_capped, redact_url,
};
use super::{Credential, PROVIDER_ECS_RAM_ROLE};

/// Connect limit for every metadata call.
pub(crate) const METADATA_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Whole-call limit for every metadata call.
pub(crate) const METADATA_TIMEOUT: Duration = Duration::from_secs(3);
/// Lifetime requested for the hardened-mode token (the SDK's value).
const TOKEN_TTL_SECONDS: &str = "21600";
/// Largest token or role-list body read.
const MAX_TEXT_BYTES: usize = 4 * 1024;

/// Fetches the instance role's STS keys.
#[derive(Debug)]
pub(crate) struct EcsRamRole {
    plan: EcsPlan,
    client: reqwest::Client,
    /// The role found by discovery, reused by later refreshes.
    discovered: Mutex<Option<String>>,
    /// Whether the IMDSv1 fallback has been logged at WARN (once per handle).
    fallback_warned: AtomicBool,
}

impl EcsRamRole {
    pub(crate) fn new(plan: EcsPlan) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(METADATA_CONNECT_TIMEOUT)
            .timeout(METADATA_TIMEOUT)
            .build()
            .map_err(|e| format!("ecs_ram_role: cannot build the metadata HTTP client: {e}"))?;
        Ok(EcsRamRole {
            plan,
            client,
            discovered: Mutex::new(None),
            fallback_warned: AtomicBool::new(false),
        })
    }

    /// The endpoint, safe to log.
    pub(crate) fn endpoint(&self) -> String {
        redact_url(&self.plan.metadata_endpoint)
    }

    /// Token (or IMDSv1 fallback), role, credentials.
    pub(crate) async fn fetch(&self) -> Result<Credential, String> {
        let fail = |reason: String| {
            format!(
                "ecs_ram_role: metadata service at {} failed: {reason}",
                self.endpoint()
            )
        };
        let (token, token_failure) = match self.token().await {
            Ok(t) => (Some(t), None),
            Err(e) if self.plan.imdsv1_fallback => {
                if !self.fallback_warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        provider = PROVIDER_ECS_RAM_ROLE,
                        endpoint = %self.endpoint(),
                        error = %e,
                        "Metadata hardened-mode token unavailable; falling back to IMDSv1 requests."
                    );
                }
                (None, Some(e))
            }
            Err(e) => return Err(fail(format!("{e} (IMDSv1 fallback is disabled)"))),
        };
        let with_context = |e: String| match &token_failure {
            Some(t) => fail(format!("{e} (IMDSv1 was used because {t})")),
            None => fail(e),
        };
        let role = self.role(token.as_deref()).await.map_err(with_context)?;
        let path = format!("/latest/meta-data/ram/security-credentials/{role}");
        let (status, body) = self
            .get(&path, token.as_deref(), MAX_BODY_BYTES)
            .await
            .map_err(with_context)?;
        if !status.is_success() {
            return Err(with_context(format!(
                "GET {path}: {}",
                describe_failure(status, &body, &[])
            )));
        }
        CredentialsBody::parse(&body, PROVIDER_ECS_RAM_ROLE)
            .map_err(|e| with_context(format!("GET {path}: {e}")))
    }

    async fn token(&self) -> Result<String, String> {
        let url = format!("{}/latest/api/token", self.plan.metadata_endpoint);
        let what = "PUT /latest/api/token";
        let resp = self
            .client
            .put(url)
            .header("X-aliyun-ecs-metadata-token-ttl-seconds", TOKEN_TTL_SECONDS)
            .send()
            .await
            .map_err(|e| format!("{what}: {}", describe_transport(e, METADATA_TIMEOUT)))?;
        let status = resp.status();
        let body = read_capped(resp, MAX_TEXT_BYTES, METADATA_TIMEOUT)
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{what}: {}", describe_failure(status, &body, &[])));
        }
        let token = String::from_utf8_lossy(&body).trim().to_string();
        if token.is_empty() {
            return Err(format!("{what}: empty token"));
        }
        Ok(token)
    }

    async fn role(&self, token: Option<&str>) -> Result<String, String> {
        if let Some(r) = &self.plan.role_name {
            return Ok(r.clone());
        }
        if let Some(r) = self.cached_role() {
            return Ok(r);
        }
        let path = "/latest/meta-data/ram/security-credentials/";
        let (status, body) = self.get(path, token, MAX_TEXT_BYTES).await?;
        if !status.is_success() {
            return Err(format!(
                "GET {path} (role discovery): {}; is a RAM role attached to the instance?",
                describe_failure(status, &body, &[])
            ));
        }
        let text = String::from_utf8_lossy(&body);
        let role = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .ok_or_else(|| {
                format!("GET {path} (role discovery): no RAM role is attached to the instance")
            })?
            .to_string();
        if role.contains(['/', '?', '#']) {
            return Err(format!("GET {path} (role discovery): unusable role name"));
        }
        *self.discovered.lock().unwrap_or_else(|p| p.into_inner()) = Some(role.clone());
        Ok(role)
    }

    fn cached_role(&self) -> Option<String> {
        self.discovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn get(
        &self,
        path: &str,
        token: Option<&str>,
        cap: usize,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), String> {
        let mut req = self
            .client
            .get(format!("{}{path}", self.plan.metadata_endpoint));
        if let Some(t) = token {
            req = req.header("X-aliyun-ecs-metadata-token", t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("GET {path}: {}", describe_transport(e, METADATA_TIMEOUT)))?;
        let status = resp.status();
        let body = read_capped(resp, cap, METADATA_TIMEOUT)
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        Ok((status, body))
    }
}
