//! [`StorageMetrics`]: lock-free counters per operation, filled by the
//! [`Metered`](crate::layers::Metered) and [`Retry`](crate::layers::Retry) layers.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::operation::Operation;

mod histogram;

use histogram::AtomicHistogram;
pub use histogram::LatencyHistogram;

/// How a call ended, for [`StorageMetrics::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// It succeeded.
    Ok,
    /// It answered [`StorageError::NotFound`](crate::StorageError::NotFound): an answer, not a failure.
    NotFound,
    /// A write precondition did not hold ([`StorageError::Conflict`](crate::StorageError::Conflict)):
    /// an answer the caller acts on, not a failure of the backend.
    Conflict,
    /// It failed.
    Error,
}

impl CallOutcome {
    /// The outcome of `result`.
    pub fn of<T>(result: &Result<T, crate::StorageError>) -> Self {
        match result {
            Ok(_) => CallOutcome::Ok,
            Err(e) if e.is_not_found() => CallOutcome::NotFound,
            Err(e) if e.is_conflict() => CallOutcome::Conflict,
            Err(_) => CallOutcome::Error,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    count: AtomicU64,
    not_found: AtomicU64,
    conflicts: AtomicU64,
    errors: AtomicU64,
    retries: AtomicU64,
    latency_us: AtomicU64,
    histogram: AtomicHistogram,
}

/// Counters of one operation, as read by [`StorageMetrics::snapshot`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OperationStats {
    /// Calls completed (successful or not).
    pub count: u64,
    /// Calls that answered `NotFound` (not counted as errors).
    pub not_found: u64,
    /// Calls that answered `Conflict` (not counted as errors).
    pub conflicts: u64,
    /// Calls that failed (any error but `NotFound` and `Conflict`).
    pub errors: u64,
    /// Retries performed by the retry layer (not counted in `count`).
    pub retries: u64,
    /// Sum of call latencies, in microseconds.
    pub latency_sum_us: u64,
    /// Call latencies by bucket, for percentiles (`latency.percentile(95.0)`).
    pub latency: LatencyHistogram,
}

impl OperationStats {
    /// Mean latency in milliseconds, 0 when nothing was counted.
    pub fn avg_latency_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.latency_sum_us as f64 / self.count as f64 / 1_000.0
        }
    }
}

/// A point-in-time copy of [`StorageMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// `store` counters.
    pub store: OperationStats,
    /// `retrieve` counters.
    pub retrieve: OperationStats,
    /// `delete` counters.
    pub delete: OperationStats,
    /// `list` counters.
    pub list: OperationStats,
    /// `exists` counters.
    pub exists: OperationStats,
    /// `check` counters.
    pub check: OperationStats,
    /// `revision` counters.
    pub revision: OperationStats,
    /// What the [`Cached`](crate::cache::Cached) layer did (all zero without a cache).
    pub cache: CacheStats,
}

/// Events of the [`Cached`](crate::cache::Cached) layer, as counted in
/// [`CacheStats`] and emitted as `nebula_credential_cache_events_total{event}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheEvent {
    /// A read answered from a fresh entry.
    Hit,
    /// A read that had to ask the backend (no entry, or one past `max_stale_ms`).
    Miss,
    /// A read answered from an entry past `fresh_ms` (while it is revalidated).
    StaleServed,
    /// A revalidation found the revision unchanged: the entry is fresh again.
    RevalidationUnchanged,
    /// A revalidation found a new revision (or the credential gone) and refetched.
    RevalidationChanged,
    /// A value fetch forced by `refresh`.
    Refresh,
    /// An entry pushed out by `max_entries`.
    Eviction,
}

impl CacheEvent {
    /// Every event, in a fixed order.
    pub const ALL: [CacheEvent; 7] = [
        CacheEvent::Hit,
        CacheEvent::Miss,
        CacheEvent::StaleServed,
        CacheEvent::RevalidationUnchanged,
        CacheEvent::RevalidationChanged,
        CacheEvent::Refresh,
        CacheEvent::Eviction,
    ];

