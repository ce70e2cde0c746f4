//! The one table from Secrets Manager errors to [`StorageError`] kinds, by error code and
//! SDK error kind — never by message text (moto's messages even differ from AWS's).

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use nebula_credential_core::{CredentialId, CryptoError, Operation, StorageError};

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
    /// The credential chain produced no credentials.
    NoCredentials,
    /// The TLS handshake failed: an untrusted certificate, or no TLS at all.
    Tls,
    /// Slow down.
    Throttled,
    /// KMS could not encrypt or decrypt.
    KeyService,
    /// A temporary service-side failure.
    Unavailable,
    /// `InvalidRequestException`: the secret's state forbids it (e.g. pending deletion).
    InvalidRequest,
    /// Anything else, permanent unless the status is 5xx.
    Other,
}

/// Classifies a service error by its code, falling back on the HTTP status.
/// Codes from the Secrets Manager API reference ("Errors" of each action) and the
/// common AWS errors.
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
        "ThrottlingException" | "Throttling" | "TooManyRequestsException" | "RequestLimitExceeded" => Kind::Throttled,
        "DecryptionFailure" | "EncryptionFailure" => Kind::KeyService,
        "InternalServiceError" | "InternalFailure" | "ServiceUnavailable" | "ServiceUnavailableException" => {
            Kind::Unavailable
        }
        "InvalidRequestException" => Kind::InvalidRequest,
        _ if status == 429 => Kind::Throttled,
        _ if status == 503 => Kind::Unavailable,
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
    pub(crate) status: Option<u16>,
    pub(crate) code: Option<String>,
    source: Box<dyn std::error::Error + Send + Sync>,
    transport: bool,
}

impl<E> From<SdkError<E, HttpResponse>> for AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn from(err: SdkError<E, HttpResponse>) -> Self {
        let code = err.code().map(str::to_string);
        let status = err.raw_response().map(|r| r.status().as_u16());
        let transport = matches!(err, SdkError::TimeoutError(_) | SdkError::DispatchFailure(_));
        let kind = match &err {
            SdkError::ServiceError(_) => classify(code.as_deref(), status.unwrap_or(0)),
            // The credential chain found nothing usable: no request went out.
            SdkError::DispatchFailure(_) if in_chain(&err, |e| e.is::<CredentialsError>()) => Kind::NoCredentials,
            // rustls reports certificate and protocol failures as io::ErrorKind::InvalidData.
            SdkError::DispatchFailure(_)
                if in_chain(&err, |e| {
                    e.downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData)
                }) =>
            {
                Kind::Tls
            }
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => Kind::Unavailable,
            SdkError::ResponseError(_) if status.is_some_and(|s| s >= 500) => Kind::Unavailable,
            _ => Kind::Other,
        };
        AwsError {
            kind,
            status,
            code,
            source: Box::new(err),
            transport,
        }
    }
}

/// Whether some error in `err`'s source chain satisfies `test`. Descends into the error
/// an `io::Error` wraps, which its `source()` skips.
fn in_chain(
    err: &(dyn std::error::Error + 'static),
    test: impl Fn(&(dyn std::error::Error + 'static)) -> bool,
) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if test(e) {
            return true;
        }
        next = match e.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}

impl AwsError {
    /// The [`StorageError`] for this error in `ctx`.
    pub(crate) fn into_storage(self, ctx: Context<'_>) -> StorageError {
        let id = ctx.id.cloned();
        let code = self.code.clone().unwrap_or_else(|| "unknown".into());
        match self.kind {
            Kind::NotFound => match id {
                Some(id) => StorageError::NotFound { provider: PROVIDER, id },
                None => self.backend(ctx, "the resource was not found".into()),
            },
            Kind::Denied => StorageError::PermissionDenied {
                provider: PROVIDER,
                operation: ctx.operation,
                id,
                required: format!(
                    "grant the IAM action {} on the secret (and kms:Decrypt / kms:GenerateDataKey on its KMS key when it uses a customer-managed key)",
                    ctx.action
                ),
            },
            Kind::Unauthenticated => StorageError::AuthenticationFailed {
                provider: PROVIDER,
                hint: format!(
                    "AWS rejected the request's credentials ({code}); check the credential chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, SSO login, role) and the clock"
                ),
            },
            Kind::NoCredentials => StorageError::AuthenticationFailed {
                provider: PROVIDER,
                hint: "no AWS credentials were found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, \
                       run `aws sso login`, or run where a role is attached"
                    .into(),
            },
            Kind::Tls => self.backend(
                ctx,
                "the TLS handshake with the endpoint failed: its certificate is not trusted (or it does not \
                 speak TLS); trust its CA in the system roots or fix endpoint_url — verification stays on"
                    .into(),
            ),
            Kind::Throttled => StorageError::Throttled {
                provider: PROVIDER,
                operation: ctx.operation,
                id,
                retry_after: None,
            },
            Kind::KeyService => match id {
                Some(id) => StorageError::Crypto(CryptoError::KeyService {
                    provider: PROVIDER,
                    id,
                    code,
                    required: "grant kms:Decrypt and kms:GenerateDataKey on the secret's KMS key and check that the key is enabled".into(),
                }),
                None => self.backend(ctx, "KMS could not process the secret".into()),
            },
            Kind::Unavailable => StorageError::Unavailable {
                provider: PROVIDER,
                operation: ctx.operation,
                id,
                source: Some(self.source),
            },
            Kind::Exists => match id {
                Some(id) => StorageError::Conflict {
                    provider: PROVIDER,
                    id,
                    reason: "a secret of that name was created concurrently; retry the store".into(),
                },
                None => self.backend(ctx, "the resource already exists".into()),
            },
            Kind::InvalidRequest => {
                self.backend(ctx, "the secret's state does not allow this (is it scheduled for deletion?)".into())
            }
            Kind::Other if self.transport => self.backend(ctx, "the request could not be sent".into()),
            Kind::Other => self.backend(ctx, format!("{} was refused", ctx.action)),
        }
    }

    fn backend(self, ctx: Context<'_>, message: String) -> StorageError {
        StorageError::Backend {
            provider: PROVIDER,
            operation: ctx.operation,
            id: ctx.id.cloned(),
            status: self.status,
            code: self.code,
            message,
            source: Some(self.source),
        }
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
            (None, 429, Kind::Throttled),
            (Some("DecryptionFailure"), 400, Kind::KeyService),
            (Some("EncryptionFailure"), 400, Kind::KeyService),
            (Some("InternalServiceError"), 500, Kind::Unavailable),
            (None, 503, Kind::Unavailable),
            (Some("InvalidRequestException"), 400, Kind::InvalidRequest),
            (Some("InvalidParameterException"), 400, Kind::Other),
            (Some("LimitExceededException"), 400, Kind::Other),
            (None, 500, Kind::Other),
        ];
        for (code, status, kind) in table {
            assert_eq!(classify(code, status), kind, "{code:?} {status}");
        }
    }
}
