//! Races and edge cases of the `Cached` layer found by the breaker round: overlapping
//! writes of one id, `refresh` with a revision the cache never held, revalidations that
//! find the credential gone. Ages run on tokio's paused clock.

#[path = "cache/support.rs"]
mod support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use nebula_credential_core::cache::{CacheConfig, Cached};
use nebula_credential_core::{
    Capabilities, CredentialFilter, CredentialId, CredentialMetadata, CredentialStore, EncryptedData, EncryptionKey,
    ErrorKind, Keyring, Precondition, Revision, StorageError, StorageProvider, Stored, Tags,
};
use secrecy::ExposeSecret;
use support::{Counting, id};

const FRESH: Duration = Duration::from_secs(30);

fn config() -> CacheConfig {
    CacheConfig {
        fresh_ms: FRESH.as_millis() as u64,
        max_stale_ms: 300_000,
        poll_ms: 1_000,
        ..CacheConfig::default()
    }
}

fn keyring() -> Keyring {
    Keyring::new(EncryptionKey::from_bytes(&[7; 32]).unwrap())
}

/// A backend whose writes (store and delete) each wait the next delay of a queue before
/// they land, so two writes of one id can land in the opposite order they began.
#[derive(Debug, Clone)]
struct SlowWrites {
    inner: Counting,
    delays: Arc<Mutex<VecDeque<Duration>>>,
}

impl SlowWrites {
    fn new(inner: Counting, delays: &[u64]) -> Self {
        let delays = delays.iter().map(|ms| Duration::from_millis(*ms)).collect();
        SlowWrites {
            inner,
            delays: Arc::new(Mutex::new(delays)),
        }
    }

    async fn pause(&self) {
        let delay = self.delays.lock().unwrap().pop_front().unwrap_or_default();
        tokio::time::sleep(delay).await;
    }
}

#[async_trait]
impl StorageProvider for SlowWrites {
    fn provider_name(&self) -> &'static str {
        "slow-writes"
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn store_if(
        &self,
        id: &CredentialId,
        data: &EncryptedData,
        metadata: &CredentialMetadata,
        precondition: &Precondition,
    ) -> Result<Revision, StorageError> {
        self.pause().await;
        self.inner.store_if(id, data, metadata, precondition).await
    }

    async fn retrieve(&self, id: &CredentialId) -> Result<Stored, StorageError> {
        self.inner.retrieve(id).await
    }

    async fn delete(&self, id: &CredentialId) -> Result<(), StorageError> {
        self.pause().await;
        self.inner.delete(id).await
    }

    async fn list(&self, filter: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
        self.inner.list(filter).await
    }

    async fn exists(&self, id: &CredentialId) -> Result<bool, StorageError> {
        self.inner.exists(id).await
    }

    async fn revision(&self, id: &CredentialId) -> Result<Revision, StorageError> {
        self.inner.revision(id).await
    }
}

fn record(text: &[u8]) -> EncryptedData {
    EncryptedData {
        version: EncryptedData::CURRENT_VERSION,
        key_id: "k".into(),
        nonce: [0; 12],
        ciphertext: text.to_vec(),
    }
}

