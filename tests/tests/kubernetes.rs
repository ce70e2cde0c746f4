//! The Kubernetes Secrets provider against a real kube-apiserver (with RBAC), through
//! `open()`'s full layer stack: the conformance suite (each case in a namespace of its own,
//! with foreign Secrets planted by kube-rs directly, other tools' labels and annotations,
//! the restricted user, a bogus token and a kubeconfig without the CA), then what only
//! Kubernetes shows: labels and annotations seen by other clients, server-side label
//! selection, RBAC confinement to a namespace, kubeconfig contexts, and interop with the
//! Kubernetes project's own Python client; the kubeconfig's transport rules (no
//! `insecure-skip-tls-verify`, no debug override URL), Secrets held by another tool's
//! finalizer, namespace proof in `check` and `list`, and `immutable` Secrets.
#![cfg(feature = "kubernetes")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use nebula_credential::kubernetes::{
    ID_ANNOTATION, KubernetesSecretsConfig, KubernetesSecretsProvider, MANAGED_BY_LABEL, SECRET_TYPE, secret_name,
};
use nebula_credential::secrecy::ExposeSecret;
use nebula_credential::{
    CredentialFilter, CredentialId, CredentialStore, EncryptionKey, ErrorKind, Keyring, Precondition, RetryPolicy,
    Revision, StorageConfig, StorageError, StorageMetrics, StorageProvider, Tags, Timeouts, open, open_with_metrics,
};
use nebula_credential_core::conformance::{data, id, meta, tagged};
use nebula_credential_tests::kubernetes::{
    self, NAME as BACKEND, PREFIX, admin_client, admin_kubeconfig, cluster, config, ensure_namespace, foreign_secret,
    fresh, is_foreign_intact, provider, secrets,
};
use nebula_credential_tests::{cleanup, emulator_var, unique};

nebula_credential_core::conformance_tests!(
    kubernetes_via_open,
    |namespace: String| async move {
        ensure_namespace(&namespace).await;
        provider(config(&namespace)).await
    },
    foreign = kubernetes::Foreign,
    read_only = kubernetes::ReadOnly,
    rejected = kubernetes::Rejected,
    untrusted_ca = kubernetes::UntrustedCa,
    other_tools = kubernetes::OtherTools,
);

#[tokio::test]
async fn a_secret_is_visible_in_its_namespace_only() {
    let (a_ns, a) = fresh("iso-a").await;
    let (b_ns, b) = fresh("iso-b").await;
    let k = id("Only_In_A");
    a.store(&k, &data(1), &meta()).await.unwrap();
    let name = secret_name(PREFIX, &k);
    assert!(secrets(&a_ns).await.get_opt(&name).await.unwrap().is_some());
    assert!(secrets(&b_ns).await.get_opt(&name).await.unwrap().is_none());
    assert!(!b.exists(&k).await.unwrap());
    assert!(b.list(&CredentialFilter::new()).await.unwrap().is_empty());
    assert!(matches!(b.retrieve(&k).await, Err(StorageError::NotFound { .. })));
    cleanup(a.as_ref()).await;
}

/// The Secret carries our type, the managed-by labels, one label per tag (a digest for a
/// value a label cannot hold) and the id annotation. (That an overwrite follows our tags
/// and keeps other tools' labels and annotations is the conformance case
/// `overwrite_keeps_tags_other_tools_added`.)
#[tokio::test]
async fn a_secret_carries_our_type_labels_and_id_annotation() {
    let (ns, p) = fresh("labels").await;
    let k = id("Labelled");
    let name = secret_name(PREFIX, &k);
    p.store(
        &k,
        &data(1),
        &tagged(&[("env", "prod"), ("tier", "1"), ("city", "Zürich")]),
    )
    .await
    .unwrap();
    let api = secrets(&ns).await;
    let s = api.get(&name).await.unwrap();
    assert_eq!(s.type_.as_deref(), Some(SECRET_TYPE));
    let labels = s.metadata.labels.clone().unwrap();
    assert_eq!(labels[MANAGED_BY_LABEL], "nebula-credential");
    assert_eq!(labels["app.kubernetes.io/name"], "nebula-credential");
    assert_eq!(labels["app.kubernetes.io/component"], "credential");
    assert_eq!(labels["tag.nebula-credential.io/env"], "prod");
    assert_eq!(labels["tag.nebula-credential.io/tier"], "1");
    assert!(labels["tag.nebula-credential.io/city"].starts_with("sha256-"));
    assert_eq!(s.metadata.annotations.as_ref().unwrap()[ID_ANNOTATION], "Labelled");

    cleanup(p.as_ref()).await;
}

/// `list` sends a label selector and the API server returns only the matching Secrets:
/// the raw list with the provider's selector counts exactly the matches.
#[tokio::test]
async fn list_filters_tags_on_the_server() {
    let ns = unique("selector");
    ensure_namespace(&ns).await;
    let bare = KubernetesSecretsProvider::new(config(&ns)).await.unwrap();
    for i in 0..12 {
        let team = if i % 4 == 0 { "Zürich team" } else { "other" };
        bare.store(&id(&format!("item_{i:02}")), &data(i), &tagged(&[("team", team)]))
            .await
            .unwrap();
    }
    let filter = CredentialFilter::new().tag("team", "Zürich team");
    let selector = bare.label_selector(&filter);
    assert!(selector.contains("tag.nebula-credential.io/team=sha256-"), "{selector}");
    let raw = secrets(&ns)
        .await
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap();
    assert_eq!(raw.items.len(), 3, "the server returned only the matches");
    let all = secrets(&ns)
        .await
        .list(&ListParams::default().labels(&bare.label_selector(&CredentialFilter::new())))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 12);
    assert_eq!(
        bare.list(&filter).await.unwrap(),
        vec![id("item_00"), id("item_04"), id("item_08")]
    );
    cleanup(&bare).await;
}

