//! The Vault provider against OpenBao, through `open()`'s full layer stack: the
//! conformance suite (foreign entries planted with raw vaultrs, the read-only and bogus
//! tokens, the TLS listener without its CA), then what only Vault shows: KV versions,
//! policies, token renewal and AppRole re-login, shutdown, TLS, soft delete, and what an
//! operator sees with the KV API.
#![cfg(feature = "vault")]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nebula_credential::vault::{DeleteMode, SHUTDOWN_GRACE, VaultAuth, VaultConfig, VaultProvider};
use nebula_credential::{
    CredentialFilter, CredentialStore, EncryptionKey, Keyring, StorageConfig, StorageError, StorageProvider, Tags,
};
use nebula_credential_core::Precondition;
use nebula_credential_core::conformance::{data, id, meta, tagged};
use nebula_credential_core::secrecy::{ExposeSecret, SecretString};
use nebula_credential_tests::vault::{
    self, addr, approle, config, entry_path as foreign_path, foreign_value, prefix, provider, raw, root_token,
    tls_config, var,
};
use nebula_credential_tests::{captured_logs, cleanup, unique};
use vaultrs::api::kv2::requests::SetSecretMetadataRequest;
use vaultrs::api::token::requests::CreateTokenRequest;
use vaultrs::kv2;

nebula_credential_core::conformance_tests!(
    vault_via_open,
    |ns: String| async move { provider(config(&ns)).await },
    foreign = vault::Foreign,
    read_only = vault::ReadOnly,
    rejected = vault::Rejected,
    untrusted_ca = vault::UntrustedCa,
    other_tools = absent(vault::OTHER_TOOLS_ABSENT),
);

