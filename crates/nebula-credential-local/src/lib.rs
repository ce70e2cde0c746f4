#![doc = include_str!("../README.md")]

mod cache;
mod config;
mod fs;
mod naming;
#[cfg(test)]
mod props;
mod provider;

pub use config::LocalStorageConfig;
pub use provider::LocalStorageProvider;

/// The provider name in errors, logs and metrics.
const PROVIDER: &str = "local";
