//! `CredentialWatch` at its limits: a poll that hangs when the last watch goes, poll
//! periods and `Retry-After` waits too large to add to a clock, and errors whose source
//! carries a secret. Tokio's paused clock: no wall-clock thresholds.

#[path = "cache/support.rs"]
mod support;
#[path = "cache/watching.rs"]
mod watching;

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;

use nebula_credential_core::cache::{CacheConfig, Cached, WatchEvent, WatchHealth};
use nebula_credential_core::{
    CredentialStore, ErrorKind, Keyring, MemoryProvider, Operation, StorageError, StorageMetrics, StorageProvider, Tags,
};
use support::{Counting, Failure, id};
use watching::{ONE_POLL, key, next, reads, stores};

/// A backend that stops answering (a hung connection, no timeout layer): dropping the
/// last watch still stops its poller, which lets go of the provider at once instead of
/// waiting for an answer that may never come.
#[tokio::test(start_paused = true)]
async fn the_last_watch_dropped_while_a_poll_hangs_stops_the_poller() {
    let backend = Counting::new();
    let (store, other) = stores(&backend, false);
    let id = id("db_password");
    other.put(&id, b"v1", Tags::new()).await.unwrap();
    let unwatched = Arc::strong_count(store.provider());
    let watch = store.watch(&id).await.unwrap();
    assert_eq!(
        Arc::strong_count(store.provider()),
        unwatched + 1,
        "the poller holds the provider"
    );

    backend.delay_reads(Duration::from_secs(7 * 24 * 3600));
    let before = reads(&backend);
    tokio::time::sleep(ONE_POLL).await;
    assert_eq!(reads(&backend), before + 1, "a poll is in flight, and hangs");
    drop(watch);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(store.watched(), 0);
    assert_eq!(
        Arc::strong_count(store.provider()),
        unwatched,
        "the poller is gone although its poll never answered"
    );
}

/// The last watch dropped while the poller waits out a long `Retry-After`: it stops at
/// once, not when the wait ends.
#[tokio::test(start_paused = true)]
async fn the_last_watch_dropped_during_a_throttle_back_off_stops_the_poller() {
    let memory = MemoryProvider::new();
    let store =
        CredentialStore::new(Arc::new(memory.clone()), Keyring::new(key())).with_watch_poll(Duration::from_secs(1));
    let id = id("db_password");
    store.put(&id, b"v1", Tags::new()).await.unwrap();
    let unwatched = Arc::strong_count(store.provider());
    let mut watch = store.watch(&id).await.unwrap();
    memory.fail_next_with(
        StorageError::throttled("memory", Operation::Revision, Some(&id))
            .with_retry_after(Some(Duration::from_secs(3600))),
    );
    assert!(matches!(next(&mut watch).await, WatchEvent::Failing(_)));
    drop(watch);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!((store.watched(), Arc::strong_count(store.provider())), (0, unwatched));
}

