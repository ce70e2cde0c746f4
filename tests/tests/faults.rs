//! The network fault matrix of every remote backend whose feature is on (with `toxiproxy`):
//! the provider, opened through `open()` with short deadlines, reaches its emulator through
//! a Toxiproxy proxy; see `nebula_credential_tests::faults`. One test per backend (they run
//! in parallel), each printing its `faults <backend> …` figures lines.
//!
//! Run one: `cargo xtask emulators up vault toxiproxy`, `eval "$(cargo xtask emulators env)"`,
//! `cargo test -p nebula-credential-tests --features vault,toxiproxy --test faults`.
#![cfg(all(
    feature = "toxiproxy",
    any(feature = "aws", feature = "vault", feature = "kubernetes", feature = "azure")
))]

use nebula_credential_tests::faults::{self, Target, toxiproxy::Toxiproxy};
use nebula_credential_tests::unique;

/// `host:port` of `url` (`http://127.0.0.1:8200` → `127.0.0.1:8200`).
fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_survives_network_faults() {
    use nebula_credential::StorageConfig;
    use nebula_credential::aws::AwsSecretsManagerConfig;
    use nebula_credential_tests::aws;

    let endpoint = aws::endpoint();
    let proxy = Toxiproxy::from_env()
        .create(&unique("aws"), &authority(&endpoint))
        .await;
    let ns = unique("faults");
    let through = AwsSecretsManagerConfig {
        endpoint: Some(format!("http://{}", proxy.listen())),
        retry: faults::retry(),
        timeouts: faults::timeouts(),
        ..aws::config(&ns)
    };
    faults::run(Target {
        backend: aws::NAME,
        proxy,
        through: StorageConfig::Aws(through),
        direct: StorageConfig::Aws(aws::config(&ns)),
    })
    .await;
}

#[cfg(feature = "vault")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_survives_network_faults() {
    use nebula_credential::StorageConfig;
    use nebula_credential::vault::VaultConfig;
    use nebula_credential_tests::vault;

    let proxy = Toxiproxy::from_env()
        .create(&unique("vault"), &authority(&vault::addr()))
        .await;
    let ns = unique("faults");
    let through = VaultConfig {
        retry: faults::retry(),
        timeouts: faults::timeouts(),
        ..vault::with_token(&ns, format!("http://{}", proxy.listen()), vault::root_token())
    };
    faults::run(Target {
        backend: "vault",
        proxy,
        through: StorageConfig::Vault(through),
        direct: StorageConfig::Vault(vault::config(&ns)),
    })
    .await;
}

#[cfg(feature = "kubernetes")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_survives_network_faults() {
    use nebula_credential::StorageConfig;
    use nebula_credential::kubernetes::KubernetesSecretsConfig;
    use nebula_credential_tests::kubernetes;

    let (server, _) = kubernetes::cluster();
    let upstream = authority(&server);
    let proxy = Toxiproxy::from_env().create(&unique("kubernetes"), &upstream).await;
    // The same host (127.0.0.1, which the apiserver's certificate covers), the proxy's port.
    let admin = std::fs::read_to_string(kubernetes::admin_kubeconfig()).expect("admin kubeconfig");
    let proxied = admin.replace(&server, &format!("https://{}", proxy.listen()));
    assert_ne!(proxied, admin, "the admin kubeconfig names {server}");
    let kubeconfig = kubernetes::write_temp_kubeconfig("faults", &proxied);
    let ns = unique("faults");
    kubernetes::ensure_namespace(&ns).await;
    let through = KubernetesSecretsConfig {
        kubeconfig_path: Some(kubeconfig),
        retry: faults::retry(),
        timeouts: faults::timeouts(),
        ..kubernetes::config(&ns)
    };
    faults::run(Target {
        backend: "kubernetes",
        proxy,
        through: StorageConfig::Kubernetes(through),
        direct: StorageConfig::Kubernetes(kubernetes::config(&ns)),
    })
    .await;
}

#[cfg(feature = "azure")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_survives_network_faults() {
    use nebula_credential::StorageConfig;
    use nebula_credential::azure::AzureKeyVaultConfig;
    use nebula_credential_tests::azure;

    let vault_url = azure::vault_url(None);
    let port = authority(&vault_url)
        .rsplit_once(':')
        .map(|(_, p)| p.to_string())
        .expect("a port");
    let proxy = Toxiproxy::from_env()
        .create(&unique("azure"), &format!("127.0.0.1:{port}"))
        .await;
    let ns = unique("faults").replace('_', "-");
    // The same host name (`nebula.localhost`, which the emulator's certificate covers and the
    // provider resolves to loopback), the proxy's port.
    let through = AzureKeyVaultConfig {
        endpoint: vault_url.replace(&format!(":{port}"), &format!(":{}", proxy.port())),
        retry: faults::retry(),
        timeouts: faults::timeouts(),
        ..azure::config(&ns)
    };
    faults::run(Target {
        backend: "azure",
        proxy,
        through: StorageConfig::Azure(through),
        direct: StorageConfig::Azure(azure::config(&ns)),
    })
    .await;
}
