//! Feature `metrics`: operations and cache events reach any `metrics` recorder, with the
//! contract's names and labels. Captured by a small recorder installed for this thread.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use nebula_credential_core::cache::{CacheConfig, Cached, WatchEvent};
use nebula_credential_core::{
    CredentialStore, EncryptionKey, Keyring, MemoryProvider, Operation, RetryPolicy, StorageError, StorageMetrics,
    Tags, Timeouts, layers,
};

#[derive(Default)]
struct Cell {
    count: AtomicU64,
    values: Mutex<Vec<f64>>,
}

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.count.fetch_add(value, Ordering::SeqCst);
    }

    fn absolute(&self, value: u64) {
        self.count.store(value, Ordering::SeqCst);
    }
}

impl HistogramFn for Cell {
    fn record(&self, value: f64) {
        self.values.lock().unwrap().push(value);
    }
}

/// Every metric by `name{label=value,…}` (labels sorted).
#[derive(Default)]
struct Capture {
    cells: Mutex<BTreeMap<String, Arc<Cell>>>,
}

impl Capture {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let mut labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        self.cells.lock().unwrap().entry(name).or_default().clone()
    }

    fn count(&self, name: &str) -> u64 {
        self.cells
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |c| c.count.load(Ordering::SeqCst))
    }

    fn samples(&self, name: &str) -> Vec<f64> {
        self.cells
            .lock()
            .unwrap()
            .get(name)
            .map_or_else(Vec::new, |c| c.values.lock().unwrap().clone())
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}

#[test]
fn operations_and_cache_events_reach_the_recorder_with_their_labels() {
    let capture = Capture::default();
    metrics::with_local_recorder(&capture, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(async {
                let metrics = Arc::new(StorageMetrics::new());
                let stack = layers::standard(
                    MemoryProvider::new(),
                    RetryPolicy::default(),
                    Timeouts::default(),
                    metrics.clone(),
                )
                .unwrap();
                let config = CacheConfig {
                    fresh_ms: 1_000,
                    ..CacheConfig::default()
                };
                let cached = Cached::with_metrics(stack, config, metrics.clone()).unwrap();
                let store = CredentialStore::with_cache(cached, Keyring::new(EncryptionKey::generate()));
                let id = "token".parse().unwrap();
                store.put(&id, b"v1", Tags::new()).await.unwrap();
                for _ in 0..3 {
                    store.get(&id).await.unwrap();
                }
                tokio::time::advance(Duration::from_secs(2)).await;
                store.get(&id).await.unwrap();
                for _ in 0..10 {
                    tokio::task::yield_now().await;
                }
                let missing = "missing".parse().unwrap();
                assert!(store.get(&missing).await.is_err());
                let snapshot = metrics.snapshot();
                assert_eq!(snapshot.cache.hits, 3);
                assert_eq!(snapshot.cache.stale_served, 1);
                assert_eq!(snapshot.cache.revalidations_unchanged, 1);
            });
    });
    let ops = |op: &str, outcome: &str| {
        capture.count(&format!(
            "nebula_credential_operations_total{{operation={op},outcome={outcome},provider=memory}}"
        ))
    };
    assert_eq!(ops("store", "ok"), 1);
    assert_eq!(
        ops("retrieve", "not_found"),
        2,
        "put's read of the absent id, then the missing get"
    );
    assert_eq!(ops("revision", "ok"), 1);
    let durations =
        capture.samples("nebula_credential_operation_duration_seconds{operation=store,outcome=ok,provider=memory}");
    assert_eq!(durations.len(), 1);
    assert!(durations[0] >= 0.0);
    let cache = |event: &str| {
        capture.count(&format!(
            "nebula_credential_cache_events_total{{event={event},provider=memory}}"
        ))
    };
    assert_eq!(cache("hit"), 3);
    assert_eq!(cache("stale_served"), 1);
    assert_eq!(cache("revalidation_unchanged"), 1);
    assert_eq!(cache("miss"), 2, "put's read and the missing get");
}

#[test]
fn failed_watch_polls_are_counted_by_kind() {
    let capture = Capture::default();
    metrics::with_local_recorder(&capture, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(async {
                let memory = MemoryProvider::new();
                let store = CredentialStore::new(Arc::new(memory.clone()), Keyring::new(EncryptionKey::generate()))
                    .with_watch_poll(Duration::from_secs(1));
                let id = "token".parse().unwrap();
                store.put(&id, b"v1", Tags::new()).await.unwrap();
                let mut watch = store.watch(&id).await.unwrap();
                for _ in 0..2 {
                    memory.fail_next_with(StorageError::unavailable("memory", Operation::Revision, Some(&id)));
                }
                memory.fail_next_with(StorageError::throttled("memory", Operation::Revision, Some(&id)));
                // Unavailable and Throttled are one class (an outage): one Failing event,
                // then Recovered; each failed poll is still counted under its own kind.
                let mut events = Vec::new();
                while events.len() < 2 {
                    let event = tokio::time::timeout(Duration::from_secs(5), watch.next_event()).await;
                    events.push(event.unwrap().unwrap());
                }
                assert!(
                    matches!(&events[..], [WatchEvent::Failing(_), WatchEvent::Recovered(_)]),
                    "{events:#?}"
                );
            });
    });
    let failures = |kind: &str| {
        capture.count(&format!(
            "nebula_credential_watch_poll_failures_total{{kind={kind},provider=memory}}"
        ))
    };
    assert_eq!((failures("unavailable"), failures("throttled")), (2, 1));
}
