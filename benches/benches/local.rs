//! `cargo bench --bench local`: the local backend through `open()`'s full layer stack,
//! beside two baselines on the same disk in the same run: a raw durable write
//! (temp file + write + fsync + rename + directory fsync with `std::fs`) and a raw read
//! of the same bytes. Ends with `name: value unit` lines: p50/p95 per operation and size,
//! the ratios of `store` p95 and of the conditional `store_if` p95 (at the current
//! revision: lock, `stat` the record, then write) to the raw durable write p95, the p50
//! ratios of `retrieve` to a raw read, of `exists` and `revision` to a raw `stat`
//! (each interleaved with its baseline), and `list` over 10,000 credentials with a
//! one-tag filter matching 1 % (cold, p50, p95). Three more lines say where a read's
//! time goes: `retrieve` on the bare provider (without the layer stack), parsing the
//! record alone, and one round trip to tokio's blocking pool (what an inline read saves).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nebula_credential::local::{LocalStorageConfig, LocalStorageProvider};
use nebula_credential::{
    CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, Precondition, RecordEnvelope, Revision,
    StorageConfig, StorageProvider, open,
};
use nebula_credential_benches::{Bench, Samples, sealed};

const SIZES: [(usize, &str); 2] = [(1024, "1k"), (10 * 1024, "10k")];
const WRITE_SAMPLES: usize = 400;
const READ_SAMPLES: usize = 5_000;
const LIST_CREDENTIALS: usize = 10_000;
const LIST_SAMPLES: usize = 20;

fn id(s: &str) -> CredentialId {
    s.parse().expect("id")
}

fn bench_dir(name: &str) -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("bench-local")
        .join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn provider(dir: &Path) -> anyhow::Result<Arc<dyn StorageProvider>> {
    Ok(open(&StorageConfig::Local(LocalStorageConfig::new(dir))).await?)
}

/// A conditional store at the revision the previous one left, as `CredentialStore::put` does.
async fn store_at_revision(p: &dyn StorageProvider, k: &CredentialId, d: &EncryptedData, at: &Mutex<Revision>) {
    let current = at.lock().expect("revision").clone();
    let next = p
        .store_if(k, d, &CredentialMetadata::new(), &Precondition::Revision(current))
        .await
        .expect("store_if");
    *at.lock().expect("revision") = next;
}

/// The baseline: what a durable atomic replace costs with nothing but `std::fs`.
fn raw_durable_write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let temp = dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&temp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&temp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

