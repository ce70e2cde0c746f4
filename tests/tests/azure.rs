//! The Azure Key Vault provider against the Key Vault emulator, through `open()`'s full
//! layer stack, with challenge-resource verification ON, TLS verification ON (the
//! emulator's CA trusted through `ca_cert`) and the SDK's retries OFF: the conformance
//! suite (with foreign secrets planted by the raw SDK, other tools' tags, the read-only and
//! rejected tokens, and the emulator without its CA), then what only Key Vault shows (soft
//! delete and purge, recovery, tags, RBAC and token errors, throttling, TLS, token
//! refresh).
#![cfg(feature = "azure")]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::time::OffsetDateTime;
use azure_security_keyvault_secrets::SecretClient;
use azure_security_keyvault_secrets::models::{
    SecretAttributes, SecretClientListSecretPropertiesVersionsOptions, SetSecretParameters,
    UpdateSecretPropertiesParameters,
};
use futures::TryStreamExt as _;
use nebula_credential::azure::{AzureKeyVaultConfig, CONTENT_TYPE, DeleteMode, TOMBSTONE_CONTENT_TYPE};
use nebula_credential::{
    CredentialFilter, CredentialId, ErrorKind, RetryPolicy, StorageConfig, StorageError, StorageMetrics,
    StorageProvider, open, open_with_metrics,
};
use nebula_credential_core::conformance::{data, id, meta, tagged};
use nebula_credential_tests::azure::{
    self, FOREIGN_VALUE, StaticToken, config, config_with, control, fresh, name_in, own_vault, provider, raw, requests,
    token,
};
use nebula_credential_tests::{captured_logs, cleanup, emulator_var, unique};
use serde_json::{Value, json};

nebula_credential_core::conformance_tests!(
    azure_via_open,
    |namespace: String| async move { provider(config(&namespace)).await },
    foreign = azure::Foreign,
    read_only = azure::ReadOnly,
    rejected = azure::Rejected,
    untrusted_ca = azure::UntrustedCa,
    other_tools = azure::OtherTools,
);

async fn raw_tags(c: &SecretClient, name: &str) -> BTreeMap<String, String> {
    azure::raw_tags(c, name).await.expect("the secret's tags")
}

/// Polls until the deleted secret `name` is visible, then purges it.
async fn purge(c: &SecretClient, name: &str) {
    azure::purge(c, name).await.expect("purge");
}

/// Our record in Key Vault: our content type, our tags, no plaintext.
#[tokio::test]
async fn the_secret_holds_our_content_type_tags_and_only_ciphertext() {
    let (ns, p) = fresh("shape").await;
    let k = id("Api_Key");
    p.store(&k, &data(1), &tagged(&[("env", "prod")])).await.unwrap();
    let name = name_in(&ns, &k);
    assert!(name.ends_with("-api---key"), "readable name: {name}");
    let s = raw(None).get_secret(&name, None).await.unwrap().into_model().unwrap();
    assert_eq!(s.content_type.as_deref(), Some(CONTENT_TYPE));
    let tags = s.tags.unwrap();
    assert_eq!(tags["env"], "prod");
    assert_eq!(tags["nebula-credential:managed"], "true");
    assert_eq!(tags["nebula-credential:id"], "Api_Key");
    let value: Value = serde_json::from_str(s.value.as_deref().unwrap()).unwrap();
    assert_eq!(value["id"], "Api_Key");
    assert!(value["encrypted_data"]["ciphertext"].is_string());
    cleanup(p.as_ref()).await;
}

/// Soft mode: delete, then store again, recovers our deleted secret and writes a new
/// version; purge mode: delete purges, and storing again creates the secret anew.
#[tokio::test]
async fn store_after_delete_works_in_both_modes() {
    for mode in [DeleteMode::Soft, DeleteMode::Purge] {
        let ns = unique(&format!("again-{mode:?}").to_ascii_lowercase()).replace('_', "-");
        let p = provider(AzureKeyVaultConfig {
            delete_mode: mode,
            ..config(&ns)
        })
        .await;
        let k = id("phoenix");
        let name = name_in(&ns, &k);
        let c = raw(None);
        for round in 1..=3u8 {
            p.store(&k, &data(round), &tagged(&[("gen", &round.to_string())]))
                .await
                .unwrap_or_else(|e| panic!("{mode:?} round {round}: {e}"));
            let (got, m) = p.retrieve(&k).await.unwrap().into_parts();
            assert_eq!((got, m.tags["gen"].clone()), (data(round), round.to_string()));
            p.delete(&k).await.unwrap();
            assert!(!p.exists(&k).await.unwrap());
            assert!(p.retrieve(&k).await.unwrap_err().is_not_found());
        }
        match mode {
            // Purged: nothing left under deletedsecrets.
            DeleteMode::Purge => assert!(c.get_deleted_secret(&name, None).await.is_err(), "{mode:?}"),
            // Soft-deleted and recoverable: the last delete stays visible once it completes.
            DeleteMode::Soft => purge(&c, &name).await,
        }
    }
}

/// A soft delete undone with Azure's own recover brings back the tombstone the delete
/// made of our current version (its content type and tags, not its value: the record is
/// intact in it), which reads as absent; the delete adds no version.
#[tokio::test]
async fn a_recover_by_azure_brings_back_the_tombstone_and_the_record_stays_in_it() {
    let (ns, p) = fresh("recover").await;
    let k = id("Recovered_1");
    let m = tagged(&[("env", "prod")]);
    p.store(&k, &data(4), &m).await.unwrap();
    p.delete(&k).await.unwrap();
    let c = raw(None);
    let name = name_in(&ns, &k);
    let mut recovered = false;
    for _ in 0..100 {
        if c.recover_deleted_secret(&name, None).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "Azure's recover succeeded");
    let mut live = None;
    for _ in 0..100 {
        match c.get_secret(&name, None).await {
            Ok(s) => {
                live = Some(s.into_model().unwrap());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let live = live.expect("recovered");
    assert_eq!(live.content_type.as_deref(), Some(TOMBSTONE_CONTENT_TYPE));
    assert!(p.retrieve(&k).await.unwrap_err().is_not_found());
    assert!(!p.exists(&k).await.unwrap());
    assert!(p.list(&CredentialFilter::new()).await.unwrap().is_empty());
    let options = SecretClientListSecretPropertiesVersionsOptions::default();
    let versions: Vec<_> = c
        .list_secret_properties_versions(&name, Some(options))
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(versions.len(), 1, "the delete wrote no version");
    let value: Value = serde_json::from_str(live.value.as_deref().unwrap()).unwrap();
    assert_eq!(value["id"], "Recovered_1");
    p.store(&k, &data(5), &m).await.unwrap();
    assert_eq!(p.retrieve(&k).await.unwrap().into_parts(), (data(5), m));
    cleanup(p.as_ref()).await;
}

/// Soft mode: readers racing delete → store of one id never receive a value whose delete
/// was acknowledged (a store after a delete recovers the deleted secret before writing,
/// and the recover exposes only the tombstone the delete wrote). The vault takes seconds to
/// delete and recover, as the service does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_mode_never_serves_a_deleted_value_to_concurrent_readers() {
    let vault = own_vault("revoked");
    control(
        reqwest::Method::POST,
        &format!("vaults/{vault}"),
        Some(json!({"delete_delay_ms": 2000, "recover_delay_ms": 2000})),
    )
    .await;
    let p = in_vault("revoked", &vault, DeleteMode::Soft).await;
    let k = id("Revoked");
    // The highest generation whose delete was acknowledged.
    let deleted = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (p, k, deleted, stop) = (p.clone(), k.clone(), deleted.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut reads, mut stale) = (0usize, Vec::new());
                while !stop.load(Ordering::SeqCst) {
                    let floor = deleted.load(Ordering::SeqCst);
                    match p.retrieve(&k).await {
                        Ok(s) => {
                            reads += 1;
                            let generation: usize = s.metadata.tags["gen"].parse().unwrap();
                            if generation <= floor {
                                stale.push((generation, floor));
                            }
                        }
                        Err(e) if e.is_not_found() => reads += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                (reads, stale)
            })
        })
        .collect();
    for generation in 1..=3usize {
        let g = generation.to_string();
        p.store(&k, &data(generation as u8), &tagged(&[("gen", &g)]))
            .await
            .unwrap();
        p.delete(&k).await.unwrap();
        deleted.store(generation, Ordering::SeqCst);
    }
    p.store(&k, &data(4), &tagged(&[("gen", "4")])).await.unwrap();
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for r in readers {
        let (reads, stale) = r.await.unwrap();
        assert!(
            stale.is_empty(),
            "deleted generations served (generation, deleted up to): {stale:?}"
        );
        total += reads;
    }
    println!("{total} reads");
    assert!(total > 20, "the readers ran: {total}");
    assert_eq!(p.retrieve(&k).await.unwrap().metadata.tags["gen"], "4");
    cleanup(p.as_ref()).await;
}

