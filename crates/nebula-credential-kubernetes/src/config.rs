//! [`KubernetesSecretsConfig`] and its validation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use nebula_credential_core::remote::env;
use nebula_credential_core::{
    ConfigError, ProviderConfig, RetryPolicy, StorageError, StorageProvider, Timeouts, async_trait,
};
use serde::{Deserialize, Serialize};

use crate::PROVIDER;
use crate::labels::{MAX_ANNOTATION_BYTES, check_default_label, check_key, check_not_reserved};
use crate::naming::check_prefix;
use crate::provider::KubernetesSecretsProvider;

/// Longest namespace name (a DNS-1123 label).
pub const MAX_NAMESPACE_LEN: usize = 63;

/// Settings of the Kubernetes Secrets backend (`provider = "kubernetes"`).
///
/// ```toml
/// provider = "kubernetes"
/// namespace = "payments"
/// kubeconfig_path = "/etc/nebula/kubeconfig"   # omit: KUBECONFIG or ~/.kube/config, else in-cluster
/// context = "prod"
/// secret_prefix = "nebula-cred-"
/// [default_labels]
/// "app.kubernetes.io/part-of" = "checkout"
/// [default_annotations]
/// "example.com/owner" = "team-payments"
/// ```
///
/// Authentication comes from the kubeconfig (token, client certificate, exec plugin) or
/// the pod's service account; none is configured here, so nothing secret is held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesSecretsConfig {
    /// Namespace of the Secrets (a DNS-1123 label of at most 63 characters). `None`: the
    /// namespace of the kubeconfig context (`default` when it names none), or the pod's
    /// namespace when the in-cluster configuration is used.
    pub namespace: Option<String>,
    /// Kubeconfig file to use. `None`: `KUBECONFIG` or `~/.kube/config`, else the
    /// in-cluster configuration (the order of kube's `Config::infer`, without its debug
    /// overrides). Whatever the source, `insecure-skip-tls-verify: true`, plain `http://`
    /// to a host that is not loopback (or through a proxy), and malformed servers are refused.
    pub kubeconfig_path: Option<PathBuf>,
    /// A named context of that kubeconfig; `None`: its current context.
    pub context: Option<String>,
    /// Prepended to every Secret name (default `nebula-cred-`): 1 to
    /// [`MAX_PREFIX_LEN`](crate::MAX_PREFIX_LEN) characters of `[a-z0-9-]`, starting
    /// with a letter or digit, so every name stays a valid object name.
    pub secret_prefix: String,
    /// Labels put on every Secret (default `app.kubernetes.io/name=nebula-credential`
    /// and `app.kubernetes.io/component=credential`). Keys need a DNS prefix (`myorg/team`).
    pub default_labels: BTreeMap<String, String>,
    /// Annotations put on every Secret.
    pub default_annotations: BTreeMap<String, String>,
    /// Page size of `list` (`limit`), 1..=1000 (default 250).
    pub list_page_size: u32,
    /// Retry policy of the layer stack (`[retry]`): the only retries; kube's own are off.
    pub retry: RetryPolicy,
    /// Deadlines of the layer stack (`[timeouts]`).
    pub timeouts: Timeouts,
}

impl Default for KubernetesSecretsConfig {
    fn default() -> Self {
        KubernetesSecretsConfig {
            namespace: None,
            kubeconfig_path: None,
            context: None,
            secret_prefix: "nebula-cred-".into(),
            default_labels: BTreeMap::from([
                ("app.kubernetes.io/name".to_string(), "nebula-credential".to_string()),
                ("app.kubernetes.io/component".to_string(), "credential".to_string()),
            ]),
            default_annotations: BTreeMap::new(),
            list_page_size: 250,
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
        }
    }
}

