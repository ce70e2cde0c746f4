//! The [`StorageProvider`] trait every backend implements, the values it exchanges
//! ([`Capabilities`], [`Revision`], [`Precondition`] and [`Stored`]), and the
//! [`ProviderConfig`] trait that builds one.

use std::fmt::{self, Debug};
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{ConfigError, Timeouts};
use crate::data::EncryptedData;
use crate::error::StorageError;
use crate::filter::CredentialFilter;
use crate::id::CredentialId;
use crate::metadata::{CredentialMetadata, MAX_TAGS};
use crate::retry::RetryPolicy;

/// What a backend can do; the facade, the layers and the conformance suite consult it
/// instead of guessing (compare OpenDAL's `Capability`).
///
/// ```
/// use nebula_credential_core::Capabilities;
/// let caps = Capabilities::new(65_536).with_conditional_store().with_soft_delete();
/// assert!(caps.conditional_store && !caps.server_side_tag_filter);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Largest serialized record ([`RecordEnvelope`](crate::RecordEnvelope) JSON) the
    /// backend accepts, in bytes. Larger stores fail with [`StorageError::TooLarge`].
    pub max_payload_bytes: usize,
    /// Most credential tags a record may carry (never above the core's [`MAX_TAGS`]).
    pub max_tags: usize,
    /// [`StorageProvider::store_if`] checks its precondition atomically on the backend.
    /// Without it a conditional store is refused with [`StorageError::Unsupported`] and
    /// [`CredentialStore`](crate::CredentialStore) falls back to last-writer-wins.
    pub conditional_store: bool,
    /// `delete` keeps a recoverable copy on the backend (recovery window, soft delete).
    pub soft_delete: bool,
    /// `list` filters by tag on the server (and re-checks exactly on the client).
    pub server_side_tag_filter: bool,
}

impl Capabilities {
    /// A backend holding records up to `max_payload_bytes`, with [`MAX_TAGS`] tags and
    /// none of the optional capabilities.
    pub const fn new(max_payload_bytes: usize) -> Self {
        Capabilities {
            max_payload_bytes,
            max_tags: MAX_TAGS,
            conditional_store: false,
            soft_delete: false,
            server_side_tag_filter: false,
        }
    }

    /// Declares atomic conditional stores.
    pub const fn with_conditional_store(mut self) -> Self {
        self.conditional_store = true;
        self
    }

    /// Declares recoverable deletes.
    pub const fn with_soft_delete(mut self) -> Self {
        self.soft_delete = true;
        self
    }

    /// Declares server-side tag filtering.
    pub const fn with_server_side_tag_filter(mut self) -> Self {
        self.server_side_tag_filter = true;
        self
    }
}

/// An opaque token naming one stored state of a record, as reported by
/// [`StorageProvider::retrieve`] and [`StorageProvider::store_if`]. Every store gives a
/// new one; the backend can compare it atomically (a KV version for Vault `cas`, a
/// `resourceVersion`, a version id, a content digest under a lock).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Revision(Arc<str>);

impl Revision {
    /// A revision from the backend's own token.
    pub fn new(token: impl AsRef<str>) -> Self {
        Revision(Arc::from(token.as_ref()))
    }

    /// The backend's token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Debug for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Revision({})", self.0)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// When a [`StorageProvider::store_if`] may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// Always: last writer wins.
    Overwrite,
    /// Only if the credential does not exist.
    Absent,
    /// Only if the credential still is at this revision.
    Revision(Revision),
}

impl Precondition {
    /// `true` unless [`Precondition::Overwrite`].
    pub fn is_conditional(&self) -> bool {
        !matches!(self, Precondition::Overwrite)
    }

    /// Whether a record now at `current` (`None` = absent) satisfies the precondition.
    /// Backends that compare under a lock call this.
    pub fn holds(&self, current: Option<&Revision>) -> bool {
        match self {
            Precondition::Overwrite => true,
            Precondition::Absent => current.is_none(),
            Precondition::Revision(expected) => current == Some(expected),
        }
    }

    /// The `Conflict` a backend returns when the precondition does not hold for `id`.
    pub fn conflict(&self, provider: &'static str, id: &CredentialId) -> StorageError {
        let what = match self {
            Precondition::Absent => "it was expected not to exist but does",
            _ => "it changed since it was read",
        };
        StorageError::conflict(
            provider,
            id,
            format!("{what}; re-read it and try again (another writer got there first)"),
        )
    }
}

/// A record as read back: the encrypted value, its metadata and its [`Revision`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The encrypted value.
    pub data: EncryptedData,
    /// The metadata.
    pub metadata: CredentialMetadata,
    /// The state read, for a later [`Precondition::Revision`].
    pub revision: Revision,
}

impl Stored {
    /// Data and metadata, without the revision.
    pub fn into_parts(self) -> (EncryptedData, CredentialMetadata) {
        (self.data, self.metadata)
    }
}

