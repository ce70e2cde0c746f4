//! [`VaultConfig`], [`VaultAuth`], [`DeleteMode`] and their validation.

use std::fmt;
use std::time::Duration;

use nebula_credential_core::remote::{check_service_url, config_keys, describe_ca_cert, env, redacted_url};
use nebula_credential_core::secrecy::{ExposeSecret, SecretString};
use nebula_credential_core::{
    ConfigError, ProviderConfig, RetryPolicy, StorageError, StorageProvider, Timeouts, async_trait,
};
use serde::{Deserialize, Serialize, Serializer};

use crate::PROVIDER;
use crate::provider::VaultProvider;

/// Default `max_payload_bytes`: Vault's integrated-storage entry limit (`max_entry_size`,
/// 1 MiB) minus 8 KiB for the request envelope and the version's own metadata.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1_048_576 - 8_192;
/// Largest `max_payload_bytes` accepted: Vault's default request size limit (32 MiB).
pub const MAX_PAYLOAD_BYTES_LIMIT: usize = 32 * 1_048_576;
/// Longest `token_renewal_threshold_secs`: 30 days.
pub const MAX_RENEWAL_THRESHOLD_SECS: u64 = 30 * 24 * 3600;
/// Longest `renewal_check_interval_secs`: 1 hour.
pub const MAX_CHECK_INTERVAL_SECS: u64 = 3600;

/// How the provider authenticates to Vault.
///
/// In TOML: `[auth]` with `method = "token"` and `token`, or `method = "approle"` with
/// `role_id`, `secret_id` and optionally `mount` (default `approle`). Secrets are
/// [`SecretString`]s: never printed by `Debug`, and serialized as `"[redacted]"`.
#[derive(Clone, Deserialize)]
#[serde(remote = "Self", tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum VaultAuth {
    /// A Vault token, used as is. Renewed by the background task while renewable; when it
    /// cannot be renewed any more operations fail with `AuthenticationFailed`.
    Token {
        /// The token (`hvs.…` on Vault, `s.…` on OpenBao).
        token: SecretString,
    },
    /// AppRole login; the provider logs in again when its token cannot be renewed.
    AppRole {
        /// The role id.
        role_id: String,
        /// The secret id.
        secret_id: SecretString,
        /// Mount path of the AppRole auth method (default `approle`).
        #[serde(default = "default_approle_mount")]
        mount: String,
    },
}

/// Reads the `[auth]` table; anything else (a token written as `auth = "hvs.…"`) is
/// refused without repeating it, as serde's message would.
impl<'de> Deserialize<'de> for VaultAuth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AuthTable)
    }
}

/// The visitor of [`VaultAuth`]: a table, handed to the derived deserialiser.
struct AuthTable;

impl<'de> serde::de::Visitor<'de> for AuthTable {
    type Value = VaultAuth;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table with method = \"token\" or \"approle\" (e.g. [auth] method = \"token\", token = \"…\")")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<VaultAuth, A::Error> {
        VaultAuth::deserialize(serde::de::value::MapAccessDeserializer::new(map))
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<VaultAuth, E> {
        Err(E::invalid_type(serde::de::Unexpected::Other("a string"), &self))
    }
}

fn default_approle_mount() -> String {
    "approle".into()
}

impl Default for VaultAuth {
    fn default() -> Self {
        VaultAuth::Token {
            token: SecretString::from(String::new()),
        }
    }
}

impl fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VaultAuth::Token { .. } => f.debug_struct("Token").finish_non_exhaustive(),
            VaultAuth::AppRole { role_id, mount, .. } => f
                .debug_struct("AppRole")
                .field("role_id", role_id)
                .field("mount", mount)
                .finish_non_exhaustive(),
        }
    }
}

impl PartialEq for VaultAuth {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (VaultAuth::Token { token: a }, VaultAuth::Token { token: b }) => a.expose_secret() == b.expose_secret(),
            (
                VaultAuth::AppRole {
                    role_id: r1,
                    secret_id: s1,
                    mount: m1,
                },
                VaultAuth::AppRole {
                    role_id: r2,
                    secret_id: s2,
                    mount: m2,
                },
            ) => r1 == r2 && m1 == m2 && s1.expose_secret() == s2.expose_secret(),
            _ => false,
        }
    }
}

