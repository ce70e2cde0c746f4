#![doc = include_str!("../README.md")]

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
