//! `cargo bench --bench memory`: the cost of the layer stack. The same operations on the
//! bare in-memory provider (baseline) and through `open()`'s full stack
//! (tracing, metrics, retry, timeout), in the same run.

use std::sync::Arc;

use criterion::Criterion;
use nebula_credential::{
    CredentialId, CredentialMetadata, EncryptedData, MemoryProvider, StorageConfig, StorageProvider, open,
};
use nebula_credential_benches::{Figures, Samples};

const SAMPLES: usize = 20_000;

fn data() -> EncryptedData {
    EncryptedData {
        version: 1,
        key_id: "bench".into(),
        nonce: [0; 12],
        ciphertext: vec![7; 1024],
    }
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let bare: Arc<dyn StorageProvider> = Arc::new(MemoryProvider::new());
    let layered = rt.block_on(open(&StorageConfig::default()))?;
    let id: CredentialId = "bench_key".parse()?;
    for p in [&bare, &layered] {
        rt.block_on(p.store(&id, &data(), &CredentialMetadata::new()))?;
    }

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("memory");
    for (name, p) in [("bare", &bare), ("layered", &layered)] {
        group.bench_function(format!("retrieve_{name}"), |b| {
            b.iter(|| rt.block_on(p.retrieve(&id)).expect("retrieve"))
        });
        group.bench_function(format!("store_{name}"), |b| {
            b.iter(|| {
                rt.block_on(p.store(&id, &data(), &CredentialMetadata::new()))
                    .expect("store")
            })
        });
    }
    group.finish();
    c.final_summary();

    let mut figures = Figures::default();
    let mut p50 = Vec::new();
    for (name, p) in [("bare", &bare), ("layered", &layered)] {
        let retrieve = Samples::collect(&rt, SAMPLES, |_| async {
            p.retrieve(&id).await.expect("retrieve");
        });
        let store = Samples::collect(&rt, SAMPLES, |_| async {
            p.store(&id, &data(), &CredentialMetadata::new()).await.expect("store");
        });
        figures.add_latency(&format!("memory_retrieve_{name}"), &retrieve);
        figures.add_latency(&format!("memory_store_{name}"), &store);
        p50.push((retrieve.p50(), store.p50()));
    }
    let ratio = |a: std::time::Duration, b: std::time::Duration| a.as_secs_f64() / b.as_secs_f64();
    figures.add(
        "memory_retrieve_p50_ratio_layered_to_bare",
        ratio(p50[1].0, p50[0].0),
        "x",
    );
    figures.add("memory_store_p50_ratio_layered_to_bare", ratio(p50[1].1, p50[0].1), "x");
    figures.print();
    Ok(())
}