#[tokio::test]
async fn list_pages_through_more_than_one_page() {
    let ns = unique("pages");
    ensure_namespace(&ns).await;
    let p = provider(KubernetesSecretsConfig {
        list_page_size: 7,
        ..config(&ns)
    })
    .await;
    for i in 0..30 {
        p.store(&id(&format!("Page_{i:02}")), &data(i), &meta()).await.unwrap();
    }
    let ids = p.list(&CredentialFilter::new()).await.unwrap();
    let expected: Vec<CredentialId> = (0..30).map(|i| id(&format!("Page_{i:02}"))).collect();
    assert_eq!(ids, expected, "5 pages of 7, sorted, original ids");
    cleanup(p.as_ref()).await;
}

#[tokio::test]
async fn a_foreign_secret_under_our_prefix_is_left_alone() {
    let (ns, p) = fresh("foreign").await;
    let k = id("foreign");
    let name = secret_name(PREFIX, &k);
    let api = secrets(&ns).await;
    api.create(&PostParams::default(), &foreign_secret(&name))
        .await
        .unwrap();
    p.store(&id("mine"), &data(1), &meta()).await.unwrap();
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap(), vec![id("mine")]);
    for (op, outcome) in [
        ("exists", p.exists(&k).await.map(drop)),
        ("retrieve", p.retrieve(&k).await.map(drop)),
        ("store", p.store(&k, &data(2), &meta()).await.map(drop)),
        ("delete", p.delete(&k).await),
    ] {
        let err = outcome.expect_err(op);
        assert!(err.is_conflict(), "{op}: {err}");
        assert!(err.to_string().contains(&name), "{op}: {err}");
    }
    assert!(is_foreign_intact(&api.get(&name).await.unwrap()));
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    cleanup(p.as_ref()).await;
}

/// The restricted user may read Secrets in its namespace only: `check`, `exists` and `list`
/// work there, and reads elsewhere are denied naming `list` / `get`. (Its denied writes are
/// the conformance case `read_only_identity_is_permission_denied`.)
#[tokio::test]
async fn the_restricted_user_is_confined_to_its_namespace_naming_the_verb() {
    let restricted = emulator_var("NEBULA_TEST_KUBECONFIG_RESTRICTED", BACKEND);
    let own_ns = emulator_var("NEBULA_TEST_KUBE_RESTRICTED_NAMESPACE", BACKEND);
    let metrics = Arc::new(StorageMetrics::new());
    let c = KubernetesSecretsConfig {
        namespace: Some(own_ns.clone()),
        kubeconfig_path: Some(restricted.clone().into()),
        ..KubernetesSecretsConfig::default()
    };
    let p = open_with_metrics(&StorageConfig::Kubernetes(c.clone()), metrics.clone())
        .await
        .unwrap();
    p.check()
        .await
        .expect("list is allowed; without `create` the namespace probe is skipped");
    assert!(!p.exists(&id("nothing")).await.unwrap(), "get is allowed");
    assert!(
        p.list(&CredentialFilter::new()).await.unwrap().is_empty(),
        "list is allowed; the namespace probe it cannot make is skipped"
    );
    let elsewhere = provider(KubernetesSecretsConfig {
        namespace: Some("default".into()),
        ..c
    })
    .await;
    let err = elsewhere.list(&CredentialFilter::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(
        err.to_string()
            .contains("grant `list` on `secrets` in namespace `default`"),
        "{err}"
    );
    let err = elsewhere.retrieve(&id("x")).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("grant `get` on `secrets` in namespace `default`"),
        "{err}"
    );
}

fn write_kubeconfig(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

/// With two contexts in one kubeconfig, `context` picks one, and its namespace is the
/// default when `namespace` is unset.
#[tokio::test]
async fn the_configured_context_of_a_two_context_kubeconfig_is_used() {
    let (one, two) = (unique("ctx-one"), unique("ctx-two"));
    ensure_namespace(&one).await;
    ensure_namespace(&two).await;
    let mut kubeconfig = Kubeconfig::read_from(admin_kubeconfig()).unwrap();
    let base = kubeconfig.contexts[0].clone();
    kubeconfig.contexts = [("one", &one), ("two", &two)]
        .into_iter()
        .map(|(name, ns)| {
            let mut c = base.clone();
            c.name = name.to_string();
            c.context.as_mut().unwrap().namespace = Some(ns.clone());
            c
        })
        .collect();
    kubeconfig.current_context = Some("one".into());
    let dir = tempfile::tempdir().unwrap();
    let path = write_kubeconfig(&dir, &serde_json::to_string(&kubeconfig).unwrap());
    let c = KubernetesSecretsConfig {
        kubeconfig_path: Some(path),
        context: Some("two".into()),
        ..KubernetesSecretsConfig::default()
    };
    let bare = KubernetesSecretsProvider::new(c.clone()).await.unwrap();
    assert_eq!(bare.namespace(), two);
    let p = provider(c.clone()).await;
    let k = id("In_Two");
    p.store(&k, &data(1), &meta()).await.unwrap();
    let name = secret_name(PREFIX, &k);
    assert!(secrets(&two).await.get_opt(&name).await.unwrap().is_some());
    assert!(secrets(&one).await.get_opt(&name).await.unwrap().is_none());
    let missing = KubernetesSecretsProvider::new(KubernetesSecretsConfig {
        context: Some("three".into()),
        ..c
    })
    .await
    .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::Config);
    assert!(missing.to_string().contains("`context`"), "{missing}");
    cleanup(p.as_ref()).await;
}

