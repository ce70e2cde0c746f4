//! The one table from Kubernetes API errors to [`StorageError`] kinds, by HTTP status and
//! `Status.reason` (API conventions, "Response Status Kind"), never by message text.
//! Retryability is decided here: 429, 500, 502, 503, 504, 410 (an expired `continue`
//! token, after `list` restarted once) and connection failures are transient; TLS
//! failures, other 4xx and everything else are not.

use std::time::Duration;

use kube::core::Status;
use nebula_credential_core::remote::{Failure, Verdict, is_rustls_failure, source_chain};
use nebula_credential_core::{BoxError, CredentialId, Operation, StorageError, ValidationError};

use crate::PROVIDER;

/// What an error means, whatever the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// 404 for the Secret.
    NotFound,
    /// 404 whose `details.kind` is `namespaces`: the namespace does not exist.
    NamespaceMissing,
    /// A create refused because the namespace is being deleted (403 with the cause
    /// `NamespaceTerminating`).
    NamespaceTerminating,
    /// 409 `AlreadyExists`: a create lost to an existing object.
    AlreadyExists,
    /// 409 `Conflict`: a stale `resourceVersion` or a failed precondition.
    Conflict,
    /// 401: the credentials are not accepted.
    Unauthenticated,
    /// The client could not obtain credentials (exec plugin, auth provider, token file).
    NoCredentials,
    /// 403: RBAC refuses the verb.
    Denied,
    /// 422 (`Invalid`) or 400 (`BadRequest`): the object breaks a validation rule.
    Invalid,
    /// 410 (`Gone` / `Expired`): a `continue` token expired.
    Gone,
    /// 413: the request body is over the server's limit.
    TooLarge,
    /// 429: slow down.
    Throttled,
    /// 500, 502, 503, 504, `ServerTimeout`, `Timeout`, and connection failures.
    Unavailable,
    /// The TLS handshake failed: an untrusted or mismatched certificate.
    Tls,
    /// Anything else: permanent.
    Other,
}

/// Classifies an API `Status` by its code, then its reason.
pub(crate) fn classify_status(code: u16, reason: &str, details_kind: &str) -> Kind {
    match (code, reason) {
        (401, _) | (_, "Unauthorized") => Kind::Unauthenticated,
        (403, _) | (_, "Forbidden") => Kind::Denied,
        (404, _) | (_, "NotFound") if details_kind == "namespaces" => Kind::NamespaceMissing,
        (404, _) | (_, "NotFound") => Kind::NotFound,
        (409, "AlreadyExists") | (_, "AlreadyExists") => Kind::AlreadyExists,
        (409, _) | (_, "Conflict") => Kind::Conflict,
        (410, _) | (_, "Gone" | "Expired") => Kind::Gone,
        (413, _) | (_, "RequestEntityTooLarge") => Kind::TooLarge,
        (422, _) | (400, _) | (_, "Invalid" | "BadRequest") => Kind::Invalid,
        (429, _) | (_, "TooManyRequests") => Kind::Throttled,
        (500 | 502 | 503 | 504, _) | (_, "InternalError" | "ServiceUnavailable" | "ServerTimeout" | "Timeout") => {
            Kind::Unavailable
        }
        _ => Kind::Other,
    }
}

/// Why a store gave up waiting: the Secret under its name is being deleted, and the
/// finalizers of other tools keep it until their controllers release it. The source of a
/// retryable `Unavailable`; names the finalizers, never data.
#[derive(Debug, Clone)]
pub(crate) struct BeingDeleted {
    /// e.g. `Secret payments/nebula-cred-api-key`.
    pub(crate) location: String,
    /// The finalizers holding it.
    pub(crate) finalizers: Vec<String>,
}

impl std::fmt::Display for BeingDeleted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is being deleted and held by the finalizers {:?}; a write into it would vanish with it, so the \
             store waited for it to go: retry once the controllers owning those finalizers release it (or remove \
             a finalizer whose controller is gone)",
            self.location, self.finalizers
        )
    }
}

impl std::error::Error for BeingDeleted {}

/// Why the client could not obtain credentials, told without the output of an exec plugin
/// or auth provider (which may hold a token): the source of an `AuthenticationFailed` in
/// place of kube's error, whose `Display` prints that output.
#[derive(Debug, Clone)]
pub(crate) struct CredentialsUnavailable(pub(crate) String);

impl std::fmt::Display for CredentialsUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CredentialsUnavailable {}

