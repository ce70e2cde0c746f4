//! [`CacheConfig`]: the `[cache]` table.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// Settings of the [`Cached`](super::Cached) layer: the `[cache]` table of a storage
/// configuration. Every field has a default, so `[cache]` alone turns caching on.
///
/// ```
/// use nebula_credential_core::cache::CacheConfig;
/// let config: CacheConfig = toml::from_str("fresh_ms = 5000\nmax_stale_ms = 60000")?;
/// assert_eq!(config.max_entries, 10_000);
/// config.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// How long an entry is served as is, in milliseconds (default 30 000). Past it, a
    /// read still returns the entry at once and starts one background revalidation.
    pub fresh_ms: u64,
    /// The hard age limit, in milliseconds (default 300 000, at least `fresh_ms`): an
    /// entry older than this is never served, not even when the backend is down.
    pub max_stale_ms: u64,
    /// Most credentials held (default 10 000, at least 1); the least recently used go first.
    pub max_entries: u64,
    /// Period of [`CredentialStore::watch`](crate::CredentialStore::watch) polling, in
    /// milliseconds (default 30 000, at least 1), with ±10 % jitter.
    pub poll_ms: u64,
    /// How long a `NotFound` answer is remembered, in milliseconds (default 0: not at
    /// all, every read of a missing credential asks the backend).
    pub not_found_ms: u64,
}

impl CacheConfig {
    /// Largest age accepted for any of the durations: one day.
    pub const MAX_AGE_MS: u64 = 24 * 60 * 60 * 1000;

    /// Checks the rules; the error names the field (`cache.max_stale_ms`, …).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field: &str, rule: String| ConfigError::new("cache", format!("cache.{field}"), rule);
        for (field, value) in [
            ("fresh_ms", self.fresh_ms),
            ("max_stale_ms", self.max_stale_ms),
            ("poll_ms", self.poll_ms),
            ("not_found_ms", self.not_found_ms),
        ] {
            if value > Self::MAX_AGE_MS {
                return Err(err(
                    field,
                    format!("must be at most {} ms (one day) (got {value})", Self::MAX_AGE_MS),
                ));
            }
        }
        if self.max_stale_ms < self.fresh_ms {
            return Err(err(
                "max_stale_ms",
                format!(
                    "must be at least fresh_ms ({}) (got {}); raise it or lower fresh_ms",
                    self.fresh_ms, self.max_stale_ms
                ),
            ));
        }
        if self.max_entries == 0 {
            return Err(err("max_entries", "must be at least 1 (got 0)".into()));
        }
        if self.poll_ms == 0 {
            return Err(err("poll_ms", "must be at least 1 ms (got 0)".into()));
        }
        Ok(())
    }

    /// [`fresh_ms`](Self::fresh_ms) as a duration.
    pub fn fresh(&self) -> Duration {
        Duration::from_millis(self.fresh_ms)
    }

    /// [`max_stale_ms`](Self::max_stale_ms) as a duration.
    pub fn max_stale(&self) -> Duration {
        Duration::from_millis(self.max_stale_ms)
    }

    /// [`poll_ms`](Self::poll_ms) as a duration.
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }

    /// [`not_found_ms`](Self::not_found_ms) as a duration.
    pub fn not_found(&self) -> Duration {
        Duration::from_millis(self.not_found_ms)
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            fresh_ms: 30_000,
            max_stale_ms: 300_000,
            max_entries: 10_000,
            poll_ms: 30_000,
            not_found_ms: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_each_rule_names_its_field() {
        CacheConfig::default().validate().unwrap();
        let cases = [
            (
                CacheConfig {
                    max_stale_ms: 10,
                    fresh_ms: 20,
                    ..Default::default()
                },
                "cache.max_stale_ms",
            ),
            (
                CacheConfig {
                    max_entries: 0,
                    ..Default::default()
                },
                "cache.max_entries",
            ),
            (
                CacheConfig {
                    poll_ms: 0,
                    ..Default::default()
                },
                "cache.poll_ms",
            ),
            (
                CacheConfig {
                    not_found_ms: u64::MAX,
                    ..Default::default()
                },
                "cache.not_found_ms",
            ),
            (
                CacheConfig {
                    fresh_ms: u64::MAX,
                    max_stale_ms: u64::MAX,
                    ..Default::default()
                },
                "cache.fresh_ms",
            ),
        ];
        for (config, field) in cases {
            let e = config.validate().unwrap_err();
            assert_eq!(e.field(), field, "{e}");
            assert!(e.to_string().contains(field), "{e}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<CacheConfig>("fresh = 1").is_err());
        let c: CacheConfig = toml::from_str("").unwrap();
        assert_eq!(c, CacheConfig::default());
    }
}
