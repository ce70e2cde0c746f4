//! [`StorageConfig`]: one configuration value that selects and configures a backend.
//!
//! Every backend is one row of the [`providers!`] table below: its `provider` name, the
//! cargo feature that compiles it in, and its configuration type (a
//! [`ProviderConfig`]). The enum, the names, the environment constructor and the error
//! texts all derive from that row. Beside the backend, an optional `[cache]` table
//! ([`CacheConfig`]) puts a cache in front of it.

use serde::{Deserialize, Serialize};

use nebula_credential_core::cache::CacheConfig;
use nebula_credential_core::{ConfigError, ProviderConfig, RetryPolicy, Timeouts};

/// Builds [`StorageConfig`] and [`PROVIDERS`] from one row per backend:
/// `Variant = "name", cfg(...), "feature", ConfigType, "doc";`.
macro_rules! providers {
    ($($variant:ident = $name:literal, $cfg:meta, $feature:literal, $config:ty, $doc:literal;)*) => {
        /// Which backend to open, and its settings: the `provider` line and that
        /// backend's keys of a [`StorageConfig`].
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "provider")]
        #[non_exhaustive]
        pub enum BackendConfig {
            $(
                #[doc = $doc]
                #[cfg($cfg)]
                #[serde(rename = $name)]
                $variant($config),
            )*
        }

        /// Every `provider` value, with the cargo feature that compiles it in, whether
        /// or not this build includes it.
        pub const PROVIDERS: &[(&str, &str)] = &[$(($name, $feature)),*];

        impl BackendConfig {
            /// The backend's own configuration, as a [`ProviderConfig`].
            pub fn inner(&self) -> &dyn ProviderConfig {
                match self {
                    $(
                        #[cfg($cfg)]
                        BackendConfig::$variant(c) => c,
                    )*
                }
            }
        }

        /// Constructors named after the backends, as `StorageConfig::Vault(config)`
        /// (no `[cache]`; add one with [`with_cache`](StorageConfig::with_cache)).
        #[allow(non_snake_case)]
        impl StorageConfig {
            $(
                #[doc = $doc]
                #[cfg($cfg)]
                pub fn $variant(config: $config) -> Self {
                    BackendConfig::$variant(config).into()
                }
            )*
        }

        impl StorageConfig {
            /// The configuration of the backend called `provider`, from its environment
            /// variables (that backend's `ProviderConfig::from_env`).
            pub fn from_env_for(provider: &str) -> Result<Self, ConfigError> {
                $(
                    #[cfg($cfg)]
                    if provider == $name {
                        return Ok(StorageConfig::$variant(<$config as ProviderConfig>::from_env()?));
                    }
                )*
                Err(unavailable(provider))
            }
        }
    };
}

providers! {
    Memory = "memory", all(), "(always)", nebula_credential_core::MemoryConfig,
        "In-memory storage, lost on exit: tests and prototypes.";
    Local = "local", feature = "storage-local", "storage-local", nebula_credential_local::LocalStorageConfig,
        "Encrypted files in a local directory (feature `storage-local`).";
    Aws = "aws", feature = "storage-aws", "storage-aws", nebula_credential_aws::AwsSecretsManagerConfig,
        "AWS Secrets Manager (feature `storage-aws`).";
    Kubernetes = "kubernetes", feature = "storage-kubernetes", "storage-kubernetes", nebula_credential_kubernetes::KubernetesSecretsConfig,
        "Kubernetes Secrets (feature `storage-kubernetes`).";
    Vault = "vault", feature = "storage-vault", "storage-vault", nebula_credential_vault::VaultConfig,
        "HashiCorp Vault / OpenBao KV v2 (feature `storage-vault`).";
    Azure = "azure", feature = "storage-azure", "storage-azure", nebula_credential_azure::AzureKeyVaultConfig,
        "Azure Key Vault secrets (feature `storage-azure`).";
}

