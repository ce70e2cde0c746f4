//! [`Metered`]: counts calls, errors and latency in [`StorageMetrics`].

use std::sync::Arc;
use std::time::Instant;

use crate::error::StorageError;
use crate::metrics::{CallOutcome, StorageMetrics};
use crate::provider::StorageProvider;

use super::{BoxFuture, Call, Layer, Layered, Next};

/// Records every call's latency and outcome in a shared [`StorageMetrics`]. `NotFound`
/// is counted apart from failures: it is an answer, and `CredentialStore::put` asks it.
pub type Metered<P> = Layered<MeteredLayer, P>;

/// The layer behind [`Metered`].
#[derive(Debug, Clone)]
pub struct MeteredLayer {
    metrics: Arc<StorageMetrics>,
}

impl<P: StorageProvider> Metered<P> {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: P, metrics: Arc<StorageMetrics>) -> Self {
        Layered::wrap(MeteredLayer { metrics }, inner)
    }

    /// The shared counters.
    pub fn metrics(&self) -> &Arc<StorageMetrics> {
        &self.layer().metrics
    }
}

impl Layer for MeteredLayer {
    fn call<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        mut next: Next<'a, T>,
    ) -> BoxFuture<'a, Result<T, StorageError>> {
        Box::pin(async move {
            let start = Instant::now();
            let result = next().await;
            self.metrics
                .record(call.operation, start.elapsed(), CallOutcome::of(&result));
            result
        })
    }
}
