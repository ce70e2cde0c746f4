//! [`CredentialStore`]: what applications call. Encrypts before any provider sees a value.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use secrecy::SecretSlice;

use crate::crypto::{EncryptionKey, Keyring};
use crate::error::StorageError;
use crate::filter::CredentialFilter;
use crate::id::CredentialId;
use crate::metadata::{CredentialMetadata, Tags, Timestamp, now};
use crate::provider::StorageProvider;

/// Outcome of [`CredentialStore::rotate_keys`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Credentials re-encrypted under the current key.
    pub re_encrypted: usize,
    /// Credentials already under the current key, left as they were.
    pub already_current: usize,
}

/// Stores and reads credentials through any [`StorageProvider`], encrypting values
/// with the current key of a [`Keyring`] (AES-256-GCM, id bound as associated data).
///
/// It manages `created_at`, `updated_at` and `version`: the first `put` creates
/// version 1, each later `put` of the same id keeps `created_at` and adds 1.
///
/// ```
/// use std::sync::Arc;
/// use nebula_credential_core::{CredentialStore, EncryptionKey, Keyring, MockStorageProvider, Tags};
/// use secrecy::ExposeSecret;
/// # tokio_test_block_on(async {
/// let store = CredentialStore::new(Arc::new(MockStorageProvider::new()), Keyring::new(EncryptionKey::generate()));
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
}

impl CredentialStore {
    /// A store over `provider` (usually the layered stack from `nebula_credential::open`).
    pub fn new(provider: Arc<dyn StorageProvider>, keyring: Keyring) -> Self {
        CredentialStore {
            provider,
            keyring: RwLock::new(Arc::new(keyring)),
        }
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
    /// [`rotate_keys`](Self::rotate_keys) to re-encrypt what is stored.
    pub fn add_current_key(&self, key: EncryptionKey) {
        let mut guard = self.keyring.write().unwrap_or_else(PoisonError::into_inner);
        let mut ring = Keyring::clone(&guard);
        ring.rotate_to(key);
        *guard = Arc::new(ring);
    }

    /// Encrypts and stores `secret` under `id` with `tags` (validated first).
    /// Returns the metadata written.
    pub async fn put(&self, id: &CredentialId, secret: &[u8], tags: Tags) -> Result<CredentialMetadata, StorageError> {
        self.put_expiring(id, secret, tags, None).await
    }

    /// Like [`put`](Self::put), with an expiry time recorded in the metadata.
    pub async fn put_expiring(
        &self,
        id: &CredentialId,
        secret: &[u8],
        tags: Tags,
        expires_at: Option<Timestamp>,
    ) -> Result<CredentialMetadata, StorageError> {
        let mut metadata = CredentialMetadata::new().with_tags(tags);
        if let Some(at) = expires_at {
            metadata = metadata.with_expiry(at);
        }
        metadata.validate()?;
        let data = self.keyring().encrypt(id, secret)?;
        match self.provider.retrieve(id).await {
            Ok((_, previous)) => {
                metadata.created_at = previous.created_at;
                metadata.version = previous.version.saturating_add(1);
                metadata.updated_at = now().max(previous.created_at);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        self.provider.store(id, data, metadata.clone()).await?;
        Ok(metadata)
    }

    /// The decrypted value of `id`.
    pub async fn get(&self, id: &CredentialId) -> Result<SecretSlice<u8>, StorageError> {
        Ok(self.get_with_metadata(id).await?.0)
    }

    /// The decrypted value of `id` and its metadata.
    pub async fn get_with_metadata(
        &self,
        id: &CredentialId,
    ) -> Result<(SecretSlice<u8>, CredentialMetadata), StorageError> {
        let (data, metadata) = self.provider.retrieve(id).await?;
        let plain = self.keyring().decrypt(id, &data)?;
        let secret = SecretSlice::new(Box::<[u8]>::from(plain.as_slice()));
        Ok((secret, metadata))
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
    /// A credential deleted meanwhile is skipped.
    pub async fn rotate_keys(&self) -> Result<RotationReport, StorageError> {
        let keyring = self.keyring();
        let mut report = RotationReport::default();
        for id in self.provider.list(&CredentialFilter::new()).await? {
            let (data, metadata) = match self.provider.retrieve(&id).await {
                Ok(found) => found,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            if data.key_id == keyring.current().key_id() {
                report.already_current += 1;
                continue;
            }
            let plain = keyring.decrypt(&id, &data)?;
            let sealed = keyring.encrypt(&id, &plain)?;
            self.provider.store(&id, sealed, metadata).await?;
            report.re_encrypted += 1;
        }
        tracing::info!(
            provider = self.provider.provider_name(),
            re_encrypted = report.re_encrypted,
            already_current = report.already_current,
            key_id = keyring.current().key_id(),
            "key rotation finished"
        );
        Ok(report)
    }
}

impl fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialStore")
            .field("provider", &self.provider.provider_name())
            .field("keyring", &self.keyring())
            .finish()
    }
}