/// Which backend to open, its settings, and an optional cache in front of it. Tagged by
/// `provider`, so one line of TOML switches backend; `retry` and `timeouts` configure the
/// layers of every backend; a `[cache]` table ([`CacheConfig`]) turns the cache on
/// (absent: no cache).
///
/// ```
/// use nebula_credential::StorageConfig;
/// let settings = r#"
///     [retry]
///     max_retries = 3
/// "#;
/// let memory: StorageConfig = toml::from_str(&format!("provider = \"memory\"\n{settings}"))?;
/// assert_eq!(memory.provider_name(), "memory");
/// assert_eq!(memory.inner().retry().max_retries, 3);
/// assert!(memory.cache.is_none());
/// let cached: StorageConfig = toml::from_str("provider = \"memory\"\n[cache]\nfresh_ms = 5000")?;
/// assert_eq!(cached.cache.unwrap().fresh_ms, 5000);
/// # #[cfg(feature = "storage-local")] {
/// let local: StorageConfig = toml::from_str(&format!("provider = \"local\"\n{settings}"))?;
/// assert_eq!(local.provider_name(), "local");
/// # }
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StorageConfig {
    /// The backend and its settings (the `provider` line and its keys).
    #[serde(flatten)]
    pub backend: BackendConfig,
    /// The `[cache]` table: a [`Cached`](nebula_credential_core::cache::Cached) layer in
    /// front of the backend when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheConfig>,
}

impl From<BackendConfig> for StorageConfig {
    fn from(backend: BackendConfig) -> Self {
        StorageConfig { backend, cache: None }
    }
}

/// The error for a `provider` name this build cannot open: unknown, or its feature is off.
fn unavailable(provider: &str) -> ConfigError {
    let rule = match PROVIDERS.iter().find(|(name, _)| *name == provider) {
        Some((_, feature)) => format!(
            "names \"{provider}\", which this build does not include; enable the `{feature}` feature of nebula-credential"
        ),
        None => format!(
            "names an unknown provider {provider:?}; use one of {}",
            PROVIDERS.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
        ),
    };
    ConfigError::new("nebula-credential", "NEBULA_CREDENTIAL_PROVIDER", rule)
}

impl StorageConfig {
    /// The backend's own configuration, as a [`ProviderConfig`].
    pub fn inner(&self) -> &dyn ProviderConfig {
        self.backend.inner()
    }

    /// This configuration with a cache (`[cache]`) in front of the backend.
    pub fn with_cache(mut self, cache: CacheConfig) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The configuration named by `NEBULA_CREDENTIAL_PROVIDER` (default `local` when the
    /// feature is on, else `memory`), with that backend's own variables. One variable
    /// switches backend.
    pub fn from_env() -> Result<Self, ConfigError> {
        match std::env::var("NEBULA_CREDENTIAL_PROVIDER") {
            Ok(name) if !name.trim().is_empty() => Self::from_env_for(name.trim()),
            _ if cfg!(feature = "storage-local") => Self::from_env_for("local"),
            _ => Self::from_env_for("memory"),
        }
    }

    /// The backend this selects (`"memory"`, …), as in the `provider` line.
    pub fn provider_name(&self) -> &'static str {
        self.inner().provider_name()
    }

    /// The retry policy of the backend's layer stack.
    pub fn retry(&self) -> &RetryPolicy {
        self.inner().retry()
    }

    /// The per-operation deadlines of the backend's layer stack.
    pub fn timeouts(&self) -> &Timeouts {
        self.inner().timeouts()
    }

