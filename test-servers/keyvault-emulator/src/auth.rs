//! Bearer tokens, the authentication challenge, and the data actions each role may perform.

use std::fmt;

use rand::RngExt as _;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The tokens the emulator knows, one per role. `Debug` never shows them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Full rights on the data plane and the control endpoints.
    pub full: String,
    /// Reads only (the "Key Vault Secrets User" role): get, list, get deleted.
    pub read_only: String,
    /// Always answered with 401, as a token for the wrong audience or tenant is.
    pub rejected: String,
    /// Metadata only (the "Key Vault Reader" role): list, list versions, get/list deleted; a
    /// read of a value is refused.
    #[serde(default = "random_metadata_reader")]
    pub metadata_reader: String,
    /// Everything but purge ("Key Vault Secrets Officer" without the purge data action).
    #[serde(default = "random_no_purge")]
    pub no_purge: String,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("full", &"******")
            .field("read_only", &"******")
            .field("rejected", &"******")
            .field("metadata_reader", &"******")
            .field("no_purge", &"******")
            .finish()
    }
}

fn random_token(kind: &str) -> String {
    let bytes: [u8; 16] = rand::rng().random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("kvemu-{kind}-{hex}")
}

fn random_metadata_reader() -> String {
    random_token("metadata")
}

fn random_no_purge() -> String {
    random_token("nopurge")
}

impl Tokens {
    /// Fresh random tokens.
    pub fn random() -> Self {
        Self {
            full: random_token("full"),
            read_only: random_token("readonly"),
            rejected: random_token("rejected"),
            metadata_reader: random_metadata_reader(),
            no_purge: random_no_purge(),
        }
    }

    fn all(&self) -> [&str; 5] {
        [
            &self.full,
            &self.read_only,
            &self.rejected,
            &self.metadata_reader,
            &self.no_purge,
        ]
    }

    /// Checks the tokens are non-empty and distinct.
    pub fn validate(&self) -> Result<(), String> {
        let all = self.all();
        if all.iter().any(|t| t.is_empty()) {
            return Err("tokens must not be empty".into());
        }
        for (i, a) in all.iter().enumerate() {
            if all[i + 1..].contains(a) {
                return Err("the full, read-only, rejected, metadata-reader and no-purge tokens must differ".into());
            }
        }
        Ok(())
    }

    /// Decides what an `Authorization` header grants. A token may carry an expiry as
    /// `TOKEN~exp=UNIX_SECONDS` (what a test credential hands out to prove that clients
    /// refresh tokens in time): past it, the token is refused with 401 `TokenExpired`.
    pub fn check(&self, authorization: Option<&str>) -> Result<Access, ApiError> {
        self.check_at(authorization, now_unix())
    }

    /// [`check`](Self::check) at the Unix time `now`.
    pub fn check_at(&self, authorization: Option<&str>, now: i64) -> Result<Access, ApiError> {
        let Some(token) = authorization.and_then(bearer) else {
            return Err(ApiError::missing_token());
        };
        let token = match token.rsplit_once("~exp=") {
            Some((base, exp)) => match exp.parse::<i64>() {
                Ok(exp) if exp <= now => return Err(ApiError::expired_token()),
                Ok(_) => base,
                Err(_) => return Err(ApiError::rejected_token()),
            },
            None => token,
        };
        if token == self.full {
            Ok(Access::Full)
        } else if token == self.read_only {
            Ok(Access::ReadOnly)
        } else if token == self.metadata_reader {
            Ok(Access::MetadataReader)
        } else if token == self.no_purge {
            Ok(Access::NoPurge)
        } else {
            Err(ApiError::rejected_token())
        }
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Everything.
    Full,
    /// Reads only ("Key Vault Secrets User").
    ReadOnly,
    /// Metadata only ("Key Vault Reader"): no value reads.
    MetadataReader,
    /// Everything but purge.
    NoPurge,
}

impl Access {
    /// The `appid` the service's RBAC denial names for this caller.
    pub fn caller(self) -> &'static str {
        match self {
            Self::Full => "keyvault-emulator-full",
            Self::ReadOnly => "keyvault-emulator-readonly",
            Self::MetadataReader => "keyvault-emulator-metadata-reader",
            Self::NoPurge => "keyvault-emulator-no-purge",
        }
    }
}

/// The RBAC data action an operation needs, as Key Vault names it in a denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read a value.
    GetSecret,
    /// List, list versions, get deleted.
    ReadMetadata,
    /// PUT.
    SetSecret,
    /// PATCH.
    Update,
    /// DELETE.
    Delete,
    /// Recover a deleted secret.
    Recover,
    /// Purge a deleted secret.
    Purge,
}

impl Action {
    /// The action's full name.
    pub fn name(self) -> &'static str {
        match self {
            Self::GetSecret => "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            Self::ReadMetadata => "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
            Self::SetSecret => "Microsoft.KeyVault/vaults/secrets/setSecret/action",
            Self::Update => "Microsoft.KeyVault/vaults/secrets/update/action",
            Self::Delete => "Microsoft.KeyVault/vaults/secrets/delete",
            Self::Recover => "Microsoft.KeyVault/vaults/secrets/recover/action",
            Self::Purge => "Microsoft.KeyVault/vaults/secrets/purge/action",
        }
    }

    /// Whether `access` includes this action.
    pub fn allowed(self, access: Access) -> bool {
        match access {
            Access::Full => true,
            Access::ReadOnly => matches!(self, Self::GetSecret | Self::ReadMetadata),
            Access::MetadataReader => self == Self::ReadMetadata,
            Access::NoPurge => self != Self::Purge,
        }
    }
}