/// The Kubernetes project's own Python client reads the Secret we wrote: our type,
/// labels and annotations, the record in one data key, and no plaintext anywhere.
#[tokio::test]
async fn the_python_kubernetes_client_sees_our_secret_without_plaintext() {
    let python = emulator_var("NEBULA_TEST_KUBE_PYTHON", BACKEND);
    let (ns, p) = fresh("interop").await;
    let store = CredentialStore::new(p.clone(), Keyring::new(EncryptionKey::generate()));
    let k = id("Interop_Key");
    let plaintext = "pl41ntext-sk_live_0123456789";
    store
        .put(
            &k,
            plaintext.as_bytes(),
            Tags::from([("env".to_string(), "prod".to_string())]),
        )
        .await
        .unwrap();
    let script = r#"
import base64, json, sys
from kubernetes import client, config
config.load_kube_config(config_file=sys.argv[1])
s = client.CoreV1Api().read_namespaced_secret(sys.argv[3], sys.argv[2])
print(json.dumps({
    "type": s.type,
    "labels": s.metadata.labels,
    "annotations": s.metadata.annotations,
    "data": {k: base64.b64decode(v).decode("latin-1") for k, v in (s.data or {}).items()},
}))
"#;
    let name = secret_name(PREFIX, &k);
    let args = [script.to_string(), admin_kubeconfig(), ns.clone(), name];
    let out = tokio::task::spawn_blocking(move || std::process::Command::new(&python).arg("-c").args(&args).output())
        .await
        .unwrap()
        .expect("run the Python kubernetes client");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["type"], SECRET_TYPE);
    assert_eq!(seen["labels"][MANAGED_BY_LABEL], "nebula-credential");
    assert_eq!(seen["labels"]["tag.nebula-credential.io/env"], "prod");
    assert_eq!(seen["annotations"][ID_ANNOTATION], "Interop_Key");
    let data = seen["data"].as_object().unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["record"]);
    let record: serde_json::Value = serde_json::from_str(data["record"].as_str().unwrap()).unwrap();
    assert_eq!(record["id"], "Interop_Key");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(plaintext),
        "plaintext visible"
    );
    assert_eq!(store.get(&k).await.unwrap().expose_secret(), plaintext.as_bytes());
    cleanup(p.as_ref()).await;
}

/// A namespace that does not exist: `check`, `list` and a store say it is missing (a LIST
/// there answers 200 with no items, so `check` and an empty `list` prove the namespace with
/// a server-side dry-run create, which writes nothing); a read finds nothing.
#[tokio::test]
async fn a_missing_namespace_is_named() {
    let ns = unique("absent");
    let p = provider(config(&ns)).await;
    assert!(matches!(p.retrieve(&id("k")).await, Err(StorageError::NotFound { .. })));
    let missing = format!("namespace `{ns}` does not exist");
    for (op, err) in [
        ("check", p.check().await.unwrap_err()),
        ("list", p.list(&CredentialFilter::new()).await.unwrap_err()),
        ("store", p.store(&id("k"), &data(1), &meta()).await.unwrap_err()),
    ] {
        assert!(!err.is_retryable(), "{op}: {err}");
        assert!(err.to_string().contains(&missing), "{op}: {err}");
    }

    // Once it exists, `check` passes and the dry runs left nothing behind.
    ensure_namespace(&ns).await;
    p.check().await.expect("check in an existing namespace");
    assert!(p.list(&CredentialFilter::new()).await.unwrap().is_empty());
    let all = secrets(&ns).await.list(&ListParams::default()).await.unwrap();
    assert!(all.items.is_empty(), "a dry run wrote a Secret");
}

/// A Secret of another `type` that carries our managed-by label and id annotation (a
/// copy, or a forgery) is not ours: it is never read, listed, overwritten or deleted.
#[tokio::test]
async fn a_secret_of_another_type_with_our_label_is_left_alone() {
    let (ns, p) = fresh("other-type").await;
    let k = id("Typed_Key");
    let name = secret_name(PREFIX, &k);
    // A real Secret of ours, then a copy of its metadata and data under another type.
    p.store(&k, &data(1), &tagged(&[("env", "prod")])).await.unwrap();
    let api = secrets(&ns).await;
    let ours = api.get(&name).await.unwrap();
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    let copy = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: ours.metadata.labels.clone(),
            annotations: ours.metadata.annotations.clone(),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: ours.data.clone(),
        ..Secret::default()
    };
    api.create(&PostParams::default(), &copy).await.unwrap();
    assert_eq!(
        p.list(&CredentialFilter::new()).await.unwrap(),
        Vec::<CredentialId>::new()
    );
    for (op, outcome) in [
        ("retrieve", p.retrieve(&k).await.map(drop)),
        ("store", p.store(&k, &data(2), &meta()).await.map(drop)),
        ("delete", p.delete(&k).await),
    ] {
        let err = outcome.expect_err(op);
        assert!(err.is_conflict(), "{op}: {err}");
        assert!(err.to_string().contains(&name), "{op}: {err}");
    }
    let still = api.get(&name).await.expect("the Opaque Secret is still there");
    assert_eq!(still.type_.as_deref(), Some("Opaque"));
    assert_eq!(still.data, ours.data);
    api.delete(&name, &DeleteParams::default()).await.unwrap();
}

/// The admin kubeconfig with its cluster changed by `edit`, written to `dir`.
fn edited_admin_kubeconfig(
    dir: &tempfile::TempDir,
    edit: impl FnOnce(&mut kube::config::Cluster),
) -> std::path::PathBuf {
    let mut kubeconfig = Kubeconfig::read_from(admin_kubeconfig()).unwrap();
    edit(kubeconfig.clusters[0].cluster.as_mut().unwrap());
    write_kubeconfig(dir, &serde_json::to_string(&kubeconfig).unwrap())
}

