//! HashiCorp Vault KV v2 backend for nebula-credential (OpenBao works the same).
//!
//! Each credential is one KV v2 entry at `mount_path/secret_prefix/<id>` (ids are ASCII
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
//! after a `purge` delete, creation times do not): `retrieve` reports the version read,
//! and a conditional store checks the time and writes with `cas` set to the version
//! (`cas = 0` for create-if-absent), which Vault checks atomically. A plain store uses
//! `cas` too, with the version it just saw, so an entry deleted or replaced meanwhile is
//! never written over. A conditional store whose earlier attempt landed (retried after a
//! lost answer) finds its own record as the current version and succeeds with that
//! revision instead of reporting `Conflict`.
//!
//! A version is live while its `deletion_time` is empty or in the future: a mount's or
//! key's `delete_version_after` gives every version a future one, and such entries are
//! read, listed, overwritten and deleted like any other (the comparison uses this
//! machine's clock; a `deletion_time` within 5 s of it is settled by reading the
//! version, so Vault's clock decides).
//!
//! Tags land in a second request after the value, so `custom_metadata` also records
//! `nebula-credential:revision`, the revision of the version the tags were written for.
//! Tags whose revision is not the current one (that request was lost, or a concurrent
//! writer's landed later) are not trusted: `list` filters on the record itself and
//! repairs the tags, as does `retrieve` and the next store. A store whose value landed
//! but whose tag request failed succeeds (logging a warning that names the missing
//! capability, `update` on `metadata/…`). A new entry is first marked with the
//! managed-by marker and the id only, so a create that loses a race leaves no tags on
//! the winner; when the winner is not a record of ours (another tool created the entry
//! meanwhile) the marker comes off again and the store is a `Conflict`. Tags are
//! written with `PATCH` (a JSON merge patch of our keys alone), so keys other tools add
//! meanwhile survive; `list` filters on our keys alone (the reserved ones and the
//! credential tag keys the owned-keys list of the same write names). Without `patch`
//! the provider warns once and replaces `custom_metadata` whole.
//!
//! | operation | calls | policy capabilities |
//! |---|---|---|
//! | `store` | `GET metadata/…`, (new entry) `POST metadata/…` with the marker, `POST data/…` with `cas`, `PATCH metadata/…` with the tags | `read` on `metadata/…`; `create`/`update` on `data/…` and `metadata/…`; `patch` on `metadata/…` |
//! | `retrieve` | `GET data/…` (value and `custom_metadata` in one call; `PATCH metadata/…` when the tags are stale) | `read` on `data/…` |
//! | `exists` | `GET metadata/…` (never the value) | `read` on `metadata/…` |
//! | `delete` | `GET metadata/…`, then `DELETE metadata/…` (`purge`) or `DELETE data/…` (`soft`) | `read` and `delete` on `metadata/…` or `data/…` |
//! | `list` | `LIST metadata/<prefix>`, then `GET metadata/…` per entry, `list_concurrency` at once (plus `GET data/…` for an entry with stale tags) | `list` and `read` on `metadata/…` |
//! | `check` | `GET sys/internal/ui/mounts/<mount_path>`, `LIST metadata/<prefix>` | the `default` policy; `list` on `metadata/…` |
//!
//! The mount: `check()` and the first operation confirm with `GET
//! sys/internal/ui/mounts/<mount_path>` that `mount_path` is a KV version 2 mount; a
//! missing mount, a KV v1 mount, another engine, a path inside a mount or a missing
//! namespace is a `Config` error naming `mount_path` or `namespace`. A 404 with Vault's
//! `errors` list non-empty (no handler for the route, no such namespace) is told from a
//! missing key (`{"errors":[]}`) by that structure, never by the text.
//!
//! The HTTP client follows no redirect (the token would go along to another origin) and
//! is https-only when the endpoint is https. Errors keep Vault's status and `errors` list
//! as their source, never the raw answer (a login or `lookup-self` answer holds a token).
//!
//! The token: a background task looks it up every `renewal_check_interval_secs`; below
//! `token_renewal_threshold_secs` it calls `renew-self`. AppRole logs in again only when
//! renewal can no longer extend the token (its max TTL caps it, or it is not renewable)
//! and the token nears its end — below the threshold, or half its normal TTL when that is
//! shorter (at least two checks) — and then revokes the replaced token. Token auth logs
//! "nears its max TTL" only when renewal was really capped. Concurrent operations that
//! need a login share one attempt; a failed login is held for a backoff (1 s doubling to
//! 60 s) during which callers get its error without a new attempt. An operation that
//! meets a 403 asks `lookup-self` whether the token itself is refused: then AppRole logs
//! in again once and retries, token auth reports `AuthenticationFailed`; otherwise it is
//! `PermissionDenied` naming the path and capability. A token that may not call
//! `lookup-self` (no `default` policy) is detected once at start (its `LIST` works): a
//! warning says what it lacks, 403s are policy denials, and AppRole logs in again only
//! when the TTL its login reported nears its end. See `errors.rs` for the whole error
//! table.

mod auth;
mod config;
mod errors;
mod mount;
mod provider;
mod tags;

pub use auth::TokenStats;
pub use config::{
    DEFAULT_MAX_PAYLOAD_BYTES, DeleteMode, MAX_CHECK_INTERVAL_SECS, MAX_PAYLOAD_BYTES_LIMIT,
    MAX_RENEWAL_THRESHOLD_SECS, VaultAuth, VaultConfig,
};
pub use provider::{SHUTDOWN_GRACE, VaultProvider};

/// The provider name in errors, logs and metrics.
const PROVIDER: &str = "vault";
