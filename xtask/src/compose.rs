//! `docker compose` on `docker-compose.test.yml`, by service name: the docker runtime's
//! commands, which each emulator's docker environment uses for its setup.

use std::process::Command;

use anyhow::Result;

use crate::paths::workspace_root;
use crate::run::{run_checked, with_retries};

/// `docker compose -f docker-compose.test.yml`.
pub(crate) fn compose() -> Command {
    let mut c = Command::new("docker");
    c.arg("compose")
        .arg("-f")
        .arg(workspace_root().join("docker-compose.test.yml"));
    c
}

/// Starts `services` and waits for their health checks.
pub(crate) fn up(services: &[&str]) -> Result<()> {
    with_retries("docker compose up", || {
        run_checked(
            compose().args(["up", "--detach", "--wait"]).args(services),
            "docker compose up",
        )
    })
    .map(drop)
}

/// Stops and removes `services` with their volumes.
pub(crate) fn down(services: &[&str]) -> Result<()> {
    run_checked(
        compose().args(["rm", "--stop", "--force", "--volumes"]).args(services),
        "docker compose rm",
    )
    .map(drop)
}

/// Runs `args` in `service`; its stdout.
pub(crate) fn exec(service: &str, args: &[&str]) -> Result<String> {
    run_checked(
        compose().args(["exec", "-T", service]).args(args),
        &format!("docker compose exec {service}"),
    )
}

/// `docker compose config`: validates the compose file where the plugin is installed;
/// `false` when it is not.
pub(crate) fn check_file() -> Result<bool> {
    let available = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        return Ok(false);
    }
    run_checked(compose().args(["config", "--quiet"]), "docker compose config")?;
    Ok(true)
}
