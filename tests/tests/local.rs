//! The local backend through `open()`: the one-line switch from memory, and a restart
//! through a fresh `open()`. The conformance suite runs in the local crate, once per
//! stack (`layers::standard` with locking, bare without).

use nebula_credential::prelude::*;

#[tokio::test]
async fn one_line_switches_memory_to_local_and_data_survives_reopening() {
    let tmp = tempfile::tempdir().unwrap();
    let shared = format!(
        "base_path = {:?}\n[retry]\nmax_retries = 2\n",
        tmp.path().display().to_string()
    );
    let key = EncryptionKey::generate();
    let id: CredentialId = "switch_me".parse().unwrap();
    let local_toml = format!("provider = \"local\"\n{shared}");

    let memory: Result<StorageConfig, _> = toml::from_str(&format!("provider = \"memory\"\n{shared}"));
    assert!(
        memory.is_err(),
        "memory has no base_path: unknown fields are refused, not ignored"
    );

    let local: StorageConfig = toml::from_str(&local_toml).unwrap();
    assert_eq!(local.provider_name(), "local");
    let provider = open(&local).await.unwrap();
    assert!(
        provider.capabilities().conditional_store,
        "the local stack keeps atomic conditional stores"
    );
    let store = CredentialStore::new(provider, Keyring::new(key.clone()));
    store.put(&id, b"persisted", Tags::new()).await.unwrap();
    drop(store);

    let reopened = CredentialStore::new(open(&local).await.unwrap(), Keyring::new(key));
    assert_eq!(reopened.get(&id).await.unwrap().expose_secret(), b"persisted");
}

/// Another writer (a second `open()` of the same directory, as another process would)
/// rotates a credential a cached store serves: the watch fires within `poll_ms` plus
/// jitter, `refresh(seen)` and the end of `fresh_ms` each bring the new value, and a
/// delete is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_another_writer_rotate_and_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let config: StorageConfig = toml::from_str(&format!(
        "provider = \"local\"\nbase_path = {:?}\n",
        tmp.path().display().to_string()
    ))
    .unwrap();
    let watched = nebula_credential_tests::watch::another_writer_rotates(config, &"rotated".parse().unwrap()).await;
    println!(
        "local: watch fired {:?} after the rotation (poll {:?})",
        watched.fired_after, watched.poll
    );
}
