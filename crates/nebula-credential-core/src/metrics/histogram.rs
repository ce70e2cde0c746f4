//! [`LatencyHistogram`]: a fixed, log-scale latency histogram that fits in atomics.
//!
//! Latencies are bucketed in microseconds: exact below 4 µs, then four buckets per power
//! of two (so a bucket spans at most 25 % of its lower bound) up to about 19 hours.
//! Recording is one relaxed atomic increment; percentiles are read from a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Number of buckets.
pub(crate) const BUCKETS: usize = 144;

/// The bucket of a latency of `us` microseconds.
fn bucket_of(us: u64) -> usize {
    if us < 4 {
        return us as usize;
    }
    let msb = 63 - us.leading_zeros() as usize;
    let sub = ((us >> (msb - 2)) & 3) as usize;
    (4 * (msb - 1) + sub).min(BUCKETS - 1)
}

/// The largest latency, in microseconds, that falls in `bucket`.
fn upper_bound_us(bucket: usize) -> u64 {
    if bucket < 4 {
        return bucket as u64;
    }
    let msb = bucket / 4 + 1;
    let sub = (bucket % 4) as u64;
    ((4 + sub + 1) << (msb - 2)) - 1
}

/// Atomic bucket counters, written by [`StorageMetrics`](crate::StorageMetrics).
#[derive(Debug)]
pub(crate) struct AtomicHistogram {
    buckets: [AtomicU64; BUCKETS],
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        AtomicHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl AtomicHistogram {
    pub(crate) fn record_us(&self, us: u64) {
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> LatencyHistogram {
        LatencyHistogram {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
        }
    }
}

/// Call latencies of one operation, as counts per log-scale bucket (microseconds; four
/// buckets per power of two). Read percentiles with [`percentile`](Self::percentile).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LatencyHistogram {
    buckets: [u64; BUCKETS],
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram { buckets: [0; BUCKETS] }
    }
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count())
            .field("p50", &self.percentile(50.0))
            .field("p95", &self.percentile(95.0))
            .field("p99", &self.percentile(99.0))
            .finish()
    }
}

impl LatencyHistogram {
    /// Latencies recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The latency below which `p` percent of the calls completed (`p` in 0..=100),
    /// rounded up to its bucket's upper bound (at most 25 % above the true value);
    /// `None` when nothing was recorded.
    ///
    /// ```
    /// use std::time::Duration;
    /// use nebula_credential_core::{CallOutcome, Operation, StorageMetrics};
    /// let m = StorageMetrics::new();
    /// for ms in 1..=100 {
    ///     m.record(Operation::Retrieve, Duration::from_millis(ms), CallOutcome::Ok);
    /// }
    /// let p95 = m.snapshot().retrieve.latency.percentile(95.0).unwrap();
    /// assert!(p95 >= Duration::from_millis(95) && p95 <= Duration::from_millis(120), "{p95:?}");
    /// ```
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((p.clamp(0.0, 100.0) / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_micros(upper_bound_us(bucket)));
            }
        }
        Some(Duration::from_micros(upper_bound_us(BUCKETS - 1)))
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_bound_their_values() {
        let mut last = 0;
        for us in (0..100_000u64).chain([1 << 30, 1 << 40, u64::MAX]) {
            let b = bucket_of(us);
            assert!(b >= last, "{us}");
            last = b;
            if b < BUCKETS - 1 {
                assert!(upper_bound_us(b) >= us, "{us} in {b}");
                assert!(upper_bound_us(b) as f64 <= (us as f64) * 1.25 + 1.0, "{us} in {b}");
            }
        }
    }

    #[test]
    fn percentiles_of_a_known_spread() {
        let h = AtomicHistogram::default();
        for us in 1..=1000 {
            h.record_us(us);
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 1000);
        let p50 = s.percentile(50.0).unwrap().as_micros();
        assert!((500..=625).contains(&p50), "{p50}");
        let p95 = s.percentile(95.0).unwrap().as_micros();
        assert!((950..=1188).contains(&p95), "{p95}");
        assert_eq!(LatencyHistogram::default().percentile(50.0), None);
    }
}
