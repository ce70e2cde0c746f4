//! Errors, classified by kind so callers (and the retry layer) never match on text.
//!
//! Every message says what happened, to which credential, on which provider, and what
//! to do next. No message or `Debug` output contains a secret value, token or key.

use std::fmt;
use std::time::Duration;

use crate::config::ConfigError;
use crate::crypto::CryptoError;
use crate::id::{CredentialId, ValidationError};
use crate::operation::Operation;

/// A boxed error source, `Send + Sync` so errors cross task boundaries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Renders an optional credential id for messages: ` of credential 'x'` or nothing.
struct Subject<'a>(&'a Option<CredentialId>);

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, " of credential '{id}'"),
            None => Ok(()),
        }
    }
}

fn subject(id: &Option<CredentialId>) -> Subject<'_> {
    Subject(id)
}

fn status_suffix(status: &Option<u16>, code: &Option<String>) -> String {
    match (status, code) {
        (Some(s), Some(c)) => format!(" (HTTP {s}, {c})"),
        (Some(s), None) => format!(" (HTTP {s})"),
        (None, Some(c)) => format!(" ({c})"),
        (None, None) => String::new(),
    }
}

/// Renders the retry layer's mark: ` (gave up after 4 attempts in 1.2s)` or nothing.
struct GaveUp<'a>(&'a Option<Retried>);

impl fmt::Display for GaveUp<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(r) => write!(f, " (gave up after {} attempts in {:.1?})", r.attempts, r.elapsed),
            None => Ok(()),
        }
    }
}

fn gave_up(r: &Option<Retried>) -> GaveUp<'_> {
    GaveUp(r)
}

/// The kind of a [`StorageError`]: what callers match on and metrics label by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`StorageError::NotFound`].
    NotFound,
    /// [`StorageError::PermissionDenied`].
    PermissionDenied,
    /// [`StorageError::AuthenticationFailed`].
    AuthenticationFailed,
    /// [`StorageError::Timeout`].
    Timeout,
    /// [`StorageError::Unavailable`].
    Unavailable,
    /// [`StorageError::Throttled`].
    Throttled,
    /// [`StorageError::TooLarge`].
    TooLarge,
    /// [`StorageError::InvalidName`].
    InvalidName,
    /// [`StorageError::Invalid`].
    Invalid,
    /// [`StorageError::Corrupted`].
    Corrupted,
    /// [`StorageError::Conflict`].
    Conflict,
    /// [`StorageError::Unsupported`].
    Unsupported,
    /// [`StorageError::Crypto`].
    Crypto,
    /// [`StorageError::Config`].
    Config,
    /// [`StorageError::Backend`].
    Backend,
}

impl ErrorKind {
    /// A short, stable, lowercase name (for metric labels and logs).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::AuthenticationFailed => "authentication_failed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Throttled => "throttled",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::InvalidName => "invalid_name",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Corrupted => "corrupted",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Crypto => "crypto",
            ErrorKind::Config => "config",
            ErrorKind::Backend => "backend",
        }
    }

    /// `true` for the transient kinds: `Timeout`, `Unavailable`, `Throttled`.
    pub const fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Timeout | ErrorKind::Unavailable | ErrorKind::Throttled)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Set by the [`Retry`](crate::layers::Retry) layer on the transient error it gives up
/// with, so callers know retrying again is unlikely to help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retried {
    /// Attempts made, the first one included.
    pub attempts: u32,
    /// Time from the first attempt to the last failure.
    pub elapsed: Duration,
}