impl CredentialsUnavailable {
    /// What went wrong in `err`, naming no output, token or argument of a plugin.
    fn of(err: &kube::client::AuthError) -> Self {
        use kube::client::AuthError as A;
        let hidden = "its output is not shown: it may hold a credential";
        CredentialsUnavailable(match err {
            A::AuthExecRun { out, .. } => {
                format!("the kubeconfig user's exec plugin failed ({}; {hidden})", out.status)
            }
            A::AuthExecStart(e) => format!("the kubeconfig user's exec plugin could not be started ({})", e.kind()),
            A::AuthExecParse(_) => {
                format!("the kubeconfig user's exec plugin printed no valid ExecCredential ({hidden})")
            }
            A::ParseTokenKey(_) | A::AuthExec(_) => {
                format!("the kubeconfig user's auth-provider command failed or printed no token ({hidden})")
            }
            A::ReadTokenFile(e, path) => {
                format!(
                    "the token file {:?} cannot be read ({})",
                    path.display().to_string(),
                    e.kind()
                )
            }
            A::InvalidBasicAuth(_)
            | A::InvalidBearerToken(_)
            | A::UnrefreshableTokenResponse
            | A::ExecPluginFailed
            | A::MalformedTokenExpirationDate(_)
            | A::MissingCommand
            | A::ExecMissingClusterInfo
            | A::AuthExecSerialize(_) => err.to_string(),
            _ => "the kubeconfig user's auth provider failed".into(),
        })
    }
}

/// The first [`kube::client::AuthError`] in `err`'s source chain.
fn auth_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a kube::client::AuthError> {
    source_chain(err).find_map(|e| e.downcast_ref::<kube::client::AuthError>())
}

/// Where an error happened: the operation, the credential, the RBAC verb and namespace.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub(crate) operation: Operation,
    pub(crate) id: Option<&'a CredentialId>,
    /// e.g. `create`.
    pub(crate) verb: &'static str,
    pub(crate) namespace: &'a str,
}

/// A Kubernetes client error, classified, before it becomes a [`StorageError`].
#[derive(Debug)]
pub(crate) struct KubeError {
    pub(crate) kind: Kind,
    status: Option<Box<Status>>,
    source: BoxError,
}

impl From<kube::Error> for KubeError {
    fn from(err: kube::Error) -> Self {
        let auth = match &err {
            kube::Error::Auth(a) => Some(a),
            kube::Error::Service(e) => auth_error(e.as_ref()),
            _ => None,
        };
        if let Some(auth) = auth {
            return KubeError {
                kind: Kind::NoCredentials,
                status: None,
                source: Box::new(CredentialsUnavailable::of(auth)),
            };
        }
        let (kind, status) = match &err {
            kube::Error::Api(s) => {
                let details_kind = s.details.as_ref().map(|d| d.kind.as_str()).unwrap_or_default();
                let terminating = s
                    .details
                    .iter()
                    .flat_map(|d| d.causes.iter())
                    .any(|c| c.reason == "NamespaceTerminating");
                let kind = if terminating {
                    Kind::NamespaceTerminating
                } else {
                    classify_status(s.code, &s.reason, details_kind)
                };
                (kind, Some(s.clone()))
            }
            // kube keeps rustls's error in the chain; a bare InvalidData is a malformed body.
            kube::Error::Service(e) if is_rustls_failure(e.as_ref()) => (Kind::Tls, None),
            kube::Error::HyperError(e) if is_rustls_failure(e) => (Kind::Tls, None),
            kube::Error::Service(_) | kube::Error::HyperError(_) => (Kind::Unavailable, None),
            _ => (Kind::Other, None),
        };
        KubeError {
            kind,
            status,
            source: Box::new(err),
        }
    }
}

impl KubeError {
    /// The error it was made from (sanitised where kube's would show a credential).
    pub(crate) fn source(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.source.as_ref()
    }

    fn code(&self) -> Option<u16> {
        self.status.as_ref().map(|s| s.code)
    }

    fn reason(&self) -> Option<&str> {
        self.status
            .as_ref()
            .map(|s| s.reason.as_str())
            .filter(|r| !r.is_empty())
    }

    /// The `field (reason)` pairs of a validation failure, never the values.
    fn causes(&self) -> String {
        let causes: Vec<String> = self
            .status
            .iter()
            .flat_map(|s| s.details.iter())
            .flat_map(|d| d.causes.iter())
            .map(|c| format!("`{}` ({})", c.field, c.reason))
            .collect();
        if causes.is_empty() {
            "an unnamed field".into()
        } else {
            causes.join(", ")
        }
    }

