//! The `Cached` layer and `CredentialStore::{refresh, watch}` over a counting in-memory
//! backend. Ages run on tokio's paused clock: no wall-clock thresholds.

#[path = "cache/support.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use nebula_credential_core::cache::{CacheConfig, Cached, Change};
use nebula_credential_core::{
    CredentialId, CredentialMetadata, CredentialStore, EncryptionKey, ErrorKind, Keyring, StorageError, StorageMetrics,
    StorageProvider, Tags,
};
use secrecy::{ExposeSecret, SecretSlice};
use support::{Counting, Failure, id};

/// `n` concurrent `get`s of `id`, each in its own task, and their answers.
async fn concurrent_gets(
    store: &Arc<CredentialStore>,
    id: &CredentialId,
    n: usize,
) -> Vec<Result<SecretSlice<u8>, StorageError>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move { store.get(&id).await })
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for task in tasks {
        answers.push(task.await.expect("a get never panics"));
    }
    answers
}

const FRESH: Duration = Duration::from_secs(30);
const MAX_STALE: Duration = Duration::from_secs(300);

fn config() -> CacheConfig {
    CacheConfig {
        fresh_ms: FRESH.as_millis() as u64,
        max_stale_ms: MAX_STALE.as_millis() as u64,
        poll_ms: 1_000,
        ..CacheConfig::default()
    }
}

fn key() -> EncryptionKey {
    EncryptionKey::from_bytes(&[7; 32]).unwrap()
}

/// A cached store over `backend`, and a plain store over the same records (another
/// writer: its puts do not go through the cache).
fn stores(backend: &Counting, config: CacheConfig) -> (CredentialStore, CredentialStore, Cached<Counting>) {
    let cached = Cached::with_metrics(backend.clone(), config, Arc::new(StorageMetrics::new())).unwrap();
    let store = CredentialStore::with_cache(cached.clone(), Keyring::new(key()));
    let other = CredentialStore::new(Arc::new(backend.memory.clone()), Keyring::new(key()));
    (store, other, cached)
}

/// Lets spawned background work (revalidations) run to completion.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_cold_reads_make_one_backend_call() {
    let backend = Counting::new();
    let (store, other, cached) = stores(&backend, config());
    let id = id("db_password");
    other.put(&id, b"hunter2", Tags::new()).await.unwrap();
    backend.delay_reads(Duration::from_millis(50));
    let store = Arc::new(store);
    for read in concurrent_gets(&store, &id, 1_000).await {
        assert_eq!(read.unwrap().expose_secret(), b"hunter2");
    }
    assert_eq!(backend.retrieves(), 1, "1,000 cold reads, one backend call");
    let stats = cached.metrics().snapshot().cache;
    assert_eq!(stats.hits + stats.misses, 1_000, "{stats:?}");
    assert!(stats.misses >= 1, "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn a_cold_miss_that_fails_gives_every_waiter_the_error_and_caches_nothing() {
    let backend = Counting::new();
    let (store, other, _) = stores(&backend, config());
    let id = id("api_key");
    other.put(&id, b"v1", Tags::new()).await.unwrap();
    backend.fail_reads(Some(Failure::Unavailable));
    backend.delay_reads(Duration::from_millis(10));
    let store = Arc::new(store);
    for read in concurrent_gets(&store, &id, 100).await {
        assert_eq!(read.unwrap_err().kind(), ErrorKind::Unavailable);
    }
    assert_eq!(backend.retrieves(), 1);
    backend.fail_reads(None);
    assert_eq!(store.get(&id).await.unwrap().expose_secret(), b"v1");
    assert_eq!(backend.retrieves(), 2, "the failure was not cached");
}

