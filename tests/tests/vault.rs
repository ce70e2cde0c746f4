//! The Vault provider against OpenBao, through `open()`'s full layer stack: the
//! conformance suite (foreign entries planted with raw vaultrs), then what only Vault
//! shows: KV versions, policies, token renewal and AppRole re-login, shutdown, TLS,
//! soft delete, and what an operator sees with the KV API.
#![cfg(feature = "vault")]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nebula_credential::vault::{DeleteMode, HashiCorpVaultProvider, SHUTDOWN_GRACE, VaultAuth, VaultConfig};
use nebula_credential::{
    CredentialFilter, CredentialId, CredentialStore, EncryptionKey, Keyring, StorageConfig, StorageError,
    StorageProvider, Tags, open,
};
use nebula_credential_core::conformance::{CaseResult, Foreign, data, id, meta, tagged};
use nebula_credential_core::layers::BoxFuture;
use nebula_credential_core::secrecy::{ExposeSecret, SecretString};
use nebula_credential_core::{BoxError, Precondition};
use nebula_credential_tests::{emulator_var, unique};
use vaultrs::api::kv2::requests::SetSecretMetadataRequest;
use vaultrs::api::token::requests::CreateTokenRequest;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::kv2;

fn var(name: &str) -> String {
    emulator_var(name, "vault")
}

fn addr() -> String {
    var("NEBULA_TEST_VAULT_ADDR")
}

fn root_token() -> String {
    var("NEBULA_TEST_VAULT_TOKEN")
}

/// A raw vaultrs client with the root token, for checks behind the provider's back.
fn raw() -> VaultClient {
    VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(addr())
            .token(root_token())
            .verify(true)
            .build()
            .expect("settings"),
    )
    .expect("client")
}

fn prefix(ns: &str) -> String {
    format!("nebula-test/{ns}")
}

fn config(ns: &str) -> VaultConfig {
    VaultConfig {
        path_prefix: prefix(ns),
        ..VaultConfig::with_token(addr(), root_token())
    }
}

fn approle(role_var: &str) -> VaultAuth {
    VaultAuth::AppRole {
        role_id: var(&format!("{role_var}_ROLE_ID")),
        secret_id: SecretString::from(var(&format!("{role_var}_SECRET_ID"))),
        mount: "approle".into(),
    }
}

async fn provider(c: VaultConfig) -> Arc<dyn StorageProvider> {
    open(&StorageConfig::Vault(c)).await.expect("open vault")
}

/// Plants a KV entry under our prefix without the marker, through raw vaultrs.
struct VaultForeign;

fn foreign_path(ns: &str, id: &CredentialId) -> String {
    format!("{}/{id}", prefix(ns))
}

fn foreign_value() -> HashMap<String, String> {
    HashMap::from([("value".to_string(), "not ours".to_string())])
}

fn foreign_tags() -> HashMap<String, String> {
    HashMap::from([("owner".to_string(), "other-team".to_string())])
}

impl Foreign for VaultForeign {
    fn plant<'a>(&'a self, ns: &'a str, id: &'a CredentialId) -> BoxFuture<'a, CaseResult> {
        Box::pin(async move {
            let path = foreign_path(ns, id);
            kv2::set(&raw(), "secret", &path, &foreign_value()).await?;
            let mut opts = SetSecretMetadataRequest::builder();
            opts.custom_metadata(foreign_tags());
            kv2::set_metadata(&raw(), "secret", &path, Some(&mut opts)).await?;
            Ok(())
        })
    }

    fn intact<'a>(&'a self, ns: &'a str, id: &'a CredentialId) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async move {
            let path = foreign_path(ns, id);
            let value: HashMap<String, String> = kv2::read(&raw(), "secret", &path).await?;
            let m = kv2::read_metadata(&raw(), "secret", &path).await?;
            Ok(value == foreign_value() && m.current_version == 1 && m.custom_metadata == Some(foreign_tags()))
        })
    }

    fn remove<'a>(&'a self, ns: &'a str, id: &'a CredentialId) -> BoxFuture<'a, CaseResult> {
        Box::pin(async move {
            kv2::delete_metadata(&raw(), "secret", &foreign_path(ns, id)).await?;
            Ok(())
        })
    }
}

