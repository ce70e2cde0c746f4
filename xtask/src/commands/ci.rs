//! `cargo xtask ci`: every check CI runs, in order of cost: format, tidy, clippy, tests,
//! docs, the property tests, the fuzz targets, MSRV, packaging, the compose file, then the
//! integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::emulators::Emulator;
use crate::metadata::Metadata;
use crate::paths::{target_dir, workspace_root};
use crate::run::cargo;
use crate::runtime::Runtime;
use crate::{compose, generated, harness, tidy};

/// One cargo step of CI.
struct Step {
    name: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

const FORMAT: Step = Step {
    name: "format",
    args: &["fmt", "--all", "--check"],
    env: &[],
};

const BUILD_STEPS: &[Step] = &[
    Step {
        name: "clippy",
        args: &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
        env: &[],
    },
    Step {
        name: "tests",
        args: &[
            "test",
            "--workspace",
            "--all-features",
            "--exclude",
            "nebula-credential-tests",
            // The property tests run in their own step, which prints their cases.
            "--",
            "--skip",
            generated::PROPERTY_TEST_PREFIX,
        ],
        env: &[],
    },
    Step {
        name: "docs",
        args: &["doc", "--workspace", "--no-deps", "--all-features"],
        env: &[("RUSTDOCFLAGS", "-D warnings")],
    },
];

/// Runs every check; the integration tests against `named` (default: every backend
/// `runtime` can run here).
pub(crate) fn run(named: &[Emulator], runtime: Runtime) -> Result<()> {
    let started = Instant::now();
    run_step(&FORMAT)?;
    let metadata = Metadata::load()?;
    timed("tidy", || tidy::check(&workspace_root(), &metadata))?;
    for step in BUILD_STEPS {
        run_step(step)?;
    }
    timed("properties", generated::property_tests)?;
    timed("fuzz", || generated::fuzz(&[], generated::CI_FUZZ_SECS))?;
    msrv_check(&metadata)?;
    timed("package", || package_check(&metadata))?;
    match compose::check_file() {
        Ok(true) => eprintln!("==> docker-compose.test.yml: valid (docker compose config)"),
        Ok(false) => {
            eprintln!("==> docker-compose.test.yml: not validated, the docker compose plugin is not installed")
        }
        Err(e) => return Err(e.context("docker-compose.test.yml is invalid")),
    }
    let backends = if named.is_empty() {
        harness::default_backends(runtime)
    } else {
        Emulator::these_or_all(named)
    };
    let step = Instant::now();
    harness::integration_tests(&backends, runtime, &[])?;
    eprintln!("<== integration tests passed in {:.0?}", step.elapsed());
    eprintln!("xtask ci: all steps passed in {:.0?}", started.elapsed());
    Ok(())
}

/// Runs `check` as the step `name`, saying how long it took.
fn timed(name: &str, check: impl FnOnce() -> Result<()>) -> Result<()> {
    eprintln!("\n==> {name}");
    let started = Instant::now();
    check()?;
    eprintln!("<== {name} passed in {:.1?}", started.elapsed());
    Ok(())
}

/// The workspace's `rust-version` (`[workspace.package]` of the root Cargo.toml).
fn workspace_rust_version() -> Result<String> {
    let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml"))?;
    manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_string())
        .context("the workspace Cargo.toml declares no rust-version")
}

/// The published crates that declare `version` as their `rust-version` (through
/// `rust-version.workspace = true`); crates declaring a higher one (the AWS SDK's) and
/// unpublished ones (tests, benches, xtask, the test servers) are left out.
fn msrv_packages<'m>(metadata: &'m Metadata, version: &str) -> Vec<&'m str> {
    metadata
        .published()
        .filter(|p| p.rust_version.as_deref() == Some(version))
        .map(|p| p.name.as_str())
        .collect()
}

/// Checks that the crates claiming the workspace's `rust-version` build with that
/// toolchain, installed through rustup into its usual place. Says so, and goes on, when
/// rustup cannot install it.
fn msrv_check(metadata: &Metadata) -> Result<()> {
    let version = workspace_rust_version()?;
    let packages = msrv_packages(metadata, &version);
    eprintln!("\n==> msrv: cargo check with Rust {version} of {}", packages.join(", "));
    let installed = Command::new("rustup")
        .args([
            "toolchain",
            "install",
            &version,
            "--profile",
            "minimal",
            "--no-self-update",
        ])
        .stdout(Stdio::null())
        .status();
    if !installed.is_ok_and(|s| s.success()) {
        eprintln!("<== msrv: NOT checked: rustup could not install Rust {version} here");
        return Ok(());
    }
    let started = Instant::now();
    let status = Command::new("rustup")
        .args([
            "run",
            &version,
            "cargo",
            "check",
            "--no-default-features",
            "--features",
            "nebula-credential/storage-local",
        ])
        .args(packages.iter().flat_map(|p| ["-p", p]))
        .current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", target_dir().join("msrv"))
        .env_remove("RUSTC")
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN")
        .status()
        .context("cannot run rustup")?;
    if !status.success() {
        bail!("the crates that declare rust-version {version} do not build with it ({status})");
    }
    eprintln!("<== msrv passed in {:.1?}", started.elapsed());
    Ok(())
}

/// The `cargo package` command line for the published crates: packed together (their path
/// dependencies on each other resolve to the packages being made) and each built from its
/// own package, so a file missing from a package or a dependency only the workspace
/// provides fails here rather than at `cargo publish`.
fn package_args(metadata: &Metadata) -> Vec<String> {
    let mut args: Vec<String> = ["package", "--allow-dirty"].map(String::from).to_vec();
    for p in metadata.published() {
        args.push("-p".into());
        args.push(p.name.clone());
    }
    args
}

