//! [`AzureKeyVaultConfig`], [`AzureCredential`] and their validation.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use nebula_credential_core::remote::{check_service_url, config_keys, env, redacted_url};
use nebula_credential_core::secrecy::{ExposeSecret, SecretString};
use nebula_credential_core::{
    ConfigError, ProviderConfig, RetryPolicy, StorageError, StorageProvider, Timeouts, async_trait,
};
use serde::{Deserialize, Serialize, Serializer};

use crate::PROVIDER;
use crate::naming::{MAX_NAME_LEN, MAX_PREFIX_LEN};
use crate::provider::AzureKeyVaultProvider;
use crate::tags::{MAX_DEFAULT_TAGS, validate_default_tag};

/// Host suffixes of Key Vault in the clouds that serve secrets: public, China, US
/// Government. Managed HSM hosts (keys only) and Azure Germany (closed in 2021) are refused.
pub const KNOWN_VAULT_DOMAINS: &[&str] = &["vault.azure.net", "vault.azure.cn", "vault.usgovcloudapi.net"];

/// What `delete` does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// The service's soft delete: the secret stays recoverable for the vault's retention
    /// period (7–90 days). Storing the id again recovers it, then writes a new version.
    #[default]
    Soft,
    /// Soft delete, wait until the deleted secret exists, then purge it (needs the purge
    /// permission and a vault without purge protection). Storing the id again waits out a
    /// purge still in progress.
    Purge,
}

/// How the provider authenticates to Key Vault.
///
/// ```toml
/// [credential]
/// type = "service_principal"
/// tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47"
/// client_id = "3c9c3a6e-1b9f-4f57-9c7a-2f6d1c2e8b4a"
/// client_secret = "…"
/// ```
#[derive(Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AzureCredential {
    /// The managed identity of the VM, App Service, Functions or container app: the
    /// system-assigned one, or the user-assigned one with `client_id`.
    ManagedIdentity {
        /// Client id (GUID) of a user-assigned identity; `None` for the system-assigned one.
        #[serde(default)]
        client_id: Option<String>,
    },
    /// An app registration with a client secret.
    ServicePrincipal {
        /// Directory (tenant) id, a GUID.
        tenant_id: String,
        /// Application (client) id, a GUID.
        client_id: String,
        /// The client secret; never printed or serialized.
        #[serde(serialize_with = "redacted")]
        client_secret: SecretString,
    },
    /// AKS workload identity: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
    /// `AZURE_FEDERATED_TOKEN_FILE`, as the webhook injects them.
    WorkloadIdentity,
    /// The Azure CLI (`az login`), then the Azure Developer CLI (`azd auth login`).
    DeveloperTools,
    /// Any `TokenCredential` built in code ([`AzureCredential::custom`]); not
    /// (de)serializable.
    #[serde(skip)]
    Custom(CustomCredential),
}

/// A `TokenCredential` passed in code, compared by identity.
#[derive(Clone)]
pub struct CustomCredential(pub Arc<dyn TokenCredential>);

impl fmt::Debug for CustomCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustomCredential(..)")
    }
}

impl PartialEq for CustomCredential {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

fn redacted<S: Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("[REDACTED]")
}

impl AzureCredential {
    /// Any credential of azure_identity (or your own `TokenCredential`), e.g. a
    /// `ClientCertificateCredential`. The SDK's bearer policy caches its tokens and asks
    /// again before they expire.
    pub fn custom(credential: Arc<dyn TokenCredential>) -> Self {
        AzureCredential::Custom(CustomCredential(credential))
    }

    /// Describes the credential for error messages: kind, client and tenant, never a secret.
    pub fn describe(&self) -> String {
        match self {
            AzureCredential::ManagedIdentity { client_id: None } => "the system-assigned managed identity".into(),
            AzureCredential::ManagedIdentity { client_id: Some(c) } => {
                format!("the user-assigned managed identity {c}")
            }
            AzureCredential::ServicePrincipal {
                tenant_id, client_id, ..
            } => format!("service principal {client_id} in tenant {tenant_id}"),
            AzureCredential::WorkloadIdentity => {
                let var = |n| std::env::var(n).unwrap_or_else(|_| "(unset)".into());
                format!(
                    "workload identity {} in tenant {}",
                    var("AZURE_CLIENT_ID"),
                    var("AZURE_TENANT_ID")
                )
            }
            AzureCredential::DeveloperTools => "the Azure CLI / azd login".into(),
            AzureCredential::Custom(_) => "the custom TokenCredential".into(),
        }
    }
}

impl Default for AzureCredential {
    fn default() -> Self {
        AzureCredential::ManagedIdentity { client_id: None }
    }
}

