//! Project automation. `cargo xtask ci` runs every check CI runs, in order.
//!
//! Usage: `cargo xtask <command>`
//! - `ci`   — fmt check, clippy (`-D warnings`), all tests (doc tests included), docs (`-D warnings`)
//! - `help` — this text

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

const HELP: &str = "\
usage: cargo xtask <command>

commands:
  ci      fmt check, clippy -D warnings, cargo test --workspace --all-features, cargo doc -D warnings
  help    show this text
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("help" | "-h" | "--help") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n\n{HELP}"),
    }
}

/// One step of a pipeline: a cargo invocation with optional environment.
struct Step {
    name: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

const CI_STEPS: &[Step] = &[
    Step {
        name: "format",
        args: &["fmt", "--all", "--check"],
        env: &[],
    },
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
        args: &["test", "--workspace", "--all-features"],
        env: &[],
    },
    Step {
        name: "docs",
        args: &["doc", "--workspace", "--no-deps", "--all-features"],
        env: &[("RUSTDOCFLAGS", "-D warnings")],
    },
];

fn ci() -> Result<()> {
    let started = Instant::now();
    for step in CI_STEPS {
        run(step)?;
    }
    println!(
        "xtask ci: all {} steps passed in {:.0?}",
        CI_STEPS.len(),
        started.elapsed()
    );
    Ok(())
}

fn run(step: &Step) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("\n==> {}: cargo {}", step.name, step.args.join(" "));
    let started = Instant::now();
    let status = Command::new(&cargo)
        .args(step.args)
        .envs(step.env.iter().copied())
        .status()
        .with_context(|| format!("cannot run `{cargo}`; is Rust installed and on PATH?"))?;
    if !status.success() {
        bail!(
            "step `{}` failed ({status}): run `cargo {}` to see why",
            step.name,
            step.args.join(" ")
        );
    }
    println!("<== {} passed in {:.1?}", step.name, started.elapsed());
    Ok(())
}
