//! The AWS provider without a server: the SDK's own mock interceptor answers, so error
//! codes moto cannot produce (AccessDenied, Throttling, 503, KMS failures, AWS's
//! asynchronous forced delete) are mapped, limits are enforced before any request, and
//! transient failures are retried by the layer stack.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_sdk_secretsmanager::operation::create_secret::CreateSecretOutput;
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
use aws_sdk_secretsmanager::operation::list_secrets::ListSecretsOutput;
use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueOutput;
use aws_sdk_secretsmanager::types::{SecretListEntry, Tag};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use nebula_credential_aws::{AwsSecretsManagerConfig, AwsSecretsManagerProvider, MAX_SECRET_BYTES};
use nebula_credential_core::conformance::{data, id, meta};
use nebula_credential_core::{
    CredentialFilter, CredentialId, CredentialMetadata, CryptoError, EncryptedData, ErrorKind, RecordEnvelope,
    RetryPolicy, StorageError, StorageMetrics, StorageProvider, Timeouts, layers,
};

const NAME: &str = "nebula/credentials/api_key";

fn key() -> CredentialId {
    id("api_key")
}

fn config() -> AwsSecretsManagerConfig {
    AwsSecretsManagerConfig {
        region: Some("us-east-1".into()),
        ..AwsSecretsManagerConfig::default()
    }
}

/// A mock client answering by `rules` (any order), with the SDK's retries off as in
/// production, so only the layer stack retries.
fn mocked(rules: &[&aws_smithy_mocks::Rule]) -> Client {
    mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, rules, |c| c
        .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled()))
}

fn provider_over(client: Client) -> AwsSecretsManagerProvider {
    AwsSecretsManagerProvider::with_client(client, config()).expect("provider")
}

/// The standard layer stack with default policies over a provider on `client`.
fn standard_stack(client: Client) -> (impl StorageProvider, Arc<StorageMetrics>) {
    let metrics = Arc::new(StorageMetrics::new());
    let stack = layers::standard(
        provider_over(client),
        RetryPolicy::default(),
        Timeouts::default(),
        metrics.clone(),
    )
    .expect("stack");
    (stack, metrics)
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
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        ..config()
    };
    AwsSecretsManagerProvider::from_sdk_config(&sdk, config).expect("provider")
}

/// An awsJson error response, as AWS sends it, with a request id.
fn error_response(status: u16, code: &'static str) -> impl Fn() -> HttpResponse + Send + Sync + 'static {
    with_header(status, code, "x-amzn-requestid", "req-4711")
}

fn with_header(
    status: u16,
    code: &'static str,
    header: &'static str,
    value: &'static str,
) -> impl Fn() -> HttpResponse + Send + Sync + 'static {
    move || {
        let mut r = HttpResponse::new(
            StatusCode::try_from(status).unwrap(),
            SdkBody::from(format!(
                "{{\"__type\":\"{code}\",\"message\":\"mocked text from AWS\"}}"
            )),
        );
        r.headers_mut().insert(header, value);
        r
    }
}

fn marker() -> Tag {
    Tag::builder().key("nebula-credential:managed").value("true").build()
}

/// `DescribeSecret` of a secret of ours whose current version is `v1`.
fn described(tags: Vec<Tag>) -> DescribeSecretOutput {
    DescribeSecretOutput::builder()
        .name(NAME)
        .set_tags(Some(tags))
        .version_ids_to_stages("v1", vec!["AWSCURRENT".into()])
        .build()
}

fn ours() -> DescribeSecretOutput {
    described(vec![marker()])
}

/// Metadata at a fixed time: "now" serializes to a varying length (trailing zeros of the
/// fraction are dropped), which would move a record across a byte boundary.
fn fixed_meta() -> CredentialMetadata {
    let mut meta = CredentialMetadata::new();
    meta.created_at = "2026-01-02T03:04:05.678Z".parse().unwrap();
    meta.updated_at = meta.created_at;
    meta
}

fn record_json(ciphertext_len: usize, key_id_len: usize) -> String {
    let data = EncryptedData {
        version: 1,
        key_id: "k".repeat(key_id_len),
        nonce: [0; 12],
        ciphertext: vec![1; ciphertext_len],
    };
    let json = RecordEnvelope::new(key(), data, fixed_meta())
        .to_json("aws", usize::MAX)
        .unwrap();
    String::from_utf8(json).unwrap()
}

