//! Credentials: what a signature needs, where it comes from, and keeping it fresh.
//!
//! A [`CredentialHandle`] is what the Security Center client holds. It always answers with the
//! current credential; providers that hand out expiring keys (STS via RRSA, the ECS RAM role, a
//! credentials URI) are refreshed in the background ahead of expiry.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::sas::sign::SigningKey;
use crate::secret::Secret;

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

/// Why no credential is available.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The provider could not produce a credential; the message says which provider and why.
    #[error("{0}")]
    Unavailable(String),
}

/// Something that can produce the current credential.
pub trait ProvideCredential: Send + Sync + 'static {
    /// The current credential, or why there is none.
    fn current(&self) -> Result<Credential, CredentialError>;
}

/// A cheap, clonable handle on a credential provider.
#[derive(Clone)]
pub struct CredentialHandle(Arc<dyn ProvideCredential>);

impl std::fmt::Debug for CredentialHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialHandle")
    }
}

struct Fixed(Credential);

impl ProvideCredential for Fixed {
    fn current(&self) -> Result<Credential, CredentialError> {
        Ok(self.0.clone())
    }
}

impl CredentialHandle {
    /// A handle that always returns the same credential.
    pub fn fixed(credential: Credential) -> Self {
        CredentialHandle(Arc::new(Fixed(credential)))
    }

    /// Wraps any provider.
    pub fn from_provider(provider: impl ProvideCredential) -> Self {
        CredentialHandle(Arc::new(provider))
    }

    /// The credential to sign the next request with.
    pub fn current(&self) -> Result<Credential, CredentialError> {
        self.0.current()
    }
}
