//! Health episodes: per health condition, its latest episode and whether its change was
//! announced ([`HealthEpisode`]), so a restart finds the episode it left and neither sends its
//! meta-event again nor forgets to resolve it; and the write probe `/readyz` asks.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `health` | the condition's key (`source_blind/prod/alerts`) | [`HealthEpisode`] JSON |
//! | `health` | `probe` (never a condition's key: those hold a `/`) | the probe's time (unix ms, decimal) |
//!
//! One key per condition ever seen: bounded by the configuration's sources, domains and sinks
//! (conditions of removed ones stay, closed, a few bytes each).

use super::{At, Store, StoreError};
use crate::event::HealthEpisode;

/// The probe's key.
const PROBE: &[u8] = b"probe";

impl Store {
    /// The stored episode of the condition with key `key`.
    pub fn health_episode(&self, key: &str) -> Result<Option<HealthEpisode>, StoreError> {
        let inner = self.current()?;
        match inner.health.get(key.as_bytes()).at(&inner.dir)? {
            Some(v) => Ok(Some(inner.decode(&v, || format!("health episode {key}"))?)),
            None => Ok(None),
        }
    }

    /// Every stored episode, by key.
    pub fn health_episodes(&self) -> Result<Vec<HealthEpisode>, StoreError> {
        let inner = self.current()?;
        let mut out = Vec::new();
        for item in inner.health.iter() {
            let (k, v) = item.at(&inner.dir)?;
            if *k == *PROBE {
                continue;
            }
            out.push(inner.decode(&v, || {
                format!("health episode {}", String::from_utf8_lossy(&k))
            })?);
        }
        Ok(out)
    }

    /// Stores `episode` under its condition's key (durable at the next flush).
    pub fn put_health_episode(&self, episode: &HealthEpisode) -> Result<(), StoreError> {
        let inner = self.current()?;
        let key = episode.condition.key();
        let value = inner.encode(episode, || format!("health episode {key}"))?;
        inner.health.insert(key.as_bytes(), value).at(&inner.dir)?;
        Ok(())
    }

    /// Writes one small key: fails when the store is closed or sled refuses writes (it keeps
    /// its first IO error, a full disk included), which is what "cannot be written" means to
    /// `/readyz`. Not flushed: the next flush of real work takes it along.
    pub fn probe_write(&self, now_ms: i64) -> Result<(), StoreError> {
        let inner = self.current()?;
        inner
            .health
            .insert(PROBE, now_ms.to_string().as_bytes())
            .at(&inner.dir)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::event::{EPISODE_SCHEMA, HealthCondition, HealthEpisode};
    use crate::store::Store;

    #[tokio::test]
    async fn episodes_survive_a_reopen_and_the_probe_is_not_one() {
        let dir = tempfile::tempdir().unwrap();
        let e = HealthEpisode {
            v: EPISODE_SCHEMA,
            condition: HealthCondition::SinkStalled { sink: "s".into() },
            episode: 3,
            open: true,
            since_ms: 5,
            changed_ms: 5,
            announced: false,
            message: "m".into(),
            detail: None,
        };
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.health_episode("sink_stalled/s").unwrap(), None);
            store.put_health_episode(&e).unwrap();
            store.probe_write(7).unwrap();
            store.flush().await.unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.health_episode("sink_stalled/s").unwrap(),
            Some(e.clone())
        );
        assert_eq!(store.health_episodes().unwrap(), vec![e]);
    }
}
