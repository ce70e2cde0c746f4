//! `cargo xtask test-integration [--backend NAMES] [--runtime R] [-- ARGS]`.

use anyhow::Result;

use crate::emulators::Emulator;
use crate::harness;
use crate::runtime::Runtime;

/// Runs the tests/ package against the emulators of `named` (default: every backend the
/// runtime can run here), then their native checks.
pub(crate) fn run(named: &[Emulator], runtime: Runtime, cargo_args: &[String]) -> Result<()> {
    let backends = if named.is_empty() {
        harness::default_backends(runtime)
    } else {
        Emulator::these_or_all(named)
    };
    harness::integration_tests(&backends, runtime, cargo_args)
}
