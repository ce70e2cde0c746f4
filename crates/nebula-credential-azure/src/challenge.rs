//! Our own check of Key Vault's authentication challenge, so a vault whose challenge names
//! another resource gets its own error instead of the SDK's untyped one.
//!
//! The SDK sends a client's first request without a token and takes the token's scope from
//! the 401 challenge (`resource="https://vault.azure.net"` or `scope=…`); with
//! `verify_challenge_resource` it refuses a resource whose host is not a parent of the
//! vault's host, as an `ErrorKind::Other` error told apart only by its text. This policy
//! runs between the SDK's bearer policy and the transport, applies the same rule to the
//! challenge first and fails with a typed [`ChallengeMismatch`] that the error table
//! recognises. The SDK's own verification stays on behind it.

use azure_core::error::ErrorKind;
use azure_core::http::headers::WWW_AUTHENTICATE;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request, StatusCode};
use std::sync::Arc;

/// The vault's challenge names a resource whose host does not cover the vault's host: a
/// token for it would be a token for another service, so none is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChallengeMismatch {
    /// The resource (or scope) the challenge names.
    pub(crate) resource: String,
    /// The vault's host.
    pub(crate) host: String,
}

impl std::fmt::Display for ChallengeMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the vault at {:?} asked for a token of {:?}, whose host is not a parent of the vault's, so no token was \
             sent",
            self.host, self.resource
        )
    }
}

impl std::error::Error for ChallengeMismatch {}

/// The pipeline policy that checks challenges (see the module docs).
#[derive(Debug)]
pub(crate) struct ChallengeCheck;

// The trait's `Context` lifetime is late-bound; naming it (`Context<'_>`) breaks the impl.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl Policy for ChallengeCheck {
    async fn send(&self, ctx: &Context, request: &mut Request, next: &[Arc<dyn Policy>]) -> PolicyResult {
        let response = next[0].send(ctx, request, &next[1..]).await?;
        if response.status() == StatusCode::Unauthorized
            && let Some(resource) = response
                .headers()
                .get_optional_str(&WWW_AUTHENTICATE)
                .and_then(challenge_resource)
        {
            let host = request.url().host_str().unwrap_or_default();
            if !covers(&resource, host) {
                return Err(azure_core::Error::new(
                    ErrorKind::Other,
                    ChallengeMismatch {
                        resource,
                        host: host.to_string(),
                    },
                ));
            }
        }
        Ok(response)
    }
}

/// The `scope` or `resource` a Key Vault challenge names, as the SDK reads it.
fn challenge_resource(challenge: &str) -> Option<String> {
    ["scope=\"", "resource=\""].iter().find_map(|key| {
        let start = challenge.find(key)? + key.len();
        let end = challenge[start..].find('"')?;
        Some(challenge[start..start + end].to_string())
    })
}

/// The SDK's rule: the vault's host must end with `.` + the resource's host.
fn covers(resource: &str, host: &str) -> bool {
    match url::Url::parse(resource)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    {
        Some(resource_host) => host.to_ascii_lowercase().ends_with(&format!(".{resource_host}")),
        // Unparseable: the SDK's own check reports it.
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resource_must_be_a_parent_of_the_vault_host() {
        let challenge =
            r#"Bearer authorization="https://login.microsoftonline.com/t", resource="https://vault.azure.net""#;
        let resource = challenge_resource(challenge).unwrap();
        assert_eq!(resource, "https://vault.azure.net");
        assert!(covers(&resource, "myvault.vault.azure.net"));
        assert!(covers(&resource, "MyVault.Vault.Azure.Net"));
        assert!(!covers(&resource, "kv.corp.example"));
        assert!(!covers(&resource, "vault.azure.net.evil.example"));
        let scoped =
            r#"Bearer authorization="https://login.microsoftonline.com/t", scope="https://vault.azure.cn/.default""#;
        let resource = challenge_resource(scoped).unwrap();
        assert!(covers(&resource, "kv1.vault.azure.cn"));
        assert!(!covers(&resource, "kv1.vault.azure.net"));
        assert_eq!(challenge_resource("Bearer realm=\"x\""), None);
    }
}
