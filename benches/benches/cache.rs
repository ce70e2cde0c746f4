//! `cargo bench --bench cache`: the `[cache]` layer. A cached `CredentialStore::get` of a
//! 1 KiB credential (decryption included) beside the same get through `open()`'s full
//! stack over the in-memory backend without a cache, and over the local backend without a
//! cache, each pair interleaved in the same run; then
//! the backend calls made by 1,000 concurrent reads of a cold id (single flight) and by
//! 1,000 concurrent reads of a stale entry (one revalidation). A last figure times the
//! decryption of the same 1 KiB alone (AES-256-GCM, through the same `block_on`,
//! interleaved with hits): the floor under a cache hit.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nebula_credential::cache::{CacheConfig, Cached};
use nebula_credential::local::LocalStorageConfig;
use nebula_credential::{
    CredentialId, CredentialStore, EncryptionKey, Keyring, StorageConfig, StorageMetrics, Tags,
    open_store_with_metrics, open_with_metrics,
};
use nebula_credential_benches::Bench;

const SAMPLES: usize = 20_000;
const CONCURRENT: usize = 1_000;

fn id(s: &str) -> CredentialId {
    s.parse().expect("id")
}

/// A store over the in-memory backend (full layer stack), cached with `cache` if set,
/// and the metrics it records into (backend calls and cache events).
async fn store(cache: Option<CacheConfig>) -> anyhow::Result<(Arc<CredentialStore>, Arc<StorageMetrics>)> {
    let mut config = StorageConfig::Memory(Default::default());
    if let Some(cache) = cache {
        config = config.with_cache(cache);
    }
    let metrics = Arc::new(StorageMetrics::new());
    let keyring = Keyring::new(EncryptionKey::generate());
    let store = open_store_with_metrics(&config, keyring, metrics.clone()).await?;
    Ok((Arc::new(store), metrics))
}

/// A store over the local backend (full layer stack, no cache) in a fresh directory.
async fn local_store() -> anyhow::Result<CredentialStore> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-cache-local");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let config = StorageConfig::Local(LocalStorageConfig::new(&dir));
    Ok(open_store_with_metrics(
        &config,
        Keyring::new(EncryptionKey::generate()),
        Arc::new(StorageMetrics::new()),
    )
    .await?)
}

/// The full stack over memory (metered: its counters count backend calls), a plain store
/// over it (another writer, bypassing the cache) and a cached store over it.
async fn beside(cache: CacheConfig) -> anyhow::Result<(CredentialStore, Arc<CredentialStore>, Arc<StorageMetrics>)> {
    let metrics = Arc::new(StorageMetrics::new());
    let stack = open_with_metrics(&StorageConfig::Memory(Default::default()), metrics.clone()).await?;
    let keyring = Keyring::new(EncryptionKey::generate());
    let writer = CredentialStore::new(stack.clone(), keyring.clone());
    let cached = Cached::with_metrics(stack, cache, metrics.clone())?;
    Ok((writer, Arc::new(CredentialStore::with_cache(cached, keyring)), metrics))
}

/// Runs `CONCURRENT` gets of `id` at once and waits for all of them.
async fn concurrent_gets(store: &Arc<CredentialStore>, id: &CredentialId) {
    let reads: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move { store.get(&id).await.map(drop) })
        })
        .collect();
    for read in reads {
        read.await.expect("task").expect("get");
    }
}

fn main() -> anyhow::Result<()> {
    let bench = Bench::new("cache")?;
    let value = vec![0x5a; 1024];
    let key = id("bench_key");

    // Hit path against the uncached stack over memory, same run, interleaved.
    let (cached, _) = bench.block_on(store(Some(CacheConfig {
        fresh_ms: 3_600_000,
        max_stale_ms: 3_600_000,
        ..CacheConfig::default()
    })))?;
    let (uncached, _) = bench.block_on(store(None))?;
    let local = bench.block_on(local_store())?;
    for s in [cached.as_ref(), uncached.as_ref(), &local] {
        bench.block_on(s.put(&key, &value, Tags::new()))?;
    }
    bench.group("cache", |group, rt| {
        group.bench_function("get_1k_cached", |b| {
            b.iter(|| rt.block_on(cached.get(&key)).expect("get"))
        });
        group.bench_function("get_1k_uncached_memory", |b| {
            b.iter(|| rt.block_on(uncached.get(&key)).expect("get"))
        });
    });
    let pair = bench.interleaved(
        SAMPLES,
        |_| async {
            cached.get(&key).await.expect("get");
        },
        |_| async {
            uncached.get(&key).await.expect("get");
        },
    );
    let against_local = bench.interleaved(
        SAMPLES,
        |_| async {
            cached.get(&key).await.expect("get");
        },
        |_| async {
            local.get(&key).await.expect("get");
        },
    );
    // The floor: decrypting the same 1 KiB with no read around it, interleaved with hits.
    let keyring = Keyring::new(EncryptionKey::generate());
    let sealed = keyring.encrypt(&key, &value)?;
    let floor = bench.interleaved(
        SAMPLES,
        |_| async {
            cached.get(&key).await.expect("get");
        },
        |_| async {
            keyring.decrypt_secret(&key, &sealed).expect("decrypt");
        },
    );
    let ns = |d: Duration| d.as_nanos() as f64;

    // Single flight: 1,000 concurrent reads of an id the cache never saw.
    let cold = id("cold_key");
    let cold_calls = bench.block_on(async {
        let (writer, cached, metrics) = beside(CacheConfig::default()).await?;
        writer.put(&cold, &value, Tags::new()).await?;
        let before = metrics.snapshot().retrieve.count;
        concurrent_gets(&cached, &cold).await;
        anyhow::Ok(metrics.snapshot().retrieve.count - before)
    })?;

    // Stale-while-revalidate: 1,000 concurrent reads of an entry past fresh_ms.
    let stale = id("stale_key");
    let fresh = Duration::from_millis(200);
    let revalidations = bench.block_on(async {
        let config = CacheConfig {
            fresh_ms: fresh.as_millis() as u64,
            ..CacheConfig::default()
        };
        let (writer, cached, metrics) = beside(config).await?;
        writer.put(&stale, &value, Tags::new()).await?;
        cached.get(&stale).await?;
        tokio::time::sleep(fresh + Duration::from_millis(50)).await;
        let before = metrics.snapshot().revision.count;
        concurrent_gets(&cached, &stale).await;
        // Let the background revalidation land.
        tokio::time::sleep(Duration::from_millis(100)).await;
        anyhow::Ok(metrics.snapshot().revision.count - before)
    })?;

    bench.figures().add("cache hit get 1KiB p50", ns(pair.ours.p50()), "ns");
    bench
        .figures()
        .add("uncached memory get 1KiB p50", ns(pair.raw.p50()), "ns");
    bench
        .figures()
        .add("uncached local get 1KiB p50", ns(against_local.raw.p50()), "ns");
    bench.figures().add("decrypt alone 1KiB p50", ns(floor.raw.p50()), "ns");
    bench.finish();
    println!(
        "uncached local get p50 ÷ cache hit get p50: {:.1}",
        ns(against_local.raw.p50()) / ns(against_local.ours.p50())
    );
    println!("cold misses {CONCURRENT} concurrent backend calls: {cold_calls}");
    println!("stale reads {CONCURRENT} concurrent revalidations: {revalidations}");
    Ok(())
}