/// The `WWW-Authenticate` value of every 401: `resource` is `https://localhost:PORT`, so a
/// client's challenge-resource check passes for `https://NAME.localhost:PORT`.
pub fn challenge(tenant: &str, port: u16) -> String {
    format!(
        "Bearer authorization=\"https://login.microsoftonline.com/{tenant}\", resource=\"https://localhost:{port}\""
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens {
            full: "f".into(),
            read_only: "r".into(),
            rejected: "x".into(),
            metadata_reader: "m".into(),
            no_purge: "n".into(),
        }
    }

    #[test]
    fn bearer_tokens_map_to_access() {
        let t = tokens();
        assert_eq!(t.check(Some("Bearer f")).unwrap(), Access::Full);
        assert_eq!(t.check(Some("bearer r")).unwrap(), Access::ReadOnly);
        assert_eq!(t.check(None).unwrap_err().message, ApiError::missing_token().message);
        assert_eq!(t.check(Some("Basic f")).unwrap_err().status, 401);
        assert_eq!(t.check(Some("Bearer ")).unwrap_err().status, 401);
        let rejected = t.check(Some("Bearer x")).unwrap_err();
        assert_eq!((rejected.status, rejected.code.as_ref()), (401, "Unauthorized"));
        assert_eq!(t.check(Some("Bearer unknown")).unwrap_err().status, 401);
    }

    #[test]
    fn tokens_with_an_expiry_are_refused_once_it_passed() {
        let t = tokens();
        assert_eq!(t.check_at(Some("Bearer f~exp=100"), 99).unwrap(), Access::Full);
        assert_eq!(t.check_at(Some("Bearer r~exp=100"), 50).unwrap(), Access::ReadOnly);
        let expired = t.check_at(Some("Bearer f~exp=100"), 100).unwrap_err();
        assert_eq!((expired.status, expired.inner.as_deref()), (401, Some("TokenExpired")));
        assert_eq!(t.check_at(Some("Bearer f~exp=soon"), 0).unwrap_err().status, 401);
        assert_eq!(t.check_at(Some("Bearer x~exp=100"), 0).unwrap_err().status, 401);
    }

    #[test]
    fn read_only_may_only_read() {
        for action in [Action::GetSecret, Action::ReadMetadata] {
            assert!(action.allowed(Access::ReadOnly));
        }
        for action in [
            Action::SetSecret,
            Action::Update,
            Action::Delete,
            Action::Recover,
            Action::Purge,
        ] {
            assert!(!action.allowed(Access::ReadOnly));
            assert!(action.allowed(Access::Full));
        }
        assert_eq!(
            Action::SetSecret.name(),
            "Microsoft.KeyVault/vaults/secrets/setSecret/action"
        );
    }

    #[test]
    fn metadata_reader_lists_and_no_purge_does_all_but_purge() {
        let t = tokens();
        assert_eq!(t.check(Some("Bearer m")).unwrap(), Access::MetadataReader);
        assert_eq!(t.check(Some("Bearer n")).unwrap(), Access::NoPurge);
        assert!(Action::ReadMetadata.allowed(Access::MetadataReader));
        for action in [Action::GetSecret, Action::SetSecret, Action::Delete, Action::Purge] {
            assert!(!action.allowed(Access::MetadataReader), "{action:?}");
        }
        for action in [
            Action::GetSecret,
            Action::ReadMetadata,
            Action::SetSecret,
            Action::Update,
            Action::Delete,
            Action::Recover,
        ] {
            assert!(action.allowed(Access::NoPurge), "{action:?}");
        }
        assert!(!Action::Purge.allowed(Access::NoPurge));
    }

    #[test]
    fn a_token_file_without_the_newer_roles_gets_random_ones() {
        let t: Tokens = serde_json::from_str(r#"{"full":"f","read_only":"r","rejected":"x"}"#).unwrap();
        assert!(t.metadata_reader.starts_with("kvemu-metadata-"));
        assert!(t.no_purge.starts_with("kvemu-nopurge-"));
        assert!(t.validate().is_ok());
        assert!(
            Tokens {
                no_purge: "f".into(),
                ..t
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn challenge_names_tenant_and_localhost_resource() {
        assert_eq!(
            challenge("t1", 8443),
            "Bearer authorization=\"https://login.microsoftonline.com/t1\", resource=\"https://localhost:8443\""
        );
    }

    #[test]
    fn debug_redacts_tokens() {
        let shown = format!("{:?}", Tokens::random());
        assert!(!shown.contains("kvemu-"), "{shown}");
        let t = Tokens::random();
        assert!(t.validate().is_ok());
        assert!(
            Tokens {
                rejected: t.full.clone(),
                ..t
            }
            .validate()
            .is_err()
        );
    }
}
