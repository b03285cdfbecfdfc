//! The Security Center transport: endpoint, signing, one HTTP call, decoding, error mapping.
//!
//! `SasClient::call` makes exactly one attempt; retry policy belongs to the caller.

use serde::de::DeserializeOwned;

use super::error::SasError;
use super::params::Params;

/// A configured client for one source (account + site).
#[derive(Clone, Debug)]
pub struct SasClient {
    max_pages: u32,
}

impl SasClient {
    /// Calls `action` once. `form` is `Some` for actions whose body carries parameters
    /// (`DescribeSuspEvents`). Returns the decoded success body.
    pub async fn call<T: DeserializeOwned>(
        &self,
        action: &str,
        query: &Params,
        form: Option<&Params>,
    ) -> Result<T, SasError> {
        let _ = (action, query, form);
        unimplemented!("filled in by the transport work")
    }

    /// The hard cap on pages per listing.
    pub fn max_pages(&self) -> u32 {
        self.max_pages
    }

    /// `Lang` to request display names in (`en` or `zh`).
    pub fn lang(&self) -> &str {
        "en"
    }
}
