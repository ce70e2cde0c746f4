//! `CredentialStore` over the mock: versions, timestamps, key rotation, and redaction.

use std::io::Write;
use std::sync::{Arc, Mutex};

use nebula_credential_core::secrecy::ExposeSecret;
use nebula_credential_core::{
    CredentialFilter, CredentialId, CredentialStore, EncryptionKey, Keyring, MockStorageProvider, Operation,
    RetryPolicy, StorageError, StorageMetrics, StorageProvider, StoredRecord, Tags, Timeouts, layers,
};

fn id(s: &str) -> CredentialId {
    s.parse().unwrap()
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn store_over(mock: &MockStorageProvider) -> CredentialStore {
    CredentialStore::new(Arc::new(mock.clone()), Keyring::new(EncryptionKey::generate()))
}

#[tokio::test]
async fn put_manages_versions_and_timestamps() {
    let mock = MockStorageProvider::new();
    let store = store_over(&mock);
    let k = id("db_password");
    let m1 = store.put(&k, b"first", tags(&[("env", "prod")])).await.unwrap();
    assert_eq!(m1.version, 1);
    assert_eq!(m1.created_at, m1.updated_at);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let m2 = store.put(&k, b"second", tags(&[])).await.unwrap();
    assert_eq!(m2.version, 2);
    assert_eq!(m2.created_at, m1.created_at);
    assert!(m2.updated_at > m1.updated_at);
    let (secret, meta) = store.get_with_metadata(&k).await.unwrap();
    assert_eq!(secret.expose_secret(), b"second");
    assert_eq!(meta, m2);
    // The provider holds ciphertext, never the value.
    let (raw, _) = mock.retrieve(&k).await.unwrap();
    assert!(!raw.ciphertext.windows(6).any(|w| w == b"second"));
    assert!(store.exists(&k).await.unwrap());
    store.delete(&k).await.unwrap();
    assert!(store.get(&k).await.unwrap_err().is_not_found());
    let m3 = store.put(&k, b"third", tags(&[])).await.unwrap();
    assert_eq!(m3.version, 1, "a deleted credential starts again at version 1");
}

#[tokio::test]
async fn put_validates_tags_and_filters_before_io() {
    let mock = MockStorageProvider::new();
    let store = store_over(&mock);
    let err = store.put(&id("a"), b"x", tags(&[("bad key", "v")])).await.unwrap_err();
    assert!(matches!(err, StorageError::Invalid(_)), "{err:?}");
    assert_eq!(mock.count(), 0);
    let err = store.list(&CredentialFilter::new().id_prefix("../")).await.unwrap_err();
    assert!(matches!(err, StorageError::Invalid(_)));
}

#[tokio::test]
async fn rotate_keys_re_encrypts_everything_under_the_new_key() {
    let mock = MockStorageProvider::new();
    let old = EncryptionKey::generate();
    let store = CredentialStore::new(Arc::new(mock.clone()), Keyring::new(old.clone()));
    for i in 0..20 {
        store
            .put(&id(&format!("c{i}")), format!("value-{i}").as_bytes(), tags(&[]))
            .await
            .unwrap();
    }
    let before = mock.retrieve(&id("c3")).await.unwrap().1;
    let new = EncryptionKey::generate();
    store.add_current_key(new.clone());
    assert_eq!(store.current_key_id(), new.key_id());
    // The old key id still decrypts before any rotation.
    assert_eq!(store.get(&id("c0")).await.unwrap().expose_secret(), b"value-0");
    store.put(&id("fresh"), b"new-value", tags(&[])).await.unwrap();

    let report = store.rotate_keys().await.unwrap();
    assert_eq!((report.re_encrypted, report.already_current), (20, 1));
    for i in 0..20 {
        let k = id(&format!("c{i}"));
        let (raw, _) = mock.retrieve(&k).await.unwrap();
        assert_eq!(raw.key_id, new.key_id());
        // Readable with the new key alone.
        assert_eq!(&new.decrypt(&k, &raw).unwrap()[..], format!("value-{i}").as_bytes());
    }
    assert_eq!(mock.retrieve(&id("c3")).await.unwrap().1, before, "metadata is kept");
    let again = store.rotate_keys().await.unwrap();
    assert_eq!((again.re_encrypted, again.already_current), (0, 21));
}

#[tokio::test]
async fn a_record_moved_to_another_id_does_not_decrypt() {
    let mock = MockStorageProvider::new();
    let store = store_over(&mock);
    store.put(&id("prod_key"), b"secret", tags(&[])).await.unwrap();
    let (data, meta) = mock.retrieve(&id("prod_key")).await.unwrap();
    mock.store(&id("dev_key"), data, meta).await.unwrap();
    let err = store.get(&id("dev_key")).await.unwrap_err();
    assert_eq!(err.kind(), "crypto");
    assert!(err.to_string().contains("dev_key"));
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn no_secret_reaches_debug_display_or_logs() {
    const CANARY: &str = "CANARY-b6f0c1e2-do-not-print";
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let (shown, key_b64) = rt.block_on(async {
        let mock = MockStorageProvider::new();
        let metrics = Arc::new(StorageMetrics::new());
        let stack = layers::standard(mock.clone(), RetryPolicy::default(), Timeouts::default(), metrics);
        let key = EncryptionKey::generate();
        let key_b64 = key.to_base64().expose_secret().to_string();
        let store = CredentialStore::new(Arc::new(stack), Keyring::new(key.clone()));
        let k = id("canary");
        let mut shown = Vec::new();
        store
            .put(&k, CANARY.as_bytes(), tags(&[("env", "test")]))
            .await
            .unwrap();
        let (secret, meta) = store.get_with_metadata(&k).await.unwrap();
        assert_eq!(secret.expose_secret(), CANARY.as_bytes());
        shown.push(format!("{secret:?} {meta:?} {key:?} {store:?}"));
        let (data, meta) = mock.retrieve(&k).await.unwrap();
        shown.push(format!("{:?}", StoredRecord::new(k.clone(), data, meta)));
        store.list(&CredentialFilter::new().tag("env", "test")).await.unwrap();
        // Failures, including retried ones, go through the logs too.
        mock.fail_next_with(StorageError::Unavailable {
            provider: "memory",
            operation: Operation::Retrieve,
            id: Some(k.clone()),
            source: None,
        });
        store.get(&k).await.unwrap();
        let wrong = CredentialStore::new(store.provider().clone(), Keyring::new(EncryptionKey::generate()));
        let err = wrong.get(&k).await.unwrap_err();
        shown.push(format!("{err} {err:?}"));
        store.delete(&k).await.unwrap();
        let err = store.get(&k).await.unwrap_err();
        shown.push(format!("{err} {err:?}"));
        (shown, key_b64)
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("retrying after a transient error"),
        "logs were captured:\n{logs}"
    );
    assert!(logs.contains("credential_storage"), "spans were captured:\n{logs}");
    for text in shown.iter().chain(std::iter::once(&logs)) {
        assert!(!text.contains(CANARY), "secret leaked: {text}");
        assert!(!text.contains(&key_b64), "key leaked: {text}");
    }
}
