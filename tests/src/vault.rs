//! The HashiCorp Vault row: OpenBao in dev mode, KV v2 at `secret/`, entries under
//! `nebula-test/<namespace>/`.

use std::collections::HashMap;
use std::sync::Arc;

use nebula_credential::vault::{VaultAuth, VaultConfig};
use nebula_credential::{CredentialId, StorageConfig, StorageError, StorageProvider};
use nebula_credential_core::conformance::{self, CaseResult, Identity, Opened};
use nebula_credential_core::layers::BoxFuture;
use nebula_credential_core::secrecy::SecretString;
use nebula_credential_core::{BoxError, RetryPolicy};
use vaultrs::api::kv2::requests::SetSecretMetadataRequest;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::kv2;

use crate::{ReadOnlyRow, Row, emulator_var, open_config, opened, unique};

/// The backend's name (feature, `PROVIDERS`, emulator).
pub const NAME: &str = "vault";

/// Why there is no tag-sync hook.
pub const OTHER_TOOLS_ABSENT: &str = "Vault has no default tags; custom_metadata another tool adds is kept, \
     proven mid-store by vault.rs `custom_metadata_another_tool_adds_during_a_store_survives`";

/// The emulator's variable `name`.
pub fn var(name: &str) -> String {
    emulator_var(name, NAME)
}

/// The plain-http address of the dev server.
pub fn addr() -> String {
    var("NEBULA_TEST_VAULT_ADDR")
}

/// The root token.
pub fn root_token() -> String {
    var("NEBULA_TEST_VAULT_TOKEN")
}

/// A raw vaultrs client with the root token, for checks behind the provider's back.
pub fn raw() -> VaultClient {
    client(&addr(), &root_token())
}

/// A raw vaultrs client of `address` with `token`.
pub fn client(address: &str, token: &str) -> VaultClient {
    VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(address)
            .token(token)
            .verify(true)
            .build()
            .expect("vaultrs settings"),
    )
    .expect("vaultrs client")
}

/// The path prefix of `namespace` (under the `secret` mount).
pub fn prefix(namespace: &str) -> String {
    format!("nebula-test/{namespace}")
}

/// The KV path of `id` in `namespace`.
pub fn entry_path(namespace: &str, id: &CredentialId) -> String {
    format!("{}/{id}", prefix(namespace))
}

/// The configuration every Vault test starts from: root token, entries under
/// `nebula-test/<namespace>/`.
pub fn config(namespace: &str) -> VaultConfig {
    with_token(namespace, addr(), root_token())
}

/// [`config`] at `address` with `token`.
pub fn with_token(namespace: &str, address: String, token: String) -> VaultConfig {
    VaultConfig {
        secret_prefix: prefix(namespace),
        ..VaultConfig::with_token(address, token)
    }
}

/// The AppRole of the emulator's `<role_var>_ROLE_ID` / `<role_var>_SECRET_ID`.
pub fn approle(role_var: &str) -> VaultAuth {
    VaultAuth::AppRole {
        role_id: var(&format!("{role_var}_ROLE_ID")),
        secret_id: SecretString::from(var(&format!("{role_var}_SECRET_ID"))),
        mount: "approle".into(),
    }
}

/// A configuration of the TLS listener, trusting `ca_cert` (a path or inline PEM) if given.
pub fn tls_config(ca_cert: Option<String>) -> VaultConfig {
    VaultConfig {
        ca_cert,
        ..with_token(&unique("tls"), var("NEBULA_TEST_VAULT_TLS_ADDR"), root_token())
    }
}

/// `c` through `open()`'s full layer stack.
pub async fn provider(c: VaultConfig) -> Arc<dyn StorageProvider> {
    open_config(&StorageConfig::Vault(c)).await
}

/// A namespace of its own for `tag`, and a provider over it.
pub async fn fresh(tag: &str) -> (String, Arc<dyn StorageProvider>) {
    let ns = unique(tag);
    let p = provider(config(&ns)).await;
    (ns, p)
}

/// The value of a foreign entry.
pub fn foreign_value() -> HashMap<String, String> {
    HashMap::from([("value".to_string(), "not ours".to_string())])
}

/// The custom metadata of a foreign entry.
pub fn foreign_tags() -> HashMap<String, String> {
    HashMap::from([("owner".to_string(), "other-team".to_string())])
}

