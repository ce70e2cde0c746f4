//! [`LocalStorageConfig`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use nebula_credential_core::remote::env;
use nebula_credential_core::{
    ConfigError, ProviderConfig, RetryPolicy, StorageError, StorageProvider, Timeouts, async_trait,
};

use crate::{LocalStorageProvider, PROVIDER};

/// Settings of the local file backend (`provider = "local"`).
///
/// ```toml
/// provider = "local"
/// base_path = "/var/lib/myapp/credentials"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalStorageConfig {
    /// Directory holding one file per credential. Absolute. Default: the platform data
    /// directory (`~/.local/share/nebula-credential/credentials` on Linux,
    /// `~/Library/Application Support/dev.nebula.nebula-credential/credentials` on macOS,
    /// `%APPDATA%\nebula\nebula-credential\data\credentials` on Windows).
    pub base_path: PathBuf,
    /// Create `base_path` (mode 0700) when it is missing (default `true`).
    pub create_dir: bool,
    /// File extension without the leading dot (default `enc.json`).
    pub file_extension: String,
    /// Serialize writers of one credential across threads and processes with an
    /// advisory lock (default `true`). Without it, readers are still safe.
    pub enable_locking: bool,
    /// Largest serialized record accepted, 1 ..= 64 MiB (default 1 MiB).
    pub max_payload_bytes: usize,
    /// Retry policy of the layer stack (`[retry]`).
    pub retry: RetryPolicy,
    /// Deadlines of the layer stack (`[timeouts]`).
    pub timeouts: Timeouts,
}

impl LocalStorageConfig {
    /// Largest `max_payload_bytes` accepted.
    pub const MAX_PAYLOAD_LIMIT: usize = 64 * 1024 * 1024;
    /// Longest file extension accepted.
    pub const MAX_EXTENSION_LEN: usize = 32;

    /// A default configuration storing under `base_path`.
    pub fn new(base_path: impl Into<PathBuf>) -> Self {
        LocalStorageConfig {
            base_path: base_path.into(),
            ..Self::default()
        }
    }

    /// The platform data directory for credentials, if the platform has one.
    pub fn default_base_path() -> Option<PathBuf> {
        directories::ProjectDirs::from("dev", "nebula", "nebula-credential").map(|d| d.data_dir().join("credentials"))
    }
}

impl Default for LocalStorageConfig {
    fn default() -> Self {
        LocalStorageConfig {
            base_path: Self::default_base_path().unwrap_or_default(),
            create_dir: true,
            file_extension: "enc.json".into(),
            enable_locking: true,
            max_payload_bytes: 1024 * 1024,
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
        }
    }
}

