#![doc = include_str!("../README.md")]

mod config;
mod errors;
mod kubeconfig;
mod labels;
mod naming;
#[cfg(test)]
mod props;
mod provider;

pub use config::{KubernetesSecretsConfig, MAX_NAMESPACE_LEN};
pub use labels::{ID_ANNOTATION, MANAGED_BY, MANAGED_BY_LABEL, METADATA_ANNOTATION, PREFIX_LABEL, TAG_LABEL_PREFIX};
pub use naming::{MAX_NAME_LEN, MAX_PREFIX_LEN, secret_name};
pub use provider::{KubernetesSecretsProvider, MAX_OBJECT_BYTES, RECORD_KEY, SECRET_TYPE, object_size};

/// The provider name in errors, logs and metrics.
const PROVIDER: &str = "kubernetes";
