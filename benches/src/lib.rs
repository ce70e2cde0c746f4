//! The skeleton every criterion bench of this package shares, so a bench file holds only
//! its backend's setup and the raw calls it compares against:
//!
//! - [`Bench`]: the runtime, criterion and the figures of one bench run;
//!   [`Bench::compare`] measures a provider operation interleaved with the raw SDK calls
//!   it makes, in the same run, and records both latencies and their ratio;
//!   [`Bench::criterion_pair`] puts the same two side by side in a criterion group;
//!   [`Bench::finish`] prints criterion's summary and the figures.
//! - [`Samples`] (latencies with percentiles), [`Pair`] (a provider's samples beside the
//!   raw ones), [`Figures`] (the `name: value unit` lines each bench prints at its end;
//!   the figures of `benches/README.md` come from them).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use nebula_credential::{MemoryProvider, StorageProvider};
//! use nebula_credential_benches::{Bench, sealed};
//!
//! let bench = Bench::new("memory")?;
//! let p = MemoryProvider::new();
//! let id = "bench_key".parse()?;
//! bench.block_on(p.store(&id, &sealed(1024), &Default::default()))?;
//! // Prints memory_retrieve_p50/_p95, memory_raw_retrieve_p50/_p95 and
//! // memory_retrieve_p50_ratio_provider_to_raw.
//! bench.compare(
//!     "retrieve",
//!     100,
//!     |_| async { p.retrieve(&id).await.map(drop).expect("retrieve") },
//!     |_| async { p.exists(&id).await.map(drop).expect("raw call") },
//! );
//! bench.finish();
//! # Ok(())
//! # }
//! ```

use std::cell::RefCell;
use std::future::Future;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use nebula_credential::{CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, StorageProvider};

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

/// A provider operation's latencies beside those of the raw calls it makes, measured
/// interleaved in the same run (see [`Bench::interleaved`]).
#[derive(Debug, Clone)]
pub struct Pair {
    /// The provider's operation.
    pub ours: Samples,
    /// The raw SDK (or `std::fs`) calls of the same operation.
    pub raw: Samples,
}

impl Pair {
    /// Provider p50 over raw p50.
    pub fn p50_ratio(&self) -> f64 {
        micros(self.ours.p50()) / micros(self.raw.p50())
    }

