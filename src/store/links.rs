//! Spent action links (issue 17): the nonce of every action link that was used, so a link acts
//! once. The action page spends a link with a compare-and-swap insert *before* it acts: of
//! two browsers posting one link at once, one wins and the other is told it was used.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `spent_links` | the link's nonce | [`SpentLink`] JSON |
//!
//! Bounded: a spent link is kept until its own expiry has passed (a replay after that is
//! refused as expired anyway); the daemon's pruner deletes the rest.

use serde::{Deserialize, Serialize};

use super::{At, Store, StoreError};

/// A used link: when it expires, when it was used and by whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpentLink {
    /// The link's expiry (Unix seconds): kept until then.
    pub exp_s: i64,
    /// When it was used (unix ms).
    pub at_ms: i64,
    /// Who used it.
    pub who: String,
}

impl Store {
    /// Spends the link `nonce`, durably: `Ok(None)` when this call spent it, `Ok(Some(first))`
    /// when it was spent before.
    pub async fn spend_link(
        &self,
        nonce: &str,
        spent: &SpentLink,
    ) -> Result<Option<SpentLink>, StoreError> {
        {
            let inner = self.current()?;
            let value = inner.encode(spent, || format!("spent link {nonce}"))?;
            let swapped = inner
                .spent_links
                .compare_and_swap(nonce.as_bytes(), None as Option<&[u8]>, Some(value))
                .at(&inner.dir)?;
            if let Err(e) = swapped {
                let first = match e.current {
                    Some(v) => inner.decode(&v, || format!("spent link {nonce}"))?,
                    None => spent.clone(),
                };
                return Ok(Some(first));
            }
        }
        self.flush().await?;
        Ok(None)
    }

    /// How the link `nonce` was spent, if it was.
    pub fn spent_link(&self, nonce: &str) -> Result<Option<SpentLink>, StoreError> {
        let inner = self.current()?;
        match inner.spent_links.get(nonce.as_bytes()).at(&inner.dir)? {
            Some(v) => Ok(Some(inner.decode(&v, || format!("spent link {nonce}"))?)),
            None => Ok(None),
        }
    }

    /// Deletes spent links that expired before `now_s`; how many.
    pub fn prune_spent_links(&self, now_s: i64) -> Result<usize, StoreError> {
        let inner = self.current()?;
        let mut removed = 0;
        for item in inner.spent_links.iter() {
            let (k, v) = item.at(&inner.dir)?;
            let expired = match serde_json::from_slice::<SpentLink>(&v) {
                Ok(s) => s.exp_s < now_s,
                // Unreadable: nothing can use it; delete it.
                Err(_) => true,
            };
            if expired {
                inner.spent_links.remove(k).at(&inner.dir)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_link_is_spent_once_and_kept_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let alice = SpentLink {
            exp_s: 100,
            at_ms: 1,
            who: "alice".into(),
        };
        let bob = SpentLink {
            exp_s: 100,
            at_ms: 2,
            who: "bob".into(),
        };
        assert_eq!(store.spent_link("n1").unwrap(), None);
        assert_eq!(store.spend_link("n1", &alice).await.unwrap(), None);
        assert_eq!(store.spent_link("n1").unwrap(), Some(alice.clone()));
        assert_eq!(
            store.spend_link("n1", &bob).await.unwrap(),
            Some(alice.clone())
        );
        assert_eq!(store.spend_link("n2", &bob).await.unwrap(), None);
        assert_eq!(store.prune_spent_links(100).unwrap(), 0);
        assert_eq!(store.prune_spent_links(101).unwrap(), 2);
        assert_eq!(store.spend_link("n1", &bob).await.unwrap(), None);
    }
}
