//! `CredentialStore` over the in-memory backend: exact versions under concurrency,
//! timestamps, key rotation beside live writers, and redaction.

#[path = "support/logs.rs"]
mod logs;

use std::sync::{Arc, Mutex};

use logs::Captured;
use nebula_credential_core::secrecy::ExposeSecret;
use nebula_credential_core::{
    CredentialFilter, CredentialId, CredentialStore, EncryptionKey, ErrorKind, Keyring, MemoryProvider, Operation,
    RecordEnvelope, RetryPolicy, StorageError, StorageMetrics, StorageProvider, Tags, Timeouts, layers,
};

fn id(s: &str) -> CredentialId {
    s.parse().unwrap()
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn store_over(mock: &MemoryProvider) -> CredentialStore {
    CredentialStore::new(Arc::new(mock.clone()), Keyring::new(EncryptionKey::generate()))
}

#[tokio::test]
async fn put_manages_versions_and_timestamps() {
    let mock = MemoryProvider::new();
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
    let raw = mock.retrieve(&k).await.unwrap().data;
    assert!(!raw.ciphertext.windows(6).any(|w| w == b"second"));
    assert!(store.exists(&k).await.unwrap());
    store.delete(&k).await.unwrap();
    assert!(store.get(&k).await.unwrap_err().is_not_found());
    let m3 = store.put(&k, b"third", tags(&[])).await.unwrap();
    assert_eq!(m3.version, 1, "a deleted credential starts again at version 1");
}

#[tokio::test]
async fn put_validates_tags_and_filters_before_io() {
    let mock = MemoryProvider::new();
    let store = store_over(&mock);
    let err = store.put(&id("a"), b"x", tags(&[("bad key", "v")])).await.unwrap_err();
    assert!(matches!(err, StorageError::Invalid(_)), "{err:?}");
    assert_eq!(mock.count(), 0);
    let err = store.list(&CredentialFilter::new().id_prefix("../")).await.unwrap_err();
    assert!(matches!(err, StorageError::Invalid(_)));
}

#[tokio::test]
async fn rotate_keys_re_encrypts_everything_under_the_new_key() {
    let mock = MemoryProvider::new();
    let old = EncryptionKey::generate();
    let store = CredentialStore::new(Arc::new(mock.clone()), Keyring::new(old.clone()));
    for i in 0..20 {
        store
            .put(&id(&format!("c{i}")), format!("value-{i}").as_bytes(), tags(&[]))
            .await
            .unwrap();
    }
    let before = mock.retrieve(&id("c3")).await.unwrap().metadata;
    let new = EncryptionKey::generate();
    store.add_current_key(new.clone()).unwrap();
    assert_eq!(store.current_key_id(), new.key_id());
    // The old key id still decrypts before any rotation.
    assert_eq!(store.get(&id("c0")).await.unwrap().expose_secret(), b"value-0");
    store.put(&id("fresh"), b"new-value", tags(&[])).await.unwrap();

    let report = store.rotate_keys().await.unwrap();
    assert_eq!((report.re_encrypted, report.already_current), (20, 1));
    assert!(report.is_complete());
    for i in 0..20 {
        let k = id(&format!("c{i}"));
        let raw = mock.retrieve(&k).await.unwrap().data;
        assert_eq!(raw.key_id, new.key_id());
        // Readable with the new key alone.
        assert_eq!(&new.decrypt(&k, &raw).unwrap()[..], format!("value-{i}").as_bytes());
    }
    assert_eq!(
        mock.retrieve(&id("c3")).await.unwrap().metadata,
        before,
        "metadata is kept"
    );
    let again = store.rotate_keys().await.unwrap();
    assert_eq!((again.re_encrypted, again.already_current), (0, 21));
}

#[tokio::test]
async fn a_record_moved_to_another_id_does_not_decrypt() {
    let mock = MemoryProvider::new();
    let store = store_over(&mock);
    store.put(&id("prod_key"), b"secret", tags(&[])).await.unwrap();
    let moved = mock.retrieve(&id("prod_key")).await.unwrap();
    mock.store(&id("dev_key"), &moved.data, &moved.metadata).await.unwrap();
    let err = store.get(&id("dev_key")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Crypto);
    assert!(err.to_string().contains("dev_key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_get_distinct_versions_and_the_last_acknowledged_value_wins() {
    let mock = MemoryProvider::new();
    let store = Arc::new(store_over(&mock));
    for k in [id("new_id"), id("existing")] {
        let start = if k.as_str() == "existing" {
            store.put(&k, b"seed", tags(&[])).await.unwrap().version
        } else {
            0
        };
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (store, k) = (store.clone(), k.clone());
                tokio::spawn(async move { (i, store.put(&k, format!("v{i}").as_bytes(), tags(&[])).await) })
            })
            .collect();
        let mut versions = Vec::new();
        let mut by_version = std::collections::BTreeMap::new();
        for t in tasks {
            let (i, meta) = t.await.unwrap();
            let v = meta.unwrap().version;
            versions.push(v);
            by_version.insert(v, i);
        }
        versions.sort();
        assert_eq!(versions, ((start + 1)..=(start + 16)).collect::<Vec<_>>(), "{k}");
        let (value, meta) = store.get_with_metadata(&k).await.unwrap();
        let last = by_version[&(start + 16)];
        assert_eq!(meta.version, start + 16);
        assert_eq!(
            value.expose_secret(),
            format!("v{last}").as_bytes(),
            "the highest version is stored"
        );
    }
}

#[tokio::test]
async fn put_replaces_an_unreadable_record_and_a_put_that_keeps_losing_gives_up_with_conflict() {
    let mock = MemoryProvider::new();
    let store = store_over(&mock);
    let k = id("broken");
    mock.fail_next_with(StorageError::corrupted(
        "memory",
        Some(&k),
        "mem",
        "truncated at line 1 column 3",
    ));
    let m = store.put(&k, b"repaired", tags(&[])).await.unwrap();
    assert_eq!(m.version, 1);
    assert_eq!(store.get(&k).await.unwrap().expose_secret(), b"repaired");

    let conflicts = (0..64).map(|_| StorageError::conflict("memory", &k, "raced"));
    for e in conflicts {
        // Each attempt: a read that succeeds, then a store that loses the race.
        mock.fail_next_with(StorageError::not_found("memory", &k));
        mock.fail_next_with(e);
        mock.fail_next_with(StorageError::not_found("memory", &k));
    }
    let err = store.put(&k, b"never", tags(&[])).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("broken") && text.contains("retry later") && !text.contains("never"),
        "{text}"
    );
    assert_eq!(store.get(&k).await.unwrap().expose_secret(), b"repaired");
}

