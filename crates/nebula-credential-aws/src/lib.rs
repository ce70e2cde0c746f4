#![doc = include_str!("../README.md")]

mod config;
mod errors;
mod provider;
mod tags;
mod versions;

pub use config::{AwsSecretsManagerConfig, DeleteMode, MAX_SECRET_NAME_LEN};
pub use provider::{AwsSecretsManagerProvider, MAX_SECRET_BYTES};

/// The provider name in errors, logs and metrics.
const PROVIDER: &str = "aws";