/// Whether `s` is a DNS-1123 label: 1..=63 of `[a-z0-9-]`, alphanumeric at both ends.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAMESPACE_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[async_trait]
impl ProviderConfig for KubernetesSecretsConfig {
    fn provider_name(&self) -> &'static str {
        PROVIDER
    }

    fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// The default configuration, validated, with these variables when set (empty = unset):
    /// - `NEBULA_KUBERNETES_NAMESPACE` → `namespace`;
    /// - `NEBULA_KUBERNETES_KUBECONFIG_PATH` → `kubeconfig_path` (kube itself reads
    ///   `KUBECONFIG` when it is unset);
    /// - `NEBULA_KUBERNETES_CONTEXT` → `context`;
    /// - `NEBULA_KUBERNETES_SECRET_PREFIX` → `secret_prefix`.
    ///
    /// The names of earlier releases (`KUBERNETES_NAMESPACE`, `NEBULA_K8S_KUBECONFIG`,
    /// `NEBULA_K8S_CONTEXT`, `NEBULA_K8S_SECRET_PREFIX`) are still read, with a warning.
    fn from_env() -> Result<Self, ConfigError> {
        let mut c = Self {
            namespace: env::var_renamed("NEBULA_KUBERNETES_NAMESPACE", &["KUBERNETES_NAMESPACE"]),
            kubeconfig_path: env::var_renamed("NEBULA_KUBERNETES_KUBECONFIG_PATH", &["NEBULA_K8S_KUBECONFIG"])
                .map(PathBuf::from),
            context: env::var_renamed("NEBULA_KUBERNETES_CONTEXT", &["NEBULA_K8S_CONTEXT"]),
            ..Self::default()
        };
        if let Some(prefix) = env::var_renamed("NEBULA_KUBERNETES_SECRET_PREFIX", &["NEBULA_K8S_SECRET_PREFIX"]) {
            c.secret_prefix = prefix;
        }
        c.validate()?;
        Ok(c)
    }

    async fn build(&self) -> Result<Box<dyn StorageProvider>, StorageError> {
        Ok(Box::new(KubernetesSecretsProvider::new(self.clone()).await?))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let err = |field: &str, rule: String| Err(ConfigError::new(PROVIDER, field, rule));
        if let Some(ns) = &self.namespace
            && !is_dns_label(ns)
        {
            return err(
                "namespace",
                format!(
                    "must be a DNS-1123 label: 1 to {MAX_NAMESPACE_LEN} lowercase letters, digits and '-', \
                     starting and ending with a letter or digit (got {ns:?})"
                ),
            );
        }
        if let Some(p) = &self.kubeconfig_path
            && p.as_os_str().is_empty()
        {
            return err(
                "kubeconfig_path",
                "must not be empty; omit it to infer the configuration".into(),
            );
        }
        if let Some(c) = &self.context
            && c.trim().is_empty()
        {
            return err(
                "context",
                "must not be empty; omit it to use the current context".into(),
            );
        }
        if let Err(rule) = check_prefix(&self.secret_prefix) {
            return err("secret_prefix", rule);
        }
        for (k, v) in &self.default_labels {
            if let Err(rule) = check_default_label(k, v) {
                return err(&format!("default_labels.{k}"), rule);
            }
        }
        let mut annotation_bytes = 0;
        for (k, v) in &self.default_annotations {
            if let Err(rule) = check_key(k).and_then(|()| check_not_reserved(k)) {
                return err(&format!("default_annotations.{k}"), rule);
            }
            annotation_bytes += k.len() + v.len();
        }
        // Our own annotations take a few kilobytes at most (metadata of ≤ 10 tags).
        let room = MAX_ANNOTATION_BYTES / 2;
        if annotation_bytes > room {
            return err(
                "default_annotations",
                format!(
                    "hold {annotation_bytes} bytes; keep them under {room} so this library's own annotations fit \
                     in Kubernetes' {MAX_ANNOTATION_BYTES}-byte limit"
                ),
            );
        }
        if !(1..=1000).contains(&self.list_page_size) {
            return err(
                "list_page_size",
                format!("must be between 1 and 1000 (got {})", self.list_page_size),
            );
        }
        self.retry.validate(PROVIDER)?;
        self.timeouts.validate(PROVIDER)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(c: KubernetesSecretsConfig) -> String {
        c.validate().unwrap_err().field().to_string()
    }

    #[test]
    fn defaults_are_valid_and_carry_the_standard_labels() {
        let c = KubernetesSecretsConfig::default();
        c.validate().unwrap();
        assert_eq!(c.secret_prefix, "nebula-cred-");
        assert_eq!(c.default_labels["app.kubernetes.io/name"], "nebula-credential");
        assert_eq!(c.default_labels["app.kubernetes.io/component"], "credential");
    }

    #[test]
    fn every_rule_names_its_field() {
        let d = KubernetesSecretsConfig::default;
        for (c, field) in [
            (
                KubernetesSecretsConfig {
                    namespace: Some("Prod".into()),
                    ..d()
                },
                "namespace",
            ),
            (
                KubernetesSecretsConfig {
                    namespace: Some("a".repeat(64)),
                    ..d()
                },
                "namespace",
            ),
            (
                KubernetesSecretsConfig {
                    kubeconfig_path: Some(PathBuf::new()),
                    ..d()
                },
                "kubeconfig_path",
            ),
            (
                KubernetesSecretsConfig {
                    context: Some(" ".into()),
                    ..d()
                },
                "context",
            ),
            (
                KubernetesSecretsConfig {
                    secret_prefix: "Nebula-".into(),
                    ..d()
                },
                "secret_prefix",
            ),
            (
                KubernetesSecretsConfig {
                    secret_prefix: String::new(),
                    ..d()
                },
                "secret_prefix",
            ),
            (
                KubernetesSecretsConfig {
                    list_page_size: 0,
                    ..d()
                },
                "list_page_size",
            ),
        ] {
            assert_eq!(field_of(c), field);
        }
        let mut c = d();
        c.default_labels.insert("example.com/team".into(), "a b".into());
        assert_eq!(field_of(c), "default_labels.example.com/team");
        let mut c = d();
        c.default_labels.insert("team".into(), "pay".into());
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("myorg/team"), "{e}");
        let mut c = d();
        c.default_labels.insert("x/".into(), "v".into());
        assert_eq!(field_of(c), "default_labels.x/");
        let mut c = d();
        c.default_annotations
            .insert("nebula-credential.io/id".into(), "v".into());
        assert_eq!(field_of(c), "default_annotations.nebula-credential.io/id");
        let mut c = d();
        c.default_annotations
            .insert("example.com/big".into(), "v".repeat(200_000));
        assert_eq!(field_of(c), "default_annotations");
        let mut c = d();
        c.timeouts.read_ms = 0;
        assert_eq!(field_of(c), "timeouts.read_ms");
    }

    #[test]
    fn toml_round_trip() {
        let c: KubernetesSecretsConfig = toml::from_str(
            r#"
            namespace = "payments"
            kubeconfig_path = "/etc/kubeconfig"
            context = "prod"
            [default_annotations]
            "example.com/owner" = "team"
            "#,
        )
        .unwrap();
        assert_eq!(c.namespace.as_deref(), Some("payments"));
        assert_eq!(c.context.as_deref(), Some("prod"));
        assert_eq!(c.secret_prefix, "nebula-cred-");
        c.validate().unwrap();
        assert!(toml::from_str::<KubernetesSecretsConfig>("bogus = 1").is_err());
    }
}
