//! Shared helpers of the criterion benches: latency samples with percentiles, and the
//! `name: value unit` figure lines each bench prints at its end.

use std::future::Future;
use std::time::{Duration, Instant};

/// Latencies of repeated runs of one operation.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    /// Runs `op` `n` times on `rt`, timing each run on its own.
    pub fn collect<F, Fut>(rt: &tokio::runtime::Runtime, n: usize, mut op: F) -> Self
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            let start = Instant::now();
            rt.block_on(op(i));
            v.push(start.elapsed());
        }
        v.sort();
        Samples(v)
    }

    /// Runs `a` and `b` alternately `n` times each, so both see the same disk and
    /// machine load over the run (fair ratios on a noisy, shared machine).
    pub fn interleaved<A, FA, B, FB>(rt: &tokio::runtime::Runtime, n: usize, mut a: A, mut b: B) -> (Self, Self)
    where
        A: FnMut(usize) -> FA,
        FA: Future<Output = ()>,
        B: FnMut(usize) -> FB,
        FB: Future<Output = ()>,
    {
        let (mut va, mut vb) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            let start = Instant::now();
            rt.block_on(a(i));
            va.push(start.elapsed());
            let start = Instant::now();
            rt.block_on(b(i));
            vb.push(start.elapsed());
        }
        va.sort();
        vb.sort();
        (Samples(va), Samples(vb))
    }

    /// The `p`-th percentile (0..=100), nearest rank.
    pub fn percentile(&self, p: f64) -> Duration {
        assert!(!self.0.is_empty(), "no samples");
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    /// Median.
    pub fn p50(&self) -> Duration {
        self.percentile(50.0)
    }

    /// 95th percentile.
    pub fn p95(&self) -> Duration {
        self.percentile(95.0)
    }
}

/// Figure lines, printed together at the end of a bench run.
#[derive(Debug, Default)]
pub struct Figures(Vec<String>);

impl Figures {
    /// Adds `name: value unit`.
    pub fn add(&mut self, name: &str, value: f64, unit: &str) {
        self.0.push(format!("{name}: {value:.3} {unit}"));
    }

    /// Adds `name_p50` and `name_p95` in microseconds.
    pub fn add_latency(&mut self, name: &str, s: &Samples) {
        self.add(&format!("{name}_p50"), micros(s.p50()), "us");
        self.add(&format!("{name}_p95"), micros(s.p95()), "us");
    }

    /// Adds `BACKEND_LABEL` and `BACKEND_raw_LABEL` latencies (the provider's and the raw
    /// SDK calls it makes) and `BACKEND_LABEL_p50_ratio_provider_to_raw`.
    pub fn add_pair(&mut self, backend: &str, label: &str, ours: &Samples, raw: &Samples) {
        self.add_latency(&format!("{backend}_{label}"), ours);
        self.add_latency(&format!("{backend}_raw_{label}"), raw);
        self.add(
            &format!("{backend}_{label}_p50_ratio_provider_to_raw"),
            micros(ours.p50()) / micros(raw.p50()),
            "x",
        );
    }

    /// Prints every line to stdout.
    pub fn print(&self) {
        println!("\n== figures ==");
        for line in &self.0 {
            println!("{line}");
        }
    }
}

/// A duration in microseconds.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = Samples((1..=100).map(Duration::from_micros).collect());
        assert_eq!(s.p50(), Duration::from_micros(50));
        assert_eq!(s.p95(), Duration::from_micros(95));
        assert_eq!(s.percentile(100.0), Duration::from_micros(100));
        assert_eq!(s.percentile(0.0), Duration::from_micros(1));
    }
}
