//! Where emulators run, and the variables they export to tests.

use std::collections::BTreeMap;
use std::fmt;

/// Variables an emulator exports to tests, by name.
pub(crate) type Env = BTreeMap<String, String>;

/// Where emulators run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Runtime {
    /// Processes under `target/emulators/`, installed there.
    Native,
    /// The services of `docker-compose.test.yml`.
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

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Runtime::Native => "native",
            Runtime::Docker => "docker",
        })
    }
}
