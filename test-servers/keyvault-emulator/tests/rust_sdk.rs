//! Parity tests: the emulator driven by Microsoft's Rust crate `azure_security_keyvault_secrets`,
//! with challenge-resource verification ON, TLS verification ON (the emulator's CA only) and the
//! SDK's retries OFF. Where the crate and the emulator disagree, the crate wins.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_core::time::OffsetDateTime;
use azure_security_keyvault_secrets::models::{
    SecretAttributes, SecretClientGetSecretOptions, SecretClientListSecretPropertiesOptions, SecretProperties,
    SetSecretParameters, UpdateSecretPropertiesParameters,
};
use azure_security_keyvault_secrets::{ResourceExt as _, SecretClient, SecretClientOptions};
use futures::TryStreamExt as _;
use keyvault_emulator::{Config, Emulator, LoggedRequest, Tokens};
use serde_json::{Value, json};

const VAULT: &str = "nebula";

/// A credential that hands out one fixed token and records the scopes it was asked for.
#[derive(Debug)]
struct StaticToken {
    token: String,
    scopes: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.scopes.lock().unwrap().extend(scopes.iter().map(|s| s.to_string()));
        Ok(AccessToken::new(
            self.token.clone(),
            OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

struct Harness {
    emulator: Emulator,
    tokens: Tokens,
    http: reqwest::Client,
}

impl Harness {
    async fn start() -> Self {
        let config = Config::for_tests(Duration::from_millis(150), Duration::from_millis(150));
        let tokens = config.tokens.clone();
        let emulator = Emulator::start(config).await.expect("emulator starts");
        let http = Self::http(&emulator, true);
        Self { emulator, tokens, http }
    }

    /// A reqwest client that trusts only the emulator's CA (or nothing) and resolves the vault host.
    fn http(emulator: &Emulator, trust_ca: bool) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .resolve(&format!("{VAULT}.localhost"), emulator.addr())
            .resolve("second.localhost", emulator.addr());
        if trust_ca {
            let ca = reqwest::Certificate::from_pem(emulator.ca_pem().as_bytes()).expect("CA parses");
            builder = builder.tls_certs_only([ca]);
        }
        builder.build().expect("reqwest client")
    }

    fn client_for(&self, url: &str, token: &str, http: reqwest::Client) -> (SecretClient, Arc<StaticToken>) {
        self.client_with_options(url, token, http, |_| {})
    }

    /// The one place the SDK options are built: our `http` transport, the SDK's retries
    /// off (so a test sees every status), challenge-resource verification on; `edit`
    /// changes what one test needs (e.g. the api-version).
    fn client_with_options(
        &self,
        url: &str,
        token: &str,
        http: reqwest::Client,
        edit: impl FnOnce(&mut SecretClientOptions),
    ) -> (SecretClient, Arc<StaticToken>) {
        let credential = Arc::new(StaticToken {
            token: token.to_owned(),
            scopes: Mutex::new(Vec::new()),
        });
        let mut options = SecretClientOptions {
            client_options: ClientOptions {
                transport: Some(Transport::new(Arc::new(http))),
                retry: RetryOptions::none(),
                ..Default::default()
            },
            verify_challenge_resource: Some(true),
            ..Default::default()
        };
        edit(&mut options);
        let client = SecretClient::new(url, credential.clone(), Some(options)).expect("client");
        (client, credential)
    }

    fn client(&self, token: &str) -> SecretClient {
        let url = self.emulator.vault_url(VAULT);
        self.client_for(&url, token, self.http.clone()).0
    }

    fn full(&self) -> SecretClient {
        self.client(&self.tokens.full)
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.control_status(method, path, body).await;
        assert!((200..300).contains(&status), "control {path}: {status} {answer}");
        answer
    }

    /// A control request's status and JSON answer (`Null` when there is none).
    async fn control_status(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}/__emulator/{path}", self.emulator.vault_url(VAULT));
        let mut request = self.http.request(method, url).bearer_auth(&self.tokens.full);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("control request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("control body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A client of the default vault with `token` and the given api-version.
    fn client_with_api_version(&self, token: &str, api_version: &str) -> SecretClient {
        let url = self.emulator.vault_url(VAULT);
        self.client_with_options(&url, token, self.http.clone(), |o| {
            o.api_version = api_version.to_owned()
        })
        .0
    }

    async fn requests(&self) -> Vec<LoggedRequest> {
        let log = self.control(reqwest::Method::GET, "requests", None).await;
        serde_json::from_value(log["requests"].clone()).expect("request log")
    }

    async fn clear_requests(&self) {
        self.control(reqwest::Method::DELETE, "requests", None).await;
    }
}

fn params(value: &str) -> SetSecretParameters {
    SetSecretParameters {
        value: Some(value.into()),
        ..Default::default()
    }
}

async fn set(client: &SecretClient, name: &str, body: SetSecretParameters) -> azure_core::Result<String> {
    let secret = client.set_secret(name, body.try_into()?, None).await?.into_model()?;
    Ok(secret.resource_id()?.version.expect("a version"))
}

async fn get_value(client: &SecretClient, name: &str) -> azure_core::Result<Option<String>> {
    Ok(client.get_secret(name, None).await?.into_model()?.value)
}

/// Status, `error.code` as the SDK reports it, and the inner code from the body.
fn http_error(error: &azure_core::Error) -> (u16, String, Option<String>, String) {
    let ErrorKind::HttpResponse {
        status,
        error_code,
        raw_response,
    } = error.kind()
    else {
        panic!("expected an HTTP error, got {error:?}");
    };
    let body: Value = raw_response
        .as_ref()
        .and_then(|raw| serde_json::from_slice(raw.body()).ok())
        .unwrap_or(Value::Null);
    let inner = body["error"]["innererror"]["code"].as_str().map(str::to_owned);
    let message = body["error"]["message"].as_str().unwrap_or("").to_owned();
    (
        u16::from(*status),
        error_code.clone().unwrap_or_default(),
        inner,
        message,
    )
}

/// Status, `error.code` and inner code as the body says them (azure_core 1.1 reports the
/// status as the code when the body's strings hold escapes such as `\"` or `\r\n`).
fn body_error(error: &azure_core::Error) -> (u16, String, Option<String>, String) {
    let (status, _, inner, message) = http_error(error);
    let ErrorKind::HttpResponse { raw_response, .. } = error.kind() else {
        unreachable!("http_error checked the kind")
    };
    let body: Value = raw_response
        .as_ref()
        .and_then(|raw| serde_json::from_slice(raw.body()).ok())
        .unwrap_or(Value::Null);
    let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
    (status, code, inner, message)
}

/// Asserts an error's status and the error code the SDK reports.
#[track_caller]
fn assert_http_error(error: &azure_core::Error, status: u16, code: &str) {
    let (got_status, got_code, _, _) = http_error(error);
    assert_eq!((got_status, got_code.as_str()), (status, code), "{error:?}");
}

/// Every secret the SDK's pager yields.
async fn list_all(client: &SecretClient) -> Vec<SecretProperties> {
    let pager = client.list_secret_properties(None).unwrap();
    pager.try_collect().await.unwrap()
}

/// Polls until `check` succeeds (the Rust crate has no poller).
async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = azure_core::Result<T>>,
{
    for _ in 0..100 {
        if let Ok(found) = check().await {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 5 s");
}

#[tokio::test]
async fn challenge_then_set_get_update_with_integer_timestamps() {
    let h = Harness::start().await;
    let (client, credential) = h.client_for(&h.emulator.vault_url(VAULT), &h.tokens.full, h.http.clone());
    let body = SetSecretParameters {
        value: Some("first".into()),
        content_type: Some("text/plain".into()),
        tags: Some(HashMap::from([("owner".into(), "nebula".into())])),
        ..Default::default()
    };
    let v1 = set(&client, "round-trip", body).await.unwrap();
    assert_eq!(v1.len(), 32);
    assert!(v1.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    // The SDK asked for the scope named by the challenge's resource.
    let port = h.emulator.addr().port();
    assert_eq!(
        *credential.scopes.lock().unwrap(),
        vec![format!("https://localhost:{port}/.default")]
    );

    let v2 = set(&client, "round-trip", params("second")).await.unwrap();
    let latest = client
        .get_secret("round-trip", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(latest.value.as_deref(), Some("second"));
    assert_eq!(latest.resource_id().unwrap().version.as_deref(), Some(v2.as_str()));
    let attributes = latest.attributes.unwrap();
    assert!(attributes.created.unwrap() <= OffsetDateTime::now_utc());
    assert_eq!(attributes.recoverable_days, Some(90));

    let options = SecretClientGetSecretOptions {
        secret_version: Some(v1.clone()),
        ..Default::default()
    };
    let first = client
        .get_secret("round-trip", Some(options))
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(first.value.as_deref(), Some("first"));
    assert_eq!(first.content_type.as_deref(), Some("text/plain"));
    assert_eq!(first.tags.unwrap()["owner"], "nebula");

    let update = UpdateSecretPropertiesParameters {
        content_type: Some("application/json".into()),
        tags: Some(HashMap::from([("stage".into(), "updated".into())])),
        ..Default::default()
    };
    let updated = client
        .update_secret_properties("round-trip", update.try_into().unwrap(), None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(updated.content_type.as_deref(), Some("application/json"));
    assert_eq!(updated.value, None, "update answers without the value");
    assert_eq!(updated.tags.unwrap()["stage"], "updated");

    let versions: Vec<_> = client
        .list_secret_properties_versions("round-trip", None)
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(versions.len(), 2);

    // What went over the wire: a bare challenge request first, the latest version by trailing slash.
    let log = h.requests().await;
    assert_eq!((log[0].method.as_str(), log[0].status), ("PUT", 401));
    assert_eq!((log[1].method.as_str(), log[1].status), ("PUT", 200));
    assert!(
        log.iter()
            .any(|r| r.method == "GET" && r.path == "/secrets/round-trip/")
    );
    assert!(
        log.iter()
            .any(|r| r.method == "PATCH" && r.path == "/secrets/round-trip/")
    );
    assert!(log.iter().all(|r| r.query.contains("api-version=2025-07-01")));
}

#[tokio::test]
async fn lists_sixty_secrets_in_pages_of_any_size() {
    let h = Harness::start().await;
    let client = h.full();
    for i in 0..60 {
        set(&client, &format!("page-{i:02}"), params("v")).await.unwrap();
    }
    for (maxresults, pages) in [(Some(7), 9), (None, 3), (Some(25), 3)] {
        let options = SecretClientListSecretPropertiesOptions {
            maxresults,
            ..Default::default()
        };
        let mut seen = Vec::new();
        let mut page_count = 0;
        let mut pager = client.list_secret_properties(Some(options)).unwrap().into_pages();
        while let Some(page) = pager.try_next().await.unwrap() {
            page_count += 1;
            let page = page.into_model().unwrap();
            seen.extend(page.value.into_iter().map(|s| s.resource_id().unwrap().name));
        }
        let expected: Vec<String> = (0..60).map(|i| format!("page-{i:02}")).collect();
        assert_eq!(seen, expected, "maxresults {maxresults:?}");
        assert_eq!(page_count, pages, "maxresults {maxresults:?}");
    }

    // An empty page with a nextLink (as the service sometimes sends) does not end the listing.
    h.control(reqwest::Method::POST, "faults", Some(json!({"empty_page": true})))
        .await;
    let all = list_all(&client).await;
    assert_eq!(all.len(), 60);
    let lists = h.requests().await.into_iter().filter(|r| r.path == "/secrets").count();
    assert_eq!(lists, 9 + 3 + 3 + 4, "the empty page cost one extra request");
}

#[tokio::test]
async fn soft_delete_recover_and_purge() {
    let h = Harness::start().await;
    let client = h.full();
    set(&client, "doomed", params("keep me")).await.unwrap();

    let deleted = client
        .delete_secret("doomed", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert!(deleted.value.is_none());
    let port = h.emulator.addr().port();
    assert_eq!(
        deleted.recovery_id.as_deref(),
        Some(format!("https://{VAULT}.localhost:{port}/deletedsecrets/doomed").as_str())
    );
    let (deleted_date, purge_date) = (deleted.deleted_date.unwrap(), deleted.scheduled_purge_date.unwrap());
    assert_eq!(purge_date - deleted_date, azure_core::time::Duration::days(90));

    // Not yet visible: 404 while the delete is in progress, 409 for purge and set.
    let error = client.get_deleted_secret("doomed", None).await.unwrap_err();
    assert_eq!(http_error(&error).0, 404);
    let error = client.purge_deleted_secret("doomed", None).await.unwrap_err();
    assert_eq!(http_error(&error).2.as_deref(), Some("ObjectIsBeingDeleted"));

    poll("deleted secret visible", || client.get_deleted_secret("doomed", None)).await;
    let listed: Vec<_> = client
        .list_deleted_secret_properties(None)
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].recovery_id.is_some());

    // Setting a soft-deleted name is a conflict.
    let error = set(&client, "doomed", params("again")).await.unwrap_err();
    let (status, code, inner, _) = http_error(&error);
    assert_eq!(
        (status, code.as_str(), inner.as_deref()),
        (409, "Conflict", Some("ObjectIsDeletedButRecoverable"))
    );

    let recovered = client
        .recover_deleted_secret("doomed", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert!(recovered.value.is_none());
    let value = poll("recovered secret readable", || get_value(&client, "doomed")).await;
    assert_eq!(value.as_deref(), Some("keep me"));

    client.delete_secret("doomed", None).await.unwrap();
    poll("deleted again", || client.get_deleted_secret("doomed", None)).await;
    client.purge_deleted_secret("doomed", None).await.unwrap();
    let error = client.get_deleted_secret("doomed", None).await.unwrap_err();
    assert_eq!(http_error(&error).1, "SecretNotFound");
    set(&client, "doomed", params("fresh")).await.unwrap();
}

#[tokio::test]
async fn disabled_secret_is_forbidden_and_missing_is_not_found() {
    let h = Harness::start().await;
    let client = h.full();
    let body = SetSecretParameters {
        value: Some("hidden".into()),
        secret_attributes: Some(SecretAttributes {
            enabled: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    set(&client, "disabled", body).await.unwrap();
    let error = client.get_secret("disabled", None).await.unwrap_err();
    let (status, code, inner, _) = http_error(&error);
    assert_eq!(
        (status, code.as_str(), inner.as_deref()),
        (403, "Forbidden", Some("SecretDisabled"))
    );

    let error = client.get_secret("never-set", None).await.unwrap_err();
    assert_http_error(&error, 404, "SecretNotFound");
}

#[tokio::test]
async fn read_only_token_reads_but_cannot_write() {
    let h = Harness::start().await;
    set(&h.full(), "shared", params("readable")).await.unwrap();
    let reader = h.client(&h.tokens.read_only);
    assert_eq!(get_value(&reader, "shared").await.unwrap().as_deref(), Some("readable"));
    let listed = list_all(&reader).await;
    assert_eq!(listed.len(), 1);

    let error = set(&reader, "shared", params("nope")).await.unwrap_err();
    let (status, code, inner, message) = http_error(&error);
    assert_eq!((status, inner.as_deref()), (403, Some("ForbiddenByRbac")));
    // The service's RBAC message spans lines ("\r\n" escapes in JSON); azure_core 1.1 reads the
    // body with borrowed strings, fails on the escapes and reports the status as the error code.
    // A provider must read `error.innererror.code` from the body itself.
    assert_eq!(code, "403");
    assert!(
        message.contains("Microsoft.KeyVault/vaults/secrets/setSecret/action"),
        "{message}"
    );

    let error = reader.delete_secret("shared", None).await.unwrap_err();
    assert!(
        http_error(&error)
            .3
            .contains("Microsoft.KeyVault/vaults/secrets/delete")
    );
}

#[tokio::test]
async fn rejected_token_gets_401() {
    let h = Harness::start().await;
    let client = h.client(&h.tokens.rejected);
    let error = client.get_secret("anything", None).await.unwrap_err();
    assert_http_error(&error, 401, "Unauthorized");
}

#[tokio::test]
async fn names_are_case_insensitive() {
    let h = Harness::start().await;
    let client = h.full();
    set(&client, "Mixed-Case", params("one")).await.unwrap();
    assert_eq!(get_value(&client, "mixed-case").await.unwrap().as_deref(), Some("one"));
    set(&client, "MIXED-CASE", params("two")).await.unwrap();
    assert_eq!(get_value(&client, "Mixed-Case").await.unwrap().as_deref(), Some("two"));
    let versions: Vec<_> = client
        .list_secret_properties_versions("mixed-CASE", None)
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(versions.len(), 2);
    let all = list_all(&client).await;
    assert_eq!(all.len(), 1);
}

#[tokio::test]
async fn limits_are_enforced() {
    let h = Harness::start().await;
    let client = h.full();
    set(&client, "at-limit", params(&"x".repeat(25_600))).await.unwrap();
    let long_name = "n".repeat(128);
    let cases: Vec<(&str, SetSecretParameters)> = vec![
        ("too-large", params(&"x".repeat(25_601))),
        (
            "too-many-tags",
            SetSecretParameters {
                tags: Some((0..16).map(|i| (format!("t{i}"), "v".into())).collect()),
                ..params("v")
            },
        ),
        (
            "long-content-type",
            SetSecretParameters {
                content_type: Some("c".repeat(256)),
                ..params("v")
            },
        ),
        ("bad_name", params("v")),
        (&long_name, params("v")),
    ];
    for (name, body) in cases {
        let error = set(&client, name, body).await.unwrap_err();
        assert_http_error(&error, 400, "BadParameter");
    }
}

#[tokio::test]
async fn throttling_reaches_the_caller_in_one_request_with_sdk_retries_off() {
    let h = Harness::start().await;
    let client = h.full();
    set(&client, "busy", params("v")).await.unwrap();
    h.clear_requests().await;
    h.control(
        reqwest::Method::POST,
        "faults",
        Some(json!({"status": 429, "retry_after_s": 1, "count": 1})),
    )
    .await;
    let error = client.get_secret("busy", None).await.unwrap_err();
    assert_eq!(http_error(&error).0, 429);
    let log = h.requests().await;
    assert_eq!(log.len(), 1, "the SDK sent exactly one request: {log:?}");
    assert_eq!((log[0].path.as_str(), log[0].status), ("/secrets/busy/", 429));

    h.control(reqwest::Method::POST, "faults", Some(json!({"status": 503})))
        .await;
    assert_eq!(http_error(&client.get_secret("busy", None).await.unwrap_err()).0, 503);
    assert_eq!(get_value(&client, "busy").await.unwrap().as_deref(), Some("v"));
}

#[tokio::test]
async fn each_host_name_is_its_own_vault() {
    let h = Harness::start().await;
    set(&h.full(), "only-here", params("v")).await.unwrap();
    let url = format!("https://second.localhost:{}", h.emulator.addr().port());
    let (second, _) = h.client_for(&url, &h.tokens.full, h.http.clone());
    let error = second.get_secret("only-here", None).await.unwrap_err();
    assert_eq!(http_error(&error).0, 404);
    set(&second, "only-here", params("other")).await.unwrap();
    assert_eq!(get_value(&h.full(), "only-here").await.unwrap().as_deref(), Some("v"));
}

#[tokio::test]
async fn sdk_checks_hold_against_the_emulator() {
    let h = Harness::start().await;
    // Challenge-resource verification is on: a vault URL outside *.localhost is refused by the SDK.
    let url = format!("https://127.0.0.1:{}", h.emulator.addr().port());
    let (client, _) = h.client_for(&url, &h.tokens.full, h.http.clone());
    let error = client.get_secret("x", None).await.unwrap_err();
    assert!(error.to_string().contains("challenge resource"), "{error}");

    // TLS verification is on: without the emulator's CA the connection fails.
    let untrusting = Harness::http(&h.emulator, false);
    let (client, _) = h.client_for(&h.emulator.vault_url(VAULT), &h.tokens.full, untrusting);
    let error = client.get_secret("x", None).await.unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::Connection | ErrorKind::Io),
        "{error:?}"
    );
}

#[tokio::test]
async fn control_endpoints_need_the_full_token_and_stalls_delay_answers() {
    let h = Harness::start().await;
    let url = format!("{}/__emulator/requests", h.emulator.vault_url(VAULT));
    let status = |request: reqwest::RequestBuilder| async move { request.send().await.unwrap().status().as_u16() };
    assert_eq!(status(h.http.get(&url)).await, 401);
    assert_eq!(status(h.http.get(&url).bearer_auth(&h.tokens.read_only)).await, 403);
    assert_eq!(status(h.http.get(&url).bearer_auth(&h.tokens.rejected)).await, 401);
    let bad_rule = h
        .http
        .post(format!("{}/__emulator/faults", h.emulator.vault_url(VAULT)))
        .bearer_auth(&h.tokens.full)
        .body(r#"{"status":200}"#);
    assert_eq!(status(bad_rule).await, 400);

    let client = h.full();
    set(&client, "slow", params("v")).await.unwrap();
    h.control(reqwest::Method::POST, "faults", Some(json!({"stall_ms": 300})))
        .await;
    let started = std::time::Instant::now();
    assert_eq!(get_value(&client, "slow").await.unwrap().as_deref(), Some("v"));
    assert!(started.elapsed() >= Duration::from_millis(300));
    let pending = h.control(reqwest::Method::GET, "faults", None).await;
    assert_eq!(pending["faults"], json!([]));
}

#[tokio::test]
async fn faults_match_method_and_path_and_answer_any_code() {
    let h = Harness::start().await;
    let client = h.full();
    set(&client, "guarded", params("v")).await.unwrap();
    set(&client, "other", params("w")).await.unwrap();
    h.control(
        reqwest::Method::POST,
        "faults",
        Some(json!({
            "status": 403, "code": "Forbidden", "inner_code": "ForbiddenByFirewall",
            "message": "Client address is not authorized and caller is not a trusted service.",
            "method": "delete", "path": "/secrets/GUARDED",
        })),
    )
    .await;
    h.control(
        reqwest::Method::POST,
        "faults",
        Some(json!({"status": 409, "path": "/secrets/other*"})),
    )
    .await;
    // Reads of the guarded name and deletes of other names pass the first rule by.
    assert_eq!(get_value(&client, "guarded").await.unwrap().as_deref(), Some("v"));
    let error = client.delete_secret("guarded", None).await.unwrap_err();
    let (status, _, inner, message) = http_error(&error);
    assert_eq!((status, inner.as_deref()), (403, Some("ForbiddenByFirewall")));
    assert!(message.contains("trusted service"), "{message}");
    // A plain 409 `Conflict` for the prefix rule.
    let error = client.get_secret("other", None).await.unwrap_err();
    assert_http_error(&error, 409, "Conflict");
    assert_eq!(http_error(&error).2, None);
    assert_eq!(
        h.control(reqwest::Method::GET, "faults", None).await["faults"],
        json!([])
    );
    // The guarded secret was never deleted.
    assert_eq!(get_value(&client, "guarded").await.unwrap().as_deref(), Some("v"));
}

#[tokio::test]
async fn a_mid_session_challenge_is_answered_by_the_sdk_and_the_retry_served() {
    let h = Harness::start().await;
    let client = h.full();
    set(&client, "session", params("v")).await.unwrap();
    h.clear_requests().await;
    h.control(reqwest::Method::POST, "faults", Some(json!({"challenge": true})))
        .await;
    assert_eq!(get_value(&client, "session").await.unwrap().as_deref(), Some("v"));
    let log: Vec<(String, u16)> = h.requests().await.into_iter().map(|r| (r.method, r.status)).collect();
    assert_eq!(log, [("GET".to_string(), 401), ("GET".to_string(), 200)]);

    // A write challenged mid-session is resent with its body.
    h.control(
        reqwest::Method::POST,
        "faults",
        Some(json!({"challenge": true, "method": "PUT"})),
    )
    .await;
    set(&client, "session", params("after-challenge")).await.unwrap();
    assert_eq!(
        get_value(&client, "session").await.unwrap().as_deref(),
        Some("after-challenge")
    );
}

#[tokio::test]
async fn a_reset_mid_body_serves_the_write_then_cuts_the_answer() {
    let h = Harness::start().await;
    let client = h.full();
    set(&client, "landed", params("one")).await.unwrap();
    h.control(
        reqwest::Method::POST,
        "faults",
        Some(json!({"reset_mid_body": true, "method": "PUT"})),
    )
    .await;
    let error = set(&client, "landed", params("two")).await.unwrap_err();
    assert!(
        !matches!(error.kind(), ErrorKind::HttpResponse { .. }),
        "a transport error, not an answer: {error:?}"
    );
    // The write landed although its answer was lost.
    assert_eq!(get_value(&client, "landed").await.unwrap().as_deref(), Some("two"));

    // On the wire: status and headers arrive, the body is cut short.
    h.control(reqwest::Method::POST, "faults", Some(json!({"reset_mid_body": true})))
        .await;
    let url = format!("{}/secrets/landed?api-version=7.6", h.emulator.vault_url(VAULT));
    let response = h.http.get(url).bearer_auth(&h.tokens.full).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let length = response.content_length().unwrap();
    assert!(response.bytes().await.is_err(), "the body of {length} bytes is cut");
}

#[tokio::test]
async fn hooks_run_another_tools_write_just_before_the_next_request() {
    let h = Harness::start().await;
    let client = h.full();
    set(&client, "contested", params("ours")).await.unwrap();
    let pending = h
        .control(
            reqwest::Method::POST,
            "hooks",
            Some(json!({
                "name": "Contested", "method": "DELETE", "action": "set",
                "value": "theirs", "tags": {"owner": "other-tool"},
            })),
        )
        .await;
    assert_eq!(pending["hooks"][0]["vault"], VAULT);
    // A read does not fire a DELETE hook.
    assert_eq!(get_value(&client, "contested").await.unwrap().as_deref(), Some("ours"));
    // The DELETE deletes what the other tool wrote just before: its answer carries their tags.
    let deleted = client
        .delete_secret("contested", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(deleted.tags.unwrap()["owner"], "other-tool");
    let hooks = h.control(reqwest::Method::GET, "hooks", None).await;
    assert_eq!(hooks["hooks"], json!([]));
    assert_eq!(hooks["fired"][0]["status"], 200);
    assert_eq!(hooks["fired"][0]["action"], "set");

    // A failing hook write is recorded with the service's answer.
    h.control(
        reqwest::Method::POST,
        "hooks",
        Some(json!({"vault": VAULT, "name": "never-there", "action": "delete"})),
    )
    .await;
    let _ = client.get_secret("never-there", None).await;
    let hooks = h.control(reqwest::Method::GET, "hooks", None).await;
    assert_eq!(hooks["fired"][1]["status"], 404);
    h.control(reqwest::Method::DELETE, "hooks", None).await;
    assert_eq!(h.control(reqwest::Method::GET, "hooks", None).await["fired"], json!([]));
}

#[tokio::test]
async fn a_purge_protected_vault_refuses_purge_and_reports_its_recovery_level() {
    let h = Harness::start().await;
    let settings = h
        .control(
            reqwest::Method::POST,
            &format!("vaults/{VAULT}"),
            Some(json!({"purge_protection": true, "recoverable_days": 7, "delete_delay_ms": 0})),
        )
        .await;
    assert_eq!(
        settings,
        json!({
            "vault": VAULT, "purge_protection": true, "recoverable_days": 7,
            "recovery_level": "CustomizedRecoverable", "delete_delay_ms": 0, "recover_delay_ms": 150,
        })
    );
    assert_eq!(
        h.control(reqwest::Method::GET, &format!("vaults/{VAULT}"), None).await,
        settings
    );
    let (status, _) = h
        .control_status(
            reqwest::Method::POST,
            &format!("vaults/{VAULT}"),
            Some(json!({"purge_protection": false})),
        )
        .await;
    assert_eq!(status, 400, "purge protection cannot be turned off");

    let client = h.full();
    set(&client, "kept", params("v")).await.unwrap();
    let secret = client.get_secret("kept", None).await.unwrap().into_model().unwrap();
    let attributes = secret.attributes.unwrap();
    assert_eq!(
        attributes.recovery_level,
        Some(azure_security_keyvault_secrets::models::DeletionRecoveryLevel::CustomizedRecoverable)
    );
    assert_eq!(attributes.recoverable_days, Some(7));
    client.delete_secret("kept", None).await.unwrap();
    let error = client.purge_deleted_secret("kept", None).await.unwrap_err();
    let (status, code, inner, message) = body_error(&error);
    assert_eq!((status, code.as_str(), inner), (403, "Forbidden", None));
    assert!(message.contains("purge protection"), "{message}");
    client.recover_deleted_secret("kept", None).await.unwrap();
    let value = poll("recovered", || get_value(&client, "kept")).await;
    assert_eq!(value.as_deref(), Some("v"));
}

#[tokio::test]
async fn delete_and_recover_delays_are_set_per_vault() {
    let h = Harness::start().await;
    h.control(
        reqwest::Method::POST,
        "vaults/slow-vault",
        Some(json!({"delete_delay_ms": 600_000})),
    )
    .await;
    let (status, _) = h
        .control_status(
            reqwest::Method::POST,
            "vaults/slow-vault",
            Some(json!({"delete_delay_ms": 600_001})),
        )
        .await;
    assert_eq!(status, 400);
    let url = format!("https://slow-vault.localhost:{}", h.emulator.addr().port());
    let http = reqwest::Client::builder()
        .no_proxy()
        .resolve("slow-vault.localhost", h.emulator.addr())
        .tls_certs_only([reqwest::Certificate::from_pem(h.emulator.ca_pem().as_bytes()).unwrap()])
        .build()
        .unwrap();
    let (slow, _) = h.client_for(&url, &h.tokens.full, http);
    set(&slow, "lingers", params("v")).await.unwrap();
    slow.delete_secret("lingers", None).await.unwrap();
    // Ten minutes of "being deleted" in this vault only.
    let error = slow.purge_deleted_secret("lingers", None).await.unwrap_err();
    assert_eq!(http_error(&error).2.as_deref(), Some("ObjectIsBeingDeleted"));
    assert_eq!(
        http_error(&slow.get_deleted_secret("lingers", None).await.unwrap_err()).0,
        404
    );
    let fast = h.full();
    set(&fast, "lingers", params("v")).await.unwrap();
    fast.delete_secret("lingers", None).await.unwrap();
    poll("deleted in the default vault", || {
        fast.get_deleted_secret("lingers", None)
    })
    .await;
}

#[tokio::test]
async fn metadata_reader_and_no_purge_roles() {
    let h = Harness::start().await;
    set(&h.full(), "listed", params("hidden")).await.unwrap();
    let reader = h.client(&h.tokens.metadata_reader);
    assert_eq!(list_all(&reader).await.len(), 1);
    let versions: Vec<_> = reader
        .list_secret_properties_versions("listed", None)
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(versions.len(), 1);
    let error = reader.get_secret("listed", None).await.unwrap_err();
    let (status, _, inner, message) = http_error(&error);
    assert_eq!((status, inner.as_deref()), (403, Some("ForbiddenByRbac")));
    assert!(
        message.contains("Microsoft.KeyVault/vaults/secrets/getSecret/action"),
        "{message}"
    );
    assert_eq!(
        http_error(&set(&reader, "listed", params("x")).await.unwrap_err()).0,
        403
    );

    let officer = h.client(&h.tokens.no_purge);
    set(&officer, "officer", params("v")).await.unwrap();
    assert_eq!(get_value(&officer, "officer").await.unwrap().as_deref(), Some("v"));
    officer.delete_secret("officer", None).await.unwrap();
    poll("deleted", || officer.get_deleted_secret("officer", None)).await;
    let error = officer.purge_deleted_secret("officer", None).await.unwrap_err();
    let (status, _, inner, message) = http_error(&error);
    assert_eq!((status, inner.as_deref()), (403, Some("ForbiddenByRbac")));
    assert!(
        message.contains("Microsoft.KeyVault/vaults/secrets/purge/action"),
        "{message}"
    );
    officer.recover_deleted_secret("officer", None).await.unwrap();
    // Control endpoints stay with the full token.
    let url = format!("{}/__emulator/faults", h.emulator.vault_url(VAULT));
    let status = h
        .http
        .get(url)
        .bearer_auth(&h.tokens.no_purge)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 403);
}

#[tokio::test]
async fn versions_of_a_missing_secret_are_an_empty_list() {
    let h = Harness::start().await;
    let versions: Vec<_> = h
        .full()
        .list_secret_properties_versions("never-set", None)
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(versions.is_empty());
}

#[tokio::test]
async fn an_unknown_api_version_is_a_bad_parameter() {
    let h = Harness::start().await;
    let client = h.client_with_api_version(&h.tokens.full, "7.9");
    let error = client.get_secret("anything", None).await.unwrap_err();
    let (status, code, _, message) = http_error(&error);
    assert_eq!((status, code.as_str()), (400, "BadParameter"));
    assert!(message.contains("(7.9)"), "{message}");
    for known in ["7.6", "2025-07-01", "7.0"] {
        let client = h.client_with_api_version(&h.tokens.full, known);
        assert_http_error(
            &client.get_secret("absent", None).await.unwrap_err(),
            404,
            "SecretNotFound",
        );
    }
}

#[tokio::test]
async fn certificate_backed_secrets_are_managed_and_refuse_set_and_delete() {
    let h = Harness::start().await;
    let created = h
        .control(
            reqwest::Method::POST,
            "managed/tls-cert",
            Some(json!({"vault": VAULT, "value": "MIIC-pfx-base64"})),
        )
        .await;
    assert_eq!(created["managed"], true);
    assert_eq!(created["contentType"], "application/x-pkcs12");
    let client = h.full();
    let secret = client.get_secret("tls-cert", None).await.unwrap().into_model().unwrap();
    assert_eq!(secret.managed, Some(true));
    let version = secret.resource_id().unwrap().version.unwrap();
    let port = h.emulator.addr().port();
    assert_eq!(
        secret.kid.as_deref(),
        Some(format!("https://{VAULT}.localhost:{port}/keys/tls-cert/{version}").as_str())
    );
    let listed = list_all(&client).await;
    assert_eq!(listed[0].managed, Some(true));
    for error in [
        set(&client, "tls-cert", params("mine")).await.unwrap_err(),
        client.delete_secret("tls-cert", None).await.unwrap_err(),
    ] {
        let (status, code, inner, _) = body_error(&error);
        assert_eq!(
            (status, code.as_str(), inner.as_deref()),
            (403, "Forbidden", Some("SecretManagedByKeyVault"))
        );
    }
}
