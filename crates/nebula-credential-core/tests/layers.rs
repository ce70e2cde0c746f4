//! The layers over a mock: retry policy in action (paused clock), timeouts, metrics.

use std::sync::Arc;
use std::time::Duration;

use nebula_credential_core::layers::{Metered, Retry, Timeout};
use nebula_credential_core::{
    Capabilities, CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, ErrorKind, MemoryProvider,
    Operation, Precondition, RetryPolicy, Revision, StorageError, StorageMetrics, StorageProvider, Stored, Timeouts,
    async_trait, layers,
};

fn id(s: &str) -> CredentialId {
    s.parse().unwrap()
}

fn data() -> EncryptedData {
    EncryptedData {
        version: 1,
        key_id: "k".into(),
        nonce: [0; 12],
        ciphertext: vec![1, 2, 3],
    }
}

fn unavailable() -> StorageError {
    StorageError::unavailable("memory", Operation::Retrieve, None)
}

fn no_jitter(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        jitter: 0.0,
        ..RetryPolicy::default()
    }
}

async fn seeded() -> MemoryProvider {
    let mock = MemoryProvider::new();
    mock.store(&id("a"), &data(), &CredentialMetadata::new()).await.unwrap();
    mock
}

#[tokio::test(start_paused = true)]
async fn retries_unavailable_then_succeeds_with_exact_backoff() {
    let mock = seeded().await;
    mock.fail_next_with(unavailable());
    mock.fail_next_with(unavailable());
    let metrics = Arc::new(StorageMetrics::new());
    let retry = Retry::new(mock.clone(), no_jitter(5))
        .unwrap()
        .with_metrics(metrics.clone());
    let start = tokio::time::Instant::now();
    let d = retry
        .retrieve(&id("a"))
        .await
        .expect("succeeds on the third attempt")
        .data;
    assert_eq!(d, data());
    // 100 ms + 200 ms of (virtual) backoff, nothing more.
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    assert_eq!(metrics.snapshot().retrieve.retries, 2);
}

