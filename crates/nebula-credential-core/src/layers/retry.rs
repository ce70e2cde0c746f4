//! [`Retry`]: retries retryable errors with exponential backoff.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::ConfigError;
use crate::error::{Retried, StorageError};
use crate::id::CredentialId;
use crate::metrics::StorageMetrics;
use crate::provider::StorageProvider;
use crate::retry::RetryPolicy;

use super::{BoxFuture, Call, Layer, Layered, Next};

/// Retries an operation while its error [`is_retryable`](StorageError::is_retryable),
/// up to [`RetryPolicy::max_retries`] times, sleeping [`RetryPolicy::calculate_delay`]
/// between attempts (longer when the backend asked for it with `Retry-After`). Each
/// retry is logged with `tracing::warn!` and counted in the metrics. A transient error
/// it gives up on is returned marked [`Retried`] (attempts, elapsed), so it is no longer
/// [`is_retryable`](StorageError::is_retryable) and callers do not retry it again.
pub type Retry<P> = Layered<RetryLayer, P>;

/// The layer behind [`Retry`].
#[derive(Debug, Clone)]
pub struct RetryLayer {
    policy: RetryPolicy,
    metrics: Option<Arc<StorageMetrics>>,
}

impl<P: StorageProvider> Retry<P> {
    /// Wraps `inner` with `policy`, which must pass [`RetryPolicy::validate`].
    pub fn new(inner: P, policy: RetryPolicy) -> Result<Self, ConfigError> {
        policy.validate(inner.provider_name())?;
        Ok(Layered::wrap(RetryLayer { policy, metrics: None }, inner))
    }

    /// Counts retries in `metrics`.
    pub fn with_metrics(self, metrics: Arc<StorageMetrics>) -> Self {
        let Layered { layer, inner } = self;
        Layered::wrap(
            RetryLayer {
                metrics: Some(metrics),
                ..layer
            },
            inner,
        )
    }
}

impl Layer for RetryLayer {
    fn call<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        mut next: Next<'a, T>,
    ) -> BoxFuture<'a, Result<T, StorageError>> {
        Box::pin(async move {
            let start = Instant::now();
            let mut retries = 0;
            loop {
                match next().await {
                    Err(err) if err.is_retryable() && retries < self.policy.max_retries => {
                        let max = Duration::from_millis(self.policy.max_delay_ms);
                        let delay = self
                            .policy
                            .calculate_delay(retries)
                            .max(err.retry_after().unwrap_or_default().min(max));
                        retries += 1;
                        tracing::warn!(
                            provider = call.provider,
                            operation = call.operation.as_str(),
                            credential_id = call.id.map(CredentialId::as_str),
                            retry = retries,
                            max_retries = self.policy.max_retries,
                            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                            error.kind = err.kind().as_str(),
                            error = %err,
                            "retrying after a transient error"
                        );
                        if let Some(m) = &self.metrics {
                            m.record_retry(call.operation);
                        }
                        tokio::time::sleep(delay).await;
                    }
                    Err(err) if err.is_retryable() && retries > 0 => {
                        return Err(err.mark_retried(Retried {
                            attempts: retries + 1,
                            elapsed: start.elapsed(),
                        }));
                    }
                    result => return result,
                }
            }
        })
    }
}