/// Serializes with secrets replaced by `"[redacted]"`: a serialized config never
/// carries a token or secret id.
impl Serialize for VaultAuth {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        match self {
            VaultAuth::Token { .. } => {
                let mut st = s.serialize_struct("VaultAuth", 2)?;
                st.serialize_field("method", "token")?;
                st.serialize_field("token", REDACTED)?;
                st.end()
            }
            VaultAuth::AppRole { role_id, mount, .. } => {
                let mut st = s.serialize_struct("VaultAuth", 4)?;
                st.serialize_field("method", "approle")?;
                st.serialize_field("role_id", role_id)?;
                st.serialize_field("secret_id", REDACTED)?;
                st.serialize_field("mount", mount)?;
                st.end()
            }
        }
    }
}

const REDACTED: &str = "[redacted]";

/// What `delete` does on Vault (`delete_mode`: `"soft"` or `"purge"`; the value of
/// earlier releases, `"destroy"`, is read as `"purge"` with a deprecation warning).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeleteMode {
    /// Soft-delete the latest version (`DELETE data/…`): Vault keeps it, and an operator
    /// can bring it back with `vault kv undelete -versions=N` (the provider then reads it
    /// again).
    Soft,
    /// Delete every version and the metadata (`DELETE metadata/…`): nothing is left.
    /// Formerly `destroy`.
    #[default]
    Purge,
}

/// Keys of earlier releases, read under their new names with a deprecation warning.
const RENAMED_KEYS: &[(&str, &str)] = &[
    ("address", "endpoint"),
    ("allow_plaintext_http", "allow_http"),
    ("path_prefix", "secret_prefix"),
];

/// Values of `delete_mode` of earlier releases.
const RENAMED_DELETE_MODES: &[(&str, &str)] = &[("destroy", "purge")];

/// Settings of the HashiCorp Vault KV v2 backend (`provider = "vault"`); OpenBao works too.
///
/// ```toml
/// provider = "vault"
/// endpoint = "https://vault.example.com:8200"
/// ca_cert = "/etc/ssl/private-ca.pem"     # path or inline PEM; optional
/// mount_path = "secret"
/// secret_prefix = "myapp/credentials"
/// delete_mode = "purge"                     # or "soft"
/// [auth]
/// method = "approle"
/// role_id = "…"
/// secret_id = "…"
/// ```
///
/// TLS is always verified (there is no switch to turn it off, and `VAULT_SKIP_VERIFY`
/// has no effect); `ca_cert` adds a private CA to the system roots.
///
/// ```
/// use nebula_credential_core::ProviderConfig;
/// use nebula_credential_vault::{DeleteMode, VaultConfig};
/// let mut config = VaultConfig::with_token("https://vault.example.com:8200", "hvs.example");
/// config.delete_mode = DeleteMode::Soft;
/// assert!(config.validate().is_ok());
/// assert!(!format!("{config:?}").contains("hvs.example"));
/// let plain = VaultConfig::with_token("http://vault.example.com:8200", "hvs.example");
/// assert_eq!(plain.validate().unwrap_err().field(), "endpoint");
/// ```
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct VaultConfig {
    /// Vault's address, e.g. `https://vault.example.com:8200` (default
    /// `https://127.0.0.1:8200`). Plain `http://` only to a loopback host unless
    /// `allow_http` is set. Formerly `address`.
    pub endpoint: String,
    /// A CA certificate to trust besides the system roots: a PEM file's path, or the PEM
    /// text itself (starting with `-----BEGIN`).
    pub ca_cert: Option<String>,
    /// Accept plain `http://` to a non-loopback host (default `false`): tokens and
    /// records would cross the network unencrypted. Formerly `allow_plaintext_http`.
    pub allow_http: bool,
    /// How to authenticate.
    pub auth: VaultAuth,
    /// Mount path of the KV v2 secrets engine (default `secret`).
    pub mount_path: String,
    /// Folder under the mount holding one entry per credential (default
    /// `nebula/credentials`): segments of letters, digits, `.`, `_`, `-`. Formerly
    /// `path_prefix`.
    pub secret_prefix: String,
    /// Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// Renew the token when its remaining TTL falls below this many seconds (default
    /// 3,600; 1 ..= 30 days, above `renewal_check_interval_secs`).
    pub token_renewal_threshold_secs: u64,
    /// How often the background task looks at the token, in seconds (default 300;
    /// 1 ..= 3,600).
    pub renewal_check_interval_secs: u64,
    /// What `delete` does (default `purge`).
    pub delete_mode: DeleteMode,
    /// Largest serialized record accepted, in bytes (default 1 MiB − 8 KiB, sized to
    /// Vault's integrated-storage entry limit; 1,024 ..= 32 MiB).
    pub max_payload_bytes: usize,
    /// Metadata reads `list` runs at once (default 16; 1 ..= 64).
    pub list_concurrency: usize,
    /// Retry policy of the layer stack (`[retry]`).
    pub retry: RetryPolicy,
    /// Deadlines of the layer stack (`[timeouts]`); the HTTP client also gives up on a
    /// request one second after the longer of the two (a backstop: the deadline ends a
    /// slow call first, as `Timeout`).
    pub timeouts: Timeouts,
}