/// kube honours `insecure-skip-tls-verify: true` (the admin token would reach any server
/// presenting any certificate); the provider refuses the kubeconfig at open, naming the file
/// and the context, although the server it names would answer.
#[tokio::test]
async fn insecure_skip_tls_verify_is_refused_naming_the_kubeconfig_and_context() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited_admin_kubeconfig(&dir, |c| {
        c.certificate_authority_data = None;
        c.insecure_skip_tls_verify = Some(true);
    });
    // kube alone connects with it.
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let insecure = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    assert!(insecure.accept_invalid_certs);
    let raw: Api<Secret> = Api::namespaced(Client::try_from(insecure).unwrap(), "default");
    raw.list(&ListParams::default().limit(1))
        .await
        .expect("kube skips verification");

    let err = open(&StorageConfig::Kubernetes(KubernetesSecretsConfig {
        namespace: Some("default".into()),
        kubeconfig_path: Some(path.clone()),
        ..KubernetesSecretsConfig::default()
    }))
    .await
    .map(drop)
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let m = err.to_string();
    for part in [
        "`kubeconfig_path`",
        &path.display().to_string(),
        "context \"nebula\"",
        "insecure-skip-tls-verify: true",
        "certificate-authority-data",
    ] {
        assert!(m.contains(part), "{part:?} missing from: {m}");
    }
}

/// Set in a child process of this test binary to the name of the test it runs.
const CHILD: &str = "NEBULA_K8S_TEST_CHILD";

/// With `KUBECONFIG` naming the admin kubeconfig and `KUBE_RS_DEBUG_OVERRIDE_URL` naming a
/// listener of ours, a provider without `kubeconfig_path` talks to the real API server and
/// the listener sees no connection (kube's `Config::infer` would send the token there).
#[tokio::test]
async fn kube_debug_override_url_is_not_honoured() {
    const NAME: &str = "kube_debug_override_url_is_not_honoured";
    if std::env::var(CHILD).is_ok_and(|v| v == NAME) {
        let ns = std::env::var("NEBULA_TEST_CHILD_NAMESPACE").unwrap();
        let p = provider(KubernetesSecretsConfig {
            namespace: Some(ns.clone()),
            timeouts: Timeouts {
                read_ms: 3_000,
                write_ms: 3_000,
            },
            ..KubernetesSecretsConfig::default()
        })
        .await;
        let k = id("Through_The_Kubeconfig");
        p.store(&k, &data(1), &meta()).await.expect("store on the real server");
        assert_eq!(p.retrieve(&k).await.unwrap().data, data(1));
        assert!(
            secrets(&ns)
                .await
                .get_opt(&secret_name(PREFIX, &k))
                .await
                .unwrap()
                .is_some()
        );
        p.delete(&k).await.unwrap();
        return;
    }
    let ns = unique("override");
    ensure_namespace(&ns).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let override_url = format!("http://{}", listener.local_addr().unwrap());
    let diverted = Arc::new(AtomicUsize::new(0));
    let seen = diverted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let exe = std::env::current_exe().unwrap();
    let envs = [
        (CHILD, NAME.to_string()),
        ("KUBECONFIG", admin_kubeconfig()),
        ("KUBE_RS_DEBUG_OVERRIDE_URL", override_url),
        ("NEBULA_TEST_CHILD_NAMESPACE", ns),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .envs(envs)
            .output()
    })
    .await
    .unwrap()
    .expect("run the test binary");
    assert!(
        out.status.success(),
        "the child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        diverted.load(Ordering::SeqCst),
        0,
        "a connection went to the override URL"
    );
}

/// The label of the finalizer another tool holds our Secret with.
const HOLD: &str = "example.com/hold";

/// Another tool's finalizer keeps a deleted Secret (with `deletionTimestamp`) readable on
/// the server: the provider reads it as absent, `delete` is `Ok`, a store never writes into
/// it (it would be acknowledged, then vanish with the object), and a store that waits while
/// the finalizer goes creates the Secret anew.
#[tokio::test]
async fn a_secret_held_by_a_foreign_finalizer_is_absent_and_never_written_into() {
    let (ns, p) = fresh("finalizer").await;
    let k = id("Held_Key");
    let name = secret_name(PREFIX, &k);
    let api = secrets(&ns).await;
    p.store(&k, &data(1), &tagged(&[("env", "prod")])).await.unwrap();
    let hold = serde_json::json!({"metadata": {"finalizers": [HOLD]}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&hold))
        .await
        .unwrap();

    p.delete(&k).await.expect("delete while a finalizer holds it");
    let dying = api.get(&name).await.unwrap();
    assert!(dying.metadata.deletion_timestamp.is_some(), "the finalizer keeps it");
    assert!(matches!(p.retrieve(&k).await, Err(StorageError::NotFound { .. })));
    assert!(!p.exists(&k).await.unwrap());
    assert!(p.list(&CredentialFilter::new()).await.unwrap().is_empty());
    assert!(
        p.list(&CredentialFilter::new().tag("env", "prod"))
            .await
            .unwrap()
            .is_empty()
    );
    p.delete(&k).await.expect("a second delete is Ok too");

    // A store within a short deadline gives up, retryably, naming the finalizer; nothing
    // was written into the dying Secret. A conditional store on its revision conflicts.
    let short = provider(KubernetesSecretsConfig {
        timeouts: Timeouts {
            read_ms: 1_000,
            write_ms: 1_000,
        },
        retry: RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        },
        ..config(&ns)
    })
    .await;
    let err = short.store(&k, &data(2), &meta()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let cause = std::error::Error::source(&err)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(cause.contains(HOLD), "{cause}");
    let dying_revision = Revision::new(dying.metadata.resource_version.clone().unwrap());
    let err = p
        .store_if(&k, &data(2), &meta(), &Precondition::Revision(dying_revision))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let still = api.get(&name).await.unwrap();
    assert_eq!(still.metadata.uid, dying.metadata.uid);
    assert_eq!(still.data, dying.data, "a store wrote into the dying Secret");

    // The finalizer goes while a store waits: the store creates the Secret anew.
    let waiting = {
        let (p, k) = (p.clone(), k.clone());
        tokio::spawn(async move { p.store(&k, &data(3), &meta()).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let release = serde_json::json!({"metadata": {"finalizers": null}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    waiting.await.unwrap().expect("the store waited for the Secret to go");
    let new = api.get(&name).await.unwrap();
    assert_ne!(new.metadata.uid, dying.metadata.uid);
    assert!(new.metadata.deletion_timestamp.is_none());
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(3));
    assert_eq!(p.list(&CredentialFilter::new()).await.unwrap(), vec![k.clone()]);
    cleanup(p.as_ref()).await;
}

/// A Secret of ours that someone marked `immutable: true` cannot take new data: the store
/// says so (not a validation error about labels), and delete-then-store works.
#[tokio::test]
async fn storing_over_an_immutable_secret_names_immutability() {
    let (ns, p) = fresh("immutable").await;
    let k = id("Frozen");
    let name = secret_name(PREFIX, &k);
    let api = secrets(&ns).await;
    p.store(&k, &data(1), &meta()).await.unwrap();
    let freeze = serde_json::json!({"immutable": true});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&freeze))
        .await
        .unwrap();
    let err = p.store(&k, &data(2), &meta()).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    let m = err.to_string();
    assert!(m.contains("immutable: true"), "{m}");
    assert!(m.contains(&name), "{m}");
    assert!(!m.contains("labels"), "{m}");
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(1));
    p.delete(&k).await.expect("an immutable Secret can be deleted");
    p.store(&k, &data(3), &meta()).await.unwrap();
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(3));
    cleanup(p.as_ref()).await;
}

