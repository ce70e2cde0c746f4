//! Errors, classified by kind so callers (and the retry layer) never match on text.
//!
//! Every message says what happened, to which credential, on which provider, and what
//! to do next. No message or `Debug` output contains a secret value, token or key.

use std::fmt;
use std::time::Duration;

use crate::id::CredentialId;

/// A boxed error source, `Send + Sync` so errors cross task boundaries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The operation of [`StorageProvider`](crate::StorageProvider) an error or metric refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// [`StorageProvider::store`](crate::StorageProvider::store).
    Store,
    /// [`StorageProvider::retrieve`](crate::StorageProvider::retrieve).
    Retrieve,
    /// [`StorageProvider::delete`](crate::StorageProvider::delete).
    Delete,
    /// [`StorageProvider::list`](crate::StorageProvider::list).
    List,
    /// [`StorageProvider::exists`](crate::StorageProvider::exists).
    Exists,
}

impl Operation {
    /// Every operation, in a fixed order (used to index metrics).
    pub const ALL: [Operation; 5] = [
        Operation::Store,
        Operation::Retrieve,
        Operation::Delete,
        Operation::List,
        Operation::Exists,
    ];

    /// The lowercase name, as used in logs, spans and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Store => "store",
            Operation::Retrieve => "retrieve",
            Operation::Delete => "delete",
            Operation::List => "list",
            Operation::Exists => "exists",
        }
    }

    /// `true` for operations that change stored state (`store`, `delete`).
    pub const fn is_write(self) -> bool {
        matches!(self, Operation::Store | Operation::Delete)
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

/// The one error type of every storage operation.
///
/// Classified by kind; [`is_retryable`](StorageError::is_retryable) says whether trying
/// again can help. Backends build these in one mapping table each, by error code or kind.
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
    },

    /// The backend did not accept the caller's identity (bad, expired or revoked credentials).
    #[error("authentication to {provider} failed: {hint}")]
    AuthenticationFailed {
        /// Provider name.
        provider: &'static str,
        /// What to check, e.g. `renew the Vault token or log in again`.
        hint: String,
    },

    /// The operation did not finish within its deadline.
    #[error(
        "{operation}{subj} on {provider} timed out after {after:?}; the backend is slow or unreachable, retry later or raise the timeout",
        subj = subject(id)
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
    },

    /// The backend could not be reached or is temporarily unable to serve.
    #[error(
        "{provider} is unavailable for {operation}{subj}; check the endpoint and network, then retry",
        subj = subject(id)
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
    },

    /// The backend asked us to slow down.
    #[error(
        "{provider} throttled {operation}{subj}; reduce the request rate or retry later",
        subj = subject(id)
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

    /// The write lost a race or the backend state forbids it (e.g. pending deletion).
    #[error("conflict on {provider} for credential '{id}': {reason}")]
    Conflict {
        /// Provider name.
        provider: &'static str,
        /// The credential concerned.
        id: CredentialId,
        /// What conflicted and what to do.
        reason: String,
    },

    /// Encryption or decryption failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),

    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// Any other backend failure, with its status and code when known.
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

impl StorageError {
    /// `true` when trying again may succeed: `Timeout`, `Unavailable`, `Throttled`,
    /// and `Backend` with a 5xx status.
    pub fn is_retryable(&self) -> bool {
        match self {
            StorageError::Timeout { .. } | StorageError::Unavailable { .. } | StorageError::Throttled { .. } => true,
            StorageError::Backend {
                status: Some(status), ..
            } => (500..600).contains(status),
            _ => false,
        }
    }

    /// `true` for [`StorageError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound { .. })
    }

    /// A short, stable name of the error kind (for metrics labels and logs).
    pub fn kind(&self) -> &'static str {
        match self {
            StorageError::NotFound { .. } => "not_found",
            StorageError::PermissionDenied { .. } => "permission_denied",
            StorageError::AuthenticationFailed { .. } => "authentication_failed",
            StorageError::Timeout { .. } => "timeout",
            StorageError::Unavailable { .. } => "unavailable",
            StorageError::Throttled { .. } => "throttled",
            StorageError::TooLarge { .. } => "too_large",
            StorageError::InvalidName { .. } => "invalid_name",
            StorageError::Invalid(_) => "invalid",
            StorageError::Corrupted { .. } => "corrupted",
            StorageError::Conflict { .. } => "conflict",
            StorageError::Crypto(_) => "crypto",
            StorageError::Config(_) => "config",
            StorageError::Backend { .. } => "backend",
        }
    }

    /// How long the backend asked us to wait before retrying, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            StorageError::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A configuration value breaks a rule. Names the provider, the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {provider} configuration: `{field}` {rule}")]
pub struct ConfigError {
    provider: &'static str,
    field: String,
    rule: String,
}

