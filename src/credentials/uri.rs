//! A credentials URI: a local endpoint (a sidecar, a vault agent) that answers a GET with the
//! SDK's credentials JSON (`Code` = `Success`, `AccessKeyId`, `AccessKeySecret`, `SecurityToken`,
//! `Expiration`). The URI may carry its own access token in the query, so only its scheme, host,
//! port and path ever appear in messages.

use std::time::Duration;

use super::config::UriPlan;
use super::http::{
    CredentialsBody, MAX_BODY_BYTES, describe_failure, describe_transport, read_capped, redact_url,
};
use super::{Credential, PROVIDER_URI};

/// Per-call limit.
pub(crate) const URI_TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches credentials from one URI.
#[derive(Debug)]
pub(crate) struct CredentialsUri {
    plan: UriPlan,
}

impl CredentialsUri {
    pub(crate) fn new(plan: UriPlan) -> Self {
        CredentialsUri { plan }
    }

    /// The endpoint, safe to log.
    pub(crate) fn endpoint(&self) -> String {
        redact_url(&self.plan.uri)
    }

    /// One GET.
    pub(crate) async fn fetch(&self, http: &reqwest::Client) -> Result<Credential, String> {
        let fail = |reason: String| format!("uri: GET {} failed: {reason}", self.endpoint());
        let resp = http
            .get(&self.plan.uri)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(URI_TIMEOUT)
            .send()
            .await
            .map_err(|e| fail(describe_transport(e, URI_TIMEOUT)))?;
        let status = resp.status();
        let body = read_capped(resp, MAX_BODY_BYTES, URI_TIMEOUT)
            .await
            .map_err(&fail)?;
        if !status.is_success() {
            return Err(fail(describe_failure(status, &body, &[])));
        }
        CredentialsBody::parse(&body, PROVIDER_URI).map_err(fail)
    }
}
