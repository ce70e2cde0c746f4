//! The conformance suite against [`MockStorageProvider`], bare and under the full layer stack.

use std::sync::Arc;

use nebula_credential_core::{MockStorageProvider, RetryPolicy, StorageMetrics, Timeouts, layers};

nebula_credential_core::conformance_tests!(memory, |_namespace: String| async move { MockStorageProvider::new() });

nebula_credential_core::conformance_tests!(memory_layered, |_namespace: String| async move {
    layers::standard(
        MockStorageProvider::with_limit(64 * 1024),
        RetryPolicy::default(),
        Timeouts::default(),
        Arc::new(StorageMetrics::new()),
    )
});
