//! The AWS provider without a server: the SDK's own mock interceptor answers, so error
//! codes moto cannot produce (AccessDenied, Throttling, 503, KMS failures) are mapped,
//! limits are enforced before any request, and transient failures are retried by the
//! layer stack.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use nebula_credential_aws::{AwsSecretsManagerConfig, AwsSecretsManagerProvider, MAX_SECRET_BYTES};
use nebula_credential_core::{
    CredentialId, CredentialMetadata, CryptoError, EncryptedData, RetryPolicy, StorageError, StorageMetrics,
    StorageProvider, StoredRecord, Timeouts, layers,
};

fn id() -> CredentialId {
    "api_key".parse().unwrap()
}

fn config() -> AwsSecretsManagerConfig {
    AwsSecretsManagerConfig {
        region: Some("us-east-1".into()),
        ..AwsSecretsManagerConfig::default()
    }
}

fn provider_over(client: Client) -> AwsSecretsManagerProvider {
    AwsSecretsManagerProvider::from_client(client, config()).expect("provider")
}

fn test_credentials() -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new("a", "b", None, None, "test"))
}

/// A provider built the way `new` builds one, pointed at 127.0.0.1:`port`.
fn provider_at(port: u16, credentials: SharedCredentialsProvider) -> AwsSecretsManagerProvider {
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
        .build();
    let config = AwsSecretsManagerConfig {
        endpoint_url: Some(format!("http://127.0.0.1:{port}")),
        ..config()
    };
    AwsSecretsManagerProvider::from_sdk_config(&sdk, config).expect("provider")
}

/// An awsJson error response, as AWS sends it.
fn error_response(status: u16, code: &'static str) -> impl Fn() -> HttpResponse + Send + Sync + 'static {
    move || {
        HttpResponse::new(
            StatusCode::try_from(status).unwrap(),
            SdkBody::from(format!("{{\"__type\":\"{code}\",\"message\":\"mocked\"}}")),
        )
    }
}

fn record_json(ciphertext_len: usize, key_id_len: usize) -> String {
    let data = EncryptedData {
        version: 1,
        key_id: "k".repeat(key_id_len),
        nonce: [0; 12],
        ciphertext: vec![1; ciphertext_len],
    };
    let json = StoredRecord::new(id(), data, CredentialMetadata::new())
        .to_json("aws", usize::MAX)
        .unwrap();
    String::from_utf8(json).unwrap()
}

#[tokio::test]
async fn errors_map_by_code() {
    let cases: Vec<(u16, &'static str, &str, bool)> = vec![
        (400, "AccessDeniedException", "permission_denied", false),
        (400, "ThrottlingException", "throttled", true),
        (503, "ServiceUnavailable", "unavailable", true),
        (500, "InternalServiceError", "unavailable", true),
        (400, "UnrecognizedClientException", "authentication_failed", false),
        (400, "DecryptionFailure", "crypto", false),
        (400, "InvalidParameterException", "backend", false),
        (404, "ResourceNotFoundException", "not_found", false),
    ];
    for (status, code, kind, retryable) in cases {
        let rule = mock!(Client::get_secret_value).then_http_response(error_response(status, code));
        let p = provider_over(mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, &[&rule]));
        let err = p.retrieve(&id()).await.expect_err(code);
        assert_eq!((err.kind(), err.is_retryable()), (kind, retryable), "{code}: {err}");
        assert!(
            !err.to_string().contains("mocked"),
            "messages from AWS are not echoed as ours: {err}"
        );
    }
}

#[tokio::test]
async fn permission_and_kms_errors_name_what_to_grant() {
    let rule = mock!(Client::get_secret_value).then_http_response(error_response(400, "AccessDeniedException"));
    let p = provider_over(mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, &[&rule]));
    let msg = p.retrieve(&id()).await.unwrap_err().to_string();
    assert!(
        msg.contains("secretsmanager:GetSecretValue") && msg.contains("api_key"),
        "{msg}"
    );

    let rule = mock!(Client::get_secret_value).then_http_response(error_response(400, "DecryptionFailure"));
    let p = provider_over(mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, &[&rule]));
    match p.retrieve(&id()).await {
        Err(StorageError::Crypto(e @ CryptoError::KeyService { .. })) => {
            assert!(e.to_string().contains("kms:Decrypt"), "{e}")
        }
        other => panic!("{other:?}"),
    }

    let rule = mock!(Client::list_secrets).then_http_response(error_response(400, "AccessDeniedException"));
    let p = provider_over(mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, &[&rule]));
    let msg = p.list(&Default::default()).await.unwrap_err().to_string();
    assert!(msg.contains("secretsmanager:ListSecrets"), "{msg}");
}