/// Plants a KV entry under our prefix without the marker, through raw vaultrs.
pub struct Foreign;

impl conformance::Foreign for Foreign {
    fn plant<'a>(&'a self, ns: &'a str, id: &'a CredentialId) -> BoxFuture<'a, CaseResult> {
        Box::pin(async move {
            let path = entry_path(ns, id);
            kv2::set(&raw(), "secret", &path, &foreign_value()).await?;
            let mut opts = SetSecretMetadataRequest::builder();
            opts.custom_metadata(foreign_tags());
            kv2::set_metadata(&raw(), "secret", &path, Some(&mut opts)).await?;
            Ok(())
        })
    }

    fn intact<'a>(&'a self, ns: &'a str, id: &'a CredentialId) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async move {
            let path = entry_path(ns, id);
            let value: HashMap<String, String> = kv2::read(&raw(), "secret", &path).await?;
            let m = kv2::read_metadata(&raw(), "secret", &path).await?;
            Ok(value == foreign_value() && m.current_version == 1 && m.custom_metadata == Some(foreign_tags()))
        })
    }

    fn remove<'a>(&'a self, ns: &'a str, id: &'a CredentialId) -> BoxFuture<'a, CaseResult> {
        Box::pin(async move {
            kv2::delete_metadata(&raw(), "secret", &entry_path(ns, id)).await?;
            Ok(())
        })
    }
}

/// The emulator's read-only token (policy: read and list).
pub struct ReadOnly;

impl Identity for ReadOnly {
    fn open<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Opened, BoxError>> {
        Box::pin(async move {
            let c = with_token(namespace, addr(), var("NEBULA_TEST_VAULT_READONLY_TOKEN"));
            opened(&StorageConfig::Vault(c)).await
        })
    }

    fn secret(&self) -> Option<String> {
        Some(var("NEBULA_TEST_VAULT_READONLY_TOKEN"))
    }

    /// Vault's denial names the path and the capability to grant.
    fn explains(&self, namespace: &str, op: &str, id: &CredentialId, error: &StorageError) -> CaseResult {
        let m = error.to_string();
        let capability = match op {
            "store" => "`update`",
            "create" => "`create`",
            _ => "`delete`",
        };
        if !m.contains(capability) {
            return Err(format!("{op}: the denial names {capability}: {m}").into());
        }
        if op == "store" && !m.contains(&format!("secret/data/{}", entry_path(namespace, id))) {
            return Err(format!("{op}: the denial names the path: {m}").into());
        }
        Ok(())
    }
}

/// The bogus token every Vault rejection test uses.
pub const BOGUS_TOKEN: &str = "s.BOGUSTOKEN0123456789";

/// A token the server does not know.
pub struct Rejected;

impl Identity for Rejected {
    fn open<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Opened, BoxError>> {
        Box::pin(async move {
            let c = with_token(namespace, addr(), BOGUS_TOKEN.into());
            opened(&StorageConfig::Vault(c)).await
        })
    }

    fn secret(&self) -> Option<String> {
        Some("BOGUSTOKEN".into())
    }
}

/// The TLS listener without its CA trusted.
pub struct UntrustedCa;

impl Identity for UntrustedCa {
    fn open<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Opened, BoxError>> {
        Box::pin(async move {
            let c = VaultConfig {
                retry: RetryPolicy {
                    max_retries: 5,
                    ..RetryPolicy::default()
                },
                ..with_token(namespace, var("NEBULA_TEST_VAULT_TLS_ADDR"), root_token())
            };
            opened(&StorageConfig::Vault(c)).await
        })
    }

    /// The refusal names `ca_cert`, the setting that trusts a CA.
    fn explains(&self, _: &str, op: &str, _: &CredentialId, error: &StorageError) -> CaseResult {
        if error.to_string().contains("ca_cert") {
            Ok(())
        } else {
            Err(format!("{op}: the refusal names ca_cert: {error}").into())
        }
    }
}

/// The row of `nebula_cred.rs`.
pub fn row() -> Row {
    Row {
        name: NAME,
        config: |ns| StorageConfig::Vault(config(ns)),
        read_only: Ok(ReadOnlyRow {
            config: || {
                StorageConfig::Vault(with_token(
                    &unique("ro"),
                    addr(),
                    var("NEBULA_TEST_VAULT_READONLY_TOKEN"),
                ))
            },
            names: &["create"],
        }),
    }
}
