//! The Azure Key Vault row: the Key Vault emulator over TLS (its CA trusted through
//! `ca_cert`), challenge-resource verification on, the SDK's retries off; vaults
//! `<name>.localhost`, secrets named `<prefix>-…`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, RetryOptions, Transport, Url};
use azure_security_keyvault_secrets::models::{SetSecretParameters, UpdateSecretPropertiesParameters};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use nebula_credential::azure::{AzureCredential, AzureKeyVaultConfig, AzureKeyVaultProvider};
use nebula_credential::{CredentialId, StorageConfig, StorageError, StorageProvider};
use nebula_credential_core::conformance::{self, CaseResult, Identity, Opened};
use nebula_credential_core::layers::BoxFuture;
use nebula_credential_core::{BoxError, RetryPolicy};
use serde_json::Value;

use crate::{ReadOnlyRow, Row, emulator_var, open_config, opened, unique};

/// The backend's name (feature, `PROVIDERS`, emulator).
pub const NAME: &str = "azure";

/// The emulator's variable `name`.
pub fn var(name: &str) -> String {
    emulator_var(name, NAME)
}

/// The full-rights token.
pub fn token() -> String {
    var("NEBULA_TEST_AZURE_TOKEN")
}

/// The read-only token (Key Vault Secrets User).
pub fn read_only_token() -> String {
    var("NEBULA_TEST_AZURE_READONLY_TOKEN")
}

/// The token the emulator rejects (401).
pub fn rejected_token() -> String {
    var("NEBULA_TEST_AZURE_REJECTED_TOKEN")
}

/// The emulator's CA (a PEM file's path).
pub fn ca_path() -> String {
    var("NEBULA_TEST_AZURE_CA_PEM")
}

/// The emulator's default vault URL, or the one of vault `name` on the same emulator.
pub fn vault_url(name: Option<&str>) -> String {
    let url = var("NEBULA_TEST_AZURE_VAULT_URL");
    match name {
        None => url,
        Some(name) => {
            let mut parsed = Url::parse(&url).expect("vault url");
            parsed.set_host(Some(&format!("{name}.localhost"))).expect("host");
            parsed.as_str().trim_end_matches('/').to_string()
        }
    }
}

/// A vault name of our own (3–24 characters), so request logs and faults are ours alone.
pub fn own_vault(tag: &str) -> String {
    let n = unique(tag).replace('_', "-");
    let tail = &n[n.len().saturating_sub(10)..];
    format!("{tag}{tail}").chars().take(24).collect()
}

/// A fixed bearer token (valid for an hour).
#[derive(Debug)]
pub struct StaticToken(pub String);

#[async_trait::async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(&self, _: &[&str], _: Option<TokenRequestOptions<'_>>) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            self.0.clone(),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

/// A config of the emulator's vault at `vault_url`: its CA trusted, `credential`,
/// secrets under `PREFIX-`.
pub fn azure_config(prefix: &str, credential: Arc<dyn TokenCredential>, vault_url: String) -> AzureKeyVaultConfig {
    AzureKeyVaultConfig {
        endpoint: vault_url,
        allow_custom_host: true,
        ca_cert: Some(ca_path()),
        credential: AzureCredential::custom(credential),
        secret_prefix: format!("{prefix}-"),
        ..AzureKeyVaultConfig::default()
    }
}

/// [`azure_config`] of vault `vault` (default: the emulator's).
pub fn config_with(prefix: &str, credential: Arc<dyn TokenCredential>, vault: Option<&str>) -> AzureKeyVaultConfig {
    azure_config(prefix, credential, vault_url(vault))
}

/// The configuration every Azure test starts from: the full-rights token, the default
/// vault, secrets under `<prefix>-`.
pub fn config(prefix: &str) -> AzureKeyVaultConfig {
    config_with(prefix, Arc::new(StaticToken(token())), None)
}

/// `c` through `open()`'s full layer stack.
pub async fn provider(c: AzureKeyVaultConfig) -> Arc<dyn StorageProvider> {
    open_config(&StorageConfig::Azure(c)).await
}

/// A namespace (secret-name prefix) of its own for `tag`, and a provider over it.
pub async fn fresh(tag: &str) -> (String, Arc<dyn StorageProvider>) {
    let ns = unique(tag).replace('_', "-");
    let p = provider(config(&ns)).await;
    (ns, p)
}

/// The name of the secret holding `id` under prefix `namespace`.
pub fn name_in(namespace: &str, id: &CredentialId) -> String {
    AzureKeyVaultProvider::with_credential(config(namespace), Arc::new(StaticToken(token())))
        .expect("provider")
        .secret_name(id)
}

