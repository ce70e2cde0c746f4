//! Generated inputs: the property tests (proptest, every test named `props_…`) with their
//! `property cases <codec>: N` lines, and the fuzz targets of `fuzz/` under libFuzzer with
//! their `fuzz executions <target>: N` lines.
//!
//! Fuzzing needs only stable Rust, crates.io and a C++ compiler: the harness
//! (`fuzz/libfuzzer/`, its own workspace) links `libfuzzer-sys`, which builds libFuzzer
//! from source, and is compiled with LLVM's coverage instrumentation through stable codegen
//! flags (what `cargo fuzz --sanitizer none` does), into `target/fuzz/`. A crash input is
//! copied to `fuzz/regressions/<target>/`, which `cargo test -p nebula-credential-fuzz`
//! replays without the fuzzer.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::paths::{target_dir, workspace_root};
use crate::run::{cargo, run_cargo, run_checked};
use crate::shutdown;

/// The name every property test starts with (how the tests step skips them and this finds them).
pub(crate) const PROPERTY_TEST_PREFIX: &str = "props_";

/// Seconds per fuzz target in `cargo xtask ci`.
pub(crate) const CI_FUZZ_SECS: u64 = 25;

/// Figure lines of property tests.
const CASES_LINE: &str = "property cases ";

/// Runs every property test of the workspace (`PROPTEST_CASES` per property, default
/// 256) and prints each codec's `property cases <codec>: N`.
pub(crate) fn property_tests() -> Result<()> {
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--workspace",
        "--all-features",
        "--exclude",
        "nebula-credential-tests",
        "--",
        PROPERTY_TEST_PREFIX,
        "--nocapture",
    ])
    .current_dir(workspace_root());
    eprintln!("    cargo test --workspace --all-features -- {PROPERTY_TEST_PREFIX} --nocapture");
    let out = run_checked(&mut cmd, "the property tests")?;
    let figures = case_lines(&out);
    if figures.is_empty() {
        bail!("the property tests printed no `{CASES_LINE}<codec>: N` line; are the props_ tests still there?");
    }
    for line in figures {
        println!("{line}");
    }
    Ok(())
}

/// The `property cases <codec>: N` lines in `output` (a line may carry test-harness text
/// before it when tests print at once).
fn case_lines(output: &str) -> Vec<String> {
    let mut lines: Vec<String> = output
        .lines()
        .filter_map(|l| l.find(CASES_LINE).map(|at| l[at..].trim().to_string()))
        .collect();
    lines.sort();
    lines
}

/// Runs each of `targets` (every target when empty) for `secs` seconds under libFuzzer,
/// printing `fuzz executions <target>: N`. A crash input is kept under
/// `fuzz/regressions/<target>/` and fails the run.
pub(crate) fn fuzz(targets: &[String], secs: u64) -> Result<()> {
    let all = target_names()?;
    let chosen: Vec<String> = if targets.is_empty() {
        all.clone()
    } else {
        for t in targets {
            if !all.contains(t) {
                bail!("no fuzz target {t:?}; the targets are {}", all.join(", "));
            }
        }
        targets.to_vec()
    };
    let binary = build_harness()?;
    let mut failures = Vec::new();
    for target in &chosen {
        match run_target(&binary, target, secs) {
            Ok(executions) => println!("fuzz executions {target}: {executions}"),
            Err(e) => {
                eprintln!("<== fuzz target {target} FAILED: {e:#}");
                failures.push(target.clone());
            }
        }
    }
    if !failures.is_empty() {
        bail!(
            "fuzz targets {} found inputs that break them; each is kept under fuzz/regressions/<target>/ and \
             `cargo test -p nebula-credential-fuzz` replays it: fix the defect, keep the input",
            failures.join(", ")
        );
    }
    Ok(())
}

/// The targets, as `fuzz/seeds/` names them (one directory per target; the regressions
/// test checks each names a target of `nebula_credential_fuzz::TARGETS`).
fn target_names() -> Result<Vec<String>> {
    let seeds = workspace_root().join("fuzz").join("seeds");
    let mut names: Vec<String> = std::fs::read_dir(&seeds)
        .with_context(|| format!("cannot read {}", seeds.display()))?
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// The host's target triple (`rustc -vV`): building for it explicitly keeps the
/// instrumentation flags off build scripts and proc macros.
fn host_triple() -> Result<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = run_checked(Command::new(rustc).arg("-vV"), "rustc -vV")?;
    out.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .context("rustc -vV names no host")
}

/// Stable codegen flags for libFuzzer's coverage feedback (as `cargo fuzz --sanitizer none`).
const COVERAGE_FLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
];

