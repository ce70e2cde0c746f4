//! [`StorageConfig`]: one configuration value that selects and configures a backend.

use serde::{Deserialize, Serialize};

use nebula_credential_core::{ConfigError, MOCK_MAX_PAYLOAD_BYTES, ProviderConfig, RetryPolicy, Timeouts};

/// Which backend to open, and its settings. Tagged by `provider`, so one line of TOML
/// switches backend; `retry` and `timeouts` configure the layers of every backend.
///
/// Switching backend is one line (SC-001): the same settings, another `provider`.
///
/// ```
/// use nebula_credential::StorageConfig;
/// let settings = r#"
///     [retry]
///     max_retries = 3
/// "#;
/// let memory: StorageConfig = toml::from_str(&format!("provider = \"memory\"\n{settings}"))?;
/// assert_eq!(memory.provider_name(), "memory");
/// assert_eq!(memory.retry().max_retries, 3);
/// # #[cfg(feature = "storage-local")] {
/// let local: StorageConfig = toml::from_str(&format!("provider = \"local\"\n{settings}"))?;
/// assert_eq!(local.provider_name(), "local");
/// assert_eq!(local.retry().max_retries, 3);
/// # }
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
#[non_exhaustive]
pub enum StorageConfig {
    /// In-memory storage, lost on exit: tests and prototypes.
    Memory(MemoryConfig),
    /// Encrypted files in a local directory (feature `storage-local`).
    #[cfg(feature = "storage-local")]
    Local(nebula_credential_local::LocalStorageConfig),
    /// AWS Secrets Manager (feature `storage-aws`).
    #[cfg(feature = "storage-aws")]
    Aws(nebula_credential_aws::AwsSecretsManagerConfig),
}

/// Every `provider` value, with the cargo feature that compiles it in.
const PROVIDERS: [(&str, &str); 3] = [
    ("memory", "(always)"),
    ("local", "storage-local"),
    ("aws", "storage-aws"),
];

impl StorageConfig {
    /// The configuration named by `NEBULA_CREDENTIAL_PROVIDER` (default `local` when the
    /// feature is on, else `memory`), with that backend's own variables
    /// (`LocalStorageConfig::from_env`, `AwsSecretsManagerConfig::from_env`). One variable
    /// switches backend.
    pub fn from_env() -> Result<Self, ConfigError> {
        match std::env::var("NEBULA_CREDENTIAL_PROVIDER") {
            Ok(name) if !name.trim().is_empty() => Self::from_env_for(name.trim()),
            _ if cfg!(feature = "storage-local") => Self::from_env_for("local"),
            _ => Self::from_env_for("memory"),
        }
    }

    /// The configuration of the backend called `provider`, from its environment variables.
    pub fn from_env_for(provider: &str) -> Result<Self, ConfigError> {
        match provider {
            "memory" => return Ok(StorageConfig::Memory(MemoryConfig::default())),
            #[cfg(feature = "storage-local")]
            "local" => {
                return Ok(StorageConfig::Local(
                    nebula_credential_local::LocalStorageConfig::from_env(),
                ));
            }
            #[cfg(feature = "storage-aws")]
            "aws" => {
                return Ok(StorageConfig::Aws(
                    nebula_credential_aws::AwsSecretsManagerConfig::from_env(),
                ));
            }
            _ => {}
        }
        let rule = match PROVIDERS.iter().find(|(name, _)| *name == provider) {
            Some((_, feature)) => format!(
                "names \"{provider}\", which this build does not include; enable the `{feature}` feature of nebula-credential"
            ),
            None => format!(
                "names an unknown provider {provider:?}; use one of {}",
                PROVIDERS.map(|(name, _)| name).join(", ")
            ),
        };
        Err(ConfigError::new(
            "nebula-credential",
            "NEBULA_CREDENTIAL_PROVIDER",
            rule,
        ))
    }

    /// The backend this selects (`"memory"`, …), as in the `provider` line.
    pub fn provider_name(&self) -> &'static str {
        match self {
            StorageConfig::Memory(c) => c.provider_name(),
            #[cfg(feature = "storage-local")]
            StorageConfig::Local(c) => c.provider_name(),
            #[cfg(feature = "storage-aws")]
            StorageConfig::Aws(c) => c.provider_name(),
        }
    }

    /// The retry policy of the backend's layer stack.
    pub fn retry(&self) -> &RetryPolicy {
        match self {
            StorageConfig::Memory(c) => &c.retry,
            #[cfg(feature = "storage-local")]
            StorageConfig::Local(c) => &c.retry,
            #[cfg(feature = "storage-aws")]
            StorageConfig::Aws(c) => &c.retry,
        }
    }

    /// The per-operation deadlines of the backend's layer stack.
    pub fn timeouts(&self) -> &Timeouts {
        match self {
            StorageConfig::Memory(c) => &c.timeouts,
            #[cfg(feature = "storage-local")]
            StorageConfig::Local(c) => &c.timeouts,
            #[cfg(feature = "storage-aws")]
            StorageConfig::Aws(c) => &c.timeouts,
        }
    }

    /// Validates the backend's settings and the layer settings, without any I/O.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            StorageConfig::Memory(c) => c.validate(),
            #[cfg(feature = "storage-local")]
            StorageConfig::Local(c) => c.validate(),
            #[cfg(feature = "storage-aws")]
            StorageConfig::Aws(c) => c.validate(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig::Memory(MemoryConfig::default())
    }
}

/// Settings of the in-memory backend (`provider = "memory"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Largest serialized record accepted, 1 ..= 64 MiB (default 1 MiB).
    pub max_payload_bytes: usize,
    /// Retry policy (`[retry]`).
    pub retry: RetryPolicy,
    /// Deadlines (`[timeouts]`).
    pub timeouts: Timeouts,
}

impl MemoryConfig {
    /// Largest `max_payload_bytes` accepted.
    pub const MAX_PAYLOAD_LIMIT: usize = 64 * 1024 * 1024;
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            max_payload_bytes: MOCK_MAX_PAYLOAD_BYTES,
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
        }
    }
}

impl ProviderConfig for MemoryConfig {
    fn provider_name(&self) -> &'static str {
        "memory"
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_payload_bytes == 0 || self.max_payload_bytes > Self::MAX_PAYLOAD_LIMIT {
            return Err(ConfigError::new(
                "memory",
                "max_payload_bytes",
                format!(
                    "must be between 1 and {} bytes (got {})",
                    Self::MAX_PAYLOAD_LIMIT,
                    self.max_payload_bytes
                ),
            ));
        }
        self.retry.validate("memory")?;
        self.timeouts.validate("memory")
    }
}