impl fmt::Debug for AzureCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AzureCredential::ManagedIdentity { client_id } => {
                f.debug_struct("ManagedIdentity").field("client_id", client_id).finish()
            }
            AzureCredential::ServicePrincipal {
                tenant_id, client_id, ..
            } => f
                .debug_struct("ServicePrincipal")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .field("client_secret", &"[REDACTED]")
                .finish(),
            AzureCredential::WorkloadIdentity => f.write_str("WorkloadIdentity"),
            AzureCredential::DeveloperTools => f.write_str("DeveloperTools"),
            AzureCredential::Custom(c) => c.fmt(f),
        }
    }
}

impl PartialEq for AzureCredential {
    fn eq(&self, other: &Self) -> bool {
        use AzureCredential::*;
        match (self, other) {
            (ManagedIdentity { client_id: a }, ManagedIdentity { client_id: b }) => a == b,
            (
                ServicePrincipal {
                    tenant_id: t1,
                    client_id: c1,
                    client_secret: s1,
                },
                ServicePrincipal {
                    tenant_id: t2,
                    client_id: c2,
                    client_secret: s2,
                },
            ) => t1 == t2 && c1 == c2 && s1.expose_secret() == s2.expose_secret(),
            (WorkloadIdentity, WorkloadIdentity) | (DeveloperTools, DeveloperTools) => true,
            (Custom(a), Custom(b)) => a == b,
            _ => false,
        }
    }
}

/// Settings of the Azure Key Vault backend (`provider = "azure"`).
///
/// ```toml
/// provider = "azure"
/// endpoint = "https://myapp-prod.vault.azure.net"
/// secret_prefix = "myapp-"
/// delete_mode = "soft"                # or "purge"
/// [credential]
/// type = "managed_identity"
/// [default_tags]
/// "myorg:team" = "payments"
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct AzureKeyVaultConfig {
    /// The vault, `https://NAME.vault.azure.net` (or `vault.azure.cn`,
    /// `vault.usgovcloudapi.net`). Required. Managed HSM hosts (keys only) and Azure Germany
    /// (closed) are refused. A service principal or workload identity gets its tokens from
    /// the Entra ID authority of the vault's cloud.
    pub endpoint: String,
    /// Accept an `endpoint` outside the clouds' Key Vault domains (emulators). The vault's
    /// authentication challenge must still name a resource whose host is a parent of this
    /// host, so a private endpoint keeps the vault's own name (resolved to the private IP by
    /// the `privatelink.vaultcore.azure.net` DNS zone) rather than a custom DNS name.
    /// Default `false`.
    pub allow_custom_host: bool,
    /// A private CA to trust besides the system roots: a path to a PEM file, or the PEM
    /// text itself. TLS verification is never turned off.
    pub ca_cert: Option<String>,
    /// How to authenticate (default: the system-assigned managed identity).
    pub credential: AzureCredential,
    /// Prepended to every secret name (default `nebula-`): 1 to 64 characters of
    /// `[0-9a-z-]` starting with a letter, so every credential id still fits in Key Vault's
    /// 127. Upper case is refused: Key Vault folds the case of names, so `App-` and `app-`
    /// would be one namespace.
    pub secret_prefix: String,
    /// Tags put on every secret besides the credential's own; at most 1 (Key Vault allows
    /// 15, 4 are reserved and credentials may carry 10). Keys need a character credential
    /// tags cannot hold, e.g. `myorg:team`.
    pub default_tags: BTreeMap<String, String>,
    /// Key Vault REST api-version to send instead of the SDK's (e.g. `7.5`, `2025-07-01`).
    pub api_version: Option<String>,
    /// What `delete` does (default: soft delete).
    pub delete_mode: DeleteMode,
    /// Retry policy of the layer stack (`[retry]`); the SDK's own retries are off.
    pub retry: RetryPolicy,
    /// Deadlines of the layer stack (`[timeouts]`), each 1..=60 s here.
    pub timeouts: Timeouts,
}

impl Default for AzureKeyVaultConfig {
    fn default() -> Self {
        AzureKeyVaultConfig {
            endpoint: String::new(),
            allow_custom_host: false,
            ca_cert: None,
            credential: AzureCredential::default(),
            secret_prefix: "nebula-".into(),
            default_tags: BTreeMap::new(),
            api_version: None,
            delete_mode: DeleteMode::default(),
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
        }
    }
}

/// Keys of earlier releases, read under their new names with a deprecation warning.
const RENAMED_KEYS: &[(&str, &str)] = &[("vault_url", "endpoint"), ("custom_endpoint", "allow_custom_host")];

