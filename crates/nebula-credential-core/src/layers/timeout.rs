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

tokio::task_local! {
    static DEADLINE: tokio::time::Instant;
}

/// The deadline of the operation running in this task, when a [`Timeout`] layer set one.
///
/// A backend whose work can outlive a dropped future (a blocking thread waiting on a
/// file lock, say) bounds that wait by this deadline, and must not commit a write after
/// it: the caller has been told the write failed.
pub fn deadline() -> Option<tokio::time::Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

impl Layer for TimeoutLayer {
    fn call<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        mut next: Next<'a, T>,
    ) -> BoxFuture<'a, Result<T, StorageError>> {
        Box::pin(async move {
            let after = self.timeouts.for_operation(call.operation);
            let at = tokio::time::Instant::now() + after;
            let at = deadline().map_or(at, |outer| outer.min(at));
            match DEADLINE.scope(at, tokio::time::timeout_at(at, next())).await {
                Ok(result) => result,
                Err(_) => Err(StorageError::timeout(call.provider, call.operation, call.id, after)),
            }
        })
    }
}
