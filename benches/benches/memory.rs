//! `cargo bench --bench memory`: the cost of the layer stack. The same operations on the
//! bare in-memory provider (baseline) and through `open()`'s full stack
//! (tracing, metrics, retry, timeout), in the same run.

use std::sync::Arc;

use criterion::Criterion;
use nebula_credential::{CredentialId, CredentialMetadata, MemoryProvider, StorageConfig, StorageProvider, open};
use nebula_credential_benches::{Bench, Samples, micros, sealed};

const SAMPLES: usize = 20_000;

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let bench = Bench::with("memory", rt, Criterion::default().configure_from_args());
    let bare: Arc<dyn StorageProvider> = Arc::new(MemoryProvider::new());
    let layered = bench.block_on(open(&StorageConfig::default()))?;
    let id: CredentialId = "bench_key".parse()?;
    for p in [&bare, &layered] {
        bench.block_on(p.store(&id, &sealed(1024), &CredentialMetadata::new()))?;
    }

    bench.group("memory", |group, rt| {
        for (name, p) in [("bare", &bare), ("layered", &layered)] {
            group.bench_function(format!("retrieve_{name}"), |b| {
                b.iter(|| rt.block_on(p.retrieve(&id)).expect("retrieve"))
            });
            group.bench_function(format!("store_{name}"), |b| {
                b.iter(|| {
                    rt.block_on(p.store(&id, &sealed(1024), &CredentialMetadata::new()))
                        .expect("store")
                })
            });
        }
    });

    let mut p50 = Vec::new();
    for (name, p) in [("bare", &bare), ("layered", &layered)] {
        let retrieve = Samples::collect(bench.runtime(), SAMPLES, |_| async {
            p.retrieve(&id).await.expect("retrieve");
        });
        let store = Samples::collect(bench.runtime(), SAMPLES, |_| async {
            p.store(&id, &sealed(1024), &CredentialMetadata::new())
                .await
                .expect("store");
        });
        let mut figures = bench.figures();
        figures.add_latency(&format!("memory_retrieve_{name}"), &retrieve);
        figures.add_latency(&format!("memory_store_{name}"), &store);
        p50.push((retrieve.p50(), store.p50()));
    }
    let ratio = |a, b| micros(a) / micros(b);
    let mut figures = bench.figures();
    figures.add(
        "memory_retrieve_p50_ratio_layered_to_bare",
        ratio(p50[1].0, p50[0].0),
        "x",
    );
    figures.add("memory_store_p50_ratio_layered_to_bare", ratio(p50[1].1, p50[0].1), "x");
    drop(figures);
    bench.finish();
    Ok(())
}
