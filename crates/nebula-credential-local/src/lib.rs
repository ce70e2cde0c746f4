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
//! - **Private**: the directory is created 0700 and files 0600 (Unix).
//! - **Case-safe names**: `Key` and `key` map to names that differ even on
//!   case-insensitive file systems (see the naming table in the README).
//! - **Isolated corruption**: a damaged file makes `retrieve` of that id return
//!   `Corrupted` naming the file; every other credential keeps working.
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

#![deny(missing_docs)]

mod cache;
mod config;
mod fs;
mod naming;
mod provider;

pub use config::LocalStorageConfig;
pub use provider::LocalStorageProvider;

/// The provider name in errors, logs and metrics.
const PROVIDER: &str = "local";
