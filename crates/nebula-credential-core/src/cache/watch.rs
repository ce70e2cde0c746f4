//! [`CredentialWatch`]: changes of one credential, from one poller per id shared by all
//! its subscribers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::watch as channel;
use tokio::task::AbortHandle;

use crate::error::StorageError;
use crate::id::CredentialId;
use crate::metadata::CredentialMetadata;
use crate::operation::Operation;
use crate::provider::{Revision, StorageProvider};

use super::CacheControl;

/// The state of a watched credential.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// It exists at `revision`, with `metadata`.
    Present {
        /// The stored state (compare with the one your value came with).
        revision: Revision,
        /// Its metadata (version, timestamps, tags).
        metadata: CredentialMetadata,
    },
    /// It does not exist (deleted, or never stored).
    Deleted,
}

/// Changes of one credential, from [`CredentialStore::watch`](crate::CredentialStore::watch).
///
/// One poller per id asks the backend for the [`Revision`] every `poll_ms` (±10 %
/// jitter), however many watches of that id exist; it stops when the last one is
/// dropped. Polling errors are logged and polling goes on.
#[derive(Debug)]
pub struct CredentialWatch {
    id: CredentialId,
    provider: &'static str,
    receiver: channel::Receiver<Change>,
}

impl CredentialWatch {
    /// Waits for the next change and returns the new state. Fails when the store was
    /// dropped (nothing polls any more).
    pub async fn changed(&mut self) -> Result<Change, StorageError> {
        if self.receiver.changed().await.is_err() {
            return Err(StorageError::backend(
                self.provider,
                Operation::Revision,
                Some(&self.id),
                "the credential store behind this watch was dropped; watch again from a live store",
            ));
        }
        Ok(self.receiver.borrow_and_update().clone())
    }

    /// The state last seen (at subscription, or at the latest change).
    pub fn current(&self) -> Change {
        self.receiver.borrow().clone()
    }

    /// The credential watched.
    pub fn id(&self) -> &CredentialId {
        &self.id
    }
}

/// Where a poller reads the state from.
#[derive(Clone)]
pub(crate) enum Source {
    /// The provider (no cache): `revision`, then `retrieve` when it changed.
    Provider(Arc<dyn StorageProvider>),
    /// The cache: a revalidation (which also refreshes the entry).
    Cache(Arc<dyn CacheControl>),
}

impl Source {
    async fn state(&self, id: &CredentialId, current: &Change) -> Result<Change, StorageError> {
        let present = |(revision, metadata)| Change::Present { revision, metadata };
        match self {
            Source::Cache(cache) => Ok(cache.poll(id).await?.map_or(Change::Deleted, present)),
            Source::Provider(provider) => {
                let revision = match provider.revision(id).await {
                    Ok(revision) => revision,
                    Err(e) if e.is_not_found() => return Ok(Change::Deleted),
                    Err(e) => return Err(e),
                };
                if let Change::Present { revision: known, .. } = current
                    && *known == revision
                {
                    return Ok(current.clone());
                }
                match provider.retrieve(id).await {
                    Ok(stored) => Ok(present((stored.revision, stored.metadata))),
                    Err(e) if e.is_not_found() => Ok(Change::Deleted),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

struct Poller {
    generation: u64,
    sender: channel::Sender<Change>,
    task: AbortHandle,
}

type Pollers = Mutex<HashMap<CredentialId, Poller>>;

/// The pollers of one [`CredentialStore`](crate::CredentialStore); aborted when it is dropped.
pub(crate) struct Watchers {
    pollers: Arc<Pollers>,
    generations: std::sync::atomic::AtomicU64,
}

impl Default for Watchers {
    fn default() -> Self {
        Watchers {
            pollers: Arc::default(),
            generations: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        for poller in self.pollers.lock().unwrap_or_else(PoisonError::into_inner).values() {
            poller.task.abort();
        }
    }
}

impl Watchers {
    /// A watch of `id`, joining its poller or starting one.
    pub(crate) async fn watch(
        &self,
        id: &CredentialId,
        source: Source,
        period: Duration,
        provider: &'static str,
    ) -> Result<CredentialWatch, StorageError> {
        let subscribe = |receiver| CredentialWatch {
            id: id.clone(),
            provider,
            receiver,
        };
        if let Some(receiver) = self.subscribe(id) {
            return Ok(subscribe(receiver));
        }
        let initial = source.state(id, &Change::Deleted).await?;
        let mut pollers = self.pollers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = pollers.get(id)
            && !p.sender.is_closed()
        {
            return Ok(subscribe(p.sender.subscribe()));
        }
        let (sender, receiver) = channel::channel(initial);
        let generation = self.generations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let task = tokio::spawn(poll(
            id.clone(),
            source,
            period,
            sender.clone(),
            Arc::downgrade(&self.pollers),
            generation,
        ));
        pollers.insert(
            id.clone(),
            Poller {
                generation,
                sender,
                task: task.abort_handle(),
            },
        );
        Ok(subscribe(receiver))
    }

    fn subscribe(&self, id: &CredentialId) -> Option<channel::Receiver<Change>> {
        let pollers = self.pollers.lock().unwrap_or_else(PoisonError::into_inner);
        let p = pollers.get(id)?;
        (!p.sender.is_closed()).then(|| p.sender.subscribe())
    }

    /// Ids polled now (one poller each).
    pub(crate) fn active(&self) -> usize {
        self.pollers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|p| !p.sender.is_closed())
            .count()
    }
}

/// `period` ±10 %.
fn jittered(period: Duration) -> Duration {
    period.mul_f64(rand::random_range(0.9..=1.1))
}

/// One poller: until the last subscriber goes, every `period` (jittered) read the
/// state and publish it when it changed.
async fn poll(
    id: CredentialId,
    source: Source,
    period: Duration,
    sender: channel::Sender<Change>,
    pollers: Weak<Pollers>,
    generation: u64,
) {
    loop {
        if tokio::time::timeout(jittered(period), sender.closed()).await.is_ok() {
            break;
        }
        let current = sender.borrow().clone();
        match source.state(&id, &current).await {
            Ok(next) => {
                sender.send_if_modified(|state| {
                    let changed = *state != next;
                    if changed {
                        *state = next;
                    }
                    changed
                });
            }
            Err(e) => tracing::warn!(
                credential_id = id.as_str(),
                error.kind = e.kind().as_str(),
                error = %e,
                "watch poll failed; polling goes on"
            ),
        }
    }
    if let Some(pollers) = pollers.upgrade() {
        let mut pollers = pollers.lock().unwrap_or_else(PoisonError::into_inner);
        if pollers.get(&id).is_some_and(|p| p.generation == generation) {
            pollers.remove(&id);
        }
    }
}