nebula_credential_core::conformance_tests!(
    vault_via_open,
    |ns: String| async move { provider(config(&ns)).await },
    foreign = VaultForeign
);

#[test]
fn one_line_selects_vault() {
    let c: StorageConfig = toml::from_str(
        "provider = \"vault\"\naddress = \"https://vault.example.com:8200\"\ndelete_mode = \"soft\"\n\
         [auth]\nmethod = \"approle\"\nrole_id = \"r\"\nsecret_id = \"s3cr3t-id\"\n[retry]\nmax_retries = 2",
    )
    .unwrap();
    assert_eq!(c.provider_name(), "vault");
    assert_eq!(c.retry().max_retries, 2);
    assert!(c.validate().is_ok());
    let StorageConfig::Vault(v) = &c else { panic!("{c:?}") };
    assert_eq!(v.delete_mode, DeleteMode::Soft);
    assert!(!format!("{c:?}").contains("s3cr3t-id"));
    let e = toml::from_str::<StorageConfig>("provider = \"vault\"\naddress = \"http://vault.example.com\"")
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(e.field(), "address");
}

async fn cleanup(p: &dyn StorageProvider) {
    for id in p.list(&CredentialFilter::new()).await.expect("list") {
        p.delete(&id).await.expect("delete");
    }
}

#[tokio::test]
async fn store_twice_retrieves_the_latest_kv_version() {
    let ns = unique("versions");
    let p = provider(config(&ns)).await;
    let k = id("Versioned");
    let first = p.store(&k, &data(1), &meta()).await.unwrap();
    let second = p.store(&k, &data(2), &meta()).await.unwrap();
    // The revision is the KV version and its creation time.
    assert!(
        first.as_str().starts_with("1@") && second.as_str().starts_with("2@"),
        "{first:?} {second:?}"
    );
    let got = p.retrieve(&k).await.unwrap();
    assert_eq!(got.data, data(2));
    assert_eq!(got.revision, second);
    let m = kv2::read_metadata(&raw(), "secret", &format!("{}/Versioned", prefix(&ns)))
        .await
        .unwrap();
    assert_eq!(m.current_version, 2);
    // The older version is still Vault's, readable with its own tools.
    let v1: serde_json::Value = kv2::read_version(&raw(), "secret", &format!("{}/Versioned", prefix(&ns)), 1)
        .await
        .unwrap();
    assert_eq!(v1["id"], "Versioned");
    // A conditional store from the stale version is refused by cas.
    let stale = p.store_if(&k, &data(3), &meta(), &Precondition::Revision(first)).await;
    assert!(matches!(stale, Err(StorageError::Conflict { .. })), "{stale:?}");
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(2));
    cleanup(p.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_operations() {
    let ns = unique("parallel");
    let p = provider(config(&ns)).await;
    let mut tasks = Vec::new();
    for i in 0..50u8 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let k = id(&format!("par_{i:02}"));
            p.store(&k, &data(i), &tagged(&[("batch", "one")])).await?;
            let got = p.retrieve(&k).await?;
            assert_eq!(got.data, data(i));
            assert!(p.exists(&k).await?);
            Ok::<_, StorageError>(())
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("operation");
    }
    let listed = p.list(&CredentialFilter::new().tag("batch", "one")).await.unwrap();
    assert_eq!(listed.len(), 50);
    cleanup(p.as_ref()).await;
}