/// A CONNECT proxy on loopback that resolves every host it is asked for to 127.0.0.1 (as a
/// proxy resolves names its clients cannot): records each tunnel's target and whether a
/// `Proxy-Authorization` header came.
async fn connect_proxy() -> (String, Arc<std::sync::Mutex<Vec<(String, bool)>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let tunnels = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = tunnels.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let target = head.split_whitespace().nth(1).unwrap_or_default().to_string();
                let authorized = head.to_ascii_lowercase().contains("proxy-authorization: basic");
                seen.lock().unwrap().push((target.clone(), authorized));
                let port = target.rsplit(':').next().unwrap_or_default().to_string();
                if !head.starts_with("CONNECT ") {
                    return;
                }
                let Ok(mut upstream) = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await else {
                    return;
                };
                socket
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
            });
        }
    });
    (addr, tunnels)
}

/// The proxy password of the proxy tests.
const PROXY_PASSWORD: &str = "pr0xy-s3cret";

/// The admin kubeconfig with its server renamed to `kubernetes.default.svc` (a name in the
/// server certificate that only the proxy of [`connect_proxy`] resolves), and its port.
fn kubeconfig_behind_a_proxy(dir: &tempfile::TempDir) -> (std::path::PathBuf, String) {
    let (server, _) = cluster();
    let port = server.rsplit(':').next().unwrap().to_string();
    let path = edited_admin_kubeconfig(dir, |c| {
        c.server = Some(format!("https://kubernetes.default.svc:{port}"));
    });
    (path, port)
}

/// kube reads `HTTPS_PROXY` (as kubectl does). With it set to a CONNECT proxy with a
/// password, or without a scheme (an HTTP proxy, as for curl and Go), the provider opens and
/// talks to the real API server through the tunnel (TLS end to end), and no output shows the
/// password; with `NO_PROXY` naming the server, the proxy is not used (kube 5 alone matches
/// `NO_PROXY` against the proxy's URL instead).
#[tokio::test]
async fn an_https_proxy_in_the_environment_is_used_like_kubectl_and_never_shown() {
    const NAME: &str = "an_https_proxy_in_the_environment_is_used_like_kubectl_and_never_shown";
    if std::env::var(CHILD).is_ok_and(|v| v == NAME) {
        let ns = std::env::var("NEBULA_TEST_CHILD_NAMESPACE").unwrap();
        let opened = open(&StorageConfig::Kubernetes(KubernetesSecretsConfig {
            namespace: Some(ns.clone()),
            retry: RetryPolicy {
                max_retries: 0,
                ..RetryPolicy::default()
            },
            ..KubernetesSecretsConfig::default()
        }))
        .await;
        let p = match opened {
            Ok(p) => p,
            Err(e) => {
                let shown = format!("{e} {e:?}");
                assert!(!shown.contains(PROXY_PASSWORD), "the proxy password leaked: {shown}");
                panic!("open failed with HTTPS_PROXY set: {e}");
            }
        };
        if std::env::var_os("NO_PROXY").is_some() {
            let err = p
                .check()
                .await
                .expect_err("the server's name resolves only through the proxy");
            assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
            assert!(!format!("{err} {err:?}").contains(PROXY_PASSWORD), "{err:?}");
            return;
        }
        p.check().await.expect("check through the proxy");
        let k = id("Through_The_Proxy");
        p.store(&k, &data(1), &meta()).await.expect("store through the proxy");
        assert_eq!(p.retrieve(&k).await.unwrap().data, data(1));
        p.delete(&k).await.unwrap();
        assert!(!format!("{p:?}").contains(PROXY_PASSWORD));
        return;
    }
    let ns = unique("proxy");
    ensure_namespace(&ns).await;
    let (addr, tunnels) = connect_proxy().await;
    let dir = tempfile::tempdir().unwrap();
    let (kubeconfig, port) = kubeconfig_behind_a_proxy(&dir);
    let with_password = format!("http://nebula:{PROXY_PASSWORD}@{addr}");
    // Without a scheme, as curl and Go's net/http read it: an HTTP proxy.
    let bare = addr.clone();
    for (proxy, no_proxy) in [
        (with_password.clone(), None),
        (bare, None),
        (with_password, Some("localhost,.default.svc")),
    ] {
        let authorized = proxy.contains(PROXY_PASSWORD);
        let exe = std::env::current_exe().unwrap();
        let envs = [
            (CHILD, NAME.to_string()),
            ("KUBECONFIG", kubeconfig.display().to_string()),
            ("HTTPS_PROXY", proxy),
            ("NEBULA_TEST_CHILD_NAMESPACE", ns.clone()),
        ];
        let out = tokio::task::spawn_blocking(move || {
            let mut child = std::process::Command::new(exe);
            child
                .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
                .envs(envs)
                .env_remove("NO_PROXY")
                .env_remove("no_proxy")
                .env_remove("https_proxy");
            if let Some(no_proxy) = no_proxy {
                child.env("NO_PROXY", no_proxy);
            }
            child.output()
        })
        .await
        .unwrap()
        .expect("run the test binary");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "the child failed ({no_proxy:?}):\n{stdout}\n{stderr}"
        );
        assert!(
            !format!("{stdout}{stderr}").contains(PROXY_PASSWORD),
            "{stdout}\n{stderr}"
        );
        let tunnels = std::mem::take(&mut *tunnels.lock().unwrap());
        if no_proxy.is_some() {
            assert!(tunnels.is_empty(), "NO_PROXY names the server, yet: {tunnels:?}");
        } else {
            assert!(!tunnels.is_empty(), "no request went through the proxy");
            let target = format!("kubernetes.default.svc:{port}");
            assert!(
                tunnels.iter().all(|(t, auth)| *t == target && *auth == authorized),
                "{tunnels:?}"
            );
        }
    }
}

