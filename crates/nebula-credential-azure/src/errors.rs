//! The one table from Key Vault errors to [`StorageError`] kinds, by HTTP status and error
//! code (outer and inner), never by message text. Retryability is decided here and nowhere
//! else.
//!
//! The codes are read from the response body (`{"error":{"code","innererror":{"code"}}}`)
//! as well as from what azure_core reports: azure_core 1.1 fails to parse bodies whose
//! message holds escapes (the service's RBAC denial spans lines) and then reports the
//! status ("403") as the error code, so the inner `ForbiddenByRbac` is only in the body.

use std::time::Duration;

use azure_core::error::ErrorKind as AzKind;
use azure_core::http::RawResponse;
use nebula_credential_core::remote::{Failure, Verdict, is_tls_failure, source_chain};
use nebula_credential_core::{BoxError, ConfigError, CredentialId, Operation, StorageError};

use crate::PROVIDER;
use crate::challenge::ChallengeMismatch;
use crate::entra::EntraStatus;

/// What an error means, whatever the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// 404: no such (deleted) secret.
    NotFound,
    /// 401: the token was not accepted.
    Unauthenticated,
    /// The credential could not get a token.
    NoToken,
    /// 403 (`ForbiddenByRbac`, access policies): the identity lacks the data action.
    Denied,
    /// 403 `SecretDisabled`: the current version is disabled.
    Disabled,
    /// 403 `ForbiddenByFirewall` / `ForbiddenByConnection`: the vault's network rules
    /// (firewall, private link) refused the client's network, whatever its role.
    Network,
    /// 3xx: a redirect, never followed (the request carries a bearer token).
    Redirect,
    /// The vault's authentication challenge names a resource that is not a parent of the
    /// vault's host (see [`crate::challenge`]): no token was sent.
    ChallengeMismatch,
    /// 409 `ObjectIsDeletedButRecoverable`: soft-deleted, the name is taken until recovered or purged.
    DeletedRecoverable,
    /// 409 `ObjectIsBeingDeleted`: a delete or purge is still in progress.
    BeingDeleted,
    /// 409 `ObjectIsBeingRecovered`: a recover is still in progress.
    BeingRecovered,
    /// 429.
    Throttled,
    /// 408, 5xx, connection failures: transient.
    Unavailable,
    /// The TLS handshake failed (untrusted certificate): permanent.
    Tls,
    /// Anything else (400 `BadParameter`, other 409s, …): permanent.
    Other,
}

/// Classifies by status and the codes found (outer, inner), per the Key Vault REST
/// reference ("Azure Key Vault error codes", "throttling guidance") and recorded traffic.
pub(crate) fn classify(status: u16, codes: &[&str]) -> Kind {
    let has = |c: &str| codes.iter().any(|x| x.eq_ignore_ascii_case(c));
    if has("ObjectIsDeletedButRecoverable") {
        return Kind::DeletedRecoverable;
    }
    if has("ObjectIsBeingDeleted") {
        return Kind::BeingDeleted;
    }
    if has("ObjectIsBeingRecovered") {
        return Kind::BeingRecovered;
    }
    match status {
        300..=399 => Kind::Redirect,
        401 => Kind::Unauthenticated,
        403 if has("SecretDisabled") => Kind::Disabled,
        403 if has("ForbiddenByFirewall") || has("ForbiddenByConnection") => Kind::Network,
        403 => Kind::Denied,
        404 => Kind::NotFound,
        408 => Kind::Unavailable,
        429 => Kind::Throttled,
        500..=599 => Kind::Unavailable,
        _ => Kind::Other,
    }
}

/// What the failed call needed, for naming the role to grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// get, list, list versions, get deleted.
    Read,
    /// set, delete, recover.
    Write,
    /// purge.
    Purge,
}

/// Where an error happened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub(crate) operation: Operation,
    pub(crate) id: Option<&'a CredentialId>,
    pub(crate) access: Access,
    /// The Key Vault data action, e.g. `Microsoft.KeyVault/vaults/secrets/getSecret/action`.
    pub(crate) action: &'static str,
    /// The credential in use, e.g. `service principal 0000… in tenant …`.
    pub(crate) credential: &'a str,
}

/// A Key Vault error, classified, before it becomes a [`StorageError`].
#[derive(Debug)]
pub(crate) struct AzError {
    pub(crate) kind: Kind,
    pub(crate) status: Option<u16>,
    pub(crate) code: Option<String>,
    retry_after: Option<Duration>,
    source: BoxError,
}

