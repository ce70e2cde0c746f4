//! A local test double of the Azure Key Vault **secrets** data plane.
//!
//! It serves HTTPS on loopback with a CA it generates, authenticates like the service (a 401
//! challenge first, then bearer tokens with full, read-only or no rights), and implements
//! set/get/update/list/versions/delete/recover/purge with the service's paging, soft-delete
//! timing, limits and error bodies. Emulator-only endpoints under `/__emulator/` inject faults,
//! run other tools' writes (hooks), set per-vault properties, create certificate-backed
//! secrets and expose a request log. Microsoft's Python SDK and Rust crate are the judges: see the
//! crate's README and its tests.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use std::time::Duration;
//! let emulator = keyvault_emulator::Emulator::start(
//!     keyvault_emulator::Config::for_tests(Duration::from_millis(100), Duration::from_millis(100)),
//! ).await?;
//! println!("{}", emulator.vault_url("nebula"));
//! # Ok(()) }
//! ```

pub mod api;
pub mod auth;
pub mod error;
pub mod faults;
pub mod hooks;
pub mod paging;
pub mod rules;
pub mod server;
pub mod store;
pub mod tls;

pub use auth::Tokens;
pub use faults::{FaultRule, LoggedRequest};
pub use hooks::{FiredHook, Hook, HookAction};
pub use server::{Config, Emulator};
pub use store::SoftDelete;
