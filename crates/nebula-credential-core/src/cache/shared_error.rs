//! One backend error handed to every caller that waited on the same call.
//!
//! [`StorageError`] is not `Clone` (it owns its source), so the single-flight call keeps
//! the original in an [`Arc`] and each waiter gets a [`replica`]: the same variant and
//! fields, with the source chain still readable through a shared wrapper.

use std::fmt;
use std::sync::Arc;

use crate::error::{BoxError, StorageError};

/// The source of a replicated error: displays and chains like the original source.
struct SharedSource(Arc<StorageError>);

impl SharedSource {
    fn original(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

impl fmt::Debug for SharedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.original() {
            Some(source) => fmt::Debug::fmt(source, f),
            None => f.write_str("SharedSource"),
        }
    }
}

impl fmt::Display for SharedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.original() {
            Some(source) => fmt::Display::fmt(source, f),
            None => Ok(()),
        }
    }
}

impl std::error::Error for SharedSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.original().and_then(std::error::Error::source)
    }
}

/// An error equal to `shared` in kind, fields and message, for one more waiter.
pub(crate) fn replica(shared: &Arc<StorageError>) -> StorageError {
    let source = |s: &Option<BoxError>| -> Option<BoxError> {
        s.as_ref().map(|_| Box::new(SharedSource(shared.clone())) as BoxError)
    };
    match &**shared {
        StorageError::NotFound { provider, id } => StorageError::NotFound {
            provider,
            id: id.clone(),
        },
        StorageError::PermissionDenied {
            provider,
            operation,
            id,
            required,
            source: s,
        } => StorageError::PermissionDenied {
            provider,
            operation: *operation,
            id: id.clone(),
            required: required.clone(),
            source: source(s),
        },
        StorageError::AuthenticationFailed {
            provider,
            hint,
            source: s,
        } => StorageError::AuthenticationFailed {
            provider,
            hint: hint.clone(),
            source: source(s),
        },
        StorageError::Timeout {
            provider,
            operation,
            id,
            after,
            retried,
        } => StorageError::Timeout {
            provider,
            operation: *operation,
            id: id.clone(),
            after: *after,
            retried: *retried,
        },
        StorageError::Unavailable {
            provider,
            operation,
            id,
            source: s,
            retried,
        } => StorageError::Unavailable {
            provider,
            operation: *operation,
            id: id.clone(),
            source: source(s),
            retried: *retried,
        },
        StorageError::Throttled {
            provider,
            operation,
            id,
            retry_after,
            source: s,
            retried,
        } => StorageError::Throttled {
            provider,
            operation: *operation,
            id: id.clone(),
            retry_after: *retry_after,
            source: source(s),
            retried: *retried,
        },
        StorageError::TooLarge {
            provider,
            id,
            size,
            limit,
        } => StorageError::TooLarge {
            provider,
            id: id.clone(),
            size: *size,
            limit: *limit,
        },
        StorageError::InvalidName { provider, id, reason } => StorageError::InvalidName {
            provider,
            id: id.clone(),
            reason: reason.clone(),
        },
        StorageError::Invalid(e) => StorageError::Invalid(e.clone()),
        StorageError::Corrupted {
            provider,
            id,
            location,
            reason,
        } => StorageError::Corrupted {
            provider,
            id: id.clone(),
            location: location.clone(),
            reason: reason.clone(),
        },
        StorageError::Conflict {
            provider,
            id,
            reason,
            source: s,
        } => StorageError::Conflict {
            provider,
            id: id.clone(),
            reason: reason.clone(),
            source: source(s),
        },
        StorageError::Unsupported { provider, what, advice } => StorageError::Unsupported { provider, what, advice },
        StorageError::Crypto(e) => StorageError::Crypto(e.clone()),
        StorageError::Config(e) => StorageError::Config(e.clone()),
        StorageError::Backend {
            provider,
            operation,
            id,
            status,
            code,
            message,
            source: s,
        } => StorageError::Backend {
            provider,
            operation: *operation,
            id: id.clone(),
            status: *status,
            code: code.clone(),
            message: message.clone(),
            source: source(s),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Operation;

    #[test]
    fn replicas_keep_kind_message_and_source_chain() {
        let id = "db".parse().unwrap();
        let original = StorageError::unavailable("mock", Operation::Retrieve, Some(&id))
            .with_source(std::io::Error::other("connection refused"));
        let text = original.to_string();
        let shared = Arc::new(original);
        let copy = replica(&shared);
        assert_eq!(copy.kind(), shared.kind());
        assert_eq!(copy.to_string(), text);
        let source = std::error::Error::source(&copy).unwrap().to_string();
        assert!(source.contains("connection refused"), "{source}");
    }
}
