//! The kubernetes emulator: a real kube-apiserver with embedded etcd, built with Go from
//! `test-servers/kube-apiserver` natively; k3s under docker. Both export an admin and a
//! restricted kubeconfig (a service account that may only read Secrets in one namespace).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use super::spec::{Spec, env};
use crate::compose;
use crate::http::free_port;
use crate::launch::Launch;
use crate::paths::{dir, test_server};
use crate::prereq::{Version, require_version};
use crate::python::own_venv_python;
use crate::run::{permanent, run_checked, with_retries};
use crate::runtime::Env;

/// Its row of the emulator table.
pub(super) static SPEC: Spec = Spec {
    name: "kubernetes",
    aliases: &["k8s"],
    native: "kube-apiserver v1.34.4 + embedded etcd v3.6.4, built with Go from test-servers/kube-apiserver",
    start,
    ci_native_skip: None,
    native_checks: None,
    // The launcher binary, for the restart tests (tests/src/restart.rs): they run their own
    // apiserver and etcd with it, to kill -9 them and start them again on the same data.
    native_env: &["NEBULA_TEST_KUBE_APISERVER_BIN"],
    docker_service: "k3s",
    docker_port: 6443,
    docker_env,
    env: &[
        "NEBULA_TEST_KUBECONFIG",
        "NEBULA_TEST_KUBECONFIG_RESTRICTED",
        "NEBULA_TEST_KUBE_RESTRICTED_NAMESPACE",
        "NEBULA_TEST_KUBE_PYTHON",
    ],
};

/// The namespace where the restricted Kubernetes user may read Secrets.
const KUBE_RESTRICTED_NAMESPACE: &str = "nebula-restricted";

/// Newest modification time of the Go sources that make the apiserver binary.
fn newest_source(src: &Path) -> Result<SystemTime> {
    ["main.go", "go.mod", "go.sum"]
        .iter()
        .map(|f| std::fs::metadata(src.join(f)).and_then(|m| m.modified()))
        .try_fold(SystemTime::UNIX_EPOCH, |acc, t| Ok(acc.max(t?)))
}

/// Builds `kube-apiserver-dev` into `target/emulators/bin/` unless it is newer than its sources.
fn kube_apiserver_binary() -> Result<PathBuf> {
    let src = test_server("kube-apiserver");
    let bin = dir("bin")?.join("kube-apiserver-dev");
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    if built.is_some_and(|b| newest_source(&src).is_ok_and(|s| b >= s)) {
        return Ok(bin);
    }
    let go_mod =
        std::fs::read_to_string(src.join("go.mod")).context("cannot read test-servers/kube-apiserver/go.mod")?;
    let needed = Version::go_directive(&go_mod).context("test-servers/kube-apiserver/go.mod has no `go` directive")?;
    require_version(
        "Go",
        "go",
        &["version"],
        needed,
        &format!("install Go {needed} or newer (https://go.dev/doc/install)"),
    )?;
    eprintln!(
        "    building kube-apiserver v1.34.4 + etcd v3.6.4 with Go (first build: several minutes; cached afterwards)"
    );
    let started = std::time::Instant::now();
    let go = |args: &[&str]| {
        let mut c = Command::new("go");
        c.args(args).current_dir(&src);
        c
    };
    with_retries("go build kube-apiserver-dev", || {
        run_checked(
            &mut go(&["mod", "download"]),
            "go mod download (through the Go module proxy)",
        )?;
        run_checked(go(&["build", "-trimpath", "-o"]).arg(&bin).arg("."), "go build")
            .map_err(|e| permanent(e, "kube-apiserver-dev does not build (not retried)"))
    })?;
    eprintln!("    built in {:.0} s", started.elapsed().as_secs_f64());
    Ok(bin)
}

/// The Python of a venv of its own (`target/emulators/kube-venv`) holding the Kubernetes
/// project's Python client, pinned in test-servers/kube-apiserver/interop/requirements.txt,
/// for the interop test. Kept apart from the moto/OpenBao venv: its dependencies' pins
/// differ (it would upgrade python-dateutil past what botocore accepts).
fn interop_python() -> Result<PathBuf> {
    own_venv_python(
        "kube-venv",
        &test_server("kube-apiserver").join("interop").join("requirements.txt"),
    )
}

/// Starts kube-apiserver with embedded etcd natively, with an admin and a restricted
/// kubeconfig.
fn start(l: &mut Launch) -> Result<Env> {
    let python = interop_python()?;
    let bin = kube_apiserver_binary()?;
    let run = dir("run")?.join("kubernetes");
    if run.exists() {
        std::fs::remove_dir_all(&run).with_context(|| format!("cannot clear {}", run.display()))?;
    }
    std::fs::create_dir_all(&run)?;
    let (port, etcd, peer) = (free_port()?, free_port()?, free_port()?);
    let server = l.spawn(Command::new(&bin).arg("--dir").arg(&run).args([
        "--port",
        &port.to_string(),
        "--etcd-port",
        &etcd.to_string(),
        "--etcd-peer-port",
        &peer.to_string(),
    ]))?;
    let ready = run.join("ready");
    l.wait_ready("kubernetes (kube-apiserver)", server, Duration::from_secs(240), || {
        ready.exists()
    })?;
    Ok(env([
        (
            "NEBULA_TEST_KUBECONFIG",
            run.join("admin.kubeconfig").display().to_string(),
        ),
        (
            "NEBULA_TEST_KUBECONFIG_RESTRICTED",
            run.join("restricted.kubeconfig").display().to_string(),
        ),
        (
            "NEBULA_TEST_KUBE_RESTRICTED_NAMESPACE",
            KUBE_RESTRICTED_NAMESPACE.to_string(),
        ),
        ("NEBULA_TEST_KUBE_PYTHON", python.display().to_string()),
        ("NEBULA_TEST_KUBE_APISERVER_BIN", bin.display().to_string()),
    ]))
}

/// Copies k3s's admin kubeconfig out, and makes a restricted one: a service account that
/// may only get/list/watch Secrets in `nebula-restricted`.
fn docker_env(spec: &Spec) -> Result<Env> {
    let run = dir("run")?.join("k3s");
    std::fs::create_dir_all(&run)?;
    let admin = run.join("admin.kubeconfig");
    run_checked(
        compose::compose()
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
    compose::exec(spec.docker_service, &["sh", "-c", &script])?;
    let token = compose::exec(
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
        (
            "NEBULA_TEST_KUBE_RESTRICTED_NAMESPACE",
            KUBE_RESTRICTED_NAMESPACE.to_string(),
        ),
        ("NEBULA_TEST_KUBE_PYTHON", interop_python()?.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect())
}
