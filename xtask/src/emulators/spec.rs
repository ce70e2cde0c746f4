//! What a row of the emulator table holds; each emulator's file defines its row as `SPEC`.

use anyhow::Result;

use crate::launch::Launch;
use crate::runtime::{Env, Runtime};

/// Installs what an emulator needs, starts it through `Launch`, and returns its variables.
pub(crate) type NativeStart = fn(&mut Launch) -> Result<Env>;

/// The variables of an emulator running under docker compose (after any setup it needs).
pub(crate) type DockerEnv = fn(&Spec) -> Result<Env>;

/// Checks `test-integration` runs after the tests/ package, against the running emulator
/// with its variables (e.g. a parity suite); a failure fails the run.
pub(crate) type Checks = fn(&Env) -> Result<()>;

/// Everything about one emulator, once.
pub(crate) struct Spec {
    /// Name on the command line, in the state file, as the cargo feature of `tests/`, and
    /// the provider's name in `providers!`.
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

/// `[(name, value), …]` as [`Env`].
pub(crate) fn env<const N: usize>(pairs: [(&str, String); N]) -> Env {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
