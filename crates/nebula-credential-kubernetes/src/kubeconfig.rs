//! Loading the kube client configuration, and the transport rules it must meet.
//!
//! The configuration comes from `kubeconfig_path`, else from `KUBECONFIG` or
//! `~/.kube/config` (kube's own order), else from the pod's in-cluster settings. Whatever
//! its source, it is refused with a [`ConfigError`](nebula_credential_core::ConfigError)
//! naming the kubeconfig and the context when it would
//! - turn TLS verification off (`insecure-skip-tls-verify: true`);
//! - send the bearer token in clear (`server: http://` to a host that is not loopback);
//! - point at a malformed server (no host, a port outside 1..=65535, user info, a query);
//! - send a plain-`http://` server's traffic, token included, through a proxy, or use a
//!   proxy scheme other than `http`, `https` or `socks5`.
//!
//! Proxies work as with kubectl: the cluster's `proxy-url`, else `HTTPS_PROXY` /
//! `https_proxy`, tunnel TLS end to end (HTTP `CONNECT` or SOCKS5). A proxy from the
//! environment is not used for a loopback server nor for a server `NO_PROXY` / `no_proxy`
//! names (kube 5 matches `NO_PROXY` against the proxy's own URL, so this crate matches it
//! against the server, as Go's `net/http` does). No message shows a proxy's user info.
//!
//! kube's debug variables (`KUBE_RS_DEBUG_OVERRIDE_URL`, `KUBE_RS_DEBUG_IMPERSONATE_USER`,
//! `KUBE_RS_DEBUG_IMPERSONATE_GROUP`) are never applied: `Config::infer` would redirect every
//! request, token included, to the URL in the environment.

use std::path::PathBuf;

use kube::Config;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
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
                .map_err(|e| {
                    config_error(
                        "kubeconfig_path",
                        format!("{shown:?} cannot be used: {}", without_text(&e)),
                    )
                })?;
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
                    format!("cannot be used with KUBECONFIG or ~/.kube/config: {}", without_text(&e)),
                ));
            }
            // kube's order: the kubeconfig first, then the pod's settings.
            Err(kubeconfig_error) => return in_cluster(&without_text(&kubeconfig_error)),
        },
    };
    let context = config.context.clone().or_else(|| kubeconfig.current_context.clone());
    let explicit_proxy = context.as_deref().is_some_and(|c| names_a_proxy(&kubeconfig, c));
    let mut kube_config = match Config::from_custom_kubeconfig(kubeconfig, &options).await {
        Ok(kube_config) => kube_config,
        // Like `Config::infer`: a default kubeconfig that cannot be loaded gives way to the pod's settings.
        Err(e) if matches!(source, Source::Default) && config.context.is_none() => {
            return in_cluster(&without_text(&e));
        }
        Err(e) => {
            let whence = match &source {
                Source::Path(p) => format!("{:?}", p.display().to_string()),
                _ => "KUBECONFIG or ~/.kube/config".into(),
            };
            return Err(config_error(
                context_field,
                format!("cannot be used with {whence}: {}", without_text(&e)),
            ));
        }
    };
    if !explicit_proxy {
        kube_config.proxy_url = kube_config
            .proxy_url
            .take()
            .filter(|_| !bypasses_env_proxy(&kube_config.cluster_url))
            .map(with_default_scheme);
    }
    finish(&mut kube_config, &source, context.as_deref()).map(|()| kube_config)
}

/// kube's error about a kubeconfig, without the kubeconfig's text: its YAML parser quotes
/// the lines around a syntax error (tokens and keys included), so a parse error names the
/// line and column only.
fn without_text(e: &KubeconfigError) -> String {
    const HIDDEN: &str = "its text is not shown, as it may hold a credential";
    match e {
        KubeconfigError::Parse(yaml) => match yaml.location() {
            Some(at) => format!(
                "it is not a valid kubeconfig: YAML error at line {}, column {} ({HIDDEN})",
                at.line(),
                at.column()
            ),
            None => format!("it is not a valid kubeconfig: YAML error ({HIDDEN})"),
        },
        KubeconfigError::ParseNoProxy(e) => format!(
            "with a proxy set, kube cannot parse NO_PROXY (or no_proxy): {e}; remove empty entries (e.g. a \
             trailing comma) and entries that are not a host, an IP address or a CIDR range"
        ),
        other => other.to_string(),
    }
}