/// Reads the keys of earlier releases (`vault_url`, `custom_endpoint`) under their new
/// names, warning once for each.
impl<'de> Deserialize<'de> for AzureKeyVaultConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        AzureKeyVaultConfig::deserialize(config_keys::Renamed::new(
            d,
            config_keys::Renames {
                provider: PROVIDER,
                keys: RENAMED_KEYS,
                values: &[],
                upgrades: &[],
            },
        ))
    }
}

impl Serialize for AzureKeyVaultConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        AzureKeyVaultConfig::serialize(self, s)
    }
}

impl fmt::Debug for AzureKeyVaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureKeyVaultConfig")
            .field("endpoint", &redacted_url(&self.endpoint))
            .field("allow_custom_host", &self.allow_custom_host)
            .field("ca_cert", &self.ca_cert.as_ref().map(|_| "(set)"))
            .field("credential", &self.credential)
            .field("secret_prefix", &self.secret_prefix)
            .field("default_tags", &self.default_tags)
            .field("api_version", &self.api_version)
            .field("delete_mode", &self.delete_mode)
            .field("retry", &self.retry)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// Whether `s` is a GUID (`8-4-4-4-12` hex digits).
pub(crate) fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Checks `endpoint`: https (plain http is never accepted, loopback or not: Key Vault and the
/// SDK's bearer authentication need TLS), then the shared service-URL rules
/// ([`check_service_url`]: a host, no user info, query or fragment), nothing but `/` as
/// path; on top, Azure's own: never a Managed HSM or a closed cloud, and the host a Key
/// Vault of a known cloud unless `custom_host`.
fn check_endpoint(raw: &str, custom_host: bool) -> Result<(), String> {
    if raw.is_empty() {
        return Err("is required, e.g. \"https://myvault.vault.azure.net\" (NEBULA_AZURE_ENDPOINT)".into());
    }
    if !raw.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")) {
        return Err(
            "must be an https:// URL such as \"https://NAME.vault.azure.net\"; Key Vault and the SDK's bearer \
             authentication need TLS"
                .into(),
        );
    }
    let url = check_service_url(raw, false, "allow_http")?;
    if !matches!(url.path(), "" | "/") {
        return Err("must be the vault's root, without a path".into());
    }
    let Some(host) = url.host_str() else {
        return Err("has no host".into());
    };
    if let Some(why) = crate::cloud::refused(host) {
        return Err(format!("has host {host:?}, which is {why}"));
    }
    if custom_host {
        return Ok(());
    }
    let host = host.to_ascii_lowercase();
    let Some((_, name)) = crate::cloud::cloud_of(&host) else {
        return Err(format!(
            "has host {host:?}, which is not a Key Vault of a known cloud ({}); set allow_custom_host = true for \
             emulators (a private endpoint keeps the vault's own name, resolved to its private IP by DNS)",
            KNOWN_VAULT_DOMAINS.join(", ")
        ));
    };
    let valid_name = (3..=24).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && !name.ends_with('-')
        && !name.contains("--")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !valid_name {
        return Err(format!(
            "names the vault {name:?}; vault names have 3 to 24 letters, digits and single hyphens, start with a \
             letter and do not end with a hyphen"
        ));
    }
    if url.port().is_some() {
        return Err("must not name a port for a cloud vault".into());
    }
    Ok(())
}

fn check_api_version(v: &str) -> bool {
    let dotted = v
        .split_once('.')
        .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && a.chars().chain(b.chars()).all(|c| c.is_ascii_digit()));
    let date = |d: &str| {
        let p: Vec<&str> = d.split('-').collect();
        p.iter().map(|x| x.len()).eq([4, 2, 2]) && p.iter().all(|x| x.chars().all(|c| c.is_ascii_digit()))
    };
    dotted
        || date(v)
        || v.strip_suffix("-preview")
            .is_some_and(|d| date(d) || d.split_once('.').is_some())
}

/// Checks the variables the AKS workload identity webhook injects and azure_identity's
/// `WorkloadIdentityCredential` reads; the text completes "credential …".
fn check_workload_identity(env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    let missing = |v: &str| {
        format!(
            "is workload_identity but {v} is not set: the AKS workload identity webhook sets AZURE_TENANT_ID, \
             AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE in pods whose service account is annotated with \
             azure.workload.identity/client-id and that carry the label azure.workload.identity/use: \"true\""
        )
    };
    for var in ["AZURE_TENANT_ID", "AZURE_CLIENT_ID"] {
        let value = env(var).ok_or_else(|| missing(var))?;
        if !is_guid(&value) {
            return Err(format!("is workload_identity but {var} is not a GUID (got {value:?})"));
        }
    }
    env("AZURE_FEDERATED_TOKEN_FILE").ok_or_else(|| missing("AZURE_FEDERATED_TOKEN_FILE"))?;
    Ok(())
}

