//! [`MockStorageProvider`]: an in-memory provider for tests, with failure injection.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_trait::async_trait;

use crate::data::EncryptedData;
use crate::error::StorageError;
use crate::filter::CredentialFilter;
use crate::id::CredentialId;
use crate::metadata::CredentialMetadata;
use crate::provider::{ProviderLimits, StorageProvider};
use crate::record::StoredRecord;

type Records = HashMap<CredentialId, (EncryptedData, CredentialMetadata)>;

/// Default payload limit of the mock: 1 MiB.
pub const MOCK_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// An in-memory [`StorageProvider`] (`provider_name() == "memory"`).
///
/// Clones share the same records, so a test can keep a handle for inspection.
/// [`fail_next_with`](Self::fail_next_with) queues errors returned by the next calls,
/// whatever the operation, to test retry and error paths in your own code.
///
/// ```
/// use nebula_credential_core::{MockStorageProvider, StorageError, Operation};
/// let mock = MockStorageProvider::new();
/// mock.fail_next_with(StorageError::Unavailable { provider: "memory", operation: Operation::Retrieve, id: None, source: None });
/// assert_eq!(mock.count(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct MockStorageProvider {
    records: Arc<RwLock<Records>>,
    failures: Arc<Mutex<VecDeque<StorageError>>>,
    limit: usize,
}

impl MockStorageProvider {
    /// An empty store with a 1 MiB payload limit.
    pub fn new() -> Self {
        Self::with_limit(MOCK_MAX_PAYLOAD_BYTES)
    }

    /// An empty store refusing records larger than `max_payload_bytes`.
    pub fn with_limit(max_payload_bytes: usize) -> Self {
        MockStorageProvider {
            records: Arc::default(),
            failures: Arc::default(),
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

impl Default for MockStorageProvider {
    fn default() -> Self {
        Self::new()
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl StorageProvider for MockStorageProvider {
    fn provider_name(&self) -> &'static str {
        "memory"
    }

    fn limits(&self) -> ProviderLimits {
        ProviderLimits::new(self.limit)
    }

    async fn store(
        &self,
        id: &CredentialId,
        data: EncryptedData,
        metadata: CredentialMetadata,
    ) -> Result<(), StorageError> {
        self.injected()?;
        let record = StoredRecord::new(id.clone(), data, metadata);
        record.to_json(self.provider_name(), self.limit)?;
        self.records
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(record.id, (record.encrypted_data, record.metadata));
        Ok(())
    }

    async fn retrieve(&self, id: &CredentialId) -> Result<(EncryptedData, CredentialMetadata), StorageError> {
        self.injected()?;
        self.read().get(id).cloned().ok_or_else(|| StorageError::NotFound {
            provider: self.provider_name(),
            id: id.clone(),
        })
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
            .filter(|(id, (_, metadata))| filter.matches(id, metadata))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        Ok(ids)
    }

    async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError> {
        self.injected()?;
        Ok(self.read().contains_key(id))
    }
}