/// Whether the cluster of `context` in `kubeconfig` sets a `proxy-url` (else kube takes
/// `HTTPS_PROXY` from the environment).
fn names_a_proxy(kubeconfig: &Kubeconfig, context: &str) -> bool {
    let Some(cluster) = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.as_str())
    else {
        return false;
    };
    kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == cluster)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.proxy_url.as_deref())
        .is_some_and(|p| !p.is_empty())
}

/// A proxy from the environment without a scheme (`HTTPS_PROXY=proxy.corp:3128`) is an
/// HTTP proxy, as for curl and Go's `net/http`; kube alone would refuse it.
fn with_default_scheme(proxy: http::Uri) -> http::Uri {
    match (proxy.scheme(), proxy.authority()) {
        (None, Some(authority)) => format!("http://{authority}").parse().unwrap_or(proxy),
        _ => proxy,
    }
}

/// The host of `uri` without IPv6 brackets, lower case.
fn host_of(uri: &http::Uri) -> Option<String> {
    uri.host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase())
}

/// Whether `host` is `localhost` or a loopback address.
fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a proxy from the environment must not carry requests to `server`: it is
/// loopback, or `NO_PROXY` (else `no_proxy`) names it (Go's `net/http` rules: `*`, a host
/// and its subdomains, `.domain`, an IP, a CIDR range, each with an optional `:port`).
fn bypasses_env_proxy(server: &http::Uri) -> bool {
    let Some(host) = host_of(server) else {
        return false;
    };
    if is_loopback(&host) {
        return true;
    }
    let no_proxy = ["NO_PROXY", "no_proxy"]
        .into_iter()
        .find_map(|v| std::env::var(v).ok().filter(|v| !v.is_empty()));
    let port = server
        .port_u16()
        .unwrap_or(if server.scheme_str() == Some("http") { 80 } else { 443 });
    no_proxy.is_some_and(|list| list.split(',').any(|entry| no_proxy_matches(entry.trim(), &host, port)))
}

/// Whether one `NO_PROXY` entry matches `host` (lower case, no brackets) on `port`.
fn no_proxy_matches(entry: &str, host: &str, port: u16) -> bool {
    let entry = entry.to_ascii_lowercase();
    if entry.is_empty() {
        return false;
    }
    if entry == "*" {
        return true;
    }
    if let Some((net, bits)) = entry.split_once('/') {
        return match (
            net.parse::<std::net::IpAddr>(),
            bits.parse::<u32>(),
            host.parse::<std::net::IpAddr>(),
        ) {
            (Ok(net), Ok(bits), Ok(ip)) => in_range(net, bits, ip),
            _ => false,
        };
    }
    // `host:port`, `[v6]:port`, a bare IPv6 address, or a bare host.
    let (name, entry_port) = match entry.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, tail)) => (
                ip.to_string(),
                tail.strip_prefix(':').and_then(|p| p.parse::<u16>().ok()),
            ),
            None => return false,
        },
        None if entry.parse::<std::net::IpAddr>().is_ok() => (entry.clone(), None),
        None => match entry.rsplit_once(':') {
            Some((name, p)) => match p.parse::<u16>() {
                Ok(p) => (name.to_string(), Some(p)),
                Err(_) => return false,
            },
            None => (entry.clone(), None),
        },
    };
    if entry_port.is_some_and(|p| p != port) {
        return false;
    }
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        return host.parse::<std::net::IpAddr>().is_ok_and(|h| h == ip);
    }
    let domain = name.trim_start_matches("*.").trim_start_matches('.');
    !domain.is_empty() && (host == domain || host.ends_with(&format!(".{domain}")))
}

/// Whether `ip` lies in `net/bits`.
fn in_range(net: std::net::IpAddr, bits: u32, ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    let (net, ip, width) = match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => (u128::from(n.to_bits()), u128::from(i.to_bits()), 32),
        (IpAddr::V6(n), IpAddr::V6(i)) => (n.to_bits(), i.to_bits(), 128),
        _ => return false,
    };
    if bits > width {
        return false;
    }
    let shift = width - bits;
    bits == 0 || (net >> shift) == (ip >> shift)
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

