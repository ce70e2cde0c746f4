//! The aws emulator: moto server natively (patched by `test-servers/moto/`, see
//! [`moto`]), LocalStack under docker.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use super::spec::{Spec, env};
use crate::http::{free_port, http_status};
use crate::launch::Launch;
use crate::python::venv;
use crate::runtime::Env;

mod moto;

/// Its row of the emulator table.
pub(super) static SPEC: Spec = Spec {
    name: "aws",
    aliases: &[],
    native: "moto server 5.2.5 (PyPI moto[server], patched by test-servers/moto/) in target/emulators/venv",
    start,
    ci_native_skip: None,
    native_checks: None,
    native_env: &[],
    docker_service: "localstack",
    docker_port: 4566,
    docker_env,
    env: &["NEBULA_TEST_AWS_ENDPOINT"],
};

/// Starts moto from the venv, with the patches of `test-servers/moto/` applied (checked at
/// every start, so a reinstall gets them).
fn start(l: &mut Launch) -> Result<Env> {
    let venv = venv()?;
    moto::patch_moto(&venv)?;
    let bin = venv.join("bin").join("moto_server");
    let port = free_port()?;
    let server = l.spawn(Command::new(&bin).args(["-H", "127.0.0.1", "-p", &port.to_string()]))?;
    l.wait_ready("aws (moto)", server, Duration::from_secs(60), || {
        http_status(port, "/moto-api/") == Some(200)
    })?;
    Ok(endpoint_env(format!("http://127.0.0.1:{port}")))
}

/// The variables under docker: LocalStack's published port.
fn docker_env(spec: &Spec) -> Result<Env> {
    Ok(endpoint_env(format!("http://127.0.0.1:{}", spec.docker_port)))
}

/// The variables: its endpoint, and the static credentials and region the SDK's standard
/// chain reads (any pair works with moto and LocalStack).
fn endpoint_env(endpoint: String) -> Env {
    env([
        ("NEBULA_TEST_AWS_ENDPOINT", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ])
}