#[test]
fn one_line_selects_vault() {
    let c: StorageConfig = toml::from_str(
        "provider = \"vault\"\nendpoint = \"https://vault.example.com:8200\"\ndelete_mode = \"soft\"\n\
         [auth]\nmethod = \"approle\"\nrole_id = \"r\"\nsecret_id = \"s3cr3t-id\"\n[retry]\nmax_retries = 2",
    )
    .unwrap();
    assert_eq!(c.provider_name(), "vault");
    assert_eq!(c.retry().max_retries, 2);
    assert!(c.validate().is_ok());
    let nebula_credential::BackendConfig::Vault(v) = &c.backend else {
        panic!("{c:?}")
    };
    assert_eq!(v.delete_mode, DeleteMode::Soft);
    assert!(!format!("{c:?}").contains("s3cr3t-id"));
    let e = toml::from_str::<StorageConfig>("provider = \"vault\"\nendpoint = \"http://vault.example.com\"")
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(e.field(), "endpoint");
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
async fn keep_working(p: &VaultProvider, span: Duration) {
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
    let p = VaultProvider::new(fast_renewal(VaultConfig {
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
    let p = VaultProvider::new(fast_renewal(VaultConfig {
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
    let p = VaultProvider::new(fast_renewal(VaultConfig {
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
    let p = VaultProvider::new(VaultConfig {
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
    let p = VaultProvider::new(VaultConfig {
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
        .args([
            "--exact",
            "vault_via_open::untrusted_ca_is_refused_and_not_retried",
            "--nocapture",
        ])
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
    store.add_current_key(EncryptionKey::generate()).unwrap();
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

/// Whether `text` holds something shaped like a Vault/OpenBao token (`s.…`, `hvs.…`).
fn has_token_shape(text: &str) -> bool {
    text.match_indices("s.")
        .any(|(i, _)| text[i + 2..].chars().take_while(|c| c.is_ascii_alphanumeric()).count() >= 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_renewals_logins_and_rejections_never_contain_a_token() {
    let captured = captured_logs();
    let bogus = "s.BOGUSTOKEN0123456789abcdef";
    let rejected = VaultProvider::new(fast_renewal(VaultConfig::with_token(addr(), bogus)))
        .await
        .unwrap();
    let secret_id = var("NEBULA_TEST_VAULT_SHORT_APPROLE_SECRET_ID");
    let renewing = VaultProvider::new(fast_renewal(VaultConfig {
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
    let text = captured.text();
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

// ---- issue 19: the promises at Vault's edges ----

/// Runs the bao CLI (`NEBULA_TEST_VAULT_CLI`) as root; panics with its stderr on failure.
fn bao(args: &[&str]) -> String {
    let out = std::process::Command::new(var("NEBULA_TEST_VAULT_CLI"))
        .args(args)
        .env("BAO_ADDR", addr())
        .env("BAO_TOKEN", root_token())
        .output()
        .expect("run bao");
    assert!(
        out.status.success(),
        "bao {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The checks of item 1 on `k`, whose versions carry a future `deletion_time`
/// (`delete_version_after`) at `mount`/`path`.
async fn live_under_delete_version_after(c: VaultConfig, mount: &str, path: &str) {
    let p = provider(c.clone()).await;
    let soft = provider(VaultConfig {
        delete_mode: DeleteMode::Soft,
        ..c
    })
    .await;
    let k = id(path.rsplit('/').next().unwrap());
    for round in 2..=4u8 {
        p.store(&k, &data(round), &tagged(&[("env", "prod")]))
            .await
            .expect("put over a version with a future deletion_time");
    }
    let m = kv2::read_metadata(&raw(), mount, path).await.unwrap();
    let current = &m.versions[&m.current_version.to_string()];
    assert!(!current.deletion_time.is_empty(), "the setting is active: {m:?}");
    assert!(p.exists(&k).await.unwrap());
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(4));
    assert_eq!(
        p.list(&CredentialFilter::new().tag("env", "prod")).await.unwrap(),
        vec![k.clone()]
    );
    let absent = p.store_if(&k, &data(9), &meta(), &Precondition::Absent).await;
    assert!(matches!(absent, Err(StorageError::Conflict { .. })), "{absent:?}");
    assert_eq!(
        p.retrieve(&k).await.unwrap().data,
        data(4),
        "store_if(Absent) wrote over a live entry"
    );
    soft.delete(&k).await.unwrap();
    assert!(!p.exists(&k).await.unwrap());
    assert!(matches!(p.retrieve(&k).await, Err(StorageError::NotFound { .. })));
    assert!(p.list(&CredentialFilter::new()).await.unwrap().is_empty());
    p.store_if(&k, &data(5), &meta(), &Precondition::Absent)
        .await
        .expect("a soft-deleted entry is absent");
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(5));
    kv2::delete_metadata(&raw(), mount, path).await.unwrap();
}

/// Item 1: with a mount-level `delete_version_after`, every version carries a future
/// `deletion_time` and stays readable: the entry is live.
#[tokio::test]
async fn a_mount_level_delete_version_after_keeps_entries_live() {
    let mount = unique("kv-dva").replace('-', "_");
    bao(&["secrets", "enable", &format!("-path={mount}"), "-version=2", "kv"]);
    bao(&["write", &format!("{mount}/config"), "delete_version_after=1h"]);
    let ns = unique("dva-mount");
    let c = VaultConfig {
        mount_path: mount.clone(),
        ..config(&ns)
    };
    live_under_delete_version_after(c, &mount, &format!("{}/Expiring", prefix(&ns))).await;
    bao(&["secrets", "disable", &mount]);
}

/// Item 1: the same with a per-key `delete_version_after` (`kv metadata put`).
#[tokio::test]
async fn a_per_key_delete_version_after_keeps_entries_live() {
    let ns = unique("dva-key");
    let p = provider(config(&ns)).await;
    let path = format!("{}/Expiring", prefix(&ns));
    p.store(&id("Expiring"), &data(1), &meta()).await.unwrap();
    bao(&[
        "kv",
        "metadata",
        "put",
        "-delete-version-after=1h",
        &format!("secret/{path}"),
    ]);
    live_under_delete_version_after(config(&ns), "secret", &path).await;
}

/// Item 7: a conditional store retried after its answer was lost (it had landed)
/// succeeds with the revision it wrote, instead of conflicting with itself.
#[tokio::test]
async fn a_retried_conditional_store_that_landed_is_not_a_conflict() {
    let ns = unique("landed");
    let p = VaultProvider::new(config(&ns)).await.unwrap();
    let k = id("Retried");
    let m = tagged(&[("env", "prod")]);
    let first = p.store_if(&k, &data(1), &m, &Precondition::Absent).await.unwrap();
    let again = p.store_if(&k, &data(1), &m, &Precondition::Absent).await;
    assert_eq!(again.unwrap(), first, "the retry of a landed create");
    let second = p
        .store_if(&k, &data(2), &m, &Precondition::Revision(first.clone()))
        .await
        .unwrap();
    let again = p
        .store_if(&k, &data(2), &m, &Precondition::Revision(first.clone()))
        .await;
    assert_eq!(again.unwrap(), second, "the retry of a landed update");
    // Another value is a real conflict.
    let other = p.store_if(&k, &data(3), &m, &Precondition::Revision(first)).await;
    assert!(matches!(other, Err(StorageError::Conflict { .. })), "{other:?}");
    let other = p.store_if(&k, &data(3), &m, &Precondition::Absent).await;
    assert!(matches!(other, Err(StorageError::Conflict { .. })), "{other:?}");
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(2));
    cleanup(&p).await;
    p.shutdown().await;
}

fn custom_of(m: &vaultrs::api::kv2::responses::ReadSecretMetadataResponse) -> HashMap<String, String> {
    m.custom_metadata.clone().unwrap_or_default()
}

/// Item 2: tags left from an older version (the tag request of the latest store was
/// lost) are detected by their revision: `list` filters on the record and repairs them.
#[tokio::test]
async fn stale_tags_are_detected_by_revision_and_repaired() {
    let ns = unique("stale-tags");
    let p = provider(config(&ns)).await;
    let k = id("Drifted");
    let path = format!("{}/Drifted", prefix(&ns));
    p.store(&k, &data(1), &tagged(&[("env", "prod")])).await.unwrap();
    let old = custom_of(&kv2::read_metadata(&raw(), "secret", &path).await.unwrap());
    let latest = p.store(&k, &data(2), &tagged(&[("env", "staging")])).await.unwrap();
    // As if the second store's tag request had been lost.
    let mut req = SetSecretMetadataRequest::builder();
    req.custom_metadata(old.clone());
    kv2::set_metadata(&raw(), "secret", &path, Some(&mut req))
        .await
        .unwrap();
    assert_eq!(old["env"], "prod");
    assert!(
        p.list(&CredentialFilter::new().tag("env", "prod"))
            .await
            .unwrap()
            .is_empty(),
        "stale tags were trusted"
    );
    assert_eq!(
        p.list(&CredentialFilter::new().tag("env", "staging")).await.unwrap(),
        vec![k.clone()]
    );
    let repaired = custom_of(&kv2::read_metadata(&raw(), "secret", &path).await.unwrap());
    assert_eq!(repaired["env"], "staging");
    assert_eq!(repaired["nebula-credential:revision"], latest.as_str());
    cleanup(p.as_ref()).await;
}

/// Item 2: a token that may create metadata but not update it: the value lands, the store
/// reports it (the tags are repaired by readers), and the log names `update`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_without_update_on_metadata_still_reports_the_landed_value() {
    let captured = captured_logs();
    let ns = unique("no-meta-update");
    let pfx = prefix(&ns);
    let policy = format!("create-no-update-{}", ns.replace('/', "-"));
    vaultrs::sys::policy::set(
        &raw(),
        &policy,
        &format!(
            "path \"secret/data/{pfx}/*\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\"] }}\n\
             path \"secret/metadata/{pfx}/*\" {{ capabilities = [\"create\", \"read\", \"delete\", \"list\"] }}\n\
             path \"secret/metadata/{pfx}\" {{ capabilities = [\"list\"] }}\n"
        ),
    )
    .await
    .unwrap();
    let mut req = CreateTokenRequest::builder();
    req.policies(vec![policy.clone()]).ttl("1h");
    let token = vaultrs::token::new(&raw(), Some(&mut req)).await.unwrap().client_token;
    let p = provider(VaultConfig {
        auth: VaultAuth::Token {
            token: SecretString::from(token),
        },
        ..config(&ns)
    })
    .await;
    let k = id("Created_Once");
    let revision = p
        .store(&k, &data(1), &tagged(&[("env", "prod")]))
        .await
        .expect("the value landed: not a failure");
    let got = p.retrieve(&k).await.unwrap();
    assert_eq!((got.data, got.revision), (data(1), revision));
    assert_eq!(
        p.list(&CredentialFilter::new().tag("env", "prod")).await.unwrap(),
        vec![k.clone()]
    );
    let text = captured.text();
    let line = text
        .lines()
        .find(|l| l.contains("Created_Once") && l.contains("tags"))
        .unwrap_or_else(|| panic!("no warning about the tags:\n{text}"));
    assert!(
        line.contains("`update`") && line.contains(&format!("secret/metadata/{pfx}/Created_Once")),
        "{line}"
    );
    kv2::delete_metadata(&raw(), "secret", &format!("{pfx}/Created_Once"))
        .await
        .unwrap();
}

/// Item 2: two creates racing (`store_if(Absent)`): the loser's tags never end up
/// describing the winner's value, neither in `list` nor (after it) in `custom_metadata`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_losing_concurrent_create_leaves_no_tags_on_the_winner() {
    let ns = unique("create-race");
    let a = provider(config(&ns)).await;
    let b = provider(config(&ns)).await;
    let k = id("Contested");
    let path = format!("{}/Contested", prefix(&ns));
    let (side_a, side_b) = (tagged(&[("side", "a")]), tagged(&[("side", "b")]));
    for round in 0..30u8 {
        let value = data(round);
        let (ra, rb) = tokio::join!(
            a.store_if(&k, &value, &side_a, &Precondition::Absent),
            b.store_if(&k, &value, &side_b, &Precondition::Absent),
        );
        let winner = match (&ra, &rb) {
            (Ok(_), Err(e)) if e.is_conflict() => "a",
            (Err(e), Ok(_)) if e.is_conflict() => "b",
            _ => panic!("round {round}: {ra:?} {rb:?}"),
        };
        let loser = if winner == "a" { "b" } else { "a" };
        let got = a.retrieve(&k).await.unwrap();
        assert_eq!(got.metadata.tags["side"], winner, "round {round}");
        assert!(
            a.list(&CredentialFilter::new().tag("side", loser))
                .await
                .unwrap()
                .is_empty(),
            "round {round}: the loser's tags describe the winner"
        );
        assert_eq!(
            a.list(&CredentialFilter::new().tag("side", winner)).await.unwrap(),
            vec![k.clone()],
            "round {round}"
        );
        let custom = custom_of(&kv2::read_metadata(&raw(), "secret", &path).await.unwrap());
        assert_eq!(
            custom.get("side").map(String::as_str),
            Some(winner),
            "round {round}: {custom:?}"
        );
        a.delete(&k).await.unwrap();
    }
}

/// Item 3: a missing mount, a KV v1 mount and a path inside a mount fail `check()` and
/// every operation with a `Config` error naming `mount_path`; nothing is written.
#[tokio::test]
async fn check_confirms_a_kv_v2_mount() {
    let ns = unique("mounts");
    let missing = provider(VaultConfig {
        mount_path: "no-such-mount".into(),
        ..config(&ns)
    })
    .await;
    for (op, err) in [
        ("check", missing.check().await.unwrap_err()),
        ("retrieve", missing.retrieve(&id("k")).await.unwrap_err()),
        ("exists", missing.exists(&id("k")).await.unwrap_err()),
        ("list", missing.list(&CredentialFilter::new()).await.unwrap_err()),
    ] {
        assert!(
            matches!(&err, StorageError::Config(c) if c.field() == "mount_path"),
            "{op}: {err:?}"
        );
        assert!(err.to_string().contains("no-such-mount"), "{op}: {err}");
    }
    let v1 = unique("kv-v1").replace('-', "_");
    bao(&["secrets", "enable", &format!("-path={v1}"), "-version=1", "kv"]);
    let on_v1 = provider(VaultConfig {
        mount_path: v1.clone(),
        ..config(&ns)
    })
    .await;
    for (op, err) in [
        ("check", on_v1.check().await.unwrap_err()),
        ("store", on_v1.store(&id("k"), &data(1), &meta()).await.unwrap_err()),
        ("retrieve", on_v1.retrieve(&id("k")).await.unwrap_err()),
    ] {
        assert!(
            matches!(&err, StorageError::Config(c) if c.field() == "mount_path"),
            "{op}: {err:?}"
        );
        assert!(err.to_string().contains("version 1"), "{op}: {err}");
    }
    // `bao list` of an empty mount fails (404): nothing was written.
    let junk = std::process::Command::new(var("NEBULA_TEST_VAULT_CLI"))
        .args(["list", "-format=json", &v1])
        .env("BAO_ADDR", addr())
        .env("BAO_TOKEN", root_token())
        .output()
        .unwrap();
    assert!(
        !junk.status.success(),
        "a store on KV v1 left junk: {}",
        String::from_utf8_lossy(&junk.stdout)
    );
    bao(&["secrets", "disable", &v1]);
    let inside = provider(VaultConfig {
        mount_path: "secret/nebula-test".into(),
        ..config(&ns)
    })
    .await;
    let err = inside.check().await.unwrap_err();
    assert!(
        matches!(&err, StorageError::Config(c) if c.field() == "mount_path"),
        "{err:?}"
    );
    provider(config(&ns)).await.check().await.expect("secret/ is KV v2");
}

/// Item 3: a namespace that does not exist fails `check()` and operations with a
/// `Config` error naming `namespace`; an existing one works.
#[tokio::test]
async fn check_names_a_missing_namespace() {
    let ns = unique("namespaces");
    let p = provider(VaultConfig {
        namespace: Some("no-such-namespace".into()),
        ..config(&ns)
    })
    .await;
    for (op, err) in [
        ("check", p.check().await.unwrap_err()),
        ("retrieve", p.retrieve(&id("k")).await.unwrap_err()),
        ("store", p.store(&id("k"), &data(1), &meta()).await.unwrap_err()),
    ] {
        assert!(
            matches!(&err, StorageError::Config(c) if c.field() == "namespace"),
            "{op}: {err:?}"
        );
        assert!(err.to_string().contains("no-such-namespace"), "{op}: {err}");
    }
    // An existing namespace without the mount names the mount, then works once it has one.
    let team = unique("team").replace('-', "_");
    bao(&["namespace", "create", &team]);
    let p = provider(VaultConfig {
        namespace: Some(team.clone()),
        ..config(&ns)
    })
    .await;
    let err = p.check().await.unwrap_err();
    assert!(
        matches!(&err, StorageError::Config(c) if c.field() == "mount_path"),
        "{err:?}"
    );
    assert!(err.to_string().contains(&team), "{err}");
    bao(&[
        "secrets",
        "enable",
        &format!("-ns={team}"),
        "-path=secret",
        "-version=2",
        "kv",
    ]);
    p.check().await.expect("a KV v2 mount in the namespace");
    let k = id("In_Namespace");
    p.store(&k, &data(1), &meta()).await.unwrap();
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(1));
    p.delete(&k).await.unwrap();
}

/// A unique AppRole role of the `nebula-test` policy, set up by `configure`; its
/// credentials.
async fn role(
    name: &str,
    configure: impl FnOnce(&mut vaultrs::api::auth::approle::requests::SetAppRoleRequestBuilder),
) -> VaultAuth {
    let mut req = vaultrs::api::auth::approle::requests::SetAppRoleRequest::builder();
    req.token_policies(vec!["nebula-test".to_string()]);
    configure(&mut req);
    vaultrs::auth::approle::role::set(&raw(), "approle", name, Some(&mut req))
        .await
        .unwrap();
    let role_id = vaultrs::auth::approle::role::read_id(&raw(), "approle", name)
        .await
        .unwrap()
        .role_id;
    let secret_id = vaultrs::auth::approle::role::secret::generate(&raw(), "approle", name, None)
        .await
        .unwrap()
        .secret_id;
    VaultAuth::AppRole {
        role_id,
        secret_id: SecretString::from(secret_id),
        mount: "approle".into(),
    }
}

/// Item 4: a token whose TTL is below `token_renewal_threshold_secs` but renews fine is
/// renewed, never replaced: no re-login (the role's secret id allows only two logins,
/// which a re-login at every check would use up) and no failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_ttl_that_renews_causes_no_relogin() {
    let name = unique("renewing-role");
    let auth = role(&name, |r| {
        r.token_ttl("4s").token_max_ttl("1h").secret_id_num_uses(2u64);
    })
    .await;
    let p = VaultProvider::new(VaultConfig {
        auth,
        renewal_check_interval_secs: 1,
        ..config(&unique("renewing"))
    })
    .await
    .unwrap();
    keep_working(&p, Duration::from_secs(6)).await;
    let stats = p.token_stats();
    assert!(stats.renewals >= 2, "{stats:?}");
    assert_eq!((stats.relogins, stats.failures), (0, 0), "{stats:?}");
    p.shutdown().await;
}

/// Item 4: token auth with a TTL below the threshold that renews fine: no false "nears
/// its max TTL" failure at every check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewable_token_below_the_threshold_logs_no_false_max_ttl() {
    let token = short_token("4s", "1h").await;
    let p = VaultProvider::new(VaultConfig {
        auth: VaultAuth::Token {
            token: SecretString::from(token),
        },
        renewal_check_interval_secs: 1,
        ..config(&unique("renew-token"))
    })
    .await
    .unwrap();
    keep_working(&p, Duration::from_secs(6)).await;
    let stats = p.token_stats();
    assert!(stats.renewals >= 2, "{stats:?}");
    assert_eq!(stats.failures, 0, "{stats:?}");
    p.shutdown().await;
}

/// Item 4: the token a re-login replaced is revoked at once, not left to expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relogin_revokes_the_replaced_token() {
    let name = unique("revoking-role");
    // Renewable up to 6 s: the provider logs in again about 2 s before the end.
    let auth = role(&name, |r| {
        r.token_ttl("6s").token_max_ttl("6s");
    })
    .await;
    let p = VaultProvider::new(VaultConfig {
        auth,
        renewal_check_interval_secs: 1,
        token_renewal_threshold_secs: 5,
        ..config(&unique("revoking"))
    })
    .await
    .unwrap();
    let start = Instant::now();
    while p.token_stats().relogins == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "{:?}", p.token_stats());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let live = live_tokens_of_role(&name).await;
    assert_eq!(live, 1, "the replaced token is still alive");
    p.shutdown().await;
}

/// How many live tokens the AppRole role `name` has (root lists every accessor).
async fn live_tokens_of_role(name: &str) -> usize {
    let out = bao(&["list", "-format=json", "auth/token/accessors"]);
    let accessors: Vec<String> = serde_json::from_str(&out).unwrap();
    let mut live = 0;
    for a in accessors {
        if let Ok(info) = vaultrs::token::lookup_accessor(&raw(), &a).await
            && info.meta.unwrap_or_default().get("role_name").map(String::as_str) == Some(name)
        {
            live += 1;
        }
    }
    live
}

/// Reads one HTTP/1.1 request (head and `Content-Length` body) from `s`.
fn read_request(s: &mut std::net::TcpStream) -> Option<(String, Vec<u8>)> {
    use std::io::Read;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    s.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// Request heads a fake server or proxy saw.
type Seen = Arc<std::sync::Mutex<Vec<String>>>;

/// A fake HTTP server on loopback answering every request with `answer(head)`: its
/// address and the request heads it saw.
fn fake_server(answer: impl Fn(&str) -> String + Send + Sync + 'static) -> (String, Seen) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let seen = Seen::default();
    let log = seen.clone();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (log, answer) = (log.clone(), answer.clone());
            std::thread::spawn(move || {
                use std::io::Write;
                while let Some((head, _)) = read_request(&mut stream) {
                    log.lock().unwrap().push(head.clone());
                    if stream.write_all(answer(&head).as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (address, seen)
}

fn http_response(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A proxy on loopback to OpenBao, one request per connection: its address and the
/// request heads that went through.
fn counting_proxy() -> (String, Seen) {
    hooked_proxy(|_| {})
}

/// [`counting_proxy`] calling `before(head)` before it forwards each request (to run
/// another tool's write at a chosen point of an operation).
fn hooked_proxy(before: impl Fn(&str) + Send + Sync + 'static) -> (String, Seen) {
    let before = Arc::new(before);
    let upstream = addr().trim_start_matches("http://").trim_end_matches('/').to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let seen = Seen::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut client) = stream else { continue };
            let (log, upstream, before) = (log.clone(), upstream.clone(), before.clone());
            std::thread::spawn(move || {
                use std::io::Write;
                let Some((head, body)) = read_request(&mut client) else {
                    return;
                };
                log.lock().unwrap().push(head.clone());
                before(&head);
                let head: String = head
                    .trim_end()
                    .lines()
                    .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                    .map(|l| format!("{l}\r\n"))
                    .collect();
                let Ok(mut server) = std::net::TcpStream::connect(&upstream) else {
                    return;
                };
                let _ = server.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes());
                let _ = server.write_all(&body);
                let _ = std::io::copy(&mut server, &mut client);
            });
        }
    });
    (address, seen)
}

/// Item 5: 40 concurrent operations meeting a dead token with dead AppRole credentials
/// share one login attempt (counted at a proxy in front of OpenBao) and all fail with
/// `AuthenticationFailed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_operations_with_dead_credentials_make_one_login() {
    let name = unique("dead-role");
    // One login only, and its token lives 2 s.
    let auth = role(&name, |r| {
        r.token_ttl("2s").token_max_ttl("2s").secret_id_num_uses(1u64);
    })
    .await;
    let (address, seen) = counting_proxy();
    let p = Arc::new(
        VaultProvider::new(VaultConfig {
            endpoint: address,
            auth,
            renewal_check_interval_secs: 3600,
            token_renewal_threshold_secs: 3601,
            ..config(&unique("storm"))
        })
        .await
        .unwrap(),
    );
    // The mount is confirmed while the token lives; then the token expires.
    assert!(!p.exists(&id("warm_up")).await.unwrap());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let logins = || {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|h| h.starts_with("POST /v1/auth/approle/login"))
            .count()
    };
    let before = logins();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let p = p.clone();
        tasks.push(tokio::spawn(
            async move { p.retrieve(&id(&format!("storm_{i}"))).await },
        ));
    }
    for t in tasks {
        let err = t.await.unwrap().unwrap_err();
        assert!(matches!(err, StorageError::AuthenticationFailed { .. }), "{err:?}");
    }
    assert_eq!(logins() - before, 1, "login attempts during the storm");
    p.shutdown().await;
}

/// Item 6: Vault's address answering 307 to another origin: the provider does not
/// follow, so the token never reaches the other origin; the error says why.
#[tokio::test]
async fn a_redirect_to_another_origin_never_carries_the_token() {
    let (elsewhere, seen_elsewhere) = fake_server(|_| http_response("200 OK", "", "{}"));
    let (address, seen) = fake_server(move |head| {
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        http_response(
            "307 Temporary Redirect",
            &format!("Location: {elsewhere}{path}\r\n"),
            "",
        )
    });
    let p = VaultProvider::new(VaultConfig {
        secret_prefix: "redirected".into(),
        ..VaultConfig::with_token(address, "s.REDIRECTEDTOKEN0123456789")
    })
    .await
    .unwrap();
    for err in [
        p.check().await.unwrap_err(),
        p.retrieve(&id("k")).await.unwrap_err(),
        p.store(&id("k"), &data(1), &meta()).await.unwrap_err(),
    ] {
        assert!(!err.is_retryable(), "{err:?}");
        assert!(err.to_string().contains("redirect"), "{err}");
    }
    p.shutdown().await;
    assert!(!seen.lock().unwrap().is_empty());
    assert!(
        seen_elsewhere.lock().unwrap().is_empty(),
        "the other origin was asked: {:?}",
        seen_elsewhere.lock().unwrap()
    );
}

/// Item 8: answers holding a token (a login answer that does not parse, a 500 whose body
/// repeats it) never reach an error's `Debug` or `Display`.
#[tokio::test]
async fn errors_never_carry_a_response_body_with_a_token() {
    let leaked = "s.LEAKEDTOKENabcdefghij0123";
    let (address, _) = fake_server(move |head| {
        if head.contains("/auth/approle/login") {
            http_response("200 OK", "", &format!("{{\"auth\":{{\"client_token\":\"{leaked}\"}}}}"))
        } else {
            http_response("500 Internal Server Error", "", &format!("{{\"token\":\"{leaked}\"}}"))
        }
    });
    let err = VaultProvider::new(VaultConfig {
        auth: VaultAuth::AppRole {
            role_id: "r".into(),
            secret_id: SecretString::from("s".to_string()),
            mount: "approle".into(),
        },
        ..VaultConfig::with_token(address.clone(), "unused")
    })
    .await
    .unwrap_err();
    let shown = format!("{err:?} {err}");
    assert!(!shown.contains("LEAKEDTOKEN"), "{shown}");
    let p = VaultProvider::new(VaultConfig::with_token(address, "s.OTHERTOKEN0123456789"))
        .await
        .unwrap();
    for err in [p.retrieve(&id("k")).await.unwrap_err(), p.check().await.unwrap_err()] {
        let shown = format!("{err:?} {err}");
        assert!(
            !shown.contains("LEAKEDTOKEN") && !shown.contains("OTHERTOKEN"),
            "{shown}"
        );
    }
    p.shutdown().await;
}

/// Item 9: a token without the `default` policy (no `lookup-self`) works: no "rejected"
/// failures while idle, `check()` passes, and a policy denial is `PermissionDenied`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_the_default_policy_is_not_taken_for_rejected() {
    let captured = captured_logs();
    let ns = unique("no-default");
    let admin = provider(config(&ns)).await;
    let k = id("Readable");
    admin.store(&k, &data(1), &meta()).await.unwrap();
    let mut req = CreateTokenRequest::builder();
    req.policies(vec!["nebula-readonly".to_string()])
        .no_default_policy(true)
        .ttl("1h");
    let token = vaultrs::token::new(&raw(), Some(&mut req)).await.unwrap().client_token;
    let p = VaultProvider::new(fast_renewal(VaultConfig {
        auth: VaultAuth::Token {
            token: SecretString::from(token),
        },
        ..config(&ns)
    }))
    .await
    .unwrap();
    p.check().await.expect("the token works");
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(1));
    let err = p.store(&k, &data(2), &meta()).await.unwrap_err();
    assert!(matches!(err, StorageError::PermissionDenied { .. }), "{err:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(p.token_stats().failures, 0, "{:?}", p.token_stats());
    p.shutdown().await;
    let text = captured.text();
    assert!(
        text.contains("may not call auth/token/lookup-self (it lacks the `default` policy)"),
        "no warning says what the token lacks:\n{text}"
    );
    cleanup(admin.as_ref()).await;
}

/// Item 9: an AppRole token without the `default` policy does not log in again while
/// idle (it did at every check), and operations work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approle_token_without_the_default_policy_stays_logged_in() {
    let name = unique("no-default-role");
    let auth = role(&name, |r| {
        r.token_ttl("1h").token_no_default_policy(true);
    })
    .await;
    let p = VaultProvider::new(fast_renewal(VaultConfig {
        auth,
        ..config(&unique("no-default-approle"))
    }))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let k = id("Idle");
    p.store(&k, &data(1), &meta()).await.unwrap();
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(1));
    p.delete(&k).await.unwrap();
    let stats = p.token_stats();
    assert_eq!((stats.relogins, stats.failures), (0, 0), "{stats:?}");
    p.shutdown().await;
}

/// What each operation costs in requests, counted at a proxy (one request per
/// connection) once the provider is warm: `store` of an existing entry is `GET metadata`,
/// `POST data` with cas and `PATCH metadata` with the tags of the new revision; reads are
/// one request each.
#[tokio::test]
async fn requests_per_operation() {
    let (address, seen) = counting_proxy();
    let p = VaultProvider::new(VaultConfig {
        endpoint: address,
        ..config(&unique("requests"))
    })
    .await
    .unwrap();
    p.shutdown().await;
    let k = id("Counted");
    p.store(&k, &data(1), &tagged(&[("env", "prod")])).await.unwrap();
    let count = |seen: &Seen| {
        let heads = std::mem::take(&mut *seen.lock().unwrap());
        heads
            .iter()
            .map(|h| {
                let mut words = h.split_whitespace();
                let method = words.next().unwrap_or_default().to_string();
                let path = words.next().unwrap_or_default();
                let api = if path.contains("/metadata/") {
                    "metadata"
                } else if path.contains("/data/") {
                    "data"
                } else {
                    path
                };
                format!("{method} {api}")
            })
            .collect::<Vec<_>>()
    };
    count(&seen);
    p.store(&k, &data(2), &tagged(&[("env", "prod")])).await.unwrap();
    assert_eq!(count(&seen), ["GET metadata", "POST data", "PATCH metadata"]);
    p.retrieve(&k).await.unwrap();
    assert_eq!(count(&seen), ["GET data"]);
    assert!(p.exists(&k).await.unwrap());
    assert_eq!(count(&seen), ["GET metadata"]);
    p.delete(&k).await.unwrap();
    assert_eq!(count(&seen), ["GET metadata", "DELETE metadata"]);
}

/// Whether `head` is a request `method` to `api` (`data` or `metadata`) of `path` on the
/// `secret` mount.
fn is_request(head: &str, method: &str, api: &str, path: &str) -> bool {
    head.starts_with(&format!("{method} /v1/secret/{api}/{path} "))
}

/// A foreign tool creating the entry between our "is it there?" read and our marker (the
/// first `POST metadata` of a create) never has its value overwritten: the store reports
/// `Conflict` and our marker comes off again, so later stores leave it alone too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_entry_created_during_our_create_is_never_taken_over() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let ns = unique("create-race");
    let k = id("Contested");
    let path = foreign_path(&ns, &k);
    let fired = AtomicBool::new(false);
    let (address, _) = hooked_proxy({
        let path = path.clone();
        move |head| {
            if is_request(head, "POST", "metadata", &path) && !fired.swap(true, Ordering::SeqCst) {
                bao(&["kv", "put", &format!("secret/{path}"), "value=not ours"]);
            }
        }
    });
    let p = VaultProvider::new(VaultConfig {
        endpoint: address,
        ..config(&ns)
    })
    .await
    .unwrap();
    for attempt in ["the racing store", "a later store"] {
        let err = p.store(&k, &data(1), &meta()).await.unwrap_err();
        assert!(matches!(err, StorageError::Conflict { .. }), "{attempt}: {err:?}");
        let value: HashMap<String, String> = kv2::read(&raw(), "secret", &path).await.unwrap();
        assert_eq!(value, foreign_value(), "{attempt} overwrote the foreign value");
        let custom = custom_of(&kv2::read_metadata(&raw(), "secret", &path).await.unwrap());
        assert!(
            !custom.keys().any(|k| k.starts_with("nebula-credential:")),
            "{attempt} left our keys on a foreign entry: {custom:?}"
        );
    }
    p.shutdown().await;
    kv2::delete_metadata(&raw(), "secret", &path).await.unwrap();
}

/// A provider whose next data write of `path`, once `armed` is set, is preceded by another
/// tool's `bao kv metadata patch -custom-metadata=<pair>` (once; `armed` is cleared then).
async fn patching_metadata_before_the_armed_write(
    ns: &str,
    path: &str,
    pair: &'static str,
) -> (VaultProvider, Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let armed = Arc::new(AtomicBool::new(false));
    let (address, _) = hooked_proxy({
        let (path, armed) = (path.to_string(), armed.clone());
        move |head| {
            if is_request(head, "POST", "data", &path) && armed.swap(false, Ordering::SeqCst) {
                bao(&[
                    "kv",
                    "metadata",
                    "patch",
                    &format!("-custom-metadata={pair}"),
                    &format!("secret/{path}"),
                ]);
            }
        }
    });
    let p = VaultProvider::new(VaultConfig {
        endpoint: address,
        ..config(ns)
    })
    .await
    .unwrap();
    (p, armed)
}

/// `custom_metadata` another tool adds while we store (between our read of the metadata
/// and our tag write) survives: we change only our own keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_metadata_another_tool_adds_during_a_store_survives() {
    use std::sync::atomic::Ordering;
    let ns = unique("tag-race");
    let k = id("Shared");
    let path = foreign_path(&ns, &k);
    let (p, armed) = patching_metadata_before_the_armed_write(&ns, &path, "owner=ops").await;
    p.store(&k, &data(1), &tagged(&[("env", "dev")])).await.unwrap();
    armed.store(true, Ordering::SeqCst);
    let written = p.store(&k, &data(2), &tagged(&[("env", "prod")])).await.unwrap();
    assert!(!armed.load(Ordering::SeqCst), "the other tool never wrote");
    let custom = custom_of(&kv2::read_metadata(&raw(), "secret", &path).await.unwrap());
    assert_eq!(custom.get("owner").map(String::as_str), Some("ops"), "{custom:?}");
    assert_eq!(custom["env"], "prod");
    assert_eq!(custom["nebula-credential:revision"], written.as_str());
    cleanup(&p).await;
    p.shutdown().await;
}

/// A credential tag key that lands on the entry during a store but is not among the keys
/// the new version's tags name (an older writer's late tag write, merged in) never makes
/// `list` match: a filter passes on the tags of the current version only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_key_left_by_an_older_write_never_matches_a_filter() {
    use std::sync::atomic::Ordering;
    let ns = unique("stray-tag");
    let k = id("Strayed");
    let path = foreign_path(&ns, &k);
    let (p, armed) = patching_metadata_before_the_armed_write(&ns, &path, "team=a").await;
    p.store(&k, &data(1), &tagged(&[("env", "dev")])).await.unwrap();
    armed.store(true, Ordering::SeqCst);
    p.store(&k, &data(2), &tagged(&[("env", "prod")])).await.unwrap();
    assert!(!armed.load(Ordering::SeqCst), "the late tag write never happened");
    assert!(!p.retrieve(&k).await.unwrap().metadata.tags.contains_key("team"));
    assert!(
        p.list(&CredentialFilter::new().tag("team", "a"))
            .await
            .unwrap()
            .is_empty(),
        "list matched a tag the current version does not carry"
    );
    assert_eq!(
        p.list(&CredentialFilter::new().tag("env", "prod")).await.unwrap(),
        vec![k.clone()]
    );
    cleanup(&p).await;
    p.shutdown().await;
}

/// Nested namespaces: a mount in a child namespace works whether the whole namespace
/// path is in `namespace` (`parent/child`, mount `team/kv`), or its tail is written in
/// front of the mount (`namespace = parent`, `mount_path = child/team/kv`, which Vault
/// routes the same way; its mount probe answers with the path from the parent).
#[tokio::test]
async fn a_mount_in_a_nested_namespace_is_confirmed_however_the_path_is_split() {
    let parent = unique("parent").replace('-', "_");
    bao(&["namespace", "create", &parent]);
    bao(&["namespace", "create", &format!("-ns={parent}"), "child"]);
    bao(&[
        "secrets",
        "enable",
        &format!("-ns={parent}/child"),
        "-path=team/kv",
        "-version=2",
        "kv",
    ]);
    let ns = unique("nested");
    for (namespace, mount) in [
        (format!("{parent}/child"), "team/kv"),
        (parent.clone(), "child/team/kv"),
    ] {
        let p = provider(VaultConfig {
            namespace: Some(namespace.clone()),
            mount_path: mount.into(),
            ..config(&ns)
        })
        .await;
        p.check()
            .await
            .unwrap_or_else(|e| panic!("namespace {namespace:?}, mount {mount:?}: {e}"));
        let k = id("Nested");
        p.store(&k, &data(1), &meta()).await.unwrap();
        assert_eq!(p.retrieve(&k).await.unwrap().data, data(1));
        p.delete(&k).await.unwrap();
    }
    // A path inside the mount is still refused.
    let p = provider(VaultConfig {
        namespace: Some(parent.clone()),
        mount_path: "child/team/kv/sub".into(),
        ..config(&ns)
    })
    .await;
    let err = p.check().await.unwrap_err();
    assert!(
        matches!(&err, StorageError::Config(c) if c.field() == "mount_path" && c.rule().contains("inside")),
        "{err:?}"
    );
}

/// A `delete_version_after` of a few seconds (shorter than the clock-lag allowance): while
/// Vault still serves the version, `exists` and `list` agree with `retrieve`, and
/// `store_if(Absent)` does not write over it; once Vault deletes it, all say absent.
#[tokio::test]
async fn a_delete_version_after_of_seconds_agrees_with_what_vault_serves() {
    let ns = unique("dva-short");
    let p = provider(config(&ns)).await;
    let k = id("Brief");
    let path = format!("{}/Brief", prefix(&ns));
    p.store(&k, &data(1), &meta()).await.unwrap();
    bao(&[
        "kv",
        "metadata",
        "put",
        "-delete-version-after=4s",
        &format!("secret/{path}"),
    ]);
    p.store(&k, &data(2), &meta()).await.unwrap();
    let served = p.retrieve(&k).await;
    let exists = p.exists(&k).await.unwrap();
    let listed = p.list(&CredentialFilter::new()).await.unwrap();
    let absent = p.store_if(&k, &data(9), &meta(), &Precondition::Absent).await;
    assert!(served.is_ok(), "{served:?}");
    assert!(exists, "exists says no while retrieve reads the value");
    assert_eq!(listed, vec![k.clone()]);
    assert!(matches!(absent, Err(StorageError::Conflict { .. })), "{absent:?}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(matches!(p.retrieve(&k).await, Err(StorageError::NotFound { .. })));
    assert!(!p.exists(&k).await.unwrap());
    assert!(p.list(&CredentialFilter::new()).await.unwrap().is_empty());
    p.store_if(&k, &data(3), &meta(), &Precondition::Absent).await.unwrap();
    kv2::delete_metadata(&raw(), "secret", &path).await.unwrap();
}

/// Stores (tags following the value), conditional creates and deletes racing on one id
/// while `list` by tag runs: plain stores never fail (a create that a `destroy` delete
/// stripped of its marker writes onto a bare entry and marks it a request later — not a
/// foreign entry), and once the writers stop, `list` by each tag agrees exactly with
/// what `retrieve` reads (tags of the current version).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_on_one_id_leave_list_by_tag_exact() {
    let ns = unique("race-one-id");
    let p = Arc::new(VaultProvider::new(config(&ns)).await.unwrap());
    let k = id("Hot");
    let env = |n: u8| if n.is_multiple_of(2) { "even" } else { "odd" };
    for burst in 0..12u8 {
        let mut tasks = Vec::new();
        for w in 0..4u8 {
            let (p, k) = (p.clone(), k.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..6u8 {
                    let n = burst.wrapping_mul(31).wrapping_add(w * 7 + i);
                    let m = tagged(&[
                        ("env", env(n)),
                        (if n.is_multiple_of(3) { "extra" } else { "other" }, "x"),
                    ]);
                    match n.wrapping_add(w) % 5 {
                        0 => p.delete(&k).await.unwrap(),
                        1 => match p.store_if(&k, &data(n), &m, &Precondition::Absent).await {
                            Ok(_) | Err(StorageError::Conflict { .. }) => {}
                            Err(e) => panic!("store_if: {e:?}"),
                        },
                        _ => {
                            p.store(&k, &data(n), &m)
                                .await
                                .unwrap_or_else(|e| panic!("store: {e:?}"));
                        }
                    }
                }
            }));
        }
        let lister = {
            let p = p.clone();
            tokio::spawn(async move {
                for _ in 0..6 {
                    p.list(&CredentialFilter::new().tag("env", "even")).await.unwrap();
                }
            })
        };
        for t in tasks {
            t.await.unwrap();
        }
        lister.await.unwrap();
        let current = match p.retrieve(&k).await {
            Ok(s) => Some(s.metadata.tags),
            Err(StorageError::NotFound { .. }) => None,
            Err(e) => panic!("{e:?}"),
        };
        for (key, value) in [("env", "even"), ("env", "odd"), ("extra", "x"), ("other", "x")] {
            let listed = p.list(&CredentialFilter::new().tag(key, value)).await.unwrap();
            let expected = current
                .as_ref()
                .is_some_and(|t| t.get(key).map(String::as_str) == Some(value));
            assert_eq!(
                listed == vec![k.clone()],
                expected,
                "burst {burst}: list({key}={value}) = {listed:?}, current tags {current:?}"
            );
        }
    }
    cleanup(p.as_ref()).await;
    p.shutdown().await;
}

/// Item 6 on the login path: an AppRole login answered with a redirect (absolute to
/// another origin, or relative) is not followed — the secret id never goes anywhere
/// else — and the error says why, without the secret id.
#[tokio::test]
async fn a_redirected_approle_login_is_not_followed() {
    let (elsewhere, seen_elsewhere) = fake_server(|_| http_response("200 OK", "", "{}"));
    for location in [
        format!("{elsewhere}/v1/auth/approle/login"),
        "/v1/auth/other/login".to_string(),
    ] {
        let (address, seen) =
            fake_server(move |_| http_response("307 Temporary Redirect", &format!("Location: {location}\r\n"), ""));
        let err = VaultProvider::new(VaultConfig {
            auth: VaultAuth::AppRole {
                role_id: "role".into(),
                secret_id: SecretString::from("SECRETID0123456789".to_string()),
                mount: "approle".into(),
            },
            ..VaultConfig::with_token(address, "unused")
        })
        .await
        .unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("redirect") && !shown.contains("SECRETID"), "{shown}");
        assert!(!err.is_retryable(), "{err:?}");
        assert_eq!(seen.lock().unwrap().len(), 1, "{:?}", seen.lock().unwrap());
    }
    assert!(seen_elsewhere.lock().unwrap().is_empty());
}

/// A mount configured with `cas_required=true` and `max_versions=1`: stores, conditional
/// stores, both delete modes and re-creates work, and `list` by tag stays exact.
#[tokio::test]
async fn a_mount_requiring_cas_and_keeping_one_version_works() {
    let mount = unique("kv-cas").replace('-', "_");
    bao(&["secrets", "enable", &format!("-path={mount}"), "-version=2", "kv"]);
    bao(&[
        "write",
        &format!("{mount}/config"),
        "cas_required=true",
        "max_versions=1",
    ]);
    let ns = unique("cas-mount");
    for mode in [DeleteMode::Soft, DeleteMode::Purge] {
        let p = provider(VaultConfig {
            mount_path: mount.clone(),
            delete_mode: mode,
            ..config(&ns)
        })
        .await;
        p.check().await.unwrap();
        let k = id("Strict");
        let r1 = p.store(&k, &data(1), &tagged(&[("env", "a")])).await.unwrap();
        let r2 = p
            .store_if(
                &k,
                &data(2),
                &tagged(&[("env", "b")]),
                &Precondition::Revision(r1.clone()),
            )
            .await
            .unwrap();
        assert!(matches!(
            p.store_if(&k, &data(3), &meta(), &Precondition::Revision(r1)).await,
            Err(StorageError::Conflict { .. })
        ));
        assert_eq!(p.retrieve(&k).await.unwrap().revision, r2);
        assert_eq!(
            p.list(&CredentialFilter::new().tag("env", "b")).await.unwrap(),
            vec![k.clone()]
        );
        assert!(
            p.list(&CredentialFilter::new().tag("env", "a"))
                .await
                .unwrap()
                .is_empty()
        );
        p.delete(&k).await.unwrap();
        assert!(!p.exists(&k).await.unwrap());
        p.store_if(&k, &data(4), &tagged(&[("env", "c")]), &Precondition::Absent)
            .await
            .unwrap();
        assert_eq!(p.retrieve(&k).await.unwrap().data, data(4));
        assert_eq!(
            p.list(&CredentialFilter::new().tag("env", "c")).await.unwrap(),
            vec![k.clone()]
        );
        p.delete(&k).await.unwrap();
        kv2::delete_metadata(&raw(), &mount, &format!("{}/Strict", prefix(&ns)))
            .await
            .unwrap();
    }
    bao(&["secrets", "disable", &mount]);
}

/// Another tool writes a value over one of our entries (`bao kv put`, keeping our
/// `custom_metadata`): the tags, proved stale by their revision, describe nothing there,
/// so `list` by tag no longer returns the id (an unfiltered `list` still shows it, and
/// `retrieve` says what is wrong).
#[tokio::test]
async fn a_value_another_tool_wrote_over_ours_is_not_listed_by_our_old_tags() {
    let ns = unique("overwritten");
    let p = provider(config(&ns)).await;
    let k = id("Clobbered");
    p.store(&k, &data(1), &tagged(&[("env", "prod")])).await.unwrap();
    bao(&["kv", "put", &format!("secret/{}", foreign_path(&ns, &k)), "value=junk"]);
    assert!(
        p.list(&CredentialFilter::new().tag("env", "prod"))
            .await
            .unwrap()
            .is_empty(),
        "listed by the tags of a value that is gone"
    );
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap(), vec![k.clone()]);
    assert!(p.retrieve(&k).await.is_err());
    kv2::delete_metadata(&raw(), "secret", &foreign_path(&ns, &k))
        .await
        .unwrap();
}

/// Re-logins (the token's max TTL is 4 s) revoke the replaced token while six tasks keep
/// storing and reading without pause: requests in flight with the revoked token are
/// retried with the new one, so no operation fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_replaced_token_fails_no_operation_in_flight() {
    let name = unique("busy-role");
    let auth = role(&name, |r| {
        r.token_ttl("2s").token_max_ttl("4s");
    })
    .await;
    let p = Arc::new(
        VaultProvider::new(fast_renewal(VaultConfig {
            auth,
            ..config(&unique("busy-relogin"))
        }))
        .await
        .unwrap(),
    );
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..6u8 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let k = id(&format!("Busy_{t}"));
            let mut i = 0u8;
            while start.elapsed() < Duration::from_secs(12) {
                p.store(&k, &data(i), &meta())
                    .await
                    .unwrap_or_else(|e| panic!("store at {:?}: {e:?}", start.elapsed()));
                let got = p
                    .retrieve(&k)
                    .await
                    .unwrap_or_else(|e| panic!("retrieve at {:?}: {e:?}", start.elapsed()));
                assert_eq!(got.data, data(i));
                i = i.wrapping_add(1);
            }
            p.delete(&k).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = p.token_stats();
    assert!(stats.relogins >= 2, "{stats:?}");
    assert!(
        live_tokens_of_role(&name).await <= 2,
        "replaced tokens were not revoked"
    );
    p.shutdown().await;
}