/// A plain-http server behind a proxy (the cluster's `proxy-url`) would hand the bearer token
/// to the proxy in clear: refused at open, naming the rule, without the proxy's password, and
/// nothing reaches the proxy.
#[tokio::test]
async fn a_plain_http_server_behind_a_proxy_is_refused() {
    let (addr, tunnels) = connect_proxy().await;
    let dir = tempfile::tempdir().unwrap();
    let path = edited_admin_kubeconfig(&dir, |c| {
        c.server = Some("http://127.0.0.1:8001".into());
        c.proxy_url = Some(format!("http://nebula:{PROXY_PASSWORD}@{addr}"));
    });
    let err = open(&StorageConfig::Kubernetes(KubernetesSecretsConfig {
        namespace: Some("default".into()),
        kubeconfig_path: Some(path),
        ..KubernetesSecretsConfig::default()
    }))
    .await
    .map(drop)
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("in clear"), "{shown}");
    assert!(shown.contains("proxy-url"), "{shown}");
    assert!(!shown.contains(PROXY_PASSWORD), "{shown}");
    assert!(tunnels.lock().unwrap().is_empty());
}

/// The token an exec plugin of [`an_exec_plugin_failure_never_shows_its_output`] prints.
const EXEC_TOKEN: &str = "exec-t0ken-9c2f7d";

/// An exec plugin (kubeconfig `users[].user.exec`) that prints a credential and then
/// fails, or prints a malformed one: kube's error holds the plugin's whole output (its
/// `Display` prints stdout and stderr); the provider's error says the credentials were
/// refused, not retried, and shows neither the token nor the output.
#[tokio::test]
async fn an_exec_plugin_failure_never_shows_its_output() {
    let (server, ca) = cluster();
    let credential = format!(
        r#"{{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{{"token":"{EXEC_TOKEN}"}}}}"#
    );
    let malformed = format!(
        r#"{{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{{"token":"{EXEC_TOKEN}","expirationTimestamp":[1]}}}}"#
    );
    for (what, script) in [
        (
            "prints a credential, then fails",
            format!("#!/bin/sh\necho '{credential}'\necho \"cache: $0 {EXEC_TOKEN}\" >&2\nexit 3\n"),
        ),
        (
            "prints a malformed credential",
            format!("#!/bin/sh\necho '{malformed}'\n"),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let plugin = dir.path().join("plugin.sh");
        std::fs::write(&plugin, script).unwrap();
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&plugin)
            .status()
            .unwrap();
        let path = write_kubeconfig(
            &dir,
            &format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    \
                 certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: \
                 client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n\
                 contexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
                plugin.display()
            ),
        );
        let metrics = Arc::new(StorageMetrics::new());
        let opened = open_with_metrics(
            &StorageConfig::Kubernetes(KubernetesSecretsConfig {
                namespace: Some("default".into()),
                kubeconfig_path: Some(path),
                ..KubernetesSecretsConfig::default()
            }),
            metrics.clone(),
        )
        .await;
        let err = match opened {
            Ok(p) => p.exists(&id("k")).await.unwrap_err(),
            Err(e) => e,
        };
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(EXEC_TOKEN), "{what}: the token leaked: {shown}");
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed, "{what}: {err}");
        assert!(!err.is_retryable(), "{what}: {err}");
        assert!(
            !err.to_string().contains("401"),
            "{what}: not an answer of the server: {err}"
        );
        let cause = std::error::Error::source(&err)
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(cause.contains("exec plugin"), "{what}: {cause}");
    }
}

/// Metadata whose JSON has a fixed length (fixed timestamps), so object sizes repeat.
fn fixed_meta() -> nebula_credential::CredentialMetadata {
    let mut v = serde_json::to_value(meta()).unwrap();
    v["created_at"] = "2026-01-01T00:00:00Z".into();
    v["updated_at"] = "2026-01-01T00:00:00Z".into();
    serde_json::from_value(v).unwrap()
}

