//! The shared tail of every backend's error table: [`source_chain`] to classify an SDK
//! error by what it wraps, and [`Verdict`] to turn a classified error into the
//! [`StorageError`] callers see. Each backend's `errors.rs` keeps only its
//! classification table and its hints.

use std::time::Duration;

use crate::{BoxError, CredentialId, Operation, StorageError};

/// `err` and every error in its source chain, descending into the error an `io::Error`
/// wraps (which its `source()` skips) — where TLS and connection failures hide in SDK errors.
pub fn source_chain<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| {
        match e.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        }
    })
}

/// Where a backend call failed and what the service answered: the context a [`Verdict`]
/// needs to become a [`StorageError`].
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    /// The backend (`"aws"`, …).
    pub provider: &'static str,
    /// The operation that failed.
    pub operation: Operation,
    /// The credential it was about, if any.
    pub id: Option<&'a CredentialId>,
    /// The HTTP status the service answered, if it answered.
    pub status: Option<u16>,
    /// The service's error code, if it sent one.
    pub code: Option<&'a str>,
}

/// What a classified backend error means to the caller, with the backend's hint: one arm
/// of a backend's error table. [`Verdict::into_storage`] builds the [`StorageError`]
/// the same way for every backend.
#[derive(Debug)]
pub enum Verdict {
    /// The credential does not exist: `NotFound` (the service's error is not kept;
    /// absence needs no detail). Without a credential, a `Backend` error with this hint.
    NotFound {
        /// The hint of the `Backend` error when the call was about no credential.
        without_id: String,
    },
    /// Another writer got there first: `Conflict` with `hint`; without a credential, a
    /// `Backend` error with `without_id`.
    Conflict {
        /// What to do, for the credential's `Conflict`.
        hint: String,
        /// The hint of the `Backend` error when the call was about no credential.
        without_id: String,
    },
    /// The identity lacks a permission: `PermissionDenied` naming what to grant.
    PermissionDenied {
        /// The permission to grant, and where.
        required: String,
    },
    /// The service refused the identity, or none could be obtained: `AuthenticationFailed`.
    AuthenticationFailed {
        /// What to fix.
        hint: String,
    },
    /// Slow down: retryable `Throttled`, with the wait the service asked for.
    Throttled {
        /// The service's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// A transient failure (service side, network, an operation still in progress):
    /// retryable `Unavailable`.
    Unavailable,
    /// Anything else: a permanent `Backend` error with `hint`, carrying the status and code.
    Backend {
        /// What happened and what to do.
        hint: String,
    },
    /// An error the backend built itself (a configuration or crypto error), returned as
    /// it is, without the service's error.
    Final(StorageError),
}

impl Verdict {
    /// A [`Verdict::Backend`] with `hint`.
    pub fn backend(hint: impl Into<String>) -> Self {
        Verdict::Backend { hint: hint.into() }
    }

    /// The [`StorageError`] of this verdict at `at`, with the service's error `source`
    /// (kept as the source, never repeated in the message) unless the verdict is
    /// `NotFound` with a credential or `Final`.
    pub fn into_storage(self, at: Failure<'_>, source: impl Into<BoxError>) -> StorageError {
        let Failure {
            provider,
            operation,
            id,
            status,
            code,
        } = at;
        let backend = |hint: String| StorageError::backend(provider, operation, id, hint).with_code(status, code);
        let err = match self {
            Verdict::NotFound { without_id } => match id {
                Some(id) => return StorageError::not_found(provider, id),
                None => backend(without_id),
            },
            Verdict::Conflict { hint, without_id } => match id {
                Some(id) => StorageError::conflict(provider, id, hint),
                None => backend(without_id),
            },
            Verdict::PermissionDenied { required } => {
                StorageError::permission_denied(provider, operation, id, required)
            }
            Verdict::AuthenticationFailed { hint } => StorageError::authentication_failed(provider, hint),
            Verdict::Throttled { retry_after } => {
                StorageError::throttled(provider, operation, id).with_retry_after(retry_after)
            }
            Verdict::Unavailable => StorageError::unavailable(provider, operation, id),
            Verdict::Backend { hint } => backend(hint),
            Verdict::Final(err) => return err,
        };
        err.with_source(source)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::{ConfigError, ErrorKind};

    #[test]
    fn source_chains_descend_into_io_errors() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("outer")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let inner = std::io::Error::other(crate::ConfigError::new("x", "f", "r"));
        let outer = Outer(std::io::Error::new(std::io::ErrorKind::InvalidData, inner));
        let chain: Vec<_> = source_chain(&outer).collect();
        assert_eq!(chain.len(), 4, "outer, InvalidData, other, the config error");
        assert!(chain[3].downcast_ref::<crate::ConfigError>().is_some());
    }

    fn at(id: Option<&CredentialId>) -> Failure<'_> {
        Failure {
            provider: "aws",
            operation: Operation::Store,
            id,
            status: Some(400),
            code: Some("SomeCode"),
        }
    }

    fn source() -> std::io::Error {
        std::io::Error::other("the service's own text")
    }

    #[test]
    fn each_verdict_becomes_its_storage_error_with_the_service_error_as_source() {
        let id: CredentialId = "api".parse().unwrap();
        let cases = [
            (
                Verdict::Conflict {
                    hint: "re-read".into(),
                    without_id: "-".into(),
                },
                ErrorKind::Conflict,
                "re-read",
            ),
            (
                Verdict::PermissionDenied {
                    required: "grant x".into(),
                },
                ErrorKind::PermissionDenied,
                "grant x",
            ),
            (
                Verdict::AuthenticationFailed { hint: "renew".into() },
                ErrorKind::AuthenticationFailed,
                "renew",
            ),
            (Verdict::Unavailable, ErrorKind::Unavailable, ""),
            (Verdict::backend("fix it"), ErrorKind::Backend, "fix it"),
        ];
        for (verdict, kind, hint) in cases {
            let e = verdict.into_storage(at(Some(&id)), source());
            assert_eq!(e.kind(), kind);
            let m = e.to_string();
            assert!(m.contains(hint) && !m.contains("own text"), "{m}");
            assert!(e.source().is_some(), "{kind:?} keeps the source");
        }
        let throttled = Verdict::Throttled {
            retry_after: Some(Duration::from_secs(3)),
        }
        .into_storage(at(Some(&id)), source());
        assert!(throttled.is_retryable());
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn a_missing_credential_is_not_found_without_source_and_a_missing_resource_a_backend_error() {
        let id: CredentialId = "api".parse().unwrap();
        let missing = || Verdict::NotFound {
            without_id: "check the endpoint".into(),
        };
        let e = missing().into_storage(at(Some(&id)), source());
        assert!(e.is_not_found() && e.source().is_none());
        let e = missing().into_storage(at(None), source());
        assert_eq!(e.kind(), ErrorKind::Backend);
        assert!(e.to_string().contains("check the endpoint"), "{e}");
        let conflict = Verdict::Conflict {
            hint: "-".into(),
            without_id: "retry".into(),
        };
        assert_eq!(conflict.into_storage(at(None), source()).kind(), ErrorKind::Backend);
    }

    #[test]
    fn a_final_error_is_returned_as_it_is() {
        let config = StorageError::Config(ConfigError::new("aws", "endpoint", "is wrong"));
        let e = Verdict::Final(config).into_storage(at(None), source());
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.source().is_none() || e.source().is_some_and(|s| s.is::<ConfigError>()));
    }
}
