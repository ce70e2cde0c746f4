//! [`CredentialStore`]: what applications call. Encrypts before any provider sees a value.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use secrecy::SecretSlice;

use crate::cache::watch_source::Source;
use crate::cache::{CacheConfig, CacheControl, Cached, CachedRecord, CredentialWatch, Watchers};
use crate::crypto::{EncryptionKey, Keyring};
use crate::data::EncryptedData;
use crate::error::{ErrorKind, StorageError};
use crate::filter::CredentialFilter;
use crate::id::CredentialId;
use crate::metadata::{CredentialMetadata, Tags, Timestamp, now};
use crate::provider::{Precondition, Revision, StorageProvider, Stored};
use crate::remote::back_off;

/// Outcome of [`CredentialStore::rotate_keys`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Credentials re-encrypted under the current key.
    pub re_encrypted: usize,
    /// Credentials already under the current key, left as they were (including those
    /// a concurrent `put` rewrote under it meanwhile).
    pub already_current: usize,
    /// Credentials deleted while rotation ran; they stay deleted.
    pub vanished: usize,
    /// Credentials that could not be rotated, with the kind of error; the rest were.
    pub failed: Vec<(CredentialId, ErrorKind)>,
}

impl RotationReport {
    /// `true` when every credential is now under the current key.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Most attempts of one conditional write before giving up with `Conflict`.
const MAX_WRITE_ATTEMPTS: u32 = 64;

/// Stores and reads credentials through any [`StorageProvider`], encrypting values
/// with the current key of a [`Keyring`] (AES-256-GCM, id bound as associated data).
///
/// It manages `created_at`, `updated_at` and `version`: the first `put` creates
/// version 1, each later `put` of the same id keeps `created_at` and adds 1.
///
/// ```
/// use std::sync::Arc;
/// use nebula_credential_core::{CredentialStore, EncryptionKey, Keyring, MemoryProvider, Tags};
/// use secrecy::ExposeSecret;
/// # tokio_test_block_on(async {
/// let store = CredentialStore::new(Arc::new(MemoryProvider::new()), Keyring::new(EncryptionKey::generate()));
/// let id = "github_token".parse()?;
/// store.put(&id, b"ghp_example", Tags::new()).await?;
/// assert_eq!(store.get(&id).await?.expose_secret(), b"ghp_example");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub struct CredentialStore {
    provider: Arc<dyn StorageProvider>,
    keyring: RwLock<Arc<Keyring>>,
    cache: Option<Arc<dyn CacheControl>>,
    watchers: Watchers,
    watch_poll: Duration,
}

impl CredentialStore {
    /// A store over `provider` (usually the layered stack from `nebula_credential::open`).
    /// Without a cache: [`refresh`](Self::refresh) asks the backend for the revision, and
    /// [`watch`](Self::watch) polls every 30 s (see [`with_watch_poll`](Self::with_watch_poll)).
    pub fn new(provider: Arc<dyn StorageProvider>, keyring: Keyring) -> Self {
        CredentialStore {
            provider,
            keyring: RwLock::new(Arc::new(keyring)),
            cache: None,
            watchers: Watchers::default(),
            watch_poll: CacheConfig::default().poll(),
        }
    }