#[tokio::test]
async fn read_only_token_is_denied_naming_path_and_capability() {
    let ns = unique("policy");
    let admin = provider(config(&ns)).await;
    let k = id("Guarded");
    admin.store(&k, &data(1), &meta()).await.unwrap();
    let ro = provider(VaultConfig {
        auth: VaultAuth::Token {
            token: SecretString::from(var("NEBULA_TEST_VAULT_READONLY_TOKEN")),
        },
        ..config(&ns)
    })
    .await;
    assert_eq!(ro.retrieve(&k).await.unwrap().data, data(1), "read is allowed");
    assert_eq!(ro.list(&CredentialFilter::new()).await.unwrap(), vec![k.clone()]);
    let err = ro.store(&k, &data(2), &meta()).await.unwrap_err();
    assert!(matches!(err, StorageError::PermissionDenied { .. }), "{err:?}");
    let m = err.to_string();
    assert!(
        m.contains(&format!("secret/data/{}/Guarded", prefix(&ns))) && m.contains("`update`"),
        "{m}"
    );
    let err = ro.store(&id("Fresh"), &data(2), &meta()).await.unwrap_err();
    assert!(matches!(err, StorageError::PermissionDenied { .. }), "{err:?}");
    assert!(err.to_string().contains("`create`"), "{err}");
    let err = ro.delete(&k).await.unwrap_err();
    assert!(matches!(err, StorageError::PermissionDenied { .. }), "{err:?}");
    assert!(err.to_string().contains("`delete`"), "{err}");
    assert!(!err.is_retryable());
    cleanup(admin.as_ref()).await;
}

#[tokio::test]
async fn bogus_token_is_authentication_failed_without_leaking_it() {
    let bogus = "s.BOGUSTOKEN0123456789";
    let p = provider(VaultConfig {
        path_prefix: prefix(&unique("bogus")),
        ..VaultConfig::with_token(addr(), bogus)
    })
    .await;
    for err in [
        p.retrieve(&id("x")).await.unwrap_err(),
        p.store(&id("x"), &data(1), &meta()).await.unwrap_err(),
        p.list(&CredentialFilter::new()).await.unwrap_err(),
        p.check().await.unwrap_err(),
    ] {
        assert!(matches!(err, StorageError::AuthenticationFailed { .. }), "{err:?}");
        assert!(!err.is_retryable());
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("BOGUSTOKEN"), "{shown}");
    }
    assert!(!format!("{p:?}").contains("BOGUSTOKEN"));
}

/// A token of the `nebula-test` policy living `ttl`, renewable up to `max`.
async fn short_token(ttl: &str, max: &str) -> String {
    let mut req = CreateTokenRequest::builder();
    req.policies(vec!["nebula-test".to_string()])
        .ttl(ttl)
        .explicit_max_ttl(max)
        .renewable(true);
    vaultrs::token::new(&raw(), Some(&mut req))
        .await
        .expect("token create")
        .client_token
}

fn fast_renewal(c: VaultConfig) -> VaultConfig {
    VaultConfig {
        renewal_check_interval_secs: 1,
        token_renewal_threshold_secs: 3,
        ..c
    }
}

