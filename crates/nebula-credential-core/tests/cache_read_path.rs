//! The read path of a `get` (cache entry shared, key schedule expanded once, decryption
//! straight into the returned secret) under attack: records sealed by another AES-GCM
//! implementation, ids at the length limit, key rotation and writes racing cached reads
//! on several threads, a provider panicking under a read, and what `Debug` shows.

#[path = "cache/support.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use secrecy::ExposeSecret;

use nebula_credential_core::cache::{CacheConfig, Cached};
use nebula_credential_core::{
    CredentialId, CredentialMetadata, CredentialStore, EncryptedData, EncryptionKey, ErrorKind, Keyring,
    MemoryProvider, StorageProvider, Tags,
};
use support::{Counting, Failure};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Known-answer records, sealed by another implementation (Python `cryptography`'s
/// AESGCM, key 0x42 × 32, nonce 01..0c, associated data `nebula-credential/v1/<id>`, as
/// the format has always been): what an older version of this library wrote must read
/// back on the cached and uncached paths, and the key id (check value) must not move.
#[tokio::test(start_paused = true)]
async fn records_sealed_by_another_implementation_read_back_through_every_path() {
    let key = EncryptionKey::from_bytes(&[0x42; 32]).unwrap();
    assert_eq!(key.key_id(), "5d24e86f4f7a8cbc", "the key check value is stable");
    let longest = "x".repeat(128);
    let vectors = [
        (
            "db_password",
            "dd8f483828017ba88a63ab97fff71f3da45111884a7f48",
            &b"hunter2"[..],
        ),
        (
            longest.as_str(),
            "d995482b28003d23e5be91be2be51ba940768a46c22c9e9a2bd283acf541c9a7",
            &b"longest id value"[..],
        ),
    ];
    let memory = MemoryProvider::new();
    let cached = CredentialStore::with_cache(
        Cached::new(memory.clone(), CacheConfig::default()).unwrap(),
        Keyring::new(key.clone()),
    );
    let plain = CredentialStore::new(Arc::new(memory.clone()), Keyring::new(key.clone()));
    for (name, ciphertext, value) in vectors {
        let id: CredentialId = name.parse().unwrap();
        let data = EncryptedData {
            version: 1,
            key_id: key.key_id().into(),
            nonce: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
            ciphertext: hex(ciphertext),
        };
        assert_eq!(key.decrypt_secret(&id, &data).unwrap().expose_secret(), value);
        assert_eq!(&key.decrypt(&id, &data).unwrap()[..], value);
        memory.store(&id, &data, &CredentialMetadata::new()).await.unwrap();
        for _ in 0..2 {
            assert_eq!(cached.get(&id).await.unwrap().expose_secret(), value, "{name}");
            assert_eq!(plain.get(&id).await.unwrap().expose_secret(), value, "{name}");
            assert_eq!(cached.get_with_revision(&id).await.unwrap().0.expose_secret(), value);
        }
    }
    // The longest id is bound whole: a record of it does not read under a one shorter.
    let short: CredentialId = "x".repeat(127).parse().unwrap();
    let sealed = key.encrypt(&longest.parse().unwrap(), b"v").unwrap();
    assert!(key.decrypt_secret(&short, &sealed).is_err());
    assert!("x".repeat(129).parse::<CredentialId>().is_err());
}

/// Gets on several threads, hits and misses, while another task keeps writing,
/// another makes new keys current and re-encrypts everything, and the cache is cleared
/// now and then: every get returns a value that was put (never an error, never a
/// mixture), no lock is held across the two, and a get after the last put sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gets_on_many_threads_race_rotation_and_writes_and_always_decrypt() {
    let cache = Cached::new(MemoryProvider::new(), CacheConfig::default()).unwrap();
    let store = Arc::new(CredentialStore::with_cache(
        cache.clone(),
        Keyring::new(EncryptionKey::generate()),
    ));
    let ids: Vec<CredentialId> = (0..4).map(|i| format!("cred_{i}").parse().unwrap()).collect();
    let value = |round: usize| format!("value-{round:06}").into_bytes();
    for id in &ids {
        store.put(id, &value(0), Tags::new()).await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for r in 0..6 {
        let (store, ids, stop, reads) = (store.clone(), ids.clone(), stop.clone(), reads.clone());
        readers.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::SeqCst) || n < 50 {
                let id = &ids[(n + r) % ids.len()];
                let secret = store
                    .get(id)
                    .await
                    .unwrap_or_else(|e| panic!("get {id} failed during rotation: {e}"));
                let text = std::str::from_utf8(secret.expose_secret()).unwrap();
                assert!(text.starts_with("value-") && text.len() == 12, "{text:?}");
                n += 1;
                reads.fetch_add(1, Ordering::Relaxed);
                if n.is_multiple_of(16) {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    let writer = {
        let (store, ids) = (store.clone(), ids.clone());
        tokio::spawn(async move {
            for round in 1..=40 {
                for id in &ids {
                    store.put(id, &value(round), Tags::new()).await.unwrap();
                }
                tokio::task::yield_now().await;
            }
        })
    };
    for _ in 0..10 {
        store.add_current_key(EncryptionKey::generate()).unwrap();
        let report = store.rotate_keys().await.unwrap();
        assert!(report.is_complete(), "{report:?}");
        cache.clear();
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.await.unwrap();
    }
    assert!(reads.load(Ordering::Relaxed) >= 300);
    for id in &ids {
        assert_eq!(store.get(id).await.unwrap().expose_secret(), &value(40)[..]);
    }
    store.rotate_keys().await.unwrap();
    let current = store.current_key_id();
    for id in &ids {
        let stored = store.provider().retrieve(id).await.unwrap();
        assert_eq!(stored.data.key_id, current);
        assert_eq!(store.get(id).await.unwrap().expose_secret(), &value(40)[..]);
    }
}

/// A provider panicking under a cold `get` through the cache: every waiting get gets a
/// `Backend` error saying so (no hang, no panic in the caller), and once the provider
/// answers again the next get reads again and decrypts.
#[tokio::test(start_paused = true)]
async fn a_provider_panic_under_a_cached_get_is_an_error_and_the_next_get_reads_again() {
    let backend = Counting::new();
    let key = EncryptionKey::generate();
    let cache = Cached::new(backend.clone(), CacheConfig::default()).unwrap();
    let store = CredentialStore::with_cache(cache.clone(), Keyring::new(key.clone()));
    let writer = CredentialStore::new(Arc::new(backend.memory.clone()), Keyring::new(key));
    let id: CredentialId = "db_password".parse().unwrap();
    writer.put(&id, b"v1", Tags::new()).await.unwrap();
    backend.fail_reads(Some(Failure::Panic));
    let (a, b, c) = tokio::join!(
        store.get(&id),
        store.get_with_metadata(&id),
        store.get_with_revision(&id)
    );
    for e in [a.unwrap_err(), b.unwrap_err(), c.unwrap_err()] {
        assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
        assert!(e.to_string().contains("panicked"), "{e}");
    }
    backend.fail_reads(None);
    assert_eq!(store.get(&id).await.unwrap().expose_secret(), b"v1");
    // Then a hit, with the provider broken again: the entry is served.
    backend.fail_reads(Some(Failure::Panic));
    assert_eq!(store.get(&id).await.unwrap().expose_secret(), b"v1");
}

/// `Debug` of keys, keyrings and stores (cached or not) shows key ids, never the key
/// in any encoding, nor its expanded schedule (whose first round key is the key).
#[test]
fn debug_never_shows_key_material() {
    let bytes = [0x5a_u8; 32];
    let key = EncryptionKey::from_bytes(&bytes).unwrap();
    let named = key.clone().with_id("named").unwrap();
    let mut ring = Keyring::new(named.clone()).with_old_key(key.clone()).unwrap();
    ring.rotate_to(EncryptionKey::generate()).unwrap();
    let plain = CredentialStore::new(Arc::new(MemoryProvider::new()), ring.clone());
    let cached = CredentialStore::with_cache(
        Cached::new(MemoryProvider::new(), CacheConfig::default()).unwrap(),
        ring.clone(),
    );
    let shown = format!("{key:?} {named:?} {ring:?} {plain:?} {cached:?} {key:#?} {ring:#?}");
    let base64 = key.to_base64();
    for needle in [
        "5a5a",
        "5A5A",
        "90, 90",
        "0x5a",
        &base64.expose_secret()[..8],
        "Aes256",
        "GHash",
        "Polyval",
    ] {
        assert!(!shown.contains(needle), "{needle:?} in {shown}");
    }
    assert!(shown.contains(key.key_id()) && shown.contains("named"), "{shown}");
}

/// An own write lands while a cold read of the older value is still at the backend:
/// every form of `get` returns the write at once (served from the entry the write
/// filled), and the older answer, when it comes back, is given to the read that asked
/// for it but never replaces the entry.
#[tokio::test(start_paused = true)]
async fn an_own_write_beats_a_slower_cold_read_on_every_get() {
    let backend = Counting::new();
    let key = EncryptionKey::generate();
    let cache = Cached::new(backend.clone(), CacheConfig::default()).unwrap();
    let store = Arc::new(CredentialStore::with_cache(cache, Keyring::new(key.clone())));
    let other = CredentialStore::new(Arc::new(backend.memory.clone()), Keyring::new(key.clone()));
    let id = support::id("db_password");
    other.put(&id, b"v1", Tags::new()).await.unwrap();
    backend.delay_reads(Duration::from_secs(10));
    let slow = {
        let (store, id) = (store.clone(), id.clone());
        tokio::spawn(async move { store.get_with_revision(&id).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(backend.retrieves(), 1, "the cold read is at the backend");
    let mut metadata = CredentialMetadata::new();
    metadata.version = 2;
    store
        .provider()
        .store(&id, &key.encrypt(&id, b"v2").unwrap(), &metadata)
        .await
        .unwrap();
    for _ in 0..2 {
        assert_eq!(store.get(&id).await.unwrap().expose_secret(), b"v2");
        let (secret, meta) = store.get_with_metadata(&id).await.unwrap();
        assert_eq!((secret.expose_secret(), meta.version), (&b"v2"[..], 2));
        assert_eq!(store.get_with_revision(&id).await.unwrap().0.expose_secret(), b"v2");
    }
    let (old, _, _) = slow.await.unwrap().unwrap();
    assert_eq!(old.expose_secret(), b"v1", "the slow read answers what it read");
    assert_eq!(store.get(&id).await.unwrap().expose_secret(), b"v2");
    assert_eq!(backend.retrieves(), 1, "the write's entry served every later get");
}