/// `cargo package` with verification of every published crate. Measured on the shared
/// 2-core machine: 16.5 min wall (6.9 min CPU) with only the other CI steps' builds in
/// `target/`, 1 min 10 s once its own builds are there: each crate's verification resolves
/// its dependencies' features on its own (tokio builds 6 times), and sharing `target/`
/// lets it reuse every dependency the earlier steps built with the same features.
/// `--allow-dirty`: the check is whether the crates build from their packages, not
/// whether the working tree is committed.
fn package_check(metadata: &Metadata) -> Result<()> {
    let names: Vec<&str> = metadata.published().map(|p| p.name.as_str()).collect();
    let forgotten = forget_unpacked(&cargo_home(), &names)?;
    if forgotten > 0 {
        eprintln!("    removed {forgotten} sources unpacked by an earlier package check");
    }
    let args = package_args(metadata);
    eprintln!("    cargo {}", args.join(" "));
    let status = cargo()
        .args(&args)
        .current_dir(workspace_root())
        .status()
        .context("cannot run cargo package")?;
    if !status.success() {
        bail!(
            "a published crate does not build from its package ({status}): run `cargo {}` to see which",
            args.join(" ")
        );
    }
    Ok(())
}

/// Cargo's home: `CARGO_HOME`, else `~/.cargo`.
fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"))
}

/// Removes what earlier package checks unpacked of our crates into cargo's source cache.
///
/// `cargo package` verifies each crate against the others' packages through a local
/// registry (`target/package/tmp-registry`), and cargo unpacks those packages once per
/// registry path and version into `<cargo home>/registry/src/-<hash>/<name>-<version>`,
/// keeping them: the next check from the same checkout would build against the stale
/// sources of the last one (seen: a clean clone at the same path failed on a function the
/// stale core did not have). Only those directories (registry names starting with `-`, the
/// local registries; never crates.io's) and only our crates' names are removed.
fn forget_unpacked(cargo_home: &Path, names: &[&str]) -> Result<usize> {
    let sources = cargo_home.join("registry").join("src");
    let Ok(registries) = std::fs::read_dir(&sources) else {
        return Ok(0);
    };
    let mut removed = 0;
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        for unpacked in std::fs::read_dir(registry.path())?.flatten() {
            let file_name = unpacked.file_name();
            let dir = file_name.to_string_lossy();
            let ours = names.iter().any(|name| {
                dir.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|version| version.starts_with(|c: char| c.is_ascii_digit()))
            });
            if ours {
                std::fs::remove_dir_all(unpacked.path())
                    .with_context(|| format!("cannot remove {}", unpacked.path().display()))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Runs a cargo step, its output going to the terminal.
fn run_step(step: &Step) -> Result<()> {
    eprintln!("\n==> {}: cargo {}", step.name, step.args.join(" "));
    let started = Instant::now();
    let status = cargo()
        .args(step.args)
        .envs(step.env.iter().copied())
        .current_dir(workspace_root())
        .status()
        .context("cannot run cargo; is Rust installed and on PATH?")?;
    if !status.success() {
        bail!(
            "step `{}` failed ({status}): run `cargo {}` to see why",
            step.name,
            step.args.join(" ")
        );
    }
    eprintln!("<== {} passed in {:.1?}", step.name, started.elapsed());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_crates_unpacked_from_local_registries_are_forgotten() {
        let home = std::env::temp_dir().join(format!("xtask-cargo-home-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        let dirs = [
            "registry/src/-14cd1cce6819ff87/nebula-credential-0.1.0",
            "registry/src/-14cd1cce6819ff87/nebula-credential-aws-0.1.0",
            "registry/src/-14cd1cce6819ff87/serde-1.0.0",
            "registry/src/index.crates.io-1949cf8c6b5b557f/nebula-credential-0.1.0",
            "registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.0.0",
        ];
        for d in dirs {
            std::fs::create_dir_all(home.join(d)).unwrap();
        }
        let removed = forget_unpacked(&home, &["nebula-credential", "nebula-credential-aws"]).unwrap();
        let left: Vec<bool> = dirs.iter().map(|d| home.join(d).exists()).collect();
        std::fs::remove_dir_all(&home).unwrap();
        assert_eq!(removed, 2);
        assert_eq!(left, [false, false, true, true, true]);
        assert_eq!(
            forget_unpacked(&home, &["nebula-credential"]).unwrap(),
            0,
            "no cargo home is no error"
        );
    }

    #[test]
    fn msrv_and_packaging_cover_the_published_crates_from_cargo_metadata() {
        let metadata = Metadata::load().unwrap();
        let version = workspace_rust_version().unwrap();
        let msrv = msrv_packages(&metadata, &version);
        for name in ["nebula-credential-core", "nebula-credential", "nebula-credential-local"] {
            assert!(msrv.contains(&name), "{name} in {msrv:?}");
        }
        for name in [
            "nebula-credential-aws",
            "keyvault-emulator",
            "xtask",
            "nebula-credential-tests",
        ] {
            assert!(!msrv.contains(&name), "{name} in {msrv:?}");
        }
        let args = package_args(&metadata).join(" ");
        assert!(
            args.contains("-p nebula-credential-aws") && args.contains("-p nebula-cred"),
            "{args}"
        );
        for unpublished in [
            "xtask",
            "keyvault-emulator",
            "nebula-credential-tests",
            "nebula-credential-benches",
        ] {
            assert!(!args.contains(&format!("-p {unpublished}")), "{args}");
        }
    }
}
