//! The Azure Key Vault emulator through azure_security_keyvault_secrets: a smoke test (set, get,
//! list) and the access checks (read-only token → 403, rejected token → 401), with the
//! emulator's CA trusted (TLS verification stays on), the SDK's challenge-resource
//! verification on, the SDK's default api-version and no SDK retries, so failures surface at
//! once.
//!
//! Natively the emulator is this workspace's keyvault-emulator (`cargo xtask emulators up
//! azure`), which knows a full, a read-only and a rejected token. Under docker it is Lowkey
//! Vault, which accepts any token and needs an older api-version: there xtask exports
//! `NEBULA_TEST_AZURE_API_VERSION` and no read-only or rejected token, and only the smoke test
//! runs.
#![cfg(feature = "azure")]

use azure_core::error::ErrorKind;
use azure_security_keyvault_secrets::SecretClient;
use azure_security_keyvault_secrets::models::SetSecretParameters;
use futures::TryStreamExt;
use nebula_credential_tests::{azure, emulator_var, unique};

/// A client of the emulator's vault presenting `token` (the row's SDK options, with the
/// api-version Lowkey Vault needs under docker).
fn client(token: String) -> SecretClient {
    azure::client_with(None, token, |options| {
        if let Some(lowkey) = lowkey_api_version() {
            options.api_version = lowkey;
        }
    })
}

/// Set only for Lowkey Vault under docker, which does not serve the SDK's default api-version.
fn lowkey_api_version() -> Option<String> {
    std::env::var("NEBULA_TEST_AZURE_API_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
}

/// The read-only or rejected token. Never skipped: Lowkey Vault (docker) has no such
/// tokens, so against it these two tests fail and say which variable is missing.
fn access_token(name: &str) -> String {
    emulator_var(name, "azure")
}

async fn set(c: &SecretClient, name: &str, value: &str) -> azure_core::Result<()> {
    let params = SetSecretParameters {
        value: Some(value.into()),
        ..SetSecretParameters::default()
    };
    c.set_secret(name, params.try_into()?, None).await.map(drop)
}

async fn get(c: &SecretClient, name: &str) -> azure_core::Result<Option<String>> {
    Ok(c.get_secret(name, None).await?.into_model()?.value)
}

/// The status and raw body of an HTTP error.
fn http_error(error: &azure_core::Error) -> (u16, String) {
    let ErrorKind::HttpResponse {
        status, raw_response, ..
    } = error.kind()
    else {
        panic!("expected an HTTP error, got {error:?}");
    };
    let body = raw_response
        .as_ref()
        .map(|raw| String::from_utf8_lossy(raw.body()).into_owned())
        .unwrap_or_default();
    (u16::from(*status), body)
}

#[tokio::test]
async fn set_get_list_through_the_sdk() {
    let c = client(emulator_var("NEBULA_TEST_AZURE_TOKEN", "azure"));
    let name = unique("nebula-smoke").replace('_', "-");
    set(&c, &name, "s3cr3t").await.expect("set");
    assert_eq!(get(&c, &name).await.expect("get").as_deref(), Some("s3cr3t"));
    let mut pager = c.list_secret_properties(None).expect("list");
    let mut found = false;
    while let Some(props) = pager.try_next().await.expect("page") {
        found |= props.id.as_deref().is_some_and(|id| id.contains(&name));
    }
    assert!(found, "{name} listed");
}

#[tokio::test]
async fn the_read_only_token_reads_but_gets_403_on_writes() {
    let token = access_token("NEBULA_TEST_AZURE_READONLY_TOKEN");
    let name = unique("nebula-readonly").replace('_', "-");
    let full = client(emulator_var("NEBULA_TEST_AZURE_TOKEN", "azure"));
    set(&full, &name, "readable").await.expect("set with the full token");
    let reader = client(token);
    let got = get(&reader, &name).await.expect("get with the read-only token");
    assert_eq!(got.as_deref(), Some("readable"));
    let error = set(&reader, &name, "nope")
        .await
        .expect_err("a write with the read-only token");
    let (status, body) = http_error(&error);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("ForbiddenByRbac"), "{body}");
}

#[tokio::test]
async fn the_rejected_token_gets_401() {
    let token = access_token("NEBULA_TEST_AZURE_REJECTED_TOKEN");
    let error = client(token)
        .get_secret("anything", None)
        .await
        .expect_err("a read with the rejected token");
    assert_eq!(http_error(&error).0, 401, "{error:?}");
}