    /// The [`StorageError`] of this error in `ctx`.
    pub(crate) fn into_storage(self, ctx: Context<'_>) -> StorageError {
        let Context {
            operation,
            id,
            verb,
            namespace,
        } = ctx;
        let verdict = match self.kind {
            Kind::NotFound => Verdict::NotFound {
                without_id: "the API server reports a missing resource; check the server URL and API path".into(),
            },
            Kind::NamespaceMissing => Verdict::backend(format!(
                "namespace `{namespace}` does not exist; create it (`kubectl create namespace {namespace}`) or set `namespace`"
            )),
            Kind::NamespaceTerminating => Verdict::backend(format!(
                "namespace `{namespace}` is being deleted, so nothing can be created in it and what it holds goes \
                 with it; set another `namespace`, or wait until it is gone and create it again"
            )),
            Kind::AlreadyExists | Kind::Conflict => Verdict::Conflict {
                hint: "another writer changed the Secret at the same time; read it again and retry".into(),
                without_id: "a concurrent change conflicted; retry".into(),
            },
            Kind::Unauthenticated => Verdict::AuthenticationFailed {
                hint:
                    "the API server did not accept the credentials (HTTP 401); renew the token or client certificate \
                       of the kubeconfig user or service account (see `kubeconfig_path` and `context`)"
                        .into(),
            },
            Kind::NoCredentials => Verdict::AuthenticationFailed {
                hint:
                    "the credentials of the kubeconfig user could not be obtained (see the source error); fix its exec \
                       plugin, auth provider or token file (see `kubeconfig_path` and `context`)"
                        .into(),
            },
            Kind::Denied => Verdict::PermissionDenied {
                required: format!(
                    "grant `{verb}` on `secrets` in namespace `{namespace}` to the identity of the kubeconfig or \
                     service account (a Role rule with apiGroups [\"\"], resources [\"secrets\"], verbs [\"{verb}\"])"
                ),
            },
            Kind::Invalid => Verdict::Final(StorageError::Invalid(ValidationError::InvalidArgument {
                what: "Secret",
                reason: format!(
                    "the API server refused {} of the Secret in namespace `{namespace}`; check the configured \
                     labels, annotations and prefix",
                    self.causes()
                ),
            })),
            // `list` restarts once on its own; a second expiry in a row is worth a retry.
            Kind::Gone | Kind::Unavailable => Verdict::Unavailable,
            Kind::TooLarge => {
                Verdict::backend("the API server refused the request body as too large; store a smaller secret")
            }
            Kind::Throttled => Verdict::Throttled {
                retry_after: self
                    .status
                    .as_ref()
                    .and_then(|s| s.details.as_ref())
                    .map(|d| d.retry_after_seconds)
                    .filter(|s| *s > 0)
                    .map(|s| Duration::from_secs(u64::from(s))),
            },
            Kind::Tls => Verdict::backend(
                "the TLS handshake with the API server failed (untrusted or mismatched certificate); set the \
                 cluster's `certificate-authority` or `certificate-authority-data` in the kubeconfig to the CA that \
                 signed the server certificate",
            ),
            Kind::Other => Verdict::backend("the Kubernetes API request failed; see the source error"),
        };
        let reason = self.reason().map(str::to_string);
        let at = Failure {
            provider: PROVIDER,
            operation,
            id,
            status: self.code(),
            code: reason.as_deref(),
        };
        verdict.into_storage(at, self.source)
    }
}

#[cfg(test)]
mod tests {
    use kube::core::response::{StatusCause, StatusDetails};
    use nebula_credential_core::ErrorKind;

    use super::*;

    fn api(code: u16, reason: &str, details: Option<StatusDetails>) -> KubeError {
        KubeError::from(kube::Error::Api(Box::new(Status {
            code,
            reason: reason.into(),
            message: "the message is never parsed nor shown".into(),
            details,
            ..Status::default()
        })))
    }

    fn details(kind: &str, causes: Vec<StatusCause>, retry_after_seconds: u32) -> StatusDetails {
        StatusDetails {
            name: "x".into(),
            group: String::new(),
            kind: kind.into(),
            uid: String::new(),
            causes,
            retry_after_seconds,
        }
    }

