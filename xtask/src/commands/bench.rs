//! `cargo xtask bench BACKEND [--runtime R] [-- ARGS]`.

use anyhow::Result;

use crate::emulators::Emulator;
use crate::harness;
use crate::run::{cargo, run_cargo};
use crate::runtime::{Env, Runtime};

/// Benches that need no emulator.
const IN_PROCESS: &[&str] = &["local", "memory"];

/// `cargo bench --bench BACKEND`, with its emulator up (on `runtime`) if it has one.
pub(crate) fn run(backend: &str, runtime: impl FnOnce() -> Runtime, cargo_args: &[String]) -> Result<()> {
    let emulator = if IN_PROCESS.contains(&backend) {
        None
    } else {
        Some(backend.parse::<Emulator>()?)
    };
    let name = emulator.map_or(backend, |e| e.name());
    let bench = |env: Env| {
        let mut cmd = cargo();
        cmd.args(["bench", "-p", "nebula-credential-benches", "--bench", name])
            .args(cargo_args)
            .envs(env);
        run_cargo(&mut cmd)
    };
    match emulator {
        Some(e) => harness::with_emulators(&[e], runtime(), bench),
        None => bench(Env::new()),
    }
}
