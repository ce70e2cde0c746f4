//! Azure Key Vault backend for nebula-credential.
//!
//! Each credential is one Key Vault secret. Its value is the versioned JSON record
//! (`{format_version, id, encrypted_data, metadata}`) with the content type
//! [`CONTENT_TYPE`], checked against Key Vault's 25 KB limit before any request. Its name
//! is `secret_prefix` + the id escaped into Key Vault's case-insensitive `[0-9a-z-]`
//! (`github_token` → `github--token`, `Api-Key` → `-api-0-key`; ids too long for the
//! room left end in a SHA-256 digest), so `Key`, `key` and `KEY` are three secrets. Its
//! tags (the shared `remote::TagScheme`) carry the credential's tags, the default tags, a
//! managed-by marker, the creation time, the keys we own and the original id: at most
//! 15. `list` pages over the vault's secret properties and keeps only ours (marker, and a
//! name that is exactly the one we give the id in the id tag), filtering by tags and
//! creation time without reading values. A secret under one of our names without the
//! marker is never read as ours, overwritten, deleted, recovered or purged: every
//! operation reports `Conflict` naming it. Tags other tools put on the current version
//! are carried over to the versions we write.
//!
//! Key Vault has no conditional writes: conditional stores answer `Unsupported` and the
//! last writer wins. `delete` is the service's soft delete (`DeleteMode::Soft`) or a soft
//! delete followed by a purge (`DeleteMode::Purge`); storing a deleted id again recovers
//! (or purges) our deleted secret first, waiting out deletes and recoveries in progress
//! with bounded backoff.
//!
//! | operation | calls | built-in role |
//! |---|---|---|
//! | `store` | get secret, set secret (+ get deleted, recover or purge after a delete) | Key Vault Secrets Officer |
//! | `retrieve` | get secret (latest version) | Key Vault Secrets User |
//! | `exists` | every page of the secret's versions (never reads the value) | Key Vault Secrets User |
//! | `delete` | get secret, delete (also when the get finds none: a recover may be in progress; + get deleted and purge in purge mode) | Key Vault Secrets Officer |
//! | `list` | list secret properties, paged | Key Vault Secrets User |
//! | `check` | one page of one secret's properties | Key Vault Secrets User |
//!
//! ```
//! use nebula_credential_azure::{AzureKeyVaultConfig, AzureKeyVaultProvider, DeleteMode};
//! use nebula_credential_core::{ProviderConfig, StorageProvider};
//! let config = AzureKeyVaultConfig {
//!     delete_mode: DeleteMode::Purge,
//!     ..AzureKeyVaultConfig::new("https://myapp-prod.vault.azure.net")
//! };
//! config.validate()?; // names the field and rule; no request
//! let provider = AzureKeyVaultProvider::new(config)?; // the managed identity; still no request
//! assert_eq!(provider.secret_name(&"github_token".parse()?), "nebula-github--token");
//! assert_eq!(provider.secret_name(&"API_KEY".parse()?), "nebula--a-p-i---k-e-y");
//! assert!(!provider.capabilities().conditional_store);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The SDK's own retries are off (the `Retry` layer alone retries); its bearer policy
//! answers the service's authentication challenge, verifies the challenge's resource
//! against the vault's host, and caches and refreshes tokens. Errors map by HTTP status
//! and error code in one table (`errors.rs`), never by message text.

mod config;
mod errors;
mod naming;
mod provider;
mod tags;

pub use azure_core::credentials::TokenCredential;
pub use config::{AzureCredential, AzureKeyVaultConfig, CustomCredential, DeleteMode, KNOWN_VAULT_DOMAINS};
pub use naming::{MAX_NAME_LEN, MAX_PREFIX_LEN};
pub use provider::{AzureKeyVaultProvider, CONTENT_TYPE, MAX_SECRET_BYTES};
pub use tags::{ID_TAG, MAX_AZURE_TAGS, MAX_DEFAULT_TAGS, RESERVED_TAGS};

/// The provider name in errors, logs and metrics.
const PROVIDER: &str = "azure";
