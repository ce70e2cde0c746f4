#![doc = include_str!("../README.md")]

mod challenge;
mod cloud;
mod config;
mod entra;
mod errors;
mod naming;
#[cfg(test)]
mod props;
mod provider;
mod tags;

pub use azure_core::credentials::TokenCredential;
pub use config::{AzureCredential, AzureKeyVaultConfig, CustomCredential, DeleteMode, KNOWN_VAULT_DOMAINS};
pub use naming::{MAX_NAME_LEN, MAX_PREFIX_LEN};
pub use provider::{AzureKeyVaultProvider, CONTENT_TYPE, MAX_SECRET_BYTES, TOMBSTONE_CONTENT_TYPE};
pub use tags::{ID_TAG, MAX_AZURE_TAGS, MAX_DEFAULT_TAGS, RESERVED_TAGS};

/// The provider name in errors, logs and metrics.
const PROVIDER: &str = "azure";