/// `exists` answers in one request (a GET of the latest version), whatever the number of
/// versions; Key Vault lists versions 25 to a page.
#[tokio::test]
async fn exists_is_one_request_whatever_the_number_of_versions() {
    let vault = own_vault("exi");
    let p = provider(config_with("exists", Arc::new(StaticToken(token())), Some(&vault))).await;
    let k = id("Many");
    for i in 0..30u8 {
        p.store(&k, &data(i), &meta()).await.unwrap();
    }
    assert!(p.exists(&k).await.unwrap());
    let log = requests(&vault).await;
    let tail: Vec<(&str, u16)> = log[log.len() - 2..].iter().map(|(m, _, s)| (m.as_str(), *s)).collect();
    assert_eq!(tail, vec![("PUT", 200), ("GET", 200)], "{:?}", &log[log.len() - 3..]);
    assert!(!p.exists(&id("absent")).await.unwrap());
    let log = requests(&vault).await;
    let tail: Vec<(&str, u16)> = log[log.len() - 2..].iter().map(|(m, _, s)| (m.as_str(), *s)).collect();
    assert_eq!(tail, vec![("GET", 200), ("GET", 404)], "{log:?}");
    cleanup(p.as_ref()).await;
}

/// Default tags are owned too: one removed or renamed in the configuration is removed by
/// the next store (it neither stays nor eats the 15-tag budget), other tools' tags stay.
#[tokio::test]
async fn default_tags_dropped_from_the_config_are_removed_by_the_next_store() {
    let ns = unique("deftags").replace('_', "-");
    let with = |key: &str| AzureKeyVaultConfig {
        default_tags: BTreeMap::from([(key.to_string(), "payments".to_string())]),
        ..config(&ns)
    };
    let k = id("Tagged");
    let name = name_in(&ns, &k);
    let ten: Vec<(String, String)> = (0..10).map(|i| (format!("k{i}"), i.to_string())).collect();
    let pairs: Vec<(&str, &str)> = ten.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let m = tagged(&pairs);
    provider(with("org:team")).await.store(&k, &data(1), &m).await.unwrap();
    assert_eq!(raw_tags(&raw(None), &name).await.len(), 15);
    let renamed = provider(with("org:squad")).await;
    renamed
        .store(&k, &data(2), &m)
        .await
        .expect("the old default tag is ours to remove");
    let tags = raw_tags(&raw(None), &name).await;
    assert!(!tags.contains_key("org:team"), "{tags:?}");
    assert_eq!(tags["org:squad"], "payments");
    // Without default tags, another tool's tag takes the room and is kept.
    let c = raw(None);
    let plain = provider(config(&ns)).await;
    plain.store(&k, &data(3), &m).await.unwrap();
    let mut tags: HashMap<String, String> = raw_tags(&c, &name).await.into_iter().collect();
    assert!(!tags.contains_key("org:squad"), "{tags:?}");
    tags.insert("CostCenter".into(), "42".into());
    let update = UpdateSecretPropertiesParameters {
        tags: Some(tags),
        ..Default::default()
    };
    c.update_secret_properties(&name, update.try_into().unwrap(), None)
        .await
        .unwrap();
    plain.store(&k, &data(4), &m).await.unwrap();
    assert_eq!(raw_tags(&c, &name).await["CostCenter"], "42");
    cleanup(plain.as_ref()).await;
}

/// A 429 with `Retry-After` is retried by our `Retry` layer, once, after the wait the
/// service asked for; the emulator's log shows one 429 and one success, so the SDK did
/// not retry on its own. Without retries, the caller gets `Throttled` with the wait.
#[tokio::test]
async fn a_throttled_request_is_retried_by_our_layer_only() {
    let vault = own_vault("thr");
    let metrics = Arc::new(StorageMetrics::new());
    let mut c = config_with("throttle", Arc::new(StaticToken(token())), Some(&vault));
    c.retry = RetryPolicy {
        max_retries: 3,
        ..RetryPolicy::default()
    };
    let p = open_with_metrics(&StorageConfig::Azure(c.clone()), metrics.clone())
        .await
        .unwrap();
    let k = id("throttled");
    p.store(&k, &data(1), &meta()).await.unwrap();
    control(
        reqwest::Method::POST,
        "faults",
        Some(json!({"status": 429, "retry_after_s": 1, "count": 1, "vault": vault})),
    )
    .await;
    let started = Instant::now();
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(1));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for Retry-After"
    );
    assert_eq!(metrics.snapshot().retrieve.retries, 1);
    // This vault is this test's alone: its log ends with the store's PUT, then the
    // retrieve's two attempts, nothing between.
    let log = requests(&vault).await;
    let tail: Vec<(&str, u16)> = log[log.len() - 3..].iter().map(|(m, _, s)| (m.as_str(), *s)).collect();
    assert_eq!(tail, vec![("PUT", 200), ("GET", 429), ("GET", 200)], "{log:?}");

    c.retry.max_retries = 0;
    let once = open(&StorageConfig::Azure(c)).await.unwrap();
    once.check().await.unwrap();
    control(
        reqwest::Method::POST,
        "faults",
        Some(json!({"status": 429, "retry_after_s": 2, "count": 1, "vault": vault})),
    )
    .await;
    let e = once.retrieve(&k).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled, "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
    let log = requests(&vault).await;
    let tail: Vec<(&str, &str, u16)> = log[log.len() - 2..]
        .iter()
        .map(|(m, p, s)| (m.as_str(), p.as_str(), *s))
        .collect();
    assert_eq!(
        tail,
        vec![("GET", "/secrets", 200), ("GET", "/secrets/throttle-throttled/", 429)],
        "one request after check's list: the SDK did not retry: {log:?}"
    );
    cleanup(p.as_ref()).await;
}

/// A 503 is retryable and retried; the record survives.
#[tokio::test]
async fn a_server_error_is_retried() {
    let vault = own_vault("unav");
    let metrics = Arc::new(StorageMetrics::new());
    let p = open_with_metrics(
        &StorageConfig::Azure(config_with("unavailable", Arc::new(StaticToken(token())), Some(&vault))),
        metrics.clone(),
    )
    .await
    .unwrap();
    control(
        reqwest::Method::POST,
        "faults",
        Some(json!({"status": 503, "count": 2, "vault": vault})),
    )
    .await;
    let k = id("flaky");
    p.store(&k, &data(3), &meta()).await.unwrap();
    assert_eq!(metrics.snapshot().store.retries, 2);
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(3));
    cleanup(p.as_ref()).await;
}

