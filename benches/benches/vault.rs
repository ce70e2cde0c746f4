//! `cargo bench --bench vault` (or `cargo xtask bench vault`, which starts OpenBao): the
//! Vault provider through `open()`'s full layer stack against OpenBao, each operation
//! interleaved with the raw vaultrs calls the provider makes for it, against the same
//! server, in the same run. Needs `NEBULA_TEST_VAULT_ADDR` and `NEBULA_TEST_VAULT_TOKEN`;
//! without them the bench says so and measures nothing.

use futures::StreamExt;
use nebula_credential::vault::VaultConfig;
use nebula_credential::{CredentialFilter, CredentialId, CredentialMetadata, RecordEnvelope, StorageConfig, open};
use nebula_credential_benches::{Bench, sealed, skip};
use vaultrs::api::kv2::requests::{ReadSecretRequest, SetSecretMetadataRequest, SetSecretRequestOptions};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::kv2;

const SAMPLES: usize = 300;
const LISTED: usize = 100;
const MOUNT: &str = "secret";

fn main() -> anyhow::Result<()> {
    let (Ok(addr), Ok(token)) = (
        std::env::var("NEBULA_TEST_VAULT_ADDR"),
        std::env::var("NEBULA_TEST_VAULT_TOKEN"),
    ) else {
        skip(
            "vault",
            "NEBULA_TEST_VAULT_ADDR / NEBULA_TEST_VAULT_TOKEN are not set",
            "OpenBao",
        );
        return Ok(());
    };
    let bench = Bench::new("vault")?;
    let prefix = format!("nebula-bench/{}", std::process::id());
    let config = VaultConfig {
        secret_prefix: prefix.clone(),
        ..VaultConfig::with_token(&addr, &token)
    };
    let list_concurrency = config.list_concurrency;
    let p = bench.block_on(open(&StorageConfig::Vault(config)))?;
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
    let record: serde_json::Value = serde_json::from_slice(
        &RecordEnvelope::new(k.clone(), sealed(1024), meta.clone()).to_json("vault", usize::MAX)?,
    )?;
    bench.block_on(p.store(&k, &sealed(1024), &meta))?;
    bench.store_listed(p.as_ref(), LISTED - 1)?;

    bench.criterion_pair(
        "retrieve",
        || async { p.retrieve(&k).await.expect("retrieve") },
        "raw_kv2_read",
        || async { kv2::read::<serde_json::Value>(&raw, MOUNT, &path).await.expect("read") },
    );

    let read_data = || async {
        let request = ReadSecretRequest::builder()
            .mount(MOUNT)
            .path(&path)
            .build()
            .expect("request");
        vaultrs::api::exec_with_result(&raw, request).await.expect("read");
    };
    bench.compare(
        "retrieve",
        SAMPLES,
        |_| async { p.retrieve(&k).await.map(drop).expect("retrieve") },
        |_| read_data(),
    );
    // revision: one GET metadata/…, never the value.
    bench.compare(
        "revision",
        SAMPLES,
        |_| async { p.revision(&k).await.map(drop).expect("revision") },
        |_| async {
            kv2::read_metadata(&raw, MOUNT, &path).await.expect("metadata");
        },
    );
    bench.revision_beside_retrieve(p.as_ref(), &k, SAMPLES);
    bench.compare(
        "exists",
        SAMPLES,
        |_| async { assert!(p.exists(&k).await.expect("exists")) },
        |_| async {
            kv2::read_metadata(&raw, MOUNT, &path).await.expect("metadata");
        },
    );
    bench.compare(
        "store",
        SAMPLES,
        |_| async {
            p.store(&k, &sealed(1024), &meta).await.expect("store");
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
    bench.compare(
        "list_100",
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

    bench.remove_all(p.as_ref())?;
    bench.finish();
    Ok(())
}