/// Stores and reads `k` every 500 ms for `span`, failing on any error.
async fn keep_working(p: &HashiCorpVaultProvider, span: Duration) {
    let k = id("Lively");
    let start = Instant::now();
    let mut i = 0u8;
    while start.elapsed() < span {
        p.store(&k, &data(i), &meta())
            .await
            .expect("store while the token changes");
        assert_eq!(p.retrieve(&k).await.expect("retrieve").data, data(i));
        i = i.wrapping_add(1);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    p.delete(&k).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_with_a_ttl_of_seconds_is_renewed_and_keeps_working() {
    let token = short_token("5s", "1h").await;
    let p = HashiCorpVaultProvider::new(fast_renewal(VaultConfig {
        auth: VaultAuth::Token {
            token: SecretString::from(token),
        },
        ..config(&unique("renew"))
    }))
    .await
    .unwrap();
    // Four TTLs.
    keep_working(&p, Duration::from_secs(20)).await;
    let stats = p.token_stats();
    assert!(stats.renewals >= 3, "{stats:?}");
    assert_eq!(stats.relogins, 0, "{stats:?}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_cannot_be_renewed_ends_in_authentication_failed() {
    let mut req = CreateTokenRequest::builder();
    req.policies(vec!["nebula-test".to_string()]).ttl("3s").renewable(false);
    let token = vaultrs::token::new(&raw(), Some(&mut req)).await.unwrap().client_token;
    let p = HashiCorpVaultProvider::new(fast_renewal(VaultConfig {
        auth: VaultAuth::Token {
            token: SecretString::from(token),
        },
        ..config(&unique("norenew"))
    }))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stats = p.token_stats();
    assert!(
        stats.failures >= 1 && stats.renewals == 0 && stats.relogins == 0,
        "{stats:?}"
    );
    let err = p.store(&id("Late"), &data(1), &meta()).await.unwrap_err();
    assert!(matches!(err, StorageError::AuthenticationFailed { .. }), "{err:?}");
    assert!(err.to_string().contains("supply a new token"), "{err}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approle_logs_in_again_after_the_max_ttl() {
    // The short role: token_ttl 3 s, token_max_ttl 8 s.
    let p = HashiCorpVaultProvider::new(fast_renewal(VaultConfig {
        auth: approle("NEBULA_TEST_VAULT_SHORT_APPROLE"),
        ..config(&unique("relogin"))
    }))
    .await
    .unwrap();
    keep_working(&p, Duration::from_secs(20)).await;
    let stats = p.token_stats();
    assert!(stats.relogins >= 2, "{stats:?}");
    assert!(stats.renewals >= 1, "{stats:?}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_meeting_an_expired_token_logs_in_once_and_succeeds() {
    // Checks hourly: the first check (at once) logs in again, then nothing renews, so the
    // short role's token (max TTL 8 s) expires under the provider.
    let p = HashiCorpVaultProvider::new(VaultConfig {
        auth: approle("NEBULA_TEST_VAULT_SHORT_APPROLE"),
        renewal_check_interval_secs: 3600,
        token_renewal_threshold_secs: 3601,
        ..config(&unique("expired"))
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = p.token_stats().relogins;
    let k = id("After_Expiry");
    p.store(&k, &data(1), &meta()).await.expect("store after expiry");
    assert_eq!(p.token_stats().relogins, before + 1);
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(1));
    p.delete(&k).await.unwrap();
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_completes_in_bounded_time() {
    let p = HashiCorpVaultProvider::new(VaultConfig {
        auth: approle("NEBULA_TEST_VAULT_APPROLE"),
        ..config(&unique("shutdown"))
    })
    .await
    .unwrap();
    assert!(p.renewal_running());
    let start = Instant::now();
    p.shutdown().await;
    assert!(start.elapsed() < SHUTDOWN_GRACE, "{:?}", start.elapsed());
    assert!(!p.renewal_running());
    p.shutdown().await;
    // Operations keep working with the current token.
    assert!(!p.exists(&id("nothing")).await.unwrap());
}

fn tls_config(ca_cert: Option<String>) -> VaultConfig {
    VaultConfig {
        ca_cert,
        path_prefix: prefix(&unique("tls")),
        ..VaultConfig::with_token(var("NEBULA_TEST_VAULT_TLS_ADDR"), root_token())
    }
}

/// Also run by `vault_skip_verify_changes_nothing` in a child process with
/// `VAULT_SKIP_VERIFY=1` and `VAULT_CACERT` set.
#[tokio::test]
async fn tls_without_the_ca_is_refused() {
    let p = provider(tls_config(None)).await;
    let err = p.check().await.unwrap_err();
    assert!(matches!(err, StorageError::Backend { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("ca_cert"), "{err}");
    let err = p.store(&id("x"), &data(1), &meta()).await.unwrap_err();
    assert!(err.to_string().contains("ca_cert"), "{err}");
}

#[tokio::test]
async fn tls_with_the_ca_is_accepted_from_a_path_or_inline() {
    let ca_path = var("NEBULA_TEST_VAULT_TLS_CA");
    let inline = std::fs::read_to_string(&ca_path).unwrap();
    for ca in [ca_path, inline] {
        let p = provider(tls_config(Some(ca))).await;
        p.check().await.expect("trusted through ca_cert");
        let k = id("Over_Tls");
        p.store(&k, &data(4), &meta()).await.unwrap();
        assert_eq!(p.retrieve(&k).await.unwrap().data, data(4));
        cleanup(p.as_ref()).await;
    }
}

#[test]
fn vault_skip_verify_changes_nothing() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", "tls_without_the_ca_is_refused", "--nocapture"])
        .env("VAULT_SKIP_VERIFY", "1")
        .env("VAULT_CACERT", var("NEBULA_TEST_VAULT_TLS_CA"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn folders_under_the_prefix_are_skipped_by_list() {
    let ns = unique("folders");
    let p = provider(config(&ns)).await;
    p.store(&id("Top"), &data(1), &meta()).await.unwrap();
    let nested = format!("{}/sub/Inner", prefix(&ns));
    kv2::set(&raw(), "secret", &nested, &foreign_value()).await.unwrap();
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap(), vec![id("Top")]);
    kv2::delete_metadata(&raw(), "secret", &nested).await.unwrap();
    cleanup(p.as_ref()).await;
}

#[tokio::test]
async fn soft_delete_keeps_the_version_for_vaults_own_tools() {
    let ns = unique("soft");
    let p = provider(VaultConfig {
        delete_mode: DeleteMode::Soft,
        ..config(&ns)
    })
    .await;
    assert!(p.capabilities().soft_delete);
    let k = id("Soft_One");
    let path = format!("{}/Soft_One", prefix(&ns));
    p.store(&k, &data(1), &meta()).await.unwrap();
    p.delete(&k).await.unwrap();
    p.delete(&k).await.unwrap();
    assert!(matches!(p.retrieve(&k).await, Err(StorageError::NotFound { .. })));
    assert!(!p.exists(&k).await.unwrap());
    assert!(p.list(&CredentialFilter::new()).await.unwrap().is_empty());
    let m = kv2::read_metadata(&raw(), "secret", &path).await.unwrap();
    assert!(!m.versions["1"].deletion_time.is_empty());
    // `vault kv undelete -versions=1` brings it back.
    kv2::undelete_versions(&raw(), "secret", &path, vec![1]).await.unwrap();
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(1));
    p.delete(&k).await.unwrap();
    let rev = p.store_if(&k, &data(2), &meta(), &Precondition::Absent).await.unwrap();
    assert!(rev.as_str().starts_with("2@"), "{rev:?}");
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(2));
    kv2::delete_metadata(&raw(), "secret", &path).await.unwrap();
}

#[tokio::test]
async fn operators_see_marker_and_tags_in_metadata_never_plaintext() {
    let ns = unique("interop");
    let p = provider(config(&ns)).await;
    let store = CredentialStore::new(p.clone(), Keyring::new(EncryptionKey::generate()));
    let k = id("Db_Password");
    let secret = b"hunter2-plaintext-value";
    store
        .put(&k, secret, Tags::from([("env".to_string(), "prod".to_string())]))
        .await
        .unwrap();
    let path = format!("{}/Db_Password", prefix(&ns));
    // What `bao kv metadata get secret/<prefix>/Db_Password` shows.
    let m = kv2::read_metadata(&raw(), "secret", &path).await.unwrap();
    let custom = m.custom_metadata.clone().unwrap();
    assert_eq!(custom["nebula-credential:managed"], "true");
    assert_eq!(custom["env"], "prod");
    // Another tool's key survives our overwrite.
    let mut with_owner = custom.clone();
    with_owner.insert("owner".into(), "platform".into());
    let mut opts = SetSecretMetadataRequest::builder();
    opts.custom_metadata(with_owner);
    kv2::set_metadata(&raw(), "secret", &path, Some(&mut opts))
        .await
        .unwrap();
    store
        .put(&k, secret, Tags::from([("env".to_string(), "staging".to_string())]))
        .await
        .unwrap();
    let custom = kv2::read_metadata(&raw(), "secret", &path)
        .await
        .unwrap()
        .custom_metadata
        .unwrap();
    assert_eq!(custom["owner"], "platform");
    assert_eq!(custom["env"], "staging");
    // What `bao kv get secret/<prefix>/Db_Password` shows: the record, encrypted.
    let value: serde_json::Value = kv2::read(&raw(), "secret", &path).await.unwrap();
    assert_eq!(value["id"], "Db_Password");
    assert_eq!(value["format_version"], 1);
    assert!(value["encrypted_data"]["ciphertext"].is_string());
    let text = value.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert_eq!(store.get(&k).await.unwrap().expose_secret(), secret);
    cleanup(p.as_ref()).await;
}

#[tokio::test]
async fn key_rotation_rewrites_every_credential_with_cas() {
    let ns = unique("rotate");
    let p = provider(config(&ns)).await;
    let store = CredentialStore::new(p.clone(), Keyring::new(EncryptionKey::generate()));
    for i in 0..5 {
        store
            .put(&id(&format!("rot_{i}")), format!("value-{i}").as_bytes(), Tags::new())
            .await
            .unwrap();
    }
    store.add_current_key(EncryptionKey::generate());
    let report = store.rotate_keys().await.unwrap();
    assert_eq!((report.re_encrypted, report.failed.len()), (5, 0), "{report:?}");
    for i in 0..5 {
        let k = id(&format!("rot_{i}"));
        assert_eq!(
            store.get(&k).await.unwrap().expose_secret(),
            format!("value-{i}").as_bytes()
        );
        let revision = p.retrieve(&k).await.unwrap().revision;
        assert!(revision.as_str().starts_with("2@"), "one cas write each: {revision:?}");
    }
    assert_eq!(store.rotate_keys().await.unwrap().already_current, 5);
    cleanup(p.as_ref()).await;
}

/// Runs `bao <command> -format=json <path>` (`NEBULA_TEST_VAULT_CLI`) against the
/// emulator as root.
fn bao_json(command: &[&str], path: &str) -> serde_json::Value {
    let out = std::process::Command::new(var("NEBULA_TEST_VAULT_CLI"))
        .args(command)
        .arg("-format=json")
        .arg(path)
        .env("BAO_ADDR", addr())
        .env("BAO_TOKEN", root_token())
        .output()
        .expect("run bao");
    assert!(
        out.status.success(),
        "bao {command:?} {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("bao prints JSON")
}

#[tokio::test]
async fn the_bao_cli_shows_marker_and_tags_never_plaintext() {
    let ns = unique("cli");
    let p = provider(config(&ns)).await;
    let store = CredentialStore::new(p.clone(), Keyring::new(EncryptionKey::generate()));
    let k = id("Api_Token");
    store
        .put(
            &k,
            b"cli-plaintext-secret",
            Tags::from([("team".to_string(), "payments".to_string())]),
        )
        .await
        .unwrap();
    let path = format!("secret/{}/Api_Token", prefix(&ns));
    let meta = bao_json(&["kv", "metadata", "get"], &path);
    let custom = &meta["data"]["custom_metadata"];
    assert_eq!(custom["nebula-credential:managed"], "true", "{meta}");
    assert_eq!(custom["team"], "payments", "{meta}");
    assert_eq!(meta["data"]["current_version"], 1, "{meta}");
    let got = bao_json(&["kv", "get"], &path);
    let record = &got["data"]["data"];
    assert_eq!(record["id"], "Api_Token", "{got}");
    assert!(record["encrypted_data"]["ciphertext"].is_string(), "{got}");
    assert!(!got.to_string().contains("cli-plaintext-secret"), "{got}");
    cleanup(p.as_ref()).await;
}

#[tokio::test]
async fn a_record_over_max_payload_bytes_is_refused_before_any_request() {
    let p = provider(VaultConfig {
        max_payload_bytes: 4096,
        ..config(&unique("size"))
    })
    .await;
    assert_eq!(p.capabilities().max_payload_bytes, 4096);
    let big = nebula_credential_core::conformance::bytes(vec![0; 8192]);
    let err = p.store(&id("Big"), &big, &meta()).await.unwrap_err();
    assert!(matches!(err, StorageError::TooLarge { limit: 4096, .. }), "{err:?}");
}

/// Collects log lines in memory.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether `text` holds something shaped like a Vault/OpenBao token (`s.…`, `hvs.…`).
fn has_token_shape(text: &str) -> bool {
    text.match_indices("s.")
        .any(|(i, _)| text[i + 2..].chars().take_while(|c| c.is_ascii_alphanumeric()).count() >= 20)
}

/// Every log line of this test binary from the moment it is first called, at TRACE level
/// (a global subscriber: a scoped one misses events whose callsites other test threads
/// registered first).
fn captured_logs() -> &'static Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        captured
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_renewals_logins_and_rejections_never_contain_a_token() {
    let captured = captured_logs();
    let bogus = "s.BOGUSTOKEN0123456789abcdef";
    let rejected = HashiCorpVaultProvider::new(fast_renewal(VaultConfig::with_token(addr(), bogus)))
        .await
        .unwrap();
    let secret_id = var("NEBULA_TEST_VAULT_SHORT_APPROLE_SECRET_ID");
    let renewing = HashiCorpVaultProvider::new(fast_renewal(VaultConfig {
        auth: approle("NEBULA_TEST_VAULT_SHORT_APPROLE"),
        ..config(&unique("logs"))
    }))
    .await
    .unwrap();
    keep_working(&renewing, Duration::from_secs(10)).await;
    assert!(renewing.token_stats().relogins >= 1, "{:?}", renewing.token_stats());
    assert!(rejected.token_stats().failures >= 1, "{:?}", rejected.token_stats());
    rejected.shutdown().await;
    renewing.shutdown().await;
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("the Vault token was rejected"), "{text}");
    assert!(text.contains("logged in to Vault again"), "{text}");
    for secret in [bogus, secret_id.as_str(), root_token().as_str()] {
        assert!(!text.contains(secret), "a secret reached the logs");
    }
    assert!(!has_token_shape(&text), "a token reached the logs:\n{text}");
}

/// A store racing a delete of the same id (destroy mode) never leaves an entry without
/// our marker behind: afterwards the id is either absent or readable, and storing again
/// works — never a `Conflict` over our own entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_racing_a_delete_never_orphans_the_entry() {
    let ns = unique("store-delete-race");
    let p = provider(config(&ns)).await;
    let k = id("Raced");
    // The same metadata every time: an overwrite then changes no tag.
    let m = meta();
    for round in 0..40u8 {
        let value = data(round);
        p.store(&k, &value, &m).await.expect("store before the race");
        let (stored, deleted) = tokio::join!(p.store(&k, &value, &m), p.delete(&k));
        stored.expect("racing store");
        deleted.expect("racing delete");
        match p.retrieve(&k).await {
            Ok(got) => assert_eq!(got.data, data(round)),
            Err(StorageError::NotFound { .. }) => {}
            Err(e) => panic!("round {round}: our own entry became unusable: {e}"),
        }
        let m2 = kv2::read_metadata(&raw(), "secret", &format!("{}/Raced", prefix(&ns))).await;
        if let Ok(m2) = m2 {
            assert_eq!(
                m2.custom_metadata
                    .unwrap_or_default()
                    .get("nebula-credential:managed")
                    .map(String::as_str),
                Some("true"),
                "round {round}: an entry without our marker was left behind"
            );
        }
    }
    cleanup(p.as_ref()).await;
}

/// An operator who requires check-and-set on an entry (`bao kv metadata put
/// -cas-required`) and keeps fewer versions still gets overwrites, and both settings and
/// the custom metadata other tools added survive them.
#[tokio::test]
async fn overwrites_work_where_an_operator_requires_cas_and_keep_their_settings() {
    let ns = unique("cas-required");
    let p = provider(config(&ns)).await;
    let k = id("Guarded");
    let path = format!("{}/Guarded", prefix(&ns));
    p.store(&k, &data(1), &tagged(&[("env", "prod")])).await.unwrap();
    let mut custom: HashMap<String, String> = kv2::read_metadata(&raw(), "secret", &path)
        .await
        .unwrap()
        .custom_metadata
        .unwrap_or_default();
    custom.insert("owner".into(), "ops".into());
    let mut settings = SetSecretMetadataRequest::builder();
    settings.cas_required(true).max_versions(3u64).custom_metadata(custom);
    kv2::set_metadata(&raw(), "secret", &path, Some(&mut settings))
        .await
        .unwrap();
    for round in 2..=5u8 {
        p.store(&k, &data(round), &tagged(&[("env", "staging")])).await.unwrap();
    }
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(5));
    let m = kv2::read_metadata(&raw(), "secret", &path).await.unwrap();
    assert!(m.cas_required, "{m:?}");
    assert_eq!(m.max_versions, 3);
    let custom = m.custom_metadata.unwrap_or_default();
    assert_eq!(custom.get("owner").map(String::as_str), Some("ops"));
    assert_eq!(custom.get("env").map(String::as_str), Some("staging"));
    cleanup(p.as_ref()).await;
}

/// A revision read before a delete (destroy) and a re-create is stale, although KV
/// versions restart at 1 and the new entry's version equals the old one.
#[tokio::test]
async fn a_revision_from_before_a_delete_and_recreate_is_stale() {
    let ns = unique("aba");
    let p = provider(config(&ns)).await;
    let k = id("Recreated");
    let before = p.store(&k, &data(1), &meta()).await.unwrap();
    p.delete(&k).await.unwrap();
    let after = p.store(&k, &data(2), &meta()).await.unwrap();
    let m = kv2::read_metadata(&raw(), "secret", &format!("{}/Recreated", prefix(&ns)))
        .await
        .unwrap();
    assert_eq!(m.current_version, 1, "the version restarted");
    assert_ne!(before, after);
    let stale = p.store_if(&k, &data(3), &meta(), &Precondition::Revision(before)).await;
    assert!(matches!(stale, Err(StorageError::Conflict { .. })), "{stale:?}");
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(2));
    let fresh = p.retrieve(&k).await.unwrap().revision;
    assert_eq!(fresh, after);
    p.store_if(&k, &data(3), &meta(), &Precondition::Revision(fresh))
        .await
        .unwrap();
    cleanup(p.as_ref()).await;
}

/// A store to a mount that does not exist says so (naming `mount_path`), instead of
/// reporting the credential it was asked to create as not found.
#[tokio::test]
async fn a_store_to_a_missing_mount_names_the_mount() {
    let p = provider(VaultConfig {
        mount_path: "no-such-mount".into(),
        ..config(&unique("no-mount"))
    })
    .await;
    let e = p.store(&id("k"), &data(1), &meta()).await.unwrap_err();
    assert!(!matches!(e, StorageError::NotFound { .. }), "{e:?}");
    assert!(!e.is_retryable(), "{e:?}");
    let m = e.to_string();
    assert!(m.contains("no-such-mount") && m.contains("mount_path"), "{m}");
}

/// An entry of ours copied, value and `custom_metadata` (marker included), to the key of
/// another id is not that credential: never listed, read, overwritten or deleted.
#[tokio::test]
async fn a_copy_of_our_entry_under_another_id_is_left_alone() {
    let ns = unique("copy");
    let p = provider(config(&ns)).await;
    p.store(&id("Orig"), &data(1), &tagged(&[("env", "prod")]))
        .await
        .unwrap();
    let orig = format!("{}/Orig", prefix(&ns));
    let copy = format!("{}/Copy", prefix(&ns));
    let value: serde_json::Value = kv2::read(&raw(), "secret", &orig).await.unwrap();
    let custom = kv2::read_metadata(&raw(), "secret", &orig)
        .await
        .unwrap()
        .custom_metadata
        .unwrap();
    kv2::set(&raw(), "secret", &copy, &value).await.unwrap();
    let mut req = SetSecretMetadataRequest::builder();
    req.custom_metadata(custom);
    kv2::set_metadata(&raw(), "secret", &copy, Some(&mut req))
        .await
        .unwrap();
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap(), vec![id("Orig")]);
    let k = id("Copy");
    for (op, outcome) in [
        ("exists", p.exists(&k).await.map(drop)),
        ("retrieve", p.retrieve(&k).await.map(drop)),
        ("store", p.store(&k, &data(2), &meta()).await.map(drop)),
        ("delete", p.delete(&k).await),
    ] {
        let err = outcome.expect_err(op);
        assert!(err.is_conflict(), "{op}: {err}");
        assert!(err.to_string().contains("Orig"), "{op}: {err}");
    }
    let still: serde_json::Value = kv2::read(&raw(), "secret", &copy).await.unwrap();
    assert_eq!(still, value);
    kv2::delete_metadata(&raw(), "secret", &copy).await.unwrap();
    cleanup(p.as_ref()).await;
}
