//! The conformance suite against [`MemoryProvider`] under the full layer stack.

use std::sync::Arc;

use nebula_credential_core::{MemoryProvider, RetryPolicy, StorageMetrics, Timeouts, layers};

nebula_credential_core::conformance_tests!(memory, |_namespace: String| async move {
    layers::standard(
        MemoryProvider::with_limit(64 * 1024),
        RetryPolicy::default(),
        Timeouts::default(),
        Arc::new(StorageMetrics::new()),
    )
    .expect("valid layer settings")
});
