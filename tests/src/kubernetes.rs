//! The Kubernetes row: a real kube-apiserver with RBAC; a namespace of its own per test
//! (Secrets named `nebula-cred-…`), or a prefix in `default` where a test needs no setup.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use nebula_credential::kubernetes::{KubernetesSecretsConfig, secret_name};
use nebula_credential::{CredentialId, StorageConfig, StorageError, StorageProvider};
use nebula_credential_core::conformance::{self, CaseResult, Identity, Opened};
use nebula_credential_core::layers::BoxFuture;
use nebula_credential_core::{BoxError, RetryPolicy};

use crate::{ReadOnlyRow, Row, emulator_var, open_config, opened, unique};

/// The backend's name (feature, `PROVIDERS`, emulator).
pub const NAME: &str = "kubernetes";

/// The provider's default Secret name prefix.
pub const PREFIX: &str = "nebula-cred-";

/// The admin kubeconfig's path.
pub fn admin_kubeconfig() -> String {
    emulator_var("NEBULA_TEST_KUBECONFIG", NAME)
}

/// The restricted user's kubeconfig (get, list, watch on Secrets in its namespace).
pub fn restricted_kubeconfig() -> String {
    emulator_var("NEBULA_TEST_KUBECONFIG_RESTRICTED", NAME)
}

/// The restricted user's namespace.
pub fn restricted_namespace() -> String {
    emulator_var("NEBULA_TEST_KUBE_RESTRICTED_NAMESPACE", NAME)
}

/// A kube-rs client of the admin kubeconfig, for checks behind the provider's back.
pub async fn admin_client() -> Client {
    client(&admin_kubeconfig()).await
}

/// A kube-rs client of the kubeconfig at `path`.
pub async fn client(path: &str) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    Client::try_from(config).expect("kube client")
}

/// The Secrets of `namespace`, as admin.
pub async fn secrets(namespace: &str) -> Api<Secret> {
    Api::namespaced(admin_client().await, namespace)
}

/// Creates namespace `name` unless it exists. Namespaces stay: a bare kube-apiserver has
/// no namespace controller to finish deleting them, and the emulator is thrown away.
pub async fn ensure_namespace(name: &str) {
    let api: Api<Namespace> = Api::all(admin_client().await);
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_already_exists() => {}
        Err(e) => panic!("cannot create namespace {name}: {e}"),
    }
}

/// The configuration every Kubernetes test starts from: the admin kubeconfig in
/// `namespace` (which must exist: see [`fresh`]).
pub fn config(namespace: &str) -> KubernetesSecretsConfig {
    KubernetesSecretsConfig {
        namespace: Some(namespace.to_string()),
        kubeconfig_path: Some(admin_kubeconfig().into()),
        ..KubernetesSecretsConfig::default()
    }
}

/// A configuration of `kubeconfig` in the existing namespace `namespace`, with a Secret
/// name prefix of its own for `tag` (no namespace to create).
pub fn prefixed(namespace: String, kubeconfig: String, tag: &str) -> KubernetesSecretsConfig {
    KubernetesSecretsConfig {
        namespace: Some(namespace),
        kubeconfig_path: Some(kubeconfig.into()),
        secret_prefix: format!("nc-{}-", tag.to_ascii_lowercase()),
        ..KubernetesSecretsConfig::default()
    }
}

/// `c` through `open()`'s full layer stack.
pub async fn provider(c: KubernetesSecretsConfig) -> Arc<dyn StorageProvider> {
    open_config(&StorageConfig::Kubernetes(c)).await
}

/// A namespace of its own for `what`, and a provider in it.
pub async fn fresh(what: &str) -> (String, Arc<dyn StorageProvider>) {
    let ns = unique(what);
    ensure_namespace(&ns).await;
    let p = provider(config(&ns)).await;
    (ns, p)
}

/// The admin kubeconfig's server URL and CA (base64 PEM).
pub fn cluster() -> (String, String) {
    let kubeconfig = Kubeconfig::read_from(admin_kubeconfig()).expect("admin kubeconfig");
    let cluster = kubeconfig.clusters[0].cluster.clone().expect("a cluster");
    (
        cluster.server.expect("a server"),
        cluster.certificate_authority_data.expect("CA data"),
    )
}

