//! HashiCorp Vault KV v2 backend for nebula-credential (OpenBao works the same).
//!
//! Each credential is one KV v2 entry at `mount_path/path_prefix/<id>` (ids are ASCII
//! letters, digits, `_` and `-`; Vault paths are case-sensitive, so ids map unchanged).
//! The entry's data is the versioned JSON record (`{format_version, id, encrypted_data,
//! metadata}`), checked against `max_payload_bytes` before any request. Its
//! `custom_metadata` carries the shared `remote::TagScheme` tags: the managed-by marker
//! `nebula-credential:managed = true`, the id (`nebula-credential:id`, so a copy under
//! another key is not taken for that credential), the creation time, the credential's
//! tags (values over 128 characters as a `sha256:` digest), so `list` filters on metadata
//! and never reads values. `custom_metadata` keys other tools add survive our writes. An
//! entry under our prefix without the marker, or holding another id, is never listed,
//! read, overwritten or deleted: every operation reports `Conflict` naming it.
//!
//! Revisions are KV versions with their creation time (`2@2026-…Z`; versions restart at 1
//! after a `destroy` delete, creation times do not): `retrieve` reports the version read,
//! and a conditional store checks the time and writes with `cas` set to the version
//! (`cas = 0` for create-if-absent), which Vault checks atomically. A plain store uses
//! `cas` too, with the version it just saw, so an entry deleted or replaced meanwhile is
//! never written over.
//!
//! | operation | calls | policy capabilities |
//! |---|---|---|
//! | `store` | `GET metadata/…`, `POST metadata/…` (new entry, or changed tags), `POST data/…` with `cas` | `read` on `metadata/…`; `create`/`update` on `data/…` and `metadata/…` |
//! | `retrieve` | `GET data/…` (value and `custom_metadata` in one call) | `read` on `data/…` |
//! | `exists` | `GET metadata/…` (never the value) | `read` on `metadata/…` |
//! | `delete` | `GET metadata/…`, then `DELETE metadata/…` (`destroy`) or `DELETE data/…` (`soft`) | `read` and `delete` on `metadata/…` or `data/…` |
//! | `list` | `LIST metadata/<prefix>`, then `GET metadata/…` per entry, `list_concurrency` at once | `list` and `read` on `metadata/…` |
//! | `check` | `LIST metadata/<prefix>` | `list` on `metadata/…` |
//!
//! The token: a background task looks it up every `renewal_check_interval_secs`; below
//! `token_renewal_threshold_secs` it calls `renew-self`; when the token is not
//! renewable, renewal is refused, its max TTL caps it below the threshold, or it expired,
//! AppRole logs in again (token auth counts a failure and logs what to do). An operation
//! that meets a 403 asks `lookup-self` whether the token itself is refused: then AppRole
//! logs in again once and retries, token auth reports `AuthenticationFailed`; otherwise
//! it is `PermissionDenied` naming the path and capability. See `errors.rs` for the
//! whole error table.

mod auth;
mod config;
mod errors;
mod provider;

pub use auth::TokenStats;
pub use config::{
    DEFAULT_MAX_PAYLOAD_BYTES, DeleteMode, MAX_CHECK_INTERVAL_SECS, MAX_PAYLOAD_BYTES_LIMIT,
    MAX_RENEWAL_THRESHOLD_SECS, VaultAuth, VaultConfig,
};
pub use provider::{HashiCorpVaultProvider, SHUTDOWN_GRACE};

/// The provider name in errors, logs and metrics.
const PROVIDER: &str = "vault";