impl Default for VaultConfig {
    fn default() -> Self {
        VaultConfig {
            endpoint: "https://127.0.0.1:8200".into(),
            ca_cert: None,
            allow_http: false,
            auth: VaultAuth::default(),
            mount_path: "secret".into(),
            secret_prefix: "nebula/credentials".into(),
            namespace: None,
            token_renewal_threshold_secs: 3600,
            renewal_check_interval_secs: 300,
            delete_mode: DeleteMode::default(),
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            list_concurrency: 16,
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
        }
    }
}

/// Reads the keys of earlier releases (`address`, `allow_plaintext_http`, `path_prefix`,
/// `delete_mode = "destroy"`) under their new names, warning once for each.
impl<'de> Deserialize<'de> for VaultConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        VaultConfig::deserialize(config_keys::Renamed::new(
            d,
            config_keys::Renames {
                provider: PROVIDER,
                keys: RENAMED_KEYS,
                values: &[("delete_mode", RENAMED_DELETE_MODES)],
                upgrades: &[],
            },
        ))
    }
}

impl Serialize for VaultConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        VaultConfig::serialize(self, s)
    }
}

impl fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultConfig")
            .field("endpoint", &redacted_url(&self.endpoint))
            .field("ca_cert", &self.ca_cert.as_deref().map(describe_ca_cert))
            .field("allow_http", &self.allow_http)
            .field("auth", &self.auth)
            .field("mount_path", &self.mount_path)
            .field("secret_prefix", &self.secret_prefix)
            .field("namespace", &self.namespace)
            .field("token_renewal_threshold_secs", &self.token_renewal_threshold_secs)
            .field("renewal_check_interval_secs", &self.renewal_check_interval_secs)
            .field("delete_mode", &self.delete_mode)
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("list_concurrency", &self.list_concurrency)
            .field("retry", &self.retry)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl VaultConfig {
    /// A configuration for `endpoint` authenticating with `token`, otherwise default.
    pub fn with_token(endpoint: impl Into<String>, token: impl Into<String>) -> Self {
        VaultConfig {
            endpoint: endpoint.into(),
            auth: VaultAuth::Token {
                token: SecretString::from(token.into()),
            },
            ..VaultConfig::default()
        }
    }

    /// `token_renewal_threshold_secs` as a duration.
    pub fn renewal_threshold(&self) -> Duration {
        Duration::from_secs(self.token_renewal_threshold_secs)
    }

    /// `renewal_check_interval_secs` as a duration.
    pub fn check_interval(&self) -> Duration {
        Duration::from_secs(self.renewal_check_interval_secs)
    }
}

