//! Store and retrieve application credentials — API keys, OAuth tokens, passwords —
//! through one async interface with interchangeable backends.
//!
//! Pick a backend with one configuration line, [`open`] it (validation, then the
//! standard layers: tracing, metrics, retry, timeouts), and use it through a
//! [`CredentialStore`], which encrypts every value with AES-256-GCM before the
//! backend sees it.
//!
//! ```
//! use std::sync::Arc;
//! use nebula_credential::prelude::*;
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let config: StorageConfig = toml::from_str(r#"provider = "memory""#)?;
//! let store = CredentialStore::new(open(&config).await?, Keyring::new(EncryptionKey::generate()));
//!
//! let id: CredentialId = "github_token".parse()?;
//! store.put(&id, b"ghp_example", Tags::from([("env".into(), "prod".into())])).await?;
//! let secret = store.get(&id).await?;
//! assert_eq!(secret.expose_secret(), b"ghp_example");
//! assert_eq!(store.list(&CredentialFilter::new().tag("env", "prod")).await?, vec![id]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Features
//! Each backend is a cargo feature and a crate of its own; depend only on what you use.
//!
//! | feature | backend | `provider =` |
//! |---|---|---|
//! | (always) | in memory | `"memory"` |
//! | `storage-local` (default) | encrypted local files | `"local"` |
//! | `storage-aws` | AWS Secrets Manager | `"aws"` |
//! | `storage-kubernetes` | Kubernetes Secrets | `"kubernetes"` |
//! | `storage-vault` | HashiCorp Vault / OpenBao KV v2 | `"vault"` |
//! | `storage-azure` | Azure Key Vault | `"azure"` |
//! | `storage-all` | every backend above | |
//!
//! # Migrating between backends
//! [`migrate::migrate`] copies stored records verbatim from one provider to another
//! (the engine behind `nebula-cred migrate`), safe to run again after an interruption.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
pub mod migrate;
mod open;

pub use config::{PROVIDERS, StorageConfig};
pub use open::{open, open_with_metrics};

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
    BoxError, Capabilities, ConfigError, CredentialFilter, CredentialId, CredentialMetadata, CredentialStore,
    CryptoError, EncryptedData, EncryptionKey, ErrorKind, Keyring, MemoryConfig, MemoryProvider, MetricsSnapshot,
    Operation, OperationStats, Precondition, ProviderConfig, RecordEnvelope, Retried, RetryPolicy, Revision,
    RotationReport, StorageError, StorageMetrics, StorageProvider, Stored, Tags, Timeouts, Timestamp, ValidationError,
    async_trait, layers, remote, secrecy,
};

/// The names most applications need: `use nebula_credential::prelude::*;`.
pub mod prelude {
    pub use crate::{
        CredentialFilter, CredentialId, CredentialMetadata, CredentialStore, EncryptionKey, Keyring, StorageConfig,
        StorageError, StorageMetrics, StorageProvider, Tags, open, open_with_metrics,
    };
    pub use nebula_credential_core::secrecy::{ExposeSecret, SecretString};
}