    /// A store reading through `cache` (see [`crate::cache`]): [`refresh`](Self::refresh)
    /// and [`watch`](Self::watch) work on its entries, and watches poll every
    /// [`poll_ms`](CacheConfig::poll_ms). `nebula_credential::open_store` builds this when
    /// the configuration has a `[cache]` table.
    pub fn with_cache<P: StorageProvider + 'static>(cache: Cached<P>, keyring: Keyring) -> Self {
        let watch_poll = cache.config().poll();
        CredentialStore {
            provider: Arc::new(cache.clone()),
            keyring: RwLock::new(Arc::new(keyring)),
            cache: Some(Arc::new(cache)),
            watchers: Watchers::default(),
            watch_poll,
        }
    }

    /// Sets how often [`watch`](Self::watch) polls the backend (±10 % jitter); applies to
    /// watches started afterwards.
    pub fn with_watch_poll(mut self, period: Duration) -> Self {
        self.watch_poll = period.max(Duration::from_millis(1));
        self
    }

    /// `true` when reads go through a [`Cached`] layer.
    pub fn is_cached(&self) -> bool {
        self.cache.is_some()
    }

    /// The provider underneath.
    pub fn provider(&self) -> &Arc<dyn StorageProvider> {
        &self.provider
    }

    fn keyring(&self) -> Arc<Keyring> {
        self.keyring.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Id of the key new values are encrypted with.
    pub fn current_key_id(&self) -> String {
        self.keyring().current().key_id().to_string()
    }

    /// Makes `key` the current key; earlier keys keep decrypting. Follow with
    /// [`rotate_keys`](Self::rotate_keys) to re-encrypt what is stored. Refused (the
    /// keyring unchanged) when another key is held under `key`'s id: see
    /// [`Keyring::rotate_to`].
    pub fn add_current_key(&self, key: EncryptionKey) -> Result<(), StorageError> {
        let mut guard = self.keyring.write().unwrap_or_else(PoisonError::into_inner);
        let mut ring = Keyring::clone(&guard);
        ring.rotate_to(key)?;
        *guard = Arc::new(ring);
        Ok(())
    }

    /// Encrypts and stores `secret` under `id` with `tags` (validated first).
    /// Returns the metadata written.
    pub async fn put(&self, id: &CredentialId, secret: &[u8], tags: Tags) -> Result<CredentialMetadata, StorageError> {
        self.put_expiring(id, secret, tags, None).await
    }

    /// Like [`put`](Self::put), with an expiry time recorded in the metadata.
    ///
    /// Versions are exact: the write is conditional on the revision read, so of N
    /// concurrent puts of one id each gets its own version, and the last acknowledged
    /// value is what [`get`](Self::get) returns. A put that keeps losing the race gives up
    /// with [`StorageError::Conflict`]. A stored record that cannot be read
    /// ([`StorageError::Corrupted`]) is replaced, with a warning, starting again at
    /// version 1. On a backend without
    /// [`conditional_store`](crate::Capabilities::conditional_store) the write is
    /// last-writer-wins and concurrent puts may report the same version.
    pub async fn put_expiring(
        &self,
        id: &CredentialId,
        secret: &[u8],
        tags: Tags,
        expires_at: Option<Timestamp>,
    ) -> Result<CredentialMetadata, StorageError> {
        let mut template = CredentialMetadata::new().with_tags(tags);
        if let Some(at) = expires_at {
            template = template.with_expiry(at);
        }
        template.validate()?;
        let data = self.keyring().encrypt(id, secret)?;
        let conditional = self.provider.capabilities().conditional_store;
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let mut metadata = template.clone();
            metadata.created_at = now();
            metadata.updated_at = metadata.created_at;
            let precondition = match self.provider.retrieve(id).await {
                Ok(previous) => {
                    metadata.created_at = previous.metadata.created_at;
                    metadata.version = previous.metadata.version.saturating_add(1);
                    metadata.updated_at = metadata.updated_at.max(previous.metadata.created_at);
                    Precondition::Revision(previous.revision)
                }
                Err(e) if e.is_not_found() => Precondition::Absent,
                Err(e @ StorageError::Corrupted { .. }) => {
                    tracing::warn!(
                        provider = self.provider.provider_name(),
                        credential_id = id.as_str(),
                        error = %e,
                        "replacing a stored record that cannot be read"
                    );
                    Precondition::Overwrite
                }
                Err(e) => return Err(e),
            };
            let precondition = if conditional {
                precondition
            } else {
                Precondition::Overwrite
            };
            match self.provider.store_if(id, &data, &metadata, &precondition).await {
                Ok(_) => return Ok(metadata),
                Err(e) if e.is_conflict() && precondition.is_conditional() => {
                    // A retried write may have landed before its reply was lost: ours if
                    // the record now holds our ciphertext (the nonce is unique).
                    if let Ok(now_stored) = self.provider.retrieve(id).await
                        && now_stored.data == data
                    {
                        return Ok(now_stored.metadata);
                    }
                    back_off(attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(StorageError::conflict(
            self.provider.provider_name(),
            id,
            format!(
                "{MAX_WRITE_ATTEMPTS} attempts lost the race to concurrent writers; \
                 retry later or reduce concurrent writes of this credential"
            ),
        ))
    }

    /// The decrypted value of `id`. It is decrypted straight into the returned secret,
    /// the only copy of the plaintext (zeroized when dropped); through a cache, from the
    /// entry's ciphertext, its tag verified on every read.
    pub async fn get(&self, id: &CredentialId) -> Result<SecretSlice<u8>, StorageError> {
        let record = self.read(id).await?;
        self.decrypt(id, &record.stored().data)
    }

    /// The decrypted value of `id` and its metadata.
    pub async fn get_with_metadata(
        &self,
        id: &CredentialId,
    ) -> Result<(SecretSlice<u8>, CredentialMetadata), StorageError> {
        let record = self.read(id).await?;
        let secret = self.decrypt(id, &record.stored().data)?;
        Ok((secret, record.into_metadata_and_revision().0))
    }

    /// The decrypted value of `id`, its metadata and the [`Revision`] it was read at: keep
    /// the revision, and pass it to [`refresh`](Self::refresh) if the value is rejected.
    pub async fn get_with_revision(
        &self,
        id: &CredentialId,
    ) -> Result<(SecretSlice<u8>, CredentialMetadata, Revision), StorageError> {
        let record = self.read(id).await?;
        let secret = self.decrypt(id, &record.stored().data)?;
        let (metadata, revision) = record.into_metadata_and_revision();
        Ok((secret, metadata, revision))
    }

    /// The record of `id`: shared with the cache's entry when there is a cache (the
    /// ciphertext is not copied), else as the provider returns it.
    async fn read(&self, id: &CredentialId) -> Result<Record, StorageError> {
        Ok(match &self.cache {
            Some(cache) => Record::Cached(cache.read(id).await?),
            None => Record::Owned(self.provider.retrieve(id).await?),
        })
    }

    /// Decrypts `data` of `id` straight into the returned secret (the only copy of the
    /// plaintext), with the keyring as it is now.
    fn decrypt(&self, id: &CredentialId, data: &EncryptedData) -> Result<SecretSlice<u8>, StorageError> {
        // A copy of the keyring's handle, so no lock is held while decrypting: a large
        // value never holds up `add_current_key`, nor other readers queued behind it.
        Ok(self.keyring().decrypt_secret(id, data)?)
    }

    /// For a caller whose credential was just rejected by the service it protects
    /// (rotated elsewhere): refetches `id` unless the cache already moved past `seen` (the
    /// revision the caller was served, from [`get_with_revision`](Self::get_with_revision)),
    /// or always when `seen` is `None`, and returns the revision now held. So 100 callers
    /// reporting the same stale credential cause one fetch, and all then
    /// [`get`](Self::get) the new value. Without a cache it asks the backend for the
    /// current revision. `NotFound` when the credential is gone.
    ///
    /// If the returned revision equals `seen`, the backend still holds the rejected
    /// value: the rejection has another cause (or rotation has not landed yet).
    pub async fn refresh(&self, id: &CredentialId, seen: Option<&Revision>) -> Result<Revision, StorageError> {
        match &self.cache {
            Some(cache) => cache.refresh(id, seen).await,
            None => self.provider.revision(id).await,
        }
    }

    /// Watches `id`: the returned [`CredentialWatch`] yields a
    /// [`Change`](crate::cache::Change) each time the credential changes or is deleted.
    /// One poller per id asks the backend for the revision every `poll_ms` (±10 %),
    /// however many watches exist; it stops when the last watch is dropped, or when this
    /// store is. Fails when the first read of the current state fails (joining a running
    /// poller reads nothing); later failed polls never end a watch: see [`CredentialWatch`].
    pub async fn watch(&self, id: &CredentialId) -> Result<CredentialWatch, StorageError> {
        let source = match &self.cache {
            Some(cache) => Source::Cache(cache.clone()),
            None => Source::Provider(self.provider.clone()),
        };
        self.watchers
            .watch(id, source, self.watch_poll, self.provider.provider_name())
            .await
    }

    /// Credentials polled for watches now (one poller each).
    pub fn watched(&self) -> usize {
        self.watchers.active()
    }

    /// Deletes `id`; deleting a missing credential succeeds.
    pub async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
        self.provider.delete(id).await
    }

    /// Ids matching `filter` (validated first), sorted.
    pub async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
        filter.validate()?;
        self.provider.list(filter).await
    }

    /// Whether `id` is stored.
    pub async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError> {
        self.provider.exists(id).await
    }

    /// Re-encrypts every stored credential that is not under the current key.
    /// Metadata (version, timestamps, tags) is kept: the value did not change.
    ///
    /// Safe beside live writers: each record is rewritten only if it is still at the
    /// revision read, so a concurrent `put` is never undone and a credential deleted
    /// meanwhile stays deleted. A record that cannot be read or decrypted is reported
    /// in [`RotationReport::failed`] and the rest are rotated; only a failing `list`
    /// fails the call. On a backend without
    /// [`conditional_store`](crate::Capabilities::conditional_store) a concurrent write
    /// between the read and the rewrite can be lost.
    pub async fn rotate_keys(&self) -> Result<RotationReport, StorageError> {
        let keyring = self.keyring();
        let mut report = RotationReport::default();
        for id in self.provider.list(&CredentialFilter::new()).await? {
            match self.rotate_one(&keyring, &id).await {
                Ok(Rotated::ReEncrypted) => report.re_encrypted += 1,
                Ok(Rotated::AlreadyCurrent) => report.already_current += 1,
                Ok(Rotated::Vanished) => report.vanished += 1,
                Err(e) => {
                    tracing::warn!(
                        provider = self.provider.provider_name(),
                        credential_id = id.as_str(),
                        error.kind = e.kind().as_str(),
                        error = %e,
                        "credential not rotated"
                    );
                    report.failed.push((id, e.kind()));
                }
            }
        }
        tracing::info!(
            provider = self.provider.provider_name(),
            re_encrypted = report.re_encrypted,
            already_current = report.already_current,
            vanished = report.vanished,
            failed = report.failed.len(),
            key_id = keyring.current().key_id(),
            "key rotation finished"
        );
        Ok(report)
    }

    async fn rotate_one(&self, keyring: &Keyring, id: &CredentialId) -> Result<Rotated, StorageError> {
        let conditional = self.provider.capabilities().conditional_store;
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            let stored = match self.provider.retrieve(id).await {
                Ok(stored) => stored,
                Err(e) if e.is_not_found() => return Ok(Rotated::Vanished),
                Err(e) => return Err(e),
            };
            if stored.data.key_id == keyring.current().key_id() {
                return Ok(Rotated::AlreadyCurrent);
            }
            let plain = keyring.decrypt(id, &stored.data)?;
            let sealed = keyring.encrypt(id, &plain)?;
            let precondition = if conditional {
                Precondition::Revision(stored.revision)
            } else {
                Precondition::Overwrite
            };
            match self
                .provider
                .store_if(id, &sealed, &stored.metadata, &precondition)
                .await
            {
                Ok(_) => return Ok(Rotated::ReEncrypted),
                Err(e) if e.is_conflict() && conditional => back_off(attempt).await,
                Err(e) => return Err(e),
            }
        }
        Err(StorageError::conflict(
            self.provider.provider_name(),
            id,
            format!("rotation lost the race to concurrent writers {MAX_WRITE_ATTEMPTS} times; run rotate_keys again"),
        ))
    }
}

/// A record read for a `get`.
enum Record {
    /// Shared with the cache's entry.
    Cached(CachedRecord),
    /// Returned by the provider.
    Owned(Stored),
}

impl Record {
    fn stored(&self) -> &Stored {
        match self {
            Record::Cached(record) => record.stored(),
            Record::Owned(stored) => stored,
        }
    }

    /// The metadata and revision (copied out of a cached record, moved out of another).
    fn into_metadata_and_revision(self) -> (CredentialMetadata, Revision) {
        match self {
            Record::Cached(record) => {
                let stored = record.stored();
                (stored.metadata.clone(), stored.revision.clone())
            }
            Record::Owned(stored) => (stored.metadata, stored.revision),
        }
    }
}

/// What rotation did to one credential.
enum Rotated {
    ReEncrypted,
    AlreadyCurrent,
    Vanished,
}

impl fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialStore")
            .field("provider", &self.provider.provider_name())
            .field("keyring", &self.keyring())
            .finish()
    }
}
