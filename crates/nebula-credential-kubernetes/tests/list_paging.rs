//! An expired `continue` token (410 `Expired`, which etcd compaction causes after a few
//! minutes of paging) against a crafted API server: `list` starts again from the first
//! page once and returns the whole list; a second expiry in a row is a retryable error.
//! The real kube-apiserver cannot be made to expire a token on demand.

mod support;

use std::sync::Arc;

use nebula_credential_core::{CredentialFilter, CredentialId, ErrorKind, StorageProvider};
use nebula_credential_kubernetes::{KubernetesSecretsConfig, KubernetesSecretsProvider};
use support::{Requests, kubeconfig, serve, status_body};

/// One metadata item of ours for the credential `id` (a lowercase id keeps its name).
fn item(id: &str) -> String {
    format!(
        r#"{{"metadata":{{"name":"nebula-cred-{id}","labels":{{"app.kubernetes.io/managed-by":"nebula-credential"}},"annotations":{{"nebula-credential.io/id":"{id}"}}}}}}"#
    )
}

fn page(ids: &[&str], continue_token: Option<&str>) -> String {
    let items: Vec<String> = ids.iter().map(|id| item(id)).collect();
    let meta = continue_token.map_or_else(String::new, |t| format!(r#""continue":"{t}""#));
    format!(
        r#"{{"apiVersion":"meta.k8s.io/v1","kind":"PartialObjectMetadataList","metadata":{{{meta}}},"items":[{}]}}"#,
        items.join(",")
    )
}

async fn provider(url: &str) -> (KubernetesSecretsProvider, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let p = KubernetesSecretsProvider::new(KubernetesSecretsConfig {
        kubeconfig_path: Some(kubeconfig(&dir, url)),
        list_page_size: 2,
        ..KubernetesSecretsConfig::default()
    })
    .await
    .unwrap();
    (p, dir)
}

fn continued(requests: &Requests) -> Vec<bool> {
    requests
        .lock()
        .unwrap()
        .iter()
        .map(|l| l.contains("continue="))
        .collect()
}

#[tokio::test]
async fn an_expired_continue_token_restarts_the_list_once() {
    // First page with a token; its continuation has expired; the second first page is whole.
    let (url, requests) = serve(Arc::new(|line: &str, n| {
        if line.contains("continue=") {
            (410, status_body(410, "Expired"))
        } else if n == 0 {
            (200, page(&["a", "b"], Some("t1")))
        } else {
            (200, page(&["a", "b", "c"], None))
        }
    }))
    .await;
    let (p, _dir) = provider(&url).await;
    let ids = p.list(&CredentialFilter::new()).await.expect("list recovers");
    let expected: Vec<CredentialId> = ["a", "b", "c"].iter().map(|i| i.parse().unwrap()).collect();
    assert_eq!(ids, expected);
    assert_eq!(continued(&requests), [false, true, false]);
}

#[tokio::test]
async fn a_second_expiry_in_a_row_is_retryable() {
    let (url, requests) = serve(Arc::new(|line: &str, _| {
        if line.contains("continue=") {
            (410, status_body(410, "Expired"))
        } else {
            (200, page(&["a", "b"], Some("t1")))
        }
    }))
    .await;
    let (p, _dir) = provider(&url).await;
    let err = p.list(&CredentialFilter::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert_eq!(
        continued(&requests),
        [false, true, false, true],
        "restarted once, no more"
    );
}
