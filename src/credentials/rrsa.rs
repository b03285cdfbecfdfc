//! RRSA: exchanging the pod's projected OIDC token for STS keys with an anonymous
//! `AssumeRoleWithOIDC` call.
//!
//! The token file is re-read on every call because the kubelet rotates the projected token. The
//! request is a POST: the public common parameters (`Action`, `Version`, `Format`, `Timestamp`) in
//! the query, the rest — the OIDC token above all — in the form body, so the token never lands
//! in a URL (and so in an access log). RPC endpoints merge query and body, so STS reads both.

use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;

use super::config::RrsaPlan;
use super::http::{
    CredentialsBody, MAX_BODY_BYTES, describe_failure, describe_json_error, describe_transport,
    format_timestamp, read_capped, redact_url,
};
use super::{Credential, PROVIDER_RRSA};

/// Per-call limit for STS.
pub(crate) const STS_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest token file read (projected tokens are about 1 KiB).
const MAX_TOKEN_BYTES: u64 = 64 * 1024;

#[derive(Deserialize)]
struct AssumeRoleResponse {
    #[serde(rename = "RequestId")]
    request_id: Option<String>,
    #[serde(rename = "Credentials")]
    credentials: Option<CredentialsBody>,
}

/// Fetches STS keys for one RRSA setup.
#[derive(Debug)]
pub(crate) struct Rrsa {
    plan: RrsaPlan,
}

impl Rrsa {
    pub(crate) fn new(plan: RrsaPlan) -> Self {
        Rrsa { plan }
    }

    /// The endpoint, safe to log.
    pub(crate) fn endpoint(&self) -> String {
        redact_url(&self.plan.sts_endpoint)
    }

    /// Reads the token file and calls STS once.
    pub(crate) async fn fetch(
        &self,
        http: &reqwest::Client,
        now: OffsetDateTime,
    ) -> Result<Credential, String> {
        let token = self.read_token().await?;
        let fail = |reason: String| {
            format!(
                "rrsa: AssumeRoleWithOIDC at {} failed: {reason}",
                self.endpoint()
            )
        };
        let duration = self.plan.duration.as_secs().to_string();
        let mut form: Vec<(&str, &str)> = vec![
            ("RoleArn", &self.plan.role_arn),
            ("OIDCProviderArn", &self.plan.oidc_provider_arn),
            ("OIDCToken", &token),
            ("RoleSessionName", &self.plan.role_session_name),
            ("DurationSeconds", &duration),
        ];
        if let Some(p) = &self.plan.policy {
            form.push(("Policy", p));
        }
        let timestamp = format_timestamp(now);
        let query = [
            ("Action", "AssumeRoleWithOIDC"),
            ("Version", "2015-04-01"),
            ("Format", "JSON"),
            ("Timestamp", &timestamp),
        ];
        let resp = http
            .post(format!("{}/", self.plan.sts_endpoint))
            .query(&query)
            .form(&form)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(STS_TIMEOUT)
            .send()
            .await
            .map_err(|e| fail(describe_transport(e, STS_TIMEOUT)))?;
        let status = resp.status();
        let body = read_capped(resp, MAX_BODY_BYTES, STS_TIMEOUT)
            .await
            .map_err(&fail)?;
        if !status.is_success() {
            return Err(fail(describe_failure(status, &body, &[&token])));
        }
        let parsed: AssumeRoleResponse =
            serde_json::from_slice(&body).map_err(|e| fail(describe_json_error(&e)))?;
        let request_id = parsed.request_id.unwrap_or_default();
        let Some(mut creds) = parsed.credentials else {
            return Err(fail(format!(
                "response has no Credentials (RequestId {request_id})"
            )));
        };
        creds.code = Some("Success".into());
        creds
            .into_credential(PROVIDER_RRSA)
            .map_err(|e| fail(format!("{e} (RequestId {request_id})")))
    }

    async fn read_token(&self) -> Result<String, String> {
        let path = &self.plan.oidc_token_file;
        let fail = |why: String| format!("rrsa: OIDC token file {}: {why}", path.display());
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| fail(e.to_string()))?;
        if meta.len() > MAX_TOKEN_BYTES {
            return Err(fail(format!("larger than {MAX_TOKEN_BYTES} bytes")));
        }
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(fail("empty".into()));
        }
        Ok(token.to_string())
    }
}
