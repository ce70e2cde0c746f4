//! What the watch-health tests share: stores whose watches poll every second (through
//! a cache or not) over the counting backend, and waits for the next event.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use nebula_credential_core::cache::{CacheConfig, Cached, CredentialWatch, WatchEvent};
use nebula_credential_core::{CredentialStore, EncryptionKey, Keyring, StorageMetrics};

use super::support::Counting;

/// Watches poll every second (±10 %).
pub const POLL: Duration = Duration::from_secs(1);
/// One poll period with its jitter, and a little more.
pub const ONE_POLL: Duration = Duration::from_millis(1_200);

pub fn key() -> EncryptionKey {
    EncryptionKey::from_bytes(&[9; 32]).unwrap()
}

/// A store whose watches poll every second, through a cache or straight on `backend`,
/// and another writer over the same records (its puts bypass both).
pub fn stores(backend: &Counting, cached: bool) -> (CredentialStore, CredentialStore) {
    let store = if cached {
        let config = CacheConfig {
            fresh_ms: 30_000,
            max_stale_ms: 300_000,
            poll_ms: POLL.as_millis() as u64,
            ..CacheConfig::default()
        };
        let cache = Cached::with_metrics(backend.clone(), config, Arc::new(StorageMetrics::new())).unwrap();
        CredentialStore::with_cache(cache, Keyring::new(key()))
    } else {
        CredentialStore::new(Arc::new(backend.clone()), Keyring::new(key())).with_watch_poll(POLL)
    };
    let other = CredentialStore::new(Arc::new(backend.memory.clone()), Keyring::new(key()));
    (store, other)
}

/// Backend reads so far (each poll makes one while the backend fails).
pub fn reads(backend: &Counting) -> u64 {
    backend.revisions() + backend.retrieves()
}

/// The next event, which must come within one poll period.
pub async fn next(watch: &mut CredentialWatch) -> WatchEvent {
    tokio::time::timeout(ONE_POLL, watch.next_event())
        .await
        .expect("an event within one poll period")
        .expect("the store is alive")
}

/// No event for `time`.
pub async fn quiet(watch: &mut CredentialWatch, time: Duration) {
    if let Ok(event) = tokio::time::timeout(time, watch.next_event()).await {
        panic!("no event expected, got {event:?}");
    }
}
