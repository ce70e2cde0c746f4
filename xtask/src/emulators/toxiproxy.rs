//! Toxiproxy: not a backend but a TCP proxy the fault tests put between a provider and its
//! emulator, to inject latency, resets, black holes and trickles through its HTTP API
//! (`tests/src/faults/`). Built with Go from the module `github.com/Shopify/toxiproxy/v2`
//! natively (API on a free loopback port); its own image under docker (host network, so
//! its proxies reach the other emulators' loopback ports).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use super::spec::{Spec, env};
use crate::http::{free_port, http_status};
use crate::launch::Launch;
use crate::paths::dir;
use crate::prereq::{Version, require_version};
use crate::run::{run_checked, with_retries};
use crate::runtime::Env;

/// The Toxiproxy release built natively (and the image tag under docker).
const VERSION: &str = "v2.12.0";

/// Its row of the emulator table.
pub(super) static SPEC: Spec = Spec {
    name: "toxiproxy",
    aliases: &["faults"],
    native: "Toxiproxy v2.12.0 (a TCP fault proxy for the fault matrix; no backend), built with Go from github.com/Shopify/toxiproxy/v2",
    start,
    ci_native_skip: None,
    native_checks: None,
    native_env: &[],
    docker_service: "toxiproxy",
    docker_port: 8474,
    docker_env,
    env: &["NEBULA_TEST_TOXIPROXY_URL"],
};

/// Builds `toxiproxy-server-VERSION` into `target/emulators/bin/` once (the version is in the
/// name, so changing [`VERSION`] rebuilds).
fn toxiproxy_binary() -> Result<PathBuf> {
    let bin_dir = dir("bin")?;
    let bin = bin_dir.join(format!("toxiproxy-server-{VERSION}"));
    if bin.is_file() {
        return Ok(bin);
    }
    require_version(
        "Go",
        "go",
        &["version"],
        Version::parse("1.23").context("bad Go version literal")?,
        "install Go 1.23 or newer, which Toxiproxy v2.12.0's go.mod asks for (https://go.dev/doc/install)",
    )?;
    eprintln!("    building Toxiproxy {VERSION} with Go (first build: under a minute; cached afterwards)");
    let build = dir("toxiproxy-build")?;
    with_retries("go install toxiproxy", || {
        run_checked(
            Command::new("go")
                .args(["install", "-trimpath"])
                .arg(format!("github.com/Shopify/toxiproxy/v2/cmd/server@{VERSION}"))
                .env("GOBIN", &build),
            "go install github.com/Shopify/toxiproxy/v2/cmd/server (through the Go module proxy)",
        )
    })?;
    std::fs::rename(build.join("server"), &bin)
        .with_context(|| format!("cannot move the Toxiproxy binary to {}", bin.display()))?;
    Ok(bin)
}

/// Starts Toxiproxy's API on a free loopback port.
fn start(l: &mut Launch) -> Result<Env> {
    let bin = toxiproxy_binary()?;
    let port = free_port()?;
    let server = l.spawn(Command::new(&bin).args(["-host", "127.0.0.1", "-port", &port.to_string()]))?;
    l.wait_ready("toxiproxy", server, Duration::from_secs(30), || {
        http_status(port, "/version") == Some(200)
    })?;
    Ok(url_env(port))
}

/// The variables under docker: the API's port on the host network.
fn docker_env(spec: &Spec) -> Result<Env> {
    Ok(url_env(spec.docker_port))
}

/// `NEBULA_TEST_TOXIPROXY_URL`: the API's base URL.
fn url_env(port: u16) -> Env {
    env([("NEBULA_TEST_TOXIPROXY_URL", format!("http://127.0.0.1:{port}"))])
}