#[tokio::test]
async fn errors_map_by_code() {
    let cases: Vec<(u16, &'static str, ErrorKind, bool)> = vec![
        (400, "AccessDeniedException", ErrorKind::PermissionDenied, false),
        (400, "ThrottlingException", ErrorKind::Throttled, true),
        (400, "ThrottledException", ErrorKind::Throttled, true),
        (503, "SlowDown", ErrorKind::Throttled, true),
        (400, "PriorRequestNotComplete", ErrorKind::Throttled, true),
        (400, "RequestTimeout", ErrorKind::Unavailable, true),
        (408, "RequestTimeoutException", ErrorKind::Unavailable, true),
        (503, "ServiceUnavailable", ErrorKind::Unavailable, true),
        (500, "InternalServiceError", ErrorKind::Unavailable, true),
        (502, "BadGateway", ErrorKind::Unavailable, true),
        (
            400,
            "UnrecognizedClientException",
            ErrorKind::AuthenticationFailed,
            false,
        ),
        (400, "DecryptionFailure", ErrorKind::Crypto, false),
        (400, "InvalidParameterException", ErrorKind::Backend, false),
        (404, "ResourceNotFoundException", ErrorKind::NotFound, false),
    ];
    for (status, code, kind, retryable) in cases {
        let describe = mock!(Client::describe_secret).then_output(ours);
        let rule = mock!(Client::get_secret_value).then_http_response(error_response(status, code));
        let p = provider_over(mocked(&[&describe, &rule]));
        let err = p.retrieve(&key()).await.expect_err(code);
        assert_eq!((err.kind(), err.is_retryable()), (kind, retryable), "{code}: {err}");
        assert!(
            !err.to_string().contains("mocked text"),
            "messages from AWS are not echoed as ours: {err}"
        );
    }
}

/// The SDK's error stays the source: AWS's message and request id reach logs that
/// print the chain, while `Display` stays our own sentence.
#[tokio::test]
async fn the_sdk_error_is_kept_as_source_with_message_and_request_id() {
    let describe = mock!(Client::describe_secret).then_output(ours);
    let rule = mock!(Client::get_secret_value).then_http_response(error_response(400, "AccessDeniedException"));
    let p = provider_over(mocked(&[&describe, &rule]));
    let err = p.retrieve(&key()).await.unwrap_err();
    let source = std::error::Error::source(&err).expect("a source");
    let mut chain = format!("{source:?}");
    let mut next = source.source();
    while let Some(e) = next {
        chain.push_str(&format!(" / {e}"));
        next = e.source();
    }
    assert!(
        chain.contains("mocked text from AWS") && chain.contains("req-4711"),
        "{chain}"
    );
    assert!(!err.to_string().contains("req-4711"), "{err}");
}

