//! The shared conformance suite on the local provider, each case in a fresh directory.

use std::path::PathBuf;

use nebula_credential_local::{LocalStorageConfig, LocalStorageProvider};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("local-conformance")
}

nebula_credential_core::conformance_tests!(local, |namespace: String| async move {
    LocalStorageProvider::new(LocalStorageConfig::new(root().join(namespace)))
        .await
        .expect("open local provider")
});

nebula_credential_core::conformance_tests!(local_without_locking, |namespace: String| async move {
    LocalStorageProvider::new(LocalStorageConfig {
        enable_locking: false,
        ..LocalStorageConfig::new(root().join(namespace))
    })
    .await
    .expect("open local provider")
});
