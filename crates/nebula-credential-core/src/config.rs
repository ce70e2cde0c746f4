//! Configuration shared by every provider: [`Timeouts`], and [`ConfigError`], the error of
//! a value that breaks a rule. The [`ProviderConfig`](crate::ProviderConfig) trait lives
//! beside the [`StorageProvider`](crate::StorageProvider) it builds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::operation::Operation;

/// A configuration value breaks a rule. Names the provider, the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {provider} configuration: `{field}` {rule}")]
pub struct ConfigError {
    provider: &'static str,
    field: String,
    rule: String,
}

impl ConfigError {
    /// A rule broken by `field` of `provider`'s configuration. `rule` completes the
    /// sentence "`field` …", e.g. `must be between 1 and 60 seconds (got 0)`.
    pub fn new(provider: &'static str, field: impl Into<String>, rule: impl Into<String>) -> Self {
        ConfigError {
            provider,
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// The provider whose configuration is invalid.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// The offending field (dotted path for nested fields, e.g. `retry.max_retries`).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The rule broken.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// Prefixes the field with `parent.` (for nested configuration structs).
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }

    /// Reassigns the error to `provider` (a nested struct validated on a provider's behalf).
    pub fn for_provider(mut self, provider: &'static str) -> Self {
        self.provider = provider;
        self
    }
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

    #[test]
    fn config_error_names_provider_nested_field_and_rule() {
        let c = ConfigError::new("aws", "read_timeout", "must be between 1 and 60 s").within("x");
        assert_eq!(
            c.to_string(),
            "invalid aws configuration: `x.read_timeout` must be between 1 and 60 s"
        );
        assert_eq!(c.field(), "x.read_timeout");
    }
}
