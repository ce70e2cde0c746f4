//! [`open`]: from a [`StorageConfig`] to a provider wrapped in the standard layers, with
//! a cache in front when the configuration has a `[cache]` table; [`open_store`]: the
//! same, as a [`CredentialStore`] whose `refresh` and `watch` use that cache.

use std::sync::Arc;

use nebula_credential_core::cache::Cached;
use nebula_credential_core::{CredentialStore, Keyring, StorageError, StorageMetrics, StorageProvider, layers};

use crate::config::StorageConfig;

/// Validates `config`, builds its backend and wraps it in the standard layer stack
/// (tracing → metrics → retry → timeout → backend), with a
/// [`Cached`] layer on top when `config.cache` is set. Fails with
/// [`StorageError::Config`] naming the field before any I/O when the config is invalid.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let config: nebula_credential::StorageConfig = toml::from_str(r#"provider = "memory""#)?;
/// let provider = nebula_credential::open(&config).await?;
/// assert_eq!(provider.provider_name(), "memory");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn open(config: &StorageConfig) -> Result<Arc<dyn StorageProvider>, StorageError> {
    open_with_metrics(config, Arc::new(StorageMetrics::new())).await
}

/// Like [`open`], recording calls, errors, latencies and retries into `metrics` (and the
/// cache's hits, misses, … when `[cache]` is set). The cache sits outside the metered
/// stack, so the operation counters count backend calls only.
pub async fn open_with_metrics(
    config: &StorageConfig,
    metrics: Arc<StorageMetrics>,
) -> Result<Arc<dyn StorageProvider>, StorageError> {
    let stack = layered(config, metrics.clone(), Access::ReadWrite).await?;
    Ok(match cached(config, stack.clone(), metrics)? {
        Some(cache) => Arc::new(cache),
        None => stack,
    })
}

/// Opens `config` as with [`open`] and returns a [`CredentialStore`] over it,
/// encrypting with `keyring`. With a `[cache]` table the store is built with
/// [`CredentialStore::with_cache`], so [`refresh`](CredentialStore::refresh) and
/// [`watch`](CredentialStore::watch) work on the cache's entries; without one it is
/// [`CredentialStore::new`] over the stack.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use nebula_credential::{EncryptionKey, Keyring, StorageConfig, open_store};
/// let config: StorageConfig = toml::from_str("provider = \"memory\"\n[cache]\nfresh_ms = 30000")?;
/// let store = open_store(&config, Keyring::new(EncryptionKey::generate())).await?;
/// assert!(store.is_cached());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn open_store(config: &StorageConfig, keyring: Keyring) -> Result<CredentialStore, StorageError> {
    open_store_with_metrics(config, keyring, Arc::new(StorageMetrics::new())).await
}

/// Like [`open_store`], recording into `metrics` as [`open_with_metrics`] does.
pub async fn open_store_with_metrics(
    config: &StorageConfig,
    keyring: Keyring,
    metrics: Arc<StorageMetrics>,
) -> Result<CredentialStore, StorageError> {
    let stack = layered(config, metrics.clone(), Access::ReadWrite).await?;
    Ok(match cached(config, stack.clone(), metrics)? {
        Some(cache) => CredentialStore::with_cache(cache, keyring),
        None => CredentialStore::new(stack, keyring),
    })
}

/// How a backend is built: [`ProviderConfig::build`](nebula_credential_core::ProviderConfig::build) or
/// [`ProviderConfig::build_read_only`](nebula_credential_core::ProviderConfig::build_read_only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

/// The backend of `config` in the standard layer stack, validated first.
async fn layered(
    config: &StorageConfig,
    metrics: Arc<StorageMetrics>,
    access: Access,
) -> Result<Arc<dyn StorageProvider>, StorageError> {
    config.validate()?;
    let backend = match access {
        Access::ReadWrite => config.inner().build().await?,
        Access::ReadOnly => config.inner().build_read_only().await?,
    };
    let provider: Arc<dyn StorageProvider> =
        Arc::new(layers::standard(backend, *config.retry(), *config.timeouts(), metrics)?);
    tracing::debug!(
        provider = provider.provider_name(),
        cached = config.cache.is_some(),
        read_only = access == Access::ReadOnly,
        "storage provider opened"
    );
    Ok(provider)
}

/// Like [`open`], for callers that only read (list, get, export, audit, `migrate`'s
/// source): builds the backend with
/// [`ProviderConfig::build_read_only`](nebula_credential_core::ProviderConfig::build_read_only),
/// so nothing is created, probed or cleaned up on open and a store that can be read but
/// not written opens. The local backend then refuses writes with
/// [`StorageError::PermissionDenied`] saying it was opened read-only.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let config: nebula_credential::StorageConfig = toml::from_str(r#"provider = "memory""#)?;
/// let provider = nebula_credential::open_read_only(&config).await?;
/// assert!(provider.list(&Default::default()).await?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn open_read_only(config: &StorageConfig) -> Result<Arc<dyn StorageProvider>, StorageError> {
    let metrics = Arc::new(StorageMetrics::new());
    let stack = layered(config, metrics.clone(), Access::ReadOnly).await?;
    Ok(match cached(config, stack.clone(), metrics)? {
        Some(cache) => Arc::new(cache),
        None => stack,
    })
}

/// The cache of `config.cache` over `stack`, if the configuration has one.
fn cached(
    config: &StorageConfig,
    stack: Arc<dyn StorageProvider>,
    metrics: Arc<StorageMetrics>,
) -> Result<Option<Cached<Arc<dyn StorageProvider>>>, StorageError> {
    let Some(cache) = config.cache else {
        return Ok(None);
    };
    let cached = Cached::with_metrics(stack, cache, metrics).map_err(|e| e.for_provider(config.provider_name()))?;
    Ok(Some(cached))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nebula_credential_core::{EncryptionKey, Tags};

    /// With `[cache]`, repeated reads reach the backend once: the operation counters (below
    /// the cache) count backend calls, the cache counts its hits.
    #[tokio::test]
    async fn a_cache_table_puts_the_cache_above_the_metered_stack() {
        let config: StorageConfig = toml::from_str("provider = \"memory\"\n[cache]\nfresh_ms = 60000").unwrap();
        let metrics = Arc::new(StorageMetrics::new());
        let keyring = Keyring::new(EncryptionKey::generate());
        let store = open_store_with_metrics(&config, keyring, metrics.clone())
            .await
            .unwrap();
        assert!(store.is_cached());
        let id = "token".parse().unwrap();
        store.put(&id, b"v1", Tags::new()).await.unwrap();
        for _ in 0..10 {
            store.get(&id).await.unwrap();
        }
        let s = metrics.snapshot();
        assert_eq!(
            (s.retrieve.count, s.store.count),
            (1, 1),
            "put's read and write only:\n{s}"
        );
        assert_eq!(s.cache.hits, 10);

        let provider = open_with_metrics(&config, metrics.clone()).await.unwrap();
        assert_eq!(provider.provider_name(), "memory");
        let plain: StorageConfig = toml::from_str("provider = \"memory\"").unwrap();
        let store = open_store(&plain, Keyring::new(EncryptionKey::generate()))
            .await
            .unwrap();
        assert!(!store.is_cached());
    }

    #[tokio::test]
    async fn an_invalid_cache_table_is_refused_before_any_io() {
        let config: StorageConfig = toml::from_str("provider = \"memory\"\n[cache]\nmax_entries = 0").unwrap();
        let Err(StorageError::Config(e)) = open(&config).await else {
            panic!("opened")
        };
        assert_eq!(e.field(), "cache.max_entries", "{e}");
    }
}
