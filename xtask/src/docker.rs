//! The docker runtime: `docker-compose.test.yml` brings the emulators up (LocalStack,
//! OpenBao, Lowkey Vault, k3s), then the same variables as the native runtime are exported.
//! Without a Docker engine this path is checked only by
//! `docker compose config` where the plugin exists, and by the unit test that keeps the
//! compose file and xtask's table in agreement. Each emulator's variables come from its
//! table row's `docker_env` function.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context, Result};

use crate::emulator::{Emulator, Env, Runtime, Spec};
use crate::native;
use crate::process::{Proc, run_checked, with_retries};
use crate::state::{Running, dir, workspace_root};

const ROOT_TOKEN: &str = "nebula-dev-root";

fn compose() -> Command {
    let mut c = Command::new("docker");
    c.arg("compose")
        .arg("-f")
        .arg(workspace_root().join("docker-compose.test.yml"));
    c
}

/// Starts the services of `emulators` and waits for their health checks.
pub(crate) fn up(emulators: &[Emulator]) -> Result<BTreeMap<Emulator, Running>> {
    let services: Vec<&str> = emulators.iter().map(|e| e.spec().docker_service).collect();
    with_retries("docker compose up", || {
        run_checked(
            compose().args(["up", "--detach", "--wait"]).args(&services),
            "docker compose up",
        )
    })?;
    let mut out = BTreeMap::new();
    for &e in emulators {
        let env = (e.spec().docker_env)(e.spec())?;
        out.insert(
            e,
            Running {
                runtime: Runtime::Docker,
                procs: Vec::new(),
                owner: Proc::me(),
                ready: true,
                env,
                log: None,
            },
        );
    }
    Ok(out)
}

/// Stops and removes the services of `emulators` with their volumes.
pub(crate) fn down(emulators: &[Emulator]) -> Result<()> {
    let services: Vec<&str> = emulators.iter().map(|e| e.spec().docker_service).collect();
    run_checked(
        compose().args(["rm", "--stop", "--force", "--volumes"]).args(&services),
        "docker compose rm",
    )
    .map(drop)
}

fn exec(service: &str, args: &[&str]) -> Result<String> {
    run_checked(
        compose().args(["exec", "-T", service]).args(args),
        &format!("docker compose exec {service}"),
    )
}

/// The AWS emulator's variables under docker.
pub(crate) fn aws_env(spec: &Spec) -> Result<Env> {
    Ok(native::aws_env(format!("http://127.0.0.1:{}", spec.docker_port)))
}