/// An entry a create of ours wrote but has not marked yet (version 1, no `custom_metadata`:
/// a concurrent purge removed the marked metadata before our `cas = 0` write) is ours by
/// its value, however long the marking takes: reads and stores take it at once and mark it,
/// rather than calling it foreign once a fixed pause has passed (a load-dependent race that
/// `racing_writers_on_one_id_leave_list_by_tag_exact` hit on a busy machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmarked_first_version_holding_our_record_is_ours() {
    let ns = unique("being-marked");
    let p = provider(config(&ns)).await;
    let k = id("Unmarked");
    let path = foreign_path(&ns, &k);
    p.store(&k, &data(1), &tagged(&[("env", "prod")])).await.unwrap();
    let record: serde_json::Value = kv2::read(&raw(), "secret", &path).await.unwrap();
    kv2::delete_metadata(&raw(), "secret", &path).await.unwrap();
    kv2::set(&raw(), "secret", &path, &record).await.unwrap();
    assert!(custom_of(&kv2::read_metadata(&raw(), "secret", &path).await.unwrap()).is_empty());

    let read = p.retrieve(&k).await.unwrap();
    assert_eq!(read.data, data(1));
    let custom = custom_of(&kv2::read_metadata(&raw(), "secret", &path).await.unwrap());
    assert!(
        custom.keys().any(|k| k.starts_with("nebula-credential:")),
        "not marked: {custom:?}"
    );

    kv2::delete_metadata(&raw(), "secret", &path).await.unwrap();
    kv2::set(&raw(), "secret", &path, &record).await.unwrap();
    p.store(&k, &data(2), &meta()).await.unwrap();
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(2));
    cleanup(p.as_ref()).await;
}