/// An HTTP client trusting only the emulator's CA, resolving `hosts` to it.
pub fn http_for(hosts: &[&str]) -> reqwest::Client {
    let ca = std::fs::read(ca_path()).expect("CA file");
    let port = Url::parse(&vault_url(None)).expect("url").port().expect("port");
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).expect("PEM")]);
    for host in hosts {
        b = b.resolve(host, std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    b.build().expect("http client")
}

/// An HTTP client of the emulator's default vault (and its control API).
pub fn http() -> reqwest::Client {
    http_for(&["nebula.localhost", "localhost"])
}

/// The SDK options every raw client of the emulator uses: our `http` transport, the SDK's
/// retries off (so a test sees every status), challenge-resource verification on.
pub fn client_options(http: reqwest::Client) -> SecretClientOptions {
    SecretClientOptions {
        client_options: ClientOptions {
            transport: Some(Transport::new(Arc::new(http))),
            retry: RetryOptions::none(),
            ..ClientOptions::default()
        },
        verify_challenge_resource: Some(true),
        ..SecretClientOptions::default()
    }
}

/// A raw SDK client of `vault` (default: the emulator's) presenting `token`.
pub fn client_with(vault: Option<&str>, token: String, options: impl FnOnce(&mut SecretClientOptions)) -> SecretClient {
    let url = vault_url(vault);
    let host = Url::parse(&url).expect("url").host_str().expect("host").to_string();
    let mut opts = client_options(http_for(&[&host]));
    options(&mut opts);
    SecretClient::new(&url, Arc::new(StaticToken(token)), Some(opts)).expect("secret client")
}

/// A raw SDK client of `vault` (default: the emulator's) with the full-rights token, for
/// checks behind the provider's back.
pub fn raw(vault: Option<&str>) -> SecretClient {
    client_with(vault, token(), |_| {})
}

/// A control request to the emulator (`/__emulator/…`).
pub async fn control(method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut request = http()
        .request(method, format!("{}/__emulator/{path}", vault_url(None)))
        .bearer_auth(token());
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("control request");
    assert!(response.status().is_success(), "control {path}: {}", response.status());
    serde_json::from_str(&response.text().await.expect("control body")).unwrap_or(Value::Null)
}

/// The emulator's request log for `vault`: (method, path, status).
pub async fn requests(vault: &str) -> Vec<(String, String, u16)> {
    let log = control(reqwest::Method::GET, "requests", None).await;
    log["requests"]
        .as_array()
        .expect("a request log")
        .iter()
        .filter(|r| r["vault"].as_str().is_some_and(|v| v.eq_ignore_ascii_case(vault)))
        .map(|r| {
            (
                r["method"].as_str().unwrap_or_default().to_string(),
                r["path"].as_str().unwrap_or_default().to_string(),
                u16::try_from(r["status"].as_u64().unwrap_or_default()).unwrap_or(0),
            )
        })
        .collect()
}

/// The tags of secret `name`'s current version.
pub async fn raw_tags(c: &SecretClient, name: &str) -> Result<BTreeMap<String, String>, BoxError> {
    let s = c.get_secret(name, None).await?.into_model()?;
    Ok(s.tags.unwrap_or_default().into_iter().collect())
}

/// Polls until the deleted secret `name` is visible, then purges it.
pub async fn purge(c: &SecretClient, name: &str) -> CaseResult {
    for _ in 0..100 {
        if c.get_deleted_secret(name, None).await.is_ok() {
            c.purge_deleted_secret(name, None).await?;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("{name} never showed up as deleted").into())
}

/// The value of a foreign secret.
pub const FOREIGN_VALUE: &str = "not ours";

/// Plants a secret named like ours, without the marker, through the raw SDK.
pub struct Foreign;

impl conformance::Foreign for Foreign {
    fn plant<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, CaseResult> {
        Box::pin(async move {
            let params = SetSecretParameters {
                value: Some(FOREIGN_VALUE.into()),
                tags: Some(HashMap::from([("CostCenter".to_string(), "42".to_string())])),
                ..SetSecretParameters::default()
            };
            raw(None)
                .set_secret(&name_in(namespace, id), params.try_into()?, None)
                .await?;
            Ok(())
        })
    }

    fn intact<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async move {
            let s = raw(None)
                .get_secret(&name_in(namespace, id), None)
                .await?
                .into_model()?;
            let tags = s.tags.unwrap_or_default();
            Ok(s.value.as_deref() == Some(FOREIGN_VALUE) && tags.len() == 1 && tags["CostCenter"] == "42")
        })
    }

    fn remove<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, CaseResult> {
        Box::pin(async move {
            let c = raw(None);
            let name = name_in(namespace, id);
            c.delete_secret(&name, None).await?;
            purge(&c, &name).await
        })
    }
}

fn identity_opened<'a>(
    namespace: &'a str,
    token: String,
    edit: impl FnOnce(&mut AzureKeyVaultConfig) + Send + 'a,
) -> BoxFuture<'a, Result<Opened, BoxError>> {
    Box::pin(async move {
        let mut c = config_with(namespace, Arc::new(StaticToken(token)), None);
        edit(&mut c);
        opened(&StorageConfig::Azure(c)).await
    })
}

/// The read-only token (Key Vault Secrets User).
pub struct ReadOnly;

