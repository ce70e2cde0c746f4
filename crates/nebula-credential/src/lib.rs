#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
pub mod migrate;
mod open;

pub use config::{BackendConfig, PROVIDERS, StorageConfig};
pub use open::{open, open_read_only, open_store, open_store_with_metrics, open_with_metrics};

/// The local encrypted-file backend (feature `storage-local`).
#[cfg(feature = "storage-local")]
#[cfg_attr(docsrs, doc(cfg(feature = "storage-local")))]
pub mod local {
    pub use nebula_credential_local::*;
}

/// The AWS Secrets Manager backend (feature `storage-aws`).
#[cfg(feature = "storage-aws")]
#[cfg_attr(docsrs, doc(cfg(feature = "storage-aws")))]
pub mod aws {
    pub use nebula_credential_aws::*;
}

/// The Kubernetes Secrets backend (feature `storage-kubernetes`).
#[cfg(feature = "storage-kubernetes")]
#[cfg_attr(docsrs, doc(cfg(feature = "storage-kubernetes")))]
pub mod kubernetes {
    pub use nebula_credential_kubernetes::*;
}

/// The HashiCorp Vault KV v2 backend (feature `storage-vault`).
#[cfg(feature = "storage-vault")]
#[cfg_attr(docsrs, doc(cfg(feature = "storage-vault")))]
pub mod vault {
    pub use nebula_credential_vault::*;
}

/// The Azure Key Vault backend (feature `storage-azure`).
#[cfg(feature = "storage-azure")]
#[cfg_attr(docsrs, doc(cfg(feature = "storage-azure")))]
pub mod azure {
    pub use nebula_credential_azure::*;
}

pub use nebula_credential_core::{
    BoxError, CacheEvent, CacheStats, Capabilities, ConfigError, CredentialFilter, CredentialId, CredentialMetadata,
    CredentialStore, CryptoError, EncryptedData, EncryptionKey, ErrorKind, Keyring, LatencyHistogram, MemoryConfig,
    MemoryProvider, MetricsSnapshot, Operation, OperationStats, Precondition, ProviderConfig, RecordEnvelope, Retried,
    RetryPolicy, Revision, RotationReport, StorageError, StorageMetrics, StorageProvider, Stored, Tags, Timeouts,
    Timestamp, ValidationError, async_trait, cache, layers, remote, secrecy,
};

/// The names most applications need: `use nebula_credential::prelude::*;`.
pub mod prelude {
    pub use crate::{
        CredentialFilter, CredentialId, CredentialMetadata, CredentialStore, EncryptionKey, Keyring, StorageConfig,
        StorageError, StorageMetrics, StorageProvider, Tags, open, open_store, open_with_metrics,
    };
    pub use nebula_credential_core::cache::{CacheConfig, Change, CredentialWatch, WatchEvent, WatchHealth};
    pub use nebula_credential_core::secrecy::{ExposeSecret, SecretString};
}
