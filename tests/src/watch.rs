//! The watch scenario every backend runs against its emulator (and local against a
//! directory): another writer — a second provider instance of the same configuration —
//! rotates a credential a cached [`CredentialStore`] serves, and the store notices.
//!
//! 1. The reader reads `v1` and starts a [`watch`](CredentialStore::watch).
//! 2. The writer rotates to `v2`: the watch fires (within `poll_ms` plus jitter, bounded
//!    by a generous timeout: no latency assertion on a loaded machine), and the reader,
//!    still serving `v1` from its cache, gets `v2` after [`refresh`](CredentialStore::refresh)
//!    with the revision it was served.
//! 3. With the watch dropped (its poller stops), the writer rotates to `v3`: without a
//!    refresh the reader gets `v3` once `fresh_ms` has passed (stale-while-revalidate: one
//!    stale read may come first).
//! 4. The writer deletes it: a new watch reports [`Change::Deleted`].

use std::time::{Duration, Instant};

use nebula_credential::cache::{CacheConfig, Change};
use nebula_credential::{CredentialId, CredentialStore, EncryptionKey, Keyring, StorageConfig, Tags, open, open_store};
use nebula_credential_core::secrecy::ExposeSecret;

/// The cache of the reader: short ages and a short poll, so the scenario runs in seconds.
pub fn short_cache() -> CacheConfig {
    CacheConfig {
        fresh_ms: 300,
        max_stale_ms: 60_000,
        poll_ms: 200,
        ..CacheConfig::default()
    }
}

/// Bound of every wait: generous for a loaded 2-core machine and a slow emulator (not a
/// latency assertion; the watch's own figure is printed).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// What the scenario measured, for the test to print.
#[derive(Debug)]
pub struct Watched {
    /// From the writer's rotation acknowledged to the watch firing.
    pub fired_after: Duration,
    /// The poll period the reader used.
    pub poll: Duration,
}

/// Runs the scenario on `id` with two stores over `config` (a backend configuration
/// without `[cache]`): the reader through `open_store` with [`short_cache`], the writer
/// through a second, uncached `open()` of the same place (another process's provider).
pub async fn another_writer_rotates(config: StorageConfig, id: &CredentialId) -> Watched {
    let key = EncryptionKey::generate();
    let cache = short_cache();
    let poll = Duration::from_millis(cache.poll_ms);
    let reader = open_store(&config.clone().with_cache(cache), Keyring::new(key.clone()))
        .await
        .expect("open the cached reader");
    assert!(reader.is_cached());
    let writer = CredentialStore::new(open(&config).await.expect("open the writer"), Keyring::new(key));

    writer.put(id, b"v1", Tags::new()).await.expect("writer stores v1");
    let (value, _, seen) = reader.get_with_revision(id).await.expect("reader reads v1");
    assert_eq!(value.expose_secret(), b"v1");
    let mut watch = reader.watch(id).await.expect("watch");
    match watch.current() {
        Change::Present { revision, .. } => assert_eq!(revision, seen, "the watch starts at what was read"),
        other => panic!("the watch starts at {other:?}"),
    }

    // Rotation by the other writer: the watch fires, refresh(seen) fetches v2.
    writer.put(id, b"v2", Tags::new()).await.expect("writer rotates to v2");
    let rotated = Instant::now();
    let change = tokio::time::timeout(PATIENCE, watch.changed())
        .await
        .expect("the watch fired within the patience bound")
        .expect("the store is alive");
    let fired_after = rotated.elapsed();
    let Change::Present { revision: v2, .. } = change else {
        panic!("expected the new version, got {change:?}")
    };
    assert_ne!(v2, seen);
    let now = reader.refresh(id, Some(&seen)).await.expect("refresh");
    assert_eq!(now, v2, "refresh holds the rotated revision");
    let (value, _, revision) = reader.get_with_revision(id).await.expect("read after refresh");
    assert_eq!(value.expose_secret(), b"v2");
    assert_eq!(revision, v2);

    // A second rotation with no watch polling (its revalidations would refresh the entry)
    // and no refresh: the reader gets v3 once fresh_ms has passed.
    drop(watch);
    tokio::time::timeout(PATIENCE, async {
        while reader.watched() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the poller stops with its last watch");
    // A revalidation the poller had started before finishes before the rotation.
    tokio::time::sleep(poll * 2).await;
    writer.put(id, b"v3", Tags::new()).await.expect("writer rotates to v3");
    eventually_reads(&reader, id, b"v3").await;

    // Deleted by the other writer: a new watch says so.
    let mut watch = reader.watch(id).await.expect("watch again");
    assert!(
        matches!(watch.current(), Change::Present { .. }),
        "{:?}",
        watch.current()
    );
    writer.delete(id).await.expect("writer deletes");
    let deleted = tokio::time::timeout(PATIENCE, async {
        loop {
            match watch.changed().await.expect("the store is alive") {
                Change::Deleted => return,
                Change::Present { .. } => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    assert!(
        deleted.is_ok(),
        "the watch reported the delete within the patience bound"
    );
    Watched { fired_after, poll }
}

/// Reads `id` until it is `expected` (stale reads first are fine), bounded by [`PATIENCE`].
async fn eventually_reads(reader: &CredentialStore, id: &CredentialId, expected: &[u8]) {
    let started = Instant::now();
    loop {
        let value = reader.get(id).await.expect("read");
        if value.expose_secret() == expected {
            return;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "still not the new value after {PATIENCE:?} (fresh_ms is 300 ms)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
