#![doc = include_str!("../README.md")]

pub mod cache;
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
pub use metrics::{
    CacheEvent, CacheStats, CallOutcome, LatencyHistogram, MetricsSnapshot, OperationStats, StorageMetrics,
};
pub use operation::Operation;
pub use provider::{Capabilities, Precondition, ProviderConfig, Revision, StorageProvider, Stored};
pub use record::RecordEnvelope;
pub use retry::RetryPolicy;
pub use store::{CredentialStore, RotationReport};

pub use async_trait::async_trait;
pub use secrecy;
