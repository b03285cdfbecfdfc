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

    /// Deletes spent links that expired before `now_s`; how many. A value that does not
    /// decode is logged with its key and kept: it still refuses its link (`spend_link` cannot
    /// read it either), and deleting it would let the link act again.
    pub fn prune_spent_links(&self, now_s: i64) -> Result<usize, StoreError> {
        let inner = self.current()?;
        let mut removed = 0;
        for item in inner.spent_links.iter() {
            let (k, v) = item.at(&inner.dir)?;
            let nonce = String::from_utf8_lossy(&k);
            // Through the store's decoder: a long value is stored compressed.
            let Some(spent) = inner.decode_or_pass::<SpentLink>(
                &v,
                || format!("spent link {nonce}"),
                "A spent action link cannot be read; it is kept, so its link still cannot act.",
            ) else {
                continue;
            };
            if spent.exp_s < now_s {
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

    /// A spent link long enough to be stored compressed (its `who` in Chinese) is read back
    /// by the pruner as by everything else: kept until its own expiry, still refused.
    #[tokio::test]
    async fn a_long_spent_link_is_kept_until_its_own_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let long = SpentLink {
            exp_s: 2_000_000_000,
            at_ms: 1,
            who: "运维".repeat(128),
        };
        assert_eq!(store.spend_link("n1", &long).await.unwrap(), None);
        let inner = store.current().unwrap();
        let stored = inner.spent_links.get("n1").unwrap().unwrap();
        assert_eq!(stored[0], super::super::LZ4_JSON, "stored compressed");

        assert_eq!(store.prune_spent_links(100).unwrap(), 0);
        let again = SpentLink {
            who: "bob".into(),
            ..long.clone()
        };
        assert_eq!(
            store.spend_link("n1", &again).await.unwrap(),
            Some(long.clone()),
            "the link does not act twice"
        );
        assert_eq!(store.prune_spent_links(2_000_000_001).unwrap(), 1);
    }

    /// A value that does not decode is kept: it still refuses its link, and deleting it
    /// would let the link act again.
    #[tokio::test]
    async fn a_spent_link_that_does_not_decode_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let inner = store.current().unwrap();
        inner.spent_links.insert("bad", &b"{not json"[..]).unwrap();
        assert_eq!(store.prune_spent_links(i64::MAX).unwrap(), 0);
        assert!(inner.spent_links.contains_key("bad").unwrap());
        let spent = SpentLink {
            exp_s: 100,
            at_ms: 1,
            who: "alice".into(),
        };
        assert!(
            store.spend_link("bad", &spent).await.is_err(),
            "still refused"
        );
    }
}
