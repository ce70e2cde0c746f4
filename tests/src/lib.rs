//! Cross-crate tests of nebula-credential: the conformance suite through
//! `nebula_credential::open`, and each backend against its real emulator (one cargo
//! feature per backend, turned on by `cargo xtask test-integration`). The tests live in
//! `tests/`; this library holds their shared helpers.

/// The value of `name`, set by `cargo xtask` for `backend`'s emulator. Panics with what to
/// run when it is missing: a backend's tests never skip themselves.
pub fn emulator_var(name: &str, backend: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: these tests need the {backend} emulator. Run \
             `cargo xtask test-integration --backend {backend}` (it starts the emulator and sets \
             the variables), or `cargo xtask emulators up {backend}` then \
             `eval \"$(cargo xtask emulators env)\"`."
        ),
    }
}

/// A name unique to this test run, for resources on shared emulators.
pub fn unique(prefix: &str) -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos:08x}", std::process::id())
}

/// A Secrets Manager client for the AWS emulator, for checks behind the provider's back.
#[cfg(feature = "aws")]
pub fn aws_client() -> aws_sdk_secretsmanager::Client {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(emulator_var("NEBULA_TEST_AWS_ENDPOINT", "aws"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "static"))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

/// A fixed bearer token (valid for an hour) for the Key Vault emulator.
#[cfg(feature = "azure")]
#[derive(Debug)]
pub struct StaticToken(pub String);

#[cfg(feature = "azure")]
#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for StaticToken {
    async fn get_token(
        &self,
        _: &[&str],
        _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        Ok(azure_core::credentials::AccessToken::new(
            self.0.clone(),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

/// An Azure config for the Key Vault emulator at `vault_url`: its CA trusted, `credential`,
/// secrets under `PREFIX-`.
#[cfg(feature = "azure")]
pub fn azure_config(
    prefix: &str,
    credential: std::sync::Arc<dyn azure_core::credentials::TokenCredential>,
    vault_url: String,
) -> nebula_credential::azure::AzureKeyVaultConfig {
    use nebula_credential::azure::{AzureCredential, AzureKeyVaultConfig};
    AzureKeyVaultConfig {
        endpoint: vault_url,
        allow_custom_host: true,
        ca_cert: Some(emulator_var("NEBULA_TEST_AZURE_CA_PEM", "azure")),
        credential: AzureCredential::custom(credential),
        secret_prefix: format!("{prefix}-"),
        ..AzureKeyVaultConfig::default()
    }
}

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
