//! The one table from Secrets Manager errors to [`StorageError`] kinds, by error code and
//! SDK error kind — never by message text (moto's messages even differ from AWS's).
//! Retryability is decided here and nowhere else: transient failures become
//! `Unavailable` or `Throttled`, everything else a non-retryable kind.

use std::time::Duration;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use nebula_credential_core::remote::{Failure, Verdict, is_tls_failure, source_chain};
use nebula_credential_core::{BoxError, CredentialId, CryptoError, Operation, StorageError};

use crate::PROVIDER;

/// What an error means, whatever the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `ResourceNotFoundException`.
    NotFound,
    /// `ResourceExistsException`: a create lost the race.
    Exists,
    /// The IAM principal lacks the action.
    Denied,
    /// The request's credentials are not accepted.
    Unauthenticated,
    /// The credential chain has no credentials, or is configured wrongly.
    NoCredentials,
    /// The TLS handshake failed: an untrusted certificate, or no TLS at all.
    Tls,
    /// Slow down.
    Throttled,
    /// KMS could not encrypt or decrypt.
    KeyService,
    /// A temporary failure: service side, network, or the credential chain timing out.
    Unavailable,
    /// `InvalidRequestException`: the secret's state forbids it (e.g. pending deletion).
    InvalidRequest,
    /// `InvalidParameterException`: also what a refused version-stage move reports.
    InvalidParameter,
    /// `LimitExceededException`: a quota, for `PutSecretValue` the number of versions.
    Quota,
    /// `InvalidRequestException` while AWS finishes deleting the secret (a forced delete
    /// is asynchronous): transient.
    DeletionPending,
    /// Anything else: permanent.
    Other,
}

/// Classifies a service error by its code, falling back on the HTTP status.
///
/// Codes from the Secrets Manager API reference ("Errors" of each action, "Common
/// Errors"), and the transient and throttling codes of the SDK's own retry classifier
/// (`aws-runtime`'s `THROTTLING_ERRORS` / `TRANSIENT_ERRORS`), which follows AWS's retry
/// guidance. `LimitExceededException` is in the SDK's throttling list, but on Secrets
/// Manager it means a quota (versions per secret), which waiting seconds does not lift.
pub(crate) fn classify(code: Option<&str>, status: u16) -> Kind {
    match code.unwrap_or_default() {
        "ResourceNotFoundException" => Kind::NotFound,
        "ResourceExistsException" => Kind::Exists,
        "AccessDeniedException" | "AccessDenied" => Kind::Denied,
        "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredTokenException"
        | "ExpiredToken"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "MissingAuthenticationToken" => Kind::Unauthenticated,
        "ThrottlingException"
        | "Throttling"
        | "ThrottledException"
        | "RequestThrottledException"
        | "RequestThrottled"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "BandwidthLimitExceeded"
        | "SlowDown"
        | "PriorRequestNotComplete" => Kind::Throttled,
        "DecryptionFailure" | "EncryptionFailure" => Kind::KeyService,
        "InternalServiceError"
        | "InternalFailure"
        | "InternalError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "RequestTimeout"
        | "RequestTimeoutException" => Kind::Unavailable,
        "InvalidRequestException" => Kind::InvalidRequest,
        "InvalidParameterException" => Kind::InvalidParameter,
        "LimitExceededException" => Kind::Quota,
        _ if status == 429 => Kind::Throttled,
        _ if matches!(status, 500 | 502 | 503 | 504) => Kind::Unavailable,
        _ => Kind::Other,
    }
}

/// Where an error happened: the operation, the credential, and the IAM action called.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub(crate) operation: Operation,
    pub(crate) id: Option<&'a CredentialId>,
    /// e.g. `secretsmanager:GetSecretValue`.
    pub(crate) action: &'static str,
}

/// A Secrets Manager error, classified, before it becomes a [`StorageError`].
#[derive(Debug)]
pub(crate) struct AwsError {
    pub(crate) kind: Kind,
    status: Option<u16>,
    code: Option<String>,
    retry_after: Option<Duration>,
    source: BoxError,
}