/// Writes kubeconfig `text` to a file of its own under the temporary directory.
pub fn write_temp_kubeconfig(tag: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}.kubeconfig", unique(tag)));
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

/// A kubeconfig of the emulator's server presenting `token`.
pub fn kubeconfig_with_token(token: &str) -> String {
    let (server, ca) = cluster();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\n\
         contexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
    )
}

/// The value of a foreign Secret.
pub const FOREIGN_VALUE: &[u8] = b"not ours";

/// A Secret named `name` as another tool writes it (no managed-by label).
pub fn foreign_secret(name: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([("team".to_string(), "other".to_string())])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "value".to_string(),
            k8s_openapi::ByteString(FOREIGN_VALUE.to_vec()),
        )])),
        ..Secret::default()
    }
}

/// Whether `s` is still the [`foreign_secret`] as written.
pub fn is_foreign_intact(s: &Secret) -> bool {
    s.data.as_ref().and_then(|d| d.get("value")).map(|v| v.0.as_slice()) == Some(FOREIGN_VALUE)
        && s.metadata.labels.as_ref().map(BTreeMap::len) == Some(1)
        && s.metadata.annotations.as_ref().is_none_or(BTreeMap::is_empty)
}

/// Plants a Secret named like ours, without the managed-by label, through kube-rs.
pub struct Foreign;

impl conformance::Foreign for Foreign {
    fn plant<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, CaseResult> {
        Box::pin(async move {
            let name = secret_name(PREFIX, id);
            secrets(namespace)
                .await
                .create(&PostParams::default(), &foreign_secret(&name))
                .await?;
            Ok(())
        })
    }

    fn intact<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async move {
            let s = secrets(namespace).await.get(&secret_name(PREFIX, id)).await?;
            Ok(is_foreign_intact(&s))
        })
    }

    fn remove<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, CaseResult> {
        Box::pin(async move {
            secrets(namespace)
                .await
                .delete(&secret_name(PREFIX, id), &DeleteParams::default())
                .await?;
            Ok(())
        })
    }
}

/// Retries on, so a retry of a refusal would show in the metrics.
fn with_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 5,
        ..RetryPolicy::default()
    }
}

/// The restricted user, confined to its own namespace (where the admin writes for it,
/// under a prefix of the case's own).
pub struct ReadOnly;

impl Identity for ReadOnly {
    fn open<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Opened, BoxError>> {
        Box::pin(async move {
            let c = KubernetesSecretsConfig {
                retry: with_retries(),
                ..prefixed(restricted_namespace(), restricted_kubeconfig(), namespace)
            };
            opened(&StorageConfig::Kubernetes(c)).await
        })
    }

    fn writer<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Option<Arc<dyn StorageProvider>>, BoxError>> {
        Box::pin(async move {
            let c = prefixed(restricted_namespace(), admin_kubeconfig(), namespace);
            Ok(Some(provider(c).await))
        })
    }

    /// The denial names the verb to grant on `secrets` in the restricted namespace.
    fn explains(&self, _: &str, op: &str, _: &CredentialId, error: &StorageError) -> CaseResult {
        let m = error.to_string();
        let own = restricted_namespace();
        let expected = match op {
            "create" => format!("grant `create` on `secrets` in namespace `{own}`"),
            _ => format!("on `secrets` in namespace `{own}`"),
        };
        if m.contains(&expected) && m.contains("grant `") {
            Ok(())
        } else {
            Err(format!("{op}: the denial says `{expected}`: {m}").into())
        }
    }
}

/// The token the rejection test presents.
pub const BOGUS_TOKEN: &str = "bogus-token-4f1e9a";

/// A kubeconfig whose token the server does not know.
pub struct Rejected;

impl Identity for Rejected {
    fn open<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Opened, BoxError>> {
        Box::pin(async move {
            let path = write_temp_kubeconfig("bogus", &kubeconfig_with_token(BOGUS_TOKEN));
            let c = KubernetesSecretsConfig {
                retry: with_retries(),
                ..prefixed("default".into(), path.display().to_string(), namespace)
            };
            opened(&StorageConfig::Kubernetes(c)).await
        })
    }