impl AzureKeyVaultConfig {
    /// The configuration for `endpoint` with every other field at its default.
    pub fn new(endpoint: impl Into<String>) -> Self {
        AzureKeyVaultConfig {
            endpoint: endpoint.into(),
            ..Self::default()
        }
    }
}

#[async_trait]
impl ProviderConfig for AzureKeyVaultConfig {
    fn provider_name(&self) -> &'static str {
        PROVIDER
    }

    fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// The default configuration, validated, with these variables when set (empty = unset):
    /// - `NEBULA_AZURE_ENDPOINT` (else `AZURE_KEYVAULT_URL`, `AZURE_KEY_VAULT_URL`,
    ///   `KEY_VAULT_URL`, the names of Azure's samples) → `endpoint`;
    /// - `NEBULA_AZURE_ALLOW_CUSTOM_HOST` (`true` / `false`) → `allow_custom_host`
    ///   (`NEBULA_AZURE_CUSTOM_ENDPOINT`, its earlier name, is read with a deprecation warning);
    /// - `NEBULA_AZURE_CA_CERT` → `ca_cert` (a PEM path);
    /// - `NEBULA_AZURE_SECRET_PREFIX` → `secret_prefix`;
    /// - `NEBULA_AZURE_DELETE_MODE` (`soft` / `purge`) → `delete_mode`;
    /// - the credential: `NEBULA_AZURE_CREDENTIAL` (`managed_identity`, `service_principal`,
    ///   `workload_identity`, `developer_tools`) picks it; without it, `AZURE_CLIENT_SECRET`
    ///   means a service principal (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`),
    ///   `AZURE_FEDERATED_TOKEN_FILE` workload identity, and otherwise the managed identity
    ///   (user-assigned when `AZURE_CLIENT_ID` is set).
    fn from_env() -> Result<Self, ConfigError> {
        let mut c = Self::default();
        if let Some(url) = env::var(&[
            "NEBULA_AZURE_ENDPOINT",
            "AZURE_KEYVAULT_URL",
            "AZURE_KEY_VAULT_URL",
            "KEY_VAULT_URL",
        ]) {
            c.endpoint = url;
        }
        if let Some(v) = env::var_renamed("NEBULA_AZURE_ALLOW_CUSTOM_HOST", &["NEBULA_AZURE_CUSTOM_ENDPOINT"]) {
            c.allow_custom_host = env::parse_bool(PROVIDER, "allow_custom_host", "NEBULA_AZURE_ALLOW_CUSTOM_HOST", &v)?;
        }
        c.ca_cert = env::var(&["NEBULA_AZURE_CA_CERT"]);
        if let Some(p) = env::var(&["NEBULA_AZURE_SECRET_PREFIX"]) {
            c.secret_prefix = p;
        }
        if let Some(m) = env::var(&["NEBULA_AZURE_DELETE_MODE"]) {
            c.delete_mode = match m.as_str() {
                "soft" => DeleteMode::Soft,
                "purge" => DeleteMode::Purge,
                _ => {
                    return Err(ConfigError::new(
                        PROVIDER,
                        "delete_mode",
                        format!("must be soft or purge (NEBULA_AZURE_DELETE_MODE={m:?})"),
                    ));
                }
            };
        }
        let tenant = env::var(&["AZURE_TENANT_ID"]);
        let client = env::var(&["AZURE_CLIENT_ID"]);
        let secret = env::var(&["AZURE_CLIENT_SECRET"]);
        let service_principal = || -> Result<AzureCredential, ConfigError> {
            let missing = |v: &str| {
                ConfigError::new(
                    PROVIDER,
                    "credential",
                    format!("is a service principal but {v} is not set"),
                )
            };
            Ok(AzureCredential::ServicePrincipal {
                tenant_id: tenant.clone().ok_or_else(|| missing("AZURE_TENANT_ID"))?,
                client_id: client.clone().ok_or_else(|| missing("AZURE_CLIENT_ID"))?,
                client_secret: secret.clone().ok_or_else(|| missing("AZURE_CLIENT_SECRET"))?.into(),
            })
        };
        c.credential = match env::var(&["NEBULA_AZURE_CREDENTIAL"]).as_deref() {
            Some("managed_identity") => AzureCredential::ManagedIdentity {
                client_id: client.clone(),
            },
            Some("service_principal") => service_principal()?,
            Some("workload_identity") => AzureCredential::WorkloadIdentity,
            Some("developer_tools") => AzureCredential::DeveloperTools,
            Some(other) => {
                return Err(ConfigError::new(
                    PROVIDER,
                    "credential",
                    format!(
                        "must be managed_identity, service_principal, workload_identity or developer_tools \
                         (NEBULA_AZURE_CREDENTIAL={other:?})"
                    ),
                ));
            }
            None if secret.is_some() => service_principal()?,
            None if env::var(&["AZURE_FEDERATED_TOKEN_FILE"]).is_some() => AzureCredential::WorkloadIdentity,
            None => AzureCredential::ManagedIdentity {
                client_id: client.clone(),
            },
        };
        c.validate()?;
        Ok(c)
    }

    async fn build(&self) -> Result<Box<dyn StorageProvider>, StorageError> {
        Ok(Box::new(AzureKeyVaultProvider::new(self.clone()).await?))
    }

    /// Checks every field (and, for a service principal or workload identity, the
    /// `AZURE_*` variables azure_identity will read) without any request.
    fn validate(&self) -> Result<(), ConfigError> {
        self.validate_in(&|name| env::var(&[name]))
    }
}

