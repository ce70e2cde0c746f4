//! The service's error answers: a status, a code and the `{"error":{…}}` body.

use std::borrow::Cow;

use serde_json::{Value, json};

/// One error answer, shaped like the real service's: `{"error":{"code","message","innererror"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `error.code`.
    pub code: Cow<'static, str>,
    /// `error.innererror.code`, where the service sends one.
    pub inner: Option<Cow<'static, str>>,
    /// `error.message`.
    pub message: String,
    /// `Retry-After` seconds (throttling only).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, inner: Option<&'static str>, message: String) -> Self {
        Self {
            status,
            code: Cow::Borrowed(code),
            inner: inner.map(Cow::Borrowed),
            message,
            retry_after_s: None,
        }
    }

    /// 400 `BadParameter`.
    pub fn bad_parameter(message: impl Into<String>) -> Self {
        Self::new(400, "BadParameter", None, message.into())
    }

    /// 401 `Unauthorized` for a request without a bearer token.
    pub fn missing_token() -> Self {
        Self::new(
            401,
            "Unauthorized",
            None,
            "AKV10000: Request is missing a Bearer or PoP token.".into(),
        )
    }

    /// 401 `Unauthorized` for a token the vault does not accept.
    pub fn rejected_token() -> Self {
        Self::new(
            401,
            "Unauthorized",
            None,
            "AKV10022: Invalid audience. The token was not accepted by this vault.".into(),
        )
    }

    /// 401 `Unauthorized` for a token past its expiry (the service's AKV10032 family).
    pub fn expired_token() -> Self {
        Self::new(
            401,
            "Unauthorized",
            Some("TokenExpired"),
            "AKV10032: The token is expired.".into(),
        )
    }

    /// 403 `Forbidden` / `ForbiddenByRbac`, naming the data action the caller (`appid`) lacks,
    /// in the service's multi-line wording.
    pub fn forbidden_by_rbac(action: &str, vault: &str, caller: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            Some("ForbiddenByRbac"),
            format!(
                "Caller is not authorized to perform action on resource.\r\n\
                 If role assignments, deny assignments or role definitions were changed recently, \
                 please observe propagation time.\r\nCaller: appid={caller}\r\n\
                 Action: '{action}'\r\nResource: '/vaults/{vault}'\r\nAssignment: (not found)\r\n\
                 DenyAssignmentId: null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\n\
                 Vault: {vault};location=local\r\n"
            ),
        )
    }

    /// 403 `Forbidden` (no inner code) for a purge in a vault with purge protection, in the
    /// service's wording.
    pub fn purge_protected(vault: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            None,
            format!(
                "Operation \"purge\" is not allowed because purge protection is enabled for this vault. \
                 Key Vault service will automatically purge it after the retention period has passed.\r\n\
                 Vault: {vault};location=local"
            ),
        )
    }

    /// 403 `Forbidden` / `SecretManagedByKeyVault` for a write to a certificate-backed secret.
    pub fn managed_by_key_vault(operation: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            Some("SecretManagedByKeyVault"),
            format!("Operation \"{operation}\" is not allowed as this object's lifetime is managed by Key Vault."),
        )
    }

    /// 400 `BadParameter` for an `api-version` the service does not know.
    pub fn unknown_api_version(given: &str, latest: &str) -> Self {
        Self::bad_parameter(format!(
            "The specified version ({given}) is not recognized. Consider using the latest supported version ({latest})."
        ))
    }

    /// 401 `Unauthorized` with a fresh challenge mid-session (fault injection: a revoked token,
    /// a continuous-access-evaluation event).
    pub fn challenge() -> Self {
        Self::new(
            401,
            "Unauthorized",
            None,
            "AKV10032: The token was revoked; authenticate again (emulator fault injection).".into(),
        )
    }

    /// 403 `Forbidden` / `SecretDisabled` for a read of a disabled secret version.
    pub fn secret_disabled() -> Self {
        Self::new(
            403,
            "Forbidden",
            Some("SecretDisabled"),
            "Operation get is not allowed on a disabled secret.".into(),
        )
    }

    /// 404 `SecretNotFound`.
    pub fn secret_not_found(what: &str) -> Self {
        Self::new(
            404,
            "SecretNotFound",
            None,
            format!("A secret with (name/id) {what} was not found in this key vault."),
        )
    }

    /// 404 `SecretNotFound` for the deleted-secrets collection.
    pub fn deleted_secret_not_found(name: &str) -> Self {
        Self::new(404, "SecretNotFound", None, format!("Deleted Secret not found: {name}"))
    }

    /// 409 `Conflict` / `ObjectIsDeletedButRecoverable`.
    pub fn deleted_but_recoverable(name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            Some("ObjectIsDeletedButRecoverable"),
            format!(
                "Secret {name} is currently in a deleted but recoverable state, and its name cannot \
                 be reused; in this state, the secret can only be recovered or purged."
            ),
        )
    }

    /// 409 `Conflict` / `ObjectIsBeingDeleted`.
    pub fn being_deleted(name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            Some("ObjectIsBeingDeleted"),
            format!("Secret {name} is currently being deleted."),
        )
    }

    /// 409 `Conflict` / `ObjectIsBeingRecovered`.
    pub fn being_recovered(name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            Some("ObjectIsBeingRecovered"),
            format!("Secret {name} is currently being recovered."),
        )
    }

    /// 429 `Throttled`, with `Retry-After`.
    pub fn throttled(retry_after_s: u64) -> Self {
        let mut error = Self::new(
            429,
            "Throttled",
            None,
            "Request was not processed because too many requests were received (emulator fault injection).".into(),
        );
        error.retry_after_s = Some(retry_after_s);
        error
    }

    /// An injected status, with the given body fields or a default code per status (429 is
    /// `Throttled` with `Retry-After`, 1 s unless given).
    pub fn injected(
        status: u16,
        retry_after_s: Option<u64>,
        code: Option<&str>,
        inner: Option<&str>,
        message: Option<&str>,
    ) -> Self {
        let default_code = match status {
            400 => "BadParameter",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            409 => "Conflict",
            429 => "Throttled",
            500 => "InternalServerError",
            502 => "BadGateway",
            503 => "ServiceUnavailable",
            504 => "GatewayTimeout",
            _ => "InjectedFault",
        };
        let mut error = if status == 429 {
            Self::throttled(retry_after_s.unwrap_or(1))
        } else {
            let mut error = Self::new(status, default_code, None, format!("Injected fault: HTTP {status}."));
            error.retry_after_s = retry_after_s;
            error
        };
        if let Some(code) = code {
            error.code = Cow::Owned(code.to_owned());
        }
        error.inner = inner.map(|inner| Cow::Owned(inner.to_owned()));
        if let Some(message) = message {
            error.message = message.to_owned();
        }
        error
    }

    /// 405 for a path the service knows with a method it does not.
    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            None,
            "The requested method is not allowed on this resource.".into(),
        )
    }

    /// 404 for a path that is not part of the secrets data plane.
    pub fn unknown_path(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            None,
            format!("The emulator serves no resource at {path}."),
        )
    }

    /// 501 for operations the emulator leaves out (backup, restore).
    pub fn not_implemented(what: &str) -> Self {
        Self::new(
            501,
            "NotImplemented",
            None,
            format!("The Key Vault emulator does not implement {what}."),
        )
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(inner) = &self.inner {
            error["innererror"] = json!({ "code": inner });
        }
        json!({ "error": error })
    }
}