/// The one error type of every storage operation.
///
/// Classified by [`ErrorKind`]; [`is_retryable`](StorageError::is_retryable) says whether
/// trying again can help. Backends build these with the constructors below
/// ([`StorageError::unavailable`], [`StorageError::backend`], …) in one mapping table
/// each, by error code or kind, and keep the service's own error as
/// [`source`](std::error::Error::source). `Display` never contains a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The credential does not exist (or is scheduled for deletion).
    #[error("credential '{id}' was not found on {provider}; check the id (ids are case-sensitive) or store it first")]
    NotFound {
        /// Provider name.
        provider: &'static str,
        /// The credential asked for.
        id: CredentialId,
    },

    /// The caller is authenticated but not allowed to do this.
    #[error(
        "permission denied on {provider} for {operation}{subj}: {required}",
        subj = subject(id)
    )]
    PermissionDenied {
        /// Provider name.
        provider: &'static str,
        /// The operation refused.
        operation: Operation,
        /// The credential concerned, if any.
        id: Option<CredentialId>,
        /// What to grant, e.g. `grant IAM action secretsmanager:GetSecretValue`.
        required: String,
        /// The service's own error (its message and request id, never a value).
        #[source]
        source: Option<BoxError>,
    },

    /// The backend did not accept the caller's identity (bad, expired or revoked credentials).
    #[error("authentication to {provider} failed: {hint}")]
    AuthenticationFailed {
        /// Provider name.
        provider: &'static str,
        /// What to check, e.g. `renew the Vault token or log in again`.
        hint: String,
        /// The underlying failure.
        #[source]
        source: Option<BoxError>,
    },

    /// The operation did not finish within its deadline.
    #[error(
        "{operation}{subj} on {provider} timed out after {after:?}{gave_up}; the backend is slow or unreachable, retry later or raise the timeout",
        subj = subject(id),
        gave_up = gave_up(retried)
    )]
    Timeout {
        /// Provider name.
        provider: &'static str,
        /// The operation that timed out.
        operation: Operation,
        /// The credential concerned, if any.
        id: Option<CredentialId>,
        /// The deadline that passed.
        after: Duration,
        /// Set when the retry layer gave up on this error.
        retried: Option<Retried>,
    },

    /// The backend could not be reached or is temporarily unable to serve.
    #[error(
        "{provider} is unavailable for {operation}{subj}{gave_up}; check the endpoint and network, then retry",
        subj = subject(id),
        gave_up = gave_up(retried)
    )]
    Unavailable {
        /// Provider name.
        provider: &'static str,
        /// The operation attempted.
        operation: Operation,
        /// The credential concerned, if any.
        id: Option<CredentialId>,
        /// The underlying failure.
        #[source]
        source: Option<BoxError>,
        /// Set when the retry layer gave up on this error.
        retried: Option<Retried>,
    },

    /// The backend asked us to slow down.
    #[error(
        "{provider} throttled {operation}{subj}{gave_up}; reduce the request rate or retry later",
        subj = subject(id),
        gave_up = gave_up(retried)
    )]
    Throttled {
        /// Provider name.
        provider: &'static str,
        /// The operation throttled.
        operation: Operation,
        /// The credential concerned, if any.
        id: Option<CredentialId>,
        /// How long the backend asked us to wait, when it said.
        retry_after: Option<Duration>,
        /// The service's own error.
        #[source]
        source: Option<BoxError>,
        /// Set when the retry layer gave up on this error.
        retried: Option<Retried>,
    },

    /// The serialized record exceeds the backend's hard limit.
    #[error(
        "credential '{id}' is {size} bytes once serialized, over the {limit}-byte limit of {provider}; store a smaller secret or use a backend with a larger limit"
    )]
    TooLarge {
        /// Provider name.
        provider: &'static str,
        /// The credential being stored.
        id: CredentialId,
        /// Size of the serialized record in bytes.
        size: usize,
        /// The backend's limit in bytes.
        limit: usize,
    },

    /// The credential id cannot be mapped onto the backend's naming rules.
    #[error("credential '{id}' cannot be named on {provider}: {reason}")]
    InvalidName {
        /// Provider name.
        provider: &'static str,
        /// The credential concerned.
        id: CredentialId,
        /// Which rule is broken and what to change.
        reason: String,
    },

    /// Input rejected before reaching the backend (ids, tags, filters).
    #[error(transparent)]
    Invalid(#[from] ValidationError),

    /// A stored record cannot be read back (truncated, garbage, unknown format).
    /// The reason gives position and kind only, never stored content.
    #[error(
        "stored record{subj} at {location} on {provider} is corrupted: {reason}; restore it from backup or delete and store it again",
        subj = subject(id)
    )]
    Corrupted {
        /// Provider name.
        provider: &'static str,
        /// The credential concerned, if known.
        id: Option<CredentialId>,
        /// Where the record lives (file, secret name, path).
        location: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A write precondition did not hold (another writer got there first), or an object
    /// under our name is not ours.
    #[error("conflict on {provider} for credential '{id}': {reason}")]
    Conflict {
        /// Provider name.
        provider: &'static str,
        /// The credential concerned.
        id: CredentialId,
        /// What conflicted and what to do.
        reason: String,
        /// The service's own error, when one reported the conflict.
        #[source]
        source: Option<BoxError>,
    },

    /// The backend cannot do what was asked (see its [`Capabilities`](crate::Capabilities)).
    #[error("{provider} does not support {what}; {advice}")]
    Unsupported {
        /// Provider name.
        provider: &'static str,
        /// The feature asked for.
        what: &'static str,
        /// What to do instead.
        advice: &'static str,
    },

    /// Encryption or decryption failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),

    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// Any other backend failure, with its status and code when known. Never retried:
    /// a backend maps transient failures to `Unavailable`, `Throttled` or `Timeout`.
    #[error(
        "{provider} failed to {operation}{subj}{status_text}: {message}",
        subj = subject(id),
        status_text = status_suffix(status, code)
    )]
    Backend {
        /// Provider name.
        provider: &'static str,
        /// The operation attempted.
        operation: Operation,
        /// The credential concerned, if any.
        id: Option<CredentialId>,
        /// HTTP status, when the backend speaks HTTP.
        status: Option<u16>,
        /// The service's error code (e.g. `InvalidParameterException`).
        code: Option<String>,
        /// What happened and what to do next.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

/// Constructors: one per kind, then `with_*` to add what is known.
impl StorageError {
    /// [`StorageError::NotFound`].
    pub fn not_found(provider: &'static str, id: &CredentialId) -> Self {
        StorageError::NotFound {
            provider,
            id: id.clone(),
        }
    }

    /// [`StorageError::PermissionDenied`]; `required` says what to grant.
    pub fn permission_denied(
        provider: &'static str,
        operation: Operation,
        id: Option<&CredentialId>,
        required: impl Into<String>,
    ) -> Self {
        StorageError::PermissionDenied {
            provider,
            operation,
            id: id.cloned(),
            required: required.into(),
            source: None,
        }
    }

    /// [`StorageError::AuthenticationFailed`]; `hint` says what to check.
    pub fn authentication_failed(provider: &'static str, hint: impl Into<String>) -> Self {
        StorageError::AuthenticationFailed {
            provider,
            hint: hint.into(),
            source: None,
        }
    }

    /// [`StorageError::Timeout`] after `after`.
    pub fn timeout(provider: &'static str, operation: Operation, id: Option<&CredentialId>, after: Duration) -> Self {
        StorageError::Timeout {
            provider,
            operation,
            id: id.cloned(),
            after,
            retried: None,
        }
    }

    /// [`StorageError::Unavailable`].
    pub fn unavailable(provider: &'static str, operation: Operation, id: Option<&CredentialId>) -> Self {
        StorageError::Unavailable {
            provider,
            operation,
            id: id.cloned(),
            source: None,
            retried: None,
        }
    }

    /// [`StorageError::Throttled`].
    pub fn throttled(provider: &'static str, operation: Operation, id: Option<&CredentialId>) -> Self {
        StorageError::Throttled {
            provider,
            operation,
            id: id.cloned(),
            retry_after: None,
            source: None,
            retried: None,
        }
    }

    /// [`StorageError::TooLarge`].
    pub fn too_large(provider: &'static str, id: &CredentialId, size: usize, limit: usize) -> Self {
        StorageError::TooLarge {
            provider,
            id: id.clone(),
            size,
            limit,
        }
    }

    /// [`StorageError::InvalidName`].
    pub fn invalid_name(provider: &'static str, id: &CredentialId, reason: impl Into<String>) -> Self {
        StorageError::InvalidName {
            provider,
            id: id.clone(),
            reason: reason.into(),
        }
    }

    /// [`StorageError::Corrupted`]: the record at `location` cannot be read. `reason`
    /// must not quote stored content.
    pub fn corrupted(
        provider: &'static str,
        id: Option<&CredentialId>,
        location: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        StorageError::Corrupted {
            provider,
            id: id.cloned(),
            location: location.into(),
            reason: reason.into(),
        }
    }

    /// [`StorageError::Conflict`]; `reason` says what conflicted and what to do.
    pub fn conflict(provider: &'static str, id: &CredentialId, reason: impl Into<String>) -> Self {
        StorageError::Conflict {
            provider,
            id: id.clone(),
            reason: reason.into(),
            source: None,
        }
    }

    /// [`StorageError::Backend`]; `message` says what happened and what to do.
    pub fn backend(
        provider: &'static str,
        operation: Operation,
        id: Option<&CredentialId>,
        message: impl Into<String>,
    ) -> Self {
        StorageError::Backend {
            provider,
            operation,
            id: id.cloned(),
            status: None,
            code: None,
            message: message.into(),
            source: None,
        }
    }

    /// Keeps `source` as the underlying error, on the kinds that carry one
    /// (`PermissionDenied`, `AuthenticationFailed`, `Unavailable`, `Throttled`,
    /// `Conflict`, `Backend`); other kinds are returned unchanged.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        match &mut self {
            StorageError::PermissionDenied { source: s, .. }
            | StorageError::AuthenticationFailed { source: s, .. }
            | StorageError::Unavailable { source: s, .. }
            | StorageError::Throttled { source: s, .. }
            | StorageError::Conflict { source: s, .. }
            | StorageError::Backend { source: s, .. } => *s = Some(source.into()),
            _ => {}
        }
        self
    }

    /// Records the service's HTTP status and error code on a `Backend` error.
    pub fn with_code(mut self, status: Option<u16>, code: Option<&str>) -> Self {
        if let StorageError::Backend { status: s, code: c, .. } = &mut self {
            *s = status;
            *c = code.map(str::to_string);
        }
        self
    }

    /// Records how long the backend asked us to wait, on a `Throttled` error.
    pub fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        if let StorageError::Throttled { retry_after, .. } = &mut self {
            *retry_after = after;
        }
        self
    }

    /// Fills in the credential id where the error does not name one yet (the layers call
    /// this, so backends need not repeat the id in every error).
    pub fn with_id_if_missing(mut self, id: Option<&CredentialId>) -> Self {
        match &mut self {
            StorageError::PermissionDenied { id: slot, .. }
            | StorageError::Timeout { id: slot, .. }
            | StorageError::Unavailable { id: slot, .. }
            | StorageError::Throttled { id: slot, .. }
            | StorageError::Corrupted { id: slot, .. }
            | StorageError::Backend { id: slot, .. }
                if slot.is_none() =>
            {
                *slot = id.cloned();
            }
            _ => {}
        }
        self
    }

    /// Marks a transient error as given up on by the retry layer; it is then no longer
    /// [`is_retryable`](Self::is_retryable).
    pub fn mark_retried(mut self, retried: Retried) -> Self {
        match &mut self {
            StorageError::Timeout { retried: r, .. }
            | StorageError::Unavailable { retried: r, .. }
            | StorageError::Throttled { retried: r, .. } => *r = Some(retried),
            _ => {}
        }
        self
    }
}

