//! `cargo bench --bench azure` (or `cargo xtask bench azure`, which starts the Key Vault
//! emulator): the Azure Key Vault provider through `open()`'s full layer stack, beside the
//! raw `SecretClient` calls the provider makes for the same operation, against the same
//! emulator (a vault of the bench's own), interleaved in one run. Needs the
//! `NEBULA_TEST_AZURE_*` variables; without them the bench says so and measures nothing.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_security_keyvault_secrets::models::{
    SecretClientListSecretPropertiesOptions, SecretClientListSecretPropertiesVersionsOptions, SetSecretParameters,
};
use futures::TryStreamExt as _;
use nebula_credential::azure::{AzureKeyVaultProvider, CONTENT_TYPE};
use nebula_credential::{CredentialFilter, CredentialId, CredentialMetadata, RecordEnvelope, StorageConfig, open};
use nebula_credential_benches::{Bench, sealed, skip};
use nebula_credential_tests::azure;

const SAMPLES: usize = 300;
const LISTED: usize = 100;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn main() -> anyhow::Result<()> {
    let (Some(_), Some(_), Some(token)) = (
        var("NEBULA_TEST_AZURE_VAULT_URL"),
        var("NEBULA_TEST_AZURE_CA_PEM"),
        var("NEBULA_TEST_AZURE_TOKEN"),
    ) else {
        skip(
            "azure",
            "NEBULA_TEST_AZURE_VAULT_URL, _CA_PEM and _TOKEN are not set",
            "the Key Vault emulator",
        );
        return Ok(());
    };
    let bench = Bench::new("azure")?;
    // A vault of the bench's own, so `list` sees exactly what the bench stored.
    let vault = format!("bench{}", std::process::id());
    let vault_url = azure::vault_url(Some(&vault));
    let credential: Arc<dyn TokenCredential> = Arc::new(azure::StaticToken(token.clone()));
    // The same configuration and raw client (CA, SDK retries off, challenge verified) as
    // the integration tests: one copy, in the tests crate.
    let config = azure::azure_config("bench", credential.clone(), vault_url);
    let p = bench.block_on(open(&StorageConfig::Azure(config.clone())))?;
    let raw = azure::client_with(Some(&vault), token, |_| {});
    let k: CredentialId = "bench_key".parse()?;
    let name = AzureKeyVaultProvider::with_credential(config, credential)?.secret_name(&k);
    // An overwrite keeps created_at (as CredentialStore does), so the tags stay as they are.
    let meta = CredentialMetadata::new();
    let value =
        String::from_utf8(RecordEnvelope::new(k.clone(), sealed(1024), meta.clone()).to_json("azure", usize::MAX)?)?;
    bench.block_on(p.store(&k, &sealed(1024), &meta))?;
    bench.store_listed(p.as_ref(), LISTED - 1)?;
    let tags = bench
        .block_on(raw.get_secret(&name, None))?
        .into_model()?
        .tags
        .unwrap_or_default();

    bench.criterion_pair(
        "retrieve",
        || async { p.retrieve(&k).await.expect("retrieve") },
        "raw_get_secret",
        || async { raw.get_secret(&name, None).await.expect("get") },
    );

    bench.compare(
        "store",
        SAMPLES,
        |_| async {
            p.store(&k, &sealed(1024), &meta).await.expect("store");
        },
        |_| async {
            raw.get_secret(&name, None).await.expect("get");
            let params = SetSecretParameters {
                value: Some(value.clone()),
                content_type: Some(CONTENT_TYPE.into()),
                tags: Some(tags.clone()),
                ..Default::default()
            };
            raw.set_secret(&name, params.try_into().expect("body"), None)
                .await
                .expect("set");
        },
    );
    bench.compare(
        "retrieve",
        SAMPLES,
        |_| async { p.retrieve(&k).await.map(drop).expect("retrieve") },
        |_| async {
            raw.get_secret(&name, None)
                .await
                .expect("get")
                .into_model()
                .map(drop)
                .expect("model")
        },
    );
    // revision: one GET of the latest version, as retrieve (the value dropped undecoded).
    bench.compare(
        "revision",
        SAMPLES,
        |_| async { p.revision(&k).await.map(drop).expect("revision") },
        |_| async {
            raw.get_secret(&name, None)
                .await
                .expect("get")
                .into_model()
                .map(drop)
                .expect("model")
        },
    );
    bench.revision_beside_retrieve(p.as_ref(), &k, SAMPLES);
    // `exists` is one GET of the latest version, however many versions the secret has
    // (the overwrites above left SAMPLES + 1 of them).
    let get = |secret: &str| {
        let secret = secret.to_string();
        let raw = &raw;
        async move {
            raw.get_secret(&secret, None)
                .await
                .expect("get")
                .into_model()
                .map(drop)
                .expect("model")
        }
    };
    // Measured here, recorded after the single-version case below (the figures' order).
    let exists_many = bench.interleaved(
        SAMPLES,
        |_| async { assert!(p.exists(&k).await.expect("exists")) },
        |_| get(&name),
    );
    let list = bench.interleaved(
        SAMPLES / 10,
        |_| async { assert_eq!(p.list(&CredentialFilter::new()).await.expect("list").len(), LISTED) },
        |_| async {
            let options = SecretClientListSecretPropertiesOptions {
                maxresults: Some(25),
                ..Default::default()
            };
            let pager = raw.list_secret_properties(Some(options)).expect("pager");
            let items: Vec<_> = pager.try_collect().await.expect("list");
            assert_eq!(items.len(), LISTED);
        },
    );
    // One fresh secret: exists on a single version (the common case).
    let fresh: CredentialId = "fresh_key".parse()?;
    bench.block_on(p.store(&fresh, &sealed(1024), &meta))?;
    let fresh_name = format!("bench-{}", "fresh--key");
    bench.compare(
        "exists_1_version",
        SAMPLES,
        |_| async { assert!(p.exists(&fresh).await.expect("exists")) },
        |_| get(&fresh_name),
    );
    // The alternative revision could use: the versions listed (no values), 25 to a page;
    // measured beside a GET of the latest version, for one version and for the many the
    // overwrites above left (the README's choice of a GET).
    let list_versions = |secret: &str| {
        let secret = secret.to_string();
        let raw = &raw;
        async move {
            let options = SecretClientListSecretPropertiesVersionsOptions {
                maxresults: Some(25),
                ..Default::default()
            };
            let pager = raw
                .list_secret_properties_versions(&secret, Some(options))
                .expect("pager");
            let versions: Vec<_> = pager.try_collect().await.expect("versions");
            assert!(!versions.is_empty());
        }
    };
    let versions_1 = bench.interleaved(SAMPLES, |_| list_versions(&fresh_name), |_| get(&fresh_name));
    let versions_many = bench.interleaved(SAMPLES / 10, |_| list_versions(&name), |_| get(&name));
    {
        let mut figures = bench.figures();
        figures.add_latency("azure_raw_list_versions_1_version", &versions_1.ours);
        figures.add(
            "azure_raw_list_versions_1_version_p50_ratio_to_get",
            versions_1.p50_ratio(),
            "x",
        );
        figures.add_latency("azure_raw_list_versions_many", &versions_many.ours);
        figures.add(
            "azure_raw_list_versions_many_p50_ratio_to_get",
            versions_many.p50_ratio(),
            "x",
        );
    }
    bench.record("exists_301_versions", &exists_many);
    bench.record("list_100", &list);

    bench.remove_all(p.as_ref())?;
    bench.finish();
    Ok(())
}
