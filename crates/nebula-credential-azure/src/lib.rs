//! Azure Key Vault backend for nebula-credential.
//!
//! Each credential is one Key Vault secret. Its value is the versioned JSON record
//! (`{format_version, id, encrypted_data, metadata}`) with the content type
//! [`CONTENT_TYPE`], checked against Key Vault's 25 KB limit before any request. Its name
//! is `secret_prefix` (lowercase, starting with a letter: Key Vault folds the case of names,
//! so a prefix with capitals is refused) + the id escaped into Key Vault's case-insensitive
//! `[0-9a-z-]`
//! (`github_token` → `github--token`, `Api-Key` → `-api-0-key`; ids too long for the
//! room left end in a SHA-256 digest), so `Key`, `key` and `KEY` are three secrets. Its
//! tags (the shared `remote::TagScheme`) carry the credential's tags, the default tags, a
//! managed-by marker, the creation time, the keys we own (credential and default tags, so a
//! default tag dropped from the configuration is removed by the next store) and the
//! original id: at most
//! 15. `list` pages over the vault's secret properties and keeps only ours (marker, and a
//! name that is exactly the one we give the id in the id tag), filtering by tags and
//! creation time without reading values. A secret under one of our names without the
//! marker is never read as ours, overwritten, deleted, recovered or purged: every
//! operation reports `Conflict` naming it. Tags other tools put on the current version
//! are carried over to the versions we write.
//!
//! Key Vault has no conditional writes: conditional stores answer `Unsupported` and the
//! last writer wins. `delete` soft-deletes (`DeleteMode::Soft`), or soft-deletes and purges
//! (`DeleteMode::Purge`); in soft mode (and on a vault with purge protection) it first
//! makes our current version a *tombstone*: an update of that version by its id (content
//! type [`TOMBSTONE_CONTENT_TYPE`], the marker and id tags, other tools' tags; the value
//! stays), so a secret another tool wrote since our read stays current and is never buried
//! under the tombstone. A
//! secret whose current version is a tombstone reads as absent, so when storing a deleted
//! id again recovers our deleted secret (waiting out deletes and recoveries in progress
//! with bounded backoff), or Azure's own recover brings it back, readers see "not found",
//! never the deleted record. (A secret of ours deleted without a tombstone — by an earlier
//! release, or by hand — comes back as it was until the store's write lands, which it
//! tries every 100 ms once such a recover has started.) The DELETE's answer names what it deleted: another tool's
//! secret that replaced ours in between is recovered at once and reported as `Conflict`
//! (which says when that recover failed and the secret is left soft-deleted); a record of
//! ours that a concurrent store set after our tombstone is recovered, and the tombstone
//! and delete are repeated, so the deleted version is always a tombstone.
//! On a vault with purge protection (a `recoveryLevel` without `Purgeable`), purge mode
//! stops after the soft delete with an error saying so, a store recovers instead of
//! purging, and `check()` refuses the combination.
//!
//! **Earlier versions stay in the vault.** Key Vault keeps every version of a secret, and
//! this provider neither disables nor deletes superseded ones: after an overwrite, after
//! `rotate_keys` (records under the old key) and after delete-then-store (the record in
//! the tombstone), earlier ciphertexts stay readable *by version id* to anyone with
//! `getSecret` on the vault; they are encrypted, but under keys you may have retired.
//! Reads of this provider only ever see the current version. To remove old versions, purge
//! the secret (purge mode) or disable them (`az keyvault secret set-attributes --version …
//! --enabled false`).
//!
//! | operation | calls | built-in role |
//! |---|---|---|
//! | `store` | get secret, set secret (+ get deleted, recover or purge after a delete) | Key Vault Secrets Officer |
//! | `retrieve` | get secret (latest version; the versions only when it is disabled, to tell a tombstone) | Key Vault Secrets User |
//! | `exists` | get secret (latest version, one request; the value is dropped); the versions (at most 40 pages) only when the get is refused for a metadata-only role or a disabled version | Key Vault Secrets User |
//! | `delete` | get secret, update it to a tombstone (soft mode), delete (also when the get finds none: a recover may be in progress; + get deleted and purge in purge mode; + recover if the delete hit another tool's secret) | Key Vault Secrets Officer |
//! | `list` | list secret properties, paged (tombstones skipped) | Key Vault Secrets User |
//! | `check` | get of a name no id gets (404 proves the read permission), one page of one secret's properties | Key Vault Secrets User |
//!
//! ```
//! use nebula_credential_azure::{AzureKeyVaultConfig, AzureKeyVaultProvider, DeleteMode};
//! use nebula_credential_core::{ProviderConfig, StorageProvider};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let config = AzureKeyVaultConfig {
//!     delete_mode: DeleteMode::Purge,
//!     ..AzureKeyVaultConfig::new("https://myapp-prod.vault.azure.net")
//! };
//! config.validate()?; // names the field and rule; no request
//! let provider = AzureKeyVaultProvider::new(config).await?; // the managed identity; still no request
//! assert_eq!(provider.secret_name(&"github_token".parse()?), "nebula-github--token");
//! assert_eq!(provider.secret_name(&"API_KEY".parse()?), "nebula--a-p-i---k-e-y");
//! assert!(!provider.capabilities().conditional_store);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! The SDK's own retries are off (the `Retry` layer alone retries, also when Entra ID is
//! unreachable or answers 5xx/429: `Unavailable`/`Throttled`, found in the credential
//! error's source chain); its bearer policy answers the service's authentication
//! challenge and caches and refreshes tokens. The challenge's resource must cover the
//! vault's host (else a `Config` error on `endpoint`: no token is sent). The HTTP client
//! is https-only and follows no redirect. A service principal or workload identity gets
//! its tokens from the Entra ID authority of the vault's cloud. Errors map by HTTP status
//! and error code in one table (`errors.rs`), never by message text.

mod challenge;
mod cloud;
mod config;
mod entra;
mod errors;
mod naming;
mod provider;
mod tags;

pub use azure_core::credentials::TokenCredential;
pub use config::{AzureCredential, AzureKeyVaultConfig, CustomCredential, DeleteMode, KNOWN_VAULT_DOMAINS};
pub use naming::{MAX_NAME_LEN, MAX_PREFIX_LEN};
pub use provider::{AzureKeyVaultProvider, CONTENT_TYPE, MAX_SECRET_BYTES, TOMBSTONE_CONTENT_TYPE};
pub use tags::{ID_TAG, MAX_AZURE_TAGS, MAX_DEFAULT_TAGS, RESERVED_TAGS};

/// The provider name in errors, logs and metrics.
const PROVIDER: &str = "azure";