    /// The `event` label value: `hit`, `miss`, `stale_served`, `revalidation_unchanged`,
    /// `revalidation_changed`, `refresh`, `eviction`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CacheEvent::Hit => "hit",
            CacheEvent::Miss => "miss",
            CacheEvent::StaleServed => "stale_served",
            CacheEvent::RevalidationUnchanged => "revalidation_unchanged",
            CacheEvent::RevalidationChanged => "revalidation_changed",
            CacheEvent::Refresh => "refresh",
            CacheEvent::Eviction => "eviction",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Cache counters, as read by [`StorageMetrics::snapshot`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads answered from a fresh entry.
    pub hits: u64,
    /// Reads that asked the backend.
    pub misses: u64,
    /// Reads answered from a stale entry (within `max_stale_ms`).
    pub stale_served: u64,
    /// Revalidations that found the revision unchanged (no value fetched).
    pub revalidations_unchanged: u64,
    /// Revalidations that found a change and refetched.
    pub revalidations_changed: u64,
    /// Value fetches forced by `refresh`.
    pub refreshes: u64,
    /// Entries evicted by `max_entries`.
    pub evictions: u64,
}

impl CacheStats {
    /// Hits / (hits + stale served + misses), 0 when nothing was read.
    pub fn hit_rate(&self) -> f64 {
        let reads = self.hits + self.stale_served + self.misses;
        if reads == 0 {
            0.0
        } else {
            self.hits as f64 / reads as f64
        }
    }
}

impl MetricsSnapshot {
    /// Counters of `operation`.
    pub fn get(&self, operation: Operation) -> &OperationStats {
        match operation {
            Operation::Store => &self.store,
            Operation::Retrieve => &self.retrieve,
            Operation::Delete => &self.delete,
            Operation::List => &self.list,
            Operation::Exists => &self.exists,
            Operation::Check => &self.check,
            Operation::Revision => &self.revision,
        }
    }

    fn total(&self, f: impl Fn(&OperationStats) -> u64) -> u64 {
        Operation::ALL.iter().map(|op| f(self.get(*op))).sum()
    }

    /// All calls counted.
    pub fn total_operations(&self) -> u64 {
        self.total(|s| s.count)
    }

    /// All errors counted.
    pub fn total_errors(&self) -> u64 {
        self.total(|s| s.errors)
    }

    /// All retries counted.
    pub fn total_retries(&self) -> u64 {
        self.total(|s| s.retries)
    }

    /// Failed calls / calls over every operation (`NotFound` is not a failure), 0 when
    /// nothing was counted.
    pub fn error_rate(&self) -> f64 {
        let ops = self.total_operations();
        if ops == 0 {
            0.0
        } else {
            self.total_errors() as f64 / ops as f64
        }
    }
}

impl fmt::Display for MetricsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for op in Operation::ALL {
            let s = self.get(op);
            writeln!(
                f,
                "{:<8} count={:<6} not_found={:<4} conflicts={:<4} errors={:<4} retries={:<4} avg={:.3} ms p50={:?} p95={:?}",
                op.as_str(),
                s.count,
                s.not_found,
                s.conflicts,
                s.errors,
                s.retries,
                s.avg_latency_ms(),
                s.latency.percentile(50.0).unwrap_or_default(),
                s.latency.percentile(95.0).unwrap_or_default()
            )?;
        }
        let c = &self.cache;
        if *c != CacheStats::default() {
            writeln!(
                f,
                "cache    hits={} misses={} stale_served={} revalidations_unchanged={} revalidations_changed={} refreshes={} evictions={}",
                c.hits,
                c.misses,
                c.stale_served,
                c.revalidations_unchanged,
                c.revalidations_changed,
                c.refreshes,
                c.evictions
            )?;
        }
        write!(f, "error rate {:.2} %", self.error_rate() * 100.0)
    }
}

/// Atomic counters per operation: count, errors, retries, latency sum and a latency
/// histogram (percentiles), plus the cache's events.
///
/// Share it as `Arc<StorageMetrics>` between the layers and the application.
#[derive(Debug, Default)]
pub struct StorageMetrics {
    ops: [Counters; Operation::ALL.len()],
    cache: [AtomicU64; CacheEvent::ALL.len()],
}