/// A disabled current version is reported as such; `exists` still sees the secret.
#[tokio::test]
async fn a_disabled_secret_is_reported_clearly() {
    let (ns, p) = fresh("disabled").await;
    let k = id("off");
    p.store(&k, &data(1), &meta()).await.unwrap();
    let name = name_in(&ns, &k);
    let update = UpdateSecretPropertiesParameters {
        secret_attributes: Some(azure_security_keyvault_secrets::models::SecretAttributes {
            enabled: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    raw(None)
        .update_secret_properties(&name, update.try_into().unwrap(), None)
        .await
        .unwrap();
    let e = p.retrieve(&k).await.unwrap_err();
    assert!(e.to_string().contains("disabled") && !e.is_retryable(), "{e}");
    assert!(p.exists(&k).await.unwrap());
    p.store(&k, &data(2), &meta()).await.expect("a new version is enabled");
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(2));
    cleanup(p.as_ref()).await;
}

/// A credential whose tokens expire within minutes: the SDK's bearer policy asks for a
/// new token before each expires, and the emulator (which refuses expired tokens with 401
/// `TokenExpired`) never sees an expired one during a long run.
#[tokio::test]
async fn tokens_are_refreshed_before_they_expire() {
    #[derive(Debug)]
    struct Expiring {
        base: String,
        issued: AtomicUsize,
    }
    #[async_trait::async_trait]
    impl TokenCredential for Expiring {
        async fn get_token(&self, _: &[&str], _: Option<TokenRequestOptions<'_>>) -> azure_core::Result<AccessToken> {
            self.issued.fetch_add(1, Ordering::SeqCst);
            // The SDK treats a token as due for refresh 5 minutes before it expires, so a
            // token said to expire in 302 s is due after 2 s. The emulator is told a
            // deadline 3 to 4 s after issue: it refuses any token the SDK kept past its
            // refresh margin, as the service refuses an expired one.
            let now = OffsetDateTime::now_utc();
            Ok(AccessToken::new(
                format!("{}~exp={}", self.base, now.unix_timestamp() + 4),
                now + azure_core::time::Duration::seconds(302),
            ))
        }
    }
    let vault = own_vault("tok");
    let credential = Arc::new(Expiring {
        base: token(),
        issued: AtomicUsize::new(0),
    });
    let p = provider(config_with("tokens", credential.clone(), Some(&vault))).await;
    let k = id("long_run");
    p.store(&k, &data(1), &meta()).await.unwrap();
    let started = Instant::now();
    let mut operations = 0;
    while started.elapsed() < Duration::from_secs(8) {
        assert_eq!(p.retrieve(&k).await.unwrap().data, data(1));
        operations += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let issued = credential.issued.load(Ordering::SeqCst);
    println!("{operations} reads over 8 s, {issued} tokens issued");
    assert!(issued >= 4, "tokens were refreshed: {issued}");
    assert!(
        issued < operations,
        "tokens were cached between refreshes: {issued} of {operations}"
    );
    let log = requests(&vault).await;
    let refused = log.iter().filter(|(_, _, s)| *s == 401).count();
    assert!(
        refused <= 1,
        "only the SDK's first, unauthenticated challenge request: {log:?}"
    );
    cleanup(p.as_ref()).await;
}

/// A foreign secret under our name that is soft-deleted is never recovered, purged or
/// overwritten: `store` reports `Conflict` naming it, and a purge-mode `delete` leaves it.
#[tokio::test]
async fn a_deleted_foreign_secret_is_never_recovered_or_purged() {
    let ns = unique("fdel").replace('_', "-");
    let k = id("Taken");
    let name = name_in(&ns, &k);
    let c = raw(None);
    let params = SetSecretParameters {
        value: Some(FOREIGN_VALUE.into()),
        ..SetSecretParameters::default()
    };
    c.set_secret(&name, params.try_into().unwrap(), None).await.unwrap();
    c.delete_secret(&name, None).await.unwrap();
    for mode in [DeleteMode::Soft, DeleteMode::Purge] {
        let p = provider(AzureKeyVaultConfig {
            delete_mode: mode,
            ..config(&ns)
        })
        .await;
        let e = p.store(&k, &data(1), &meta()).await.unwrap_err();
        assert!(e.is_conflict(), "{mode:?}: {e}");
        assert!(e.to_string().contains(&name), "{e}");
        p.delete(&k).await.expect("nothing of ours to delete");
        assert!(!p.exists(&k).await.unwrap());
    }
    let deleted = c.get_deleted_secret(&name, None).await.expect("still soft-deleted");
    assert!(deleted.into_model().unwrap().tags.unwrap_or_default().is_empty());
    assert!(c.get_secret(&name, None).await.is_err(), "not recovered");
    c.purge_deleted_secret(&name, None).await.unwrap();
}

/// The worst case the core allows — a 128-character id, 10 tags with 256-character values
/// — plus the one default tag fits Key Vault's 15 tags, and round-trips.
#[tokio::test]
async fn the_worst_case_of_tags_and_id_fits() {
    let ns = unique("worst").replace('_', "-");
    let p = provider(AzureKeyVaultConfig {
        default_tags: BTreeMap::from([("org:team".to_string(), "t".repeat(256))]),
        ..config(&ns)
    })
    .await;
    let k = id(&"Zz_-9".repeat(26)[..128]);
    let tags: Vec<(String, String)> = (0..10)
        .map(|i| (format!("k{i}{}", "x".repeat(61)), "✓".repeat(256)))
        .collect();
    let pairs: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let m = tagged(&pairs);
    p.store(&k, &data(9), &m).await.unwrap();
    assert_eq!(p.retrieve(&k).await.unwrap().into_parts(), (data(9), m));
    let name = name_in(&ns, &k);
    assert!(name.len() <= 127, "{name}");
    assert_eq!(raw_tags(&raw(None), &name).await.len(), 15);
    assert_eq!(
        p.list(&CredentialFilter::new().tag(tags[9].0.clone(), tags[9].1.clone()))
            .await
            .unwrap(),
        vec![k]
    );
    cleanup(p.as_ref()).await;
}

/// Two providers whose prefixes overlap can map different ids to one name; the id tag
/// makes that a `Conflict`, never another credential's record.
#[tokio::test]
async fn overlapping_prefixes_never_hand_out_another_credential() {
    let ns = unique("ovl").replace('_', "-");
    let a = provider(AzureKeyVaultConfig {
        secret_prefix: format!("{ns}-"),
        ..config(&ns)
    })
    .await;
    let b = provider(AzureKeyVaultConfig {
        secret_prefix: format!("{ns}-b"),
        ..config(&ns)
    })
    .await;
    // "{ns}-" + "b-same" (id bSame) == "{ns}-b" + "-same" (id Same).
    a.store(&id("bSame"), &data(1), &meta()).await.unwrap();
    let e = b.retrieve(&id("Same")).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(b.store(&id("Same"), &data(2), &meta()).await.unwrap_err().is_conflict());
    assert!(b.list(&CredentialFilter::new()).await.unwrap().is_empty());
    assert_eq!(a.retrieve(&id("bSame")).await.unwrap().data, data(1));
    cleanup(a.as_ref()).await;
}

/// Reads secret `name` with Microsoft's Python SDK (azure-keyvault-secrets, in the venv
/// xtask installs), challenge and TLS verification on: `{content_type, tags, value}`.
const PYTHON_READ: &str = r#"
import json, os, socket, sys, time
from azure.core.credentials import AccessToken
from azure.keyvault.secrets import SecretClient
real = socket.getaddrinfo
def resolve(host, *a, **k):
    if isinstance(host, str) and host.lower().endswith(".localhost"):
        host = "127.0.0.1"
    return real(host, *a, **k)
socket.getaddrinfo = resolve
class Token:
    def get_token(self, *scopes, **kwargs):
        return AccessToken(os.environ["NEBULA_TEST_AZURE_TOKEN"], int(time.time()) + 3600)
client = SecretClient(os.environ["NEBULA_TEST_AZURE_VAULT_URL"], Token(), verify_challenge_resource=True,
                      connection_verify=os.environ["NEBULA_TEST_AZURE_CA_PEM"])
s = client.get_secret(sys.argv[1])
print(json.dumps({"content_type": s.properties.content_type, "tags": s.properties.tags, "value": s.value}))
"#;

/// Interop: a credential stored through `CredentialStore` and the provider, read back with
/// Microsoft's Python SDK, shows our content type and tags, and no plaintext.
#[tokio::test]
async fn the_python_sdk_reads_our_content_type_tags_and_no_plaintext() {
    use nebula_credential::prelude::ExposeSecret as _;
    use nebula_credential::{CredentialStore, EncryptionKey, Keyring, Tags};
    let python = emulator_var("NEBULA_TEST_AZURE_PYTHON", "azure");
    let (ns, p) = fresh("interop").await;
    let store = CredentialStore::new(p.clone(), Keyring::new(EncryptionKey::generate()));
    let k = id("Interop_Key");
    let plaintext = "sk_live_interop_PLAINTEXT_4711";
    store
        .put(
            &k,
            plaintext.as_bytes(),
            Tags::from([("env".to_string(), "prod".to_string())]),
        )
        .await
        .unwrap();
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(PYTHON_READ)
        .arg(name_in(&ns, &k))
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["content_type"], CONTENT_TYPE);
    assert_eq!(seen["tags"]["env"], "prod");
    assert_eq!(seen["tags"]["nebula-credential:managed"], "true");
    assert_eq!(seen["tags"]["nebula-credential:id"], "Interop_Key");
    let value = seen["value"].as_str().unwrap();
    assert!(!value.contains(plaintext) && !value.contains("PLAINTEXT"), "{value}");
    let record: Value = serde_json::from_str(value).unwrap();
    assert_eq!(record["id"], "Interop_Key");
    assert_eq!(store.get(&k).await.unwrap().expose_secret(), plaintext.as_bytes());
    cleanup(p.as_ref()).await;
}

/// A vault nobody listens on is `Unavailable` (retryable); a request that stalls past
/// `read_ms` times out and the `Retry` layer tries again.
#[tokio::test]
async fn connection_failures_and_stalls_are_retryable() {
    let mut c = config("refused");
    c.endpoint = "https://nebula.localhost:1".into();
    c.retry.max_retries = 0;
    let e = provider(c).await.retrieve(&id("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable());

    let vault = own_vault("stall");
    let metrics = Arc::new(StorageMetrics::new());
    let mut c = config_with("stall", Arc::new(StaticToken(token())), Some(&vault));
    c.timeouts.read_ms = 1_000;
    let p = open_with_metrics(&StorageConfig::Azure(c), metrics.clone())
        .await
        .unwrap();
    let k = id("slow");
    p.store(&k, &data(5), &meta()).await.unwrap();
    control(
        reqwest::Method::POST,
        "faults",
        Some(json!({"stall_ms": 1500, "count": 1, "vault": vault})),
    )
    .await;
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(5));
    let s = metrics.snapshot().retrieve;
    assert_eq!(s.retries, 1, "{s:?}");
    cleanup(p.as_ref()).await;
}

/// Key Vault lists a secret's versions in pages of at most 25: when the newest version
/// (here a foreign tool's overwrite without our marker) is not on the first page, `exists`
/// must still judge by it, as `retrieve` and `store` do.
#[tokio::test]
async fn exists_judges_by_the_newest_version_beyond_the_first_page() {
    let (ns, p) = fresh("pages").await;
    let k = id("Paged");
    for i in 0..25u8 {
        p.store(&k, &data(i), &meta()).await.unwrap();
    }
    assert!(p.exists(&k).await.unwrap());
    let name = name_in(&ns, &k);
    let c = raw(None);
    let params = SetSecretParameters {
        value: Some(FOREIGN_VALUE.into()),
        ..SetSecretParameters::default()
    };
    c.set_secret(&name, params.try_into().unwrap(), None).await.unwrap();
    assert!(p.retrieve(&k).await.unwrap_err().is_conflict());
    let e = p.exists(&k).await.expect_err("the newest version is not ours");
    assert!(e.is_conflict(), "{e}");
    assert!(p.store(&k, &data(1), &meta()).await.unwrap_err().is_conflict());
    c.delete_secret(&name, None).await.unwrap();
    purge(&c, &name).await;
}

/// The record limit is Key Vault's 25,600 bytes exactly: a record of 25,600 bytes is
/// stored, one of 25,601 is `TooLarge` naming both numbers, with no request sent.
#[tokio::test]
async fn records_of_the_limit_fit_and_one_byte_more_is_refused_before_any_request() {
    use nebula_credential_core::{EncryptedData, RecordEnvelope};
    let vault = own_vault("size");
    let p = provider(config_with("size-", Arc::new(StaticToken(token())), Some(&vault))).await;
    let k = id("Big_one");
    let m = meta();
    let sized = |target: usize| {
        let mut d = EncryptedData {
            ciphertext: vec![7; 18_000],
            ..data(1)
        };
        let len = |d: &EncryptedData| RecordEnvelope::encode(&k, d, &m, "azure", usize::MAX).unwrap().len();
        while len(&d) + 4 <= target {
            d.ciphertext.push(7);
        }
        while len(&d) < target {
            d.key_id.push('k');
        }
        assert_eq!(len(&d), target);
        d
    };
    p.store(&k, &sized(25_600), &m).await.expect("25,600 bytes fit");
    assert_eq!(p.retrieve(&k).await.unwrap().data, sized(25_600));
    let before = requests(&vault).await.len();
    match p.store(&k, &sized(25_601), &m).await {
        Err(StorageError::TooLarge { size, limit, .. }) => assert_eq!((size, limit), (25_601, 25_600)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(requests(&vault).await.len(), before, "no request for a refused record");
    cleanup(p.as_ref()).await;
}

/// Ids differing only in case or in `_`/`-` are distinct credentials.
#[tokio::test]
async fn case_and_separator_variants_are_distinct_credentials() {
    let (_, p) = fresh("case").await;
    let ids = [
        "Key", "key", "KEY", "kEy", "a_b", "a-b", "A_B", "a__b", "a--b", "a_-b", "a-_b",
    ];
    for (i, k) in ids.iter().enumerate() {
        p.store(&id(k), &data(i as u8), &meta()).await.unwrap();
    }
    for (i, k) in ids.iter().enumerate() {
        assert_eq!(p.retrieve(&id(k)).await.unwrap().data, data(i as u8), "{k}");
    }
    let mut want: Vec<CredentialId> = ids.iter().map(|k| id(k)).collect();
    want.sort();
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap(), want);
    p.delete(&id("KEY")).await.unwrap();
    assert!(p.exists(&id("Key")).await.unwrap() && !p.exists(&id("KEY")).await.unwrap());
    cleanup(p.as_ref()).await;
}

/// Foreign secrets that look like ours (marker with another value, marker without an id
/// tag, id tag without the marker) are never read, listed, overwritten or deleted.
#[tokio::test]
async fn forged_markers_and_id_tags_are_not_ours() {
    let ns = unique("forge").replace('_', "-");
    let p = provider(AzureKeyVaultConfig {
        delete_mode: DeleteMode::Purge,
        ..config(&ns)
    })
    .await;
    let c = raw(None);
    let cases: [(&str, &[(&str, &str)]); 4] = [
        (
            "Wrong",
            &[("nebula-credential:managed", "TRUE"), ("nebula-credential:id", "Wrong")],
        ),
        ("NoId", &[("nebula-credential:managed", "true")]),
        ("OnlyId", &[("nebula-credential:id", "OnlyId")]),
        (
            "Other",
            &[("nebula-credential:managed", "true"), ("nebula-credential:id", "other")],
        ),
    ];
    for (k, tags) in cases {
        let name = name_in(&ns, &id(k));
        let params = SetSecretParameters {
            value: Some(FOREIGN_VALUE.into()),
            content_type: Some(CONTENT_TYPE.into()),
            tags: Some(tags.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()),
            ..SetSecretParameters::default()
        };
        c.set_secret(&name, params.try_into().unwrap(), None).await.unwrap();
        assert!(p.retrieve(&id(k)).await.unwrap_err().is_conflict(), "{k}");
        assert!(p.exists(&id(k)).await.unwrap_err().is_conflict(), "{k}");
        assert!(
            p.store(&id(k), &data(1), &meta()).await.unwrap_err().is_conflict(),
            "{k}"
        );
        assert!(p.delete(&id(k)).await.unwrap_err().is_conflict(), "{k}");
        let s = c.get_secret(&name, None).await.unwrap().into_model().unwrap();
        assert_eq!(s.value.as_deref(), Some(FOREIGN_VALUE), "{k}");
    }
    assert!(p.list(&CredentialFilter::new()).await.unwrap().is_empty());
    for (k, _) in cases {
        let name = name_in(&ns, &id(k));
        c.delete_secret(&name, None).await.unwrap();
        purge(&c, &name).await;
    }
}

/// Delete twice, and store right after delete, in both modes; a purge-mode delete and a
/// store racing on one id both finish.
#[tokio::test]
async fn delete_twice_and_store_right_after_delete() {
    for mode in [DeleteMode::Soft, DeleteMode::Purge] {
        let ns = unique("twice").replace('_', "-");
        let p = provider(AzureKeyVaultConfig {
            delete_mode: mode,
            ..config(&ns)
        })
        .await;
        let k = id("Twice");
        p.store(&k, &data(1), &meta()).await.unwrap();
        p.delete(&k).await.unwrap();
        p.delete(&k).await.unwrap();
        p.store(&k, &data(2), &meta()).await.unwrap();
        assert_eq!(p.retrieve(&k).await.unwrap().data, data(2), "{mode:?}");
        let (a, b) = tokio::join!(p.delete(&k), p.delete(&k));
        a.unwrap();
        b.unwrap();
        assert!(!p.exists(&k).await.unwrap());
        p.store(&k, &data(3), &meta()).await.unwrap();
        assert_eq!(p.retrieve(&k).await.unwrap().data, data(3), "{mode:?}");
        cleanup(p.as_ref()).await;
        let name = name_in(&ns, &k);
        if mode == DeleteMode::Soft {
            purge(&raw(None), &name).await;
        }
    }
}

/// Tokens, ciphertext and a corrupted secret's value never reach logs, `Debug` or
/// `Display` of errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_values_never_reach_logs_or_errors() {
    use nebula_credential_core::EncryptedData;
    let captured = captured_logs();
    let (ns, p) = fresh("leak").await;
    let k = id("Leaky");
    let d = EncryptedData {
        ciphertext: b"CIPHERTEXT-MARKER-0123456789".to_vec(),
        ..data(3)
    };
    p.store(&k, &d, &meta()).await.unwrap();
    assert_eq!(p.retrieve(&k).await.unwrap().data, d);
    // A secret of ours whose value is not a record: Corrupted, without the value.
    let bad = id("Corrupt");
    let name = name_in(&ns, &bad);
    let params = SetSecretParameters {
        value: Some("{\"format_version\": hunter2-PLAINTEXT".into()),
        content_type: Some(CONTENT_TYPE.into()),
        tags: Some(HashMap::from([
            ("nebula-credential:managed".to_string(), "true".to_string()),
            ("nebula-credential:id".to_string(), "Corrupt".to_string()),
        ])),
        ..SetSecretParameters::default()
    };
    raw(None)
        .set_secret(&name, params.try_into().unwrap(), None)
        .await
        .unwrap();
    let corrupt = p.retrieve(&bad).await.unwrap_err();
    assert_eq!(corrupt.kind(), ErrorKind::Corrupted, "{corrupt}");
    let rejected_token = emulator_var("NEBULA_TEST_AZURE_REJECTED_TOKEN", "azure");
    let rejected = provider(config_with(&ns, Arc::new(StaticToken(rejected_token.clone())), None)).await;
    let denied = rejected.retrieve(&k).await.unwrap_err();
    let errors = format!("{corrupt} {corrupt:?} {denied} {denied:?}");
    for secret in ["hunter2", &rejected_token, &token()] {
        assert!(!errors.contains(secret), "{secret} in an error: {errors}");
    }
    cleanup(p.as_ref()).await;
    let text = captured.text();
    let b64 = serde_json::to_string(&d).unwrap();
    let b64 = b64
        .split("\"ciphertext\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert!(
        text.contains("/secrets/") && text.contains("Leaky"),
        "the logs were captured"
    );
    for secret in [&rejected_token, &token(), &"hunter2".to_string(), &b64] {
        assert!(!text.contains(secret.as_str()), "{secret} reached the logs");
    }
}

/// 128-character ids with the longest prefix (64): exact and digest names, ids that differ
/// only in their last character or in case, all distinct and listed by their ids.
#[tokio::test]
async fn the_longest_ids_with_the_longest_prefix_are_distinct() {
    let ns = unique("long").replace('_', "-");
    let prefix = format!("{ns}-{}", "p".repeat(64 - ns.len() - 1));
    assert_eq!(prefix.len(), 64);
    let p = provider(AzureKeyVaultConfig {
        secret_prefix: prefix,
        ..config(&ns)
    })
    .await;
    let base = "A_".repeat(63);
    let ids = [
        format!("{base}bC"),
        format!("{base}bc"),
        format!("{base}Bc"),
        format!("{base}b_"),
        format!("{base}b-"),
        "a".repeat(63),
        "a".repeat(64),
        "A".repeat(128),
        "a".repeat(128),
    ];
    for (i, k) in ids.iter().enumerate() {
        assert!(p.store(&id(k), &data(i as u8), &meta()).await.is_ok(), "{k}");
    }
    for (i, k) in ids.iter().enumerate() {
        assert_eq!(p.retrieve(&id(k)).await.unwrap().data, data(i as u8), "{k}");
    }
    let mut want: Vec<CredentialId> = ids.iter().map(|k| id(k)).collect();
    want.sort();
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap(), want);
    cleanup(p.as_ref()).await;
}

/// A delete issued while Azure is still recovering our secret (recover started by an
/// operator just before) must not report success and leave the secret live afterwards.
#[tokio::test]
async fn a_delete_during_a_recover_leaves_no_live_secret() {
    let (ns, p) = fresh("delrec").await;
    let k = id("Racing");
    let name = name_in(&ns, &k);
    let c = raw(None);
    p.store(&k, &data(1), &meta()).await.unwrap();
    p.delete(&k).await.unwrap();
    for _ in 0..100 {
        if c.get_deleted_secret(&name, None).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.recover_deleted_secret(&name, None).await.expect("recover");
    let deleted = p.delete(&k).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let live = p.exists(&k).await.unwrap();
    assert!(
        !(deleted.is_ok() && live),
        "delete said {deleted:?} yet the secret is live again"
    );
    cleanup(p.as_ref()).await;
    purge(&c, &name).await;
}

/// Soft mode: a store after a delete recovers our secret first, so tags other tools added
/// before the delete survive on the new version too.
#[tokio::test]
async fn tags_other_tools_added_survive_a_store_after_a_soft_delete() {
    let (ns, p) = fresh("tagsback").await;
    let k = id("Back");
    let name = name_in(&ns, &k);
    let c = raw(None);
    p.store(&k, &data(1), &tagged(&[("tier", "1")])).await.unwrap();
    let mut tags: HashMap<String, String> = raw_tags(&c, &name).await.into_iter().collect();
    tags.insert("CostCenter".into(), "42".into());
    let update = UpdateSecretPropertiesParameters {
        tags: Some(tags),
        ..Default::default()
    };
    c.update_secret_properties(&name, update.try_into().unwrap(), None)
        .await
        .unwrap();
    p.delete(&k).await.unwrap();
    p.store(&k, &data(2), &tagged(&[("env", "prod")])).await.unwrap();
    let tags = raw_tags(&c, &name).await;
    assert_eq!(tags.get("CostCenter").map(String::as_str), Some("42"), "{tags:?}");
    assert_eq!(tags["env"], "prod");
    assert!(!tags.contains_key("tier"), "{tags:?}");
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(2));
    cleanup(p.as_ref()).await;
    purge(&c, &name).await;
}

/// A purge-mode delete that meets a soft delete still in progress (another client, in
/// soft mode, deleted the secret a moment before) waits for it and purges.
#[tokio::test]
async fn a_purge_mode_delete_during_a_soft_delete_purges() {
    let ns = unique("mixed").replace('_', "-");
    let soft = provider(config(&ns)).await;
    let purging = provider(AzureKeyVaultConfig {
        delete_mode: DeleteMode::Purge,
        ..config(&ns)
    })
    .await;
    let k = id("Mixed");
    let name = name_in(&ns, &k);
    soft.store(&k, &data(1), &meta()).await.unwrap();
    purging.exists(&k).await.unwrap();
    soft.delete(&k).await.unwrap();
    purging.delete(&k).await.unwrap();
    let c = raw(None);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        c.get_deleted_secret(&name, None).await.is_err(),
        "purge mode left the secret soft-deleted"
    );
}

/// A provider of vault `vault` with secret prefix `prefix-`, deleting in `mode`.
async fn in_vault(prefix: &str, vault: &str, mode: DeleteMode) -> Arc<dyn StorageProvider> {
    provider(AzureKeyVaultConfig {
        delete_mode: mode,
        ..config_with(prefix, Arc::new(StaticToken(token())), Some(vault))
    })
    .await
}

/// Polls until `name` is live in `vault` again (after a recover), then returns its value.
async fn live_value(vault: &str, name: &str) -> String {
    let c = raw(Some(vault));
    for _ in 0..100 {
        if let Ok(s) = c.get_secret(name, None).await {
            return s.into_model().unwrap().value.unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} never came back");
}

/// Another tool's secret swapped in between our GET and our DELETE (the emulator's hook
/// runs that write just before the DELETE) is recovered at once — in purge mode too, never
/// purged — and the delete reports `Conflict`.
#[tokio::test]
async fn a_foreign_secret_swapped_in_before_the_delete_is_recovered_and_reported() {
    for mode in [DeleteMode::Soft, DeleteMode::Purge] {
        let vault = own_vault("swap");
        let p = in_vault("swap", &vault, mode).await;
        let k = id("Swapped");
        let name = name_in("swap", &k);
        p.store(&k, &data(1), &meta()).await.unwrap();
        control(
            reqwest::Method::POST,
            "hooks",
            Some(json!({
                "vault": vault, "name": name, "method": "DELETE", "action": "set",
                "value": FOREIGN_VALUE, "tags": {"CostCenter": "42"},
            })),
        )
        .await;
        let e = p.delete(&k).await.expect_err("the DELETE hit another tool's secret");
        assert!(e.is_conflict(), "{mode:?}: {e}");
        assert_eq!(live_value(&vault, &name).await, FOREIGN_VALUE, "{mode:?}");
        let c = raw(Some(&vault));
        assert!(
            c.get_deleted_secret(&name, None).await.is_err(),
            "{mode:?}: left soft-deleted"
        );
        assert!(p.retrieve(&k).await.unwrap_err().is_conflict());
        c.delete_secret(&name, None).await.unwrap();
        purge(&c, &name).await;
    }
}

/// On a vault with purge protection (`recoveryLevel` without `Purgeable`), purge mode is
/// refused by `check()`, a delete stops after the soft delete with its own message (not a
/// role to assign), a later delete succeeds, and a store recovers instead of purging.
#[tokio::test]
async fn purge_protection_is_read_from_the_recovery_level() {
    let vault = own_vault("prot");
    let settings = control(
        reqwest::Method::POST,
        &format!("vaults/{vault}"),
        Some(json!({"purge_protection": true})),
    )
    .await;
    assert_eq!(settings["purge_protection"], true, "{settings}");
    let p = in_vault("prot", &vault, DeleteMode::Purge).await;
    let k = id("Kept");
    let name = name_in("prot", &k);
    p.store(&k, &data(1), &meta()).await.unwrap();
    let e = p.check().await.unwrap_err();
    let StorageError::Config(c) = &e else { panic!("{e:?}") };
    assert_eq!(c.field(), "delete_mode", "{e}");
    assert!(c.rule().contains("purge protection"), "{e}");
    in_vault("prot", &vault, DeleteMode::Soft)
        .await
        .check()
        .await
        .expect("soft mode fits");
    let e = p.delete(&k).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
    assert!(
        e.to_string().contains("purge protection") && !e.to_string().contains("assign"),
        "{e}"
    );
    assert!(!p.exists(&k).await.unwrap());
    let c = raw(Some(&vault));
    for _ in 0..100 {
        if c.get_deleted_secret(&name, None).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p.delete(&k).await.expect("nothing more to delete");
    p.store(&k, &data(2), &meta())
        .await
        .expect("a store recovers instead of purging");
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(2));
}

/// Firewall and private-link denials name the vault's network rules, not a role.
#[tokio::test]
async fn network_rule_denials_name_the_network_not_a_role() {
    let vault = own_vault("fw");
    let p = in_vault("fw", &vault, DeleteMode::Soft).await;
    p.check().await.unwrap();
    for inner in ["ForbiddenByFirewall", "ForbiddenByConnection"] {
        control(
            reqwest::Method::POST,
            "faults",
            Some(json!({"status": 403, "code": "Forbidden", "inner_code": inner, "count": 1, "vault": vault})),
        )
        .await;
        let e = p.retrieve(&id("walled")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        let m = e.to_string();
        assert!(
            m.contains("network rules") && m.contains(inner) && !m.contains("assign"),
            "{m}"
        );
    }
}

/// `check()` proves a read, not only a list: the Key Vault Reader role (metadata only) fails
/// it naming `getSecret`; `exists` still answers for that role, from the versions.
#[tokio::test]
async fn check_proves_a_read_and_a_metadata_reader_fails_it() {
    let (ns, full) = fresh("metaread").await;
    let k = id("Seen");
    full.store(&k, &data(1), &meta()).await.unwrap();
    let token = emulator_var("NEBULA_TEST_AZURE_METADATA_TOKEN", "azure");
    let reader = provider(config_with(&ns, Arc::new(StaticToken(token)), None)).await;
    let e = reader.check().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("getSecret"), "{e}");
    assert!(
        reader.exists(&k).await.unwrap(),
        "exists lists versions for a metadata reader"
    );
    assert!(!reader.exists(&id("absent")).await.unwrap());
    let read_only = emulator_var("NEBULA_TEST_AZURE_READONLY_TOKEN", "azure");
    provider(config_with(&ns, Arc::new(StaticToken(read_only)), None))
        .await
        .check()
        .await
        .expect("Secrets User passes");
    cleanup(full.as_ref()).await;
}

/// A wait for a delete or recover in progress that gives up is `Unavailable` with the last
/// 409 as its source.
#[tokio::test]
async fn a_wait_that_gives_up_keeps_the_last_409_as_its_source() {
    let vault = own_vault("busy");
    let mut c = config_with("busy", Arc::new(StaticToken(token())), Some(&vault));
    c.retry.max_retries = 0;
    c.timeouts.write_ms = 1_000;
    let p = provider(c).await;
    let k = id("Busy");
    let name = name_in("busy", &k);
    control(
        reqwest::Method::POST,
        "faults",
        Some(json!({
            "status": 409, "code": "Conflict", "inner_code": "ObjectIsBeingDeleted", "count": 100,
            "method": "PUT", "path": format!("/secrets/{name}"), "vault": vault,
        })),
    )
    .await;
    let e = p.store(&k, &data(1), &meta()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let source = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<azure_core::Error>())
        .unwrap_or_else(|| panic!("no 409 source: {e:?}"));
    let azure_core::error::ErrorKind::HttpResponse { status, .. } = source.kind() else {
        panic!("{source:?}")
    };
    assert_eq!(u16::from(*status), 409);
}

/// Purge refused for lack of the purge permission names the role, unlike purge protection.
#[tokio::test]
async fn a_purge_the_role_lacks_names_the_role() {
    let vault = own_vault("nopurge");
    let token = emulator_var("NEBULA_TEST_AZURE_NOPURGE_TOKEN", "azure");
    let p = provider(AzureKeyVaultConfig {
        delete_mode: DeleteMode::Purge,
        ..config_with("nopurge", Arc::new(StaticToken(token)), Some(&vault))
    })
    .await;
    let k = id("Stuck");
    p.store(&k, &data(1), &meta()).await.unwrap();
    let e = p.delete(&k).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.to_string().contains("purge"), "{e}");
}

/// A store of ours (another replica's) that lands between the delete's tombstone and its
/// DELETE is soft-deleted as the newest version; once the delete reports, a recover
/// (Azure's, or ours before the next store) must not serve that record: the delete makes
/// sure the version it soft-deleted is a tombstone. Soft mode, and purge mode on a vault
/// with purge protection (where the soft-deleted secret stays).
#[tokio::test]
async fn a_store_between_the_tombstone_and_the_delete_is_never_recovered_as_live() {
    for (mode, protected) in [(DeleteMode::Soft, false), (DeleteMode::Purge, true)] {
        let vault = own_vault("late");
        if protected {
            control(
                reqwest::Method::POST,
                &format!("vaults/{vault}"),
                Some(json!({"purge_protection": true})),
            )
            .await;
        }
        let p = in_vault("late", &vault, mode).await;
        let k = id("Late");
        let name = name_in("late", &k);
        p.store(&k, &data(1), &tagged(&[("gen", "1")])).await.unwrap();
        let c = raw(Some(&vault));
        let ours = c.get_secret(&name, None).await.unwrap().into_model().unwrap();
        // The other replica's store, just before our DELETE (after our tombstone PUT).
        control(
            reqwest::Method::POST,
            "hooks",
            Some(json!({
                "vault": vault, "name": name, "method": "DELETE", "action": "set",
                "value": ours.value.clone().unwrap(), "tags": ours.tags.clone().unwrap(),
                "content_type": CONTENT_TYPE,
            })),
        )
        .await;
        match p.delete(&k).await {
            Ok(()) => assert!(!protected),
            Err(e) => assert!(protected && e.to_string().contains("purge protection"), "{mode:?}: {e}"),
        }
        let mut recovered = false;
        for _ in 0..100 {
            if c.recover_deleted_secret(&name, None).await.is_ok() {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(recovered, "Azure's recover succeeded");
        let live = live_value(&vault, &name).await;
        assert!(
            p.retrieve(&k).await.unwrap_err().is_not_found(),
            "{mode:?}: a record whose delete was reported is live again ({} bytes)",
            live.len()
        );
        assert!(!p.exists(&k).await.unwrap());
        p.store(&k, &data(2), &meta()).await.unwrap();
        if !protected {
            cleanup(p.as_ref()).await;
        }
    }
}

/// When the recover of another tool's secret our DELETE hit is refused, the error says
/// that secret is soft-deleted and must be recovered, not only which role is missing.
#[tokio::test]
async fn a_refused_recover_of_a_foreign_secret_says_it_is_left_deleted() {
    let vault = own_vault("norec");
    let p = in_vault("norec", &vault, DeleteMode::Soft).await;
    let k = id("Swapped");
    let name = name_in("norec", &k);
    p.store(&k, &data(1), &meta()).await.unwrap();
    control(
        reqwest::Method::POST,
        "hooks",
        Some(json!({
            "vault": vault, "name": name, "method": "DELETE", "action": "set",
            "value": FOREIGN_VALUE, "tags": {"CostCenter": "42"},
        })),
    )
    .await;
    control(
        reqwest::Method::POST,
        "faults",
        Some(json!({
            "vault": vault, "method": "POST", "path": format!("/deletedsecrets/{name}/recover"),
            "status": 403, "inner_code": "ForbiddenByRbac", "count": 100,
            "message": "Caller is not authorized to perform action on resource.\r\nAction: 'Microsoft.KeyVault/vaults/secrets/recover/action'",
        })),
    )
    .await;
    let e = p.delete(&k).await.expect_err("the DELETE hit another tool's secret");
    control(reqwest::Method::DELETE, "faults", None).await;
    println!("{e}");
    assert!(e.is_conflict(), "{e}");
    assert!(e.to_string().contains("another tool"), "{e}");
    assert!(e.to_string().contains("soft-deleted"), "{e}");
    let c = raw(Some(&vault));
    purge(&c, &name).await;
}

/// A secret of ours deleted without a tombstone (by an earlier release, or by hand) comes
/// back as it was when a store recovers it, and readers see that record until the store's
/// write lands: so once such a recover is started, the store tries its write every 100 ms
/// (not 100 ms doubling to 2 s, which served the deleted record for ~1.4 s of a 2 s recover).
#[tokio::test]
async fn a_store_over_a_record_deleted_without_a_tombstone_writes_right_after_the_recover() {
    let vault = own_vault("untomb");
    control(
        reqwest::Method::POST,
        &format!("vaults/{vault}"),
        Some(json!({"delete_delay_ms": 0, "recover_delay_ms": 3000})),
    )
    .await;
    let p = in_vault("ut", &vault, DeleteMode::Soft).await;
    let k = id("Old");
    let name = name_in("ut", &k);
    p.store(&k, &data(1), &meta()).await.unwrap();
    let c = raw(Some(&vault));
    c.delete_secret(&name, None).await.unwrap();
    for _ in 0..100 {
        if c.get_deleted_secret(&name, None).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    control(reqwest::Method::DELETE, "requests", None).await;
    p.store(&k, &data(2), &meta()).await.unwrap();
    let log = requests(&vault).await;
    let recover = log
        .iter()
        .position(|(m, path, _)| m == "POST" && path.ends_with("/recover"))
        .expect("the store recovered");
    let tries = log[recover..]
        .iter()
        .filter(|(m, _, status)| m == "PUT" && *status == 409)
        .count();
    assert!(tries >= 10, "writes tried during a 3 s recover: {tries}: {log:?}");
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(2));
    cleanup(p.as_ref()).await;
}

/// Another tool's secret written between the delete's GET and its tombstone is not buried
/// under the tombstone: the tombstone marks the version the GET read (by its version id), so
/// the DELETE's answer shows the other tool's secret, which is recovered, intact, and the
/// delete reports `Conflict`. (A tombstone written as a new version buried it: 33 of 150
/// deletes met by such a write, measured on the emulator.)
#[tokio::test]
async fn a_foreign_secret_written_before_the_tombstone_is_never_buried() {
    let vault = own_vault("bury");
    let p = in_vault("bury", &vault, DeleteMode::Soft).await;
    let k = id("Buried");
    let name = name_in("bury", &k);
    p.store(&k, &data(1), &meta()).await.unwrap();
    // Just before whichever request writes the tombstone (a set, or an update).
    for method in ["PUT", "PATCH"] {
        control(
            reqwest::Method::POST,
            "hooks",
            Some(json!({
                "vault": vault, "name": name, "method": method, "action": "set",
                "value": FOREIGN_VALUE, "tags": {"CostCenter": "42"},
            })),
        )
        .await;
    }
    let outcome = p.delete(&k).await;
    control(reqwest::Method::DELETE, "hooks", None).await;
    let e = outcome.expect_err("the other tool's secret was deleted");
    assert!(e.is_conflict(), "{e}");
    assert_eq!(live_value(&vault, &name).await, FOREIGN_VALUE);
    let c = raw(Some(&vault));
    assert_eq!(
        raw_tags(&c, &name).await,
        BTreeMap::from([("CostCenter".to_string(), "42".to_string())])
    );
    c.delete_secret(&name, None).await.unwrap();
    purge(&c, &name).await;
}

/// A deleted credential whose current version was disabled (the delete makes that version
/// the tombstone, and it stays disabled) reads as absent after a recover, as `exists`
/// and `list` say, not as "disabled"; a store writes over it.
#[tokio::test]
async fn a_disabled_version_made_a_tombstone_reads_as_absent_after_a_recover() {
    let vault = own_vault("disdel");
    let p = in_vault("dd", &vault, DeleteMode::Soft).await;
    let k = id("Dis");
    let name = name_in("dd", &k);
    p.store(&k, &data(1), &meta()).await.unwrap();
    let c = raw(Some(&vault));
    let disable = UpdateSecretPropertiesParameters {
        secret_attributes: Some(SecretAttributes {
            enabled: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    c.update_secret_properties(&name, disable.try_into().unwrap(), None)
        .await
        .unwrap();
    p.delete(&k).await.unwrap();
    for _ in 0..100 {
        if c.recover_deleted_secret(&name, None).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Recovered once the GET answers 403 (disabled), not 404.
    for _ in 0..100 {
        match c.get_secret(&name, None).await {
            Err(e) if e.http_status() == Some(azure_core::http::StatusCode::NotFound) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => break,
        }
    }
    let e = p.retrieve(&k).await.map(drop).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(!p.exists(&k).await.unwrap());
    assert!(p.list(&CredentialFilter::new()).await.unwrap().is_empty());
    p.store(&k, &data(2), &meta()).await.unwrap();
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(2));
    cleanup(p.as_ref()).await;
}

/// A delete whose secret another client deletes between its GET and its tombstone (two
/// deletes of one id at once) succeeds: the tombstone's update meets 404 or 409, and the
/// DELETE that follows answers for the secret's state.
#[tokio::test]
async fn a_delete_that_meets_a_concurrent_delete_before_its_tombstone_succeeds() {
    let vault = own_vault("dd2");
    let p = in_vault("dd2", &vault, DeleteMode::Soft).await;
    let k = id("Twice");
    let name = name_in("dd2", &k);
    p.store(&k, &data(1), &meta()).await.unwrap();
    control(
        reqwest::Method::POST,
        "hooks",
        Some(json!({"vault": vault, "name": name, "method": "PATCH", "action": "delete"})),
    )
    .await;
    let outcome = p.delete(&k).await;
    control(reqwest::Method::DELETE, "hooks", None).await;
    outcome.expect("the secret is deleted, as asked");
    assert!(!p.exists(&k).await.unwrap());
}

/// `revision` is one GET of the latest version, as `retrieve` (Key Vault has no call for
/// the latest version's properties alone: listing versions costs a page per 25 versions
/// and cannot order versions created in the same second; see the crate README), counted in
/// the emulator's request log: it reports the version id `retrieve` reports, follows every
/// store (ours and another tool's), and answers what `retrieve` answers for a foreign
/// secret (`Conflict`) and a deleted or missing one (`NotFound`).
#[tokio::test]
async fn revision_is_one_get_of_the_latest_version_and_matches_retrieve() {
    let vault = own_vault("rev");
    let ns = "rev";
    let p = in_vault(ns, &vault, DeleteMode::Soft).await;
    let c = raw(Some(&vault));
    let k = id("Revised");
    let name = name_in(ns, &k);
    let log_tail = |log: Vec<(String, String, u16)>, n: usize| -> Vec<(String, String, u16)> {
        log[log.len().saturating_sub(n)..].to_vec()
    };
    let mut seen = Vec::new();
    for fill in 1..=3u8 {
        let written = p.store(&k, &data(fill), &meta()).await.unwrap();
        let before = requests(&vault).await.len();
        let revision = p.revision(&k).await.unwrap();
        let log = requests(&vault).await;
        assert_eq!(log.len(), before + 1, "one request: {:?}", log_tail(log, 3));
        let (method, path, status) = log.last().unwrap();
        assert_eq!((method.as_str(), *status), ("GET", 200));
        assert!(
            path.trim_end_matches('/')
                .eq_ignore_ascii_case(&format!("/secrets/{name}")),
            "the latest version: {path}"
        );
        assert_eq!(revision, written);
        assert_eq!(p.retrieve(&k).await.unwrap().revision, revision);
        assert!(!seen.contains(&revision));
        seen.push(revision);
    }
    // Another tool sets a new version (keeping our tags): a new revision, as retrieve sees.
    let tags = c.get_secret(&name, None).await.unwrap().into_model().unwrap().tags;
    let params = SetSecretParameters {
        value: Some("set by hand".into()),
        content_type: Some(CONTENT_TYPE.into()),
        tags,
        ..SetSecretParameters::default()
    };
    let set = c
        .set_secret(&name, params.try_into().unwrap(), None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    let revision = p.revision(&k).await.unwrap();
    assert!(set.id.unwrap().ends_with(&format!("/{}", revision.as_str())));
    // Deleted, then recovered by Azure: the tombstone reads as absent.
    p.store(&k, &data(4), &meta()).await.unwrap();
    p.delete(&k).await.unwrap();
    assert!(p.revision(&k).await.unwrap_err().is_not_found());
    let mut recovered = false;
    for _ in 0..100 {
        if c.recover_deleted_secret(&name, None).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "Azure's recover succeeded");
    live_value(&vault, &name).await;
    assert!(p.revision(&k).await.unwrap_err().is_not_found());
    assert!(p.retrieve(&k).await.unwrap_err().is_not_found());
    assert!(p.revision(&id("Never_Stored")).await.unwrap_err().is_not_found());
    // A foreign secret under our name.
    let planted = id("Planted");
    let params = SetSecretParameters {
        value: Some(FOREIGN_VALUE.into()),
        ..SetSecretParameters::default()
    };
    c.set_secret(&name_in(ns, &planted), params.try_into().unwrap(), None)
        .await
        .unwrap();
    let err = p.revision(&planted).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert!(p.retrieve(&planted).await.unwrap_err().is_conflict());
}

/// Another writer (a second provider over the same prefix) rotates a credential a cached
/// store serves: the watch fires within `poll_ms` plus jitter, `refresh(seen)` and the end
/// of `fresh_ms` each bring the new value, and a delete is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_another_writer_rotate_and_delete() {
    let ns = unique("watch").replace('_', "-");
    let watched =
        nebula_credential_tests::watch::another_writer_rotates(StorageConfig::Azure(config(&ns)), &id("Rotated")).await;
    println!(
        "azure: watch fired {:?} after the rotation (poll {:?})",
        watched.fired_after, watched.poll
    );
}
