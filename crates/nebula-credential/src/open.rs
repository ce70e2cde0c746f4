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
    let stack = layered(config, metrics.clone()).await?;
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
    let stack = layered(config, metrics.clone()).await?;
    Ok(match cached(config, stack.clone(), metrics)? {
        Some(cache) => CredentialStore::with_cache(cache, keyring),
        None => CredentialStore::new(stack, keyring),
    })
}

/// The backend of `config` in the standard layer stack, validated first.
async fn layered(
    config: &StorageConfig,
    metrics: Arc<StorageMetrics>,
) -> Result<Arc<dyn StorageProvider>, StorageError> {
    config.validate()?;
    let backend = config.inner().build().await?;
    let provider: Arc<dyn StorageProvider> =
        Arc::new(layers::standard(backend, *config.retry(), *config.timeouts(), metrics)?);
    tracing::debug!(
        provider = provider.provider_name(),
        cached = config.cache.is_some(),
        "storage provider opened"
    );
    Ok(provider)
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
