//! The local backend through `open()`: conformance under the full layer stack, the one-line
//! switch from memory, and a restart through a fresh `open()`.

use std::path::PathBuf;

use nebula_credential::prelude::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("local-via-open")
}

fn local_config(dir: &std::path::Path) -> StorageConfig {
    toml::from_str(&format!(
        "provider = \"local\"\nbase_path = {:?}",
        dir.display().to_string()
    ))
    .expect("config")
}

nebula_credential_core::conformance_tests!(local_via_open, |namespace: String| async move {
    open(&local_config(&root().join(namespace))).await.expect("open local")
});

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
    let store = CredentialStore::new(open(&local).await.unwrap(), Keyring::new(key.clone()));
    store.put(&id, b"persisted", Tags::new()).await.unwrap();
    drop(store);

    let reopened = CredentialStore::new(open(&local).await.unwrap(), Keyring::new(key));
    assert_eq!(reopened.get(&id).await.unwrap().expose_secret(), b"persisted");
}
