//! The transport rules of the kubeconfig, before any request: TLS verification is never
//! turned off, the bearer token never travels in clear to another host, malformed servers
//! (a port outside 1..=65535 among them) are refused, and kube's debug override of the
//! server URL is ignored. Where environment variables decide (`KUBECONFIG`,
//! `KUBE_RS_DEBUG_OVERRIDE_URL`), the case runs in a child process of this test binary.

mod support;

use std::process::Output;
use std::sync::Arc;

use nebula_credential_core::{ErrorKind, StorageError, StorageProvider};
use nebula_credential_kubernetes::{KubernetesSecretsConfig, KubernetesSecretsProvider};
use support::{Requests, TOKEN, serve, status_body};

/// Set in a child process to the name of the test it runs.
const CHILD: &str = "NEBULA_K8S_TEST_CHILD";

fn write(dir: &tempfile::TempDir, cluster: &str) -> std::path::PathBuf {
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n{cluster}\n\
             users:\n- name: u\n  user:\n    token: {TOKEN}\n\
             contexts:\n- name: dev-ctx\n  context: {{cluster: c, user: u, namespace: payments}}\n\
             current-context: dev-ctx\n"
        ),
    )
    .unwrap();
    path
}

async fn open(path: Option<std::path::PathBuf>) -> Result<KubernetesSecretsProvider, StorageError> {
    KubernetesSecretsProvider::new(KubernetesSecretsConfig {
        kubeconfig_path: path,
        ..KubernetesSecretsConfig::default()
    })
    .await
}

/// A `Config` error on `kubeconfig_path` naming `file`, the context and `says`, without the token.
fn assert_refused(result: Result<KubernetesSecretsProvider, StorageError>, file: &str, says: &str) {
    let err = result.expect_err(says);
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let StorageError::Config(config) = &err else {
        unreachable!()
    };
    assert_eq!(config.field(), "kubeconfig_path", "{err}");
    let m = err.to_string();
    for part in [file, "context \"dev-ctx\"", says] {
        assert!(m.contains(part), "{part:?} missing from: {m}");
    }
    assert!(!format!("{m} {err:?}").contains(TOKEN), "{m}");
}

#[tokio::test]
async fn insecure_skip_tls_verify_is_refused_naming_the_kubeconfig_and_context() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "    server: https://10.0.0.5:6443\n    insecure-skip-tls-verify: true",
    );
    let file = path.display().to_string();
    assert_refused(open(Some(path)).await, &file, "insecure-skip-tls-verify: true");
}

#[tokio::test]
async fn plain_http_is_refused_unless_the_host_is_loopback() {
    for server in ["http://10.0.0.5:8080", "http://k8s.example.com"] {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, &format!("    server: {server}"));
        let file = path.display().to_string();
        assert_refused(open(Some(path)).await, &file, "in clear");
    }
    for server in ["http://127.0.0.1:8001", "http://localhost:8001", "http://[::1]:8001"] {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, &format!("    server: {server}"));
        open(Some(path)).await.expect(server);
    }
}

/// `https://127.0.0.1:99999` was accepted, while other malformed servers were refused.
#[tokio::test]
async fn malformed_servers_are_refused_at_open_port_out_of_range_included() {
    for (server, says) in [
        ("https://127.0.0.1:99999", "port"),
        ("https://127.0.0.1:0", "port 0"),
        ("https://user:pw@k8s.example.com", "user info"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, &format!("    server: {server}"));
        let file = path.display().to_string();
        let result = open(Some(path)).await;
        if let Err(e) = &result {
            assert!(!e.to_string().contains("pw@"), "{e}");
        }
        assert_refused(result, &file, says);
    }
}

/// Runs this test binary's test `name` alone in a child process with `envs` set.
async fn run_child(name: &str, envs: Vec<(&'static str, String)>) -> Output {
    let exe = std::env::current_exe().unwrap();
    let name = name.to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args(["--exact", &name, "--nocapture", "--test-threads=1"])
            .env(CHILD, &name)
            .envs(envs)
            .output()
    })
    .await
    .unwrap()
    .expect("run the test binary");
    assert!(
        output.status.success(),
        "the child failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn is_child(name: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|v| v == name)
}

/// The kubeconfig found through `KUBECONFIG` (no `kubeconfig_path`) follows the same rules,
/// and the message names the file it came from.
#[tokio::test]
async fn a_kubeconfig_from_the_kubeconfig_variable_follows_the_same_rules() {
    const NAME: &str = "a_kubeconfig_from_the_kubeconfig_variable_follows_the_same_rules";
    if is_child(NAME) {
        let file = std::env::var("KUBECONFIG").unwrap();
        assert_refused(open(None).await, &file, "insecure-skip-tls-verify: true");
        let err = open(None).await.unwrap_err();
        assert!(err.to_string().contains("KUBECONFIG"), "{err}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "    server: https://10.0.0.5:6443\n    insecure-skip-tls-verify: true",
    );
    run_child(NAME, vec![("KUBECONFIG", path.display().to_string())]).await;
}

/// kube's `Config::infer` sends every request (token included) to
/// `KUBE_RS_DEBUG_OVERRIDE_URL`: the provider never does. The kubeconfig's server gets the
/// request; the override's server gets none.
#[tokio::test]
async fn kube_debug_override_url_is_ignored() {
    const NAME: &str = "kube_debug_override_url_is_ignored";
    if is_child(NAME) {
        let p = open(None).await.expect("open through KUBECONFIG");
        assert_eq!(p.namespace(), "payments");
        let id = "api_key".parse().unwrap();
        assert!(!p.exists(&id).await.expect("the kubeconfig's server answers 404"));
        return;
    }
    let (kubeconfig_server, asked) = serve(Arc::new(|_: &str, _| (404, status_body(404, "NotFound")))).await;
    let (override_server, diverted): (String, Requests) =
        serve(Arc::new(|_: &str, _| (503, status_body(503, "ServiceUnavailable")))).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, &format!("    server: {kubeconfig_server}"));
    run_child(
        NAME,
        vec![
            ("KUBECONFIG", path.display().to_string()),
            ("KUBE_RS_DEBUG_OVERRIDE_URL", override_server),
            ("KUBE_RS_DEBUG_IMPERSONATE_USER", "system:admin".into()),
        ],
    )
    .await;
    assert_eq!(diverted.lock().unwrap().len(), 0, "a request went to the override URL");
    assert_eq!(asked.lock().unwrap().len(), 1);
}

