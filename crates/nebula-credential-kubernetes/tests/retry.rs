//! Exactly one retry owner: against a loopback HTTP server that answers every request
//! with a transient failure and counts them, the bare provider sends one request (kube's
//! own retry layer is off), the standard layer stack sends 1 + `max_retries`, and a kube
//! client with its default retry left on would have retried by itself. Also: the 1 MiB
//! object limit is checked before any request, and nothing secret is printed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use nebula_credential_core::{
    CredentialMetadata, EncryptedData, ErrorKind, ProviderConfig, RetryPolicy, StorageMetrics, StorageProvider,
    Timeouts, layers,
};
use nebula_credential_kubernetes::{KubernetesSecretsConfig, KubernetesSecretsProvider, MAX_OBJECT_BYTES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TOKEN: &str = "t0ken-never-printed-81c2";

/// A server answering every request with `status` and a Kubernetes `Status` body, and
/// the number of requests it got.
async fn failing_server(status: u16, reason: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let body = format!(
                    r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","code":{status},"reason":"{reason}","message":"try later","details":{{"retryAfterSeconds":1}}}}"#
                );
                let response = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, count)
}

fn kubeconfig(dir: &tempfile::TempDir, server: &str) -> std::path::PathBuf {
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n\
             users:\n- name: u\n  user:\n    token: {TOKEN}\n\
             contexts:\n- name: x\n  context: {{cluster: c, user: u, namespace: payments}}\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    path
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
        let (url, count) = failing_server(status, reason).await;
        let dir = tempfile::tempdir().unwrap();
        let c = config(kubeconfig(&dir, &url));
        let bare = KubernetesSecretsProvider::new(c.clone()).await.unwrap();
        assert_eq!(bare.namespace(), "payments", "the context's namespace");
        let err = bare.exists(&id()).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{status}: {err}");
        assert!(err.is_retryable());
        assert_eq!(count.load(Ordering::SeqCst), 1, "{status}: kube retried by itself");

        count.store(0, Ordering::SeqCst);
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
            count.load(Ordering::SeqCst),
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
    let (url, count) = failing_server(503, "ServiceUnavailable").await;
    let dir = tempfile::tempdir().unwrap();
    let c = config(kubeconfig(&dir, &url));
    let mut kube_config = KubernetesSecretsProvider::client_config(&c).await.unwrap();
    assert!(!kube_config.default_retry, "our configuration turns kube's retry off");
    kube_config.default_retry = true;
    let api: Api<Secret> = Api::namespaced(Client::try_from(kube_config).unwrap(), "payments");
    // kube backs off for minutes in all; two seconds show its first retry.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), api.get("x")).await;
    assert!(count.load(Ordering::SeqCst) > 1, "kube's default retry did not retry");
}

#[tokio::test]
async fn an_object_over_one_mebibyte_is_too_large_before_any_request() {
    let (url, count) = failing_server(503, "ServiceUnavailable").await;
    let dir = tempfile::tempdir().unwrap();
    let p = KubernetesSecretsProvider::new(config(kubeconfig(&dir, &url)))
        .await
        .unwrap();
    // The record alone stays under 1 MiB; with name, type, labels and annotations the
    // object does not.
    let data = EncryptedData {
        version: 1,
        key_id: "k".into(),
        nonce: [0; 12],
        ciphertext: vec![1; (MAX_OBJECT_BYTES - 600) / 4 * 3],
    };
    let meta = CredentialMetadata::new();
    let record = nebula_credential_core::StoredRecord::encode(&id(), &data, &meta, "x", usize::MAX).unwrap();
    assert!(record.len() < MAX_OBJECT_BYTES, "{}", record.len());
    match p.store(&id(), &data, &meta).await {
        Err(nebula_credential_core::StorageError::TooLarge { size, limit, .. }) => {
            assert_eq!(limit, MAX_OBJECT_BYTES);
            assert!(size > record.len() && size > limit, "{size}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(count.load(Ordering::SeqCst), 0, "refused before any request");
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