/// `TooLarge` is measured on the whole Secret, to the byte, against the real server: a
/// Secret of exactly `MAX_OBJECT_BYTES` (padded with a default annotation) is stored and
/// read back; one byte more is `TooLarge` reporting `MAX_OBJECT_BYTES + 1`, and the stored
/// Secret is left as it was.
#[tokio::test]
async fn too_large_is_measured_on_the_whole_secret_to_the_byte() {
    use nebula_credential::kubernetes::{MAX_OBJECT_BYTES, object_size};
    let ns = unique("limit");
    ensure_namespace(&ns).await;
    let k = id("Edge");
    let name = secret_name(PREFIX, &k);
    let api = secrets(&ns).await;
    let blob = |n: usize| nebula_credential::EncryptedData {
        ciphertext: vec![7; n],
        ..data(7)
    };
    let pad_key = "example.com/pad";
    let padded = |pad: usize| {
        let mut c = config(&ns);
        c.retry.max_retries = 0;
        if pad > 0 {
            c.default_annotations.insert(pad_key.to_string(), "p".repeat(pad));
        }
        c
    };
    let p = provider(padded(0)).await;
    // The largest ciphertext whose Secret fits, by bisection on the server.
    let (mut lo, mut hi) = (1, MAX_OBJECT_BYTES);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        match p.store(&k, &blob(mid), &fixed_meta()).await {
            Ok(_) => lo = mid,
            Err(StorageError::TooLarge { size, limit, .. }) => {
                assert_eq!(limit, MAX_OBJECT_BYTES);
                assert!(size > limit);
                hi = mid;
            }
            Err(e) => panic!("{mid}: {e}"),
        }
    }
    // A little below, to leave room for the padding annotation's key.
    let lo = lo - 32;
    p.store(&k, &blob(lo), &fixed_meta()).await.unwrap();
    let stored = object_size(&api.get(&name).await.unwrap());
    assert!(stored <= MAX_OBJECT_BYTES, "{stored}");
    // Pad it to the limit exactly, with a default annotation of the right length.
    let pad = MAX_OBJECT_BYTES - stored - pad_key.len();
    let exact = provider(padded(pad)).await;
    exact
        .store(&k, &blob(lo), &fixed_meta())
        .await
        .expect("a Secret of exactly MAX_OBJECT_BYTES is stored");
    let on_server = api.get(&name).await.unwrap();
    assert_eq!(object_size(&on_server), MAX_OBJECT_BYTES);
    assert_eq!(exact.retrieve(&k).await.unwrap().data, blob(lo));
    let over = provider(padded(pad + 1)).await;
    match over.store(&k, &blob(lo), &fixed_meta()).await {
        Err(StorageError::TooLarge { size, limit, .. }) => {
            assert_eq!((size, limit), (MAX_OBJECT_BYTES + 1, MAX_OBJECT_BYTES));
        }
        other => panic!("one byte over the limit: {other:?}"),
    }
    let after = api.get(&name).await.unwrap();
    assert_eq!(after.metadata.resource_version, on_server.metadata.resource_version);
    exact.delete(&k).await.unwrap();
}