/// Kubeconfigs broken next to a credential (a token's unclosed quote, a user that is a bare
/// string, a misindented line after `client-key-data`).
fn broken_next_to_a_secret() -> Vec<String> {
    let head = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://10.0.0.5:6443\n\
                contexts:\n- name: a\n  context: {cluster: c, user: u}\ncurrent-context: a\nusers:\n- name: u\n";
    [
        format!("  user:\n    token: \"{TOKEN}\n"),
        format!("  user: {TOKEN}\n"),
        format!("  user:\n    token: [{TOKEN}]\n"),
        format!("  user:\n    client-key-data: {TOKEN}\n   password: {TOKEN}\n x\n"),
    ]
    .into_iter()
    .map(|users| format!("{head}{users}"))
    .collect()
}

fn assert_no_snippet(err: &StorageError, what: &str) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(TOKEN), "{what}: the kubeconfig's text leaked: {shown}");
    assert_eq!(err.kind(), ErrorKind::Config, "{what}: {err}");
    assert!(
        err.to_string().contains("line "),
        "{what}: the position is named: {err}"
    );
}

/// kube's YAML parser quotes the lines around a syntax error in its message, credentials
/// included: a kubeconfig that does not parse is refused naming the file and the line and
/// column only, whether from `kubeconfig_path` or from `KUBECONFIG`.
#[tokio::test]
async fn a_kubeconfig_that_does_not_parse_is_named_without_its_text() {
    const NAME: &str = "a_kubeconfig_that_does_not_parse_is_named_without_its_text";
    if is_child(NAME) {
        let err = open(None).await.unwrap_err();
        assert_no_snippet(&err, "KUBECONFIG");
        let err = KubernetesSecretsProvider::new(KubernetesSecretsConfig {
            context: Some("a".into()),
            ..KubernetesSecretsConfig::default()
        })
        .await
        .unwrap_err();
        assert_no_snippet(&err, "KUBECONFIG with a context");
        return;
    }
    for (i, text) in broken_next_to_a_secret().into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, text).unwrap();
        let err = open(Some(path.clone())).await.unwrap_err();
        assert_no_snippet(&err, &format!("kubeconfig_path #{i}"));
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        if i == 0 {
            run_child(NAME, vec![("KUBECONFIG", path.display().to_string())]).await;
        }
    }
}

/// With a proxy in the environment kube parses `NO_PROXY` and fails on entries it cannot
/// read (an empty one from a trailing comma, `<local>`): `open()` names `NO_PROXY` and what
/// to change in it, whether the kubeconfig comes from `kubeconfig_path` or `KUBECONFIG`.
#[tokio::test]
async fn a_no_proxy_kube_cannot_parse_is_named() {
    const NAME: &str = "a_no_proxy_kube_cannot_parse_is_named";
    if is_child(NAME) {
        let path = std::env::var("NEBULA_TEST_KUBECONFIG_FILE").unwrap();
        for err in [
            open(Some(path.into())).await.unwrap_err(),
            open(None).await.unwrap_err(),
        ] {
            assert_eq!(err.kind(), ErrorKind::Config, "{err}");
            assert!(err.to_string().contains("NO_PROXY"), "{err}");
            assert!(err.to_string().contains("remove empty entries"), "{err}");
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "    server: https://10.0.0.5:6443");
    for no_proxy in ["localhost,127.0.0.1,", "<local>"] {
        run_child(
            NAME,
            vec![
                ("NEBULA_TEST_KUBECONFIG_FILE", path.display().to_string()),
                ("KUBECONFIG", path.display().to_string()),
                ("HTTPS_PROXY", "http://127.0.0.1:9".into()),
                ("NO_PROXY", no_proxy.into()),
            ],
        )
        .await;
    }
}

/// A client certificate and key that cannot be used (the key is not PEM) fail when the client
/// is built, before any request: that is the kubeconfig's fault, so `open()` says `Config`,
/// naming the kubeconfig, not a failed API request.
#[tokio::test]
async fn an_unusable_client_key_is_a_config_error_naming_the_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    // base64 of "not a key" and "not a certificate".
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://10.0.0.5:6443\n\
         users:\n- name: u\n  user:\n    client-key-data: bm90IGEga2V5\n    client-certificate-data: \
         bm90IGEgY2VydGlmaWNhdGU=\ncontexts:\n- name: dev-ctx\n  context: {cluster: c, user: u}\n\
         current-context: dev-ctx\n",
    )
    .unwrap();
    let err = open(Some(path.clone())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let m = err.to_string();
    assert!(m.contains(&path.display().to_string()), "{m}");
    assert!(m.contains("client-key-data"), "{m}");
}