fn main() -> anyhow::Result<()> {
    let bench = Bench::new("local")?;

    for (size, label) in SIZES {
        let dir = bench_dir(label)?;
        let raw_dir = bench_dir(&format!("raw-{label}"))?;
        let p = bench.block_on(provider(&dir))?;
        let d = sealed(size);
        let record =
            RecordEnvelope::new(id("bench"), d.clone(), CredentialMetadata::new()).to_json("bench", usize::MAX)?;
        let k = id("bench_key");
        // The revision the conditional stores start from, re-read after plain stores.
        let revision = Mutex::new(bench.block_on(p.store(&k, &d, &CredentialMetadata::new()))?);
        raw_durable_write(&raw_dir, "raw.json", &record)?;

        bench.group(format!("local_{label}"), |group, rt| {
            group.sample_size(20);
            group.bench_function("store", |b| {
                b.iter(|| rt.block_on(p.store(&k, &d, &CredentialMetadata::new())).expect("store"))
            });
            group.bench_function("store_if_at_revision", |b| {
                *revision.lock().expect("revision") = rt.block_on(p.retrieve(&k)).expect("retrieve").revision;
                b.iter(|| rt.block_on(store_at_revision(p.as_ref(), &k, &d, &revision)))
            });
            group.bench_function("raw_durable_write", |b| {
                b.iter(|| raw_durable_write(&raw_dir, "raw.json", &record).expect("raw write"))
            });
            group.bench_function("retrieve", |b| {
                b.iter(|| rt.block_on(p.retrieve(&k)).expect("retrieve"))
            });
            group.bench_function("raw_read", |b| {
                b.iter(|| fs::read(raw_dir.join("raw.json")).expect("raw read"))
            });
            group.bench_function("exists", |b| b.iter(|| rt.block_on(p.exists(&k)).expect("exists")));
        });

        let store = bench.interleaved(
            WRITE_SAMPLES,
            |_| async {
                p.store(&k, &d, &CredentialMetadata::new()).await.expect("store");
            },
            |_| async {
                raw_durable_write(&raw_dir, "raw.json", &record).expect("raw write");
            },
        );
        *revision.lock().expect("revision") = bench.block_on(p.retrieve(&k))?.revision;
        let store_if = bench.interleaved(
            WRITE_SAMPLES,
            |_| store_at_revision(p.as_ref(), &k, &d, &revision),
            |_| async {
                raw_durable_write(&raw_dir, "raw.json", &record).expect("raw write");
            },
        );
        let retrieve = bench.interleaved(
            READ_SAMPLES,
            |_| async {
                p.retrieve(&k).await.expect("retrieve");
            },
            |_| async {
                fs::read(raw_dir.join("raw.json")).expect("raw read");
            },
        );
        let exists = bench.interleaved(
            READ_SAMPLES,
            |_| async {
                p.exists(&k).await.expect("exists");
            },
            |_| async {
                fs::metadata(raw_dir.join("raw.json")).expect("raw stat");
            },
        );
        let revision_only = bench.interleaved(
            READ_SAMPLES,
            |_| async {
                p.revision(&k).await.expect("revision");
            },
            |_| async {
                fs::metadata(raw_dir.join("raw.json")).expect("raw stat");
            },
        );
        // Where the time of a read goes, beside the figures above.
        let bare = bench.block_on(LocalStorageProvider::new(LocalStorageConfig::new(&dir)))?;
        let retrieve_bare = Samples::collect(bench.runtime(), READ_SAMPLES, |_| async {
            bare.retrieve(&k).await.expect("retrieve");
        });
        let bytes = fs::read(bare.file_path(&k))?;
        let parse = Samples::collect(bench.runtime(), READ_SAMPLES, |_| async {
            RecordEnvelope::from_json(&bytes, "local", "bench", Some(&k)).expect("parse");
        });
        let doomed: Vec<CredentialId> = (0..WRITE_SAMPLES).map(|i| id(&format!("doomed_{i}"))).collect();
        for k in &doomed {
            bench.block_on(p.store(k, &d, &CredentialMetadata::new()))?;
        }
        let delete = Samples::collect(bench.runtime(), WRITE_SAMPLES, |i| {
            let p = p.clone();
            let k = doomed[i].clone();
            async move { p.delete(&k).await.expect("delete") }
        });

        let mut figures = bench.figures();
        for (name, s) in [
            ("store", &store.ours),
            ("raw_durable_write", &store.raw),
            ("store_if_at_revision", &store_if.ours),
            ("raw_durable_write_beside_store_if", &store_if.raw),
            ("retrieve", &retrieve.ours),
            ("raw_read", &retrieve.raw),
            ("exists", &exists.ours),
            ("raw_stat", &exists.raw),
            ("revision", &revision_only.ours),
            ("raw_stat_beside_revision", &revision_only.raw),
            ("delete", &delete),
            ("retrieve_bare_provider", &retrieve_bare),
            ("record_parse", &parse),
        ] {
            figures.add_latency(&format!("local_{name}_{label}"), s);
        }
        figures.add(
            &format!("local_store_p95_over_raw_durable_write_p95_{label}"),
            store.p95_ratio(),
            "x",
        );
        figures.add(
            &format!("local_store_if_p95_over_raw_durable_write_p95_{label}"),
            store_if.p95_ratio(),
            "x",
        );
        figures.add(
            &format!("local_retrieve_p50_over_raw_read_p50_{label}"),
            retrieve.p50_ratio(),
            "x",
        );
        figures.add(
            &format!("local_exists_p50_over_raw_stat_p50_{label}"),
            exists.p50_ratio(),
            "x",
        );
        figures.add(
            &format!("local_revision_p50_over_raw_stat_p50_{label}"),
            revision_only.p50_ratio(),
            "x",
        );
    }

    let hop = Samples::collect(bench.runtime(), READ_SAMPLES, |_| async {
        tokio::task::spawn_blocking(|| ()).await.expect("blocking pool");
    });
    bench.figures().add_latency("local_blocking_pool_round_trip", &hop);

    // list over 10,000 credentials, 1 % of them tagged team=core.
    let dir = bench_dir("list")?;
    let p = bench.block_on(provider(&dir))?;
    bench.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..LIST_CREDENTIALS {
            let p = p.clone();
            let team = if i % 100 == 0 { "core" } else { "other" };
            let meta = CredentialMetadata::new().with_tags([("team".to_string(), team.to_string())].into());
            tasks.spawn(async move { p.store(&id(&format!("cred_{i:05}")), &sealed(1024), &meta).await });
            while tasks.len() >= 64 {
                tasks.join_next().await.expect("task")??;
            }
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        anyhow::Ok(())
    })?;
    let filter = CredentialFilter::new().tag("team", "core");
    // Cold: a freshly opened provider reads every file once.
    let cold_provider = bench.block_on(provider(&dir))?;
    let start = std::time::Instant::now();
    let matched = bench.block_on(cold_provider.list(&filter))?.len();
    bench.figures().add(
        "local_list_10000_one_tag_cold",
        start.elapsed().as_secs_f64() * 1e3,
        "ms",
    );
    assert_eq!(matched, LIST_CREDENTIALS / 100);
    bench.group("local_list_10000", |group, rt| {
        group.sample_size(10);
        group.bench_function("one_tag_1_percent", |b| {
            b.iter(|| rt.block_on(p.list(&filter)).expect("list"))
        });
        group.bench_function("all_ids", |b| {
            b.iter(|| rt.block_on(p.list(&CredentialFilter::new())).expect("list"))
        });
    });
    let list = Samples::collect(bench.runtime(), LIST_SAMPLES, |_| async {
        p.list(&filter).await.expect("list");
    });
    let list_ids = Samples::collect(bench.runtime(), LIST_SAMPLES, |_| async {
        p.list(&CredentialFilter::new()).await.expect("list");
    });
    // The floor of a filtered list that must see whether any file changed: read the
    // directory and stat every credential file (not the lock files, whose names start
    // with a dot).
    let raw_scan = Samples::collect(bench.runtime(), LIST_SAMPLES, |_| async {
        let mut stats = 0usize;
        for entry in fs::read_dir(&dir).expect("read_dir") {
            let entry = entry.expect("entry");
            if !entry.file_name().to_string_lossy().starts_with('.') {
                stats += usize::from(entry.metadata().is_ok());
            }
        }
        assert_eq!(stats, LIST_CREDENTIALS);
    });
    let mut figures = bench.figures();
    figures.add("local_list_10000_one_tag_p50", list.p50().as_secs_f64() * 1e3, "ms");
    figures.add("local_list_10000_one_tag_p95", list.p95().as_secs_f64() * 1e3, "ms");
    figures.add("local_list_10000_all_ids_p50", list_ids.p50().as_secs_f64() * 1e3, "ms");
    figures.add("local_list_10000_all_ids_p95", list_ids.p95().as_secs_f64() * 1e3, "ms");
    figures.add(
        "local_raw_readdir_stat_10000_p50",
        raw_scan.p50().as_secs_f64() * 1e3,
        "ms",
    );
    figures.add(
        "local_raw_readdir_stat_10000_p95",
        raw_scan.p95().as_secs_f64() * 1e3,
        "ms",
    );
    drop(figures);

    bench.finish();
    Ok(())
}