/// A URL for a message: as written, unless it carries user info.
fn shown(uri: &http::Uri) -> String {
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        format!("{}://… (with user info)", uri.scheme_str().unwrap_or("?"))
    } else {
        uri.to_string()
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
    let server = shown(&config.cluster_url);
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
    if let Some(proxy) = &config.proxy_url {
        let via = format!(
            "the proxy {:?} (its cluster's `proxy-url`, else HTTPS_PROXY)",
            shown(proxy)
        );
        if !matches!(proxy.scheme_str(), Some("http" | "https" | "socks5")) || proxy.host().is_none() {
            return Err(format!(
                "uses {via}, which is not a proxy URL nebula-credential can use; use http://, https:// or \
                 socks5:// with a host"
            ));
        }
        if config.cluster_url.scheme_str() != Some("https") {
            return Err(format!(
                "has the plain-http server {server:?} and uses {via}: the bearer token would cross the proxy in \
                 clear; use the cluster's https:// address, remove the `proxy-url`, or add the server's host to \
                 NO_PROXY"
            ));
        }
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

    fn proxied(server: &str, proxy: &str) -> Config {
        let mut c = with_url(server);
        c.proxy_url = Some(proxy.parse().unwrap());
        c
    }

    #[test]
    fn a_proxy_never_carries_plain_http_nor_shows_its_user_info() {
        for ok in ["http://proxy:3128", "https://proxy:3128", "socks5://proxy:1080"] {
            check_transport(&proxied("https://10.0.0.5:6443", ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (server, proxy, says) in [
            ("http://127.0.0.1:8001", "http://u:s3cret@proxy:3128", "in clear"),
            ("http://localhost:8001", "socks5://proxy:1080", "in clear"),
            ("https://10.0.0.5:6443", "ftp://u:s3cret@proxy", "proxy URL"),
            ("https://10.0.0.5:6443", "socks4://proxy:1080", "proxy URL"),
        ] {
            let rule = check_transport(&proxied(server, proxy)).expect_err(proxy);
            assert!(rule.contains(says), "{server} {proxy}: {rule}");
            assert!(!rule.contains("s3cret"), "{rule}");
        }
    }

    #[test]
    fn a_proxy_from_the_environment_without_a_scheme_is_an_http_proxy() {
        for (raw, expected) in [
            ("proxy.corp:3128", "http://proxy.corp:3128/"),
            ("http://proxy.corp:3128", "http://proxy.corp:3128/"),
            ("socks5://proxy.corp:1080", "socks5://proxy.corp:1080/"),
        ] {
            let uri: http::Uri = raw.parse().unwrap();
            assert_eq!(with_default_scheme(uri).to_string(), expected, "{raw}");
        }
        let proxied = proxied("https://10.0.0.5:6443", "http://proxy.corp:3128");
        check_transport(&proxied).unwrap();
    }

    #[test]
    fn no_proxy_entries_match_the_server_as_go_does() {
        for (entry, host, port) in [
            ("*", "k8s.example.com", 443),
            ("example.com", "k8s.example.com", 443),
            ("example.com", "example.com", 443),
            (".example.com", "k8s.example.com", 443),
            ("*.example.com", "k8s.example.com", 443),
            ("K8S.example.com:6443", "k8s.example.com", 6443),
            ("10.0.0.5", "10.0.0.5", 6443),
            ("10.0.0.0/8", "10.1.2.3", 6443),
            ("fd00::/8", "fd00::1", 6443),
            ("[fd00::1]:6443", "fd00::1", 6443),
            ("fd00::1", "fd00::1", 6443),
        ] {
            assert!(no_proxy_matches(entry, host, port), "{entry} {host}:{port}");
        }
        for (entry, host, port) in [
            ("example.com", "notexample.com", 443),
            ("k8s.example.com:6443", "k8s.example.com", 443),
            ("10.0.0.5", "10.0.0.6", 443),
            ("10.0.0.0/8", "11.0.0.1", 443),
            ("10.0.0.0/33", "10.0.0.1", 443),
            ("", "k8s.example.com", 443),
            (".", "k8s.example.com", 443),
        ] {
            assert!(!no_proxy_matches(entry, host, port), "{entry} {host}:{port}");
        }
        for loopback in ["https://127.0.0.1:6443", "http://localhost:8001", "https://[::1]:6443"] {
            assert!(bypasses_env_proxy(&loopback.parse().unwrap()), "{loopback}");
        }
    }
}