/// Starts the harness's lock file (its own workspace, not committed) from the workspace's
/// `Cargo.lock`, so the library is fuzzed with exactly the dependency versions it is tested
/// and shipped with, and only what the harness adds (`libfuzzer-sys`) is resolved anew. A
/// lock file of its own would fall out of step with every dependency change.
fn seed_harness_lock() -> Result<()> {
    let root = workspace_root();
    let from = root.join("Cargo.lock");
    let to = root.join("fuzz").join("libfuzzer").join("Cargo.lock");
    std::fs::copy(&from, &to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Builds the harness into `target/fuzz/` and returns the binary.
fn build_harness() -> Result<PathBuf> {
    let triple = host_triple()?;
    let dir = target_dir().join("fuzz");
    let manifest = workspace_root().join("fuzz").join("libfuzzer").join("Cargo.toml");
    eprintln!("\n==> fuzz: building the libFuzzer harness for {triple} (target/fuzz)");
    let started = Instant::now();
    seed_harness_lock()?;
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--target", &triple, "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &dir)
        .env("RUSTFLAGS", COVERAGE_FLAGS.join(" "))
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .current_dir(workspace_root());
    run_cargo(&mut cmd)
        .context("cannot build the fuzz harness (see cargo's error above; libFuzzer also needs a C++ compiler)")?;
    eprintln!("<== fuzz harness built in {:.1?}", started.elapsed());
    Ok(dir.join(triple).join("release").join("nebula-credential-fuzz"))
}

/// Runs one target for `secs` seconds; the executions on success, else the error naming
/// the kept crash inputs.
fn run_target(binary: &Path, target: &str, secs: u64) -> Result<u64> {
    let fuzz_dir = target_dir().join("fuzz");
    let corpus = fuzz_dir.join("corpus").join(target);
    let artifacts = fuzz_dir.join("artifacts").join(target);
    for d in [&corpus, &artifacts] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let seeds = workspace_root().join("fuzz").join("seeds").join(target);
    eprintln!("\n==> fuzz {target}: {secs} s");
    let mut cmd = Command::new(binary);
    cmd.arg(format!("-max_total_time={secs}"))
        .arg("-print_final_stats=1")
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg("-max_len=4096")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(&corpus)
        .arg(&seeds)
        .env("NEBULA_FUZZ_TARGET", target)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = shutdown::spawn_foreground(&mut cmd).with_context(|| format!("cannot run {}", binary.display()))?;
    let out = shutdown::wait_foreground(child, std::process::Child::wait_with_output)
        .context("cannot wait for the fuzzer")?;
    let log = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return executions(&log).with_context(|| format!("libFuzzer printed no executions:\n{}", tail(&log)));
    }
    let kept = keep_crashes(&artifacts, target)?;
    if kept.is_empty() {
        bail!(
            "the fuzzer failed ({}) without a crash input:\n{}",
            out.status,
            tail(&log)
        );
    }
    bail!("{} ({}); kept {}\n{}", out.status, target, kept.join(", "), tail(&log))
}

/// `stat::number_of_executed_units: N` of libFuzzer's final statistics.
fn executions(log: &str) -> Option<u64> {
    log.lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Moves every crash, timeout, leak or out-of-memory input libFuzzer wrote for `target`
/// into `fuzz/regressions/<target>/`; the paths kept.
fn keep_crashes(artifacts: &Path, target: &str) -> Result<Vec<String>> {
    let keep = workspace_root().join("fuzz").join("regressions").join(target);
    let mut kept = Vec::new();
    for entry in std::fs::read_dir(artifacts)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !["crash-", "timeout-", "leak-", "oom-", "slow-unit-"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            continue;
        }
        std::fs::create_dir_all(&keep)?;
        let to = keep.join(&name);
        std::fs::copy(entry.path(), &to).with_context(|| format!("cannot keep {}", to.display()))?;
        std::fs::remove_file(entry.path())?;
        kept.push(format!("fuzz/regressions/{target}/{name}"));
    }
    Ok(kept)
}

/// The last lines of a long log.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figure_lines_are_found_even_after_harness_text() {
        let out = "running 2 tests\ntest props::a ... property cases b-codec: 12\nproperty cases a-codec: 768\n\
                   test props::a ... ok\n";
        assert_eq!(
            case_lines(out),
            ["property cases a-codec: 768", "property cases b-codec: 12"]
        );
        assert!(case_lines("test result: ok").is_empty());
    }

    #[test]
    fn executions_come_from_libfuzzers_final_statistics() {
        let log = "#1024\tpulse cov: 10\nDone 52344 runs in 2 second(s)\nstat::number_of_executed_units: 52344\n\
                   stat::average_exec_per_sec:     26172\n";
        assert_eq!(executions(log), Some(52344));
        assert_eq!(executions("INFO: nothing"), None);
    }

    #[test]
    fn every_seed_directory_is_a_target_of_the_fuzz_crate() {
        let names = target_names().unwrap();
        let lib = std::fs::read_to_string(workspace_root().join("fuzz/src/lib.rs")).unwrap();
        assert!(names.len() >= 8, "{names:?}");
        for name in names {
            assert!(
                lib.contains(&format!("(\"{name}\", {name})")),
                "{name} is not in TARGETS"
            );
        }
    }
}
