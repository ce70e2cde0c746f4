//! `cargo bench --bench vault` (or `cargo xtask bench vault`, which starts OpenBao): the
//! Vault provider through `open()`'s full layer stack against OpenBao, each operation
//! interleaved with the raw vaultrs calls the provider makes for it, against the same
//! server, in the same run. Needs `NEBULA_TEST_VAULT_ADDR` and `NEBULA_TEST_VAULT_TOKEN`;
//! without them the bench says so and measures nothing.

use std::time::Duration;

use criterion::Criterion;
use futures::StreamExt;
use nebula_credential::vault::VaultConfig;
use nebula_credential::{
    CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, RecordEnvelope, StorageConfig, open,
};
use nebula_credential_benches::{Figures, Samples};
use vaultrs::api::kv2::requests::{ReadSecretRequest, SetSecretMetadataRequest, SetSecretRequestOptions};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::kv2;

const SAMPLES: usize = 300;
const LISTED: usize = 100;
const MOUNT: &str = "secret";

fn data() -> EncryptedData {
    EncryptedData {
        version: 1,
        key_id: "bench".into(),
        nonce: [1; 12],
        ciphertext: vec![7; 1024],
    }
}

fn main() -> anyhow::Result<()> {
    let (Ok(addr), Ok(token)) = (
        std::env::var("NEBULA_TEST_VAULT_ADDR"),
        std::env::var("NEBULA_TEST_VAULT_TOKEN"),
    ) else {
        println!(
            "vault bench: NEBULA_TEST_VAULT_ADDR / NEBULA_TEST_VAULT_TOKEN are not set; run `cargo xtask bench vault` \
             to start OpenBao and measure"
        );
        return Ok(());
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let prefix = format!("nebula-bench/{}", std::process::id());
    let config = VaultConfig {
        secret_prefix: prefix.clone(),
        ..VaultConfig::with_token(&addr, &token)
    };
    let list_concurrency = config.list_concurrency;
    let p = rt.block_on(open(&StorageConfig::Vault(config)))?;
    let raw = VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(&addr)
            .token(&token)
            .verify(true)
            .build()?,
    )?;
    let k: CredentialId = "bench_key".parse()?;
    // An overwrite keeps created_at (as CredentialStore does), so custom_metadata stays as it is.
    let meta = CredentialMetadata::new();
    let path = format!("{prefix}/bench_key");
    let record: serde_json::Value =
        serde_json::from_slice(&RecordEnvelope::new(k.clone(), data(), meta.clone()).to_json("vault", usize::MAX)?)?;
    rt.block_on(p.store(&k, &data(), &meta))?;
    for i in 0..LISTED - 1 {
        let id: CredentialId = format!("listed_{i:03}").parse()?;
        rt.block_on(p.store(&id, &data(), &CredentialMetadata::new()))?;
    }

    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    let mut group = c.benchmark_group("vault");
    group.sample_size(20);
    group.bench_function("retrieve", |b| {
        b.iter(|| rt.block_on(p.retrieve(&k)).expect("retrieve"))
    });
    group.bench_function("raw_kv2_read", |b| {
        b.iter(|| {
            rt.block_on(kv2::read::<serde_json::Value>(&raw, MOUNT, &path))
                .expect("read")
        })
    });
    group.finish();

    let read_data = || async {
        let request = ReadSecretRequest::builder()
            .mount(MOUNT)
            .path(&path)
            .build()
            .expect("request");
        vaultrs::api::exec_with_result(&raw, request).await.expect("read");
    };
    let (retrieve, raw_read) = Samples::interleaved(
        &rt,
        SAMPLES,
        |_| async { p.retrieve(&k).await.map(drop).expect("retrieve") },
        |_| read_data(),
    );
    let (exists, raw_metadata) = Samples::interleaved(
        &rt,
        SAMPLES,
        |_| async { assert!(p.exists(&k).await.expect("exists")) },
        |_| async {
            kv2::read_metadata(&raw, MOUNT, &path).await.expect("metadata");
        },
    );
    let (store, raw_store) = Samples::interleaved(
        &rt,
        SAMPLES,
        |_| async {
            p.store(&k, &data(), &meta).await.expect("store");
        },
        |_| async {
            let m = kv2::read_metadata(&raw, MOUNT, &path).await.expect("metadata");
            let cas = u32::try_from(m.current_version).expect("version");
            let written = kv2::set_with_options(&raw, MOUNT, &path, &record, SetSecretRequestOptions { cas })
                .await
                .expect("set");
            // The tags, marked with the version they describe (`nebula-credential:revision`).
            let mut custom = m.custom_metadata.unwrap_or_default();
            custom.insert(
                "nebula-credential:revision".into(),
                format!("{}@{}", written.version, written.created_time),
            );
            let mut tags = SetSecretMetadataRequest::builder();
            tags.custom_metadata(custom);
            kv2::set_metadata(&raw, MOUNT, &path, Some(&mut tags))
                .await
                .expect("tags");
        },
    );
    let (list, raw_list) = Samples::interleaved(
        &rt,
        SAMPLES / 10,
        |_| async { assert_eq!(p.list(&CredentialFilter::new()).await.expect("list").len(), LISTED) },
        |_| async {
            let keys = kv2::list(&raw, MOUNT, &prefix).await.expect("list");
            let read: Vec<_> = futures::stream::iter(keys)
                .map(|key| {
                    let raw = &raw;
                    let prefix = &prefix;
                    async move { kv2::read_metadata(raw, MOUNT, &format!("{prefix}/{key}")).await }
                })
                .buffer_unordered(list_concurrency)
                .collect()
                .await;
            assert_eq!(read.len(), LISTED);
        },
    );

    let mut figures = Figures::default();
    for (label, ours, base) in [
        ("retrieve", &retrieve, &raw_read),
        ("exists", &exists, &raw_metadata),
        ("store", &store, &raw_store),
        ("list_100", &list, &raw_list),
    ] {
        figures.add_pair("vault", label, ours, base);
    }

    rt.block_on(async {
        for id in p.list(&CredentialFilter::new()).await? {
            p.delete(&id).await?;
        }
        anyhow::Ok(())
    })?;
    c.final_summary();
    figures.print();
    Ok(())
}
