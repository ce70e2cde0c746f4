//! The contract of nebula-credential: types, the [`StorageProvider`] trait, errors,
//! configuration, retry policy, layers, metrics, crypto, the [`CredentialStore`] facade,
//! the in-memory [`MemoryProvider`], the rules remote backends share
//! ([`remote`]), and (feature `conformance`) the conformance suite every backend runs.
//!
//! Applications usually depend on the umbrella crate `nebula-credential`; backend
//! crates depend on this one only.
//!
//! ```
//! use std::sync::Arc;
//! use nebula_credential_core::{layers, CredentialFilter, CredentialStore, EncryptionKey, Keyring,
//!     MemoryProvider, RetryPolicy, StorageMetrics, Tags, Timeouts};
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let metrics = Arc::new(StorageMetrics::new());
//! let provider = layers::standard(MemoryProvider::new(), RetryPolicy::default(), Timeouts::default(), metrics.clone())?;
//! let store = CredentialStore::new(Arc::new(provider), Keyring::new(EncryptionKey::generate()));
//! let id = "stripe_api_key".parse()?;
//! let tags = Tags::from([("env".to_string(), "prod".to_string())]);
//! store.put(&id, b"sk_live_example", tags).await?;
//! assert_eq!(store.list(&CredentialFilter::new().tag("env", "prod")).await?, vec![id]);
//! assert_eq!(metrics.snapshot().store.count, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod config;
mod crypto;
mod data;
mod error;
mod filter;
mod id;
pub mod layers;
mod memory;
mod metadata;
mod metrics;
mod operation;
mod provider;
mod record;
pub mod remote;
mod retry;
mod store;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use config::{ConfigError, Timeouts};
pub use crypto::{CryptoError, EncryptionKey, KEY_LEN, Keyring, MIN_SALT_LEN};
pub use data::{EncryptedData, NONCE_LEN};
pub use error::{BoxError, ErrorKind, Retried, StorageError};
pub use filter::{CredentialFilter, FilterTarget};
pub use id::{CredentialId, MAX_ID_LEN, ValidationError};
pub use memory::{MEMORY_MAX_PAYLOAD_BYTES, MemoryConfig, MemoryProvider};
pub use metadata::{
    CredentialMetadata, MAX_TAG_KEY_LEN, MAX_TAG_VALUE_LEN, MAX_TAGS, Tags, Timestamp, now, validate_tags,
};
pub use metrics::{CallOutcome, MetricsSnapshot, OperationStats, StorageMetrics};
pub use operation::Operation;
pub use provider::{Capabilities, Precondition, ProviderConfig, Revision, StorageProvider, Stored};
pub use record::RecordEnvelope;
pub use retry::RetryPolicy;
pub use store::{CredentialStore, RotationReport};

pub use async_trait::async_trait;
pub use secrecy;