impl Identity for ReadOnly {
    fn open<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Opened, BoxError>> {
        identity_opened(namespace, read_only_token(), |_| {})
    }

    fn secret(&self) -> Option<String> {
        Some(read_only_token())
    }

    /// The denial names the role to grant, and its source is the SDK's 403 whose body
    /// says `ForbiddenByRbac` (azure_core 1.1 reports the status as the error code).
    fn explains(&self, _: &str, op: &str, _: &CredentialId, error: &StorageError) -> CaseResult {
        let m = error.to_string();
        if !m.contains("Key Vault Secrets Officer") {
            return Err(format!("{op}: the denial names the role: {m}").into());
        }
        let source = std::error::Error::source(error)
            .and_then(|s| s.downcast_ref::<azure_core::Error>())
            .ok_or_else(|| format!("{op}: the SDK's error is the source: {error:?}"))?;
        let azure_core::error::ErrorKind::HttpResponse {
            error_code,
            raw_response,
            ..
        } = source.kind()
        else {
            return Err(format!("{op}: an HTTP error: {source:?}").into());
        };
        if error_code.as_deref() != Some("403") {
            return Err(format!("{op}: code {error_code:?}, expected 403").into());
        }
        let body = raw_response
            .as_ref()
            .map(|r| String::from_utf8_lossy(r.body()).into_owned())
            .unwrap_or_default();
        if !body.contains("ForbiddenByRbac") {
            return Err(format!("{op}: the body says ForbiddenByRbac: {body}").into());
        }
        Ok(())
    }
}

/// The token the emulator rejects.
pub struct Rejected;

impl Identity for Rejected {
    fn open<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Opened, BoxError>> {
        identity_opened(namespace, rejected_token(), |_| {})
    }

    fn secret(&self) -> Option<String> {
        Some(rejected_token())
    }

    /// The refusal names the credential that was used.
    fn explains(&self, _: &str, op: &str, _: &CredentialId, error: &StorageError) -> CaseResult {
        if error.to_string().contains("custom TokenCredential") {
            Ok(())
        } else {
            Err(format!("{op}: the refusal names the custom TokenCredential: {error}").into())
        }
    }
}

/// The emulator without its CA trusted (retries on: none may happen).
pub struct UntrustedCa;

impl Identity for UntrustedCa {
    fn open<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Opened, BoxError>> {
        identity_opened(namespace, token(), |c| {
            c.ca_cert = None;
            c.retry = RetryPolicy {
                max_retries: 5,
                ..RetryPolicy::default()
            };
        })
    }

    /// The refusal names `ca_cert`.
    fn explains(&self, _: &str, op: &str, _: &CredentialId, error: &StorageError) -> CaseResult {
        if error.to_string().contains("ca_cert") {
            Ok(())
        } else {
            Err(format!("{op}: the refusal names ca_cert: {error}").into())
        }
    }
}

/// A tag another tool puts on the current version (`CostCenter=42`).
pub struct OtherTools;

impl conformance::OtherTools for OtherTools {
    fn open_with_default_tag<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<Arc<dyn StorageProvider>, BoxError>> {
        Box::pin(async move {
            let c = AzureKeyVaultConfig {
                default_tags: BTreeMap::from([(key.to_string(), value.to_string())]),
                ..config(namespace)
            };
            Ok(provider(c).await)
        })
    }

    fn mark<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, CaseResult> {
        Box::pin(async move {
            let c = raw(None);
            let name = name_in(namespace, id);
            let mut tags: HashMap<String, String> = raw_tags(&c, &name).await?.into_iter().collect();
            tags.insert("CostCenter".into(), "42".into());
            let update = UpdateSecretPropertiesParameters {
                tags: Some(tags),
                ..Default::default()
            };
            c.update_secret_properties(&name, update.try_into()?, None).await?;
            Ok(())
        })
    }

    fn marked<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async move {
            let tags = raw_tags(&raw(None), &name_in(namespace, id)).await?;
            Ok(tags.get("CostCenter").map(String::as_str) == Some("42"))
        })
    }

    fn raw_tags<'a>(
        &'a self,
        namespace: &'a str,
        id: &'a CredentialId,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, BoxError>> {
        Box::pin(async move { raw_tags(&raw(None), &name_in(namespace, id)).await })
    }
}

/// Key Vault names allow `[0-9A-Za-z-]`: a prefix of `ns`'s letters and digits.
fn prefix_of(ns: &str) -> String {
    let prefix: String = ns.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("m{}", &prefix[prefix.len().saturating_sub(30)..])
}

/// The row of `nebula_cred.rs`.
pub fn row() -> Row {
    Row {
        name: NAME,
        config: |ns| StorageConfig::Azure(config(&prefix_of(ns))),
        read_only: Ok(ReadOnlyRow {
            config: || StorageConfig::Azure(config_with("ro", Arc::new(StaticToken(read_only_token())), None)),
            names: &["Key Vault Secrets Officer"],
        }),
    }
}