/// A poll period too large for `period × 1.1` (`with_watch_poll` takes any duration,
/// e.g. `Duration::MAX` for "hardly ever"): every poller lives on (none panics on its
/// jitter, which would leave its watches silently deaf while `watched()` still counts
/// them).
#[tokio::test(start_paused = true)]
async fn a_huge_poll_period_keeps_every_poller_alive() {
    let memory = MemoryProvider::new();
    let store = CredentialStore::new(Arc::new(memory.clone()), Keyring::new(key())).with_watch_poll(Duration::MAX);
    let unwatched = Arc::strong_count(store.provider());
    let mut watches = Vec::new();
    // Each poller draws its jitter once: with 20 of them, one draws above 1.0 but for
    // a chance of 2^-20.
    for n in 0..20 {
        let id = id(&format!("token_{n}"));
        store.put(&id, b"v1", Tags::new()).await.unwrap();
        watches.push(store.watch(&id).await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(store.watched(), 20);
    assert_eq!(
        Arc::strong_count(store.provider()),
        unwatched + 20,
        "every poller still runs (each holds the provider)"
    );
    for watch in &mut watches {
        let waited = tokio::time::timeout(Duration::from_secs(1), watch.next_event()).await;
        assert!(waited.is_err(), "the watch waits for its next poll: {waited:?}");
        assert!(watch.health().is_healthy());
    }
}

/// A backend asking to wait (nearly) forever: the poller honours `Retry-After` only up
/// to one day, so the watch sees again once the throttling ends.
#[tokio::test(start_paused = true)]
async fn a_huge_retry_after_does_not_blind_a_watch_for_ever() {
    let memory = MemoryProvider::new();
    let store =
        CredentialStore::new(Arc::new(memory.clone()), Keyring::new(key())).with_watch_poll(Duration::from_secs(1));
    let id = id("db_password");
    store.put(&id, b"v1", Tags::new()).await.unwrap();
    let mut watch = store.watch(&id).await.unwrap();
    memory.fail_next_with(
        StorageError::throttled("memory", Operation::Revision, Some(&id)).with_retry_after(Some(Duration::MAX)),
    );
    let WatchEvent::Failing(throttled) = next(&mut watch).await else {
        panic!("expected Failing")
    };
    assert_eq!(throttled.kind, ErrorKind::Throttled);
    let day = Duration::from_secs(24 * 3600);
    let recovered = tokio::time::timeout(day + ONE_POLL, watch.next_event()).await;
    assert!(
        matches!(recovered, Ok(Ok(WatchEvent::Recovered(_)))),
        "polled again within a day: {recovered:?}"
    );
    assert_eq!(watch.health(), WatchHealth::Healthy);
}

/// An error whose source carries a secret (a URL with a token, a service's echo): the
/// watch reports the error's own message, never its source, in `PollFailure`'s fields,
/// `Display` and `Debug`.
#[tokio::test(start_paused = true)]
async fn a_poll_failure_never_carries_the_errors_source() {
    const SECRET: &str = "s3cr3t-T0KEN-in-a-url";
    let memory = MemoryProvider::new();
    let store =
        CredentialStore::new(Arc::new(memory.clone()), Keyring::new(key())).with_watch_poll(Duration::from_secs(1));
    let id = id("db_password");
    store.put(&id, b"v1", Tags::new()).await.unwrap();
    let mut watch = store.watch(&id).await.unwrap();
    let source = std::io::Error::other(format!("connect to https://admin:{SECRET}@vault.internal/v1 failed"));
    memory.fail_next_with(StorageError::unavailable("memory", Operation::Revision, Some(&id)).with_source(source));
    let WatchEvent::Failing(failure) = next(&mut watch).await else {
        panic!("expected Failing")
    };
    let shown = format!("{failure} {failure:?} {}", failure.message);
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("'db_password'"), "{shown}");
    assert_eq!(memory.provider_name(), "memory");
}

/// A provider that panics in a poll (a bug): the watch says so, as a failed poll of kind
/// `Backend`, and polling goes on, rather than the poller dying and leaving its watches
/// deaf while `health()` says healthy; once the provider answers again, so does the
/// watch (through a cache too: the panicked read must not stay in flight for ever).
async fn panicking_poll(cached: bool) {
    let backend = Counting::new();
    let store = if cached {
        let config = CacheConfig {
            poll_ms: 1_000,
            ..CacheConfig::default()
        };
        let cache = Cached::with_metrics(backend.clone(), config, Arc::new(StorageMetrics::new())).unwrap();
        CredentialStore::with_cache(cache, Keyring::new(key()))
    } else {
        CredentialStore::new(Arc::new(backend.clone()), Keyring::new(key())).with_watch_poll(Duration::from_secs(1))
    };
    let id = id("db_password");
    store.put(&id, b"v1", Tags::new()).await.unwrap();
    let mut watch = store.watch(&id).await.unwrap();
    backend.fail_reads(Some(Failure::Panic));
    let WatchEvent::Failing(failure) = next(&mut watch).await else {
        panic!("expected Failing")
    };
    assert_eq!(failure.kind, ErrorKind::Backend);
    assert!(failure.message.contains("panicked"), "{failure}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        watch.health().failure().is_some_and(|f| f.failures >= 5),
        "{:?}",
        watch.health()
    );

    backend.fail_reads(None);
    assert!(matches!(next(&mut watch).await, WatchEvent::Recovered(_)));
    store.put(&id, b"v2", Tags::new()).await.unwrap();
    assert!(matches!(next(&mut watch).await, WatchEvent::Changed(_)));
    assert_eq!(store.get(&id).await.unwrap().expose_secret(), b"v2");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_poll_is_reported_as_a_failure_and_polling_goes_on() {
    panicking_poll(false).await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_read_through_the_cache_is_reported_and_the_watch_recovers() {
    panicking_poll(true).await;
}