/// Checks Vault's endpoint: the shared service-URL rules, and no path (the provider adds
/// `/v1/…` itself).
fn check_endpoint(raw: &str, allow_http: bool) -> Result<(), String> {
    let url = check_service_url(raw, allow_http, "allow_http")?;
    if url.path() != "/" && !url.path().is_empty() {
        return Err(format!(
            "must not have a path (got {:?}); the provider adds /v1/… itself",
            url.path()
        ));
    }
    Ok(())
}

/// Checks a `/`-separated Vault path: segments of letters, digits, `.`, `_`, `-`, none
/// empty, `.` or `..`. The text completes "FIELD …".
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("must not be empty".into());
    }
    if path.len() > 512 {
        return Err(format!("has {} characters; at most 512 are allowed", path.len()));
    }
    for segment in path.split('/') {
        if segment.is_empty() {
            return Err(format!(
                "{path:?} has an empty segment (no leading, trailing or double `/`)"
            ));
        }
        if segment == "." || segment == ".." {
            return Err(format!("{path:?} has a {segment:?} segment"));
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
        {
            return Err(format!(
                "{path:?} contains {c:?}; segments may hold only letters, digits, `.`, `_` and `-`"
            ));
        }
    }
    Ok(())
}

/// Checks a token or secret id can travel in an HTTP header or body unchanged.
fn check_secret(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
    {
        return Err("must be printable ASCII without spaces (was it pasted with a newline?)".into());
    }
    Ok(())
}