#[tokio::test(start_paused = true)]
async fn stale_reads_start_one_revalidation_and_fetch_nothing_when_unchanged() {
    let backend = Counting::new();
    let (store, other, cached) = stores(&backend, config());
    let id = id("db_password");
    other.put(&id, b"hunter2", Tags::new()).await.unwrap();
    store.get(&id).await.unwrap();
    let (retrieves, revisions) = (backend.retrieves(), backend.revisions());
    tokio::time::advance(FRESH + Duration::from_secs(1)).await;
    backend.delay_reads(Duration::from_millis(50));
    let store = Arc::new(store);
    for read in concurrent_gets(&store, &id, 1_000).await {
        assert_eq!(read.unwrap().expose_secret(), b"hunter2");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    settle().await;
    assert_eq!(
        backend.revisions() - revisions,
        1,
        "one revalidation for 1,000 stale reads"
    );
    assert_eq!(backend.retrieves() - retrieves, 0, "unchanged: no value fetched");
    let stats = cached.metrics().snapshot().cache;
    assert_eq!(
        (stats.stale_served, stats.revalidations_unchanged),
        (1_000, 1),
        "{stats:?}"
    );
    // Fresh again: served without any backend call.
    store.get(&id).await.unwrap();
    assert_eq!(
        (backend.retrieves() - retrieves, backend.revisions() - revisions),
        (0, 1)
    );
    assert_eq!(cached.metrics().snapshot().cache.hits, stats.hits + 1);
}

#[tokio::test(start_paused = true)]
async fn a_stale_entry_whose_revision_changed_is_refetched_in_the_background() {
    let backend = Counting::new();
    let (store, other, cached) = stores(&backend, config());
    let id = id("token");
    other.put(&id, b"v1", Tags::new()).await.unwrap();
    store.get(&id).await.unwrap();
    other.put(&id, b"v2", Tags::new()).await.unwrap();
    assert_eq!(
        store.get(&id).await.unwrap().expose_secret(),
        b"v1",
        "fresh: served as is"
    );
    tokio::time::advance(FRESH).await;
    assert_eq!(
        store.get(&id).await.unwrap().expose_secret(),
        b"v1",
        "stale: served at once"
    );
    settle().await;
    assert_eq!(store.get(&id).await.unwrap().expose_secret(), b"v2");
    assert_eq!(cached.metrics().snapshot().cache.revalidations_changed, 1);
}

#[tokio::test(start_paused = true)]
async fn after_a_rotation_a_hundred_refreshes_with_the_same_seen_make_one_fetch() {
    let backend = Counting::new();
    let (store, other, cached) = stores(&backend, config());
    let id = id("db_password");
    other.put(&id, b"old", Tags::new()).await.unwrap();
    let (_, _, seen) = store.get_with_revision(&id).await.unwrap();
    other.put(&id, b"new", Tags::new()).await.unwrap();
    // Within fresh_ms the cache still serves the old value: the database rejects it.
    assert_eq!(store.get(&id).await.unwrap().expose_secret(), b"old");
    backend.delay_reads(Duration::from_millis(20));
    let before = backend.retrieves();
    let store = Arc::new(store);
    let refreshes: Vec<_> = (0..100)
        .map(|i| {
            let (store, id, seen) = (store.clone(), id.clone(), seen.clone());
            tokio::spawn(async move {
                // Callers notice the rejection at different times.
                tokio::time::sleep(Duration::from_millis(i % 40)).await;
                store.refresh(&id, Some(&seen)).await
            })
        })
        .collect();
    let mut revisions = Vec::new();
    for r in refreshes {
        revisions.push(r.await.unwrap().unwrap());
    }
    assert_eq!(backend.retrieves() - before, 1, "one value fetch for 100 refreshes");
    assert!(
        revisions.iter().all(|r| *r != seen && *r == revisions[0]),
        "{revisions:?}"
    );
    let (value, _, now) = store.get_with_revision(&id).await.unwrap();
    assert_eq!((value.expose_secret(), &now), (&b"new"[..], &revisions[0]));
    assert_eq!(cached.metrics().snapshot().cache.refreshes, 1);
    // A refresh with a revision the cache no longer holds fetches nothing.
    assert_eq!(store.refresh(&id, Some(&seen)).await.unwrap(), now);
    assert_eq!(backend.retrieves() - before, 1);
    // Without `seen` it always refetches.
    store.refresh(&id, None).await.unwrap();
    assert_eq!(backend.retrieves() - before, 2);
}

#[tokio::test(start_paused = true)]
async fn while_the_backend_is_unavailable_stale_is_served_until_max_stale_then_the_error() {
    let backend = Counting::new();
    let (store, other, cached) = stores(&backend, config());
    let id = id("api_key");
    other.put(&id, b"v1", Tags::new()).await.unwrap();
    store.get(&id).await.unwrap();
    backend.fail_reads(Some(Failure::Unavailable));
    tokio::time::advance(FRESH + Duration::from_secs(1)).await;
    for _ in 0..5 {
        assert_eq!(store.get(&id).await.unwrap().expose_secret(), b"v1");
        settle().await;
        tokio::time::advance(Duration::from_secs(50)).await;
    }
    // The entry is 281 s old: one more max_stale_ms takes it past the hard limit.
    tokio::time::advance(MAX_STALE).await;
    let e = store.get(&id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(cached.metrics().snapshot().cache.stale_served >= 5);
    backend.fail_reads(None);
    assert_eq!(store.get(&id).await.unwrap().expose_secret(), b"v1");
}

#[tokio::test(start_paused = true)]
async fn permission_denied_drops_the_entry_and_is_never_answered_with_stale() {
    let backend = Counting::new();
    let (store, other, cached) = stores(&backend, config());
    let id = id("api_key");
    other.put(&id, b"v1", Tags::new()).await.unwrap();
    store.get(&id).await.unwrap();
    backend.fail_reads(Some(Failure::PermissionDenied));
    tokio::time::advance(FRESH + Duration::from_secs(1)).await;
    // The read that finds the entry stale is served at once and starts the revalidation.
    store.get(&id).await.unwrap();
    settle().await;
    assert_eq!(
        cached.entry_count().await,
        0,
        "the refused revalidation dropped the entry"
    );
    for _ in 0..3 {
        let e = store.get(&id).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    }
    // Past max_stale with a revoked grant: the error, not the value.
    let other_id = support::id("other");
    other.put(&other_id, b"x", Tags::new()).await.unwrap();
    backend.fail_reads(None);
    store.get(&other_id).await.unwrap();
    backend.fail_reads(Some(Failure::PermissionDenied));
    tokio::time::advance(MAX_STALE + Duration::from_secs(1)).await;
    assert_eq!(
        store.get(&other_id).await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}

#[tokio::test(start_paused = true)]
async fn own_puts_and_deletes_are_read_back_at_once() {
    let backend = Counting::new();
    let (store, _, _) = stores(&backend, config());
    let id = id("token");
    store.put(&id, b"v1", Tags::new()).await.unwrap();
    assert_eq!(store.get(&id).await.unwrap().expose_secret(), b"v1");
    let retrieves = backend.retrieves();
    store.put(&id, b"v2", Tags::new()).await.unwrap();
    let (value, metadata) = store.get_with_metadata(&id).await.unwrap();
    assert_eq!((value.expose_secret(), metadata.version), (&b"v2"[..], 2));
    assert!(store.exists(&id).await.unwrap());
    assert_eq!(backend.exists_calls(), 0, "exists answered from the fresh entry");
    assert_eq!(backend.retrieves(), retrieves, "own writes are cached: no read needed");
    store.delete(&id).await.unwrap();
    assert_eq!(store.get(&id).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert!(!store.exists(&id).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_read_that_started_before_a_write_never_overwrites_it() {
    let backend = Counting::new();
    let (store, other, cached) = stores(&backend, config());
    let id = id("token");
    other.put(&id, b"old", Tags::new()).await.unwrap();
    // The read takes the old record, then is slow to answer.
    backend.delay_reads(Duration::from_millis(100));
    let store = Arc::new(store);
    let slow = {
        let (store, id) = (store.clone(), id.clone());
        tokio::spawn(async move { store.get(&id).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    // A write through the cache lands while that read is in flight.
    let sealed = Keyring::new(key()).encrypt(&id, b"new").unwrap();
    cached.store(&id, &sealed, &CredentialMetadata::new()).await.unwrap();
    assert_eq!(slow.await.unwrap().unwrap().expose_secret(), b"old");
    let retrieves = backend.retrieves();
    assert_eq!(store.get(&id).await.unwrap().expose_secret(), b"new");
    assert_eq!(backend.retrieves(), retrieves, "the write's entry is served");
}

#[tokio::test(start_paused = true)]
async fn not_found_is_asked_each_time_unless_negative_caching_is_on() {
    let backend = Counting::new();
    let (store, _, _) = stores(&backend, config());
    let missing = id("missing");
    for _ in 0..3 {
        assert_eq!(store.get(&missing).await.unwrap_err().kind(), ErrorKind::NotFound);
    }
    assert_eq!(backend.retrieves(), 3);

    let backend = Counting::new();
    let negative = CacheConfig {
        not_found_ms: 5_000,
        ..config()
    };
    let (store, other, _) = stores(&backend, negative);
    for _ in 0..3 {
        assert_eq!(store.get(&missing).await.unwrap_err().kind(), ErrorKind::NotFound);
    }
    assert_eq!(backend.retrieves(), 1);
    assert!(!store.exists(&missing).await.unwrap());
    assert_eq!(backend.exists_calls(), 0);
    other.put(&missing, b"here now", Tags::new()).await.unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(store.get(&missing).await.unwrap().expose_secret(), b"here now");
}

#[tokio::test(start_paused = true)]
async fn memory_is_bounded_by_max_entries() {
    let backend = Counting::new();
    let bounded = CacheConfig {
        max_entries: 10,
        ..config()
    };
    let (store, other, cached) = stores(&backend, bounded);
    for i in 0..50 {
        let id = id(&format!("cred_{i}"));
        other.put(&id, b"x", Tags::new()).await.unwrap();
        store.get(&id).await.unwrap();
    }
    let held = cached.entry_count().await;
    assert!(held <= 10, "{held} entries held");
    let evictions = cached.metrics().snapshot().cache.evictions;
    assert!(evictions >= 40, "{evictions} evictions");
}

#[tokio::test]
async fn an_invalid_config_is_refused_naming_the_field() {
    let bad = CacheConfig {
        fresh_ms: 10_000,
        max_stale_ms: 1_000,
        ..CacheConfig::default()
    };
    let e = Cached::new(Counting::new(), bad).unwrap_err();
    assert_eq!(e.field(), "cache.max_stale_ms", "{e}");
    let e = Cached::new(
        Counting::new(),
        CacheConfig {
            max_entries: 0,
            ..CacheConfig::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.field(), "cache.max_entries", "{e}");
}

/// Watches with and without a cache: one poller per id, changes and deletes seen, the
/// poller gone with the last watch, and an error once the store is dropped.
async fn watch_behaviour(store: CredentialStore, other: CredentialStore, backend: Counting) {
    let id = id("db_password");
    other.put(&id, b"v1", Tags::new()).await.unwrap();
    let mut watches = Vec::new();
    for _ in 0..20 {
        watches.push(store.watch(&id).await.unwrap());
    }
    assert_eq!(store.watched(), 1, "one poller for 20 watches");
    let Change::Present { revision: first, .. } = watches[0].current() else {
        panic!("{:?}", watches[0].current())
    };
    let revisions = backend.revisions();
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let polls = backend.revisions() - revisions;
    assert!(
        (9..=12).contains(&polls),
        "{polls} polls in 10.5 periods, for 20 watches"
    );

    other.put(&id, b"v2", Tags::new()).await.unwrap();
    for w in &mut watches {
        match tokio::time::timeout(Duration::from_millis(1_200), w.changed()).await {
            Ok(Ok(Change::Present { revision, metadata })) => {
                assert_ne!(revision, first);
                assert_eq!(metadata.version, 2);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(store.get(&id).await.unwrap().expose_secret(), b"v2");

    other.delete(&id).await.unwrap();
    for w in &mut watches {
        let change = tokio::time::timeout(Duration::from_millis(1_200), w.changed()).await;
        assert_eq!(change.unwrap().unwrap(), Change::Deleted);
    }

    let last = watches.pop().unwrap();
    drop(watches);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(store.watched(), 1, "one watch still holds the poller");
    drop(last);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(store.watched(), 0, "the poller stopped with the last watch");
    let (revisions, retrieves) = (backend.revisions(), backend.retrieves());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        (backend.revisions(), backend.retrieves()),
        (revisions, retrieves),
        "nothing polls any more"
    );

    let mut orphan = store.watch(&id).await.unwrap();
    assert_eq!(orphan.current(), Change::Deleted);
    drop(store);
    assert!(orphan.changed().await.is_err(), "the store is gone");
}

#[tokio::test(start_paused = true)]
async fn watch_through_the_cache() {
    let backend = Counting::new();
    let (store, other, _) = stores(&backend, config());
    watch_behaviour(store, other, backend).await;
}

#[tokio::test(start_paused = true)]
async fn watch_without_a_cache() {
    let backend = Counting::new();
    let store =
        CredentialStore::new(Arc::new(backend.clone()), Keyring::new(key())).with_watch_poll(Duration::from_secs(1));
    let other = CredentialStore::new(Arc::new(backend.memory.clone()), Keyring::new(key()));
    watch_behaviour(store, other, backend).await;
}

#[tokio::test(start_paused = true)]
async fn refresh_without_a_cache_reports_the_backend_revision() {
    let backend = Counting::new();
    let store = CredentialStore::new(Arc::new(backend.clone()), Keyring::new(key()));
    let id = id("token");
    store.put(&id, b"v1", Tags::new()).await.unwrap();
    let (_, _, seen) = store.get_with_revision(&id).await.unwrap();
    assert_eq!(store.refresh(&id, Some(&seen)).await.unwrap(), seen);
    store.put(&id, b"v2", Tags::new()).await.unwrap();
    assert_ne!(store.refresh(&id, Some(&seen)).await.unwrap(), seen);
    store.delete(&id).await.unwrap();
    assert_eq!(store.refresh(&id, None).await.unwrap_err().kind(), ErrorKind::NotFound);
}

#[tokio::test(start_paused = true)]
async fn the_cache_holds_ciphertext_and_the_store_decrypts_each_read() {
    let backend = Counting::new();
    let (store, _, cached) = stores(&backend, config());
    let id = id("token");
    store.put(&id, b"plaintext-value", Tags::new()).await.unwrap();
    let stored = cached.retrieve(&id).await.unwrap();
    assert!(!stored.data.ciphertext.windows(15).any(|w| w == b"plaintext-value"));
    assert!(!format!("{cached:?}").contains("plaintext"));
}

#[tokio::test(start_paused = true)]
async fn background_revalidations_do_not_outlive_the_cache() {
    let backend = Counting::new();
    let (store, other, cached) = stores(&backend, config());
    let id = id("token");
    other.put(&id, b"v1", Tags::new()).await.unwrap();
    store.get(&id).await.unwrap();
    tokio::time::advance(FRESH).await;
    // The revalidation this stale read starts hangs on the backend for an hour.
    backend.delay_reads(Duration::from_secs(3_600));
    store.get(&id).await.unwrap();
    settle().await;
    assert_eq!(backend.revisions(), 1, "the revalidation is waiting on the backend");
    drop(store);
    settle().await;
    assert_eq!(Arc::strong_count(&backend.counts), 2, "a handle of the cache is left");
    drop(cached);
    settle().await;
    assert_eq!(
        Arc::strong_count(&backend.counts),
        1,
        "the revalidation was aborted with the last handle of the cache"
    );
}

#[tokio::test(start_paused = true)]
async fn a_tampered_record_is_refused_on_every_read_hits_included() {
    let backend = Counting::new();
    let (store, other, _) = stores(&backend, config());
    let id = id("token");
    let moved = support::id("other_token");
    other.put(&id, b"hunter2", Tags::new()).await.unwrap();
    other.put(&moved, b"swordfish", Tags::new()).await.unwrap();
    // One bit of the ciphertext flipped behind the library's back.
    let mut stored = backend.memory.retrieve(&id).await.unwrap();
    stored.data.ciphertext[0] ^= 1;
    backend.memory.store(&id, &stored.data, &stored.metadata).await.unwrap();
    // Another credential's record copied under `moved`'s id... and `moved`'s under `id`'s.
    let original = backend.memory.retrieve(&moved).await.unwrap();
    backend
        .memory
        .store(&moved, &stored.data, &original.metadata)
        .await
        .unwrap();
    for round in 0..3 {
        for target in [&id, &moved] {
            let e = store.get(target).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Crypto, "round {round}: {e}");
            assert_eq!(
                store.get_with_metadata(target).await.unwrap_err().kind(),
                ErrorKind::Crypto
            );
            assert_eq!(
                store.get_with_revision(target).await.unwrap_err().kind(),
                ErrorKind::Crypto
            );
        }
    }
    assert_eq!(
        backend.retrieves(),
        2,
        "one fetch per id: every later read was a hit, and each was verified again"
    );
    // Repaired behind the cache: once the entry is refetched the value decrypts.
    other.put(&id, b"hunter3", Tags::new()).await.unwrap();
    assert_eq!(
        store.refresh(&id, None).await.unwrap(),
        backend.memory.revision(&id).await.unwrap()
    );
    let (secret, metadata, _) = store.get_with_revision(&id).await.unwrap();
    assert_eq!(secret.expose_secret(), b"hunter3");
    assert_eq!(metadata.version, 2);
}

#[tokio::test(start_paused = true)]
async fn cached_reads_return_what_uncached_reads_return() {
    let backend = Counting::new();
    let (store, other, _) = stores(&backend, config());
    for (i, len) in [0usize, 1, 16, 17, 1024, 10_000].into_iter().enumerate() {
        let id = support::id(&format!("value_{i}"));
        let value: Vec<u8> = (0..len).map(|b| (b * 7 + i) as u8).collect();
        let mut tags = Tags::new();
        tags.insert("team".into(), "infra".into());
        other.put(&id, &value, tags).await.unwrap();
        for _ in 0..2 {
            let (cached, cached_meta, cached_rev) = store.get_with_revision(&id).await.unwrap();
            let (plain, plain_meta, plain_rev) = other.get_with_revision(&id).await.unwrap();
            assert_eq!(cached.expose_secret(), &value[..]);
            assert_eq!(plain.expose_secret(), &value[..]);
            assert_eq!((cached_meta, cached_rev), (plain_meta, plain_rev));
            assert_eq!(store.get(&id).await.unwrap().expose_secret(), &value[..]);
            assert_eq!(
                store.get_with_metadata(&id).await.unwrap().0.expose_secret(),
                &value[..]
            );
        }
    }
    assert_eq!(backend.retrieves(), 6, "one fetch per id, then hits");
}
