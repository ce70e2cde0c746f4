//! The AWS Secrets Manager provider against moto, through `open()`'s full layer stack:
//! the conformance suite, then what only AWS shows (tags, KMS, pagination, recovery
//! windows, foreign secrets, parallel load).
#![cfg(feature = "aws")]

use std::collections::BTreeMap;
use std::sync::Arc;

use nebula_credential::{
    AwsSecretsManagerConfig, CredentialFilter, CredentialId, CredentialMetadata, Deletion, EncryptedData,
    StorageConfig, StorageError, StorageProvider, open,
};
use nebula_credential_tests::{aws_client, emulator_var, unique};

fn config(prefix: &str) -> AwsSecretsManagerConfig {
    AwsSecretsManagerConfig {
        region: Some("us-east-1".into()),
        endpoint_url: Some(emulator_var("NEBULA_TEST_AWS_ENDPOINT", "aws")),
        secret_prefix: format!("nebula-test/{prefix}/"),
        deletion: Deletion::Force,
        ..AwsSecretsManagerConfig::default()
    }
}

async fn provider(c: AwsSecretsManagerConfig) -> Arc<dyn StorageProvider> {
    open(&StorageConfig::Aws(c)).await.expect("open aws")
}

nebula_credential_core::conformance_tests!(aws_via_open, |namespace: String| async move {
    provider(config(&namespace)).await
});

fn id(s: &str) -> CredentialId {
    s.parse().unwrap()
}

fn data(fill: u8) -> EncryptedData {
    EncryptedData {
        version: 1,
        key_id: "k".into(),
        nonce: [fill; 12],
        ciphertext: vec![fill; 64],
    }
}

