//! [`open`]: from a [`StorageConfig`] to a provider wrapped in the standard layers.

use std::sync::Arc;

use nebula_credential_core::{StorageError, StorageMetrics, StorageProvider, layers};

use crate::config::StorageConfig;

/// Validates `config`, builds its backend and wraps it in the standard layer stack
/// (tracing → metrics → retry → timeout → backend). Fails with
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

/// Like [`open`], recording calls, errors, latencies and retries into `metrics`.
pub async fn open_with_metrics(
    config: &StorageConfig,
    metrics: Arc<StorageMetrics>,
) -> Result<Arc<dyn StorageProvider>, StorageError> {
    let config = config.inner();
    config.validate()?;
    let backend = config.build().await?;
    let provider: Arc<dyn StorageProvider> =
        Arc::new(layers::standard(backend, *config.retry(), *config.timeouts(), metrics)?);
    tracing::debug!(provider = provider.provider_name(), "storage provider opened");
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
    let config = config.inner();
    config.validate()?;
    let backend = config.build_read_only().await?;
    let provider: Arc<dyn StorageProvider> = Arc::new(layers::standard(
        backend,
        *config.retry(),
        *config.timeouts(),
        Arc::new(StorageMetrics::new()),
    )?);
    tracing::debug!(provider = provider.provider_name(), "storage provider opened read-only");
    Ok(provider)
}
