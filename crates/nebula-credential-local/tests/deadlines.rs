//! Writes waiting on a credential's lock are bound by the operation's deadline: a put
//! reported as failed never lands later, and a lock stuck on one id neither fills the
//! blocking pool nor delays any other id.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nebula_credential_core::conformance::{data, id, meta};
use nebula_credential_core::{
    CredentialId, RetryPolicy, StorageError, StorageMetrics, StorageProvider, Timeouts, layers,
};
use nebula_credential_local::{LocalStorageConfig, LocalStorageProvider};

const SHORT: Timeouts = Timeouts {
    read_ms: 2_000,
    write_ms: 300,
};

async fn open(dir: &Path) -> LocalStorageProvider {
    LocalStorageProvider::new(LocalStorageConfig::new(dir)).await.unwrap()
}

/// Holds the advisory lock of `id`'s file, as a writer in another process that hangs would.
fn hold_lock(p: &LocalStorageProvider, id: &CredentialId) -> File {
    let path = p.file_path(id);
    let name = path.file_name().unwrap().to_str().unwrap();
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(p.base_path().join(format!(".{name}.lock")))
        .unwrap();
    lock.lock().unwrap();
    lock
}

fn assert_timeout<T: std::fmt::Debug>(r: Result<T, StorageError>) {
    assert!(
        matches!(r, Err(StorageError::Timeout { .. })),
        "expected Timeout, got {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_timed_out_never_lands_later() {
    let tmp = tempfile::tempdir().unwrap();
    let local = open(tmp.path()).await;
    let timed = layers::Timeout::new(local.clone(), SHORT);
    let (put, kept) = (id("put_late"), id("delete_late"));
    local.store(&kept, &data(1), &meta()).await.unwrap();
    let locks = [hold_lock(&local, &put), hold_lock(&local, &kept)];
    let start = Instant::now();
    assert_timeout(timed.store(&put, &data(2), &meta()).await);
    assert_timeout(timed.delete(&kept).await);
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    drop(locks);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!local.exists(&put).await.unwrap(), "a put reported as timed out landed");
    assert_eq!(
        local.retrieve(&kept).await.unwrap().data,
        data(1),
        "a timed-out delete landed"
    );
    // With the lock free, both work.
    timed.store(&put, &data(2), &meta()).await.unwrap();
    timed.delete(&kept).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_timeout_layer_the_providers_own_write_timeout_bounds_the_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let local = LocalStorageProvider::new(LocalStorageConfig {
        timeouts: SHORT,
        ..LocalStorageConfig::new(tmp.path())
    })
    .await
    .unwrap();
    let k = id("bare");
    let lock = hold_lock(&local, &k);
    let start = Instant::now();
    assert_timeout(local.store(&k, &data(1), &meta()).await);
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    drop(lock);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!local.exists(&k).await.unwrap());
}

/// The scenario of the report: retried puts on a stuck id, then reads and writes of
/// other ids, on a runtime whose blocking pool has only two threads.
#[test]
fn a_stuck_lock_never_delays_another_id() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tmp = tempfile::tempdir().unwrap();
        let local = open(tmp.path()).await;
        let retry = RetryPolicy {
            max_retries: 2,
            ..RetryPolicy::default()
        };
        let stack = Arc::new(layers::standard(local.clone(), retry, SHORT, Arc::new(StorageMetrics::new())).unwrap());
        let (stuck, other) = (id("stuck"), id("other"));
        stack.store(&other, &data(1), &meta()).await.unwrap();
        let _lock = hold_lock(&local, &stuck);
        let puts: Vec<_> = (0..4)
            .map(|i| {
                let (stack, stuck) = (stack.clone(), stuck.clone());
                tokio::spawn(async move { stack.store(&stuck, &data(i), &meta()).await })
            })
            .collect();
        for put in puts {
            assert_timeout(put.await.unwrap());
        }
        for round in 0..5u8 {
            let start = Instant::now();
            assert_eq!(stack.retrieve(&other).await.unwrap().data, data(round + 1));
            stack.store(&other, &data(round + 2), &meta()).await.unwrap();
            assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
        }
    });
}
