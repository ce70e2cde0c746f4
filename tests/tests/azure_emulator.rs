//! The Azure Key Vault emulator (Lowkey Vault) through azure_security_keyvault_secrets:
//! set, get and list, with the emulator's certificate trusted (verification stays on) and
//! the bearer-challenge flow passing.
//!
//! What the client needs: a reqwest client trusting the emulator's CA and resolving
//! `NAME.localhost` to 127.0.0.1, passed as the transport; a `TokenCredential` (Lowkey
//! accepts any non-empty bearer token); the API version Lowkey serves; and no SDK retries,
//! so failures surface at once.
#![cfg(feature = "azure")]

use std::sync::Arc;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, RetryOptions, Transport, Url};
use azure_core::time::{Duration, OffsetDateTime};
use azure_security_keyvault_secrets::models::SetSecretParameters;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use futures::TryStreamExt;
use nebula_credential_tests::{emulator_var, unique};

/// A fixed token: Lowkey Vault accepts any non-empty bearer token.
#[derive(Debug)]
struct StaticToken;

#[async_trait::async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(&self, _: &[&str], _: Option<TokenRequestOptions<'_>>) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            "nebula-test-token",
            OffsetDateTime::now_utc() + Duration::hours(1),
        ))
    }
}

fn client() -> SecretClient {
    let url = emulator_var("NEBULA_TEST_AZURE_VAULT_URL", "azure");
    let ca = std::fs::read(emulator_var("NEBULA_TEST_AZURE_CA_PEM", "azure")).expect("CA file");
    let api_version = emulator_var("NEBULA_TEST_AZURE_API_VERSION", "azure");
    let parsed = Url::parse(&url).expect("vault url");
    let host = parsed.host_str().expect("host").to_string();
    let port = parsed.port().expect("port");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("PEM"))
        .resolve(&host, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .expect("http client");
    let options = SecretClientOptions {
        api_version,
        client_options: ClientOptions {
            transport: Some(Transport::new(Arc::new(http))),
            retry: RetryOptions::none(),
            ..ClientOptions::default()
        },
        ..SecretClientOptions::default()
    };
    SecretClient::new(&url, Arc::new(StaticToken), Some(options)).expect("secret client")
}

#[tokio::test]
async fn set_get_list_through_the_sdk() {
    let c = client();
    let name = unique("nebula-smoke").replace('_', "-");
    let params = SetSecretParameters {
        value: Some("s3cr3t".into()),
        ..SetSecretParameters::default()
    };
    c.set_secret(&name, params.try_into().expect("body"), None)
        .await
        .expect("set");
    let got = c
        .get_secret(&name, None)
        .await
        .expect("get")
        .into_model()
        .expect("model");
    assert_eq!(got.value.as_deref(), Some("s3cr3t"));
    let mut pager = c.list_secret_properties(None).expect("list");
    let mut found = false;
    while let Some(props) = pager.try_next().await.expect("page") {
        found |= props.id.as_deref().is_some_and(|id| id.contains(&name));
    }
    assert!(found, "{name} listed");
}
