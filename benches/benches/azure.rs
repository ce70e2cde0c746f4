//! `cargo bench --bench azure` (or `cargo xtask bench azure`, which starts the Key Vault
//! emulator): the Azure Key Vault provider through `open()`'s full layer stack, beside the
//! raw `SecretClient` calls the provider makes for the same operation, against the same
//! emulator (a vault of the bench's own), interleaved in one run. Needs the
//! `NEBULA_TEST_AZURE_*` variables; without them the bench says so and measures nothing.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, RetryOptions, Transport, Url};
use azure_core::time::OffsetDateTime;
use azure_security_keyvault_secrets::models::{SecretClientListSecretPropertiesOptions, SetSecretParameters};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use criterion::Criterion;
use futures::TryStreamExt as _;
use nebula_credential::azure::{AzureCredential, AzureKeyVaultConfig, AzureKeyVaultProvider, CONTENT_TYPE};
use nebula_credential::{
    CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, RecordEnvelope, StorageConfig, open,
};
use nebula_credential_benches::{Figures, Samples};

const SAMPLES: usize = 300;
const LISTED: usize = 100;

#[derive(Debug)]
struct StaticToken(String);

#[async_trait::async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(&self, _: &[&str], _: Option<TokenRequestOptions<'_>>) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            self.0.clone(),
            OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

fn data() -> EncryptedData {
    EncryptedData {
        version: 1,
        key_id: "bench".into(),
        nonce: [1; 12],
        ciphertext: vec![7; 1024],
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn main() -> anyhow::Result<()> {
    let (Some(url), Some(ca), Some(token)) = (
        var("NEBULA_TEST_AZURE_VAULT_URL"),
        var("NEBULA_TEST_AZURE_CA_PEM"),
        var("NEBULA_TEST_AZURE_TOKEN"),
    ) else {
        println!(
            "azure bench: NEBULA_TEST_AZURE_VAULT_URL, _CA_PEM and _TOKEN are not set; run `cargo xtask bench azure` \
             to start the Key Vault emulator and measure"
        );
        return Ok(());
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // A vault of the bench's own, so `list` sees exactly what the bench stored.
    let vault = format!("bench{}", std::process::id());
    let mut vault_url = Url::parse(&url)?;
    vault_url.set_host(Some(&format!("{vault}.localhost")))?;
    let vault_url = vault_url.as_str().trim_end_matches('/').to_string();
    let credential: Arc<dyn TokenCredential> = Arc::new(StaticToken(token));
    let config = AzureKeyVaultConfig {
        endpoint: vault_url.clone(),
        allow_custom_host: true,
        ca_cert: Some(ca.clone()),
        credential: AzureCredential::custom(credential.clone()),
        secret_prefix: "bench-".into(),
        ..AzureKeyVaultConfig::default()
    };
    let p = rt.block_on(open(&StorageConfig::Azure(config.clone())))?;
    let port = Url::parse(&vault_url)?.port().unwrap_or(443);
    let http = reqwest::Client::builder()
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&std::fs::read(&ca)?)?)
        .resolve(
            &format!("{vault}.localhost"),
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        )
        .no_proxy()
        .build()?;
    let raw = SecretClient::new(
        &vault_url,
        credential.clone(),
        Some(SecretClientOptions {
            client_options: ClientOptions {
                transport: Some(Transport::new(Arc::new(http))),
                retry: RetryOptions::none(),
                ..ClientOptions::default()
            },
            verify_challenge_resource: Some(true),
            ..SecretClientOptions::default()
        }),
    )?;
    let k: CredentialId = "bench_key".parse()?;
    let name = AzureKeyVaultProvider::with_credential(config, credential)?.secret_name(&k);
    // An overwrite keeps created_at (as CredentialStore does), so the tags stay as they are.
    let meta = CredentialMetadata::new();
    let value = String::from_utf8(RecordEnvelope::new(k.clone(), data(), meta.clone()).to_json("azure", usize::MAX)?)?;
    rt.block_on(p.store(&k, &data(), &meta))?;
    for i in 0..LISTED - 1 {
        let id: CredentialId = format!("listed_{i:03}").parse()?;
        rt.block_on(p.store(&id, &data(), &CredentialMetadata::new()))?;
    }
    let tags = rt
        .block_on(raw.get_secret(&name, None))?
        .into_model()?
        .tags
        .unwrap_or_default();

    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    let mut group = c.benchmark_group("azure");
    group.sample_size(20);
    group.bench_function("retrieve", |b| {
        b.iter(|| rt.block_on(p.retrieve(&k)).expect("retrieve"))
    });
    group.bench_function("raw_get_secret", |b| {
        b.iter(|| rt.block_on(raw.get_secret(&name, None)).expect("get"))
    });
    group.finish();

    let (store, raw_store) = Samples::interleaved(
        &rt,
        SAMPLES,
        |_| async {
            p.store(&k, &data(), &meta).await.expect("store");
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
    let (retrieve, raw_get) = Samples::interleaved(
        &rt,
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
    let (exists, raw_versions) = Samples::interleaved(
        &rt,
        SAMPLES,
        |_| async { assert!(p.exists(&k).await.expect("exists")) },
        |_| get(&name),
    );
    let (list, raw_list) = Samples::interleaved(
        &rt,
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
    rt.block_on(p.store(&fresh, &data(), &meta))?;
    let fresh_name = format!("bench-{}", "fresh--key");
    let (exists_one, raw_versions_one) = Samples::interleaved(
        &rt,
        SAMPLES,
        |_| async { assert!(p.exists(&fresh).await.expect("exists")) },
        |_| get(&fresh_name),
    );

    let mut figures = Figures::default();
    for (label, ours, base) in [
        ("store", &store, &raw_store),
        ("retrieve", &retrieve, &raw_get),
        ("exists_1_version", &exists_one, &raw_versions_one),
        ("exists_301_versions", &exists, &raw_versions),
        ("list_100", &list, &raw_list),
    ] {
        figures.add_pair("azure", label, ours, base);
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
