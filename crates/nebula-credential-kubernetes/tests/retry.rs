//! Exactly one retry owner: against a loopback HTTP server that answers every request
//! with a transient failure and counts them, the bare provider sends one request (kube's
//! own retry layer is off), the standard layer stack sends 1 + `max_retries`, and a kube
//! client with its default retry left on would have retried by itself. Also: the 1 MiB
//! object limit is checked before any request and reported as one measure, and nothing
//! secret is printed.

mod support;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use nebula_credential_core::{
    CredentialMetadata, EncryptedData, ErrorKind, ProviderConfig, RecordEnvelope, RetryPolicy, StorageError,
    StorageMetrics, StorageProvider, Timeouts, layers,
};
use nebula_credential_kubernetes::{KubernetesSecretsConfig, KubernetesSecretsProvider, MAX_OBJECT_BYTES};
use support::{Requests, TOKEN, kubeconfig, serve, status_body};

/// A server answering every request with `status` and a Kubernetes `Status` body, and
/// the log of the requests it got.
async fn failing_server(status: u16, reason: &'static str) -> (String, Requests) {
    serve(Arc::new(move |_: &str, _| (status, status_body(status, reason)))).await
}

fn count(requests: &Requests) -> usize {
    requests.lock().unwrap().len()
}

fn config(path: std::path::PathBuf) -> KubernetesSecretsConfig {
    KubernetesSecretsConfig {
        kubeconfig_path: Some(path),
        ..KubernetesSecretsConfig::default()
    }
}

fn id() -> nebula_credential_core::CredentialId {
    "api_key".parse().unwrap()
}

#[tokio::test]
async fn the_bare_provider_sends_one_request_and_the_retry_layer_decides() {
    for (status, reason, kind) in [
        (503, "ServiceUnavailable", ErrorKind::Unavailable),
        (504, "Timeout", ErrorKind::Unavailable),
        (429, "TooManyRequests", ErrorKind::Throttled),
    ] {
        let (url, requests) = failing_server(status, reason).await;
        let dir = tempfile::tempdir().unwrap();
        let c = config(kubeconfig(&dir, &url));
        let bare = KubernetesSecretsProvider::new(c.clone()).await.unwrap();
        assert_eq!(bare.namespace(), "payments", "the context's namespace");
        let err = bare.exists(&id()).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{status}: {err}");
        assert!(err.is_retryable());
        assert_eq!(count(&requests), 1, "{status}: kube retried by itself");

        requests.lock().unwrap().clear();
        let policy = RetryPolicy {
            max_retries: 2,
            base_delay_ms: 1,
            max_delay_ms: 5,
            ..RetryPolicy::default()
        };
        let metrics = Arc::new(StorageMetrics::new());
        let stack = layers::standard(bare, policy, Timeouts::default(), metrics.clone()).unwrap();
        let err = stack.exists(&id()).await.unwrap_err();
        assert_eq!(
            count(&requests),
            3,
            "{status}: one first attempt and two retries, no more"
        );
        assert_eq!(err.retried().map(|r| r.attempts), Some(3));
        assert_eq!(metrics.snapshot().exists.retries, 2);
        if kind == ErrorKind::Throttled {
            assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(1)));
        }
    }
}

/// The control: the same kube `Config` with kube's default retry left on retries a 503
/// by itself, so turning it off is what keeps the count above at one.
#[tokio::test]
async fn kube_alone_would_retry_a_503() {
    let (url, requests) = failing_server(503, "ServiceUnavailable").await;
    let dir = tempfile::tempdir().unwrap();
    let c = config(kubeconfig(&dir, &url));
    let mut kube_config = KubernetesSecretsProvider::client_config(&c).await.unwrap();
    assert!(!kube_config.default_retry, "our configuration turns kube's retry off");
    kube_config.default_retry = true;
    let api: Api<Secret> = Api::namespaced(Client::try_from(kube_config).unwrap(), "payments");
    // kube backs off for minutes in all; two seconds show its first retry.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), api.get("x")).await;
    assert!(count(&requests) > 1, "kube's default retry did not retry");
}

/// The 1 MiB limit applies to the whole object, checked before any request, and
/// `TooLarge` reports that one measure whatever the size: a record just under the limit
/// whose object is over it, and a record far over the limit, report sizes with the same
/// overhead (name, type, labels, annotations) on top of the record.
#[tokio::test]
async fn too_large_reports_the_whole_object_before_any_request() {
    let (url, requests) = failing_server(503, "ServiceUnavailable").await;
    let dir = tempfile::tempdir().unwrap();
    let p = KubernetesSecretsProvider::new(config(kubeconfig(&dir, &url)))
        .await
        .unwrap();
    let meta = CredentialMetadata::new();
    let (mut records, mut overheads) = (Vec::new(), Vec::new());
    for ciphertext_len in [(MAX_OBJECT_BYTES - 600) / 4 * 3, 2 * MAX_OBJECT_BYTES] {
        let data = EncryptedData {
            version: 1,
            key_id: "k".into(),
            nonce: [0; 12],
            ciphertext: vec![1; ciphertext_len],
        };
        let record = RecordEnvelope::encode(&id(), &data, &meta, "x", usize::MAX).unwrap();
        match p.store(&id(), &data, &meta).await {
            Err(StorageError::TooLarge { size, limit, .. }) => {
                assert_eq!(limit, MAX_OBJECT_BYTES);
                assert!(size > limit, "{size}");
                records.push(record.len());
                overheads.push(size - record.len());
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }
    assert!(
        records[0] < MAX_OBJECT_BYTES && records[1] > MAX_OBJECT_BYTES,
        "{records:?}"
    );
    assert!(overheads[0] > 0, "the object's metadata counts");
    assert_eq!(overheads[0], overheads[1], "one measure for both sizes: {overheads:?}");
    assert_eq!(count(&requests), 0, "refused before any request");
}

#[tokio::test]
async fn debug_output_holds_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(kubeconfig(&dir, "http://127.0.0.1:9"));
    let p = KubernetesSecretsProvider::new(c.clone()).await.unwrap();
    for shown in [format!("{p:?}"), format!("{c:?}")] {
        assert!(!shown.contains(TOKEN), "{shown}");
    }
    assert_eq!(c.provider_name(), "kubernetes");
}