impl From<azure_core::Error> for AzError {
    fn from(err: azure_core::Error) -> Self {
        let (kind, status, code, retry_after) = if source_chain(&err).any(|e| e.is::<ChallengeMismatch>()) {
            (Kind::ChallengeMismatch, None, None, None)
        } else {
            match err.kind() {
                AzKind::HttpResponse {
                    status,
                    error_code,
                    raw_response,
                } => {
                    let status = u16::from(*status);
                    let (outer, inner) = raw_response.as_ref().map(|r| body_codes(r.body())).unwrap_or_default();
                    let header = raw_response
                        .as_ref()
                        .and_then(|r| r.headers().get_optional_str(&"x-ms-error-code".into()))
                        .map(str::to_string);
                    let codes: Vec<&str> = [&header, error_code, &outer, &inner]
                        .into_iter()
                        .flatten()
                        .map(String::as_str)
                        .collect();
                    let kind = classify(status, &codes);
                    let retry_after = raw_response.as_deref().and_then(retry_after);
                    // The most specific code: inner, else outer, else what azure_core saw.
                    let code = inner.or(outer).or(header).or_else(|| error_code.clone());
                    (kind, Some(status), code, retry_after)
                }
                AzKind::Connection | AzKind::Io => {
                    let kind = if is_tls_failure(&err) {
                        Kind::Tls
                    } else {
                        Kind::Unavailable
                    };
                    (kind, None, None, None)
                }
                AzKind::Credential => token_failure(&err),
                _ => (Kind::Other, None, None, None),
            }
        };
        AzError {
            kind,
            status,
            code,
            retry_after,
            source: Box::new(err),
        }
    }
}

/// The wait a throttled response asks for: `retry-after-ms`, `x-ms-retry-after-ms`, else
/// `Retry-After` in seconds.
fn retry_after(response: &RawResponse) -> Option<Duration> {
    let h = response.headers();
    h.get_optional_str(&"retry-after-ms".into())
        .or_else(|| h.get_optional_str(&"x-ms-retry-after-ms".into()))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .or_else(|| {
            h.get_optional_str(&"retry-after".into())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
        })
}

/// A credential that could not get a token, by what it wraps (azure_identity reports every
/// failure as `ErrorKind::Credential`): Entra ID (or the managed identity endpoint)
/// unreachable, timing out or answering 408/5xx is `Unavailable`, 429 `Throttled`, both
/// retryable; anything else (a refused secret, a missing variable) stays `NoToken`.
fn token_failure(err: &azure_core::Error) -> (Kind, Option<u16>, Option<String>, Option<Duration>) {
    if let Some(s) = source_chain(err).find_map(|e| e.downcast_ref::<EntraStatus>()) {
        let kind = if s.status == 429 {
            Kind::Throttled
        } else {
            Kind::Unavailable
        };
        return (kind, Some(s.status), None, s.retry_after);
    }
    for e in source_chain(err).skip(1) {
        if let Some(inner) = e.downcast_ref::<azure_core::Error>() {
            match inner.kind() {
                AzKind::HttpResponse {
                    status, raw_response, ..
                } => {
                    let status = u16::from(*status);
                    let kind = match status {
                        429 => Kind::Throttled,
                        408 | 500..=599 => Kind::Unavailable,
                        _ => continue,
                    };
                    return (kind, Some(status), None, raw_response.as_deref().and_then(retry_after));
                }
                AzKind::Connection | AzKind::Io => {
                    let kind = if is_tls_failure(inner) {
                        Kind::Tls
                    } else {
                        Kind::Unavailable
                    };
                    return (kind, None, None, None);
                }
                _ => {}
            }
        } else if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as Io;
            if matches!(
                io.kind(),
                Io::ConnectionRefused
                    | Io::ConnectionReset
                    | Io::ConnectionAborted
                    | Io::TimedOut
                    | Io::HostUnreachable
            ) {
                return (Kind::Unavailable, None, None, None);
            }
        }
    }
    (Kind::NoToken, None, None, None)
}

/// `error.code` and `error.innererror.code` of a Key Vault error body.
fn body_codes(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None);
    };
    let code = |v: &serde_json::Value| v.get("code").and_then(|c| c.as_str()).map(str::to_string);
    let error = &v["error"];
    (code(error), error.get("innererror").and_then(code))
}

/// The built-in role to grant for `access`.
pub(crate) fn role(access: Access) -> &'static str {
    match access {
        Access::Read => "Key Vault Secrets User",
        Access::Write => "Key Vault Secrets Officer",
        Access::Purge => "Key Vault Secrets Officer (whose secrets/* data actions include purge)",
    }
}