/// The request heads `seen` since the last call, as `METHOD api` (`data`, `metadata`, or
/// the path for anything else).
fn kv_requests(seen: &Seen) -> Vec<String> {
    std::mem::take(&mut *seen.lock().unwrap())
        .iter()
        .map(|h| {
            let mut words = h.split_whitespace();
            let method = words.next().unwrap_or_default();
            let path = words.next().unwrap_or_default();
            let api = if path.contains("/secret/metadata/") {
                "metadata"
            } else if path.contains("/secret/data/") {
                "data"
            } else {
                path
            };
            format!("{method} {api}")
        })
        .collect()
}

/// `revision` is one `GET metadata/…` and never reads the value, counted at a proxy: it
/// reports what `retrieve` reports (`current_version` with its `created_time`), follows
/// every store, and is `NotFound` for a soft-deleted or destroyed current version and a
/// missing entry, `Conflict` for a foreign one.
#[tokio::test]
async fn revision_is_one_metadata_read_never_the_value() {
    let (address, seen) = counting_proxy();
    let ns = unique("revision");
    let p = VaultProvider::new(VaultConfig {
        endpoint: address,
        delete_mode: DeleteMode::Soft,
        ..config(&ns)
    })
    .await
    .unwrap();
    p.shutdown().await;
    let k = id("Revised");
    let mut seen_revisions = Vec::new();
    for fill in 1..=3u8 {
        let written = p.store(&k, &data(fill), &meta()).await.unwrap();
        kv_requests(&seen);
        let revision = p.revision(&k).await.unwrap();
        assert_eq!(kv_requests(&seen), ["GET metadata"], "round {fill}");
        assert_eq!(revision, written);
        assert_eq!(p.retrieve(&k).await.unwrap().revision, revision);
        assert_eq!(kv_requests(&seen), ["GET data"]);
        assert!(!seen_revisions.contains(&revision));
        seen_revisions.push(revision);
    }
    // Destroyed by an operator: gone, from the metadata alone.
    let path = foreign_path(&ns, &k);
    let current = kv2::read_metadata(&raw(), "secret", &path)
        .await
        .unwrap()
        .current_version;
    kv2::destroy_versions(&raw(), "secret", &path, vec![current])
        .await
        .unwrap();
    kv_requests(&seen);
    assert!(p.revision(&k).await.unwrap_err().is_not_found());
    assert_eq!(kv_requests(&seen), ["GET metadata"]);
    assert!(p.retrieve(&k).await.unwrap_err().is_not_found());
    // Stored again, then soft-deleted: not found (a `deletion_time` this close to our clock
    // is settled by Vault, whose data read answers 404 without a value).
    p.store(&k, &data(4), &meta()).await.unwrap();
    p.delete(&k).await.unwrap();
    kv_requests(&seen);
    assert!(p.revision(&k).await.unwrap_err().is_not_found());
    assert_eq!(kv_requests(&seen).first().map(String::as_str), Some("GET metadata"));
    assert!(p.revision(&id("Never_Stored")).await.unwrap_err().is_not_found());
    assert_eq!(kv_requests(&seen), ["GET metadata"]);
    // A foreign entry under our name.
    let planted = id("Planted");
    kv2::set(&raw(), "secret", &foreign_path(&ns, &planted), &foreign_value())
        .await
        .unwrap();
    let err = p.revision(&planted).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert!(p.retrieve(&planted).await.unwrap_err().is_conflict());
    for k in [k, planted] {
        kv2::delete_metadata(&raw(), "secret", &foreign_path(&ns, &k))
            .await
            .unwrap();
    }
}