impl StorageMetrics {
    /// Fresh counters, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one completed call of `operation`.
    pub fn record(&self, operation: Operation, latency: Duration, outcome: CallOutcome) {
        let c = &self.ops[operation.index()];
        c.count.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        c.latency_us.fetch_add(us, Ordering::Relaxed);
        c.histogram.record_us(us);
        match outcome {
            CallOutcome::Ok => {}
            CallOutcome::NotFound => {
                c.not_found.fetch_add(1, Ordering::Relaxed);
            }
            CallOutcome::Conflict => {
                c.conflicts.fetch_add(1, Ordering::Relaxed);
            }
            CallOutcome::Error => {
                c.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records one retry of `operation`.
    pub fn record_retry(&self, operation: Operation) {
        self.ops[operation.index()].retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one event of the cache.
    pub fn record_cache(&self, event: CacheEvent) {
        self.cache[event.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let read = |op: Operation| {
            let c = &self.ops[op.index()];
            OperationStats {
                count: c.count.load(Ordering::Relaxed),
                not_found: c.not_found.load(Ordering::Relaxed),
                conflicts: c.conflicts.load(Ordering::Relaxed),
                errors: c.errors.load(Ordering::Relaxed),
                retries: c.retries.load(Ordering::Relaxed),
                latency_sum_us: c.latency_us.load(Ordering::Relaxed),
                latency: c.histogram.snapshot(),
            }
        };
        let cache = |event: CacheEvent| self.cache[event.index()].load(Ordering::Relaxed);
        MetricsSnapshot {
            store: read(Operation::Store),
            retrieve: read(Operation::Retrieve),
            delete: read(Operation::Delete),
            list: read(Operation::List),
            exists: read(Operation::Exists),
            check: read(Operation::Check),
            revision: read(Operation::Revision),
            cache: CacheStats {
                hits: cache(CacheEvent::Hit),
                misses: cache(CacheEvent::Miss),
                stale_served: cache(CacheEvent::StaleServed),
                revalidations_unchanged: cache(CacheEvent::RevalidationUnchanged),
                revalidations_changed: cache(CacheEvent::RevalidationChanged),
                refreshes: cache(CacheEvent::Refresh),
                evictions: cache(CacheEvent::Eviction),
            },
        }
    }

    /// Mean `store` latency in milliseconds.
    pub fn avg_store_latency_ms(&self) -> f64 {
        self.snapshot().store.avg_latency_ms()
    }

    /// Mean `retrieve` latency in milliseconds.
    pub fn avg_retrieve_latency_ms(&self) -> f64 {
        self.snapshot().retrieve.avg_latency_ms()
    }

    /// Errors / calls over every operation.
    pub fn error_rate(&self) -> f64 {
        self.snapshot().error_rate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn averages_and_error_rate() {
        let m = StorageMetrics::new();
        assert_eq!(m.error_rate(), 0.0);
        m.record(Operation::Store, Duration::from_millis(2), CallOutcome::Ok);
        m.record(Operation::Store, Duration::from_millis(4), CallOutcome::Error);
        m.record(Operation::Retrieve, Duration::from_micros(500), CallOutcome::NotFound);
        m.record_retry(Operation::Store);
        assert_eq!(m.avg_store_latency_ms(), 3.0);
        assert_eq!(m.avg_retrieve_latency_ms(), 0.5);
        assert!((m.error_rate() - 1.0 / 3.0).abs() < 1e-12);
        let s = m.snapshot();
        assert_eq!((s.retrieve.not_found, s.retrieve.errors), (1, 0));
        assert_eq!(s.store.retries, 1);
        assert!(s.to_string().contains("store"));
    }

    #[test]
    fn exact_under_concurrency() {
        let m = Arc::new(StorageMetrics::new());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..1_000u64 {
                        let op = Operation::ALL[(i % 5) as usize];
                        let outcome = if (i + t) % 10 == 0 {
                            CallOutcome::Error
                        } else {
                            CallOutcome::Ok
                        };
                        m.record(op, Duration::from_micros(1), outcome);
                        m.record_retry(op);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = m.snapshot();
        assert_eq!(s.total_operations(), 8_000);
        assert_eq!(s.total_retries(), 8_000);
        assert_eq!(s.total_errors(), 800);
        assert_eq!(s.store.count, 1_600);
        assert_eq!(s.store.latency_sum_us, 1_600);
    }
}
