//! The service's error answers: a status, a code and the `{"error":{…}}` body.

use serde_json::{Value, json};

/// One error answer, shaped like the real service's: `{"error":{"code","message","innererror"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `error.code`.
    pub code: &'static str,
    /// `error.innererror.code`, where the service sends one.
    pub inner: Option<&'static str>,
    /// `error.message`.
    pub message: String,
    /// `Retry-After` seconds (throttling only).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, inner: Option<&'static str>, message: String) -> Self {
        Self {
            status,
            code,
            inner,
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

    /// 403 `Forbidden` / `ForbiddenByRbac`, naming the data action the caller lacks.
    pub fn forbidden_by_rbac(action: &str, vault: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            Some("ForbiddenByRbac"),
            format!(
                "Caller is not authorized to perform action on resource.\r\n\
                 If role assignments, deny assignments or role definitions were changed recently, \
                 please observe propagation time.\r\nCaller: appid=keyvault-emulator-readonly\r\n\
                 Action: '{action}'\r\nResource: '/vaults/{vault}'\r\nAssignment: (not found)\r\n\
                 Vault: {vault};location=local\r\n"
            ),
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

    /// Any other injected status (503 and friends).
    pub fn injected(status: u16, retry_after_s: Option<u64>) -> Self {
        let code = match status {
            500 => "InternalServerError",
            502 => "BadGateway",
            503 => "ServiceUnavailable",
            504 => "GatewayTimeout",
            _ => "InjectedFault",
        };
        let mut error = Self::new(status, code, None, format!("Injected fault: HTTP {status}."));
        error.retry_after_s = retry_after_s;
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
        if let Some(inner) = self.inner {
            error["innererror"] = json!({ "code": inner });
        }
        json!({ "error": error })
    }
}