/// A token that may read values but not metadata (the usual application policy, `read`
/// on `data/…` alone) still gets `revision`, from `GET data/…`: the refusal of `GET
/// metadata/…` is logged once, and later calls go to `data/…` at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_with_a_token_that_may_not_read_metadata_reads_the_value() {
    let captured = captured_logs();
    let ns = unique("rev-data-only");
    let pfx = prefix(&ns);
    let policy = format!("data-only-{}", ns.replace('/', "-"));
    vaultrs::sys::policy::set(
        &raw(),
        &policy,
        &format!("path \"secret/data/{pfx}/*\" {{ capabilities = [\"read\"] }}\n"),
    )
    .await
    .unwrap();
    let mut req = CreateTokenRequest::builder();
    req.policies(vec![policy.clone(), "default".into()]).ttl("1h");
    let token = vaultrs::token::new(&raw(), Some(&mut req)).await.unwrap().client_token;
    let writer = provider(config(&ns)).await;
    let (address, seen) = counting_proxy();
    let reader = VaultProvider::new(vault::with_token(&ns, address, token))
        .await
        .unwrap();
    reader.shutdown().await;
    let k = id("Read_Only");
    let written = writer.store(&k, &data(1), &meta()).await.unwrap();
    assert_eq!(reader.revision(&k).await.unwrap(), written);
    assert_eq!(reader.retrieve(&k).await.unwrap().revision, written);
    kv_requests(&seen);
    let next = writer.store(&k, &data(2), &meta()).await.unwrap();
    assert_eq!(reader.revision(&k).await.unwrap(), next);
    assert_eq!(kv_requests(&seen), ["GET data"], "no second try of metadata/");
    writer.delete(&k).await.unwrap();
    assert!(reader.revision(&k).await.unwrap_err().is_not_found());
    let text = captured.text();
    assert_eq!(
        text.matches("may not read metadata/").count(),
        1,
        "one warning:\n{text}"
    );
    cleanup(writer.as_ref()).await;
}

/// Another writer (a second provider over the same prefix) rotates a credential a cached
/// store serves: the watch fires within `poll_ms` plus jitter, `refresh(seen)` and the end
/// of `fresh_ms` each bring the new value, and a delete is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_another_writer_rotate_and_delete() {
    let ns = unique("watch");
    let watched =
        nebula_credential_tests::watch::another_writer_rotates(StorageConfig::Vault(config(&ns)), &id("Rotated")).await;
    println!(
        "vault: watch fired {:?} after the rotation (poll {:?})",
        watched.fired_after, watched.poll
    );
}