    /// Validates the backend's settings, the layer settings and `[cache]`, without any I/O.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.inner().validate()?;
        match &self.cache {
            Some(cache) => cache.validate().map_err(|e| e.for_provider(self.provider_name())),
            None => Ok(()),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig::Memory(nebula_credential_core::MemoryConfig::default())
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    #[test]
    fn a_cache_table_is_optional_validated_and_round_trips() {
        let plain: StorageConfig = toml::from_str("provider = \"memory\"").unwrap();
        assert_eq!(plain.cache, None);
        assert!(!toml::to_string(&plain).unwrap().contains("cache"));
        let cached: StorageConfig = toml::from_str(
            "provider = \"memory\"\n[retry]\nmax_retries = 2\n[cache]\nfresh_ms = 100\nmax_stale_ms = 200",
        )
        .unwrap();
        let cache = cached.cache.unwrap();
        assert_eq!(
            (cache.fresh_ms, cache.max_stale_ms, cache.max_entries),
            (100, 200, 10_000)
        );
        assert_eq!(cached.retry().max_retries, 2);
        let text = toml::to_string(&cached).unwrap();
        assert_eq!(toml::from_str::<StorageConfig>(&text).unwrap(), cached, "{text}");
        for bad in [
            "provider = \"memory\"\n[cache]\nfresh = 1",
            "provider = \"memory\"\ncache = 5",
            "provider = \"memory\"\nnope = 1",
        ] {
            assert!(toml::from_str::<StorageConfig>(bad).is_err(), "{bad}");
        }
        let invalid: StorageConfig =
            toml::from_str("provider = \"memory\"\n[cache]\nfresh_ms = 100\nmax_stale_ms = 50").unwrap();
        let e = invalid.validate().unwrap_err();
        assert_eq!((e.provider(), e.field()), ("memory", "cache.max_stale_ms"), "{e}");
    }
}

#[cfg(all(test, feature = "storage-aws", feature = "storage-vault", feature = "storage-azure"))]
mod tests {
    use super::*;

    /// `StorageConfig` is tagged by `provider`: the deprecated keys are read through it,
    /// unknown keys are still refused, nested keys keep their names, and a configuration
    /// written out reads back the same (Vault's token is written redacted).
    #[test]
    fn deprecated_keys_unknown_keys_and_round_trips_through_the_tagged_enum() {
        let aws: StorageConfig = toml::from_str(
            "provider = \"aws\"\nendpoint_url = \"http://127.0.0.1:4566\"\ndeletion = { recovery_window = { days = 7 } }\n\
             [default_tags]\nendpoint_url = \"kept\"",
        )
        .unwrap();
        let BackendConfig::Aws(c) = &aws.backend else {
            panic!("{aws:?}")
        };
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!(c.recovery_window_days, 7);
        assert_eq!(c.default_tags["endpoint_url"], "kept");
        let vault: StorageConfig = toml::from_str(
            "provider = \"vault\"\naddress = \"http://127.0.0.1:8200\"\npath_prefix = \"app\"\ndelete_mode = \"destroy\"\n\
             [auth]\nmethod = \"token\"\ntoken = \"[redacted]\"",
        )
        .unwrap();
        let azure: StorageConfig = toml::from_str(
            "provider = \"azure\"\nvault_url = \"https://a.vault.azure.net\"\n[default_tags]\n\"vault_url\" = \"kept\"",
        )
        .unwrap();
        let BackendConfig::Azure(z) = &azure.backend else {
            panic!("{azure:?}")
        };
        assert_eq!(
            (z.endpoint.as_str(), z.default_tags["vault_url"].as_str()),
            ("https://a.vault.azure.net", "kept")
        );
        for c in [aws, vault, azure] {
            let text = toml::to_string(&c).unwrap();
            assert_eq!(toml::from_str::<StorageConfig>(&text).unwrap(), c, "{text}");
        }
        for bad in [
            "provider = \"aws\"\nnope = 1",
            "provider = \"vault\"\naddress = \"https://a\"\nendpoint = \"https://b\"",
            "provider = \"azure\"\ncustom_endpoint = true\nallow_custom_host = false",
            "provider = \"aws\"\nendpoint = 5",
        ] {
            assert!(toml::from_str::<StorageConfig>(bad).is_err(), "{bad}");
        }
    }
}