/// Two unconditional writes of one id through the cache, the first slower: the backend
/// keeps the first (it landed last); so must the cache, whatever the second was.
#[tokio::test(start_paused = true)]
async fn overlapping_writes_of_one_id_never_leave_the_cache_disagreeing_with_the_backend() {
    for second_is_delete in [false, true] {
        let counting = Counting::new();
        let backend = SlowWrites::new(counting.clone(), &[100, 0]);
        let cached = Cached::new(backend, config()).unwrap();
        let id = id("token");
        let metadata = CredentialMetadata::new();
        let first = {
            let (cached, id, metadata) = (cached.clone(), id.clone(), metadata.clone());
            tokio::spawn(async move { cached.store(&id, &record(b"first"), &metadata).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        if second_is_delete {
            counting.memory.store(&id, &record(b"zero"), &metadata).await.unwrap();
            cached.delete(&id).await.unwrap();
        } else {
            cached.store(&id, &record(b"second"), &metadata).await.unwrap();
        }
        first.await.unwrap().unwrap();
        let in_backend = counting.memory.retrieve(&id).await.unwrap();
        assert_eq!(in_backend.data.ciphertext, b"first", "the slower write landed last");
        let through_cache = cached.retrieve(&id).await.map(|s| s.data.ciphertext);
        assert_eq!(
            through_cache.ok(),
            Some(b"first".to_vec()),
            "the cache serves what the backend holds (second write a delete: {second_is_delete})"
        );
    }
}

/// A caller saw a revision this cache never held (from another process, a watch, or an
/// uncached store) and it was rejected: the cache holds an older one, so it must fetch
/// rather than hand back its older revision as if it were newer.
#[tokio::test(start_paused = true)]
async fn refresh_with_a_seen_the_cache_never_held_fetches() {
    let counting = Counting::new();
    let cached = Cached::new(counting.clone(), config()).unwrap();
    let store = CredentialStore::with_cache(cached, keyring());
    let plain = CredentialStore::new(Arc::new(counting.memory.clone()), keyring());
    let id = id("db_password");
    plain.put(&id, b"v1", Tags::new()).await.unwrap();
    let (_, _, r1) = store.get_with_revision(&id).await.unwrap();
    plain.put(&id, b"v2", Tags::new()).await.unwrap();
    let (_, _, r2) = plain.get_with_revision(&id).await.unwrap();
    plain.put(&id, b"v3", Tags::new()).await.unwrap();
    // The service rejected v2 (rotated again to v3).
    let now = store.refresh(&id, Some(&r2)).await.unwrap();
    assert_ne!(now, r1, "the cache's older revision is not an answer to a newer one");
    assert_eq!(store.get(&id).await.unwrap().expose_secret(), b"v3");
    // Callers who saw r1 (which the cache replaced) fetch nothing more.
    let retrieves = counting.retrieves();
    assert_eq!(store.refresh(&id, Some(&r1)).await.unwrap(), now);
    assert_eq!(counting.retrieves(), retrieves);
}

/// A stale entry whose revalidation finds the credential deleted is dropped: the stale
/// read that started it is the last one served.
#[tokio::test(start_paused = true)]
async fn a_revalidation_that_finds_the_credential_gone_drops_the_entry() {
    let counting = Counting::new();
    let cached = Cached::new(counting.clone(), config()).unwrap();
    let store = CredentialStore::with_cache(cached.clone(), keyring());
    let plain = CredentialStore::new(Arc::new(counting.memory.clone()), keyring());
    let id = id("api_key");
    plain.put(&id, b"v1", Tags::new()).await.unwrap();
    store.get(&id).await.unwrap();
    plain.delete(&id).await.unwrap();
    tokio::time::advance(FRESH + Duration::from_secs(1)).await;
    store.get(&id).await.unwrap();
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert_eq!(cached.entry_count().await, 0);
    assert_eq!(store.get(&id).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert!(!store.exists(&id).await.unwrap());
}

/// Huge but valid settings build a cache; the largest accepted ages do not overflow.
#[tokio::test(start_paused = true)]
async fn the_largest_settings_build_a_working_cache() {
    let config = CacheConfig {
        fresh_ms: CacheConfig::MAX_AGE_MS,
        max_stale_ms: CacheConfig::MAX_AGE_MS,
        poll_ms: CacheConfig::MAX_AGE_MS,
        not_found_ms: CacheConfig::MAX_AGE_MS,
        max_entries: u64::MAX,
    };
    let counting = Counting::new();
    let cached = Cached::new(counting.clone(), config).unwrap();
    let store = CredentialStore::with_cache(cached, keyring());
    let id = id("k");
    assert_eq!(store.get(&id).await.unwrap_err().kind(), ErrorKind::NotFound);
    store.put(&id, b"v", Tags::new()).await.unwrap();
    tokio::time::advance(Duration::from_millis(CacheConfig::MAX_AGE_MS - 1)).await;
    assert_eq!(store.get(&id).await.unwrap().expose_secret(), b"v");
    let _watch = store.watch(&id).await.unwrap();
    for field in ["fresh_ms", "max_stale_ms", "poll_ms", "not_found_ms"] {
        let text = format!("{field} = {}", u64::MAX);
        let e = toml::from_str::<CacheConfig>(&text).unwrap().validate().unwrap_err();
        assert!(e.to_string().contains(&format!("cache.{field}")), "{e}");
    }
    let most: CacheConfig = toml::from_str(&format!("max_entries = {}", u64::MAX)).unwrap();
    most.validate().unwrap();
}

/// A refresh that finds a revalidation in flight, started before the rotation the caller
/// saw, must not take that older answer for the new one, nor remember the caller's
/// revision as superseded by it.
#[tokio::test(start_paused = true)]
async fn refresh_does_not_accept_an_answer_older_than_the_callers_revision() {
    let counting = Counting::new();
    let cached = Cached::new(counting.clone(), config()).unwrap();
    let store = Arc::new(CredentialStore::with_cache(cached, keyring()));
    let plain = CredentialStore::new(Arc::new(counting.memory.clone()), keyring());
    let id = id("db_password");
    plain.put(&id, b"v1", Tags::new()).await.unwrap();
    let (_, _, r1) = store.get_with_revision(&id).await.unwrap();
    tokio::time::advance(FRESH + Duration::from_secs(1)).await;
    // The stale read starts a revalidation that reads v1's state, then is slow to answer.
    counting.delay_reads(Duration::from_millis(100));
    store.get(&id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(counting.revisions(), 1, "the revalidation read v1's revision");
    plain.put(&id, b"v2", Tags::new()).await.unwrap();
    let r2 = counting.memory.retrieve(&id).await.unwrap().revision;
    let retrieves = counting.retrieves();
    let refreshes: Vec<_> = (0..10)
        .map(|_| {
            let (store, id, r2) = (store.clone(), id.clone(), r2.clone());
            tokio::spawn(async move { store.refresh(&id, Some(&r2)).await })
        })
        .collect();
    for refresh in refreshes {
        let now = refresh.await.unwrap().unwrap();
        assert_ne!(now, r1, "an answer read before the caller's revision existed");
    }
    assert_eq!(counting.retrieves() - retrieves, 1, "ten refreshes, one fetch");
    assert_eq!(store.get(&id).await.unwrap().expose_secret(), b"v2");
}

/// The rejected credential is still the backend's (the rejection had another cause, or
/// the rotation has not landed): 100 concurrent refreshes still make one fetch, and all
/// learn that the backend holds the revision they saw.
#[tokio::test(start_paused = true)]
async fn a_hundred_refreshes_of_a_revision_still_current_make_one_fetch() {
    let counting = Counting::new();
    let cached = Cached::new(counting.clone(), config()).unwrap();
    let store = Arc::new(CredentialStore::with_cache(cached, keyring()));
    let id = id("db_password");
    store.put(&id, b"v1", Tags::new()).await.unwrap();
    let (_, _, seen) = store.get_with_revision(&id).await.unwrap();
    counting.delay_reads(Duration::from_millis(50));
    let retrieves = counting.retrieves();
    let refreshes: Vec<_> = (0..100)
        .map(|_| {
            let (store, id, seen) = (store.clone(), id.clone(), seen.clone());
            tokio::spawn(async move { store.refresh(&id, Some(&seen)).await })
        })
        .collect();
    for refresh in refreshes {
        assert_eq!(refresh.await.unwrap().unwrap(), seen);
    }
    assert_eq!(counting.retrieves() - retrieves, 1);
}

/// A put through the cache while its entry is an older version than the backend's
/// (another process rotated within `fresh_ms`): the conditional write conflicts, the
/// conflict drops the entry, and the retried put lands on the current version.
#[tokio::test(start_paused = true)]
async fn a_put_over_a_cached_version_another_writer_replaced_lands() {
    let counting = Counting::new();
    let cached = Cached::new(counting.clone(), config()).unwrap();
    let store = CredentialStore::with_cache(cached, keyring());
    let plain = CredentialStore::new(Arc::new(counting.memory.clone()), keyring());
    let id = id("token");
    plain.put(&id, b"v1", Tags::new()).await.unwrap();
    store.get(&id).await.unwrap();
    plain.put(&id, b"v2", Tags::new()).await.unwrap();
    let metadata = store.put(&id, b"v3", Tags::new()).await.unwrap();
    assert_eq!(metadata.version, 3, "versioned after the other writer's");
    assert_eq!(store.get(&id).await.unwrap().expose_secret(), b"v3");
    assert_eq!(plain.get(&id).await.unwrap().expose_secret(), b"v3");
}