/// A provider whose `store_if` first lets `before_store` run: another writer acting
/// between rotation's read and its write.
#[derive(Debug)]
struct Interleaved {
    inner: MemoryProvider,
    before_store: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    resume: tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

#[nebula_credential_core::async_trait]
impl StorageProvider for Interleaved {
    fn provider_name(&self) -> &'static str {
        self.inner.provider_name()
    }
    fn capabilities(&self) -> nebula_credential_core::Capabilities {
        self.inner.capabilities()
    }
    async fn store_if(
        &self,
        id: &CredentialId,
        data: &nebula_credential_core::EncryptedData,
        metadata: &nebula_credential_core::CredentialMetadata,
        precondition: &nebula_credential_core::Precondition,
    ) -> Result<nebula_credential_core::Revision, StorageError> {
        let signal = self.before_store.lock().unwrap().take();
        if let Some(signal) = signal {
            signal.send(()).unwrap();
            let resume = self.resume.lock().await.take().unwrap();
            resume.await.unwrap();
        }
        self.inner.store_if(id, data, metadata, precondition).await
    }
    async fn retrieve(&self, id: &CredentialId) -> Result<nebula_credential_core::Stored, StorageError> {
        self.inner.retrieve(id).await
    }
    async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
        self.inner.delete(id).await
    }
    async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
        self.inner.list(filter).await
    }
    async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError> {
        self.inner.exists(id).await
    }
}

