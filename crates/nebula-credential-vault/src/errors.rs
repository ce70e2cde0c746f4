//! The one table from Vault errors to [`StorageError`] kinds, by HTTP status and vaultrs
//! error variant — never by message text. Retryability is decided here: transient
//! failures become `Unavailable` or `Throttled`, everything else a non-retryable kind.
//!
//! | Vault answer | vaultrs error | kind |
//! |---|---|---|
//! | 400 on a write with `cas` | `APIError { code: 400 }` | `Conflict` (check-and-set mismatch) |
//! | 400 otherwise | `APIError { code: 400 }` | `Backend` |
//! | 401 | `APIError` | `AuthenticationFailed` |
//! | 403, `lookup-self` works | `APIError { code: 403 }` | `PermissionDenied` naming path and capability |
//! | 403, `lookup-self` refused too | `APIError { code: 403 }` | `AuthenticationFailed` (AppRole logs in again once first) |
//! | 404 with `{"errors":[]}` on a read | `APIError` or `RestClientError(ServerResponseError)` | `NotFound` (`list`: empty) |
//! | 404 with a non-empty `errors` list (no handler for the route, no such namespace) | `APIError` | `Config` naming `mount_path` / `namespace` |
//! | 404 on a write | either form | `Backend` naming `mount_path` and `namespace` (no KV v2 engine there) |
//! | 3xx (never followed: the token would go along) | `ServerResponseError` | `Backend` saying to set `endpoint` to a node that answers itself |
//! | 412 (performance standby not caught up) | either form | `Unavailable` (retryable) |
//! | 429 | either form | `Throttled` (retryable) |
//! | 500, 502, 503 (sealed, standby), 504 | either form | `Unavailable` (retryable) |
//! | connection refused, reset, timed out | `RestClientError(RequestError)` | `Unavailable` (retryable) |
//! | TLS handshake failure | `RestClientError(RequestError)` | `Backend`, not retryable, naming `ca_cert` |
//! | unparsable answer | `JsonParseError`, `ResponseParseError`, … | `Backend` |
//!
//! The source kept on every error is [`VaultSource`]: the status and Vault's `errors`
//! list, or the transport failure — never the answer's body, which vaultrs keeps in its
//! errors and which holds a token for a login or `lookup-self`.

use nebula_credential_core::remote::{Failure, Verdict, is_tls_failure};
use nebula_credential_core::{BoxError, ConfigError, CredentialId, Operation, StorageError};
use vaultrs::error::ClientError;

use crate::PROVIDER;

/// What a Vault error means, whatever the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// 404: no such path or version (also a soft-deleted or destroyed latest version).
    NotFound,
    /// 400: a malformed request, or a `cas` mismatch on a write that sent one.
    BadRequest,
    /// 403 from a policy (the token itself works).
    Denied,
    /// 401, or 403 for a token Vault no longer accepts.
    Unauthenticated,
    /// 429.
    Throttled,
    /// 412, 5xx, or no answer at all.
    Unavailable,
    /// The TLS handshake failed: an untrusted certificate or a wrong host name.
    Tls,
    /// A 3xx answer: the provider never follows redirects (the token would go along).
    Redirect,
    /// Anything else: permanent.
    Other,
}

/// Classifies an HTTP status from Vault's API.
///
/// From Vault's "HTTP status codes" reference: 400 invalid request, 403 forbidden
/// (permission denied or bad token), 404 invalid path, 405 unsupported operation,
/// 412 precondition failed (eventual consistency on performance standbys), 429 rate
/// limit (or a standby's default), 473 performance standby, 500 internal error,
/// 502 upstream error, 503 sealed or in maintenance.
pub(crate) fn classify(status: u16) -> Kind {
    match status {
        404 => Kind::NotFound,
        400 => Kind::BadRequest,
        401 => Kind::Unauthenticated,
        403 => Kind::Denied,
        429 => Kind::Throttled,
        412 | 473 | 500 | 502 | 503 | 504 => Kind::Unavailable,
        300..=399 => Kind::Redirect,
        _ => Kind::Other,
    }
}

