//! `cargo bench --bench kubernetes` (or `cargo xtask bench kubernetes`, which starts the
//! kube-apiserver): the Kubernetes provider through `open()`'s full layer stack, beside
//! the raw kube `Api` calls the provider makes for the same operation, against the same
//! server, interleaved in the same run. Needs `NEBULA_TEST_KUBECONFIG`; without it the
//! bench says so and measures nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use criterion::Criterion;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use nebula_credential::kubernetes::{KubernetesSecretsConfig, KubernetesSecretsProvider, RECORD_KEY, SECRET_TYPE};
use nebula_credential::{
    CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, RecordEnvelope, StorageConfig, open,
};
use nebula_credential_benches::{Figures, Samples};

const SAMPLES: usize = 300;
const LISTED: usize = 100;

/// A 1 KiB value; `i` varies the nonce so every store really writes.
fn data(i: usize) -> EncryptedData {
    let mut nonce = [1; 12];
    nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
    EncryptedData {
        version: 1,
        key_id: "bench".into(),
        nonce,
        ciphertext: vec![7; 1024],
    }
}

fn main() -> anyhow::Result<()> {
    let Ok(kubeconfig) = std::env::var("NEBULA_TEST_KUBECONFIG") else {
        println!(
            "kubernetes bench: NEBULA_TEST_KUBECONFIG is not set; run `cargo xtask bench kubernetes` to start \
             kube-apiserver and measure"
        );
        return Ok(());
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // kube's client spawns its buffer task on the runtime it is built in.
    let _runtime = rt.enter();
    let namespace = format!("nebula-bench-{}", std::process::id());
    let config = KubernetesSecretsConfig {
        namespace: Some(namespace.clone()),
        kubeconfig_path: Some(kubeconfig.into()),
        ..KubernetesSecretsConfig::default()
    };
    // The raw client has the provider's own settings (kube's retry off).
    let client = Client::try_from(rt.block_on(KubernetesSecretsProvider::client_config(&config))?)?;
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    rt.block_on(Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns))?;
    let raw: Api<Secret> = Api::namespaced(client, &namespace);
    let bare = rt.block_on(KubernetesSecretsProvider::new(config.clone()))?;
    let p = rt.block_on(open(&StorageConfig::Kubernetes(config)))?;

    let k: CredentialId = "Bench_Key".parse()?;
    let name = bare.secret_name(&k);
    let selector = bare.label_selector(&CredentialFilter::new());
    // An overwrite keeps created_at (as CredentialStore does), so the labels stay as they are.
    let meta = CredentialMetadata::new();
    let records: Vec<Vec<u8>> = (0..SAMPLES)
        .map(|i| RecordEnvelope::new(k.clone(), data(SAMPLES + i), meta.clone()).to_json("kubernetes", usize::MAX))
        .collect::<Result<_, _>>()?;
    rt.block_on(p.store(&k, &data(0), &meta))?;
    for i in 0..LISTED {
        let id: CredentialId = format!("listed_{i:03}").parse()?;
        rt.block_on(p.store(&id, &data(i), &CredentialMetadata::new()))?;
    }

    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    let mut group = c.benchmark_group("kubernetes");
    group.sample_size(20);
    group.bench_function("retrieve", |b| {
        b.iter(|| rt.block_on(p.retrieve(&k)).expect("retrieve"))
    });
    group.bench_function("raw_get", |b| b.iter(|| rt.block_on(raw.get(&name)).expect("get")));
    group.finish();

    // store: the provider reads the Secret and replaces it with that resourceVersion;
    // the raw baseline makes the same two calls with an object built beforehand.
    let (store, raw_store) = Samples::interleaved(
        &rt,
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
    let (retrieve, raw_get) = Samples::interleaved(
        &rt,
        SAMPLES,
        |_| async { p.retrieve(&k).await.map(drop).expect("retrieve") },
        |_| async { raw.get(&name).await.map(drop).expect("get") },
    );
    let (exists, raw_metadata) = Samples::interleaved(
        &rt,
        SAMPLES,
        |_| async { assert!(p.exists(&k).await.expect("exists")) },
        |_| async { raw.get_metadata(&name).await.map(drop).expect("get_metadata") },
    );
    let (list, raw_list) = Samples::interleaved(
        &rt,
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

    let mut figures = Figures::default();
    for (label, ours, base) in [
        ("store", &store, &raw_store),
        ("retrieve", &retrieve, &raw_get),
        ("exists", &exists, &raw_metadata),
        ("list_101", &list, &raw_list),
    ] {
        figures.add_pair("kubernetes", label, ours, base);
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
