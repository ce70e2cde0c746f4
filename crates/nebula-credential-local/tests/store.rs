//! `CredentialStore` over the local provider: exact versions under concurrent puts, and
//! key rotation beside live writers, both resting on the provider's atomic `store_if`.

use std::sync::Arc;

use nebula_credential_core::conformance::id;
use nebula_credential_core::secrecy::ExposeSecret;
use nebula_credential_core::{
    CredentialStore, EncryptionKey, Keyring, RetryPolicy, StorageMetrics, StorageProvider, Tags, Timeouts, layers,
};
use nebula_credential_local::{LocalStorageConfig, LocalStorageProvider};

async fn store_in(dir: &std::path::Path, key: EncryptionKey) -> CredentialStore {
    let local = LocalStorageProvider::new(LocalStorageConfig::new(dir)).await.unwrap();
    assert!(local.capabilities().conditional_store);
    let stack = layers::standard(
        local,
        RetryPolicy::default(),
        Timeouts::default(),
        Arc::new(StorageMetrics::new()),
    )
    .unwrap();
    CredentialStore::new(Arc::new(stack), Keyring::new(key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_puts_of_one_id_get_versions_1_to_16() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(store_in(tmp.path(), EncryptionKey::generate()).await);
    let k = id("contended");
    let puts: Vec<_> = (0..16)
        .map(|i| {
            let (store, k) = (store.clone(), k.clone());
            tokio::spawn(async move {
                let written = store.put(&k, format!("value-{i}").as_bytes(), Tags::new()).await;
                (i, written.unwrap().version)
            })
        })
        .collect();
    let mut by_version = std::collections::BTreeMap::new();
    for put in puts {
        let (i, version) = put.await.unwrap();
        assert!(by_version.insert(version, i).is_none(), "version {version} given twice");
    }
    assert_eq!(
        by_version.keys().copied().collect::<Vec<_>>(),
        (1..=16).collect::<Vec<u64>>()
    );
    let (value, metadata) = store.get_with_metadata(&k).await.unwrap();
    assert_eq!(metadata.version, 16);
    assert_eq!(value.expose_secret(), format!("value-{}", by_version[&16]).as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotate_keys_beside_concurrent_puts_keeps_every_put() {
    let tmp = tempfile::tempdir().unwrap();
    let old = EncryptionKey::generate();
    let rotating = Arc::new(store_in(tmp.path(), old.clone()).await);
    let ids: Vec<_> = (0..20).map(|i| id(&format!("live_{i}"))).collect();
    for k in &ids {
        rotating.put(k, b"old-value", Tags::new()).await.unwrap();
    }
    for round in 0..5 {
        let new = EncryptionKey::generate();
        rotating.add_current_key(new.clone()).unwrap();
        // Another process: it already writes with the new key.
        let writer = Arc::new(store_in(tmp.path(), new).await);
        let rotation = {
            let rotating = rotating.clone();
            tokio::spawn(async move { rotating.rotate_keys().await })
        };
        let puts: Vec<_> = ids
            .iter()
            .map(|k| {
                let (writer, k) = (writer.clone(), k.clone());
                tokio::spawn(async move { writer.put(&k, format!("put-{round}").as_bytes(), Tags::new()).await })
            })
            .collect();
        for put in puts {
            put.await.unwrap().unwrap();
        }
        let report = rotation.await.unwrap().unwrap();
        assert!(report.is_complete(), "{report:?}");
        for k in &ids {
            let (value, metadata) = rotating.get_with_metadata(k).await.unwrap();
            assert_eq!(
                value.expose_secret(),
                format!("put-{round}").as_bytes(),
                "{k} in round {round}"
            );
            assert_eq!(metadata.version, round as u64 + 2, "{k}");
        }
    }
}
