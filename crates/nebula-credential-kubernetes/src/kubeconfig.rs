//! Loading the kube client configuration, and the transport rules it must meet.
//!
//! The configuration comes from `kubeconfig_path`, else from `KUBECONFIG` or
//! `~/.kube/config` (kube's own order), else from the pod's in-cluster settings. Whatever
//! its source, it is refused with a [`ConfigError`](nebula_credential_core::ConfigError)
//! naming the kubeconfig and the context when it would
//! - turn TLS verification off (`insecure-skip-tls-verify: true`);
//! - send the bearer token in clear (`server: http://` to a host that is not loopback);
//! - point at a malformed server (no host, a port outside 1..=65535, user info, a query).
//!
//! kube's debug variables (`KUBE_RS_DEBUG_OVERRIDE_URL`, `KUBE_RS_DEBUG_IMPERSONATE_USER`,
//! `KUBE_RS_DEBUG_IMPERSONATE_GROUP`) are never applied: `Config::infer` would redirect every
//! request, token included, to the URL in the environment.

use std::path::PathBuf;

use kube::Config;
use kube::config::{KubeConfigOptions, Kubeconfig};
use nebula_credential_core::remote::check_service_url;
use nebula_credential_core::{ConfigError, StorageError};

use crate::PROVIDER;
use crate::config::KubernetesSecretsConfig;

/// The debug variables of kube that this crate ignores (see the module docs).
pub(crate) const IGNORED_DEBUG_VARIABLES: [&str; 3] = [
    "KUBE_RS_DEBUG_OVERRIDE_URL",
    "KUBE_RS_DEBUG_IMPERSONATE_USER",
    "KUBE_RS_DEBUG_IMPERSONATE_GROUP",
];

fn config_error(field: &str, rule: String) -> StorageError {
    ConfigError::new(PROVIDER, field, rule).into()
}

/// Where a configuration came from, as messages name it.
enum Source {
    /// `kubeconfig_path`.
    Path(PathBuf),
    /// `KUBECONFIG` or `~/.kube/config`.
    Default,
    /// The pod's service account and `KUBERNETES_SERVICE_HOST`.
    InCluster,
}

impl Source {
    /// The start of a rule about `kubeconfig_path`, naming the file and the context.
    fn whence(&self, context: Option<&str>) -> String {
        let context = context.map_or_else(|| "its current context".to_string(), |c| format!("context {c:?}"));
        match self {
            Source::Path(path) => format!("({:?}), {context},", path.display().to_string()),
            Source::Default => match std::env::var("KUBECONFIG").ok().filter(|v| !v.is_empty()) {
                Some(files) => format!("is not set, and the kubeconfig from KUBECONFIG ({files:?}), {context},"),
                None => format!("is not set, and the kubeconfig ~/.kube/config, {context},"),
            },
            Source::InCluster => "is not set, and the in-cluster configuration (KUBERNETES_SERVICE_HOST)".into(),
        }
    }
}

/// The kube client configuration `config` selects, checked against the transport rules,
/// with kube's own retries turned off.
pub(crate) async fn load(config: &KubernetesSecretsConfig) -> Result<Config, StorageError> {
    for variable in IGNORED_DEBUG_VARIABLES {
        if std::env::var_os(variable).is_some() {
            tracing::warn!(
                provider = PROVIDER,
                variable,
                "a kube debug variable is set and ignored: nebula-credential uses the kubeconfig as it is"
            );
        }
    }
    let options = KubeConfigOptions {
        context: config.context.clone(),
        ..KubeConfigOptions::default()
    };
    let context_field = if config.context.is_some() {
        "context"
    } else {
        "kubeconfig_path"
    };
    let (kubeconfig, source) = match &config.kubeconfig_path {
        Some(path) => {
            let shown = path.display().to_string();
            let read = path.clone();
            let kubeconfig = tokio::task::spawn_blocking(move || Kubeconfig::read_from(read))
                .await
                .map_err(|e| config_error("kubeconfig_path", format!("could not be read ({e})")))?
                .map_err(|e| config_error("kubeconfig_path", format!("{shown:?} cannot be used: {e}")))?;
            (kubeconfig, Source::Path(path.clone()))
        }
        None => match tokio::task::spawn_blocking(Kubeconfig::read)
            .await
            .map_err(|e| config_error("kubeconfig_path", format!("could not be read ({e})")))?
        {
            Ok(kubeconfig) => (kubeconfig, Source::Default),
            Err(e) if config.context.is_some() => {
                return Err(config_error(
                    "context",
                    format!("cannot be used with KUBECONFIG or ~/.kube/config: {e}"),
                ));
            }
            // kube's order: the kubeconfig first, then the pod's settings.
            Err(kubeconfig_error) => return in_cluster(&kubeconfig_error),
        },
    };
    let context = config.context.clone().or_else(|| kubeconfig.current_context.clone());
    let mut kube_config = match Config::from_custom_kubeconfig(kubeconfig, &options).await {
        Ok(kube_config) => kube_config,
        // Like `Config::infer`: a default kubeconfig that cannot be loaded gives way to the pod's settings.
        Err(e) if matches!(source, Source::Default) && config.context.is_none() => return in_cluster(&e),
        Err(e) => {
            let whence = match &source {
                Source::Path(p) => format!("{:?}", p.display().to_string()),
                _ => "KUBECONFIG or ~/.kube/config".into(),
            };
            return Err(config_error(
                context_field,
                format!("cannot be used with {whence}: {e}"),
            ));
        }
    };
    finish(&mut kube_config, &source, context.as_deref()).map(|()| kube_config)
}