#[async_trait]
impl ProviderConfig for VaultConfig {
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
    /// - `NEBULA_VAULT_ENDPOINT` (else the Vault CLI's `VAULT_ADDR`) → `endpoint`;
    ///   `NEBULA_VAULT_CA_CERT` (else `VAULT_CACERT`) → `ca_cert` (a path or PEM);
    ///   `NEBULA_VAULT_NAMESPACE` (else `VAULT_NAMESPACE`) → `namespace`;
    /// - `NEBULA_VAULT_ROLE_ID` and `NEBULA_VAULT_SECRET_ID` (and optionally
    ///   `NEBULA_VAULT_APPROLE_MOUNT`) → AppRole auth; otherwise `VAULT_TOKEN` → token auth;
    /// - `NEBULA_VAULT_MOUNT_PATH` → `mount_path`; `NEBULA_VAULT_SECRET_PREFIX` → `secret_prefix`;
    /// - `NEBULA_VAULT_DELETE_MODE` (`soft` / `purge`) → `delete_mode`;
    /// - `NEBULA_VAULT_ALLOW_HTTP` (`true` / `false`) → `allow_http`.
    ///
    /// The names of earlier releases (`NEBULA_VAULT_MOUNT`, `NEBULA_VAULT_PATH_PREFIX`,
    /// `NEBULA_VAULT_ALLOW_PLAINTEXT_HTTP`, the value `destroy`) are still read, with a
    /// deprecation warning. `VAULT_SKIP_VERIFY` is never read: TLS is always verified.
    fn from_env() -> Result<Self, ConfigError> {
        let mut c = VaultConfig::default();
        if let Some(a) = env::var(&["NEBULA_VAULT_ENDPOINT", "VAULT_ADDR"]) {
            c.endpoint = a;
        }
        c.ca_cert = env::var(&["NEBULA_VAULT_CA_CERT", "VAULT_CACERT"]);
        c.namespace = env::var(&["NEBULA_VAULT_NAMESPACE", "VAULT_NAMESPACE"]);
        c.auth = match (
            env::var(&["NEBULA_VAULT_ROLE_ID"]),
            env::var(&["NEBULA_VAULT_SECRET_ID"]),
        ) {
            (Some(role_id), Some(secret_id)) => VaultAuth::AppRole {
                role_id,
                secret_id: SecretString::from(secret_id),
                mount: env::var(&["NEBULA_VAULT_APPROLE_MOUNT"]).unwrap_or_else(default_approle_mount),
            },
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::new(
                    PROVIDER,
                    "auth",
                    "AppRole needs both NEBULA_VAULT_ROLE_ID and NEBULA_VAULT_SECRET_ID (only one is set)",
                ));
            }
            (None, None) => match env::var(&["VAULT_TOKEN"]) {
                Some(t) => VaultAuth::Token {
                    token: SecretString::from(t),
                },
                None => {
                    return Err(ConfigError::new(
                        PROVIDER,
                        "auth",
                        "no credentials: set VAULT_TOKEN, or NEBULA_VAULT_ROLE_ID and NEBULA_VAULT_SECRET_ID for AppRole",
                    ));
                }
            },
        };
        if let Some(m) = env::var_renamed("NEBULA_VAULT_MOUNT_PATH", &["NEBULA_VAULT_MOUNT"]) {
            c.mount_path = m;
        }
        if let Some(p) = env::var_renamed("NEBULA_VAULT_SECRET_PREFIX", &["NEBULA_VAULT_PATH_PREFIX"]) {
            c.secret_prefix = p;
        }
        if let Some(mode) = env::var(&["NEBULA_VAULT_DELETE_MODE"]) {
            let mut table = config_keys::Table::from_iter([("delete_mode".to_string(), mode.clone().into())]);
            config_keys::rename_values(&mut table, "delete_mode", RENAMED_DELETE_MODES);
            c.delete_mode = DeleteMode::deserialize(&table["delete_mode"]).map_err(|_| {
                ConfigError::new(
                    PROVIDER,
                    "delete_mode",
                    format!("must be \"soft\" or \"purge\" (NEBULA_VAULT_DELETE_MODE={mode:?})"),
                )
            })?;
        }
        if let Some(allow) = env::var_renamed("NEBULA_VAULT_ALLOW_HTTP", &["NEBULA_VAULT_ALLOW_PLAINTEXT_HTTP"]) {
            c.allow_http = env::parse_bool(PROVIDER, "allow_http", "NEBULA_VAULT_ALLOW_HTTP", &allow)?;
        }
        c.validate()?;
        Ok(c)
    }

    async fn build(&self) -> Result<Box<dyn StorageProvider>, StorageError> {
        Ok(Box::new(VaultProvider::new(self.clone()).await?))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let err = |field: &str, rule: String| Err(ConfigError::new(PROVIDER, field, rule));
        if let Err(rule) = check_endpoint(&self.endpoint, self.allow_http) {
            return err("endpoint", rule);
        }
        if let Some(ca) = &self.ca_cert
            && ca.trim().is_empty()
        {
            return err(
                "ca_cert",
                "must be a PEM file's path or PEM text; leave it unset to trust the system roots only".into(),
            );
        }
        match &self.auth {
            VaultAuth::Token { token } => {
                if let Err(rule) = check_secret(token.expose_secret()) {
                    return err("auth.token", rule);
                }
            }
            VaultAuth::AppRole {
                role_id,
                secret_id,
                mount,
            } => {
                if let Err(rule) = check_secret(role_id) {
                    return err("auth.role_id", rule);
                }
                if let Err(rule) = check_secret(secret_id.expose_secret()) {
                    return err("auth.secret_id", rule);
                }
                if let Err(rule) = check_path(mount) {
                    return err("auth.mount", rule);
                }
            }
        }
        if let Err(rule) = check_path(&self.mount_path) {
            return err("mount_path", rule);
        }
        if let Err(rule) = check_path(&self.secret_prefix) {
            return err("secret_prefix", rule);
        }
        if let Some(ns) = &self.namespace
            && let Err(rule) = check_path(ns)
        {
            return err("namespace", rule);
        }
        let threshold = self.token_renewal_threshold_secs;
        let interval = self.renewal_check_interval_secs;
        if !(1..=MAX_CHECK_INTERVAL_SECS).contains(&interval) {
            return err(
                "renewal_check_interval_secs",
                format!("must be between 1 and {MAX_CHECK_INTERVAL_SECS} seconds (got {interval})"),
            );
        }
        if !(1..=MAX_RENEWAL_THRESHOLD_SECS).contains(&threshold) {
            return err(
                "token_renewal_threshold_secs",
                format!("must be between 1 and {MAX_RENEWAL_THRESHOLD_SECS} seconds (got {threshold})"),
            );
        }
        if threshold <= interval {
            return err(
                "token_renewal_threshold_secs",
                format!(
                    "is {threshold} s, not above renewal_check_interval_secs ({interval} s): the token could expire \
                     between two checks; raise the threshold or check more often"
                ),
            );
        }
        if !(1024..=MAX_PAYLOAD_BYTES_LIMIT).contains(&self.max_payload_bytes) {
            return err(
                "max_payload_bytes",
                format!(
                    "must be between 1024 and {MAX_PAYLOAD_BYTES_LIMIT} bytes (got {})",
                    self.max_payload_bytes
                ),
            );
        }
        if !(1..=64).contains(&self.list_concurrency) {
            return err(
                "list_concurrency",
                format!("must be between 1 and 64 (got {})", self.list_concurrency),
            );
        }
        self.retry.validate(PROVIDER)?;
        self.timeouts.validate(PROVIDER)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> VaultConfig {
        VaultConfig::with_token("http://127.0.0.1:8200", "s.abcdef")
    }

    fn approle() -> VaultAuth {
        VaultAuth::AppRole {
            role_id: "role-1".into(),
            secret_id: SecretString::from("TOPSECRET-ID".to_string()),
            mount: "approle".into(),
        }
    }

    #[test]
    fn defaults() {
        let c = VaultConfig::default();
        assert_eq!(c.mount_path, "secret");
        assert_eq!(c.secret_prefix, "nebula/credentials");
        assert_eq!(c.delete_mode, DeleteMode::Purge);
        assert_eq!(c.renewal_threshold(), Duration::from_secs(3600));
        assert_eq!(c.check_interval(), Duration::from_secs(300));
        assert_eq!(c.max_payload_bytes, 1_040_384);
        assert_eq!(c.validate().unwrap_err().field(), "auth.token", "no token by default");
        assert!(valid().validate().is_ok());
    }

    #[test]
    fn endpoints() {
        let check = |a: &str, allow: bool| {
            VaultConfig {
                endpoint: a.into(),
                allow_http: allow,
                ..valid()
            }
            .validate()
        };
        for ok in [
            "https://vault.example.com:8200",
            "https://vault.example.com",
            "http://127.0.0.1:8200",
            "http://localhost:8200/",
            "http://[::1]:8200",
        ] {
            assert!(check(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "vault:8200",
            "ftp://127.0.0.1",
            "http://",
            "https://u:p@vault",
            "https://vault/v1",
            "https://vault/?x=1",
            "http://vault.example.com:8200",
            "http://10.0.0.5:8200",
        ] {
            let e = check(bad, false).expect_err(bad);
            assert_eq!(e.field(), "endpoint", "{bad}: {e}");
            assert_eq!(e.provider(), "vault");
        }
        assert!(
            check("http://10.0.0.5:8200", false)
                .unwrap_err()
                .rule()
                .contains("allow_http")
        );
        assert!(check("http://vault:8200", true).is_ok());
    }

    #[test]
    fn paths() {
        for ok in ["secret", "kv/v2", "nebula/credentials", "a.b_c-d/E"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/secret", "secret/", "a//b", "a/../b", ".", "a b", "a/ü", "a*", "a%2f",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validation_table_names_the_field() {
        let cases: Vec<(VaultConfig, &str)> = vec![
            (VaultConfig::with_token("http://127.0.0.1:8200", ""), "auth.token"),
            (VaultConfig::with_token("http://127.0.0.1:8200", "s.x\n"), "auth.token"),
            (
                VaultConfig {
                    auth: VaultAuth::AppRole {
                        role_id: String::new(),
                        secret_id: SecretString::from("x".to_string()),
                        mount: "approle".into(),
                    },
                    ..valid()
                },
                "auth.role_id",
            ),
            (
                VaultConfig {
                    auth: VaultAuth::AppRole {
                        role_id: "r".into(),
                        secret_id: SecretString::from(String::new()),
                        mount: "approle".into(),
                    },
                    ..valid()
                },
                "auth.secret_id",
            ),
            (
                VaultConfig {
                    auth: VaultAuth::AppRole {
                        role_id: "r".into(),
                        secret_id: SecretString::from("s".to_string()),
                        mount: "/approle".into(),
                    },
                    ..valid()
                },
                "auth.mount",
            ),
            (
                VaultConfig {
                    mount_path: "secret/".into(),
                    ..valid()
                },
                "mount_path",
            ),
            (
                VaultConfig {
                    secret_prefix: String::new(),
                    ..valid()
                },
                "secret_prefix",
            ),
            (
                VaultConfig {
                    secret_prefix: "a/../b".into(),
                    ..valid()
                },
                "secret_prefix",
            ),
            (
                VaultConfig {
                    namespace: Some("team a".into()),
                    ..valid()
                },
                "namespace",
            ),
            (
                VaultConfig {
                    ca_cert: Some(" ".into()),
                    ..valid()
                },
                "ca_cert",
            ),
            (
                VaultConfig {
                    renewal_check_interval_secs: 0,
                    ..valid()
                },
                "renewal_check_interval_secs",
            ),
            (
                VaultConfig {
                    renewal_check_interval_secs: 3601,
                    ..valid()
                },
                "renewal_check_interval_secs",
            ),
            (
                VaultConfig {
                    token_renewal_threshold_secs: 0,
                    ..valid()
                },
                "token_renewal_threshold_secs",
            ),
            (
                VaultConfig {
                    token_renewal_threshold_secs: 300,
                    renewal_check_interval_secs: 300,
                    ..valid()
                },
                "token_renewal_threshold_secs",
            ),
            (
                VaultConfig {
                    max_payload_bytes: 10,
                    ..valid()
                },
                "max_payload_bytes",
            ),
            (
                VaultConfig {
                    list_concurrency: 0,
                    ..valid()
                },
                "list_concurrency",
            ),
            (
                VaultConfig {
                    timeouts: Timeouts {
                        read_ms: 0,
                        write_ms: 1,
                    },
                    ..valid()
                },
                "timeouts.read_ms",
            ),
            (
                VaultConfig {
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
            assert_eq!(e.field(), field, "{e}");
            assert_eq!(e.provider(), "vault");
        }
    }

    #[test]
    fn secrets_never_print_or_serialize() {
        let mut c = valid();
        c.auth = VaultAuth::Token {
            token: SecretString::from("s.TOPSECRET".to_string()),
        };
        c.ca_cert = Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("TOPSECRET") && !shown.contains("MIIB"), "{shown}");
        let toml_text = toml::to_string(&c).unwrap();
        assert!(!toml_text.contains("TOPSECRET"), "{toml_text}");
        assert!(toml_text.contains(REDACTED));
        c.auth = approle();
        let shown = format!("{c:?} {}", toml::to_string(&c).unwrap());
        assert!(!shown.contains("TOPSECRET-ID") && shown.contains("role-1"), "{shown}");
        let e = VaultConfig::with_token("http://127.0.0.1:8200", "s.TOP SECRET")
            .validate()
            .unwrap_err();
        assert!(!e.to_string().contains("SECRET"), "{e}");
    }

    #[test]
    fn toml_shapes() {
        let c: VaultConfig = toml::from_str(
            "endpoint = \"https://vault:8200\"\ndelete_mode = \"soft\"\n[auth]\nmethod = \"approle\"\nrole_id = \"r\"\nsecret_id = \"s\"",
        )
        .unwrap();
        assert_eq!(c.delete_mode, DeleteMode::Soft);
        assert_eq!(
            c.auth,
            VaultAuth::AppRole {
                role_id: "r".into(),
                secret_id: SecretString::from("s".to_string()),
                mount: "approle".into()
            }
        );
        assert!(c.validate().is_ok());
        let c: VaultConfig = toml::from_str("[auth]\nmethod = \"token\"\ntoken = \"t\"").unwrap();
        assert_eq!(c, VaultConfig::with_token("https://127.0.0.1:8200", "t"));
        assert!(
            toml::from_str::<VaultConfig>("tls_verify = false").is_err(),
            "no switch to turn TLS off"
        );
        assert!(toml::from_str::<VaultConfig>("[auth]\nmethod = \"userpass\"").is_err());
    }

    /// The keys and the `delete_mode` value of earlier releases still read, as their new
    /// names; a table setting a key under both names is refused naming both.
    #[test]
    fn old_keys_are_read_under_their_new_names() {
        let old: VaultConfig = toml::from_str(
            "address = \"http://vault:8200\"\nallow_plaintext_http = true\npath_prefix = \"app/creds\"\n\
             delete_mode = \"destroy\"\n[auth]\nmethod = \"token\"\ntoken = \"t\"",
        )
        .unwrap();
        let new = VaultConfig {
            allow_http: true,
            secret_prefix: "app/creds".into(),
            delete_mode: DeleteMode::Purge,
            ..VaultConfig::with_token("http://vault:8200", "t")
        };
        assert_eq!(old, new);
        assert!(old.validate().is_ok());
        let soft: VaultConfig = toml::from_str("delete_mode = \"soft\"").unwrap();
        assert_eq!(soft.delete_mode, DeleteMode::Soft);
        let both = toml::from_str::<VaultConfig>("address = \"https://a\"\nendpoint = \"https://b\"")
            .unwrap_err()
            .to_string();
        assert!(both.contains("`address`") && both.contains("endpoint"), "{both}");
        let written = toml::to_string(&new).unwrap();
        assert!(
            written.contains("endpoint = ")
                && written.contains("delete_mode = \"purge\"")
                && !written.contains("address"),
            "{written}"
        );
        assert_eq!(toml::from_str::<VaultConfig>(&written).unwrap(), {
            let mut c = new.clone();
            c.auth = VaultAuth::Token {
                token: SecretString::from(REDACTED.to_string()),
            };
            c
        });
    }

    /// A TOML error still points at its line (as before the deprecated keys were read
    /// through a table): the key or value at fault, old key names or not.
    #[test]
    fn toml_errors_point_at_their_line() {
        let line = |text: &str| {
            let e = toml::from_str::<VaultConfig>(text).unwrap_err();
            let span = e.span().unwrap_or_else(|| panic!("no span: {e}"));
            text[..span.start].matches('\n').count() + 1
        };
        assert_eq!(
            line("endpoint = \"https://v:8200\"\nmount_path = \"s\"\nmax_payload_bytes = \"x\"\n"),
            3
        );
        assert_eq!(line("address = \"https://v:8200\"\nmax_payload_bytes = \"x\"\n"), 2);
        assert_eq!(line("endpoint = \"https://v:8200\"\nbogus = 1\n"), 2);
        assert_eq!(line("mount_path = \"s\"\n[retry]\nmax_retries = \"x\"\n"), 3);
        assert_eq!(line("mount_path = \"s\"\ndelete_mode = \"DESTROY\"\n"), 2);
        let both = line("endpoint = \"https://v\"\naddress = \"https://w\"\n");
        assert!(both == 1 || both == 2, "one of the two keys at fault: {both}");
    }

    /// A token written where the `[auth]` table belongs (`auth = "hvs.…"`) is refused
    /// without repeating it (serde's message would quote the string).
    #[test]
    fn a_token_in_place_of_the_auth_table_is_not_repeated() {
        for text in [
            "auth = \"hvs.TOPSECRET\"",
            "[auth]\nmethod = \"token\"\ntoken = \"t\"\nextra = \"hvs.TOPSECRET\"",
        ] {
            let e = toml::from_str::<VaultConfig>(text).unwrap_err();
            assert!(!e.message().contains("TOPSECRET"), "{text}: {}", e.message());
        }
        let e = serde_json::from_str::<VaultConfig>(r#"{"auth": "hvs.TOPSECRET"}"#).unwrap_err();
        assert!(
            !e.to_string().contains("TOPSECRET") && e.to_string().contains("method"),
            "{e}"
        );
    }
}
