//! The azure emulator: this workspace's Key Vault emulator (`test-servers/keyvault-emulator`)
//! natively, with its Python parity suite as extra checks; Lowkey Vault under docker.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::spec::{Spec, env};
use crate::http::http_get_bytes;
use crate::launch::Launch;
use crate::paths::{dir, target_dir, test_server, workspace_root};
use crate::prereq::require;
use crate::python::venv_with;
use crate::run::{cargo, permanent, run_checked, with_retries};
use crate::runtime::Env;

/// Its row of the emulator table.
pub(super) static SPEC: Spec = Spec {
    name: "azure",
    aliases: &[],
    native: "keyvault-emulator (this workspace, test-servers/keyvault-emulator), built with cargo; \
             its Python parity suite (pinned azure-keyvault-secrets) runs in test-integration",
    start,
    ci_native_skip: None,
    native_checks: Some(parity),
    native_env: &[
        "NEBULA_TEST_AZURE_READONLY_TOKEN",
        "NEBULA_TEST_AZURE_REJECTED_TOKEN",
        "NEBULA_TEST_AZURE_METADATA_TOKEN",
        "NEBULA_TEST_AZURE_NOPURGE_TOKEN",
    ],
    // Lowkey Vault accepts any token: under docker only the smoke test runs (no read-only
    // and rejected tokens, no parity suite).
    docker_service: "lowkey-vault",
    docker_port: 8443,
    docker_env,
    env: &[
        "NEBULA_TEST_AZURE_VAULT_URL",
        "NEBULA_TEST_AZURE_CA_PEM",
        "NEBULA_TEST_AZURE_TOKEN",
    ],
};

/// The Key Vault emulator's binary, built by the cargo that runs xtask (incremental: a no-op
/// when nothing changed). A compile error is permanent; a failed crate download is retried.
fn keyvault_emulator_binary() -> Result<PathBuf> {
    eprintln!("    building keyvault-emulator (cargo build -p keyvault-emulator)");
    let started = std::time::Instant::now();
    with_retries("cargo build -p keyvault-emulator", || {
        run_checked(
            cargo()
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

/// Starts it natively: this workspace's keyvault-emulator, state (CA, tokens,
/// ready file) in `target/emulators/azure/`. It writes `ready.json` atomically once it serves.
fn start(l: &mut Launch) -> Result<Env> {
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
    venv_with(&test_server("keyvault-emulator").join("parity").join("requirements.txt"))
}

/// The Key Vault emulator's Python parity suite (Microsoft's azure-keyvault-secrets, pinned in
/// its requirements.txt, installed into the venv), run against the running emulator.
fn parity(vars: &Env) -> Result<()> {
    let parity = test_server("keyvault-emulator").join("parity");
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

/// Its variables under docker (Lowkey Vault 7.1), with its certificate
/// exported as PEM. Lowkey accepts any bearer token, so there is no real read-only or
/// rejected token to export: the token tests fail there naming the missing variable
/// (`-- --skip token` runs the smoke test alone), and `NEBULA_TEST_AZURE_API_VERSION` names
/// Lowkey's API version, which the SDK's default is too new for.
fn docker_env(spec: &Spec) -> Result<Env> {
    require("keytool", &["-help"], "install a JDK for keytool")?;
    let run = dir("run")?;
    let p12 = run.join("lowkey-vault.p12");
    let pem = run.join("lowkey-vault-ca.pem");
    std::fs::write(&p12, http_get_bytes(8080, "/metadata/default-cert/lowkey-vault.p12")?)?;
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
        assert_eq!(ready.tokens_file, std::path::Path::new("/abs/dir/tokens.json"));
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
        assert!(
            SPEC.exports(crate::runtime::Runtime::Native)
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