/// Rotation over a provider paused between its read and its write of the one stored
/// credential, while `meanwhile` acts through a second store with the new key.
async fn rotate_while(
    meanwhile: impl AsyncFnOnce(&CredentialStore, &CredentialId),
) -> (RotationOutcome, MemoryProvider) {
    let mock = MemoryProvider::new();
    let old = EncryptionKey::generate();
    let new = EncryptionKey::generate();
    let k = id("live");
    CredentialStore::new(Arc::new(mock.clone()), Keyring::new(old.clone()))
        .put(&k, b"old-value", tags(&[]))
        .await
        .unwrap();
    let (paused_tx, paused_rx) = tokio::sync::oneshot::channel();
    let (resume_tx, resume_rx) = tokio::sync::oneshot::channel();
    let interleaved = Interleaved {
        inner: mock.clone(),
        before_store: Mutex::new(Some(paused_tx)),
        resume: tokio::sync::Mutex::new(Some(resume_rx)),
    };
    let rotating = CredentialStore::new(
        Arc::new(interleaved),
        Keyring::new(old).with_old_key(new.clone()).unwrap(),
    );
    rotating.add_current_key(new.clone()).unwrap();
    let live = CredentialStore::new(Arc::new(mock.clone()), Keyring::new(new));
    let rotation = tokio::spawn(async move { rotating.rotate_keys().await });
    paused_rx.await.unwrap();
    meanwhile(&live, &k).await;
    resume_tx.send(()).unwrap();
    let report = rotation.await.unwrap().unwrap();
    (RotationOutcome { report, live }, mock)
}

struct RotationOutcome {
    report: nebula_credential_core::RotationReport,
    live: CredentialStore,
}

#[tokio::test]
async fn rotation_never_undoes_a_concurrent_put() {
    let (out, _) = rotate_while(async |live, k| {
        live.put(k, b"written-during-rotation", tags(&[])).await.unwrap();
    })
    .await;
    let k = id("live");
    assert_eq!(
        out.live.get(&k).await.unwrap().expose_secret(),
        b"written-during-rotation"
    );
    assert_eq!(out.report.already_current, 1, "{:?}", out.report);
    assert_eq!(out.live.get_with_metadata(&k).await.unwrap().1.version, 2);
}

#[tokio::test]
async fn rotation_never_brings_back_a_credential_deleted_meanwhile() {
    let (out, mock) = rotate_while(async |live, k| live.delete(k).await.unwrap()).await;
    assert_eq!(out.report.vanished, 1, "{:?}", out.report);
    assert_eq!(mock.count(), 0, "the deleted credential stays deleted");
}

#[tokio::test]
async fn one_unreadable_record_is_reported_and_the_rest_are_rotated() {
    let mock = MemoryProvider::new();
    let old = EncryptionKey::generate();
    let store = CredentialStore::new(Arc::new(mock.clone()), Keyring::new(old.clone()));
    for n in ["a", "b", "c"] {
        store.put(&id(n), n.as_bytes(), tags(&[])).await.unwrap();
    }
    // `b` was written under a key this keyring never had.
    let stranger = CredentialStore::new(Arc::new(mock.clone()), Keyring::new(EncryptionKey::generate()));
    stranger.put(&id("b"), b"b", tags(&[])).await.unwrap();
    store.add_current_key(EncryptionKey::generate()).unwrap();
    let report = store.rotate_keys().await.unwrap();
    assert_eq!(report.re_encrypted, 2);
    assert_eq!(report.failed, vec![(id("b"), ErrorKind::Crypto)]);
    assert!(!report.is_complete());
}