    /// Provider p95 over raw p95.
    pub fn p95_ratio(&self) -> f64 {
        micros(self.ours.p95()) / micros(self.raw.p95())
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
    pub fn add_pair(&mut self, backend: &str, label: &str, pair: &Pair) {
        self.add_latency(&format!("{backend}_{label}"), &pair.ours);
        self.add_latency(&format!("{backend}_raw_{label}"), &pair.raw);
        self.add(
            &format!("{backend}_{label}_p50_ratio_provider_to_raw"),
            pair.p50_ratio(),
            "x",
        );
    }

    /// The lines added so far, in order.
    pub fn lines(&self) -> &[String] {
        &self.0
    }

    /// Prints every line to stdout.
    pub fn print(&self) {
        println!("\n== figures ==");
        for line in &self.0 {
            println!("{line}");
        }
    }
}

/// The name of the figure line every remote backend's bench prints:
/// `revision p50 ÷ retrieve p50: X` (see [`Bench::revision_beside_retrieve`]).
pub const REVISION_RATIO: &str = "revision p50 ÷ retrieve p50";

/// A duration in microseconds.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The record every bench stores: `len` ciphertext bytes under key id `bench` (the
/// provider never decrypts, so any bytes do).
pub fn sealed(len: usize) -> EncryptedData {
    EncryptedData {
        version: 1,
        key_id: "bench".into(),
        nonce: [1; 12],
        ciphertext: vec![7; len],
    }
}

/// Says why a remote bench measures nothing: `unset` names the missing variables (with
/// their verb, e.g. `NEBULA_TEST_AWS_ENDPOINT is not set`), `server` what
/// `cargo xtask bench BACKEND` starts.
pub fn skip(backend: &str, unset: &str, server: &str) {
    println!("{}", skip_message(backend, unset, server));
}

fn skip_message(backend: &str, unset: &str, server: &str) -> String {
    format!("{backend} bench: {unset}; run `cargo xtask bench {backend}` to start {server} and measure")
}

/// One bench run: its runtime, criterion and figures, under the backend's name (the
/// criterion group of [`criterion_pair`](Self::criterion_pair) and the prefix of the
/// figures of [`compare`](Self::compare)).
pub struct Bench {
    name: &'static str,
    rt: tokio::runtime::Runtime,
    criterion: RefCell<Criterion>,
    figures: RefCell<Figures>,
}

impl Bench {
    /// A run on a 2-worker multi-thread runtime, criterion measuring 3 s after a 1 s
    /// warm-up (and reading its command line).
    pub fn new(name: &'static str) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let criterion = Criterion::default()
            .measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1))
            .configure_from_args();
        Ok(Self::with(name, rt, criterion))
    }

    /// A run on the given runtime and criterion.
    pub fn with(name: &'static str, rt: tokio::runtime::Runtime, criterion: Criterion) -> Self {
        Bench {
            name,
            rt,
            criterion: RefCell::new(criterion),
            figures: RefCell::new(Figures::default()),
        }
    }

    /// The backend's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The runtime every measurement runs on.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.rt
    }

    /// Runs `f` to completion on the bench's runtime (setup and cleanup).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Runs `body` with a criterion group named `group` (criterion's default sample size)
    /// and the runtime to drive async operations in it.
    pub fn group(
        &self,
        group: impl Into<String>,
        body: impl FnOnce(&mut BenchmarkGroup<'_, WallTime>, &tokio::runtime::Runtime),
    ) {
        let mut criterion = self.criterion.borrow_mut();
        let mut group = criterion.benchmark_group(group);
        body(&mut group, &self.rt);
        group.finish();
    }

    /// A criterion group named after the backend, 20 samples, with the provider's
    /// operation (`ours`, bench id `ours_id`) beside the raw call (`raw`, bench id `raw_id`).
    pub fn criterion_pair<A, FA, TA, B, FB, TB>(&self, ours_id: &str, mut ours: A, raw_id: &str, mut raw: B)
    where
        A: FnMut() -> FA,
        FA: Future<Output = TA>,
        B: FnMut() -> FB,
        FB: Future<Output = TB>,
    {
        self.group(self.name, |group, rt| {
            group.sample_size(20);
            group.bench_function(ours_id, |b| b.iter(|| rt.block_on(ours())));
            group.bench_function(raw_id, |b| b.iter(|| rt.block_on(raw())));
        });
    }

    /// Runs the provider's operation `ours` and the raw calls `raw` alternately `n` times
    /// each (both see the same load), recording nothing.
    pub fn interleaved<A, FA, B, FB>(&self, n: usize, ours: A, raw: B) -> Pair
    where
        A: FnMut(usize) -> FA,
        FA: Future<Output = ()>,
        B: FnMut(usize) -> FB,
        FB: Future<Output = ()>,
    {
        let (ours, raw) = Samples::interleaved(&self.rt, n, ours, raw);
        Pair { ours, raw }
    }

    /// [`interleaved`](Self::interleaved), then [`record`](Self::record) under `label`.
    pub fn compare<A, FA, B, FB>(&self, label: &str, n: usize, ours: A, raw: B) -> Pair
    where
        A: FnMut(usize) -> FA,
        FA: Future<Output = ()>,
        B: FnMut(usize) -> FB,
        FB: Future<Output = ()>,
    {
        let pair = self.interleaved(n, ours, raw);
        self.record(label, &pair);
        pair
    }

    /// Adds `NAME_LABEL_p50/_p95`, `NAME_raw_LABEL_p50/_p95` and
    /// `NAME_LABEL_p50_ratio_provider_to_raw` ([`Figures::add_pair`]).
    pub fn record(&self, label: &str, pair: &Pair) {
        self.figures.borrow_mut().add_pair(self.name, label, pair);
    }

    /// The figures, to add lines of the bench's own.
    pub fn figures(&self) -> std::cell::RefMut<'_, Figures> {
        self.figures.borrow_mut()
    }

    /// Runs `p.revision(id)` and `p.retrieve(id)` alternately `n` times each, then adds
    /// the line `revision p50 ÷ retrieve p50: X` (what a cache's revalidation costs
    /// against a read; [`REVISION_RATIO`]).
    pub fn revision_beside_retrieve(&self, p: &dyn StorageProvider, id: &CredentialId, n: usize) -> Pair {
        let pair = self.interleaved(
            n,
            |_| async { p.revision(id).await.map(drop).expect("revision") },
            |_| async { p.retrieve(id).await.map(drop).expect("retrieve") },
        );
        self.figures
            .borrow_mut()
            .0
            .push(format!("{REVISION_RATIO}: {:.3}", pair.p50_ratio()));
        pair
    }

    /// Stores `count` credentials `listed_000`, `listed_001`, … for the `list` comparison.
    pub fn store_listed(&self, p: &dyn StorageProvider, count: usize) -> Result<(), nebula_credential::StorageError> {
        self.rt.block_on(async {
            for i in 0..count {
                let id: CredentialId = format!("listed_{i:03}").parse()?;
                p.store(&id, &sealed(1024), &CredentialMetadata::new()).await?;
            }
            Ok(())
        })
    }

    /// Deletes every credential `p` lists (a remote bench's cleanup).
    pub fn remove_all(&self, p: &dyn StorageProvider) -> Result<(), nebula_credential::StorageError> {
        self.rt.block_on(async {
            for id in p.list(&CredentialFilter::new()).await? {
                p.delete(&id).await?;
            }
            Ok(())
        })
    }

    /// Prints criterion's summary, then the figures.
    pub fn finish(&self) {
        self.criterion.borrow_mut().final_summary();
        self.figures.borrow().print();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(micros: impl IntoIterator<Item = u64>) -> Samples {
        Samples(micros.into_iter().map(Duration::from_micros).collect())
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = samples(1..=100);
        assert_eq!(s.p50(), Duration::from_micros(50));
        assert_eq!(s.p95(), Duration::from_micros(95));
        assert_eq!(s.percentile(100.0), Duration::from_micros(100));
        assert_eq!(s.percentile(0.0), Duration::from_micros(1));
    }

    #[test]
    fn a_pair_gives_provider_over_raw_ratios() {
        let pair = Pair {
            ours: samples((1..=100).map(|i| i * 3)),
            raw: samples((1..=100).map(|i| i * 2)),
        };
        assert_eq!(pair.p50_ratio(), 1.5);
        assert_eq!(pair.p95_ratio(), 1.5);
    }

    #[test]
    fn a_pair_is_recorded_as_both_latencies_and_the_p50_ratio() {
        let mut figures = Figures::default();
        let pair = Pair {
            ours: samples([4]),
            raw: samples([2]),
        };
        figures.add_pair("aws", "store", &pair);
        assert_eq!(
            figures.lines(),
            [
                "aws_store_p50: 4.000 us",
                "aws_store_p95: 4.000 us",
                "aws_raw_store_p50: 2.000 us",
                "aws_raw_store_p95: 2.000 us",
                "aws_store_p50_ratio_provider_to_raw: 2.000 x",
            ]
        );
    }

    #[test]
    fn compare_runs_both_sides_interleaved_and_records_under_the_backend_name() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let bench = Bench::with("mem", rt, Criterion::default());
        let order = RefCell::new(Vec::new());
        let pair = bench.compare(
            "op",
            3,
            |i| {
                order.borrow_mut().push(("ours", i));
                async {}
            },
            |i| {
                order.borrow_mut().push(("raw", i));
                async {}
            },
        );
        assert_eq!(
            order.into_inner(),
            [
                ("ours", 0),
                ("raw", 0),
                ("ours", 1),
                ("raw", 1),
                ("ours", 2),
                ("raw", 2)
            ]
        );
        assert_eq!((pair.ours.0.len(), pair.raw.0.len()), (3, 3));
        let names: Vec<_> = bench
            .figures()
            .lines()
            .iter()
            .map(|l| l.split(':').next().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "mem_op_p50",
                "mem_op_p95",
                "mem_raw_op_p50",
                "mem_raw_op_p95",
                "mem_op_p50_ratio_provider_to_raw"
            ]
        );
    }

    #[test]
    fn revision_beside_retrieve_prints_the_ratio_line() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let bench = Bench::with("mem", rt, Criterion::default());
        let p = nebula_credential::MemoryProvider::new();
        let id: CredentialId = "k".parse().unwrap();
        bench
            .block_on(p.store(&id, &sealed(16), &CredentialMetadata::new()))
            .unwrap();
        let pair = bench.revision_beside_retrieve(&p, &id, 5);
        assert_eq!((pair.ours.0.len(), pair.raw.0.len()), (5, 5));
        let figures = bench.figures();
        let last = figures.lines().last().unwrap();
        assert!(last.starts_with("revision p50 ÷ retrieve p50: "), "{last}");
        assert!(last.rsplit(' ').next().unwrap().parse::<f64>().is_ok(), "{last}");
    }

    #[test]
    fn the_skip_message_says_how_to_measure() {
        assert_eq!(
            skip_message("aws", "NEBULA_TEST_AWS_ENDPOINT is not set", "moto"),
            "aws bench: NEBULA_TEST_AWS_ENDPOINT is not set; run `cargo xtask bench aws` to start moto and measure"
        );
    }
}