/// Classification.
impl StorageError {
    /// The kind, for matching and metric labels.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StorageError::NotFound { .. } => ErrorKind::NotFound,
            StorageError::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            StorageError::AuthenticationFailed { .. } => ErrorKind::AuthenticationFailed,
            StorageError::Timeout { .. } => ErrorKind::Timeout,
            StorageError::Unavailable { .. } => ErrorKind::Unavailable,
            StorageError::Throttled { .. } => ErrorKind::Throttled,
            StorageError::TooLarge { .. } => ErrorKind::TooLarge,
            StorageError::InvalidName { .. } => ErrorKind::InvalidName,
            StorageError::Invalid(_) => ErrorKind::Invalid,
            StorageError::Corrupted { .. } => ErrorKind::Corrupted,
            StorageError::Conflict { .. } => ErrorKind::Conflict,
            StorageError::Unsupported { .. } => ErrorKind::Unsupported,
            StorageError::Crypto(_) => ErrorKind::Crypto,
            StorageError::Config(_) => ErrorKind::Config,
            StorageError::Backend { .. } => ErrorKind::Backend,
        }
    }

    /// `true` when trying again may succeed: a transient kind (`Timeout`, `Unavailable`,
    /// `Throttled`) that the retry layer has not already given up on.
    pub fn is_retryable(&self) -> bool {
        self.kind().is_transient() && self.retried().is_none()
    }

    /// Set when the retry layer gave up on this error: attempts made and time spent.
    pub fn retried(&self) -> Option<Retried> {
        match self {
            StorageError::Timeout { retried, .. }
            | StorageError::Unavailable { retried, .. }
            | StorageError::Throttled { retried, .. } => *retried,
            _ => None,
        }
    }

    /// `true` for [`StorageError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound { .. })
    }

    /// `true` for [`StorageError::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, StorageError::Conflict { .. })
    }

    /// How long the backend asked us to wait before retrying, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            StorageError::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> CredentialId {
        "api_key".parse().unwrap()
    }

    fn backend(status: Option<u16>) -> StorageError {
        StorageError::backend("mock", Operation::Store, Some(&id()), "it broke").with_code(status, Some("Boom"))
    }

    #[test]
    fn only_transient_kinds_are_retryable_and_never_after_the_retry_layer_gave_up() {
        let op = Operation::Retrieve;
        let retryable = [
            StorageError::timeout("mock", op, None, Duration::from_secs(1)),
            StorageError::unavailable("mock", op, None),
            StorageError::throttled("mock", op, None),
        ];
        for e in retryable {
            assert!(e.is_retryable(), "{e} should be retryable");
            let gave_up = e.mark_retried(Retried {
                attempts: 4,
                elapsed: Duration::from_millis(1500),
            });
            assert!(!gave_up.is_retryable(), "{gave_up}");
            assert!(gave_up.to_string().contains("gave up after 4 attempts"), "{gave_up}");
        }
        let permanent = [
            StorageError::not_found("mock", &id()),
            StorageError::permission_denied("mock", Operation::Store, Some(&id()), "grant x"),
            StorageError::authentication_failed("mock", "log in"),
            backend(Some(500)),
            backend(Some(503)),
            backend(Some(400)),
            StorageError::conflict("mock", &id(), "raced"),
            StorageError::Config(ConfigError::new("mock", "x", "must be set")),
        ];
        for e in &permanent {
            assert!(
                !e.is_retryable(),
                "{e} should not be retryable: the backend's table decides"
            );
        }
    }

    #[test]
    fn kinds_have_stable_names() {
        assert_eq!(StorageError::not_found("m", &id()).kind().as_str(), "not_found");
        assert_eq!(backend(None).kind(), ErrorKind::Backend);
        assert_eq!(ErrorKind::Unsupported.to_string(), "unsupported");
    }

    #[test]
    fn the_source_is_kept_and_the_id_filled_in_once() {
        let io = std::io::Error::other("AccessDeniedException: request id 1234");
        let e =
            StorageError::permission_denied("aws", Operation::Retrieve, None, "grant secretsmanager:GetSecretValue")
                .with_source(io)
                .with_id_if_missing(Some(&id()));
        let source = std::error::Error::source(&e).expect("source kept").to_string();
        assert!(source.contains("request id 1234"), "{source}");
        assert!(e.to_string().contains("credential 'api_key'"), "{e}");
        let other: CredentialId = "other".parse().unwrap();
        let e = e.with_id_if_missing(Some(&other));
        assert!(e.to_string().contains("'api_key'"), "an id already set stays: {e}");
    }

    #[test]
    fn messages_name_provider_id_and_next_step() {
        let m = StorageError::not_found("aws", &id()).to_string();
        assert!(m.contains("api_key") && m.contains("aws") && m.contains("store it first"));

        let e = StorageError::permission_denied(
            "vault",
            Operation::Retrieve,
            Some(&id()),
            "add the `read` capability on secret/data/x to the token's policy",
        );
        let m = e.to_string();
        assert!(m.contains("retrieve of credential 'api_key'"), "{m}");
        assert!(m.contains("`read` capability"), "{m}");

        let m = backend(Some(409)).to_string();
        assert!(m.contains("(HTTP 409, Boom)"), "{m}");
    }
}
