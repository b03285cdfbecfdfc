//! The leader's checkpoint (issue 18, Build 3): a small text kept in a ConfigMap, written
//! only under the epoch its writer leads with, so a leader that lost its lease without
//! knowing (paused, cut off) can never overwrite what its successor wrote.
//!
//! The ConfigMap's `data` holds `epoch` (decimal) and `checkpoint` (the text; what it holds
//! is the caller's). [`CheckpointApi::store`] reads the ConfigMap, refuses when it holds a
//! later epoch than the writer's ([`CheckpointError::Fenced`]), and writes with the
//! `resourceVersion` it read; a conflict (someone wrote in between) is read again, so a
//! successor's write in between is seen and fences the old leader.

use super::kube::{ApiError, KubeApi};

/// Largest checkpoint text accepted: a ConfigMap holds at most 1 MiB in all.
pub const MAX_CHECKPOINT_BYTES: usize = 900 * 1024;

/// Conflicts read again before a store gives up.
const CONFLICT_RETRIES: usize = 5;

/// Why a checkpoint was not stored, on a store whose calls fail with `E`.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError<E: std::error::Error + 'static = ApiError> {
    /// The ConfigMap holds a later epoch: this writer no longer leads.
    #[error(
        "the checkpoint holds epoch {stored}, later than this writer's {mine}: another replica leads now"
    )]
    Fenced {
        /// The epoch stored.
        stored: u64,
        /// The writer's.
        mine: u64,
    },
    /// Over [`MAX_CHECKPOINT_BYTES`].
    #[error(
        "the checkpoint is {0} bytes, over the {MAX_CHECKPOINT_BYTES} bytes a ConfigMap (or the checkpoint row) may hold: lower [ha] ring"
    )]
    TooLarge(usize),
    /// The writer's deadline passed before the write was sent: not sent (a leader stopped or
    /// paused past its lease must not write, even before its successor fenced it).
    #[error("the term's deadline passed before the write: not sent")]
    Late,
    /// The store refused or could not be reached.
    #[error(transparent)]
    Api(#[from] E),
}

/// Where the checkpoint lives (a ConfigMap, a PostgreSQL row). `store` must refuse a write
/// under an epoch older than the one stored, atomically (a compare-and-swap on the server),
/// so a leader that lost its lease without knowing can never overwrite its successor.
pub trait CheckpointStore: Clone + Send + Sync + 'static {
    /// Why a call failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// What and where, for logs.
    fn describe(&self) -> String;

    /// The checkpoint stored, if any.
    fn load(&self)
    -> impl std::future::Future<Output = Result<Option<Stored>, Self::Error>> + Send;

    /// Stores `text` under `epoch`, unless a later epoch is stored.
    fn store(
        &self,
        epoch: u64,
        text: &str,
    ) -> impl std::future::Future<Output = Result<(), CheckpointError<Self::Error>>> + Send;
}

/// A checkpoint as stored: the epoch it was written under, and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The writer's epoch.
    pub epoch: u64,
    /// What it wrote.
    pub text: String,
}

/// The ConfigMap `namespace/name` holding the checkpoint.
#[derive(Clone, Debug)]
pub struct CheckpointApi {
    api: KubeApi,
    name: String,
}

impl CheckpointApi {
    /// The ConfigMap `name` in `api`'s namespace.
    pub fn new(api: KubeApi, name: &str) -> CheckpointApi {
        CheckpointApi {
            api,
            name: name.to_string(),
        }
    }

    fn collection(&self) -> String {
        self.api.collection("api/v1", "configmaps")
    }

    fn url(&self) -> String {
        format!("{}/{}", self.collection(), self.name)
    }

    /// The checkpoint stored, if any, with the version it was read at.
    async fn read(&self) -> Result<Option<(Stored, String)>, ApiError> {
        let Some(v) = self.api.get(&self.url(), "checkpoint read").await? else {
            return Ok(None);
        };
        let version = v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let data = &v["data"];
        let epoch = data["epoch"]
            .as_str()
            .and_then(|e| e.parse().ok())
            .ok_or_else(|| {
                ApiError::Setup(format!(
                    "the checkpoint ConfigMap {} has no decimal data.epoch",
                    self.api.describe(&self.name)
                ))
            })?;
        let text = data["checkpoint"].as_str().unwrap_or_default().to_string();
        Ok(Some((Stored { epoch, text }, version)))
    }
}

impl CheckpointStore for CheckpointApi {
    type Error = ApiError;

    fn describe(&self) -> String {
        format!("ConfigMap {}", self.api.describe(&self.name))
    }

    async fn load(&self) -> Result<Option<Stored>, ApiError> {
        Ok(self.read().await?.map(|(s, _)| s))
    }

    /// Reads the ConfigMap, refuses a later stored epoch, writes at the version read (the
    /// module doc has the order of reads and writes).
    async fn store(&self, epoch: u64, text: &str) -> Result<(), CheckpointError> {
        self.store_before(epoch, text, None).await
    }
}

impl CheckpointApi {
    /// [`CheckpointStore::store`], sending no write at or after `deadline` (the writer's term
    /// deadline: checked right before each write, after every read).
    pub async fn store_before(
        &self,
        epoch: u64,
        text: &str,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), CheckpointError> {
        if text.len() > MAX_CHECKPOINT_BYTES {
            return Err(CheckpointError::TooLarge(text.len()));
        }
        let mut last = None;
        for _ in 0..CONFLICT_RETRIES {
            let current = self.read().await?;
            if let Some((stored, _)) = &current
                && stored.epoch > epoch
            {
                return Err(CheckpointError::Fenced {
                    stored: stored.epoch,
                    mine: epoch,
                });
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Err(CheckpointError::Late);
            }
            let version = current.as_ref().map(|(_, v)| v.as_str());
            let body = serde_json::json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": self.api.metadata(&self.name, version),
                "data": {"epoch": epoch.to_string(), "checkpoint": text},
            });
            let written = match version {
                None => {
                    self.api
                        .create(&self.collection(), &body, "checkpoint create")
                        .await
                }
                Some(_) => {
                    self.api
                        .replace(&self.url(), &body, "checkpoint update")
                        .await
                }
            };
            match written {
                Ok(_) => return Ok(()),
                Err(e @ ApiError::Conflict(_)) => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .unwrap_or_else(|| ApiError::Conflict("no attempt".into()))
            .into())
    }
}