/// The vault emulator's variables under docker, after the same setup as the native start:
/// AppRole with a normal and a short-TTL role, a read-only policy and token, and a second
/// dev server with `-dev-tls` inside the same container (published on 8201).
pub(crate) fn vault_env(spec: &Spec) -> Result<Env> {
    let service = spec.docker_service;
    let bao = |args: &[&str]| {
        let mut full = vec![
            "env",
            "BAO_ADDR=http://127.0.0.1:8200",
            "BAO_TOKEN=nebula-dev-root",
            "bao",
        ];
        full.extend_from_slice(args);
        exec(service, &full)
    };
    let policy = |name: &str, hcl: &str| {
        exec(
            service,
            &[
                "sh",
                "-c",
                &format!(
                    "printf '%s' '{hcl}' | BAO_ADDR=http://127.0.0.1:8200 BAO_TOKEN=nebula-dev-root bao policy write {name} -"
                ),
            ],
        )
    };
    bao(&["auth", "enable", "approle"])?;
    policy("nebula-test", native::VAULT_POLICY)?;
    policy("nebula-readonly", native::VAULT_READONLY_POLICY)?;
    let mut vars = Env::new();
    for (role, ttl, max_ttl, var) in [
        ("nebula-test", "1h", "4h", "NEBULA_TEST_VAULT_APPROLE"),
        ("nebula-short", "3s", "8s", "NEBULA_TEST_VAULT_SHORT_APPROLE"),
    ] {
        bao(&[
            "write",
            &format!("auth/approle/role/{role}"),
            "token_policies=nebula-test",
            &format!("token_ttl={ttl}"),
            &format!("token_max_ttl={max_ttl}"),
        ])?;
        let role_id = bao(&["read", "-field=role_id", &format!("auth/approle/role/{role}/role-id")])?;
        let secret_id = bao(&[
            "write",
            "-f",
            "-field=secret_id",
            &format!("auth/approle/role/{role}/secret-id"),
        ])?;
        vars.insert(format!("{var}_ROLE_ID"), role_id.trim().to_string());
        vars.insert(format!("{var}_SECRET_ID"), secret_id.trim().to_string());
    }
    let readonly = bao(&["token", "create", "-policy=nebula-readonly", "-ttl=24h", "-field=token"])?;
    vars.insert("NEBULA_TEST_VAULT_READONLY_TOKEN".into(), readonly.trim().to_string());
    run_checked(
        compose().args([
            "exec",
            "-d",
            "-T",
            service,
            "bao",
            "server",
            "-dev",
            "-dev-tls",
            "-dev-tls-cert-dir=/tmp/nebula-tls",
            "-dev-no-store-token",
            "-dev-root-token-id=nebula-dev-root",
            "-dev-listen-address=0.0.0.0:8201",
        ]),
        "docker compose exec (TLS dev server)",
    )?;
    // The `bao` CLI of the container, for the interop test: BAO_ADDR / BAO_TOKEN are passed in.
    let cli = dir("run")?.join("bao-in-docker.sh");
    std::fs::write(
        &cli,
        format!(
            "#!/bin/sh\nexec docker compose -f '{}' exec -T -e BAO_ADDR=http://127.0.0.1:8200 -e BAO_TOKEN=\"$BAO_TOKEN\" {service} bao \"$@\"\n",
            workspace_root().join("docker-compose.test.yml").display()
        ),
    )?;
    std::fs::set_permissions(&cli, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    vars.insert("NEBULA_TEST_VAULT_CLI".into(), cli.display().to_string());
    let ca = dir("run")?.join("vault-tls-ca.pem");
    let pem = with_retries("read the TLS dev server's CA", || {
        exec(service, &["cat", "/tmp/nebula-tls/vault-ca.pem"])
    })?;
    std::fs::write(&ca, format!("{}\n", pem.trim()))?;
    vars.extend(
        [
            (
                "NEBULA_TEST_VAULT_ADDR",
                format!("http://127.0.0.1:{}", spec.docker_port),
            ),
            ("NEBULA_TEST_VAULT_TOKEN", ROOT_TOKEN.to_string()),
            ("NEBULA_TEST_VAULT_TLS_ADDR", "https://127.0.0.1:8201".to_string()),
            ("NEBULA_TEST_VAULT_TLS_CA", ca.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v)),
    );
    Ok(vars)
}

/// The azure emulator's variables under docker (Lowkey Vault 7.1), with its certificate
/// exported as PEM. Lowkey accepts any bearer token, so there is no real read-only or
/// rejected token to export: only the smoke test runs there (the tests skip the token
/// checks when `NEBULA_TEST_AZURE_READONLY_TOKEN` is unset and `NEBULA_TEST_AZURE_API_VERSION`
/// names Lowkey's API version, which the SDK's default is too new for).
pub(crate) fn azure_env(spec: &Spec) -> Result<Env> {
    crate::prereq::require("keytool", &["-help"], "install a JDK for keytool")?;
    let run = dir("run")?;
    let p12 = run.join("lowkey-vault.p12");
    let pem = run.join("lowkey-vault-ca.pem");
    std::fs::write(
        &p12,
        crate::process::http_get_bytes(8080, "/metadata/default-cert/lowkey-vault.p12")?,
    )?;
    run_checked(
        Command::new("keytool")
            .args([
                "-exportcert",
                "-rfc",
                "-storetype",
                "PKCS12",
                "-storepass",
                "changeit",
                "-keystore",
            ])
            .arg(&p12)
            .arg("-file")
            .arg(&pem),
        "keytool -exportcert (install a JDK for keytool)",
    )?;
    Ok([
        (
            "NEBULA_TEST_AZURE_VAULT_URL",
            format!("https://nebula.localhost:{}", spec.docker_port),
        ),
        ("NEBULA_TEST_AZURE_CA_PEM", pem.display().to_string()),
        ("NEBULA_TEST_AZURE_TOKEN", "lowkey-accepts-any-token".to_string()),
        ("NEBULA_TEST_AZURE_API_VERSION", "7.6".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect())
}

/// Copies k3s's admin kubeconfig out, and makes a restricted one: a service account that
/// may only get/list/watch Secrets in `nebula-restricted`.
pub(crate) fn kubernetes_env(spec: &Spec) -> Result<Env> {
    let run = dir("run")?.join("k3s");
    std::fs::create_dir_all(&run)?;
    let admin = run.join("admin.kubeconfig");
    run_checked(
        compose()
            .arg("cp")
            .arg(format!("{}:/output/kubeconfig.yaml", spec.docker_service))
            .arg(&admin),
        "docker compose cp kubeconfig",
    )?;
    let manifest = "apiVersion: v1\nkind: Namespace\nmetadata: {name: nebula-restricted}\n---\n\
        apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: nebula-restricted, namespace: nebula-restricted}\n---\n\
        apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: secret-reader, namespace: nebula-restricted}\n\
        rules: [{apiGroups: [\"\"], resources: [secrets], verbs: [get, list, watch]}]\n---\n\
        apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: secret-reader, namespace: nebula-restricted}\n\
        roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: secret-reader}\n\
        subjects: [{kind: ServiceAccount, name: nebula-restricted, namespace: nebula-restricted}]\n";
    let script = format!("cat <<'EOF' | kubectl apply -f -\n{manifest}EOF");
    exec(spec.docker_service, &["sh", "-c", &script])?;
    let token = exec(
        spec.docker_service,
        &[
            "kubectl",
            "create",
            "token",
            "nebula-restricted",
            "-n",
            "nebula-restricted",
            "--duration=24h",
        ],
    )?;
    let admin_text = std::fs::read_to_string(&admin)?;
    let ca = admin_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data:"))
        .context("k3s kubeconfig has no certificate-authority-data")?
        .trim();
    let restricted = run.join("restricted.kubeconfig");
    std::fs::write(
        &restricted,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: k3s\n  cluster:\n    server: https://127.0.0.1:6443\n    \
             certificate-authority-data: {ca}\nusers:\n- name: nebula-restricted\n  user:\n    token: {token}\n\
             contexts:\n- name: k3s\n  context: {{cluster: k3s, user: nebula-restricted, namespace: nebula-restricted}}\n\
             current-context: k3s\n"
        ),
    )?;
    Ok([
        ("NEBULA_TEST_KUBECONFIG", admin.display().to_string()),
        ("NEBULA_TEST_KUBECONFIG_RESTRICTED", restricted.display().to_string()),
        ("NEBULA_TEST_KUBE_RESTRICTED_NAMESPACE", "nebula-restricted".to_string()),
        (
            "NEBULA_TEST_KUBE_PYTHON",
            crate::native::kube_interop_python()?.display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect())
}

/// `docker compose config`: validates the compose file where the plugin is installed.
pub(crate) fn check_compose_file() -> Result<bool> {
    let available = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        return Ok(false);
    }
    run_checked(compose().args(["config", "--quiet"]), "docker compose config")?;
    Ok(true)
}
