//! [`StorageConfig`]: one configuration value that selects and configures a backend.

use serde::{Deserialize, Serialize};

use nebula_credential_core::{ConfigError, MOCK_MAX_PAYLOAD_BYTES, ProviderConfig, RetryPolicy, Timeouts};

/// Which backend to open, and its settings. Tagged by `provider`, so one line of TOML
/// switches backend; `retry` and `timeouts` configure the layers of every backend.
///
/// ```
/// use nebula_credential::StorageConfig;
/// let config: StorageConfig = toml::from_str(r#"
///     provider = "memory"
///
///     [retry]
///     max_retries = 3
/// "#)?;
/// assert_eq!(config.provider_name(), "memory");
/// assert_eq!(config.retry().max_retries, 3);
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
#[non_exhaustive]
pub enum StorageConfig {
    /// In-memory storage, lost on exit: tests and prototypes.
    Memory(MemoryConfig),
}

impl StorageConfig {
    /// The backend this selects (`"memory"`, …), as in the `provider` line.
    pub fn provider_name(&self) -> &'static str {
        match self {
            StorageConfig::Memory(c) => c.provider_name(),
        }
    }

    /// The retry policy of the backend's layer stack.
    pub fn retry(&self) -> &RetryPolicy {
        match self {
            StorageConfig::Memory(c) => &c.retry,
        }
    }

    /// The per-operation deadlines of the backend's layer stack.
    pub fn timeouts(&self) -> &Timeouts {
        match self {
            StorageConfig::Memory(c) => &c.timeouts,
        }
    }

    /// Validates the backend's settings and the layer settings, without any I/O.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let provider = self.provider_name();
        self.retry().validate(provider)?;
        self.timeouts().validate(provider)?;
        match self {
            StorageConfig::Memory(c) => c.validate(),
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
        Ok(())
    }
}