    fn ctx(id: &CredentialId) -> Context<'_> {
        Context {
            operation: Operation::Store,
            id: Some(id),
            verb: "create",
            namespace: "payments",
        }
    }

    #[test]
    fn table_by_status_and_reason() {
        for (code, reason, kind) in [
            (401, "Unauthorized", Kind::Unauthenticated),
            (403, "Forbidden", Kind::Denied),
            (404, "NotFound", Kind::NotFound),
            (409, "AlreadyExists", Kind::AlreadyExists),
            (409, "Conflict", Kind::Conflict),
            (410, "Expired", Kind::Gone),
            (413, "RequestEntityTooLarge", Kind::TooLarge),
            (422, "Invalid", Kind::Invalid),
            (400, "BadRequest", Kind::Invalid),
            (429, "TooManyRequests", Kind::Throttled),
            (500, "InternalError", Kind::Unavailable),
            (502, "", Kind::Unavailable),
            (503, "ServiceUnavailable", Kind::Unavailable),
            (504, "Timeout", Kind::Unavailable),
            (0, "ServerTimeout", Kind::Unavailable),
            (418, "", Kind::Other),
        ] {
            assert_eq!(classify_status(code, reason, "secrets"), kind, "{code} {reason}");
        }
        assert_eq!(classify_status(404, "NotFound", "namespaces"), Kind::NamespaceMissing);
    }

    #[test]
    fn each_kind_becomes_the_right_storage_error() {
        let id: CredentialId = "api_key".parse().unwrap();
        let e = api(403, "Forbidden", None).into_storage(ctx(&id));
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        let m = e.to_string();
        assert!(m.contains("grant `create` on `secrets` in namespace `payments`"), "{m}");
        assert!(!m.contains("never parsed"), "{m}");

        let e = api(401, "Unauthorized", None).into_storage(ctx(&id));
        assert_eq!(e.kind(), ErrorKind::AuthenticationFailed);
        assert!(!e.is_retryable());

        let ns = details("namespaces", vec![], 0);
        let e = api(404, "NotFound", Some(ns)).into_storage(ctx(&id));
        assert_eq!(e.kind(), ErrorKind::Backend);
        assert!(e.to_string().contains("namespace `payments` does not exist"), "{e}");
        assert!(api(404, "NotFound", None).into_storage(ctx(&id)).is_not_found());

        let cause = StatusCause {
            reason: "FieldValueInvalid".into(),
            message: "Invalid value: \"x\"".into(),
            field: "metadata.labels".into(),
        };
        let invalid = details("secrets", vec![cause], 0);
        let e = api(422, "Invalid", Some(invalid)).into_storage(ctx(&id));
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.to_string().contains("`metadata.labels` (FieldValueInvalid)"), "{e}");
        assert!(!e.to_string().contains("Invalid value"), "{e}");

        let throttled = details("secrets", vec![], 3);
        let e = api(429, "TooManyRequests", Some(throttled)).into_storage(ctx(&id));
        assert_eq!(e.kind(), ErrorKind::Throttled);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(e.is_retryable());
        for code in [500, 502, 503, 504] {
            let e = api(code, "", None).into_storage(ctx(&id));
            assert_eq!(e.kind(), ErrorKind::Unavailable, "{code}");
            assert!(e.is_retryable());
        }
        let terminating = StatusCause {
            reason: "NamespaceTerminating".into(),
            message: "namespace payments is being terminated".into(),
            field: "metadata.namespace".into(),
        };
        let e = api(403, "Forbidden", Some(details("secrets", vec![terminating], 0))).into_storage(ctx(&id));
        assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
        assert!(e.to_string().contains("namespace `payments` is being deleted"), "{e}");
        assert!(!e.is_retryable());
        let e = api(410, "Expired", None).into_storage(ctx(&id));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_retryable());
        let e = api(409, "Conflict", None).into_storage(ctx(&id));
        assert!(e.is_conflict() && !e.is_retryable());
        let e = api(418, "Teapot", None).into_storage(ctx(&id));
        assert_eq!(e.kind(), ErrorKind::Backend);
        assert!(e.to_string().contains("HTTP 418, Teapot"), "{e}");
    }

    #[test]
    fn tls_failures_are_found_through_io_errors_and_name_the_ca_setting() {
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let err = KubeError::from(kube::Error::Service(Box::new(tls)));
        assert_eq!(err.kind, Kind::Tls);
        let id: CredentialId = "k".parse().unwrap();
        let e = err.into_storage(ctx(&id));
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("certificate-authority-data"), "{e}");
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = KubeError::from(kube::Error::Service(Box::new(refused))).into_storage(ctx(&id));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_retryable());
    }

    /// kube hands a body that fails to read to us as `Service` (kube-client's `Body`), and
    /// hyper reports a malformed chunked body as an `InvalidData` I/O error ("invalid chunk
    /// size: overflow", "chunk extensions over limit"): not a handshake, so not `Tls` with
    /// a certificate hint, but a retryable `Unavailable`, as before the shared TLS rule.
    #[test]
    fn a_malformed_body_is_not_a_tls_failure() {
        let id: CredentialId = "k".parse().unwrap();
        for text in ["invalid chunk size: overflow", "chunk extensions over limit"] {
            let body = std::io::Error::new(std::io::ErrorKind::InvalidData, text);
            let err = KubeError::from(kube::Error::Service(Box::new(body)));
            assert_eq!(err.kind, Kind::Unavailable, "{text}");
            let e = err.into_storage(ctx(&id));
            assert!(
                e.is_retryable() && !e.to_string().contains("certificate-authority-data"),
                "{e}"
            );
        }
    }
}