/// A vaultrs error, classified, before it becomes a [`StorageError`].
#[derive(Debug)]
pub(crate) struct VaultError {
    pub(crate) kind: Kind,
    pub(crate) status: Option<u16>,
    /// A 404 whose body lists errors (`{"errors":["no handler for route …"]}` or
    /// `["namespace not found"]`): no engine or namespace answers at the path. A missing
    /// key or an empty folder answers `{"errors":[]}`. Told apart by the structure of the
    /// body (an empty list or not), never by its text.
    pub(crate) route_missing: bool,
    source: BoxError,
}

/// The source kept from a vaultrs error: the status and Vault's `errors` list, or the
/// transport failure. vaultrs keeps the raw response body in its errors, and a login or
/// `lookup-self` answer holds a token: that body never reaches `Debug`, `Display` or logs.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VaultSource {
    /// Vault answered with an error status.
    #[error("Vault answered HTTP {status} (errors: {errors:?})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// Vault's `errors` list (empty when the body held none).
        errors: Vec<String>,
    },
    /// No answer: the connection, TLS or the network failed.
    #[error("no answer from Vault")]
    Transport(#[source] BoxError),
    /// An answer that could not be understood (its body is left out on purpose).
    #[error("{0} (the answer's body is left out: it may hold a token)")]
    Unparsable(&'static str),
}

impl From<ClientError> for VaultError {
    fn from(err: ClientError) -> Self {
        use rustify::errors::ClientError as Rest;
        let network = network_kind(&err);
        let (kind, status, route_missing, source) = match err {
            ClientError::APIError { code, errors } => (
                classify(code),
                Some(code),
                code == 404 && !errors.is_empty(),
                VaultSource::Api { status: code, errors },
            ),
            ClientError::RestClientError { source } => match source {
                Rest::ServerResponseError { code, .. } => (
                    classify(code),
                    Some(code),
                    false,
                    VaultSource::Api {
                        status: code,
                        errors: Vec::new(),
                    },
                ),
                Rest::RequestError { source, .. } | Rest::ResponseError { source } => {
                    (network, None, false, VaultSource::Transport(source.into()))
                }
                Rest::ResponseParseError { .. } | Rest::ResponseConversionError { .. } => (
                    Kind::Other,
                    None,
                    false,
                    VaultSource::Unparsable("cannot parse Vault's answer"),
                ),
                _ => (
                    Kind::Other,
                    None,
                    false,
                    VaultSource::Unparsable("the request to Vault could not be made"),
                ),
            },
            ClientError::JsonParseError { .. } => (
                Kind::Other,
                None,
                false,
                VaultSource::Unparsable("cannot parse Vault's answer as JSON"),
            ),
            ClientError::ResponseEmptyError | ClientError::ResponseDataEmptyError => (
                Kind::Other,
                None,
                false,
                VaultSource::Unparsable("Vault's answer held no data"),
            ),
            _ => (
                Kind::Other,
                None,
                false,
                VaultSource::Unparsable("the Vault client failed"),
            ),
        };
        VaultError {
            kind,
            status,
            route_missing,
            source: Box::new(source),
        }
    }
}

impl VaultError {
    /// An error of a request made without vaultrs (see `Session::get_json`).
    pub(crate) fn api(status: u16, errors: Vec<String>) -> Self {
        VaultError {
            kind: classify(status),
            status: Some(status),
            route_missing: status == 404 && !errors.is_empty(),
            source: Box::new(VaultSource::Api { status, errors }),
        }
    }

    /// An error known by its kind and status alone (a login failure held for callers
    /// queued behind it).
    pub(crate) fn bare(kind: Kind, status: Option<u16>) -> Self {
        let source = match status {
            Some(status) => VaultSource::Api {
                status,
                errors: Vec::new(),
            },
            None => VaultSource::Unparsable("no usable answer from Vault"),
        };
        VaultError {
            kind,
            status,
            route_missing: false,
            source: Box::new(source),
        }
    }

    /// A transport failure of a request made without vaultrs.
    pub(crate) fn transport(err: reqwest::Error) -> Self {
        let kind = network_kind(&err);
        VaultError {
            kind,
            status: None,
            route_missing: false,
            source: Box::new(VaultSource::Transport(Box::new(err))),
        }
    }
}

/// A request that got no answer: TLS or the network.
fn network_kind(err: &(dyn std::error::Error + 'static)) -> Kind {
    if is_tls_failure(err) {
        Kind::Tls
    } else {
        Kind::Unavailable
    }
}

/// Where an error happened: the operation, the credential, the Vault API path called and
/// the policy capability it needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub(crate) operation: Operation,
    pub(crate) id: Option<&'a CredentialId>,
    /// e.g. `secret/data/nebula/credentials/api_key`.
    pub(crate) path: &'a str,
    /// e.g. `read`, `create`/`update`, `delete`, `list`.
    pub(crate) capability: &'static str,
}

/// The hint of every `AuthenticationFailed`.
pub(crate) const TOKEN_REJECTED: &str = "Vault rejected the token (auth/token/lookup-self is refused too): it is \
     invalid, expired or revoked, or lacks the `default` policy; supply a new token (auth.token / VAULT_TOKEN), or use \
     AppRole auth, with which the provider logs in again by itself";

impl VaultError {
    /// Marks a 403 as caused by the token itself (checked with `lookup-self`).
    pub(crate) fn unauthenticated(mut self) -> Self {
        self.kind = Kind::Unauthenticated;
        self
    }

    /// The [`StorageError`] for this error in `ctx`. vaultrs's error stays as the source;
    /// our message never repeats Vault's text.
    pub(crate) fn into_storage(self, ctx: Context<'_>) -> StorageError {
        let Context {
            operation,
            id,
            path,
            capability,
        } = ctx;
        let verdict = match self.kind {
            // Only a read can miss the credential; a 404 on a write or a list means the
            // mount (or namespace) is missing.
            Kind::NotFound if self.route_missing => Verdict::Final(StorageError::Config(ConfigError::new(
                PROVIDER,
                "mount_path",
                format!(
                    "no KV v2 engine answers at {path} (Vault: no handler for the route, or no such namespace): \
                     check mount_path and namespace"
                ),
            ))),
            Kind::NotFound if id.is_some() && matches!(operation, Operation::Retrieve | Operation::Exists) => {
                Verdict::NotFound {
                    without_id: String::new(),
                }
            }
            Kind::NotFound => Verdict::backend(format!(
                "{path} was not found: no KV v2 engine answers there; check mount_path, namespace and that the \
                 mount is KV version 2"
            )),
            Kind::Denied => Verdict::PermissionDenied {
                required: format!(
                    "the token's policies lack the `{capability}` capability on {path}; add \
                     `path \"{path}\" {{ capabilities = [\"{capability}\"] }}` to one of its policies"
                ),
            },
            Kind::Unauthenticated => Verdict::AuthenticationFailed {
                hint: TOKEN_REJECTED.into(),
            },
            Kind::Throttled => Verdict::Throttled { retry_after: None },
            Kind::Unavailable => Verdict::Unavailable,
            Kind::Tls => Verdict::backend(
                "the TLS handshake with Vault failed: its certificate is not trusted or does not name the host; set \
                 ca_cert to the CA that signed it (or VAULT_CACERT with from_env) — verification cannot be turned off",
            ),
            Kind::Redirect => Verdict::backend(
                "Vault answered with a redirect, which the provider never follows (the token would be sent along); \
                 set endpoint to a node that answers itself (the active node or your load balancer)",
            ),
            Kind::BadRequest => Verdict::backend(format!("Vault refused the request to {path} as invalid")),
            Kind::Other => Verdict::backend(format!("the request to {path} failed")),
        };
        let at = Failure {
            provider: PROVIDER,
            operation,
            id,
            status: self.status,
            code: None,
        };
        verdict.into_storage(at, self.source)
    }

    /// vaultrs's error.
    pub(crate) fn into_source(self) -> BoxError {
        self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> ClientError {
        ClientError::APIError {
            code,
            errors: vec!["permission denied".into()],
        }
    }

    fn server(code: u16) -> ClientError {
        ClientError::RestClientError {
            source: rustify::errors::ClientError::ServerResponseError { code, content: None },
        }
    }

    #[test]
    fn status_table() {
        let table = [
            (400, Kind::BadRequest),
            (401, Kind::Unauthenticated),
            (403, Kind::Denied),
            (404, Kind::NotFound),
            (405, Kind::Other),
            (412, Kind::Unavailable),
            (429, Kind::Throttled),
            (473, Kind::Unavailable),
            (500, Kind::Unavailable),
            (502, Kind::Unavailable),
            (503, Kind::Unavailable),
            (504, Kind::Unavailable),
            (418, Kind::Other),
        ];
        for (status, kind) in table {
            assert_eq!(classify(status), kind, "{status}");
            assert_eq!(VaultError::from(api(status)).kind, kind, "APIError {status}");
            assert_eq!(
                VaultError::from(server(status)).kind,
                kind,
                "ServerResponseError {status}"
            );
        }
        assert_eq!(VaultError::from(ClientError::ResponseDataEmptyError).kind, Kind::Other);
    }

    fn ctx<'a>(id: Option<&'a CredentialId>) -> Context<'a> {
        Context {
            operation: Operation::Store,
            id,
            path: "secret/data/nebula/credentials/api",
            capability: "update",
        }
    }

    #[test]
    fn storage_errors() {
        let id: CredentialId = "api".parse().unwrap();
        let e = VaultError::from(server(404)).into_storage(Context {
            operation: Operation::Retrieve,
            ..ctx(Some(&id))
        });
        assert!(matches!(e, StorageError::NotFound { .. }));
        // A write meeting a 404 found no engine: the mount or namespace is missing.
        let e = VaultError::from(ClientError::APIError {
            code: 404,
            errors: Vec::new(),
        })
        .into_storage(ctx(Some(&id)));
        assert!(matches!(e, StorageError::Backend { .. }), "{e:?}");
        assert!(e.to_string().contains("mount_path"), "{e}");
        let e = VaultError::from(api(403)).into_storage(ctx(Some(&id)));
        assert!(matches!(e, StorageError::PermissionDenied { .. }), "{e:?}");
        let m = e.to_string();
        assert!(
            m.contains("`update`") && m.contains("secret/data/nebula/credentials/api"),
            "{m}"
        );
        let e = VaultError::from(api(403))
            .unauthenticated()
            .into_storage(ctx(Some(&id)));
        assert!(matches!(e, StorageError::AuthenticationFailed { .. }), "{e:?}");
        for (status, retryable) in [
            (412, true),
            (429, true),
            (500, true),
            (503, true),
            (400, false),
            (405, false),
        ] {
            let e = VaultError::from(api(status)).into_storage(ctx(Some(&id)));
            assert_eq!(e.is_retryable(), retryable, "{status}: {e}");
        }
        let e = VaultError::from(api(400)).into_storage(ctx(None));
        assert!(e.to_string().contains("HTTP 400"), "{e}");
    }

    #[test]
    fn a_404_with_errors_is_a_missing_route_and_bodies_never_show() {
        assert!(
            !VaultError::from(ClientError::APIError {
                code: 404,
                errors: vec![]
            })
            .route_missing
        );
        let missing = VaultError::from(ClientError::APIError {
            code: 404,
            errors: vec!["no handler for route".into()],
        });
        assert!(missing.route_missing);
        let e = missing.into_storage(ctx(None));
        assert!(
            matches!(&e, StorageError::Config(c) if c.field() == "mount_path"),
            "{e:?}"
        );
        let body = "{\"auth\":{\"client_token\":\"s.TOPSECRETTOKEN\"}}".to_string();
        for err in [
            ClientError::RestClientError {
                source: rustify::errors::ClientError::ServerResponseError {
                    code: 500,
                    content: Some(body.clone()),
                },
            },
            ClientError::RestClientError {
                source: rustify::errors::ClientError::ResponseParseError {
                    source: anyhow::anyhow!("missing field"),
                    content: Some(body.clone()),
                },
            },
        ] {
            let e = VaultError::from(err).into_storage(ctx(None));
            let shown = format!("{e:?} {e}");
            assert!(!shown.contains("TOPSECRET"), "{shown}");
        }
    }

    #[test]
    fn redirects_are_named() {
        let e = VaultError::from(server(307)).into_storage(ctx(None));
        assert!(!e.is_retryable() && e.to_string().contains("redirect"), "{e}");
    }

    #[test]
    fn network_failures() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(network_kind(&refused), Kind::Unavailable);
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert_eq!(network_kind(&tls), Kind::Tls);
        let e = VaultError {
            kind: Kind::Tls,
            status: None,
            route_missing: false,
            source: Box::new(tls),
        }
        .into_storage(ctx(None));
        assert!(!e.is_retryable() && e.to_string().contains("ca_cert"), "{e}");
    }
}
