//! TLS verification is on: an HTTPS endpoint whose certificate no trusted root signed is
//! refused, never used, and not retried. Runs with every test of this crate: a local TLS
//! server presents a self-signed certificate (a throwaway test fixture).

use std::sync::Arc;

use nebula_credential_aws::{AwsSecretsManagerConfig, AwsSecretsManagerProvider};
use nebula_credential_core::{ErrorKind, StorageProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const CERT: &[u8] = include_bytes!("fixtures/untrusted-test-cert.pem");
const KEY: &[u8] = include_bytes!("fixtures/untrusted-test-key.pem");

/// Serves TLS with the self-signed certificate on a loopback port; returns the port.
async fn untrusted_tls_server() -> u16 {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(CERT).unwrap()],
            PrivateKeyDer::from_pem_slice(KEY).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move { drop(acceptor.accept(sock).await) });
        }
    });
    port
}

#[tokio::test]
async fn an_endpoint_with_an_untrusted_certificate_is_refused() {
    let port = untrusted_tls_server().await;
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::SharedCredentialsProvider::new(
            aws_sdk_secretsmanager::config::Credentials::new("a", "b", None, None, "test"),
        ))
        .build();
    let config = AwsSecretsManagerConfig {
        region: Some("us-east-1".into()),
        endpoint: Some(format!("https://localhost:{port}")),
        ..AwsSecretsManagerConfig::default()
    };
    let p = AwsSecretsManagerProvider::from_sdk_config(&sdk, config).unwrap();
    let err = p
        .retrieve(&"anything".parse().unwrap())
        .await
        .expect_err("an untrusted certificate must be refused");
    assert_eq!(err.kind(), ErrorKind::Backend, "{err:?}");
    assert!(!err.is_retryable(), "a certificate does not fix itself: no retries");
    assert!(err.to_string().contains("certificate is not trusted"), "{err}");
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
}