impl<E> From<SdkError<E, HttpResponse>> for AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn from(err: SdkError<E, HttpResponse>) -> Self {
        let code = err.code().map(str::to_string);
        let status = err.raw_response().map(|r| r.status().as_u16());
        let retry_after = err
            .raw_response()
            .and_then(|r| retry_after(r.headers().get("retry-after")));
        let kind = match &err {
            SdkError::ServiceError(_) => classify(code.as_deref(), status.unwrap_or(0)),
            SdkError::DispatchFailure(_) => dispatch_kind(&err),
            SdkError::TimeoutError(_) => Kind::Unavailable,
            SdkError::ResponseError(_) if status.is_some_and(|s| s >= 500) || cut_short(&err) => Kind::Unavailable,
            _ => Kind::Other,
        };
        AwsError {
            kind,
            status,
            code,
            retry_after,
            source: Box::new(err),
        }
    }
}

/// Whether an answer broke off while it was read (the connection closed, reset or timed
/// out mid-body: an I/O error of such a kind in the chain), as opposed to one that arrived
/// whole but could not be understood. Found by the fault matrix (tests/tests/faults.rs): a
/// 200 whose body was cut was reported as a refusal.
fn cut_short(err: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind as Io;
    source_chain(err).any(|e| {
        e.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                Io::UnexpectedEof | Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe | Io::TimedOut
            )
        })
    })
}

