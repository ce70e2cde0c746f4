//! Configuration shared by every provider: the [`ProviderConfig`] trait and [`Timeouts`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use async_trait::async_trait;

use crate::error::{ConfigError, Operation, StorageError};
use crate::provider::StorageProvider;
use crate::retry::RetryPolicy;

/// A provider's configuration: plain data that validates itself before any I/O, says
/// how its layers behave, and builds its backend. The umbrella crate's `StorageConfig`
/// and `open()` need nothing else from a backend.
#[async_trait]
pub trait ProviderConfig: Send + Sync {
    /// The provider this configures (`"local"`, `"aws"`, …).
    fn provider_name(&self) -> &'static str;

    /// Checks every field against the backend's rules; the error names the field.
    fn validate(&self) -> Result<(), ConfigError>;

    /// The retry policy of this backend's [`Retry`](crate::layers::Retry) layer.
    fn retry(&self) -> &RetryPolicy;

    /// The deadlines of this backend's [`Timeout`](crate::layers::Timeout) layer.
    fn timeouts(&self) -> &Timeouts;

    /// The configuration from the backend's usual environment variables (documented
    /// on each implementation).
    fn from_env() -> Result<Self, ConfigError>
    where
        Self: Sized;

    /// Validates, then builds the bare backend (no layers). Does no network I/O beyond
    /// what building a client needs; use [`StorageProvider::check`] to prove a connection.
    async fn build(&self) -> Result<Box<dyn StorageProvider>, StorageError>;
}

/// Per-operation deadlines applied by the [`Timeout`](crate::layers::Timeout) layer.
///
/// In TOML: `[timeouts]` with `read_ms` and `write_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// Deadline of `retrieve`, `list` and `exists`, in milliseconds (default 5,000).
    pub read_ms: u64,
    /// Deadline of `store` and `delete`, in milliseconds (default 10,000).
    pub write_ms: u64,
}

impl Timeouts {
    /// Longest deadline accepted: 10 minutes.
    pub const MAX_MS: u64 = 600_000;

    /// The deadline of `operation`.
    pub fn for_operation(&self, operation: Operation) -> Duration {
        Duration::from_millis(if operation.is_write() {
            self.write_ms
        } else {
            self.read_ms
        })
    }

    /// Checks both deadlines are within 1 ms ..= 10 min.
    pub fn validate(&self, provider: &'static str) -> Result<(), ConfigError> {
        for (field, value) in [("read_ms", self.read_ms), ("write_ms", self.write_ms)] {
            if value == 0 || value > Self::MAX_MS {
                return Err(ConfigError::new(
                    provider,
                    format!("timeouts.{field}"),
                    format!("must be between 1 and {} milliseconds (got {value})", Self::MAX_MS),
                ));
            }
        }
        Ok(())
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            read_ms: 5_000,
            write_ms: 10_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let t = Timeouts::default();
        assert_eq!(t.for_operation(Operation::Retrieve), Duration::from_secs(5));
        assert_eq!(t.for_operation(Operation::Delete), Duration::from_secs(10));
        assert!(t.validate("x").is_ok());
        let e = Timeouts { read_ms: 0, ..t }.validate("aws").unwrap_err();
        assert_eq!(e.field(), "timeouts.read_ms");
        let e = Timeouts { write_ms: 600_001, ..t }.validate("aws").unwrap_err();
        assert_eq!(e.field(), "timeouts.write_ms");
    }
}