/// Persists encrypted credentials. One implementation per backend.
///
/// # Contract
/// - Providers persist what they are given, verbatim: every byte of [`EncryptedData`]
///   and every field of [`CredentialMetadata`] comes back unchanged.
/// - A store is atomic: a reader sees the old record or the new one, never a mix. Each
///   store yields a new [`Revision`]; `retrieve` reports the current one.
/// - [`store_if`](Self::store_if) writes only when its [`Precondition`] holds, checked
///   atomically on the backend, else [`StorageError::Conflict`]. A backend that cannot
///   check atomically says so in [`Capabilities::conditional_store`] and refuses
///   conditional stores with [`StorageError::Unsupported`].
/// - `retrieve` of a missing id is [`StorageError::NotFound`]; `delete` of a missing id is `Ok`.
/// - `list` returns only this provider's credentials (its prefix, directory, namespace
///   and managed-by marker), sorted, never foreign objects that share the account.
/// - An object under one of our names that lacks our managed-by marker is never read
///   as ours, overwritten or deleted: those operations fail with `Conflict` naming it.
/// - `exists` does not fetch the value where the backend allows.
/// - A record larger than [`Capabilities::max_payload_bytes`] gives
///   [`StorageError::TooLarge`] before any network call.
///
/// Retry, timeouts, metrics and tracing are layers ([`crate::layers`]), not provider code.
#[async_trait]
pub trait StorageProvider: Send + Sync + Debug {
    /// A short, stable name (`"local"`, `"aws"`, …) used in errors, logs and metrics.
    fn provider_name(&self) -> &'static str;

    /// What this backend can do and hold.
    fn capabilities(&self) -> Capabilities;

    /// Stores (creates or replaces) the credential `id` if `precondition` holds.
    /// Returns the new revision.
    async fn store_if(
        &self,
        id: &CredentialId,
        data: &EncryptedData,
        metadata: &CredentialMetadata,
        precondition: &Precondition,
    ) -> Result<Revision, StorageError>;

    /// Stores (creates or replaces) the credential `id`: last writer wins.
    async fn store(
        &self,
        id: &CredentialId,
        data: &EncryptedData,
        metadata: &CredentialMetadata,
    ) -> Result<Revision, StorageError> {
        self.store_if(id, data, metadata, &Precondition::Overwrite).await
    }

    /// Returns the stored data, metadata and revision of `id`.
    async fn retrieve(&self, id: &CredentialId) -> Result<Stored, StorageError>;

    /// Removes `id`. Idempotent: deleting a missing credential succeeds.
    async fn delete(&self, id: &CredentialId) -> Result<(), StorageError>;

    /// Ids of this provider's credentials that match `filter`, sorted ascending.
    async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError>;

    /// Whether `id` is stored.
    async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError>;

    /// The current [`Revision`] of `id`, equal to the one [`retrieve`](Self::retrieve)
    /// would report; [`StorageError::NotFound`] when absent. Caches revalidate with it, so
    /// backends answer it without fetching the value where the service allows (a
    /// metadata-only request); the default retrieves the record and keeps its revision.
    async fn revision(&self, id: &CredentialId) -> Result<Revision, StorageError> {
        self.retrieve(id).await.map(|stored| stored.revision)
    }

    /// Proves the connection, the credentials and the read permission with one cheap
    /// request (by default a `list` of everything; backends override it with cheaper).
    async fn check(&self) -> Result<(), StorageError> {
        self.list(&CredentialFilter::new()).await.map(drop)
    }
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

            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }

            async fn store_if(
                &self,
                id: &CredentialId,
                data: &EncryptedData,
                metadata: &CredentialMetadata,
                precondition: &Precondition,
            ) -> Result<Revision, StorageError> {
                (**self).store_if(id, data, metadata, precondition).await
            }

            async fn store(
                &self,
                id: &CredentialId,
                data: &EncryptedData,
                metadata: &CredentialMetadata,
            ) -> Result<Revision, StorageError> {
                (**self).store(id, data, metadata).await
            }

            async fn retrieve(&self, id: &CredentialId) -> Result<Stored, StorageError> {
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

            async fn revision(&self, id: &CredentialId) -> Result<Revision, StorageError> {
                (**self).revision(id).await
            }

            async fn check(&self) -> Result<(), StorageError> {
                (**self).check().await
            }
        }
    )*};
}

forward_through_pointer!(Arc, Box);

/// A provider's configuration: plain data that validates itself before any I/O, says
/// how its layers behave, and builds its backend. The umbrella crate's `StorageConfig`
/// and `open()` need nothing else from a backend.
#[async_trait]
pub trait ProviderConfig: Send + Sync {
    /// The provider this configures (`"local"`, `"aws"`, …).
    fn provider_name(&self) -> &'static str;

    /// Checks every field against the backend's rules; the error names the field.
    fn validate(&self) -> Result<(), ConfigError>;

    /// The retry policy of this backend's [`Retry`](crate::layers::Retry) layer.
    fn retry(&self) -> &RetryPolicy;

    /// The deadlines of this backend's [`Timeout`](crate::layers::Timeout) layer.
    fn timeouts(&self) -> &Timeouts;

    /// The configuration from the backend's usual environment variables (documented
    /// on each implementation).
    fn from_env() -> Result<Self, ConfigError>
    where
        Self: Sized;

    /// Validates, then builds the bare backend (no layers). Does no network I/O beyond
    /// what building a client needs; use [`StorageProvider::check`] to prove a connection.
    async fn build(&self) -> Result<Box<dyn StorageProvider>, StorageError>;

    /// Like [`build`](Self::build), for a caller that only reads (listing, auditing,
    /// backing up, migrating from): a backend that would otherwise create or probe
    /// something on open does not, so a store that can be read but not written opens.
    /// Writes through the result may fail with
    /// [`PermissionDenied`](crate::ErrorKind::PermissionDenied). The default builds
    /// the same backend as `build`, for backends whose open writes nothing.
    async fn build_read_only(&self) -> Result<Box<dyn StorageProvider>, StorageError> {
        self.build().await
    }
}
