//! `cargo xtask fuzz [--secs N] [TARGET…]` and `cargo xtask props`: the generated-input
//! checks on their own (both are steps of `cargo xtask ci`).

use anyhow::Result;

use crate::generated;

/// Fuzzes `targets` (every target when empty) for `secs` seconds each.
pub(crate) fn run(targets: &[String], secs: u64) -> Result<()> {
    generated::fuzz(targets, secs)
}

/// Runs the property tests and prints the cases per codec.
pub(crate) fn props() -> Result<()> {
    generated::property_tests()
}