impl ConfigError {
    /// A rule broken by `field` of `provider`'s configuration. `rule` completes the
    /// sentence "`field` …", e.g. `must be between 1 and 60 seconds (got 0)`.
    pub fn new(provider: &'static str, field: impl Into<String>, rule: impl Into<String>) -> Self {
        ConfigError {
            provider,
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// The provider whose configuration is invalid.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// The offending field (dotted path for nested fields, e.g. `retry.max_retries`).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The rule broken.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// Prefixes the field with `parent.` (for nested configuration structs).
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }

    /// Reassigns the error to `provider` (a nested struct validated on a provider's behalf).
    pub fn for_provider(mut self, provider: &'static str) -> Self {
        self.provider = provider;
        self
    }
}

/// Input that breaks the core's rules: credential ids, tags, filters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A credential id breaks the id rules.
    #[error("invalid credential id {shown}: {reason}; use 1 to 128 characters from A-Z, a-z, 0-9, '_' and '-'")]
    InvalidId {
        /// The id as given, quoted and shortened for display.
        shown: String,
        /// The rule broken.
        reason: String,
    },
    /// A tag key or value breaks the tag rules.
    #[error("invalid tag {key}: {reason}")]
    InvalidTag {
        /// The tag key, quoted and shortened for display.
        key: String,
        /// The rule broken.
        reason: String,
    },
    /// More tags than every backend can hold.
    #[error("{count} tags given, but at most {max} are allowed; merge or drop some tags")]
    TooManyTags {
        /// Tags given.
        count: usize,
        /// The maximum.
        max: usize,
    },
    /// A filter or other argument is inconsistent.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// What was invalid.
        what: &'static str,
        /// The rule broken.
        reason: String,
    },
}

/// Encryption, decryption or key handling failed. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Authentication of the ciphertext failed: wrong key, tampered data, or data
    /// moved from another credential id.
    #[error(
        "cannot decrypt credential '{id}' with key '{key_id}': wrong key, tampered data, or a record copied from another id"
    )]
    DecryptionFailed {
        /// The credential being decrypted.
        id: CredentialId,
        /// The key tried.
        key_id: String,
    },
    /// The record names a key the keyring does not hold.
    #[error(
        "credential '{id}' is encrypted with key '{key_id}', which is not in the keyring; add that key as an old key"
    )]
    UnknownKey {
        /// The credential being decrypted.
        id: CredentialId,
        /// The key it needs.
        key_id: String,
    },
    /// The record was written by an encryption format this version does not know.
    #[error(
        "credential '{id}' uses encryption format {found}, this library reads up to {supported}; upgrade nebula-credential"
    )]
    UnsupportedVersion {
        /// The credential being decrypted.
        id: CredentialId,
        /// The format found.
        found: u8,
        /// The newest format supported.
        supported: u8,
    },
    /// Key material is malformed (wrong length, bad base64, weak salt).
    #[error("invalid encryption key: {reason}")]
    InvalidKey {
        /// What is wrong (never the key itself).
        reason: String,
    },
    /// Encryption itself failed.
    #[error("encryption of credential '{id}' failed")]
    EncryptionFailed {
        /// The credential being encrypted.
        id: CredentialId,
    },
    /// The backend's own key service (e.g. AWS KMS) could not encrypt or decrypt the
    /// stored record.
    #[error("the key service behind {provider} could not process credential '{id}' ({code}): {required}")]
    KeyService {
        /// Provider name.
        provider: &'static str,
        /// The credential concerned.
        id: CredentialId,
        /// The service's error code (e.g. `DecryptionFailure`).
        code: String,
        /// What to check or grant, e.g. `grant kms:Decrypt on the secret's KMS key`.
        required: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> CredentialId {
        "api_key".parse().unwrap()
    }

    fn backend(status: Option<u16>) -> StorageError {
        StorageError::Backend {
            provider: "mock",
            operation: Operation::Store,
            id: Some(id()),
            status,
            code: Some("Boom".into()),
            message: "it broke".into(),
            source: None,
        }
    }

    #[test]
    fn retryable_kinds() {
        let retryable = [
            StorageError::Timeout {
                provider: "mock",
                operation: Operation::Retrieve,
                id: None,
                after: Duration::from_secs(1),
            },
            StorageError::Unavailable {
                provider: "mock",
                operation: Operation::Retrieve,
                id: None,
                source: None,
            },
            StorageError::Throttled {
                provider: "mock",
                operation: Operation::List,
                id: None,
                retry_after: None,
            },
            backend(Some(500)),
            backend(Some(503)),
        ];
        for e in &retryable {
            assert!(e.is_retryable(), "{e} should be retryable");
        }
        let permanent = [
            StorageError::NotFound {
                provider: "mock",
                id: id(),
            },
            StorageError::PermissionDenied {
                provider: "mock",
                operation: Operation::Store,
                id: Some(id()),
                required: "grant x".into(),
            },
            StorageError::AuthenticationFailed {
                provider: "mock",
                hint: "log in".into(),
            },
            backend(Some(400)),
            backend(None),
            StorageError::Config(ConfigError::new("mock", "x", "must be set")),
        ];
        for e in &permanent {
            assert!(!e.is_retryable(), "{e} should not be retryable");
        }
    }

    #[test]
    fn messages_name_provider_id_and_next_step() {
        let e = StorageError::NotFound {
            provider: "aws",
            id: id(),
        };
        let m = e.to_string();
        assert!(m.contains("api_key") && m.contains("aws") && m.contains("store it first"));

        let e = StorageError::PermissionDenied {
            provider: "vault",
            operation: Operation::Retrieve,
            id: Some(id()),
            required: "add the `read` capability on secret/data/x to the token's policy".into(),
        };
        let m = e.to_string();
        assert!(m.contains("retrieve of credential 'api_key'"), "{m}");
        assert!(m.contains("`read` capability"), "{m}");

        let m = backend(Some(409)).to_string();
        assert!(m.contains("(HTTP 409, Boom)"), "{m}");

        let c = ConfigError::new("aws", "read_timeout", "must be between 1 and 60 s").within("x");
        assert_eq!(
            c.to_string(),
            "invalid aws configuration: `x.read_timeout` must be between 1 and 60 s"
        );
        assert_eq!(c.field(), "x.read_timeout");
    }
}
