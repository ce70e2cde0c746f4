//! [`Traced`]: one `tracing` span per operation.

use std::time::Instant;

use tracing::Instrument;

use crate::error::StorageError;
use crate::id::CredentialId;
use crate::provider::StorageProvider;

use super::{BoxFuture, Call, Layer, Layered, Next};

/// Opens a `credential_storage` span per call with the provider, operation and
/// credential id, and closes it with an event carrying the duration and, on failure,
/// the error kind and message. Values, ciphertexts and tags are never recorded.
pub type Traced<P> = Layered<TracedLayer, P>;

/// The layer behind [`Traced`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TracedLayer;

impl<P: StorageProvider> Traced<P> {
    /// Wraps `inner`.
    pub fn new(inner: P) -> Self {
        Layered::wrap(TracedLayer, inner)
    }
}

impl Layer for TracedLayer {
    fn call<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        mut next: Next<'a, T>,
    ) -> BoxFuture<'a, Result<T, StorageError>> {
        let span = tracing::debug_span!(
            "credential_storage",
            provider = call.provider,
            operation = call.operation.as_str(),
            credential_id = call.id.map(CredentialId::as_str),
        );
        Box::pin(
            async move {
                let start = Instant::now();
                let result = next().await;
                let duration_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                match &result {
                    Ok(_) => tracing::debug!(duration_us, "completed"),
                    Err(e) if e.is_not_found() => {
                        tracing::debug!(duration_us, error.kind = e.kind().as_str(), "not found")
                    }
                    Err(e) => {
                        tracing::warn!(duration_us, error.kind = e.kind().as_str(), error = %e, "failed")
                    }
                }
                result
            }
            .instrument(span),
        )
    }
}