impl AzureKeyVaultConfig {
    /// [`ProviderConfig::validate`] with the environment read through `env`.
    pub(crate) fn validate_in(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let err = |field: &str, rule: String| Err(ConfigError::new(PROVIDER, field, rule));
        if let Err(rule) = check_endpoint(&self.endpoint, self.allow_custom_host) {
            return err("endpoint", rule);
        }
        if let Some(ca) = &self.ca_cert
            && ca.trim().is_empty()
        {
            return err("ca_cert", "must be a PEM file path or PEM text, not empty".into());
        }
        match &self.credential {
            AzureCredential::ManagedIdentity { client_id: Some(c) } if !is_guid(c) => {
                return err("credential.client_id", format!("must be a GUID (got {c:?})"));
            }
            AzureCredential::ServicePrincipal {
                tenant_id,
                client_id,
                client_secret,
            } => {
                if !is_guid(tenant_id) {
                    return err("credential.tenant_id", format!("must be a GUID (got {tenant_id:?})"));
                }
                if !is_guid(client_id) {
                    return err("credential.client_id", format!("must be a GUID (got {client_id:?})"));
                }
                if client_secret.expose_secret().is_empty() {
                    return err("credential.client_secret", "must not be empty".into());
                }
            }
            _ => {}
        }
        if matches!(
            self.credential,
            AzureCredential::ServicePrincipal { .. } | AzureCredential::WorkloadIdentity
        ) {
            let host = url::Url::parse(&self.endpoint)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default();
            if let Err(rule) = crate::cloud::authority_for(&host, env("AZURE_AUTHORITY_HOST").as_deref()) {
                return err("endpoint", rule);
            }
        }
        if self.credential == AzureCredential::WorkloadIdentity {
            check_workload_identity(env).or_else(|rule| err("credential", rule))?;
        }
        let p = &self.secret_prefix;
        if p.is_empty() {
            return err(
                "secret_prefix",
                "must not be empty: the prefix keeps this provider's secrets apart from the vault's other secrets \
                 (e.g. \"myapp-\")"
                    .into(),
            );
        }
        if let Some(c) = p.chars().find(char::is_ascii_uppercase) {
            return err(
                "secret_prefix",
                format!(
                    "contains the capital {c:?}: Key Vault folds the case of secret names, so {p:?} and {:?} would \
                     be one namespace and two providers configured so would read and overwrite each other's \
                     records; use lowercase",
                    p.to_ascii_lowercase()
                ),
            );
        }
        if !p.starts_with(|c: char| c.is_ascii_lowercase()) {
            return err(
                "secret_prefix",
                format!("must start with a lowercase letter (got {p:?}); e.g. \"myapp-\""),
            );
        }
        if p.len() > MAX_PREFIX_LEN {
            return err(
                "secret_prefix",
                format!(
                    "has {} characters; at most {MAX_PREFIX_LEN} leave room for every credential id within Key \
                     Vault's {MAX_NAME_LEN}",
                    p.len()
                ),
            );
        }
        if let Some(c) = p.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
            return err(
                "secret_prefix",
                format!(
                    "contains {c:?}; Key Vault secret names allow only letters, digits and -, and the prefix lowercase ones"
                ),
            );
        }
        if self.default_tags.len() > MAX_DEFAULT_TAGS {
            return err(
                "default_tags",
                format!(
                    "has {} tags; Key Vault allows 15 per secret, 4 are reserved and credentials may carry 10, \
                     so at most {MAX_DEFAULT_TAGS}",
                    self.default_tags.len()
                ),
            );
        }
        for (k, v) in &self.default_tags {
            if let Err(rule) = validate_default_tag(k, v) {
                return err(&format!("default_tags.{k}"), rule);
            }
        }
        if let Some(v) = &self.api_version
            && !check_api_version(v)
        {
            return err(
                "api_version",
                format!("must look like \"7.5\" or \"2025-07-01\" (got {v:?})"),
            );
        }
        self.retry.validate(PROVIDER)?;
        self.timeouts.validate(PROVIDER)?;
        for (field, ms) in [
            ("timeouts.read_ms", self.timeouts.read_ms),
            ("timeouts.write_ms", self.timeouts.write_ms),
        ] {
            if !(1_000..=60_000).contains(&ms) {
                return err(
                    field,
                    format!("must be between 1 and 60 seconds for Azure (got {ms} ms)"),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    fn valid() -> AzureKeyVaultConfig {
        AzureKeyVaultConfig::new("https://myapp-prod.vault.azure.net")
    }

    #[test]
    fn the_clouds_domains_are_accepted_as_they_are() {
        for url in [
            "https://myapp-prod.vault.azure.net",
            "https://myapp-prod.vault.azure.net/",
            "https://kv1.vault.azure.cn",
            "https://kv1.vault.usgovcloudapi.net",
            "https://MyVault.Vault.Azure.Net",
        ] {
            assert!(AzureKeyVaultConfig::new(url).validate().is_ok(), "{url}");
        }
    }

    /// Managed HSM pools hold no secrets (also not the China MHSM domain), and Azure
    /// Germany closed: refused with what to do, also with `allow_custom_host`.
    #[test]
    fn managed_hsm_hosts_and_azure_germany_are_refused() {
        for (url, why) in [
            ("https://hsm1.managedhsm.azure.net", "Managed HSM"),
            ("https://hsm1.managedhsm.chinacloudapi.cn", "Managed HSM"),
            ("https://hsm1.managedhsm.azure.cn", "Managed HSM"),
            ("https://hsm1.managedhsm.usgovcloudapi.net", "Managed HSM"),
            ("https://kv1.vault.microsoftazure.de", "Azure Germany"),
        ] {
            for allow_custom_host in [false, true] {
                let c = AzureKeyVaultConfig {
                    allow_custom_host,
                    ..AzureKeyVaultConfig::new(url)
                };
                let e = c.validate().expect_err(url);
                assert_eq!(e.field(), "endpoint");
                assert!(e.rule().contains(why), "{url}: {e}");
            }
        }
    }

    /// A service principal (or workload identity) of a sovereign-cloud vault gets its tokens
    /// from that cloud's authority, not the public cloud's; an `AZURE_AUTHORITY_HOST` naming
    /// another cloud is refused.
    #[test]
    fn a_sovereign_vault_uses_its_clouds_authority_or_refuses_the_mismatch() {
        let sp = AzureCredential::ServicePrincipal {
            tenant_id: GUID.into(),
            client_id: GUID.into(),
            client_secret: "s3cr3t".into(),
        };
        let china = AzureKeyVaultConfig {
            credential: sp.clone(),
            ..AzureKeyVaultConfig::new("https://kv1.vault.azure.cn")
        };
        let public_authority =
            |n: &str| (n == "AZURE_AUTHORITY_HOST").then(|| "https://login.microsoftonline.com".to_string());
        let e = china.validate_in(&public_authority).unwrap_err();
        assert_eq!(e.field(), "endpoint");
        assert!(e.rule().contains("login.chinacloudapi.cn"), "{e}");
        assert!(china.validate_in(&|_| None).is_ok());
        let mi = AzureKeyVaultConfig {
            credential: AzureCredential::default(),
            ..china.clone()
        };
        assert!(
            mi.validate_in(&public_authority).is_ok(),
            "managed identities use no authority"
        );
        let credential = crate::provider::build_credential(&china).expect("no I/O");
        let shown = format!("{credential:?}");
        assert!(shown.contains("login.chinacloudapi.cn"), "{shown}");
    }

    /// Workload identity without the webhook's variables fails validation, naming the variable.
    #[test]
    fn workload_identity_needs_its_variables_at_validation() {
        let c = AzureKeyVaultConfig {
            credential: AzureCredential::WorkloadIdentity,
            ..valid()
        };
        let full = |n: &str| match n {
            "AZURE_TENANT_ID" | "AZURE_CLIENT_ID" => Some(GUID.to_string()),
            "AZURE_FEDERATED_TOKEN_FILE" => Some("/var/run/secrets/azure/tokens/azure-identity-token".to_string()),
            _ => None,
        };
        assert!(c.validate_in(&full).is_ok());
        for var in ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"] {
            let e = c.validate_in(&|n| if n == var { None } else { full(n) }).unwrap_err();
            assert_eq!(e.field(), "credential");
            assert!(e.rule().contains(var), "{e}");
        }
        let e = c
            .validate_in(&|n| {
                if n == "AZURE_CLIENT_ID" {
                    Some("x".into())
                } else {
                    full(n)
                }
            })
            .unwrap_err();
        assert!(e.rule().contains("GUID"), "{e}");
    }

    /// Key Vault folds case, so a prefix with capitals is refused (saying why), as are
    /// empty prefixes and ones starting with a digit or `-`.
    #[test]
    fn prefixes_are_lowercase_start_with_a_letter_and_are_not_empty() {
        for (prefix, says) in [
            ("App-", "folds the case"),
            ("aPP-", "folds the case"),
            ("", "must not be empty"),
            ("1app-", "lowercase letter"),
            ("-app", "lowercase letter"),
        ] {
            let e = AzureKeyVaultConfig {
                secret_prefix: prefix.into(),
                ..valid()
            }
            .validate()
            .expect_err(prefix);
            assert_eq!(e.field(), "secret_prefix");
            assert!(e.rule().contains(says), "{prefix:?}: {e}");
        }
        for prefix in ["a", "app-", "app-2-", "nebula-"] {
            let c = AzureKeyVaultConfig {
                secret_prefix: prefix.into(),
                ..valid()
            };
            assert!(c.validate().is_ok(), "{prefix}");
        }
    }

    #[test]
    fn other_hosts_need_allow_custom_host() {
        let c = AzureKeyVaultConfig::new("https://nebula.localhost:8443");
        let e = c.validate().unwrap_err();
        assert_eq!(e.field(), "endpoint");
        assert!(e.rule().contains("allow_custom_host"), "{e}");
        let c = AzureKeyVaultConfig {
            allow_custom_host: true,
            ..c
        };
        assert!(c.validate().is_ok());
    }

    #[test]
    fn validation_table_names_the_field() {
        let sp = |t: &str, c: &str, s: &str| AzureCredential::ServicePrincipal {
            tenant_id: t.into(),
            client_id: c.into(),
            client_secret: s.into(),
        };
        let cases: Vec<(AzureKeyVaultConfig, &str)> = vec![
            (AzureKeyVaultConfig::default(), "endpoint"),
            (AzureKeyVaultConfig::new("http://kv1.vault.azure.net"), "endpoint"),
            (
                AzureKeyVaultConfig::new("https://kv1.vault.azure.net/secrets"),
                "endpoint",
            ),
            (AzureKeyVaultConfig::new("https://kv1.vault.azure.net?x=1"), "endpoint"),
            (AzureKeyVaultConfig::new("https://u:p@kv1.vault.azure.net"), "endpoint"),
            (AzureKeyVaultConfig::new("https://kv1.vault.azure.net:444"), "endpoint"),
            (AzureKeyVaultConfig::new("https://k.vault.azure.net"), "endpoint"),
            (AzureKeyVaultConfig::new("https://vault.azure.net.evil.com"), "endpoint"),
            (AzureKeyVaultConfig::new("kv1.vault.azure.net"), "endpoint"),
            (
                AzureKeyVaultConfig {
                    ca_cert: Some(" ".into()),
                    ..valid()
                },
                "ca_cert",
            ),
            (
                AzureKeyVaultConfig {
                    credential: AzureCredential::ManagedIdentity {
                        client_id: Some("abc".into()),
                    },
                    ..valid()
                },
                "credential.client_id",
            ),
            (
                AzureKeyVaultConfig {
                    credential: sp("tenant", GUID, "s"),
                    ..valid()
                },
                "credential.tenant_id",
            ),
            (
                AzureKeyVaultConfig {
                    credential: sp(GUID, "x", "s"),
                    ..valid()
                },
                "credential.client_id",
            ),
            (
                AzureKeyVaultConfig {
                    credential: sp(GUID, GUID, ""),
                    ..valid()
                },
                "credential.client_secret",
            ),
            (
                AzureKeyVaultConfig {
                    secret_prefix: "a_b".into(),
                    ..valid()
                },
                "secret_prefix",
            ),
            (
                AzureKeyVaultConfig {
                    secret_prefix: "p".repeat(65),
                    ..valid()
                },
                "secret_prefix",
            ),
            (
                AzureKeyVaultConfig {
                    default_tags: BTreeMap::from([("a:b".into(), "1".into()), ("c:d".into(), "2".into())]),
                    ..valid()
                },
                "default_tags",
            ),
            (
                AzureKeyVaultConfig {
                    default_tags: BTreeMap::from([("team".into(), "1".into())]),
                    ..valid()
                },
                "default_tags.team",
            ),
            (
                AzureKeyVaultConfig {
                    api_version: Some("latest".into()),
                    ..valid()
                },
                "api_version",
            ),
            (
                AzureKeyVaultConfig {
                    timeouts: Timeouts {
                        read_ms: 500,
                        write_ms: 10_000,
                    },
                    ..valid()
                },
                "timeouts.read_ms",
            ),
            (
                AzureKeyVaultConfig {
                    timeouts: Timeouts {
                        read_ms: 5_000,
                        write_ms: 61_000,
                    },
                    ..valid()
                },
                "timeouts.write_ms",
            ),
            (
                AzureKeyVaultConfig {
                    retry: RetryPolicy {
                        max_retries: 11,
                        ..Default::default()
                    },
                    ..valid()
                },
                "retry.max_retries",
            ),
        ];
        for (c, field) in cases {
            let e = c.validate().expect_err(field);
            assert!(e.field().starts_with(field), "{field}: {e}");
            assert_eq!(e.provider(), "azure");
        }
        assert!(
            AzureKeyVaultConfig {
                credential: sp(GUID, GUID, "s3cr3t"),
                api_version: Some("7.5".into()),
                secret_prefix: "a".into(),
                ..valid()
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn toml_shapes_and_no_secret_in_debug_or_serialized_form() {
        let c: AzureKeyVaultConfig = toml::from_str(&format!(
            r#"
            endpoint = "https://kv1.vault.azure.net"
            delete_mode = "purge"
            [credential]
            type = "service_principal"
            tenant_id = "{GUID}"
            client_id = "{GUID}"
            client_secret = "hunter2-s3cr3t"
            "#
        ))
        .unwrap();
        assert!(c.validate().is_ok());
        assert_eq!(c.delete_mode, DeleteMode::Purge);
        let shown = format!("{c:?} {}", c.credential.describe());
        assert!(!shown.contains("hunter2") && shown.contains(GUID), "{shown}");
        let written = toml::to_string(&c).unwrap();
        assert!(
            !written.contains("hunter2") && written.contains("[REDACTED]"),
            "{written}"
        );
        let c: AzureKeyVaultConfig = toml::from_str("[credential]\ntype = \"developer_tools\"").unwrap();
        assert_eq!(c.credential, AzureCredential::DeveloperTools);
        assert!(toml::from_str::<AzureKeyVaultConfig>("prefix = \"x\"").is_err());
        assert!(toml::from_str::<AzureKeyVaultConfig>("[credential]\ntype = \"custom\"").is_err());
    }

    /// `vault_url` and `custom_endpoint` of earlier releases still read, as `endpoint` and
    /// `allow_custom_host`; a table setting a key under both names is refused naming both.
    #[test]
    fn old_keys_are_read_under_their_new_names() {
        let old: AzureKeyVaultConfig =
            toml::from_str("vault_url = \"https://nebula.localhost:8443\"\ncustom_endpoint = true").unwrap();
        let new = AzureKeyVaultConfig {
            allow_custom_host: true,
            ..AzureKeyVaultConfig::new("https://nebula.localhost:8443")
        };
        assert_eq!(old, new);
        assert!(old.validate().is_ok());
        let both = toml::from_str::<AzureKeyVaultConfig>(
            "vault_url = \"https://a.vault.azure.net\"\nendpoint = \"https://b.vault.azure.net\"",
        )
        .unwrap_err()
        .to_string();
        assert!(both.contains("`vault_url`") && both.contains("endpoint"), "{both}");
        let written = toml::to_string(&new).unwrap();
        assert!(
            written.contains("endpoint = ")
                && written.contains("allow_custom_host = true")
                && !written.contains("vault_url"),
            "{written}"
        );
        assert_eq!(toml::from_str::<AzureKeyVaultConfig>(&written).unwrap(), new);
    }

    /// A TOML error still points at its line, old key names or not; a key inside a nested
    /// table (a default tag called `vault_url`) is never renamed.
    #[test]
    fn toml_errors_point_at_their_line_and_nested_keys_keep_their_names() {
        let line = |text: &str| {
            let e = toml::from_str::<AzureKeyVaultConfig>(text).unwrap_err();
            let span = e.span().unwrap_or_else(|| panic!("no span: {e}"));
            text[..span.start].matches('\n').count() + 1
        };
        assert_eq!(
            line("vault_url = \"https://a.vault.azure.net\"\nsecret_prefix = 5\n"),
            2
        );
        assert_eq!(line("endpoint = \"https://a.vault.azure.net\"\nbogus = 1\n"), 2);
        assert_eq!(line("custom_endpoint = true\n[retry]\nmax_retries = \"x\"\n"), 3);
        let c: AzureKeyVaultConfig = toml::from_str(
            "vault_url = \"https://a.vault.azure.net\"\n[default_tags]\nvault_url = \"x\"\ncustom_endpoint = \"y\"",
        )
        .unwrap();
        assert_eq!(c.endpoint, "https://a.vault.azure.net");
        assert_eq!(
            c.default_tags.keys().collect::<Vec<_>>(),
            ["custom_endpoint", "vault_url"]
        );
    }
}
