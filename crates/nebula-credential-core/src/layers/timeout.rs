//! [`Timeout`]: a deadline per operation.

use crate::config::Timeouts;
use crate::error::StorageError;
use crate::provider::StorageProvider;

use super::{BoxFuture, Call, Layer, Layered, Next};

/// Fails an operation with [`StorageError::Timeout`] (retryable) when it outlives its
/// deadline: [`Timeouts::read_ms`] for reads, [`Timeouts::write_ms`] for writes.
pub type Timeout<P> = Layered<TimeoutLayer, P>;

/// The layer behind [`Timeout`].
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    timeouts: Timeouts,
}

impl<P: StorageProvider> Timeout<P> {
    /// Wraps `inner` with `timeouts`.
    pub fn new(inner: P, timeouts: Timeouts) -> Self {
        Layered::wrap(TimeoutLayer { timeouts }, inner)
    }
}

impl Layer for TimeoutLayer {
    fn call<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        mut next: Next<'a, T>,
    ) -> BoxFuture<'a, Result<T, StorageError>> {
        Box::pin(async move {
            let after = self.timeouts.for_operation(call.operation);
            match tokio::time::timeout(after, next()).await {
                Ok(result) => result,
                Err(_) => Err(StorageError::Timeout {
                    provider: call.provider,
                    operation: call.operation,
                    id: call.id.cloned(),
                    after,
                }),
            }
        })
    }
}