#[tokio::test]
async fn throttling_carries_retry_after() {
    let describe = mock!(Client::describe_secret).then_output(ours);
    let rule =
        mock!(Client::get_secret_value).then_http_response(with_header(400, "ThrottlingException", "retry-after", "7"));
    let p = provider_over(mocked(&[&describe, &rule]));
    let err = p.retrieve(&key()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn the_version_quota_says_what_it_is_and_what_to_do() {
    let describe = mock!(Client::describe_secret).then_output(ours);
    let put = mock!(Client::put_secret_value).then_http_response(error_response(400, "LimitExceededException"));
    let p = provider_over(mocked(&[&describe, &put]));
    let err = p.store(&key(), &data(1), &meta()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    assert!(!err.is_retryable());
    let msg = err.to_string();
    assert!(
        msg.contains("versions") && msg.contains("less often") && msg.contains("PutSecretValue"),
        "{msg}"
    );
}

#[tokio::test]
async fn permission_and_kms_errors_name_what_to_grant() {
    let describe = mock!(Client::describe_secret).then_output(ours);
    let rule = mock!(Client::get_secret_value).then_http_response(error_response(400, "AccessDeniedException"));
    let p = provider_over(mocked(&[&describe, &rule]));
    let msg = p.retrieve(&key()).await.unwrap_err().to_string();
    assert!(
        msg.contains("secretsmanager:GetSecretValue") && msg.contains("api_key"),
        "{msg}"
    );

    let rule = mock!(Client::get_secret_value).then_http_response(error_response(400, "DecryptionFailure"));
    let p = provider_over(mocked(&[&describe, &rule]));
    match p.retrieve(&key()).await {
        Err(StorageError::Crypto(e @ CryptoError::KeyService { .. })) => {
            assert!(e.to_string().contains("kms:Decrypt"), "{e}")
        }
        other => panic!("{other:?}"),
    }

    let rule = mock!(Client::list_secrets).then_http_response(error_response(400, "AccessDeniedException"));
    let p = provider_over(mocked(&[&rule]));
    let msg = p.list(&CredentialFilter::new()).await.unwrap_err().to_string();
    assert!(msg.contains("secretsmanager:ListSecrets"), "{msg}");
    let msg = p.check().await.unwrap_err().to_string();
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
        .then_output(|| CreateSecretOutput::builder().version_id("v1").build());
    let p = provider_over(mocked(&[&describe, &create]));
    let meta = fixed_meta();
    let rev = p
        .store(&key(), &data(pad), &meta)
        .await
        .expect("exactly 65,536 bytes is accepted");
    assert_eq!(rev.as_str(), "v1");
    assert_eq!(create.num_calls(), 1);

    // One byte over: refused with both numbers, and no request at all.
    let nothing = mock!(Client::describe_secret).then_http_response(error_response(500, "InternalServiceError"));
    let p = provider_over(mocked(&[&nothing]));
    match p.store(&key(), &data(pad + 1), &meta).await {
        Err(StorageError::TooLarge { size, limit, .. }) => {
            assert_eq!((size, limit), (MAX_SECRET_BYTES + 1, MAX_SECRET_BYTES))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(nothing.num_calls(), 0);
}

/// A secret without the marker is never read, overwritten or deleted: every operation
/// reports `Conflict` naming it and the marker, and no write request goes out.
#[tokio::test]
async fn a_secret_without_the_marker_is_never_touched() {
    let foreign = || described(vec![Tag::builder().key("CostCenter").value("42").build()]);
    let describe = mock!(Client::describe_secret).then_output(foreign);
    let get = mock!(Client::get_secret_value)
        .then_output(|| GetSecretValueOutput::builder().secret_string(record_json(4, 1)).build());
    let put = mock!(Client::put_secret_value).then_output(|| PutSecretValueOutput::builder().build());
    let delete = mock!(Client::delete_secret)
        .then_output(|| aws_sdk_secretsmanager::operation::delete_secret::DeleteSecretOutput::builder().build());
    let p = provider_over(mocked(&[&describe, &get, &put, &delete]));
    let outcomes = [
        ("retrieve", p.retrieve(&key()).await.map(drop)),
        ("exists", p.exists(&key()).await.map(drop)),
        ("store", p.store(&key(), &data(1), &meta()).await.map(drop)),
        ("delete", p.delete(&key()).await),
    ];
    for (op, outcome) in outcomes {
        let err = outcome.expect_err(op);
        assert_eq!(err.kind(), ErrorKind::Conflict, "{op}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains(NAME) && msg.contains("nebula-credential:managed=true"),
            "{op}: {msg}"
        );
    }
    assert_eq!((put.num_calls(), delete.num_calls()), (0, 0));
}

/// A read whose answer proves the value ours (its version id, as this library writes
/// them) is one `GetSecretValue`, no `DescribeSecret`; the same value under a version id
/// another tool's write would get is settled by `DescribeSecret`.
#[tokio::test]
async fn a_read_proven_by_its_version_id_needs_no_describe() {
    let written = Arc::new(std::sync::Mutex::new((String::new(), String::new())));
    let w = written.clone();
    let missing = mock!(Client::describe_secret).then_http_response(error_response(400, "ResourceNotFoundException"));
    let create = mock!(Client::create_secret)
        .match_requests(move |r| {
            *w.lock().unwrap() = (
                r.client_request_token().unwrap_or_default().to_string(),
                r.secret_string().unwrap_or_default().to_string(),
            );
            true
        })
        .then_output(|| CreateSecretOutput::builder().build());
    provider_over(mocked(&[&missing, &create]))
        .store(&key(), &data(1), &meta())
        .await
        .unwrap();
    let (version, value) = written.lock().unwrap().clone();
    assert_eq!(version.len(), 64, "{version}");

    let answer = move |version: String| {
        let value = value.clone();
        move || {
            GetSecretValueOutput::builder()
                .version_id(&version)
                .secret_string(&value)
                .version_stages("AWSCURRENT")
                .build()
        }
    };
    let describe = mock!(Client::describe_secret).then_output(ours);
    let get = mock!(Client::get_secret_value).then_output(answer(version));
    let p = provider_over(mocked(&[&describe, &get]));
    assert_eq!(p.retrieve(&key()).await.unwrap().data, data(1));
    assert_eq!((get.num_calls(), describe.num_calls()), (1, 0));

    let get = mock!(Client::get_secret_value).then_output(answer("3f6c6d0e-8b1a-4c2e-9f5d-0a1b2c3d4e5f".into()));
    let p = provider_over(mocked(&[&describe, &get]));
    assert_eq!(p.retrieve(&key()).await.unwrap().data, data(1));
    assert_eq!((get.num_calls(), describe.num_calls()), (1, 1));
}

/// `list` never returns a secret without the marker, even if the server's filter let
/// it through.
#[tokio::test]
async fn list_rechecks_the_marker() {
    let page = mock!(Client::list_secrets).then_output(|| {
        ListSecretsOutput::builder()
            .secret_list(SecretListEntry::builder().name("nebula/credentials/foreign").build())
            .secret_list(
                SecretListEntry::builder()
                    .name("nebula/credentials/mine")
                    .tags(marker())
                    .build(),
            )
            .build()
    });
    let p = provider_over(mocked(&[&page]));
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap(), vec![id("mine")]);
}

/// On real AWS a forced delete finishes asynchronously: `CreateSecret` of the name
/// fails with `InvalidRequestException` for a while. `store` waits, bounded, and succeeds.
#[tokio::test(start_paused = true)]
async fn store_after_a_forced_delete_waits_for_aws_to_free_the_name() {
    let describe = mock!(Client::describe_secret).then_http_response(error_response(400, "ResourceNotFoundException"));
    let create = mock!(Client::create_secret)
        .sequence()
        .http_response(error_response(400, "InvalidRequestException"))
        .times(3)
        .output(|| CreateSecretOutput::builder().version_id("v1").build())
        .build();
    let p = provider_over(mocked(&[&describe, &create]));
    let started = tokio::time::Instant::now();
    let rev = p.store(&key(), &data(1), &meta()).await.expect("store succeeds");
    assert_eq!(rev.as_str(), "v1");
    assert_eq!(create.num_calls(), 4);
    assert!(started.elapsed() >= Duration::from_millis(250 + 500 + 1000));

    // A name that never frees: a bounded wait, then a retryable Unavailable.
    let never = mock!(Client::create_secret).then_http_response(error_response(400, "InvalidRequestException"));
    let p = provider_over(mocked(&[&describe, &never]));
    let started = tokio::time::Instant::now();
    let err = p.store(&key(), &data(1), &meta()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert!(never.num_calls() <= 6, "{}", never.num_calls());
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
}

/// A conditional store whose expected version is no longer current is refused before
/// any version is written (each version counts against AWS's quota).
#[tokio::test]
async fn a_stale_conditional_store_writes_no_version() {
    let describe = mock!(Client::describe_secret).then_output(ours);
    let put = mock!(Client::put_secret_value).then_output(|| PutSecretValueOutput::builder().build());
    let p = provider_over(mocked(&[&describe, &put]));
    let stale = nebula_credential_core::Precondition::Revision(nebula_credential_core::Revision::new("v0"));
    let err = p.store_if(&key(), &data(1), &meta(), &stale).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert_eq!(put.num_calls(), 0);
}

/// `DescribeSecret` of a secret of ours whose current version is `version`.
fn ours_at(version: &'static str) -> impl Fn() -> DescribeSecretOutput + Send + Sync + 'static {
    move || {
        DescribeSecretOutput::builder()
            .name(NAME)
            .tags(marker())
            .version_ids_to_stages(version, vec!["AWSCURRENT".into()])
            .build()
    }
}

/// Every write moves `AWSCURRENT` with `UpdateSecretVersionStage` from the version it
/// read; when AWS refuses because another *unconditional* store moved it first (its
/// version id ends in `0`), a plain store counts as landed and at once overwritten: `Ok`,
/// no tag update (the tags are the winner's), and no plain `PutSecretValue` that would
/// move `AWSCURRENT` by itself. A store at a revision is a `Conflict` then.
#[tokio::test]
async fn a_plain_store_that_loses_the_stage_move_to_a_plain_store_counts_as_overwritten() {
    use aws_sdk_secretsmanager::operation::tag_resource::TagResourceOutput;
    use aws_sdk_secretsmanager::operation::update_secret_version_stage::UpdateSecretVersionStageOutput;
    const PLAIN: &str = "00000000000000000000000000000000aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa0";
    let described = mock!(Client::describe_secret).then_output(ours_at(PLAIN));
    let put = mock!(Client::put_secret_value)
        .match_requests(|r| r.version_stages() == ["NEBULA_PENDING"] && r.client_request_token().is_some())
        .then_output(|| PutSecretValueOutput::builder().build());
    let refused = mock!(Client::update_secret_version_stage)
        .match_requests(|r| r.version_stage() == Some("AWSCURRENT") && r.remove_from_version_id() == Some(PLAIN))
        .then_http_response(error_response(400, "InvalidParameterException"));
    let tag = mock!(Client::tag_resource).then_output(|| TagResourceOutput::builder().build());
    let p = provider_over(mocked(&[&described, &put, &refused, &tag]));
    p.store(&key(), &data(1), &meta()).await.expect("counts as overwritten");
    assert_eq!((put.num_calls(), refused.num_calls(), tag.num_calls()), (1, 1, 0));

    // The same refusal for a store at a revision is a Conflict.
    let stale = nebula_credential_core::Precondition::Revision(nebula_credential_core::Revision::new(PLAIN));
    let err = p.store_if(&key(), &data(2), &meta(), &stale).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");

    // Accepted: the revision is the version id the provider chose, tags follow.
    let moved =
        mock!(Client::update_secret_version_stage).then_output(|| UpdateSecretVersionStageOutput::builder().build());
    let p = provider_over(mocked(&[&described, &put, &moved, &tag]));
    let revision = p.store(&key(), &data(3), &meta()).await.unwrap();
    assert_eq!(revision.as_str().len(), 64);
    assert!(
        revision.as_str().ends_with('0'),
        "an unconditional write's id ends in 0"
    );
    assert_eq!(tag.num_calls(), 1);
}

/// When the writer that moved `AWSCURRENT` first was a conditional store (its id ends in
/// `1`) or another tool, that writer's revision still held, so it came first: a plain
/// store writes again over it rather than report a value that was never current, and
/// gives up with `Conflict` only if it keeps losing.
#[tokio::test]
async fn a_plain_store_that_loses_the_stage_move_to_a_conditional_store_writes_again() {
    const CONDITIONAL: &str = "00000000000000000000000000000000aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1";
    for winner in [CONDITIONAL, "v1"] {
        let described = mock!(Client::describe_secret).then_output(ours_at(winner));
        let put = mock!(Client::put_secret_value).then_output(|| PutSecretValueOutput::builder().build());
        let refused = mock!(Client::update_secret_version_stage)
            .then_http_response(error_response(400, "InvalidParameterException"));
        let p = provider_over(mocked(&[&described, &put, &refused]));
        let err = p.store(&key(), &data(1), &meta()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{winner}: {err}");
        assert!(put.num_calls() > 1, "{winner}: wrote again ({} puts)", put.num_calls());
    }
}

/// A page that fails transiently is retried from its own token: earlier pages are not
/// fetched again, and the Retry layer does not restart the listing on top.
#[tokio::test(start_paused = true)]
async fn a_failed_page_is_retried_alone() {
    let first = mock!(Client::list_secrets)
        .match_requests(|r| r.next_token().is_none())
        .then_output(|| {
            ListSecretsOutput::builder()
                .secret_list(
                    SecretListEntry::builder()
                        .name("nebula/credentials/a")
                        .tags(marker())
                        .build(),
                )
                .next_token("page-2")
                .build()
        });
    let second = mock!(Client::list_secrets)
        .match_requests(|r| r.next_token() == Some("page-2"))
        .sequence()
        .http_response(error_response(503, "ServiceUnavailable"))
        .times(2)
        .output(|| {
            ListSecretsOutput::builder()
                .secret_list(
                    SecretListEntry::builder()
                        .name("nebula/credentials/b")
                        .tags(marker())
                        .build(),
                )
                .build()
        })
        .build();
    let (stack, _) = standard_stack(mocked(&[&first, &second]));
    assert_eq!(
        stack.list(&CredentialFilter::new()).await.unwrap(),
        vec![id("a"), id("b")]
    );
    assert_eq!((first.num_calls(), second.num_calls()), (1, 3));

    // A page that keeps failing: the error says it was retried, so the layer stops.
    let failing = mock!(Client::list_secrets).then_http_response(error_response(503, "ServiceUnavailable"));
    let (stack, _) = standard_stack(mocked(&[&failing]));
    let err = stack.list(&CredentialFilter::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(!err.is_retryable() && err.retried().is_some(), "{err:?}");
    let attempts = RetryPolicy::default().max_retries as usize + 1;
    assert_eq!(failing.num_calls(), attempts, "no retries multiplied on top");
}

#[tokio::test(start_paused = true)]
async fn a_transient_failure_then_success_is_retried_by_the_stack() {
    let json = record_json(16, 1);
    let describe = mock!(Client::describe_secret).then_output(ours);
    let get = mock!(Client::get_secret_value)
        .sequence()
        .http_response(error_response(400, "ThrottlingException"))
        .http_response(error_response(503, "ServiceUnavailable"))
        .output(move || {
            GetSecretValueOutput::builder()
                .secret_string(json.clone())
                .version_id("v1")
                .version_stages("AWSCURRENT")
                .build()
        })
        .build();
    let (stack, metrics) = standard_stack(mocked(&[&describe, &get]));
    let stored = stack.retrieve(&key()).await.expect("third attempt succeeds");
    assert_eq!(stored.data.ciphertext, vec![1; 16]);
    assert_eq!(stored.revision.as_str(), "v1");
    let s = metrics.snapshot();
    assert_eq!((s.retrieve.count, s.retrieve.errors, s.retrieve.retries), (1, 0, 2));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_and_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let p = provider_at(port, test_credentials());
    let err = p.exists(&key()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
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
    )
    .expect("stack");
    let err = tokio::time::timeout(Duration::from_secs(30), stack.retrieve(&key()))
        .await
        .expect("the layer answers")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
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

/// A credential chain that fails with `error`.
#[derive(Debug)]
struct FailingChain(fn() -> aws_credential_types::provider::error::CredentialsError);

impl aws_credential_types::provider::ProvideCredentials for FailingChain {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::ready(Err((self.0)()))
    }
}

#[tokio::test]
async fn missing_credentials_are_an_authentication_failure_not_an_outage() {
    use aws_credential_types::provider::error::CredentialsError;
    let p = provider_at(
        9,
        SharedCredentialsProvider::new(FailingChain(|| {
            CredentialsError::not_loaded("no credentials in this test")
        })),
    );
    let err = p.retrieve(&key()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AuthenticationFailed, "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("AWS_PROFILE"), "{err}");
}

/// STS answering 503 or IMDS timing out is an outage of the credential chain, not a
/// verdict on the credentials: retryable.
#[tokio::test]
async fn transient_credential_chain_failures_are_retryable() {
    use aws_credential_types::provider::error::CredentialsError;
    let chains: [fn() -> CredentialsError; 2] = [
        || CredentialsError::provider_timed_out(Duration::from_secs(1)),
        || CredentialsError::provider_error("STS answered 503"),
    ];
    for chain in chains {
        let p = provider_at(9, SharedCredentialsProvider::new(FailingChain(chain)));
        let err = p.exists(&key()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
        assert!(err.is_retryable());
    }
}

/// With the README's IAM condition on the marker tag, AWS refuses `GetSecretValue` of a
/// secret whose marker an operator removed: `DescribeSecret` (not conditioned) then tells
/// that apart from a missing permission, so the read answers `Conflict` naming the marker.
#[tokio::test]
async fn a_read_refused_by_an_iam_condition_on_the_marker_is_a_conflict() {
    let describe = mock!(Client::describe_secret).then_output(|| described(vec![]));
    let get = mock!(Client::get_secret_value).then_http_response(error_response(400, "AccessDeniedException"));
    let p = provider_over(mocked(&[&describe, &get]));
    let err = p.retrieve(&key()).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert!(err.to_string().contains("nebula-credential:managed"), "{err}");

    let describe = mock!(Client::describe_secret).then_output(ours);
    let get = mock!(Client::get_secret_value).then_http_response(error_response(400, "AccessDeniedException"));
    let p = provider_over(mocked(&[&describe, &get]));
    let err = p.retrieve(&key()).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::PermissionDenied,
        "ours: a missing permission: {err}"
    );
}

/// A write that fails at `PutSecretValue` or `CreateSecret` (the requests that carry the
/// record) reports an error whose `Display`, `Debug` and whole source chain hold no part
/// of that record.
#[tokio::test]
async fn a_failed_write_shows_no_part_of_the_record_in_its_error() {
    let record =
        String::from_utf8(RecordEnvelope::encode(&key(), &data(7), &meta(), "aws", usize::MAX).unwrap()).unwrap();
    let ciphertext = record
        .split("\"ciphertext\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the record holds the ciphertext")
        .to_string();
    assert!(ciphertext.len() > 16, "{ciphertext}");
    let described = mock!(Client::describe_secret).then_output(ours);
    let put = mock!(Client::put_secret_value).then_http_response(error_response(500, "InternalServiceError"));
    let missing = mock!(Client::describe_secret).then_http_response(error_response(404, "ResourceNotFoundException"));
    let create = mock!(Client::create_secret).then_http_response(error_response(400, "ValidationException"));
    for rules in [vec![&described, &put], vec![&missing, &create]] {
        let p = provider_over(mocked(&rules));
        let err = p.store(&key(), &data(7), &meta()).await.unwrap_err();
        let mut shown = format!("{err} {err:?}");
        let mut next = std::error::Error::source(&err);
        while let Some(e) = next {
            shown.push_str(&format!(" / {e} {e:?}"));
            next = e.source();
        }
        assert!(
            !shown.contains(&ciphertext) && !shown.contains("encrypted_data"),
            "{shown}"
        );
    }
}

/// `revision` maps `DescribeSecret`'s answers as every operation does: denial names the
/// action to grant, throttling is retryable, a secret without a current version (created
/// without a value) is absent; it never calls `GetSecretValue` (no rule for it here).
#[tokio::test]
async fn revision_maps_describe_secret_answers_and_never_reads_the_value() {
    let p = provider_over(mocked(&[&mock!(Client::describe_secret).then_output(ours)]));
    assert_eq!(p.revision(&key()).await.unwrap().as_str(), "v1");

    let rule = mock!(Client::describe_secret).then_http_response(error_response(400, "AccessDeniedException"));
    let err = p_over(&rule).revision(&key()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("secretsmanager:DescribeSecret"), "{err}");

    let rule = mock!(Client::describe_secret).then_http_response(error_response(400, "ThrottlingException"));
    let err = p_over(&rule).revision(&key()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled);
    assert!(err.is_retryable());

    let rule = mock!(Client::describe_secret).then_http_response(error_response(400, "ResourceNotFoundException"));
    assert!(p_over(&rule).revision(&key()).await.unwrap_err().is_not_found());

    let no_version = || DescribeSecretOutput::builder().name(NAME).tags(marker()).build();
    let rule = mock!(Client::describe_secret).then_output(no_version);
    assert!(p_over(&rule).revision(&key()).await.unwrap_err().is_not_found());

    let foreign = || described(vec![Tag::builder().key("CostCenter").value("42").build()]);
    let rule = mock!(Client::describe_secret).then_output(foreign);
    assert!(p_over(&rule).revision(&key()).await.unwrap_err().is_conflict());
}

fn p_over(rule: &aws_smithy_mocks::Rule) -> AwsSecretsManagerProvider {
    provider_over(mocked(&[rule]))
}
