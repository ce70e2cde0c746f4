//! The [`StorageProvider`] trait every backend implements.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::data::EncryptedData;
use crate::error::StorageError;
use crate::filter::CredentialFilter;
use crate::id::CredentialId;
use crate::metadata::CredentialMetadata;

/// What a backend can hold; callers and the conformance suite check it instead of guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderLimits {
    /// Largest serialized record ([`StoredRecord`](crate::StoredRecord) JSON) the
    /// backend accepts, in bytes. Larger stores fail with [`StorageError::TooLarge`].
    pub max_payload_bytes: usize,
}

impl ProviderLimits {
    /// Limits with the given maximum payload size.
    pub const fn new(max_payload_bytes: usize) -> Self {
        ProviderLimits { max_payload_bytes }
    }
}

/// Persists encrypted credentials. One implementation per backend.
///
/// # Contract
/// - Providers persist what they are given, verbatim: every byte of [`EncryptedData`]
///   and every field of [`CredentialMetadata`] comes back unchanged.
/// - `store` is an atomic upsert: a reader sees the old record or the new one, never a mix.
/// - `retrieve` of a missing id is [`StorageError::NotFound`]; `delete` of a missing id is `Ok`.
/// - `list` returns only this provider's credentials (its prefix, directory or
///   namespace), sorted, never foreign secrets that share the account.
/// - `exists` does not fetch the value where the backend allows.
/// - A record larger than [`limits`](Self::limits) gives [`StorageError::TooLarge`]
///   before any network call.
///
/// Retry, timeouts, metrics and tracing are layers ([`crate::layers`]), not provider code.
#[async_trait]
pub trait StorageProvider: Send + Sync + Debug {
    /// A short, stable name (`"local"`, `"aws"`, …) used in errors, logs and metrics.
    fn provider_name(&self) -> &'static str;

    /// What this backend can hold.
    fn limits(&self) -> ProviderLimits;

    /// Stores (creates or replaces) the credential `id`.
    async fn store(
        &self,
        id: &CredentialId,
        data: EncryptedData,
        metadata: CredentialMetadata,
    ) -> Result<(), StorageError>;

    /// Returns the stored data and metadata of `id`.
    async fn retrieve(&self, id: &CredentialId) -> Result<(EncryptedData, CredentialMetadata), StorageError>;

    /// Removes `id`. Idempotent: deleting a missing credential succeeds.
    async fn delete(&self, id: &CredentialId) -> Result<(), StorageError>;

    /// Ids of this provider's credentials that match `filter`, sorted ascending.
    async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError>;

    /// Whether `id` is stored.
    async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError>;
}

/// Forwards every method through a smart pointer, so `Arc<dyn StorageProvider>` and
/// `Box<dyn StorageProvider>` can be wrapped in layers and passed where a provider is expected.
macro_rules! forward_through_pointer {
    ($($ptr:ident),*) => {$(
        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<P: StorageProvider + ?Sized> StorageProvider for $ptr<P> {
            fn provider_name(&self) -> &'static str {
                (**self).provider_name()
            }

            fn limits(&self) -> ProviderLimits {
                (**self).limits()
            }

            async fn store(
                &self,
                id: &CredentialId,
                data: EncryptedData,
                metadata: CredentialMetadata,
            ) -> Result<(), StorageError> {
                (**self).store(id, data, metadata).await
            }

            async fn retrieve(
                &self,
                id: &CredentialId,
            ) -> Result<(EncryptedData, CredentialMetadata), StorageError> {
                (**self).retrieve(id).await
            }

            async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
                (**self).delete(id).await
            }

            async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
                (**self).list(filter).await
            }

            async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError> {
                (**self).exists(id).await
            }
        }
    )*};
}

forward_through_pointer!(Arc, Box);