#[test]
fn no_secret_reaches_debug_display_or_logs() {
    const CANARY: &str = "CANARY-b6f0c1e2-do-not-print";
    let (captured, _guard) = Captured::install(tracing::Level::TRACE);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let (shown, key_b64) = rt.block_on(async {
        let mock = MemoryProvider::new();
        let metrics = Arc::new(StorageMetrics::new());
        let stack = layers::standard(mock.clone(), RetryPolicy::default(), Timeouts::default(), metrics).unwrap();
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
        let (data, meta) = mock.retrieve(&k).await.unwrap().into_parts();
        shown.push(format!("{:?}", RecordEnvelope::new(k.clone(), data, meta)));
        store.list(&CredentialFilter::new().tag("env", "test")).await.unwrap();
        // Failures, including retried ones, go through the logs too.
        mock.fail_next_with(StorageError::unavailable("memory", Operation::Retrieve, Some(&k)));
        store.get(&k).await.unwrap();
        let wrong = CredentialStore::new(store.provider().clone(), Keyring::new(EncryptionKey::generate()));
        let err = wrong.get(&k).await.unwrap_err();
        shown.push(format!("{err} {err:?}"));
        store.delete(&k).await.unwrap();
        let err = store.get(&k).await.unwrap_err();
        shown.push(format!("{err} {err:?}"));
        (shown, key_b64)
    });
    let logs = captured.text();
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

#[tokio::test]
async fn add_current_key_refuses_a_different_key_under_a_held_id_and_the_store_reads_and_rotates_as_before() {
    let mock = MemoryProvider::new();
    let bytes = [0x3c_u8; 32];
    let prod = EncryptionKey::from_bytes(&bytes).unwrap().with_id("prod").unwrap();
    let old = EncryptionKey::generate();
    let store = CredentialStore::new(
        Arc::new(mock.clone()),
        Keyring::new(old.clone()).with_old_key(prod.clone()).unwrap(),
    );
    store.put(&id("a"), b"under-old", tags(&[])).await.unwrap();
    // A record sealed by the older "prod" key.
    CredentialStore::new(Arc::new(mock.clone()), Keyring::new(prod.clone()))
        .put(&id("b"), b"under-prod", tags(&[]))
        .await
        .unwrap();

    let twin = EncryptionKey::from_bytes(&[0x3d_u8; 32])
        .unwrap()
        .with_id("prod")
        .unwrap();
    let refused = store.add_current_key(twin).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Crypto, "{refused}");
    let shown = format!("{refused} {refused:?}");
    assert!(shown.contains("'prod'"), "{shown}");
    for secret in [&bytes[..], &[0x3d_u8; 32][..]] {
        let b64 = EncryptionKey::from_bytes(secret).unwrap().to_base64();
        assert!(!shown.contains(b64.expose_secret()), "no key material: {shown}");
    }
    assert!(
        !shown.contains("3c, 3c") && !shown.contains("3d, 3d") && !shown.contains("60, 60"),
        "{shown}"
    );

    // Nothing changed: same current key, both records read, a rotation still finds both keys.
    assert_eq!(store.current_key_id(), old.key_id());
    assert_eq!(store.get(&id("a")).await.unwrap().expose_secret(), b"under-old");
    assert_eq!(store.get(&id("b")).await.unwrap().expose_secret(), b"under-prod");

    // The current key listed again as old, and "prod" made current again: no-ops, nothing lost.
    store.add_current_key(old.clone()).unwrap();
    let report = store.rotate_keys().await.unwrap();
    assert_eq!(
        (report.re_encrypted, report.already_current, report.failed.len()),
        (1, 1, 0),
        "{report:?}"
    );
    store.add_current_key(prod.clone()).unwrap();
    store.add_current_key(prod.clone()).unwrap();
    let report = store.rotate_keys().await.unwrap();
    assert_eq!(
        (report.re_encrypted, report.already_current, report.failed.len()),
        (2, 0, 0),
        "{report:?}"
    );
    for (k, v) in [("a", &b"under-old"[..]), ("b", &b"under-prod"[..])] {
        let raw = mock.retrieve(&id(k)).await.unwrap().data;
        assert_eq!(raw.key_id, "prod");
        assert_eq!(&prod.decrypt(&id(k), &raw).unwrap()[..], v);
    }
}

#[test]
fn a_refused_old_key_names_the_id_and_never_the_key_in_debug_or_display() {
    let held = EncryptionKey::from_bytes(&[0x11_u8; 32])
        .unwrap()
        .with_id("k1")
        .unwrap();
    let other = EncryptionKey::from_bytes(&[0x22_u8; 32])
        .unwrap()
        .with_id("k1")
        .unwrap();
    let other_b64 = other.to_base64().expose_secret().to_string();
    let e = Keyring::new(held).with_old_key(other).unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(shown.contains("'k1'"), "{shown}");
    assert!(
        !shown.contains(&other_b64) && !shown.contains("34, 34") && !shown.contains("17, 17"),
        "{shown}"
    );
}
