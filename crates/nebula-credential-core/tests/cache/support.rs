//! A counting in-memory backend for the cache tests: counts each operation, can fail
//! reads with a chosen error, and can hold a read's answer back for a while.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nebula_credential_core::{
    Capabilities, CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, MemoryProvider, Operation,
    Precondition, Revision, StorageError, StorageProvider, Stored, async_trait,
};

/// Which error the backend's reads fail with while set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Unavailable,
    PermissionDenied,
    Throttled,
    /// The read panics (a provider bug).
    Panic,
}

#[derive(Debug, Default)]
pub struct Counts {
    pub retrieve: AtomicU64,
    pub revision: AtomicU64,
    pub exists: AtomicU64,
    pub store: AtomicU64,
    pub delete: AtomicU64,
}

/// Memory behind counters. Clones share everything.
#[derive(Debug, Clone)]
pub struct Counting {
    pub memory: MemoryProvider,
    pub counts: Arc<Counts>,
    failure: Arc<Mutex<Option<Failure>>>,
    delay: Arc<Mutex<Duration>>,
}

impl Counting {
    pub fn new() -> Self {
        Counting {
            memory: MemoryProvider::new(),
            counts: Arc::default(),
            failure: Arc::default(),
            delay: Arc::default(),
        }
    }

    pub fn retrieves(&self) -> u64 {
        self.counts.retrieve.load(Ordering::SeqCst)
    }

    pub fn revisions(&self) -> u64 {
        self.counts.revision.load(Ordering::SeqCst)
    }

    pub fn exists_calls(&self) -> u64 {
        self.counts.exists.load(Ordering::SeqCst)
    }

    /// Reads (retrieve, revision, exists) fail with `failure` until set back to `None`.
    pub fn fail_reads(&self, failure: Option<Failure>) {
        *self.failure.lock().unwrap() = failure;
    }

    /// Reads answer after `delay` (the state they answer is read before the delay).
    pub fn delay_reads(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    async fn read<T>(
        &self,
        op: Operation,
        id: &CredentialId,
        answer: Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let failure = *self.failure.lock().unwrap();
        match failure {
            Some(Failure::Unavailable) => Err(StorageError::unavailable("counting", op, Some(id))),
            Some(Failure::PermissionDenied) => Err(StorageError::permission_denied(
                "counting",
                op,
                Some(id),
                "grant read access",
            )),
            Some(Failure::Throttled) => Err(StorageError::throttled("counting", op, Some(id))),
            Some(Failure::Panic) => panic!("a provider bug (expected by this test)"),
            None => answer,
        }
    }
}

#[async_trait]
impl StorageProvider for Counting {
    fn provider_name(&self) -> &'static str {
        "counting"
    }

    fn capabilities(&self) -> Capabilities {
        self.memory.capabilities()
    }

    async fn store_if(
        &self,
        id: &CredentialId,
        data: &EncryptedData,
        metadata: &CredentialMetadata,
        precondition: &Precondition,
    ) -> Result<Revision, StorageError> {
        self.counts.store.fetch_add(1, Ordering::SeqCst);
        self.memory.store_if(id, data, metadata, precondition).await
    }

    async fn retrieve(&self, id: &CredentialId) -> Result<Stored, StorageError> {
        self.counts.retrieve.fetch_add(1, Ordering::SeqCst);
        let answer = self.memory.retrieve(id).await;
        self.read(Operation::Retrieve, id, answer).await
    }

    async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
        self.counts.delete.fetch_add(1, Ordering::SeqCst);
        self.memory.delete(id).await
    }

    async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
        self.memory.list(filter).await
    }

    async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError> {
        self.counts.exists.fetch_add(1, Ordering::SeqCst);
        let answer = self.memory.exists(id).await;
        self.read(Operation::Exists, id, answer).await
    }

    async fn revision(&self, id: &CredentialId) -> Result<Revision, StorageError> {
        self.counts.revision.fetch_add(1, Ordering::SeqCst);
        let answer = self.memory.revision(id).await;
        self.read(Operation::Revision, id, answer).await
    }
}

pub fn id(name: &str) -> CredentialId {
    name.parse().unwrap()
}