/// `store_if(Absent)` into a name held by a dying Secret (another tool's finalizer): the
/// Secret is absent for the precondition, so the create waits for it to go; within a short
/// deadline it gives up retryably, naming the finalizer, without writing; when the
/// finalizer is removed mid-wait, the create lands and a second `Absent` store conflicts.
#[tokio::test]
async fn store_if_absent_waits_for_a_dying_secret_and_never_writes_into_it() {
    let (ns, p) = fresh("absent-dying").await;
    let k = id("Dying_Absent");
    let name = secret_name(PREFIX, &k);
    let api = secrets(&ns).await;
    p.store(&k, &data(1), &meta()).await.unwrap();
    let hold = serde_json::json!({"metadata": {"finalizers": [HOLD]}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&hold))
        .await
        .unwrap();
    p.delete(&k).await.unwrap();
    let dying = api.get(&name).await.unwrap();
    assert!(dying.metadata.deletion_timestamp.is_some());

    let short = provider(KubernetesSecretsConfig {
        timeouts: Timeouts {
            read_ms: 800,
            write_ms: 800,
        },
        retry: RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        },
        ..config(&ns)
    })
    .await;
    let err = short
        .store_if(&k, &data(2), &meta(), &Precondition::Absent)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let cause = std::error::Error::source(&err)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(cause.contains(HOLD), "{cause}");
    let still = api.get(&name).await.unwrap();
    assert_eq!(
        (still.metadata.uid.clone(), still.data.clone()),
        (dying.metadata.uid.clone(), dying.data.clone())
    );

    let waiting = {
        let (p, k) = (p.clone(), k.clone());
        tokio::spawn(async move { p.store_if(&k, &data(3), &meta(), &Precondition::Absent).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let release = serde_json::json!({"metadata": {"finalizers": null}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    let revision = waiting.await.unwrap().expect("the create waited for the Secret to go");
    let new = api.get(&name).await.unwrap();
    assert_ne!(new.metadata.uid, dying.metadata.uid);
    assert_eq!(Revision::new(new.metadata.resource_version.clone().unwrap()), revision);
    assert_eq!(p.retrieve(&k).await.unwrap().data, data(3));
    let err = p
        .store_if(&k, &data(4), &meta(), &Precondition::Absent)
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    cleanup(p.as_ref()).await;
}

/// The restricted identity (RBAC in its own namespace only) in a namespace that does not
/// exist: `check` and `list` do not pass as "empty" — no RoleBinding can exist there, so
/// both are `PermissionDenied` naming the verb and namespace; a foreign `immutable` Secret
/// under our name is still foreign (a store is a `Conflict`, the Secret untouched).
#[tokio::test]
async fn a_restricted_identity_in_a_missing_namespace_and_a_foreign_immutable_secret() {
    let restricted = emulator_var("NEBULA_TEST_KUBECONFIG_RESTRICTED", BACKEND);
    let missing = unique("nowhere");
    let p = provider(KubernetesSecretsConfig {
        namespace: Some(missing.clone()),
        kubeconfig_path: Some(restricted.into()),
        ..KubernetesSecretsConfig::default()
    })
    .await;
    for (op, err) in [
        ("check", p.check().await.unwrap_err()),
        ("list", p.list(&CredentialFilter::new()).await.unwrap_err()),
    ] {
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{op}: {err}");
        assert!(
            err.to_string().contains(&format!("namespace `{missing}`")),
            "{op}: {err}"
        );
    }

    let (ns, p) = fresh("foreign-immutable").await;
    let k = id("Frozen_Foreign");
    let name = secret_name(PREFIX, &k);
    let api = secrets(&ns).await;
    let mut frozen = foreign_secret(&name);
    frozen.immutable = Some(true);
    api.create(&PostParams::default(), &frozen).await.unwrap();
    let err = p.store(&k, &data(1), &meta()).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert!(is_foreign_intact(&api.get(&name).await.unwrap()));
    assert!(p.delete(&k).await.unwrap_err().is_conflict());
    api.delete(&name, &DeleteParams::default()).await.unwrap();
}

/// A namespace being deleted (on this bare API server it stays `Terminating`: no namespace
/// controller) refuses creates with 403 and the cause `NamespaceTerminating`: the store says
/// the namespace is being deleted, not "grant `create`" (which the identity has), and is not
/// retried as if it could pass; `check` fails the same way instead of passing as if the
/// identity were read-only.
#[tokio::test]
async fn a_store_into_a_terminating_namespace_says_so() {
    let (ns, p) = fresh("terminating").await;
    let namespaces: Api<Namespace> = Api::all(admin_client().await);
    namespaces.delete(&ns, &DeleteParams::default()).await.unwrap();
    let err = p.store(&id("Too_Late"), &data(1), &meta()).await.unwrap_err();
    let m = err.to_string();
    assert!(!m.contains("grant `create`"), "{m}");
    assert!(m.contains(&format!("namespace `{ns}` is being deleted")), "{m}");
    assert!(!err.is_retryable(), "{err}");
    // `check`'s dry-run create proves the namespace can take new Secrets: it cannot.
    let err = p.check().await.unwrap_err();
    assert!(err.to_string().contains("is being deleted"), "{err}");
}

/// Every request a kube client sends, as `METHOD path`, with ` (metadata)` when it asks for
/// `PartialObjectMetadata` only (no data in the answer).
#[derive(Clone, Default)]
struct Recorded(Arc<std::sync::Mutex<Vec<String>>>);

impl Recorded {
    /// The requests since the last call, in order.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A kube client service that records each request in [`Recorded`], then sends it.
struct Recording<S> {
    inner: S,
    log: Recorded,
}

impl<S, B> tower::Service<http::Request<B>> for Recording<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let metadata_only = request
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("as=PartialObjectMetadata"));
        self.log.0.lock().unwrap().push(format!(
            "{} {}{}",
            request.method(),
            request.uri().path(),
            if metadata_only { " (metadata)" } else { "" }
        ));
        self.inner.call(request)
    }
}

/// The provider of `c` over a kube client that records every request it sends.
async fn recorded(c: KubernetesSecretsConfig) -> (KubernetesSecretsProvider, Recorded) {
    let log = Recorded::default();
    let kube_config = KubernetesSecretsProvider::client_config(&c).await.unwrap();
    let namespace = c.namespace.clone().unwrap();
    let layer_log = log.clone();
    let client = kube::client::ClientBuilder::try_from(kube_config)
        .unwrap()
        .with_layer(&tower::layer::layer_fn(move |inner| Recording {
            inner,
            log: layer_log.clone(),
        }))
        .build();
    let p = KubernetesSecretsProvider::with_client(client, &namespace, c).unwrap();
    (p, log)
}

/// `revision` is one metadata-only GET (`PartialObjectMetadata`: the data never comes
/// back), recorded at the kube client: it reports the `resourceVersion` `retrieve` reports,
/// follows every store and another client's update, and answers what `retrieve` answers for
/// a foreign Secret (`Conflict`), one being deleted and a missing one (`NotFound`).
#[tokio::test]
async fn revision_is_one_metadata_only_get_never_the_data() {
    let ns = unique("revision");
    ensure_namespace(&ns).await;
    let (p, log) = recorded(config(&ns)).await;
    let k = id("revised");
    let name = secret_name(PREFIX, &k);
    let path = format!("/api/v1/namespaces/{ns}/secrets/{name}");
    let mut seen = Vec::new();
    for fill in 1..=3u8 {
        let written = p.store(&k, &data(fill), &meta()).await.unwrap();
        log.take();
        let revision = p.revision(&k).await.unwrap();
        assert_eq!(log.take(), [format!("GET {path} (metadata)")], "round {fill}");
        assert_eq!(revision, written);
        assert_eq!(p.retrieve(&k).await.unwrap().revision, revision);
        assert_eq!(log.take(), [format!("GET {path}")]);
        assert!(!seen.contains(&revision));
        seen.push(revision);
    }
    // Another client adds a label: a new resourceVersion, which retrieve reports too.
    let api = secrets(&ns).await;
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"labels": {"team": "ops"}}})),
    )
    .await
    .unwrap();
    let after = p.revision(&k).await.unwrap();
    assert!(!seen.contains(&after));
    assert_eq!(p.retrieve(&k).await.unwrap().revision, after);
    // Held by another tool's finalizer while being deleted: absent, as for retrieve.
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"finalizers": ["example.com/hold"]}})),
    )
    .await
    .unwrap();
    p.delete(&k).await.unwrap();
    log.take();
    assert!(p.revision(&k).await.unwrap_err().is_not_found());
    assert_eq!(log.take(), [format!("GET {path} (metadata)")]);
    assert!(p.retrieve(&k).await.unwrap_err().is_not_found());
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(p.revision(&id("never_stored")).await.unwrap_err().is_not_found());
    // A foreign Secret under our name.
    let planted = id("planted");
    api.create(&PostParams::default(), &foreign_secret(&secret_name(PREFIX, &planted)))
        .await
        .unwrap();
    let err = p.revision(&planted).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert!(p.retrieve(&planted).await.unwrap_err().is_conflict());
    api.delete(&secret_name(PREFIX, &planted), &DeleteParams::default())
        .await
        .unwrap();
}

/// Another writer (a second provider in the same namespace) rotates a credential a cached
/// store serves: the watch fires within `poll_ms` plus jitter, `refresh(seen)` and the end
/// of `fresh_ms` each bring the new value, and a delete is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_another_writer_rotate_and_delete() {
    let ns = unique("watch");
    ensure_namespace(&ns).await;
    let watched =
        nebula_credential_tests::watch::another_writer_rotates(StorageConfig::Kubernetes(config(&ns)), &id("rotated"))
            .await;
    println!(
        "kubernetes: watch fired {:?} after the rotation (poll {:?})",
        watched.fired_after, watched.poll
    );
}
