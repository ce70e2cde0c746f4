//! The shared conformance suite on the local provider, each case in a fresh directory:
//! with locking under the standard layer stack, without locking bare (where conditional
//! stores are refused as `Unsupported`).

use std::path::PathBuf;
use std::sync::Arc;

use nebula_credential_core::{ProviderConfig, StorageMetrics, layers};
use nebula_credential_local::{LocalStorageConfig, LocalStorageProvider};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("local-conformance")
}

nebula_credential_core::conformance_tests!(local, |namespace: String| async move {
    let config = LocalStorageConfig::new(root().join(namespace));
    let provider = LocalStorageProvider::new(config.clone())
        .await
        .expect("open local provider");
    layers::standard(
        provider,
        *config.retry(),
        *config.timeouts(),
        Arc::new(StorageMetrics::new()),
    )
    .expect("valid layer settings")
});

nebula_credential_core::conformance_tests!(local_without_locking, |namespace: String| async move {
    LocalStorageProvider::new(LocalStorageConfig {
        enable_locking: false,
        ..LocalStorageConfig::new(root().join(namespace))
    })
    .await
    .expect("open local provider")
});