/// A request that never got an answer: the credential chain, TLS, or the network.
fn dispatch_kind(err: &(dyn std::error::Error + 'static)) -> Kind {
    let credentials = source_chain(err)
        .filter_map(|e| e.downcast_ref::<CredentialsError>())
        .last()
        .map(credentials_kind);
    match credentials {
        Some(kind) => kind,
        None if is_tls_failure(err) => Kind::Tls,
        None => Kind::Unavailable,
    }
}

/// Only missing credentials and an invalid chain configuration are permanent; a
/// provider that timed out or failed (STS 503, IMDS or ECS endpoint unreachable) is not.
fn credentials_kind(e: &CredentialsError) -> Kind {
    match e {
        CredentialsError::CredentialsNotLoaded(_) | CredentialsError::InvalidConfiguration(_) => Kind::NoCredentials,
        _ => Kind::Unavailable,
    }
}

/// `Retry-After` as delta-seconds (the form AWS sends).
fn retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

impl AwsError {
    /// The [`StorageError`] for this error in `ctx`. The SDK's error (AWS's message and
    /// request id) stays as the source; our message never repeats AWS's text.
    pub(crate) fn into_storage(self, ctx: Context<'_>) -> StorageError {
        let Context { operation, id, action } = ctx;
        let code = self.code.clone().unwrap_or_else(|| "unknown".into());
        let verdict = match self.kind {
            Kind::NotFound => Verdict::NotFound {
                without_id: "the resource was not found".into(),
            },
            Kind::Denied => Verdict::PermissionDenied {
                required: format!(
                    "grant the IAM action {action} on the secret (and kms:Decrypt / kms:GenerateDataKey on its KMS key when it uses a customer-managed key)"
                ),
            },
            Kind::Unauthenticated => Verdict::AuthenticationFailed {
                hint: format!(
                    "AWS rejected the request's credentials ({code}); check the credential chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, SSO login, role) and the clock"
                ),
            },
            Kind::NoCredentials => Verdict::AuthenticationFailed {
                hint: "no usable AWS credentials were found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, \
                       run `aws sso login`, or run where a role is attached"
                    .into(),
            },
            Kind::Tls => Verdict::backend(
                "the TLS handshake with the endpoint failed: its certificate is not trusted (or it does not \
                 speak TLS); trust its CA in the system roots or fix endpoint — verification stays on",
            ),
            Kind::Throttled => Verdict::Throttled {
                retry_after: self.retry_after,
            },
            Kind::KeyService => match id {
                Some(id) => Verdict::Final(StorageError::Crypto(CryptoError::KeyService {
                    provider: PROVIDER,
                    id: id.clone(),
                    code,
                    required: "grant kms:Decrypt and kms:GenerateDataKey on the secret's KMS key and check that the key is enabled".into(),
                })),
                None => Verdict::backend("KMS could not process the secret"),
            },
            Kind::Unavailable | Kind::DeletionPending => Verdict::Unavailable,
            Kind::Exists => Verdict::Conflict {
                hint: "a secret of that name was created concurrently; re-read it and try again".into(),
                without_id: "the resource already exists".into(),
            },
            Kind::InvalidRequest => {
                Verdict::backend("the secret's state does not allow this (is it scheduled for deletion?)")
            }
            Kind::Quota => Verdict::backend(
                "a Secrets Manager quota was reached; for PutSecretValue that is the number of versions of \
                 the secret (AWS keeps about 100 and removes old ones slowly: about one update per 10 minutes \
                 per secret is sustainable): store this credential less often, wait, or delete and re-create it",
            ),
            Kind::InvalidParameter | Kind::Other => Verdict::backend(format!("{action} was refused")),
        };
        let at = Failure {
            provider: PROVIDER,
            operation,
            id,
            status: self.status,
            code: self.code.as_deref(),
        };
        verdict.into_storage(at, self.source)
    }

    /// Reclassifies an `InvalidRequestException` met where only a deletion in progress
    /// explains it (creating or restoring a name that was just deleted).
    pub(crate) fn deletion_pending(mut self) -> Self {
        if self.kind == Kind::InvalidRequest {
            self.kind = Kind::DeletionPending;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let table = [
            (Some("ResourceNotFoundException"), 404, Kind::NotFound),
            (Some("ResourceNotFoundException"), 400, Kind::NotFound),
            (Some("ResourceExistsException"), 400, Kind::Exists),
            (Some("AccessDeniedException"), 400, Kind::Denied),
            (Some("UnrecognizedClientException"), 400, Kind::Unauthenticated),
            (Some("ExpiredTokenException"), 400, Kind::Unauthenticated),
            (Some("ThrottlingException"), 400, Kind::Throttled),
            (Some("Throttling"), 400, Kind::Throttled),
            (Some("ThrottledException"), 400, Kind::Throttled),
            (Some("SlowDown"), 503, Kind::Throttled),
            (Some("PriorRequestNotComplete"), 400, Kind::Throttled),
            (None, 429, Kind::Throttled),
            (Some("DecryptionFailure"), 400, Kind::KeyService),
            (Some("EncryptionFailure"), 400, Kind::KeyService),
            (Some("InternalServiceError"), 500, Kind::Unavailable),
            (Some("RequestTimeout"), 400, Kind::Unavailable),
            (Some("RequestTimeoutException"), 408, Kind::Unavailable),
            (None, 500, Kind::Unavailable),
            (None, 502, Kind::Unavailable),
            (None, 503, Kind::Unavailable),
            (None, 504, Kind::Unavailable),
            (Some("InvalidRequestException"), 400, Kind::InvalidRequest),
            (Some("InvalidParameterException"), 400, Kind::InvalidParameter),
            (Some("LimitExceededException"), 400, Kind::Quota),
            (Some("ValidationException"), 400, Kind::Other),
            (None, 400, Kind::Other),
        ];
        for (code, status, kind) in table {
            assert_eq!(classify(code, status), kind, "{code:?} {status}");
        }
    }

    #[test]
    fn credential_chain_failures() {
        assert_eq!(
            credentials_kind(&CredentialsError::not_loaded("none")),
            Kind::NoCredentials
        );
        assert_eq!(
            credentials_kind(&CredentialsError::invalid_configuration("bad profile")),
            Kind::NoCredentials
        );
        assert_eq!(
            credentials_kind(&CredentialsError::provider_timed_out(Duration::from_secs(1))),
            Kind::Unavailable
        );
        assert_eq!(
            credentials_kind(&CredentialsError::provider_error("STS 503")),
            Kind::Unavailable
        );
    }

    /// A 200 whose body broke off (what hyper reports as `IncompleteBody`, an
    /// `UnexpectedEof` I/O error) is transient; an answer that arrived whole but cannot be
    /// understood is not.
    #[test]
    fn an_answer_cut_short_is_unavailable() {
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;
        let response = |source: BoxError| {
            let raw = HttpResponse::new(StatusCode::try_from(200).unwrap(), SdkBody::empty());
            AwsError::from(SdkError::<GetSecretValueError, HttpResponse>::response_error(
                source, raw,
            ))
            .kind
        };
        for kind in [
            std::io::ErrorKind::UnexpectedEof,
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::TimedOut,
        ] {
            let cut = std::io::Error::new(kind, "end of file before message length reached");
            assert_eq!(response(Box::new(cut)), Kind::Unavailable, "{kind:?}");
        }
        assert_eq!(response("not the JSON expected".into()), Kind::Other);
    }

    #[test]
    fn retry_after_in_seconds() {
        assert_eq!(retry_after(Some("3")), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(Some(" 12 ")), Some(Duration::from_secs(12)));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(None), None);
    }
}