/// The in-cluster configuration, checked, when no kubeconfig could be used (`kubeconfig_error`).
fn in_cluster(kubeconfig_error: &dyn std::fmt::Display) -> Result<Config, StorageError> {
    let mut kube_config = Config::incluster().map_err(|in_cluster| {
        config_error(
            "kubeconfig_path",
            format!(
                "is not set and no configuration was found (kubeconfig: {kubeconfig_error}; in-cluster: \
                 {in_cluster}); set it, KUBECONFIG, or run in a pod"
            ),
        )
    })?;
    finish(&mut kube_config, &Source::InCluster, None).map(|()| kube_config)
}

/// Checks the transport rules and turns kube's own retries off.
fn finish(kube_config: &mut Config, source: &Source, context: Option<&str>) -> Result<(), StorageError> {
    if let Err(rule) = check_transport(kube_config) {
        return Err(config_error(
            "kubeconfig_path",
            format!("{} {rule}", source.whence(context)),
        ));
    }
    kube_config.default_retry = false;
    Ok(())
}

/// The server URL for a message: as written, unless it carries user info.
fn shown_server(config: &Config) -> String {
    let url = config.cluster_url.to_string();
    if config.cluster_url.authority().is_some_and(|a| a.as_str().contains('@')) {
        format!(
            "{}://… (with user info)",
            config.cluster_url.scheme_str().unwrap_or("?")
        )
    } else {
        url
    }
}

/// The transport rules; the message completes "… the kubeconfig (file), context X,".
pub(crate) fn check_transport(config: &Config) -> Result<(), String> {
    if config.accept_invalid_certs {
        return Err(
            "sets `insecure-skip-tls-verify: true` for its cluster, which would turn off verification of the API \
             server's certificate; nebula-credential never does that: remove it and set the cluster's \
             `certificate-authority-data` (or `certificate-authority`) to the CA that signed the server certificate"
                .into(),
        );
    }
    let server = shown_server(config);
    let raw = config.cluster_url.to_string();
    if let Err(rule) = check_service_url(&raw, true, "") {
        return Err(format!("has the server {server:?}, which {rule}"));
    }
    if config.cluster_url.port_u16() == Some(0) {
        return Err(format!(
            "has the server {server:?}, whose port 0 cannot be connected to; use 1 to 65535"
        ));
    }
    if check_service_url(&raw, false, "").is_err() {
        return Err(format!(
            "has the server {server:?}: plain http to a host that is not loopback would send the bearer token in \
             clear; use the cluster's https:// address (plain http is accepted only to localhost, 127.0.0.0/8 or \
             ::1, e.g. `kubectl proxy`)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url(url: &str) -> Config {
        Config::new(url.parse().unwrap())
    }

    #[test]
    fn the_transport_rules() {
        for ok in [
            "https://10.0.0.5:6443",
            "https://k8s.example.com",
            "https://rancher.example.com/k8s/clusters/c-1",
            "http://127.0.0.1:8001",
            "http://localhost:8001",
            "http://[::1]:8001",
        ] {
            check_transport(&with_url(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, says) in [
            ("http://10.0.0.5:8080", "in clear"),
            ("http://k8s.example.com", "in clear"),
            ("https://127.0.0.1:99999", "port"),
            ("https://127.0.0.1:0", "port 0"),
            ("https://user:pw@k8s.example.com", "user info"),
        ] {
            let rule = check_transport(&with_url(bad)).expect_err(bad);
            assert!(rule.contains(says), "{bad}: {rule}");
            assert!(!rule.contains("pw@"), "{bad}: {rule}");
        }
        let mut insecure = with_url("https://10.0.0.5:6443");
        insecure.accept_invalid_certs = true;
        assert!(
            check_transport(&insecure)
                .unwrap_err()
                .contains("insecure-skip-tls-verify")
        );
    }
}