#[tokio::test]
async fn the_65536_byte_boundary_is_enforced_before_any_request() {
    // Find a record whose JSON is exactly 65,536 bytes: the ciphertext (base64: 4 chars
    // per 3 bytes) fills all but the last few bytes, the key id pads to the last byte.
    let overhead = record_json(0, 1).len();
    let ct = (MAX_SECRET_BYTES - overhead) / 4 * 3;
    let pad = MAX_SECRET_BYTES - record_json(ct, 1).len() + 1;
    assert_eq!(record_json(ct, pad).len(), MAX_SECRET_BYTES);

    let data = |key_id_len: usize| EncryptedData {
        version: 1,
        key_id: "k".repeat(key_id_len),
        nonce: [0; 12],
        ciphertext: vec![1; ct],
    };
    // Exactly at the limit: the request goes out (describe → not found → create).
    let describe = mock!(Client::describe_secret).then_http_response(error_response(400, "ResourceNotFoundException"));
    let create = mock!(Client::create_secret)
        .match_requests(|r| r.secret_string().map(str::len) == Some(MAX_SECRET_BYTES))
        .then_output(|| aws_sdk_secretsmanager::operation::create_secret::CreateSecretOutput::builder().build());
    let p = provider_over(mock_client!(
        aws_sdk_secretsmanager,
        RuleMode::MatchAny,
        &[&describe, &create]
    ));
    let mut meta = CredentialMetadata::new();
    meta.created_at = StoredRecord::from_json(record_json(ct, pad).as_bytes(), "aws", "x", None)
        .unwrap()
        .metadata
        .created_at;
    meta.updated_at = meta.created_at;
    p.store(&id(), data(pad), meta.clone())
        .await
        .expect("exactly 65,536 bytes is accepted");
    assert_eq!(create.num_calls(), 1);

    // One byte over: refused with both numbers, and no request at all.
    let nothing = mock!(Client::describe_secret).then_http_response(error_response(500, "InternalServiceError"));
    let p = provider_over(mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, &[&nothing]));
    match p.store(&id(), data(pad + 1), meta).await {
        Err(StorageError::TooLarge { size, limit, .. }) => {
            assert_eq!((size, limit), (MAX_SECRET_BYTES + 1, MAX_SECRET_BYTES))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(nothing.num_calls(), 0);
}

#[tokio::test]
async fn a_secret_without_the_marker_is_not_overwritten() {
    let describe = mock!(Client::describe_secret).then_output(|| {
        DescribeSecretOutput::builder()
            .name("nebula/credentials/api_key")
            .build()
    });
    let p = provider_over(mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, &[&describe]));
    let data = EncryptedData {
        version: 1,
        key_id: "k".into(),
        nonce: [0; 12],
        ciphertext: vec![1],
    };
    let err = p.store(&id(), data, CredentialMetadata::new()).await.unwrap_err();
    assert_eq!(err.kind(), "conflict", "{err}");
    assert!(err.to_string().contains("not created by nebula-credential"));
}

#[tokio::test(start_paused = true)]
async fn a_transient_failure_then_success_is_retried_by_the_stack() {
    let json = record_json(16, 1);
    let throttled = mock!(Client::get_secret_value).then_http_response(error_response(400, "ThrottlingException"));
    let unavailable = mock!(Client::get_secret_value).then_http_response(error_response(503, "ServiceUnavailable"));
    let ok = mock!(Client::get_secret_value)
        .then_output(move || GetSecretValueOutput::builder().secret_string(json.clone()).build());
    let client = mock_client!(
        aws_sdk_secretsmanager,
        RuleMode::Sequential,
        &[&throttled, &unavailable, &ok]
    );
    let metrics = Arc::new(StorageMetrics::new());
    let stack = layers::standard(
        provider_over(client),
        RetryPolicy::default(),
        Timeouts::default(),
        metrics.clone(),
    );
    let (data, _) = stack.retrieve(&id()).await.expect("third attempt succeeds");
    assert_eq!(data.ciphertext, vec![1; 16]);
    let s = metrics.snapshot();
    assert_eq!((s.retrieve.count, s.retrieve.errors, s.retrieve.retries), (1, 0, 2));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_and_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let p = provider_at(port, test_credentials());
    let err = p.exists(&id()).await.unwrap_err();
    assert_eq!(err.kind(), "unavailable", "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test(start_paused = true)]
async fn a_hung_endpoint_times_out_through_the_stack() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock); // accept and never answer
        }
    });
    let p = provider_at(port, test_credentials());
    let stack = layers::standard(
        p,
        RetryPolicy::none(),
        Timeouts {
            read_ms: 1_000,
            write_ms: 1_000,
        },
        Arc::new(StorageMetrics::new()),
    );
    let err = tokio::time::timeout(Duration::from_secs(30), stack.retrieve(&id()))
        .await
        .expect("the layer answers")
        .unwrap_err();
    assert_eq!(err.kind(), "timeout", "{err:?}");
}

#[test]
fn debug_shows_no_credentials() {
    let canary = Credentials::new(
        "AKIACANARY",
        "CANARY-secret-access-key",
        Some("CANARY-session-token".into()),
        None,
        "test",
    );
    let p = provider_at(9, SharedCredentialsProvider::new(canary));
    let shown = format!("{p:?} {:?}", config());
    assert!(!shown.contains("CANARY"), "{shown}");
    assert!(
        shown.contains("nebula/credentials/") && shown.contains("127.0.0.1:9"),
        "{shown}"
    );
}

/// A credential chain that finds nothing.
#[derive(Debug)]
struct NoCredentials;

impl aws_credential_types::provider::ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::ready(Err(
            aws_credential_types::provider::error::CredentialsError::not_loaded("no credentials in this test"),
        ))
    }
}

#[tokio::test]
async fn missing_credentials_are_an_authentication_failure_not_an_outage() {
    let p = provider_at(9, SharedCredentialsProvider::new(NoCredentials));
    let err = p.retrieve(&id()).await.unwrap_err();
    assert_eq!(err.kind(), "authentication_failed", "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("AWS_PROFILE"), "{err}");
}