    fn secret(&self) -> Option<String> {
        Some(BOGUS_TOKEN.into())
    }
}

/// The admin kubeconfig without its `certificate-authority-data`.
pub struct UntrustedCa;

impl Identity for UntrustedCa {
    fn open<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<Opened, BoxError>> {
        Box::pin(async move {
            let text = std::fs::read_to_string(admin_kubeconfig())?;
            let without_ca: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("certificate-authority-data:"))
                .map(|l| format!("{l}\n"))
                .collect();
            if text.len() == without_ca.len() {
                return Err("the admin kubeconfig has no certificate-authority-data to remove".into());
            }
            let path = write_temp_kubeconfig("no-ca", &without_ca);
            let c = KubernetesSecretsConfig {
                retry: with_retries(),
                ..prefixed("default".into(), path.display().to_string(), namespace)
            };
            opened(&StorageConfig::Kubernetes(c)).await
        })
    }

    /// The refusal names the kubeconfig's CA setting.
    fn explains(&self, _: &str, op: &str, _: &CredentialId, error: &StorageError) -> CaseResult {
        if error.to_string().contains("certificate-authority-data") {
            Ok(())
        } else {
            Err(format!("{op}: the refusal names certificate-authority-data: {error}").into())
        }
    }
}

/// The label every credential tag `key` becomes.
pub fn tag_label(key: &str) -> String {
    format!("tag.nebula-credential.io/{key}")
}

/// Labels and an annotation another tool (a cost tool, an operator) adds.
pub struct OtherTools;

impl conformance::OtherTools for OtherTools {
    fn open_with_default_tag<'a>(
        &'a self,
        namespace: &'a str,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<Arc<dyn StorageProvider>, BoxError>> {
        Box::pin(async move {
            let c = KubernetesSecretsConfig {
                default_labels: BTreeMap::from([(key.to_string(), value.to_string())]),
                ..config(namespace)
            };
            Ok(provider(c).await)
        })
    }

    fn mark<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, CaseResult> {
        Box::pin(async move {
            let patch = serde_json::json!({"metadata": {
                "labels": {"team": "payments", "example.com/cost-center": "42"},
                "annotations": {"example.com/owner": "ops"}
            }});
            secrets(namespace)
                .await
                .patch(&secret_name(PREFIX, id), &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            Ok(())
        })
    }

    fn marked<'a>(&'a self, namespace: &'a str, id: &'a CredentialId) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async move {
            let s = secrets(namespace).await.get(&secret_name(PREFIX, id)).await?;
            let labels = s.metadata.labels.unwrap_or_default();
            let annotations = s.metadata.annotations.unwrap_or_default();
            Ok(labels.get("team").map(String::as_str) == Some("payments")
                && labels.get("example.com/cost-center").map(String::as_str) == Some("42")
                && annotations.get("example.com/owner").map(String::as_str) == Some("ops"))
        })
    }

    fn raw_tags<'a>(
        &'a self,
        namespace: &'a str,
        id: &'a CredentialId,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, BoxError>> {
        Box::pin(async move {
            let s = secrets(namespace).await.get(&secret_name(PREFIX, id)).await?;
            Ok(s.metadata.labels.unwrap_or_default())
        })
    }

    /// A label key needs a DNS prefix, not a colon.
    fn default_tag_key(&self) -> &'static str {
        "example.com/team"
    }

    fn tag_key(&self, key: &str) -> String {
        tag_label(key)
    }
}

/// The row of `nebula_cred.rs`: the `default` namespace (kube-apiserver creates it), a
/// prefix per namespace.
pub fn row() -> Row {
    Row {
        name: NAME,
        config: |ns| StorageConfig::Kubernetes(prefixed("default".into(), admin_kubeconfig(), ns)),
        read_only: Ok(ReadOnlyRow {
            config: || {
                StorageConfig::Kubernetes(KubernetesSecretsConfig {
                    namespace: Some(restricted_namespace()),
                    kubeconfig_path: Some(restricted_kubeconfig().into()),
                    ..KubernetesSecretsConfig::default()
                })
            },
            names: &["create", "secrets"],
        }),
    }
}