impl AzError {
    /// The underlying azure_core error, for a `StorageError` that keeps it as its source.
    pub(crate) fn into_source(self) -> BoxError {
        self.source
    }

    /// The [`StorageError`] for this error in `ctx`. The azure_core error stays as the source;
    /// our message never repeats the service's text.
    pub(crate) fn into_storage(self, ctx: Context<'_>) -> StorageError {
        let Context {
            operation,
            id,
            access,
            action,
            credential,
        } = ctx;
        let verdict = match self.kind {
            Kind::NotFound => Verdict::NotFound {
                without_id: "the vault answered 404; check endpoint".into(),
            },
            Kind::Unauthenticated => Verdict::AuthenticationFailed {
                hint: format!(
                    "Key Vault did not accept the token of {credential} (HTTP 401); check that the identity \
                     exists in the vault's tenant and that endpoint names the right vault"
                ),
            },
            Kind::NoToken => Verdict::AuthenticationFailed {
                hint: format!(
                    "{credential} could not get a token for Key Vault; check its settings (AZURE_TENANT_ID, \
                     AZURE_CLIENT_ID, the client secret, the federated token file, `az login`) and that \
                     Entra ID is reachable"
                ),
            },
            Kind::Denied => Verdict::PermissionDenied {
                required: format!(
                    "assign {credential} the role `{}` on the vault (or grant the data action {action}; \
                     with access policies, the matching secret permission)",
                    role(access)
                ),
            },
            Kind::Network => Verdict::PermissionDenied {
                required: format!(
                    "the vault's network rules refused this client's network ({}), whatever the role of \
                     {credential}: add the client's public IP or virtual network to the vault's firewall, or \
                     reach the vault through its private endpoint (endpoint stays https://NAME.vault.azure.net, \
                     resolved to the private IP by the privatelink.vaultcore.azure.net DNS zone)",
                    self.code.as_deref().unwrap_or("ForbiddenByFirewall")
                ),
            },
            Kind::Redirect => Verdict::backend(
                "the vault answered with a redirect, which is never followed (the request carries a bearer \
                 token); check endpoint and any proxy between this client and the vault",
            ),
            Kind::ChallengeMismatch => {
                let detail = source_chain(&*self.source)
                    .find_map(|e| e.downcast_ref::<ChallengeMismatch>())
                    .map_or_else(
                        || "the vault's authentication challenge names another resource".into(),
                        |m| m.to_string(),
                    );
                Verdict::Final(StorageError::Config(ConfigError::new(
                    PROVIDER,
                    "endpoint",
                    format!(
                        "is not covered by the vault's authentication challenge: {detail}. allow_custom_host serves \
                         emulators whose challenge names their own host; for a private endpoint keep endpoint = \
                         \"https://NAME.vault.azure.net\" and resolve that name to the private IP \
                         (privatelink.vaultcore.azure.net DNS zone)"
                    ),
                )))
            }
            Kind::Disabled => Verdict::backend(
                "the secret's current version is disabled; enable it (az keyvault secret set-attributes \
                 --enabled true) or store the credential again",
            ),
            Kind::DeletedRecoverable => {
                Verdict::backend("the secret is soft-deleted; recover or purge it, or store the credential again")
            }
            Kind::BeingDeleted | Kind::BeingRecovered | Kind::Unavailable => Verdict::Unavailable,
            Kind::Throttled => Verdict::Throttled {
                retry_after: self.retry_after,
            },
            Kind::Tls => Verdict::backend(
                "the TLS handshake with the vault failed: its certificate is not trusted; set ca_cert to \
                 the PEM of a private CA (verification stays on) or fix endpoint",
            ),
            Kind::Other => Verdict::backend(format!("{action} was refused")),
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
}

#[cfg(test)]
mod tests {
    use nebula_credential_core::ErrorKind;

    use super::*;

    #[test]
    fn classification_table() {
        let table: &[(u16, &[&str], Kind)] = &[
            (401, &["Unauthorized"], Kind::Unauthenticated),
            (401, &[], Kind::Unauthenticated),
            (403, &["403", "Forbidden", "ForbiddenByRbac"], Kind::Denied),
            (403, &["Forbidden", "AccessDenied"], Kind::Denied),
            (403, &["Forbidden", "SecretDisabled"], Kind::Disabled),
            (403, &["Forbidden", "ForbiddenByFirewall"], Kind::Network),
            (403, &["403", "Forbidden", "ForbiddenByConnection"], Kind::Network),
            (301, &[], Kind::Redirect),
            (307, &[], Kind::Redirect),
            (404, &["SecretNotFound"], Kind::NotFound),
            (404, &["DeletedSecretNotFound"], Kind::NotFound),
            (
                409,
                &["Conflict", "ObjectIsDeletedButRecoverable"],
                Kind::DeletedRecoverable,
            ),
            (409, &["Conflict", "ObjectIsBeingDeleted"], Kind::BeingDeleted),
            (409, &["Conflict", "ObjectIsBeingRecovered"], Kind::BeingRecovered),
            (409, &["Conflict"], Kind::Other),
            (429, &["Throttled"], Kind::Throttled),
            (408, &[], Kind::Unavailable),
            (500, &["InternalServerError"], Kind::Unavailable),
            (502, &[], Kind::Unavailable),
            (503, &["ServiceUnavailable"], Kind::Unavailable),
            (504, &[], Kind::Unavailable),
            (400, &["BadParameter"], Kind::Other),
            (405, &[], Kind::Other),
        ];
        for (status, codes, kind) in table {
            assert_eq!(classify(*status, codes), *kind, "{status} {codes:?}");
        }
    }

    #[test]
    fn inner_codes_come_from_the_body() {
        let body = br#"{"error":{"code":"Forbidden","message":"Caller is not authorized.\r\nAction: x","innererror":{"code":"ForbiddenByRbac"}}}"#;
        assert_eq!(
            body_codes(body),
            (Some("Forbidden".into()), Some("ForbiddenByRbac".into()))
        );
        assert_eq!(body_codes(b"not json"), (None, None));
    }

    /// An azure_core HTTP error as the SDK builds it from a response.
    fn http(status: u16, sdk_code: Option<&str>, headers: &[(&'static str, &str)], body: &str) -> AzError {
        use azure_core::http::headers::Headers;
        use azure_core::http::{RawResponse, StatusCode};
        let mut h = Headers::new();
        for (k, v) in headers {
            h.insert(*k, v.to_string());
        }
        let raw = RawResponse::from_bytes(StatusCode::from(status), h, body.as_bytes().to_vec());
        AzError::from(
            AzKind::HttpResponse {
                status: StatusCode::from(status),
                error_code: sdk_code.map(str::to_string),
                raw_response: Some(Box::new(raw)),
            }
            .into_error(),
        )
    }

    /// What azure_core 1.1 reports for the service's RBAC denial (error_code "403": it
    /// cannot parse the multi-line message), a throttle with its waits, a soft-deleted
    /// name, and a connection failure.
    #[test]
    fn azure_core_errors_are_classified_from_status_body_and_headers() {
        let rbac = r#"{"error":{"code":"Forbidden","message":"Caller is not authorized.\r\nAction: 'Microsoft.KeyVault/vaults/secrets/setSecret/action'","innererror":{"code":"ForbiddenByRbac"}}}"#;
        let e = http(403, Some("403"), &[], rbac);
        assert_eq!((e.kind, e.code.as_deref()), (Kind::Denied, Some("ForbiddenByRbac")));
        let disabled = r#"{"error":{"code":"Forbidden","message":"x","innererror":{"code":"SecretDisabled"}}}"#;
        assert_eq!(http(403, Some("Forbidden"), &[], disabled).kind, Kind::Disabled);
        let deleted =
            r#"{"error":{"code":"Conflict","message":"x","innererror":{"code":"ObjectIsDeletedButRecoverable"}}}"#;
        assert_eq!(http(409, Some("Conflict"), &[], deleted).kind, Kind::DeletedRecoverable);
        let header_only = http(409, None, &[("x-ms-error-code", "ObjectIsBeingDeleted")], "");
        assert_eq!(header_only.kind, Kind::BeingDeleted);
        let throttled = http(429, Some("Throttled"), &[("retry-after", "3")], "{}");
        assert_eq!(
            (throttled.kind, throttled.retry_after),
            (Kind::Throttled, Some(Duration::from_secs(3)))
        );
        let ms = http(429, None, &[("retry-after-ms", "250"), ("retry-after", "3")], "");
        assert_eq!(ms.retry_after, Some(Duration::from_millis(250)));
        assert_eq!(http(503, None, &[], "<html>").kind, Kind::Unavailable);
        let refused = AzError::from(azure_core::Error::new(
            AzKind::Connection,
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        ));
        assert_eq!(refused.kind, Kind::Unavailable);
        let tls = AzError::from(azure_core::Error::new(
            AzKind::Connection,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "invalid peer certificate: UnknownIssuer",
            ),
        ));
        assert_eq!(tls.kind, Kind::Tls);
    }

    /// azure_identity wraps every failure as `Credential`: what it wraps decides.
    #[test]
    fn token_failures_are_classified_by_what_they_wrap() {
        let wrapped = |inner: azure_core::Error| {
            AzError::from(azure_core::Error::with_error(
                AzKind::Credential,
                inner,
                "ClientSecretCredential authentication failed.",
            ))
        };
        let refused = wrapped(azure_core::Error::new(
            AzKind::Connection,
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        ));
        assert_eq!(refused.kind, Kind::Unavailable);
        let http = |status: u16, headers: &[(&'static str, &str)]| {
            use azure_core::http::headers::Headers;
            use azure_core::http::{RawResponse, StatusCode};
            let mut h = Headers::new();
            for (k, v) in headers {
                h.insert(*k, v.to_string());
            }
            AzKind::HttpResponse {
                status: StatusCode::from(status),
                error_code: None,
                raw_response: Some(Box::new(RawResponse::from_bytes(
                    StatusCode::from(status),
                    h,
                    Vec::new(),
                ))),
            }
            .into_error()
        };
        assert_eq!(wrapped(http(503, &[])).kind, Kind::Unavailable);
        assert_eq!(wrapped(http(408, &[])).kind, Kind::Unavailable);
        let throttled = wrapped(http(429, &[("retry-after", "7")]));
        assert_eq!(
            (throttled.kind, throttled.retry_after),
            (Kind::Throttled, Some(Duration::from_secs(7)))
        );
        assert_eq!(wrapped(http(400, &[])).kind, Kind::NoToken, "a refused secret");
        let status = wrapped(azure_core::Error::new(
            AzKind::Other,
            EntraStatus {
                status: 502,
                retry_after: None,
            },
        ));
        assert_eq!(status.kind, Kind::Unavailable);
        let missing = AzError::from(azure_core::Error::with_message(
            AzKind::Credential,
            "no tenant ID specified",
        ));
        assert_eq!(missing.kind, Kind::NoToken);
    }

    fn err(kind: Kind) -> AzError {
        AzError {
            kind,
            status: Some(403),
            code: Some("ForbiddenByRbac".into()),
            retry_after: Some(Duration::from_secs(2)),
            source: "service error".into(),
        }
    }

    fn ctx(id: &CredentialId, access: Access) -> Context<'_> {
        Context {
            operation: Operation::Store,
            id: Some(id),
            access,
            action: "Microsoft.KeyVault/vaults/secrets/setSecret/action",
            credential: "service principal 1111 in tenant 2222",
        }
    }

    #[test]
    fn storage_errors_name_the_role_the_credential_and_what_to_do() {
        let id: CredentialId = "api_key".parse().unwrap();
        let e = err(Kind::Denied).into_storage(ctx(&id, Access::Write));
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("Key Vault Secrets Officer"), "{e}");
        let e = err(Kind::Denied).into_storage(ctx(&id, Access::Read));
        assert!(e.to_string().contains("Key Vault Secrets User"), "{e}");
        let e = err(Kind::Denied).into_storage(ctx(&id, Access::Purge));
        assert!(e.to_string().contains("purge"), "{e}");
        let e = err(Kind::Unauthenticated).into_storage(ctx(&id, Access::Read));
        assert_eq!(e.kind(), ErrorKind::AuthenticationFailed);
        assert!(e.to_string().contains("tenant 2222"), "{e}");
        let e = err(Kind::Throttled).into_storage(ctx(&id, Access::Read));
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert!(
            err(Kind::Unavailable)
                .into_storage(ctx(&id, Access::Read))
                .is_retryable()
        );
        let tls = err(Kind::Tls).into_storage(ctx(&id, Access::Read));
        assert!(!tls.is_retryable() && tls.to_string().contains("ca_cert"), "{tls}");
        let disabled = err(Kind::Disabled).into_storage(ctx(&id, Access::Read));
        assert!(disabled.to_string().contains("disabled"), "{disabled}");
        let walled = err(Kind::Network).into_storage(ctx(&id, Access::Read));
        assert_eq!(walled.kind(), ErrorKind::PermissionDenied);
        assert!(
            walled.to_string().contains("network rules") && !walled.to_string().contains("assign"),
            "{walled}"
        );
        let redirect = err(Kind::Redirect).into_storage(ctx(&id, Access::Read));
        assert!(
            redirect.to_string().contains("redirect") && !redirect.is_retryable(),
            "{redirect}"
        );
        assert!(err(Kind::NotFound).into_storage(ctx(&id, Access::Read)).is_not_found());
    }
}
