//! [`Metered`]: counts calls, errors and latency in [`StorageMetrics`].

use std::sync::Arc;
use std::time::Instant;

use crate::error::StorageError;
use crate::metrics::{CallOutcome, StorageMetrics};
use crate::provider::StorageProvider;

use super::{BoxFuture, Call, Layer, Layered, Next};

/// Records every call's latency and outcome in a shared [`StorageMetrics`]. `NotFound`
/// is counted apart from failures: it is an answer, and `CredentialStore::put` asks it.
///
/// With the `metrics` feature each call is also emitted through the `metrics` facade:
/// `nebula_credential_operations_total` (counter) and
/// `nebula_credential_operation_duration_seconds` (histogram), labelled `provider`,
/// `operation` and `outcome` (`ok`, `not_found`, `conflict`, `error`).
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
            let (elapsed, outcome) = (start.elapsed(), CallOutcome::of(&result));
            self.metrics.record(call.operation, elapsed, outcome);
            emit(call, elapsed, outcome);
            result
        })
    }
}

/// Emits one call through the `metrics` facade (feature `metrics`).
#[allow(unused_variables)]
fn emit(call: Call<'_>, elapsed: std::time::Duration, outcome: CallOutcome) {
    #[cfg(feature = "metrics")]
    {
        let labels = [
            ("provider", call.provider),
            ("operation", call.operation.as_str()),
            ("outcome", outcome.as_str()),
        ];
        metrics::counter!("nebula_credential_operations_total", &labels).increment(1);
        metrics::histogram!("nebula_credential_operation_duration_seconds", &labels).record(elapsed.as_secs_f64());
    }
}
