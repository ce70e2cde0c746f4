//! Local encrypted storage for nebula-credential: one file per credential in a
//! directory, written atomically and durably, with writers serialized by advisory locks.
//!
//! # Guarantees
//! - **Atomic**: a store writes a unique temporary file (mode 0600 from creation),
//!   fsyncs it, renames it over the target and fsyncs the directory. A reader sees the
//!   old record or the new one, never a mix; a crash leaves the old or the new record.
//! - **Durable**: an acknowledged store survives a process crash and, on file systems
//!   that honour fsync, a power loss.
//! - **Locked**: with `enable_locking` (default) writers of one credential exclude each
//!   other across threads and processes (`flock` on Unix, `LockFileEx` on Windows).
//!   A busy lock is waited for only until the operation's deadline, and a write whose
//!   deadline passed or whose caller stopped waiting never lands afterwards.
//! - **Conditional stores** (with locking only): the revision is a digest of the record
//!   file, compared with the file under the credential's lock, so `store_if` is atomic
//!   and `CredentialStore` gets exact versions and safe key rotation. Without locking,
//!   conditional stores are refused with `Unsupported`.
//! - **Private**: the directory is created 0700 and files 0600 (Unix).
//! - **Case-safe names**: `Key` and `key` map to names that differ even on
//!   case-insensitive file systems, and ids that Windows reserves as device names
//!   (`con`, `nul`, `com1`, …) get names that are not (see the naming table in the README).
//! - **Isolated corruption**: a damaged file makes `retrieve` of that id return
//!   `Corrupted` naming the file; every other credential keeps working.
//!
//! - **Crash leftovers**: temporary files untouched for an hour are removed at startup;
//!   younger ones may belong to a live writer in another process and are left alone.
//!
//! # Not guaranteed
//! - Advisory locks bind only cooperating processes; other programs may still write.
//! - Network file systems (NFS, SMB) may not honour locks or fsync.
//! - On Windows, files get the ACL inherited from `base_path`; restrict that directory
//!   to the current user (the default data directory under the user profile already is).
//!
//! ```
//! use nebula_credential_local::{LocalStorageConfig, LocalStorageProvider};
//! let config: LocalStorageConfig = toml::from_str(r#"base_path = "/var/lib/myapp/credentials""#).unwrap();
//! assert!(config.enable_locking);
//! ```

mod cache;
mod config;
mod fs;
mod naming;
mod provider;

pub use config::LocalStorageConfig;
pub use provider::LocalStorageProvider;

/// The provider name in errors, logs and metrics.
const PROVIDER: &str = "local";
