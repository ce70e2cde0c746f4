//! `cargo bench --bench kubernetes` (or `cargo xtask bench kubernetes`, which starts the
//! kube-apiserver): the Kubernetes provider through `open()`'s full layer stack, beside
//! the raw kube `Api` calls the provider makes for the same operation, against the same
//! server, interleaved in the same run. Needs `NEBULA_TEST_KUBECONFIG`; without it the
//! bench says so and measures nothing.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use nebula_credential::kubernetes::{KubernetesSecretsConfig, KubernetesSecretsProvider, RECORD_KEY, SECRET_TYPE};
use nebula_credential::{
    CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, RecordEnvelope, StorageConfig, open,
};
use nebula_credential_benches::{Bench, sealed, skip};

const SAMPLES: usize = 300;
const LISTED: usize = 100;

/// A 1 KiB value; `i` varies the nonce so every store really writes.
fn data(i: usize) -> EncryptedData {
    let mut data = sealed(1024);
    data.nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
    data
}

fn main() -> anyhow::Result<()> {
    let Ok(kubeconfig) = std::env::var("NEBULA_TEST_KUBECONFIG") else {
        skip("kubernetes", "NEBULA_TEST_KUBECONFIG is not set", "kube-apiserver");
        return Ok(());
    };
    let bench = Bench::new("kubernetes")?;
    // kube's client spawns its buffer task on the runtime it is built in.
    let _runtime = bench.runtime().enter();
    let namespace = format!("nebula-bench-{}", std::process::id());
    let config = KubernetesSecretsConfig {
        namespace: Some(namespace.clone()),
        kubeconfig_path: Some(kubeconfig.into()),
        ..KubernetesSecretsConfig::default()
    };
    // The raw client has the provider's own settings (kube's retry off).
    let client = Client::try_from(bench.block_on(KubernetesSecretsProvider::client_config(&config))?)?;
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    bench.block_on(Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns))?;
    let raw: Api<Secret> = Api::namespaced(client, &namespace);
    let bare = bench.block_on(KubernetesSecretsProvider::new(config.clone()))?;
    let p = bench.block_on(open(&StorageConfig::Kubernetes(config)))?;

    let k: CredentialId = "Bench_Key".parse()?;
    let name = bare.secret_name(&k);
    let selector = bare.label_selector(&CredentialFilter::new());
    // An overwrite keeps created_at (as CredentialStore does), so the labels stay as they are.
    let meta = CredentialMetadata::new();
    let records: Vec<Vec<u8>> = (0..SAMPLES)
        .map(|i| RecordEnvelope::new(k.clone(), data(SAMPLES + i), meta.clone()).to_json("kubernetes", usize::MAX))
        .collect::<Result<_, _>>()?;
    bench.block_on(p.store(&k, &data(0), &meta))?;
    bench.store_listed(p.as_ref(), LISTED)?;

    bench.criterion_pair(
        "retrieve",
        || async { p.retrieve(&k).await.expect("retrieve") },
        "raw_get",
        || async { raw.get(&name).await.expect("get") },
    );

    // store: the provider reads the Secret and replaces it with that resourceVersion;
    // the raw baseline makes the same two calls with an object built beforehand.
    bench.compare(
        "store",
        SAMPLES,
        |i| {
            let p = p.clone();
            let (k, meta) = (k.clone(), meta.clone());
            async move {
                p.store(&k, &data(i), &meta).await.expect("store");
            }
        },
        |i| {
            let (raw, name, record) = (raw.clone(), name.clone(), records[i].clone());
            async move {
                let mut s = raw.get(&name).await.expect("get");
                s.data = Some(BTreeMap::from([(RECORD_KEY.to_string(), ByteString(record))]));
                raw.replace(&name, &PostParams::default(), &s).await.expect("replace");
            }
        },
    );
    bench.compare(
        "retrieve",
        SAMPLES,
        |_| async { p.retrieve(&k).await.map(drop).expect("retrieve") },
        |_| async { raw.get(&name).await.map(drop).expect("get") },
    );
    // revision: one metadata-only get, never the data.
    bench.compare(
        "revision",
        SAMPLES,
        |_| async { p.revision(&k).await.map(drop).expect("revision") },
        |_| async { raw.get_metadata(&name).await.map(drop).expect("get_metadata") },
    );
    bench.revision_beside_retrieve(p.as_ref(), &k, SAMPLES);
    bench.compare(
        "exists",
        SAMPLES,
        |_| async { assert!(p.exists(&k).await.expect("exists")) },
        |_| async { raw.get_metadata(&name).await.map(drop).expect("get_metadata") },
    );
    bench.compare(
        "list_101",
        SAMPLES / 3,
        |_| async { assert_eq!(p.list(&CredentialFilter::new()).await.expect("list").len(), LISTED + 1) },
        |_| async {
            let params = ListParams::default()
                .labels(&selector)
                .fields(&format!("type={SECRET_TYPE}"))
                .limit(250);
            let page = raw.list_metadata(&params).await.expect("list");
            assert_eq!(page.items.len(), LISTED + 1);
        },
    );

    bench.remove_all(p.as_ref())?;
    bench.finish();
    Ok(())
}