#[tokio::test(start_paused = true)]
async fn does_not_retry_permanent_errors() {
    for err in [
        StorageError::NotFound {
            provider: "memory",
            id: id("a"),
        },
        StorageError::permission_denied("memory", Operation::Retrieve, Some(&id("a")), "grant read"),
    ] {
        let mock = seeded().await;
        let kind = err.kind();
        mock.fail_next_with(err);
        let metrics = Arc::new(StorageMetrics::new());
        let retry = Retry::new(mock.clone(), no_jitter(5))
            .unwrap()
            .with_metrics(metrics.clone());
        let start = tokio::time::Instant::now();
        let got = retry.retrieve(&id("a")).await.unwrap_err();
        assert_eq!(got.kind(), kind);
        assert_eq!(start.elapsed(), Duration::ZERO, "{kind} must not be retried");
        assert_eq!(metrics.snapshot().total_retries(), 0);
        // The queue is empty again: the next call reaches the data.
        assert!(retry.retrieve(&id("a")).await.is_ok());
    }
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_retries_with_the_last_error() {
    let mock = seeded().await;
    for _ in 0..3 {
        mock.fail_next_with(unavailable());
    }
    mock.fail_next_with(StorageError::throttled("memory", Operation::Retrieve, None));
    let metrics = Arc::new(StorageMetrics::new());
    let retry = Retry::new(mock.clone(), no_jitter(3))
        .unwrap()
        .with_metrics(metrics.clone());
    let start = tokio::time::Instant::now();
    let err = retry.retrieve(&id("a")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled, "the last error is returned");
    let retried = err.retried().expect("marked as given up");
    assert_eq!(retried.attempts, 4);
    assert!(!err.is_retryable(), "callers must not retry it again");
    assert!(err.to_string().contains("gave up after 4 attempts"), "{err}");
    assert_eq!(start.elapsed(), Duration::from_millis(100 + 200 + 400));
    assert_eq!(metrics.snapshot().retrieve.retries, 3);
}

#[tokio::test(start_paused = true)]
async fn honours_retry_after() {
    let mock = seeded().await;
    mock.fail_next_with(
        StorageError::throttled("memory", Operation::Retrieve, None).with_retry_after(Some(Duration::from_secs(2))),
    );
    let retry = Retry::new(mock, no_jitter(1)).unwrap();
    let start = tokio::time::Instant::now();
    retry.retrieve(&id("a")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

/// A provider whose calls never finish.
#[derive(Debug)]
struct Hanging;

#[async_trait]
impl StorageProvider for Hanging {
    fn provider_name(&self) -> &'static str {
        "hanging"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new(1024)
    }
    async fn store_if(
        &self,
        _: &CredentialId,
        _: &EncryptedData,
        _: &CredentialMetadata,
        _: &Precondition,
    ) -> Result<Revision, StorageError> {
        std::future::pending().await
    }
    async fn retrieve(&self, _: &CredentialId) -> Result<Stored, StorageError> {
        std::future::pending().await
    }
    async fn delete(&self, _: &CredentialId) -> Result<(), StorageError> {
        std::future::pending().await
    }
    async fn list(&self, _: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
        std::future::pending().await
    }
    async fn exists(&self, _: &CredentialId) -> Result<bool, StorageError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn timeout_turns_a_hung_operation_into_timeout() {
    let t = Timeout::new(
        Hanging,
        Timeouts {
            read_ms: 250,
            write_ms: 900,
        },
    );
    let start = tokio::time::Instant::now();
    match t.retrieve(&id("slow")).await {
        Err(e @ StorageError::Timeout { .. }) => {
            assert!(e.is_retryable());
            let msg = e.to_string();
            assert!(
                msg.contains("retrieve of credential 'slow' on hanging timed out"),
                "{msg}"
            );
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    let start = tokio::time::Instant::now();
    assert!(matches!(
        t.store(&id("slow"), &data(), &CredentialMetadata::new()).await,
        Err(StorageError::Timeout {
            operation: Operation::Store,
            ..
        })
    ));
    assert_eq!(start.elapsed(), Duration::from_millis(900));
    assert!(matches!(
        t.list(&CredentialFilter::new()).await,
        Err(StorageError::Timeout { id: None, .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn each_retry_attempt_has_its_own_deadline() {
    let metrics = Arc::new(StorageMetrics::new());
    let stack = layers::standard(
        Hanging,
        no_jitter(2),
        Timeouts {
            read_ms: 1_000,
            write_ms: 1_000,
        },
        metrics.clone(),
    )
    .unwrap();
    let start = tokio::time::Instant::now();
    let err = stack.exists(&id("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    // 3 attempts of 1 s each, plus 100 ms and 200 ms of backoff.
    assert_eq!(start.elapsed(), Duration::from_millis(3_300));
    let s = metrics.snapshot();
    assert_eq!((s.exists.count, s.exists.errors, s.exists.retries), (1, 1, 2));
}

#[test]
fn invalid_retry_policies_are_refused_not_panicked_on() {
    for policy in [
        RetryPolicy {
            jitter: 2.0,
            ..RetryPolicy::default()
        },
        RetryPolicy {
            jitter: f64::NAN,
            ..RetryPolicy::default()
        },
        RetryPolicy {
            multiplier: 0.0,
            ..RetryPolicy::default()
        },
        RetryPolicy {
            max_retries: 11,
            ..RetryPolicy::default()
        },
    ] {
        let e = Retry::new(MemoryProvider::new(), policy).unwrap_err();
        assert!(e.field().starts_with("retry."), "{e}");
        assert!(layers::standard(MemoryProvider::new(), policy, Timeouts::default(), Arc::default()).is_err());
        // Even used directly, an out-of-range policy never panics.
        let _ = policy.calculate_delay(3);
    }
    let zero = Timeouts {
        read_ms: 0,
        write_ms: 1,
    };
    assert!(layers::standard(MemoryProvider::new(), RetryPolicy::default(), zero, Arc::default()).is_err());
}

#[tokio::test(start_paused = true)]
async fn the_timeout_layer_publishes_its_deadline_to_the_backend() {
    #[derive(Debug)]
    struct Reports;
    #[async_trait]
    impl StorageProvider for Reports {
        fn provider_name(&self) -> &'static str {
            "reports"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::new(1024)
        }
        async fn store_if(
            &self,
            _: &CredentialId,
            _: &EncryptedData,
            _: &CredentialMetadata,
            _: &Precondition,
        ) -> Result<Revision, StorageError> {
            unreachable!()
        }
        async fn retrieve(&self, _: &CredentialId) -> Result<Stored, StorageError> {
            unreachable!()
        }
        async fn delete(&self, _: &CredentialId) -> Result<(), StorageError> {
            unreachable!()
        }
        async fn list(&self, _: &CredentialFilter) -> Result<Vec<CredentialId>, StorageError> {
            unreachable!()
        }
        async fn exists(&self, _: &CredentialId) -> Result<bool, StorageError> {
            let left = layers::deadline().expect("a deadline is set") - tokio::time::Instant::now();
            Ok(left == Duration::from_millis(250))
        }
    }
    assert!(layers::deadline().is_none());
    let t = Timeout::new(
        Reports,
        Timeouts {
            read_ms: 250,
            write_ms: 900,
        },
    );
    assert!(t.exists(&id("x")).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_stay_exact_under_concurrency() {
    let metrics = Arc::new(StorageMetrics::new());
    let mock = seeded().await;
    let metered = Arc::new(Metered::new(mock, metrics.clone()));
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let m = metered.clone();
            tokio::spawn(async move {
                for i in 0..1_000 {
                    match i % 4 {
                        0 => m
                            .store(&id(&format!("t{t}_{i}")), &data(), &CredentialMetadata::new())
                            .await
                            .map(drop)
                            .unwrap(),
                        1 => drop(m.retrieve(&id("a")).await.unwrap()),
                        2 => assert!(m.retrieve(&id("missing")).await.is_err()),
                        _ => assert!(m.exists(&id("a")).await.unwrap()),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let s = metrics.snapshot();
    assert_eq!(s.store.count, 2_000);
    assert_eq!(s.retrieve.count, 4_000);
    assert_eq!((s.retrieve.not_found, s.retrieve.errors), (2_000, 0));
    assert_eq!(s.exists.count, 2_000);
    assert_eq!(s.total_operations(), 8_000);
    assert_eq!(s.error_rate(), 0.0);
    assert_eq!(metered.metrics().snapshot(), s);
}