fn tagged(pairs: &[(&str, &str)]) -> CredentialMetadata {
    CredentialMetadata::new().with_tags(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

async fn aws_tags(name: &str) -> BTreeMap<String, String> {
    let d = aws_client()
        .describe_secret()
        .secret_id(name)
        .send()
        .await
        .expect("describe");
    d.tags()
        .iter()
        .map(|t| (t.key().unwrap().to_string(), t.value().unwrap_or_default().to_string()))
        .collect()
}

async fn cleanup(p: &dyn StorageProvider) {
    for id in p.list(&CredentialFilter::new()).await.expect("list") {
        p.delete(&id).await.expect("delete");
    }
}

#[tokio::test]
async fn tags_are_visible_with_describe_secret_and_synced_on_overwrite() {
    let ns = unique("tags");
    let mut c = config(&ns);
    c.default_tags = BTreeMap::from([("org:team".to_string(), "payments".to_string())]);
    let p = provider(c).await;
    let k = id("tagged");
    let name = format!("nebula-test/{ns}/tagged");
    p.store(&k, data(1), tagged(&[("env", "prod"), ("tier", "1"), ("city", "🚀")]))
        .await
        .unwrap();
    let tags = aws_tags(&name).await;
    assert_eq!(tags["env"], "prod");
    assert_eq!(tags["tier"], "1");
    assert!(
        tags["city"].starts_with("sha256:"),
        "values AWS cannot hold are digests"
    );
    assert_eq!(tags["org:team"], "payments");
    assert_eq!(tags["nebula-credential:managed"], "true");
    assert!(tags.contains_key("nebula-credential:created-at"));

    p.store(&k, data(2), tagged(&[("env", "staging")])).await.unwrap();
    let tags = aws_tags(&name).await;
    assert_eq!(tags["env"], "staging");
    assert!(
        !tags.contains_key("tier") && !tags.contains_key("city"),
        "removed tags are untagged: {tags:?}"
    );
    assert_eq!(tags["org:team"], "payments");
    assert_eq!(
        p.list(&CredentialFilter::new().tag("env", "staging")).await.unwrap(),
        vec![k.clone()]
    );
    assert!(
        p.list(&CredentialFilter::new().tag("env", "prod"))
            .await
            .unwrap()
            .is_empty()
    );
    cleanup(p.as_ref()).await;
}

#[tokio::test]
async fn the_kms_key_id_is_applied() {
    let ns = unique("kms");
    let p = provider(AwsSecretsManagerConfig {
        kms_key_id: Some("alias/nebula-test".into()),
        ..config(&ns)
    })
    .await;
    p.store(&id("sealed"), data(1), tagged(&[])).await.unwrap();
    let d = aws_client()
        .describe_secret()
        .secret_id(format!("nebula-test/{ns}/sealed"))
        .send()
        .await
        .unwrap();
    assert_eq!(d.kms_key_id(), Some("alias/nebula-test"));
    cleanup(p.as_ref()).await;
}

#[tokio::test]
async fn list_pages_through_120_credentials() {
    let ns = unique("pages");
    let p = provider(AwsSecretsManagerConfig {
        list_page_size: 7,
        ..config(&ns)
    })
    .await;
    let tasks: Vec<_> = (0..120)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move {
                let group = if i % 10 == 0 { "tenth" } else { "rest" };
                p.store(&id(&format!("item_{i:03}")), data(i as u8), tagged(&[("group", group)]))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let all = p.list(&CredentialFilter::new()).await.unwrap();
    let expected: Vec<CredentialId> = (0..120).map(|i| id(&format!("item_{i:03}"))).collect();
    assert_eq!(all, expected, "17+ pages of 7, sorted, nothing lost or doubled");
    assert_eq!(
        p.list(&CredentialFilter::new().tag("group", "tenth"))
            .await
            .unwrap()
            .len(),
        12
    );
    assert_eq!(
        p.list(&CredentialFilter::new().id_prefix("item_11"))
            .await
            .unwrap()
            .len(),
        10
    );
    cleanup(p.as_ref()).await;
}

#[tokio::test]
async fn store_after_a_recovery_window_delete_restores_the_secret() {
    let ns = unique("window");
    let p = provider(AwsSecretsManagerConfig {
        deletion: Deletion::RecoveryWindow { days: 7 },
        ..config(&ns)
    })
    .await;
    let k = id("phoenix");
    let name = format!("nebula-test/{ns}/phoenix");
    p.store(&k, data(1), tagged(&[("gen", "1")])).await.unwrap();
    p.delete(&k).await.unwrap();
    let d = aws_client().describe_secret().secret_id(&name).send().await.unwrap();
    assert!(d.deleted_date().is_some(), "scheduled, not gone");
    assert!(matches!(p.retrieve(&k).await, Err(StorageError::NotFound { .. })));
    assert!(!p.exists(&k).await.unwrap());
    assert!(p.list(&CredentialFilter::new()).await.unwrap().is_empty());
    p.delete(&k).await.expect("deleting again is fine");

    p.store(&k, data(2), tagged(&[("gen", "2")]))
        .await
        .expect("store restores, then puts");
    let (got, meta) = p.retrieve(&k).await.unwrap();
    assert_eq!((got, meta.tags["gen"].as_str()), (data(2), "2"));
    assert!(
        aws_client()
            .describe_secret()
            .secret_id(&name)
            .send()
            .await
            .unwrap()
            .deleted_date()
            .is_none()
    );
    aws_client()
        .delete_secret()
        .secret_id(&name)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn foreign_secrets_in_the_same_account_are_never_listed_or_overwritten() {
    let ns = unique("foreign");
    let prefix = format!("nebula-test/{ns}/");
    let raw = aws_client();
    raw.create_secret()
        .name(format!("{prefix}foreign"))
        .secret_string("not ours")
        .send()
        .await
        .unwrap();
    raw.create_secret()
        .name(format!("{prefix}deep/path"))
        .secret_string("not ours")
        .send()
        .await
        .unwrap();
    raw.create_secret()
        .name(format!("nebula-test/{ns}-other/x"))
        .secret_string("x")
        .send()
        .await
        .unwrap();
    let p = provider(config(&ns)).await;
    p.store(&id("mine"), data(1), tagged(&[])).await.unwrap();
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap(), vec![id("mine")]);
    assert!(!p.exists(&id("foreign")).await.unwrap());
    let err = p.store(&id("foreign"), data(1), tagged(&[])).await.unwrap_err();
    assert_eq!(err.kind(), "conflict", "{err}");
    let untouched = raw
        .get_secret_value()
        .secret_id(format!("{prefix}foreign"))
        .send()
        .await
        .unwrap();
    assert_eq!(untouched.secret_string(), Some("not ours"));
    cleanup(p.as_ref()).await;
    for name in [
        format!("{prefix}foreign"),
        format!("{prefix}deep/path"),
        format!("nebula-test/{ns}-other/x"),
    ] {
        raw.delete_secret()
            .secret_id(name)
            .force_delete_without_recovery(true)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_operations() {
    let ns = unique("parallel");
    let p = provider(config(&ns)).await;
    for i in 0..10 {
        p.store(&id(&format!("seed_{i}")), data(i), tagged(&[])).await.unwrap();
    }
    let tasks: Vec<_> = (0..50u8)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move {
                match i % 5 {
                    0 => p.store(&id(&format!("new_{i}")), data(i), tagged(&[])).await,
                    1 => p.retrieve(&id(&format!("seed_{}", i % 10))).await.map(drop),
                    2 => p.exists(&id(&format!("seed_{}", i % 10))).await.map(|e| assert!(e)),
                    3 => p.list(&CredentialFilter::new()).await.map(drop),
                    _ => p.store(&id(&format!("seed_{}", i % 10)), data(i), tagged(&[])).await,
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("every parallel operation succeeds");
    }
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap().len(), 20);
    cleanup(p.as_ref()).await;
}

/// TLS verification is on: an HTTPS endpoint whose certificate no trusted root signed
/// (here the test kube-apiserver's, from a private CA) is refused, never used.
#[cfg(feature = "kubernetes")]
#[tokio::test]
async fn an_endpoint_with_an_untrusted_certificate_is_refused() {
    let kubeconfig = std::fs::read_to_string(emulator_var("NEBULA_TEST_KUBECONFIG", "kubernetes")).unwrap();
    let server = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("server line")
        .to_string();
    assert!(server.starts_with("https://127.0.0.1:"), "{server}");
    let p = provider(AwsSecretsManagerConfig {
        endpoint_url: Some(server),
        ..config(&unique("tls"))
    })
    .await;
    let err = p
        .retrieve(&id("anything"))
        .await
        .expect_err("an untrusted certificate must be refused");
    assert_eq!(err.kind(), "backend", "{err:?}");
    assert!(!err.is_retryable(), "a certificate does not fix itself: no retries");
    assert!(err.to_string().contains("certificate is not trusted"), "{err}");
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
}