#[async_trait]
impl ProviderConfig for LocalStorageConfig {
    fn provider_name(&self) -> &'static str {
        PROVIDER
    }

    fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Also bound how long a write waits for a credential's lock when no
    /// [`Timeout`](nebula_credential_core::layers::Timeout) layer sets a deadline.
    fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// The defaults, with `base_path` from `NEBULA_LOCAL_BASE_PATH` when it is set and
    /// not empty (an absolute path); the earlier name `NEBULA_CREDENTIAL_DIR` is still
    /// read, with a warning. Reads no other variable; fields are validated by
    /// [`validate`](ProviderConfig::validate) and [`build`](ProviderConfig::build).
    fn from_env() -> Result<Self, ConfigError> {
        Ok(
            match env::path_renamed("NEBULA_LOCAL_BASE_PATH", &["NEBULA_CREDENTIAL_DIR"]) {
                Some(dir) => Self::new(dir),
                None => Self::default(),
            },
        )
    }

    /// Opens a [`LocalStorageProvider`]: validates, then prepares the directory.
    async fn build(&self) -> Result<Box<dyn StorageProvider>, StorageError> {
        Ok(Box::new(LocalStorageProvider::new(self.clone()).await?))
    }

    /// Opens a [`LocalStorageProvider`] read-only
    /// ([`LocalStorageProvider::open_read_only`]): nothing is created, probed or removed.
    async fn build_read_only(&self) -> Result<Box<dyn StorageProvider>, StorageError> {
        Ok(Box::new(LocalStorageProvider::open_read_only(self.clone()).await?))
    }

    /// Checks every field without touching the file system (that happens in
    /// [`LocalStorageProvider::new`](crate::LocalStorageProvider::new)).
    fn validate(&self) -> Result<(), ConfigError> {
        let err = |field: &str, rule: String| Err(ConfigError::new(PROVIDER, field, rule));
        if self.base_path.as_os_str().is_empty() {
            return err(
                "base_path",
                "is empty and this platform has no data directory; set it to an absolute path".into(),
            );
        }
        if !self.base_path.is_absolute() {
            return err(
                "base_path",
                format!(
                    "must be an absolute path (got {:?})",
                    self.base_path.display().to_string()
                ),
            );
        }
        let ext = &self.file_extension;
        if ext.is_empty() || ext.len() > Self::MAX_EXTENSION_LEN {
            return err(
                "file_extension",
                format!(
                    "must have 1 to {} characters (got {})",
                    Self::MAX_EXTENSION_LEN,
                    ext.len()
                ),
            );
        }
        if ext.starts_with('.') || ext.ends_with('.') || ext.contains("..") {
            return err(
                "file_extension",
                format!("must not start or end with a dot, nor hold two in a row (got {ext:?}); e.g. \"enc.json\""),
            );
        }
        if let Some(c) = ext
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            let what = if matches!(c, '/' | '\\') {
                "a path separator".to_string()
            } else {
                format!("{c:?}")
            };
            return err(
                "file_extension",
                format!("must use only A-Z, a-z, 0-9, '.', '_' and '-' (found {what})"),
            );
        }
        if self.max_payload_bytes == 0 || self.max_payload_bytes > Self::MAX_PAYLOAD_LIMIT {
            return err(
                "max_payload_bytes",
                format!(
                    "must be between 1 and {} bytes (got {})",
                    Self::MAX_PAYLOAD_LIMIT,
                    self.max_payload_bytes
                ),
            );
        }
        self.retry.validate(PROVIDER)?;
        self.timeouts.validate(PROVIDER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> LocalStorageConfig {
        LocalStorageConfig::new("/tmp/nebula")
    }

    #[test]
    fn defaults() {
        let c = LocalStorageConfig::default();
        assert!(c.create_dir && c.enable_locking);
        assert_eq!(c.file_extension, "enc.json");
        assert_eq!(c.max_payload_bytes, 1 << 20);
        assert!(valid().validate().is_ok());
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let cases: Vec<(LocalStorageConfig, &str, &str)> = vec![
            (LocalStorageConfig::new("relative/dir"), "base_path", "absolute"),
            (LocalStorageConfig::new(""), "base_path", "empty"),
            (
                LocalStorageConfig {
                    file_extension: "".into(),
                    ..valid()
                },
                "file_extension",
                "1 to 32",
            ),
            (
                LocalStorageConfig {
                    file_extension: ".json".into(),
                    ..valid()
                },
                "file_extension",
                "dot",
            ),
            (
                LocalStorageConfig {
                    file_extension: "enc/json".into(),
                    ..valid()
                },
                "file_extension",
                "path separator",
            ),
            (
                LocalStorageConfig {
                    file_extension: "enc\\json".into(),
                    ..valid()
                },
                "file_extension",
                "path separator",
            ),
            (
                LocalStorageConfig {
                    file_extension: "a..b".into(),
                    ..valid()
                },
                "file_extension",
                "dot",
            ),
            (
                LocalStorageConfig {
                    file_extension: "x".repeat(33),
                    ..valid()
                },
                "file_extension",
                "1 to 32",
            ),
            (
                LocalStorageConfig {
                    max_payload_bytes: 0,
                    ..valid()
                },
                "max_payload_bytes",
                "between",
            ),
            (
                LocalStorageConfig {
                    retry: RetryPolicy {
                        max_retries: 99,
                        ..Default::default()
                    },
                    ..valid()
                },
                "retry.max_retries",
                "at most 10",
            ),
            (
                LocalStorageConfig {
                    timeouts: Timeouts {
                        read_ms: 0,
                        write_ms: 1,
                    },
                    ..valid()
                },
                "timeouts.read_ms",
                "between",
            ),
        ];
        for (config, field, rule) in cases {
            let e = config.validate().unwrap_err();
            assert_eq!(e.field(), field, "{config:?}");
            assert_eq!(e.provider(), "local");
            assert!(e.to_string().contains(rule), "{e}");
        }
    }

    #[tokio::test]
    async fn builds_the_provider_it_describes() {
        let dir = tempfile::tempdir().unwrap();
        let config = LocalStorageConfig {
            enable_locking: false,
            ..LocalStorageConfig::new(dir.path())
        };
        assert_eq!(config.retry(), &RetryPolicy::default());
        assert_eq!(config.timeouts(), &Timeouts::default());
        let provider = config.build().await.unwrap();
        assert_eq!(provider.provider_name(), "local");
        assert!(!provider.capabilities().conditional_store);
        let bad = LocalStorageConfig::new("relative");
        assert!(matches!(bad.build().await, Err(StorageError::Config(_))));
    }

    #[test]
    fn toml() {
        let c: LocalStorageConfig = toml::from_str("base_path = \"/srv/creds\"\nenable_locking = false").unwrap();
        assert_eq!(c.base_path, PathBuf::from("/srv/creds"));
        assert!(!c.enable_locking && c.create_dir);
        assert!(toml::from_str::<LocalStorageConfig>("basepath = \"/x\"").is_err());
    }
}
