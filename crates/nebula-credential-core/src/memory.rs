//! [`MemoryProvider`]: credentials in process memory, with failure injection for tests.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Timeouts};
use crate::retry::RetryPolicy;

use crate::data::EncryptedData;
use crate::error::StorageError;
use crate::filter::CredentialFilter;
use crate::id::CredentialId;
use crate::metadata::CredentialMetadata;
use crate::provider::{Capabilities, Precondition, ProviderConfig, Revision, StorageProvider, Stored};
use crate::record::RecordEnvelope;

type Records = HashMap<CredentialId, Stored>;

/// Default payload limit of the in-memory backend: 1 MiB.
pub const MEMORY_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// Credentials in process memory (`provider = "memory"`): lost on exit. For tests,
/// prototypes and as the reference implementation of the contract (conditional stores
/// are atomic under its lock).
///
/// Clones share the same records, so a test can keep a handle for inspection.
/// [`fail_next_with`](Self::fail_next_with) queues errors returned by the next calls,
/// whatever the operation, to test retry and error paths in your own code.
///
/// ```
/// use nebula_credential_core::{MemoryProvider, StorageError, Operation};
/// let memory = MemoryProvider::new();
/// memory.fail_next_with(StorageError::unavailable("memory", Operation::Retrieve, None));
/// assert_eq!(memory.count(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct MemoryProvider {
    records: Arc<RwLock<Records>>,
    failures: Arc<Mutex<VecDeque<StorageError>>>,
    next_revision: Arc<AtomicU64>,
    limit: usize,
}

impl MemoryProvider {
    /// An empty store with a 1 MiB payload limit.
    pub fn new() -> Self {
        Self::with_limit(MEMORY_MAX_PAYLOAD_BYTES)
    }

    /// An empty store refusing records larger than `max_payload_bytes`.
    pub fn with_limit(max_payload_bytes: usize) -> Self {
        MemoryProvider {
            records: Arc::default(),
            failures: Arc::default(),
            next_revision: Arc::default(),
            limit: max_payload_bytes,
        }
    }

    /// Makes the next call (any operation) fail with `error`. Calls queue up.
    pub fn fail_next_with(&self, error: StorageError) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(error);
    }

    /// Removes every record (queued failures stay).
    pub fn clear(&self) {
        self.records.write().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Number of records stored.
    pub fn count(&self) -> usize {
        self.records.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn injected(&self) -> Result<(), StorageError> {
        match self.failures.lock().unwrap_or_else(PoisonError::into_inner).pop_front() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Records> {
        self.records.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryProvider {
    fn default() -> Self {
        Self::new()
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl StorageProvider for MemoryProvider {
    fn provider_name(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(self.limit).with_conditional_store()
    }

    async fn store_if(
        &self,
        id: &CredentialId,
        data: &EncryptedData,
        metadata: &CredentialMetadata,
        precondition: &Precondition,
    ) -> Result<Revision, StorageError> {
        self.injected()?;
        RecordEnvelope::check_size(id, data, metadata, self.provider_name(), self.limit)?;
        let mut records = self.records.write().unwrap_or_else(PoisonError::into_inner);
        if !precondition.holds(records.get(id).map(|s| &s.revision)) {
            return Err(precondition.conflict(self.provider_name(), id));
        }
        let revision = Revision::new((self.next_revision.fetch_add(1, Ordering::Relaxed) + 1).to_string());
        let stored = Stored {
            data: data.clone(),
            metadata: metadata.clone(),
            revision: revision.clone(),
        };
        records.insert(id.clone(), stored);
        Ok(revision)
    }

    async fn store(
        &self,
        id: &CredentialId,
        data: &EncryptedData,
        metadata: &CredentialMetadata,
    ) -> Result<Revision, StorageError> {
        self.store_if(id, data, metadata, &Precondition::Overwrite).await
    }

    async fn retrieve(&self, id: &CredentialId) -> Result<Stored, StorageError> {
        self.injected()?;
        self.read()
            .get(id)
            .cloned()
            .ok_or_else(|| StorageError::not_found(self.provider_name(), id))
    }

    async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
        self.injected()?;
        self.records.write().unwrap_or_else(PoisonError::into_inner).remove(id);
        Ok(())
    }

    async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
        self.injected()?;
        let mut ids: Vec<CredentialId> = self
            .read()
            .iter()
            .filter(|(id, stored)| filter.matches(id, &stored.metadata))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        Ok(ids)
    }

    async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError> {
        self.injected()?;
        Ok(self.read().contains_key(id))
    }

    async fn revision(&self, id: &CredentialId) -> Result<Revision, StorageError> {
        self.injected()?;
        self.read()
            .get(id)
            .map(|stored| stored.revision.clone())
            .ok_or_else(|| StorageError::not_found(self.provider_name(), id))
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.injected()
    }
}

/// Settings of the in-memory backend (`provider = "memory"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Largest serialized record accepted, 1 ..= 64 MiB (default 1 MiB).
    pub max_payload_bytes: usize,
    /// Retry policy (`[retry]`).
    pub retry: RetryPolicy,
    /// Deadlines (`[timeouts]`).
    pub timeouts: Timeouts,
}

impl MemoryConfig {
    /// Largest `max_payload_bytes` accepted.
    pub const MAX_PAYLOAD_LIMIT: usize = 64 * 1024 * 1024;
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            max_payload_bytes: MEMORY_MAX_PAYLOAD_BYTES,
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
        }
    }
}

#[async_trait]
impl ProviderConfig for MemoryConfig {
    fn provider_name(&self) -> &'static str {
        "memory"
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_payload_bytes == 0 || self.max_payload_bytes > Self::MAX_PAYLOAD_LIMIT {
            return Err(ConfigError::new(
                "memory",
                "max_payload_bytes",
                format!(
                    "must be between 1 and {} bytes (got {})",
                    Self::MAX_PAYLOAD_LIMIT,
                    self.max_payload_bytes
                ),
            ));
        }
        self.retry.validate("memory")?;
        self.timeouts.validate("memory")
    }

    fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// The defaults: the in-memory backend reads no variables.
    fn from_env() -> Result<Self, ConfigError> {
        Ok(MemoryConfig::default())
    }

    async fn build(&self) -> Result<Box<dyn StorageProvider>, StorageError> {
        self.validate()?;
        Ok(Box::new(MemoryProvider::with_limit(self.max_payload_bytes)))
    }
}
